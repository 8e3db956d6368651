//! The `canary-pilot` binary: parse the command line, start logging, run.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

use canary_pilot::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    canary_pilot::telemetry::init(cli.log_format);
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", cli::error_text(&failure.error));
            ExitCode::from(failure.code)
        }
    }
}
