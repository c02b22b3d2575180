//! An integrator reading grantflow's events from NATS JetStream, and resuming after a
//! restart where it stopped: no event missed, none handled twice, the hash chain checked.
//!
//! ```sh
//! cargo run --example jetstream_consumer                              # nats://127.0.0.1:4222
//! GRANTFLOW_EXAMPLE_NATS=nats://host:4222 cargo run --example jetstream_consumer
//! ```
//!
//! The example runs an embedded engine and the relay (`grantflow_relay::run`, what `grantflow
//! relay nats` and `serve --relay-nats` run) into a stream of its own, then reads it as an
//! integrator would: each message is a CloudEvent whose `id` is the log position and whose
//! `data` is the envelope. The integrator keeps the last position it handled (its cursor)
//! and, after a restart, starts a consumer at the next stream sequence: on the relay's stream
//! sequence *k* is position *k*. Without a NATS server it says so and exits 0.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use grantflow_engine::{Engine, Submission};
use grantflow_relay::RelayOptions;
use grantflow_store::{Envelope, EventStore, ZERO_HASH};
use grantflow_store_sled::SledStore;
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("GRANTFLOW_EXAMPLE_NATS")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string());
    let client = match async_nats::connect(&url).await {
        Ok(client) => client,
        Err(error) => {
            println!("jetstream_consumer: skipped (no NATS server at {url}: {error})");
            return Ok(());
        }
    };
    let js = jetstream::new(client);
    let tag = std::process::id();
    let options = RelayOptions {
        stream: format!("GF_EXAMPLE_{tag}"),
        subject_prefix: format!("gfexample{tag}"),
        ..RelayOptions::new(url.clone())
    };

    // The system of record: an engine, and the relay publishing its log.
    let temporary = tempfile::tempdir()?;
    let path = temporary.path().join("data");
    let store: Arc<dyn EventStore> =
        Arc::new(tokio::task::spawn_blocking(move || SledStore::open(&path)).await??);
    let engine = Engine::open(store.clone()).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = {
        let (store, options) = (store.clone(), options.clone());
        tokio::spawn(async move {
            grantflow_relay::run(store, &options, async move {
                let _ = stopped.await;
            })
            .await
        })
    };
    record(&engine, 1..=10).await?;

    // The integrator, first run: handles 6 events, saving its cursor after each.
    let mut cursor = 0;
    let mut handled = Vec::new();
    let mut prev_hash = ZERO_HASH;
    for event in read(&js, &options.stream, cursor + 1, 6).await? {
        let envelope = handle(&event, &mut prev_hash)?;
        handled.push(envelope.position);
        cursor = envelope.position;
    }
    println!("run 1: handled positions 1..={cursor}, then stopped");

    // While it is down, more commands; then it resumes after its cursor.
    record(&engine, 11..=15).await?;
    let head = store.head().await?.position;
    println!("restarted: resuming from position {}", cursor + 1);
    for event in read(&js, &options.stream, cursor + 1, (head - cursor) as usize).await? {
        let envelope = handle(&event, &mut prev_hash)?;
        handled.push(envelope.position);
    }

    let _ = stop.send(());
    let report = relay.await??;
    engine.close().await?;
    let _ = js.delete_stream(&options.stream).await;
    let expected: Vec<u64> = (1..=head).collect();
    anyhow::ensure!(
        handled == expected,
        "jetstream_consumer: handled {handled:?}, expected 1..={head}"
    );
    println!(
        "jetstream_consumer: ok ({head} events, consecutive across the restart, chain intact; \
         the relay published {})",
        report.published
    );
    Ok(())
}

/// Checks one CloudEvent and its envelope (the chain from the previous one); returns the
/// envelope.
fn handle(event: &Value, prev_hash: &mut grantflow_store::Hash) -> anyhow::Result<Envelope> {
    let envelope = Envelope::from_line(&event["data"].to_string())?;
    let id = envelope.position.to_string();
    anyhow::ensure!(
        event["id"].as_str() == Some(id.as_str()),
        "id is the position"
    );
    anyhow::ensure!(
        envelope.prev_hash == *prev_hash,
        "the chain breaks at {}",
        envelope.position
    );
    *prev_hash = envelope.hash;
    println!(
        "  {} {} {}",
        envelope.position, event["subject"], event["type"]
    );
    Ok(envelope)
}

/// `count` messages of the stream from sequence `from` (an ordered consumer: in order, no
/// gap), waiting for them to be published.
async fn read(
    js: &jetstream::Context,
    stream: &str,
    from: u64,
    count: usize,
) -> anyhow::Result<Vec<Value>> {
    let stream = loop {
        match js.get_stream(stream).await {
            Ok(stream) => break stream,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?.take(count);
    let mut events = Vec::with_capacity(count);
    while let Some(message) = tokio::time::timeout(Duration::from_secs(30), messages.next())
        .await?
        .transpose()?
    {
        events.push(serde_json::from_slice(&message.payload)?);
    }
    Ok(events)
}

/// Registers the fund (once) and records one contribution per number.
async fn record(engine: &Engine, numbers: std::ops::RangeInclusive<u32>) -> anyhow::Result<()> {
    let mut commands = vec![json!({"command": "register-fund", "fund": "F1",
        "name": "JetStream fund", "currency": "USD", "command_id": "register-F1"})];
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
