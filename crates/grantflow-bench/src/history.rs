//! The history scenario (`--scenario history`, run only when named): questions about the
//! past on stores of growing size, so that each question's cost shows against the log's
//! size. For each size of `--history-sizes` (default 1, 2.5 and 10 million events; the
//! generated workload, 256 funds and about one grant per hundred events), a store is built
//! once through the engine and kept under `--dir` (a later run with the same `--dir`, seed and
//! lanes reuses it; without `--dir` each store is removed once measured). On each store:
//!
//! - the real `grantflow serve` is started (`open_s`: from spawn to listening) and asked,
//!   one request at a time on a keep-alive connection, for `--history-queries` random
//!   grants: `GET /v1/grants/{id}?at=P` (`grant_at`) and `?as_of=T` (`grant_as_of`) for a
//!   random point after the grant began, `GET /v1/grants/{id}/audit` (`grant_audit`), and the
//!   grant's fund `GET /v1/funds/{id}?at=P` (`fund_at`), each timed by the server
//!   (`Server-Timing: app;dur=`), p50 and p99, once the server's fund checkpoints reach the
//!   head (`checkpoints_ready_s`: how long the server took to save them, on its first start
//!   on a store built without one); then the server's peak RSS (`serve_peak_rss_mib`);
//! - the fold's speed (`replay_events_per_s`, the projection rebuild `Engine::open` runs
//!   without a snapshot) and `grantflow replay`'s rule-checked speed (`checked_events_per_s`);
//! - bytes on disk per event, beside the size of the same event in the JSON Lines export
//!   (`export_bytes_per_event`), and where they go: sled's database file, the redo files, and
//!   inside sled the live log chunks, stream index and command index (child task
//!   `sled-breakdown`; sled's file less those is sled's own overhead).
//!
//! With `--history-svg FILE`, the p99 of each question against the log's size is drawn as an
//! SVG line chart.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use grantflow_bench::sys::disk_bytes;
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::env::grantflow_binary;
use crate::http_target::{add_token, Conn, Server};
use crate::measure::histogram;
use crate::report::{round, Report};

/// The questions timed, in the order of the report's fields and the chart's series.
const QUESTIONS: &[&str] = &["grant_at", "grant_as_of", "grant_audit", "fund_at"];

/// Runs the history scenario.
pub(crate) async fn run(config: &Config, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    let Some(binary) = grantflow_binary(config) else {
        report.skipped(
            "history",
            "no grantflow binary beside this one (build it: cargo build --release -p grantflow); pass --grantflow PATH",
        );
        return Ok(());
    };
    let mut points = Vec::new();
    for &size in &config.history_sizes {
        let data = root.join(format!(
            "history-{size}-seed{}-lanes{}",
            config.seed, config.lanes
        ));
        let built = build_once(config, &data, size)?;
        let mut fields = measure(config, &binary, &data).await?;
        fields.insert("built_now".into(), json!(built.is_some()));
        if let Some(events_per_s) = built {
            fields.insert("build_events_per_s".into(), events_per_s);
        }
        if !config.keep_stores {
            // A temporary root: the next, larger store needs the room.
            std::fs::remove_dir_all(&data)?;
        }
        let line = format!("history-{size}");
        report.line(&line, fields.clone());
        points.push((size, fields));
    }
    if let Some(svg) = &config.history_svg {
        write_svg(svg, &points)?;
        eprintln!("grantflow-bench: the history chart is in {}", svg.display());
    }
    Ok(())
}

/// Builds the store of `size` events at `data` unless a finished one is there; the build's
/// append rate (events/s, the engine pipelined as `exec`) when it built one.
fn build_once(config: &Config, data: &Path, size: u64) -> anyhow::Result<Option<Value>> {
    let marker = data.join("history-built");
    if marker.is_file() {
        return Ok(None);
    }
    if data.exists() {
        std::fs::remove_dir_all(data)?;
    }
    eprintln!(
        "grantflow-bench: building a store of {size} events in {} (once; kept for later runs with this --dir)",
        data.display()
    );
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["child", "--task", "engine-append", "--path"])
        .arg(data)
        .args(["--events", &size.to_string()])
        .args(["--seed", &config.seed.to_string()])
        .args(["--lanes", &config.lanes.to_string()])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "building the store of {size} events failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .context("the build's figures")?;
    let (commands, accepted) = (line["commands"].as_u64(), line["accepted"].as_u64());
    anyhow::ensure!(
        commands.is_some() && commands == accepted,
        "building the store of {size} events: {accepted:?} of {commands:?} commands accepted"
    );
    std::fs::write(&marker, format!("{size}\n"))?;
    Ok(Some(line["events_per_s"].clone()))
}

