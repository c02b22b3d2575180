//! How grantflow configures and opens sled.

use std::fs;
use std::path::Path;

use grantflow_store::StoreError;

use crate::errors::io_err;

/// How long `open` waits for the directory's lock: a store just closed in this process, or
/// by a process that is still exiting, releases it once sled's flusher thread has stopped.
pub const OPEN_LOCK_WAIT_MS: u64 = 3_000;

/// sled 0.34 reports a held lock as an `Other` I/O error with this text.
fn is_lock_error(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Opens sled, waiting up to [`OPEN_LOCK_WAIT_MS`] for another holder of the lock to let go;
/// a panic inside sled (a damaged database) becomes an error.
pub(crate) fn open_locked(config: &sled::Config, db_dir: &Path) -> Result<sled::Db, StoreError> {
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
                return Err(StoreError::io(
                    format!("opening {}{hint}", db_dir.display()),
                    error,
                ));
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
/// waiting up to [`OPEN_LOCK_WAIT_MS`] for the lock like [`crate::SledStore::open`]: a store dropped
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

/// sled's page cache: its resident memory follows this (its default is 1 GiB).
pub const CACHE_CAPACITY_BYTES: u64 = 64 * 1024 * 1024;
/// sled's background flusher period (which is also when sled itself fsyncs). Groups reach
/// sled's memory without sealing its I/O buffer (see `write_group`), so the flusher is what
/// writes it out between checkpoints: every 50 ms, so that each write is small (with sled's
/// default of 1 s, a buffer of megabytes goes out at once and stalls the groups behind it;
/// BENCHMARKS.md).
pub const FLUSH_EVERY_MS: u64 = 50;
/// sled's segment (and I/O buffer) size for new stores. sled writes any page whose
/// serialized size is over a quarter of it to a separate *blob* file, which it reads back
/// whole and never fsyncs; a leaf holds up to 17 values, so with the default 512 KiB a leaf
/// of log chunks went to a blob. At 8 MiB a leaf of 17 values of [`crate::VALUE_BYTES_MAX`]
/// (1.1 MiB) stays well under the 2 MiB threshold: every write lands in the fsynced db file.
/// Stores created with another size keep theirs (sled cannot change it; see `segment_bytes`).
pub const SEGMENT_BYTES: usize = 8 * 1024 * 1024;
/// sled's configuration file inside its directory, which records the segment size.
pub(crate) const SLED_CONF_FILE_NAME: &str = "conf";

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn segment_size_is_the_recorded_one_else_the_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(segment_bytes(dir.path()).unwrap(), SEGMENT_BYTES);
        // A database created with sled's default of 512 KiB keeps it.
        let conf = dir.path().join(SLED_CONF_FILE_NAME);
        fs::write(&conf, "segment_size: 524288\nuse_compression: false\n").unwrap();
        assert_eq!(segment_bytes(dir.path()).unwrap(), 524_288);
        fs::write(&conf, "segment_size: 1000\n").unwrap();
        assert!(segment_bytes(dir.path()).is_err());
        fs::write(&conf, "garbage").unwrap();
        assert!(segment_bytes(dir.path()).is_err());
    }
}
