//! Creating and opening a store: the marker, sled, the format record, the redo log's groups
//! written back into sled, the head checked against the log, and the tail rebuilt.
//!
//! sled's recovery reads its log up to the first record that fails its checksum and drops the
//! rest: a damaged or cut database file opens as a *shorter, internally consistent* store,
//! whose hash chain verifies. Nothing inside sled can tell that events are gone. The redo log,
//! outside sled, records every acknowledged head. On open ([`open_redo`]):
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
//! A missing redo file, or a damaged record followed by good ones, is refused (the marker
//! says the store keeps them, even when sled's whole database is gone).

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use foldhash::{HashMap, HashMapExt};
use grantflow_store::recent::Recent;
use grantflow_store::{CommandRecord, EventRef, Hash, Head, StoreError, ZERO_HASH};
use tokio::sync::watch;

use crate::chunk::{Chunk, Encoding};
use crate::commands::AbsentIds;
use crate::config::{open_locked, sled_config, SLED_CONF_FILE_NAME};
use crate::errors::{io_err, missing, not_a_store, sled_err};
use crate::files::{create_private_dir, replace_durably, sync_dir};
use crate::indexer::{tail_events_max, IndexPacer};
use crate::keys::{
    chunk_key, decode_head, decode_u64_be, encode_head, parse_chunk_key, FORMAT_KEY, HEAD_KEY,
    INDEXED_KEY,
};
use crate::redo::{Recovered, RedoLog};
use crate::tail::Tail;
use crate::Inner;

/// The store format this build creates: the redo log beside sled, the newest events' index
/// entries in memory, command records in the log chunks' trailers, log chunks compressed
/// ([`crate::chunk`], chunk format 3) and command-index entries that name the command's first
/// position ([`crate::keys`]), both of which a build that reads only store format 3 would take
/// for damage. A store of another format than this one or [`OLDEST_STORE_FORMAT`] is refused
/// ([`StoreError::NewerFormat`], [`StoreError::UnsupportedFormat`]).
pub const STORE_FORMAT: u32 = 4;
/// The oldest store format this build opens: format 3, whose log chunks are plain (chunk
/// format 2) and whose command-index entries hold the command's record. Such a store keeps
/// its format: its new chunks and entries are written so too, so the builds that wrote it
/// can still open it. Nothing converts one format to another (an export
/// imported into a new store is of [`STORE_FORMAT`]).
pub const OLDEST_STORE_FORMAT: u32 = 3;
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

/// sled's directory inside the data directory `dir`.
pub(crate) fn db_dir(dir: &Path) -> std::path::PathBuf {
    dir.join(DB_DIR_NAME)
}

/// Each stream's last (version, position).
type StreamHeads = HashMap<String, (u64, u64)>;

/// The error for a store of format `found`, which this build does not read.
fn format_error(dir: &Path, found: u32) -> StoreError {
    let path = dir.display().to_string();
    if found > STORE_FORMAT {
        StoreError::NewerFormat {
            path,
            found,
            supported: STORE_FORMAT,
        }
    } else {
        StoreError::UnsupportedFormat {
            path,
            found,
            supported: OLDEST_STORE_FORMAT,
        }
    }
}

/// How a store of `format` (one this build opens) writes its log chunks and command-index
/// entries.
fn encoding(format: u32) -> Encoding {
    if format == OLDEST_STORE_FORMAT {
        Encoding::Plain
    } else {
        Encoding::Compact
    }
}

/// Makes `dir` a store unless it is one: creates the directory when absent (and syncs its
/// parent, so that the new entry survives a power cut), refuses a directory with other
/// content, and writes the marker into an empty one.
pub(crate) fn create_if_missing(dir: &Path) -> Result<(), StoreError> {
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(not_a_store(dir, "it is a file, not a directory"))
        }
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            // Every directory created here gets its entry synced in its parent.
            let mut created = vec![dir];
            while let Some(parent) = created
                .last()
                .and_then(|last| last.parent())
                .filter(|p| !p.as_os_str().is_empty() && !p.exists())
            {
                created.push(parent);
            }
            // A new data directory is its owner's only; missing parents are created as
            // the umask says.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)
                    .map_err(io_err(format!("creating {}", parent.display())))?;
            }
            create_private_dir(dir).map_err(io_err(format!("creating {}", dir.display())))?;
            for created in created.iter().rev() {
                match created.parent().filter(|p| !p.as_os_str().is_empty()) {
                    Some(parent) => sync_dir(parent)?,
                    None => sync_dir(Path::new("."))?,
                }
            }
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
    Ok(())
}

