//! The embedded metrics source: scrape one or more Traefik `/metrics` pages and turn their
//! cumulative counters into per-service increases.
//!
//! Increases are computed per raw series (every label set of `traefik_service_requests_total`
//! and of each `traefik_service_request_duration_seconds` bucket), then summed per service and
//! across Traefik replicas:
//! - the first scrape of a URL (and the first after that URL failed) is only a baseline, and so
//!   is the first page read for a service (an app added by a reload);
//! - a series that is new since the last scrape (a first 5xx, a service re-added after it
//!   vanished) started at 0: its increase is its value;
//! - a Traefik restart is told by `process_start_time_seconds`: a page whose process started
//!   after the previous page was read counts its whole counters (they started at 0 then);
//! - anything else that goes backwards is not evidence: a counter that went down in the same
//!   process, or a page from another process that did not start since the last read (two
//!   Traefik replicas behind one URL answer in turns), makes the collection fail with the reason,
//!   and the page is only a new baseline.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use url::Url;

use super::{BoxFuture, Collected, MetricsSource, SideSample, SourceError};

/// Largest `/metrics` page read; a larger one is an error, not a truncated parse.
pub const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;

const REQUESTS: &str = "traefik_service_requests_total";
const START_TIME: &str = "process_start_time_seconds";
/// Clock difference allowed between Traefik's host and ours when telling a restart.
const RESTART_SLACK_SECONDS: f64 = 5.0;
const BUCKET: &str = "traefik_service_request_duration_seconds_bucket";

/// What one raw series counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeriesKind {
    /// A requests counter; `error` when its code is 5xx.
    Requests { error: bool },
    /// A duration bucket, `le` as bits.
    Bucket { le: u64 },
}

/// One raw series we track: what it counts, its other labels (sorted `name=value` pairs, without
/// `service` and `le`; shared by every series with the same ones), and its value.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    kind: SeriesKind,
    labels: Arc<str>,
    value: f64,
}

/// The tracked series of one page, by service, with the services that were asked for when it was
/// read: a service missing from them has no baseline in this page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    wanted: HashSet<Arc<str>>,
    services: HashMap<Arc<str>, Vec<Series>>,
    len: usize,
    /// `process_start_time_seconds`: which Traefik process answered.
    start_time: Option<f64>,
}

impl Page {
    /// A baseline at 0 for `services`: as if every series of theirs had been 0.
    pub fn zero(services: &[String]) -> Page {
        Page {
            wanted: services.iter().map(|s| Arc::from(s.as_str())).collect(),
            ..Page::default()
        }
    }

    /// A baseline at 0 for the services `page` was read for.
    fn zero_like(page: &Page) -> Page {
        Page {
            wanted: page.wanted.clone(),
            ..Page::default()
        }
    }

    /// How many series the page holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Reads a page as it arrives, line by line, so that only the tracked series are ever held, not
/// the page.
pub struct PageParser {
    page: Page,
    /// Label sets seen on this page, so that series share them.
    label_sets: HashSet<Arc<str>>,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// Whether any line was a `traefik_` sample.
    traefik: bool,
    /// Where each series is in its service's list, by service, kind and label set (pointers:
    /// both are shared within the page), so that a repeated series is found at once.
    index: HashMap<(usize, SeriesKind, usize), usize>,
    /// Series of the managed services left out past [`MAX_SERIES`].
    over_limit: usize,
}

/// The most series of the managed services one page may hold. A real Traefik has a few dozen
/// per service (codes × methods × protocols, and the buckets); a page with far more is not one
/// to judge a release on, and keeping it all would cost hundreds of megabytes.
pub const MAX_SERIES: usize = 50_000;

impl PageParser {
    /// A parser keeping the series of `services`.
    pub fn new(services: &[String]) -> Self {
        PageParser {
            page: Page::zero(services),
            label_sets: HashSet::new(),
            partial: Vec::new(),
            traefik: false,
            index: HashMap::new(),
            over_limit: 0,
        }
    }

