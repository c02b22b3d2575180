//! What every backend checks of an event before hashing and storing it, with the bounds
//! they share (so that a log always moves between backends).

use serde_json::value::RawValue;

use std::collections::{HashMap, HashSet};

use crate::envelope::{is_compact_json_object, ChainVerifier, Envelope};
use crate::{AppendBatch, AppendCommand, CommandRecord, EventRef, Head, StoreError};

/// Stream names, command ids and snapshot names: at most this many bytes.
pub const KEY_TEXT_BYTES_MAX: usize = 1024;
/// The largest canonical event: one must fit a sled chunk of 64 KiB with its 36-byte record
/// header (so that no value reaches sled's blob files).
pub const EVENT_BYTES_MAX: usize = 64 * 1024 - 36 - 1;

/// A key component: 1 to [`KEY_TEXT_BYTES_MAX`] bytes, no NUL (NUL separates key parts).
pub fn check_key_text(what: &str, text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > KEY_TEXT_BYTES_MAX || text.contains('\0') {
        return Err(format!(
            "{what} {text:?} must be 1 to {KEY_TEXT_BYTES_MAX} bytes without NUL"
        ));
    }
    Ok(())
}

/// What the store needs of an event's content before hashing and storing it.
pub fn check_event_fields(stream: &str, payload: &str) -> Result<(), String> {
    check_key_text("stream", stream)?;
    let is_object =
        serde_json::from_str::<&RawValue>(payload).is_ok() && is_compact_json_object(payload);
    if !is_object {
        return Err(format!(
            "the payload of an event of {stream} is not a compact JSON object"
        ));
    }
    Ok(())
}

/// Refuses, before anything is written, what a batch cannot store: a bad stream name or
/// command id, a payload that is not a compact JSON object ([`StoreError::Invalid`]), and a
/// command id given twice in the batch or that `is_recorded` says the log holds already
/// ([`StoreError::Conflict`]). A backend whose own write refuses a recorded id may answer
/// `false` without looking.
pub fn check_new_commands(
    batch: &AppendBatch,
    mut is_recorded: impl FnMut(&AppendCommand) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for command in &batch.commands {
        check_key_text("command id", &command.command_id).map_err(StoreError::Invalid)?;
        if !seen.insert(command.command_id.as_str()) || is_recorded(command)? {
            return Err(StoreError::Conflict(format!(
                "command id {:?} is already recorded",
                command.command_id
            )));
        }
        for event in &command.events {
            check_event_fields(&event.stream, &event.payload).map_err(StoreError::Invalid)?;
        }
    }
    Ok(())
}

/// What a read of a stream asks for, bounded: the first version (at least 1) and at most
/// [`crate::READ_EVENTS_MAX`] events; `None` when it names nothing (no events, or a name no
/// stream can have).
pub fn stream_read_bounds(stream: &str, from_version: u64, limit: usize) -> Option<(u64, usize)> {
    let limit = limit.min(crate::READ_EVENTS_MAX);
    if limit == 0 || check_key_text("stream", stream).is_err() {
        return None;
    }
    Some((from_version.max(1), limit))
}

/// An event must not exceed [`EVENT_BYTES_MAX`].
pub fn check_event_size(envelope: &Envelope, canonical_bytes: usize) -> Result<(), String> {
    if canonical_bytes > EVENT_BYTES_MAX {
        return Err(format!(
            "event {} of {} is too large: {canonical_bytes} bytes, at most {EVENT_BYTES_MAX}",
            envelope.position, envelope.stream
        ));
    }
    Ok(())
}

/// Checks a whole import on top of `head` before any of it is written: every event's fields
/// and size, the chain (positions, versions, prev_hash, hashes, time), and that no command id
/// is recorded already. `stored_version(stream)` and `is_recorded(command_id)` ask the
/// backend (once per stream and per id). Returns the command records to write.
pub fn check_import(
    head: &Head,
    events: &[Envelope],
    mut stored_version: impl FnMut(&str) -> Result<u64, StoreError>,
    mut is_recorded: impl FnMut(&str) -> Result<bool, StoreError>,
) -> Result<Vec<CommandRecord>, StoreError> {
    let refused = |position: u64, detail: String| StoreError::ImportRefused { position, detail };
    let mut verifier = ChainVerifier::starting_after(head.position, head.hash);
    verifier.set_recorded_at(&head.recorded_at);
    let mut known_streams = HashSet::new();
    let mut records: Vec<CommandRecord> = Vec::new();
    let mut record_index: HashMap<String, usize> = HashMap::new();
    for envelope in events {
        let position = envelope.position;
        if let Err(detail) = check_event_fields(&envelope.stream, &envelope.payload)
            .and_then(|()| check_key_text("command id", &envelope.command_id))
            .and_then(|()| check_event_size(envelope, envelope.canonical_bytes().len()))
        {
            return Err(refused(position, detail));
        }
        if known_streams.insert(envelope.stream.clone()) {
            verifier.set_stream_version(&envelope.stream, stored_version(&envelope.stream)?);
        }
        verifier
            .check(envelope)
            .map_err(|error| refused(error.position().unwrap_or(position), error.to_string()))?;
        let index = match record_index.get(&envelope.command_id) {
            Some(index) => *index,
            None => {
                if is_recorded(&envelope.command_id)? {
                    return Err(refused(
                        position,
                        format!("command id {:?} is already recorded", envelope.command_id),
                    ));
                }
                records.push(CommandRecord {
                    command_id: envelope.command_id.clone(),
                    body_hash: None,
                    events: Vec::new(),
                });
                record_index.insert(envelope.command_id.clone(), records.len() - 1);
                records.len() - 1
            }
        };
        records[index].events.push(EventRef::of(envelope));
    }
    Ok(records)
}

/// What a save of checkpointed states must be (`EventStore::save_checkpoints`): a name and
/// keys a store can keep, and no entry past the mark it moves to.
pub fn check_checkpoints(
    name: &str,
    through: u64,
    entries: &[crate::CheckpointEntry],
) -> Result<(), crate::StoreError> {
    check_key_text("checkpoint name", name).map_err(crate::StoreError::Invalid)?;
    for entry in entries {
        check_key_text("checkpoint key", &entry.key).map_err(crate::StoreError::Invalid)?;
        if entry.position > through {
            return Err(crate::StoreError::Invalid(format!(
                "checkpoint {name}/{} at position {} lies past the mark {through}",
                entry.key, entry.position
            )));
        }
    }
    Ok(())
}
