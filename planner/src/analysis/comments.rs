//! The comments cutover reads in a migration: the phase declaration (`-- cutover:phase=`) and
//! the ignore comments (`-- cutover:ignore rule-id: reason`).

use super::*;

/// `-- cutover:phase=contract` among the comments before the first statement.
pub(super) fn declared_phase(
    comments: &[(usize, String)],
    first_stmt_line: Option<u32>,
    index: &LineIndex,
) -> Option<(Result<Phase, String>, u32)> {
    for (at, text) in comments {
        let line = index.line(*at);
        if first_stmt_line.is_some_and(|l| line > l) {
            break;
        }
        if let Some(rest) = text.split("cutover:phase=").nth(1) {
            let value: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let phase = match value.as_str() {
                "expand" => Ok(Phase::Expand),
                "contract" => Ok(Phase::Contract),
                _ => Err(value),
            };
            return Some((phase, line));
        }
    }
    None
}

/// The lines of `-- cutover:phase=` declarations after the first statement's line, which
/// [`declared_phase`] does not read.
pub(super) fn late_phase_declarations(
    comments: &[(usize, String)],
    first_stmt_line: Option<u32>,
    index: &LineIndex,
) -> Vec<u32> {
    let Some(first) = first_stmt_line else {
        return Vec::new();
    };
    comments
        .iter()
        .filter(|(_, text)| text.contains("cutover:phase="))
        .map(|(at, _)| index.line(*at))
        .filter(|&line| line > first)
        .collect()
}

/// The comment that keeps a statement as written: `plan` does not rewrite it (into phases, or
/// a concurrent form), and it keeps its finding.
pub(crate) const AS_IS: &str = "cutover:as-is";

/// The comment giving a type change's way back: `-- cutover:down <expr>`, where the expression
/// names the column and means its value in the new type.
pub(crate) const DOWN: &str = "cutover:down";

/// How a statement's ignores carry its `-- cutover:down` expression: `down=<expr>`.
pub(crate) const DOWN_KEY: &str = "down=";

/// The comment giving the value of a NULL row when a column becomes NOT NULL: `-- cutover:up
/// <expr>`.
pub(crate) const UP: &str = "cutover:up";

/// How a statement's ignores carry its `-- cutover:up` expression: `up=<expr>`.
pub(crate) const UP_KEY: &str = "up=";

/// The expression of a `-- cutover:down <expr>` (or `up`) comment, `/* ... */` too.
fn expression(comment: &str, directive: &str) -> Option<String> {
    let rest = comment.split(directive).nth(1)?;
    // `-- cutover:upp` is not `-- cutover:up`.
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim().trim_end_matches("*/").trim();
    (!rest.is_empty()).then(|| rest.to_string())
}

/// Rule ids named by `-- cutover:ignore a, b` comments between two offsets, with the line of
/// the comment naming each; a `-- cutover:as-is` comment among them is named `as-is`.
pub(super) fn ignores_between(
    comments: &[(usize, String)],
    from: usize,
    to: usize,
    index: &LineIndex,
) -> BTreeMap<String, u32> {
    comments
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .flat_map(|(at, text)| {
            let line = index.line(*at);
            let ids = text
                .split("cutover:ignore")
                .nth(1)
                .into_iter()
                .flat_map(ignored_ids)
                .map(canonical_rule_id);
            // `-- cutover:as-is` keeps the statement out of `plan`'s rewrites.
            let as_is = text.contains(AS_IS).then(|| "as-is".to_string());
            // `-- cutover:down <expr>`: the way back of a type change, kept as `down=<expr>`.
            let down = expression(text, DOWN).map(|e| format!("{DOWN_KEY}{e}"));
            // `-- cutover:up <expr>`: the value of a NULL row for a NOT NULL, kept as `up=<expr>`.
            let up = expression(text, UP).map(|e| format!("{UP_KEY}{e}"));
            ids.chain(as_is)
                .chain(down)
                .chain(up)
                .map(move |id| (id, line))
        })
        .collect()
}

/// The rule ids of an ignore comment's text after `cutover:ignore`: `a, b` or `a b`, up to a
/// colon, after which comes the reason (`-- cutover:ignore data-loss: emptied on purpose`), or
/// up to the first word that cannot be an id.
pub(super) fn ignored_ids(rest: &str) -> impl Iterator<Item = &str> {
    let mut done = false;
    rest.split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map_while(move |word| {
            if done {
                return None;
            }
            let id = match word.split_once(':') {
                Some((id, _)) => {
                    done = true;
                    id
                }
                None => word,
            };
            (!id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .then_some(id)
        })
}

/// A rule id as findings carry it: squawk's aliases (`prefer-timestamptz`) become the id squawk
/// reports (`prefer-timestamp-tz`); cutover's own ids stay as written.
pub(super) fn canonical_rule_id(id: &str) -> String {
    use std::str::FromStr;
    squawk_linter::Rule::from_str(id).map_or_else(|_| id.to_string(), |r| r.to_string())
}
