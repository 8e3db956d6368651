//! Beta-distribution arithmetic for the error-ratio judge: the regularized incomplete beta
//! function, and the posterior probability that one Bernoulli rate exceeds another by a margin.

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; |error| < 1e-13 over the range we use).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps precision for small x.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction for the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const EPS: f64 = 1e-15;
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=500 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// ln of the normalizing constant of Beta(a, b): ln Γ(a + b) − ln Γ(a) − ln Γ(b).
fn ln_norm(a: f64, b: f64) -> f64 {
    ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b)
}

/// The regularized incomplete beta function I_x(a, b): the CDF of Beta(a, b) at x.
pub fn beta_cdf(x: f64, a: f64, b: f64) -> f64 {
    beta_cdf_normed(x, a, b, ln_norm(a, b))
}

/// [`beta_cdf`] with the normalizing constant computed once by the caller.
fn beta_cdf_normed(x: f64, a: f64, b: f64, ln_norm: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_norm + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// The x with `beta_cdf(x, a, b) = p`, by bisection.
pub fn beta_quantile(p: f64, a: f64, b: f64) -> f64 {
    RatePosterior {
        a,
        b,
        ln_norm: ln_norm(a, b),
    }
    .quantile(p, 0.0)
}

/// Posterior of a Bernoulli rate after `failures` of `trials`, with the Jeffreys prior
/// Beta(1/2, 1/2): Beta(failures + 1/2, trials − failures + 1/2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePosterior {
    pub a: f64,
    pub b: f64,
    /// `ln_norm(a, b)`, computed once: every CDF evaluation needs it.
    ln_norm: f64,
}

impl RatePosterior {
    pub fn new(failures: f64, trials: f64) -> Self {
        let failures = failures.clamp(0.0, trials.max(0.0));
        let (a, b) = (failures + 0.5, (trials - failures).max(0.0) + 0.5);
        RatePosterior {
            a,
            b,
            ln_norm: ln_norm(a, b),
        }
    }

    pub fn cdf(&self, x: f64) -> f64 {
        beta_cdf_normed(x, self.a, self.b, self.ln_norm)
    }

    /// P(rate > x).
    pub fn prob_above(&self, x: f64) -> f64 {
        1.0 - self.cdf(x)
    }

    /// Whether the density climbs steeply out of 0 (unbounded below a = 1): few errors.
    fn skewed(&self) -> bool {
        self.a < 8.0
    }

    /// Standard deviation of the posterior.
    pub fn sd(&self) -> f64 {
        let n = self.a + self.b;
        (self.a * self.b / (n * n * (n + 1.0))).sqrt()
    }

