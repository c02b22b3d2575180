//! Standard output for people and scripts. A reader that stops early (`grantflow audit
//! --json | head`) closes the pipe: the write fails with `BrokenPipe`, the verb returns that
//! error, and `main` ends quietly with status 141 (as a shell reports a process ended by
//! SIGPIPE), never with a panic.

use std::fmt;
use std::io::{self, Write};

/// `println!` that returns the write's error instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns the write's error instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln};

/// Writes to standard output and flushes.
pub(crate) fn write(args: fmt::Arguments) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_fmt(args)?;
    stdout.flush()
}

/// Whether `error` comes from a reader that closed standard output.
pub(crate) fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
