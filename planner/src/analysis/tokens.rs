//! Reading a statement's tokens: squawk's green tree walked directly ([`each_token`]), a
//! statement's lowercased words, its text on one line, its literals.

use rowan::{GreenNodeData, NodeOrToken};
use smol_str::{SmolStr, StrExt};
use squawk_syntax::ast::AstNode;
use squawk_syntax::{SyntaxKind, SyntaxNode};

pub(super) fn first_token_offset(node: &SyntaxNode) -> Option<usize> {
    let mut first = None;
    each_token(&node.green(), |kind, at, _| {
        if first.is_none() && !kind.is_trivia() {
            first = Some(at);
        }
    });
    first.map(|at| usize::from(node.text_range().start()) + at)
}

/// Offset of the first non-trivia token at or after `at` (squawk ranges may start at trivia).
pub(super) fn first_offset_at(token_starts: &[usize], at: usize) -> usize {
    token_starts
        .get(token_starts.partition_point(|&s| s < at))
        .copied()
        .unwrap_or(at)
}

pub(super) fn summarize(sql: &str) -> String {
    let mut s = String::with_capacity(sql.len().min(97));
    if sql.is_ascii() {
        // What `split_whitespace` splits an ASCII text on, without decoding each character.
        let space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
        let words = sql
            .split(|c: char| space(c as u8))
            .filter(|w| !w.is_empty());
        summary_words(&mut s, words);
    } else {
        summary_words(&mut s, sql.split_whitespace());
    }
    let end = s.trim_end_matches(';').len();
    s.truncate(end);
    s
}

/// Appends `words` to `s`, one space apart, cut to 93 bytes and `...` past 96.
fn summary_words<'a>(s: &mut String, words: impl Iterator<Item = &'a str>) {
    for word in words {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(word);
        if s.len() > 96 {
            let mut cut = 93;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str("...");
            break;
        }
    }
}

/// Lowercased non-trivia tokens of a node. Words are short, so they are kept inline
/// ([`SmolStr`]) rather than one heap allocation each; a statement's words are read once
/// ([`analyze_file`]) and handed to the classification.
pub(super) fn words(node: &SyntaxNode) -> Vec<SmolStr> {
    let mut out = Vec::new();
    each_token(&node.green(), |kind, _, text| {
        if !kind.is_trivia() {
            out.push(word(text));
        }
    });
    out
}

/// One token's text, lowercased.
pub(super) fn word(text: &str) -> SmolStr {
    if text
        .bytes()
        .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
    {
        text.to_lowercase_smolstr()
    } else {
        SmolStr::new(text)
    }
}

/// The non-trivia tokens of a node, as written.
pub(crate) fn tokens(node: &SyntaxNode) -> Vec<String> {
    let mut out = Vec::new();
    each_token(&node.green(), |kind, _, text| {
        if !kind.is_trivia() {
            out.push(text.to_string());
        }
    });
    out
}

/// Calls `f(kind, offset, text)` for every token of a tree, in file order, offsets counted from
/// the tree's start. It reads squawk's green tree directly: rowan's cursors (what
/// `descendants_with_tokens` walks) allocate per node and token, which made reading each
/// statement's words cost more than squawk's rules on the same tree; an explicit stack keeps
/// deeply nested statements off the call stack.
pub(crate) fn each_token<'a>(
    node: &'a GreenNodeData,
    mut f: impl FnMut(SyntaxKind, usize, &'a str),
) {
    let mut offset = 0;
    let mut stack = vec![node.children()];
    while let Some(children) = stack.last_mut() {
        match children.next() {
            Some(NodeOrToken::Node(n)) => stack.push(n.children()),
            Some(NodeOrToken::Token(t)) => {
                let text = t.text();
                f(SyntaxKind::from(t.kind().0), offset, text);
                offset += text.len();
            }
            None => {
                stack.pop();
            }
        }
    }
}

pub(super) fn has_seq(words: &[SmolStr], seq: &[&str]) -> bool {
    words
        .windows(seq.len())
        .any(|w| w.iter().zip(seq).all(|(a, b)| a == b))
}

