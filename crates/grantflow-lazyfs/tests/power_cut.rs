//! Each behaviour of the lazy file system, through a real FUSE mount: what a cut keeps, what it
//! loses, and what it says it lost. Each test mounts its own backing directory at its own
//! mountpoint under a temporary directory; the mount is dropped (unmounted) before the
//! directory, also on a panic. Where FUSE cannot mount a test says why and passes, unless
//! GRANTFLOW_REQUIRE_FUSE is set.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use grantflow_lazyfs::{CutReport, LazyFs, Options};

struct Dirs {
    // Dropped after every LazyFs of the test (declared before them).
    _tmp: tempfile::TempDir,
    backing: PathBuf,
    mnt: PathBuf,
}

fn dirs(test: &str) -> Option<Dirs> {
    if let Some(reason) = LazyFs::unavailable() {
        // CI can insist: a machine meant to run these must not skip them quietly.
        assert!(
            std::env::var_os("GRANTFLOW_REQUIRE_FUSE").is_none(),
            "{test}: GRANTFLOW_REQUIRE_FUSE is set, but {reason}"
        );
        eprintln!("skipping {test}: {reason}");
        return None;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let backing = tmp.path().join("backing");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&backing).expect("backing dir");
    Some(Dirs {
        _tmp: tmp,
        backing,
        mnt,
    })
}

fn mount(d: &Dirs, options: Options) -> LazyFs {
    LazyFs::mount(&d.backing, &d.mnt, options).expect("mount")
}

const STRICT: Options = Options {
    strict: true,
    torn_writes: false,
    seed: 0,
};

fn fsync(path: &Path) {
    File::open(path)
        .and_then(|f| f.sync_all())
        .unwrap_or_else(|e| panic!("fsync {}: {e}", path.display()));
}

fn write_file(path: &Path, bytes: &[u8]) -> File {
    let mut file = File::create(path).expect("create");
    file.write_all(bytes).expect("write");
    file
}

fn read(path: &Path) -> Option<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}

fn cut(fs: LazyFs) -> CutReport {
    let report = fs.cut().expect("cut");
    eprintln!("{report}");
    report
}

fn paths(names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(PathBuf::from).collect()
}

#[test]
fn unsynced_data_is_lost_and_fsynced_data_is_kept() {
    let Some(d) = dirs("unsynced_data_is_lost_and_fsynced_data_is_kept") else {
        return;
    };
    fs::write(d.backing.join("old"), b"from before the mount").expect("seed");
    let fs = mount(&d, STRICT);
    let m = fs.mountpoint().to_path_buf();
    assert_eq!(
        read(&m.join("old")).as_deref(),
        Some(&b"from before the mount"[..])
    );

    let file = write_file(&m.join("kept"), b"durable");
    file.sync_data().expect("fdatasync");
    fsync(&m);
    file.write_all_at(b"DURABLE and then some", 0)
        .expect("overwrite");
    OpenOptions::new()
        .append(true)
        .open(m.join("old"))
        .and_then(|mut f| f.write_all(b", appended"))
        .expect("append");
    assert_eq!(
        read(&m.join("kept")).as_deref(),
        Some(&b"DURABLE and then some"[..])
    );

    let report = cut(fs);
    assert_eq!(
        read(&d.backing.join("kept")).as_deref(),
        Some(&b"durable"[..])
    );
    assert_eq!(
        read(&d.backing.join("old")).as_deref(),
        Some(&b"from before the mount"[..])
    );
    let mut rolled: Vec<_> = report
        .rolled_back
        .iter()
        .map(|r| (r.path.clone(), r.len, r.kept_len))
        .collect();
    rolled.sort();
    assert_eq!(
        rolled,
        vec![
            (PathBuf::from("kept"), 21, 7),
            (PathBuf::from("old"), 31, 21)
        ]
    );
    assert!(report.vanished.is_empty() && report.restored.is_empty());

    // The next mount sees the backing state.
    let fs = mount(&d, STRICT);
    assert_eq!(
        read(&fs.mountpoint().join("kept")).as_deref(),
        Some(&b"durable"[..])
    );
    // And with everything synced, a cut loses nothing.
    fs::write(fs.mountpoint().join("kept"), b"new").expect("write");
    fs.sync_all();
    let report = cut(fs);
    assert!(report.is_empty(), "{report}");
    assert_eq!(read(&d.backing.join("kept")).as_deref(), Some(&b"new"[..]));
}

