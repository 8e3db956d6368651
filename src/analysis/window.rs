//! The analysis windows of every app: what the analysis loop has collected for an app since its
//! window began, and the rules that start, grow, judge and settle a window. Pure: time is a
//! monotonic offset from any fixed origin (the daemon's start, a simulation's zero), so the
//! daemon's loop and the decision-quality benchmark drive exactly this code.
//!
//! The rules:
//! - A collection spans from the previous collection to now (one period on the first).
//! - A window grows by every collection that began at or after its `not_before`: a new release
//!   takes nothing that began before it started (the previous release's or the idle slot's
//!   traffic), and any window waits out [`SWAP_SETTLE`] after a promotion swapped the roles.
//! - A window is judged once its app's interval has passed since it was last judged (with half a
//!   period of slack, so tick jitter never skips a whole interval).
//! - A decisive verdict consumes the window, also when it changes nothing (a pass held at a
//!   closed gate); an inconclusive one lets it keep growing; a verdict that could not be applied
//!   keeps its evidence.
//!
//! Beside the windows, each release keeps its sequential evidence
//! ([`ReleaseEvidence`](super::sequential::ReleaseEvidence)): every collection a window takes
//! is also added to the evidence of the release (same canary version), which no step, verdict
//! or restart resets. The verdict of a judged window comes from [`decide`]: critical from the
//! judge of the window (an error ceiling beyond doubt, a canary overwhelmingly worse), a fired
//! harm test rolls back, a step advances once its own exposure is met with no evidence of
//! harm, and the last step promotes once the evidence bounds the regression.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::judge::{above_max_latency, judge, Analysis, CheckResult, Verdict};
use super::sequential::{
    Assessment, CheckFinding, Finding, LatencyParams, Params, ReleaseEvidence,
};
use super::{SideSample, SourceError};
use crate::config::AnalysisConfig;

/// After a promotion swaps the roles, `<app>-canary` names other servers; until Traefik has
/// applied that (its poll interval plus its 2 s reload throttle), canary figures may still be
/// the promoted version's. A window started within this time collects from its end.
pub const SWAP_SETTLE: Duration = Duration::from_secs(5);

/// What one collection covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// When the collection began (the previous collection).
    pub began: Duration,
    /// How long it covers.
    pub length: Duration,
}

/// What one collection saw for one app: its stable and canary services' increases (a service
/// without traffic may be absent), or why the source could not be read.
pub type Figures<'a> = Result<(Option<&'a SideSample>, Option<&'a SideSample>), &'a SourceError>;

/// Why a persisted transition starts a fresh window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// A release started: nothing collected before it counts.
    NewRelease,
    /// The roles swapped: wait out [`SWAP_SETTLE`].
    Promoted,
    /// Any other new step of a release (advance, resume, a set weight).
    Step,
}

/// A judged window: the analysis and how long the window had collected.
#[derive(Debug, Clone)]
pub struct Judged {
    pub analysis: Analysis,
    pub window_seconds: f64,
    /// Whether the verdict counts toward `max_inconclusive`: an inconclusive verdict without
    /// data (the source down, no canary traffic) does; one that is still gathering evidence
    /// with traffic flowing does not.
    pub without_data: bool,
}

impl Judged {
    /// The verdict for the release's state machine: none while the release is still gathering
    /// evidence with traffic flowing (that is no verdict, and does not count toward
    /// `max_inconclusive`); an inconclusive one only for a window without data.
    pub fn verdict(&self) -> Option<(Verdict, &str)> {
        let gathering = self.analysis.verdict == Verdict::Inconclusive && !self.without_data;
        (!gathering).then_some((self.analysis.verdict, self.analysis.reason.as_str()))
    }
}

/// Where an analysed release stands, as the state machine has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage<'a> {
    /// The release's canary version: its evidence is kept under it.
    pub version: &'a str,
    /// 0-based analysed step.
    pub step: usize,
    /// The last analysed step (below 100 %), after which the release promotes.
    pub last_step: bool,
    /// At 100 %, promoting: only a critical canary can stop it.
    pub promoting: bool,
}

