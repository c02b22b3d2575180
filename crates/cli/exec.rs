//! `grantflow exec`: commands as JSON Lines in, one result line per command out, in order.
//!
//! A reader thread reads bounded lines; the main task queues each command with the engine
//! without waiting, so that many commands share one durable batch; a printer task prints
//! each result, in input order, as soon as its batch is durable.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use futures::FutureExt;
use grantflow_engine::transfer::{read_line_bounded, Line, LINE_BYTES_MAX};
use grantflow_engine::{CommandOutcome, Pending, Rejection, Submission};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::open::{open_engine, Access};
use crate::outcome::Outcome;

/// Commands queued but not yet printed, at the most.
pub const EXEC_IN_FLIGHT_MAX: usize = 8_192;
/// Lines read ahead of the engine, at the most.
const READ_AHEAD_LINES: usize = 1_024;

/// A line as the reader hands it over.
enum Input {
    Command(Value),
    Bad(Rejection),
}

/// Runs `exec` over a file or standard input.
pub async fn run(
    data: &Path,
    actor: Option<String>,
    file: Option<PathBuf>,
) -> anyhow::Result<Outcome> {
    let reader: Box<dyn BufRead + Send> = match file.as_deref() {
        Some(path) if path != Path::new("-") => {
            let file = std::fs::File::open(path)
                .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
            Box::new(std::io::BufReader::new(file))
        }
        _ => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let engine = open_engine(data, Access::Create).await?;
    let (lines_tx, mut lines) = mpsc::channel(READ_AHEAD_LINES);
    let reader_thread = std::thread::spawn(move || read_lines(reader, lines_tx));
    let (pending_tx, pending) = mpsc::channel(EXEC_IN_FLIGHT_MAX);
    let printer = tokio::spawn(print_results(pending));
    let mut failure = None;
    while let Some(input) = lines.recv().await {
        let pending = match input {
            Ok(Input::Command(body)) => {
                match engine.enqueue(Submission::cli(body, actor.clone())).await {
                    Ok(pending) => pending,
                    Err(error) => {
                        failure = Some(anyhow::Error::from(error));
                        break;
                    }
                }
            }
            Ok(Input::Bad(rejection)) => Pending::ready(CommandOutcome::Rejected {
                command_id: Some(grantflow_engine::new_command_id()),
                rejection,
            }),
            Err(error) => {
                failure = Some(anyhow::anyhow!("cannot read the commands: {error}"));
                break;
            }
        };
        if pending_tx.send(pending).await.is_err() {
            break;
        }
    }
    drop(pending_tx);
    drop(lines);
    let printed = printer.await?;
    let _ = reader_thread.join();
    engine.close().await?;
    if let Some(error) = failure {
        return Err(error);
    }
    match printed? {
        true => Ok(Outcome::Success),
        false => Ok(Outcome::Failed),
    }
}

/// Reads lines (blank ones skipped) and parses them as JSON.
fn read_lines(mut reader: Box<dyn BufRead + Send>, lines: mpsc::Sender<std::io::Result<Input>>) {
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        number += 1;
        let input = match read_line_bounded(&mut reader, &mut buf, LINE_BYTES_MAX) {
            Err(error) => Err(error),
            Ok(Line::End) => return,
            Ok(Line::TooLong(length)) => Ok(Input::Bad(malformed(format!(
                "line {number} is {length} bytes, over the limit of {LINE_BYTES_MAX} bytes; \
                 it was not read"
            )))),
            Ok(Line::Text) if buf.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Line::Text) => Ok(parse_line(&buf, number)),
        };
        let stop = input.is_err();
        if lines.blocking_send(input).is_err() || stop {
            return;
        }
    }
}

fn parse_line(bytes: &[u8], number: u64) -> Input {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) if value.is_object() => Input::Command(value),
        Ok(_) => Input::Bad(malformed(format!(
            "line {number} is not a JSON object; each line must be one command object"
        ))),
        Err(error) => Input::Bad(malformed(format!(
            "line {number} is not valid JSON: {error}"
        ))),
    }
}

fn malformed(message: String) -> Rejection {
    Rejection {
        code: "malformed_command".into(),
        message,
    }
}

/// Prints each result in order as it becomes durable; returns whether all were accepted.
async fn print_results(mut pending: mpsc::Receiver<Pending>) -> anyhow::Result<bool> {
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut all_ok = true;
    loop {
        let next = match pending.try_recv() {
            Ok(next) => next,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                // No command waits for its answer: let the reader see every answer now (a
                // client that writes one command and waits for its result gets it).
                out.flush()?;
                match pending.recv().await {
                    Some(next) => next,
                    None => break,
                }
            }
        };
        let mut waiting = Box::pin(next.wait());
        let outcome = match (&mut waiting).now_or_never() {
            Some(outcome) => outcome?,
            None => {
                // Everything printed so far is durable: let the reader see it now.
                out.flush()?;
                waiting.await?
            }
        };
        all_ok &= outcome.is_ok();
        serde_json::to_writer(&mut out, &outcome)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(all_ok)
}
