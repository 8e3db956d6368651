//! `canary-pilot demo-traffic` and `canary-pilot demo-backend`, for demos, tests and
//! benchmarks.

use std::net::SocketAddr;
use std::time::Duration;

use super::Failure;
use crate::demo_backend::{self, DemoSettings};
use crate::demo_traffic::{self, TrafficSettings};

#[derive(Debug, clap::Args)]
pub struct TrafficArgs {
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
    duration: Duration,
    /// How often to print a line.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    report: Duration,
}

#[derive(Debug, clap::Args)]
pub struct BackendArgs {
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
}

pub async fn traffic(args: TrafficArgs) -> Result<(), Failure> {
    let settings = args.settings()?;
    let total = demo_traffic::run(settings, |t, c| {
        emit!(
            "t={:>5.1}s  {}",
            t.as_secs_f64(),
            demo_traffic::summarize(c)
        );
    })
    .await;
    emit!("total    {}", demo_traffic::summarize(&total));
    Ok(())
}

impl TrafficArgs {
    /// The settings, once every bound is checked (usage errors otherwise).
    fn settings(self) -> Result<TrafficSettings, Failure> {
        if self.duration > Duration::from_secs(3600) || self.duration.is_zero() {
            return Err(Failure::usage(anyhow::anyhow!(
                "--duration must be between 1ms and 1h"
            )));
        }
        if !(self.rps > 0.0 && self.rps <= 100_000.0)
            || self.workers == 0
            || self.workers > 1024
            || self.report.is_zero()
        {
            return Err(Failure::usage(anyhow::anyhow!(
                "--rps must be within (0, 100000], --workers within 1..=1024, --report above 0"
            )));
        }
        let headers = self
            .headers
            .iter()
            .map(|h| {
                let (k, v) = h.split_once(':').ok_or_else(|| {
                    Failure::usage(anyhow::anyhow!("--header {h:?} must be \"Name: value\""))
                })?;
                Ok((k.trim().to_string(), v.trim().to_string()))
            })
            .collect::<Result<_, Failure>>()?;
        Ok(TrafficSettings {
            url: self.url,
            host: self.host,
            headers,
            rps: self.rps,
            workers: self.workers,
            duration: self.duration,
            report: self.report,
        })
    }
}

pub async fn backend(args: BackendArgs) -> Result<(), Failure> {
    if !(0.0..=1.0).contains(&args.error_rate) {
        return Err(Failure::usage(anyhow::anyhow!(
            "--error-rate {} must be within 0..=1",
            args.error_rate
        )));
    }
    let settings = DemoSettings {
        version: args.version,
        error_rate: args.error_rate,
        latency_ms: args.latency_ms,
        seed: args.seed,
    };
    demo_backend::run(args.listen, settings)
        .await
        .map_err(Failure::failed)
}
