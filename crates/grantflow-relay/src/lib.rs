//! The relay: grantflow's event log published to a NATS JetStream stream, every event once,
//! in position order, as a CloudEvent, resuming after a crash where the stream stops.
//!
//! - **Subjects**: `<prefix>.<fund|grant>.<id>.<type after its first dot>`, e.g.
//!   `grantflow.grant.MEX-2012-01.disbursement_recorded` ([`subject`]); a `.` in an id (or
//!   any character a NATS subject cannot hold) becomes `_`.
//! - **Messages**: CloudEvents 1.0 in structured JSON mode ([`cloud_event`]): `id` the
//!   position, `source` the log's identity ([`log_source`]), `type` the event type, `subject`
//!   the stream, `time` the recorded time, `data` the envelope exactly as exported (its hash
//!   chain can be checked from the messages alone).
//! - **Exactly once, in order**: each message carries `Nats-Msg-Id: <position>`, so JetStream
//!   drops a message published twice, and `Nats-Expected-Last-Msg-Id: <position - 1>`, so
//!   JetStream refuses a message whose predecessor is not the stream's last: the stream can
//!   hold no gap, whatever fails when. On start, and after any failure, the relay reads the
//!   position of the stream's last message (and checks that the log holds the same event
//!   there: header `Grantflow-Hash`) and goes on from the next one.
//! - **Bounded**: at most [`RelayOptions::in_flight_max`] publishes await their
//!   acknowledgement at once.
//!
//! The relay follows the log with [`grantflow_store::subscription::subscribe`] (catch-up
//! then live) until its shutdown future completes, then waits for the acknowledgements of
//! what it published.

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use futures::StreamExt;
pub use grantflow_store::cloudevent::{cloud_event, log_source};
use grantflow_store::subscription::subscribe;
use grantflow_store::{Envelope, EventStore, StoreError};

/// The JetStream stream the relay publishes to by default (created when missing).
pub const DEFAULT_STREAM: &str = "GRANTFLOW";
/// The first token of every subject by default.
pub const DEFAULT_SUBJECT_PREFIX: &str = "grantflow";
/// Publishes awaiting their acknowledgement at once, by default.
pub const DEFAULT_IN_FLIGHT_MAX: usize = 256;
/// The header naming the hash of the event a message carries (checked on resume).
pub const HASH_HEADER: &str = "Grantflow-Hash";
/// The longest pause between two attempts after a failure (NATS down, a refused publish).
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(5);

/// Where and how the relay publishes.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// The NATS server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The JetStream stream (created with subjects `<prefix>.>` when missing).
    pub stream: String,
    /// The first token of every subject.
    pub subject_prefix: String,
    /// The CloudEvents `source`; `None`: [`log_source`].
    pub source: Option<String>,
    /// Publishes awaiting their acknowledgement at once.
    pub in_flight_max: usize,
    /// Keep trying to reach a NATS server that is down at start (the relay inside `serve`),
    /// instead of failing at once (the `relay` verb).
    pub retry_initial_connect: bool,
}

