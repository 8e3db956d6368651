//! Decision quality, by simulation (issue 6, part 1).
//!
//! Simulated request outcomes (Poisson request counts, Bernoulli 5xx, lognormal latencies in the
//! shipped Traefik buckets) are fed into the real judge (`canary_pilot::analysis::judge`) and the
//! real state machine (`canary_pilot::rollout::step`), driven the way `Controller::tick` drives
//! them, and into a baseline that decides the way Flagger does by default with Traefik
//! (canary-only success rate >= 99 % and p99 <= 500 ms over the last interval; a check without
//! traffic fails; rollback once `threshold` checks have failed).
//!
//! ```text
//! cargo run --release --example decision_quality -- [--seed N] [--rollouts N] [--threads N]
//! ```
//!
//! Same seed, same rollouts: same tables (the thread count does not change them). The tables go
//! to stdout as GitHub markdown; the run time goes to stderr. See `bench/RESULTS.md`.

use std::time::{Duration, Instant};

use canary_pilot::analysis::window::{Reset, Stage, Windows};
use canary_pilot::analysis::{Histogram, SideSample};
use canary_pilot::config::{AnalysisConfig, AppConfig, Config, NoSecrets};
use canary_pilot::rollout::{step, AppState, EventKind, Input, Phase};

/// The simulated app, as named in [`CONFIG`].
const APP: &str = "sim";
/// Longest simulated rollout; whatever has not decided by then is "undecided".
const MAX_SECONDS: u32 = 3600;
/// The canary steps, for canary-pilot and for the baseline.
const STEPS: [u8; 5] = [5, 10, 25, 50, 100];
/// Upper bounds of the shipped Traefik histogram buckets (`traefik/traefik-local.yml`), + `+Inf`.
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
/// Stable latency: lognormal with this median (seconds) and sigma.
const LAT_MEDIAN: f64 = 0.05;
const LAT_SIGMA: f64 = 0.5;
/// z of the 0.99 quantile of the standard normal.
const Z99: f64 = 2.326_347_874_040_841;
/// The baseline's limits, as in Flagger's docs: success rate >= 99 %, p99 <= 500 ms.
const BASE_MIN_SUCCESS: f64 = 99.0;
const BASE_MAX_P99: f64 = 0.5;

/// Canary-pilot's config: defaults from docs/config.md, except the interval and the steps;
/// `sim_relative` differs by its tolerance, `sim_fast` by its interval.
const CONFIG: &str = r#"
[apps.sim]
rule = "Host(`sim.example.com`)"
slots = { blue = ["http://sim-blue:8080"], green = ["http://sim-green:8080"] }
initial_stable = "blue"

[apps.sim.analysis]
interval = "10s"
steps = [5, 10, 25, 50, 100]

[apps.sim_relative]
rule = "Host(`relative.example.com`)"
slots = { blue = ["http://sim-blue:8080"], green = ["http://sim-green:8080"] }
initial_stable = "blue"

[apps.sim_relative.analysis]
interval = "10s"
steps = [5, 10, 25, 50, 100]
error_ratio_tolerance = "50%"

[apps.sim_fast]
rule = "Host(`fast.example.com`)"
slots = { blue = ["http://sim-blue:8080"], green = ["http://sim-green:8080"] }
initial_stable = "blue"

[apps.sim_fast.analysis]
interval = "1s"
steps = [5, 10, 25, 50, 100]
"#;

