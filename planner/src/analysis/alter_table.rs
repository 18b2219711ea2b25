//! ALTER TABLE: each action is judged by what the running version still does to the table,
//! and collects its inverse for the rollback.

use super::*;

/// The table an ALTER TABLE works on.
#[derive(Clone, Copy)]
struct Target<'a> {
    /// As written.
    table: &'a str,
    /// Created by this release: nobody runs against it yet.
    is_new: bool,
    /// The whole statement, for actions judged together (a constraint dropped and added again).
    at: &'a ast::AlterTable,
}

/// What the actions of one ALTER TABLE add up to.
struct Acc {
    c: Class,
    /// Each action's inverse SQL, in action order.
    inverses: Vec<String>,
    /// Why some action has no inverse cutover can write.
    unknown_inverse: Option<String>,
}

impl Acc {
    /// The statement's class, with the inverse of all its actions (in reverse order), or why
    /// there is none.
    fn into_class(self) -> Class {
        let Acc {
            mut c,
            mut inverses,
            unknown_inverse,
        } = self;
        c.inverse = match unknown_inverse {
            Some(reason) => Inverse::Unknown(reason),
            None if inverses.is_empty() => Inverse::Noop,
            None => {
                inverses.reverse();
                Inverse::Sql(inverses.join("\n"))
            }
        };
        c
    }
}

/// What the relation an ALTER TABLE names is, when the model knows it as a view, materialized
/// view or sequence, not a table.
pub(super) fn other_relation(at: &ast::AlterTable, schema: &Schema) -> Option<&'static str> {
    let name = text_of(at.table_relation_name().and_then(|r| r.table_name_ref()))?;
    schema.non_table_relation(&name)
}

/// ALTER TABLE on a view, materialized view or sequence ([`other_relation`]): PostgreSQL
/// accepts it for those relations too (PostgreSQL manual, ALTER TABLE: "for historical
/// reasons"; ALTER VIEW, ALTER SEQUENCE), so it is judged as `ALTER VIEW` / `ALTER
/// MATERIALIZED VIEW` / `ALTER SEQUENCE` would be: a rename (of the object or of a view's
/// column) breaks the running version, which names them (`breaking-rename-object`; the
/// RENAME COLUMN rewrite cannot add a column to a view); SET SCHEMA is not classified; the
/// rest (owner, options, a view column's default) is expand.
pub(super) fn alter_other_relation(at: &ast::AlterTable, w: &[SmolStr], schema: &Schema) -> Class {
    let kind = other_relation(at, schema).unwrap_or("view");
    let renames = at.actions().any(|a| {
        matches!(
            a,
            ast::AlterTableAction::RenameColumn(_) | ast::AlterTableAction::TableRenameTo(_)
        )
    });
    if renames {
        let column = at
            .actions()
            .any(|a| matches!(a, ast::AlterTableAction::RenameColumn(_)));
        return renamed(&if column {
            format!("{kind} column")
        } else {
            kind.to_string()
        });
    }
    if has_seq(w, &["set", "schema"]) {
        return unclassified(at.syntax());
    }
    Class::new(StmtPhase::Expand, Inverse::Unknown(no_inverse_reason()))
}

/// ALTER TABLE: each action judged by what the running version still does to the table.
pub(super) fn classify_alter_table(at: &ast::AlterTable, schema: &mut Schema) -> Class {
    use StmtPhase::*;
    let table =
        text_of(at.table_relation_name().and_then(|r| r.table_name_ref())).unwrap_or_default();
    let is_new = schema.is_new(&table);
    let mut acc = Acc {
        c: Class::new(Neutral, Inverse::Noop),
        inverses: Vec::new(),
        unknown_inverse: None,
    };
    let target = Target {
        table: &table,
        is_new,
        at,
    };
    acc.c.table = Some(normalize(&table));
    acc.c.owner_of = Some(table.clone()).filter(|t| !t.is_empty());
    for action in at.actions() {
        let aw = words(action.syntax());
        let (t, acc) = (&target, &mut acc);
        match action {
            ast::AlterTableAction::AddColumn(ac) => add_column(&ac, &aw, t, schema, acc),
            ast::AlterTableAction::AddConstraint(ac) => add_constraint(&ac, &aw, t, schema, acc),
            ast::AlterTableAction::ValidateConstraint(vc) => {
                validate_constraint(&vc, t, schema, acc)
            }
            ast::AlterTableAction::AlterColumn(ac) => alter_column(&ac, &aw, t, schema, acc),
            ast::AlterTableAction::DropColumn(dc) => drop_column(&dc, t, schema, acc),
            ast::AlterTableAction::DropConstraint(dc) => drop_constraint(&dc, t, schema, acc),
            ast::AlterTableAction::RenameColumn(rc) => rename_column(&rc, t, schema, acc),
            ast::AlterTableAction::TableRenameTo(rt) => rename_table(&rt, t, schema, acc),
            ast::AlterTableAction::SetSchema(ss) => set_schema(&ss, t, schema, acc),
            other => {
                table_action(other, &aw, t, schema, &mut acc.c);
                acc.unknown_inverse = Some(no_inverse_reason());
            }
        }
    }
    if let Some(r) = acc.c.rename.as_mut() {
        companions(at, r);
    }
    acc.into_class()
}

/// What else the ALTER TABLE `at` holding the type change `r` does: the new column's default
/// (DROP DEFAULT / SET DEFAULT of the same column, the enum idiom) goes into the conversion;
/// anything else means the rewrite, which replaces the statement, would lose it.
fn companions(at: &ast::AlterTable, r: &mut ColumnRename) {
    let Some(conv) = r.conversion.as_mut() else {
        return;
    };
    let col = normalize(&r.from);
    let mut others = false;
    let mut types = 0;
    for action in at.actions() {
        let ast::AlterTableAction::AlterColumn(ac) = action else {
            others = true;
            continue;
        };
        if normalize(&text_of(ac.column_name_ref()).unwrap_or_default()) != col {
            others = true;
            continue;
        }
        match ac.option() {
            Some(ast::AlterColumnOption::SetType(_)) => types += 1,
            Some(ast::AlterColumnOption::DropDefault(_)) => conv.new_default = Some(None),
            Some(ast::AlterColumnOption::SetDefault(sd)) => {
                conv.new_default = Some(sd.expr().map(|e| e.syntax().text().to_string()));
            }
            _ => others = true,
        }
    }
    if others || types > 1 {
        r.attachments.push(Attachment::SharedStatement);
    }
}

