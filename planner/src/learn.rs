//! What DDL teaches the [`Schema`] model: reads squawk's syntax tree of a statement (or of one
//! `ALTER TABLE` action) and calls the model's methods.
//!
//! [`crate::analysis`] decides phases and findings; this module only records what a statement
//! declares, so that the two concerns change independently. It reads what real baselines
//! declare, pg_dump's included: `CREATE TABLE` with inline or table-level keys, `ALTER TABLE
//! [IF EXISTS] [ONLY] t ADD CONSTRAINT ... PRIMARY KEY | UNIQUE | FOREIGN KEY` (also `USING
//! INDEX`), identity columns (inline, or `ALTER COLUMN ... ADD GENERATED ... AS IDENTITY`),
//! generated columns, serial columns and `nextval` defaults, indexes, and views with what they
//! read. Names go to the model as written; it normalizes them.

use crate::schema::{Column, FkActions, Identity, Schema, View, ViewReads, normalize};
use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SyntaxKind, SyntaxNode};
use std::collections::{BTreeMap, BTreeSet};

/// A name as written, without the spaces or comments between its parts (`app . "T"` →
/// `app."T"`).
pub(crate) fn name_of(node: &SyntaxNode) -> String {
    let mut name = String::new();
    crate::analysis::each_token(&node.green(), |kind, _, text| {
        if !kind.is_trivia() {
            name.push_str(text);
        }
    });
    name
}

fn name<N: AstNode>(node: Option<N>) -> Option<String> {
    node.map(|n| name_of(n.syntax())).filter(|n| !n.is_empty())
}

/// SQL text on one line (a type as written: `character varying(120)`).
fn squeezed(node: &SyntaxNode) -> String {
    crate::analysis::one_line(node)
}

/// The constraint's own name (`CONSTRAINT name`), if it has one.
fn constraint_name(clause: Option<ast::ConstraintNameClause>) -> Option<String> {
    name(clause.and_then(|c| c.constraint_name()))
}

fn identity_of(when: Option<ast::GeneratedWhen>) -> Identity {
    match when {
        Some(ast::GeneratedWhen::GeneratedByDefault(_)) => Identity::ByDefault,
        _ => Identity::Always,
    }
}

/// Every word of an expression, normalized: a superset of the columns it reads.
fn words_of(node: &SyntaxNode) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    crate::analysis::each_token(&node.green(), |kind, _, t| {
        if !kind.is_trivia() && t.starts_with(|c: char| c.is_alphabetic() || c == '_' || c == '"') {
            words.insert(normalize(t));
        }
    });
    words
}

const SERIAL_TYPES: &[&str] = &[
    "smallserial",
    "serial",
    "bigserial",
    "serial2",
    "serial4",
    "serial8",
];

/// A column definition (of CREATE TABLE or ADD COLUMN) and its constraints, which the caller
/// adds once the table exists.
fn column(
    col_name: Option<String>,
    ty: Option<ast::Type>,
    constraints: &[ast::Constraint],
) -> Column {
    let ty = ty.map(|t| squeezed(t.syntax())).unwrap_or_default();
    let mut column = Column {
        name: normalize(&col_name.unwrap_or_default()),
        ..Column::default()
    };
    if SERIAL_TYPES.contains(&ty.to_ascii_lowercase().as_str()) {
        column.sequence_default = Some(ty.clone());
        column.not_null = true;
    }
    column.ty = ty;
    for c in constraints {
        match c {
            ast::Constraint::NotNullConstraint(_) | ast::Constraint::PrimaryKeyConstraint(_) => {
                column.not_null = true;
            }
            ast::Constraint::DefaultConstraint(d) => {
                let default = d.expr().map(|e| squeezed(e.syntax())).unwrap_or_default();
                if default.to_ascii_lowercase().contains("nextval") {
                    column.sequence_default = Some(default);
                } else if !default.eq_ignore_ascii_case("null") && !default.is_empty() {
                    column.default = Some(default);
                }
            }
            ast::Constraint::GeneratedConstraint(g) => match g.generated_as() {
                Some(ast::GeneratedAs::GeneratedIdentity(i)) => {
                    column.identity = Some(identity_of(i.generated_when()));
                    column.not_null = true;
                }
                Some(ast::GeneratedAs::GeneratedStored(s)) => {
                    column.generated_from =
                        Some(s.expr().map(|e| words_of(e.syntax())).unwrap_or_default());
                }
                None => {}
            },
            _ => {}
        }
    }
    column
}

