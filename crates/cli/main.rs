//! The `grantflow` command line: parse, call the engine, render. Exit status: 0 success;
//! 1 a command was rejected, a check failed, an id is unknown or an import was refused;
//! 2 usage error, not a grantflow store, or I/O error.

mod args;
mod command_args;
mod demo;
mod exec;
mod open;
mod outcome;
mod render;
mod stdout;
mod verbs;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::args::Cli;
use crate::outcome::Outcome;

fn main() -> ExitCode {
    // mimalloc (grantflow-alloc sets it as the global allocator): the log's paths allocate
    // many small strings per event; it is faster there than the system allocator, and with
    // its purge delay shortened it hands freed memory back within 25 ms (BENCHMARKS.md, "Memory").
    grantflow_alloc::configure();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let command = Cli::command().subcommands(command_args::subcommands());
    let matches = command.get_matches();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(grantflow_engine::BLOCKING_THREADS_MAX)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(dispatch(matches));
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        // The reader of standard output went away (`... | head`): nothing to say to anyone.
        Err(error) if stdout::is_closed_pipe(&error) => ExitCode::from(141),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(matches: clap::ArgMatches) -> anyhow::Result<Outcome> {
    let data: PathBuf = matches
        .get_one::<PathBuf>("data")
        .cloned()
        .unwrap_or_else(|| PathBuf::from("./grantflow-data"));
    let actor = matches.get_one::<String>("actor").cloned();
    let _ = open::STORE_URL.set(matches.get_one::<String>("store").cloned());
    if let Some((name, sub)) = matches.subcommand() {
        if command_args::is_command(name) {
            let body = command_args::body(name, sub);
            return verbs::one_command(&data, actor, body, sub.get_flag("json")).await;
        }
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    verbs::run(cli).await
}
