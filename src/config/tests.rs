use super::tests_support::{sample_config, NoSecrets};
use super::*;

fn issues(src: &str) -> Vec<ConfigIssue> {
    Config::parse(src, &NoSecrets).expect_err("config must be refused")
}

fn find<'a>(issues: &'a [ConfigIssue], key: &str) -> &'a ConfigIssue {
    issues
        .iter()
        .find(|i| i.key == key)
        .unwrap_or_else(|| panic!("no issue for {key}: {issues:#?}"))
}

const MINIMAL: &str = r#"
[apps.api]
rule = "Host(`api.localhost`)"
slots = { blue = ["http://127.0.0.1:1"], green = ["http://127.0.0.1:2"] }
initial_stable = "blue"
"#;

#[test]
fn example_config_is_valid_and_complete() {
    let c = sample_config();
    let api = &c.apps["api"];
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(api.slots.len(), 2);
    assert_eq!(api.initial_stable, "blue");
    assert_eq!(api.pin_cookie.as_deref(), Some("canary"));
    assert_eq!(api.sticky_cookie.as_ref().unwrap().name, "api_lb");
    assert_eq!(api.analysis.steps, vec![5, 10, 25, 50, 100]);
    assert_eq!(api.analysis.max_latency, Some(Duration::from_millis(500)));
    assert_eq!(api.analysis.max_inconclusive, Duration::from_secs(600));
    assert_eq!(c.metrics.source, MetricsSourceKind::Traefik);
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = Config::parse(MINIMAL, &NoSecrets).unwrap();
    let api = &c.apps["api"];
    assert_eq!(api.entry_points, vec!["web"]);
    assert_eq!(
        api.pin_header,
        PinHeader {
            name: "X-Canary".into(),
            value: "true".into()
        }
    );
    assert_eq!(api.priority, 10);
    assert_eq!(api.analysis.interval, Duration::from_secs(10));
    assert_eq!(api.analysis.steps, vec![5, 10, 25, 50, 100]);
    assert_eq!(api.analysis.min_requests, 100);
    assert_eq!(api.analysis.failure_limit, 3);
    assert_eq!(
        c.server.state_file,
        PathBuf::from("canary-pilot-state.json")
    );
    assert!(c.server.admin_token.is_none());
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let src = format!("{MINIMAL}colour = \"red\"\n");
    let all = issues(&src);
    let i = find(&all, "apps.api.colour");
    assert_eq!(i.line, Some(6));
    assert!(
        i.message.contains("unknown field `colour`"),
        "{}",
        i.message
    );

    let all = issues("[server]\nlisen = \"0.0.0.0:1\"\n");
    assert_eq!(find(&all, "server.lisen").line, Some(2));

    let all = issues("[sever]\nlisten = \"0.0.0.0:1\"\n");
    assert_eq!(find(&all, "sever").line, Some(1));
}

#[test]
fn every_error_is_reported_at_once() {
    let src = r#"
[server]
listen = "nowhere"

[metrics]
source = "graphite"

[apps.api]
rule = "Host(`a`)"
slots = { blue = ["http://a:1"], green = ["ftp://b"] }
initial_stable = "red"

[apps.api.analysis]
steps = [5, 120, 50]
interval = "fast"
"#;
    let all = issues(src);
    assert_eq!(find(&all, "server.listen").line, Some(3));
    assert_eq!(find(&all, "metrics.source").line, Some(6));
    assert_eq!(find(&all, "apps.api.slots.green[0]").line, Some(10));
    assert_eq!(find(&all, "apps.api.initial_stable").line, Some(11));
    let step = find(&all, "apps.api.analysis.steps[1]");
    assert_eq!(step.line, Some(14));
    assert!(
        step.message.contains("= 120: weights must be 1..=100"),
        "{}",
        step.message
    );
    assert!(find(&all, "apps.api.analysis.steps[2]")
        .message
        .contains("ascending"));
    assert!(find(&all, "apps.api.analysis.interval")
        .message
        .contains("not a duration"));
    assert_eq!(all.len(), 7, "{all:#?}");
}

#[test]
fn type_errors_name_the_key_and_line() {
    let src = MINIMAL.replace(
        "initial_stable = \"blue\"",
        "initial_stable = \"blue\"\npriority = \"high\"",
    );
    let all = issues(&src);
    let i = find(&all, "apps.api.priority");
    assert_eq!(i.line, Some(6));
    assert!(i.message.contains("invalid type"), "{}", i.message);
}

#[test]
fn syntax_error_has_a_line() {
    let all = issues("[server]\nlisten = \"a\n");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].line, Some(2));
    assert!(
        all[0].message.starts_with("invalid TOML"),
        "{}",
        all[0].message
    );
}

