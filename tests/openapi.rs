//! docs/openapi.yaml against the code, without Python: the spec has exactly the routes of
//! `api::ROUTES` with their methods, mutating calls need the admin token, every route that
//! needs the loaded state lists its `503`, and the spec's error names are exactly the ones the
//! daemon answers with. tests/api_schema.sh checks the answers themselves, with schemathesis.
//!
//! The spec is read line by line (no YAML parser in the dependency tree): paths sit at two
//! spaces under `paths:`, their methods at four, and an operation is the lines below its method.

use std::collections::BTreeSet;
use std::path::Path;

use axum::http::{Method, StatusCode};
use canary_pilot::api::{ApiError, Verb, ROUTES};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// One operation of the spec: its method (upper case), path and the lines that describe it.
struct Operation {
    method: String,
    path: String,
    lines: Vec<String>,
}

fn spec() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.yaml");
    std::fs::read_to_string(path).expect("docs/openapi.yaml")
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The operations under `paths:`.
fn operations(spec: &str) -> Vec<Operation> {
    let mut ops: Vec<Operation> = Vec::new();
    let mut in_paths = false;
    let mut path: Option<String> = None;
    for line in spec.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if indent(line) == 0 {
            in_paths = line.trim_end() == "paths:";
            path = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        let key = line.trim().trim_end_matches(':');
        match indent(line) {
            2 => {
                assert!(
                    key.starts_with('/') && line.trim_end().ends_with(':'),
                    "under paths:, a path was expected: {line:?}"
                );
                path = Some(key.to_string());
            }
            4 if METHODS.contains(&key) => {
                let path = path.clone().expect("a method under a path");
                ops.push(Operation {
                    method: key.to_uppercase(),
                    path,
                    lines: Vec::new(),
                });
            }
            4 => {} // a path-level key such as `parameters:`
            _ => {
                if let Some(op) = ops.last_mut() {
                    op.lines.push(line.to_string());
                }
            }
        }
    }
    ops
}

impl Operation {
    /// The lines of the operation's `key:` block.
    fn block(&self, key: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut inside: Option<usize> = None;
        for line in &self.lines {
            match inside {
                None if line.trim() == format!("{key}:") => inside = Some(indent(line)),
                Some(at) if indent(line) <= at => break,
                Some(_) => out.push(line.trim()),
                None => {}
            }
        }
        out
    }

    /// The status codes under `responses:`.
    fn statuses(&self) -> BTreeSet<u16> {
        self.block("responses")
            .iter()
            .filter_map(|l| l.strip_prefix('"')?.strip_suffix("\":")?.parse().ok())
            .collect()
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[test]
fn the_spec_has_exactly_the_routes_of_the_code() {
    let spec_routes: BTreeSet<(String, String)> = operations(&spec())
        .into_iter()
        .map(|op| (op.method, op.path))
        .collect();
    let code_routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.as_str().to_string(), r.path.to_string()))
        .collect();
    let missing: Vec<_> = code_routes.difference(&spec_routes).collect();
    let extra: Vec<_> = spec_routes.difference(&code_routes).collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/openapi.yaml: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "docs/openapi.yaml has operations that are not routes: {extra:?}"
    );
    assert_eq!(spec_routes.len(), ROUTES.len(), "a route is listed twice");
}

#[test]
fn every_operation_lists_its_auth_and_its_errors() {
    let ops = operations(&spec());
    assert!(!ops.is_empty());
    for op in &ops {
        let route = ROUTES
            .iter()
            .find(|r| r.method.as_str() == op.method && r.path == op.path);
        let Some(route) = route else { continue };
        let security = op.block("security");
        let statuses = op.statuses();
        // 202: a change that the daemon carries out after answering (deploy).
        assert!(
            statuses.contains(&200) || statuses.contains(&202),
            "{}: no 200 (or 202) in the spec",
            op.name()
        );
        if route.method != Verb::Get {
            // Mutating: the admin token, never optional; every body and token error.
            assert_eq!(
                security,
                ["- adminToken: []"],
                "{}: mutating calls need the admin token",
                op.name()
            );
            for s in [400, 401, 403, 409, 413, 422, 503] {
                assert!(statuses.contains(&s), "{}: no {s} in the spec", op.name());
            }
            let body = op.block("requestBody");
            assert!(!body.is_empty(), "{}: no requestBody", op.name());
        } else if op.path.starts_with("/api/v1/") {
            // Reads: open, or the admin token with server.protect_reads.
            assert_eq!(
                security,
                ["- {}", "- adminToken: []"],
                "{}: reads take the admin token only with protect_reads",
                op.name()
            );
            for s in [401, 403] {
                assert!(statuses.contains(&s), "{}: no {s} in the spec", op.name());
            }
        }
        if op.path.contains("{app}") {
            assert!(
                op.block("parameters")
                    .contains(&"- $ref: \"#/components/parameters/App\""),
                "{}: the {{app}} parameter is components/parameters/App",
                op.name()
            );
            assert!(statuses.contains(&404), "{}: no 404 unknown_app", op.name());
        }
        // Until the state is loaded every route but /healthz is 503.
        assert_eq!(
            statuses.contains(&503),
            op.path != "/healthz",
            "{}: 503 not_ready",
            op.name()
        );
    }
}