impl RelayOptions {
    /// The defaults for the server at `url`.
    pub fn new(url: impl Into<String>) -> RelayOptions {
        RelayOptions {
            url: url.into(),
            stream: DEFAULT_STREAM.to_string(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_string(),
            source: None,
            in_flight_max: DEFAULT_IN_FLIGHT_MAX,
            retry_initial_connect: false,
        }
    }

    /// Checks the names: a stream name and a subject prefix NATS accepts.
    pub fn check(&self) -> Result<(), RelayError> {
        let bad_stream = self.stream.is_empty()
            || self
                .stream
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'));
        if bad_stream {
            return Err(RelayError::Options(format!(
                "--stream {:?}: a JetStream stream name is not empty and holds no space, \
                 '.', '*', '>', '/' or '\\'",
                self.stream
            )));
        }
        let bad_prefix = self.subject_prefix.is_empty()
            || self.subject_prefix.split('.').any(|token| {
                token.is_empty()
                    || token
                        .chars()
                        .any(|c| c.is_whitespace() || matches!(c, '*' | '>'))
            });
        if bad_prefix {
            return Err(RelayError::Options(format!(
                "--subject-prefix {:?}: dot-separated tokens, none empty, without spaces, \
                 '*' or '>'",
                self.subject_prefix
            )));
        }
        if self.in_flight_max == 0 {
            return Err(RelayError::Options(
                "at least one publish must be allowed in flight".into(),
            ));
        }
        Ok(())
    }
}

/// Why the relay stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Options that cannot work.
    #[error("{0}")]
    Options(String),
    /// The NATS server could not be reached at start.
    #[error("cannot connect to NATS at {url}: {detail}")]
    Connect {
        /// The server's address.
        url: String,
        /// The client's error.
        detail: String,
    },
    /// The JetStream stream belongs to something else (another log, other publishers).
    #[error("{0}")]
    ForeignStream(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a relay run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// The stream's last position when the relay started (0: empty).
    pub resumed_after: u64,
    /// Messages acknowledged as new by JetStream.
    pub published: u64,
    /// Messages JetStream already held (dropped as duplicates).
    pub duplicates: u64,
    /// The last position acknowledged.
    pub last_position: u64,
}

/// The subject of an event: `<prefix>.<fund|grant>.<id>.<type after its first dot>`.
pub fn subject(prefix: &str, envelope: &Envelope) -> String {
    let (kind, id) = envelope
        .stream
        .split_once('-')
        .unwrap_or(("stream", envelope.stream.as_str()));
    let event = envelope
        .event_type
        .split_once('.')
        .map_or(envelope.event_type.as_str(), |(_, rest)| rest);
    format!(
        "{prefix}.{}.{}.{}",
        token(kind),
        token(id),
        token(event).replace('.', "_")
    )
}

/// A subject token: every character NATS treats specially (`.`, `*`, `>`, white space) or
/// cannot carry (control characters) as `_`.
fn token(text: &str) -> String {
    let token: String = text
        .chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if token.is_empty() {
        "_".to_string()
    } else {
        token
    }
}

/// A publish awaiting its acknowledgement.
type AckFuture = Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>;

/// The oldest publish's acknowledgement (the queue is not empty).
async fn next_ack(
    in_flight: &mut VecDeque<(u64, AckFuture)>,
) -> (u64, Result<PublishAck, PublishError>) {
    match in_flight.front_mut() {
        Some((position, ack)) => {
            let position = *position;
            let result = ack.await;
            in_flight.pop_front();
            (position, result)
        }
        None => std::future::pending().await,
    }
}

/// Publishes the log to JetStream until `shutdown` completes; then waits for what is in
/// flight. Failures of NATS (down, restarting, a refused publish) are retried from the
/// stream's last message with a growing pause; a stream that belongs to something else, and
/// a failing store, end the run.
pub async fn run(
    store: Arc<dyn EventStore>,
    options: &RelayOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<RelayReport, RelayError> {
    run_with(store, options, shutdown, |_| {}).await
}

/// As [`run`], calling `started` once with the stream's last position when the relay has
/// found where to resume (the `relay` verb says so on standard error).
pub async fn run_with(
    store: Arc<dyn EventStore>,
    options: &RelayOptions,
    shutdown: impl Future<Output = ()>,
    started: impl FnOnce(u64),
) -> Result<RelayReport, RelayError> {
    options.check()?;
    let mut started = Some(started);
    let mut connect = async_nats::ConnectOptions::new().name("grantflow relay");
    if options.retry_initial_connect {
        connect = connect.retry_on_initial_connect();
    }
    let client = connect
        .connect(options.url.as_str())
        .await
        .map_err(|error| RelayError::Connect {
            url: options.url.clone(),
            detail: error.to_string(),
        })?;
    let js = jetstream::new(client);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut report = RelayReport::default();
    let mut first = true;
    let mut failures: u32 = 0;
    loop {
        let attempt = async {
            let stream = ensure_stream(&js, options).await?;
            let last = last_position(&stream, store.as_ref(), options).await?;
            if first {
                report.resumed_after = last;
                report.last_position = last;
                if let Some(started) = started.take() {
                    started(last);
                }
                tracing::info!(
                    stream = options.stream,
                    resumed_after = last,
                    "relaying the log to JetStream"
                );
            }
            Ok::<u64, Attempt>(last)
        };
        let outcome = match attempt.await {
            Ok(last) => {
                first = false;
                relay_from(&js, &store, options, last, &mut shutdown, &mut report).await
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => return Ok(report),
            Err(Attempt::Fatal(error)) => return Err(error),
            Err(Attempt::Retry(detail)) => {
                failures = failures.saturating_add(1);
                let pause = (Duration::from_millis(100) * 2u32.saturating_pow(failures.min(6)))
                    .min(RETRY_PAUSE_MAX);
                tracing::warn!(
                    %detail,
                    retry_in_ms = pause.as_millis() as u64,
                    "relay: publishing failed; resuming from the stream's last message"
                );
                tokio::select! {
                    _ = &mut shutdown => return Ok(report),
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// A failed attempt: retried (NATS) or the end of the run.
enum Attempt {
    Retry(String),
    Fatal(RelayError),
}

impl From<StoreError> for Attempt {
    fn from(error: StoreError) -> Attempt {
        Attempt::Fatal(RelayError::Store(error))
    }
}

/// The stream, created when missing (subjects `<prefix>.>`, kept on disk).
async fn ensure_stream(
    js: &jetstream::Context,
    options: &RelayOptions,
) -> Result<stream::Stream, Attempt> {
    js.get_or_create_stream(stream::Config {
        name: options.stream.clone(),
        subjects: vec![format!("{}.>", options.subject_prefix)],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|error| {
        Attempt::Retry(format!(
            "creating or finding the stream {}: {error}",
            options.stream
        ))
    })
}

/// The position of the stream's last message (0 when it is empty), checked against the log.
async fn last_position(
    stream: &stream::Stream,
    store: &dyn EventStore,
    options: &RelayOptions,
) -> Result<u64, Attempt> {
    let mut stream = stream.clone();
    let info = stream
        .info()
        .await
        .map_err(|error| Attempt::Retry(format!("reading the stream's state: {error}")))?;
    let sequence = info.state.last_sequence;
    if info.state.messages == 0 || sequence == 0 {
        return Ok(0);
    }
    let message = stream
        .get_raw_message(sequence)
        .await
        .map_err(|error| Attempt::Retry(format!("reading the stream's last message: {error}")))?;
    let foreign = |why: String| {
        Attempt::Fatal(RelayError::ForeignStream(format!(
            "the JetStream stream {} is not this log's: {why}; give the relay a stream of its \
             own (--stream)",
            options.stream
        )))
    };
    let header = |name: &str| {
        message
            .headers
            .get(name)
            .map(|value| value.as_str().to_string())
    };
    let Some(position) = header("Nats-Msg-Id").and_then(|id| id.parse::<u64>().ok()) else {
        return Err(foreign(format!(
            "its last message (sequence {sequence}) has no position as Nats-Msg-Id"
        )));
    };
    let logged = store.read(position, 1).await?;
    match logged.first() {
        Some(envelope) if envelope.position == position => {
            let hash = hex::encode(envelope.hash);
            if header(HASH_HEADER).as_deref() != Some(hash.as_str()) {
                return Err(foreign(format!(
                    "its message for position {position} carries another event (hash {:?}, \
                     the log's is {hash})",
                    header(HASH_HEADER).unwrap_or_default()
                )));
            }
            Ok(position)
        }
        _ => Err(foreign(format!(
            "it holds position {position}, past the log's head"
        ))),
    }
}

/// Publishes from `last + 1` until shutdown (`Ok`) or a failure.
async fn relay_from(
    js: &jetstream::Context,
    store: &Arc<dyn EventStore>,
    options: &RelayOptions,
    last: u64,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    report: &mut RelayReport,
) -> Result<(), Attempt> {
    let mut events = subscribe(store.clone(), last + 1, None);
    let mut source = options.source.clone();
    let mut in_flight: VecDeque<(u64, AckFuture)> = VecDeque::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.as_mut() => {
                while let Some((position, ack)) = in_flight.pop_front() {
                    acknowledged(position, ack.await, report)?;
                }
                return Ok(());
            }
            (position, ack) = next_ack(&mut in_flight), if !in_flight.is_empty() => {
                acknowledged(position, ack, report)?;
            }
            event = events.next(), if in_flight.len() < options.in_flight_max => {
                let envelope = match event {
                    Some(Ok(envelope)) => envelope,
                    Some(Err(error)) => return Err(error.into()),
                    None => {
                        return Err(Attempt::Fatal(RelayError::Store(StoreError::Unavailable(
                            "the log's subscription ended".into(),
                        ))))
                    }
                };
                if source.is_none() {
                    source = log_source(store.as_ref()).await?;
                }
                let ack = publish(js, options, source.as_deref().unwrap_or_default(), &envelope).await?;
                in_flight.push_back((envelope.position, ack));
            }
        }
    }
}

/// Sends one event; its acknowledgement is awaited later.
async fn publish(
    js: &jetstream::Context,
    options: &RelayOptions,
    source: &str,
    envelope: &Envelope,
) -> Result<AckFuture, Attempt> {
    let mut headers = HeaderMap::new();
    headers.insert(HASH_HEADER, hex::encode(envelope.hash).as_str());
    headers.insert("Content-Type", "application/cloudevents+json");
    let mut message = PublishMessage::build()
        .payload(cloud_event(source, envelope).into())
        .headers(headers)
        .message_id(envelope.position.to_string());
    if envelope.position > 1 {
        message = message.expected_last_message_id((envelope.position - 1).to_string());
    }
    let ack = js
        .send_publish(subject(&options.subject_prefix, envelope), message)
        .await
        .map_err(|error| {
            Attempt::Retry(format!(
                "publishing position {}: {error}",
                envelope.position
            ))
        })?;
    Ok(Box::pin(ack.into_future()))
}

/// Records an acknowledgement (new or duplicate); a refusal is a retry from the stream's end.
fn acknowledged(
    position: u64,
    ack: Result<PublishAck, PublishError>,
    report: &mut RelayReport,
) -> Result<(), Attempt> {
    match ack {
        Ok(ack) => {
            if ack.duplicate {
                report.duplicates += 1;
            } else {
                report.published += 1;
            }
            report.last_position = position;
            if report.published.is_multiple_of(10_000) && !ack.duplicate {
                tracing::info!(position, published = report.published, "relay: progress");
            }
            Ok(())
        }
        Err(error) => Err(Attempt::Retry(format!(
            "position {position} was not acknowledged: {error}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(stream: &str, event_type: &str) -> Envelope {
        let mut envelope = Envelope {
            position: 41,
            stream: stream.into(),
            version: 3,
            event_type: event_type.into(),
            schema: 1,
            recorded_at: "2012-09-27T00:00:00.000000Z".into(),
            actor: "finance.k.sato".into(),
            command_id: "c".into(),
            correlation_id: "c".into(),
            payload: "{\"grant\":\"MEX-2012-01\"}".into(),
            prev_hash: [0; 32],
            hash: [0; 32],
        };
        envelope.hash = envelope.compute_hash();
        envelope
    }

    #[test]
    fn subjects_name_the_stream_kind_id_and_type() {
        assert_eq!(
            subject(
                "grantflow",
                &envelope("grant-MEX-2012-01", "grant.disbursement_recorded")
            ),
            "grantflow.grant.MEX-2012-01.disbursement_recorded"
        );
        assert_eq!(
            subject(
                "gf.prod",
                &envelope("fund-UN.TFHS", "fund.contribution_recorded")
            ),
            "gf.prod.fund.UN_TFHS.contribution_recorded"
        );
        assert_eq!(
            subject("p", &envelope("grant-a b*>", "grant.x.y")),
            "p.grant.a_b__.x_y"
        );
    }

    #[test]
    fn a_cloud_event_carries_the_envelope_byte_for_byte() {
        let envelope = envelope("grant-MEX-2012-01", "grant.approved");
        let text = cloud_event("urn:grantflow:log:ab", &envelope);
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value["specversion"], "1.0");
        assert_eq!(value["id"], "41");
        assert_eq!(value["source"], "urn:grantflow:log:ab");
        assert_eq!(value["type"], "grant.approved");
        assert_eq!(value["subject"], "grant-MEX-2012-01");
        assert_eq!(value["time"], "2012-09-27T00:00:00.000000Z");
        assert!(text.ends_with(&format!(",\"data\":{}}}", envelope.to_line())));
        assert_eq!(
            Envelope::from_line(&value["data"].to_string()).expect("an envelope"),
            envelope
        );
    }

    #[test]
    fn options_refuse_names_nats_cannot_use() {
        let mut options = RelayOptions::new("nats://127.0.0.1:4222");
        assert!(options.check().is_ok());
        options.stream = "GRANT.FLOW".into();
        assert!(options.check().is_err());
        options.stream = "GRANTFLOW".into();
        options.subject_prefix = "a..b".into();
        assert!(options.check().is_err());
        options.subject_prefix = "a.>".into();
        assert!(options.check().is_err());
    }
}
