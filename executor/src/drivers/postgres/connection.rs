//! Connections to the release's databases, and how they name themselves.
//!
//! - **Names.** Every connection's `application_name` is `cutover <what> <run tag> pid
//!   <pid>.<nonce>` ([`attach_run`]), so a later executor of the same run can find what a dead
//!   one left running (see [`super::fence`]), and a lock holder is named in messages.
//! - **The idle cache** ([`connect`], [`Pooled`]). Preflight, backfill, probe and fence
//!   connections are kept when a step leaves them clean and reused by the next step of the
//!   release. This is not an `sqlx::PgPool`, on purpose: a pool retries a refused connection
//!   until its acquire timeout and then reports only "pool timed out", where a step must fail at
//!   once naming the database, the variable and PostgreSQL's own error (`PgError::Connect`); a
//!   pool returns a dropped connection to be reused, where a failed step's connection, in an
//!   unknown state, must be closed; and a pool fixes one `application_name` per pool, where each
//!   connection names what opened it.
//! - **The migrator** ([`migrator`]). Migrations of one database go through one connection that
//!   holds the migration lock (a session-level advisory lock) for the whole run: a pool, free to
//!   hand any of its connections to the next caller, cannot keep that lock with the run.

use super::{err, url_from_env};
use crate::driver::StepError;
use crate::drivers::pgerror::PgError;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::time::Duration;

/// How long a migrate step waits for another migrator's advisory lock.
const LOCK_WAIT: Duration = Duration::from_secs(60);

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
pub(super) fn run_tag(run_id: &str) -> String {
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
pub(super) fn own_suffix() -> String {
    format!(" pid {}.{}", std::process::id(), nonce())
}

fn application_name(what: &str) -> String {
    format!("cutover {what} {}{}", current_tag(), own_suffix())
}

/// A connection this process opened and a step left clean.
struct Idle {
    /// The run tag and URL it was opened for.
    key: String,
    conn: PgConnection,
}

/// Connections this process opened and left clean, by URL and run tag: the steps of a release
/// reuse them instead of paying a connection setup each (most of a small migration's cost). They
/// never hold the migration lock: that belongs to the run's migrator connection ([`Migrator`]).
static IDLE: std::sync::Mutex<Vec<Idle>> = std::sync::Mutex::new(Vec::new());

/// A connection borrowed for one step. [`Pooled::release`] cleans it (session settings) and keeps
/// it for the next step; dropping it instead closes it, which is what a failed step does, so a
/// connection in an unknown state is never reused.
#[derive(Debug)]
pub(super) struct Pooled {
    key: String,
    conn: Option<PgConnection>,
    /// Session settings were changed (SET without LOCAL) and must be reset before reuse.
    pub(super) dirty: bool,
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
    /// Gives the connection back for the next step, its session settings reset; one that cannot
    /// be reset is closed.
    pub(super) async fn release(mut self) {
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
        IDLE.lock().expect("connection cache lock").push(Idle {
            key: std::mem::take(&mut self.key),
            conn,
        });
    }
}

/// A new connection to `database` (URL in `url_env`), named for `what` it is for.
pub(super) async fn open(
    url_env: &str,
    database: &str,
    what: &str,
) -> Result<PgConnection, StepError> {
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

/// A connection to `database` for one step: an idle one of this run that still answers, else a
/// new one named for `what`.
pub(super) async fn connect(
    url_env: &str,
    database: &str,
    what: &str,
) -> Result<Pooled, StepError> {
    let key = format!("{} {}", current_tag(), url_from_env(url_env, database)?);
    let idle = {
        let mut idle = IDLE.lock().expect("connection cache lock");
        idle.iter()
            .position(|i| i.key == key)
            .map(|i| idle.swap_remove(i).conn)
    };
    let conn = if let Some(mut conn) = idle
        && conn.ping().await.is_ok()
    {
        conn
    } else {
        open(url_env, database, what).await?
    };
    Ok(Pooled {
        key,
        conn: Some(conn),
        dirty: false,
    })
}

/// The one connection per database through which this process migrates (and undoes
/// migrations). It holds the database's migration lock, a session-level advisory lock, for as
/// long as it lives: the lock belongs to the run's executor, not to a step, so no step of the
/// run ever waits for it, and nothing else (another run, a plain refinery migrator that takes
/// the same lock) migrates meanwhile. Migrations of one database run one at a time through it.
pub(super) struct Migrator {
    pub(super) conn: PgConnection,
    /// The history and phase tables are known to exist in its database.
    pub(super) tables_ready: bool,
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
    sqlx::query_scalar(
        "SELECT current_database() || ' ' || coalesce(inet_server_port()::text, \
         current_setting('port')) || ' ' || pg_postmaster_start_time()::text",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(err)
}

/// This process's migrator of the database at `url_env`, connected and holding the migration
/// lock (taken on first use, waited for while another process holds it).
pub(super) async fn migrator(
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
                "SELECT COALESCE(NULLIF(a.application_name, ''), a.usename::text, '?') || ' \
                    (backend pid ' || a.pid || COALESCE(', from ' || host(a.client_addr), '') \
                    || ')' FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | \
                 l.objid::bigint) = hashtextextended('cutover-migrate', 0)
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