/// The actions that change no column or constraint of the table (its storage, row security,
/// owner, replica identity, triggers, partitions, a constraint's name, and any other), judged
/// into `c`. None has an inverse cutover writes.
fn table_action(
    action: ast::AlterTableAction,
    aw: &[SmolStr],
    t: &Target,
    schema: &mut Schema,
    c: &mut Class,
) {
    use StmtPhase::*;
    let Target { table, is_new, at } = *t;
    match action {
        ast::AlterTableAction::SetTablespace(_)
        | ast::AlterTableAction::SetLogged(_)
        | ast::AlterTableAction::SetUnlogged(_)
        | ast::AlterTableAction::SetAccessMethod(_) => {
            c.raise(Expand);
            if !is_new {
                c.finding(
                    RuleId::TableRewrite,
                    format!("this rewrites all of `{table}` under an ACCESS EXCLUSIVE lock"),
                    "schedule it in a maintenance window (a `recreate` release) or use pg_repack",
                );
            }
        }
        // Row-level security hides rows from, and rejects writes of, every role
        // without a policy that admits them (PostgreSQL manual, 5.9 Row Security
        // Policies): the old version's role may be one.
        ast::AlterTableAction::EnableRls(_) | ast::AlterTableAction::ForceRls(_) if !is_new => {
            rejects_old_writes(
                c,
                format!(
                    "row-level security on `{table}` hides rows from and rejects writes of \
                     every role its policies do not admit, the running version's included \
                     unless a policy admits it; cutover places it after that version is retired"
                ),
            )
        }
        // The new owner takes the table's privileges from the old one, the running
        // version's role maybe (PostgreSQL manual, ALTER TABLE, OWNER TO; 5.8 Privileges):
        // like REVOKE, after that version is retired.
        ast::AlterTableAction::OwnerTo(_) if !is_new && schema.table(table).is_some() => {
            c.raise(Contract);
        }
        // Without a replica identity, UPDATE and DELETE of a table a publication publishes
        // fail (PostgreSQL manual, 31.1 Publication; ALTER TABLE, REPLICA IDENTITY): FULL or
        // an index only adds one, NOTHING or DEFAULT (no primary key) can take it away.
        ast::AlterTableAction::ReplicaIdentity(_)
            if !is_new && !aw.iter().any(|x| x == "full" || x == "index") =>
        {
            let u = unclassified(at.syntax());
            c.raise(Contract);
            c.needs_declaration = true;
            c.findings.extend(u.findings);
        }
        // Disabling a trigger takes away what it did for the running version's writes,
        // like DROP TRIGGER (ALL also stops the foreign keys' system triggers); enabling
        // one runs it on them, like CREATE TRIGGER (PostgreSQL manual, ALTER TABLE,
        // DISABLE/ENABLE TRIGGER).
        ast::AlterTableAction::DisableTrigger(_) if !is_new => c.raise(Contract),
        ast::AlterTableAction::EnableTrigger(_)
        | ast::AlterTableAction::EnableAlwaysTrigger(_)
        | ast::AlterTableAction::EnableReplicaTrigger(_)
            if !is_new =>
        {
            rejects_old_writes(
                c,
                format!(
                    "the trigger enabled on `{table}` runs a function cutover cannot read on the \
                     running version's writes, which it can change or reject; cutover places it \
                     after that version is retired"
                ),
            )
        }
        ast::AlterTableAction::RenameConstraint(rc) => rename_constraint(&rc, t, schema, c),
        other => other_action(other, aw, t, schema, c),
    }
}

/// The actions [`table_action`] leaves: DETACH PARTITION (contract), [NO] INHERIT
/// ([`inheritance`]), ALTER CONSTRAINT ([`alter_constraint`]); the rest is expand.
fn other_action(
    action: ast::AlterTableAction,
    aw: &[SmolStr],
    t: &Target,
    schema: &mut Schema,
    c: &mut Class,
) {
    match action {
        ast::AlterTableAction::DetachPartition(_) => c.raise(StmtPhase::Contract),
        ast::AlterTableAction::InheritTable(_) | ast::AlterTableAction::NoInheritTable(_) => {
            inheritance(t.at.syntax(), aw, t, schema, c)
        }
        ast::AlterTableAction::AlterConstraint(ac) => alter_constraint(ac.syntax(), t, schema, c),
        _ => c.raise(StmtPhase::Expand),
    }
}

/// `ALTER CONSTRAINT fk [NOT] DEFERRABLE [INITIALLY ...]` of a foreign key the model knows: one
/// made NOT DEFERRABLE, or INITIALLY IMMEDIATE where it was deferred, checks the running
/// version's writes at each statement instead of at commit, and can reject what it did in
/// between (PostgreSQL manual, SET CONSTRAINTS): contract. Otherwise expand.
fn alter_constraint(node: &SyntaxNode, t: &Target, schema: &mut Schema, c: &mut Class) {
    let w = words(node);
    let name = name_after(node, "constraint", &[]).unwrap_or_default();
    let Some(fk) = schema.foreign_key(t.table, &name).cloned() else {
        c.raise(StmtPhase::Expand);
        return;
    };
    let mut actions = fk.actions.clone();
    if has_seq(&w, &["not", "deferrable"]) {
        actions.deferrable = false;
        actions.initially_deferred = false;
    } else if w.iter().any(|x| x == "deferrable") {
        actions.deferrable = true;
    }
    if has_seq(&w, &["initially", "immediate"]) {
        actions.initially_deferred = false;
    } else if has_seq(&w, &["initially", "deferred"]) {
        actions.initially_deferred = true;
    }
    let stricter = (fk.actions.deferrable && !actions.deferrable)
        || (fk.actions.initially_deferred && !actions.initially_deferred);
    schema.set_foreign_key_actions(t.table, &name, actions);
    if stricter && !t.is_new {
        rejects_old_writes(
            c,
            format!(
                "`{name}` on `{}` is checked at each statement now, not at commit: the running \
                 version's transactions that write the rows in another order fail; cutover \
                 places it after that version is retired",
                t.table
            ),
        );
    } else {
        c.raise(StmtPhase::Expand);
    }
}

