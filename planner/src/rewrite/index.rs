//! The plain indexes of a renamed or retyped column, carried to its new column. Dropping the old
//! column at contract drops every index that uses it (manual, ALTER TABLE, `DROP COLUMN`:
//! "Indexes and table constraints involving the column will be automatically dropped"), which
//! the naive statement would have kept (a rename) or rebuilt (a type change). So the rewrite
//! builds each again on the new column, `CONCURRENTLY` (manual, CREATE INDEX, "Building Indexes
//! Concurrently": reads and writes go on) at the end of the backfill, before traffic moves, so
//! the new version has it from its first request; contract gives it the old index's name once
//! the old column and its index are gone. Undoing the expand step drops the new column and with
//! it the new index.
//!
//! Only indexes the migrations declare are carried: their `CREATE INDEX` statement is in the
//! schema model, with the column's references (key columns, expressions, `INCLUDE`, the partial
//! index's `WHERE`) replaced by the new column's name. Unique indexes are not (the rewrites
//! refuse a column with one).

use crate::analysis::CarriedIndex;
use crate::schema::{Schema, normalize};
use squawk_syntax::SourceFile;
use squawk_syntax::ast::{self, AstNode};

/// A `CREATE INDEX` statement read for a carry: whether it is unique, its table as written, and
/// its text after the table (method, keys, `INCLUDE`, `WITH`, `WHERE`) with each reference to
/// a column replaced.
struct Read {
    unique: bool,
    table: String,
    /// From `ON` to the end, references replaced.
    from_on: String,
    /// After the table's name to the end, references replaced.
    after_table: String,
}

/// `sql` (one `CREATE INDEX` statement) read with each reference to the column `old` in its
/// keys, `INCLUDE` and `WHERE` replaced by `new` (both as SQL, compared normalized); `None` when
/// it is no such statement or names no such column.
fn read(sql: &str, old: &str, new: &str) -> Option<Read> {
    let parse = SourceFile::parse(sql);
    let ci = parse.tree().stmts().find_map(|s| match s {
        ast::Stmt::CreateIndex(ci) => Some(ci),
        _ => None,
    })?;
    let on = usize::from(ci.on_token()?.text_range().start());
    let table_node = ci.table_relation_name()?;
    let table_end = usize::from(table_node.syntax().text_range().end());
    let table = ci
        .table_relation_name()
        .and_then(|r| r.table_name_ref())
        .map(|n| n.syntax().text().to_string())?;
    let end = ci
        .semicolon_token()
        .map_or(ci.syntax().text_range().end(), |t| t.text_range().start());
    let old = normalize(old);
    let parts = [
        ci.partition_item_list().map(|n| n.syntax().clone()),
        ci.index_include_clause().map(|n| n.syntax().clone()),
        ci.where_clause().map(|n| n.syntax().clone()),
    ];
    let refs: Vec<_> = parts
        .into_iter()
        .flatten()
        .flat_map(|n| n.descendants().filter_map(ast::NameRef::cast))
        .filter(|n| normalize(&n.syntax().text().to_string()) == old)
        .map(|n| n.syntax().text_range())
        .collect();
    if refs.is_empty() {
        return None;
    }
    // `sql` from `start` to `end` with the references after `start` replaced.
    let replaced = |start: usize| {
        let mut out = String::new();
        let mut at = start;
        for r in refs.iter().filter(|r| usize::from(r.start()) >= start) {
            out.push_str(&sql[at..usize::from(r.start())]);
            out.push_str(new);
            at = usize::from(r.end());
        }
        out.push_str(&sql[at..usize::from(end)]);
        out.trim().to_string()
    };
    let (from_on, after_table) = (replaced(on), replaced(table_end));
    Some(Read {
        unique: ci.unique_token().is_some(),
        table,
        from_on,
        after_table,
    })
}

/// `sql` (a `CREATE INDEX` statement as the model keeps it) after a rename of its table's column
/// `old` to `new`: the same statement naming `new`; `None` when it does not name `old`.
pub(crate) fn renamed_in(sql: &str, old: &str, new: &str) -> Option<String> {
    let parse = SourceFile::parse(sql);
    let ci = parse.tree().stmts().find_map(|s| match s {
        ast::Stmt::CreateIndex(ci) => Some(ci),
        _ => None,
    })?;
    let head = &sql[..usize::from(ci.on_token()?.text_range().start())];
    Some(format!("{head}{};", read(sql, old, new)?.from_on))
}

/// The table (normalized) of `sql`, a `CREATE INDEX` statement, when it uses the column `col`
/// in its keys, expressions, `INCLUDE` or `WHERE`.
pub(crate) fn uses(sql: &str, col: &str) -> Option<String> {
    read(sql, col, col).map(|r| normalize(&r.table))
}

