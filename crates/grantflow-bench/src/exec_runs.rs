//! The `exec` scenarios: the real `grantflow exec` on a file of the workload (`exec`), and
//! the workload piped into `grantflow exec -` at full speed (`exec-stdin`) and at a fixed
//! offered rate (`exec-stdin-rate`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use grantflow_bench::workload::Workload;
use serde_json::Value;

use crate::config::Config;
use crate::env::fresh;
use crate::measure::median;
use crate::measure::{histogram, Run};
use crate::report::{round, Report};

/// Of exec's result lines: how many say `"ok": true`, and how many events those appended.
fn tally<'a>(answers: impl Iterator<Item = &'a str>) -> (u64, u64) {
    let (mut accepted, mut events) = (0, 0);
    for answer in answers {
        if let Ok(value) = serde_json::from_str::<Value>(answer) {
            if value["ok"] == Value::Bool(true) {
                accepted += 1;
                events += value["events"].as_array().map_or(0, Vec::len) as u64;
            }
        }
    }
    (accepted, events)
}

/// The real binary: `grantflow --data DIR exec FILE`, wall time from spawn to exit.
pub(crate) fn exec_run(
    binary: &Path,
    dir: &Path,
    file: &Path,
    commands: u64,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let output = std::process::Command::new(binary)
        .arg("--data")
        .arg(dir)
        .arg("exec")
        .arg(file)
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        matches!(output.status.code(), Some(0) | Some(1)),
        "grantflow exec failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (accepted, events) = tally(stdout.lines());
    Ok(Run {
        commands,
        accepted,
        events,
        seconds,
        hist: histogram(),
        groups: 0,
        store_seconds: 0.0,
        failed: 0,
        first_error: None,
    })
}

