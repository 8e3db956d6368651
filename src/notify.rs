//! Notifications and hooks: Slack-style and generic webhooks fed from a bounded queue per
//! notifier, delivered by a worker with a timeout per attempt and retries with backoff. The
//! analysis loop only enqueues (`try_send`): a slow, failing or hanging receiver never delays
//! a decision. Deliveries, retries, failures and drops are counted in metrics and logged.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::mpsc;
use url::Url;

use crate::config::{NotifierConfig, NotifierKind, Secret};
use crate::metrics::{DeliveryResult, Metrics};
use crate::rollout::{Event, EventKind};

/// Header carrying the HMAC-SHA256 of a generic payload: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-canary-pilot-signature";
/// Header naming the event kind.
pub const EVENT_HEADER: &str = "x-canary-pilot-event";

/// How bad an event is, for the colour of a Slack attachment.
pub fn severity(kind: EventKind) -> (&'static str, &'static str) {
    match kind {
        EventKind::RolledBack | EventKind::HookFailed => ("danger", "#a30200"),
        EventKind::Paused | EventKind::AnalysisFailed => ("warning", "#daa038"),
        _ => ("good", "#2eb886"),
    }
}

/// Fills `{app}`, `{kind}`, `{version}`, `{from}`, `{to}`, `{weight}`, `{reason}`, `{time}`.
pub fn render_template(template: &str, ev: &Event) -> String {
    template
        .replace("{app}", &ev.app)
        .replace("{kind}", ev.kind.as_str())
        .replace("{version}", ev.version.as_deref().unwrap_or("-"))
        .replace("{from}", ev.from.as_str())
        .replace("{to}", ev.to.as_str())
        .replace("{weight}", &ev.weight.to_string())
        .replace("{reason}", &ev.reason)
        .replace("{time}", &crate::clock::rfc3339(ev.time_ms))
}

pub const DEFAULT_TEMPLATE: &str = "{app}: {kind} {version} (canary at {weight}%): {reason}";

/// Slack incoming-webhook JSON: `text` plus one attachment coloured by severity.
pub fn slack_payload(ev: &Event, template: Option<&str>) -> Value {
    let text = render_template(template.unwrap_or(DEFAULT_TEMPLATE), ev);
    let (_, colour) = severity(ev.kind);
    json!({
        "text": text,
        "attachments": [{
            "color": colour,
            "fallback": text,
            "title": format!(
                "{}: {}{}",
                ev.app,
                ev.kind.as_str().replace('_', " "),
                if ev.dry_run { " (dry run)" } else { "" }
            ),
            "text": ev.reason,
            "fields": [
                { "title": "Version", "value": ev.version.as_deref().unwrap_or("-"), "short": true },
                { "title": "Canary weight", "value": format!("{}%", ev.weight), "short": true },
                { "title": "Phase", "value": format!("{} → {}", ev.from.as_str(), ev.to.as_str()), "short": true },
            ],
            "footer": "canary-pilot",
            "ts": ev.time_ms / 1000,
        }]
    })
}

/// The event as JSON, with `time` and the rendered `message`.
pub fn generic_payload(ev: &Event, template: Option<&str>) -> Value {
    let mut v = serde_json::to_value(ev).expect("an event serializes");
    v["time"] = json!(crate::clock::rfc3339(ev.time_ms));
    v["severity"] = json!(severity(ev.kind).0);
    v["message"] = json!(render_template(template.unwrap_or(DEFAULT_TEMPLATE), ev));
    v
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Why a delivery or a gate question did not get a 2xx. The receiver's own error text is not
/// kept: it may hold the URL, which may be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection failed")]
    Connect,
    #[error("request failed")]
    Request,
}

impl DeliveryError {
    fn of(e: &reqwest::Error, timeout: Duration) -> Self {
        if e.is_timeout() {
            DeliveryError::Timeout(timeout)
        } else if e.is_connect() {
            DeliveryError::Connect
        } else {
            DeliveryError::Request
        }
    }
}

