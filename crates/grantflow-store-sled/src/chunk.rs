//! The log chunk: several events packed in one sled value, and the group that builds them.
//!
//! A chunk is the value of key `L` + its first position. Format 2 (the only one): the format
//! byte, then per event `len (u32 LE) ‖ canonical bytes ‖ hash (32)`, consecutive positions,
//! then a trailer of the commands whose last event it holds (per command: id length (u32 LE)
//! ‖ id ‖ body hash flag (0/1) [‖ hash] ‖ first position (u64 LE) ‖ event count (u32 LE)),
//! then the trailer's length (u32 LE). Several events share a value kept well under sled's
//! blob threshold ([`crate::SEGMENT_BYTES`]), so no write lands in a blob file (which sled
//! never fsyncs).

use std::sync::Arc;

use foldhash::HashMap;
use grantflow_store::checks::{EVENT_BYTES_MAX, KEY_TEXT_BYTES_MAX};
use grantflow_store::{CommandRecord, Envelope, Hash, SharedBytes, StoreError};

use crate::config::SEGMENT_BYTES;
use crate::keys::{chunk_key, command_key, decode_u64_le, encode_command, Reader};

/// The largest event record a log chunk holds.
pub const VALUE_BYTES_MAX: usize = 64 * 1024;
/// The largest log chunk: one record of [`VALUE_BYTES_MAX`] and its command's trailer entry
/// (id length, id, body hash flag and hash, first position, count) and the trailer's length.
/// A chunk of several records holds at most [`CHUNK_BYTES_TARGET`] bytes of them, and a
/// trailer entry (the id and 49 bytes) is smaller than its command's last record (the
/// envelope holds the id and far more than 49 bytes beside it), so such a chunk is under
/// twice the target.
const CHUNK_BYTES_MAX: usize = VALUE_BYTES_MAX + (4 + KEY_TEXT_BYTES_MAX + 1 + 32 + 8 + 4) + 4;
// A leaf of 17 of the largest chunks stays under sled's blob threshold (see SEGMENT_BYTES).
const _: () = assert!(17 * (CHUNK_BYTES_MAX + 64) < SEGMENT_BYTES / 4);
/// A log chunk is closed once it holds this many bytes (a group writes
/// ceil(bytes / this) chunks).
pub const CHUNK_BYTES_TARGET: usize = 16 * 1024;
// Any event fits one chunk under VALUE_BYTES_MAX; a chunk of several records and their
// trailer stays under CHUNK_BYTES_MAX.
const _: () = assert!(2 * CHUNK_BYTES_TARGET + 5 < CHUNK_BYTES_MAX);
const _: () = assert!(EVENT_BYTES_MAX == VALUE_BYTES_MAX - CHUNK_RECORD_OVERHEAD_BYTES - 1);

/// A chunk value's first byte: the one format there is.
const CHUNK_FORMAT: u8 = 2;
/// Per event in a chunk: length prefix and hash.
const CHUNK_RECORD_OVERHEAD_BYTES: usize = 4 + 32;

/// A group ready to apply: its sled writes (without the head) and the index entries it
/// implies (for the tail).
pub(crate) struct GroupWrite {
    pub(crate) entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Per stream touched: first version and positions.
    pub(crate) streams: Vec<(String, u64, Vec<u64>)>,
    /// The records of the commands that appended events.
    pub(crate) commands: Vec<CommandRecord>,
}

/// The keys and values of one group, built in memory.
#[derive(Default)]
pub(crate) struct Group {
    chunks: Vec<(u64, Vec<u8>)>,
    /// Per stream touched, in first-touch order: first version and positions.
    streams: Vec<(String, u64, Vec<u64>)>,
    stream_slot: HashMap<String, usize>,
    pub(crate) commands: Vec<CommandRecord>,
}

impl Group {
    /// Adds the next event (its position follows the one added before).
    pub(crate) fn push_event(&mut self, envelope: &Envelope, canonical: &[u8]) {
        debug_assert!(
            self.last_position()
                .is_none_or(|last| envelope.position == last + 1),
            "a group's events are consecutive"
        );
        debug_assert!(canonical.len() <= EVENT_BYTES_MAX, "checked before sealing");
        let record_bytes = CHUNK_RECORD_OVERHEAD_BYTES + canonical.len();
        let needs_new_chunk = match self.chunks.last() {
            Some((_, chunk)) => chunk.len() + record_bytes > CHUNK_BYTES_TARGET,
            None => true,
        };
        if needs_new_chunk {
            let mut chunk = Vec::with_capacity(CHUNK_BYTES_TARGET + record_bytes);
            chunk.push(CHUNK_FORMAT);
            self.chunks.push((envelope.position, chunk));
        }
        if let Some((_, chunk)) = self.chunks.last_mut() {
            // Events are at most EVENT_BYTES_MAX (checked before), so the length fits u32.
            chunk.extend_from_slice(&(canonical.len() as u32).to_le_bytes());
            chunk.extend_from_slice(canonical);
            chunk.extend_from_slice(&envelope.hash);
        }
        match self.stream_slot.get(&envelope.stream) {
            Some(slot) => self.streams[*slot].2.push(envelope.position),
            None => {
                self.stream_slot
                    .insert(envelope.stream.clone(), self.streams.len());
                self.streams.push((
                    envelope.stream.clone(),
                    envelope.version,
                    vec![envelope.position],
                ));
            }
        }
    }

