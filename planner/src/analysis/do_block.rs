//! `DO` blocks: the plain SQL statements in a PL/pgSQL body are classified like any statement,
//! and what cutover cannot see into (variables, loops, dynamic SQL) needs a phase declaration.

use super::*;

/// A `DO` block. PostgreSQL runs its body at once, so cutover classifies the plain SQL
/// statements in it (squawk parses PL/pgSQL): the usual idioms guard them with `IF NOT EXISTS
/// (...) THEN ... END IF` or an `EXCEPTION WHEN duplate_object THEN NULL` handler, and the
/// guards only decide whether they run. A body cutover cannot read (variables, loops, dynamic
/// EXECUTE, PERFORM, COMMIT) is an error until the file declares its phase.
pub(super) fn classify_do(
    d: &ast::Do,
    schema: &mut Schema,
    index: &LineIndex,
    lint: bool,
) -> Class {
    let Some(body) = d.plpgsql() else {
        return unreadable("its language is not PL/pgSQL".into());
    };
    if let Some(e) = body.errors().first() {
        return unreadable(format!(
            "its PL/pgSQL does not parse ({})",
            readable_parse_error(e.message())
        ));
    }
    let mut inner: Vec<ast::Stmt> = Vec::new();
    if let Err(why) = plain_statements(&body.syntax(), &mut inner) {
        return unreadable(why);
    }
    let mut c = Class::new(StmtPhase::Neutral, Inverse::Noop);
    let mut first_expand: Option<u32> = None;
    let mut first_contract: Option<u32> = None;
    let mut added_values: Vec<(String, u32)> = Vec::new();
    for stmt in &inner {
        let node = stmt.syntax();
        let source = body.source_range(node.text_range());
        let line = index.line(usize::from(source.start()));
        let mut ic = classify(stmt, &words(node), schema, true);
        c.raise(ic.phase);
        match ic.phase {
            StmtPhase::Expand => first_expand = first_expand.or(Some(line)),
            StmtPhase::Contract => first_contract = first_contract.or(Some(line)),
            _ => {}
        }
        let literals = literal_contents(node);
        enum_values(&mut c, &mut added_values, stmt, &literals, line);
        c.literals.extend(literals);
        merge_inner(&mut c, &mut ic, stmt, line);
        // squawk's lock-hazard rules, on the statement alone.
        if lint {
            let table = ic.table.as_deref().or(c.table.as_deref());
            let table_new = table.is_some_and(|t| schema.is_new(t));
            c.findings.extend(lint_inner(node, table_new, line));
        }
    }
    if let (Some(e), Some(k)) = (first_expand, first_contract) {
        mixed_phases(&mut c, e, k);
    }
    // The guards make the block's effect depend on what the database holds: undoing it
    // blindly could drop what was there before.
    c.inverse = Inverse::Unknown(
        "a DO block's effect depends on its conditions; add a down migration".into(),
    );
    c
}

/// The enum values a block's statement `stmt` (on `line`, with string `literals`) adds or uses:
/// the block is one transaction too, so a value added earlier in it (`added`: value and line)
/// cannot be used in it, a finding on `c`; an `ALTER TYPE ... ADD VALUE` adds its values to
/// `added`, and to `c.enum_adds` for the statements after the block.
fn enum_values(
    c: &mut Class,
    added: &mut Vec<(String, u32)>,
    stmt: &ast::Stmt,
    literals: &[String],
    line: u32,
) {
    let node = stmt.syntax();
    // The block is one transaction too: an enum value it adds cannot be used in it.
    if let Some((value, at)) = added.iter().find(|(v, _)| literals.contains(v)) {
        c.finding_at(
            RuleId::EnumValueInSameTransaction,
            format!(
                "the enum value '{value}' added on line {at} is used here, in the same \
                 transaction: PostgreSQL refuses it (unsafe use of new value) until the \
                 transaction that added it commits"
            ),
            "move the `ALTER TYPE ... ADD VALUE` into a migration of its own, before this one",
            line,
        );
    }
    if matches!(stmt, ast::Stmt::AlterType(_)) && has_seq(&words(node), &["add", "value"]) {
        added.extend(literals.iter().map(|v| (v.clone(), line)));
        // The statements after the block, in the file's transaction, cannot use it either.
        if let (Some(ty), Some(v)) = (name_after(node, "type", &[]), literals.first()) {
            c.enum_adds.push((normalize(&ty), v.clone()));
        }
    }
}

/// The finding on a DO block whose first expand statement is on line `e` and first contract
/// statement on line `k`: the block runs at one time, so it fits neither phase.
fn mixed_phases(c: &mut Class, e: u32, k: u32) {
    c.finding_at(
        RuleId::MixedPhaseMigration,
        format!(
            "this DO block mixes expand (line {e}) and contract (line {k}) statements: the \
             whole block runs at one time"
        ),
        "split it into two blocks in two migrations: the expand one runs before traffic moves, \
         the contract one after the old version is retired",
        k,
    );
}