/// `ALTER TABLE child [NO] INHERIT parent`: a query of the parent without ONLY also reads,
/// updates and deletes the rows of its children (PostgreSQL manual, 5.10 Inheritance). On a
/// parent the running version uses, its reads, updates and deletes start (INHERIT) or stop (NO
/// INHERIT) reaching the child's rows, those the new version writes into it included: contract,
/// with `inherit-changes-old-reads`. On a parent this release created: expand.
fn inheritance(node: &SyntaxNode, aw: &[SmolStr], t: &Target, schema: &Schema, c: &mut Class) {
    let no = has_seq(aw, &["no", "inherit"]);
    let parent = name_after(node, "inherit", &[]).unwrap_or_default();
    if parent.is_empty() || schema.is_new(&parent) {
        c.raise(StmtPhase::Expand);
        return;
    }
    let (verb, what) = if no {
        ("no longer reach", "its rows vanish from them")
    } else {
        (
            "now also reach",
            "rows the old version never wrote show up in them",
        )
    };
    c.raise(StmtPhase::Contract);
    c.declarable = true;
    c.finding(
        RuleId::InheritChangesOldReads,
        format!(
            "the running version's reads, updates and deletes of `{parent}` (without ONLY) {verb} \
             the rows of `{}`: {what}; cutover places it after that version is retired",
            t.table
        ),
        "run it after the old version is retired (contract), or have the new version read the \
         child table by its own name",
    );
}

/// Contract, declarable, with the finding `message` that the action can reject (or change) the
/// running version's writes: cutover places it after that version is retired.
fn rejects_old_writes(c: &mut Class, message: String) {
    c.raise(StmtPhase::Contract);
    c.declarable = true;
    c.finding(
        RuleId::ConstraintRejectsOldWrites,
        message,
        RECIPE_CONSTRAINT_OLD_WRITES,
    );
}

/// RENAME CONSTRAINT: breaks the running version, which may name the constraint (`ON CONFLICT
/// ON CONSTRAINT name`, or an error it matches by constraint name; PostgreSQL manual, INSERT,
/// ON CONFLICT), unless the table or the constraint is new to this release.
fn rename_constraint(rc: &ast::RenameConstraint, t: &Target, schema: &mut Schema, c: &mut Class) {
    use StmtPhase::*;
    let Target { table, is_new, .. } = *t;
    let from = text_of(rc.constraint_name_ref()).unwrap_or_default();
    let key = format!("{}@{}", normalize(&from), normalize(table));
    if is_new || schema.is_new_object("constraint", &key) {
        c.raise(Expand);
    } else {
        c.raise(Breaking);
        c.finding(
            RuleId::BreakingRenameObject,
            format!(
                "renaming constraint `{from}` of `{table}` breaks the running version \
                 where it names it (`ON CONFLICT ON CONSTRAINT {from}`, an error it \
                 matches by constraint name)"
            ),
            RECIPE_RENAME_CONSTRAINT,
        );
    }
    learn::rename_constraint(schema, table, rc);
}

/// VALIDATE CONSTRAINT: expand, or contract for a constraint placed after the old version.
fn validate_constraint(
    vc: &ast::ValidateConstraint,
    t: &Target,
    schema: &mut Schema,
    acc: &mut Acc,
) {
    use StmtPhase::*;
    let table = t.table;
    let c = &mut acc.c;
    c.raise(Expand);
    if let Some(n) = text_of(vc.constraint_name_ref()) {
        // Validating a constraint placed after the old version belongs there.
        if schema.is_deferred_constraint(table, &n) {
            c.raise(Contract);
        }
        schema.validate_constraint(table, &n);
    }
}

/// DROP COLUMN: data loss, unless the column is new to this release.
fn drop_column(dc: &ast::DropColumn, t: &Target, schema: &mut Schema, acc: &mut Acc) {
    use StmtPhase::*;
    let Target { table, is_new, .. } = *t;
    let Acc {
        c, unknown_inverse, ..
    } = acc;
    let col = text_of(dc.column_name_ref()).unwrap_or_default();
    if is_new || schema.new_column(table, &col).is_some() {
        // Created by this release: no running version uses it.
        c.raise(Expand);
    } else {
        c.raise(Contract);
        c.finding(
            RuleId::DataLoss,
            format!("dropping `{table}.{col}` deletes its data"),
            "run it only after the old version is retired; the pre-release backup is the only way \
             back",
        );
    }
    *unknown_inverse = Some("dropped data can only come back from the backup".into());
    schema.drop_column(table, &col);
}

/// RENAME TO: breaks the running version, unless the table is new to this release.
fn rename_table(rt: &ast::TableRenameTo, t: &Target, schema: &mut Schema, acc: &mut Acc) {
    use StmtPhase::*;
    let Target { table, is_new, .. } = *t;
    let Acc { c, inverses, .. } = acc;
    let to = text_of(rt.table_name()).unwrap_or_default();
    if is_new {
        c.raise(Expand);
        inverses.push(format!("ALTER TABLE {to} RENAME TO {table};"));
    } else {
        c.raise(Breaking);
        c.finding(
            RuleId::BreakingRenameTable,
            format!(
                "renaming table `{table}` to `{to}` breaks the version that still uses `{table}`"
            ),
            format!(
                "`cutover plan` rewrites it: the rename and a view named `{table}` over `{to}` \
                 for the old version (expand), the view dropped once the old version is retired \
                 (contract); or, by hand: {RECIPE_RENAME_TABLE}"
            ),
        );
        c.table_rename = Some(TableRename {
            from: table.to_string(),
            to: to.clone(),
        });
    }
    schema.rename_table(table, &to);
}

/// SET SCHEMA: breaks the running version, unless the table is new to this release.
fn set_schema(ss: &ast::SetSchema, t: &Target, schema: &mut Schema, acc: &mut Acc) {
    use StmtPhase::*;
    let Target { table, is_new, .. } = *t;
    let Acc {
        c, unknown_inverse, ..
    } = acc;
    learn::set_schema(schema, table, ss);
    c.raise(if is_new { Expand } else { Breaking });
    if !is_new {
        c.finding(
            RuleId::BreakingSetSchema,
            format!("moving `{table}` to another schema breaks the version that uses it"),
            RECIPE_RENAME_TABLE,
        );
    }
    *unknown_inverse = Some(no_inverse_reason());
}

