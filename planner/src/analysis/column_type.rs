//! `ALTER COLUMN ... TYPE` on a table the running version uses: [`classify_set_type`] makes it
//! expand when PostgreSQL changes the type in place and the old version cannot notice (the table
//! in [`crate::types`]), breaking otherwise; and the schema model follows the change, collation
//! included.
//!
//! A collation is part of the judgement because PostgreSQL gives the column the new type's
//! default collation unless the ALTER names one (manual: ALTER TABLE, `SET DATA TYPE`, "the
//! optional COLLATE clause specifies a collation for the new column; if omitted, the collation is
//! the default for the new column type"): a column declared `COLLATE "C"` loses it, its indexes
//! are rebuilt and its comparisons change, even between binary-coercible types.

use super::{Class, RECIPE_ALTER_TYPE, StmtPhase, text_of};
use crate::analysis::{ColumnRename, Conversion};
use crate::lint::RuleId;
use crate::schema::{Attachment, Schema, normalize, normalize_collation};
use crate::types;
use squawk_syntax::ast::{self, AstNode};

/// The collation a SET TYPE names, as written (`None`: the type's default).
fn named_collation(st: &ast::SetType) -> Option<String> {
    text_of(st.collate().and_then(|c| c.collation_ref()))
}

/// Classifies `ALTER COLUMN col TYPE ...` on an existing table into `c`: expand with a note
/// when [`type_change`] finds the change in place, breaking with its reason otherwise.
pub(super) fn classify_set_type(
    c: &mut Class,
    schema: &Schema,
    table: &str,
    col: &str,
    st: &ast::SetType,
) {
    let ty = text_of(st.ty()).unwrap_or_default();
    let old = schema
        .table(table)
        .and_then(|t| t.column(&normalize(col)))
        .map(|c| c.ty.clone())
        .filter(|ty| !ty.is_empty());
    let change = type_change(schema, table, col, st, old.as_deref(), &ty);
    let from = old
        .as_deref()
        .map_or(String::new(), |o| format!(" from `{o}`"));
    match change {
        Ok(rule) => {
            c.raise(StmtPhase::Expand);
            c.retyped = Some((normalize(table), normalize(col)));
            let note = rule.note.map_or(String::new(), |n| format!(" ({n})"));
            c.finding(
                RuleId::AlterColumnTypeNoRewrite,
                format!(
                    "changing `{table}.{col}`{from} to `{ty}` needs no table rewrite ({}), but \
                     ALTER TABLE still takes an ACCESS EXCLUSIVE lock for a moment",
                    rule.what
                ),
                format!(
                    "safe while the old version runs: it reads and writes the column as \
                     before{note}; mind that the lock waits behind long transactions, that under it \
                     PostgreSQL still rebuilds indexes on expressions of the column or with a WHERE \
                     that uses it and re-checks CHECK constraints on it with a full scan, and that \
                     the running version's prepared statements that return the column fail with \
                     `cached plan must not change result type` until prepared again"
                ),
            );
        }
        Err(why) => {
            c.raise(StmtPhase::Breaking);
            c.rename = Some(conversion_of(schema, table, col, st, &ty, old.clone()));
            let hint = if old.is_none() {
                format!(
                    "cutover learns column types from the migrations, and they do not declare \
                     `{table}.{col}`; {RECIPE_ALTER_TYPE}"
                )
            } else {
                RECIPE_ALTER_TYPE.to_string()
            };
            let hint = format!(
                "`cutover plan` rewrites it: a column of the new type beside the old one, kept in \
                 sync both ways by a trigger, a backfill, the new version reading it through a view, \
                 and the swap after the old version is retired; or, by hand: {hint}"
            );
            c.finding(
                RuleId::BreakingAlterColumnType,
                format!("changing the type of `{table}.{col}`{from} to `{ty}` {why}"),
                hint,
            );
        }
    }
}

/// The rewrite of `ALTER COLUMN col TYPE ty` (`st`) on `table`, whose column has the type
/// `old` as far as the migrations tell: a shadow column of the new type (see
/// [`crate::rewrite`]). What the shadow cannot carry is in its attachments: everything a
/// rename's copy cannot (a default excepted: the sync trigger tells the versions' writes apart
/// by the shadow column, which only the new version writes), and the column's UNIQUE
/// constraints, unique indexes and outgoing foreign keys, which the swap would drop with it.
fn conversion_of(
    schema: &Schema,
    table: &str,
    col: &str,
    st: &ast::SetType,
    ty: &str,
    old: Option<String>,
) -> ColumnRename {
    let t = schema.table(table);
    let key = normalize(col);
    let attachments = conversion_attachments(schema, table, col);
    let new_type = match named_collation(st) {
        Some(c) => format!("{ty} COLLATE {c}"),
        None => ty.to_string(),
    };
    let using = st.using_expr().map(|e| {
        let text = e.syntax().text().to_string();
        let text = text.trim();
        match text.get(..5) {
            Some(kw) if kw.eq_ignore_ascii_case("using") => text[5..].trim().to_string(),
            _ => text.to_string(),
        }
    });
    let plain = is_plain_cast(st, col, ty);
    let shadow = crate::rewrite::shadow_column(col);
    ColumnRename {
        table: table.to_string(),
        from: col.to_string(),
        indexes: crate::rewrite::index::carried(schema, table, (col, &shadow), false),
        to: shadow,
        column_type: old,
        not_null: t.and_then(|t| t.column(&key)).is_some_and(|c| c.not_null),
        collation: None,
        key: t.and_then(|t| t.primary_key.first().cloned()),
        key_types: t.map(|t| t.key_types()).unwrap_or_default(),
        attachments,
        conversion: Some(Conversion {
            new_type,
            using,
            plain_cast: plain,
            down: None,
            new_default: None,
            swap: true,
            line: 0,
        }),
    }
}

