//! The quiet case: sled's recovery may cut its log at a damaged record and open a shorter,
//! internally consistent store. The HEAD file, kept outside sled, must make that loud.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::fs;
use std::path::Path;

use common::fill;
use grantflow_store::sled_store::{HEAD_FILE_BYTES, HEAD_FILE_NAME, HEAD_SLOT_B_OFFSET};
use grantflow_store::{EventStore, SledStore, StoreError};

/// A store of `count` events (in groups of `group`) in `dir`, closed and dropped.
async fn make_store(dir: &Path, count: usize, group: usize) {
    let store = SledStore::open(dir).unwrap();
    let mut done = 0;
    while done < count {
        let n = group.min(count - done);
        fill(&store, n).await;
        done += n;
    }
    store.close().await.unwrap();
}

async fn add_events(dir: &Path, count: usize) {
    let store = SledStore::open(dir).unwrap();
    fill(&store, count).await;
    store.close().await.unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Replaces `dir`'s sled database by `from`'s (an older copy: sled's view of a cut log).
fn put_database(from: &Path, dir: &Path) {
    fs::remove_dir_all(dir.join("db")).unwrap();
    copy_dir(&from.join("db"), &dir.join("db"));
}

fn open_error(dir: &Path) -> (u64, String) {
    match SledStore::open(dir) {
        Err(StoreError::Corrupt { position, detail }) => (position, detail),
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(store) => panic!("a store that lost acknowledged events opened: {store:?}"),
    }
}

#[tokio::test]
async fn an_older_database_under_a_newer_head_is_refused_naming_the_lost_events() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    make_store(&new, 5, 5).await;
    copy_dir(&new, &old);
    add_events(&new, 7).await;
    put_database(&old, &new);
    let (position, detail) = open_error(&new);
    assert_eq!(position, 6);
    assert!(
        detail.contains("the log ends at 5 but 12 events were acknowledged: events 6..12 are lost"),
        "{detail}"
    );
    // Read-only opens refuse too.
    assert!(matches!(
        SledStore::open_existing(&new),
        Err(StoreError::Corrupt { position: 6, .. })
    ));
}

#[tokio::test]
async fn a_log_rewritten_to_the_same_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    make_store(&a, 4, 2).await;
    // Same number of events, other recorded times: other hashes.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    make_store(&b, 4, 2).await;
    fs::copy(a.join(HEAD_FILE_NAME), b.join(HEAD_FILE_NAME)).unwrap();
    let (position, detail) = open_error(&b);
    assert_eq!(position, 4);
    assert!(detail.contains("the log was rewritten"), "{detail}");
    // A head recorded in the middle of a longer, different log is checked at its position.
    add_events(&a, 3).await;
    let mut c_dir = dir.path().join("c");
    make_store(&c_dir, 8, 3).await;
    fs::copy(a.join(HEAD_FILE_NAME), c_dir.join(HEAD_FILE_NAME)).unwrap();
    let (position, _) = open_error(&c_dir);
    assert_eq!(position, 7);
    c_dir.pop();
}

#[tokio::test]
async fn a_head_file_behind_the_log_is_brought_forward() {
    // A crash between sled's sync and the HEAD file's: that group was never acknowledged.
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    make_store(&new, 3, 3).await;
    copy_dir(&new, &old);
    add_events(&new, 4).await;
    fs::copy(old.join(HEAD_FILE_NAME), new.join(HEAD_FILE_NAME)).unwrap();
    let store = SledStore::open(&new).unwrap();
    assert_eq!(store.head().await.unwrap().position, 7);
    drop(store);
    // ...so that losing those events afterwards is noticed.
    put_database(&old, &new);
    let (position, _) = open_error(&new);
    assert_eq!(position, 4);
}

#[tokio::test]
async fn a_missing_or_damaged_head_file_is_refused_and_a_torn_slot_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_store(&data, 6, 2).await;
    let head_path = data.join(HEAD_FILE_NAME);
    let good = fs::read(&head_path).unwrap();
    assert_eq!(good.len() as u64, HEAD_FILE_BYTES);

    // One slot torn (a crash in the middle of its write): the other one still holds.
    for slot in [0usize, HEAD_SLOT_B_OFFSET as usize] {
        let mut torn = good.clone();
        torn[slot + 20] ^= 0xff;
        fs::write(&head_path, &torn).unwrap();
        let store = SledStore::open(&data).unwrap();
        assert_eq!(store.head().await.unwrap().position, 6);
        drop(store);
        fs::write(&head_path, &good).unwrap();
    }

    // Both slots damaged, a cut file, no file: refused.
    let mut both = good.clone();
    both[20] ^= 1;
    both[HEAD_SLOT_B_OFFSET as usize + 20] ^= 1;
    for (bytes, expect) in [
        (Some(both), "no slot passes its checksum"),
        (Some(good[..100].to_vec()), "100 bytes"),
        (None, "is missing"),
    ] {
        match bytes {
            Some(bytes) => fs::write(&head_path, bytes).unwrap(),
            None => fs::remove_file(&head_path).unwrap(),
        }
        let (_, detail) = open_error(&data);
        assert!(detail.contains(expect), "{detail}");
    }
    fs::write(&head_path, &good).unwrap();
    let store = SledStore::open(&data).unwrap();
    assert_eq!(store.head().await.unwrap().position, 6);
}

