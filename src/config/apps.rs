//! `[apps.NAME]` and `[apps.NAME.hooks]`: the route, the two slots, the pins, the gates and
//! hooks; and across apps, that no two generate the same Traefik name.

use std::collections::BTreeMap;

use url::Url;

use super::check::{is_name, is_token, Check};
use super::key::KeyPath;
use super::raw::{RawApp, RawHooks, RawPinHeader, RawSlot, RawSticky};
use super::typed::{
    AnalysisConfig, AppConfig, HooksConfig, ManagedService, PinHeader, SlotService, StickyCookie,
    Tls, CANARY_SLOT, PIN_PRIORITY_OFFSET, PRIMARY_SLOT,
};
use crate::names::AppNames;

/// Every app, their generated names distinct.
pub(super) fn apps(
    raw: BTreeMap<String, RawApp>,
    at: &KeyPath,
    cx: &mut Check,
) -> Option<BTreeMap<String, AppConfig>> {
    let distinct = names_distinct(&raw, at, cx);
    let mut apps = Some(BTreeMap::new());
    for (name, app) in raw {
        match (
            AppConfig::from_raw(&name, app, &at.key(&name), cx),
            &mut apps,
        ) {
            (Some(app), Some(apps)) => {
                apps.insert(name, app);
            }
            _ => apps = None,
        }
    }
    distinct?;
    apps
}

/// Every Traefik router and service name an app generates must be unique across apps.
fn names_distinct(raw: &BTreeMap<String, RawApp>, at: &KeyPath, cx: &mut Check) -> Option<()> {
    let mut owner: BTreeMap<String, &str> = BTreeMap::new();
    let mut distinct = Some(());
    for (app, r) in raw {
        for n in AppNames::of(app).all(r.pin_cookie.is_some()) {
            match owner.insert(n.clone(), app) {
                Some(other) if other != app => {
                    distinct = cx.fail(
                        &at.key(app),
                        format!("generates the Traefik name {n:?}, which app {other:?} also generates; rename one of them"),
                    );
                }
                _ => {}
            }
        }
    }
    distinct
}

impl AppConfig {
    fn from_raw(name: &str, raw: RawApp, at: &KeyPath, cx: &mut Check) -> Option<Self> {
        let name = cx.check(at, name.to_string(), |n| is_name(n), |n| {
            format!("app name {n:?} must be 1-63 characters of a-z, A-Z, 0-9, '-' or '_', starting with a letter or digit")
        });
        let rule_key = at.key("rule");
        let rule = cx.required(&rule_key, raw.rule).and_then(|r| {
            cx.check(
                &rule_key,
                r,
                |r| super::rule::problem(r).is_none(),
                |r| match super::rule::problem(r) {
                    Some(p) if r.trim().is_empty() => {
                        format!("{p}; e.g. \"Host(`api.example.com`)\"")
                    }
                    Some(p) => format!("{r:?} {p}"),
                    None => String::new(),
                },
            )
        });
        let entry_points = entry_points(raw.entry_points, &at.key("entry_points"), cx);
        let slots_key = at.key("slots");
        let (initial_stable, slots, managed) = match raw.service {
            None => (
                initial_stable(raw.initial_stable, raw.slots.as_ref(), at, cx),
                cx.required(&slots_key, raw.slots)
                    .and_then(|s| slots(s, &slots_key, cx)),
                Some(None),
            ),
            Some(service) => {
                let managed = managed(
                    service,
                    raw.slots.is_some(),
                    raw.initial_stable.is_some(),
                    at,
                    cx,
                );
                let slots = managed.as_ref().map(|m| {
                    let slot = |service: &str| SlotService {
                        service: service.to_string(),
                        port: m.port,
                    };
                    (
                        BTreeMap::from([
                            (PRIMARY_SLOT.to_string(), Vec::new()),
                            (CANARY_SLOT.to_string(), Vec::new()),
                        ]),
                        BTreeMap::from([
                            (PRIMARY_SLOT.to_string(), slot(&m.primary)),
                            (CANARY_SLOT.to_string(), slot(&m.service)),
                        ]),
                    )
                });
                (Some(PRIMARY_SLOT.to_string()), slots, managed.map(Some))
            }
        };
        let pin_header = pin_header(raw.pin_header, &at.key("pin_header"), cx);
        let cookies = cookies(raw.pin_cookie, raw.sticky_cookie, at, cx);
        let top = u32::MAX - PIN_PRIORITY_OFFSET;
        let priority = cx.int(&at.key("priority"), raw.priority.into(), 0..=top.into());
        let middlewares = cx.list(&at.key("middlewares"), raw.middlewares, |cx, k, m| {
            cx.check(
                k,
                m,
                |m| !m.trim().is_empty(),
                |_| "must not be empty".into(),
            )
        });
        let analysis = AnalysisConfig::from_raw(raw.analysis, &at.key("analysis"), cx);
        let hooks = HooksConfig::from_raw(raw.hooks, &at.key("hooks"), cx);
        let (pin_cookie, sticky_cookie) = cookies?;
        let slots = slots?;
        Some(AppConfig {
            name: name?,
            rule: rule?,
            entry_points: entry_points?,
            slots: slots.0,
            slot_services: slots.1,
            managed: managed?,
            initial_stable: initial_stable?,
            pin_header: pin_header?,
            pin_cookie,
            sticky_cookie,
            priority: priority?,
            middlewares: middlewares?,
            tls: raw.tls.map(|t| Tls {
                cert_resolver: t.cert_resolver,
            }),
            analysis: analysis?,
            hooks: hooks?,
        })
    }
}