/// ADD COLUMN: what it does to the running version, its inverse, and what the schema model learns.
fn add_column(ac: &ast::AddColumn, aw: &[SmolStr], t: &Target, schema: &mut Schema, acc: &mut Acc) {
    use StmtPhase::*;
    let Target { table, is_new, .. } = *t;
    let Acc { c, inverses, .. } = acc;
    let col = text_of(ac.column_name()).unwrap_or_default();
    let mut new = NewColumn::read(ac, aw);
    // A column of a domain type takes the domain's NOT NULL and default (PostgreSQL manual,
    // CREATE DOMAIN): the old version's inserts leave it to them.
    if let Some(d) = ac
        .ty()
        .and_then(|t| schema.domain(&super::tokens::one_line(t.syntax())))
    {
        new.not_null |= d.rejects_null;
        if new.default.is_none() {
            new.default = d.default.clone();
        }
    }
    // A column added IF NOT EXISTS that is already there is not new.
    let exists = has_seq(aw, &["if", "not", "exists"])
        && schema
            .table(table)
            .is_some_and(|t| t.column(&normalize(&col)).is_some());
    if exists {
        c.raise(Expand);
        return;
    }
    if is_new {
        c.raise(Expand);
    } else {
        new.judge(c, table, &col);
        if new.not_null && new.default.is_none() {
            let add = without_not_null(&ac.syntax().text().to_string())
                .map(|a| format!("ALTER TABLE {table} {a};"));
            c.fill = add.map(|a| fill_of(schema, table, &col, Some(a)));
        }
        serial_rewrite(ac, c, table, &col);
    }
    inverses.push(format!("ALTER TABLE {table} DROP COLUMN IF EXISTS {col};"));
    schema.add_new_column(table, &col, new.default.as_deref());
    learn::add_column(schema, table, ac);
    column_type::record_collation(schema, table, &col, ac.collate());
}

/// What an added column's constraints and default mean for the running version's inserts,
/// which leave the column out.
struct NewColumn {
    /// NOT NULL or PRIMARY KEY.
    not_null: bool,
    /// The default as written, `(generated)` for a generated column; `None` for none or `DEFAULT
    /// NULL`.
    default: Option<String>,
    /// A CHECK that rejects NULL, or a unique key with NULLS NOT DISTINCT.
    rejects_null: bool,
    /// With a default: a CHECK (other than `col IS NOT NULL`) or a foreign key may reject it.
    checks_default: bool,
    /// A constant default under a unique key or primary key: the second insert collides.
    unique_default: bool,
}

impl NewColumn {
    /// Reads the constraints of ADD COLUMN `ac`, whose words are `aw`.
    fn read(ac: &ast::AddColumn, aw: &[SmolStr]) -> Self {
        let cons: Vec<ast::Constraint> = ac.constraints().collect();
        let not_null = cons.iter().any(|k| {
            matches!(
                k,
                ast::Constraint::NotNullConstraint(_) | ast::Constraint::PrimaryKeyConstraint(_)
            )
        });
        // `DEFAULT NULL` is no default: the old version's inserts still write NULL.
        let default = cons.iter().find_map(|k| match k {
            ast::Constraint::DefaultConstraint(d) => {
                let dw = words(d.syntax());
                (dw.get(1..) != Some(&[SmolStr::new_static("null")][..])).then(|| dw[1..].join(" "))
            }
            ast::Constraint::GeneratedConstraint(_) => Some("(generated)".into()),
            _ => None,
        });
        let has_default = default.is_some();
        let null_check = cons.iter().any(|k| {
            matches!(k, ast::Constraint::CheckConstraint(ck) if null_rejecting(&words(ck.syntax())))
        });
        let unique_not_distinct = has_seq(aw, &["nulls", "not", "distinct"]);
        // The old version's inserts all write the default: a constant one
        // collides under a unique key, and a CHECK or a foreign key may reject it.
        let constant = default.as_deref().is_some_and(constant_default);
        // (`CHECK (col IS NOT NULL)` holds for any non-NULL default.)
        let checks_default = has_default
            && cons.iter().any(|k| match k {
                ast::Constraint::CheckConstraint(ck) => {
                    not_null_check_column(ck.syntax()).is_none()
                }
                ast::Constraint::ReferencesConstraint(_) => true,
                _ => false,
            });
        let unique_default = constant
            && cons.iter().any(|k| {
                matches!(
                    k,
                    ast::Constraint::UniqueConstraint(_) | ast::Constraint::PrimaryKeyConstraint(_)
                )
            });
        NewColumn {
            not_null,
            default,
            rejects_null: null_check || unique_not_distinct,
            checks_default,
            unique_default,
        }
    }

    /// Judges the column `table.col`, added to a table the running version uses, into `c`:
    /// breaking when that version's inserts fail (NOT NULL or a NULL-rejecting constraint
    /// without a default, a constant default under a unique key), contract when a constraint
    /// may reject its default, expand otherwise.
    fn judge(&self, c: &mut Class, table: &str, col: &str) {
        use StmtPhase::*;
        let has_default = self.default.is_some();
        if self.not_null && !has_default {
            c.raise(Breaking);
            c.finding(
                RuleId::BreakingAddRequiredColumn,
                format!(
                    "`{table}.{col}` is added NOT NULL without a default: the old version's \
                     inserts will fail"
                ),
                RECIPE_REQUIRED_COLUMN,
            );
        } else if self.rejects_null && !has_default {
            c.raise(Breaking);
            c.finding(
                RuleId::BreakingAddConstraint,
                format!(
                    "the constraint on the new column `{table}.{col}` rejects NULL (or a second \
                     NULL), and every insert of the running version leaves it NULL: they fail"
                ),
                RECIPE_CONSTRAINT_NEW_COLUMN,
            );
        } else if self.unique_default {
            c.raise(Breaking);
            c.finding(
                RuleId::BreakingAddConstraint,
                format!(
                    "every insert of the running version writes the default `{}` into the new \
                     unique column `{table}.{col}`: the second one collides",
                    self.default.as_deref().unwrap_or_default()
                ),
                RECIPE_CONSTRAINT_NEW_COLUMN,
            );
        } else if self.checks_default {
            c.raise(Contract);
            c.declarable = true;
            c.finding(
                RuleId::ConstraintRejectsOldWrites,
                format!(
                    "every insert of the running version writes the default of the new column \
                     `{table}.{col}`, which its constraint may reject; cutover places it after \
                     that version is retired"
                ),
                RECIPE_CONSTRAINT_OLD_WRITES,
            );
        } else {
            c.raise(Expand);
        }
    }
}

