use super::*;

// ---------------------------------------------------------------------------------------------
// A small deterministic traffic model.
// ---------------------------------------------------------------------------------------------

/// SplitMix64: enough randomness for these simulations, and no dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Binomial(n, p): by inversion while n·p is small (errors, here), else one draw per trial.
    fn binomial(&mut self, n: u64, p: f64) -> u64 {
        if n == 0 || p <= 0.0 {
            return 0;
        }
        if p >= 1.0 {
            return n;
        }
        if p > 0.5 {
            return n - self.binomial(n, 1.0 - p);
        }
        if n as f64 * p > 100.0 {
            return (0..n).filter(|_| self.uniform() < p).count() as u64;
        }
        let q = 1.0 - p;
        let (s, a) = (p / q, (n as f64 + 1.0) * p / q);
        let mut r = q.powf(n as f64);
        let mut u = self.uniform();
        let mut x = 0;
        while u >= r && x < n {
            u -= r;
            x += 1;
            r *= a / x as f64 - s;
        }
        x
    }

    /// `mean` requests, give or take 30 %.
    fn requests(&mut self, mean: f64) -> u64 {
        (mean * (0.7 + 0.6 * self.uniform())).round() as u64
    }
}

/// The bench's latency model: lognormal, median 50 ms, σ 0.5, in the shipped Traefik buckets.
const BUCKETS: [f64; 15] = [
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    f64::INFINITY,
];

/// Probability of each bucket when every latency is multiplied by `slower`.
fn bucket_probs(slower: f64) -> Vec<f64> {
    let cdf = |x: f64| {
        if x.is_infinite() {
            1.0
        } else {
            normal_cdf((x / slower / 0.05).ln() / 0.5)
        }
    };
    let mut prev = 0.0;
    BUCKETS
        .iter()
        .map(|&le| {
            let c = cdf(le);
            let p = c - prev;
            prev = c;
            p.max(0.0)
        })
        .collect()
}

/// Φ(z), Abramowitz–Stegun 26.2.17 (error below 7.5e-8).
fn normal_cdf(z: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.231_641_9 * z.abs());
    let poly = t
        * (0.319_381_530
            + t * (-0.356_563_782
                + t * (1.781_477_937 + t * (-1.821_255_978 + t * 1.330_274_429))));
    let tail = (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt() * poly;
    if z >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// One side of one tick: `n` requests, Binomial(n, p_err) errors, each request's latency
/// drawn over the buckets (`probs`), or no histogram.
fn draw(rng: &mut Rng, n: u64, p_err: f64, probs: Option<&[f64]>) -> SideSample {
    let errors = rng.binomial(n, p_err);
    let mut latency = Histogram::default();
    if let Some(probs) = probs {
        let mut per_bucket = vec![0u64; BUCKETS.len()];
        for _ in 0..n {
            let u = rng.uniform();
            let mut cdf = 0.0;
            let i = probs
                .iter()
                .position(|p| {
                    cdf += p;
                    u < cdf
                })
                .unwrap_or(BUCKETS.len() - 1);
            per_bucket[i] += 1;
        }
        let mut cumulative = 0;
        for (le, c) in BUCKETS.iter().zip(per_bucket) {
            cumulative += c;
            latency.add_bucket(*le, cumulative as f64);
        }
    }
    SideSample {
        requests: n as f64,
        errors: errors as f64,
        latency,
    }
}

/// The canary weights of a release (below 100 %).
const STEPS: [f64; 4] = [5.0, 10.0, 25.0, 50.0];

/// A release's traffic: `rps` requests per tick split by the step's weight, `ticks_per_step`
/// ticks at each step below the last, which lasts until `ticks`; error rates per step.
#[derive(Clone)]
struct Traffic {
    rps: f64,
    ticks_per_step: u64,
    ticks: u64,
    stable_errors: f64,
    canary_errors: [f64; 4],
    /// Latency: `None` for no histograms, else how much slower the canary is.
    canary_slower: Option<f64>,
}

impl Traffic {
    fn errors(rps: f64, ticks_per_step: u64, stable: f64, canary: f64) -> Traffic {
        Traffic {
            rps,
            ticks_per_step,
            ticks: ticks_per_step * STEPS.len() as u64,
            stable_errors: stable,
            canary_errors: [canary; 4],
            canary_slower: None,
        }
    }

    fn ticks(&self) -> u64 {
        self.ticks
    }

    fn for_ticks(self, ticks: u64) -> Traffic {
        Traffic { ticks, ..self }
    }

    /// The step and both sides of tick `k` (0-based).
    fn tick(
        &self,
        rng: &mut Rng,
        k: u64,
        probs: &Option<(Vec<f64>, Vec<f64>)>,
    ) -> (usize, SideSample, SideSample) {
        let step = ((k / self.ticks_per_step) as usize).min(STEPS.len() - 1);
        let w = STEPS[step] / 100.0;
        let (nc, ns) = (
            rng.requests(self.rps * w),
            rng.requests(self.rps * (1.0 - w)),
        );
        let (pc, ps) = match probs {
            Some((c, s)) => (Some(c.as_slice()), Some(s.as_slice())),
            None => (None, None),
        };
        let canary = draw(rng, nc, self.canary_errors[step], pc);
        let stable = draw(rng, ns, self.stable_errors, ps);
        (step, canary, stable)
    }

    fn probs(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        self.canary_slower
            .map(|slower| (bucket_probs(slower), bucket_probs(1.0)))
    }
}

/// How a simulated release ended.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Outcome {
    /// The tick (1-based) at which the harm test fired.
    harm: Option<u64>,
    /// The first tick at which every check was bounded.
    bounded: Option<u64>,
}

