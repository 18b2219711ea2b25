//! Statements that change data: a statement is classified by every INSERT, UPDATE, DELETE and
//! MERGE it holds (the statement itself and those in its WITH queries, at any depth), and a
//! SELECT also by the functions it calls. So `WITH gone AS (DELETE FROM t RETURNING *) INSERT
//! INTO archive SELECT * FROM gone` is judged by its DELETE, and neither `WITH x AS (UPDATE ...)
//! SELECT ...` nor `SELECT setval(...)` passes for a placeholder migration.
//!
//! PostgreSQL runs a data-modifying statement in WITH exactly once, whether or not the outer
//! statement reads its result (manual: 7.8.4, "Data-Modifying Statements in WITH"); it accepts
//! them at the top level of SELECT, INSERT, UPDATE and DELETE, and so also in CREATE TABLE AS,
//! SELECT INTO, `COPY (query) TO` and EXPLAIN ANALYZE, which runs its statement (manual: EXPLAIN).
//! Views and materialized views refuse them. What a called function does cannot be seen: a
//! SELECT that calls one cutover does not know is unclassified, and placed in the contract phase
//! unless the file declares its phase.

use super::{Class, Inverse, StmtPhase, classify, no_inverse_reason, summarize, text_of, words};
use crate::lint::RuleId;
use crate::schema::{Schema, normalize};
use smol_str::SmolStr;
use squawk_syntax::SyntaxKind;
use squawk_syntax::SyntaxNode;
use squawk_syntax::ast::{self, AstNode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Insert,
    Update,
    Delete,
    Merge,
}

/// One data-modifying statement inside the one being classified.
#[derive(Debug)]
struct Write {
    verb: Verb,
    /// Target table as written.
    table: String,
    /// An UPDATE or DELETE without WHERE, or with a WHERE that is constant true.
    whole: bool,
    /// Inside a WITH query rather than the statement itself.
    in_with: bool,
    /// `whole` because of a WHERE that is constant true.
    where_true: bool,
    /// A MERGE, judged by its actions (`verb` is the one that reaches every row, if any).
    merge: bool,
}

/// What a MERGE does to its target table as a whole: with a join condition that is a constant
/// true (`ON true`, `ON 1 = 1`), every target row matches (PostgreSQL manual, MERGE), so an
/// unconditional `WHEN MATCHED THEN DELETE` empties it like `DELETE ... WHERE true` and an
/// unconditional `WHEN MATCHED THEN UPDATE` updates every row. Otherwise it changes the rows
/// its join picks: a data change like an UPDATE or DELETE with a WHERE.
fn merge_effect(m: &ast::Merge) -> (Verb, bool) {
    let on_true = m
        .using_on_clause()
        .and_then(|u| u.on_clause())
        .is_some_and(|on| constant_true(on.syntax()));
    if !on_true {
        return (Verb::Merge, false);
    }
    let unconditional: Vec<ast::MergeAction> = m
        .merge_when_clauses()
        .filter_map(|w| match w {
            ast::MergeWhenClause::MergeWhenMatched(wm) if wm.merge_condition().is_none() => {
                wm.merge_action()
            }
            _ => None,
        })
        .collect();
    if unconditional
        .iter()
        .any(|a| matches!(a, ast::MergeAction::MergeDelete(_)))
    {
        (Verb::Delete, true)
    } else if unconditional
        .iter()
        .any(|a| matches!(a, ast::MergeAction::MergeUpdate(_)))
    {
        (Verb::Update, true)
    } else {
        (Verb::Merge, false)
    }
}

/// An UPDATE's or DELETE's WHERE selects every row: there is none, or its condition is a
/// constant that is true (`WHERE true`, `WHERE 1 = 1`, `WHERE NOT false`), which PostgreSQL
/// folds away before it reads a row.
fn whole_table(clause: Option<ast::WhereClauseOrCurrentOf>) -> bool {
    let Some(ast::WhereClauseOrCurrentOf::WhereClause(wc)) = clause else {
        return clause.is_none();
    };
    constant_true(wc.syntax())
}

