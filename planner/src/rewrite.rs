//! The automatic expand/contract rewrite of a breaking `RENAME COLUMN`: [`RenameRewrite`].
//!
//! `ALTER TABLE users RENAME COLUMN name TO full_name` breaks whichever app version is running
//! when it executes. The seed's recipe, made exact:
//!
//! 1. **expand**: add `full_name` (same type), and a trigger that keeps `name` and `full_name`
//!    equal in both directions, so rows written by either version are right.
//! 2. **backfill**: copy `name` into `full_name` in primary-key batches, each its own short
//!    transaction (the trigger keeps rows written meanwhile in sync).
//! 3. deploy and shift traffic to the version that reads `full_name`.
//! 4. **contract** (after the old version is retired): drop the trigger and function, enforce
//!    NOT NULL through a validated CHECK if `name` had it, drop `name`.

mod convert;
pub mod fill;
pub(crate) mod index;
pub mod table;

pub(crate) use convert::has_equality;
pub use convert::{
    SHADOW_PREFIX, refresh_view_sql, set_sql, shadow_column, up_sql, version_schema,
};

use crate::analysis::ColumnRename;
use crate::migrations::hex;
use crate::schema::{bare, normalize};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The generated SQL of one rename rewrite.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenameRewrite {
    /// The rename being rewritten.
    pub rename: ColumnRename,
    /// Added column, trigger function and trigger.
    pub expand_sql: String,
    /// Undoes `expand_sql` exactly.
    pub expand_undo_sql: String,
    /// Primary key column the backfill walks.
    pub key: String,
    /// One backfill batch: the `$2` keys after `$1`; returns the batch's last key (NULL when none
    /// is left) and the number of rows changed.
    pub backfill_batch_sql: String,
    /// Drops the trigger, function and old column.
    pub contract_sql: String,
    /// The old column's type, if the migrations declare it.
    pub column_type: Option<String>,
    /// Whether the key was found in the migrations (otherwise `id` is assumed).
    pub key_known: bool,
}

/// PostgreSQL truncates identifiers to 63 bytes; long generated names get a hash suffix instead.
pub(crate) fn ident(base: &str) -> String {
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() <= 63 {
        clean
    } else {
        let h = hex(&Sha256::digest(base.as_bytes()));
        format!("{}_{}", &clean[..54], &h[..8])
    }
}

/// Builds the rewrite for `rename` (which carries what the migrations say about the column),
/// alone in its migration: [`rename_columns`] of one.
pub fn rename_column(rename: &ColumnRename, view_schema: Option<&str>) -> RenameRewrite {
    rename_columns(&[rename], view_schema)
        .pop()
        .expect("one rewrite per rename")
}

/// Builds the rewrites of one migration's column renames and type changes, `renames` in file
/// order (each carries what the migrations say about its column). Those of one table share one
/// sync function and one trigger pair ([`SyncPart`]), made by the last of them in the file once
/// every new column exists: each write to the table runs one function, however many columns
/// change. The SQL templates are the helpers below, in the order the script runs (expand, its
/// undo, the backfill batch, contract). A type change that keeps the column's name
/// ([`crate::analysis::Conversion::swap`]) drops and makes again the new version's view of the
/// table in `view_schema` around its own SQL; `None` when the caller runs each whole script
/// between a drop of the views and their refresh (a view made again between two statements of
/// the script would show a column a later one drops or miss one it adds).
pub fn rename_columns(renames: &[&ColumnRename], view_schema: Option<&str>) -> Vec<RenameRewrite> {
    renames
        .iter()
        .enumerate()
        .map(|(i, rename)| {
            let table = table_key(&rename.table);
            let group: Vec<&ColumnRename> = renames
                .iter()
                .copied()
                .filter(|r| table_key(&r.table) == table)
                .collect();
            let last = renames[i + 1..]
                .iter()
                .all(|r| table_key(&r.table) != table);
            let names = SyncNames::new(&group);
            let sync = if last {
                let parts: Vec<SyncPart> = group.iter().map(|r| sync_part(r)).collect();
                sync_sql(&rename.table, &names, &parts)
            } else {
                format!(
                    "-- {} is kept in step by {}(), made below with the table's other new \
                     columns",
                    rename.to, names.func
                )
            };
            one_rewrite(rename, view_schema, &names, &sync)
        })
        .collect()
}

