//! Crash test of the HTTP server: a real `grantflow serve` under a concurrent command load
//! over HTTP is killed with SIGKILL at random moments (some right after start, while it
//! opens the store), again and again on the same store; `grantflow replay` is killed midway
//! too. After every kill: every acknowledged command (HTTP 200, `ok: true`) is in the log
//! exactly once, where acknowledged; positions and versions are gapless; `grantflow verify`
//! passes (chain and projections); acknowledged command ids replay their original result.
//! Last, SIGTERM under load: a graceful exit 0 with every acknowledged command in the log.
//! Each round picks the redo log's switch size (a few KiB, so that it switches files every
//! few groups, or its default), so that kills also land around switches and checkpoints.
//!
//! `GRANTFLOW_CRASH_KILLS` sets the number of kills (default 6; CI sets 12);
//! `GRANTFLOW_CRASH_SEED` replays a run.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod util;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use util::{
    add_token, env_u64, granted_fund_setup, http_json, lines, seed_from_env, Rng, Server, Store,
};

/// Client threads sending commands at once.
const CLIENTS: u64 = 3;
/// How long a server may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

fn disbursement(id: &str) -> Value {
    json!({"command": "record-disbursement", "grant": "G", "agency": "IOM", "amount": "1.00",
           "paid_on": "2020-01-01", "command_id": id})
}

/// An over-refund: an intended rejection (422 `over_refund`), which appends nothing.
fn over_refund(id: &str) -> Value {
    json!({"command": "record-refund", "grant": "G", "agency": "IOM", "amount": "999999999999.00",
           "received_on": "2020-01-02", "command_id": id})
}

/// What the clients saw.
#[derive(Default)]
struct Ledger {
    /// command id -> (body, events of its acknowledgement)
    acknowledged: Mutex<BTreeMap<String, (Value, Value)>>,
    /// Answers that are neither an acknowledgement nor an intended rejection.
    unexpected: Mutex<Vec<String>>,
    replays_checked: AtomicU64,
    rejections: AtomicU64,
}

impl Ledger {
    fn acknowledge(&self, id: &str, body: &Value, result: &Value) {
        self.acknowledged
            .lock()
            .unwrap()
            .insert(id.to_string(), (body.clone(), result["events"].clone()));
    }

    fn unexpected(&self, what: String) {
        self.unexpected.lock().unwrap().push(what);
    }

    fn any_acknowledged(&self, pick: u64) -> Option<(String, Value, Value)> {
        let acknowledged = self.acknowledged.lock().unwrap();
        if acknowledged.is_empty() {
            return None;
        }
        let index = (pick % acknowledged.len() as u64) as usize;
        acknowledged
            .iter()
            .nth(index)
            .map(|(id, (body, events))| (id.clone(), body.clone(), events.clone()))
    }
}

/// One client: sends commands until the server goes away (or `stop` is set). Fresh
/// disbursements mostly; every 9th a resend of an acknowledged command (must replay its
/// result), every 11th an intended rejection.
fn client(
    addr: SocketAddr,
    token: String,
    prefix: String,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        if n.is_multiple_of(9) {
            if let Some((id, body, events)) = ledger.any_acknowledged(n * 31 + prefix.len() as u64)
            {
                match http_json(addr, "POST", "/v1/commands", Some(&token), Some(&body)) {
                    Ok((200, result)) => {
                        if result["replayed"] != true || result["events"] != events {
                            ledger.unexpected(format!("resend of {id}: {result}, first {events}"));
                        }
                        ledger.replays_checked.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok((status, result)) => {
                        ledger.unexpected(format!("resend {id}: {status} {result}"))
                    }
                    Err(_) => return,
                }
                continue;
            }
        }
        let id = format!("{prefix}-{n}");
        let rejection = n.is_multiple_of(11);
        let body = if rejection {
            over_refund(&id)
        } else {
            disbursement(&id)
        };
        match http_json(addr, "POST", "/v1/commands", Some(&token), Some(&body)) {
            Ok((200, result)) if result["ok"] == true && !rejection => {
                ledger.acknowledge(&id, &body, &result);
            }
            Ok((422, result)) if rejection && result["error"]["code"] == "over_refund" => {
                ledger.rejections.fetch_add(1, Ordering::SeqCst);
            }
            Ok((status, result)) => ledger.unexpected(format!("{id}: {status} {result}")),
            // The server was killed: this command's fate is unknown, and not acknowledged.
            Err(_) => return,
        }
    }
}

