//! The SQL of a table rename ([`TableRename`]): the old version keeps its name through a view.
//!
//! 1. **expand**: `ALTER TABLE old RENAME TO new`, then `CREATE VIEW old AS SELECT * FROM new`
//!    with the table's privileges. A view over one table with no aggregates, joins or set
//!    operations is automatically updatable: the old version's INSERT, UPDATE, DELETE,
//!    `RETURNING` and `ON CONFLICT` go through to the table, whose defaults, identity,
//!    constraints and triggers apply (manual: CREATE VIEW, "Updatable Views"). Foreign keys,
//!    indexes and triggers follow the table, which PostgreSQL tracks by OID.
//! 2. **contract**: the view is dropped.

use super::convert::{grants_body, invoker_view_sql};
use crate::analysis::TableRename;

/// The new table as the old one is qualified: `app.users` renamed `members` is `app.members`.
fn renamed(r: &TableRename) -> String {
    match r.from.rsplit_once('.') {
        Some((schema, _)) => format!("{schema}.{}", r.to),
        None => r.to.clone(),
    }
}

/// The expand SQL: the rename, the old name's view, and the table's grants on the view.
pub fn expand_sql(r: &TableRename) -> String {
    let new = renamed(r);
    let old = &r.from;
    let lit = |s: &str| s.replace('\'', "''");
    format!(
        "ALTER TABLE {old} RENAME TO {to};\n-- the old version keeps its name: an updatable view \
         of the table, checked as its caller, with the table's grants\nDO $cutover$\nDECLARE g \
         record;\nBEGIN\n  {view}\n{grants}\nEND\n$cutover$;",
        to = r.to,
        view = invoker_view_sql(
            &format!("'{}'", lit(old)),
            &format!("'SELECT * FROM {}'", lit(&new)),
            &lit(&new)
        ),
        grants = grants_body(&lit(&new), &format!("'{}'", lit(old)), true, None),
    )
}

/// Undoes [`expand_sql`]: the view dropped, the table given its name back.
pub fn undo_sql(r: &TableRename) -> String {
    let bare = super::relation(&r.from);
    format!(
        "DROP VIEW IF EXISTS {};\nALTER TABLE {} RENAME TO {bare};",
        r.from,
        renamed(r)
    )
}

/// The contract SQL: the old name's view dropped.
pub fn contract_sql(r: &TableRename) -> String {
    format!("DROP VIEW IF EXISTS {};", r.from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qualified_table_stays_in_its_schema() {
        let r = TableRename {
            from: "app.users".into(),
            to: "members".into(),
        };
        let sql = expand_sql(&r);
        assert!(
            sql.contains("'app.users', 'SELECT * FROM app.members'"),
            "{sql}"
        );
        assert_eq!(
            undo_sql(&r),
            "DROP VIEW IF EXISTS app.users;\nALTER TABLE app.members RENAME TO users;"
        );
    }
}
