//! The PostgreSQL scenarios (issue 6): the engine over [`PgStore`] with 1, 16 and 256
//! submitters, N engines (as N processes would be) appending to one schema at once, and
//! the large-log figures (append, replay, open, bytes on disk per event) in child processes.
//!
//! Every run works in a fresh schema with a random name, dropped afterwards (also when the
//! run fails). The database is `--postgres URL` or `GRANTFLOW_TEST_POSTGRES`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use grantflow_bench::probe::Probe;
use grantflow_bench::workload::{SplitMix64, Workload};
use grantflow_store_pg::PgStore;
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::measure::{cpu_ticks, machine_ticks, median, ratio, ticks_seconds, Run};
use crate::report::round;
use crate::report::Report;
use crate::submit::{collect_acks, engine_run_on, lanes_of, spawn_submitters_with, Ack};

/// A PostgreSQL database the scenarios make their schemas in.
#[derive(Debug, Clone)]
pub(crate) struct Pg {
    /// The URL without any `schema=` parameter.
    base: String,
}

static NEXT_SCHEMA: AtomicU64 = AtomicU64::new(0);

impl Pg {
    pub fn new(url: &str) -> Pg {
        let base = match url.split_once('?') {
            None => url.to_string(),
            Some((head, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("schema"))
                    .collect();
                if kept.is_empty() {
                    head.to_string()
                } else {
                    format!("{head}?{}", kept.join("&"))
                }
            }
        };
        Pg { base }
    }

    /// A new random schema name (`gf_bench_<label>_<16 hex>`).
    pub fn fresh_schema(&self, label: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut rng = SplitMix64::new(
            nanos
                ^ (u64::from(std::process::id()) << 40)
                ^ NEXT_SCHEMA.fetch_add(1, Ordering::Relaxed),
        );
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(16)
            .collect();
        format!("gf_bench_{label}_{:016x}", rng.next_u64())
    }

    /// The store URL of a schema.
    pub fn url(&self, schema: &str) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}schema={schema}", self.base)
    }

    async fn admin(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(&self.base, tokio_postgres::NoTls)
            .await
            .with_context(|| "connecting to PostgreSQL (--postgres / GRANTFLOW_TEST_POSTGRES)")?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Drops a schema and everything in it.
    pub async fn drop_schema(&self, schema: &str) -> anyhow::Result<()> {
        let client = self.admin().await?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await?;
        Ok(())
    }

    /// `pg_total_relation_size` (heap, indexes, TOAST) of all the schema's tables, and of
    /// its `events` table alone, in bytes.
    pub async fn sizes(&self, schema: &str) -> anyhow::Result<(u64, u64)> {
        let client = self.admin().await?;
        let row = client
            .query_one(
                "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint, \
                 COALESCE(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname = 'events'), 0)::bigint \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'm')",
                &[&schema],
            )
            .await?;
        let total: i64 = row.get(0);
        let events: i64 = row.get(1);
        Ok((total.max(0) as u64, events.max(0) as u64))
    }

    /// The server's version string and `synchronous_commit`, `fsync`, `wal_sync_method`.
    pub async fn settings(&self) -> anyhow::Result<String> {
        let client = self.admin().await?;
        let mut parts = Vec::new();
        for setting in [
            "server_version",
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "shared_buffers",
        ] {
            let row = client.query_one(&format!("SHOW {setting}"), &[]).await?;
            let value: String = row.get(0);
            parts.push(format!("{setting}={value}"));
        }
        Ok(parts.join(","))
    }

    /// Runs `work` on a fresh schema's URL and drops the schema afterwards, whatever happened.
    pub async fn with_schema<T, F, Fut>(&self, label: &str, work: F) -> anyhow::Result<T>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        let schema = self.fresh_schema(label);
        let result = work(self.url(&schema)).await;
        let dropped = self.drop_schema(&schema).await;
        let value = result?;
        dropped.with_context(|| format!("dropping schema {schema}"))?;
        Ok(value)
    }
}

/// Connects a [`PgStore`] wrapped in the probe.
pub(crate) async fn open_pg(url: &str, hide_snapshot: bool) -> anyhow::Result<Arc<Probe>> {
    let store = PgStore::connect(url)
        .await
        .with_context(|| format!("connecting a PgStore to {}", redact(url)))?;
    Ok(grantflow_bench::probe::wrap(Arc::new(store), hide_snapshot))
}