/// A WHERE or ON clause (`node`, its keyword first) whose condition is a constant that is true.
fn constant_true(node: &SyntaxNode) -> bool {
    let w: Vec<SmolStr> = words(node)
        .into_iter()
        .skip(1)
        .filter(|t| !matches!(t.as_str(), "(" | ")"))
        .collect();
    let constant = |t: &SmolStr| {
        t.starts_with('\'') || t.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !t.is_empty()
    };
    match w.as_slice() {
        [t] => t == "true" || t == "'t'" || t == "'true'",
        [not, f] => not == "not" && f == "false",
        [a, op, b] if op == "is" => a == "true" && b == "true",
        [a, op, b] => constant(a) && constant(b) && (op == "=" && a == b || op == "<>" && a != b),
        _ => false,
    }
}

/// Every INSERT, UPDATE, DELETE and MERGE in `node` (itself included), in text order.
fn writes(node: &SyntaxNode) -> Vec<Write> {
    node.descendants()
        .filter_map(|n| {
            let (verb, table, whole) = match n.kind() {
                SyntaxKind::INSERT => {
                    let i = ast::Insert::cast(n.clone())?;
                    (Verb::Insert, text_of(i.relation_name_ref()), false)
                }
                SyntaxKind::UPDATE => {
                    let u = ast::Update::cast(n.clone())?;
                    let table = text_of(u.relation_name().and_then(|r| r.relation_name_ref()));
                    (
                        Verb::Update,
                        table,
                        whole_table(u.where_clause_or_current_of()),
                    )
                }
                SyntaxKind::DELETE => {
                    let d = ast::Delete::cast(n.clone())?;
                    let table = text_of(d.relation_name().and_then(|r| r.relation_name_ref()));
                    (
                        Verb::Delete,
                        table,
                        whole_table(d.where_clause_or_current_of()),
                    )
                }
                SyntaxKind::MERGE => {
                    let m = ast::Merge::cast(n.clone())?;
                    let table = text_of(m.table_relation_name().and_then(|r| r.table_name_ref()));
                    let (verb, whole) = merge_effect(&m);
                    (verb, table, whole)
                }
                _ => return None,
            };
            let in_with = n
                .ancestors()
                .take_while(|a| a != node)
                .any(|a| a.kind() == SyntaxKind::WITH_TABLE);
            let where_true = whole && n.children().any(|c| c.kind() == SyntaxKind::WHERE_CLAUSE);
            Some(Write {
                verb,
                table: table.unwrap_or_default(),
                whole,
                in_with,
                where_true,
                merge: n.kind() == SyntaxKind::MERGE,
            })
        })
        .collect()
}

/// Raises `c` by the writes in `node`: each is a data change (expand) without a known inverse;
/// an UPDATE or DELETE of a whole table the running version uses holds row locks for the whole
/// run, and such a DELETE loses data (contract). Returns whether there was any.
pub(super) fn add_writes(c: &mut Class, node: &SyntaxNode, schema: &Schema) -> bool {
    let writes = writes(node);
    for w in &writes {
        c.raise(StmtPhase::Expand);
        if c.table.is_none() {
            c.table = Some(normalize(&w.table)).filter(|t| !t.is_empty());
        }
        if !w.whole || schema.is_new(&w.table) {
            continue;
        }
        let table = &w.table;
        let verb = match (w.merge, w.verb) {
            (true, Verb::Delete) => "MERGE ... WHEN MATCHED THEN DELETE",
            (true, _) => "MERGE ... WHEN MATCHED THEN UPDATE",
            (false, Verb::Delete) => "DELETE",
            (false, _) => "UPDATE",
        };
        let place = if w.in_with { " in a WITH query" } else { "" };
        c.finding(
            RuleId::UnbatchedDml,
            format!("this {verb}{place} touches every row of `{table}` in one transaction"),
            "batch it by primary key range (cutover's backfill steps do this) so row locks stay \
             short",
        );
        if w.verb == Verb::Delete {
            c.raise(StmtPhase::Contract);
            c.finding(
                RuleId::DataLoss,
                format!(
                    "{verb} {}{place} empties `{table}`",
                    if w.merge {
                        "with a join condition that is always true"
                    } else if w.where_true {
                        "with a WHERE that is always true"
                    } else {
                        "without WHERE"
                    }
                ),
                "run it only after the old version is retired; the pre-release backup is the only \
                 way back",
            );
        }
    }
    if !writes.is_empty() {
        let reason = if writes.iter().all(|w| w.verb == Verb::Insert) {
            "inserted rows are not removed automatically; add a down migration"
        } else {
            "changed rows are not restored automatically; add a down migration"
        };
        c.inverse = Inverse::Unknown(reason.into());
    }
    !writes.is_empty()
}

