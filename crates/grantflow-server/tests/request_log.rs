//! The structured request log (alone in its process: tracing caches callsite interest
//! process-wide, which a thread-local subscriber in a parallel test run would miss).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// A writer into a shared buffer, for reading the request log.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

#[tokio::test]
async fn the_request_log_names_route_status_and_actor_never_the_token() {
    let h = harness().await;
    let buffer = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buffer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    h.seed().await;
    h.call("GET", "/v1/grants/G", Some(h.token("auditor")), None)
        .await;
    h.call("GET", "/v1/grants/G", Some("gf_deadbeef_secret"), None)
        .await;
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("route=\"/v1/grants/{id}\""))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].contains("method=GET") && lines[0].contains("status=200"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains(&format!("actor=\"{AUDITOR}\"")) && lines[0].contains("latency_ms="));
    assert!(
        lines[1].contains("status=401") && lines[1].contains("actor=\"-\""),
        "{}",
        lines[1]
    );
    assert!(
        log.contains(&format!("actor=\"{FINANCE}\"")),
        "commands log their actor"
    );
    for token in h.tokens.values() {
        assert!(!log.contains(token.as_str()), "a token leaked into the log");
    }
    assert!(!log.contains("gf_deadbeef_secret"));
}
