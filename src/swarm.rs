//! The Docker engine's view of the Swarm services canary-pilot follows: the running tasks of the
//! services that are slots (`slots.blue = { service, port }`) and of Traefik's own services
//! (`[swarm] traefik_services`), with their addresses on the shared overlay network.
//!
//! Read-only: canary-pilot lists services and tasks and inspects the network, through the
//! engine's API on its Unix socket (bollard). A task counts once Swarm calls it running (with a
//! health check: once healthy) and as long as it is meant to run; a task being stopped is gone
//! from the servers before its container stops.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::models::{NetworkInspect, NetworkTaskInfo, Task, TaskState};
use bollard::query_parameters::{
    InspectNetworkOptionsBuilder, ListServicesOptions, ListTasksOptionsBuilder,
};
use bollard::Docker;
use url::Url;

use crate::config::Config;

pub mod labels;
pub mod manage;

/// How to make the engine reachable, said with every error that it is not.
const SOCKET_HOWTO: &str = "mount the engine's socket into canary-pilot's container \
    (volumes: [/var/run/docker.sock:/var/run/docker.sock:ro]) on a manager node (placement \
    constraint node.role == manager), or set swarm.socket";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {socket}: {cause}; {SOCKET_HOWTO}")]
    Unreachable { socket: String, cause: String },
    #[error(
        "the Docker engine at {socket} is not a Swarm manager ({cause}): only a manager lists \
         services and tasks; run canary-pilot on a manager node (placement constraint \
         node.role == manager)"
    )]
    NotManager { socket: String, cause: String },
    #[error(
        "network {network:?} (swarm.network) is not on the Docker engine: name the overlay \
         network that Traefik shares with the services, as `docker network ls` shows it (a \
         stack's network is STACK_NAME)"
    )]
    NoNetwork { network: String },
    #[error("the Docker engine at {socket} answered: {cause}")]
    Api { socket: String, cause: String },
}

/// What the engine showed: each followed service's running tasks' addresses on the network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tasks {
    /// Sorted addresses, by service name; a service without running tasks has an empty list.
    pub running: BTreeMap<String, Vec<IpAddr>>,
    /// Services that do not exist (not deployed yet, or removed).
    pub missing: BTreeSet<String>,
    /// Running tasks that have no address on the network (the service is not attached to it).
    pub off_network: BTreeMap<String, usize>,
}

impl Tasks {
    /// What is not as it should be, for status and logs; empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let missing = self
            .missing
            .iter()
            .map(|s| format!("service {s:?} does not exist"));
        let off = self.off_network.iter().map(|(s, n)| {
            format!("{n} running task(s) of service {s:?} are not on the network: attach the service to it")
        });
        missing.chain(off).collect()
    }
}

/// The engine, through its API on the Unix socket.
pub struct Engine {
    docker: Docker,
    socket: PathBuf,
}

impl Engine {
    /// Connects and agrees on an API version with the engine: a socket that is missing or
    /// refuses is an error here.
    pub async fn connect(socket: &Path, timeout: Duration) -> Result<Engine, EngineError> {
        let shown = socket.display().to_string();
        let unreachable = |cause: String| EngineError::Unreachable {
            socket: shown.clone(),
            cause,
        };
        let docker = Docker::connect_with_unix(
            &shown,
            timeout.as_secs().max(1),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| unreachable(e.to_string()))?
        .negotiate_version()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
        Ok(Engine {
            docker,
            socket: socket.to_owned(),
        })
    }

    /// The services labelled `canary-pilot.enable=true`, with their labels, by name.
    pub async fn labelled(&self) -> Result<Vec<(String, BTreeMap<String, String>)>, EngineError> {
        let filters = HashMap::from([("label", vec![format!("{}=true", labels::ENABLE)])]);
        let options = bollard::query_parameters::ListServicesOptionsBuilder::new()
            .filters(&filters)
            .build();
        let mut out: Vec<(String, BTreeMap<String, String>)> = self
            .docker
            .list_services(Some(options))
            .await
            .map_err(|e| self.error(e))?
            .into_iter()
            .filter_map(|s| {
                let spec = s.spec?;
                let labels: BTreeMap<String, String> =
                    spec.labels.unwrap_or_default().into_iter().collect();
                // A primary is canary-pilot's own, never an app.
                if labels.contains_key(manage::PRIMARY_OF_LABEL) {
                    return None;
                }
                Some((spec.name?, labels))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// The running tasks of `services` and their addresses on `network`.
    pub async fn tasks(
        &self,
        network: &str,
        services: &BTreeSet<String>,
    ) -> Result<Tasks, EngineError> {
        // Service ID -> name, of every service there is.
        let ids: HashMap<String, String> = self
            .docker
            .list_services(None::<ListServicesOptions>)
            .await
            .map_err(|e| self.error(e))?
            .into_iter()
            .filter_map(|s| Some((s.id?, s.spec?.name?)))
            .collect();
        let existing: BTreeSet<String> = ids.values().cloned().collect();
        let wanted: Vec<String> = services
            .iter()
            .filter(|s| existing.contains(*s))
            .cloned()
            .collect();
        let tasks = if wanted.is_empty() {
            Vec::new()
        } else {
            let filters = HashMap::from([
                ("service", wanted.clone()),
                ("desired-state", vec!["running".to_string()]),
            ]);
            let options = ListTasksOptionsBuilder::new().filters(&filters).build();
            self.docker
                .list_tasks(Some(options))
                .await
                .map_err(|e| self.error(e))?
        };
        let options = InspectNetworkOptionsBuilder::new()
            .verbose(true)
            .scope("swarm")
            .build();
        let net = match self.docker.inspect_network(network, Some(options)).await {
            Ok(net) => net,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(EngineError::NoNetwork {
                    network: network.to_string(),
                })
            }
            Err(e) => return Err(self.error(e)),
        };
        Ok(join(services, &existing, &ids, &tasks, &net))
    }

    fn error(&self, e: bollard::errors::Error) -> EngineError {
        let socket = self.socket.display().to_string();
        match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 503,
                message,
            } => EngineError::NotManager {
                socket,
                cause: message,
            },
            bollard::errors::Error::DockerResponseServerError { message, .. } => EngineError::Api {
                socket,
                cause: message,
            },
            other => EngineError::Unreachable {
                socket,
                cause: other.to_string(),
            },
        }
    }
}

