//! The validation context, [`Check`], and the checks every section shares: required keys,
//! durations, URLs, numbers in a range, choices, lists, secret files.
//!
//! Each check returns the typed value, or records an issue and returns `None`. A section checks
//! every key into a local first and builds its typed struct from them with `?` last, so every
//! issue is recorded and a typed value exists only when all of its parts passed.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::{Bound, RangeInclusive};
use std::path::Path;
use std::time::Duration;

use url::Url;

use toml::de::DeTable;

use super::de::{span_of, Refusal};
use super::issue::{line_of, not_one_of, ConfigIssue};
use super::key::KeyPath;
use super::secret::{self, Secret, SecretSource};

pub(super) struct Check<'a> {
    src: &'a str,
    doc: &'a DeTable<'a>,
    left_out: &'a BTreeSet<KeyPath>,
    pub secrets: &'a dyn SecretSource,
    issues: Vec<ConfigIssue>,
}

impl<'a> Check<'a> {
    pub fn new(
        src: &'a str,
        doc: &'a DeTable<'a>,
        left_out: &'a BTreeSet<KeyPath>,
        secrets: &'a dyn SecretSource,
    ) -> Self {
        Check {
            src,
            doc,
            left_out,
            secrets,
            issues: Vec::new(),
        }
    }

    /// Records a value serde refused, on its own line.
    pub fn refused(&mut self, r: Refusal) {
        let line = r.span.map(|s| line_of(self.src, s.start));
        self.issues.push(ConfigIssue {
            key: r.key.to_string(),
            line,
            message: r.message,
        });
    }

    /// Records an issue at `at`, on the line of its value (or of its table when it is unset).
    /// A value serde refused was reported then: nothing more is said about it or inside it.
    pub fn issue(&mut self, at: &KeyPath, message: impl Into<String>) {
        if self.left_out.iter().any(|l| at.starts_with(l)) {
            return;
        }
        let line = span_of(self.doc, at).map(|s| line_of(self.src, s.start));
        self.issues.push(ConfigIssue {
            key: at.to_string(),
            line,
            message: message.into(),
        });
    }

    pub fn fail<T>(&mut self, at: &KeyPath, message: impl Into<String>) -> Option<T> {
        self.issue(at, message);
        None
    }

    /// `Some(())` when `ok`; otherwise an issue.
    pub fn ensure(
        &mut self,
        at: &KeyPath,
        ok: bool,
        message: impl FnOnce() -> String,
    ) -> Option<()> {
        if ok {
            Some(())
        } else {
            self.fail(at, message())
        }
    }

    /// `value` when `ok(&value)`; otherwise an issue made from it.
    pub fn check<T>(
        &mut self,
        at: &KeyPath,
        value: T,
        ok: impl FnOnce(&T) -> bool,
        message: impl FnOnce(&T) -> String,
    ) -> Option<T> {
        if ok(&value) {
            Some(value)
        } else {
            let message = message(&value);
            self.fail(at, message)
        }
    }

    /// A key with no default.
    pub fn required<T>(&mut self, at: &KeyPath, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.issue(at, "is required");
        }
        value
    }

    /// Checks an optional value: `Some(None)` when it is unset, `None` when it is set and bad.
    pub fn optional<T, U>(
        &mut self,
        value: Option<T>,
        check: impl FnOnce(&mut Self, T) -> Option<U>,
    ) -> Option<Option<U>> {
        match value {
            None => Some(None),
            Some(v) => check(self, v).map(Some),
        }
    }

    /// Checks every element of the list at `at`; `None` if any failed.
    pub fn list<T, U>(
        &mut self,
        at: &KeyPath,
        items: impl IntoIterator<Item = T>,
        mut check: impl FnMut(&mut Self, &KeyPath, T) -> Option<U>,
    ) -> Option<Vec<U>> {
        let mut out = Some(Vec::new());
        for (i, item) in items.into_iter().enumerate() {
            match (check(self, &at.index(i), item), &mut out) {
                (Some(u), Some(list)) => list.push(u),
                _ => out = None,
            }
        }
        out
    }

    /// The choice named `value`, from `choices` (`kind` says what they are: "a source").
    pub fn one_of<T: Copy>(
        &mut self,
        at: &KeyPath,
        value: &str,
        kind: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        match choices.iter().find(|(name, _)| *name == value) {
            Some((_, choice)) => Some(*choice),
            None => {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                self.fail(at, not_one_of(value, kind, &names))
            }
        }
    }

    pub fn duration(&mut self, at: &KeyPath, text: &str) -> Option<Duration> {
        match humantime::parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => self.fail(
                at,
                format!("{text:?} is not a duration ({e}); write e.g. \"30s\", \"500ms\", \"10m\""),
            ),
        }
    }

    /// An `http://` or `https://` URL with a host.
    pub fn url(&mut self, at: &KeyPath, text: &str) -> Option<Url> {
        match Url::parse(text) {
            Ok(u) if is_http(&u) => Some(u),
            Ok(_) => self.fail(
                at,
                format!("{text:?} must be an http:// or https:// URL with a host"),
            ),
            Err(e) => self.fail(at, format!("{text:?} is not a URL ({e})")),
        }
    }

    /// An integer within `range`, as the typed field's type.
    pub fn int<T: TryFrom<i64>>(
        &mut self,
        at: &KeyPath,
        value: i64,
        range: RangeInclusive<i64>,
    ) -> Option<T> {
        match T::try_from(value) {
            Ok(v) if range.contains(&value) => Some(v),
            _ => self.fail(at, format!("= {value}: must be {}", IntRange(range))),
        }
    }

    /// A finite number within `range`.
    pub fn float(&mut self, at: &KeyPath, value: f64, range: FloatRange) -> Option<f64> {
        if range.contains(value) {
            Some(value)
        } else {
            self.fail(at, format!("= {value}: must be {range}"))
        }
    }

    /// The secret in the file at `path`, reported at `at` when it cannot be had.
    pub fn secret_file(&mut self, at: &KeyPath, path: &Path) -> Option<Secret> {
        match secret::from_file(self.secrets, path) {
            Ok(s) => Some(s),
            Err(message) => self.fail(at, message),
        }
    }

    /// The issues, in the order of their lines.
    pub fn into_issues(mut self) -> Vec<ConfigIssue> {
        self.issues.sort_by_key(|i| i.line.unwrap_or(usize::MAX));
        self.issues
    }
}