/// The URL without a password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The line printed instead of the PostgreSQL scenarios when no database is given.
pub(crate) fn skip_line(report: &mut Report) {
    let mut f = Map::new();
    f.insert(
        "skipped".into(),
        json!("no PostgreSQL URL: pass --postgres URL or set GRANTFLOW_TEST_POSTGRES"),
    );
    report.line("pg", f);
}

/// The throughput scenarios on PostgreSQL (after the sled ones, for the ratios).
pub(crate) async fn throughput(
    config: &Config,
    pg: &Pg,
    workload: &Workload,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut f = Map::new();
    f.insert("server".into(), json!(pg.settings().await?));
    report.line("pg-server", f);
    let deadline = config.deadline();
    for &s in &config.submitters {
        let run = median(config.repeat, |_| {
            let lanes = lanes_of(workload, s);
            async move {
                pg.with_schema(&format!("s{s}"), |url| async move {
                    let probe = open_pg(&url, false).await?;
                    let (run, _) = engine_run_on(probe, lanes, deadline).await?;
                    Ok(run)
                })
                .await
            }
        })
        .await?;
        let mut f = run.fields();
        let eps = Some(run.events_per_s());
        f.insert(
            "x_sled".into(),
            ratio(eps, report.get(&format!("engine-s{s}"), "events_per_s")),
        );
        f.insert(
            "x_sqlite_same_shape".into(),
            ratio(eps, report.get(&format!("sqlite-s{s}"), "events_per_s")),
        );
        report.line(&format!("pg-s{s}"), f);
    }

    servers(config, pg, report).await
}

/// What one `pg-servers` run measured.
struct ServersRun {
    run: Run,
    /// The machine's busy share of all its cores' time during the run.
    machine_busy: Option<f64>,
    /// This process's CPU seconds during the run.
    process_cpu_seconds: Option<f64>,
    conflicts: u64,
    accepted_per_server: Vec<u64>,
    reservations: u64,
    reserve_seconds: f64,
    lost: u64,
    unacknowledged: u64,
}

/// `pg-servers-nN`: N engines, each with its own [`PgStore`] (its own pool, listener and
/// reservation connection, as N processes have), write one log at once, each driven by
/// `--pg-server-submitters` submitters on lanes of its own; one run per count of
/// `--pg-servers`, each on a fresh schema, each compared with the first count's run. After
/// each run the whole log is read back and held to the acknowledgments: every accepted
/// command's events where it was told they landed (`lost` counts those that are not), and
/// no event that no acknowledgment accounts for (`unacknowledged`: a command appended twice,
/// or without its answer).
pub(crate) async fn servers(config: &Config, pg: &Pg, report: &mut Report) -> anyhow::Result<()> {
    let per_server = config.pg_server_submitters;
    let most = config.pg_servers.iter().copied().max().unwrap_or(1);
    // One lane (fund) per submitter at the largest count, the same workload for every count.
    let lanes = u32::try_from(most * per_server)?.max(config.lanes);
    let workload = grantflow_bench::workload::generate(config.seed, lanes, config.commands, 0);
    let deadline = config.deadline();
    let mut first: Option<f64> = None;
    for &n in &config.pg_servers {
        let measured = pg
            .with_schema(&format!("n{n}"), |url| {
                servers_run(url, &workload, n, per_server, deadline)
            })
            .await?;
        let mut f = measured.run.fields();
        let per_s = measured.run.accepted as f64 / measured.run.seconds.max(1e-9);
        let base = *first.get_or_insert(per_s);
        f.insert("servers".into(), json!(n));
        f.insert("submitters_per_server".into(), json!(per_server));
        f.insert(
            format!("x_n{}", config.pg_servers[0]),
            ratio(Some(per_s), Some(base)),
        );
        f.insert("conflicts_retried".into(), json!(measured.conflicts));
        f.insert("lost".into(), json!(measured.lost));
        f.insert("unacknowledged".into(), json!(measured.unacknowledged));
        f.insert(
            "accepted_per_server".into(),
            json!(measured
                .accepted_per_server
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("/")),
        );
        f.insert("reservations".into(), json!(measured.reservations));
        // Of the servers' time, the share spent waiting to hold the head row.
        f.insert(
            "reserve_share".into(),
            round(measured.reserve_seconds / (measured.run.seconds.max(1e-9) * n as f64)),
        );
        if let Some(busy) = measured.machine_busy {
            f.insert("machine_busy".into(), round(busy));
        }
        if let Some(cpu) = measured.process_cpu_seconds {
            // The engines' and submitters' CPU per accepted command (PostgreSQL's not counted).
            f.insert(
                "process_cpu_us_per_command".into(),
                round(cpu * 1e6 / measured.run.accepted.max(1) as f64),
            );
        }
        report.line(&format!("pg-servers-n{n}"), f);
        anyhow::ensure!(
            measured.lost == 0 && measured.unacknowledged == 0 && measured.run.failed == 0,
            "{n} servers on one log: {} acknowledged commands lost, {} events unacknowledged, \
             {} submissions failed (the first: {})",
            measured.lost,
            measured.unacknowledged,
            measured.run.failed,
            measured.run.first_error.as_deref().unwrap_or("none")
        );
    }
    Ok(())
}

