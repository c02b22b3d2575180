//! Helpers shared by the integration tests: a temporary store and the real binary.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The grantflow binary built for these tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_grantflow"))
}

/// A store in a temporary directory, driven through the real binary.
pub struct Store {
    pub dir: tempfile::TempDir,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Store {
        Store {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A `grantflow --data <store> ...` command, with no actor from the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .arg("--data")
            .arg(self.data())
            .args(args)
            .env_remove("GRANTFLOW_ACTOR")
            .env_remove("GRANTFLOW_DATA");
        command
    }

    /// Runs a verb and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("grantflow runs")
    }

    /// Runs a verb that must succeed and prints JSON; returns it.
    pub fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "grantflow {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "grantflow {args:?} printed no JSON ({error}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Feeds JSON Lines to `exec`; returns the result lines and the exit code.
    pub fn exec(&self, input: &str) -> (Vec<Value>, i32) {
        let mut child = self
            .command(&["exec"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("grantflow exec starts");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_string();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let output = child.wait_with_output().expect("grantflow exec ends");
        writer.join().expect("writer thread");
        let lines = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("each result line is JSON"))
            .collect();
        (lines, output.status.code().unwrap_or(-1))
    }

    /// Every stored envelope, parsed.
    pub fn events(&self) -> Vec<Value> {
        let output = self.run(&["events"]);
        assert!(output.status.success(), "events failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("an envelope"))
            .collect()
    }
}

/// JSON Lines from a list of values.
pub fn lines(commands: &[Value]) -> String {
    commands
        .iter()
        .map(|command| format!("{command}\n"))
        .collect()
}

/// Reads a file to a string.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("readable file")
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
