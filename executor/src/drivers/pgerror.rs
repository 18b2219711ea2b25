//! [`PgError`]: why a PostgreSQL step (`preflight`'s database checks, `backup`, `migrate`,
//! `backfill`, a restore) failed, one variant per failure, with the database, statement or file it
//! is about and sqlx's error as its source. sqlx's messages may name a URL: the runner records and
//! shows them redacted ([`crate::error::StepFailure`]).

use std::path::PathBuf;
use std::time::Duration;

/// A failure of a PostgreSQL step.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The database's `url_env` variable is not set.
    #[error("environment variable `{url_env}` (the URL of database `{database}`) is not set")]
    UrlUnset {
        /// The variable.
        url_env: String,
        /// The database.
        database: String,
    },
    /// sqlx cannot read the URL.
    #[error("`{url_env}` is not a PostgreSQL URL")]
    BadUrl {
        /// The variable holding it.
        url_env: String,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// The URL cannot be handed to `pg_dump` or `pg_restore`.
    #[error("`{url_env}`")]
    ClientUrl {
        /// The variable holding it.
        url_env: String,
        /// Why not.
        source: crate::drivers::pgurl::UrlError,
    },
    /// The URL names no database (a restore must know which to drop and recreate).
    #[error("`{url_env}` names no database")]
    NoDatabaseName {
        /// The variable holding it.
        url_env: String,
    },
    /// Connecting failed.
    #[error("cannot connect to database `{database}` at {at} (from `{url_env}`)")]
    Connect {
        /// The database.
        database: String,
        /// `host:port` (or the socket directory) from the URL, never its password.
        at: String,
        /// The variable holding its URL.
        url_env: String,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// Connecting to the server's maintenance database (for a restore) failed.
    #[error("cannot connect to the server of `{database}`")]
    ConnectServer {
        /// The database.
        database: String,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// A query of cutover's own (catalog, bookkeeping, settings) failed.
    #[error(transparent)]
    Query(#[from] sqlx::Error),
    /// Another process holds the database's migration lock.
    #[error("another migrator holds the migration lock of database `{database}`{}; waited \
             {waited:?} (another cutover run, or a tool that takes the same advisory lock; let it \
             finish, or stop it, then resume)", holder.as_ref().map(|h| format!(": {h}")).unwrap_or_default())]
    MigrationLocked {
        /// The database.
        database: String,
        /// Who holds it, when PostgreSQL says.
        holder: Option<String>,
        /// How long cutover waited.
        waited: Duration,
    },
    /// Backends of a dead executor of the run survive pg_terminate_backend.
    #[error("backends of a dead executor of this run are still in `{database}` after {waited:?} and \
             pg_terminate_backend ({}); cutover will not judge or repeat the step while they may \
             still act", backends.join("; "))]
    BackendsLeft {
        /// The database.
        database: String,
        /// How long the fence waited.
        waited: Duration,
        /// Each backend: pid, `application_name`, state.
        backends: Vec<String>,
    },
    /// A version number refinery's history (INT4) cannot hold.
    #[error("version {version} does not fit refinery's history")]
    VersionTooLarge {
        /// The version.
        version: u64,
    },
    /// The phase was applied from other content.
    #[error(
        "V{version}__{name} ({phase}) was applied from different content (sha256 {recorded}, the \
         file now has {file}); cutover will not apply it again"
    )]
    AppliedDifferently {
        /// Migration version.
        version: i32,
        /// Migration name.
        name: String,
        /// `expand` or `contract`.
        phase: String,
        /// The checksum recorded in the database.
        recorded: String,
        /// The file's checksum.
        file: String,
    },
    /// Another run applied the phase while this one was under way.
    #[error(
        "V{version}__{name} ({phase}) was applied by another run, {run}, while this one was under \
         way; not applying it twice"
    )]
    AppliedByOtherRun {
        /// Migration version.
        version: i32,
        /// Migration name.
        name: String,
        /// `expand` or `contract`.
        phase: String,
        /// The run that applied it.
        run: String,
    },
    /// A transactional migration failed (and was rolled back by PostgreSQL).
    #[error("V{version}__{name} ({phase})")]
    Migration {
        /// Migration version.
        version: i32,
        /// Migration name.
        name: String,
        /// `expand` or `contract`.
        phase: String,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// A statement run outside a transaction failed.
    #[error("`{statement}`")]
    Statement {
        /// Its first words.
        statement: String,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// A concurrent index build failed; `note` says what waited for what and what was cleaned.
    #[error("`{statement}`: {source}{note}")]
    IndexBuild {
        /// Its first words.
        statement: String,
        /// sqlx's error.
        source: sqlx::Error,
        /// The lock waits and open transactions behind a timeout, and what became of the INVALID
        /// index it left (each part starting with ` (` or `; `), or nothing.
        note: String,
    },
    /// A concurrent index build finished with an INVALID index.
    #[error("`{statement}` finished, but index `{index}` is INVALID{cleanup}")]
    IndexInvalid {
        /// Its first words.
        statement: String,
        /// The index, schema-qualified.
        index: String,
        /// What became of it (`; ...`).
        cleanup: String,
    },
    /// A concurrent index build finished without building anything.
    #[error(
        "`{statement}` finished, but there is no index `{index}` on `{table}` (with IF NOT EXISTS, \
         PostgreSQL skips the build when any relation of that name exists in the schema, e.g. an \
         index on another table); name the index uniquely"
    )]
    IndexAbsent {
        /// Its first words.
        statement: String,
        /// The index.
        index: String,
        /// The table.
        table: String,
    },
    /// An INVALID index left by a failed build could not be dropped.
    #[error(
        "the INVALID index {index} left by a failed build could not be dropped ({source}); drop it \
         with `{drop}` once nothing holds its table, then resume"
    )]
    InvalidIndexLeft {
        /// The index, schema-qualified.
        index: String,
        /// The statement that drops it.
        drop: String,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// A backfill's planned index build is no `CREATE INDEX CONCURRENTLY name ON table` (a plan
    /// edited by hand, or made by another version of cutover).
    #[error(
        "the backfill's index build `{statement}` names no index and table: plan the release \
         again with this version of cutover"
    )]
    NotAnIndexBuild {
        /// The statement's first line.
        statement: String,
    },
    /// The migration recorded no undo SQL.
    #[error("{step} recorded no undo SQL; it cannot be undone")]
    NoUndo {
        /// Step id.
        step: String,
    },
    /// The undo of a transactional migration failed.
    #[error("undo of V{version}__{name}")]
    Undo {
        /// Migration version.
        version: i32,
        /// Migration name.
        name: String,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// An undo statement run outside a transaction failed.
    #[error("undo `{statement}`")]
    UndoStatement {
        /// The statement.
        statement: String,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// A client program could not be started.
    #[error("cannot run {}", program.display())]
    ToolStart {
        /// The program.
        program: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A client program failed.
    #[error("{} failed: {stderr}", program.display())]
    ToolFailed {
        /// The program.
        program: PathBuf,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// `pg_restore --list` found nothing in a fresh dump.
    #[error("pg_restore --list printed nothing for {}", path.display())]
    EmptyDump {
        /// The dump.
        path: PathBuf,
    },
    /// The dump changed since the backup step recorded its checksum.
    #[error(
        "the backup {path} changed since it was taken (sha256 {actual}, recorded {recorded}); \
         refusing to restore it"
    )]
    BackupChanged {
        /// The dump.
        path: String,
        /// Its checksum now.
        actual: String,
        /// Its checksum when taken.
        recorded: String,
    },
    /// The database could not be dropped for a restore (it is untouched).
    #[error("cannot drop `{database}` to restore it")]
    DropForRestore {
        /// The database.
        database: String,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// The database was dropped, and restoring the dump failed.
    #[error(
        "{}; database `{database}` was dropped and is not restored: restore it by hand with \
         `pg_restore --create --dbname <maintenance database URL> {path}` once the cause is fixed \
         (the dump is intact: sha256 {sha256})",
        crate::error::chain(source)
    )]
    NotRestored {
        /// The database.
        database: String,
        /// The dump.
        path: String,
        /// Its checksum.
        sha256: String,
        /// Why `pg_restore` failed.
        source: Box<crate::error::StepError>,
    },
    /// Preflight: the database is a standby.
    #[error(
        "database `{database}` (from `{url_env}`) is a standby in recovery; migrations need the \
         primary: point `{url_env}` at it"
    )]
    Standby {
        /// The database.
        database: String,
        /// The variable holding its URL.
        url_env: String,
    },
    /// Preflight: the role's sessions are read-only.
    #[error(
        "database `{database}` (from `{url_env}`): sessions of role `{user}` are read-only \
         (default_transaction_read_only); migrations need a role that may write"
    )]
    ReadOnly {
        /// The database.
        database: String,
        /// The variable holding its URL.
        url_env: String,
        /// The role.
        user: String,
    },
    /// Preflight: no schema of the search_path exists.
    #[error(
        "database `{database}` (from `{url_env}`): no schema of the search_path `{search_path}` \
         exists, so migrations would have nowhere to create tables; create the schema or fix the \
         role's search_path"
    )]
    NoSchema {
        /// The database.
        database: String,
        /// The variable holding its URL.
        url_env: String,
        /// The role's search_path.
        search_path: String,
    },
    /// Preflight: the role may not create objects in its first schema.
    #[error(
        "database `{database}` (from `{url_env}`): role `{user}` may not create objects in schema \
         `{schema}` (the first of its search_path `{search_path}`), so the first migration would \
         fail; `GRANT CREATE ON SCHEMA {schema} TO {user}` (PostgreSQL 15 no longer grants it on \
         `public`), or connect as the schema's owner"
    )]
    NoCreate {
        /// The database.
        database: String,
        /// The variable holding its URL.
        url_env: String,
        /// The role.
        user: String,
        /// The schema.
        schema: String,
        /// The role's search_path.
        search_path: String,
    },
    /// Preflight: the migrations alter tables the role does not own.
    #[error("database `{database}` (from `{url_env}`): the migrations alter or index {}, which role \
             `{user}` does not own, so they would fail with \"must be owner of table\"; connect as \
             the owner, or `GRANT {} TO {user}`", owned_by(tables), tables.first().map_or("", |(_, o)| o.as_str()))]
    NotOwner {
        /// The database.
        database: String,
        /// The variable holding its URL.
        url_env: String,
        /// The role.
        user: String,
        /// Each table, with its owner.
        tables: Vec<(String, String)>,
    },
    /// Preflight: the role lacks privileges on the bookkeeping tables.
    #[error("database `{database}` (from `{url_env}`): role `{user}` lacks {}, which recording (and \
             undoing) a migration needs; `GRANT SELECT, INSERT, DELETE ON {} TO {user}`, or connect \
             as the tables' owner",
                 missing.iter().map(|(t, p)| format!("{p} on `{t}`")).collect::<Vec<_>>().join(", "),
                 missing.first().map_or("", |(t, _)| t.as_str())
             )]
    Privileges {
        /// The database.
        database: String,
        /// The variable holding its URL.
        url_env: String,
        /// The role.
        user: String,
        /// Each table, with a privilege it lacks.
        missing: Vec<(String, String)>,
    },
    /// Preflight: refinery's history is not what the plan expects.
    #[error("database `{database}`: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    History {
        /// The database.
        database: String,
        /// Each difference.
        problems: Vec<HistoryProblem>,
    },
    /// A backfill batch failed.
    #[error("backfill of {table}.{column} after {key} = {cursor:?}")]
    Batch {
        /// The table.
        table: String,
        /// The column it fills.
        column: String,
        /// The key column.
        key: String,
        /// The key the batch started after.
        cursor: Option<i64>,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// A backfill's copy still differs after its sweeps.
    #[error("{table}.{column} still differs from {from} after {sweeps} extra sweeps")]
    StillDiffers {
        /// The table.
        table: String,
        /// The column it fills.
        column: String,
        /// The column it copies.
        from: String,
        /// Sweeps made.
        sweeps: u32,
    },
}

