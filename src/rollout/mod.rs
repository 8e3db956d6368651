//! The release lifecycle of one app as a pure state machine:
//! `step(&AppState, &AnalysisConfig, Input, now) -> Result<Option<Transition>, Refusal>`.
//! No I/O: the controller gathers inputs, calls [`step`], then persists, publishes and notifies.
//!
//! ```text
//! Idle ──start──► Progressing (steps[0]) ──pass──► Progressing (next step) ── … ──► Promoting (100 %)
//!                   │   ▲                                                         │
//!              pause│   │resume                                  next analysis     │ (no critical)
//!                   ▼   │                                                         ▼
//!                  Paused                                      Succeeded (roles swapped, 100/0)
//! Progressing / Paused / Promoting ──critical, failure_limit fails, abort──► RolledBack (canary 0 %)
//! ```

use serde::{Deserialize, Serialize};

use crate::analysis::Verdict;
use crate::config::{AnalysisConfig, AppConfig};
pub use crate::event::EventKind;

/// Where an app is in its release lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No release in progress; an operator may still set a weight by hand.
    Idle,
    /// The canary is on a step and analysed every interval.
    Progressing,
    /// Held at its weight: by an operator, a set-weight, or too long without a verdict.
    Paused,
    /// Every step passed: the canary takes 100 % for one more analysis before the roles swap.
    Promoting,
    /// Promoted: the former canary slot is stable; the other slot is idle.
    Succeeded,
    /// Rolled back: the canary gets no traffic.
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

    /// Phases in which a release is under way.
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Progressing | Phase::Paused | Phase::Promoting)
    }

    /// Phases in which the analysis loop judges the canary.
    pub fn is_analysed(self) -> bool {
        matches!(self, Phase::Progressing | Phase::Promoting)
    }
}

/// Persisted state of one app. Unknown fields are rejected so that a state file of another
/// format is never half-understood.
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
    /// Index into the analysis steps while a release is under way.
    #[serde(default)]
    pub step_index: usize,
    /// Consecutive failed analyses.
    #[serde(default)]
    pub failures: u32,
    /// Since when (Unix ms) analyses have been inconclusive, if they are.
    #[serde(default)]
    pub inconclusive_since_ms: Option<u64>,
    /// Why the app is in its phase (the last transition's reason).
    #[serde(default)]
    pub reason: Option<String>,
    /// Unix time (ms) the app entered its current phase.
    #[serde(default)]
    pub phase_since_ms: u64,
    /// A gate the release waits for, asked every tick until it answers 2xx.
    #[serde(default)]
    pub awaiting_gate: Option<Gate>,
    /// Bumped on every change of this app's state.
    pub generation: u64,
    /// Unix time of the last change, in milliseconds.
    pub updated_at_ms: u64,
}

/// A confirmation the release waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// Before the first step takes traffic.
    ConfirmRollout,
    /// After the last step passed, before promotion.
    ConfirmPromotion,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::ConfirmRollout => "confirm_rollout",
            Gate::ConfirmPromotion => "confirm_promotion",
        }
    }
}

/// What can happen to an app.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Start a release of `version`, deployed on the canary slot.
    Start {
        version: String,
    },
    Pause {
        reason: String,
    },
    Resume,
    /// Skip the remaining steps.
    Promote,
    /// Roll back now.
    Abort {
        reason: String,
    },
    /// Set the canary weight by hand; an analysed release pauses.
    SetWeight {
        weight: i64,
    },
    /// The judge's verdict on the last window.
    Analysis {
        verdict: Verdict,
        reason: String,
    },
    /// A gate's answer: open (2xx) or not.
    Gate {
        gate: Gate,
        open: bool,
    },
    /// After a promotion, the stable role goes back to the other slot, which has been brought
    /// to the promoted version (a Swarm-managed app's primary service): weight 0 stays 0.
    HandBack,
}

/// Why an input was refused; the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("weight {0} is outside 0..=100")]
    WeightOutOfRange(i64),
    #[error("a release of {version} is {phase}; abort or promote it before starting another")]
    Busy {
        version: String,
        phase: &'static str,
    },
    #[error("no release is in progress (phase {0})")]
    NotActive(&'static str),
    #[error("the release is not paused (phase {0})")]
    NotPaused(&'static str),
    #[error("only a promoted release is handed back (phase {0})")]
    NotSucceeded(&'static str),
    #[error(
        "the version label must be 1-128 printable characters, without bidirectional or \
         invisible formatting characters"
    )]
    BadVersion,
    #[error("a reason is at most {MAX_REASON} characters (this one has {0})")]
    ReasonTooLong(usize),
    #[error(
        "the canary slot holds the rolled-back release {0}; start a new release to send it traffic \
         (the pin header still reaches it)"
    )]
    RolledBack(String),
}