/// The rewrite of `rename`, whose table's sync function is `names`; `sync` makes it (or says
/// where it is made).
fn one_rewrite(
    rename: &ColumnRename,
    view_schema: Option<&str>,
    names: &SyncNames,
    sync: &str,
) -> RenameRewrite {
    let (key, key_known) = match &rename.key {
        Some(k) => (k.clone(), true),
        None => ("id".to_string(), false),
    };
    let drop_sync = drop_sync_sql(&rename.table, names);
    let view = View::of(rename, view_schema);
    let expand_undo_sql = format!(
        "{}{drop_sync}ALTER TABLE {} DROP COLUMN IF EXISTS {};{}",
        view.drop, rename.table, rename.to, view.refresh
    );
    RenameRewrite {
        rename: rename.clone(),
        expand_sql: format!("{}{}", expand_sql(rename, sync), view.refresh),
        expand_undo_sql,
        backfill_batch_sql: backfill_batch_sql(&[rename], &key),
        key,
        contract_sql: contract_sql(rename, drop_sync, &view),
        column_type: rename.column_type.clone(),
        key_known,
    }
}

/// Which table a rename is of, for grouping one migration's rewrites by table: its name
/// normalized ([`normalize`] leaves the default schema out).
pub(crate) fn table_key(table: &str) -> String {
    normalize(table)
}

/// One column's piece of its table's sync function: PL/pgSQL that keeps the column and its new
/// twin right in both directions, and when an update needs it.
pub(crate) struct SyncPart {
    /// The piece needs `#variable_conflict use_column` (its expressions name the table's
    /// columns where a PL/pgSQL variable of the same name could shadow them).
    use_column: bool,
    /// Statements of the function's body, each line indented by two spaces.
    body: String,
    /// Comment lines over the update trigger, when the table has this piece alone.
    why: &'static str,
    /// When an update needs the piece: the inside of the update trigger's `WHEN`.
    when: String,
}

/// The piece of the sync function for `rename`: a type change's ([`convert::sync_part`]), or a
/// plain rename's, which keeps both columns equal.
fn sync_part(rename: &ColumnRename) -> SyncPart {
    if let Some(c) = &rename.conversion {
        return convert::sync_part(rename, c);
    }
    let ColumnRename { from, to, .. } = rename;
    let ty = rename.column_type.as_deref();
    let moved = |col: &str| distinct(&format!("NEW.{col}"), &format!("OLD.{col}"), ty);
    let (from_moved, to_moved) = (moved(from), moved(to));
    let apart = distinct(&format!("NEW.{to}"), &format!("NEW.{from}"), ty);
    SyncPart {
        use_column: false,
        body: format!(
            "\x20 -- old version writes {from}, new version writes {to}: keep both equal\n\x20 \
             IF TG_OP = 'INSERT' THEN\n\x20   IF NEW.{to} IS NULL THEN NEW.{to} := \
             NEW.{from};\n\x20   ELSIF NEW.{from} IS NULL THEN NEW.{from} := NEW.{to};\n\x20   \
             END IF;\n\x20 ELSIF {from_moved} AND NOT ({to_moved}) THEN\n\x20   NEW.{to} := \
             NEW.{from};\n\x20 ELSIF {to_moved} AND NOT ({from_moved}) THEN\n\x20   NEW.{from} := \
             NEW.{to};\n\x20 END IF;\n"
        ),
        why: "-- Only updates that leave the columns apart need the function: the backfill's \
              own\n-- updates (which make them equal) skip it.",
        when: format!("{from_moved} OR {apart}"),
    }
}