/// A column's own PRIMARY KEY, UNIQUE or REFERENCES.
fn column_constraint(schema: &mut Schema, table: &str, col: &str, c: &ast::Constraint) {
    let one = || vec![col.to_string()];
    match c {
        ast::Constraint::PrimaryKeyConstraint(pk) => {
            schema.add_primary_key(
                table,
                constraint_name(pk.constraint_name_clause()).as_deref(),
                one(),
            );
        }
        ast::Constraint::UniqueConstraint(u) => {
            schema.add_unique(
                table,
                constraint_name(u.constraint_name_clause()).as_deref(),
                one(),
            );
        }
        ast::Constraint::ReferencesConstraint(r) => {
            if let Some(other) = name(r.table()) {
                schema.add_foreign_key(
                    table,
                    constraint_name(r.constraint_name_clause()).as_deref(),
                    one(),
                    &other,
                    name(r.column()).into_iter().collect(),
                    fk_actions(r.syntax()),
                );
            }
        }
        _ => {}
    }
}

fn column_refs(refs: ast::AstChildren<ast::ColumnNameRef>) -> Vec<String> {
    refs.filter_map(|r| name(Some(r))).collect()
}

/// A table-level PRIMARY KEY, UNIQUE or FOREIGN KEY (of CREATE TABLE or ADD CONSTRAINT).
fn table_constraint(schema: &mut Schema, table: &str, c: &ast::Constraint) {
    match c {
        ast::Constraint::PrimaryKeyConstraint(pk) => {
            let cname = constraint_name(pk.constraint_name_clause());
            if let Some(index) = name(pk.using_index().and_then(|u| u.index_ref())) {
                schema.add_constraint_using_index(table, cname.as_deref(), true, &index);
            } else if let Some(list) = pk.index_parameters().and_then(|p| p.column_list()) {
                let name = schema.add_primary_key(
                    table,
                    cname.as_deref(),
                    column_refs(list.column_name_refs()),
                );
                included(schema, table, "primary key", &name, pk.index_parameters());
            }
        }
        ast::Constraint::UniqueConstraint(u) => {
            let cname = constraint_name(u.constraint_name_clause());
            if let Some(index) = name(u.using_index().and_then(|u| u.index_ref())) {
                schema.add_constraint_using_index(table, cname.as_deref(), false, &index);
            } else if let Some(list) = u.index_parameters().and_then(|p| p.column_list()) {
                let name = schema.add_unique(
                    table,
                    cname.as_deref(),
                    column_refs(list.column_name_refs()),
                );
                included(
                    schema,
                    table,
                    "unique constraint",
                    &name,
                    u.index_parameters(),
                );
            }
        }
        ast::Constraint::ForeignKeyConstraint(fk) => {
            let (Some(from), Some(other)) = (fk.from_columns(), name(fk.table_name_ref())) else {
                return;
            };
            schema.add_foreign_key(
                table,
                constraint_name(fk.constraint_name_clause()).as_deref(),
                column_refs(from.column_name_refs()),
                &other,
                fk.to_columns()
                    .map(|to| column_refs(to.column_name_refs()))
                    .unwrap_or_default(),
                fk_actions(fk.syntax()),
            );
        }
        _ => {}
    }
}

/// Records the INCLUDE list of the key `name` (`what`: primary key or unique constraint), if
/// its index parameters `params` have one.
fn included(
    schema: &mut Schema,
    table: &str,
    what: &'static str,
    name: &str,
    params: Option<ast::IndexParameters>,
) {
    let Some(list) = params
        .and_then(|p| p.constraint_include_clause())
        .and_then(|c| c.column_ref_list())
    else {
        return;
    };
    schema.set_included(table, what, name, column_refs(list.column_name_refs()));
}

