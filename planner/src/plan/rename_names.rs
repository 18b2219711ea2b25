//! Renames the rewrite cannot carry because of another statement of the release: a column
//! renamed twice, or a name a rename moved away from used again ([`reused_names`]).

use super::Analyzed;
use super::index::first_statement;
use super::policy::finding;
use crate::analysis::{ColumnRename, MigrationAnalysis};
use crate::learn::name_of;
use crate::lint::Finding;
use crate::schema::normalize;
use squawk_syntax::ast::{self, AstNode};

/// A rename of the release, normalized, and where it is.
struct Earlier {
    table: String,
    from: String,
    to: String,
    at: String,
}

impl Earlier {
    fn new(r: &ColumnRename, m: &MigrationAnalysis, line: u32) -> Self {
        Earlier {
            table: normalize(&r.table),
            from: normalize(&r.from),
            to: normalize(&r.to),
            at: format!("{} line {line}", m.file),
        }
    }
}

/// `rename-rewrite-unsupported` for each rename of a column an earlier rename of the release
/// named (renamed twice: each rewrite keeps its own pair in sync, so rows the new version writes
/// leave the first old name NULL for the old version), each rename to a name an earlier rename
/// moved away from, and each `ADD COLUMN` of such a name (the rewrite keeps the old column until
/// the contract step, so the expand step's ADD COLUMN fails: the column already exists).
pub(super) fn reused_names(analyzed: &Analyzed) -> Vec<Finding> {
    let mut out = Vec::new();
    for (_, ms) in analyzed {
        let mut earlier: Vec<Earlier> = Vec::new();
        for m in ms {
            for s in &m.statements {
                if let Some(r) = &s.rename {
                    let now = Earlier::new(r, m, s.line);
                    if let Some(f) = rename_conflict(&earlier, &now, r, m, s.line) {
                        out.push(f);
                    }
                    earlier.push(now);
                } else if !earlier.is_empty() {
                    for (table, column) in added_columns(&s.sql) {
                        let Some(e) = earlier
                            .iter()
                            .find(|e| e.table == table && e.from == column)
                        else {
                            continue;
                        };
                        out.push(added_conflict(e, m, s.line));
                    }
                }
            }
        }
    }
    out
}

/// The finding on the rename `r` (`now`, in `m` at `line`) when it renames a column an earlier
/// rename named, or renames to a name an earlier rename moved away from.
fn rename_conflict(
    earlier: &[Earlier],
    now: &Earlier,
    r: &ColumnRename,
    m: &MigrationAnalysis,
    line: u32,
) -> Option<Finding> {
    let (table, from, to) = (&r.table, &r.from, &r.to);
    let head = format!("renaming `{table}.{from}` to `{to}` cannot be rewritten into phases");
    let same = |e: &&Earlier| e.table == now.table;
    if let Some(e) = earlier.iter().filter(same).find(|e| e.to == now.from) {
        return Some(finding(
            "rename-rewrite-unsupported",
            m,
            line,
            format!(
                "{head}: `{from}` is the new name of `{}` ({}), a column renamed twice in one \
                 release; each rewrite keeps only its own pair of columns in sync, so rows the new \
                 version writes leave `{}` NULL for the old version",
                e.from, e.at, e.from
            ),
            format!(
                "rename `{}` to `{to}` in one statement, or rename it again in a later release \
                 (after this one's contract step), or use a `recreate` release",
                e.from
            ),
        ));
    }
    let e = earlier.iter().filter(same).find(|e| e.from == now.to)?;
    Some(finding(
        "rename-rewrite-unsupported",
        m,
        line,
        format!(
            "{head}: it reuses the name `{to}`, which the rename to `{}` ({}) moves away from; the \
             rewrite keeps the old `{to}` until the contract step, so the expand step's ADD \
             COLUMN {to} fails (the column already exists)",
            e.to, e.at
        ),
        format!(
            "reuse the name `{to}` in a later release (after this one's contract step dropped \
             the old column), or swap the names in a `recreate` release, where the renames run \
             as written"
        ),
    ))
}

/// The finding on an `ADD COLUMN` (in `m` at `line`) of the name the rename `e` moves away from.
fn added_conflict(e: &Earlier, m: &MigrationAnalysis, line: u32) -> Finding {
    finding(
        "rename-rewrite-unsupported",
        m,
        line,
        format!(
            "the rename of `{table}.{from}` to `{to}` ({at}) cannot be rewritten into phases: this \
             statement adds a column named `{from}` again, but the rewrite keeps the old `{from}` \
             until the contract step, so this ADD COLUMN fails (the column already exists)",
            table = e.table,
            from = e.from,
            to = e.to,
            at = e.at
        ),
        format!(
            "add the new column under another name, or reuse the name `{}` in a later release \
             (after this one's contract step dropped the old column), or use a `recreate` \
             release",
            e.from
        ),
    )
}

/// The (table, column) pairs, normalized, an `ALTER TABLE ... ADD COLUMN` statement adds;
/// empty for any other statement.
fn added_columns(sql: &str) -> Vec<(String, String)> {
    let Some(ast::Stmt::AlterTable(at)) = first_statement(sql) else {
        return Vec::new();
    };
    let Some(table) = at.table_relation_name().and_then(|r| r.table_name_ref()) else {
        return Vec::new();
    };
    let table = normalize(&name_of(table.syntax()));
    at.actions()
        .filter_map(|a| match a {
            ast::AlterTableAction::AddColumn(ac) => ac.column_name(),
            _ => None,
        })
        .map(|c| (table.clone(), normalize(&name_of(c.syntax()))))
        .collect()
}
