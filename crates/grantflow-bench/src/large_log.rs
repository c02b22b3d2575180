//! The large-log scenarios (`replay`, `rss`), each task in a child process (see `child.rs`):
//! appending N events through the engine, replaying them, opening the store, and the
//! baselines' append and replay of the same envelope bytes.

use std::path::Path;

use anyhow::Context;
use grantflow_bench::sys::disk_bytes;
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::report::{round, Report};

/// Spawns this binary as a child for one task and parses its JSON line.
fn child(
    config: &Config,
    task: &str,
    path: &Path,
    input: Option<&Path>,
    group: usize,
) -> anyhow::Result<Map<String, Value>> {
    child_with(config, task, path, input, group, None)
}

/// A PostgreSQL child task on the store at `url`.
pub(crate) fn child_pg(
    config: &Config,
    task: &str,
    root: &Path,
    url: &str,
) -> anyhow::Result<Map<String, Value>> {
    child_with(config, task, root, None, 0, Some(url))
}

fn child_with(
    config: &Config,
    task: &str,
    path: &Path,
    input: Option<&Path>,
    group: usize,
    url: Option<&str>,
) -> anyhow::Result<Map<String, Value>> {
    let exe = std::env::current_exe()?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("child")
        .args(["--task", task])
        .arg("--path")
        .arg(path)
        .args(["--group", &group.to_string()])
        .args(["--events", &config.events.to_string()])
        .args(["--seed", &config.seed.to_string()])
        .args(["--lanes", &config.lanes.to_string()]);
    if let Some(input) = input {
        command.arg("--input").arg(input);
    }
    if let Some(url) = url {
        command
            .args(["--url", url])
            .args(["--pg-events", &config.pg_events.to_string()]);
    }
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "child {task} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().context("the child printed nothing")?;
    match serde_json::from_str::<Value>(line)? {
        Value::Object(map) => Ok(map),
        other => anyhow::bail!("child {task} printed {other}"),
    }
}

pub(crate) fn mib(fields: &mut Map<String, Value>) {
    if let Some(kib) = fields.remove("vm_hwm_kib").and_then(|v| v.as_f64()) {
        fields.insert("peak_rss_mib".into(), round(kib / 1024.0));
    }
    if let Some(kib) = fields.remove("checked_vm_hwm_kib").and_then(|v| v.as_f64()) {
        fields.insert("checked_peak_rss_mib".into(), round(kib / 1024.0));
    }
}

/// The large-log scenarios: replay, open, peak RSS, bytes on disk.
pub(crate) fn large_log(config: &Config, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    let sled_dir = root.join("large-sled");
    let sqlite_path = root.join("large.sqlite");
    let file_path = root.join("large.log");
    let records = root.join("large.records");
    for path in [&sled_dir, &sqlite_path, &file_path, &records] {
        if path.is_dir() {
            std::fs::remove_dir_all(path)?;
        } else if path.exists() {
            std::fs::remove_file(path)?;
        }
    }
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(root.join(format!("large.sqlite{suffix}")));
    }
    crate::env::settle_disk();
    let mut append = child(config, "engine-append", &sled_dir, Some(&records), 0)?;
    let events = append.get("events").and_then(Value::as_u64).unwrap_or(0);
    let group = append
        .get("events_per_group")
        .and_then(Value::as_f64)
        .unwrap_or(1000.0)
        .round()
        .max(1.0) as usize;
    mib(&mut append);
    report.line("append-engine", append.clone());
    crate::env::settle_disk();
    let mut sqlite = child(config, "sqlite-append", &sqlite_path, Some(&records), group)?;
    mib(&mut sqlite);
    report.line("append-sqlite", sqlite.clone());
    crate::env::settle_disk();
    let mut file = child(config, "file-append", &file_path, Some(&records), group)?;
    mib(&mut file);
    report.line("append-file", file.clone());

    let sled_bytes = disk_bytes(&sled_dir);
    let sqlite_bytes: u64 = ["", "-wal", "-shm"]
        .iter()
        .map(|s| disk_bytes(&root.join(format!("large.sqlite{s}"))))
        .sum();
    let file_bytes = disk_bytes(&file_path);
    let raw_bytes = disk_bytes(&records);
    let per = |bytes: u64| round(bytes as f64 / events.max(1) as f64);
    let mut f = Map::new();
    f.insert("events".into(), json!(events));
    f.insert("sled_bytes_per_event".into(), per(sled_bytes));
    f.insert("sqlite_bytes_per_event".into(), per(sqlite_bytes));
    f.insert("file_bytes_per_event".into(), per(file_bytes));
    f.insert(
        "x_sled_vs_sqlite".into(),
        round(sled_bytes as f64 / sqlite_bytes.max(1) as f64),
    );
    f.insert(
        "x_sled_vs_file".into(),
        round(sled_bytes as f64 / file_bytes.max(1) as f64),
    );
    f.insert("records_bytes_per_event".into(), per(raw_bytes));
    report.line("disk", f);

    let mut replay = child(config, "engine-replay", &sled_dir, None, group)?;
    mib(&mut replay);
    let mut sqlite_replay = child(config, "sqlite-replay", &sqlite_path, None, group)?;
    mib(&mut sqlite_replay);
    let mut file_replay = child(config, "file-replay", &file_path, None, group)?;
    mib(&mut file_replay);
    let eps = |m: &Map<String, Value>| m.get("events_per_s").and_then(Value::as_f64);
    let x = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => round(a / b),
        _ => Value::Null,
    };
    replay.insert("x_sqlite".into(), x(eps(&replay), eps(&sqlite_replay)));
    replay.insert("x_file".into(), x(eps(&replay), eps(&file_replay)));
    report.line("replay-engine", replay);
    report.line("replay-sqlite", sqlite_replay);
    report.line("replay-file", file_replay);

    for task in ["open-sled", "open-engine", "open-engine-nosnap"] {
        let mut open = child(config, task, &sled_dir, None, group)?;
        mib(&mut open);
        report.line(task, open);
    }
    let _ = std::fs::remove_file(&records);
    Ok(())
}
