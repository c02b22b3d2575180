//! The large-log scenarios, each in a child process (the bench binary re-executed with the
//! hidden `child` subcommand) so that each peak RSS (VmHWM) is that work's alone: appending N
//! events through the engine, replaying them, opening the store, and the baselines' append
//! and replay of the same envelope bytes.

use std::collections::VecDeque;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use grantflow_bench::baseline::{scan_file, scan_sqlite, FileSink, Sink, SqliteSink};
use grantflow_bench::probe::Probe;
use grantflow_bench::records::{decode_canonical, EventRec};
use grantflow_bench::sys::{disk_bytes, vm_hwm_kib};
use grantflow_bench::workload::Generator;
use grantflow_engine::{audit, CommandOutcome, Engine, ReadModel, Submission};
use grantflow_store::EventStore;
use grantflow_store_sled::SledStore;
use serde_json::{json, Map, Value};

use crate::{round, ChildArgs, Config, Report};

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(grantflow_engine::BLOCKING_THREADS_MAX)
        .enable_all()
        .build()?)
}

fn emit(mut fields: Map<String, Value>) -> anyhow::Result<()> {
    fields.insert("vm_hwm_kib".into(), json!(vm_hwm_kib()));
    println!("{}", Value::Object(fields));
    Ok(())
}

/// Runs one child task and prints its figures as one JSON line.
pub(crate) fn run_child(config: &Config, args: &ChildArgs) -> anyhow::Result<()> {
    match args.task.as_str() {
        "engine-append" => engine_append(config, args),
        "http-floor" => crate::http::floor_server(),
        "engine-replay" => engine_replay(args),
        "open-sled" => {
            let started = Instant::now();
            let store = SledStore::open(&args.path)?;
            let seconds = started.elapsed().as_secs_f64();
            let head = runtime()?.block_on(store.head())?.position;
            emit(fields(&[
                ("seconds", round(seconds)),
                ("events", json!(head)),
            ]))
        }
        "open-engine" | "open-engine-nosnap" => {
            let hide = args.task == "open-engine-nosnap";
            let rt = runtime()?;
            rt.block_on(async {
                let started = Instant::now();
                let path = args.path.clone();
                let store = tokio::task::spawn_blocking(move || SledStore::open(&path)).await??;
                let engine = Engine::open(Probe::new(Arc::new(store), hide)).await?;
                let seconds = started.elapsed().as_secs_f64();
                let events = engine.with_model(|m| m.position);
                let hwm = vm_hwm_kib();
                drop(engine);
                let mut f = fields(&[("seconds", round(seconds)), ("events", json!(events))]);
                f.insert("vm_hwm_kib".into(), json!(hwm));
                println!("{}", Value::Object(f));
                anyhow::Ok(())
            })
        }
        "sqlite-append" | "file-append" => baseline_append(args),
        "pg-append"
        | "pg-replay"
        | "pg-open-store"
        | "pg-open-engine"
        | "pg-open-engine-nosnap" => pg_task(config, args),
        "sqlite-replay" | "file-replay" => baseline_replay(args),
        other => anyhow::bail!("unknown child task {other:?}"),
    }
}

fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// Appends commands of the generated workload through the engine (pipelined, as `exec`)
/// until the log holds `config.events` events; then writes the envelopes for the baselines.
fn engine_append(config: &Config, args: &ChildArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let path = args.path.clone();
        let store = tokio::task::spawn_blocking(move || SledStore::open(&path)).await??;
        let probe = Probe::new(Arc::new(store), false);
        let engine = Engine::open(probe.clone()).await?;
        let started = Instant::now();
        let (commands, accepted) = pipelined(&engine, config, config.events).await?;
        let seconds = started.elapsed().as_secs_f64();
        engine.close().await?;
        let hwm = vm_hwm_kib();
        let stats = probe.stats();
        // Release the store (sled's lock) before reading it back.
        drop(engine);
        drop(probe);
        let mut f = fields(&[
            ("commands", json!(commands)),
            ("accepted", json!(accepted)),
            ("events", json!(stats.events)),
            ("seconds", round(seconds)),
            (
                "events_per_s",
                round(stats.events as f64 / seconds.max(1e-9)),
            ),
            ("groups", json!(stats.appends)),
            (
                "events_per_group",
                round(stats.events as f64 / stats.appends.max(1) as f64),
            ),
            (
                "store_share",
                round(stats.append_seconds / seconds.max(1e-9)),
            ),
        ]);
        f.insert("vm_hwm_kib".into(), json!(hwm));
        // The envelopes, for the baselines (after the RSS reading).
        if let Some(out) = &args.input {
            let store = SledStore::open_existing(&args.path)?;
            let mut writer = BufWriter::new(std::fs::File::create(out)?);
            let head = store.head().await?.position;
            let mut next = 1;
            while next <= head {
                let page = store.read(next, 4_096).await?;
                anyhow::ensure!(!page.is_empty(), "the log ends before its head");
                for envelope in &page {
                    EventRec::of(envelope).write_to(&mut writer)?;
                }
                next += page.len() as u64;
            }
            writer.flush()?;
            store.close().await?;
        }
        println!("{}", Value::Object(f));
        Ok(())
    })
}

