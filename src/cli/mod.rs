//! The command line: `serve`, `check`, `status`, `start`, `pause`, `resume`, `promote`, `abort`,
//! `set-weight`, `events`, `demo-backend`. Exit codes: 0 ok,
//! 1 refused or failed, 2 usage, config or state error.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::controller::Controller;
use crate::demo_backend::{self, DemoSettings};
use crate::server::{self, ServeError};
use crate::store::FileStore;
use crate::telemetry::LogFormat;

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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Where the admin API is and how to authenticate to it.
#[derive(Debug, clap::Args)]
pub struct Remote {
    /// Base URL of canary-pilot's API.
    #[arg(
        long,
        env = "CANARY_PILOT_SERVER",
        default_value = "http://127.0.0.1:9000"
    )]
    pub server: String,
    /// File holding the admin bearer token (else CANARY_PILOT_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: Traefik provider endpoint, admin API and health checks.
    Serve {
        #[arg(long, short, env = "CANARY_PILOT_CONFIG")]
        config: PathBuf,
        /// Listen on this address instead of server.listen.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a config file and print the Traefik dynamic config it would serve.
    Check {
        #[arg(long, short, env = "CANARY_PILOT_CONFIG")]
        config: PathBuf,
        /// Render from this state file instead of server.state_file (use "none" for the
        /// initial state).
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Show every app, or one, with its phase and weights.
    Status {
        app: Option<String>,
        /// Keep showing it, refreshed every --every (Ctrl-C to stop).
        #[arg(long)]
        watch: bool,
        /// Refresh period of --watch.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
        every: std::time::Duration,
        #[command(flatten)]
        remote: Remote,
    },
    /// Start a release: the new version is deployed on the idle (canary) slot.
    Start {
        app: String,
        /// Version label of the release, e.g. an image tag.
        #[arg(long)]
        version: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Hold a release at its current weight.
    Pause {
        app: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Continue a paused release from its step.
    Resume {
        app: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Skip the remaining steps: the canary takes 100 %, then becomes stable.
    Promote {
        app: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Roll back now: the canary gets no traffic.
    Abort {
        app: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show the event log (every transition), oldest first.
    Events {
        app: Option<String>,
        /// How many of the newest events.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Keep printing new events as they happen (Ctrl-C to stop).
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Make the daemon read its config file again (like SIGHUP); a bad file changes nothing.
    Reload {
        /// Also remove apps whose release is under way.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Set an app's canary weight (0..=100) by hand; an analysed release pauses.
    SetWeight {
        app: String,
        weight: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Send bounded traffic (for demos and benchmarks) and report which version answered.
    DemoTraffic {
        /// URL to request, e.g. Traefik's entry point.
        #[arg(long)]
        url: String,
        /// Host header to send (the app's rule).
        #[arg(long)]
        host: Option<String>,
        /// Extra header, `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Requests per second in total.
        #[arg(long, default_value_t = 100.0)]
        rps: f64,
        /// Concurrent connections.
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// How long to send, e.g. "60s" (at most 1h).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// How often to print a line.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
        report: std::time::Duration,
    },
    /// Run a demo backend that answers with its version; `/_control` changes its behaviour.
    DemoBackend {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        version: String,
        /// Share of requests answered with 500, 0..=1.
        #[arg(long, default_value_t = 0.0)]
        error_rate: f64,
        /// Delay before each answer, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Seed of the error draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

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
    match cli.command {
        Command::Serve { config, listen } => {
            let loaded = Config::load(&config).map_err(Failure::usage)?;
            server::serve(loaded, Some(config), listen)
                .await
                .map_err(|e| match e {
                    ServeError::State(_) => Failure::usage(e),
                    other => Failure::failed(other),
                })
        }
        Command::Check { config, state } => check(config, state),
        Command::Status {
            app,
            watch: false,
            remote,
            ..
        } => status(app, remote).await,
        Command::Status {
            app,
            watch: true,
            every,
            remote,
        } => watch(app, remote, every).await,
        Command::SetWeight {
            app,
            weight,
            remote,
        } => {
            let client = client(&remote)?;
            let view = client
                .put(
                    &format!("/api/v1/apps/{app}/weight"),
                    &json!({ "weight": weight }),
                )
                .await?;
            print_apps(&[view], true, remote.output);
            Ok(())
        }
        Command::Start {
            app,
            version,
            remote,
        } => action(&remote, &app, "start", json!({ "version": version })).await,
        Command::Pause {
            app,
            reason,
            remote,
        } => action(&remote, &app, "pause", json!({ "reason": reason })).await,
        Command::Reload { force, remote } => {
            let client = client(&remote)?;
            let v = client
                .post("/api/v1/reload", &json!({ "force": force }))
                .await?;
            match remote.output {
                Output::Json => emit!("{}", serde_json::to_string_pretty(&v).expect("serializes")),
                Output::Text => {
                    let r = &v["report"];
                    let list = |k: &str| {
                        let items: Vec<&str> = r[k]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|x| x.as_str())
                            .collect();
                        if items.is_empty() {
                            "-".to_string()
                        } else {
                            items.join(", ")
                        }
                    };
                    emit!(
                        "reloaded: added {}; removed {}; changed {}; unchanged {}",
                        list("added"),
                        list("removed"),
                        list("changed"),
                        list("unchanged")
                    );
                }
            }
            Ok(())
        }
        Command::Resume { app, remote } => action(&remote, &app, "resume", json!({})).await,
        Command::Promote { app, remote } => action(&remote, &app, "promote", json!({})).await,
        Command::Abort {
            app,
            reason,
            remote,
        } => action(&remote, &app, "abort", json!({ "reason": reason })).await,
        Command::Events {
            app,
            limit,
            follow,
            remote,
        } => {
            let client = client(&remote)?;
            let mut path = format!("/api/v1/events?limit={limit}");
            if let Some(a) = &app {
                path.push_str(&format!("&app={a}"));
            }
            let v = client.get(&path).await?;
            if follow {
                return follow_events(&client, app.as_deref(), v, remote.output).await;
            }
            match remote.output {
                Output::Json => {
                    emit!("{}", serde_json::to_string_pretty(&v).expect("serializes"))
                }
                Output::Text => {
                    for e in v["events"].as_array().into_iter().flatten() {
                        emit!("{}", event_line(e));
                    }
                }
            }
            Ok(())
        }
        Command::DemoTraffic {
            url,
            host,
            headers,
            rps,
            workers,
            duration,
            report,
        } => {
            if duration > std::time::Duration::from_secs(3600) || duration.is_zero() {
                return Err(Failure::usage(anyhow::anyhow!(
                    "--duration must be between 1ms and 1h"
                )));
            }
            if !(rps > 0.0 && rps <= 100_000.0)
                || workers == 0
                || workers > 1024
                || report.is_zero()
            {
                return Err(Failure::usage(anyhow::anyhow!(
                    "--rps must be within (0, 100000], --workers within 1..=1024, --report above 0"
                )));
            }
            let mut parsed = Vec::new();
            for h in headers {
                let (k, v) = h.split_once(':').ok_or_else(|| {
                    Failure::usage(anyhow::anyhow!("--header {h:?} must be \"Name: value\""))
                })?;
                parsed.push((k.trim().to_string(), v.trim().to_string()));
            }
            let settings = crate::demo_traffic::TrafficSettings {
                url,
                host,
                headers: parsed,
                rps,
                workers,
                duration,
                report,
            };
            let total = crate::demo_traffic::run(settings, |t, c| {
                emit!(
                    "t={:>5.1}s  {}",
                    t.as_secs_f64(),
                    crate::demo_traffic::summarize(c)
                );
            })
            .await;
            emit!("total    {}", crate::demo_traffic::summarize(&total));
            Ok(())
        }
        Command::DemoBackend {
            listen,
            version,
            error_rate,
            latency_ms,
            seed,
        } => {
            if !(0.0..=1.0).contains(&error_rate) {
                return Err(Failure::usage(anyhow::anyhow!(
                    "--error-rate {error_rate} must be within 0..=1"
                )));
            }
            demo_backend::run(
                listen,
                DemoSettings {
                    version,
                    error_rate,
                    latency_ms,
                    seed,
                },
            )
            .await
            .map_err(Failure::failed)
        }
    }
}

fn check(config_path: PathBuf, state: Option<PathBuf>) -> Result<(), Failure> {
    let config = std::sync::Arc::new(Config::load(&config_path).map_err(Failure::usage)?);
    let state_path = state.unwrap_or_else(|| config.server.state_file.clone());
    let document = if state_path.as_os_str() == "none" || !state_path.exists() {
        eprintln!(
            "config ok; rendering the initial state (no state file at {})",
            state_path.display()
        );
        let states = config
            .apps
            .values()
            .map(|a| (a.name.clone(), crate::rollout::AppState::initial(a, 0)))
            .collect();
        crate::provider::render(&config, &states)
    } else {
        // Loading through the controller applies the same checks as `serve`, but must not write:
        // read the file and reconcile in memory.
        let store = crate::store::MemStore::default();
        let loaded =
            crate::store::Store::load(&FileStore::new(&state_path)).map_err(Failure::usage)?;
        if let Some(s) = loaded {
            crate::store::Store::save(&store, &s).map_err(Failure::failed)?;
        }
        let controller =
            Controller::load(config.clone(), std::sync::Arc::new(store)).map_err(Failure::usage)?;
        eprintln!("config ok; rendering the state in {}", state_path.display());
        controller.published().document.to_vec()
    };
    let value: Value = serde_json::from_slice(&document).expect("rendered JSON parses");
    emit!(
        "{}",
        serde_json::to_string_pretty(&value).expect("serializes")
    );
    Ok(())
}

/// `status --watch`: on a terminal, the screen is redrawn every period; otherwise a line is
/// printed only when an app's status line changes.
async fn watch(
    app: Option<String>,
    remote: Remote,
    every: std::time::Duration,
) -> Result<(), Failure> {
    use std::io::IsTerminal;
    let client = client(&remote)?;
    let tty = std::io::stdout().is_terminal();
    let mut last: Vec<String> = Vec::new();
    let mut ticker = tokio::time::interval(every.max(std::time::Duration::from_millis(100)));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let fetched = match &app {
            Some(name) => client
                .get(&format!("/api/v1/apps/{name}"))
                .await
                .map(|v| vec![v]),
            None => client
                .get("/api/v1/apps")
                .await
                .map(|v| v["apps"].as_array().cloned().unwrap_or_default()),
        };
        let now = crate::clock::rfc3339_seconds_now();
        let lines: Vec<String> = match &fetched {
            Ok(apps) => apps.iter().map(status_line).collect(),
            Err(e) => vec![format!("unreachable: {e}")],
        };
        if tty {
            let mut screen = format!(
                "\x1b[2J\x1b[Hcanary-pilot status  {}  {now}  (Ctrl-C to stop)\n\n",
                remote.server
            );
            for (i, l) in lines.iter().enumerate() {
                screen.push_str(l);
                screen.push('\n');
                if let (Some(_), Ok(apps)) = (&app, &fetched) {
                    screen.push_str(&status_details(&apps[i]));
                }
            }
            emit!("{}", screen.trim_end());
        } else if lines != last {
            for l in lines.iter().filter(|l| !last.contains(l)) {
                emit!("{now} {l}");
            }
        }
        last = lines;
    }
}

/// `events --follow`: prints the events already fetched, then new ones as they come.
async fn follow_events(
    client: &Client,
    app: Option<&str>,
    first: Value,
    output: Output,
) -> Result<(), Failure> {
    let print = |e: &Value| match output {
        Output::Json => emit!("{}", e),
        Output::Text => emit!("{}", event_line(e)),
    };
    let mut seen: Vec<Value> = first["events"].as_array().cloned().unwrap_or_default();
    seen.iter().for_each(print);
    let mut path = "/api/v1/events?limit=1000".to_string();
    if let Some(a) = app {
        path.push_str(&format!("&app={a}"));
    }
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let Ok(v) = client.get(&path).await else {
            continue;
        };
        let events = v["events"].as_array().cloned().unwrap_or_default();
        // New events are those after the last one already printed.
        let start = match seen.last() {
            Some(last) => events
                .iter()
                .rposition(|e| e == last)
                .map(|i| i + 1)
                .unwrap_or(0),
            None => 0,
        };
        for e in &events[start..] {
            print(e);
        }
        if start < events.len() {
            seen = events;
        }
    }
}

async fn action(remote: &Remote, app: &str, action: &str, body: Value) -> Result<(), Failure> {
    let client = client(remote)?;
    let body = match body {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    };
    let view = client
        .post(&format!("/api/v1/apps/{app}/{action}"), &body)
        .await?;
    print_apps(&[view], true, remote.output);
    Ok(())
}

/// One line per event: time, app, kind, phases, weight, version, reason.
pub fn event_line(e: &Value) -> String {
    format!(
        "{}  {:<12} {:<16} {} -> {}  canary {:>3}%  {}  {}",
        e["time"].as_str().unwrap_or("?"),
        e["app"].as_str().unwrap_or("?"),
        e["kind"].as_str().unwrap_or("?"),
        e["from"].as_str().unwrap_or("?"),
        e["to"].as_str().unwrap_or("?"),
        e["weight"].as_u64().unwrap_or(0),
        e["version"].as_str().unwrap_or("-"),
        e["reason"].as_str().unwrap_or(""),
    )
}

fn client(remote: &Remote) -> Result<Client, Failure> {
    let token = match &remote.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    Failure::usage(anyhow::anyhow!(
                        "cannot read --token-file {}: {e}",
                        path.display()
                    ))
                })?
                .trim()
                .to_string(),
        ),
        None => std::env::var("CANARY_PILOT_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    };
    Ok(Client::new(&remote.server, token))
}

async fn status(app: Option<String>, remote: Remote) -> Result<(), Failure> {
    let client = client(&remote)?;
    let one = app.is_some();
    let apps = match app {
        Some(name) => vec![client.get(&format!("/api/v1/apps/{name}")).await?],
        None => client.get("/api/v1/apps").await?["apps"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    print_apps(&apps, one, remote.output);
    Ok(())
}

/// Prints apps; in JSON, one app (`status APP`, `set-weight`) is an object and a listing is
/// `{"apps": [...]}`, whatever the count.
fn print_apps(apps: &[Value], one: bool, output: Output) {
    match output {
        Output::Json => {
            let v = if one {
                apps[0].clone()
            } else {
                json!({ "apps": apps })
            };
            emit!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
        }
        Output::Text => {
            for a in apps {
                emit!("{}", status_line(a));
                if one {
                    let details = status_details(a);
                    if !details.is_empty() {
                        emit!("{}", details.trim_end());
                    }
                }
            }
        }
    }
}

/// The detail under one app's status line: why it is where it is, and the last analyses with
/// every check's figures.
pub fn status_details(app: &Value) -> String {
    let mut out = String::new();
    if let Some(r) = app["reason"].as_str() {
        out.push_str(&format!("  reason: {r}\n"));
    }
    for a in app["analyses"].as_array().into_iter().flatten().take(3) {
        out.push_str(&format!(
            "  analysis at {}% (step {}, {:.0}s window): {} - {}\n",
            a["weight"].as_u64().unwrap_or(0),
            a["step"].as_u64().unwrap_or(0),
            a["window_seconds"].as_f64().unwrap_or(0.0),
            a["verdict"].as_str().unwrap_or("?"),
            a["reason"].as_str().unwrap_or(""),
        ));
        for c in a["checks"].as_array().into_iter().flatten() {
            let num = |v: &Value| {
                v.as_f64()
                    .map(|x| format!("{x:.4}"))
                    .unwrap_or_else(|| "-".into())
            };
            out.push_str(&format!(
                "    {:<14} canary {:>10}  stable {:>10}  limit {:<40} {:<12} {}\n",
                c["check"].as_str().unwrap_or("?"),
                num(&c["canary"]),
                num(&c["stable"]),
                c["limit"].as_str().unwrap_or(""),
                c["verdict"].as_str().unwrap_or("?"),
                c["reason"].as_str().unwrap_or(""),
            ));
        }
    }
    out
}

/// One line per app: name, phase, a bar of the canary weight, step, which slot is where, and
/// the last verdict.
pub fn status_line(app: &Value) -> String {
    let canary = app["weights"]["canary"].as_u64().unwrap_or(0);
    let filled = (canary as usize * 20 + 50) / 100;
    let bar: String = "#".repeat(filled) + &".".repeat(20 - filled);
    let step = match app["step"]["current"].as_u64() {
        Some(n) if n > 0 => format!("step {}/{}", n, app["step"]["total"].as_u64().unwrap_or(0)),
        _ => "-".to_string(),
    };
    let verdict = match app["last_analysis"]["verdict"].as_str() {
        Some(v) => format!("  last: {v}"),
        None => String::new(),
    };
    format!(
        "{:<16} {:<12} [{bar}] canary {:>3}%  {step:<9} stable={} ({})  canary={} ({}){verdict}",
        app["name"].as_str().unwrap_or("?"),
        app["phase"].as_str().unwrap_or("?"),
        canary,
        app["stable"]["slot"].as_str().unwrap_or("?"),
        app["stable"]["version"].as_str().unwrap_or("-"),
        app["canary"]["slot"].as_str().unwrap_or("?"),
        app["canary"]["version"].as_str().unwrap_or("-"),
    )
}