#[test]
fn a_fsynced_file_whose_directory_was_not_fsynced_is_gone() {
    let Some(d) = dirs("a_fsynced_file_whose_directory_was_not_fsynced_is_gone") else {
        return;
    };
    let fs = mount(&d, STRICT);
    let m = fs.mountpoint().to_path_buf();
    fs::create_dir(m.join("sub")).expect("mkdir");
    fsync(&m);
    write_file(&m.join("sub/new"), b"data")
        .sync_all()
        .expect("fsync");
    let report = cut(fs);
    assert_eq!(read(&d.backing.join("sub/new")), None);
    assert!(d.backing.join("sub").is_dir(), "the fsynced mkdir stays");
    assert_eq!(report.vanished, paths(&["sub/new"]));

    // With an fsync of the directory the name is durable, with the data of the file's last
    // fsync, not what was written after it.
    let fs = mount(&d, STRICT);
    let m = fs.mountpoint().to_path_buf();
    let file = write_file(&m.join("sub/new"), b"data");
    file.sync_all().expect("fsync");
    file.write_all_at(b"more", 4).expect("write");
    fsync(&m.join("sub"));
    write_file(&m.join("sub/unsynced-data"), b"lost");
    fsync(&m.join("sub"));
    let report = cut(fs);
    assert_eq!(
        read(&d.backing.join("sub/new")).as_deref(),
        Some(&b"data"[..])
    );
    assert_eq!(
        read(&d.backing.join("sub/unsynced-data")).as_deref(),
        Some(&b""[..]),
        "a durable name whose data was never fsynced is an empty file"
    );
    assert!(report.vanished.is_empty(), "{report}");
    assert_eq!(report.rolled_back.len(), 2, "{report}");
}

#[test]
fn a_rename_is_not_durable_until_the_directory_is_fsynced() {
    let Some(d) = dirs("a_rename_is_not_durable_until_the_directory_is_fsynced") else {
        return;
    };
    fs::write(d.backing.join("old"), b"old content").expect("seed");
    fs::write(d.backing.join("target"), b"overwritten by a rename").expect("seed");
    fs::write(d.backing.join("source"), b"renamed over target").expect("seed");
    let fs = mount(&d, STRICT);
    let m = fs.mountpoint().to_path_buf();
    fs::rename(m.join("old"), m.join("new")).expect("rename");
    fs::rename(m.join("source"), m.join("target")).expect("rename over");
    assert_eq!(read(&m.join("old")), None);
    let report = cut(fs);
    assert_eq!(
        read(&d.backing.join("old")).as_deref(),
        Some(&b"old content"[..])
    );
    assert_eq!(read(&d.backing.join("new")), None);
    assert_eq!(
        read(&d.backing.join("target")).as_deref(),
        Some(&b"overwritten by a rename"[..])
    );
    assert_eq!(report.vanished, paths(&["new"]));
    assert_eq!(report.restored, paths(&["old", "source"]));
    assert_eq!(report.replaced, paths(&["target"]));

    let fs = mount(&d, STRICT);
    let m = fs.mountpoint().to_path_buf();
    fs::rename(m.join("old"), m.join("new")).expect("rename");
    fs::rename(m.join("source"), m.join("target")).expect("rename over");
    fsync(&m);
    let report = cut(fs);
    assert!(report.is_empty(), "{report}");
    assert_eq!(read(&d.backing.join("old")), None);
    assert_eq!(
        read(&d.backing.join("new")).as_deref(),
        Some(&b"old content"[..])
    );
    assert_eq!(
        read(&d.backing.join("target")).as_deref(),
        Some(&b"renamed over target"[..])
    );
}