fn entry_points(raw: Vec<String>, at: &KeyPath, cx: &mut Check) -> Option<Vec<String>> {
    let some = cx.ensure(at, !raw.is_empty(), || {
        "must name at least one entry point: a router without one attaches to every entry point, the metrics one included".into()
    });
    let names = cx.list(at, raw, |cx, k, ep| {
        cx.check(
            k,
            ep,
            |ep| is_name(ep),
            |ep| format!("{ep:?} is not an entry point name"),
        )
    });
    some?;
    names
}

/// The servers of each slot, and the slots that are Swarm services.
type Slots = (BTreeMap<String, Vec<Url>>, BTreeMap<String, SlotService>);

/// Exactly two slots, each a non-empty list of distinct server URLs or a Swarm service.
fn slots(raw: BTreeMap<String, RawSlot>, at: &KeyPath, cx: &mut Check) -> Option<Slots> {
    let two = cx.ensure(at, raw.len() == 2, || {
        format!(
            "needs exactly two slots (e.g. blue and green), found {}",
            raw.len()
        )
    });
    let mut slots = Some((BTreeMap::new(), BTreeMap::new()));
    for (slot, value) in raw {
        let key = at.key(&slot);
        let named = cx.ensure(&key, is_name(&slot), || {
            format!("slot name {slot:?} must be letters, digits, '-' or '_'")
        });
        let checked = match value {
            RawSlot::Servers(urls) => servers(&urls, &key, cx).map(|s| (s, None)),
            RawSlot::Service(s) => {
                let service = cx.check(
                    &key.key("service"),
                    s.service,
                    |s| is_service_name(s),
                    |s| format!("{s:?} is not a Swarm service name: 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit (a stack's service is STACK_NAME)"),
                );
                let port = cx.int::<u16>(&key.key("port"), s.port, 1..=65535);
                service
                    .zip(port)
                    .map(|(service, port)| (Vec::new(), Some(SlotService { service, port })))
            }
        };
        match (named.and(checked), &mut slots) {
            (Some((servers, service)), Some((all, services))) => {
                all.insert(slot.clone(), servers);
                if let Some(service) = service {
                    services.insert(slot, service);
                }
            }
            _ => slots = None,
        }
    }
    two?;
    slots
}

