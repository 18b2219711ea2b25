//! PostgreSQL steps: `preflight` checks, `backup` (pg_dump) and `migrate` (expand or contract).
//!
//! - **History.** refinery's `refinery_schema_history` stays the record of applied migrations,
//!   with refinery's own checksum, written when a migration completes (a rewritten migration
//!   completes with its contract part). `cutover_migration_phases (version, phase)` records each
//!   phase as it is applied, in the same transaction as its SQL; probes read it, so a resume
//!   never applies a phase twice.
//! - **One migrator per database.** refinery takes no lock, so each migrate step holds a
//!   session-level advisory lock (`pg_try_advisory_lock`, polled, never a blocking wait, never
//!   tied to a transaction) on its own connection while it runs.
//! - **Timeouts.** Every statement runs under the spec's `lock_timeout` and `statement_timeout`; a
//!   lock timeout (SQLSTATE 55P03) is retried with exponential backoff rather than failing the
//!   release at the first busy moment.
//! - **Statements that cannot run in a transaction** (CREATE INDEX CONCURRENTLY, ...) run one by
//!   one outside a transaction; an INVALID index left by an earlier failed build of the same
//!   index is dropped before the retry, and the phase is recorded once they all succeeded.
//! - **Secrets.** Connection URLs come from the environment variable the spec names; `pg_dump`
//!   gets the password through `PGPASSWORD`, never on its command line.

use crate::driver::{BoxFuture, Done, Driver, Job, Probe, StepContext, StepError};
use crate::drivers::pgerror::{HistoryProblem, PgError};
use crate::drivers::pgstmt::{self, Effect, Name};
use crate::drivers::pgurl::ClientTarget;
use cutover_planner::dag::{BackfillParams, BackupParams, DatabaseCheck, MigrateParams};
use cutover_planner::duration::Duration as SpecDuration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Row};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

const HISTORY: &str = "CREATE TABLE IF NOT EXISTS refinery_schema_history (
    version INT4 PRIMARY KEY,
    name VARCHAR(255),
    applied_on VARCHAR(255),
    checksum VARCHAR(255))";
const PHASES: &str = "CREATE TABLE IF NOT EXISTS cutover_migration_phases (
    version INT4 NOT NULL,
    phase TEXT NOT NULL,
    checksum TEXT NOT NULL,
    run_id TEXT NOT NULL,
    applied_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (version, phase))";
/// How long a migrate step waits for another migrator's advisory lock.
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// Attempts of a statement that hits `lock_timeout`.
const LOCK_RETRIES: u32 = 6;

/// A query of cutover's own failed.
fn err(e: sqlx::Error) -> StepError {
    PgError::Query(e).into()
}

fn url_from_env(url_env: &str, database: &str) -> Result<String, StepError> {
    std::env::var(url_env).map_err(|_| {
        PgError::UrlUnset {
            url_env: url_env.to_string(),
            database: database.to_string(),
        }
        .into()
    })
}

/// This process's part of every `application_name` it gives PostgreSQL:
/// `cutover <what> <run tag> pid <pid>.<nonce>`. The run tag (8 hex digits of the run id's
/// sha256; `-` before a run is attached) lets a later executor of the same run find the backends
/// a dead one left running (a statement sent before a kill -9 runs on inside PostgreSQL until it
/// ends); the nonce tells this process from an earlier one that had the same pid.
static RUN_TAG: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

fn nonce() -> &'static str {
    static NONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NONCE.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        format!(
            "{:04x}",
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish() as u16
        )
    })
}

