//! A store's newest events, kept in memory for the readers that follow the log live.
//!
//! A subscriber that has caught up reads each new group as soon as it is durable: with 100
//! subscribers, without this, that is 100 reads of the same few events, each a lookup and a
//! decode on a blocking thread (the thread's wake-up costs more than the read), or a
//! PostgreSQL query. A group's commit also hands its envelopes here (they were built to seal
//! the group), and a read whose whole range is held is answered from memory, on the caller's
//! thread. Both backends keep one (`grantflow-store-sled`'s store, and `grantflow-store-pg`'s
//! for the groups its own process appends).
//!
//! What is held is always a run of consecutive positions that are in the log exactly so:
//! groups enter once they are durable (committed), a group that does not follow the last one
//! held (after an import, or another process's append) starts a new run, and the oldest
//! groups leave past [`RECENT_EVENTS_MAX`] events or [`RECENT_BYTES_MAX`] bytes; a group
//! larger than that is not held. Readers clone what they take outside the lock, so the
//! appending thread never waits behind a large read.

use std::collections::VecDeque;
use std::mem::size_of;
use std::sync::{Arc, Mutex};

use crate::Envelope;

/// Events held at most.
pub const RECENT_EVENTS_MAX: usize = 2_048;
/// Bytes held at most (the envelopes' text and their structs, roughly).
pub const RECENT_BYTES_MAX: usize = 4 << 20;

/// One durable group's envelopes, positions consecutive.
struct Held {
    events: Arc<Vec<Envelope>>,
    bytes: usize,
}

impl Held {
    fn first(&self) -> u64 {
        self.events.first().map_or(0, |envelope| envelope.position)
    }
}

#[derive(Default)]
struct Run {
    groups: VecDeque<Held>,
    events: usize,
    bytes: usize,
}

/// The newest durable groups (see the module's documentation).
#[derive(Default)]
pub struct Recent {
    run: Mutex<Run>,
}

/// Roughly what an envelope takes in memory.
fn envelope_bytes(envelope: &Envelope) -> usize {
    size_of::<Envelope>()
        + envelope.stream.len()
        + envelope.event_type.len()
        + envelope.recorded_at.len()
        + envelope.actor.len()
        + envelope.command_id.len()
        + envelope.correlation_id.len()
        + envelope.payload.len()
}

impl Recent {
    /// Holds a durable group: `events` must be in the log at exactly their positions,
    /// consecutive.
    pub fn push(&self, events: Vec<Envelope>) {
        let Some(first) = events.first().map(|envelope| envelope.position) else {
            return;
        };
        let bytes: usize = events.iter().map(envelope_bytes).sum();
        let count = events.len();
        // A group larger than the whole bound (a pipelined batch of thousands) is not held.
        let held = (count <= RECENT_EVENTS_MAX && bytes <= RECENT_BYTES_MAX).then(|| Held {
            events: Arc::new(events),
            bytes,
        });
        // What leaves is dropped after the lock is released (`run` is declared after it).
        let mut leaving = Vec::new();
        let mut run = match self.run.lock() {
            Ok(run) => run,
            Err(poisoned) => poisoned.into_inner(),
        };
        let follows = run
            .groups
            .back()
            .and_then(|last| last.events.last())
            .is_none_or(|last| last.position + 1 == first);
        if held.is_none() || !follows {
            // What is held would no longer reach the head: a new run starts.
            leaving.extend(run.groups.drain(..));
            run.events = 0;
            run.bytes = 0;
        }
        let Some(held) = held else {
            return;
        };
        run.events += count;
        run.bytes += bytes;
        run.groups.push_back(held);
        while run.events > RECENT_EVENTS_MAX || run.bytes > RECENT_BYTES_MAX {
            let Some(old) = run.groups.pop_front() else {
                break;
            };
            run.events -= old.events.len();
            run.bytes -= old.bytes;
            leaving.push(old);
        }
    }

