//! CI smoke run: the bench binary on a tiny workload completes and prints every scenario's
//! line. It never asserts a speed.

use std::process::Command;

#[test]
fn smoke_run_prints_every_scenario() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_grantflow-bench"))
        .arg("smoke")
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
