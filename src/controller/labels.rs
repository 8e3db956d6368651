//! Apps declared with labels (`[swarm] labels = true`): every look at the engine reads the
//! labelled services; when their labels changed, the apps they declare join the config file's
//! apps through the same path as a reload. A service whose labels are wrong declares no app
//! (an app it declared before stays as it was) and is named with every problem in `/readyz`.

use std::collections::{BTreeMap, BTreeSet};

use super::Controller;
use crate::config::{AppConfig, Config, OsSecrets};
use crate::swarm::{self, EngineError};

/// Where a refused change of the labels' apps is reported.
const NOT_APPLIED: &str = "(labels)";

/// What the labels declare.
#[derive(Debug, Default)]
pub(super) struct LabelApps {
    /// The labelled services and their labels, as last applied.
    seen: Vec<(String, BTreeMap<String, String>)>,
    /// The apps they declare, by name.
    pub apps: BTreeMap<String, AppConfig>,
    /// Problems, by service.
    pub problems: BTreeMap<String, Vec<String>>,
}

impl Controller {
    /// `file` with the apps declared by labels (when `[swarm] labels` is on).
    pub(super) fn with_label_apps(&self, file: &Config) -> Config {
        let mut full = file.clone();
        if !file.swarm.labels {
            return full;
        }
        let labelled = self.labelled.lock().expect("poisoned");
        for (name, app) in &labelled.apps {
            full.apps.entry(name.clone()).or_insert_with(|| app.clone());
        }
        full
    }

    /// The problems of the labelled services, for `/readyz`.
    pub(super) fn label_problems(&self) -> Vec<String> {
        let labelled = self.labelled.lock().expect("poisoned");
        labelled.problems.values().flatten().cloned().collect()
    }

    /// Reads the labelled services and applies the apps they declare, if they changed.
    pub(super) async fn refresh_labels(
        &self,
        engine: &swarm::Engine,
        network: &str,
    ) -> Result<(), EngineError> {
        let services = engine.labelled().await?;
        if self.labelled.lock().expect("poisoned").seen == services {
            return Ok(());
        }
        let file = self.file_config();
        let previous = self.labelled.lock().expect("poisoned").apps.clone();
        let (apps, problems) = declared(&file, &services, network, &previous);
        {
            let mut labelled = self.labelled.lock().expect("poisoned");
            for (service, list) in &problems {
                let known = labelled.problems.get(service);
                for p in list
                    .iter()
                    .filter(|p| !known.is_some_and(|k| k.contains(p)))
                {
                    tracing::warn!(service, problem = %p, "labels declare no app; fix them");
                }
            }
            let not_applied = labelled.problems.remove(NOT_APPLIED);
            labelled.apps = apps;
            labelled.problems = problems;
            if let Some(n) = not_applied {
                labelled.problems.insert(NOT_APPLIED.into(), n);
            }
        }
        let full = self.with_label_apps(&file);
        match self.apply_config(full, false).await {
            Ok(report) => {
                if !(report.added.is_empty()
                    && report.removed.is_empty()
                    && report.changed.is_empty())
                {
                    tracing::info!(added = ?report.added, removed = ?report.removed, changed = ?report.changed, "apps from labels applied");
                }
                let mut labelled = self.labelled.lock().expect("poisoned");
                labelled.problems.remove(NOT_APPLIED);
                labelled.seen = services;
            }
            Err(e) => {
                // Kept as it was; tried again at the next look.
                let why = format!("not applied: {e}");
                let mut labelled = self.labelled.lock().expect("poisoned");
                if labelled
                    .problems
                    .get(NOT_APPLIED)
                    .is_none_or(|p| !p.contains(&why))
                {
                    tracing::error!(error = %e, "apps from labels not applied; the apps stay as they were");
                }
                labelled.apps = previous;
                labelled.problems.insert(NOT_APPLIED.into(), vec![why]);
            }
        }
        Ok(())
    }
}

/// The apps `services` declare, and the problems of those that declare none. A service with
/// wrong labels keeps the app it declared before, if any.
fn declared(
    file: &Config,
    services: &[(String, BTreeMap<String, String>)],
    network: &str,
    previous: &BTreeMap<String, AppConfig>,
) -> (BTreeMap<String, AppConfig>, BTreeMap<String, Vec<String>>) {
    let mut apps: BTreeMap<String, AppConfig> = BTreeMap::new();
    let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut taken: BTreeSet<String> = file
        .apps
        .values()
        .flat_map(|a| a.generated_names())
        .collect();
    for (service, labels) in services {
        let defaults = &file.swarm.defaults;
        let app = match swarm::labels::label_app(service, labels, network, defaults, &OsSecrets) {
            Ok(app) => app,
            Err(list) => {
                problems.insert(service.clone(), list);
                let kept = previous
                    .values()
                    .find(|a| a.managed.as_ref().is_some_and(|m| &m.service == service));
                match kept {
                    Some(app) => app.clone(),
                    None => continue,
                }
            }
        };
        let names = app.generated_names();
        if let Some(clash) = names.iter().find(|n| taken.contains(*n)) {
            problems.entry(service.clone()).or_default().push(format!(
                "service {service:?}: its app {:?} would generate the Traefik name {clash:?}, which another app generates already; set canary-pilot.app to another name",
                app.name
            ));
            continue;
        }
        taken.extend(names);
        apps.insert(app.name.clone(), app);
    }
    (apps, problems)
}
