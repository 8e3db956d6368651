//! Following the Swarm services that are slots or Traefik: their running tasks become the slots'
//! servers and the Traefik replicas scraped. Only what is served changes, never a weight; when
//! the engine cannot be read, the last servers seen stay and readiness says why.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Controller;
use crate::config::Config;
use crate::swarm::{self, Tasks};

/// What the engine last showed, or why it could not be read.
#[derive(Debug, Clone, Default)]
pub(super) struct SwarmView {
    pub tasks: Option<Tasks>,
    pub error: Option<String>,
    /// The version each slot's tasks run, by app and slot (Swarm-managed apps).
    pub runs: BTreeMap<String, BTreeMap<String, String>>,
    /// Why a Swarm-managed app's last step failed, by app (tried again at the next look).
    pub steps_failed: BTreeMap<String, String>,
}

impl Controller {
    /// `config` with the servers of its service slots as last seen.
    pub(super) fn resolved(&self, config: &Config) -> Config {
        if config.swarm_services().is_empty() {
            return config.clone();
        }
        let view = self.swarm.lock().expect("poisoned");
        swarm::resolve(config, view.tasks.as_ref())
    }

    /// The version each slot of `app` runs, as its service's image says (Swarm-managed apps;
    /// a service scaled to 0 runs nothing).
    pub fn slots_run(&self, app: &str) -> BTreeMap<String, String> {
        let view = self.swarm.lock().expect("poisoned");
        view.runs.get(app).cloned().unwrap_or_default()
    }

    /// Why the Docker engine could not be read at the last look, if it could not.
    pub fn engine_error(&self) -> Option<String> {
        self.swarm.lock().expect("poisoned").error.clone()
    }

    /// What is amiss with the services followed (missing, off the network, labels that
    /// declare no app), if anything.
    pub fn swarm_problems(&self) -> Vec<String> {
        let view = self.swarm.lock().expect("poisoned");
        let mut problems = view.tasks.as_ref().map(Tasks::problems).unwrap_or_default();
        problems.extend(
            view.steps_failed
                .iter()
                .map(|(app, e)| format!("app {app}: its last release step failed: {e}")),
        );
        drop(view);
        problems.extend(self.label_problems());
        problems
    }

    /// Reads the engine every `swarm.poll_interval` while the config names Swarm services.
    pub async fn run_swarm_watch(self: Arc<Self>) {
        let Some(engine) = self.engine.clone() else {
            return;
        };
        loop {
            let config = self.config();
            tokio::time::sleep(config.swarm.poll_interval).await;
            let (Some(network), true) = (&config.swarm.network, config.swarm.used(&config)) else {
                continue;
            };
            if config.swarm.labels {
                if let Err(e) = self.refresh_labels(&engine, network).await {
                    self.engine_failed(e.to_string());
                    continue;
                }
            }
            let services = self.config().swarm_services();
            match engine.tasks(network, &services).await {
                Ok(tasks) => {
                    self.apply_tasks(tasks).await;
                    self.after_look(&engine).await;
                }
                Err(e) => self.engine_failed(e.to_string()),
            }
        }
    }

    pub(super) fn engine_failed(&self, error: String) {
        let mut view = self.swarm.lock().expect("poisoned");
        if view.error.as_deref() != Some(error.as_str()) {
            tracing::error!(%error, "Docker engine not read; Traefik keeps the servers last seen");
        }
        view.error = Some(error);
    }

    /// Serves what the engine showed: the slots' servers and the Traefik replicas to scrape,
    /// when they changed. The state (weights, phase) is left as it is.
    pub async fn apply_tasks(&self, tasks: Tasks) {
        {
            let mut view = self.swarm.lock().expect("poisoned");
            if view.error.take().is_some() {
                tracing::info!("Docker engine read again");
            }
            if view.tasks.as_ref() == Some(&tasks) {
                return;
            }
            for problem in tasks.problems() {
                if !view
                    .tasks
                    .as_ref()
                    .is_some_and(|t| t.problems().contains(&problem))
                {
                    tracing::warn!(%problem, "Swarm service");
                }
            }
            view.tasks = Some(tasks.clone());
        }
        let mut guard = self.state.lock().await;
        let old = self.config();
        let new = swarm::resolve(&old, Some(&tasks));
        if new == *old {
            return;
        }
        for (app, cfg) in &new.apps {
            for slot in cfg.slot_services.keys() {
                let before = old.apps.get(app).and_then(|a| a.slots.get(slot));
                let after = &cfg.slots[slot];
                if before != Some(after) {
                    tracing::info!(
                        app,
                        slot,
                        servers = after.len(),
                        was = before.map_or(0, Vec::len),
                        "servers follow the tasks"
                    );
                }
            }
        }
        if new.metrics.traefik_urls != old.metrics.traefik_urls {
            tracing::info!(
                replicas = new.metrics.traefik_urls.len(),
                "Traefik replicas follow the tasks"
            );
            if let Some(source) = &self.live.read().expect("poisoned").source {
                source.set_targets(&new.metrics.traefik_urls);
            }
        }
        let state = guard.clone();
        // Nothing to write: the state is as it was; only the document changes.
        if let Err(e) = self.commit(&mut guard, &Arc::new(new), state).await {
            tracing::error!(error = %e, "servers not applied");
        }
    }
}
