//! The redo log of the sled store: one `fdatasync` per group.
//!
//! Each group's sled writes (its log chunks) are written to a redo file and made durable with
//! ONE `pwrite` and ONE `fdatasync`; then the group goes to sled, without a sync of its own,
//! and is acknowledged. sled is made durable lazily (a *checkpoint*: `flush()` and
//! `sync_data()` of its file, on the indexer's thread), before the redo space holding those
//! groups is written over. On open, what the redo log holds past the head sled recovered is
//! written back into sled.
//!
//! Two files, `<dir>/redo-0` and `<dir>/redo-1`, take turns. Each holds one *epoch*: a start
//! record (the head the epoch starts from), then a record per group, each chained to the one
//! before by the head it starts from. When the current file has passed
//! [`REDO_SWITCH_BYTES`] and a checkpoint has made sled durable through the current epoch's
//! start, the next group opens epoch `e + 1` at the start of the other file (its start record
//! and the group in one write). Recovery needs sled through the start of the older of the two
//! epochs it finds; the switch rule keeps that true.
//!
//! Record: `GFR1` ‖ kind (1: start, 2: group) ‖ epoch (u64 BE) ‖ the head it starts from
//! (position u64 BE ‖ hash 32) ‖ the head it ends at (position u64 BE ‖ hash 32) ‖ that
//! head's `recorded_at` length (u16 BE) ‖ payload length (u32 BE) ‖ `recorded_at` ‖ payload
//! ‖ CRC-32 of all the preceding bytes (u32 BE). A group's payload is its sled writes, per key:
//! key length (u32 LE) ‖ key ‖ value length (u32 LE) ‖ value. A file is read from its start
//! up to the first record that is torn (bad magic or checksum), of another epoch, or not
//! chained to the one before: what is left there is a torn write or an older epoch's records.
//! A bad record followed by a good one of the same epoch cannot come from a crash (records
//! are written one after another, each synced): that is damage, and the store refuses it.
//!
//! The files are written in place: after the first turns, a group's write lands on blocks the
//! file already has, and `fdatasync` has no file size to record.

use std::fs;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use grantflow_store::{Hash, Head, StoreError};

/// The two redo files in the data directory.
pub const REDO_FILE_NAMES: [&str; 2] = ["redo-0", "redo-1"];
/// Once the current redo file holds this many bytes, the next group starts the other one
/// (when a checkpoint allows it). `GRANTFLOW_REDO_SWITCH_BYTES` in the environment, read when
/// a store is opened, overrides it (tests and crash loops use a few KiB, to switch often).
pub const REDO_SWITCH_BYTES: u64 = 16 * 1024 * 1024;
/// The most zeros a new redo file is given (see `RedoLog::preallocate`): a switch size set
/// far larger (`GRANTFLOW_REDO_SWITCH_BYTES=4000000000`, to keep checkpoints out of a
/// measurement) grows the files past it instead of writing gigabytes of zeros first.
const PREALLOCATED_BYTES_MAX: u64 = 4 * REDO_SWITCH_BYTES + (1 << 20);
/// The environment variable that overrides [`REDO_SWITCH_BYTES`].
pub const REDO_SWITCH_BYTES_ENV: &str = "GRANTFLOW_REDO_SWITCH_BYTES";

const RECORD_MAGIC: &[u8; 4] = b"GFR1";
const KIND_START: u8 = 1;
const KIND_GROUP: u8 = 2;
/// Magic, kind, epoch, from (position, hash), to (position, hash), `recorded_at` length,
/// payload length.
const HEADER_BYTES: usize = 4 + 1 + 8 + 8 + 32 + 8 + 32 + 2 + 4;
const CRC_BYTES: usize = 4;
/// The largest payload a record may claim (a group is written in one record; an import's
/// groups are the largest, about 10,000 events of at most 64 KiB).
const PAYLOAD_BYTES_MAX: usize = 1 << 31;

/// A position and the hash of the event there.
type Point = (u64, Hash);