/// The referential actions, MATCH and deferrability written in a foreign key `node`.
pub(crate) fn fk_actions(node: &SyntaxNode) -> FkActions {
    let mut w: Vec<String> = Vec::new();
    crate::analysis::each_token(&node.green(), |kind, _, t| {
        if !kind.is_trivia() {
            w.push(t.to_ascii_lowercase());
        }
    });
    let action = |event: &str| {
        let at = w.windows(2).position(|p| p[0] == "on" && p[1] == event)?;
        let first = w.get(at + 2)?;
        Some(match first.as_str() {
            "no" | "set" => format!("{first} {}", w.get(at + 3).map_or("", |x| x.as_str())),
            _ => first.clone(),
        })
    };
    let mut a = FkActions::default();
    if let Some(d) = action("delete") {
        a.on_delete = d;
    }
    if let Some(u) = action("update") {
        a.on_update = u;
    }
    a.match_full = w.windows(2).any(|p| p[0] == "match" && p[1] == "full");
    a.deferrable = w
        .iter()
        .enumerate()
        .any(|(i, x)| x == "deferrable" && (i == 0 || w[i - 1] != "not"));
    a.initially_deferred = w
        .windows(2)
        .any(|p| p[0] == "initially" && p[1] == "deferred");
    a
}

fn is_foreign_key(c: &ast::Constraint) -> bool {
    matches!(
        c,
        ast::Constraint::ForeignKeyConstraint(_) | ast::Constraint::ReferencesConstraint(_)
    )
}

/// CREATE TABLE: columns, then keys, then foreign keys (which may reference the keys just
/// declared, the table's own included).
pub(crate) fn create_table(schema: &mut Schema, ct: &ast::CreateTable, in_release: bool) {
    let Some(table) = name(ct.table_name()) else {
        return;
    };
    let mut columns = Vec::new();
    let mut constraints: Vec<(Option<String>, ast::Constraint)> = Vec::new();
    for arg in ct.table_arg_list().into_iter().flat_map(|a| a.args()) {
        match arg {
            ast::TableArg::Column(col) => {
                let cons: Vec<ast::Constraint> = col
                    .clauses()
                    .filter_map(|c| ast::Constraint::cast(c.syntax().clone()))
                    .collect();
                let column = column(name(col.name()), col.ty(), &cons);
                constraints.extend(cons.into_iter().map(|c| (Some(column.name.clone()), c)));
                columns.push(column);
            }
            ast::TableArg::TableConstraint(tc) => {
                constraints.extend(ast::Constraint::cast(tc.syntax().clone()).map(|c| (None, c)));
            }
            ast::TableArg::LikeClause(_) => {}
        }
    }
    schema.create_table(&table, columns, Vec::new(), in_release);
    if let Some(pb) = ct.partition_by() {
        let names = pb
            .syntax()
            .descendants()
            .filter_map(ast::NameRef::cast)
            .map(|n| normalize(&name_of(n.syntax())))
            .collect();
        schema.set_partition_key(&table, names);
    }
    constraints.sort_by_key(|(_, c)| is_foreign_key(c));
    for (col, c) in &constraints {
        match col {
            Some(col) => column_constraint(schema, &table, col, c),
            None => table_constraint(schema, &table, c),
        }
    }
}

/// ALTER TABLE ... ADD COLUMN.
pub(crate) fn add_column(schema: &mut Schema, table: &str, ac: &ast::AddColumn) {
    let cons: Vec<ast::Constraint> = ac.constraints().collect();
    let column = column(name(ac.column_name()), ac.ty(), &cons);
    let col = column.name.clone();
    schema.add_column(table, column);
    for c in cons.iter().filter(|c| !is_foreign_key(c)) {
        column_constraint(schema, table, &col, c);
    }
    for c in cons.iter().filter(|c| is_foreign_key(c)) {
        column_constraint(schema, table, &col, c);
    }
}

/// ALTER TABLE ... ADD [CONSTRAINT name] PRIMARY KEY | UNIQUE | FOREIGN KEY.
pub(crate) fn add_constraint(schema: &mut Schema, table: &str, ac: &ast::AddConstraint) {
    if let Some(c) = ac.constraint() {
        table_constraint(schema, table, &c);
    }
}

