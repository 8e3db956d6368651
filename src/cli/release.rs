//! The commands that change a release: `start`, `pause`, `resume`, `promote`, `abort` and
//! `set-weight`. Each prints the app's new status.

use super::remote::Remote;
use super::status::Shown;
use super::{Failure, Output, Width};
use crate::api::requests::{Action, ReasonBody, StartBody};
use crate::api::views::AppDetail;

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    app: String,
    /// Version label of the release, e.g. an image tag.
    #[arg(long)]
    version: String,
    #[command(flatten)]
    remote: Remote,
}

/// `pause` and `abort`.
#[derive(Debug, clap::Args)]
pub struct ReasonArgs {
    app: String,
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// `resume` and `promote`.
#[derive(Debug, clap::Args)]
pub struct AppArgs {
    app: String,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, clap::Args)]
pub struct SetWeightArgs {
    app: String,
    weight: i64,
    #[command(flatten)]
    remote: Remote,
}

pub async fn start(args: StartArgs, output: Output) -> Result<(), Failure> {
    let action = Action::Start(StartBody {
        version: args.version,
    });
    act(&args.remote, &args.app, action, output).await
}

pub async fn pause(args: ReasonArgs, output: Output) -> Result<(), Failure> {
    let action = Action::Pause(ReasonBody {
        reason: args.reason,
    });
    act(&args.remote, &args.app, action, output).await
}

pub async fn resume(args: AppArgs, output: Output) -> Result<(), Failure> {
    act(&args.remote, &args.app, Action::Resume, output).await
}

pub async fn promote(args: AppArgs, output: Output) -> Result<(), Failure> {
    act(&args.remote, &args.app, Action::Promote, output).await
}

pub async fn abort(args: ReasonArgs, output: Output) -> Result<(), Failure> {
    let action = Action::Abort(ReasonBody {
        reason: args.reason,
    });
    act(&args.remote, &args.app, action, output).await
}

pub async fn set_weight(args: SetWeightArgs, output: Output) -> Result<(), Failure> {
    let client = args.remote.client()?;
    let detail = client.set_weight(&args.app, args.weight).await?;
    show(detail, output);
    Ok(())
}

async fn act(remote: &Remote, app: &str, action: Action, output: Output) -> Result<(), Failure> {
    let detail = remote.client()?.act(app, &action).await?;
    show(detail, output);
    Ok(())
}

/// The app as `status APP` shows it.
fn show(detail: AppDetail, output: Output) {
    let shown = Shown::One(Box::new(detail));
    match output {
        Output::Json => shown.print_json(),
        Output::Text => emit!("{}", shown.text(Width::of_stdout())),
    }
}
