//! The redo log (`crates/grantflow-store-sled/src/redo.rs`): each group is made durable
//! there with one `fdatasync` before it is acknowledged; sled is made durable lazily.
//!
//! - Groups that sled lost (a crash before its checkpoint) come back from the redo log.
//! - The quiet case: sled's recovery may cut its log at a damaged record and open a shorter,
//!   internally consistent store. The redo log, kept outside sled, must make that loud.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::fs;
use std::path::Path;

use common::fill;
use grantflow_store::{ChainVerifier, EventStore, StoreError};
use grantflow_store_sled::SledStore;
use grantflow_store_sled::REDO_FILE_NAMES;

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

/// Puts `from`'s redo files in `dir` (a redo log from another moment or another store).
fn put_redo_log(from: &Path, dir: &Path) {
    for name in REDO_FILE_NAMES {
        fs::copy(from.join(name), dir.join(name)).unwrap();
    }
}

/// A store of 5 events in `new` (closed), its copy in `old`, then `groups` groups of 3
/// events appended to `new` and the store dropped without `close`: the redo log keeps them,
/// sled's database may not. Returns the head.
async fn with_unclosed_groups(old: &Path, new: &Path, groups: usize) -> u64 {
    make_store(new, 5, 5).await;
    copy_dir(new, old);
    let store = SledStore::open(new).unwrap();
    for _ in 0..groups {
        fill(&store, 3).await;
    }
    let head = store.head().await.unwrap().position;
    assert_eq!(head, 5 + 3 * groups as u64);
    head
}

/// Every event of the store, checked as one hash chain; returns how many.
async fn verified_events(store: &SledStore) -> u64 {
    let mut verifier = ChainVerifier::new();
    let mut from = 1;
    loop {
        let page = store.read(from, 1000).await.unwrap();
        if page.is_empty() {
            return from - 1;
        }
        for envelope in &page {
            verifier.check(envelope).unwrap();
        }
        from += page.len() as u64;
    }
}

/// Puts `old`'s database under `new`'s redo log: opening must be refused, naming `position`
/// as the first event lost.
fn assert_older_database_refused(old: &Path, new: &Path, position: u64) {
    put_database(old, new);
    assert_eq!(open_error(new).0, position);
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
    put_redo_log(&a, &b);
    let (position, detail) = open_error(&b);
    assert_eq!(position, 4);
    assert!(detail.contains("the log was rewritten"), "{detail}");
    // A head recorded in the middle of a longer, different log is checked at its position.
    add_events(&a, 3).await;
    let c = dir.path().join("c");
    make_store(&c, 8, 3).await;
    put_redo_log(&a, &c);
    let (position, _) = open_error(&c);
    assert_eq!(position, 7);
}

#[tokio::test]
async fn a_redo_log_behind_sled_is_brought_forward() {
    // Groups in sled that the redo log does not hold were never acknowledged; they stay.
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    make_store(&new, 3, 3).await;
    copy_dir(&new, &old);
    add_events(&new, 4).await;
    put_redo_log(&old, &new);
    let store = SledStore::open(&new).unwrap();
    assert_eq!(store.head().await.unwrap().position, 7);
    drop(store);
    // ...so that losing those events afterwards is noticed.
    assert_older_database_refused(&old, &new, 4);
}

#[tokio::test]
async fn groups_sled_lost_come_back_from_the_redo_log() {
    // A crash after groups were acknowledged and before sled's checkpoint: sled's database
    // holds fewer events than the redo log. Here, sled's copy from before the groups.
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    assert_eq!(with_unclosed_groups(&old, &new, 4).await, 17);
    put_database(&old, &new);
    let store = SledStore::open(&new).unwrap();
    assert_eq!(store.head().await.unwrap().position, 17);
    assert_eq!(verified_events(&store).await, 17);
    // The stream and command index hold the groups written back.
    let last = store.read(17, 1).await.unwrap().remove(0);
    let record = store.command(&last.command_id).await.unwrap().unwrap();
    assert_eq!(record.events.last().unwrap().position, 17);
    assert_eq!(
        store.stream_version(&last.stream).await.unwrap(),
        last.version
    );
    fill(&store, 2).await;
    store.close().await.unwrap();
    drop(store);
    let store = SledStore::open(&new).unwrap();
    assert_eq!(verified_events(&store).await, 19);
}