#[test]
fn a_rename_across_directories_needs_both_fsyncs() {
    let Some(d) = dirs("a_rename_across_directories_needs_both_fsyncs") else {
        return;
    };
    for dir in ["a", "b"] {
        fs::create_dir(d.backing.join(dir)).expect("seed");
    }
    fs::write(d.backing.join("a/x"), b"x").expect("seed");
    // Only the target's fsync: the file is under both names after the cut.
    let fs = mount(&d, STRICT);
    fs::rename(fs.mountpoint().join("a/x"), fs.mountpoint().join("b/x")).expect("rename");
    fsync(&fs.mountpoint().join("b"));
    let report = cut(fs);
    assert_eq!(read(&d.backing.join("a/x")).as_deref(), Some(&b"x"[..]));
    assert_eq!(read(&d.backing.join("b/x")).as_deref(), Some(&b"x"[..]));
    assert_eq!(report.restored, paths(&["a/x"]));
    fs::remove_file(d.backing.join("b/x")).expect("reset");

    // Only the source's fsync: under neither.
    let fs = mount(&d, STRICT);
    fs::rename(fs.mountpoint().join("a/x"), fs.mountpoint().join("b/x")).expect("rename");
    fsync(&fs.mountpoint().join("a"));
    let report = cut(fs);
    assert_eq!(read(&d.backing.join("a/x")), None);
    assert_eq!(read(&d.backing.join("b/x")), None);
    assert_eq!(report.vanished, paths(&["b/x"]));
    fs::write(d.backing.join("a/x"), b"x").expect("reset");

    // Both: moved.
    let fs = mount(&d, STRICT);
    fs::rename(fs.mountpoint().join("a/x"), fs.mountpoint().join("b/x")).expect("rename");
    fsync(&fs.mountpoint().join("a"));
    fsync(&fs.mountpoint().join("b"));
    let report = cut(fs);
    assert!(report.is_empty(), "{report}");
    assert_eq!(read(&d.backing.join("a/x")), None);
    assert_eq!(read(&d.backing.join("b/x")).as_deref(), Some(&b"x"[..]));
}

#[test]
fn an_unlink_is_undone_without_a_directory_fsync() {
    let Some(d) = dirs("an_unlink_is_undone_without_a_directory_fsync") else {
        return;
    };
    fs::write(d.backing.join("f"), b"still here").expect("seed");
    fs::create_dir(d.backing.join("empty")).expect("seed");
    let fs = mount(&d, STRICT);
    fs::remove_file(fs.mountpoint().join("f")).expect("unlink");
    fs::remove_dir(fs.mountpoint().join("empty")).expect("rmdir");
    let report = cut(fs);
    assert_eq!(
        read(&d.backing.join("f")).as_deref(),
        Some(&b"still here"[..])
    );
    assert!(d.backing.join("empty").is_dir());
    assert_eq!(report.restored, paths(&["empty", "f"]));

    let fs = mount(&d, STRICT);
    fs::remove_file(fs.mountpoint().join("f")).expect("unlink");
    fs::remove_dir(fs.mountpoint().join("empty")).expect("rmdir");
    fsync(fs.mountpoint());
    let report = cut(fs);
    assert!(report.is_empty(), "{report}");
    assert_eq!(read(&d.backing.join("f")), None);
    assert!(!d.backing.join("empty").exists());
}

#[test]
fn truncation_and_set_len_are_undone_without_an_fsync() {
    let Some(d) = dirs("truncation_and_set_len_are_undone_without_an_fsync") else {
        return;
    };
    let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    for name in ["by_name", "shrunk", "grown"] {
        fs::write(d.backing.join(name), &content).expect("seed");
    }
    let fs = mount(&d, STRICT);
    let m = fs.mountpoint().to_path_buf();
    // O_TRUNC: a truncate by name (setattr without a file handle).
    File::create(m.join("by_name")).expect("open O_TRUNC");
    OpenOptions::new()
        .write(true)
        .open(m.join("shrunk"))
        .and_then(|f| f.set_len(100))
        .expect("ftruncate");
    OpenOptions::new()
        .write(true)
        .open(m.join("grown"))
        .and_then(|f| f.set_len(1 << 20))
        .expect("ftruncate");
    assert_eq!(fs::metadata(m.join("by_name")).expect("stat").len(), 0);
    assert_eq!(fs::metadata(m.join("grown")).expect("stat").len(), 1 << 20);
    fsync(&m);
    let report = cut(fs);
    for name in ["by_name", "shrunk", "grown"] {
        assert_eq!(read(&d.backing.join(name)), Some(content.clone()), "{name}");
    }
    assert_eq!(report.rolled_back.len(), 3, "{report}");

    // An fsync of the file makes the new size durable.
    let fs = mount(&d, STRICT);
    let file = OpenOptions::new()
        .write(true)
        .open(fs.mountpoint().join("shrunk"))
        .expect("open");
    file.set_len(100).expect("ftruncate");
    file.sync_all().expect("fsync");
    drop(file);
    let report = cut(fs);
    assert!(report.is_empty(), "{report}");
    assert_eq!(
        read(&d.backing.join("shrunk")),
        Some(content[..100].to_vec())
    );
}

