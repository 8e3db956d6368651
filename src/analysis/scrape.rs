//! The embedded metrics source: scrape one or more Traefik `/metrics` pages and turn their
//! cumulative counters into per-service increases.
//!
//! Increases are computed per raw series (every label set of `traefik_service_requests_total`
//! and of each `traefik_service_request_duration_seconds` bucket), then summed per service and
//! across Traefik replicas:
//! - the first scrape of a URL (and the first after that URL failed) is only a baseline;
//! - a series that went down was reset (a Traefik restart): its increase is its new value;
//! - a series that is new since the last scrape (a first 5xx, a service re-added after it
//!   vanished) started at 0: its increase is its value.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use url::Url;

use super::{BoxFuture, Collected, MetricsSource, SideSample, SourceError};

/// Largest `/metrics` page read; a larger one is an error, not a truncated parse.
pub const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;

const REQUESTS: &str = "traefik_service_requests_total";
const DURATION: &str = "traefik_service_request_duration_seconds";

/// Identity of one raw series we track.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeriesKey {
    /// A requests counter: service, code, the other labels.
    Requests {
        service: String,
        code: String,
        rest: String,
    },
    /// A duration bucket: service, `le` as bits, the other labels.
    Bucket {
        service: String,
        le: u64,
        rest: String,
    },
}

/// Cumulative values of one page.
pub type Page = HashMap<SeriesKey, f64>;

/// Parses a Traefik `/metrics` page into the series we track. Garbage lines are skipped; a page
/// without a single Traefik service series is still a valid (empty) page.
pub fn parse_page(text: &str) -> Result<Page, SourceError> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| SourceError::Invalid(format!("cannot parse metrics page: {e}")))?;
    let mut page = Page::new();
    for sample in scrape.samples {
        let Some(service) = sample.labels.get("service").map(str::to_string) else {
            continue;
        };
        let rest = |skip: &[&str]| {
            let mut pairs: Vec<(&String, &String)> = sample
                .labels
                .iter()
                .filter(|(k, _)| !skip.contains(&k.as_str()))
                .collect();
            pairs.sort();
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        match (sample.metric.as_str(), &sample.value) {
            (
                REQUESTS,
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v),
            ) if v.is_finite() && *v >= 0.0 => {
                // A counter is finite and never negative: anything else is garbage, left out.
                let code = sample.labels.get("code").unwrap_or("").to_string();
                page.insert(
                    SeriesKey::Requests {
                        service,
                        code,
                        rest: rest(&["service", "code"]),
                    },
                    *v,
                );
            }
            (DURATION, prometheus_parse::Value::Histogram(buckets)) => {
                let rest = rest(&["service", "le"]);
                for b in buckets {
                    if b.less_than >= 0.0 && b.count.is_finite() && b.count >= 0.0 {
                        page.insert(
                            SeriesKey::Bucket {
                                service: service.clone(),
                                le: b.less_than.to_bits(),
                                rest: rest.clone(),
                            },
                            b.count,
                        );
                    }
                }
            }
            _ => {}
        }
    }
    Ok(page)
}

/// Per-service increases from `prev` to `cur`, for the services in `wanted`.
pub fn increases(prev: &Page, cur: &Page, wanted: &[String]) -> Collected {
    // A set: a page holds tens of thousands of series and there may be thousands of services.
    let wanted: std::collections::HashSet<&str> = wanted.iter().map(String::as_str).collect();
    let mut out: BTreeMap<String, SideSample> = BTreeMap::new();
    for (key, &value) in cur {
        let service = match key {
            SeriesKey::Requests { service, .. } | SeriesKey::Bucket { service, .. } => service,
        };
        if !wanted.contains(service.as_str()) {
            continue;
        }
        let delta = match prev.get(key) {
            Some(&p) if value >= p => value - p,
            // Went down: reset; or new: started at 0.
            _ => value,
        };
        let side = out.entry(service.clone()).or_default();
        match key {
            SeriesKey::Requests { code, .. } => {
                side.requests += delta;
                if code.starts_with('5') {
                    side.errors += delta;
                }
            }
            SeriesKey::Bucket { le, .. } => side.latency.add_bucket(f64::from_bits(*le), delta),
        }
    }
    out
}

/// Scrapes Traefik's `/metrics` endpoints directly.
pub struct TraefikScrape {
    urls: Vec<Url>,
    http: reqwest::Client,
    /// Last page per URL; `None` until a baseline exists.
    last: Mutex<Vec<Option<Page>>>,
}

impl TraefikScrape {
    pub fn new(urls: Vec<Url>, timeout: Duration) -> Self {
        let n = urls.len();
        TraefikScrape {
            urls,
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("a plain HTTP client builds"),
            last: Mutex::new(vec![None; n]),
        }
    }

    async fn fetch(&self, url: &Url) -> Result<String, SourceError> {
        let unreachable = |e: reqwest::Error| SourceError::Unreachable(format!("{url}: {e}"));
        let mut resp = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(unreachable)?;
        if !resp.status().is_success() {
            return Err(SourceError::Unreachable(format!(
                "{url}: HTTP {}",
                resp.status()
            )));
        }
        let bytes = read_limited(&mut resp, MAX_PAGE_BYTES)
            .await
            .map_err(|e| match e {
                LimitedError::Http(e) => unreachable(e),
                LimitedError::TooLarge => {
                    SourceError::Invalid(format!("{url}: page larger than {MAX_PAGE_BYTES} bytes"))
                }
            })?;
        String::from_utf8(bytes)
            .map_err(|_| SourceError::Invalid(format!("{url}: page is not UTF-8")))
    }
}

pub(crate) enum LimitedError {
    Http(reqwest::Error),
    TooLarge,
}

/// Reads a response body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(
    resp: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, LimitedError> {
    if resp.content_length().is_some_and(|n| n as usize > limit) {
        return Err(LimitedError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(LimitedError::Http)? {
        if body.len() + chunk.len() > limit {
            return Err(LimitedError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl MetricsSource for TraefikScrape {
    fn collect<'a>(
        &'a self,
        services: &'a [String],
        _window: Duration,
    ) -> BoxFuture<'a, Result<Collected, SourceError>> {
        Box::pin(async move {
            let mut pages = Vec::with_capacity(self.urls.len());
            let mut first_error = None;
            for url in &self.urls {
                let page = match self.fetch(url).await {
                    Ok(text) => tokio::task::spawn_blocking(move || parse_page(&text))
                        .await
                        .unwrap_or_else(|e| {
                            Err(SourceError::Invalid(format!("parser failed: {e}")))
                        }),
                    Err(e) => Err(e),
                };
                if let Err(e) = &page {
                    first_error.get_or_insert_with(|| e.clone());
                }
                pages.push(page.ok());
            }
            let mut last = self.last.lock().expect("poisoned");
            let mut total: Collected = BTreeMap::new();
            for (i, page) in pages.into_iter().enumerate() {
                if let (Some(prev), Some(cur)) = (last[i].as_ref(), &page) {
                    for (service, inc) in increases(prev, cur, services) {
                        total.entry(service).or_default().add(&inc);
                    }
                }
                // A failed URL loses its baseline: its next page only sets a new one.
                last[i] = page;
            }
            match first_error {
                Some(e) => Err(e),
                None => Ok(total),
            }
        })
    }

    fn describe(&self) -> String {
        let urls: Vec<&str> = self.urls.iter().map(Url::as_str).collect();
        format!("traefik {}", urls.join(", "))
    }
}

#[cfg(test)]
mod tests;