fn point(head: &Head) -> Point {
    (head.position, head.hash)
}

/// A record read back from a redo file.
#[derive(Debug, Clone)]
struct Decoded {
    kind: u8,
    epoch: u64,
    from: Point,
    to: Head,
    /// Where its payload lies in the file's bytes.
    payload: Range<usize>,
    /// The offset just past it.
    end: usize,
}

/// What a header says, before the checksum is known to hold.
struct Header {
    kind: u8,
    epoch: u64,
    from: Point,
    to_position: u64,
    to_hash: Hash,
    recorded_at_len: usize,
    payload_len: usize,
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn read_hash(bytes: &[u8], at: usize) -> Option<Hash> {
    bytes.get(at..at + 32)?.try_into().ok()
}

fn header_at(bytes: &[u8], offset: usize) -> Option<Header> {
    let header = bytes.get(offset..offset.checked_add(HEADER_BYTES)?)?;
    if &header[0..4] != RECORD_MAGIC {
        return None;
    }
    let payload_len = u32::from_be_bytes(header[95..99].try_into().ok()?) as usize;
    if payload_len > PAYLOAD_BYTES_MAX {
        return None;
    }
    Some(Header {
        kind: header[4],
        epoch: read_u64(header, 5)?,
        from: (read_u64(header, 13)?, read_hash(header, 21)?),
        to_position: read_u64(header, 53)?,
        to_hash: read_hash(header, 61)?,
        recorded_at_len: u16::from_be_bytes(header[93..95].try_into().ok()?) as usize,
        payload_len,
    })
}

/// The record at `offset`, if it is whole and passes its checksum.
fn decode_at(bytes: &[u8], offset: usize) -> Option<Decoded> {
    let header = header_at(bytes, offset)?;
    let recorded_at_start = offset + HEADER_BYTES;
    let payload_start = recorded_at_start + header.recorded_at_len;
    let payload_end = payload_start + header.payload_len;
    let end = payload_end + CRC_BYTES;
    let crc = u32::from_be_bytes(bytes.get(payload_end..end)?.try_into().ok()?);
    if crc32fast::hash(bytes.get(offset..payload_end)?) != crc {
        return None;
    }
    let recorded_at = std::str::from_utf8(bytes.get(recorded_at_start..payload_start)?).ok()?;
    Some(Decoded {
        kind: header.kind,
        epoch: header.epoch,
        from: header.from,
        to: Head {
            position: header.to_position,
            hash: header.to_hash,
            recorded_at: recorded_at.to_string(),
        },
        payload: payload_start..payload_end,
        end,
    })
}

/// Appends one record to `buffer`.
fn encode_record(
    buffer: &mut Vec<u8>,
    kind: u8,
    epoch: u64,
    from: &Head,
    to: &Head,
    entries: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), StoreError> {
    let start = buffer.len();
    let payload_len: usize = entries
        .iter()
        .map(|(key, value)| 8 + key.len() + value.len())
        .sum();
    let recorded_at = to.recorded_at.as_bytes();
    let (Ok(recorded_at_len), Some(payload_len_u32)) = (
        u16::try_from(recorded_at.len()),
        u32::try_from(payload_len)
            .ok()
            .filter(|_| payload_len <= PAYLOAD_BYTES_MAX),
    ) else {
        return Err(StoreError::Invalid(format!(
            "a group of {payload_len} bytes is too large for one redo record"
        )));
    };
    buffer.reserve(HEADER_BYTES + recorded_at.len() + payload_len + CRC_BYTES);
    buffer.extend_from_slice(RECORD_MAGIC);
    buffer.push(kind);
    buffer.extend_from_slice(&epoch.to_be_bytes());
    buffer.extend_from_slice(&from.position.to_be_bytes());
    buffer.extend_from_slice(&from.hash);
    buffer.extend_from_slice(&to.position.to_be_bytes());
    buffer.extend_from_slice(&to.hash);
    buffer.extend_from_slice(&recorded_at_len.to_be_bytes());
    buffer.extend_from_slice(&payload_len_u32.to_be_bytes());
    buffer.extend_from_slice(recorded_at);
    for (key, value) in entries {
        // Keys and values are far below 4 GiB: the payload's total fits u32 (checked above).
        buffer.extend_from_slice(&(key.len() as u32).to_le_bytes());
        buffer.extend_from_slice(key);
        buffer.extend_from_slice(&(value.len() as u32).to_le_bytes());
        buffer.extend_from_slice(value);
    }
    let crc = crc32fast::hash(&buffer[start..]);
    buffer.extend_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// A group's sled writes from a record's payload.
fn decode_entries(payload: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut entries = Vec::new();
    let mut rest = payload;
    let take = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        let len = u32::from_le_bytes(rest.get(0..4)?.try_into().ok()?) as usize;
        let bytes = rest.get(4..4 + len)?.to_vec();
        *rest = &rest[4 + len..];
        Some(bytes)
    };
    while !rest.is_empty() {
        let key = take(&mut rest)?;
        let value = take(&mut rest)?;
        entries.push((key, value));
    }
    Some(entries)
}

/// One redo file's epoch as read on open.
struct Scan {
    /// The epoch of its start record (`None`: no valid start record).
    epoch: Option<u64>,
    /// Its records, the start record first.
    records: Vec<Decoded>,
    /// Where the next record goes.
    end: usize,
    /// A bad record is followed by a good one of the same epoch.
    damaged_at: Option<usize>,
}

impl Scan {
    fn of(bytes: &[u8]) -> Scan {
        let mut scan = Scan {
            epoch: None,
            records: Vec::new(),
            end: 0,
            damaged_at: None,
        };
        let Some(start) = decode_at(bytes, 0) else {
            return scan;
        };
        if start.kind != KIND_START || start.from != point(&start.to) {
            return scan;
        }
        scan.epoch = Some(start.epoch);
        scan.end = start.end;
        scan.records.push(start);
        loop {
            let last = &scan.records[scan.records.len() - 1];
            let chained = |record: &Decoded| {
                record.kind == KIND_GROUP
                    && record.epoch == last.epoch
                    && record.from == point(&last.to)
                    && record.to.position > record.from.0
            };
            match decode_at(bytes, scan.end) {
                Some(record) if chained(&record) => {
                    scan.end = record.end;
                    scan.records.push(record);
                }
                Some(_) => return scan,
                None => {
                    // A torn record is the last one written; a good record of this epoch
                    // after a bad one is damage.
                    if let Some(header) = header_at(bytes, scan.end) {
                        let next = scan.end
                            + HEADER_BYTES
                            + header.recorded_at_len
                            + header.payload_len
                            + CRC_BYTES;
                        if header.epoch == last.epoch
                            && decode_at(bytes, next).is_some_and(|r| r.epoch == last.epoch)
                        {
                            scan.damaged_at = Some(scan.end);
                        }
                    }
                    return scan;
                }
            }
        }
    }

