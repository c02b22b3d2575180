//! Corruption and tamper detection with the real binary. Copies of a store are damaged (bytes
//! flipped or cut in sled's database file, files deleted, the marker, the redo log and the
//! projection snapshot edited); `verify`, `grant show`, `fund show` and `serve` on them must
//! refuse (exit 1 or 2 with a message) or answer exactly what the undamaged store answers:
//! never wrong figures, never a panic, never a hang. Edited exports (an amount, an actor, a
//! dropped, reordered or duplicated event, a cut line, a forged re-hashed chain) are refused
//! by `verify --export` and `import`, naming the first bad position.
//!
//! `GRANTFLOW_CORRUPTION_CASES` sets how many random byte flips are tried (default 24).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod util;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use util::{add_token, env_u64, stderr, stdout, Rng, Store};

const GRANT: &str = "MEX-2012-01";
const FUND: &str = "UNTFHS";
/// How long one verb may take on a damaged store before it counts as a hang.
const VERB_TIMEOUT: Duration = Duration::from_secs(60);

/// What a verb did: exit code (`None`: killed by a signal or timed out), output.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `grantflow --data DIR args...`, killing it after [`VERB_TIMEOUT`].
fn run(data: &Path, args: &[&str]) -> Run {
    let mut child = Command::new(util::binary())
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("GRANTFLOW_DATA")
        .env_remove("GRANTFLOW_ACTOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("grantflow runs");
    let started = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if started.elapsed() > VERB_TIMEOUT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().expect("output");
    Run {
        code: output.status.code(),
        stdout: stdout(&output),
        stderr: stderr(&output),
    }
}

/// What the undamaged store answers.
struct Baseline {
    grant: Value,
    fund: Value,
    head: Value,
    token: String,
}

fn baseline(store: &Store) -> Baseline {
    assert!(store.run(&["demo"]).status.success());
    let token = add_token(store, "ann.auditor", "auditor");
    let verify = store.json(&["verify", "--json"]);
    Baseline {
        grant: store.json(&["grant", "show", GRANT, "--json"]),
        fund: store.json(&["fund", "show", FUND, "--json"]),
        head: verify["head"].clone(),
        token,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Tallies of how the damaged stores were treated.
#[derive(Default, Debug)]
struct Tally {
    cases: u64,
    /// Verb runs that refused (exit 1 or 2 with a message).
    refused: u64,
    /// Verb runs that answered exactly what the undamaged store answers.
    same_answer: u64,
    /// Server starts that refused to start, or served the undamaged figures.
    serve_checked: u64,
}

/// Checks one verb's run on a damaged store: a clean refusal, or the baseline answer.
fn check_verb(case: &str, verb: &str, result: &Run, expected: Option<&Value>, tally: &mut Tally) {
    let code = result.code;
    assert!(
        matches!(code, Some(0..=2)),
        "{case}: `{verb}` ended with {code:?} (a panic, a signal or a hang)\n{}",
        result.stderr
    );
    assert!(
        !result.stderr.contains("panicked"),
        "{case}: `{verb}` panicked:\n{}",
        result.stderr
    );
    if code == Some(0) {
        let answer: Value = serde_json::from_str(&result.stdout).unwrap_or_else(|_| {
            panic!("{case}: `{verb}` succeeded without JSON: {}", result.stdout)
        });
        let answer = match expected {
            Some(_) if verb == "verify" => answer["head"].clone(),
            _ => answer,
        };
        assert_eq!(
            Some(&answer),
            expected,
            "{case}: `{verb}` answered something else than the undamaged store"
        );
        tally.same_answer += 1;
    } else {
        let message = format!("{}{}", result.stdout, result.stderr);
        assert!(
            message.trim().len() > 10,
            "{case}: `{verb}` refused without a message"
        );
        if code == Some(1) && verb == "verify" {
            assert!(
                message.contains("position"),
                "{case}: verify names no position: {message}"
            );
        }
        tally.refused += 1;
    }
}

/// `serve` on a damaged store: it refuses to start (exit 1 or 2), or serves the undamaged
/// figures (or an error status), never others.
fn check_serve(case: &str, data: &Path, base: &Baseline, tally: &mut Tally) {
    let mut child = Command::new(util::binary())
        .arg("--data")
        .arg(data)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        let _ = tx.send(lines.next().and_then(Result::ok));
        for _ in lines {}
    });
    let line = rx.recv_timeout(VERB_TIMEOUT).ok().flatten();
    let addr = line
        .as_deref()
        .and_then(|line| line.strip_prefix("listening on http://"))
        .and_then(|addr| addr.trim().parse().ok());
    match addr {
        Some(addr) => {
            let path = format!("/v1/grants/{GRANT}");
            let answer = util::http_json(addr, "GET", &path, Some(&base.token), None);
            let _ = child.kill();
            let _ = child.wait();
            let (status, body) = answer.unwrap_or_else(|error| panic!("{case}: serve: {error}"));
            if status == 200 {
                assert_eq!(body, base.grant, "{case}: serve answered other figures");
            } else {
                assert!(status >= 500, "{case}: serve answered {status} {body}");
            }
        }
        None => {
            let started = Instant::now();
            let status = loop {
                if let Ok(Some(status)) = child.try_wait() {
                    break Some(status);
                }
                if started.elapsed() > VERB_TIMEOUT {
                    let _ = child.kill();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            let output = child.wait_with_output().expect("output");
            let code = status.and_then(|status| status.code());
            assert!(
                matches!(code, Some(1 | 2)),
                "{case}: serve neither served nor refused cleanly: {code:?} {}",
                stderr(&output)
            );
            assert!(
                !stderr(&output).contains("panicked"),
                "{case}: serve panicked"
            );
        }
    }
    tally.serve_checked += 1;
}

/// Runs the read verbs (and, when asked, `serve`) on a damaged copy.
fn check_damaged(case: &str, data: &Path, base: &Baseline, serve: bool, tally: &mut Tally) {
    let verify = run(data, &["verify", "--json"]);
    check_verb(case, "verify", &verify, Some(&base.head), tally);
    let grant = run(data, &["grant", "show", GRANT, "--json"]);
    check_verb(case, "grant show", &grant, Some(&base.grant), tally);
    let fund = run(data, &["fund", "show", FUND, "--json"]);
    check_verb(case, "fund show", &fund, Some(&base.fund), tally);
    if serve {
        check_serve(case, data, base, tally);
    }
    tally.cases += 1;
}

/// A damage done to a copy of the store's directory.
type Damage = Box<dyn Fn(&Path)>;

fn db_file(data: &Path) -> PathBuf {
    data.join("db").join("db")
}

fn damages(seed: u64, flips: u64, db_len: u64) -> Vec<(String, Damage)> {
    let mut rng = Rng(seed);
    let mut list: Vec<(String, Damage)> = Vec::new();
    for index in 0..flips {
        let at = rng.below(db_len);
        let width = 1 + rng.below(16);
        let mask = (rng.below(255) + 1) as u8;
        list.push((
            format!("flip {width} bytes at {at} of db/db (^{mask:#x})"),
            Box::new(move |data: &Path| {
                let path = db_file(data);
                let mut bytes = std::fs::read(&path).expect("db");
                let end = (at + width).min(bytes.len() as u64);
                for byte in &mut bytes[at as usize..end as usize] {
                    *byte ^= mask;
                }
                std::fs::write(&path, bytes).expect("write");
            }),
        ));
        let _ = index;
    }
    for fraction in [0u64, 1, 25, 50, 75, 90, 99] {
        let keep = db_len * fraction / 100;
        list.push((
            format!("db/db cut to {keep} of {db_len} bytes"),
            Box::new(move |data: &Path| {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(db_file(data))
                    .expect("db");
                file.set_len(keep).expect("truncate");
            }),
        ));
    }
    list.push((
        "db/db cut by its last byte".into(),
        Box::new(move |data: &Path| {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(db_file(data))
                .expect("db");
            file.set_len(db_len - 1).expect("truncate");
        }),
    ));
    for name in ["db/db", "db/conf", "db", "GRANTFLOW", "redo-0", "redo-1"] {
        list.push((
            format!("{name} deleted"),
            Box::new(move |data: &Path| {
                let path = data.join(name);
                if path.is_dir() {
                    std::fs::remove_dir_all(path).expect("rm -r");
                } else {
                    std::fs::remove_file(path).expect("rm");
                }
            }),
        ));
    }
    for (name, text) in [
        ("GRANTFLOW", "not a marker\n"),
        ("GRANTFLOW", "grantflow store\nformat 99\n"),
        ("db/conf", "garbage"),
    ] {
        list.push((
            format!("{name} replaced by {text:?}"),
            Box::new(move |data: &Path| std::fs::write(data.join(name), text).expect("write")),
        ));
    }
    list.push((
        "redo-0 and redo-1: both start records damaged".into(),
        Box::new(|data: &Path| {
            for name in ["redo-0", "redo-1"] {
                let path = data.join(name);
                let mut bytes = std::fs::read(&path).expect("redo file");
                bytes[30] ^= 1;
                std::fs::write(path, bytes).expect("write");
            }
        }),
    ));
    list
}

#[test]
fn a_damaged_store_is_refused_or_answers_right_never_wrong() {
    let seed = env_u64("GRANTFLOW_CORRUPTION_SEED", 0x9e37_79b9_7f4a_7c15);
    let flips = env_u64("GRANTFLOW_CORRUPTION_CASES", 24);
    let store = Store::new();
    let base = baseline(&store);
    let db_len = std::fs::metadata(db_file(&store.data())).expect("db").len();
    let mut tally = Tally::default();
    for (index, (case, damage)) in damages(seed, flips, db_len).into_iter().enumerate() {
        let copy = store.path(&format!("copy-{index}"));
        copy_dir(&store.data(), &copy);
        damage(&copy);
        check_damaged(&case, &copy, &base, index.is_multiple_of(4), &mut tally);
        std::fs::remove_dir_all(&copy).expect("rm copy");
    }
    // The original is untouched by all that.
    check_damaged("the original", &store.data(), &base, true, &mut tally);
    assert_eq!(tally.refused + tally.same_answer, tally.cases * 3);
    assert!(tally.refused > 0, "no damage was noticed: {tally:?}");
    println!("damaged stores (seed {seed}): {tally:?}; 0 wrong answers, 0 panics");
}

#[test]
fn an_edited_snapshot_is_never_served_and_replay_rebuilds_it() {
    let store = Store::new();
    let base = baseline(&store);
    // A figure in the stored projection edited, as a careless repair or an attacker would
    // (whatever checksum they recompute: the file's MAC is keyed by snapshot.key).
    let file = store.data().join("snapshot-world");
    let mut bytes = std::fs::read(&file).expect("a snapshot file");
    let at = bytes
        .windows(6)
        .position(|window| window == b"900000")
        .expect("the snapshot holds the disbursed figure");
    bytes[at] = b'8';
    std::fs::write(&file, &bytes).expect("write");
    // The snapshot proves nothing, so it is not used: every figure comes from the log.
    let grant = run(&store.data(), &["grant", "show", GRANT, "--json"]);
    assert_eq!(grant.code, Some(0), "{}", grant.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&grant.stdout).expect("grant JSON"),
        base.grant
    );
    assert!(
        grant.stderr.contains("snapshot"),
        "no warning: {}",
        grant.stderr
    );
    assert_eq!(store.json(&["fund", "show", FUND, "--json"]), base.fund);
    // `verify` reports it, and says what to do.
    let verify = run(&store.data(), &["verify"]);
    assert_eq!(verify.code, Some(1), "verify passed an edited snapshot");
    assert!(
        verify.stdout.contains("snapshot") && verify.stdout.contains("replay"),
        "{}",
        verify.stdout
    );
    // `replay` rebuilds the projections from the log, never from the snapshot.
    let replay = run(&store.data(), &["replay"]);
    assert_eq!(replay.code, Some(0), "{}", replay.stderr);
    assert_ne!(std::fs::read(&file).expect("the new snapshot"), bytes);
    assert_eq!(store.json(&["grant", "show", GRANT, "--json"]), base.grant);
    assert_eq!(store.json(&["verify", "--json"])["head"], base.head);
}

#[test]
fn a_snapshot_of_another_log_is_never_served() {
    // Store B holds the demo plus one more contribution; store A's snapshot and its key are
    // copied into B (a restored backup of another store, or figures planted with a key the
    // attacker holds): the MAC holds, but the snapshot names another log's hash at its
    // position, so B's figures still come from B's log.
    let a = Store::new();
    assert!(a.run(&["demo"]).status.success());
    let b = Store::new();
    let base = baseline(&b);
    let more = b.exec(&util::lines(&[serde_json::json!({
        "command": "record-income", "fund": FUND, "kind": "interest", "amount": "1.00",
        "received_on": "2013-05-01", "actor": "fin"})]));
    assert_eq!(more.1, 0, "{:?}", more.0);
    let fund = b.json(&["fund", "show", FUND, "--json"]);
    assert_ne!(fund, base.fund, "the income changed nothing");
    for file in ["snapshot-world", "snapshot.key"] {
        std::fs::copy(a.data().join(file), b.data().join(file)).expect("copy");
    }
    assert_eq!(b.json(&["fund", "show", FUND, "--json"]), fund);
    assert_eq!(b.json(&["grant", "show", GRANT, "--json"]), base.grant);
    let verify = run(&b.data(), &["verify"]);
    assert_eq!(verify.code, Some(1), "verify passed another log's snapshot");
    assert!(verify.stdout.contains("another log"), "{}", verify.stdout);
    let replay = run(&b.data(), &["replay"]);
    assert_eq!(replay.code, Some(0), "{}", replay.stderr);
    assert_eq!(run(&b.data(), &["verify"]).code, Some(0));
}

#[test]
fn a_database_from_an_older_copy_is_refused_naming_the_lost_events() {
    // The quiet case: a shorter, internally consistent log (what sled's recovery makes of a
    // damaged file, or a restored old copy of db/) is not a valid store any more.
    let store = Store::new();
    assert!(store.run(&["demo"]).status.success());
    let old = store.path("old");
    copy_dir(&store.data(), &old);
    let more = store.exec(&util::lines(&[serde_json::json!({
        "command": "record-income", "fund": FUND, "kind": "interest", "amount": "1.00",
        "received_on": "2013-05-01", "actor": "fin"})]));
    assert_eq!(more.1, 0, "{:?}", more.0);
    std::fs::remove_dir_all(store.data().join("db")).expect("rm db");
    copy_dir(&old.join("db"), &store.data().join("db"));
    for verb in [
        vec!["verify"],
        vec!["grant", "show", GRANT, "--json"],
        vec!["events"],
        vec!["serve", "--addr", "127.0.0.1:0"],
    ] {
        let result = run(&store.data(), &verb);
        // `verify` reports the damage as a failed check (exit 1, on standard output); every
        // other verb refuses to open the store (exit 2, on standard error).
        let (code, said) = if verb == ["verify"] {
            (Some(1), &result.stdout)
        } else {
            (Some(2), &result.stderr)
        };
        assert_eq!(
            result.code, code,
            "`{verb:?}` opened a store missing events"
        );
        assert!(
            said.contains("the log ends at 41 but 42 events were acknowledged"),
            "{verb:?}: {said}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Edited exports

/// An export's lines.
fn export(store: &Store) -> Vec<String> {
    let output = store.run(&["export", "--format", "jsonl"]);
    assert!(output.status.success());
    stdout(&output).lines().map(str::to_string).collect()
}

/// The line's hash recomputed after an edit, chained on `prev` (a forger's work).
fn rehash(line: &str, prev: &[u8; 32]) -> (String, [u8; 32]) {
    let (body, _) = line.rsplit_once(",\"hash\":\"").expect("a hash");
    let at = body.find("\"prev_hash\":\"").expect("prev_hash") + "\"prev_hash\":\"".len();
    let mut body = body.to_string();
    body.replace_range(at..at + 64, &hex::encode(prev));
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(format!("{body}}}").as_bytes());
    let hash: [u8; 32] = hasher.finalize().into();
    (format!("{body},\"hash\":\"{}\"}}", hex::encode(hash)), hash)
}

/// The hash at the end of an exported line.
fn line_hash(line: &str) -> [u8; 32] {
    let (_, hash) = line.rsplit_once(",\"hash\":\"").expect("a hash");
    hex::decode(&hash[..64])
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

fn write_lines(path: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    std::fs::write(path, text).expect("write export");
}

/// `verify --export` and `import` both refuse `lines`, naming `position`; the import target
/// stays empty. Returns what went wrong instead.
fn check_refused(
    store: &Store,
    case: &str,
    lines: &[String],
    position: u64,
    extra: &[&str],
) -> Result<(), String> {
    let file = store.path(&format!("{}.jsonl", case.replace(' ', "-")));
    write_lines(&file, lines);
    let file_arg = file.to_string_lossy().to_string();
    let mut args = vec!["verify", "--export", &file_arg];
    args.extend_from_slice(extra);
    let verify = store.run(&args);
    let expected = format!("FAILED at position {position}:");
    if verify.status.code() != Some(1) || !stdout(&verify).contains(&expected) {
        return Err(format!(
            "{case}: `verify --export` should exit 1 naming position {position}; it exited \
             {:?}: {}",
            verify.status.code(),
            stdout(&verify).trim()
        ));
    }
    if !extra.is_empty() {
        return Ok(());
    }
    let target = store.path(&format!("import-{}", case.replace(' ', "-")));
    let output = Command::new(util::binary())
        .arg("--data")
        .arg(&target)
        .args(["import", &file_arg])
        .output()
        .expect("import runs");
    let message = stderr(&output);
    if output.status.code() != Some(1)
        || !message.contains("import refused")
        || !message.contains(&format!("position {position}:"))
    {
        return Err(format!(
            "{case}: `import` should exit 1 naming position {position}; it exited {:?}: {}",
            output.status.code(),
            message.trim()
        ));
    }
    let events = Command::new(util::binary())
        .arg("--data")
        .arg(&target)
        .arg("events")
        .output()
        .expect("events runs");
    if !stdout(&events).trim().is_empty() {
        return Err(format!("{case}: a refused import wrote events"));
    }
    Ok(())
}

/// An export with one event twice: the first bad line is the copy, which stands where the
/// next position is expected; that position is the first bad one (the event before it, the
/// original, is the last good one and cannot also be the first bad one).
#[test]
fn a_duplicated_event_is_named_at_the_position_it_takes() {
    let store = Store::new();
    assert!(store.run(&["demo"]).status.success());
    let lines = export(&store);
    let mut edited = lines.clone();
    edited.insert(12, lines[12].clone());
    // Lines 1..=13 are positions 1..=13; line 14 repeats position 13 where 14 is expected.
    check_refused(&store, "event duplicated", &edited, 14, &[]).unwrap_or_else(|error| {
        panic!("{error}");
    });
}

#[test]
fn edited_exports_are_refused_at_the_first_bad_position() {
    let store = Store::new();
    assert!(store.run(&["demo"]).status.success());
    let lines = export(&store);
    let count = lines.len();
    assert!(count > 20);
    // The first event from position 11 on that carries an amount is edited.
    let k = (10..count - 1)
        .find(|index| lines[*index].contains("\"amount\":\""))
        .expect("an event with an amount");
    let position = k as u64 + 1;
    let mut cases: Vec<(&str, Vec<String>, u64)> = Vec::new();

    let mut edited = lines.clone();
    let amount = edited[k]
        .find("\"amount\":\"")
        .expect("an event with an amount");
    let digit = amount + "\"amount\":\"".len();
    let old = edited[k].as_bytes()[digit];
    let new = if old == b'9' { "1" } else { "9" };
    edited[k].replace_range(digit..digit + 1, new);
    cases.push(("amount changed", edited, position));

    let mut edited = lines.clone();
    let actor = edited[k].find("\"actor\":\"").expect("an actor") + "\"actor\":\"".len();
    edited[k].insert(actor, 'x');
    cases.push(("actor changed", edited, position));

    let mut edited = lines.clone();
    edited.remove(k);
    cases.push(("event dropped", edited, position));

    let mut edited = lines.clone();
    edited.swap(k, k + 1);
    cases.push(("events reordered", edited, position));

    let mut edited = lines.clone();
    edited.truncate(k + 1);
    let cut = edited[k].len() / 2;
    edited[k].truncate(cut);
    cases.push(("last line cut", edited, position));

    let mut edited = lines.clone();
    let at = edited[k].find("\"recorded_at\":\"").expect("a time") + "\"recorded_at\":\"".len();
    edited[k].replace_range(at..at + 4, "1999");
    cases.push(("recorded_at changed", edited, position));

    // A forger who edits an amount and re-hashes that event alone breaks the next link.
    let mut edited = lines.clone();
    let prev = line_hash(&edited[k - 1]);
    edited[k] = edited[k].replacen("\"amount\":\"", "\"amount\":\"1", 1);
    let (forged, _) = rehash(&edited[k], &prev);
    edited[k] = forged;
    cases.push(("amount changed and re-hashed", edited, position + 1));

    let mut failures: Vec<String> = cases
        .iter()
        .filter_map(|(case, edited, position)| {
            check_refused(&store, case, edited, *position, &[]).err()
        })
        .collect();

    // A forger who re-hashes the whole chain after the edit makes a self-consistent chain:
    // the rules refuse it alone, at the edited event (its amount breaks a limit).
    let rechained = |edited: &mut Vec<String>, from: usize| {
        let mut prev = line_hash(&lines[from - 1]);
        for line in edited.iter_mut().skip(from) {
            let (rehashed, hash) = rehash(line, &prev);
            *line = rehashed;
            prev = hash;
        }
    };
    let mut forged = lines.clone();
    forged[k] = forged[k].replacen("\"amount\":\"", "\"amount\":\"1", 1);
    rechained(&mut forged, k);
    let file = store.path("forged-amount.jsonl");
    write_lines(&file, &forged);
    let alone = store.run(&["verify", "--export", &file.to_string_lossy()]);
    assert_eq!(alone.status.code(), Some(1), "{}", stdout(&alone));
    assert!(
        stdout(&alone).contains(&format!("FAILED at position {position}: breaks rule ")),
        "a re-chained amount is refused by the rules: {}",
        stdout(&alone)
    );
    // One the decider could have written (a reason in other words) verifies alone: only a
    // checkpoint taken before tells.
    let checkpoint = store.path("checkpoint.json");
    let output = store.run(&["checkpoint"]);
    std::fs::write(&checkpoint, stdout(&output)).expect("checkpoint");
    let r = (0..count)
        .find(|index| lines[*index].contains("\"reason\":\""))
        .expect("an event with a reason");
    let mut forged = lines.clone();
    forged[r] = forged[r].replacen("\"reason\":\"", "\"reason\":\"in short, ", 1);
    rechained(&mut forged, r);
    let file = store.path("forged.jsonl");
    write_lines(&file, &forged);
    let alone = store.run(&["verify", "--export", &file.to_string_lossy()]);
    assert_eq!(
        alone.status.code(),
        Some(0),
        "a re-chained file the decider could have written verifies alone: {}",
        stdout(&alone)
    );
    let checkpoint_arg = checkpoint.to_string_lossy().to_string();
    failures.extend(
        check_refused(
            &store,
            "whole chain forged",
            &forged,
            count as u64,
            &["--checkpoint", &checkpoint_arg],
        )
        .err(),
    );
    assert!(failures.is_empty(), "edited exports: {failures:#?}");
    let mut tried: BTreeMap<&str, u64> = BTreeMap::new();
    for (case, _, position) in &cases {
        tried.insert(case, *position);
    }
    println!(
        "edited exports: {} edits refused by verify --export and import at the first bad \
         position, a forged re-chained export refused against its checkpoint: {tried:?}",
        cases.len()
    );
}
