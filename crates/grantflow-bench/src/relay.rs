//! The relay scenarios, against a NATS server with JetStream (`--nats URL`, else
//! `GRANTFLOW_TEST_NATS`; skipped without one):
//!
//! - `relay-catchup`: a store of `--relay-events` events (the generated workload, appended by
//!   the engine in process) published by the relay from position 1, as `grantflow relay
//!   nats` does after a long stop: events/s until the stream holds the head. Its baseline in
//!   the same run, `relay-floor`: the same CloudEvent bytes, with the same headers and the
//!   same number of publishes in flight, published by a bare async-nats JetStream publisher
//!   to a stream of its own (what NATS allows, with no log to read).
//! - `relay-lag`: the relay following a live engine; commands submitted one after another;
//!   the time from a command's durable answer to the moment an ordered JetStream consumer
//!   receives its last event (p50, p99).
//!
//! Every stream is created with a name and subjects of this run's own and deleted after.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use grantflow_bench::workload::generate;
use grantflow_engine::{Engine, Submission};
use grantflow_relay::{cloud_event, subject, RelayOptions};
use grantflow_store::EventStore;
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::env::fresh;
use crate::measure::{histogram, ratio};
use crate::report::{round, Report};

/// Runs the relay scenarios.
pub(crate) async fn run(config: &Config, root: &Path, report: &mut Report) -> anyhow::Result<()> {
    let Some(url) = config.nats.clone() else {
        report.skipped(
            "relay",
            "no NATS server: pass --nats URL or set GRANTFLOW_TEST_NATS",
        );
        return Ok(());
    };
    let client = match async_nats::connect(&url).await {
        Ok(client) => client,
        Err(error) => {
            report.skipped("relay", &format!("cannot reach NATS at {url}: {error}"));
            return Ok(());
        }
    };
    let js = jetstream::new(client);
    let tag = format!("{}_{}", std::process::id(), config.seed);

    // The store: the workload appended in process, pipelined.
    let dir = fresh(root, "relay-store")?;
    let store: Arc<dyn EventStore> = {
        let dir = dir.clone();
        Arc::new(
            tokio::task::spawn_blocking(move || grantflow_store_sled::SledStore::open(&dir))
                .await??,
        )
    };
    let engine = Engine::open(store.clone()).await?;
    let workload = generate(config.seed, config.lanes, 0, config.relay_events);
    let mut pending = VecDeque::new();
    for command in &workload.commands {
        pending.push_back(
            engine
                .enqueue(Submission::cli(command.body.clone(), None))
                .await?,
        );
        if pending.len() >= 4_096 {
            if let Some(next) = pending.pop_front() {
                next.wait().await?;
            }
        }
    }
    for next in pending {
        next.wait().await?;
    }
    let head = store.head().await?.position;

    // relay-catchup.
    let options = RelayOptions {
        stream: format!("GF_BENCH_RELAY_{tag}"),
        subject_prefix: format!("gfbench{tag}"),
        ..RelayOptions::new(url.clone())
    };
    let started = Instant::now();
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
    wait_for(&js, &options.stream, head, Duration::from_secs(600)).await?;
    let seconds = started.elapsed().as_secs_f64();
    let catchup_rate = head as f64 / seconds.max(1e-9);
    let mut f = Map::new();
    f.insert("events".into(), json!(head));
    f.insert("seconds".into(), round(seconds));
    f.insert("events_per_s".into(), round(catchup_rate));

    // relay-lag: the same relay, now following the live engine.
    let lag = lag(config, &engine, &js, &options, head).await;
    let _ = stop.send(());
    let relayed = relay.await?;
    let _ = js.delete_stream(&options.stream).await;
    relayed.context("the relay failed")?;
    let lag = lag?;

    // relay-floor: the same messages from a bare publisher.
    let floor = floor(&js, store.as_ref(), &tag, head).await?;
    f.insert("floor_events_per_s".into(), round(floor));
    f.insert("x_floor".into(), ratio(Some(catchup_rate), Some(floor)));
    report.line("relay-catchup", f);
    let mut f = Map::new();
    f.insert("events_per_s".into(), round(floor));
    f.insert("events".into(), json!(head));
    report.line("relay-floor", f);
    report.line("relay-lag", lag);
    engine.close().await?;
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Waits until the stream's last sequence reaches `head`.
async fn wait_for(
    js: &jetstream::Context,
    name: &str,
    head: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut handle) = js.get_stream(name).await {
            if handle.info().await?.state.last_sequence >= head {
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the stream {name} did not reach {head} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Commands one after another; the time from each durable answer to its last event's
/// arrival at an ordered consumer.
async fn lag(
    config: &Config,
    engine: &Engine,
    js: &jetstream::Context,
    options: &RelayOptions,
    head: u64,
) -> anyhow::Result<Map<String, Value>> {
    let handle = js.get_stream(&options.stream).await?;
    let consumer = handle
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: head + 1,
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut hist = histogram();
    for i in 0..config.relay_lag_commands {
        let body = json!({"command": "register-fund", "fund": format!("LAG-{i}"),
            "name": "Lag fund", "currency": "USD", "actor": "finance.bench"});
        let outcome = engine.submit(Submission::cli(body, None)).await?;
        anyhow::ensure!(outcome.is_ok(), "rejected: {}", outcome.to_json());
        let answered = Instant::now();
        let position = head + i as u64 + 1;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), messages.next())
                .await
                .context("no message within 30 s")?
                .context("the consumer ended")??;
            let id = message
                .headers
                .as_ref()
                .and_then(|headers| headers.get("Nats-Msg-Id"))
                .and_then(|id| id.as_str().parse::<u64>().ok());
            if id == Some(position) {
                break;
            }
        }
        crate::measure::record(&mut hist, answered);
    }
    let ms = |q: f64| round(hist.value_at_quantile(q) as f64 / 1000.0);
    let mut f = Map::new();
    f.insert("commands".into(), json!(hist.len()));
    f.insert("p50_ms".into(), ms(0.5));
    f.insert("p99_ms".into(), ms(0.99));
    f.insert("max_ms".into(), ms(1.0));
    Ok(f)
}

