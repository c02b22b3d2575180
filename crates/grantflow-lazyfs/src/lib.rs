//! A power-cut harness: a lazy FUSE file system over a backing directory that, when the test
//! cuts the power, keeps only what a real file system would have had to keep. Modelled on
//! LazyFS ("When Amnesia Strikes", VLDB 2024), for grantflow's power-cut tests (issue 26).
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use grantflow_lazyfs::{LazyFs, Options};
//! # let (backing, mountpoint) = (std::path::Path::new("b"), std::path::Path::new("m"));
//! let fs = LazyFs::mount(backing, mountpoint, Options { strict: true, torn_writes: true, seed: 7 })?;
//! // ... run `grantflow exec` with its data directory under `mountpoint`, SIGKILL it ...
//! let report = fs.cut()?; // `backing` now holds what the power cut left
//! println!("{report}");
//! let fs = LazyFs::mount(backing, mountpoint, Options::default())?; // and check what survived
//! # drop(fs); Ok(()) }
//! ```
//!
//! # The model
//!
//! The mount keeps the whole file system in memory, as inodes with two views:
//!
//! * a file has its **current** data (what reads see) and its **durable** data (what a cut
//!   keeps), as 4 KiB copy-on-write pages, so a snapshot at an fsync costs one pointer per page;
//! * a directory has its **current** entries (name to inode) and its **durable** entries.
//!
//! At mount, everything in the backing directory is loaded as both current and durable. While
//! mounted, the backing directory is not touched. [`LazyFs::cut`] walks the durable view from the
//! root (durable entries, durable data, plus any torn write) and makes the backing directory hold
//! exactly that; [`LazyFs::unmount`] and `Drop` (a clean shutdown) make it hold the current view.
//!
//! Why not durable state on disk plus unsynced state in memory, or an undo journal on the
//! backing directory? Because durability of data and of names are independent: a file created,
//! written and fsynced in a directory never fsynced has durable data and no durable name, and a
//! later fsync of the directory makes its name durable pointing at the data of its *last fsync*
//! (not the current data). Renames in and out of directories fsynced at different times make it
//! worse. With both views in memory each rule below is one assignment, and a cut is one walk.
//! The price is memory: the model holds every file's bytes (zero pages are not stored, so a
//! preallocated file costs nothing until written). It is sized for test data directories.
//!
//! # The rules
//!
//! Strict mode (`Options::strict`, the mode power-cut loops should use):
//!
//! * `write`, `ftruncate`/`truncate`/`set_len` (by descriptor or by name; the issue lists
//!   truncate-by-name with the directory operations, but a size belongs to the file, not to
//!   its directory, so here it is part of the file's data) and `fallocate` change the current
//!   data; `fsync` or `fdatasync`
//!   of the file (the two are the same here) makes its current data and size durable, and only
//!   them: not its name. `close` makes nothing durable. `sync_file_range` reaches no file system
//!   operation through FUSE and makes nothing durable either (sled's `flush()` relies on it; an
//!   fsync must follow).
//! * `create` (including `O_CREAT|O_EXCL`), `mkdir`, `unlink`, `rmdir` and `rename` change the
//!   current entries of the directories involved; `fsync` of a directory makes *all* its current
//!   entries durable. A created file whose directory is never fsynced is gone after a cut, even
//!   if the file itself was fsynced; an unlinked or renamed-away name comes back.
//! * A rename across directories: each directory's side is durable at that directory's fsync,
//!   independently (the source's removal at the source's fsync, the target's new name at the
//!   target's fsync). Durable needs both fsyncs; with one of them, a cut may leave the file
//!   under both names or under neither. That is the most pessimistic reading of POSIX; ext4
//!   happens to commit both sides together.
//! * A name made durable for a file whose data was never fsynced is an empty file (or its data
//!   of the last fsync), as after a crash on ext4.
//! * Modes, owners and times are not part of the model's durability: a cut keeps the current
//!   mode of each surviving file.
//!
//! Non-strict mode: file data follows the same rules, but directory changes are durable at
//! once (only file data is lazy, as in LazyFS's page cache).
//!
//! Torn writes (`Options::torn_writes`): at a cut, each surviving file whose last operation
//! since its last fsync was a write keeps a prefix of that write on top of its durable data: the
//! prefix ends on a 4 KiB boundary of the file (offsets, not lengths, are page-aligned), or
//! covers the whole write, or is empty, drawn uniformly from the seed and the file's path, so
//! a seed reproduces a cut. The pages the kept prefix touches reach the backing directory whole,
//! as they are at the cut (with any earlier unsynced write to the same page, as a disk writes a
//! page); every other unsynced write is lost.
//!
//! # What works through the mount
//!
//! pread/pwrite at any offset, `set_len`/`ftruncate`, `fallocate` (default mode, `KEEP_SIZE`,
//! `PUNCH_HOLE`, `ZERO_RANGE`), `O_CREAT|O_EXCL`, `O_TRUNC`, `O_APPEND`, rename (with
//! `RENAME_NOREPLACE`), readdir, stat, chmod, utimes, statfs. Every open file uses direct I/O
//! and every entry and attribute has a zero TTL, so the kernel's caches hide nothing. `flock` and
//! `fcntl` locks are not sent to the file system: the kernel keeps them itself, per mount, which
//! works for processes on this machine (what grantflow's and sled's exclusive locks need).
//!
//! Writes reach the file system in requests of at most 1 MiB (the kernel's FUSE limit): a
//! larger `pwrite` arrives in pieces, and its last piece is the "last write" a cut may tear.
//! Requests are served one at a time (one FUSE thread, one lock over the model).
//! POSIX (`fcntl`) locks are kept by the kernel the same way as `flock`'s; only `flock` is tested.
//!
//! Not supported: symlinks, hard links, special files, extended attributes (`ENOTSUP`), shared
//! writable `mmap` of a file (direct I/O), `RENAME_EXCHANGE`. None is used by sled or grantflow.
//!
//! # The cut
//!
//! [`LazyFs::cut`] is the instant the power goes: kill the processes using the mount first
//! (SIGKILL, and wait for them; a process group for a shell's children). From that instant
//! every request fails (EIO), the FUSE connection is aborted through fusectl (mounted on
//! `/sys/fs/fuse/connections` if it is not; root only) so that a descriptor of the old mount
//! still open in the test's own process fails at once rather than hanging its exit, and the
//! mount is unmounted (lazily if still busy). The mountpoint then takes a new mount.
//!
//! Other limits: the backing directory must not be changed while mounted (the model would not
//! see it, and a cut overwrites it); unlinked files stay in memory until the cut or unmount;
//! a cut compares each backing file with the view to rewrite only what changed (reading it
//! whole); modes and times are kept as they are at the cut, not as of an fsync.
//!
//! # Requirements
//!
//! Linux, `/dev/fuse`, and root with `CAP_SYS_ADMIN` (the mount is a plain `mount(2)`; as
//! another user, fuser mounts through the `fusermount3` binary of Debian's `fuse3` package,
//! which the tests also pass with, except the connection abort). [`LazyFs::unavailable`] tells a
//! test why it cannot run; the tests skip then, unless `GRANTFLOW_REQUIRE_FUSE` is set.

