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
}

impl Class {
    pub(super) fn new(phase: StmtPhase, inverse: Inverse) -> Self {
        Self {
            phase,
            inverse,
            rename: None,
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

pub(super) const RECIPE_ALTER_TYPE: &str = "change a type in phases: add a column of the new type with a trigger keeping both in sync (expand), backfill it, move the app to it, drop the old column (contract); or run it in a `recreate` release";

pub(super) const RECIPE_SET_NOT_NULL: &str = "the old version may still write NULL: enforce it in a contract migration (after that version is retired) as ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT c, then SET NOT NULL, which skips the scan; NOT VALID alone does not make it safe earlier: it skips only the rows already there";

pub(super) const RECIPE_CONSTRAINT_NEW_COLUMN: &str = "add the constraint in a contract migration (it runs after the old version is retired), or give the column a DEFAULT the constraint accepts so the old version's inserts pass; NOT VALID does not help: it skips only the rows already there";

pub(super) const RECIPE_CONSTRAINT_OLD_WRITES: &str = "nothing to do if it may wait until the old version is retired; if the new version needs it earlier (ON CONFLICT on a unique key) and the old version never writes rows it rejects, declare `-- cutover:phase=expand` at the top of the file";

pub(super) const RECIPE_REQUIRED_COLUMN: &str = "add the column nullable or with a constant DEFAULT (expand), backfill it, then enforce NOT NULL with a validated CHECK";

pub(super) const RECIPE_RENAME_TABLE: &str = "rename the table and create a view with the old name in the same migration (the old version keeps working through the view), then drop the view in a contract migration";

pub(super) const RECIPE_RENAME_OBJECT: &str = "create the object under its new name beside the old one (expand), move the app to it, drop the old one (contract)";

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
    c
}

pub(super) fn classify_before_learning(
    stmt: &ast::Stmt,
    w: &[SmolStr],
    schema: &mut Schema,
    in_release: bool,
) -> Class {
    use StmtPhase::*;
    let node = stmt.syntax();
    let no_inverse = || {
        Inverse::Unknown(
            "cutover knows no safe inverse for this statement; add a down migration".into(),
        )
    };
    match stmt {
        ast::Stmt::AlterTable(at) => alter_table::classify_alter_table(at, schema),
        ast::Stmt::CreateTable(ct) => {
            let name = text_of(ct.table_name()).unwrap_or_default();
            // On a table that exists, IF NOT EXISTS only issues a notice (PostgreSQL manual,
            // CREATE TABLE): the table stays what it was, and stays live.
            if has_seq(&w[..w.len().min(8)], &["if", "not", "exists"])
                && schema.table(&name).is_some()
            {
                return Class::new(Neutral, Inverse::Noop);
            }
            learn::create_table(schema, ct, in_release);
            column_type::record_collations(schema, &name, ct);
            let mut c = Class::new(
                Expand,
                Inverse::Sql(format!("DROP TABLE IF EXISTS {name};")),
            );
            c.table = Some(normalize(&name));
            c
        }
        ast::Stmt::CreateTableAs(_) | ast::Stmt::SelectInto(_) => {
            let name = name_after(node, "table", &["if", "not", "exists"])
                .or_else(|| name_after(node, "into", &[]))
                .unwrap_or_default();
            schema.create_table(&name, Vec::new(), Vec::new(), in_release);
            let mut c = Class::new(
                Expand,
                Inverse::Sql(format!("DROP TABLE IF EXISTS {name};")),
            );
            c.table = Some(normalize(&name));
            dml::add_query_writes(&mut c, node, schema);
            c
        }
        ast::Stmt::CreateIndex(ci) => {
            let table = text_of(ci.table_relation_name().and_then(|r| r.table_name_ref()))
                .unwrap_or_default();
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
                None => {
                    Inverse::Unknown("the index has no name; name it so it can be dropped".into())
                }
            };
            let mut c = Class::new(Expand, inverse);
            // A unique index rejects duplicates the running version may still write.
            if ci.unique_token().is_some() && !schema.is_new(&table) {
                match constraint_rejects(schema, &table, node, w) {
                    Rejects::No => {}
                    Rejects::Will(why) => {
                        c.raise(Breaking);
                        c.finding(
                            RuleId::BreakingAddConstraint,
                            format!(
                                "the unique index rejects the inserts of the running version: {why}"
                            ),
                            RECIPE_CONSTRAINT_NEW_COLUMN,
                        );
                    }
                    Rejects::May => {
                        c.raise(Contract);
                        c.declarable = true;
                        c.finding(RuleId::ConstraintRejectsOldWrites, format!("the unique index on `{table}` rejects duplicate writes of the version still running; cutover places it after that version is retired"), RECIPE_CONSTRAINT_OLD_WRITES);
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
        ast::Stmt::DropIndex(_) => {
            let mut c = Class::new(
                Expand,
                Inverse::Unknown(
                    "a dropped index is not re-created automatically; add a down migration".into(),
                ),
            );
            let dropped = dropped_names(node, 1);
            if dropped.names.is_empty() || dropped.cascade {
                c.raise(Contract);
            }
            if let [one] = dropped.names.as_slice() {
                c.table = schema.index_table(&normalize(one)).map(str::to_string);
            }
            for name in dropped.names {
                let key = normalize(&name);
                let on_new = schema.index_table(&key).is_some_and(|t| schema.is_new(t))
                    || schema.is_new_object_in_file("index", &key);
                if !on_new {
                    c.raise_drop("index", key);
                }
            }
            c
        }
        // CLUSTER and VACUUM FULL rewrite the whole table under an ACCESS EXCLUSIVE lock: no
        // schema change, but the running version waits for the whole rewrite.
        ast::Stmt::Cluster(_) | ast::Stmt::Vacuum(_)
            if matches!(stmt, ast::Stmt::Cluster(_)) || has_seq(w, &["full"]) =>
        {
            let mut c = Class::new(Expand, Inverse::Noop);
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
                c.finding(RuleId::TableRewrite, format!("`{}` rewrites {} under an ACCESS EXCLUSIVE lock: the running version's queries wait for the whole rewrite", summarize(&node.text().to_string()), table.as_deref().map_or("every table".to_string(), |t| format!("`{t}`"))), "run it in a maintenance window (a `recreate` release), or use pg_repack, which holds the lock only briefly");
            }
            c
        }
        ast::Stmt::Reindex(_) | ast::Stmt::Vacuum(_) => Class::new(Neutral, Inverse::Noop),
        // A rule rewrites, and a constraint trigger can reject, the running version's writes
        // (PostgreSQL manual, 41 The Rule System; CREATE TRIGGER, CONSTRAINT).
        ast::Stmt::CreateRule(_) | ast::Stmt::CreateTrigger(_)
            if (matches!(stmt, ast::Stmt::CreateRule(_))
                || has_seq(w, &["constraint", "trigger"]))
                && !has_seq(w, &["or", "replace"])
                && {
                    let table = if matches!(stmt, ast::Stmt::CreateRule(_)) {
                        name_after(node, "to", &[])
                    } else {
                        name_after(node, "on", &[])
                    };
                    table.is_some_and(|t| schema.table(&t).is_some() && !schema.is_new(&t))
                } =>
        {
            let mut c = Class::new(Contract, create_inverse(node, w));
            if let Some((kind, key)) = created_object(node, w) {
                schema.create_object(kind, &key);
                c.creates.push((kind, key));
            }
            c.declarable = true;
            c.finding(RuleId::ConstraintRejectsOldWrites, format!("`{}` changes what the running version's writes do to a table it uses (a rule rewrites them, a constraint trigger can reject them); cutover places it after that version is retired", summarize(&node.text().to_string())), RECIPE_CONSTRAINT_OLD_WRITES);
            c
        }
        ast::Stmt::CreateView(_)
        | ast::Stmt::CreateFunction(_)
        | ast::Stmt::CreateProcedure(_)
        | ast::Stmt::CreateTrigger(_)
        | ast::Stmt::CreateRule(_) => {
            let or_replace = has_seq(w, &["or", "replace"]);
            let mut c = Class::new(Expand, create_inverse(node, w));
            let created = created_object(node, w);
            let new = created
                .as_ref()
                .is_some_and(|(kind, key)| schema.is_new_object_in_file(kind, key));
            if let Some((kind, key)) = created {
                schema.create_object(kind, &key);
                c.creates.push((kind, key));
            }
            if or_replace && !new {
                c.inverse = Inverse::Unknown(
                    "CREATE OR REPLACE does not keep the previous definition; add a down migration"
                        .into(),
                );
                c.finding(RuleId::ReplacesObject, "CREATE OR REPLACE changes an object the running version may already use".into(), "create it under a new name (expand), move the app to it, drop the old one (contract); or declare the file's phase if both versions work with the new definition");
            }
            c
        }
        // A restrictive policy, or a policy's new condition, can reject what the running
        // version reads or writes.
        ast::Stmt::CreatePolicy(_) | ast::Stmt::AlterPolicy(_)
            if (has_seq(w, &["as", "restrictive"])
                || (matches!(stmt, ast::Stmt::AlterPolicy(_))
                    && (w.iter().any(|x| x == "using") || has_seq(w, &["with", "check"]))))
                && name_after(node, "on", &[]).is_none_or(|t| !schema.is_new(&t)) =>
        {
            let mut c = Class::new(Contract, no_inverse());
            c.declarable = true;
            c.finding(RuleId::ConstraintRejectsOldWrites, "the policy can hide rows from, or reject writes of, the version still running; cutover places it after that version is retired".into(), RECIPE_CONSTRAINT_OLD_WRITES);
            c
        }
        ast::Stmt::CreateSequence(_)
        | ast::Stmt::CreateType(_)
        | ast::Stmt::CreateSchema(_)
        | ast::Stmt::CreateExtension(_)
        | ast::Stmt::CreateDomain(_)
        | ast::Stmt::CreateMaterializedView(_)
        | ast::Stmt::CreatePolicy(_)
        | ast::Stmt::CreateStatistics(_)
        | ast::Stmt::CreateCollation(_)
        | ast::Stmt::CreateAggregate(_) => {
            let mut c = Class::new(Expand, create_inverse(node, w));
            if let Some((kind, key)) = created_object(node, w) {
                schema.create_object(kind, &key);
                c.creates.push((kind, key));
            }
            c
        }
        ast::Stmt::CommentOn(_)
        | ast::Stmt::Grant(_)
        | ast::Stmt::Analyze(_)
        | ast::Stmt::Refresh(_) => Class::new(
            if matches!(stmt, ast::Stmt::Analyze(_)) {
                Neutral
            } else {
                Expand
            },
            Inverse::Noop,
        ),
        ast::Stmt::DropTable(_) | ast::Stmt::Truncate(_) => {
            let dropped = if matches!(stmt, ast::Stmt::DropTable(_)) {
                dropped_names(node, 1)
            } else {
                truncated_names(node)
            };
            // Tables this release created hold nothing the running version wrote.
            let all_new = !dropped.names.is_empty()
                && !dropped.cascade
                && dropped.names.iter().all(|n| schema.is_new(n));
            let mut c = Class::new(
                if all_new { Expand } else { Contract },
                Inverse::Unknown("dropped data can only come back from the backup".into()),
            );
            if !all_new {
                let what = summarize(&node.text().to_string());
                c.finding(RuleId::DataLoss, format!("`{what}` deletes data"), "run it only after the old version is retired; the pre-release backup is the only way back");
            }
            if matches!(stmt, ast::Stmt::DropTable(_)) {
                for name in &dropped.names {
                    schema.drop_table(name);
                }
            } else if let [one] = dropped.names.as_slice() {
                c.table = Some(normalize(one));
            }
            c
        }
        ast::Stmt::DropSchema(_) => {
            let mut c = Class::new(
                Contract,
                Inverse::Unknown("dropped data can only come back from the backup".into()),
            );
            let what = summarize(&node.text().to_string());
            c.finding(RuleId::DataLoss, format!("`{what}` deletes data"), "run it only after the old version is retired; the pre-release backup is the only way back");
            c
        }
        ast::Stmt::DropView(_)
        | ast::Stmt::DropMaterializedView(_)
        | ast::Stmt::DropFunction(_)
        | ast::Stmt::DropProcedure(_)
        | ast::Stmt::DropTrigger(_)
        | ast::Stmt::DropSequence(_)
        | ast::Stmt::DropType(_)
        | ast::Stmt::DropDomain(_)
        | ast::Stmt::DropPolicy(_)
        | ast::Stmt::DropExtension(_)
        | ast::Stmt::DropRule(_)
        | ast::Stmt::DropStatistics(_)
        | ast::Stmt::DropAggregate(_) => {
            let mut c = Class::new(
                Expand,
                Inverse::Unknown(
                    "a dropped object is not re-created automatically; add a down migration".into(),
                ),
            );
            let materialized = w.get(1).is_some_and(|t| t == "materialized");
            let kind = object_kind(
                w.get(if materialized { 2 } else { 1 }).map_or("", |k| k),
                materialized,
            );
            let dropped = dropped_names(node, if materialized { 2 } else { 1 });
            // CASCADE also drops what depends on the object: never a clean replace.
            if dropped.names.is_empty() || dropped.cascade || kind.is_none() {
                c.raise(Contract);
            }
            if let Some(kind) = kind {
                for name in dropped.names {
                    let key = object_key(&name, dropped.on.as_deref());
                    // Made earlier in this transaction: nobody else has seen it. Made by an
                    // earlier file of the release, it may be there for the old version (a view
                    // under a renamed table's old name): contract.
                    if !schema.is_new_object_in_file(kind, &key) {
                        c.raise_drop(kind, key);
                    }
                }
            }
            c
        }
        ast::Stmt::Insert(_)
        | ast::Stmt::Update(_)
        | ast::Stmt::Delete(_)
        | ast::Stmt::Merge(_) => dml::classify_dml(node, schema),
        ast::Stmt::Copy(copy) => dml::classify_copy(copy, schema),
        ast::Stmt::Select(_) | ast::Stmt::CompoundSelect(_) | ast::Stmt::ParenSelect(_) => {
            dml::classify_select(node, schema)
        }
        ast::Stmt::Explain(e) => dml::classify_explain(e, schema, in_release),
        // pg_dump writes `SET lock_timeout = 0;` and `SET statement_timeout = 0;` at the top of
        // its output: in a migration they switch off the timeouts the executor sets around each
        // statement (and squawk's timeout rules take any SET for one).
        ast::Stmt::Set(_) if disabled_timeout(w).is_some() => {
            let mut c = Class::new(Neutral, Inverse::Noop);
            let which = disabled_timeout(w).unwrap_or_default();
            c.finding(RuleId::TimeoutDisabled,
                format!("`SET {which} = 0` switches off the {which} the executor sets around every statement: a DDL statement waiting for a lock then queues every query of the running version behind it, without limit"),
                "remove the line (pg_dump writes it for restores, not for migrations); the database's `lock_timeout` and `statement_timeout` in the release spec apply",
            );
            c
        }
        ast::Stmt::Set(_)
        | ast::Stmt::Reset(_)
        | ast::Stmt::Begin(_)
        | ast::Stmt::Commit(_)
        | ast::Stmt::Rollback(_)
        | ast::Stmt::Show(_)
        | ast::Stmt::SetTransaction(_)
        | ast::Stmt::SetConstraints(_)
        | ast::Stmt::Lock(_)
        | ast::Stmt::SetRole(_)
        | ast::Stmt::ResetRole(_)
        | ast::Stmt::SavepointCreate(_)
        | ast::Stmt::ReleaseSavepoint(_)
        | ast::Stmt::EmptyStmt(_)
        | ast::Stmt::Checkpoint(_) => Class::new(Neutral, Inverse::Noop),
        ast::Stmt::CreateDatabase(_) | ast::Stmt::DropDatabase(_) | ast::Stmt::AlterSystem(_) => {
            let mut c = Class::new(Contract, no_inverse());
            c.needs_declaration = true;
            c.finding(
                RuleId::UnclassifiedStatement,
                "database-level statements are outside a release's schema phases".into(),
                "run them outside cutover, or declare the file's phase with `-- cutover:phase=`",
            );
            c
        }
        _ if w.first().is_some_and(|t| t == "alter") && has_seq(w, &["rename"]) => {
            let what = w.get(1).cloned().unwrap_or_default();
            if matches!(what.as_str(), "index" | "statistics" | "trigger" | "policy") {
                Class::new(Expand, no_inverse())
            } else {
                let mut c = Class::new(Breaking, no_inverse());
                c.finding(
                    RuleId::BreakingRenameObject,
                    format!("renaming this {what} breaks the version that still uses the old name"),
                    RECIPE_RENAME_OBJECT,
                );
                c
            }
        }
        // Roles, privileges, ownership, foreign data, publications, operators and the like: they
        // add or adjust what the running version does not depend on.
        ast::Stmt::AlterDefaultPrivileges(_)
        | ast::Stmt::CreateRole(_)
        | ast::Stmt::CreateUser(_)
        | ast::Stmt::CreateGroup(_)
        | ast::Stmt::AlterRole(_)
        | ast::Stmt::AlterUser(_)
        | ast::Stmt::AlterGroup(_)
        | ast::Stmt::CreateServer(_)
        | ast::Stmt::AlterServer(_)
        | ast::Stmt::CreateForeignDataWrapper(_)
        | ast::Stmt::AlterForeignDataWrapper(_)
        | ast::Stmt::CreateForeignTable(_)
        | ast::Stmt::AlterForeignTable(_)
        | ast::Stmt::CreateUserMapping(_)
        | ast::Stmt::AlterUserMapping(_)
        | ast::Stmt::ImportForeignSchema(_)
        | ast::Stmt::CreatePublication(_)
        | ast::Stmt::AlterPublication(_)
        | ast::Stmt::CreateEventTrigger(_)
        | ast::Stmt::AlterEventTrigger(_)
        | ast::Stmt::SecurityLabel(_)
        | ast::Stmt::CreateCast(_)
        | ast::Stmt::CreateOperator(_)
        | ast::Stmt::CreateOperatorClass(_)
        | ast::Stmt::CreateOperatorFamily(_)
        | ast::Stmt::CreateTextSearchConfiguration(_)
        | ast::Stmt::CreateTextSearchDictionary(_)
        | ast::Stmt::CreateTextSearchParser(_)
        | ast::Stmt::CreateTextSearchTemplate(_)
        | ast::Stmt::CreateConversion(_)
        | ast::Stmt::CreateLanguage(_)
        | ast::Stmt::CreateAccessMethod(_)
        | ast::Stmt::CreateTransform(_)
        | ast::Stmt::AlterExtension(_)
        | ast::Stmt::AlterMaterializedView(_)
        | ast::Stmt::AlterAggregate(_)
        | ast::Stmt::AlterCollation(_)
        | ast::Stmt::AlterConversion(_)
        | ast::Stmt::AlterLanguage(_)
        | ast::Stmt::AlterOperator(_)
        | ast::Stmt::AlterOperatorClass(_)
        | ast::Stmt::AlterOperatorFamily(_)
        | ast::Stmt::AlterTextSearchConfiguration(_)
        | ast::Stmt::AlterTextSearchDictionary(_)
        | ast::Stmt::AlterTextSearchParser(_)
        | ast::Stmt::AlterTextSearchTemplate(_)
        | ast::Stmt::AlterRoutine(_)
        | ast::Stmt::AlterProcedure(_)
        | ast::Stmt::AlterRule(_)
        | ast::Stmt::AlterLargeObject(_)
        | ast::Stmt::AlterSchema(_)
        | ast::Stmt::AlterType(_)
            if !has_seq(w, &["set", "schema"]) && !has_seq(w, &["add", "value"]) =>
        {
            Class::new(Expand, no_inverse())
        }
        ast::Stmt::AlterDomain(_)
            if has_seq(w, &["add", "constraint"]) || has_seq(w, &["set", "not", "null"]) =>
        {
            let mut c = Class::new(Contract, no_inverse());
            c.declarable = true;
            c.finding(RuleId::ConstraintRejectsOldWrites, "the new domain constraint can reject writes of the version still running to every column of that domain; cutover places it after that version is retired".into(), RECIPE_CONSTRAINT_OLD_WRITES);
            c
        }
        ast::Stmt::AlterDomain(_) if !has_seq(w, &["set", "schema"]) => {
            Class::new(Expand, no_inverse())
        }
        ast::Stmt::DropRole(_)
        | ast::Stmt::DropUser(_)
        | ast::Stmt::DropGroup(_)
        | ast::Stmt::DropServer(_)
        | ast::Stmt::DropForeignTable(_)
        | ast::Stmt::DropForeignDataWrapper(_)
        | ast::Stmt::DropUserMapping(_)
        | ast::Stmt::DropPublication(_)
        | ast::Stmt::DropEventTrigger(_)
        | ast::Stmt::DropCast(_)
        | ast::Stmt::DropOperator(_)
        | ast::Stmt::DropOperatorClass(_)
        | ast::Stmt::DropOperatorFamily(_)
        | ast::Stmt::DropTextSearchConfig(_)
        | ast::Stmt::DropTextSearchDict(_)
        | ast::Stmt::DropTextSearchParser(_)
        | ast::Stmt::DropTextSearchTemplate(_)
        | ast::Stmt::DropConversion(_)
        | ast::Stmt::DropLanguage(_)
        | ast::Stmt::DropAccessMethod(_)
        | ast::Stmt::DropTransform(_)
        | ast::Stmt::DropRoutine(_)
        | ast::Stmt::DropOwned(_)
        | ast::Stmt::DropCollation(_)
        | ast::Stmt::Revoke(_) => Class::new(
            Contract,
            Inverse::Unknown(
                "a dropped object is not re-created automatically; add a down migration".into(),
            ),
        ),
        // Reads, cursors, notifications and session state: no schema change.
        ast::Stmt::Values(_)
        | ast::Stmt::Table(_)
        | ast::Stmt::Fetch(_)
        | ast::Stmt::Move(_)
        | ast::Stmt::Close(_)
        | ast::Stmt::Declare(_)
        | ast::Stmt::Prepare(_)
        | ast::Stmt::Deallocate(_)
        | ast::Stmt::Listen(_)
        | ast::Stmt::Unlisten(_)
        | ast::Stmt::Notify(_)
        | ast::Stmt::Discard(_)
        | ast::Stmt::SetSessionAuth(_)
        | ast::Stmt::ResetSessionAuth(_)
        | ast::Stmt::PrepareTransaction(_) => Class::new(Neutral, Inverse::Noop),
        ast::Stmt::AlterType(_) if has_seq(w, &["add", "value"]) => Class::new(
            Expand,
            Inverse::Unknown("PostgreSQL cannot remove an enum value".into()),
        ),
        ast::Stmt::AlterIndex(_)
        | ast::Stmt::AlterSequence(_)
        | ast::Stmt::AlterView(_)
        | ast::Stmt::AlterFunction(_)
        | ast::Stmt::AlterStatistics(_)
        | ast::Stmt::AlterPolicy(_)
        | ast::Stmt::AlterTrigger(_)
            if !has_seq(w, &["set", "schema"]) =>
        {
            Class::new(Expand, no_inverse())
        }
        _ => {
            let mut c = Class::new(Contract, no_inverse());
            c.needs_declaration = true;
            c.finding(RuleId::UnclassifiedStatement, format!("cutover does not know whether `{}` is safe while the old version runs, and will not place it by guessing", summarize(&node.text().to_string())), "declare the file's phase at its top: `-- cutover:phase=expand` if the old version keeps working after it, `-- cutover:phase=contract` if it must wait until that version is retired");
            c
        }
    }
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
