//! Whether a new constraint (ADD CONSTRAINT, or a unique index) can reject what the running
//! version writes: [`constraint_rejects`], and the NOT NULL checks the schema model remembers.

use super::*;

/// Whether a new constraint can reject what the running (old) version writes.
pub(super) enum Rejects {
    /// It cannot: the table is new, or its columns are new to this release and the old
    /// version's NULLs (or their defaults) pass it.
    No,
    /// It can: it checks columns the old version writes.
    May,
    /// It rejects every insert of the old version (after the first, for a unique key): the
    /// column is new to this release and the old version leaves it NULL, or writes its constant
    /// default. Column and why.
    Will(String),
}

/// What a constraint (ADD CONSTRAINT, or CREATE UNIQUE INDEX) on an existing `table` rejects.
/// `node` is the constraint (or index) and `w` its words.
pub(super) fn constraint_rejects(
    schema: &Schema,
    table: &str,
    node: &SyntaxNode,
    w: &[SmolStr],
) -> Rejects {
    let columns = constrained_columns(schema, table, node);
    if columns.is_empty() {
        return Rejects::May;
    }
    let new: Vec<(String, Option<String>)> = columns
        .iter()
        .filter_map(|c| {
            schema
                .new_column_default(table, c)
                .map(|d| (c.clone(), d.map(str::to_string)))
        })
        .collect();
    if new.len() < columns.len() {
        return Rejects::May;
    }
    let is_check = w.iter().any(|x| x == "check");
    let is_fk = w.iter().any(|x| x == "references");
    let is_unique = w.iter().any(|x| x == "unique") || has_seq(w, &["primary", "key"]);
    let requires_value = has_seq(w, &["primary", "key"])
        || has_seq(w, &["nulls", "not", "distinct"])
        || (is_check && null_rejecting(w));
    for (col, default) in &new {
        match default {
            None if requires_value => {
                return Rejects::Will(format!(
                    "it does not know `{table}.{col}` and leaves it NULL"
                ));
            }
            None => {}
            // Every insert of the old version writes the default: a CHECK or a foreign key may
            // reject it, and a unique key takes one constant value once.
            Some(_) if is_check || is_fk => return Rejects::May,
            Some(d) if is_unique && constant_default(d) => {
                return Rejects::Will(format!(
                    "each of its inserts writes the default `{d}` into `{table}.{col}`, and the \
                     second one collides"
                ));
            }
            Some(_) => {}
        }
    }
    Rejects::No
}

/// The columns of `table` that a constraint (or index) `node` constrains, normalized; when the
/// schema model knows the table, only the columns it knows. Empty when none can be told.
fn constrained_columns(schema: &Schema, table: &str, node: &SyntaxNode) -> Vec<String> {
    // The identifiers that can be columns: not a function name (followed by `(`), a type after
    // `::`, or the name of the constraint, index or table; a foreign key constrains its own
    // columns, not the referenced ones.
    let toks: Vec<_> = node
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .filter(|t| !t.kind().is_trivia())
        .take_while(|t| !t.text().eq_ignore_ascii_case("references"))
        .collect();
    let mut candidates: Vec<String> = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if t.kind() != SyntaxKind::IDENT {
            continue;
        }
        let prev = i.checked_sub(1).map(|p| toks[p].text().to_lowercase());
        let next = toks.get(i + 1).map(|n| n.text().to_string());
        if next.as_deref() == Some("(")
            || next.as_deref() == Some(".")
            || matches!(
                prev.as_deref(),
                Some("::" | "constraint" | "index" | "on" | "exists" | ".")
            )
        {
            continue;
        }
        candidates.push(normalize(t.text()));
    }
    match schema.table(table) {
        Some(t) => candidates
            .into_iter()
            .filter(|c| t.column(c).is_some() || schema.new_column(table, c).is_some())
            .collect(),
        None => candidates,
    }
}

/// Whether a new column's default, as written, is one constant value: no function call
/// (`nextval(...)`, `gen_random_uuid()`, `now()`, nor a generated column, written
/// `(generated)`). Every insert of the running version that leaves the column out writes it, so
/// a unique key on the column collides from the second one on. ADD COLUMN ... DEFAULT and a
/// constraint on a column added by this release judge it so; SET DEFAULT also takes the
/// `current_...` and `localtime...` keywords for volatile.
pub(super) fn constant_default(default: &str) -> bool {
    !default.contains('(')
}

/// Whether a CHECK expression tests for NULL, so a NULL the old version leaves can fail it
/// (a plain comparison is NULL for a NULL column, and a CHECK passes on NULL; PostgreSQL
/// manual, 5.4.1 Check Constraints).
pub(super) fn null_rejecting(w: &[SmolStr]) -> bool {
    has_seq(w, &["is", "not", "null"])
        || has_seq(w, &["is", "null"])
        || has_seq(w, &["is", "distinct"])
        || has_seq(w, &["is", "not", "distinct"])
        || has_seq(w, &["is", "true"])
        || has_seq(w, &["is", "false"])
        || has_seq(w, &["is", "not", "unknown"])
        || w.iter().any(|t| {
            matches!(
                t.as_str(),
                "coalesce" | "num_nonnulls" | "num_nulls" | "notnull" | "isnull"
            )
        })
}

/// The pseudo constraint name under which a deferred `CHECK (col IS NOT NULL)` is remembered.
pub(super) fn not_null_key(col: &str) -> String {
    format!("{} is not null", normalize(col))
}

/// The column of `CHECK (col IS NOT NULL)`, as written (quotes kept), if that is what the
/// constraint is.
pub(super) fn not_null_check_column(node: &SyntaxNode) -> Option<String> {
    let toks = tokens(node);
    let p = toks.iter().position(|t| t.eq_ignore_ascii_case("check"))?;
    let rest = &toks[p + 1..];
    // ( col is not null )
    let is = |i: usize, word: &str| rest.get(i).is_some_and(|t| t.eq_ignore_ascii_case(word));
    // Exactly that: `CHECK (email IS NOT NULL OR status = 'guest')` proves nothing.
    (rest.first().is_some_and(|t| t == "(")
        && is(2, "is")
        && is(3, "not")
        && is(4, "null")
        && rest.get(5).is_some_and(|t| t == ")"))
    .then(|| rest[1].clone())
}