/// `a IS DISTINCT FROM b` for values of type `ty` (as written, when known); compared as text
/// for a type without an equality operator (`json`, `xml`, the geometric types), on which
/// `IS DISTINCT FROM` fails (`operator does not exist: json = json`).
pub(crate) fn distinct(a: &str, b: &str, ty: Option<&str>) -> String {
    if ty.is_some_and(|t| !has_equality(t)) {
        format!("{a}::text IS DISTINCT FROM {b}::text")
    } else {
        format!("{a} IS DISTINCT FROM {b}")
    }
}

/// The sync function `names.func` of `table` from its pieces, and its insert and update
/// triggers. The update trigger fires when one piece needs it (PostgreSQL evaluates a row
/// trigger's `WHEN` before calling the function: manual, CREATE TRIGGER); each piece acts only on
/// a change of its own columns, so running the others' does nothing.
fn sync_sql(table: &str, names: &SyncNames, parts: &[SyncPart]) -> String {
    let SyncNames {
        func,
        on_insert,
        on_update,
    } = names;
    let directive = if parts.iter().any(|p| p.use_column) {
        "#variable_conflict use_column\n"
    } else {
        ""
    };
    let body: String = parts.iter().map(|p| p.body.as_str()).collect();
    let (why, when) = match parts {
        [one] => (one.why.to_string(), one.when.clone()),
        _ => (
            format!(
                "-- One function for the {} rewritten columns of {table}: an update needs it \
                 when it\n-- concerns one of them.",
                parts.len()
            ),
            parts
                .iter()
                .map(|p| format!("({})", p.when))
                .collect::<Vec<_>>()
                .join("\n\x20   OR "),
        ),
    };
    format!(
        "CREATE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS \
         $cutover$\n{directive}BEGIN\n{body}\x20 RETURN NEW;\nEND\n$cutover$;\nCREATE TRIGGER \
         {on_insert} BEFORE INSERT ON {table}\n\x20 FOR EACH ROW EXECUTE FUNCTION \
         {func}();\n{why}\nCREATE TRIGGER {on_update} BEFORE UPDATE ON {table}\n\x20 FOR EACH ROW \
         WHEN ({when})\n\x20 EXECUTE FUNCTION {func}();"
    )
}

/// The SQL of the new version's view of a table whose column changes type in place: empty
/// for a rename.
#[derive(Default)]
struct View {
    /// Drops the view (before a column it shows is dropped or renamed); ends with a newline.
    drop: String,
    /// Re-creates it from the catalog, or drops it and its schema when no shadow column is
    /// left; starts with a newline.
    refresh: String,
}

impl View {
    fn of(rename: &ColumnRename, schema: Option<&str>) -> Self {
        let Some(schema) = schema.filter(|_| rename.conversion.as_ref().is_some_and(|c| c.swap))
        else {
            return View::default();
        };
        let name = relation(&rename.table);
        View {
            drop: format!("DROP VIEW IF EXISTS {schema}.{name};\n"),
            refresh: format!("\n{}", convert::refresh_view_sql(&rename.table, schema)),
        }
    }
}

/// The name of the `CHECK (col IS NOT NULL)` a rewrite enforces NOT NULL through on
/// `table.col` (the new column of a rename or type change, a filled column).
pub(crate) fn not_null_check(table: &str, col: &str) -> String {
    ident(&format!(
        "cutover_nn_{}_{}",
        normalize(table),
        normalize(col)
    ))
}

/// The last part of a table name as written (`app.orders`: `orders`): its relation's name, and
/// the alias a USING or `-- cutover:up` expression may qualify the table's columns with.
pub(crate) fn relation(table: &str) -> &str {
    table.rsplit('.').next().unwrap_or(table)
}

/// The names a rewrite generates (at most 63 bytes, see [`ident`]): a table's sync function
/// and its insert and update triggers.
struct SyncNames {
    func: String,
    on_insert: String,
    on_update: String,
}

