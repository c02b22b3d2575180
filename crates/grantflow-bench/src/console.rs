//! The console scenarios: the web console's pages served by the real `grantflow serve`, timed
//! by the server itself (its `Server-Timing: app;dur=` header: from routing to the answer's
//! head, the page rendered whole) and by the client (the round trip on a keep-alive loopback
//! connection), one request at a time.
//!
//! - `console-demo-grant`: `/grants/MEX-2012-01` of the demo's store (the worked example
//!   and the secretariat's year), beside its baseline in the same run: the same grant's JSON
//!   (`GET /v1/grants/MEX-2012-01`) from the same server.
//! - `console-demo-portfolio`: `/` of the demo's store.
//! - `console-large-portfolio`: `/` of a store of `--events` events (the generated workload:
//!   256 funds and their grants), beside `GET /healthz` from the same server (what a request
//!   costs with no page at all).
//! - `console-large-grant`: the page of that store's first grant, beside its JSON.
//!
//! Every page is fetched signed in (a session cookie of a token with every role, so that the
//! pages carry every action form) and must answer 200.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::env::{fresh, grantflow_binary};
use crate::http_target::{add_token, Answer, Conn, Server};
use crate::measure::{histogram, ratio};
use crate::report::{round, Report};

/// The roles of the token the pages are fetched with.
const EVERY_ROLE: &str = "secretariat,approver,finance,auditor,admin";

