//! The examples in examples/ run and say they succeeded, so they cannot rot.
//!
//! Each is run through `cargo run --example NAME` (the cargo running these tests, from
//! `$CARGO`), which builds it first if needed: `cargo test --test examples` alone does not
//! build examples, so the binaries in target/debug/examples might be missing or stale. The
//! profile is the one these tests were built with (the name of target/<profile>/).

mod util;

use std::process::{Command, Output};

/// Runs an example with no arguments; its standard output, after checking it exited 0.
fn run_example(name: &str) -> String {
    let output = run_example_with(name, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "example {name} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs an example with arguments; its output, whatever its exit status.
fn run_example_with(name: &str, args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    // This test is target/<profile>/deps/examples-<hash>.
    let exe = std::env::current_exe().expect("the test's path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
        .map(|name| if name == "debug" { "dev" } else { name })
        .unwrap_or("dev")
        .to_string();
    Command::new(cargo)
        .args([
            "run",
            "--quiet",
            "--profile",
            &profile,
            "--example",
            name,
            "--",
        ])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs")
}

#[test]
fn embed_lifecycle_ends_with_the_model_case_figures() {
    let stdout = run_example("embed_lifecycle");
    assert!(stdout.contains("embed_lifecycle: ok"), "{stdout}");
    assert!(stdout.contains("3121707.00"), "{stdout}");
}

#[test]
fn integrator_follow_resumes_without_gap_or_duplicate() {
    let stdout = run_example("integrator_follow");
    assert!(stdout.contains("integrator_follow: ok"), "{stdout}");
    assert!(
        stdout.contains("restarted: resuming from position 7"),
        "{stdout}"
    );
}

#[test]
fn auditor_check_accepts_the_export_and_catches_tampering() {
    let stdout = run_example("auditor_check");
    assert!(stdout.contains("auditor_check: OK, 4 events"), "{stdout}");
    assert!(
        stdout.contains("tampered copy: BAD at position 3"),
        "{stdout}"
    );
    assert!(stdout.contains("auditor_check: ok"), "{stdout}");
}

#[test]
fn jetstream_consumer_resumes_without_gap_or_duplicate() {
    let stdout = run_example("jetstream_consumer");
    if std::env::var("GRANTFLOW_TEST_NATS")
        .unwrap_or_default()
        .is_empty()
        && stdout.contains("jetstream_consumer: skipped")
    {
        eprintln!("skipped: no NATS server ({})", stdout.trim());
        return;
    }
    assert!(
        stdout.contains("jetstream_consumer: ok (16 events"),
        "{stdout}"
    );
    assert!(
        stdout.contains("restarted: resuming from position 7"),
        "{stdout}"
    );
}

#[test]
fn witness_stores_signed_checkpoints_and_refuses_a_wrong_key_or_a_rewritten_log() {
    use util::{add_token, lines, spawn_serve, Store};
    let store = Store::new();
    let (results, code) = store.exec(&lines(&util::granted_fund_setup()));
    assert_eq!(code, 0, "{results:?}");
    let key = store.path("server-key");
    let key = key.to_str().expect("utf-8");
    assert!(store
        .run(&["key", "generate", "--out", key])
        .status
        .success());
    let trusted = format!("{key}.pub");
    let token = add_token(&store, "ann.auditor", "auditor");
    let (mut server, addr) = spawn_serve(
        &store,
        &["serve", "--addr", "127.0.0.1:0", "--signing-key", key],
    );
    let url = format!("http://{addr}");
    let file = store.path("witness.jsonl");
    let file = file.to_str().expect("utf-8");
    let witness = |url: &str, trust: &str| {
        run_example_with(
            "witness",
            &[
                "--url", url, "--token", &token, "--trust", trust, "--file", file,
            ],
        )
    };
    let text = |output: &Output| String::from_utf8_lossy(&output.stdout).into_owned();

    let first = witness(&url, &trusted);
    assert!(
        first.status.success(),
        "{}{}",
        text(&first),
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(text(&first).contains("witness: ok"), "{}", text(&first));
    let second = witness(&url, &trusted);
    assert!(second.status.success(), "{}", text(&second));
    let stored = util::read(std::path::Path::new(file));
    assert_eq!(stored.lines().count(), 2, "{stored}");

    // Another public key: refused, nothing appended.
    let other = store.path("other-key");
    let other = other.to_str().expect("utf-8");
    assert!(store
        .run(&["key", "generate", "--out", other])
        .status
        .success());
    let refused = witness(&url, &format!("{other}.pub"));
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("REFUSED"), "{}", text(&refused));
    assert_eq!(util::read(std::path::Path::new(file)), stored);
    let _ = server.kill();
    let _ = server.wait();

    // A server with the same key on a rewritten log (another history, longer): its
    // checkpoint is signed, but its log does not extend the stored one.
    let forged = Store::new();
    let mut commands = util::granted_fund_setup();
    commands.extend(util::granted_fund_setup().into_iter().map(|mut command| {
        if let Some(fund) = command.get_mut("fund") {
            *fund = serde_json::json!("F2");
        }
        command
    }));
    commands[0]["name"] = serde_json::json!("Fund, rewritten");
    let (results, _) = forged.exec(&lines(&commands));
    assert!(!results.is_empty());
    let forged_token = add_token(&forged, "ann.auditor", "auditor");
    let (mut rogue, rogue_addr) = spawn_serve(
        &forged,
        &["serve", "--addr", "127.0.0.1:0", "--signing-key", key],
    );
    let refused = run_example_with(
        "witness",
        &[
            "--url",
            &format!("http://{rogue_addr}"),
            "--token",
            &forged_token,
            "--trust",
            &trusted,
            "--file",
            file,
        ],
    );
    let _ = rogue.kill();
    let _ = rogue.wait();
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("does not extend"),
        "{}",
        text(&refused)
    );
    assert_eq!(util::read(std::path::Path::new(file)), stored);
}

#[test]
fn webhook_receiver_takes_a_signed_delivery_and_refuses_another_secret() {
    let stdout = run_example("webhook_receiver");
    assert!(
        stdout.contains("signed with the secret: taken (204); with another secret: refused (401)"),
        "{stdout}"
    );
    assert!(stdout.contains("webhook_receiver: ok"), "{stdout}");
}
