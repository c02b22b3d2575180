//! grantflow's HTTP API (docs/http.md): commands, figures, audit trails, the event
//! log paged and streamed (Server-Sent Events), checkpoints and verification, health,
//! metrics and the OpenAPI description; bearer tokens with roles; and the web console for
//! people (server-rendered pages at `/`, signed in with the same tokens).
//!
//! - [`app`] builds the router over an [`AppState`] (tests drive it with `oneshot`);
//!   [`serve`] / [`serve_listener`] run it on a socket with graceful shutdown.
//! - [`Tokens`] is the token registry (`<data>/tokens.json`, hashes only) behind
//!   `grantflow token add|list|revoke`.
//!
//! Invariants:
//! - The server holds no grant logic: a command body goes to [`Engine::submit`] as on the
//!   command line, with the token's actor ([`ActorSource::Fixed`]); figures come from the
//!   engine's read model and queries.
//! - Every error body has the Results shape of docs/errors.md; internal errors are logged, never shown.
//! - Every bound is a named constant: [`REQUEST_BODY_BYTES_MAX`], [`REQUEST_TIMEOUT`],
//!   [`STREAMS_MAX`], [`STREAMS_PER_TOKEN_MAX`], [`EVENTS_PAGE_MAX`], [`EVENTS_SCAN_MAX`],
//!   [`KEEP_ALIVE_INTERVAL`], [`HEADER_READ_TIMEOUT`], [`IDLE_TIMEOUT`], [`CONNECTIONS_MAX`],
//!   [`EXPENSIVE_READS_MAX`], [`EXPENSIVE_READS_QUEUE`] (gathered in [`Limits`]).
//! - An open event stream re-checks its token (or console session) at every keep-alive and
//!   ends when it is revoked.
//! - An event stream holds at most one page of the log in memory and reads it at the pace its
//!   client consumes it, so a slow subscriber never slows writers or other subscribers.
//!
//! [`ActorSource::Fixed`]: grantflow_engine::ActorSource::Fixed
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod catalog;
mod console;
pub mod error;
mod events;
mod extract;
pub mod metrics;
mod openapi;
mod routes;
mod state;
pub mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use grantflow_engine::Engine;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};

pub use auth::{command_role, Access, ActorSlot, Caller};
pub use catalog::asyncapi;
pub use console::session::{SESSIONS_FILE_NAME, SESSIONS_MAX, SESSION_COOKIE};
pub use console::CONTENT_SECURITY_POLICY;
pub use error::ApiError;
pub use events::{EVENTS_PAGE_DEFAULT, EVENTS_PAGE_MAX, EVENTS_SCAN_MAX, SSE_RETRY};
pub use metrics::Metrics;
pub use routes::openapi;
pub use state::{
    AppState, Limits, CONNECTIONS_MAX, EXPENSIVE_READS_MAX, EXPENSIVE_READS_QUEUE,
    HEADER_READ_TIMEOUT, IDLE_TIMEOUT, KEEP_ALIVE_INTERVAL, REQUEST_BODY_BYTES_MAX,
    REQUEST_TIMEOUT, RETRY_AFTER_SECONDS, SESSION_TTL, STREAMS_MAX, STREAMS_PER_TOKEN_MAX,
};
pub use tokens::{Role, TokenError, TokenInfo, Tokens, ROLES};

/// How long a stopping server waits for its closed event streams to be dropped.
const STREAMS_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Errors of starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The token registry is unreadable.
    #[error(transparent)]
    Tokens(#[from] TokenError),
    /// Serving failed.
    #[error("the HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The router of every route of docs/http.md (the API and the console), with its limits,
/// request log and timeout (one middleware: each layer costs every request a clone and a
/// boxed future) and panic handler.
pub fn app(state: AppState) -> Router {
    let (router, _) = routes::api_router().split_for_parts();
    let limits = state.limits().clone();
    router
        .merge(console::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), log_request))
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.body_bytes_max))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(cors())
        .with_state(state)
}

/// Cross-origin access for browser front ends and dashboards. Credentials are bearer tokens
/// sent explicitly (never cookies), so any origin may call the API with a token it holds.
fn cors() -> CorsLayer {
    use axum::http::{header, HeaderName, Method};
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ])
        .max_age(Duration::from_secs(600))
}

/// Binds `addr` (port 0 picks a free port), prints `listening on http://ADDR` on standard
/// output, and serves until `shutdown` resolves; then stops accepting, ends the event
/// streams and lets requests in flight finish. The caller closes the engine afterwards.
pub async fn serve(
    engine: Arc<Engine>,
    data_dir: PathBuf,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    serve_state(AppState::new(engine, data_dir), addr, shutdown).await
}

/// As [`serve`] with a prepared state (a checkpoint signer, other limits).
pub async fn serve_state(
    state: AppState,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    println!("listening on http://{local}");
    serve_listener(listener, state, shutdown).await
}

