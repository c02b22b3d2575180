//! The throughput scenarios: the engine with 1, 16 and 256 concurrent submitters, the real
//! `grantflow exec`, and the baselines (SQLite peer, plain file) with one writer and with
//! the engine's concurrency shape.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use grantflow_bench::baseline::{FileSink, Sink, SqliteSink};
use grantflow_bench::probe::{Probe, ProbeStats};
use grantflow_bench::records::EventRec;
use grantflow_bench::workload::{self, Workload};
use grantflow_engine::{CommandOutcome, Engine, Submission, BATCH_COMMANDS_MAX};
use grantflow_store_sled::SledStore;
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::{round, Config, Report};

/// One throughput measurement.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub commands: u64,
    pub accepted: u64,
    pub events: u64,
    pub seconds: f64,
    pub hist: Histogram<u64>,
    pub groups: u64,
    pub store_seconds: f64,
    /// Commands whose submission failed (an engine error, not a rejection).
    pub failed: u64,
    /// The first such error.
    pub first_error: Option<String>,
}

impl Run {
    pub(crate) fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }

    pub(crate) fn fields(&self) -> Map<String, Value> {
        let mut f = Map::new();
        f.insert("commands".into(), json!(self.commands));
        f.insert("accepted".into(), json!(self.accepted));
        f.insert("events".into(), json!(self.events));
        f.insert("seconds".into(), round(self.seconds));
        f.insert(
            "commands_per_s".into(),
            round(self.accepted as f64 / self.seconds.max(1e-9)),
        );
        f.insert("events_per_s".into(), round(self.events_per_s()));
        if !self.hist.is_empty() {
            let ms = |q: f64| round(self.hist.value_at_quantile(q) as f64 / 1000.0);
            f.insert("p50_ms".into(), ms(0.5));
            f.insert("p99_ms".into(), ms(0.99));
            f.insert("max_ms".into(), round(self.hist.max() as f64 / 1000.0));
        }
        if self.groups > 0 {
            f.insert("groups".into(), json!(self.groups));
            f.insert(
                "events_per_group".into(),
                round(self.events as f64 / self.groups as f64),
            );
        }
        if self.failed > 0 {
            f.insert("failed".into(), json!(self.failed));
            if let Some(error) = &self.first_error {
                f.insert("first_error".into(), json!(error));
            }
        }
        if self.store_seconds > 0.0 {
            f.insert(
                "store_share".into(),
                round(self.store_seconds / self.seconds.max(1e-9)),
            );
        }
        f
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 min, 3 significant digits. Cannot fail with these bounds.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| unreachable!())
}

pub(crate) fn record(hist: &mut Histogram<u64>, since: Instant) {
    let micros = (since.elapsed().as_micros() as u64).max(1);
    hist.saturating_record(micros);
}

/// The median run of `repeat` (by events/s).
pub(crate) async fn median<F, Fut>(repeat: usize, mut once: F) -> anyhow::Result<Run>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Run>>,
{
    let mut runs = Vec::new();
    for i in 0..repeat.max(1) {
        runs.push(once(i).await?);
    }
    runs.sort_by(|a, b| a.events_per_s().total_cmp(&b.events_per_s()));
    let middle = runs.len() / 2;
    Ok(runs.swap_remove(middle))
}

async fn open_store(dir: &Path) -> anyhow::Result<Arc<Probe>> {
    let dir = dir.to_path_buf();
    let store = tokio::task::spawn_blocking(move || SledStore::open(&dir)).await??;
    Ok(Probe::new(Arc::new(store), false))
}

/// A fresh path for a run: what an earlier run left there is removed, and the disk settled.
pub(crate) fn fresh(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = root.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).or_else(|_| std::fs::remove_file(&dir))?;
    }
    settle_disk();
    Ok(dir)
}