/// ALTER TABLE ... ALTER COLUMN: identity, defaults and generation (types and NOT NULL are
/// recorded by the analysis).
pub(crate) fn alter_column(schema: &mut Schema, table: &str, ac: &ast::AlterColumn) {
    let Some(col) = name(ac.column_name_ref()) else {
        return;
    };
    match ac.option() {
        Some(ast::AlterColumnOption::AddGenerated(g)) => {
            schema.set_identity(table, &col, Some(identity_of(g.generated_when())));
        }
        Some(ast::AlterColumnOption::SetGenerated(g)) => {
            schema.set_identity(table, &col, Some(identity_of(g.generated_when())));
        }
        Some(ast::AlterColumnOption::SetGeneratedOptions(o)) => {
            if let Some(g) = o.syntax().descendants().find_map(ast::SetGenerated::cast) {
                schema.set_identity(table, &col, Some(identity_of(g.generated_when())));
            }
        }
        Some(ast::AlterColumnOption::DropIdentity(_)) => schema.set_identity(table, &col, None),
        Some(ast::AlterColumnOption::SetDefault(d)) => {
            let default = d.expr().map(|e| squeezed(e.syntax()));
            schema.set_default(table, &col, Some(default.as_deref().unwrap_or_default()));
        }
        Some(ast::AlterColumnOption::DropDefault(_)) => schema.set_default(table, &col, None),
        Some(ast::AlterColumnOption::DropExpression(_)) => schema.drop_expression(table, &col),
        _ => {}
    }
}

/// ALTER TABLE ... DROP CONSTRAINT name.
pub(crate) fn drop_constraint(schema: &mut Schema, table: &str, dc: &ast::DropConstraint) {
    if let Some(n) = name(dc.constraint_name_ref()) {
        schema.drop_constraint(table, &n);
    }
}

/// ALTER TABLE ... RENAME CONSTRAINT a TO b.
pub(crate) fn rename_constraint(schema: &mut Schema, table: &str, rc: &ast::RenameConstraint) {
    if let (Some(from), Some(to)) = (name(rc.constraint_name_ref()), name(rc.constraint_name())) {
        schema.rename_constraint(table, &from, &to);
    }
}

/// ALTER TABLE ... SET SCHEMA s: the table under its new qualified name.
pub(crate) fn set_schema(schema: &mut Schema, table: &str, ss: &ast::SetSchema) {
    if let Some(to) = name(ss.schema_ref()) {
        schema.set_schema(table, &to);
    }
}

/// Statements that teach the model and whose classification does not read it: views,
/// indexes, DROP TABLE.
pub(crate) fn statement(schema: &mut Schema, stmt: &ast::Stmt) {
    match stmt {
        ast::Stmt::CreateView(v) => {
            if let (Some(view), Some(q)) = (name(v.view()), v.query()) {
                let learned = view_of(schema, v.syntax(), q.syntax(), false);
                schema.create_view(&view, learned);
            }
        }
        ast::Stmt::CreateMaterializedView(v) => {
            if let (Some(view), Some(q)) = (name(v.view()), v.query()) {
                let learned = view_of(schema, v.syntax(), q.syntax(), true);
                schema.create_view(&view, learned);
            }
        }
        ast::Stmt::Refresh(r) => {
            if let Some(view) = name(r.view_ref()) {
                schema.refresh_view(&view, !with_no_data(r.data_option()));
            }
        }
        ast::Stmt::CreateSequence(cs) => {
            if let Some(n) = name(cs.sequence()) {
                schema.create_sequence(&n);
            }
        }
        ast::Stmt::DropSequence(d) => {
            for p in d.sequence_refs() {
                schema.drop_sequence(&name_of(p.syntax()));
            }
        }
        ast::Stmt::DropView(d) => {
            for v in d.view_refs() {
                schema.drop_view(&name_of(v.syntax()));
            }
        }
        ast::Stmt::DropMaterializedView(d) => {
            for v in d.view_refs() {
                schema.drop_view(&name_of(v.syntax()));
            }
        }
        ast::Stmt::DropTable(d) => {
            for t in d.table_name_refs() {
                schema.drop_table(&name_of(t.syntax()));
            }
        }
        // Policies and triggers name columns; a RENAME keeps them, a copy-and-drop cannot.
        // So do rules (PostgreSQL refuses DROP COLUMN of a column a rule uses).
        ast::Stmt::CreatePolicy(_) | ast::Stmt::CreateTrigger(_) | ast::Stmt::CreateRule(_) => {
            add_dependent(schema, stmt)
        }
        ast::Stmt::DropPolicy(_) | ast::Stmt::DropTrigger(_) | ast::Stmt::DropRule(_) => {
            drop_dependent(schema, stmt)
        }
        ast::Stmt::CreateIndex(ci) => create_index(schema, ci),
        ast::Stmt::CreateFunction(cf) => {
            if let Some(n) = name(cf.name()) {
                let mut sig = crate::analysis::function::signature(cf.param_list());
                sig.returns = crate::analysis::function::returns(cf);
                schema.add_function(&crate::analysis::function::key(&n), sig);
            }
            create_function(schema, stmt);
        }
        ast::Stmt::CreateProcedure(_) => create_function(schema, stmt),
        ast::Stmt::DropFunction(d) => {
            for f in d.function_sig_list().iter().flat_map(|l| l.function_sigs()) {
                if let Some(n) = name(f.function_name_ref()) {
                    let args = f
                        .param_list()
                        .map(|p| crate::analysis::function::signature(Some(p)).args);
                    schema.drop_function(&crate::analysis::function::key(&n), args.as_deref());
                }
            }
        }
        ast::Stmt::DropIndex(d) => {
            for i in d.index_refs() {
                schema.drop_index(&name_of(i.syntax()));
            }
        }
        _ => {}
    }
}

