use std::time::Duration;

use super::*;
use crate::analysis::Histogram;
use crate::config::tests_support::sample_config;

fn criteria() -> AnalysisConfig {
    let mut c = sample_config().apps["api"].analysis.clone();
    c.min_requests = 100;
    c.error_ratio_tolerance = crate::config::Tolerance::Points(0.01);
    c.max_error_ratio = 0.2;
    c.max_latency = Some(Duration::from_millis(500));
    c
}

/// A side with `n` requests, `e` errors and every request taking `latency` seconds.
fn side(n: f64, e: f64, latency: f64) -> SideSample {
    let mut h = Histogram::default();
    for le in [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0] {
        h.add_bucket(le, if latency <= le { n } else { 0.0 });
    }
    h.add_bucket(f64::INFINITY, n);
    SideSample {
        requests: n,
        errors: e,
        latency: h,
    }
}

fn verdict_of(a: &Analysis, check: &str) -> Verdict {
    a.checks
        .iter()
        .find(|c| c.check.starts_with(check))
        .unwrap()
        .verdict
}

#[test]
fn below_min_requests_only_an_overwhelming_ceiling_breach_decides() {
    let c = criteria();
    let stable = side(1000.0, 0.0, 0.01);
    // 30 % errors over 99 requests, ceiling 20 %: likely above it, not beyond doubt.
    let a = judge(&side(99.0, 30.0, 0.01), &stable, &c);
    assert_eq!(a.verdict, Verdict::Inconclusive, "{a:#?}");
    assert!(a.reason.contains("too few requests"), "{}", a.reason);
    // Below 10 requests nothing decides, even a dead canary.
    let a = judge(&side(9.0, 9.0, 0.01), &stable, &c);
    assert_eq!(a.verdict, Verdict::Inconclusive, "{a:#?}");
    // 10 failed requests of 10: critical without waiting for 100.
    let a = judge(&side(10.0, 10.0, 0.01), &stable, &c);
    assert_eq!(a.verdict, Verdict::Critical, "{a:#?}");
    assert!(a.reason.contains("not waiting for 100"), "{}", a.reason);
    // Invalid stable counts: nothing decides, not even early.
    let a = judge(&side(50.0, 50.0, 0.01), &side(f64::NAN, 0.0, 0.01), &c);
    assert_eq!(a.verdict, Verdict::Inconclusive, "{a:#?}");
    // A slow canary with few requests is not failed early: only the ceiling is.
    let a = judge(&side(50.0, 0.0, 0.9), &stable, &c);
    assert_eq!(a.verdict, Verdict::Inconclusive, "{a:#?}");
    let a = judge(&side(1000.0, 0.0, 0.01), &side(50.0, 0.0, 0.01), &c);
    assert_eq!(a.verdict, Verdict::Inconclusive);
}

#[test]
fn healthy_canary_with_enough_data_passes() {
    let c = criteria();
    let a = judge(&side(2000.0, 20.0, 0.02), &side(18000.0, 180.0, 0.02), &c);
    assert_eq!(a.verdict, Verdict::Pass, "{a:#?}");
    assert_eq!(a.checks.len(), 3);
    let err = &a.checks[1];
    assert_eq!(err.canary, Some(0.01));
    assert_eq!(err.stable, Some(0.01));
}

#[test]
fn all_errors_is_critical_at_the_first_window_with_min_requests() {
    let a = judge(
        &side(100.0, 100.0, 0.01),
        &side(900.0, 9.0, 0.01),
        &criteria(),
    );
    assert_eq!(a.verdict, Verdict::Critical, "{a:#?}");
    assert!(a.reason.contains("ceiling"), "{}", a.reason);
}

#[test]
fn clear_regression_below_the_ceiling_fails() {
    // 1 % → 5 %: worse than the 1-point tolerance, below the 20 % ceiling, not overwhelming.
    let a = judge(
        &side(2000.0, 100.0, 0.01),
        &side(18000.0, 180.0, 0.01),
        &criteria(),
    );
    assert_eq!(verdict_of(&a, "error_ratio"), Verdict::Fail, "{a:#?}");
    assert_eq!(a.verdict, Verdict::Fail);
}

#[test]
fn overwhelming_regression_is_critical() {
    // 1 % → 15 % with plenty of data: worse by far more than max(5 × 1 %, 5 %).
    let a = judge(
        &side(5000.0, 750.0, 0.01),
        &side(45000.0, 450.0, 0.01),
        &criteria(),
    );
    assert_eq!(a.verdict, Verdict::Critical, "{a:#?}");
    assert!(a.reason.contains("overwhelmingly"), "{}", a.reason);
}

#[test]
fn small_sample_with_a_few_errors_is_inconclusive_not_pass() {
    // 2 errors in 100 against 1 %: cannot tell yet whether it is worse by a point.
    let a = judge(
        &side(100.0, 2.0, 0.01),
        &side(900.0, 9.0, 0.01),
        &criteria(),
    );
    assert_eq!(
        verdict_of(&a, "error_ratio"),
        Verdict::Inconclusive,
        "{a:#?}"
    );
    assert_eq!(a.verdict, Verdict::Inconclusive);
}

