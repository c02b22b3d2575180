//! Power-cut tests: a real `grantflow exec` (and `grantflow serve` under HTTP load) runs on a
//! data directory inside a lazy FUSE file system (`crates/grantflow-lazyfs`, strict mode,
//! torn writes) that keeps unsynced file data and unsynced directory entries in memory only;
//! the process is SIGKILLed at a random moment and the power is cut, so that the backing
//! directory keeps only what a real file system would have had to keep. After every cut,
//! on a new mount: `verify` passes (a store that refuses to open is a failure), every
//! acknowledged command is in the log exactly once, where it was acknowledged, and the verbs
//! that only read (`verify`, `grant`, `fund`, `audit`, `events`, `export`, `checkpoint`)
//! leave every byte of the data directory as they found it.
//!
//! The cut windows: a store's creation (a new data directory every few rounds), redo switches
//! and checkpoints (each round picks the redo switch size: a few KiB, 64 KiB or the default),
//! snapshots (`exec`'s clean end, `replay`), token changes and an import (`serve` loop).
//!
//! Needs `/dev/fuse` and root (`LazyFs::unavailable` says why not); skips with a message
//! otherwise, unless `GRANTFLOW_REQUIRE_FUSE` is set. `GRANTFLOW_POWERCUT_CUTS` sets the number
//! of cuts of each loop (default 4; CI sets it); `GRANTFLOW_POWERCUT_SEED` replays a run;
//! `GRANTFLOW_POWERCUT_BIN` runs another copy of the `grantflow` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod util;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use grantflow_lazyfs::{CutReport, LazyFs, Options};
use serde_json::{json, Value};
use util::{env_u64, granted_fund_setup, lines, seed_from_env, Rng};

/// The loops share the machine's two cores: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Whether FUSE is usable here; prints why a test skips (or fails, when it must not skip).
fn fuse_usable(test: &str) -> bool {
    match LazyFs::unavailable() {
        None => true,
        Some(reason) => {
            assert!(
                std::env::var_os("GRANTFLOW_REQUIRE_FUSE").is_none(),
                "{test}: GRANTFLOW_REQUIRE_FUSE is set, but {reason}"
            );
            eprintln!("SKIPPED {test}: no power-cut test here: {reason}");
            false
        }
    }
}

/// A backing directory, its mount, and the data directories of the stores in it.
struct Machine {
    // Declared first: the mount goes (unmounted) before the directories.
    fs: Option<LazyFs>,
    backing: PathBuf,
    mnt: PathBuf,
    rng: Rng,
    cuts: u64,
    tmp: tempfile::TempDir,
}

impl Machine {
    fn new(seed: u64) -> Machine {
        let tmp = tempfile::tempdir().expect("tempdir");
        let backing = tmp.path().join("backing");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&backing).expect("backing dir");
        let mut machine = Machine {
            fs: None,
            backing,
            mnt,
            rng: Rng(seed),
            cuts: 0,
            tmp,
        };
        machine.power_on();
        machine
    }

    /// Mounts the backing directory (strict, torn writes, a seed of this run's generator).
    fn power_on(&mut self) {
        let options = Options {
            strict: true,
            torn_writes: true,
            seed: self.rng.next(),
        };
        self.fs = Some(LazyFs::mount(&self.backing, &self.mnt, options).expect("mount"));
    }

    /// Cuts the power (every process using the mount must have been killed and waited for)
    /// and mounts again.
    fn cut(&mut self) -> CutReport {
        let report = self.fs.take().expect("mounted").cut().expect("cut");
        self.cuts += 1;
        self.power_on();
        report
    }

    /// Removes a data directory that was checked, and makes that durable.
    fn forget(&self, data: &Path) {
        if data.exists() {
            std::fs::remove_dir_all(data).expect("a checked store removed");
            self.fs.as_ref().expect("mounted").sync_all();
        }
    }

    /// A data directory on the mount.
    fn data(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }
}

