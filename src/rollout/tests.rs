use std::time::Duration;

use super::*;
use crate::config::tests_support::sample_config;

fn app() -> AppConfig {
    let mut a = sample_config().apps["api"].clone();
    a.analysis.steps = vec![10, 50, 100];
    a.analysis.failure_limit = 2;
    a.analysis.max_inconclusive = Duration::from_secs(60);
    a
}

/// Builder fixtures.
impl AppState {
    fn test() -> AppState {
        AppState::initial(&app(), 0)
    }
    fn at_step(mut self, i: usize) -> AppState {
        self.phase = Phase::Progressing;
        self.step_index = i;
        self.canary_weight = app().analysis.steps[i];
        self.canary_version = Some("v2".into());
        self
    }
    fn in_phase(mut self, p: Phase) -> AppState {
        self.phase = p;
        self
    }
}

fn apply(s: &AppState, input: Input) -> Transition {
    step(&app(), s, input, 1_000)
        .expect("accepted")
        .expect("a change")
}

fn verdict(v: Verdict) -> Input {
    Input::Analysis {
        verdict: v,
        reason: format!("judge says {}", v.as_str()),
    }
}

#[test]
fn start_goes_to_the_first_step_with_the_version() {
    let t = apply(
        &AppState::test(),
        Input::Start {
            version: "v2".into(),
        },
    );
    assert_eq!(t.state.phase, Phase::Progressing);
    assert_eq!(t.state.canary_weight, 10);
    assert_eq!(t.state.canary_version.as_deref(), Some("v2"));
    let ev = t.event.unwrap();
    assert_eq!(
        (ev.kind, ev.from, ev.to, ev.weight),
        (EventKind::Started, Phase::Idle, Phase::Progressing, 10)
    );
    assert!(t.reset_window);
    assert_eq!(t.state.generation, AppState::test().generation + 1);
}

#[test]
fn start_is_refused_while_a_release_is_active_and_allowed_after_one_ended() {
    for p in [Phase::Progressing, Phase::Paused, Phase::Promoting] {
        let s = AppState::test().at_step(1).in_phase(p);
        assert!(matches!(
            step(
                &app(),
                &s,
                Input::Start {
                    version: "v3".into()
                },
                1
            ),
            Err(Refusal::Busy { .. })
        ));
    }
    for p in [Phase::Succeeded, Phase::RolledBack, Phase::Idle] {
        let s = AppState::test().in_phase(p);
        assert_eq!(
            apply(
                &s,
                Input::Start {
                    version: "v3".into()
                }
            )
            .state
            .phase,
            Phase::Progressing
        );
    }
    let bad = step(
        &app(),
        &AppState::test(),
        Input::Start { version: "".into() },
        1,
    );
    assert_eq!(bad, Err(Refusal::BadVersion));
    let bad = step(
        &app(),
        &AppState::test(),
        Input::Start {
            version: "a\nb".into(),
        },
        1,
    );
    assert_eq!(bad, Err(Refusal::BadVersion));
    // 1-128 characters, not bytes: 128 two-byte characters are a label, 129 are not.
    let start = |version: String| step(&app(), &AppState::test(), Input::Start { version }, 1);
    assert!(start("é".repeat(128)).is_ok());
    assert_eq!(start("é".repeat(129)), Err(Refusal::BadVersion));
    assert_eq!(start("v".repeat(129)), Err(Refusal::BadVersion));
}

#[test]
fn a_version_label_that_does_not_print_as_it_reads_is_refused() {
    // "v2" shown, "2v" stored: a right-to-left override; and a zero-width space.
    for version in ["\u{202E}2v", "v\u{200B}2", "v2\u{2066}", "\u{FEFF}v2"] {
        let bad = step(
            &app(),
            &AppState::test(),
            Input::Start {
                version: version.into(),
            },
            1,
        );
        assert_eq!(bad, Err(Refusal::BadVersion), "{version:?}");
    }
    let ok = step(
        &app(),
        &AppState::test(),
        Input::Start {
            version: "v2-été-版本".into(),
        },
        1,
    );
    assert!(ok.is_ok(), "letters of any script are fine: {ok:?}");
}

