//! A real browser's `EventSource` (headless Chromium) subscribed to `grantflow serve`
//! resumes by itself after the server restarts: it receives every event exactly once, in
//! order, across the restart, including events appended while the server was down.
//!
//! Needs Debian's `chromium` (`scripts/test` installs it); `GRANTFLOW_CHROMIUM` names
//! another binary.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use util::{lines, Store};

/// How long the browser gets to catch up after each step.
const WAIT: Duration = Duration::from_secs(30);

fn chromium() -> String {
    let candidate = std::env::var("GRANTFLOW_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&candidate)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "this test drives a real browser: install Debian's `chromium` (scripts/test does), \
         or set GRANTFLOW_CHROMIUM to a Chromium binary"
    );
    candidate
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// `grantflow serve` on a fixed port (a browser reconnects to the same URL).
fn serve(store: &Store, port: u16) -> Child {
    util::spawn_serve(store, &["serve", "--addr", &format!("127.0.0.1:{port}")]).0
}

fn stop(mut server: Child) {
    let pid = server.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let status = server.wait().expect("serve exits");
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
}

/// One HTTP/1.1 request by hand; returns the status code.
fn post_command(port: u16, token: &str, body: &serde_json::Value) -> u16 {
    let body = body.to_string();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "POST /v1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Serves the page and collects what it reports: the ids it received, in order.
fn page_server(page: String, seen: Arc<Mutex<Vec<u64>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("page port");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            handle_page_request(stream, &page, &seen);
        }
    });
    port
}

fn handle_page_request(mut stream: TcpStream, page: &str, seen: &Mutex<Vec<u64>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    let _ = reader.read_line(&mut request_line);
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    if request_line.starts_with("POST /report") {
        let ids: Vec<u64> = String::from_utf8_lossy(&body)
            .split(',')
            .filter_map(|id| id.trim().parse().ok())
            .collect();
        let mut seen = seen.lock().expect("lock");
        // Reports may arrive out of order: each holds the whole list so far; keep the longest.
        if ids.len() > seen.len() {
            *seen = ids;
        }
    }
    let content = if request_line.starts_with("GET /page") {
        page
    } else {
        ""
    };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{content}",
        content.len()
    );
}

fn wait_for(seen: &Mutex<Vec<u64>>, count: usize, what: &str) {
    let started = Instant::now();
    while started.elapsed() < WAIT {
        if seen.lock().expect("lock").len() >= count {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what}: the browser received {:?}",
        seen.lock().expect("lock")
    );
}

#[test]
fn a_browser_event_source_resumes_by_itself_after_a_server_restart() {
    let browser = chromium();
    let store = Store::new();
    let issued = store
        .command(&[
            "--actor",
            "fin",
            "token",
            "add",
            "--role",
            "finance,integrator",
        ])
        .output()
        .expect("token add");
    let token = String::from_utf8_lossy(&issued.stdout)
        .lines()
        .last()
        .expect("the token")
        .to_string();
    let port = free_port();
    let server = serve(&store, port);
    let contribution = |n: u64| {
        json!({"command": "record-contribution", "fund": "F", "donor": "D",
               "amount": format!("{n}.00"), "received_on": "2020-01-01"})
    };
    let register = json!({"command": "register-fund", "fund": "F", "name": "F", "currency": "USD"});
    assert_eq!(post_command(port, &token, &register), 200);
    for n in 1..=4 {
        assert_eq!(post_command(port, &token, &contribution(n)), 200);
    }

    let types =
        serde_json::to_string(&["fund.registered", "fund.contribution_recorded"]).expect("json");
    let page = format!(
        r#"<!doctype html><title>sse</title><script>
const ids = [];
const source = new EventSource("http://127.0.0.1:{port}/v1/events/stream?from=1&access_token={token}");
function report(event) {{
  ids.push(event.lastEventId);
  fetch("/report", {{method: "POST", body: ids.join(",")}});
}}
for (const type of {types}) source.addEventListener(type, report);
</script>"#
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let page_port = page_server(page, seen.clone());
    let profile = tempfile::tempdir().expect("profile dir");
    let mut chromium = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("http://127.0.0.1:{page_port}/page.html"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");

    wait_for(&seen, 5, "catch-up before the restart");

    // Restart: stop the server, append while it is down, start it again on the same port.
    stop(server);
    let offline: Vec<serde_json::Value> = (5..=7)
        .map(|n| {
            let mut body = contribution(n);
            body["actor"] = json!("fin");
            body
        })
        .collect();
    let (results, code) = store.exec(&lines(&offline));
    assert_eq!(code, 0, "{results:?}");
    let server = serve(&store, port);
    for n in 8..=10 {
        assert_eq!(post_command(port, &token, &contribution(n)), 200);
    }
    wait_for(&seen, 11, "resume after the restart");
    std::thread::sleep(Duration::from_millis(500));

    let _ = chromium.kill();
    let _ = chromium.wait();
    stop(server);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        (1..=11).collect::<Vec<u64>>(),
        "every event exactly once, in order"
    );
}