/// Mounts with torn writes and `seed`, overwrites a durable 16 KiB file of 'a' with 'b' from
/// `offset` on, cuts, and returns how many bytes of the write the cut kept.
fn torn_outcome(d: &Dirs, seed: u64, offset: u64, len: usize) -> u64 {
    fs::write(d.backing.join("f"), vec![b'a'; 16 * 1024]).expect("seed");
    let fs = mount(
        d,
        Options {
            strict: true,
            torn_writes: true,
            seed,
        },
    );
    let file = OpenOptions::new()
        .write(true)
        .open(fs.mountpoint().join("f"))
        .expect("open");
    // Earlier unsynced writes are lost, unless they share a page with the kept part of the last
    // write (a page reaches the disk whole).
    file.write_all_at(b"earlier", 16 * 1024 + 10_000)
        .expect("write");
    file.write_all_at(b"EEEEEEE", 10).expect("write");
    file.write_all_at(&vec![b'b'; len], offset).expect("write");
    drop(file);
    let report = cut(fs);
    assert_eq!(report.torn_writes.len(), 1, "{report}");
    let torn = &report.torn_writes[0];
    assert_eq!(
        (torn.path.as_path(), torn.offset, torn.len),
        (Path::new("f"), offset, len as u64)
    );
    let kept = torn.kept;
    let after = read(&d.backing.join("f")).expect("f");
    let offset = usize::try_from(offset).expect("offset");
    let kept_usize = usize::try_from(kept).expect("kept");
    let mut expected = vec![b'a'; 16 * 1024];
    if kept > 0 {
        let end = offset + kept_usize;
        if end > expected.len() {
            expected.resize(end, 0);
        }
        expected[offset..end].fill(b'b');
        if offset < 4096 {
            expected[10..17].fill(b'E');
        }
    }
    assert_eq!(after.len(), expected.len(), "seed {seed}");
    assert!(
        after == expected,
        "seed {seed}: the file is not durable data + a prefix"
    );
    kept
}

#[test]
fn a_torn_write_keeps_a_seeded_prefix_on_4k_boundaries() {
    let Some(d) = dirs("a_torn_write_keeps_a_seeded_prefix_on_4k_boundaries") else {
        return;
    };
    let len = 3 * 4096 + 100;
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..12 {
        let kept = torn_outcome(&d, seed, 4096, len);
        assert!(
            kept.is_multiple_of(4096) || kept == len as u64,
            "seed {seed}: kept {kept}"
        );
        outcomes.insert(kept);
        if seed < 3 {
            assert_eq!(kept, torn_outcome(&d, seed, 4096, len), "seed {seed} again");
        }
    }
    assert!(
        outcomes.len() >= 3,
        "the seed draws the prefix: {outcomes:?}"
    );
    // An unaligned write is cut on the file's page boundaries.
    for seed in 0..4 {
        let kept = torn_outcome(&d, seed, 1000, 9000);
        assert!([0, 3096, 7192, 9000].contains(&kept), "seed {seed}: {kept}");
    }
}

