//! Durable state: the [`Store`] trait, [`FileStore`] (one JSON file, written atomically) and
//! [`MemStore`] for tests.
//!
//! A state file that exists but cannot be read or parsed is an error, never "no state": starting
//! from defaults would silently move traffic back to the initial slots.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::rollout::{AppState, Phase};

/// The only state file format this build reads and writes.
pub const STATE_FORMAT: u32 = 1;

/// Everything canary-pilot persists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    pub format: u32,
    /// State per app name. Apps no longer in the config are kept, not served.
    pub apps: BTreeMap<String, AppState>,
    /// Every transition, oldest first (the last `controller::MAX_EVENTS`).
    #[serde(default)]
    pub events: Vec<crate::rollout::Event>,
    /// The sequential evidence of each release under way, so that a restart continues it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, crate::analysis::window::Evidence>,
    /// Dry-run releases, beside the served state of their apps (`apps`), which they never
    /// change.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dry_runs: BTreeMap<String, AppState>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "state file {path} cannot be read: {cause}. canary-pilot will not start without it, so \
         that traffic is not moved; fix its permissions, or move it away to start every app on its \
         initial slot"
    )]
    Unreadable {
        path: PathBuf,
        /// Part of the message, so not also a `source`: a chain prints it once.
        cause: std::io::Error,
    },
    #[error(
        "state file {path} is corrupt: {detail}. canary-pilot will not start with it, so that \
         traffic is not moved. Restore it from a backup, or, to start every app again at 100% on \
         its initial_stable slot, move it away: mv {path} {path}.bad"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("cannot write state file {path}: {cause}")]
    Write {
        path: PathBuf,
        /// Part of the message, so not also a `source`.
        cause: std::io::Error,
    },
}

/// Where state lives. Implementations are blocking; call them off the async runtime.
pub trait Store: Send + Sync {
    /// The stored state, or `None` when nothing was ever stored.
    fn load(&self) -> Result<Option<StateFile>, StoreError>;
    /// Replaces the stored state; on error the previous state is intact.
    fn save(&self, state: &StateFile) -> Result<(), StoreError>;
    /// A human-readable location, for logs and status.
    fn describe(&self) -> String;
}

/// State in one JSON file, replaced atomically: write a temp file beside it, fsync, rename over,
/// fsync the directory.
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn tmp_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        self.path.with_file_name(name)
    }
}

/// Parses state file bytes, naming the file in the error.
pub fn parse_state(path: &Path, bytes: &[u8]) -> Result<StateFile, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.to_owned(),
        detail,
    };
    let state: StateFile = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if state.format != STATE_FORMAT {
        return Err(corrupt(format!(
            "format {} is not the format {STATE_FORMAT} this version reads",
            state.format
        )));
    }
    for (name, app) in &state.apps {
        check_app(&format!("apps.{name}"), app).map_err(corrupt)?;
    }
    for (name, app) in &state.dry_runs {
        check_app(&format!("dry_runs.{name}"), app).map_err(corrupt)?;
    }
    for (i, ev) in state.events.iter().enumerate() {
        check_time(&format!("events[{i}].time_ms"), ev.time_ms).map_err(corrupt)?;
    }
    Ok(state)
}

/// Largest generation a state file may hold: every change adds one, so a real file stays far
/// below it, and it is exact in any JSON reader.
pub const MAX_GENERATION: u64 = 1 << 53;
/// Largest count of consecutive failed analyses a state file may hold.
pub const MAX_FAILURES: u32 = 1_000_000;

/// A time no clock of ours wrote: past the year 9999.
fn check_time(key: &str, ms: u64) -> Result<(), String> {
    if ms > crate::clock::MAX_TIME_MS {
        return Err(format!("{key} = {ms} is past the year 9999"));
    }
    Ok(())
}

/// What a state file may say of one app (at `key`: `apps.NAME`, or `dry_runs.NAME` for a dry-run
/// release): values that canary-pilot itself could have written.
fn check_app(key: &str, app: &AppState) -> Result<(), String> {
    if app.canary_weight > 100 {
        return Err(format!(
            "{key}.canary_weight = {} is outside 0..=100",
            app.canary_weight
        ));
    }
    if app.phase == Phase::RolledBack && app.canary_weight > 0 {
        return Err(format!(
            "{key} is rolled_back but sends {}% to the canary; a rolled-back release sends it none",
            app.canary_weight
        ));
    }
    if app.generation > MAX_GENERATION {
        return Err(format!(
            "{key}.generation = {} is beyond {MAX_GENERATION}",
            app.generation
        ));
    }
    if app.failures > MAX_FAILURES {
        return Err(format!(
            "{key}.failures = {} is beyond {MAX_FAILURES}",
            app.failures
        ));
    }
    check_time(&format!("{key}.updated_at_ms"), app.updated_at_ms)?;
    check_time(&format!("{key}.phase_since_ms"), app.phase_since_ms)?;
    if let Some(t) = app.inconclusive_since_ms {
        check_time(&format!("{key}.inconclusive_since_ms"), t)?;
    }
    Ok(())
}

