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

use crate::driver::{BoxFuture, Done, Driver, Probe, StepContext, StepError};
use cutover_planner::dag::{DatabaseCheck, Params, Step};
use cutover_planner::duration::Duration as SpecDuration;
use serde_json::{Value, json};
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

fn err(e: impl std::fmt::Display) -> StepError {
    StepError(crate::redact::redact_url_passwords(&e.to_string()))
}

fn url_from_env(url_env: &str, database: &str) -> Result<String, StepError> {
    std::env::var(url_env).map_err(|_| StepError(format!("environment variable `{url_env}` (the URL of database `{database}`) is not set")))
}

/// Connections this process opened and left clean, by URL: the steps of a release reuse them
/// instead of paying a connection setup each (most of a small migration's cost).
static IDLE: std::sync::Mutex<Vec<(String, PgConnection, bool, bool)>> = std::sync::Mutex::new(Vec::new());

/// A connection borrowed for one step. [`Pooled::release`] cleans it (session settings, advisory
/// locks) and keeps it for the next step; dropping it instead closes it, which is what a failed
/// step does, so a connection in an unknown state is never reused.
#[derive(Debug)]
struct Pooled {
    url: String,
    conn: Option<PgConnection>,
    /// The history and phase tables are known to exist on this connection's database.
    tables_ready: bool,
    /// This connection holds the database's migration lock (kept until it closes: one migrator
    /// per database for the whole run, and no lock round trips per step).
    migration_locked: bool,
    /// Session settings were changed (SET without LOCAL) and must be reset before reuse.
    dirty: bool,
}

impl std::ops::Deref for Pooled {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a pooled connection is present until released")
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a pooled connection is present until released")
    }
}

impl Pooled {
    async fn release(mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        if self.dirty && sqlx::Executor::execute(&mut conn, "RESET ALL").await.is_err() {
            return;
        }
        IDLE.lock().expect("connection cache lock").push((std::mem::take(&mut self.url), conn, self.tables_ready, self.migration_locked));
    }
}

async fn connect(url_env: &str, database: &str, what: &str) -> Result<Pooled, StepError> {
    let url = url_from_env(url_env, database)?;
    let idle = {
        let mut idle = IDLE.lock().expect("connection cache lock");
        idle.iter().position(|(u, _, _, _)| *u == url).map(|i| {
            let (_, conn, ready, locked) = idle.swap_remove(i);
            (conn, ready, locked)
        })
    };
    if let Some((mut conn, tables_ready, migration_locked)) = idle
        && conn.ping().await.is_ok()
    {
        return Ok(Pooled { url, conn: Some(conn), tables_ready, migration_locked, dirty: false });
    }
    let opts = PgConnectOptions::from_str(&url).map_err(|e| StepError(format!("`{url_env}` is not a PostgreSQL URL: {}", err(e))))?.application_name(&format!("cutover {what} pid {}", std::process::id()));
    let conn = opts.connect().await.map_err(|e| StepError(format!("cannot connect to database `{database}` (from `{url_env}`): {}", err(e))))?;
    Ok(Pooled { url, conn: Some(conn), tables_ready: false, migration_locked: false, dirty: false })
}

