//! Driving a server with the `oha` load generator: the request bodies, the load's settings,
//! and one run's figures (throughput, latency, the server's and oha's CPU time).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::Context;
use grantflow_bench::workload::SplitMix64;
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::http_target::contribution;
use crate::measure::{cpu_ticks, ticks_seconds};
use crate::report::round;

/// The commands the load generator sends: `n` distinct contributions, one JSON body a line.
pub(crate) fn write_bodies(config: &Config, root: &Path, n: usize) -> anyhow::Result<PathBuf> {
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
pub(crate) struct Load<'a> {
    pub(crate) oha: &'a Path,
    pub(crate) addr: &'a str,
    pub(crate) token: &'a str,
    pub(crate) bodies: &'a Path,
    pub(crate) n: usize,
    pub(crate) clients: usize,
    /// Requests per second offered, whatever the answers (an open loop, its latencies
    /// corrected for coordinated omission); `None`: each client sends its next request when
    /// the last is answered (a closed loop: as fast as the server answers).
    pub(crate) rate: Option<f64>,
}

/// Runs `oha` and returns its figures, with the CPU the server (`server_pid`) and oha used.
pub(crate) async fn drive(
    load: &Load<'_>,
    server_pid: Option<u32>,
) -> anyhow::Result<Map<String, Value>> {
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
