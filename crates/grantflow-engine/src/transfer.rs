//! Moving the log in and out: JSON Lines export (the exact hashed bytes) and import into an
//! empty store, which verifies the whole file (chain and rules) before writing anything.

use std::io::{BufRead, Write};
use std::path::Path;

use grantflow_store::{Envelope, EventStore};

use crate::audit::{Checkpoint, Failure, LogChecker};
use crate::{save_snapshot, EngineError, Progress, FOLD_PAGE_EVENTS};

/// The longest line `exec` and `import` accept; a longer one is refused without reading it
/// all into memory.
pub const LINE_BYTES_MAX: usize = 1024 * 1024;
/// Events handed to the store per import call.
pub const IMPORT_BATCH_EVENTS: usize = 4_096;

/// One line read with [`read_line_bounded`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line (without its `\n` or `\r\n`) is in the buffer.
    Text,
    /// The line was longer than the bound; it was skipped up to its end. Holds its length.
    TooLong(usize),
    /// End of input.
    End,
}

/// Reads one line into `buf` (cleared first), never holding more than `max` bytes of it.
pub fn read_line_bounded(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let mut length = 0usize;
    let mut seen_any = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        seen_any = true;
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..end], Some(end + 1)),
            None => (available, None),
        };
        length += chunk.len();
        if length <= max {
            buf.extend_from_slice(chunk);
        }
        let consumed = done.unwrap_or(chunk.len());
        reader.consume(consumed);
        if done.is_some() {
            break;
        }
    }
    if !seen_any {
        return Ok(Line::End);
    }
    if length > max {
        buf.clear();
        return Ok(Line::TooLong(length));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Line::Text)
}

/// Writes the whole log as JSON Lines: each envelope's hashed bytes with its hash.
pub async fn export_jsonl(
    store: &dyn EventStore,
    out: &mut impl Write,
    progress: Progress<'_>,
) -> Result<u64, EngineError> {
    let head = store.head().await?.position;
    let mut next = 1;
    while next <= head {
        let want = (head + 1 - next).min(FOLD_PAGE_EVENTS as u64) as usize;
        let page = store.read(next, want).await?;
        if page.is_empty() {
            return Err(EngineError::Corrupt {
                position: next,
                detail: format!("the head is {head} but the log ends before {next}"),
            });
        }
        for envelope in &page {
            writeln!(out, "{}", envelope.to_line()).map_err(io_error)?;
            next = envelope.position + 1;
        }
        progress(next - 1, head);
    }
    out.flush().map_err(io_error)?;
    Ok(head)
}

/// Verifies an exported file line by line, as `verify` does a store.
pub fn verify_file(
    path: &Path,
    checkpoint: Option<Checkpoint>,
) -> Result<(LogChecker, Option<Failure>), EngineError> {
    let mut checker = LogChecker::new(checkpoint);
    let mut reader = ExportReader::open(path)?;
    loop {
        match reader.next_envelope() {
            Ok(Some(envelope)) => {
                if let Err(failure) = checker.check(&envelope) {
                    return Ok((checker, Some(failure)));
                }
            }
            Ok(None) => {
                let failure = checker.settle().err();
                return Ok((checker, failure));
            }
            Err(failure) => return Ok((checker, Some(failure))),
        }
    }
}

/// Imports an exported file into an empty store: the whole file is verified first (hash
/// chain, positions, versions, payloads, every command's events by the rules, and, given a
/// `checkpoint`, that the file extends it), and nothing is written if anything is wrong.
pub async fn import_file(
    store: &dyn EventStore,
    path: &Path,
    checkpoint: Option<Checkpoint>,
    progress: Progress<'_>,
) -> Result<u64, EngineError> {
    let head = store.head().await?;
    if head.position != 0 {
        return Err(EngineError::BadQuery(format!(
            "import needs an empty store; this one holds {} events",
            head.position
        )));
    }
    let (checker, failure) = verify_file(path, checkpoint)?;
    if let Some(failure) = failure {
        return Err(refused(failure));
    }
    let (model, _, last) = checker.finish().map_err(refused)?;
    let total = last.position;
    let mut reader = ExportReader::open(path)?;
    let mut written = 0u64;
    loop {
        let mut batch = Vec::with_capacity(IMPORT_BATCH_EVENTS);
        while batch.len() < IMPORT_BATCH_EVENTS {
            match reader.next_envelope().map_err(refused)? {
                Some(envelope) => batch.push(envelope),
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        written += batch.len() as u64;
        store.import(batch).await?;
        progress(written, total);
    }
    save_snapshot(store, &model).await?;
    Ok(written)
}

fn refused(failure: Failure) -> EngineError {
    EngineError::Store(grantflow_store::StoreError::ImportRefused {
        position: failure.position,
        detail: failure.detail,
    })
}

/// Reads an export file's envelopes one line at a time (bounded).
pub struct ExportReader {
    reader: std::io::BufReader<std::fs::File>,
    buf: Vec<u8>,
    line_number: u64,
    expected: u64,
}

impl ExportReader {
    /// Opens an export file.
    pub fn open(path: &Path) -> Result<ExportReader, EngineError> {
        let file = std::fs::File::open(path).map_err(|error| {
            EngineError::BadQuery(format!("cannot open {}: {error}", path.display()))
        })?;
        Ok(ExportReader {
            reader: std::io::BufReader::new(file),
            buf: Vec::new(),
            line_number: 0,
            expected: 1,
        })
    }

    /// The next envelope (blank lines skipped), or the failure of the first bad line.
    pub fn next_envelope(&mut self) -> Result<Option<Envelope>, Failure> {
        loop {
            self.line_number += 1;
            let line = read_line_bounded(&mut self.reader, &mut self.buf, LINE_BYTES_MAX)
                .map_err(|error| self.failure(format!("cannot read: {error}")))?;
            match line {
                Line::End => return Ok(None),
                Line::TooLong(length) => {
                    return Err(self.failure(format!(
                        "the line is {length} bytes, over the {LINE_BYTES_MAX}-byte limit"
                    )))
                }
                Line::Text if self.buf.iter().all(u8::is_ascii_whitespace) => continue,
                Line::Text => break,
            }
        }
        let parsed = std::str::from_utf8(&self.buf)
            .map_err(|_| "the line is not UTF-8".to_string())
            .and_then(|text| Envelope::from_line(text).map_err(|error| error.to_string()));
        match parsed {
            Ok(envelope) => {
                self.expected = envelope.position + 1;
                Ok(Some(envelope))
            }
            Err(detail) => Err(self.failure(detail)),
        }
    }

    fn failure(&self, detail: String) -> Failure {
        Failure::at(
            self.expected,
            format!("line {}: {detail}", self.line_number),
        )
    }
}

fn io_error(error: std::io::Error) -> EngineError {
    EngineError::Store(grantflow_store::StoreError::io("writing the export", error))
}