/// Waits for the kernel to write back every dirty page (`sync`), so that a run does not pay
/// for the one before it (SQLite's WAL, a store just deleted): without it, whichever store
/// runs after SQLite's runs pays for their writeback and is measured slower than it is.
pub(crate) fn settle_disk() {
    if let Err(error) = std::process::Command::new("sync").status() {
        eprintln!("grantflow-bench: cannot run sync ({error}); runs may pay for earlier writeback");
    }
}

fn events_of(outcome: &CommandOutcome) -> Option<Vec<u64>> {
    match outcome {
        CommandOutcome::Accepted { events, .. } => {
            Some(events.iter().map(|e| e.position).collect())
        }
        CommandOutcome::Rejected { .. } => None,
    }
}

fn settle(
    workload: &Workload,
    index: usize,
    outcome: CommandOutcome,
    positions: &mut [Option<Vec<u64>>],
    rejections: &mut Vec<String>,
) {
    positions[index] = events_of(&outcome);
    if let CommandOutcome::Rejected { rejection, .. } = &outcome {
        if rejections.len() < 5 {
            rejections.push(format!(
                "{}: {} ({})",
                rejection.code, rejection.message, workload.commands[index].body
            ));
        }
    }
}

/// The reference run: the workload piped through the engine in order (as `exec` does), in
/// process. Returns the run, the probe's groups, and each command's stored events.
async fn reference(
    dir: &Path,
    workload: &Workload,
) -> anyhow::Result<(Run, ProbeStats, Vec<Vec<EventRec>>, Vec<String>)> {
    let probe = open_store(dir).await?;
    let engine = Engine::open(probe.clone()).await?;
    let mut hist = histogram();
    let mut in_flight = VecDeque::new();
    let mut positions: Vec<Option<Vec<u64>>> = vec![None; workload.commands.len()];
    let mut rejections = Vec::new();
    let started = Instant::now();
    for (index, command) in workload.commands.iter().enumerate() {
        let sent = Instant::now();
        let pending = engine
            .enqueue(Submission::cli(command.body.clone(), None))
            .await?;
        in_flight.push_back((index, pending, sent));
        if in_flight.len() >= 8_192 {
            if let Some((index, pending, sent)) = in_flight.pop_front() {
                let outcome = pending.wait().await;
                record(&mut hist, sent);
                settle(workload, index, outcome?, &mut positions, &mut rejections);
            }
        }
    }
    while let Some((index, pending, sent)) = in_flight.pop_front() {
        let outcome = pending.wait().await;
        record(&mut hist, sent);
        settle(workload, index, outcome?, &mut positions, &mut rejections);
    }
    let seconds = started.elapsed().as_secs_f64();
    // Read back the stored envelopes: the baselines append exactly these bytes.
    let head = engine.store().head().await?.position;
    let mut by_position: Vec<Option<EventRec>> = Vec::with_capacity(head as usize + 1);
    by_position.push(None);
    let mut next = 1;
    while next <= head {
        let page = engine.store().read(next, 4_096).await?;
        anyhow::ensure!(!page.is_empty(), "the log ends before its head");
        for envelope in &page {
            by_position.push(Some(EventRec::of(envelope)));
        }
        next += page.len() as u64;
    }
    engine.close().await?;
    let stats = probe.stats();
    let mut per_command = Vec::with_capacity(positions.len());
    for p in &positions {
        let mut events = Vec::new();
        for position in p.iter().flatten() {
            if let Some(Some(rec)) = by_position.get(*position as usize) {
                events.push(rec.clone());
            }
        }
        per_command.push(events);
    }
    let accepted = positions.iter().filter(|p| p.is_some()).count() as u64;
    let run = Run {
        commands: workload.commands.len() as u64,
        accepted,
        events: head,
        seconds,
        hist,
        groups: stats.appends,
        store_seconds: stats.append_seconds,
        failed: 0,
        first_error: None,
    };
    Ok((run, stats, per_command, rejections))
}