/// A transition, as recorded in the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub app: String,
    pub kind: EventKind,
    #[serde(default)]
    pub version: Option<String>,
    pub from: Phase,
    pub to: Phase,
    /// Canary weight after the transition.
    pub weight: u8,
    pub reason: String,
    pub time_ms: u64,
    /// What a dry-run release would have done; nothing served changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// The outcome of an accepted input.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub state: AppState,
    pub event: Option<Event>,
    /// The analysis window must start afresh: the weight or phase changed, or a verdict
    /// consumed the data.
    pub reset_window: bool,
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
            step_index: 0,
            failures: 0,
            inconclusive_since_ms: None,
            reason: None,
            phase_since_ms: now_ms,
            awaiting_gate: None,
            generation: 1,
            updated_at_ms: now_ms,
        }
    }

    pub fn stable_weight(&self) -> u8 {
        100 - self.canary_weight
    }
}

/// The longest reason an operator may give: every state write and event carries it.
pub const MAX_REASON: usize = 1000;

/// A label as it prints: no control characters, and none of the formatting characters that
/// make text look other than it is (bidirectional overrides and isolates, zero-width ones).
fn valid_version(v: &str) -> bool {
    !v.is_empty() && v.chars().count() <= 128 && v.chars().all(|c| !c.is_control() && !invisible(c))
}

fn invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' // zero-width space, joiners, direction marks
        | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}' // bidirectional isolates
        | '\u{FEFF}' // zero-width no-break space
        | '\u{00AD}' // soft hyphen
    )
}

type Outcome = Result<Option<Transition>, Refusal>;

/// What every transition of one `step` call shares.
struct Ctx<'a> {
    app: &'a AppConfig,
    s: &'a AppState,
    now_ms: u64,
}

impl Ctx<'_> {
    fn cfg(&self) -> &AnalysisConfig {
        &self.app.analysis
    }

    /// The analysed steps: a weight of 100 is not a step but the promotion itself, since at
    /// 100 % stable has no traffic to compare with.
    fn steps(&self) -> impl Iterator<Item = u8> + '_ {
        self.cfg().steps.iter().copied().filter(|w| *w < 100)
    }

    fn last_index(&self) -> usize {
        self.steps().count().saturating_sub(1)
    }

    fn step_weight(&self, i: usize) -> u8 {
        self.steps().nth(i.min(self.last_index())).unwrap_or(100)
    }

    /// The current state, one generation on.
    fn next(&self) -> AppState {
        let mut next = self.s.clone();
        next.generation += 1;
        next.updated_at_ms = self.now_ms;
        next
    }

    fn done(&self, mut next: AppState, kind: EventKind, reason: String) -> Outcome {
        next.reason = Some(reason.clone());
        if next.phase != self.s.phase {
            next.phase_since_ms = self.now_ms;
        }
        // A promotion names the version it promoted, now the stable one; every other event
        // names the release's canary version.
        let version = match kind {
            EventKind::Promoted => next.stable_version.clone(),
            _ => next.canary_version.clone(),
        };
        let event = Event {
            app: self.app.name.clone(),
            kind,
            version,
            from: self.s.phase,
            to: next.phase,
            weight: next.canary_weight,
            reason,
            time_ms: self.now_ms,
            dry_run: false,
        };
        Ok(Some(Transition {
            state: next,
            event: Some(event),
            reset_window: true,
        }))
    }

    fn roll_back(&self, mut next: AppState, reason: String) -> Outcome {
        next.awaiting_gate = None;
        next.phase = Phase::RolledBack;
        next.canary_weight = 0;
        next.failures = 0;
        next.inconclusive_since_ms = None;
        self.done(next, EventKind::RolledBack, reason)
    }
}

