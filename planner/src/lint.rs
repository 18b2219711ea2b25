//! Findings: [`Finding`], [`Severity`] and the registry of rule ids ([`RULES`]).
//!
//! Lock-hazard rules come from `squawk-linter` (see [`crate::analysis`] for why); cutover adds the
//! rules that need to know about phases and releases: unparseable statements, breaking changes,
//! data loss, CONCURRENTLY inside a transactional migration, phase declarations. Rule ids are
//! stable: they appear in JSON output, in `-- cutover:ignore <rule>` comments and in CI configs.
//! Each rule is documented in [`RULES_DOC`], under a heading that is its id; every finding links
//! there ([`doc_link`]).

use crate::error::Diagnostic;
use crate::source::Location;
use serde::ser::{Serialize, Serializer};
use std::fmt;

/// Where the rules are documented: one section per rule, whose heading is the rule id, so that
/// `docs/rules.md#<rule id>` links to it (GitHub derives the anchor from the heading).
///
/// It is a path relative to the repository root, not a URL: the project has no published
/// documentation yet (the workspace's `repository` is a placeholder). Once it has, this can
/// become the page's full URL, which also works from a pull-request comment, where a relative
/// path does not resolve.
pub const RULES_DOC: &str = "docs/rules.md";

/// The documentation of rule `id`: `docs/rules.md#<id>`.
pub fn doc_link(id: &str) -> String {
    format!("{RULES_DOC}#{id}")
}

/// How bad a finding is. `error` findings make `plan` and `lint` exit with code 2.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never fails a build.
    Info,
    /// Probably fine in a phased release, but a reviewer should look.
    Warning,
    /// Would lock, break or lose data in production.
    Error,
}

impl Severity {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding of the analysis. Serialized with its rule's [`doc_link`] as `doc`.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Stable rule id, e.g. `require-concurrent-index-creation`.
    pub rule: String,
    /// How bad it is.
    pub severity: Severity,
    /// Migration file (as displayed).
    pub file: String,
    /// 1-based line of the statement.
    pub line: u32,
    /// 1-based column (in characters) of the statement's first token on `line`, when known.
    /// Carried into error diagnostics; not part of `findings[]` in the JSON documents.
    pub column: Option<u32>,
    /// One sentence: what is wrong.
    pub message: String,
    /// One line: how to fix it.
    pub hint: String,
    /// Whether this finding stops a plan from being built (the statement cannot be placed in a
    /// phase). Not serialized: it is implied by the rule.
    pub blocking: bool,
}

impl Finding {
    /// As a diagnostic, for error output.
    pub fn to_diagnostic(&self) -> Diagnostic {
        Diagnostic {
            location: match self.column {
                Some(c) => Location::at(self.file.clone(), self.line, c),
                None => Location::line(self.file.clone(), self.line),
            },
            message: format!("{} [{}]: {}", self.severity, self.rule, self.message),
            hint: Some(self.hint.clone()),
            doc: Some(self.doc()),
            finding: Some(Box::new(crate::error::FindingRef {
                rule: self.rule.clone(),
                severity: self.severity,
            })),
        }
    }

    /// Where its rule is documented ([`doc_link`]).
    pub fn doc(&self) -> String {
        doc_link(&self.rule)
    }
}

impl Serialize for Finding {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        FindingDoc::of(self).serialize(serializer)
    }
}

impl schemars::JsonSchema for Finding {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Finding".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <FindingDoc as schemars::JsonSchema>::json_schema(generator)
    }
}

/// A [`Finding`] as JSON output shows it: without `blocking` (implied by the rule), with `doc`.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[schemars(description = "One finding of the analysis.")]
struct FindingDoc<'a> {
    /// Stable rule id (`cutover lint --list-rules`), e.g. `require-concurrent-index-creation`.
    rule: &'a str,
    /// How bad it is.
    severity: Severity,
    /// Migration file (as displayed).
    file: &'a str,
    /// 1-based line of the statement.
    line: u32,
    /// One sentence: what is wrong.
    message: &'a str,
    /// One line: how to fix it.
    hint: &'a str,
    /// Where the rule is documented, with a bad and a good example: `docs/rules.md#<rule>`.
    doc: String,
}

