//! The sled backend of [`EventStore`].
//!
//! Following docs/storage-notes.md: one writer; a group of commands is ONE record in the redo
//! log ([`crate::redo`]: one `pwrite`, one `fdatasync`), then ONE sled `Batch` on ONE tree
//! (all or nothing on recovery), left in sled's memory; a group is acknowledged, and the
//! durable head moves, only after that. sled is made durable lazily, by a *checkpoint*: one
//! `flush()` and one `sync_data()` of its database file (sled's own flush is
//! `sync_file_range`, not a promise against power loss), on the indexer's thread, when the
//! redo log needs its space again; on open, the groups the redo log holds past sled's head are
//! written back into sled. Several events share one sled value, kept well under sled's
//! ~128 KiB blob threshold, so no write lands in a blob file (which sled does not fsync).
//!
//! On-disk layout of `<dir>`:
//! - `<dir>/GRANTFLOW`: the marker, `grantflow store\nformat 3\n`, checked before sled ever
//!   sees the directory (sled may panic on garbage). Format 3 says the store keeps the redo
//!   log: its redo files must be there, whatever sled holds.
//! - `<dir>/redo-0`, `<dir>/redo-1`: the redo log ([`crate::redo`]): the groups acknowledged
//!   since sled's last checkpoint, and the acknowledged head, kept OUTSIDE sled, where
//!   sled's recovery cannot reach them (see "The redo log" below). Stores written before
//!   2026-11-29 kept a `<dir>/HEAD` file instead (two slots of `magic ‖ generation ‖ position
//!   ‖ hash ‖ SHA-256`): it is checked once and replaced by the redo log.
//! - `<dir>/snapshot-<name>`: a projection snapshot (`GFSNAP1\n` ‖ position (u64 BE) ‖
//!   length (u64 BE) ‖ SHA-256 of the bytes ‖ the bytes), written to a temporary file,
//!   fdatasync'ed and renamed; a cache of the log, checked on load.
//! - `<dir>/db/`: the sled database, one tree (the default one), keys by prefix:
//!
//! | key | value |
//! |---|---|
//! | `L` + first position (u64 BE) | chunk, format 2: format byte, then per event `len (u32 LE) ‖ canonical bytes ‖ hash (32)`, consecutive positions, then a trailer of the commands whose last event it holds (per command: id length (u32 LE) ‖ id ‖ body hash flag (0/1) [‖ hash] ‖ first position (u64 LE) ‖ event count (u32 LE)), then the trailer's length (u32 LE). Format 1 chunks (stores written before 2026-11-29) have no trailer. |
//! | `S` + stream + `0x00` + first version (u64 BE) | positions of those versions (u64 LE each); written by the indexer, one entry per stream per span |
//! | `V` + stream | only in stores written before 2026-11-29, no longer read: version (u64 BE) ‖ position (u64 BE); a stream's head is the last entry of its `S` keys |
//! | `C` + command id | body hash flag (0/1) [‖ hash] ‖ count (u32 LE) ‖ per event: position, version (u64 LE), stream, type (u32 LE length ‖ bytes); written by the indexer, except for a command whose id is located ([`crate::ids`]: it names the command's first position, where a lookup that misses the index finds it, in the log) |
//! | `I` | the index mark: `S` and `C` are complete through this position (u64 BE) |
//! | `M` | `grantflow store format N` (written when the database is created or upgraded from format 1; the marker file is the one that tells format 3) |
//! | `H` | head position (u64 BE) ‖ hash (32) ‖ recorded_at |
//! | `F` | present once the store kept a `HEAD` file (before the redo log) |
//! | `P` + name | only in stores written before 2026-11-29 (read when no snapshot file exists, removed when one is written): snapshot position (u64 BE) ‖ total length (u64 BE) ‖ part count (u32 BE) ‖ SHA-256 of the bytes (absent in older ones) |
//! | `Q` + name + `0x00` + part (u32 BE) | likewise: snapshot bytes, in parts of at most [`VALUE_BYTES_MAX`] |
//!
//! ## The index, off the critical path
//!
//! A group's batch holds only its chunks and `H`: a few sled writes for hundreds of events.
//! The `S` and `C` entries it implies go to the in-memory tail ([`crate::tail`]) once the
//! group is durable; when a span of [`INDEX_SPAN_EVENTS`] has gathered, an indexer thread
//! writes it to sled in key order, in slices paced by the load ([`INDEX_KEYS_PER_EVENT`] keys
//! per event of each durable group), one insert at a time (no sled `Batch`, whose global
//! write lock the writer would wait on), `I` after the span's last entry, without a flush of
//! its own (sled's log is ordered: the next checkpoint makes it durable, and a recovered
//! `I` implies the entries before it, and the groups they index). On open, the log past `I` is read back
//! into the tail, command records from the chunks' trailers. Readers look at the tail first.
//!
//! Invariants: the `H` key and the last chunk agree (checked on open); readers never see past
//! the durable head kept in memory; after a failed flush or fsync the store refuses every
//! further write (what sled holds in memory may then differ from the disk).
//!
//! ## The redo log
//!
//! sled's recovery reads its log up to the first record that fails its checksum and drops the
//! rest: a damaged or cut database file opens as a *shorter, internally consistent* store,
//! whose hash chain verifies. Nothing inside sled can tell that events are gone. The redo log,
//! outside sled, records every acknowledged head. On open (`open_redo`):
//! - sled's head **behind** the start of what the redo log holds → refused
//!   ([`StoreError::Corrupt`]: "the log ends at N but M events were acknowledged");
//! - sled's head inside it → the groups after it are written back into sled (a crash before
//!   the checkpoint: what sled held in memory only); sled's head must be where one of those
//!   groups starts, with the same hash, else "the log was rewritten";
//! - sled's head at or past its end → the hash at the acknowledged position must match;
//!   groups past it reached sled but were never acknowledged, and the redo log moves up to
//!   them (so that losing them later is noticed).
//!
//! A clean close makes sled durable and leaves the redo log holding no group, only the head.
//! A missing redo file, or a damaged record followed by good ones, is refused (the marker,
//! format 3, says the store keeps them, even when sled's whole database is gone).

use foldhash::{HashMap, HashMapExt};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::checks::{check_event_fields, check_import, check_key_text};
use crate::envelope::Envelope;
use crate::recent::Recent;
use crate::redo::{After, RedoLog};
use crate::seal::seal;
use crate::tail::{Span, StreamRun, Tail};
use crate::{
    AppendBatch, CommandRecord, EventRef, EventStore, Hash, Head, StoreError, READ_EVENTS_MAX,
    ZERO_HASH,
};

/// How long `open` waits for the directory's lock: a store just closed in this process, or
/// by a process that is still exiting, releases it once sled's flusher thread has stopped.
pub const OPEN_LOCK_WAIT_MS: u64 = 3_000;

/// sled 0.34 reports a held lock as an `Other` I/O error with this text.
fn is_lock_error(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Opens sled, waiting up to [`OPEN_LOCK_WAIT_MS`] for another holder of the lock to let go;
/// a panic inside sled (a damaged database) becomes an error.
fn open_locked(config: &sled::Config, db_dir: &Path) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    loop {
        // sled 0.34 may panic on a damaged database: turn that into an error.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
        match opened {
            Ok(Ok(db)) => return Ok(db),
            Ok(Err(error))
                if is_lock_error(&error)
                    && started.elapsed().as_millis() < u128::from(OPEN_LOCK_WAIT_MS) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(Err(error)) => {
                let hint = if is_lock_error(&error) {
                    " (another grantflow process has this store open)"
                } else {
                    ""
                };
                return Err(StoreError::Io(format!(
                    "opening {}: {error}{hint}",
                    db_dir.display()
                )));
            }
            Err(_) => {
                return Err(StoreError::Corrupt {
                    position: 0,
                    detail: format!("sled panicked opening {}", db_dir.display()),
                })
            }
        }
    }
}

/// How grantflow configures sled for the database directory `db_dir` (`<data dir>/db`):
/// cache, flusher and segment size (the one an existing database was created with). Tools
/// and tests that open the database directly must open it with this.
pub fn sled_config(db_dir: &Path) -> Result<sled::Config, StoreError> {
    Ok(sled::Config::new()
        .path(db_dir)
        .cache_capacity(CACHE_CAPACITY_BYTES)
        .segment_size(segment_bytes(db_dir)?)
        .flush_every_ms(Some(FLUSH_EVERY_MS)))
}

/// Opens the sled database in `db_dir` (`<data dir>/db`) configured as grantflow opens it,
/// waiting up to [`OPEN_LOCK_WAIT_MS`] for the lock like [`SledStore::open`]: a store dropped
/// in this process releases it only once its indexer and sled's flusher threads have let go.
/// For tools and tests that read or tamper with the database directly.
pub fn open_sled(db_dir: &Path) -> Result<sled::Db, StoreError> {
    open_locked(&sled_config(db_dir)?, db_dir)
}

/// The segment size to open sled with: the one recorded in an existing database's `conf`
/// file (sled refuses any other), else [`SEGMENT_BYTES`].
fn segment_bytes(db_dir: &Path) -> Result<usize, StoreError> {
    let path = db_dir.join(SLED_CONF_FILE_NAME);
    let text = match fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(SEGMENT_BYTES),
        Err(error) => return Err(io_err(format!("reading {}", path.display()))(error)),
    };
    let recorded = text.lines().find_map(|line| {
        line.strip_prefix("segment_size:")
            .and_then(|value| value.trim().parse::<usize>().ok())
    });
    match recorded {
        Some(bytes) if bytes.is_power_of_two() && (256..=1 << 24).contains(&bytes) => Ok(bytes),
        _ => Err(StoreError::Corrupt {
            position: 0,
            detail: format!("{} holds no valid segment_size", path.display()),
        }),
    }
}

/// The store format this build writes and the newest it reads. Format 2 (2026-11-29) keeps
/// the index entries of the newest events in memory (see [`crate::tail`]) and the command
/// records in the log chunks; a format 1 store, which wrote every index entry with its group,
/// is upgraded when opened. Format 3 (2026-11-29) keeps the redo log ([`crate::redo`]): its
/// groups may be missing from sled, so a build that does not know it must not open the store;
/// a format 1 or 2 store gets one when opened (after its HEAD file, if any, is checked).
pub const STORE_FORMAT: u32 = 3;
/// The first format with the redo log.
const REDO_STORE_FORMAT: u32 = 3;
/// The marker file that tells a grantflow store from any other directory.
pub const MARKER_FILE_NAME: &str = "GRANTFLOW";
/// The marker's first line.
const MARKER_MAGIC: &str = "grantflow store";
/// Where the marker is written before being renamed into place.
const MARKER_TEMP_FILE_NAME: &str = "GRANTFLOW.tmp";
/// The sled database's directory inside the data directory.
const DB_DIR_NAME: &str = "db";
/// sled's database file inside its directory (sled 0.34: `<path>/db`).
const DB_FILE_NAME: &str = "db";
/// How large the marker file may be before it is not a marker.
const MARKER_BYTES_MAX: u64 = 4096;