    /// Reads the complete lines of `bytes` (with what an earlier call left unfinished) and keeps
    /// the rest for the next call.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line(&bytes[..nl]);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&bytes[..nl]);
                self.line(&line);
            }
            bytes = &bytes[nl + 1..];
        }
        self.partial.extend_from_slice(bytes);
    }

    /// The page, once the last line is read. A page without a single `traefik_` sample, an empty
    /// one included, is an error: whatever answered is not Traefik's metrics (a real Traefik
    /// always has some, e.g. `traefik_config_reloads_total`), and taking it as a baseline would
    /// count every counter's whole history in the next window.
    pub fn finish(mut self) -> Result<Page, SourceError> {
        let last = std::mem::take(&mut self.partial);
        self.line(&last);
        if !self.traefik {
            return Err(SourceError::Invalid(
                "no traefik_ metric on the page: is the URL Traefik's metrics endpoint \
                 (metrics.prometheus enabled, e.g. http://traefik:8082/metrics)?"
                    .into(),
            ));
        }
        if self.over_limit > 0 {
            return Err(SourceError::Invalid(format!(
                "the managed services have more than {MAX_SERIES} series on the page ({} more \
                 left out): not a Traefik page to judge a release on",
                self.over_limit
            )));
        }
        Ok(self.page)
    }

    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(START_TIME.as_bytes()) {
            let value = std::str::from_utf8(rest)
                .ok()
                .and_then(parse_sample)
                .map(|(_, v)| v);
            self.page.start_time = value.filter(|v| v.is_finite() && *v > 0.0);
            return;
        }
        if !line.starts_with(b"traefik_") {
            return;
        }
        self.traefik = true;
        let (is_requests, rest) = if let Some(rest) = line.strip_prefix(REQUESTS.as_bytes()) {
            (true, rest)
        } else if let Some(rest) = line.strip_prefix(BUCKET.as_bytes()) {
            (false, rest)
        } else {
            return;
        };
        let Ok(rest) = std::str::from_utf8(rest) else {
            return;
        };
        let Some((labels, value)) = parse_sample(rest) else {
            return;
        };
        // A counter is finite and never negative: anything else is garbage, left out.
        if !(value.is_finite() && value >= 0.0) {
            return;
        }
        let label = |name: &str| labels.iter().find(|(k, _)| *k == name).map(|(_, v)| v);
        let Some(service) = label("service").and_then(|v| self.page.wanted.get(v.as_ref())) else {
            return;
        };
        let service = service.clone();
        let kind = if is_requests {
            SeriesKind::Requests {
                error: label("code").is_some_and(|c| c.starts_with('5')),
            }
        } else {
            match label("le").and_then(|le| le.parse::<f64>().ok()) {
                Some(le) if le >= 0.0 => SeriesKind::Bucket { le: le.to_bits() },
                _ => return,
            }
        };
        let mut others: Vec<&(&str, Cow<str>)> = labels
            .iter()
            .filter(|(k, _)| *k != "service" && *k != "le")
            .collect();
        others.sort();
        let mut key = String::new();
        for (k, v) in others {
            if !key.is_empty() {
                key.push(',');
            }
            key.push_str(k);
            key.push('=');
            key.push_str(v);
        }
        let labels = match self.label_sets.get(key.as_str()) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<str> = Arc::from(key);
                self.label_sets.insert(shared.clone());
                shared
            }
        };
        let key = (
            Arc::as_ptr(&service) as *const u8 as usize,
            kind,
            Arc::as_ptr(&labels) as *const u8 as usize,
        );
        let series = self.page.services.entry(service).or_default();
        // The same series twice on one page: the last value counts.
        match self.index.get(&key) {
            Some(&i) => series[i].value = value,
            None if self.page.len >= MAX_SERIES => self.over_limit += 1,
            None => {
                self.index.insert(key, series.len());
                series.push(Series {
                    kind,
                    labels,
                    value,
                });
                self.page.len += 1;
            }
        }
    }
}

/// Parses a whole Traefik `/metrics` page at once (see [`PageParser`]), keeping the series of
/// `services` only. Lines that are not a requests counter or a duration bucket are skipped
/// without being parsed further; malformed lines, and values no counter can take (negative, NaN,
/// infinite), are left out.
pub fn parse_page(text: &str, services: &[String]) -> Result<Page, SourceError> {
    let mut parser = PageParser::new(services);
    parser.feed(text.as_bytes());
    parser.finish()
}

