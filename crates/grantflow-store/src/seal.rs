//! Sealing a batch: what every backend does between checking a batch and writing it, under
//! its own lock on the head. Positions follow the head, versions follow each stream,
//! `recorded_at` never goes back, and each event is hashed onto the one before it.

use foldhash::{HashMap, HashMapExt};

use crate::checks::check_event_size;
use crate::envelope::{chain_hash, now_rfc3339, Envelope};
use crate::{AppendCommand, CommandRecord, EventRef, Head, StoreError, ZERO_HASH};

/// A batch ready to write: every event with its canonical bytes, the command records, the
/// event refs per command (the append's answer) and the new head.
#[derive(Debug)]
pub struct Sealed {
    /// The envelopes, in position order, each with the bytes that were hashed.
    pub events: Vec<(Envelope, Vec<u8>)>,
    /// What the command index records of each command.
    pub commands: Vec<CommandRecord>,
    /// Where each command's events landed, per command in order.
    pub refs: Vec<Vec<EventRef>>,
    /// The head after the batch.
    pub head: Head,
}

/// Seals `commands` on top of `head`. `stored_version(stream)` gives a stream's version
/// before the batch; it is asked once per stream.
pub fn seal(
    head: &Head,
    commands: Vec<AppendCommand>,
    mut stored_version: impl FnMut(&str) -> Result<u64, StoreError>,
) -> Result<Sealed, StoreError> {
    // Never before the previous event, whatever this machine's clock says.
    let recorded_at = std::cmp::max(now_rfc3339(), head.recorded_at.clone());
    let mut versions: HashMap<String, u64> = HashMap::new();
    let mut position = head.position;
    let mut prev_hash = head.hash;
    let mut sealed = Sealed {
        events: Vec::new(),
        commands: Vec::with_capacity(commands.len()),
        refs: Vec::with_capacity(commands.len()),
        head: head.clone(),
    };
    for command in commands {
        let mut refs = Vec::with_capacity(command.events.len());
        for event in command.events {
            let version = match versions.get(&event.stream) {
                Some(version) => *version,
                None => stored_version(&event.stream)?,
            } + 1;
            versions.insert(event.stream.clone(), version);
            position += 1;
            let mut envelope = Envelope {
                position,
                stream: event.stream,
                version,
                event_type: event.event_type,
                schema: event.schema,
                recorded_at: recorded_at.clone(),
                actor: event.actor,
                command_id: event.command_id,
                correlation_id: event.correlation_id,
                payload: event.payload,
                prev_hash,
                hash: ZERO_HASH,
            };
            let canonical = envelope.canonical_bytes();
            check_event_size(&envelope, canonical.len()).map_err(StoreError::Invalid)?;
            envelope.hash = chain_hash(&prev_hash, &canonical);
            prev_hash = envelope.hash;
            refs.push(EventRef::of(&envelope));
            sealed.events.push((envelope, canonical));
        }
        sealed.commands.push(CommandRecord {
            command_id: command.command_id,
            body_hash: Some(command.body_hash),
            events: refs.clone(),
        });
        sealed.refs.push(refs);
    }
    sealed.head = Head {
        position,
        hash: prev_hash,
        recorded_at,
    };
    Ok(sealed)
}