/// Opens the store whose marker `dir` holds: sled, the format record, the redo log (its
/// groups written back into sled), the head checked, the tail rebuilt.
pub(crate) fn open_marked(dir: &Path) -> Result<Inner, StoreError> {
    let format = check_marker(dir)?;
    let db_dir = db_dir(dir);
    let db_file_path = db_dir.join(DB_FILE_NAME);
    // sled reads a damaged file as an empty database: remember whether there was one.
    let had_database = fs::metadata(&db_file_path).is_ok_and(|meta| meta.len() > 0);
    if !db_dir.exists() {
        create_private_dir(&db_dir).map_err(io_err(format!("creating {}", db_dir.display())))?;
    }
    let config = sled_config(&db_dir).map_err(|error| at_stake(dir, error))?;
    let tree = open_locked(&config, &db_dir)?;
    if !had_database {
        // sled created its files and wrote its `conf` without a sync: the file's bytes, the
        // files' entries and its directory's entry must survive a power cut.
        let conf = db_dir.join(SLED_CONF_FILE_NAME);
        fs::File::open(&conf)
            .and_then(|file| file.sync_all())
            .map_err(io_err(format!("syncing {}", conf.display())))?;
        sync_dir(&db_dir)?;
        sync_dir(dir)?;
    }
    let db_file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&db_file_path)
        .map_err(io_err(format!("opening {}", db_file_path.display())))?;
    check_format_record(dir, &tree, &db_file, had_database, format)?;
    // Checked once the redo log has written back what a crash cut short (`open_redo`).
    let head = read_head(&tree)?;
    let (redo, head, synced) = open_redo(dir, &tree, &db_file, head)?;
    debug_assert!(synced <= head.position);
    let indexed = open_index_mark(&tree, &head)?;
    let (tail, stream_heads) = rebuild_tail(&tree, indexed, head.position)?;
    let (head_tx, _) = watch::channel(head.position);
    Ok(Inner {
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
        pacer: Arc::new(IndexPacer::default()),
        redo: Mutex::new(redo),
        synced: AtomicU64::new(synced),
        head_tx,
        recent: Recent::default(),
        closed: AtomicBool::new(false),
        failed: AtomicBool::new(false),
        tail_events_max: tail_events_max(),
        encoding: encoding(format),
    })
}

/// Checks the `M` record a store writes into its database when created: the marker's format
/// (`format`); writes it into a new database. A database file that existed but holds no such
/// record is damaged (sled reads an unreadable file as an empty database).
pub(crate) fn check_format_record(
    dir: &Path,
    tree: &sled::Db,
    db_file: &fs::File,
    had_database: bool,
    format: u32,
) -> Result<(), StoreError> {
    let db_dir = &db_dir(dir);
    let expected = format!("{MARKER_MAGIC} format {format}");
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
                Some(found) if found == format => Ok(()),
                Some(found) if (OLDEST_STORE_FORMAT..=STORE_FORMAT).contains(&found) => {
                    Err(StoreError::Corrupt {
                        position: 0,
                        detail: format!(
                            "the database's format record says format {found}, the marker \
                             {MARKER_FILE_NAME} says {format}"
                        ),
                    })
                }
                Some(found) => Err(format_error(dir, found)),
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
            write_durably(tree, db_file, db_dir, batch, "writing the format record")
        }
    }
}

/// sled's `flush()`, then `sync_data()` of its database file (sled's own flush ends with
/// `sync_file_range`, which makes no promise against power loss), then an fsync of sled's
/// directory: sled's recovery starts from its newest `snap.*` file, which it writes, renames
/// into place and replaces at its own pace; the directory's fsync makes those renames durable.
pub(crate) fn make_durable(
    tree: &sled::Db,
    db_file: &fs::File,
    db_dir: &Path,
    context: &str,
) -> Result<(), StoreError> {
    tree.flush().map_err(sled_err(context))?;
    db_file
        .sync_data()
        .map_err(io_err(format!("{context}: fsync of the database file")))?;
    sync_dir(db_dir)
}