#[test]
fn a_pause_or_abort_reason_is_capped() {
    let s = apply(
        &AppState::test(),
        Input::Start {
            version: "v2".into(),
        },
    );
    let s = s.state;
    let long = "x".repeat(MAX_REASON + 1);
    for input in [
        Input::Pause {
            reason: long.clone(),
        },
        Input::Abort {
            reason: long.clone(),
        },
    ] {
        assert_eq!(
            step(&app(), &s, input, 2),
            Err(Refusal::ReasonTooLong(MAX_REASON + 1))
        );
    }
    let at_cap = step(
        &app(),
        &s,
        Input::Pause {
            reason: "é".repeat(MAX_REASON),
        },
        2,
    );
    assert_eq!(at_cap.unwrap().unwrap().state.phase, Phase::Paused);
}

#[test]
fn passes_walk_every_step_then_promote_and_swap_roles() {
    let mut s = apply(
        &AppState::test(),
        Input::Start {
            version: "v2".into(),
        },
    )
    .state;
    let mut weights = vec![s.canary_weight];
    while s.phase == Phase::Progressing {
        s = apply(&s, verdict(Verdict::Pass)).state;
        weights.push(s.canary_weight);
    }
    assert_eq!(
        weights,
        vec![10, 50, 100],
        "a step of 100 is the promotion itself"
    );
    assert_eq!(s.phase, Phase::Promoting);
    let t = apply(&s, verdict(Verdict::Inconclusive));
    assert_eq!(t.state.phase, Phase::Succeeded);
    assert_eq!(
        t.state.stable_slot, "green",
        "the canary slot became stable"
    );
    assert_eq!(
        t.state.canary_weight, 0,
        "100/0 on the swapped roles: the same servers keep the traffic"
    );
    assert_eq!(t.state.stable_version.as_deref(), Some("v2"));
    assert_eq!(
        t.state.canary_version, None,
        "the idle slot runs the old stable, of unknown version"
    );
    let ev = t.event.unwrap();
    assert_eq!(ev.kind, EventKind::Promoted);
    assert_eq!(
        ev.version.as_deref(),
        Some("v2"),
        "the promoted event names the version it promoted"
    );
}

#[test]
fn steps_from_step_weight_are_walked_too() {
    let mut a = app();
    a.analysis.steps = vec![20, 40, 60];
    let mut s = step(
        &a,
        &AppState::test(),
        Input::Start {
            version: "v".into(),
        },
        1,
    )
    .unwrap()
    .unwrap()
    .state;
    let mut weights = vec![s.canary_weight];
    while s.phase == Phase::Progressing {
        s = step(&a, &s, verdict(Verdict::Pass), 1)
            .unwrap()
            .unwrap()
            .state;
        weights.push(s.canary_weight);
    }
    assert_eq!(
        weights,
        vec![20, 40, 60, 100],
        "after the last step the canary takes 100 % to promote"
    );
}

#[test]
fn critical_rolls_back_at_once() {
    let t = apply(&AppState::test().at_step(1), verdict(Verdict::Critical));
    assert_eq!(t.state.phase, Phase::RolledBack);
    assert_eq!(t.state.canary_weight, 0);
    assert_eq!(t.event.unwrap().kind, EventKind::RolledBack);
}

#[test]
fn fails_roll_back_after_failure_limit_consecutive() {
    let s = AppState::test().at_step(1);
    let t = apply(&s, verdict(Verdict::Fail));
    assert_eq!(
        (t.state.phase, t.state.failures, t.state.canary_weight),
        (Phase::Progressing, 1, 50)
    );
    assert_eq!(t.event.as_ref().unwrap().kind, EventKind::AnalysisFailed);
    // A pass in between resets the count.
    let reset = apply(&t.state, verdict(Verdict::Pass)).state;
    assert_eq!(reset.failures, 0);
    let t2 = apply(&t.state, verdict(Verdict::Fail));
    assert_eq!(t2.state.phase, Phase::RolledBack);
    assert!(t2
        .event
        .unwrap()
        .reason
        .contains("2 consecutive failed analyses"));
}

