//! [`KeyPath`]: the one spelling of a key in the file, `apps.api.analysis.steps[2]`.

use std::fmt;

/// Where a value sits in the file: table keys and array indexes from the root.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// The document itself.
    pub fn root() -> Self {
        KeyPath::default()
    }

    /// The value under `key` in the table at this path.
    pub fn key(&self, key: &str) -> Self {
        self.with(Segment::Key(key.to_string()))
    }

    /// Element `index` of the array at this path.
    pub fn index(&self, index: usize) -> Self {
        self.with(Segment::Index(index))
    }

    fn with(&self, segment: Segment) -> Self {
        let mut segments = Vec::with_capacity(self.0.len() + 1);
        segments.extend_from_slice(&self.0);
        segments.push(segment);
        KeyPath(segments)
    }

    pub(super) fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.0.iter()
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path of the table or array that holds this value; `None` for the root.
    pub fn parent(&self) -> Option<KeyPath> {
        let (_, rest) = self.0.split_last()?;
        Some(KeyPath(rest.to_vec()))
    }

    /// Whether this path is `other` or lies inside it.
    pub fn starts_with(&self, other: &KeyPath) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_print_as_the_docs_write_them() {
        let steps = KeyPath::root().key("apps").key("api").key("steps");
        assert_eq!(steps.index(2).to_string(), "apps.api.steps[2]");
        assert_eq!(
            KeyPath::root()
                .key("notifiers")
                .index(0)
                .key("url")
                .to_string(),
            "notifiers[0].url"
        );
        assert_eq!(steps.index(2).parent(), Some(steps.clone()));
        assert!(steps.index(2).starts_with(&steps));
        assert!(!steps.starts_with(&steps.index(2)));
        assert_eq!(KeyPath::root().parent(), None);
    }
}