/// Starts the clients against `addr`.
fn start_load(
    addr: SocketAddr,
    token: &str,
    round: &str,
    ledger: &Arc<Ledger>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|thread| {
            let (token, ledger, stop) = (token.to_string(), ledger.clone(), stop.clone());
            let prefix = format!("{round}-t{thread}");
            std::thread::spawn(move || client(addr, token, prefix, ledger, stop))
        })
        .collect()
}

fn setup(store: &Store) -> String {
    let setup = granted_fund_setup();
    let (results, code) = store.exec(&lines(&setup));
    assert_eq!(code, 0, "setup: {results:?}");
    add_token(store, "fin", "finance")
}

#[test]
fn sigkill_during_serve_loses_no_acknowledged_command() {
    let kills = env_u64("GRANTFLOW_CRASH_KILLS", 6);
    let seed = seed_from_env("GRANTFLOW_CRASH_SEED");
    println!(
        "serve crash test: {kills} kills, seed {seed} (GRANTFLOW_CRASH_SEED={seed} replays it)"
    );
    let mut rng = Rng(seed);
    let store = Store::new();
    let token = setup(&store);
    let ledger = Arc::new(Ledger::default());
    let (mut kills_during_open, mut replays_killed) = (0, 0);
    for round in 0..kills {
        store.redo_switch_bytes.store(
            [2048, 0][rng.below(2) as usize],
            std::sync::atomic::Ordering::SeqCst,
        );
        if round % 3 == 1 {
            // Killed right after start: while it opens the store and folds the log.
            let mut child = Server::spawn(&store);
            std::thread::sleep(Duration::from_millis(rng.below(60)));
            let _ = child.kill();
            let _ = child.wait();
            kills_during_open += 1;
            check_after_kill(
                &store,
                &ledger,
                &format!("round {round} (killed while opening)"),
            );
        }
        let server = Server::start(&store, START_TIMEOUT).expect("the server starts after a kill");
        let stop = Arc::new(AtomicBool::new(false));
        let clients = start_load(server.addr, &token, &format!("r{round}"), &ledger, &stop);
        std::thread::sleep(Duration::from_millis(50 + rng.below(700)));
        server.kill();
        for client in clients {
            client.join().expect("client thread");
        }
        check_after_kill(&store, &ledger, &format!("round {round}"));
        if round % 4 == 2 {
            // Killed in the middle of `replay` (which rewrites the projection snapshot).
            let mut replay = store
                .command(&["replay"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("replay starts");
            std::thread::sleep(Duration::from_millis(rng.below(40)));
            let _ = replay.kill();
            let status = replay.wait().expect("replay ends");
            if status.code().is_none() {
                replays_killed += 1;
            }
            check_after_kill(&store, &ledger, &format!("round {round} (replay killed)"));
        }
    }
    check_replays(&store, &token, &ledger);
    sigterm_under_load(&store, &token, &ledger);
    let unexpected = ledger.unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:#?}");
    let acknowledged = ledger.acknowledged.lock().unwrap().len();
    assert!(
        acknowledged > 0,
        "no command was acknowledged: the test tested nothing"
    );
    println!(
        "serve crash test: {kills} kills survived ({kills_during_open} while opening, \
         {replays_killed} replays killed midway), {acknowledged} acknowledged commands checked, \
         {} resends replayed, {} intended rejections, 0 lost",
        ledger.replays_checked.load(Ordering::SeqCst),
        ledger.rejections.load(Ordering::SeqCst)
    );
}

/// After a kill: verify passes; positions and versions gapless; every acknowledged command
/// once, where acknowledged.
fn check_after_kill(store: &Store, ledger: &Ledger, when: &str) {
    let verify = store.run(&["verify"]);
    assert!(
        verify.status.success(),
        "{when}: verify failed after a kill: {}{}",
        util::stdout(&verify),
        util::stderr(&verify)
    );
    let events = store.events();
    let mut versions: HashMap<String, u64> = HashMap::new();
    let mut by_command: HashMap<String, Vec<u64>> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        assert_eq!(
            event["position"].as_u64(),
            Some(index as u64 + 1),
            "{when}: gapless positions"
        );
        let stream = event["stream"].as_str().unwrap_or("").to_string();
        let version = versions.entry(stream.clone()).or_insert(0);
        *version += 1;
        assert_eq!(
            event["version"].as_u64(),
            Some(*version),
            "{when}: gapless versions of {stream}"
        );
        by_command
            .entry(event["command_id"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(event["position"].as_u64().unwrap_or(0));
    }
    let acknowledged = ledger.acknowledged.lock().unwrap();
    let mut lost = Vec::new();
    for (id, (_, refs)) in acknowledged.iter() {
        let positions: Vec<u64> = refs
            .as_array()
            .map(|refs| refs.iter().filter_map(|r| r["position"].as_u64()).collect())
            .unwrap_or_default();
        match by_command.get(id) {
            Some(stored) => assert_eq!(stored, &positions, "{when}: {id} once, where acknowledged"),
            None => lost.push(id.clone()),
        }
    }
    assert!(
        lost.is_empty(),
        "{when}: acknowledged commands lost: {lost:?}"
    );
}

/// Acknowledged ids sent again (after all the kills) replay their original result.
fn check_replays(store: &Store, token: &str, ledger: &Ledger) {
    let server = Server::start(store, START_TIMEOUT).expect("the server starts");
    let sample: Vec<(String, (Value, Value))> = ledger
        .acknowledged
        .lock()
        .unwrap()
        .iter()
        .step_by(7)
        .take(150)
        .map(|(id, entry)| (id.clone(), entry.clone()))
        .collect();
    for (id, (body, events)) in &sample {
        let (status, result) =
            http_json(server.addr, "POST", "/v1/commands", Some(token), Some(body))
                .expect("resend");
        assert_eq!(status, 200, "{id}: {result}");
        assert_eq!(result["replayed"], true, "{id}: {result}");
        assert_eq!(
            &result["events"], events,
            "{id} replays its original events"
        );
    }
    ledger
        .replays_checked
        .fetch_add(sample.len() as u64, Ordering::SeqCst);
    server.kill();
}

/// SIGTERM under load: exit 0, and every command acknowledged before it is in the log.
fn sigterm_under_load(store: &Store, token: &str, ledger: &Arc<Ledger>) {
    let server = Server::start(store, START_TIMEOUT).expect("the server starts");
    let stop = Arc::new(AtomicBool::new(false));
    let clients = start_load(server.addr, token, "term", ledger, &stop);
    std::thread::sleep(Duration::from_millis(400));
    let before = ledger.acknowledged.lock().unwrap().len();
    let started = Instant::now();
    let status = server.terminate(Duration::from_secs(30));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("client thread");
    }
    let status = status.expect("the server exits after SIGTERM");
    assert!(status.success(), "SIGTERM: exit {status:?}, expected 0");
    assert!(
        ledger.acknowledged.lock().unwrap().len() > before || before > 0,
        "no command was acknowledged under the SIGTERM load"
    );
    println!(
        "SIGTERM under load: graceful exit 0 after {:?}",
        started.elapsed()
    );
    check_after_kill(store, ledger, "after SIGTERM");
}
