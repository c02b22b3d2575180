//! Mounts a lazy file system by hand, to look at a power cut from a shell:
//!
//! ```text
//! cargo run -p grantflow-lazyfs --example lazyfs -- BACKING MOUNTPOINT [--lax] [--torn SEED]
//! ```
//!
//! Then, on standard input, one word a line: `sync` (everything durable), `cut` (cut the power:
//! the backing directory keeps what a power cut would, and what was lost is printed; the
//! file system is mounted again from it), `quit` or the end of input (a clean unmount).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use grantflow_lazyfs::{LazyFs, Options};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(backing), Some(mountpoint)) = (args.next(), args.next()) else {
        eprintln!("usage: lazyfs BACKING MOUNTPOINT [--lax] [--torn SEED]");
        return ExitCode::from(2);
    };
    let (backing, mountpoint) = (PathBuf::from(backing), PathBuf::from(mountpoint));
    let mut options = Options::default();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--lax") => options.strict = false,
            Some("--torn") => {
                options.torn_writes = true;
                match args.next().and_then(|s| s.to_str()?.parse().ok()) {
                    Some(seed) => options.seed = seed,
                    None => {
                        eprintln!("--torn needs a seed (a number)");
                        return ExitCode::from(2);
                    }
                }
            }
            _ => {
                eprintln!("unknown argument {arg:?}");
                return ExitCode::from(2);
            }
        }
    }
    let mut fs = match LazyFs::mount(&backing, &mountpoint, options) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("mount: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "mounted {} at {}",
        backing.display(),
        fs.mountpoint().display()
    );
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "sync" => {
                fs.sync_all();
                println!("synced");
            }
            "cut" => {
                match fs.cut() {
                    Ok(report) => println!("{report}"),
                    Err(e) => {
                        eprintln!("cut: {e}");
                        return ExitCode::FAILURE;
                    }
                }
                fs = match LazyFs::mount(&backing, &mountpoint, options) {
                    Ok(fs) => fs,
                    Err(e) => {
                        eprintln!("mount: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                println!("mounted again");
            }
            "quit" => break,
            "" => {}
            other => eprintln!("unknown command {other:?} (sync, cut, quit)"),
        }
    }
    match fs.unmount() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unmount: {e}");
            ExitCode::FAILURE
        }
    }
}