/// Applies a batch and makes it durable (the writes of opening a store).
fn write_durably(
    tree: &sled::Db,
    db_file: &fs::File,
    db_dir: &Path,
    batch: sled::Batch,
    context: &str,
) -> Result<(), StoreError> {
    tree.apply_batch(batch).map_err(sled_err(context))?;
    make_durable(tree, db_file, db_dir, context)
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

/// Reads the index mark (written with the format record when the database is created).
fn open_index_mark(tree: &sled::Db, head: &Head) -> Result<u64, StoreError> {
    let value = tree
        .get(INDEXED_KEY)
        .map_err(sled_err("reading the index mark"))?
        .ok_or_else(|| StoreError::Corrupt {
            position: 0,
            detail: "the database holds no index mark".to_string(),
        })?;
    let indexed = decode_u64_be(&value).ok_or_else(|| StoreError::Corrupt {
        position: 0,
        detail: "undecodable index mark".to_string(),
    })?;
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

/// Opens the redo log and brings sled up to it: the groups it holds past sled's head are
/// written back into sled. Returns the log, the head, and the position through which sled
/// is known durable. A store without redo files is refused, unless it holds nothing at all
/// (a store whose first open stopped before they were written).
fn open_redo(
    dir: &Path,
    tree: &sled::Db,
    db_file: &fs::File,
    head: Head,
) -> Result<(RedoLog, Head, u64), StoreError> {
    let db_dir = &db_dir(dir);
    let start_new = |head: Head| -> Result<(RedoLog, Head, u64), StoreError> {
        // The new log starts at sled's head: sled must be durable through it.
        make_durable(tree, db_file, db_dir, "starting the redo log")?;
        let log = RedoLog::create(dir, &head)?;
        let synced = head.position;
        Ok((log, head, synced))
    };
    let Some(recovered) = RedoLog::open(dir)? else {
        check_head(tree, &head)?;
        // A store whose creation was cut (a crash, a power cut) before its redo files were
        // durable: sled holds no event, so none was ever acknowledged (an acknowledgement
        // needs a redo record); its log starts now. A store with events and no redo files
        // is refused below.
        if head.position == 0 {
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
    let Recovered {
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
        make_durable(tree, db_file, db_dir, "bringing the redo log up to sled")?;
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
        db_dir,
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

/// A refusal before sled could open (its `conf` unreadable), naming the events at stake:
/// those the redo log records as acknowledged.
fn at_stake(dir: &Path, error: StoreError) -> StoreError {
    let StoreError::Corrupt { position, detail } = error else {
        return error;
    };
    let acknowledged = RedoLog::open(dir)
        .ok()
        .flatten()
        .map(|recovered| recovered.acknowledged.position);
    let stake = match acknowledged {
        Some(0) => "the redo log records no acknowledged event".to_string(),
        Some(n) => format!(
            "the redo log records events 1..{n} as acknowledged: sled cannot open the database              holding them without it; they are likely intact: restore the file from a backup              (sled 0.34 writes it once, when it creates the database)"
        ),
        None => "the redo log cannot say which events were acknowledged".to_string(),
    };
    StoreError::Corrupt {
        position,
        detail: format!("{detail}: {stake}"),
    }
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
    let text = format!("{MARKER_MAGIC}\nformat {STORE_FORMAT}\n");
    replace_durably(dir, MARKER_FILE_NAME, &[text.as_bytes()])
}

/// Checks the marker and returns its format: [`StoreError::NotAStore`] unless it is one, a
/// format error unless it names [`STORE_FORMAT`] or [`OLDEST_STORE_FORMAT`].
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
        Some(found) if (OLDEST_STORE_FORMAT..=STORE_FORMAT).contains(&found) => Ok(found),
        Some(found) => Err(format_error(dir, found)),
    }
}

// ---------------------------------------------------------------------------------------
// Keys and encodings
