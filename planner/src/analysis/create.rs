//! CREATE statements: tables, indexes, views, functions, triggers, rules and the other objects
//! the schema model tracks, each with the DROP that undoes it.

use super::*;
use crate::schema::View;

/// The schema part of a qualified name as written (`app.t` → `app`, `"My.App"."T"` →
/// `"My.App"`), `None` for an unqualified one.
pub(super) fn schema_of(name: &str) -> Option<&str> {
    let mut quoted = false;
    let mut last_dot = None;
    for (i, c) in name.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => last_dot = Some(i),
            _ => {}
        }
    }
    last_dot.map(|i| &name[..i])
}

/// The kind of object a DROP or CREATE keyword names, as cutover tracks it (`None` for kinds it
/// does not).
pub(super) fn object_kind(word: &str, materialized: bool) -> Option<&'static str> {
    Some(match word {
        "view" if materialized => "materialized view",
        "view" => "view",
        "function" => "function",
        "procedure" => "procedure",
        "trigger" => "trigger",
        "sequence" => "sequence",
        "type" => "type",
        "domain" => "domain",
        "policy" => "policy",
        "extension" => "extension",
        "rule" => "rule",
        "statistics" => "statistics",
        "aggregate" => "aggregate",
        "collation" => "collation",
        "schema" => "schema",
        _ => return None,
    })
}

/// The key of an object in [`Schema::create_object`]: its normalized name, with `@table` for
/// objects named per table.
pub(super) fn object_key(name: &str, on: Option<&str>) -> String {
    match on {
        Some(table) => format!("{}@{}", normalize(name), normalize(table)),
        None => normalize(name),
    }
}

/// The object a CREATE statement makes, by kind and key.
pub(super) fn created_object(node: &SyntaxNode, w: &[SmolStr]) -> Option<(&'static str, String)> {
    let p = w.iter().position(|t| object_kind(t, false).is_some())?;
    let materialized = p > 0 && w[p - 1] == "materialized";
    let kind = object_kind(&w[p], materialized)?;
    let name = name_after(node, &w[p], &["if", "not", "exists"])?;
    let on = matches!(kind, "trigger" | "rule" | "policy")
        .then(|| name_after(node, "on", &[]))
        .flatten();
    Some((kind, object_key(&name, on.as_deref())))
}

/// `DROP <kind> <name>` for a CREATE statement, where the name can be read.
pub(super) fn create_inverse(node: &SyntaxNode, w: &[SmolStr]) -> Inverse {
    let kind_pos = w.iter().position(|t| {
        matches!(
            t.as_str(),
            "view"
                | "function"
                | "procedure"
                | "trigger"
                | "rule"
                | "sequence"
                | "type"
                | "schema"
                | "extension"
                | "domain"
                | "policy"
                | "statistics"
                | "collation"
                | "aggregate"
        )
    });
    let Some(p) = kind_pos else {
        return Inverse::Unknown(no_inverse_reason());
    };
    let kind = w[p].as_str();
    let materialized = p > 0 && w[p - 1] == "materialized";
    let Some(name) = name_after(node, kind, &["if", "not", "exists"]) else {
        return Inverse::Unknown(no_inverse_reason());
    };
    let kw = if materialized {
        "MATERIALIZED VIEW".to_string()
    } else {
        kind.to_uppercase()
    };
    match kind {
        "function" | "procedure" | "aggregate" => {
            let params = node
                .descendants()
                .find(|n| n.kind() == SyntaxKind::PARAM_LIST)
                .map(|n| n.text().to_string());
            match params {
                Some(p) if !p.to_lowercase().contains("default") && !p.contains('=') => {
                    Inverse::Sql(format!("DROP {kw} IF EXISTS {name}{p};"))
                }
                _ => Inverse::Unknown(
                    "the function's argument list has defaults; add a down migration".into(),
                ),
            }
        }
        "trigger" | "rule" | "policy" => match name_after(node, "on", &[]) {
            Some(table) => Inverse::Sql(format!("DROP {kw} IF EXISTS {name} ON {table};")),
            None => Inverse::Unknown(no_inverse_reason()),
        },
        _ => Inverse::Sql(format!("DROP {kw} IF EXISTS {name};")),
    }
}