/// How a database's refinery history differs from what the plan expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryProblem {
    /// A migration at or below the baseline is not recorded.
    #[error(
        "V{version}__{name} should already be applied (it is at or below the baseline) but is not \
         in refinery_schema_history"
    )]
    NotApplied {
        /// Version.
        version: u64,
        /// Name.
        name: String,
    },
    /// A migration was applied from other content.
    #[error(
        "V{version}__{name} was applied from different content (checksum {recorded}, the file has \
         {file})"
    )]
    Differs {
        /// Version.
        version: u64,
        /// Name.
        name: String,
        /// The recorded checksum.
        recorded: String,
        /// The file's checksum.
        file: String,
    },
    /// A migration this release applies is applied already.
    #[error("V{version}__{name} is already applied, but this release plans to apply it")]
    AlreadyApplied {
        /// Version.
        version: u64,
        /// Name.
        name: String,
    },
}

fn owned_by(tables: &[(String, String)]) -> String {
    tables
        .iter()
        .map(|(t, o)| format!("`{t}` (owned by `{o}`)"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl PgError {
    /// The SQLSTATE of the database error behind this one, if PostgreSQL answered with one
    /// (`55P03` is a lock timeout, `57014` a statement timeout or cancel).
    pub fn sqlstate(&self) -> Option<String> {
        let source = match self {
            PgError::Query(e)
            | PgError::Connect { source: e, .. }
            | PgError::Migration { source: e, .. }
            | PgError::Statement { source: e, .. }
            | PgError::IndexBuild { source: e, .. }
            | PgError::Undo { source: e, .. }
            | PgError::UndoStatement { source: e, .. }
            | PgError::Batch { source: e, .. } => e,
            _ => return None,
        };
        match source {
            sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
            _ => None,
        }
    }
}