/// The finding on a serial column `table.col` added to a table the running version uses, if
/// `ac` adds one: a serial column's default is nextval(), which is volatile, so PostgreSQL fills
/// every row, rewriting the table under an ACCESS EXCLUSIVE lock (PostgreSQL manual, ALTER
/// TABLE, Notes; 8.1.4 Serial Types). squawk's rule looks at DEFAULT clauses only, and a serial
/// type has none written.
fn serial_rewrite(ac: &ast::AddColumn, c: &mut Class, table: &str, col: &str) {
    let serial = ac.ty().map(|ty| words(ty.syntax())).is_some_and(|tw| {
        matches!(
            tw.first().map(SmolStr::as_str),
            Some("serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8")
        )
    });
    if serial {
        c.finding(
            RuleId::AddingFieldWithDefault,
            format!(
                "`{table}.{col}` is a serial column: its default nextval() is volatile, so \
                 PostgreSQL writes a value into every row, rewriting `{table}` under an ACCESS \
                 EXCLUSIVE lock"
            ),
            "add the column as a plain integer, attach a sequence with ALTER COLUMN ... SET \
             DEFAULT nextval(...) (no rewrite), and backfill the existing rows in batches",
        );
    }
}

/// ADD CONSTRAINT: what it does to the running version, its inverse, and what the schema model
/// learns.
fn add_constraint(
    ac: &ast::AddConstraint,
    aw: &[SmolStr],
    t: &Target,
    schema: &mut Schema,
    acc: &mut Acc,
) {
    let table = t.table;
    let Acc {
        c,
        inverses,
        unknown_inverse,
    } = acc;
    let name = name_after(ac.syntax(), "constraint", &[]);
    match &name {
        Some(n) => inverses.push(format!(
            "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {n};"
        )),
        None => *unknown_inverse = Some(
            "the constraint has no name; name it (ADD CONSTRAINT name ...) so it can be dropped"
                .into(),
        ),
    }
    let rejects = new_constraint_rejects(ac, aw, name.as_deref(), t, schema);
    let deferred = matches!(rejects, Rejects::May);
    raise_for_rejects(c, rejects, table);
    if let Some(n) = &name {
        let key = format!("{}@{}", normalize(n), normalize(table));
        if deferred {
            schema.defer_constraint(table, n);
        }
        schema.create_object("constraint", &key);
        c.creates.push(("constraint", key));
    }
    if let Some(col) = not_null_check_column(ac.syntax()) {
        let validated = !has_seq(aw, &["not", "valid"]);
        schema.add_not_null_check(table, name.as_deref(), &col, validated);
        if deferred {
            schema.defer_constraint(table, &not_null_key(&col));
        }
    }
    learn::add_constraint(schema, table, ac);
    if let Some(n) = &name
        && let (Some(old), Some(new)) = (
            schema.foreign_key_dropped_in_file(table, n),
            schema.foreign_key(table, n),
        )
    {
        judge_replaced_foreign_key(c, old, new, table);
    }
}

/// A foreign key dropped and added again under its name in one file: the old version's
/// writes meet the new definition from the commit on. Other columns or another referenced key,
/// `ON DELETE`/`ON UPDATE` no longer acting (CASCADE, SET NULL, SET DEFAULT to NO ACTION or
/// RESTRICT), NO ACTION to RESTRICT, `MATCH FULL` or no longer `DEFERRABLE`: it can reject what
/// the old version's deletes, updates and inserts did (contract). `ON DELETE`/`ON UPDATE`
/// newly acting: the old version's deletes or key updates of the referenced table now delete
/// or change rows of this one (contract, data loss). PostgreSQL manual, CREATE TABLE,
/// REFERENCES.
fn judge_replaced_foreign_key(
    c: &mut Class,
    old: &crate::schema::ForeignKey,
    new: &crate::schema::ForeignKey,
    table: &str,
) {
    use StmtPhase::*;
    let acts = |a: &str| matches!(a, "cascade") || a.starts_with("set ");
    let strength = |a: &str| match a {
        "restrict" => 2,
        _ if acts(a) => 0,
        _ => 1,
    };
    let (o, n) = (&old.actions, &new.actions);
    let stricter = old.columns != new.columns
        || old.references != new.references
        || old.referenced_columns != new.referenced_columns
        || strength(&n.on_delete) > strength(&o.on_delete)
        || strength(&n.on_update) > strength(&o.on_update)
        || (n.match_full && !o.match_full)
        || (o.deferrable && !n.deferrable)
        || (o.initially_deferred && !n.initially_deferred);
    let parent = &new.references;
    if stricter {
        c.raise(Contract);
        c.declarable = true;
        c.finding(
            RuleId::ConstraintRejectsOldWrites,
            format!(
                "`{}` is added again with another definition than the one this file dropped: \
                 it can reject writes of the version still running (its deletes or key updates \
                 of `{parent}`, or its writes of `{table}`), which the old definition let \
                 through; cutover places it after that version is retired",
                new.name
            ),
            RECIPE_CONSTRAINT_OLD_WRITES,
        );
    }
    let newly = |a: &str, b: &str| acts(b) && a != b;
    for (event, was, now) in [
        ("DELETE", &o.on_delete, &n.on_delete),
        ("UPDATE", &o.on_update, &n.on_update),
    ] {
        if newly(was, now) {
            c.raise(Contract);
            c.declarable = true;
            c.finding(
                RuleId::DataLoss,
                format!(
                    "`{}` now says ON {event} {}: the running version's {event}s of `{parent}` \
                     rows now also change or delete rows of `{table}` (before: {was})",
                    new.name,
                    now.to_uppercase()
                ),
                "change the referential action after the old version is retired (contract), \
                 or declare `-- cutover:phase=expand` if its deletes may cascade",
            );
        }
    }
}

