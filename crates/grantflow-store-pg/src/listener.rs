//! Keeps [`crate::PgStore::watch_head`] up to date with other processes' appends.
//!
//! A dedicated connection LISTENs on the schema's channel (`grantflow_head_<schema>`); every
//! append NOTIFYs it with the new head inside its transaction, so the notification is
//! delivered only once the append has committed. The same connection also reads the head
//! row every poll interval, as a fallback for a lost notification or a writer that does
//! not notify. The watch only ever moves forward and never past a committed head. When the
//! connection breaks, the task reconnects after [`RECONNECT_DELAY_MS`].

use std::sync::Weak;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, Config, NoTls};

/// How long the listener waits before reconnecting after losing its connection.
pub const RECONNECT_DELAY_MS: u64 = 1_000;

/// Runs until the store (the owner of the watch's sender) is gone.
pub(crate) async fn run(
    config: Config,
    channel: String,
    head_sql: String,
    poll_interval: Duration,
    head_tx: Weak<watch::Sender<u64>>,
) {
    loop {
        if let Err(error) = listen(&config, &channel, &head_sql, poll_interval, &head_tx).await {
            tracing::warn!(%error, "grantflow head listener lost its PostgreSQL connection");
        }
        if head_tx.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(RECONNECT_DELAY_MS)).await;
    }
}

/// Moves the watch forward to `position`; `false` once the store is gone.
pub(crate) fn publish(head_tx: &Weak<watch::Sender<u64>>, position: u64) -> bool {
    match head_tx.upgrade() {
        Some(sender) => {
            sender.send_if_modified(|current| {
                if position > *current {
                    *current = position;
                    true
                } else {
                    false
                }
            });
            true
        }
        None => false,
    }
}

/// One connection's life: LISTEN, then poll the head until the connection ends or the
/// store is gone (`Ok`).
async fn listen(
    config: &Config,
    channel: &str,
    head_sql: &str,
    poll_interval: Duration,
    head_tx: &Weak<watch::Sender<u64>>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let notified = head_tx.clone();
    let mut driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    if let Ok(position) = notification.payload().parse::<u64>() {
                        if !publish(&notified, position) {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "grantflow head listener connection failed");
                    return;
                }
            }
        }
    });
    let _abort = AbortOnDrop(driver.abort_handle());
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await?;
    let mut ticks = tokio::time::interval(poll_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut driver => return Ok(()),
            _ = ticks.tick() => {
                let row = client.query_one(head_sql, &[]).await?;
                let position: i64 = row.try_get(0)?;
                if !publish(head_tx, u64::try_from(position).unwrap_or(0)) {
                    return Ok(());
                }
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
