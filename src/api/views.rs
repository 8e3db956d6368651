//! The API's answers as types: the server serializes them, the client (`client.rs`) and the CLI
//! deserialize them, so an answer that does not fit them is not canary-pilot's.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::analysis::{CheckResult, Verdict};
use crate::clock::rfc3339;
use crate::config::AppConfig;
use crate::controller::{AnalysisRecord, ReloadReport, TraefikCheck};
use crate::rollout::{AppState, Event, EventKind, Phase};
use crate::traefik_api::Finding;

/// Every error answer: `{"error": name, "detail": text or value}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub detail: Value,
}

/// `/healthz` and `/readyz` when all is well.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthView {
    pub status: String,
    /// `/readyz` with `[traefik] api_url`: what Traefik does not serve of the document, or why
    /// its API could not be read. Readiness is canary-pilot's own: this does not make it 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traefik: Option<String>,
    /// `/readyz` with Swarm services: services that do not exist, or whose running tasks are
    /// not on `swarm.network` (their slot has no servers from them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<String>,
}

/// `GET /api/v1/apps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppList {
    pub apps: Vec<AppView>,
}

/// One app as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppView {
    pub name: String,
    pub rule: String,
    pub phase: Phase,
    pub weights: Weights,
    pub stable: SlotView,
    pub canary: SlotView,
    pub step: StepView,
    pub failures: u32,
    pub failure_limit: u32,
    /// Why the app is in its phase: the last transition's reason.
    pub reason: Option<String>,
    /// Since when analyses have had no verdict, if they have not.
    pub inconclusive_since: Option<String>,
    /// The newest analysis, if any.
    pub last_analysis: Option<AnalysisSummary>,
    /// With `analysis.dry_run`: the release analysed beside the served state, and where it
    /// would stand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRunView>,
    /// With `[traefik] api_url`: the app's routers and services that Traefik's API does not
    /// show enabled, with Traefik's reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traefik_rejected: Vec<Finding>,
    pub generation: u64,
    pub updated_at: String,
}

/// A dry-run release: what canary-pilot would have done, none of which was served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DryRunView {
    pub phase: Phase,
    pub version: Option<String>,
    /// The canary weight the release would be serving now.
    pub weight: u8,
    pub step: StepView,
    pub reason: Option<String>,
    pub last_analysis: Option<AnalysisSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    pub stable: u8,
    pub canary: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotView {
    pub slot: String,
    pub servers: Vec<String>,
    pub version: Option<String>,
    /// For a Swarm-managed app: the version the slot's tasks run, from its service's image
    /// (it differs from `version` when a release was started by hand with another label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepView {
    /// 1-based step of the release (0 when none is under way).
    pub current: usize,
    pub total: usize,
    pub weights: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisSummary {
    pub time: String,
    pub verdict: Verdict,
    pub reason: String,
}

/// One app with its recent analyses and events: `GET /api/v1/apps/{app}`, and the answer of
/// every call that changes an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppDetail {
    #[serde(flatten)]
    pub app: AppView,
    /// The last analyses, newest first, with every check's figures.
    pub analyses: Vec<AnalysisView>,
    /// The app's last events, oldest first.
    pub events: Vec<EventView>,
}

/// One analysis with its checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisView {
    pub time_ms: u64,
    /// The release (canary version) the analysis is of.
    #[serde(default)]
    pub version: Option<String>,
    pub phase: Phase,
    /// Canary weight while the window was collected.
    pub weight: u8,
    /// 1-based step.
    pub step: usize,
    pub source: String,
    /// How long the window collected data, in seconds.
    pub window_seconds: f64,
    pub verdict: Verdict,
    pub reason: String,
    pub canary_requests: f64,
    pub stable_requests: f64,
    pub checks: Vec<CheckView>,
}

/// One check's figures and verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckView {
    pub check: String,
    /// Canary's value (ratio, seconds or count); `None` when it could not be computed.
    pub canary: Option<f64>,
    pub stable: Option<f64>,
    /// The limit, in words.
    pub limit: String,
    pub verdict: Verdict,
    pub reason: String,
}

/// `GET /api/v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventList {
    pub events: Vec<EventView>,
}

/// An event as the API shows it: the recorded event and its time in RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub app: String,
    pub kind: EventKind,
    pub version: Option<String>,
    pub from: Phase,
    pub to: Phase,
    /// Canary weight after the transition.
    pub weight: u8,
    pub reason: String,
    /// A dry-run release's decision: nothing served changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub time_ms: u64,
    pub time: String,
}

/// `POST /api/v1/apps/{app}/deploy`: the service now runs toward the image; its release starts
/// once its tasks run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployAnswer {
    pub app: String,
    pub service: String,
    pub image: String,
    /// The version the release will carry: the image's tag, or its digest.
    pub version: String,
}

/// `POST /api/v1/reload` when the new config was applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadAnswer {
    pub reloaded: bool,
    pub report: ReloadView,
}

/// What a reload changed: settings outside the apps, and apps by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadView {
    /// `server.admin_token`, `server.provider_token`, `server.protect_reads`, `metrics`,
    /// `notifiers`: the ones that changed.
    #[serde(default)]
    pub settings: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

