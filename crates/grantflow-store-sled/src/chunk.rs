//! The log chunk: several events packed in one sled value, and the group that builds them.
//!
//! A chunk is the value of key `L` + its first position: a format byte, then its body. The
//! body: per event `len (u32 LE) ‖ canonical bytes ‖ hash (32)`, consecutive positions, then
//! a trailer of the commands whose last event it holds (per command: id length (u32 LE) ‖ id
//! ‖ body hash flag (0/1) [‖ hash] ‖ first position (u64 LE) ‖ event count (u32 LE)), then
//! the trailer's length (u32 LE). Two formats:
//!
//! - format 2, *plain*: `2 ‖ body`. What stores of format 3 hold and are written with, and
//!   what a store of format 4 writes when compression would not make a chunk smaller.
//! - format 3, *compressed*: `3 ‖ body length (u32 LE) ‖ the body as one zstd frame` (level
//!   [`ZSTD_LEVEL`], with zstd's checksum of the content). What stores of format 4 write.
//!
//! Both are read in any store. A compressed chunk is decompressed once, when it is read, into
//! a buffer that the payload pages read from it share. Several events share a value kept well
//! under sled's blob threshold ([`crate::SEGMENT_BYTES`]), so no write lands in a blob file
//! (which sled never fsyncs); a compressed chunk is never larger than the plain one.

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

/// A plain chunk's first byte.
const CHUNK_PLAIN: u8 = 2;
/// A compressed chunk's first byte.
const CHUNK_COMPRESSED: u8 = 3;
/// A compressed chunk's header: the format byte and the body's length.
const COMPRESSED_HEADER_BYTES: usize = 1 + 4;
/// zstd's level for log chunks: its fastest positive level, since the writer compresses
/// every chunk on its way to the redo log; higher levels were no smaller on these chunks
/// (BENCHMARKS.md, "Store format 4 against format 3").
pub const ZSTD_LEVEL: i32 = 1;
/// Per event in a chunk: length prefix and hash.
const CHUNK_RECORD_OVERHEAD_BYTES: usize = 4 + 32;

/// How a store writes its log chunks and command-index entries (its store format says
/// which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Store format 3, which older builds read: plain chunks (format 2), command-index
    /// entries that hold the command's record.
    Plain,
    /// Store format 4: compressed chunks (format 3, or format 2 where compression would not
    /// make the chunk smaller), command-index entries that name the command's first position
    /// ([`crate::keys::encode_command_at`]).
    Compact,
}

thread_local! {
    /// Each thread's zstd contexts, made once: a context costs far more to make than a chunk
    /// to compress.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// The compressed form of a plain chunk (`2 ‖ body`), or `None` when it would not be
/// smaller (or zstd fails, which it does not for a buffer this size).
fn compress(plain: &[u8]) -> Option<Vec<u8>> {
    let body = plain.get(1..)?;
    let length = u32::try_from(body.len()).ok()?;
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok()?;
            compressor.include_checksum(true).ok()?;
            *slot = Some(compressor);
        }
        let compressor = slot.as_mut()?;
        let capacity = plain.len() - COMPRESSED_HEADER_BYTES;
        let mut value = Vec::with_capacity(plain.len());
        value.push(CHUNK_COMPRESSED);
        value.extend_from_slice(&length.to_le_bytes());
        value.resize(plain.len(), 0);
        // Fails when the frame needs more than `capacity` bytes: not smaller.
        let written = compressor
            .compress_to_buffer(body, &mut value[COMPRESSED_HEADER_BYTES..])
            .ok()?;
        debug_assert!(written <= capacity);
        value.truncate(COMPRESSED_HEADER_BYTES + written);
        Some(value)
    })
}