/// The command bodies of each of `submitters` submitters: submitter `i` sends the commands
/// of lanes `l % submitters == i`, in order.
pub(crate) fn lanes_of(workload: &Workload, submitters: usize) -> Vec<Vec<Value>> {
    let mut lanes: Vec<Vec<Value>> = vec![Vec::new(); submitters.max(1)];
    for command in &workload.commands {
        lanes[command.lane as usize % submitters.max(1)].push(command.body.clone());
    }
    lanes
}

/// What one submitter task did.
pub(crate) struct Tally {
    hist: Histogram<u64>,
    sent: u64,
    accepted: u64,
    events: u64,
    failed: u64,
    first_error: Option<String>,
}

/// One task per entry of `lanes`, each submitting its bodies one at a time and awaiting each
/// durable result, until `stop_at`.
pub(crate) fn spawn_submitters(
    engine: &Arc<Engine>,
    lanes: Vec<Vec<Value>>,
    stop_at: Instant,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<Tally>>> {
    let mut tasks = Vec::new();
    for bodies in lanes {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally {
                hist: histogram(),
                sent: 0,
                accepted: 0,
                events: 0,
                failed: 0,
                first_error: None,
            };
            for body in bodies {
                if Instant::now() >= stop_at {
                    break;
                }
                let t = Instant::now();
                let outcome = match engine.submit(Submission::cli(body, None)).await {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        // Counted, not fatal here: the caller decides (see `engine_run_on`).
                        tally.sent += 1;
                        tally.failed += 1;
                        tally
                            .first_error
                            .get_or_insert_with(|| format!("{error:#}"));
                        continue;
                    }
                };
                record(&mut tally.hist, t);
                tally.sent += 1;
                if let Some(p) = events_of(&outcome) {
                    tally.accepted += 1;
                    tally.events += p.len() as u64;
                }
            }
            anyhow::Ok(tally)
        }));
    }
    tasks
}

/// Adds up the submitter tasks into a run (seconds, groups and store time left at zero).
pub(crate) async fn collect(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Tally>>>,
) -> anyhow::Result<Run> {
    let mut run = Run {
        commands: 0,
        accepted: 0,
        events: 0,
        seconds: 0.0,
        hist: histogram(),
        groups: 0,
        store_seconds: 0.0,
        failed: 0,
        first_error: None,
    };
    for task in tasks {
        let tally = task.await??;
        run.hist
            .add(&tally.hist)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        run.commands += tally.sent;
        run.accepted += tally.accepted;
        run.events += tally.events;
        run.failed += tally.failed;
        if run.first_error.is_none() {
            run.first_error = tally.first_error;
        }
    }
    Ok(run)
}

/// The engine with `submitters` concurrent tasks, each submitting its lanes' commands in
/// order and awaiting each one's durable result.
async fn engine_run(
    dir: &Path,
    workload: &Workload,
    submitters: usize,
    deadline: Duration,
) -> anyhow::Result<Run> {
    let probe = open_store(dir).await?;
    let (run, _) = engine_run_on(probe, lanes_of(workload, submitters), deadline).await?;
    Ok(run)
}

/// [`engine_run`] on any store (wrapped in a probe); also returns the engine's conflicts.
pub(crate) async fn engine_run_on(
    probe: Arc<Probe>,
    lanes: Vec<Vec<Value>>,
    deadline: Duration,
) -> anyhow::Result<(Run, u64)> {
    let engine = Arc::new(Engine::open(probe.clone()).await?);
    let started = Instant::now();
    let tasks = spawn_submitters(&engine, lanes, started + deadline);
    let mut run = collect(tasks).await?;
    run.seconds = started.elapsed().as_secs_f64();
    let stats = probe.stats();
    let conflicts = engine.stats().conflicts;
    engine.close().await?;
    if let Some(error) = &run.first_error {
        anyhow::bail!("{} submissions failed; the first: {error}", run.failed);
    }
    run.groups = stats.appends;
    run.store_seconds = stats.append_seconds;
    Ok((run, conflicts))
}

type Job = (usize, oneshot::Sender<()>);

