//! Traefik router rules, checked the way Traefik 3 reads them: matchers such as
//! ``Host(`a.example.com`)`` combined with `&&`, `||`, `!` and parentheses. canary-pilot appends
//! `&& Header(...)` and `&& HeaderRegexp(...)` to an app's rule for its pin routers, so the rule
//! must be one whole expression: a rule like ``Host(`a`)) || (Host(`a`)`` would otherwise turn a
//! pin router into a catch-all for the canary.

/// The matchers of Traefik 3's HTTP routers.
pub const MATCHERS: &[&str] = &[
    "ClientIP",
    "Header",
    "HeaderRegexp",
    "Host",
    "HostRegexp",
    "Method",
    "Path",
    "PathPrefix",
    "PathRegexp",
    "Query",
    "QueryRegexp",
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str,
    Open,
    Close,
    Comma,
    And,
    Or,
    Not,
}

/// What is wrong with `rule`, if anything.
pub fn problem(rule: &str) -> Option<String> {
    let tokens = match tokenize(rule) {
        Ok(t) => t,
        Err(e) => return Some(e),
    };
    if tokens.is_empty() {
        return Some("is empty".into());
    }
    let mut p = Parser { tokens, at: 0 };
    if let Err(e) = p.expr() {
        return Some(e);
    }
    p.tokens.get(p.at).map(|t| {
        format!(
            "has {} after a complete expression: write it as one expression, e.g. \
             \"Host(`a.example.com`) || Host(`b.example.com`)\"",
            shown(t)
        )
    })
}

fn shown(t: &Token) -> String {
    match t {
        Token::Ident(name) => format!("`{name}`"),
        Token::Str => "a string".into(),
        Token::Open => "`(`".into(),
        Token::Close => "`)`".into(),
        Token::Comma => "`,`".into(),
        Token::And => "`&&`".into(),
        Token::Or => "`||`".into(),
        Token::Not => "`!`".into(),
    }
}

fn tokenize(rule: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = rule.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            ',' => out.push(Token::Comma),
            '!' => out.push(Token::Not),
            '&' | '|' => {
                if chars.next_if(|(_, n)| *n == c).is_none() {
                    return Err(format!(
                        "has a single `{c}` at character {}: write `{c}{c}`",
                        i + 1
                    ));
                }
                out.push(if c == '&' { Token::And } else { Token::Or });
            }
            '`' | '"' => {
                if !chars.by_ref().any(|(_, n)| n == c) {
                    return Err(format!(
                        "has a string opened with {c} at character {} that is never closed",
                        i + 1
                    ));
                }
                out.push(Token::Str);
            }
            c if c.is_ascii_alphabetic() => {
                let mut name = String::from(c);
                while let Some((_, n)) = chars.next_if(|(_, n)| n.is_ascii_alphanumeric()) {
                    name.push(n);
                }
                out.push(Token::Ident(name));
            }
            other => {
                return Err(format!(
                    "has {other:?} at character {}, which no rule may contain outside a string",
                    i + 1
                ))
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    /// expr := term ('||' term)*
    fn expr(&mut self) -> Result<(), String> {
        self.term()?;
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            self.term()?;
        }
        Ok(())
    }

    /// term := factor ('&&' factor)*
    fn term(&mut self) -> Result<(), String> {
        self.factor()?;
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            self.factor()?;
        }
        Ok(())
    }

    /// factor := '!' factor | '(' expr ')' | matcher '(' strings ')'
    fn factor(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Token::Not) => self.factor(),
            Some(Token::Open) => {
                self.expr()?;
                match self.next() {
                    Some(Token::Close) => Ok(()),
                    Some(t) => Err(format!(
                        "has {} where a `)` should close a group",
                        shown(&t)
                    )),
                    None => Err("ends with a `(` that is never closed".into()),
                }
            }
            Some(Token::Ident(name)) => {
                if !MATCHERS.contains(&name.as_str()) {
                    return Err(format!(
                        "uses `{name}`, which is not a Traefik 3 matcher; use one of {}",
                        MATCHERS.join(", ")
                    ));
                }
                self.arguments(&name)
            }
            Some(t) => Err(format!(
                "has {} where a matcher such as Host(`...`) should be",
                shown(&t)
            )),
            None => Err("ends where a matcher such as Host(`...`) should be".into()),
        }
    }

    fn arguments(&mut self, name: &str) -> Result<(), String> {
        if self.next() != Some(Token::Open) {
            return Err(format!(
                "has `{name}` without its arguments: write {name}(`...`)"
            ));
        }
        loop {
            match self.next() {
                Some(Token::Str) => {}
                _ => {
                    return Err(format!(
                        "has `{name}(` without a string argument in backquotes"
                    ))
                }
            }
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::Close) => return Ok(()),
                _ => {
                    return Err(format!(
                        "has `{name}(...` whose arguments are not closed by `)`"
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_traefik_reads_pass() {
        for ok in [
            "Host(`api.example.com`)",
            "Host(`a.example.com`) || Host(`b.example.com`)",
            "Host(`api.localhost`) && PathPrefix(`/v1`)",
            "(Host(`a`) || Host(`b`)) && !Path(`/health`)",
            "Header(`X-Env`, `prod`) && Method(`GET`)",
            "HostRegexp(`^.+\\.example\\.com$`)",
            "Host(\"api.example.com\")",
        ] {
            assert_eq!(problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn a_rule_that_would_break_out_of_the_pin_routers_is_refused() {
        let e = problem("Host(`a.localhost`)) || (Host(`a.localhost`)").unwrap();
        assert!(e.contains("after a complete expression"), "{e}");
    }

    #[test]
    fn malformed_rules_say_what_is_wrong() {
        for (bad, says) in [
            ("Host(`a`", "not closed"),
            ("Host(`a)", "never closed"),
            ("(Host(`a`)", "never closed"),
            ("Host(`a`) & Path(`/`)", "single `&`"),
            ("HostHeader(`a`)", "not a Traefik 3 matcher"),
            ("Host", "without its arguments"),
            ("Host(`a`) ||", "ends where a matcher"),
            ("Host(`a`); rm", "';'"),
            ("Host()", "without a string argument"),
        ] {
            let e = problem(bad).unwrap_or_else(|| panic!("{bad} passed"));
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