/// The body of a compressed chunk's value (after its format byte): its declared length, at
/// most what a chunk holds, and exactly what the frame decompresses to.
fn decompress(value: &[u8]) -> Result<Vec<u8>, String> {
    let length_bytes: [u8; 4] = value
        .get(1..COMPRESSED_HEADER_BYTES)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or("truncated compressed chunk header")?;
    let length = u32::from_le_bytes(length_bytes) as usize;
    if length >= CHUNK_BYTES_MAX {
        return Err(format!(
            "a compressed body of {length} bytes, more than a chunk holds"
        ));
    }
    let frame = &value[COMPRESSED_HEADER_BYTES..];
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let decompressor =
                zstd::bulk::Decompressor::new().map_err(|error| format!("zstd: {error}"))?;
            *slot = Some(decompressor);
        }
        let decompressor = slot.as_mut().ok_or("zstd: no context")?;
        let mut body = vec![0; length];
        let written = decompressor
            .decompress_to_buffer(frame, &mut body[..])
            .map_err(|error| format!("undecompressable chunk: {error}"))?;
        if written != length {
            return Err(format!(
                "the compressed body holds {written} bytes, its header says {length}"
            ));
        }
        Ok(body)
    })
}

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
pub(crate) struct Group {
    encoding: Encoding,
    chunks: Vec<(u64, Vec<u8>)>,
    /// Per stream touched, in first-touch order: first version and positions.
    streams: Vec<(String, u64, Vec<u64>)>,
    stream_slot: HashMap<String, usize>,
    pub(crate) commands: Vec<CommandRecord>,
}

impl Group {
    /// An empty group whose chunks will be written in `encoding`.
    pub(crate) fn new(encoding: Encoding) -> Group {
        Group {
            encoding,
            chunks: Vec::new(),
            streams: Vec::new(),
            stream_slot: HashMap::default(),
            commands: Vec::new(),
        }
    }

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
            chunk.push(CHUNK_PLAIN);
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
            let value = match self.encoding {
                Encoding::Plain => chunk,
                // Never larger than the plain chunk: under the threshold too.
                Encoding::Compact => compress(&chunk).unwrap_or(chunk),
            };
            entries.push((chunk_key(first).to_vec(), value));
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
    /// The value as sled returned it (plain) or its body decompressed (compressed), shared
    /// with the pages that read from it.
    value: SharedBytes,
    /// (start, end) of each canonical record; the hash follows at `end`.
    records: Vec<(usize, usize)>,
    /// (start, end) of the trailer.
    trailer: (usize, usize),
}

impl Chunk {
    /// Decodes the chunk whose key says it starts at `first`, checking every record's bounds
    /// (a compressed chunk is decompressed here, once).
    pub(crate) fn decode(first: u64, value: sled::IVec) -> Result<Chunk, StoreError> {
        let corrupt = |detail: &str| StoreError::Corrupt {
            position: first,
            detail: format!("log chunk starting at {first}: {detail}"),
        };
        match value.first() {
            Some(&CHUNK_PLAIN) => Chunk::parse(first, Arc::new(value), 1),
            Some(&CHUNK_COMPRESSED) => {
                let body = decompress(&value).map_err(|detail| corrupt(&detail))?;
                Chunk::parse(first, Arc::new(body), 0)
            }
            Some(other) => Err(corrupt(&format!("unknown chunk format {other}"))),
            None => Err(corrupt("empty value")),
        }
    }

