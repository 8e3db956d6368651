use std::collections::{BTreeSet, HashMap};

use bollard::models::{NetworkInspect, Task, TaskState, TaskStatus};
use serde_json::json;

use super::*;
use crate::config::{Config, NoSecrets};

fn task(id: &str, service_id: &str, state: TaskState, desired: TaskState) -> Task {
    Task {
        id: Some(id.into()),
        service_id: Some(service_id.into()),
        desired_state: Some(desired),
        status: Some(TaskStatus {
            state: Some(state),
            ..TaskStatus::default()
        }),
        ..Task::default()
    }
}

/// A verbose network inspect as the engine answers it (taken from Docker 20.10).
fn network(tasks: &[(&str, &str, &str)]) -> NetworkInspect {
    let mut services: HashMap<String, serde_json::Value> = HashMap::new();
    for (service, name, ip) in tasks {
        let entry = services.entry(service.to_string()).or_insert_with(
            || json!({"VIP": "<nil>", "Ports": [], "LocalLBIndex": 256, "Tasks": []}),
        );
        entry["Tasks"].as_array_mut().unwrap().push(json!({
            "Name": name, "EndpointID": "8f9b29af", "EndpointIP": ip, "Info": {"Host IP": "127.0.0.1"}
        }));
    }
    NetworkInspect {
        services: Some(services),
        ..NetworkInspect::default()
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn running_tasks_on_the_network_are_the_servers_and_the_rest_are_not() {
    use TaskState::*;
    let ids = HashMap::from([
        ("id-blue".to_string(), "st_blue".to_string()),
        ("id-green".to_string(), "st_green".to_string()),
        ("id-other".to_string(), "st_other".to_string()),
    ]);
    let tasks = [
        task("t1", "id-blue", RUNNING, RUNNING),
        task("t2", "id-blue", RUNNING, RUNNING),
        // Starting (its health check has not passed yet): not a server yet.
        task("t3", "id-blue", STARTING, RUNNING),
        // Being stopped: out of the servers before its container stops.
        task("t4", "id-blue", RUNNING, SHUTDOWN),
        // Running but not on the network.
        task("t5", "id-green", RUNNING, RUNNING),
        // A service nobody asked about.
        task("t6", "id-other", RUNNING, RUNNING),
    ];
    let net = network(&[
        ("st_blue", "st_blue.2.t2", "10.0.1.7"),
        ("st_blue", "st_blue.1.t1", "10.0.1.3"),
        ("st_blue", "st_blue.3.t3", "10.0.1.9"),
        ("st_blue", "st_blue.4.t4", "10.0.1.11"),
        ("st_other", "st_other.1.t6", "10.0.1.20"),
    ]);
    let existing = set(&["st_blue", "st_green", "st_other"]);
    let got = join(
        &set(&["st_blue", "st_green", "st_gone"]),
        &existing,
        &ids,
        &tasks,
        &net,
    );
    assert_eq!(
        got.running["st_blue"],
        vec![
            "10.0.1.3".parse::<IpAddr>().unwrap(),
            "10.0.1.7".parse().unwrap()
        ]
    );
    assert_eq!(got.running["st_green"], Vec::<IpAddr>::new());
    assert!(!got.running.contains_key("st_other"));
    assert_eq!(got.missing, set(&["st_gone"]));
    assert_eq!(got.off_network["st_green"], 1);
    let problems = got.problems().join("; ");
    assert!(
        problems.contains("\"st_gone\" does not exist"),
        "{problems}"
    );
    assert!(
        problems.contains("1 running task(s) of service \"st_green\" are not on the network"),
        "{problems}"
    );
}

#[test]
fn global_services_and_ipv6_addresses_are_understood() {
    let ids = HashMap::from([("id".to_string(), "st_traefik".to_string())]);
    let tasks = [task("tg", "id", TaskState::RUNNING, TaskState::RUNNING)];
    let net = network(&[("st_traefik", "st_traefik.nodeid123.tg", "fd00::5")]);
    let got = join(
        &set(&["st_traefik"]),
        &set(&["st_traefik"]),
        &ids,
        &tasks,
        &net,
    );
    assert_eq!(
        got.running["st_traefik"],
        vec!["fd00::5".parse::<IpAddr>().unwrap()]
    );
    let url = task_url(got.running["st_traefik"][0], 8082, "/metrics").unwrap();
    assert_eq!(url.as_str(), "http://[fd00::5]:8082/metrics");
}

const SWARM_CONFIG: &str = r#"
[metrics]
source = "traefik"

[swarm]
network = "st_net"
traefik_services = ["st_traefik"]
traefik_metrics_port = 9100

[apps.api]
rule = "Host(`api.localhost`)"
initial_stable = "blue"
[apps.api.slots]
blue = { service = "st_blue", port = 8080 }
green = ["http://10.9.9.9:8080"]
"#;

#[test]
fn resolve_gives_service_slots_and_traefik_the_running_tasks_and_nothing_else() {
    let config = Config::parse(SWARM_CONFIG, &NoSecrets).unwrap();
    assert_eq!(config.swarm_services(), set(&["st_blue", "st_traefik"]));

    // Nothing seen yet: the service slot has no servers, the plain slot keeps its own.
    let none = resolve(&config, None);
    assert!(none.apps["api"].slots["blue"].is_empty());
    assert_eq!(none.apps["api"].slots["green"].len(), 1);
    assert!(none.metrics.traefik_urls.is_empty());

    let tasks = Tasks {
        running: BTreeMap::from([
            (
                "st_blue".into(),
                vec!["10.0.1.3".parse().unwrap(), "10.0.1.4".parse().unwrap()],
            ),
            ("st_traefik".into(), vec!["10.0.1.8".parse().unwrap()]),
        ]),
        ..Tasks::default()
    };
    let got = resolve(&config, Some(&tasks));
    let blue: Vec<&str> = got.apps["api"].slots["blue"]
        .iter()
        .map(Url::as_str)
        .collect();
    assert_eq!(blue, ["http://10.0.1.3:8080/", "http://10.0.1.4:8080/"]);
    assert_eq!(
        got.apps["api"].slots["green"],
        config.apps["api"].slots["green"]
    );
    let traefik: Vec<&str> = got.metrics.traefik_urls.iter().map(Url::as_str).collect();
    assert_eq!(traefik, ["http://10.0.1.8:9100/metrics"]);
    // Resolving again with what was seen is the same config: nothing to publish.
    assert_eq!(resolve(&got, Some(&tasks)), got);

    // The provider renders every server; a slot whose tasks are all gone has no servers, and
    // the weighted service still names both children.
    let gone = Tasks {
        running: BTreeMap::from([("st_blue".into(), Vec::new())]),
        ..Tasks::default()
    };
    for (seen, servers) in [(&tasks, 2), (&gone, 0)] {
        let cfg = resolve(&config, Some(seen));
        let states = BTreeMap::from([(
            "api".to_string(),
            crate::rollout::AppState::initial(&cfg.apps["api"], 0),
        )]);
        let doc: serde_json::Value =
            serde_json::from_slice(&crate::provider::render(&cfg, &states)).unwrap();
        let services = &doc["http"]["services"];
        assert_eq!(
            services["api-stable"]["loadBalancer"]["servers"]
                .as_array()
                .unwrap()
                .len(),
            servers,
            "{doc}"
        );
        let children: Vec<&str> = services["api"]["weighted"]["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(children, ["api-stable", "api-canary"], "{doc}");
    }
}
