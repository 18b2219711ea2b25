//! The online rewrite of `RENAME COLUMN`: a migration holding renames is split into a generated
//! expand part (add the new column, keep both in sync), a `backfill/<table>.<column>` step per
//! rename, and a generated contract part (drop the old column) that runs after the old version
//! is retired. The rewrite's own reminders (what it does not carry over) become findings.

use super::migrate::{Migrate, migrate_step, refs, terminated};
use super::policy::finding;
use super::steps::step;
use super::steps::svc_dbs;
use super::{ContractPart, Ctx};
use crate::analysis::{
    ColumnRename, Conversion, Fill, Inverse, MigrationAnalysis, Phase, StmtPhase,
};
use crate::dag::{BackfillParams, Builder, ColumnCopy, Params};
use crate::lint::Finding;
use crate::rewrite::{RenameRewrite, rename_columns};
use crate::spec::{Database, Service};
use petgraph::graph::NodeIndex;
use std::collections::BTreeMap;

/// The steps of a rewritten migration.
pub(super) struct Split<'a> {
    /// Its generated expand step.
    pub expand: NodeIndex,
    /// One backfill per rename, after the expand step.
    pub backfills: Vec<NodeIndex>,
    /// What it runs in the contract phase.
    pub contract: ContractPart<'a>,
}

/// Adds the expand step and the backfills of `m`, which holds renames, after `prev`.
/// With `views` (the new version's views made by an earlier migration), the expand step runs
/// around them ([`super::phases::around_views`]).
pub(super) fn rewrite_renames<'a>(
    cx: &Ctx,
    b: &mut Builder,
    (db, m): (&Database, &'a MigrationAnalysis),
    prev: &[NodeIndex],
    findings: &mut Vec<Finding>,
    views: Option<&Views>,
) -> Split<'a> {
    let renames = rewrites_of(cx, db, m);
    let Parts {
        expand_sql,
        mut expand_undo,
        contract_sql,
        undo_known,
    } = parts(m, &renames);
    expand_undo.reverse();
    let around = |sql: String| super::phases::around_views(views, m, Some(&sql), &[]);
    let undo = undo_known.then(|| expand_undo.join("\n")).and_then(around);
    let expand = Migrate {
        db,
        m,
        phase: Phase::Expand,
        statements: refs(m, |s| s.phase != StmtPhase::Contract),
        generated: around(expand_sql.join("\n")),
        undo_sql: undo,
        reversible_note: None,
    };
    let n = migrate_step(cx, b, expand, prev);
    let mut backfills: Vec<NodeIndex> = m
        .statements
        .iter()
        .filter_map(|s| s.fill.as_ref())
        .map(|f| fill_step(cx, b, db, f, n))
        .collect();
    for group in by_table(&renames) {
        backfills.push(backfill_step(cx, b, db, &group, n));
    }
    for (line, r) in &renames {
        rename_findings(m, *line, r, findings);
    }
    Split {
        expand: n,
        backfills,
        contract: (
            m,
            Some(contract_sql.join("\n")),
            refs(m, |s| s.phase != StmtPhase::Expand),
        ),
    }
}

/// The SQL of a split migration, statement by statement.
struct Parts {
    /// The expand step's pieces, in file order.
    expand_sql: Vec<String>,
    /// Their undo, in file order.
    expand_undo: Vec<String>,
    /// The contract step's pieces, in file order.
    contract_sql: Vec<String>,
    /// Every piece of expand has a known undo.
    undo_known: bool,
}

