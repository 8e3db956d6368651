//! The controller owns the live state of every app: it loads and reconciles it at start-up,
//! applies changes (persist first, then publish), and publishes the rendered Traefik document
//! that the provider endpoint serves from memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::config::Config;
use crate::provider;
use crate::rollout::{AppState, Refusal};
use crate::store::{StateFile, Store, StoreError, STATE_FORMAT};

/// What readers see: one consistent snapshot of the state and its rendered document.
#[derive(Debug, Clone)]
pub struct Published {
    /// The Traefik dynamic configuration, rendered once per change.
    pub document: Bytes,
    /// State of every configured app.
    pub apps: BTreeMap<String, AppState>,
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

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no app named {0:?}")]
    UnknownApp(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("the change was not applied because it could not be persisted: {0}")]
    Persist(#[source] StoreError),
}

pub struct Controller {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    /// The authoritative state; held across persist so changes are applied in order.
    state: tokio::sync::Mutex<StateFile>,
    published: RwLock<Arc<Published>>,
    /// The last persist failure, cleared by the next successful write.
    persist_error: Mutex<Option<String>>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Controller {
    /// Loads the stored state, adds an initial state for apps seen for the first time, and
    /// persists the result when it added anything. Blocking: call it off the async runtime.
    pub fn load(config: Arc<Config>, store: Arc<dyn Store>) -> Result<Controller, StartError> {
        let loaded = store.load()?;
        let existed = loaded.is_some();
        let mut state = loaded.unwrap_or(StateFile {
            format: STATE_FORMAT,
            apps: BTreeMap::new(),
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
                        .insert(app.name.clone(), AppState::initial(app, now_ms()));
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
        let published = publish(&config, &state);
        Ok(Controller {
            config,
            store,
            state: tokio::sync::Mutex::new(state),
            published: RwLock::new(Arc::new(published)),
            persist_error: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn published(&self) -> Arc<Published> {
        self.published.read().expect("poisoned").clone()
    }

    /// Why the controller cannot change state right now, if it cannot.
    pub fn persist_error(&self) -> Option<String> {
        self.persist_error.lock().expect("poisoned").clone()
    }

    /// Sets an app's canary weight by hand. The change is persisted before it is served; if it
    /// cannot be persisted, nothing changes.
    pub async fn set_weight(&self, app: &str, weight: i64) -> Result<AppState, ControlError> {
        self.update(app, |s| s.with_weight(weight, now_ms()).map_err(Into::into))
            .await
    }

    /// Applies `change` to one app's state: persist, then publish.
    async fn update(
        &self,
        app: &str,
        change: impl FnOnce(&AppState) -> Result<Option<AppState>, ControlError>,
    ) -> Result<AppState, ControlError> {
        if !self.config.apps.contains_key(app) {
            return Err(ControlError::UnknownApp(app.to_string()));
        }
        let mut guard = self.state.lock().await;
        let current = guard
            .apps
            .get(app)
            .ok_or_else(|| ControlError::UnknownApp(app.to_string()))?;
        let Some(next) = change(current)? else {
            return Ok(current.clone());
        };
        let mut candidate = guard.clone();
        candidate.apps.insert(app.to_string(), next.clone());

        let store = self.store.clone();
        let to_save = candidate.clone();
        let saved = tokio::task::spawn_blocking(move || store.save(&to_save))
            .await
            .expect("state writer panicked");
        if let Err(e) = saved {
            tracing::error!(app, error = %e, "state not persisted; change refused");
            *self.persist_error.lock().expect("poisoned") = Some(e.to_string());
            return Err(ControlError::Persist(e));
        }
        *self.persist_error.lock().expect("poisoned") = None;
        *guard = candidate;
        *self.published.write().expect("poisoned") = Arc::new(publish(&self.config, &guard));
        tracing::info!(
            app,
            weight = next.canary_weight,
            generation = next.generation,
            "state changed"
        );
        Ok(next)
    }
}

fn publish(config: &Config, state: &StateFile) -> Published {
    let apps: BTreeMap<String, AppState> = state
        .apps
        .iter()
        .filter(|(name, _)| config.apps.contains_key(*name))
        .map(|(n, s)| (n.clone(), s.clone()))
        .collect();
    Published {
        document: Bytes::from(provider::render(config, &apps)),
        apps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests_support::sample_config;
    use crate::store::MemStore;

    fn controller(store: Arc<MemStore>) -> Controller {
        Controller::load(Arc::new(sample_config()), store).unwrap()
    }

    #[tokio::test]
    async fn first_start_writes_initial_state() {
        let store = Arc::new(MemStore::default());
        let c = controller(store.clone());
        let saved = store.snapshot().unwrap();
        assert_eq!(saved.apps["api"].stable_slot, "blue");
        assert_eq!(saved.apps["api"].canary_weight, 0);
        assert_eq!(c.published().apps, saved.apps);
    }

    #[tokio::test]
    async fn set_weight_persists_then_publishes() {
        let store = Arc::new(MemStore::default());
        let c = controller(store.clone());
        let before = c.published().document.clone();
        c.set_weight("api", 30).await.unwrap();
        assert_eq!(store.snapshot().unwrap().apps["api"].canary_weight, 30);
        let after = c.published();
        assert_eq!(after.apps["api"].canary_weight, 30);
        assert_ne!(after.document, before);
        // A restart on the same store serves the same bytes.
        let again = controller(store);
        assert_eq!(again.published().document, after.document);
    }

    #[tokio::test]
    async fn failed_persist_changes_nothing_and_is_reported() {
        let store = Arc::new(MemStore::default());
        let c = controller(store.clone());
        c.set_weight("api", 10).await.unwrap();
        let before = c.published();
        store.fail_writes(true);
        let err = c.set_weight("api", 50).await.unwrap_err();
        assert!(matches!(err, ControlError::Persist(_)));
        assert_eq!(c.published().document, before.document);
        assert!(c.persist_error().is_some());
        store.fail_writes(false);
        c.set_weight("api", 50).await.unwrap();
        assert!(c.persist_error().is_none());
    }

    #[tokio::test]
    async fn unknown_app_and_bad_weight_are_refused() {
        let c = controller(Arc::new(MemStore::default()));
        assert!(matches!(
            c.set_weight("nope", 5).await,
            Err(ControlError::UnknownApp(_))
        ));
        assert!(matches!(
            c.set_weight("api", 101).await,
            Err(ControlError::Refused(Refusal::WeightOutOfRange(101)))
        ));
    }

    #[test]
    fn state_naming_a_removed_slot_stops_start_up() {
        let config = sample_config();
        let mut state = StateFile {
            format: STATE_FORMAT,
            apps: BTreeMap::new(),
        };
        let mut app = AppState::initial(&config.apps["api"], 1);
        app.stable_slot = "red".into();
        state.apps.insert("api".into(), app);
        let store = Arc::new(MemStore::with(state.clone()));
        let err = Controller::load(Arc::new(config), store.clone())
            .err()
            .expect("must refuse");
        assert!(err.to_string().contains("\"red\""), "{err}");
        assert_eq!(store.snapshot(), Some(state), "state untouched");
    }
}