impl<'a> FindingDoc<'a> {
    fn of(f: &'a Finding) -> Self {
        FindingDoc {
            rule: &f.rule,
            severity: f.severity,
            file: &f.file,
            line: f.line,
            message: &f.message,
            hint: &f.hint,
            doc: f.doc(),
        }
    }
}

/// Description of a rule, for `cutover lint --list-rules` and the docs.
#[derive(Debug, Clone, Copy, serde::Serialize, schemars::JsonSchema)]
pub struct RuleInfo {
    /// Stable id.
    pub id: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// `cutover` or `squawk`.
    pub source: &'static str,
    /// What it catches.
    pub summary: &'static str,
    /// Where it is documented: [`doc_link`] of the id.
    pub doc: &'static str,
}

macro_rules! rules {
    ($($variant:ident = $id:literal, $sev:ident, $src:literal, $sum:literal;)*) => {
        /// Every rule cutover reports, with its default severity, in [`RuleId`] order.
        pub const RULES: &[RuleInfo] = &[$(RuleInfo {
            id: $id,
            severity: Severity::$sev,
            source: $src,
            summary: $sum,
            doc: concat!("docs/rules.md#", $id),
        }),*];

        /// A rule cutover knows (its own and the squawk rules it reports), by name: what the
        /// planner matches on instead of comparing id strings. [`RuleId::as_str`] is the stable
        /// id users see and write in ignore comments.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RuleId {
            $(
                #[doc = $sum]
                $variant,
            )*
        }

        impl RuleId {
            /// The stable id (`breaking-set-not-null`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(RuleId::$variant => $id,)*
                }
            }

            /// The rule with this id, if cutover knows it.
            pub fn from_id(id: &str) -> Option<RuleId> {
                match id {
                    $($id => Some(RuleId::$variant),)*
                    _ => None,
                }
            }

            /// Its entry in [`RULES`].
            pub fn info(self) -> &'static RuleInfo {
                &RULES[self as usize]
            }
        }
    };
}