#[test]
fn slots_must_be_exactly_two() {
    let src = MINIMAL.replace(
        r#"slots = { blue = ["http://127.0.0.1:1"], green = ["http://127.0.0.1:2"] }"#,
        r#"slots = { blue = ["http://127.0.0.1:1"] }"#,
    );
    assert!(find(&issues(&src), "apps.api.slots")
        .message
        .contains("exactly two"));
}

#[test]
fn step_weight_generates_steps() {
    let src = format!("{MINIMAL}[apps.api.analysis]\nstep_weight = 20\nmax_weight = 60\n");
    let c = Config::parse(&src, &NoSecrets).unwrap();
    assert_eq!(c.apps["api"].analysis.steps, vec![20, 40, 60]);

    let both = format!("{MINIMAL}[apps.api.analysis]\nstep_weight = 20\nsteps = [10]\n");
    assert!(find(&issues(&both), "apps.api.analysis.steps")
        .message
        .contains("not both"));

    let bad = format!("{MINIMAL}[apps.api.analysis]\nstep_weight = 20\nmax_weight = 10\n");
    find(&issues(&bad), "apps.api.analysis.max_weight");
}

#[test]
fn analysis_limits_are_checked() {
    let src = format!(
        "{MINIMAL}[apps.api.analysis]\nmin_requests = 0\nmax_error_ratio = 1.5\nlatency_quantile = 1.0\nmax_latency_ratio = 0.5\nfailure_limit = 0\nmax_latency = \"soon\"\n"
    );
    let all = issues(&src);
    for key in [
        "min_requests",
        "max_error_ratio",
        "latency_quantile",
        "max_latency_ratio",
        "failure_limit",
        "max_latency",
    ] {
        find(&all, &format!("apps.api.analysis.{key}"));
    }
}

#[test]
fn generated_names_must_not_collide_across_apps() {
    let src = format!(
        "{MINIMAL}\n[apps.api-canary]\nrule = \"Host(`b`)\"\nslots = {{ a = [\"http://h:1\"], b = [\"http://h:2\"] }}\ninitial_stable = \"a\"\n"
    );
    let all = issues(&src);
    assert!(
        all.iter().any(|i| i.message.contains("\"api-canary\"")),
        "{all:#?}"
    );
}

#[test]
fn bad_app_and_header_names_are_refused() {
    let src = MINIMAL.replace("[apps.api]", "[apps.\"my app\"]");
    find(&issues(&src), "apps.my app");
    let src = format!("{MINIMAL}pin_header = {{ name = \"X Canary\" }}\n");
    find(&issues(&src), "apps.api.pin_header.name");
    let src = format!("{MINIMAL}pin_cookie = \"a;b\"\n");
    find(&issues(&src), "apps.api.pin_cookie");
}

struct Files(Vec<(&'static str, &'static str)>, Option<&'static str>);
impl SecretSource for Files {
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        self.0
            .iter()
            .find(|(p, _)| Path::new(p) == path)
            .map(|(_, c)| c.to_string())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
    }
    fn env(&self, name: &str) -> Option<String> {
        (name == ADMIN_TOKEN_ENV)
            .then(|| self.1.map(str::to_string))
            .flatten()
    }
}

#[test]
fn tokens_come_from_files_or_the_environment() {
    let src = format!("[server]\nadmin_token_file = \"/run/secrets/admin\"\n{MINIMAL}");
    let c = Config::parse(&src, &Files(vec![("/run/secrets/admin", "s3cret\n")], None)).unwrap();
    assert_eq!(c.server.admin_token.as_ref().unwrap().expose(), "s3cret");
    assert!(
        !format!("{:?}", c.server).contains("s3cret"),
        "Debug must not print the token"
    );

    let missing = Config::parse(&src, &Files(vec![], None)).unwrap_err();
    assert!(find(&missing, "server.admin_token_file")
        .message
        .contains("cannot read"));

    let empty = Config::parse(&src, &Files(vec![("/run/secrets/admin", " \n")], None)).unwrap_err();
    assert!(find(&empty, "server.admin_token_file")
        .message
        .contains("empty"));

    let c = Config::parse(MINIMAL, &Files(vec![], Some("from-env"))).unwrap();
    assert_eq!(c.server.admin_token.unwrap().expose(), "from-env");
}

#[test]
fn steps_need_a_weight_below_100() {
    let src = format!("{MINIMAL}[apps.api.analysis]\nsteps = [100]\n");
    assert!(find(&issues(&src), "apps.api.analysis.steps")
        .message
        .contains("below 100"));
    let ok = format!("{MINIMAL}[apps.api.analysis]\nsteps = [50, 100]\n");
    assert_eq!(
        Config::parse(&ok, &NoSecrets).unwrap().apps["api"]
            .analysis
            .steps,
        vec![50, 100]
    );
}