/// CREATE FUNCTION or PROCEDURE: its name and the words of its definition (body included),
/// lower case: a conservative superset of the tables and columns it reads.
fn create_function(schema: &mut Schema, stmt: &ast::Stmt) {
    let text = stmt.syntax().text().to_string();
    let lower = text.to_ascii_lowercase();
    let words: BTreeSet<String> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let Some(at) = ["function", "procedure"]
        .iter()
        .filter_map(|k| lower.find(k).map(|p| p + k.len()))
        .min()
    else {
        return;
    };
    let Some(open) = text[at..].find('(') else {
        return;
    };
    let name = text[at..at + open].trim();
    if !name.is_empty() {
        schema.create_function(name, words);
    }
}

/// The (possibly schema-qualified) name starting at `toks[i]`: `app."T"` from `app`, `.`,
/// `"T"`.
fn qualified_at(toks: &[String], i: usize) -> Option<String> {
    let mut name = toks.get(i)?.clone();
    let mut j = i + 1;
    while toks.get(j).is_some_and(|t| t == ".") && toks.get(j + 1).is_some() {
        name.push('.');
        name.push_str(&toks[j + 1]);
        j += 2;
    }
    Some(name)
}

/// CREATE POLICY, TRIGGER or RULE: the columns it names depend on the table's names; a
/// trigger runs its function on the table's writes.
fn add_dependent(schema: &mut Schema, stmt: &ast::Stmt) {
    let (what, on) = match stmt {
        ast::Stmt::CreatePolicy(_) => ("policy", "on"),
        // CREATE RULE name AS ON event TO table.
        ast::Stmt::CreateRule(_) => ("rule", "to"),
        _ => ("trigger", "on"),
    };
    let toks: Vec<(String, bool)> = stmt
        .syntax()
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .filter(|t| !t.kind().is_trivia())
        .map(|t| (t.text().to_string(), t.kind() == SyntaxKind::IDENT))
        .collect();
    let texts: Vec<String> = toks.iter().map(|(t, _)| t.clone()).collect();
    let pos = |word: &str| texts.iter().position(|t| t.eq_ignore_ascii_case(word));
    let (Some(name), Some(on)) = (
        pos(what).and_then(|p| texts.get(p + 1).cloned()),
        pos(on).and_then(|p| qualified_at(&texts, p + 1)),
    ) else {
        return;
    };
    if what == "trigger"
        && let Some(p) = pos("execute")
        && let Some(function) = qualified_at(&texts, p + 2)
    {
        schema.set_trigger_function(&on, &name, &function);
    }
    let columns = toks
        .iter()
        .filter(|(_, ident)| *ident)
        .map(|(t, _)| t.clone());
    schema.add_dependent(&on, what, &name, columns);
}

/// DROP POLICY, TRIGGER or RULE: its columns no longer depend on the table.
fn drop_dependent(schema: &mut Schema, stmt: &ast::Stmt) {
    let what = match stmt {
        ast::Stmt::DropPolicy(_) => "policy",
        ast::Stmt::DropRule(_) => "rule",
        _ => "trigger",
    };
    let toks = crate::analysis::tokens(stmt.syntax());
    let on = toks.iter().position(|t| t.eq_ignore_ascii_case("on"));
    let name = toks
        .iter()
        .skip(2)
        .find(|t| !t.eq_ignore_ascii_case("if") && !t.eq_ignore_ascii_case("exists"));
    if let (Some(p), Some(name)) = (on, name)
        && let Some(table) = qualified_at(&toks, p + 1)
    {
        schema.drop_dependent(&table, what, name);
    }
}

