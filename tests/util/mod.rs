//! Helpers shared by the integration tests: a temporary store and the real binary.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A whole number from the environment (a test's size or seed), or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A seed from the environment variable `name` (to replay a run), else from the clock; odd,
/// so never the generator's fixed point 0.
pub fn seed_from_env(name: &str) -> u64 {
    env_u64(
        name,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1,
    )
}

/// A small deterministic generator (xorshift), so a failing seed can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The set-up of the crash and load tests: fund F (900,000,000,000.00 USD received) and its
/// approved grant G of 800,000,000,000.00, all allocated to agency IOM; actors fin, sec, boss.
pub fn granted_fund_setup() -> Vec<Value> {
    vec![
        serde_json::json!({"command": "register-fund", "fund": "F", "name": "Fund", "currency": "USD", "actor": "fin"}),
        serde_json::json!({"command": "record-contribution", "fund": "F", "donor": "D", "amount": "900000000000.00", "received_on": "2020-01-01", "actor": "fin"}),
        serde_json::json!({"command": "submit-proposal", "fund": "F", "grant": "G", "title": "T", "amount": "800000000000.00", "actor": "sec"}),
        serde_json::json!({"command": "approve-grant", "grant": "G", "decided_on": "2020-01-01", "actor": "boss"}),
        serde_json::json!({"command": "assign-agency", "grant": "G", "agency": "IOM", "allocation": "800000000000.00", "actor": "sec"}),
    ]
}

/// The grantflow binary built for these tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_grantflow"))
}

/// A store in a temporary directory, driven through the real binary.
pub struct Store {
    pub dir: tempfile::TempDir,
    /// The redo log's switch size given to every process run on the store
    /// (`GRANTFLOW_REDO_SWITCH_BYTES`; 0: its default).
    pub redo_switch_bytes: std::sync::atomic::AtomicU64,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Store {
        Store {
            dir: tempfile::tempdir().expect("a temporary directory"),
            redo_switch_bytes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A `grantflow --data <store> ...` command, with no actor from the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .arg("--data")
            .arg(self.data())
            .args(args)
            .env_remove("GRANTFLOW_ACTOR")
            .env_remove("GRANTFLOW_DATA");
        match self
            .redo_switch_bytes
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            0 => command.env_remove("GRANTFLOW_REDO_SWITCH_BYTES"),
            bytes => command.env("GRANTFLOW_REDO_SWITCH_BYTES", bytes.to_string()),
        };
        command
    }

