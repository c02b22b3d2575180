//! Checkpointed states (`EventStore::save_checkpoints`): caches of the log kept in sled's
//! tree, each authenticated with the store's snapshot key.
//!
//! Keys (see [`crate::keys`]): `K` + name + `0x00`, the mark (u64 BE); `K` + name + `0x00` +
//! key + `0x00` + position (u64 BE), an entry: HMAC-SHA256 (32) ‖ the bytes. The MAC covers
//! a magic, the name, the key, the position and the bytes, under the key in `snapshot.key`
//! (created with the first snapshot or checkpoint, never rewritten): an entry edited in sled
//! or damaged is refused as [`StoreError::Corrupt`]. A save is one sled batch (entries and
//! mark together), made durable by the store's next checkpoint of sled, like the indexes:
//! a crash may lose the newest saves, never half of one.

use grantflow_store::checks::check_key_text;
use grantflow_store::{CheckpointEntry, StoreError};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::errors::{lock, sled_err};
use crate::keys::decode_u64_be;
use crate::snapshot::{create_key, read_key, SNAPSHOT_KEY_BYTES};
use crate::Inner;

const PREFIX_CHECKPOINT: u8 = b'K';
/// What the MAC of an entry starts with.
const CHECKPOINT_MAC_MAGIC: &[u8; 8] = b"GFCKPT1\n";
const MAC_BYTES: usize = 32;

/// `K` + name + `0x00`: the mark's key, and the start of every entry's key.
fn mark_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 2);
    key.push(PREFIX_CHECKPOINT);
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    key
}

/// `K` + name + `0x00` + key + `0x00`: the start of one key's entries.
fn entries_prefix(name: &str, key: &str) -> Vec<u8> {
    let mut prefix = mark_key(name);
    prefix.extend_from_slice(key.as_bytes());
    prefix.push(0);
    prefix
}

fn entry_key(name: &str, key: &str, position: u64) -> Vec<u8> {
    let mut entry = entries_prefix(name, key);
    entry.extend_from_slice(&position.to_be_bytes());
    entry
}

fn mac(
    secret: &[u8; SNAPSHOT_KEY_BYTES],
    name: &str,
    key: &str,
    position: u64,
    bytes: &[u8],
) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(CHECKPOINT_MAC_MAGIC);
    for text in [name, key] {
        mac.update(&(text.len() as u64).to_be_bytes());
        mac.update(text.as_bytes());
    }
    mac.update(&position.to_be_bytes());
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
    mac
}

impl Inner {
    pub(crate) fn save_checkpoints(
        &self,
        name: &str,
        through: u64,
        entries: &[CheckpointEntry],
    ) -> Result<(), StoreError> {
        grantflow_store::checks::check_checkpoints(name, through, entries)?;
        let head = self.durable_head().position;
        if through > head {
            return Err(StoreError::Invalid(format!(
                "checkpoints {name} through position {through} lie past the head {head}"
            )));
        }
        let _snapshots = lock(&self.snapshot_lock);
        self.check_writable()?;
        let secret = match read_key(&self.path)? {
            Some(secret) => secret,
            None => create_key(&self.path)?,
        };
        let mut batch = sled::Batch::default();
        for entry in entries {
            let tag = mac(&secret, name, &entry.key, entry.position, &entry.bytes)
                .finalize()
                .into_bytes();
            let mut value = Vec::with_capacity(MAC_BYTES + entry.bytes.len());
            value.extend_from_slice(&tag);
            value.extend_from_slice(&entry.bytes);
            batch.insert(entry_key(name, &entry.key, entry.position), value);
        }
        let mark = self.checkpoint_mark(name)?;
        batch.insert(mark_key(name), &through.max(mark).to_be_bytes()[..]);
        self.tree
            .apply_batch(batch)
            .map_err(sled_err("writing checkpoints"))
    }

    pub(crate) fn checkpoint_mark(&self, name: &str) -> Result<u64, StoreError> {
        if check_key_text("checkpoint name", name).is_err() {
            return Ok(0);
        }
        let Some(value) = self
            .tree
            .get(mark_key(name))
            .map_err(sled_err("reading a checkpoint mark"))?
        else {
            return Ok(0);
        };
        decode_u64_be(&value).ok_or_else(|| StoreError::Corrupt {
            position: 0,
            detail: format!("the mark of checkpoints {name} is not a position"),
        })
    }

    pub(crate) fn load_checkpoint(
        &self,
        name: &str,
        key: &str,
        at_most: u64,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        if check_key_text("checkpoint name", name).is_err()
            || check_key_text("checkpoint key", key).is_err()
        {
            return Ok(None);
        }
        let first = entry_key(name, key, 0);
        let last = entry_key(name, key, at_most);
        let Some(item) = self.tree.range(first..=last).next_back() else {
            return Ok(None);
        };
        let (entry, value) = item.map_err(sled_err("reading a checkpoint"))?;
        let position = decode_u64_be(&entry[entries_prefix(name, key).len()..]).unwrap_or(0);
        let damaged = |why: &str| StoreError::Corrupt {
            position,
            detail: format!(
                "checkpoint {name}/{key} at position {position} cannot be proven: {why}; it is \
                 not used (the log is folded instead)"
            ),
        };
        let Some((tag, bytes)) = value.split_at_checked(MAC_BYTES) else {
            return Err(damaged("it is shorter than its MAC"));
        };
        let Some(secret) = read_key(&self.path)? else {
            return Err(damaged("there is no snapshot.key to check it against"));
        };
        if mac(&secret, name, key, position, bytes)
            .verify_slice(tag)
            .is_err()
        {
            return Err(damaged(
                "its MAC does not match (edited, damaged, or written with another key)",
            ));
        }
        Ok(Some((position, bytes.to_vec())))
    }
}
