//! The baselines' scenarios: the SQLite peer and the plain file with fdatasync, appending the
//! reference run's envelope bytes with one writer (`*-1writer`, the reference's group
//! sizes) and with the engine's concurrency shape (`*-sN`: N submitters, one group-committing
//! writer thread).

use std::sync::Arc;
use std::time::{Duration, Instant};

use grantflow_bench::baseline::Sink;
use grantflow_bench::records::EventRec;
use grantflow_bench::workload::Workload;
use grantflow_engine::BATCH_COMMANDS_MAX;
use tokio::sync::{mpsc, oneshot};

use crate::measure::{histogram, record, Run};

type Job = (usize, oneshot::Sender<()>);

/// A baseline with the engine's concurrency shape: submitter tasks → bounded channel → one
/// writer thread that takes what is queued (up to the engine's batch bound) as one group.
pub(crate) async fn shaped_run(
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
    let mut run = Run::empty();
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
pub(crate) fn single_writer(
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
