//! Reading the examples out of the documentation: fenced blocks, and a console block's commands
//! with the output each shows.

/// Every fenced block of `text`: its language (what follows the opening fence) and its lines.
pub fn fenced(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        let t = line.trim();
        match &mut current {
            None if t.starts_with("```") => current = Some((t[3..].to_string(), Vec::new())),
            Some(_) if t == "```" => out.push(current.take().unwrap()),
            Some((_, lines)) => lines.push(line.to_string()),
            None => {}
        }
    }
    out
}

/// The fenced blocks of `lang` in `text`, in order.
pub fn blocks(text: &str, lang: &str) -> Vec<Vec<String>> {
    fenced(text)
        .into_iter()
        .filter(|(l, _)| l == lang)
        .map(|(_, lines)| lines)
        .collect()
}

/// A console block's commands (`$ command`), each with the output lines it shows.
pub fn commands(block: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in block {
        match line.strip_prefix("$ ") {
            Some(cmd) => out.push((cmd.to_string(), Vec::new())),
            None => out
                .last_mut()
                .expect("a console block starts with `$ command`")
                .1
                .push(line.trim_end().to_string()),
        }
    }
    out
}