/// Pipes generated commands through the engine (up to 8,192 in flight, as `exec`) until
/// they append `events` events; returns the commands sent and accepted.
async fn pipelined(engine: &Engine, config: &Config, events: u64) -> anyhow::Result<(u64, u64)> {
    let mut generator = Generator::new(config.seed, config.lanes);
    let mut in_flight = VecDeque::new();
    let (mut commands, mut accepted, mut expected) = (0u64, 0u64, 0u64);
    while expected < events {
        let command = generator.next_command();
        expected += u64::from(command.events);
        commands += 1;
        in_flight.push_back(engine.enqueue(Submission::cli(command.body, None)).await?);
        if in_flight.len() >= 8_192 {
            if let Some(pending) = in_flight.pop_front() {
                accepted += u64::from(matches!(
                    pending.wait().await?,
                    CommandOutcome::Accepted { .. }
                ));
            }
        }
    }
    while let Some(pending) = in_flight.pop_front() {
        accepted += u64::from(matches!(
            pending.wait().await?,
            CommandOutcome::Accepted { .. }
        ));
    }
    Ok((commands, accepted))
}

/// The PostgreSQL children (`--url`): append through the engine, replay, open.
fn pg_task(config: &Config, args: &ChildArgs) -> anyhow::Result<()> {
    let url = args.url.clone().context("--url is required")?;
    let rt = runtime()?;
    rt.block_on(async {
        match args.task.as_str() {
            "pg-append" => {
                let probe = crate::pg::open_pg(&url, false).await?;
                let engine = Engine::open(probe.clone()).await?;
                let started = Instant::now();
                let (commands, accepted) = pipelined(&engine, config, config.pg_events).await?;
                let seconds = started.elapsed().as_secs_f64();
                let conflicts = engine.stats().conflicts;
                engine.close().await?;
                let hwm = vm_hwm_kib();
                let stats = probe.stats();
                let mut f = fields(&[
                    ("commands", json!(commands)),
                    ("accepted", json!(accepted)),
                    ("events", json!(stats.events)),
                    ("seconds", round(seconds)),
                    (
                        "events_per_s",
                        round(stats.events as f64 / seconds.max(1e-9)),
                    ),
                    ("groups", json!(stats.appends)),
                    (
                        "events_per_group",
                        round(stats.events as f64 / stats.appends.max(1) as f64),
                    ),
                    (
                        "store_share",
                        round(stats.append_seconds / seconds.max(1e-9)),
                    ),
                    ("conflicts", json!(conflicts)),
                ]);
                f.insert("vm_hwm_kib".into(), json!(hwm));
                println!("{}", Value::Object(f));
            }
            "pg-replay" => {
                let store = grantflow_store_pg::PgStore::connect(&url).await?;
                let (model, replay) = audit::replay(&store, &|_, _| {}).await?;
                let hwm = vm_hwm_kib();
                drop(model);
                let head = store.head().await?.position;
                let started = Instant::now();
                let mut next = 1;
                while next <= head {
                    let page = store.read(next, 4_096).await?;
                    anyhow::ensure!(!page.is_empty(), "the log ends before its head");
                    next += page.len() as u64;
                }
                let scan = started.elapsed().as_secs_f64();
                store.close().await?;
                let mut f = fields(&[
                    ("events", json!(replay.events)),
                    ("seconds", round(replay.seconds)),
                    ("events_per_s", round(replay.events_per_second)),
                    ("scan_events_per_s", round(head as f64 / scan.max(1e-9))),
                ]);
                f.insert("vm_hwm_kib".into(), json!(hwm));
                println!("{}", Value::Object(f));
            }
            "pg-open-store" => {
                let started = Instant::now();
                let store = grantflow_store_pg::PgStore::connect(&url).await?;
                let head = store.head().await?.position;
                let seconds = started.elapsed().as_secs_f64();
                store.close().await?;
                emit(fields(&[
                    ("seconds", round(seconds)),
                    ("events", json!(head)),
                ]))?;
            }
            _ => {
                let hide = args.task == "pg-open-engine-nosnap";
                let started = Instant::now();
                let probe = crate::pg::open_pg(&url, hide).await?;
                let engine = Engine::open(probe).await?;
                let seconds = started.elapsed().as_secs_f64();
                let events = engine.with_model(|m| m.position);
                let hwm = vm_hwm_kib();
                engine.close().await?;
                let mut f = fields(&[("seconds", round(seconds)), ("events", json!(events))]);
                f.insert("vm_hwm_kib".into(), json!(hwm));
                println!("{}", Value::Object(f));
            }
        }
        anyhow::Ok(())
    })
}