/// The evidence of one release, persisted with the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub version: String,
    pub evidence: ReleaseEvidence,
}

/// The sequential test's parameters for an app's analysis settings.
pub fn params(cfg: &AnalysisConfig) -> Params {
    Params {
        alpha: cfg.false_rollback_bound,
        confidence: cfg.promotion_confidence,
        errors: cfg.error_ratio_tolerance,
        latency: Some(LatencyParams {
            quantile: cfg.latency_quantile,
            max_ratio: cfg.max_latency_ratio,
            margin: cfg.latency_tolerance.as_secs_f64(),
        }),
    }
}

#[derive(Debug, Clone)]
struct Window {
    canary: SideSample,
    stable: SideSample,
    /// Canary requests this window took (for a tick without traffic).
    started: Duration,
    last_judged: Duration,
    /// Collections that began before this are not added.
    not_before: Option<Duration>,
}

impl Window {
    fn takes(&self, began: Duration) -> bool {
        self.not_before.is_none_or(|nb| began >= nb)
    }
}

/// Every analysed app's window.
#[derive(Debug, Default)]
pub struct Windows {
    apps: BTreeMap<String, Window>,
    /// When each app's roles last swapped.
    swapped: BTreeMap<String, Duration>,
    /// When each app's current step began.
    step_started: BTreeMap<String, Duration>,
    /// Each analysed release's evidence.
    evidence: BTreeMap<String, Evidence>,
    last_collect: Option<Duration>,
}

impl Windows {
    /// What a collection made now covers; call [`Windows::collected`] once it is made.
    pub fn next_span(&self, now: Duration, period: Duration) -> Span {
        let began = self
            .last_collect
            .unwrap_or_else(|| now.saturating_sub(period));
        Span {
            began,
            length: now.saturating_sub(began),
        }
    }

    /// Records that a collection was made at `now` (whether or not it succeeded).
    pub fn collected(&mut self, now: Duration) {
        self.last_collect = Some(now);
    }

    /// Drops the window of an app that is not being analysed (idle, paused, finished).
    pub fn forget(&mut self, app: &str) {
        self.apps.remove(app);
    }

