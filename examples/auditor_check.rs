//! An auditor's independent check of a JSON Lines export (`grantflow export --format jsonl`),
//! using nothing of grantflow: only SHA-256 (`sha2`) and a JSON parser (`serde_json`).
//!
//! ```sh
//! cargo run --example auditor_check                  # builds a small store, exports it, checks it
//! cargo run --example auditor_check -- log.jsonl     # checks an export of your own
//! ```
//!
//! The rule (contract.md, "Hash chain"): `hash(n) = SHA-256(hash(n-1) || bytes(n))`, with
//! `hash(0)` = 32 zero bytes, where `bytes(n)` are the event's canonical bytes: compact JSON,
//! fields in contract order, without `hash`, ending with `"prev_hash":"<hex of hash(n-1)>"`.
//! Each exported line is exactly those bytes with `,"hash":"<hex>"` inserted before the
//! final `}`, so `bytes(n)` is the line with that field cut out again. Positions run
//! 1, 2, 3, ... without a gap. The check prints OK or the first bad position.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// What sits between an event's canonical bytes (without their final `}`) and its hash.
const HASH_FIELD: &str = ",\"hash\":\"";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let temporary = tempfile::tempdir()?;
    let export = match std::env::args().nth(1) {
        Some(path) => PathBuf::from(path),
        None => build_and_export(temporary.path()).await?,
    };

    let file = std::io::BufReader::new(std::fs::File::open(&export)?);
    let lines = file.lines().collect::<Result<Vec<String>, _>>()?;
    match check(&lines) {
        Ok(head) => {
            println!(
                "auditor_check: OK, {} events, head hash {head}",
                lines.len()
            );
        }
        Err((position, why)) => {
            println!("auditor_check: BAD at position {position}: {why}");
            std::process::exit(1);
        }
    }

    // Without a file of its own, also show that the check catches tampering: change one
    // amount in the export and check again; it must fail at that event's position.
    if std::env::args().nth(1).is_none() {
        let mut forged = lines.clone();
        let target = forged
            .iter()
            .position(|line| line.contains("\"amount\":\"2500.00\""))
            .ok_or_else(|| anyhow::anyhow!("no contribution of 2500.00 to tamper with"))?;
        forged[target] =
            forged[target].replace("\"amount\":\"2500.00\"", "\"amount\":\"25000.00\"");
        match check(&forged) {
            Err((position, why)) if position == target as u64 + 1 => {
                println!("tampered copy: BAD at position {position}: {why} (as expected)");
            }
            other => anyhow::bail!("the tampered copy was not caught where expected: {other:?}"),
        }
        println!("auditor_check: ok");
    }
    Ok(())
}

/// Checks the lines of an export; the last hash (hex), or the first bad position and why.
fn check(lines: &[String]) -> Result<String, (u64, String)> {
    let mut prev = [0u8; 32];
    for (index, line) in lines.iter().enumerate() {
        let expected_position = index as u64 + 1;
        let bad = |why: String| (expected_position, why);
        // The line must parse as JSON and carry the position we expect next (no gap).
        let fields: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let position = fields["position"].as_u64();
        if position != Some(expected_position) {
            return Err(bad(format!(
                "position {position:?}, expected {expected_position}"
            )));
        }
        // It must name the previous event's hash...
        if fields["prev_hash"].as_str() != Some(to_hex(&prev).as_str()) {
            return Err(bad("prev_hash is not the previous event's hash".into()));
        }
        // ...and end with its own hash, which must be SHA-256(prev || canonical bytes).
        let (body, tail) = line
            .rsplit_once(HASH_FIELD)
            .ok_or_else(|| bad("no hash field at the end".into()))?;
        let stated = tail
            .strip_suffix("\"}")
            .ok_or_else(|| bad("the hash field is not last".into()))?;
        let canonical = format!("{body}}}");
        let digest: [u8; 32] = Sha256::new()
            .chain_update(prev)
            .chain_update(canonical.as_bytes())
            .finalize()
            .into();
        if to_hex(&digest) != stated {
            return Err(bad(format!("hash {stated}, computed {}", to_hex(&digest))));
        }
        prev = digest;
    }
    Ok(to_hex(&prev))
}

/// Lowercase hex, as in the export.
fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The default: a small store (one fund, three contributions), exported through the engine
/// as `grantflow export --format jsonl` does; returns the export's path.
async fn build_and_export(dir: &Path) -> anyhow::Result<PathBuf> {
    use grantflow_engine::{transfer, Engine, Submission};
    use grantflow_store::EventStore;
    use grantflow_store_sled::SledStore;
    use serde_json::json;

    let data = dir.join("data");
    let store: Arc<dyn EventStore> =
        Arc::new(tokio::task::spawn_blocking(move || SledStore::open(&data)).await??);
    let engine = Engine::open(store.clone()).await?;
    let mut commands = vec![json!({"command": "register-fund", "fund": "F1",
        "name": "Audited fund", "currency": "USD"})];
    for (donor, amount) in [
        ("JP-GOV", "1000.00"),
        ("NO-GOV", "2500.00"),
        ("TH-GOV", "750.50"),
    ] {
        commands.push(
            json!({"command": "record-contribution", "fund": "F1", "donor": donor,
            "amount": amount, "received_on": "2026-01-01"}),
        );
    }
    for body in commands {
        let outcome = engine
            .submit(Submission::cli(body, Some("finance.officer".into())))
            .await?;
        anyhow::ensure!(outcome.is_ok(), "rejected: {}", outcome.to_json());
    }

    let path = dir.join("log.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    transfer::export_jsonl(store.as_ref(), &mut out, &|_, _| {}).await?;
    drop(out);
    engine.close().await?;
    println!("exported the store to {}", path.display());
    Ok(path)
}
