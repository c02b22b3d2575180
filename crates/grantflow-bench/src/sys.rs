//! Small system helpers: peak resident memory and bytes on disk.

use std::path::Path;

/// This process's peak resident set size (VmHWM), in KiB; 0 when unknown.
pub fn vm_hwm_kib() -> u64 {
    proc_status_kib("VmHWM:")
}

/// This process's current resident set size (VmRSS), in KiB; 0 when unknown.
pub fn vm_rss_kib() -> u64 {
    proc_status_kib("VmRSS:")
}

fn proc_status_kib(field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Bytes a path takes on disk, as `du` counts them (allocated blocks), recursively.
pub fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .map(|entry| disk_bytes(&entry.path()))
            .sum::<u64>()
    } else {
        meta.blocks() * 512
    }
}

/// Apparent size of a path (sum of file lengths), recursively.
pub fn apparent_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .map(|entry| apparent_bytes(&entry.path()))
            .sum::<u64>()
    } else {
        meta.len()
    }
}
