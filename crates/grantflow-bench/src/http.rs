//! The HTTP scenarios (issue 4, item 4), against the real `grantflow serve` binary on
//! loopback:
//!
//! - `http-oha`: commands/s and p50/p99 with 64 concurrent clients, driven by the `oha` load
//!   generator (a separate process). Every request is a distinct `record-contribution` (the
//!   bodies vary in fund, donor, amount and date, and carry no `command_id`, so the server
//!   gives each its own: `oha -Z` draws bodies at random, with repetition, so client ids
//!   would be replayed, not appended). Afterwards the log's head is checked: every 200
//!   appended exactly one event.
//! - `http-floor`: the baseline that bounds the others: the same requests from the same load
//!   generator, answered by a server that does nothing but HTTP (this binary's
//!   `child --task http-floor`: axum on the same runtime and allocator, reading each body and
//!   answering a constant 200). It runs first, before grantflow's server starts;
//!   `http-floor-rate` runs it again at `http-oha-rate`'s offered rate, after grantflow's
//!   server stopped.
//! - `http-oha-rate`: grantflow again, at a fixed offered rate (`--http-rate`, default half
//!   of what `http-oha` reached) instead of as fast as it answers: oha's `-q` with
//!   `--latency-correction`, so a late answer also counts against the requests queued
//!   behind it (no coordinated omission). The latency at a load the server can carry, where
//!   `http-oha` gives the latency at saturation (64 requests always outstanding: its mean is
//!   64 / throughput).
//! - `http-inprocess`: the baseline in the same run: the engine alone (same sled store kind,
//!   same commands with the actor in the body), 64 submitter tasks.
//! - `http-sse`: delivery latency to 100 subscribers (raw TCP clients in this process):
//!   commands are sent one after another; for each, the time from reading its 200 to each
//!   subscriber's reading of its `id:` line.
//!
//! This module runs them in order; the server under test and the client are in
//! `http_target.rs`, the driving of oha in `http_load.rs`, the floor in `http_floor.rs`, the
//! SSE scenario in `http_sse.rs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use grantflow_bench::workload::SplitMix64;
use grantflow_engine::Engine;
use grantflow_store_sled::SledStore;
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::env::{find_oha, fresh, grantflow_binary};
use crate::http_floor::floor;
use crate::http_load::{drive, write_bodies, Load};
use crate::http_sse::sse;
use crate::http_target::FUNDS;
use crate::http_target::{add_token, contribution, fund, head, Conn, Server, FINANCE};
use crate::measure::ratio;
use crate::report::Report;
use crate::submit::{collect, spawn_submitters};
/// Issue 4's target for the p99 latency at 64 HTTP clients, in milliseconds.
const HTTP_P99_TARGET_MS: f64 = 5.0;