/// The expand and contract SQL of `m`: each rewritten statement's generated parts (column
/// renames and type changes from `renames`, table renames, fills), the others as written in
/// their phase (a neutral one in both).
fn parts(m: &MigrationAnalysis, renames: &[(u32, RenameRewrite)]) -> Parts {
    let mut expand_sql = Vec::new();
    let mut expand_undo = Vec::new();
    let mut contract_sql = Vec::new();
    let mut undo_known = true;
    for s in &m.statements {
        if let Some(f) = &s.fill {
            let head = format!("-- line {}: {}\n", s.line, s.summary);
            expand_sql.push(format!("{head}{}", crate::rewrite::fill::expand_sql(f)));
            expand_undo.push(crate::rewrite::fill::undo_sql(f));
            contract_sql.push(format!("{head}{}", crate::rewrite::fill::contract_sql(f)));
            continue;
        }
        if let Some(t) = &s.table_rename {
            let head = format!("-- line {}: {}\n", s.line, s.summary);
            expand_sql.push(format!("{head}{}", crate::rewrite::table::expand_sql(t)));
            expand_undo.push(crate::rewrite::table::undo_sql(t));
            contract_sql.push(format!("{head}{}", crate::rewrite::table::contract_sql(t)));
            continue;
        }
        match (&s.rename, s.phase) {
            (Some(_), _) => {
                let r = &renames.iter().find(|(l, _)| *l == s.line).unwrap().1;
                expand_sql.push(format!(
                    "-- line {}: {}\n{}",
                    s.line, s.summary, r.expand_sql
                ));
                expand_undo.push(r.expand_undo_sql.clone());
                contract_sql.push(format!(
                    "-- line {}: {}\n{}",
                    s.line, s.summary, r.contract_sql
                ));
            }
            (None, StmtPhase::Neutral) => {
                expand_sql.push(terminated(&s.sql));
                contract_sql.push(terminated(&s.sql));
            }
            (None, StmtPhase::Contract) => contract_sql.push(terminated(&s.sql)),
            (None, _) => {
                expand_sql.push(terminated(&s.sql));
                match &s.inverse {
                    Inverse::Sql(sql) => expand_undo.push(sql.clone()),
                    Inverse::Noop => {}
                    Inverse::Unknown(_) => undo_known = false,
                }
            }
        }
    }
    Parts {
        expand_sql,
        expand_undo,
        contract_sql,
        undo_known,
    }
}

/// The rewrite of each column rename and type change of `m`, by line.
fn rewrites_of(cx: &Ctx, db: &Database, m: &MigrationAnalysis) -> Vec<(u32, RenameRewrite)> {
    // A transactional migration's scripts run whole between a drop of the views and their
    // refresh ([`super::phases::around_views`]); another's statements do it each for itself.
    let view_schema = (!m.transactional).then(|| view_schema(cx, db, m));
    let mut renames: Vec<ColumnRename> = m.renames().filter_map(|s| s.rename.clone()).collect();
    share_indexes(&mut renames);
    for (r, s) in renames.iter_mut().zip(m.renames()) {
        for i in &mut r.indexes {
            i.name = final_index_name(cx, db, (m, s.line), &i.name);
        }
    }
    let refs: Vec<&ColumnRename> = renames.iter().collect();
    let lines = m.renames().map(|s| s.line);
    lines
        .zip(rename_columns(&refs, view_schema.as_deref()))
        .collect()
}

/// An index several rewrites of one table in one migration carry (a multi-column index on two
/// renamed or retyped columns) is built once, by the last of them, on all their new columns:
/// each copy would otherwise name another's old column, and go with it at contract.
fn share_indexes(renames: &mut [ColumnRename]) {
    let n = renames.len();
    for i in 0..n {
        let table = crate::rewrite::table_key(&renames[i].table);
        let others: Vec<(String, String)> = renames
            .iter()
            .enumerate()
            .filter(|(j, r)| *j != i && crate::rewrite::table_key(&r.table) == table)
            .map(|(_, r)| (r.from.clone(), r.to.clone()))
            .collect();
        let later: Vec<String> = renames[i + 1..]
            .iter()
            .filter(|r| crate::rewrite::table_key(&r.table) == table)
            .flat_map(|r| r.indexes.iter().map(|x| x.name.clone()))
            .collect();
        let r = &mut renames[i];
        r.indexes.retain(|x| !later.contains(&x.name));
        for x in &mut r.indexes {
            for (from, to) in &others {
                if let Some(sql) = crate::rewrite::index::renamed_in(&x.create_sql, from, to) {
                    x.create_sql = sql;
                }
            }
        }
    }
}