/// The floor: the log's CloudEvents published by a bare JetStream publisher, 256 in flight,
/// with the relay's headers; events/s.
async fn floor(
    js: &jetstream::Context,
    store: &dyn EventStore,
    tag: &str,
    head: u64,
) -> anyhow::Result<f64> {
    let name = format!("GF_BENCH_FLOOR_{tag}");
    let prefix = format!("gffloor{tag}");
    js.get_or_create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{prefix}.>")],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    // The messages first (reading the log is not what this baseline measures).
    let mut messages = Vec::with_capacity(head as usize);
    let mut next = 1;
    while next <= head {
        let page = store.read(next, 4_096).await?;
        anyhow::ensure!(!page.is_empty(), "the log ends before its head");
        for envelope in &page {
            messages.push((
                envelope.position,
                subject(&prefix, envelope),
                cloud_event("urn:grantflow:bench", envelope),
            ));
        }
        next += page.len() as u64;
    }
    let started = Instant::now();
    let mut in_flight = VecDeque::new();
    for (position, subject, body) in messages {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Content-Type", "application/cloudevents+json");
        let mut message = jetstream::message::PublishMessage::build()
            .payload(body.into())
            .headers(headers)
            .message_id(position.to_string());
        if position > 1 {
            message = message.expected_last_message_id((position - 1).to_string());
        }
        in_flight.push_back(js.send_publish(subject, message).await?);
        if in_flight.len() >= grantflow_relay::DEFAULT_IN_FLIGHT_MAX {
            if let Some(ack) = in_flight.pop_front() {
                ack.await?;
            }
        }
    }
    for ack in in_flight {
        ack.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = js.delete_stream(&name).await;
    Ok(head as f64 / seconds.max(1e-9))
}