/// Runs the HTTP scenarios.
pub(crate) async fn run(config: &Config, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    let Some(binary) = grantflow_binary(config) else {
        report.skipped("http",
            "no grantflow binary beside this one (build it: cargo build --release -p grantflow); pass --grantflow PATH",
        );
        return Ok(());
    };
    let Some(oha) = find_oha(config) else {
        report.skipped(
            "http",
            "no oha load generator on PATH or in ~/.cargo/bin (cargo install oha); pass --oha PATH",
        );
        return Ok(());
    };
    let n = config.http_commands.max(1);
    let clients = config.http_clients;

    // The server, its tokens and its funds.
    let data = fresh(root, "http-data")?;
    std::fs::create_dir_all(&data)?;
    let finance = add_token(&binary, &data, FINANCE, "finance")?;
    // One reader token per 16 event streams: the server holds at most
    // STREAMS_PER_TOKEN_MAX (16) open streams per token.
    let readers = (0..config
        .sse_subscribers
        .div_ceil(SSE_STREAMS_PER_TOKEN)
        .max(1))
        .map(|i| {
            add_token(
                &binary,
                &data,
                &format!("integrator.bench.{i}"),
                "integrator",
            )
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let bodies = write_bodies(config, root, n)?;
    floor(root, &oha, &bodies, n, clients, None, report).await?;
    let server = Server::grantflow(&binary, &data).await?;
    let result = scenarios(
        config,
        server.child.id(),
        &oha,
        &server.addr,
        &finance,
        &readers,
        &bodies,
        n,
        clients,
        report,
    )
    .await;
    let stopped = server.stop().await;
    result?;
    stopped?;
    // The floor again, at the rate grantflow was offered.
    if let Some(rate) = report.get("http-oha-rate", "offered_per_s") {
        floor(root, &oha, &bodies, n, clients, Some(rate), report).await?;
    }
    let _ = std::fs::remove_file(&bodies);

    // The in-process baseline: the same commands, the engine alone, as many submitters.
    let run = {
        let dir = fresh(root, "http-inprocess")?;
        let store = tokio::task::spawn_blocking(move || SledStore::open(&dir)).await??;
        let probe = grantflow_bench::probe::wrap(Arc::new(store), false);
        let engine = Arc::new(Engine::open(probe.clone()).await?);
        let mut rng = SplitMix64::new(config.seed ^ 0x4854_5450);
        for i in 0..FUNDS {
            let body = json!({"command": "register-fund", "fund": fund(i), "name": format!("HTTP fund {i}"), "currency": "USD", "actor": FINANCE});
            engine
                .submit(grantflow_engine::Submission::cli(body, None))
                .await?;
        }
        let mut lanes: Vec<Vec<Value>> = vec![Vec::new(); clients];
        for i in 0..n {
            let mut body = contribution(i, &mut rng);
            body["actor"] = json!(FINANCE);
            lanes[i % clients].push(body);
        }
        let setup = probe.layer().stats();
        let started = Instant::now();
        let tasks = spawn_submitters(&engine, lanes, started + config.deadline());
        let mut run = collect(tasks).await?;
        run.seconds = started.elapsed().as_secs_f64();
        let stats = probe.layer().stats();
        engine.close().await?;
        run.groups = stats.appends - setup.appends;
        run.store_seconds = stats.append_seconds - setup.append_seconds;
        run
    };
    let mut f = run.fields();
    f.insert("submitters".into(), json!(clients));
    report.line("http-inprocess", f);
    // Each ratio: (line, field) over (base line, field); a base line of "" is the target.
    let lines: [(&str, &[Ratio]); 2] = [
        (
            "http-vs-inprocess",
            &[
                (
                    "x_commands_per_s",
                    "http-oha",
                    "http-inprocess",
                    "commands_per_s",
                ),
                ("x_p50", "http-oha", "http-inprocess", "p50_ms"),
                ("x_p99", "http-oha", "http-inprocess", "p99_ms"),
                ("p99_vs_target", "http-oha", "", "p99_ms"),
                ("p99_at_rate_vs_target", "http-oha-rate", "", "p99_ms"),
            ],
        ),
        // Against the floor: what grantflow costs on top of HTTP itself.
        (
            "http-vs-floor",
            &[
                (
                    "x_commands_per_s",
                    "http-oha",
                    "http-floor",
                    "commands_per_s",
                ),
                ("x_p50", "http-oha", "http-floor", "p50_ms"),
                ("x_p99", "http-oha", "http-floor", "p99_ms"),
                (
                    "x_server_cpu_per_command",
                    "http-oha",
                    "http-floor",
                    "server_cpu_us_per_command",
                ),
                (
                    "x_p99_at_rate",
                    "http-oha-rate",
                    "http-floor-rate",
                    "p99_ms",
                ),
                ("floor_p99_vs_target", "http-floor", "", "p99_ms"),
                (
                    "floor_p99_at_rate_vs_target",
                    "http-floor-rate",
                    "",
                    "p99_ms",
                ),
            ],
        ),
    ];
    for (name, rows) in lines {
        let mut f = Map::new();
        for &(key, line, base, field) in rows {
            let base = match base {
                "" => Some(HTTP_P99_TARGET_MS),
                base => report.get(base, field),
            };
            f.insert(key.into(), ratio(report.get(line, field), base));
        }
        if name == "http-vs-inprocess" {
            f.insert("p99_target_ms".into(), json!(HTTP_P99_TARGET_MS));
        }
        report.line(name, f);
    }
    Ok(())
}

/// A ratio of the comparison lines: its key, the line, the base line (`""`: the p99
/// target) and the field of both.
type Ratio = (&'static str, &'static str, &'static str, &'static str);

/// The event streams one token may hold open on the server (its `STREAMS_PER_TOKEN_MAX`).
const SSE_STREAMS_PER_TOKEN: usize = 16;

#[allow(clippy::too_many_arguments)]
async fn scenarios(
    config: &Config,
    server_pid: Option<u32>,
    oha: &Path,
    addr: &str,
    finance: &str,
    readers: &[String],
    bodies: &Path,
    n: usize,
    clients: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut conn = Conn::open(addr).await?;
    for i in 0..FUNDS {
        let body = json!({"command": "register-fund", "fund": fund(i), "name": format!("HTTP fund {i}"), "currency": "USD"});
        let (status, answer) = conn
            .request("POST", "/v1/commands", finance, Some(&body.to_string()))
            .await?;
        anyhow::ensure!(status == 200, "register-fund answered {status}: {answer}");
    }
    drop(conn);

    // As fast as the server answers (a closed loop), then at a fixed offered rate.
    let mut load = Load {
        oha,
        addr,
        token: finance,
        bodies,
        n,
        clients,
        rate: None,
    };
    let reader = readers.first().map(String::as_str).unwrap_or_default();
    let closed = appended(&load, server_pid, addr, reader).await?;
    let rate = config.http_rate.or_else(|| {
        closed
            .get("commands_per_s")
            .and_then(Value::as_f64)
            .map(|cps| cps * HTTP_RATE_SHARE)
    });
    report.line("http-oha", closed);
    if let Some(rate) = rate.filter(|rate| *rate >= 1.0) {
        load.rate = Some(rate);
        let open = appended(&load, server_pid, addr, reader).await?;
        report.line("http-oha-rate", open);
    }

    sse(config, server_pid, addr, finance, readers, report).await
}

/// The offered rate of the `http-oha-rate` run, as a share of the closed loop's commands/s
/// (unless `--http-rate` says).
const HTTP_RATE_SHARE: f64 = 0.5;

/// [`drive`] against grantflow, checking that every 200 appended exactly one event.
async fn appended(
    load: &Load<'_>,
    server_pid: Option<u32>,
    addr: &str,
    reader: &str,
) -> anyhow::Result<Map<String, Value>> {
    let before = head(addr, reader).await?;
    let mut f = drive(load, server_pid).await?;
    let after = head(addr, reader).await?;
    f.insert("events_appended".into(), json!(after - before));
    anyhow::ensure!(
        after - before == load.n as u64,
        "{} commands answered 200 but the log grew by {} events",
        load.n,
        after - before
    );
    Ok(f)
}
