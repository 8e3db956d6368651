//! Canary analysis: what is measured ([`SideSample`]), where it comes from ([`MetricsSource`]:
//! [`scrape`] of Traefik's `/metrics`, or [`prometheus`]), and the pure [`judge`].

pub mod judge;
pub mod prometheus;
pub mod scrape;
pub mod sequential;
pub mod stats;
pub mod window;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::{MetricsConfig, MetricsSourceKind};

pub use judge::{judge, Analysis, CheckResult, Verdict};

/// A cumulative latency histogram: upper bound (seconds) → count of requests at or below it.
///
/// Keys are the bounds' `f64::to_bits`: for non-negative floats (bucket bounds, `+Inf` included)
/// the bit patterns sort like the numbers, so the map iterates buckets in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Histogram {
    buckets: BTreeMap<u64, f64>,
}

impl Histogram {
    pub fn add_bucket(&mut self, le: f64, count: f64) {
        if le.is_nan() || le < 0.0 || !count.is_finite() {
            return;
        }
        *self.buckets.entry(le.to_bits()).or_insert(0.0) += count;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (k, v) in &other.buckets {
            *self.buckets.entry(*k).or_insert(0.0) += v;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub fn buckets(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.buckets.iter().map(|(k, v)| (f64::from_bits(*k), *v))
    }

    /// The `q` quantile in seconds, as Prometheus' `histogram_quantile` computes it: linear
    /// interpolation inside the bucket that holds the rank; a rank in the `+Inf` bucket gives the
    /// highest finite bound (a lower bound of the truth). `None` without a `+Inf` bucket,
    /// without observations, or when the count overflowed to infinity (finite counters summed
    /// across series can: the rank is then no number).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        let buckets: Vec<(f64, f64)> = self.buckets().collect();
        let &(last_le, total) = buckets.last()?;
        if last_le != f64::INFINITY || !total.is_finite() || total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut prev_le = 0.0;
        let mut prev_count = 0.0;
        for (i, &(le, count)) in buckets.iter().enumerate() {
            if count >= rank {
                if le == f64::INFINITY {
                    return Some(if i > 0 { buckets[i - 1].0 } else { 0.0 });
                }
                let in_bucket = count - prev_count;
                if in_bucket <= 0.0 {
                    return Some(le);
                }
                return Some(prev_le + (le - prev_le) * (rank - prev_count) / in_bucket);
            }
            prev_le = le;
            prev_count = count;
        }
        None
    }
}

/// Requests, 5xx answers and latencies of one side over one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SideSample {
    pub requests: f64,
    pub errors: f64,
    pub latency: Histogram,
}

impl SideSample {
    pub fn add(&mut self, other: &SideSample) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
    }
}

/// What one collection returns: the increase since the previous collection, per Traefik
/// service name (`api-canary@http`). A service with no traffic may be absent.
pub type Collected = BTreeMap<String, SideSample>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("metrics source unreachable: {0}")]
    Unreachable(String),
    #[error("metrics source answered garbage: {0}")]
    Invalid(String),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where figures come from. One call collects every managed service at once.
pub trait MetricsSource: Send + Sync {
    /// The increase of every figure since the previous call, for `services` (Traefik names such
    /// as `api-canary@http`). `window` is the time since the previous call.
    fn collect<'a>(
        &'a self,
        services: &'a [String],
        window: Duration,
    ) -> BoxFuture<'a, Result<Collected, SourceError>>;

    /// Where it reads, for status and logs.
    fn describe(&self) -> String;

    /// Replaces the Traefik replicas it reads, as their tasks come and go; a replica it keeps
    /// keeps its baseline. Sources that find their own targets ignore it.
    fn set_targets(&self, _urls: &[url::Url]) {}
}

/// The Traefik service names of an app's two roles, as the metrics label them.
pub fn service_names(app: &str) -> (String, String) {
    crate::names::AppNames::of(app).metrics_services()
}

/// The configured metrics source.
pub fn configured_source(m: &MetricsConfig) -> Arc<dyn MetricsSource> {
    match (m.source, &m.prometheus_url) {
        (MetricsSourceKind::Prometheus, Some(url)) => Arc::new(prometheus::PrometheusSource::new(
            url.clone(),
            m.queries.clone(),
            m.timeout,
        )),
        _ => Arc::new(scrape::TraefikScrape::new(
            m.traefik_urls.clone(),
            m.timeout,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(pairs: &[(f64, f64)]) -> Histogram {
        let mut h = Histogram::default();
        for &(le, c) in pairs {
            h.add_bucket(le, c);
        }
        h
    }

    #[test]
    fn quantile_interpolates_like_prometheus() {
        let h = hist(&[
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ]);
        assert!((h.quantile(0.5).unwrap() - 0.1).abs() < 1e-12);
        // rank 70 lies 20/40 into (0.1, 0.5].
        assert!((h.quantile(0.7).unwrap() - 0.3).abs() < 1e-12);
        assert!((h.quantile(0.25).unwrap() - 0.05).abs() < 1e-12);
        assert!((h.quantile(0.99).unwrap() - 0.95).abs() < 1e-12);
    }

    #[test]
    fn quantile_in_the_inf_bucket_is_the_highest_finite_bound() {
        let h = hist(&[(0.1, 10.0), (1.0, 20.0), (f64::INFINITY, 100.0)]);
        assert_eq!(h.quantile(0.99), Some(1.0));
    }

    #[test]
    fn quantile_needs_observations_and_an_inf_bucket() {
        assert_eq!(hist(&[]).quantile(0.99), None);
        assert_eq!(
            hist(&[(0.1, 0.0), (f64::INFINITY, 0.0)]).quantile(0.99),
            None
        );
        assert_eq!(hist(&[(0.1, 5.0), (1.0, 5.0)]).quantile(0.99), None);
        assert_eq!(
            hist(&[(0.1, 5.0), (f64::INFINITY, 5.0)]).quantile(f64::NAN),
            None
        );
    }

    #[test]
    fn quantile_of_a_count_that_overflowed_is_none_not_nan() {
        // Two series of 1e308 in each bucket: finite counters whose sum is +Inf.
        let mut h = hist(&[(0.1, 1e308), (f64::INFINITY, 1e308)]);
        h.merge(&h.clone());
        for q in [0.0, 0.5, 0.99, 1.0] {
            assert_eq!(h.quantile(q), None, "q{q}");
        }
        // Only an earlier bucket overflowed (counts that are not cumulative): still a number.
        let h = hist(&[(0.1, f64::MAX), (0.1, f64::MAX), (f64::INFINITY, 5.0)]);
        assert!(h.quantile(0.5).is_some_and(|x| (0.0..=0.1).contains(&x)));
    }

    #[test]
    fn histogram_ignores_nan_and_negative_bounds_and_merges_by_bound() {
        let mut h = hist(&[(f64::NAN, 3.0), (-1.0, 3.0), (0.1, f64::INFINITY)]);
        assert!(h.is_empty());
        h.merge(&hist(&[(0.1, 2.0), (f64::INFINITY, 4.0)]));
        h.merge(&hist(&[(0.1, 1.0), (f64::INFINITY, 1.0)]));
        assert_eq!(
            h.buckets().collect::<Vec<_>>(),
            vec![(0.1, 3.0), (f64::INFINITY, 5.0)]
        );
    }
}