/// A sample's labels, in the page's order.
type Labels<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// Parses what follows a metric name in the text exposition format: `{labels} value
/// [timestamp]`. `None` when the line is malformed.
fn parse_sample(rest: &str) -> Option<(Labels<'_>, f64)> {
    let mut labels = Vec::new();
    let mut s = rest;
    // The name ends at `{` or at whitespace (which may come before the `{`).
    if !s.starts_with(['{', ' ', '\t']) {
        return None;
    }
    if let Some(after) = s.trim_start_matches([' ', '\t']).strip_prefix('{') {
        s = after;
        loop {
            s = s.trim_start();
            if let Some(after) = s.strip_prefix('}') {
                s = after;
                break;
            }
            let eq = s.find('=')?;
            let name = s[..eq].trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return None;
            }
            s = s[eq + 1..].trim_start().strip_prefix('"')?;
            let (value, after) = parse_label_value(s)?;
            labels.push((name, value));
            s = after.trim_start();
            if let Some(after) = s.strip_prefix(',') {
                s = after;
            } else if !s.starts_with('}') {
                return None;
            }
        }
    }
    // The value must be separated from the name or the labels.
    if !s.starts_with([' ', '\t']) {
        return None;
    }
    let value = s.split_ascii_whitespace().next()?.parse::<f64>().ok()?;
    Some((labels, value))
}

