//! The HTTP API on real sockets (127.0.0.1, port 0): concurrent clients racing for the same
//! money, the live event stream with resumption across a dropped connection and a server
//! restart, and graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use grantflow_server::AppState;
use grantflow_store::Envelope;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_race_for_the_last_money_of_a_grant() {
    let h = harness().await;
    h.seed().await;
    let server = Server::start(h.state.clone()).await;
    let client = client();

    // 64 agencies ask for 100.00 each of a 1000.00 grant: exactly 10 fit.
    let secretariat = Arc::new(h.token("secretariat").to_string());
    let server = Arc::new(server);
    let mut tasks = Vec::new();
    for index in 0..64 {
        let (client, server, token) = (client.clone(), server.clone(), secretariat.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"command": "assign-agency", "grant": "G", "agency": format!("AG{index:02}"), "allocation": "100.00"});
            post(&client, &server, &token, &body).await
        }));
    }
    let mut accepted = Vec::new();
    for task in tasks {
        let (status, result) = task.await.unwrap();
        match status {
            200 => accepted.push(result),
            422 => assert_eq!(result["error"]["code"], "over_allocation", "{result}"),
            other => panic!("unexpected {other}: {result}"),
        }
    }
    assert_eq!(accepted.len(), 10);
    let (_, grant) = get_json(&client, &server, h.token("auditor"), "/v1/grants/G").await;
    assert_eq!(grant["allocated"], "1000.00");
    assert_eq!(grant["unallocated"], "0.00");
    assert_eq!(grant["agencies"].as_array().unwrap().len(), 10);

    // 64 disbursements of 30.00 to one agency holding 100.00: exactly 3 fit.
    let agency = grant["agencies"][0]["agency"].as_str().unwrap().to_string();
    let finance = Arc::new(h.token("finance").to_string());
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, server, token, agency) = (
            client.clone(),
            server.clone(),
            finance.clone(),
            agency.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let body = json!({"command": "record-disbursement", "grant": "G", "agency": agency, "amount": "30.00", "paid_on": "2013-01-15"});
            post(&client, &server, &token, &body).await
        }));
    }
    let mut paid = 0;
    for task in tasks {
        let (status, result) = task.await.unwrap();
        match status {
            200 => paid += 1,
            422 => assert_eq!(result["error"]["code"], "over_disbursement", "{result}"),
            other => panic!("unexpected {other}: {result}"),
        }
    }
    assert_eq!(paid, 3);
    let (_, grant) = get_json(&client, &server, h.token("auditor"), "/v1/grants/G").await;
    assert_eq!(
        (grant["disbursed"].as_str(), grant["status"].as_str()),
        (Some("90.00"), Some("active"))
    );
    let (_, fund) = get_json(&client, &server, h.token("auditor"), "/v1/funds/F").await;
    assert_eq!(
        (fund["disbursed"].as_str(), fund["cash"].as_str()),
        (Some("90.00"), Some("4910.00"))
    );
    let (_, report) = get_json(&client, &server, h.token("auditor"), "/v1/verify").await;
    assert_eq!(report["ok"], true, "{report}");
    // 5 seed events (approval: grant and fund) + 10 assignments + 3 disbursements.
    assert_eq!(report["events"], 5 + 10 + 3);
    Arc::into_inner(server).unwrap().stop().await;
    h.engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stream_delivers_catch_up_then_live_exactly_once_in_order() {
    let h = harness().await;
    h.seed().await;
    let server = Server::start(h.state.clone()).await;
    let client = client();
    let token = h.token("integrator");
    let mut stream = SseReader::connect(
        &client,
        &server.url("/v1/events/stream?from=2"),
        token,
        None,
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let event = stream.next(WAIT).await.unwrap();
        let envelope = Envelope::from_line(&event.data).unwrap();
        assert_eq!(event.id, Some(envelope.position.to_string()));
        assert_eq!(event.event.as_deref(), Some(envelope.event_type.as_str()));
        ids.push(envelope.position);
    }
    assert_eq!(ids, vec![2, 3, 4, 5]);
    // Live: appended while the stream is open, delivered once each, in order.
    let writer = {
        let (client, token, url) = (
            client.clone(),
            h.token("secretariat").to_string(),
            server.addr,
        );
        tokio::spawn(async move {
            for index in 0..20 {
                let body = json!({"command": "assign-agency", "grant": "G", "agency": format!("L{index}"), "allocation": "1.00"});
                let response = client
                    .post(format!("http://{url}/v1/commands"))
                    .bearer_auth(&token)
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
            }
        })
    };
    for _ in 0..20 {
        let event = stream.next(WAIT).await.unwrap();
        ids.push(event.id.unwrap().parse().unwrap());
    }
    writer.await.unwrap();
    assert_eq!(ids, (2..=25).collect::<Vec<u64>>());
    assert!(
        stream.quiet_for(Duration::from_millis(300)).await,
        "no duplicate"
    );

    // A filtered stream sees only its stream's events.
    let mut fund = SseReader::connect(
        &client,
        &server.url("/v1/events/stream?stream=fund-F"),
        token,
        None,
    )
    .await;
    let mut fund_ids = Vec::new();
    for _ in 0..3 {
        fund_ids.push(fund.next(WAIT).await.unwrap().id.unwrap());
    }
    assert_eq!(fund_ids, ["1", "2", "5"]);
    assert!(fund.quiet_for(Duration::from_millis(200)).await);
    assert_eq!(server.state.open_streams(), 2);
    drop((stream, fund));
    server.stop().await;
    assert_eq!(h.state.open_streams(), 0);
    h.engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_event_id_resumes_after_a_drop_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = issue_tokens(dir.path());
    let client = client();
    let mut delivered: Vec<u64> = Vec::new();

    let engine = open_engine(dir.path()).await;
    let server = Server::start(AppState::new(engine.clone(), dir.path())).await;
    for (role, body) in seed_commands() {
        assert_eq!(post(&client, &server, &tokens[role], &body).await.0, 200);
    }
    // Read three events, then drop the connection.
    let url = server.url("/v1/events/stream?from=1");
    let mut stream = SseReader::connect(&client, &url, &tokens["integrator"], None).await;
    for _ in 0..3 {
        delivered.push(
            stream
                .next(WAIT)
                .await
                .unwrap()
                .id
                .unwrap()
                .parse()
                .unwrap(),
        );
    }
    drop(stream);
    let assign = |index: usize| json!({"command": "assign-agency", "grant": "G", "agency": format!("R{index}"), "allocation": "1.00"});
    assert_eq!(
        post(&client, &server, &tokens["secretariat"], &assign(0))
            .await
            .0,
        200
    );
    // Resume after the last seen (the URL still says from=1, as an EventSource's would).
    let mut stream = SseReader::connect(
        &client,
        &url,
        &tokens["integrator"],
        delivered.last().copied(),
    )
    .await;
    for _ in 0..3 {
        delivered.push(
            stream
                .next(WAIT)
                .await
                .unwrap()
                .id
                .unwrap()
                .parse()
                .unwrap(),
        );
    }
    assert_eq!(
        post(&client, &server, &tokens["secretariat"], &assign(1))
            .await
            .0,
        200
    );
    delivered.push(
        stream
            .next(WAIT)
            .await
            .unwrap()
            .id
            .unwrap()
            .parse()
            .unwrap(),
    );
    assert_eq!(delivered, (1..=7).collect::<Vec<u64>>());

    // Appends while the subscriber is away, then a graceful stop ends its stream.
    assert_eq!(
        post(&client, &server, &tokens["secretariat"], &assign(2))
            .await
            .0,
        200
    );
    assert_eq!(
        post(&client, &server, &tokens["secretariat"], &assign(3))
            .await
            .0,
        200
    );
    server.stop().await;
    // The stop ends the stream; whatever it delivered before counts as seen.
    while let Some(event) = stream.next(WAIT).await {
        delivered.push(event.id.unwrap().parse().unwrap());
    }
    drop(stream);
    engine.close().await.unwrap();
    drop(engine);

    // A new process on the same data directory.
    let engine = open_engine(dir.path()).await;
    let server = Server::start(AppState::new(engine.clone(), dir.path())).await;
    assert_eq!(
        post(&client, &server, &tokens["secretariat"], &assign(4))
            .await
            .0,
        200
    );
    let url = server.url("/v1/events/stream?from=1");
    let mut stream = SseReader::connect(
        &client,
        &url,
        &tokens["integrator"],
        delivered.last().copied(),
    )
    .await;
    while delivered.len() < 10 {
        let event = stream.next(WAIT).await.unwrap();
        Envelope::from_line(&event.data).unwrap();
        delivered.push(event.id.unwrap().parse().unwrap());
    }
    assert_eq!(
        post(&client, &server, &tokens["secretariat"], &assign(5))
            .await
            .0,
        200
    );
    delivered.push(
        stream
            .next(WAIT)
            .await
            .unwrap()
            .id
            .unwrap()
            .parse()
            .unwrap(),
    );
    assert!(
        stream.quiet_for(Duration::from_millis(300)).await,
        "no duplicate"
    );
    assert_eq!(delivered, (1..=11).collect::<Vec<u64>>());
    drop(stream);
    server.stop().await;
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_ends_streams_and_keeps_acknowledged_commands() {
    let h = harness().await;
    h.seed().await;
    let server = Server::start(h.state.clone()).await;
    let client = client();
    let mut stream = SseReader::connect(
        &client,
        &server.url("/v1/events/stream?from=5"),
        h.token("auditor"),
        None,
    )
    .await;
    // Commands in flight while the server stops: every acknowledged one is in the log.
    let mut tasks = Vec::new();
    for index in 0..32 {
        let (client, token, addr) = (
            client.clone(),
            h.token("secretariat").to_string(),
            server.addr,
        );
        tasks.push(tokio::spawn(async move {
            let body = json!({"command": "assign-agency", "grant": "G", "agency": format!("S{index}"), "allocation": "1.00", "command_id": format!("s-{index}")});
            let response = client
                .post(format!("http://{addr}/v1/commands"))
                .bearer_auth(&token)
                .body(body.to_string())
                .send()
                .await;
            match response {
                Ok(response) if response.status() == 200 => Some(index),
                _ => None,
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.stop().await;
    // The stream ended (the client sees the end of the body, not a hang).
    loop {
        match stream.next(WAIT).await {
            None => break,
            Some(_) => continue,
        }
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        if let Some(index) = task.await.unwrap() {
            acknowledged.push(index);
        }
    }
    h.engine.close().await.unwrap();
    // Release the store (the state holds the engine) before opening it again.
    drop(h.state);
    drop(h.engine);
    let engine = open_engine(h.dir.path()).await;
    let grant = engine.with_model(|model| model.world.grant_view("G").unwrap());
    for index in acknowledged {
        assert!(
            grant
                .agencies
                .iter()
                .any(|a| a.agency == format!("S{index}")),
            "acknowledged S{index} is in the log"
        );
    }
    let report = grantflow_engine::audit::verify(engine.store().as_ref(), None, &|_, _| {})
        .await
        .unwrap();
    assert!(report.ok(), "{report:?}");
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_binds_reports_a_busy_address_and_stops_on_the_signal() {
    let h = harness().await;
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let error =
        grantflow_server::serve(h.engine.clone(), h.dir.path().to_path_buf(), addr, async {})
            .await
            .unwrap_err();
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(grantflow_server::serve(
        h.engine.clone(),
        h.dir.path().to_path_buf(),
        "127.0.0.1:0".parse().unwrap(),
        async move {
            let _ = stopped.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_on_a_socket_is_413() {
    let h = harness().await;
    let server = Server::start(h.state.clone()).await;
    let mut body = vec![b' '; grantflow_server::REQUEST_BODY_BYTES_MAX + 10];
    body[0] = b'{';
    let response = client()
        .post(server.url("/v1/commands"))
        .bearer_auth(h.token("finance"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    server.stop().await;
}

/// The server's end of every accepted connection has Nagle's algorithm off (`TCP_NODELAY`):
/// otherwise an answer or a stream's event written while the one before is unacknowledged
/// waits for the peer's (possibly delayed) acknowledgement. Read off the server's own socket
/// in this process (a duplicate of each descriptor, by `pidfd_getfd`): the one whose local
/// address is the server's and whose peer is this client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_connections_send_without_delay() {
    use rustix::net::{getpeername, getsockname, sockopt};
    use rustix::process::{getpid, pidfd_getfd, pidfd_open, PidfdFlags, PidfdGetfdFlags};
    use std::io::{Read, Write};
    use std::net::SocketAddr;

    let h = harness().await;
    let server = Server::start(h.state.clone()).await;
    let addr = server.addr;
    let client_end = tokio::task::spawn_blocking(move || {
        let mut connection = std::net::TcpStream::connect(addr).unwrap();
        connection
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = [0u8; 12];
        connection.read_exact(&mut answer).unwrap();
        assert_eq!(
            &answer,
            b"HTTP/1.1 200",
            "{}",
            String::from_utf8_lossy(&answer)
        );
        connection
    })
    .await
    .unwrap();
    let client_addr = client_end.local_addr().unwrap();

    let this = pidfd_open(getpid(), PidfdFlags::empty()).unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Ok(fd) = entry.unwrap().file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // Closed meanwhile (the directory's own descriptor, say): not a candidate.
        let Ok(copy) = pidfd_getfd(&this, fd, PidfdGetfdFlags::empty()) else {
            continue;
        };
        let local = getsockname(&copy)
            .ok()
            .and_then(|a| SocketAddr::try_from(a).ok());
        let peer = getpeername(&copy)
            .ok()
            .flatten()
            .and_then(|a| SocketAddr::try_from(a).ok());
        if local == Some(addr) && peer == Some(client_addr) {
            found.push(sockopt::tcp_nodelay(&copy).unwrap());
        }
    }
    assert_eq!(
        found,
        vec![true],
        "the server's end of the connection, TCP_NODELAY"
    );
    drop(client_end);
    server.stop().await;
}