/// Joins what the engine listed: a task is a server when it is running, meant to run, and has
/// an address on the network. `ids` maps the ID of every service there is to its name.
pub fn join(
    services: &BTreeSet<String>,
    existing: &BTreeSet<String>,
    ids: &HashMap<String, String>,
    tasks: &[Task],
    network: &NetworkInspect,
) -> Tasks {
    let mut out = Tasks::default();
    for s in services {
        if existing.contains(s) {
            out.running.insert(s.clone(), Vec::new());
        } else {
            out.missing.insert(s.clone());
        }
    }
    let addresses = network_addresses(network);
    for task in tasks {
        let running = task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING);
        let meant = task.desired_state == Some(TaskState::RUNNING);
        let service = task
            .service_id
            .as_ref()
            .and_then(|id| ids.get(id))
            .filter(|name| services.contains(*name));
        let (Some(service), true, true, Some(id)) = (service, running, meant, &task.id) else {
            continue;
        };
        match addresses.get(id.as_str()) {
            Some(ip) => out.running.entry(service.clone()).or_default().push(*ip),
            None => *out.off_network.entry(service.clone()).or_default() += 1,
        }
    }
    for ips in out.running.values_mut() {
        ips.sort();
        ips.dedup();
    }
    out
}

/// Task ID -> address, from a verbose inspect of the network. Its task names are
/// SERVICE.SLOT.ID (replicated) or SERVICE.NODE.ID (global).
fn network_addresses(network: &NetworkInspect) -> HashMap<String, IpAddr> {
    let mut addresses = HashMap::new();
    for info in network.services.iter().flat_map(|m| m.values()) {
        let Ok(info) = serde_json::from_value::<NetworkServiceInfo>(info.clone()) else {
            continue;
        };
        for t in info.tasks.into_iter().flatten() {
            let (Some(name), Some(ip)) = (t.name, t.endpoint_ip) else {
                continue;
            };
            let id = name.rsplit('.').next().unwrap_or(&name).to_string();
            if let Ok(ip) = ip.parse::<IpAddr>() {
                addresses.insert(id, ip);
            }
        }
    }
    addresses
}

/// One service in a verbose network inspect (the model leaves it untyped).
#[derive(serde::Deserialize)]
struct NetworkServiceInfo {
    #[serde(rename = "Tasks")]
    tasks: Option<Vec<NetworkTaskInfo>>,
}

/// `config` with the servers of its service slots, and the Traefik URLs of `[swarm]
/// traefik_services`, as `tasks` shows them. Without `tasks` (nothing seen yet) they are
/// empty: Traefik is given a slot without servers (its share answers 503), never a weighted
/// service that names a missing child.
pub fn resolve(config: &Config, tasks: Option<&Tasks>) -> Config {
    let mut out = config.clone();
    let running = |service: &str| -> &[IpAddr] {
        tasks
            .and_then(|t| t.running.get(service))
            .map_or(&[], Vec::as_slice)
    };
    for app in out.apps.values_mut() {
        for (slot, svc) in &app.slot_services {
            let urls = running(&svc.service)
                .iter()
                .filter_map(|ip| task_url(*ip, svc.port, "/"))
                .collect();
            app.slots.insert(slot.clone(), urls);
        }
    }
    if let Some(t) = &config.swarm.traefik {
        out.metrics.traefik_urls = t
            .services
            .iter()
            .flat_map(|s| running(s).iter())
            .filter_map(|ip| task_url(*ip, t.port, &t.path))
            .collect();
    }
    out
}

fn task_url(ip: IpAddr, port: u16, path: &str) -> Option<Url> {
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    Url::parse(&format!("http://{host}:{port}{path}")).ok()
}

#[cfg(test)]
mod tests;
