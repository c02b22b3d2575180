//! Stored canonical bytes back to envelopes.
//!
//! The `events.canonical` column holds exactly the bytes that were hashed (docs/events.md:
//! compact JSON, fields in the envelope's order, `hash` left out) and `events.hash` the hash. A
//! read decodes them and checks that re-encoding gives the same bytes, so what `read`
//! returns is byte-identical to what was appended (and prints the same line).

use grantflow_store::{Envelope, Hash, StoreError};

/// Decodes an event stored at `position`: its canonical bytes and hash.
pub(crate) fn decode(position: u64, canonical: &[u8], hash: &[u8]) -> Result<Envelope, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { position, detail };
    let hash: Hash = hash
        .try_into()
        .map_err(|_| corrupt(format!("stored hash has {} bytes", hash.len())))?;
    let envelope = Envelope::from_canonical(canonical, hash)
        .map_err(|error| corrupt(format!("undecodable event: {error}")))?;
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
