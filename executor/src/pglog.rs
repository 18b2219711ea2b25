//! The PostgreSQL event-log backend, for teams that want a run's history in their database
//! rather than on one machine's disk (`--log-database-url` or `CUTOVER_LOG_DATABASE_URL`).
//!
//! ```sql
//! cutover_runs   (run_id text PRIMARY KEY, plan text, created_at timestamptz)
//! cutover_events (run_id text, seq bigint, crc bigint, payload text, PRIMARY KEY (run_id, seq))
//! ```
//!
//! Rows are only ever INSERTed; cutover never updates or deletes them. Each event is its own
//! autocommit INSERT, committed before the effect it announces starts. `payload` holds exactly the
//! bytes the file backend would frame (seq 0 is the header) and `crc` the same chained checksum,
//! so a missing, altered or spliced row is detected the same way. One executor at a time: a
//! session-level `pg_try_advisory_lock` on the run, taken on a dedicated connection outside any
//! transaction and polled (never a blocking wait); the connection's `application_name` names the
//! holder, so a refusal can say who has the run.

use crate::error::ExecError;
use crate::event::{Event, Record};
use crate::log::{Chain, Header, LogContents, crc};
use crate::redact::Redactor;
use crate::store::{Holder, RecordedPlan, RunSummary, hostname};
use chrono::Utc;
use cutover_planner::dag::Plan;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Row};
use std::str::FromStr;
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cutover_runs (
    run_id text PRIMARY KEY,
    plan text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS cutover_events (
    run_id text NOT NULL REFERENCES cutover_runs (run_id),
    seq bigint NOT NULL,
    crc bigint NOT NULL,
    payload text NOT NULL,
    PRIMARY KEY (run_id, seq)
);";

/// Where PostgreSQL-logged runs live.
#[derive(Debug, Clone)]
pub struct PgStore {
    url: String,
    lock_wait: Duration,
}

/// A run open for appending: its own connection, holding the run's advisory lock.
pub struct PgRun {
    conn: PgConnection,
    run_id: String,
    chain: Chain,
}

/// sqlx errors never contain the password, but the URL may appear in some: whatever prints this
/// error removes URL passwords (the CLI does, from every line).
fn db_err(action: &'static str, source: sqlx::Error) -> ExecError {
    ExecError::PgLog { action, source }
}

fn lock_key_sql() -> &'static str {
    "hashtextextended('cutover-run:' || $1, 0)"
}

impl PgStore {
    /// A store at `url`; `lock_wait` is how long to poll for a held run before refusing.
    pub fn new(url: &str, lock_wait: Duration) -> Self {
        Self {
            url: url.to_string(),
            lock_wait,
        }
    }

    /// Connects; creates the log's tables when `create` (only a new run needs to: reading
    /// commands must work with read-only privileges).
    async fn connect(
        &self,
        application_name: &str,
        create: bool,
    ) -> Result<PgConnection, ExecError> {
        let opts = PgConnectOptions::from_str(&self.url)
            .map_err(|e| db_err("bad URL", e))?
            .application_name(application_name);
        let mut conn = opts
            .connect()
            .await
            .map_err(|e| db_err("cannot connect", e))?;
        if create {
            sqlx::raw_sql(SCHEMA)
                .execute(&mut conn)
                .await
                .map_err(|e| db_err("cannot create tables", e))?;
        }
        Ok(conn)
    }

    /// Whether this database holds a cutover log at all.
    async fn has_tables(conn: &mut PgConnection) -> Result<bool, ExecError> {
        sqlx::query_scalar(
            "SELECT to_regclass('cutover_events') IS NOT NULL AND to_regclass('cutover_runs') IS \
             NOT NULL",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| db_err("reading the catalog", e))
    }

    /// Connects to read or continue `run_id`, which must exist.
    async fn connect_existing(
        &self,
        application_name: &str,
        run_id: &str,
    ) -> Result<PgConnection, ExecError> {
        let mut conn = self.connect(application_name, false).await?;
        if !Self::has_tables(&mut conn).await? {
            return Err(ExecError::PgLogEmpty {
                run: run_id.to_string(),
            });
        }
        Ok(conn)
    }