rules! {
    UnparseableStatement = "unparseable-statement", Error, "cutover", "A statement the SQL \
        parser cannot read; it cannot be classified, so the migration cannot be placed in a \
        phase.";
    EmptyMigration = "empty-migration", Info, "cutover", "A placeholder migration (empty, \
        comments only, or only SET and SELECTs that change nothing): legal in refinery, diesel \
        and pop; applied and recorded like any other, changing no schema.";
    PhaseDeclarationMismatch = "phase-declaration-mismatch", Error, "cutover", "A `-- \
        cutover:phase=` declaration that the statements contradict, or one after the first \
        statement, which cutover does not read.";
    MixedPhaseMigration = "mixed-phase-migration", Error, "cutover", "One migration holds both \
        expand and contract statements; they must run at different times.";
    BreakingRenameColumn = "breaking-rename-column", Warning, "cutover", "RENAME COLUMN breaks \
        the version that still uses the old name; `plan` rewrites it into \
        expand/backfill/contract.";
    BreakingRenameTable = "breaking-rename-table", Warning, "cutover", "RENAME TABLE breaks the \
        version that still uses the old name; `plan` rewrites it: the rename and a view of the \
        old name (expand), the view dropped (contract).";
    BreakingRenameObject = "breaking-rename-object", Error, "cutover", "Renaming a view, \
        sequence, type, function or schema breaks the running version.";
    BreakingAlterColumnType = "breaking-alter-column-type", Warning, "cutover", "ALTER COLUMN \
        TYPE that PostgreSQL does not make in place (narrowing, a real conversion, arrays, \
        USING, a collation change, or an old type the migrations do not declare) rewrites the \
        table under an exclusive lock or changes what the running version reads.";
    ConcurrentIndexOnPartitionedTable = "concurrent-index-on-partitioned-table", Error,
        "cutover", "CREATE INDEX CONCURRENTLY on a partitioned table: PostgreSQL refuses it; \
        index ON ONLY the parent, each partition concurrently, then attach them.";
    ColumnTypeUsedByView = "column-type-used-by-view", Error, "cutover", "ALTER COLUMN TYPE on \
        a column a view or materialized view reads: PostgreSQL refuses it (\"cannot alter type \
        of a column used by a view or rule\"), even for a widening.";
    AlterColumnTypeNoRewrite = "alter-column-type-no-rewrite", Warning, "cutover", "ALTER \
        COLUMN TYPE that PostgreSQL makes without a rewrite (varchar(n) to a longer varchar or \
        text, more numeric precision, ...): expand, but it still takes an ACCESS EXCLUSIVE lock \
        briefly and invalidates the running version's prepared statements that return the \
        column.";
    BreakingSetNotNull = "breaking-set-not-null", Error, "cutover", "SET NOT NULL on an \
        existing column scans the table under an exclusive lock and fails the old version's \
        NULL writes.";
    BreakingAddRequiredColumn = "breaking-add-required-column", Error, "cutover", "ADD COLUMN \
        ... NOT NULL without a default makes the old version's inserts fail.";
    BreakingSetSchema = "breaking-set-schema", Error, "cutover", "SET SCHEMA moves a table away \
        from the running version.";
    DataLoss = "data-loss", Warning, "cutover", "The statement deletes data (DROP TABLE/COLUMN, \
        TRUNCATE, DELETE without WHERE); it is a pivot: only a backup restore undoes it.";
    ConcurrentlyInTransaction = "concurrently-in-transaction", Error, "cutover", "CREATE/DROP \
        INDEX CONCURRENTLY (or another statement that cannot run in a transaction) shares its \
        migration with statements that need one.";
    UnbatchedDml = "unbatched-dml", Warning, "cutover", "UPDATE or DELETE of a whole existing \
        table in one transaction holds row locks for the whole run.";
    TableRewrite = "table-rewrite", Warning, "cutover", "The statement rewrites the whole table \
        under an ACCESS EXCLUSIVE lock.";
    ReplacesObject = "replaces-object", Warning, "cutover", "CREATE OR REPLACE changes an \
        object the running version already uses.";
    ViewDropsColumns = "view-drops-columns", Warning, "cutover", "A view dropped and created \
        again without some of its columns: the running version may read them, so the migration \
        runs after it is retired (contract).";
    BreakingViewColumns = "breaking-view-columns", Error, "cutover", "A view dropped and \
        created again with other columns (some gone, some new): the old version reads the old \
        ones, the new version the new ones, and one view cannot serve both.";
    BreakingViewColumnType = "breaking-view-column-type", Error, "cutover", "A view (or \
        materialized view) created again with a column of another type (an explicit cast, a \
        column whose type the model knows): the old version reads the old type.";
    ViewColumnChanged = "view-column-changed", Warning, "cutover", "A view created again with \
        another expression for a column, whose type cutover cannot tell: it may have changed \
        under the running version.";
    ViewColumnsReordered = "view-columns-reordered", Warning, "cutover", "A view created again \
        with its columns in another order: readers by position (`SELECT *` into a row type or \
        tuple) get them mixed up.";
    BreakingUnpopulatedMatview = "breaking-unpopulated-matview", Error, "cutover", "A \
        materialized view the running version reads is left unpopulated (created again or \
        refreshed `WITH NO DATA`, no REFRESH after it in the same transaction): its reads fail.";
    UnclassifiedStatement = "unclassified-statement", Error, "cutover", "cutover does not know \
        whether the statement is safe while the old version runs; the file must declare its \
        phase (`-- cutover:phase=`).";
    UnreadableDoBlock = "unreadable-do-block", Error, "cutover", "A DO block whose body cutover \
        cannot read (variables, loops, dynamic EXECUTE, function calls); the file must declare \
        its phase. Plain statements inside a DO block, guarded by IF or EXCEPTION, are \
        classified like any other.";
    BreakingDoBlock = "breaking-do-block", Error, "cutover", "A DO block holds a breaking \
        statement that cutover rewrites into phases only as a plain statement (RENAME COLUMN); \
        inside the block it would run as written.";
    BreakingAddConstraint = "breaking-add-constraint", Error, "cutover", "A constraint that \
        rejects every insert of the running version (a NULL check on a column it does not know, \
        which it leaves NULL); NOT VALID does not help.";
    ConstraintRejectsOldWrites = "constraint-rejects-old-writes", Warning, "cutover", "A CHECK, \
        FOREIGN KEY, UNIQUE or PRIMARY KEY constraint (or unique index) on columns the running \
        version writes can reject its writes; it is placed in the contract phase.";
    InheritChangesOldReads = "inherit-changes-old-reads", Warning, "cutover", "ALTER TABLE \
        ... INHERIT (or NO INHERIT) a table the running version uses: its reads, updates and \
        deletes of the parent start (or stop) reaching the child's rows; placed in contract.";
    BreakingFunctionOverload = "breaking-function-overload", Error, "cutover", "CREATE FUNCTION \
        of a new overload whose parameters, defaults counted, also take the calls of an existing \
        function of that name: PostgreSQL refuses those calls as ambiguous.";
    BreakingFunctionSignature = "breaking-function-signature", Error, "cutover", "A function \
        the running version calls is created again (DROP and CREATE, or CREATE OR REPLACE, \
        which PostgreSQL refuses) returning another type or other columns.";
    FunctionOverload = "function-overload", Warning, "cutover", "CREATE FUNCTION of a new \
        overload of a function the running version may call: its calls with inexact argument \
        types may resolve to the new one.";
    SequenceMoved = "sequence-moved", Error, "cutover", "setval, RESTART, a MAXVALUE, MINVALUE \
        or CYCLE, a narrower AS type or a negative INCREMENT on a sequence or identity the \
        running version inserts with: it may move behind keys already issued or cap it; the file \
        must declare its phase.";
    BanDropNotNull = "ban-drop-not-null", Warning, "cutover", "DROP NOT NULL lets the new \
        version write NULLs the old version may not expect when it reads them (squawk's id; \
        cutover's own check, silent for columns the release adds).";
    TransactionWrapper = "transaction-wrapper", Info, "cutover", "The file's own BEGIN ... \
        COMMIT is left out: cutover runs each file in one transaction and records it in the \
        same one.";
    TransactionControlInMigration = "transaction-control-in-migration", Error, "cutover", "BEGIN, \
        COMMIT or ROLLBACK inside a migration would commit or abort part of it: the run could \
        no longer be recorded or undone as one.";
    EnumValueInSameTransaction = "enum-value-in-same-transaction", Error, "cutover", "An enum \
        value added by ALTER TYPE ... ADD VALUE is used in the same transaction; PostgreSQL \
        refuses it until the transaction commits.";
    TimeoutDisabled = "timeout-disabled", Warning, "cutover", "`SET lock_timeout = 0` or `SET \
        statement_timeout = 0` (pg_dump's header) switches off the timeouts the executor sets \
        around every statement.";
    UnusedIgnore = "unused-ignore", Warning, "cutover", "A `-- cutover:ignore` comment that \
        silences nothing: a typo, an unknown rule, or a rule that no longer fires on that \
        statement.";
    RenameRewriteIncomplete = "rename-rewrite-incomplete", Warning, "cutover", "The rename \
        rewrite copies the column's values, not its indexes, constraints or defaults.";
    RenameTypeUnknown = "rename-type-unknown", Info, "cutover", "The renamed column's type is \
        not in the migrations; the expand step copies it from the live catalog.";
    RenameRewriteUnsupported = "rename-rewrite-unsupported", Error, "cutover", "The renamed \
        column is a primary key, an identity, generated or serial column, or is referenced by a \
        foreign key, read by a view or a function's body (a trigger's function included), or \
        part of a partition key: the rename rewrite (add, copy, drop) cannot carry that, \
        so `plan` stops; rename it in a `recreate` release, or keep the name.";
    TypeChangeRewriteUnsupported = "type-change-rewrite-unsupported", Error, "cutover", "The \
        column whose type changes is a primary key, an identity, generated or serial column, in \
        a UNIQUE constraint or unique index, has or is referenced by a foreign key, is read by a \
        view or a function's body, or its table is partitioned: the type-change rewrite (a new \
        column, synced, swapped in at contract) cannot carry that, so `plan` stops.";
    NotNullFillUnsupported = "not-null-fill-unsupported", Error, "cutover", "A NOT NULL \
        filled by `-- cutover:up` on a column another rewrite of the release renames, changes \
        or fills, or whose value names such a column: the triggers would see each other's work \
        half done.";
    TypeChangeNeedsDown = "type-change-needs-down", Error, "cutover", "A type change with a \
        USING expression needs the way back for the old version while both run: `-- \
        cutover:down <expr>` on the statement.";
    TypeChangeRewriteIncomplete = "type-change-rewrite-incomplete", Warning, "cutover", "The \
        type-change rewrite carries the column's values, NOT NULL and default, not its plain \
        indexes or CHECK constraints: they go with the old column at contract.";
    BackfillKeyUnsupported = "backfill-key-unsupported", Error, "cutover", "The rename's \
        backfill walks an integer primary key; the table's key is not one (uuid, text, \
        composite).";
    RecreateRunsAsIs = "recreate-runs-as-is", Info, "cutover", "A breaking statement runs \
        unchanged because the recreate strategy stops the old version first.";
    IndexBuiltConcurrently = "index-built-concurrently", Info, "cutover", "A plain CREATE \
        INDEX or DROP INDEX, or an ADD UNIQUE / PRIMARY KEY, in a migration of its own runs \
        with a concurrent index build outside a transaction, rewritten by `plan` so the running \
        version is not blocked.";
    ConstraintValidatedSeparately = "constraint-validated-separately", Info, "cutover", "A CHECK \
        or FOREIGN KEY added without NOT VALID, in a migration of its own, runs as ADD ... NOT \
        VALID and then VALIDATE CONSTRAINT in its own transaction, rewritten by `plan` so the \
        scan does not block the running version.";
    NotNullViaCheck = "not-null-via-check", Info, "cutover", "A SET NOT NULL on a column the \
        running version may leave NULL, alone in its migration, runs after that version is \
        retired, through a validated CHECK so that SET NOT NULL skips its scan.";
    RequireConcurrentIndexCreation = "require-concurrent-index-creation", Error, "squawk", "CREATE \
        INDEX without CONCURRENTLY blocks writes while it builds.";
    RequireConcurrentIndexDeletion = "require-concurrent-index-deletion", Warning, "squawk", "DROP \
        INDEX without CONCURRENTLY blocks reads and writes.";
    RequireConcurrentReindex = "require-concurrent-reindex", Warning, "squawk", "REINDEX \
        without CONCURRENTLY blocks writes.";
    RequireConcurrentPartitionDetach = "require-concurrent-partition-detach", Warning, "squawk", "DETACH \
        PARTITION without CONCURRENTLY takes an exclusive lock.";
    ConstraintMissingNotValid = "constraint-missing-not-valid", Error, "squawk", "Adding a \
        CHECK or FOREIGN KEY constraint without NOT VALID scans the table under a lock.";
    AddingForeignKeyConstraint = "adding-foreign-key-constraint", Error, "squawk", "A foreign \
        key added without NOT VALID locks both tables while it validates.";
    AddingFieldWithDefault = "adding-field-with-default", Error, "squawk", "ADD COLUMN with a \
        volatile default rewrites the table.";
    AddingSerialPrimaryKeyField = "adding-serial-primary-key-field", Error, "squawk", "Adding a \
        primary key builds an index under an exclusive lock.";
    DisallowedUniqueConstraint = "disallowed-unique-constraint", Error, "squawk", "ADD \
        CONSTRAINT UNIQUE builds its index under an exclusive lock; build it CONCURRENTLY first.";
    BanConcurrentIndexCreationInTransaction = "ban-concurrent-index-creation-in-transaction", Error, "squawk",
        "CONCURRENTLY inside an explicit transaction fails at run time.";
    BanUncommittedTransaction = "ban-uncommitted-transaction", Error, "squawk", "A BEGIN \
        without COMMIT.";
    TransactionNesting = "transaction-nesting", Warning, "squawk", "BEGIN/COMMIT inside a \
        migration that already runs in a transaction.";
    BanDropDatabase = "ban-drop-database", Error, "squawk", "DROP DATABASE in a migration.";
    BanTruncateCascade = "ban-truncate-cascade", Warning, "squawk", "TRUNCATE ... CASCADE \
        empties other tables too.";
    BanDuplicateColumnAssignments = "ban-duplicate-column-assignments", Error, "squawk", "The \
        same column is assigned twice.";
    IdentifierTooLong = "identifier-too-long", Error, "squawk", "PostgreSQL silently truncates \
        identifiers longer than 63 bytes.";
    RequireLockTimeout = "require-lock-timeout", Warning, "squawk", "No lock_timeout: a blocked \
        DDL statement queues every query behind it. Not reported by `plan`: the executor sets \
        the database's `lock_timeout` around every statement.";
    RequireStatementTimeout = "require-statement-timeout", Warning, "squawk", "No \
        statement_timeout. Not reported by `plan`: the executor sets the database's \
        `statement_timeout`.";
    BanCreateDomainWithConstraint = "ban-create-domain-with-constraint", Warning, "squawk", "Domain \
        constraints cannot be added safely later.";
    BanAlterDomainWithAddConstraint = "ban-alter-domain-with-add-constraint", Warning, "squawk", "ALTER \
        DOMAIN ADD CONSTRAINT validates every column using the domain.";
    PreferRobustStmts = "prefer-robust-stmts", Info, "squawk", "IF [NOT] EXISTS lets a \
        half-done migration be retried.";
    PreferBigintOverInt = "prefer-bigint-over-int", Info, "squawk", "int primary keys run out.";
    PreferBigintOverSmallint = "prefer-bigint-over-smallint", Info, "squawk", "smallint columns \
        run out.";
    PreferIdentity = "prefer-identity", Info, "squawk", "Prefer identity columns to serial.";
    PreferTextField = "prefer-text-field", Info, "squawk", "varchar(n) limits need a rewrite to \
        change.";
    PreferTimestampTz = "prefer-timestamp-tz", Info, "squawk", "timestamp without time zone \
        loses the offset.";
    BanCharField = "ban-char-field", Info, "squawk", "char(n) pads values.";
    RequireEnumValueOrdering = "require-enum-value-ordering", Info, "squawk", "New enum values \
        should say where they go.";
    PreferRepack = "prefer-repack", Info, "squawk", "VACUUM FULL / CLUSTER lock the table; \
        pg_repack does not.";
    BanDropGeneratedExpression = "ban-drop-generated-expression", Warning, "squawk", "DROP \
        EXPRESSION turns a generated column into a plain one: the new version may write values \
        the old version expects computed.";
    BanAlterIdentity = "ban-alter-identity", Warning, "squawk", "Changing a column's identity \
        may break inserts of the running version.";
}

