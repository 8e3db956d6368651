//! `canary-pilot check`: validate a config and print the Traefik config it would serve.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::Failure;
use crate::config::Config;
use crate::controller::Controller;
use crate::rollout::AppState;
use crate::store::{FileStore, MemStore, Store};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[arg(long, short, env = "CANARY_PILOT_CONFIG")]
    config: PathBuf,
    /// Render from this state file instead of server.state_file (use "none" for the
    /// initial state).
    #[arg(long)]
    state: Option<PathBuf>,
}

pub fn run(args: CheckArgs) -> Result<(), Failure> {
    let config = Arc::new(Config::load(&args.config).map_err(Failure::usage)?);
    let state_path = args
        .state
        .unwrap_or_else(|| config.server.state_file.clone());
    let document = if state_path.as_os_str() == "none" || !state_path.exists() {
        eprintln!(
            "config ok; rendering the initial state (no state file at {})",
            state_path.display()
        );
        initial_document(&config)
    } else {
        let document = stored_document(config, &state_path)?;
        eprintln!("config ok; rendering the state in {}", state_path.display());
        document
    };
    let value: Value = serde_json::from_slice(&document).expect("rendered JSON parses");
    emit!(
        "{}",
        serde_json::to_string_pretty(&value).expect("serializes")
    );
    Ok(())
}

fn initial_document(config: &Config) -> Vec<u8> {
    let states = config
        .apps
        .values()
        .map(|a| (a.name.clone(), AppState::initial(a, 0)))
        .collect();
    crate::provider::render(config, &states)
}

/// Loading through the controller applies the same checks as `serve`, but must not write: the
/// file is read, then reconciled in memory.
fn stored_document(config: Arc<Config>, state_path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    let store = MemStore::default();
    let loaded = FileStore::new(state_path).load().map_err(Failure::usage)?;
    if let Some(s) = loaded {
        store.save(&s).map_err(Failure::failed)?;
    }
    let controller = Controller::load(
        config,
        crate::controller::Dependencies::new(Arc::new(store)),
    )
    .map_err(Failure::usage)?;
    Ok(controller.published().document.to_vec())
}
