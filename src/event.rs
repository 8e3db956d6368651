//! The kinds of event the release lifecycle records. They sit below the state machine that emits
//! them, the config that filters notifications by them and the notifiers that send them.

use serde::{Deserialize, Serialize};

/// What a recorded transition was. [`EventKind::as_str`] is its name in the state file, the API,
/// notifications and the notifiers' `events` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Started,
    Advanced,
    Paused,
    Resumed,
    Promoting,
    Promoted,
    RolledBack,
    WeightSet,
    /// The stable role went back to the other slot, which now runs the same version: a
    /// Swarm-managed app's primary service took over again after a promotion.
    HandedBack,
    /// A failed analysis that did not yet roll back.
    AnalysisFailed,
    /// A hook (pre-rollout, post-rollout, rollback) could not be delivered.
    HookFailed,
    /// A notification could not be delivered after its retries. Recorded and counted, never
    /// itself notified (a dead receiver would otherwise feed itself).
    NotificationFailed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Advanced => "advanced",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
            EventKind::Promoting => "promoting",
            EventKind::Promoted => "promoted",
            EventKind::RolledBack => "rolled_back",
            EventKind::WeightSet => "weight_set",
            EventKind::HandedBack => "handed_back",
            EventKind::AnalysisFailed => "analysis_failed",
            EventKind::HookFailed => "hook_failed",
            EventKind::NotificationFailed => "notification_failed",
        }
    }

    pub const ALL: [EventKind; 12] = [
        EventKind::Started,
        EventKind::Advanced,
        EventKind::Paused,
        EventKind::Resumed,
        EventKind::Promoting,
        EventKind::Promoted,
        EventKind::RolledBack,
        EventKind::WeightSet,
        EventKind::HandedBack,
        EventKind::AnalysisFailed,
        EventKind::HookFailed,
        EventKind::NotificationFailed,
    ];
}