/// The name the index `name` (unqualified, as SQL) has at the end of the release: a later `ALTER
/// INDEX ... RENAME TO` (after `line` of `m`, or in a later migration of `db`) renames the old
/// index, which the contract drops; the carried one takes the name it ends with.
fn final_index_name(
    cx: &Ctx,
    db: &Database,
    (m, line): (&MigrationAnalysis, u32),
    name: &str,
) -> String {
    let mut name = name.to_string();
    let later = cx
        .analyzed
        .iter()
        .filter(|(n, _)| *n == db.name)
        .flat_map(|(_, ms)| ms.iter())
        .filter(|x| x.version >= m.version)
        .flat_map(|x| {
            x.statements
                .iter()
                .filter(move |s| x.version > m.version || s.line > line)
        });
    for s in later {
        if let Some((from, to)) = crate::rewrite::index::index_rename(&s.sql)
            && crate::schema::normalize(crate::rewrite::relation(&from))
                == crate::schema::normalize(&name)
        {
            name = to;
        }
    }
    name
}

/// The rewrites of `renames` grouped by table, in the order each table first appears: one
/// backfill fills a table's columns in one pass.
fn by_table(renames: &[(u32, RenameRewrite)]) -> Vec<Vec<&RenameRewrite>> {
    let mut groups: Vec<Vec<&RenameRewrite>> = Vec::new();
    for (_, r) in renames {
        let key = crate::rewrite::table_key(&r.rename.table);
        match groups
            .iter_mut()
            .find(|g| crate::rewrite::table_key(&g[0].rename.table) == key)
        {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
}

/// The schema of the new version's views: one per release and database, named after the
/// database's last migration of the release (`m` is one of them).
fn view_schema(cx: &Ctx, db: &Database, m: &MigrationAnalysis) -> String {
    let last = cx
        .analyzed
        .iter()
        .filter(|(n, _)| *n == db.name)
        .flat_map(|(_, ms)| ms.iter().map(|m| m.version))
        .max()
        .unwrap_or(m.version);
    crate::rewrite::version_schema(last)
}

/// The environment of `svc`'s new version: its `env`, and, when a database it uses has a type
/// change rewritten in place this release, `PGOPTIONS` putting the schema of the new version's
/// views first on its `search_path` (appended to a `PGOPTIONS` of its own). libpq and sqlx
/// read `PGOPTIONS` (PostgreSQL manual: libpq, Environment Variables; the `options`
/// connection parameter); schemas on the path that do not exist are skipped (Schema Search
/// Path), so the setting is harmless once the contract dropped the views.
pub(super) fn new_version_env(cx: &Ctx, svc: &Service) -> BTreeMap<String, String> {
    let mut env = svc.env.clone();
    let mut schemas: Vec<String> = Vec::new();
    for name in svc_dbs(svc, &cx.databases) {
        schemas.extend(release_views(cx, name).map(|v| v.schema));
    }
    if !schemas.is_empty() {
        let set = format!("-c search_path={},\"$user\",public", schemas.join(","));
        let value = match env.get("PGOPTIONS") {
            Some(own) => format!("{own} {set}"),
            None => set,
        };
        env.insert("PGOPTIONS".into(), value);
    }
    env
}

/// The views the new version reads during a release on one database.
pub(super) struct Views {
    /// Their schema ([`view_schema`]).
    pub schema: String,
    /// The tables they show, as written.
    pub tables: Vec<String>,
    /// The version of the first migration that makes one.
    pub first: u64,
}

/// The views the new version reads during this release on database `name`, when a type change
/// is rewritten in place there.
pub(super) fn release_views(cx: &Ctx, name: &str) -> Option<Views> {
    let ms = cx
        .analyzed
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, ms)| ms)?;
    let mut tables: Vec<String> = Vec::new();
    let mut first = None;
    for m in ms {
        for s in m.renames() {
            let r = s.rename.as_ref().expect("renames() have one");
            if r.conversion.as_ref().is_some_and(|c| c.swap) {
                first = first.or(Some(m));
                if !tables.contains(&r.table) {
                    tables.push(r.table.clone());
                }
            }
        }
    }
    let first = first?;
    Some(Views {
        schema: view_schema(cx, cx.db(name), first),
        tables,
        first: first.version,
    })
}

