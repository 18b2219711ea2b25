//! The online rewrite of a plain `CREATE INDEX` or `DROP INDEX` on a table the running version
//! uses: the concurrent form, run outside a transaction.
//!
//! `CREATE INDEX` takes a SHARE lock on its table for the whole build, so the old version's
//! writes wait until the index is built; `DROP INDEX` takes ACCESS EXCLUSIVE, so every query on
//! the table waits, behind any long one. `CREATE INDEX CONCURRENTLY` and `DROP INDEX
//! CONCURRENTLY` take SHARE UPDATE EXCLUSIVE instead, which lets reads and writes go on
//! (PostgreSQL manual, CREATE INDEX, "Building Indexes Concurrently"; DROP INDEX; 13.3.1,
//! "Table-Level Locks"). Neither can run inside a transaction block, so a migration is
//! rewritten only when it holds nothing but index statements: it then runs statement by
//! statement, as a migration written with `CONCURRENTLY` does, and the executor drops an
//! INVALID index a failed or interrupted build leaves before it tries again.
//!
//! Left as written, with the lock finding and a hint to move the index into a file of its own:
//! an index statement beside other statements (their transaction would be lost), `DROP INDEX`
//! of several indexes or with `CASCADE` (the concurrent form takes one index and no CASCADE),
//! an index on a partitioned table (manual, CREATE INDEX: concurrent builds on partitioned
//! tables are not supported), and a statement whose finding an ignore comment silences (the
//! author accepts the lock: that is the opt-out).

use crate::analysis::{Inverse, MigrationAnalysis, Phase, StatementAnalysis, StmtPhase};
use crate::lint::{Finding, Severity};
use crate::schema::{Schema, normalize};
use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SourceFile, SyntaxToken};

const CREATE: &str = "require-concurrent-index-creation";
const DROP: &str = "require-concurrent-index-deletion";
/// The info finding of a statement rewritten to build or drop an index concurrently.
pub(super) const REWRITTEN: &str = "index-built-concurrently";
/// The info finding of a constraint rewritten to `NOT VALID` and a separate `VALIDATE`.
pub(super) const VALIDATED_APART: &str = "constraint-validated-separately";

/// Rewrites, in every migration of `migrations` that holds only index statements, each plain
/// `CREATE INDEX` / `DROP INDEX` that has a lock finding into its concurrent form, and replaces
/// those findings with an info finding showing the SQL that runs. `schema` is the database's
/// schema after the migrations (for partitioned tables).
pub(super) fn rewrite(
    migrations: &mut [MigrationAnalysis],
    schema: &Schema,
    findings: &mut Vec<Finding>,
) {
    for m in migrations.iter_mut() {
        let flagged = |s: &StatementAnalysis, rule: &str| {
            !s.ignores.contains(rule)
                && !s.ignores.contains("as-is")
                && findings
                    .iter()
                    .any(|f| f.rule == rule && f.file == m.file && f.line == s.line)
        };
        let mut rewritten: Vec<Option<Concurrent>> = Vec::with_capacity(m.statements.len());
        for s in &m.statements {
            // A NOT NULL with a `-- cutover:up` value is a fill (rename.rs), not this.
            let new = concurrent_form(&s.sql, schema, &s.inverse, s.owner_of.as_deref())
                .filter(|_| s.fill.is_none())
                .filter(|c| flagged(s, c.rules[0]));
            // Only index statements, already concurrent or rewritable, may share the file.
            if new.is_none() && (s.transactional || !is_index_statement(&s.sql)) {
                rewritten.clear();
                break;
            }
            rewritten.push(new);
        }
        // An index dropped and built again under its name in one file is a rebuild: run
        // concurrently, the table would be without it in between (without its uniqueness,
        // for a unique one).
        let rebuilt = rebuilt_name(m);
        if rebuilt.is_some() || rewritten.iter().all(Option::is_none) {
            add_hint(m, rebuilt.as_deref(), findings);
            continue;
        }
        apply(m, rewritten, findings);
    }
}

