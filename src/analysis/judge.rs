//! The judge: compares the canary against stable over one window and says `pass`, `fail`,
//! `critical` or `inconclusive`, with the figures and the reason for every check. Pure.
//!
//! # Method
//!
//! **Requests.** The canary needs `min_requests` in the window before any check decides. With
//! that, its absolute limits (the error ceiling, `max_latency`) can fail it; comparisons with
//! stable, and every pass, need `min_requests` on both sides too. Too little data is never a pass.
//! (At 100 %, while promoting, stable has no traffic: only the absolute limits apply.) One
//! exception, so that a broken canary with little traffic is not left serving it: from
//! [`FEW_REQUESTS`] canary requests, the error ceiling is critical on overwhelming evidence
//! (`P(p_canary > max_error_ratio) ≥ 0.999`, e.g. 10 failed requests of 10).
//!
//! **Error ratio** (5xx / requests). Each side's error rate gets a Beta posterior under the
//! Jeffreys prior: `Beta(errors + ½, requests − errors + ½)`. From the two posteriors the judge
//! computes `P_worse = P(p_canary − p_stable > error_ratio_tolerance)`:
//! - `critical` when `P(p_canary > max_error_ratio) ≥ 0.99` (the hard ceiling), or when the canary
//!   is overwhelmingly worse: `P(p_canary − p_stable > max(5 × tolerance, 0.05)) ≥ 0.999`;
//! - `fail` when `P_worse ≥ 0.95`: evidence that the canary is worse by more than the tolerance;
//! - `pass` when `P_worse ≤ 0.05`: evidence that it is not;
//! - `inconclusive` in between; the controller keeps accumulating the window until the evidence
//!   decides.
//!
//! **Latency.** The `latency_quantile` of each side from the histogram buckets, interpolated as
//! Prometheus' `histogram_quantile` does. `fail` when the canary's quantile exceeds `max_latency`,
//! or exceeds `max_latency_ratio` × stable's by more than `latency_tolerance` (so that 1 ms
//! against 2 ms is not a regression). No histogram or no observations: inconclusive.
//!
//! **Overall** verdict: the worst check, ordered pass < inconclusive < fail < critical. NaN,
//! infinities, negative counts or more errors than requests make a check inconclusive, never a
//! pass.

use serde::Serialize;

use super::stats::{prob_exceeds_by, RatePosterior};
use super::SideSample;
use crate::config::AnalysisConfig;

/// Evidence needed for a `fail` (and, mirrored, for a `pass`) of the error check.
pub const FAIL_EVIDENCE: f64 = 0.95;
/// Evidence needed for the ceiling to be critical.
pub const CEILING_EVIDENCE: f64 = 0.99;
/// Evidence needed for an overwhelming difference to be critical.
pub const OVERWHELMING_EVIDENCE: f64 = 0.999;
/// Canary requests from which the error ceiling can be critical before `min_requests` (or
/// `min_requests`, when lower), with [`OVERWHELMING_EVIDENCE`] instead of [`CEILING_EVIDENCE`].
pub const FEW_REQUESTS: f64 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Inconclusive,
    Fail,
    Critical,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Fail => "fail",
            Verdict::Critical => "critical",
        }
    }
}

/// One check's figures and verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub check: String,
    /// Canary's value (ratio, seconds or count); `None` when it could not be computed.
    pub canary: Option<f64>,
    pub stable: Option<f64>,
    /// The limit, in words.
    pub limit: String,
    pub verdict: Verdict,
    pub reason: String,
}

/// The judge's answer for one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub verdict: Verdict,
    pub reason: String,
    pub canary_requests: f64,
    pub stable_requests: f64,
    pub checks: Vec<CheckResult>,
}

impl Analysis {
    /// An analysis with no figures: the source could not be read.
    pub fn unavailable(reason: String) -> Analysis {
        Analysis {
            verdict: Verdict::Inconclusive,
            reason,
            canary_requests: 0.0,
            stable_requests: 0.0,
            checks: Vec::new(),
        }
    }
}

/// How much data a window holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Data {
    /// The canary has fewer than `min_requests` (or the counts are invalid): no check decides.
    Insufficient,
    /// Only the canary has enough: its absolute limits (error ceiling, `max_latency`) can fail
    /// it, nothing can pass it. This is the case at 100 %, while promoting.
    CanaryOnly,
    /// Both sides have enough: every check decides.
    Both,
}

