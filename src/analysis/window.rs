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

use std::collections::BTreeMap;
use std::time::Duration;

use super::judge::{judge, Analysis, Verdict};
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
}

#[derive(Debug, Clone)]
struct Window {
    canary: SideSample,
    stable: SideSample,
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

    /// Adds what the collection over `span` saw for `app` and, when the app's interval has
    /// passed, judges the window under `cfg`. A failed collection adds nothing and judges as
    /// inconclusive, naming the failure.
    pub fn observe(
        &mut self,
        app: &str,
        now: Duration,
        span: Span,
        figures: Figures<'_>,
        cfg: &AnalysisConfig,
        period: Duration,
    ) -> Option<Judged> {
        if !self.apps.contains_key(app) {
            self.start(app, now, false);
        }
        let w = self.apps.get_mut(app).expect("just started");
        if let (Ok((stable, canary)), true) = (&figures, w.takes(span.began)) {
            if let Some(s) = stable {
                w.stable.add(s);
            }
            if let Some(c) = canary {
                w.canary.add(c);
            }
        }
        if now.saturating_sub(w.last_judged) + period / 2 < cfg.interval {
            return None;
        }
        w.last_judged = now;
        let analysis = match figures {
            Ok(_) => judge(&w.canary, &w.stable, cfg),
            Err(e) => Analysis::unavailable(e.to_string()),
        };
        Some(Judged {
            analysis,
            window_seconds: now.saturating_sub(w.started).as_secs_f64(),
        })
    }

    /// After a persisted transition that resets the window.
    pub fn reset(&mut self, app: &str, now: Duration, why: Reset) {
        if why == Reset::Promoted {
            self.swapped.insert(app.to_string(), now);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests_support::sample_config;

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
            .observe("api", secs(10), span, Err(&e), &cfg(), secs(10))
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
            &cfg(),
            secs(10),
        );
        assert!(
            judged.is_some(),
            "9.6 s + half a period reaches the 10 s interval"
        );
    }
}