/// A statement's concurrent form: what runs instead of it, in order, each with its undo.
#[derive(Debug, PartialEq)]
pub(super) struct Concurrent {
    /// The lock finding it answers first, then the other findings it makes moot.
    pub rules: &'static [&'static str],
    /// The info finding that replaces them.
    pub info: &'static str,
    /// The statement runs only once the old version is retired (the migration becomes contract).
    pub contract: bool,
    /// Statements, each with its inverse.
    pub sql: Vec<(String, Inverse)>,
}

/// Puts the concurrent forms into `m` (a statement may become several, with its line) and
/// swaps each lock finding for an info finding.
fn apply(
    m: &mut MigrationAnalysis,
    rewritten: Vec<Option<Concurrent>>,
    findings: &mut Vec<Finding>,
) {
    m.transactional = false;
    // Every statement now runs outside a transaction, one by one: none shares a transaction
    // with a concurrent one any more.
    findings.retain(|f| !(f.file == m.file && f.rule == "concurrently-in-transaction"));
    let old = std::mem::take(&mut m.statements);
    for (s, new) in old.into_iter().zip(rewritten) {
        let Some(c) = new else {
            m.statements.push(s);
            continue;
        };
        findings.retain(|f| {
            !(f.file == m.file && f.line == s.line && c.rules.contains(&f.rule.as_str()))
        });
        let runs: Vec<String> = c
            .sql
            .iter()
            .map(|(sql, _)| format!("`{}`", one_line(sql)))
            .collect();
        findings.push(Finding {
            rule: c.info.into(),
            severity: Severity::Info,
            file: m.file.clone(),
            line: s.line,
            column: None,
            message: format!(
                "runs as {} outside a transaction, each in its own, so the running version's \
                 reads and writes go on while it works",
                runs.join(" then ")
            ),
            hint: "nothing to do; `-- cutover:as-is` above it keeps the statement as written \
                   (with its lock finding)"
                .into(),
            blocking: false,
        });
        if c.contract {
            m.phase = Phase::Contract;
        }
        let phase = if c.contract {
            StmtPhase::Contract
        } else {
            s.phase
        };
        for (sql, inverse) in c.sql {
            m.statements.push(StatementAnalysis {
                summary: one_line(&sql),
                sql,
                inverse,
                phase,
                transactional: false,
                ..s.clone()
            });
        }
    }
}

/// `sql` on one line, each run of whitespace one space.
fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The lock findings of a migration that was not rewritten get a hint saying how it could be;
/// for the rebuild of the index `rebuilt`, the recipe that keeps it in place meanwhile.
fn add_hint(m: &MigrationAnalysis, rebuilt: Option<&str>, findings: &mut [Finding]) {
    for f in findings.iter_mut() {
        if f.file != m.file || (f.rule != CREATE && f.rule != DROP) {
            continue;
        }
        f.hint = match rebuilt {
            Some(name) => format!(
                "to rebuild `{name}` without blocking, build the new one under another name \
                 (`CREATE INDEX CONCURRENTLY {name}_new ...`), then `DROP INDEX CONCURRENTLY \
                 {name}` and `ALTER INDEX {name}_new RENAME TO {name}`, each in a migration of \
                 its own"
            ),
            None => format!(
                "{}; or put it in a migration of its own (one index, no CASCADE, not on a \
                 partitioned table): `plan` then runs it CONCURRENTLY outside a transaction",
                f.hint.trim_end_matches('.')
            ),
        };
    }
}

