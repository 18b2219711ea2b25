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

use crate::learn;
mod alter_table;
mod column_type;
mod dml;
mod pipeline;
mod tokens;

use pipeline::*;
pub(crate) use tokens::*;

use crate::lint::{Finding, RuleId, Severity, rule};
use crate::migrations::MigrationFile;
use crate::schema::{Attachment, Schema, normalize};
use crate::source::LineIndex;
use serde::Serialize;
use smol_str::SmolStr;
use squawk_linter::{Linter, Rule, Violation};
use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{Parse, SourceFile, SyntaxKind, SyntaxNode};
use std::collections::{BTreeMap, BTreeSet};

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
    /// First primary-key column of the table, when the migrations declare it, as SQL (quoted
    /// where it needs quotes: `"CustomerNo"`).
    pub key: Option<String>,
    /// The primary key's column types, in key order, when the migrations declare them (empty
    /// for an unknown key; more than one for a composite key).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_types: Vec<String>,
    /// What the migrations attach to the old column that a copy into a new column cannot carry
    /// (its primary key, identity, foreign keys referencing it, views reading it...): the
    /// rewrite refuses such a rename (`rename-rewrite-unsupported`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
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
    /// Rule ids its `-- cutover:ignore` comments name (`plan` applies them to the findings of
    /// the rename rewrite, [`PLAN_IGNORABLE`]).
    #[serde(skip)]
    pub ignores: BTreeSet<String>,
}

/// Findings `plan` adds for a rewritten rename that an ignore comment on the rename may
/// silence (they remind; they do not stop anything).
pub const PLAN_IGNORABLE: &[&str] = &["rename-rewrite-incomplete", "rename-type-unknown"];

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
    // Parsing and squawk's rules need no schema, so worker threads on every core do them, file
    // after file in version order; the classification replays DDL into the schema model, so this
    // thread does it in version order, each file as soon as its parse is ready, while the workers
    // run squawk's rules on it and parse the next files. One large file thus has its rules and
    // its classification run at the same time.
    pipeline(
        &files,
        |file| baseline.is_none_or(|b| file.version > b),
        |file, parse, errors, violations| {
            let applied = baseline.is_some_and(|b| file.version <= b);
            let errors = errors.unwrap_or_else(|| parse_errors(parse));
            let (m, f) = analyze_file(file, parse, errors, violations, &mut schema, !applied, opts);
            if !applied {
                migrations.push(m);
                findings.extend(f);
            }
        },
    );
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
    /// Rule, message, hint, and the line when it is not the statement's own (a statement
    /// inside a DO block).
    findings: Vec<(RuleId, String, String, Option<u32>)>,
    /// Objects the statement drops that the running version may use, by kind and name: a
    /// contract change, unless the same transaction creates them again (a replace).
    drops: Vec<(&'static str, String)>,
    /// Objects the statement creates, by kind and name.
    creates: Vec<(&'static str, String)>,
    /// The phase without the drops in `drops`.
    base: StmtPhase,
    /// The statement's phase needs a `-- cutover:phase=` declaration: cutover cannot see what
    /// it does (its finding is dropped when the file declares one).
    needs_declaration: bool,
    /// Its phase is cutover's safe guess, which a `-- cutover:phase=` declaration may overrule
    /// (a constraint the old version's writes may, but need not, violate).
    declarable: bool,
    /// The contents of the string literals of the statements inside a DO block (for the enum
    /// value check across statements).
    literals: Vec<String>,
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
            drops: Vec::new(),
            creates: Vec::new(),
            base: phase,
            needs_declaration: false,
            declarable: false,
            literals: Vec::new(),
        }
    }

    fn raise(&mut self, phase: StmtPhase) {
        self.phase = self.phase.max(phase);
        self.base = self.base.max(phase);
    }

    /// Drops an object the running version may use: contract, unless the file creates it again.
    fn raise_drop(&mut self, kind: &'static str, name: String) {
        self.phase = self.phase.max(StmtPhase::Contract);
        self.drops.push((kind, name));
    }

    fn finding(&mut self, rule: RuleId, message: String, hint: impl Into<String>) {
        self.findings.push((rule, message, hint.into(), None));
    }

    fn finding_at(&mut self, rule: RuleId, message: String, hint: impl Into<String>, line: u32) {
        self.findings.push((rule, message, hint.into(), Some(line)));
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
    // Dropping or moving what the old version may use: cutover places it in contract, or
    // calls it breaking, or sees a replace (DROP and CREATE of one name in one transaction).
    Rule::BanDropView,
    Rule::BanDropFunction,
    Rule::BanDropType,
    Rule::BanDropDefault,
    Rule::BanDropSchema,
    Rule::BanDropSequence,
    Rule::BanDropDomain,
    Rule::BanDropConstraint,
    Rule::BanDropExtension,
    Rule::RenamingObject,
    Rule::BanSetSchema,
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
/// (PostgreSQL manual: each statement's page says "cannot be executed inside a transaction
/// block".)
fn transactional(stmt: &ast::Stmt) -> bool {
    let read = std::cell::OnceCell::new();
    transactional_with(stmt, || read.get_or_init(|| words(stmt.syntax())))
}

/// [`transactional`], with `w` giving the statement's [`words`] (only the statements whose
/// answer depends on their words ask for them).
fn transactional_with<'a>(stmt: &ast::Stmt, w: impl Fn() -> &'a [SmolStr]) -> bool {
    let concurrently = || has_seq(w(), &["concurrently"]);
    match stmt {
        ast::Stmt::CreateIndex(ci) => ci.concurrently_token().is_none(),
        ast::Stmt::DropIndex(_) => !concurrently(),
        // REINDEX DATABASE and SYSTEM commit per table, like CONCURRENTLY.
        ast::Stmt::Reindex(_) => {
            let w = w();
            !(has_seq(w, &["concurrently"])
                || has_seq(w, &["reindex", "database"])
                || has_seq(w, &["reindex", "system"]))
        }
        // CLUSTER without a table reclusters every table, one transaction each.
        ast::Stmt::Cluster(_) => w().iter().filter(|t| *t != ";" && *t != "verbose").count() > 1,
        ast::Stmt::Discard(_) => !has_seq(w(), &["discard", "all"]),
        ast::Stmt::AlterTable(at) => {
            !at.actions()
                .any(|a| matches!(a, ast::AlterTableAction::DetachPartition(_)))
                || !concurrently()
        }
        ast::Stmt::Vacuum(_)
        | ast::Stmt::CreateDatabase(_)
        | ast::Stmt::DropDatabase(_)
        | ast::Stmt::CreateTablespace(_)
        | ast::Stmt::DropTablespace(_)
        | ast::Stmt::CreateSubscription(_)
        | ast::Stmt::DropSubscription(_)
        | ast::Stmt::AlterSystem(_) => false,
        _ => true,
    }
}

