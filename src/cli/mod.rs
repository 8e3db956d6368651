//! The command line: `serve`, `check`, `status`, `start`, `pause`, `resume`, `promote`, `abort`,
//! `set-weight`, `events`, `reload`, `demo-traffic`, `demo-backend`, one module per command.
//! Exit codes: 0 ok, 1 refused or failed, 2 usage, config or state error.

use clap::{Parser, Subcommand};

use crate::client::ClientError;
use crate::telemetry::LogFormat;

/// Prints a line to stdout. A closed pipe (`canary-pilot status | head -1`) ends the process
/// quietly with success, as `head` expects, instead of a panic.
macro_rules! emit {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, $($arg)*).and_then(|()| out.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod check;
mod demo;
mod deploy;
mod events;
mod release;
mod reload;
mod remote;
mod serve;
mod status;
mod wait;
mod width;

pub use events::event_line;
pub use remote::{Output, Remote};
pub use status::{status_details, status_line};
pub use width::Width;

#[derive(Debug, Parser)]
#[command(
    name = "canary-pilot",
    version,
    about = "Automated canary releases behind Traefik"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Output of the commands that talk to the admin API: text, or the API's JSON. Accepted
    /// before or after the command.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: Traefik provider endpoint, admin API and health checks.
    Serve(serve::ServeArgs),
    /// Validate a config file and print the Traefik dynamic config it would serve.
    Check(check::CheckArgs),
    /// Show every app, or one, with its phase and weights.
    Status(status::StatusArgs),
    /// Start a release: the new version is deployed on the idle (canary) slot.
    Start(release::StartArgs),
    /// Hold a release at its current weight.
    Pause(release::ReasonArgs),
    /// Continue a paused release from its step.
    Resume(release::AppArgs),
    /// Skip the remaining steps: the canary takes 100 %, then becomes stable.
    Promote(release::AppArgs),
    /// Roll back now: the canary gets no traffic.
    Abort(release::ReasonArgs),
    /// Show the event log (every transition), oldest first.
    Events(events::EventsArgs),
    /// Make the daemon read its config file again (like SIGHUP); a bad file changes nothing.
    Reload(reload::ReloadArgs),
    /// Set an app's canary weight (0..=100) by hand; an analysed release pauses.
    SetWeight(release::SetWeightArgs),
    /// Release an image on a Swarm-managed app (`service = { name, port }`) without editing
    /// its stack; --wait then waits like `wait`.
    Deploy(deploy::DeployArgs),
    /// Block until the app's release ends: exit 0 when promoted, 1 when rolled back, 3 when
    /// --timeout passed first.
    Wait(wait::WaitArgs),
    /// Send bounded traffic (for demos and benchmarks) and report which version answered.
    DemoTraffic(demo::TrafficArgs),
    /// Run a demo backend that answers with its version; `/_control` changes its behaviour.
    DemoBackend(demo::BackendArgs),
}

/// An error and its causes, each said once: a cause whose text the message already holds (most
/// of our errors name their cause) is not repeated.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    fn usage(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 2,
            error: error.into(),
        }
    }

    fn failed(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 1,
            error: error.into(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::failed(e)
    }
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let output = cli.output;
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Check(args) => check::run(args),
        Command::Status(args) => status::run(args, output).await,
        Command::Start(args) => release::start(args, output).await,
        Command::Pause(args) => release::pause(args, output).await,
        Command::Resume(args) => release::resume(args, output).await,
        Command::Promote(args) => release::promote(args, output).await,
        Command::Abort(args) => release::abort(args, output).await,
        Command::SetWeight(args) => release::set_weight(args, output).await,
        Command::Wait(args) => wait::run(args, output).await,
        Command::Deploy(args) => deploy::run(args, output).await,
        Command::Events(args) => events::run(args, output).await,
        Command::Reload(args) => reload::run(args, output).await,
        Command::DemoTraffic(args) => demo::traffic(args).await,
        Command::DemoBackend(args) => demo::backend(args).await,
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    #[test]
    fn an_error_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let named = anyhow::Error::new(crate::store::StoreError::Write {
            path: "s.json".into(),
            cause: io,
        })
        .context("cannot start");
        assert_eq!(
            super::error_text(&named),
            "cannot start: cannot write state file s.json: permission denied"
        );
        let bare: anyhow::Result<()> = Err(std::io::Error::other("disk full").into());
        let wrapped = bare.context("cannot save").unwrap_err();
        assert_eq!(super::error_text(&wrapped), "cannot save: disk full");
    }
}