/// One `pg-servers` run on the schema of `url`.
async fn servers_run(
    url: String,
    workload: &Workload,
    n: usize,
    per_server: usize,
    deadline: std::time::Duration,
) -> anyhow::Result<ServersRun> {
    let mut probes = Vec::new();
    let mut engines = Vec::new();
    for _ in 0..n {
        let probe = open_pg(&url, false).await?;
        engines.push(Arc::new(
            grantflow_engine::Engine::open(probe.clone()).await?,
        ));
        probes.push(probe);
    }
    let mut lanes: Vec<Vec<Vec<Value>>> = vec![Vec::new(); n];
    for (i, lane) in lanes_of(workload, n * per_server).into_iter().enumerate() {
        lanes[i % n].push(lane);
    }
    let machine_before = machine_ticks();
    let self_before = cpu_ticks("/proc/self/stat");
    let started = Instant::now();
    let stop_at = started + deadline;
    let tasks: Vec<_> = engines
        .iter()
        .zip(lanes)
        .map(|(engine, lanes)| spawn_submitters_with(engine, lanes, stop_at, true))
        .collect();
    let mut runs = Vec::new();
    for server in tasks {
        runs.push(collect_acks(server).await?);
    }
    let seconds = started.elapsed().as_secs_f64();
    // The machine's share of busy CPU, and this process's CPU (engines and submitters).
    let machine_busy = match (machine_before, machine_ticks()) {
        (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
            Some((busy1 - busy0) as f64 / (total1 - total0) as f64)
        }
        _ => None,
    };
    let process_cpu_seconds = match (self_before, cpu_ticks("/proc/self/stat")) {
        (Some(before), Some(after)) => Some(ticks_seconds(after.0.saturating_sub(before.0))),
        _ => None,
    };
    let conflicts = engines.iter().map(|engine| engine.stats().conflicts).sum();
    for engine in &engines {
        engine.close().await?;
    }
    let mut total = Run::empty();
    let mut acks = Vec::new();
    let mut accepted_per_server = Vec::new();
    for (run, mut server_acks) in runs {
        total
            .hist
            .add(&run.hist)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        total.commands += run.commands;
        total.accepted += run.accepted;
        total.events += run.events;
        total.failed += run.failed;
        total.first_error = total.first_error.or(run.first_error);
        accepted_per_server.push(run.accepted);
        acks.append(&mut server_acks);
    }
    total.seconds = seconds;
    let (mut reservations, mut reserve_seconds) = (0, 0.0);
    for probe in &probes {
        let stats = probe.layer().stats();
        total.groups += stats.appends;
        total.store_seconds += stats.append_seconds / n as f64;
        reservations += stats.reservations;
        reserve_seconds += stats.reserve_seconds;
    }
    let (lost, unacknowledged) = held_to_acks(&url, &acks).await?;
    Ok(ServersRun {
        machine_busy,
        process_cpu_seconds,
        run: total,
        conflicts,
        accepted_per_server,
        reservations,
        reserve_seconds,
        lost,
        unacknowledged,
    })
}

