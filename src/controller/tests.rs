use std::sync::Mutex as StdMutex;

use super::*;
use crate::analysis::{BoxFuture, Collected, Histogram, SideSample, SourceError, Verdict};
use crate::config::tests_support::sample_config;
use crate::rollout::EventKind;
use crate::store::MemStore;

fn controller(store: Arc<MemStore>) -> Controller {
    Controller::load(Arc::new(sample_config()), Dependencies::new(store)).unwrap()
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
async fn set_weight_persists_with_its_event_then_publishes() {
    let store = Arc::new(MemStore::default());
    let c = controller(store.clone());
    let before = c.published().document.clone();
    c.set_weight("api", 30).await.unwrap();
    let saved = store.snapshot().unwrap();
    assert_eq!(saved.apps["api"].canary_weight, 30);
    assert_eq!(saved.events.last().unwrap().kind, EventKind::WeightSet);
    let after = c.published();
    assert_eq!(after.apps["api"].canary_weight, 30);
    assert_ne!(after.document, before);
    assert_eq!(after.events.len(), 1);
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
    assert_eq!(
        c.published().events.len(),
        1,
        "no event for a change that did not happen"
    );
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
        ..StateFile::default()
    };
    let mut app = AppState::initial(&config.apps["api"], 1);
    app.stable_slot = "red".into();
    state.apps.insert("api".into(), app);
    let store = Arc::new(MemStore::with(state.clone()));
    let err = Controller::load(Arc::new(config), Dependencies::new(store.clone()))
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("\"red\""), "{err}");
    assert_eq!(store.snapshot(), Some(state), "state untouched");
}

/// An in-memory source: each collection returns the next canned answer (the last repeats).
struct FakeSource {
    answers: StdMutex<VecDeque<Result<Collected, SourceError>>>,
    calls: StdMutex<Vec<Vec<String>>>,
}

impl FakeSource {
    fn new(answers: Vec<Result<Collected, SourceError>>) -> Arc<Self> {
        Arc::new(FakeSource {
            answers: StdMutex::new(answers.into()),
            calls: StdMutex::new(Vec::new()),
        })
    }
}

impl MetricsSource for FakeSource {
    fn collect<'a>(
        &'a self,
        services: &'a [String],
        _: Duration,
    ) -> BoxFuture<'a, Result<Collected, SourceError>> {
        self.calls.lock().unwrap().push(services.to_vec());
        let mut q = self.answers.lock().unwrap();
        let answer = if q.len() > 1 {
            q.pop_front().unwrap()
        } else {
            q.front().cloned().unwrap()
        };
        Box::pin(async move { answer })
    }
    fn describe(&self) -> String {
        "fake".into()
    }
}

fn side(n: f64, errors: f64) -> SideSample {
    let mut latency = Histogram::default();
    latency.add_bucket(0.01, n);
    latency.add_bucket(f64::INFINITY, n);
    SideSample {
        requests: n,
        errors,
        latency,
    }
}

fn traffic(canary: SideSample, stable: SideSample) -> Result<Collected, SourceError> {
    let mut c = Collected::new();
    c.insert("api-canary@http".into(), canary);
    c.insert("api-stable@http".into(), stable);
    Ok(c)
}

fn analysed_controller(
    source: Arc<FakeSource>,
    steps: Vec<u8>,
) -> (Arc<Controller>, Arc<MemStore>) {
    analysed_controller_with(source, steps, |_| {})
}

/// [`analysed_controller`], with `tweak` applied to the app's config.
fn analysed_controller_with(
    source: Arc<FakeSource>,
    steps: Vec<u8>,
    tweak: impl FnOnce(&mut AppConfig),
) -> (Arc<Controller>, Arc<MemStore>) {
    let mut config = sample_config();
    let app = config.apps.get_mut("api").unwrap();
    app.analysis.steps = steps;
    app.analysis.min_requests = 100;
    tweak(app);
    let store = Arc::new(MemStore::default());
    let c = Controller::load(
        Arc::new(config),
        Dependencies {
            source: Some(source),
            ..Dependencies::new(store.clone())
        },
    )
    .unwrap();
    (Arc::new(c), store)
}

/// Starts release `v2` of `app`.
async fn start_v2(c: &Controller, app: &str) {
    c.command(
        app,
        Input::Start {
            version: "v2".into(),
        },
    )
    .await
    .unwrap();
}

