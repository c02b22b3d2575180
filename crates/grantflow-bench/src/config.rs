//! The resolved settings of a run (from the command line, or the smoke defaults).

use std::path::PathBuf;
use std::time::Duration;

/// Resolved settings of a run.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub smoke: bool,
    pub events: u64,
    pub commands: usize,
    pub seed: u64,
    pub lanes: u32,
    pub max_seconds: f64,
    pub repeat: usize,
    pub scenarios: Vec<String>,
    pub json: bool,
    pub grantflow: Option<PathBuf>,
    pub submitters: Vec<usize>,
    pub postgres: Option<String>,
    pub pg_events: u64,
    /// How many servers (engines, each with its own `PgStore`) write one log in the
    /// `pg-servers` runs, one run per count.
    pub pg_servers: Vec<usize>,
    /// Submitters per server in the `pg-servers` runs.
    pub pg_server_submitters: usize,
    pub oha: Option<PathBuf>,
    pub http_commands: usize,
    pub http_clients: usize,
    pub http_rate: Option<f64>,
    pub exec_rate: Option<f64>,
    pub sse_subscribers: usize,
    pub sse_commands: usize,
    /// Requests per timed console page (and per baseline).
    pub console_requests: usize,
    /// The NATS server of the relay scenarios.
    pub nats: Option<String>,
    /// Events in the store the relay publishes from the start.
    pub relay_events: u64,
    /// Commands whose relay lag is timed.
    pub relay_lag_commands: usize,
    /// Log sizes of the history scenario.
    pub history_sizes: Vec<u64>,
    /// Grants asked about per size in the history scenario.
    pub history_queries: usize,
    /// Where the history scenario draws its chart.
    pub history_svg: Option<PathBuf>,
    /// Whether the stores built are kept for later runs (`--dir` given).
    pub keep_stores: bool,
}

impl Config {
    pub fn wants(&self, name: &str) -> bool {
        self.scenarios.iter().any(|s| s == "all" || s == name)
    }

    /// Whether `name` was asked for by name (a scenario too long for `all`).
    pub fn names(&self, name: &str) -> bool {
        self.scenarios.iter().any(|s| s == name)
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_secs_f64(self.max_seconds)
    }
}