    /// The position of the last event added.
    fn last_position(&self) -> Option<u64> {
        self.streams
            .iter()
            .filter_map(|(_, _, positions)| positions.last().copied())
            .max()
    }

    /// The group's sled writes (its chunks, each with the commands it ends; the head is added
    /// when it is written), with the index entries it implies. A command without events
    /// (none are made by the engine) has no chunk to live in: its index entry is written with
    /// the group.
    pub(crate) fn into_write(self) -> GroupWrite {
        let mut entries = Vec::with_capacity(self.chunks.len() + 1);
        let mut trailers: Vec<Vec<u8>> = vec![Vec::new(); self.chunks.len()];
        let mut chunk_index = 0;
        for record in &self.commands {
            let (Some(first), Some(last)) = (record.events.first(), record.events.last()) else {
                entries.push((command_key(&record.command_id), encode_command(record)));
                continue;
            };
            while chunk_index + 1 < self.chunks.len()
                && self.chunks[chunk_index + 1].0 <= last.position
            {
                chunk_index += 1;
            }
            if let Some(trailer) = trailers.get_mut(chunk_index) {
                encode_trailer_entry(trailer, record, first.position);
            }
        }
        for ((first, mut chunk), trailer) in self.chunks.into_iter().zip(trailers) {
            chunk.extend_from_slice(&trailer);
            // A trailer is far below 4 GiB: a chunk is under CHUNK_BYTES_MAX.
            chunk.extend_from_slice(&(trailer.len() as u32).to_le_bytes());
            debug_assert!(
                chunk.len() <= CHUNK_BYTES_MAX,
                "a chunk stays under sled's blob threshold"
            );
            entries.push((chunk_key(first).to_vec(), chunk));
        }
        let commands = self
            .commands
            .into_iter()
            .filter(|record| !record.events.is_empty())
            .collect();
        GroupWrite {
            entries,
            streams: self.streams,
            commands,
        }
    }
}

/// Appends a command's trailer entry: id length (u32 LE) ‖ id ‖ body hash flag (0/1)
/// [‖ hash] ‖ first position (u64 LE) ‖ event count (u32 LE). The events themselves are
/// read back from the log.
pub(crate) fn encode_trailer_entry(
    trailer: &mut Vec<u8>,
    record: &CommandRecord,
    first_position: u64,
) {
    trailer.extend_from_slice(&(record.command_id.len() as u32).to_le_bytes());
    trailer.extend_from_slice(record.command_id.as_bytes());
    match &record.body_hash {
        Some(hash) => {
            trailer.push(1);
            trailer.extend_from_slice(hash);
        }
        None => trailer.push(0),
    }
    trailer.extend_from_slice(&first_position.to_le_bytes());
    trailer.extend_from_slice(&(record.events.len() as u32).to_le_bytes());
}

/// A command as its chunk's trailer records it.
pub(crate) struct TrailerEntry {
    pub(crate) command_id: String,
    pub(crate) body_hash: Option<Hash>,
    pub(crate) first_position: u64,
    pub(crate) count: u64,
}

pub(crate) fn decode_trailer(bytes: &[u8]) -> Option<Vec<TrailerEntry>> {
    let mut reader = Reader { bytes };
    let mut entries = Vec::new();
    while !reader.bytes.is_empty() {
        let command_id = reader.text()?;
        let body_hash = match reader.take(1)?.first()? {
            0 => None,
            1 => Some(reader.take(32)?.try_into().ok()?),
            _ => return None,
        };
        let first_position = decode_u64_le(reader.take(8)?)?;
        let count = u64::from(u32::from_le_bytes(reader.take(4)?.try_into().ok()?));
        entries.push(TrailerEntry {
            command_id,
            body_hash,
            first_position,
            count,
        });
    }
    Some(entries)
}

/// One decoded log chunk: where each event's canonical bytes start and end.
pub(crate) struct Chunk {
    pub(crate) first: u64,
    /// The value as sled returned it, shared with the pages that read from it.
    value: SharedBytes,
    /// (start, end) of each canonical record; the hash follows at `end`.
    records: Vec<(usize, usize)>,
    /// (start, end) of the trailer.
    trailer: (usize, usize),
}

