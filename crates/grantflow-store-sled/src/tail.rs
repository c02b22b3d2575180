//! The sled store's tail: the stream-index and command-index entries of the log's newest
//! events, held in memory until the indexer writes them to sled.
//!
//! A group's commit writes only its log chunks (and the head) before its flush: the index
//! entries it implies go here, and a background indexer writes them to sled once a span of
//! [`crate::sled_store::INDEX_SPAN_EVENTS`] events has gathered, in paced slices, without a
//! flush of their own, the index mark (`I`) with the last. What the indexer has not written
//! is rebuilt from the log on open. Readers look at the tail first, then at sled: a stream's
//! entries in sled are read only below the tail's first version of it, so an entry in both
//! places (a span written, not yet dropped from memory) is never seen twice.

use foldhash::HashMap;
use std::sync::Arc;

use crate::{CommandRecord, StoreError};

/// One stream's consecutive versions in a span: the first version and each one's position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamRun {
    pub(crate) first_version: u64,
    pub(crate) positions: Vec<u64>,
}

impl StreamRun {
    /// The run's last (version, position).
    pub(crate) fn head(&self) -> Option<(u64, u64)> {
        let last = *self.positions.last()?;
        Some((self.first_version + self.positions.len() as u64 - 1, last))
    }
}

/// The index entries of consecutive whole groups.
#[derive(Debug, Default)]
pub(crate) struct Span {
    /// The last position covered (0 while empty).
    pub(crate) through: u64,
    /// Events covered.
    pub(crate) events: u64,
    pub(crate) streams: HashMap<String, StreamRun>,
    pub(crate) commands: HashMap<String, CommandRecord>,
}

impl Span {
    /// Adds a stream's next versions; they must follow on from what the span holds of it.
    pub(crate) fn add_stream(
        &mut self,
        stream: &str,
        first_version: u64,
        positions: &[u64],
    ) -> Result<(), StoreError> {
        let Some(&last) = positions.last() else {
            return Ok(());
        };
        match self.streams.get_mut(stream) {
            Some(run) => {
                let next = run.first_version + run.positions.len() as u64;
                if first_version != next {
                    return Err(StoreError::Corrupt {
                        position: positions[0],
                        detail: format!(
                            "{stream} version {first_version} follows version {}",
                            next - 1
                        ),
                    });
                }
                run.positions.extend_from_slice(positions);
            }
            None => {
                self.streams.insert(
                    stream.to_string(),
                    StreamRun {
                        first_version,
                        positions: positions.to_vec(),
                    },
                );
            }
        }
        self.events += positions.len() as u64;
        self.through = self.through.max(last);
        Ok(())
    }

    pub(crate) fn add_command(&mut self, record: CommandRecord) {
        self.commands.insert(record.command_id.clone(), record);
    }
}

/// What of the index is not in sled yet.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    /// sled's stream and command index entries are complete through this position.
    pub(crate) indexed: u64,
    /// The span the indexer is writing (older than `live`).
    pub(crate) frozen: Option<Arc<Span>>,
    /// Groups committed since.
    pub(crate) live: Span,
}

impl Tail {
    /// A tail with nothing past `indexed`.
    pub(crate) fn new(indexed: u64) -> Tail {
        Tail {
            indexed,
            ..Tail::default()
        }
    }

    /// The command's record, when the tail holds it.
    pub(crate) fn command(&self, command_id: &str) -> Option<CommandRecord> {
        self.live
            .commands
            .get(command_id)
            .or_else(|| self.frozen.as_ref()?.commands.get(command_id))
            .cloned()
    }

    /// Events whose index entries are here only (the live span and the one being written).
    pub(crate) fn unindexed_events(&self) -> u64 {
        self.live.events + self.frozen.as_ref().map_or(0, |span| span.events)
    }

    pub(crate) fn contains_command(&self, command_id: &str) -> bool {
        self.live.commands.contains_key(command_id)
            || self
                .frozen
                .as_ref()
                .is_some_and(|span| span.commands.contains_key(command_id))
    }

    /// The stream's runs in the tail, oldest first (a copy: readers do not hold the lock).
    pub(crate) fn stream_runs(&self, stream: &str) -> Vec<StreamRun> {
        let frozen = self
            .frozen
            .as_ref()
            .and_then(|span| span.streams.get(stream));
        frozen
            .into_iter()
            .chain(self.live.streams.get(stream))
            .cloned()
            .collect()
    }

    /// Hands the live span to the indexer when it holds at least `min_events` and no other
    /// span is being written.
    pub(crate) fn freeze(&mut self, min_events: u64) -> Option<Arc<Span>> {
        if self.frozen.is_some() || self.live.events == 0 || self.live.events < min_events {
            return None;
        }
        let span = Arc::new(std::mem::take(&mut self.live));
        self.frozen = Some(Arc::clone(&span));
        Some(span)
    }

    /// The frozen span is in sled now; returns it, for the caller to drop once it has let go
    /// of the tail's lock (freeing a span's thousands of records takes a while).
    #[must_use = "drop the span outside the tail's lock"]
    pub(crate) fn written(&mut self, through: u64) -> Option<Arc<Span>> {
        self.indexed = through;
        self.frozen.take()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::EventRef;

    fn record(id: &str, position: u64) -> CommandRecord {
        CommandRecord {
            command_id: id.to_string(),
            body_hash: None,
            events: vec![EventRef {
                position,
                stream: "grant-a".to_string(),
                version: position,
                event_type: "grant.proposed".to_string(),
            }],
        }
    }

    #[test]
    fn runs_follow_on_and_a_gap_is_refused() {
        let mut span = Span::default();
        span.add_stream("grant-a", 1, &[1, 2]).unwrap();
        span.add_stream("grant-a", 3, &[5]).unwrap();
        assert_eq!(span.streams["grant-a"].positions, vec![1, 2, 5]);
        assert_eq!(span.streams["grant-a"].head(), Some((3, 5)));
        assert_eq!((span.events, span.through), (3, 5));
        assert!(span.add_stream("grant-a", 5, &[6]).is_err());
    }

    #[test]
    fn a_frozen_span_stays_visible_until_written() {
        let mut tail = Tail::new(10);
        tail.live.add_stream("grant-a", 4, &[11, 12]).unwrap();
        tail.live.add_command(record("c1", 11));
        assert!(tail.freeze(3).is_none(), "below the span size");
        let span = tail.freeze(2).expect("frozen");
        assert_eq!(span.through, 12);
        assert!(tail.freeze(0).is_none(), "one span at a time");
        tail.live.add_stream("grant-a", 6, &[13]).unwrap();
        tail.live.add_command(record("c2", 13));
        let runs = tail.stream_runs("grant-a");
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].first_version, runs[1].first_version), (4, 6));
        assert!(tail.contains_command("c1") && tail.contains_command("c2"));
        let dropped = tail.written(span.through);
        assert!(dropped.is_some_and(|dropped| Arc::ptr_eq(&dropped, &span)));
        assert_eq!(tail.indexed, 12);
        assert!(!tail.contains_command("c1") && tail.command("c2").is_some());
        assert_eq!(tail.stream_runs("grant-a").len(), 1);
    }
}
