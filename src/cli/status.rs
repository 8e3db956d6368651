//! `canary-pilot status [APP] [--watch]`: a line per app with a bar of the canary weight; for
//! one app, also why it is where it is and the last analyses. The text fits the terminal's
//! width ([`Width`]); a finished release says how it ended and why, not the verdict of its last
//! window.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use serde_json::json;

use super::remote::{json_text, print_json, Output, Remote};
use super::{Failure, Width};
use crate::api::views::{AnalysisView, AppDetail, AppList, AppView, CheckView};
use crate::client::{Client, ClientError};
use crate::rollout::Phase;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    app: Option<String>,
    /// Keep showing it, refreshed every --every (Ctrl-C to stop). With --output json, one
    /// JSON line per app whenever it changes.
    #[arg(long)]
    watch: bool,
    /// Refresh period of --watch.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    every: Duration,
    #[command(flatten)]
    remote: Remote,
}

pub async fn run(args: StatusArgs, output: Output) -> Result<(), Failure> {
    let client = args.remote.client()?;
    if args.watch {
        return watch(
            &client,
            args.app.as_deref(),
            &args.remote,
            args.every,
            output,
        )
        .await;
    }
    let shown = Shown::fetch(&client, args.app.as_deref()).await?;
    match output {
        Output::Json => shown.print_json(),
        Output::Text => {
            let text = shown.text(Width::of_stdout());
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

    /// A status per app; under one app, its reason and last analyses.
    pub fn text(&self, width: Width) -> String {
        match self {
            Shown::One(detail) => {
                // How a finished release ended is said in full below the line.
                let outcome = !finished(detail.app.phase);
                let mut out = line(&detail.app, width, outcome);
                out.push('\n');
                out.push_str(&status_details(detail, width));
                out.trim_end().to_string()
            }
            Shown::All(apps) => apps
                .iter()
                .map(|a| status_line(a, width))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    fn apps(&self) -> Vec<&AppView> {
        match self {
            Shown::One(detail) => vec![&detail.app],
            Shown::All(apps) => apps.iter().collect(),
        }
    }
}

/// `status --watch`: on a terminal, the screen is redrawn every period at the terminal's
/// width; otherwise an app's status is printed only when it changes, as text or, with
/// `--output json`, as one JSON object (an app's view) per line.
async fn watch(
    client: &Client,
    app: Option<&str>,
    remote: &Remote,
    every: Duration,
    output: Output,
) -> Result<(), Failure> {
    let tty = output == Output::Text && std::io::stdout().is_terminal();
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let fetched = Shown::fetch(client, app).await;
        let now = crate::clock::rfc3339_seconds_now();
        if tty {
            let width = Width::of_stdout();
            let body = match &fetched {
                Ok(shown) => shown.text(width),
                Err(e) => width.wrap("unreachable: ", &e.to_string(), 2).join("\n"),
            };
            let mut title = format!(
                "canary-pilot status  {}  {now}  (Ctrl-C to stop)",
                remote.server
            );
            if !width.fits(&title) {
                // The time of day is enough on a narrow screen.
                let time = now.split('T').nth(1).unwrap_or(&now);
                title = format!("canary-pilot  {}  {time}  (Ctrl-C to stop)", remote.server);
            }
            let body = fit_rows(&body, Width::rows_of_stdout().map(|r| r.saturating_sub(3)));
            let screen = format!("\x1b[2J\x1b[H{}\n\n{body}", width.cut(&title));
            emit!("{}", screen.trim_end());
            continue;
        }
        // Piped: what changed, keyed by app ("" for the server being unreachable).
        let records: BTreeMap<String, String> = match &fetched {
            Ok(shown) => shown
                .apps()
                .into_iter()
                .map(|a| {
                    let record = match output {
                        Output::Json => json_text(a, false),
                        Output::Text => status_line(a, Width::of_stdout()),
                    };
                    (a.name.clone(), record)
                })
                .collect(),
            Err(e) => {
                let record = match output {
                    Output::Json => {
                        json!({"error": "unreachable", "detail": e.to_string()}).to_string()
                    }
                    Output::Text => format!("unreachable: {e}"),
                };
                BTreeMap::from([(String::new(), record)])
            }
        };
        for (key, record) in &records {
            if last.get(key) != Some(record) {
                match output {
                    Output::Json => emit!("{record}"),
                    Output::Text => emit!("{now} {record}"),
                }
            }
        }
        last = records;
    }
}

/// The first lines of `body` that fit in `rows` (all of them without a limit), so that a
/// redrawn screen never scrolls its title away; the last row says what was left out.
fn fit_rows(body: &str, rows: Option<usize>) -> String {
    let lines: Vec<&str> = body.lines().collect();
    match rows {
        Some(rows) if lines.len() > rows && rows >= 2 => {
            let mut kept = lines[..rows - 1].join("\n");
            let left = lines.len() - (rows - 1);
            kept.push_str(&format!(
                "\n  ... {left} more lines: a taller terminal shows them"
            ));
            kept
        }
        _ => body.to_string(),
    }
}

/// Whether a release has ended (how and why is its reason).
fn finished(phase: Phase) -> bool {
    matches!(phase, Phase::Succeeded | Phase::RolledBack)
}

/// The detail under one app's status: why it is where it is (for a finished release, how it
/// ended and when), and the last analyses with every check's figures.
pub fn status_details(detail: &AppDetail, width: Width) -> String {
    let mut lines = Vec::new();
    let app = &detail.app;
    if let Some(r) = &app.reason {
        if finished(app.phase) {
            let when = detail
                .events
                .iter()
                .rev()
                .find(|e| e.to == app.phase)
                .map(|e| format!(" at {}", e.time))
                .unwrap_or_default();
            lines.extend(width.wrap(&format!("  ended{when}: "), r, 4));
        } else {
            lines.extend(width.wrap("  reason: ", r, 4));
        }
    }
    for f in &app.traefik_rejected {
        let head = format!("  Traefik {} {} {}: ", f.status, f.kind, f.name);
        lines.extend(width.wrap(&head, &f.errors.join("; "), 4));
    }
    if let Some(d) = &app.dry_run {
        let version = d.version.as_deref().unwrap_or("-");
        let step = match d.step.current {
            0 => String::new(),
            n => format!(" at step {}/{}", n, d.step.total),
        };
        let head = format!(
            "  dry run of {version}: {}{step}, would serve the canary {}%: ",
            d.phase.as_str(),
            d.weight
        );
        lines.extend(width.wrap(&head, d.reason.as_deref().unwrap_or(""), 4));
    }
    for a in detail.analyses.iter().take(3) {
        lines.extend(analysis_lines(a, width));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn analysis_lines(a: &AnalysisView, width: Width) -> Vec<String> {
    let head = format!(
        "  analysis at {}% (step {}, {:.0}s window): {} - ",
        a.weight,
        a.step,
        a.window_seconds,
        a.verdict.as_str(),
    );
    let mut lines = width.wrap(&head, &a.reason, 4);
    for c in &a.checks {
        lines.extend(check_lines(c, width));
    }
    lines
}

fn check_lines(c: &CheckView, width: Width) -> Vec<String> {
    let num = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
    let whole = format!(
        "    {:<14} canary {:>10}  stable {:>10}  limit {:<40} {:<12} {}",
        c.check,
        num(c.canary),
        num(c.stable),
        c.limit,
        c.verdict.as_str(),
        c.reason,
    );
    if width.fits(&whole) {
        return vec![whole.trim_end().to_string()];
    }
    // Narrow: the figures on one line, the limit and the reason each on their own.
    let mut lines = vec![width.cut(&format!(
        "    {:<14} {:<12} canary {}  stable {}",
        c.check,
        c.verdict.as_str(),
        num(c.canary),
        num(c.stable),
    ))];
    lines.extend(width.wrap("      limit ", &c.limit, 8));
    if !c.reason.is_empty() {
        lines.extend(width.wrap("      ", &c.reason, 8));
    }
    lines
}

/// An app's status: name, phase, a bar of the canary weight, step, which slot is where, and the
/// last verdict, or for a finished release how it ended. On one line when it fits the width,
/// else on two (each cut to the width).
/// A slot's version label; with the one its tasks run when that differs (a Swarm-managed app).
fn slot_version(s: &crate::api::views::SlotView) -> String {
    let label = s.version.clone().unwrap_or_else(|| "-".into());
    match &s.runs {
        Some(runs) if s.version.as_ref() != Some(runs) => format!("{label}; its tasks run {runs}"),
        _ => label,
    }
}

pub fn status_line(app: &AppView, width: Width) -> String {
    line(app, width, true)
}

/// [`status_line`], with or without how a finished release ended.
fn line(app: &AppView, width: Width, outcome: bool) -> String {
    let canary = app.weights.canary;
    let bar = |cells: usize| {
        let filled = (usize::from(canary.min(100)) * cells + 50) / 100;
        "#".repeat(filled) + &".".repeat(cells - filled)
    };
    let step = match app.step.current {
        0 => "-".to_string(),
        n => format!("step {}/{}", n, app.step.total),
    };
    let tail = match (&app.last_analysis, &app.reason) {
        (_, Some(reason)) if finished(app.phase) && outcome => format!("ended: {reason}"),
        _ if finished(app.phase) => String::new(),
        (Some(a), _) => format!("last: {}", a.verdict.as_str()),
        (None, _) => String::new(),
    };
    let tail = match app.traefik_rejected.len() {
        0 => tail,
        n if tail.is_empty() => format!("Traefik rejects {n}"),
        n => format!("{tail}  Traefik rejects {n}"),
    };
    let tail = match &app.dry_run {
        Some(d) if tail.is_empty() => format!("dry run: {} {}%", d.phase.as_str(), d.weight),
        Some(d) => format!("{tail}  dry run: {} {}%", d.phase.as_str(), d.weight),
        None => tail,
    };
    let slots = format!(
        "stable={} ({})  canary={} ({})",
        app.stable.slot,
        slot_version(&app.stable),
        app.canary.slot,
        slot_version(&app.canary),
    );
    let head = format!(
        "{:<16} {:<12} [{}] canary {:>3}%  {step:<9} ",
        app.name,
        app.phase.as_str(),
        bar(20),
        canary,
    );
    let whole = if tail.is_empty() {
        format!("{head}{slots}")
    } else {
        format!("{head}{slots}  {tail}")
    };
    if width.fits(&whole) {
        return whole;
    }
    let first = format!(
        "{:<12} {:<11} [{}] {:>3}%  {step}",
        app.name,
        app.phase.as_str(),
        bar(20),
        canary,
    );
    let second = if tail.is_empty() {
        format!("  {slots}")
    } else {
        format!("  {slots}  {tail}")
    };
    format!("{}\n{}", width.cut(first.trim_end()), width.cut(&second))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolled_back() -> AppDetail {
        serde_json::from_str(include_str!("../../tests/fixtures/status-rolled-back.json"))
            .expect("the fixture is an AppDetail")
    }

    #[test]
    fn a_screen_keeps_to_the_terminals_rows() {
        let body = (1..=10)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(fit_rows(&body, None), body);
        assert_eq!(fit_rows(&body, Some(10)), body);
        let fitted = fit_rows(&body, Some(4));
        assert_eq!(
            fitted,
            "line 1\nline 2\nline 3\n  ... 7 more lines: a taller terminal shows them"
        );
    }

    #[test]
    fn a_dry_run_is_shown_beside_the_served_state() {
        let mut d = rolled_back();
        d.app.phase = Phase::Idle;
        d.app.reason = None;
        d.app.dry_run = Some(crate::api::views::DryRunView {
            phase: Phase::Progressing,
            version: Some("v4".into()),
            weight: 25,
            step: crate::api::views::StepView {
                current: 2,
                total: 3,
                weights: vec![10, 25, 50, 100],
            },
            reason: Some("dry run, nothing served changed: advanced to 25%".into()),
            last_analysis: None,
        });
        let line = status_line(&d.app, Width::UNLIMITED);
        assert!(line.ends_with("  dry run: progressing 25%"), "{line}");
        let details = status_details(&d, Width::UNLIMITED);
        assert!(
            details.starts_with(
                "  dry run of v4: progressing at step 2/3, would serve the canary 25%: dry run, \
                 nothing served changed: advanced to 25%\n"
            ),
            "{details}"
        );
    }

    #[test]
    fn a_wide_status_is_one_line_in_its_columns() {
        let d = rolled_back();
        let line = status_line(&d.app, Width::UNLIMITED);
        assert_eq!(
            line,
            "api              rolled_back  [....................] canary   0%  -         \
             stable=green (v2)  canary=blue (v3)  ended: error_ratio: canary 35.00% is above \
             the 20.00% ceiling (P = 0.9968)"
        );
    }

    #[test]
    fn a_narrow_status_takes_two_lines_within_the_width() {
        let mut d = rolled_back();
        d.app.phase = Phase::Progressing;
        d.app.weights.canary = 25;
        d.app.step.current = 2;
        for columns in [40, 60, 80, 100] {
            let line = status_line(&d.app, Width::columns(columns));
            let lines: Vec<&str> = line.lines().collect();
            assert_eq!(lines.len(), 2, "{line}");
            assert!(lines.iter().all(|l| l.chars().count() <= columns), "{line}");
            assert!(lines[0].starts_with("api"), "{line}");
        }
        let line = status_line(&d.app, Width::columns(80));
        assert!(
            line.contains("[#####...............]  25%  step 2/3"),
            "{line}"
        );
        assert!(
            line.ends_with("stable=green (v2)  canary=blue (v3)  last: critical"),
            "{line}"
        );
    }

    #[test]
    fn a_version_label_its_tasks_do_not_run_is_shown_as_such() {
        let mut d = rolled_back();
        d.app.canary.runs = Some("v2".into());
        d.app.stable.runs = Some("v2".into());
        let line = status_line(&d.app, Width::UNLIMITED);
        assert!(
            line.contains("stable=green (v2)  canary=blue (v3; its tasks run v2)"),
            "{line}"
        );
    }

    #[test]
    fn a_finished_release_shows_its_outcome_once() {
        let d = rolled_back();
        let text = Shown::One(Box::new(d)).text(Width::UNLIMITED);
        assert_eq!(
            // the ended line, the analysis and its error_ratio check: not the status line
            text.matches("35.00% is above the 20.00% ceiling").count(),
            3,
            "{text}"
        );
        let mut lines = text.lines();
        assert!(!lines.next().unwrap().contains("ended"), "{text}");
        assert_eq!(
            lines.next().unwrap(),
            "  ended at 2026-12-01T18:42:17.206Z: error_ratio: canary 35.00% is above the 20.00% ceiling (P = 0.9968)"
        );
    }
}