/// A baseline with the engine's concurrency shape: submitter tasks → bounded channel → one
/// writer thread that takes what is queued (up to the engine's batch bound) as one group.
async fn shaped_run(
    sink: Box<dyn Sink>,
    per_command: Arc<Vec<Vec<EventRec>>>,
    workload: &Workload,
    submitters: usize,
    deadline: Duration,
) -> anyhow::Result<Run> {
    let (queue, mut jobs) = mpsc::channel::<Job>(grantflow_engine::QUEUE_COMMANDS_MAX);
    let writer_events = per_command.clone();
    let writer = std::thread::spawn(move || -> anyhow::Result<(u64, f64)> {
        let mut sink = sink;
        let mut groups = 0u64;
        let mut seconds = 0.0;
        while let Some(first) = jobs.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < BATCH_COMMANDS_MAX {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let group: Vec<&EventRec> = batch
                .iter()
                .flat_map(|(index, _)| writer_events[*index].iter())
                .collect();
            let t = Instant::now();
            sink.write_group(&group)?;
            seconds += t.elapsed().as_secs_f64();
            groups += 1;
            for (_, reply) in batch {
                let _ = reply.send(());
            }
        }
        Ok((groups, seconds))
    });
    let mut lanes: Vec<Vec<usize>> = vec![Vec::new(); submitters];
    for (index, command) in workload.commands.iter().enumerate() {
        if !per_command[index].is_empty() {
            lanes[command.lane as usize % submitters].push(index);
        }
    }
    let started = Instant::now();
    let stop_at = started + deadline;
    let mut tasks = Vec::new();
    for indices in lanes {
        let queue = queue.clone();
        let per_command = per_command.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let (mut sent, mut events) = (0u64, 0u64);
            for index in indices {
                if Instant::now() >= stop_at {
                    break;
                }
                let t = Instant::now();
                let (reply, done) = oneshot::channel();
                queue
                    .send((index, reply))
                    .await
                    .map_err(|_| anyhow::anyhow!("baseline writer stopped"))?;
                done.await
                    .map_err(|_| anyhow::anyhow!("baseline writer failed"))?;
                record(&mut hist, t);
                sent += 1;
                events += per_command[index].len() as u64;
            }
            anyhow::Ok((hist, sent, events))
        }));
    }
    drop(queue);
    let mut run = Run {
        commands: 0,
        accepted: 0,
        events: 0,
        seconds: 0.0,
        hist: histogram(),
        groups: 0,
        store_seconds: 0.0,
        failed: 0,
        first_error: None,
    };
    let mut failure = None;
    for task in tasks {
        match task.await? {
            Ok((hist, sent, events)) => {
                run.hist.add(&hist).map_err(|e| anyhow::anyhow!("{e:?}"))?;
                run.commands += sent;
                run.accepted += sent;
                run.events += events;
            }
            Err(error) => failure = Some(error),
        }
    }
    run.seconds = started.elapsed().as_secs_f64();
    let (groups, store_seconds) = writer
        .join()
        .map_err(|_| anyhow::anyhow!("baseline writer panicked"))??;
    if let Some(error) = failure {
        return Err(error);
    }
    run.groups = groups;
    run.store_seconds = store_seconds;
    Ok(run)
}

/// A baseline with one writer and no submitters: the events in order, in the groups the
/// engine formed in the reference run (same group sizes), one transaction/fsync per group.
fn single_writer(
    mut sink: Box<dyn Sink>,
    per_command: &[Vec<EventRec>],
    groups: &[u32],
) -> anyhow::Result<Run> {
    let all: Vec<&EventRec> = per_command.iter().flatten().collect();
    let mut hist = histogram();
    let started = Instant::now();
    let mut offset = 0usize;
    let mut count = 0u64;
    let mut sizes = groups.iter().map(|g| *g as usize);
    while offset < all.len() {
        let size = sizes.next().unwrap_or(1_000).max(1);
        let end = (offset + size).min(all.len());
        let t = Instant::now();
        sink.write_group(&all[offset..end])?;
        record(&mut hist, t);
        offset = end;
        count += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Run {
        commands: per_command.iter().filter(|c| !c.is_empty()).count() as u64,
        accepted: per_command.iter().filter(|c| !c.is_empty()).count() as u64,
        events: all.len() as u64,
        seconds,
        hist,
        groups: count,
        store_seconds: seconds,
        failed: 0,
        first_error: None,
    })
}

