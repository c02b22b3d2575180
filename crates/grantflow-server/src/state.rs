//! What every handler shares ([`AppState`]: the engine, the token registry, the counters, the
//! open event streams, the console's sessions and the bounds), and the bounds' named constants.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grantflow_engine::audit::Checkpoint;
use grantflow_engine::signing::{CheckpointSigner, SignedCheckpoint};
use grantflow_engine::{Engine, EngineError};
use tokio::sync::watch;

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
/// How often an idle event stream sends a keep-alive comment.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes_max: REQUEST_BODY_BYTES_MAX,
            request_timeout: REQUEST_TIMEOUT,
            streams_max: STREAMS_MAX,
            keep_alive: KEEP_ALIVE_INTERVAL,
            session_ttl: SESSION_TTL,
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
                limits,
                open_streams: AtomicUsize::new(0),
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

    /// Counts a new event stream, or refuses it over the cap.
    pub(crate) fn open_stream(&self) -> Result<StreamGuard, ApiError> {
        let max = self.shared.limits.streams_max;
        let opened =
            self.shared
                .open_streams
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |open| {
                    (open < max).then_some(open + 1)
                });
        match opened {
            Ok(_) => Ok(StreamGuard {
                shared: self.shared.clone(),
            }),
            Err(_) => Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                format!("{max} event streams are open, the most this server serves; retry later"),
            )),
        }
    }
}

/// One open event stream; dropping it closes the count.
pub(crate) struct StreamGuard {
    shared: Arc<Shared>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.shared.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}
