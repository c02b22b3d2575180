//! A checkpoint witness: what an auditor runs outside the server, on a schedule, to keep the
//! server's signed checkpoints where the server cannot change them (docs/events.md,
//! "Keeping checkpoints outside the server: a witness").
//!
//! ```sh
//! cargo run --example witness -- --url http://127.0.0.1:8080 --token "$AUDITOR_TOKEN" \
//!     --trust checkpoint-key.pub --file witness.jsonl
//! ```
//!
//! Each run:
//! 1. fetches `GET /v1/checkpoint` (the server started with `serve --signing-key`);
//! 2. checks its signature with the trusted public key (the `.pub` file, copied once, out of
//!    band), over the canonical form of docs/events.md;
//! 3. reads the last checkpoint stored in `--file`, if any, and checks that the new one
//!    extends it: its position is not smaller, and `GET /v1/verify?position=P&hash=H` of the
//!    stored one answers `ok` (the server's whole log re-verified, and still holding it);
//! 4. appends the new checkpoint as one JSON line (fsynced).
//!
//! Exit 0 after appending; 1 when the signature, the key or the extension does not hold
//! (nothing appended); 2 for usage or I/O errors (the server unreachable). This client
//! speaks plain HTTP (the example has no TLS stack): run it on the server's network, or give
//! it an HTTPS-capable client before pointing it across one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use grantflow_engine::signing::{SignedCheckpoint, TrustedKey};

struct Args {
    url: String,
    token: String,
    trust: PathBuf,
    file: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut token = std::env::var("GRANTFLOW_TOKEN").ok();
    let mut trust = None;
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => url = Some(value.trim_end_matches('/').to_string()),
            "--token" => token = Some(value),
            "--trust" => trust = Some(PathBuf::from(value)),
            "--file" => file = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let usage = "usage: witness --url URL --token TOKEN --trust KEY.pub --file FILE";
    Ok(Args {
        url: url.ok_or(usage)?,
        token: token.ok_or(usage)?,
        trust: trust.ok_or(usage)?,
        file: file.ok_or(usage)?,
    })
}

/// Why a run stopped.
enum Stop {
    /// The checkpoint is not to be trusted: exit 1.
    Refused(String),
    /// Anything else: exit 2.
    Error(String),
}

fn error(text: impl std::fmt::Display) -> Stop {
    Stop::Error(text.to_string())
}

async fn get_json(
    client: &reqwest::Client,
    args: &Args,
    path: &str,
) -> Result<serde_json::Value, Stop> {
    let url = format!("{}{path}", args.url);
    let response = client
        .get(&url)
        .bearer_auth(&args.token)
        .send()
        .await
        .map_err(|e| error(format!("GET {url}: {e}")))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| error(format!("GET {url}: {e}")))?;
    if !status.is_success() {
        return Err(error(format!("GET {url}: {status}: {text}")));
    }
    serde_json::from_str(&text).map_err(|e| error(format!("GET {url}: not JSON: {e}")))
}

/// The last checkpoint of the witness file (none for a new file).
fn last_stored(file: &Path) -> Result<Option<SignedCheckpoint>, Stop> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error(format!("{}: {e}", file.display()))),
    };
    match text.lines().rev().find(|line| !line.trim().is_empty()) {
        None => Ok(None),
        Some(line) => serde_json::from_str(line).map(Some).map_err(|e| {
            error(format!(
                "{}: the last line is not a checkpoint: {e}",
                file.display()
            ))
        }),
    }
}

async fn run(args: &Args) -> Result<SignedCheckpoint, Stop> {
    let trusted = TrustedKey::load(&args.trust).map_err(error)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(error)?;
    let fetched = get_json(&client, args, "/v1/checkpoint").await?;
    let signed: SignedCheckpoint = serde_json::from_value(fetched)
        .map_err(|e| Stop::Refused(format!("not a checkpoint: {e}")))?;
    trusted
        .check(&signed)
        .map_err(|e| Stop::Refused(e.to_string()))?;
    if let Some(last) = last_stored(&args.file)? {
        let (old, new) = (&last.checkpoint, &signed.checkpoint);
        if new.position < old.position {
            return Err(Stop::Refused(format!(
                "the server's head (position {}) is behind the stored checkpoint (position {}): \
                 events were removed",
                new.position, old.position
            )));
        }
        let path = format!("/v1/verify?position={}&hash={}", old.position, old.hash);
        let report = get_json(&client, args, &path).await?;
        if report["ok"] != true {
            return Err(Stop::Refused(format!(
                "the server's log does not extend the stored checkpoint at position {}: {}",
                old.position, report["failure"]
            )));
        }
    }
    let mut line = serde_json::to_string(&signed).map_err(error)?;
    line.push('\n');
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.file)
        .map_err(|e| error(format!("{}: {e}", args.file.display())))?;
    out.write_all(line.as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(|e| error(format!("{}: {e}", args.file.display())))?;
    Ok(signed)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(signed) => {
            println!(
                "witness: ok, stored position {} hash {} signed by {}",
                signed.checkpoint.position,
                signed.checkpoint.hash,
                signed.key_id.as_deref().unwrap_or("-")
            );
            ExitCode::SUCCESS
        }
        Err(Stop::Refused(why)) => {
            println!("witness: REFUSED: {why}");
            ExitCode::from(1)
        }
        Err(Stop::Error(why)) => {
            eprintln!("witness: {why}");
            ExitCode::from(2)
        }
    }
}
