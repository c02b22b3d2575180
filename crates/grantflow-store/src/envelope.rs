//! The stored event (the envelope), its canonical bytes and the hash chain.
//!
//! The hash chain (docs/events.md): `hash(n) = SHA-256(hash(n-1) || canonical bytes of event
//! n)`, `hash(0)` = 32 zero bytes. The canonical bytes are the envelope as compact JSON, fields
//! in the envelope's order, `hash` left out. A printed line ([`Envelope::to_line`]) is exactly those
//! bytes with `,"hash":"<hex>"` inserted before the final `}`, so anyone can re-check an export
//! with a few lines of any language.
//!
//! Invariants:
//! - `payload` is kept byte-exact: it is hashed as stored, never re-serialised.
//! - [`Envelope::from_line`] accepts only lines that [`Envelope::to_line`] would print (it
//!   re-serialises and compares), so two different texts never carry the same hash.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The hash "before" the first event.
pub const ZERO_HASH: Hash = [0; 32];

/// Length of `recorded_at` in its one accepted shape, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub const RECORDED_AT_LEN: usize = 27;

/// The `strftime` pattern of `recorded_at` (fixed microsecond precision, so that strings
/// order as times).
const RECORDED_AT_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Global position, gapless from 1.
    pub position: u64,
    /// `fund-<id>` or `grant-<id>`.
    pub stream: String,
    /// Version within the stream, gapless from 1.
    pub version: u64,
    /// Dotted past-tense type (`type` in JSON).
    pub event_type: String,
    /// Payload schema version.
    pub schema: u32,
    /// RFC 3339 UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`; never before the previous event's.
    pub recorded_at: String,
    /// Who issued the command.
    pub actor: String,
    /// The command's idempotency key.
    pub command_id: String,
    /// Groups the events of one command.
    pub correlation_id: String,
    /// The payload: compact JSON object text, kept byte-exact.
    pub payload: String,
    /// The previous event's hash ([`ZERO_HASH`] for position 1).
    pub prev_hash: Hash,
    /// This event's hash: SHA-256(prev_hash || canonical bytes).
    pub hash: Hash,
}

/// Why an envelope line or a chain was refused. Every variant that can know the position
/// names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The line is not an envelope at all (bad JSON, a missing, unknown or mistyped field).
    #[error("not an envelope: {detail}")]
    Malformed {
        /// What is wrong.
        detail: String,
    },
    /// The line parses but a field breaks a rule of the envelope (hex, time, payload).
    #[error("event {position}: {detail}")]
    InvalidField {
        /// The event's position.
        position: u64,
        /// What is wrong.
        detail: String,
    },
    /// The line parses but is not byte-for-byte what grantflow prints (spacing, field order,
    /// escapes, ...), so its hash would not prove its text.
    #[error("event {position}: the line is not in canonical form (compact JSON, fields in the envelope's order)")]
    NotCanonical {
        /// The event's position.
        position: u64,
    },
    /// The stored hash is not the hash of the event's content.
    #[error("event {position}: hash mismatch (stored {stored}, computed {computed})")]
    HashMismatch {
        /// The event's position.
        position: u64,
        /// The hash the event carries (hex).
        stored: String,
        /// The hash of its content (hex).
        computed: String,
    },
    /// The event does not continue the chain (position, prev_hash, version or time).
    #[error("event {position}: {detail}")]
    Chain {
        /// The event's position.
        position: u64,
        /// What is wrong.
        detail: String,
    },
}

impl EnvelopeError {
    /// The position of the bad event, when the line got far enough to tell.
    pub fn position(&self) -> Option<u64> {
        match self {
            EnvelopeError::Malformed { .. } => None,
            EnvelopeError::InvalidField { position, .. }
            | EnvelopeError::NotCanonical { position }
            | EnvelopeError::HashMismatch { position, .. }
            | EnvelopeError::Chain { position, .. } => Some(*position),
        }
    }
}

/// The current time as `recorded_at` text: RFC 3339 UTC with microseconds,
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format(RECORDED_AT_FORMAT).to_string()
}