mod fuse;
mod model;

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use fuser::{BackgroundSession, Config, MountOption};

use crate::model::State;

/// How the mount behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Directory changes durable only at an fsync of the directory (otherwise at once).
    pub strict: bool,
    /// At a cut, a file's last unsynced write may survive as a 4 KiB-granular prefix.
    pub torn_writes: bool,
    /// Draws the torn writes' prefixes.
    pub seed: u64,
}

impl Default for Options {
    /// Strict, without torn writes.
    fn default() -> Options {
        Options {
            strict: true,
            torn_writes: false,
            seed: 0,
        }
    }
}

/// A file whose data at the cut differed from its data at its last fsync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// Relative to the mount's root.
    pub path: PathBuf,
    /// Its size before the cut.
    pub len: u64,
    /// Its size after the cut.
    pub kept_len: u64,
}

/// A last unsynced write that a cut tore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornWrite {
    /// Relative to the mount's root.
    pub path: PathBuf,
    pub offset: u64,
    /// The write's length.
    pub len: u64,
    /// How many of its first bytes the cut kept (0 if none).
    pub kept: u64,
}

/// What a cut lost. Paths are relative to the mount's root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Files (at the same path before and after) whose data or size was rolled back to their
    /// last fsync (plus any torn write).
    pub rolled_back: Vec<RolledBack>,
    /// Names that existed before the cut and not after: created or renamed-to without an fsync
    /// of their directory.
    pub vanished: Vec<PathBuf>,
    /// Names that exist after the cut and did not before: unlinked or renamed-away without an
    /// fsync of their directory.
    pub restored: Vec<PathBuf>,
    /// Names that point at another file after the cut (a rename over them not made durable).
    pub replaced: Vec<PathBuf>,
    /// Torn writes: each surviving file's last unsynced write and how much of it the cut kept
    /// (listed also when it kept all of it).
    pub torn_writes: Vec<TornWrite>,
    /// Directories left out of the durable view because half-durable directory renames made
    /// them their own ancestors.
    pub directory_loops: Vec<PathBuf>,
}