/// The name of an index `m` drops and creates again, if any.
fn rebuilt_name(m: &MigrationAnalysis) -> Option<String> {
    let (mut dropped, mut created) = (Vec::new(), Vec::new());
    for s in &m.statements {
        let Some(stmt) = first_statement(&s.sql) else {
            continue;
        };
        let words: Vec<String> = stmt
            .syntax()
            .descendants_with_tokens()
            .filter_map(|e| e.into_token())
            .filter(|t| !t.kind().is_trivia())
            .map(|t| t.text().to_string())
            .collect();
        let skip = ["concurrently", "if", "not", "exists"];
        let name = words
            .iter()
            .skip_while(|w| !w.eq_ignore_ascii_case("index"))
            .skip(1)
            .find(|w| !skip.iter().any(|k| w.eq_ignore_ascii_case(k)))
            .filter(|w| !w.eq_ignore_ascii_case("on"))
            .map(|w| normalize(w));
        match (stmt, name) {
            (ast::Stmt::DropIndex(_), Some(n)) => dropped.push(n),
            (ast::Stmt::CreateIndex(_), Some(n)) => created.push(n),
            _ => {}
        }
    }
    dropped.into_iter().find(|d| created.contains(d))
}

/// Whether `sql` is a `CREATE INDEX`, `DROP INDEX` or `REINDEX` statement.
fn is_index_statement(sql: &str) -> bool {
    matches!(
        first_statement(sql),
        Some(ast::Stmt::CreateIndex(_) | ast::Stmt::DropIndex(_) | ast::Stmt::Reindex(_))
    )
}

/// `sql` parsed, when it is one index statement. Parsing happens on the planning thread, whose
/// stack a deeply nested statement would overflow (the analysis parses on big-stack threads):
/// only statements that start like an index statement and nest at most [`MAX_NESTING`]
/// parentheses deep are parsed; the rest are not rewritten.
pub(super) fn first_statement(sql: &str) -> Option<ast::Stmt> {
    let words: Vec<String> = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .take(3)
        .map(str::to_ascii_lowercase)
        .collect();
    let starts = match words.as_slice() {
        [a, b, ..] if a == "create" && b == "index" => true,
        [a, b, c] if a == "create" && b == "unique" && c == "index" => true,
        [a, b, ..] if a == "drop" && b == "index" => true,
        [a, b, ..] if a == "alter" && b == "table" => true,
        [a, ..] => a == "reindex",
        [] => false,
    };
    if !starts || nesting(sql) > MAX_NESTING {
        return None;
    }
    let parse = SourceFile::parse(sql);
    if !parse.errors().is_empty() {
        return None;
    }
    let mut stmts = parse.tree().stmts();
    let first = stmts.next()?;
    stmts.next().is_none().then_some(first)
}

/// Parentheses deep enough that a parse could overflow the planning thread's stack.
const MAX_NESTING: usize = 200;

