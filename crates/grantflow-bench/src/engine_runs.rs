//! The engine's in-process scenarios: `engine-pipelined` (the reference run: the workload in
//! order, pipelined as `exec` does; it also yields the envelope bytes the baselines append)
//! and `engine-sN` (N concurrent submitters).

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use grantflow_bench::probe::ProbeStats;
use grantflow_bench::records::EventRec;
use grantflow_bench::workload::Workload;
use grantflow_engine::{CommandOutcome, Engine, Submission};

use crate::env::open_store;
use crate::measure::{histogram, record, Run};
use crate::submit::{engine_run_on, events_of, lanes_of};

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
pub(crate) async fn reference(
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
    let stats = probe.layer().stats();
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

/// The engine with `submitters` concurrent tasks, each submitting its lanes' commands in
/// order and awaiting each one's durable result.
pub(crate) async fn engine_run(
    dir: &Path,
    workload: &Workload,
    submitters: usize,
    deadline: Duration,
) -> anyhow::Result<Run> {
    let probe = open_store(dir).await?;
    let (run, _) = engine_run_on(probe, lanes_of(workload, submitters), deadline).await?;
    Ok(run)
}
