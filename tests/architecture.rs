//! The module map holds: every top-level module of `src/` sits in one layer of
//! docs/architecture.md, imports only from its own layer or the layers below it (read from its
//! `crate::` paths, tests left out), and no modules import each other in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom first; the same list as docs/architecture.md.
const LAYERS: &[&[&str]] = &[
    &[
        "clock",
        "config",
        "event",
        "names",
        "redact",
        "signals",
        "telemetry",
    ],
    &["analysis", "provider", "rollout"],
    &["metrics", "notify", "store", "swarm", "traefik_api"],
    &["controller"],
    &["api"],
    &["client", "demo_backend", "demo_traffic", "server"],
    &["cli"],
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its tests: a `tests.rs` file is all tests, and an inline
/// `#[cfg(test)] mod tests` runs to the end of the file.
fn code_of(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
    {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Which top-level module each module's code refers to.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let targets = edges.entry(module.clone()).or_default();
        let code = code_of(&file);
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                targets.insert(name);
            }
        }
    }
    edges
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn every_module_is_placed_in_a_layer() {
    let unplaced: Vec<String> = imports()
        .into_keys()
        .filter(|m| layer_of(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules missing from LAYERS here and in docs/architecture.md: {unplaced:?}"
    );
}

#[test]
fn no_module_imports_a_module_above_it() {
    let mut upward = Vec::new();
    for (from, targets) in imports() {
        let Some(lf) = layer_of(&from) else { continue };
        for to in targets {
            match layer_of(&to) {
                Some(lt) if lt <= lf => {}
                _ => upward.push(format!("{from} (layer {lf}) -> {to}")),
            }
        }
    }
    assert!(upward.is_empty(), "imports upward: {upward:#?}");
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let edges = imports();
    // Depth-first search for a back edge; reports the first circle found.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut circle = path[i..].to_vec();
            circle.push(m.to_string());
            return Some(circle);
        }
        if !done.insert(m.to_string()) {
            return None;
        }
        path.push(m.to_string());
        for to in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(to, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        let circle = visit(m, &edges, &mut Vec::new(), &mut done);
        assert!(
            circle.is_none(),
            "import circle: {}",
            circle.unwrap().join(" -> ")
        );
    }
}

#[test]
fn the_documented_map_names_every_layer_as_the_test_does() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .unwrap();
    for (i, layer) in LAYERS.iter().enumerate() {
        let line = format!(
            "| {i} | {} |",
            layer
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(
            doc.contains(&line),
            "docs/architecture.md lacks the row {line:?}"
        );
    }
}