/// The step filling the NULL rows of `f`'s column, after the expand step `n`.
fn fill_step(cx: &Ctx, b: &mut Builder, db: &Database, f: &Fill, n: NodeIndex) -> NodeIndex {
    let table_col = format!(
        "{}.{}",
        crate::schema::plain(&f.table),
        crate::schema::plain(&f.column)
    );
    let key = f.key.clone().unwrap_or_else(|| "id".into());
    let id = format!("backfill/{}", cx.qualify(&db.name, &table_col));
    b.add(
        step(
            &id,
            None,
            &format!(
                "Set the NULL rows of `{}` on `{}` to `{}` in batches of {} rows by `{key}`.",
                f.column, f.table, f.expr, db.backfill.batch_size
            ),
            true,
            true,
            "nothing to undo: the rows keep the value; undoing the expand step drops the trigger",
            Params::Backfill(BackfillParams {
                database: db.name.clone(),
                url_env: db.url_env.clone(),
                table: f.table.clone(),
                key: key.clone(),
                from_column: f.column.clone(),
                to_column: f.column.clone(),
                value: Some(format!("({})", f.expr)),
                pending: Some(format!("{} IS NULL", f.column)),
                replica: false,
                more: Vec::new(),
                indexes: Vec::new(),
                lock_timeout: None,
                batch_size: db.backfill.batch_size,
                pause: db.backfill.pause,
                batch_sql: crate::rewrite::fill::batch_sql(f, &key),
            }),
        ),
        &[n],
    )
}

/// The condition of a row the backfill of `members` has still to do, when the executor's own
/// (`to IS DISTINCT FROM value` for each column) would fail: a type without equality.
fn pending(members: &[&ColumnRename]) -> Option<String> {
    let no_equality = |r: &&&ColumnRename| {
        crate::rewrite::new_type(r).is_some_and(|t| !crate::rewrite::has_equality(t))
    };
    members.iter().any(|r| no_equality(&r)).then(|| {
        members
            .iter()
            .map(|r| {
                let (_, compared) = crate::rewrite::copy_of(r);
                crate::rewrite::distinct(&r.to, &compared, crate::rewrite::new_type(r))
            })
            .collect::<Vec<_>>()
            .join(" OR ")
    })
}

/// What a backfill of `members` (one table's renames and type changes) does, in words.
fn backfill_description(
    db: &Database,
    members: &[&ColumnRename],
    key: &str,
    indexes: usize,
) -> String {
    let pairs: Vec<String> = members
        .iter()
        .map(|r| format!("`{}` into `{}`", r.from, r.to))
        .collect();
    let built = match indexes {
        0 => String::new(),
        1 => ", then build its index on the new column concurrently".to_string(),
        n => format!(", then build their {n} indexes on the new columns concurrently"),
    };
    format!(
        "Copy {} on `{}` in batches of {} rows by `{key}`{built}.",
        super::policy::and_list(&pairs),
        members[0].table,
        db.backfill.batch_size,
    )
}

