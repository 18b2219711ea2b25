//! Migration analysis: parse each file, classify every statement as neutral, expand, contract or
//! breaking, and collect [`Finding`]s. The main entry point is [`analyze`].
//!
//! # Why squawk's parser and rules
//!
//! Four ways to read PostgreSQL were weighed:
//! - `pg_query` embeds PostgreSQL's own grammar, so it is exact, but it fails a whole file on the
//!   first error (one typo would hide every other finding), and it needs libclang and a C build.
//! - `sqlparser` is pure Rust but aims at many dialects; it lacks much PostgreSQL DDL (NOT VALID,
//!   triggers with PL/pgSQL bodies, ALTER TYPE ... ADD VALUE) and, again, stops at the first error.
//! - `squawk-syntax` is a lossless, error-tolerant PostgreSQL parser (a rowan tree): a statement it
//!   cannot read becomes an error node at an exact position while the statements around it still
//!   parse, which is what "an unparseable statement is a finding, never silently skipped" needs.
//! - `squawk-linter` runs squawk's maintained lock-hazard rules on that same tree.
//!
//! So cutover parses with `squawk-syntax`, takes lock-hazard findings from `squawk-linter` (the
//! same rule ids squawk users know, and the same speed as the `squawk` CLI), and adds what needs
//! phases and releases: the expand/contract/breaking classification, the rename rewrite, data
//! loss, CONCURRENTLY sharing a migration, and phase declarations. Squawk rules that cutover's
//! phase-aware rules replace (renames, drops, type changes, NOT NULL) are turned off.

mod column_type;
mod dml;

use crate::lint::{Finding, Severity, rule};
use crate::migrations::MigrationFile;
use crate::schema::{Column, Schema, normalize};
use crate::source::LineIndex;
use serde::Serialize;
use squawk_linter::{Linter, Rule, Violation};
use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{Parse, SourceFile, SyntaxKind, SyntaxNode};
use std::collections::BTreeSet;

/// When a statement is safe to run, relative to the two app versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StmtPhase {
    /// Changes no schema (SET, BEGIN, SELECT, ANALYZE...).
    Neutral,
    /// Safe while the old version still runs.
    Expand,
    /// Safe only once the old version is gone.
    Contract,
    /// Unsafe while either version runs, unless rewritten.
    Breaking,
    /// The parser could not read it.
    Unparseable,
}

/// When a whole migration runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before traffic moves to the new version.
    Expand,
    /// After the old version is retired.
    Contract,
    /// Needs a rewrite into phases (or a recreate release).
    Breaking,
    /// Holds a statement that could not be read.
    Unknown,
}

impl Phase {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Expand => "expand",
            Phase::Contract => "contract",
            Phase::Breaking => "breaking",
            Phase::Unknown => "unknown",
        }
    }
}

/// How a statement is undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inverse {
    /// Nothing to undo (VALIDATE CONSTRAINT, SET, ...).
    Noop,
    /// This SQL undoes it.
    Sql(String),
    /// No safe inverse is known; the reason says why.
    Unknown(String),
}

/// A `RENAME COLUMN` the planner can rewrite into phases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnRename {
    /// Table as written.
    pub table: String,
    /// Old column name as written.
    pub from: String,
    /// New column name as written.
    pub to: String,
    /// The old column's type, when the migrations declare it.
    pub column_type: Option<String>,
    /// The old column is NOT NULL.
    pub not_null: bool,
    /// First primary-key column of the table, when the migrations declare it.
    pub key: Option<String>,
    /// The primary key's column types, in key order, when the migrations declare them (empty
    /// for an unknown key; more than one for a composite key).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_types: Vec<String>,
}

/// One statement of a migration.
#[derive(Debug, Clone, Serialize)]
pub struct StatementAnalysis {
    /// 1-based line of the statement's first token.
    pub line: u32,
    /// Classification.
    pub phase: StmtPhase,
    /// The statement on one line, shortened.
    pub summary: String,
    /// Can run inside a transaction (false for CREATE INDEX CONCURRENTLY and friends).
    pub transactional: bool,
    /// Full SQL text.
    #[serde(skip)]
    pub sql: String,
    /// How to undo it.
    #[serde(skip)]
    pub inverse: Inverse,
    /// Set for a RENAME COLUMN on an existing table.
    #[serde(skip)]
    pub rename: Option<ColumnRename>,
    /// The table whose owner alone may run the statement (ALTER TABLE, CREATE INDEX), as
    /// written; preflight checks the role owns those that exist.
    #[serde(skip)]
    pub owner_of: Option<String>,
}

/// One migration file, analyzed.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationAnalysis {
    /// Path as displayed.
    pub file: String,
    /// Version from the file name.
    pub version: u64,
    /// Name from the file name.
    pub name: String,
    /// Classification of the whole file.
    pub phase: Phase,
    /// Phase declared by a `-- cutover:phase=` comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_phase: Option<Phase>,
    /// Runs in one transaction (no statement forbids it).
    pub transactional: bool,
    /// sha256 of the file.
    pub checksum: String,
    /// Statements in file order.
    pub statements: Vec<StatementAnalysis>,
    /// File name.
    #[serde(skip)]
    pub file_name: String,
    /// refinery's checksum of the file.
    #[serde(skip)]
    pub refinery_checksum: u64,
    /// Its explicit undo (`.down.sql`), if it has one.
    #[serde(skip)]
    pub down: Option<String>,
}

impl MigrationAnalysis {
    /// File name without `.sql`, used in step ids.
    pub fn stem(&self) -> &str {
        self.file_name.trim_end_matches(".sql")
    }

    /// The rename statements the planner rewrites.
    pub fn renames(&self) -> impl Iterator<Item = &StatementAnalysis> {
        self.statements.iter().filter(|s| s.rename.is_some())
    }
}