/// Reads the whole log of `url` back: how many acknowledged commands are not in it where
/// they were acknowledged (lost), and how many of its events no acknowledgment accounts for.
async fn held_to_acks(url: &str, acks: &[Ack]) -> anyhow::Result<(u64, u64)> {
    use grantflow_store::EventStore;
    let store = PgStore::connect(url)
        .await
        .with_context(|| format!("connecting a PgStore to {}", redact(url)))?;
    let mut expected: HashMap<u64, &str> = HashMap::new();
    let mut duplicate_acks = 0u64;
    for (command_id, positions) in acks {
        for &position in positions {
            if expected.insert(position, command_id.as_str()).is_some() {
                duplicate_acks += 1;
            }
        }
    }
    let head = store.head().await?.position;
    let mut matched: HashSet<u64> = HashSet::new();
    let mut unacknowledged = duplicate_acks;
    let mut from = 1;
    while from <= head {
        let page = store.read(from, grantflow_store::READ_EVENTS_MAX).await?;
        anyhow::ensure!(
            !page.is_empty(),
            "the log ends at {} before its head {head}",
            from - 1
        );
        for envelope in &page {
            match expected.get(&envelope.position) {
                Some(id) if *id == envelope.command_id => {
                    matched.insert(envelope.position);
                }
                _ => unacknowledged += 1,
            }
            from = envelope.position + 1;
        }
    }
    store.close().await?;
    let lost = acks
        .iter()
        .filter(|(_, positions)| positions.iter().any(|p| !matched.contains(p)))
        .count() as u64;
    Ok((lost, unacknowledged))
}

/// The large-log scenarios on PostgreSQL, each in a child process: append `events` events
/// through the engine, bytes per event, replay, open.
pub(crate) fn large_log(
    config: &Config,
    pg: &Pg,
    root: &Path,
    runtime: &tokio::runtime::Runtime,
    report: &mut Report,
) -> anyhow::Result<()> {
    let schema = pg.fresh_schema("log");
    let url = pg.url(&schema);
    let result = large_log_in(config, pg, &schema, &url, root, runtime, report);
    let dropped = runtime.block_on(pg.drop_schema(&schema));
    result?;
    dropped.with_context(|| format!("dropping schema {schema}"))
}

fn large_log_in(
    config: &Config,
    pg: &Pg,
    schema: &str,
    url: &str,
    root: &Path,
    runtime: &tokio::runtime::Runtime,
    report: &mut Report,
) -> anyhow::Result<()> {
    use crate::large_log::{child_pg, mib};
    let events_target = config.pg_events;
    let mut append = child_pg(config, "pg-append", root, url)?;
    let events = append.get("events").and_then(Value::as_u64).unwrap_or(0);
    mib(&mut append);
    let eps = append.get("events_per_s").and_then(Value::as_f64);
    if events_target == config.events {
        append.insert(
            "x_sled".into(),
            ratio(eps, report.get("append-engine", "events_per_s")),
        );
        append.insert(
            "x_sqlite".into(),
            ratio(eps, report.get("append-sqlite", "events_per_s")),
        );
    }
    report.line("pg-append", append);

    let (total, events_table) = runtime.block_on(pg.sizes(schema))?;
    let per = |bytes: u64| round(bytes as f64 / events.max(1) as f64);
    let mut f = Map::new();
    f.insert("events".into(), json!(events));
    f.insert("schema_bytes".into(), json!(total));
    f.insert("pg_bytes_per_event".into(), per(total));
    f.insert("events_table_bytes_per_event".into(), per(events_table));
    if events_target == config.events {
        for (key, name) in [
            ("x_sled", "sled_bytes_per_event"),
            ("x_sqlite", "sqlite_bytes_per_event"),
            ("x_file", "file_bytes_per_event"),
        ] {
            let base = report.get("disk", name);
            f.insert(
                key.into(),
                ratio(Some(total as f64 / events.max(1) as f64), base),
            );
        }
    }
    report.line("pg-disk", f);

    let mut replay = child_pg(config, "pg-replay", root, url)?;
    mib(&mut replay);
    if events_target == config.events {
        let eps = replay.get("events_per_s").and_then(Value::as_f64);
        replay.insert(
            "x_sled".into(),
            ratio(eps, report.get("replay-engine", "events_per_s")),
        );
        replay.insert(
            "x_sqlite".into(),
            ratio(eps, report.get("replay-sqlite", "events_per_s")),
        );
    }
    report.line("pg-replay", replay);

    for task in ["pg-open-store", "pg-open-engine", "pg-open-engine-nosnap"] {
        let mut open = child_pg(config, task, root, url)?;
        mib(&mut open);
        report.line(task, open);
    }
    Ok(())
}