#[tokio::test]
async fn a_group_cut_short_in_sled_is_written_again_from_the_redo_log() {
    // A group goes to sled one insert at a time, the head last: a crash can leave sled with
    // a group's log chunks and not its head. The redo log holds the group (it was durable
    // there first): the open writes it again, then checks the head against the log.
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    assert_eq!(with_unclosed_groups(&old, &new, 3).await, 14);
    // sled as such a crash leaves it: the log chunks of the groups, the head from before.
    let chunks: Vec<(sled::IVec, sled::IVec)> = {
        let db = grantflow_store_sled::open_sled(&new.join("db")).unwrap();
        let chunks = db.scan_prefix(b"L").map(Result::unwrap).collect();
        drop(db);
        chunks
    };
    {
        let db = grantflow_store_sled::open_sled(&old.join("db")).unwrap();
        let head = db.get(b"H").unwrap().unwrap();
        for (key, value) in chunks {
            db.insert(key, value).unwrap();
        }
        assert_eq!(db.get(b"H").unwrap().unwrap(), head);
        db.flush().unwrap();
    }
    put_database(&old, &new);
    let store = SledStore::open(&new).unwrap();
    assert_eq!(store.head().await.unwrap().position, 14);
    assert_eq!(verified_events(&store).await, 14);
    fill(&store, 2).await;
    store.close().await.unwrap();
    drop(store);
    let store = SledStore::open(&new).unwrap();
    assert_eq!(verified_events(&store).await, 16);

    // Without the redo log's groups, the same database is refused: its head and its log
    // disagree.
    put_database(&old, &new);
    let bare = dir.path().join("bare");
    make_store(&bare, 5, 5).await;
    put_redo_log(&bare, &new);
    let (_, detail) = open_error(&new);
    assert!(detail.contains("disagree"), "{detail}");
}

#[tokio::test]
async fn a_missing_or_damaged_redo_log_is_refused_and_a_torn_start_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_store(&data, 6, 2).await;
    let paths = REDO_FILE_NAMES.map(|name| data.join(name));
    let good = paths.clone().map(|path| fs::read(path).unwrap());

    // One start record torn (a crash in the middle of its write): the other one holds.
    for (path, bytes) in paths.iter().zip(&good) {
        let mut torn = bytes.clone();
        torn[20] ^= 0xff;
        fs::write(path, &torn).unwrap();
        let store = SledStore::open(&data).unwrap();
        assert_eq!(store.head().await.unwrap().position, 6);
        store.close().await.unwrap();
        drop(store);
        for (path, bytes) in paths.iter().zip(&good) {
            fs::write(path, bytes).unwrap();
        }
    }

    // Both damaged, one or both missing: refused.
    let mut damaged = good.clone();
    damaged[0][20] ^= 1;
    damaged[1][20] ^= 1;
    fs::write(&paths[0], &damaged[0]).unwrap();
    fs::write(&paths[1], &damaged[1]).unwrap();
    let (_, detail) = open_error(&data);
    assert!(detail.contains("no record passes its checksum"), "{detail}");
    fs::write(&paths[0], &good[0]).unwrap();
    fs::remove_file(&paths[1]).unwrap();
    let (_, detail) = open_error(&data);
    assert!(detail.contains("redo-1 is missing"), "{detail}");
    fs::remove_file(&paths[0]).unwrap();
    let (_, detail) = open_error(&data);
    assert!(detail.contains("are missing"), "{detail}");
    fs::write(&paths[0], &good[0]).unwrap();
    fs::write(&paths[1], &good[1]).unwrap();
    let store = SledStore::open(&data).unwrap();
    assert_eq!(store.head().await.unwrap().position, 6);
}

#[tokio::test]
async fn a_redo_record_damaged_before_a_good_one_is_refused() {
    // Not a crash (records are written one after another): damage. Refused, not cut.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    make_store(&data, 2, 2).await;
    {
        let store = SledStore::open(&data).unwrap();
        for _ in 0..3 {
            fill(&store, 2).await;
        }
    }
    // The file holding the groups: the one with the most written before its zeros (both
    // are preallocated to the same length).
    let written = |bytes: &[u8]| bytes.iter().rposition(|&byte| byte != 0).unwrap_or(0);
    let mut newest = None;
    for name in REDO_FILE_NAMES {
        let bytes = fs::read(data.join(name)).unwrap();
        if newest
            .as_ref()
            .is_none_or(|(_, b): &(&str, Vec<u8>)| written(&bytes) > written(b))
        {
            newest = Some((name, bytes));
        }
    }
    let (name, mut bytes) = newest.unwrap();
    // Past the start record (about 120 bytes), inside the first group's record.
    bytes[300] ^= 0x40;
    fs::write(data.join(name), &bytes).unwrap();
    let (_, detail) = open_error(&data);
    assert!(detail.contains("is damaged"), "{detail}");
}