/// Classifies one parsed file's statements and collects its findings; `violations` waits for
/// squawk's findings on it (they are computed meanwhile on another thread).
fn analyze_file(
    file: &MigrationFile,
    parse: &Parse<SourceFile>,
    errors: Vec<(usize, String)>,
    violations: &mut dyn FnMut() -> Vec<Violation>,
    schema: &mut Schema,
    report: bool,
    opts: AnalyzeOptions,
) -> (MigrationAnalysis, Vec<Finding>) {
    let text = file.text.as_str();
    let index = LineIndex::new(text);
    let root = parse.syntax_node();

    // Comments, for ignores and the phase declaration.
    // One pass over the tokens: comments (for ignores and the phase declaration) and where each
    // non-trivia token starts (for placing squawk's violations), both in file order. Everything
    // below looks them up by binary search, so a file is analyzed in time linear in its size.
    let mut comments: Vec<(usize, String)> = Vec::new();
    let mut token_starts: Vec<usize> = Vec::new();
    each_token(&root.green(), |kind, at, text| {
        if kind == SyntaxKind::COMMENT {
            comments.push((at, text.to_string()));
        } else if !kind.is_trivia() {
            token_starts.push(at);
        }
    });
    // Parse errors in offset order (ties in the parser's order); `taken` marks those a
    // statement claimed.
    let mut errors_by_offset: Vec<usize> = (0..errors.len()).collect();
    errors_by_offset.sort_by_key(|&i| errors[i].0);
    let mut taken = vec![false; errors.len()];

    let mut findings: Vec<Finding> = Vec::new();
    let make = |rule_id: &str, line: u32, message: String, hint: String| Finding {
        rule: rule_id.to_string(),
        severity: rule(rule_id).map_or(Severity::Warning, |r| r.severity),
        file: file.display_path.clone(),
        line,
        message,
        hint,
        blocking: false,
    };
    let push =
        |findings: &mut Vec<Finding>, rule_id: &str, line: u32, message: String, hint: String| {
            findings.push(make(rule_id, line, message, hint));
        };

    // The phase declaration, read first: statements cutover cannot see into take it.
    let first_line = parse
        .tree()
        .stmts()
        .next()
        .and_then(|s| first_token_offset(s.syntax()))
        .map(|o| index.line(o));
    let declared = declared_phase(&comments, first_line, &index);
    let declared_ok: Option<Phase> = declared.as_ref().and_then(|(d, _)| d.clone().ok());

    let mut statements = Vec::new();
    // Where each statement is, for mapping squawk's violations to it.
    struct Span {
        start: usize,
        end: usize,
        /// The table it works on was created by this release (or file): nobody waits on its locks.
        table_new: bool,
        /// Rule ids its ignore comments name, with the comment's line.
        ignores: BTreeMap<String, u32>,
    }
    /// What the file-level checks need of each statement.
    struct Extra {
        drops: Vec<(&'static str, String)>,
        creates: Vec<(&'static str, String)>,
        base: StmtPhase,
        tx: TxControl,
        /// Its string literals, as written (`'x'`).
        literals: Vec<String>,
        /// `ALTER TYPE t ADD VALUE 'v'`: the type's key and the literal.
        enum_add: Option<(String, String)>,
    }
    let mut spans: Vec<Span> = Vec::new();
    let mut extras: Vec<Extra> = Vec::new();
    // Findings before ignore comments apply, with the statement (span) they belong to.
    let mut pending: Vec<(Option<usize>, Finding)> = Vec::new();
    let source_lines: Vec<&str> = text.split('\n').collect();
    let mut attached_comments: BTreeSet<usize> = BTreeSet::new();
    let mut prev_end = 0usize;
    for stmt in parse.tree().stmts() {
        let node = stmt.syntax();
        let range = node.text_range();
        let (start, end) = (usize::from(range.start()), usize::from(range.end()));
        // One walk over the statement's tokens: where it starts, its words, its literals.
        let green = node.green();
        let (first, w, literal_tokens) = {
            let mut first = None;
            let mut w = Vec::new();
            let mut literal_tokens = Vec::new();
            each_token(&green, |kind, at, text| {
                if kind.is_trivia() {
                    return;
                }
                first.get_or_insert(at);
                w.push(word(text));
                if is_literal(kind) {
                    literal_tokens.push((kind, text));
                }
            });
            (first.map_or(start, |at| start + at), w, literal_tokens)
        };
        let line = index.line(first);
        let sql = text[first..end].trim().to_string();
        // An ignore comment belongs to the statement on its own line (written after it) or to
        // the next statement (written on the lines above it), never to one further on.
        let prev_line = (prev_end > 0).then(|| index.line(prev_end.saturating_sub(1)));
        let end_line = index.line(end.saturating_sub(1));
        // Written above it, the comment must be in the block of comment lines right above the
        // statement: a blank line or other text between them ends its reach.
        let attached = |at: usize| {
            let from = index.line(at) as usize;
            (from + 1..line as usize).all(|l| {
                let t = source_lines.get(l - 1).map_or("", |t| t.trim());
                t.starts_with("--")
                    || t.starts_with("/*")
                    || t.starts_with('*')
                    || t.ends_with("*/")
            })
        };
        let own_from = comments.partition_point(|(at, _)| *at < prev_end);
        let own_to = comments
            .partition_point(|(at, _)| *at < first)
            .max(own_from);
        let own: Vec<(usize, String)> = comments[own_from..own_to]
            .iter()
            .filter(|(at, _)| Some(index.line(*at)) != prev_line && attached(*at))
            .cloned()
            .collect();
        let trailing_from = comments.partition_point(|(at, _)| *at < end);
        let trailing: Vec<(usize, String)> = comments[trailing_from..]
            .iter()
            .take_while(|(at, _)| index.line(*at) == end_line)
            .cloned()
            .collect();
        attached_comments.extend(own.iter().chain(&trailing).map(|(at, _)| *at));
        let mut ignores = ignores_between(&own, prev_end, first, &index);
        ignores.extend(ignores_between(&trailing, end, usize::MAX, &index));
        // An error in the gap before a statement (text the parser skipped, like a misspelled
        // keyword) belongs to it: whatever it parsed after the garbage is not what was meant.
        let gap_start = spans.last().map_or(0, |s| s.end);
        let owned_to = end.max(start + 1);
        let from = errors_by_offset.partition_point(|&i| errors[i].0 < gap_start);
        let to = errors_by_offset.partition_point(|&i| errors[i].0 < owned_to);
        let mut owned: Vec<usize> = errors_by_offset[from..to.max(from)]
            .iter()
            .copied()
            .filter(|&i| !taken[i])
            .collect();
        // In the parser's order, as it reported them.
        owned.sort_unstable();
        let stmt_errors: Vec<String> = owned
            .iter()
            .map(|&i| {
                taken[i] = true;
                errors[i].1.clone()
            })
            .collect();
        let w: &[SmolStr] = &w;
        let mut class = if stmt_errors.is_empty() {
            let mut c = match &stmt {
                ast::Stmt::Do(d) => classify_do(d, schema, &index, report),
                _ => classify(&stmt, w, schema, true),
            };
            c.transactional = transactional_with(&stmt, || w);
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
            c.finding(RuleId::UnparseableStatement, format!("the SQL parser cannot read this statement: {}{more}", stmt_errors[0]), "fix the syntax (check it with `psql`), or split the statement; cutover will not guess what an unreadable statement does");
            c
        };
        // What cutover cannot see into takes the file's declared phase, and needs one.
        if (class.needs_declaration || class.declarable)
            && let Some(d) = declared_ok
        {
            class.phase = match d {
                Phase::Contract => StmtPhase::Contract,
                _ => StmtPhase::Expand,
            };
            class.base = class.phase;
            class.findings.retain(|(r, ..)| {
                !matches!(
                    *r,
                    RuleId::UnclassifiedStatement
                        | RuleId::UnreadableDoBlock
                        | RuleId::ConstraintRejectsOldWrites
                )
            });
        }
        let span = spans.len();
        for (rule_id, message, hint, at) in &class.findings {
            pending.push((
                Some(span),
                make(
                    rule_id.as_str(),
                    at.unwrap_or(line),
                    message.clone(),
                    hint.clone(),
                ),
            ));
        }
        let tx = match &stmt {
            ast::Stmt::Begin(_) => TxControl::Begin,
            ast::Stmt::Commit(_) if !w.iter().any(|x| x == "prepared") => TxControl::Commit,
            ast::Stmt::Commit(_) => TxControl::Other,
            ast::Stmt::Rollback(_) if w.iter().any(|x| x == "to") => TxControl::None,
            ast::Stmt::Rollback(_) => TxControl::Other,
            _ if has_seq(w, &["prepare", "transaction"]) => TxControl::Other,
            _ => TxControl::None,
        };
        let literals: Vec<String> = if matches!(stmt, ast::Stmt::Do(_)) {
            std::mem::take(&mut class.literals)
        } else {
            literal_values(literal_tokens)
        };
        let enum_add = match &stmt {
            ast::Stmt::AlterType(_) if has_seq(w, &["add", "value"]) => {
                // ADD VALUE 'v' [BEFORE | AFTER 'w']: the first literal is the new value.
                name_after(node, "type", &[])
                    .and_then(|ty| Some((normalize(&ty), literals.first()?.clone())))
            }
            _ => None,
        };
        prev_end = end;
        spans.push(Span {
            start,
            end,
            table_new: class.table.as_deref().is_some_and(|t| schema.is_new(t)),
            ignores,
        });
        extras.push(Extra {
            drops: std::mem::take(&mut class.drops),
            creates: std::mem::take(&mut class.creates),
            base: class.base,
            tx,
            literals,
            enum_add,
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
            ignores: spans
                .last()
                .map(|s| s.ignores.keys().cloned().collect())
                .unwrap_or_default(),
        });
    }
    // The tables a file of this release created stay new for the next files; elsewhere (an
    // applied file, `lint`) they are live from now on.
    schema.end_file(report && opts.release);

    // Transaction control. A file wrapped in its own BEGIN ... COMMIT (golang-migrate's and
    // pop's habit) is one transaction as cutover runs it anyway: the wrapper is left out, so
    // the file and its history row commit together. Any other BEGIN, COMMIT or ROLLBACK would
    // commit or abort part of the file: the run could not be recorded or undone as one.
    let control: Vec<usize> = (0..extras.len())
        .filter(|&i| extras[i].tx != TxControl::None)
        .collect();
    let wrapper = match control.as_slice() {
        [b, c] => {
            extras[*b].tx == TxControl::Begin
                && extras[*c].tx == TxControl::Commit
                && *c == statements.len() - 1
                && statements[..*b]
                    .iter()
                    .all(|s| s.phase == StmtPhase::Neutral)
        }
        _ => false,
    };
    let mut wrapper_spans: Vec<(usize, usize)> = Vec::new();
    if wrapper {
        for &i in control.iter().rev() {
            wrapper_spans.push((spans[i].start, spans[i].end));
            pending.push((
                None,
                make("transaction-wrapper", statements[i].line, format!("`{}` is left out: cutover runs the file in one transaction of its own and records it in refinery's history in that same transaction", statements[i].summary), "nothing to do; the file runs exactly once, all or nothing".into()),
            ));
            statements.remove(i);
            spans.remove(i);
            extras.remove(i);
            for (s, _) in pending.iter_mut() {
                *s = match *s {
                    Some(x) if x == i => None,
                    Some(x) if x > i => Some(x - 1),
                    other => other,
                };
            }
        }
    } else {
        for &i in &control {
            pending.push((Some(i), make("transaction-control-in-migration", statements[i].line, format!("`{}` ends or opens a transaction inside the migration: what ran before it would commit (or roll back) on its own, so a failure after it leaves the file half applied while the run reports it undone", statements[i].summary), "remove it: cutover runs each file in one transaction; split the file into several migrations where parts must commit separately".into())));
        }
    }
    let transactional = statements.iter().all(|s| s.transactional);
    // Renames `plan` rewrites: their ignore comments may name the rewrite's findings.
    let rename_spans: BTreeSet<usize> = (0..statements.len())
        .filter(|&i| statements[i].rename.is_some())
        .collect();

    // An enum value added in a transaction cannot be used before it commits (PostgreSQL
    // manual, ALTER TYPE, Notes: "unsafe use of new value"), unless the type itself was
    // created in the same transaction.
    if transactional {
        let mut added: Vec<(String, String, u32)> = Vec::new();
        let mut created_types: BTreeSet<String> = BTreeSet::new();
        for (i, e) in extras.iter().enumerate() {
            for (v, literal, at) in &added {
                if e.literals.contains(literal)
                    && e.enum_add.as_ref().is_none_or(|(_, l)| l != literal)
                {
                    pending.push((Some(i), make("enum-value-in-same-transaction", statements[i].line, format!("the enum value '{literal}' added to `{v}` on line {at} is used here, in the same transaction: PostgreSQL refuses it (unsafe use of new value) until the transaction that added it commits"), "move the `ALTER TYPE ... ADD VALUE` into a migration of its own, before this one (cutover commits each migration separately)".into())));
                    break;
                }
            }
            if let Some((ty, literal)) = &e.enum_add
                && !created_types.contains(ty)
            {
                added.push((ty.clone(), literal.clone(), statements[i].line));
            }
            created_types.extend(
                e.creates
                    .iter()
                    .filter(|(k, _)| *k == "type")
                    .map(|(_, n)| n.clone()),
            );
        }
    }

    // One transaction is one unit: dropping an object and creating it again under the same
    // name is a replace, which the running version sees as one change.
    if transactional {
        // Where each object is created, in statement order.
        let mut created_at: std::collections::HashMap<&(&'static str, String), Vec<usize>> =
            std::collections::HashMap::new();
        for (j, e) in extras.iter().enumerate() {
            for c in &e.creates {
                created_at.entry(c).or_default().push(j);
            }
        }
        for i in 0..extras.len() {
            if extras[i].drops.is_empty() {
                continue;
            }
            // Each dropped object must be created again later in the file; the replace takes
            // the phase of what re-creates it (a unique index in place of a plain one is judged
            // as the unique index).
            let recreating: Option<Vec<usize>> = extras[i]
                .drops
                .iter()
                .map(|d| {
                    created_at
                        .get(d)
                        .and_then(|at| at.iter().copied().find(|&j| j > i))
                })
                .collect();
            let Some(recreating) = recreating else {
                continue;
            };
            let net = recreating
                .iter()
                .map(|&j| statements[j].phase)
                .fold(StmtPhase::Expand, StmtPhase::max);
            statements[i].phase = extras[i].base.max(net);
            for (kind, name) in extras[i]
                .drops
                .iter()
                .filter(|(k, _)| replace_is_visible(k))
            {
                pending.push((Some(i), make("replaces-object", statements[i].line, format!("this migration drops and re-creates the {kind} `{name}` in one transaction: the running version sees the new definition from the moment it commits"), "make sure the old version works with the new definition (a view that only gains columns does); otherwise create it under a new name (expand) and drop the old one in a contract migration".into())));
            }
        }
    }
    // Errors outside any statement: text the parser did not even start a statement for. Each
    // line gets one unparseable statement, placed after the statements that start on or before
    // its line, merged in one pass.
    let mut unparseable_lines: BTreeSet<u32> = statements
        .iter()
        .filter(|s| s.phase == StmtPhase::Unparseable)
        .map(|s| s.line)
        .collect();
    let mut orphans: Vec<StatementAnalysis> = Vec::new();
    for (i, (at, message)) in errors.iter().enumerate() {
        if taken[i] {
            continue;
        }
        let line = index.line(*at);
        if !unparseable_lines.insert(line) {
            continue;
        }
        pending.push((None, make("unparseable-statement", line, format!("the SQL parser cannot read this statement: {message}"), "fix the syntax (check it with `psql`); cutover will not guess what an unreadable statement does".into())));
        let rest = text[*at..].lines().next().unwrap_or("").trim().to_string();
        orphans.push(StatementAnalysis {
            line,
            phase: StmtPhase::Unparseable,
            summary: summarize(&rest),
            transactional: true,
            sql: rest,
            inverse: Inverse::Unknown("the statement could not be read".into()),
            rename: None,
            owner_of: None,
            ignores: BTreeSet::new(),
        });
    }
    if !orphans.is_empty() {
        orphans.sort_by_key(|s| s.line);
        let mut merged = Vec::with_capacity(statements.len() + orphans.len());
        let mut orphans = orphans.into_iter().peekable();
        for s in statements {
            while let Some(o) = orphans.next_if(|o| o.line < s.line) {
                merged.push(o);
            }
            merged.push(s);
        }
        merged.extend(orphans);
        statements = merged;
    }

    // squawk's lock-hazard rules.
    let violations = violations();
    if report {
        for v in violations {
            let at = usize::from(v.text_range.start());
            let id = v.code.to_string();
            if wrapper_spans.iter().any(|(s, e)| at >= *s && at < *e) {
                continue;
            }
            // Statements are in file order and do not overlap.
            let span = Some(spans.partition_point(|s| s.end <= at))
                .filter(|&i| spans.get(i).is_some_and(|s| s.start <= at));
            if let Some(s) = span.map(|i| &spans[i])
                && SQUAWK_LOCK_RULES.contains(&id.as_str())
                && s.table_new
            {
                continue;
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
            // With its wrapper left out, the file no longer nests transactions.
            if wrapper
                && matches!(
                    v.code,
                    Rule::TransactionNesting | Rule::BanConcurrentIndexCreationInTransaction
                )
            {
                continue;
            }
            let hint = v
                .help
                .clone()
                .unwrap_or_else(|| rule(&id).map_or(String::new(), |r| r.summary.to_string()));
            pending.push((
                span,
                make(
                    &id,
                    index.line(first_offset_at(&token_starts, at)),
                    v.message.clone(),
                    hint,
                ),
            ));
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
                pending.push((None, make("concurrently-in-transaction", s.line, format!("`{}` cannot run inside a transaction, but this migration has {others} other statement(s) that would share its run", s.summary), "move it into a migration file of its own; cutover runs such a file statement by statement outside a transaction".into())));
            }
        }
    }

    // Ignore comments: each silences the rules it names on its own statement, and one that
    // silences nothing is reported (a typo, or a rule that no longer fires).
    let mut used: BTreeSet<(usize, String)> = BTreeSet::new();
    for (span, f) in pending {
        if let Some(i) = span
            && f.rule != "unparseable-statement"
            && spans[i].ignores.contains_key(&f.rule)
        {
            used.insert((i, f.rule));
            continue;
        }
        findings.push(f);
    }
    if report {
        for (at, comment) in &comments {
            if comment.contains("cutover:ignore") && !attached_comments.contains(at) {
                push(&mut findings, "unused-ignore", index.line(*at), "this ignore comment silences nothing: it is neither on a statement's line nor in the comment lines right above one".into(), "move it onto the line of the statement it is for, or right above it (no blank line between)".into());
            }
        }
        for (i, s) in spans.iter().enumerate() {
            for (id, at) in &s.ignores {
                if used.contains(&(i, id.clone()))
                    || (rename_spans.contains(&i) && PLAN_IGNORABLE.contains(&id.as_str()))
                {
                    continue;
                }
                let why = if id == "unparseable-statement" {
                    "an unreadable statement cannot be ignored".to_string()
                } else if rule(id).is_none() {
                    format!("there is no rule `{id}` (`cutover lint --list-rules` lists them)")
                } else {
                    format!("`{id}` reports nothing on this statement")
                };
                push(&mut findings, "unused-ignore", *at, format!("this ignore comment silences nothing: {why}"), "remove it, or fix the rule id; an ignore applies to the statement on its own line or on the next line".into());
            }
        }
    }

    let mut phase = migration_phase(&statements);
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
                let unclassified: BTreeSet<u32> = findings
                    .iter()
                    .filter(|f| f.rule == "unclassified-statement")
                    .map(|f| f.line)
                    .collect();
                let contradicted: Vec<&StatementAnalysis> = statements
                    .iter()
                    .filter(|s| match d {
                        Phase::Expand => {
                            matches!(s.phase, StmtPhase::Contract | StmtPhase::Breaking)
                                && !unclassified.contains(&s.line)
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

/// Rule ids named by `-- cutover:ignore a, b` comments between two offsets, with the line of
/// the comment naming each.
fn ignores_between(
    comments: &[(usize, String)],
    from: usize,
    to: usize,
    index: &LineIndex,
) -> BTreeMap<String, u32> {
    comments
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .filter_map(|(at, text)| Some((index.line(*at), text.split("cutover:ignore").nth(1)?)))
        .flat_map(|(line, rest)| ignored_ids(rest).map(move |id| (canonical_rule_id(id), line)))
        .collect()
}

/// The rule ids of an ignore comment's text after `cutover:ignore`: `a, b` or `a b`, up to a
/// colon, after which comes the reason (`-- cutover:ignore data-loss: emptied on purpose`), or
/// up to the first word that cannot be an id.
fn ignored_ids(rest: &str) -> impl Iterator<Item = &str> {
    let mut done = false;
    rest.split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map_while(move |word| {
            if done {
                return None;
            }
            let id = match word.split_once(':') {
                Some((id, _)) => {
                    done = true;
                    id
                }
                None => word,
            };
            (!id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .then_some(id)
        })
}

/// A rule id as findings carry it: squawk's aliases (`prefer-timestamptz`) become the id squawk
/// reports (`prefer-timestamp-tz`); cutover's own ids stay as written.
fn canonical_rule_id(id: &str) -> String {
    use std::str::FromStr;
    squawk_linter::Rule::from_str(id).map_or_else(|_| id.to_string(), |r| r.to_string())
}

const RECIPE_ALTER_TYPE: &str = "change a type in phases: add a column of the new type with a trigger keeping both in sync (expand), backfill it, move the app to it, drop the old column (contract); or run it in a `recreate` release";
const RECIPE_SET_NOT_NULL: &str = "the old version may still write NULL: enforce it in a contract migration (after that version is retired) as ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT c, then SET NOT NULL, which skips the scan; NOT VALID alone does not make it safe earlier: it skips only the rows already there";
const RECIPE_CONSTRAINT_NEW_COLUMN: &str = "add the constraint in a contract migration (it runs after the old version is retired), or give the column a DEFAULT the constraint accepts so the old version's inserts pass; NOT VALID does not help: it skips only the rows already there";
const RECIPE_CONSTRAINT_OLD_WRITES: &str = "nothing to do if it may wait until the old version is retired; if the new version needs it earlier (ON CONFLICT on a unique key) and the old version never writes rows it rejects, declare `-- cutover:phase=expand` at the top of the file";
const RECIPE_REQUIRED_COLUMN: &str = "add the column nullable or with a constant DEFAULT (expand), backfill it, then enforce NOT NULL with a validated CHECK";
const RECIPE_RENAME_TABLE: &str = "rename the table and create a view with the old name in the same migration (the old version keeps working through the view), then drop the view in a contract migration";
const RECIPE_RENAME_OBJECT: &str = "create the object under its new name beside the old one (expand), move the app to it, drop the old one (contract)";

/// Classifies `stmt`, whose [`words`] are `w`, then teaches the schema model what it did.
fn classify(stmt: &ast::Stmt, w: &[SmolStr], schema: &mut Schema, in_release: bool) -> Class {
    let c = classify_before_learning(stmt, w, schema, in_release);
    // Views, indexes and DROP TABLE teach the schema model afterwards: their classification
    // asks what the schema held before them (was the dropped table or index new?).
    learn::statement(schema, stmt);
    c
}

fn classify_before_learning(
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

/// A `DO` block. PostgreSQL runs its body at once, so cutover classifies the plain SQL
/// statements in it (squawk parses PL/pgSQL): the usual idioms guard them with `IF NOT EXISTS
/// (...) THEN ... END IF` or an `EXCEPTION WHEN duplate_object THEN NULL` handler, and the
/// guards only decide whether they run. A body cutover cannot read (variables, loops, dynamic
/// EXECUTE, PERFORM, COMMIT) is an error until the file declares its phase.
fn classify_do(d: &ast::Do, schema: &mut Schema, index: &LineIndex, lint: bool) -> Class {
    let unreadable = |why: String| {
        let mut c = Class::new(
            StmtPhase::Contract,
            Inverse::Unknown("cutover cannot read the DO block".into()),
        );
        c.needs_declaration = true;
        c.finding(RuleId::UnreadableDoBlock, format!("cutover cannot see what this DO block does: {why}"), "declare the file's phase with `-- cutover:phase=expand` (safe while the old version runs) or `-- cutover:phase=contract` at the top of the file; or write the statements as plain SQL");
        c
    };
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
        // The block is one transaction too: an enum value it adds cannot be used in it.
        let literals = literal_contents(node);
        if let Some((value, at)) = added_values.iter().find(|(v, _)| literals.contains(v)) {
            c.finding_at(RuleId::EnumValueInSameTransaction,
                format!("the enum value '{value}' added on line {at} is used here, in the same transaction: PostgreSQL refuses it (unsafe use of new value) until the transaction that added it commits"),
                "move the `ALTER TYPE ... ADD VALUE` into a migration of its own, before this one",
                line,
            );
        }
        if matches!(stmt, ast::Stmt::AlterType(_)) && has_seq(&words(node), &["add", "value"]) {
            added_values.extend(literals.iter().map(|v| (v.clone(), line)));
        }
        c.literals.extend(literals);
        c.table = c.table.take().or(ic.table.take());
        c.drops.append(&mut ic.drops);
        c.creates.append(&mut ic.creates);
        c.owner_of = c.owner_of.take().or(ic.owner_of.take());
        c.needs_declaration |= ic.needs_declaration;
        if !transactional(stmt) {
            c.finding_at(RuleId::ConcurrentlyInTransaction,
                format!("`{}` cannot run inside a DO block: PostgreSQL runs the block as one function call, inside a transaction", summarize(&node.text().to_string())),
                "write it as a plain statement in a migration file of its own; cutover runs such a file outside a transaction",
                line,
            );
        }
        // `plan` rewrites a plain RENAME COLUMN into phases; inside a block it would run as
        // written, before traffic moves.
        if let Some(r) = ic.rename.take() {
            ic.findings
                .retain(|(rule, ..)| *rule != RuleId::BreakingRenameColumn);
            c.finding_at(RuleId::BreakingDoBlock,
                format!("the DO block renames `{}.{}` to `{}`, which breaks the version that still uses the old name, and cutover rewrites a rename into phases only as a plain statement", r.table, r.from, r.to),
                "write the RENAME COLUMN as a plain statement (cutover rewrites it: add, sync, backfill, drop), or run the block in a `recreate` release",
                line,
            );
        }
        for (rule, message, hint, _) in ic.findings {
            c.findings.push((rule, message, hint, Some(line)));
        }
        // squawk's lock-hazard rules, on the statement alone.
        if lint {
            let sql = node.text().to_string();
            let parse = SourceFile::parse(&sql);
            let mut linter = Linter::with_rules(&[], SQUAWK_REPLACED);
            linter.settings.assume_in_transaction = true;
            for v in linter.lint(&parse, &sql) {
                if SQUAWK_LOCK_RULES.contains(&v.code.to_string().as_str())
                    && ic
                        .table
                        .as_deref()
                        .or(c.table.as_deref())
                        .is_some_and(|t| schema.is_new(t))
                {
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
                c.findings
                    .push((squawk_rule, v.message.clone(), hint, Some(line)));
            }
        }
    }
    if let (Some(e), Some(k)) = (first_expand, first_contract) {
        c.finding_at(RuleId::MixedPhaseMigration,
            format!("this DO block mixes expand (line {e}) and contract (line {k}) statements: the whole block runs at one time"),
            "split it into two blocks in two migrations: the expand one runs before traffic moves, the contract one after the old version is retired",
            k,
        );
    }
    // The guards make the block's effect depend on what the database holds: undoing it
    // blindly could drop what was there before.
    c.inverse = Inverse::Unknown(
        "a DO block's effect depends on its conditions; add a down migration".into(),
    );
    c
}

/// Collects the plain SQL statements of a PL/pgSQL body, or says what cutover cannot read.
fn plain_statements(node: &SyntaxNode, out: &mut Vec<ast::Stmt>) -> Result<(), String> {
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
                return Err("it declares variables, so its statements depend on values computed at run time".into());
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

/// A statement's effect on the transaction it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxControl {
    /// None (SAVEPOINT and ROLLBACK TO SAVEPOINT included: they stay inside it).
    None,
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / END.
    Commit,
    /// ROLLBACK, ABORT, PREPARE TRANSACTION, COMMIT PREPARED: never part of a migration.
    Other,
}

/// Whether a new constraint can reject what the running (old) version writes.
enum Rejects {
    /// It cannot: the table is new, or its columns are new to this release and the old
    /// version's NULLs (or their defaults) pass it.
    No,
    /// It can: it checks columns the old version writes.
    May,
    /// It rejects every insert of the old version (after the first, for a unique key): the
    /// column is new to this release and the old version leaves it NULL, or writes its constant
    /// default. Column and why.
    Will(String),
}

/// What a constraint (ADD CONSTRAINT, or CREATE UNIQUE INDEX) on an existing `table` rejects.
/// `node` is the constraint (or index) and `w` its words.
fn constraint_rejects(schema: &Schema, table: &str, node: &SyntaxNode, w: &[SmolStr]) -> Rejects {
    // The identifiers that can be columns: not a function name (followed by `(`), a type after
    // `::`, or the name of the constraint, index or table; a foreign key constrains its own
    // columns, not the referenced ones.
    let toks: Vec<_> = node
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .filter(|t| !t.kind().is_trivia())
        .take_while(|t| !t.text().eq_ignore_ascii_case("references"))
        .collect();
    let mut candidates: Vec<String> = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if t.kind() != SyntaxKind::IDENT {
            continue;
        }
        let prev = i.checked_sub(1).map(|p| toks[p].text().to_lowercase());
        let next = toks.get(i + 1).map(|n| n.text().to_string());
        if next.as_deref() == Some("(")
            || next.as_deref() == Some(".")
            || matches!(
                prev.as_deref(),
                Some("::" | "constraint" | "index" | "on" | "exists" | ".")
            )
        {
            continue;
        }
        candidates.push(normalize(t.text()));
    }
    let known = schema.table(table);
    let columns: Vec<String> = match known {
        Some(t) => candidates
            .into_iter()
            .filter(|c| t.column(c).is_some() || schema.new_column(table, c).is_some())
            .collect(),
        None => candidates,
    };
    if columns.is_empty() {
        return Rejects::May;
    }
    let new: Vec<(String, Option<String>)> = columns
        .iter()
        .filter_map(|c| {
            schema
                .new_column_default(table, c)
                .map(|d| (c.clone(), d.map(str::to_string)))
        })
        .collect();
    if new.len() < columns.len() {
        return Rejects::May;
    }
    let is_check = w.iter().any(|x| x == "check");
    let is_fk = w.iter().any(|x| x == "references");
    let is_unique = w.iter().any(|x| x == "unique") || has_seq(w, &["primary", "key"]);
    let requires_value = has_seq(w, &["primary", "key"])
        || has_seq(w, &["nulls", "not", "distinct"])
        || (is_check && null_rejecting(w));
    for (col, default) in &new {
        match default {
            None if requires_value => {
                return Rejects::Will(format!(
                    "it does not know `{table}.{col}` and leaves it NULL"
                ));
            }
            None => {}
            // Every insert of the old version writes the default: a CHECK or a foreign key may
            // reject it, and a unique key takes one constant value once.
            Some(_) if is_check || is_fk => return Rejects::May,
            Some(d) if is_unique && !d.contains('(') => {
                return Rejects::Will(format!(
                    "each of its inserts writes the default `{d}` into `{table}.{col}`, and the second one collides"
                ));
            }
            Some(_) => {}
        }
    }
    Rejects::No
}

/// Whether a CHECK expression tests for NULL, so a NULL the old version leaves can fail it
/// (a plain comparison is NULL for a NULL column, and a CHECK passes on NULL; PostgreSQL
/// manual, 5.4.1 Check Constraints).
fn null_rejecting(w: &[SmolStr]) -> bool {
    has_seq(w, &["is", "not", "null"])
        || has_seq(w, &["is", "null"])
        || has_seq(w, &["is", "distinct"])
        || has_seq(w, &["is", "not", "distinct"])
        || has_seq(w, &["is", "true"])
        || has_seq(w, &["is", "false"])
        || has_seq(w, &["is", "not", "unknown"])
        || w.iter().any(|t| {
            matches!(
                t.as_str(),
                "coalesce" | "num_nonnulls" | "num_nulls" | "notnull" | "isnull"
            )
        })
}

/// `lock_timeout` or `statement_timeout` when `w` (a SET statement's words) sets it to 0.
fn disabled_timeout(w: &[SmolStr]) -> Option<String> {
    let name = w
        .iter()
        .take(3)
        .find(|t| matches!(t.as_str(), "lock_timeout" | "statement_timeout"))?;
    let value = w.iter().rev().find(|t| *t != ";")?;
    matches!(value.as_str(), "0" | "'0'" | "'0s'" | "'0ms'").then(|| name.to_string())
}

/// The pseudo constraint name under which a deferred `CHECK (col IS NOT NULL)` is remembered.
fn not_null_key(col: &str) -> String {
    format!("{} is not null", normalize(col))
}

/// Names a DROP statement drops.
struct Dropped {
    /// Names as written, in order.
    names: Vec<String>,
    /// The table after ON (DROP TRIGGER / POLICY / RULE).
    on: Option<String>,
    /// CASCADE was given.
    cascade: bool,
}

/// The names of `DROP <kind> [CONCURRENTLY] [IF EXISTS] a, b(args) [ON t] [CASCADE]`, where the
/// kind is `kind_words` words long.
fn dropped_names(node: &SyntaxNode, kind_words: usize) -> Dropped {
    let toks = tokens(node);
    let mut out = Dropped {
        names: Vec::new(),
        on: None,
        cascade: false,
    };
    let mut i = 1 + kind_words;
    while i < toks.len()
        && matches!(
            toks[i].to_lowercase().as_str(),
            "concurrently" | "if" | "exists"
        )
    {
        i += 1;
    }
    let mut current = String::new();
    let mut depth = 0;
    while i < toks.len() {
        let t = &toks[i];
        let lower = t.to_lowercase();
        if depth > 0 {
            match t.as_str() {
                "(" => depth += 1,
                ")" => depth -= 1,
                _ => {}
            }
        } else if t == "(" {
            depth = 1;
        } else if t == "," || t == ";" {
            if !current.is_empty() {
                out.names.push(std::mem::take(&mut current));
            }
        } else if lower == "on" {
            if !current.is_empty() {
                out.names.push(std::mem::take(&mut current));
            }
            let mut table = String::new();
            for t in &toks[i + 1..] {
                if t == "." || table.ends_with('.') || table.is_empty() {
                    table.push_str(t);
                } else {
                    break;
                }
            }
            out.on = Some(table);
        } else if lower == "cascade" {
            out.cascade = true;
        } else if lower == "restrict" {
        } else if out.on.is_none() {
            current.push_str(t);
        }
        i += 1;
    }
    if !current.is_empty() {
        out.names.push(current);
    }
    out
}

/// The tables of `TRUNCATE [TABLE] [ONLY] a, b [RESTART IDENTITY] [CASCADE]`.
fn truncated_names(node: &SyntaxNode) -> Dropped {
    let mut d = dropped_names(node, 0);
    d.names = d
        .names
        .into_iter()
        .map(|n| {
            let l = n.to_lowercase();
            let n = if l.starts_with("table") && n.len() > 5 && !n[5..].starts_with('.') {
                n[5..].to_string()
            } else {
                n
            };
            if n.to_lowercase().starts_with("only") && n.len() > 4 && !n[4..].starts_with('.') {
                n[4..].to_string()
            } else {
                n
            }
        })
        .map(|n| {
            let l = n.to_lowercase();
            for tail in ["restartidentity", "continueidentity"] {
                if l.ends_with(tail) {
                    return n[..n.len() - tail.len()].to_string();
                }
            }
            n
        })
        .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case("table"))
        .collect();
    d
}

/// The kind of object a DROP or CREATE keyword names, as cutover tracks it (`None` for kinds it
/// does not).
fn object_kind(word: &str, materialized: bool) -> Option<&'static str> {
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
fn object_key(name: &str, on: Option<&str>) -> String {
    match on {
        Some(table) => format!("{}@{}", normalize(name), normalize(table)),
        None => normalize(name),
    }
}

/// The object a CREATE statement makes, by kind and key.
fn created_object(node: &SyntaxNode, w: &[SmolStr]) -> Option<(&'static str, String)> {
    let p = w.iter().position(|t| object_kind(t, false).is_some())?;
    let materialized = p > 0 && w[p - 1] == "materialized";
    let kind = object_kind(&w[p], materialized)?;
    let name = name_after(node, &w[p], &["if", "not", "exists"])?;
    let on = matches!(kind, "trigger" | "rule" | "policy")
        .then(|| name_after(node, "on", &[]))
        .flatten();
    Some((kind, object_key(&name, on.as_deref())))
}

/// Kinds whose replacement changes what the running version sees (a definition it uses).
fn replace_is_visible(kind: &str) -> bool {
    matches!(
        kind,
        "view" | "materialized view" | "function" | "procedure" | "trigger" | "rule" | "policy"
    )
}

fn no_inverse_reason() -> String {
    "cutover knows no safe inverse for this statement; add a down migration".into()
}

/// `DROP <kind> <name>` for a CREATE statement, where the name can be read.
fn create_inverse(node: &SyntaxNode, w: &[SmolStr]) -> Inverse {
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

/// The column of `CHECK (col IS NOT NULL)`, as written (quotes kept), if that is what the
/// constraint is.
fn not_null_check_column(node: &SyntaxNode) -> Option<String> {
    let toks = tokens(node);
    let p = toks.iter().position(|t| t.eq_ignore_ascii_case("check"))?;
    let rest = &toks[p + 1..];
    // ( col is not null )
    let is = |i: usize, word: &str| rest.get(i).is_some_and(|t| t.eq_ignore_ascii_case(word));
    // Exactly that: `CHECK (email IS NOT NULL OR status = 'guest')` proves nothing.
    (rest.first().is_some_and(|t| t == "(")
        && is(2, "is")
        && is(3, "not")
        && is(4, "null")
        && rest.get(5).is_some_and(|t| t == ")"))
    .then(|| rest[1].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `-- cutover:ignore a, b: reason`: the ids end at the colon, the reason is not read as ids.
    #[test]
    fn ignore_comments_take_a_reason_after_a_colon() {
        fn ids(rest: &str) -> Vec<&str> {
            ignored_ids(rest).collect()
        }
        assert_eq!(ids(" data-loss: emptied on purpose"), ["data-loss"]);
        assert_eq!(
            ids(" data-loss, unbatched-dml: small table"),
            ["data-loss", "unbatched-dml"]
        );
        assert_eq!(ids(" data-loss:emptied"), ["data-loss"]);
        assert_eq!(
            ids(" data-loss unbatched-dml"),
            ["data-loss", "unbatched-dml"]
        );
        assert_eq!(ids(" data-loss (emptied)"), ["data-loss"]);
        assert!(ids(": no id").is_empty());
        let files = [
            MigrationFile::from_bytes(
                "V1__t.sql",
                "V1__t.sql",
                b"CREATE TABLE t (id bigint PRIMARY KEY, a text);",
            )
            .unwrap(),
            MigrationFile::from_bytes(
                "V2__drop.sql",
                "V2__drop.sql",
                b"-- cutover:ignore data-loss: nothing reads it\nALTER TABLE t DROP COLUMN a;\n",
            )
            .unwrap(),
        ];
        let a = analyze(&files, Some(1), AnalyzeOptions { release: true });
        let rules: Vec<&str> = a.findings.iter().map(|f| f.rule.as_str()).collect();
        assert!(rules.is_empty(), "{rules:?}");
    }

    /// Every squawk rule cutover runs is in the registry, so `lint --list-rules` lists exactly
    /// what `lint` can emit, with a severity and a summary.
    #[test]
    fn every_squawk_rule_that_runs_is_listed() {
        let linter = Linter::with_rules(&[], SQUAWK_REPLACED);
        let mut missing: Vec<String> = linter
            .rules
            .iter()
            .map(|r| r.to_string())
            .filter(|id| rule(id).is_none())
            .collect();
        missing.sort();
        assert!(
            missing.is_empty(),
            "squawk rules that run but are not listed: {missing:?}"
        );
    }
}