    fn last_head(&self) -> Option<&Head> {
        self.records.last().map(|record| &record.to)
    }
}

/// The last head the redo files in `dir` record, read without opening them for writing:
/// every group acknowledged before this call is in it. `Ok(None)` when neither file exists.
/// Another process may be appending meanwhile: a record it has not finished reads as torn
/// (the head before it), and a read that looks damaged is taken again.
pub(crate) fn acknowledged_head(dir: &Path) -> Result<Option<Head>, StoreError> {
    let paths = RedoLog::paths(dir);
    let mut attempts = 0;
    loop {
        let mut bytes = [Vec::new(), Vec::new()];
        let mut found = 0;
        for (index, path) in paths.iter().enumerate() {
            match fs::read(path) {
                Ok(read) => {
                    bytes[index] = read;
                    found += 1;
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_err(path, "reading")(error)),
            }
        }
        if found == 0 {
            return Ok(None);
        }
        let scans = [Scan::of(&bytes[0]), Scan::of(&bytes[1])];
        let damaged = scans.iter().any(|scan| scan.damaged_at.is_some());
        attempts += 1;
        if damaged && attempts < 5 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        let newest = match (scans[0].epoch, scans[1].epoch) {
            (None, None) => {
                return Err(StoreError::Corrupt {
                    position: 0,
                    detail: format!(
                        "{} and {} hold no record that passes its checksum",
                        paths[0].display(),
                        paths[1].display()
                    ),
                })
            }
            (Some(_), None) => 0,
            (None, Some(_)) => 1,
            (Some(a), Some(b)) => usize::from(b > a),
        };
        return Ok(scans[newest].last_head().cloned());
    }
}

/// A group found in the redo log on open: the head it starts from, the head it ends at, and
/// its sled writes.
pub(crate) struct RedoGroup {
    pub from: (u64, Hash),
    pub to: Head,
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What the redo log holds, read on open.
pub(crate) struct Recovered {
    /// The log, ready to append after its last group.
    pub log: RedoLog,
    /// The head the older epoch read starts from: sled must reach it.
    pub base: Head,
    /// The last head recorded: every event through it was acknowledged, or may have been.
    pub acknowledged: Head,
    /// The groups after `base`, in order.
    pub groups: Vec<RedoGroup>,
}

/// The redo files, open for appending.
pub(crate) struct RedoLog {
    files: [fs::File; 2],
    paths: [PathBuf; 2],
    /// The file being appended to.
    current: usize,
    /// Its epoch.
    epoch: u64,
    /// Where its next record goes.
    offset: u64,
    /// The position its epoch starts from.
    base: u64,
    /// The last head recorded (the next group starts from it).
    head: Head,
    /// From [`REDO_SWITCH_BYTES`] or the environment.
    switch_bytes: u64,
    /// Reused for every record.
    buffer: Vec<u8>,
}

/// What an append asks of the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// Nothing.
    Nothing,
    /// The current file is full (or a new one was started): make sled durable so that the
    /// next switch may happen.
    Checkpoint,
}

fn switch_bytes() -> u64 {
    std::env::var(REDO_SWITCH_BYTES_ENV)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|bytes| *bytes > 0)
        .unwrap_or(REDO_SWITCH_BYTES)
}

