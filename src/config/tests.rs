use std::path::{Path, PathBuf};
use std::time::Duration;

use super::tests_support::{sample_config, NoSecrets, SERVICE_SLOTS};
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
    assert_eq!(api.analysis.min_requests, 50);
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

/// The issues' keys, in the order reported.
fn keys(issues: &[ConfigIssue]) -> Vec<&str> {
    issues.iter().map(|i| i.key.as_str()).collect()
}

#[test]
fn a_file_with_six_mistakes_reports_all_six_in_one_run() {
    let src = r#"
[server]
listen = "0.0.0.0:9000"
admin_token = "s3cret"

[metrics]
source = "prometheus"
interval = "5s"

[apps.api]
rule = "Host(`api.example.com`)"
slots = { blue = ["http://api-blue:8080"], green = ["api-green:8080"] }
initial_stable = "blue"

[apps.api.analysis]
intervall = "10s"
max_error_ratio = 5
"#;
    let all = issues(src);
    assert_eq!(
        keys(&all),
        [
            "server.admin_token",
            "metrics.prometheus_url",
            "metrics.interval",
            "apps.api.slots.green[0]",
            "apps.api.analysis.intervall",
            "apps.api.analysis.max_error_ratio",
        ],
        "{all:#?}"
    );
    let lines: Vec<Option<usize>> = all.iter().map(|i| i.line).collect();
    assert_eq!(
        lines,
        [Some(4), Some(6), Some(8), Some(12), Some(16), Some(17)]
    );
}

#[test]
fn an_unknown_key_and_a_bad_value_in_one_table_are_both_reported() {
    let src = format!("{MINIMAL}[apps.api.analysis]\nintervall = \"10s\"\nfailure_limit = 0\n");
    let all = issues(&src);
    assert_eq!(
        keys(&all),
        [
            "apps.api.analysis.intervall",
            "apps.api.analysis.failure_limit"
        ],
        "{all:#?}"
    );
}

#[test]
fn unknown_keys_suggest_the_closest_valid_key() {
    let src = format!("{MINIMAL}[apps.api.analysis]\nintervall = \"10s\"\n");
    assert_eq!(
        find(&issues(&src), "apps.api.analysis.intervall").message,
        "unknown field `intervall`; did you mean `interval`?"
    );
    let all = issues("[sever]\nlisten = \"0.0.0.0:1\"\n");
    assert_eq!(
        find(&all, "sever").message,
        "unknown section `sever`; did you mean `server`?"
    );
}

#[test]
fn unknown_keys_without_a_close_match_list_the_valid_ones() {
    let all = issues("[server]\nport = 9000\n");
    assert_eq!(
        find(&all, "server.port").message,
        "unknown field `port`; expected `listen`, `state_file`, `admin_token_file`, \
         `provider_token_file` or `protect_reads`"
    );
}

#[test]
fn float_ranges_are_printed_as_a_person_writes_them() {
    let src = format!(
        "{MINIMAL}[apps.api.analysis]\nmax_error_ratio = 1.5\nerror_ratio_tolerance = -0.1\nlatency_quantile = 1.0\nmax_latency_ratio = 0.5\n"
    );
    let all = issues(&src);
    let message = |key: &str| {
        find(&all, &format!("apps.api.analysis.{key}"))
            .message
            .clone()
    };
    assert_eq!(
        message("max_error_ratio"),
        "= 1.5: must be greater than 0 and at most 1"
    );
    assert_eq!(
        message("error_ratio_tolerance"),
        "\"-0.1\" is not a tolerance: give points as a ratio (0.01 = canary <= stable + 1 point) \
         or a share of stable as a percentage (\"50%\" = canary <= 1.5 x stable)"
    );
    assert_eq!(
        message("latency_quantile"),
        "= 1: must be greater than 0 and less than 1"
    );
    assert_eq!(message("max_latency_ratio"), "= 0.5: must be at least 1");
}