/// Runs a child task of this binary on `data` and returns its JSON line.
fn child_task(config: &Config, task: &str, data: &Path) -> anyhow::Result<Map<String, Value>> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["child", "--task", task, "--path"])
        .arg(data)
        .args(["--seed", &config.seed.to_string()])
        .args(["--lanes", &config.lanes.to_string()])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "child {task} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().context("the child printed nothing")?;
    match serde_json::from_str(line)? {
        Value::Object(map) => Ok(map),
        other => anyhow::bail!("child {task} printed {other}"),
    }
}

/// Every figure of one store.
async fn measure(
    config: &Config,
    binary: &Path,
    data: &Path,
) -> anyhow::Result<Map<String, Value>> {
    let mut fields = Map::new();
    let token = add_token(binary, data, "bench.history", "auditor")?;
    let admin = add_token(binary, data, "bench.history.metrics", "admin")?;
    let started = Instant::now();
    let server = Server::grantflow(binary, data).await?;
    fields.insert("open_s".into(), round(started.elapsed().as_secs_f64()));
    let pid = server.child.id();
    // The fund questions are timed once the server's fund checkpoints reach the head (on a
    // store built without a server, it saves them on its first start).
    let caught_up = checkpoints_caught_up(&server.addr, &admin).await;
    if let Ok(seconds) = &caught_up {
        fields.insert("checkpoints_ready_s".into(), round(*seconds));
    }
    let asked = match caught_up {
        Ok(_) => ask(config, &server.addr, &token).await,
        Err(error) => Err(error),
    };
    let rss = pid.and_then(peak_rss_kib);
    let stopped = server.stop().await;
    let (head, timed) = asked?;
    stopped?;
    fields.insert("events".into(), json!(head));
    for (question, histogram) in QUESTIONS.iter().zip(&timed) {
        let ms = |q: f64| round(histogram.value_at_quantile(q) as f64 / 1000.0);
        fields.insert(format!("{question}_p50_ms"), ms(0.5));
        fields.insert(format!("{question}_p99_ms"), ms(0.99));
    }
    if let Some(kib) = rss {
        fields.insert("serve_peak_rss_mib".into(), round(kib as f64 / 1024.0));
    }

    let replay = child_task(config, "engine-replay", data)?;
    for (from, to) in [
        ("events_per_s", "replay_events_per_s"),
        ("checked_events_per_s", "checked_events_per_s"),
    ] {
        if let Some(value) = replay.get(from) {
            fields.insert(to.into(), value.clone());
        }
    }

    let on_disk = disk_bytes(data);
    let exported = export_bytes(binary, data)?;
    let per = |bytes: u64| round(bytes as f64 / head.max(1) as f64);
    fields.insert("disk_bytes_per_event".into(), per(on_disk));
    fields.insert("export_bytes_per_event".into(), per(exported));
    fields.insert(
        "x_disk_export".into(),
        round(on_disk as f64 / exported.max(1) as f64),
    );
    // Where the bytes on disk go, per event: sled's file and, inside it, the live log chunks
    // and indexes (the rest of the file is sled's own overhead), and the redo files.
    let breakdown = child_task(config, "sled-breakdown", data)?;
    for (from, to) in [
        ("db_file_bytes", "disk_sled_file_bytes_per_event"),
        ("redo_bytes", "disk_redo_bytes_per_event"),
        ("live_log_bytes", "live_log_bytes_per_event"),
        (
            "live_stream_index_bytes",
            "live_stream_index_bytes_per_event",
        ),
        (
            "live_command_index_bytes",
            "live_command_index_bytes_per_event",
        ),
    ] {
        if let Some(bytes) = breakdown.get(from).and_then(Value::as_u64) {
            fields.insert(to.into(), per(bytes));
        }
    }
    Ok(fields)
}