/// What the constraint ADD CONSTRAINT `ac` (named `name`, with words `aw`) adds to `t` rejects
/// of the running version's writes: what a primary key made from a unique index makes NOT NULL;
/// else nothing on a new table, for a constraint added again after this file dropped it (but a
/// CHECK) or for one made from an existing index; else what [`constraint_rejects`] finds.
fn new_constraint_rejects(
    ac: &ast::AddConstraint,
    aw: &[SmolStr],
    name: Option<&str>,
    t: &Target,
    schema: &Schema,
) -> Rejects {
    let Target { table, is_new, .. } = *t;
    // Added again after this file dropped it (Prisma's DropForeignKey and
    // AddForeignKey to change ON DELETE): a key on the same columns rejects
    // what the old one did. A CHECK's expression may differ: judged anew.
    let replaced = name.is_some_and(|n| {
        schema.was_dropped_in_file(
            "constraint",
            &format!("{}@{}", normalize(n), normalize(table)),
        )
    }) && !aw.iter().any(|x| x == "check");
    // A primary key made from a unique index also makes its columns NOT NULL.
    let pk_nullable = pk_nullable_columns(ac, aw, t, schema);
    if !pk_nullable.is_empty() {
        Rejects::Will(format!(
            "the primary key makes `{}` NOT NULL, which the old version may leave NULL",
            pk_nullable.join("`, `")
        ))
    } else if is_new || replaced || has_seq(aw, &["using", "index"]) {
        Rejects::No
    } else {
        constraint_rejects(schema, table, ac.syntax(), aw)
    }
}

/// Raises `c` for what a new constraint on `table` [`Rejects`]: expand when nothing, breaking
/// when it rejects the running version's inserts, contract (declarable) when it may reject its
/// writes.
fn raise_for_rejects(c: &mut Class, rejects: Rejects, table: &str) {
    use StmtPhase::*;
    match rejects {
        Rejects::No => c.raise(Expand),
        Rejects::Will(why) => {
            c.raise(Breaking);
            c.finding(
                RuleId::BreakingAddConstraint,
                format!(
                    "the new constraint rejects the inserts of the running version: {why} (`NOT \
                     VALID` only skips the rows already there)"
                ),
                RECIPE_CONSTRAINT_NEW_COLUMN,
            );
        }
        Rejects::May => {
            c.raise(Contract);
            c.declarable = true;
            c.finding(
                RuleId::ConstraintRejectsOldWrites,
                format!(
                    "the new constraint on `{table}` can reject writes of the version still \
                     running (`NOT VALID` only skips the rows already there); cutover places it \
                     after that version is retired"
                ),
                RECIPE_CONSTRAINT_OLD_WRITES,
            );
        }
    }
}

/// The columns a primary key made from a unique index (`ADD PRIMARY KEY USING INDEX`) makes
/// NOT NULL that the old version may leave NULL (PostgreSQL manual, ALTER TABLE, ADD
/// table_constraint_using_index).
fn pk_nullable_columns(
    ac: &ast::AddConstraint,
    aw: &[SmolStr],
    t: &Target,
    schema: &Schema,
) -> Vec<String> {
    let Target { table, is_new, .. } = *t;
    if has_seq(aw, &["primary", "key"]) && has_seq(aw, &["using", "index"]) && !is_new {
        let index = name_after(ac.syntax(), "index", &[]).unwrap_or_default();
        let t = schema.table(table);
        schema
            .index_columns(&crate::schema::beside(table, &index))
            .unwrap_or_default()
            .iter()
            .flatten()
            .filter(|c| !t.and_then(|t| t.column(c)).is_some_and(|c| c.not_null))
            .cloned()
            .collect()
    } else {
        Vec::new()
    }
}

/// ALTER COLUMN (type, NOT NULL, default, identity, ...): what it does to the running version, its
/// inverse, and what the schema model learns; one helper per form.
fn alter_column(
    ac: &ast::AlterColumn,
    aw: &[SmolStr],
    t: &Target,
    schema: &mut Schema,
    acc: &mut Acc,
) {
    use StmtPhase::*;
    let Target { table, is_new, .. } = *t;
    let col = text_of(ac.column_name_ref()).unwrap_or_default();
    let was_not_null = schema
        .table(table)
        .and_then(|t| t.column(&normalize(&col)))
        .is_some_and(|c| c.not_null);
    learn::alter_column(schema, table, ac);
    let Acc {
        c, unknown_inverse, ..
    } = acc;
    match ac.option() {
        Some(ast::AlterColumnOption::SetType(st)) => set_type(&st, t, &col, schema, acc),
        Some(ast::AlterColumnOption::SetNotNull(_)) => {
            set_not_null(t, &col, was_not_null, schema, acc)
        }
        Some(ast::AlterColumnOption::DropNotNull(_)) => drop_not_null(t, &col, schema, acc),
        Some(ast::AlterColumnOption::DropDefault(_)) => {
            schema.set_new_column_default(table, &col, None);
            c.raise(if is_new { Expand } else { Contract });
            *unknown_inverse =
                Some("the previous default is not known; add a down migration".into());
        }
        // The old version's inserts that leave the column out rely on its
        // identity; those that give it a value rely on BY DEFAULT.
        Some(ast::AlterColumnOption::DropIdentity(_)) if !is_new && was_not_null => {
            drop_identity(c, table, &col);
            *unknown_inverse = Some(no_inverse_reason());
        }
        Some(
            ast::AlterColumnOption::SetGenerated(_)
            | ast::AlterColumnOption::SetGeneratedOptions(_)
            | ast::AlterColumnOption::AddGenerated(_),
        ) if !is_new && has_seq(aw, &["generated", "always"]) => {
            generated_always(c, table, &col);
            *unknown_inverse = Some(no_inverse_reason());
        }
        // SET DEFAULT NULL drops the default: as DROP DEFAULT.
        Some(ast::AlterColumnOption::SetDefault(_)) if super::classify::sets_default_null(aw) => {
            schema.set_new_column_default(table, &col, None);
            c.raise(if is_new { Expand } else { Contract });
            *unknown_inverse =
                Some("the previous default is not known; add a down migration".into());
        }
        Some(ast::AlterColumnOption::SetDefault(sd)) => set_default(&sd, t, &col, schema, acc),
        // RESTART, SET MAXVALUE, SET CYCLE ... of an identity column's sequence.
        _ if !is_new && super::sequence::moves(aw) => {
            super::sequence::moved(
                c,
                format!("`ALTER COLUMN {col}` moves the identity of `{table}.{col}`"),
            );
            *unknown_inverse = Some(no_inverse_reason());
        }
        _ => {
            c.raise(Expand);
            *unknown_inverse = Some(no_inverse_reason());
        }
    }
}

