//! Classifying one statement: [`classify`] dispatches on the statement's kind to a handler that
//! returns its [`Class`] (phase, inverse, findings, what it creates and drops), then teaches the
//! schema model what the statement did. The handlers live by concern: `create` (CREATE of
//! tables, indexes and other objects), `drop` (DROP and TRUNCATE), `alter_table`, `dml`,
//! `do_block`; the small ones are here.

use super::*;

/// What classifying one statement found.
pub(super) struct Class {
    pub(super) phase: StmtPhase,
    pub(super) inverse: Inverse,
    pub(super) rename: Option<ColumnRename>,
    pub(super) table_rename: Option<TableRename>,
    /// A NOT NULL that a `-- cutover:up` value would make a fill (its `expr` still empty).
    pub(super) fill: Option<Fill>,
    /// (table, column), normalized, of a type change PostgreSQL makes in place, run as written.
    pub(super) retyped: Option<(String, String)>,
    pub(super) transactional: bool,
    /// Table the statement works on, normalized, for suppressing hazards on new tables.
    pub(super) table: Option<String>,
    /// Table whose ownership the statement needs (ALTER TABLE, CREATE INDEX), as written.
    pub(super) owner_of: Option<String>,
    /// Rule, message, hint, and the line when it is not the statement's own (a statement
    /// inside a DO block).
    pub(super) findings: Vec<(RuleId, String, String, Option<u32>)>,
    /// Objects the statement drops that the running version may use, by kind and name: a
    /// contract change, unless the same transaction creates them again (a replace).
    pub(super) drops: Vec<(&'static str, String)>,
    /// Objects the statement creates, by kind and name.
    pub(super) creates: Vec<(&'static str, String)>,
    /// The phase without the drops in `drops`.
    pub(super) base: StmtPhase,
    /// The statement's phase needs a `-- cutover:phase=` declaration: cutover cannot see what
    /// it does (its finding is dropped when the file declares one).
    pub(super) needs_declaration: bool,
    /// Its phase is cutover's safe guess, which a `-- cutover:phase=` declaration may overrule
    /// (a constraint the old version's writes may, but need not, violate).
    pub(super) declarable: bool,
    /// The contents of the string literals of the statements inside a DO block (for the enum
    /// value check across statements).
    pub(super) literals: Vec<String>,
    /// Enum values a DO block adds (`ALTER TYPE t ADD VALUE 'v'` inside it): type key, value.
    pub(super) enum_adds: Vec<(String, String)>,
    /// A materialized view the running version reads that the statement leaves unpopulated
    /// (key as in [`object_key`]): breaking, unless a later REFRESH of the same transaction
    /// populates it (the file-level check decides).
    pub(super) unpopulates: Option<String>,
    /// A materialized view the statement populates (REFRESH without WITH NO DATA).
    pub(super) populates: Option<String>,
}

impl Class {
    pub(super) fn new(phase: StmtPhase, inverse: Inverse) -> Self {
        Self {
            phase,
            inverse,
            rename: None,
            table_rename: None,
            fill: None,
            retyped: None,
            transactional: true,
            table: None,
            owner_of: None,
            findings: Vec::new(),
            drops: Vec::new(),
            creates: Vec::new(),
            base: phase,
            needs_declaration: false,
            declarable: false,
            literals: Vec::new(),
            enum_adds: Vec::new(),
            unpopulates: None,
            populates: None,
        }
    }

    pub(super) fn raise(&mut self, phase: StmtPhase) {
        self.phase = self.phase.max(phase);
        self.base = self.base.max(phase);
    }

    /// Drops an object the running version may use: contract, unless the file creates it again.
    pub(super) fn raise_drop(&mut self, kind: &'static str, name: String) {
        self.phase = self.phase.max(StmtPhase::Contract);
        self.drops.push((kind, name));
    }

    pub(super) fn finding(&mut self, rule: RuleId, message: String, hint: impl Into<String>) {
        self.findings.push((rule, message, hint.into(), None));
    }

    pub(super) fn finding_at(
        &mut self,
        rule: RuleId,
        message: String,
        hint: impl Into<String>,
        line: u32,
    ) {
        self.findings.push((rule, message, hint.into(), Some(line)));
    }
}

pub(super) const RECIPE_ALTER_TYPE: &str = "change a type in phases: add a column of the new type \
                                            with a trigger keeping both in sync (expand), backfill \
                                            it, move the app to it, drop the old column (contract); \
                                            or run it in a `recreate` release";

pub(super) const RECIPE_SET_NOT_NULL: &str = "the old version may still write NULL: enforce it in a \
                                              contract migration (after that version is retired) as \
                                              ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID, \
                                              VALIDATE CONSTRAINT c, then SET NOT NULL, which skips \
                                              the scan; NOT VALID alone does not make it safe \
                                              earlier: it skips only the rows already there";

pub(super) const RECIPE_CONSTRAINT_NEW_COLUMN: &str = "add the constraint in a contract migration \
                                                       (it runs after the old version is retired), \
                                                       or give the column a DEFAULT the constraint \
                                                       accepts so the old version's inserts pass; \
                                                       NOT VALID does not help: it skips only the \
                                                       rows already there";

pub(super) const RECIPE_CONSTRAINT_OLD_WRITES: &str = "nothing to do if it may wait until the old \
                                                       version is retired; if the new version needs \
                                                       it earlier (ON CONFLICT on a unique key) and \
                                                       the old version never writes rows it \
                                                       rejects, declare `-- cutover:phase=expand` \
                                                       at the top of the file";

pub(super) const RECIPE_REQUIRED_COLUMN: &str = "add the column nullable or with a constant DEFAULT \
                                                 (expand), backfill it, then enforce NOT NULL with \
                                                 a validated CHECK";

pub(super) const RECIPE_RENAME_TABLE: &str = "rename the table and create a view with the old name \
                                              in the same migration (the old version keeps working \
                                              through the view), then drop the view in a contract \
                                              migration";

pub(super) const RECIPE_RENAME_OBJECT: &str = "create the object under its new name beside the old \
                                               one (expand), move the app to it, drop the old one \
                                               (contract)";

/// Classifies `stmt`, whose [`words`] are `w`, then teaches the schema model what it did.
pub(super) fn classify(
    stmt: &ast::Stmt,
    w: &[SmolStr],
    schema: &mut Schema,
    in_release: bool,
) -> Class {
    let c = classify_before_learning(stmt, w, schema, in_release);
    // Views, indexes and DROP TABLE teach the schema model afterwards: their classification
    // asks what the schema held before them (was the dropped table or index new?).
    learn::statement(schema, stmt);
    learn::domain(schema, stmt, w);
    c
}

/// The dispatch table of statement kinds, in two halves tried in order: [`classify_data`]
/// (tables, indexes, the objects cutover tracks, data), then [`classify_settings`] (session and
/// server settings, roles, renames, ALTER of objects beside the schema). Within each, arms are
/// tried in order, and the order matters: a guarded arm (`CLUSTER` / `VACUUM FULL`, a rule that
/// changes the old version's writes, a restrictive policy, `SET lock_timeout = 0`, `ALTER ...
/// RENAME`) must come before the general arm of the same kinds.
pub(super) fn classify_before_learning(
    stmt: &ast::Stmt,
    w: &[SmolStr],
    schema: &mut Schema,
    in_release: bool,
) -> Class {
    classify_data(stmt, w, schema, in_release).unwrap_or_else(|| classify_settings(stmt, w, schema))
}

/// The first half of the dispatch table: CREATE, DROP, ALTER TABLE and maintenance of tables,
/// indexes and the objects the schema model tracks, and statements that read or write data.
/// `None` for any other statement, which [`classify_settings`] classifies. (A flat table of
/// one-line arms.)
fn classify_data(
    stmt: &ast::Stmt,
    w: &[SmolStr],
    schema: &mut Schema,
    in_release: bool,
) -> Option<Class> {
    use StmtPhase::*;
    use ast::Stmt as S;
    let node = stmt.syntax();
    Some(match stmt {
        S::AlterTable(at) if alter_table::other_relation(at, schema).is_some() => {
            alter_table::alter_other_relation(at, w, schema)
        }
        S::AlterTable(at) => alter_table::classify_alter_table(at, schema),
        S::CreateTable(ct) => create_table(ct, w, schema, in_release),
        S::CreateTableAs(_) | S::SelectInto(_) => create_table_as(node, schema, in_release),
        S::CreateIndex(ci) => create_index(ci, w, schema),
        S::DropIndex(_) => drop_index(node, schema),
        S::Cluster(_) | S::Vacuum(_) if matches!(stmt, S::Cluster(_)) || has_seq(w, &["full"]) => {
            table_rewrite(node, w, schema)
        }
        S::Reindex(_) | S::Vacuum(_) => Class::new(Neutral, Inverse::Noop),
        S::CreateRule(_) | S::CreateTrigger(_) if changes_old_writes(stmt, schema) => {
            create_write_rule(node, w, schema)
        }
        S::CreateFunction(cf) if function::return_change(cf, w, schema).is_some() => {
            function::changed_return(cf, node, w, schema)
        }
        S::CreateFunction(cf) if !function::live_triggers(cf, w, schema).is_empty() => {
            function::trigger_function(cf, node, w, schema)
        }
        S::CreateFunction(cf) if function::is_overload(cf, schema) => {
            function::overload(cf, node, w, schema)
        }
        S::CreateView(_) | S::CreateMaterializedView(_) => create::create_view(node, w, schema),
        S::CreateFunction(_) | S::CreateProcedure(_) | S::CreateTrigger(_) | S::CreateRule(_) => {
            create_replaceable(node, w, schema)
        }
        S::CreatePolicy(_) | S::AlterPolicy(_) if policy_restricts(stmt, w, schema) => {
            restrictive_policy()
        }
        S::CreateSequence(_)
        | S::CreateType(_)
        | S::CreateSchema(_)
        | S::CreateExtension(_)
        | S::CreateDomain(_)
        | S::CreatePolicy(_)
        | S::CreateStatistics(_)
        | S::CreateCollation(_)
        | S::CreateAggregate(_) => create_object(node, w, schema),
        S::Refresh(r) => refresh(r, schema),
        S::CommentOn(_) | S::Grant(_) => Class::new(Expand, Inverse::Noop),
        S::Analyze(_) => Class::new(Neutral, Inverse::Noop),
        S::DropTable(_) | S::Truncate(_) => drop_table(stmt, schema),
        S::DropSchema(_) => drop_schema(node),
        S::DropView(_)
        | S::DropMaterializedView(_)
        | S::DropFunction(_)
        | S::DropProcedure(_)
        | S::DropTrigger(_)
        | S::DropSequence(_)
        | S::DropType(_)
        | S::DropDomain(_)
        | S::DropPolicy(_)
        | S::DropExtension(_)
        | S::DropRule(_)
        | S::DropStatistics(_)
        | S::DropAggregate(_) => drop_object(node, w, schema),
        S::Insert(_) | S::Update(_) | S::Delete(_) | S::Merge(_) => dml::classify_dml(node, schema),
        S::Copy(copy) => dml::classify_copy(copy, schema),
        S::Select(_) | S::CompoundSelect(_) | S::ParenSelect(_) => {
            dml::classify_select(node, schema)
        }
        S::Explain(e) => dml::classify_explain(e, schema, in_release),
        _ => return None,
    })
}

/// The second half of the dispatch table, for what [`classify_data`] leaves: session and
/// server-level settings, roles and publications, renames, and ALTER of objects beside the
/// schema; anything else is unclassified. (A flat table of one-line arms.)
fn classify_settings(stmt: &ast::Stmt, w: &[SmolStr], schema: &mut Schema) -> Class {
    use StmtPhase::*;
    use ast::Stmt as S;
    let node = stmt.syntax();
    match stmt {
        S::Set(_) if disabled_timeout(w).is_some() => timeout_disabled(w),
        _ if is_session_statement(stmt) => Class::new(Neutral, Inverse::Noop),
        S::CreateDatabase(_) | S::DropDatabase(_) | S::AlterSystem(_) => database_level(),
        // A role's settings, password, login and memberships are what the running version
        // connects with (PostgreSQL manual, ALTER ROLE); publishing a table makes its UPDATE and
        // DELETE fail without a replica identity (31.1 Publication).
        S::AlterRole(_) | S::AlterUser(_) | S::AlterGroup(_) if !has_seq(w, &["rename"]) => {
            unclassified(node)
        }
        S::CreatePublication(_) if w.iter().any(|t| t == "for") => unclassified(node),
        S::AlterPublication(_)
            if w.iter().any(|t| t == "add" || t == "set")
                && w.iter().any(|t| t == "table" || t == "tables") =>
        {
            unclassified(node)
        }
        _ if w.first().is_some_and(|t| t == "alter") && has_seq(w, &["rename"]) => {
            rename_object(node, w, schema)
        }
        _ if is_beside_the_schema(stmt)
            && !has_seq(w, &["set", "schema"])
            && !has_seq(w, &["add", "value"]) =>
        {
            Class::new(Expand, no_inverse())
        }
        S::AlterDomain(_)
            if has_seq(w, &["add", "constraint"]) || has_seq(w, &["set", "not", "null"]) =>
        {
            domain_constraint()
        }
        // Without its default, a NOT NULL domain's columns fail the running version's inserts
        // that leave them out (as ALTER TABLE ... DROP DEFAULT does): after it is retired.
        S::AlterDomain(_) if has_seq(w, &["drop", "default"]) || sets_default_null(w) => {
            Class::new(Contract, no_inverse())
        }
        S::AlterDomain(_) if !has_seq(w, &["set", "schema"]) => Class::new(Expand, no_inverse()),
        _ if is_drop_beside_the_schema(stmt) => Class::new(
            Contract,
            Inverse::Unknown(
                "a dropped object is not re-created automatically; add a down migration".into(),
            ),
        ),
        _ if is_read_or_session_state(stmt) => Class::new(Neutral, Inverse::Noop),
        S::AlterType(_) if has_seq(w, &["add", "value"]) => Class::new(
            Expand,
            Inverse::Unknown("PostgreSQL cannot remove an enum value".into()),
        ),
        S::AlterSequence(_) if sequence::moves(w) && !has_seq(w, &["rename"]) => {
            sequence::alter_sequence(node, w, schema)
                .unwrap_or_else(|| Class::new(Expand, no_inverse()))
        }
        S::AlterIndex(_)
        | S::AlterSequence(_)
        | S::AlterView(_)
        | S::AlterFunction(_)
        | S::AlterStatistics(_)
        | S::AlterPolicy(_)
        | S::AlterTrigger(_)
            if !has_seq(w, &["set", "schema"]) =>
        {
            alter_object(stmt, w, schema)
        }
        _ => unclassified(node),
    }
}

/// ALTER of an index, sequence, view, function, statistics, policy or trigger: expand, but
/// contract for a view's check option and for a function's behaviour (what the running version
/// writes through the view, or gets from its calls, changes).
fn alter_object(stmt: &ast::Stmt, w: &[SmolStr], schema: &Schema) -> Class {
    match stmt {
        ast::Stmt::AlterView(_)
            if has_seq(w, &["set", "("]) && w.iter().any(|t| t == "check_option") =>
        {
            let name = w.get(2).map_or(String::new(), |n| n.to_string());
            let mut c = Class::new(StmtPhase::Contract, no_inverse());
            super::create::check_option(&mut c, &name);
            c
        }
        ast::Stmt::AlterFunction(af)
            if !has_seq(w, &["owner", "to"]) && !has_seq(w, &["depends", "on"]) =>
        {
            super::function::alter_function(af, schema)
        }
        _ => Class::new(StmtPhase::Expand, no_inverse()),
    }
}

/// `SET DEFAULT NULL` (or `(NULL)`, `NULL::type`): the same as dropping the default.
pub(super) fn sets_default_null(w: &[SmolStr]) -> bool {
    let Some(p) = w
        .windows(2)
        .position(|x| x[0] == "set" && x[1] == "default")
    else {
        return false;
    };
    let rest: Vec<&str> = w[p + 2..]
        .iter()
        .map(SmolStr::as_str)
        .filter(|t| *t != "(" && *t != ")" && *t != ";")
        .collect();
    rest.first() == Some(&"null") && rest.get(1).is_none_or(|t| t.starts_with(':'))
}

/// The inverse of a statement cutover cannot undo by itself.
fn no_inverse() -> Inverse {
    Inverse::Unknown(no_inverse_reason())
}

/// CLUSTER and VACUUM FULL rewrite the whole table under an ACCESS EXCLUSIVE lock: no schema
/// change, but the running version waits for the whole rewrite.
fn table_rewrite(node: &SyntaxNode, w: &[SmolStr], schema: &Schema) -> Class {
    let mut c = Class::new(StmtPhase::Expand, Inverse::Noop);
    let table = w
        .iter()
        .skip(1)
        .find(|t| {
            !matches!(
                t.as_str(),
                "verbose" | "full" | "analyze" | "freeze" | "(" | ")" | ","
            )
        })
        .cloned();
    let new = table.as_deref().is_some_and(|t| schema.is_new(t));
    if !new {
        c.finding(
            RuleId::TableRewrite,
            format!(
                "`{}` rewrites {} under an ACCESS EXCLUSIVE lock: the running version's queries \
                 wait for the whole rewrite",
                summarize(&node.text().to_string()),
                table
                    .as_deref()
                    .map_or("every table".to_string(), |t| format!("`{t}`"))
            ),
            "run it in a maintenance window (a `recreate` release), or use pg_repack, which holds \
             the lock only briefly",
        );
    }
    c
}

/// REFRESH MATERIALIZED VIEW: without CONCURRENTLY it takes an ACCESS EXCLUSIVE lock on the
/// view for the whole query (PostgreSQL manual, REFRESH MATERIALIZED VIEW; 13.3.1 Table-Level
/// Locks), so the running version's reads of it wait.
///
/// `WITH NO DATA` leaves it unpopulated: reading it fails until a REFRESH (PostgreSQL manual,
/// REFRESH MATERIALIZED VIEW), so on one the running version reads it is breaking unless the
/// same transaction populates it again ([`Class::unpopulates`]).
fn refresh(r: &ast::Refresh, schema: &Schema) -> Class {
    let mut c = Class::new(StmtPhase::Expand, Inverse::Noop);
    let view = text_of(r.view_ref()).unwrap_or_default();
    let key = object_key(&view, None);
    let new = schema.is_new_object("materialized view", &key);
    if learn::with_no_data(r.data_option()) {
        if !new {
            c.unpopulates = Some(key);
        }
    } else {
        c.populates = Some(key);
    }
    if r.concurrently_token().is_none() && !new {
        c.finding(
            RuleId::TableRewrite,
            format!(
                "REFRESH MATERIALIZED VIEW `{view}` without CONCURRENTLY rewrites it under an \
                 ACCESS EXCLUSIVE lock: the running version's reads of it wait for the whole query"
            ),
            "use REFRESH MATERIALIZED VIEW CONCURRENTLY (it needs a unique index on the view), \
             or refresh it in a maintenance window",
        );
    }
    c
}

/// A restrictive policy, or a policy's new condition, can reject what the running version
/// reads or writes (on a table it uses).
fn policy_restricts(stmt: &ast::Stmt, w: &[SmolStr], schema: &Schema) -> bool {
    (has_seq(w, &["as", "restrictive"])
        || (matches!(stmt, ast::Stmt::AlterPolicy(_))
            && (w.iter().any(|x| x == "using") || has_seq(w, &["with", "check"]))))
        && name_after(stmt.syntax(), "on", &[]).is_none_or(|t| !schema.is_new(&t))
}

/// A policy that [`policy_restricts`]: contract, unless declared.
fn restrictive_policy() -> Class {
    let mut c = Class::new(StmtPhase::Contract, no_inverse());
    c.declarable = true;
    c.finding(
        RuleId::ConstraintRejectsOldWrites,
        "the policy can hide rows from, or reject writes of, the version still running; cutover \
         places it after that version is retired"
            .into(),
        RECIPE_CONSTRAINT_OLD_WRITES,
    );
    c
}

/// pg_dump writes `SET lock_timeout = 0;` and `SET statement_timeout = 0;` at the top of its
/// output: in a migration they switch off the timeouts the executor sets around each statement
/// (and squawk's timeout rules take any SET for one).
fn timeout_disabled(w: &[SmolStr]) -> Class {
    let mut c = Class::new(StmtPhase::Neutral, Inverse::Noop);
    let which = disabled_timeout(w).unwrap_or_default();
    c.finding(
        RuleId::TimeoutDisabled,
        format!(
            "`SET {which} = 0` switches off the {which} the executor sets around every statement: a \
             DDL statement waiting for a lock then queues every query of the running version behind \
             it, without limit"
        ),
        "remove the line (pg_dump writes it for restores, not for migrations); the database's \
         `lock_timeout` and `statement_timeout` in the release spec apply",
    );
    c
}

/// Session and transaction statements: no schema change.
fn is_session_statement(stmt: &ast::Stmt) -> bool {
    use ast::Stmt as S;
    matches!(
        stmt,
        S::Set(_)
            | S::Reset(_)
            | S::Begin(_)
            | S::Commit(_)
            | S::Rollback(_)
            | S::Show(_)
            | S::SetTransaction(_)
            | S::SetConstraints(_)
            | S::Lock(_)
            | S::SetRole(_)
            | S::ResetRole(_)
            | S::SavepointCreate(_)
            | S::ReleaseSavepoint(_)
            | S::EmptyStmt(_)
            | S::Checkpoint(_)
    )
}

/// CREATE DATABASE, DROP DATABASE, ALTER SYSTEM: outside the release's phases.
fn database_level() -> Class {
    let mut c = Class::new(StmtPhase::Contract, no_inverse());
    c.needs_declaration = true;
    c.finding(
        RuleId::UnclassifiedStatement,
        "database-level statements are outside a release's schema phases".into(),
        "run them outside cutover, or declare the file's phase with `-- cutover:phase=`",
    );
    c
}

pub(super) const RECIPE_RENAME_CONSTRAINT: &str = "keep the constraint's name; or move the app \
                                                   off the old name first (ON CONFLICT (columns) \
                                                   instead of ON CONFLICT ON CONSTRAINT) and \
                                                   rename it in a contract migration";

/// `ALTER <kind> ... RENAME`: breaking for what the running version names (statistics,
/// triggers, policies and plain indexes it does not; an index that backs a primary key or
/// UNIQUE constraint renames the constraint too, which it may name).
fn rename_object(node: &SyntaxNode, w: &[SmolStr], schema: &mut Schema) -> Class {
    let what = altered_kind(w);
    if what == "index"
        && !has_seq(w, &["rename", "column"])
        && let Some(c) = rename_constraint_index(node, schema)
    {
        return c;
    }
    if what == "index" {
        // Renamed back by its inverse (the running version does not name indexes).
        let inverse = crate::rewrite::index::index_rename_inverse(&node.text().to_string())
            .map_or_else(no_inverse, Inverse::Sql);
        return Class::new(StmtPhase::Expand, inverse);
    }
    if matches!(what.as_str(), "statistics" | "trigger" | "policy") {
        return Class::new(StmtPhase::Expand, no_inverse());
    }
    renamed(&what)
}

/// `breaking-rename-object` for the rename of a `what` (`view`, `materialized view`, ...).
pub(super) fn renamed(what: &str) -> Class {
    let mut c = Class::new(StmtPhase::Breaking, no_inverse());
    c.finding(
        RuleId::BreakingRenameObject,
        format!("renaming this {what} breaks the version that still uses the old name"),
        RECIPE_RENAME_OBJECT,
    );
    c
}

/// The kind of object an `ALTER <kind> ...` statement (words `w`) alters, in words:
/// `materialized view`, `foreign table`, `text search configuration`, `index`.
fn altered_kind(w: &[SmolStr]) -> String {
    let word = |i: usize| w.get(i).map(SmolStr::as_str).unwrap_or_default();
    let n = match (word(1), word(2)) {
        ("foreign", "data") | ("text", "search") => 3,
        ("materialized" | "foreign" | "event" | "operator" | "large" | "access" | "user", _) => 2,
        _ => 1,
    };
    (1..=n).map(word).collect::<Vec<_>>().join(" ")
}

/// `ALTER INDEX name RENAME TO new` of the index of a primary key or UNIQUE constraint of a
/// table the running version uses: PostgreSQL renames the constraint with it (PostgreSQL
/// manual, ALTER INDEX; ALTER TABLE, RENAME), so it is a constraint rename.
fn rename_constraint_index(node: &SyntaxNode, schema: &mut Schema) -> Option<Class> {
    let from = name_after(node, "index", &["if", "exists"])?;
    let to = name_after(node, "to", &[])?;
    let table = schema.constraint_of_index(&from)?.to_string();
    let last = from.rsplit('.').next().unwrap_or(&from).to_string();
    schema.rename_constraint(&table, &last, &to);
    let key = format!("{}@{}", normalize(&last), table);
    if schema.is_new(&table) || schema.is_new_object("constraint", &key) {
        return None;
    }
    let mut c = Class::new(StmtPhase::Breaking, no_inverse());
    c.finding(
        RuleId::BreakingRenameObject,
        format!(
            "`{from}` is the index of constraint `{last}` on `{table}`: renaming it renames the \
             constraint, which breaks the running version where it names it (`ON CONFLICT ON \
             CONSTRAINT {last}`)"
        ),
        RECIPE_RENAME_CONSTRAINT,
    );
    Some(c)
}

/// Roles, privileges, ownership, foreign data, publications, operators and the like: they add
/// or adjust what the running version does not depend on.
fn is_beside_the_schema(stmt: &ast::Stmt) -> bool {
    use ast::Stmt as S;
    matches!(
        stmt,
        S::AlterDefaultPrivileges(_)
            | S::CreateRole(_)
            | S::CreateUser(_)
            | S::CreateGroup(_)
            | S::AlterRole(_)
            | S::AlterUser(_)
            | S::AlterGroup(_)
            | S::CreateServer(_)
            | S::AlterServer(_)
            | S::CreateForeignDataWrapper(_)
            | S::AlterForeignDataWrapper(_)
            | S::CreateForeignTable(_)
            | S::AlterForeignTable(_)
            | S::CreateUserMapping(_)
            | S::AlterUserMapping(_)
            | S::ImportForeignSchema(_)
            | S::CreatePublication(_)
            | S::AlterPublication(_)
            | S::CreateEventTrigger(_)
            | S::AlterEventTrigger(_)
            | S::SecurityLabel(_)
            | S::CreateCast(_)
            | S::CreateOperator(_)
            | S::CreateOperatorClass(_)
            | S::CreateOperatorFamily(_)
            | S::CreateTextSearchConfiguration(_)
            | S::CreateTextSearchDictionary(_)
            | S::CreateTextSearchParser(_)
            | S::CreateTextSearchTemplate(_)
            | S::CreateConversion(_)
            | S::CreateLanguage(_)
            | S::CreateAccessMethod(_)
            | S::CreateTransform(_)
            | S::AlterExtension(_)
            | S::AlterMaterializedView(_)
            | S::AlterAggregate(_)
            | S::AlterCollation(_)
            | S::AlterConversion(_)
            | S::AlterLanguage(_)
            | S::AlterOperator(_)
            | S::AlterOperatorClass(_)
            | S::AlterOperatorFamily(_)
            | S::AlterTextSearchConfiguration(_)
            | S::AlterTextSearchDictionary(_)
            | S::AlterTextSearchParser(_)
            | S::AlterTextSearchTemplate(_)
            | S::AlterRoutine(_)
            | S::AlterProcedure(_)
            | S::AlterRule(_)
            | S::AlterLargeObject(_)
            | S::AlterSchema(_)
            | S::AlterType(_)
    )
}

/// A new domain constraint: contract, unless declared.
fn domain_constraint() -> Class {
    let mut c = Class::new(StmtPhase::Contract, no_inverse());
    c.declarable = true;
    c.finding(
        RuleId::ConstraintRejectsOldWrites,
        "the new domain constraint can reject writes of the version still running to every column \
         of that domain; cutover places it after that version is retired"
            .into(),
        RECIPE_CONSTRAINT_OLD_WRITES,
    );
    c
}

/// DROP of roles, servers, operators and the like, and REVOKE: contract.
fn is_drop_beside_the_schema(stmt: &ast::Stmt) -> bool {
    use ast::Stmt as S;
    matches!(
        stmt,
        S::DropRole(_)
            | S::DropUser(_)
            | S::DropGroup(_)
            | S::DropServer(_)
            | S::DropForeignTable(_)
            | S::DropForeignDataWrapper(_)
            | S::DropUserMapping(_)
            | S::DropPublication(_)
            | S::DropEventTrigger(_)
            | S::DropCast(_)
            | S::DropOperator(_)
            | S::DropOperatorClass(_)
            | S::DropOperatorFamily(_)
            | S::DropTextSearchConfig(_)
            | S::DropTextSearchDict(_)
            | S::DropTextSearchParser(_)
            | S::DropTextSearchTemplate(_)
            | S::DropConversion(_)
            | S::DropLanguage(_)
            | S::DropAccessMethod(_)
            | S::DropTransform(_)
            | S::DropRoutine(_)
            | S::DropOwned(_)
            | S::DropCollation(_)
            | S::Revoke(_)
    )
}

/// Reads, cursors, notifications and session state: no schema change.
fn is_read_or_session_state(stmt: &ast::Stmt) -> bool {
    use ast::Stmt as S;
    matches!(
        stmt,
        S::Values(_)
            | S::Table(_)
            | S::Fetch(_)
            | S::Move(_)
            | S::Close(_)
            | S::Declare(_)
            | S::Prepare(_)
            | S::Deallocate(_)
            | S::Listen(_)
            | S::Unlisten(_)
            | S::Notify(_)
            | S::Discard(_)
            | S::SetSessionAuth(_)
            | S::ResetSessionAuth(_)
            | S::PrepareTransaction(_)
    )
}

/// What cutover does not know: contract, and a phase declaration is needed.
pub(super) fn unclassified(node: &SyntaxNode) -> Class {
    let mut c = Class::new(StmtPhase::Contract, no_inverse());
    c.needs_declaration = true;
    c.finding(
        RuleId::UnclassifiedStatement,
        format!(
            "cutover does not know whether `{}` is safe while the old version runs, and will not \
             place it by guessing",
            summarize(&node.text().to_string())
        ),
        "declare the file's phase at its top: `-- cutover:phase=expand` if the old version keeps \
         working after it, `-- cutover:phase=contract` if it must wait until that version is retired",
    );
    c
}

/// `lock_timeout` or `statement_timeout` when `w` (a SET statement's words) sets it to 0.
pub(super) fn disabled_timeout(w: &[SmolStr]) -> Option<String> {
    let name = w
        .iter()
        .take(3)
        .find(|t| matches!(t.as_str(), "lock_timeout" | "statement_timeout"))?;
    let value = w.iter().rev().find(|t| *t != ";")?;
    matches!(value.as_str(), "0" | "'0'" | "'0s'" | "'0ms'").then(|| name.to_string())
}

pub(super) fn no_inverse_reason() -> String {
    "cutover knows no safe inverse for this statement; add a down migration".into()
}