/// Waits until the server's fund checkpoints reach the last boundary below its head
/// (`/metrics`); the seconds waited since the server listens.
async fn checkpoints_caught_up(addr: &str, admin: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut conn = Conn::open(addr).await?;
    let auth = [("Authorization", format!("Bearer {admin}"))];
    let every = grantflow_engine::checkpoint::FUND_CHECKPOINT_EVERY;
    loop {
        let answer = conn.exchange("GET", "/metrics", &auth, "").await?;
        anyhow::ensure!(
            answer.status == 200,
            "GET /metrics answered {}",
            answer.status
        );
        let text = String::from_utf8_lossy(&answer.body);
        let gauge = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        let head = gauge("grantflow_head_position ").context("no head in /metrics")?;
        let mark = gauge("grantflow_fund_checkpoints_position ")
            .context("no fund checkpoints in /metrics")?;
        if mark >= head / every * every {
            return Ok(started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            started.elapsed() < std::time::Duration::from_secs(3600),
            "the fund checkpoints reach {mark} of {head} after an hour"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// The server's peak resident set (VmHWM), KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The size of `grantflow export --format jsonl` of the store, counted as it streams.
fn export_bytes(binary: &Path, data: &Path) -> anyhow::Result<u64> {
    let mut child = std::process::Command::new(binary)
        .arg("--data")
        .arg(data)
        .args(["export", "--format", "jsonl"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut stdout = child.stdout.take().context("export's stdout")?;
    let bytes = std::io::copy(&mut stdout, &mut std::io::sink())?;
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "grantflow export failed ({status})");
    Ok(bytes)
}

/// A small deterministic generator of the questions' points.
struct Points(u64);

impl Points {
    fn below(&mut self, n: u64) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// Asks the questions; the log's head and one histogram (µs of server time) per question.
async fn ask(
    config: &Config,
    addr: &str,
    token: &str,
) -> anyhow::Result<(u64, Vec<Histogram<u64>>)> {
    let mut conn = Conn::open(addr).await?;
    let auth = [("Authorization", format!("Bearer {token}"))];
    let head = {
        let answer = get(&mut conn, "/v1/events?from=1&limit=1", &auth).await?;
        answer.1["head"].as_u64().context("no head in /v1/events")?
    };
    anyhow::ensure!(head > 0, "the store is empty");
    let mut timed: Vec<Histogram<u64>> = QUESTIONS.iter().map(|_| histogram()).collect();
    let mut points = Points(config.seed);
    let mut asked = 0;
    while asked < config.history_queries {
        // A grant, weighted by its events: the stream of a random event.
        let at = 1 + points.below(head);
        let (_, page) = get(&mut conn, &format!("/v1/events?from={at}&limit=1"), &auth).await?;
        let event = &page["events"][0];
        let Some(grant) = event["stream"]
            .as_str()
            .and_then(|s| s.strip_prefix("grant-"))
        else {
            continue;
        };
        let grant = grant.to_string();
        let began = event["position"].as_u64().unwrap_or(at);
        // A point after the grant began, and the time of another.
        let p = began + points.below(head - began + 1);
        let q = began + points.below(head - began + 1);
        let (_, other) = get(&mut conn, &format!("/v1/events?from={q}&limit=1"), &auth).await?;
        let time = other["events"][0]["recorded_at"]
            .as_str()
            .context("an event's recorded_at")?
            .replace('+', "%2B");

        let (us, figures) = get(&mut conn, &format!("/v1/grants/{grant}?at={p}"), &auth).await?;
        timed[0].saturating_record(us);
        let (us, _) = get(
            &mut conn,
            &format!("/v1/grants/{grant}?as_of={time}"),
            &auth,
        )
        .await?;
        timed[1].saturating_record(us);
        let (us, _) = get(&mut conn, &format!("/v1/grants/{grant}/audit"), &auth).await?;
        timed[2].saturating_record(us);
        let fund = figures["fund"].as_str().context("the grant's fund")?;
        let (us, _) = get(&mut conn, &format!("/v1/funds/{fund}?at={p}"), &auth).await?;
        timed[3].saturating_record(us);
        asked += 1;
    }
    Ok((head, timed))
}

/// GETs `path`, which must answer 200: the server's time (µs) and the JSON answer.
async fn get(
    conn: &mut Conn,
    path: &str,
    headers: &[(&str, String)],
) -> anyhow::Result<(u64, Value)> {
    let answer = conn.exchange("GET", path, headers, "").await?;
    anyhow::ensure!(
        answer.status == 200,
        "GET {path} answered {}: {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    let us = crate::console::server_micros(&answer)
        .with_context(|| format!("GET {path}: no Server-Timing app;dur= header"))?;
    let value = serde_json::from_slice(&answer.body)
        .with_context(|| format!("GET {path}: the answer is not JSON"))?;
    Ok((us.max(1), value))
}

/// `grantflow-bench chart`: the history chart from the `history-N` lines of earlier runs'
/// output (the text lines `scenario history-N: key=value ...`, or a `--json` document).
pub(crate) fn chart(from: &[PathBuf], svg: Option<&Path>) -> anyhow::Result<()> {
    let svg = svg.context("give the chart's file with --history-svg FILE")?;
    let mut points: Vec<(u64, Map<String, Value>)> = Vec::new();
    for file in from {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        if let Ok(document) = serde_json::from_str::<Value>(&text) {
            for line in document["scenarios"].as_array().into_iter().flatten() {
                let name = line["scenario"].as_str().unwrap_or_default();
                if let (Some(size), Some(fields)) = (history_size(name), line.as_object()) {
                    points.push((size, fields.clone()));
                }
            }
            continue;
        }
        for line in text.lines() {
            let Some((name, rest)) = line
                .strip_prefix("scenario ")
                .and_then(|line| line.split_once(": "))
            else {
                continue;
            };
            let Some(size) = history_size(name) else {
                continue;
            };
            let fields = rest
                .split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(key, value)| {
                    let value = value.parse::<f64>().map_or(json!(value), |n| json!(n));
                    (key.to_string(), value)
                })
                .collect();
            points.push((size, fields));
        }
    }
    anyhow::ensure!(!points.is_empty(), "no `history-N` line in the files given");
    points.sort_by_key(|(size, _)| *size);
    write_svg(svg, &points)?;
    eprintln!(
        "grantflow-bench: the history chart of {} sizes is in {}",
        points.len(),
        svg.display()
    );
    Ok(())
}

/// N of a `history-N` scenario name.
fn history_size(name: &str) -> Option<u64> {
    name.strip_prefix("history-")?.parse().ok()
}

/// Draws each question's p99 against the log's size.
fn write_svg(path: &Path, points: &[(u64, Map<String, Value>)]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let series: Vec<(&str, Vec<(f64, f64)>)> = QUESTIONS
        .iter()
        .map(|question| {
            let line = points
                .iter()
                .filter_map(|(size, fields)| {
                    let ms = fields.get(&format!("{question}_p99_ms"))?.as_f64()?;
                    Some((*size as f64 / 1e6, ms))
                })
                .collect();
            (*question, line)
        })
        .collect();
    let x_max = points
        .iter()
        .map(|(size, _)| *size as f64 / 1e6)
        .fold(0.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, line)| line.iter().map(|(_, ms)| *ms))
        .fold(100.0, f64::max)
        * 1.5;
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "p99 server time of questions about the past (targets: 20 ms grant, 50 ms fund)",
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max * 1.05, (0.5..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("events in the log (millions)")
        .y_desc("p99, ms (log scale)")
        .draw()?;
    for target in [20.0, 50.0] {
        chart.draw_series(LineSeries::new(
            [(0.0, target), (x_max * 1.05, target)],
            BLACK.mix(0.4).stroke_width(1),
        ))?;
    }
    for (index, (question, line)) in series.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))?
            .label(*question)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(
            line.iter()
                .map(|point| Circle::new(*point, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