/// Applies one input to an app's state. `Ok(None)`: accepted, nothing changes.
pub fn step(app: &AppConfig, s: &AppState, input: Input, now_ms: u64) -> Outcome {
    let cx = Ctx { app, s, now_ms };
    let mut next = cx.next();
    if let Input::Pause { reason } | Input::Abort { reason } = &input {
        let chars = reason.chars().count();
        if chars > MAX_REASON {
            return Err(Refusal::ReasonTooLong(chars));
        }
    }
    match input {
        Input::Start { version } => {
            if !valid_version(&version) {
                return Err(Refusal::BadVersion);
            }
            if s.phase.is_active() {
                return Err(Refusal::Busy {
                    version: s.canary_version.clone().unwrap_or_else(|| "?".into()),
                    phase: s.phase.as_str(),
                });
            }
            next.phase = Phase::Progressing;
            next.step_index = 0;
            next.canary_version = Some(version.clone());
            next.failures = 0;
            next.inconclusive_since_ms = None;
            if app.hooks.confirm_rollout.is_some() {
                next.canary_weight = 0;
                next.awaiting_gate = Some(Gate::ConfirmRollout);
                let reason =
                    format!("release {version} started; waiting for the confirm-rollout gate");
                return cx.done(next, EventKind::Started, reason);
            }
            next.awaiting_gate = None;
            next.canary_weight = cx.step_weight(0);
            let reason = format!("release {version} started at {}%", next.canary_weight);
            cx.done(next, EventKind::Started, reason)
        }
        Input::Pause { reason } => match s.phase {
            Phase::Paused => Ok(None),
            Phase::Progressing | Phase::Promoting => {
                next.phase = Phase::Paused;
                next.inconclusive_since_ms = None;
                cx.done(next, EventKind::Paused, reason)
            }
            other => Err(Refusal::NotActive(other.as_str())),
        },
        Input::Resume => match s.phase {
            Phase::Paused => {
                next.phase = Phase::Progressing;
                next.canary_weight = match s.awaiting_gate {
                    Some(Gate::ConfirmRollout) => 0,
                    _ => cx.step_weight(s.step_index),
                };
                next.failures = 0;
                next.inconclusive_since_ms = None;
                let reason = format!(
                    "resumed at step {} ({}%)",
                    s.step_index + 1,
                    next.canary_weight
                );
                cx.done(next, EventKind::Resumed, reason)
            }
            other => Err(Refusal::NotPaused(other.as_str())),
        },
        Input::Promote => match s.phase {
            Phase::Promoting => Ok(None),
            Phase::Progressing | Phase::Paused => {
                next.phase = Phase::Promoting;
                next.canary_weight = 100;
                next.step_index = cx.last_index();
                next.failures = 0;
                next.inconclusive_since_ms = None;
                next.awaiting_gate = None;
                let reason = "promoted by an operator: remaining steps skipped".to_string();
                cx.done(next, EventKind::Promoting, reason)
            }
            other => Err(Refusal::NotActive(other.as_str())),
        },
        Input::Abort { reason } => match s.phase {
            p if p.is_active() => cx.roll_back(next, reason),
            other => Err(Refusal::NotActive(other.as_str())),
        },
        Input::SetWeight { weight } => {
            let w = u8::try_from(weight)
                .ok()
                .filter(|w| *w <= 100)
                .ok_or(Refusal::WeightOutOfRange(weight))?;
            if w == s.canary_weight && !s.phase.is_analysed() {
                return Ok(None);
            }
            if s.phase == Phase::RolledBack && w > 0 {
                return Err(Refusal::RolledBack(
                    s.canary_version.clone().unwrap_or_else(|| "?".into()),
                ));
            }
            next.canary_weight = w;
            if s.phase.is_analysed() {
                next.phase = Phase::Paused;
                next.inconclusive_since_ms = None;
                let reason =
                    format!("weight set by hand to {w}%; the release is paused until resumed");
                return cx.done(next, EventKind::Paused, reason);
            }
            cx.done(
                next,
                EventKind::WeightSet,
                format!("weight set by hand to {w}%"),
            )
        }
        Input::Analysis { verdict, reason } => analysis(&cx, next, verdict, reason),
        Input::HandBack => match s.phase {
            Phase::Succeeded => {
                next.stable_slot = cx.app.other_slot(&s.stable_slot).to_string();
                next.canary_version = s.stable_version.clone();
                next.canary_weight = 0;
                let version = s.stable_version.clone().unwrap_or_default();
                let reason = format!(
                    "slot {} runs the promoted release {version} too and is stable again",
                    next.stable_slot
                );
                cx.done(next, EventKind::HandedBack, reason)
            }
            other => Err(Refusal::NotSucceeded(other.as_str())),
        },
        Input::Gate { gate, open } => {
            if s.phase != Phase::Progressing || s.awaiting_gate != Some(gate) || !open {
                return Ok(None);
            }
            next.awaiting_gate = None;
            match gate {
                Gate::ConfirmRollout => {
                    next.canary_weight = cx.step_weight(0);
                    let reason = format!(
                        "confirm-rollout gate opened; first step at {}%",
                        next.canary_weight
                    );
                    cx.done(next, EventKind::Advanced, reason)
                }
                Gate::ConfirmPromotion => {
                    next.phase = Phase::Promoting;
                    next.canary_weight = 100;
                    cx.done(
                        next,
                        EventKind::Promoting,
                        "confirm-promotion gate opened; promoting".into(),
                    )
                }
            }
        }
    }
}

