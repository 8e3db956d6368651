//! The writes of a Swarm-managed app (`service = { name, port }`): the primary service that
//! canary-pilot keeps beside the user's own, with the spec last promoted, and the replica counts
//! of both. The decisions are the controller's; this is what they do to the engine.
//!
//! What canary-pilot knows lives on the primary service's labels, so that neither a restart
//! nor a lost state file forgets it: `canary-pilot.spec` (the hash of the spec it runs),
//! `canary-pilot.release` (the spec of the release started last) and `canary-pilot.rolled-back`
//! (the spec of the release rolled back last).

use std::collections::HashMap;

use bollard::models::{
    EndpointSpec, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceUpdateStatusStateEnum, TaskSpec,
};
use bollard::query_parameters::{ListServicesOptionsBuilder, UpdateServiceOptionsBuilder};
use sha2::{Digest, Sha256};

use super::{Engine, EngineError};
use crate::config::PRIMARY_SLOT;
use crate::rollout::{AppState, Phase};

/// How long after the last change of an app's state before the user's service is scaled
/// down: Traefik must have the new weights (its poll, its throttle) before tasks stop.
pub const DRAIN_MS: u64 = 10_000;

/// One step of a Swarm-managed app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// No primary yet: make it from the user's service, with this many replicas.
    CreatePrimary {
        replicas: u64,
    },
    /// The user's spec changed during a release: end it; the newer spec is released next.
    Abort {
        reason: String,
    },
    /// Promoted: bring the primary to the promoted spec (it has no traffic).
    UpdatePrimary,
    /// The primary runs the promoted spec: it takes the stable role back.
    HandBack,
    /// Remember the spec of the release rolled back.
    MarkRolledBack {
        spec: String,
    },
    /// The replica count the user's stack asks for, on the primary.
    ScalePrimary {
        replicas: u64,
    },
    /// The user's service: 0 once the primary carries everything, up again for a new spec.
    ScaleUser {
        replicas: u64,
    },
    /// Remember the spec about to be released (before it starts, so a restart starts it too).
    MarkRelease {
        spec: String,
    },
    /// Its tasks run the new spec: start the release.
    Start {
        version: String,
    },
}

/// What a managed app does next, from its state and what the engine shows of its two
/// services. Pure: the controller carries it out and looks again at the next poll.
pub fn decide(
    state: &AppState,
    user: &ServiceInfo,
    primary: Option<&ServiceInfo>,
    now_ms: u64,
) -> Action {
    let Some(primary) = primary else {
        return Action::CreatePrimary {
            replicas: user.replicas.max(1),
        };
    };
    let new = user.spec_hash.as_str();
    let spec = primary.label(SPEC_LABEL);
    let released = primary.label(RELEASE_LABEL);
    let rolled_back = primary.label(ROLLED_BACK_LABEL);
    let drained = now_ms.saturating_sub(state.updated_at_ms) >= DRAIN_MS;
    if state.phase.is_active() {
        return match released {
            Some(r) if r != new => Action::Abort {
                reason: format!(
                    "service {} changed again during the release (now {}); the newer spec is released next",
                    user.name,
                    user.version()
                ),
            },
            _ => Action::Nothing,
        };
    }
    if state.phase == Phase::Succeeded && state.stable_slot != PRIMARY_SLOT {
        // Promoted: the user's service carries everything. The primary gets the promoted
        // spec (not one deployed since), then the stable role back.
        return if spec != released && released == Some(new) {
            if primary.updating {
                Action::Nothing
            } else {
                Action::UpdatePrimary
            }
        } else if primary.converged() {
            Action::HandBack
        } else {
            Action::Nothing
        };
    }
    if state.phase == Phase::RolledBack {
        if let Some(r) = released.filter(|r| rolled_back != Some(*r)) {
            return Action::MarkRolledBack {
                spec: r.to_string(),
            };
        }
    }
    if spec == Some(new) || rolled_back == Some(new) {
        // Nothing new: the primary serves; the user's service is kept at 0 once it may stop.
        if user.replicas == 0 || state.stable_slot != PRIMARY_SLOT || !drained {
            return Action::Nothing;
        }
        return if primary.replicas != user.replicas && spec == Some(new) {
            Action::ScalePrimary {
                replicas: user.replicas,
            }
        } else if primary.converged() {
            Action::ScaleUser { replicas: 0 }
        } else {
            Action::Nothing
        };
    }
    // A new spec: a release of it, once its tasks run it.
    if user.replicas == 0 {
        Action::ScaleUser {
            replicas: primary.replicas.max(1),
        }
    } else if !user.converged() {
        Action::Nothing
    } else if released != Some(new) {
        Action::MarkRelease {
            spec: new.to_string(),
        }
    } else {
        Action::Start {
            version: user.version(),
        }
    }
}

