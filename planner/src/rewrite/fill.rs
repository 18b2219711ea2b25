//! The SQL of a fill ([`Fill`]): a column made NOT NULL under a running version that may write
//! NULL into it, with the value of a NULL row from `-- cutover:up <expr>`.
//!
//! 1. **expand**: for `ADD COLUMN ... NOT NULL`, the column added without NOT NULL; a trigger
//!    giving the old version's NULL writes the value (`WHEN (NEW.c IS NULL)`).
//! 2. **backfill**: the NULL rows set to the value in key batches.
//! 3. **contract** (the old version retired): the trigger dropped, NOT NULL enforced through a
//!    validated CHECK, which lets `SET NOT NULL` skip its scan (manual: ALTER TABLE, `SET NOT
//!    NULL`, PostgreSQL 12 and later), and the check dropped.

use crate::analysis::Fill;
use crate::schema::normalize;

/// The trigger function's and the trigger's name (at most 63 bytes, see `super::ident`).
fn name(f: &Fill) -> String {
    super::ident(&format!(
        "cutover_fill_{}_{}",
        normalize(&f.table),
        normalize(&f.column)
    ))
}

/// The alias a value expression may qualify the table's columns with.
fn alias(f: &Fill) -> &str {
    f.table.rsplit('.').next().unwrap_or(&f.table)
}

/// The expand SQL: the column (for `ADD COLUMN`) and the trigger filling NULL writes.
pub fn expand_sql(f: &Fill) -> String {
    let (n, t, c, e) = (name(f), &f.table, &f.column, &f.expr);
    let add = f.add.as_ref().map_or(String::new(), |a| format!("{a}\n"));
    format!(
        "{add}CREATE FUNCTION {n}() RETURNS trigger LANGUAGE plpgsql AS $cutover$\n#variable_conflict \
         use_column\nBEGIN\n  -- the \
         old version may still write NULL into {c}: it gets the value of -- cutover:up\n  NEW.{c} \
         := (SELECT {e} FROM (SELECT NEW.*) AS {a});\n  RETURN NEW;\nEND\n$cutover$;\nCREATE \
         TRIGGER {n} BEFORE INSERT OR UPDATE ON {t}\n  FOR EACH ROW WHEN (NEW.{c} IS NULL) EXECUTE \
         FUNCTION {n}();",
        a = alias(f)
    )
}

/// Undoes [`expand_sql`].
pub fn undo_sql(f: &Fill) -> String {
    let n = name(f);
    let drop = f.add.as_ref().map_or(String::new(), |_| {
        format!(
            "\nALTER TABLE {} DROP COLUMN IF EXISTS {};",
            f.table, f.column
        )
    });
    format!(
        "DROP TRIGGER IF EXISTS {n} ON {};\nDROP FUNCTION IF EXISTS {n}();{drop}",
        f.table
    )
}

/// The contract SQL: the trigger dropped, NOT NULL enforced without a long lock.
pub fn contract_sql(f: &Fill) -> String {
    let (n, t, c) = (name(f), &f.table, &f.column);
    let check = super::ident(&format!(
        "cutover_nn_{}_{}",
        normalize(&f.table),
        normalize(&f.column)
    ));
    format!(
        "DROP TRIGGER IF EXISTS {n} ON {t};\nDROP FUNCTION IF EXISTS {n}();\nALTER TABLE {t} ADD \
         CONSTRAINT {check} CHECK ({c} IS NOT NULL) NOT VALID;\nALTER TABLE {t} VALIDATE \
         CONSTRAINT {check};\nALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;\nALTER TABLE {t} DROP \
         CONSTRAINT {check};"
    )
}

/// One backfill batch: the NULL rows among the `$2` keys after `$1` set to the value; returns
/// the batch's last key (NULL when none is left) and the rows changed.
pub fn batch_sql(f: &Fill, key: &str) -> String {
    let (t, c, e) = (&f.table, &f.column, &f.expr);
    format!(
        "WITH bound AS (SELECT max({key}) AS hi FROM (SELECT {key} FROM {t} WHERE {key} > $1 \
         ORDER BY {key} LIMIT $2) s), changed AS (UPDATE {t} SET {c} = ({e}) WHERE {key} > $1 AND \
         {key} <= (SELECT hi FROM bound) AND {c} IS NULL RETURNING 1) SELECT (SELECT hi FROM \
         bound)::bigint, (SELECT count(*) FROM changed)"
    )
}
