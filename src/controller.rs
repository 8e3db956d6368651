//! The controller owns the live state of every app. It loads and reconciles it at start-up,
//! applies inputs — operator commands and the analysis loop's verdicts — through the pure
//! [`rollout::step`], persists every change with its event before it is served, and publishes
//! the rendered Traefik document that the provider endpoint serves from memory.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use serde::Serialize;

use crate::analysis::window::{Evidence, Reset, Stage, Windows};
use crate::analysis::{self, Analysis, MetricsSource, Verdict};
use crate::clock::{Clock, SystemClock};
use crate::config::{AppConfig, Config};
use crate::metrics::Metrics;
use crate::notify::{ask_gate, HookCall, Hooks, Notifiers};
use crate::provider;
use crate::rollout::{self, AppState, Event, EventKind, Gate, Input, Phase, Refusal};
use crate::store::{StateFile, Store, StoreError, STATE_FORMAT};
use crate::swarm;
use crate::traefik_api;
use tokio::sync::mpsc;

/// Events kept in the state file; older ones are dropped.
pub const MAX_EVENTS: usize = 1000;
/// Analyses kept per app for `status` and the API.
pub const MAX_ANALYSES: usize = 10;

/// What readers see: one consistent snapshot of the state and its rendered document.
#[derive(Debug, Clone)]
pub struct Published {
    /// The configuration this snapshot was rendered from (replaced by a reload).
    pub config: Arc<Config>,
    /// The Traefik dynamic configuration, rendered once per change.
    pub document: Bytes,
    /// State of every configured app.
    pub apps: BTreeMap<String, AppState>,
    /// Each app's part of `document`, reused by the next snapshot for the apps it leaves as
    /// they were.
    fragments: BTreeMap<String, Arc<provider::Fragment>>,
    /// The event log, oldest first.
    pub events: Arc<Vec<Event>>,
    /// Dry-run releases, beside the served states in `apps`.
    pub dry_runs: BTreeMap<String, AppState>,
}

impl Published {
    /// The state an app's analysis follows: its dry-run release while one is under way, else
    /// its served state.
    pub fn analysed(&self, app: &AppConfig) -> Option<&AppState> {
        match self.dry_runs.get(&app.name) {
            Some(dry) if app.analysis.dry_run && dry.phase.is_active() => Some(dry),
            _ => self.apps.get(&app.name),
        }
    }
}

/// One analysis as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisRecord {
    pub time_ms: u64,
    /// The release (canary version) analysed.
    pub version: Option<String>,
    pub phase: Phase,
    /// Canary weight while the window was collected.
    pub weight: u8,
    /// 1-based step.
    pub step: usize,
    pub source: String,
    /// How long the window collected data, in seconds.
    pub window_seconds: f64,
    #[serde(flatten)]
    pub analysis: Analysis,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "state file {store} says app {app:?} is stable on slot {slot:?}, but the config's slots \
         for it are {known:?}. Rename the slot back in the config, or move the state file away to \
         start the app on its initial_stable slot"
    )]
    UnknownSlot {
        store: String,
        app: String,
        slot: String,
        known: Vec<String>,
    },
}

/// What a reload changed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadReport {
    /// Settings outside the apps that changed (`server.admin_token`, `metrics`, `notifiers`...).
    pub settings: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Why a reload was refused; nothing was reloaded.
