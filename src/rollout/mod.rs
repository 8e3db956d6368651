//! The rollout state of each app: which slot is stable, the canary's weight, the phase. Pure data
//! and pure transitions; persisted by `store`, rendered by `provider`.

use serde::{Deserialize, Serialize};

use crate::config::AppConfig;

/// Where an app is in its release lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No release in progress. The canary slot is idle; an operator may still set a weight by hand.
    Idle,
    Progressing,
    Paused,
    Promoting,
    Succeeded,
    RolledBack,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Progressing => "progressing",
            Phase::Paused => "paused",
            Phase::Promoting => "promoting",
            Phase::Succeeded => "succeeded",
            Phase::RolledBack => "rolled_back",
        }
    }
}

/// Persisted state of one app. Unknown fields are rejected so that a state file written by a
/// newer, different format is never half-understood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppState {
    /// The slot serving as stable; the other slot is the canary slot.
    pub stable_slot: String,
    /// Share of traffic, in percent, that the weighted service sends to the canary.
    pub canary_weight: u8,
    pub phase: Phase,
    /// Version label of the release on the stable slot, when known.
    #[serde(default)]
    pub stable_version: Option<String>,
    /// Version label of the release on the canary slot, when one was started.
    #[serde(default)]
    pub canary_version: Option<String>,
    /// Bumped on every change of this app's state.
    pub generation: u64,
    /// Unix time of the last change, in milliseconds.
    pub updated_at_ms: u64,
}

/// Why a manual change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("weight {0} is outside 0..=100")]
    WeightOutOfRange(i64),
}

impl AppState {
    /// The state of an app seen for the first time: everything on the initial stable slot.
    pub fn initial(app: &AppConfig, now_ms: u64) -> AppState {
        AppState {
            stable_slot: app.initial_stable.clone(),
            canary_weight: 0,
            phase: Phase::Idle,
            stable_version: None,
            canary_version: None,
            generation: 1,
            updated_at_ms: now_ms,
        }
    }

    pub fn stable_weight(&self) -> u8 {
        100 - self.canary_weight
    }

    /// Sets the canary weight by hand. Returns `None` when nothing changes (same weight).
    pub fn with_weight(&self, weight: i64, now_ms: u64) -> Result<Option<AppState>, Refusal> {
        let w = u8::try_from(weight)
            .ok()
            .filter(|w| *w <= 100)
            .ok_or(Refusal::WeightOutOfRange(weight))?;
        if w == self.canary_weight {
            return Ok(None);
        }
        Ok(Some(AppState {
            canary_weight: w,
            generation: self.generation + 1,
            updated_at_ms: now_ms,
            ..self.clone()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(weight: u8) -> AppState {
        AppState {
            stable_slot: "blue".into(),
            canary_weight: weight,
            phase: Phase::Idle,
            stable_version: None,
            canary_version: None,
            generation: 7,
            updated_at_ms: 1,
        }
    }

    #[test]
    fn with_weight_bumps_generation_and_keeps_the_rest() {
        let next = state(0).with_weight(30, 99).unwrap().unwrap();
        assert_eq!(next.canary_weight, 30);
        assert_eq!(next.stable_weight(), 70);
        assert_eq!(next.generation, 8);
        assert_eq!(next.updated_at_ms, 99);
        assert_eq!(next.stable_slot, "blue");
    }

    #[test]
    fn with_weight_unchanged_is_no_change() {
        assert_eq!(state(30).with_weight(30, 99), Ok(None));
    }

    #[test]
    fn with_weight_rejects_out_of_range() {
        for w in [-1, 101, 256, i64::MAX, i64::MIN] {
            assert_eq!(
                state(0).with_weight(w, 1),
                Err(Refusal::WeightOutOfRange(w))
            );
        }
        assert!(state(0).with_weight(100, 1).unwrap().is_some());
        assert!(state(5).with_weight(0, 1).unwrap().is_some());
    }

    #[test]
    fn state_json_rejects_unknown_fields() {
        let mut v = serde_json::to_value(state(1)).unwrap();
        v["weight"] = 5.into();
        assert!(serde_json::from_value::<AppState>(v).is_err());
    }
}
