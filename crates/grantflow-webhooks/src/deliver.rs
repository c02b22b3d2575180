//! Delivery: a supervisor that reads the registry every [`DeliveryOptions::poll`] and keeps
//! one worker task per enabled subscription; each worker follows the log from its cursor and
//! POSTs the events its subscription takes, one at a time, in position order.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use grantflow_store::cloudevent::{cloud_event, log_source};
use grantflow_store::subscription::subscribe;
use grantflow_store::{Envelope, EventStore};
use tokio::task::JoinHandle;

use crate::registry::{Progress, Registry};
use crate::signature::{message_id, Secret};
use crate::subscription::{Attempt, Filter, Subscription};
use crate::WebhookError;

/// How long one attempt may take, by default (connecting, sending, the receiver's answer).
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Failed attempts in a row after which a subscription is disabled, by default.
pub const MAX_FAILURES_DEFAULT: u32 = 20;
/// The pause after a subscription's first failed attempt, by default; it doubles with
/// each further failure, up to [`RETRY_PAUSE_MAX`], and is jittered (between half and all
/// of it).
pub const RETRY_BASE_DEFAULT: Duration = Duration::from_secs(1);
/// The longest pause between two attempts.
pub const RETRY_PAUSE_MAX: Duration = Duration::from_secs(300);
/// How often the registry is read for changes (and a cursor moved past events a
/// subscription does not take is saved).
pub const POLL_DEFAULT: Duration = Duration::from_secs(1);
/// How long a stopping server waits for its workers to record what they were doing.
pub const STOP_WAIT: Duration = Duration::from_secs(5);
/// The `Content-Type` of a delivery.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Failed attempts in a row after which a subscription is disabled (at least 1).
    pub max_failures: u32,
    /// The pause after the first failure (then doubled each time, jittered, capped).
    pub retry_base: Duration,
    /// How often the registry is read again.
    pub poll: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            timeout: TIMEOUT_DEFAULT,
            max_failures: MAX_FAILURES_DEFAULT,
            retry_base: RETRY_BASE_DEFAULT,
            poll: POLL_DEFAULT,
        }
    }
}