/// `service = { name, port }`: alone, without `slots` or `initial_stable`.
fn managed(
    raw: super::raw::RawManaged,
    has_slots: bool,
    has_initial_stable: bool,
    at: &KeyPath,
    cx: &mut Check,
) -> Option<ManagedService> {
    let key = at.key("service");
    let alone = cx.ensure(&key, !has_slots, || {
        "an app is either two slots or one Swarm service that canary-pilot releases; remove slots or service".into()
    });
    let no_stable = cx.ensure(&at.key("initial_stable"), !has_initial_stable, || {
        format!("a Swarm-managed app starts on its {PRIMARY_SLOT} service; remove initial_stable")
    });
    let name = cx.check(
        &key.key("name"),
        raw.name,
        |s| is_service_name(s) && s.len() + "-primary".len() <= 63,
        |s| format!("{s:?} is not a Swarm service name of at most 55 characters (its primary is NAME-primary): letters, digits, '-', '_' or '.', starting with a letter or digit"),
    );
    let port = cx.int::<u16>(&key.key("port"), raw.port, 1..=65535);
    alone?;
    no_stable?;
    let service = name?;
    Some(ManagedService {
        primary: format!("{service}-primary"),
        service,
        port: port?,
    })
}

/// What Docker takes as a service name.
pub(super) fn is_service_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A slot's server URLs: at least one, each a distinct server.
fn servers(urls: &[String], key: &KeyPath, cx: &mut Check) -> Option<Vec<Url>> {
    let some = cx.ensure(key, !urls.is_empty(), || {
        "needs at least one server URL, or a Swarm service { service = \"stack_app\", port = 8080 }"
            .into()
    });
    // Distinct as servers, not as text: `http://a:80` and `HTTP://a/` are one server, which
    // Traefik would then be given twice (twice its share of the slot's traffic).
    let mut seen: BTreeMap<Url, &str> = BTreeMap::new();
    let servers = cx.list(key, urls, |cx, k, u| {
        let url = cx.url(k, u)?;
        if let Some(first) = seen.get(&url) {
            return cx.fail(
                k,
                if first == u {
                    format!("{u:?} is listed twice")
                } else {
                    format!("{u:?} is the server {first:?} again")
                },
            );
        }
        seen.insert(url.clone(), u);
        Some(url)
    });
    some.and(servers)
}

/// One of the slots. Without slots there is nothing to choose from, and `slots` has its issue.
fn initial_stable(
    raw: Option<String>,
    slots: Option<&BTreeMap<String, RawSlot>>,
    at: &KeyPath,
    cx: &mut Check,
) -> Option<String> {
    let key = at.key("initial_stable");
    let stable = cx.required(&key, raw)?;
    let choices: Vec<(&str, ())> = slots?.keys().map(|n| (n.as_str(), ())).collect();
    cx.one_of(&key, &stable, "a slot", &choices)?;
    Some(stable)
}

/// The header that pins a request to the canary: `X-Canary: true` unless set.
fn pin_header(raw: Option<RawPinHeader>, at: &KeyPath, cx: &mut Check) -> Option<PinHeader> {
    let Some(raw) = raw else {
        return Some(PinHeader {
            name: "X-Canary".into(),
            value: "true".into(),
        });
    };
    let name = cx.check(
        &at.key("name"),
        raw.name,
        |n| is_token(n),
        |n| format!("{n:?} is not a valid header name"),
    );
    let value = cx.check(
        &at.key("value"),
        raw.value,
        |v| !v.is_empty() && !v.contains('`'),
        |_| "must be non-empty and contain no backtick".into(),
    );
    Some(PinHeader {
        name: name?,
        value: value?,
    })
}

