//! `grantflow-bench`: whole-workload benchmarks of grantflow against an SQLite peer and the
//! disk's limit, on the same generated workload, in the same run. See BENCHMARKS.md.
//!
//! Every scenario prints one line `scenario NAME: key=value ...` (absolute figures, then
//! ratios to the baselines); `--json` prints one JSON document instead (lines go to stderr).

mod baseline_runs;
mod child;
mod config;
mod console;
mod engine_runs;
mod env;
mod exec_runs;
mod history;
mod http;
mod http_floor;
mod http_load;
mod http_sse;
mod http_target;
mod large_log;
mod measure;
mod pg;
mod relay;
mod report;
mod submit;
mod throughput;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::child::ChildArgs;
use crate::config::Config;
use crate::report::Report;

/// Whole-workload benchmarks of grantflow, an SQLite event store (the peer) and a plain
/// file with one fdatasync per group (the limit).
#[derive(Parser, Debug)]
#[command(name = "grantflow-bench", version)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// The full benchmark (the default).
    Run,
    /// A tiny workload through every scenario, for CI: checks that it all still works.
    Smoke,
    /// Draws the history chart (`--history-svg FILE`) from the `scenario history-N:` lines of
    /// earlier runs' output (text or `--json`), e.g. one run per size.
    Chart {
        /// Files holding earlier runs' output.
        #[arg(long = "from", required = true)]
        from: Vec<PathBuf>,
    },
    /// Internal: one measurement in a child process (for peak RSS).
    #[command(hide = true)]
    Child(ChildArgs),
}

#[derive(Args, Debug, Clone)]
struct Opts {
    /// Events in the large log (replay, open, RSS, bytes on disk). Default 1,000,000; smoke 3,000.
    #[arg(long, global = true)]
    events: Option<u64>,
    /// Commands per throughput run. Default 100,000; smoke 600.
    #[arg(long, global = true)]
    commands: Option<usize>,
    /// Seed of the workload generator.
    #[arg(long, global = true, default_value_t = 42)]
    seed: u64,
    /// Which scenarios: all, or a comma-separated list of engine, exec, sqlite, file, replay,
    /// rss, pg, pg-servers, http, console, relay, history (history runs only when named: it
    /// builds stores of up to ten million events).
    #[arg(long, global = true, default_value = "all")]
    scenario: String,
    /// Working directory for the stores (default: a fresh temporary directory, removed after).
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    /// Print one JSON document on stdout (the scenario lines go to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Stop submitting in a throughput run after this many seconds. Default 20; smoke 5.
    #[arg(long, global = true)]
    max_seconds: Option<f64>,
    /// Independent lanes (funds) of the workload; must be at least the largest submitter count.
    #[arg(long, global = true, default_value_t = 256)]
    lanes: u32,
    /// Submitter counts of the throughput scenarios (comma-separated).
    #[arg(long, global = true, value_delimiter = ',', default_values_t = vec![1usize, 16, 256])]
    submitters: Vec<usize>,
    /// Run each throughput scenario this many times and report the median run.
    #[arg(long, global = true, default_value_t = 1)]
    repeat: usize,
    /// The `grantflow` binary for the exec scenario (default: next to this binary, built with
    /// `cargo build --release` when missing).
    #[arg(long, global = true)]
    grantflow: Option<PathBuf>,
    /// PostgreSQL for the pg scenarios (each run in a fresh schema, dropped after); without
    /// it they are skipped.
    #[arg(long, global = true, env = "GRANTFLOW_TEST_POSTGRES")]
    postgres: Option<String>,
    /// Events in the PostgreSQL log (replay, open, bytes on disk). Default: --events.
    #[arg(long, global = true)]
    pg_events: Option<u64>,
    /// Server counts of the pg-servers runs (comma-separated): N engines, each with its own
    /// PgStore (as N processes), writing one log at once; each count's throughput is compared
    /// with that of the first count of the same run.
    #[arg(long, global = true, value_delimiter = ',', default_values_t = vec![1usize, 2, 4])]
    pg_servers: Vec<usize>,
    /// Submitters per server in the pg-servers runs.
    #[arg(long, global = true, default_value_t = 128)]
    pg_server_submitters: usize,
    /// The `oha` load generator for the http scenarios (default: `oha` on PATH or in
    /// ~/.cargo/bin); without it they are skipped.
    #[arg(long, global = true)]
    oha: Option<PathBuf>,
    /// Commands sent through HTTP by the load generator. Default 50,000; smoke 300.
    #[arg(long, global = true)]
    http_commands: Option<usize>,
    /// Concurrent HTTP clients (and in-process submitters of the baseline).
    #[arg(long, global = true, default_value_t = 64)]
    http_clients: usize,
    /// The offered rate (commands/s) of the `http-oha-rate` run. Default: half of what the
    /// closed-loop run (`http-oha`) reached.
    #[arg(long, global = true)]
    http_rate: Option<f64>,
    /// The offered rate (commands/s) of the `exec-stdin-rate` run. Default: half of what the
    /// full-speed run (`exec-stdin`) reached.
    #[arg(long, global = true)]
    exec_rate: Option<f64>,
    /// SSE subscribers.
    #[arg(long, global = true, default_value_t = 100)]
    sse_subscribers: usize,
    /// Commands whose delivery to every subscriber is timed. Default 1,000; smoke 20.
    #[arg(long, global = true)]
    sse_commands: Option<usize>,
    /// Requests per timed console page (and per baseline). Default 1,000; smoke 20.
    #[arg(long, global = true)]
    console_requests: Option<usize>,
    /// The NATS server (JetStream on) of the relay scenarios; without it they are skipped.
    #[arg(long, global = true, env = "GRANTFLOW_TEST_NATS")]
    nats: Option<String>,
    /// Events in the store the relay publishes from the start. Default 100,000; smoke 2,000.
    #[arg(long, global = true)]
    relay_events: Option<u64>,
    /// Commands whose relay lag is timed. Default 1,000; smoke 20.
    #[arg(long, global = true)]
    relay_lag_commands: Option<usize>,
    /// Log sizes of the history scenario (comma-separated). Default 1000000,2500000,10000000;
    /// smoke 2000,5000.
    #[arg(long, global = true, value_delimiter = ',')]
    history_sizes: Option<Vec<u64>>,
    /// Grants asked about per size in the history scenario. Default 300; smoke 10.
    #[arg(long, global = true)]
    history_queries: Option<usize>,
    /// Draw the history scenario's chart (p99 against log size) as SVG into this file.
    #[arg(long, global = true)]
    history_svg: Option<PathBuf>,
}

