//! Subscriptions: catch-up then live, exactly once, in order.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{fill, temp_store};
use futures::StreamExt;
use grantflow_store::subscription::{subscribe, SUBSCRIPTION_PAGE_EVENTS};
use grantflow_store::EventStore;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_then_live_exactly_once() {
    let (_dir, store) = temp_store();
    let store: Arc<dyn EventStore> = Arc::new(store);
    let existing = SUBSCRIPTION_PAGE_EVENTS * 2 + 17;
    fill(store.as_ref(), existing).await;

    let mut events = subscribe(Arc::clone(&store), 5, None);
    // Live appends race with the catch-up.
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for round in 0..30 {
                fill(store.as_ref(), 1 + round % 4).await;
                if round % 5 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    let live = (0..30).map(|round| 1 + round % 4).sum::<usize>();
    let last = (existing + live) as u64;
    let mut expected = 5;
    while expected <= last {
        let envelope = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .unwrap();
        assert_eq!(envelope.position, expected);
        expected += 1;
    }
    writer.await.unwrap();
    // Nothing more, nothing repeated.
    let extra = tokio::time::timeout(Duration::from_millis(200), events.next()).await;
    assert!(extra.is_err(), "unexpected {extra:?}");
    // And the next append arrives.
    fill(store.as_ref(), 1).await;
    let next = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.position, last + 1);
}

#[tokio::test]
async fn filtered_by_stream() {
    let (_dir, store) = temp_store();
    let store: Arc<dyn EventStore> = Arc::new(store);
    fill(store.as_ref(), 30).await;
    let mut events = subscribe(Arc::clone(&store), 1, Some("fund-F".to_string()));
    for version in 1..=10 {
        let e = events.next().await.unwrap().unwrap();
        assert_eq!((e.stream.as_str(), e.version), ("fund-F", version));
    }
    fill(store.as_ref(), 6).await;
    for version in 11..=12 {
        let e = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!((e.stream.as_str(), e.version), ("fund-F", version));
    }
}

#[tokio::test]
async fn from_the_future_waits_for_it() {
    let (_dir, store) = temp_store();
    let store: Arc<dyn EventStore> = Arc::new(store);
    let mut events = subscribe(Arc::clone(&store), 3, None);
    fill(store.as_ref(), 2).await;
    let nothing = tokio::time::timeout(Duration::from_millis(100), events.next()).await;
    assert!(nothing.is_err());
    fill(store.as_ref(), 2).await;
    let e = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.position, 3);
    let e = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.position, 4);
}