/// The events of a release that walked steps [10, 50] and was promoted.
const WALKED_AND_PROMOTED: [EventKind; 4] = [
    EventKind::Started,
    EventKind::Advanced,
    EventKind::Promoting,
    EventKind::Promoted,
];

async fn run_ticks(c: &Arc<Controller>, n: usize) {
    for _ in 0..n {
        tokio::time::advance(c.tick_period()).await;
        c.tick().await;
    }
}

#[tokio::test(start_paused = true)]
async fn healthy_canary_walks_every_step_and_is_promoted() {
    let source = FakeSource::new(vec![traffic(side(3000.0, 30.0), side(27000.0, 270.0))]);
    let (c, store) = analysed_controller(source.clone(), vec![10, 50]);
    start_v2(&c, "api").await;
    run_ticks(&c, 4).await;
    let s = &c.published().apps["api"];
    assert_eq!(s.phase, Phase::Succeeded, "{s:?}");
    assert_eq!(s.stable_slot, "green");
    assert_eq!(s.stable_version.as_deref(), Some("v2"));
    let kinds: Vec<EventKind> = store
        .snapshot()
        .unwrap()
        .events
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, WALKED_AND_PROMOTED);
    // One collection per tick, for every managed service at once.
    let calls = source.calls.lock().unwrap();
    assert_eq!(calls.len(), 4);
    assert_eq!(
        calls[0],
        vec!["api-stable@http".to_string(), "api-canary@http".to_string()]
    );
}

