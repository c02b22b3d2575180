//! Measurement helpers shared by the scenarios: a throughput run's figures ([`Run`]), latency
//! histograms, the median of repeated runs, ratios to a baseline, and processes' CPU time.

use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use crate::report::round;

/// One throughput measurement.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub commands: u64,
    pub accepted: u64,
    pub events: u64,
    pub seconds: f64,
    pub hist: Histogram<u64>,
    pub groups: u64,
    pub store_seconds: f64,
    /// Commands whose submission failed (an engine error, not a rejection).
    pub failed: u64,
    /// The first such error.
    pub first_error: Option<String>,
}

impl Run {
    /// No command yet: the figures a run adds up from.
    pub(crate) fn empty() -> Run {
        Run {
            commands: 0,
            accepted: 0,
            events: 0,
            seconds: 0.0,
            hist: histogram(),
            groups: 0,
            store_seconds: 0.0,
            failed: 0,
            first_error: None,
        }
    }

    pub(crate) fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }

    pub(crate) fn fields(&self) -> Map<String, Value> {
        let mut f = Map::new();
        f.insert("commands".into(), json!(self.commands));
        f.insert("accepted".into(), json!(self.accepted));
        f.insert("events".into(), json!(self.events));
        f.insert("seconds".into(), round(self.seconds));
        f.insert(
            "commands_per_s".into(),
            round(self.accepted as f64 / self.seconds.max(1e-9)),
        );
        f.insert("events_per_s".into(), round(self.events_per_s()));
        if !self.hist.is_empty() {
            let ms = |q: f64| round(self.hist.value_at_quantile(q) as f64 / 1000.0);
            f.insert("p50_ms".into(), ms(0.5));
            f.insert("p99_ms".into(), ms(0.99));
            f.insert("max_ms".into(), round(self.hist.max() as f64 / 1000.0));
        }
        if self.groups > 0 {
            f.insert("groups".into(), json!(self.groups));
            f.insert(
                "events_per_group".into(),
                round(self.events as f64 / self.groups as f64),
            );
        }
        if self.failed > 0 {
            f.insert("failed".into(), json!(self.failed));
            if let Some(error) = &self.first_error {
                f.insert("first_error".into(), json!(error));
            }
        }
        if self.store_seconds > 0.0 {
            f.insert(
                "store_share".into(),
                round(self.store_seconds / self.seconds.max(1e-9)),
            );
        }
        f
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 min, 3 significant digits. Cannot fail with these bounds.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| unreachable!())
}

pub(crate) fn record(hist: &mut Histogram<u64>, since: Instant) {
    let micros = (since.elapsed().as_micros() as u64).max(1);
    hist.saturating_record(micros);
}

/// The median run of `repeat` (by events/s).
pub(crate) async fn median<F, Fut>(repeat: usize, mut once: F) -> anyhow::Result<Run>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Run>>,
{
    let mut runs = Vec::new();
    for i in 0..repeat.max(1) {
        runs.push(once(i).await?);
    }
    runs.sort_by(|a, b| a.events_per_s().total_cmp(&b.events_per_s()));
    let middle = runs.len() / 2;
    Ok(runs.swap_remove(middle))
}

pub(crate) fn ratio(value: Option<f64>, base: Option<f64>) -> Value {
    match (value, base) {
        (Some(v), Some(b)) if b > 0.0 => round(v / b),
        _ => Value::Null,
    }
}

/// From `/proc/<pid>/stat`: the process's own CPU time (user + system) and that of its
/// reaped children, in clock ticks; `None` where /proc is not there.
pub(crate) fn cpu_ticks(path: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    // The fields after the command name (which may hold spaces), from field 3 (state) on.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)? + field(15)?, field(16)? + field(17)?))
}

/// The machine's CPU time from `/proc/stat` (all cores): busy and total, in clock ticks;
/// `None` where /proc is not there.
pub(crate) fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    // idle and iowait
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Clock ticks in seconds (Linux reports /proc times in USER_HZ, 100 per second).
pub(crate) fn ticks_seconds(ticks: u64) -> f64 {
    ticks as f64 / 100.0
}