    /// Adds what the collection over `span` saw for `app` to its window and to its release's
    /// evidence and, when the app's interval has passed, judges it under `cfg` (see
    /// [`decide`]). A failed collection adds nothing and judges as inconclusive, naming the
    /// failure.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        app: &str,
        now: Duration,
        span: Span,
        figures: Figures<'_>,
        stage: Stage<'_>,
        cfg: &AnalysisConfig,
        period: Duration,
    ) -> Option<Judged> {
        if !self.apps.contains_key(app) {
            self.start(app, now, false);
        }
        let release = evidence_for(&mut self.evidence, app, stage.version, cfg);
        let w = self.apps.get_mut(app).expect("just started");
        let taken = w.takes(span.began);
        if let (Ok((stable, canary)), true) = (&figures, taken) {
            let none = SideSample::default();
            let (stable, canary) = (stable.unwrap_or(&none), canary.unwrap_or(&none));
            w.stable.add(stable);
            w.canary.add(canary);
            if let Some(release) = release {
                release.evidence.observe(stage.step, canary, stable);
            }
        }
        if now.saturating_sub(w.last_judged) + period / 2 < cfg.interval {
            return None;
        }
        w.last_judged = now;
        let window_seconds = now.saturating_sub(w.started).as_secs_f64();
        let (canary, stable) = (w.canary.clone(), w.stable.clone());
        if let Err(e) = figures {
            return Some(Judged {
                analysis: Analysis::unavailable(e.to_string()),
                window_seconds,
                without_data: true,
            });
        }
        let step_time = now.saturating_sub(*self.step_started.get(app).unwrap_or(&Duration::ZERO));
        let assessment = self.evidence.get(app).map(|r| r.evidence.assess());
        let judged = judge(&canary, &stable, cfg);
        let analysis = decide(judged, &canary, assessment.as_ref(), stage, step_time, cfg);
        Some(Judged {
            without_data: analysis.verdict == Verdict::Inconclusive && canary.requests <= 0.0,
            analysis,
            window_seconds,
        })
    }

    /// Every release's evidence, to persist with the state.
    pub fn evidence(&self) -> &BTreeMap<String, Evidence> {
        &self.evidence
    }

    /// Windows that continue the releases' evidence persisted with the state (after a
    /// restart).
    pub fn restored(evidence: BTreeMap<String, Evidence>) -> Self {
        Windows {
            evidence,
            ..Windows::default()
        }
    }

    /// The evidence of a release that ended.
    pub fn end_release(&mut self, app: &str) {
        self.evidence.remove(app);
    }

    /// After a persisted transition that resets the window.
    pub fn reset(&mut self, app: &str, now: Duration, why: Reset) {
        match why {
            Reset::Promoted => {
                self.swapped.insert(app.to_string(), now);
            }
            Reset::NewRelease => {
                self.evidence.remove(app);
            }
            Reset::Step => {}
        }
        self.step_started.insert(app.to_string(), now);
        self.start(app, now, why == Reset::NewRelease);
    }

    /// After a verdict was applied: a decisive one consumes the window; an inconclusive one
    /// keeps it growing.
    pub fn settle(&mut self, app: &str, now: Duration, verdict: Verdict) {
        if verdict != Verdict::Inconclusive {
            self.start(app, now, false);
        }
    }

    /// Starts an app's window. A new release takes no collection that began before it; any
    /// window waits out a recent role swap. Otherwise (a verdict consumed the window, a resume)
    /// the next collection, all of it after the decision, counts in full.
    fn start(&mut self, app: &str, now: Duration, new_release: bool) {
        let settle = self
            .swapped
            .get(app)
            .map(|t| *t + SWAP_SETTLE)
            .filter(|t| *t > now);
        let not_before = match (new_release, settle) {
            (_, Some(t)) => Some(t),
            (true, None) => Some(now),
            (false, None) => None,
        };
        self.apps.insert(
            app.to_string(),
            Window {
                canary: SideSample::default(),
                stable: SideSample::default(),
                started: now,
                last_judged: now,
                not_before,
            },
        );
    }
}

/// The evidence of `app`'s release of `version`: kept while the version stays, started
/// afresh for a new one.
fn evidence_for<'e>(
    releases: &'e mut BTreeMap<String, Evidence>,
    app: &str,
    version: &str,
    cfg: &AnalysisConfig,
) -> Option<&'e mut Evidence> {
    let current = releases.get(app).is_some_and(|e| e.version == version);
    if !current {
        match ReleaseEvidence::new(params(cfg), cfg.analysed_steps()) {
            Ok(evidence) => {
                releases.insert(
                    app.to_string(),
                    Evidence {
                        version: version.to_string(),
                        evidence,
                    },
                );
            }
            // The config's checks keep the parameters in range; should they not be, the
            // release is judged by the window alone.
            Err(_) => return None,
        }
    }
    releases.get_mut(app)
}

