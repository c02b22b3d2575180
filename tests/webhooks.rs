//! Signed webhooks end to end: the real `grantflow serve` delivering to a receiver on a real
//! socket that checks every signature with the secret `webhook add` printed (with its own
//! HMAC-SHA256, not grantflow's), fails the first attempts, is slow once, while commands
//! arrive over HTTP and from the command line, across a restart of the server. Every event
//! after each subscription's start arrives, in order, with no gap; a wrong secret fails
//! verification; a subscription that keeps failing is disabled and resumes when enabled.
//!
//! The PostgreSQL test (`GRANTFLOW_TEST_POSTGRES`; skipped, saying so, without it) runs two
//! servers on one store: each event is delivered once, never by both, and a third server
//! takes over when the first two stop. Over HTTPS, a receiver whose certificate the trust
//! store does not hold gets nothing; trusted (tests/fixtures/webhook-tls), it gets the event.

mod util;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use util::{add_token, http_json, stderr, stdout, Store};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    msg_id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    /// The position the CloudEvent carries.
    position: u64,
    /// The signature held under the path's secret.
    verified: bool,
    /// What the receiver answered (0: it was slow, and the sender had given up).
    status: u16,
}

/// How the receiver answers one path.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// 2xx at once.
    Take,
    /// 500 for the first `fail` requests, then slow (past the sender's timeout) on request
    /// `slow` (counting from 1), 2xx otherwise.
    FailThenSlow { fail: usize, slow: usize },
    /// 503 while `failing` is set.
    Switch,
}

#[derive(Default)]
struct Shared {
    keys: HashMap<String, Vec<u8>>,
    behaviours: HashMap<String, Behaviour>,
    failing: bool,
    received: Vec<Received>,
}

