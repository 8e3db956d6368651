//! `wait`: block until an app's release ends, for scripts and CI: exit 0 when it was promoted,
//! 1 when it was rolled back, 3 when `--timeout` passed first. A line whenever the release moves.

use std::time::{Duration, Instant};

use super::remote::{json_text, Remote};
use super::status::status_line;
use super::{Failure, Output, Width};
use crate::api::views::AppView;
use crate::rollout::Phase;

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    app: String,
    /// Give up after this long (e.g. "15m"): exit code 3. Unset: wait as long as it takes.
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// How often to look.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    every: Duration,
    /// Wait for the release of this version (e.g. the one `deploy` started): releases of other
    /// versions, and an idle app, are waited through.
    #[arg(long)]
    version: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// Exit code of `wait` when the timeout passed before the release ended.
pub const TIMED_OUT: u8 = 3;

/// How a look at the app ends the wait, if it does.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Promoted,
    RolledBack,
    /// No release to wait for: the app is idle.
    NoRelease,
}

/// What `app`'s phase says about the release: `None` while it is under way (paused included:
/// an operator may resume it).
pub fn outcome(app: &AppView) -> Option<Outcome> {
    match app.phase {
        Phase::Succeeded => Some(Outcome::Promoted),
        Phase::RolledBack => Some(Outcome::RolledBack),
        Phase::Idle => Some(Outcome::NoRelease),
        Phase::Progressing | Phase::Paused | Phase::Promoting => None,
    }
}

/// What `app` says about the release of `version`: `None` until that release has ended.
pub fn outcome_of(app: &AppView, version: &str) -> Option<Outcome> {
    let is = |v: &Option<String>| v.as_deref() == Some(version);
    match app.phase {
        Phase::Succeeded if is(&app.stable.version) => Some(Outcome::Promoted),
        Phase::RolledBack if is(&app.canary.version) => Some(Outcome::RolledBack),
        _ => None,
    }
}

/// What a progress line shows changed: phase, step and weight.
fn moved(a: &AppView, b: &AppView) -> bool {
    (a.phase, a.step.current, a.weights.canary) != (b.phase, b.step.current, b.weights.canary)
}

pub async fn run(args: WaitArgs, output: Output) -> Result<(), Failure> {
    let client = args.remote.client()?;
    wait(
        &client,
        &args.app,
        args.version.as_deref(),
        args.timeout,
        args.every,
        output,
    )
    .await
}

/// Waits for `app`'s release (of `version`, if given) to end; see [`run`].
pub async fn wait(
    client: &crate::client::Client,
    app_name: &str,
    version: Option<&str>,
    timeout: Option<Duration>,
    every: Duration,
    output: Output,
) -> Result<(), Failure> {
    let started = Instant::now();
    let mut last: Option<AppView> = None;
    loop {
        let app = client.app(app_name).await?.app;
        if last.as_ref().is_none_or(|l| moved(l, &app)) {
            match output {
                Output::Text => emit!("{}", status_line(&app, Width::of_stdout())),
                Output::Json => emit!("{}", json_text(&app, false)),
            }
        }
        let ended = match version {
            Some(v) => outcome_of(&app, v),
            None => outcome(&app),
        };
        let version = version
            .map(str::to_string)
            .or_else(|| app.canary.version.clone())
            .unwrap_or_else(|| "-".into());
        match ended {
            Some(Outcome::Promoted) => return Ok(()),
            Some(Outcome::RolledBack) => {
                return Err(Failure::failed(anyhow::anyhow!(
                    "release {version} of {} was rolled back: {}",
                    app_name,
                    app.reason.as_deref().unwrap_or("no reason recorded")
                )))
            }
            Some(Outcome::NoRelease) => {
                return Err(Failure::failed(anyhow::anyhow!(
                    "no release of {} to wait for: it is idle (start one first)",
                    app_name
                )))
            }
            None => {}
        }
        if let Some(limit) = timeout {
            if started.elapsed() >= limit {
                return Err(Failure {
                    code: TIMED_OUT,
                    error: anyhow::anyhow!(
                        "release {version} of {} still {} after {}",
                        app_name,
                        app.phase.as_str(),
                        humantime::format_duration(limit)
                    ),
                });
            }
        }
        last = Some(app);
        tokio::time::sleep(every.max(Duration::from_millis(100))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::views::AppDetail;

    #[test]
    fn only_an_ended_release_or_none_ends_the_wait() {
        let detail: AppDetail =
            serde_json::from_str(include_str!("../../tests/fixtures/status-rolled-back.json"))
                .expect("the fixture is an AppDetail");
        let mut app = detail.app;
        for (phase, expected) in [
            (Phase::Succeeded, Some(Outcome::Promoted)),
            (Phase::RolledBack, Some(Outcome::RolledBack)),
            (Phase::Idle, Some(Outcome::NoRelease)),
            (Phase::Progressing, None),
            (Phase::Paused, None),
            (Phase::Promoting, None),
        ] {
            app.phase = phase;
            assert_eq!(outcome(&app), expected, "{phase:?}");
        }
        let mut next = app.clone();
        assert!(!moved(&app, &next));
        next.weights.canary = 25;
        assert!(moved(&app, &next));
    }
}
