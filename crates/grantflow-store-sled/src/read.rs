//! Reads: the log by position (from memory when the newest groups hold the range), a page
//! of payloads, a stream by version through the stream index, and a stream's version.

use grantflow_store::checks::{check_key_text, stream_read_bounds};
use grantflow_store::{Envelope, Head, PayloadPage, StoreError, READ_EVENTS_MAX};

use crate::chunk::Chunk;
use crate::errors::{bad_index, lock, missing, sled_err};
use crate::keys::{
    chunk_key, decode_u64_be, decode_u64_le, parse_chunk_key, stream_index_key, stream_index_prefix,
};
use crate::tail::StreamRun;
use crate::Inner;

impl Inner {
    /// The durable head.
    pub(crate) fn durable_head(&self) -> Head {
        lock(&self.head).clone()
    }

    /// The positions a read of `limit` events from `from` names: never past the durable
    /// head, at most [`READ_EVENTS_MAX`]; `None` when it names none.
    pub(crate) fn read_range(&self, from: u64, limit: usize) -> Option<(u64, u64)> {
        let from = from.max(1);
        let head = lock(&self.head).position;
        let limit = limit.min(READ_EVENTS_MAX) as u64;
        if from > head || limit == 0 {
            return None;
        }
        let end = head.min(from.saturating_add(limit - 1));
        debug_assert!(from <= end && end <= head);
        Some((from, end))
    }

    /// [`Inner::read`]'s answer when memory holds every event it names: `None` otherwise.
    pub(crate) fn read_recent(&self, from: u64, limit: usize) -> Option<Vec<Envelope>> {
        match self.read_range(from, limit) {
            Some((from, end)) => self.recent.read(from, end),
            None => Some(Vec::new()),
        }
    }

    pub(crate) fn read(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let mut out = Vec::new();
        self.read_with(from, limit, |chunk, position| {
            out.push(chunk.envelope(position)?);
            Ok(())
        })?;
        Ok(out)
    }

    pub(crate) fn read_payloads(&self, from: u64, limit: usize) -> Result<PayloadPage, StoreError> {
        let mut page = PayloadPage::default();
        self.read_with(from, limit, |chunk, position| {
            page.push_stored(chunk.shared(), position, chunk.span(position)?);
            Ok(())
        })?;
        Ok(page)
    }

    /// Events from `from` (at most `limit`, never past the durable head), each taken out of
    /// its chunk by `take`.
    pub(crate) fn read_with(
        &self,
        from: u64,
        limit: usize,
        mut take: impl FnMut(&Chunk, u64) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let Some((from, end)) = self.read_range(from, limit) else {
            return Ok(());
        };
        let start_key = match self.chunk_key_at_or_before(from)? {
            Some(key) => key,
            None => return Err(missing(from)),
        };
        let mut next = from;
        // A scan touches each leaf once: the vendored sled accounts a page pulled from disk
        // at once (vendor/sled/GRANTFLOW.md), so the scan evicts down to `cache_capacity` as
        // it goes instead of keeping every page it read.
        for item in self.tree.range(start_key..=chunk_key(end)) {
            let (key, value) = item.map_err(sled_err("reading the log"))?;
            let chunk = Chunk::decode(parse_chunk_key(&key, next)?, value)?;
            if chunk.first > next {
                return Err(missing(next));
            }
            while next <= end && chunk.contains(next) {
                debug_assert!(
                    next <= self.durable_head().position,
                    "reads stop at the head"
                );
                take(&chunk, next)?;
                next += 1;
            }
            if next > end {
                return Ok(());
            }
        }
        Err(missing(next))
    }

    /// The key of the chunk holding `position`, if any chunk starts at or before it.
    pub(crate) fn chunk_key_at_or_before(
        &self,
        position: u64,
    ) -> Result<Option<[u8; 9]>, StoreError> {
        match self
            .tree
            .range(chunk_key(0)..=chunk_key(position))
            .next_back()
        {
            None => Ok(None),
            Some(item) => {
                let (key, _) = item.map_err(sled_err("reading the log"))?;
                let first = parse_chunk_key(&key, position)?;
                Ok(Some(chunk_key(first)))
            }
        }
    }

    pub(crate) fn chunk_holding(&self, position: u64) -> Result<Chunk, StoreError> {
        let item = self
            .tree
            .range(chunk_key(0)..=chunk_key(position))
            .next_back()
            .ok_or_else(|| missing(position))?;
        let (key, value) = item.map_err(sled_err("reading the log"))?;
        let chunk = Chunk::decode(parse_chunk_key(&key, position)?, value)?;
        if !chunk.contains(position) {
            return Err(missing(position));
        }
        Ok(chunk)
    }