    /// The x with `cdf(x) = p`, by bisection until the bracket is narrower than `precision`
    /// (at most 64 halvings; 0 means all 64).
    fn quantile(&self, p: f64, precision: f64) -> f64 {
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..64 {
            if hi - lo <= precision {
                break;
            }
            let mid = 0.5 * (lo + hi);
            if self.cdf(mid) < p {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }
}

/// Most cells of the integral in [`prob_exceeds_by`].
const CELLS: usize = 64;

/// P(p_canary − p_stable > margin) under independent posteriors.
///
/// An integral over the narrower posterior (usually stable's, which has more requests):
/// Σ over its cells [x_i, x_{i+1}] of P(in cell) · P(other side beyond the midpoint ± margin).
/// The cells' masses are exact (CDF differences); only the other side's function is read at the
/// midpoint, so the grid needs to be fine only where that function bends within a cell: up to
/// `CELLS` cells when both posteriors are alike, as few as 8 when the other one is much wider.
/// The grid spans the narrower posterior from its 1e-10 to its 1 − 1e-10 quantile (found to a
/// thousandth of its standard deviation), uniform when it is bell-shaped and quadratic — narrow
/// where the density is steep — when it is skewed against 0 (few errors); the first and the last
/// cell also take the mass below and above the grid.
pub fn prob_exceeds_by(canary: RatePosterior, stable: RatePosterior, margin: f64) -> f64 {
    if stable.sd() <= canary.sd() {
        let beyond = |x: f64| canary.prob_above(x + margin);
        integrate(stable, &beyond, Some(canary), CELLS, stable.sd() * 1e-3)
    } else {
        // P(c − s > m) = ∫ f_c(y) · P(s < y − m) dy.
        let below = |y: f64| stable.cdf(y - margin);
        integrate(canary, &below, Some(stable), CELLS, canary.sd() * 1e-3)
    }
}

/// Σ over cells of `grid`'s posterior of P(in cell) · `f`(midpoint), on at most `max_cells`
/// cells (fewer when `other`, the posterior `f` reads, is bell-shaped and wide against the grid's
/// span, so that `f` is smooth over it), the span's ends found to `precision`.
fn integrate(
    grid: RatePosterior,
    f: &dyn Fn(f64) -> f64,
    other: Option<RatePosterior>,
    max_cells: usize,
    precision: f64,
) -> f64 {
    let lo = grid.quantile(1e-10, precision);
    let hi = grid.quantile(1.0 - 1e-10, precision);
    // The midpoint rule's error in a cell of width h grows as (h / other_sd)²: 40 cells per
    // other_sd of span keep it near 1e-4 overall.
    let cells = match other {
        Some(o) if !o.skewed() && o.sd() > 0.0 => {
            ((40.0 * (hi - lo) / o.sd()).ceil() as usize).clamp(8, max_cells)
        }
        _ => max_cells,
    };
    let power = if grid.skewed() { 2 } else { 1 };
    let at = |i: usize| lo + (hi - lo) * (i as f64 / cells as f64).powi(power);
    let mut sum = 0.0;
    let mut cdf_prev = 0.0;
    let mut x_prev = lo;
    for i in 1..=cells {
        let x = at(i);
        // The last cell also takes the mass above the grid (much, for a side whose requests all
        // failed: its density is unbounded at 1).
        let cdf = if i == cells { 1.0 } else { grid.cdf(x) };
        sum += (cdf - cdf_prev) * f(0.5 * (x_prev + x));
        (cdf_prev, x_prev) = (cdf, x);
    }
    sum.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut fact = 1.0f64;
        for n in 1..20 {
            assert!(close(ln_gamma(n as f64), fact.ln(), 1e-10), "n={n}");
            fact *= n as f64;
        }
        // Γ(1/2) = √π
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-12
        ));
    }

    #[test]
    fn beta_cdf_matches_closed_forms() {
        // Beta(1, 1) is uniform; Beta(a, 1) has CDF x^a; Beta(1, b) has 1 − (1 − x)^b.
        for x in [0.01, 0.2, 0.5, 0.9] {
            assert!(close(beta_cdf(x, 1.0, 1.0), x, 1e-12));
            assert!(close(beta_cdf(x, 3.0, 1.0), x.powi(3), 1e-12));
            assert!(close(
                beta_cdf(x, 1.0, 40.0),
                1.0 - (1.0 - x).powi(40),
                1e-12
            ));
        }
        // Symmetry: I_x(a, b) = 1 − I_{1−x}(b, a).
        assert!(close(
            beta_cdf(0.3, 5.5, 100.5),
            1.0 - beta_cdf(0.7, 100.5, 5.5),
            1e-12
        ));
    }

    #[test]
    fn quantile_inverts_cdf() {
        for (a, b) in [(0.5, 100.5), (10.5, 990.5), (500.5, 500.5)] {
            for p in [1e-6, 0.05, 0.5, 0.95] {
                let x = beta_quantile(p, a, b);
                assert!(close(beta_cdf(x, a, b), p, 1e-9), "a={a} b={b} p={p}");
            }
        }
    }

    #[test]
    fn identical_rates_are_equally_likely_either_way() {
        let p = RatePosterior::new(50.0, 5000.0);
        let q = prob_exceeds_by(p, p, 0.0);
        assert!(close(q, 0.5, 0.01), "{q}");
    }

    #[test]
    fn exceedance_probability_tracks_the_evidence() {
        let stable = RatePosterior::new(100.0, 10_000.0); // 1 %
                                                          // Canary at 10 % over 1,000 requests: certainly worse by more than 1 point.
        assert!(prob_exceeds_by(RatePosterior::new(100.0, 1000.0), stable, 0.01) > 0.9999);
        // Canary at 1 % over 1,000 requests: certainly not worse by 5 points.
        assert!(prob_exceeds_by(RatePosterior::new(10.0, 1000.0), stable, 0.05) < 1e-6);
        // Little data: no certainty either way.
        let q = prob_exceeds_by(RatePosterior::new(1.0, 20.0), stable, 0.01);
        assert!(q > 0.05 && q < 0.95, "{q}");
    }

    #[test]
    fn exceedance_matches_a_normal_approximation_with_much_data() {
        // p_c = 3 %, p_s = 2 %, n = 20,000 each: diff 0.01, sd ≈ 0.00156.
        let c = RatePosterior::new(600.0, 20_000.0);
        let s = RatePosterior::new(400.0, 20_000.0);
        let sd = ((0.03 * 0.97 + 0.02 * 0.98) / 20_000.0f64).sqrt();
        for margin in [0.005, 0.01, 0.012] {
            let z = (0.01 - margin) / sd;
            let normal = 0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2));
            let q = prob_exceeds_by(c, s, margin);
            assert!(close(q, normal, 0.02), "margin {margin}: {q} vs {normal}");
        }
    }

    /// The same integral on 16,384 cells with the grid's ends bisected to the last bit: the
    /// reference the judge's at most 64 cells must agree with, whichever side they span.
    fn prob_exceeds_by_fine(canary: RatePosterior, stable: RatePosterior, margin: f64) -> f64 {
        let beyond = |x: f64| canary.prob_above(x + margin);
        integrate(stable, &beyond, None, 1 << 14, 0.0)
    }

    /// The same probability the other way round, over the canary's posterior: a check of the
    /// reference itself.
    fn prob_exceeds_by_fine_over_canary(
        canary: RatePosterior,
        stable: RatePosterior,
        margin: f64,
    ) -> f64 {
        let below = |y: f64| stable.cdf(y - margin);
        integrate(canary, &below, None, 1 << 14, 0.0)
    }

    #[test]
    fn exceedance_agrees_with_a_fine_integral() {
        let mut worst = 0.0f64;
        for (cf, cn) in [
            (0.0, 100.0),
            (1.0, 100.0),
            (5.0, 500.0),
            (60.0, 6000.0),
            (300.0, 1000.0),
            (50.0, 100_000.0),
            (0.0, 50_000.0),
            (100.0, 100.0),
            (20.0, 20.0),
        ] {
            for (sf, sn) in [
                (0.0, 900.0),
                (9.0, 900.0),
                (45.0, 45_000.0),
                (2.0, 100.0),
                (5000.0, 500_000.0),
                (3.0, 10.0),
            ] {
                for margin in [0.0, 0.001, 0.01, 0.05] {
                    let (c, s) = (RatePosterior::new(cf, cn), RatePosterior::new(sf, sn));
                    let (fast, fine) = (
                        prob_exceeds_by(c, s, margin),
                        prob_exceeds_by_fine(c, s, margin),
                    );
                    worst = worst.max((fast - fine).abs());
                    let other_way = prob_exceeds_by_fine_over_canary(c, s, margin);
                    assert!(
                        (fine - other_way).abs() < 1e-3,
                        "reference: canary {cf}/{cn}, stable {sf}/{sn}, margin {margin}: {fine} vs {other_way}"
                    );
                    assert!(
                        (fast - fine).abs() < 2e-3,
                        "canary {cf}/{cn}, stable {sf}/{sn}, margin {margin}: {fast} vs {fine}"
                    );
                }
            }
        }
        eprintln!("largest difference: {worst:e}");
    }

    /// Abramowitz–Stegun 7.1.26, for the test's reference values only.
    fn erf(x: f64) -> f64 {
        let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
        let y = 1.0
            - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736)
                * t
                + 0.254_829_592)
                * t
                * (-x * x).exp();
        if x >= 0.0 {
            y
        } else {
            -y
        }
    }
}