/// What a shadow column cannot carry for `table.col`: see [`conversion_of`].
fn conversion_attachments(schema: &Schema, table: &str, col: &str) -> Vec<Attachment> {
    let t = schema.table(table);
    let key = normalize(col);
    let mut attachments: Vec<Attachment> = schema
        .attachments(table, col)
        .into_iter()
        .filter(|a| !matches!(a, Attachment::Default { .. }))
        .collect();
    if let Some(t) = t {
        for u in t.unique.iter().filter(|u| u.columns.contains(&key)) {
            attachments.push(Attachment::UsedBy {
                what: "unique constraint".into(),
                name: u.name.clone(),
            });
        }
        for fk in t.foreign_keys.iter().filter(|f| f.columns.contains(&key)) {
            attachments.push(Attachment::UsedBy {
                what: "foreign key".into(),
                name: fk.name.clone(),
            });
        }
    }
    // A unique index using the column anywhere: its keys, an expression, its WHERE.
    let unique = schema.indexes_of(table).filter(|(_, i)| {
        i.unique
            && (i.columns.iter().flatten().any(|c| *c == key)
                || i.sql
                    .as_deref()
                    .is_some_and(|s| crate::rewrite::index::uses(s, col).is_some()))
    });
    for (name, _) in unique {
        attachments.push(Attachment::UsedBy {
            what: "unique index".into(),
            name: name.to_string(),
        });
    }
    if schema.is_partitioned(table) {
        attachments.push(Attachment::PartitionKey);
    }
    if crate::schema::bare(col).len() > 63 - crate::rewrite::SHADOW_PREFIX.len() {
        attachments.push(Attachment::LongName);
    }
    let qualified = normalize(table);
    if qualified.contains('.') && !qualified.starts_with("public.") {
        attachments.push(Attachment::QualifiedTable);
    }
    attachments
}

/// Whether `ALTER COLUMN col TYPE ty` on a column of type `old` changes it in place: the
/// [`types::NoRewrite`] row it matches, or why it does not. A USING clause is breaking (it can
/// change every value) unless it is the column itself or its cast to the new type, which is what
/// PostgreSQL does without one (Django writes `USING "col"::type`); a collation change is
/// breaking (it changes comparisons and rebuilds the column's indexes); otherwise
/// [`types::judge`] decides.
fn type_change(
    schema: &Schema,
    table: &str,
    col: &str,
    st: &ast::SetType,
    old: Option<&str>,
    ty: &str,
) -> Result<&'static types::NoRewrite, String> {
    let old_collation = schema.collation(table, col).map(str::to_string);
    let new_collation = named_collation(st).and_then(|c| normalize_collation(&c));
    if st.using_expr().is_some() && !is_plain_cast(st, col, ty) {
        Err(
            "has a USING clause, which can change every value: PostgreSQL rewrites the table under \
             an ACCESS EXCLUSIVE lock"
                .to_string(),
        )
    } else if old.is_some() && old_collation != new_collation {
        let name = |c: &Option<String>| {
            c.as_deref()
                .map_or("the default".to_string(), |c| format!("`{c}`"))
        };
        Err(format!(
            "changes the collation from {} to {}: comparisons and sort order change for the running \
             version, and PostgreSQL rebuilds the column's indexes under an ACCESS EXCLUSIVE lock",
            name(&old_collation),
            name(&new_collation)
        ))
    } else {
        let j = types::judge(old, ty);
        j.no_rewrite.ok_or(j.why)
    }
}

/// Whether the USING clause of a SET TYPE to `ty` is the column `col` itself or its cast to
/// `ty`: what PostgreSQL does without USING, and what Django writes on every type change
/// (`USING "col"::newtype`). `false` without a USING clause.
fn is_plain_cast(st: &ast::SetType, col: &str, ty: &str) -> bool {
    st.using_expr().is_some_and(|e| {
        let squash = |s: &str| -> String {
            s.chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_lowercase()
        };
        let e = squash(&e.syntax().text().to_string());
        let e = e.strip_prefix("using").unwrap_or(&e);
        let target = squash(ty);
        let col = normalize(col);
        let bare = col.trim_matches('"').to_lowercase();
        [col.to_lowercase(), bare.clone(), format!("\"{bare}\"")]
            .iter()
            .any(|c| {
                e == *c || e == format!("{c}::{target}") || e == format!("cast({c}as{target})")
            })
    })
}

/// The schema after `ALTER COLUMN col TYPE ...`: the new type as written, and the collation it
/// leaves.
pub(super) fn apply_set_type(schema: &mut Schema, table: &str, col: &str, st: &ast::SetType) {
    let ty = text_of(st.ty()).unwrap_or_default();
    schema.set_type(table, col, &ty);
    schema.set_collation(table, col, named_collation(st).as_deref());
}

/// Records the COLLATE clauses of a CREATE TABLE's columns.
pub(super) fn record_collations(schema: &mut Schema, table: &str, ct: &ast::CreateTable) {
    let Some(args) = ct.table_arg_list() else {
        return;
    };
    for arg in args.args() {
        if let ast::TableArg::Column(col) = arg {
            let collate = col.syntax().children().find_map(ast::Collate::cast);
            let name = text_of(col.name()).unwrap_or_default();
            record_collation(schema, table, &name, collate);
        }
    }
}

/// Records the COLLATE clause of one column (ADD COLUMN, or a CREATE TABLE column).
pub(super) fn record_collation(
    schema: &mut Schema,
    table: &str,
    col: &str,
    collate: Option<ast::Collate>,
) {
    let named = text_of(collate.and_then(|c| c.collation_ref()));
    schema.set_collation(table, col, named.as_deref());
}