/// Collects the plain SQL statements of a PL/pgSQL body, or says what cutover cannot read.
pub(super) fn plain_statements(node: &SyntaxNode, out: &mut Vec<ast::Stmt>) -> Result<(), String> {
    for child in node.children() {
        match child.kind() {
            SyntaxKind::PLPGSQL_BLOCK
            | SyntaxKind::PLPGSQL_BODY
            | SyntaxKind::PLPGSQL_IF_STMT
            | SyntaxKind::PLPGSQL_ELSIF_CLAUSE
            | SyntaxKind::PLPGSQL_ELSE_CLAUSE
            | SyntaxKind::PLPGSQL_EXCEPTION_SECTION
            | SyntaxKind::PLPGSQL_EXCEPTION_HANDLER => plain_statements(&child, out)?,
            // Guards, labels and statements that change nothing.
            SyntaxKind::PLPGSQL_EXPR
            | SyntaxKind::PLPGSQL_CONDITION
            | SyntaxKind::PLPGSQL_LABEL
            | SyntaxKind::PLPGSQL_LABEL_NAME
            | SyntaxKind::PLPGSQL_NULL_STMT
            | SyntaxKind::PLPGSQL_RAISE_STMT
            | SyntaxKind::PLPGSQL_ASSERT_STMT
            | SyntaxKind::PLPGSQL_RETURN_STMT => {}
            SyntaxKind::PLPGSQL_EXEC_SQL_STMT => match child.children().find_map(ast::Stmt::cast) {
                // SELECT ... INTO a variable needs a DECLARE, which is refused below.
                Some(stmt) => out.push(stmt),
                None => return Err("a statement it cannot read".into()),
            },
            SyntaxKind::PLPGSQL_DECLARE_SECTION => {
                return Err(
                    "it declares variables, so its statements depend on values computed at run time"
                        .into(),
                );
            }
            SyntaxKind::PLPGSQL_DYN_EXECUTE_STMT => {
                return Err("it EXECUTEs SQL built at run time".into());
            }
            SyntaxKind::PLPGSQL_PERFORM_STMT | SyntaxKind::PLPGSQL_CALL_STMT => {
                return Err("it calls a function or procedure".into());
            }
            SyntaxKind::PLPGSQL_COMMIT_STMT | SyntaxKind::PLPGSQL_ROLLBACK_STMT => {
                return Err("it ends the transaction".into());
            }
            k if format!("{k:?}").contains("LOOP")
                || format!("{k:?}").contains("FOR_")
                || format!("{k:?}").contains("WHILE") =>
            {
                return Err("it loops over rows or values computed at run time".into());
            }
            k => {
                return Err(format!(
                    "it holds a `{}` construct",
                    format!("{k:?}")
                        .trim_start_matches("PLPGSQL_")
                        .trim_end_matches("_STMT")
                        .to_lowercase()
                        .replace('_', " ")
                ));
            }
        }
    }
    Ok(())
}

/// A DO block that cutover cannot read: contract, and a phase declaration is needed.
fn unreadable(why: String) -> Class {
    let mut c = Class::new(
        StmtPhase::Contract,
        Inverse::Unknown("cutover cannot read the DO block".into()),
    );
    c.needs_declaration = true;
    c.finding(
        RuleId::UnreadableDoBlock,
        format!("cutover cannot see what this DO block does: {why}"),
        "declare the file's phase with `-- cutover:phase=expand` (safe while the old version runs) \
         or `-- cutover:phase=contract` at the top of the file; or write the statements as plain SQL",
    );
    c
}

/// Adds to the block's class `c` what the class `ic` of its statement `stmt` (on `line`) found:
/// the table, drops, creates, owner and findings, and what a statement cannot do in a block.
fn merge_inner(c: &mut Class, ic: &mut Class, stmt: &ast::Stmt, line: u32) {
    let node = stmt.syntax();
    c.table = c.table.take().or(ic.table.take());
    c.drops.append(&mut ic.drops);
    c.creates.append(&mut ic.creates);
    c.owner_of = c.owner_of.take().or(ic.owner_of.take());
    c.needs_declaration |= ic.needs_declaration;
    if !transactional(stmt) {
        c.finding_at(
            RuleId::ConcurrentlyInTransaction,
            format!(
                "`{}` cannot run inside a DO block: PostgreSQL runs the block as one function call, \
                 inside a transaction",
                summarize(&node.text().to_string())
            ),
            "write it as a plain statement in a migration file of its own; cutover runs such a file \
             outside a transaction",
            line,
        );
    }
    // `plan` rewrites a plain RENAME COLUMN into phases; inside a block it would run as
    // written, before traffic moves.
    if let Some(r) = ic.rename.take() {
        ic.findings
            .retain(|(rule, ..)| *rule != RuleId::BreakingRenameColumn);
        c.finding_at(
            RuleId::BreakingDoBlock,
            format!(
                "the DO block renames `{}.{}` to `{}`, which breaks the version that still uses the \
                 old name, and cutover rewrites a rename into phases only as a plain statement",
                r.table, r.from, r.to
            ),
            "write the RENAME COLUMN as a plain statement (cutover rewrites it: add, sync, \
             backfill, drop), or run the block in a `recreate` release",
            line,
        );
    }
    for (rule, message, hint, _) in std::mem::take(&mut ic.findings) {
        c.findings.push((rule, message, hint, Some(line)));
    }
}

/// squawk's lock-hazard rules on one statement of a block (placed on `line`); `table_new`: its
/// table is new to this release, so nobody waits on its locks.
fn lint_inner(
    node: &SyntaxNode,
    table_new: bool,
    line: u32,
) -> Vec<(RuleId, String, String, Option<u32>)> {
    let mut out = Vec::new();
    let sql = node.text().to_string();
    let parse = SourceFile::parse(&sql);
    let mut linter = Linter::with_rules(&[], SQUAWK_REPLACED);
    linter.settings.assume_in_transaction = true;
    for v in linter.lint(&parse, &sql) {
        if SQUAWK_LOCK_RULES.contains(&v.code.to_string().as_str()) && table_new {
            continue;
        }
        if matches!(
            v.code,
            Rule::RequireLockTimeout | Rule::RequireStatementTimeout
        ) {
            continue;
        }
        let Some(squawk_rule) = RuleId::from_id(&v.code.to_string()) else {
            continue;
        };
        let hint = v
            .help
            .clone()
            .unwrap_or_else(|| squawk_rule.info().summary.to_string());
        out.push((squawk_rule, v.message.clone(), hint, Some(line)));
    }
    out
}