    pub(crate) fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let Some((from_version, limit)) = stream_read_bounds(stream, from_version, limit) else {
            return Ok(Vec::new());
        };
        let head = self.durable_head().position;
        let mut wanted: Vec<(u64, u64)> = Vec::new();
        self.walk_stream_index(stream, from_version, |version, position| {
            if position > head || wanted.len() >= limit {
                return false;
            }
            if version >= from_version {
                wanted.push((version, position));
            }
            true
        })?;
        let mut out = Vec::with_capacity(wanted.len());
        let mut chunk: Option<Chunk> = None;
        for (version, position) in wanted {
            let current = match chunk.take() {
                Some(current) if current.contains(position) => current,
                _ => self.chunk_holding(position)?,
            };
            let envelope = current.envelope(position)?;
            if envelope.stream != stream || envelope.version != version {
                return Err(StoreError::Corrupt {
                    position,
                    detail: format!(
                        "the stream index says {stream} version {version}, the log holds {} version {}",
                        envelope.stream, envelope.version
                    ),
                });
            }
            out.push(envelope);
            chunk = Some(current);
        }
        Ok(out)
    }

    /// Calls `visit(version, position)` for the stream's versions from the index entry
    /// holding `from_version` on, until it returns false: sled's entries below the tail's
    /// first version of the stream, then the tail's (see [`crate::tail`]).
    pub(crate) fn walk_stream_index(
        &self,
        stream: &str,
        from_version: u64,
        mut visit: impl FnMut(u64, u64) -> bool,
    ) -> Result<(), StoreError> {
        let runs = lock(&self.tail).stream_runs(stream);
        let bound = runs.first().map_or(u64::MAX, |run| run.first_version);
        if from_version < bound && !self.walk_indexed(stream, from_version, bound, &mut visit)? {
            return Ok(());
        }
        for StreamRun {
            first_version,
            positions,
        } in runs
        {
            for (version, position) in (first_version..).zip(positions) {
                if version >= from_version && !visit(version, position) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The walk over sled's entries, below version `bound`; false when `visit` stopped it.
    pub(crate) fn walk_indexed(
        &self,
        stream: &str,
        from_version: u64,
        bound: u64,
        visit: &mut impl FnMut(u64, u64) -> bool,
    ) -> Result<bool, StoreError> {
        let prefix = stream_index_prefix(stream);
        let seek = stream_index_key(stream, from_version);
        let start = match self.tree.range(prefix.clone()..=seek).next_back() {
            Some(item) => item
                .map_err(sled_err("reading the stream index"))?
                .0
                .to_vec(),
            None => prefix.clone(),
        };
        // Entries may overlap where a span was written again after a crash (the same
        // versions, the same positions): each version is visited once.
        let mut next = 0;
        for item in self.tree.range(start..) {
            let (key, value) = item.map_err(sled_err("reading the stream index"))?;
            let Some(suffix) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let first_version = decode_u64_be(suffix).ok_or_else(|| bad_index(stream))?;
            if value.len() % 8 != 0 {
                return Err(bad_index(stream));
            }
            for (offset, bytes) in (0u64..).zip(value.chunks_exact(8)) {
                let position = decode_u64_le(bytes).ok_or_else(|| bad_index(stream))?;
                let version = first_version + offset;
                if version >= bound {
                    return Ok(true);
                }
                if version < next {
                    continue;
                }
                next = version + 1;
                if !visit(version, position) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The stream's version as stored, including a group being made durable (the writer's
    /// view).
    pub(crate) fn stored_stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        Ok(self.stream_head(stream)?.map_or(0, |(version, _)| version))
    }

    /// The stream's last (version, position): from memory once known, else from the last
    /// entry of its stream index.
    pub(crate) fn stream_head(&self, stream: &str) -> Result<Option<(u64, u64)>, StoreError> {
        if let Some(known) = lock(&self.stream_heads).get(stream) {
            return Ok(Some(*known));
        }
        let prefix = stream_index_prefix(stream);
        let Some(item) = self.tree.scan_prefix(&prefix).next_back() else {
            return Ok(None);
        };
        let (key, value) = item.map_err(sled_err("reading the stream index"))?;
        let first_version = key
            .strip_prefix(prefix.as_slice())
            .and_then(decode_u64_be)
            .ok_or_else(|| bad_index(stream))?;
        if value.is_empty() || value.len() % 8 != 0 {
            return Err(bad_index(stream));
        }
        let last = decode_u64_le(&value[value.len() - 8..]).ok_or_else(|| bad_index(stream))?;
        let head = (first_version + (value.len() / 8) as u64 - 1, last);
        if last <= self.durable_head().position {
            // Only what is durable is remembered (a group being made durable may be visible
            // in sled's memory already).
            lock(&self.stream_heads).insert(stream.to_string(), head);
        }
        Ok(Some(head))
    }

    /// The stream's version as of the durable head (a reader's view).
    pub(crate) fn durable_stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        if check_key_text("stream", stream).is_err() {
            return Ok(0);
        }
        let head = self.durable_head().position;
        match self.stream_head(stream)? {
            None => Ok(0),
            Some((version, position)) if position <= head => Ok(version),
            Some(_) => {
                // A group is being made durable: count the versions at or before the head.
                let mut version = 0;
                self.walk_stream_index(stream, 1, |seen, position| {
                    if position > head {
                        return false;
                    }
                    version = seen;
                    true
                })?;
                Ok(version)
            }
        }
    }
}