/// Finds the `grantflow` binary: `--grantflow`, else next to this binary, else (not in
/// smoke mode) builds it with `cargo build --release`.
pub(crate) fn grantflow_binary(config: &Config) -> Option<PathBuf> {
    if let Some(path) = &config.grantflow {
        return Some(path.clone());
    }
    let beside = std::env::current_exe()
        .ok()?
        .parent()?
        .join(format!("grantflow{}", std::env::consts::EXE_SUFFIX));
    if beside.is_file() {
        return Some(beside);
    }
    if config.smoke {
        return None;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["build", "--release", "--bin", "grantflow"])
        .current_dir(&workspace)
        .status()
        .ok()?;
    let built = workspace.join("target/release/grantflow");
    (status.success() && built.is_file()).then_some(built)
}

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
fn exec_run(binary: &Path, dir: &Path, file: &Path, commands: u64) -> anyhow::Result<Run> {
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

pub(crate) fn ratio(value: Option<f64>, base: Option<f64>) -> Value {
    match (value, base) {
        (Some(v), Some(b)) if b > 0.0 => round(v / b),
        _ => Value::Null,
    }
}

/// The `exec-stdin` and `exec-stdin-rate` lines: the workload piped into `grantflow exec -`
/// at full speed, then at a fixed rate (see [`exec_stdin_run`]).
async fn exec_stdin(
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

/// Runs the throughput scenarios.
pub(crate) async fn throughput(
    config: &Config,
    root: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let pg_wanted = config.wants("pg") && config.postgres.is_some();
    let wanted = ["engine", "exec", "sqlite", "file"]
        .iter()
        .any(|s| config.wants(s))
        || pg_wanted;
    if !wanted {
        return Ok(());
    }
    let workload = workload::generate(config.seed, config.lanes, config.commands, 0);
    let body_bytes: usize = workload
        .commands
        .iter()
        .map(|c| c.body.to_string().len())
        .sum();
    let mut f = Map::new();
    f.insert("seed".into(), json!(config.seed));
    f.insert("lanes".into(), json!(workload.lanes));
    f.insert("commands".into(), json!(workload.commands.len()));
    f.insert("events_expected".into(), json!(workload.events));
    f.insert(
        "command_bytes_mean".into(),
        round(body_bytes as f64 / workload.commands.len().max(1) as f64),
    );
    let mix: Vec<String> = workload::mix(&workload)
        .into_iter()
        .map(|(name, n)| format!("{name}:{n}"))
        .collect();
    f.insert("mix".into(), json!(mix.join(",")));
    report.line("workload", f);

    // Reference run: in order, pipelined; gives the envelope bytes and group sizes.
    let (reference, ref_stats, per_command, rejections) =
        reference(&fresh(root, "reference")?, &workload).await?;
    let envelope_bytes: usize = per_command.iter().flatten().map(|e| e.body.len()).sum();
    let mut f = reference.fields();
    let acceptance = reference.accepted as f64 / reference.commands.max(1) as f64;
    f.insert("acceptance".into(), round(acceptance));
    f.insert(
        "envelope_bytes_mean".into(),
        round(envelope_bytes as f64 / reference.events.max(1) as f64),
    );
    report.line("engine-pipelined", f);
    anyhow::ensure!(
        acceptance >= 0.99,
        "only {:.2}% of the workload was accepted; first rejections: {rejections:#?}",
        acceptance * 100.0
    );
    let per_command = Arc::new(per_command);
    let deadline = config.deadline();

    for (kind, wanted) in [
        ("sqlite", config.wants("sqlite")),
        ("file", config.wants("file")),
    ] {
        if !wanted {
            continue;
        }
        let make = |root: &Path, name: &str| -> anyhow::Result<Box<dyn Sink>> {
            let path = fresh(root, name)?;
            Ok(if kind == "sqlite" {
                Box::new(SqliteSink::open(&path)?)
            } else {
                Box::new(FileSink::create(&path)?)
            })
        };
        let run = median(config.repeat, |i| {
            let sink = make(root, &format!("{kind}-1writer-{i}"));
            let per_command = per_command.clone();
            let groups = ref_stats.group_events.clone();
            async move { single_writer(sink?, &per_command, &groups) }
        })
        .await?;
        report.line(&format!("{kind}-1writer"), run.fields());
        for &s in &config.submitters {
            let run = median(config.repeat, |i| {
                let sink = make(root, &format!("{kind}-s{s}-{i}"));
                let per_command = per_command.clone();
                let workload = &workload;
                async move { shaped_run(sink?, per_command, workload, s, deadline).await }
            })
            .await?;
            report.line(&format!("{kind}-s{s}"), run.fields());
        }
    }

    if config.wants("engine") {
        for &s in &config.submitters {
            let run = median(config.repeat, |i| {
                let workload = &workload;
                let dir = fresh(root, &format!("engine-s{s}-{i}"));
                async move { engine_run(&dir?, workload, s, deadline).await }
            })
            .await?;
            let mut f = run.fields();
            let eps = Some(run.events_per_s());
            f.insert(
                "x_sqlite_same_shape".into(),
                ratio(eps, report.get(&format!("sqlite-s{s}"), "events_per_s")),
            );
            f.insert(
                "x_sqlite_1writer".into(),
                ratio(eps, report.get("sqlite-1writer", "events_per_s")),
            );
            f.insert(
                "x_file_same_shape".into(),
                ratio(eps, report.get(&format!("file-s{s}"), "events_per_s")),
            );
            f.insert(
                "x_file_1writer".into(),
                ratio(eps, report.get("file-1writer", "events_per_s")),
            );
            report.line(&format!("engine-s{s}"), f);
        }
    }

    if config.wants("exec") {
        let file = root.join("commands.jsonl");
        let mut text = String::with_capacity(workload.commands.len() * 256);
        for command in &workload.commands {
            text.push_str(&command.body.to_string());
            text.push('\n');
        }
        std::fs::write(&file, text)?;
        match grantflow_binary(config) {
            Some(binary) => {
                let run = median(config.repeat, |i| {
                    let dir = fresh(root, &format!("exec-{i}"));
                    let (binary, file) = (binary.clone(), file.clone());
                    let n = workload.commands.len() as u64;
                    async move {
                        let dir = dir?;
                        tokio::task::spawn_blocking(move || exec_run(&binary, &dir, &file, n))
                            .await?
                    }
                })
                .await?;
                let mut f = run.fields();
                f.insert("binary".into(), json!(binary.display().to_string()));
                let eps = Some(run.events_per_s());
                f.insert(
                    "x_sqlite_1writer".into(),
                    ratio(eps, report.get("sqlite-1writer", "events_per_s")),
                );
                f.insert(
                    "x_file_1writer".into(),
                    ratio(eps, report.get("file-1writer", "events_per_s")),
                );
                f.insert(
                    "x_engine_pipelined".into(),
                    ratio(eps, report.get("engine-pipelined", "events_per_s")),
                );
                report.line("exec", f);
                exec_stdin(config, root, &workload, &binary, report).await?;
            }
            None => {
                let mut f = Map::new();
                f.insert(
                    "skipped".into(),
                    json!("no grantflow binary beside this one; pass --grantflow PATH"),
                );
                for name in ["exec", "exec-stdin", "exec-stdin-rate"] {
                    report.line(name, f.clone());
                }
            }
        }
    }
    if let (true, Some(url)) = (pg_wanted, &config.postgres) {
        crate::pg::throughput(config, &crate::pg::Pg::new(url), &workload, report).await?;
    }
    Ok(())
}
