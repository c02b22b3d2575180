//! The events as the baselines store them: the engine's own stored envelope bytes (canonical
//! bytes and hash), with the stream, version and type the SQLite table indexes.

use std::io::{BufRead, Read, Write};

use grantflow_store::{Envelope, Hash};

/// One stored event, as bytes.
#[derive(Debug, Clone)]
pub struct EventRec {
    /// Stream name.
    pub stream: String,
    /// Version within the stream.
    pub version: u64,
    /// Event type.
    pub event_type: String,
    /// The envelope's canonical bytes (what the engine hashes and stores).
    pub body: Vec<u8>,
    /// Its hash.
    pub hash: Hash,
}

impl EventRec {
    /// From a stored envelope.
    pub fn of(envelope: &Envelope) -> EventRec {
        EventRec {
            stream: envelope.stream.clone(),
            version: envelope.version,
            event_type: envelope.event_type.clone(),
            body: envelope.canonical_bytes(),
            hash: envelope.hash,
        }
    }

    /// Writes the record in the harness's binary exchange format.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(&(self.stream.len() as u32).to_le_bytes())?;
        out.write_all(self.stream.as_bytes())?;
        out.write_all(&self.version.to_le_bytes())?;
        out.write_all(&(self.event_type.len() as u32).to_le_bytes())?;
        out.write_all(self.event_type.as_bytes())?;
        out.write_all(&(self.body.len() as u32).to_le_bytes())?;
        out.write_all(&self.body)?;
        out.write_all(&self.hash)
    }

    /// Reads one record; `None` at the end of the input.
    pub fn read_from(input: &mut impl BufRead) -> std::io::Result<Option<EventRec>> {
        if input.fill_buf()?.is_empty() {
            return Ok(None);
        }
        let stream = read_text(input)?;
        let mut u64_bytes = [0u8; 8];
        input.read_exact(&mut u64_bytes)?;
        let event_type = read_text(input)?;
        let body = read_bytes(input)?;
        let mut hash = [0u8; 32];
        input.read_exact(&mut hash)?;
        Ok(Some(EventRec {
            stream,
            version: u64::from_le_bytes(u64_bytes),
            event_type,
            body,
            hash,
        }))
    }
}

fn read_bytes(input: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn read_text(input: &mut impl Read) -> std::io::Result<String> {
    String::from_utf8(read_bytes(input)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Decodes canonical bytes plus a stored hash into an [`Envelope`], as the sled store's read
/// path does (the store's own decoder, no re-hash), so that the baselines' replay does the same work.
pub fn decode_canonical(bytes: &[u8], hash: Hash) -> anyhow::Result<Envelope> {
    Ok(Envelope::from_canonical(bytes, hash)?)
}