#[tokio::test(start_paused = true)]
async fn failing_canary_is_rolled_back_at_the_first_window_with_enough_requests() {
    let source = FakeSource::new(vec![
        // 30 % errors over 40 requests: above the 20 % ceiling, not beyond doubt yet.
        traffic(side(40.0, 12.0), side(360.0, 3.0)),
        traffic(side(80.0, 80.0), side(720.0, 7.0)),
    ]);
    let (c, _) = analysed_controller(source, vec![10, 50, 100]);
    start_v2(&c, "api").await;
    run_ticks(&c, 1).await;
    assert_eq!(
        c.published().apps["api"].phase,
        Phase::Progressing,
        "12 errors in 40 requests decide nothing yet"
    );
    assert_eq!(c.analyses("api")[0].analysis.verdict, Verdict::Inconclusive);
    run_ticks(&c, 1).await;
    let s = &c.published().apps["api"];
    assert_eq!((s.phase, s.canary_weight), (Phase::RolledBack, 0));
    let last = &c.analyses("api")[0];
    assert_eq!(last.analysis.verdict, Verdict::Critical);
    assert_eq!(
        last.analysis.canary_requests, 120.0,
        "the window accumulated both collections"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pass_held_at_a_closed_promotion_gate_still_consumes_its_window() {
    let source = FakeSource::new(vec![traffic(side(3000.0, 30.0), side(27000.0, 270.0))]);
    let mut config = sample_config();
    let app = config.apps.get_mut("api").unwrap();
    app.analysis.steps = vec![10];
    app.analysis.min_requests = 100;
    // Nothing listens there: the gate stays closed.
    app.hooks.confirm_promotion = Some("http://127.0.0.1:1/gate".parse().unwrap());
    let c = Controller::load(
        Arc::new(config),
        Dependencies {
            source: Some(source),
            ..Dependencies::new(Arc::new(MemStore::default()))
        },
    )
    .unwrap();
    let c = Arc::new(c);
    start_v2(&c, "api").await;
    // The first tick gathers (the evidence needs two ticks to bound the regression); every
    // pass after it is held at the gate.
    run_ticks(&c, 5).await;
    let s = &c.published().apps["api"];
    assert_eq!(
        s.awaiting_gate,
        Some(crate::rollout::Gate::ConfirmPromotion)
    );
    assert_eq!((s.phase, s.canary_weight), (Phase::Progressing, 10));
    let analyses = c.analyses("api");
    assert!(analyses.len() >= 4, "{analyses:?}");
    for a in &analyses[..3] {
        assert_eq!(a.analysis.verdict, Verdict::Pass);
        // One collection each: a late fault would not be diluted by the hold's history.
        assert_eq!(a.analysis.canary_requests, 3000.0, "{a:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_verdict_that_could_not_be_written_keeps_its_window() {
    let source = FakeSource::new(vec![
        traffic(side(200.0, 200.0), side(1800.0, 18.0)),
        Ok(Collected::new()),
    ]);
    let (c, store) = analysed_controller(source, vec![10, 50]);
    start_v2(&c, "api").await;
    store.fail_writes(true);
    run_ticks(&c, 1).await;
    assert_eq!(c.analyses("api")[0].analysis.verdict, Verdict::Critical);
    assert_eq!(c.published().apps["api"].phase, Phase::Progressing);
    store.fail_writes(false);
    // No new traffic: the rollback comes from the evidence kept.
    run_ticks(&c, 1).await;
    assert_eq!(c.published().apps["api"].phase, Phase::RolledBack);
    assert_eq!(c.analyses("api")[0].analysis.canary_requests, 200.0);
}

#[tokio::test(start_paused = true)]
async fn source_down_is_inconclusive_and_visible_and_holds_the_step() {
    let source = FakeSource::new(vec![Err(SourceError::Unreachable(
        "connection refused".into(),
    ))]);
    let (c, _) = analysed_controller(source, vec![10, 50, 100]);
    start_v2(&c, "api").await;
    run_ticks(&c, 3).await;
    let s = &c.published().apps["api"];
    assert_eq!((s.phase, s.canary_weight), (Phase::Progressing, 10));
    assert!(s.inconclusive_since_ms.is_some());
    let last = &c.analyses("api")[0];
    assert_eq!(last.analysis.verdict, Verdict::Inconclusive);
    assert!(
        last.analysis.reason.contains("connection refused"),
        "{}",
        last.analysis.reason
    );
    assert_eq!(c.analyses("api").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn idle_apps_are_not_judged() {
    let source = FakeSource::new(vec![traffic(side(3000.0, 3000.0), side(27000.0, 0.0))]);
    let (c, _) = analysed_controller(source, vec![10]);
    run_ticks(&c, 3).await;
    assert_eq!(c.published().apps["api"].phase, Phase::Idle);
    assert!(c.analyses("api").is_empty());
}

fn parse(src: &str) -> Config {
    Config::parse(src, &crate::config::tests_support::NoSecrets).unwrap()
}

const TWO_APPS: &str = r#"
[server]
listen = "127.0.0.1:9000"
[apps.api]
rule = "Host(`api`)"
slots = { blue = ["http://127.0.0.1:1"], green = ["http://127.0.0.1:2"] }
initial_stable = "blue"
[apps.web]
rule = "Host(`web`)"
slots = { a = ["http://127.0.0.1:3"], b = ["http://127.0.0.1:4"] }
initial_stable = "a"
"#;

#[tokio::test]
async fn reload_adds_changes_and_removes_apps_in_one_step() {
    let store = Arc::new(MemStore::default());
    let c = Controller::load(Arc::new(parse(TWO_APPS)), Dependencies::new(store.clone())).unwrap();
    let changed = TWO_APPS
        .replace("http://127.0.0.1:2", "http://127.0.0.1:22")
        .replace("[apps.web]\nrule = \"Host(`web`)\"\nslots = { a = [\"http://127.0.0.1:3\"], b = [\"http://127.0.0.1:4\"] }\ninitial_stable = \"a\"\n", "")
        + "[apps.shop]\nrule = \"Host(`shop`)\"\nslots = { x = [\"http://127.0.0.1:5\"], y = [\"http://127.0.0.1:6\"] }\ninitial_stable = \"x\"\n";
    let report = c.reload(parse(&changed), false).await.unwrap();
    assert_eq!(report.added, vec!["shop"]);
    assert_eq!(report.removed, vec!["web"]);
    assert_eq!(report.changed, vec!["api"]);
    let doc: serde_json::Value = serde_json::from_slice(&c.published().document).unwrap();
    assert_eq!(
        doc["http"]["services"]["api-canary"]["loadBalancer"]["servers"][0]["url"],
        "http://127.0.0.1:22"
    );
    assert!(doc["http"]["routers"]["shop"].is_object());
    assert!(doc["http"]["routers"].get("web").is_none());
    assert!(
        store.snapshot().unwrap().apps.contains_key("shop"),
        "the new app's state is persisted"
    );
    assert_eq!(c.config().apps.len(), 2);
}

#[tokio::test]
async fn the_document_re_renders_changed_apps_only_and_always_matches_a_full_render() {
    let store = Arc::new(MemStore::default());
    let c = Controller::load(Arc::new(parse(TWO_APPS)), Dependencies::new(store)).unwrap();
    let full = |c: &Controller| {
        let p = c.published();
        provider::render(&p.config, &p.apps)
    };
    assert_eq!(c.published().document, full(&c));
    let web_before = c.published().fragments["web"].clone();
    c.set_weight("api", 40).await.unwrap();
    let after = c.published();
    assert_eq!(after.document, full(&c));
    assert!(
        Arc::ptr_eq(&after.fragments["web"], &web_before),
        "an app that did not change keeps its fragment"
    );
    assert!(String::from_utf8_lossy(&after.document).contains(r#""weight":40"#));
    // A reload renders everything under the new config.
    let changed = TWO_APPS.replace("http://127.0.0.1:4", "http://127.0.0.1:44");
    c.reload(parse(&changed), false).await.unwrap();
    let reloaded = c.published();
    assert!(!Arc::ptr_eq(&reloaded.fragments["web"], &web_before));
    assert_eq!(reloaded.document, full(&c));
    assert!(String::from_utf8_lossy(&reloaded.document).contains("127.0.0.1:44"));
}

#[tokio::test]
async fn reload_refuses_what_needs_a_restart_or_loses_a_release_and_changes_nothing() {
    let c = Controller::load(
        Arc::new(parse(TWO_APPS)),
        Dependencies::new(Arc::new(MemStore::default())),
    )
    .unwrap();
    c.command(
        "web",
        Input::Start {
            version: "v2".into(),
        },
    )
    .await
    .unwrap();
    let before = c.published().document.clone();

    let moved = TWO_APPS.replace("127.0.0.1:9000", "127.0.0.1:9001");
    let e = c.reload(parse(&moved), false).await.unwrap_err();
    assert!(e.to_string().contains("server.listen changed"), "{e}");

    let without_web = TWO_APPS.split("[apps.web]").next().unwrap().to_string();
    let e = c.reload(parse(&without_web), false).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("\"web\", whose release is progressing"),
        "{e}"
    );

    let renamed = TWO_APPS
        .replace("slots = { a = [", "slots = { c = [")
        .replace("initial_stable = \"a\"", "initial_stable = \"c\"");
    let e = c.reload(parse(&renamed), false).await.unwrap_err();
    assert!(e.to_string().contains("stable on slot \"a\""), "{e}");

    assert_eq!(
        c.published().document,
        before,
        "a refused reload changes nothing"
    );
    assert_eq!(c.config().apps.len(), 2);

    let report = c.reload(parse(&without_web), true).await.unwrap();
    assert_eq!(report.removed, vec!["web"]);
}

#[tokio::test(start_paused = true)]
async fn reload_applies_new_thresholds_to_the_next_analysis() {
    // 2 % errors against 1 %: a pass with a 5-point tolerance, a fail with none.
    let source = FakeSource::new(vec![traffic(side(5000.0, 100.0), side(45000.0, 450.0))]);
    let src = "[apps.api]\nrule = \"Host(`api`)\"\nslots = { blue = [\"http://127.0.0.1:1\"], green = [\"http://127.0.0.1:2\"] }\ninitial_stable = \"blue\"\n[apps.api.analysis]\ninterval = \"10s\"\nsteps = [10, 50]\nerror_ratio_tolerance = 0.05\nfailure_limit = 1\n";
    let c = Arc::new(
        Controller::load(
            Arc::new(parse(src)),
            Dependencies {
                source: Some(source),
                ..Dependencies::new(Arc::new(MemStore::default()))
            },
        )
        .unwrap(),
    );
    start_v2(&c, "api").await;
    c.reload(parse(&src.replace("0.05", "0.001")), false)
        .await
        .unwrap();
    // The release's first tick only places the test's first bet.
    run_ticks(&c, 2).await;
    assert_eq!(
        c.published().apps["api"].phase,
        Phase::RolledBack,
        "{:?}",
        c.analyses("api")
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_release_skips_the_collection_that_began_before_it_but_decisions_lose_nothing() {
    let source = FakeSource::new(vec![traffic(side(400.0, 0.0), side(3600.0, 0.0))]);
    let (c, _) = analysed_controller(source, vec![10, 20, 50]);
    let period = c.tick_period();
    run_ticks(&c, 1).await; // idle: a collection, nothing judged
    tokio::time::advance(period / 2).await;
    start_v2(&c, "api").await;
    tokio::time::advance(period / 2).await;
    c.tick().await; // its collection began before the start: not taken
    run_ticks(&c, 2).await; // each collection counts in full, also right after a verdict
    let requests: Vec<f64> = c
        .analyses("api")
        .iter()
        .rev()
        .map(|a| a.analysis.canary_requests)
        .collect();
    assert_eq!(requests, vec![0.0, 400.0, 400.0]);
    assert_eq!(c.published().apps["api"].canary_weight, 50);
}

#[tokio::test(start_paused = true)]
async fn one_tick_writes_the_state_once_whatever_the_number_of_apps() {
    let mut src = String::new();
    for i in 0..50 {
        src.push_str(&format!(
            "[apps.a{i}]\nrule = \"Host(`a{i}`)\"\nslots = {{ blue = [\"http://127.0.0.1:1\"], green = [\"http://127.0.0.1:2\"] }}\ninitial_stable = \"blue\"\n[apps.a{i}.analysis]\ninterval = \"10s\"\nsteps = [10, 50]\n"
        ));
    }
    let store = Arc::new(MemStore::default());
    let source = FakeSource::new(vec![Err(SourceError::Unreachable("down".into()))]);
    let c = Arc::new(
        Controller::load(
            Arc::new(parse(&src)),
            Dependencies {
                source: Some(source),
                ..Dependencies::new(store.clone())
            },
        )
        .unwrap(),
    );
    for i in 0..50 {
        start_v2(&c, &format!("a{i}")).await;
    }
    let before = store.saves();
    // Every app's first inconclusive verdict changes its state (the wait starts): 50 changes.
    run_ticks(&c, 1).await;
    assert!(c
        .published()
        .apps
        .values()
        .all(|s| s.inconclusive_since_ms.is_some()));
    assert_eq!(store.saves(), before + 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_gate_on_one_app_does_not_delay_another_apps_rollback() {
    // A gate that accepts connections and never answers.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gate = format!("http://{}/gate", hanging.local_addr().unwrap());
    let src = format!(
        "{TWO_APPS}[apps.web.analysis]\ninterval = \"1s\"\nmin_requests = 10\n\
         [apps.api.analysis]\ninterval = \"1s\"\n\
         [apps.api.hooks]\nconfirm_rollout = \"{gate}\"\ntimeout = \"30s\"\n"
    );
    let mut collected = Collected::new();
    collected.insert("web-canary@http".into(), side(100.0, 100.0));
    collected.insert("web-stable@http".into(), side(900.0, 0.0));
    let source = FakeSource::new(vec![Ok(collected)]);
    let c = Arc::new(
        Controller::load(
            Arc::new(parse(&src)),
            Dependencies {
                source: Some(source),
                ..Dependencies::new(Arc::new(MemStore::default()))
            },
        )
        .unwrap(),
    );
    start_v2(&c, "api").await;
    assert_eq!(
        c.published().apps["api"].awaiting_gate,
        Some(crate::rollout::Gate::ConfirmRollout)
    );
    start_v2(&c, "web").await;
    let began = tokio::time::Instant::now();
    run_ticks(&c, 2).await;
    assert_eq!(c.published().apps["web"].phase, Phase::RolledBack);
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "the rollback waited for the other app's gate: {:?}",
        began.elapsed()
    );
    assert_eq!(
        c.published().apps["api"].awaiting_gate,
        Some(crate::rollout::Gate::ConfirmRollout),
        "the hanging gate stays closed"
    );
    drop(hanging);
}

#[tokio::test]
async fn a_reload_to_no_apps_or_dropping_every_app_is_refused_unless_forced() {
    let store = Arc::new(MemStore::default());
    let c = Controller::load(Arc::new(parse(TWO_APPS)), Dependencies::new(store.clone())).unwrap();
    let before = c.published().document.clone();
    // What an editor that truncates before it writes leaves behind.
    let empty = parse("");
    let e = c.reload(empty.clone(), false).await.unwrap_err();
    assert!(
        matches!(e, ReloadError::Refused(ReloadRefusal::NoApps)),
        "{e}"
    );
    let other = parse(
        "[apps.shop]\nrule = \"Host(`shop`)\"\n\
         slots = { a = [\"http://127.0.0.1:5\"], b = [\"http://127.0.0.1:6\"] }\ninitial_stable = \"a\"\n",
    );
    let e = c.reload(other.clone(), false).await.unwrap_err();
    assert!(e.to_string().contains("drops every app (api, web)"), "{e}");
    assert_eq!(c.published().document, before, "nothing reached Traefik");
    assert_eq!(c.config().apps.len(), 2);
    // Forced, it is what the operator asked for.
    let report = c.reload(other, true).await.unwrap();
    assert_eq!(report.added, vec!["shop"]);
    assert_eq!(report.removed, vec!["api", "web"]);
}

#[tokio::test]
async fn a_reload_that_drops_the_admin_token_is_refused_and_a_token_change_is_reported() {
    let with_token = |token: &str| {
        let mut config = parse(TWO_APPS);
        config.server.admin_token = Some(crate::config::Secret::new(token));
        config
    };
    let c = Controller::load(
        Arc::new(with_token("one")),
        Dependencies::new(Arc::new(MemStore::default())),
    )
    .unwrap();
    let e = c.reload(parse(TWO_APPS), false).await.unwrap_err();
    assert!(
        matches!(
            e,
            ReloadError::Refused(ReloadRefusal::DropsAdminToken { .. })
        ),
        "{e}"
    );
    assert!(c.config().server.admin_token.is_some());
    let report = c.reload(with_token("two"), false).await.unwrap();
    assert_eq!(report.settings, vec!["server.admin_token"]);
    assert_eq!(report.unchanged, vec!["api", "web"]);
}

#[test]
fn a_config_file_that_keeps_changing_is_not_read_half_way() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("canary-pilot.toml");
    std::fs::write(&path, TWO_APPS).unwrap();
    assert!(settled_contents(&path).is_ok());
    // A file that differs at every read (an editor still writing it): refused after ten
    // pauses of 200 ms. The reads are given, so no machine's timing decides.
    let mut version = 0;
    let mut paused = Duration::ZERO;
    let e = settled(
        || {
            version += 1;
            Some(format!("{TWO_APPS}# {version}\n").into_bytes())
        },
        |d| paused += d,
        &path,
    )
    .unwrap_err();
    assert!(e.to_string().contains("still being written"), "{e}");
    assert_eq!((version, paused), (11, Duration::from_secs(2)));
    // Truncated, then written: the empty read and the full one differ, the next two agree.
    let mut reads = vec![
        Some(Vec::new()),
        Some(b"full".to_vec()),
        Some(b"full".to_vec()),
    ]
    .into_iter();
    let mut pauses = 0;
    assert!(settled(|| reads.next().flatten(), |_| pauses += 1, &path).is_ok());
    assert_eq!(pauses, 2);
}

#[tokio::test(start_paused = true)]
async fn readiness_comes_back_by_itself_once_the_state_can_be_written_again() {
    let store = Arc::new(MemStore::default());
    let c = Arc::new(controller(store.clone()));
    store.fail_writes(true);
    assert!(c.set_weight("api", 10).await.is_err());
    assert!(c.persist_error().is_some());
    run_ticks(&c, 1).await;
    assert!(c.persist_error().is_some(), "still failing");
    store.fail_writes(false);
    // No command, no verdict: the loop's own retry clears it.
    run_ticks(&c, 1).await;
    assert!(c.persist_error().is_none());
    assert_eq!(store.snapshot().unwrap().apps["api"].canary_weight, 0);
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_release_records_every_decision_and_changes_no_weight() {
    let source = FakeSource::new(vec![traffic(side(3000.0, 30.0), side(27000.0, 270.0))]);
    let (c, store) = analysed_controller_with(source, vec![10, 50], |app| {
        app.analysis.dry_run = true;
    });
    // The team's own process serves 20 % to the canary by hand.
    c.set_weight("api", 20).await.unwrap();
    let served_document = c.published().document.clone();
    start_v2(&c, "api").await;
    run_ticks(&c, 4).await;

    let published = c.published();
    let served = &published.apps["api"];
    assert_eq!(
        (
            served.phase,
            served.canary_weight,
            served.stable_slot.as_str()
        ),
        (Phase::Idle, 20, "blue"),
        "the served state is the one set by hand"
    );
    assert_eq!(published.document, served_document, "Traefik saw no change");
    let dry = &published.dry_runs["api"];
    assert_eq!(dry.phase, Phase::Succeeded, "{dry:?}");
    assert_eq!(dry.stable_version.as_deref(), Some("v2"));

    let saved = store.snapshot().unwrap();
    assert_eq!(
        saved.dry_runs["api"], *dry,
        "the dry run survives a restart"
    );
    let (by_hand, decided) = saved.events.split_at(1);
    assert!(!by_hand[0].dry_run);
    let kinds: Vec<EventKind> = decided.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, WALKED_AND_PROMOTED);
    for e in decided {
        assert!(e.dry_run, "{e:?}");
        assert!(
            e.reason.starts_with("dry run, nothing served changed: "),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn traefik_counts_as_unreadable_only_after_three_failed_read_backs_in_a_row() {
    // A port nobody listens on: every read-back fails at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = sample_config();
    config.traefik.api_url = Some(format!("http://{closed}/").parse().unwrap());
    config.traefik.check_interval = Duration::from_millis(500);
    let c = Controller::load(
        Arc::new(config),
        Dependencies::new(Arc::new(MemStore::default())),
    )
    .unwrap();
    for _ in 0..2 {
        c.check_traefik().await;
        assert_eq!(
            c.traefik_check().error,
            None,
            "one failure now and then is no news"
        );
    }
    c.check_traefik().await;
    let error = c
        .traefik_check()
        .error
        .expect("the third failure in a row counts");
    assert!(error.contains("unreachable"), "{error}");
    assert!(c
        .metrics()
        .render()
        .contains("canary_pilot_traefik_check_up 0"));
}

fn tasks(blue: &[&str], green: &[&str]) -> swarm::Tasks {
    let ips = |v: &[&str]| v.iter().map(|s| s.parse().unwrap()).collect();
    swarm::Tasks {
        running: BTreeMap::from([
            ("shop_api-blue".to_string(), ips(blue)),
            ("shop_api-green".to_string(), ips(green)),
        ]),
        ..swarm::Tasks::default()
    }
}

fn servers(c: &Controller, role: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_slice(&c.published().document).unwrap();
    doc["http"]["services"][format!("api-{role}")]["loadBalancer"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["url"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn service_slots_follow_the_tasks_and_an_unreadable_engine_changes_nothing() {
    let store = Arc::new(MemStore::default());
    let config = Config::parse(
        crate::config::tests_support::SERVICE_SLOTS,
        &crate::config::NoSecrets,
    )
    .unwrap();
    let c = Controller::load(Arc::new(config.clone()), Dependencies::new(store.clone())).unwrap();
    c.set_weight("api", 20).await.unwrap();
    let saves = store.saves();
    assert!(servers(&c, "stable").is_empty(), "nothing seen yet");

    c.apply_tasks(tasks(&["10.0.1.3", "10.0.1.4"], &["10.0.1.9"]))
        .await;
    assert_eq!(
        servers(&c, "stable"),
        ["http://10.0.1.3:8080", "http://10.0.1.4:8080"]
    );
    assert_eq!(servers(&c, "canary"), ["http://10.0.1.9:8080"]);
    assert_eq!(c.published().apps["api"].canary_weight, 20, "weights stay");
    assert_eq!(
        store.saves(),
        saves,
        "servers are not state: nothing written"
    );

    // The engine cannot be read: the servers last seen stay, and readiness says why.
    let before = c.published().document.clone();
    c.engine_failed("cannot reach the Docker engine at /var/run/docker.sock".into());
    assert_eq!(c.published().document, before);
    assert!(c.engine_error().unwrap().contains("cannot reach"));
    // Read again, unchanged: ready again, the same bytes.
    c.apply_tasks(tasks(&["10.0.1.3", "10.0.1.4"], &["10.0.1.9"]))
        .await;
    assert_eq!(c.engine_error(), None);
    assert_eq!(c.published().document, before);

    // Every canary task gone: its load balancer has no servers, the weighted service still
    // names both.
    c.apply_tasks(tasks(&["10.0.1.3", "10.0.1.4"], &[])).await;
    assert!(servers(&c, "canary").is_empty());
    let doc: serde_json::Value = serde_json::from_slice(&c.published().document).unwrap();
    assert_eq!(
        doc["http"]["services"]["api"]["weighted"]["services"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A reload of the same file keeps the servers seen and changes no app.
    let report = c.reload(config, false).await.unwrap();
    assert!(
        report.changed.is_empty() && report.settings.is_empty(),
        "{report:?}"
    );
    assert_eq!(servers(&c, "stable").len(), 2);
    assert!(c.swarm_problems().is_empty());
}
