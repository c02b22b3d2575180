//! Projection snapshots: files beside the database, caches of the log that the engine
//! checks on load.
//!
//! `<dir>/snapshot-<name>`: `GFSNAP1\n` ‖ position (u64 BE) ‖ length (u64 BE) ‖ SHA-256 of
//! the bytes ‖ the bytes, replaced whole ([`crate::files::replace_durably`]). A snapshot
//! kept in sled would cost several times its size in sled's memory while written.

use std::fs;

use grantflow_store::checks::check_key_text;
use grantflow_store::{Hash, StoreError};
use sha2::{Digest, Sha256};

use crate::errors::{bad_snapshot, io_err, lock};
use crate::files::replace_durably;
use crate::keys::decode_u64_be;
use crate::Inner;

/// A snapshot file starts with this, then position (u64 BE), length (u64 BE), SHA-256 of the
/// bytes, then the bytes.
const SNAPSHOT_FILE_MAGIC: &[u8; 8] = b"GFSNAP1\n";
const SNAPSHOT_FILE_HEADER_BYTES: usize = 8 + 8 + 8 + 32;

impl Inner {
    /// Writes a snapshot to its own file beside the database (see [`snapshot_file_name`]).
    pub(crate) fn save_snapshot(
        &self,
        name: &str,
        position: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        check_key_text("snapshot name", name).map_err(StoreError::Invalid)?;
        let _snapshots = lock(&self.snapshot_lock);
        self.check_writable()?;
        let mut header = Vec::with_capacity(SNAPSHOT_FILE_HEADER_BYTES);
        header.extend_from_slice(SNAPSHOT_FILE_MAGIC);
        header.extend_from_slice(&position.to_be_bytes());
        header.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        header.extend_from_slice(&Sha256::digest(bytes));
        replace_durably(&self.path, &snapshot_file_name(name), &[&header, bytes])
    }

    /// The snapshot's position and bytes; `None` when there is none. A damaged one is
    /// [`StoreError::Corrupt`].
    pub(crate) fn load_snapshot(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        if check_key_text("snapshot name", name).is_err() {
            return Ok(None);
        }
        let path = self.path.join(snapshot_file_name(name));
        let mut bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
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

fn damaged_snapshot(name: &str, position: u64) -> StoreError {
    StoreError::Corrupt {
        position,
        detail: format!(
            "snapshot {name} does not match its checksum (damaged); its figures are not used: \
             run `grantflow replay` to rebuild it from the log"
        ),
    }
}