/// The label on the primary with the hash of the spec it runs.
pub const SPEC_LABEL: &str = "canary-pilot.spec";
/// The label on the primary with the spec of the release started last.
pub const RELEASE_LABEL: &str = "canary-pilot.release";
/// The label on the primary with the spec of the release rolled back last.
pub const ROLLED_BACK_LABEL: &str = "canary-pilot.rolled-back";
/// The label on the primary naming the user's service it is the primary of.
pub const PRIMARY_OF_LABEL: &str = "canary-pilot.primary-of";
/// What `docker stack deploy` marks its services with; the primary must not carry it, or a
/// `docker stack deploy --prune` would remove it.
const STACK_LABELS: [&str; 2] = ["com.docker.stack.namespace", "com.docker.stack.image"];

/// One service as the managed app's decisions need it.
#[derive(Debug, Clone)]
pub struct ServiceInfo {
    pub name: String,
    version: u64,
    spec: ServiceSpec,
    /// The hash of its task template without the stack's labels: equal for the user's
    /// service and a primary made from it.
    pub spec_hash: String,
    /// The image its tasks run, as the spec names it.
    pub image: String,
    pub replicas: u64,
    pub running: u64,
    /// A rolling update (or its rollback) is under way.
    pub updating: bool,
}

impl ServiceInfo {
    /// A service as a test describes it.
    #[cfg(test)]
    pub fn fake(name: &str, spec_hash: &str, image: &str, replicas: u64, running: u64) -> Self {
        ServiceInfo {
            name: name.into(),
            version: 1,
            spec: ServiceSpec::default(),
            spec_hash: spec_hash.into(),
            image: image.into(),
            replicas,
            running,
            updating: false,
        }
    }

    #[cfg(test)]
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.spec
            .labels
            .get_or_insert_with(HashMap::new)
            .insert(key.into(), value.into());
        self
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.spec
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .map(String::as_str)
    }

    /// Every task it should run is running its spec, and no update is under way.
    pub fn converged(&self) -> bool {
        !self.updating && self.running == self.replicas && self.replicas > 0
    }

    /// The release version its image names: the tag, or the digest's first 12 characters.
    pub fn version(&self) -> String {
        image_version(&self.image)
    }
}

/// `registry:5000/shop/api:v2@sha256:…` → `v2`; `api@sha256:0123456789abcdef…` →
/// `sha256:0123456789ab`; `api` → `latest`.
pub fn image_version(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match (last.split_once(':'), digest) {
        (Some((_, tag)), _) => tag.to_string(),
        (None, Some(d)) => d.chars().take("sha256:".len() + 12).collect(),
        (None, None) => "latest".to_string(),
    }
}

/// The task template without what a stack adds to its containers' labels.
fn normalized(template: &TaskSpec) -> TaskSpec {
    let mut t = template.clone();
    if let Some(labels) = t.container_spec.as_mut().and_then(|c| c.labels.as_mut()) {
        for key in STACK_LABELS {
            labels.remove(key);
        }
    }
    t
}

