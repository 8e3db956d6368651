//! canary-pilot's own metrics, served at `GET /metrics` in the Prometheus text format. Every
//! name is prefixed `canary_pilot_`; docs/monitoring.md lists them.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::analysis::Analysis;
use crate::config::Config;
use crate::rollout::{AppState, Phase};

type Labels = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

const PHASES: [Phase; 6] = [
    Phase::Idle,
    Phase::Progressing,
    Phase::Paused,
    Phase::Promoting,
    Phase::Succeeded,
    Phase::RolledBack,
];

pub struct Metrics {
    registry: Registry,
    canary_weight: Family<Labels, Gauge>,
    app_phase: Family<Labels, Gauge>,
    phase_since: Family<Labels, FloatGauge>,
    app_step: Family<Labels, Gauge>,
    verdicts: Family<Labels, Counter>,
    values: Family<Labels, FloatGauge>,
    limits: Family<Labels, FloatGauge>,
    events: Family<Labels, Counter>,
    notifications: Family<Labels, Counter>,
    tick_duration: Histogram,
    source_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("canary_pilot");
        let build_info = Family::<Labels, Gauge>::default();
        build_info
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])
            .set(1);
        registry.register("build_info", "Build information", build_info);
        let m = Metrics {
            canary_weight: Family::default(),
            app_phase: Family::default(),
            phase_since: Family::default(),
            app_step: Family::default(),
            verdicts: Family::default(),
            values: Family::default(),
            limits: Family::default(),
            events: Family::default(),
            notifications: Family::default(),
            tick_duration: Histogram::new([
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            source_errors: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "canary_weight",
            "Percent of the app's traffic sent to the canary",
            m.canary_weight.clone(),
        );
        registry.register(
            "app_phase",
            "1 for the app's current release phase, 0 for the others",
            m.app_phase.clone(),
        );
        registry.register(
            "phase_since_timestamp_seconds",
            "Unix time the app entered its current phase",
            m.phase_since.clone(),
        );
        registry.register(
            "app_step",
            "Current 1-based step of the release, 0 when none is under way",
            m.app_step.clone(),
        );
        registry.register(
            "analysis_verdicts",
            "Analysis verdicts by check (and overall)",
            m.verdicts.clone(),
        );
        registry.register(
            "analysis_value",
            "Last analysed value per check and side",
            m.values.clone(),
        );
        registry.register(
            "analysis_limit",
            "Configured analysis limits",
            m.limits.clone(),
        );
        registry.register("events", "Release events by kind", m.events.clone());
        registry.register(
            "notifications",
            "Notification and hook deliveries by result",
            m.notifications.clone(),
        );
        registry.register(
            "tick_duration_seconds",
            "Duration of one analysis tick",
            m.tick_duration.clone(),
        );
        registry.register(
            "source_errors",
            "Failed metric collections",
            m.source_errors.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Records the configured limits of every app, and creates its counters at 0 so that
    /// `increase()` sees their first increment.
    pub fn set_limits(&self, config: &Config) {
        for n in &config.notifiers {
            for result in ["delivered", "retried", "failed", "dropped"] {
                let _ = self.notifications.get_or_create(&vec![
                    ("notifier", n.name.clone()),
                    ("result", result.to_string()),
                ]);
            }
        }
        for app in config.apps.values() {
            for kind in crate::rollout::EventKind::ALL {
                let _ = self.events.get_or_create(&vec![
                    ("app", app.name.clone()),
                    ("kind", kind.as_str().to_string()),
                ]);
            }
            let latency = format!(
                "latency_p{}",
                (app.analysis.latency_quantile * 1000.0).round() / 10.0
            );
            for check in ["overall", "requests", "error_ratio", latency.as_str()] {
                for verdict in ["pass", "inconclusive", "fail", "critical"] {
                    let _ = self.verdicts.get_or_create(&vec![
                        ("app", app.name.clone()),
                        ("check", check.to_string()),
                        ("verdict", verdict.to_string()),
                    ]);
                }
            }
            let a = &app.analysis;
            let mut limits = vec![
                ("max_error_ratio", a.max_error_ratio),
                ("error_ratio_tolerance", a.error_ratio_tolerance),
                ("max_latency_ratio", a.max_latency_ratio),
                ("latency_quantile", a.latency_quantile),
                ("min_requests", a.min_requests as f64),
            ];
            if let Some(max) = a.max_latency {
                limits.push(("max_latency_seconds", max.as_secs_f64()));
            }
            for (limit, v) in limits {
                self.limits
                    .get_or_create(&vec![
                        ("app", app.name.clone()),
                        ("limit", limit.to_string()),
                    ])
                    .set(v);
            }
        }
    }

    /// Records every app's state after a change.
    pub fn observe_state(&self, app: &str, s: &AppState) {
        let a = || vec![("app", app.to_string())];
        self.canary_weight
            .get_or_create(&a())
            .set(s.canary_weight as i64);
        self.app_step
            .get_or_create(&a())
            .set(if s.phase.is_active() {
                s.step_index as i64 + 1
            } else {
                0
            });
        self.phase_since
            .get_or_create(&a())
            .set(s.phase_since_ms as f64 / 1000.0);
        for p in PHASES {
            self.app_phase
                .get_or_create(&vec![
                    ("app", app.to_string()),
                    ("phase", p.as_str().to_string()),
                ])
                .set(i64::from(p == s.phase));
        }
    }

    pub fn count_event(&self, app: &str, kind: &str) {
        self.events
            .get_or_create(&vec![("app", app.to_string()), ("kind", kind.to_string())])
            .inc();
    }

    pub fn observe_analysis(&self, app: &str, a: &Analysis) {
        let verdict = |check: &str, v: &str| {
            self.verdicts
                .get_or_create(&vec![
                    ("app", app.to_string()),
                    ("check", check.to_string()),
                    ("verdict", v.to_string()),
                ])
                .inc();
        };
        verdict("overall", a.verdict.as_str());
        for c in &a.checks {
            verdict(&c.check, c.verdict.as_str());
            for (side, v) in [("canary", c.canary), ("stable", c.stable)] {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    self.values
                        .get_or_create(&vec![
                            ("app", app.to_string()),
                            ("check", c.check.clone()),
                            ("side", side.to_string()),
                        ])
                        .set(v);
                }
            }
        }
    }

    pub fn count_notification(&self, notifier: &str, result: &str) {
        self.notifications
            .get_or_create(&vec![
                ("notifier", notifier.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
    }

    pub fn observe_tick(&self, seconds: f64) {
        self.tick_duration.observe(seconds);
    }

    pub fn count_source_error(&self) {
        self.source_errors.inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests_support::sample_config;

    #[test]
    fn renders_state_limits_events_and_build_info() {
        let m = Metrics::new();
        let config = sample_config();
        m.set_limits(&config);
        let mut s = AppState::initial(&config.apps["api"], 1_500);
        s.canary_weight = 25;
        s.phase = Phase::Progressing;
        s.step_index = 1;
        m.observe_state("api", &s);
        m.count_event("api", "started");
        m.count_notification("ops", "failed");
        m.observe_tick(0.02);
        let text = m.render();
        for line in [
            "canary_pilot_canary_weight{app=\"api\"} 25",
            "canary_pilot_app_step{app=\"api\"} 2",
            "canary_pilot_app_phase{app=\"api\",phase=\"progressing\"} 1",
            "canary_pilot_app_phase{app=\"api\",phase=\"idle\"} 0",
            "canary_pilot_phase_since_timestamp_seconds{app=\"api\"} 1.5",
            "canary_pilot_events_total{app=\"api\",kind=\"started\"} 1",
            "canary_pilot_events_total{app=\"api\",kind=\"rolled_back\"} 0",
            "canary_pilot_analysis_verdicts_total{app=\"api\",check=\"latency_p99\",verdict=\"fail\"} 0",
            "canary_pilot_notifications_total{notifier=\"ops\",result=\"failed\"} 1",
            "canary_pilot_analysis_limit{app=\"api\",limit=\"max_latency_seconds\"} 0.5",
            "canary_pilot_tick_duration_seconds_count 1",
            "canary_pilot_build_info{version=\"",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
