//! The sled tree's key format and the codecs of its small values.
//!
//! One sled tree (the default one), keys by prefix:
//!
//! | key | value |
//! |---|---|
//! | `L` + first position (u64 BE) | a log chunk ([`crate::chunk`]) |
//! | `S` + stream + `0x00` + first version (u64 BE) | positions of those versions (u64 LE each); written by the indexer, one entry per stream per span |
//! | `C` + command id | in a store of format 4: `2` ‖ the command's first position (u64 LE), where its record is, in the log (the trailer of the chunk holding its last event); in a store of format 3 (and for a command without events): body hash flag (0/1) [‖ hash] ‖ count (u32 LE) ‖ per event: position, version (u64 LE), stream, type (u32 LE length ‖ bytes). Written by the indexer, except for a command whose id is located ([`grantflow_store::ids`]: it names the command's first position, where a lookup that misses the index finds it, in the log) |
//! | `I` | the index mark: `S` and `C` are complete through this position (u64 BE) |
//! | `M` | `grantflow store format 4` (`format 3` in a store of format 3), the marker's format, written when the database is created |
//! | `H` | head position (u64 BE) ‖ hash (32) ‖ recorded_at |
//! | `K` + name + `0x00` | the mark of the checkpoints `name` (u64 BE) ([`crate::checkpoints`]) |
//! | `K` + name + `0x00` + key + `0x00` + position (u64 BE) | a checkpointed state: HMAC-SHA256 (32) ‖ its bytes |

use grantflow_store::{CommandRecord, EventRef, Head, StoreError};

const PREFIX_CHUNK: u8 = b'L';
const PREFIX_STREAM_INDEX: u8 = b'S';
const PREFIX_COMMAND: u8 = b'C';
/// The head record: the last durable group's last position, hash and time.
pub(crate) const HEAD_KEY: &[u8] = b"H";
/// The format record, written when the database is created.
pub(crate) const FORMAT_KEY: &[u8] = b"M";
/// The index mark: the `S` and `C` keys are complete through this position (u64 BE).
pub(crate) const INDEXED_KEY: &[u8] = b"I";

pub(crate) fn chunk_key(first: u64) -> [u8; 9] {
    let mut key = [PREFIX_CHUNK; 9];
    key[1..].copy_from_slice(&first.to_be_bytes());
    key
}

/// The first position of a chunk key (`context` names the position being read on error).
pub(crate) fn parse_chunk_key(key: &[u8], context: u64) -> Result<u64, StoreError> {
    match key.split_first() {
        Some((&PREFIX_CHUNK, rest)) => decode_u64_be(rest),
        _ => None,
    }
    .ok_or_else(|| StoreError::Corrupt {
        position: context,
        detail: "malformed log chunk key".to_string(),
    })
}

pub(crate) fn stream_index_prefix(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 10);
    key.push(PREFIX_STREAM_INDEX);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key
}

pub(crate) fn stream_index_key(stream: &str, first_version: u64) -> Vec<u8> {
    let mut key = stream_index_prefix(stream);
    key.extend_from_slice(&first_version.to_be_bytes());
    key
}

pub(crate) fn command_key(command_id: &str) -> Vec<u8> {
    prefixed(PREFIX_COMMAND, command_id)
}

pub(crate) fn prefixed(prefix: u8, text: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(text.len() + 1);
    key.push(prefix);
    key.extend_from_slice(text.as_bytes());
    key
}

pub(crate) fn decode_u64_be(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

pub(crate) fn decode_u64_le(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

pub(crate) fn encode_head(head: &Head) -> Vec<u8> {
    let mut value = Vec::with_capacity(40 + head.recorded_at.len());
    value.extend_from_slice(&head.position.to_be_bytes());
    value.extend_from_slice(&head.hash);
    value.extend_from_slice(head.recorded_at.as_bytes());
    value
}

pub(crate) fn decode_head(value: &[u8]) -> Option<Head> {
    Some(Head {
        position: decode_u64_be(value.get(0..8)?)?,
        hash: value.get(8..40)?.try_into().ok()?,
        recorded_at: String::from_utf8(value.get(40..)?.to_vec()).ok()?,
    })
}

pub(crate) fn encode_command(record: &CommandRecord) -> Vec<u8> {
    let mut value = Vec::with_capacity(40 + record.events.len() * 64);
    match &record.body_hash {
        Some(hash) => {
            value.push(1);
            value.extend_from_slice(hash);
        }
        None => value.push(0),
    }
    value.extend_from_slice(&(record.events.len() as u32).to_le_bytes());
    for event in &record.events {
        value.extend_from_slice(&event.position.to_le_bytes());
        value.extend_from_slice(&event.version.to_le_bytes());
        for text in [&event.stream, &event.event_type] {
            value.extend_from_slice(&(text.len() as u32).to_le_bytes());
            value.extend_from_slice(text.as_bytes());
        }
    }
    value
}

/// The first byte of a command-index entry that names the command's first position.
const COMMAND_AT: u8 = 2;

/// A command-index entry naming the command's first position (stores of format 4): the
/// command's record is in the log, in the trailer of the chunk holding its last event.
pub(crate) fn encode_command_at(first_position: u64) -> Vec<u8> {
    let mut value = Vec::with_capacity(9);
    value.push(COMMAND_AT);
    value.extend_from_slice(&first_position.to_le_bytes());
    value
}

/// A command-index entry: the record it holds, or the first position it names.
pub(crate) enum CommandEntry {
    Record(CommandRecord),
    At(u64),
}

/// Decodes either form of a command-index entry.
pub(crate) fn decode_command_entry(command_id: &str, value: &[u8]) -> Option<CommandEntry> {
    match value.split_first()? {
        (&COMMAND_AT, rest) => Some(CommandEntry::At(decode_u64_le(rest)?)),
        _ => decode_command(command_id, value).map(CommandEntry::Record),
    }
}

pub(crate) fn decode_command(command_id: &str, value: &[u8]) -> Option<CommandRecord> {
    let mut reader = Reader { bytes: value };
    let body_hash = match reader.take(1)?.first()? {
        0 => None,
        1 => Some(reader.take(32)?.try_into().ok()?),
        _ => return None,
    };
    let count = u32::from_le_bytes(reader.take(4)?.try_into().ok()?);
    let mut events = Vec::new();
    for _ in 0..count {
        let position = decode_u64_le(reader.take(8)?)?;
        let version = decode_u64_le(reader.take(8)?)?;
        let stream = reader.text()?;
        let event_type = reader.text()?;
        events.push(EventRef {
            position,
            stream,
            version,
            event_type,
        });
    }
    if !reader.bytes.is_empty() {
        return None;
    }
    Some(CommandRecord {
        command_id: command_id.to_string(),
        body_hash,
        events,
    })
}

/// Reads length-prefixed fields, refusing anything truncated.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if count > self.bytes.len() {
            return None;
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Some(taken)
    }

    pub(crate) fn text(&mut self) -> Option<String> {
        let length = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(length)?.to_vec()).ok()
    }
}

// ---------------------------------------------------------------------------------------
// Checks and errors
