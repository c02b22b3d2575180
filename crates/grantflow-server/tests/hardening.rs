//! The server against hostile or careless peers, on real sockets (127.0.0.1, port 0) and a
//! real sled store: signed checkpoints, slow and idle connections, the connection limit,
//! revoked tokens' event streams, the per-token stream cap and the bound on expensive reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use grantflow_engine::signing::{self, CheckpointSigner, SignedCheckpoint, TrustedKey};
use grantflow_server::{AppState, Limits, Tokens};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_checkpoint_is_signed_and_verifies_with_the_public_key() {
    let h = harness().await;
    h.seed().await;
    let keys = tempfile::tempdir().unwrap();
    let key_path = keys.path().join("server-key");
    let public = signing::generate(&key_path).unwrap();
    let signer = CheckpointSigner::load(&key_path).unwrap();
    let state = AppState::new(h.engine.clone(), h.dir.path()).with_checkpoint_signer(signer);
    let server = Server::start(state).await;
    let client = client();

    let (status, body) = get_json(&client, &server, h.token("auditor"), "/v1/checkpoint").await;
    assert_eq!(status, 200, "{body}");
    let signed: SignedCheckpoint = serde_json::from_value(body.clone()).unwrap();
    let trusted = TrustedKey::load(&signing::public_path(&key_path)).unwrap();
    assert_eq!(signed.key_id.as_deref(), Some(public.key_id()));
    trusted.check(&signed).unwrap();
    let head = h.engine.store().head().await.unwrap();
    assert_eq!(signed.checkpoint.position, head.position);
    assert_eq!(signed.checkpoint.hash, hex::encode(head.hash));

    // A changed field fails against the same key; another key refuses it.
    let mut moved = signed.clone();
    moved.checkpoint.position -= 1;
    assert!(trusted.check(&moved).is_err());
    let other_path = keys.path().join("other");
    let other = signing::generate(&other_path).unwrap();
    assert!(other.check(&signed).is_err());

    server.stop().await;

    // Without a signing key the checkpoint carries no signature.
    let plain = Server::start(AppState::new(h.engine.clone(), h.dir.path())).await;
    let (_, body) = get_json(&client, &plain, h.token("auditor"), "/v1/checkpoint").await;
    assert!(body.get("signature").is_none(), "{body}");
    assert!(body.get("key_id").is_none(), "{body}");
    let unsigned: SignedCheckpoint = serde_json::from_value(body).unwrap();
    assert!(trusted.check(&unsigned).is_err());
    plain.stop().await;
}

/// Reads from `stream` until the peer closes it; `None` if it is still open after `wait`.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, wait: Duration) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let mut buffer = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(received),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