// ---------------------------------------------------------------------------------------------
// Random numbers: SplitMix64 for seeding, xoshiro256** for draws; exact Poisson and binomial.
// ---------------------------------------------------------------------------------------------

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// xoshiro256**.
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut sm = SplitMix64(seed);
        Rng {
            s: [sm.next(), sm.next(), sm.next(), sm.next()],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in the open interval (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Poisson(lam): inversion below 10, Hörmann's PTRS (transformed rejection) above. Exact.
    fn poisson(&mut self, lam: f64) -> u64 {
        if lam <= 0.0 {
            return 0;
        }
        if lam < 10.0 {
            let mut p = (-lam).exp();
            let mut cdf = p;
            let u = self.uniform();
            let mut k = 0u64;
            while u > cdf && p > 0.0 {
                k += 1;
                p *= lam / k as f64;
                cdf += p;
            }
            return k;
        }
        let slam = lam.sqrt();
        let loglam = lam.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lam + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k as u64;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln()
                <= -lam + k * loglam - ln_gamma(k + 1.0)
            {
                return k as u64;
            }
        }
    }

    /// Binomial(n, p): inversion when n·p < 15, Hörmann's BTRS otherwise. Exact.
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
        let nf = n as f64;
        let q = 1.0 - p;
        if nf * p < 15.0 {
            let s = p / q;
            let a = (nf + 1.0) * s;
            let mut r = (nf * (-p).ln_1p()).exp();
            let mut u = self.uniform();
            let mut x = 0u64;
            loop {
                if u < r || r == 0.0 || x == n {
                    return x;
                }
                u -= r;
                x += 1;
                r *= a / x as f64 - s;
            }
        }
        let spq = (nf * p * q).sqrt();
        let b = 1.15 + 2.53 * spq;
        let a = -0.0873 + 0.0248 * b + 0.01 * p;
        let c = nf * p + 0.5;
        let vr = 0.92 - 4.2 / b;
        let alpha = (2.83 + 5.1 / b) * spq;
        let lpq = (p / q).ln();
        let m = ((nf + 1.0) * p).floor();
        let h = ln_gamma(m + 1.0) + ln_gamma(nf - m + 1.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + c).floor();
            if k < 0.0 || k > nf {
                continue;
            }
            if us >= 0.07 && v <= vr {
                return k as u64;
            }
            let v = (v * alpha / (a / (us * us) + b)).ln();
            if v <= h - ln_gamma(k + 1.0) - ln_gamma(nf - k + 1.0) + (k - m) * lpq {
                return k as u64;
            }
        }
    }
}

/// ln Γ(x) for x > 0: shifted up to 10, then Stirling's series (error below 1e-12).
fn ln_gamma(x: f64) -> f64 {
    let mut x = x;
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= x.ln();
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    let series = inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0)));
    acc + (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + series
}

/// The standard normal CDF (erfc with fractional error below 1.2e-7, Numerical Recipes' erfcc).
fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    0.5 * erfc
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    h
}

