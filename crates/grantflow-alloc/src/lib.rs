//! The global allocator of grantflow's binaries: mimalloc (without transparent huge pages),
//! with its purge delay shortened from 1 s to [`PURGE_DELAY_MS`].
//!
//! mimalloc keeps freed memory committed for its purge delay before returning it to the OS,
//! so that a burst of allocations can reuse it cheaply. Appending to the log turns memory
//! over fast (log chunks passing through sled's cache, sled's 8 MiB I/O buffers, the
//! commands in flight), and with the default 1 s, what was freed in the last second stays
//! resident; 25 ms keeps the peak RSS of appending a large log well lower at the same
//! throughput (figures in BENCHMARKS.md, "Memory").
//!
//! A binary links this crate (which sets the global allocator) and calls [`configure`]
//! first thing in `main`. `MIMALLOC_PURGE_DELAY` in the environment still wins: mimalloc
//! reads it, and [`configure`] then leaves the option alone.

/// The allocator of every binary that links this crate.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long mimalloc keeps freed memory committed before purging it, in milliseconds.
pub const PURGE_DELAY_MS: i64 = 25;

/// The environment variable through which mimalloc itself reads the purge delay.
pub const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (libmimalloc-sys names no
/// constant for it); the test `the_purge_delay_option_is_the_one_mimalloc_reads` checks it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the allocator's purge delay to [`PURGE_DELAY_MS`], unless the environment sets it.
pub fn configure() {
    if std::env::var_os(PURGE_DELAY_ENV).is_none() {
        set_purge_delay(PURGE_DELAY_MS);
    }
}

/// The allocator's current purge delay, in milliseconds.
pub fn purge_delay_ms() -> i64 {
    #[allow(unsafe_code)]
    // SAFETY: mi_option_get reads one integer option; it takes a plain enum value and has no
    // other precondition (mimalloc initializes its options on first use).
    let value = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
    #[allow(clippy::useless_conversion)] // c_long is i32 on some targets
    i64::from(value)
}

fn set_purge_delay(ms: i64) {
    let value = std::os::raw::c_long::try_from(ms).unwrap_or(std::os::raw::c_long::MAX);
    #[allow(unsafe_code)]
    // SAFETY: mi_option_set stores one integer option, which mimalloc reads when it next
    // schedules a purge; it may be called at any time from any thread.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, value)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run in a child process with `MIMALLOC_PURGE_DELAY` set: the option this crate sets
    /// is the one mimalloc reads from that variable (so index 15 is the purge delay).
    #[test]
    fn the_purge_delay_option_is_the_one_mimalloc_reads() {
        if let Some(expected) = std::env::var_os("GRANTFLOW_ALLOC_TEST_EXPECT") {
            let expected: i64 = expected
                .to_str()
                .and_then(|s| s.parse().ok())
                .expect("GRANTFLOW_ALLOC_TEST_EXPECT is a number");
            configure();
            assert_eq!(purge_delay_ms(), expected);
            return;
        }
        let exe = std::env::current_exe().expect("the test binary's path");
        for (env, expected) in [(Some("777"), 777), (None, PURGE_DELAY_MS)] {
            let mut child = std::process::Command::new(&exe);
            child
                .args([
                    "--exact",
                    "tests::the_purge_delay_option_is_the_one_mimalloc_reads",
                    "--test-threads=1",
                ])
                .env("GRANTFLOW_ALLOC_TEST_EXPECT", expected.to_string())
                .env_remove(PURGE_DELAY_ENV);
            if let Some(value) = env {
                child.env(PURGE_DELAY_ENV, value);
            }
            let output = child.output().expect("running the test binary");
            assert!(
                output.status.success(),
                "child with {PURGE_DELAY_ENV}={env:?} failed:\n{}",
                String::from_utf8_lossy(&output.stdout)
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                stdout.contains("1 passed"),
                "the child ran no test: {stdout}"
            );
        }
    }

    #[test]
    fn configure_sets_the_delay_unless_the_environment_does() {
        configure();
        match std::env::var(PURGE_DELAY_ENV) {
            Ok(value) => assert_eq!(purge_delay_ms().to_string(), value.trim()),
            Err(_) => assert_eq!(purge_delay_ms(), PURGE_DELAY_MS),
        }
    }
}
