//! The server against hostile or careless peers, on real sockets (127.0.0.1, port 0) and a
//! real sled store: signed checkpoints, slow and idle connections, the connection limit,
//! revoked tokens' event streams, the per-token stream cap and the bound on expensive reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use grantflow_engine::signing::{self, CheckpointSigner, SignedCheckpoint, TrustedKey};
use grantflow_server::AppState;

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_checkpoint_is_signed_and_verifies_with_the_public_key() {
    let h = harness().await;
    h.seed().await;
    let keys = tempfile::tempdir().unwrap();
    let key_path = keys.path().join("server-key");
    let public = signing::generate(&key_path).unwrap();
    let signer = CheckpointSigner::load(&key_path).unwrap();
    let state = AppState::new(h.engine.clone(), h.dir.path()).with_checkpoint_signer(signer);
    let server = Server::start(state).await;
    let client = client();

    let (status, body) = get_json(&client, &server, h.token("auditor"), "/v1/checkpoint").await;
    assert_eq!(status, 200, "{body}");
    let signed: SignedCheckpoint = serde_json::from_value(body.clone()).unwrap();
    let trusted = TrustedKey::load(&signing::public_path(&key_path)).unwrap();
    assert_eq!(signed.key_id.as_deref(), Some(public.key_id()));
    trusted.check(&signed).unwrap();
    let head = h.engine.store().head().await.unwrap();
    assert_eq!(signed.checkpoint.position, head.position);
    assert_eq!(signed.checkpoint.hash, hex::encode(head.hash));

    // A changed field fails against the same key; another key refuses it.
    let mut moved = signed.clone();
    moved.checkpoint.position -= 1;
    assert!(trusted.check(&moved).is_err());
    let other_path = keys.path().join("other");
    let other = signing::generate(&other_path).unwrap();
    assert!(other.check(&signed).is_err());

    server.stop().await;

    // Without a signing key the checkpoint carries no signature.
    let plain = Server::start(AppState::new(h.engine.clone(), h.dir.path())).await;
    let (_, body) = get_json(&client, &plain, h.token("auditor"), "/v1/checkpoint").await;
    assert!(body.get("signature").is_none(), "{body}");
    assert!(body.get("key_id").is_none(), "{body}");
    let unsigned: SignedCheckpoint = serde_json::from_value(body).unwrap();
    assert!(trusted.check(&unsigned).is_err());
    plain.stop().await;
}
