//! The JetStream relay against the machine's real nats-server (JetStream on): every position
//! exactly once, in order, each message a CloudEvent whose `data` is the envelope, across
//! restarts and SIGKILLs of the relay while commands arrive.
//!
//! Reads the NATS URL from `GRANTFLOW_TEST_NATS` (`.ci/run` sets it) and, for the relay
//! beside a writer on a shared store, the database from `GRANTFLOW_TEST_POSTGRES`; without
//! them the tests say so and skip. Each test uses a stream and subject prefix of its own and
//! deletes the stream at the end.

mod util;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use grantflow_store::Envelope;
use serde_json::{json, Value};
use util::{add_token, http_json, Store};

fn nats_url() -> Option<String> {
    let url = std::env::var("GRANTFLOW_TEST_NATS").unwrap_or_default();
    if url.trim().is_empty() {
        eprintln!("skipped: GRANTFLOW_TEST_NATS is not set (e.g. nats://127.0.0.1:4222)");
        return None;
    }
    Some(url)
}

/// A stream name and subject prefix no other run uses.
fn unique(what: &str) -> (String, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tag = format!("{}_{}_{}", what, std::process::id(), nanos % 1_000_000_000);
    (format!("GFTEST_{tag}"), format!("gftest_{tag}"))
}

/// Every message of the JetStream stream, in sequence order, as (Nats-Msg-Id, subject,
/// CloudEvent JSON).
async fn messages(url: &str, stream: &str) -> Vec<(String, String, Value)> {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    let mut handle = js.get_stream(stream).await.expect("the relay's stream");
    let last = handle
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let mut out = Vec::new();
    for sequence in 1..=last {
        let message = handle
            .get_raw_message(sequence)
            .await
            .unwrap_or_else(|error| panic!("message {sequence}: {error}"));
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .map(|value| value.as_str().to_string())
            .unwrap_or_default();
        let event: Value = serde_json::from_slice(&message.payload).expect("a JSON message");
        out.push((id, message.subject.to_string(), event));
    }
    out
}

async fn delete_stream(url: &str, stream: &str) {
    if let Ok(client) = async_nats::connect(url).await {
        let _ = async_nats::jetstream::new(client)
            .delete_stream(stream)
            .await;
    }
}

