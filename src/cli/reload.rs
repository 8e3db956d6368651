//! `canary-pilot reload [--force]`: make the daemon read its config file again.

use super::remote::{print_json, Output, Remote};
use super::Failure;
use crate::api::views::ReloadView;

#[derive(Debug, clap::Args)]
pub struct ReloadArgs {
    /// Also remove apps whose release is under way.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    remote: Remote,
}

pub async fn run(args: ReloadArgs, output: Output) -> Result<(), Failure> {
    let answer = args.remote.client()?.reload(args.force).await?;
    match output {
        Output::Json => print_json(&answer),
        Output::Text => emit!("{}", report_line(&answer.report)),
    }
    Ok(())
}

fn report_line(r: &ReloadView) -> String {
    let list = |items: &[String]| {
        if items.is_empty() {
            "-".to_string()
        } else {
            items.join(", ")
        }
    };
    format!(
        "reloaded: settings {}; added {}; removed {}; changed {}; unchanged {}",
        list(&r.settings),
        list(&r.added),
        list(&r.removed),
        list(&r.changed),
        list(&r.unchanged)
    )
}
