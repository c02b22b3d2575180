//! Load held: a real `grantflow serve` on loopback under mixed commands (including intended
//! rejections, replays and conflicts), reads, and 50 Server-Sent Events subscribers (some of
//! which drop their connection and resume with `Last-Event-ID`), for a bounded time. No error
//! but the intended ones; the server's memory (RSS from /proc) stays flat; every subscriber
//! receives every event exactly once, in order; SIGTERM then ends it with exit 0 and the store
//! verifies.
//!
//! `GRANTFLOW_SOAK_SECS` sets the duration (default 15; e.g. 600 for a long run).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use util::{
    add_token, env_u64, granted_fund_setup, http_json, lines, ChunkedReader, Server, Store,
};

const SUBSCRIBERS: usize = 50;
const WRITERS: usize = 4;
const READERS: usize = 2;
/// Every 5th subscriber drops its connection after this many events and resumes.
const RESUME_AFTER_EVENTS: u64 = 300;

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    replayed: AtomicU64,
    intended_rejections: AtomicU64,
    reads: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Counters {
    fn error(&self, what: String) {
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            errors.push(what);
        }
    }
}

/// One writer: disbursements and expenditures (accepted), over-refunds (422), resends
/// (replayed), stale `expected_version` (409 version_conflict) and reused ids with another
/// body (409 command_id_conflict).
fn writer(
    addr: SocketAddr,
    token: String,
    index: usize,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) {
    let disburse = |id: &str| {
        json!({"command": "record-disbursement", "grant": "G", "agency": "IOM", "amount": "1.00",
               "paid_on": "2020-01-01", "command_id": id})
    };
    let mut last_disbursement: Option<String> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let id = format!("w{index}-{n}");
        let (body, expect): (Value, (u16, &str)) = match n % 10 {
            6 => (
                json!({"command": "record-expenditure", "grant": "G", "agency": "IOM", "amount": "0.50",
                       "period_end": "2020-06-30", "command_id": id}),
                (200, "ok"),
            ),
            7 => (
                json!({"command": "record-refund", "grant": "G", "agency": "IOM", "amount": "999999999999.00",
                       "received_on": "2020-07-01", "command_id": id}),
                (422, "over_refund"),
            ),
            8 if last_disbursement.is_some() => (
                disburse(last_disbursement.as_deref().unwrap_or_default()),
                (200, "replayed"),
            ),
            9 => {
                let mut body = disburse(&id);
                body["expected_version"] = json!(1);
                (body, (409, "version_conflict"))
            }
            0 if last_disbursement.is_some() => {
                let mut body = disburse(last_disbursement.as_deref().unwrap_or_default());
                body["amount"] = json!("2.00");
                (body, (409, "command_id_conflict"))
            }
            _ => {
                last_disbursement = Some(id.clone());
                (disburse(&id), (200, "ok"))
            }
        };
        match http_json(addr, "POST", "/v1/commands", Some(&token), Some(&body)) {
            Ok((200, answer)) if expect == (200, "replayed") && answer["replayed"] == true => {
                counters.replayed.fetch_add(1, Ordering::Relaxed);
            }
            Ok((200, answer)) if expect == (200, "ok") && answer["ok"] == true => {
                counters.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, answer)) if status == expect.0 && answer["error"]["code"] == expect.1 => {
                counters.intended_rejections.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, answer)) => {
                counters.error(format!("{body} expected {expect:?}: {status} {answer}"))
            }
            Err(error) => counters.error(format!("{body}: {error}")),
        }
    }
}

fn reader(addr: SocketAddr, token: String, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let path = match n % 3 {
            0 => "/v1/grants/G".to_string(),
            1 => "/v1/funds/F".to_string(),
            _ => format!("/v1/events?from={}&limit=50", 1 + n * 7),
        };
        match http_json(addr, "GET", &path, Some(&token), None) {
            Ok((200, _)) => {
                counters.reads.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, answer)) => counters.error(format!("GET {path}: {status} {answer}")),
            Err(error) => counters.error(format!("GET {path}: {error}")),
        }
    }
}

/// What one subscriber received: the positions in order, and the last envelope's hash.
#[derive(Default)]
struct Received {
    positions: Vec<u64>,
    last_hash: String,
    reconnects: u64,
    error: Option<String>,
}