/// A stable hash of a task template: its JSON with sorted keys.
pub fn spec_hash(template: &TaskSpec) -> String {
    let value = serde_json::to_value(normalized(template)).unwrap_or_default();
    let digest = Sha256::digest(value.to_string().as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

fn info(s: bollard::models::Service) -> Option<ServiceInfo> {
    let spec = s.spec?;
    let name = spec.name.clone()?;
    let template = spec.task_template.clone().unwrap_or_default();
    let image = template
        .container_spec
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let replicas = spec
        .mode
        .as_ref()
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(0)
        .max(0) as u64;
    let updating = matches!(
        s.update_status.and_then(|u| u.state),
        Some(
            ServiceUpdateStatusStateEnum::UPDATING
                | ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                | ServiceUpdateStatusStateEnum::PAUSED
                | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
        )
    );
    Some(ServiceInfo {
        name,
        version: s.version.and_then(|v| v.index).unwrap_or(0),
        spec_hash: spec_hash(&template),
        image,
        replicas,
        running: s
            .service_status
            .and_then(|st| st.running_tasks)
            .unwrap_or(0),
        updating,
        spec,
    })
}

impl Engine {
    /// The user's service and its primary, as they are now (`None`: it does not exist).
    pub async fn managed(
        &self,
        service: &str,
        primary: &str,
    ) -> Result<(Option<ServiceInfo>, Option<ServiceInfo>), EngineError> {
        let filters = HashMap::from([("name", vec![service.to_string(), primary.to_string()])]);
        let options = ListServicesOptionsBuilder::new()
            .filters(&filters)
            .status(true)
            .build();
        let all: Vec<ServiceInfo> = self
            .docker
            .list_services(Some(options))
            .await
            .map_err(|e| self.error(e))?
            .into_iter()
            .filter_map(info)
            .collect();
        // The name filter matches prefixes too.
        let find = |name: &str| all.iter().find(|s| s.name == name).cloned();
        Ok((find(service), find(primary)))
    }

    /// Creates the primary of `user`: its spec, under the primary's name, outside its stack,
    /// without published ports (the user's service keeps those), with `replicas` tasks.
    pub async fn create_primary(
        &self,
        user: &ServiceInfo,
        primary: &str,
        replicas: u64,
    ) -> Result<(), EngineError> {
        let mut spec = user.spec.clone();
        spec.name = Some(primary.to_string());
        let mut labels = spec.labels.take().unwrap_or_default();
        for key in STACK_LABELS {
            labels.remove(key);
        }
        // The primary is not an app of its own (`canary-pilot.*`), nor routed by Traefik's swarm
        // provider (`traefik.*`): canary-pilot routes it.
        labels.retain(|k, _| !k.starts_with("canary-pilot.") && !k.starts_with("traefik."));
        labels.insert(PRIMARY_OF_LABEL.into(), user.name.clone());
        labels.insert(SPEC_LABEL.into(), user.spec_hash.clone());
        spec.labels = Some(labels);
        spec.task_template = spec.task_template.as_ref().map(normalized);
        spec.endpoint_spec = spec.endpoint_spec.map(|e| EndpointSpec {
            mode: e.mode,
            ports: None,
        });
        spec.mode = Some(replicated(replicas));
        self.docker
            .create_service(spec, None)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Brings the primary to `user`'s task template (a rolling update, by the primary's own
    /// update config), keeping its name, labels, ports and replicas.
    pub async fn update_primary(
        &self,
        primary: &ServiceInfo,
        user: &ServiceInfo,
    ) -> Result<(), EngineError> {
        let mut spec = primary.spec.clone();
        spec.task_template = user.spec.task_template.as_ref().map(normalized);
        spec.update_config = user.spec.update_config.clone();
        spec.rollback_config = user.spec.rollback_config.clone();
        let labels = spec.labels.get_or_insert_with(HashMap::new);
        labels.insert(SPEC_LABEL.into(), user.spec_hash.clone());
        self.update(primary, spec).await
    }

    /// Sets one label of a service (the primary's memory).
    pub async fn set_label(
        &self,
        service: &ServiceInfo,
        key: &str,
        value: &str,
    ) -> Result<(), EngineError> {
        let mut spec = service.spec.clone();
        spec.labels
            .get_or_insert_with(HashMap::new)
            .insert(key.into(), value.into());
        self.update(service, spec).await
    }

    /// Sets the image of a service's tasks, as `docker service update --image` does.
    pub async fn set_image(&self, service: &ServiceInfo, image: &str) -> Result<(), EngineError> {
        let mut spec = service.spec.clone();
        let template = spec.task_template.get_or_insert_with(TaskSpec::default);
        template
            .container_spec
            .get_or_insert_with(Default::default)
            .image = Some(image.to_string());
        self.update(service, spec).await
    }

    /// Sets a service's replica count.
    pub async fn scale(&self, service: &ServiceInfo, replicas: u64) -> Result<(), EngineError> {
        let mut spec = service.spec.clone();
        spec.mode = Some(replicated(replicas));
        self.update(service, spec).await
    }

    async fn update(&self, service: &ServiceInfo, spec: ServiceSpec) -> Result<(), EngineError> {
        let options = UpdateServiceOptionsBuilder::new()
            .version(service.version as i32)
            .build();
        self.docker
            .update_service(&service.name, spec, options, None)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}

fn replicated(replicas: u64) -> ServiceSpecMode {
    ServiceSpecMode {
        replicated: Some(ServiceSpecModeReplicated {
            replicas: Some(replicas as i64),
        }),
        ..ServiceSpecMode::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::TaskSpecContainerSpec;

    #[test]
    fn versions_are_the_image_tag_or_its_digest() {
        assert_eq!(
            image_version("registry:5000/shop/api:v2@sha256:0123456789abcdef0"),
            "v2"
        );
        assert_eq!(image_version("shop/api:2.4.1"), "2.4.1");
        assert_eq!(
            image_version("api@sha256:0123456789abcdef0123"),
            "sha256:0123456789ab"
        );
        assert_eq!(image_version("registry:5000/api"), "latest");
    }

    #[test]
    fn the_spec_hash_ignores_the_stacks_labels_and_follows_everything_else() {
        let template = |image: &str, stack: Option<&str>| TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image.into()),
                labels: Some(
                    stack
                        .map(|s| {
                            HashMap::from([(
                                "com.docker.stack.namespace".to_string(),
                                s.to_string(),
                            )])
                        })
                        .unwrap_or_default(),
                ),
                env: Some(vec!["A=1".into(), "B=2".into()]),
                ..TaskSpecContainerSpec::default()
            }),
            ..TaskSpec::default()
        };
        let user = spec_hash(&template("shop:v2", Some("shop")));
        assert_eq!(
            user,
            spec_hash(&template("shop:v2", None)),
            "the primary has no stack label"
        );
        assert_eq!(
            user,
            spec_hash(&template("shop:v2", Some("shop"))),
            "stable"
        );
        assert_ne!(user, spec_hash(&template("shop:v3", Some("shop"))));
        let mut env = template("shop:v2", Some("shop"));
        env.container_spec.as_mut().unwrap().env = Some(vec!["A=1".into(), "B=3".into()]);
        assert_ne!(user, spec_hash(&env), "an environment change is a new spec");
    }

    fn state(phase: Phase, stable: &str, updated_at_ms: u64) -> AppState {
        let src = "[swarm]\nnetwork = \"n\"\n[apps.shop]\nrule = \"Host(`a`)\"\nservice = { name = \"shop_api\", port = 8080 }\n";
        let config = crate::config::Config::parse(src, &crate::config::NoSecrets).unwrap();
        let mut s = AppState::initial(&config.apps["shop"], 0);
        s.phase = phase;
        s.stable_slot = stable.into();
        s.updated_at_ms = updated_at_ms;
        s
    }

    const NOW: u64 = 100_000;
    const LONG_AGO: u64 = NOW - DRAIN_MS;

    fn user(hash: &str, replicas: u64, running: u64) -> ServiceInfo {
        ServiceInfo::fake("shop_api", hash, "shop/api:v2", replicas, running)
    }

    fn primary(spec: &str) -> ServiceInfo {
        ServiceInfo::fake("shop_api-primary", spec, "shop/api:v1", 2, 2)
            .with_label(SPEC_LABEL, spec)
    }

    #[test]
    fn first_sight_creates_the_primary_then_scales_the_users_service_down() {
        let idle = state(Phase::Idle, "primary", LONG_AGO);
        let u = user("aaa", 3, 3);
        assert_eq!(
            decide(&idle, &u, None, NOW),
            Action::CreatePrimary { replicas: 3 }
        );
        let p = ServiceInfo::fake("shop_api-primary", "aaa", "shop/api:v2", 3, 1)
            .with_label(SPEC_LABEL, "aaa");
        assert_eq!(
            decide(&idle, &u, Some(&p), NOW),
            Action::Nothing,
            "the primary is not running yet"
        );
        let p = ServiceInfo::fake("shop_api-primary", "aaa", "shop/api:v2", 3, 3)
            .with_label(SPEC_LABEL, "aaa");
        assert_eq!(
            decide(&idle, &u, Some(&p), NOW),
            Action::ScaleUser { replicas: 0 }
        );
        assert_eq!(
            decide(&idle, &user("aaa", 0, 0), Some(&p), NOW),
            Action::Nothing
        );
    }

    #[test]
    fn a_new_spec_is_marked_then_released_once_its_tasks_run() {
        let idle = state(Phase::Succeeded, "primary", LONG_AGO);
        let p = primary("old");
        // `docker service update --image` kept the user's service at 0: scaled up first.
        assert_eq!(
            decide(&idle, &user("new", 0, 0), Some(&p), NOW),
            Action::ScaleUser { replicas: 2 }
        );
        assert_eq!(
            decide(&idle, &user("new", 2, 1), Some(&p), NOW),
            Action::Nothing
        );
        assert_eq!(
            decide(&idle, &user("new", 2, 2), Some(&p), NOW),
            Action::MarkRelease { spec: "new".into() }
        );
        let p = p.with_label(RELEASE_LABEL, "new");
        assert_eq!(
            decide(&idle, &user("new", 2, 2), Some(&p), NOW),
            Action::Start {
                version: "v2".into()
            }
        );
        // Under way: nothing, unless the spec changes again.
        let running = state(Phase::Progressing, "primary", NOW);
        assert_eq!(
            decide(&running, &user("new", 2, 2), Some(&p), NOW),
            Action::Nothing
        );
        assert!(matches!(
            decide(&running, &user("newer", 2, 2), Some(&p), NOW),
            Action::Abort { reason } if reason.contains("changed again during the release")
        ));
    }

    #[test]
    fn a_promotion_brings_the_primary_to_the_spec_then_hands_back_then_scales_down() {
        let promoted = state(Phase::Succeeded, "canary", NOW);
        let u = user("new", 2, 2);
        let p = primary("old").with_label(RELEASE_LABEL, "new");
        assert_eq!(decide(&promoted, &u, Some(&p), NOW), Action::UpdatePrimary);
        let mut updating = p.clone();
        updating.updating = true;
        assert_eq!(decide(&promoted, &u, Some(&updating), NOW), Action::Nothing);
        let done = p.clone().with_label(SPEC_LABEL, "new");
        assert_eq!(decide(&promoted, &u, Some(&done), NOW), Action::HandBack);
        // Handed back: the user's service goes to 0 once Traefik had time to move the traffic.
        let handed = state(Phase::Succeeded, "primary", NOW - 1_000);
        assert_eq!(decide(&handed, &u, Some(&done), NOW), Action::Nothing);
        let handed = state(Phase::Succeeded, "primary", LONG_AGO);
        assert_eq!(
            decide(&handed, &u, Some(&done), NOW),
            Action::ScaleUser { replicas: 0 }
        );
        // A redeploy of the same spec with more replicas: the primary follows; nothing starts.
        assert_eq!(
            decide(&handed, &user("new", 4, 4), Some(&done), NOW),
            Action::ScalePrimary { replicas: 4 }
        );
    }

    #[test]
    fn a_rolled_back_spec_is_remembered_and_the_same_deploy_again_starts_nothing() {
        let rolled = state(Phase::RolledBack, "primary", LONG_AGO);
        let p = primary("good").with_label(RELEASE_LABEL, "bad");
        let u = user("bad", 2, 2);
        assert_eq!(
            decide(&rolled, &u, Some(&p), NOW),
            Action::MarkRolledBack { spec: "bad".into() }
        );
        let p = p.with_label(ROLLED_BACK_LABEL, "bad");
        assert_eq!(
            decide(&rolled, &u, Some(&p), NOW),
            Action::ScaleUser { replicas: 0 }
        );
        assert_eq!(
            decide(&rolled, &user("bad", 0, 0), Some(&p), NOW),
            Action::Nothing
        );
        // The next spec is a release again.
        assert_eq!(
            decide(&rolled, &user("fixed", 2, 2), Some(&p), NOW),
            Action::MarkRelease {
                spec: "fixed".into()
            }
        );
    }
}