/// The step copying renamed or retyped columns' values into their new columns, after the expand
/// step `n`: one pass over the table for the columns of `group` (one table's rewrites in one
/// migration). Its id is `backfill/<table>.<column>`, with every new column after the first
/// joined by `+`.
fn backfill_step(
    cx: &Ctx,
    b: &mut Builder,
    db: &Database,
    group: &[&RenameRewrite],
    n: NodeIndex,
) -> NodeIndex {
    let name = &db.name;
    let r = group[0];
    let table = &r.rename.table;
    let tos: Vec<String> = group
        .iter()
        .map(|g| crate::schema::plain(&g.rename.to))
        .collect();
    let table_col = format!("{}.{}", crate::schema::plain(table), tos.join("+"));
    let id = format!("backfill/{}", cx.qualify(name, &table_col));
    let value = |g: &RenameRewrite| {
        g.rename
            .conversion
            .as_ref()
            .map(|c| crate::rewrite::up_sql(&g.rename, c))
    };
    let members: Vec<&ColumnRename> = group.iter().map(|g| &g.rename).collect();
    let indexes: Vec<String> = members
        .iter()
        .flat_map(|r| r.indexes.iter().map(|i| i.create_sql.clone()))
        .collect();
    b.add(
        step(
            &id,
            None,
            &backfill_description(db, &members, &r.key, indexes.len()),
            true,
            true,
            if group.len() == 1 {
                "nothing to undo; undoing the expand step drops the new column"
            } else {
                "nothing to undo; undoing the expand step drops the new columns"
            },
            Params::Backfill(BackfillParams {
                database: name.clone(),
                url_env: db.url_env.clone(),
                table: table.clone(),
                key: r.key.clone(),
                from_column: r.rename.from.clone(),
                to_column: r.rename.to.clone(),
                value: value(r),
                pending: pending(&members),
                replica: true,
                more: group[1..]
                    .iter()
                    .map(|g| ColumnCopy {
                        from_column: g.rename.from.clone(),
                        to_column: g.rename.to.clone(),
                        value: value(g),
                    })
                    .collect(),
                lock_timeout: (!indexes.is_empty()).then_some(db.lock_timeout),
                indexes,
                batch_size: db.backfill.batch_size,
                pause: db.backfill.pause,
                batch_sql: crate::rewrite::backfill_batch_sql(&members, &r.key),
            }),
        ),
        &[n],
    )
}

/// What the rewrite of `r` in `m` does not carry over: indexes and constraints, a type or key
/// the migrations do not declare, a key the batches cannot walk.
fn rename_findings(
    m: &MigrationAnalysis,
    line: u32,
    r: &RenameRewrite,
    findings: &mut Vec<Finding>,
) {
    // A rename whose default made it a conversion to its own type is reminded as a rename.
    let to_itself = |c: &Conversion| {
        !c.swap
            && c.using.is_none()
            && r.rename.column_type.as_deref() == c.new_type.split(" COLLATE ").next()
    };
    if let Some(c) = r.rename.conversion.as_ref().filter(|c| !to_itself(c)) {
        findings.push(conversion_incomplete(m, r, c));
        if let Some(f) = backfill_key_finding(m, r, c.line) {
            findings.push(f);
        }
        return;
    }
    findings.push(finding(
        "rename-rewrite-incomplete",
        m,
        line,
        format!(
            "the rewrite of `{t}.{a}` → `{b}` copies values{}; constraints, column privileges \
             (`GRANT ... ({a}) ON {t}`) and indexes the migrations do not declare on `{a}` are \
             not recreated on `{b}`",
            carried(&r.rename),
            t = r.rename.table,
            a = r.rename.from,
            b = r.rename.to
        ),
        format!(
            "if `{a}` has such indexes or constraints, add them for `{b}` in an expand migration \
             (CREATE INDEX CONCURRENTLY, ADD CONSTRAINT ... NOT VALID); if a role has a column \
             privilege on `{a}`, grant it on `{b}` there too (`GRANT SELECT ({b}) ON {t} TO \
             role`)",
            t = r.rename.table,
            a = r.rename.from,
            b = r.rename.to
        ),
    ));
    if r.column_type.is_none() {
        findings.push(finding(
            "rename-type-unknown",
            m,
            line,
            format!(
                "the type of `{}.{}` is not declared in the migrations; the expand step copies it \
                 from the live catalog",
                r.rename.table, r.rename.from
            ),
            "declare the table in the migrations (or a baseline migration) to see the exact type in \
             the plan",
        ));
    }
    if let Some(f) = backfill_key_finding(m, r, line) {
        findings.push(f);
    }
    if !r.key_known {
        findings.push(finding(
            "rename-type-unknown",
            m,
            line,
            format!(
                "the primary key of `{}` is not declared in the migrations; the backfill assumes \
                 `id`",
                r.rename.table
            ),
            "declare the table's primary key in the migrations (or a baseline migration)",
        ));
    }
}

