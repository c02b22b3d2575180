//! CI smoke run: the bench binary on a tiny workload completes and prints every scenario's
//! line. It never asserts a speed. The PostgreSQL scenarios run (tiny) only when
//! `GRANTFLOW_TEST_POSTGRES` is set, the HTTP ones only when the `oha` load generator and the
//! `grantflow` binary are found; otherwise the test checks the skip line and says so.

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn smoke_run_prints_every_scenario() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_grantflow-bench"))
        .arg("smoke")
        // pg and http have their own tests below (run in parallel with this one).
        .args(["--scenario", "engine,exec,sqlite,file,replay,rss"])
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("run grantflow-bench smoke");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "smoke run failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    for scenario in [
        "workload",
        "engine-pipelined",
        "sqlite-1writer",
        "sqlite-s1",
        "sqlite-s16",
        "sqlite-s256",
        "file-1writer",
        "file-s1",
        "file-s16",
        "file-s256",
        "engine-s1",
        "engine-s16",
        "engine-s256",
        "exec",
        "exec-stdin",
        "exec-stdin-rate",
        "append-engine",
        "append-sqlite",
        "append-file",
        "disk",
        "replay-engine",
        "replay-sqlite",
        "replay-file",
        "open-sled",
        "open-engine",
        "open-engine-nosnap",
    ] {
        assert!(
            stdout.contains(&format!("scenario {scenario}: ")),
            "no line for scenario {scenario}:\n{stdout}\n{stderr}"
        );
    }
}

#[test]
fn smoke_json_is_one_document() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_grantflow-bench"))
        .args([
            "smoke",
            "--scenario",
            "sqlite,file",
            "--json",
            "--commands",
            "200",
        ])
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("run grantflow-bench smoke --json");
    assert!(output.status.success(), "{output:?}");
    let value: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON document");
    let scenarios = value["scenarios"].as_array().expect("scenarios array");
    assert!(scenarios.iter().any(|s| s["scenario"] == "sqlite-s256"));
}

/// Runs `grantflow-bench smoke` with extra arguments; returns stdout (panics on failure).
fn smoke(args: &[&str], dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_grantflow-bench"))
        .arg("smoke")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run grantflow-bench smoke");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "smoke {args:?} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn assert_lines(stdout: &str, scenarios: &[&str]) {
    for scenario in scenarios {
        assert!(
            stdout.contains(&format!("scenario {scenario}: ")),
            "no line for scenario {scenario}:\n{stdout}"
        );
    }
}

#[test]
fn smoke_postgres_when_configured() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = std::env::var("GRANTFLOW_TEST_POSTGRES").unwrap_or_default();
    let stdout = smoke(
        &[
            "--scenario",
            "pg",
            "--commands",
            "200",
            "--max-seconds",
            "2",
            "--events",
            "1000",
        ],
        dir.path(),
    );
    if url.trim().is_empty() {
        eprintln!("skipped the PostgreSQL smoke scenarios: GRANTFLOW_TEST_POSTGRES is not set");
        assert_lines(&stdout, &["pg"]);
        assert!(stdout.contains("scenario pg: skipped="), "{stdout}");
        return;
    }
    assert_lines(
        &stdout,
        &[
            "pg-server",
            "pg-s1",
            "pg-s16",
            "pg-s256",
            "pg-servers-n1",
            "pg-servers-n2",
            "pg-servers-n4",
            "pg-append",
            "pg-disk",
            "pg-replay",
            "pg-open-store",
            "pg-open-engine",
            "pg-open-engine-nosnap",
        ],
    );
}

/// `oha` as the bench finds it: on PATH or in ~/.cargo/bin.
fn oha() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("oha"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cargo/bin/oha"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

#[test]
fn smoke_http_when_tools_exist() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stdout = smoke(
        &[
            "--scenario",
            "http",
            "--http-commands",
            "200",
            "--http-clients",
            "8",
            "--sse-subscribers",
            "10",
            "--sse-commands",
            "10",
        ],
        dir.path(),
    );
    if oha().is_none() {
        eprintln!("skipped the HTTP smoke scenarios: no oha on PATH or in ~/.cargo/bin");
        assert!(stdout.contains("scenario http: skipped="), "{stdout}");
        return;
    }
    if stdout.contains("scenario http: skipped=") {
        // oha is there but the grantflow binary is not built beside the bench binary (e.g.
        // `cargo test -p grantflow-bench` alone): the bench says so.
        eprintln!("skipped the HTTP smoke scenarios: {}", stdout.trim());
        assert!(stdout.contains("no grantflow binary"), "{stdout}");
        return;
    }
    assert_lines(
        &stdout,
        &[
            "http-floor",
            "http-oha",
            "http-oha-rate",
            "http-floor-rate",
            "http-sse",
            "http-inprocess",
            "http-vs-inprocess",
            "http-vs-floor",
        ],
    );
}

#[test]
fn smoke_console_when_the_binary_exists() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stdout = smoke(
        &[
            "--scenario",
            "console",
            "--events",
            "2000",
            "--console-requests",
            "10",
        ],
        dir.path(),
    );
    if stdout.contains("scenario console: skipped=") {
        // The grantflow binary is not built beside the bench binary (e.g. `cargo test -p
        // grantflow-bench` alone): the bench says so.
        eprintln!("skipped the console smoke scenarios: {}", stdout.trim());
        assert!(stdout.contains("no grantflow binary"), "{stdout}");
        return;
    }
    assert_lines(
        &stdout,
        &[
            "console-demo-grant",
            "console-demo-portfolio",
            "console-large-portfolio",
            "console-large-grant",
        ],
    );
    assert!(stdout.contains("server_p99_ms="), "{stdout}");
}

#[test]
fn smoke_history_when_the_binary_exists() {
    let dir = tempfile::tempdir().expect("temp dir");
    let svg = dir.path().join("history.svg");
    let stdout = smoke(
        &[
            "--scenario",
            "history",
            "--history-sizes",
            "1500,3000",
            "--history-queries",
            "5",
            "--history-svg",
            svg.to_str().expect("UTF-8"),
        ],
        dir.path(),
    );
    if stdout.contains("scenario history: skipped=") {
        eprintln!("skipped the history smoke scenario: {}", stdout.trim());
        assert!(stdout.contains("no grantflow binary"), "{stdout}");
        return;
    }
    assert_lines(&stdout, &["history-1500", "history-3000"]);
    for field in [
        "grant_at_p99_ms=",
        "grant_as_of_p99_ms=",
        "grant_audit_p99_ms=",
        "fund_at_p99_ms=",
        "serve_peak_rss_mib=",
        "x_disk_export=",
    ] {
        assert!(stdout.contains(field), "{field}: {stdout}");
    }
    let chart = std::fs::read_to_string(&svg).expect("the chart was drawn");
    assert!(
        chart.starts_with("<svg") && chart.contains("fund_at"),
        "{chart}"
    );
}

#[test]
fn smoke_relay_when_nats_is_configured() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stdout = smoke(
        &[
            "--scenario",
            "relay",
            "--relay-events",
            "1000",
            "--relay-lag-commands",
            "10",
        ],
        dir.path(),
    );
    if std::env::var("GRANTFLOW_TEST_NATS")
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        eprintln!("skipped the relay smoke scenarios: GRANTFLOW_TEST_NATS is not set");
        assert!(stdout.contains("scenario relay: skipped="), "{stdout}");
        return;
    }
    assert_lines(&stdout, &["relay-catchup", "relay-floor", "relay-lag"]);
}