/// sled's page cache: its resident memory follows this (its default is 1 GiB).
pub const CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;
/// sled's background flusher period (which is also when sled itself fsyncs). Groups reach
/// sled's memory without sealing its I/O buffer (see `write_group`), so the flusher is what
/// writes it out between checkpoints: every 50 ms, so that each write is small. With sled's
/// default of 1 s a buffer of 4 MB went out at once and stalled the groups behind it (HTTP
/// p99 22 to 29 ms against 12 ms; BENCHMARKS.md, seventh session).
pub const FLUSH_EVERY_MS: u64 = 50;
/// sled's segment (and I/O buffer) size for new stores. sled writes any page whose
/// serialized size is over a quarter of it to a separate *blob* file, which it reads back
/// whole and never fsyncs; a leaf holds up to 17 values, so with the default 512 KiB a leaf
/// of log chunks went to a blob. At 8 MiB a leaf of 17 values of [`VALUE_BYTES_MAX`]
/// (1.1 MiB) stays well under the 2 MiB threshold: every write lands in the fsynced db file.
/// Stores created with another size keep theirs (sled cannot change it; see `segment_bytes`).
pub const SEGMENT_BYTES: usize = 8 * 1024 * 1024;
/// sled's configuration file inside its directory, which records the segment size.
const SLED_CONF_FILE_NAME: &str = "conf";
/// The largest event record a log chunk holds (stores before 2026-11-29 also wrote snapshot
/// parts this large).
pub const VALUE_BYTES_MAX: usize = 64 * 1024;
/// The largest log chunk: one record of [`VALUE_BYTES_MAX`] and its command's trailer entry
/// (id length, id, body hash flag and hash, first position, count) and the trailer's length.
/// A chunk of several records holds at most [`CHUNK_BYTES_TARGET`] bytes of them, and a
/// trailer entry (the id and 49 bytes) is smaller than its command's last record (the
/// envelope holds the id and far more than 49 bytes beside it), so such a chunk is under
/// twice the target.
const CHUNK_BYTES_MAX: usize = VALUE_BYTES_MAX + (4 + KEY_TEXT_BYTES_MAX + 1 + 32 + 8 + 4) + 4;
// A leaf of 17 of the largest chunks stays under sled's blob threshold (see SEGMENT_BYTES).
const _: () = assert!(17 * (CHUNK_BYTES_MAX + 64) < SEGMENT_BYTES / 4);
/// A log chunk is closed once it holds this many bytes (a group writes
/// ceil(bytes / this) chunks).
pub const CHUNK_BYTES_TARGET: usize = 16 * 1024;
pub use crate::checks::{EVENT_BYTES_MAX, KEY_TEXT_BYTES_MAX};
// Any event fits one chunk under VALUE_BYTES_MAX; a chunk of several records and their
// trailer stays under CHUNK_BYTES_MAX.
const _: () = assert!(2 * CHUNK_BYTES_TARGET + 5 < CHUNK_BYTES_MAX);
const _: () = assert!(EVENT_BYTES_MAX == VALUE_BYTES_MAX - CHUNK_RECORD_OVERHEAD_BYTES - 1);
/// An import is written in durable groups of at most this many events.
pub const IMPORT_GROUP_EVENTS_MAX: usize = 10_000;
/// The stream- and command-index entries of this many events gather in memory (see
/// [`crate::tail`]) before the indexer writes them to sled; at most about twice this many
/// events are read again on open to rebuild what was not written.
pub const INDEX_SPAN_EVENTS: u64 = 16_384;
/// The most events whose index entries may wait in memory (see [`crate::tail`]): past it, the
/// thread that appends a group writes index slices itself until the tail is back under it.
/// The indexer thread keeps the tail near [`INDEX_SPAN_EVENTS`]; when it falls behind (its
/// CPU taken, or sled's inserts slowed by a busy disk), without a bound the tail would grow
/// with the log, a few hundred bytes per command (about 26 MiB at the bound).
/// `GRANTFLOW_TAIL_EVENTS_MAX` in the environment, read when a store is opened, overrides it
/// (a test uses a few hundred).
pub const TAIL_EVENTS_MAX: u64 = 8 * INDEX_SPAN_EVENTS;
/// The environment variable that overrides [`TAIL_EVENTS_MAX`].
pub const TAIL_EVENTS_MAX_ENV: &str = "GRANTFLOW_TAIL_EVENTS_MAX";

fn tail_events_max() -> u64 {
    std::env::var(TAIL_EVENTS_MAX_ENV)
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|max| *max > 0)
        .unwrap_or(TAIL_EVENTS_MAX)
}

/// After each group the store writes this many index keys per event of the group (a span
/// has about one stream entry per stream and one command entry per command, so the index
/// keeps well ahead of the log) ...
pub const INDEX_KEYS_PER_EVENT: u64 = 2;
/// ... but at least this many ...
pub const INDEX_SLICE_KEYS_MIN: usize = 32;
/// ... and at most this many (a sled batch holds sled's global write lock).
pub const INDEX_SLICE_KEYS_MAX: usize = 1_024;
/// The file that held the durable head outside sled before the redo log (stores written
/// before 2026-11-29; checked once, then removed).
pub const HEAD_FILE_NAME: &str = "HEAD";
/// The HEAD file's size: two slots, the second one a page away from the first.
pub const HEAD_FILE_BYTES: u64 = HEAD_SLOT_B_OFFSET + HEAD_RECORD_BYTES as u64;
/// The offset of the HEAD file's second slot (its own 4 KiB page).
pub const HEAD_SLOT_B_OFFSET: u64 = 4096;
/// One HEAD record: magic, generation, position, hash, checksum.
const HEAD_RECORD_BYTES: usize = 8 + 8 + 8 + 32 + 32;
/// A HEAD record's first bytes.
const HEAD_RECORD_MAGIC: &[u8; 8] = b"GFHEAD1\n";

/// A chunk value's first byte.
const CHUNK_FORMAT_V1: u8 = 1;
/// The chunk format written now: format byte, records as in format 1, then a trailer with
/// the commands whose last event the chunk holds, then the trailer's length (u32 LE).
const CHUNK_FORMAT: u8 = 2;
/// Per event in a chunk: length prefix and hash.
const CHUNK_RECORD_OVERHEAD_BYTES: usize = 4 + 32;

const PREFIX_CHUNK: u8 = b'L';
const PREFIX_STREAM_INDEX: u8 = b'S';
// Stores before 2026-11-29 also wrote `V` + stream (the stream's head); it is left unread.
const PREFIX_COMMAND: u8 = b'C';
const PREFIX_SNAPSHOT: u8 = b'P';
const PREFIX_SNAPSHOT_PART: u8 = b'Q';
const HEAD_KEY: &[u8] = b"H";
const FORMAT_KEY: &[u8] = b"M";
/// Present once the store kept a HEAD file (before the redo log).
const HEAD_FILE_FLAG_KEY: &[u8] = b"F";
/// The index mark: the `S` and `C` keys are complete through this position (u64 BE).
const INDEXED_KEY: &[u8] = b"I";

/// Each stream's last (version, position).
type StreamHeads = HashMap<String, (u64, u64)>;

/// How much index work the indexer thread may do: each durable group allows
/// [`INDEX_KEYS_PER_EVENT`] keys per event, so that the index keeps up with the log and its
/// cost follows the load evenly instead of coming in bursts (a burst of sled inserts on the
/// other core doubled the writer's p99 latency).
#[derive(Default)]
struct IndexPacer {
    orders: Mutex<PacerOrders>,
    wake: std::sync::Condvar,
}

#[derive(Default)]
struct PacerOrders {
    /// Keys the indexer may write now.
    budget: u64,
    /// The store is gone.
    stop: bool,
    /// A checkpoint is wanted (see [`crate::redo`]).
    checkpoint: bool,
}

/// What the indexer thread does next.
enum IndexerWork {
    /// A slice of the index, of this many keys.
    Index(usize),
    /// A checkpoint: make sled durable, so that the redo log may move on.
    Checkpoint,
}

impl IndexPacer {
    fn allow(&self, keys: u64) {
        let mut orders = lock(&self.orders);
        orders.budget = orders.budget.saturating_add(keys);
        self.wake.notify_one();
    }

    fn stop(&self) {
        lock(&self.orders).stop = true;
        self.wake.notify_one();
    }

    fn request_checkpoint(&self) {
        lock(&self.orders).checkpoint = true;
        self.wake.notify_one();
    }

    /// Waits for a budget or a checkpoint request; `None` once stopped.
    fn next_work(&self) -> Option<IndexerWork> {
        let mut orders = lock(&self.orders);
        while orders.budget == 0 && !orders.stop && !orders.checkpoint {
            orders = match self.wake.wait(orders) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
        if orders.stop {
            return None;
        }
        if orders.checkpoint {
            orders.checkpoint = false;
            return Some(IndexerWork::Checkpoint);
        }
        let slice = orders.budget.min(INDEX_SLICE_KEYS_MAX as u64);
        orders.budget -= slice;
        Some(IndexerWork::Index(
            slice.max(INDEX_SLICE_KEYS_MIN as u64) as usize
        ))
    }

    /// Nothing was waiting to be written: what was allowed meanwhile is not saved up.
    fn idle(&self) {
        lock(&self.orders).budget = 0;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.pacer.stop();
    }
}

/// Starts the store's indexer thread: it writes the index slice by slice as the pacer allows,
/// makes checkpoints when the redo log asks, and ends when the store is dropped (it holds
/// only a weak reference to it).
fn spawn_indexer(inner: &Arc<Inner>, pacer: Arc<IndexPacer>) -> Result<(), StoreError> {
    let store = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name("grantflow-indexer".to_string())
        .spawn(move || {
            while let Some(work) = pacer.next_work() {
                let Some(inner) = store.upgrade() else {
                    return;
                };
                match work {
                    IndexerWork::Index(budget) => {
                        if !inner.index_step(budget) {
                            pacer.idle();
                        }
                    }
                    IndexerWork::Checkpoint => inner.checkpoint(),
                }
            }
        })
        .map(|_| ())
        .map_err(|error| StoreError::Io(format!("starting the indexer thread: {error}")))
}

/// A span of the tail on its way to sled: its entries in key order (sled's leaves then take
/// their inserts one after another), and the last position it covers.
struct Indexing {
    through: u64,
    entries: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
}

impl Indexing {
    fn of(span: &Span) -> Indexing {
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = span
            .streams
            .iter()
            .map(|(stream, run)| {
                let mut value = Vec::with_capacity(run.positions.len() * 8);
                for position in &run.positions {
                    value.extend_from_slice(&position.to_le_bytes());
                }
                (stream_index_key(stream, run.first_version), value)
            })
            .chain(
                span.commands
                    .values()
                    .filter(|record| !is_located(record))
                    .map(|record| (command_key(&record.command_id), encode_command(record))),
            )
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Indexing {
            through: span.through,
            entries: entries.into_iter(),
        }
    }
}

/// Whether the command's id names its first position ([`crate::ids`]): such a command is
/// found in the log from its id, and gets no `C` entry.
fn is_located(record: &CommandRecord) -> bool {
    let first = record.events.first().map(|event| event.position);
    first.is_some() && crate::ids::located_position(&record.command_id) == first
}

/// A group ready to apply: its sled writes (without the head) and the index entries it
/// implies (for the tail).
struct GroupWrite {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Per stream touched: first version and positions.
    streams: Vec<(String, u64, Vec<u64>)>,
    /// The records of the commands that appended events.
    commands: Vec<CommandRecord>,
}

/// Command ids that a lookup ([`EventStore::commands`]) found absent from the index, so that
/// the append that follows (the writer looks its client ids up before deciding) need not
/// look them up again. Every commit counts itself and drops its own ids; a lookup that
/// overlapped a commit remembers nothing.
#[derive(Default)]
struct AbsentIds {
    commits: u64,
    ids: foldhash::HashSet<String>,
}

/// The most ids [`AbsentIds`] holds; beyond it the set starts again empty.
const ABSENT_IDS_MAX: usize = 65_536;

/// The sled-backed event log. Cheap to clone (clones share the store).
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    tree: sled::Db,
    /// sled's database file, for `sync_data` after each group's `flush()`.
    db_file: fs::File,
    /// Serialises appends and imports (there is one writer; this makes it so).
    write_lock: Mutex<()>,
    /// Serialises snapshot saves (they replace several keys).
    snapshot_lock: Mutex<()>,
    /// The durable head: readers never go past it.
    head: Mutex<Head>,
    /// Command ids known absent from the index (see [`AbsentIds`]).
    absent_ids: Mutex<AbsentIds>,
    /// The durable (version, position) of each stream looked up or written so far; a stream
    /// has a few dozen bytes here, so a fund's many thousands of grants stay a few MB.
    stream_heads: Mutex<HashMap<String, (u64, u64)>>,
    /// The index entries not yet in sled (see [`crate::tail`]).
    tail: Mutex<Tail>,
    /// The span of the tail being written to sled, slice by slice.
    indexing: Mutex<Option<Indexing>>,
    /// Paces the indexer thread (which holds only a weak reference to this).
    pacer: Arc<IndexPacer>,
    /// The redo log (see [`crate::redo`]; written under `write_lock`).
    redo: Mutex<RedoLog>,
    /// sled is durable through this position (the last checkpoint's).
    synced: AtomicU64,
    head_tx: watch::Sender<u64>,
    /// The newest durable groups' envelopes, for the readers that follow the log live.
    recent: Recent,
    closed: AtomicBool,
    /// Set when a write may have reached sled's memory but not the disk.
    failed: AtomicBool,
    /// [`TAIL_EVENTS_MAX`], or what the environment says.
    tail_events_max: u64,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens the store in `dir`, creating it when the directory is absent or empty.
    /// A directory with other content and no grantflow marker is [`StoreError::NotAStore`];
    /// a marker from a newer grantflow is [`StoreError::NewerFormat`]. Blocking (file I/O and
    /// sled's recovery): call it before starting the runtime or in `spawn_blocking`.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        match fs::metadata(dir) {
            Ok(meta) if !meta.is_dir() => {
                return Err(not_a_store(dir, "it is a file, not a directory"))
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
            }
            Err(error) => return Err(io_err(format!("reading {}", dir.display()))(error)),
        }
        if !dir.join(MARKER_FILE_NAME).exists() {
            if let Some(entry) = first_foreign_entry(dir)? {
                return Err(not_a_store(
                    dir,
                    &format!("it holds {entry:?} and no {MARKER_FILE_NAME} marker"),
                ));
            }
            write_marker(dir)?;
        }
        Self::open_marked(dir)
    }

    /// Opens an existing store; [`StoreError::NotAStore`] when `dir` holds none (for verbs
    /// that only read).
    pub fn open_existing(dir: &Path) -> Result<SledStore, StoreError> {
        if !dir.is_dir() {
            return Err(not_a_store(dir, "no such directory"));
        }
        if !dir.join(MARKER_FILE_NAME).exists() {
            return Err(not_a_store(dir, &format!("no {MARKER_FILE_NAME} marker")));
        }
        Self::open_marked(dir)
    }

    /// Events whose stream- and command-index entries are still in memory only (see
    /// [`crate::tail`]): at most about [`TAIL_EVENTS_MAX`] plus one group.
    pub fn unindexed_events(&self) -> u64 {
        self.inner.tail_events()
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn open_marked(dir: &Path) -> Result<SledStore, StoreError> {
        let marker_format = check_marker(dir)?;
        let db_dir = dir.join(DB_DIR_NAME);
        let db_file_path = db_dir.join(DB_FILE_NAME);
        // sled reads a damaged file as an empty database: remember whether there was one.
        let had_database = fs::metadata(&db_file_path).is_ok_and(|meta| meta.len() > 0);
        let config = sled_config(&db_dir)?;
        let tree = open_locked(&config, &db_dir)?;
        let db_file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&db_file_path)
            .map_err(io_err(format!("opening {}", db_file_path.display())))?;
        check_format_record(dir, &tree, &db_file, had_database)?;
        // Checked once the redo log has written back what a crash cut short (`open_redo`).
        let head = read_head(&tree)?;
        let (redo, head, synced) =
            open_redo(dir, &tree, &db_file, head, marker_format, had_database)?;
        let indexed = open_index_mark(&tree, &db_file, &head)?;
        let (tail, stream_heads) = rebuild_tail(&tree, indexed, head.position)?;
        let (head_tx, _) = watch::channel(head.position);
        let pacer = Arc::new(IndexPacer::default());
        let inner = Arc::new(Inner {
            path: dir.to_path_buf(),
            tree,
            db_file,
            write_lock: Mutex::new(()),
            snapshot_lock: Mutex::new(()),
            head: Mutex::new(head),
            stream_heads: Mutex::new(stream_heads),
            absent_ids: Mutex::new(AbsentIds::default()),
            tail: Mutex::new(tail),
            indexing: Mutex::new(None),
            pacer: Arc::clone(&pacer),
            redo: Mutex::new(redo),
            synced: AtomicU64::new(synced),
            head_tx,
            recent: Recent::default(),
            closed: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            tail_events_max: tail_events_max(),
        });
        spawn_indexer(&inner, pacer)?;
        Ok(SledStore { inner })
    }

    /// Runs `work` on a blocking thread: sled reads and flushes never block the runtime.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|error| StoreError::Io(format!("store task failed: {error}")))?
    }
}

