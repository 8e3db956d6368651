//! `deploy`: release an image on a Swarm-managed app without editing its stack. canary-pilot
//! updates the app's service (as `docker service update --image` would) and starts the release
//! once its tasks run the image; with `--wait`, the command then waits like `wait`.

use std::time::Duration;

use super::remote::{json_text, Remote};
use super::{wait, Failure, Output};

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    app: String,
    /// The image the app's service is to run, e.g. registry.example.com/shop/api:v4. Its tag
    /// (or digest) is the release's version.
    #[arg(long)]
    image: String,
    /// Then wait until the release of that version ends: exit 0 when promoted, 1 when rolled
    /// back, 3 when --timeout passes first.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this long (e.g. "15m").
    #[arg(long, value_parser = humantime::parse_duration, requires = "wait")]
    timeout: Option<Duration>,
    #[command(flatten)]
    remote: Remote,
}

pub async fn run(args: DeployArgs, output: Output) -> Result<(), Failure> {
    let client = args.remote.client()?;
    let done = client.deploy(&args.app, &args.image).await?;
    match output {
        Output::Text => emit!(
            "{}: service {} runs {} now; the release of {} starts once its tasks run it",
            done.app,
            done.service,
            done.image,
            done.version
        ),
        Output::Json => emit!("{}", json_text(&done, false)),
    }
    if !args.wait {
        return Ok(());
    }
    wait::wait(
        &client,
        &args.app,
        Some(&done.version),
        args.timeout,
        Duration::from_secs(1),
        output,
    )
    .await
}