#[test]
fn integer_ranges_keep_the_inclusive_range_notation() {
    let src = format!(
        "{MINIMAL}[apps.api.analysis]\nfailure_limit = 0\nmin_requests = 0\n\n[[notifiers]]\nname = \"ops\"\nkind = \"generic\"\nurl = \"http://h\"\nretries = 11\n"
    );
    let all = issues(&src);
    assert_eq!(
        find(&all, "apps.api.analysis.failure_limit").message,
        "= 0: must be 1..=1000"
    );
    assert_eq!(
        find(&all, "apps.api.analysis.min_requests").message,
        "= 0: must be at least 1"
    );
    assert_eq!(
        find(&all, "notifiers[0].retries").message,
        "= 11: must be 0..=10"
    );
}

#[test]
fn nan_infinite_and_overflowing_numbers_are_refused() {
    for (value, message) in [
        ("nan", "= NaN: must be greater than 0 and at most 1"),
        ("inf", "= inf: must be greater than 0 and at most 1"),
        ("1e999", "1e999 is too large a number"),
    ] {
        let src = format!("{MINIMAL}[apps.api.analysis]\nmax_error_ratio = {value}\n");
        assert_eq!(
            find(&issues(&src), "apps.api.analysis.max_error_ratio").message,
            message
        );
    }
}

#[test]
fn a_refused_value_is_reported_once_and_its_neighbours_are_still_checked() {
    // `rule` of the wrong type is not "required" too; a bad slot list does not make the slots
    // "not two" nor `initial_stable` "not a slot"; a bad pin header name is not "missing".
    let src = r#"
[apps.api]
rule = 5
slots = { blue = ["http://a:1"], green = 7 }
initial_stable = "blue"
pin_header = { name = 3 }
priority = "high"
pin_cookie = "a;b"
"#;
    let all = issues(src);
    assert_eq!(
        keys(&all),
        [
            "apps.api.rule",
            "apps.api.slots.green",
            "apps.api.pin_header.name",
            "apps.api.priority",
            "apps.api.pin_cookie",
        ],
        "{all:#?}"
    );
    assert!(
        all[0].message.starts_with("invalid type: integer `5`"),
        "{all:#?}"
    );
    assert!(
        all[1].message.starts_with(
            "invalid type: integer `7`, expected a list of server URLs or a Swarm service"
        ),
        "{all:#?}"
    );
}

#[test]
fn wrong_shapes_say_what_was_expected() {
    let all = issues("[notifiers]\nname = \"ops\"\n");
    assert_eq!(
        find(&all, "notifiers").message,
        "must be an array, not a table"
    );
    let all = issues("server = 5\n");
    assert_eq!(
        find(&all, "server").message,
        "must be a table, not an integer"
    );
}

#[test]
fn required_keys_are_named_on_their_tables_line() {
    let all = issues("\n[apps.api]\npriority = 5\n\n[[notifiers]]\nurl = \"http://h\"\n");
    for (key, line) in [
        ("apps.api.rule", 2),
        ("apps.api.slots", 2),
        ("apps.api.initial_stable", 2),
        ("notifiers[0].name", 5),
        ("notifiers[0].kind", 5),
    ] {
        let i = find(&all, key);
        assert_eq!((i.line, i.message.as_str()), (Some(line), "is required"));
    }
    assert_eq!(all.len(), 5, "{all:#?}");
}

#[test]
fn every_issue_of_a_bad_file_has_a_line() {
    let src = r#"
[server]
listen = 1
[metrics]
source = "graphite"
traefik_urls = ["x"]
[apps.web]
rule = ""
slots = { a = [] }
initial_stable = "b"
entry_points = []
[apps.web.hooks]
rollback = "nope"
timeout = "later"
[[notifiers]]
name = "n"
kind = "slack"
events = ["sent"]
"#;
    let all = issues(src);
    assert!(all.len() >= 10, "{all:#?}");
    for i in &all {
        assert!(i.line.is_some(), "{i} has no line");
    }
}

#[test]
fn choices_suggest_the_closest_one() {
    let src = format!("[metrics]\nsource = \"promethues\"\n{MINIMAL}");
    assert_eq!(
        find(&issues(&src), "metrics.source").message,
        "\"promethues\" is not a source; did you mean \"prometheus\"?"
    );
}

