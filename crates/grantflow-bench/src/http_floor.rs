//! The HTTP floor: a server that does nothing but HTTP (axum on the same runtime and
//! allocator, reading each body and answering a constant 200), run as a child process, and
//! the `http-floor` scenarios that drive it with the same requests.

use std::path::Path;

use crate::http_load::{drive, Load};
use crate::http_target::Server;
use crate::report::Report;

/// `http-floor`: the same requests from the same load generator, answered by a server that
/// does nothing but HTTP (see [`floor_server`]).
/// `http-floor-rate` with a `rate`: the same at a fixed offered rate.
pub(crate) async fn floor(
    root: &Path,
    oha: &Path,
    bodies: &Path,
    n: usize,
    clients: usize,
    rate: Option<f64>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let server = Server::floor(root).await?;
    let load = Load {
        oha,
        addr: &server.addr,
        token: "floor",
        bodies,
        n,
        clients,
        rate,
    };
    let result = drive(&load, server.child.id()).await;
    let stopped = server.stop().await;
    let f = result?;
    stopped?;
    let name = if rate.is_some() {
        "http-floor-rate"
    } else {
        "http-floor"
    };
    report.line(name, f);
    Ok(())
}

/// The body of every answer of the floor server: the size and shape of grantflow's answer
/// to an accepted contribution.
const FLOOR_ANSWER: &str = r#"{"ok":true,"command_id":"01a22997-90f6-73a5-803c-d9b72e640c08","events":[{"position":1234567,"stream":"fund-HTTP-F00","version":12345,"type":"fund.contribution_recorded"}]}"#;

/// The `http-floor` child task: an axum server on a free port of loopback, on a runtime
/// built as `grantflow serve` builds its own and with the same allocator, whose one route
/// (`POST /v1/commands`) reads the body and answers a constant 200 JSON. What it costs is
/// what HTTP/1.1 on loopback costs on this machine: the floor under grantflow's HTTP figures.
/// Prints `listening on http://ADDR`; stops on SIGTERM.
pub(crate) fn floor_server() -> anyhow::Result<()> {
    use axum::body::Bytes;
    use axum::routing::post;
    use tokio::signal::unix::{signal, SignalKind};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(grantflow_engine::BLOCKING_THREADS_MAX)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut terminate = signal(SignalKind::terminate())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on http://{}", listener.local_addr()?);
        let app = axum::Router::new().route(
            "/v1/commands",
            post(|body: Bytes| async move {
                std::hint::black_box(body);
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    FLOOR_ANSWER,
                )
            }),
        );
        // TCP_NODELAY on every connection, as `grantflow serve` sets it.
        let listener = axum::serve::ListenerExt::tap_io(listener, |connection| {
            let _ = connection.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                terminate.recv().await;
            })
            .await?;
        Ok(())
    })
}