/// SET TYPE: breaking when a view reads the column (PostgreSQL refuses the change), else what
/// [`column_type::classify_set_type`] makes of it (expand on a new table); no inverse, and the
/// schema model learns the new type.
fn set_type(st: &ast::SetType, t: &Target, col: &str, schema: &mut Schema, acc: &mut Acc) {
    use StmtPhase::*;
    let Target { table, is_new, .. } = *t;
    let c = &mut acc.c;
    let views = schema.views_reading(table, col);
    if !views.is_empty() {
        c.raise(Breaking);
        let views = views
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", ");
        c.finding(
            RuleId::ColumnTypeUsedByView,
            format!(
                "`{table}.{col}` is read by {views}: PostgreSQL refuses to change its type \
                 (\"cannot alter type of a column used by a view or rule\"), even a widening \
                 that needs no rewrite"
            ),
            "drop the view, change the type and create the view again in one migration \
             (the old version must not read the view meanwhile), or add a column of the new \
             type beside the old one and move readers to it",
        );
    }
    let in_place_before = c
        .findings
        .iter()
        .filter(|f| f.0 == RuleId::AlterColumnTypeNoRewrite)
        .count();
    if is_new {
        c.raise(Expand);
    } else {
        column_type::classify_set_type(c, schema, table, col, st);
    }
    // A change PostgreSQL makes in place (varchar(20) to varchar(64)) is undone by the change
    // back, when the migrations declare the old type: the step stays reversible, and a held
    // release can stop before the contract rather than inside the expand phase.
    let in_place = c
        .findings
        .iter()
        .filter(|f| f.0 == RuleId::AlterColumnTypeNoRewrite)
        .count()
        > in_place_before;
    let old = schema
        .table(table)
        .and_then(|t| t.column(&normalize(col)))
        .map(|c| c.ty.clone())
        .filter(|ty| !ty.is_empty());
    // A collation spelled with a dot (a schema, or part of the name) cannot be written back
    // as the model holds it.
    let collation = schema.collation(table, col).map(str::to_string);
    let plain = collation.as_ref().is_none_or(|c| !c.contains('.'));
    match old.filter(|_| in_place && plain) {
        Some(old) => {
            let collate = collation.map_or(String::new(), |c| {
                format!(" COLLATE \"{}\"", c.replace('"', "\"\""))
            });
            acc.inverses.push(format!(
                "ALTER TABLE {table} ALTER COLUMN {col} TYPE {old}{collate};"
            ));
        }
        None => {
            acc.unknown_inverse = Some(
                "the previous type is not restored automatically; add a down migration".into(),
            );
        }
    }
    column_type::apply_set_type(schema, table, col, st);
}

/// DROP NOT NULL: expand, with a finding when the running version, which may not expect NULLs,
/// reads the column; undone by SET NOT NULL.
fn drop_not_null(t: &Target, col: &str, schema: &mut Schema, acc: &mut Acc) {
    use StmtPhase::*;
    let Target { table, is_new, .. } = *t;
    let Acc { c, inverses, .. } = acc;
    c.raise(Expand);
    if !is_new && schema.new_column(table, col).is_none() {
        c.finding(
            RuleId::BanDropNotNull,
            format!(
                "dropping NOT NULL on `{table}.{col}` lets the new version write NULLs that \
                 the version still running may not expect when it reads them"
            ),
            "make sure the old version reads NULL safely before the new version writes one \
             (or run it in a contract migration, after the old version is retired); the \
             lock is brief",
        );
    }
    inverses.push(format!(
        "ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL;"
    ));
    schema.set_not_null(table, col, false);
}

/// DROP IDENTITY of a NOT NULL column the running version writes: breaking, as its inserts
/// that leave the column to the identity fail.
fn drop_identity(c: &mut Class, table: &str, col: &str) {
    c.raise(StmtPhase::Breaking);
    c.finding(
        RuleId::BreakingAddConstraint,
        format!(
            "DROP IDENTITY leaves `{table}.{col}` NOT NULL without a value: the running \
             version's inserts, which leave it to the identity, fail"
        ),
        "drop the identity in a contract migration, after the old version is retired; or \
         give the column a default first",
    );
}

/// SET GENERATED ALWAYS on a column the running version writes: contract (declarable), as
/// PostgreSQL rejects its inserts that give the column a value.
fn generated_always(c: &mut Class, table: &str, col: &str) {
    c.raise(StmtPhase::Contract);
    c.declarable = true;
    c.finding(
        RuleId::ConstraintRejectsOldWrites,
        format!(
            "GENERATED ALWAYS makes PostgreSQL reject every insert of the running version \
             that gives `{table}.{col}` a value; cutover places it after that version is \
             retired"
        ),
        RECIPE_CONSTRAINT_OLD_WRITES,
    );
}

/// SET DEFAULT: expand, but breaking when the default is a constant and the column alone is a
/// unique key, so the running version's inserts that leave it out collide; no inverse (the
/// previous default is not known), and the schema model learns the default of a new column.
fn set_default(sd: &ast::SetDefault, t: &Target, col: &str, schema: &mut Schema, acc: &mut Acc) {
    use StmtPhase::*;
    let Target { table, is_new, .. } = *t;
    let Acc {
        c, unknown_inverse, ..
    } = acc;
    let dw = words(sd.syntax());
    let expr = dw
        .iter()
        .position(|t| t == "default")
        .map(|p| dw[p + 1..].join(" "))
        .filter(|e| e != "null");
    schema.set_new_column_default(table, col, expr.as_deref());
    c.raise(Expand);
    // Every insert that leaves the column out writes the default: a constant one
    // collides under a unique key on that column from the second insert on (a
    // volatile one, nextval() or gen_random_uuid(), does not).
    let constant = expr.as_deref().is_some_and(|e| {
        constant_default(e) && !e.contains("current_") && !e.contains("localtime")
    });
    if let Some(key) = constant
        .then(|| schema.single_column_key(table, col))
        .flatten()
        .filter(|_| !is_new)
    {
        c.raise(Breaking);
        c.finding(
            RuleId::BreakingAddConstraint,
            format!(
                "every insert that leaves `{table}.{col}` out writes the constant default \
                 `{}`, and `{key}` keeps the column unique: the second such insert of the \
                 running version collides",
                expr.as_deref().unwrap_or_default()
            ),
            "give the column a volatile default (nextval(), gen_random_uuid()), or none",
        );
    }
    *unknown_inverse = Some("the previous default is not known; add a down migration".into());
}

