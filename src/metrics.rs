//! canary-pilot's own metrics, served at `GET /metrics` in the Prometheus text format. Every
//! name is prefixed `canary_pilot_`; docs/monitoring.md lists them.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::analysis::{Analysis, SourceError};
use crate::config::{Config, Tolerance};
use crate::rollout::{AppState, EventKind, Phase};

type FloatGauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    app: String,
    phase: &'static str,
}

/// The versions an app serves: `canary_pilot_release_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReleaseLabels {
    app: String,
    stable_version: String,
    canary_version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    app: String,
    check: String,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ValueLabels {
    app: String,
    check: String,
    side: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    app: String,
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    app: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    notifier: String,
    result: DeliveryResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceErrorLabels {
    reason: SourceErrorReason,
}

/// How one notification or hook delivery ended, as the `result` label counts it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DeliveryResult {
    delivered,
    retried,
    failed,
    dropped,
}

impl DeliveryResult {
    pub const ALL: [DeliveryResult; 4] = [
        DeliveryResult::delivered,
        DeliveryResult::retried,
        DeliveryResult::failed,
        DeliveryResult::dropped,
    ];
}

/// Why a metrics collection failed, as the `reason` label counts it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum SourceErrorReason {
    unreachable,
    invalid,
}

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
    canary_weight: Family<AppLabels, Gauge>,
    app_phase: Family<PhaseLabels, Gauge>,
    phase_since: Family<AppLabels, FloatGauge>,
    app_step: Family<AppLabels, Gauge>,
    verdicts: Family<VerdictLabels, Counter>,
    values: Family<ValueLabels, FloatGauge>,
    limits: Family<LimitLabels, FloatGauge>,
    events: Family<EventLabels, Counter>,
    notifications: Family<NotificationLabels, Counter>,
    tick_duration: Histogram,
    source_errors: Family<SourceErrorLabels, Counter>,
    traefik_rejected: Family<AppLabels, Gauge>,
    traefik_check_up: Gauge,
    release_info: Family<ReleaseLabels, Gauge>,
    /// Each app's series of `release_info`, so that the previous one goes when versions change.
    releases: std::sync::Mutex<BTreeMap<String, ReleaseLabels>>,
    analysis_failures: Family<AppLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("canary_pilot");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
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
            source_errors: Family::default(),
            traefik_rejected: Family::default(),
            traefik_check_up: Gauge::default(),
            release_info: Family::default(),
            releases: Default::default(),
            analysis_failures: Family::default(),
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
        registry.register(
            "release_info",
            "1 for the versions the app serves now, labelled stable_version and canary_version (\"-\" when none)",
            m.release_info.clone(),
        );
        registry.register(
            "analysis_failures",
            "Consecutive failed analyses of the release under way (a rollback at analysis_limit{limit=\"failure_limit\"})",
            m.analysis_failures.clone(),
        );
        registry.register(
            "traefik_rejected",
            "Generated routers and services Traefik's API does not show enabled, per app",
            m.traefik_rejected.clone(),
        );
        registry.register(
            "traefik_check_up",
            "1 when the last read-back of Traefik's API succeeded ([traefik] api_url)",
            m.traefik_check_up.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The outcome of one read-back of Traefik's API: per app, how many of its objects Traefik
    /// does not show enabled (`None`: the API could not be read; the counts stay as they were).
    pub fn observe_traefik_check(&self, rejected: Option<&BTreeMap<String, i64>>) {
        let Some(rejected) = rejected else {
            self.traefik_check_up.set(0);
            return;
        };
        self.traefik_check_up.set(1);
        for (app, n) in rejected {
            self.traefik_rejected
                .get_or_create(&AppLabels { app: app.clone() })
                .set(*n);
        }
    }

    /// Records the configured limits of every app, and creates its counters at 0 so that
    /// `increase()` sees their first increment.
    pub fn set_limits(&self, config: &Config) {
        for n in &config.notifiers {
            for result in DeliveryResult::ALL {
                let _ = self.notifications.get_or_create(&NotificationLabels {
                    notifier: n.name.clone(),
                    result,
                });
            }
        }
        for reason in [SourceErrorReason::unreachable, SourceErrorReason::invalid] {
            let _ = self
                .source_errors
                .get_or_create(&SourceErrorLabels { reason });
        }
        for app in config.apps.values() {
            for kind in EventKind::ALL {
                let _ = self.events.get_or_create(&EventLabels {
                    app: app.name.clone(),
                    kind: kind.as_str(),
                });
            }
            let latency = format!(
                "latency_p{}",
                (app.analysis.latency_quantile * 1000.0).round() / 10.0
            );
            for check in ["overall", "requests", "error_ratio", latency.as_str()] {
                for verdict in ["pass", "inconclusive", "fail", "critical"] {
                    let _ = self.verdicts.get_or_create(&VerdictLabels {
                        app: app.name.clone(),
                        check: check.to_string(),
                        verdict,
                    });
                }
            }
            let a = &app.analysis;
            let mut limits = vec![
                ("max_error_ratio", a.max_error_ratio),
                match a.error_ratio_tolerance {
                    Tolerance::Points(d) => ("error_ratio_tolerance", d),
                    Tolerance::Relative(r) => ("error_ratio_tolerance_relative", r),
                },
                ("false_rollback_bound", a.false_rollback_bound),
                ("promotion_confidence", a.promotion_confidence),
                (
                    "min_step_duration_seconds",
                    a.min_step_duration.as_secs_f64(),
                ),
                ("max_latency_ratio", a.max_latency_ratio),
                ("latency_quantile", a.latency_quantile),
                ("min_requests", a.min_requests as f64),
                ("failure_limit", f64::from(a.failure_limit)),
            ];
            if let Some(max) = a.max_latency {
                limits.push(("max_latency_seconds", max.as_secs_f64()));
            }
            for (limit, v) in limits {
                self.limits
                    .get_or_create(&LimitLabels {
                        app: app.name.clone(),
                        limit,
                    })
                    .set(v);
            }
        }
    }

    /// Records every app's state after a change.
    pub fn observe_state(&self, app: &str, s: &AppState) {
        let a = AppLabels {
            app: app.to_string(),
        };
        self.canary_weight
            .get_or_create(&a)
            .set(s.canary_weight as i64);
        self.app_step.get_or_create(&a).set(if s.phase.is_active() {
            s.step_index as i64 + 1
        } else {
            0
        });
        self.phase_since
            .get_or_create(&a)
            .set(s.phase_since_ms as f64 / 1000.0);
        self.analysis_failures
            .get_or_create(&a)
            .set(i64::from(s.failures));
        let version = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let release = ReleaseLabels {
            app: app.to_string(),
            stable_version: version(&s.stable_version),
            canary_version: version(&s.canary_version),
        };
        // One series per app: the versions it serves now.
        let mut releases = self.releases.lock().expect("poisoned");
        if let Some(old) = releases.insert(app.to_string(), release.clone()) {
            if old != release {
                self.release_info.remove(&old);
            }
        }
        self.release_info.get_or_create(&release).set(1);
        for p in PHASES {
            self.app_phase
                .get_or_create(&PhaseLabels {
                    app: app.to_string(),
                    phase: p.as_str(),
                })
                .set(i64::from(p == s.phase));
        }
    }

    pub fn count_event(&self, app: &str, kind: EventKind) {
        self.events
            .get_or_create(&EventLabels {
                app: app.to_string(),
                kind: kind.as_str(),
            })
            .inc();
    }

    pub fn observe_analysis(&self, app: &str, a: &Analysis) {
        let verdict = |check: &str, verdict: &'static str| {
            self.verdicts
                .get_or_create(&VerdictLabels {
                    app: app.to_string(),
                    check: check.to_string(),
                    verdict,
                })
                .inc();
        };
        verdict("overall", a.verdict.as_str());
        for c in &a.checks {
            verdict(&c.check, c.verdict.as_str());
            for (side, v) in [("canary", c.canary), ("stable", c.stable)] {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    self.values
                        .get_or_create(&ValueLabels {
                            app: app.to_string(),
                            check: c.check.clone(),
                            side,
                        })
                        .set(v);
                }
            }
        }
    }

    pub fn count_notification(&self, notifier: &str, result: DeliveryResult) {
        self.notifications
            .get_or_create(&NotificationLabels {
                notifier: notifier.to_string(),
                result,
            })
            .inc();
    }

    pub fn observe_tick(&self, seconds: f64) {
        self.tick_duration.observe(seconds);
    }

    pub fn count_source_error(&self, e: &SourceError) {
        let reason = match e {
            SourceError::Unreachable(_) => SourceErrorReason::unreachable,
            SourceError::Invalid(_) => SourceErrorReason::invalid,
        };
        self.source_errors
            .get_or_create(&SourceErrorLabels { reason })
            .inc();
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
        m.count_event("api", EventKind::Started);
        m.count_notification("ops", DeliveryResult::failed);
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

    #[test]
    fn the_versions_served_and_the_failures_so_far_are_one_series_each() {
        let m = Metrics::new();
        let config = sample_config();
        m.set_limits(&config);
        let mut s = AppState::initial(&config.apps["api"], 1_000);
        s.stable_version = Some("v1".into());
        m.observe_state("api", &s);
        s.canary_version = Some("v2".into());
        s.phase = Phase::Progressing;
        s.failures = 2;
        m.observe_state("api", &s);
        let text = m.render();
        for line in [
            "canary_pilot_release_info{app=\"api\",stable_version=\"v1\",canary_version=\"v2\"} 1",
            "canary_pilot_analysis_failures{app=\"api\"} 2",
            "canary_pilot_analysis_limit{app=\"api\",limit=\"failure_limit\"} 3",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            !text.contains("canary_version=\"-\""),
            "the release before v2 is gone:\n{text}"
        );
    }
}
