//! What every command that talks to the admin API shares: where it is, the token, the output
//! format.

use std::path::PathBuf;

use clap::ValueEnum;
use serde::Serialize;

use super::Failure;
use crate::client::Client;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

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
    /// File holding the admin bearer token (else CANARY_PILOT_TOKEN).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

impl Remote {
    /// A client for `--server`, with the token from `--token-file` or `CANARY_PILOT_TOKEN`.
    pub fn client(&self) -> Result<Client, Failure> {
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        Failure::usage(anyhow::anyhow!(
                            "cannot read --token-file {}: {e}",
                            path.display()
                        ))
                    })?
                    .trim()
                    .to_string(),
            ),
            None => std::env::var("CANARY_PILOT_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        };
        Ok(Client::new(&self.server, token))
    }
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
