//! Counters for `GET /metrics`, rendered in the Prometheus text format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the append latency histogram's buckets.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The server's counters.
#[derive(Debug)]
pub struct Metrics {
    accepted: AtomicU64,
    replayed: AtomicU64,
    rejected: Mutex<BTreeMap<String, u64>>,
    responses: Mutex<BTreeMap<u16, u64>>,
    latency_buckets: Vec<AtomicU64>,
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            accepted: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            rejected: Mutex::new(BTreeMap::new()),
            responses: Mutex::new(BTreeMap::new()),
            latency_buckets: LATENCY_BUCKETS_SECONDS
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency_count: AtomicU64::new(0),
            latency_sum_micros: AtomicU64::new(0),
        }
    }
}

/// Gauges read at render time.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    /// The durable head position.
    pub head_position: u64,
    /// The fund checkpoints: how far they reach, how often they served, entries refused.
    pub fund_checkpoints: grantflow_engine::checkpoint::CheckpointStats,
    /// Event streams open now.
    pub open_streams: usize,
    /// Live tokens in the registry.
    pub live_tokens: usize,
}

/// The engine's writer counters, read at render time.
pub type WriterStats = grantflow_engine::StatsSnapshot;

impl Metrics {
    /// A command was appended; `elapsed` is the time from submission to durability.
    pub fn accepted(&self, elapsed: Duration) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS_SECONDS) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// An idempotent repeat was answered from the command index.
    pub fn replayed(&self) {
        self.replayed.fetch_add(1, Ordering::Relaxed);
    }

    /// A command was rejected with `code`.
    pub fn rejected(&self, code: &str) {
        if let Ok(mut rejected) = self.rejected.lock() {
            *rejected.entry(code.to_string()).or_insert(0) += 1;
        }
    }

    /// A response was sent with `status`.
    pub fn response(&self, status: u16) {
        if let Ok(mut responses) = self.responses.lock() {
            *responses.entry(status).or_insert(0) += 1;
        }
    }

    /// The Prometheus text.
    pub fn render(&self, gauges: Gauges, writer: &WriterStats) -> String {
        let mut out = String::new();
        let _ = self.write(&mut out, gauges);
        let _ = write_writer(&mut out, writer);
        out
    }

    fn write(&self, out: &mut String, gauges: Gauges) -> std::fmt::Result {
        writeln!(
            out,
            "# HELP grantflow_commands_accepted_total Commands appended (durable)."
        )?;
        writeln!(out, "# TYPE grantflow_commands_accepted_total counter")?;
        let accepted = self.accepted.load(Ordering::Relaxed);
        writeln!(out, "grantflow_commands_accepted_total {accepted}")?;
        writeln!(out, "# HELP grantflow_commands_replayed_total Idempotent repeats answered without appending.")?;
        writeln!(out, "# TYPE grantflow_commands_replayed_total counter")?;
        let replayed = self.replayed.load(Ordering::Relaxed);
        writeln!(out, "grantflow_commands_replayed_total {replayed}")?;
        writeln!(
            out,
            "# HELP grantflow_commands_rejected_total Commands rejected, by error code."
        )?;
        writeln!(out, "# TYPE grantflow_commands_rejected_total counter")?;
        if let Ok(rejected) = self.rejected.lock() {
            for (code, count) in rejected.iter() {
                writeln!(
                    out,
                    "grantflow_commands_rejected_total{{code=\"{code}\"}} {count}"
                )?;
            }
        }
        self.write_latency(out)?;
        writeln!(
            out,
            "# HELP grantflow_http_responses_total HTTP responses, by status."
        )?;
        writeln!(out, "# TYPE grantflow_http_responses_total counter")?;
        if let Ok(responses) = self.responses.lock() {
            for (status, count) in responses.iter() {
                writeln!(
                    out,
                    "grantflow_http_responses_total{{status=\"{status}\"}} {count}"
                )?;
            }
        }
        writeln!(
            out,
            "# HELP grantflow_head_position Position of the last durable event."
        )?;
        writeln!(out, "# TYPE grantflow_head_position gauge")?;
        writeln!(out, "grantflow_head_position {}", gauges.head_position)?;
        let checkpoints = gauges.fund_checkpoints;
        for (name, kind, help, value) in [
            (
                "grantflow_fund_checkpoints_position",
                "gauge",
                "Position through which fund checkpoints are saved.",
                checkpoints.mark,
            ),
            (
                "grantflow_fund_checkpoints_used_total",
                "counter",
                "Questions about a fund's past answered from a fund checkpoint.",
                checkpoints.used,
            ),
            (
                "grantflow_fund_checkpoints_refused_total",
                "counter",
                "Fund checkpoints found damaged or of another log, never served.",
                checkpoints.refused,
            ),
        ] {
            writeln!(out, "# HELP {name} {help}")?;
            writeln!(out, "# TYPE {name} {kind}")?;
            writeln!(out, "{name} {value}")?;
        }
        writeln!(
            out,
            "# HELP grantflow_open_streams Event streams (SSE) open now."
        )?;
        writeln!(out, "# TYPE grantflow_open_streams gauge")?;
        writeln!(out, "grantflow_open_streams {}", gauges.open_streams)?;
        writeln!(
            out,
            "# HELP grantflow_live_tokens Tokens in the registry that are not revoked."
        )?;
        writeln!(out, "# TYPE grantflow_live_tokens gauge")?;
        writeln!(out, "grantflow_live_tokens {}", gauges.live_tokens)
    }

    fn write_latency(&self, out: &mut String) -> std::fmt::Result {
        let name = "grantflow_append_latency_seconds";
        writeln!(out, "# HELP {name} Time from a command's submission to its durable append (group commit included).")?;
        writeln!(out, "# TYPE {name} histogram")?;
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS_SECONDS) {
            let count = bucket.load(Ordering::Relaxed);
            writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}")?;
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}")?;
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        writeln!(out, "{name}_sum {sum}")?;
        writeln!(out, "{name}_count {count}")
    }
}

/// The writer's batches: how many, how large (commands per durable batch), conflicts.
fn write_writer(out: &mut String, writer: &WriterStats) -> std::fmt::Result {
    let name = "grantflow_batch_commands";
    writeln!(
        out,
        "# HELP {name} Commands per durable batch (group commit)."
    )?;
    writeln!(out, "# TYPE {name} histogram")?;
    for (bound, count) in &writer.batch_sizes {
        writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}")?;
    }
    writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", writer.batches)?;
    writeln!(out, "{name}_sum {}", writer.commands)?;
    writeln!(out, "{name}_count {}", writer.batches)?;
    writeln!(
        out,
        "# HELP grantflow_events_appended_total Events appended by this process."
    )?;
    writeln!(out, "# TYPE grantflow_events_appended_total counter")?;
    writeln!(out, "grantflow_events_appended_total {}", writer.events)?;
    writeln!(out, "# HELP grantflow_append_conflicts_total Batches decided again because another writer appended first.")?;
    writeln!(out, "# TYPE grantflow_append_conflicts_total counter")?;
    writeln!(out, "grantflow_append_conflicts_total {}", writer.conflicts)
}
