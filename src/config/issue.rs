//! What is wrong with a file: [`ConfigIssue`] (which key, which line, what to do) and
//! [`ConfigError`], every issue of one file together.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in the file: which key, where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The key's [`KeyPath`](super::KeyPath), e.g. `apps.api.analysis.steps[2]`; empty for a
    /// syntax error.
    pub key: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Everything wrong with a config file, reported together.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_issues(.path, .issues))]
    Invalid {
        path: PathBuf,
        issues: Vec<ConfigIssue>,
    },
}

fn render_issues(path: &Path, issues: &[ConfigIssue]) -> String {
    let mut out = format!(
        "config {} has {} error{}:",
        path.display(),
        issues.len(),
        if issues.len() == 1 { "" } else { "s" }
    );
    for issue in issues {
        out.push_str("\n  ");
        out.push_str(&issue.to_string());
    }
    out
}

impl ConfigError {
    pub fn issues(&self) -> &[ConfigIssue] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { issues, .. } => issues,
        }
    }
}

/// The 1-based line holding byte `offset` of `src`.
pub(super) fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The candidate closest to `word` by edit distance, when it is close enough to be a typo:
/// at most one edit in five characters (one at least), and fewer edits than either word has
/// characters (`c` is no typo of `a`).
pub(super) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let len = word.chars().count();
    let allowed = (len / 5).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= allowed && *d < len.min(c.chars().count()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance where swapping two neighbouring characters counts as one edit
/// (optimal string alignment), case-insensitive.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // rows[i][j]: the distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    rows[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// `"x" is not a KIND; did you mean "y"?` or `...; use "a", "b" or "c"`.
pub(super) fn not_one_of(value: &str, kind: &str, known: &[&str]) -> String {
    match closest(value, known) {
        Some(c) => format!("{value:?} is not {kind}; did you mean {c:?}?"),
        None => format!(
            "{value:?} is not {kind}; use {}",
            either(known, |k| format!("{k:?}"))
        ),
    }
}

/// `a`, `b` or `c`, each written by `show`.
pub(super) fn either(items: &[&str], show: impl Fn(&str) -> String) -> String {
    let shown: Vec<String> = items.iter().map(|i| show(i)).collect();
    match shown.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_the_closest_key() {
        let keys = [
            "interval",
            "steps",
            "step_weight",
            "max_weight",
            "min_requests",
        ];
        assert_eq!(closest("intervall", &keys), Some("interval"));
        assert_eq!(closest("setps", &keys), Some("steps"));
        assert_eq!(closest("Interval", &keys), Some("interval"));
        assert_eq!(closest("step_weigth", &keys), Some("step_weight"));
        assert_eq!(closest("colour", &keys), None);
        assert_eq!(closest("c", &["a", "b"]), None);
        assert_eq!(closest("tl", &["tls"]), Some("tls"));
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "acb"), 1);
    }

    #[test]
    fn choices_read_as_a_sentence() {
        assert_eq!(either(&["a"], str::to_string), "a");
        assert_eq!(either(&["a", "b", "c"], str::to_string), "a, b or c");
        assert_eq!(
            not_one_of("grafite", "a source", &["traefik", "prometheus"]),
            "\"grafite\" is not a source; use \"traefik\" or \"prometheus\""
        );
        assert_eq!(
            not_one_of("promethus", "a source", &["traefik", "prometheus"]),
            "\"promethus\" is not a source; did you mean \"prometheus\"?"
        );
    }
}