impl SyncNames {
    /// The names for the renames of one table in one migration, made from the table and each
    /// rename's column names (one rename: `cutover_sync_<table>_<from>_<to>`).
    fn new(group: &[&ColumnRename]) -> Self {
        let mut base = normalize(&group[0].table);
        for r in group {
            base.push_str(&format!("_{}_{}", normalize(&r.from), normalize(&r.to)));
        }
        SyncNames {
            func: ident(&format!("cutover_sync_{base}")),
            on_insert: ident(&format!("cutover_sync_{base}_ins")),
            on_update: ident(&format!("cutover_sync_{base}_upd")),
        }
    }
}

/// The ADD COLUMN of the new column: of the old column's type (and collation) when the
/// migrations declare it, otherwise a DO block that copies both from the catalog. A collation
/// the model spells with a dot (`app.my_coll`, `en_US.utf8`: a schema or part of the name, the
/// model cannot tell) is read from the catalog too.
fn add_column_sql(rename: &ColumnRename) -> String {
    let ColumnRename {
        table,
        from,
        to,
        column_type,
        collation,
        ..
    } = rename;
    if let Some(c) = &rename.conversion {
        return format!("ALTER TABLE {table} ADD COLUMN {to} {};", c.new_type);
    }
    let why = match (column_type, collation) {
        (Some(ty), None) => return format!("ALTER TABLE {table} ADD COLUMN {to} {ty};"),
        (Some(ty), Some(c)) if !c.contains('.') => {
            let c = c.replace('"', "\"\"");
            return format!("ALTER TABLE {table} ADD COLUMN {to} {ty} COLLATE \"{c}\";");
        }
        (Some(_), Some(c)) => format!(
            "the collation of {table}.{from} (`{c}`) may name a schema: copy the type and \
             collation"
        ),
        (None, _) => format!(
            "the type of {table}.{from} is not declared in the migrations: copy it (and its \
             collation)"
        ),
    };
    format!(
        "-- {why} from the catalog\nDO $cutover$\nBEGIN\n  EXECUTE format('ALTER TABLE %s ADD \
         COLUMN %I %s', '{table}'::regclass, '{to_raw}',\n    (SELECT format_type(a.atttypid, \
         a.atttypmod) || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation\n      \
         THEN ' COLLATE ' || quote_ident(n.nspname) || '.' || quote_ident(c.collname) ELSE '' \
         END\n      FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid\n      LEFT JOIN \
         pg_collation c ON c.oid = a.attcollation\n      LEFT JOIN pg_namespace n ON n.oid = \
         c.collnamespace\n      WHERE a.attrelid = '{table}'::regclass AND a.attname = \
         '{from_raw}'));\nEND\n$cutover$;",
        to_raw = bare(to),
        from_raw = bare(from),
    )
}

/// The expand step of `rename`: the new column, then `sync` (the table's sync function and
/// triggers, or a comment saying where they are made).
fn expand_sql(rename: &ColumnRename, sync: &str) -> String {
    let ColumnRename { table, to, .. } = rename;
    let add_column = add_column_sql(rename);
    if let Some(c) = &rename.conversion {
        // A default that does not convert fails here, not at the contract step.
        let check = format!(
            "-- the new column's default must convert: tried now, dropped again until the \
             contract step\n{}\nALTER TABLE {table} ALTER COLUMN {to} DROP DEFAULT;",
            convert::default_sql(rename, c)
        );
        return format!("{add_column}\n{check}\n{sync}");
    }
    format!("{add_column}\n{sync}")
}

/// Drops the triggers and function of expand (the start of its undo and of contract; each
/// rename of a table drops them, the first in the script does).
fn drop_sync_sql(table: &str, names: &SyncNames) -> String {
    let SyncNames {
        func,
        on_insert,
        on_update,
    } = names;
    format!(
        "DROP TRIGGER IF EXISTS {on_insert} ON {table};\nDROP TRIGGER IF EXISTS {on_update} ON \
         {table};\nDROP FUNCTION IF EXISTS {func}();\n"
    )
}