#[tokio::test]
async fn sled_cutting_its_own_log_never_opens_silently_shorter() {
    // Damage sled's database file: sled's recovery stops at the first bad record.
    // Whatever sled then makes of it, the store either refuses or holds every event.
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    make_store(&pristine, 40, 4).await;
    let db_file = pristine.join("db").join("db");
    // Where sled's writes end: past it the file holds zeros (sled writes whole buffers, and
    // since the redo log, seldom), and damage there changes nothing.
    let length = fs::read(&db_file)
        .unwrap()
        .iter()
        .rposition(|byte| *byte != 0)
        .map_or(0, |last| last as u64 + 1);
    let mut refused = 0;
    let mut quiet = 0;
    let mut intact = 0;
    // Spread over what sled wrote: since the redo log, sled writes its buffers seldom, and
    // the last ones written hold the index that `close` wrote (lost, it is rebuilt from the
    // log), so damage near the end alone seldom cuts events.
    let cuts = [
        length / 5,
        length * 2 / 5,
        length * 3 / 5,
        length * 4 / 5,
        length - 64,
    ];
    let flips = [
        length / 6,
        length / 3,
        length / 2,
        length * 2 / 3,
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
                Err(error @ (StoreError::Corrupt { .. } | StoreError::Io { .. })) => {
                    // sled opened a shorter log: only the redo log knew.
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
         redo log), {intact} opened with every event"
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
        Err(StoreError::Corrupt { detail, .. }) => assert!(detail.contains("MAC"), "{detail}"),
        other => panic!("a damaged snapshot was served: {other:?}"),
    }
}

/// The attack on a snapshot: its figures edited and every checksum in the file recomputed.
/// Without the store's key (kept in its own file, mode 0600) no MAC matches; and a snapshot
/// with no key beside it proves nothing.
#[tokio::test]
async fn a_forged_snapshot_is_never_served() {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::PermissionsExt;
    let (_dir, store) = common::temp_store();
    store
        .save_snapshot("world", 0, b"{\"received\":1000}".to_vec())
        .await
        .unwrap();
    let path = store.path().to_path_buf();
    drop(store);
    let key = path.join("snapshot.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the snapshot key is readable by others: {mode:o}"
    );
    assert_eq!(std::fs::read(&key).unwrap().len(), 32);
    // Forged: new figures, the length and a SHA-256 of them in the tag's place.
    let file = path.join("snapshot-world");
    let bytes = std::fs::read(&file).unwrap();
    let forged_body = b"{\"received\":9000000}";
    let mut forged = bytes[..8 + 8].to_vec();
    forged.extend_from_slice(&(forged_body.len() as u64).to_be_bytes());
    forged.extend_from_slice(&Sha256::digest(forged_body));
    forged.extend_from_slice(forged_body);
    std::fs::write(&file, &forged).unwrap();
    let store = SledStore::open(&path).unwrap();
    assert!(
        matches!(
            store.load_snapshot("world").await,
            Err(StoreError::Corrupt { .. })
        ),
        "a forged snapshot was served"
    );
    // The genuine file again, but its key gone (or replaced): not proven either.
    drop(store);
    std::fs::write(&file, &bytes).unwrap();
    std::fs::remove_file(&key).unwrap();
    let store = SledStore::open(&path).unwrap();
    match store.load_snapshot("world").await {
        Err(StoreError::Corrupt { detail, .. }) => {
            assert!(detail.contains("snapshot.key"), "{detail}")
        }
        other => panic!("a snapshot with no key was served: {other:?}"),
    }
    // Saving again writes a new key, and the new snapshot proves itself under it.
    store
        .save_snapshot("world", 0, b"{\"received\":1000}".to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot("world").await.unwrap().unwrap().1,
        b"{\"received\":1000}"
    );
}