/// `grantflow --data DIR exec -`, fed through its standard input. The first line goes alone
/// and the clock starts at its answer (the store is open and exec is reading); then the
/// others go as fast as the pipe takes them (`rate` `None`, in writes of 64 lines), or at
/// `rate` lines/s, each due at start + i / rate. A command's latency runs from the write of
/// its line (at a rate: from when it was due, so that a late answer also counts against the
/// lines queued behind it) to the read of its result line: exec answers in input order, once
/// the command's batch is durable. Throughput: the lines after the first, over the time from
/// the start to the last answer.
fn exec_stdin_run(
    binary: &Path,
    dir: &Path,
    lines: Arc<Vec<String>>,
    rate: Option<f64>,
) -> anyhow::Result<Run> {
    use std::io::{BufRead, Read, Write};
    use std::process::Stdio;

    anyhow::ensure!(lines.len() >= 2, "exec-stdin needs at least two commands");
    let mut child = std::process::Command::new(binary)
        .arg("--data")
        .arg(dir)
        .args(["exec", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", binary.display()))?;
    let mut stdin = child.stdin.take().context("exec's standard input")?;
    let stdout = child.stdout.take().context("exec's standard output")?;
    let mut stderr = child.stderr.take().context("exec's standard error")?;
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (first_tx, first_rx) = std::sync::mpsc::channel::<Instant>();
    let reader = std::thread::spawn(move || -> std::io::Result<(Vec<Instant>, Vec<String>)> {
        let mut received = Vec::new();
        let mut answers = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line?;
            let at = Instant::now();
            if received.is_empty() {
                let _ = first_tx.send(at);
            }
            received.push(at);
            answers.push(line);
        }
        Ok((received, answers))
    });
    let writer_lines = lines.clone();
    let writer = std::thread::spawn(move || -> anyhow::Result<(Instant, Vec<Instant>)> {
        let mut chunk = Vec::new();
        chunk.extend_from_slice(writer_lines[0].as_bytes());
        chunk.push(b'\n');
        stdin.write_all(&chunk)?;
        stdin.flush()?;
        let start = first_rx
            .recv_timeout(EXEC_FIRST_ANSWER_WAIT)
            .map_err(|error| match error {
                std::sync::mpsc::RecvTimeoutError::Timeout => anyhow::anyhow!(
                    "grantflow exec - did not answer its first command within {:?} while its \
                     input stayed open (a grantflow that holds its answers until its input \
                     ends cannot be measured this way)",
                    EXEC_FIRST_ANSWER_WAIT
                ),
                std::sync::mpsc::RecvTimeoutError::Disconnected => {
                    anyhow::anyhow!("exec ended before answering its first command")
                }
            })?;
        // When line i is due (at a rate; the clock starts with line 1).
        let due =
            rate.map(|rate| move |i: usize| start + Duration::from_secs_f64((i - 1) as f64 / rate));
        let mut sent = Vec::with_capacity(writer_lines.len());
        let mut next = 1;
        while next < writer_lines.len() {
            let end = match &due {
                Some(due) => {
                    let now = Instant::now();
                    if due(next) > now {
                        std::thread::sleep(due(next) - now);
                    }
                    let now = Instant::now();
                    let mut end = next + 1;
                    while end < writer_lines.len() && due(end) <= now {
                        end += 1;
                    }
                    end
                }
                None => (next + 64).min(writer_lines.len()),
            };
            chunk.clear();
            for line in &writer_lines[next..end] {
                chunk.extend_from_slice(line.as_bytes());
                chunk.push(b'\n');
            }
            stdin.write_all(&chunk)?;
            let at = Instant::now();
            sent.extend((next..end).map(|i| due.as_ref().map_or(at, |due| due(i))));
            next = end;
        }
        // Dropping the pipe ends exec's input: it answers what is left and exits.
        Ok((start, sent))
    });
    let written = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    let read = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader thread panicked"))?;
    let status = child.wait()?;
    let errors = errors.join().unwrap_or_default();
    anyhow::ensure!(
        matches!(status.code(), Some(0) | Some(1)),
        "grantflow exec - failed ({status}): {errors}"
    );
    let (start, sent) = written?;
    let (received, answers) = read?;
    anyhow::ensure!(
        received.len() == lines.len(),
        "grantflow exec - printed {} result lines for {} commands: {errors}",
        received.len(),
        lines.len()
    );
    let mut hist = histogram();
    for (sent, received) in sent.iter().zip(&received[1..]) {
        let micros = received.saturating_duration_since(*sent).as_micros() as u64;
        hist.saturating_record(micros.max(1));
    }
    let (accepted, events) = tally(answers[1..].iter().map(String::as_str));
    let last = received.last().copied().unwrap_or(start);
    Ok(Run {
        commands: lines.len() as u64 - 1,
        accepted,
        events,
        seconds: last.saturating_duration_since(start).as_secs_f64(),
        hist,
        groups: 0,
        store_seconds: 0.0,
        failed: 0,
        first_error: None,
    })
}

/// How long `exec-stdin` waits for the answer to its first command (the store's open).
const EXEC_FIRST_ANSWER_WAIT: Duration = Duration::from_secs(60);

/// The offered rate of the `exec-stdin-rate` run, as a share of what `exec-stdin` reached
/// (unless `--exec-rate` says).
const EXEC_RATE_SHARE: f64 = 0.5;

/// The `exec-stdin` and `exec-stdin-rate` lines: the workload piped into `grantflow exec -`
/// at full speed, then at a fixed rate (see [`exec_stdin_run`]).
pub(crate) async fn exec_stdin(
    config: &Config,
    root: &Path,
    workload: &Workload,
    binary: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let lines: Arc<Vec<String>> = Arc::new(
        workload
            .commands
            .iter()
            .map(|command| command.body.to_string())
            .collect(),
    );
    let mut rate = config.exec_rate;
    for (name, paced) in [("exec-stdin", false), ("exec-stdin-rate", true)] {
        let offered = if paced {
            match rate.filter(|rate| *rate >= 1.0) {
                Some(rate) => Some(rate),
                None => continue,
            }
        } else {
            None
        };
        let run = median(config.repeat, |i| {
            let dir = fresh(root, &format!("{name}-{i}"));
            let (binary, lines) = (binary.to_path_buf(), lines.clone());
            async move {
                let dir = dir?;
                tokio::task::spawn_blocking(move || exec_stdin_run(&binary, &dir, lines, offered))
                    .await?
            }
        })
        .await?;
        let mut f = run.fields();
        if let Some(offered) = offered {
            f.insert("offered_per_s".into(), round(offered));
        } else if rate.is_none() {
            rate = Some(run.accepted as f64 / run.seconds.max(1e-9) * EXEC_RATE_SHARE);
        }
        report.line(name, f);
    }
    Ok(())
}