/// `audit::replay` (rebuild all projections from the log), then a warm scan without folding.
fn engine_replay(args: &ChildArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let path = args.path.clone();
        let store = tokio::task::spawn_blocking(move || SledStore::open_existing(&path)).await??;
        let (model, replay) = audit::replay(&store, &|_, _| {}).await?;
        let hwm = vm_hwm_kib();
        drop(model);
        // Scan only (read + decode envelopes, no fold), the sled cache now warm.
        let head = store.head().await?.position;
        let started = Instant::now();
        let mut next = 1;
        while next <= head {
            let page = store.read(next, 4_096).await?;
            anyhow::ensure!(!page.is_empty(), "the log ends before its head");
            next += page.len() as u64;
        }
        let scan = started.elapsed().as_secs_f64();
        store.close().await?;
        let mut f = fields(&[
            ("events", json!(replay.events)),
            ("seconds", round(replay.seconds)),
            ("events_per_s", round(replay.events_per_second)),
            ("scan_events_per_s", round(head as f64 / scan.max(1e-9))),
        ]);
        f.insert("vm_hwm_kib".into(), json!(hwm));
        println!("{}", Value::Object(f));
        Ok(())
    })
}

fn baseline_append(args: &ChildArgs) -> anyhow::Result<()> {
    let input = args.input.as_ref().context("--input is required")?;
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(input)?);
    let mut sink: Box<dyn Sink> = if args.task == "sqlite-append" {
        Box::new(SqliteSink::open(&args.path)?)
    } else {
        Box::new(FileSink::create(&args.path)?)
    };
    let mut group = Vec::with_capacity(args.group);
    let (mut events, mut groups, mut seconds) = (0u64, 0u64, 0.0f64);
    let started = Instant::now();
    loop {
        let record = EventRec::read_from(&mut reader)?;
        let end = record.is_none();
        if let Some(record) = record {
            group.push(record);
        }
        if group.len() >= args.group.max(1) || (end && !group.is_empty()) {
            let refs: Vec<&EventRec> = group.iter().collect();
            let t = Instant::now();
            sink.write_group(&refs)?;
            seconds += t.elapsed().as_secs_f64();
            events += group.len() as u64;
            groups += 1;
            group.clear();
        }
        if end {
            break;
        }
    }
    let total = started.elapsed().as_secs_f64();
    drop(sink);
    emit(fields(&[
        ("events", json!(events)),
        ("groups", json!(groups)),
        ("seconds", round(seconds)),
        ("events_per_s", round(events as f64 / seconds.max(1e-9))),
        ("seconds_with_input", round(total)),
    ]))
}

fn baseline_replay(args: &ChildArgs) -> anyhow::Result<()> {
    let mut model = ReadModel::default();
    let started = Instant::now();
    let mut fold = |body: &[u8], hash: [u8; 32]| -> anyhow::Result<()> {
        let envelope = decode_canonical(body, hash)?;
        model.apply(&envelope)?;
        Ok(())
    };
    let events = if args.task == "sqlite-replay" {
        let conn = rusqlite::Connection::open(&args.path)?;
        scan_sqlite(&conn, &mut fold)?
    } else {
        scan_file(&args.path, &mut fold)?
    };
    let seconds = started.elapsed().as_secs_f64();
    let hwm = vm_hwm_kib();
    // Scan only (no decode, no fold), warm.
    let started = Instant::now();
    let scanned = if args.task == "sqlite-replay" {
        let conn = rusqlite::Connection::open(&args.path)?;
        scan_sqlite(&conn, |_, _| Ok(()))?
    } else {
        scan_file(&args.path, |_, _| Ok(()))?
    };
    let scan = started.elapsed().as_secs_f64();
    let mut f = fields(&[
        ("events", json!(events)),
        ("seconds", round(seconds)),
        ("events_per_s", round(events as f64 / seconds.max(1e-9))),
        ("scan_events_per_s", round(scanned as f64 / scan.max(1e-9))),
    ]);
    f.insert("vm_hwm_kib".into(), json!(hwm));
    println!("{}", Value::Object(f));
    Ok(())
}

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
    crate::runs::settle_disk();
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
    crate::runs::settle_disk();
    let mut sqlite = child(config, "sqlite-append", &sqlite_path, Some(&records), group)?;
    mib(&mut sqlite);
    report.line("append-sqlite", sqlite.clone());
    crate::runs::settle_disk();
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