/// Whether `text` is a `recorded_at` in its one accepted shape (a real UTC time,
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`).
pub fn is_valid_recorded_at(text: &str) -> bool {
    text.len() == RECORDED_AT_LEN
        && chrono::NaiveDateTime::parse_from_str(text, RECORDED_AT_FORMAT)
            .map(|time| time.format(RECORDED_AT_FORMAT).to_string() == text)
            .unwrap_or(false)
}

/// The hash of an event: SHA-256 of the previous hash (32 raw bytes) then its canonical bytes.
pub fn chain_hash(prev_hash: &Hash, canonical_bytes: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical_bytes);
    hasher.finalize().into()
}

/// Appends `text` as a JSON string, escaped exactly as serde_json escapes it.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    // Writing a &str to a Vec cannot fail: serde_json only errors on I/O or on map keys.
    if serde_json::to_writer(&mut *out, text).is_err() {
        unreachable_string_error(out, text);
    }
}

/// Never reached (see `push_json_string`); kept panic-free by writing a lossless fallback.
#[cold]
fn unreachable_string_error(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for ch in text.chars() {
        let mut buf = [0u16; 2];
        for unit in ch.encode_utf16(&mut buf) {
            out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
        }
    }
    out.push(b'"');
}

impl Envelope {
    /// The canonical bytes: compact JSON, fields in the envelope's order, `hash` left out, payload
    /// verbatim.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.payload.len());
        self.write_canonical_fields(&mut out);
        out.push(b'}');
        out
    }

    /// Everything of the canonical bytes but the final `}`.
    fn write_canonical_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"position\":");
        out.extend_from_slice(self.position.to_string().as_bytes());
        out.extend_from_slice(b",\"stream\":");
        push_json_string(out, &self.stream);
        out.extend_from_slice(b",\"version\":");
        out.extend_from_slice(self.version.to_string().as_bytes());
        out.extend_from_slice(b",\"type\":");
        push_json_string(out, &self.event_type);
        out.extend_from_slice(b",\"schema\":");
        out.extend_from_slice(self.schema.to_string().as_bytes());
        out.extend_from_slice(b",\"recorded_at\":");
        push_json_string(out, &self.recorded_at);
        out.extend_from_slice(b",\"actor\":");
        push_json_string(out, &self.actor);
        out.extend_from_slice(b",\"command_id\":");
        push_json_string(out, &self.command_id);
        out.extend_from_slice(b",\"correlation_id\":");
        push_json_string(out, &self.correlation_id);
        out.extend_from_slice(b",\"payload\":");
        out.extend_from_slice(self.payload.as_bytes());
        out.extend_from_slice(b",\"prev_hash\":\"");
        push_hex(out, &self.prev_hash);
        out.push(b'"');
    }

    /// SHA-256(prev_hash || canonical bytes): what `hash` must be.
    pub fn compute_hash(&self) -> Hash {
        chain_hash(&self.prev_hash, &self.canonical_bytes())
    }

    /// The printed line (`events`, `export --format jsonl`): the canonical bytes with
    /// `,"hash":"<hex>"` before the final `}`. No line ending.
    pub fn to_line(&self) -> String {
        let mut out = Vec::with_capacity(340 + self.payload.len());
        self.write_canonical_fields(&mut out);
        out.extend_from_slice(b",\"hash\":\"");
        push_hex(&mut out, &self.hash);
        out.extend_from_slice(b"\"}");
        // Every piece is valid UTF-8 (JSON escapes of &str, ASCII, the payload &str).
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Parses a printed line strictly: all fields, in the envelope's order, nothing else, the
    /// payload a compact JSON object, hex as 64 lowercase digits, `recorded_at` in its fixed
    /// shape, the line byte-for-byte canonical, and `hash` the hash of the content. One
    /// trailing `\n` or `\r\n` is ignored.
    pub fn from_line(line: &str) -> Result<Envelope, EnvelopeError> {
        let line = line
            .strip_suffix("\r\n")
            .or_else(|| line.strip_suffix('\n'))
            .unwrap_or(line);
        let envelope = Self::parse_fields(line.as_bytes())?;
        let position = envelope.position;
        if envelope.to_line().as_bytes() != line.as_bytes() {
            return Err(EnvelopeError::NotCanonical { position });
        }
        envelope.check_hash()?;
        Ok(envelope)
    }

    /// Decodes a line's fields and checks each one's shape (not canonical form, not the hash).
    fn parse_fields(line: &[u8]) -> Result<Envelope, EnvelopeError> {
        let wire: WireEnvelope<'_> =
            serde_json::from_slice(line).map_err(|error| EnvelopeError::Malformed {
                detail: error.to_string(),
            })?;
        let position = wire.position;
        let invalid = |detail: String| EnvelopeError::InvalidField { position, detail };
        let payload = wire.payload.get();
        if !is_compact_json_object(payload) {
            return Err(invalid("payload is not a compact JSON object".to_string()));
        }
        if !is_valid_recorded_at(&wire.recorded_at) {
            return Err(invalid(format!(
                "recorded_at {:?} is not YYYY-MM-DDTHH:MM:SS.ffffffZ",
                wire.recorded_at
            )));
        }
        let prev_hash = parse_hex_hash(&wire.prev_hash)
            .ok_or_else(|| invalid("prev_hash is not 64 lowercase hex digits".to_string()))?;
        let hash = match wire.hash {
            Some(text) => parse_hex_hash(&text)
                .ok_or_else(|| invalid("hash is not 64 lowercase hex digits".to_string()))?,
            None => return Err(invalid("missing field `hash`".to_string())),
        };
        Ok(Envelope {
            position,
            stream: wire.stream,
            version: wire.version,
            event_type: wire.event_type,
            schema: wire.schema,
            recorded_at: wire.recorded_at,
            actor: wire.actor,
            command_id: wire.command_id,
            correlation_id: wire.correlation_id,
            payload: payload.to_string(),
            prev_hash,
            hash,
        })
    }

    /// Decodes stored canonical bytes (no `hash` field) and attaches the stored hash. Does not
    /// re-hash: reading stays cheap; `verify` re-hashes. Every backend reads through this.
    pub fn from_canonical(bytes: &[u8], hash: Hash) -> Result<Envelope, EnvelopeError> {
        // The stored bytes are canonical (they were written so): read that fixed layout
        // directly, and hand anything unusual (an escape in a string) to serde.
        if let Some(envelope) = fast::decode(bytes, hash) {
            return Ok(envelope);
        }
        Self::from_canonical_serde(bytes, hash)
    }

    /// [`Envelope::from_canonical`] through serde (any valid JSON of the envelope's shape).
    pub(crate) fn from_canonical_serde(
        bytes: &[u8],
        hash: Hash,
    ) -> Result<Envelope, EnvelopeError> {
        let wire: WireEnvelope<'_> =
            serde_json::from_slice(bytes).map_err(|error| EnvelopeError::Malformed {
                detail: error.to_string(),
            })?;
        let position = wire.position;
        if wire.hash.is_some() {
            return Err(EnvelopeError::InvalidField {
                position,
                detail: "stored canonical bytes carry a hash".to_string(),
            });
        }
        let prev_hash =
            parse_hex_hash(&wire.prev_hash).ok_or_else(|| EnvelopeError::InvalidField {
                position,
                detail: "prev_hash is not 64 lowercase hex digits".to_string(),
            })?;
        Ok(Envelope {
            position,
            stream: wire.stream,
            version: wire.version,
            event_type: wire.event_type,
            schema: wire.schema,
            recorded_at: wire.recorded_at,
            actor: wire.actor,
            command_id: wire.command_id,
            correlation_id: wire.correlation_id,
            payload: wire.payload.get().to_string(),
            prev_hash,
            hash,
        })
    }

    /// Checks that `hash` is the hash of the content.
    pub fn check_hash(&self) -> Result<(), EnvelopeError> {
        let computed = self.compute_hash();
        if computed != self.hash {
            return Err(EnvelopeError::HashMismatch {
                position: self.position,
                stored: hex::encode(self.hash),
                computed: hex::encode(computed),
            });
        }
        Ok(())
    }

    /// The envelope as a JSON value for HTTP responses, `hash` included. Field order follows
    /// the envelope's order when serde_json keeps insertion order; the payload is embedded as JSON
    /// (an unparsable payload, which the store never holds, is embedded as a string).
    pub fn to_json_value(&self) -> serde_json::Value {
        let payload = serde_json::from_str(&self.payload)
            .unwrap_or_else(|_| serde_json::Value::String(self.payload.clone()));
        let mut map = serde_json::Map::new();
        map.insert("position".into(), self.position.into());
        map.insert("stream".into(), self.stream.clone().into());
        map.insert("version".into(), self.version.into());
        map.insert("type".into(), self.event_type.clone().into());
        map.insert("schema".into(), self.schema.into());
        map.insert("recorded_at".into(), self.recorded_at.clone().into());
        map.insert("actor".into(), self.actor.clone().into());
        map.insert("command_id".into(), self.command_id.clone().into());
        map.insert("correlation_id".into(), self.correlation_id.clone().into());
        map.insert("payload".into(), payload);
        map.insert("prev_hash".into(), hex::encode(self.prev_hash).into());
        map.insert("hash".into(), hex::encode(self.hash).into());
        serde_json::Value::Object(map)
    }
}

/// The JSON shape of a line. Field order and spacing are enforced by re-serialising.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEnvelope<'a> {
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
    #[serde(default)]
    hash: Option<String>,
}

/// A decoder of the canonical layout for the read path (replay reads every event).
mod fast {
    use super::{parse_hex_hash, Envelope, Hash};

    /// The bytes after the payload: `,"prev_hash":"<64 hex>"}`.
    const TAIL_BYTES: usize = 14 + 64 + 2;

    /// Decodes canonical bytes whose strings hold no escapes; `None` for anything else.
    pub(super) fn decode(bytes: &[u8], hash: Hash) -> Option<Envelope> {
        let text = std::str::from_utf8(bytes).ok()?;
        let tail_start = text.len().checked_sub(TAIL_BYTES)?;
        let (head, tail) = text.split_at(tail_start);
        let prev_hex = tail
            .strip_prefix(",\"prev_hash\":\"")?
            .strip_suffix("\"}")?;
        let prev_hash = parse_hex_hash(prev_hex)?;
        let mut cursor = Cursor { rest: head };
        cursor.literal("{\"position\":")?;
        let position = cursor.number()?;
        cursor.literal(",\"stream\":")?;
        let stream = cursor.string()?;
        cursor.literal(",\"version\":")?;
        let version = cursor.number()?;
        cursor.literal(",\"type\":")?;
        let event_type = cursor.string()?;
        cursor.literal(",\"schema\":")?;
        let schema = u32::try_from(cursor.number()?).ok()?;
        cursor.literal(",\"recorded_at\":")?;
        let recorded_at = cursor.string()?;
        cursor.literal(",\"actor\":")?;
        let actor = cursor.string()?;
        cursor.literal(",\"command_id\":")?;
        let command_id = cursor.string()?;
        cursor.literal(",\"correlation_id\":")?;
        let correlation_id = cursor.string()?;
        cursor.literal(",\"payload\":")?;
        let payload = cursor.rest;
        // The payload is a compact object: it must at least look like one.
        if !(payload.starts_with('{') && payload.ends_with('}')) {
            return None;
        }
        Some(Envelope {
            position,
            stream: stream.to_string(),
            version,
            event_type: event_type.to_string(),
            schema,
            recorded_at: recorded_at.to_string(),
            actor: actor.to_string(),
            command_id: command_id.to_string(),
            correlation_id: correlation_id.to_string(),
            payload: payload.to_string(),
            prev_hash,
            hash,
        })
    }

    /// Position, type, schema and payload of canonical bytes whose strings hold no escapes;
    /// `None` for anything else (the caller then decodes the whole envelope).
    pub(crate) fn payload(bytes: &[u8]) -> Option<(u64, &str, u32, &str)> {
        let text = std::str::from_utf8(bytes).ok()?;
        let head = &text[..text.len().checked_sub(TAIL_BYTES)?];
        let mut cursor = Cursor { rest: head };
        cursor.literal("{\"position\":")?;
        let position = cursor.number()?;
        cursor.literal(",\"stream\":")?;
        cursor.string()?;
        cursor.literal(",\"version\":")?;
        cursor.number()?;
        cursor.literal(",\"type\":")?;
        let event_type = cursor.string()?;
        cursor.literal(",\"schema\":")?;
        let schema = u32::try_from(cursor.number()?).ok()?;
        for field in [
            ",\"recorded_at\":",
            ",\"actor\":",
            ",\"command_id\":",
            ",\"correlation_id\":",
        ] {
            cursor.literal(field)?;
            cursor.string()?;
        }
        cursor.literal(",\"payload\":")?;
        let payload = cursor.rest;
        if !(payload.starts_with('{') && payload.ends_with('}')) {
            return None;
        }
        Some((position, event_type, schema, payload))
    }

    struct Cursor<'a> {
        rest: &'a str,
    }

    impl<'a> Cursor<'a> {
        fn literal(&mut self, expected: &str) -> Option<()> {
            self.rest = self.rest.strip_prefix(expected)?;
            Some(())
        }

        /// A JSON non-negative integer as serde_json writes it (no sign, no leading zero).
        fn number(&mut self) -> Option<u64> {
            let end = self
                .rest
                .bytes()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(self.rest.len());
            let digits = &self.rest[..end];
            if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
                return None;
            }
            let value = digits.parse().ok()?;
            self.rest = &self.rest[end..];
            Some(value)
        }

        /// A JSON string without escapes or control characters; `None` otherwise.
        fn string(&mut self) -> Option<&'a str> {
            let inner = self.rest.strip_prefix('"')?;
            // Bytes, not chars: both stops are ASCII, which no byte of a multi-byte UTF-8
            // sequence can be, so `end` is a char boundary. memchr2 finds the first stop
            // with SIMD (replay reads six strings per event); a control character, which
            // JSON allows only escaped, is then looked for in what it passed over.
            let end = memchr::memchr2(b'"', b'\\', inner.as_bytes())?;
            if inner.as_bytes()[end] != b'"' {
                return None;
            }
            let value = &inner[..end];
            if value.bytes().any(|b| b < b' ') {
                return None;
            }
            self.rest = &inner[end + 1..];
            Some(value)
        }
    }
}

/// Position, type and payload of stored canonical bytes whose strings hold no escapes;
/// `None` for anything else (the caller then decodes the whole envelope with serde).
pub(crate) use fast::payload as stored_payload;

/// 64 lowercase hex digits to a hash (one pass; replay reads one per event).
pub fn parse_hex_hash(text: &str) -> Option<Hash> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut hash = ZERO_HASH;
    for (byte, pair) in hash.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (lower_hex_value(pair[0])? << 4) | lower_hex_value(pair[1])?;
    }
    Some(hash)
}

/// The value of one lowercase hex digit.
fn lower_hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// Whether `text` (already known to be valid JSON) is an object with no whitespace outside
/// strings.
pub fn is_compact_json_object(text: &str) -> bool {
    if !text.starts_with('{') {
        return false;
    }
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match byte {
                b'"' => in_string = true,
                b' ' | b'\t' | b'\n' | b'\r' => return false,
                _ => {}
            }
        }
    }
    true
}

/// Checks that envelopes continue a chain, one at a time and in order: positions gapless,
/// `prev_hash` the previous hash, `hash` the hash of the content, each stream's versions
/// gapless from 1, `recorded_at` well-formed and never going back. Used by `verify` and by
/// import.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    position: u64,
    hash: Hash,
    recorded_at: String,
    stream_versions: HashMap<String, u64>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// A verifier for a log from its first event.
    pub fn new() -> ChainVerifier {
        Self::starting_after(0, ZERO_HASH)
    }

    /// A verifier for the events after `position`, whose hash is `hash`. Streams start at
    /// version 0 unless set with [`ChainVerifier::set_stream_version`].
    pub fn starting_after(position: u64, hash: Hash) -> ChainVerifier {
        ChainVerifier {
            position,
            hash,
            recorded_at: String::new(),
            stream_versions: HashMap::new(),
        }
    }

    /// Declares a stream's version before the next event (when starting mid-log).
    pub fn set_stream_version(&mut self, stream: &str, version: u64) {
        self.stream_versions.insert(stream.to_string(), version);
    }

    /// Declares the `recorded_at` of the event before the next one (when starting mid-log).
    pub fn set_recorded_at(&mut self, recorded_at: &str) {
        self.recorded_at = recorded_at.to_string();
    }

    /// Checks that `envelope` is the next event of the chain, and advances.
    pub fn check(&mut self, envelope: &Envelope) -> Result<(), EnvelopeError> {
        let position = envelope.position;
        let chain = |detail: String| EnvelopeError::Chain { position, detail };
        let expected_position = self.position.saturating_add(1);
        if position != expected_position {
            return Err(EnvelopeError::Chain {
                position: expected_position,
                detail: format!("expected position {expected_position}, found {position}"),
            });
        }
        if envelope.prev_hash != self.hash {
            return Err(chain(format!(
                "prev_hash {} is not the hash of position {} ({})",
                hex::encode(envelope.prev_hash),
                self.position,
                hex::encode(self.hash)
            )));
        }
        envelope.check_hash()?;
        let version = self
            .stream_versions
            .get(&envelope.stream)
            .copied()
            .unwrap_or(0);
        if envelope.version != version.saturating_add(1) {
            return Err(chain(format!(
                "stream {} expected version {}, found {}",
                envelope.stream,
                version.saturating_add(1),
                envelope.version
            )));
        }
        if !is_valid_recorded_at(&envelope.recorded_at) {
            return Err(chain(format!(
                "recorded_at {:?} is not YYYY-MM-DDTHH:MM:SS.ffffffZ",
                envelope.recorded_at
            )));
        }
        if envelope.recorded_at < self.recorded_at {
            return Err(chain(format!(
                "recorded_at {} is before the previous event's {}",
                envelope.recorded_at, self.recorded_at
            )));
        }
        self.position = position;
        self.hash = envelope.hash;
        self.recorded_at.clone_from(&envelope.recorded_at);
        self.stream_versions
            .insert(envelope.stream.clone(), envelope.version);
        Ok(())
    }

    /// The last checked position and hash (the starting point before any check).
    pub fn head(&self) -> (u64, Hash) {
        (self.position, self.hash)
    }

    /// The `recorded_at` of the last checked event (empty before any).
    pub fn recorded_at(&self) -> &str {
        &self.recorded_at
    }

    /// The version of each stream seen so far.
    pub fn stream_versions(&self) -> &HashMap<String, u64> {
        &self.stream_versions
    }
}

/// Appends the lowercase hex of `hash` (what `hex::encode` gives, without its `String`).
fn push_hex(out: &mut Vec<u8>, hash: &Hash) {
    let mut text = [0u8; 64];
    // 64 bytes is exactly twice 32: the encoding cannot fail.
    if hex::encode_to_slice(hash, &mut text).is_ok() {
        out.extend_from_slice(&text);
    }
}

/// The pattern of a hash as an envelope writes it: 64 lowercase hex digits.
pub const HASH_PATTERN: &str = "^[0-9a-f]{64}$";

/// The pattern of `recorded_at`: `YYYY-MM-DDTHH:MM:SS.ffffffZ` ([`is_valid_recorded_at`]).
pub const RECORDED_AT_PATTERN: &str =
    "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\\.[0-9]{6}Z$";

/// Every stored event (the envelope), as `grantflow events`, the JSON Lines export, `GET
/// /v1/events` and the event streams write it; the payload's own schema is the catalog's for
/// the event's `type` and `schema`.
///
/// A mirror of what [`Envelope::to_line`] and [`Envelope::to_json_value`] write, field for
/// field and in their order, for its JSON Schema ([`envelope_schema`]).
#[derive(schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "grantflow event envelope")]
#[allow(dead_code)]
struct EnvelopeShape {
    /// Global position in the log, gapless from 1.
    #[schemars(range(min = 1))]
    position: u64,
    /// The stream: `fund-<id>` or `grant-<id>`.
    #[schemars(length(min = 1, max = crate::checks::KEY_TEXT_BYTES_MAX))]
    stream: String,
    /// Version within the stream, gapless from 1.
    #[schemars(range(min = 1))]
    version: u64,
    /// The event type, dotted and past tense, e.g. `grant.approved`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1))]
    event_type: String,
    /// The payload's schema version: 1 for a type's first shape, 2 when it carries a field
    /// the type gained.
    #[schemars(range(min = 1))]
    schema: u32,
    /// When the event was appended: RFC 3339 UTC with microseconds; never earlier than the
    /// previous event's.
    #[schemars(pattern(RECORDED_AT_PATTERN))]
    recorded_at: String,
    /// Who issued the command.
    actor: String,
    /// The command's idempotency key: the client's, or one the engine made.
    #[schemars(length(min = 1, max = crate::checks::KEY_TEXT_BYTES_MAX))]
    command_id: String,
    /// Groups the events of one command.
    correlation_id: String,
    /// The event's own fields: the catalog's schema of its `type` at its `schema`.
    payload: serde_json::Map<String, serde_json::Value>,
    /// The previous event's hash (64 zeros for position 1).
    #[schemars(pattern(HASH_PATTERN))]
    prev_hash: String,
    /// SHA-256 of `prev_hash` (32 raw bytes) then the canonical bytes (this envelope without
    /// `hash`).
    #[schemars(pattern(HASH_PATTERN))]
    hash: String,
}