impl CutReport {
    /// The cut lost nothing: everything was durable.
    pub fn is_empty(&self) -> bool {
        self.rolled_back.is_empty()
            && self.vanished.is_empty()
            && self.restored.is_empty()
            && self.replaced.is_empty()
            && self.torn_writes.is_empty()
            && self.directory_loops.is_empty()
    }
}

impl fmt::Display for CutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "the cut lost nothing");
        }
        for r in &self.rolled_back {
            writeln!(
                f,
                "rolled back: {} ({} bytes, {} after the cut)",
                r.path.display(),
                r.len,
                r.kept_len
            )?;
        }
        for path in &self.vanished {
            writeln!(f, "vanished: {}", path.display())?;
        }
        for path in &self.restored {
            writeln!(f, "restored: {}", path.display())?;
        }
        for path in &self.replaced {
            writeln!(f, "replaced: {}", path.display())?;
        }
        for t in &self.torn_writes {
            writeln!(
                f,
                "torn write: {} at {}: kept {} of {} bytes",
                t.path.display(),
                t.offset,
                t.kept,
                t.len
            )?;
        }
        for path in &self.directory_loops {
            writeln!(f, "directory loop left out: {}", path.display())?;
        }
        Ok(())
    }
}

/// A mounted lazy file system. Dropping it unmounts it cleanly (the backing directory gets the
/// current state, as after `sync`); [`LazyFs::cut`] unmounts it the other way.
#[derive(Debug)]
pub struct LazyFs {
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
    backing: PathBuf,
    mountpoint: PathBuf,
    options: Options,
    /// The FUSE connection's number (its name under /sys/fs/fuse/connections).
    connection: u32,
}

impl LazyFs {
    /// Why a mount cannot work here, or `None`: no `/dev/fuse`, or a probe mount refused for
    /// want of permission (not root or in a container without `CAP_SYS_ADMIN`, and no
    /// `fusermount3`). Any other failure of the probe is no reason to skip: the mount is tried
    /// and fails loudly. Probed once per process.
    pub fn unavailable() -> Option<String> {
        static PROBE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        PROBE.get_or_init(probe).clone()
    }

