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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use grantflow_bench::probe::Probe;
use grantflow_bench::workload::{cents, date, SplitMix64};
use grantflow_engine::Engine;
use grantflow_store_sled::SledStore;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::runs::{collect, fresh, grantflow_binary, histogram, ratio, spawn_submitters};
use crate::{round, Config, Report};

/// Funds the HTTP commands are spread over.
const FUNDS: usize = 64;
/// Issue 4's target for the p99 latency at 64 HTTP clients, in milliseconds.
const HTTP_P99_TARGET_MS: f64 = 5.0;
/// The actor of the finance token (and of the in-process baseline's commands).
const FINANCE: &str = "finance.k.sato";

fn skip(report: &mut Report, why: &str) {
    let mut f = Map::new();
    f.insert("skipped".into(), json!(why));
    report.line("http", f);
}

/// `--oha`, else `oha` on PATH, else ~/.cargo/bin/oha.
pub(crate) fn find_oha(config: &Config) -> Option<PathBuf> {
    if let Some(path) = &config.oha {
        return path.is_file().then(|| path.clone());
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("oha"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cargo/bin/oha"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

fn fund(i: usize) -> String {
    format!("HTTP-F{:02}", i % FUNDS)
}

/// The `i`-th contribution: distinct in fund, donor, amount and date (no actor, no id).
fn contribution(i: usize, rng: &mut SplitMix64) -> Value {
    const DONORS: &[&str] = &["JP-GOV", "TH-GOV", "SI-GOV", "MX-GOV", "GR-GOV", "KR-GOV"];
    json!({
        "command": "record-contribution",
        "fund": fund(i),
        "donor": DONORS[rng.below(DONORS.len())],
        "amount": cents(rng.range(1_000_000, 90_000_000) as i64),
        "received_on": date(15_706 + (i / FUNDS) as i64 % 4_000),
    })
}

/// A running `grantflow serve`.
struct Server {
    child: tokio::process::Child,
    addr: String,
}

impl Server {
    /// `grantflow --data DATA serve` on a free port of loopback.
    async fn grantflow(binary: &Path, data: &Path) -> anyhow::Result<Server> {
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("--data")
            .arg(data)
            .args(["serve", "--addr", "127.0.0.1:0"]);
        Server::start(command, "serve").await
    }

    /// The floor: this binary's `child --task http-floor` (see [`floor_server`]).
    async fn floor(root: &Path) -> anyhow::Result<Server> {
        let mut command = tokio::process::Command::new(std::env::current_exe()?);
        command
            .args(["child", "--task", "http-floor", "--path"])
            .arg(root);
        Server::start(command, "the floor server").await
    }

    /// Starts a server that prints `listening on http://ADDR` first.
    async fn start(mut command: tokio::process::Command, what: &str) -> anyhow::Result<Server> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let stdout = child.stdout.take().context("serve's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .with_context(|| format!("{what} printed nothing within 30 s"))??
            .with_context(|| format!("{what} exited before listening"))?;
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .with_context(|| format!("{what} said {line:?}"))?
            .to_string();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server { child, addr })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                anyhow::ensure!(status.success(), "the server exited with {status}");
            }
            Err(_) => {
                self.child.kill().await?;
                anyhow::bail!("the server did not stop within 30 s of SIGTERM");
            }
        }
        Ok(())
    }
}

fn add_token(binary: &Path, data: &Path, actor: &str, roles: &str) -> anyhow::Result<String> {
    let output = std::process::Command::new(binary)
        .arg("--data")
        .arg(data)
        .args(["--actor", actor, "token", "add", "--role", roles])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "token add failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .map(|l| l.trim().to_string())
        .filter(|t| !t.is_empty())
        .context("token add printed no token")
}

/// A keep-alive HTTP/1.1 connection (just enough for JSON requests).
struct Conn {
    addr: String,
    io: BufReader<TcpStream>,
}