/// The new column's type, as written, when known: a type change's, else the old column's.
pub fn new_type(rename: &ColumnRename) -> Option<&str> {
    match &rename.conversion {
        Some(c) => Some(c.new_type.as_str()),
        None => rename.column_type.as_deref(),
    }
}

/// What a backfill assigns to `rename`'s new column, and the value the column is compared with
/// (is the row filled yet?).
pub fn copy_of(rename: &ColumnRename) -> (String, String) {
    rename.conversion.as_ref().map_or_else(
        || (rename.from.clone(), rename.from.clone()),
        |c| (set_sql(rename, c), up_sql(rename, c)),
    )
}

/// One backfill batch over `key` of the table of `renames` (one or more of its columns, filled
/// in one pass): the next `$2` keys after `$1`, copied where one of them differs; returns the
/// batch's last key (NULL when there is none left) and the rows changed.
pub fn backfill_batch_sql(renames: &[&ColumnRename], key: &str) -> String {
    let table = &renames[0].table;
    let mut set = Vec::new();
    let mut differs = Vec::new();
    for r in renames {
        let (value, compared) = copy_of(r);
        set.push(format!("{} = {value}", r.to));
        differs.push(distinct(&r.to, &compared, new_type(r)));
    }
    let set = set.join(", ");
    let differs = match differs.as_slice() {
        [one] => one.clone(),
        _ => format!("({})", differs.join(" OR ")),
    };
    // One round trip per batch. The bound is a scalar subquery, not a join, so the UPDATE is an
    // index range scan even without statistics.
    format!(
        "WITH bound AS (SELECT max({key}) AS hi FROM (SELECT {key} FROM {table} WHERE {key} > $1 \
         ORDER BY {key} LIMIT $2) s), changed AS (UPDATE {table} SET {set} WHERE {key} > $1 AND \
         {key} <= (SELECT hi FROM bound) AND {differs} RETURNING 1) SELECT (SELECT hi FROM \
         bound)::bigint, (SELECT count(*) FROM changed)"
    )
}

/// The contract step after `drop_sync`: NOT NULL carried over through a validated CHECK when
/// the old column had it, then the old column dropped. A type change also carries the old
/// column's default, and one in place drops the new version's view first and gives the new
/// column the old name after. The indexes built on the new column take the old ones' names.
fn contract_sql(rename: &ColumnRename, drop_sync: String, view: &View) -> String {
    let ColumnRename {
        table, from, to, ..
    } = rename;
    let check = not_null_check(table, to);
    // The view goes first: the new version's statements lock it before the table, and so must
    // this transaction, or the two deadlock.
    let mut contract_sql = view.drop.clone();
    contract_sql.push_str(&drop_sync);
    if rename.not_null {
        contract_sql.push_str(&format!(
            "-- {from} was NOT NULL: enforce it on {to} without a long lock\nALTER TABLE {table} \
             ADD CONSTRAINT {check} CHECK ({to} IS NOT NULL) NOT VALID;\nALTER TABLE {table} \
             VALIDATE CONSTRAINT {check};\nALTER TABLE {table} ALTER COLUMN {to} SET NOT \
             NULL;\nALTER TABLE {table} DROP CONSTRAINT {check};\n"
        ));
    }
    if let Some(c) = &rename.conversion {
        contract_sql.push_str(&convert::default_sql(rename, c));
        contract_sql.push('\n');
    }
    contract_sql.push_str(&format!("ALTER TABLE {table} DROP COLUMN {from};"));
    if rename.conversion.as_ref().is_some_and(|c| c.swap) {
        contract_sql.push_str(&format!(
            "\nALTER TABLE {table} RENAME COLUMN {to} TO {from};"
        ));
    }
    // The old column's indexes went with it: the ones built on the new column take their names.
    contract_sql.push_str(&index::contract_sql(table, &rename.indexes));
    contract_sql.push_str(&view.refresh);
    contract_sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_stay_within_postgres_limit_and_distinct() {
        let a = ident(&"x".repeat(100));
        let b = ident(&format!("{}y", "x".repeat(99)));
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b);
    }
}