/// CREATE INDEX: the index, its table and its plain columns.
fn create_index(schema: &mut Schema, ci: &ast::CreateIndex) {
    let (Some(index), Some(table)) = (
        name(ci.index()),
        name(ci.table_relation_name().and_then(|r| r.table_name_ref())),
    ) else {
        return;
    };
    let columns = ci
        .partition_item_list()
        .into_iter()
        .flat_map(|l| l.partition_items())
        .map(|item| match item.expr() {
            Some(ast::Expr::NameRef(n)) => Some(name_of(n.syntax())),
            _ => None,
        })
        .collect();
    let sql = Some(ci.syntax().text().to_string());
    schema.create_index(&index, &table, columns, ci.unique_token().is_some(), sql);
    // A unique index's INCLUDE columns: dropping one drops the index (and its uniqueness).
    let include = ci
        .index_include_clause()
        .and_then(|c| c.partition_item_list())
        .filter(|_| ci.unique_token().is_some());
    if let Some(list) = include {
        let columns = list
            .partition_items()
            .filter_map(|item| match item.expr() {
                Some(ast::Expr::NameRef(n)) => Some(name_of(n.syntax())),
                _ => None,
            })
            .collect();
        schema.set_index_included(&index, &table, columns);
    }
}

/// A table (or view) a view's query reads.
struct Source {
    table: String,
    /// Names that denote it in the query: its alias, else its unqualified name.
    names: Vec<String>,
    /// Every column is read (`TABLE t`, `t.*`, the whole row).
    all: bool,
}

/// The tables (or views) a view's query names, each with the names that denote it.
fn view_sources(query: &SyntaxNode) -> Vec<Source> {
    let mut sources: Vec<Source> = Vec::new();
    for relation in query
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::RELATION_NAME_REF)
    {
        // `TABLE t`: every column.
        let all = relation
            .parent()
            .and_then(|p| p.parent())
            .is_some_and(|g| g.kind() == SyntaxKind::TABLE);
        let table = normalize(&name_of(&relation));
        let alias = relation
            .parent()
            .filter(|p| p.kind() == SyntaxKind::RELATION_FROM_ITEM)
            .and_then(|p| {
                p.descendants()
                    .find(|d| d.kind() == SyntaxKind::TABLE_ALIAS)
            })
            .and_then(|a| {
                a.descendants_with_tokens()
                    .filter_map(|e| e.into_token())
                    .find(|t| !t.kind().is_trivia())
            })
            .map(|t| normalize(t.text()));
        let last = table.rsplit('.').next().unwrap_or(&table).to_string();
        let names = match alias {
            Some(a) => vec![a],
            None => vec![last],
        };
        sources.push(Source { table, names, all });
    }
    sources
}

/// What a view's query reads, per source table (or view): every name the query mentions (a
/// superset of the columns), and "every column" where it reads `*`, `alias.*`, a whole row
/// (`SELECT t FROM t`) or `TABLE t`, or where a `.*` cannot be tied to one source.
/// `WITH NO DATA` (of CREATE MATERIALIZED VIEW or REFRESH): the view is left unpopulated.
pub(crate) fn with_no_data(option: Option<ast::DataOption>) -> bool {
    option.is_some_and(|o| {
        crate::analysis::tokens(o.syntax())
            .iter()
            .any(|t| t.eq_ignore_ascii_case("no"))
    })
}

/// A CREATE [MATERIALIZED] VIEW (`create`, whose query is `query`) as the schema model keeps
/// it: what it reads, its columns, their expressions and the types `schema` tells.
pub(crate) fn view_of(
    schema: &Schema,
    create: &SyntaxNode,
    query: &SyntaxNode,
    materialized: bool,
) -> View {
    let columns = view_columns(create, query);
    let mut exprs = Vec::new();
    let mut types = Vec::new();
    if columns.is_some()
        && let Some(targets) = target_list(query)
    {
        let sources = view_sources(query);
        for target in targets.children() {
            let expr = target.children().next();
            exprs.push(expr.as_ref().map(squeezed).unwrap_or_default());
            types.push(expr.and_then(|e| expr_type(schema, &sources, &e)));
        }
    }
    let unpopulated = materialized
        && ast::CreateMaterializedView::cast(create.clone())
            .is_some_and(|v| with_no_data(v.data_option()));
    View {
        reads: view_reads(query),
        columns,
        materialized,
        exprs,
        types,
        unpopulated,
    }
}