fn io_err(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = format!("{what} {}", path.display());
    move |error| StoreError::io(context, error)
}

impl RedoLog {
    /// The paths of the redo files in `dir`.
    pub fn paths(dir: &Path) -> [PathBuf; 2] {
        REDO_FILE_NAMES.map(|name| dir.join(name))
    }

    /// Creates both files anew (a new store, or a store whose files were lost at creation), both
    /// holding only a start record at `head`; then syncs the directory.
    pub fn create(dir: &Path, head: &Head) -> Result<RedoLog, StoreError> {
        Self::create_switching_at(dir, head, switch_bytes())
    }

    /// [`RedoLog::create`], switching files at `switch_bytes`.
    fn create_switching_at(
        dir: &Path,
        head: &Head,
        switch_bytes: u64,
    ) -> Result<RedoLog, StoreError> {
        let paths = Self::paths(dir);
        let mut files = Vec::with_capacity(2);
        for path in &paths {
            let file = crate::files::private_options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .map_err(io_err(path, "creating"))?;
            files.push(file);
        }
        let [file_0, file_1]: [fs::File; 2] = files
            .try_into()
            .map_err(|_| StoreError::Unavailable("opening the redo files".to_string()))?;
        let mut log = RedoLog {
            files: [file_0, file_1],
            paths,
            current: 1,
            epoch: 0,
            offset: 0,
            base: head.position,
            head: head.clone(),
            switch_bytes,
            buffer: Vec::new(),
        };
        log.reset(head)?;
        log.preallocate()?;
        // The files' names durable: a store with events and no redo files is refused.
        fs::File::open(dir)
            .and_then(|dir_file| dir_file.sync_all())
            .map_err(io_err(dir, "syncing the directory"))?;
        Ok(log)
    }

