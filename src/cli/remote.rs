//! What every command that talks to the admin API shares: where it is, the token, the output
//! format.

use std::path::PathBuf;

use clap::ValueEnum;
use serde::Serialize;

use super::Failure;
use crate::client::Client;
pub use crate::client::TOKEN_ENV;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// The variable older versions of the CLI read; still read when [`TOKEN_ENV`] is unset.
pub const TOKEN_ENV_ALIAS: &str = "CANARY_PILOT_TOKEN";

/// Where the admin API is and how to authenticate to it.
#[derive(Debug, clap::Args)]
pub struct Remote {
    /// Base URL of canary-pilot's API.
    #[arg(
        long,
        env = "CANARY_PILOT_SERVER",
        default_value = "http://127.0.0.1:9000"
    )]
    pub server: String,
    /// File holding the admin bearer token (else the environment's CANARY_PILOT_ADMIN_TOKEN,
    /// or its older name CANARY_PILOT_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

impl Remote {
    /// A client for `--server`, with the token from `--token-file`, `CANARY_PILOT_ADMIN_TOKEN`
    /// or `CANARY_PILOT_TOKEN`, in that order.
    pub fn client(&self) -> Result<Client, Failure> {
        let (token, from) = match &self.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Failure::usage(anyhow::anyhow!(
                        "cannot read --token-file {}: {e}",
                        path.display()
                    ))
                })?;
                (
                    Some(text.trim().to_string()),
                    format!("--token-file {}", path.display()),
                )
            }
            None => match env_token() {
                Some((token, name)) => (Some(token), name.to_string()),
                None => (None, String::new()),
            },
        };
        Ok(Client::new(&self.server, token).token_from(&from))
    }
}

/// The token from the environment, and the variable it came from.
fn env_token() -> Option<(String, &'static str)> {
    [TOKEN_ENV, TOKEN_ENV_ALIAS].into_iter().find_map(|name| {
        let t = std::env::var(name).ok()?;
        let t = t.trim();
        (!t.is_empty()).then(|| (t.to_string(), name))
    })
}

/// Prints an answer as indented JSON, its keys in alphabetical order.
pub fn print_json(answer: &impl Serialize) {
    emit!("{}", json_text(answer, true));
}

/// An answer as JSON: indented, or on one line.
pub fn json_text(answer: &impl Serialize, pretty: bool) -> String {
    // Through a `Value`, whose object keys are sorted, as `--output json` has always printed.
    let value = serde_json::to_value(answer).expect("views serialize");
    if pretty {
        serde_json::to_string_pretty(&value).expect("serializes")
    } else {
        value.to_string()
    }
}