/// Waits until the stream's last sequence reaches `head` (or `timeout` passes).
async fn wait_for(url: &str, stream: &str, head: u64, timeout: Duration) -> u64 {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + timeout;
    let mut last = 0;
    while Instant::now() < deadline {
        if let Ok(mut handle) = js.get_stream(stream).await {
            if let Ok(info) = handle.info().await {
                last = info.state.last_sequence;
                if last >= head {
                    return last;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

/// The stream holds positions 1..=head exactly once, in order: message k is position k, on
/// its subject, a CloudEvent whose `data` is the log's envelope (its hash chain intact).
fn check_exactly_once(messages: &[(String, String, Value)], prefix: &str, head: u64) {
    assert_eq!(
        messages.len() as u64,
        head,
        "the stream holds {} messages for {head} events",
        messages.len()
    );
    let mut prev_hash = grantflow_store::ZERO_HASH;
    let source = messages[0].2["source"].clone();
    for (index, (id, subject, event)) in messages.iter().enumerate() {
        let position = index as u64 + 1;
        assert_eq!(
            id,
            &position.to_string(),
            "message {position}'s Nats-Msg-Id"
        );
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"], position.to_string());
        assert_eq!(event["source"], source, "one source for the whole log");
        let envelope = Envelope::from_line(&event["data"].to_string())
            .unwrap_or_else(|error| panic!("message {position}'s data: {error}"));
        assert_eq!(envelope.position, position);
        assert_eq!(envelope.prev_hash, prev_hash, "the chain at {position}");
        prev_hash = envelope.hash;
        assert_eq!(event["type"], envelope.event_type);
        assert_eq!(event["subject"], envelope.stream);
        assert_eq!(event["time"], envelope.recorded_at);
        let (kind, entity) = envelope.stream.split_once('-').expect("kind-id");
        let short = envelope
            .event_type
            .split_once('.')
            .expect("a dotted type")
            .1;
        assert_eq!(
            subject,
            &format!("{prefix}.{kind}.{}.{short}", entity.replace('.', "_")),
        );
    }
    assert!(source
        .as_str()
        .is_some_and(|s| s.starts_with("urn:grantflow:log:")));
}

/// The relay's first line on standard error (once it knows where to resume); the rest is
/// drained on a thread.
fn started(child: &mut Child) -> String {
    use std::io::BufRead;
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("a line from the relay");
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    line
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().expect("the child exits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_relays_the_log_exactly_once_across_restarts() {
    let Some(url) = nats_url() else { return };
    let (stream, prefix) = unique("serve");
    let store = Store::new();
    assert!(store.run(&["demo"]).status.success());
    let finance = add_token(&store, "fin.relay", "finance");
    let relay_args = [
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--relay-nats",
        url.as_str(),
        "--relay-stream",
        stream.as_str(),
        "--relay-subject-prefix",
        prefix.as_str(),
    ];
    let mut head = 41;
    for round in 0..3 {
        let (mut child, addr) = util::spawn_serve(&store, &relay_args);
        for i in 0..5 {
            let body = json!({"command": "record-income", "fund": "UNTFHS", "kind": "interest",
                "amount": format!("{}.00", 10 + i), "received_on": "2013-05-01"});
            let (status, answer) =
                http_json(addr, "POST", "/v1/commands", Some(&finance), Some(&body))
                    .expect("the server answers");
            assert_eq!(status, 200, "round {round}: {answer}");
            head += 1;
        }
        let reached = wait_for(&url, &stream, head, Duration::from_secs(30)).await;
        assert_eq!(reached, head, "round {round}: the relay fell behind");
        let status = terminate(&mut child);
        assert!(status.success(), "serve exits cleanly: {status}");
    }
    let all = messages(&url, &stream).await;
    delete_stream(&url, &stream).await;
    check_exactly_once(&all, &prefix, head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_at_random_moments_loses_and_repeats_nothing() {
    let Some(url) = nats_url() else { return };
    let pg = std::env::var("GRANTFLOW_TEST_POSTGRES").unwrap_or_default();
    if pg.trim().is_empty() {
        eprintln!("skipped: GRANTFLOW_TEST_POSTGRES is not set (the relay beside a writer)");
        return;
    }
    let kills = util::env_u64("GRANTFLOW_RELAY_KILLS", 8);
    let seed = util::seed_from_env("GRANTFLOW_RELAY_SEED");
    let mut rng = util::Rng(seed);
    let (stream, prefix) = unique("kill");
    let schema = util::PgSchema::new(&pg, "relay");
    let store_url = schema.url();
    let store = Store::new();
    let on_pg = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--store".to_string(), store_url.clone()];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    };
    let args = on_pg(&["demo"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let demo = store.run(&args);
    assert!(demo.status.success(), "{}", util::stderr(&demo));
    // A writer: contributions arriving while the relay is killed and restarted.
    let commands: Vec<Value> = (0..3_000)
        .map(|i| {
            json!({"command": "record-income", "fund": "UNTFHS", "kind": "interest",
                "amount": format!("{}.{:02}", 1 + i / 100, i % 100), "received_on": "2013-05-01",
                "actor": "fin.writer"})
        })
        .collect();
    let input = store.path("commands.jsonl");
    std::fs::write(&input, util::lines(&commands)).expect("write commands");
    let exec = on_pg(&["exec", input.to_str().expect("a UTF-8 path")]);
    let exec: Vec<&str> = exec.iter().map(String::as_str).collect();
    let mut writer = store
        .command(&exec)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("exec starts");
    let relay = on_pg(&[
        "relay",
        "nats",
        "--url",
        url.as_str(),
        "--stream",
        stream.as_str(),
        "--subject-prefix",
        prefix.as_str(),
    ]);
    let relay: Vec<&str> = relay.iter().map(String::as_str).collect();
    for _ in 0..kills {
        let mut child = store
            .command(&relay)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("relay starts");
        // Anywhere: starting, resuming, publishing, awaiting acknowledgements.
        std::thread::sleep(Duration::from_millis(100 + rng.below(700)));
        util::kill_after(&mut child, Duration::ZERO);
    }
    let status = writer.wait().expect("exec ends");
    assert!(status.success(), "the writer failed: {status}");
    let head_args = on_pg(&["checkpoint"]);
    let head_args: Vec<&str> = head_args.iter().map(String::as_str).collect();
    let head = store.json(&head_args)["position"]
        .as_u64()
        .expect("a checkpoint position");
    assert_eq!(head, 41 + 3_000);
    // The last run catches up and stops cleanly.
    let mut last = store
        .command(&relay)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("relay starts");
    let said = started(&mut last);
    assert!(said.contains("relaying to the JetStream stream"), "{said}");
    let reached = wait_for(&url, &stream, head, Duration::from_secs(120)).await;
    let status = terminate(&mut last);
    let all = messages(&url, &stream).await;
    delete_stream(&url, &stream).await;
    assert_eq!(reached, head, "the relay did not catch up");
    assert!(
        status.success(),
        "the relay exits cleanly on SIGTERM: {status}"
    );
    check_exactly_once(&all, &prefix, head);
    println!(
        "relay killed {kills} times (seed {seed}): {head} events, each exactly once, in order"
    );
}
