//! `canary-pilot serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::Failure;
use crate::config::Config;
use crate::server::{self, ServeError};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[arg(long, short, env = "CANARY_PILOT_CONFIG")]
    config: PathBuf,
    /// Listen on this address instead of server.listen.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

/// A config or state file error is a usage error (2); anything else failed (1).
pub async fn run(args: ServeArgs) -> Result<(), Failure> {
    let loaded = Config::load(&args.config).map_err(Failure::usage)?;
    server::serve(loaded, Some(args.config), args.listen)
        .await
        .map_err(|e| match e {
            ServeError::State(_) => Failure::usage(e),
            other => Failure::failed(other),
        })
}