/// CREATE TABLE: expand, undone by DROP TABLE; the schema model learns the table.
pub(super) fn create_table(
    ct: &ast::CreateTable,
    w: &[SmolStr],
    schema: &mut Schema,
    in_release: bool,
) -> Class {
    let name = text_of(ct.table_name()).unwrap_or_default();
    // On a table that exists, IF NOT EXISTS only issues a notice (PostgreSQL manual,
    // CREATE TABLE): the table stays what it was, and stays live.
    if has_seq(&w[..w.len().min(8)], &["if", "not", "exists"]) && schema.table(&name).is_some() {
        return Class::new(StmtPhase::Neutral, Inverse::Noop);
    }
    learn::create_table(schema, ct, in_release);
    column_type::record_collations(schema, &name, ct);
    let mut c = Class::new(
        StmtPhase::Expand,
        Inverse::Sql(format!("DROP TABLE IF EXISTS {name};")),
    );
    c.table = Some(normalize(&name));
    c
}

/// CREATE TABLE AS and SELECT INTO: a new table, and whatever its query writes.
pub(super) fn create_table_as(node: &SyntaxNode, schema: &mut Schema, in_release: bool) -> Class {
    let name = name_after(node, "table", &["if", "not", "exists"])
        .or_else(|| name_after(node, "into", &[]))
        .unwrap_or_default();
    schema.create_table(&name, Vec::new(), Vec::new(), in_release);
    let mut c = Class::new(
        StmtPhase::Expand,
        Inverse::Sql(format!("DROP TABLE IF EXISTS {name};")),
    );
    c.table = Some(normalize(&name));
    dml::add_query_writes(&mut c, node, schema);
    c
}

/// How to index a partitioned table without blocking writes (PostgreSQL manual, 5.12.2.2).
pub(super) const RECIPE_PARTITIONED_INDEX: &str = "create the index ON ONLY the parent (`CREATE INDEX \
     parent_idx ON ONLY parent (...)`: invalid, no data to build), then `CREATE INDEX CONCURRENTLY` \
     on each partition (one migration each), then `ALTER INDEX parent_idx ATTACH PARTITION \
     child_idx` for each; the parent's index becomes valid once every partition's is attached";

/// CREATE INDEX: expand, unless a unique index rejects what the running version writes.
pub(super) fn create_index(ci: &ast::CreateIndex, w: &[SmolStr], schema: &mut Schema) -> Class {
    use StmtPhase::*;
    let node = ci.syntax();
    let table =
        text_of(ci.table_relation_name().and_then(|r| r.table_name_ref())).unwrap_or_default();
    let concurrent = ci.concurrently_token().is_some();
    let name = name_after(node, "index", &["concurrently", "if", "not", "exists"])
        .filter(|n| !n.eq_ignore_ascii_case("on"));
    // The index lives in its table's schema: a qualified table qualifies the drop.
    let qualified = |n: &str| match schema_of(&table) {
        Some(schema) if !n.contains('.') => format!("{schema}.{n}"),
        _ => n.to_string(),
    };
    let inverse = match &name {
        Some(n) => Inverse::Sql(format!(
            "DROP INDEX {}IF EXISTS {};",
            if concurrent { "CONCURRENTLY " } else { "" },
            qualified(n)
        )),
        None => Inverse::Unknown("the index has no name; name it so it can be dropped".into()),
    };
    let mut c = Class::new(Expand, inverse);
    if concurrent && schema.is_partitioned(&table) {
        c.raise(Breaking);
        c.finding(
            RuleId::ConcurrentIndexOnPartitionedTable,
            format!(
                "`{table}` is partitioned: PostgreSQL cannot create an index on a partitioned \
                 table concurrently, so this statement fails"
            ),
            RECIPE_PARTITIONED_INDEX,
        );
    }
    // A unique index rejects duplicates the running version may still write (to a table: a
    // materialized view is written only by REFRESH).
    if ci.unique_token().is_some()
        && !schema.is_new(&table)
        && schema.non_table_relation(&table).is_none()
    {
        match constraint_rejects(schema, &table, node, w) {
            Rejects::No => {}
            Rejects::Will(why) => {
                c.raise(Breaking);
                c.finding(
                    RuleId::BreakingAddConstraint,
                    format!("the unique index rejects the inserts of the running version: {why}"),
                    RECIPE_CONSTRAINT_NEW_COLUMN,
                );
            }
            Rejects::May => {
                c.raise(Contract);
                c.declarable = true;
                c.finding(
                    RuleId::ConstraintRejectsOldWrites,
                    format!(
                        "the unique index on `{table}` rejects duplicate writes of the version \
                         still running; cutover places it after that version is retired"
                    ),
                    RECIPE_CONSTRAINT_OLD_WRITES,
                );
            }
        }
    }
    if let Some(n) = &name {
        let key = normalize(&qualified(n));
        schema.create_object("index", &key);
        c.creates.push(("index", key));
    }
    c.table = Some(normalize(&table));
    c.owner_of = Some(table).filter(|t| !t.is_empty());
    c
}

