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

/// `sql` (one `CREATE INDEX` statement) with each reference to the column `old` in its keys,
/// `INCLUDE` and `WHERE` replaced by `new` (both as SQL, compared normalized), and the text from
/// its `ON` on; `None` when it is no such statement or names no such column.
fn replaced_from_on(sql: &str, old: &str, new: &str) -> Option<String> {
    let parse = SourceFile::parse(sql);
    let ci = parse.tree().stmts().find_map(|s| match s {
        ast::Stmt::CreateIndex(ci) => Some(ci),
        _ => None,
    })?;
    let start = ci.on_token()?.text_range().start();
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
    let mut out = String::new();
    let mut at = usize::from(start);
    for r in refs {
        out.push_str(&sql[at..usize::from(r.start())]);
        out.push_str(new);
        at = usize::from(r.end());
    }
    out.push_str(&sql[at..usize::from(end)]);
    Some(out.trim_end().to_string())
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
    Some(format!("{head}{};", replaced_from_on(sql, old, new)?))
}

/// The non-unique indexes the migrations declare on `table` that use its column `from`, each
/// to be built on the column `to` (see the module doc). The new index is named after the old
/// one and the new column, in the old one's schema.
pub(crate) fn carried(schema: &Schema, table: &str, from: &str, to: &str) -> Vec<CarriedIndex> {
    schema
        .indexes_of(table)
        .filter(|(_, i)| !i.unique)
        .filter_map(|(name, i)| {
            let rest = replaced_from_on(i.sql.as_deref()?, from, to)?;
            let (schema_part, bare) = match name.rsplit_once('.') {
                Some((s, b)) => (Some(s), b),
                None => (None, name),
            };
            let unquoted = crate::schema::bare(bare);
            let new = super::ident(&format!("{unquoted}_cutover_{}", crate::schema::bare(to)));
            let qualified = schema_part.map_or(new.clone(), |s| format!("{s}.{new}"));
            Some(CarriedIndex {
                name: bare.to_string(),
                new_name: qualified.clone(),
                create_sql: format!("CREATE INDEX CONCURRENTLY {new} {rest};"),
            })
        })
        .collect()
}

/// Contract, once the old column (and its indexes) is gone: each carried index takes the old
/// index's name.
pub(crate) fn contract_sql(indexes: &[CarriedIndex]) -> String {
    indexes
        .iter()
        .map(|i| {
            format!(
                "\nALTER INDEX IF EXISTS {} RENAME TO {};",
                i.new_name, i.name
            )
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
        assert_eq!(
            replaced_from_on(sql, "name", "full_name").unwrap(),
            "ON users USING btree (lower(full_name), full_name DESC) INCLUDE (full_name) WHERE \
             full_name IS NOT NULL AND names > 0"
        );
        assert_eq!(replaced_from_on(sql, "email", "mail"), None);
        assert_eq!(
            renamed_in("CREATE INDEX i ON t (a, b);", "b", "c").unwrap(),
            "CREATE INDEX i ON t (a, c);"
        );
    }
}
