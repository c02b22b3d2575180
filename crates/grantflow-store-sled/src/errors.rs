//! The store's locks and the errors it builds.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use grantflow_store::StoreError;

/// Takes a lock, whatever panicked while it was held: the guarded values are replaced whole,
/// so a panic elsewhere cannot leave them torn.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn not_a_store(dir: &Path, detail: &str) -> StoreError {
    StoreError::NotAStore {
        path: dir.display().to_string(),
        detail: detail.to_string(),
    }
}

pub(crate) fn missing(position: u64) -> StoreError {
    StoreError::Corrupt {
        position,
        detail: "event missing from the log".to_string(),
    }
}

pub(crate) fn bad_index(stream: &str) -> StoreError {
    StoreError::Corrupt {
        position: 0,
        detail: format!("undecodable stream index entry for {stream}"),
    }
}

pub(crate) fn bad_snapshot(name: &str, position: u64) -> StoreError {
    StoreError::Corrupt {
        position,
        detail: format!("snapshot {name} is damaged"),
    }
}

/// An I/O error while doing `context`.
pub(crate) fn io_err(context: String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |error| StoreError::io(context, error)
}

/// A sled error while doing `context`: corruption it reports is [`StoreError::Corrupt`].
pub(crate) fn sled_err(context: &str) -> impl FnOnce(sled::Error) -> StoreError + '_ {
    move |error| match error {
        sled::Error::Corruption { at, .. } => StoreError::Corrupt {
            position: 0,
            detail: format!("{context}: sled reports corruption at {at:?}"),
        },
        other => StoreError::io(context, other),
    }
}