    /// The events `from..=through` if every one of them is held; `None` otherwise (the
    /// caller reads the log).
    pub fn read(&self, from: u64, through: u64) -> Option<Vec<Envelope>> {
        if from > through {
            return None;
        }
        let groups: Vec<Arc<Vec<Envelope>>> = {
            let run = match self.run.lock() {
                Ok(run) => run,
                Err(poisoned) => poisoned.into_inner(),
            };
            let first = run.groups.front()?.first();
            let last = run.groups.back()?.events.last()?.position;
            if from < first || through > last {
                return None;
            }
            // The group holding `from`: the last one that starts at or before it.
            let start = run.groups.partition_point(|held| held.first() <= from) - 1;
            run.groups
                .range(start..)
                .take_while(|held| held.first() <= through)
                .map(|held| Arc::clone(&held.events))
                .collect()
        };
        let mut events = Vec::with_capacity((through - from + 1) as usize);
        for group in &groups {
            for envelope in group.iter() {
                if (from..=through).contains(&envelope.position) {
                    events.push(envelope.clone());
                }
            }
        }
        Some(events)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::ZERO_HASH;

    fn envelope(position: u64, payload_bytes: usize) -> Envelope {
        Envelope {
            position,
            stream: "fund-F1".into(),
            version: position,
            event_type: "contribution.recorded".into(),
            schema: 1,
            recorded_at: "2026-11-30T00:00:00.000000Z".into(),
            actor: "finance".into(),
            command_id: format!("c{position}"),
            correlation_id: format!("c{position}"),
            payload: format!("{{\"x\":\"{}\"}}", "a".repeat(payload_bytes)),
            prev_hash: ZERO_HASH,
            hash: ZERO_HASH,
        }
    }

    fn group(positions: std::ops::RangeInclusive<u64>) -> Vec<Envelope> {
        positions.map(|position| envelope(position, 10)).collect()
    }

    fn positions(events: Option<Vec<Envelope>>) -> Option<Vec<u64>> {
        events.map(|events| events.iter().map(|e| e.position).collect())
    }

    #[test]
    fn answers_only_ranges_it_holds_whole() {
        let recent = Recent::default();
        assert_eq!(positions(recent.read(1, 1)), None, "empty");
        recent.push(group(5..=7));
        recent.push(group(8..=8));
        recent.push(group(9..=12));
        assert_eq!(positions(recent.read(5, 12)), Some((5..=12).collect()));
        assert_eq!(positions(recent.read(7, 9)), Some(vec![7, 8, 9]));
        assert_eq!(positions(recent.read(8, 8)), Some(vec![8]));
        assert_eq!(positions(recent.read(12, 12)), Some(vec![12]));
        assert_eq!(positions(recent.read(4, 6)), None, "starts before");
        assert_eq!(positions(recent.read(11, 13)), None, "ends after");
        assert_eq!(positions(recent.read(13, 13)), None, "past the last");
        assert_eq!(positions(recent.read(9, 8)), None, "empty range");
        let read = recent.read(10, 10).unwrap();
        assert_eq!(read[0], envelope(10, 10), "the envelope itself");
    }

    #[test]
    fn a_group_that_does_not_follow_starts_a_new_run() {
        let recent = Recent::default();
        recent.push(group(1..=3));
        recent.push(group(7..=8)); // 4..=6 went in some other way (an import)
        assert_eq!(positions(recent.read(1, 3)), None);
        assert_eq!(positions(recent.read(7, 8)), Some(vec![7, 8]));
        recent.push(group(9..=9));
        assert_eq!(positions(recent.read(7, 9)), Some(vec![7, 8, 9]));
        recent.push(Vec::new());
        assert_eq!(positions(recent.read(7, 9)), Some(vec![7, 8, 9]), "no-op");
    }

    #[test]
    fn the_oldest_groups_leave_past_the_bounds() {
        let recent = Recent::default();
        let mut next = 1;
        for _ in 0..(RECENT_EVENTS_MAX / 100 + 5) {
            recent.push(group(next..=next + 99));
            next += 100;
        }
        let last = next - 1;
        let run = recent.run.lock().unwrap();
        assert!(run.events <= RECENT_EVENTS_MAX, "{}", run.events);
        assert!(run.events > RECENT_EVENTS_MAX - 100, "{}", run.events);
        let first = run.groups.front().unwrap().first();
        drop(run);
        assert_eq!(positions(recent.read(first - 1, last)), None);
        assert_eq!(
            positions(recent.read(first, last)),
            Some((first..=last).collect())
        );

        // By bytes: groups of 1 MiB payloads.
        let recent = Recent::default();
        for position in 1..=10 {
            recent.push(vec![envelope(position, 1 << 20)]);
        }
        let run = recent.run.lock().unwrap();
        assert!(run.bytes <= RECENT_BYTES_MAX, "{}", run.bytes);
        assert_eq!(run.groups.len(), 3, "three 1 MiB groups fit in 4 MiB");
        drop(run);
        assert_eq!(positions(recent.read(8, 10)), Some(vec![8, 9, 10]));

        // A group larger than the bound is not held, and what was held before it goes.
        recent.push(vec![envelope(11, RECENT_BYTES_MAX)]);
        assert_eq!(positions(recent.read(10, 10)), None);
        assert_eq!(positions(recent.read(11, 11)), None);
        recent.push(group(12..=12));
        assert_eq!(positions(recent.read(12, 12)), Some(vec![12]));
    }
}