impl AppView {
    /// `state` is the served one, `dry_run` a dry-run release beside it (kept after it ends,
    /// so that its outcome stays visible).
    pub fn new(
        app: &AppConfig,
        state: &AppState,
        dry_run: Option<&AppState>,
        last: Option<&AnalysisRecord>,
        traefik: &TraefikCheck,
    ) -> Self {
        let slot = |name: &str, version: &Option<String>| SlotView {
            slot: name.to_string(),
            servers: app
                .slots
                .get(name)
                .map(|urls| urls.iter().map(|u| u.to_string()).collect())
                .unwrap_or_default(),
            version: version.clone(),
            runs: None,
        };
        AppView {
            name: app.name.clone(),
            rule: app.rule.clone(),
            phase: state.phase,
            weights: Weights {
                stable: state.stable_weight(),
                canary: state.canary_weight,
            },
            stable: slot(&state.stable_slot, &state.stable_version),
            canary: slot(app.other_slot(&state.stable_slot), &state.canary_version),
            step: StepView::new(app, state),
            failures: state.failures,
            failure_limit: app.analysis.failure_limit,
            reason: state.reason.clone(),
            inconclusive_since: state.inconclusive_since_ms.map(rfc3339),
            // Only an analysis of this release: a new release never shows the last one's.
            last_analysis: AnalysisSummary::of_release(last, state),
            dry_run: dry_run.map(|dry| DryRunView {
                phase: dry.phase,
                version: dry.canary_version.clone(),
                weight: dry.canary_weight,
                step: StepView::new(app, dry),
                reason: dry.reason.clone(),
                last_analysis: AnalysisSummary::of_release(last, dry),
            }),
            traefik_rejected: traefik
                .findings
                .iter()
                .filter(|f| f.app == app.name)
                .cloned()
                .collect(),
            generation: state.generation,
            updated_at: rfc3339(state.updated_at_ms),
        }
    }
}

impl AnalysisSummary {
    /// `last` if it analysed `state`'s release: a new release never shows the last one's.
    fn of_release(last: Option<&AnalysisRecord>, state: &AppState) -> Option<Self> {
        let r = last.filter(|r| r.version == state.canary_version)?;
        Some(AnalysisSummary {
            time: rfc3339(r.time_ms),
            verdict: r.analysis.verdict,
            reason: r.analysis.reason.clone(),
        })
    }
}

impl StepView {
    fn new(app: &AppConfig, state: &AppState) -> Self {
        StepView {
            current: if state.phase.is_active() {
                state.step_index + 1
            } else {
                0
            },
            total: app.analysis.steps.iter().filter(|w| **w < 100).count(),
            weights: app.analysis.steps.clone(),
        }
    }
}

impl From<&AnalysisRecord> for AnalysisView {
    fn from(r: &AnalysisRecord) -> Self {
        AnalysisView {
            time_ms: r.time_ms,
            version: r.version.clone(),
            phase: r.phase,
            weight: r.weight,
            step: r.step,
            source: r.source.clone(),
            window_seconds: r.window_seconds,
            verdict: r.analysis.verdict,
            reason: r.analysis.reason.clone(),
            canary_requests: r.analysis.canary_requests,
            stable_requests: r.analysis.stable_requests,
            checks: r.analysis.checks.iter().map(CheckView::from).collect(),
        }
    }
}

impl From<&CheckResult> for CheckView {
    fn from(c: &CheckResult) -> Self {
        CheckView {
            check: c.check.clone(),
            canary: c.canary,
            stable: c.stable,
            limit: c.limit.clone(),
            verdict: c.verdict,
            reason: c.reason.clone(),
        }
    }
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            app: e.app.clone(),
            kind: e.kind,
            version: e.version.clone(),
            from: e.from,
            to: e.to,
            weight: e.weight,
            reason: e.reason.clone(),
            dry_run: e.dry_run,
            time_ms: e.time_ms,
            time: rfc3339(e.time_ms),
        }
    }
}

impl From<ReloadReport> for ReloadView {
    fn from(r: ReloadReport) -> Self {
        ReloadView {
            settings: r.settings,
            added: r.added,
            removed: r.removed,
            changed: r.changed,
            unchanged: r.unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::analysis::Analysis;

    /// The views are the wire format of the types they show: same fields, same values.
    #[test]
    fn views_serialize_as_the_records_they_show() {
        let record = AnalysisRecord {
            time_ms: 1_795_305_003_120,
            version: Some("v2".into()),
            phase: Phase::Progressing,
            weight: 20,
            step: 1,
            source: "traefik http://127.0.0.1:8082/metrics".into(),
            window_seconds: 3.0,
            analysis: Analysis {
                verdict: Verdict::Pass,
                reason: "fine".into(),
                canary_requests: 221.0,
                stable_requests: 871.0,
                checks: vec![CheckResult {
                    check: "error_ratio".into(),
                    canary: Some(0.009),
                    stable: None,
                    limit: "canary <= stable + 5.00%".into(),
                    verdict: Verdict::Pass,
                    reason: "ok".into(),
                }],
            },
        };
        let view = serde_json::to_value(AnalysisView::from(&record)).unwrap();
        assert_eq!(view, serde_json::to_value(&record).unwrap());
        let back: AnalysisView = serde_json::from_value(view).unwrap();
        assert_eq!(back, AnalysisView::from(&record));

        let event = Event {
            dry_run: false,
            app: "api".into(),
            kind: EventKind::Started,
            version: Some("v2".into()),
            from: Phase::Idle,
            to: Phase::Progressing,
            weight: 5,
            reason: "started".into(),
            time_ms: 0,
        };
        let mut expected = serde_json::to_value(&event).unwrap();
        expected["time"] = json!("1970-01-01T00:00:00.000Z");
        assert_eq!(
            serde_json::to_value(EventView::from(&event)).unwrap(),
            expected
        );

        let report = ReloadReport {
            added: vec!["a".into()],
            ..ReloadReport::default()
        };
        assert_eq!(
            serde_json::to_value(ReloadView::from(report.clone())).unwrap(),
            serde_json::to_value(&report).unwrap()
        );
    }
}