/// What the files are being analyzed for.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnalyzeOptions {
    /// The files after the baseline ship together as one release (true inside `plan`):
    /// tables they create are not used by the running version yet, so lock hazards on them are
    /// not reported, and the executor sets lock_timeout and statement_timeout, so missing
    /// timeouts are not reported either. `lint` has no release context: every table may be live.
    pub release: bool,
}

/// Result of [`analyze`].
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Migrations after the baseline, in version order.
    pub migrations: Vec<MigrationAnalysis>,
    /// Every finding, in file and line order.
    pub findings: Vec<Finding>,
    /// The schema after all migrations.
    pub schema: Schema,
}

/// The stack of the threads that parse and classify. A deeply nested statement (a generated
/// 150,000-term `OR` chain, 20,000 nested parentheses) makes squawk's syntax tree as deep, and
/// building, walking and dropping it recurse once per level: the 8 MiB of a main thread overflow
/// (an abort, not an error). Stack memory is only committed as it is used, so reserving this
/// much costs nothing for ordinary files.
const ANALYSIS_STACK: usize = 4 << 30;

/// Runs `f` on a thread with [`ANALYSIS_STACK`] of stack.
fn with_big_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("cutover-analysis".into())
            .stack_size(ANALYSIS_STACK)
            .spawn_scoped(s, f)
            .expect("an analysis thread starts")
            .join()
            .expect("an analysis thread panicked")
    })
}

/// Analyzes migrations in version order. Files at or below `baseline` are already applied: they
/// only teach the schema model and are not reported.
pub fn analyze(files: &[MigrationFile], baseline: Option<u64>, opts: AnalyzeOptions) -> Analysis {
    with_big_stack(|| analyze_on_this_thread(files, baseline, opts))
}

fn analyze_on_this_thread(
    files: &[MigrationFile],
    baseline: Option<u64>,
    opts: AnalyzeOptions,
) -> Analysis {
    let mut schema = Schema::default();
    let mut migrations = Vec::new();
    let mut findings = Vec::new();
    // Version order, whatever order the caller read the files in.
    let mut files: Vec<&MigrationFile> = files.iter().collect();
    files.sort_by_key(|f| f.version);
    // Parsing and squawk's rules need no schema, so they run on every core; the classification
    // replays DDL into the schema model and so runs in version order afterwards.
    let prepared = parallel_map(&files, |file| {
        prepare(file, baseline.is_none_or(|b| file.version > b))
    });
    for (file, prepared) in files.into_iter().zip(prepared) {
        let applied = baseline.is_some_and(|b| file.version <= b);
        let (m, f) = analyze_file(file, prepared, &mut schema, !applied, opts);
        if !applied {
            migrations.push(m);
            findings.extend(f);
        }
    }
    Analysis {
        migrations,
        findings,
        schema,
    }
}

/// What classifying one statement found.
struct Class {
    phase: StmtPhase,
    inverse: Inverse,
    rename: Option<ColumnRename>,
    transactional: bool,
    /// Table the statement works on, normalized, for suppressing hazards on new tables.
    table: Option<String>,
    /// Table whose ownership the statement needs (ALTER TABLE, CREATE INDEX), as written.
    owner_of: Option<String>,
    findings: Vec<(&'static str, String, String)>,
}

impl Class {
    fn new(phase: StmtPhase, inverse: Inverse) -> Self {
        Self {
            phase,
            inverse,
            rename: None,
            transactional: true,
            table: None,
            owner_of: None,
            findings: Vec::new(),
        }
    }

    fn raise(&mut self, phase: StmtPhase) {
        self.phase = self.phase.max(phase);
    }

    fn finding(&mut self, rule: &'static str, message: String, hint: impl Into<String>) {
        self.findings.push((rule, message, hint.into()));
    }
}

/// Rules squawk reports that cutover replaces with phase-aware ones, or that are not about locks.
const SQUAWK_REPLACED: &[Rule] = &[
    Rule::RenamingColumn,
    Rule::RenamingTable,
    Rule::BanDropColumn,
    Rule::BanDropTable,
    Rule::BanDropNotNull,
    Rule::ChangingColumnType,
    Rule::AddingNotNullableField,
    Rule::AddingRequiredField,
    Rule::UnusedIgnore,
];

/// Squawk rules that only matter while other transactions use the table: silent for tables this
/// release creates.
const SQUAWK_LOCK_RULES: &[&str] = &[
    "require-concurrent-index-creation",
    "constraint-missing-not-valid",
    "adding-foreign-key-constraint",
    "adding-field-with-default",
    "adding-serial-primary-key-field",
    "disallowed-unique-constraint",
    "require-concurrent-index-deletion",
];

/// What can be computed for a file without the schema: its parse tree and squawk's findings.
struct Prepared {
    parse: Parse<SourceFile>,
    /// Parse errors: offset and readable message.
    errors: Vec<(usize, String)>,
    violations: Vec<Violation>,
}

fn prepare(file: &MigrationFile, lint: bool) -> Prepared {
    let parse = SourceFile::parse(&file.text);
    let violations = if lint {
        let mut linter = Linter::with_rules(&[], SQUAWK_REPLACED);
        // cutover runs a file in one transaction unless a statement forbids it.
        linter.settings.assume_in_transaction = parse.tree().stmts().all(|s| transactional(&s));
        linter.lint(&parse, &file.text)
    } else {
        Vec::new()
    };
    let errors = parse
        .errors()
        .iter()
        .map(|e| {
            (
                usize::from(e.range().start()),
                readable_parse_error(e.message()),
            )
        })
        .collect();
    Prepared {
        parse,
        errors,
        violations,
    }
}

/// Maps `f` over `items` on all cores, keeping order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads <= 1 || items.len() < 32 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| {
                std::thread::Builder::new()
                    .stack_size(ANALYSIS_STACK)
                    .spawn_scoped(s, || c.iter().map(&f).collect::<Vec<R>>())
                    .expect("an analysis thread starts")
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("an analysis thread panicked"))
            .collect()
    })
}