impl DeliveryOptions {
    /// Refuses options that cannot work.
    pub fn check(&self) -> Result<(), WebhookError> {
        if self.max_failures == 0 {
            return Err(WebhookError::Invalid(
                "--webhook-max-failures must be at least 1".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(WebhookError::Invalid(
                "--webhook-timeout-ms must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The pause before attempt `failures + 1`, after `failures` (>= 1) failures in a row:
    /// `retry_base * 2^(failures - 1)`, at most [`RETRY_PAUSE_MAX`], then a random point
    /// between its half and itself.
    pub fn pause(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        let full = self
            .retry_base
            .saturating_mul(1u32 << doublings)
            .min(RETRY_PAUSE_MAX.max(self.retry_base));
        let half = full / 2;
        let spread = u64::try_from((full - half).as_micros()).unwrap_or(u64::MAX);
        let mut bytes = [0u8; 8];
        let random = match getrandom::fill(&mut bytes) {
            Ok(()) => u64::from_le_bytes(bytes),
            Err(_) => 0,
        };
        half + Duration::from_micros(random % spread.max(1))
    }
}

/// The deliveries' HTTP client.
type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
>;

/// The User-Agent of a delivery.
const USER_AGENT: &str = concat!("grantflow-webhooks/", env!("CARGO_PKG_VERSION"));

/// The HTTP client of the deliveries: HTTP/1.1, HTTPS through rustls with the platform's
/// trust store; redirects are not followed (a redirect is a failure).
fn client() -> Result<Client, WebhookError> {
    // ring rather than aws-lc-rs (rustls's default, with post-quantum key exchange), given
    // to this client only: it builds without a C toolchain for aws-lc; rustls marks ring's
    // provider deprecated for that reason alone.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_platform_verifier(provider)
        .map_err(|error| {
            WebhookError::Invalid(format!("cannot set up TLS for the deliveries: {error}"))
        })?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

/// Delivers every enabled subscription of `registry` until `shutdown` completes.
pub async fn run(
    store: Arc<dyn EventStore>,
    registry: Arc<dyn Registry>,
    options: DeliveryOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WebhookError> {
    options.check()?;
    let client = client()?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut workers: HashMap<String, (u64, JoinHandle<()>)> = HashMap::new();
    loop {
        match registry.list().await {
            Ok(subscriptions) => {
                let context = Context {
                    store: &store,
                    registry: &registry,
                    client: &client,
                    options: &options,
                    stopping: &stopping,
                };
                reconcile(&context, &mut workers, &subscriptions);
                let known: Vec<String> = subscriptions.iter().map(|s| s.id.clone()).collect();
                if let Err(error) = registry.prune(&known).await {
                    tracing::warn!(%error, "webhooks: cannot remove a removed subscription's state");
                }
            }
            Err(error) => tracing::warn!(%error, "webhooks: cannot read the subscriptions"),
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(options.poll) => {}
        }
    }
    // Each worker stops at its next await that is not a record of progress: an attempt in
    // flight is dropped (made again by the next server: at least once), a cursor being saved
    // is saved.
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + STOP_WAIT;
    for (_, (_, mut worker)) in workers.drain() {
        if tokio::time::timeout_at(deadline, &mut worker)
            .await
            .is_err()
        {
            worker.abort();
            let _ = worker.await;
        }
    }
    Ok(())
}

/// What every worker shares.
struct Context<'a> {
    store: &'a Arc<dyn EventStore>,
    registry: &'a Arc<dyn Registry>,
    client: &'a Client,
    options: &'a DeliveryOptions,
    stopping: &'a tokio::sync::watch::Receiver<bool>,
}

/// Starts a worker for each enabled subscription without a live one of its generation, and
/// stops the workers of subscriptions removed, disabled or enabled again.
fn reconcile(
    context: &Context<'_>,
    workers: &mut HashMap<String, (u64, JoinHandle<()>)>,
    subscriptions: &[Subscription],
) {
    workers.retain(|id, (generation, worker)| {
        let wanted = subscriptions
            .iter()
            .any(|s| &s.id == id && s.enabled && s.generation == *generation);
        if !wanted {
            worker.abort();
        }
        wanted && !worker.is_finished()
    });
    for subscription in subscriptions.iter().filter(|s| s.enabled) {
        if workers.contains_key(&subscription.id) {
            continue;
        }
        let worker = Worker {
            store: context.store.clone(),
            registry: context.registry.clone(),
            client: context.client.clone(),
            options: context.options.clone(),
            id: subscription.id.clone(),
            generation: subscription.generation,
            stopping: context.stopping.clone(),
        };
        let id = subscription.id.clone();
        let handle = tokio::spawn(async move {
            if let Err(error) = worker.run().await {
                tracing::warn!(subscription = %id, %error, "webhooks: the worker stopped; it starts again");
            }
        });
        workers.insert(subscription.id.clone(), (subscription.generation, handle));
    }
}

/// Delivers one subscription.
struct Worker {
    store: Arc<dyn EventStore>,
    registry: Arc<dyn Registry>,
    client: Client,
    options: DeliveryOptions,
    id: String,
    generation: u64,
    /// Set when the server stops.
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// How delivering one event ended.
enum Delivered {
    Yes,
    /// The subscription is gone, disabled or of another generation: stop.
    Stop,
}

impl Worker {
    async fn run(self) -> Result<(), WebhookError> {
        // One deliverer per subscription: wait for its lease.
        let mut stopping = self.stopping.clone();
        let lease = loop {
            if let Some(lease) = self.registry.lease(&self.id).await? {
                break lease;
            }
            tokio::select! {
                _ = stopped(&mut stopping) => return Ok(()),
                _ = tokio::time::sleep(self.options.poll) => {}
            }
        };
        // Read after the lease: another server may have moved the cursor.
        let Some(loaded) = self.registry.load(&self.id).await? else {
            return Ok(());
        };
        let subscription = loaded.subscription;
        if !subscription.enabled || subscription.generation != self.generation {
            return Ok(());
        }
        let mut cursor = subscription.cursor;
        let mut failures = subscription.failures;
        let mut saved = cursor;
        let mut filter = Filter::new(&subscription);
        let mut source: Option<String> = None;
        let mut events = subscribe(self.store.clone(), cursor + 1, None);
        let mut save_at = tokio::time::Instant::now() + self.options.poll;
        tracing::info!(subscription = %self.id, after = cursor, url = %subscription.url, "webhooks: delivering");
        loop {
            let next = tokio::select! {
                _ = stopped(&mut stopping) => {
                    if saved != cursor {
                        self.save(cursor, failures, None).await?;
                    }
                    return Ok(());
                }
                next = events.next() => next,
                _ = tokio::time::sleep_until(save_at), if saved != cursor => {
                    // Events passed over: their cursor saved now and then, not each time.
                    if !self.save(cursor, failures, None).await? {
                        return Ok(());
                    }
                    saved = cursor;
                    continue;
                }
            };
            let envelope = match next {
                Some(Ok(envelope)) => envelope,
                Some(Err(error)) => return Err(error.into()),
                None => {
                    return Err(WebhookError::Store(
                        grantflow_store::StoreError::Unavailable(
                            "the log's subscription ended".into(),
                        ),
                    ))
                }
            };
            if !filter.takes(self.store.as_ref(), &envelope).await? {
                if saved == cursor {
                    save_at = tokio::time::Instant::now() + self.options.poll;
                }
                cursor = envelope.position;
                continue;
            }
            if source.is_none() {
                source = log_source(self.store.as_ref()).await?;
            }
            let body = cloud_event(source.as_deref().unwrap_or_default(), &envelope);
            let delivered = self
                .deliver(
                    &subscription,
                    &loaded.secret,
                    &envelope,
                    &body,
                    &mut failures,
                    &*lease,
                )
                .await?;
            match delivered {
                Delivered::Yes => {
                    cursor = envelope.position;
                    saved = cursor;
                }
                Delivered::Stop => return Ok(()),
            }
        }
    }

    async fn save(
        &self,
        cursor: u64,
        failures: u32,
        attempt: Option<Attempt>,
    ) -> Result<bool, WebhookError> {
        let progress = Progress {
            generation: self.generation,
            cursor,
            failures,
            attempt,
        };
        self.registry.record(&self.id, progress).await
    }

    /// Attempts `envelope` until the receiver takes it, retrying with a growing pause; after
    /// `max_failures` failures in a row, disables the subscription.
    async fn deliver(
        &self,
        subscription: &Subscription,
        secret: &Secret,
        envelope: &Envelope,
        body: &str,
        failures: &mut u32,
        lease: &dyn crate::registry::Lease,
    ) -> Result<Delivered, WebhookError> {
        let msg_id = message_id(&self.id, envelope.position);
        let mut number: u32 = 0;
        loop {
            if !lease.held() {
                return Err(WebhookError::Postgres(
                    "the connection holding this subscription's lock closed".into(),
                ));
            }
            number += 1;
            let mut stopping = self.stopping.clone();
            let attempting = self.attempt(
                subscription,
                secret,
                &msg_id,
                envelope.position,
                number,
                body,
            );
            let attempt = tokio::select! {
                // Stopping: the attempt in flight is dropped, unrecorded; made again later.
                _ = stopped(&mut stopping) => return Ok(Delivered::Stop),
                attempt = attempting => attempt,
            };
            let ok = attempt.ok();
            if ok {
                *failures = 0;
            } else {
                *failures = failures.saturating_add(1);
                tracing::warn!(
                    subscription = %self.id,
                    position = envelope.position,
                    attempt = number,
                    status = ?attempt.status,
                    error = ?attempt.error,
                    "webhooks: delivery failed"
                );
            }
            let cursor = if ok {
                envelope.position
            } else {
                envelope.position - 1
            };
            if !self
                .save(
                    cursor.max(subscription.start_after),
                    *failures,
                    Some(attempt),
                )
                .await?
            {
                return Ok(Delivered::Stop);
            }
            if ok {
                return Ok(Delivered::Yes);
            }
            if *failures >= self.options.max_failures {
                let reason = format!(
                    "{} failed attempts in a row (the last at position {}); \
                     `grantflow webhook enable {}` resumes it",
                    *failures, envelope.position, self.id
                );
                tracing::error!(subscription = %self.id, %reason, "webhooks: subscription disabled");
                self.registry
                    .disable(&self.id, self.generation, &reason)
                    .await?;
                return Ok(Delivered::Stop);
            }
            tokio::select! {
                _ = stopped(&mut stopping) => return Ok(Delivered::Stop),
                _ = tokio::time::sleep(self.options.pause(*failures)) => {}
            }
        }
    }

    /// One POST, signed for this moment.
    async fn attempt(
        &self,
        subscription: &Subscription,
        secret: &Secret,
        msg_id: &str,
        position: u64,
        number: u32,
        body: &str,
    ) -> Attempt {
        let at = crate::now_millis();
        let started = Instant::now();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = secret.sign(msg_id, timestamp, body.as_bytes());
        let request = hyper::Request::post(subscription.url.as_str())
            .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(http_body_util::Full::new(bytes::Bytes::copy_from_slice(
                body.as_bytes(),
            )));
        let (status, error) = match request {
            Err(error) => (None, Some(format!("cannot make the request: {error}"))),
            Ok(request) => {
                match tokio::time::timeout(self.options.timeout, self.client.request(request)).await
                {
                    Ok(Ok(response)) => {
                        let status = response.status();
                        let error = (!status.is_success()).then(|| format!("HTTP {status}"));
                        (Some(status.as_u16()), error)
                    }
                    Ok(Err(error)) => (None, Some(describe(&error))),
                    Err(_) => (
                        None,
                        Some(format!(
                            "no answer within {} ms",
                            self.options.timeout.as_millis()
                        )),
                    ),
                }
            }
        };
        Attempt {
            position,
            attempt: number,
            status,
            error,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            at,
        }
    }
}

/// Resolves once the server stops (the guard of the watched value is not kept).
async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// A request error with its causes (`error sending request: ... Connection refused`).
fn describe(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_with_jitter_up_to_the_cap() {
        let options = DeliveryOptions {
            retry_base: Duration::from_millis(100),
            ..DeliveryOptions::default()
        };
        for failures in 1..=40u32 {
            let full = (Duration::from_millis(100) * 2u32.saturating_pow((failures - 1).min(30)))
                .min(RETRY_PAUSE_MAX);
            for _ in 0..20 {
                let pause = options.pause(failures);
                assert!(
                    pause >= full / 2 && pause <= full,
                    "after {failures} failures: {pause:?} outside [{:?}, {full:?}]",
                    full / 2
                );
            }
        }
        // Jittered: not always the same.
        let pauses: std::collections::HashSet<Duration> =
            (0..20).map(|_| options.pause(5)).collect();
        assert!(pauses.len() > 1, "{pauses:?}");
    }

    #[test]
    fn options_that_cannot_work_are_refused() {
        let mut options = DeliveryOptions::default();
        assert_eq!(options.timeout, Duration::from_secs(10));
        assert_eq!(options.max_failures, 20);
        assert!(options.check().is_ok());
        options.max_failures = 0;
        assert!(options.check().is_err());
    }
}