#[test]
fn inconclusive_holds_then_pauses_after_max_inconclusive() {
    let s = AppState::test().at_step(0);
    let t = step(&app(), &s, verdict(Verdict::Inconclusive), 10_000)
        .unwrap()
        .unwrap();
    assert_eq!(t.state.phase, Phase::Progressing);
    assert_eq!(t.state.canary_weight, 10);
    assert_eq!(t.state.inconclusive_since_ms, Some(10_000));
    assert!(t.event.is_none());
    assert!(!t.reset_window, "an inconclusive window keeps accumulating");
    // Later, still within max_inconclusive: nothing changes.
    assert_eq!(
        step(&app(), &t.state, verdict(Verdict::Inconclusive), 69_999).unwrap(),
        None
    );
    // At max_inconclusive: paused, with the reason.
    let p = step(&app(), &t.state, verdict(Verdict::Inconclusive), 70_000)
        .unwrap()
        .unwrap();
    assert_eq!(p.state.phase, Phase::Paused);
    assert_eq!(p.state.canary_weight, 10, "pausing keeps the weight");
    let ev = p.event.unwrap();
    assert_eq!(ev.kind, EventKind::Paused);
    assert!(ev.reason.contains("no verdict for 1m"), "{}", ev.reason);
    // A verdict clears the wait.
    let cleared = step(&app(), &t.state, verdict(Verdict::Pass), 20_000)
        .unwrap()
        .unwrap();
    assert_eq!(cleared.state.inconclusive_since_ms, None);
}

#[test]
fn pause_and_resume() {
    let s = AppState::test().at_step(1);
    let p = apply(
        &s,
        Input::Pause {
            reason: "looking at logs".into(),
        },
    );
    assert_eq!((p.state.phase, p.state.canary_weight), (Phase::Paused, 50));
    assert_eq!(p.state.reason.as_deref(), Some("looking at logs"));
    // Paused apps are not analysed.
    assert_eq!(
        step(&app(), &p.state, verdict(Verdict::Critical), 1).unwrap(),
        None
    );
    assert_eq!(
        step(
            &app(),
            &p.state,
            Input::Pause {
                reason: "again".into()
            },
            1
        )
        .unwrap(),
        None
    );
    let r = apply(&p.state, Input::Resume);
    assert_eq!(
        (r.state.phase, r.state.canary_weight, r.state.step_index),
        (Phase::Progressing, 50, 1)
    );
    assert!(matches!(
        step(&app(), &r.state, Input::Resume, 1),
        Err(Refusal::NotPaused(_))
    ));
    assert!(matches!(
        step(
            &app(),
            &AppState::test(),
            Input::Pause { reason: "x".into() },
            1
        ),
        Err(Refusal::NotActive(_))
    ));
}

#[test]
fn pause_during_promotion_then_resume_revalidates_the_last_step() {
    let s = AppState::test().at_step(1).in_phase(Phase::Promoting);
    let s = AppState {
        canary_weight: 100,
        ..s
    };
    let p = apply(
        &s,
        Input::Pause {
            reason: "gate".into(),
        },
    );
    assert_eq!(p.state.phase, Phase::Paused);
    let r = apply(&p.state, Input::Resume);
    assert_eq!(
        (r.state.phase, r.state.canary_weight),
        (Phase::Progressing, 50),
        "back on the last analysed step"
    );
    let promoting = apply(&r.state, verdict(Verdict::Pass)).state;
    assert_eq!(promoting.phase, Phase::Promoting);
}

#[test]
fn manual_promote_skips_the_remaining_steps() {
    for from in [
        AppState::test().at_step(0),
        AppState::test().at_step(0).in_phase(Phase::Paused),
    ] {
        let t = apply(&from, Input::Promote);
        assert_eq!(
            (t.state.phase, t.state.canary_weight),
            (Phase::Promoting, 100)
        );
    }
    assert!(matches!(
        step(&app(), &AppState::test(), Input::Promote, 1),
        Err(Refusal::NotActive("idle"))
    ));
}

