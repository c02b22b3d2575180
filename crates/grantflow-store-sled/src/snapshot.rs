//! Projection snapshots: files beside the database, caches of the log that the engine
//! checks on load, each authenticated with a key kept outside it.
//!
//! `<dir>/snapshot-<name>`: `GFSNAP2\n` ‖ position (u64 BE) ‖ length (u64 BE) ‖
//! HMAC-SHA256 ‖ the bytes, replaced whole ([`crate::files::replace_durably`]). The MAC
//! covers the magic, the snapshot's name, its position, its length and its bytes, under the
//! store's snapshot key: 32 random bytes in `<dir>/snapshot.key` (mode 0600, created with the
//! first snapshot, never rewritten). Editing a snapshot's figures and recomputing a checksum
//! is therefore not enough to have it served: without the key no MAC matches, and a snapshot
//! that does not prove itself is refused as [`StoreError::Corrupt`]. A snapshot kept in sled
//! would cost several times its size in sled's memory while written.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use grantflow_store::checks::check_key_text;
use grantflow_store::{Hash, StoreError};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::errors::{bad_snapshot, io_err, lock};
use crate::files::{replace_durably, sync_dir};
use crate::keys::decode_u64_be;
use crate::Inner;

/// A snapshot file starts with this, then position (u64 BE), length (u64 BE), the MAC, then
/// the bytes.
const SNAPSHOT_FILE_MAGIC: &[u8; 8] = b"GFSNAP2\n";
/// The magic of the previous release's snapshot files, which carried a plain SHA-256.
const OLD_SNAPSHOT_FILE_MAGIC: &[u8] = b"GFSNAP1\n";
const SNAPSHOT_FILE_HEADER_BYTES: usize = 8 + 8 + 8 + 32;
/// The file of the key that authenticates the snapshots, in the data directory.
pub(crate) const SNAPSHOT_KEY_FILE: &str = "snapshot.key";
pub(crate) const SNAPSHOT_KEY_BYTES: usize = 32;

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
        let key = match read_key(&self.path)? {
            Some(key) => key,
            None => create_key(&self.path)?,
        };
        let mut header = Vec::with_capacity(SNAPSHOT_FILE_HEADER_BYTES);
        header.extend_from_slice(SNAPSHOT_FILE_MAGIC);
        header.extend_from_slice(&position.to_be_bytes());
        header.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        header.extend_from_slice(&mac(&key, name, position, bytes).finalize().into_bytes());
        replace_durably(&self.path, &snapshot_file_name(name), &[&header, bytes])
    }

    /// The snapshot's position and bytes; `None` when there is none. A damaged one, or one
    /// that its MAC does not prove (edited, from another store, or with no key to check it
    /// against), is [`StoreError::Corrupt`].
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
        if bytes.get(..8) == Some(OLD_SNAPSHOT_FILE_MAGIC) {
            // Another release's snapshot (checksummed, not authenticated): never used; the
            // next snapshot replaces it.
            return Ok(None);
        }
        let header = (|| {
            if bytes.get(..8)? != SNAPSHOT_FILE_MAGIC {
                return None;
            }
            let position = decode_u64_be(bytes.get(8..16)?)?;
            let length = decode_u64_be(bytes.get(16..24)?)?;
            let tag: Hash = bytes.get(24..56)?.try_into().ok()?;
            Some((position, length, tag))
        })();
        let Some((position, length, tag)) = header else {
            return Err(bad_snapshot(name, 0));
        };
        let body = bytes.split_off(SNAPSHOT_FILE_HEADER_BYTES);
        if body.len() as u64 != length {
            return Err(bad_snapshot(name, position));
        }
        let Some(key) = read_key(&self.path)? else {
            return Err(unproven_snapshot(
                name,
                position,
                &format!("there is no {SNAPSHOT_KEY_FILE} to check it against"),
            ));
        };
        if mac(&key, name, position, &body).verify_slice(&tag).is_err() {
            return Err(unproven_snapshot(
                name,
                position,
                "its MAC does not match (edited, damaged, or written with another key)",
            ));
        }
        Ok(Some((position, body)))
    }
}

/// The MAC of a snapshot: HMAC-SHA256 under the store's key of the magic, the name (its
/// length first), the position, the length and the bytes.
fn mac(key: &[u8; SNAPSHOT_KEY_BYTES], name: &str, position: u64, bytes: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(SNAPSHOT_FILE_MAGIC);
    mac.update(&(name.len() as u64).to_be_bytes());
    mac.update(name.as_bytes());
    mac.update(&position.to_be_bytes());
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
    mac
}

/// The store's snapshot key; `None` when there is none yet. A key file of the wrong size is
/// refused (a snapshot is then never proven, and never written with a made-up key).
pub(crate) fn read_key(dir: &Path) -> Result<Option<[u8; SNAPSHOT_KEY_BYTES]>, StoreError> {
    let path = dir.join(SNAPSHOT_KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) => bytes.as_slice().try_into().map(Some).map_err(|_| {
            StoreError::Corrupt {
                position: 0,
                detail: format!(
                    "{} holds {} bytes, not a {SNAPSHOT_KEY_BYTES}-byte snapshot key; remove                      it and run `grantflow replay` to write a new key and snapshot",
                    path.display(),
                    bytes.len()
                ),
            }
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_err(format!("reading {}", path.display()))(error)),
    }
}

/// Creates the store's snapshot key: random bytes in a new file (never over an existing one,
/// never through a link), mode 0600, durable before any snapshot uses it.
pub(crate) fn create_key(dir: &Path) -> Result<[u8; SNAPSHOT_KEY_BYTES], StoreError> {
    let path = dir.join(SNAPSHOT_KEY_FILE);
    let context = format!("creating {}", path.display());
    let mut key = [0u8; SNAPSHOT_KEY_BYTES];
    getrandom::fill(&mut key)
        .map_err(|error| StoreError::io(context.clone(), error.to_string()))?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(io_err(context.clone()))?;
    file.write_all(&key).map_err(io_err(context.clone()))?;
    file.sync_all().map_err(io_err(context))?;
    drop(file);
    sync_dir(dir)?;
    Ok(key)
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

fn unproven_snapshot(name: &str, position: u64, why: &str) -> StoreError {
    StoreError::Corrupt {
        position,
        detail: format!(
            "snapshot {name} cannot be proven: {why}; its figures are not used (the log is \
             folded instead): run `grantflow replay` to rebuild it from the log"
        ),
    }
}
