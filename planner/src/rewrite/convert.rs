//! The SQL of a column whose type changes ([`Conversion`]): `ALTER COLUMN c TYPE t [USING e]`
//! on its own (a shadow column swapped in at contract, the new version reading it through a
//! view), or composed with a rename of the same column (the new column keeps its new name).
//!
//! 1. **expand**: add the new column of the new type (no default: only the new version writes
//!    it, which is how the trigger tells the two versions' inserts apart), a trigger converting
//!    both ways (the USING expression up, `-- cutover:down` or a cast back down), and, for a
//!    shadow, the view the new version reads the table through.
//! 2. **backfill**: the new column set to the converted old value in key batches; the batches
//!    set `cutover.backfill` so the trigger leaves them alone (PostgreSQL: CREATE TRIGGER, "WHEN
//!    ... may call functions"; `current_setting(name, missing_ok)`).
//! 3. **contract**: drop the trigger, enforce NOT NULL through a validated CHECK, carry the old
//!    column's default (converted as `SET DEFAULT` converts it), drop the old column and, for a
//!    shadow, give the new one the old name in the same transaction and drop the view.

use crate::analysis::{ColumnRename, Conversion};
use crate::schema::bare;

/// The prefix of a shadow column's name; the view of the new version shows `_cutover_new_c`
/// as `c`.
pub const SHADOW_PREFIX: &str = "_cutover_new_";

/// The shadow column of `col` (as written; quoted names stay quoted).
pub fn shadow_column(col: &str) -> String {
    match col.strip_prefix('"').and_then(|c| c.strip_suffix('"')) {
        Some(inner) => format!("\"{SHADOW_PREFIX}{inner}\""),
        None => format!("{SHADOW_PREFIX}{}", col.to_lowercase()),
    }
}

/// The schema holding the views the new version reads during a release whose last migration
/// of the database is `version`: `cutover_v<version>`. A release's own, so the old version
/// (which may still have the previous release's schema on its `search_path`) never sees it.
pub fn version_schema(version: u64) -> String {
    format!("cutover_v{version}")
}

/// The expression a row's new column is compared with (is it filled yet?): its old value
/// converted, with the table's columns as bare names. Without USING an explicit cast, which may
/// round or cut where the assignment of [`set_sql`] fails: a row it cuts differs, and its
/// assignment then fails loudly.
pub fn up_sql(r: &ColumnRename, c: &Conversion) -> String {
    match &c.using {
        Some(_) => set_sql(r, c),
        None => format!("CAST({} AS {})", r.from, c.new_type),
    }
}

/// What a backfill assigns to the new column: the USING expression, or the old column itself,
/// which the assignment converts as PostgreSQL's own type change does: an assignment cast,
/// failing where a value does not fit (`value too long for type character varying(100)`)
/// rather than cutting it (manual: ALTER TABLE, `SET DATA TYPE`; Type Conversion, Value
/// Storage). After a rename of the same column the USING expression names the column by its
/// new name: it reads the old column's value under that name.
pub fn set_sql(r: &ColumnRename, c: &Conversion) -> String {
    match &c.using {
        Some(e) if c.swap => format!("({e})"),
        Some(e) => format!(
            "(SELECT {e} FROM (SELECT {from} AS {to}) AS {alias})",
            from = r.from,
            to = r.to,
            alias = super::relation(&r.table)
        ),
        None => r.from.clone(),
    }
}

/// In the trigger function: the new column's value from `NEW`'s old one; without USING,
/// PL/pgSQL's assignment converts it as [`set_sql`]'s does. The USING expression sees the row
/// (a type change in place) or, after a rename, the old value under the new name.
fn up_in_trigger(r: &ColumnRename, c: &Conversion) -> String {
    let a = super::relation(&r.table);
    match &c.using {
        Some(e) if c.swap => format!("(SELECT {e} FROM (SELECT NEW.*) AS {a})"),
        Some(e) => format!(
            "(SELECT {e} FROM (SELECT NEW.{} AS {}) AS {a})",
            r.from, r.to
        ),
        None => format!("NEW.{}", r.from),
    }
}

