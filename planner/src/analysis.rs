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
mod classify;
mod column_type;
mod comments;
mod constraint;
mod create;
mod dml;
mod do_block;
mod drop;
mod file;
pub(crate) mod function;
mod pipeline;
mod sequence;
mod tokens;

use classify::*;
use comments::*;
use constraint::*;
use create::*;
use do_block::*;
use drop::*;
use file::*;
use pipeline::*;
pub(crate) use tokens::*;

use crate::lint::{Finding, RuleId, Severity, rule};
use crate::migrations::MigrationFile;
use crate::schema::{Attachment, Schema, normalize};
use crate::source::LineIndex;
use schemars::JsonSchema;
use serde::Serialize;
use smol_str::SmolStr;
use squawk_linter::{Linter, Rule, Violation};
use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{Parse, SourceFile, SyntaxKind, SyntaxNode};
use std::collections::{BTreeMap, BTreeSet};

/// When a statement is safe to run, relative to the two app versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
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
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    JsonSchema,
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
    /// The old column's collation when the migrations declare one other than its type's
    /// default (`COLLATE "C"`), as [`crate::schema::normalize_collation`] spells it: the new
    /// column gets it too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
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
    /// Set when the new column has another type than the old one: an `ALTER COLUMN ... TYPE`
    /// rewritten into a shadow column (`to` is then the shadow's name), or one composed with a
    /// rename of the same column in the same migration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion: Option<Conversion>,
    /// The plain indexes the migrations declare on the old column, built again on the new one
    /// (see [`crate::rewrite`]'s `index` module).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<CarriedIndex>,
}

/// An index on a renamed or retyped column (plain; for a rename also unique, or a UNIQUE
/// constraint's), built again on the new column at the end of the backfill (`CREATE INDEX
/// CONCURRENTLY`) and given the old index's name (or made the constraint again) at contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CarriedIndex {
    /// The old index's name, unqualified, as SQL (quoted where it needs quotes).
    pub name: String,
    /// The new index's name, in the old one's schema (qualified unless in `public`).
    pub new_name: String,
    /// The `CREATE [UNIQUE] INDEX CONCURRENTLY` of the new index.
    pub create_sql: String,
    /// The old index is a UNIQUE constraint's: contract makes the new one the constraint
    /// (`ADD CONSTRAINT name UNIQUE USING INDEX`).
    pub constraint: bool,
}

/// How the values of a column whose type changes are carried between the old and the new
/// column while both app versions run (see [`crate::rewrite`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conversion {
    /// The new type as written, with its `COLLATE` clause when the statement names one.
    pub new_type: String,
    /// The `USING` expression as written (it names the old column): the old value converted to
    /// the new type. `None`: PostgreSQL's conversion without USING, an assignment cast
    /// (manual: ALTER TABLE, `SET DATA TYPE`).
    pub using: Option<String>,
    /// `using` is the column itself or its cast to the new type (`USING col::t`, Django's
    /// habit): the way back is then a cast too, and no `-- cutover:down` is needed.
    pub plain_cast: bool,
    /// The way back for the old version's reads, from `-- cutover:down <expr>` (the expression
    /// names the column, meaning its value in the new type). `None`: a cast back to the old
    /// type, which is right only when `using` is `None` or a [`Conversion::plain_cast`].
    pub down: Option<String>,
    /// A change of type that keeps the column's name: the new column is a shadow renamed to the
    /// old name at contract, and the new version reads and writes it through an updatable view
    /// of the table in a schema of its own ([`crate::rewrite::version_schema`]). `false` when a
    /// rename of the same column gives the new column its own name.
    pub swap: bool,
    /// The new column's default when the statement sets it beside the type (`ALTER COLUMN c
    /// DROP DEFAULT, ALTER COLUMN c TYPE t USING ..., ALTER COLUMN c SET DEFAULT 'x'`, the enum
    /// idiom): `Some(None)` dropped, `Some(Some(expr))` set. `None`: the old column's default
    /// carries over, converted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_default: Option<Option<String>>,
    /// Line of the `ALTER COLUMN ... TYPE` statement.
    pub line: u32,
}

/// An `ALTER TABLE ... RENAME TO` of a table the running version uses: `plan` rewrites it
/// into the rename and a view of the old name for the old version (expand), and the view's
/// drop (contract).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRename {
    /// The table as written (maybe schema-qualified).
    pub from: String,
    /// The new name as written (never qualified: the table stays in its schema).
    pub to: String,
}

