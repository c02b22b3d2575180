//! Opening a store for verbs that only read, without writing to it: on a private copy.
//!
//! Opening sled writes, even to a store closed cleanly: its recovery writes a new snapshot
//! file (`snap.<lsn>`) whenever its log moved since the last one, and zeroes the rest of its
//! last segment past the recovered tip; after a crash or a power cut, grantflow's own opening
//! writes the redo log's last groups back into sled, and a close checkpoints and starts a new
//! redo epoch. A verb that only reads must leave a store exactly as it found it (a damaged
//! store above all: what sled's recovery writes over may be what is needed to repair it). So
//! it opens a copy: the marker, the redo files, the projection snapshots and sled's directory
//! are copied into a new directory under the system's temporary directory (`TMPDIR`), the
//! copy is opened (recovered there, checked against the redo log there), and the copy is
//! removed when the store is dropped (or, if the process was killed first, by the next
//! read-only open, which removes the copies of processes that are gone). The data directory
//! itself is only read.
//!
//! The price is the copy: a file copy of sled's database (`copy_file_range`, which file
//! systems with reflinks turn into a clone), and the redo files without their preallocated
//! zeros.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use grantflow_store::StoreError;

use crate::config::OPEN_LOCK_WAIT_MS;
use crate::errors::io_err;
use crate::recovery::{db_dir, MARKER_FILE_NAME};
use crate::redo::RedoLog;
use crate::snapshot::SNAPSHOT_KEY_FILE;

/// Blocks of a redo file that are all zeros are not copied (its preallocation).
const SPARSE_BLOCK_BYTES: usize = 64 * 1024;

/// A private copy of a store, removed when dropped.
pub(crate) struct ReadOnlyCopy {
    /// The copy (a data directory).
    pub(crate) path: PathBuf,
    /// The directory created for it (the copy's parent).
    root: PathBuf,
    /// The data directory it copies.
    pub(crate) original: PathBuf,
    /// A shared lock on the original's database file, held while the copy lives: a writer
    /// (sled's exclusive lock) waits, as it would for the store opened in place.
    _lock: Option<fs::File>,
}

impl Drop for ReadOnlyCopy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

impl ReadOnlyCopy {
    /// Copies the store in `dir` (marked: its marker was checked to exist).
    pub(crate) fn of(dir: &Path) -> Result<ReadOnlyCopy, StoreError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        remove_stale_copies();
        let root = std::env::temp_dir().join(format!(
            "{COPY_PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let lock = lock_shared(dir)?;
        let _ = fs::remove_dir_all(&root);
        let path = root.join("data");
        // The copy is as private as the store: owner-only from its root down.
        crate::files::create_private_dir(&path).map_err(io_err(format!(
            "creating a private copy of {} in {} (verbs that only read open a copy)",
            dir.display(),
            root.display()
        )))?;
        let copy = ReadOnlyCopy {
            path,
            root,
            original: dir.to_path_buf(),
            _lock: lock,
        };
        copy.fill()?;
        Ok(copy)
    }

    fn fill(&self) -> Result<(), StoreError> {
        let dir = &self.original;
        let redo = RedoLog::paths(dir);
        let entries = fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("reading {}", dir.display())))?;
            let name = entry.file_name();
            let text = name.to_string_lossy();
            let source = entry.path();
            if redo.contains(&source) {
                copy_sparse(&source, &self.path.join(&name))?;
            } else if text == MARKER_FILE_NAME
                || text == SNAPSHOT_KEY_FILE
                || (text.starts_with("snapshot-") && !text.ends_with(".tmp"))
            {
                copy_file(&source, &self.path.join(&name))?;
            }
        }
        let db = db_dir(dir);
        if db.is_dir() {
            copy_tree(&db, &db_dir(&self.path))?;
        }
        Ok(())
    }

    /// `error` with the copy's path replaced by the data directory's, so that a message names
    /// the files the user has.
    pub(crate) fn rename_in(&self, error: StoreError) -> StoreError {
        let from = self.path.display().to_string();
        let to = self.original.display().to_string();
        let fix = |text: String| text.replace(&from, &to);
        match error {
            StoreError::NotAStore { path, detail } => StoreError::NotAStore {
                path: fix(path),
                detail: fix(detail),
            },
            StoreError::NewerFormat {
                path,
                found,
                supported,
            } => StoreError::NewerFormat {
                path: fix(path),
                found,
                supported,
            },
            StoreError::UnsupportedFormat {
                path,
                found,
                supported,
            } => StoreError::UnsupportedFormat {
                path: fix(path),
                found,
                supported,
            },
            StoreError::Corrupt { position, detail } => StoreError::Corrupt {
                position,
                detail: fix(detail),
            },
            StoreError::ImportRefused { position, detail } => StoreError::ImportRefused {
                position,
                detail: fix(detail),
            },
            StoreError::Conflict(text) => StoreError::Conflict(fix(text)),
            StoreError::Invalid(text) => StoreError::Invalid(fix(text)),
            StoreError::Unavailable(text) => StoreError::Unavailable(fix(text)),
            StoreError::Io { context, source } => StoreError::Io {
                context: fix(context),
                source: fix(source.to_string()).into(),
            },
        }
    }
}