/// Opens the event stream (from `last`'s successor with `Last-Event-ID`) and reads it until
/// `target` is reached, the server closes it, or (for a resuming subscriber) it drops it.
fn subscribe_once(
    addr: SocketAddr,
    token: &str,
    received: &mut Received,
    target: &AtomicU64,
    drop_after: Option<u64>,
) -> Result<bool, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut request = format!(
        "GET /v1/events/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n"
    );
    if let Some(last) = received.positions.last() {
        request.push_str(&format!("Last-Event-ID: {last}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let mut headers_done = false;
    let mut chunked = ChunkedReader::default();
    let mut consumed = 0usize;
    let mut buffer = [0u8; 16 * 1024];
    let started_with = received.positions.len() as u64;
    loop {
        let target_now = target.load(Ordering::SeqCst);
        if target_now > 0 && received.positions.last().copied().unwrap_or(0) >= target_now {
            return Ok(true);
        }
        match stream.read(&mut buffer) {
            Ok(0) => return Ok(false),
            Ok(read) => {
                if headers_done {
                    chunked.feed(&buffer[..read]);
                } else {
                    raw.extend_from_slice(&buffer[..read]);
                    if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&raw[..end]).to_string();
                        if !head.starts_with("HTTP/1.1 200") {
                            return Err(format!("stream refused: {head}"));
                        }
                        headers_done = true;
                        chunked.feed(&raw[end + 4..]);
                    }
                }
            }
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(error) => return Err(error.to_string()),
        }
        // Complete SSE events end with a blank line.
        while let Some(end) = chunked.out[consumed..]
            .windows(2)
            .position(|w| w == b"\n\n")
        {
            let block = String::from_utf8_lossy(&chunked.out[consumed..consumed + end]).to_string();
            consumed += end + 2;
            let mut id = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("id:") {
                    id = value.trim().parse::<u64>().ok();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data = Some(value.trim_start().to_string());
                } else if line.starts_with("event: error") {
                    return Err(format!("the stream reported an error: {block}"));
                }
            }
            if let (Some(id), Some(data)) = (id, data) {
                let envelope: Value = serde_json::from_str(&data).map_err(|e| e.to_string())?;
                if envelope["position"].as_u64() != Some(id) {
                    return Err(format!("event id {id} carries {}", envelope["position"]));
                }
                received.positions.push(id);
                received.last_hash = envelope["hash"].as_str().unwrap_or_default().to_string();
                let taken = received.positions.len() as u64 - started_with;
                if drop_after.is_some_and(|limit| taken >= limit) {
                    return Ok(false);
                }
            }
        }
        if consumed > 1 << 20 {
            chunked.out.drain(..consumed);
            consumed = 0;
        }
    }
}

fn subscriber(
    addr: SocketAddr,
    token: String,
    index: usize,
    target: Arc<AtomicU64>,
    deadline: Arc<Mutex<Option<Instant>>>,
) -> Received {
    let mut received = Received::default();
    let mut drop_after = index.is_multiple_of(5).then_some(RESUME_AFTER_EVENTS);
    loop {
        match subscribe_once(addr, &token, &mut received, &target, drop_after.take()) {
            Ok(true) => return received,
            Ok(false) => received.reconnects += 1,
            Err(error) => {
                received.error = Some(error);
                return received;
            }
        }
        if deadline
            .lock()
            .unwrap()
            .is_some_and(|deadline| Instant::now() > deadline)
        {
            received.error = Some("did not reach the head in time".into());
            return received;
        }
    }
}