/// A webhook receiver on a loopback port: one thread per connection, HTTP/1.1, one request
/// per connection (it answers `Connection: close`).
struct Receiver {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

const SLOW: Duration = Duration::from_millis(1_500);

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Mutex::new(Shared {
            failing: true,
            ..Shared::default()
        }));
        let state = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = state.clone();
                std::thread::spawn(move || serve_one(stream, &state));
            }
        });
        Receiver { addr, shared }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn set(&self, path: &str, secret: &str, behaviour: Behaviour) {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
            .expect("base64 after whsec_");
        assert!(
            (24..=64).contains(&key.len()),
            "a key of {} bytes",
            key.len()
        );
        let mut shared = self.shared.lock().expect("lock");
        shared.keys.insert(path.to_string(), key);
        shared.behaviours.insert(path.to_string(), behaviour);
    }

    fn received(&self, path: &str) -> Vec<Received> {
        let shared = self.shared.lock().expect("lock");
        shared
            .received
            .iter()
            .filter(|received| received.path == path)
            .cloned()
            .collect()
    }

    /// The positions answered 2xx on `path`, in order of arrival.
    fn taken(&self, path: &str) -> Vec<u64> {
        self.received(path)
            .iter()
            .filter(|received| (200..300).contains(&received.status))
            .map(|received| received.position)
            .collect()
    }

    /// Waits (at most 30 s) until `path` took every position of `expected`.
    fn wait_for(&self, path: &str, expected: &[u64]) {
        let started = Instant::now();
        loop {
            let taken = self.taken(path);
            if expected.iter().all(|position| taken.contains(position)) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{path} took {taken:?}, waiting for {expected:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve_one(mut stream: TcpStream, shared: &Mutex<Shared>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.is_empty() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|length| length.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
    let (msg_id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let position: u64 = event["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    let (verified, behaviour, number, failing) = {
        let shared = shared.lock().expect("lock");
        let verified = shared
            .keys
            .get(&path)
            .is_some_and(|key| verify(key, &msg_id, &timestamp, &signature, &body));
        let number = shared.received.iter().filter(|r| r.path == path).count() + 1;
        (
            verified,
            shared.behaviours.get(&path).copied(),
            number,
            shared.failing,
        )
    };
    let status = match behaviour {
        _ if !verified => 401,
        Some(Behaviour::Take) => 204,
        Some(Behaviour::FailThenSlow { fail, .. }) if number <= fail => 500,
        Some(Behaviour::FailThenSlow { slow, .. }) if number == slow => 0,
        Some(Behaviour::FailThenSlow { .. }) => 200,
        Some(Behaviour::Switch) if failing => 503,
        Some(Behaviour::Switch) => 200,
        None => 404,
    };
    shared.lock().expect("lock").received.push(Received {
        path,
        msg_id,
        timestamp,
        signature,
        body,
        position,
        verified,
        status,
    });
    let code = if status == 0 {
        // Slow: past the sender's timeout, which has given up by now.
        std::thread::sleep(SLOW);
        200
    } else {
        status
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

/// The Standard Webhooks check, written from the specification: `v1,<base64 of
/// HMAC-SHA256(key, "<id>.<timestamp>.<body>")>` among the header's space-separated
/// signatures, and a timestamp within five minutes.
fn verify(key: &[u8], msg_id: &str, timestamp: &str, signatures: &str, body: &[u8]) -> bool {
    let Ok(time) = timestamp.parse::<i64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0);
    if (now - time).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    signatures.split(' ').any(|signature| signature == expected)
}

/// An event as a command's result lists it.
#[derive(Debug, Clone)]
struct Appended {
    position: u64,
    stream: String,
    event_type: String,
}

fn appended(result: &Value) -> Vec<Appended> {
    assert_eq!(result["ok"], true, "{result}");
    result["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| Appended {
            position: event["position"].as_u64().expect("position"),
            stream: event["stream"].as_str().expect("stream").to_string(),
            event_type: event["type"].as_str().expect("type").to_string(),
        })
        .collect()
}

/// One round of the delivery test's traffic through the API: a contribution to F1 or F2
/// (finance), a proposal of grant `G<round>` (secretariat), its approval (approver).
fn grant_round(addr: SocketAddr, [fin, sec, boss]: [&str; 3], round: u32) -> Vec<Appended> {
    let fund = if round.is_multiple_of(2) { "F1" } else { "F2" };
    let grant = format!("G{round}");
    let mut events = post(
        addr,
        fin,
        json!({"command": "record-contribution", "fund": fund, "donor": "D", "amount": "1000.00", "received_on": "2020-01-01"}),
    );
    events.extend(post(addr, sec, json!({"command": "submit-proposal", "fund": fund, "grant": grant, "title": "T", "amount": "100.00"})));
    events.extend(post(
        addr,
        boss,
        json!({"command": "approve-grant", "grant": grant, "decided_on": "2020-01-02"}),
    ));
    events
}

fn post(addr: SocketAddr, token: &str, body: Value) -> Vec<Appended> {
    let (status, answer) = http_json(addr, "POST", "/v1/commands", Some(token), Some(&body))
        .expect("the server answers");
    assert_eq!(status, 200, "{body} -> {answer}");
    appended(&answer)
}

/// `webhook add`: the id (first line) and the secret (last line).
fn add_webhook(store: &Store, pre: &[&str], args: &[&str]) -> (String, String) {
    let mut all: Vec<&str> = pre.to_vec();
    all.extend(["webhook", "add"]);
    all.extend(args);
    let output = store.run(&all);
    assert!(output.status.success(), "webhook add: {}", stderr(&output));
    let text = stdout(&output);
    let id = text
        .split_whitespace()
        .nth(1)
        .expect("webhook <id> ...")
        .to_string();
    let secret = text.lines().last().expect("a last line").trim().to_string();
    assert!(secret.starts_with("whsec_"), "{text}");
    (id, secret)
}

fn webhook_json(store: &Store, pre: &[&str], args: &[&str]) -> Value {
    let mut all: Vec<&str> = pre.to_vec();
    all.push("webhook");
    all.extend(args);
    all.push("--json");
    store.json(&all)
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("serve exits");
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
}

/// Checks what `path` took against `expected` (ascending): the first delivery of each
/// position in order, no gap, nothing else; a delivery again only of a position already
/// taken (at least once), at most `repeats` of them.
fn check_order(receiver: &Receiver, path: &str, expected: &[u64], repeats: usize) {
    let taken = receiver.taken(path);
    let mut firsts = Vec::new();
    for position in &taken {
        if !firsts.contains(position) {
            firsts.push(*position);
        }
    }
    assert_eq!(
        firsts, expected,
        "{path}: first deliveries in log order, no gap"
    );
    assert!(
        taken.len() - firsts.len() <= repeats,
        "{path}: {} deliveries again ({taken:?})",
        taken.len() - firsts.len()
    );
}

#[test]
fn webhooks_deliver_every_event_in_order_signed_across_failures_and_a_restart() {
    let receiver = Receiver::start();
    let store = Store::new();
    let fin = add_token(&store, "fin", "finance");
    let sec = add_token(&store, "sec", "secretariat");
    let boss = add_token(&store, "boss", "approver");
    // Before any subscription: not delivered.
    let (results, code) = store.exec(&util::lines(&[
        json!({"command": "register-fund", "fund": "F1", "name": "One", "currency": "USD", "actor": "fin"}),
        json!({"command": "register-fund", "fund": "F2", "name": "Two", "currency": "USD", "actor": "fin"}),
    ]));
    assert_eq!(code, 0, "{results:?}");

    let (a, secret_a) = add_webhook(
        &store,
        &[],
        &[
            "--url",
            &receiver.url("/a"),
            "--types",
            "grant.*,fund.contribution_recorded",
        ],
    );
    let (b, secret_b) = add_webhook(&store, &[], &["--url", &receiver.url("/b"), "--fund", "F2"]);
    let (c, secret_c) = add_webhook(&store, &[], &["--url", &receiver.url("/c")]);
    receiver.set(
        "/a",
        &secret_a,
        Behaviour::FailThenSlow { fail: 3, slow: 6 },
    );
    receiver.set("/b", &secret_b, Behaviour::Take);
    receiver.set("/c", &secret_c, Behaviour::Switch);
    let listed = webhook_json(&store, &[], &["list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
    assert_eq!(listed[0]["start_after"], 2, "{listed}");
    let listing = stdout(&store.run(&["webhook", "list"]));
    for secret in [&secret_a, &secret_b, &secret_c] {
        assert!(
            !listing.contains(secret.as_str()) && !listed.to_string().contains(secret.as_str())
        );
    }

    let serve_args = [
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--webhook-max-failures",
        "5",
        "--webhook-retry-base-ms",
        "20",
        "--webhook-timeout-ms",
        "500",
    ];
    let mut events: Vec<Appended> = Vec::new();
    let (server, addr) = util::spawn_serve(&store, &serve_args);
    for round in 0..6 {
        events.extend(grant_round(addr, [&fin, &sec, &boss], round));
    }
    // Subscription c keeps failing: disabled after 5 attempts, seen by the command line
    // while the server holds the store.
    let started = Instant::now();
    loop {
        let listed = webhook_json(&store, &[], &["list"]);
        let c_listed = listed
            .as_array()
            .and_then(|all| all.iter().find(|s| s["id"] == c.as_str()))
            .expect("c listed")
            .clone();
        if c_listed["enabled"] == false {
            assert_eq!(c_listed["failures"], 5, "{c_listed}");
            assert!(
                c_listed["disabled_reason"]
                    .as_str()
                    .is_some_and(|reason| reason.contains("5 failed attempts in a row")),
                "{c_listed}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "c is never disabled: {c_listed}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let attempts = webhook_json(&store, &[], &["deliveries", &c]);
    let attempts = attempts.as_array().expect("attempts");
    assert_eq!(attempts.len(), 5, "{attempts:?}");
    assert!(attempts
        .iter()
        .all(|attempt| attempt["status"] == 503 && attempt["position"] == 3));
    assert_eq!(
        attempts
            .iter()
            .map(|attempt| attempt["attempt"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    // A subscription added while the server holds the store starts after the head then.
    let head = events.last().map(|e| e.position).expect("events");
    let (d, secret_d) = add_webhook(&store, &[], &["--url", &receiver.url("/d")]);
    receiver.set("/d", &secret_d, Behaviour::Take);
    let d_listed = webhook_json(&store, &[], &["list"]);
    let d_listed = d_listed
        .as_array()
        .and_then(|all| all.iter().find(|s| s["id"] == d.as_str()))
        .expect("d listed")
        .clone();
    assert_eq!(d_listed["start_after"], head, "{d_listed}");
    // a is past its failures and its slow answer before the restart.
    let a_expected = |events: &[Appended]| -> Vec<u64> {
        events
            .iter()
            .filter(|e| {
                e.event_type.starts_with("grant.") || e.event_type == "fund.contribution_recorded"
            })
            .map(|e| e.position)
            .collect()
    };
    receiver.wait_for("/a", &a_expected(&events));
    let a_attempts = webhook_json(&store, &[], &["deliveries", &a]);
    let failed: Vec<&Value> = a_attempts
        .as_array()
        .expect("attempts")
        .iter()
        .filter(|attempt| attempt["error"].is_string())
        .collect();
    assert_eq!(failed.len(), 4, "3 refusals and one timeout: {a_attempts}");
    assert!(
        failed[3]["error"]
            .as_str()
            .is_some_and(|error| error.contains("no answer within 500 ms")),
        "{a_attempts}"
    );
    stop(server);

    // While the server is down: the command line appends; delivered after the restart.
    for args in [
        [
            "--actor",
            "fin",
            "record-contribution",
            "--fund",
            "F2",
            "--donor",
            "E",
            "--amount",
            "5.00",
            "--received-on",
            "2020-02-01",
            "--json",
        ],
        [
            "--actor",
            "fin",
            "record-contribution",
            "--fund",
            "F1",
            "--donor",
            "E",
            "--amount",
            "7.00",
            "--received-on",
            "2020-02-01",
            "--json",
        ],
    ] {
        events.extend(appended(&store.json(&args)));
    }
    let (server, addr) = util::spawn_serve(&store, &serve_args);
    for round in 6..10 {
        events.extend(grant_round(addr, [&fin, &sec, &boss], round));
    }
    // c resumes from the event that failed once enabled and its receiver takes it.
    receiver.shared.lock().expect("lock").failing = false;
    let enabled = store.run(&["webhook", "enable", &c]);
    assert!(enabled.status.success(), "{}", stderr(&enabled));
    assert!(
        stdout(&enabled).contains("resume after position 2"),
        "{}",
        stdout(&enabled)
    );

    let all: Vec<u64> = events.iter().map(|e| e.position).collect();
    let b_expected: Vec<u64> = events
        .iter()
        .filter(|e| {
            e.stream == "fund-F2"
                || e.stream
                    .strip_prefix("grant-G")
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n % 2 == 1)
        })
        .map(|e| e.position)
        .collect();
    receiver.wait_for("/a", &a_expected(&events));
    receiver.wait_for("/b", &b_expected);
    receiver.wait_for("/c", &all);
    let d_expected: Vec<u64> = all.iter().copied().filter(|p| *p > head).collect();
    receiver.wait_for("/d", &d_expected);
    stop(server);

    // The log agrees with what the commands reported: positions 3.. without a gap.
    let logged = store.events();
    assert_eq!(logged.len() as u64, 2 + events.len() as u64);
    assert_eq!(all, (3..=logged.len() as u64).collect::<Vec<u64>>());
    for event in &events {
        let stored = &logged[event.position as usize - 1];
        assert_eq!(stored["type"], event.event_type.as_str());
    }
    // In order, no gap, each first delivery once; the cursor survived the restart (a
    // delivery again only of what a stop cut short).
    check_order(&receiver, "/a", &a_expected(&events), 1);
    check_order(&receiver, "/b", &b_expected, 1);
    check_order(&receiver, "/c", &all, 1);
    check_order(&receiver, "/d", &d_expected, 1);
    let a_received = receiver.received("/a");
    assert!(a_received.iter().filter(|r| r.status == 500).count() == 3);
    assert!(a_received.iter().filter(|r| r.status == 0).count() == 1);

    // Every request was signed with its subscription's secret; another secret fails.
    let (_, wrong) = {
        let other = add_webhook(&store, &[], &["--url", &receiver.url("/unused")]);
        (other.0, other.1)
    };
    let wrong_key = STANDARD.decode(&wrong["whsec_".len()..]).expect("base64");
    for (path, id) in [("/a", &a), ("/b", &b), ("/c", &c), ("/d", &d)] {
        for received in receiver.received(path) {
            assert!(received.verified, "{path}: {received:?}");
            assert!(
                !verify(
                    &wrong_key,
                    &received.msg_id,
                    &received.timestamp,
                    &received.signature,
                    &received.body
                ),
                "a wrong secret verifies {received:?}"
            );
            assert_eq!(received.msg_id, format!("msg_{id}_{}", received.position));
            let event: Value = serde_json::from_slice(&received.body).expect("JSON");
            assert_eq!(event["specversion"], "1.0");
            assert_eq!(event["data"]["position"], received.position);
            assert_eq!(
                logged[received.position as usize - 1]["hash"],
                event["data"]["hash"]
            );
        }
    }

    // Removed: gone from the list; its deliveries unknown (exit 1).
    let removed = store.run(&["webhook", "remove", &b]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    let gone = store.run(&["webhook", "deliveries", &b]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains(&format!("no webhook with id `{b}`")),
        "{}",
        stderr(&gone)
    );
    assert_eq!(
        webhook_json(&store, &[], &["list"])
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    // A URL that cannot be one is refused, naming the option.
    let refused = store.run(&[
        "webhook",
        "add",
        "--url",
        "ftp://example.org",
        "--types",
        "grant.*",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("--url"), "{}", stderr(&refused));
    let refused = store.run(&[
        "webhook",
        "add",
        "--url",
        "http://example.org",
        "--types",
        "grant.approve",
    ]);
    assert!(
        stderr(&refused).contains("matches no event type"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn on_postgres_one_server_at_a_time_delivers_a_subscription() {
    let Ok(base) = std::env::var("GRANTFLOW_TEST_POSTGRES") else {
        eprintln!("skipping PostgreSQL tests: GRANTFLOW_TEST_POSTGRES is not set");
        return;
    };
    let schema = util::PgSchema::new(&base, "webhooks");
    let url = schema.url();
    let pre = ["--store", url.as_str()];
    let receiver = Receiver::start();
    let store = Store::new();
    let fin = add_token(&store, "fin", "finance");
    let added = webhook_json(&store, &pre, &["add", "--url", &receiver.url("/pg")]);
    assert_eq!(
        (added["start_after"].as_u64(), added["enabled"].as_bool()),
        (Some(0), Some(true)),
        "{added}"
    );
    let (id, secret) = (
        added["id"].as_str().expect("id").to_string(),
        added["secret"].as_str().expect("secret").to_string(),
    );
    receiver.set("/pg", &secret, Behaviour::Take);
    let serve = [
        "--store",
        url.as_str(),
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--webhook-retry-base-ms",
        "20",
    ];
    let (one, one_addr) = util::spawn_serve(&store, &serve);
    let (two, two_addr) = util::spawn_serve(&store, &serve);

    let mut positions = Vec::new();
    positions.extend(
        post(
            one_addr,
            &fin,
            json!({"command": "register-fund", "fund": "F", "name": "F", "currency": "USD"}),
        )
        .iter()
        .map(|e| e.position),
    );
    // Clients on both servers at once.
    let clients: Vec<_> = [one_addr, two_addr]
        .into_iter()
        .enumerate()
        .map(|(client, addr)| {
            let fin = fin.clone();
            std::thread::spawn(move || {
                (0..20)
                    .flat_map(|i| {
                        post(addr, &fin, json!({"command": "record-contribution", "fund": "F", "donor": "D", "amount": "1.00", "received_on": "2020-01-01", "command_id": format!("c-{client}-{i}")}))
                    })
                    .map(|e| e.position)
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    for client in clients {
        positions.extend(client.join().expect("client"));
    }
    positions.sort_unstable();
    assert_eq!(positions, (1..=41).collect::<Vec<u64>>());
    receiver.wait_for("/pg", &positions);
    // Both servers run: each event delivered once, in order (the receiver answers at once,
    // so nothing is retried).
    assert_eq!(
        receiver.taken("/pg"),
        positions,
        "one deliverer, in order, no duplicate"
    );

    // Both stop; a third server takes the subscription over where they left it.
    stop(one);
    stop(two);
    let fin_cli = [
        "--store",
        url.as_str(),
        "--actor",
        "fin",
        "record-contribution",
        "--fund",
        "F",
        "--donor",
        "E",
        "--amount",
        "2.00",
        "--received-on",
        "2020-02-01",
        "--json",
    ];
    positions.extend(appended(&store.json(&fin_cli)).iter().map(|e| e.position));
    let (three, three_addr) = util::spawn_serve(&store, &serve);
    positions.extend(post(three_addr, &fin, json!({"command": "record-contribution", "fund": "F", "donor": "D", "amount": "3.00", "received_on": "2020-02-02"})).iter().map(|e| e.position));
    receiver.wait_for("/pg", &positions);
    // The cursor follows (saved right after each answer), and a stop keeps it.
    let started = Instant::now();
    while webhook_json(&store, &pre, &["list"])[0]["cursor"] != 43 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the cursor never reaches 43"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(three);
    check_order(&receiver, "/pg", &positions, 1);
    let listed = webhook_json(&store, &pre, &["list"]);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["cursor"], 43, "{listed}");
    let attempts = webhook_json(&store, &pre, &["deliveries", &id]);
    assert!(
        attempts
            .as_array()
            .is_some_and(|all| all.len() >= 43 && all.iter().all(|a| a["status"] == 204)),
        "{attempts}"
    );
    for received in receiver.received("/pg") {
        assert!(received.verified, "{received:?}");
    }
}

/// The test certificate authority and the receiver's certificate for `localhost`.
fn tls_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhook-tls")
        .join(name)
}

/// An HTTPS receiver presenting the fixture's certificate: every request's position and
/// whether its signature held under `key`; it answers 200.
fn https_receiver(listener: TcpListener, key: Vec<u8>) -> Arc<Mutex<Vec<(u64, bool)>>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let certs = CertificateDer::pem_file_iter(tls_fixture("localhost.pem"))
        .expect("the certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM");
    let private = PrivateKeyDer::from_pem_file(tls_fixture("localhost.key")).expect("the key");
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .expect("a server configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    listener.set_nonblocking(true).expect("nonblocking");
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen = received.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, seen, key) = (acceptor.clone(), seen.clone(), key.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut reader = tokio::io::BufReader::new(tls);
                    let mut headers = HashMap::new();
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim_end().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            headers
                                .insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
                        }
                    }
                    let length = headers
                        .get("content-length")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
                    let verified = verify(
                        &key,
                        &header("webhook-id"),
                        &header("webhook-timestamp"),
                        &header("webhook-signature"),
                        &body,
                    );
                    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let position = event["id"]
                        .as_str()
                        .and_then(|id| id.parse().ok())
                        .unwrap_or(0);
                    seen.lock().expect("lock").push((position, verified));
                    let mut tls = reader.into_inner();
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
    });
    received
}

/// `grantflow serve` with `SSL_CERT_FILE` set (or the environment's trust store).
fn spawn_serve_trusting(
    store: &Store,
    args: &[&str],
    ca: Option<&std::path::Path>,
) -> std::process::Child {
    let mut command = store.command(args);
    if let Some(ca) = ca {
        command.env("SSL_CERT_FILE", ca).env_remove("SSL_CERT_DIR");
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("a line from serve");
    assert!(
        line.starts_with("listening on http://"),
        "serve said {line:?}"
    );
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    child
}

#[test]
fn https_deliveries_check_the_receivers_certificate() {
    let store = Store::new();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "https://localhost:{}/hook",
        listener.local_addr().expect("addr").port()
    );
    let (id, secret) = add_webhook(&store, &[], &["--url", &url]);
    let key = STANDARD.decode(&secret["whsec_".len()..]).expect("base64");
    let received = https_receiver(listener, key);
    let (results, code) = store.exec(&util::lines(&[
        json!({"command": "register-fund", "fund": "F1", "name": "One", "currency": "USD", "actor": "fin"}),
    ]));
    assert_eq!(code, 0, "{results:?}");
    let serve = [
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--webhook-retry-base-ms",
        "20",
        "--webhook-max-failures",
        "1000",
    ];

    // The environment's trust store does not hold the test authority: refused.
    let untrusting = spawn_serve_trusting(&store, &serve, None);
    let started = Instant::now();
    loop {
        let attempts = webhook_json(&store, &[], &["deliveries", &id]);
        let refused = attempts.as_array().map_or(0, |all| {
            all.iter()
                .filter(|a| {
                    a["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("certificate") || e.contains("CA certificates"))
                })
                .count()
        });
        if refused >= 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{attempts}");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(untrusting);
    assert!(
        received.lock().expect("lock").is_empty(),
        "nothing was sent in clear"
    );

    // Trusting it (SSL_CERT_FILE, as the platform's trust store reads it): delivered.
    let trusting = spawn_serve_trusting(&store, &serve, Some(&tls_fixture("ca.pem")));
    let started = Instant::now();
    while received.lock().expect("lock").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never delivered over HTTPS"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(trusting);
    assert_eq!(received.lock().expect("lock").clone(), vec![(1, true)]);
    let attempts = webhook_json(&store, &[], &["deliveries", &id]);
    let last = attempts
        .as_array()
        .and_then(|all| all.last())
        .cloned()
        .expect("attempts");
    assert_eq!(
        (last["status"].as_u64(), last["position"].as_u64()),
        (Some(200), Some(1)),
        "{attempts}"
    );
}
