//! `canary-pilot status [APP] [--watch]`: one line per app with a bar of the canary weight;
//! for one app, also why it is where it is and the last analyses.

use std::io::IsTerminal;
use std::time::Duration;

use super::remote::{print_json, Output, Remote};
use super::Failure;
use crate::api::views::{AnalysisView, AppDetail, AppList, AppView, CheckView};
use crate::client::{Client, ClientError};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    app: Option<String>,
    /// Keep showing it, refreshed every --every (Ctrl-C to stop).
    #[arg(long)]
    watch: bool,
    /// Refresh period of --watch.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    every: Duration,
    #[command(flatten)]
    remote: Remote,
}

pub async fn run(args: StatusArgs) -> Result<(), Failure> {
    let client = args.remote.client()?;
    if args.watch {
        return watch(&client, args.app.as_deref(), &args.remote, args.every).await;
    }
    let shown = Shown::fetch(&client, args.app.as_deref()).await?;
    match args.remote.output {
        Output::Json => shown.print_json(),
        Output::Text => {
            let text = shown.text();
            if !text.is_empty() {
                emit!("{text}");
            }
        }
    }
    Ok(())
}

/// What `status` shows: one app with its details, or every app.
pub enum Shown {
    One(Box<AppDetail>),
    All(Vec<AppView>),
}

impl Shown {
    async fn fetch(client: &Client, app: Option<&str>) -> Result<Shown, ClientError> {
        Ok(match app {
            Some(name) => Shown::One(Box::new(client.app(name).await?)),
            None => Shown::All(client.apps().await?),
        })
    }

    /// In JSON, one app is an object and a listing is `{"apps": [...]}`, whatever the count.
    pub fn print_json(self) {
        match self {
            Shown::One(detail) => print_json(&*detail),
            Shown::All(apps) => print_json(&AppList { apps }),
        }
    }

    /// A line per app; under one app, its reason and last analyses.
    pub fn text(&self) -> String {
        match self {
            Shown::One(detail) => {
                let mut out = status_line(&detail.app);
                out.push('\n');
                out.push_str(&status_details(detail));
                out.trim_end().to_string()
            }
            Shown::All(apps) => apps.iter().map(status_line).collect::<Vec<_>>().join("\n"),
        }
    }

    fn lines(&self) -> Vec<String> {
        match self {
            Shown::One(detail) => vec![status_line(&detail.app)],
            Shown::All(apps) => apps.iter().map(status_line).collect(),
        }
    }
}

/// `status --watch`: on a terminal, the screen is redrawn every period; otherwise a line is
/// printed only when an app's status line changes.
async fn watch(
    client: &Client,
    app: Option<&str>,
    remote: &Remote,
    every: Duration,
) -> Result<(), Failure> {
    let tty = std::io::stdout().is_terminal();
    let mut last: Vec<String> = Vec::new();
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let fetched = Shown::fetch(client, app).await;
        let now = crate::clock::rfc3339_seconds_now();
        let lines = match &fetched {
            Ok(shown) => shown.lines(),
            Err(e) => vec![format!("unreachable: {e}")],
        };
        if tty {
            let body = match &fetched {
                Ok(shown) => shown.text(),
                Err(_) => lines.join("\n"),
            };
            let screen = format!(
                "\x1b[2J\x1b[Hcanary-pilot status  {}  {now}  (Ctrl-C to stop)\n\n{body}",
                remote.server
            );
            emit!("{}", screen.trim_end());
        } else {
            for l in lines.iter().filter(|l| !last.contains(l)) {
                emit!("{now} {l}");
            }
        }
        last = lines;
    }
}

/// The detail under one app's status line: why it is where it is, and the last analyses with
/// every check's figures.
pub fn status_details(detail: &AppDetail) -> String {
    let mut out = String::new();
    if let Some(r) = &detail.app.reason {
        out.push_str(&format!("  reason: {r}\n"));
    }
    for a in detail.analyses.iter().take(3) {
        out.push_str(&analysis_lines(a));
    }
    out
}

fn analysis_lines(a: &AnalysisView) -> String {
    let mut out = format!(
        "  analysis at {}% (step {}, {:.0}s window): {} - {}\n",
        a.weight,
        a.step,
        a.window_seconds,
        a.verdict.as_str(),
        a.reason,
    );
    for c in &a.checks {
        out.push_str(&check_line(c));
    }
    out
}

fn check_line(c: &CheckView) -> String {
    let num = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
    format!(
        "    {:<14} canary {:>10}  stable {:>10}  limit {:<40} {:<12} {}\n",
        c.check,
        num(c.canary),
        num(c.stable),
        c.limit,
        c.verdict.as_str(),
        c.reason,
    )
}

/// One line per app: name, phase, a bar of the canary weight, step, which slot is where, and
/// the last verdict.
pub fn status_line(app: &AppView) -> String {
    let canary = app.weights.canary;
    let filled = (usize::from(canary.min(100)) * 20 + 50) / 100;
    let bar: String = "#".repeat(filled) + &".".repeat(20 - filled);
    let step = match app.step.current {
        0 => "-".to_string(),
        n => format!("step {}/{}", n, app.step.total),
    };
    let verdict = match &app.last_analysis {
        Some(a) => format!("  last: {}", a.verdict.as_str()),
        None => String::new(),
    };
    let version = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let dry_run = match &app.dry_run {
        Some(d) => format!(
            "  dry run {} {}: would be {} at {}%{}",
            version(&d.version),
            d.phase.as_str(),
            match d.step.current {
                0 => "done".to_string(),
                n => format!("step {}/{}", n, d.step.total),
            },
            d.weight,
            d.last_analysis
                .as_ref()
                .map(|a| format!(", last: {}", a.verdict.as_str()))
                .unwrap_or_default(),
        ),
        None => String::new(),
    };
    format!(
        "{:<16} {:<12} [{bar}] canary {:>3}%  {step:<9} stable={} ({})  canary={} ({}){verdict}{dry_run}",
        app.name,
        app.phase.as_str(),
        canary,
        app.stable.slot,
        version(&app.stable.version),
        app.canary.slot,
        version(&app.canary.version),
    )
}