/// Takes the per-database migration lock, polling; never a blocking `pg_advisory_lock`.
async fn migration_lock(conn: &mut PgConnection, database: &str) -> Result<(), StepError> {
    let deadline = tokio::time::Instant::now() + LOCK_WAIT;
    loop {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended('cutover-migrate', 0))").fetch_one(&mut *conn).await.map_err(err)?;
        if got {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT a.application_name || ' (backend pid ' || a.pid || ')' FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('cutover-migrate', 0) LIMIT 1",
            )
            .fetch_optional(&mut *conn)
            .await
            .ok()
            .flatten();
            return Err(StepError(format!("another migrator holds the migration lock of database `{database}`{}; waited {:?}", holder.map(|h| format!(": {h}")).unwrap_or_default(), LOCK_WAIT)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
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
    ctx.run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn migration(step: &Step) -> Result<Migration, StepError> {
    let Params::Migrate { database, url_env, version, file, checksum, transactional, lock_timeout, statement_timeout, undo_sql, sql, records_history, refinery_checksum, .. } = &step.params else {
        return Err(StepError(format!("{} is not a migrate step", step.id)));
    };
    let name = file.trim_end_matches(".sql").split_once("__").map(|(_, n)| n.to_string()).unwrap_or_else(|| file.clone());
    Ok(Migration {
        database: database.clone(),
        url_env: url_env.clone(),
        version: i32::try_from(*version).map_err(|_| StepError(format!("version {version} does not fit refinery's history")))?,
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

impl Migration {
    fn undo_data(&self) -> Value {
        json!({ "version": self.version, "phase": self.phase, "undo_sql": self.undo_sql, "history": self.records_history, "transactional": self.transactional })
    }

    /// Whether this phase is recorded as applied; refuses if it was applied with other content.
    async fn applied(&self, conn: &mut PgConnection, tables_ready: bool) -> Result<bool, StepError> {
        if !tables_ready {
            let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass('cutover_migration_phases')::text").fetch_one(&mut *conn).await.map_err(err)?;
            if exists.is_none() {
                return Ok(false);
            }
        }
        let row: Option<(String, String)> = sqlx::query_as("SELECT checksum, run_id FROM cutover_migration_phases WHERE version = $1 AND phase = $2").bind(self.version).bind(&self.phase).fetch_optional(&mut *conn).await.map_err(err)?;
        match row {
            Some((c, _)) if c != self.checksum => Err(StepError(format!("V{}__{} ({}) was applied from different content (sha256 {c}, the file now has {}); cutover will not apply it again", self.version, self.name, self.phase, self.checksum))),
            Some((_, run)) if run != self.run_id && !self.run_id.is_empty() => Err(StepError(format!("V{}__{} ({}) was applied by another run, {run}, while this one was under way; not applying it twice", self.version, self.name, self.phase))),
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    async fn record(&self, conn: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), sqlx::Error> {
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

    /// One attempt of the whole transactional migration; `create_tables` puts the bookkeeping
    /// tables' creation in the same transaction (one commit, one WAL flush, instead of two).
    async fn attempt_transactional(&self, conn: &mut PgConnection, create_tables: bool) -> Result<(), sqlx::Error> {
        let mut settings = format!("SET LOCAL lock_timeout = '{}ms'; SET LOCAL statement_timeout = '{}ms'", millis(self.lock_timeout), millis(self.statement_timeout));
        if create_tables {
            settings = format!("{HISTORY}; {PHASES}; {settings}");
        }
        let script = self.sql.join("\n");
        let mut tx = conn.begin().await?;
        // Settings and script in one round trip (the simple-query protocol runs them in order).
        let batch = format!("{settings};\n{script}");
        sqlx::Executor::execute(&mut *tx, batch.as_str()).await?;
        self.record(&mut tx).await?;
        tx.commit().await
    }

    /// Statements that cannot run in a transaction, one by one.
    async fn run_non_transactional(&self, conn: &mut PgConnection) -> Result<(), StepError> {
        let settings = format!("SET lock_timeout = '{}ms'; SET statement_timeout = '{}ms'", millis(self.lock_timeout), millis(self.statement_timeout));
        sqlx::Executor::execute(&mut *conn, settings.as_str()).await.map_err(err)?;
        for stmt in &self.sql {
            if let Some(index) = concurrent_index_name(stmt) {
                // A failed CREATE INDEX CONCURRENTLY leaves an INVALID index that blocks a retry.
                let state: Option<bool> = sqlx::query_scalar("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1 AND pg_table_is_visible(c.oid)").bind(&index).fetch_optional(&mut *conn).await.map_err(err)?;
                match state {
                    Some(false) => {
                        let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {index}");
                        sqlx::Executor::execute(&mut *conn, drop.as_str()).await.map_err(err)?;
                    }
                    Some(true) => continue, // built by an attempt whose end was not recorded
                    None => {}
                }
            }
            exec_with_lock_retries(conn, stmt).await.map_err(|e| StepError(format!("`{}`: {}", first_line(stmt), err(e))))?;
        }
        sqlx::Executor::execute(&mut *conn, "RESET lock_timeout; RESET statement_timeout").await.map_err(err)?;
        let mut tx = conn.begin().await.map_err(err)?;
        self.record(&mut tx).await.map_err(err)?;
        tx.commit().await.map_err(err)
    }
}

fn first_line(s: &str) -> String {
    s.split_whitespace().take(12).collect::<Vec<_>>().join(" ")
}

/// The index name of a `CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] name ...` statement.
fn concurrent_index_name(stmt: &str) -> Option<String> {
    let words: Vec<&str> = stmt.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let i = lower.iter().position(|w| w == "concurrently")?;
    if !lower.iter().take(i).any(|w| w == "index") || lower.first().map(String::as_str) != Some("create") {
        return None;
    }
    let mut j = i + 1;
    if lower.get(j).map(String::as_str) == Some("if") {
        j += 3;
    }
    let name = words.get(j)?;
    (!name.eq_ignore_ascii_case("on")).then(|| name.trim_matches('"').to_string())
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

/// Removes the records of an undone phase (and refinery's row, if the phase wrote it).
async fn forget(conn: &mut PgConnection, version: i32, phase: &str, history: bool) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM cutover_migration_phases WHERE version = $1 AND phase = $2").bind(version).bind(phase).execute(&mut *conn).await?;
    if history {
        sqlx::query("DELETE FROM refinery_schema_history WHERE version = $1").bind(version).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Runs `migrate` steps.
pub struct MigrateDriver;

impl Driver for MigrateDriver {
    fn run(&self, step: Step, ctx: StepContext) -> BoxFuture<Result<Done, StepError>> {
        Box::pin(migrate(step, run_id(&ctx)))
    }

    fn undo(&self, step: Step, undo: Value, _ctx: StepContext) -> BoxFuture<Result<(), StepError>> {
        Box::pin(unmigrate(step, undo))
    }

    fn probe(&self, step: Step, ctx: StepContext) -> BoxFuture<Result<Option<Probe>, StepError>> {
        Box::pin(probe_migration(step, run_id(&ctx)))
    }
}

async fn migrate(step: Step, run_id: String) -> Result<Done, StepError> {
        let m = Migration { run_id, ..migration(&step)? };
        let mut conn = connect(&m.url_env, &m.database, "migrate").await?;
        if !conn.migration_locked {
            migration_lock(&mut conn, &m.database).await?;
            conn.migration_locked = true;
        }
        // A transactional migration creates the bookkeeping tables in its own transaction.
        if !conn.tables_ready && !m.transactional {
            let schema = format!("{HISTORY}; {PHASES}");
            sqlx::Executor::execute(&mut *conn, schema.as_str()).await.map_err(err)?;
            conn.tables_ready = true;
        }
        let tables_ready = conn.tables_ready;
        if m.applied(&mut conn, tables_ready).await? {
            return Ok(Done { undo: m.undo_data(), detail: Some(format!("V{} {} was already applied", m.version, m.phase)) });
        }
        if m.transactional {
            let tables_ready = conn.tables_ready;
            let conn_ref = &mut *conn;
            let mut delay = Duration::from_millis(250);
            let mut attempt = 1;
            loop {
                match m.attempt_transactional(conn_ref, !tables_ready).await {
                    Ok(()) => {
                        conn.tables_ready = true;
                        break;
                    }
                    Err(e) if is_lock_timeout(&e) && attempt < LOCK_RETRIES => {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                        attempt += 1;
                    }
                    Err(e) => return Err(StepError(format!("V{}__{} ({}): {}", m.version, m.name, m.phase, err(e)))),
                }
            }
        } else {
            m.run_non_transactional(&mut conn).await?;
        }
        conn.release().await;
        Ok(Done { undo: m.undo_data(), detail: Some(format!("V{}__{} {} applied{}", m.version, m.name, m.phase, if m.records_history { "; refinery history updated" } else { "" })) })
}

async fn unmigrate(step: Step, undo: Value) -> Result<(), StepError> {
        let m = migration(&step)?;
        // Exactly what was recorded when the step ran.
        let undo_sql = undo.get("undo_sql").and_then(Value::as_str).ok_or_else(|| StepError(format!("{} recorded no undo SQL; it cannot be undone", step.id)))?.to_string();
        let history = undo.get("history").and_then(Value::as_bool).unwrap_or(m.records_history);
        let transactional = undo.get("transactional").and_then(Value::as_bool).unwrap_or(m.transactional);
        let mut conn = connect(&m.url_env, &m.database, "rollback").await?;
        if !conn.migration_locked {
            migration_lock(&mut conn, &m.database).await?;
            conn.migration_locked = true;
        }
        if transactional {
            let mut tx = conn.begin().await.map_err(err)?;
            let settings = format!("SET LOCAL lock_timeout = '{}ms'", millis(m.lock_timeout));
            sqlx::Executor::execute(&mut *tx, settings.as_str()).await.map_err(err)?;
            sqlx::Executor::execute(&mut *tx, undo_sql.as_str()).await.map_err(|e| StepError(format!("undo of V{}__{}: {}", m.version, m.name, err(e))))?;
            forget(&mut tx, m.version, &m.phase, history).await.map_err(err)?;
            tx.commit().await.map_err(err)?;
        } else {
            // Derived inverses of such migrations are one statement per line (DROP INDEX
            // CONCURRENTLY ...), and must run outside a transaction too.
            for stmt in undo_sql.lines().filter(|l| !l.trim().is_empty()) {
                exec_with_lock_retries(&mut conn, stmt).await.map_err(|e| StepError(format!("undo `{stmt}`: {}", err(e))))?;
            }
            let mut tx = conn.begin().await.map_err(err)?;
            forget(&mut tx, m.version, &m.phase, history).await.map_err(err)?;
            tx.commit().await.map_err(err)?;
        }
        Ok(())
}

async fn probe_migration(step: Step, run_id: String) -> Result<Option<Probe>, StepError> {
        let m = Migration { run_id, ..migration(&step)? };
        let mut conn = connect(&m.url_env, &m.database, "probe").await?;
        let tables_ready = conn.tables_ready;
        let probe = if m.applied(&mut conn, tables_ready).await? { Probe::Done(m.undo_data()) } else { Probe::NotDone };
        conn.release().await;
        Ok(Some(probe))
}

/// A PostgreSQL client program: from PATH, else the newest under /usr/lib/postgresql.
fn pg_program(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql").map(|d| d.filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name))).filter(|p| p.exists()).collect()).unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| PathBuf::from(name))
}

/// `postgres://user:pass@host/db` → (`postgres://user@host/db`, `pass` percent-decoded).
fn split_password(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://") else { return (url.to_string(), None) };
    let rest = &url[scheme_end + 3..];
    let auth_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            let password = percent_decode(&authority[colon + 1..at]);
            (format!("{}{}{}", &url[..scheme_end + 3 + colon], &authority[at..], &rest[auth_end..]), Some(password))
        }
        _ => (url.to_string(), None),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn run_tool(program: &Path, args: &[&str], password: Option<&str>) -> Result<Vec<u8>, StepError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).env("PGCONNECT_TIMEOUT", "10").stdin(std::process::Stdio::null()).kill_on_drop(true);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd.output().await.map_err(|e| StepError(format!("cannot run {}: {e}", program.display())))?;
    if !out.status.success() {
        return Err(err(format!("{} failed: {}", program.display(), String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(out.stdout)
}

/// Runs `backup` steps: `pg_dump -Fc`, checked with `pg_restore --list`, with path, size and
/// sha256 recorded.
pub struct BackupDriver;

impl Driver for BackupDriver {
    fn run(&self, step: Step, ctx: StepContext) -> BoxFuture<Result<Done, StepError>> {
        Box::pin(async move {
            let Params::Backup { database, url_env, dir } = &step.params else { return Err(StepError(format!("{} is not a backup step", step.id))) };
            let url = url_from_env(url_env, database)?;
            let (url, password) = split_password(&url);
            let dir = ctx.spec_dir.join(dir);
            std::fs::create_dir_all(&dir).map_err(|e| StepError(format!("cannot create {}: {e}", dir.display())))?;
            let run = ctx.run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
            let path = dir.join(format!("{run}-{database}.dump"));
            let tmp = path.with_extension("dump.partial");
            let tmp_s = tmp.to_string_lossy().into_owned();
            run_tool(&pg_program("pg_dump"), &["--format=custom", "--no-password", "--file", &tmp_s, "--dbname", &url], password.as_deref()).await?;
            let listing = run_tool(&pg_program("pg_restore"), &["--list", &tmp_s], None).await?;
            if listing.is_empty() {
                return Err(StepError(format!("pg_restore --list printed nothing for {}", tmp.display())));
            }
            std::fs::rename(&tmp, &path).map_err(|e| StepError(format!("cannot move the dump into place: {e}")))?;
            let bytes = std::fs::read(&path).map_err(|e| StepError(format!("cannot read {}: {e}", path.display())))?;
            let sha = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
            let path_s = path.display().to_string();
            Ok(Done { undo: json!({ "path": path_s, "size": bytes.len(), "sha256": sha }), detail: Some(format!("{path_s} ({} bytes, sha256 {})", bytes.len(), &sha[..16])) })
        })
    }

    fn undo(&self, _step: Step, _undo: Value, _ctx: StepContext) -> BoxFuture<Result<(), StepError>> {
        // The dump is kept: it is what a restore past a pivot would use.
        Box::pin(async { Ok(()) })
    }

    fn restore(&self, step: Step, undo: Value, _ctx: StepContext) -> BoxFuture<Result<String, StepError>> {
        Box::pin(restore_backup(step, undo))
    }

    fn probe(&self, _step: Step, _ctx: StepContext) -> BoxFuture<Result<Option<Probe>, StepError>> {
        // Dumping again is harmless.
        Box::pin(async { Ok(Some(Probe::NotDone)) })
    }
}

/// Preflight checks of one database: reachable, its migration history what the plan expects,
/// and which transactions have been open longer than its `lock_timeout` (DDL would wait for them).
pub async fn check_database(db: &DatabaseCheck) -> Result<String, StepError> {
    let mut conn = connect(&db.url_env, &db.name, "preflight").await?;
    let version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&mut *conn).await.map_err(err)?;
    if !db.pending.is_empty() {
        // The migrations will run DDL and write refinery's history: a standby, a read-only
        // session or a role without CREATE on the schema they land in fails at the first one.
        let (standby, read_only, user, schema, path, create): (bool, String, String, Option<String>, String, Option<bool>) = sqlx::query_as(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only'), current_user::text, current_schema()::text, current_setting('search_path'), has_schema_privilege(current_schema(), 'CREATE')",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?;
        let what = format!("database `{}` (from `{}`)", db.name, db.url_env);
        if standby {
            return Err(StepError(format!("{what} is a standby in recovery; migrations need the primary: point `{}` at it", db.url_env)));
        }
        if read_only == "on" {
            return Err(StepError(format!("{what}: sessions of role `{user}` are read-only (default_transaction_read_only); migrations need a role that may write")));
        }
        let Some(schema) = schema else {
            return Err(StepError(format!("{what}: no schema of the search_path `{path}` exists, so migrations would have nowhere to create tables; create the schema or fix the role's search_path")));
        };
        if create != Some(true) {
            return Err(StepError(format!("{what}: role `{user}` may not create objects in schema `{schema}` (the first of its search_path `{path}`), so the first migration would fail; `GRANT CREATE ON SCHEMA {schema} TO {user}` (PostgreSQL 15 no longer grants it on `public`), or connect as the schema's owner")));
        }
        // Only a table's owner (or a member of the owning role) may ALTER it or index it.
        let foreign: Vec<(String, String)> = sqlx::query_as(
            "SELECT t, pg_get_userbyid(c.relowner)::text FROM unnest($1::text[]) AS t JOIN pg_class c ON c.oid = to_regclass(t) WHERE NOT pg_has_role(current_user, c.relowner, 'USAGE') ORDER BY t",
        )
        .bind(&db.owned_tables)
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?;
        if !foreign.is_empty() {
            let list: Vec<String> = foreign.iter().map(|(t, o)| format!("`{t}` (owned by `{o}`)")).collect();
            return Err(StepError(format!("{what}: the migrations alter or index {}, which role `{user}` does not own, so they would fail with \"must be owner of table\"; connect as the owner, or `GRANT {} TO {user}`", list.join(", "), foreign[0].1)));
        }
    }
    let has_history: Option<String> = sqlx::query_scalar("SELECT to_regclass('refinery_schema_history')::text").fetch_one(&mut *conn).await.map_err(err)?;
    let rows: Vec<(i32, String)> = if has_history.is_some() {
        sqlx::query("SELECT version, COALESCE(checksum, '') FROM refinery_schema_history ORDER BY version").fetch_all(&mut *conn).await.map_err(err)?.iter().map(|r| (r.get(0), r.get(1))).collect()
    } else {
        Vec::new()
    };
    let mut problems = Vec::new();
    for e in &db.applied {
        match rows.iter().find(|(v, _)| i64::from(*v) == e.version as i64) {
            None => problems.push(format!("V{}__{} should already be applied (it is at or below the baseline) but is not in refinery_schema_history", e.version, e.name)),
            Some((_, c)) if *c != e.checksum => problems.push(format!("V{}__{} was applied from different content (checksum {c}, the file has {})", e.version, e.name, e.checksum)),
            _ => {}
        }
    }
    for e in &db.pending {
        if rows.iter().any(|(v, _)| i64::from(*v) == e.version as i64) {
            problems.push(format!("V{}__{} is already applied, but this release plans to apply it", e.version, e.name));
        }
    }
    if !problems.is_empty() {
        return Err(StepError(format!("database `{}`: {}", db.name, problems.join("; "))));
    }
    // Who, how long and in what state; not the query text, which may hold data or secrets and
    // would end up in the run's log.
    let long: Vec<String> = sqlx::query("SELECT pid, EXTRACT(EPOCH FROM now() - xact_start)::bigint, COALESCE(NULLIF(application_name, ''), usename::text, '?') || ', ' || COALESCE(state, '?') FROM pg_stat_activity WHERE datname = current_database() AND xact_start < now() - make_interval(secs => $1) AND pid <> pg_backend_pid() ORDER BY xact_start")
        .bind(db.lock_timeout.as_millis() as f64 / 1000.0)
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?
        .iter()
        .map(|r| format!("pid {} open {}s: {}", r.get::<i32, _>(0), r.get::<i64, _>(1), r.get::<String, _>(2)))
        .collect();
    conn.release().await;
    let mut out = format!("`{}`: PostgreSQL {version}, {} applied, {} pending", db.name, db.applied.len(), db.pending.len());
    if !long.is_empty() {
        out.push_str(&format!("; transactions open longer than the lock_timeout ({}), which would make DDL wait: {}", db.lock_timeout, long.join("; ")));
    }
    Ok(out)
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

fn backfill(step: &Step) -> Result<Backfill, StepError> {
    let Params::Backfill { database, url_env, table, key, from_column, to_column, batch_size, pause, batch_sql } = &step.params else {
        return Err(StepError(format!("{} is not a backfill step", step.id)));
    };
    Ok(Backfill { database: database.clone(), url_env: url_env.clone(), table: table.clone(), key: key.clone(), from: from_column.clone(), to: to_column.clone(), batch_size: *batch_size, pause: *pause, batch_sql: batch_sql.clone() })
}

impl Driver for BackfillDriver {
    fn run(&self, step: Step, ctx: StepContext) -> BoxFuture<Result<Done, StepError>> {
        Box::pin(run_backfill(step, ctx))
    }

    fn undo(&self, _step: Step, _undo: Value, _ctx: StepContext) -> BoxFuture<Result<(), StepError>> {
        // Undoing the expand step drops the new column; the copy has nothing of its own to undo.
        Box::pin(async { Ok(()) })
    }

    fn probe(&self, step: Step, _ctx: StepContext) -> BoxFuture<Result<Option<Probe>, StepError>> {
        Box::pin(probe_backfill(step))
    }
}

async fn run_backfill(step: Step, ctx: StepContext) -> Result<Done, StepError> {
    let b = backfill(&step)?;
    let mut conn = connect(&b.url_env, &b.database, "backfill").await?;
    let started = std::time::Instant::now();
    // Where the last committed batch ended (a resume continues after it).
    let mut cursor: Option<i64> = ctx.resume_from.as_ref().and_then(|p| p.get("cursor")).and_then(Value::as_i64);
    let mut rows: u64 = ctx.resume_from.as_ref().and_then(|p| p.get("rows")).and_then(Value::as_u64).unwrap_or(0);
    // Rows inserted after the expand step get the new column from the sync trigger, so the walk
    // ends at the last key that existed when it began (kept in the progress for resumes);
    // chasing a live table's tail would never finish under steady inserts.
    let last_key_sql = format!("SELECT max({})::bigint FROM {}", b.key, b.table);
    let end: Option<i64> = match ctx.resume_from.as_ref().and_then(|p| p.get("end")).and_then(Value::as_i64) {
        Some(e) => Some(e),
        None => sqlx::query_scalar(&last_key_sql).fetch_one(&mut *conn).await.map_err(err)?,
    };
    // The progress total is an estimate: the planner's row count when the table was analyzed,
    // else the key range. A count(*) would scan the whole table before the first batch.
    let reltuples: Option<f32> = sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)").bind(&b.table).fetch_optional(&mut *conn).await.map_err(err)?;
    let key_range: Option<i64> = sqlx::query_scalar(&format!("SELECT ($1::bigint - min({}))::bigint + 1 FROM {}", b.key, b.table)).bind(end.unwrap_or(0)).fetch_one(&mut *conn).await.map_err(err)?;
    let estimate: i64 = match reltuples {
        Some(r) if r > 0.0 => r as i64,
        _ => key_range.unwrap_or(0).max(0),
    };
    // Batches commit without waiting for their WAL flush: much less fsync contention with the
    // application's own commits. A server crash could lose the last batches even though their
    // cursor was recorded, so the copy is verified at the end and swept again if needed.
    // Custom plans for every batch: a generic plan (chosen after a few executions) cannot see the
    // key range and, on a table without fresh statistics, scans the whole table per batch.
    conn.dirty = true;
    sqlx::Executor::execute(&mut *conn, "SET synchronous_commit = off; SET plan_cache_mode = force_custom_plan").await.map_err(err)?;
    let first_lower = format!("SELECT (min({key}) - 1)::bigint FROM {table}", key = b.key, table = b.table);
    if cursor.is_none() {
        cursor = sqlx::query_scalar::<_, Option<i64>>(&first_lower).fetch_one(&mut *conn).await.map_err(err)?;
        if cursor.is_none() {
            return Ok(Done { undo: Value::Null, detail: Some(format!("`{}` is empty: nothing to copy", b.table)) });
        }
    }
    let mut last_report = std::time::Instant::now();
    let left = format!("SELECT EXISTS (SELECT 1 FROM {} WHERE {} IS DISTINCT FROM {})", b.table, b.to, b.from);
    let mut sweeps = 0;
    loop {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        // One statement per batch: finds the next keys, copies them, returns the last key.
        let (upper, changed): (Option<i64>, i64) = loop {
            match sqlx::query_as(&b.batch_sql).bind(cursor).bind(i64::from(b.batch_size)).fetch_one(&mut *conn).await {
                Ok(r) => break r,
                Err(e) if is_lock_timeout(&e) && attempt < LOCK_RETRIES => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(StepError(format!("backfill of {}.{} after {} = {:?}: {}", b.table, b.to, b.key, cursor, err(e)))),
            }
        };
        let upper = upper.filter(|_| cursor.is_some_and(|c| end.is_some_and(|e| c < e)));
        let Some(upper) = upper else {
            // Past the last key: verify, and sweep once more from the start if rows were lost.
            let remaining: bool = sqlx::query_scalar(&left).fetch_one(&mut *conn).await.map_err(err)?;
            if !remaining || sweeps >= 3 {
                if remaining {
                    return Err(StepError(format!("{}.{} still differs from {} after {sweeps} extra sweeps", b.table, b.to, b.from)));
                }
                break;
            }
            sweeps += 1;
            cursor = sqlx::query_scalar::<_, Option<i64>>(&first_lower).fetch_one(&mut *conn).await.map_err(err)?;
            continue;
        };
        rows += changed as u64;
        cursor = Some(upper);
        if let Some(p) = &ctx.progress {
            let secs = started.elapsed().as_secs_f64().max(0.001);
            let mut data = json!({ "cursor": upper, "rows": rows, "end": end });
            // A human line about once a second; the cursor every batch.
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = std::time::Instant::now();
                data["message"] = json!(format!("{rows} of about {estimate} rows, {:.0} rows/s", rows as f64 / secs));
            }
            p.report(data);
        }
        if !b.pause.is_zero() {
            tokio::time::sleep(Duration::from_millis(b.pause.as_millis())).await;
        }
    }
    let secs = started.elapsed().as_secs_f64().max(0.001);
    conn.release().await;
    Ok(Done { undo: Value::Null, detail: Some(format!("copied {} into {} on {rows} rows in {secs:.1}s ({:.0} rows/s)", b.from, b.to, rows as f64 / secs)) })
}

async fn probe_backfill(step: Step) -> Result<Option<Probe>, StepError> {
    let b = backfill(&step)?;
    let mut conn = connect(&b.url_env, &b.database, "probe").await?;
    let left: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {} WHERE {} IS DISTINCT FROM {})", b.table, b.to, b.from)).fetch_one(&mut *conn).await.map_err(err)?;
    Ok(Some(if left { Probe::NotDone } else { Probe::Done(Value::Null) }))
}

/// Restores a database from the dump a backup step recorded: checks the file against its recorded
/// sha256, drops the database (closing its connections) and recreates it from the dump. Writes
/// made since the backup are lost; only an explicit `rollback --restore-backup` gets here.
async fn restore_backup(step: Step, undo: Value) -> Result<String, StepError> {
    let Params::Backup { database, url_env, .. } = &step.params else { return Err(StepError(format!("{} is not a backup step", step.id))) };
    let path = undo.get("path").and_then(Value::as_str).ok_or_else(|| StepError(format!("{} recorded no dump path", step.id)))?;
    let sha = undo.get("sha256").and_then(Value::as_str).unwrap_or_default();
    let bytes = std::fs::read(path).map_err(|e| StepError(format!("cannot read the backup {path}: {e}")))?;
    let actual = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
    if actual != sha {
        return Err(StepError(format!("the backup {path} changed since it was taken (sha256 {actual}, recorded {sha}); refusing to restore it")));
    }
    let url = url_from_env(url_env, database)?;
    let opts = PgConnectOptions::from_str(&url).map_err(err)?;
    let dbname = opts.get_database().map(str::to_string).ok_or_else(|| StepError(format!("`{url_env}` names no database")))?;
    // Drop and recreate from a maintenance connection to the same server.
    let mut admin = opts.clone().database("postgres").application_name("cutover restore").connect().await.map_err(|e| StepError(format!("cannot connect to the server of `{database}`: {}", err(e))))?;
    let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", dbname.replace('"', "\"\""));
    sqlx::Executor::execute(&mut admin, drop.as_str()).await.map_err(|e| StepError(format!("cannot drop `{dbname}` to restore it: {}", err(e))))?;
    let _ = admin.close().await;
    let (admin_url, password) = split_password(&url);
    let admin_url = match admin_url.rfind('/') {
        Some(i) if admin_url[..i].contains("://") && i > admin_url.find("://").unwrap() + 2 => {
            let query = admin_url[i..].find('?').map(|q| admin_url[i + q..].to_string()).unwrap_or_default();
            format!("{}/postgres{query}", &admin_url[..i])
        }
        _ => admin_url,
    };
    run_tool(&pg_program("pg_restore"), &["--create", "--exit-on-error", "--no-password", "--dbname", &admin_url, path], password.as_deref()).await?;
    Ok(format!("{path}, {} bytes", bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_split_out_of_urls() {
        assert_eq!(split_password("postgres://app:p%40ss@db:5432/app?x=1"), ("postgres://app@db:5432/app?x=1".into(), Some("p@ss".into())));
        assert_eq!(split_password("postgres://app@db/app"), ("postgres://app@db/app".into(), None));
    }

    #[test]
    fn concurrent_index_names() {
        assert_eq!(concurrent_index_name("CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);"), Some("users_email_idx".into()));
        assert_eq!(concurrent_index_name("create unique index concurrently \"u\" on t (a)"), Some("u".into()));
        assert_eq!(concurrent_index_name("CREATE INDEX CONCURRENTLY ON t (a)"), None);
        assert_eq!(concurrent_index_name("DROP INDEX CONCURRENTLY x"), None);
    }
}
