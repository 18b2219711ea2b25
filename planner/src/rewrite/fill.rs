//! The SQL of a fill ([`Fill`]): a column made NOT NULL under a running version that may write
//! NULL into it, with the value of a NULL row from `-- cutover:up <expr>`.
//!
//! 1. **expand**: for `ADD COLUMN ... NOT NULL`, the column added without NOT NULL; a trigger
//!    giving the old version's NULL writes the value (`WHEN (NEW.c IS NULL)`); `CHECK (c IS NOT
//!    NULL) NOT VALID`.
//! 2. **backfill**: the NULL rows set to the value in key batches.
//! 3. **contract** (the old version retired): the check validated, the trigger dropped, NOT
//!    NULL set without a scan (manual: ALTER TABLE, `SET NOT NULL`, PostgreSQL 12 and later),
//!    the check dropped.

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

/// The name of the NOT NULL check of `f`.
fn check(f: &Fill) -> String {
    super::not_null_check(&f.table, &f.column)
}

/// The expand SQL: the column (for `ADD COLUMN`), the trigger filling NULL writes, and the
/// NOT NULL check as `NOT VALID`: from now on no row is written NULL (the trigger fills it
/// first), so the check holds for new rows, and only the rows there wait for the backfill and
/// the contract's `VALIDATE`.
pub fn expand_sql(f: &Fill) -> String {
    let (n, t, c, e) = (name(f), &f.table, &f.column, &f.expr);
    let add = f.add.as_ref().map_or(String::new(), |a| format!("{a}\n"));
    format!(
        "{add}CREATE FUNCTION {n}() RETURNS trigger LANGUAGE plpgsql AS $cutover$\n\
         #variable_conflict use_column\nBEGIN\n  -- the old version may still write NULL into \
         {c}: it gets the value of -- cutover:up\n  NEW.{c} := (SELECT {e} FROM (SELECT NEW.*) AS \
         {a});\n  RETURN NEW;\nEND\n$cutover$;\nCREATE TRIGGER {n} BEFORE INSERT OR UPDATE ON \
         {t}\n  FOR EACH ROW WHEN (NEW.{c} IS NULL) EXECUTE FUNCTION {n}();\nALTER TABLE {t} ADD \
         CONSTRAINT {k} CHECK ({c} IS NOT NULL) NOT VALID;",
        a = super::relation(&f.table),
        k = check(f),
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
        "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {k};\nDROP TRIGGER IF EXISTS {n} ON {t};\nDROP \
         FUNCTION IF EXISTS {n}();{drop}",
        t = f.table,
        k = check(f),
    )
}

/// The contract SQL: the check validated first (a scan under SHARE UPDATE EXCLUSIVE, which lets
/// reads and writes go on: manual, ALTER TABLE, `VALIDATE CONSTRAINT`), then the trigger
/// dropped and `SET NOT NULL`, which the valid check lets skip its scan, and the check dropped:
/// the locks that block are taken last, for a moment.
pub fn contract_sql(f: &Fill) -> String {
    let (n, t, c, k) = (name(f), &f.table, &f.column, check(f));
    format!(
        "ALTER TABLE {t} VALIDATE CONSTRAINT {k};\nDROP TRIGGER IF EXISTS {n} ON {t};\nDROP \
         FUNCTION IF EXISTS {n}();\nALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;\nALTER TABLE \
         {t} DROP CONSTRAINT {k};"
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
