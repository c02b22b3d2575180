//! The child side of the large-log scenarios: the bench binary re-executed with the hidden
//! `child` subcommand does one task (append N events through the engine, replay them, open
//! the store, the baselines' append and replay of the same envelope bytes, the PostgreSQL
//! tasks, the HTTP floor server) and prints its figures, so that each peak RSS (VmHWM) is
//! that work's alone.

use std::collections::VecDeque;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use grantflow_bench::baseline::{scan_file, scan_sqlite, FileSink, Sink, SqliteSink};
use grantflow_bench::probe::ProbeStats;
use grantflow_bench::records::{decode_canonical, EventRec};
use grantflow_bench::sys::vm_hwm_kib;
use grantflow_bench::workload::Generator;
use grantflow_engine::{audit, CommandOutcome, Engine, ReadModel, Submission};
use grantflow_store::EventStore;
use grantflow_store_sled::SledStore;
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::report::round;

#[derive(Args, Debug, Clone)]
pub(crate) struct ChildArgs {
    /// What to measure.
    #[arg(long)]
    task: String,
    /// The store (directory or file).
    #[arg(long)]
    path: PathBuf,
    /// Records file (envelopes) to write or read.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Events per group for the baselines.
    #[arg(long, default_value_t = 1000)]
    group: usize,
    /// The PostgreSQL store (for the pg-* tasks).
    #[arg(long)]
    url: Option<String>,
}

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
        "http-floor" => crate::http_floor::floor_server(),
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
                let engine =
                    Engine::open(grantflow_bench::probe::wrap(Arc::new(store), hide)).await?;
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
        "sled-breakdown" => sled_breakdown(args),
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
/// The fields of an append run: what was sent and accepted, and what the probe saw.
fn append_fields(
    commands: u64,
    accepted: u64,
    seconds: f64,
    stats: &ProbeStats,
) -> Map<String, Value> {
    fields(&[
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
    ])
}

fn engine_append(config: &Config, args: &ChildArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let path = args.path.clone();
        let store = tokio::task::spawn_blocking(move || SledStore::open(&path)).await??;
        let probe = grantflow_bench::probe::wrap(Arc::new(store), false);
        let engine = Engine::open(probe.clone()).await?;
        let started = Instant::now();
        let (commands, accepted) = pipelined(&engine, config, config.events).await?;
        let seconds = started.elapsed().as_secs_f64();
        engine.close().await?;
        let hwm = vm_hwm_kib();
        let stats = probe.layer().stats();
        // Release the store (sled's lock) before reading it back.
        drop(engine);
        drop(probe);
        let mut f = append_fields(commands, accepted, seconds, &stats);
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
    let mut generator = Generator::for_events(config.seed, config.lanes, events);
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
                let stats = probe.layer().stats();
                let mut f = append_fields(commands, accepted, seconds, &stats);
                f.insert("conflicts".into(), json!(conflicts));
                f.insert("vm_hwm_kib".into(), json!(hwm));
                println!("{}", Value::Object(f));
            }
            "pg-replay" => {
                let store = grantflow_store_pg::PgStore::connect(&url).await?;
                replay_and_scan(&store).await?;
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

/// The rebuild of all projections from the log, a warm scan without folding, and the
/// rule-checked replay.
fn engine_replay(args: &ChildArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let path = args.path.clone();
        let store = tokio::task::spawn_blocking(move || SledStore::open_existing(&path)).await??;
        replay_and_scan(&store).await
    })
}

/// Rebuilds every projection from the store's log (the fold `Engine::open` runs without a
/// snapshot), then scans it again without folding (read and decode only, the store's cache
/// now warm), then runs `grantflow replay`'s rule-checked rebuild (`audit::replay`: every
/// command decided again), closes the store and prints the figures.
async fn replay_and_scan(store: &dyn EventStore) -> anyhow::Result<()> {
    let head = store.head().await?.position;
    let started = Instant::now();
    let mut model = grantflow_engine::ReadModel::default();
    grantflow_engine::fold_into(store, &mut model, head, &|_, _| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    let hwm = vm_hwm_kib();
    let events = model.position;
    drop(model);
    let started = Instant::now();
    let mut next = 1;
    while next <= head {
        let page = store.read(next, 4_096).await?;
        anyhow::ensure!(!page.is_empty(), "the log ends before its head");
        next += page.len() as u64;
    }
    let scan = started.elapsed().as_secs_f64();
    let (model, checked) = audit::replay(store, &|_, _| {}).await?;
    drop(model);
    let checked_hwm = vm_hwm_kib();
    store.close().await?;
    let mut f = fields(&[
        ("events", json!(events)),
        ("seconds", round(seconds)),
        ("events_per_s", round(events as f64 / seconds.max(1e-9))),
        ("scan_events_per_s", round(head as f64 / scan.max(1e-9))),
        ("checked_events_per_s", round(checked.events_per_second)),
    ]);
    f.insert("vm_hwm_kib".into(), json!(hwm));
    f.insert("checked_vm_hwm_kib".into(), json!(checked_hwm));
    println!("{}", Value::Object(f));
    Ok(())
}

/// Where a store's bytes go: the files of its data directory (sled's database file, its
/// snapshot files, the redo files, everything else) as allocated on disk, and the live keys
/// and values sled holds, by key prefix (`L` log chunks, `S` stream index, `C` command
/// index, the rest). sled's file less its live keys and values is its own overhead: page
/// headers, superseded page versions not yet cleaned, free space in segments.
fn sled_breakdown(args: &ChildArgs) -> anyhow::Result<()> {
    use grantflow_bench::sys::disk_bytes;
    let data = &args.path;
    let db_dir = data.join("db");
    let mut files: Map<String, Value> = Map::new();
    let (mut db_file, mut snapshots, mut redo, mut other) = (0u64, 0u64, 0u64, 0u64);
    for entry in std::fs::read_dir(data)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = disk_bytes(&entry.path());
        if name.starts_with("redo-") {
            redo += bytes;
        } else if name != "db" {
            other += bytes;
        }
    }
    for entry in std::fs::read_dir(&db_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = disk_bytes(&entry.path());
        if name == "db" {
            db_file += bytes;
        } else {
            snapshots += bytes;
        }
    }
    let db = grantflow_store_sled::open_sled(&db_dir)?;
    let (mut live, mut count) = ([0u64; 4], [0u64; 4]);
    for item in db.iter() {
        let (key, value) = item?;
        let slot = match key.first() {
            Some(b'L') => 0,
            Some(b'S') => 1,
            Some(b'C') => 2,
            _ => 3,
        };
        live[slot] += (key.len() + value.len()) as u64;
        count[slot] += 1;
    }
    drop(db);
    for (name, bytes) in [
        ("db_file_bytes", db_file),
        ("sled_other_files_bytes", snapshots),
        ("redo_bytes", redo),
        ("other_files_bytes", other),
    ] {
        files.insert(name.into(), json!(bytes));
    }
    for (index, name) in ["log", "stream_index", "command_index", "other"]
        .iter()
        .enumerate()
    {
        files.insert(format!("live_{name}_bytes"), json!(live[index]));
        files.insert(format!("live_{name}_keys"), json!(count[index]));
    }
    emit(files)
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
