//! Swarm-managed apps (`service = { name, port }`): a release starts when the user's service
//! changes, as Flagger does for Kubernetes Deployments.
//!
//! The user's service (from their stack) is the `canary` slot; canary-pilot keeps a `primary`
//! service beside it, outside the stack, with the spec last promoted. Each look at the engine
//! moves every managed app one step:
//!
//! - no primary yet: create it from the user's service; once it runs, the user's service is
//!   scaled to 0;
//! - the user's spec is new (neither the primary's nor the one rolled back last): scale the
//!   user's service up if a `docker service update` left it at 0, wait until its tasks run the
//!   new spec, then start a release of it (the image tag is the version);
//! - during a release, a newer spec aborts it (the newer one is released next);
//! - promoted (the user's service is stable at 100 %): bring the primary to the new spec with a
//!   rolling update while it has no traffic, then hand the stable role back to it;
//! - rolled back: remember the spec, so that the same `docker stack deploy` again starts
//!   nothing;
//! - nothing new: once the primary carries everything, scale the user's service to 0 (again,
//!   after a `docker stack deploy` put its replicas back).

use std::sync::Arc;

use super::Controller;
use crate::config::{AppConfig, ManagedService, CANARY_SLOT, PRIMARY_SLOT};
use crate::rollout::Input;
use crate::swarm::manage::{self, Action, RELEASE_LABEL, ROLLED_BACK_LABEL};
use crate::swarm::{Engine, EngineError};

/// Why `deploy` did not update the service.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("no app named {0:?}")]
    UnknownApp(String),
    #[error(
        "app {0:?} is not a Swarm-managed app: deploy releases an image of the service named by \
         `service = {{ name, port }}` in its config; for slots, update the idle slot and `start`"
    )]
    NotManaged(String),
    #[error(
        "{0:?} is not an image reference: 1-255 printable characters without spaces, e.g. \
         \"registry.example.com/shop/api:v4\""
    )]
    BadImage(String),
    #[error("service {0:?} does not exist: deploy the app's stack first")]
    NoService(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What `deploy` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub service: String,
    pub image: String,
    /// The version the release will carry (the image's tag, or its digest).
    pub version: String,
}

impl Controller {
    /// Releases `image` on a Swarm-managed app: its service's tasks get the image (as with
    /// `docker service update --image`); the release starts once they run it.
    pub async fn deploy(&self, app: &str, image: &str) -> Result<Deployed, DeployError> {
        let config = self.config();
        let cfg = config
            .apps
            .get(app)
            .ok_or_else(|| DeployError::UnknownApp(app.to_string()))?;
        let (Some(m), Some(engine)) = (&cfg.managed, &self.engine) else {
            return Err(DeployError::NotManaged(app.to_string()));
        };
        let image_ok =
            !image.is_empty() && image.len() <= 255 && image.chars().all(|c| c.is_ascii_graphic());
        if !image_ok {
            return Err(DeployError::BadImage(image.to_string()));
        }
        let (Some(user), _) = engine.managed(&m.service, &m.primary).await? else {
            return Err(DeployError::NoService(m.service.clone()));
        };
        engine.set_image(&user, image).await?;
        tracing::info!(app, service = %user.name, image, "deployed; the release starts once its tasks run it");
        Ok(Deployed {
            service: user.name.clone(),
            image: image.to_string(),
            version: manage::image_version(image),
        })
    }

    /// Moves every Swarm-managed app one step; an app whose step fails is tried again at the
    /// next look, and the error is shown in `/readyz` (`swarm`) until a step succeeds. Weights
    /// are not touched by a failed step.
    pub(super) async fn drive_managed(&self, engine: &Engine) {
        let config = self.config();
        for app in config.apps.values() {
            let Some(m) = &app.managed else { continue };
            let result = self.drive(engine, app, m).await;
            let mut view = self.swarm.lock().expect("poisoned");
            match result {
                Ok(()) => {
                    view.steps_failed.remove(&app.name);
                }
                Err(e) => {
                    let e = e.to_string();
                    if view.steps_failed.get(&app.name) != Some(&e) {
                        tracing::error!(app = %app.name, service = %m.service, error = %e, "managed release step failed; trying again at the next look");
                    }
                    view.steps_failed.insert(app.name.clone(), e);
                }
            }
        }
    }

    async fn drive(
        &self,
        engine: &Engine,
        app: &AppConfig,
        m: &ManagedService,
    ) -> Result<(), EngineError> {
        let name = app.name.as_str();
        let (Some(user), primary) = engine.managed(&m.service, &m.primary).await? else {
            // Not deployed (yet): /readyz names it.
            return Ok(());
        };
        let Some(state) = self.published().apps.get(name).cloned() else {
            return Ok(());
        };
        {
            let runs = [(CANARY_SLOT, Some(&user)), (PRIMARY_SLOT, primary.as_ref())]
                .into_iter()
                .filter_map(|(slot, s)| {
                    let s = s.filter(|s| s.replicas > 0)?;
                    Some((slot.to_string(), s.version()))
                })
                .collect();
            let mut view = self.swarm.lock().expect("poisoned");
            view.runs.insert(name.to_string(), runs);
        }
        let action = manage::decide(&state, &user, primary.as_ref(), self.clock.now_ms());
        if action != Action::Nothing {
            tracing::info!(app = name, service = %user.name, version = %user.version(), ?action, "managed release step");
        }
        let primary = || primary.as_ref().expect("decided with a primary");
        match action {
            Action::Nothing => Ok(()),
            Action::CreatePrimary { replicas } => {
                engine.create_primary(&user, &m.primary, replicas).await
            }
            Action::Abort { reason } => {
                self.act(name, Input::Abort { reason }).await;
                Ok(())
            }
            Action::UpdatePrimary => engine.update_primary(primary(), &user).await,
            Action::HandBack => {
                self.act(name, Input::HandBack).await;
                Ok(())
            }
            Action::MarkRolledBack { spec } => {
                engine.set_label(primary(), ROLLED_BACK_LABEL, &spec).await
            }
            Action::ScalePrimary { replicas } => engine.scale(primary(), replicas).await,
            Action::ScaleUser { replicas } => engine.scale(&user, replicas).await,
            Action::MarkRelease { spec } => engine.set_label(primary(), RELEASE_LABEL, &spec).await,
            Action::Start { version } => {
                self.act(name, Input::Start { version }).await;
                Ok(())
            }
        }
    }

    async fn act(&self, app: &str, input: Input) {
        if let Err(e) = self.command(app, input).await {
            tracing::warn!(app, error = %e, "managed release step refused");
        }
    }

    /// The engine watch's step for managed apps (after the servers were applied).
    pub(super) async fn after_look(self: &Arc<Self>, engine: &Engine) {
        if self.config().apps.values().any(|a| a.managed.is_some()) {
            self.drive_managed(engine).await;
        }
    }
}