/// In the trigger function: the old column's value from `NEW`'s new one; without a down
/// expression PL/pgSQL's assignment converts it to the old column's type. The expression names
/// the column by either of its names.
fn down_in_trigger(r: &ColumnRename, c: &Conversion) -> String {
    let a = super::relation(&r.table);
    match &c.down {
        Some(e) if c.swap => format!(
            "(SELECT {e} FROM (SELECT NEW.{} AS {}) AS {a})",
            r.to, r.from
        ),
        Some(e) => format!(
            "(SELECT {e} FROM (SELECT NEW.{to} AS {to}, NEW.{to} AS {from}) AS {a})",
            to = r.to,
            from = r.from
        ),
        None => format!("NEW.{}", r.to),
    }
}

/// The piece of a table's sync function (see [`super::SyncPart`]) that keeps a converted
/// column and its old one right both ways.
pub(super) fn sync_part(r: &ColumnRename, c: &Conversion) -> super::SyncPart {
    let ColumnRename { from, to, .. } = r;
    let up = up_in_trigger(r, c);
    let down = down_in_trigger(r, c);
    let from_changed = changed(from, r.column_type.as_deref());
    let to_changed = changed(to, Some(&c.new_type));
    super::SyncPart {
        use_column: true,
        body: format!(
            "\x20 -- the old version writes {from}; only the new version writes {to}\n\
             \x20 IF TG_OP = 'INSERT' THEN\n\
             \x20   IF NEW.{to} IS NOT NULL THEN NEW.{from} := {down};\n\
             \x20   ELSE NEW.{to} := {up};\n\
             \x20   END IF;\n\
             \x20 ELSIF {to_changed} AND NOT ({from_changed}) THEN\n\
             \x20   NEW.{from} := {down};\n\
             \x20 ELSIF {from_changed} THEN\n\
             \x20   NEW.{to} := {up};\n\
             \x20 END IF;\n"
        ),
        why: "-- The backfill's batches set cutover.backfill: they write the converted value \
              themselves.",
        when: format!(
            "({from_changed} OR {to_changed})\n\
             \x20   AND current_setting('cutover.backfill', true) IS DISTINCT FROM 'on'"
        ),
    }
}

/// Types without an equality operator (`IS DISTINCT FROM` fails on them): json, xml and the
/// geometric types (manual: JSON Types, "json ... no equality operator"; XML Type).
const NO_EQUALITY: &[&str] = &[
    "json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle",
];

/// Whether a value of type `ty` (as written) can be compared with `IS DISTINCT FROM`.
pub(crate) fn has_equality(ty: &str) -> bool {
    let base = ty.trim().to_ascii_lowercase();
    let base = base.split(['(', '[', ' ']).next().unwrap_or("");
    !NO_EQUALITY.contains(&base)
}

/// In the trigger: whether `NEW.col` differs from `OLD.col` (of type `ty`, if known), as text
/// for a type without equality.
fn changed(col: &str, ty: Option<&str>) -> String {
    if ty.is_some_and(|t| !has_equality(t)) {
        format!("NEW.{col}::text IS DISTINCT FROM OLD.{col}::text")
    } else {
        format!("NEW.{col} IS DISTINCT FROM OLD.{col}")
    }
}

/// `'table'::regclass` for SQL text: the table as written, in a string literal.
fn regclass(table: &str) -> String {
    format!("'{}'::regclass", table.replace('\'', "''"))
}

