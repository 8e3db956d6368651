//! `[[notifiers]]`: where events are sent, and which.

use std::collections::BTreeSet;
use std::path::PathBuf;

use url::Url;

use super::check::{is_http, is_name, Check};
use super::key::KeyPath;
use super::raw::RawNotifier;
use super::secret::Secret;
use super::typed::{NotifierConfig, NotifierKind};
use crate::event::EventKind;

const KINDS: [(&str, NotifierKind); 2] = [
    ("slack", NotifierKind::Slack),
    ("generic", NotifierKind::Generic),
];

/// Every notifier, each named once.
pub(super) fn notifiers(
    raw: Vec<RawNotifier>,
    at: &KeyPath,
    cx: &mut Check,
) -> Option<Vec<NotifierConfig>> {
    let mut seen = BTreeSet::new();
    let mut unique = Some(());
    for (i, n) in raw.iter().enumerate() {
        if let Some(name) = &n.name {
            if !seen.insert(name.as_str()) {
                unique = cx.fail(
                    &at.index(i).key("name"),
                    format!("two notifiers are named {name:?}"),
                );
            }
        }
    }
    let notifiers = cx.list(at, raw, |cx, at, n| NotifierConfig::from_raw(n, at, cx));
    unique?;
    notifiers
}

impl NotifierConfig {
    fn from_raw(raw: RawNotifier, at: &KeyPath, cx: &mut Check) -> Option<Self> {
        let name_key = at.key("name");
        let name = cx.required(&name_key, raw.name).and_then(|n| {
            cx.check(
                &name_key,
                n,
                |n| is_name(n),
                |n| format!("{n:?} must be letters, digits, '-' or '_'"),
            )
        });
        let kind_key = at.key("kind");
        let kind = cx
            .required(&kind_key, raw.kind)
            .and_then(|k| cx.one_of(&kind_key, &k, "a notifier kind", &KINDS));
        let url = webhook(cx, at, raw.url, raw.url_file);
        let secret_key = at.key("secret_file");
        let secret = cx.optional(raw.secret_file, |cx, f| cx.secret_file(&secret_key, &f));
        let events_key = at.key("events");
        let events = cx.list(&events_key, raw.events.unwrap_or_default(), |cx, at, e| {
            cx.one_of(at, &e, "an event kind", &event_kinds())
                .map(|_| e)
        });
        let timeout = cx.duration(&at.key("timeout"), &raw.timeout);
        let retries = cx.int(&at.key("retries"), raw.retries, 0..=10);
        let queue = cx.int(&at.key("queue"), raw.queue, 1..=100_000);
        Some(NotifierConfig {
            name: name?,
            kind: kind?,
            url: url?,
            secret: secret?,
            events: events?,
            template: raw.template,
            timeout: timeout?,
            retries: retries?,
            queue: queue?,
        })
    }
}

/// The webhook URL, from `url` or `url_file`; checked without echoing it, as it may be a secret.
fn webhook(
    cx: &mut Check,
    at: &KeyPath,
    url: Option<String>,
    url_file: Option<PathBuf>,
) -> Option<Secret> {
    let text = match (url, url_file) {
        (Some(u), None) => Secret::new(u),
        (None, Some(f)) => cx.secret_file(&at.key("url_file"), &f)?,
        _ => return cx.fail(&at.key("url"), "set exactly one of url and url_file"),
    };
    cx.check(
        &at.key("url"),
        text,
        |t| Url::parse(t.expose()).is_ok_and(|u| is_http(&u)),
        |_| "must be an http:// or https:// URL with a host".into(),
    )
}

fn event_kinds() -> Vec<(&'static str, EventKind)> {
    EventKind::ALL.iter().map(|k| (k.as_str(), *k)).collect()
}