#[test]
fn abort_rolls_back_from_every_active_phase_including_promotion() {
    for p in [Phase::Progressing, Phase::Paused, Phase::Promoting] {
        let s = AppState::test().at_step(2).in_phase(p);
        let t = apply(
            &s,
            Input::Abort {
                reason: "operator".into(),
            },
        );
        assert_eq!(
            (t.state.phase, t.state.canary_weight),
            (Phase::RolledBack, 0),
            "{p:?}"
        );
        assert_eq!(
            t.state.stable_slot, "blue",
            "roles are not swapped by an abort"
        );
    }
    for p in [Phase::Idle, Phase::Succeeded, Phase::RolledBack] {
        let s = AppState::test().in_phase(p);
        assert!(matches!(
            step(&app(), &s, Input::Abort { reason: "x".into() }, 1),
            Err(Refusal::NotActive(_))
        ));
    }
}

#[test]
fn critical_during_promotion_rolls_back_instead_of_swapping() {
    let s = AppState::test().at_step(2).in_phase(Phase::Promoting);
    let t = apply(&s, verdict(Verdict::Critical));
    assert_eq!(
        (t.state.phase, t.state.stable_slot.as_str()),
        (Phase::RolledBack, "blue")
    );
}

#[test]
fn set_weight_by_hand_pauses_an_analysed_release() {
    let t = apply(
        &AppState::test().at_step(1),
        Input::SetWeight { weight: 30 },
    );
    assert_eq!((t.state.phase, t.state.canary_weight), (Phase::Paused, 30));
    let idle = apply(&AppState::test(), Input::SetWeight { weight: 30 });
    assert_eq!(
        (idle.state.phase, idle.state.canary_weight),
        (Phase::Idle, 30)
    );
    assert_eq!(idle.event.unwrap().kind, EventKind::WeightSet);
    assert_eq!(
        step(&app(), &idle.state, Input::SetWeight { weight: 30 }, 1).unwrap(),
        None
    );
    let rolled_back = AppState::test().at_step(1).in_phase(Phase::RolledBack);
    let rolled_back = AppState {
        canary_weight: 0,
        ..rolled_back
    };
    assert!(matches!(
        step(&app(), &rolled_back, Input::SetWeight { weight: 5 }, 1),
        Err(Refusal::RolledBack(_))
    ));
    for w in [-1, 101, i64::MAX] {
        assert_eq!(
            step(&app(), &AppState::test(), Input::SetWeight { weight: w }, 1),
            Err(Refusal::WeightOutOfRange(w))
        );
    }
}

#[test]
fn analyses_outside_analysed_phases_change_nothing() {
    for p in [
        Phase::Idle,
        Phase::Paused,
        Phase::Succeeded,
        Phase::RolledBack,
    ] {
        for v in [
            Verdict::Pass,
            Verdict::Fail,
            Verdict::Critical,
            Verdict::Inconclusive,
        ] {
            let s = AppState::test().in_phase(p);
            assert_eq!(
                step(&app(), &s, verdict(v), 1).unwrap(),
                None,
                "{p:?} {v:?}"
            );
        }
    }
}

#[test]
fn every_phase_survives_a_restart_and_continues_the_same_way() {
    // A restart is a round trip through the state file: the machine continues identically.
    for s in [
        AppState::test(),
        AppState::test().at_step(1),
        AppState::test().at_step(1).in_phase(Phase::Paused),
        AppState::test().at_step(2).in_phase(Phase::Promoting),
        AppState::test().in_phase(Phase::Succeeded),
        AppState::test().in_phase(Phase::RolledBack),
    ] {
        let reloaded: AppState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(reloaded, s);
        for input in [
            verdict(Verdict::Pass),
            verdict(Verdict::Critical),
            Input::Resume,
            Input::Promote,
        ] {
            assert_eq!(
                step(&app(), &reloaded, input.clone(), 5),
                step(&app(), &s, input, 5)
            );
        }
    }
}

