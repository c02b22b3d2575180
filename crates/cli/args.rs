//! The command line's shape: the global options and the verbs besides the one-per-command
//! subcommands (those are built from a table in `command_args.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// grantflow: an event-sourced funding-workflow engine for a trust fund's grants.
#[derive(Parser, Debug)]
#[command(name = "grantflow", version, about, long_about = None)]
pub struct Cli {
    /// The data directory (a sled store).
    #[arg(
        long,
        global = true,
        env = "GRANTFLOW_DATA",
        default_value = "./grantflow-data"
    )]
    pub data: PathBuf,
    /// A shared PostgreSQL store (postgres://user@host:port/db?schema=NAME) instead of the
    /// embedded sled store in --data.
    #[arg(long, global = true, env = "GRANTFLOW_STORE")]
    pub store: Option<String>,
    /// Who issues commands (when the command JSON names no actor).
    #[arg(long, global = true, env = "GRANTFLOW_ACTOR")]
    pub actor: Option<String>,
    #[command(subcommand)]
    pub verb: Verb,
}

/// The verbs besides the one-per-command subcommands.
#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Run commands given as JSON Lines (from FILE or standard input), one result line each.
    Exec {
        /// The file of commands; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
    /// A grant's figures, or the list of grants.
    Grant {
        #[command(subcommand)]
        action: GrantAction,
    },
    /// A fund's figures.
    Fund {
        #[command(subcommand)]
        action: FundAction,
    },
    /// Reports of grants: every one with its status, or those overdue on a date.
    Report {
        #[command(subcommand)]
        action: ReportAction,
    },
    /// The audit trail of a grant or fund: every event with before and after figures.
    Audit {
        /// A grant or fund id.
        id: String,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// CSV (RFC 4180) instead of a table.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// Stored events as JSON Lines (the exact hashed bytes, with their hash).
    Events {
        /// The first position (inclusive).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Only this stream (e.g. grant-MEX-2012-01).
        #[arg(long)]
        stream: Option<String>,
        /// At most this many events.
        #[arg(long)]
        limit: Option<u64>,
        /// Keep waiting for new events.
        #[arg(long)]
        follow: bool,
    },
    /// Verify the log: hash chain, gapless positions and versions, every event by the
    /// rules, projections.
    Verify {
        /// A checkpoint (from `grantflow checkpoint`) the log must extend.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Verify an exported JSON Lines file instead of the store.
        #[arg(long)]
        export: Option<PathBuf>,
        /// A trusted public key (PATH.pub of `grantflow key generate`): the checkpoint must
        /// be signed by it, over its fields as they are.
        #[arg(long, requires = "checkpoint")]
        trust: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the head of the log as a checkpoint (JSON) for an auditor to keep.
    Checkpoint {
        /// Sign it with this private key (from `grantflow key generate`).
        #[arg(long)]
        sign: Option<PathBuf>,
    },
    /// Make and manage the Ed25519 keys that sign checkpoints.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Rebuild every projection from the log, checking every event by the rules.
    Replay {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export the log: `jsonl` (the exact hashed envelopes), `iati` (IATI 2.03 activities
    /// XML of every fund and grant), `iati-org` (the IATI 2.03 organisation file of the
    /// same publisher: yearly budgets and expenditure) or `csv` (one row per event with the
    /// figures).
    Export {
        /// `jsonl`, `iati`, `iati-org` or `csv`.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// IATI: as of this log position.
        #[arg(long)]
        at: Option<u64>,
        /// IATI: as of this recorded time (RFC 3339).
        #[arg(long = "as-of")]
        as_of: Option<String>,
        /// IATI: only these grants (repeat for more; their funds come along).
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// IATI: the publisher's IATI organisation identifier, e.g. XM-DAC-41301 (default:
        /// the funds' `iati_org_ref`; without either the IATI export is refused).
        #[arg(long = "reporting-org")]
        reporting_org: Option<String>,
    },
    /// Import an exported log into an empty store (every hash and every event's rules are
    /// verified first).
    Import {
        /// The JSON Lines file.
        file: PathBuf,
        /// A checkpoint (from `grantflow checkpoint`) the file must extend.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Serve the HTTP API (commands, figures, audit, the event stream) until SIGINT/SIGTERM.
    Serve {
        /// The address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Sign the checkpoints of `GET /v1/checkpoint` with this private key (from
        /// `grantflow key generate`).
        #[arg(long = "signing-key")]
        signing_key: Option<PathBuf>,
        /// Also relay the log to NATS JetStream at this URL (e.g. nats://127.0.0.1:4222), as
        /// `grantflow relay nats` does; retried while the NATS server is down.
        #[arg(long = "relay-nats", value_name = "URL")]
        relay_nats: Option<String>,
        /// The relay's JetStream stream (created when missing).
        #[arg(long = "relay-stream", default_value = grantflow_relay::DEFAULT_STREAM, requires = "relay_nats")]
        relay_stream: String,
        /// The first token of the relay's subjects.
        #[arg(long = "relay-subject-prefix", default_value = grantflow_relay::DEFAULT_SUBJECT_PREFIX, requires = "relay_nats")]
        relay_subject_prefix: String,
        /// Disable a webhook subscription after this many failed deliveries in a row
        /// (`grantflow webhook enable ID` resumes it).
        #[arg(long = "webhook-max-failures", default_value_t = grantflow_webhooks::MAX_FAILURES_DEFAULT)]
        webhook_max_failures: u32,
        /// The pause after a webhook delivery's first failure, in milliseconds; it doubles
        /// with each further failure (jittered, at most 5 minutes).
        #[arg(long = "webhook-retry-base-ms", default_value_t = grantflow_webhooks::RETRY_BASE_DEFAULT.as_millis() as u64)]
        webhook_retry_base_ms: u64,
        /// How long one webhook delivery attempt may take, in milliseconds.
        #[arg(long = "webhook-timeout-ms", default_value_t = grantflow_webhooks::TIMEOUT_DEFAULT.as_millis() as u64)]
        webhook_timeout_ms: u64,
    },
    /// Signed webhooks: the log's events POSTed by `grantflow serve` to subscribers' URLs,
    /// as CloudEvents signed per the Standard Webhooks specification.
    Webhook {
        #[command(subcommand)]
        action: WebhookAction,
    },
    /// Publish the log to a message system, every event once and in position order, until
    /// SIGINT/SIGTERM; resumes where the last run stopped.
    Relay {
        #[command(subcommand)]
        target: RelayTarget,
    },
    /// Issue, list and revoke the bearer tokens of the HTTP API.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Load the worked example (UNTFHS, Mexico, 2012) and print what it did.
    Demo {
        /// Print each result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `grantflow relay ...`
#[derive(Subcommand, Debug)]
pub enum RelayTarget {
    /// NATS JetStream: each event a CloudEvent on `<prefix>.<fund|grant>.<id>.<type>`, with
    /// `Nats-Msg-Id: <position>`, on a stream created when missing. On PostgreSQL run it
    /// beside any number of servers; on sled, where one process holds the store, use
    /// `serve --relay-nats` instead.
    Nats {
        /// The NATS server.
        #[arg(long, value_name = "URL")]
        url: String,
        /// The JetStream stream (created when missing, with subjects `<prefix>.>`).
        #[arg(long, default_value = grantflow_relay::DEFAULT_STREAM)]
        stream: String,
        /// The first token of every subject.
        #[arg(long = "subject-prefix", default_value = grantflow_relay::DEFAULT_SUBJECT_PREFIX)]
        subject_prefix: String,
        /// The CloudEvents `source` (default: urn:grantflow:log:<hash of the first event>).
        #[arg(long)]
        source: Option<String>,
    },
}

/// `grantflow webhook ...`
#[derive(Subcommand, Debug)]
pub enum WebhookAction {
    /// Subscribe a URL to the events appended from now on; prints the signing secret
    /// (`whsec_...`) alone on the last line, shown once.
    Add {
        /// Where deliveries are POSTed (http:// or https://).
        #[arg(long)]
        url: String,
        /// Only these event types: patterns, comma-separated or repeated, `*` matching any
        /// run of characters (e.g. `grant.*,fund.contribution_recorded`); default every type.
        #[arg(long)]
        types: Vec<String>,
        /// Only the events of this fund and of its grants.
        #[arg(long)]
        fund: Option<String>,
        /// One JSON line instead: the subscription as `webhook list --json` shows it, plus
        /// its `secret`.
        #[arg(long)]
        json: bool,
    },
    /// List the subscriptions with their cursors and states (never their secrets).
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a subscription; the server stops delivering it within a second.
    Remove {
        /// The subscription's id.
        id: String,
    },
    /// Enable a subscription again (after too many failures): deliveries resume after its
    /// cursor, with the event that failed.
    Enable {
        /// The subscription's id.
        id: String,
    },
    /// A subscription's recent delivery attempts, oldest first (at most 100).
    Deliveries {
        /// The subscription's id.
        id: String,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `grantflow grant ...`
#[derive(Subcommand, Debug)]
pub enum GrantAction {
    /// One grant's figures.
    Show {
        /// The grant id.
        id: String,
        /// As of this log position.
        #[arg(long)]
        at: Option<u64>,
        /// As of this recorded time (RFC 3339).
        #[arg(long = "as-of")]
        as_of: Option<String>,
        /// JSON (the fields of docs/domain.md, "Figures").
        #[arg(long)]
        json: bool,
    },
    /// One row per grant.
    List {
        /// Only grants of this fund.
        #[arg(long)]
        fund: Option<String>,
        /// Only grants in this status.
        #[arg(long)]
        status: Option<String>,
        /// JSON (an array of grant figures).
        #[arg(long)]
        json: bool,
    },
}

/// `grantflow key ...`
#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// Make an Ed25519 key pair from the OS random source: the private key in PATH (mode
    /// 0600), the public key in PATH.pub; an existing file is never overwritten.
    Generate {
        /// The private key's file (must not exist, nor PATH.pub).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `grantflow token ...`
#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// Issue a token for the global `--actor NAME` with roles (secretariat, approver, finance,
    /// auditor, integrator, admin); prints the token alone on the last line, shown once.
    Add {
        /// Roles, comma-separated or repeated.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// List the tokens (never their secrets).
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (as listed) or its text.
    Revoke {
        /// The token's id.
        id: String,
    },
}

/// `grantflow report ...`
#[derive(Subcommand, Debug)]
pub enum ReportAction {
    /// Every report (whatever its status) with its grant and current status.
    List {
        /// Only the reports of this fund's grants.
        #[arg(long)]
        fund: Option<String>,
        /// Only this grant's reports.
        #[arg(long)]
        grant: Option<String>,
        /// Only the reports overdue on this date (YYYY-MM-DD): due before it and, on it,
        /// still scheduled or returned.
        #[arg(long = "overdue-on")]
        overdue_on: Option<String>,
        /// A JSON array of objects with grant, report, kind, period_end, due_on, status.
        #[arg(long)]
        json: bool,
    },
}

/// `grantflow fund ...`
#[derive(Subcommand, Debug)]
pub enum FundAction {
    /// One fund's figures.
    Show {
        /// The fund id.
        id: String,
        /// As of this log position.
        #[arg(long)]
        at: Option<u64>,
        /// As of this recorded time (RFC 3339).
        #[arg(long = "as-of")]
        as_of: Option<String>,
        /// JSON (the fields of docs/domain.md, "Figures").
        #[arg(long)]
        json: bool,
    },
}
