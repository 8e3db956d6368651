//! `[server]`: the listen address, the state file and the API tokens.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::check::Check;
use super::key::KeyPath;
use super::raw::RawServer;
use super::secret::{self, Secret};
use super::typed::ServerConfig;
use super::{ADMIN_TOKEN_ENV, PROVIDER_TOKEN_ENV};

impl ServerConfig {
    pub(super) fn from_raw(raw: RawServer, at: &KeyPath, cx: &mut Check) -> Option<Self> {
        let listen = match raw.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => cx.fail(
                &at.key("listen"),
                format!(
                    "{:?} is not an address; write IP:PORT, e.g. \"0.0.0.0:9000\"",
                    raw.listen
                ),
            ),
        };
        let state_file = cx.check(
            &at.key("state_file"),
            raw.state_file,
            |p| !p.as_os_str().is_empty(),
            |_| "must not be empty".into(),
        );
        let admin_token = token(
            cx,
            &at.key("admin_token_file"),
            raw.admin_token_file,
            ADMIN_TOKEN_ENV,
        );
        let provider_token = token(
            cx,
            &at.key("provider_token_file"),
            raw.provider_token_file,
            PROVIDER_TOKEN_ENV,
        );
        if raw.protect_reads && matches!(admin_token, Some(None)) {
            cx.fail::<()>(
                &at.key("protect_reads"),
                format!(
                    "= true needs an admin token, or the API stays open to reads and changes: \
                     set admin_token_file or {ADMIN_TOKEN_ENV}"
                ),
            );
        }
        Some(ServerConfig {
            listen: listen?,
            state_file: state_file?,
            admin_token: admin_token?,
            provider_token: provider_token?,
            protect_reads: raw.protect_reads,
        })
    }
}

/// A token from its file when one is set, else from the variable `env`; unset is `Some(None)`.
fn token(cx: &mut Check, at: &KeyPath, file: Option<PathBuf>, env: &str) -> Option<Option<Secret>> {
    match file {
        Some(path) => cx.secret_file(at, &path).map(Some),
        None => Some(secret::from_env(cx.secrets, env)),
    }
}