#[derive(Debug, thiserror::Error)]
pub enum ReloadRefusal {
    #[error("canary-pilot was not started from a config file")]
    NoConfigFile,
    #[error("{key} changed; restart canary-pilot to apply it (nothing was reloaded)")]
    NeedsRestart { key: &'static str },
    #[error(
        "the new config removes app {app:?}, whose release is {phase}; abort or promote it \
         first, or reload with force (nothing was reloaded)"
    )]
    RemovesActiveApp { app: String, phase: &'static str },
    #[error(
        "the new config has no apps: an empty or half-written file? Fix it, or reload with \
         force to serve no routes at all (nothing was reloaded)"
    )]
    NoApps,
    #[error(
        "the new config drops every app ({apps}): a half-written file? Fix it, or reload with \
         force (nothing was reloaded)"
    )]
    DropsEveryApp { apps: String },
    #[error(
        "the new config has no admin token, so the admin API would take changes from anyone; \
         restore server.admin_token_file (or {env}), or reload with force (nothing was reloaded)"
    )]
    DropsAdminToken { env: &'static str },
    #[error("the config file {path} is still being written (it kept changing for {waited:?}); reload again once it is saved (nothing was reloaded)")]
    StillChanging { path: String, waited: Duration },
    #[error(
        "app {app:?} is stable on slot {slot:?}, which the new config does not have (slots \
         {slots:?}); nothing was reloaded"
    )]
    StableSlotRemoved {
        app: String,
        slot: String,
        slots: Vec<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Invalid(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Refused(#[from] ReloadRefusal),
    #[error("the reload was not applied because the state could not be persisted: {0}")]
    Persist(StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no app named {0:?}")]
    UnknownApp(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("the change was not applied because it could not be persisted: {0}")]
    Persist(Arc<StoreError>),
}

#[derive(Default)]
struct AnalysisState {
    windows: Windows,
    history: BTreeMap<String, VecDeque<AnalysisRecord>>,
}

/// What the controller is built from. `Dependencies::new(store)` gives the defaults of a
/// controller that reads no metrics and delivers nothing (tests, `check`); `serve` sets them all.
pub struct Dependencies {
    pub store: Arc<dyn Store>,
    /// Where the analysis loop reads its figures; none: every analysis is inconclusive.
    pub source: Option<Arc<dyn MetricsSource>>,
    /// Wall-clock time for state and events.
    pub clock: Arc<dyn Clock>,
    /// The file the config was read from, for reloads.
    pub config_path: Option<PathBuf>,
    /// Start the notifiers and the hook deliverer (needs a Tokio runtime).
    pub deliver: bool,
    /// The Docker engine, when the config names Swarm services, with what it showed first
    /// (the config given to [`Controller::load`] is resolved with it already).
    pub engine: Option<(Arc<swarm::Engine>, swarm::Tasks)>,
}

impl Dependencies {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Dependencies {
            store,
            source: None,
            clock: Arc::new(SystemClock),
            config_path: None,
            deliver: false,
            engine: None,
        }
    }
}

/// What a reload replaces besides the config (which travels in [`Published`]).
struct Live {
    source: Option<Arc<dyn MetricsSource>>,
    notifiers: Arc<Notifiers>,
}

pub struct Controller {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    config_path: Option<PathBuf>,
    /// Delivers hooks; failed deliveries come back on `failures` as events.
    hooks: Option<Hooks>,
    failures_tx: Option<mpsc::Sender<Event>>,
    /// Taken once by [`Controller::run`], which records what arrives.
    failures_rx: Mutex<Option<mpsc::Receiver<Event>>>,
    /// For gate questions and the read-back of Traefik's API.
    http: reqwest::Client,
    live: RwLock<Live>,
    /// The authoritative state; held across persist so changes apply in order.
    state: tokio::sync::Mutex<StateFile>,
    published: RwLock<Arc<Published>>,
    /// The last persist failure, cleared by the next successful write.
    persist_error: Mutex<Option<String>>,
    analysis: Mutex<AnalysisState>,
    /// Apps with a gate question out.
    gates_asked: Mutex<BTreeSet<String>>,
    /// Where the windows' monotonic time starts.
    origin: Instant,
    /// The read-back of Traefik's API (`[traefik] api_url`).
    traefik: Mutex<TraefikReadBack>,
    /// The Docker engine and what it last showed of the Swarm services followed.
    engine: Option<Arc<swarm::Engine>>,
    swarm: Mutex<SwarmView>,
    /// The config as the file says it; the one in force adds the apps from labels.
    file_config: Mutex<Arc<Config>>,
    /// The apps declared with labels, and the problems of labels that declare none.
    labelled: Mutex<labels::LabelApps>,
}

/// What Traefik's API showed at the last read-back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraefikCheck {
    pub checked_at_ms: Option<u64>,
    /// Why the API could not be read, if it could not.
    pub error: Option<String>,
    /// Generated objects Traefik does not show enabled (missing ones only after a grace).
    pub findings: Vec<traefik_api::Finding>,
}

#[derive(Default)]
struct TraefikReadBack {
    last: TraefikCheck,
    /// Read-backs that failed in a row; one that fails now and then is no news.
    failures: u32,
    /// Since when (monotonic ms) each missing object has been missing.
    missing_since: BTreeMap<String, u64>,
}

/// Read-backs in a row that must fail before the API counts as unreadable.
const READ_BACK_FAILURES: u32 = 3;

/// How long a generated object may be missing from Traefik before it counts: Traefik loads a
/// new document only at its next poll, and applies at most one every 2 s.
const MISSING_GRACE: Duration = Duration::from_secs(30);

impl Controller {
    /// Loads the stored state, adds an initial state for apps seen for the first time, and
    /// persists the result when it added anything. Blocking: call it off the async runtime
    /// (but inside it when `deps.deliver` is set).
    pub fn load(config: Arc<Config>, deps: Dependencies) -> Result<Controller, StartError> {
        let Dependencies {
            store,
            source,
            clock,
            config_path,
            deliver,
            engine,
        } = deps;
        let loaded = store.load()?;
        let existed = loaded.is_some();
        let mut state = loaded.unwrap_or(StateFile {
            format: STATE_FORMAT,
            ..StateFile::default()
        });
        let mut added = Vec::new();
        for app in config.apps.values() {
            match state.apps.get(&app.name) {
                Some(s) if !app.slots.contains_key(&s.stable_slot) => {
                    return Err(StartError::UnknownSlot {
                        store: store.describe(),
                        app: app.name.clone(),
                        slot: s.stable_slot.clone(),
                        known: app.slots.keys().cloned().collect(),
                    })
                }
                Some(_) => {}
                None => {
                    state
                        .apps
                        .insert(app.name.clone(), AppState::initial(app, clock.now_ms()));
                    added.push(app.name.clone());
                }
            }
        }
        for name in state.apps.keys() {
            if !config.apps.contains_key(name) {
                tracing::warn!(app = %name, "state holds an app that is not in the config; it is kept in the state file but not served");
            }
        }
        if !added.is_empty() || !existed {
            store.save(&state)?;
            tracing::info!(apps = ?added, store = %store.describe(), "initial state written");
        } else {
            tracing::info!(store = %store.describe(), apps = state.apps.len(), "state loaded");
        }
        let published = publish(&config, &state, None);
        let evidence = state.evidence.clone();
        let metrics = Arc::new(Metrics::new());
        metrics.set_limits(&config);
        for (name, s) in &published.apps {
            metrics.observe_state(name, s);
        }
        let (failures_tx, failures_rx, hooks, notifiers) = if deliver {
            let (tx, rx) = mpsc::channel(1000);
            let notifiers = Notifiers::start(&config.notifiers, metrics.clone(), Some(tx.clone()));
            let hooks = Hooks::start(metrics.clone(), tx.clone());
            (Some(tx), Some(rx), Some(hooks), notifiers)
        } else {
            (None, None, None, Notifiers::default())
        };
        Ok(Controller {
            store,
            clock,
            metrics,
            config_path,
            hooks,
            failures_tx,
            failures_rx: Mutex::new(failures_rx),
            http: reqwest::Client::new(),
            traefik: Mutex::new(TraefikReadBack::default()),
            live: RwLock::new(Live {
                source,
                notifiers: Arc::new(notifiers),
            }),
            state: tokio::sync::Mutex::new(state),
            published: RwLock::new(Arc::new(published)),
            persist_error: Mutex::new(None),
            analysis: Mutex::new(AnalysisState {
                windows: Windows::restored(evidence),
                history: BTreeMap::new(),
            }),
            gates_asked: Mutex::new(BTreeSet::new()),
            origin: Instant::now(),
            swarm: Mutex::new(SwarmView {
                tasks: engine.as_ref().map(|(_, t)| t.clone()),
                ..SwarmView::default()
            }),
            engine: engine.map(|(e, _)| e),
            file_config: Mutex::new(config),
            labelled: Mutex::new(labels::LabelApps::default()),
        })
    }

    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.published().config.clone()
    }

    pub fn published(&self) -> Arc<Published> {
        self.published.read().expect("poisoned").clone()
    }

    /// The last analyses of an app, newest first.
    pub fn analyses(&self, app: &str) -> Vec<AnalysisRecord> {
        let a = self.analysis.lock().expect("poisoned");
        a.history
            .get(app)
            .map(|h| h.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Why the controller cannot change state right now, if it cannot.
    pub fn persist_error(&self) -> Option<String> {
        self.persist_error.lock().expect("poisoned").clone()
    }

    /// Sets an app's canary weight by hand (an analysed release pauses).
    pub async fn set_weight(&self, app: &str, weight: i64) -> Result<AppState, ControlError> {
        self.command(app, Input::SetWeight { weight }).await
    }

    /// Applies one input to an app: step, persist (state and event together), publish. If the
    /// change cannot be persisted, nothing changes.
    pub async fn command(&self, app: &str, input: Input) -> Result<AppState, ControlError> {
        self.apply(vec![(app.to_string(), input)])
            .await
            .pop()
            .expect("one result per input")
    }

    /// Applies inputs in order under one state lock and persists them with a single write: a
    /// tick's verdicts for a thousand apps cost one state file write, not a thousand. If the
    /// write fails, none of them is applied.
    pub async fn apply(&self, inputs: Vec<(String, Input)>) -> Vec<Result<AppState, ControlError>> {
        self.apply_with_evidence(inputs, None).await
    }

    /// [`Controller::apply`], writing the releases' `evidence` with the inputs' changes (or on
    /// its own, when it changed and no input changes anything).
    async fn apply_with_evidence(
        &self,
        inputs: Vec<(String, Input)>,
        evidence: Option<BTreeMap<String, Evidence>>,
    ) -> Vec<Result<AppState, ControlError>> {
        let mut guard = self.state.lock().await;
        // Read under the state lock: a reload swaps the config under it too.
        let config = self.config();
        let now = self.clock.now_ms();
        let mut candidate = guard.clone();
        let mut results = Vec::with_capacity(inputs.len());
        let mut applied = Vec::new();
        for (app, input) in inputs {
            let Some(app_cfg) = config.apps.get(&app) else {
                results.push(Err(ControlError::UnknownApp(app)));
                continue;
            };
            let dry_base = dry_run_target(app_cfg, &candidate, &input);
            let dry = dry_base.is_some();
            let current = dry_base.or_else(|| candidate.apps.get(&app).cloned());
            let Some(current) = current else {
                results.push(Err(ControlError::UnknownApp(app)));
                continue;
            };
            match rollout::step(app_cfg, &current, input, now) {
                Err(refusal) => results.push(Err(refusal.into())),
                Ok(None) => results.push(Ok(current)),
                Ok(Some(mut transition)) => {
                    if dry {
                        candidate
                            .dry_runs
                            .insert(app.clone(), transition.state.clone());
                        if let Some(ev) = transition.event.as_mut() {
                            ev.dry_run = true;
                            ev.reason = format!("dry run, nothing served changed: {}", ev.reason);
                        }
                    } else {
                        candidate.apps.insert(app.clone(), transition.state.clone());
                    }
                    if let Some(ev) = &transition.event {
                        candidate.events.push(ev.clone());
                    }
                    results.push(Ok(transition.state.clone()));
                    applied.push((results.len() - 1, app, transition));
                }
            }
        }
        if let Some(evidence) = evidence {
            candidate.evidence = evidence;
        }
        if applied.is_empty() && candidate.evidence == guard.evidence {
            return results;
        }
        if let Err(e) = self.commit(&mut guard, &config, candidate).await {
            tracing::error!(changes = applied.len(), error = %e, "state not persisted; changes refused");
            let e = Arc::new(e);
            for (i, _, _) in &applied {
                results[*i] = Err(ControlError::Persist(e.clone()));
            }
            return results;
        }
        drop(guard);

        for (_, app, transition) in applied {
            self.after_transition(&config, &app, &transition);
        }
        results
    }

    /// The one way state changes: trims `candidate`'s event log and writes it (when it differs
    /// from `state`); once written, it becomes the state (`state`, held under the state lock)
    /// and is published under `config`. If the write fails, nothing changes and readiness says
    /// why until the next write succeeds.
    async fn commit(
        &self,
        state: &mut StateFile,
        config: &Arc<Config>,
        mut candidate: StateFile,
    ) -> Result<(), StoreError> {
        let excess = candidate.events.len().saturating_sub(MAX_EVENTS);
        candidate.events.drain(..excess);
        if candidate != *state {
            let store = self.store.clone();
            let to_save = candidate.clone();
            let saved = tokio::task::spawn_blocking(move || store.save(&to_save))
                .await
                .expect("state writer panicked");
            *self.persist_error.lock().expect("poisoned") =
                saved.as_ref().err().map(|e| e.to_string());
            saved?;
        }
        *state = candidate;
        let next = publish(config, state, Some(&self.published()));
        *self.published.write().expect("poisoned") = Arc::new(next);
        Ok(())
    }

    /// What follows a persisted transition: a fresh analysis window, metrics, notifications,
    /// hooks and the log line.
    fn after_transition(&self, config: &Config, app: &str, transition: &rollout::Transition) {
        let kind = transition.event.as_ref().map(|e| e.kind);
        if transition.reset_window {
            let why = match kind {
                Some(EventKind::Started) => Reset::NewRelease,
                Some(EventKind::Promoted) => Reset::Promoted,
                _ => Reset::Step,
            };
            let now = self.mono(Instant::now());
            let mut a = self.analysis.lock().expect("poisoned");
            a.windows.reset(app, now, why);
        }
        let s = &transition.state;
        let dry_run = transition.event.as_ref().is_some_and(|e| e.dry_run);
        if !dry_run {
            self.metrics.observe_state(app, s);
        }
        let Some(ev) = &transition.event else {
            tracing::debug!(app, generation = s.generation, "state changed");
            return;
        };
        self.announce(ev);
        // Hooks act on releases: a dry run's decisions are notified, never acted on.
        if let Some(app_cfg) = config.apps.get(app).filter(|_| !dry_run) {
            let hooks_cfg = &app_cfg.hooks;
            let hook = match ev.kind {
                EventKind::Started => hooks_cfg.pre_rollout.clone().map(|u| ("pre_rollout", u)),
                EventKind::Promoted => hooks_cfg.post_rollout.clone().map(|u| ("post_rollout", u)),
                EventKind::RolledBack => hooks_cfg.rollback.clone().map(|u| ("rollback", u)),
                _ => None,
            };
            if let (Some((hook, url)), Some(hooks)) = (hook, &self.hooks) {
                hooks.call(HookCall {
                    hook,
                    url,
                    event: ev.clone(),
                    timeout: hooks_cfg.timeout,
                });
            }
        }
        tracing::info!(
            app,
            event = ev.kind.as_str(),
            version = s.canary_version.as_deref().unwrap_or("-"),
            phase = s.phase.as_str(),
            weight = s.canary_weight,
            reason = %ev.reason,
            "transition"
        );
    }

    /// Reads the config file again and applies it (see [`Controller::reload`]).
    pub async fn reload_from_file(&self, force: bool) -> Result<ReloadReport, ReloadError> {
        let path = self
            .config_path
            .clone()
            .ok_or(ReloadRefusal::NoConfigFile)?;
        let new = tokio::task::spawn_blocking(move || {
            settled_contents(&path)?;
            Ok::<_, ReloadError>(Config::load(&path)?)
        })
        .await
        .expect("config reader panicked")?;
        self.reload(new, force).await
    }

    /// Applies a new, already validated config: changed servers, thresholds and notifiers, new
    /// and removed apps. Refused, with nothing changed, when it would need a restart
    /// (`server.listen`, `server.state_file`), when an app's stable slot is no longer among its
    /// slots, or when it removes an app whose release is under way (unless `force`).
    pub async fn reload(&self, new: Config, force: bool) -> Result<ReloadReport, ReloadError> {
        // The engine is connected at start, when the config names Swarm services.
        let old = self.config();
        if self.engine.is_none() && !old.swarm.used(&old) && new.swarm.used(&new) {
            return Err(ReloadRefusal::NeedsRestart {
                key: "swarm (the first Swarm service named)",
            }
            .into());
        }
        let old_file = self.file_config();
        file_guards(&old_file, &new, force)?;
        let full = self.with_label_apps(&new);
        let report = self.apply_config(full, force).await?;
        *self.file_config.lock().expect("poisoned") = Arc::new(new);
        Ok(report)
    }

    /// The config as its file says it, without the apps from labels.
    fn file_config(&self) -> Arc<Config> {
        self.file_config.lock().expect("poisoned").clone()
    }

    /// Applies a whole config (the file's and the labels' apps): see [`Controller::reload`].
    async fn apply_config(&self, new: Config, force: bool) -> Result<ReloadReport, ReloadError> {
        let mut guard = self.state.lock().await;
        let old = self.config();
        // Service slots get the servers last seen, so that only what the file changed differs.
        let new = self.resolved(&new);
        let (candidate, report) = reconcile(&old, &new, &guard, force, self.clock.now_ms())?;
        let new = Arc::new(new);
        self.commit(&mut guard, &new, candidate)
            .await
            .map_err(ReloadError::Persist)?;
        self.replace_live(&old, &new);
        for (name, s) in &guard.apps {
            if new.apps.contains_key(name) {
                self.metrics.observe_state(name, s);
            }
        }
        drop(guard);
        tracing::info!(added = ?report.added, removed = ?report.removed, changed = ?report.changed, settings = ?report.settings, "config reloaded");
        Ok(report)
    }

    /// What a reload replaces besides the config and the state: the metrics source when its
    /// settings changed, the notifiers, and the limits shown in metrics.
    fn replace_live(&self, old: &Config, new: &Config) {
        let mut live = self.live.write().expect("poisoned");
        if new.metrics != old.metrics {
            live.source = Some(analysis::configured_source(&new.metrics));
        }
        if self.hooks.is_some() && new.notifiers != old.notifiers {
            // Unchanged notifiers keep their queues; changed and removed ones stop.
            live.notifiers = Arc::new(live.notifiers.restart(
                &new.notifiers,
                self.metrics.clone(),
                self.failures_tx.clone(),
            ));
        }
        self.metrics.set_limits(new);
    }

    /// Counts and notifies an event that was persisted.
    fn announce(&self, ev: &Event) {
        self.metrics.count_event(&ev.app, ev.kind);
        let notifiers = self.live.read().expect("poisoned").notifiers.clone();
        notifiers.notify(ev);
    }

    /// Persists an event that changes no state (a failed hook or notification), then announces
    /// it.
    pub async fn record_event(&self, ev: Event) -> Result<(), ControlError> {
        let mut guard = self.state.lock().await;
        let config = self.config();
        let mut candidate = guard.clone();
        candidate.events.push(ev.clone());
        self.commit(&mut guard, &config, candidate)
            .await
            .map_err(|e| ControlError::Persist(Arc::new(e)))?;
        drop(guard);
        tracing::warn!(app = %ev.app, event = ev.kind.as_str(), reason = %ev.reason, "event");
        self.announce(&ev);
        Ok(())
    }

    /// Asks every gate a release waits for, each in a task of its own: a gate that is slow to
    /// answer delays neither the analysis loop nor another app's gate. An app has at most one
    /// question out at a time; an open answer moves its release on if it still waits for that
    /// gate in the same release.
    fn ask_gates(self: &Arc<Self>, published: &Published) {
        for app in published.config.apps.values() {
            let Some(state) = published.analysed(app) else {
                continue;
            };
            let (Some(gate), Phase::Progressing) = (state.awaiting_gate, state.phase) else {
                continue;
            };
            let url = match gate {
                Gate::ConfirmRollout => app.hooks.confirm_rollout.clone(),
                Gate::ConfirmPromotion => app.hooks.confirm_promotion.clone(),
            };
            let Some(url) = url else { continue };
            if !self
                .gates_asked
                .lock()
                .expect("poisoned")
                .insert(app.name.clone())
            {
                continue;
            }
            let body = serde_json::json!({
                "app": app.name,
                "version": state.canary_version,
                "weight": state.canary_weight,
                "step": state.step_index + 1,
            });
            let (this, name, version, timeout) = (
                self.clone(),
                app.name.clone(),
                state.canary_version.clone(),
                app.hooks.timeout,
            );
            tokio::spawn(async move {
                let open = match ask_gate(&this.http, &url, gate.as_str(), &body, timeout).await {
                    Ok(open) => open,
                    Err(e) => {
                        tracing::warn!(app = %name, gate = gate.as_str(), error = %e, "gate did not answer; asking again next tick");
                        false
                    }
                };
                let same_release = this
                    .published()
                    .apps
                    .get(&name)
                    .is_some_and(|s| s.canary_version == version);
                if open && same_release {
                    if let Err(e) = this.command(&name, Input::Gate { gate, open }).await {
                        tracing::error!(app = %name, error = %e, "gate answer not applied");
                    }
                }
                this.gates_asked.lock().expect("poisoned").remove(&name);
            });
        }
    }

    /// After a failed write, writes the state again, so that readiness comes back by itself once
    /// the cause is gone (a full disk, descriptors run out) even when nothing else changes.
    async fn retry_persist(&self) {
        if self.persist_error().is_none() {
            return;
        }
        let guard = self.state.lock().await;
        let (store, state) = (self.store.clone(), guard.clone());
        let saved = tokio::task::spawn_blocking(move || store.save(&state))
            .await
            .expect("state writer panicked");
        drop(guard);
        match saved {
            Ok(()) => {
                tracing::info!("state written again; ready");
                *self.persist_error.lock().expect("poisoned") = None;
            }
            Err(e) => *self.persist_error.lock().expect("poisoned") = Some(e.to_string()),
        }
    }

    /// `at` as the windows' monotonic time.
    fn mono(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.origin)
    }

    /// The shortest analysis interval of all apps: how often the loop ticks.
    pub fn tick_period(&self) -> Duration {
        self.config()
            .apps
            .values()
            .map(|a| a.analysis.interval)
            .min()
            .unwrap_or(Duration::from_secs(10))
    }

    /// One round of the analysis loop: collect figures for every managed service in one call,
    /// add them to each analysed app's window, and judge the apps whose interval has passed.
    pub async fn tick(self: &Arc<Self>) {
        let now = Instant::now();
        let period = self.tick_period();
        self.retry_persist().await;
        let published = self.published();
        self.ask_gates(&published);
        let config = published.config.clone();
        let services: Vec<String> = config
            .apps
            .keys()
            .flat_map(|name| {
                let (s, c) = analysis::service_names(name);
                [s, c]
            })
            .collect();
        let mono = self.mono(now);
        let span = {
            let a = self.analysis.lock().expect("poisoned");
            a.windows.next_span(mono, period)
        };
        let source = self.live.read().expect("poisoned").source.clone();
        let collected = match &source {
            Some(source) => source.collect(&services, span.length).await,
            None => Err(analysis::SourceError::Unreachable(
                "no metrics source configured".into(),
            )),
        };
        let source_name = source.as_ref().map(|s| s.describe()).unwrap_or_default();
        if let Err(e) = &collected {
            self.metrics.count_source_error(e);
            tracing::warn!(error = %e, "metrics collection failed; analyses are inconclusive");
        }

        let mut decisions = Vec::new();
        {
            let mut a = self.analysis.lock().expect("poisoned");
            a.windows.collected(mono);
            for app in config.apps.values() {
                let Some(state) = published.analysed(app) else {
                    continue;
                };
                if !state.phase.is_analysed() {
                    a.windows.forget(&app.name);
                    continue;
                }
                let (stable, canary) = analysis::service_names(&app.name);
                let figures = match &collected {
                    Ok(c) => Ok((c.get(&stable), c.get(&canary))),
                    Err(e) => Err(e),
                };
                let stage = Stage {
                    version: state.canary_version.as_deref().unwrap_or(""),
                    step: state.step_index,
                    last_step: state.step_index + 1 >= app.analysis.analysed_steps(),
                    promoting: state.phase == Phase::Promoting,
                };
                let Some(judged) =
                    a.windows
                        .observe(&app.name, mono, span, figures, stage, &app.analysis, period)
                else {
                    continue;
                };
                let input = judged.verdict().map(|(v, _)| v);
                let result = judged.analysis;
                let record = AnalysisRecord {
                    time_ms: self.clock.now_ms(),
                    version: state.canary_version.clone(),
                    phase: state.phase,
                    weight: state.canary_weight,
                    step: state.step_index + 1,
                    source: source_name.clone(),
                    window_seconds: judged.window_seconds,
                    analysis: result.clone(),
                };
                self.metrics.observe_analysis(&app.name, &result);
                let h = a.history.entry(app.name.clone()).or_default();
                h.push_back(record);
                while h.len() > MAX_ANALYSES {
                    h.pop_front();
                }
                tracing::info!(
                    app = %app.name,
                    verdict = result.verdict.as_str(),
                    weight = state.canary_weight,
                    canary_requests = result.canary_requests,
                    stable_requests = result.stable_requests,
                    reason = %result.reason,
                    "analysis"
                );
                decisions.push((app.name.clone(), result, input.is_none()));
            }
        }
        let evidence = {
            let a = self.analysis.lock().expect("poisoned");
            a.windows
                .evidence()
                .iter()
                .filter(|(app, _)| config.apps.contains_key(*app))
                .map(|(app, e)| (app.clone(), e.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        let verdicts: Vec<(String, Verdict)> = decisions
            .iter()
            .filter(|(_, _, gathering)| !gathering)
            .map(|(app, r, _)| (app.clone(), r.verdict))
            .collect();
        let inputs: Vec<(String, Input)> = decisions
            .into_iter()
            .filter(|(_, _, gathering)| !gathering)
            .map(|(app, r, _)| {
                (
                    app,
                    Input::Analysis {
                        verdict: r.verdict,
                        reason: r.reason,
                    },
                )
            })
            .collect();
        let results = self.apply_with_evidence(inputs, Some(evidence)).await;
        let mut a = self.analysis.lock().expect("poisoned");
        for ((app, verdict), result) in verdicts.into_iter().zip(results) {
            match result {
                Ok(_) => a.windows.settle(&app, mono, verdict),
                // Not applied (the state could not be written): the window keeps its evidence.
                Err(e) => tracing::error!(app = %app, error = %e, "verdict not applied"),
            }
        }
        drop(a);
        self.metrics.observe_tick(now.elapsed().as_secs_f64());
    }

    /// The analysis loop: ticks until `shutdown` resolves, and records failed hooks and
    /// notifications as they come back from their delivery workers.
    /// The last read-back of Traefik's API.
    pub fn traefik_check(&self) -> TraefikCheck {
        self.traefik.lock().expect("poisoned").last.clone()
    }

    /// Reads Traefik's runtime back and records which generated objects it does not show
    /// enabled; nothing when `[traefik] api_url` is unset. Never changes a weight.
    pub async fn check_traefik(&self) {
        let config = self.config();
        let Some(url) = config.traefik.api_url.clone() else {
            *self.traefik.lock().expect("poisoned") = TraefikReadBack::default();
            return;
        };
        let timeout = config
            .traefik
            .check_interval
            .clamp(Duration::from_secs(2), Duration::from_secs(5));
        let read = traefik_api::fetch(&self.http, &url, timeout).await;
        let now = self.clock.now_ms();
        let mono = self.mono(Instant::now()).as_millis() as u64;
        let grace = MISSING_GRACE
            .max(config.traefik.check_interval * 3)
            .as_millis() as u64;
        let mut t = self.traefik.lock().expect("poisoned");
        match read {
            Err(error) => {
                t.failures += 1;
                if t.failures >= READ_BACK_FAILURES {
                    tracing::warn!(%error, failures = t.failures, "Traefik's API not read back");
                    t.last.checked_at_ms = Some(now);
                    t.last.error = Some(error);
                    self.metrics.observe_traefik_check(None);
                }
            }
            Ok(runtime) => {
                t.failures = 0;
                let all = traefik_api::findings(&config, &runtime);
                let missing: BTreeSet<&str> = all
                    .iter()
                    .filter(|f| f.status == "missing")
                    .map(|f| f.name.as_str())
                    .collect();
                t.missing_since
                    .retain(|name, _| missing.contains(name.as_str()));
                for name in &missing {
                    t.missing_since.entry(name.to_string()).or_insert(mono);
                }
                let since = t.missing_since.clone();
                let findings: Vec<_> = all
                    .into_iter()
                    .filter(|f| f.status != "missing" || mono - since[&f.name] >= grace)
                    .collect();
                if findings != t.last.findings {
                    for f in &findings {
                        tracing::warn!(app = %f.app, object = %f.name, status = %f.status, errors = ?f.errors, "Traefik does not serve a generated object");
                    }
                }
                let mut counts: BTreeMap<String, i64> =
                    config.apps.keys().map(|a| (a.clone(), 0)).collect();
                for f in &findings {
                    *counts.entry(f.app.clone()).or_default() += 1;
                }
                self.metrics.observe_traefik_check(Some(&counts));
                t.last = TraefikCheck {
                    checked_at_ms: Some(now),
                    error: None,
                    findings,
                };
            }
        }
    }

    /// Runs [`Controller::check_traefik`] every `[traefik] check_interval`, for ever.
    pub async fn run_traefik_check(self: Arc<Self>) {
        loop {
            self.check_traefik().await;
            tokio::time::sleep(self.config().traefik.check_interval).await;
        }
    }

    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let mut period = self.tick_period();
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures = self.failures_rx.lock().expect("poisoned").take();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = ticker.tick() => self.tick().await,
                Some(ev) = recv(&mut failures) => {
                    if let Err(e) = self.record_event(ev).await {
                        tracing::error!(error = %e, "delivery failure not recorded");
                    }
                }
            }
            // A reload may have changed the intervals.
            if self.tick_period() != period {
                period = self.tick_period();
                ticker = tokio::time::interval_at(Instant::now() + period, period);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
        }
    }
}

/// The next event from `rx`, or never when there is none to receive from.
async fn recv(rx: &mut Option<mpsc::Receiver<Event>>) -> Option<Event> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Where an input to a dry-run app goes: its dry-run release (the state it is applied to) while
/// one is under way, or a new one for `start`, based on the served state; `None` for the served
/// state itself (any input to an app that is not a dry run; a weight set by hand).
fn dry_run_target(app: &AppConfig, state: &StateFile, input: &Input) -> Option<AppState> {
    if !app.analysis.dry_run || matches!(input, Input::SetWeight { .. }) {
        return None;
    }
    match state.dry_runs.get(&app.name) {
        Some(dry) if dry.phase.is_active() => Some(dry.clone()),
        _ if matches!(input, Input::Start { .. }) => state.apps.get(&app.name).cloned(),
        _ => None,
    }
}

/// The state `new` gives, from `state` under `old`, and what changed; refused, with nothing
/// changed, when `new` needs a restart, drops an app's stable slot, or removes an app whose
/// release is under way (unless `force`).
/// What a new config file must not do unless forced: have no apps (an empty or half-written
/// file), drop every app, or drop the admin token. Checked on the files alone: apps from
/// labels come and go with their services.
fn file_guards(old: &Config, new: &Config, force: bool) -> Result<(), ReloadRefusal> {
    if !force {
        if new.apps.is_empty() && !new.swarm.labels {
            return Err(ReloadRefusal::NoApps);
        }
        if !old.apps.is_empty() && old.apps.keys().all(|n| !new.apps.contains_key(n)) {
            let apps: Vec<&str> = old.apps.keys().map(String::as_str).collect();
            return Err(ReloadRefusal::DropsEveryApp {
                apps: apps.join(", "),
            });
        }
        if old.server.admin_token.is_some() && new.server.admin_token.is_none() {
            return Err(ReloadRefusal::DropsAdminToken {
                env: crate::config::ADMIN_TOKEN_ENV,
            });
        }
    }
    Ok(())
}

fn reconcile(
    old: &Config,
    new: &Config,
    state: &StateFile,
    force: bool,
    now_ms: u64,
) -> Result<(StateFile, ReloadReport), ReloadRefusal> {
    for (key, changed) in [
        ("server.listen", new.server.listen != old.server.listen),
        (
            "server.state_file",
            new.server.state_file != old.server.state_file,
        ),
        ("swarm.socket", new.swarm.socket != old.swarm.socket),
    ] {
        if changed {
            return Err(ReloadRefusal::NeedsRestart { key });
        }
    }
    let mut report = ReloadReport {
        settings: changed_settings(old, new),
        ..ReloadReport::default()
    };
    for name in old.apps.keys().filter(|n| !new.apps.contains_key(*n)) {
        if let Some(s) = state.apps.get(name).filter(|s| s.phase.is_active()) {
            if !force {
                return Err(ReloadRefusal::RemovesActiveApp {
                    app: name.clone(),
                    phase: s.phase.as_str(),
                });
            }
        }
        report.removed.push(name.clone());
    }
    let mut candidate = state.clone();
    for app in new.apps.values() {
        match candidate.apps.get(&app.name) {
            Some(s) if !app.slots.contains_key(&s.stable_slot) => {
                return Err(ReloadRefusal::StableSlotRemoved {
                    app: app.name.clone(),
                    slot: s.stable_slot.clone(),
                    slots: app.slots.keys().cloned().collect(),
                });
            }
            Some(_) => match old.apps.get(&app.name) {
                Some(o) if o == app => report.unchanged.push(app.name.clone()),
                _ => report.changed.push(app.name.clone()),
            },
            None => {
                candidate
                    .apps
                    .insert(app.name.clone(), AppState::initial(app, now_ms));
                report.added.push(app.name.clone());
            }
        }
    }
    Ok((candidate, report))
}

/// The settings outside the apps that a reload changes, by section (and the admin and provider
/// tokens on their own, since they decide who may change what).
fn changed_settings(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    if old.server.admin_token != new.server.admin_token {
        changed.push("server.admin_token".to_string());
    }
    if old.server.provider_token != new.server.provider_token {
        changed.push("server.provider_token".to_string());
    }
    if old.server.protect_reads != new.server.protect_reads {
        changed.push("server.protect_reads".to_string());
    }
    if old.metrics != new.metrics {
        changed.push("metrics".to_string());
    }
    if old.notifiers != new.notifiers {
        changed.push("notifiers".to_string());
    }
    if old.traefik != new.traefik {
        changed.push("traefik".to_string());
    }
    if old.swarm != new.swarm {
        changed.push("swarm".to_string());
    }
    changed
}

/// Waits until two reads of `path` 200 ms apart agree, so that a file an editor is still
/// writing (truncated, then written) is never read half-way; at most 2 s.
fn settled_contents(path: &Path) -> Result<(), ReloadRefusal> {
    settled(|| std::fs::read(path).ok(), std::thread::sleep, path)
}

/// The rule of [`settled_contents`], with the reads and the pauses given: `Ok` as soon as two
/// reads one pause apart agree, at most ten pauses.
fn settled(
    mut read: impl FnMut() -> Option<Vec<u8>>,
    mut pause: impl FnMut(Duration),
    path: &Path,
) -> Result<(), ReloadRefusal> {
    const PAUSE: Duration = Duration::from_millis(200);
    let mut last = read();
    for _ in 0..10 {
        pause(PAUSE);
        let now = read();
        if now == last {
            return Ok(());
        }
        last = now;
    }
    Err(ReloadRefusal::StillChanging {
        path: path.display().to_string(),
        waited: PAUSE * 10,
    })
}

/// The snapshot of `state` under `config`. Apps whose rendering `prev` holds for the same
/// config and the same slot and weight keep their fragment; only the others are re-rendered.
fn publish(config: &Arc<Config>, state: &StateFile, prev: Option<&Published>) -> Published {
    let apps: BTreeMap<String, AppState> = state
        .apps
        .iter()
        .filter(|(name, _)| config.apps.contains_key(*name))
        .map(|(n, s)| (n.clone(), s.clone()))
        .collect();
    let reusable = prev.filter(|p| Arc::ptr_eq(&p.config, config));
    let fragments: BTreeMap<String, Arc<provider::Fragment>> = config
        .apps
        .values()
        .map(|app| {
            let st = provider::state_or_initial(app, &apps);
            let kept = reusable
                .and_then(|p| p.fragments.get(&app.name))
                .filter(|f| f.renders(&st));
            let fragment = match kept {
                Some(f) => f.clone(),
                None => Arc::new(provider::render_fragment(app, &st)),
            };
            (app.name.clone(), fragment)
        })
        .collect();
    Published {
        config: config.clone(),
        document: Bytes::from(provider::assemble(fragments.values().map(|f| &**f))),
        fragments,
        apps,
        events: Arc::new(state.events.clone()),
        dry_runs: state
            .dry_runs
            .iter()
            .filter(|(name, _)| config.apps.contains_key(*name))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect(),
    }
}

mod labels;
mod managed;
mod watch;
pub use managed::{DeployError, Deployed};
use watch::SwarmView;

#[cfg(test)]
mod tests;