/// The verdict of a judged window of a release at `stage`, from the judge of the window
/// (`judged`) and the release's sequential evidence (`assessment`):
/// - critical when the judge says so (an error ceiling beyond doubt, a canary overwhelmingly
///   worse than stable): at once, as ever;
/// - critical when a harm test fired: its false-rollback bound is `false_rollback_bound`,
///   however often it is read, so one firing is enough;
/// - at 100 % (promoting), a pass;
/// - a fail when the judge fails an absolute limit (`max_latency`);
/// - a pass at a step below the last once the step has its own exposure (`min_requests` canary
///   requests and `min_step_duration` at its weight), and at the last step once the evidence
///   also bounds the regression at `promotion_confidence`;
/// - else inconclusive, saying what it waits for.
pub fn decide(
    judged: Analysis,
    canary: &SideSample,
    assessment: Option<&Assessment>,
    stage: Stage<'_>,
    step_time: Duration,
    cfg: &AnalysisConfig,
) -> Analysis {
    let Some(a) = assessment else {
        return judged;
    };
    let mut checks: Vec<CheckResult> = judged
        .checks
        .iter()
        .filter(|c| c.check == "requests" || c.verdict == Verdict::Critical)
        .cloned()
        .collect();
    checks.extend(a.checks.iter().map(|c| CheckResult {
        check: c.check.clone(),
        canary: c.canary.share(),
        stable: c.stable.share(),
        limit: c.limit.clone(),
        verdict: match c.finding {
            CheckFinding::Harm => Verdict::Critical,
            CheckFinding::Bounded => Verdict::Pass,
            CheckFinding::Undecided | CheckFinding::Waiting => Verdict::Inconclusive,
        },
        reason: c.reason.clone(),
    }));
    let absolute_fail = above_max_latency(canary, cfg);
    let step_requests = a.canary_requests_at_step;
    let exposed = step_requests >= cfg.min_requests as f64 && step_time >= cfg.min_step_duration;
    let (verdict, reason) = if judged.verdict == Verdict::Critical {
        (Verdict::Critical, judged.reason.clone())
    } else if a.finding == Finding::Harm {
        (Verdict::Critical, format!("harm: {}", a.reason))
    } else if stage.promoting {
        (Verdict::Pass, format!("at 100%: {}", a.reason))
    } else if let Some(fail) = absolute_fail {
        (Verdict::Fail, format!("latency: {fail}"))
    } else if !exposed {
        (
            Verdict::Inconclusive,
            format!(
                "step {} needs {} canary requests and {} at its weight: {:.0} and {} so far; no evidence of harm",
                stage.step + 1,
                cfg.min_requests,
                humantime::format_duration(cfg.min_step_duration),
                step_requests,
                humantime::format_duration(Duration::from_secs(step_time.as_secs())),
            ),
        )
    } else if !stage.last_step {
        (
            Verdict::Pass,
            format!(
                "no evidence of harm after {step_requests:.0} canary requests at this step ({})",
                a.reason
            ),
        )
    } else if a.finding == Finding::Bounded {
        (
            Verdict::Pass,
            format!("the release's evidence bounds the regression: {}", a.reason),
        )
    } else {
        (
            Verdict::Inconclusive,
            format!(
                "waiting for the evidence to bound the regression: {}",
                a.reason
            ),
        )
    };
    Analysis {
        verdict,
        reason,
        canary_requests: judged.canary_requests,
        stable_requests: judged.stable_requests,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests_support::sample_config;

    const STAGE: Stage = Stage {
        version: "v2",
        step: 0,
        last_step: false,
        promoting: false,
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn side(requests: f64, errors: f64) -> SideSample {
        SideSample {
            requests,
            errors,
            ..SideSample::default()
        }
    }

    fn cfg() -> AnalysisConfig {
        let mut c = sample_config().apps["api"].analysis.clone();
        c.interval = secs(10);
        c.min_requests = 100;
        c
    }

    /// One tick at `now`: a collection that saw `stable` and `canary` for app "api".
    fn tick(w: &mut Windows, now: u64, stable: &SideSample, canary: &SideSample) -> Option<Judged> {
        let span = w.next_span(secs(now), secs(10));
        w.collected(secs(now));
        w.observe(
            "api",
            secs(now),
            span,
            Ok((Some(stable), Some(canary))),
            STAGE,
            &cfg(),
            secs(10),
        )
    }

    #[test]
    fn the_first_collection_spans_one_period_and_later_ones_the_time_since_the_last() {
        let mut w = Windows::default();
        assert_eq!(
            w.next_span(secs(30), secs(10)),
            Span {
                began: secs(20),
                length: secs(10)
            }
        );
        w.collected(secs(30));
        assert_eq!(
            w.next_span(secs(45), secs(10)),
            Span {
                began: secs(30),
                length: secs(15)
            }
        );
    }

    #[test]
    fn a_window_is_judged_once_its_interval_has_passed_and_grows_while_inconclusive() {
        let mut w = Windows::default();
        w.reset("api", secs(0), Reset::NewRelease);
        // 60 requests a side per tick: below min_requests (100) at the first judgement.
        let few = side(60.0, 0.0);
        let j = tick(&mut w, 10, &few, &few).expect("interval passed");
        assert_eq!(j.analysis.verdict, Verdict::Inconclusive);
        w.settle("api", secs(10), j.analysis.verdict);
        let j = tick(&mut w, 20, &few, &few).expect("interval passed");
        assert_eq!(
            j.analysis.canary_requests, 120.0,
            "the window kept the first tick"
        );
        assert_eq!(j.window_seconds, 20.0);
    }

    #[test]
    fn a_decisive_verdict_consumes_the_window() {
        let mut w = Windows::default();
        w.reset("api", secs(0), Reset::NewRelease);
        let dead = side(500.0, 500.0);
        let healthy = side(5000.0, 0.0);
        let j = tick(&mut w, 10, &healthy, &dead).unwrap();
        assert_ne!(j.analysis.verdict, Verdict::Inconclusive);
        w.settle("api", secs(10), j.analysis.verdict);
        let j = tick(&mut w, 20, &side(10.0, 0.0), &side(10.0, 0.0)).unwrap();
        assert_eq!(
            j.analysis.canary_requests, 10.0,
            "a fresh window after the verdict"
        );
    }

    #[test]
    fn a_new_release_skips_a_collection_that_began_before_it() {
        let mut w = Windows::default();
        w.collected(secs(0));
        w.reset("api", secs(5), Reset::NewRelease);
        // This collection began at 0, before the release started at 5: the dead canary's
        // figures are the idle slot's, not the release's.
        let j = tick(&mut w, 10, &side(50.0, 0.0), &side(50.0, 50.0)).unwrap();
        assert_eq!(j.analysis.canary_requests, 0.0);
        assert_eq!(j.analysis.verdict, Verdict::Inconclusive);
        w.settle("api", secs(10), j.analysis.verdict);
        let j = tick(&mut w, 20, &side(50.0, 0.0), &side(50.0, 0.0)).unwrap();
        assert_eq!(j.analysis.canary_requests, 50.0);
    }

    #[test]
    fn after_a_promotion_the_window_waits_out_the_swap() {
        let mut w = Windows::default();
        w.collected(secs(100));
        w.reset("api", secs(100), Reset::Promoted);
        let s = side(10.0, 0.0);
        // Began at 100 < 105: not taken.
        assert!(tick(&mut w, 104, &s, &s).is_none());
        // Began at 104 < 105: not taken either; began at 110: taken.
        assert!(tick(&mut w, 110, &s, &s).is_some());
        w.settle("api", secs(110), Verdict::Inconclusive);
        let j = tick(&mut w, 120, &s, &s).unwrap();
        assert_eq!(j.analysis.canary_requests, 10.0);
    }

    #[test]
    fn a_failed_collection_is_inconclusive_and_names_the_failure() {
        let mut w = Windows::default();
        w.reset("api", secs(0), Reset::Step);
        let span = w.next_span(secs(10), secs(10));
        let e = SourceError::Unreachable("connection refused".into());
        let j = w
            .observe("api", secs(10), span, Err(&e), STAGE, &cfg(), secs(10))
            .unwrap();
        assert_eq!(j.analysis.verdict, Verdict::Inconclusive);
        assert!(
            j.analysis.reason.contains("connection refused"),
            "{}",
            j.analysis.reason
        );
    }

    #[test]
    fn tick_jitter_within_half_a_period_does_not_skip_an_interval() {
        let mut w = Windows::default();
        w.reset("api", secs(0), Reset::Step);
        let s = side(1.0, 0.0);
        let span = w.next_span(Duration::from_millis(9_600), secs(10));
        let judged = w.observe(
            "api",
            Duration::from_millis(9_600),
            span,
            Ok((Some(&s), Some(&s))),
            STAGE,
            &cfg(),
            secs(10),
        );
        assert!(
            judged.is_some(),
            "9.6 s + half a period reaches the 10 s interval"
        );
    }
}