impl Conn {
    async fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            addr: addr.to_string(),
            io: BufReader::new(stream),
        })
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let body = body.unwrap_or("");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let stream = self.io.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut line = String::new();
        self.io.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let (mut length, mut chunked) = (None, false);
        loop {
            line.clear();
            anyhow::ensure!(self.io.read_line(&mut line).await? > 0, "connection closed");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                if name == "content-length" {
                    length = value.parse::<usize>().ok();
                } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
            }
        }
        let mut bytes = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.io.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim(), 16)
                    .with_context(|| format!("bad chunk size {line:?}"))?;
                let mut chunk = vec![0u8; size + 2];
                self.io.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
                bytes.extend_from_slice(&chunk[..size]);
            }
        } else {
            bytes.resize(length.unwrap_or(0), 0);
            self.io.read_exact(&mut bytes).await?;
        }
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }
}

/// The log's head, read over HTTP.
async fn head(addr: &str, token: &str) -> anyhow::Result<u64> {
    let mut conn = Conn::open(addr).await?;
    let (status, value) = conn
        .request("GET", "/v1/events?from=1&limit=1", token, None)
        .await?;
    anyhow::ensure!(status == 200, "GET /v1/events answered {status}: {value}");
    value["head"].as_u64().context("no head in /v1/events")
}