/// `grantflow --data DATA ARGS`, with the redo switch size `switch` (0: its default).
fn grantflow(data: &Path, switch: u64, args: &[&str]) -> Command {
    // GRANTFLOW_POWERCUT_BIN: a copy of the binary, so that a long run is not disturbed by
    // a build replacing target/debug/grantflow.
    let binary =
        std::env::var_os("GRANTFLOW_POWERCUT_BIN").map_or_else(util::binary, PathBuf::from);
    let mut command = Command::new(binary);
    command
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("GRANTFLOW_ACTOR")
        .env_remove("GRANTFLOW_DATA");
    match switch {
        0 => command.env_remove("GRANTFLOW_REDO_SWITCH_BYTES"),
        bytes => command.env("GRANTFLOW_REDO_SWITCH_BYTES", bytes.to_string()),
    };
    command
}

fn run(data: &Path, args: &[&str]) -> Output {
    grantflow(data, 0, args).output().expect("grantflow runs")
}

/// Every file's bytes under `dir` (relative path -> bytes); directories as empty entries.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).expect("readable directory") {
            let path = entry.expect("an entry").path();
            let relative = path.strip_prefix(dir).unwrap().to_path_buf();
            if path.is_dir() {
                stack.push(path);
                found.insert(relative, None);
            } else {
                found.insert(relative, Some(std::fs::read(&path).expect("readable file")));
            }
        }
    }
    found
}

/// The verbs that only read, besides `verify` and `events` (`export` writes to a file
/// outside the store).
const READ_VERBS: [&[&str]; 6] = [
    &["grant", "show", "G"],
    &["grant", "list"],
    &["fund", "show", "F"],
    &["audit", "G"],
    &["checkpoint"],
    &["export"],
];

/// What a store was told was durable: command id -> the positions of its events.
#[derive(Default)]
struct Acknowledged {
    commands: HashMap<String, Vec<u64>>,
}

impl Acknowledged {
    fn record(&mut self, result: &Value) {
        assert_eq!(result["ok"], true, "an unexpected answer: {result}");
        let id = result["command_id"].as_str().unwrap_or("").to_string();
        let positions: Vec<u64> = result["events"]
            .as_array()
            .map(|refs| refs.iter().filter_map(|r| r["position"].as_u64()).collect())
            .unwrap_or_default();
        if result["replayed"] == true {
            if let Some(known) = self.commands.get(&id) {
                assert_eq!(known, &positions, "{id} replayed where acknowledged");
            }
        }
        self.commands.insert(id, positions);
    }
}