    /// Runs a verb and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("grantflow runs")
    }

    /// Runs a verb that must succeed and prints JSON; returns it.
    pub fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "grantflow {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "grantflow {args:?} printed no JSON ({error}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Feeds JSON Lines to `exec`; returns the result lines and the exit code.
    pub fn exec(&self, input: &str) -> (Vec<Value>, i32) {
        let mut child = self
            .command(&["exec"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("grantflow exec starts");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_string();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let output = child.wait_with_output().expect("grantflow exec ends");
        writer.join().expect("writer thread");
        let lines = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("each result line is JSON"))
            .collect();
        (lines, output.status.code().unwrap_or(-1))
    }

    /// Every stored envelope, parsed.
    pub fn events(&self) -> Vec<Value> {
        let output = self.run(&["events"]);
        assert!(output.status.success(), "events failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("an envelope"))
            .collect()
    }
}

/// Lets `child` run for `after` (or until it exits by itself), then kills it with SIGKILL:
/// no chance to flush or clean up.
pub fn kill_after(child: &mut std::process::Child, after: std::time::Duration) {
    let started = std::time::Instant::now();
    while started.elapsed() < after {
        std::thread::sleep(std::time::Duration::from_millis(5));
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// JSON Lines from a list of values.
pub fn lines(commands: &[Value]) -> String {
    commands
        .iter()
        .map(|command| format!("{command}\n"))
        .collect()
}

/// Reads a file to a string.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("readable file")
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---------------------------------------------------------------------------------------
// The HTTP server as a child process, and a small blocking HTTP/1.1 client (std only)

/// Issues a token for `actor` with `roles` (comma-separated); returns it.
pub fn add_token(store: &Store, actor: &str, roles: &str) -> String {
    let output = store.run(&["--actor", actor, "token", "add", "--role", roles]);
    assert!(output.status.success(), "token add: {}", stderr(&output));
    stdout(&output)
        .lines()
        .last()
        .expect("the token on the last line")
        .trim()
        .to_string()
}

/// Starts `grantflow --data <store> ARGS` (a `serve`) and waits for its
/// `listening on http://ADDR` line (panics on anything else); its standard output is then
/// drained on a thread, so that it never writes into a closed pipe.
pub fn spawn_serve(store: &Store, args: &[&str]) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::BufRead;
    let mut child = store
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("a line from serve");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("serve said {line:?}"));
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (child, addr)
}

/// A running `grantflow serve` on a free loopback port.
pub struct Server {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
}

impl Server {
    /// Starts `grantflow serve --addr 127.0.0.1:0` and waits (at most `timeout`) for its
    /// `listening on http://ADDR` line. `None` if it exited or stayed silent.
    pub fn start(store: &Store, timeout: std::time::Duration) -> Option<Server> {
        let mut child = Server::spawn(store);
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so that the server never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx.recv_timeout(timeout).ok();
        let addr = line
            .as_deref()
            .and_then(|line| line.trim().strip_prefix("listening on http://"))
            .and_then(|addr| addr.parse().ok());
        match addr {
            Some(addr) => Some(Server { child, addr }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }

    /// The child alone (standard output piped, standard error discarded).
    pub fn spawn(store: &Store) -> std::process::Child {
        store
            .command(&["serve", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("grantflow serve starts")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (at most `timeout`) for the exit; its status, `None` on timeout
    /// (the child is then killed).
    pub fn terminate(mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM failed");
        let started = std::time::Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// The resident set size of the server process, in KiB (from /proc).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
    }
}

/// One HTTP/1.1 request (`Connection: close`); returns the status and the body (chunked
/// bodies decoded).
pub fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> std::io::Result<(u16, Vec<u8>)> {
    use std::io::Read;
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(std::time::Duration::from_secs(60)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    if let Some(body) = body {
        stream.write_all(body)?;
    }
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    parse_response(&response)
}

/// A JSON request; the body parsed (a non-JSON body becomes a JSON string).
pub fn http_json(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let bytes = body.map(|body| body.to_string().into_bytes());
    let (status, body) = http(addr, method, path, token, bytes.as_deref())?;
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok((status, value))
}

fn invalid(detail: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, detail.to_string())
}

fn parse_response(response: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let end = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers (connection cut?)"))?;
    let head = String::from_utf8_lossy(&response[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no status"))?;
    let headers = head.to_ascii_lowercase();
    let body = &response[end + 4..];
    if headers.contains("transfer-encoding: chunked") {
        let mut reader = ChunkedReader::default();
        reader.feed(body);
        if !reader.done {
            return Err(invalid("chunked body cut short"));
        }
        return Ok((status, reader.out));
    }
    if let Some(length) = headers
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
    {
        if body.len() < length {
            return Err(invalid("body cut short"));
        }
        return Ok((status, body[..length].to_vec()));
    }
    Ok((status, body.to_vec()))
}

/// Decodes a chunked body incrementally.
#[derive(Default)]
pub struct ChunkedReader {
    pending: Vec<u8>,
    pub out: Vec<u8>,
    pub done: bool,
}

impl ChunkedReader {
    /// Feeds raw bytes; decoded bytes are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        loop {
            if self.done {
                return;
            }
            let Some(line_end) = self.pending.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.pending[..line_end]).to_string();
            let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
            let Ok(size) = usize::from_str_radix(&size_text, 16) else {
                self.done = true;
                return;
            };
            let need = line_end + 2 + size + 2;
            if self.pending.len() < need {
                return;
            }
            if size == 0 {
                self.done = true;
                return;
            }
            self.out
                .extend_from_slice(&self.pending[line_end + 2..line_end + 2 + size]);
            self.pending.drain(..need);
        }
    }
}

/// A fresh PostgreSQL schema for one test (`gf_test_<tag>_<pid>_<nanos>`), dropped at the end,
/// also when the test fails.
pub struct PgSchema {
    base: String,
    name: String,
}

impl PgSchema {
    /// A schema in the database of `base` (a URL; its query, if any, is left out).
    pub fn new(base: &str, tag: &str) -> PgSchema {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        PgSchema {
            base: base.split('?').next().unwrap_or(base).to_string(),
            name: format!(
                "gf_test_{tag}_{}_{}",
                std::process::id(),
                nanos % 1_000_000_000
            ),
        }
    }

    /// The store's URL: the database with `?schema=` this schema.
    pub fn url(&self) -> String {
        format!("{}?schema={}", self.base, self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.base)
            .args([
                "-q",
                "-c",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `tests/fixtures/<dir>/<name>`.
pub fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name)
}

/// A new store into which `grantflow import` brought the log of `path` (which must succeed).
pub fn imported(path: &Path) -> Store {
    let store = Store::new();
    let output = store.run(&["import", path.to_str().expect("a UTF-8 path")]);
    assert!(output.status.success(), "import: {}", stderr(&output));
    store
}
