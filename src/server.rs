//! `canary-pilot serve`: bind, answer 503 while state loads, load it, serve until SIGINT/SIGTERM.

mod http;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::controller::{Controller, Dependencies, StartError};
use crate::signals::shutdown_signal;
use crate::store::FileStore;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    State(#[from] StartError),
    #[error(transparent)]
    Engine(#[from] crate::swarm::EngineError),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

pub async fn serve(
    config: Config,
    config_path: Option<std::path::PathBuf>,
    listen: Option<SocketAddr>,
) -> Result<(), ServeError> {
    let config = Arc::new(config);
    // Taken over before anything else: SIGHUP's default action ends the process, and a HUP that
    // arrives while the state loads must not.
    let loaded_for_hup = Arc::new(std::sync::OnceLock::new());
    #[cfg(unix)]
    {
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(reload_on_sighup(hup, loaded_for_hup.clone()));
    }
    let addr = listen.unwrap_or(config.server.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    let state = ApiState::pending();
    let state_for_server = state.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        http::serve(
            listener,
            api::router(state_for_server),
            http::Limits::default(),
            async move {
                tokio::select! {
                    _ = shutdown_signal() => {},
                    _ = stop_rx => {},
                }
            },
        )
        .await
    });
    tracing::info!(addr = %local, apps = config.apps.len(), "listening; loading state");

    // Swarm services are looked at once before anything is served: Traefik is never given a
    // service slot before its servers are known.
    let (config, engine) = match first_look(&config).await {
        Ok(Some((engine, tasks))) => {
            let resolved = Arc::new(crate::swarm::resolve(&config, Some(&tasks)));
            (resolved, Some((engine, tasks)))
        }
        Ok(None) => (config, None),
        Err(e) => {
            let _ = stop_tx.send(());
            let _ = server.await;
            return Err(e.into());
        }
    };
    let deps = Dependencies {
        source: Some(crate::analysis::configured_source(&config.metrics)),
        config_path,
        deliver: true,
        engine,
        ..Dependencies::new(Arc::new(FileStore::new(config.server.state_file.clone())))
    };
    let loaded = tokio::task::spawn_blocking({
        let config = config.clone();
        move || Controller::load(config, deps)
    })
    .await
    .expect("state loader panicked");
    let (loop_stop_tx, loop_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let analysis_loop = match loaded {
        Ok(controller) => {
            let controller = Arc::new(controller);
            let _ = loaded_for_hup.set(controller.clone());
            state.set_controller(controller.clone());
            tracing::info!(addr = %local, period = ?controller.tick_period(), "ready: serving the Traefik provider and the admin API; analysis loop running");
            // Ends with the process; it only reads Traefik's API and records what it saw.
            tokio::spawn(controller.clone().run_traefik_check());
            tokio::spawn(controller.clone().run_swarm_watch());
            tokio::spawn(controller.run(async move {
                let _ = loop_stop_rx.await;
            }))
        }
        Err(e) => {
            let _ = stop_tx.send(());
            let _ = server.await;
            return Err(e.into());
        }
    };
    let served = server.await.expect("server task panicked");
    let _ = loop_stop_tx.send(());
    let _ = analysis_loop.await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// The engine and its first answer, when the config names Swarm services.
async fn first_look(
    config: &Config,
) -> Result<Option<(Arc<crate::swarm::Engine>, crate::swarm::Tasks)>, crate::swarm::EngineError> {
    let services = config.swarm_services();
    let Some(network) = config
        .swarm
        .network
        .as_deref()
        .filter(|_| config.swarm.used(config))
    else {
        return Ok(None);
    };
    let engine =
        crate::swarm::Engine::connect(&config.swarm.socket, std::time::Duration::from_secs(10))
            .await?;
    let tasks = engine.tasks(network, &services).await?;
    for problem in tasks.problems() {
        tracing::warn!(%problem, "Swarm service");
    }
    let servers: Vec<String> = tasks
        .running
        .iter()
        .map(|(s, ips)| format!("{s}={}", ips.len()))
        .collect();
    tracing::info!(socket = %config.swarm.socket.display(), network, tasks = %servers.join(" "), "Docker engine read");
    Ok(Some((Arc::new(engine), tasks)))
}

/// Reloads the config file on every SIGHUP, once the controller is loaded; a bad file is logged
/// and changes nothing, and a HUP while the state loads is logged and ignored.
#[cfg(unix)]
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    controller: Arc<std::sync::OnceLock<Arc<Controller>>>,
) {
    while hup.recv().await.is_some() {
        let Some(controller) = controller.get() else {
            tracing::warn!("SIGHUP while the state is loading: ignored; send it again once ready");
            continue;
        };
        match controller.reload_from_file(false).await {
            Ok(report) => tracing::info!(?report, "SIGHUP: config reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: config not reloaded; the running config stays")
            }
        }
    }
}