/// Runs the console scenarios.
pub(crate) async fn run(config: &Config, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    let Some(binary) = grantflow_binary(config) else {
        report.skipped("console",
            "no grantflow binary beside this one (build it: cargo build --release -p grantflow); pass --grantflow PATH",
        );
        return Ok(());
    };
    let requests = config.console_requests;

    // The demo's store.
    let demo = fresh(root, "console-demo")?;
    let output = std::process::Command::new(&binary)
        .arg("--data")
        .arg(&demo)
        .arg("demo")
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "grantflow demo failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let grant = "/grants/MEX-2012-01";
    let pages = serve_and_time(
        &binary,
        &demo,
        requests,
        &[
            ("console-demo-grant", grant, Some("/v1/grants/MEX-2012-01")),
            ("console-demo-portfolio", "/", Some("/healthz")),
        ],
    )
    .await?;
    for (name, fields) in pages {
        report.line(&name, fields);
    }

    // A large store: the generated workload through the engine, in a child process.
    let large = fresh(root, "console-large")?;
    let records = root.join("console-large.records");
    let exe = std::env::current_exe()?;
    let output = std::process::Command::new(exe)
        .args(["child", "--task", "engine-append", "--path"])
        .arg(&large)
        .arg("--input")
        .arg(&records)
        .args(["--events", &config.events.to_string()])
        .args(["--seed", &config.seed.to_string()])
        .args(["--lanes", &config.lanes.to_string()])
        .output()?;
    let _ = std::fs::remove_file(&records);
    anyhow::ensure!(
        output.status.success(),
        "appending the large store failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let first_grant = first_grant(&binary, &large)?;
    let grant_page = format!("/grants/{first_grant}");
    let grant_json = format!("/v1/grants/{first_grant}");
    let pages = serve_and_time(
        &binary,
        &large,
        requests,
        &[
            ("console-large-portfolio", "/", Some("/healthz")),
            ("console-large-grant", &grant_page, Some(&grant_json)),
        ],
    )
    .await?;
    for (name, mut fields) in pages {
        fields.insert("events".into(), json!(config.events));
        report.line(&name, fields);
    }
    Ok(())
}

/// The id of the first grant of the store at `data` (`grant list --json`).
fn first_grant(binary: &Path, data: &Path) -> anyhow::Result<String> {
    let output = std::process::Command::new(binary)
        .arg("--data")
        .arg(data)
        .args(["grant", "list", "--json"])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "grant list failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let grants: Value = serde_json::from_slice(&output.stdout).context("grant list --json")?;
    grants
        .as_array()
        .and_then(|grants| grants.first())
        .and_then(|grant| grant["grant"].as_str().or(grant["id"].as_str()))
        .map(str::to_string)
        .context("the large store has no grant")
}

/// Starts `grantflow serve` on `data`, signs in, and times each page (and its baseline);
/// the scenario lines' fields, in order.
async fn serve_and_time(
    binary: &Path,
    data: &Path,
    requests: usize,
    pages: &[(&str, &str, Option<&str>)],
) -> anyhow::Result<Vec<(String, Map<String, Value>)>> {
    let token = add_token(binary, data, "bench.console", EVERY_ROLE)?;
    let server = Server::grantflow(binary, data).await?;
    let result = async {
        let mut conn = Conn::open(&server.addr).await?;
        let cookie = sign_in(&mut conn, &token).await?;
        let mut lines = Vec::new();
        for (name, path, baseline) in pages {
            let page = time(&mut conn, path, &[("Cookie", cookie.clone())], requests).await?;
            let mut f = page.fields();
            if let Some(baseline) = baseline {
                let auth = [("Authorization", format!("Bearer {token}"))];
                let base = time(&mut conn, baseline, &auth, requests).await?;
                f.insert("baseline".into(), json!(baseline));
                f.insert("baseline_server_p50_ms".into(), round(base.server_ms(0.5)));
                f.insert("baseline_server_p99_ms".into(), round(base.server_ms(0.99)));
                f.insert(
                    "x_baseline_p50".into(),
                    ratio(Some(page.server_ms(0.5)), Some(base.server_ms(0.5))),
                );
            }
            f.insert("path".into(), json!(path));
            lines.push((name.to_string(), f));
        }
        anyhow::Ok(lines)
    }
    .await;
    let stopped = server.stop().await;
    let lines = result?;
    stopped?;
    Ok(lines)
}

/// Signs in with `token` (the console's form); the session cookie (`name=value`).
async fn sign_in(conn: &mut Conn, token: &str) -> anyhow::Result<String> {
    let body = format!("token={token}&next=%2F");
    let headers = [(
        "Content-Type",
        "application/x-www-form-urlencoded".to_string(),
    )];
    let answer = conn.exchange("POST", "/signin", &headers, &body).await?;
    anyhow::ensure!(
        answer.status == 303 || answer.status == 302,
        "signing in answered {}",
        answer.status
    );
    let cookie = answer
        .header("set-cookie")
        .context("signing in set no cookie")?;
    Ok(cookie.split(';').next().unwrap_or_default().to_string())
}

/// The times of one path fetched `requests` times (after a tenth as many unrecorded).
struct Timed {
    server: Histogram<u64>,
    round_trip: Histogram<u64>,
    bytes: usize,
}

impl Timed {
    fn server_ms(&self, quantile: f64) -> f64 {
        self.server.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn fields(&self) -> Map<String, Value> {
        let ms = |h: &Histogram<u64>, q: f64| round(h.value_at_quantile(q) as f64 / 1000.0);
        let mut f = Map::new();
        f.insert("requests".into(), json!(self.server.len()));
        f.insert("server_p50_ms".into(), ms(&self.server, 0.5));
        f.insert("server_p99_ms".into(), ms(&self.server, 0.99));
        f.insert("server_max_ms".into(), ms(&self.server, 1.0));
        f.insert("round_trip_p50_ms".into(), ms(&self.round_trip, 0.5));
        f.insert("round_trip_p99_ms".into(), ms(&self.round_trip, 0.99));
        f.insert("page_bytes".into(), json!(self.bytes));
        f
    }
}

async fn time(
    conn: &mut Conn,
    path: &str,
    headers: &[(&str, String)],
    requests: usize,
) -> anyhow::Result<Timed> {
    let mut timed = Timed {
        server: histogram(),
        round_trip: histogram(),
        bytes: 0,
    };
    for i in 0..requests + requests / 10 {
        let started = Instant::now();
        let answer = conn.exchange("GET", path, headers, "").await?;
        let round_trip = started.elapsed();
        anyhow::ensure!(
            answer.status == 200,
            "GET {path} answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        if i < requests / 10 {
            continue;
        }
        let server = server_micros(&answer).with_context(|| {
            format!("GET {path}: no Server-Timing app;dur= header in the answer")
        })?;
        timed.server.saturating_record(server.max(1));
        timed
            .round_trip
            .saturating_record((round_trip.as_micros() as u64).max(1));
        timed.bytes = answer.body.len();
    }
    Ok(timed)
}

/// The server's own time of an answer, in microseconds (`Server-Timing: app;dur=MS`).
pub(crate) fn server_micros(answer: &Answer) -> Option<u64> {
    let value = answer.header("server-timing")?;
    let ms: f64 = value
        .split(';')
        .find_map(|part| part.trim().strip_prefix("dur="))?
        .parse()
        .ok()?;
    Some((ms * 1000.0).round() as u64)
}
