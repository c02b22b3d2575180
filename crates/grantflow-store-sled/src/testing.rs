//! The sled [`Backend`] of the conformance suite (feature `testing`): stores in one
//! temporary directory, removed at cleanup.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed unwrap is a failed test

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use grantflow_store::testing::Backend;
use grantflow_store::EventStore;

use crate::SledStore;

/// sled stores in one temporary directory.
pub struct SledBackend {
    dir: Mutex<Option<tempfile::TempDir>>,
    root: PathBuf,
    next: AtomicUsize,
}

/// The sled backend (always available).
pub async fn sled_backend() -> Option<Arc<dyn Backend>> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path().to_path_buf();
    Some(Arc::new(SledBackend {
        dir: Mutex::new(Some(dir)),
        root,
        next: AtomicUsize::new(0),
    }))
}

#[async_trait]
impl Backend for SledBackend {
    async fn create(&self) -> (Arc<dyn EventStore>, String) {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let path = self.root.join(format!("store-{n}"));
        let location = path.display().to_string();
        let store = tokio::task::spawn_blocking(move || SledStore::open(&path).unwrap())
            .await
            .unwrap();
        (Arc::new(store), location)
    }

    async fn reopen(&self, location: &str) -> Arc<dyn EventStore> {
        let path = PathBuf::from(location);
        let store = tokio::task::spawn_blocking(move || SledStore::open_existing(&path).unwrap())
            .await
            .unwrap();
        Arc::new(store)
    }

    async fn cleanup(&self) {
        self.dir.lock().unwrap().take();
    }
}