/// Whether `stmt` (CREATE RULE or CREATE TRIGGER) is a new rule or trigger on a table the
/// running version uses: a rule rewrites that version's writes, and a trigger runs a function
/// cutover cannot read on them, which can change the row (BEFORE), reject it (an exception) or
/// write elsewhere (PostgreSQL manual, 41 The Rule System; 37.1 Overview of Trigger Behavior).
/// CREATE OR REPLACE of one counts too: it is a DROP and a CREATE in one (PostgreSQL manual,
/// CREATE TRIGGER: "replace the current definition"), and the new definition may do what the
/// old one did not.
pub(super) fn changes_old_writes(stmt: &ast::Stmt, schema: &Schema) -> bool {
    let node = stmt.syntax();
    let rule = matches!(stmt, ast::Stmt::CreateRule(_));
    let table = if rule {
        name_after(node, "to", &[])
    } else {
        name_after(node, "on", &[])
    };
    table.is_some_and(|t| schema.table(&t).is_some() && !schema.is_new(&t))
}

/// A rule or constraint trigger that [`changes_old_writes`]: contract, unless declared.
pub(super) fn create_write_rule(node: &SyntaxNode, w: &[SmolStr], schema: &mut Schema) -> Class {
    // As any replaceable object (the inverse, `replaces-object` for OR REPLACE), then contract.
    let mut c = create_replaceable(node, w, schema);
    c.raise(StmtPhase::Contract);
    c.declarable = true;
    c.finding(
        RuleId::ConstraintRejectsOldWrites,
        format!(
            "`{}` changes what the running version's writes do to a table it uses (a rule rewrites \
             them; a trigger's function, which cutover cannot read, can change or reject them); \
             cutover places it after that version is retired",
            summarize(&node.text().to_string())
        ),
        RECIPE_CONSTRAINT_OLD_WRITES,
    );
    c
}

/// A view, function, procedure, trigger or rule: expand, but CREATE OR REPLACE of one the
/// running version may use changes it under that version.
pub(super) fn create_replaceable(node: &SyntaxNode, w: &[SmolStr], schema: &mut Schema) -> Class {
    let or_replace = has_seq(w, &["or", "replace"]);
    let mut c = Class::new(StmtPhase::Expand, create_inverse(node, w));
    let created = created_object(node, w);
    // A trigger, rule or policy of a table the release created cannot be one the running
    // version goes through.
    let new = created.as_ref().is_some_and(|(kind, key)| {
        schema.is_new_object_in_file(kind, key)
            || key
                .split_once('@')
                .is_some_and(|(_, table)| schema.is_new(table))
    });
    if let Some((kind, key)) = created {
        // CREATE OR REPLACE of an object that may exist keeps it what it was: one the running
        // version may use, so a later DROP of it in the file is no drop of a new object.
        if !or_replace || new {
            schema.create_object(kind, &key);
        }
        c.creates.push((kind, key));
    }
    if or_replace && !new {
        c.inverse = Inverse::Unknown(
            "CREATE OR REPLACE does not keep the previous definition; add a down migration".into(),
        );
        c.finding(
            RuleId::ReplacesObject,
            "CREATE OR REPLACE changes an object the running version may already use".into(),
            "create it under a new name (expand), move the app to it, drop the old one (contract); \
             or declare the file's phase if both versions work with the new definition",
        );
    }
    c
}

/// Any other object the schema model tracks (a sequence, type, schema, extension...): expand.
pub(super) fn create_object(node: &SyntaxNode, w: &[SmolStr], schema: &mut Schema) -> Class {
    let mut c = Class::new(StmtPhase::Expand, create_inverse(node, w));
    if let Some((kind, key)) = created_object(node, w) {
        schema.create_object(kind, &key);
        c.creates.push((kind, key));
    }
    c
}