    /// Opens both files and reads what they hold. `Ok(None)` when neither exists.
    pub fn open(dir: &Path) -> Result<Option<Recovered>, StoreError> {
        let paths = Self::paths(dir);
        let mut found = Vec::with_capacity(2);
        for path in &paths {
            match fs::OpenOptions::new().read(true).write(true).open(path) {
                Ok(file) => found.push(Some(file)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => found.push(None),
                Err(error) => return Err(io_err(path, "opening")(error)),
            }
        }
        let missing = |index: usize| StoreError::Corrupt {
            position: 0,
            detail: format!(
                "{} is missing: the head this store acknowledged cannot be checked, so events \
                 may have been lost without a trace; restore the directory from a backup or \
                 re-import an export",
                paths[index].display()
            ),
        };
        let (file_0, file_1) = match (found.swap_remove(0), found.swap_remove(0)) {
            (None, None) => return Ok(None),
            (Some(file_0), Some(file_1)) => (file_0, file_1),
            (None, Some(_)) => return Err(missing(0)),
            (Some(_), None) => return Err(missing(1)),
        };
        let mut bytes = [Vec::new(), Vec::new()];
        for (index, file) in [&file_0, &file_1].into_iter().enumerate() {
            use std::io::Read;
            let mut reader = file;
            reader
                .read_to_end(&mut bytes[index])
                .map_err(io_err(&paths[index], "reading"))?;
        }
        let scans = [Scan::of(&bytes[0]), Scan::of(&bytes[1])];
        for (index, scan) in scans.iter().enumerate() {
            if let Some(offset) = scan.damaged_at {
                return Err(StoreError::Corrupt {
                    position: scan.last_head().map_or(0, |head| head.position + 1),
                    detail: format!(
                        "{} is damaged: the record at byte {offset} fails its checksum and \
                         later ones pass; acknowledged events may be lost; restore the \
                         directory from a backup or re-import an export",
                        paths[index].display()
                    ),
                });
            }
        }
        let newest = match (scans[0].epoch, scans[1].epoch) {
            (None, None) => {
                return Err(StoreError::Corrupt {
                    position: 0,
                    detail: format!(
                        "{} and {} are damaged (no record passes its checksum): the head this \
                         store acknowledged cannot be checked",
                        paths[0].display(),
                        paths[1].display()
                    ),
                })
            }
            (Some(_), None) => 0,
            (None, Some(_)) => 1,
            (Some(a), Some(b)) => usize::from(b > a),
        };
        let older = 1 - newest;
        let newest_scan = &scans[newest];
        let newest_start = &newest_scan.records[0];
        let older_scan = &scans[older];
        // The older epoch counts when it leads straight into the newest one.
        let chained = older_scan.epoch.is_some()
            && older_scan.epoch.map(|epoch| epoch + 1) == newest_scan.epoch
            && older_scan.last_head().map(point) == Some(newest_start.from);
        let mut groups = Vec::new();
        let mut base = newest_start.to.clone();
        let mut sources: Vec<(&Scan, &Vec<u8>)> = Vec::with_capacity(2);
        if chained {
            base = older_scan.records[0].to.clone();
            sources.push((older_scan, &bytes[older]));
        }
        sources.push((newest_scan, &bytes[newest]));
        for (scan, file_bytes) in sources {
            for record in scan.records.iter().skip(1) {
                let entries = file_bytes
                    .get(record.payload.clone())
                    .and_then(decode_entries)
                    .ok_or_else(|| StoreError::Corrupt {
                        position: record.from.0 + 1,
                        detail: "a redo record passes its checksum but its writes cannot be \
                                 read"
                            .to_string(),
                    })?;
                groups.push(RedoGroup {
                    from: record.from,
                    to: record.to.clone(),
                    entries,
                });
            }
        }
        let acknowledged = newest_scan
            .last_head()
            .cloned()
            .unwrap_or_else(|| base.clone());
        let log = RedoLog {
            files: [file_0, file_1],
            paths,
            current: newest,
            epoch: newest_start.epoch,
            offset: newest_scan.end as u64,
            base: newest_start.to.position,
            head: acknowledged.clone(),
            switch_bytes: switch_bytes(),
            buffer: Vec::new(),
        };
        Ok(Some(Recovered {
            log,
            base,
            acknowledged,
            groups,
        }))
    }

    /// Records a group (`entries`, ending at `to`) durably: one write, one `fdatasync`.
    /// `synced` is the position through which sled is known durable: when the current file
    /// is full and `synced` reaches its epoch's start, the group starts the other file.
    pub fn append(
        &mut self,
        to: &Head,
        entries: &[(Vec<u8>, Vec<u8>)],
        synced: u64,
    ) -> Result<After, StoreError> {
        self.buffer.clear();
        let full = self.offset >= self.switch_bytes;
        let switch = full && synced >= self.base;
        let from = &self.head;
        let (file, offset, epoch) = if switch {
            let epoch = self.epoch + 1;
            encode_record(&mut self.buffer, KIND_START, epoch, from, from, &[])?;
            (1 - self.current, 0, epoch)
        } else {
            (self.current, self.offset, self.epoch)
        };
        encode_record(&mut self.buffer, KIND_GROUP, epoch, from, to, entries)?;
        let from_position = from.position;
        let path = &self.paths[file];
        self.files[file]
            .write_all_at(&self.buffer, offset)
            .and_then(|()| self.files[file].sync_data())
            .map_err(io_err(path, "writing"))?;
        if switch {
            self.current = file;
            self.epoch = epoch;
            self.base = from_position;
        }
        self.offset = offset + self.buffer.len() as u64;
        self.head = to.clone();
        if self.buffer.capacity() > 4 * 1024 * 1024 {
            self.buffer = Vec::new();
        }
        Ok(if switch || full {
            After::Checkpoint
        } else {
            After::Nothing
        })
    }

    /// Writes zeros past both files' start records, through [`RedoLog::preallocated_bytes`],
    /// then syncs them: a group written over blocks the file already has is durable with one
    /// `fdatasync` that records no new size, which costs about half as much as one after a
    /// write that grows the file (BENCHMARKS.md, "The redo log's preallocation"). Without it,
    /// a new store's first two epochs (32 MiB of groups) all grow their files. Done after the start
    /// records are durable, so a crash meanwhile leaves a valid log (zeros read as the end).
    fn preallocate(&mut self) -> Result<(), StoreError> {
        const CHUNK: usize = 1 << 20;
        let target = self.preallocated_bytes();
        let zeros = vec![0u8; CHUNK];
        for file in 0..2 {
            let path = &self.paths[file];
            // Both files hold one start record at the same head: `offset` long.
            let mut at = self.offset;
            while at < target {
                let length = CHUNK.min(usize::try_from(target - at).unwrap_or(CHUNK));
                self.files[file]
                    .write_all_at(&zeros[..length], at)
                    .map_err(io_err(path, "preallocating"))?;
                at += length as u64;
            }
            self.files[file]
                .sync_data()
                .map_err(io_err(path, "preallocating"))?;
        }
        Ok(())
    }

    /// How long [`RedoLog::create`] makes each file: the switch size and room for the group
    /// that crosses it (up to 1 MiB more), at most [`PREALLOCATED_BYTES_MAX`].
    fn preallocated_bytes(&self) -> u64 {
        (self.switch_bytes + self.switch_bytes.min(1 << 20)).min(PREALLOCATED_BYTES_MAX)
    }

    /// Empties the log once sled is durable through `head`: the other file gets a new epoch
    /// holding only a start record at `head`, then this one gets the next (so that neither
    /// file's groups count any more, and losing sled's events is noticed).
    pub fn reset(&mut self, head: &Head) -> Result<(), StoreError> {
        for file in [1 - self.current, self.current] {
            let epoch = self.epoch + 1;
            self.buffer.clear();
            encode_record(&mut self.buffer, KIND_START, epoch, head, head, &[])?;
            let path = &self.paths[file];
            self.files[file]
                .write_all_at(&self.buffer, 0)
                .and_then(|()| self.files[file].sync_data())
                .map_err(io_err(path, "writing"))?;
            self.current = file;
            self.epoch = epoch;
            self.offset = self.buffer.len() as u64;
            self.base = head.position;
            self.head = head.clone();
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    fn head(position: u64, byte: u8) -> Head {
        Head {
            position,
            hash: [byte; 32],
            recorded_at: format!("2026-11-29T00:00:{position:02}Z"),
        }
    }

    fn entries(n: u8) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n).map(|i| (vec![b'L', i], vec![i; 100])).collect()
    }

    #[test]
    fn a_new_log_is_preallocated_and_reads_back_past_the_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RedoLog::create(dir.path(), &head(0, 0)).unwrap();
        let target = log.preallocated_bytes();
        assert!(target > log.switch_bytes);
        for path in RedoLog::paths(dir.path()) {
            assert_eq!(
                fs::metadata(&path).unwrap().len(),
                target,
                "{}",
                path.display()
            );
        }
        log.append(&head(3, 3), &entries(3), 0).unwrap();
        log.append(&head(5, 5), &entries(2), 0).unwrap();
        drop(log);
        let recovered = RedoLog::open(dir.path()).unwrap().unwrap();
        assert_eq!(recovered.acknowledged, head(5, 5));
        let ends: Vec<u64> = recovered.groups.iter().map(|g| g.to.position).collect();
        assert_eq!(ends, vec![3, 5]);
        // Groups overwrite the zeros in place: the files did not grow.
        for path in RedoLog::paths(dir.path()) {
            assert_eq!(fs::metadata(&path).unwrap().len(), target);
        }
    }