impl RuleId {
    /// A statement that breaks the version still running, as written: `plan` refuses it in an
    /// online release unless cutover rewrites it (only RENAME COLUMN today).
    pub fn is_breaking(self) -> bool {
        use RuleId::*;
        matches!(
            self,
            BreakingRenameColumn
                | BreakingRenameTable
                | BreakingRenameObject
                | BreakingAlterColumnType
                | BreakingSetNotNull
                | BreakingAddRequiredColumn
                | BreakingSetSchema
                | BreakingDoBlock
                | BreakingAddConstraint
                | BreakingFunctionOverload
                | BreakingFunctionSignature
                | BreakingViewColumns
                | BreakingViewColumnType
                | BreakingUnpopulatedMatview
        )
    }
}

/// Looks a rule up by id.
pub fn rule(id: &str) -> Option<&'static RuleInfo> {
    // A hash lookup: it runs once or twice per finding.
    static BY_ID: std::sync::OnceLock<std::collections::HashMap<&'static str, &'static RuleInfo>> =
        std::sync::OnceLock::new();
    BY_ID
        .get_or_init(|| RULES.iter().rev().map(|r| (r.id, r)).collect())
        .get(id)
        .copied()
}

/// Counts of findings per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Counts {
    /// `error` findings.
    pub error: usize,
    /// `warning` findings.
    pub warning: usize,
    /// `info` findings.
    pub info: usize,
}

