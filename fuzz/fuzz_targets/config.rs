//! The config parser on any text: it never panics, a refusal names its issues (each with a
//! message and a line inside the file), and an accepted config holds every promise that
//! `typed.rs` documents and the rest of the program relies on.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use canary_pilot::config::{
    rule, Config, ConfigIssue, MetricsSourceKind, NoSecrets, SecretSource, PIN_PRIORITY_OFFSET,
};
use libfuzzer_sys::fuzz_target;

/// Every secret file exists (a path ending in `empty` is an empty file, one ending in
/// `missing` does not exist) and no variable is set: the parse goes past its secrets.
struct FakeSecrets;

impl SecretSource for FakeSecrets {
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        let p = path.to_string_lossy();
        if p.ends_with("missing") {
            Err(std::io::Error::new(std::io::ErrorKind::NotFound, "missing"))
        } else if p.ends_with("empty") {
            Ok("\n".into())
        } else {
            Ok(format!("secret of {p}\n"))
        }
    }
    fn env(&self, _: &str) -> Option<String> {
        None
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_|~".contains(&b))
}

fn check_refusal(src: &str, issues: &[ConfigIssue]) {
    assert!(!issues.is_empty(), "a refused config names its issues");
    let last_line = src.bytes().filter(|&b| b == b'\n').count() + 1;
    for issue in issues {
        assert!(
            !issue.message.trim().is_empty(),
            "an issue without a message: {issue:?}"
        );
        if let Some(line) = issue.line {
            assert!(
                (1..=last_line).contains(&line),
                "line {line} of {last_line}: {issue:?}"
            );
        }
        // The rendering used in every error message must not panic either.
        let _ = issue.to_string();
    }
}

fn check_config(config: &Config) {
    match config.metrics.source {
        MetricsSourceKind::Traefik => assert!(!config.metrics.traefik_urls.is_empty()),
        MetricsSourceKind::Prometheus => assert!(config.metrics.prometheus_url.is_some()),
    }
    let q = &config.metrics.queries;
    for template in [&q.requests, &q.errors, &q.latency] {
        assert!(template.contains("{service}"), "{template:?}");
    }

    // Who generates each Traefik name: never two apps.
    let mut owner: BTreeMap<String, &str> = BTreeMap::new();
    for (key, app) in &config.apps {
        assert_eq!(key, &app.name);
        assert!(is_name(&app.name), "{:?}", app.name);
        assert!(rule::problem(&app.rule).is_none(), "{:?}", app.rule);
        assert!(!app.entry_points.is_empty());
        assert!(app.entry_points.iter().all(|e| is_name(e)));
        assert!(app.middlewares.iter().all(|m| !m.trim().is_empty()));

        assert_eq!(app.slots.len(), 2, "exactly two slots");
        for (slot, servers) in &app.slots {
            assert!(is_name(slot), "{slot:?}");
            assert!(!servers.is_empty());
            let mut distinct = servers.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), servers.len(), "a server listed twice");
        }
        assert!(app.slots.contains_key(&app.initial_stable));
        let other = app.other_slot(&app.initial_stable);
        assert_ne!(other, app.initial_stable);
        assert!(app.slots.contains_key(other));

        assert!(app.priority <= u32::MAX - PIN_PRIORITY_OFFSET);
        assert!(app.pin_priority() > app.priority);
        assert!(is_token(&app.pin_header.name));
        assert!(!app.pin_header.value.is_empty() && !app.pin_header.value.contains('`'));
        if let Some(pin) = &app.pin_cookie {
            assert!(is_token(pin));
        }
        if let Some(sticky) = &app.sticky_cookie {
            assert!(is_token(&sticky.name));
            assert_ne!(Some(&sticky.name), app.pin_cookie.as_ref());
        }

        let a = &app.analysis;
        assert!(!a.steps.is_empty());
        assert!(
            a.steps.iter().all(|w| (1..=100).contains(w)),
            "{:?}",
            a.steps
        );
        assert!(a.steps.windows(2).all(|w| w[0] < w[1]), "{:?}", a.steps);
        assert!(a.steps.iter().any(|w| *w < 100), "{:?}", a.steps);
        assert!(a.analysed_steps() >= 1);
        assert!(a.interval >= Duration::from_millis(100));
        assert!(!a.min_step_duration.is_zero());
        assert!(a.min_requests >= 1);
        assert!(a.error_ratio_tolerance.valid());
        let open = |x: f64| x.is_finite() && x > 0.0 && x < 1.0;
        assert!(open(a.false_rollback_bound), "{}", a.false_rollback_bound);
        assert!(open(a.promotion_confidence), "{}", a.promotion_confidence);
        assert!(open(a.latency_quantile), "{}", a.latency_quantile);
        assert!(a.max_error_ratio.is_finite() && a.max_error_ratio > 0.0);
        assert!(a.max_error_ratio <= 1.0);
        assert!(a.max_latency_ratio.is_finite() && a.max_latency_ratio >= 1.0);
        assert!((1..=1000).contains(&a.failure_limit));

        let mut names = app.generated_names();
        names.sort();
        names.dedup();
        for n in names {
            if let Some(other) = owner.insert(n.clone(), &app.name) {
                panic!("apps {other:?} and {:?} both generate {n:?}", app.name);
            }
        }
    }

    let mut notifiers: Vec<&str> = config.notifiers.iter().map(|n| n.name.as_str()).collect();
    assert!(notifiers.iter().all(|n| is_name(n)));
    notifiers.sort();
    let count = notifiers.len();
    notifiers.dedup();
    assert_eq!(notifiers.len(), count, "two notifiers with one name");
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    for secrets in [&FakeSecrets as &dyn SecretSource, &NoSecrets] {
        match Config::parse(src, secrets) {
            Ok(config) => {
                check_config(&config);
                // The same text, the same config.
                assert_eq!(Config::parse(src, secrets).ok(), Some(config));
            }
            Err(issues) => check_refusal(src, &issues),
        }
    }
});
