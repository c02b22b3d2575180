//! What every handler shares ([`AppState`]: the engine, the token registry, the counters, the
//! open event streams, the console's sessions and the bounds), and the bounds' named constants.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grantflow_engine::audit::Checkpoint;
use grantflow_engine::signing::{CheckpointSigner, SignedCheckpoint};
use grantflow_engine::{Engine, EngineError};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::console::session::Sessions;
pub use crate::console::session::SESSION_TTL;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::tokens::TokenCache;

/// The largest request body accepted, in bytes (one command is far smaller).
pub const REQUEST_BODY_BYTES_MAX: usize = 1024 * 1024;
/// How long a request may take before it is answered 503 `timeout` (an event stream's
/// body is not bounded by it, only the time to start it).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How many event streams may be open at once; one more is answered 503 `too_many_streams`.
pub const STREAMS_MAX: usize = 256;
/// How many event streams one token (or the console sessions of one token) may hold open at
/// once; one more is answered 429 `too_many_streams`, so that one client cannot take them all.
pub const STREAMS_PER_TOKEN_MAX: usize = 16;
/// How often an idle event stream sends a keep-alive comment; at each one, the stream's
/// token (or console session) is checked again, and a revoked one ends the stream.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// How long a client has to send a request's line and headers, counted from when the server
/// starts waiting for them: on a new connection, and on a kept-alive one after its last
/// answer (so it is also how long an idle kept-alive connection stays open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may go without a byte read or written while a request is in
/// flight before it is closed (a peer that stopped reading its answer); longer than
/// [`REQUEST_TIMEOUT`], so that a slow request is answered first.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How many connections are served at once; more wait in the listen backlog until one
/// closes.
pub const CONNECTIONS_MAX: usize = 1024;
/// How many expensive reads (figures as of a past moment, audit trails and the console's
/// grant and fund pages that show them, verify, the IATI exports) run at once; more wait.
pub const EXPENSIVE_READS_MAX: usize = 4;
/// How many expensive reads may wait for one of [`EXPENSIVE_READS_MAX`]; one more is answered
/// 503 `busy` with `Retry-After` (a waiting one is still bounded by [`REQUEST_TIMEOUT`]).
pub const EXPENSIVE_READS_QUEUE: usize = 32;
/// The `Retry-After` of a 503 `busy` or a 429, in seconds.
pub const RETRY_AFTER_SECONDS: u64 = 1;
/// The server's bounds (the defaults are the named constants; tests shrink them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// [`REQUEST_BODY_BYTES_MAX`].
    pub body_bytes_max: usize,
    /// [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// [`STREAMS_MAX`].
    pub streams_max: usize,
    /// [`KEEP_ALIVE_INTERVAL`].
    pub keep_alive: Duration,
    /// [`SESSION_TTL`]: how long a console session lasts.
    pub session_ttl: Duration,
    /// [`STREAMS_PER_TOKEN_MAX`].
    pub streams_per_token: usize,
    /// [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// [`CONNECTIONS_MAX`].
    pub connections_max: usize,
    /// [`EXPENSIVE_READS_MAX`].
    pub expensive_reads_max: usize,
    /// [`EXPENSIVE_READS_QUEUE`].
    pub expensive_reads_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes_max: REQUEST_BODY_BYTES_MAX,
            request_timeout: REQUEST_TIMEOUT,
            streams_max: STREAMS_MAX,
            keep_alive: KEEP_ALIVE_INTERVAL,
            session_ttl: SESSION_TTL,
            streams_per_token: STREAMS_PER_TOKEN_MAX,
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            connections_max: CONNECTIONS_MAX,
            expensive_reads_max: EXPENSIVE_READS_MAX,
            expensive_reads_queue: EXPENSIVE_READS_QUEUE,
        }
    }
}

/// What every handler shares: the engine, the token registry, counters and bounds.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

struct Shared {
    engine: Arc<Engine>,
    data_dir: PathBuf,
    tokens: TokenCache,
    metrics: Metrics,
    limits: Limits,
    open_streams: AtomicUsize,
    /// Open event streams by token id (only tokens with one open).
    streams_by_token: Mutex<HashMap<String, usize>>,
    /// The permits of expensive reads ([`Limits::expensive_reads_max`]).
    expensive_reads: Arc<Semaphore>,
    /// Expensive reads waiting for a permit.
    expensive_waiting: AtomicUsize,
    /// The console's signed-in browsers (kept in `<data>/sessions.json` too).
    sessions: Sessions,
    /// Turns true when the server shuts down: event streams end.
    closing: watch::Sender<bool>,
    /// Signs the checkpoints served (`serve --signing-key`), when set.
    signer: Option<CheckpointSigner>,
}

impl AppState {
    /// The state over an engine whose store lives in `data_dir` (where `tokens.json` is).
    pub fn new(engine: Arc<Engine>, data_dir: impl Into<PathBuf>) -> AppState {
        AppState::with_limits(engine, data_dir, Limits::default())
    }

    /// As [`AppState::new`] with other bounds.
    pub fn with_limits(
        engine: Arc<Engine>,
        data_dir: impl Into<PathBuf>,
        limits: Limits,
    ) -> AppState {
        let data_dir = data_dir.into();
        let (closing, _) = watch::channel(false);
        let sessions = Sessions::load(&data_dir, limits.session_ttl);
        AppState {
            shared: Arc::new(Shared {
                engine,
                tokens: TokenCache::new(data_dir.clone()),
                data_dir,
                metrics: Metrics::default(),
                sessions,
                expensive_reads: Arc::new(Semaphore::new(limits.expensive_reads_max)),
                expensive_waiting: AtomicUsize::new(0),
                limits,
                open_streams: AtomicUsize::new(0),
                streams_by_token: Mutex::new(HashMap::new()),
                closing,
                signer: None,
            }),
        }
    }