/// The name, query and kind (materialized or not) of a CREATE [MATERIALIZED] VIEW.
fn view_parts(node: &SyntaxNode) -> Option<(String, SyntaxNode, bool)> {
    if let Some(v) = ast::CreateView::cast(node.clone()) {
        return Some((
            crate::learn::name_of(v.view()?.syntax()),
            v.query()?.syntax().clone(),
            false,
        ));
    }
    let v = ast::CreateMaterializedView::cast(node.clone())?;
    Some((
        crate::learn::name_of(v.view()?.syntax()),
        v.query()?.syntax().clone(),
        true,
    ))
}

/// CREATE [MATERIALIZED] VIEW: as any replaceable object ([`create_replaceable`]); one that
/// re-creates a view this file dropped is compared with it ([`compare_views`]), and a
/// materialized view re-created `WITH NO DATA` is left unpopulated for the running version's
/// reads (PostgreSQL manual, CREATE MATERIALIZED VIEW: "cannot be queried until REFRESH
/// MATERIALIZED VIEW is used"), unless the file refreshes it later (see `Class::unpopulates`).
pub(super) fn create_view(node: &SyntaxNode, w: &[SmolStr], schema: &mut Schema) -> Class {
    let mut c = create_replaceable(node, w, schema);
    let Some((name, query, materialized)) = view_parts(node) else {
        return c;
    };
    let new = crate::learn::view_of(schema, node, &query, materialized);
    let kind = if materialized {
        "materialized view"
    } else {
        "view"
    };
    if let Some(old) = schema.view_dropped_in_file(&name).cloned() {
        compare_views(&mut c, &format!("{kind} `{name}`"), &old, &new);
        if new.unpopulated {
            c.unpopulates = Some(object_key(&name, None));
        }
    } else if has_seq(w, &["or", "replace"])
        && let Some(old) = schema.view(&name).cloned()
    {
        replace_in_place(&mut c, &format!("{kind} `{name}`"), &old, &new);
    } else {
        return c;
    }
    // A view the running version writes through now checks its rows.
    if has_seq(w, &["check", "option"]) {
        check_option(&mut c, &name);
    }
    c
}

/// `WITH [CASCADED | LOCAL] CHECK OPTION` on a view the running version uses: its inserts and
/// updates through the view that leave the view's rows are rejected (PostgreSQL manual, CREATE
/// VIEW, "Updatable Views"): contract (declarable), as a constraint on its writes.
pub(super) fn check_option(c: &mut Class, name: &str) {
    c.raise(StmtPhase::Contract);
    c.declarable = true;
    c.finding(
        RuleId::ConstraintRejectsOldWrites,
        format!(
            "the check option of view `{name}` rejects the running version's inserts and \
             updates through it that leave the view's rows; cutover places it after that \
             version is retired"
        ),
        RECIPE_CONSTRAINT_OLD_WRITES,
    );
}

/// CREATE OR REPLACE VIEW of a view that exists: PostgreSQL refuses it unless the old columns
/// come first, with the same names, in the same order, with the same types (PostgreSQL
/// manual, CREATE VIEW: "the same column names in the same order and with the same data
/// types"). Where cutover can tell that it does not, the migration would fail: breaking
/// (`breaking-view-columns` for names, `breaking-view-column-type` for types); an expression
/// changed whose type cutover cannot tell gets `view-column-changed`.
fn replace_in_place(c: &mut Class, name: &str, old: &View, new: &View) {
    let (Some(oc), Some(nc)) = (&old.columns, &new.columns) else {
        return;
    };
    if nc.get(..oc.len()) != Some(oc.as_slice()) {
        c.raise(StmtPhase::Breaking);
        c.finding(
            RuleId::BreakingViewColumns,
            format!(
                "CREATE OR REPLACE of the {name} gives it the columns {} where it has {}: \
                 PostgreSQL refuses to drop, rename or move a view's columns this way (cannot \
                 drop columns from view / cannot change name of view column)",
                list(nc),
                list(oc)
            ),
            RECIPE_VIEW_NEW_NAME,
        );
        return;
    }
    column_types(c, name, old, new);
}

