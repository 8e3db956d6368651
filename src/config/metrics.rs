//! `[metrics]`: the metrics source, its URLs and the Prometheus query templates.

use super::check::Check;
use super::key::KeyPath;
use super::raw::{RawMetrics, RawQueries, RawTraefik};
use super::typed::{
    MetricsConfig, MetricsSourceKind, Queries, TraefikConfig, DEFAULT_ERRORS, DEFAULT_LATENCY,
    DEFAULT_REQUESTS,
};

const SOURCES: [(&str, MetricsSourceKind); 2] = [
    ("traefik", MetricsSourceKind::Traefik),
    ("prometheus", MetricsSourceKind::Prometheus),
];

impl MetricsConfig {
    pub(super) fn from_raw(raw: RawMetrics, at: &KeyPath, cx: &mut Check) -> Option<Self> {
        let source = cx.one_of(&at.key("source"), &raw.source, "a source", &SOURCES);
        let urls_key = at.key("traefik_urls");
        let traefik_urls = cx.list(&urls_key, &raw.traefik_urls, |cx, k, u| cx.url(k, u));
        let prometheus_key = at.key("prometheus_url");
        let prometheus_url = cx.optional(raw.prometheus_url.as_deref(), |cx, u| {
            cx.url(&prometheus_key, u)
        });
        let source_has_urls = source.and_then(|s| match s {
            MetricsSourceKind::Traefik => {
                cx.ensure(&urls_key, !raw.traefik_urls.is_empty(), || {
                    "source \"traefik\" needs at least one Traefik /metrics URL".into()
                })
            }
            MetricsSourceKind::Prometheus => {
                cx.ensure(&prometheus_key, raw.prometheus_url.is_some(), || {
                    "source \"prometheus\" needs prometheus_url, e.g. \"http://prometheus:9090\""
                        .into()
                })
            }
        });
        let timeout = cx.duration(&at.key("timeout"), &raw.timeout);
        let queries = queries(raw.queries, &at.key("queries"), cx);
        source_has_urls?;
        Some(MetricsConfig {
            source: source?,
            traefik_urls: traefik_urls?,
            prometheus_url: prometheus_url?,
            timeout: timeout?,
            queries: queries?,
        })
    }
}

impl TraefikConfig {
    pub(super) fn from_raw(raw: RawTraefik, at: &KeyPath, cx: &mut Check) -> Option<Self> {
        let api_key = at.key("api_url");
        let api_url = cx.optional(raw.api_url.as_deref(), |cx, u| cx.url(&api_key, u));
        let interval_key = at.key("check_interval");
        let check_interval = cx
            .duration(&interval_key, &raw.check_interval)
            .and_then(|d| {
                cx.check(
                    &interval_key,
                    d,
                    |d| *d >= std::time::Duration::from_millis(500),
                    |_| "must be at least 500ms: every check reads Traefik's whole runtime".into(),
                )
            });
        Some(TraefikConfig {
            api_url: api_url?,
            check_interval: check_interval?,
        })
    }
}

fn queries(raw: RawQueries, at: &KeyPath, cx: &mut Check) -> Option<Queries> {
    let mut template = |key: &str, value: Option<String>, default: &str| {
        let value = value.unwrap_or_else(|| default.to_string());
        cx.check(
            &at.key(key),
            value,
            |v| v.contains("{service}"),
            |_| {
                "must contain {service} (the managed services) so one query serves every app".into()
            },
        )
    };
    let requests = template("requests", raw.requests, DEFAULT_REQUESTS);
    let errors = template("errors", raw.errors, DEFAULT_ERRORS);
    let latency = template("latency", raw.latency, DEFAULT_LATENCY);
    Some(Queries {
        requests: requests?,
        errors: errors?,
        latency: latency?,
    })
}