/// The schema part of a qualified name as written (`app.t` → `app`, `"My.App"."T"` →
/// `"My.App"`), `None` for an unqualified one.
fn schema_of(name: &str) -> Option<&str> {
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

/// Whether a statement can run inside a transaction block.
fn transactional(stmt: &ast::Stmt) -> bool {
    let concurrently = || has_seq(&words(stmt.syntax()), &["concurrently"]);
    match stmt {
        ast::Stmt::CreateIndex(ci) => ci.concurrently_token().is_none(),
        ast::Stmt::DropIndex(_) | ast::Stmt::Reindex(_) => !concurrently(),
        ast::Stmt::AlterTable(at) => {
            !at.actions()
                .any(|a| matches!(a, ast::AlterTableAction::DetachPartition(_)))
                || !concurrently()
        }
        ast::Stmt::Vacuum(_)
        | ast::Stmt::CreateDatabase(_)
        | ast::Stmt::DropDatabase(_)
        | ast::Stmt::AlterSystem(_) => false,
        _ => true,
    }
}

fn analyze_file(
    file: &MigrationFile,
    prepared: Prepared,
    schema: &mut Schema,
    report: bool,
    opts: AnalyzeOptions,
) -> (MigrationAnalysis, Vec<Finding>) {
    let text = file.text.as_str();
    let index = LineIndex::new(text);
    let Prepared {
        parse,
        mut errors,
        violations,
    } = prepared;
    let root = parse.syntax_node();

    // Comments, for ignores and the phase declaration.
    let comments: Vec<(usize, String)> = root
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .filter(|t| t.kind() == SyntaxKind::COMMENT)
        .map(|t| (usize::from(t.text_range().start()), t.text().to_string()))
        .collect();

    let mut findings: Vec<Finding> = Vec::new();
    let push =
        |findings: &mut Vec<Finding>, rule_id: &str, line: u32, message: String, hint: String| {
            let info = rule(rule_id);
            findings.push(Finding {
                rule: rule_id.to_string(),
                severity: info.map_or(Severity::Warning, |r| r.severity),
                file: file.display_path.clone(),
                line,
                message,
                hint,
                blocking: false,
            });
        };

    let mut statements = Vec::new();
    // Where each statement is, for mapping squawk's violations to it.
    struct Span {
        start: usize,
        end: usize,
        table: Option<String>,
        ignores: BTreeSet<String>,
    }
    let mut spans: Vec<Span> = Vec::new();
    let mut prev_end = 0usize;
    for stmt in parse.tree().stmts() {
        let node = stmt.syntax();
        let range = node.text_range();
        let (start, end) = (usize::from(range.start()), usize::from(range.end()));
        let first = first_token_offset(node).unwrap_or(start);
        let line = index.line(first);
        let sql = text[first..end].trim().to_string();
        // An ignore comment belongs to the statement on its own line (written after it) or to
        // the next statement (written on the lines above it), never to one further on.
        let prev_line = (prev_end > 0).then(|| index.line(prev_end.saturating_sub(1)));
        let end_line = index.line(end.saturating_sub(1));
        let own: Vec<(usize, String)> = comments
            .iter()
            .filter(|(at, _)| *at >= prev_end && *at < first && Some(index.line(*at)) != prev_line)
            .cloned()
            .collect();
        let trailing: Vec<(usize, String)> = comments
            .iter()
            .filter(|(at, _)| *at >= end && index.line(*at) == end_line)
            .cloned()
            .collect();
        let mut ignores = ignores_between(&own, prev_end, first);
        ignores.extend(ignores_between(&trailing, end, usize::MAX));
        // An error in the gap before a statement (text the parser skipped, like a misspelled
        // keyword) belongs to it: whatever it parsed after the garbage is not what was meant.
        let gap_start = spans.last().map_or(0, |s| s.end);
        let owns = |at: usize| at >= gap_start && at < end.max(start + 1);
        let stmt_errors: Vec<String> = errors
            .iter()
            .filter(|(at, _)| owns(*at))
            .map(|(_, m)| m.clone())
            .collect();
        errors.retain(|(at, _)| !owns(*at));
        let class = if stmt_errors.is_empty() {
            let mut c = classify(&stmt, schema, report && opts.release);
            c.transactional = transactional(&stmt);
            c
        } else {
            let mut c = Class::new(
                StmtPhase::Unparseable,
                Inverse::Unknown("the statement could not be read".into()),
            );
            let more = match stmt_errors.len() {
                1 => String::new(),
                n => format!(" (and {} more parse errors)", n - 1),
            };
            c.finding("unparseable-statement", format!("the SQL parser cannot read this statement: {}{more}", stmt_errors[0]), "fix the syntax (check it with `psql`), or split the statement; cutover will not guess what an unreadable statement does");
            c
        };
        for (rule_id, message, hint) in &class.findings {
            if !ignores.contains(*rule_id) || *rule_id == "unparseable-statement" {
                push(&mut findings, rule_id, line, message.clone(), hint.clone());
            }
        }
        prev_end = end;
        spans.push(Span {
            start,
            end,
            table: class.table.clone(),
            ignores,
        });
        statements.push(StatementAnalysis {
            line,
            phase: class.phase,
            summary: summarize(&sql),
            transactional: class.transactional,
            sql,
            inverse: class.inverse,
            rename: class.rename,
            owner_of: class.owner_of,
        });
    }
    // Errors outside any statement: text the parser did not even start a statement for.
    for (at, message) in &errors {
        let line = index.line(*at);
        if statements
            .iter()
            .any(|s| s.line == line && s.phase == StmtPhase::Unparseable)
        {
            continue;
        }
        push(&mut findings, "unparseable-statement", line, format!("the SQL parser cannot read this statement: {message}"), "fix the syntax (check it with `psql`); cutover will not guess what an unreadable statement does".into());
        let pos = statements.partition_point(|s| s.line <= line);
        let rest = text[*at..].lines().next().unwrap_or("").trim().to_string();
        statements.insert(
            pos,
            StatementAnalysis {
                line,
                phase: StmtPhase::Unparseable,
                summary: summarize(&rest),
                transactional: true,
                sql: rest,
                inverse: Inverse::Unknown("the statement could not be read".into()),
                rename: None,
                owner_of: None,
            },
        );
    }

    let transactional = statements.iter().all(|s| s.transactional);

    // squawk's lock-hazard rules.
    if report {
        for v in violations {
            let at = usize::from(v.text_range.start());
            let id = v.code.to_string();
            if let Some(span) = spans.iter().find(|s| at >= s.start && at < s.end) {
                if span.ignores.contains(&id) {
                    continue;
                }
                if SQUAWK_LOCK_RULES.contains(&id.as_str())
                    && span.table.as_deref().is_some_and(|t| schema.is_new(t))
                {
                    continue;
                }
            }
            // Inside a plan the executor sets the database's lock_timeout and statement_timeout
            // around every statement, so a file without its own SET has nothing to fix.
            if opts.release
                && matches!(
                    v.code,
                    Rule::RequireLockTimeout | Rule::RequireStatementTimeout
                )
            {
                continue;
            }
            let severity = rule(&id).map_or(Severity::Warning, |r| r.severity);
            let hint = v
                .help
                .clone()
                .unwrap_or_else(|| rule(&id).map_or(String::new(), |r| r.summary.to_string()));
            findings.push(Finding {
                rule: id,
                severity,
                file: file.display_path.clone(),
                line: index.line(first_offset_at(&root, at)),
                message: v.message.clone(),
                hint,
                blocking: false,
            });
        }
    }

    // A statement that cannot run in a transaction must be alone (SET/RESET aside).
    if !transactional {
        let others = statements
            .iter()
            .filter(|s| s.transactional && s.phase != StmtPhase::Neutral)
            .count();
        if others > 0 {
            for s in statements.iter().filter(|s| !s.transactional) {
                push(&mut findings, "concurrently-in-transaction", s.line, format!("`{}` cannot run inside a transaction, but this migration has {others} other statement(s) that would share its run", s.summary), "move it into a migration file of its own; cutover runs such a file statement by statement outside a transaction".into());
            }
        }
    }

    let mut phase = migration_phase(&statements);
    let declared = declared_phase(&comments, statements.first().map(|s| s.line), &index);
    if let Some((decl, line)) = &declared {
        let line = *line;
        match decl {
            Err(value) => push(
                &mut findings,
                "phase-declaration-mismatch",
                line,
                format!("unknown phase `{value}` in `-- cutover:phase=`"),
                "declare `expand` or `contract`".into(),
            ),
            Ok(d) => {
                let d = *d;
                let contradicted: Vec<&StatementAnalysis> = statements
                    .iter()
                    .filter(|s| match d {
                        Phase::Expand => {
                            matches!(s.phase, StmtPhase::Contract | StmtPhase::Breaking)
                                && !is_unclassified(s, &findings)
                        }
                        _ => s.phase == StmtPhase::Breaking && s.rename.is_none(),
                    })
                    .collect();
                if let Some(s) = contradicted.first() {
                    push(&mut findings, "phase-declaration-mismatch", line, format!("the file declares `{}` but line {} is {}: `{}`", d.as_str(), s.line, phase_word(s.phase), s.summary), "remove the declaration, or move that statement into a migration of the right phase".into());
                } else if phase != Phase::Unknown {
                    // Nothing contradicts an expand declaration: what is not expand is only
                    // unclassified, and the declaration is what its finding asks for.
                    phase = if d == Phase::Expand {
                        Phase::Expand
                    } else {
                        phase.max(d)
                    };
                }
            }
        }
    }
    if phase == Phase::Expand || phase == Phase::Contract {
        let expand = statements.iter().find(|s| s.phase == StmtPhase::Expand);
        let contract = statements.iter().find(|s| s.phase == StmtPhase::Contract);
        if let (Some(e), Some(c)) = (expand, contract)
            && declared.is_none()
        {
            push(&mut findings, "mixed-phase-migration", c.line, format!("this migration mixes expand (line {}: `{}`) and contract (line {}: `{}`) statements", e.line, e.summary, c.line, c.summary), "split it: expand statements run before traffic moves, contract statements after the old version is retired".into());
        }
    }
    if statements.iter().all(|s| s.phase == StmtPhase::Neutral) {
        push(&mut findings, "empty-migration", 1, "a placeholder migration: it changes no schema (empty, comments only, or only SELECT/SET); it is applied and recorded in refinery's history like any other".into(), "nothing to do; refinery, diesel and pop accept placeholders too".into());
    }

    findings.sort_by(|a, b| (a.line, &a.rule).cmp(&(b.line, &b.rule)));
    // One unreadable line is one finding, however many errors the parser had on it.
    findings.dedup_by(|later, first| {
        let same = first.line == later.line && first.rule == later.rule;
        if same && first.rule == "unparseable-statement" && first.message != later.message {
            let extra = later
                .message
                .split(": ")
                .skip(1)
                .collect::<Vec<_>>()
                .join(": ");
            first.message = format!("{}; {extra}", first.message);
        }
        same && (first.rule == "unparseable-statement" || first.message == later.message)
    });
    statements.dedup_by(|later, first| {
        later.line == first.line
            && later.phase == StmtPhase::Unparseable
            && first.phase == StmtPhase::Unparseable
    });
    (
        MigrationAnalysis {
            file: file.display_path.clone(),
            version: file.version,
            name: file.name.clone(),
            phase,
            declared_phase: declared.and_then(|(d, _)| d.ok()),
            transactional,
            checksum: file.checksum.clone(),
            statements,
            file_name: file.file_name.clone(),
            refinery_checksum: file.refinery_checksum,
            down: file.down.clone(),
        },
        findings,
    )
}

/// squawk's messages name token kinds (`ADD_KW`, `IDENT`); show them as SQL.
fn readable_parse_error(message: &str) -> String {
    message
        .split(' ')
        .map(|w| {
            let (word, tail) = match w.find([',', ';']) {
                Some(i) => w.split_at(i),
                None => (w, ""),
            };
            let shown = match word {
                "IDENT" => "an identifier".to_string(),
                "SEMICOLON" => "`;`".to_string(),
                "L_PAREN" => "`(`".to_string(),
                "R_PAREN" => "`)`".to_string(),
                "COMMA" => "`,`".to_string(),
                "EOF" => "the end of the file".to_string(),
                _ if word.ends_with("_KW") => format!("`{}`", word.trim_end_matches("_KW")),
                _ => word.to_string(),
            };
            format!("{shown}{tail}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_unclassified(s: &StatementAnalysis, findings: &[Finding]) -> bool {
    findings
        .iter()
        .any(|f| f.line == s.line && f.rule == "unclassified-statement")
}

fn phase_word(p: StmtPhase) -> &'static str {
    match p {
        StmtPhase::Neutral => "neutral",
        StmtPhase::Expand => "an expand statement",
        StmtPhase::Contract => "a contract statement",
        StmtPhase::Breaking => "a breaking statement",
        StmtPhase::Unparseable => "unparseable",
    }
}

fn migration_phase(statements: &[StatementAnalysis]) -> Phase {
    let mut phase = Phase::Expand;
    for s in statements {
        let p = match s.phase {
            StmtPhase::Neutral | StmtPhase::Expand => Phase::Expand,
            StmtPhase::Contract => Phase::Contract,
            StmtPhase::Breaking => Phase::Breaking,
            StmtPhase::Unparseable => return Phase::Unknown,
        };
        phase = phase.max(p);
    }
    phase
}

/// `-- cutover:phase=contract` among the comments before the first statement.
fn declared_phase(
    comments: &[(usize, String)],
    first_stmt_line: Option<u32>,
    index: &LineIndex,
) -> Option<(Result<Phase, String>, u32)> {
    for (at, text) in comments {
        let line = index.line(*at);
        if first_stmt_line.is_some_and(|l| line > l) {
            break;
        }
        if let Some(rest) = text.split("cutover:phase=").nth(1) {
            let value: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let phase = match value.as_str() {
                "expand" => Ok(Phase::Expand),
                "contract" => Ok(Phase::Contract),
                _ => Err(value),
            };
            return Some((phase, line));
        }
    }
    None
}

/// Rule ids named by `-- cutover:ignore a, b` comments between two offsets.
fn ignores_between(comments: &[(usize, String)], from: usize, to: usize) -> BTreeSet<String> {
    comments
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .filter_map(|(_, text)| text.split("cutover:ignore").nth(1))
        .flat_map(|rest| {
            rest.split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(canonical_rule_id)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A rule id as findings carry it: squawk's aliases (`prefer-timestamptz`) become the id squawk
/// reports (`prefer-timestamp-tz`); cutover's own ids stay as written.
fn canonical_rule_id(id: &str) -> String {
    use std::str::FromStr;
    squawk_linter::Rule::from_str(id).map_or_else(|_| id.to_string(), |r| r.to_string())
}

fn first_token_offset(node: &SyntaxNode) -> Option<usize> {
    node.descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .find(|t| !t.kind().is_trivia())
        .map(|t| usize::from(t.text_range().start()))
}

/// Offset of the first non-trivia token at or after `at` (squawk ranges may start at trivia).
fn first_offset_at(root: &SyntaxNode, at: usize) -> usize {
    root.descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .find(|t| usize::from(t.text_range().start()) >= at && !t.kind().is_trivia())
        .map_or(at, |t| usize::from(t.text_range().start()))
}

fn summarize(sql: &str) -> String {
    let mut s = String::new();
    for word in sql.split_whitespace() {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(word);
        if s.len() > 96 {
            let mut cut = 93;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str("...");
            break;
        }
    }
    s.trim_end_matches(';').to_string()
}

/// Lowercased non-trivia tokens of a node.
fn words(node: &SyntaxNode) -> Vec<String> {
    node.descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .filter(|t| !t.kind().is_trivia())
        .map(|t| t.text().to_lowercase())
        .collect()
}

fn has_seq(words: &[String], seq: &[&str]) -> bool {
    words
        .windows(seq.len())
        .any(|w| w.iter().zip(seq).all(|(a, b)| a == b))
}

fn text_of<N: AstNode>(node: Option<N>) -> Option<String> {
    node.map(|n| {
        n.syntax()
            .text()
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// Text of the first token after the tokens `after`, skipping `skip` words (e.g. the name in
/// `CREATE INDEX CONCURRENTLY IF NOT EXISTS name ON`).
fn name_after(node: &SyntaxNode, after: &str, skip: &[&str]) -> Option<String> {
    let toks: Vec<String> = node
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .filter(|t| !t.kind().is_trivia())
        .map(|t| t.text().to_string())
        .collect();
    let pos = toks.iter().position(|t| t.eq_ignore_ascii_case(after))?;
    let mut name = String::new();
    for t in &toks[pos + 1..] {
        if name.is_empty() && skip.iter().any(|s| t.eq_ignore_ascii_case(s)) {
            continue;
        }
        if t == "." || name.ends_with('.') {
            name.push_str(t);
            continue;
        }
        if !name.is_empty() {
            break;
        }
        name.push_str(t);
    }
    (!name.is_empty()).then_some(name)
}

const RECIPE_ALTER_TYPE: &str = "change a type in phases: add a column of the new type with a trigger keeping both in sync (expand), backfill it, move the app to it, drop the old column (contract); or run it in a `recreate` release";
const RECIPE_SET_NOT_NULL: &str = "ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT c (both expand); SET NOT NULL is then safe because PostgreSQL skips the scan";
const RECIPE_REQUIRED_COLUMN: &str = "add the column nullable or with a constant DEFAULT (expand), backfill it, then enforce NOT NULL with a validated CHECK";
const RECIPE_RENAME_TABLE: &str = "rename the table and create a view with the old name in the same migration (the old version keeps working through the view), then drop the view in a contract migration";
const RECIPE_RENAME_OBJECT: &str = "create the object under its new name beside the old one (expand), move the app to it, drop the old one (contract)";

fn classify(stmt: &ast::Stmt, schema: &mut Schema, in_release: bool) -> Class {
    use StmtPhase::*;
    let node = stmt.syntax();
    let w = words(node);
    let no_inverse = || {
        Inverse::Unknown(
            "cutover knows no safe inverse for this statement; add a down migration".into(),
        )
    };
    match stmt {
        ast::Stmt::AlterTable(at) => {
            let table = text_of(at.table_relation_name().and_then(|r| r.table_name_ref()))
                .unwrap_or_default();
            let is_new = schema.is_new(&table);
            let mut c = Class::new(Neutral, Inverse::Noop);
            c.table = Some(normalize(&table));
            c.owner_of = Some(table.clone()).filter(|t| !t.is_empty());
            let mut inverses: Vec<String> = Vec::new();
            let mut unknown_inverse: Option<String> = None;
            for action in at.actions() {
                let aw = words(action.syntax());
                match action {
                    ast::AlterTableAction::AddColumn(ac) => {
                        let col = text_of(ac.column_name()).unwrap_or_default();
                        let ty = text_of(ac.ty()).unwrap_or_default();
                        let cons: Vec<ast::Constraint> = ac.constraints().collect();
                        let not_null = cons.iter().any(|k| {
                            matches!(
                                k,
                                ast::Constraint::NotNullConstraint(_)
                                    | ast::Constraint::PrimaryKeyConstraint(_)
                            )
                        });
                        let has_default = cons.iter().any(|k| {
                            matches!(
                                k,
                                ast::Constraint::DefaultConstraint(_)
                                    | ast::Constraint::GeneratedConstraint(_)
                            )
                        });
                        if not_null && !has_default && !is_new {
                            c.raise(Breaking);
                            c.finding("breaking-add-required-column", format!("`{table}.{col}` is added NOT NULL without a default: the old version's inserts will fail"), RECIPE_REQUIRED_COLUMN);
                        } else {
                            c.raise(Expand);
                        }
                        inverses.push(format!("ALTER TABLE {table} DROP COLUMN IF EXISTS {col};"));
                        schema.add_column(
                            &table,
                            Column {
                                name: normalize(&col),
                                ty,
                                not_null,
                            },
                        );
                        column_type::record_collation(schema, &table, &col, ac.collate());
                    }
                    ast::AlterTableAction::AddConstraint(ac) => {
                        c.raise(Expand);
                        let name = name_after(ac.syntax(), "constraint", &[]);
                        match &name {
                            Some(n) => inverses.push(format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {n};")),
                            None => unknown_inverse = Some("the constraint has no name; name it (ADD CONSTRAINT name ...) so it can be dropped".into()),
                        }
                        if let Some(col) = not_null_check_column(&aw) {
                            let validated = !has_seq(&aw, &["not", "valid"]);
                            schema.add_not_null_check(&table, name.as_deref(), &col, validated);
                        }
                    }
                    ast::AlterTableAction::ValidateConstraint(vc) => {
                        c.raise(Expand);
                        if let Some(n) = text_of(vc.constraint_name_ref()) {
                            schema.validate_constraint(&table, &n);
                        }
                    }
                    ast::AlterTableAction::AlterColumn(ac) => {
                        let col = text_of(ac.column_name_ref()).unwrap_or_default();
                        match ac.option() {
                            Some(ast::AlterColumnOption::SetType(st)) => {
                                if is_new {
                                    c.raise(Expand);
                                } else {
                                    column_type::classify_set_type(
                                        &mut c, schema, &table, &col, &st,
                                    );
                                }
                                unknown_inverse = Some("the previous type is not restored automatically; add a down migration".into());
                                column_type::apply_set_type(schema, &table, &col, &st);
                            }
                            Some(ast::AlterColumnOption::SetNotNull(_)) => {
                                let checked = schema
                                    .table(&table)
                                    .is_some_and(|t| t.not_null_checked.contains(&normalize(&col)));
                                if is_new || checked {
                                    c.raise(Expand);
                                } else {
                                    c.raise(Breaking);
                                    c.finding("breaking-set-not-null", format!("SET NOT NULL on `{table}.{col}` scans the table under an ACCESS EXCLUSIVE lock and fails the old version's NULL writes"), RECIPE_SET_NOT_NULL);
                                }
                                inverses.push(format!(
                                    "ALTER TABLE {table} ALTER COLUMN {col} DROP NOT NULL;"
                                ));
                                schema.set_not_null(&table, &col, true);
                            }
                            Some(ast::AlterColumnOption::DropNotNull(_)) => {
                                c.raise(Expand);
                                inverses.push(format!(
                                    "ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL;"
                                ));
                                schema.set_not_null(&table, &col, false);
                            }
                            Some(ast::AlterColumnOption::DropDefault(_)) => {
                                c.raise(if is_new { Expand } else { Contract });
                                unknown_inverse = Some(
                                    "the previous default is not known; add a down migration"
                                        .into(),
                                );
                            }
                            Some(ast::AlterColumnOption::SetDefault(_)) => {
                                c.raise(Expand);
                                unknown_inverse = Some(
                                    "the previous default is not known; add a down migration"
                                        .into(),
                                );
                            }
                            _ => {
                                c.raise(Expand);
                                unknown_inverse = Some(no_inverse_reason());
                            }
                        }
                    }
                    ast::AlterTableAction::DropColumn(dc) => {
                        let col = text_of(dc.column_name_ref()).unwrap_or_default();
                        c.raise(Contract);
                        c.finding("data-loss", format!("dropping `{table}.{col}` deletes its data"), "run it only after the old version is retired; the pre-release backup is the only way back");
                        unknown_inverse =
                            Some("dropped data can only come back from the backup".into());
                        schema.drop_column(&table, &col);
                    }
                    ast::AlterTableAction::DropConstraint(_) => {
                        c.raise(if is_new { Expand } else { Contract });
                        unknown_inverse = Some("a dropped constraint is not re-created automatically; add a down migration".into());
                    }
                    ast::AlterTableAction::RenameColumn(rc) => {
                        let from = text_of(rc.column_name_ref()).unwrap_or_default();
                        let to = text_of(rc.column_name()).unwrap_or_default();
                        if is_new {
                            c.raise(Expand);
                            inverses
                                .push(format!("ALTER TABLE {table} RENAME COLUMN {to} TO {from};"));
                        } else {
                            c.raise(Breaking);
                            c.finding("breaking-rename-column", format!("renaming `{table}.{from}` to `{to}` breaks the version that still uses `{from}`"), format!("`cutover plan` rewrites it: add `{to}` with a sync trigger (expand), backfill, shift traffic, then drop `{from}` (contract)"));
                            let t = schema.table(&table);
                            let col = t.and_then(|t| t.column(&normalize(&from)));
                            c.rename = Some(ColumnRename {
                                table: table.clone(),
                                from: from.clone(),
                                to: to.clone(),
                                column_type: col.map(|c| c.ty.clone()).filter(|ty| !ty.is_empty()),
                                not_null: col.is_some_and(|c| c.not_null),
                                key: t.and_then(|t| t.primary_key.first().cloned()),
                                key_types: t
                                    .map(|t| {
                                        t.primary_key
                                            .iter()
                                            .map(|k| {
                                                t.column(k)
                                                    .map(|c| c.ty.clone())
                                                    .unwrap_or_default()
                                            })
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                            });
                        }
                        schema.rename_column(&table, &from, &to);
                    }
                    ast::AlterTableAction::TableRenameTo(rt) => {
                        let to = text_of(rt.table_name()).unwrap_or_default();
                        if is_new {
                            c.raise(Expand);
                            inverses.push(format!("ALTER TABLE {to} RENAME TO {table};"));
                        } else {
                            c.raise(Breaking);
                            c.finding("breaking-rename-table", format!("renaming table `{table}` to `{to}` breaks the version that still uses `{table}`"), RECIPE_RENAME_TABLE);
                        }
                        schema.rename_table(&table, &to);
                    }
                    ast::AlterTableAction::SetSchema(_) => {
                        c.raise(if is_new { Expand } else { Breaking });
                        if !is_new {
                            c.finding("breaking-set-schema", format!("moving `{table}` to another schema breaks the version that uses it"), RECIPE_RENAME_TABLE);
                        }
                        unknown_inverse = Some(no_inverse_reason());
                    }
                    ast::AlterTableAction::SetTablespace(_)
                    | ast::AlterTableAction::SetLogged(_)
                    | ast::AlterTableAction::SetUnlogged(_)
                    | ast::AlterTableAction::SetAccessMethod(_) => {
                        c.raise(Expand);
                        if !is_new {
                            c.finding("table-rewrite", format!("this rewrites all of `{table}` under an ACCESS EXCLUSIVE lock"), "schedule it in a maintenance window (a `recreate` release) or use pg_repack");
                        }
                        unknown_inverse = Some(no_inverse_reason());
                    }
                    ast::AlterTableAction::DetachPartition(_) => {
                        c.raise(Contract);
                        unknown_inverse = Some(no_inverse_reason());
                    }
                    ast::AlterTableAction::RenameConstraint(_) => {
                        c.raise(Expand);
                        unknown_inverse = Some(no_inverse_reason());
                    }
                    _ => {
                        c.raise(Expand);
                        unknown_inverse = Some(no_inverse_reason());
                    }
                }
            }
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
        ast::Stmt::CreateTable(ct) => {
            let name = text_of(ct.table_name()).unwrap_or_default();
            let mut columns = Vec::new();
            let mut pk = Vec::new();
            if let Some(args) = ct.table_arg_list() {
                for arg in args.args() {
                    match arg {
                        ast::TableArg::Column(col) => {
                            let cname = normalize(&text_of(col.name()).unwrap_or_default());
                            let ty = text_of(col.ty()).unwrap_or_default();
                            let kinds: Vec<SyntaxKind> =
                                col.syntax().descendants().map(|n| n.kind()).collect();
                            if kinds.contains(&SyntaxKind::PRIMARY_KEY_CONSTRAINT) {
                                pk.push(cname.clone());
                            }
                            let not_null = kinds.contains(&SyntaxKind::NOT_NULL_CONSTRAINT);
                            columns.push(Column {
                                name: cname,
                                ty,
                                not_null,
                            });
                        }
                        ast::TableArg::TableConstraint(tc) => {
                            let tw = words(tc.syntax());
                            if let Some(p) = tw
                                .windows(2)
                                .position(|x| x[0] == "primary" && x[1] == "key")
                            {
                                pk.extend(
                                    tw[p + 2..]
                                        .iter()
                                        .skip_while(|t| *t == "(")
                                        .take_while(|t| *t != ")")
                                        .filter(|t| *t != ",")
                                        .map(|t| normalize(t)),
                                );
                            }
                        }
                        _ => {}
                    }
                }
            }
            schema.create_table(&name, columns, pk, in_release);
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
            let inverse = match name {
                Some(n) => Inverse::Sql(format!(
                    "DROP INDEX {}IF EXISTS {};",
                    if concurrent { "CONCURRENTLY " } else { "" },
                    qualified(&n)
                )),
                None => {
                    Inverse::Unknown("the index has no name; name it so it can be dropped".into())
                }
            };
            let mut c = Class::new(Expand, inverse);
            c.table = Some(normalize(&table));
            c.owner_of = Some(table).filter(|t| !t.is_empty());
            c
        }
        ast::Stmt::DropIndex(_) => Class::new(
            Contract,
            Inverse::Unknown(
                "a dropped index is not re-created automatically; add a down migration".into(),
            ),
        ),
        ast::Stmt::Reindex(_) | ast::Stmt::Vacuum(_) => Class::new(Neutral, Inverse::Noop),
        ast::Stmt::CreateView(_)
        | ast::Stmt::CreateFunction(_)
        | ast::Stmt::CreateProcedure(_)
        | ast::Stmt::CreateTrigger(_)
        | ast::Stmt::CreateRule(_) => {
            let or_replace = has_seq(&w, &["or", "replace"]);
            let mut c = Class::new(Expand, create_inverse(node, &w));
            if or_replace {
                c.inverse = Inverse::Unknown(
                    "CREATE OR REPLACE does not keep the previous definition; add a down migration"
                        .into(),
                );
                c.finding("replaces-object", "CREATE OR REPLACE changes an object the running version may already use".into(), "create it under a new name (expand), move the app to it, drop the old one (contract); or declare the file's phase if both versions work with the new definition");
            }
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
        | ast::Stmt::CreateAggregate(_) => Class::new(Expand, create_inverse(node, &w)),
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
        ast::Stmt::DropTable(_)
        | ast::Stmt::Truncate(_)
        | ast::Stmt::DropSchema(_)
        | ast::Stmt::DropMaterializedView(_) => {
            let mut c = Class::new(
                Contract,
                Inverse::Unknown("dropped data can only come back from the backup".into()),
            );
            let what = summarize(&node.text().to_string());
            c.finding("data-loss", format!("`{what}` deletes data"), "run it only after the old version is retired; the pre-release backup is the only way back");
            if matches!(stmt, ast::Stmt::DropTable(_)) {
                for name in w.iter().skip_while(|t| *t != "table").skip(1).filter(|t| {
                    !matches!(
                        t.as_str(),
                        "if" | "exists" | "," | ";" | "cascade" | "restrict"
                    )
                }) {
                    schema.drop_table(name);
                }
            }
            c
        }
        ast::Stmt::DropView(_)
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
        | ast::Stmt::DropAggregate(_)
        | ast::Stmt::Revoke(_) => Class::new(
            Contract,
            Inverse::Unknown(
                "a dropped object is not re-created automatically; add a down migration".into(),
            ),
        ),
        ast::Stmt::Insert(_)
        | ast::Stmt::Update(_)
        | ast::Stmt::Delete(_)
        | ast::Stmt::Merge(_) => dml::classify_dml(node, schema),
        ast::Stmt::Copy(copy) => dml::classify_copy(copy, schema),
        ast::Stmt::Select(_) | ast::Stmt::CompoundSelect(_) | ast::Stmt::ParenSelect(_) => {
            dml::classify_select(node, schema)
        }
        ast::Stmt::Explain(e) => dml::classify_explain(e, schema, in_release),
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
            c.finding(
                "unclassified-statement",
                "database-level statements are outside a release's schema phases".into(),
                "run them outside cutover, or declare the file's phase with `-- cutover:phase=`",
            );
            c
        }
        _ if w.first().is_some_and(|t| t == "alter") && has_seq(&w, &["rename"]) => {
            let what = w.get(1).cloned().unwrap_or_default();
            if matches!(what.as_str(), "index" | "statistics" | "trigger" | "policy") {
                Class::new(Expand, no_inverse())
            } else {
                let mut c = Class::new(Breaking, no_inverse());
                c.finding(
                    "breaking-rename-object",
                    format!("renaming this {what} breaks the version that still uses the old name"),
                    RECIPE_RENAME_OBJECT,
                );
                c
            }
        }
        ast::Stmt::AlterType(_) if has_seq(&w, &["add", "value"]) => Class::new(
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
            if !has_seq(&w, &["set", "schema"]) =>
        {
            Class::new(Expand, no_inverse())
        }
        _ => {
            let mut c = Class::new(Contract, no_inverse());
            c.finding("unclassified-statement", format!("cutover does not know whether `{}` is safe while the old version runs; it is placed in the contract phase", summarize(&node.text().to_string())), "if it is safe for the old version, declare `-- cutover:phase=expand` at the top of the file");
            c
        }
    }
}

fn no_inverse_reason() -> String {
    "cutover knows no safe inverse for this statement; add a down migration".into()
}

/// `DROP <kind> <name>` for a CREATE statement, where the name can be read.
fn create_inverse(node: &SyntaxNode, w: &[String]) -> Inverse {
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

/// The column of `CHECK (col IS NOT NULL)`, if that is what the constraint is.
fn not_null_check_column(w: &[String]) -> Option<String> {
    let p = w.iter().position(|t| t == "check")?;
    let rest = &w[p + 1..];
    // ( col is not null )
    if rest.len() >= 5 && rest[0] == "(" && rest[2] == "is" && rest[3] == "not" && rest[4] == "null"
    {
        return Some(rest[1].clone());
    }
    None
}