#[test]
fn non_strict_mode_keeps_directory_changes_and_loses_unsynced_data() {
    let Some(d) = dirs("non_strict_mode_keeps_directory_changes_and_loses_unsynced_data") else {
        return;
    };
    fs::write(d.backing.join("old"), b"old").expect("seed");
    let fs = mount(
        &d,
        Options {
            strict: false,
            torn_writes: false,
            seed: 0,
        },
    );
    let m = fs.mountpoint().to_path_buf();
    write_file(&m.join("synced"), b"synced")
        .sync_all()
        .expect("fsync");
    write_file(&m.join("unsynced"), b"unsynced");
    fs::rename(m.join("old"), m.join("renamed")).expect("rename");
    let report = cut(fs);
    assert_eq!(
        read(&d.backing.join("synced")).as_deref(),
        Some(&b"synced"[..])
    );
    assert_eq!(read(&d.backing.join("unsynced")).as_deref(), Some(&b""[..]));
    assert_eq!(
        read(&d.backing.join("renamed")).as_deref(),
        Some(&b"old"[..])
    );
    assert_eq!(read(&d.backing.join("old")), None);
    assert!(
        report.vanished.is_empty() && report.restored.is_empty(),
        "{report}"
    );
    assert_eq!(report.rolled_back.len(), 1, "{report}");
}