#[test]
fn weights_stay_within_0_and_100_over_random_inputs() {
    let mut seed = 99u64;
    let mut rand = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut s = AppState::test();
    for t in 0..5_000u64 {
        let input = match rand(9) {
            0 => Input::Start {
                version: format!("v{t}"),
            },
            1 => Input::Pause { reason: "p".into() },
            2 => Input::Resume,
            3 => Input::Promote,
            4 => Input::Abort { reason: "a".into() },
            5 => Input::SetWeight {
                weight: rand(140) as i64 - 20,
            },
            6 => verdict(Verdict::Pass),
            7 => verdict(Verdict::Fail),
            _ => verdict(if rand(10) == 0 {
                Verdict::Critical
            } else {
                Verdict::Inconclusive
            }),
        };
        if let Ok(Some(tr)) = step(&app(), &s, input, t * 1000) {
            assert!(tr.state.canary_weight <= 100);
            assert!(tr.state.generation > s.generation);
            assert!(app().slots.contains_key(&tr.state.stable_slot));
            if tr.state.phase == Phase::RolledBack {
                assert_eq!(tr.state.canary_weight, 0);
            }
            s = tr.state;
        }
    }
}

fn gated(rollout: bool, promotion: bool) -> AppConfig {
    let mut a = app();
    let url = |p: &str| Some(url::Url::parse(&format!("http://127.0.0.1:1/{p}")).unwrap());
    if rollout {
        a.hooks.confirm_rollout = url("rollout");
    }
    if promotion {
        a.hooks.confirm_promotion = url("promotion");
    }
    a
}

fn gate(g: Gate, open: bool) -> Input {
    Input::Gate { gate: g, open }
}

#[test]
fn confirm_rollout_gate_holds_the_canary_at_zero_until_it_opens() {
    let a = gated(true, false);
    let t = step(
        &a,
        &AppState::test(),
        Input::Start {
            version: "v2".into(),
        },
        1,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (t.state.phase, t.state.canary_weight),
        (Phase::Progressing, 0)
    );
    assert_eq!(t.state.awaiting_gate, Some(Gate::ConfirmRollout));
    let s = t.state;
    // Verdicts and a closed gate change nothing.
    assert_eq!(step(&a, &s, verdict(Verdict::Pass), 2).unwrap(), None);
    assert_eq!(
        step(&a, &s, gate(Gate::ConfirmRollout, false), 2).unwrap(),
        None
    );
    assert_eq!(
        step(&a, &s, gate(Gate::ConfirmPromotion, true), 2).unwrap(),
        None
    );
    let opened = step(&a, &s, gate(Gate::ConfirmRollout, true), 3)
        .unwrap()
        .unwrap();
    assert_eq!(
        (opened.state.canary_weight, opened.state.awaiting_gate),
        (10, None)
    );
    assert_eq!(opened.event.unwrap().kind, EventKind::Advanced);
}

#[test]
fn confirm_promotion_gate_holds_a_finished_canary_at_its_last_step() {
    let a = gated(false, true);
    let s = AppState::test().at_step(1);
    let held = step(&a, &s, verdict(Verdict::Pass), 1).unwrap().unwrap();
    assert_eq!(
        (held.state.phase, held.state.canary_weight),
        (Phase::Progressing, 50)
    );
    assert_eq!(held.state.awaiting_gate, Some(Gate::ConfirmPromotion));
    let s = held.state;
    assert_eq!(step(&a, &s, verdict(Verdict::Pass), 2).unwrap(), None);
    assert_eq!(
        step(&a, &s, gate(Gate::ConfirmPromotion, false), 2).unwrap(),
        None
    );
    // Still judged: a critical verdict rolls back while waiting.
    let rb = step(&a, &s, verdict(Verdict::Critical), 2)
        .unwrap()
        .unwrap();
    assert_eq!(rb.state.phase, Phase::RolledBack);
    assert_eq!(rb.state.awaiting_gate, None);
    let open = step(&a, &s, gate(Gate::ConfirmPromotion, true), 3)
        .unwrap()
        .unwrap();
    assert_eq!(
        (open.state.phase, open.state.canary_weight),
        (Phase::Promoting, 100)
    );
    assert_eq!(open.event.unwrap().kind, EventKind::Promoting);
}