#[async_trait]
impl EventStore for SledStore {
    async fn head(&self) -> Result<Head, StoreError> {
        Ok(self.inner.durable_head())
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Vec<EventRef>>, StoreError> {
        self.blocking(move |inner| inner.append(batch)).await
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        // A subscriber that has caught up asks for the newest events: from memory, on this
        // thread, without a blocking thread's wake-up.
        if let Some(events) = self.inner.read_recent(from, limit) {
            return Ok(events);
        }
        self.blocking(move |inner| inner.read(from, limit)).await
    }

    async fn read_payloads(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<crate::PayloadPage, StoreError> {
        self.blocking(move |inner| inner.read_payloads(from, limit))
            .await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let stream = stream.to_string();
        self.blocking(move |inner| inner.read_stream(&stream, from_version, limit))
            .await
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        let stream = stream.to_string();
        self.blocking(move |inner| inner.durable_stream_version(&stream))
            .await
    }

    async fn command(&self, command_id: &str) -> Result<Option<CommandRecord>, StoreError> {
        let command_id = command_id.to_string();
        self.blocking(move |inner| inner.durable_command(&command_id))
            .await
    }

    async fn commands(
        &self,
        command_ids: Vec<String>,
    ) -> Result<Vec<Option<CommandRecord>>, StoreError> {
        self.blocking(move |inner| inner.durable_commands(&command_ids))
            .await
    }

    async fn import(&self, events: Vec<Envelope>) -> Result<(), StoreError> {
        self.blocking(move |inner| inner.import(events)).await
    }

    async fn save_snapshot(
        &self,
        name: &str,
        position: u64,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let name = name.to_string();
        self.blocking(move |inner| inner.save_snapshot(&name, position, &bytes))
            .await
    }

    async fn load_snapshot(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let name = name.to_string();
        self.blocking(move |inner| inner.load_snapshot(&name)).await
    }

    fn exclusive(&self) -> bool {
        true
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.head_tx.subscribe()
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.blocking(|inner| {
            let _writer = lock(&inner.write_lock);
            inner.closed.store(true, Ordering::SeqCst);
            inner.index_all()?;
            inner.make_durable("closing")?;
            // sled holds everything: the redo log's groups are no longer needed.
            let head = inner.durable_head();
            lock(&inner.redo).reset(&head)
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Writing

impl Inner {
    fn durable_head(&self) -> Head {
        lock(&self.head).clone()
    }

    /// The positions a read of `limit` events from `from` names: never past the durable
    /// head, at most [`READ_EVENTS_MAX`]; `None` when it names none.
    fn read_range(&self, from: u64, limit: usize) -> Option<(u64, u64)> {
        let from = from.max(1);
        let head = lock(&self.head).position;
        let limit = limit.min(READ_EVENTS_MAX) as u64;
        if from > head || limit == 0 {
            return None;
        }
        Some((from, head.min(from.saturating_add(limit - 1))))
    }

    /// [`Inner::read`]'s answer when memory holds every event it names: `None` otherwise.
    fn read_recent(&self, from: u64, limit: usize) -> Option<Vec<Envelope>> {
        match self.read_range(from, limit) {
            Some((from, end)) => self.recent.read(from, end),
            None => Some(Vec::new()),
        }
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Io("the store is closed".to_string()));
        }
        if self.failed.load(Ordering::SeqCst) {
            return Err(StoreError::Io(
                "an earlier write could not be made durable; reopen the store".to_string(),
            ));
        }
        Ok(())
    }

    fn append(&self, batch: AppendBatch) -> Result<Vec<Vec<EventRef>>, StoreError> {
        let _writer = lock(&self.write_lock);
        self.check_writable()?;
        let head = self.durable_head();
        if batch.expected_head != head.position {
            return Err(StoreError::Conflict(format!(
                "expected head {}, the log is at {}",
                batch.expected_head, head.position
            )));
        }
        let mut versions: HashMap<String, u64> = HashMap::new();
        for (stream, expected) in &batch.expected_versions {
            let stored = self.stored_stream_version(stream)?;
            if stored != *expected {
                return Err(StoreError::Conflict(format!(
                    "stream {stream} expected at version {expected}, it is at {stored}"
                )));
            }
            versions.insert(stream.clone(), stored);
        }
        self.check_new_commands(&batch)?;
        if batch.commands.is_empty() {
            return Ok(Vec::new());
        }

        let sealed = seal(&head, batch.commands, |stream| match versions.get(stream) {
            Some(version) => Ok(*version),
            None => self.stored_stream_version(stream),
        })?;
        let mut group = Group::default();
        for (envelope, canonical) in &sealed.events {
            group.push_event(envelope, canonical);
        }
        group.commands = sealed.commands;
        let new_head = sealed.head;
        let results = sealed.refs;
        let envelopes = sealed.events.into_iter().map(|(envelope, _)| envelope);
        self.commit(group.into_write(), new_head, envelopes.collect())?;
        Ok(results)
    }

    /// Refuses, before anything is written, what cannot be stored: an event too large for a
    /// chunk, a payload that is not a compact JSON object, a bad stream name, a command id
    /// already recorded or given twice.
    fn check_new_commands(&self, batch: &AppendBatch) -> Result<(), StoreError> {
        let mut seen = foldhash::HashSet::default();
        let mut absent = lock(&self.absent_ids);
        for command in &batch.commands {
            check_key_text("command id", &command.command_id).map_err(StoreError::Io)?;
            // A fresh id (the engine's own) cannot be in the index: not looked up.
            if !seen.insert(command.command_id.as_str())
                || (!command.fresh_id
                    && !absent.ids.remove(&command.command_id)
                    && self.command_known(&command.command_id)?)
            {
                return Err(StoreError::Conflict(format!(
                    "command id {:?} is already recorded",
                    command.command_id
                )));
            }
            for event in &command.events {
                check_event_fields(&event.stream, &event.payload).map_err(StoreError::Io)?;
            }
        }
        Ok(())
    }

    /// Whether the command index (the tail, then sled) holds the id.
    fn command_known(&self, command_id: &str) -> Result<bool, StoreError> {
        if lock(&self.tail).contains_command(command_id) {
            return Ok(true);
        }
        if self
            .tree
            .contains_key(command_key(command_id))
            .map_err(sled_err("reading the command index"))?
        {
            return Ok(true);
        }
        // Through the whole log written, durable or not: the caller holds the write lock.
        Ok(self.located_command(command_id, u64::MAX)?.is_some())
    }

    /// The record of a command whose located id ([`crate::ids`]) names its first position,
    /// read from the log (no index entry is kept for it) through position `through`; `None`
    /// when the id is not located or no such command is there. The chunk holding the
    /// command's last event records it in its trailer.
    fn located_command(
        &self,
        command_id: &str,
        through: u64,
    ) -> Result<Option<CommandRecord>, StoreError> {
        let Some(first) = crate::ids::located_position(command_id) else {
            return Ok(None);
        };
        let Some(item) = self.tree.range(chunk_key(0)..=chunk_key(first)).next_back() else {
            return Ok(None);
        };
        let (key, value) = item.map_err(sled_err("reading the log"))?;
        let mut chunk = Chunk::decode(parse_chunk_key(&key, first)?, value)?;
        if !chunk.contains(first) || chunk.envelope(first)?.command_id != command_id {
            return Ok(None);
        }
        loop {
            let entries = chunk.trailer_entries()?;
            if let Some(entry) = entries
                .into_iter()
                .find(|entry| entry.command_id == command_id)
            {
                let last = first + entry.count.saturating_sub(1);
                if entry.first_position != first || entry.count == 0 || last > through {
                    return Ok(None);
                }
                let mut events = Vec::with_capacity(entry.count as usize);
                for position in first..=last {
                    let envelope = if chunk.contains(position) {
                        chunk.envelope(position)?
                    } else {
                        self.chunk_holding(position)?.envelope(position)?
                    };
                    events.push(EventRef::of(&envelope));
                }
                return Ok(Some(CommandRecord {
                    command_id: command_id.to_string(),
                    body_hash: entry.body_hash,
                    events,
                }));
            }
            // The command goes on in the next chunk only if it holds this one's last event.
            let next = chunk.last() + 1;
            if next > through || chunk.envelope(chunk.last())?.command_id != command_id {
                return Ok(None);
            }
            chunk = match self.chunk_holding(next) {
                Ok(chunk) => chunk,
                Err(StoreError::Corrupt { .. }) if next > self.durable_head().position => {
                    return Ok(None)
                }
                Err(error) => return Err(error),
            };
        }
    }

    /// Writes a group to the redo log (one write, one `fdatasync`), then to sled as one batch
    /// (memory only: see [`crate::redo`]); only then hands `envelopes` (the group's events,
    /// or none) to [`Recent`], adds its index entries to the tail, moves the durable head
    /// and wakes subscribers; then lets the indexer write a slice of the index.
    fn commit(
        &self,
        write: GroupWrite,
        new_head: Head,
        envelopes: Vec<Envelope>,
    ) -> Result<(), StoreError> {
        let GroupWrite {
            entries,
            streams,
            commands,
        } = write;
        let after = match self.write_group(entries, &new_head) {
            Ok(after) => after,
            Err(error) => {
                // The redo log or sled's memory may now hold a group that was not
                // acknowledged: refuse to build on it.
                self.failed.store(true, Ordering::SeqCst);
                return Err(error);
            }
        };
        if after == After::Checkpoint {
            self.pacer.request_checkpoint();
        }
        // Durable: held for readers before the head that lets them ask for it moves.
        self.recent.push(envelopes);
        let mut heads = Vec::with_capacity(streams.len());
        let command_ids: Vec<String> = commands.iter().map(|r| r.command_id.clone()).collect();
        let events: u64 = streams
            .iter()
            .map(|(_, _, positions)| positions.len() as u64)
            .sum();
        let unindexed = {
            let mut tail = lock(&self.tail);
            for (stream, first_version, positions) in &streams {
                if let Err(error) = tail.live.add_stream(stream, *first_version, positions) {
                    self.failed.store(true, Ordering::SeqCst);
                    return Err(error);
                }
            }
            for record in commands {
                tail.live.add_command(record);
            }
            tail.unindexed_events()
        };
        {
            // Whatever a lookup found absent may be in this group now (a lookup that began
            // before the tail held the group counts as overlapping it).
            let mut absent = lock(&self.absent_ids);
            absent.commits += 1;
            for command_id in &command_ids {
                absent.ids.remove(command_id);
            }
        }
        for (stream, first_version, positions) in streams {
            if let Some(&last) = positions.last() {
                heads.push((stream, (first_version + positions.len() as u64 - 1, last)));
            }
        }
        let position = new_head.position;
        *lock(&self.head) = new_head;
        lock(&self.stream_heads).extend(heads);
        self.head_tx.send_replace(position);
        self.pacer
            .allow(events.saturating_mul(INDEX_KEYS_PER_EVENT));
        if unindexed > self.tail_events_max {
            self.keep_tail_bounded();
        }
        Ok(())
    }

    /// Events whose index entries are in memory only.
    fn tail_events(&self) -> u64 {
        lock(&self.tail).unindexed_events()
    }

    /// When the indexer has fallen behind, writes index slices on this (the appending)
    /// thread until the tail is under [`TAIL_EVENTS_MAX`]: the writer slows down, the memory
    /// stays bounded. The group is durable already; a failure here stops the store's later
    /// writes, as the indexer's does.
    fn keep_tail_bounded(&self) {
        while self.tail_events() > self.tail_events_max {
            match self.write_index_slice(0, INDEX_SLICE_KEYS_MAX) {
                Ok(false) => {}
                Ok(true) => return,
                Err(error) => {
                    tracing::error!(%error, "cannot write the stream and command index");
                    self.failed.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }

    /// Records a group durably in the redo log, then applies it to sled.
    fn write_group(
        &self,
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        new_head: &Head,
    ) -> Result<After, StoreError> {
        let synced = self.synced.load(Ordering::SeqCst);
        let after = lock(&self.redo).append(new_head, &entries, synced)?;
        // One insert at a time, the head last, not a sled `Batch`. `apply_batch` takes sled's
        // global write lock and seals sled's I/O buffer twice (`pin_log`): every group cost
        // one or two writes of a small buffer to sled's file, each waited on with
        // `sync_file_range`, on the critical path's thread pool and in the device's queue
        // ahead of the next group's `fdatasync`. The group is durable in the redo log already;
        // sled recovers a prefix of its log, so a recovered head implies the group's entries,
        // and a group cut short (entries without the head) is written again, with the same
        // values, from the redo log on open. sled's flusher writes the buffer instead, every
        // `FLUSH_EVERY_MS`.
        for (key, value) in entries {
            self.tree
                .insert(key, value)
                .map_err(sled_err("writing a group of events"))?;
        }
        self.tree
            .insert(HEAD_KEY, encode_head(new_head))
            .map_err(sled_err("writing the head of a group"))?;
        Ok(after)
    }

    /// Makes sled durable through the durable head (on the indexer's thread), so that the
    /// redo log may write over the groups before it. A failure stops the store's writes.
    fn checkpoint(&self) {
        if self.failed.load(Ordering::SeqCst) {
            return;
        }
        // Every group through the durable head is in sled's memory (it moves after).
        let target = self.durable_head().position;
        match self.make_durable("making sled durable for the redo log") {
            Ok(()) => {
                self.synced.fetch_max(target, Ordering::SeqCst);
            }
            Err(error) => {
                tracing::error!(%error, "cannot make sled durable");
                self.failed.store(true, Ordering::SeqCst);
            }
        }
    }

    /// One slice of the indexer's work, given `budget` keys (see [`IndexPacer`]); false
    /// when there was nothing to write. A failure stops the store's writes (the groups are
    /// durable; the span stays in memory for readers).
    fn index_step(&self, budget: usize) -> bool {
        match self.write_index_slice(INDEX_SPAN_EVENTS, budget) {
            Ok(done) => !done,
            Err(error) => {
                tracing::error!(%error, "cannot write the stream and command index");
                self.failed.store(true, Ordering::SeqCst);
                false
            }
        }
    }

    /// Writes up to `budget` keys of the span being written, starting one from a live span
    /// of at least `min_events`; true once nothing is left to write.
    fn write_index_slice(&self, min_events: u64, budget: usize) -> Result<bool, StoreError> {
        let mut indexing = lock(&self.indexing);
        if indexing.is_none() {
            let Some(span) = lock(&self.tail).freeze(min_events) else {
                return Ok(true);
            };
            *indexing = Some(Indexing::of(&span));
        }
        let Some(current) = indexing.as_mut() else {
            return Ok(true);
        };
        // One insert at a time, not a sled `Batch`: `apply_batch` takes sled's global write
        // lock for the whole slice (the writer's group waited behind it) and seals the I/O
        // buffer (one more write to the file per slice). Nothing here needs a batch: sled
        // recovers a prefix of its log, so a recovered index mark (inserted last, after the
        // span's every entry) implies the entries; a span cut short is rebuilt from the log.
        for (key, value) in current.entries.by_ref().take(budget) {
            self.tree
                .insert(key, value)
                .map_err(sled_err("writing the index"))?;
        }
        let done = current.entries.len() == 0;
        if done {
            self.tree
                .insert(INDEXED_KEY, &current.through.to_be_bytes()[..])
                .map_err(sled_err("writing the index mark"))?;
        }
        if done {
            let span = lock(&self.tail).written(current.through);
            *indexing = None;
            drop(indexing);
            // Freed here, not under the tail's lock, which every commit and lookup takes.
            drop(span);
        }
        Ok(false)
    }

    /// Writes the whole tail (on close, so that the next open has nothing to rebuild).
    fn index_all(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        while !self.write_index_slice(0, usize::MAX)? {}
        Ok(())
    }

    fn make_durable(&self, context: &str) -> Result<(), StoreError> {
        make_durable(&self.tree, &self.db_file, context)
    }

    fn import(&self, events: Vec<Envelope>) -> Result<(), StoreError> {
        let _writer = lock(&self.write_lock);
        self.check_writable()?;
        let head = self.durable_head();
        let commands = self.check_import(&head, &events)?;
        // Each command's record is written with the group holding its last event.
        let mut record_of_last_position: HashMap<u64, Vec<CommandRecord>> = HashMap::new();
        for record in commands {
            if let Some(last) = record.events.last() {
                record_of_last_position
                    .entry(last.position)
                    .or_default()
                    .push(record);
            }
        }
        for slice in events.chunks(IMPORT_GROUP_EVENTS_MAX) {
            let mut group = Group::default();
            for envelope in slice {
                group.push_event(envelope, &envelope.canonical_bytes());
                if let Some(records) = record_of_last_position.remove(&envelope.position) {
                    group.commands.extend(records);
                }
            }
            let Some(last) = slice.last() else { continue };
            let new_head = Head {
                position: last.position,
                hash: last.hash,
                recorded_at: last.recorded_at.clone(),
            };
            // Not kept in memory: the next group appended starts a new run there.
            self.commit(group.into_write(), new_head, Vec::new())?;
        }
        Ok(())
    }

    /// Checks a whole import before writing any of it; returns the command records to write.
    fn check_import(
        &self,
        head: &Head,
        events: &[Envelope],
    ) -> Result<Vec<CommandRecord>, StoreError> {
        check_import(
            head,
            events,
            |stream| self.stored_stream_version(stream),
            |command_id| self.command_known(command_id),
        )
    }

    /// Writes a snapshot to its own file beside the database (see [`snapshot_file_name`]):
    /// temporary file, fdatasync, rename, directory sync. A snapshot kept in sled by an older
    /// store is removed once its file exists. (In sled, a 13 MB snapshot cost over 50 MB of
    /// sled's memory while written.)
    fn save_snapshot(&self, name: &str, position: u64, bytes: &[u8]) -> Result<(), StoreError> {
        check_key_text("snapshot name", name).map_err(StoreError::Io)?;
        let _snapshots = lock(&self.snapshot_lock);
        self.check_writable()?;
        let path = self.path.join(snapshot_file_name(name));
        let temp = self.path.join(format!("{}.tmp", snapshot_file_name(name)));
        let context = format!("writing {}", path.display());
        let mut header = Vec::with_capacity(SNAPSHOT_FILE_HEADER_BYTES);
        header.extend_from_slice(SNAPSHOT_FILE_MAGIC);
        header.extend_from_slice(&position.to_be_bytes());
        header.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        header.extend_from_slice(&Sha256::digest(bytes));
        let mut file = fs::File::create(&temp).map_err(io_err(context.clone()))?;
        file.write_all(&header)
            .and_then(|()| file.write_all(bytes))
            .and_then(|()| file.sync_data())
            .map_err(io_err(context.clone()))?;
        drop(file);
        fs::rename(&temp, &path).map_err(io_err(context))?;
        if let Ok(dir) = fs::File::open(&self.path) {
            let _ = dir.sync_all();
        }
        self.remove_sled_snapshot(name)
    }

    /// Removes a snapshot an older store kept in sled (header `P`, parts `Q`).
    fn remove_sled_snapshot(&self, name: &str) -> Result<(), StoreError> {
        let Some(header) = self.snapshot_header(name).ok().flatten() else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        batch.remove(snapshot_key(name));
        for index in 0..header.parts {
            batch.remove(snapshot_part_key(name, index));
        }
        self.tree
            .apply_batch(batch)
            .map_err(sled_err("removing a snapshot kept in sled"))
    }
}

/// The file of a snapshot in the data directory: `snapshot-<name>` for a plain name (ASCII
/// letters, digits, `-`, `_`), else `snapshot-x<hex of the name>`.
fn snapshot_file_name(name: &str) -> String {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        format!("snapshot-{name}")
    } else {
        format!("snapshot-x{}", hex::encode(name))
    }
}

/// A snapshot file starts with this, then position (u64 BE), length (u64 BE), SHA-256 of the
/// bytes, then the bytes.
const SNAPSHOT_FILE_MAGIC: &[u8; 8] = b"GFSNAP1\n";
const SNAPSHOT_FILE_HEADER_BYTES: usize = 8 + 8 + 8 + 32;

/// The keys and values of one group, built in memory and written as one sled batch.
#[derive(Default)]
struct Group {
    chunks: Vec<(u64, Vec<u8>)>,
    /// Per stream touched, in first-touch order: first version and positions.
    streams: Vec<(String, u64, Vec<u64>)>,
    stream_slot: HashMap<String, usize>,
    commands: Vec<CommandRecord>,
}

impl Group {
    fn push_event(&mut self, envelope: &Envelope, canonical: &[u8]) {
        let record_bytes = CHUNK_RECORD_OVERHEAD_BYTES + canonical.len();
        let needs_new_chunk = match self.chunks.last() {
            Some((_, chunk)) => chunk.len() + record_bytes > CHUNK_BYTES_TARGET,
            None => true,
        };
        if needs_new_chunk {
            let mut chunk = Vec::with_capacity(CHUNK_BYTES_TARGET + record_bytes);
            chunk.push(CHUNK_FORMAT);
            self.chunks.push((envelope.position, chunk));
        }
        if let Some((_, chunk)) = self.chunks.last_mut() {
            // Events are at most EVENT_BYTES_MAX (checked before), so the length fits u32.
            chunk.extend_from_slice(&(canonical.len() as u32).to_le_bytes());
            chunk.extend_from_slice(canonical);
            chunk.extend_from_slice(&envelope.hash);
        }
        match self.stream_slot.get(&envelope.stream) {
            Some(slot) => self.streams[*slot].2.push(envelope.position),
            None => {
                self.stream_slot
                    .insert(envelope.stream.clone(), self.streams.len());
                self.streams.push((
                    envelope.stream.clone(),
                    envelope.version,
                    vec![envelope.position],
                ));
            }
        }
    }

    /// The group's sled writes (its chunks, each with the commands it ends; the head is added
    /// when it is written), with the index entries it implies. A command without events
    /// (none are made by the engine) has no chunk to live in: its index entry is written with
    /// the group.
    fn into_write(self) -> GroupWrite {
        let mut entries = Vec::with_capacity(self.chunks.len() + 1);
        let mut trailers: Vec<Vec<u8>> = vec![Vec::new(); self.chunks.len()];
        let mut chunk_index = 0;
        for record in &self.commands {
            let (Some(first), Some(last)) = (record.events.first(), record.events.last()) else {
                entries.push((command_key(&record.command_id), encode_command(record)));
                continue;
            };
            while chunk_index + 1 < self.chunks.len()
                && self.chunks[chunk_index + 1].0 <= last.position
            {
                chunk_index += 1;
            }
            if let Some(trailer) = trailers.get_mut(chunk_index) {
                encode_trailer_entry(trailer, record, first.position);
            }
        }
        for ((first, mut chunk), trailer) in self.chunks.into_iter().zip(trailers) {
            chunk.extend_from_slice(&trailer);
            // A trailer is far below 4 GiB: a chunk is under CHUNK_BYTES_MAX.
            chunk.extend_from_slice(&(trailer.len() as u32).to_le_bytes());
            entries.push((chunk_key(first).to_vec(), chunk));
        }
        let commands = self
            .commands
            .into_iter()
            .filter(|record| !record.events.is_empty())
            .collect();
        GroupWrite {
            entries,
            streams: self.streams,
            commands,
        }
    }
}

/// Appends a command's trailer entry: id length (u32 LE) ‖ id ‖ body hash flag (0/1)
/// [‖ hash] ‖ first position (u64 LE) ‖ event count (u32 LE). The events themselves are
/// read back from the log.
fn encode_trailer_entry(trailer: &mut Vec<u8>, record: &CommandRecord, first_position: u64) {
    trailer.extend_from_slice(&(record.command_id.len() as u32).to_le_bytes());
    trailer.extend_from_slice(record.command_id.as_bytes());
    match &record.body_hash {
        Some(hash) => {
            trailer.push(1);
            trailer.extend_from_slice(hash);
        }
        None => trailer.push(0),
    }
    trailer.extend_from_slice(&first_position.to_le_bytes());
    trailer.extend_from_slice(&(record.events.len() as u32).to_le_bytes());
}

/// A command as its chunk's trailer records it.
struct TrailerEntry {
    command_id: String,
    body_hash: Option<Hash>,
    first_position: u64,
    count: u64,
}

fn decode_trailer(bytes: &[u8]) -> Option<Vec<TrailerEntry>> {
    let mut reader = Reader { bytes };
    let mut entries = Vec::new();
    while !reader.bytes.is_empty() {
        let command_id = reader.text()?;
        let body_hash = match reader.take(1)?.first()? {
            0 => None,
            1 => Some(reader.take(32)?.try_into().ok()?),
            _ => return None,
        };
        let first_position = decode_u64_le(reader.take(8)?)?;
        let count = u64::from(u32::from_le_bytes(reader.take(4)?.try_into().ok()?));
        entries.push(TrailerEntry {
            command_id,
            body_hash,
            first_position,
            count,
        });
    }
    Some(entries)
}

// ---------------------------------------------------------------------------------------
// Reading

/// One decoded log chunk: where each event's canonical bytes start and end.
struct Chunk {
    first: u64,
    value: sled::IVec,
    /// (start, end) of each canonical record; the hash follows at `end`.
    records: Vec<(usize, usize)>,
    /// (start, end) of the trailer (empty in format 1).
    trailer: (usize, usize),
}

impl Chunk {
    fn decode(first: u64, value: sled::IVec) -> Result<Chunk, StoreError> {
        let corrupt = |detail: &str| StoreError::Corrupt {
            position: first,
            detail: format!("log chunk starting at {first}: {detail}"),
        };
        let (records_end, trailer) = match value.first() {
            Some(&CHUNK_FORMAT_V1) => (value.len(), (value.len(), value.len())),
            Some(&CHUNK_FORMAT) => {
                let length_at = value
                    .len()
                    .checked_sub(4)
                    .filter(|at| *at >= 1)
                    .ok_or_else(|| corrupt("truncated trailer length"))?;
                let length_bytes: [u8; 4] = value[length_at..]
                    .try_into()
                    .map_err(|_| corrupt("truncated trailer length"))?;
                let start = length_at
                    .checked_sub(u32::from_le_bytes(length_bytes) as usize)
                    .filter(|start| *start >= 1)
                    .ok_or_else(|| corrupt("trailer longer than the chunk"))?;
                (start, (start, length_at))
            }
            _ => return Err(corrupt("unknown chunk format")),
        };
        let mut records = Vec::new();
        let mut at = 1;
        while at < records_end {
            let length_bytes: [u8; 4] = value
                .get(at..at + 4)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| corrupt("truncated record length"))?;
            let start = at + 4;
            let end = start + u32::from_le_bytes(length_bytes) as usize;
            if end + 32 > records_end {
                return Err(corrupt("truncated record"));
            }
            records.push((start, end));
            at = end + 32;
        }
        if records.is_empty() {
            return Err(corrupt("empty chunk"));
        }
        Ok(Chunk {
            first,
            value,
            records,
            trailer,
        })
    }

    /// The commands whose last event this chunk holds.
    fn trailer_entries(&self) -> Result<Vec<TrailerEntry>, StoreError> {
        let (start, end) = self.trailer;
        self.value
            .get(start..end)
            .and_then(decode_trailer)
            .ok_or_else(|| StoreError::Corrupt {
                position: self.first,
                detail: format!("log chunk starting at {}: undecodable trailer", self.first),
            })
    }

    fn last(&self) -> u64 {
        self.first + self.records.len() as u64 - 1
    }

    fn contains(&self, position: u64) -> bool {
        self.first <= position && position <= self.last()
    }

    fn hash_at(&self, position: u64) -> Option<Hash> {
        let index = usize::try_from(position.checked_sub(self.first)?).ok()?;
        let (_, end) = *self.records.get(index)?;
        self.value.get(end..end + 32)?.try_into().ok()
    }

    /// Where the stored envelope of the event at `position` starts and ends in the chunk.
    fn span(&self, position: u64) -> Result<(usize, usize), StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt { position, detail };
        let (start, end) = usize::try_from(position.saturating_sub(self.first))
            .ok()
            .filter(|_| position >= self.first)
            .and_then(|index| self.records.get(index).copied())
            .ok_or_else(|| corrupt(format!("not in the chunk starting at {}", self.first)))?;
        // Within the value: `Chunk::decode` checked every record's bounds.
        Ok((start, end))
    }

    fn envelope(&self, position: u64) -> Result<Envelope, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt { position, detail };
        let index = usize::try_from(position.saturating_sub(self.first))
            .map_err(|_| corrupt("position out of range".to_string()))?;
        let (start, end) = *self
            .records
            .get(index)
            .filter(|_| position >= self.first)
            .ok_or_else(|| corrupt(format!("not in the chunk starting at {}", self.first)))?;
        let hash = self
            .hash_at(position)
            .ok_or_else(|| corrupt("truncated hash".to_string()))?;
        let bytes = self
            .value
            .get(start..end)
            .ok_or_else(|| corrupt("truncated record".to_string()))?;
        let envelope = Envelope::from_canonical(bytes, hash)
            .map_err(|error| corrupt(format!("undecodable event: {error}")))?;
        if envelope.position != position {
            return Err(corrupt(format!(
                "the record holds position {}",
                envelope.position
            )));
        }
        Ok(envelope)
    }
}

impl Inner {
    fn read(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let mut out = Vec::new();
        self.read_with(from, limit, |chunk, position| {
            out.push(chunk.envelope(position)?);
            Ok(())
        })?;
        Ok(out)
    }

    fn read_payloads(&self, from: u64, limit: usize) -> Result<crate::PayloadPage, StoreError> {
        let mut page = crate::PayloadPage::default();
        self.read_with(from, limit, |chunk, position| {
            page.push_stored(&chunk.value, position, chunk.span(position)?);
            Ok(())
        })?;
        Ok(page)
    }

    /// Events from `from` (at most `limit`, never past the durable head), each taken out of
    /// its chunk by `take`.
    fn read_with(
        &self,
        from: u64,
        limit: usize,
        mut take: impl FnMut(&Chunk, u64) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let Some((from, end)) = self.read_range(from, limit) else {
            return Ok(());
        };
        let start_key = match self.chunk_key_at_or_before(from)? {
            Some(key) => key,
            None => return Err(missing(from)),
        };
        let mut next = from;
        // sled 0.34 accounted a page read from disk only once 64 accesses had queued in its
        // LRU shard, so a scan (each leaf read once) kept every page it read in memory
        // (600 MiB for a 1,000,000-event replay; its issue 1309). The vendored sled accounts
        // a pulled page at once (`Lru::accessed_now`, vendor/sled/GRANTFLOW.md), and evicts
        // down to `cache_capacity` as the scan goes.
        for item in self.tree.range(start_key..=chunk_key(end)) {
            let (key, value) = item.map_err(sled_err("reading the log"))?;
            let chunk = Chunk::decode(parse_chunk_key(&key, next)?, value)?;
            if chunk.first > next {
                return Err(missing(next));
            }
            while next <= end && chunk.contains(next) {
                take(&chunk, next)?;
                next += 1;
            }
            if next > end {
                return Ok(());
            }
        }
        Err(missing(next))
    }

    /// The key of the chunk holding `position`, if any chunk starts at or before it.
    fn chunk_key_at_or_before(&self, position: u64) -> Result<Option<[u8; 9]>, StoreError> {
        match self
            .tree
            .range(chunk_key(0)..=chunk_key(position))
            .next_back()
        {
            None => Ok(None),
            Some(item) => {
                let (key, _) = item.map_err(sled_err("reading the log"))?;
                let first = parse_chunk_key(&key, position)?;
                Ok(Some(chunk_key(first)))
            }
        }
    }

    fn chunk_holding(&self, position: u64) -> Result<Chunk, StoreError> {
        let item = self
            .tree
            .range(chunk_key(0)..=chunk_key(position))
            .next_back()
            .ok_or_else(|| missing(position))?;
        let (key, value) = item.map_err(sled_err("reading the log"))?;
        let chunk = Chunk::decode(parse_chunk_key(&key, position)?, value)?;
        if !chunk.contains(position) {
            return Err(missing(position));
        }
        Ok(chunk)
    }

    fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let from_version = from_version.max(1);
        let limit = limit.min(READ_EVENTS_MAX);
        if limit == 0 || check_key_text("stream", stream).is_err() {
            return Ok(Vec::new());
        }
        let head = self.durable_head().position;
        let mut wanted: Vec<(u64, u64)> = Vec::new();
        self.walk_stream_index(stream, from_version, |version, position| {
            if position > head || wanted.len() >= limit {
                return false;
            }
            if version >= from_version {
                wanted.push((version, position));
            }
            true
        })?;
        let mut out = Vec::with_capacity(wanted.len());
        let mut chunk: Option<Chunk> = None;
        for (version, position) in wanted {
            let current = match chunk.take() {
                Some(current) if current.contains(position) => current,
                _ => self.chunk_holding(position)?,
            };
            let envelope = current.envelope(position)?;
            if envelope.stream != stream || envelope.version != version {
                return Err(StoreError::Corrupt {
                    position,
                    detail: format!(
                        "the stream index says {stream} version {version}, the log holds {} version {}",
                        envelope.stream, envelope.version
                    ),
                });
            }
            out.push(envelope);
            chunk = Some(current);
        }
        Ok(out)
    }

    /// Calls `visit(version, position)` for the stream's versions from the index entry
    /// holding `from_version` on, until it returns false: sled's entries below the tail's
    /// first version of the stream, then the tail's (see [`crate::tail`]).
    fn walk_stream_index(
        &self,
        stream: &str,
        from_version: u64,
        mut visit: impl FnMut(u64, u64) -> bool,
    ) -> Result<(), StoreError> {
        let runs = lock(&self.tail).stream_runs(stream);
        let bound = runs.first().map_or(u64::MAX, |run| run.first_version);
        if from_version < bound && !self.walk_indexed(stream, from_version, bound, &mut visit)? {
            return Ok(());
        }
        for StreamRun {
            first_version,
            positions,
        } in runs
        {
            for (version, position) in (first_version..).zip(positions) {
                if version >= from_version && !visit(version, position) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The walk over sled's entries, below version `bound`; false when `visit` stopped it.
    fn walk_indexed(
        &self,
        stream: &str,
        from_version: u64,
        bound: u64,
        visit: &mut impl FnMut(u64, u64) -> bool,
    ) -> Result<bool, StoreError> {
        let prefix = stream_index_prefix(stream);
        let seek = stream_index_key(stream, from_version);
        let start = match self.tree.range(prefix.clone()..=seek).next_back() {
            Some(item) => item
                .map_err(sled_err("reading the stream index"))?
                .0
                .to_vec(),
            None => prefix.clone(),
        };
        // Entries may overlap where a span was written again after a crash (the same
        // versions, the same positions): each version is visited once.
        let mut next = 0;
        for item in self.tree.range(start..) {
            let (key, value) = item.map_err(sled_err("reading the stream index"))?;
            let Some(suffix) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let first_version = decode_u64_be(suffix).ok_or_else(|| bad_index(stream))?;
            if value.len() % 8 != 0 {
                return Err(bad_index(stream));
            }
            for (offset, bytes) in (0u64..).zip(value.chunks_exact(8)) {
                let position = decode_u64_le(bytes).ok_or_else(|| bad_index(stream))?;
                let version = first_version + offset;
                if version >= bound {
                    return Ok(true);
                }
                if version < next {
                    continue;
                }
                next = version + 1;
                if !visit(version, position) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The stream's version as stored, including a group being made durable (the writer's
    /// view).
    fn stored_stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        Ok(self.stream_head(stream)?.map_or(0, |(version, _)| version))
    }

    /// The stream's last (version, position): from memory once known, else from the last
    /// entry of its stream index (stores before 2026-11-29 also kept a `V` key per stream,
    /// written with every group; it is no longer written nor read).
    fn stream_head(&self, stream: &str) -> Result<Option<(u64, u64)>, StoreError> {
        if let Some(known) = lock(&self.stream_heads).get(stream) {
            return Ok(Some(*known));
        }
        let prefix = stream_index_prefix(stream);
        let Some(item) = self.tree.scan_prefix(&prefix).next_back() else {
            return Ok(None);
        };
        let (key, value) = item.map_err(sled_err("reading the stream index"))?;
        let first_version = key
            .strip_prefix(prefix.as_slice())
            .and_then(decode_u64_be)
            .ok_or_else(|| bad_index(stream))?;
        if value.is_empty() || value.len() % 8 != 0 {
            return Err(bad_index(stream));
        }
        let last = decode_u64_le(&value[value.len() - 8..]).ok_or_else(|| bad_index(stream))?;
        let head = (first_version + (value.len() / 8) as u64 - 1, last);
        if last <= self.durable_head().position {
            // Only what is durable is remembered (a group being made durable may be visible
            // in sled's memory already).
            lock(&self.stream_heads).insert(stream.to_string(), head);
        }
        Ok(Some(head))
    }

    /// The stream's version as of the durable head (a reader's view).
    fn durable_stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        if check_key_text("stream", stream).is_err() {
            return Ok(0);
        }
        let head = self.durable_head().position;
        match self.stream_head(stream)? {
            None => Ok(0),
            Some((version, position)) if position <= head => Ok(version),
            Some(_) => {
                // A group is being made durable: count the versions at or before the head.
                let mut version = 0;
                self.walk_stream_index(stream, 1, |seen, position| {
                    if position > head {
                        return false;
                    }
                    version = seen;
                    true
                })?;
                Ok(version)
            }
        }
    }

    /// The command index's record, unless its events are not durable yet.
    fn durable_command(&self, command_id: &str) -> Result<Option<CommandRecord>, StoreError> {
        if let Some(record) = lock(&self.tail).command(command_id) {
            return Ok(Some(record));
        }
        match self
            .tree
            .get(command_key(command_id))
            .map_err(sled_err("reading the command index"))?
        {
            None => self.located_command(command_id, self.durable_head().position),
            Some(value) => self.durable_record(command_id, &value),
        }
    }

    /// [`Inner::durable_command`] of several ids; remembers those absent (see [`AbsentIds`]).
    fn durable_commands(
        &self,
        command_ids: &[String],
    ) -> Result<Vec<Option<CommandRecord>>, StoreError> {
        let commits = lock(&self.absent_ids).commits;
        let mut records = Vec::with_capacity(command_ids.len());
        let mut absent = Vec::new();
        for command_id in command_ids {
            if let Some(record) = lock(&self.tail).command(command_id) {
                records.push(Some(record));
                continue;
            }
            match self
                .tree
                .get(command_key(command_id))
                .map_err(sled_err("reading the command index"))?
            {
                None => match self.located_command(command_id, self.durable_head().position)? {
                    Some(record) => records.push(Some(record)),
                    None => {
                        absent.push(command_id);
                        records.push(None);
                    }
                },
                Some(value) => records.push(self.durable_record(command_id, &value)?),
            }
        }
        let mut known = lock(&self.absent_ids);
        if known.commits == commits {
            if known.ids.len() + absent.len() > ABSENT_IDS_MAX {
                known.ids.clear();
            }
            known.ids.extend(absent.into_iter().cloned());
        }
        Ok(records)
    }

    /// A command index entry's record, unless its events are not durable yet.
    fn durable_record(
        &self,
        command_id: &str,
        value: &[u8],
    ) -> Result<Option<CommandRecord>, StoreError> {
        let record = decode_command(command_id, value).ok_or_else(|| StoreError::Corrupt {
            position: 0,
            detail: format!("undecodable command index entry for {command_id:?}"),
        })?;
        let head = self.durable_head().position;
        if record.events.iter().any(|event| event.position > head) {
            return Ok(None);
        }
        Ok(Some(record))
    }

    fn snapshot_header(&self, name: &str) -> Result<Option<SnapshotHeader>, StoreError> {
        let Some(value) = self
            .tree
            .get(snapshot_key(name))
            .map_err(sled_err("reading a snapshot"))?
        else {
            return Ok(None);
        };
        let header = (|| {
            let checksum = match value.len() {
                SNAPSHOT_HEADER_LEGACY_BYTES => None,
                SNAPSHOT_HEADER_BYTES => Some(value.get(20..52)?.try_into().ok()?),
                _ => return None,
            };
            Some(SnapshotHeader {
                position: decode_u64_be(value.get(0..8)?)?,
                length: decode_u64_be(value.get(8..16)?)?,
                parts: u32::from_be_bytes(value.get(16..20)?.try_into().ok()?),
                checksum,
            })
        })();
        header.map(Some).ok_or_else(|| bad_snapshot(name, 0))
    }

    /// The snapshot's position and bytes: from its file, else (a store written before
    /// snapshots had files) from sled. A damaged one is [`StoreError::Corrupt`].
    fn load_snapshot(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        if check_key_text("snapshot name", name).is_err() {
            return Ok(None);
        }
        let path = self.path.join(snapshot_file_name(name));
        let mut bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return self.load_sled_snapshot(name)
            }
            Err(error) => return Err(io_err(format!("reading {}", path.display()))(error)),
        };
        let header = (|| {
            if bytes.get(..8)? != SNAPSHOT_FILE_MAGIC {
                return None;
            }
            let position = decode_u64_be(bytes.get(8..16)?)?;
            let length = decode_u64_be(bytes.get(16..24)?)?;
            let checksum: Hash = bytes.get(24..56)?.try_into().ok()?;
            Some((position, length, checksum))
        })();
        let Some((position, length, checksum)) = header else {
            return Err(bad_snapshot(name, 0));
        };
        let body = bytes.split_off(SNAPSHOT_FILE_HEADER_BYTES);
        if body.len() as u64 != length {
            return Err(bad_snapshot(name, position));
        }
        if <[u8; 32]>::from(Sha256::digest(&body)) != checksum {
            return Err(damaged_snapshot(name, position));
        }
        Ok(Some((position, body)))
    }

    fn load_sled_snapshot(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let Some(header) = self.snapshot_header(name)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        for index in 0..header.parts {
            let part = self
                .tree
                .get(snapshot_part_key(name, index))
                .map_err(sled_err("reading a snapshot"))?
                .ok_or_else(|| bad_snapshot(name, header.position))?;
            bytes.extend_from_slice(&part);
        }
        if bytes.len() as u64 != header.length {
            return Err(bad_snapshot(name, header.position));
        }
        if let Some(checksum) = header.checksum {
            if <[u8; 32]>::from(Sha256::digest(&bytes)) != checksum {
                return Err(damaged_snapshot(name, header.position));
            }
        }
        Ok(Some((header.position, bytes)))
    }
}

fn damaged_snapshot(name: &str, position: u64) -> StoreError {
    StoreError::Corrupt {
        position,
        detail: format!(
            "snapshot {name} does not match its checksum (damaged); its figures are not used: \
             run `grantflow replay` to rebuild it from the log"
        ),
    }
}

struct SnapshotHeader {
    position: u64,
    length: u64,
    parts: u32,
    /// SHA-256 of the snapshot's bytes (absent in headers written before it was kept).
    checksum: Option<Hash>,
}

/// A snapshot header: position, length, part count, checksum.
const SNAPSHOT_HEADER_BYTES: usize = 8 + 8 + 4 + 32;
/// A header written before the checksum was kept.
const SNAPSHOT_HEADER_LEGACY_BYTES: usize = 8 + 8 + 4;

// ---------------------------------------------------------------------------------------
// Opening

/// Checks the `M` record a store writes into its database when created; writes it into a new
/// database. A database file that existed but holds no such record is damaged (sled reads an
/// unreadable file as an empty database).
fn check_format_record(
    dir: &Path,
    tree: &sled::Db,
    db_file: &fs::File,
    had_database: bool,
) -> Result<(), StoreError> {
    let expected = format!("{MARKER_MAGIC} format {STORE_FORMAT}");
    match tree
        .get(FORMAT_KEY)
        .map_err(sled_err("reading the format record"))?
    {
        Some(value) => {
            let found = std::str::from_utf8(&value)
                .ok()
                .and_then(|text| text.strip_prefix(&format!("{MARKER_MAGIC} format ")))
                .and_then(|number| number.parse::<u32>().ok());
            match found {
                Some(found) if found <= STORE_FORMAT => Ok(()),
                Some(found) => Err(StoreError::NewerFormat {
                    path: dir.display().to_string(),
                    found,
                    supported: STORE_FORMAT,
                }),
                None => Err(StoreError::Corrupt {
                    position: 0,
                    detail: "undecodable format record".to_string(),
                }),
            }
        }
        None if had_database => Err(StoreError::Corrupt {
            position: 0,
            detail: "the database file holds no grantflow records (damaged or foreign)".to_string(),
        }),
        None => {
            let mut batch = sled::Batch::default();
            batch.insert(FORMAT_KEY, expected.as_bytes());
            batch.insert(INDEXED_KEY, &0u64.to_be_bytes()[..]);
            write_durably(tree, db_file, batch, "writing the format record")
        }
    }
}

/// sled's `flush()`, then `sync_data()` of its database file (see the module documentation).
fn make_durable(tree: &sled::Db, db_file: &fs::File, context: &str) -> Result<(), StoreError> {
    tree.flush().map_err(sled_err(context))?;
    db_file
        .sync_data()
        .map_err(io_err(format!("{context}: fsync of the database file")))
}

/// Applies a batch and makes it durable (the writes of opening a store).
fn write_durably(
    tree: &sled::Db,
    db_file: &fs::File,
    batch: sled::Batch,
    context: &str,
) -> Result<(), StoreError> {
    tree.apply_batch(batch).map_err(sled_err(context))?;
    make_durable(tree, db_file, context)
}

/// Reads the head and checks that the last chunk ends with the same event.
fn load_head(tree: &sled::Db) -> Result<Head, StoreError> {
    let head = read_head(tree)?;
    check_head(tree, &head)?;
    Ok(head)
}

/// The head record as sled holds it, unchecked: after a crash, sled may hold the first
/// keys of a group without its head (a group goes to sled one insert at a time, the head
/// last), which the redo log writes again on open before [`check_head`] looks.
fn read_head(tree: &sled::Db) -> Result<Head, StoreError> {
    Ok(
        match tree.get(HEAD_KEY).map_err(sled_err("reading the head"))? {
            Some(value) => decode_head(&value).ok_or_else(|| StoreError::Corrupt {
                position: 0,
                detail: "undecodable head record".to_string(),
            })?,
            None => Head {
                position: 0,
                hash: ZERO_HASH,
                recorded_at: String::new(),
            },
        },
    )
}

/// Checks that the log's last chunk ends with the head's event.
fn check_head(tree: &sled::Db, head: &Head) -> Result<(), StoreError> {
    let last_chunk = tree
        .range(chunk_key(0)..=chunk_key(u64::MAX))
        .next_back()
        .transpose()
        .map_err(sled_err("reading the last log chunk"))?;
    match last_chunk {
        None if head.position == 0 => Ok(()),
        None => Err(StoreError::Corrupt {
            position: 1,
            detail: format!("the head says {} events, the log holds none", head.position),
        }),
        Some((key, value)) => {
            let chunk = Chunk::decode(parse_chunk_key(&key, head.position)?, value)?;
            if chunk.last() != head.position || chunk.hash_at(chunk.last()) != Some(head.hash) {
                let first_bad = if chunk.last() == head.position {
                    head.position
                } else {
                    head.position.min(chunk.last()) + 1
                };
                return Err(StoreError::Corrupt {
                    position: first_bad,
                    detail: format!(
                        "the head record (position {}) and the log (last position {}) disagree",
                        head.position,
                        chunk.last()
                    ),
                });
            }
            Ok(())
        }
    }
}

/// Reads the index mark. A store without one was written before it existed (format 1),
/// indexing every group as it wrote it: its mark is its head, recorded now with the format
/// record of this build.
fn open_index_mark(tree: &sled::Db, db_file: &fs::File, head: &Head) -> Result<u64, StoreError> {
    let indexed = match tree
        .get(INDEXED_KEY)
        .map_err(sled_err("reading the index mark"))?
    {
        Some(value) => decode_u64_be(&value).ok_or_else(|| StoreError::Corrupt {
            position: 0,
            detail: "undecodable index mark".to_string(),
        })?,
        None => {
            let mut batch = sled::Batch::default();
            batch.insert(INDEXED_KEY, &head.position.to_be_bytes()[..]);
            batch.insert(
                FORMAT_KEY,
                format!("{MARKER_MAGIC} format {STORE_FORMAT}").as_bytes(),
            );
            write_durably(tree, db_file, batch, "upgrading the store format")?;
            head.position
        }
    };
    if indexed > head.position {
        return Err(StoreError::Corrupt {
            position: head.position + 1,
            detail: format!(
                "the index is marked complete through position {indexed}, past the log's head {}",
                head.position
            ),
        });
    }
    Ok(indexed)
}

/// Reads the log past the index mark back into a tail (stream runs and command records,
/// from the chunks' trailers), with each of its streams' heads.
fn rebuild_tail(
    tree: &sled::Db,
    indexed: u64,
    head: u64,
) -> Result<(Tail, StreamHeads), StoreError> {
    let mut tail = Tail::new(indexed);
    let mut heads = HashMap::new();
    if indexed >= head {
        return Ok((tail, heads));
    }
    let from = indexed + 1;
    let start = tree
        .range(chunk_key(0)..=chunk_key(from))
        .next_back()
        .transpose()
        .map_err(sled_err("reading the log"))?
        .map_or(chunk_key(from), |(key, _)| {
            let mut start = [0u8; 9];
            start.copy_from_slice(&key[..9.min(key.len())]);
            start
        });
    let mut refs: Vec<EventRef> = Vec::with_capacity((head - indexed) as usize);
    let mut entries = Vec::new();
    for item in tree.range(start..=chunk_key(head)) {
        let (key, value) = item.map_err(sled_err("reading the log"))?;
        let expected = from + refs.len() as u64;
        let chunk = Chunk::decode(parse_chunk_key(&key, expected)?, value)?;
        if chunk.last() < from {
            continue;
        }
        if chunk.first > expected {
            return Err(missing(expected));
        }
        for position in expected..=chunk.last().min(head) {
            let envelope = chunk.envelope(position)?;
            tail.live
                .add_stream(&envelope.stream, envelope.version, &[position])?;
            refs.push(EventRef::of(&envelope));
        }
        entries.extend(chunk.trailer_entries()?);
    }
    if refs.len() as u64 != head - indexed {
        return Err(missing(from + refs.len() as u64));
    }
    for entry in entries {
        let events = entry
            .first_position
            .checked_sub(from)
            .and_then(|offset| usize::try_from(offset).ok())
            .and_then(|offset| refs.get(offset..offset + usize::try_from(entry.count).ok()?))
            .filter(|events| !events.is_empty())
            .ok_or_else(|| StoreError::Corrupt {
                position: entry.first_position,
                detail: format!(
                    "command {:?} is recorded with {} events from position {}, outside the log's tail",
                    entry.command_id, entry.count, entry.first_position
                ),
            })?;
        tail.live.add_command(CommandRecord {
            command_id: entry.command_id,
            body_hash: entry.body_hash,
            events: events.to_vec(),
        });
    }
    for (stream, run) in &tail.live.streams {
        if let Some(stream_head) = run.head() {
            heads.insert(stream.clone(), stream_head);
        }
    }
    Ok((tail, heads))
}

// ---------------------------------------------------------------------------------------
// The redo log (see `crate::redo`) and the HEAD file it replaced

/// Opens the redo log and brings sled up to it: the groups it holds past sled's head are
/// written back into sled. Returns the log, the head, and the position through which sled
/// is known durable. A store of an older format (its marker says so, whatever sled holds)
/// gets a new redo log at its head once its HEAD file, if any, agrees; then its marker says
/// format 3, and only then is the HEAD file removed. A format 3 store without redo files is
/// refused, unless it holds nothing at all (a store whose first open stopped before they
/// were written).
fn open_redo(
    dir: &Path,
    tree: &sled::Db,
    db_file: &fs::File,
    head: Head,
    marker_format: u32,
    had_database: bool,
) -> Result<(RedoLog, Head, u64), StoreError> {
    let start_new = |head: Head| -> Result<(RedoLog, Head, u64), StoreError> {
        // The new log starts at sled's head: sled must be durable through it.
        make_durable(tree, db_file, "starting the redo log")?;
        let log = RedoLog::create(dir, &head)?;
        let synced = head.position;
        Ok((log, head, synced))
    };
    if marker_format < REDO_STORE_FORMAT {
        // Written with one sled batch per group: nothing was cut short.
        check_head(tree, &head)?;
        check_head_file(dir, tree, &head)?;
        let opened = start_new(head)?;
        write_marker(dir)?;
        remove_head_file(dir)?;
        return Ok(opened);
    }
    let Some(recovered) = RedoLog::open(dir)? else {
        check_head(tree, &head)?;
        if !had_database && head.position == 0 {
            return start_new(head);
        }
        return Err(StoreError::Corrupt {
            position: 0,
            detail: format!(
                "{} and {} are missing: the head this store acknowledged cannot be checked, \
                 so events may have been lost without a trace; restore the directory from a \
                 backup or re-import an export",
                RedoLog::paths(dir)[0].display(),
                RedoLog::paths(dir)[1].display()
            ),
        });
    };
    let crate::redo::Recovered {
        mut log,
        base,
        acknowledged,
        groups,
    } = recovered;
    if head.position < base.position {
        check_head(tree, &head)?;
        return Err(lost_events(head.position, acknowledged.position));
    }
    if head.position >= acknowledged.position {
        // sled holds every group the redo log does: none was cut short.
        check_head(tree, &head)?;
        check_hash_at(tree, &head, acknowledged.position, &acknowledged.hash)?;
        if head.position == acknowledged.position {
            return Ok((log, head, 0));
        }
        // Groups that reached sled but not the redo log were never acknowledged: they stay,
        // and the log moves up to them (so that losing them later is noticed).
        make_durable(tree, db_file, "bringing the redo log up to sled")?;
        log.reset(&head)?;
        let synced = head.position;
        return Ok((log, head, synced));
    }
    // sled stops inside the redo log: write the groups after its head back into it.
    let Some(index) = groups
        .iter()
        .position(|group| group.from.0 == head.position)
    else {
        check_head(tree, &head)?;
        return Err(rewritten(head.position, None));
    };
    if groups[index].from.1 != head.hash {
        check_head(tree, &head)?;
        return Err(rewritten(head.position, Some(&groups[index].from.1)));
    }
    let replayed = groups.len() - index;
    for group in groups.into_iter().skip(index) {
        let mut batch = sled::Batch::default();
        for (key, value) in group.entries {
            batch.insert(key, value);
        }
        batch.insert(HEAD_KEY, encode_head(&group.to));
        tree.apply_batch(batch)
            .map_err(sled_err("writing the redo log's groups back into sled"))?;
    }
    make_durable(
        tree,
        db_file,
        "writing the redo log's groups back into sled",
    )?;
    let head = load_head(tree)?;
    if head.position != acknowledged.position || head.hash != acknowledged.hash {
        return Err(rewritten(acknowledged.position, Some(&acknowledged.hash)));
    }
    tracing::info!(
        groups = replayed,
        head = head.position,
        "wrote the redo log's last groups back into sled"
    );
    log.reset(&head)?;
    let synced = head.position;
    Ok((log, head, synced))
}

/// sled's recovered head is behind what was acknowledged.
fn lost_events(found: u64, acknowledged: u64) -> StoreError {
    StoreError::Corrupt {
        position: found + 1,
        detail: format!(
            "the log ends at {found} but {acknowledged} events were acknowledged: events \
             {}..{acknowledged} are lost (the database was cut or replaced, e.g. by sled's \
             recovery after damage); restore the directory from a backup or re-import an \
             export",
            found + 1
        ),
    }
}

/// The log does not carry the hash recorded as acknowledged at `position`.
fn rewritten(position: u64, recorded: Option<&Hash>) -> StoreError {
    StoreError::Corrupt {
        position,
        detail: match recorded {
            Some(hash) => format!(
                "the log was rewritten: event {position} does not carry the hash {} recorded \
                 as acknowledged in the redo log",
                hex::encode(hash)
            ),
            None => format!(
                "the log was rewritten: its head {position} is not where a group the redo \
                 log recorded as acknowledged ends"
            ),
        },
    }
}

/// sled's log, whose head is `head`, must carry `hash` at `position` (at most `head`).
fn check_hash_at(
    tree: &sled::Db,
    head: &Head,
    position: u64,
    hash: &Hash,
) -> Result<(), StoreError> {
    if position == 0 {
        return Ok(());
    }
    let stored = if position == head.position {
        Some(head.hash)
    } else {
        let (key, value) = tree
            .range(chunk_key(0)..=chunk_key(position))
            .next_back()
            .transpose()
            .map_err(sled_err("reading the log"))?
            .ok_or_else(|| missing(position))?;
        Chunk::decode(parse_chunk_key(&key, position)?, value)?.hash_at(position)
    };
    if stored != Some(*hash) {
        return Err(rewritten(position, Some(hash)));
    }
    Ok(())
}

/// One decoded record of a HEAD file (stores written before the redo log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeadRecord {
    generation: u64,
    position: u64,
    hash: Hash,
}

impl HeadRecord {
    /// A slot's record, or `None` when it is torn, damaged or empty.
    fn decode(bytes: &[u8]) -> Option<HeadRecord> {
        let bytes = bytes.get(0..HEAD_RECORD_BYTES)?;
        if bytes.get(0..8)? != HEAD_RECORD_MAGIC
            || Sha256::digest(bytes.get(0..56)?).as_slice() != bytes.get(56..88)?
        {
            return None;
        }
        Some(HeadRecord {
            generation: decode_u64_be(bytes.get(8..16)?)?,
            position: decode_u64_be(bytes.get(16..24)?)?,
            hash: bytes.get(24..56)?.try_into().ok()?,
        })
    }
}

/// A store written before the redo log kept its acknowledged head in a HEAD file: sled's
/// head must reach it, with the same hash there, before the redo log replaces it.
fn check_head_file(dir: &Path, tree: &sled::Db, head: &Head) -> Result<(), StoreError> {
    let path = dir.join(HEAD_FILE_NAME);
    let flagged = tree
        .contains_key(HEAD_FILE_FLAG_KEY)
        .map_err(sled_err("reading the HEAD file flag"))?;
    match read_head_file(&path)? {
        Some(record) => {
            if record.position > head.position {
                return Err(lost_events(head.position, record.position));
            }
            check_hash_at(tree, head, record.position, &record.hash)
        }
        None if flagged => Err(StoreError::Corrupt {
            position: 0,
            detail: format!(
                "{} is missing: the head this store acknowledged cannot be checked, so \
                 events may have been lost without a trace; restore the directory from a \
                 backup or re-import an export",
                path.display()
            ),
        }),
        None => Ok(()),
    }
}

/// Removes a HEAD file the redo log has replaced.
fn remove_head_file(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join(HEAD_FILE_NAME);
    match fs::remove_file(&path) {
        Ok(()) => {
            if let Ok(dir_file) = fs::File::open(dir) {
                let _ = dir_file.sync_all();
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_err(format!("removing {}", path.display()))(error)),
    }
}

/// The HEAD file's newest valid record; `None` when there is no file.
fn read_head_file(path: &Path) -> Result<Option<HeadRecord>, StoreError> {
    let damaged = |detail: &str| StoreError::Corrupt {
        position: 0,
        detail: format!(
            "{} is damaged ({detail}): the head this store acknowledged cannot be checked",
            path.display()
        ),
    };
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_err(format!("reading {}", path.display()))(error)),
    };
    if bytes.len() as u64 != HEAD_FILE_BYTES {
        return Err(damaged(&format!(
            "{} bytes, expected {HEAD_FILE_BYTES}",
            bytes.len()
        )));
    }
    let slots = [
        HeadRecord::decode(&bytes[..HEAD_RECORD_BYTES]),
        HeadRecord::decode(&bytes[HEAD_SLOT_B_OFFSET as usize..]),
    ];
    slots
        .into_iter()
        .flatten()
        .max_by_key(|record| record.generation)
        .map(Some)
        .ok_or_else(|| damaged("no slot passes its checksum"))
}

/// The first entry of `dir` that is not the marker's temporary file.
fn first_foreign_entry(dir: &Path) -> Result<Option<String>, StoreError> {
    let entries = fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_err(format!("reading {}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != MARKER_TEMP_FILE_NAME {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// Writes the marker atomically (temporary file, fsync, rename, fsync of the directory).
fn write_marker(dir: &Path) -> Result<(), StoreError> {
    let temp = dir.join(MARKER_TEMP_FILE_NAME);
    let marker = dir.join(MARKER_FILE_NAME);
    let context = format!("writing {}", marker.display());
    let mut file = fs::File::create(&temp).map_err(io_err(context.clone()))?;
    file.write_all(format!("{MARKER_MAGIC}\nformat {STORE_FORMAT}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err(context.clone()))?;
    fs::rename(&temp, &marker).map_err(io_err(context.clone()))?;
    // Make the rename durable (directories cannot be opened this way everywhere).
    if let Ok(dir_file) = fs::File::open(dir) {
        let _ = dir_file.sync_all();
    }
    Ok(())
}

/// Reads the marker's format: [`StoreError::NotAStore`] unless it is one,
/// [`StoreError::NewerFormat`] when a newer grantflow wrote it.
fn check_marker(dir: &Path) -> Result<u32, StoreError> {
    let marker = dir.join(MARKER_FILE_NAME);
    let meta = fs::metadata(&marker).map_err(io_err(format!("reading {}", marker.display())))?;
    if !meta.is_file() || meta.len() > MARKER_BYTES_MAX {
        return Err(not_a_store(
            dir,
            &format!("{MARKER_FILE_NAME} is not a grantflow marker"),
        ));
    }
    let bytes = fs::read(&marker).map_err(io_err(format!("reading {}", marker.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    let format = match (lines.next(), lines.next()) {
        (Some(MARKER_MAGIC), Some(line)) => line
            .strip_prefix("format ")
            .and_then(|number| number.trim().parse::<u32>().ok()),
        _ => None,
    };
    match format {
        None => Err(not_a_store(
            dir,
            &format!("{MARKER_FILE_NAME} is not a grantflow marker"),
        )),
        Some(found) if found > STORE_FORMAT => Err(StoreError::NewerFormat {
            path: dir.display().to_string(),
            found,
            supported: STORE_FORMAT,
        }),
        Some(found) => Ok(found),
    }
}

// ---------------------------------------------------------------------------------------
// Keys and encodings

fn chunk_key(first: u64) -> [u8; 9] {
    let mut key = [PREFIX_CHUNK; 9];
    key[1..].copy_from_slice(&first.to_be_bytes());
    key
}

/// The first position of a chunk key (`context` names the position being read on error).
fn parse_chunk_key(key: &[u8], context: u64) -> Result<u64, StoreError> {
    match key.split_first() {
        Some((&PREFIX_CHUNK, rest)) => decode_u64_be(rest),
        _ => None,
    }
    .ok_or_else(|| StoreError::Corrupt {
        position: context,
        detail: "malformed log chunk key".to_string(),
    })
}

fn stream_index_prefix(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 10);
    key.push(PREFIX_STREAM_INDEX);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key
}

fn stream_index_key(stream: &str, first_version: u64) -> Vec<u8> {
    let mut key = stream_index_prefix(stream);
    key.extend_from_slice(&first_version.to_be_bytes());
    key
}

fn command_key(command_id: &str) -> Vec<u8> {
    prefixed(PREFIX_COMMAND, command_id)
}

fn snapshot_key(name: &str) -> Vec<u8> {
    prefixed(PREFIX_SNAPSHOT, name)
}

fn snapshot_part_key(name: &str, index: u32) -> Vec<u8> {
    let mut key = prefixed(PREFIX_SNAPSHOT_PART, name);
    key.push(0);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

fn prefixed(prefix: u8, text: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(text.len() + 1);
    key.push(prefix);
    key.extend_from_slice(text.as_bytes());
    key
}

fn decode_u64_be(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

fn decode_u64_le(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn encode_head(head: &Head) -> Vec<u8> {
    let mut value = Vec::with_capacity(40 + head.recorded_at.len());
    value.extend_from_slice(&head.position.to_be_bytes());
    value.extend_from_slice(&head.hash);
    value.extend_from_slice(head.recorded_at.as_bytes());
    value
}

fn decode_head(value: &[u8]) -> Option<Head> {
    Some(Head {
        position: decode_u64_be(value.get(0..8)?)?,
        hash: value.get(8..40)?.try_into().ok()?,
        recorded_at: String::from_utf8(value.get(40..)?.to_vec()).ok()?,
    })
}

fn encode_command(record: &CommandRecord) -> Vec<u8> {
    let mut value = Vec::with_capacity(40 + record.events.len() * 64);
    match &record.body_hash {
        Some(hash) => {
            value.push(1);
            value.extend_from_slice(hash);
        }
        None => value.push(0),
    }
    value.extend_from_slice(&(record.events.len() as u32).to_le_bytes());
    for event in &record.events {
        value.extend_from_slice(&event.position.to_le_bytes());
        value.extend_from_slice(&event.version.to_le_bytes());
        for text in [&event.stream, &event.event_type] {
            value.extend_from_slice(&(text.len() as u32).to_le_bytes());
            value.extend_from_slice(text.as_bytes());
        }
    }
    value
}

fn decode_command(command_id: &str, value: &[u8]) -> Option<CommandRecord> {
    let mut reader = Reader { bytes: value };
    let body_hash = match reader.take(1)?.first()? {
        0 => None,
        1 => Some(reader.take(32)?.try_into().ok()?),
        _ => return None,
    };
    let count = u32::from_le_bytes(reader.take(4)?.try_into().ok()?);
    let mut events = Vec::new();
    for _ in 0..count {
        let position = decode_u64_le(reader.take(8)?)?;
        let version = decode_u64_le(reader.take(8)?)?;
        let stream = reader.text()?;
        let event_type = reader.text()?;
        events.push(EventRef {
            position,
            stream,
            version,
            event_type,
        });
    }
    if !reader.bytes.is_empty() {
        return None;
    }
    Some(CommandRecord {
        command_id: command_id.to_string(),
        body_hash,
        events,
    })
}

/// Reads length-prefixed fields, refusing anything truncated.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if count > self.bytes.len() {
            return None;
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Some(taken)
    }

    fn text(&mut self) -> Option<String> {
        let length = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(length)?.to_vec()).ok()
    }
}

// ---------------------------------------------------------------------------------------
// Checks and errors

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are replaced whole, so a panic elsewhere cannot leave them torn.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn not_a_store(dir: &Path, detail: &str) -> StoreError {
    StoreError::NotAStore {
        path: dir.display().to_string(),
        detail: detail.to_string(),
    }
}

fn missing(position: u64) -> StoreError {
    StoreError::Corrupt {
        position,
        detail: "event missing from the log".to_string(),
    }
}

fn bad_index(stream: &str) -> StoreError {
    StoreError::Corrupt {
        position: 0,
        detail: format!("undecodable stream index entry for {stream}"),
    }
}

fn bad_snapshot(name: &str, position: u64) -> StoreError {
    StoreError::Corrupt {
        position,
        detail: format!("snapshot {name} is damaged"),
    }
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |error| StoreError::Io(format!("{context}: {error}"))
}

fn sled_err(context: &str) -> impl FnOnce(sled::Error) -> StoreError + '_ {
    move |error| match error {
        sled::Error::Corruption { at, .. } => StoreError::Corrupt {
            position: 0,
            detail: format!("{context}: sled reports corruption at {at:?}"),
        },
        other => StoreError::Io(format!("{context}: {other}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn segment_size_is_the_recorded_one_else_the_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(segment_bytes(dir.path()).unwrap(), SEGMENT_BYTES);
        // A store created by an earlier build, with sled's default of 512 KiB.
        let conf = dir.path().join(SLED_CONF_FILE_NAME);
        fs::write(&conf, "segment_size: 524288\nuse_compression: false\n").unwrap();
        assert_eq!(segment_bytes(dir.path()).unwrap(), 524_288);
        fs::write(&conf, "segment_size: 1000\n").unwrap();
        assert!(segment_bytes(dir.path()).is_err());
        fs::write(&conf, "garbage").unwrap();
        assert!(segment_bytes(dir.path()).is_err());
    }

    #[test]
    fn a_new_store_writes_no_blob_files() {
        // Leaves of big chunks went to sled blob files (never fsynced) at the default segment
        // size: fill enough chunks for several full leaves and look.
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let payload = format!("{{\"note\":\"{}\"}}", "x".repeat(2_000));
        for round in 0..40u64 {
            let commands = (0..40u64)
                .map(|index| crate::AppendCommand {
                    command_id: format!("c-{round}-{index}"),
                    body_hash: ZERO_HASH,
                    fresh_id: false,
                    events: vec![crate::NewEvent {
                        stream: format!("fund-{index}"),
                        event_type: "fund.noted".to_string(),
                        schema: 1,
                        actor: "tester".to_string(),
                        command_id: format!("c-{round}-{index}"),
                        correlation_id: format!("c-{round}-{index}"),
                        payload: payload.clone(),
                    }],
                })
                .collect();
            let head = store.inner.durable_head().position;
            let expected_versions = (0..40u64)
                .map(|index| (format!("fund-{index}"), round))
                .collect();
            store
                .inner
                .append(AppendBatch {
                    expected_head: head,
                    expected_versions,
                    commands,
                })
                .unwrap();
        }
        store.inner.make_durable("test").unwrap();
        let blobs = dir.path().join("db").join("blobs");
        let count = fs::read_dir(&blobs).map_or(0, |entries| entries.count());
        assert_eq!(count, 0, "sled wrote blob files in {}", blobs.display());
        let sled_conf = fs::read(dir.path().join("db").join("conf")).unwrap();
        let sled_conf = String::from_utf8_lossy(&sled_conf);
        assert!(sled_conf.contains(&format!("segment_size: {SEGMENT_BYTES}")));
    }
}