/// SET NOT NULL: breaking (a scan under an ACCESS EXCLUSIVE lock, and the old version's NULL
/// writes fail), unless the table is new, the column already NOT NULL, or a validated CHECK
/// already rejects NULLs.
fn set_not_null(t: &Target, col: &str, was_not_null: bool, schema: &mut Schema, acc: &mut Acc) {
    use StmtPhase::*;
    let Target { table, is_new, .. } = *t;
    let Acc { c, inverses, .. } = acc;
    let checked = schema
        .table(table)
        .is_some_and(|t| t.not_null_checked.contains(&normalize(col)));
    if is_new || was_not_null {
        // Nobody writes the table yet, or the column already is
        // NOT NULL: nothing new is rejected, and nothing is scanned.
        c.raise(Expand);
    } else if checked {
        // A validated CHECK already rejects NULLs: nothing new is
        // rejected, and it runs where that check was placed.
        c.raise(
            if schema.is_deferred_constraint(table, &not_null_key(col)) {
                Contract
            } else {
                Expand
            },
        );
    } else {
        c.raise(Breaking);
        c.finding(
            RuleId::BreakingSetNotNull,
            format!(
                "SET NOT NULL on `{table}.{col}` scans the table under an ACCESS EXCLUSIVE lock and \
                 fails the old version's NULL writes"
            ),
            RECIPE_SET_NOT_NULL,
        );
        c.fill = Some(fill_of(schema, table, col, None));
    }
    inverses.push(format!(
        "ALTER TABLE {table} ALTER COLUMN {col} DROP NOT NULL;"
    ));
    schema.set_not_null(table, col, true);
}

/// DROP CONSTRAINT: what it does to the running version, its inverse, and what the schema model
/// learns.
fn drop_constraint(dc: &ast::DropConstraint, t: &Target, schema: &mut Schema, acc: &mut Acc) {
    use StmtPhase::*;
    let Target { table, is_new, at } = *t;
    let Acc {
        c, unknown_inverse, ..
    } = acc;
    learn::drop_constraint(schema, table, dc);
    let name = name_after(dc.syntax(), "constraint", &["if", "exists"]).unwrap_or_default();
    let key = format!("{}@{}", normalize(&name), normalize(table));
    // Dropped and added again by the same statement: a replace, judged by
    // the constraint it adds.
    let re_added = at.actions().any(|a| {
            matches!(&a, ast::AlterTableAction::AddConstraint(ac)
                if name_after(ac.syntax(), "constraint", &[]).is_some_and(|n| normalize(&n) == normalize(&name)))
        });
    if !name.is_empty() {
        schema.drop_in_file("constraint", &key);
    }
    if is_new || re_added || schema.is_new_object_in_file("constraint", &key) {
        c.raise(Expand);
    } else if name.is_empty() {
        c.raise(Contract);
    } else {
        c.raise_drop("constraint", key);
    }
    *unknown_inverse =
        Some("a dropped constraint is not re-created automatically; add a down migration".into());
}

/// A fill of `table.col` (its expression to come from `-- cutover:up`); `add`: the statement
/// adding the column without NOT NULL.
fn fill_of(schema: &Schema, table: &str, col: &str, add: Option<String>) -> Fill {
    let t = schema.table(table);
    Fill {
        table: table.to_string(),
        column: col.to_string(),
        expr: String::new(),
        add,
        key: t.and_then(|t| t.primary_key.first().cloned()),
        key_types: t.map(|t| t.key_types()).unwrap_or_default(),
        declared: t.is_some(),
    }
}

/// An `ADD COLUMN` action's text (`add`) without its `NOT NULL` (not the `NOT NULL` of an `IS
/// NOT NULL` in a CHECK); `None` when it has none, or more than one.
fn without_not_null(add: &str) -> Option<String> {
    let words: Vec<&str> = add.split_whitespace().collect();
    let at: Vec<usize> = (0..words.len().saturating_sub(1))
        .filter(|&i| {
            words[i].eq_ignore_ascii_case("not")
                && words[i + 1]
                    .trim_end_matches([',', ')', ';'])
                    .eq_ignore_ascii_case("null")
                && (i == 0 || !words[i - 1].eq_ignore_ascii_case("is"))
        })
        .collect();
    let [i] = at.as_slice() else { return None };
    let rest = &words[i + 1][4..];
    let mut out: Vec<&str> = words[..*i].to_vec();
    if !rest.is_empty() {
        out.push(rest);
    }
    out.extend(&words[i + 2..]);
    Some(out.join(" "))
}

/// RENAME COLUMN: what it does to the running version, its inverse, and what the schema model
/// learns.
fn rename_column(rc: &ast::RenameColumn, t: &Target, schema: &mut Schema, acc: &mut Acc) {
    use StmtPhase::*;
    let Target { table, is_new, .. } = *t;
    let Acc { c, inverses, .. } = acc;
    let from = text_of(rc.column_name_ref()).unwrap_or_default();
    let to = text_of(rc.column_name()).unwrap_or_default();
    if is_new {
        c.raise(Expand);
        inverses.push(format!("ALTER TABLE {table} RENAME COLUMN {to} TO {from};"));
    } else {
        c.raise(Breaking);
        c.finding(
            RuleId::BreakingRenameColumn,
            format!(
                "renaming `{table}.{from}` to `{to}` breaks the version that still uses `{from}`"
            ),
            format!(
                "`cutover plan` rewrites it: add `{to}` with a sync trigger (expand), backfill, \
                 shift traffic, then drop `{from}` (contract)"
            ),
        );
        let t = schema.table(table);
        let col = t.and_then(|t| t.column(&normalize(&from)));
        c.rename = Some(ColumnRename {
            table: table.to_string(),
            from: from.clone(),
            to: to.clone(),
            column_type: col.map(|c| c.ty.clone()).filter(|ty| !ty.is_empty()),
            not_null: col.is_some_and(|c| c.not_null),
            collation: schema.collation(table, &from).map(str::to_string),
            // Normalized names are SQL as they stand (`"UserId"` keeps its quotes).
            key: t.and_then(|t| t.primary_key.first().cloned()),
            attachments: schema.attachments(table, &from),
            key_types: t.map(|t| t.key_types()).unwrap_or_default(),
            conversion: None,
            indexes: crate::rewrite::index::carried(schema, table, (&from, &to), true),
        });
    }
    schema.rename_column(table, &from, &to);
}