fn main() {
    // The same allocator, configured the same way, as the `grantflow` binary, for the engine
    // and the baselines alike.
    grantflow_alloc::configure();
    let cli = Cli::parse();
    let result = match &cli.mode {
        Some(Mode::Child(args)) => child::run_child(&cli_config(&cli.opts, false), args),
        Some(Mode::Smoke) => run(&cli.opts, true),
        Some(Mode::Chart { from }) => history::chart(from, cli.opts.history_svg.as_deref()),
        Some(Mode::Run) | None => run(&cli.opts, false),
    };
    if let Err(error) = result {
        eprintln!("grantflow-bench: {error:#}");
        std::process::exit(2);
    }
}

fn cli_config(opts: &Opts, smoke: bool) -> Config {
    let events = opts.events.unwrap_or(if smoke { 3_000 } else { 1_000_000 });
    Config {
        smoke,
        events,
        commands: opts.commands.unwrap_or(if smoke { 600 } else { 100_000 }),
        seed: opts.seed,
        lanes: opts.lanes,
        max_seconds: opts.max_seconds.unwrap_or(if smoke { 5.0 } else { 20.0 }),
        repeat: opts.repeat.max(1),
        scenarios: opts
            .scenario
            .split(',')
            .map(|s| s.trim().to_string())
            .collect(),
        json: opts.json,
        grantflow: opts.grantflow.clone(),
        submitters: opts.submitters.clone(),
        postgres: opts.postgres.clone().filter(|url| !url.trim().is_empty()),
        pg_events: opts.pg_events.unwrap_or(events),
        pg_servers: opts.pg_servers.clone(),
        pg_server_submitters: opts.pg_server_submitters.max(1),
        oha: opts.oha.clone(),
        http_commands: opts
            .http_commands
            .unwrap_or(if smoke { 300 } else { 50_000 }),
        http_clients: opts.http_clients.max(1),
        http_rate: opts.http_rate.filter(|rate| *rate > 0.0),
        exec_rate: opts.exec_rate.filter(|rate| *rate > 0.0),
        sse_subscribers: opts.sse_subscribers.max(1),
        sse_commands: opts.sse_commands.unwrap_or(if smoke { 20 } else { 1_000 }),
        console_requests: opts
            .console_requests
            .unwrap_or(if smoke { 20 } else { 1_000 })
            .max(1),
        nats: opts.nats.clone().filter(|url| !url.trim().is_empty()),
        relay_events: opts
            .relay_events
            .unwrap_or(if smoke { 2_000 } else { 100_000 })
            .max(1),
        relay_lag_commands: opts
            .relay_lag_commands
            .unwrap_or(if smoke { 20 } else { 1_000 })
            .max(1),
        history_sizes: opts.history_sizes.clone().unwrap_or_else(|| {
            if smoke {
                vec![2_000, 5_000]
            } else {
                vec![1_000_000, 2_500_000, 10_000_000]
            }
        }),
        history_queries: opts
            .history_queries
            .unwrap_or(if smoke { 10 } else { 300 })
            .max(1),
        history_svg: opts.history_svg.clone(),
        keep_stores: opts.dir.is_some(),
    }
}