/// The run tag of `run_id`, as it appears in `application_name`.
fn run_tag(run_id: &str) -> String {
    Sha256::digest(run_id.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Tells the PostgreSQL steps which run this process works on (the session calls it once it has
/// a run), so every connection it opens names the run in its `application_name`.
pub fn attach_run(run_id: &str) {
    *RUN_TAG.lock().expect("run tag lock") = run_tag(run_id);
}

fn current_tag() -> String {
    let tag = RUN_TAG.lock().expect("run tag lock").clone();
    if tag.is_empty() { "-".into() } else { tag }
}

/// How this process's backends end their `application_name`.
fn own_suffix() -> String {
    format!(" pid {}.{}", std::process::id(), nonce())
}

fn application_name(what: &str) -> String {
    format!("cutover {what} {}{}", current_tag(), own_suffix())
}

/// Connections this process opened and left clean, by URL and run tag: the steps of a release
/// reuse them instead of paying a connection setup each (most of a small migration's cost). They
/// never hold the migration lock: that belongs to the run's migrator connection ([`Migrator`]).
static IDLE: std::sync::Mutex<Vec<(String, PgConnection, bool)>> =
    std::sync::Mutex::new(Vec::new());

/// A connection borrowed for one step. [`Pooled::release`] cleans it (session settings) and keeps
/// it for the next step; dropping it instead closes it, which is what a failed step does, so a
/// connection in an unknown state is never reused.
#[derive(Debug)]
struct Pooled {
    key: String,
    conn: Option<PgConnection>,
    /// The history and phase tables are known to exist on this connection's database.
    tables_ready: bool,
    /// Session settings were changed (SET without LOCAL) and must be reset before reuse.
    dirty: bool,
}

impl std::ops::Deref for Pooled {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("a pooled connection is present until released")
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("a pooled connection is present until released")
    }
}

impl Pooled {
    async fn release(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.dirty
            && sqlx::Executor::execute(&mut conn, "RESET ALL")
                .await
                .is_err()
        {
            return;
        }
        IDLE.lock().expect("connection cache lock").push((
            std::mem::take(&mut self.key),
            conn,
            self.tables_ready,
        ));
    }
}

async fn open(url_env: &str, database: &str, what: &str) -> Result<PgConnection, StepError> {
    let url = url_from_env(url_env, database)?;
    let opts = PgConnectOptions::from_str(&url)
        .map_err(|source| PgError::BadUrl {
            url_env: url_env.to_string(),
            source,
        })?
        .application_name(&application_name(what));
    Ok(opts.connect().await.map_err(|source| PgError::Connect {
        at: format!("{}:{}", opts.get_host(), opts.get_port()),
        database: database.to_string(),
        url_env: url_env.to_string(),
        source,
    })?)
}

async fn connect(url_env: &str, database: &str, what: &str) -> Result<Pooled, StepError> {
    let key = format!("{} {}", current_tag(), url_from_env(url_env, database)?);
    let idle = {
        let mut idle = IDLE.lock().expect("connection cache lock");
        idle.iter().position(|(k, _, _)| *k == key).map(|i| {
            let (_, conn, ready) = idle.swap_remove(i);
            (conn, ready)
        })
    };
    if let Some((mut conn, tables_ready)) = idle
        && conn.ping().await.is_ok()
    {
        return Ok(Pooled {
            key,
            conn: Some(conn),
            tables_ready,
            dirty: false,
        });
    }
    let conn = open(url_env, database, what).await?;
    Ok(Pooled {
        key,
        conn: Some(conn),
        tables_ready: false,
        dirty: false,
    })
}

/// The one connection per database through which this process migrates (and undoes
/// migrations). It holds the database's migration lock, a session-level advisory lock, for as
/// long as it lives: the lock belongs to the run's executor, not to a step, so no step of the
/// run ever waits for it, and nothing else (another run, a plain refinery migrator that takes
/// the same lock) migrates meanwhile. Migrations of one database run one at a time through it.
struct Migrator {
    conn: PgConnection,
    tables_ready: bool,
}

type MigratorSlot = std::sync::Arc<tokio::sync::Mutex<Option<Migrator>>>;

/// Migrators by the identity of the database they reach (see [`database_identity`]), not by
/// URL: two spellings of one database (`?sslmode=disable` added, `localhost` for `127.0.0.1`, two
/// `[[database]]` entries) share one migrator, so the run never waits for its own lock.
static MIGRATORS: std::sync::Mutex<Vec<(String, MigratorSlot)>> = std::sync::Mutex::new(Vec::new());

/// URLs already resolved to a database identity.
static IDENTITIES: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Which database a connection reached, whatever URL led there: its name, the server's port and
/// the server's start time (`pg_postmaster_start_time()`, to the microsecond: two servers are
/// not started at the same instant on the same port).
async fn database_identity(conn: &mut PgConnection) -> Result<String, StepError> {
    sqlx::query_scalar("SELECT current_database() || ' ' || coalesce(inet_server_port()::text, current_setting('port')) || ' ' || pg_postmaster_start_time()::text").fetch_one(&mut *conn).await.map_err(err)
}

/// This process's migrator of the database at `url_env`, connected and holding the migration
/// lock (taken on first use, waited for while another process holds it).
async fn migrator(
    url_env: &str,
    database: &str,
) -> Result<tokio::sync::OwnedMutexGuard<Option<Migrator>>, StepError> {
    let url = url_from_env(url_env, database)?;
    let known = IDENTITIES
        .lock()
        .expect("identity table lock")
        .iter()
        .find(|(u, _)| *u == url)
        .map(|(_, id)| id.clone());
    let (identity, fresh) = match known {
        Some(id) => (id, None),
        None => {
            let mut conn = open(url_env, database, "migrate").await?;
            let id = database_identity(&mut conn).await?;
            IDENTITIES
                .lock()
                .expect("identity table lock")
                .push((url, id.clone()));
            (id, Some(conn))
        }
    };
    let slot = {
        let mut all = MIGRATORS.lock().expect("migrator table lock");
        match all.iter().find(|(i, _)| *i == identity) {
            Some((_, slot)) => slot.clone(),
            None => {
                let slot = MigratorSlot::default();
                all.push((identity, slot.clone()));
                slot
            }
        }
    };
    let mut guard = slot.lock_owned().await;
    if let Some(m) = guard.as_mut()
        && m.conn.ping().await.is_ok()
    {
        return Ok(guard);
    }
    // First use, or the connection was lost (and the lock with it): take it again.
    *guard = None;
    let mut conn = match fresh {
        Some(conn) => conn,
        None => open(url_env, database, "migrate").await?,
    };
    migration_lock(&mut conn, database).await?;
    *guard = Some(Migrator {
        conn,
        tables_ready: false,
    });
    Ok(guard)
}

/// Takes the per-database migration lock, polling; never a blocking `pg_advisory_lock`. The
/// holder named when it gives up is never this process: its own backends are left out.
async fn migration_lock(conn: &mut PgConnection, database: &str) -> Result<(), StepError> {
    let deadline = tokio::time::Instant::now() + LOCK_WAIT;
    loop {
        let got: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended('cutover-migrate', 0))",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
        if got {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT COALESCE(NULLIF(a.application_name, ''), a.usename::text, '?') || ' (backend pid ' || a.pid || COALESCE(', from ' || host(a.client_addr), '') || ')' FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('cutover-migrate', 0)
                   AND a.application_name NOT LIKE '%' || $1 LIMIT 1",
            )
            .bind(own_suffix())
            .fetch_optional(&mut *conn)
            .await
            .ok()
            .flatten();
            return Err(PgError::MigrationLocked {
                database: database.to_string(),
                holder,
                waited: LOCK_WAIT,
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until no backend of an earlier executor of run `run_id` is still at work in the
/// database at `url_env`; past `limit`, cancels their statements (`pg_cancel_backend`) and then
/// terminates them (`pg_terminate_backend`; PostgreSQL manual, "Server Signaling Functions",
/// section 9.27.2). Such a backend exists when a kill -9 landed while a statement ran: PostgreSQL
/// finishes the statement (or, for a transaction, rolls back at its next read) and only then
/// notices the client is gone.
async fn fence_database(
    url_env: &str,
    database: &str,
    run_id: &str,
    limit: Duration,
) -> Result<Option<String>, StepError> {
    let mut conn = connect(url_env, database, "fence").await?;
    let pattern = format!("cutover % {} pid %", run_tag(run_id));
    let started = tokio::time::Instant::now();
    let mut seen: Vec<String> = Vec::new();
    let mut cancelled = false;
    loop {
        let rows: Vec<(i32, String, Option<String>)> = sqlx::query_as(
            "SELECT pid, application_name, state FROM pg_stat_activity WHERE application_name LIKE $1 AND application_name NOT LIKE '%' || $2 AND pid <> pg_backend_pid()",
        )
        .bind(&pattern)
        .bind(own_suffix())
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?;
        if rows.is_empty() {
            conn.release().await;
            if seen.is_empty() {
                return Ok(None);
            }
            let how = if cancelled { "stopped" } else { "waited for" };
            return Ok(Some(format!(
                "{how} the database work a dead executor left running in `{database}` ({}) for {:.1}s before checking it",
                seen.join("; "),
                started.elapsed().as_secs_f64()
            )));
        }
        for (pid, name, state) in &rows {
            let line = format!(
                "backend pid {pid}, `{name}`, {}",
                state.as_deref().unwrap_or("?")
            );
            if !seen
                .iter()
                .any(|s| s.starts_with(&format!("backend pid {pid},")))
            {
                seen.push(line);
            }
        }
        let waited = started.elapsed();
        if waited >= limit {
            let f = if waited >= limit + Duration::from_secs(5) {
                "pg_terminate_backend"
            } else {
                "pg_cancel_backend"
            };
            for (pid, _, _) in &rows {
                let _ = sqlx::query(&format!("SELECT {f}($1)"))
                    .bind(pid)
                    .execute(&mut *conn)
                    .await;
            }
            cancelled = true;
        }
        if waited >= limit + Duration::from_secs(30) {
            return Err(PgError::BackendsLeft {
                database: database.to_string(),
                waited,
                backends: seen,
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_lock_timeout(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("55P03"))
}

fn millis(d: SpecDuration) -> u64 {
    d.as_millis()
}

/// The pieces of a migrate step the driver needs.
struct Migration {
    database: String,
    url_env: String,
    version: i32,
    name: String,
    phase: String,
    checksum: String,
    refinery_checksum: String,
    transactional: bool,
    lock_timeout: SpecDuration,
    statement_timeout: SpecDuration,
    sql: Vec<String>,
    undo_sql: Option<String>,
    records_history: bool,
    /// The run applying it (recorded, so another run finding it applied can tell).
    run_id: String,
}

fn run_id(ctx: &StepContext) -> String {
    ctx.run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn migration(step: &Job<MigrateParams>) -> Result<Migration, StepError> {
    let MigrateParams {
        database,
        url_env,
        version,
        file,
        checksum,
        transactional,
        lock_timeout,
        statement_timeout,
        undo_sql,
        sql,
        records_history,
        refinery_checksum,
        ..
    } = &step.params;
    let name = file
        .trim_end_matches(".sql")
        .split_once("__")
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| file.clone());
    Ok(Migration {
        database: database.clone(),
        url_env: url_env.clone(),
        version: i32::try_from(*version)
            .map_err(|_| PgError::VersionTooLarge { version: *version })?,
        name,
        phase: step.phase.map_or("expand", |p| p.as_str()).to_string(),
        checksum: checksum.clone(),
        refinery_checksum: refinery_checksum.clone(),
        transactional: *transactional,
        lock_timeout: *lock_timeout,
        statement_timeout: *statement_timeout,
        sql: sql.clone(),
        undo_sql: undo_sql.clone(),
        records_history: *records_history,
        run_id: String::new(),
    })
}

/// A migration's undo data: what a rollback runs, as planned when the step ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrateUndo {
    /// Migration version.
    pub version: i32,
    /// `expand` or `contract`.
    pub phase: String,
    /// The SQL that undoes it; `None`: it cannot be undone.
    pub undo_sql: Option<String>,
    /// The step wrote refinery's history row (the undo removes it).
    pub history: bool,
    /// The undo runs in one transaction.
    pub transactional: bool,
}

impl Migration {
    fn undo_data(&self) -> MigrateUndo {
        MigrateUndo {
            version: self.version,
            phase: self.phase.clone(),
            undo_sql: self.undo_sql.clone(),
            history: self.records_history,
            transactional: self.transactional,
        }
    }

    /// Whether this phase is recorded as applied; refuses if it was applied with other content.
    async fn applied(
        &self,
        conn: &mut PgConnection,
        tables_ready: bool,
    ) -> Result<bool, StepError> {
        if !tables_ready {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT to_regclass('cutover_migration_phases')::text")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(err)?;
            if exists.is_none() {
                return Ok(false);
            }
        }
        let row: Option<(String, String)> = sqlx::query_as("SELECT checksum, run_id FROM cutover_migration_phases WHERE version = $1 AND phase = $2").bind(self.version).bind(&self.phase).fetch_optional(&mut *conn).await.map_err(err)?;
        match row {
            Some((c, _)) if c != self.checksum => Err(PgError::AppliedDifferently {
                version: self.version,
                name: self.name.clone(),
                phase: self.phase.clone(),
                recorded: c,
                file: self.checksum.clone(),
            }
            .into()),
            Some((_, run)) if run != self.run_id && !self.run_id.is_empty() => {
                Err(PgError::AppliedByOtherRun {
                    version: self.version,
                    name: self.name.clone(),
                    phase: self.phase.clone(),
                    run,
                }
                .into())
            }
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    async fn record(
        &self,
        conn: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ) -> Result<(), sqlx::Error> {
        if self.records_history {
            // Both rows in one statement.
            let applied_on = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            sqlx::query(
                "WITH phase AS (INSERT INTO cutover_migration_phases (version, phase, checksum, run_id) VALUES ($1, $2, $3, $4)) \
                 INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES ($1, $5, $6, $7)",
            )
            .bind(self.version)
            .bind(&self.phase)
            .bind(&self.checksum)
            .bind(&self.run_id)
            .bind(&self.name)
            .bind(applied_on)
            .bind(&self.refinery_checksum)
            .execute(&mut **conn)
            .await?;
        } else {
            sqlx::query("INSERT INTO cutover_migration_phases (version, phase, checksum, run_id) VALUES ($1, $2, $3, $4)").bind(self.version).bind(&self.phase).bind(&self.checksum).bind(&self.run_id).execute(&mut **conn).await?;
        }
        Ok(())
    }

    /// Records the phase (and refinery's row) in a transaction of its own, after statements that
    /// ran outside one.
    async fn record_committed(&self, conn: &mut PgConnection) -> Result<(), StepError> {
        let mut tx = conn.begin().await.map_err(err)?;
        self.record(&mut tx).await.map_err(err)?;
        tx.commit().await.map_err(err)
    }

    /// One attempt of the whole transactional migration; `create_tables` puts the bookkeeping
    /// tables' creation in the same transaction (one commit, one WAL flush, instead of two).
    async fn attempt_transactional(
        &self,
        conn: &mut PgConnection,
        create_tables: bool,
    ) -> Result<(), sqlx::Error> {
        let mut settings = format!(
            "SET LOCAL lock_timeout = '{}ms'; SET LOCAL statement_timeout = '{}ms'",
            millis(self.lock_timeout),
            millis(self.statement_timeout)
        );
        if create_tables {
            settings = format!("{HISTORY}; {PHASES}; {settings}");
        }
        let script = self.sql.join("\n");
        let mut tx = conn.begin().await?;
        // Settings and script in one round trip (the simple-query protocol runs them in order).
        let batch = format!("{settings};\n{script}");
        sqlx::Executor::execute(&mut *tx, batch.as_str()).await?;
        // A `SET search_path` (or any SET) of the migration ends with it: the bookkeeping, and
        // the next migration on this connection, see the connection's own settings.
        sqlx::Executor::execute(&mut *tx, "RESET ALL").await?;
        self.record(&mut tx).await?;
        tx.commit().await
    }

    /// Statements that cannot run in a transaction, one by one. What an earlier attempt (whose
    /// end was not recorded) already did is skipped: a valid index it built, an index it dropped.
    /// Returns the indexes that were there before this step's first attempt (`IF NOT EXISTS` on
    /// an index the database already had): undoing the step must not drop those.
    async fn run_non_transactional(
        &self,
        conn: &mut PgConnection,
        attempt: u32,
    ) -> Result<Vec<String>, StepError> {
        let settings = format!(
            "SET lock_timeout = '{}ms'; SET statement_timeout = '{}ms'",
            millis(self.lock_timeout),
            millis(self.statement_timeout)
        );
        sqlx::Executor::execute(&mut *conn, settings.as_str())
            .await
            .map_err(err)?;
        let mut preexisting = Vec::new();
        for stmt in &self.sql {
            let failed = |source| PgError::Statement {
                statement: first_line(stmt),
                source,
            };
            match pgstmt::effect(stmt) {
                Effect::CreateIndex { index, table } => {
                    if !self
                        .create_index_concurrently(conn, stmt, &index, &table)
                        .await?
                        && attempt == 1
                    {
                        preexisting.push(index);
                    }
                }
                Effect::DropIndex { indexes } => {
                    if indexes_present(conn, &indexes).await? == 0 {
                        continue; // dropped by an attempt whose end was not recorded
                    }
                    exec_with_lock_retries(conn, stmt).await.map_err(failed)?;
                }
                Effect::CreateUnnamedIndex { table } => {
                    exec_cleaning_invalid(conn, stmt, &table.regclass(), &self.lock_timeout).await?
                }
                Effect::Reindex { target, table } => {
                    match reindexed_table(conn, &target, table).await? {
                        Some(on) => {
                            exec_cleaning_invalid(conn, stmt, &on, &self.lock_timeout).await?
                        }
                        None => exec_with_lock_retries(conn, stmt).await.map_err(failed)?,
                    }
                }
                _ => exec_with_lock_retries(conn, stmt).await.map_err(failed)?,
            }
        }
        // A `SET search_path` (or any SET) of the migration ends with it: the bookkeeping below,
        // and the next migration on this connection, see the connection's own settings.
        sqlx::Executor::execute(&mut *conn, "RESET ALL")
            .await
            .map_err(err)?;
        self.record_committed(conn).await?;
        Ok(preexisting)
    }

    /// `CREATE INDEX CONCURRENTLY`, succeeding only with a valid index. A build that fails (a
    /// lock timeout while it waits for older transactions, a duplicate key, a cancel) leaves an
    /// INVALID index behind (PostgreSQL manual, CREATE INDEX, "Building Indexes Concurrently"),
    /// which `IF NOT EXISTS` would then take for done and a plain retry would trip over: every
    /// attempt here starts by dropping it, and a failure drops what it left.
    /// `Ok(false)`: the index was already there, valid (built by an attempt whose end was not
    /// recorded, or before the release with `IF NOT EXISTS`).
    async fn create_index_concurrently(
        &self,
        conn: &mut PgConnection,
        stmt: &str,
        index: &str,
        table: &Name,
    ) -> Result<bool, StepError> {
        match index_state(conn, index, table).await? {
            IndexState::Valid => return Ok(false),
            IndexState::Invalid(q) => drop_invalid_index(conn, &q).await?,
            IndexState::Absent => {}
        }
        exec_cleaning_invalid(conn, stmt, &table.regclass(), &self.lock_timeout).await?;
        match index_state(conn, index, table).await? {
            IndexState::Valid => Ok(true),
            IndexState::Invalid(q) => {
                let cleanup = cleanup_note(drop_invalid_index(conn, &q).await);
                Err(PgError::IndexInvalid {
                    statement: first_line(stmt),
                    index: q,
                    cleanup,
                }
                .into())
            }
            IndexState::Absent => Err(PgError::IndexAbsent {
                statement: first_line(stmt),
                index: index.to_string(),
                table: table.regclass(),
            }
            .into()),
        }
    }
}

/// What is there of an index a `CREATE INDEX CONCURRENTLY` names.
enum IndexState {
    /// Valid.
    Valid,
    /// Left INVALID by a failed or interrupted build; with its schema-qualified, quoted name.
    Invalid(String),
    Absent,
}

/// The index `index` in `table`'s schema (where PostgreSQL creates it).
async fn index_state(
    conn: &mut PgConnection,
    index: &str,
    table: &Name,
) -> Result<IndexState, StepError> {
    let row: Option<(bool, String)> = sqlx::query_as(
        "SELECT i.indisvalid, format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relname = $1 AND i.indrelid = to_regclass($2)",
    )
    .bind(index)
    .bind(table.regclass())
    .fetch_optional(&mut *conn)
    .await
    .map_err(err)?;
    Ok(match row {
        Some((true, _)) => IndexState::Valid,
        Some((false, q)) => IndexState::Invalid(q),
        None => IndexState::Absent,
    })
}

async fn drop_invalid_index(conn: &mut PgConnection, qualified: &str) -> Result<(), StepError> {
    let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}");
    exec_with_lock_retries(conn, &drop).await.map_err(|source| {
        PgError::InvalidIndexLeft {
            index: qualified.to_string(),
            drop: drop.clone(),
            source,
        }
        .into()
    })
}

fn cleanup_note(dropped: Result<(), StepError>) -> String {
    match dropped {
        Ok(()) => "; the INVALID index it left was dropped".into(),
        Err(e) => format!("; {}", crate::error::chain(&e)),
    }
}

/// The INVALID indexes on `table` (a regclass text), schema-qualified and quoted.
async fn invalid_indexes(conn: &mut PgConnection, table: &str) -> Result<Vec<String>, StepError> {
    sqlx::query_scalar("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.indrelid = to_regclass($1) AND NOT i.indisvalid")
        .bind(table)
        .fetch_all(&mut *conn)
        .await
        .map_err(err)
}

/// The table a `REINDEX {TABLE|INDEX} CONCURRENTLY target` works on, as a regclass text: the
/// target itself, or the table of the index; `None` when there is no such index.
async fn reindexed_table(
    conn: &mut PgConnection,
    target: &Name,
    is_table: bool,
) -> Result<Option<String>, StepError> {
    if is_table {
        return Ok(Some(target.regclass()));
    }
    sqlx::query_scalar(
        "SELECT i.indrelid::regclass::text FROM pg_index i WHERE i.indexrelid = to_regclass($1)",
    )
    .bind(target.regclass())
    .fetch_optional(&mut *conn)
    .await
    .map_err(err)
}

/// Runs a statement that builds indexes concurrently on `table` (`CREATE INDEX CONCURRENTLY`,
/// named or not, `REINDEX ... CONCURRENTLY`), retrying a lock timeout; each failed attempt's
/// INVALID leftovers (new on the table since the attempt began: PostgreSQL names them, e.g.
/// `<index>_ccnew`) are dropped, so neither a retry nor a rollback leaves them behind.
async fn exec_cleaning_invalid(
    conn: &mut PgConnection,
    stmt: &str,
    table: &str,
    lock_timeout: &SpecDuration,
) -> Result<(), StepError> {
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        let before = invalid_indexes(conn, table).await?;
        match sqlx::Executor::execute(&mut *conn, stmt).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let mut left = String::new();
                for q in invalid_indexes(conn, table)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|q| !before.contains(q))
                {
                    left = cleanup_note(drop_invalid_index(conn, &q).await);
                }
                if is_lock_timeout(&e) && attempt < LOCK_RETRIES {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                    continue;
                }
                let waited = is_lock_timeout(&e)
                    || matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("57014"));
                let mut note = String::new();
                if waited {
                    note = format!(
                        " (after {attempt} attempt(s) under lock_timeout {lock_timeout}: a concurrent index build waits for every transaction older than its own snapshot to end, even one on another table{})",
                        old_transactions(conn).await
                    );
                }
                note.push_str(&left);
                return Err(PgError::IndexBuild {
                    statement: first_line(stmt),
                    source: e,
                    note,
                }
                .into());
            }
        }
    }
}

/// How many of `indexes` exist.
async fn indexes_present(conn: &mut PgConnection, indexes: &[Name]) -> Result<usize, StepError> {
    let names: Vec<String> = indexes.iter().map(Name::regclass).collect();
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM unnest($1::text[]) AS n WHERE to_regclass(n) IS NOT NULL",
    )
    .bind(&names)
    .fetch_one(&mut *conn)
    .await
    .map_err(err)?;
    Ok(n as usize)
}

/// The transactions a concurrent index build may be waiting for, for an error message: who, how
/// long, in what state; never their query text.
async fn old_transactions(conn: &mut PgConnection) -> String {
    let rows: Vec<(i32, i64, String)> = sqlx::query_as(
        "SELECT pid, EXTRACT(EPOCH FROM now() - xact_start)::bigint, COALESCE(NULLIF(application_name, ''), usename::text, '?') || ', ' || COALESCE(state, '?') || COALESCE(', database ' || datname, '')
         FROM pg_stat_activity WHERE xact_start IS NOT NULL AND backend_xmin IS NOT NULL AND pid <> pg_backend_pid() ORDER BY xact_start LIMIT 5",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    if rows.is_empty() {
        return String::new();
    }
    let list: Vec<String> = rows
        .iter()
        .map(|(pid, secs, what)| format!("pid {pid} open {secs}s ({what})"))
        .collect();
    format!(
        "; open now: {}: let them finish, or end them (pg_terminate_backend), before the next attempt",
        list.join("; ")
    )
}

fn first_line(s: &str) -> String {
    s.split_whitespace().take(12).collect::<Vec<_>>().join(" ")
}

/// Runs `sql` outside a transaction, retrying a lock timeout with exponential backoff.
async fn exec_with_lock_retries(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        match sqlx::Executor::execute(&mut *conn, sql).await {
            Ok(_) => return Ok(()),
            Err(e) if is_lock_timeout(&e) && attempt < LOCK_RETRIES => {
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates the history and phase tables on `conn`'s database unless `ready` says they exist.
async fn ensure_tables(conn: &mut PgConnection, ready: &mut bool) -> Result<(), StepError> {
    if !*ready {
        let schema = format!("{HISTORY}; {PHASES}");
        sqlx::Executor::execute(&mut *conn, schema.as_str())
            .await
            .map_err(err)?;
        *ready = true;
    }
    Ok(())
}

/// Removes the records of an undone phase (and refinery's row, if the phase wrote it).
async fn forget(
    conn: &mut PgConnection,
    version: i32,
    phase: &str,
    history: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM cutover_migration_phases WHERE version = $1 AND phase = $2")
        .bind(version)
        .bind(phase)
        .execute(&mut *conn)
        .await?;
    if history {
        sqlx::query("DELETE FROM refinery_schema_history WHERE version = $1")
            .bind(version)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Runs `migrate` steps.
pub struct MigrateDriver;

impl Driver for MigrateDriver {
    type Params = MigrateParams;
    type Undo = MigrateUndo;

    fn run(
        &self,
        step: Job<MigrateParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Done<MigrateUndo>, StepError>> {
        Box::pin(migrate(step, run_id(&ctx), ctx.attempt))
    }

    fn undo(
        &self,
        step: Job<MigrateParams>,
        undo: MigrateUndo,
        _ctx: StepContext,
    ) -> BoxFuture<Result<(), StepError>> {
        Box::pin(unmigrate(step, undo))
    }

    fn probe(
        &self,
        step: Job<MigrateParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Option<Probe<MigrateUndo>>, StepError>> {
        Box::pin(probe_migration(step, run_id(&ctx)))
    }

    fn fence(
        &self,
        step: Job<MigrateParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Option<String>, StepError>> {
        Box::pin(async move {
            let m = migration(&step)?;
            // The dead attempt's statement runs under the step's statement_timeout, so it ends by
            // then on its own; only past that is it cancelled.
            let limit = Duration::from_millis(millis(m.statement_timeout)) + Duration::from_secs(5);
            fence_database(&m.url_env, &m.database, &run_id(&ctx), limit).await
        })
    }
}

async fn migrate(
    step: Job<MigrateParams>,
    run_id: String,
    attempt: u32,
) -> Result<Done<MigrateUndo>, StepError> {
    let m = Migration {
        run_id,
        ..migration(&step)?
    };
    let mut slot = migrator(&m.url_env, &m.database).await?;
    let migrator = slot
        .as_mut()
        .expect("migrator() leaves a connection in the slot");
    let result = m.apply(migrator, attempt).await;
    if result.is_err() {
        // A connection in an unknown state is not reused (the lock goes with it; the next
        // migration of this database takes it again).
        *slot = None;
    }
    result
}

impl Migration {
    /// The whole migration in one transaction, retried (with exponential backoff) when it hits
    /// `lock_timeout`; PostgreSQL rolls back every failed attempt.
    async fn apply_transactional(&self, migrator: &mut Migrator) -> Result<(), StepError> {
        let mut delay = Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            let create_tables = !migrator.tables_ready;
            match self
                .attempt_transactional(&mut migrator.conn, create_tables)
                .await
            {
                Ok(()) => {
                    migrator.tables_ready = true;
                    return Ok(());
                }
                Err(e) if is_lock_timeout(&e) && attempt < LOCK_RETRIES => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(source) => {
                    return Err(PgError::Migration {
                        version: self.version,
                        name: self.name.clone(),
                        phase: self.phase.clone(),
                        source,
                    }
                    .into());
                }
            }
        }
    }

    async fn apply(
        &self,
        migrator: &mut Migrator,
        attempt: u32,
    ) -> Result<Done<MigrateUndo>, StepError> {
        let conn = &mut migrator.conn;
        // A transactional migration creates the bookkeeping tables in its own transaction.
        if !self.transactional {
            ensure_tables(conn, &mut migrator.tables_ready).await?;
        }
        if self.applied(conn, migrator.tables_ready).await? {
            return Ok(Done {
                undo: self.undo_data(),
                detail: Some(format!(
                    "V{} {} was already applied",
                    self.version, self.phase
                )),
            });
        }
        if self.transactional {
            self.apply_transactional(migrator).await?;
        } else {
            let preexisting = self.run_non_transactional(conn, attempt).await?;
            if !preexisting.is_empty() {
                let mut undo = self.undo_data();
                undo.undo_sql = self
                    .undo_sql
                    .as_deref()
                    .map(|u| without_drops_of(u, &preexisting));
                return Ok(Done {
                    undo,
                    detail: Some(format!(
                        "V{}__{} {} applied; index(es) {} were already there before the release and are kept by a rollback",
                        self.version,
                        self.name,
                        self.phase,
                        preexisting.join(", ")
                    )),
                });
            }
        }
        Ok(Done {
            undo: self.undo_data(),
            detail: Some(format!(
                "V{}__{} {} applied{}",
                self.version,
                self.name,
                self.phase,
                if self.records_history {
                    "; refinery history updated"
                } else {
                    ""
                }
            )),
        })
    }
}

async fn unmigrate(step: Job<MigrateParams>, undo: MigrateUndo) -> Result<(), StepError> {
    let m = migration(&step)?;
    // Exactly what was recorded when the step ran.
    let undo_sql = undo.undo_sql.ok_or_else(|| PgError::NoUndo {
        step: step.id.clone(),
    })?;
    let (history, transactional) = (undo.history, undo.transactional);
    let mut slot = migrator(&m.url_env, &m.database).await?;
    let conn = &mut slot
        .as_mut()
        .expect("migrator() leaves a connection in the slot")
        .conn;
    let result = async {
        if transactional {
            let mut tx = conn.begin().await.map_err(err)?;
            // The migration's own SETs (a search_path) first: its undo names what it named.
            let settings = format!(
                "{}SET LOCAL lock_timeout = '{}ms'",
                m.session_settings(),
                millis(m.lock_timeout)
            );
            sqlx::Executor::execute(&mut *tx, settings.as_str())
                .await
                .map_err(err)?;
            sqlx::Executor::execute(&mut *tx, undo_sql.as_str())
                .await
                .map_err(|source| PgError::Undo {
                    version: m.version,
                    name: m.name.clone(),
                    source,
                })?;
            sqlx::Executor::execute(&mut *tx, "RESET ALL")
                .await
                .map_err(err)?;
            forget(&mut tx, m.version, &m.phase, history)
                .await
                .map_err(err)?;
            tx.commit().await.map_err(err)?;
        } else {
            // Derived inverses of such migrations are one statement per line (DROP INDEX
            // CONCURRENTLY IF EXISTS ...), and must run outside a transaction too, under the
            // migration's own SETs (a search_path).
            let settings = m.session_settings();
            if !settings.is_empty() {
                sqlx::Executor::execute(&mut *conn, settings.as_str())
                    .await
                    .map_err(err)?;
            }
            for stmt in undo_sql.lines().filter(|l| !l.trim().is_empty()) {
                exec_with_lock_retries(conn, stmt).await.map_err(|source| {
                    PgError::UndoStatement {
                        statement: stmt.to_string(),
                        source,
                    }
                })?;
            }
            sqlx::Executor::execute(&mut *conn, "RESET ALL")
                .await
                .map_err(err)?;
            let mut tx = conn.begin().await.map_err(err)?;
            forget(&mut tx, m.version, &m.phase, history)
                .await
                .map_err(err)?;
            tx.commit().await.map_err(err)?;
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        *slot = None;
    }
    result
}

/// `undo_sql` without the lines that only drop one of `kept` (indexes the step did not create).
fn without_drops_of(undo_sql: &str, kept: &[String]) -> String {
    undo_sql
        .lines()
        .filter(|line| match pgstmt::effect(line) {
            Effect::DropIndex { indexes } => !indexes.iter().all(|i| kept.contains(&i.name)),
            _ => true,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a migration whose end was not recorded took effect. The runner has fenced it first
/// (no backend of the dead attempt is left), so what the database shows now is final:
/// - its phase is recorded in `cutover_migration_phases`: done (the record commits with a
///   transactional migration's SQL, so for those this is the whole answer);
/// - outside a transaction, each statement is judged by the catalog ([`pgstmt::effect`]): an
///   index to build is done when it is there and valid (an INVALID one is dropped: a retry
///   starts clean), an index to drop when it is gone. All done: the bookkeeping the dead attempt
///   did not write is written now, and the step is done. None done: not done. Some: partial.
///   A statement the catalog cannot judge leaves the step to the operator (`None`).
async fn probe_migration(
    step: Job<MigrateParams>,
    run_id: String,
) -> Result<Option<Probe<MigrateUndo>>, StepError> {
    let m = Migration {
        run_id,
        ..migration(&step)?
    };
    let mut slot = migrator(&m.url_env, &m.database).await?;
    let migrator = slot
        .as_mut()
        .expect("migrator() leaves a connection in the slot");
    let result = m.judge(migrator).await;
    if result.is_err() {
        *slot = None;
    }
    result
}

impl Migration {
    /// The migration's `SET` statements (not `SET LOCAL`), each ending in `;\n`: names in its
    /// statements and its undo resolve under them (a `search_path`).
    fn session_settings(&self) -> String {
        self.sql
            .iter()
            .filter(|s| {
                let lower = s.trim_start().to_ascii_lowercase();
                pgstmt::effect(s) == Effect::Repeatable
                    && lower.starts_with("set ")
                    && !lower.starts_with("set local")
            })
            .map(|s| format!("{};\n", s.trim().trim_end_matches(';')))
            .collect()
    }

    async fn judge(
        &self,
        migrator: &mut Migrator,
    ) -> Result<Option<Probe<MigrateUndo>>, StepError> {
        let conn = &mut migrator.conn;
        if self.applied(conn, migrator.tables_ready).await? {
            return Ok(Some(Probe::Done(self.undo_data())));
        }
        if self.transactional {
            return Ok(Some(Probe::NotDone));
        }
        // Names resolve as they did for the migration.
        let settings = self.session_settings();
        if !settings.is_empty() {
            sqlx::Executor::execute(&mut *conn, settings.as_str())
                .await
                .map_err(err)?;
        }
        let verdict = self.judge_statements(conn).await;
        sqlx::Executor::execute(&mut *conn, "RESET ALL")
            .await
            .map_err(err)?;
        let verdict = verdict?;
        if let Some(Probe::Done(_)) = &verdict {
            ensure_tables(conn, &mut migrator.tables_ready).await?;
            self.record_committed(conn).await?;
        }
        Ok(verdict)
    }

    /// The catalog's verdict on each statement; `Done` when all are done (the caller records it).
    async fn judge_statements(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Option<Probe<MigrateUndo>>, StepError> {
        let (mut done, mut judged) = (0, 0);
        for stmt in &self.sql {
            match pgstmt::effect(stmt) {
                Effect::CreateIndex { index, table } => {
                    judged += 1;
                    match index_state(conn, &index, &table).await? {
                        IndexState::Valid => done += 1,
                        IndexState::Invalid(q) => drop_invalid_index(conn, &q).await?,
                        IndexState::Absent => {}
                    }
                }
                Effect::DropIndex { indexes } => {
                    judged += 1;
                    if indexes_present(conn, &indexes).await? == 0 {
                        done += 1;
                    }
                }
                Effect::Reindex { target, table } => {
                    // Repeatable; what a dead attempt left INVALID goes first.
                    if let Some(on) = reindexed_table(conn, &target, table).await? {
                        for q in invalid_indexes(conn, &on).await? {
                            if q.contains("_ccnew") || q.contains("_ccold") {
                                drop_invalid_index(conn, &q).await?;
                            }
                        }
                    }
                }
                Effect::Repeatable => {}
                Effect::CreateUnnamedIndex { .. } | Effect::Unknown => return Ok(None),
            }
        }
        if judged == 0 || done == 0 {
            return Ok(Some(Probe::NotDone));
        }
        if done < judged {
            return Ok(Some(Probe::Partial(self.undo_data())));
        }
        Ok(Some(Probe::Done(self.undo_data())))
    }
}

/// A PostgreSQL client program: from PATH, else the newest under /usr/lib/postgresql.
fn pg_program(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| PathBuf::from(name))
}

/// Runs a PostgreSQL client program as part of `step` (marked, in its own process group, killed
/// with cutover: see [`crate::drivers::command::tie_to_step`]), the password in `PGPASSWORD` and
/// never on its command line.
async fn run_tool(
    program: &Path,
    args: &[&str],
    password: Option<&str>,
    mark: &str,
) -> Result<Vec<u8>, StepError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(std::process::Stdio::null());
    crate::drivers::command::tie_to_step(&mut cmd, mark);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd.output().await.map_err(|source| PgError::ToolStart {
        program: program.to_path_buf(),
        source,
    })?;
    if !out.status.success() {
        return Err(PgError::ToolFailed {
            program: program.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }
        .into());
    }
    Ok(out.stdout)
}

/// Runs `backup` steps: `pg_dump -Fc`, checked with `pg_restore --list`, with path, size and
/// sha256 recorded.
pub struct BackupDriver;

/// A backup's undo data: the dump, which a restore past a pivot checks and reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupDump {
    /// The dump file.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, hex.
    pub sha256: String,
}

impl Driver for BackupDriver {
    type Params = BackupParams;
    type Undo = BackupDump;

    fn run(
        &self,
        step: Job<BackupParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Done<BackupDump>, StepError>> {
        Box::pin(async move {
            let BackupParams {
                database,
                url_env,
                dir,
            } = &step.params;
            let target = ClientTarget::of(&url_from_env(url_env, database)?).map_err(|source| {
                PgError::ClientUrl {
                    url_env: url_env.clone(),
                    source,
                }
            })?;
            let mark = crate::drivers::command::mark(&step.id, &ctx);
            let dir = ctx.spec_dir.join(dir);
            std::fs::create_dir_all(&dir).map_err(|source| StepError::File {
                action: "create",
                path: dir.clone(),
                source,
            })?;
            let run = ctx
                .run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into());
            let path = dir.join(format!("{run}-{database}.dump"));
            let tmp = path.with_extension("dump.partial");
            let tmp_s = tmp.to_string_lossy().into_owned();
            run_tool(
                &pg_program("pg_dump"),
                &[
                    "--format=custom",
                    "--no-password",
                    "--file",
                    &tmp_s,
                    "--dbname",
                    &target.url,
                ],
                target.password.as_deref(),
                &mark,
            )
            .await?;
            let listing =
                run_tool(&pg_program("pg_restore"), &["--list", &tmp_s], None, &mark).await?;
            if listing.is_empty() {
                return Err(PgError::EmptyDump { path: tmp }.into());
            }
            std::fs::rename(&tmp, &path).map_err(|source| StepError::File {
                action: "move the dump into place at",
                path: path.clone(),
                source,
            })?;
            let bytes = std::fs::read(&path).map_err(|source| StepError::File {
                action: "read",
                path: path.clone(),
                source,
            })?;
            let sha = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            let path_s = path.display().to_string();
            Ok(Done {
                undo: BackupDump {
                    path: path_s.clone(),
                    size: bytes.len() as u64,
                    sha256: sha.clone(),
                },
                detail: Some(format!(
                    "{path_s} ({} bytes, sha256 {})",
                    bytes.len(),
                    &sha[..16]
                )),
            })
        })
    }

    // The default undo (nothing): the dump is kept, it is what a restore past a pivot would
    // use. The default probe (not done): dumping again is harmless (once the fence has stopped
    // the dead attempt's pg_dump).

    fn restore(
        &self,
        step: Job<BackupParams>,
        undo: BackupDump,
        ctx: StepContext,
    ) -> BoxFuture<Result<String, StepError>> {
        Box::pin(restore_backup(step, undo, ctx))
    }

    fn fence(
        &self,
        step: Job<BackupParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Option<String>, StepError>> {
        // A pg_dump of a dead executor would write the same .partial file as the next attempt.
        Box::pin(async move {
            Ok(crate::drivers::command::fence_processes(
                &crate::drivers::command::mark(&step.id, &ctx),
                None,
            )
            .await?)
        })
    }
}

/// Preflight checks of one database: reachable, its migration history what the plan expects,
/// and which transactions have been open longer than its `lock_timeout` (DDL would wait for them).
pub async fn check_database(db: &DatabaseCheck) -> Result<String, StepError> {
    let mut conn = connect(&db.url_env, &db.name, "preflight").await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
    if !db.pending.is_empty() {
        check_role(&mut conn, db).await?;
        check_bookkeeping(&mut conn, db).await?;
    }
    check_history(&mut conn, db).await?;
    let long = long_transactions(&mut conn, db).await?;
    conn.release().await;
    let mut out = format!(
        "`{}`: PostgreSQL {version}, {} applied, {} pending",
        db.name,
        db.applied.len(),
        db.pending.len()
    );
    if !long.is_empty() {
        out.push_str(&format!(
            "; transactions open longer than the lock_timeout ({}), which would make DDL wait: {}",
            db.lock_timeout,
            long.join("; ")
        ));
    }
    Ok(out)
}

/// The migrations will run DDL and write refinery's history: a standby, a read-only session, a
/// role without CREATE on the schema they land in, or one that does not own the tables they
/// alter fails at the first one.
async fn check_role(conn: &mut PgConnection, db: &DatabaseCheck) -> Result<(), StepError> {
    let (standby, read_only, user, schema, path, create): (bool, String, String, Option<String>, String, Option<bool>) = sqlx::query_as(
        "SELECT pg_is_in_recovery(), current_setting('transaction_read_only'), current_user::text, current_schema()::text, current_setting('search_path'), has_schema_privilege(current_schema(), 'CREATE')",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(err)?;
    let (database, url_env) = (db.name.clone(), db.url_env.clone());
    if standby {
        return Err(PgError::Standby { database, url_env }.into());
    }
    if read_only == "on" {
        return Err(PgError::ReadOnly {
            database,
            url_env,
            user,
        }
        .into());
    }
    let Some(schema) = schema else {
        let search_path = path;
        return Err(PgError::NoSchema {
            database,
            url_env,
            search_path,
        }
        .into());
    };
    if create != Some(true) {
        return Err(PgError::NoCreate {
            database,
            url_env,
            user,
            schema,
            search_path: path,
        }
        .into());
    }
    // Only a table's owner (or a member of the owning role) may ALTER it or index it.
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT t, pg_get_userbyid(c.relowner)::text FROM unnest($1::text[]) AS t JOIN pg_class c ON c.oid = to_regclass(t) WHERE NOT pg_has_role(current_user, c.relowner, 'USAGE') ORDER BY t",
    )
    .bind(&db.owned_tables)
    .fetch_all(&mut *conn)
    .await
    .map_err(err)?;
    if !tables.is_empty() {
        return Err(PgError::NotOwner {
            database,
            url_env,
            user,
            tables,
        }
        .into());
    }
    Ok(())
}

/// The bookkeeping the migrations write (and a rollback deletes): refinery's history and
/// cutover's phase table, where they exist already (else the role creates them, which
/// [`check_role`] checked).
async fn check_bookkeeping(conn: &mut PgConnection, db: &DatabaseCheck) -> Result<(), StepError> {
    let missing: Vec<(String, String)> = sqlx::query_as(
        "SELECT t, p FROM unnest(ARRAY['refinery_schema_history', 'cutover_migration_phases']) AS t, unnest(ARRAY['SELECT', 'INSERT', 'DELETE']) AS p
         WHERE to_regclass(t) IS NOT NULL AND NOT has_table_privilege(to_regclass(t), p) ORDER BY t, p",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(err)?;
    if missing.is_empty() {
        return Ok(());
    }
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
    Err(PgError::Privileges {
        database: db.name.clone(),
        url_env: db.url_env.clone(),
        user,
        missing,
    }
    .into())
}

/// refinery's history is what the plan expects: the baseline applied with the same checksums,
/// nothing of this release applied yet.
async fn check_history(conn: &mut PgConnection, db: &DatabaseCheck) -> Result<(), StepError> {
    let has_history: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('refinery_schema_history')::text")
            .fetch_one(&mut *conn)
            .await
            .map_err(err)?;
    let rows: Vec<(i32, String)> = if has_history.is_some() {
        sqlx::query(
            "SELECT version, COALESCE(checksum, '') FROM refinery_schema_history ORDER BY version",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    } else {
        Vec::new()
    };
    let recorded = |version: u64| rows.iter().find(|(v, _)| i64::from(*v) == version as i64);
    let mut problems = Vec::new();
    for e in &db.applied {
        let (version, name) = (e.version, e.name.clone());
        match recorded(e.version) {
            None => problems.push(HistoryProblem::NotApplied { version, name }),
            Some((_, c)) if *c != e.checksum => problems.push(HistoryProblem::Differs {
                version,
                name,
                recorded: c.clone(),
                file: e.checksum.clone(),
            }),
            _ => {}
        }
    }
    for e in db.pending.iter().filter(|e| recorded(e.version).is_some()) {
        problems.push(HistoryProblem::AlreadyApplied {
            version: e.version,
            name: e.name.clone(),
        });
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(PgError::History {
        database: db.name.clone(),
        problems,
    }
    .into())
}

/// Transactions open longer than the database's `lock_timeout` (DDL would wait for them): who,
/// how long and in what state; not the query text, which may hold data or secrets and would end
/// up in the run's log.
async fn long_transactions(
    conn: &mut PgConnection,
    db: &DatabaseCheck,
) -> Result<Vec<String>, StepError> {
    Ok(sqlx::query("SELECT pid, EXTRACT(EPOCH FROM now() - xact_start)::bigint, COALESCE(NULLIF(application_name, ''), usename::text, '?') || ', ' || COALESCE(state, '?') FROM pg_stat_activity WHERE datname = current_database() AND xact_start < now() - make_interval(secs => $1) AND pid <> pg_backend_pid() ORDER BY xact_start")
        .bind(db.lock_timeout.as_millis() as f64 / 1000.0)
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?
        .iter()
        .map(|r| format!("pid {} open {}s: {}", r.get::<i32, _>(0), r.get::<i64, _>(1), r.get::<String, _>(2)))
        .collect())
}

/// Runs `backfill` steps: copies a column into its new twin in primary-key batches, each its own
/// short transaction, recording the last committed key as progress so a resume continues after
/// it. Rows changed meanwhile by either app version stay right through the sync trigger the
/// expand step installed, and a batch run twice changes nothing (`IS DISTINCT FROM`).
pub struct BackfillDriver;

struct Backfill {
    database: String,
    url_env: String,
    table: String,
    key: String,
    from: String,
    to: String,
    batch_size: u32,
    pause: SpecDuration,
    batch_sql: String,
}

/// A backfill's progress, recorded after every batch: a resume continues after `cursor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillProgress {
    /// The key the last committed batch ended at.
    pub cursor: i64,
    /// Rows changed so far.
    pub rows: u64,
    /// The last key when the walk began (`None`: the table was empty).
    pub end: Option<i64>,
}

fn backfill(step: &Job<BackfillParams>) -> Backfill {
    let BackfillParams {
        database,
        url_env,
        table,
        key,
        from_column,
        to_column,
        batch_size,
        pause,
        batch_sql,
    } = &step.params;
    Backfill {
        database: database.clone(),
        url_env: url_env.clone(),
        table: table.clone(),
        key: key.clone(),
        from: from_column.clone(),
        to: to_column.clone(),
        batch_size: *batch_size,
        pause: *pause,
        batch_sql: batch_sql.clone(),
    }
}

impl Driver for BackfillDriver {
    type Params = BackfillParams;
    type Undo = ();

    fn run(
        &self,
        step: Job<BackfillParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Done<()>, StepError>> {
        Box::pin(run_backfill(step, ctx))
    }

    // The default undo (nothing): undoing the expand step drops the new column; the copy has
    // nothing of its own to undo.

    fn probe(
        &self,
        step: Job<BackfillParams>,
        _ctx: StepContext,
    ) -> BoxFuture<Result<Option<Probe<()>>, StepError>> {
        Box::pin(probe_backfill(step))
    }

    fn fence(
        &self,
        step: Job<BackfillParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Option<String>, StepError>> {
        Box::pin(async move {
            let b = backfill(&step);
            // A batch is one short statement; one still running a minute on is stuck.
            fence_database(
                &b.url_env,
                &b.database,
                &run_id(&ctx),
                Duration::from_secs(60),
            )
            .await
        })
    }
}

async fn run_backfill(step: Job<BackfillParams>, ctx: StepContext) -> Result<Done<()>, StepError> {
    let b = backfill(&step);
    let mut conn = connect(&b.url_env, &b.database, "backfill").await?;
    let started = std::time::Instant::now();
    // Where the last committed batch ended (a resume continues after it).
    let resumed: Option<BackfillProgress> = ctx.resumed();
    let mut cursor: Option<i64> = resumed.as_ref().map(|p| p.cursor);
    let mut rows: u64 = resumed.as_ref().map_or(0, |p| p.rows);
    let (end, estimate) = b.bounds(&mut conn, resumed.and_then(|p| p.end)).await?;
    // Batches commit without waiting for their WAL flush: much less fsync contention with the
    // application's own commits. A server crash could lose the last batches even though their
    // cursor was recorded, so the copy is verified at the end and swept again if needed.
    // Custom plans for every batch: a generic plan (chosen after a few executions) cannot see the
    // key range and, on a table without fresh statistics, scans the whole table per batch.
    conn.dirty = true;
    sqlx::Executor::execute(
        &mut *conn,
        "SET synchronous_commit = off; SET plan_cache_mode = force_custom_plan",
    )
    .await
    .map_err(err)?;
    if cursor.is_none() {
        cursor = b.before_first_key(&mut conn).await?;
        if cursor.is_none() {
            return Ok(Done {
                undo: (),
                detail: Some(format!("`{}` is empty: nothing to copy", b.table)),
            });
        }
    }
    let mut progress = Reported { estimate };
    let mut sweeps = 0;
    loop {
        let (upper, changed) = b.batch(&mut conn, cursor).await?;
        let upper = upper.filter(|_| cursor.is_some_and(|c| end.is_some_and(|e| c < e)));
        let Some(upper) = upper else {
            // Past the last key: verify, and sweep once more from the start if rows were lost.
            if !b.differs(&mut conn).await? {
                break;
            }
            if sweeps >= 3 {
                return Err(PgError::StillDiffers {
                    table: b.table.clone(),
                    column: b.to.clone(),
                    from: b.from.clone(),
                    sweeps,
                }
                .into());
            }
            sweeps += 1;
            cursor = b.before_first_key(&mut conn).await?;
            continue;
        };
        rows += changed as u64;
        cursor = Some(upper);
        progress.report(&ctx, upper, rows, end);
        if !b.pause.is_zero() {
            tokio::time::sleep(Duration::from_millis(b.pause.as_millis())).await;
        }
    }
    let secs = started.elapsed().as_secs_f64().max(0.001);
    conn.release().await;
    Ok(Done {
        undo: (),
        detail: Some(format!(
            "copied {} into {} on {rows} rows in {secs:.1}s ({:.0} rows/s)",
            b.from,
            b.to,
            rows as f64 / secs
        )),
    })
}

/// How a backfill reports its progress after every batch: the cursor (for a resume) and the
/// rows done of the estimated total (for the views, which draw the line for humans).
struct Reported {
    /// Rows to copy, estimated.
    estimate: i64,
}

impl Reported {
    fn report(&mut self, ctx: &StepContext, cursor: i64, rows: u64, end: Option<i64>) {
        let Some(p) = &ctx.progress else { return };
        let amount = crate::event::Amount {
            done: rows,
            total: u64::try_from(self.estimate).ok(),
            unit: "rows".into(),
        };
        p.report_amount(&BackfillProgress { cursor, rows, end }, Some(amount));
    }
}

impl Backfill {
    /// Where the walk ends, and how many rows it has, about. Rows inserted after the expand step
    /// get the new column from the sync trigger, so the walk ends at the last key that existed
    /// when it began (`end`, kept in the progress for resumes); chasing a live table's tail would
    /// never finish under steady inserts. The total is an estimate: the planner's row count when
    /// the table was analyzed, else the key range (a count(*) would scan the whole table first).
    async fn bounds(
        &self,
        conn: &mut PgConnection,
        end: Option<i64>,
    ) -> Result<(Option<i64>, i64), StepError> {
        let end: Option<i64> = match end {
            Some(e) => Some(e),
            None => sqlx::query_scalar(&format!(
                "SELECT max({})::bigint FROM {}",
                self.key, self.table
            ))
            .fetch_one(&mut *conn)
            .await
            .map_err(err)?,
        };
        let reltuples: Option<f32> =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)")
                .bind(&self.table)
                .fetch_optional(&mut *conn)
                .await
                .map_err(err)?;
        let key_range: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT ($1::bigint - min({}))::bigint + 1 FROM {}",
            self.key, self.table
        ))
        .bind(end.unwrap_or(0))
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
        let estimate = match reltuples {
            Some(r) if r > 0.0 => r as i64,
            _ => key_range.unwrap_or(0).max(0),
        };
        Ok((end, estimate))
    }

    /// The key just below the first one: where a walk from the start begins (`None`: empty).
    async fn before_first_key(&self, conn: &mut PgConnection) -> Result<Option<i64>, StepError> {
        let sql = format!(
            "SELECT (min({key}) - 1)::bigint FROM {table}",
            key = self.key,
            table = self.table
        );
        sqlx::query_scalar::<_, Option<i64>>(&sql)
            .fetch_one(&mut *conn)
            .await
            .map_err(err)
    }

    /// One batch after `cursor`, in one statement that finds the next keys, copies them and
    /// returns the last key and the rows it changed; a lock timeout is retried.
    async fn batch(
        &self,
        conn: &mut PgConnection,
        cursor: Option<i64>,
    ) -> Result<(Option<i64>, i64), StepError> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match sqlx::query_as(&self.batch_sql)
                .bind(cursor)
                .bind(i64::from(self.batch_size))
                .fetch_one(&mut *conn)
                .await
            {
                Ok(r) => return Ok(r),
                Err(e) if is_lock_timeout(&e) && attempt < LOCK_RETRIES => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(source) => {
                    return Err(PgError::Batch {
                        table: self.table.clone(),
                        column: self.to.clone(),
                        key: self.key.clone(),
                        cursor,
                        source,
                    }
                    .into());
                }
            }
        }
    }

    /// Whether some row's new column still differs from the old one.
    async fn differs(&self, conn: &mut PgConnection) -> Result<bool, StepError> {
        sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {} IS DISTINCT FROM {})",
            self.table, self.to, self.from
        ))
        .fetch_one(&mut *conn)
        .await
        .map_err(err)
    }
}

async fn probe_backfill(step: Job<BackfillParams>) -> Result<Option<Probe<()>>, StepError> {
    let b = backfill(&step);
    let mut conn = connect(&b.url_env, &b.database, "probe").await?;
    Ok(Some(if b.differs(&mut conn).await? {
        Probe::NotDone
    } else {
        Probe::Done(())
    }))
}

/// Restores a database from the dump a backup step recorded: checks the file against its recorded
/// sha256, drops the database (closing its connections) and recreates it from the dump. Writes
/// made since the backup are lost; only an explicit `rollback --restore-backup` gets here.
async fn restore_backup(
    step: Job<BackupParams>,
    undo: BackupDump,
    ctx: StepContext,
) -> Result<String, StepError> {
    let BackupParams {
        database, url_env, ..
    } = &step.params;
    let (path, sha) = (undo.path.as_str(), undo.sha256.as_str());
    let size = verified_dump(&undo)?;
    let url = url_from_env(url_env, database)?;
    // Everything that can be refused is checked before the database is dropped.
    let admin = ClientTarget::of(&url)
        .map_err(|source| PgError::ClientUrl {
            url_env: url_env.clone(),
            source,
        })?
        .with_database("postgres");
    let opts = PgConnectOptions::from_str(&url).map_err(|source| PgError::BadUrl {
        url_env: url_env.clone(),
        source,
    })?;
    let dbname = opts.get_database().map(str::to_string);
    let dbname = dbname.ok_or_else(|| PgError::NoDatabaseName {
        url_env: url_env.clone(),
    })?;
    drop_database(opts, database, &dbname).await?;
    let mark = crate::drivers::command::mark(&step.id, &ctx);
    run_tool(
        &pg_program("pg_restore"),
        &[
            "--create",
            "--exit-on-error",
            "--no-password",
            "--dbname",
            &admin.url,
            path,
        ],
        admin.password.as_deref(),
        &mark,
    )
    .await
    .map_err(|e| PgError::NotRestored {
        database: dbname.clone(),
        path: path.to_string(),
        sha256: sha.to_string(),
        source: Box::new(e),
    })?;
    Ok(format!("{path}, {size} bytes"))
}

/// The size of the dump a backup step recorded, once its content is checked against the sha256
/// recorded with it.
fn verified_dump(undo: &BackupDump) -> Result<usize, StepError> {
    let bytes = std::fs::read(&undo.path).map_err(|source| StepError::File {
        action: "read the backup",
        path: PathBuf::from(&undo.path),
        source,
    })?;
    let actual = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    if actual != undo.sha256 {
        return Err(PgError::BackupChanged {
            path: undo.path.clone(),
            actual,
            recorded: undo.sha256.clone(),
        }
        .into());
    }
    Ok(bytes.len())
}

/// Drops database `dbname` (of the spec's `database`), closing its connections, from a
/// maintenance connection to the same server (`opts` with database `postgres`).
async fn drop_database(
    opts: PgConnectOptions,
    database: &str,
    dbname: &str,
) -> Result<(), StepError> {
    let mut admin = opts
        .database("postgres")
        .application_name("cutover restore")
        .connect()
        .await
        .map_err(|source| PgError::ConnectServer {
            database: database.to_string(),
            source,
        })?;
    let drop = format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        dbname.replace('"', "\"\"")
    );
    sqlx::Executor::execute(&mut admin, drop.as_str())
        .await
        .map_err(|source| PgError::DropForRestore {
            database: dbname.to_string(),
            source,
        })?;
    let _ = admin.close().await;
    Ok(())
}