#[test]
fn child_processes_pwrite_into_a_preallocated_file() {
    let Some(d) = dirs("child_processes_pwrite_into_a_preallocated_file") else {
        return;
    };
    let fs = mount(&d, STRICT);
    let m = fs.mountpoint().to_path_buf();
    let log = m.join("redo");
    // Preallocated as grantflow's redo log is: zeros written and synced, then the directory.
    let file = File::create(&log).expect("create");
    file.write_all_at(&vec![0; 1 << 20], 0).expect("zeros");
    file.sync_all().expect("fsync");
    drop(file);
    // fallocate(1): extends a second file with fallocate(2).
    let status = Command::new("fallocate")
        .args(["-l", "65536"])
        .arg(m.join("allocated"))
        .status()
        .expect("fallocate");
    assert!(status.success());
    fsync(&m.join("allocated"));
    fsync(&m);
    // Acknowledged records: a child pwrites each at its offset and fdatasyncs it (dd).
    for record in 0..4u64 {
        let status = Command::new("dd")
            .arg(format!("of={}", log.display()))
            .args(["bs=4096", "conv=notrunc,fdatasync", "status=none"])
            .arg(format!("seek={}", record * 3))
            .stdin(File::open(write_record(&d, record)).expect("record"))
            .status()
            .expect("dd");
        assert!(status.success());
    }
    // The last one is written without a sync, by a child then killed while it holds the
    // file open and has its working directory in the mount.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("exec 3<>redo; dd of=/dev/fd/3 bs=4096 seek=12 conv=notrunc status=none; echo ready; exec sleep 60")
        .current_dir(&m)
        .stdin(File::open(write_record(&d, 4)).expect("record"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut ready,
    )
    .expect("ready");
    assert_eq!(ready.trim(), "ready");
    child.kill().expect("kill");
    child.wait().expect("wait");
    let report = cut(fs);
    let after = read(&d.backing.join("redo")).expect("redo");
    assert_eq!(after.len(), 1 << 20);
    for record in 0..4usize {
        let at = record * 3 * 4096;
        assert!(
            after[at..at + 4096].iter().all(|b| *b == record as u8 + 1),
            "acknowledged record {record} lost"
        );
    }
    assert!(
        after[12 * 4096..13 * 4096].iter().all(|b| *b == 0),
        "unsynced record kept"
    );
    assert_eq!(
        fs::metadata(d.backing.join("allocated"))
            .expect("stat")
            .len(),
        65536
    );
    assert_eq!(report.rolled_back.len(), 1, "{report}");
}

fn write_record(d: &Dirs, record: u64) -> PathBuf {
    let path = d
        .backing
        .parent()
        .expect("tmp")
        .join(format!("record{record}"));
    fs::write(&path, vec![record as u8 + 1; 4096]).expect("record");
    path
}

#[test]
fn flock_excludes_a_second_holder() {
    let Some(d) = dirs("flock_excludes_a_second_holder") else {
        return;
    };
    let fs = mount(&d, STRICT);
    let path = fs.mountpoint().join("lock");
    let first = File::create(&path).expect("create");
    let second = File::open(&path).expect("open");
    first.try_lock().expect("first lock");
    assert!(
        second.try_lock().is_err(),
        "a second exclusive lock was granted"
    );
    // Another process is refused too (flock(1) exits 1 when -n cannot lock).
    let status = Command::new("flock")
        .args(["-n", "-E", "7"])
        .arg(&path)
        .arg("true")
        .status()
        .expect("flock");
    assert_eq!(status.code(), Some(7));
    first.unlock().expect("unlock");
    second.try_lock().expect("the lock is free again");
}

#[test]
fn sled_runs_on_the_mount_and_recovers_after_a_cut() {
    let Some(d) = dirs("sled_runs_on_the_mount_and_recovers_after_a_cut") else {
        return;
    };
    let path = d.mnt.join("db");
    let config = || {
        sled::Config::new()
            .path(&path)
            .flush_every_ms(None)
            .cache_capacity(1 << 20)
    };
    // Round 0 without torn writes, round 1 with: each writes 200 keys made durable, then 200
    // keys only sled-flushed, cuts, and reopens sled.
    for round in 0..2u32 {
        let fs = mount(
            &d,
            Options {
                strict: true,
                torn_writes: round == 1,
                seed: 26,
            },
        );
        let db = config().open().expect("open sled on the mount");
        let synced = round * 400..round * 400 + 200;
        let unsynced = round * 400 + 200..round * 400 + 400;
        for i in synced.clone() {
            db.insert(i.to_be_bytes(), vec![1u8; 100]).expect("insert");
        }
        db.flush().expect("flush");
        // sled's flush ends in sync_file_range, which is no fsync: make it durable as
        // grantflow does (fdatasync of the db file) and make the names durable.
        File::open(path.join("db"))
            .and_then(|f| f.sync_data())
            .expect("fdatasync db");
        for entry in fs::read_dir(&path).expect("readdir") {
            fsync(&entry.expect("entry").path());
        }
        fsync(&path);
        fsync(&d.mnt);
        for i in unsynced.clone() {
            db.insert(i.to_be_bytes(), vec![2u8; 100]).expect("insert");
        }
        db.flush().expect("flush");
        let report = cut(fs);
        assert!(
            report
                .rolled_back
                .iter()
                .any(|r| r.path == Path::new("db/db")),
            "{report}"
        );
        // As a killed process: no destructor (sled's would flush, and panics on the EIO a
        // mount without power answers).
        std::mem::forget(db);

        let fs = mount(&d, STRICT);
        let db = config().open().expect("reopen sled after the cut");
        for i in (0..round * 400 + 200).filter(|i| i % 400 < 200) {
            assert_eq!(
                db.get(i.to_be_bytes()).expect("get").as_deref(),
                Some(&[1u8; 100][..]),
                "round {round}: synced key {i}"
            );
        }
        let survived: Vec<u32> = unsynced
            .clone()
            .filter(|i| db.get(i.to_be_bytes()).expect("get").is_some())
            .collect();
        let later = survived.len() as u32;
        eprintln!("round {round}: {later} of the 200 unsynced keys survived");
        if round == 0 {
            assert_eq!(later, 0, "keys only sled-flushed survived a cut");
        } else {
            // What survives is what the torn write kept, and sled recovers a prefix of its
            // log: the first `later` keys, no gaps.
            assert_eq!(
                survived,
                (unsynced.start..unsynced.start + later).collect::<Vec<_>>()
            );
        }
        db.flush().expect("flush");
        drop(db);
        drop(fs);
    }
}

#[test]
fn a_clean_unmount_keeps_everything() {
    let Some(d) = dirs("a_clean_unmount_keeps_everything") else {
        return;
    };
    let fs = mount(&d, STRICT);
    fs::create_dir(fs.mountpoint().join("dir")).expect("mkdir");
    fs::write(fs.mountpoint().join("dir/f"), b"never synced").expect("write");
    // O_CREAT|O_EXCL refuses an existing name.
    let excl = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(fs.mountpoint().join("dir/f"));
    assert_eq!(
        excl.map(drop).map_err(|e| e.kind()),
        Err(ErrorKind::AlreadyExists)
    );
    drop(fs);
    assert_eq!(
        read(&d.backing.join("dir/f")).as_deref(),
        Some(&b"never synced"[..])
    );
    assert!(
        fs::read_dir(&d.mnt).expect("mountpoint").next().is_none(),
        "unmounted"
    );
}

#[test]
fn a_cut_while_a_file_is_open_fails_its_later_writes() {
    let Some(d) = dirs("a_cut_while_a_file_is_open_fails_its_later_writes") else {
        return;
    };
    let fs = mount(&d, STRICT);
    fsync(fs.mountpoint());
    let file = write_file(&fs.mountpoint().join("open"), b"before");
    // The mount is busy (this process holds a file of it): the cut aborts the connection and
    // detaches the mount; nothing written through the old descriptor reaches the backing
    // directory, and the mountpoint takes a new mount.
    let report = cut(fs);
    assert_eq!(report.vanished, paths(&["open"]));
    let error = file
        .write_all_at(b"after", 0)
        .expect_err("a write after the cut succeeded");
    eprintln!("a write after the cut: {error}");
    drop(file);
    assert_eq!(read(&d.backing.join("open")), None);
    let fs = mount(&d, STRICT);
    assert_eq!(read(&fs.mountpoint().join("open")), None);
    fs::write(fs.mountpoint().join("again"), b"x").expect("write on the new mount");
}

/// The power-cut loop the harness is for: a child appends records, fdatasyncs each (`sync
/// --data`) and then acknowledges it; the test SIGKILLs it after some acknowledgements, cuts, and checks that
/// every acknowledged record survived, and that what follows them is at most a torn prefix of
/// the next record.
#[test]
fn a_killed_writer_keeps_every_acknowledged_record() {
    let Some(d) = dirs("a_killed_writer_keeps_every_acknowledged_record") else {
        return;
    };
    let record = |i: u32| format!("record {i:06}\n");
    for seed in 0..6u64 {
        let fs = mount(
            &d,
            Options {
                strict: true,
                torn_writes: true,
                seed,
            },
        );
        let m = fs.mountpoint().to_path_buf();
        if seed == 0 {
            File::create(m.join("log"))
                .and_then(|f| f.sync_all())
                .expect("create");
            fsync(&m);
        }
        // Cut off a torn tail left by the round before, as a reader of the log would.
        let start = read(&m.join("log")).expect("log").len() / record(0).len();
        OpenOptions::new()
            .write(true)
            .open(m.join("log"))
            .and_then(|f| {
                f.set_len((start * record(0).len()) as u64)?;
                f.sync_all()
            })
            .expect("trim");
        let script = format!(
            "i={start}; while :; do printf 'record %06d\\n' $i | \
             dd of=log oflag=append conv=notrunc status=none && sync --data log || exit 1; \
             echo $i; i=$((i+1)); done"
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&m)
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn");
        let mut acks = std::io::BufRead::lines(std::io::BufReader::new(
            child.stdout.take().expect("stdout"),
        ));
        let wanted = 3 + seed * 5;
        let mut last_ack = None;
        for _ in 0..wanted {
            let line = acks.next().expect("an acknowledgement").expect("read");
            last_ack = Some(line.trim().parse::<u32>().expect("a number"));
        }
        // Somewhere in the next record's write or sync (or after it).
        std::thread::sleep(std::time::Duration::from_micros(300 + seed * 900));
        // The whole group: a dd left running would write on after the shell's death.
        let killed = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status()
            .expect("kill");
        assert!(killed.success());
        child.wait().expect("wait");
        let report = cut(fs);
        let last_ack = last_ack.expect("acknowledged");
        let log = String::from_utf8(read(&d.backing.join("log")).expect("log")).expect("utf8");
        let whole = log.len() / record(0).len();
        let expected: String = (0..whole as u32).map(record).collect();
        assert_eq!(log[..expected.len()], expected, "seed {seed}: {report}");
        assert!(
            whole as u32 > last_ack,
            "seed {seed}: record {last_ack} was acknowledged, {whole} records survived"
        );
        assert!(
            record(whole as u32).starts_with(&log[expected.len()..]),
            "seed {seed}: the tail is no prefix of the next record"
        );
    }
}