/// INSERT, UPDATE, DELETE or MERGE, with whatever its WITH queries change.
pub(super) fn classify_dml(node: &SyntaxNode, schema: &Schema) -> Class {
    let mut c = Class::new(StmtPhase::Expand, Inverse::Unknown(no_inverse_reason()));
    add_writes(&mut c, node, schema);
    c
}

/// `COPY t FROM ...` inserts rows; `COPY t TO ...` reads, and `COPY (query) TO ...` changes what
/// its query changes.
pub(super) fn classify_copy(copy: &ast::Copy, schema: &Schema) -> Class {
    let node = copy.syntax();
    if matches!(copy.copy_direction(), Some(ast::CopyDirection::CopyTo(_))) {
        let mut c = Class::new(StmtPhase::Neutral, Inverse::Noop);
        add_writes(&mut c, node, schema);
        return c;
    }
    let mut c = Class::new(
        StmtPhase::Expand,
        Inverse::Unknown(
            "inserted rows are not removed automatically; add a down migration".into(),
        ),
    );
    c.table = text_of(copy.copy_table().and_then(|t| t.table_name_ref())).map(|t| normalize(&t));
    c
}

/// Functions a SELECT may call without changing anything the old version sees: session settings
/// (`set_config`, which pg_dump writes), advisory locks, notifications, clocks, catalog lookups and
/// common pure built-ins.
const NEUTRAL_FUNCTIONS: &[&str] = &[
    "set_config",
    "current_setting",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
    "pg_notify",
    "pg_sleep",
    "version",
    "now",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "current_database",
    "current_schema",
    "current_schemas",
    "pg_backend_pid",
    "pg_typeof",
    "to_regclass",
    "to_regtype",
    "to_regproc",
    "pg_get_serial_sequence",
    "pg_get_viewdef",
    "pg_get_functiondef",
    "pg_get_indexdef",
    "pg_get_constraintdef",
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_table_size",
    "has_table_privilege",
    "has_schema_privilege",
    "has_column_privilege",
    "has_function_privilege",
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "length",
    "lower",
    "upper",
    "format",
    "concat",
    "concat_ws",
    "string_agg",
    "array_agg",
];

/// Functions that change a sequence: a data change the old version may notice (expand).
const SEQUENCE_FUNCTIONS: &[&str] = &["setval", "nextval"];

/// Helpers of migration tools whose effect is known and additive: diesel's
/// `diesel_manage_updated_at('t')` (created by diesel's setup migration) adds a trigger that
/// sets `updated_at` on UPDATE, which the old version does not notice.
const ADDITIVE_HELPERS: &[&str] = &["diesel_manage_updated_at"];

/// Names of the functions `node` calls, normalized (`pg_catalog.` dropped).
fn called_functions(node: &SyntaxNode) -> Vec<String> {
    node.descendants()
        .filter_map(ast::CallExpr::cast)
        .filter_map(|call| call.expr())
        .map(|name| {
            let name: String = name
                .syntax()
                .text()
                .to_string()
                .split_whitespace()
                .collect();
            let name = normalize(&name);
            name.strip_prefix("pg_catalog.")
                .map_or(name.clone(), str::to_string)
        })
        .collect()
}

