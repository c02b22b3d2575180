//! Files the store replaces whole: written beside, made durable, renamed into place; and how
//! the store creates its files and directories: owner-only (files 0600, directories 0700),
//! new files with `O_EXCL` and `O_NOFOLLOW`, whatever the process's umask.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use grantflow_store::StoreError;

use crate::errors::io_err;

/// Replaces `dir/name` with `parts` (concatenated): a temporary file `dir/name.tmp`,
/// written and fdatasync'ed, renamed over `name`, then the directory synced so that the
/// rename itself is durable. One writer of `name` at a time (the temporary file's name is
/// fixed): the store's own files, and the webhooks' files (under their lock, or written by
/// one task).
pub fn replace_durably(dir: &Path, name: &str, parts: &[&[u8]]) -> Result<(), StoreError> {
    let path = dir.join(name);
    let temp = dir.join(format!("{name}.tmp"));
    let context = format!("writing {}", path.display());
    // A temporary file left by a crash is removed (a symbolic link itself, never its
    // target); the new one is created only if absent, never through a link.
    match fs::remove_file(&temp) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_err(context)(error)),
    }
    let mut file = create_new_private(&temp).map_err(io_err(context.clone()))?;
    for part in parts {
        file.write_all(part).map_err(io_err(context.clone()))?;
    }
    file.sync_data().map_err(io_err(context.clone()))?;
    drop(file);
    fs::rename(&temp, &path).map_err(io_err(context))?;
    sync_dir(dir)
}

/// Makes the entries of `dir` (files created, renamed or removed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_err(format!("syncing the directory {}", dir.display())))
}

/// The options of a file the store creates: owner-only (0600), never through a symbolic link.
pub(crate) fn private_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    options
}

/// Creates `path` for writing, owner-only, refusing an existing file or symbolic link there
/// (`O_CREAT | O_EXCL | O_NOFOLLOW`).
pub(crate) fn create_new_private(path: &Path) -> std::io::Result<fs::File> {
    private_options().write(true).create_new(true).open(path)
}

/// Creates the directory `path` (its parents too, as they are missing), owner-only (0700).
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Opens the lock file `path` (created owner-only, 0600, never through a symbolic link) and
/// locks it exclusively, waiting for another holder: the lock is released when the file is
/// dropped.
pub fn lock_private_file(path: &Path) -> std::io::Result<fs::File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.lock()?;
    Ok(file)
}