#[test]
fn secret_files_are_read_the_same_way_for_every_key() {
    let src = format!(
        "[server]\nprovider_token_file = \"/s/missing\"\n{MINIMAL}\n[[notifiers]]\nname = \"n\"\nkind = \"generic\"\nurl_file = \"/s/url\"\nsecret_file = \"/s/empty\"\n"
    );
    let secrets = Files(
        vec![
            ("/s/url", "https://hooks.example.com/x\n"),
            ("/s/empty", "\n"),
        ],
        None,
    );
    let all = Config::parse(&src, &secrets).unwrap_err();
    assert!(find(&all, "server.provider_token_file")
        .message
        .starts_with("cannot read /s/missing"));
    assert_eq!(
        find(&all, "notifiers[0].secret_file").message,
        "/s/empty is empty"
    );
    assert_eq!(all.len(), 2, "{all:#?}");

    let ok = src.replace("provider_token_file = \"/s/missing\"\n", "");
    let secrets = Files(
        vec![
            ("/s/url", "https://hooks.example.com/x\n"),
            ("/s/empty", "k"),
        ],
        None,
    );
    let c = Config::parse(&ok, &secrets).unwrap();
    assert_eq!(c.notifiers[0].url.expose(), "https://hooks.example.com/x");
}

#[test]
fn a_secret_webhook_url_is_never_echoed() {
    let src = format!(
        "{MINIMAL}\n[[notifiers]]\nname = \"n\"\nkind = \"slack\"\nurl_file = \"/s/url\"\n"
    );
    let all = Config::parse(
        &src,
        &Files(vec![("/s/url", "hooks.slack.com/T0/SECRET")], None),
    )
    .unwrap_err();
    assert_eq!(
        find(&all, "notifiers[0].url").message,
        "must be an http:// or https:// URL with a host"
    );
    assert!(!format!("{all:?}").contains("SECRET"));
}

#[test]
fn configs_compare_with_eq() {
    let a = sample_config();
    assert_eq!(a, sample_config());
    let mut b = sample_config();
    b.apps.get_mut("api").unwrap().analysis.min_requests += 1;
    assert_ne!(a, b);
    let mut c = sample_config();
    c.notifiers.clear();
    c.server.protect_reads = !a.server.protect_reads;
    assert_ne!(a, c);
}

/// The keys of a raw struct, as serde knows them (from `deny_unknown_fields`' list).
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    struct Fields;
    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl std::fmt::Display for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl std::error::Error for Found {}
    impl serde::de::Error for Found {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Found(&[])
        }
    }
    impl<'de> serde::Deserializer<'de> for Fields {
        type Error = Found;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    match T::deserialize(Fields) {
        Ok(_) => &[],
        Err(Found(fields)) => fields,
    }
}

#[test]
fn every_key_is_documented_in_docs_config_md() {
    let docs = include_str!("../../docs/config.md");
    let sections: [(&str, &[&str]); 13] = [
        ("", fields_of::<raw::RawConfig>()),
        ("", fields_of::<raw::RawServer>()),
        ("", fields_of::<raw::RawMetrics>()),
        ("queries.", fields_of::<raw::RawQueries>()),
        ("", fields_of::<raw::RawNotifier>()),
        ("", fields_of::<raw::RawApp>()),
        ("", fields_of::<raw::RawStickyFull>()),
        ("", fields_of::<raw::RawTls>()),
        ("", fields_of::<raw::RawAnalysis>()),
        ("", fields_of::<raw::RawHooks>()),
        ("", fields_of::<raw::RawSwarm>()),
        ("", fields_of::<raw::RawSlotService>()),
        ("", fields_of::<raw::RawManaged>()),
    ];
    for (prefix, fields) in sections {
        assert!(!fields.is_empty());
        for key in fields {
            let documented = [
                format!("| `{prefix}{key}` |"),
                format!("| `{prefix}{key}."),
                format!("## `[{key}]`"),
                format!("## `[{key}.NAME]`"),
                format!("## `[apps.NAME.{key}]`"),
                format!("## `[[{key}]]`"),
                format!("`{{ {key}"),
                format!(", {key}"),
            ];
            assert!(
                documented.iter().any(|d| docs.contains(d.as_str())),
                "`{prefix}{key}` is not documented in docs/config.md"
            );
        }
    }
}

#[test]
fn protect_reads_without_an_admin_token_is_refused() {
    let issues = issues("[server]\nprotect_reads = true\n");
    let i = find(&issues, "server.protect_reads");
    assert!(i.message.contains("needs an admin token"), "{i}");
}