    /// Mounts a lazy view of `backing` (a directory) at `mountpoint` (created if missing; must
    /// not be inside `backing`).
    pub fn mount(backing: &Path, mountpoint: &Path, options: Options) -> io::Result<LazyFs> {
        std::fs::create_dir_all(mountpoint)?;
        let backing = backing.canonicalize()?;
        let mountpoint = mountpoint.canonicalize()?;
        if mountpoint.starts_with(&backing) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the mountpoint is inside the backing directory",
            ));
        }
        let state = Arc::new(Mutex::new(State::load(&backing, options.strict)?));
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("grantflow-lazyfs".to_owned()),
            MountOption::Subtype("lazyfs".to_owned()),
            MountOption::NoDev,
            MountOption::NoSuid,
        ];
        config.n_threads = Some(1);
        let filesystem = fuse::LazyFuse {
            state: Arc::clone(&state),
        };
        let session = fuser::spawn_mount(filesystem, &mountpoint, &config)?;
        let mut fs = LazyFs {
            state,
            session: Some(session),
            backing,
            mountpoint,
            options,
            connection: 0,
        };
        // The mount's root answers from the new file system (its own device number).
        let dev = std::fs::metadata(&fs.mountpoint)?.dev();
        let outside = std::fs::metadata(fs.mountpoint.parent().unwrap_or(Path::new("/")))?.dev();
        if dev == outside {
            return Err(io::Error::other(format!(
                "{} did not get mounted",
                fs.mountpoint.display()
            )));
        }
        fs.connection = libc::minor(dev);
        Ok(fs)
    }

    /// Where the file system is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The backing directory.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// The options it was mounted with.
    pub fn options(&self) -> Options {
        self.options
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes everything durable, as `sync(2)`: a later cut loses only what comes after.
    pub fn sync_all(&self) {
        self.state().sync_all();
    }

    /// Cuts the power: from this instant every operation on the mount fails with EIO, the
    /// backing directory is made to hold exactly the durable state (with torn writes if
    /// enabled), and the file system is unmounted. Kill the processes using the mount first
    /// (SIGKILL, and wait for them); mount the backing directory again to look at what survived.
    pub fn cut(mut self) -> io::Result<CutReport> {
        let seed = self.options.torn_writes.then_some(self.options.seed);
        let report = self.state().cut(&self.backing, seed);
        self.abort_connection();
        let unmounted = self.unmount_session();
        let report = report?;
        unmounted?;
        Ok(report)
    }

    /// A clean unmount: the backing directory gets the current state.
    pub fn unmount(mut self) -> io::Result<()> {
        self.clean_unmount()
    }

    fn clean_unmount(&mut self) -> io::Result<()> {
        let stored = {
            let mut state = self.state();
            if state.dead {
                Ok(())
            } else {
                let stored = state.store_current(&self.backing);
                state.dead = true;
                stored
            }
        };
        let unmounted = self.unmount_session();
        stored?;
        unmounted
    }

    fn unmount_session(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        match session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(error) => {
                // Still busy (a process holds a file or its working directory there): abort the
                // connection, so that every later use of it fails at once instead of waiting
                // for this process's server thread (a file of the mount closed at this
                // process's exit would wait forever), and detach it lazily.
                self.abort_connection();
                let status = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&self.mountpoint)
                    .status();
                match status {
                    Ok(s) if s.success() => Ok(()),
                    _ => Err(io::Error::other(format!(
                        "unmounting {}: {error}",
                        self.mountpoint.display()
                    ))),
                }
            }
        }
    }
}

fn probe() -> Option<String> {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        return Some(format!("cannot open /dev/fuse: {e}"));
    }
    let dir = std::env::temp_dir().join(format!("grantflow-lazyfs-probe-{}", std::process::id()));
    let (backing, mountpoint) = (dir.join("backing"), dir.join("mnt"));
    let result = std::fs::create_dir_all(&backing)
        .and_then(|()| LazyFs::mount(&backing, &mountpoint, Options::default()))
        .and_then(LazyFs::unmount);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Err(e) if matches!(
            e.kind(),
            io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound
        ) =>
        {
            Some(format!(
                "cannot mount FUSE here ({e}): run as root, or install fusermount3 (Debian package fuse3)"
            ))
        }
        _ => None,
    }
}

impl LazyFs {
    /// Aborts the FUSE connection through the fusectl file system (mounted if it is not): the
    /// kernel then answers every request on the mount with an error, without this process.
    /// Best effort: without fusectl, a cut still holds, but an open file of the mount left in
    /// this process may hang its exit.
    fn abort_connection(&self) {
        let connections = Path::new("/sys/fs/fuse/connections");
        let abort = connections.join(self.connection.to_string()).join("abort");
        if !abort.exists() {
            let _ = std::process::Command::new("mount")
                .args(["-t", "fusectl", "fusectl"])
                .arg(connections)
                .stderr(std::process::Stdio::null())
                .status();
        }
        if let Err(e) = std::fs::write(&abort, b"1") {
            eprintln!("grantflow-lazyfs: aborting {}: {e}", abort.display());
        }
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        if self.session.is_some() {
            if let Err(e) = self.clean_unmount() {
                eprintln!(
                    "grantflow-lazyfs: unmounting {}: {e}",
                    self.mountpoint.display()
                );
            }
        }
    }
}
