//! Helpers shared by the sled store's integration tests: the conformance suite's helpers
//! (`grantflow_store::testing`), the sled backend, and a store in a temporary directory.
#![allow(dead_code, unused_imports)]

use grantflow_store_sled::SledStore;

pub use grantflow_store::testing::{append, command, event, fill, read_all};
pub use grantflow_store_sled::testing::sled_backend;

/// A fresh store in a temporary directory (keep the directory alive as long as the store).
pub fn temp_store() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("data")).unwrap();
    (dir, store)
}