/// The indexes the migrations declare on `table` that use its column `from`, each to be built
/// on the column `to` (see the module doc): plain ones, and with `unique` the unique indexes
/// and UNIQUE constraints too (a rename carries them; a type change refuses them). The new
/// index is named after the old one and the new column, in the old one's schema.
pub(crate) fn carried(
    schema: &Schema,
    table: &str,
    (from, to): (&str, &str),
    unique: bool,
) -> Vec<CarriedIndex> {
    let constraints = schema
        .table(table)
        .map(|t| t.unique.as_slice())
        .unwrap_or(&[]);
    // A UNIQUE constraint's index (`ADD CONSTRAINT ... USING INDEX` renames it to the
    // constraint's name) is carried once, as the constraint, below.
    let of_constraint = |name: &str| {
        let bare = name.rsplit('.').next().unwrap_or(name);
        constraints.iter().any(|u| u.name == normalize(bare))
    };
    let mut out: Vec<CarriedIndex> = schema
        .indexes_of(table)
        .filter(|(name, i)| (unique || !i.unique) && !of_constraint(name))
        .filter_map(|(name, i)| {
            let r = read(i.sql.as_deref()?, from, to)?;
            let kind = if r.unique { "UNIQUE INDEX" } else { "INDEX" };
            Some(carry(name, to, false, |new| {
                format!(
                    "CREATE {kind} CONCURRENTLY {new} ON {table} {};",
                    r.after_table
                )
            }))
        })
        .collect();
    let key = normalize(from);
    let constraints = schema
        .table(table)
        .map(|t| t.unique.as_slice())
        .unwrap_or(&[]);
    for u in constraints
        .iter()
        .filter(|u| unique && u.columns.contains(&key))
    {
        let cols: Vec<String> = u
            .columns
            .iter()
            .map(|c| if *c == key { to.to_string() } else { c.clone() })
            .collect();
        out.push(carry(&u.name, to, true, |new| {
            format!(
                "CREATE UNIQUE INDEX CONCURRENTLY {new} ON {table} ({});",
                cols.join(", ")
            )
        }));
    }
    out
}

/// The carry of the index or constraint `name` (as the model keys it) onto the column `to`,
/// its statement made by `create` from the new index's name.
fn carry(name: &str, to: &str, constraint: bool, create: impl Fn(&str) -> String) -> CarriedIndex {
    let (schema_part, bare) = match name.rsplit_once('.') {
        Some((s, b)) => (Some(s), b),
        None => (None, name),
    };
    let unquoted = crate::schema::bare(bare);
    let new = super::ident(&format!("{unquoted}_cutover_{}", crate::schema::bare(to)));
    CarriedIndex {
        name: bare.to_string(),
        new_name: schema_part.map_or(new.clone(), |s| format!("{s}.{new}")),
        create_sql: create(&new),
        constraint,
    }
}

/// `ALTER INDEX [IF EXISTS] a RENAME TO b`: (a, b) as written (a possibly schema-qualified).
pub(crate) fn index_rename(sql: &str) -> Option<(String, String)> {
    let head = sql.trim_start().get(..11)?;
    if !head.eq_ignore_ascii_case("alter index") {
        return None;
    }
    let parse = SourceFile::parse(sql);
    let ai = parse.tree().stmts().find_map(|s| match s {
        ast::Stmt::AlterIndex(a) => Some(a),
        _ => None,
    })?;
    let Some(ast::AlterIndexAction::IndexRenameTo(r)) = ai.action() else {
        return None;
    };
    let from = ai.index_ref()?.syntax().text().to_string();
    Some((
        from.trim().to_string(),
        r.index()?.syntax().text().to_string(),
    ))
}

/// The undo of `ALTER INDEX a RENAME TO b`: `b` (in `a`'s schema) renamed back to `a`.
pub(crate) fn index_rename_inverse(sql: &str) -> Option<String> {
    let (from, to) = index_rename(sql)?;
    let prefix = from
        .rsplit_once('.')
        .map_or(String::new(), |(s, _)| format!("{s}."));
    Some(format!(
        "ALTER INDEX IF EXISTS {prefix}{to} RENAME TO {};",
        super::relation(&from)
    ))
}

/// Contract, once the old column (and its indexes) is gone: each carried index takes the old
/// index's name, a constraint's index becomes the constraint again (`ADD CONSTRAINT ... UNIQUE
/// USING INDEX`, which renames it to the constraint's name: manual, ALTER TABLE).
pub(crate) fn contract_sql(table: &str, indexes: &[CarriedIndex]) -> String {
    indexes
        .iter()
        .map(|i| {
            if i.constraint {
                let bare = i.new_name.rsplit('.').next().unwrap_or(&i.new_name);
                format!(
                    "\nALTER TABLE {table} ADD CONSTRAINT {} UNIQUE USING INDEX {bare};",
                    i.name
                )
            } else {
                format!(
                    "\nALTER INDEX IF EXISTS {} RENAME TO {};",
                    i.new_name, i.name
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_to_the_column_is_replaced_and_nothing_else() {
        let sql = "CREATE INDEX name_idx ON users USING btree (lower(name), \"name\" DESC) \
                   INCLUDE (name) WHERE name IS NOT NULL AND names > 0;";
        let r = read(sql, "name", "full_name").unwrap();
        assert_eq!(
            r.from_on,
            "ON users USING btree (lower(full_name), full_name DESC) INCLUDE (full_name) WHERE \
             full_name IS NOT NULL AND names > 0"
        );
        assert_eq!(
            r.after_table,
            "USING btree (lower(full_name), full_name DESC) INCLUDE (full_name) WHERE full_name \
             IS NOT NULL AND names > 0"
        );
        assert_eq!((r.unique, r.table.as_str()), (false, "users"));
        assert!(read(sql, "email", "mail").is_none());
        assert_eq!(
            renamed_in("CREATE INDEX i ON t (a, b);", "b", "c").unwrap(),
            "CREATE INDEX i ON t (a, c);"
        );
    }
}
