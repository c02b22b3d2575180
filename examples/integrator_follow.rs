//! An integrator following the event log, and resuming after a restart where it stopped:
//! no event missed, none delivered twice.
//!
//! ```sh
//! cargo run --example integrator_follow            # in a temporary directory
//! cargo run --example integrator_follow -- ./dir   # store and cursor file in ./dir
//! ```
//!
//! A subscription (`grantflow_store::subscribe`) delivers every event from a position on:
//! first the past, then each new event once it is durable. The integrator saves the
//! position of the last event it has *handled* (its cursor) and, after a restart,
//! subscribes again from the next one. Over HTTP the same is `GET /v1/events/stream` with
//! `Last-Event-ID: <cursor>` (each SSE event's `id` is its position).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use grantflow_engine::{Engine, Submission};
use grantflow_store::{subscribe, EventStore};
use grantflow_store_sled::SledStore;
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let temporary = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| temporary.path().to_path_buf());
    let data = dir.join("data");
    let cursor_file = dir.join("integrator.cursor");
    // Every position the integrator handled, across both of its runs, after the cursor it
    // starts from (0 the first time; a directory given as argument may hold an older one).
    let start = read_cursor(&cursor_file)?;
    let mut handled = Vec::new();

    // First run: the engine registers a fund and records 10 contributions; the integrator
    // handles 6 events, saving its cursor after each, then the process "stops" (everything
    // is closed).
    {
        let engine = open_engine(&data).await?;
        append_contributions(&engine, 1..=10).await?;
        let mut events = subscribe(engine.store().clone(), start + 1, None);
        for _ in 0..6 {
            let event = events
                .next()
                .await
                .ok_or_else(|| anyhow::anyhow!("stream ended"))??;
            println!(
                "run 1: {} {} {}",
                event.position, event.stream, event.event_type
            );
            handled.push(event.position);
            // Save the cursor only once the event is handled (here: printed): at worst an
            // event is handled again after a crash between the two, never skipped.
            save_cursor(&cursor_file, event.position)?;
        }
        drop(events);
        engine.close().await?;
    }

    // Meanwhile, more commands are recorded while the integrator is down.
    {
        let engine = open_engine(&data).await?;
        append_contributions(&engine, 11..=15).await?;
        engine.close().await?;
    }

    // Second run: resume after the saved cursor and follow until the head, while one more
    // command arrives live.
    let engine = open_engine(&data).await?;
    let from = read_cursor(&cursor_file)? + 1;
    println!("restarted: resuming from position {from}");
    let mut events = subscribe(engine.store().clone(), from, None);
    append_contributions(&engine, 16..=16).await?;
    let head = engine.store().head().await?.position;
    while handled.last().copied().unwrap_or(start) < head {
        let event = events
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("stream ended"))??;
        println!(
            "run 2: {} {} {}",
            event.position, event.stream, event.event_type
        );
        handled.push(event.position);
        save_cursor(&cursor_file, event.position)?;
    }
    drop(events);
    engine.close().await?;

    // No gap, no duplicate: the positions handled are exactly start + 1, ..., head.
    let expected: Vec<u64> = (start + 1..=head).collect();
    if handled == expected {
        println!(
            "integrator_follow: ok (positions {}..={head}, consecutive across the restart)",
            start + 1
        );
        Ok(())
    } else {
        anyhow::bail!(
            "integrator_follow: positions {handled:?}, expected {}..={head}",
            start + 1
        )
    }
}

/// Opens the engine on the sled store in `data` (created when absent).
async fn open_engine(data: &Path) -> anyhow::Result<Engine> {
    let data = data.to_path_buf();
    // Opening sled is blocking file I/O: off the async threads.
    let store: Arc<dyn EventStore> =
        Arc::new(tokio::task::spawn_blocking(move || SledStore::open(&data)).await??);
    Ok(Engine::open(store).await?)
}

/// Registers the fund (once: its fixed command id makes a repeat a no-op) and records one
/// new contribution per number (no command id: each call appends).
async fn append_contributions(
    engine: &Engine,
    numbers: std::ops::RangeInclusive<u32>,
) -> anyhow::Result<()> {
    let register = json!({"command": "register-fund", "fund": "F1", "name": "Follow fund",
        "currency": "USD", "command_id": "register-F1"});
    let mut commands = vec![register];
    for n in numbers {
        commands.push(json!({"command": "record-contribution", "fund": "F1",
            "donor": format!("DONOR-{n}"), "amount": "1000.00", "received_on": "2026-01-01"}));
    }
    for body in commands {
        let outcome = engine
            .submit(Submission::cli(body, Some("finance.officer".into())))
            .await?;
        anyhow::ensure!(outcome.is_ok(), "rejected: {}", outcome.to_json());
    }
    Ok(())
}

/// The last position handled (0 before the first run).
fn read_cursor(path: &Path) -> anyhow::Result<u64> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().parse()?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(error.into()),
    }
}

/// Saves the cursor atomically: write a temporary file, then rename it over the old one.
fn save_cursor(path: &Path, position: u64) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, position.to_string())?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}
