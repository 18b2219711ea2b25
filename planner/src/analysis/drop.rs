//! DROP and TRUNCATE: what they drop, and whether the running version may still use it (a
//! contract change) or it is new to this release (expand).

use super::*;

/// Names a DROP statement drops.
pub(super) struct Dropped {
    /// Names as written, in order.
    pub(super) names: Vec<String>,
    /// The table after ON (DROP TRIGGER / POLICY / RULE).
    pub(super) on: Option<String>,
    /// CASCADE was given.
    pub(super) cascade: bool,
}

/// The names of `DROP <kind> [CONCURRENTLY] [IF EXISTS] a, b(args) [ON t] [CASCADE]`, where the
/// kind is `kind_words` words long.
pub(super) fn dropped_names(node: &SyntaxNode, kind_words: usize) -> Dropped {
    let toks = tokens(node);
    let mut out = Dropped {
        names: Vec::new(),
        on: None,
        cascade: false,
    };
    let mut i = 1 + kind_words;
    while i < toks.len()
        && matches!(
            toks[i].to_lowercase().as_str(),
            "concurrently" | "if" | "exists"
        )
    {
        i += 1;
    }
    let mut current = String::new();
    let mut depth = 0;
    while i < toks.len() {
        let t = &toks[i];
        let lower = t.to_lowercase();
        if depth > 0 {
            match t.as_str() {
                "(" => depth += 1,
                ")" => depth -= 1,
                _ => {}
            }
        } else if t == "(" {
            depth = 1;
        } else if t == "," || t == ";" {
            if !current.is_empty() {
                out.names.push(std::mem::take(&mut current));
            }
        } else if lower == "on" {
            if !current.is_empty() {
                out.names.push(std::mem::take(&mut current));
            }
            let mut table = String::new();
            for t in &toks[i + 1..] {
                if t == "." || table.ends_with('.') || table.is_empty() {
                    table.push_str(t);
                } else {
                    break;
                }
            }
            out.on = Some(table);
        } else if lower == "cascade" {
            out.cascade = true;
        } else if lower == "restrict" {
        } else if out.on.is_none() {
            current.push_str(t);
        }
        i += 1;
    }
    if !current.is_empty() {
        out.names.push(current);
    }
    out
}

/// The tables of `TRUNCATE [TABLE] [ONLY] a, b [RESTART IDENTITY] [CASCADE]`.
pub(super) fn truncated_names(node: &SyntaxNode) -> Dropped {
    let mut d = dropped_names(node, 0);
    d.names = d
        .names
        .into_iter()
        .map(|n| {
            let l = n.to_lowercase();
            let n = if l.starts_with("table") && n.len() > 5 && !n[5..].starts_with('.') {
                n[5..].to_string()
            } else {
                n
            };
            if n.to_lowercase().starts_with("only") && n.len() > 4 && !n[4..].starts_with('.') {
                n[4..].to_string()
            } else {
                n
            }
        })
        .map(|n| {
            let l = n.to_lowercase();
            for tail in ["restartidentity", "continueidentity"] {
                if l.ends_with(tail) {
                    return n[..n.len() - tail.len()].to_string();
                }
            }
            n
        })
        .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case("table"))
        .collect();
    d
}