fn analysis(cx: &Ctx, mut next: AppState, verdict: Verdict, reason: String) -> Outcome {
    let s = cx.s;
    let cfg = cx.cfg();
    match s.phase {
        Phase::Promoting => {
            if verdict == Verdict::Critical {
                return cx.roll_back(next, format!("critical at 100%: {reason}"));
            }
            // The roles swap in one update: the promoted slot becomes stable, still at 100 %.
            next.phase = Phase::Succeeded;
            next.stable_slot = cx.app.other_slot(&s.stable_slot).to_string();
            next.canary_weight = 0;
            next.stable_version = s.canary_version.clone();
            // The old slot, now the idle canary slot, still runs the old stable version.
            next.canary_version = s.stable_version.clone();
            next.failures = 0;
            next.inconclusive_since_ms = None;
            let version = s.canary_version.clone().unwrap_or_default();
            cx.done(
                next,
                EventKind::Promoted,
                format!("release {version} promoted: it is now stable"),
            )
        }
        Phase::Progressing if s.awaiting_gate == Some(Gate::ConfirmRollout) => Ok(None),
        Phase::Progressing => match verdict {
            Verdict::Critical => cx.roll_back(next, reason),
            Verdict::Fail => {
                next.failures = s.failures + 1;
                next.inconclusive_since_ms = None;
                if next.failures >= cfg.failure_limit {
                    let why = format!(
                        "{} consecutive failed analyses; last: {reason}",
                        cfg.failure_limit
                    );
                    return cx.roll_back(next, why);
                }
                let why = format!(
                    "analysis failed ({}/{}): {reason}",
                    next.failures, cfg.failure_limit
                );
                cx.done(next, EventKind::AnalysisFailed, why)
            }
            Verdict::Pass | Verdict::Inconclusive
                if s.awaiting_gate == Some(Gate::ConfirmPromotion) =>
            {
                // Held at the last step until the gate opens; only failures still count.
                if s.failures == 0 {
                    return Ok(None);
                }
                next.failures = 0;
                Ok(Some(Transition {
                    state: next,
                    event: None,
                    reset_window: true,
                }))
            }
            Verdict::Pass => {
                next.failures = 0;
                next.inconclusive_since_ms = None;
                if s.step_index < cx.last_index() {
                    next.step_index = s.step_index + 1;
                    next.canary_weight = cx.step_weight(next.step_index);
                    let why = format!(
                        "step {} passed; advancing to {}% ({reason})",
                        s.step_index + 1,
                        next.canary_weight
                    );
                    cx.done(next, EventKind::Advanced, why)
                } else if cx.app.hooks.confirm_promotion.is_some() {
                    next.awaiting_gate = Some(Gate::ConfirmPromotion);
                    next.reason = Some(format!(
                        "every step passed; waiting for the confirm-promotion gate ({reason})"
                    ));
                    Ok(Some(Transition {
                        state: next,
                        event: None,
                        reset_window: true,
                    }))
                } else {
                    next.phase = Phase::Promoting;
                    next.canary_weight = 100;
                    cx.done(
                        next,
                        EventKind::Promoting,
                        format!("every step passed; promoting ({reason})"),
                    )
                }
            }
            Verdict::Inconclusive => {
                let since = s.inconclusive_since_ms.unwrap_or(cx.now_ms);
                let waited = cx.now_ms.saturating_sub(since);
                if waited >= cfg.max_inconclusive.as_millis() as u64 {
                    next.phase = Phase::Paused;
                    next.inconclusive_since_ms = None;
                    let waited =
                        humantime::format_duration(std::time::Duration::from_secs(waited / 1000));
                    return cx.done(
                        next,
                        EventKind::Paused,
                        format!("no verdict for {waited}: paused ({reason})"),
                    );
                }
                if s.inconclusive_since_ms.is_some() {
                    return Ok(None);
                }
                // Only the start of the wait is recorded; the window keeps accumulating.
                next.inconclusive_since_ms = Some(since);
                Ok(Some(Transition {
                    state: next,
                    event: None,
                    reset_window: false,
                }))
            }
        },
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests;