/// Feeds a whole release, watching every tick.
fn run(params: Params, traffic: &Traffic, seed: u64) -> Outcome {
    let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0x5EED);
    let probs = traffic.probs();
    let mut ev = ReleaseEvidence::new(params, STEPS.len()).unwrap();
    let mut out = Outcome {
        harm: None,
        bounded: None,
    };
    for k in 0..traffic.ticks() {
        let (step, canary, stable) = traffic.tick(&mut rng, k, &probs);
        ev.observe(step, &canary, &stable);
        match ev.finding() {
            Finding::Harm => {
                out.harm = Some(k + 1);
                return out;
            }
            Finding::Bounded if out.bounded.is_none() => out.bounded = Some(k + 1),
            _ => {}
        }
    }
    out
}

fn errors_only(alpha: f64, tolerance: Tolerance) -> Params {
    Params {
        alpha,
        errors: tolerance,
        latency: None,
        ..Params::default()
    }
}

fn rate(hits: usize, of: usize) -> f64 {
    hits as f64 / of as f64
}

/// Three standard deviations of a proportion `p` over `n` draws.
fn three_sd(p: f64, n: usize) -> f64 {
    3.0 * (p * (1.0 - p) / n as f64).sqrt()
}

fn sample(requests: f64, errors: f64) -> SideSample {
    SideSample {
        requests,
        errors,
        latency: Histogram::default(),
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

// ---------------------------------------------------------------------------------------------
// The harm test.
// ---------------------------------------------------------------------------------------------

#[test]
fn harm_is_detected_for_a_clearly_worse_canary() {
    // 1 % → 5 % at 100 requests per tick, tolerance 1 point.
    let traffic = Traffic::errors(100.0, 30, 0.01, 0.05);
    let params = errors_only(DEFAULT_ALPHA, Tolerance::Points(0.01));
    let mut ticks = Vec::new();
    for seed in 0..20 {
        let out = run(params, &traffic, seed);
        assert_eq!(out.bounded, None, "seed {seed}: a worse canary bounded");
        ticks.push(
            out.harm
                .unwrap_or_else(|| panic!("seed {seed}: not detected")),
        );
    }
    // About 1,000 canary requests (5 % to 50 % of 100 per tick) are enough.
    assert!(median(ticks.clone()) <= 60, "{ticks:?}");

    // The finding says why, with figures.
    let mut ev = ReleaseEvidence::new(params, 4).unwrap();
    for k in 0..60 {
        ev.observe(k / 30, &sample(20.0, 1.0), &sample(80.0, 1.0));
    }
    let a = ev.assess();
    assert_eq!(a.finding, Finding::Harm, "{a:#?}");
    let c = &a.checks[0];
    assert!(
        c.harm_at_tick.is_some() && c.harm_e >= c.harm_threshold,
        "{c:#?}"
    );
    assert_eq!(c.harm_threshold.round(), 100.0, "alpha 1 %, one check");
    for needle in [
        "canary 5.00%",
        "stable 1.25%",
        "stable + 1.00 pt",
        "false-rollback",
        "e = ",
    ] {
        assert!(a.reason.contains(needle), "{needle:?} not in {}", a.reason);
    }
}

/// 2,000 releases of identical versions, monitored at every tick while the split goes from
/// 5 % to 50 %: the harm test (α = 1 %) should almost never fire.
#[test]
fn identical_streams_rarely_fire() {
    let traffic = Traffic::errors(100.0, 25, 0.01, 0.01);
    let params = errors_only(DEFAULT_ALPHA, Tolerance::Points(0.01));
    let n = 2000;
    let fired = (0..n)
        .filter(|&seed| run(params, &traffic, seed as u64).harm.is_some())
        .count();
    eprintln!("identical: {fired} of {n} rolled back");
    assert!(
        rate(fired, n) <= DEFAULT_ALPHA + three_sd(DEFAULT_ALPHA, n),
        "{fired} of {n} identical releases rolled back"
    );
}

/// The guarantee itself: a canary exactly at the tolerance (the worst case the bound covers),
/// with a large α so that the rate can be measured, while the split changes at every step and
/// the requests per tick vary.
#[test]
fn a_canary_at_the_tolerance_fires_at_most_alpha_of_the_time() {
    let alpha = 0.1;
    let n = 1000;
    for (tolerance, stable, canary) in [
        (Tolerance::Points(0.01), 0.01, 0.02),
        (Tolerance::Relative(0.5), 0.02, 0.03 + RELATIVE_FLOOR),
    ] {
        let traffic = Traffic::errors(100.0, 25, stable, canary);
        let params = errors_only(alpha, tolerance);
        let fired = (0..n)
            .filter(|&seed| run(params, &traffic, 7919 + seed as u64).harm.is_some())
            .count();
        eprintln!("{tolerance:?} at the tolerance: {fired} of {n} rolled back (alpha {alpha})");
        assert!(
            rate(fired, n) <= alpha + three_sd(alpha, n),
            "{tolerance:?}: {fired} of {n} releases at the tolerance rolled back (alpha {alpha})"
        );
    }
}

/// The promotion bound's guarantee: a canary at the tolerance is shown within it at most
/// `1 − confidence` of the time.
#[test]
fn a_canary_at_the_tolerance_is_rarely_bounded() {
    let confidence = 0.8;
    let n = 1000;
    let traffic = Traffic::errors(100.0, 25, 0.01, 0.02);
    let params = Params {
        confidence,
        ..errors_only(DEFAULT_ALPHA, Tolerance::Points(0.01))
    };
    let bounded = (0..n)
        .filter(|&seed| {
            run(params, &traffic, 104_729 + seed as u64)
                .bounded
                .is_some()
        })
        .count();
    eprintln!("at the tolerance: {bounded} of {n} bounded (confidence {confidence})");
    let beta = 1.0 - confidence;
    assert!(
        rate(bounded, n) <= beta + three_sd(beta, n),
        "{bounded} of {n} releases at the tolerance bounded (allowed {beta})"
    );
}

#[test]
fn relative_tolerance_sees_a_doubling_that_one_point_does_not() {
    // 1 % → 2 % at 1,000 requests per tick.
    let traffic = Traffic::errors(1000.0, 20, 0.01, 0.02).for_ticks(600);
    let relative = errors_only(DEFAULT_ALPHA, Tolerance::Relative(0.5));
    let points = errors_only(DEFAULT_ALPHA, Tolerance::Points(0.01));
    let n = 20;
    let (mut by_ratio, mut by_points, mut bounded) = (0, 0, 0);
    for seed in 0..n {
        by_ratio += run(relative, &traffic, seed).harm.is_some() as usize;
        let out = run(points, &traffic, seed);
        by_points += out.harm.is_some() as usize;
        bounded += out.bounded.is_some() as usize;
    }
    assert!(
        by_ratio >= 19,
        "50 % relative caught only {by_ratio} of {n}"
    );
    // +1 point is exactly the absolute tolerance: neither harm nor a bound, mostly.
    assert!(by_points <= 1, "1 point absolute fired {by_points} of {n}");
    assert!(bounded <= 2, "1 point absolute bounded {bounded} of {n}");
}

#[test]
fn a_regression_that_appears_at_a_later_step_is_seen_at_that_step() {
    // Healthy for 3 × 200 ticks, then 5 % errors at 50 %: the harm test started at that step
    // sees it within a few ticks, without climbing back from the healthy steps' evidence.
    let mut traffic = Traffic::errors(100.0, 200, 0.01, 0.01);
    traffic.canary_errors[3] = 0.05;
    let params = errors_only(DEFAULT_ALPHA, Tolerance::Points(0.01));
    let mut after = Vec::new();
    for seed in 0..20 {
        let out = run(params, &traffic, seed);
        let harm = out
            .harm
            .unwrap_or_else(|| panic!("seed {seed}: not detected"));
        assert!(
            harm > 600,
            "seed {seed}: fired at {harm}, before the regression"
        );
        after.push(harm - 600);
    }
    assert!(
        median(after.clone()) <= 30,
        "ticks after the step began: {after:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Accumulation and persistence.
// ---------------------------------------------------------------------------------------------

#[test]
fn evidence_accumulates_across_steps() {
    // Exactly 1 % errors on both sides, 100 requests per tick, 20 ticks per step from 5 % to
    // 50 %: the release's evidence grows across the steps and bounds a 1-point regression;
    // evidence restarted at each step, on the same ticks, would not.
    let params = errors_only(DEFAULT_ALPHA, Tolerance::Points(0.01));
    let tick = |step: usize| {
        let w = STEPS[step];
        (sample(w, w / 100.0), sample(100.0 - w, (100.0 - w) / 100.0))
    };
    let mut release = ReleaseEvidence::new(params, 4).unwrap();
    let mut previous = 1.0;
    for step in 0..4 {
        let mut alone = ReleaseEvidence::new(params, 4).unwrap();
        for k in 0..20 {
            let (c, s) = tick(step);
            release.observe(step, &c, &s);
            alone.observe(step, &c, &s);
            let e = release.assess().checks[0].bound_e;
            // (The first tick only warms up: no bet before 50 stable requests.)
            if step + k > 0 {
                assert!(e > previous, "step {step}: {e} after {previous}");
            }
            previous = e;
        }
        assert_ne!(alone.finding(), Finding::Bounded, "step {step} alone");
    }
    let a = release.assess();
    assert_eq!(a.finding, Finding::Bounded, "{a:#?}");
    assert_eq!(a.checks[0].canary.requests, 1800.0);
    assert_eq!(a.canary_requests_at_step, 1000.0);
    assert!(
        a.reason
            .contains("canary <= stable + 1.00 pt at 95% confidence"),
        "{}",
        a.reason
    );
}

#[test]
fn a_restart_continues_identically() {
    let traffic = Traffic {
        canary_slower: Some(1.0),
        ..Traffic::errors(100.0, 15, 0.01, 0.01)
    };
    let probs = traffic.probs();
    let mut rng = Rng(7);
    let inputs: Vec<_> = (0..traffic.ticks())
        .map(|k| traffic.tick(&mut rng, k, &probs))
        .collect();
    let mut running = ReleaseEvidence::new(Params::default(), 4).unwrap();
    let (first, second) = inputs.split_at(inputs.len() / 2 + 3);
    for (step, c, s) in first {
        running.observe(*step, c, s);
    }
    let json = serde_json::to_string(&running).unwrap();
    let mut restored: ReleaseEvidence = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, running);
    for (step, c, s) in second {
        running.observe(*step, c, s);
        restored.observe(*step, c, s);
        assert_eq!(restored.assess(), running.assess());
        assert_eq!(running.assess().finding, running.finding());
    }
    assert_eq!(restored, running);
    assert!(running.latency.as_ref().unwrap().thresholds.is_some());
    assert_eq!(
        serde_json::to_string(&restored).unwrap(),
        serde_json::to_string(&running).unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// Degenerate input.
// ---------------------------------------------------------------------------------------------

fn assert_finite(a: &Assessment) {
    for c in &a.checks {
        for x in [c.harm_e, c.harm_threshold, c.bound_e, c.bound_threshold] {
            assert!(x.is_finite() && x >= 0.0, "{c:#?}");
        }
        for x in [
            c.canary.requests,
            c.canary.events,
            c.stable.requests,
            c.stable.events,
        ] {
            assert!(x.is_finite(), "{c:#?}");
        }
    }
    serde_json::to_string(a).expect("serializes");
}

#[test]
fn degenerate_inputs_never_panic_and_never_pass_on_no_data() {
    let mut ev = ReleaseEvidence::new(Params::default(), 4).unwrap();
    // No traffic at all, for a long time.
    for k in 0..500 {
        ev.observe(k / 100, &SideSample::default(), &SideSample::default());
    }
    let a = ev.assess();
    assert_eq!(a.finding, Finding::NoEvidenceOfHarm, "{a:#?}");
    assert!(a.reason.contains("no data"), "{}", a.reason);
    assert_finite(&a);
    // Only one side has traffic: nothing to compare (stable alone; the canary alone at 100 %).
    for (c, s) in [(0.0, 1000.0), (1000.0, 0.0)] {
        for _ in 0..200 {
            ev.observe(4, &sample(c, 0.0), &sample(s, 0.0));
        }
        assert_eq!(ev.finding(), Finding::NoEvidenceOfHarm);
    }
    // Garbage: ignored and counted, never a pass and never a rollback.
    let garbage = [
        (sample(10.0, 11.0), sample(100.0, 0.0)),
        (sample(f64::NAN, 0.0), sample(100.0, 1.0)),
        (sample(10.0, 0.0), sample(f64::INFINITY, 1.0)),
        (sample(-5.0, 0.0), sample(100.0, 1.0)),
        (sample(10.0, -1.0), sample(100.0, 1.0)),
        (sample(10.0, 0.0), sample(100.0, f64::NAN)),
    ];
    let before = ev.assess();
    for (c, s) in &garbage {
        for _ in 0..100 {
            ev.observe(4, c, s);
        }
    }
    let a = ev.assess();
    assert_eq!(a.invalid_ticks, 600);
    assert_eq!(a.finding, Finding::NoEvidenceOfHarm);
    assert_eq!(
        a.checks[0].canary, before.checks[0].canary,
        "garbage was counted"
    );
    assert_finite(&a);
    // A histogram whose counts shrink with the bound, or hold a NaN.
    let mut bad = Histogram::default();
    bad.add_bucket(0.1, 10.0);
    bad.add_bucket(f64::INFINITY, 5.0);
    let mut nan = Histogram::default();
    nan.add_bucket(0.1, f64::NAN);
    nan.add_bucket(f64::INFINITY, 5.0);
    for h in [bad, nan] {
        let s = SideSample {
            requests: 5.0,
            errors: 0.0,
            latency: h,
        };
        ev.observe(4, &s, &s);
    }
    assert_eq!(
        ev.assess().invalid_ticks,
        601,
        "a NaN bucket is dropped, not invalid"
    );
    assert_finite(&ev.assess());
}

#[test]
fn zero_errors_on_both_sides_is_evidence_not_harm() {
    // Clean traffic bounds a regression under both kinds of tolerance (the relative one through
    // its floor), and never fires.
    for tolerance in [Tolerance::Points(0.01), Tolerance::Relative(0.5)] {
        let mut ev = ReleaseEvidence::new(errors_only(DEFAULT_ALPHA, tolerance), 4).unwrap();
        let mut bounded_at = None;
        for k in 0..400 {
            ev.observe(k / 100, &sample(50.0, 0.0), &sample(50.0, 0.0));
            if bounded_at.is_none() && ev.finding() == Finding::Bounded {
                bounded_at = Some(k);
            }
        }
        assert!(bounded_at.is_some(), "{tolerance:?}: {:#?}", ev.assess());
        assert_finite(&ev.assess());
    }
    // Every request failing on both sides: not worse than stable, no harm.
    let mut ev =
        ReleaseEvidence::new(errors_only(DEFAULT_ALPHA, Tolerance::Points(0.01)), 4).unwrap();
    for k in 0..400 {
        ev.observe(k / 100, &sample(50.0, 50.0), &sample(50.0, 50.0));
    }
    assert_ne!(ev.finding(), Finding::Harm);
    assert_finite(&ev.assess());
}

// ---------------------------------------------------------------------------------------------
// Latency.
// ---------------------------------------------------------------------------------------------

#[test]
fn latency_thresholds_follow_stable_quantile_and_max_ratio() {
    let mut ev = ReleaseEvidence::new(Params::default(), 4).unwrap();
    let mut rng = Rng(3);
    let probs = bucket_probs(1.0);
    // Stable's p99 (160 ms) lies in (150 ms, 200 ms]: 200 ms and 1.5 × 200 ms = 300 ms are
    // bucket bounds. Before 500 stable requests with latencies nothing is tested.
    let s = draw(&mut rng, 400, 0.01, Some(&probs));
    ev.observe(0, &s, &s);
    let a = ev.assess();
    assert_eq!(a.checks[1].finding, CheckFinding::Waiting, "{a:#?}");
    assert!(
        a.checks[1].reason.contains("500 stable requests"),
        "{}",
        a.checks[1].reason
    );
    let mut chosen = std::collections::BTreeMap::new();
    for seed in 0..40 {
        let mut ev = ReleaseEvidence::new(Params::default(), 4).unwrap();
        let mut rng = Rng(seed);
        let s = draw(&mut rng, 2000, 0.01, Some(&probs));
        ev.observe(0, &s, &s);
        let th = ev.assess().checks[1].thresholds.expect("fixed");
        assert!(th.canary / th.stable >= 1.5 - 1e-9 && th.canary - th.stable >= 0.01);
        *chosen
            .entry(format!("{}/{}", th.stable, th.canary))
            .or_insert(0) += 1;
    }
    // Mostly 200/300 ms; when the sample puts p99 in (100, 150] ms, 100/150 ms (ratio 1.5)
    // rather than 150/300 ms (ratio 2).
    assert!(
        chosen.keys().all(|k| k == "0.2/0.3" || k == "0.1/0.15"),
        "{chosen:?}"
    );
    assert!(chosen["0.2/0.3"] >= 30, "{chosen:?}");

    // Buckets too coarse for the ratio: said so, and promotion does not wait for a check that
    // cannot be made (the errors decide, with the window's absolute limits and criticals).
    let mut coarse = Histogram::default();
    coarse.add_bucket(0.1, 995.0);
    coarse.add_bucket(f64::INFINITY, 1000.0);
    let s = SideSample {
        requests: 1000.0,
        errors: 0.0,
        latency: coarse,
    };
    let mut ev = ReleaseEvidence::new(Params::default(), 4).unwrap();
    for _ in 0..100 {
        ev.observe(0, &s, &s);
    }
    let a = ev.assess();
    assert_eq!(a.checks[1].finding, CheckFinding::Waiting);
    assert!(
        a.checks[1]
            .reason
            .contains("no bucket bound at or above 150.0ms"),
        "{}",
        a.checks[1].reason
    );
    assert!(
        a.checks[1].reason.contains("promotion does not wait"),
        "{}",
        a.checks[1].reason
    );
    assert_eq!(a.finding, Finding::Bounded);
}

#[test]
fn latency_twice_stable_is_rolled_back_and_equal_latency_is_bounded() {
    let params = Params {
        errors: Tolerance::Points(0.01),
        ..Params::default()
    };
    let same = Traffic {
        canary_slower: Some(1.0),
        ..Traffic::errors(100.0, 10, 0.001, 0.001).for_ticks(300)
    };
    let slower = Traffic {
        canary_slower: Some(2.0),
        ..same.clone()
    };
    let n = 20;
    let (mut caught, mut bounded) = (0, 0);
    for seed in 0..n {
        caught += run(params, &slower, seed).harm.is_some() as usize;
        let out = run(params, &same, seed);
        assert_eq!(out.harm, None, "seed {seed}: equal latency rolled back");
        bounded += out.bounded.is_some() as usize;
    }
    assert_eq!(caught, n as usize, "twice as slow caught {caught} of {n}");
    assert!(bounded >= 18, "equal latency bounded {bounded} of {n}");
}

/// What the bench's first row needs: identical versions at 1 % errors, 100 requests per
/// tick, both checks: bounded (ready to promote) after a median of at most 90 ticks.
#[test]
fn identical_versions_are_bounded_within_ninety_ticks() {
    let traffic = Traffic {
        canary_slower: Some(1.0),
        ..Traffic::errors(100.0, 10, 0.01, 0.01).for_ticks(300)
    };
    let ticks: Vec<u64> = (0..30)
        .map(|seed| {
            run(Params::default(), &traffic, seed)
                .bounded
                .unwrap_or(u64::MAX)
        })
        .collect();
    assert!(median(ticks.clone()) <= 90, "{ticks:?}");
}

// ---------------------------------------------------------------------------------------------
// Parameters.
// ---------------------------------------------------------------------------------------------

#[test]
fn tolerances_parse_from_points_or_percent() {
    assert_eq!("0.01".parse(), Ok(Tolerance::Points(0.01)));
    assert_eq!(" 50% ".parse(), Ok(Tolerance::Relative(0.5)));
    assert_eq!("100 %".parse(), Ok(Tolerance::Relative(1.0)));
    for bad in [
        "", "abc", "0", "-0.01", "1", "1.5", "0%", "-5%", "NaN", "inf", "5%%",
    ] {
        let err = bad.parse::<Tolerance>().unwrap_err();
        assert!(
            err.to_string().contains("not a tolerance"),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(Tolerance::Points(0.01).to_string(), "stable + 1.00 pt");
    assert_eq!(
        Tolerance::Relative(0.5).to_string(),
        "1.5 x stable + 0.10 pt"
    );
}

#[test]
fn params_out_of_range_are_all_reported() {
    let bad = Params {
        alpha: 0.0,
        confidence: 1.0,
        errors: Tolerance::Points(f64::NAN),
        latency: Some(LatencyParams {
            quantile: 1.0,
            max_ratio: 0.5,
            margin: -1.0,
        }),
    };
    let errs = ReleaseEvidence::new(bad, 0).unwrap_err();
    assert_eq!(errs.len(), 7, "{errs:?}");
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert!(text[0].starts_with("alpha = 0"), "{text:?}");
    assert!(ReleaseEvidence::new(Params::default(), 1).is_ok());
}