impl Chunk {
    /// Decodes the chunk whose key says it starts at `first`, checking every record's bounds.
    pub(crate) fn decode(first: u64, value: sled::IVec) -> Result<Chunk, StoreError> {
        let corrupt = |detail: &str| StoreError::Corrupt {
            position: first,
            detail: format!("log chunk starting at {first}: {detail}"),
        };
        let (records_end, trailer) = match value.first() {
            Some(&CHUNK_FORMAT) => {
                let length_at = value
                    .len()
                    .checked_sub(4)
                    .filter(|at| *at >= 1)
                    .ok_or_else(|| corrupt("truncated trailer length"))?;
                let length_bytes: [u8; 4] = value[length_at..]
                    .try_into()
                    .map_err(|_| corrupt("truncated trailer length"))?;
                let start = length_at
                    .checked_sub(u32::from_le_bytes(length_bytes) as usize)
                    .filter(|start| *start >= 1)
                    .ok_or_else(|| corrupt("trailer longer than the chunk"))?;
                (start, (start, length_at))
            }
            Some(other) => return Err(corrupt(&format!("unknown chunk format {other}"))),
            None => return Err(corrupt("empty value")),
        };
        let mut records = Vec::new();
        let mut at = 1;
        while at < records_end {
            let length_bytes: [u8; 4] = value
                .get(at..at + 4)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| corrupt("truncated record length"))?;
            let start = at + 4;
            let end = start + u32::from_le_bytes(length_bytes) as usize;
            if end + 32 > records_end {
                return Err(corrupt("truncated record"));
            }
            records.push((start, end));
            at = end + 32;
        }
        if records.is_empty() {
            return Err(corrupt("empty chunk"));
        }
        Ok(Chunk {
            first,
            value: Arc::new(value),
            records,
            trailer,
        })
    }

    /// The commands whose last event this chunk holds.
    pub(crate) fn trailer_entries(&self) -> Result<Vec<TrailerEntry>, StoreError> {
        let (start, end) = self.trailer;
        self.bytes()
            .get(start..end)
            .and_then(decode_trailer)
            .ok_or_else(|| StoreError::Corrupt {
                position: self.first,
                detail: format!("log chunk starting at {}: undecodable trailer", self.first),
            })
    }

    /// The chunk's bytes.
    fn bytes(&self) -> &[u8] {
        (*self.value).as_ref()
    }

    /// The value, shared (for a page of payloads).
    pub(crate) fn shared(&self) -> &SharedBytes {
        &self.value
    }

    /// The last position the chunk holds.
    pub(crate) fn last(&self) -> u64 {
        self.first + self.records.len() as u64 - 1
    }

    pub(crate) fn contains(&self, position: u64) -> bool {
        self.first <= position && position <= self.last()
    }

    pub(crate) fn hash_at(&self, position: u64) -> Option<Hash> {
        let index = usize::try_from(position.checked_sub(self.first)?).ok()?;
        let (_, end) = *self.records.get(index)?;
        self.bytes().get(end..end + 32)?.try_into().ok()
    }

    /// Where the stored envelope of the event at `position` starts and ends in the chunk.
    pub(crate) fn span(&self, position: u64) -> Result<(usize, usize), StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt { position, detail };
        let (start, end) = usize::try_from(position.saturating_sub(self.first))
            .ok()
            .filter(|_| position >= self.first)
            .and_then(|index| self.records.get(index).copied())
            .ok_or_else(|| corrupt(format!("not in the chunk starting at {}", self.first)))?;
        // Within the value: `Chunk::decode` checked every record's bounds.
        Ok((start, end))
    }

    pub(crate) fn envelope(&self, position: u64) -> Result<Envelope, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt { position, detail };
        let index = usize::try_from(position.saturating_sub(self.first))
            .map_err(|_| corrupt("position out of range".to_string()))?;
        let (start, end) = *self
            .records
            .get(index)
            .filter(|_| position >= self.first)
            .ok_or_else(|| corrupt(format!("not in the chunk starting at {}", self.first)))?;
        let hash = self
            .hash_at(position)
            .ok_or_else(|| corrupt("truncated hash".to_string()))?;
        let bytes = self
            .bytes()
            .get(start..end)
            .ok_or_else(|| corrupt("truncated record".to_string()))?;
        let envelope = Envelope::from_canonical(bytes, hash)
            .map_err(|error| corrupt(format!("undecodable event: {error}")))?;
        if envelope.position != position {
            return Err(corrupt(format!(
                "the record holds position {}",
                envelope.position
            )));
        }
        Ok(envelope)
    }
}