/// One error of every kind; the match below stops compiling when a kind is added, so that it
/// is added here (and to the spec) too.
fn every_error() -> Vec<ApiError> {
    let all = vec![
        ApiError::NotLoaded,
        ApiError::NotReady(String::new()),
        ApiError::Unauthorized,
        ApiError::Forbidden,
        ApiError::UnknownApp(String::new()),
        ApiError::NotFound(String::new()),
        ApiError::MethodNotAllowed {
            method: Method::DELETE,
            path: String::new(),
        },
        ApiError::BadPath(String::new()),
        ApiError::BadQuery(String::new()),
        ApiError::BadBody {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            detail: String::new(),
        },
        ApiError::MalformedJson(String::new()),
        ApiError::InvalidBody(String::new()),
        ApiError::InvalidField(String::new()),
        ApiError::InvalidWeight(String::new()),
        ApiError::UnknownField(String::new()),
        ApiError::Conflict(String::new()),
        ApiError::EngineFailed(String::new()),
        ApiError::InvalidConfig(Vec::new()),
        ApiError::NotPersisted(""),
    ];
    for e in &all {
        match e {
            ApiError::NotLoaded
            | ApiError::NotReady(_)
            | ApiError::Unauthorized
            | ApiError::Forbidden
            | ApiError::UnknownApp(_)
            | ApiError::NotFound(_)
            | ApiError::MethodNotAllowed { .. }
            | ApiError::BadPath(_)
            | ApiError::BadQuery(_)
            | ApiError::BadBody { .. }
            | ApiError::MalformedJson(_)
            | ApiError::InvalidBody(_)
            | ApiError::InvalidField(_)
            | ApiError::InvalidWeight(_)
            | ApiError::UnknownField(_)
            | ApiError::Conflict(_)
            | ApiError::EngineFailed(_)
            | ApiError::InvalidConfig(_)
            | ApiError::NotPersisted(_) => {}
        }
    }
    all
}

/// The names in `components.schemas.Error.properties.error.enum`, a one-line list.
fn spec_error_names(spec: &str) -> BTreeSet<String> {
    let mut lines = spec.lines().skip_while(|l| *l != "    Error:");
    let list = lines
        .find_map(|l| l.trim().strip_prefix("enum: ["))
        .expect("components.schemas.Error has an enum of names");
    list.trim_end_matches(']')
        .split(',')
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn the_spec_names_every_error_the_daemon_answers_with() {
    let spec = spec();
    let code: BTreeSet<String> = every_error().iter().map(|e| e.name().to_string()).collect();
    assert_eq!(spec_error_names(&spec), code);
    // And every status an error answers with is one some operation of the spec lists (405 and
    // the 404 of an unknown path are for paths and methods the spec does not have).
    let listed: BTreeSet<u16> = operations(&spec)
        .iter()
        .flat_map(|op| op.statuses())
        .collect();
    for e in every_error() {
        let status = e.status().as_u16();
        if matches!(e, ApiError::MethodNotAllowed { .. } | ApiError::NotFound(_)) {
            continue;
        }
        assert!(
            listed.contains(&status),
            "{} answers {status}, which no operation lists",
            e.name()
        );
    }
}

#[test]
fn the_spec_is_read_as_written() {
    // The line reader above finds what a YAML parser would: guard its assumptions.
    let spec = spec();
    assert!(spec.starts_with("openapi: 3.1"), "OpenAPI 3.1");
    assert!(!spec.contains('\t'), "no tabs in docs/openapi.yaml");
    assert!(
        !spec.contains("<<:") && !spec.contains(": &") && !spec.contains(": *"),
        "no YAML anchors or merges: the spec is read by tools that do not all resolve them"
    );
    let ops = operations(&spec);
    assert_eq!(ops.len(), ROUTES.len());
    let weight = ops
        .iter()
        .find(|o| o.path == "/api/v1/apps/{app}/weight")
        .unwrap();
    assert_eq!(
        weight.statuses(),
        BTreeSet::from([200, 400, 401, 403, 404, 409, 413, 422, 503])
    );
}
