//! The throughput scenarios, in order on one generated workload: the `workload` line, the
//! reference run, the baselines (SQLite peer, plain file) with one writer and with the
//! engine's concurrency shape, the engine with 1, 16 and 256 concurrent submitters, the real
//! `grantflow exec`, and the PostgreSQL runs.

use std::path::Path;
use std::sync::Arc;

use grantflow_bench::baseline::{FileSink, Sink, SqliteSink};
use grantflow_bench::workload::{self};
use serde_json::{json, Map};

use crate::baseline_runs::{shaped_run, single_writer};
use crate::config::Config;
use crate::engine_runs::{engine_run, reference};
use crate::env::{fresh, grantflow_binary};
use crate::exec_runs::{exec_run, exec_stdin};
use crate::measure::{median, ratio};
use crate::report::{round, Report};

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
