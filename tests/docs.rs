//! The documentation's examples are checked: every TOML block in the README and docs/ is a valid
//! config, and so is the example file.

use std::path::Path;

use canary_pilot::config::{Config, SecretSource};

struct NoSecrets;
impl SecretSource for NoSecrets {
    fn read_file(&self, p: &Path) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            p.display().to_string(),
        ))
    }
    fn env(&self, _: &str) -> Option<String> {
        None
    }
}

fn blocks(text: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}");
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim() == fence => current = Some(String::new()),
            Some(_) if line.trim() == "```" => out.push(current.take().unwrap()),
            Some(buf) => {
                buf.push_str(line);
                buf.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn every_toml_block_in_the_docs_is_a_valid_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            files.push(p);
        }
    }
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, block) in blocks(&text, "toml").iter().enumerate() {
            if let Err(issues) = Config::parse(block, &NoSecrets) {
                panic!(
                    "{} TOML block {i} is not a valid config: {issues:#?}\n{block}",
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "expected the docs to hold config examples, found {checked}"
    );
    let example = std::fs::read_to_string(root.join("examples/canary-pilot.toml")).unwrap();
    Config::parse(&example, &NoSecrets).expect("examples/canary-pilot.toml is valid");
}