/// The type of a view's output expression, where it is sure: an explicit cast, or a column of
/// a table or view the model knows (unqualified, only when every source is known and one
/// alone has such a column).
fn expr_type(schema: &Schema, sources: &[Source], expr: &SyntaxNode) -> Option<String> {
    match expr.kind() {
        SyntaxKind::CAST_EXPR => {
            let ty = ast::CastExpr::cast(expr.clone())?.ty()?;
            Some(crate::analysis::function::canonical(&squeezed(ty.syntax())))
        }
        SyntaxKind::PAREN_EXPR => expr_type(schema, sources, &expr.children().next()?),
        SyntaxKind::NAME_REF => {
            let col = normalize(&name_of(expr));
            let mut found = Vec::new();
            for s in sources {
                match source_column_type(schema, &s.table, &col) {
                    None => return None,
                    Some(Some(ty)) => found.push(ty),
                    Some(None) => {}
                }
            }
            (found.len() == 1).then(|| found.remove(0)).flatten()
        }
        SyntaxKind::FIELD_EXPR => {
            let refs: Vec<SyntaxNode> = expr
                .children()
                .filter(|c| c.kind() == SyntaxKind::NAME_REF)
                .collect();
            let [q, col] = refs.as_slice() else {
                return None;
            };
            let q = normalize(&name_of(q));
            let s = sources.iter().find(|s| s.names.contains(&q))?;
            source_column_type(schema, &s.table, &normalize(&name_of(col)))??
        }
        _ => None,
    }
}

/// For a source the model knows (`None` otherwise): `Some(None)` when it has no column `col`,
/// `Some(Some(type))` when it has one, its type `None` where the model does not know it.
#[allow(clippy::option_option)]
fn source_column_type(schema: &Schema, table: &str, col: &str) -> Option<Option<Option<String>>> {
    if let Some(t) = schema.table(table) {
        return Some(t.column(col).map(|c| {
            Some(c.ty.clone())
                .filter(|ty| !ty.is_empty())
                .map(|ty| crate::analysis::function::canonical(&ty))
        }));
    }
    let v = schema.view(table)?;
    let cols = v.columns.as_ref()?;
    Some(
        cols.iter()
            .position(|c| c == col)
            .map(|i| v.types.get(i).cloned().flatten()),
    )
}

/// The target list of a view query's first SELECT.
fn target_list(query: &SyntaxNode) -> Option<SyntaxNode> {
    let mut select = query.clone();
    while select.kind() != SyntaxKind::SELECT {
        select = select
            .children()
            .find(|c| matches!(c.kind(), SyntaxKind::SELECT | SyntaxKind::COMPOUND_SELECT))?;
    }
    select
        .children()
        .find(|c| c.kind() == SyntaxKind::SELECT_CLAUSE)?
        .children()
        .find(|c| c.kind() == SyntaxKind::TARGET_LIST)
}

/// The output columns of the view `create` (a CREATE [MATERIALIZED] VIEW) whose query is
/// `query`, normalized and in order: the names its column list gives, then those of the first
/// SELECT's targets (an alias, a column's own name, a function's name, as PostgreSQL names
/// them). `None` when one is not known: `*`, or another expression without an alias.
pub(crate) fn view_columns(create: &SyntaxNode, query: &SyntaxNode) -> Option<Vec<String>> {
    let listed: Vec<String> = create
        .children()
        .find(|c| c.kind() == SyntaxKind::COLUMN_LIST)
        .map(|l| {
            l.children()
                .filter(|c| c.kind() == SyntaxKind::COLUMN_NAME)
                .map(|c| normalize(&name_of(&c)))
                .collect()
        })
        .unwrap_or_default();
    let targets = target_list(query)?;
    let mut out = Vec::new();
    for (i, target) in targets.children().enumerate() {
        if let Some(name) = listed.get(i) {
            out.push(name.clone());
            continue;
        }
        out.push(normalize(&target_name(&target)?));
    }
    Some(out)
}