/// The generator of one rollout: depends on the seed, the row and the rollout's index only.
fn rollout_rng(seed: u64, row_key: &str, index: usize) -> Rng {
    let mut a = SplitMix64(seed ^ fnv1a(row_key));
    let mut b = SplitMix64(a.next() ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    Rng::new(b.next())
}

// ---------------------------------------------------------------------------------------------
// Traffic model.
// ---------------------------------------------------------------------------------------------

/// Canary latency relative to stable's.
#[derive(Clone, Copy, PartialEq)]
enum Latency {
    Same,
    /// Every latency multiplied.
    Times(f64),
    /// Every latency plus this many seconds.
    Plus(f64),
}

impl Latency {
    fn cdf(self, x: f64) -> f64 {
        let base = |x: f64| {
            if x <= 0.0 {
                0.0
            } else if x.is_infinite() {
                1.0
            } else {
                normal_cdf((x / LAT_MEDIAN).ln() / LAT_SIGMA)
            }
        };
        match self {
            Latency::Same => base(x),
            Latency::Times(f) => base(x / f),
            Latency::Plus(d) => base(x - d),
        }
    }

    fn label(self) -> String {
        match self {
            Latency::Same => "same".into(),
            Latency::Times(f) => format!("+{:.0} %", (f - 1.0) * 100.0),
            Latency::Plus(d) => format!("+{:.0} ms", d * 1000.0),
        }
    }
}

/// Stable's true p99: a canary request slower than this counts as "slow".
fn slow_threshold() -> f64 {
    LAT_MEDIAN * (LAT_SIGMA * Z99).exp()
}

/// Latency cells: the Traefik buckets with the slow threshold as one more boundary, so that the
/// histogram and the slow count come from the same draw.
struct Cells {
    /// Probability of each cell.
    probs: Vec<f64>,
    /// The Traefik bucket each cell falls in.
    bucket: Vec<usize>,
    /// Cells from this index on are slower than the slow threshold.
    slow_from: usize,
}

impl Cells {
    fn new(model: Latency) -> Cells {
        let slow = slow_threshold();
        let mut bounds: Vec<f64> = BUCKETS.to_vec();
        bounds.push(slow);
        bounds.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        let mut probs = Vec::with_capacity(bounds.len());
        let mut bucket = Vec::with_capacity(bounds.len());
        let mut prev = 0.0;
        let mut slow_from = bounds.len();
        for (i, &ub) in bounds.iter().enumerate() {
            let cdf = model.cdf(ub);
            probs.push((cdf - prev).max(0.0));
            prev = cdf;
            bucket.push(
                BUCKETS
                    .iter()
                    .position(|&le| le >= ub)
                    .expect("+Inf is last"),
            );
            if ub == slow {
                slow_from = i + 1;
            }
        }
        Cells {
            probs,
            bucket,
            slow_from,
        }
    }
}

/// One side's traffic over one collection.
struct Draw {
    sample: SideSample,
    requests: u64,
    failed: u64,
    slow: u64,
}

/// `Poisson(mean)` requests, `Binomial(n, p_err)` of them 5xx, latencies by a multinomial over
/// the cells (sequential binomials), independent of the status.
fn draw_side(rng: &mut Rng, mean: f64, p_err: f64, cells: &Cells) -> Draw {
    let n = rng.poisson(mean);
    if n == 0 {
        return Draw {
            sample: SideSample::default(),
            requests: 0,
            failed: 0,
            slow: 0,
        };
    }
    let errors = rng.binomial(n, p_err);
    let mut per_bucket = [0u64; BUCKETS.len()];
    let mut left = n;
    let mut mass = 1.0;
    let mut slow = 0;
    for (i, &p) in cells.probs.iter().enumerate() {
        let c = if i + 1 == cells.probs.len() || mass <= 0.0 {
            left
        } else {
            rng.binomial(left, (p / mass).min(1.0))
        };
        left -= c;
        mass -= p;
        per_bucket[cells.bucket[i]] += c;
        if i >= cells.slow_from {
            slow += c;
        }
    }
    let mut latency = Histogram::default();
    let mut cumulative = 0u64;
    for (le, c) in BUCKETS.iter().zip(per_bucket) {
        cumulative += c;
        latency.add_bucket(*le, cumulative as f64);
    }
    Draw {
        sample: SideSample {
            requests: n as f64,
            errors: errors as f64,
            latency,
        },
        requests: n,
        failed: errors,
        slow,
    }
}

/// One row's traffic: request rate, each side's 5xx probability and the canary's latency.
#[derive(Clone, Copy)]
struct Scenario {
    rps: f64,
    err_stable: f64,
    err_canary: f64,
    latency: Latency,
}

impl Scenario {
    fn key(&self) -> String {
        format!(
            "rps={} err={}->{} lat={}",
            self.rps,
            self.err_stable,
            self.err_canary,
            self.latency.label()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Deciders.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Decider {
    /// canary-pilot's judge and state machine, driven as the daemon drives them.
    Ours,
    /// The same with `error_ratio_tolerance = "50%"` (relative to stable).
    OursRelative,
    /// The same with a tick (interval) of 1 s.
    OursFast,
    /// Flagger's default analysis with Traefik.
    Baseline { interval: u32, threshold: u32 },
}

impl Decider {
    fn label(self) -> String {
        match self {
            Decider::Ours => "canary-pilot 10 s".into(),
            Decider::OursRelative => "canary-pilot 10 s, tolerance 50 %".into(),
            Decider::OursFast => "canary-pilot 1 s".into(),
            Decider::Baseline {
                interval,
                threshold,
            } => format!("Flagger-like {interval} s / threshold {threshold}"),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum End {
    Promoted,
    RolledBack,
    /// canary-pilot paused itself (no verdict for `max_inconclusive`).
    Paused,
    /// Still progressing at `MAX_SECONDS`.
    Running,
}

#[derive(Clone, Copy)]
struct Outcome {
    end: End,
    /// When it ended (promotion or rollback decided; pause), in seconds.
    seconds: u32,
    /// Canary requests, 5xx and slow ones, served until the end.
    canary_requests: u64,
    canary_failed: u64,
    canary_slow: u64,
}

struct Harm {
    requests: u64,
    failed: u64,
    slow: u64,
}

impl Harm {
    fn add(&mut self, d: &Draw) {
        self.requests += d.requests;
        self.failed += d.failed;
        self.slow += d.slow;
    }

    fn outcome(&self, end: End, seconds: u32) -> Outcome {
        Outcome {
            end,
            seconds,
            canary_requests: self.requests,
            canary_failed: self.failed,
            canary_slow: self.slow,
        }
    }
}

struct Model<'a> {
    app: &'a AppConfig,
    sc: Scenario,
    stable_cells: Cells,
    canary_cells: Cells,
}

/// One rollout under canary-pilot, driven as `Controller::tick` drives it: the daemon's own
/// analysis windows (`canary_pilot::analysis::window`) collect one draw per tick and judge when
/// the interval has passed; every transition goes through the real state machine, and what
/// follows it (a reset window, a consumed one) through the same window rules.
fn run_ours(m: &Model, rng: &mut Rng) -> Outcome {
    let cfg: &AnalysisConfig = &m.app.analysis;
    let period = cfg.interval;
    let dt = period.as_secs_f64();
    let start = AppState::initial(m.app, 0);
    let mut state = step(
        m.app,
        &start,
        Input::Start {
            version: "v2".into(),
        },
        0,
    )
    .expect("start accepted")
    .expect("start changes the state")
    .state;
    let mut windows = Windows::default();
    windows.reset(APP, Duration::ZERO, Reset::NewRelease);
    let mut harm = Harm {
        requests: 0,
        failed: 0,
        slow: 0,
    };
    let ticks = (MAX_SECONDS as f64 / dt).round() as u32;
    for k in 1..=ticks {
        let now = period * k;
        let now_s = now.as_secs() as u32;
        let span = windows.next_span(now, period);
        let w = state.canary_weight as f64 / 100.0;
        let c = draw_side(rng, m.sc.rps * dt * w, m.sc.err_canary, &m.canary_cells);
        let s = draw_side(
            rng,
            m.sc.rps * dt * (1.0 - w),
            m.sc.err_stable,
            &m.stable_cells,
        );
        harm.add(&c);
        windows.collected(now);
        let figures = Ok((Some(&s.sample), Some(&c.sample)));
        let stage = Stage {
            version: "v2",
            step: state.step_index,
            last_step: state.step_index + 1 >= cfg.analysed_steps(),
            promoting: state.phase == Phase::Promoting,
        };
        let Some(judged) = windows.observe(APP, now, span, figures, stage, cfg, period) else {
            continue;
        };
        let verdict = judged.analysis.verdict;
        if let Some((verdict, reason)) = judged.verdict() {
            let input = Input::Analysis {
                verdict,
                reason: reason.to_string(),
            };
            match step(m.app, &state, input, now_s as u64 * 1000) {
                Ok(Some(t)) => {
                    state = t.state;
                    if t.reset_window {
                        let why = match t.event.map(|e| e.kind) {
                            Some(EventKind::Promoted) => Reset::Promoted,
                            _ => Reset::Step,
                        };
                        windows.reset(APP, now, why);
                    }
                }
                Ok(None) => {}
                Err(e) => panic!("verdict refused: {e}"),
            }
        }
        windows.settle(APP, now, verdict);
        match state.phase {
            Phase::Succeeded => return harm.outcome(End::Promoted, now_s),
            Phase::RolledBack => return harm.outcome(End::RolledBack, now_s),
            Phase::Paused => return harm.outcome(End::Paused, now_s),
            _ => {}
        }
    }
    harm.outcome(End::Running, MAX_SECONDS)
}

/// One rollout under the baseline, as Flagger's scheduler runs it: at t = 0 the canary gets the
/// first step without a check; every `interval` after that, first "failed checks >= threshold →
/// roll back", then one check over the canary's last `interval` (no requests: failed, as
/// Flagger's "no values found"; success rate < 99 %: failed; p99 > 500 ms: failed). A failed check
/// increments the count (never reset) and holds the weight; a passed one advances to the next
/// step, or, at the last step, promotes.
fn run_baseline(m: &Model, rng: &mut Rng, interval: u32, threshold: u32) -> Outcome {
    let dt = interval as f64;
    let mut step_index = 0;
    let mut failed_checks = 0;
    let mut harm = Harm {
        requests: 0,
        failed: 0,
        slow: 0,
    };
    for k in 1..=MAX_SECONDS / interval {
        let now_s = k * interval;
        let w = STEPS[step_index] as f64 / 100.0;
        let c = draw_side(rng, m.sc.rps * dt * w, m.sc.err_canary, &m.canary_cells);
        harm.add(&c);
        if failed_checks >= threshold {
            return harm.outcome(End::RolledBack, now_s);
        }
        let s = &c.sample;
        let ok = s.requests > 0.0
            && 100.0 * (s.requests - s.errors) / s.requests >= BASE_MIN_SUCCESS
            && s.latency
                .quantile(0.99)
                .is_some_and(|p99| p99 <= BASE_MAX_P99);
        if !ok {
            failed_checks += 1;
        } else if step_index + 1 < STEPS.len() {
            step_index += 1;
        } else {
            return harm.outcome(End::Promoted, now_s);
        }
    }
    harm.outcome(End::Running, MAX_SECONDS)
}

// ---------------------------------------------------------------------------------------------
// Rows and tables.
// ---------------------------------------------------------------------------------------------

struct Row {
    sc: Scenario,
    decider: Decider,
    outcomes: Vec<Outcome>,
}

impl Row {
    fn count(&self, end: End) -> usize {
        self.outcomes.iter().filter(|o| o.end == end).count()
    }

    fn share(&self, end: End) -> String {
        pct(self.count(end), self.outcomes.len())
    }

    fn undecided(&self) -> String {
        let paused = self.count(End::Paused);
        let all = paused + self.count(End::Running);
        if paused > 0 {
            format!(
                "{} ({} paused)",
                pct(all, self.outcomes.len()),
                pct(paused, self.outcomes.len())
            )
        } else {
            pct(all, self.outcomes.len())
        }
    }

    fn times(&self, end: End) -> Vec<f64> {
        self.outcomes
            .iter()
            .filter(|o| o.end == end)
            .map(|o| o.seconds as f64)
            .collect()
    }

    fn harm(&self, end: End, f: impl Fn(&Outcome) -> u64) -> Vec<f64> {
        self.outcomes
            .iter()
            .filter(|o| o.end == end)
            .map(|o| f(o) as f64)
            .collect()
    }
}

fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        return "-".into();
    }
    format!("{:.1} %", 100.0 * n as f64 / of as f64)
}

/// The nearest-rank quantile.
fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

fn secs(values: &[f64], q: f64) -> String {
    quantile(values, q)
        .map(|s| format!("{s:.0} s"))
        .unwrap_or_else(|| "-".into())
}

fn mean(values: &[f64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    format!("{:.1}", values.iter().sum::<f64>() / values.len() as f64)
}

fn count_q(values: &[f64], q: f64) -> String {
    quantile(values, q)
        .map(|v| format!("{v:.0}"))
        .unwrap_or_else(|| "-".into())
}

fn err_label(p: f64) -> String {
    let s = format!("{:.1}", p * 100.0);
    let s = s.trim_end_matches(".0");
    format!("{s} %")
}

fn regression_label(sc: &Scenario) -> String {
    match sc.latency {
        Latency::Same => format!(
            "errors {} → {}",
            err_label(sc.err_stable),
            err_label(sc.err_canary)
        ),
        lat => format!(
            "latency {} (errors {} both)",
            lat.label(),
            err_label(sc.err_stable)
        ),
    }
}

fn run_row(
    config: &Config,
    sc: Scenario,
    decider: Decider,
    seed: u64,
    rollouts: usize,
    threads: usize,
) -> Row {
    let app = match decider {
        Decider::OursRelative => &config.apps["sim_relative"],
        Decider::OursFast => &config.apps["sim_fast"],
        _ => &config.apps["sim"],
    };
    let model = Model {
        app,
        sc,
        stable_cells: Cells::new(Latency::Same),
        canary_cells: Cells::new(sc.latency),
    };
    let key = format!("{} | {}", sc.key(), decider.label());
    let mut outcomes: Vec<Option<Outcome>> = vec![None; rollouts];
    let chunk = rollouts.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        for (c, slots) in outcomes.chunks_mut(chunk).enumerate() {
            let (model, key) = (&model, &key);
            scope.spawn(move || {
                for (j, slot) in slots.iter_mut().enumerate() {
                    let index = c * chunk + j;
                    let mut rng = rollout_rng(seed, key, index);
                    *slot = Some(match decider {
                        Decider::Ours | Decider::OursRelative | Decider::OursFast => {
                            run_ours(model, &mut rng)
                        }
                        Decider::Baseline {
                            interval,
                            threshold,
                        } => run_baseline(model, &mut rng, interval, threshold),
                    });
                }
            });
        }
    });
    Row {
        sc,
        decider,
        outcomes: outcomes.into_iter().map(|o| o.expect("ran")).collect(),
    }
}

struct Args {
    seed: u64,
    rollouts: usize,
    threads: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        seed: 1,
        rollouts: 1000,
        threads: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&format!("{name} needs a number")))
        };
        match flag.as_str() {
            "--seed" => args.seed = value("--seed"),
            "--rollouts" => args.rollouts = value("--rollouts").max(1) as usize,
            "--threads" => args.threads = value("--threads").max(1) as usize,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    args
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("{problem}");
    }
    eprintln!(
        "usage: cargo run --release --example decision_quality -- [--seed N] [--rollouts N] [--threads N]"
    );
    std::process::exit(if problem.is_empty() { 0 } else { 2 })
}