/// `name`, listed for a message: `` `a`, `b` ``.
fn list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A view re-created in the file (`old` as it was, `new` as created): the columns it lacks
/// (contract, `view-drops-columns`; with new ones, breaking, `breaking-view-columns`: the new
/// version needs them before the old one is gone), the columns that moved
/// (`view-columns-reordered`), and those whose type changed (`breaking-view-column-type`) or may
/// have (`view-column-changed`). Compared only where both definitions' columns are known.
/// `name` says what it is and which (``materialized view `x` ``), for the messages.
fn compare_views(c: &mut Class, name: &str, old: &View, new: &View) {
    let (Some(oc), Some(nc)) = (&old.columns, &new.columns) else {
        return;
    };
    let lacking: Vec<String> = oc.iter().filter(|c| !nc.contains(c)).cloned().collect();
    let added: Vec<String> = nc.iter().filter(|c| !oc.contains(c)).cloned().collect();
    if !lacking.is_empty() {
        columns_lacking(c, name, &lacking, &added);
    } else if nc.get(..oc.len()) != Some(oc.as_slice()) {
        c.finding(
            RuleId::ViewColumnsReordered,
            format!(
                "the {name} is created again with its columns in another order ({} \
                 before, {} now): the running version's reads by position (`SELECT *` into a \
                 tuple or row type) get other columns",
                list(oc),
                list(nc)
            ),
            "keep the old columns first and in their order; add new ones after them",
        );
    }
    column_types(c, name, old, new);
}

/// The findings of [`compare_views`] for a view that lacks some of its old columns.
fn columns_lacking(c: &mut Class, name: &str, lacking: &[String], added: &[String]) {
    if added.is_empty() {
        c.raise(StmtPhase::Contract);
        c.finding(
            RuleId::ViewDropsColumns,
            format!(
                "the {name} is created again without {}, which the running version may \
                 read: this migration runs after it is retired",
                list(lacking)
            ),
            "nothing to do if that is the intent; to drop them while the old version runs, \
             it must not read them",
        );
    } else {
        c.raise(StmtPhase::Breaking);
        c.finding(
            RuleId::BreakingViewColumns,
            format!(
                "the {name} is created again without {} and with {}: the old version \
                 reads the first, the new version the second, and one view cannot serve both",
                list(lacking),
                list(added)
            ),
            RECIPE_VIEW_NEW_NAME,
        );
    }
}

/// How to give a view another shape while the old version reads it.
const RECIPE_VIEW_NEW_NAME: &str = "create the new shape under a new name in an expand \
     migration, move the new version to it, and drop the old view in a contract migration";

/// The columns of a re-created view whose type changed, where both types are known (an
/// explicit cast, a column of a known table): breaking; or whose expression changed while a
/// type is not known: a warning, cutover cannot tell.
fn column_types(c: &mut Class, name: &str, old: &View, new: &View) {
    let (Some(oc), Some(nc)) = (&old.columns, &new.columns) else {
        return;
    };
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let mut retyped = Vec::new();
    let mut changed = Vec::new();
    for (i, col) in oc.iter().enumerate() {
        let Some(j) = nc.iter().position(|n| n == col) else {
            continue;
        };
        let ty = |v: &View, k: usize| v.types.get(k).cloned().flatten();
        let expr = |v: &View, k: usize| v.exprs.get(k).cloned().unwrap_or_default();
        match (ty(old, i), ty(new, j)) {
            (Some(a), Some(b)) if a != b => retyped.push(format!("`{col}` ({a} → {b})")),
            (Some(_), Some(_)) => {}
            _ if !same(&expr(old, i), &expr(new, j)) => changed.push(col.clone()),
            _ => {}
        }
    }
    if !retyped.is_empty() {
        c.raise(StmtPhase::Breaking);
        c.finding(
            RuleId::BreakingViewColumnType,
            format!(
                "the {name} is created again with another type for {}: the running \
                 version reads the old type (and CREATE OR REPLACE VIEW would be refused: \
                 PostgreSQL manual, CREATE VIEW)",
                retyped.join(", ")
            ),
            RECIPE_VIEW_NEW_NAME,
        );
    }
    if !changed.is_empty() {
        c.finding(
            RuleId::ViewColumnChanged,
            format!(
                "the {name} is created again with another expression for {}: cutover \
                 cannot tell its type, which the running version may read as the old one",
                list(&changed)
            ),
            "make sure each column keeps its type (cast it to the old type explicitly); \
             otherwise create the view under a new name",
        );
    }
}
