//! What every backend checks of an event before hashing and storing it, with the bounds
//! they share (so that a log always moves between backends).

use serde_json::value::RawValue;

use crate::envelope::{is_compact_json_object, Envelope};

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