/// The JSON Schema (draft 2020-12) of an envelope as [`Envelope::to_line`] and
/// [`Envelope::to_json_value`] write it: every field required, nothing else allowed.
pub fn envelope_schema() -> serde_json::Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.contract = schemars::generate::Contract::Serialize;
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<EnvelopeShape>()
        .to_value();
    if let Some(recorded_at) = schema.pointer_mut("/properties/recorded_at") {
        if let Some(map) = recorded_at.as_object_mut() {
            map.insert("format".into(), "date-time".into());
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_at_shape() {
        assert!(is_valid_recorded_at(&now_rfc3339()));
        assert!(is_valid_recorded_at("2024-02-29T23:59:59.000001Z"));
        assert!(!is_valid_recorded_at("2023-02-29T23:59:59.000001Z"));
        assert!(!is_valid_recorded_at("2024-02-29T23:59:59.0000010Z"));
        assert!(!is_valid_recorded_at("2024-02-29T23:59:59Z"));
        assert!(!is_valid_recorded_at("2024-02-29 23:59:59.000001Z"));
    }

    #[test]
    fn compact_object() {
        assert!(is_compact_json_object(r#"{"a":"b c","d":[1,2]}"#));
        assert!(is_compact_json_object(r#"{"a":"\" x"}"#));
        assert!(!is_compact_json_object(r#"{"a": 1}"#));
        assert!(!is_compact_json_object(r#"[1]"#));
    }

    #[test]
    fn the_envelope_schema_lists_the_fields_of_to_json_value_in_order() {
        let envelope = Envelope {
            position: 1,
            stream: "fund-F".into(),
            version: 1,
            event_type: "fund.registered".into(),
            schema: 1,
            recorded_at: "2024-02-29T23:59:59.000001Z".into(),
            actor: "a".into(),
            command_id: "c".into(),
            correlation_id: "c".into(),
            payload: "{}".into(),
            prev_hash: ZERO_HASH,
            hash: ZERO_HASH,
        };
        let value = envelope.to_json_value();
        let written: Vec<&String> = value
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        let schema = envelope_schema();
        let properties: Vec<&String> = schema["properties"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(properties, written);
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(required.len(), written.len());
        assert_eq!(schema["additionalProperties"], serde_json::json!(false));
        assert_eq!(
            schema["properties"]["position"]["minimum"],
            serde_json::json!(1)
        );
        assert_eq!(
            schema["properties"]["payload"]["type"],
            serde_json::json!("object")
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod fast_decode_tests {
    use super::*;
    use proptest::prelude::*;

    fn envelope(stream: &str, actor: &str, payload: &str, position: u64) -> Envelope {
        let mut envelope = Envelope {
            position,
            stream: stream.to_string(),
            version: position / 3 + 1,
            event_type: "grant.approved".to_string(),
            schema: 1,
            recorded_at: "2026-11-29T01:25:27.123456Z".to_string(),
            actor: actor.to_string(),
            command_id: "c-1".to_string(),
            correlation_id: "c-1".to_string(),
            payload: payload.to_string(),
            prev_hash: [7; 32],
            hash: ZERO_HASH,
        };
        envelope.hash = envelope.compute_hash();
        envelope
    }

    proptest! {
        /// The fast decoder and serde agree on every canonical envelope, escapes included.
        #[test]
        fn fast_decoder_agrees_with_serde(
            stream in "\\PC{0,12}",
            actor in "[a-zA-Z\"\\\\\u{1}\u{7f}é😀 ]{0,12}",
            text in "[a-z\"\\\\\u{2}é]{0,8}",
            position in 1u64..u64::MAX / 2,
        ) {
            let payload = serde_json::json!({"grant": text, "amount": "1.00"}).to_string();
            let original = envelope(&stream, &actor, &payload, position);
            let bytes = original.canonical_bytes();
            let slow = Envelope::from_canonical_serde(&bytes, original.hash).unwrap();
            let decoded = Envelope::from_canonical(&bytes, original.hash).unwrap();
            prop_assert_eq!(&decoded, &original);
            prop_assert_eq!(&slow, &original);
            let mut page = crate::PayloadPage::default();
            let chunk: crate::SharedBytes = std::sync::Arc::new(bytes.clone());
            page.push_stored(&chunk, original.position, (0, bytes.len()));
            let mut records = Vec::new();
            page.visit(|record| {
                records.push((record.position, record.event_type.to_string(), record.schema, record.payload.to_string()));
                Ok::<(), crate::StoreError>(())
            }).unwrap();
            prop_assert_eq!(
                records,
                vec![(original.position, original.event_type.clone(), original.schema, original.payload.clone())]
            );
        }
    }

    /// Every event of a page, read through `visit_range` over `cuts`.
    fn read_in_parts(page: &crate::PayloadPage, cuts: &[usize]) -> Vec<(u64, String, u32, String)> {
        let mut bounds = vec![0];
        bounds.extend(cuts.iter().map(|cut| cut % (page.len() + 1)));
        bounds.sort_unstable();
        bounds.push(page.len());
        let mut records = Vec::new();
        for part in bounds.windows(2) {
            page.visit_range(part[0]..part[1], |record| {
                records.push((
                    record.position,
                    record.event_type.to_string(),
                    record.schema,
                    record.payload.to_string(),
                ));
                Ok::<(), crate::StoreError>(())
            })
            .unwrap();
        }
        records
    }

    proptest! {
        /// A page read in parts (as the fold's decoding threads read it) gives every event
        /// once and in order, whichever form the page is in and wherever the cuts fall
        /// (inside a chunk's run or between runs).
        #[test]
        fn a_page_read_in_parts_is_the_whole_page(
            runs in proptest::collection::vec(1usize..5, 0..6),
            cuts in proptest::collection::vec(0usize..64, 0..4),
        ) {
            let mut stored = crate::PayloadPage::default();
            let mut text = crate::PayloadPage::default();
            let mut expected = Vec::new();
            let mut position = 0;
            for run in runs {
                let mut chunk = Vec::new();
                let mut spans = Vec::new();
                for _ in 0..run {
                    position += 1;
                    let payload = format!(r#"{{"grant":"G{position}"}}"#);
                    let event = envelope("grant-G", "fin", &payload, position);
                    let bytes = event.canonical_bytes();
                    spans.push((position, chunk.len(), chunk.len() + bytes.len()));
                    chunk.extend_from_slice(&bytes);
                    text.push(position, &event.event_type, event.schema, &payload);
                    expected.push((position, event.event_type.clone(), event.schema, payload));
                }
                let chunk: crate::SharedBytes = std::sync::Arc::new(chunk);
                for (position, start, end) in spans {
                    stored.push_stored(&chunk, position, (start, end));
                }
            }
            prop_assert_eq!(&read_in_parts(&stored, &cuts), &expected);
            prop_assert_eq!(&read_in_parts(&text, &cuts), &expected);
        }
    }

    #[test]
    fn the_fast_path_takes_plain_envelopes_and_leaves_escapes_to_serde() {
        let plain = envelope("grant-G", "fin", r#"{"grant":"G"}"#, 12);
        assert_eq!(
            fast::decode(&plain.canonical_bytes(), plain.hash),
            Some(plain.clone())
        );
        let escaped = envelope("grant-G", "a \"quoted\" actor", r#"{"grant":"G"}"#, 12);
        assert_eq!(fast::decode(&escaped.canonical_bytes(), escaped.hash), None);
        assert_eq!(
            Envelope::from_canonical(&escaped.canonical_bytes(), escaped.hash).unwrap(),
            escaped
        );
        assert!(fast::decode(b"{\"position\":01,", ZERO_HASH).is_none());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod hex_tests {
    use super::*;

    #[test]
    fn hashes_parse_from_lowercase_hex_only() {
        let hash: Hash = std::array::from_fn(|i| (i * 37 + 11) as u8);
        assert_eq!(parse_hex_hash(&hex::encode(hash)), Some(hash));
        assert_eq!(parse_hex_hash(&hex::encode(hash).to_uppercase()), None);
        assert_eq!(parse_hex_hash(&"0".repeat(63)), None);
        assert_eq!(parse_hex_hash(&format!("{}g", "0".repeat(63))), None);
        assert_eq!(parse_hex_hash(&"f".repeat(64)), Some([0xff; 32]));
    }
}