pub(super) fn text_of<N: AstNode>(node: Option<N>) -> Option<String> {
    node.map(|n| one_line(n.syntax()))
}

/// A node's SQL text on one line: each run of whitespace (comments kept) becomes one space, and
/// none is left at either end (`character  varying(120)` → `character varying(120)`).
pub(crate) fn one_line(node: &SyntaxNode) -> String {
    let mut out = String::new();
    let mut space = false;
    each_token(&node.green(), |_, _, t| {
        for c in t.chars() {
            if c.is_whitespace() {
                space = !out.is_empty();
            } else {
                if space {
                    out.push(' ');
                    space = false;
                }
                out.push(c);
            }
        }
    });
    out
}

/// Text of the first token after the tokens `after`, skipping `skip` words (e.g. the name in
/// `CREATE INDEX CONCURRENTLY IF NOT EXISTS name ON`).
pub(super) fn name_after(node: &SyntaxNode, after: &str, skip: &[&str]) -> Option<String> {
    let green = node.green();
    let mut toks: Vec<&str> = Vec::new();
    each_token(&green, |kind, _, text| {
        if !kind.is_trivia() {
            toks.push(text);
        }
    });
    let pos = toks.iter().position(|t| t.eq_ignore_ascii_case(after))?;
    let mut name = String::new();
    for t in &toks[pos + 1..] {
        if name.is_empty() && skip.iter().any(|s| t.eq_ignore_ascii_case(s)) {
            continue;
        }
        if *t == "." || name.ends_with('.') {
            name.push_str(t);
            continue;
        }
        if !name.is_empty() {
            break;
        }
        name.push_str(t);
    }
    (!name.is_empty()).then_some(name)
}

/// What the string literals of a statement say, however written: `'it''s'`, `E'x'`,
/// `$$x$$`, `$tag$x$tag$` (the enum value check compares values, not spellings).
pub(super) fn literal_contents(node: &SyntaxNode) -> Vec<String> {
    let green = node.green();
    let mut tokens: Vec<(SyntaxKind, &str)> = Vec::new();
    each_token(&green, |kind, _, text| {
        if is_literal(kind) {
            tokens.push((kind, text));
        }
    });
    literal_values(tokens)
}

pub(super) fn is_literal(kind: SyntaxKind) -> bool {
    matches!(
        kind,
        SyntaxKind::DOLLAR_QUOTED_STRING | SyntaxKind::STRING | SyntaxKind::ESC_STRING
    )
}

/// The contents of string literal tokens (`'it''s'` → `it's`, `$f$x$f$` → `x`).
pub(super) fn literal_values(tokens: Vec<(SyntaxKind, &str)>) -> Vec<String> {
    tokens
        .into_iter()
        .filter_map(|(kind, text)| match kind {
            SyntaxKind::DOLLAR_QUOTED_STRING => {
                let tag_end = text[1..].find('$')? + 2;
                let tag = &text[..tag_end];
                text.strip_prefix(tag)?
                    .strip_suffix(tag)
                    .map(str::to_string)
            }
            SyntaxKind::STRING | SyntaxKind::ESC_STRING => {
                let body = text.trim_start_matches(['e', 'E']);
                let inner = body.strip_prefix('\'')?.strip_suffix('\'')?;
                Some(inner.replace("''", "'"))
            }
            _ => None,
        })
        .collect()
}

/// One walk over a statement's tokens (`green`, starting at offset `start`): where its first
/// token starts, its [`word`]s, and its literal tokens.
pub(super) fn statement_tokens<'g>(
    green: &'g GreenNodeData,
    start: usize,
    w: &mut Vec<SmolStr>,
) -> (usize, Vec<(SyntaxKind, &'g str)>) {
    let mut first = None;
    w.clear();
    let mut literal_tokens = Vec::new();
    each_token(green, |kind, at, text| {
        if kind.is_trivia() {
            return;
        }
        first.get_or_insert(at);
        w.push(word(text));
        if is_literal(kind) {
            literal_tokens.push((kind, text));
        }
    });
    (first.map_or(start, |at| start + at), literal_tokens)
}