/// After a cut: `verify` passes, every acknowledged command is in the log once, where
/// acknowledged, positions gapless; then the verbs that only read change no byte of the
/// store (all of them with `extra_verbs`, else `verify` and `events`). `context` names the
/// cut in messages. A store that was never acknowledged anything may be absent (its creation
/// was cut before it was durable).
fn check_after_cut(data: &Path, acknowledged: &Acknowledged, extra_verbs: bool, context: &str) {
    if acknowledged.commands.is_empty() && !data.join("GRANTFLOW").exists() {
        return;
    }
    let before = contents(data);
    let verify = run(data, &["verify"]);
    assert!(
        verify.status.success(),
        "{context}: verify failed (a store that refuses to open is a failure): {}{}",
        util::stdout(&verify),
        util::stderr(&verify)
    );
    let events = run(data, &["events"]);
    assert!(events.status.success(), "{context}: events failed");
    let mut by_command: HashMap<String, Vec<u64>> = HashMap::new();
    for (index, line) in util::stdout(&events).lines().enumerate() {
        let event: Value = serde_json::from_str(line).expect("an envelope");
        assert_eq!(
            event["position"].as_u64(),
            Some(index as u64 + 1),
            "{context}: gapless"
        );
        by_command
            .entry(event["command_id"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(index as u64 + 1);
    }
    let lost: Vec<&String> = acknowledged
        .commands
        .keys()
        .filter(|id| !by_command.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{context}: {} acknowledged commands lost (of {}), e.g. {:?}",
        lost.len(),
        acknowledged.commands.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    for (id, positions) in &acknowledged.commands {
        assert_eq!(
            &by_command[id], positions,
            "{context}: {id} appears once, where acknowledged"
        );
    }
    // The verbs that only read wrote nothing: not `verify` and `events` above, on a store
    // that the cut left to recover, nor these.
    let export = data.with_extension("export.jsonl");
    let more = if extra_verbs { &READ_VERBS[..] } else { &[] };
    for args in more.iter().copied().chain([&["verify"][..]]) {
        let export_args = ["export", "--output", export.to_str().unwrap()];
        let args = if args == ["export"] {
            &export_args[..]
        } else {
            args
        };
        let output = run(data, args);
        assert!(
            output.status.success() || args[0] != "verify",
            "{context}: {args:?}: {}",
            util::stderr(&output)
        );
    }
    let _ = std::fs::remove_file(&export);
    let after = contents(data);
    let changed: Vec<&PathBuf> = after
        .keys()
        .chain(before.keys())
        .filter(|path| before.get(*path) != after.get(*path))
        .collect();
    assert!(
        changed.is_empty(),
        "{context}: verbs that only read changed {changed:?}"
    );
}

/// Setup with ids, so that a setup cut short is sent again and replays.
fn setup_commands() -> Vec<Value> {
    granted_fund_setup()
        .into_iter()
        .enumerate()
        .map(|(index, mut command)| {
            command["command_id"] = json!(format!("setup-{index}"));
            command
        })
        .collect()
}

fn disbursement(id: &str) -> Value {
    json!({"command": "record-disbursement", "grant": "G", "agency": "IOM", "amount": "1.00",
           "paid_on": "2020-01-01", "actor": "fin", "command_id": id})
}

/// Starts `exec` on `data`, feeds it `input`, reads result lines until `after` (or its
/// exit), SIGKILLs it. Returns the complete result lines it printed.
fn exec_and_kill(data: &Path, switch: u64, input: String, after: Duration) -> Vec<Value> {
    let mut child = grantflow(data, switch, &["exec"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("exec starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    util::kill_after(&mut child, after);
    let _ = writer.join();
    // A line cut by the kill is not a printed result.
    reader
        .join()
        .unwrap_or_default()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect()
}

/// A loop's start: `None` when FUSE is not usable (said, or a failure where it is required);
/// else this test's turn on the machine, the number of cuts and the seed, announced.
fn begin(test: &str, what: &str) -> Option<(std::sync::MutexGuard<'static, ()>, u64, u64)> {
    if !fuse_usable(test) {
        return None;
    }
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cuts = env_u64("GRANTFLOW_POWERCUT_CUTS", 4);
    let seed = seed_from_env("GRANTFLOW_POWERCUT_SEED");
    println!(
        "power cuts under {what}: {cuts} cuts, seed {seed} (GRANTFLOW_POWERCUT_SEED replays it)"
    );
    Some((turn, cuts, seed))
}

#[test]
fn power_cuts_under_exec_lose_no_acknowledged_command() {
    let Some((_turn, cuts, seed)) =
        begin("power_cuts_under_exec_lose_no_acknowledged_command", "exec")
    else {
        return;
    };
    let started = Instant::now();
    let mut machine = Machine::new(seed);
    let mut stores = 0u64;
    let mut data = machine.data("store-0");
    let mut acknowledged = Acknowledged::default();
    let mut total_acknowledged = 0usize;
    let mut next_id = 0u64;
    let mut torn = 0usize;
    let mut vanished = 0usize;
    for round in 0..cuts {
        // A new store every few rounds: its creation lands inside the cut window.
        if round > 0 && machine.rng.below(5) == 0 {
            total_acknowledged += acknowledged.commands.len();
            // The old store, checked after the last cut, goes (durably): each cut and mount
            // reads every file of the backing directory.
            machine.forget(&data);
            stores += 1;
            data = machine.data(&format!("store-{stores}"));
            acknowledged = Acknowledged::default();
        }
        let switch = [4096, 65536, 0][machine.rng.below(3) as usize];
        let mut commands = setup_commands();
        let count = if machine.rng.below(4) == 0 {
            40
        } else {
            20_000
        };
        for _ in 0..count {
            next_id += 1;
            commands.push(disbursement(&format!("d-{next_id}")));
        }
        let after = Duration::from_millis(20 + machine.rng.below(2_500));
        let printed = exec_and_kill(&data, switch, lines(&commands), after);
        for result in &printed {
            acknowledged.record(result);
        }
        // Now and then a `replay` (it writes the projection snapshot) inside the window.
        if machine.rng.below(4) == 0 && data.join("GRANTFLOW").exists() {
            let mut replay = grantflow(&data, switch, &["replay"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("replay starts");
            std::thread::sleep(Duration::from_millis(machine.rng.below(400)));
            let _ = replay.kill();
            let _ = replay.wait();
        }
        let report = machine.cut();
        torn += report.torn_writes.len();
        vanished += report.vanished.len();
        let context = format!(
            "cut {} (seed {seed}, store-{stores}, {} acknowledged, {} printed this round): {report}",
            round + 1,
            acknowledged.commands.len(),
            printed.len()
        );
        let extra_verbs = machine.rng.below(3) == 0;
        check_after_cut(&data, &acknowledged, extra_verbs, &context);
        println!(
            "exec cut {}: {} acknowledged commands checked so far, 0 lost; {:.0} s",
            machine.cuts,
            total_acknowledged + acknowledged.commands.len(),
            started.elapsed().as_secs_f64()
        );
    }
    total_acknowledged += acknowledged.commands.len();
    println!(
        "power cuts under exec: {} cuts survived ({} stores created inside the windows, {torn} \
         torn writes, {vanished} names lost by the cuts), {total_acknowledged} acknowledged \
         commands checked, 0 lost, 0 refusals, read-only verbs wrote nothing; {:.0} s",
        machine.cuts,
        stores + 1,
        started.elapsed().as_secs_f64()
    );
}

/// Client threads sending commands at once to `serve`.
const CLIENTS: u64 = 3;

/// One HTTP client: fresh disbursements until the server goes away; every 7th a resend of an
/// acknowledged one (it must replay).
fn client(
    addr: std::net::SocketAddr,
    token: String,
    prefix: String,
    acknowledged: std::sync::Arc<Mutex<Acknowledged>>,
) {
    let mut n = 0u64;
    let mut mine: Vec<Value> = Vec::new();
    loop {
        n += 1;
        let resend = n.is_multiple_of(7) && !mine.is_empty();
        let body = if resend {
            mine[(n as usize / 7) % mine.len()].clone()
        } else {
            let mut body = disbursement(&format!("{prefix}-{n}"));
            body.as_object_mut().unwrap().remove("actor");
            body
        };
        match util::http_json(addr, "POST", "/v1/commands", Some(&token), Some(&body)) {
            Ok((200, result)) if result["ok"] == true => {
                assert!(!resend || result["replayed"] == true, "a resend: {result}");
                acknowledged.lock().unwrap().record(&result);
                if !resend {
                    mine.push(body);
                }
            }
            Ok((status, result)) => panic!("{prefix}-{n}: unexpected answer {status} {result}"),
            // The server was killed: this command's fate is unknown, and not acknowledged.
            Err(_) => return,
        }
    }
}

/// `grantflow serve` on `data`, on a free port; its address once it listens.
fn start_serve(data: &Path, switch: u64) -> Option<(std::process::Child, std::net::SocketAddr)> {
    let mut child = grantflow(data, switch, &["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .ok()
        .and_then(|line| {
            line.trim()
                .strip_prefix("listening on http://")
                .and_then(|addr| addr.parse().ok())
        });
    match addr {
        Some(addr) => Some((child, addr)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

/// Issues a token; its id and text, when `token add` printed them (acknowledged).
fn add_token(data: &Path, actor: &str, roles: &str) -> Option<(String, String)> {
    let output = grantflow(
        data,
        0,
        &["--actor", actor, "token", "add", "--role", roles],
    )
    .output()
    .expect("grantflow runs");
    let text = util::stdout(&output);
    let id = text
        .strip_prefix("token ")?
        .split_whitespace()
        .next()?
        .to_string();
    let token = text.lines().last()?.trim().to_string();
    (output.status.success() && token.starts_with("gf_")).then_some((id, token))
}

/// Every token `token list` shows, with its state.
fn token_states(data: &Path) -> HashMap<String, String> {
    let output = run(data, &["token", "list"]);
    assert!(
        output.status.success(),
        "token list: {}",
        util::stderr(&output)
    );
    util::stdout(&output)
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((fields.first()?.to_string(), fields.last()?.to_string()))
        })
        .collect()
}

#[test]
fn power_cuts_under_serve_lose_no_acknowledged_command() {
    let Some((_turn, cuts, seed)) = begin(
        "power_cuts_under_serve_lose_no_acknowledged_command",
        "serve",
    ) else {
        return;
    };
    let started = Instant::now();
    let mut machine = Machine::new(seed);
    let data = machine.data("serve");
    let acknowledged = std::sync::Arc::new(Mutex::new(Acknowledged::default()));
    // Set up outside any window: the store, its grant, the clients' token.
    let setup = exec_and_kill(&data, 0, lines(&setup_commands()), Duration::from_secs(120));
    assert_eq!(setup.len(), setup_commands().len(), "setup: {setup:?}");
    for result in &setup {
        acknowledged.lock().unwrap().record(result);
    }
    let (_, token) = add_token(&data, "fin", "finance").expect("a token");
    machine.fs.as_ref().expect("mounted").sync_all();
    // token id -> the state it was acknowledged in ("live" or "revoked").
    let mut tokens: HashMap<String, String> = HashMap::new();
    let (mut token_changes, mut imports, mut imports_acknowledged, mut replays) = (0, 0, 0, 0);
    let export = machine.tmp.path().join("export.jsonl");
    for round in 0..cuts {
        let switch = [2048, 65536, 0][machine.rng.below(3) as usize];
        let Some((mut server, addr)) = start_serve(&data, switch) else {
            panic!("cut {round} (seed {seed}): serve did not start after a cut");
        };
        let clients: Vec<_> = (0..CLIENTS)
            .map(|thread| {
                let (token, acknowledged) = (token.clone(), acknowledged.clone());
                let prefix = format!("s{round}-t{thread}");
                std::thread::spawn(move || client(addr, token, prefix, acknowledged))
            })
            .collect();
        let window = Duration::from_millis(100 + machine.rng.below(2_500));
        let opened = Instant::now();
        // A token change inside the window (`token add` and `revoke` write tokens.json beside
        // the running server).
        if machine.rng.below(2) == 0 {
            std::thread::sleep(Duration::from_millis(machine.rng.below(300)));
            token_changes += 1;
            let live: Vec<String> = tokens
                .iter()
                .filter(|(_, state)| *state == "live")
                .map(|(id, _)| id.clone())
                .collect();
            if !live.is_empty() && machine.rng.below(3) == 0 {
                let id = &live[machine.rng.below(live.len() as u64) as usize];
                let output = run(&data, &["token", "revoke", id]);
                if output.status.success() {
                    tokens.insert(id.clone(), "revoked".to_string());
                }
            } else if let Some((id, _)) = add_token(&data, &format!("aud{round}"), "auditor") {
                tokens.insert(id, "live".to_string());
            }
        }
        std::thread::sleep(window.saturating_sub(opened.elapsed()));
        let _ = server.kill();
        let _ = server.wait();
        for client in clients {
            client.join().expect("a client thread");
        }
        // Now and then an import into a new store, or a `replay`, inside the window.
        let mut imported: Option<(PathBuf, usize)> = None;
        let mut import_cut: Option<PathBuf> = None;
        match machine.rng.below(4) {
            0 => {
                let output = run(&data, &["export", "--output", export.to_str().unwrap()]);
                assert!(output.status.success(), "export: {}", util::stderr(&output));
                let count = util::read(&export).lines().count();
                imports += 1;
                let target = machine.data(&format!("import-{imports}"));
                let mut import = grantflow(&target, switch, &["import", export.to_str().unwrap()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("import starts");
                let deadline = Instant::now() + Duration::from_millis(machine.rng.below(1_500));
                let mut status = None;
                while Instant::now() < deadline && status.is_none() {
                    std::thread::sleep(Duration::from_millis(5));
                    status = import.try_wait().ok().flatten();
                }
                let _ = import.kill();
                let _ = import.wait();
                if status.is_some_and(|status| status.success()) {
                    imports_acknowledged += 1;
                    imported = Some((target, count));
                } else {
                    import_cut = Some(target);
                }
            }
            1 => {
                replays += 1;
                let mut replay = grantflow(&data, switch, &["replay"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("replay starts");
                std::thread::sleep(Duration::from_millis(machine.rng.below(400)));
                let _ = replay.kill();
                let _ = replay.wait();
            }
            _ => {}
        }
        let report = machine.cut();
        let context = format!(
            "cut {} (seed {seed}, {} acknowledged): {report}",
            round + 1,
            acknowledged.lock().unwrap().commands.len()
        );
        let extra_verbs = machine.rng.below(3) == 0;
        check_after_cut(&data, &acknowledged.lock().unwrap(), extra_verbs, &context);
        let states = token_states(&data);
        for (id, state) in &tokens {
            assert_eq!(
                states.get(id),
                Some(state),
                "{context}: token {id} acknowledged {state}"
            );
        }
        // An import cut short acknowledged nothing, but its store must open.
        if let Some(target) = import_cut.filter(|target| target.join("GRANTFLOW").exists()) {
            let verify = run(&target, &["verify"]);
            assert!(
                verify.status.success(),
                "{context}: a store whose import was cut refuses to open: {}",
                util::stderr(&verify)
            );
        }
        if let Some((target, count)) = imported {
            let verify = run(&target, &["verify"]);
            assert!(
                verify.status.success(),
                "{context}: verify of an acknowledged import failed: {}",
                util::stderr(&verify)
            );
            let events = run(&target, &["events"]);
            assert_eq!(
                util::stdout(&events).lines().count(),
                count,
                "{context}: an acknowledged import lost events"
            );
        }
        for target in (1..=imports).map(|n| machine.data(&format!("import-{n}"))) {
            machine.forget(&target);
        }
        println!(
            "serve cut {}: {} acknowledged commands checked so far, 0 lost; {:.0} s",
            machine.cuts,
            acknowledged.lock().unwrap().commands.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let checked = acknowledged.lock().unwrap().commands.len();
    assert!(
        checked > setup.len(),
        "no command was acknowledged under load"
    );
    println!(
        "power cuts under serve: {} cuts survived ({token_changes} token changes, {imports} \
         imports ({imports_acknowledged} acknowledged before the cut), {replays} replays inside \
         the windows), {checked} acknowledged commands checked, 0 lost, 0 refusals, read-only \
         verbs wrote nothing; {:.0} s",
        machine.cuts,
        started.elapsed().as_secs_f64()
    );
}