/// What a rewrite says of the indexes it carries: `, and builds its indexes `i` and `j` on the
/// new column (they keep their names)`, or nothing.
fn carried(r: &ColumnRename) -> String {
    let names: Vec<String> = r.indexes.iter().map(|i| format!("`{}`", i.name)).collect();
    match names.len() {
        0 => String::new(),
        n => format!(
            ", and builds its {} {} on the new column before traffic moves (keeping {} name{})",
            if n == 1 { "index" } else { "indexes" },
            super::policy::and_list(&names),
            if n == 1 { "its" } else { "their" },
            if n == 1 { "" } else { "s" }
        ),
    }
}

/// The reminder of a type change's rewrite: what it does not carry to the new column.
fn conversion_incomplete(m: &MigrationAnalysis, r: &RenameRewrite, c: &Conversion) -> Finding {
    let (t, a) = (&r.rename.table, &r.rename.from);
    let (column, hint) = if c.swap {
        (
            format!("`{a}`"),
            format!(
                "if `{a}` has such indexes or CHECK constraints, create them on `{b}` in an \
                 expand migration after this one (`CREATE INDEX CONCURRENTLY ... ON {t} ({b})`, \
                 `ADD CONSTRAINT ... NOT VALID`): they are renamed with it",
                b = r.rename.to
            ),
        )
    } else {
        (
            format!("`{a}` (renamed `{}`)", r.rename.to),
            format!(
                "if `{a}` has such indexes or CHECK constraints, create them on `{}` in an expand \
                 migration after this one",
                r.rename.to
            ),
        )
    };
    finding(
        "type-change-rewrite-incomplete",
        m,
        c.line,
        format!(
            "the rewrite of {column} on `{t}` to `{}` carries its values, NOT NULL and \
             default{}; its CHECK constraints, column privileges and the indexes the migrations do \
             not declare go with the old column at contract",
            c.new_type,
            carried(&r.rename)
        ),
        hint,
    )
}

/// The finding on a key the backfill of `r` (in `m`, on `line`) cannot walk in integer ranges:
/// a composite key, or one of a declared type that is not an integer. None otherwise.
fn backfill_key_finding(m: &MigrationAnalysis, r: &RenameRewrite, line: u32) -> Option<Finding> {
    let kt = &r.rename.key_types;
    // The migrations declare the column, so its table: one without a primary key has nothing
    // for the batches to walk (the backfill would look for `id`).
    if !r.key_known && r.rename.column_type.is_some() {
        return Some(finding(
            "backfill-key-unsupported",
            m,
            line,
            format!(
                "the backfill of `{}.{}` walks the table's primary key, but `{}` has none",
                r.rename.table, r.rename.to, r.rename.table
            ),
            "give the table an integer primary key (e.g. a bigint identity column) before this \
             release",
        ));
    }
    if !unwalkable(kt) {
        return None;
    }
    let what = if kt.len() > 1 {
        format!("a composite key ({})", kt.join(", "))
    } else {
        format!("`{}` of type {}", r.key, kt[0])
    };
    Some(finding(
        "backfill-key-unsupported",
        m,
        line,
        format!(
            "the backfill of `{}.{}` walks the primary key in integer ranges, but `{}` has \
             {what}",
            r.rename.table, r.rename.to, r.rename.table
        ),
        "give the table an integer key (e.g. a bigint identity column) before this release, or \
         copy the column yourself in batches and rename without the rewrite",
    ))
}

/// Whether a primary key of the declared types `kt` (in key order) cannot be walked in integer
/// ranges: a composite key, or one of a declared type that is not an integer. An unknown key
/// (no types) is not judged.
pub(super) fn unwalkable(kt: &[String]) -> bool {
    kt.len() > 1
        || kt
            .first()
            .is_some_and(|ty| !ty.is_empty() && !is_integer(ty))
}

/// Whether the type `ty` (as the migrations write it) is one of PostgreSQL's integer types or
/// their serial forms.
fn is_integer(ty: &str) -> bool {
    matches!(
        ty.trim().to_ascii_lowercase().as_str(),
        "smallint"
            | "integer"
            | "int"
            | "bigint"
            | "int2"
            | "int4"
            | "int8"
            | "smallserial"
            | "serial"
            | "bigserial"
            | "serial2"
            | "serial4"
            | "serial8"
    )
}