#[test]
fn a_rule_that_is_not_one_whole_expression_is_refused_with_its_line() {
    let src = "[apps.a]\nrule = \"Host(`a.localhost`)) || (Host(`a.localhost`)\"\n\
               slots = { x = [\"http://127.0.0.1:1\"], y = [\"http://127.0.0.1:2\"] }\n\
               initial_stable = \"x\"\n";
    let issues = issues(src);
    let i = find(&issues, "apps.a.rule");
    assert!(i.message.contains("after a complete expression"), "{i}");
    assert_eq!(i.line, Some(2), "{i}");
}

#[test]
fn traefik_read_back_is_off_by_default_and_its_keys_are_checked() {
    let c = Config::parse(MINIMAL, &NoSecrets).unwrap();
    assert_eq!(c.traefik.api_url, None);
    assert_eq!(c.traefik.check_interval, Duration::from_secs(5));
    let found = issues(&format!(
        "{MINIMAL}\n[traefik]\napi_url = \"ftp://traefik\"\ncheck_interval = \"100ms\"\n"
    ));
    assert!(find(&found, "traefik.api_url").message.contains("http://"));
    assert!(find(&found, "traefik.check_interval")
        .message
        .contains("at least 500ms"));
}

#[test]
fn a_slot_may_be_a_swarm_service_with_its_port() {
    let c = Config::parse(SERVICE_SLOTS, &NoSecrets).unwrap();
    let api = &c.apps["api"];
    assert_eq!(api.slot_services["blue"].service, "shop_api-blue");
    assert_eq!(api.slot_services["green"].port, 8080);
    assert!(api.slots["blue"].is_empty(), "servers come from the tasks");
    assert_eq!(c.swarm.socket, Path::new("/var/run/docker.sock"));
    assert_eq!(c.swarm.poll_interval, Duration::from_secs(2));
    assert_eq!(c.swarm.traefik, None);
    // Without Swarm services, [swarm] is not used and needs nothing.
    assert!(Config::parse(MINIMAL, &NoSecrets)
        .unwrap()
        .swarm_services()
        .is_empty());
}

#[test]
fn swarm_mistakes_are_reported_at_their_keys_in_one_run() {
    let src = r#"
[metrics]
source = "prometheus"
prometheus_url = "http://prometheus:9090"

[swarm]
socket = "docker.sock"
poll_interval = "10ms"
traefik_services = ["shop traefik"]
traefik_metrics_port = 0

[apps.api]
rule = "Host(`api.localhost`)"
initial_stable = "blue"
slots = { blue = { service = "-api", port = 70000 }, green = ["http://10.0.0.1:8080"] }
"#;
    let all = issues(src);
    assert!(
        find(&all, "swarm.socket").message.contains("absolute path"),
        "{all:#?}"
    );
    assert!(
        find(&all, "swarm.poll_interval").message.contains("200ms"),
        "{all:#?}"
    );
    assert!(find(&all, "swarm.traefik_services[0]")
        .message
        .contains("not a Swarm service name"));
    assert!(find(&all, "swarm.traefik_metrics_port")
        .message
        .contains("1..=65535"));
    assert!(find(&all, "apps.api.slots.blue.service")
        .message
        .contains("not a Swarm service name"));
    assert!(find(&all, "apps.api.slots.blue.port")
        .message
        .contains("1..=65535"));
    let typo = SERVICE_SLOTS.replace("port = 8080 }, green", "prot = 8080 }, green");
    let all = issues(&typo);
    assert!(find(&all, "apps.api.slots.blue.prot")
        .message
        .contains("did you mean `port`?"));
    assert_eq!(
        find(&all, "apps.api.slots.blue.port").message,
        "is required"
    );

    // A service slot without a network, and Traefik's tasks beside a source that cannot use them.
    let src = r#"
[metrics]
source = "prometheus"
prometheus_url = "http://prometheus:9090"

[swarm]
traefik_services = ["shop_traefik"]

[apps.api]
rule = "Host(`api.localhost`)"
initial_stable = "blue"
slots = { blue = { service = "shop_api-blue", port = 8080 }, green = ["http://10.0.0.1:8080"] }
"#;
    let all = issues(src);
    let network = find(&all, "swarm.network");
    assert!(
        network.message.contains("apps.api.slots.blue"),
        "{network:?}"
    );
    assert!(find(&all, "swarm.traefik_services")
        .message
        .contains("\"traefik\" only"));

    // Traefik's tasks and a hand-written URL list: one of them.
    let src = format!(
        "[metrics]\ntraefik_urls = [\"http://t:8082/metrics\"]\n{}",
        SERVICE_SLOTS.replace(
            "[swarm]\n",
            "[swarm]\ntraefik_services = [\"shop_traefik\"]\n"
        )
    );
    assert!(find(&issues(&src), "swarm.traefik_services")
        .message
        .contains("keep one of them"));
}

