//! The examples in examples/ run and say they succeeded, so they cannot rot.
//!
//! Each is run through `cargo run --example NAME` (the cargo running these tests, from
//! `$CARGO`), which builds it first if needed: `cargo test --test examples` alone does not
//! build examples, so the binaries in target/debug/examples might be missing or stale. The
//! profile is the one these tests were built with (the name of target/<profile>/).

use std::process::Command;

/// Runs an example with no arguments; its standard output, after checking it exited 0.
fn run_example(name: &str) -> String {
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
    let output = Command::new(cargo)
        .args(["run", "--quiet", "--profile", &profile, "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "example {name} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
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
