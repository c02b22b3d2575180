//! The environment of the runs: fresh directories on a settled disk, the sled store under a
//! probe, and the programs driven (the `grantflow` binary, the `oha` load generator).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use grantflow_bench::probe::Probe;
use grantflow_store_sled::SledStore;

use crate::config::Config;

pub(crate) async fn open_store(dir: &Path) -> anyhow::Result<Arc<Probe>> {
    let dir = dir.to_path_buf();
    let store = tokio::task::spawn_blocking(move || SledStore::open(&dir)).await??;
    Ok(grantflow_bench::probe::wrap(Arc::new(store), false))
}

/// A fresh path for a run: what an earlier run left there is removed, and the disk settled.
pub(crate) fn fresh(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = root.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).or_else(|_| std::fs::remove_file(&dir))?;
    }
    settle_disk();
    Ok(dir)
}

/// Waits for the kernel to write back every dirty page (`sync`), so that a run does not pay
/// for the one before it (SQLite's WAL, a store just deleted): without it, whichever store
/// runs after SQLite's runs pays for their writeback and is measured slower than it is.
pub(crate) fn settle_disk() {
    if let Err(error) = std::process::Command::new("sync").status() {
        eprintln!("grantflow-bench: cannot run sync ({error}); runs may pay for earlier writeback");
    }
}

/// Finds the `grantflow` binary: `--grantflow`, else next to this binary, else (not in
/// smoke mode) builds it with `cargo build --release`.
pub(crate) fn grantflow_binary(config: &Config) -> Option<PathBuf> {
    if let Some(path) = &config.grantflow {
        return Some(path.clone());
    }
    let beside = std::env::current_exe()
        .ok()?
        .parent()?
        .join(format!("grantflow{}", std::env::consts::EXE_SUFFIX));
    if beside.is_file() {
        return Some(beside);
    }
    if config.smoke {
        return None;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["build", "--release", "--bin", "grantflow"])
        .current_dir(&workspace)
        .status()
        .ok()?;
    let built = workspace.join("target/release/grantflow");
    (status.success() && built.is_file()).then_some(built)
}

/// `--oha`, else `oha` on PATH, else ~/.cargo/bin/oha.
pub(crate) fn find_oha(config: &Config) -> Option<PathBuf> {
    if let Some(path) = &config.oha {
        return path.is_file().then(|| path.clone());
    }
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
