//! Secrets: [`Secret`], which never prints, and [`SecretSource`], where secret files and
//! variables are read from (the process in production, a fake in tests).

use std::fmt;
use std::path::Path;

/// A secret read from a file or the environment. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where secrets come from; the real one reads files and the process environment.
pub trait SecretSource {
    fn read_file(&self, path: &Path) -> std::io::Result<String>;
    fn env(&self, name: &str) -> Option<String>;
}

/// Reads secret files from disk and variables from the process environment.
pub struct OsSecrets;

impl SecretSource for OsSecrets {
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// No secrets at all: every secret file is missing and no variable is set. For validating
/// config text on its own (tests, tools).
pub struct NoSecrets;

impl SecretSource for NoSecrets {
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not read here", path.display()),
        ))
    }
    fn env(&self, _: &str) -> Option<String> {
        None
    }
}

/// The one reader of secret files: the content without surrounding whitespace (a trailing
/// newline); `Err` says what is wrong with the file.
pub(super) fn from_file(source: &dyn SecretSource, path: &Path) -> Result<Secret, String> {
    match source.read_file(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Secret(text.trim().to_string())),
        Ok(_) => Err(format!("{} is empty", path.display())),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The secret in variable `name`; empty counts as unset.
pub(super) fn from_env(source: &dyn SecretSource, name: &str) -> Option<Secret> {
    source
        .env(name)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .map(Secret)
}
