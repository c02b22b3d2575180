//! The PostgreSQL scenarios (issue 6): the engine over [`PgStore`] with 1, 16 and 256
//! submitters, two engines (as two processes would be) appending to one schema at once, and
//! the large-log figures (append, replay, open, bytes on disk per event) in child processes.
//!
//! Every run works in a fresh schema with a random name, dropped afterwards (also when the
//! run fails). The database is `--postgres URL` or `GRANTFLOW_TEST_POSTGRES`.

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
use crate::measure::{median, ratio, Run};
use crate::report::round;
use crate::report::Report;
use crate::submit::{collect, engine_run_on, lanes_of, spawn_submitters};

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

    // Two engines, each with its own PgStore (its own pool and listener, as two processes
    // have), on one schema, appending at once: disjoint lanes, 256 submitters in all.
    let submitters = config
        .submitters
        .iter()
        .copied()
        .max()
        .unwrap_or(256)
        .max(2);
    let (run, conflicts, per_engine) = pg
        .with_schema("two", |url| async move {
            let probe_a = open_pg(&url, false).await?;
            let probe_b = open_pg(&url, false).await?;
            let engine_a = Arc::new(grantflow_engine::Engine::open(probe_a.clone()).await?);
            let engine_b = Arc::new(grantflow_engine::Engine::open(probe_b.clone()).await?);
            let (mut lanes_a, mut lanes_b) = (Vec::new(), Vec::new());
            for (i, lane) in lanes_of(workload, submitters).into_iter().enumerate() {
                if i % 2 == 0 {
                    lanes_a.push(lane);
                } else {
                    lanes_b.push(lane);
                }
            }
            let started = Instant::now();
            let stop_at = started + deadline;
            let tasks_a = spawn_submitters(&engine_a, lanes_a, stop_at);
            let tasks_b = spawn_submitters(&engine_b, lanes_b, stop_at);
            let (a, b) = tokio::join!(collect(tasks_a), collect(tasks_b));
            let (mut a, b) = (a?, b?);
            let seconds = started.elapsed().as_secs_f64();
            let conflicts = engine_a.stats().conflicts + engine_b.stats().conflicts;
            let per_engine = [a.accepted, b.accepted];
            engine_a.close().await?;
            engine_b.close().await?;
            let (sa, sb) = (probe_a.layer().stats(), probe_b.layer().stats());
            a.hist.add(&b.hist).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            a.commands += b.commands;
            a.accepted += b.accepted;
            a.events += b.events;
            a.failed += b.failed;
            a.first_error = a.first_error.or(b.first_error);
            a.seconds = seconds;
            a.groups = sa.appends + sb.appends;
            a.store_seconds = (sa.append_seconds + sb.append_seconds) / 2.0;
            // Every acknowledged event is in the one log, gapless.
            let check = open_pg(&url, false).await?;
            let head = grantflow_store::EventStore::head(&*check).await?.position;
            anyhow::ensure!(
                head == a.events,
                "two engines acknowledged {} events but the log's head is {head}",
                a.events
            );
            Ok((a, conflicts, per_engine))
        })
        .await?;
    let mut f = two_fields(&run, conflicts, per_engine);
    let eps = Some(run.events_per_s());
    f.insert(
        "x_pg_one_engine".into(),
        ratio(
            eps,
            report.get(&format!("pg-s{submitters}"), "events_per_s"),
        ),
    );
    report.line("pg-two-engines", f);
    Ok(())
}

fn two_fields(run: &Run, conflicts: u64, per_engine: [u64; 2]) -> Map<String, Value> {
    let mut f = run.fields();
    f.insert("conflicts_retried".into(), json!(conflicts));
    f.insert("accepted_a".into(), json!(per_engine[0]));
    f.insert("accepted_b".into(), json!(per_engine[1]));
    f
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
