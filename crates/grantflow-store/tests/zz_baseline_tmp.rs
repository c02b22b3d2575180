use std::time::Instant;
#[test]
fn baseline() {
    let dir = tempfile::tempdir_in("/work").unwrap();
    let db = sled::Config::new().path(dir.path()).cache_capacity(64<<20).open().unwrap();
    let start = Instant::now();
    let value = vec![b'x'; 200];
    for g in 0u64..200 {
        let mut b = sled::Batch::default();
        for i in 0u64..1000 { b.insert(&(g*1000+i).to_be_bytes(), value.clone()); }
        db.apply_batch(b).unwrap(); db.flush().unwrap();
    }
    println!("baseline {} events/s", 200_000.0 / start.elapsed().as_secs_f64());
    let start = Instant::now();
    let mut hasher_total = 0u8;
    for i in 0..200_000u32 { use sha2::Digest; let h = sha2::Sha256::digest(&[i as u8; 400]); hasher_total ^= h[0]; }
    println!("sha {} /s {hasher_total}", 200_000.0 / start.elapsed().as_secs_f64());
}
