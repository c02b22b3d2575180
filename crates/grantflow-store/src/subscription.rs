//! Following the log: catch-up then live, with no gap and no duplicate.
//!
//! A subscription keeps only its next position and at most one page of events. It reads
//! pages with [`EventStore::read`] (which never goes past the durable head) until it has
//! caught up, then waits for [`EventStore::watch_head`] to move and reads again from its own
//! next position. The head watch is a wake-up signal only: what is delivered always comes
//! from a read, so the catch-up/live switch can neither skip nor repeat an event.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::watch;

use crate::{Envelope, EventStore, StoreError};

/// Events read per page: the most a subscription holds in memory.
pub const SUBSCRIPTION_PAGE_EVENTS: usize = 1_000;

/// The stream of a subscription.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Envelope, StoreError>> + Send + 'static>>;

/// Every event with position >= `from` (of `stream` only, if given), in order: the past,
/// then each new event once it is durable. After an error the stream ends; it also ends if
/// the store is dropped.
pub fn subscribe(store: Arc<dyn EventStore>, from: u64, stream: Option<String>) -> EventStream {
    // Subscribe to the head before the first read, so no append can slip between them.
    let head = store.watch_head();
    let state = Subscription {
        store,
        head,
        next: from.max(1),
        stream,
        page: VecDeque::new(),
        finished: false,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        let item = state.next_event().await?;
        Some((item, state))
    }))
}

struct Subscription {
    store: Arc<dyn EventStore>,
    head: watch::Receiver<u64>,
    /// The next position to read.
    next: u64,
    stream: Option<String>,
    /// Events read but not yet delivered (at most one page).
    page: VecDeque<Envelope>,
    finished: bool,
}

impl Subscription {
    /// The next event, an error (after which the stream ends), or `None` at the end.
    async fn next_event(&mut self) -> Option<Result<Envelope, StoreError>> {
        loop {
            if let Some(envelope) = self.page.pop_front() {
                return Some(Ok(envelope));
            }
            if self.finished {
                return None;
            }
            let durable_head = *self.head.borrow_and_update();
            if self.next > durable_head {
                // Caught up: wait for the durable head to move (an error means the store
                // is gone).
                if self.head.changed().await.is_err() {
                    self.finished = true;
                }
                continue;
            }
            match self.store.read(self.next, SUBSCRIPTION_PAGE_EVENTS).await {
                Err(error) => {
                    self.finished = true;
                    return Some(Err(error));
                }
                Ok(events) if events.is_empty() => {
                    // Nothing durable to read yet after all: wait rather than spin.
                    if self.head.changed().await.is_err() {
                        self.finished = true;
                    }
                }
                Ok(events) => {
                    if let Err(error) = self.take_page(events) {
                        self.finished = true;
                        return Some(Err(error));
                    }
                }
            }
        }
    }

    fn take_page(&mut self, events: Vec<Envelope>) -> Result<(), StoreError> {
        for envelope in events {
            if envelope.position != self.next {
                // A read returned something else than asked: stop rather than skip or repeat.
                self.page.clear();
                return Err(StoreError::Corrupt {
                    position: self.next,
                    detail: format!(
                        "a read from {} returned position {}",
                        self.next, envelope.position
                    ),
                });
            }
            self.next += 1;
            let wanted = match &self.stream {
                Some(stream) => envelope.stream == *stream,
                None => true,
            };
            if wanted {
                self.page.push_back(envelope);
            }
        }
        Ok(())
    }
}