fn valid_count(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// Whether both sides' counts are finite and not negative.
fn counts_valid_of(canary: &SideSample, stable: &SideSample) -> bool {
    [
        canary.requests,
        stable.requests,
        canary.errors,
        stable.errors,
    ]
    .iter()
    .all(|x| valid_count(*x))
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn ms(seconds: f64) -> String {
    format!("{:.1}ms", seconds * 1000.0)
}

pub fn judge(canary: &SideSample, stable: &SideSample, c: &AnalysisConfig) -> Analysis {
    let (nc, ns) = (canary.requests, stable.requests);
    let min = c.min_requests as f64;
    let counts_valid = counts_valid_of(canary, stable);
    let requests = if !counts_valid {
        check(
            "requests",
            Some(nc),
            Some(ns),
            format!(">= {} per side", c.min_requests),
            Verdict::Inconclusive,
            "the source returned invalid counts (NaN, infinite or negative)".into(),
        )
    } else if nc < min || ns < min {
        check(
            "requests",
            Some(nc),
            Some(ns),
            format!(">= {} per side", c.min_requests),
            Verdict::Inconclusive,
            format!(
                "too few requests: canary {nc:.0}, stable {ns:.0}, need {} each",
                c.min_requests
            ),
        )
    } else {
        check(
            "requests",
            Some(nc),
            Some(ns),
            format!(">= {} per side", c.min_requests),
            Verdict::Pass,
            "enough requests on both sides".into(),
        )
    };
    let data = if !counts_valid || nc < min {
        Data::Insufficient
    } else if ns < min {
        Data::CanaryOnly
    } else {
        Data::Both
    };
    let mut checks = vec![requests];
    checks.push(error_check(canary, stable, c, data));
    checks.push(latency_check(canary, stable, c, data));

    let worst = checks
        .iter()
        .map(|ch| ch.verdict)
        .max()
        .unwrap_or(Verdict::Inconclusive);
    let reason = checks
        .iter()
        .filter(|ch| ch.verdict == worst)
        .map(|ch| format!("{}: {}", ch.check, ch.reason))
        .collect::<Vec<_>>()
        .join("; ");
    Analysis {
        verdict: worst,
        reason,
        canary_requests: nc,
        stable_requests: ns,
        checks,
    }
}

/// Why the canary's latency quantile is above `max_latency`, when it is, with at least
/// `min_requests` canary requests in `canary`.
pub fn above_max_latency(canary: &SideSample, c: &AnalysisConfig) -> Option<String> {
    let max = c.max_latency?.as_secs_f64();
    if canary.requests < c.min_requests as f64 {
        return None;
    }
    let qc = canary
        .latency
        .quantile(c.latency_quantile)
        .filter(|q| q.is_finite())?;
    (qc > max).then(|| format!("canary {} is above the {} limit", ms(qc), ms(max)))
}

fn check(
    name: &str,
    canary: Option<f64>,
    stable: Option<f64>,
    limit: String,
    verdict: Verdict,
    reason: String,
) -> CheckResult {
    CheckResult {
        check: name.into(),
        canary,
        stable,
        limit,
        verdict,
        reason,
    }
}

fn error_check(
    canary: &SideSample,
    stable: &SideSample,
    c: &AnalysisConfig,
    data: Data,
) -> CheckResult {
    let limit = format!(
        "canary <= {}, ceiling {}",
        c.error_ratio_tolerance,
        pct(c.max_error_ratio)
    );
    let ratio =
        |s: &SideSample| (s.requests > 0.0 && valid_count(s.errors)).then(|| s.errors / s.requests);
    let (rc, rs) = (ratio(canary), ratio(stable));
    let tol = c.error_ratio_tolerance.excess_over(rs.unwrap_or(0.0));
    let out = |v, reason| check("error_ratio", rc, rs, limit.clone(), v, reason);
    if canary.errors > canary.requests || stable.errors > stable.requests {
        return out(
            Verdict::Inconclusive,
            "the source reported more errors than requests".into(),
        );
    }
    if data == Data::Insufficient {
        let few = FEW_REQUESTS.min(c.min_requests as f64);
        // Only short of requests, with valid counts, and an observed ratio above the ceiling.
        let early = counts_valid_of(canary, stable)
            && canary.requests >= few
            && canary.requests < c.min_requests as f64
            && rc.is_some_and(|r| r > c.max_error_ratio);
        if early {
            let pc = RatePosterior::new(canary.errors, canary.requests);
            let p_ceiling = pc.prob_above(c.max_error_ratio);
            if p_ceiling >= OVERWHELMING_EVIDENCE {
                return out(
                    Verdict::Critical,
                    format!(
                        "canary {} over only {:.0} requests is above the {} ceiling beyond doubt \
                         (P = {p_ceiling:.4}); not waiting for {}",
                        pct(rc.unwrap_or(0.0)),
                        canary.requests,
                        pct(c.max_error_ratio),
                        c.min_requests
                    ),
                );
            }
        }
        return out(Verdict::Inconclusive, "waiting for enough requests".into());
    }
    let pc = RatePosterior::new(canary.errors, canary.requests);
    let ps = RatePosterior::new(stable.errors, stable.requests);
    let (rc_v, rs_v) = (rc.unwrap_or(0.0), rs.unwrap_or(0.0));
    let p_ceiling = pc.prob_above(c.max_error_ratio);
    if p_ceiling >= CEILING_EVIDENCE {
        return out(
            Verdict::Critical,
            format!(
                "canary {} is above the {} ceiling (P = {p_ceiling:.4})",
                pct(rc_v),
                pct(c.max_error_ratio)
            ),
        );
    }
    if data == Data::CanaryOnly {
        return out(
            Verdict::Inconclusive,
            format!(
                "canary {} is below the ceiling; stable has too few requests to compare",
                pct(rc_v)
            ),
        );
    }
    let p_worse = prob_exceeds_by(pc, ps, tol);
    // The overwhelming margin is at least the tolerance, so its probability is at most
    // `p_worse`: only worth computing when `p_worse` reaches the evidence it needs.
    let margin = (5.0 * tol).max(0.05);
    if p_worse >= OVERWHELMING_EVIDENCE {
        let p_overwhelming = prob_exceeds_by(pc, ps, margin);
        if p_overwhelming >= OVERWHELMING_EVIDENCE {
            return out(
            Verdict::Critical,
            format!(
                "canary {} is overwhelmingly worse than stable {} (P(worse by > {}) = {p_overwhelming:.4})",
                pct(rc_v),
                pct(rs_v),
                pct(margin)
            ),
        );
        }
    }
    if p_worse >= FAIL_EVIDENCE {
        out(
            Verdict::Fail,
            format!(
                "canary {} is worse than stable {} by more than {} (P = {p_worse:.3})",
                pct(rc_v),
                pct(rs_v),
                pct(tol)
            ),
        )
    } else if p_worse <= 1.0 - FAIL_EVIDENCE {
        out(
            Verdict::Pass,
            format!(
                "canary {} is not worse than stable {} by more than {} (P(worse) = {p_worse:.3})",
                pct(rc_v),
                pct(rs_v),
                pct(tol)
            ),
        )
    } else {
        out(
            Verdict::Inconclusive,
            format!(
                "canary {} vs stable {}: not enough evidence either way yet (P(worse by > {}) = {p_worse:.3})",
                pct(rc_v),
                pct(rs_v),
                pct(tol)
            ),
        )
    }
}

fn latency_check(
    canary: &SideSample,
    stable: &SideSample,
    c: &AnalysisConfig,
    data: Data,
) -> CheckResult {
    let q = c.latency_quantile;
    let name = format!("latency_p{}", (q * 1000.0).round() / 10.0);
    let mut limit = format!(
        "canary <= {}x stable (+{} tolerance)",
        c.max_latency_ratio,
        ms(c.latency_tolerance.as_secs_f64())
    );
    if let Some(max) = c.max_latency {
        limit.push_str(&format!(", <= {}", ms(max.as_secs_f64())));
    }
    let (qc, qs) = (canary.latency.quantile(q), stable.latency.quantile(q));
    let out = |v, reason| check(&name, qc, qs, limit.clone(), v, reason);
    if data == Data::Insufficient {
        return out(Verdict::Inconclusive, "waiting for enough requests".into());
    }
    let Some(qc) = qc.filter(|q| q.is_finite()) else {
        return out(
            Verdict::Inconclusive,
            "no latency histogram for the canary".into(),
        );
    };
    if let Some(max) = c.max_latency {
        if qc > max.as_secs_f64() {
            return out(
                Verdict::Fail,
                format!(
                    "canary {} is above the {} limit",
                    ms(qc),
                    ms(max.as_secs_f64())
                ),
            );
        }
    }
    if data == Data::CanaryOnly {
        return out(
            Verdict::Inconclusive,
            "stable has too few requests to compare".into(),
        );
    }
    let Some(qs) = qs.filter(|q| q.is_finite()) else {
        return out(
            Verdict::Inconclusive,
            "no latency histogram for stable".into(),
        );
    };
    if qc > qs * c.max_latency_ratio && qc - qs > c.latency_tolerance.as_secs_f64() {
        return out(
            Verdict::Fail,
            format!(
                "canary {} is {:.2}x stable {} (limit {}x)",
                ms(qc),
                if qs > 0.0 { qc / qs } else { f64::INFINITY },
                ms(qs),
                c.max_latency_ratio
            ),
        );
    }
    out(
        Verdict::Pass,
        format!("canary {} vs stable {}", ms(qc), ms(qs)),
    )
}

#[cfg(test)]
mod tests;