#[tokio::test]
async fn a_store_without_a_head_file_gets_one_and_is_then_protected() {
    // A store written before the HEAD file existed: no file, no flag.
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    make_store(&new, 4, 4).await;
    fs::remove_file(new.join(HEAD_FILE_NAME)).unwrap();
    {
        let db = grantflow_store::sled_store::open_sled(&new.join("db")).unwrap();
        db.remove(b"F").unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(&new).unwrap();
    assert_eq!(store.head().await.unwrap().position, 4);
    store.close().await.unwrap();
    drop(store);
    assert!(new.join(HEAD_FILE_NAME).exists());
    copy_dir(&new, &old);
    add_events(&new, 2).await;
    put_database(&old, &new);
    let (position, _) = open_error(&new);
    assert_eq!(position, 5);
}

#[tokio::test]
async fn sled_cutting_its_own_log_never_opens_silently_shorter() {
    // Damage the tail of sled's database file: sled's recovery stops at the first bad record.
    // Whatever sled then makes of it, the store either refuses or holds every event.
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    make_store(&pristine, 40, 4).await;
    let db_file = pristine.join("db").join("db");
    let length = fs::metadata(&db_file).unwrap().len();
    let mut refused = 0;
    let mut quiet = 0;
    let mut intact = 0;
    let cuts = [
        length / 2,
        length * 3 / 4,
        length - 4096,
        length - 512,
        length - 64,
    ];
    let flips = [
        length / 3,
        length * 2 / 3,
        length - 2048,
        length - 300,
        length - 40,
    ];
    for (index, (cut, flip)) in cuts.iter().zip(flips).enumerate() {
        for damage in 0..2 {
            let copy = dir.path().join(format!("copy-{index}-{damage}"));
            copy_dir(&pristine, &copy);
            let file = copy.join("db").join("db");
            let mut bytes = fs::read(&file).unwrap();
            if damage == 0 {
                bytes.truncate(*cut as usize);
            } else {
                bytes[flip as usize] ^= 0x5a;
            }
            fs::write(&file, bytes).unwrap();
            match SledStore::open(&copy) {
                Err(error @ (StoreError::Corrupt { .. } | StoreError::Io(_))) => {
                    // sled opened a shorter log: only the HEAD file knew.
                    if error.to_string().contains("events were acknowledged") {
                        quiet += 1;
                    }
                    refused += 1
                }
                Err(other) => panic!("unexpected error: {other}"),
                Ok(store) => {
                    assert_eq!(
                        store.head().await.unwrap().position,
                        40,
                        "sled's recovery lost events and the store opened anyway"
                    );
                    intact += 1;
                }
            }
        }
    }
    println!(
        "damaged sled files: {refused} refused ({quiet} opened shorter by sled, caught by the \
         HEAD file), {intact} opened with every event"
    );
    assert!(
        quiet > 0,
        "the quiet case did not occur: the test no longer exercises it"
    );
}

#[tokio::test]
async fn a_damaged_snapshot_is_refused_not_served() {
    let (_dir, store) = common::temp_store();
    store
        .save_snapshot("world", 0, b"{\"received\":1000}".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot("world").await.unwrap().unwrap().1,
        b"{\"received\":1000}"
    );
    let path = store.path().to_path_buf();
    drop(store);
    let file = path.join("snapshot-world");
    let bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - b"1000}".len();
    let mut edited = bytes.clone();
    edited[at] = b'9';
    std::fs::write(&file, &edited).unwrap();
    let store = SledStore::open(&path).unwrap();
    match store.load_snapshot("world").await {
        Err(StoreError::Corrupt { detail, .. }) => assert!(detail.contains("checksum"), "{detail}"),
        other => panic!("a damaged snapshot was served: {other:?}"),
    }
}