/// A DO block that makes the new version's view of `table` in `schema` match the table: every
/// column, a shadow `_cutover_new_c` shown as `c` in place of `c`; with the table's privileges
/// granted on it (and USAGE on the schema). Without shadow columns left it drops the view, and
/// the schema once empty.
pub fn refresh_view_sql(table: &str, schema: &str) -> String {
    let t = regclass(table);
    format!(
        "-- the new version reads {table} through {schema}.{name} (search_path {schema}, then \
         its own)\n\
         DO $cutover$\nDECLARE\n  rel text := (SELECT relname FROM pg_class WHERE oid = {t});\n  \
         cols text;\n  g record;\nBEGIN\n  EXECUTE format('DROP VIEW IF EXISTS %I.%I', \
         '{schema}', rel);\n  SELECT string_agg(CASE WHEN s.attname IS NULL THEN \
         quote_ident(a.attname)\n      ELSE format('%I AS %I', s.attname, a.attname) END, ', ' \
         ORDER BY a.attnum)\n    INTO cols FROM pg_attribute a\n    LEFT JOIN pg_attribute s ON \
         s.attrelid = a.attrelid AND NOT s.attisdropped\n      AND s.attname = \
         '{SHADOW_PREFIX}' || a.attname\n    WHERE a.attrelid = {t} AND a.attnum > 0 AND NOT \
         a.attisdropped\n      AND left(a.attname, {n}) <> '{SHADOW_PREFIX}';\n  IF NOT \
         EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = {t} AND NOT attisdropped\n      AND \
         left(attname, {n}) = '{SHADOW_PREFIX}') THEN\n    IF NOT EXISTS (SELECT 1 FROM pg_class \
         c JOIN pg_namespace n ON n.oid = c.relnamespace\n        WHERE n.nspname = '{schema}') \
         THEN\n      EXECUTE format('DROP SCHEMA IF EXISTS %I', '{schema}');\n    END IF;\n    \
         RETURN;\n  END IF;\n  EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', '{schema}');\n  \
         {create}\n{grants}\n{defaults}\nEND\n$cutover$;",
        defaults = view_defaults_sql(&t, schema),
        create = invoker_view_sql(
            &format!("format('%I.%I', '{schema}', rel)"),
            &format!("format('SELECT %s FROM %s', cols, {t})"),
            &table.replace('\'', "''"),
        ),
        grants = grants_body(
            &table.replace('\'', "''"),
            &format!("format('%I.%I', '{schema}', rel)"),
            true,
            Some(&format!("'{schema}'")),
        ),
        name = super::relation(table),
        n = SHADOW_PREFIX.len(),
    )
}

/// The new column's default: the one the statement sets beside the type, or the old column's
/// carried over ([`carry_default_sql`]); a comment when the statement drops it.
pub fn default_sql(r: &ColumnRename, c: &Conversion) -> String {
    match &c.new_default {
        Some(Some(d)) => format!(
            "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {d};",
            r.table, r.to
        ),
        Some(None) => format!("-- {}'s default is dropped", r.from),
        None => carry_default_sql(r),
    }
}

/// PL/pgSQL giving each column the view `schema.rel` shows from a shadow the old column's
/// default, which the new version's inserts that leave the column out then get in the new
/// type (without it they got the old column's default converted up: `now()` as a `timestamp`
/// in the session's zone, then through the USING). A default that does not convert is left
/// out: the table's applies, converted by the trigger. `t` is the table's regclass literal.
fn view_defaults_sql(t: &str, schema: &str) -> String {
    format!(
        "  FOR g IN SELECT a.attname AS col, pg_get_expr(d.adbin, d.adrelid) AS def\n    FROM \
         pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum\n    \
         JOIN pg_attribute s ON s.attrelid = a.attrelid AND NOT s.attisdropped\n      AND \
         s.attname = '{SHADOW_PREFIX}' || a.attname\n    WHERE a.attrelid = {t} AND NOT \
         a.attisdropped LOOP\n    BEGIN\n      EXECUTE format('ALTER VIEW %I.%I ALTER COLUMN %I \
         SET DEFAULT %s', '{schema}', rel, g.col, g.def);\n    EXCEPTION WHEN others THEN\n      \
         NULL;\n    END;\n  END LOOP;"
    )
}

