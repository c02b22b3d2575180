//! Stored canonical bytes back to envelopes.
//!
//! The `events.canonical` column holds exactly the bytes that were hashed (contract.md:
//! compact JSON, fields in contract order, `hash` left out) and `events.hash` the hash. A
//! read decodes them and checks that re-encoding gives the same bytes, so what `read`
//! returns is byte-identical to what was appended (and prints the same line).

use grantflow_store::envelope::parse_hex_hash;
use grantflow_store::{Envelope, Hash, StoreError};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The JSON shape of stored canonical bytes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored<'a> {
    position: u64,
    stream: String,
    version: u64,
    #[serde(rename = "type")]
    event_type: String,
    schema: u32,
    recorded_at: String,
    actor: String,
    command_id: String,
    correlation_id: String,
    #[serde(borrow)]
    payload: &'a RawValue,
    prev_hash: String,
}

/// Decodes an event stored at `position`: its canonical bytes and hash.
pub(crate) fn decode(position: u64, canonical: &[u8], hash: &[u8]) -> Result<Envelope, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { position, detail };
    let hash: Hash = hash
        .try_into()
        .map_err(|_| corrupt(format!("stored hash has {} bytes", hash.len())))?;
    let stored: Stored<'_> = serde_json::from_slice(canonical)
        .map_err(|error| corrupt(format!("undecodable event: {error}")))?;
    let prev_hash = parse_hex_hash(&stored.prev_hash)
        .ok_or_else(|| corrupt("prev_hash is not 64 lowercase hex digits".to_string()))?;
    let envelope = Envelope {
        position: stored.position,
        stream: stored.stream,
        version: stored.version,
        event_type: stored.event_type,
        schema: stored.schema,
        recorded_at: stored.recorded_at,
        actor: stored.actor,
        command_id: stored.command_id,
        correlation_id: stored.correlation_id,
        payload: stored.payload.get().to_string(),
        prev_hash,
        hash,
    };
    if envelope.position != position {
        return Err(corrupt(format!(
            "the row holds an event of position {}",
            envelope.position
        )));
    }
    if envelope.canonical_bytes() != canonical {
        return Err(corrupt(
            "stored bytes are not in canonical form".to_string(),
        ));
    }
    Ok(envelope)
}