/// A column made NOT NULL on a table the running version writes (`SET NOT NULL`, or `ADD
/// COLUMN ... NOT NULL` without a default), with the value for its NULL rows from a
/// `-- cutover:up <expr>` comment: `plan` fills them (a trigger for the old version's writes, a
/// backfill for the rows there) and enforces NOT NULL at contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fill {
    /// Table as written.
    pub table: String,
    /// Column as written.
    pub column: String,
    /// The value of a NULL row, an expression that may name the table's columns.
    pub expr: String,
    /// For `ADD COLUMN`: the statement adding it without `NOT NULL` (expand runs it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add: Option<String>,
    /// First primary-key column, when the migrations declare it.
    pub key: Option<String>,
    /// The primary key's declared types (see [`ColumnRename::key_types`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_types: Vec<String>,
    /// The migrations declare the table.
    pub declared: bool,
}

/// One statement of a migration.
#[derive(Debug, Clone, Serialize, JsonSchema)]
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
    /// Set for a RENAME TO of an existing table.
    #[serde(skip)]
    pub table_rename: Option<TableRename>,
    /// Set for a NOT NULL the old version's writes could break, given `-- cutover:up`.
    #[serde(skip)]
    pub fill: Option<Fill>,
    /// (table, column), normalized, of a type change PostgreSQL makes in place, which runs as
    /// written: it fails on a column a rewrite's trigger or view uses.
    #[serde(skip)]
    pub retyped: Option<(String, String)>,
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
pub const PLAN_IGNORABLE: &[&str] = &[
    "rename-rewrite-incomplete",
    "rename-type-unknown",
    "type-change-rewrite-incomplete",
];

/// One migration file, analyzed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
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

    /// Whether `plan` splits the migration into generated expand and contract parts: it holds
    /// a column rename or type change, or a table rename.
    pub fn split(&self) -> bool {
        self.statements
            .iter()
            .any(|s| s.rename.is_some() || s.table_rename.is_some() || s.fill.is_some())
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
        // REINDEX SCHEMA, DATABASE and SYSTEM commit per table, like CONCURRENTLY (manual,
        // REINDEX: "cannot be executed inside a transaction block"); options in parentheses
        // (`REINDEX (VERBOSE) SCHEMA`) may come before the kind.
        ast::Stmt::Reindex(_) => {
            let w = w();
            let kind = reindex_kind(w);
            !(has_seq(w, &["concurrently"])
                || matches!(kind, Some("schema" | "database" | "system")))
        }
        // CLUSTER without a table reclusters every table, one transaction each.
        ast::Stmt::Cluster(_) => w().iter().filter(|t| *t != ";" && *t != "verbose").count() > 1,
        ast::Stmt::Discard(_) => !has_seq(w(), &["discard", "all"]),
        ast::Stmt::AlterTable(at) => {
            !at.actions()
                .any(|a| matches!(a, ast::AlterTableAction::DetachPartition(_)))
                || !concurrently()
        }
        // ALTER DATABASE ... SET TABLESPACE moves every table (manual, ALTER DATABASE).
        ast::Stmt::AlterDatabase(_) => !has_seq(w(), &["set", "tablespace"]),
        // REFRESH PUBLICATION, and SET/ADD/DROP PUBLICATION (which refresh unless told
        // `refresh = false`), cannot (manual, ALTER SUBSCRIPTION).
        ast::Stmt::AlterSubscription(_) => {
            let w = w();
            let no_refresh =
                has_seq(w, &["refresh", "=", "false"]) || has_seq(w, &["refresh", "false"]);
            let publication = w.iter().any(|x| x == "publication");
            let refresh = has_seq(w, &["refresh", "publication"]);
            !refresh && (no_refresh || !publication)
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

/// The kind word of a REINDEX (`index`, `table`, `schema`, `database`, `system`), after any
/// options in parentheses.
fn reindex_kind(w: &[SmolStr]) -> Option<&str> {
    let mut depth = 0usize;
    for x in w.iter().skip_while(|x| *x != "reindex").skip(1) {
        match x.as_str() {
            "(" => depth += 1,
            ")" => depth = depth.saturating_sub(1),
            k if depth == 0 => return Some(k),
            _ => {}
        }
    }
    None
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