fn run(opts: &Opts, smoke: bool) -> anyhow::Result<()> {
    let config = cli_config(opts, smoke);
    const KNOWN: &[&str] = &[
        "all",
        "engine",
        "exec",
        "sqlite",
        "file",
        "replay",
        "rss",
        "pg",
        "pg-servers",
        "http",
        "console",
        "relay",
        "history",
    ];
    for scenario in &config.scenarios {
        anyhow::ensure!(
            KNOWN.contains(&scenario.as_str()),
            "unknown scenario {scenario:?}; known: {}",
            KNOWN.join(", ")
        );
    }
    anyhow::ensure!(
        !config.submitters.is_empty() && config.submitters.iter().all(|&s| s >= 1),
        "--submitters takes counts of at least 1, e.g. 1,16,256"
    );
    anyhow::ensure!(
        !config.pg_servers.is_empty() && config.pg_servers.iter().all(|&n| (1..=16).contains(&n)),
        "--pg-servers takes counts from 1 to 16, e.g. 1,2,4"
    );
    let most = config.submitters.iter().copied().max().unwrap_or(1);
    anyhow::ensure!(
        config.lanes as usize >= most,
        "--lanes ({}) must be at least the largest submitter count ({most})",
        config.lanes
    );
    let temp;
    let root: &Path = match &opts.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("grantflow-bench-")
                .tempdir()?;
            temp.path()
        }
    };
    let mut report = Report::new(config.json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(grantflow_engine::BLOCKING_THREADS_MAX)
        .enable_all()
        .build()?;
    if (config.wants("pg") || config.wants("pg-servers")) && config.postgres.is_none() {
        pg::skip_line(&mut report);
    }
    runtime.block_on(throughput::throughput(&config, root, &mut report))?;
    // `pg` runs the servers among its throughput scenarios; alone, they need no reference.
    if let (false, true, Some(url)) = (
        config.wants("pg"),
        config.wants("pg-servers"),
        &config.postgres,
    ) {
        runtime.block_on(pg::servers(&config, &pg::Pg::new(url), &mut report))?;
    }
    if config.wants("replay") || config.wants("rss") {
        large_log::large_log(&config, root, &mut report)?;
    }
    if let (true, Some(url)) = (config.wants("pg"), &config.postgres) {
        pg::large_log(&config, &pg::Pg::new(url), root, &runtime, &mut report)?;
    }
    if config.wants("http") {
        runtime.block_on(http::run(&config, root, &mut report))?;
    }
    if config.wants("console") {
        runtime.block_on(console::run(&config, root, &mut report))?;
    }
    if config.wants("relay") {
        runtime.block_on(relay::run(&config, root, &mut report))?;
    }
    if config.names("history") {
        runtime.block_on(history::run(&config, root, &mut report))?;
    }
    if config.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json(&config))?
        );
    }
    Ok(())
}