#[test]
fn manual_promote_overrides_a_waiting_gate() {
    let a = gated(false, true);
    let s = AppState {
        awaiting_gate: Some(Gate::ConfirmPromotion),
        ..AppState::test().at_step(1)
    };
    let t = step(&a, &s, Input::Promote, 1).unwrap().unwrap();
    assert_eq!(
        (t.state.phase, t.state.awaiting_gate),
        (Phase::Promoting, None)
    );
}

#[test]
fn pause_while_waiting_for_a_gate_then_resume_waits_for_it_again() {
    let a = gated(true, true);
    // Waiting for confirm-rollout: resume keeps the canary at 0 %.
    let waiting = step(
        &a,
        &AppState::test(),
        Input::Start {
            version: "v2".into(),
        },
        1,
    )
    .unwrap()
    .unwrap()
    .state;
    let paused = apply(
        &waiting,
        Input::Pause {
            reason: "hold".into(),
        },
    )
    .state;
    let resumed = apply(&paused, Input::Resume).state;
    assert_eq!(
        (resumed.phase, resumed.canary_weight),
        (Phase::Progressing, 0)
    );
    assert_eq!(resumed.awaiting_gate, Some(Gate::ConfirmRollout));
    // Waiting for confirm-promotion: resume returns to the last step, still waiting.
    let s = AppState {
        awaiting_gate: Some(Gate::ConfirmPromotion),
        ..AppState::test().at_step(1)
    };
    let paused = apply(
        &s,
        Input::Pause {
            reason: "hold".into(),
        },
    )
    .state;
    let resumed = apply(&paused, Input::Resume).state;
    assert_eq!(
        (resumed.phase, resumed.canary_weight),
        (Phase::Progressing, 50)
    );
    assert_eq!(resumed.awaiting_gate, Some(Gate::ConfirmPromotion));
    let open = step(&a, &resumed, gate(Gate::ConfirmPromotion, true), 2)
        .unwrap()
        .unwrap();
    assert_eq!(open.state.phase, Phase::Promoting);
}

#[test]
fn a_promoted_release_is_handed_back_to_the_other_slot_at_weight_zero() {
    let mut s = AppState::test().at_step(2).in_phase(Phase::Promoting);
    s.stable_version = Some("v1".into());
    let promoted = apply(&s, verdict(Verdict::Pass)).state;
    assert_eq!(
        (promoted.phase, promoted.stable_slot.as_str()),
        (Phase::Succeeded, "green")
    );

    let t = apply(&promoted, Input::HandBack);
    assert_eq!(
        t.state.stable_slot, "blue",
        "the other slot is stable again"
    );
    assert_eq!(t.state.phase, Phase::Succeeded);
    assert_eq!(t.state.canary_weight, 0);
    assert_eq!(t.state.stable_version.as_deref(), Some("v2"));
    assert_eq!(
        t.state.canary_version.as_deref(),
        Some("v2"),
        "both slots run v2"
    );
    let ev = t.event.unwrap();
    assert_eq!(ev.kind, EventKind::HandedBack);
    assert!(
        ev.reason.contains("slot blue runs the promoted release v2"),
        "{}",
        ev.reason
    );

    // Only after a promotion.
    for phase in [Phase::Idle, Phase::Progressing, Phase::RolledBack] {
        let r = step(
            &app(),
            &AppState::test().in_phase(phase),
            Input::HandBack,
            1_000,
        );
        assert!(
            matches!(r, Err(Refusal::NotSucceeded(_))),
            "{phase:?}: {r:?}"
        );
    }
}