/// PL/pgSQL making the view named by the SQL expression `name` (text) from the query `query`
/// (a text expression) over the table `table` (as written, quotes doubled for a literal).
/// A view reads its table with its owner's privileges (the role that ran the migration), so the
/// table's grants, column privileges included, are granted on it ([`grants_body`]). On a table
/// with row-level security that would skip the policies: there the view checks privileges and
/// policies as its caller (`security_invoker`, PostgreSQL 15; manual: CREATE VIEW, Rules and
/// Privileges), and before 15 the step stops.
pub fn invoker_view_sql(name: &str, query: &str, table: &str) -> String {
    format!(
        "IF NOT (SELECT relrowsecurity FROM pg_class WHERE oid = '{table}'::regclass) THEN\n    \
         EXECUTE format('CREATE VIEW %s AS %s', {name}, {query});\n  ELSIF \
         current_setting('server_version_num')::int >= 150000 THEN\n    EXECUTE format('CREATE \
         VIEW %s WITH (security_invoker = true) AS %s', {name}, {query});\n  ELSE\n    RAISE \
         EXCEPTION 'row-level security on %: PostgreSQL before 15 cannot make a view check it as \
         the caller', '{table}';\n  END IF;"
    )
}

/// PL/pgSQL granting on the relation named by the text expression `target` what the table
/// `table` (as written, quotes doubled for a literal) is granted; with `columns`, its column
/// privileges too (`GRANT SELECT (a, b)`); with a schema (a text expression, or NULL), USAGE on
/// it to each grantee. Needs a `g record` variable.
pub(super) fn grants_body(
    table: &str,
    target: &str,
    columns: bool,
    schema: Option<&str>,
) -> String {
    let usage = schema.map_or(String::new(), |s| {
        format!("\n    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %s', {s}, g.who);")
    });
    let mut out = format!(
        "  FOR g IN SELECT DISTINCT CASE WHEN x.grantee = 0 THEN 'PUBLIC'\n      ELSE \
         quote_ident(pg_get_userbyid(x.grantee)) END AS who, x.privilege_type AS what\n    FROM \
         pg_class c, aclexplode(c.relacl) x WHERE c.oid = '{table}'::regclass LOOP{usage}\n    \
         EXECUTE format('GRANT %s ON %s TO %s', g.what, {target}, g.who);\n  END LOOP;"
    );
    if columns {
        out.push_str(&format!(
            "\n  FOR g IN SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC'\n      ELSE \
             quote_ident(pg_get_userbyid(x.grantee)) END AS who, x.privilege_type AS what, \
             a.attname AS col\n    FROM pg_attribute a, aclexplode(a.attacl) x\n    WHERE \
             a.attrelid = '{table}'::regclass AND a.attacl IS NOT NULL LOOP\n    EXECUTE \
             format('GRANT %s (%I) ON %s TO %s', g.what, g.col, {target}, g.who);\n  END LOOP;"
        ));
    }
    out
}

/// A DO block giving `to` the default `from` has, if any: `SET DEFAULT` converts it to the new
/// type as PostgreSQL's own type change does (manual: ALTER TABLE, `SET DATA TYPE`: "the
/// default expression for the column (if any) will be converted as well").
pub fn carry_default_sql(r: &ColumnRename) -> String {
    let t = regclass(&r.table);
    format!(
        "-- {from}'s default, if it has one, goes to {to}\nDO $cutover$\nDECLARE d text;\nBEGIN\n  \
         SELECT pg_get_expr(ad.adbin, ad.adrelid) INTO d FROM pg_attrdef ad\n    JOIN \
         pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum\n    WHERE \
         ad.adrelid = {t} AND a.attname = '{from_raw}';\n  IF d IS NOT NULL THEN\n    EXECUTE \
         format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s', {t}, '{to_raw}', d);\n  END \
         IF;\nEND\n$cutover$;",
        from = r.from,
        to = r.to,
        from_raw = bare(&r.from).replace('\'', "''"),
        to_raw = bare(&r.to).replace('\'', "''"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_keeps_quoting() {
        assert_eq!(shadow_column("amount"), "_cutover_new_amount");
        assert_eq!(shadow_column("Amount"), "_cutover_new_amount");
        assert_eq!(shadow_column("\"Amount\""), "\"_cutover_new_Amount\"");
    }
}