    /// Finds the records and the trailer of a chunk whose body starts at `body_start`.
    fn parse(first: u64, value: SharedBytes, body_start: usize) -> Result<Chunk, StoreError> {
        let corrupt = |detail: &str| StoreError::Corrupt {
            position: first,
            detail: format!("log chunk starting at {first}: {detail}"),
        };
        let bytes: &[u8] = (*value).as_ref();
        let length_at = bytes
            .len()
            .checked_sub(4)
            .filter(|at| *at >= body_start)
            .ok_or_else(|| corrupt("truncated trailer length"))?;
        let length_bytes: [u8; 4] = bytes[length_at..]
            .try_into()
            .map_err(|_| corrupt("truncated trailer length"))?;
        let records_end = length_at
            .checked_sub(u32::from_le_bytes(length_bytes) as usize)
            .filter(|start| *start >= body_start)
            .ok_or_else(|| corrupt("trailer longer than the chunk"))?;
        let trailer = (records_end, length_at);
        let mut records = Vec::new();
        let mut at = body_start;
        while at < records_end {
            let length_bytes: [u8; 4] = bytes
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
            value,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use grantflow_store::envelope::chain_hash;
    use grantflow_store::ZERO_HASH;

    use super::*;
    use crate::keys::parse_chunk_key;

    /// `count` chained events from position 1, two streams, one command per event.
    fn events(count: u64) -> Vec<(Envelope, Vec<u8>)> {
        let mut prev_hash = ZERO_HASH;
        (1..=count)
            .map(|position| {
                let mut envelope = Envelope {
                    position,
                    stream: format!("grant-G{}", position % 2),
                    version: position.div_ceil(2),
                    event_type: "grant.disbursed".to_string(),
                    schema: 1,
                    recorded_at: "2026-01-02T03:04:05.000006Z".to_string(),
                    actor: "finance.officer".to_string(),
                    command_id: format!("cmd-{position}"),
                    correlation_id: format!("cmd-{position}"),
                    payload: format!(
                        r#"{{"grant":"G{}","amount":"{position}.00"}}"#,
                        position % 2
                    ),
                    prev_hash,
                    hash: ZERO_HASH,
                };
                let canonical = envelope.canonical_bytes();
                envelope.hash = chain_hash(&prev_hash, &canonical);
                prev_hash = envelope.hash;
                (envelope, canonical)
            })
            .collect()
    }

    /// The group's chunks, each with its key's first position.
    fn chunks(encoding: Encoding, events: &[(Envelope, Vec<u8>)]) -> Vec<(u64, Vec<u8>)> {
        let mut group = Group::new(encoding);
        for (envelope, canonical) in events {
            group.push_event(envelope, canonical);
            group.commands.push(CommandRecord {
                command_id: envelope.command_id.clone(),
                body_hash: Some([7; 32]),
                events: vec![grantflow_store::EventRef::of(envelope)],
            });
        }
        group
            .into_write()
            .entries
            .into_iter()
            .map(|(key, value)| (parse_chunk_key(&key, 0).unwrap(), value))
            .collect()
    }

    /// Every event of `events` read back from `chunks`, with its hash, span and trailer entry.
    fn check_reads(events: &[(Envelope, Vec<u8>)], chunks: &[(u64, Vec<u8>)]) {
        let mut read = 0;
        for (first, value) in chunks {
            let chunk = Chunk::decode(*first, sled::IVec::from(value.as_slice())).unwrap();
            let entries = chunk.trailer_entries().unwrap();
            assert_eq!(entries.len() as u64, chunk.last() - chunk.first + 1);
            for position in chunk.first..=chunk.last() {
                let (envelope, canonical) = &events[position as usize - 1];
                assert_eq!(&chunk.envelope(position).unwrap(), envelope);
                assert_eq!(chunk.hash_at(position), Some(envelope.hash));
                let (start, end) = chunk.span(position).unwrap();
                assert_eq!(&chunk.bytes()[start..end], canonical.as_slice());
                let entry = &entries[(position - chunk.first) as usize];
                assert_eq!(entry.command_id, envelope.command_id);
                assert_eq!(entry.first_position, position);
                read += 1;
            }
        }
        assert_eq!(read, events.len());
    }

    #[test]
    fn compressed_chunks_read_back_as_written_and_are_smaller() {
        let events = events(1_000);
        let compressed = chunks(Encoding::Compact, &events);
        let plain = chunks(Encoding::Plain, &events);
        assert!(compressed.len() > 1, "several chunks");
        assert_eq!(compressed.len(), plain.len(), "the same events per chunk");
        for ((first, value), (plain_first, plain_value)) in compressed.iter().zip(&plain) {
            assert_eq!(first, plain_first);
            assert_eq!(value[0], CHUNK_COMPRESSED);
            assert_eq!(plain_value[0], CHUNK_PLAIN);
            assert!(
                value.len() * 2 < plain_value.len(),
                "{} of {}",
                value.len(),
                plain_value.len()
            );
            // The body is the plain chunk's, compressed.
            assert_eq!(decompress(value).unwrap(), plain_value[1..]);
        }
        check_reads(&events, &compressed);
    }

    #[test]
    fn plain_chunks_are_read_in_any_store() {
        let events = events(300);
        let plain = chunks(Encoding::Plain, &events);
        assert!(plain.iter().all(|(_, value)| value[0] == CHUNK_PLAIN));
        check_reads(&events, &plain);
    }

    #[test]
    fn a_chunk_compression_would_not_shrink_is_written_plain() {
        // Random bytes do not compress: the chunk stays plain, at its plain size.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut noise = vec![CHUNK_PLAIN];
        noise.extend((0..4_000).map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        }));
        assert_eq!(compress(&noise), None);
    }

