//! The baselines: the same envelope bytes appended durably, one group at a time.
//!
//! - [`SqliteSink`], the peer: what a team would build instead. SQLite in WAL mode with
//!   `synchronous=FULL`; one table `events(position INTEGER PRIMARY KEY, stream TEXT, version
//!   INTEGER, type TEXT, body BLOB, hash BLOB, UNIQUE(stream, version))`; one transaction per
//!   group.
//! - [`FileSink`], the limit: the records appended to a plain file, one `fdatasync` per group.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use rusqlite::{params, Connection};

use crate::records::EventRec;

/// A durable append-only sink of event groups.
pub trait Sink: Send {
    /// Appends a group and returns once it is durable.
    fn write_group(&mut self, group: &[&EventRec]) -> anyhow::Result<()>;
}

/// The SQLite schema of the peer.
pub const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    stream   TEXT NOT NULL,
    version  INTEGER NOT NULL,
    type     TEXT NOT NULL,
    body     BLOB NOT NULL,
    hash     BLOB NOT NULL,
    UNIQUE (stream, version)
);";

const SQLITE_INSERT: &str =
    "INSERT INTO events (stream, version, type, body, hash) VALUES (?1, ?2, ?3, ?4, ?5)";

/// The SQLite peer.
pub struct SqliteSink {
    conn: Connection,
}

impl SqliteSink {
    /// Opens (creating) the database at `path`: WAL, `synchronous=FULL`.
    pub fn open(path: &Path) -> anyhow::Result<SqliteSink> {
        let conn = Connection::open(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
        anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "journal_mode is {mode}");
        conn.execute_batch("PRAGMA synchronous=FULL;")?;
        conn.execute_batch(SQLITE_SCHEMA)?;
        Ok(SqliteSink { conn })
    }

    /// The connection (for reads).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl Sink for SqliteSink {
    fn write_group(&mut self, group: &[&EventRec]) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(SQLITE_INSERT)?;
            for event in group {
                insert.execute(params![
                    event.stream,
                    event.version as i64,
                    event.event_type,
                    event.body,
                    &event.hash[..]
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// The plain file: per event `len (u32 LE) ‖ canonical bytes ‖ hash`, as in the sled store's
/// log chunks; one `write` and one `fdatasync` per group.
pub struct FileSink {
    file: File,
    buffer: Vec<u8>,
}

impl FileSink {
    /// Creates (truncating) the file.
    pub fn create(path: &Path) -> anyhow::Result<FileSink> {
        let file = File::create(path)?;
        // Make the file's directory entry durable once, as a real log would.
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(FileSink {
            file,
            buffer: Vec::with_capacity(1 << 20),
        })
    }
}

impl Sink for FileSink {
    fn write_group(&mut self, group: &[&EventRec]) -> anyhow::Result<()> {
        self.buffer.clear();
        for event in group {
            self.buffer
                .extend_from_slice(&(event.body.len() as u32).to_le_bytes());
            self.buffer.extend_from_slice(&event.body);
            self.buffer.extend_from_slice(&event.hash);
        }
        self.file.write_all(&self.buffer)?;
        self.file.sync_data()?;
        Ok(())
    }
}

/// Reads a plain file written by [`FileSink`]: calls `visit(body, hash)` per event.
pub fn scan_file(
    path: &Path,
    mut visit: impl FnMut(&[u8], [u8; 32]) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    use std::io::Read;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut count = 0;
    let mut len = [0u8; 4];
    let mut body = Vec::new();
    loop {
        match reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(count),
            Err(e) => return Err(e.into()),
        }
        body.resize(u32::from_le_bytes(len) as usize, 0);
        reader.read_exact(&mut body)?;
        let mut hash = [0u8; 32];
        reader.read_exact(&mut hash)?;
        visit(&body, hash)?;
        count += 1;
    }
}

/// Reads the SQLite peer's table in position order: calls `visit(body, hash)` per event.
pub fn scan_sqlite(
    conn: &Connection,
    mut visit: impl FnMut(&[u8], [u8; 32]) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut statement = conn.prepare("SELECT body, hash FROM events ORDER BY position")?;
    let mut rows = statement.query([])?;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        let body = row.get_ref(0)?.as_blob()?;
        let hash_bytes = row.get_ref(1)?.as_blob()?;
        let mut hash = [0u8; 32];
        anyhow::ensure!(hash_bytes.len() == 32, "bad hash length");
        hash.copy_from_slice(hash_bytes);
        visit(body, hash)?;
        count += 1;
    }
    Ok(count)
}