#[test]
fn load_held_for_a_while_with_fifty_subscribers() {
    let seconds = env_u64("GRANTFLOW_SOAK_SECS", 15);
    let store = Store::new();
    let mut setup = granted_fund_setup();
    setup.push(
        json!({"command": "record-disbursement", "grant": "G", "agency": "IOM",
        "amount": "1000000.00", "paid_on": "2020-01-01", "actor": "fin"}),
    );
    let (results, code) = store.exec(&lines(&setup));
    assert_eq!(code, 0, "setup: {results:?}");
    let finance = add_token(&store, "fin", "finance");
    let auditor = add_token(&store, "ann", "auditor,integrator");
    // One integrator token per 10 subscribers, as several integrators would: a token may
    // hold 16 open streams (docs/http.md, Limits), and a subscriber that reconnects may
    // briefly hold two.
    let integrators: Vec<String> = (0..SUBSCRIBERS.div_ceil(10))
        .map(|n| add_token(&store, &format!("ian{n}"), "integrator"))
        .collect();
    let server = Server::start(&store, Duration::from_secs(30)).expect("the server starts");
    let addr = server.addr;

    let target = Arc::new(AtomicU64::new(0));
    let deadline: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|index| {
            let token = integrators[index / 10].clone();
            let (target, deadline) = (target.clone(), deadline.clone());
            std::thread::spawn(move || subscriber(addr, token, index, target, deadline))
        })
        .collect();
    // Warm up, then take the first memory sample.
    std::thread::sleep(Duration::from_millis(500));
    let rss_start = server.rss_kib().expect("RSS of the server");

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let mut load = Vec::new();
    for index in 0..WRITERS {
        let (token, stop, counters) = (finance.clone(), stop.clone(), counters.clone());
        load.push(std::thread::spawn(move || {
            writer(addr, token, index, stop, counters)
        }));
    }
    for _ in 0..READERS {
        let (token, stop, counters) = (auditor.clone(), stop.clone(), counters.clone());
        load.push(std::thread::spawn(move || {
            reader(addr, token, stop, counters)
        }));
    }
    let started = Instant::now();
    let mut rss_max = rss_start;
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(250));
        rss_max = rss_max.max(server.rss_kib().unwrap_or(0));
    }
    stop.store(true, Ordering::SeqCst);
    for thread in load {
        thread.join().expect("load thread");
    }
    let rss_end = server.rss_kib().expect("RSS of the server");

    // Every subscriber must now reach the head: everything exactly once, in order.
    let (status, checkpoint) =
        http_json(addr, "GET", "/v1/checkpoint", Some(&auditor), None).expect("checkpoint");
    assert_eq!(status, 200, "{checkpoint}");
    let head = checkpoint["position"].as_u64().expect("a head");
    *deadline.lock().unwrap() = Some(Instant::now() + Duration::from_secs(120));
    target.store(head, Ordering::SeqCst);
    let mut reconnects = 0;
    let mut delivered = 0u64;
    for (index, subscriber) in subscribers.into_iter().enumerate() {
        let received = subscriber.join().expect("subscriber thread");
        assert!(
            received.error.is_none(),
            "subscriber {index}: {:?}",
            received.error
        );
        let expected: Vec<u64> = (1..=head).collect();
        assert!(
            received.positions == expected,
            "subscriber {index} did not receive 1..={head} exactly once in order (got {} events, \
             first gap or repeat at {:?})",
            received.positions.len(),
            received
                .positions
                .iter()
                .zip(1..)
                .find(|(got, want)| **got != *want)
        );
        assert_eq!(
            received.last_hash, checkpoint["hash"],
            "subscriber {index}: head hash"
        );
        reconnects += received.reconnects;
        delivered += received.positions.len() as u64;
    }

    let errors = counters.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "errors under load: {errors:#?}");
    let accepted = counters.accepted.load(Ordering::Relaxed);
    assert!(accepted > 0, "no command was accepted");
    // Memory flat: a generous bound (sled's cache is 64 MiB and fills as the log grows).
    let bound = (rss_start * 2).max(rss_start + 128 * 1024);
    assert!(
        rss_end <= bound,
        "the server's memory grew from {rss_start} KiB to {rss_end} KiB (bound {bound} KiB)"
    );
    let status = server
        .terminate(Duration::from_secs(30))
        .expect("exit after SIGTERM");
    assert!(status.success(), "SIGTERM: {status:?}");
    let verify = store.run(&["verify"]);
    assert!(verify.status.success(), "verify: {}", util::stdout(&verify));
    println!(
        "soak {seconds} s: {accepted} commands accepted ({:.0}/s), {} replayed, {} intended \
         rejections, {} reads, 0 errors; {SUBSCRIBERS} subscribers received all {head} events \
         in order ({delivered} deliveries, {reconnects} resumes with Last-Event-ID); RSS \
         {rss_start} KiB at start, {rss_max} KiB max, {rss_end} KiB at end",
        accepted as f64 / seconds as f64,
        counters.replayed.load(Ordering::Relaxed),
        counters.intended_rejections.load(Ordering::Relaxed),
        counters.reads.load(Ordering::Relaxed),
    );
}