impl Counts {
    /// Counts `findings`.
    pub fn of(findings: &[Finding]) -> Self {
        let mut c = Counts::default();
        for f in findings {
            match f.severity {
                Severity::Error => c.error += 1,
                Severity::Warning => c.warning += 1,
                Severity::Info => c.info += 1,
            }
        }
        c
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} error(s), {} warning(s), {} info",
            self.error, self.warning, self.info
        )
    }
}

#[cfg(test)]
mod rules_doc;

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// Every rule id names its own `RuleId`, and `info()` finds its own entry (the enum and the
    /// table are generated in the same order).
    #[test]
    fn rule_ids_round_trip_and_index_the_table() {
        for info in RULES {
            let id = RuleId::from_id(info.id).expect("every listed rule has a RuleId");
            assert_eq!(id.as_str(), info.id);
            assert_eq!(id.info().id, info.id);
        }
        assert_eq!(RuleId::from_id("no-such-rule"), None);
    }

    /// `is_breaking` names exactly the rules whose id says so: a new `breaking-` rule must be
    /// added there, or `plan` would let it through an online release.
    #[test]
    fn breaking_rules_are_the_breaking_ids() {
        for info in RULES {
            let id = RuleId::from_id(info.id).unwrap();
            assert_eq!(
                id.is_breaking(),
                info.id.starts_with("breaking-"),
                "{}",
                info.id
            );
        }
    }

    /// The link every rule carries is the one findings compute, and one a heading can give.
    #[test]
    fn each_rule_links_to_its_section_of_the_rules_doc() {
        for r in RULES {
            assert_eq!(r.doc, doc_link(r.id), "{}", r.id);
            assert!(
                r.id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "`{}` is not its own GitHub anchor",
                r.id
            );
        }
        let ids: std::collections::BTreeSet<&str> = RULES.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), RULES.len(), "a rule id is listed twice");
    }

    /// JSON findings carry the link as `doc`, after the fields they always had.
    #[test]
    fn a_serialized_finding_links_to_its_rule() {
        let f = Finding {
            rule: "data-loss".into(),
            severity: Severity::Warning,
            file: "V2__x.sql".into(),
            line: 3,
            column: None,
            message: "m".into(),
            hint: "h".into(),
            blocking: true,
        };
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            concat!(
                r#"{"rule":"data-loss","severity":"warning","file":"V2__x.sql","line":3,"#,
                r#""message":"m","hint":"h","doc":"docs/rules.md#data-loss"}"#
            )
        );
    }

    /// Every squawk rule listed is listed under the id squawk reports it with (its `Display`),
    /// so `lint --list-rules`, findings and ignore comments agree.
    #[test]
    fn squawk_rules_are_listed_under_the_ids_they_are_reported_with() {
        for r in RULES.iter().filter(|r| r.source == "squawk") {
            let emitted = squawk_linter::Rule::from_str(r.id).map(|rule| rule.to_string());
            assert_eq!(
                emitted.as_deref(),
                Ok(r.id),
                "`{}` is listed, but squawk reports it as {emitted:?}",
                r.id
            );
        }
    }
}