fn main() {
    let args = parse_args();
    let began = Instant::now();
    let config = Config::parse(CONFIG, &NoSecrets).unwrap_or_else(|issues| {
        for i in issues {
            eprintln!("{i}");
        }
        panic!("the simulation's config does not parse")
    });
    let a = &config.apps["sim"].analysis;

    let deciders = [
        Decider::Ours,
        Decider::Baseline {
            interval: 60,
            threshold: 1,
        },
        Decider::Baseline {
            interval: 10,
            threshold: 5,
        },
    ];
    let same = |rps, e| Scenario {
        rps,
        err_stable: e,
        err_canary: e,
        latency: Latency::Same,
    };
    let errs = |rps, s, c| Scenario {
        rps,
        err_stable: s,
        err_canary: c,
        latency: Latency::Same,
    };
    let lat = |rps, l| Scenario {
        rps,
        err_stable: 0.001,
        err_canary: 0.001,
        latency: l,
    };
    let identical = [same(100.0, 0.001), same(100.0, 0.01), same(100.0, 0.05)];
    let regressions = [
        errs(100.0, 0.01, 0.02),
        errs(100.0, 0.01, 0.05),
        errs(100.0, 0.01, 1.0),
        lat(100.0, Latency::Times(1.5)),
        lat(100.0, Latency::Times(2.0)),
        lat(100.0, Latency::Plus(0.3)),
    ];
    // Rows of canary-pilot alone with other settings: a relative tolerance, a 1 s tick.
    let settings = [
        (errs(1000.0, 0.01, 0.02), Decider::OursRelative),
        (same(1000.0, 0.01), Decider::OursRelative),
        (same(100.0, 0.01), Decider::OursFast),
        (same(100.0, 0.05), Decider::OursFast),
    ];
    let mut traffic = Vec::new();
    for kind in 0..3 {
        for rps in [1.0, 10.0, 100.0, 1000.0] {
            traffic.push(match kind {
                0 => same(rps, 0.01),
                1 => errs(rps, 0.01, 0.05),
                _ => errs(rps, 0.01, 1.0),
            });
        }
    }

    let mut rows: Vec<Row> = Vec::new();
    let mut row_for = |sc: Scenario, d: Decider| -> usize {
        if let Some(i) = rows
            .iter()
            .position(|r| r.sc.key() == sc.key() && r.decider == d)
        {
            return i;
        }
        let t = Instant::now();
        // The 1 s tick's false-rollback row runs ten times as many rollouts.
        let n = match d {
            Decider::OursFast => args.rollouts * 10,
            _ => args.rollouts,
        };
        rows.push(run_row(&config, sc, d, args.seed, n, args.threads));
        eprintln!(
            "{:>7.1} s  {} | {}",
            t.elapsed().as_secs_f64(),
            sc.key(),
            d.label()
        );
        rows.len() - 1
    };
    let identical_rows: Vec<usize> = identical
        .iter()
        .flat_map(|sc| deciders.iter().map(|d| (*sc, *d)).collect::<Vec<_>>())
        .map(|(sc, d)| row_for(sc, d))
        .collect();
    let regression_rows: Vec<usize> = regressions
        .iter()
        .flat_map(|sc| deciders.iter().map(|d| (*sc, *d)).collect::<Vec<_>>())
        .map(|(sc, d)| row_for(sc, d))
        .collect();
    let traffic_rows: Vec<usize> = traffic
        .iter()
        .flat_map(|sc| deciders.iter().map(|d| (*sc, *d)).collect::<Vec<_>>())
        .map(|(sc, d)| row_for(sc, d))
        .collect();
    let settings_rows: Vec<usize> = settings.iter().map(|(sc, d)| row_for(*sc, *d)).collect();

    let n = args.rollouts;
    println!("# Decision quality (simulation)\n");
    println!(
        "seed {}, {n} rollouts per row, at most {MAX_SECONDS} s simulated per rollout, steps {:?}.\n",
        args.seed, STEPS
    );
    println!(
        "canary-pilot config: interval {:?}, steps {:?}, min_requests {}, error_ratio_tolerance {}, \
         max_error_ratio {}, latency_quantile {}, max_latency_ratio {}, latency_tolerance {:?}, \
         max_latency {:?}, failure_limit {}, max_inconclusive {:?}.\n",
        a.interval,
        a.steps,
        a.min_requests,
        a.error_ratio_tolerance,
        a.max_error_ratio,
        a.latency_quantile,
        a.max_latency_ratio,
        a.latency_tolerance,
        a.max_latency,
        a.failure_limit,
        a.max_inconclusive
    );
    println!(
        "Baseline: canary-only success rate >= {BASE_MIN_SUCCESS} % and p99 <= {:.0} ms over the last interval; \
         no canary request in it: failed check.\n",
        BASE_MAX_P99 * 1000.0
    );
    println!(
        "Slow request: a canary request slower than stable's true p99 ({:.1} ms).\n",
        slow_threshold() * 1000.0
    );

    println!("## Identical versions, 100 requests/s\n");
    println!("| errors (both) | decider | false rollbacks | promoted | undecided | time to promote, median | p95 |");
    println!("|---|---|---|---|---|---|---|");
    for &i in &identical_rows {
        let r = &rows[i];
        let t = r.times(End::Promoted);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            err_label(r.sc.err_stable),
            r.decider.label(),
            r.share(End::RolledBack),
            r.share(End::Promoted),
            r.undecided(),
            secs(&t, 0.5),
            secs(&t, 0.95)
        );
    }

    println!("\n## Regressions, 100 requests/s\n");
    println!(
        "Requests counted from the start of the rollout until the rollback, over the rolled-back \
         rollouts: canary 5xx (failed) and canary requests slower than stable's p99 (slow).\n"
    );
    println!("| regression | decider | detected (rolled back) | promoted | undecided | time to rollback, median | p95 | failed before rollback, mean | p95 | slow before rollback, mean | p95 |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for &i in &regression_rows {
        let r = &rows[i];
        let t = r.times(End::RolledBack);
        let failed = r.harm(End::RolledBack, |o| o.canary_failed);
        let slow = r.harm(End::RolledBack, |o| o.canary_slow);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            regression_label(&r.sc),
            r.decider.label(),
            r.share(End::RolledBack),
            r.share(End::Promoted),
            r.undecided(),
            secs(&t, 0.5),
            secs(&t, 0.95),
            mean(&failed),
            count_q(&failed, 0.95),
            mean(&slow),
            count_q(&slow, 0.95)
        );
    }

    println!("\n## Little and much traffic\n");
    println!(
        "\"undecided\": still holding at {MAX_SECONDS} s, or paused by canary-pilot after \
         `max_inconclusive` without a verdict (it stays paused until an operator acts). Failed: \
         canary 5xx until the rollback, over the rolled-back rollouts. canary-pilot as the daemon \
         runs only.\n"
    );
    println!("| canary | requests/s | decider | rolled back | promoted | undecided | time to promote, median | time to rollback, median | p95 | failed before rollback, mean |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &i in &traffic_rows {
        let r = &rows[i];
        let what = if r.sc.err_canary == r.sc.err_stable {
            format!("identical, {}", err_label(r.sc.err_stable))
        } else {
            regression_label(&r.sc)
        };
        let tp = r.times(End::Promoted);
        let tr = r.times(End::RolledBack);
        let failed = r.harm(End::RolledBack, |o| o.canary_failed);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            what,
            r.sc.rps,
            r.decider.label(),
            r.share(End::RolledBack),
            r.share(End::Promoted),
            r.undecided(),
            secs(&tp, 0.5),
            secs(&tr, 0.5),
            secs(&tr, 0.95),
            mean(&failed)
        );
    }
    println!("\n## Other settings\n");
    println!(
        "canary-pilot alone: `error_ratio_tolerance = \"50%\"` (canary <= 1.5 x stable + 0.1 \
         point), and a 1 s interval (ten times as many rollouts), with a false-rollback bound of \
         {} (`false_rollback_bound`).\n",
        a.false_rollback_bound
    );
    println!("| canary | requests/s | decider | rollouts | rolled back | promoted | undecided | time to promote, median | p95 | time to rollback, median |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &i in &settings_rows {
        let r = &rows[i];
        let what = if r.sc.err_canary == r.sc.err_stable {
            format!("identical, {}", err_label(r.sc.err_stable))
        } else {
            regression_label(&r.sc)
        };
        let (tp, tr) = (r.times(End::Promoted), r.times(End::RolledBack));
        println!(
            "| {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} |",
            what,
            r.sc.rps,
            r.decider.label(),
            r.outcomes.len(),
            r.share(End::RolledBack),
            r.count(End::RolledBack),
            r.share(End::Promoted),
            r.undecided(),
            secs(&tp, 0.5),
            secs(&tp, 0.95),
            secs(&tr, 0.5)
        );
    }
    let total: u64 = rows
        .iter()
        .flat_map(|r| r.outcomes.iter())
        .map(|o| o.canary_requests)
        .sum();
    eprintln!(
        "{} rows, {} rollouts, {total} simulated canary requests, {:.1} s on {} threads",
        rows.len(),
        rows.len() * n,
        began.elapsed().as_secs_f64(),
        args.threads
    );
}
