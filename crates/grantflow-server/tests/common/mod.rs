//! Shared helpers: a real sled store in a temporary directory, one token per role, requests
//! through `oneshot` or a real socket, and a small Server-Sent Events reader.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use grantflow_engine::Engine;
use grantflow_server::{app, serve_listener, AppState, Limits, Tokens};
use grantflow_store_sled::SledStore;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tower::ServiceExt;

/// The actors of the test tokens, by role.
pub const SECRETARIAT: &str = "sam.secretariat";
pub const APPROVER: &str = "amy.approver";
pub const FINANCE: &str = "fred.finance";
pub const AUDITOR: &str = "ann.auditor";
pub const INTEGRATOR: &str = "ian.integrator";
pub const ADMIN: &str = "ada.admin";

/// A store, an engine and a token per role.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub engine: Arc<Engine>,
    pub state: AppState,
    /// role name -> token
    pub tokens: BTreeMap<&'static str, String>,
}

pub async fn open_engine(dir: &Path) -> Arc<Engine> {
    let store = SledStore::open(dir).unwrap();
    Arc::new(Engine::open(Arc::new(store)).await.unwrap())
}

pub fn issue_tokens(dir: &Path) -> BTreeMap<&'static str, String> {
    let mut tokens = BTreeMap::new();
    for (role, actor) in [
        ("secretariat", SECRETARIAT),
        ("approver", APPROVER),
        ("finance", FINANCE),
        ("auditor", AUDITOR),
        ("integrator", INTEGRATOR),
        ("admin", ADMIN),
    ] {
        let (_, token) = Tokens::add(dir, actor, &[role]).unwrap();
        tokens.insert(role, token);
    }
    tokens
}

pub async fn harness() -> Harness {
    harness_with(Limits::default()).await
}

pub async fn harness_with(limits: Limits) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let tokens = issue_tokens(dir.path());
    let engine = open_engine(dir.path()).await;
    let state = AppState::with_limits(engine.clone(), dir.path(), limits);
    Harness {
        dir,
        engine,
        state,
        tokens,
    }
}

impl Harness {
    pub fn token(&self, role: &str) -> &str {
        &self.tokens[role]
    }

    /// One request through the router, without a socket.
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|body| body.to_string().into_bytes());
        let (status, bytes) = self.call_raw(method, uri, token, body).await;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    pub async fn call_raw(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        self.send(request).await
    }

    /// Sends a request as built by the test; the status and the whole body.
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, Vec<u8>) {
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    /// A command as `role`.
    pub async fn command(&self, role: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", "/v1/commands", Some(self.token(role)), Some(body))
            .await
    }

    /// A command that must be accepted.
    pub async fn ok(&self, role: &str, body: Value) -> Value {
        let (status, result) = self.command(role, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body} -> {result}");
        result
    }

    /// Fund F (USD) with 5000.00 received, grant G proposed and approved for 1000.00.
    pub async fn seed(&self) {
        for (role, body) in seed_commands() {
            self.ok(role, body).await;
        }
    }
}

pub fn seed_commands() -> Vec<(&'static str, Value)> {
    vec![
        (
            "finance",
            json!({"command": "register-fund", "fund": "F", "name": "Trust fund", "currency": "USD", "iati_org_ref": "XM-DAC-41301"}),
        ),
        (
            "finance",
            json!({"command": "record-contribution", "fund": "F", "donor": "JPN", "amount": "5000.00", "received_on": "2012-09-01"}),
        ),
        (
            "secretariat",
            json!({"command": "submit-proposal", "fund": "F", "grant": "G", "title": "Migrants in transit", "amount": "1000.00"}),
        ),
        (
            "approver",
            json!({"command": "approve-grant", "grant": "G", "decided_on": "2012-09-27"}),
        ),
    ]
}

/// A server on 127.0.0.1, port 0.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(state: AppState) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_listener(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        let task = tokio::spawn(async move { task.await.unwrap().unwrap() });
        Server {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Graceful shutdown; waits until the server has returned.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("graceful shutdown within 10 s")
                .unwrap();
        }
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Reads events from a `text/event-stream` response.
pub struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    pub async fn connect(
        client: &reqwest::Client,
        url: &str,
        token: &str,
        last_event_id: Option<u64>,
    ) -> SseReader {
        let mut request = client.get(url).bearer_auth(token);
        if let Some(last) = last_event_id {
            request = request.header("last-event-id", last.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        SseReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event with data (comments and retry-only frames skipped); `None` at the end
    /// of the stream. Panics after `wait` without one.
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_frame(&frame) {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout(wait, self.response.chunk())
                .await
                .expect("an event within the wait")
                .unwrap();
            match chunk {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }

    /// Whether nothing but comments arrives for `wait`.
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if parse_frame(&frame).is_some() {
                    return false;
                }
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return true,
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(_) => return true,
            }
        }
    }
}

fn parse_frame(frame: &str) -> Option<SseEvent> {
    let mut event = SseEvent {
        id: None,
        event: None,
        data: String::new(),
    };
    let mut has_data = false;
    for line in frame.lines() {
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "" => {} // a comment
            "id" => event.id = Some(value.to_string()),
            "event" => event.event = Some(value.to_string()),
            "data" => {
                if has_data {
                    event.data.push('\n');
                }
                event.data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    has_data.then_some(event)
}

/// A command over a real socket: (status, body).
pub async fn post(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    let response = client
        .post(server.url("/v1/commands"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

pub async fn get_json(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    path: &str,
) -> (u16, Value) {
    let response = client
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap())
}
