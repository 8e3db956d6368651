//! The Prometheus metrics source: PromQL over the HTTP API, one query per metric per
//! collection for every managed service together (`sum by (service)`), never one per app.
//!
//! Queries are templates: `{service}` becomes a regex alternation of every managed service
//! (`api-stable@http|api-canary@http|...`), `{window}` the time since the previous collection
//! (e.g. `10000ms`). Keep the analysis interval at least twice Prometheus' scrape interval, so
//! that every window holds two samples.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use url::Url;

use super::scrape::{read_limited, LimitedError};
use super::{BoxFuture, Collected, Histogram, MetricsSource, SourceError};

/// Largest query answer read.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// The query templates are configuration; they live with it.
pub use crate::config::{Queries, DEFAULT_ERRORS, DEFAULT_LATENCY, DEFAULT_REQUESTS};

/// Fills a template. Service names are escaped for a regex inside a PromQL string.
pub fn render_query(template: &str, services: &[String], window: Duration) -> String {
    let alternation = services
        .iter()
        .map(|s| {
            let mut out = String::new();
            for c in s.chars() {
                if "\\.+*?()|[]{}^$".contains(c) {
                    out.push_str("\\\\");
                }
                if c == '"' {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        })
        .collect::<Vec<_>>()
        .join("|");
    let window = format!("{}ms", window.as_millis().max(1));
    template
        .replace("{service}", &alternation)
        .replace("{window}", &window)
}

#[derive(Debug, Deserialize)]
struct Response<'a> {
    status: String,
    #[serde(default, borrow)]
    data: Option<Data<'a>>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Data<'a> {
    #[serde(rename = "resultType")]
    result_type: String,
    /// Read once the type is known to be a vector.
    #[serde(borrow)]
    result: &'a serde_json::value::RawValue,
}

/// The labels of a result that canary-pilot reads; others are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Labels {
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub le: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VectorItem {
    metric: Labels,
    value: (serde::de::IgnoredAny, String),
}

/// One value per label set of an instant vector.
pub type Vector = Vec<(Labels, f64)>;

/// Decodes a `/api/v1/query` answer into an instant vector. Anything else — an error status, a
/// matrix, a scalar, a string, malformed JSON, values that are not numbers — is an error.
pub fn decode(body: &[u8]) -> Result<Vector, SourceError> {
    let resp: Response = serde_json::from_slice(body).map_err(|e| {
        SourceError::Invalid(format!("Prometheus answer is not the expected JSON: {e}"))
    })?;
    if resp.status != "success" {
        return Err(SourceError::Invalid(format!(
            "Prometheus query failed: {}: {}",
            resp.error_type.unwrap_or_default(),
            resp.error.unwrap_or_default()
        )));
    }
    let data = resp
        .data
        .ok_or_else(|| SourceError::Invalid("Prometheus answer has no data".into()))?;
    if data.result_type != "vector" {
        return Err(SourceError::Invalid(format!(
            "Prometheus answered a {}, expected an instant vector; check the query template",
            data.result_type
        )));
    }
    let items: Vec<VectorItem> = serde_json::from_str(data.result.get())
        .map_err(|e| SourceError::Invalid(format!("malformed vector: {e}")))?;
    items
        .into_iter()
        .map(|item| {
            let v = parse_prom_float(&item.value.1).ok_or_else(|| {
                SourceError::Invalid(format!("value {:?} is not a number", item.value.1))
            })?;
            Ok((item.metric, v))
        })
        .collect()
}

/// Prometheus' `time` parameter for an instant: Unix seconds with milliseconds.
pub fn evaluation_time(t: SystemTime) -> String {
    let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn parse_prom_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// Assembles the three vectors into per-service samples. A service whose buckets hold a
/// non-finite value gets no histogram (its latency check is then inconclusive); NaN requests or
/// errors are passed on for the judge to refuse.
pub fn assemble(requests: Vector, errors: Vector, latency: Vector) -> Collected {
    let mut out: Collected = BTreeMap::new();
    for (labels, v) in requests {
        if let Some(s) = labels.service {
            out.entry(s).or_default().requests += v;
        }
    }
    for (labels, v) in errors {
        if let Some(s) = labels.service {
            out.entry(s).or_default().errors += v;
        }
    }
    // Sums of the same increases in another order can differ in the last bits: errors a hair
    // above requests are the requests (a real excess stays, for the judge to refuse).
    for side in out.values_mut() {
        if side.errors > side.requests
            && side.errors - side.requests <= 1e-9 * side.requests.max(1.0)
        {
            side.errors = side.requests;
        }
    }
    let mut broken = BTreeSet::new();
    let mut hists: BTreeMap<String, Histogram> = BTreeMap::new();
    for (labels, v) in latency {
        let (Some(s), Some(le)) = (labels.service, labels.le) else {
            continue;
        };
        match parse_prom_float(&le) {
            Some(le) if v.is_finite() && le >= 0.0 => hists.entry(s).or_default().add_bucket(le, v),
            _ => {
                broken.insert(s);
            }
        }
    }
    for (s, h) in hists {
        if !broken.contains(&s) {
            out.entry(s).or_default().latency = h;
        }
    }
    out
}

pub struct PrometheusSource {
    base: Url,
    queries: Queries,
    http: reqwest::Client,
}

impl PrometheusSource {
    pub fn new(base: Url, queries: Queries, timeout: Duration) -> Self {
        PrometheusSource {
            base,
            queries,
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    /// Runs one instant query evaluated at `time` (Unix seconds, as Prometheus' `time`
    /// parameter takes it).
    async fn query(&self, promql: &str, time: &str) -> Result<Vector, SourceError> {
        let url = self
            .base
            .join("api/v1/query")
            .map_err(|e| SourceError::Invalid(format!("bad Prometheus URL: {e}")))?;
        let base = crate::redact::redacted(&self.base);
        let unreachable = |e: reqwest::Error| {
            SourceError::Unreachable(format!("{base}: {}", crate::redact::error_text(e)))
        };
        let mut resp = self
            .http
            .post(url)
            .form(&[("query", promql), ("time", time)])
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status();
        let body = read_limited(&mut resp, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                LimitedError::Http(e) => unreachable(e),
                LimitedError::TooLarge => {
                    SourceError::Invalid(format!("answer larger than {MAX_RESPONSE_BYTES} bytes"))
                }
            })?;
        if status.is_server_error() {
            return Err(SourceError::Unreachable(format!("{base}: HTTP {status}")));
        }
        decode(&body)
    }
}

impl MetricsSource for PrometheusSource {
    fn collect<'a>(
        &'a self,
        services: &'a [String],
        window: Duration,
    ) -> BoxFuture<'a, Result<Collected, SourceError>> {
        Box::pin(async move {
            if services.is_empty() {
                return Ok(Collected::new());
            }
            let q = |t: &str| render_query(t, services, window);
            // The three at once (Prometheus answers them in parallel), all evaluated at the same
            // instant: over the same window, the 5xx counted are a part of the requests counted.
            let time = evaluation_time(SystemTime::now());
            let (requests, errors, latency) = (
                q(&self.queries.requests),
                q(&self.queries.errors),
                q(&self.queries.latency),
            );
            let (requests, errors, latency) = tokio::try_join!(
                self.query(&requests, &time),
                self.query(&errors, &time),
                self.query(&latency, &time)
            )?;
            Ok(assemble(requests, errors, latency))
        })
    }

    fn describe(&self) -> String {
        format!("prometheus {}", crate::redact::redacted(&self.base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_get_every_service_and_the_window() {
        let q = render_query(
            DEFAULT_REQUESTS,
            &["api-stable@http".into(), "api-canary@http".into()],
            Duration::from_secs(10),
        );
        assert_eq!(
            q,
            r#"sum by (service) (increase(traefik_service_requests_total{service=~"api-stable@http|api-canary@http"}[10000ms]))"#
        );
        assert!(render_query("{service}", &["a.b".into()], Duration::ZERO).contains(r"a\\.b"));
    }

    #[test]
    fn decodes_a_vector_with_special_values() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"service":"a@http"},"value":[1700000000.1,"12.5"]},
            {"metric":{"service":"b@http"},"value":[1700000000.1,"NaN"]},
            {"metric":{"service":"c@http"},"value":[1700000000.1,"+Inf"]}]}}"#;
        let v = decode(body).unwrap();
        assert_eq!(v[0].1, 12.5);
        assert!(v[1].1.is_nan());
        assert_eq!(v[2].1, f64::INFINITY);
    }

    #[test]
    fn refuses_everything_that_is_not_an_instant_vector_of_numbers() {
        for body in [
            &br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#[..],
            br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
            br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#,
            br#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":"x"}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":{"a":1}}}"#,
            br#"{"status":"success"}"#,
            b"<html>proxy error</html>",
            b"",
            b"{",
        ] {
            assert!(decode(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        // An empty vector is valid: no traffic.
        assert_eq!(
            decode(br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#).unwrap(),
            vec![]
        );
    }

    fn v(pairs: &[(&[(&str, &str)], f64)]) -> Vector {
        pairs
            .iter()
            .map(|(labels, x)| {
                let get = |k: &str| labels.iter().find(|l| l.0 == k).map(|l| l.1.to_string());
                let labels = Labels {
                    service: get("service"),
                    le: get("le"),
                };
                (labels, *x)
            })
            .collect()
    }

    #[test]
    fn evaluation_time_is_unix_seconds_with_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_042);
        assert_eq!(evaluation_time(t), "1700000000.042");
    }

    #[test]
    fn errors_a_rounding_error_above_requests_are_the_requests() {
        let got = assemble(
            v(&[(&[("service", "a")], 0.3), (&[("service", "b")], 10.0)]),
            v(&[
                (&[("service", "a")], 0.1 + 0.2),
                (&[("service", "b")], 11.0),
            ]),
            v(&[]),
        );
        assert_eq!(got["a"].errors, got["a"].requests);
        assert_eq!(got["b"].errors, 11.0, "a real excess is kept");
    }

    #[test]
    fn assembles_per_service_samples() {
        let got = assemble(
            v(&[(&[("service", "a")], 100.0), (&[("service", "b")], 50.0)]),
            v(&[(&[("service", "a")], 3.0)]),
            v(&[
                (&[("service", "a"), ("le", "0.1")], 90.0),
                (&[("service", "a"), ("le", "+Inf")], 100.0),
                (&[("service", "b"), ("le", "0.1")], f64::NAN),
                (&[("service", "b"), ("le", "+Inf")], 50.0),
            ]),
        );
        assert_eq!((got["a"].requests, got["a"].errors), (100.0, 3.0));
        assert!(got["a"].latency.quantile(0.5).is_some());
        assert_eq!((got["b"].requests, got["b"].errors), (50.0, 0.0));
        assert!(
            got["b"].latency.is_empty(),
            "a NaN bucket drops the histogram"
        );
    }
}