impl Store for FileStore {
    fn load(&self) -> Result<Option<StateFile>, StoreError> {
        match fs::read(&self.path) {
            Ok(bytes) => parse_state(&self.path, &bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(cause) => Err(StoreError::Unreadable {
                path: self.path.clone(),
                cause,
            }),
        }
    }

    fn save(&self, state: &StateFile) -> Result<(), StoreError> {
        let write_err = |cause| StoreError::Write {
            path: self.path.clone(),
            cause,
        };
        let mut bytes = serde_json::to_vec_pretty(state).expect("state always serializes");
        bytes.push(b'\n');
        let tmp = self.tmp_path();
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(write_err)?;
        let result = file
            .write_all(&bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&tmp, &self.path));
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(write_err(e));
        }
        // Make the rename itself durable.
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// State in memory, for tests; can be told to fail writes.
#[derive(Default)]
pub struct MemStore {
    state: Mutex<Option<StateFile>>,
    fail_writes: std::sync::atomic::AtomicBool,
    saves: std::sync::atomic::AtomicUsize,
}

impl MemStore {
    pub fn with(state: StateFile) -> Self {
        MemStore {
            state: Mutex::new(Some(state)),
            ..Default::default()
        }
    }

    pub fn fail_writes(&self, fail: bool) {
        self.fail_writes
            .store(fail, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many times the state was written.
    pub fn saves(&self) -> usize {
        self.saves.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn snapshot(&self) -> Option<StateFile> {
        self.state.lock().expect("poisoned").clone()
    }
}

impl Store for MemStore {
    fn load(&self) -> Result<Option<StateFile>, StoreError> {
        Ok(self.snapshot())
    }

    fn save(&self, state: &StateFile) -> Result<(), StoreError> {
        if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Write {
                path: "memory".into(),
                cause: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "read-only"),
            });
        }
        *self.state.lock().expect("poisoned") = Some(state.clone());
        self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StateFile {
        let mut apps = BTreeMap::new();
        apps.insert(
            "api".to_string(),
            AppState {
                stable_slot: "green".into(),
                canary_weight: 25,
                phase: Phase::Idle,
                stable_version: Some("v1".into()),
                canary_version: None,
                step_index: 0,
                failures: 0,
                inconclusive_since_ms: None,
                reason: None,
                phase_since_ms: 0,
                awaiting_gate: None,
                generation: 4,
                updated_at_ms: 123,
            },
        );
        StateFile {
            format: STATE_FORMAT,
            apps,
            ..StateFile::default()
        }
    }

    #[test]
    fn file_store_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("state.json"));
        assert_eq!(store.load().unwrap(), None);
        store.save(&sample()).unwrap();
        assert_eq!(store.load().unwrap(), Some(sample()));
        assert!(!store.tmp_path().exists());
    }

    #[test]
    fn corrupt_file_is_an_error_naming_the_file_and_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        for bad in [
            &b"{\"format\":1,\"apps\":{\"api\":"[..],
            b"",
            b"null",
            b"{\"format\":2,\"apps\":{}}",
            b"{\"format\":1,\"apps\":{},\"extra\":1}",
        ] {
            fs::write(&path, bad).unwrap();
            let err = FileStore::new(&path).load().unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{text}");
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("move it away"), "{text}");
        }
    }

    #[test]
    fn weight_above_100_in_file_is_corrupt() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["apps"]["api"]["canary_weight"] = 101.into();
        let err = parse_state(Path::new("s.json"), v.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("canary_weight = 101"), "{err}");
    }

    #[test]
    fn values_canary_pilot_could_not_have_written_are_refused_at_start() {
        let bad: [(&str, serde_json::Value, &str); 6] = [
            (
                "updated_at_ms",
                253_402_300_800_000u64.into(),
                "past the year 9999",
            ),
            ("phase_since_ms", u64::MAX.into(), "past the year 9999"),
            ("generation", u64::MAX.into(), "generation"),
            ("failures", u32::MAX.into(), "failures"),
            (
                "inconclusive_since_ms",
                u64::MAX.into(),
                "inconclusive_since_ms",
            ),
            ("phase", "rolled_back".into(), "rolled_back but sends 25%"),
        ];
        for (key, value, says) in bad {
            let mut v = serde_json::to_value(sample()).unwrap();
            v["apps"]["api"][key] = value;
            let err = parse_state(Path::new("s.json"), v.to_string().as_bytes()).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{key}: {err}");
            assert!(err.to_string().contains(says), "{key}: {err}");
        }
        let mut v = serde_json::to_value(sample()).unwrap();
        v["events"] = serde_json::json!([{
            "app": "api", "kind": "started", "version": "v2", "from": "idle",
            "to": "progressing", "weight": 5, "reason": "r", "time_ms": u64::MAX
        }]);
        let err = parse_state(Path::new("s.json"), v.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("events[0].time_ms"), "{err}");
        // A dry-run release is held to the same.
        let mut v = serde_json::to_value(sample()).unwrap();
        let mut dry = v["apps"]["api"].clone();
        dry["generation"] = (MAX_GENERATION + 1).into();
        v["dry_runs"] = serde_json::json!({ "api": dry });
        let err = parse_state(Path::new("s.json"), v.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("dry_runs.api.generation"), "{err}");
    }

    #[test]
    fn failed_write_keeps_previous_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store = FileStore::new(&path);
        store.save(&sample()).unwrap();
        // A directory where the temp file should go makes the write fail.
        fs::create_dir(store.tmp_path()).unwrap();
        let mut next = sample();
        next.apps.get_mut("api").unwrap().canary_weight = 90;
        assert!(store.save(&next).is_err());
        assert_eq!(store.load().unwrap(), Some(sample()));
    }
}