    #[test]
    fn a_damaged_compressed_chunk_is_corrupt_at_its_first_position() {
        let events = events(200);
        let chunks = chunks(Encoding::Compact, &events);
        let (first, value) = chunks.last().unwrap().clone();
        let corrupt_at = |bad: Vec<u8>| match Chunk::decode(first, sled::IVec::from(bad)) {
            Err(StoreError::Corrupt { position, detail }) => {
                assert_eq!(position, first, "{detail}");
                detail
            }
            Err(other) => panic!("expected Corrupt, got {other:?}"),
            Ok(_) => panic!("a damaged chunk decoded"),
        };
        // Every byte of the frame flipped in turn: none panics, and none reads back as other
        // bytes than were written. zstd's checksum (or its own checks, or the length) refuses
        // a flip that changes the body; a flip of a bit that zstd's decoder does not use (in
        // its entropy tables) leaves the body as it was.
        let body = decompress(&value).unwrap();
        let mut refused = 0;
        for at in COMPRESSED_HEADER_BYTES..value.len() {
            let mut bad = value.clone();
            bad[at] ^= 0x20;
            match Chunk::decode(first, sled::IVec::from(bad.clone())) {
                Ok(chunk) => assert_eq!(chunk.bytes(), body.as_slice(), "flip at {at}"),
                Err(_) => {
                    corrupt_at(bad);
                    refused += 1;
                }
            }
        }
        assert!(refused * 10 > (value.len() - COMPRESSED_HEADER_BYTES) * 9);
        let mut cut = value.clone();
        cut.truncate(value.len() - 3);
        corrupt_at(cut);
        corrupt_at(value[..3].to_vec());
        // A header that claims more than a chunk holds is refused before anything is made.
        let mut huge = value.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(corrupt_at(huge).contains("more than a chunk holds"));
        // A header that claims less or more than the frame holds.
        for delta in [-1i64, 1] {
            let mut wrong = value.clone();
            let length = u32::from_le_bytes(value[1..5].try_into().unwrap());
            let length = u32::try_from(i64::from(length) + delta).unwrap();
            wrong[1..5].copy_from_slice(&length.to_le_bytes());
            corrupt_at(wrong);
        }
        // A compressed body that decompresses but does not parse.
        let mut body = decompress(&value).unwrap();
        let trailer_length = body.len() - 4;
        body[trailer_length..].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut recompressed = vec![CHUNK_PLAIN];
        recompressed.extend_from_slice(&body);
        let detail = corrupt_at(compress(&recompressed).unwrap());
        assert!(detail.contains("trailer longer than the chunk"), "{detail}");
        let detail = corrupt_at(vec![9, 1, 2]);
        assert!(detail.contains("unknown chunk format 9"), "{detail}");
    }
}
