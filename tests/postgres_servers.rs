//! Two `grantflow serve` processes on one PostgreSQL store: concurrent clients on both,
//! a subscriber on each. Every acknowledged command appears exactly once, both subscribers
//! see the same gapless sequence, decisions that depend on the other server's commands are
//! right (a race for the last unallocated money), and `verify` passes.
//!
//! Reads the database URL from `GRANTFLOW_TEST_POSTGRES` (`.ci/run` sets it); without it
//! the test says so and skips.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use util::{add_token, http_json, Store};

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(store: &Store, url: &str) -> Server {
        let (child, addr) =
            util::spawn_serve(store, &["--store", url, "serve", "--addr", "127.0.0.1:0"]);
        Server { child, addr }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("serve exits");
        assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
    }
}

/// Reads the event stream until `count` events arrived; their ids in order.
fn subscribe(addr: SocketAddr, token: String, count: usize) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        write!(
            stream,
            "GET /v1/events/stream?from=1 HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .expect("write");
        let started = Instant::now();
        let mut ids = Vec::new();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while ids.len() < count && started.elapsed() < Duration::from_secs(60) {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            // Chunked framing may put a size line before a field: look for the field itself.
            if let Some(id) = line.trim_end().strip_prefix("id:") {
                if let Ok(id) = id.trim().parse() {
                    ids.push(id);
                }
            }
        }
        ids
    })
}

fn command(addr: SocketAddr, token: &str, body: Value) -> Value {
    let (status, answer) = http_json(addr, "POST", "/v1/commands", Some(token), Some(&body))
        .expect("the server answers");
    assert!(
        status == 200 || status == 422,
        "unexpected status {status}: {answer}"
    );
    answer
}

#[test]
fn two_servers_on_one_postgres_store_share_one_log() {
    let Ok(base) = std::env::var("GRANTFLOW_TEST_POSTGRES") else {
        eprintln!("skipping PostgreSQL tests: GRANTFLOW_TEST_POSTGRES is not set");
        return;
    };
    let schema = util::PgSchema::new(&base, "servers");
    let url = schema.url();
    let store = Store::new();
    let fin = add_token(&store, "fin", "finance,integrator");
    let sec = add_token(&store, "sec", "secretariat");
    let boss = add_token(&store, "boss", "approver");
    let a = Server::start(&store, &url);
    let b = Server::start(&store, &url);

    let setup = [
        (
            &fin,
            json!({"command": "register-fund", "fund": "F", "name": "F", "currency": "USD"}),
        ),
        (
            &fin,
            json!({"command": "record-contribution", "fund": "F", "donor": "D", "amount": "100000.00", "received_on": "2020-01-01"}),
        ),
        (
            &sec,
            json!({"command": "submit-proposal", "fund": "F", "grant": "G", "title": "T", "amount": "1000.00"}),
        ),
    ];
    for (token, body) in setup {
        assert_eq!(command(a.addr, token, body)["ok"], true);
    }
    // B decides on A's events.
    let approval = command(
        b.addr,
        &boss,
        json!({"command": "approve-grant", "grant": "G", "decided_on": "2020-01-02"}),
    );
    assert_eq!(approval["ok"], true, "{approval}");

    // Clients on both servers: contributions (always accepted) and a race of 40 agencies of
    // 100.00 for 1,000.00 (exactly 10 fit).
    let contributions = 120;
    let agencies = 40;
    let expected_events = 5 + contributions + 10;
    let sub_a = subscribe(a.addr, fin.clone(), expected_events);
    let sub_b = subscribe(b.addr, fin.clone(), expected_events);
    let tokens = Arc::new((fin.clone(), sec.clone()));
    let mut clients = Vec::new();
    for client in 0..4 {
        let addr = if client % 2 == 0 { a.addr } else { b.addr };
        let tokens = tokens.clone();
        clients.push(std::thread::spawn(move || {
            let mut answers = Vec::new();
            for i in 0..contributions / 4 {
                let body = json!({"command": "record-contribution", "fund": "F", "donor": "D",
                                  "amount": "1.00", "received_on": "2020-01-03",
                                  "command_id": format!("c-{client}-{i}")});
                answers.push(command(addr, &tokens.0, body));
            }
            for i in 0..agencies / 4 {
                let body = json!({"command": "assign-agency", "grant": "G",
                                  "agency": format!("A{client}-{i}"), "allocation": "100.00",
                                  "command_id": format!("a-{client}-{i}")});
                answers.push(command(addr, &tokens.1, body));
            }
            answers
        }));
    }
    let answers: Vec<Value> = clients
        .into_iter()
        .flat_map(|client| client.join().expect("client"))
        .collect();
    let accepted: Vec<&Value> = answers.iter().filter(|a| a["ok"] == true).collect();
    assert_eq!(
        accepted.len(),
        contributions + 10,
        "exactly 10 agencies fit"
    );
    for answer in answers.iter().filter(|a| a["ok"] != true) {
        assert_eq!(answer["error"]["code"], "over_allocation", "{answer}");
    }

    let seen_a = sub_a.join().expect("subscriber a");
    let seen_b = sub_b.join().expect("subscriber b");
    let all: Vec<u64> = (1..=expected_events as u64).collect();
    assert_eq!(
        seen_a, all,
        "subscriber on A: every position once, in order"
    );
    assert_eq!(seen_b, all, "subscriber on B: the same sequence");

    // Both servers give the same figures.
    let (_, grant_a) = http_json(a.addr, "GET", "/v1/grants/G", Some(&fin), None).expect("a");
    let (_, grant_b) = http_json(b.addr, "GET", "/v1/grants/G", Some(&fin), None).expect("b");
    assert_eq!(grant_a["allocated"], "1000.00");
    assert_eq!(grant_a, grant_b);
    a.stop();
    b.stop();

    // Every acknowledged command is in the log exactly once, where it was acknowledged.
    let output = store.run(&["--store", &url, "events"]);
    assert!(output.status.success());
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("an envelope"))
        .collect();
    assert_eq!(events.len(), expected_events);
    for answer in accepted {
        let id = answer["command_id"].as_str().expect("id");
        let positions: Vec<&Value> = events
            .iter()
            .filter(|e| e["command_id"] == id)
            .map(|e| &e["position"])
            .collect();
        let acknowledged: Vec<&Value> = answer["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| &e["position"])
            .collect();
        assert_eq!(positions, acknowledged, "{id}");
    }
    let verify = store.run(&["--store", &url, "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
