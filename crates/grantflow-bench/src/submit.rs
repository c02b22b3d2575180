//! Driving an engine in process: the workload split into lanes, one submitter task per lane
//! (each awaiting every durable result), and their tallies added up into a [`Run`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use grantflow_bench::probe::Probe;
use grantflow_bench::workload::Workload;
use grantflow_engine::{CommandOutcome, Engine, Submission};
use hdrhistogram::Histogram;
use serde_json::Value;

use crate::measure::{histogram, record, Run};

pub(crate) fn events_of(outcome: &CommandOutcome) -> Option<Vec<u64>> {
    match outcome {
        CommandOutcome::Accepted { events, .. } => {
            Some(events.iter().map(|e| e.position).collect())
        }
        CommandOutcome::Rejected { .. } => None,
    }
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
    /// When asked for: every accepted command's id and the positions of its events.
    acks: Option<Vec<Ack>>,
}

/// An accepted command as its submitter was answered: its id and its events' positions.
pub(crate) type Ack = (String, Vec<u64>);

/// One task per entry of `lanes`, each submitting its bodies one at a time and awaiting each
/// durable result, until `stop_at`.
pub(crate) fn spawn_submitters(
    engine: &Arc<Engine>,
    lanes: Vec<Vec<Value>>,
    stop_at: Instant,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<Tally>>> {
    spawn_submitters_with(engine, lanes, stop_at, false)
}

/// [`spawn_submitters`]; `keep_acks`: each tally keeps every accepted command's answer (see
/// [`collect_acks`]).
pub(crate) fn spawn_submitters_with(
    engine: &Arc<Engine>,
    lanes: Vec<Vec<Value>>,
    stop_at: Instant,
    keep_acks: bool,
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
                acks: keep_acks.then(Vec::new),
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
                    if let (Some(acks), CommandOutcome::Accepted { command_id, .. }) =
                        (tally.acks.as_mut(), &outcome)
                    {
                        acks.push((command_id.clone(), p));
                    }
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
    Ok(collect_acks(tasks).await?.0)
}

/// [`collect`], with the accepted commands' answers the tallies kept.
pub(crate) async fn collect_acks(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Tally>>>,
) -> anyhow::Result<(Run, Vec<Ack>)> {
    let mut run = Run::empty();
    let mut acks = Vec::new();
    for task in tasks {
        let mut tally = task.await??;
        acks.append(tally.acks.get_or_insert_with(Vec::new));
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
    Ok((run, acks))
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
    let stats = probe.layer().stats();
    let conflicts = engine.stats().conflicts;
    engine.close().await?;
    if let Some(error) = &run.first_error {
        anyhow::bail!("{} submissions failed; the first: {error}", run.failed);
    }
    run.groups = stats.appends;
    run.store_seconds = stats.append_seconds;
    Ok((run, conflicts))
}