/// SELECT (also compound and parenthesized): neutral, unless its WITH queries change data, it
/// moves a sequence (`setval`, `nextval`: expand), or it calls a function cutover does not know,
/// which may do anything (unclassified: contract, with a finding that asks for a declaration).
pub(super) fn classify_select(node: &SyntaxNode, schema: &Schema) -> Class {
    let mut c = Class::new(StmtPhase::Neutral, Inverse::Noop);
    add_writes(&mut c, node, schema);
    let mut opaque: Vec<String> = Vec::new();
    for f in called_functions(node) {
        if ADDITIVE_HELPERS.contains(&f.as_str()) {
            c.raise(StmtPhase::Expand);
            c.inverse = Inverse::Unknown(no_inverse_reason());
        } else if SEQUENCE_FUNCTIONS.contains(&f.as_str()) {
            c.raise(StmtPhase::Expand);
            if f == "setval" {
                super::sequence::set_value(&mut c, node, schema);
            }
            if c.inverse == Inverse::Noop {
                c.inverse = Inverse::Unknown(
                    "the sequence's previous value is not restored automatically; add a down \
                     migration"
                        .into(),
                );
            }
        } else if !NEUTRAL_FUNCTIONS.contains(&f.as_str()) && !opaque.contains(&f) {
            opaque.push(f);
        }
    }
    if !opaque.is_empty() {
        c.raise(StmtPhase::Contract);
        c.needs_declaration = true;
        c.inverse = Inverse::Unknown(no_inverse_reason());
        let names = opaque
            .iter()
            .map(|f| format!("`{f}()`"))
            .collect::<Vec<_>>()
            .join(", ");
        c.finding(
            RuleId::UnclassifiedStatement,
            format!(
                "`{}` calls {names}, which may change anything: cutover cannot see into a function \
                 and will not place it by guessing",
                summarize(&node.text().to_string())
            ),
            "declare the file's phase at its top: `-- cutover:phase=expand` if the old version \
             keeps working after it, `-- cutover:phase=contract` if it must wait until that version \
             is retired",
        );
    }
    c
}

/// CREATE TABLE ... AS and SELECT ... INTO: besides creating the table, they change what their
/// WITH queries change, which dropping the table does not undo.
pub(super) fn add_query_writes(c: &mut Class, node: &SyntaxNode, schema: &Schema) {
    if add_writes(c, node, schema) {
        c.inverse = Inverse::Unknown(
            "dropping the table does not restore the rows its query changed; add a down migration"
                .into(),
        );
    }
}

/// EXPLAIN runs its statement only with ANALYZE; then it is classified as that statement.
pub(super) fn classify_explain(e: &ast::Explain, schema: &mut Schema, in_release: bool) -> Class {
    let analyze = match e.explain_mode() {
        Some(ast::ExplainMode::ExplainAnalyze(_)) => true,
        Some(ast::ExplainMode::ExplainOptionList(list)) => list
            .syntax()
            .children()
            .filter_map(ast::ExplainOption::cast)
            .any(|o| {
                let name = text_of(o.explain_option_name()).map(|n| n.to_lowercase());
                let value = text_of(o.explain_option_value()).map(|v| v.to_lowercase());
                matches!(name.as_deref(), Some("analyze" | "analyse"))
                    && !matches!(value.as_deref(), Some("false" | "off" | "0" | "no"))
            }),
        _ => false,
    };
    let inner = e
        .explain_stmt()
        .and_then(|s| ast::Stmt::cast(s.syntax().clone()));
    match inner {
        Some(stmt) if analyze => classify(&stmt, &words(stmt.syntax()), schema, in_release),
        _ => Class::new(StmtPhase::Neutral, Inverse::Noop),
    }
}
