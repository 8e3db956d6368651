//! `[apps.NAME.analysis]`: the steps, the judge's limits and the timings of one app.

use std::time::Duration;

use super::check::{Check, FloatRange};
use super::key::KeyPath;
use super::raw::{RawAnalysis, RawTolerance};
use super::typed::AnalysisConfig;
use super::{Tolerance, ToleranceError};

/// The steps when neither `steps` nor `step_weight` is set.
const DEFAULT_STEPS: [u8; 5] = [5, 10, 25, 50, 100];

impl AnalysisConfig {
    pub(super) fn from_raw(raw: RawAnalysis, at: &KeyPath, cx: &mut Check) -> Option<Self> {
        let interval_key = at.key("interval");
        let interval = cx.duration(&interval_key, &raw.interval).and_then(|d| {
            cx.check(
                &interval_key,
                d,
                |d| *d >= Duration::from_millis(100),
                |_| "must be at least 100ms".into(),
            )
        });
        let steps = steps(&raw, at, cx);
        let min_requests = cx.int(&at.key("min_requests"), raw.min_requests, 1..=i64::MAX);
        let error_ratio_tolerance = tolerance(
            &raw.error_ratio_tolerance,
            &at.key("error_ratio_tolerance"),
            cx,
        );
        let min_step_duration_key = at.key("min_step_duration");
        let min_step_duration = match &raw.min_step_duration {
            None => interval,
            Some(text) => cx.duration(&min_step_duration_key, text).and_then(|d| {
                cx.check(
                    &min_step_duration_key,
                    d,
                    |d| !d.is_zero(),
                    |_| {
                        "must be more than 0: each step needs some time at its weight, e.g. \"30s\""
                            .into()
                    },
                )
            }),
        };
        let false_rollback_bound = cx.float(
            &at.key("false_rollback_bound"),
            raw.false_rollback_bound,
            FloatRange::between(0.0, 1.0),
        );
        let promotion_confidence = cx.float(
            &at.key("promotion_confidence"),
            raw.promotion_confidence,
            FloatRange::between(0.0, 1.0),
        );
        let max_error_ratio = cx.float(
            &at.key("max_error_ratio"),
            raw.max_error_ratio,
            FloatRange::above_up_to(0.0, 1.0),
        );
        let latency_quantile = cx.float(
            &at.key("latency_quantile"),
            raw.latency_quantile,
            FloatRange::between(0.0, 1.0),
        );
        let max_latency_ratio = cx.float(
            &at.key("max_latency_ratio"),
            raw.max_latency_ratio,
            FloatRange::at_least(1.0),
        );
        let max_latency_key = at.key("max_latency");
        let max_latency = cx.optional(raw.max_latency, |cx, t| cx.duration(&max_latency_key, &t));
        let latency_tolerance = cx.duration(&at.key("latency_tolerance"), &raw.latency_tolerance);
        let failure_limit = cx.int(&at.key("failure_limit"), raw.failure_limit, 1..=1000);
        let max_inconclusive = cx.duration(&at.key("max_inconclusive"), &raw.max_inconclusive);
        Some(AnalysisConfig {
            interval: interval?,
            steps: steps?,
            min_requests: min_requests?,
            min_step_duration: min_step_duration?,
            error_ratio_tolerance: error_ratio_tolerance?,
            false_rollback_bound: false_rollback_bound?,
            promotion_confidence: promotion_confidence?,
            dry_run: raw.dry_run,
            max_error_ratio: max_error_ratio?,
            latency_quantile: latency_quantile?,
            max_latency_ratio: max_latency_ratio?,
            max_latency: max_latency?,
            latency_tolerance: latency_tolerance?,
            failure_limit: failure_limit?,
            max_inconclusive: max_inconclusive?,
        })
    }
}

/// A tolerance in points (`0.01`) or relative to stable (`"50%"`).
fn tolerance(raw: &RawTolerance, at: &KeyPath, cx: &mut Check) -> Option<Tolerance> {
    let parsed = match raw {
        RawTolerance::Points(p) => {
            let t = Tolerance::Points(*p);
            if t.valid() {
                Ok(t)
            } else {
                Err(ToleranceError(p.to_string()))
            }
        }
        RawTolerance::Text(text) => text.parse::<Tolerance>(),
    };
    match parsed {
        Ok(t) => Some(t),
        Err(e) => cx.fail(at, e.to_string()),
    }
}

/// The weights to walk through: `steps` as written, or `step_weight` up to `max_weight`.
fn steps(raw: &RawAnalysis, at: &KeyPath, cx: &mut Check) -> Option<Vec<u8>> {
    match (&raw.steps, raw.step_weight, raw.max_weight) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => cx.fail(
            &at.key("steps"),
            "set either steps or step_weight/max_weight, not both",
        ),
        (Some(steps), None, None) => listed_steps(steps, &at.key("steps"), cx),
        // A `step_weight` of 0 is the same as none.
        (None, None | Some(0), _) => Some(DEFAULT_STEPS.to_vec()),
        (None, Some(step), max) => {
            let step = cx.int::<u8>(&at.key("step_weight"), step, 1..=100)?;
            let max = max.unwrap_or(100);
            cx.ensure(
                &at.key("max_weight"),
                (i64::from(step)..=100).contains(&max),
                || format!("= {max}: must be step_weight..=100"),
            )?;
            Some((1..=max as u8 / step).map(|k| k * step).collect())
        }
    }
}

fn listed_steps(steps: &[i64], at: &KeyPath, cx: &mut Check) -> Option<Vec<u8>> {
    let below_100 = cx.ensure(at, steps.iter().any(|w| (1..100).contains(w)), || {
        "needs at least one weight below 100 (a final 100 is the promotion itself)".into()
    });
    let weights = cx.list(at, steps.iter().enumerate(), |cx, k, (i, &w)| {
        if !(1..=100).contains(&w) {
            return cx.fail(k, format!("= {w}: weights must be 1..=100"));
        }
        match i.checked_sub(1).map(|p| steps[p]) {
            Some(prev) if w <= prev => cx.fail(
                k,
                format!("= {w}: steps must be strictly ascending (previous is {prev})"),
            ),
            _ => Some(w as u8),
        }
    });
    below_100?;
    weights
}