    /// Takes the run's advisory lock on `conn`, polling up to `lock_wait`, or names the holder.
    async fn lock(&self, conn: &mut PgConnection, run_id: &str) -> Result<(), ExecError> {
        let deadline = tokio::time::Instant::now() + self.lock_wait;
        loop {
            let got: bool =
                sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({})", lock_key_sql()))
                    .bind(run_id)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(|e| db_err("advisory lock", e))?;
            if got {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let holder = self.holder(conn, run_id).await;
                // The server frees a session's advisory locks only once it notices its client is
                // gone, a moment after a kill -9: if the holder is a dead process on this machine,
                // wait for that instead of refusing.
                // No holder left to name means it was let go just now: try again too.
                let gone = holder
                    .as_ref()
                    .is_none_or(|h| h.host == hostname() && !process_alive(h.pid));
                if gone && tokio::time::Instant::now() < deadline + Duration::from_secs(10) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                return Err(ExecError::Locked {
                    run: run_id.into(),
                    holder,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn holder(&self, conn: &mut PgConnection, run_id: &str) -> Option<Holder> {
        let sql = format!(
            "SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a \
                ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | \
             l.objid::bigint) = ({}) LIMIT 1",
            lock_key_sql()
        );
        let row = sqlx::query(&sql)
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await
            .ok()
            .flatten()?;
        let app: String = row.try_get(0).ok()?;
        let since: chrono::DateTime<Utc> = row.try_get(1).ok()?;
        parse_application_name(&app, since)
    }

    /// Creates a run (its plan and header) and opens it for appending.
    pub async fn create(
        &self,
        run_id: &str,
        plan: &Plan,
        header: &Header,
        command: &str,
    ) -> Result<PgRun, ExecError> {
        let mut conn = self.connect(&application_name(command), true).await?;
        self.lock(&mut conn, run_id).await?;
        let plan_json = serde_json::to_string(&RecordedPlan::of(plan)).expect("plans serialize");
        let payload = serde_json::to_string(header).expect("headers serialize");
        let c = crc(0, 0, payload.as_bytes());
        // The run row and its header together or not at all (the lock is session-level and was
        // taken before this transaction, so it is not tied to it).
        let mut tx = conn
            .begin()
            .await
            .map_err(|e| db_err("cannot record the run", e))?;
        sqlx::query("INSERT INTO cutover_runs (run_id, plan) VALUES ($1, $2)")
            .bind(run_id)
            .bind(plan_json)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_err("cannot record the run", e))?;
        sqlx::query(
            "INSERT INTO cutover_events (run_id, seq, crc, payload) VALUES ($1, 0, $2, $3)",
        )
        .bind(run_id)
        .bind(i64::from(c))
        .bind(payload)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err("cannot write the header", e))?;
        tx.commit()
            .await
            .map_err(|e| db_err("cannot record the run", e))?;
        Ok(PgRun {
            conn,
            run_id: run_id.into(),
            chain: Chain::new(1, c),
        })
    }

    async fn read_with(
        &self,
        conn: &mut PgConnection,
        run_id: &str,
    ) -> Result<(LogContents, Plan), ExecError> {
        let plan = Self::recorded_plan(conn, run_id).await?;
        let rows = sqlx::query(
            "SELECT seq, crc, payload FROM cutover_events WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db_err("reading events", e))?;
        let rows: Vec<(i64, i64, String)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        Ok((contents(run_id, &rows)?, plan))
    }

    /// The plan row of `run_id`, checked for its format and rebuilt.
    async fn recorded_plan(conn: &mut PgConnection, run_id: &str) -> Result<Plan, ExecError> {
        let plan_row = sqlx::query("SELECT plan FROM cutover_runs WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_err("reading the run", e))?;
        let Some(plan_row) = plan_row else {
            return Err(ExecError::NoSuchPgRun {
                run: run_id.to_string(),
            });
        };
        let plan_json: String = plan_row.get(0);
        crate::store::check_plan_format(
            plan_json.as_bytes(),
            &format!("the recorded plan of {run_id} in the PostgreSQL log"),
        )?;
        let rec: RecordedPlan =
            serde_json::from_str(&plan_json).map_err(|source| ExecError::PgPlanUnreadable {
                run: run_id.to_string(),
                source,
            })?;
        Plan::from_steps(rec.release, rec.plan_hash, rec.steps, rec.strategies).map_err(|source| {
            ExecError::PgPlanInvalid {
                run: run_id.to_string(),
                source,
            }
        })
    }

    /// Opens `run_id` for appending (takes its lock).
    pub async fn open(
        &self,
        run_id: &str,
        command: &str,
    ) -> Result<(PgRun, LogContents, Plan), ExecError> {
        let mut conn = self
            .connect_existing(&application_name(command), run_id)
            .await?;
        self.lock(&mut conn, run_id).await?;
        let (contents, plan) = self.read_with(&mut conn, run_id).await?;
        let run = PgRun {
            conn,
            run_id: run_id.into(),
            chain: Chain::new(contents.records.len() as u64 + 1, contents.last_crc),
        };
        Ok((run, contents, plan))
    }

    /// Reads a run without locking it, with its current lock holder.
    pub async fn read(
        &self,
        run_id: &str,
    ) -> Result<(LogContents, Plan, Option<Holder>), ExecError> {
        let mut conn = self.connect_existing("cutover (read-only)", run_id).await?;
        let (contents, plan) = self.read_with(&mut conn, run_id).await?;
        let holder = self.holder(&mut conn, run_id).await;
        Ok((contents, plan, holder))
    }

    /// Every run, newest first.
    pub async fn list(&self) -> Result<Vec<RunSummary>, ExecError> {
        let mut conn = self.connect("cutover (read-only)", false).await?;
        if !Self::has_tables(&mut conn).await? {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT run_id FROM cutover_runs ORDER BY created_at DESC, run_id DESC",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(|e| db_err("listing runs", e))?;
        let mut out = Vec::new();
        for id in ids {
            let replayed = match self.read_with(&mut conn, &id).await {
                Ok((c, _)) => crate::state::RunState::replay(&c.header, &c.records)
                    .map_err(|e| crate::error::chain(&e)),
                Err(e) => Err(crate::error::chain(&e)),
            };
            let summary = match replayed {
                Ok(st) => {
                    let locked = self.holder(&mut conn, &id).await.is_some();
                    RunSummary::of(id, &st, locked, Default::default())
                }
                Err(e) => RunSummary {
                    run_id: id,
                    release: String::new(),
                    started_at: None,
                    updated_at: None,
                    state: format!("unreadable: {e}"),
                    user: String::new(),
                    stopped_at: None,
                    dry_run: false,
                    dir: Default::default(),
                },
            };
            out.push(summary);
        }
        Ok(out)
    }
}

/// The log of `run_id` from its rows (`seq`, `crc`, `payload`, in seq order), each checked against
/// the chained checksum, as the file backend checks its frames.
fn contents(run_id: &str, rows: &[(i64, i64, String)]) -> Result<LogContents, ExecError> {
    let damaged = |seq: u64, what: String| ExecError::PgLogDamaged {
        run: run_id.to_string(),
        seq,
        what,
    };
    let mut prev = 0u32;
    let mut header = None;
    let mut records = Vec::with_capacity(rows.len());
    for (i, (seq, stored, payload)) in rows.iter().enumerate() {
        let seq = *seq;
        if seq != i as i64 {
            return Err(damaged(
                i as u64,
                format!("found seq {seq}: rows are missing"),
            ));
        }
        let c = crc(prev, seq as u64, payload.as_bytes());
        if i64::from(c) != *stored {
            return Err(damaged(
                seq as u64,
                "checksum mismatch (the row was altered, or rows were spliced)".into(),
            ));
        }
        prev = c;
        if seq == 0 {
            let h: Header = serde_json::from_str(payload)
                .map_err(|e| damaged(0, format!("the header row is intact but unreadable: {e}")))?;
            if !crate::log::readable_format(h.format_version) {
                return Err(ExecError::PgLogFormat {
                    run: run_id.to_string(),
                    found: h.format_version,
                });
            }
            header = Some(h);
        } else {
            let record = serde_json::from_str::<Record>(payload).map_err(|source| {
                ExecError::PgRowUnreadable {
                    run: run_id.to_string(),
                    seq,
                    source,
                }
            })?;
            records.push(record);
        }
    }
    let header = header.ok_or_else(|| damaged(0, "the header row is missing".into()))?;
    Ok(LogContents {
        header,
        records,
        valid_len: rows.len() as u64,
        last_crc: prev,
        torn: None,
    })
}

impl PgRun {
    /// Redacts secrets from every record written from now on.
    pub fn set_redactor(&mut self, redactor: Redactor) {
        self.chain.set_redactor(redactor);
    }

    /// Appends `event`; returns once the INSERT is committed.
    pub async fn append(&mut self, event: Event) -> Result<Record, ExecError> {
        let (record, payload, c) = self.chain.prepare(event);
        let payload = String::from_utf8(payload).expect("records are JSON text");
        sqlx::query(
            "INSERT INTO cutover_events (run_id, seq, crc, payload) VALUES ($1, $2, $3, $4)",
        )
        .bind(&self.run_id)
        .bind(record.seq as i64)
        .bind(i64::from(c))
        .bind(&payload)
        .execute(&mut self.conn)
        .await
        .map_err(|e| db_err("cannot append an event", e))?;
        self.chain.committed(record.seq, c);
        Ok(record)
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Releases the advisory lock and closes the connection.
    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}

/// Whether process `pid` exists on this machine.
fn process_alive(pid: u32) -> bool {
    // Signal 0 checks existence and permission without sending anything.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn application_name(command: &str) -> String {
    format!(
        "cutover {command} pid {} on {}",
        std::process::id(),
        hostname()
    )
}

fn parse_application_name(app: &str, since: chrono::DateTime<Utc>) -> Option<Holder> {
    // "cutover <command> pid <pid> on <host>"
    let rest = app.strip_prefix("cutover ")?;
    let (command, rest) = rest.split_once(" pid ")?;
    let (pid, host) = rest.split_once(" on ")?;
    Some(Holder {
        pid: pid.parse().ok()?,
        host: host.into(),
        since,
        command: command.into(),
    })
}