/// Reads a label value up to its closing quote (the opening one already consumed), undoing the
/// format's escapes (`\\`, `\"`, `\n`). Returns the value and what follows the quote.
fn parse_label_value(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let end = s.find(['"', '\\'])?;
    if s.as_bytes()[end] == b'"' {
        return Some((Cow::Borrowed(&s[..end]), &s[end + 1..]));
    }
    let mut out = String::from(&s[..end]);
    let mut chars = s[end..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((Cow::Owned(out), &s[end + i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Per-service increases from `prev` to `cur`, two pages of the same process. A service that
/// `prev` was not read for has no baseline yet: it is left out (its next page counts from this
/// one). A series that went down is named in the error: within one process counters never do.
pub fn increases(prev: &Page, cur: &Page) -> Result<Collected, String> {
    let mut out: BTreeMap<String, SideSample> = BTreeMap::new();
    for (service, series) in &cur.services {
        if !prev.wanted.contains(service) {
            continue;
        }
        let before = prev.services.get(service).map(Vec::as_slice).unwrap_or(&[]);
        // Built only if a series is not where it was on the previous page.
        let mut by_key: Option<HashMap<(SeriesKind, &str), f64>> = None;
        let side = out.entry(service.to_string()).or_default();
        for (i, s) in series.iter().enumerate() {
            // Pages list series in the same order: look at the same place first.
            let previous = match before.get(i) {
                Some(p) if p.kind == s.kind && p.labels == s.labels => Some(p.value),
                _ => by_key
                    .get_or_insert_with(|| {
                        before
                            .iter()
                            .map(|p| ((p.kind, &*p.labels), p.value))
                            .collect()
                    })
                    .get(&(s.kind, &*s.labels))
                    .copied(),
            };
            let delta = match previous {
                Some(p) if s.value >= p => s.value - p,
                Some(p) => {
                    return Err(format!(
                        "a counter of {service} went down ({p} to {}) in the same Traefik process",
                        s.value
                    ))
                }
                // New: started at 0.
                None => s.value,
            };
            match s.kind {
                SeriesKind::Requests { error } => {
                    side.requests += delta;
                    if error {
                        side.errors += delta;
                    }
                }
                SeriesKind::Bucket { le } => side.latency.add_bucket(f64::from_bits(le), delta),
            }
        }
    }
    Ok(out)
}

/// What changed from `prev` (read at `prev_read_at`, Unix seconds) to `cur`, one URL's pages:
/// the increases within one process; the whole counters of a process that started since
/// `prev` was read (a restart); an error, naming what went backwards, for anything else.
pub fn page_increases(prev: &Page, prev_read_at: f64, cur: &Page) -> Result<Collected, String> {
    match (prev.start_time, cur.start_time) {
        (Some(before), Some(now)) if before != now => {
            if now > before && now + RESTART_SLACK_SECONDS >= prev_read_at {
                Ok(increases(&Page::zero_like(prev), cur).expect("nothing goes down from zero"))
            } else {
                Err(format!(
                    "the page came from another Traefik process (process_start_time_seconds {before} \
                     then {now}, which did not start since the last read): does the URL reach more \
                     than one Traefik replica? List each replica's own URL in metrics.traefik_urls"
                ))
            }
        }
        (Some(_), Some(_)) => increases(prev, cur).map_err(|e| {
            format!("{e}: does the URL reach more than one Traefik replica? List each replica's own URL in metrics.traefik_urls")
        }),
        _ => increases(prev, cur).map_err(|e| {
            format!("{e}, or Traefik restarted; the page has no process_start_time_seconds to tell")
        }),
    }
}

/// Scrapes Traefik's `/metrics` endpoints directly.
pub struct TraefikScrape {
    /// The replicas read; replaced as Traefik's tasks come and go (`[swarm] traefik_services`).
    urls: Mutex<Vec<Url>>,
    http: reqwest::Client,
    /// Last page per URL, with when it was read (Unix seconds); absent until a baseline exists.
    last: Mutex<HashMap<Url, (Page, f64)>>,
}

impl TraefikScrape {
    pub fn new(urls: Vec<Url>, timeout: Duration) -> Self {
        TraefikScrape {
            urls: Mutex::new(urls),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("a plain HTTP client builds"),
            last: Mutex::new(HashMap::new()),
        }
    }

    fn urls(&self) -> Vec<Url> {
        self.urls.lock().expect("poisoned").clone()
    }

    /// Fetches and parses one page as it arrives, keeping the series of `services`.
    async fn fetch(&self, url: &Url, services: &[String]) -> Result<Page, SourceError> {
        let shown = crate::redact::redacted(url);
        let url_text = &shown;
        let unreachable = |e: reqwest::Error| {
            SourceError::Unreachable(format!("{url_text}: {}", crate::redact::error_text(e)))
        };
        let too_large = || {
            SourceError::Invalid(format!(
                "{url_text}: page larger than {MAX_PAGE_BYTES} bytes"
            ))
        };
        let mut resp = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(unreachable)?;
        if !resp.status().is_success() {
            return Err(SourceError::Unreachable(format!(
                "{url_text}: HTTP {}",
                resp.status()
            )));
        }
        if resp
            .content_length()
            .is_some_and(|n| n as usize > MAX_PAGE_BYTES)
        {
            return Err(too_large());
        }
        let mut parser = PageParser::new(services);
        let mut read = 0;
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            read += chunk.len();
            if read > MAX_PAGE_BYTES {
                return Err(too_large());
            }
            parser.feed(&chunk);
        }
        parser.finish().map_err(|e| match e {
            SourceError::Invalid(why) => SourceError::Invalid(format!("{url_text}: {why}")),
            other => other,
        })
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
    // Reserved from the announced length, but not more than 4 MiB on the strength of a header.
    let announced = resp.content_length().map_or(0, |n| n as usize);
    let mut body = Vec::with_capacity(announced.min(4 << 20));
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
            let urls = self.urls();
            if urls.is_empty() {
                return Err(SourceError::Unreachable(
                    "no Traefik replica to read: no running task of swarm.traefik_services has an address on swarm.network".into(),
                ));
            }
            let mut pages = Vec::with_capacity(urls.len());
            let mut first_error = None;
            for url in &urls {
                let page = self.fetch(url, services).await;
                if let Err(e) = &page {
                    first_error.get_or_insert_with(|| e.clone());
                }
                pages.push(page.ok());
            }
            let read_at = unix_seconds();
            let mut last = self.last.lock().expect("poisoned");
            // A replica that went away takes its baseline with it; one that came is read from
            // its own first page on.
            last.retain(|url, _| urls.contains(url));
            let mut total: Collected = BTreeMap::new();
            for (url, page) in urls.iter().zip(pages) {
                if let (Some((prev, prev_read_at)), Some(cur)) = (last.get(url), &page) {
                    match page_increases(prev, *prev_read_at, cur) {
                        Ok(inc) => {
                            for (service, inc) in inc {
                                total.entry(service).or_default().add(&inc);
                            }
                        }
                        Err(why) => {
                            first_error.get_or_insert_with(|| {
                                SourceError::Invalid(format!(
                                    "{}: {why}",
                                    crate::redact::redacted(url)
                                ))
                            });
                        }
                    }
                }
                // A failed URL loses its baseline: its next page only sets a new one. A page
                // that went backwards is the baseline for the next.
                match page {
                    Some(p) => {
                        last.insert(url.clone(), (p, read_at));
                    }
                    None => {
                        last.remove(url);
                    }
                }
            }
            match first_error {
                Some(e) => Err(e),
                None => Ok(total),
            }
        })
    }

    fn describe(&self) -> String {
        let urls: Vec<String> = self.urls().iter().map(crate::redact::redacted).collect();
        format!("traefik {}", urls.join(", "))
    }

    fn set_targets(&self, urls: &[Url]) {
        *self.urls.lock().expect("poisoned") = urls.to_vec();
    }
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
