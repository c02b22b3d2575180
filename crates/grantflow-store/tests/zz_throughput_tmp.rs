mod common;
use common::command;
use grantflow_store::{AppendBatch, EventStore, SledStore};
use std::time::Instant;

#[tokio::test(flavor = "multi_thread")]
async fn throughput() {
    let dir = tempfile::tempdir_in("/work").unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let groups = 200;
    let per = 1000;
    let start = Instant::now();
    let mut head = 0;
    for g in 0..groups {
        let commands = (0..per).map(|i| command(&format!("c{g}-{i}"), &[&format!("grant-{}", i % 500)])).collect();
        store.append(AppendBatch { expected_head: head, expected_versions: vec![], commands }).await.unwrap();
        head += per as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("append {} events/s", (groups * per) as f64 / secs);
    let start = Instant::now();
    let mut from = 1;
    while let Ok(page) = store.read(from, 10_000).await { if page.is_empty() { break } from += page.len() as u64; }
    println!("read {} events/s", (from - 1) as f64 / start.elapsed().as_secs_f64());
    let start = Instant::now();
    let n = store.read_stream("grant-7", 1, 10_000).await.unwrap().len();
    println!("read_stream {} events in {:?}", n, start.elapsed());
    println!("du: {:?}", std::process::Command::new("du").arg("-sh").arg(dir.path()).output().unwrap());
}