/// As [`serve`] on a bound listener and a prepared state (tests use port 0 and small limits).
///
/// The accept loop serves at most [`Limits::connections_max`] connections at once (more wait
/// in the listen backlog), each on hyper's HTTP/1 server with
/// [`Limits::header_read_timeout`] (a request's line and headers, and the wait for the next
/// request on a kept-alive connection) and [`Limits::idle_timeout`] (no byte moving either
/// way while the connection is open).
pub async fn serve_listener(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let tokens = Tokens::load(state.data_dir())?;
    if tokens.live_count() == 0 {
        tracing::warn!(
            "no live tokens in {}: every route but /healthz, /openapi.json and /asyncapi.json answers 401; \
             issue one with `grantflow token add --actor NAME --role ROLE`",
            state.data_dir().display()
        );
    }
    if let Ok(local) = listener.local_addr() {
        tracing::info!(%local, "grantflow HTTP API listening");
    }
    let limits = state.limits().clone();
    let router = app(state.clone());
    let connections_max = limits.connections_max.clamp(1, Semaphore::MAX_PERMITS);
    let connections = Arc::new(Semaphore::new(connections_max));
    let (stopping, stop) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
        };
        no_delay(&stream);
        tokio::spawn(serve_connection(
            stream,
            router.clone(),
            limits.clone(),
            stop.clone(),
            permit,
        ));
    }
    tracing::info!(
        "shutting down: no new connections, ending event streams, finishing requests in flight"
    );
    drop(listener);
    state.close_streams();
    stopping.send_replace(true);
    // Every connection gives its permit back when it has closed.
    let _all = connections.acquire_many(connections_max as u32).await;
    // The stream's body is dropped with its connection: wait for the open-stream count so
    // that, once this returns, every stream is closed.
    let deadline = Instant::now() + STREAMS_CLOSE_WAIT;
    while state.open_streams() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if state.open_streams() > 0 {
        tracing::warn!(
            open = state.open_streams(),
            "event streams still open after shutdown"
        );
    }
    Ok(())
}

/// An accept that failed: a connection reset before it was accepted is nothing; anything
/// else (too many open files) is logged and the loop pauses a second, as axum's does.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection, until it closes: HTTP/1 with the header read timeout, closed after
/// [`Limits::idle_timeout`] without a byte moving, shut down gracefully when `stop` turns
/// true (a request in flight is answered; an idle connection closes at once).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(io, TowerToHyperService::new(router));
    let mut connection = std::pin::pin!(connection);
    let mut stopping = false;
    loop {
        let idle_check = tokio::time::sleep(activity.until_idle(limits.idle_timeout));
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended");
                }
                return;
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            () = idle_check => {
                if activity.idle_for() >= limits.idle_timeout {
                    tracing::debug!(
                        idle_ms = activity.idle_for().as_millis() as u64,
                        "closing a connection with no byte moving"
                    );
                    return;
                }
            }
        }
    }
}

/// When a connection last moved a byte.
struct Activity {
    started: Instant,
    /// Milliseconds from `started` to the last byte read or written.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// How long until the connection has been idle for `limit` (at least 1 ms).
    fn until_idle(&self, limit: Duration) -> Duration {
        limit
            .saturating_sub(self.idle_for())
            .max(Duration::from_millis(1))
    }
}

/// A connection's socket that notes, in its [`Activity`], every read or write that moved
/// bytes.
struct Watched {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Turns Nagle's algorithm off on an accepted connection (`TCP_NODELAY`), as HTTP servers
/// do: an answer, or an event of a stream, goes out when it is written, not when the peer
/// has acknowledged the segment before it (which a peer that delays its acknowledgements
/// holds back by up to 40 ms on Linux). A connection that refuses it still serves.
fn no_delay(connection: &tokio::net::TcpStream) {
    if let Err(error) = connection.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
    }
}

/// The structured request log (method, route, status, latency, actor, never the token) and
/// the time limit: a request that takes longer than [`Limits::request_timeout`] is answered
/// 503 `timeout` (and logged so).
async fn log_request(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_default();
    let slot = ActorSlot::default();
    request.extensions_mut().insert(slot.clone());
    let limit = state.limits().request_timeout;
    let mut response = match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => timed_out(limit),
    };
    let status = response.status().as_u16();
    state.metrics().response(status);
    let elapsed = started.elapsed();
    if let Ok(timing) = HeaderValue::from_str(&server_timing(elapsed)) {
        response.headers_mut().insert("server-timing", timing);
    }
    tracing::info!(
        target: "grantflow_server::request",
        %method,
        route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1e3,
        actor = slot.get().as_deref().unwrap_or("-"),
        "request"
    );
    response
}

/// The `Server-Timing` header of every answer: the time from the request's routing to its
/// answer's head (`app;dur=` in milliseconds, as browsers' developer tools and the bench
/// read it). A streamed body (an export, the event stream) is not included.
fn server_timing(elapsed: Duration) -> String {
    format!("app;dur={:.3}", elapsed.as_secs_f64() * 1e3)
}

/// The 503 `timeout` answer of a request that took longer than `limit`.
fn timed_out(limit: Duration) -> Response {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        format!(
            "the request took longer than {} s; a command may still take effect: retry it \
             with the same command_id",
            limit.as_secs()
        ),
    )
    .into_response()
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
        .unwrap_or_else(|| "a handler panicked".to_string());
    ApiError::internal(format!("panic: {detail}")).into_response()
}