/// One request to send: body and headers are final.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// Sends `delivery`, retrying with backoff (0.2 s doubling, at most 5 s) up to `retries` times.
/// Counts `delivered`, `retried` and `failed` under `name`.
pub async fn post_with_retries(
    http: &reqwest::Client,
    url: &str,
    delivery: &Delivery,
    timeout: Duration,
    retries: u32,
    metrics: &Metrics,
    name: &str,
) -> Result<(), DeliveryError> {
    let mut backoff = Duration::from_millis(200);
    let mut last_error = DeliveryError::Request;
    for attempt in 0..=retries {
        let mut req = http
            .post(url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .body(delivery.body.clone());
        for (k, v) in &delivery.headers {
            req = req.header(*k, v);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                metrics.count_notification(name, DeliveryResult::delivered);
                return Ok(());
            }
            Ok(resp) => last_error = DeliveryError::Status(resp.status()),
            Err(e) => last_error = DeliveryError::of(&e, timeout),
        }
        if attempt < retries {
            metrics.count_notification(name, DeliveryResult::retried);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
    metrics.count_notification(name, DeliveryResult::failed);
    Err(last_error)
}

#[derive(Clone)]
struct Worker {
    config: Arc<NotifierConfig>,
    tx: mpsc::Sender<Event>,
    /// Shared by every `Notifiers` that keeps this worker; the last one dropped stops it, a
    /// delivery under way included.
    _task: Arc<Task>,
}

/// A delivery task that is aborted when dropped.
struct Task(tokio::task::AbortHandle);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every configured notifier, each with its queue and delivery task.
#[derive(Default)]
pub struct Notifiers {
    workers: Vec<Worker>,
    metrics: Arc<Metrics>,
}

impl Notifiers {
    /// Starts one delivery task per notifier (call inside a Tokio runtime). A notification that
    /// still fails after its retries comes back on `failures` as a `notification_failed` event.
    pub fn start(
        configs: &[NotifierConfig],
        metrics: Arc<Metrics>,
        failures: Option<mpsc::Sender<Event>>,
    ) -> Notifiers {
        Notifiers::default().restart(configs, metrics, failures)
    }

    /// The notifiers of `configs`: a notifier whose config is unchanged keeps its worker and
    /// queue; the workers of changed and removed ones stop once `self` is dropped, deliveries
    /// under way included, so reloads never pile up workers.
    pub fn restart(
        &self,
        configs: &[NotifierConfig],
        metrics: Arc<Metrics>,
        failures: Option<mpsc::Sender<Event>>,
    ) -> Notifiers {
        let http = reqwest::Client::new();
        let workers = configs
            .iter()
            .map(|c| {
                if let Some(kept) = self.workers.iter().find(|w| *w.config == *c) {
                    return kept.clone();
                }
                let config = Arc::new(c.clone());
                let (tx, mut rx) = mpsc::channel::<Event>(c.queue);
                let (cfg, http, metrics, failures) = (config.clone(), http.clone(), metrics.clone(), failures.clone());
                let task = tokio::spawn(async move {
                    while let Some(ev) = rx.recv().await {
                        let delivery = delivery_for(&cfg, &ev);
                        if let Err(e) = post_with_retries(&http, cfg.url.expose(), &delivery, cfg.timeout, cfg.retries, &metrics, &cfg.name).await {
                            tracing::warn!(notifier = %cfg.name, app = %ev.app, event = ev.kind.as_str(), error = %e, "notification not delivered");
                            if let Some(f) = &failures {
                                let failed = Event {
                                    kind: EventKind::NotificationFailed,
                                    reason: format!(
                                        "notifier {} could not deliver the {} event after {} attempts: {e}",
                                        cfg.name,
                                        ev.kind.as_str(),
                                        cfg.retries + 1
                                    ),
                                    time_ms: crate::clock::system_now_ms(),
                                    from: ev.to,
                                    ..ev.clone()
                                };
                                let _ = f.try_send(failed);
                            }
                        }
                    }
                });
                Worker {
                    config,
                    tx,
                    _task: Arc::new(Task(task.abort_handle())),
                }
            })
            .collect();
        Notifiers { workers, metrics }
    }

    /// Enqueues `ev` for every notifier whose filter takes it; never waits.
    pub fn notify(&self, ev: &Event) {
        if ev.kind == EventKind::NotificationFailed {
            return;
        }
        for w in &self.workers {
            let c = &w.config;
            if !c.events.is_empty() && !c.events.iter().any(|k| k == ev.kind.as_str()) {
                continue;
            }
            if w.tx.try_send(ev.clone()).is_err() {
                self.metrics
                    .count_notification(&c.name, DeliveryResult::dropped);
                tracing::warn!(notifier = %c.name, app = %ev.app, event = ev.kind.as_str(), "notification queue full; event dropped");
            }
        }
    }
}

fn delivery_for(c: &NotifierConfig, ev: &Event) -> Delivery {
    let value = match c.kind {
        NotifierKind::Slack => slack_payload(ev, c.template.as_deref()),
        NotifierKind::Generic => generic_payload(ev, c.template.as_deref()),
    };
    let body = serde_json::to_vec(&value).expect("JSON serializes");
    let mut headers = vec![(EVENT_HEADER, ev.kind.as_str().to_string())];
    if let (NotifierKind::Generic, Some(secret)) = (c.kind, &c.secret) {
        headers.push((SIGNATURE_HEADER, sign(secret, &body)));
    }
    Delivery { body, headers }
}

/// A hook to call with an event: the app's pre-rollout, post-rollout or rollback URL.
#[derive(Debug, Clone)]
pub struct HookCall {
    pub hook: &'static str,
    pub url: Url,
    pub event: Event,
    pub timeout: Duration,
}

/// Delivers hook calls in the background; a failed one comes back on `failures` as a
/// `hook_failed` event.
pub struct Hooks {
    tx: mpsc::Sender<HookCall>,
    metrics: Arc<Metrics>,
}

/// Retries of one hook call.
pub const HOOK_RETRIES: u32 = 2;

impl Hooks {
    pub fn start(metrics: Arc<Metrics>, failures: mpsc::Sender<Event>) -> Hooks {
        let (tx, mut rx) = mpsc::channel::<HookCall>(1000);
        let http = reqwest::Client::new();
        let m = metrics.clone();
        tokio::spawn(async move {
            while let Some(call) = rx.recv().await {
                let body = serde_json::to_vec(&generic_payload(&call.event, None))
                    .expect("JSON serializes");
                let delivery = Delivery {
                    body,
                    headers: vec![(EVENT_HEADER, call.event.kind.as_str().to_string())],
                };
                let name = format!("hook:{}", call.hook);
                if let Err(e) = post_with_retries(
                    &http,
                    call.url.as_str(),
                    &delivery,
                    call.timeout,
                    HOOK_RETRIES,
                    &m,
                    &name,
                )
                .await
                {
                    tracing::warn!(app = %call.event.app, hook = call.hook, error = %e, "hook failed");
                    let failed = Event {
                        kind: EventKind::HookFailed,
                        reason: format!(
                            "{} hook {} failed after {} attempts: {e}",
                            call.hook,
                            crate::redact::redacted(&call.url),
                            HOOK_RETRIES + 1
                        ),
                        time_ms: crate::clock::system_now_ms(),
                        from: call.event.to,
                        ..call.event.clone()
                    };
                    let _ = failures.try_send(failed);
                }
            }
        });
        Hooks { tx, metrics }
    }

    pub fn call(&self, call: HookCall) {
        if self.tx.try_send(call).is_err() {
            self.metrics
                .count_notification("hooks", DeliveryResult::dropped);
        }
    }
}

/// Asks a gate: POSTs `{app, gate, version, weight}` and answers whether it said 2xx in time.
pub async fn ask_gate(
    http: &reqwest::Client,
    url: &Url,
    gate: &str,
    ev: &Value,
    timeout: Duration,
) -> Result<bool, DeliveryError> {
    let mut body = ev.clone();
    body["gate"] = json!(gate);
    match http
        .post(url.clone())
        .timeout(timeout)
        .json(&body)
        .send()
        .await
    {
        Ok(resp) => Ok(resp.status().is_success()),
        Err(e) => Err(DeliveryError::of(&e, timeout)),
    }
}

#[cfg(test)]
mod tests;