/// The name of a copy's directory under the temporary directory: this, the process id, a
/// counter.
const COPY_PREFIX: &str = "grantflow-read-";

/// Removes the copies left by processes that are gone (killed before they could remove
/// theirs): those whose process id names no running process.
fn remove_stale_copies() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(COPY_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Takes a shared lock on the database file of the store in `dir` (none when it has none),
/// waiting up to [`OPEN_LOCK_WAIT_MS`] for a process that has the store open.
fn lock_shared(dir: &Path) -> Result<Option<fs::File>, StoreError> {
    let db_dir = db_dir(dir);
    let path = db_dir.join("db");
    let file = match fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_err(format!("opening {}", path.display()))(error)),
    };
    let started = std::time::Instant::now();
    loop {
        match file.try_lock_shared() {
            Ok(()) => return Ok(Some(file)),
            Err(fs::TryLockError::WouldBlock)
                if started.elapsed().as_millis() < u128::from(OPEN_LOCK_WAIT_MS) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::io(
                    format!(
                        "opening {} (another grantflow process has this store open)",
                        db_dir.display()
                    ),
                    std::io::Error::other("could not acquire lock"),
                ))
            }
            Err(fs::TryLockError::Error(error)) => {
                return Err(io_err(format!("locking {}", path.display()))(error))
            }
        }
    }
}

fn copy_file(from: &Path, to: &Path) -> Result<(), StoreError> {
    fs::copy(from, to)
        .map(drop)
        .map_err(io_err(format!("copying {}", from.display())))
}

/// Copies a directory's regular files and subdirectories.
fn copy_tree(from: &Path, to: &Path) -> Result<(), StoreError> {
    crate::files::create_private_dir(to).map_err(io_err(format!("creating {}", to.display())))?;
    let entries = fs::read_dir(from).map_err(io_err(format!("reading {}", from.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_err(format!("reading {}", from.display())))?;
        let kind = entry
            .file_type()
            .map_err(io_err(format!("reading {}", entry.path().display())))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            copy_file(&entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Copies a file, leaving holes where its blocks are all zeros (a redo file's preallocation).
fn copy_sparse(from: &Path, to: &Path) -> Result<(), StoreError> {
    let context = || format!("copying {}", from.display());
    let mut source = fs::File::open(from).map_err(io_err(context()))?;
    let mut target = crate::files::private_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(to)
        .map_err(io_err(context()))?;
    let mut block = vec![0u8; SPARSE_BLOCK_BYTES];
    let mut len = 0u64;
    loop {
        let mut filled = 0;
        while filled < block.len() {
            match source.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(io_err(context())(error)),
            }
        }
        if filled == 0 {
            break;
        }
        if block[..filled].iter().any(|byte| *byte != 0) {
            target
                .seek(SeekFrom::Start(len))
                .and_then(|_| target.write_all(&block[..filled]))
                .map_err(io_err(context()))?;
        }
        len += filled as u64;
        if filled < block.len() {
            break;
        }
    }
    target.set_len(len).map_err(io_err(context()))
}