/// The pin cookie and the sticky cookie, which must differ.
fn cookies(
    pin: Option<String>,
    sticky: Option<RawSticky>,
    at: &KeyPath,
    cx: &mut Check,
) -> Option<(Option<String>, Option<StickyCookie>)> {
    let pin_key = at.key("pin_cookie");
    let pin = cx.optional(pin, |cx, c| {
        cx.check(
            &pin_key,
            c,
            |c| is_token(c),
            |c| format!("{c:?} is not a valid cookie name"),
        )
    });
    let sticky_key = at.key("sticky_cookie");
    let sticky = cx.optional(sticky, |cx, s| {
        cx.check(
            &sticky_key,
            StickyCookie::from(s),
            |s| is_token(&s.name),
            |s| format!("{:?} is not a valid cookie name", s.name),
        )
    });
    let (pin, sticky) = (pin?, sticky?);
    if let (Some(p), Some(s)) = (&pin, &sticky) {
        cx.ensure(&sticky_key, *p != s.name, || {
            "must differ from pin_cookie".into()
        })?;
    }
    Some((pin, sticky))
}

impl From<RawSticky> for StickyCookie {
    fn from(raw: RawSticky) -> Self {
        match raw {
            RawSticky::Name(name) => StickyCookie {
                name,
                secure: false,
                http_only: true,
                path: None,
            },
            RawSticky::Full(f) => StickyCookie {
                name: f.name,
                secure: f.secure,
                http_only: f.http_only,
                path: f.path,
            },
        }
    }
}

impl HooksConfig {
    fn from_raw(raw: RawHooks, at: &KeyPath, cx: &mut Check) -> Option<Self> {
        let mut url =
            |key: &str, value: Option<String>| cx.optional(value, |cx, u| cx.url(&at.key(key), &u));
        let confirm_rollout = url("confirm_rollout", raw.confirm_rollout);
        let confirm_promotion = url("confirm_promotion", raw.confirm_promotion);
        let pre_rollout = url("pre_rollout", raw.pre_rollout);
        let post_rollout = url("post_rollout", raw.post_rollout);
        let rollback = url("rollback", raw.rollback);
        let timeout = cx.duration(&at.key("timeout"), &raw.timeout);
        Some(HooksConfig {
            confirm_rollout: confirm_rollout?,
            confirm_promotion: confirm_promotion?,
            pre_rollout: pre_rollout?,
            post_rollout: post_rollout?,
            rollback: rollback?,
            timeout: timeout?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests_support::{NoSecrets, EXAMPLE};
    use crate::config::Config;

    fn blue_servers(servers: &str) -> String {
        let example = r#"blue = ["http://127.0.0.1:8091"]"#;
        assert!(EXAMPLE.contains(example));
        EXAMPLE.replace(example, &format!("blue = [{servers}]"))
    }

    #[test]
    fn slots_refuse_one_server_listed_twice_in_any_spelling() {
        for (servers, message) in [
            (
                r#""http://127.0.0.1:8091", "http://127.0.0.1:8091""#,
                r#""http://127.0.0.1:8091" is listed twice"#,
            ),
            (
                r#""http://127.0.0.1:8091", "HTTP://127.0.0.1:8091/""#,
                r#""HTTP://127.0.0.1:8091/" is the server "http://127.0.0.1:8091" again"#,
            ),
            (
                r#""http://a.example", "http://A.example:80""#,
                r#""http://A.example:80" is the server "http://a.example" again"#,
            ),
        ] {
            let issues = Config::parse(&blue_servers(servers), &NoSecrets).unwrap_err();
            assert_eq!(issues.len(), 1, "{issues:?}");
            assert_eq!(issues[0].key, "apps.api.slots.blue[1]");
            assert_eq!(issues[0].message, message);
        }
        // Two servers that differ only in their path are two servers.
        let two = r#""http://127.0.0.1:8091/a", "http://127.0.0.1:8091/b""#;
        let config = Config::parse(&blue_servers(two), &NoSecrets).unwrap();
        assert_eq!(config.apps["api"].slots["blue"].len(), 2);
    }
}