/// Runs the HTTP scenarios.
pub(crate) async fn run(config: &Config, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    let Some(binary) = grantflow_binary(config) else {
        skip(
            report,
            "no grantflow binary beside this one (build it: cargo build --release -p grantflow); pass --grantflow PATH",
        );
        return Ok(());
    };
    let Some(oha) = find_oha(config) else {
        skip(
            report,
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
    let reader = add_token(&binary, &data, "integrator.bench", "integrator")?;
    let bodies = write_bodies(config, root, n)?;
    floor(root, &oha, &bodies, n, clients, None, report).await?;
    let server = Server::grantflow(&binary, &data).await?;
    let result = scenarios(
        config,
        server.child.id(),
        &oha,
        &server.addr,
        &finance,
        &reader,
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
        let probe = Probe::new(Arc::new(store), false);
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
        let setup = probe.stats();
        let started = Instant::now();
        let tasks = spawn_submitters(&engine, lanes, started + config.deadline());
        let mut run = collect(tasks).await?;
        run.seconds = started.elapsed().as_secs_f64();
        let stats = probe.stats();
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

/// The commands the load generator sends: `n` distinct contributions, one JSON body a line.
fn write_bodies(config: &Config, root: &Path, n: usize) -> anyhow::Result<PathBuf> {
    let bodies = root.join("http-bodies.jsonl");
    let mut rng = SplitMix64::new(config.seed ^ 0x4854_5450);
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&contribution(i, &mut rng).to_string());
        text.push('\n');
    }
    std::fs::write(&bodies, text)?;
    Ok(bodies)
}

/// One run of the load generator.
struct Load<'a> {
    oha: &'a Path,
    addr: &'a str,
    token: &'a str,
    bodies: &'a Path,
    n: usize,
    clients: usize,
    /// Requests per second offered, whatever the answers (an open loop, its latencies
    /// corrected for coordinated omission); `None`: each client sends its next request when
    /// the last is answered (a closed loop: as fast as the server answers).
    rate: Option<f64>,
}

/// Runs `oha` and returns its figures, with the CPU the server (`server_pid`) and oha used.
async fn drive(load: &Load<'_>, server_pid: Option<u32>) -> anyhow::Result<Map<String, Value>> {
    let url = format!("http://{}/v1/commands", load.addr);
    let server_cpu_before = server_pid.and_then(|pid| cpu_ticks(&format!("/proc/{pid}/stat")));
    let own_before = cpu_ticks("/proc/self/stat");
    let mut command = tokio::process::Command::new(load.oha);
    command
        .args(["-n", &load.n.to_string(), "-c", &load.clients.to_string()])
        .args(["-m", "POST"])
        .args(["-H", &format!("Authorization: Bearer {}", load.token)])
        .args(["-H", "Content-Type: application/json"])
        .arg("-Z")
        .arg(load.bodies)
        .args(["--no-tui", "--output-format", "json"]);
    let mut generator = format!(
        "{} -n {} -c {} -Z bodies",
        load.oha.display(),
        load.n,
        load.clients
    );
    if let Some(rate) = load.rate {
        let rate = format!("{}", rate.round().max(1.0));
        command.args(["-q", &rate, "--latency-correction"]);
        generator.push_str(&format!(" -q {rate} --latency-correction"));
    }
    let started = Instant::now();
    let output = command
        .arg(&url)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {}", load.oha.display()))?;
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = server_pid
        .and_then(|pid| cpu_ticks(&format!("/proc/{pid}/stat")))
        .zip(server_cpu_before)
        .map(|(after, before)| ticks_seconds(after.0 - before.0));
    // oha is the only child reaped meanwhile: the growth of this process's reaped
    // children's time is oha's.
    let oha_cpu = cpu_ticks("/proc/self/stat")
        .zip(own_before)
        .map(|(after, before)| ticks_seconds(after.1 - before.1));
    anyhow::ensure!(
        output.status.success(),
        "oha failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "oha's output is not JSON: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let statuses = &result["statusCodeDistribution"];
    let ok = statuses["200"].as_u64().unwrap_or(0);
    let seconds = result["summary"]["total"].as_f64().unwrap_or(wall);
    let ms = |key: &str| {
        result["latencyPercentiles"][key]
            .as_f64()
            .map(|s| round(s * 1000.0))
            .unwrap_or(Value::Null)
    };
    let mut f = Map::new();
    f.insert("requests".into(), json!(load.n));
    f.insert("clients".into(), json!(load.clients));
    if let Some(rate) = load.rate {
        f.insert("offered_per_s".into(), round(rate));
    }
    f.insert("status_200".into(), json!(ok));
    f.insert("statuses".into(), json!(statuses.to_string()));
    f.insert(
        "errors".into(),
        json!(result["errorDistribution"].to_string()),
    );
    f.insert("seconds".into(), round(seconds));
    f.insert(
        "commands_per_s".into(),
        round(ok as f64 / seconds.max(1e-9)),
    );
    f.insert("p50_ms".into(), ms("p50"));
    f.insert("p90_ms".into(), ms("p90"));
    f.insert("p99_ms".into(), ms("p99"));
    f.insert("p99_9_ms".into(), ms("p99.9"));
    f.insert(
        "max_ms".into(),
        result["summary"]["slowest"]
            .as_f64()
            .map(|s| round(s * 1000.0))
            .unwrap_or(Value::Null),
    );
    if let Some(cpu) = server_cpu {
        f.insert("server_cpu_s".into(), round(cpu));
        f.insert(
            "server_cpu_us_per_command".into(),
            round(cpu * 1e6 / (ok.max(1) as f64)),
        );
        f.insert("server_cores".into(), round(cpu / wall.max(1e-9)));
    }
    if let Some(cpu) = oha_cpu {
        f.insert("oha_cpu_s".into(), round(cpu));
        f.insert("oha_cores".into(), round(cpu / wall.max(1e-9)));
    }
    f.insert("generator".into(), json!(generator));
    anyhow::ensure!(
        ok == load.n as u64,
        "not every request was answered 200: {ok} of {}; statuses {statuses}, errors {}",
        load.n,
        result["errorDistribution"]
    );
    Ok(f)
}

/// `http-floor`: the same requests from the same load generator, answered by a server that
/// does nothing but HTTP (see [`floor_server`]).
/// `http-floor-rate` with a `rate`: the same at a fixed offered rate.
async fn floor(
    root: &Path,
    oha: &Path,
    bodies: &Path,
    n: usize,
    clients: usize,
    rate: Option<f64>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let server = Server::floor(root).await?;
    let load = Load {
        oha,
        addr: &server.addr,
        token: "floor",
        bodies,
        n,
        clients,
        rate,
    };
    let result = drive(&load, server.child.id()).await;
    let stopped = server.stop().await;
    let f = result?;
    stopped?;
    let name = if rate.is_some() {
        "http-floor-rate"
    } else {
        "http-floor"
    };
    report.line(name, f);
    Ok(())
}

/// The body of every answer of the floor server: the size and shape of grantflow's answer
/// to an accepted contribution.
const FLOOR_ANSWER: &str = r#"{"ok":true,"command_id":"01a22997-90f6-73a5-803c-d9b72e640c08","events":[{"position":1234567,"stream":"fund-HTTP-F00","version":12345,"type":"fund.contribution_recorded"}]}"#;

/// The `http-floor` child task: an axum server on a free port of loopback, on a runtime
/// built as `grantflow serve` builds its own and with the same allocator, whose one route
/// (`POST /v1/commands`) reads the body and answers a constant 200 JSON. What it costs is
/// what HTTP/1.1 on loopback costs on this machine: the floor under grantflow's HTTP figures.
/// Prints `listening on http://ADDR`; stops on SIGTERM.
pub(crate) fn floor_server() -> anyhow::Result<()> {
    use axum::body::Bytes;
    use axum::routing::post;
    use tokio::signal::unix::{signal, SignalKind};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(grantflow_engine::BLOCKING_THREADS_MAX)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut terminate = signal(SignalKind::terminate())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on http://{}", listener.local_addr()?);
        let app = axum::Router::new().route(
            "/v1/commands",
            post(|body: Bytes| async move {
                std::hint::black_box(body);
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    FLOOR_ANSWER,
                )
            }),
        );
        // TCP_NODELAY on every connection, as `grantflow serve` sets it.
        let listener = axum::serve::ListenerExt::tap_io(listener, |connection| {
            let _ = connection.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                terminate.recv().await;
            })
            .await?;
        Ok(())
    })
}