pub(super) fn is_http(u: &Url) -> bool {
    matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
}

/// 1-63 letters, digits, `-` and `_`, starting with a letter or digit: what Traefik object,
/// slot, entry point and notifier names may be.
pub(super) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// An HTTP token (RFC 9110): what header and cookie names may contain.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_|~".contains(&b))
}

/// An integer range as the docs write it: `1..=100`, or `at least 1` when it has no real top.
struct IntRange(RangeInclusive<i64>);

impl fmt::Display for IntRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (*self.0.start(), *self.0.end()) {
            (lo, i64::MAX) => write!(f, "at least {lo}"),
            (lo, hi) => write!(f, "{lo}..={hi}"),
        }
    }
}

/// A range of finite numbers, printed in words: "greater than 0 and at most 1".
#[derive(Debug, Clone, Copy)]
pub(super) struct FloatRange {
    lo: Bound<f64>,
    hi: Bound<f64>,
}

impl FloatRange {
    /// `(lo, hi]`
    pub const fn above_up_to(lo: f64, hi: f64) -> Self {
        FloatRange {
            lo: Bound::Excluded(lo),
            hi: Bound::Included(hi),
        }
    }
    /// `(lo, hi)`
    pub const fn between(lo: f64, hi: f64) -> Self {
        FloatRange {
            lo: Bound::Excluded(lo),
            hi: Bound::Excluded(hi),
        }
    }
    /// `[lo, ∞)`
    pub const fn at_least(lo: f64) -> Self {
        FloatRange {
            lo: Bound::Included(lo),
            hi: Bound::Unbounded,
        }
    }

    fn contains(&self, x: f64) -> bool {
        let above = match self.lo {
            Bound::Included(lo) => x >= lo,
            Bound::Excluded(lo) => x > lo,
            Bound::Unbounded => true,
        };
        let below = match self.hi {
            Bound::Included(hi) => x <= hi,
            Bound::Excluded(hi) => x < hi,
            Bound::Unbounded => true,
        };
        x.is_finite() && above && below
    }
}

impl fmt::Display for FloatRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Bound::Included(lo), Bound::Included(hi)) = (self.lo, self.hi) {
            return write!(f, "from {lo} to {hi}");
        }
        let lo = match self.lo {
            Bound::Included(lo) => Some(format!("at least {lo}")),
            Bound::Excluded(lo) => Some(format!("greater than {lo}")),
            Bound::Unbounded => None,
        };
        let hi = match self.hi {
            Bound::Included(hi) => Some(format!("at most {hi}")),
            Bound::Excluded(hi) => Some(format!("less than {hi}")),
            Bound::Unbounded => None,
        };
        match (lo, hi) {
            (Some(lo), Some(hi)) => write!(f, "{lo} and {hi}"),
            (Some(one), None) | (None, Some(one)) => f.write_str(&one),
            (None, None) => f.write_str("a finite number"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_print_as_a_person_writes_them() {
        assert_eq!(
            FloatRange::above_up_to(0.0, 1.0).to_string(),
            "greater than 0 and at most 1"
        );
        assert_eq!(
            FloatRange::between(0.0, 1.0).to_string(),
            "greater than 0 and less than 1"
        );
        assert_eq!(FloatRange::at_least(1.0).to_string(), "at least 1");
        assert_eq!(FloatRange::at_least(1.5).to_string(), "at least 1.5");
        assert_eq!(IntRange(1..=100).to_string(), "1..=100");
        assert_eq!(IntRange(1..=i64::MAX).to_string(), "at least 1");
    }

    #[test]
    fn float_ranges_refuse_nan_infinity_and_their_excluded_ends() {
        let r = FloatRange::above_up_to(0.0, 1.0);
        assert!(r.contains(1.0) && r.contains(1e-300));
        assert!(!r.contains(0.0) && !r.contains(1.0000001) && !r.contains(f64::NAN));
        assert!(!FloatRange::at_least(1.0).contains(f64::INFINITY));
    }
}