/// Sends `GET /healthz` on a kept-alive connection and reads its whole answer; `None` when
/// no answer came within `wait`.
async fn healthz(stream: &mut tokio::net::TcpStream, wait: Duration) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return Some(text);
            }
        }
        let mut buffer = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_client_is_cut_off_within_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let h = harness_with(Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let server = Server::start(h.state.clone()).await;

    // Half a request line and one header, then nothing.
    let started = std::time::Instant::now();
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /v1/grants HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow, Duration::from_secs(5))
        .await
        .expect("the server closes a connection whose headers never end");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains("200 OK"), "{answer}");

    // A connection that sends nothing at all is closed the same way.
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    assert!(read_until_closed(&mut silent, Duration::from_secs(3))
        .await
        .is_some());

    // A client that sends its headers in time is answered, and its kept-alive connection
    // is closed once it stays idle for the timeout.
    let mut prompt = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let answer = healthz(&mut prompt, Duration::from_secs(3)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(read_until_closed(&mut prompt, Duration::from_secs(3))
        .await
        .is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_wait_until_one_closes() {
    let h = harness_with(Limits {
        connections_max: 2,
        ..Limits::default()
    })
    .await;
    let server = Server::start(h.state.clone()).await;
    let wait = Duration::from_secs(5);
    let mut first = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut second = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    assert!(healthz(&mut first, wait)
        .await
        .unwrap()
        .starts_with("HTTP/1.1 200"));
    assert!(healthz(&mut second, wait)
        .await
        .unwrap()
        .starts_with("HTTP/1.1 200"));

    // Both stay open (kept alive): a third connection is not served...
    let mut third = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let waiting = tokio::spawn(async move {
        let answer = healthz(&mut third, Duration::from_secs(10)).await;
        (answer, std::time::Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "a third connection was served");
    // ...until one of the two closes.
    let closed_at = std::time::Instant::now();
    drop(first);
    let (answer, answered_at) = waiting.await.unwrap();
    assert!(answer
        .expect("served once a connection closed")
        .starts_with("HTTP/1.1 200"));
    assert!(answered_at >= closed_at);
    // The other one is still served.
    assert!(healthz(&mut second, wait)
        .await
        .unwrap()
        .starts_with("HTTP/1.1 200"));
    drop(second);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_tokens_open_stream_ends_within_a_keep_alive() {
    let h = harness_with(Limits {
        keep_alive: Duration::from_millis(200),
        ..Limits::default()
    })
    .await;
    h.seed().await;
    let server = Server::start(h.state.clone()).await;
    let client = client();
    let url = server.url("/v1/events/stream");
    let mut revoked = SseReader::connect(&client, &url, h.token("integrator"), None).await;
    let mut kept = SseReader::connect(&client, &url, h.token("auditor"), None).await;
    // Both catch up on the seeded log.
    assert!(revoked.next(Duration::from_secs(5)).await.is_some());
    assert!(kept.next(Duration::from_secs(5)).await.is_some());
    assert_eq!(server.state.open_streams(), 2);

    let revoked_at = std::time::Instant::now();
    Tokens::revoke(h.dir.path(), h.token("integrator")).unwrap();
    // The stream ends (the remaining catch-up events may still arrive first; keep-alive
    // comments do not count, so the whole wait is bounded).
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while revoked.next(Duration::from_secs(5)).await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the revoked token's stream never ended");
    let took = revoked_at.elapsed();
    assert!(took < Duration::from_secs(2), "ended after {took:?}");
    // The other token's stream goes on, and sees a new event.
    kept.quiet_for(Duration::from_millis(100)).await;
    h.ok(
        "finance",
        serde_json::json!({"command": "record-contribution", "fund": "F", "donor": "JPN",
            "amount": "1.00", "received_on": "2012-09-02"}),
    )
    .await;
    let live = kept.next(Duration::from_secs(5)).await;
    assert!(live.is_some(), "the live token's stream ended");
    // The revoked token cannot open a new one.
    let again = client
        .get(&url)
        .bearer_auth(h.token("integrator"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
    drop(kept);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_cannot_take_every_stream() {
    let h = harness_with(Limits {
        streams_per_token: 2,
        ..Limits::default()
    })
    .await;
    let server = Server::start(h.state.clone()).await;
    let client = client();
    let url = server.url("/v1/events/stream");
    let first = SseReader::connect(&client, &url, h.token("integrator"), None).await;
    let _second = SseReader::connect(&client, &url, h.token("integrator"), None).await;
    let refused = client
        .get(&url)
        .bearer_auth(h.token("integrator"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.headers()["retry-after"].to_str().unwrap(),
        grantflow_server::RETRY_AFTER_SECONDS.to_string()
    );
    let body: serde_json::Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
    assert_eq!(body["ok"], false);
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("one token"),
        "{body}"
    );
    // Another token still gets one.
    let _other = SseReader::connect(&client, &url, h.token("auditor"), None).await;
    assert_eq!(server.state.open_streams(), 3);
    // A closed stream gives its place back to its token.
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.state.open_streams() > 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _third = SseReader::connect(&client, &url, h.token("integrator"), None).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expensive_reads_beyond_the_bound_are_answered_busy_with_retry_after() {
    let h = harness_with(Limits {
        expensive_reads_max: 1,
        expensive_reads_queue: 0,
        ..Limits::default()
    })
    .await;
    h.seed().await;
    // A log long enough that one verify takes a while.
    let contributions = (0..600).map(|n| {
        h.command(
            "finance",
            serde_json::json!({"command": "record-contribution", "fund": "F", "donor": "JPN",
                "amount": format!("{}.00", n + 1), "received_on": "2012-09-02"}),
        )
    });
    for (status, body) in futures::future::join_all(contributions).await {
        assert_eq!(status, 200, "{body}");
    }
    let server = Server::start(h.state.clone()).await;
    let client = client();
    let requests = (0..8).map(|_| {
        let request = client
            .get(server.url("/v1/verify"))
            .bearer_auth(h.token("auditor"))
            .send();
        async move {
            let response = request.await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().unwrap().to_string());
            let body: serde_json::Value =
                serde_json::from_str(&response.text().await.unwrap()).unwrap();
            (status, retry_after, body)
        }
    });
    let answers = futures::future::join_all(requests).await;
    let ok = answers.iter().filter(|(status, ..)| *status == 200).count();
    let busy: Vec<_> = answers
        .iter()
        .filter(|(status, ..)| *status == 503)
        .collect();
    assert!(ok >= 1, "{answers:?}");
    assert!(!busy.is_empty(), "no request was refused: {answers:?}");
    assert_eq!(ok + busy.len(), answers.len(), "{answers:?}");
    for (_, retry_after, body) in &busy {
        assert_eq!(body["error"]["code"], "busy", "{body}");
        assert_eq!(
            retry_after.as_deref(),
            Some(grantflow_server::RETRY_AFTER_SECONDS.to_string().as_str())
        );
    }
    // Once they are done, a verify runs again; cheap reads were never bounded.
    let (status, body) = get_json(&client, &server, h.token("auditor"), "/v1/verify").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_its_body_is_cut_off_after_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let h = harness_with(Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let server = Server::start(h.state.clone()).await;
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let started = std::time::Instant::now();
    let head = format!(
        "POST /v1/commands HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"command\":",
        h.token("finance")
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    // 90 bytes of the body never come: the request timeout (30 s) would answer it; the idle
    // timeout closes the connection first.
    read_until_closed(&mut slow, Duration::from_secs(5))
        .await
        .expect("the server closes a connection that moves no byte");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    server.stop().await;
}