/// How deep `sql` nests parentheses (counting those in strings too: an overestimate is safe).
fn nesting(sql: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in sql.bytes() {
        match b {
            b'(' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The concurrent form of a plain `CREATE INDEX`, a `DROP INDEX` of one index without
/// `CASCADE`, or an `ALTER TABLE ... ADD [CONSTRAINT c] {UNIQUE|PRIMARY KEY} (columns)`
/// ([`unique_form`]); `None` for anything else. `inverse` undoes the statement as written.
/// `owner` is the table the analysis found the statement works on, where it knows it.
fn concurrent_form(
    sql: &str,
    schema: &Schema,
    inverse: &Inverse,
    owner: Option<&str>,
) -> Option<Concurrent> {
    let (rules, after): (&'static [&'static str], _) = match first_statement(sql)? {
        ast::Stmt::CreateIndex(ci) => {
            let relation = ci.table_relation_name()?;
            let table = relation.table_name_ref()?.syntax().text().to_string();
            let only = relation.only_token().is_some();
            if ci.concurrently_token().is_some()
                || only
                || schema.is_partitioned(&normalize(&table))
            {
                return None;
            }
            (&[CREATE], ci.index_token()?)
        }
        ast::Stmt::DropIndex(di) => {
            let cascade = di.drop_behavior().is_some_and(|b| {
                b.syntax()
                    .text()
                    .to_string()
                    .eq_ignore_ascii_case("cascade")
            });
            if di.concurrently_token().is_some() || cascade || di.index_refs().count() != 1 {
                return None;
            }
            // A partitioned index cannot be dropped concurrently (manual, DROP INDEX).
            if owner.is_some_and(|t| schema.is_partitioned(t)) {
                return None;
            }
            (&[DROP], di.index_token()?)
        }
        ast::Stmt::AlterTable(at) => {
            return super::unique::unique_form(&at, sql, schema)
                .or_else(|| super::unique::not_valid_form(&at, sql, schema))
                .or_else(|| super::not_null::not_null_form(&at, sql));
        }
        _ => return None,
    };
    Some(Concurrent {
        rules,
        info: REWRITTEN,
        contract: false,
        sql: vec![(insert_after(sql, &after, " CONCURRENTLY"), inverse.clone())],
    })
}

/// `sql` with `text` inserted after `token`.
fn insert_after(sql: &str, token: &SyntaxToken, text: &str) -> String {
    let at = usize::from(token.text_range().end());
    format!("{}{text}{}", &sql[..at], &sql[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(sql: &str) -> Option<String> {
        concurrent_form(sql, &Schema::default(), &Inverse::Noop, None).map(|c| c.sql[0].0.clone())
    }

    fn form_in(sql: &str, schema: &Schema) -> Option<Concurrent> {
        concurrent_form(sql, schema, &Inverse::Noop, None)
    }

    #[test]
    fn plain_index_statements_get_their_concurrent_form() {
        assert_eq!(
            form("CREATE INDEX users_name_idx ON users (name)").as_deref(),
            Some("CREATE INDEX CONCURRENTLY users_name_idx ON users (name)")
        );
        let tail = "u on public.users using btree (lower(email)) where deleted_at is null";
        assert_eq!(
            form(&format!("create unique index if not exists {tail}")),
            Some(format!(
                "create unique index CONCURRENTLY if not exists {tail}"
            ))
        );
        assert_eq!(
            form("CREATE INDEX ON users (name)").as_deref(),
            Some("CREATE INDEX CONCURRENTLY ON users (name)")
        );
        assert_eq!(
            form("DROP INDEX IF EXISTS users_name_idx").as_deref(),
            Some("DROP INDEX CONCURRENTLY IF EXISTS users_name_idx")
        );
    }

    #[test]
    fn what_the_concurrent_form_cannot_do_is_left_as_written() {
        assert_eq!(form("CREATE INDEX CONCURRENTLY i ON users (name)"), None);
        assert_eq!(form("DROP INDEX a, b"), None);
        assert_eq!(form("DROP INDEX a CASCADE"), None);
        assert_eq!(form("CREATE INDEX i ON ONLY events (at)"), None);
        assert_eq!(form("ALTER TABLE users ADD COLUMN x int"), None);
        // Not parsed at all: the planning thread's stack is not the analysis threads'.
        let deep = format!(
            "CREATE INDEX i ON t ((a {}1{}))",
            "+(".repeat(20_000),
            ")".repeat(20_000)
        );
        assert_eq!(form(&deep), None);
        // Concurrent builds on partitioned tables are not supported (manual, CREATE INDEX).
        let base = "CREATE TABLE events (at timestamptz) PARTITION BY RANGE (at);";
        let files = [crate::migrations::MigrationFile::from_bytes(
            "V1__b.sql",
            "V1__b.sql",
            base.as_bytes(),
        )
        .unwrap()];
        let schema = crate::analysis::analyze(&files, None, Default::default()).schema;
        assert!(schema.is_partitioned("events"));
        assert_eq!(form_in("CREATE INDEX i ON events (at)", &schema), None);
        assert!(form_in("CREATE INDEX i ON users (at)", &schema).is_some());
    }
}
