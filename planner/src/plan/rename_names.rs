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
    /// The file of the rename.
    file: String,
}

impl Earlier {
    fn new(r: &ColumnRename, m: &MigrationAnalysis, line: u32) -> Self {
        Earlier {
            table: normalize(&r.table),
            from: normalize(&r.from),
            to: normalize(&r.to),
            at: format!("{} line {line}", m.file),
            file: m.file.clone(),
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
                    let actions = column_actions(&s.sql);
                    out.extend(new_column_conflict(
                        &earlier,
                        m,
                        &s.sql,
                        &actions.defaulted,
                        s.line,
                    ));
                    for (table, column) in actions.added {
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

/// The finding on a statement (`sql`, in `m` at `line`) that uses a rename's new column too
/// early: a default given to it in the release (on an insert that leaves one of the two columns
/// out, the sync trigger sees the default and cannot tell it from the other version's value,
/// which is lost at the contract step), or a data change of it later in the rename's own file
/// (it runs before the backfill fills the column, which then overwrites it).
fn new_column_conflict(
    earlier: &[Earlier],
    m: &MigrationAnalysis,
    sql: &str,
    defaulted: &[(String, String)],
    line: u32,
) -> Option<Finding> {
    let words = identifier_words(sql);
    let dml = matches!(
        words.first().map(String::as_str),
        Some("update" | "insert" | "delete" | "merge" | "with")
    );
    let e = earlier.iter().find(|e| {
        defaulted.iter().any(|(t, c)| *t == e.table && *c == e.to)
            || (dml && e.file == m.file && words.contains(&e.to))
    })?;
    let why = if defaulted.iter().any(|(t, c)| *t == e.table && *c == e.to) {
        "gives it a default: on an insert that leaves one of the two columns out, the sync \
         trigger sees the default and cannot tell it from the value the other version wrote, \
         which the contract step then drops with the old column"
    } else {
        "changes its data in the rename's own migration, which runs before the backfill fills \
         the column; the backfill then overwrites what it wrote"
    };
    Some(finding(
        "rename-rewrite-unsupported",
        m,
        line,
        format!(
            "the rename of `{}.{}` to `{}` ({}) cannot be rewritten into phases: this statement \
             {why}",
            e.table, e.from, e.to, e.at
        ),
        "move a data change of the new column into a later migration (it then waits for the \
         backfill), and give the new column its default in a later release, after this one's \
         contract step; or use a `recreate` release",
    ))
}

/// The lower-case identifiers of `sql` (words of letters, digits, `_` and `$`), in order; quoted
/// identifiers keep their case.
fn identifier_words(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut word = String::new();
    for ch in sql.chars() {
        match ch {
            '"' => {
                if quoted {
                    out.push(std::mem::take(&mut word));
                }
                quoted = !quoted;
            }
            c if quoted => word.push(c),
            c if c.is_alphanumeric() || c == '_' || c == '$' => word.push(c.to_ascii_lowercase()),
            _ if !word.is_empty() => out.push(std::mem::take(&mut word)),
            _ => {}
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// What an `ALTER TABLE` statement does to columns, as (table, column) pairs, normalized: the
/// columns it adds, and those it gives a default other than `NULL`. Empty for any other
/// statement.
#[derive(Default)]
struct ColumnActions {
    added: Vec<(String, String)>,
    defaulted: Vec<(String, String)>,
}

/// The [`ColumnActions`] of `sql`, parsed once.
fn column_actions(sql: &str) -> ColumnActions {
    let mut out = ColumnActions::default();
    let Some(ast::Stmt::AlterTable(at)) = first_statement(sql) else {
        return out;
    };
    let Some(table) = at.table_relation_name().and_then(|r| r.table_name_ref()) else {
        return out;
    };
    let table = normalize(&name_of(table.syntax()));
    let pair = |c: &squawk_syntax::SyntaxNode| (table.clone(), normalize(&name_of(c)));
    for action in at.actions() {
        match action {
            ast::AlterTableAction::AddColumn(ac) => {
                out.added.extend(ac.column_name().map(|c| pair(c.syntax())));
            }
            ast::AlterTableAction::AlterColumn(ac) => {
                if let Some(ast::AlterColumnOption::SetDefault(sd)) = ac.option() {
                    let text = sd.syntax().text().to_string().to_ascii_lowercase();
                    let null = text.replace(['(', ')', ' '], "").ends_with("defaultnull");
                    if !null {
                        out.defaulted
                            .extend(ac.column_name_ref().map(|c| pair(c.syntax())));
                    }
                }
            }
            _ => {}
        }
    }
    out
}