#[allow(clippy::too_many_arguments)]
async fn scenarios(
    config: &Config,
    server_pid: Option<u32>,
    oha: &Path,
    addr: &str,
    finance: &str,
    reader: &str,
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

    sse(config, server_pid, addr, finance, reader, report).await
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

/// From `/proc/<pid>/stat`: the process's own CPU time (user + system) and that of its
/// reaped children, in clock ticks; `None` where /proc is not there.
fn cpu_ticks(path: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    // The fields after the command name (which may hold spaces), from field 3 (state) on.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)? + field(15)?, field(16)? + field(17)?))
}

/// Clock ticks in seconds (Linux reports /proc times in USER_HZ, 100 per second).
fn ticks_seconds(ticks: u64) -> f64 {
    ticks as f64 / 100.0
}

/// Reads the event stream from `from` until `count` events arrived; each id with the time it
/// was read (µs since `base`). Says `ready` once the response headers arrived.
async fn subscriber(
    addr: String,
    token: String,
    from: u64,
    count: usize,
    base: Instant,
    ready: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<Vec<(u64, u64)>> {
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let mut io = BufReader::new(stream);
    let request = format!(
        "GET /v1/events/stream?from={from} HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    io.get_mut().write_all(request.as_bytes()).await?;
    let mut line = String::new();
    io.read_line(&mut line).await?;
    anyhow::ensure!(line.contains(" 200"), "event stream answered {line:?}");
    loop {
        line.clear();
        anyhow::ensure!(io.read_line(&mut line).await? > 0, "stream closed");
        if line.trim_end().is_empty() {
            break;
        }
    }
    let _ = ready.send(()).await;
    drop(ready);
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        line.clear();
        let read = tokio::time::timeout(Duration::from_secs(60), io.read_line(&mut line))
            .await
            .context("no event for 60 s")??;
        anyhow::ensure!(read > 0, "stream closed after {} events", seen.len());
        // Chunked framing puts size lines between events; the fields are whole lines.
        if let Some(id) = line.trim_end().strip_prefix("id:") {
            let at = base.elapsed().as_micros() as u64;
            if let Ok(id) = id.trim().parse::<u64>() {
                seen.push((id, at));
            }
        }
    }
    Ok(seen)
}

async fn sse(
    config: &Config,
    server_pid: Option<u32>,
    addr: &str,
    finance: &str,
    reader: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let m = config.sse_commands.max(1);
    let subscribers = config.sse_subscribers;
    let from = head(addr, reader).await? + 1;
    let base = Instant::now();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(subscribers);
    let mut tasks = Vec::new();
    for _ in 0..subscribers {
        tasks.push(tokio::spawn(subscriber(
            addr.to_string(),
            reader.to_string(),
            from,
            m,
            base,
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    let mut connected = 0;
    while connected < subscribers {
        match tokio::time::timeout(Duration::from_secs(30), ready_rx.recv()).await {
            Ok(Some(())) => connected += 1,
            _ => break,
        }
    }
    anyhow::ensure!(
        connected == subscribers,
        "only {connected} of {subscribers} subscribers connected"
    );
    // Let the streams finish their catch-up (nothing to catch up: they start at the head).
    tokio::time::sleep(Duration::from_millis(200)).await;

    // One command at a time; the time its 200 was read, by position.
    let stat = server_pid.map(|pid| format!("/proc/{pid}/stat"));
    let cpu_before = stat.as_deref().and_then(cpu_ticks);
    let mut conn = Conn::open(addr).await?;
    let mut acked: HashMap<u64, (u64, u64)> = HashMap::with_capacity(m);
    let mut rng = SplitMix64::new(config.seed ^ 0x0053_5345);
    let mut command_hist = histogram();
    for i in 0..m {
        let mut body = contribution(i, &mut rng);
        body["command_id"] = json!(format!("sse-{}-{i}", config.seed));
        let sent = Instant::now();
        let sent_at = base.elapsed().as_micros() as u64;
        let (status, answer) = conn
            .request("POST", "/v1/commands", finance, Some(&body.to_string()))
            .await?;
        let at = base.elapsed().as_micros() as u64;
        crate::runs::record(&mut command_hist, sent);
        anyhow::ensure!(status == 200, "command answered {status}: {answer}");
        let position = answer["events"][0]["position"]
            .as_u64()
            .with_context(|| format!("no position in {answer}"))?;
        acked.insert(position, (sent_at, at));
    }
    let mut hist = histogram();
    let mut from_send = histogram();
    let (mut deliveries, mut before_ack, mut failed) = (0u64, 0u64, 0usize);
    let mut seen_all = Vec::with_capacity(tasks.len());
    for task in tasks {
        seen_all.push(task.await?);
    }
    // The server's CPU from the first command to the last delivery: the commands' and the
    // fan-out's.
    let server_cpu = stat
        .as_deref()
        .and_then(cpu_ticks)
        .zip(cpu_before)
        .map(|(after, before)| ticks_seconds(after.0 - before.0));
    for seen in seen_all {
        match seen {
            Ok(seen) => {
                for (id, at) in seen {
                    if let Some(&(sent_at, ack)) = acked.get(&id) {
                        deliveries += 1;
                        from_send.saturating_record(at.saturating_sub(sent_at).max(1));
                        if at < ack {
                            before_ack += 1;
                        }
                        hist.saturating_record(at.saturating_sub(ack).max(1));
                    }
                }
            }
            Err(error) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("grantflow-bench: an SSE subscriber failed: {error:#}");
                }
            }
        }
    }
    let ms = |q: f64| round(hist.value_at_quantile(q) as f64 / 1000.0);
    let mut f = Map::new();
    f.insert("subscribers".into(), json!(subscribers));
    f.insert("commands".into(), json!(m));
    f.insert("deliveries".into(), json!(deliveries));
    f.insert("expected".into(), json!((m * subscribers) as u64));
    f.insert("subscribers_failed".into(), json!(failed));
    f.insert("before_ack".into(), json!(before_ack));
    f.insert("p50_ms".into(), ms(0.5));
    f.insert("p99_ms".into(), ms(0.99));
    f.insert("max_ms".into(), round(hist.max() as f64 / 1000.0));
    let sms = |q: f64| round(from_send.value_at_quantile(q) as f64 / 1000.0);
    f.insert("from_send_p50_ms".into(), sms(0.5));
    f.insert("from_send_p99_ms".into(), sms(0.99));
    f.insert(
        "from_send_max_ms".into(),
        round(from_send.max() as f64 / 1000.0),
    );
    f.insert(
        "command_p50_ms".into(),
        round(command_hist.value_at_quantile(0.5) as f64 / 1000.0),
    );
    if let Some(cpu) = server_cpu {
        f.insert("server_cpu_s".into(), round(cpu));
        f.insert(
            "server_cpu_us_per_delivery".into(),
            round(cpu * 1e6 / (deliveries.max(1) as f64)),
        );
    }
    report.line("http-sse", f);
    anyhow::ensure!(
        failed == 0 && deliveries == (m * subscribers) as u64,
        "SSE: {deliveries} of {} deliveries, {failed} subscribers failed",
        m * subscribers
    );
    Ok(())
}
