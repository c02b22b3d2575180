//! Command ids: whether one is recorded, and its record, from the tail, sled's `C` entries
//! or, for a located id ([`grantflow_store::ids`]), the log itself.

use grantflow_store::{CommandRecord, EventRef, StoreError};

use crate::chunk::Chunk;
use crate::errors::{lock, sled_err};
use crate::keys::{chunk_key, command_key, decode_command_entry, parse_chunk_key, CommandEntry};
use crate::Inner;

/// Whether the command's id names its first position ([`grantflow_store::ids`]): such a command is
/// found in the log from its id, and gets no `C` entry.
pub(crate) fn is_located(record: &CommandRecord) -> bool {
    let first = record.events.first().map(|event| event.position);
    first.is_some() && grantflow_store::ids::located_position(&record.command_id) == first
}

/// Command ids that a lookup ([`grantflow_store::EventStore::commands`]) found absent from the index, so that
/// the append that follows (the writer looks its client ids up before deciding) need not
/// look them up again. Every commit counts itself and drops its own ids; a lookup that
/// overlapped a commit remembers nothing.
///
/// What it may hold: only ids that no durable or committing group holds (each commit
/// removes its own ids and counts itself; a lookup records what it found absent only when no
/// commit happened since it began).
#[derive(Default)]
pub(crate) struct AbsentIds {
    pub(crate) commits: u64,
    pub(crate) ids: foldhash::HashSet<String>,
}

/// The most ids [`AbsentIds`] holds; beyond it the set starts again empty.
const ABSENT_IDS_MAX: usize = 65_536;

impl Inner {
    /// Whether the command index (the tail, then sled) holds the id.
    pub(crate) fn command_known(&self, command_id: &str) -> Result<bool, StoreError> {
        if lock(&self.tail).contains_command(command_id) {
            return Ok(true);
        }
        if self
            .tree
            .contains_key(command_key(command_id))
            .map_err(sled_err("reading the command index"))?
        {
            return Ok(true);
        }
        // Through the whole log written, durable or not: the caller holds the write lock.
        Ok(self.located_command(command_id, u64::MAX)?.is_some())
    }

    /// The record of a command whose located id ([`grantflow_store::ids`]) names its first position,
    /// read from the log (no index entry is kept for it) through position `through`; `None`
    /// when the id is not located or no such command is there. The chunk holding the
    /// command's last event records it in its trailer.
    pub(crate) fn located_command(
        &self,
        command_id: &str,
        through: u64,
    ) -> Result<Option<CommandRecord>, StoreError> {
        let Some(first) = grantflow_store::ids::located_position(command_id) else {
            return Ok(None);
        };
        self.command_at(command_id, first, through)
    }

    /// The record of the command whose first event is at `first`, read from the log through
    /// position `through`; `None` when no such command is there. The chunk holding the
    /// command's last event records it in its trailer.
    fn command_at(
        &self,
        command_id: &str,
        first: u64,
        through: u64,
    ) -> Result<Option<CommandRecord>, StoreError> {
        let Some(item) = self.tree.range(chunk_key(0)..=chunk_key(first)).next_back() else {
            return Ok(None);
        };
        let (key, value) = item.map_err(sled_err("reading the log"))?;
        let mut chunk = Chunk::decode(parse_chunk_key(&key, first)?, value)?;
        if !chunk.contains(first) || chunk.envelope(first)?.command_id != command_id {
            return Ok(None);
        }
        loop {
            let entries = chunk.trailer_entries()?;
            if let Some(entry) = entries
                .into_iter()
                .find(|entry| entry.command_id == command_id)
            {
                let last = first + entry.count.saturating_sub(1);
                if entry.first_position != first || entry.count == 0 || last > through {
                    return Ok(None);
                }
                let mut events = Vec::with_capacity(entry.count as usize);
                for position in first..=last {
                    let envelope = if chunk.contains(position) {
                        chunk.envelope(position)?
                    } else {
                        self.chunk_holding(position)?.envelope(position)?
                    };
                    events.push(EventRef::of(&envelope));
                }
                return Ok(Some(CommandRecord {
                    command_id: command_id.to_string(),
                    body_hash: entry.body_hash,
                    events,
                }));
            }
            // The command goes on in the next chunk only if it holds this one's last event.
            let next = chunk.last() + 1;
            if next > through || chunk.envelope(chunk.last())?.command_id != command_id {
                return Ok(None);
            }
            chunk = match self.chunk_holding(next) {
                Ok(chunk) => chunk,
                Err(StoreError::Corrupt { .. }) if next > self.durable_head().position => {
                    return Ok(None)
                }
                Err(error) => return Err(error),
            };
        }
    }

    /// The command index's record, unless its events are not durable yet.
    pub(crate) fn durable_command(
        &self,
        command_id: &str,
    ) -> Result<Option<CommandRecord>, StoreError> {
        if let Some(record) = lock(&self.tail).command(command_id) {
            return Ok(Some(record));
        }
        match self
            .tree
            .get(command_key(command_id))
            .map_err(sled_err("reading the command index"))?
        {
            None => self.located_command(command_id, self.durable_head().position),
            Some(value) => self.durable_record(command_id, &value),
        }
    }

    /// [`Inner::durable_command`] of several ids; remembers those absent (see [`AbsentIds`]).
    pub(crate) fn durable_commands(
        &self,
        command_ids: &[String],
    ) -> Result<Vec<Option<CommandRecord>>, StoreError> {
        let commits = lock(&self.absent_ids).commits;
        let mut records = Vec::with_capacity(command_ids.len());
        let mut absent = Vec::new();
        for command_id in command_ids {
            if let Some(record) = lock(&self.tail).command(command_id) {
                records.push(Some(record));
                continue;
            }
            match self
                .tree
                .get(command_key(command_id))
                .map_err(sled_err("reading the command index"))?
            {
                None => match self.located_command(command_id, self.durable_head().position)? {
                    Some(record) => records.push(Some(record)),
                    None => {
                        absent.push(command_id);
                        records.push(None);
                    }
                },
                Some(value) => records.push(self.durable_record(command_id, &value)?),
            }
        }
        let mut known = lock(&self.absent_ids);
        // A commit since the lookup began may hold any of these ids: remember none.
        if known.commits == commits {
            if known.ids.len() + absent.len() > ABSENT_IDS_MAX {
                known.ids.clear();
            }
            known.ids.extend(absent.into_iter().cloned());
        }
        Ok(records)
    }

    /// A command index entry's record (the one it holds, or the one in the log where it
    /// says), unless its events are not durable yet.
    fn durable_record(
        &self,
        command_id: &str,
        value: &[u8],
    ) -> Result<Option<CommandRecord>, StoreError> {
        let entry = decode_command_entry(command_id, value).ok_or_else(|| StoreError::Corrupt {
            position: 0,
            detail: format!("undecodable command index entry for {command_id:?}"),
        })?;
        let head = self.durable_head().position;
        let record = match entry {
            CommandEntry::Record(record) => record,
            // The indexer writes only durable groups' entries: the whole command is in the
            // log unless the entry is wrong.
            CommandEntry::At(first) => {
                self.command_at(command_id, first, head)?
                    .ok_or_else(|| StoreError::Corrupt {
                        position: first,
                        detail: format!(
                            "the command index says command {command_id:?} starts at position \
                         {first}, the log does not hold it there"
                        ),
                    })?
            }
        };
        if record.events.iter().any(|event| event.position > head) {
            return Ok(None);
        }
        Ok(Some(record))
    }
}