#[test]
fn latency_regression_fails_by_ratio_and_by_absolute_limit() {
    let c = criteria();
    // 20 ms vs 320 ms: ratio and limit-free.
    let a = judge(&side(1000.0, 10.0, 0.32), &side(9000.0, 90.0, 0.02), &c);
    assert_eq!(verdict_of(&a, "latency"), Verdict::Fail, "{a:#?}");
    // Above max_latency even though stable is as slow.
    let a = judge(&side(1000.0, 0.0, 0.9), &side(9000.0, 0.0, 0.9), &c);
    assert_eq!(verdict_of(&a, "latency"), Verdict::Fail, "{a:#?}");
    assert!(a.reason.contains("limit"), "{}", a.reason);
}

#[test]
fn tiny_latency_differences_are_within_tolerance() {
    // 2 ms vs 5 ms is 2.5x, but 3 ms apart: below the 10 ms tolerance.
    let a = judge(
        &side(1000.0, 0.0, 0.005),
        &side(9000.0, 0.0, 0.002),
        &criteria(),
    );
    assert_eq!(verdict_of(&a, "latency"), Verdict::Pass, "{a:#?}");
}

#[test]
fn latency_without_histogram_is_inconclusive() {
    let mut canary = side(1000.0, 0.0, 0.01);
    canary.latency = Histogram::default();
    let a = judge(&canary, &side(9000.0, 0.0, 0.01), &criteria());
    assert_eq!(verdict_of(&a, "latency"), Verdict::Inconclusive);
    assert_eq!(a.verdict, Verdict::Inconclusive);
}

#[test]
fn nan_inf_and_impossible_counts_are_never_a_pass() {
    let c = criteria();
    let good = side(1000.0, 0.0, 0.01);
    for bad in [
        SideSample {
            requests: f64::NAN,
            ..good.clone()
        },
        SideSample {
            requests: f64::INFINITY,
            ..good.clone()
        },
        SideSample {
            errors: f64::NAN,
            ..good.clone()
        },
        SideSample {
            errors: -1.0,
            ..good.clone()
        },
        SideSample {
            errors: 2000.0,
            ..good.clone()
        },
        SideSample {
            requests: -5.0,
            ..good.clone()
        },
    ] {
        for (canary, stable) in [(&bad, &good), (&good, &bad)] {
            let a = judge(canary, stable, &c);
            assert_ne!(a.verdict, Verdict::Pass, "{canary:?} vs {stable:?}: {a:#?}");
            assert!(a.verdict == Verdict::Inconclusive, "{a:#?}");
        }
    }
}

/// SplitMix64, for seeded property checks.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn property_more_canary_errors_never_improve_the_verdict() {
    let c = criteria();
    let mut rng = Rng(42);
    for _ in 0..300 {
        let n = 100.0 + rng.below(5000) as f64;
        let ns = 100.0 + rng.below(50000) as f64;
        let es = rng.below(ns as u64 / 10) as f64;
        let e1 = rng.below(n as u64) as f64;
        let e2 = (e1 + 1.0 + rng.below(n as u64) as f64).min(n);
        let stable = side(ns, es, 0.01);
        let v1 = judge(&side(n, e1, 0.01), &stable, &c);
        let v2 = judge(&side(n, e2, 0.01), &stable, &c);
        let rank = |v: Verdict| match v {
            Verdict::Pass => 0,
            Verdict::Inconclusive => 1,
            Verdict::Fail => 2,
            Verdict::Critical => 3,
        };
        assert!(
            rank(v2.verdict) >= rank(v1.verdict),
            "n={n} e1={e1} e2={e2} ns={ns} es={es}: {:?} then {:?}",
            v1.verdict,
            v2.verdict
        );
    }
}

#[test]
fn property_below_min_requests_is_never_pass_or_fail_and_critical_only_above_the_ceiling() {
    let c = criteria();
    let mut rng = Rng(7);
    let mut critical = 0;
    for _ in 0..500 {
        let n = rng.below(100) as f64;
        let e = rng.below(n as u64 + 1) as f64;
        let a = judge(&side(n, e, 0.01), &side(10_000.0, 100.0, 0.01), &c);
        match a.verdict {
            Verdict::Inconclusive => {}
            Verdict::Critical => {
                critical += 1;
                assert!(n >= FEW_REQUESTS, "n={n} e={e}");
                assert!(e / n > c.max_error_ratio, "n={n} e={e}: {}", a.reason);
            }
            v => panic!("n={n} e={e}: {v:?}"),
        }
    }
    assert!(
        critical > 0,
        "the sample holds canaries far above the ceiling"
    );
}

#[test]
fn with_only_canary_traffic_absolute_limits_decide_and_nothing_passes() {
    // At 100 % (promoting) stable has no traffic.
    let c = criteria();
    let none = SideSample::default();
    let a = judge(&side(500.0, 500.0, 0.01), &none, &c);
    assert_eq!(
        a.verdict,
        Verdict::Critical,
        "the ceiling needs no stable: {a:#?}"
    );
    let a = judge(&side(500.0, 0.0, 0.9), &none, &c);
    assert_eq!(
        a.verdict,
        Verdict::Fail,
        "max_latency needs no stable: {a:#?}"
    );
    let a = judge(&side(500.0, 5.0, 0.01), &none, &c);
    assert_eq!(
        a.verdict,
        Verdict::Inconclusive,
        "a healthy canary alone is not a pass: {a:#?}"
    );
}