    #[test]
    fn the_acknowledged_head_is_read_while_the_log_is_open_and_across_a_switch() {
        let dir = tempfile::tempdir().unwrap();
        assert!(acknowledged_head(dir.path()).unwrap().is_none());
        let mut log = RedoLog::create(dir.path(), &head(0, 0)).unwrap();
        assert_eq!(acknowledged_head(dir.path()).unwrap(), Some(head(0, 0)));
        log.switch_bytes = 600;
        for position in 1..=8u64 {
            log.append(&head(position, position as u8), &entries(2), position)
                .unwrap();
            assert_eq!(
                acknowledged_head(dir.path()).unwrap(),
                Some(head(position, position as u8))
            );
        }
        assert!(log.epoch > 0, "the files switched");
    }

    #[test]
    fn a_huge_switch_size_preallocates_a_bounded_length() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RedoLog::create_switching_at(dir.path(), &head(0, 0), 4_000_000_000).unwrap();
        for path in RedoLog::paths(dir.path()) {
            assert_eq!(fs::metadata(&path).unwrap().len(), PREALLOCATED_BYTES_MAX);
        }
        log.append(&head(3, 3), &entries(3), 0).unwrap();
        drop(log);
        let recovered = RedoLog::open(dir.path()).unwrap().unwrap();
        assert_eq!(recovered.acknowledged, head(3, 3));
    }

    #[test]
    fn groups_come_back_in_order_across_a_switch() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RedoLog::create(dir.path(), &head(0, 0)).unwrap();
        log.switch_bytes = 600;
        let mut synced = 0;
        let mut afters = Vec::new();
        for position in 1..=8u64 {
            afters.push(
                log.append(&head(position, position as u8), &entries(2), synced)
                    .unwrap(),
            );
            if position == 5 {
                synced = 5;
            }
        }
        assert!(afters.contains(&After::Checkpoint));
        let recovered = RedoLog::open(dir.path()).unwrap().unwrap();
        assert_eq!(recovered.acknowledged, head(8, 8));
        let froms: Vec<u64> = recovered.groups.iter().map(|g| g.from.0).collect();
        assert_eq!(froms.last(), Some(&7));
        assert_eq!(recovered.base.position, froms[0]);
        assert!(froms.windows(2).all(|w| w[1] == w[0] + 1), "{froms:?}");
        assert_eq!(recovered.groups[0].entries, entries(2));
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_a_damaged_middle_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RedoLog::create(dir.path(), &head(0, 0)).unwrap();
        for position in 1..=3u64 {
            log.append(&head(position, 1), &entries(1), 0).unwrap();
        }
        let path = &RedoLog::paths(dir.path())[log.current];
        let bytes = fs::read(path).unwrap();
        let len = log.offset as usize;
        // Torn: the last record's end is garbage.
        let mut torn = bytes.clone();
        torn[len - 3] ^= 0xff;
        fs::write(path, &torn).unwrap();
        let recovered = RedoLog::open(dir.path()).unwrap().unwrap();
        assert_eq!(recovered.acknowledged.position, 2);
        // Damaged in the middle: refused.
        let mut damaged = bytes.clone();
        let second = Scan::of(&bytes).records[2].payload.start;
        damaged[second] ^= 0xff;
        fs::write(path, &damaged).unwrap();
        assert!(matches!(
            RedoLog::open(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_switch_torn_by_a_crash_leaves_the_older_epoch_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RedoLog::create(dir.path(), &head(0, 0)).unwrap();
        log.switch_bytes = 300;
        log.append(&head(1, 1), &entries(2), 0).unwrap();
        let before = log.current;
        // Full, and sled synced through the epoch's start: this group starts the other file.
        assert_eq!(
            log.append(&head(2, 2), &entries(2), 0).unwrap(),
            After::Checkpoint
        );
        assert_ne!(log.current, before);
        let path = &RedoLog::paths(dir.path())[log.current];
        let good = fs::read(path).unwrap();
        // The new epoch's write torn inside its group record: that group was never
        // acknowledged, and the older epoch still holds everything before it.
        let mut torn = good.clone();
        let cut = log.offset as usize - 20;
        torn[cut] ^= 0xff;
        fs::write(path, &torn).unwrap();
        let recovered = RedoLog::open(dir.path()).unwrap().unwrap();
        assert_eq!(recovered.acknowledged, head(1, 1));
        let froms: Vec<u64> = recovered.groups.iter().map(|g| g.from.0).collect();
        assert_eq!(froms, vec![0]);
        // Whole, both epochs chain: the groups from 0 and from 1.
        fs::write(path, &good).unwrap();
        let recovered = RedoLog::open(dir.path()).unwrap().unwrap();
        assert_eq!(recovered.acknowledged, head(2, 2));
        let froms: Vec<u64> = recovered.groups.iter().map(|g| g.from.0).collect();
        assert_eq!(froms, vec![0, 1]);
        assert_eq!(recovered.base, head(0, 0));
        // A sled not synced through the current epoch's start holds the next switch back.
        log.append(&head(3, 3), &entries(2), 0).unwrap();
        let current = log.current;
        log.append(&head(4, 4), &entries(2), 0).unwrap();
        assert_eq!(
            log.current, current,
            "no switch before sled is synced through 1"
        );
        log.append(&head(5, 5), &entries(2), 1).unwrap();
        assert_ne!(log.current, current);
    }

    #[test]
    fn a_reset_leaves_no_group_and_either_start_record_alone_is_enough() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RedoLog::create(dir.path(), &head(0, 0)).unwrap();
        log.append(&head(4, 4), &entries(3), 0).unwrap();
        log.reset(&head(4, 4)).unwrap();
        let recovered = RedoLog::open(dir.path()).unwrap().unwrap();
        assert!(recovered.groups.is_empty());
        assert_eq!(recovered.base, head(4, 4));
        for damaged in 0..2 {
            let path = &RedoLog::paths(dir.path())[damaged];
            let good = fs::read(path).unwrap();
            let mut bad = good.clone();
            bad[10] ^= 1;
            fs::write(path, &bad).unwrap();
            let recovered = RedoLog::open(dir.path()).unwrap().unwrap();
            assert_eq!(recovered.acknowledged, head(4, 4));
            fs::write(path, &good).unwrap();
        }
    }
}