    /// This state with checkpoints signed by `signer` (`GET /v1/checkpoint`, the console's
    /// checkpoint download). Call it before the state is cloned.
    ///
    /// # Panics
    /// When the state was cloned already.
    pub fn with_checkpoint_signer(mut self, signer: CheckpointSigner) -> AppState {
        #[allow(clippy::expect_used)]
        let shared = Arc::get_mut(&mut self.shared)
            .expect("with_checkpoint_signer is called on a state not yet shared");
        shared.signer = Some(signer);
        self
    }

    /// The head of the log as a checkpoint, signed when the server has a signing key.
    pub(crate) async fn checkpoint(&self) -> Result<SignedCheckpoint, EngineError> {
        let checkpoint = Checkpoint::of(self.engine().store().as_ref()).await?;
        Ok(match &self.shared.signer {
            Some(signer) => signer.sign(checkpoint),
            None => SignedCheckpoint::unsigned(checkpoint),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.shared.engine
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.shared.data_dir
    }

    /// The counters behind `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The token registry, re-read when its file changes.
    pub(crate) fn tokens(&self) -> &TokenCache {
        &self.shared.tokens
    }

    /// The console's sessions.
    pub(crate) fn sessions(&self) -> &Sessions {
        &self.shared.sessions
    }

    /// Console sessions kept now.
    pub fn session_count(&self) -> usize {
        self.shared.sessions.len()
    }

    /// The bounds.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Event streams open now.
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams.load(Ordering::SeqCst)
    }

    /// Whether the token whose SHA-256 (hex) is `sha256` is still live (not revoked): how an
    /// open event stream checks its token at every keep-alive.
    pub(crate) fn token_live(&self, sha256: &str) -> bool {
        self.tokens().current().authenticate_hash(sha256).is_some()
    }

    /// Resolves once `live` turns false, checked every [`Limits::keep_alive`]: an event
    /// stream ends with it.
    pub(crate) fn until_revoked(
        &self,
        live: impl Fn(&AppState) -> bool + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let state = self.clone();
        async move {
            let mut ticks = tokio::time::interval(state.limits().keep_alive);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if !live(&state) {
                    return;
                }
            }
        }
    }

    /// Ends every event stream (their clients resume with `Last-Event-ID`) and refuses new
    /// ones: the first step of a graceful shutdown.
    pub fn close_streams(&self) {
        self.shared.closing.send_replace(true);
    }

    /// Whether [`AppState::close_streams`] was called.
    pub fn is_closing(&self) -> bool {
        *self.shared.closing.borrow()
    }

    /// Resolves once the server is shutting down.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.shared.closing.subscribe();
        async move {
            let _ = receiver.wait_for(|closing| *closing).await;
        }
    }

    /// Counts a new event stream of token `token_id`, or refuses it over the server's cap
    /// (503) or the token's (429).
    pub(crate) fn open_stream(&self, token_id: &str) -> Result<StreamGuard, ApiError> {
        let per_token = self.shared.limits.streams_per_token;
        {
            let mut by_token = self
                .shared
                .streams_by_token
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let open = by_token.entry(token_id.to_string()).or_insert(0);
            if *open >= per_token {
                return Err(ApiError::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "too_many_streams",
                    format!(
                        "this token has {per_token} event streams open, the most one token may \
                         hold; close one (or use another token) and retry"
                    ),
                ));
            }
            *open += 1;
        }
        // From here the guard owns the token's count: dropped on refusal, it gives it back.
        let mut guard = StreamGuard {
            shared: self.shared.clone(),
            token_id: token_id.to_string(),
            counted: false,
        };
        let max = self.shared.limits.streams_max;
        let opened =
            self.shared
                .open_streams
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |open| {
                    (open < max).then_some(open + 1)
                });
        match opened {
            Ok(_) => {
                guard.counted = true;
                Ok(guard)
            }
            Err(_) => Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                format!("{max} event streams are open, the most this server serves; retry later"),
            )),
        }
    }

    /// A permit for an expensive read: at once when fewer than
    /// [`Limits::expensive_reads_max`] run, else after waiting in a queue of at most
    /// [`Limits::expensive_reads_queue`]; 503 `busy` when that queue is full.
    pub(crate) async fn expensive_read(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        let semaphore = self.shared.expensive_reads.clone();
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let queue = self.shared.limits.expensive_reads_queue;
        let waiting = &self.shared.expensive_waiting;
        if waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                (now < queue).then_some(now + 1)
            })
            .is_err()
        {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "{} expensive reads (figures as of the past, audit trails, verify, exports) \
                     are running and {queue} are waiting, the most this server takes; retry in \
                     a moment",
                    self.shared.limits.expensive_reads_max
                ),
            ));
        }
        // Counted out again however the wait ends (a permit, or the request dropped).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(waiting);
        semaphore
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("the expensive reads' semaphore is closed"))
    }
}

/// One open event stream; dropping it closes the counts.
pub(crate) struct StreamGuard {
    shared: Arc<Shared>,
    token_id: String,
    /// Whether the server-wide count holds this stream.
    counted: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.counted {
            self.shared.open_streams.fetch_sub(1, Ordering::SeqCst);
        }
        let mut by_token = self
            .shared
            .streams_by_token
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(open) = by_token.get_mut(&self.token_id) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                by_token.remove(&self.token_id);
            }
        }
    }
}
