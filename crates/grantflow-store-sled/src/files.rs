//! Files the store replaces whole: written beside, made durable, renamed into place.

use std::fs;
use std::io::Write;
use std::path::Path;

use grantflow_store::StoreError;

use crate::errors::io_err;

/// Replaces `dir/name` with `parts` (concatenated): a temporary file `dir/name.tmp`,
/// written and fdatasync'ed, renamed over `name`, then the directory synced so that the
/// rename itself is durable.
pub(crate) fn replace_durably(dir: &Path, name: &str, parts: &[&[u8]]) -> Result<(), StoreError> {
    let path = dir.join(name);
    let temp = dir.join(format!("{name}.tmp"));
    let context = format!("writing {}", path.display());
    let mut file = fs::File::create(&temp).map_err(io_err(context.clone()))?;
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
