//! How wide the output may be: the terminal's width when stdout is one, else `COLUMNS`, else
//! unlimited (a pipe or a file gets whole lines, as scripts expect). Text longer than the width
//! is wrapped at spaces, with an indent, or cut with `…` where a line must stay one line.

use std::io::IsTerminal;

/// The narrowest width a layout is made for; a narrower terminal wraps.
const NARROWEST: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Width(Option<usize>);

impl Width {
    /// No limit: every line as long as it needs.
    pub const UNLIMITED: Width = Width(None);

    /// At most `n` columns (never fewer than 40).
    pub fn columns(n: usize) -> Width {
        Width(Some(n.max(NARROWEST)))
    }

    /// The width stdout has now: a terminal's own width (read again at every call, so a
    /// resized terminal is followed), else `COLUMNS`, else unlimited.
    pub fn of_stdout() -> Width {
        if std::io::stdout().is_terminal() {
            if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size() {
                return Width::columns(usize::from(w));
            }
        }
        match std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse().ok())
        {
            Some(n) if n > 0 => Width::columns(n),
            _ => Width::UNLIMITED,
        }
    }

    /// How many rows stdout's terminal has, if it is one.
    pub fn rows_of_stdout() -> Option<usize> {
        if !std::io::stdout().is_terminal() {
            return None;
        }
        terminal_size::terminal_size().map(|(_, terminal_size::Height(h))| usize::from(h))
    }

    /// Whether a line of `text` fits.
    pub fn fits(self, text: &str) -> bool {
        self.0.is_none_or(|w| text.chars().count() <= w)
    }

    /// `text` on one line, cut with `…` if it does not fit.
    pub fn cut(self, text: &str) -> String {
        match self.0 {
            Some(w) if text.chars().count() > w => {
                let kept: String = text.chars().take(w - 1).collect();
                format!("{}…", kept.trim_end())
            }
            _ => text.to_string(),
        }
    }

    /// `text` after `first` (on the first line), wrapped at spaces onto lines that start with
    /// `indent` spaces. A word longer than a line is cut.
    pub fn wrap(self, first: &str, text: &str, indent: usize) -> Vec<String> {
        let Some(w) = self.0 else {
            return vec![format!("{first}{text}")];
        };
        let mut lines = Vec::new();
        let mut line = first.to_string();
        let mut empty = true;
        for word in text.split(' ').filter(|w| !w.is_empty()) {
            let len = line.chars().count();
            let needed = if empty { 0 } else { 1 } + word.chars().count();
            if !empty && len + needed > w {
                lines.push(line);
                line = " ".repeat(indent);
                empty = true;
            }
            if !empty {
                line.push(' ');
            }
            line.push_str(word);
            empty = false;
        }
        lines.push(line);
        lines.into_iter().map(|l| self.cut(&l)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_keeps_lines_whole() {
        let long = "x ".repeat(200);
        assert!(Width::UNLIMITED.fits(&long));
        assert_eq!(Width::UNLIMITED.cut(&long), long);
        assert_eq!(Width::UNLIMITED.wrap("a: ", &long, 2).len(), 1);
    }

    #[test]
    fn lines_are_cut_and_wrapped_to_the_width() {
        let w = Width::columns(40);
        let cut = w.cut(&"y".repeat(50));
        assert_eq!(cut.chars().count(), 40);
        assert!(cut.ends_with('…'));
        let text = "one two three four five six seven eight nine ten eleven twelve thirteen";
        let lines = w.wrap("  reason: ", text, 4);
        assert!(lines.len() > 1, "{lines:?}");
        assert!(lines.iter().all(|l| l.chars().count() <= 40), "{lines:?}");
        assert!(lines[0].starts_with("  reason: one"));
        assert!(lines[1].starts_with("    ") && !lines[1].starts_with("     "));
        let words: Vec<&str> = lines.iter().flat_map(|l| l.split_whitespace()).collect();
        assert_eq!(words[1..].join(" "), text);
        assert_eq!(
            Width::columns(3),
            Width::columns(40),
            "never narrower than 40"
        );
    }
}