/// The name PostgreSQL gives a SELECT target: its alias, a column's name (the last part of
/// `t.col`), a function call's name; `None` for `*` and other expressions.
fn target_name(target: &SyntaxNode) -> Option<String> {
    if let Some(alias) = target.children().find(|c| c.kind() == SyntaxKind::AS_NAME) {
        let col = alias
            .children()
            .find(|c| c.kind() == SyntaxKind::COLUMN_NAME)?;
        return Some(name_of(&col));
    }
    let expr = target.children().next()?;
    let name_ref = match expr.kind() {
        SyntaxKind::NAME_REF => Some(expr),
        SyntaxKind::FIELD_EXPR => expr
            .children()
            .filter(|c| c.kind() == SyntaxKind::NAME_REF)
            .last(),
        SyntaxKind::CALL_EXPR => expr.children().find(|c| c.kind() == SyntaxKind::NAME_REF),
        _ => None,
    }?;
    let star = target
        .descendants_with_tokens()
        .any(|e| e.kind() == SyntaxKind::STAR);
    (!star).then(|| name_of(&name_ref))
}

fn view_reads(query: &SyntaxNode) -> BTreeMap<String, ViewReads> {
    let mut sources = view_sources(query);
    // `*` and `q.*`; a name that is a source's name (whole row).
    let mut every = false;
    for t in query
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .filter(|t| t.kind() == SyntaxKind::STAR)
    {
        let Some(parent) = t.parent() else { continue };
        match parent.kind() {
            SyntaxKind::TARGET => every = true,
            SyntaxKind::FIELD_EXPR => {
                let qualifier = parent
                    .children()
                    .find(|c| c.kind() == SyntaxKind::NAME_REF)
                    .map(|q| normalize(&name_of(&q)));
                let mut matched = false;
                for s in &mut sources {
                    if qualifier.as_ref().is_some_and(|q| s.names.contains(q)) {
                        s.all = true;
                        matched = true;
                    }
                }
                every |= !matched;
            }
            _ => {}
        }
    }
    for n in query
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::NAME_REF)
    {
        let qualifies = n
            .next_sibling_or_token()
            .is_some_and(|s| s.kind() == SyntaxKind::DOT);
        if qualifies {
            continue;
        }
        let word = normalize(&name_of(&n));
        for s in sources.iter_mut().filter(|s| s.names.contains(&word)) {
            s.all = true;
        }
    }
    let columns = words_of(query);
    let mut reads: BTreeMap<String, ViewReads> = BTreeMap::new();
    for s in sources {
        let r = reads.entry(s.table).or_default();
        r.all |= s.all || every;
        r.columns.extend(columns.iter().cloned());
    }
    reads
}

/// What a `CREATE DOMAIN` or `ALTER DOMAIN` teaches about NULL and the default, from the
/// statement's words `w`: `NOT NULL` or `CHECK (VALUE IS NOT NULL)` rejects NULL (PostgreSQL
/// manual, CREATE DOMAIN), `DEFAULT expr` is the default of columns of the type that have none.
pub(crate) fn domain(schema: &mut Schema, stmt: &ast::Stmt, w: &[smol_str::SmolStr]) {
    let seq = |s: &[&str]| {
        w.windows(s.len())
            .any(|x| x.iter().zip(s).all(|(a, b)| a == b))
    };
    let Some(name) = w.get(2).filter(|_| w.get(1).is_some_and(|t| t == "domain")) else {
        return;
    };
    let default_after = |at: usize| {
        let rest: Vec<&str> = w[at..]
            .iter()
            .map(|t| t.as_str())
            .take_while(|t| {
                !matches!(
                    *t,
                    "not" | "null" | "check" | "constraint" | ";" | "collate"
                )
            })
            .collect();
        (!rest.is_empty() && rest != ["null"]).then(|| rest.join(" "))
    };
    let default_at = w.windows(1).position(|x| x[0] == "default").map(|p| p + 1);
    let rejects = seq(&["not", "null"]) && !seq(&["is", "not", "null"])
        || seq(&["value", "is", "not", "null"]);
    match stmt {
        ast::Stmt::CreateDomain(_) => {
            let d = schema.domain_mut(name);
            d.rejects_null = rejects;
            d.default = default_at.and_then(default_after);
        }
        ast::Stmt::AlterDomain(_) => {
            let d = schema.domain_mut(name);
            if seq(&["drop", "default"]) {
                d.default = None;
            } else if seq(&["set", "default"]) {
                d.default = default_at.and_then(default_after);
            } else if seq(&["drop", "not", "null"]) {
                d.rejects_null = false;
            } else if seq(&["set", "not", "null"]) || (seq(&["add"]) && rejects) {
                d.rejects_null = true;
            }
        }
        _ => {}
    }
}