#[test]
fn a_swarm_managed_app_names_its_service_and_nothing_of_slots() {
    let src = r#"
[swarm]
network = "shop_net"

[apps.shop]
rule = "Host(`shop.localhost`)"
service = { name = "shop_api", port = 8080 }
"#;
    let c = Config::parse(src, &NoSecrets).unwrap();
    let shop = &c.apps["shop"];
    let m = shop.managed.as_ref().unwrap();
    assert_eq!(
        (m.service.as_str(), m.primary.as_str(), m.port),
        ("shop_api", "shop_api-primary", 8080)
    );
    assert_eq!(shop.initial_stable, PRIMARY_SLOT);
    assert_eq!(shop.slot_services[PRIMARY_SLOT].service, "shop_api-primary");
    assert_eq!(shop.slot_services[CANARY_SLOT].service, "shop_api");

    let both = src.replace(
        "service = {",
        "initial_stable = \"blue\"\nslots = { blue = [\"http://a:1\"], green = [\"http://b:1\"] }\nservice = {",
    );
    let all = issues(&both);
    assert!(find(&all, "apps.shop.service")
        .message
        .contains("either two slots or one Swarm service"));
    assert!(find(&all, "apps.shop.initial_stable")
        .message
        .contains("remove initial_stable"));

    let long = src.replace("shop_api", &"a".repeat(60));
    assert!(find(&issues(&long), "apps.shop.service.name")
        .message
        .contains("at most 55"));

    let read_only = src.replace("[swarm]\n", "[swarm]\nread_only = true\n");
    let all = issues(&read_only);
    let i = find(&all, "swarm.read_only");
    assert!(i.message.contains("apps.shop.service"), "{i:?}");
    let labels = "[swarm]\nnetwork = \"n\"\nlabels = true\nread_only = true\n";
    assert!(find(&issues(labels), "swarm.read_only")
        .message
        .contains("swarm.labels"));
    let no_network = "[swarm]\nlabels = true\n";
    assert!(find(&issues(no_network), "swarm.network")
        .message
        .contains("swarm.labels"));
    // Apps from labels: a file without apps of its own is fine.
    assert!(Config::parse("[swarm]\nnetwork = \"n\"\nlabels = true\n", &NoSecrets).is_ok());
}

#[test]
fn swarm_defaults_are_checked_as_app_keys_at_their_own_keys() {
    let ok = "[swarm]\nnetwork = \"n\"\nlabels = true\n[swarm.defaults]\nentry_points = [\"web\"]\n[swarm.defaults.analysis]\ninterval = \"30s\"\n";
    let c = Config::parse(ok, &NoSecrets).unwrap();
    assert!(c.swarm.defaults.contains_key("analysis"));
    let bad = "[swarm]\nnetwork = \"n\"\nlabels = true\n[swarm.defaults.analysis]\nintervl = \"30s\"\nsteps = [120]\n";
    let all = issues(bad);
    let typo = find(&all, "swarm.defaults.analysis.intervl");
    assert!(
        typo.message.contains("did you mean `interval`?"),
        "{typo:?}"
    );
    assert_eq!(typo.line, Some(5), "at its own line: {typo:?}");
    let slots = "[swarm]\nnetwork = \"n\"\n[swarm.defaults]\nslots = { a = [\"http://a\"] }\n";
    assert!(find(&issues(slots), "swarm.defaults.slots")
        .message
        .contains("is not a default"));
}
