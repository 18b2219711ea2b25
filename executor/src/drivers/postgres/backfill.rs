//! [`BackfillDriver`]: copies a column into its new twin in primary-key batches, recording its
//! cursor as progress so a resume continues after the last recorded batch.

use super::connection::{Pooled, connect};
use super::fence::fence_database;
use super::first_line;
use super::indexes::{IndexState, create_index_concurrently, index_state};
use super::retry::LockBackoff;
use super::{err, run_id};
use crate::driver::{BoxFuture, Done, Driver, Job, Probe, StepContext, StepError};
use crate::drivers::pgerror::PgError;
use crate::drivers::pgstmt::{self, Effect};
use cutover_planner::dag::BackfillParams;
use cutover_planner::duration::Duration as SpecDuration;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnection;
use std::time::Duration;

/// The wait before a batch's second attempt after a lock timeout (then 0.2 s, 0.4 s, ...):
/// shorter than DDL's, a batch is a short statement.
const BATCH_BACKOFF: Duration = Duration::from_millis(100);

/// How often a backfill records its cursor, at most (the first batch of an attempt always). Each
/// record is a durable append to the run's log (an fsync, or a round trip to the PostgreSQL log)
/// that holds up the next batch on the executor's one thread: after every batch it was about 3 ms a
/// batch, half the copy's time in batches of 1,000 (bench/type-change-bench.sh, README). A resume
/// redoes at most this much, and finds those rows already copied (`IS DISTINCT FROM`).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Runs `backfill` steps: copies a column into its new twin in primary-key batches, each its own
/// short transaction, recording the last committed key as progress (every `PROGRESS_EVERY` (250 ms)) so a
/// resume continues after it. Rows changed meanwhile by either app version stay right through the
/// sync trigger the expand step installed, and a batch run twice changes nothing (`IS DISTINCT
/// FROM`).
pub struct BackfillDriver;

struct Backfill {
    database: String,
    url_env: String,
    table: String,
    key: String,
    /// The value each new column gets (the old column, or a type change's conversion of it),
    /// joined by commas: for messages.
    from: String,
    /// The condition of a row still to do.
    pending: String,
    /// Run with `session_replication_role = replica` (see [`BackfillParams::replica`]).
    replica: bool,
    /// The new columns, joined by commas: for messages.
    to: String,
    batch_size: u32,
    pause: SpecDuration,
    batch_sql: String,
    /// Indexes built once the rows are copied ([`BackfillParams::indexes`]).
    indexes: Vec<String>,
    lock_timeout: SpecDuration,
}

/// A backfill's progress, recorded after a batch every `PROGRESS_EVERY` (250 ms): a resume continues
/// after `cursor`.
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
        value,
        pending,
        replica,
        more,
        indexes,
        lock_timeout,
        batch_size,
        pause,
        batch_sql,
    } = &step.params;
    // Each column filled (the first and those of `more`): its value, target and test.
    let (mut from, mut to, mut differs) = (Vec::new(), Vec::new(), Vec::new());
    let first = (from_column, to_column, value);
    let rest = more
        .iter()
        .map(|c| (&c.from_column, &c.to_column, &c.value));
    for (source, target, value) in std::iter::once(first).chain(rest) {
        let value = value.as_deref().unwrap_or(source);
        differs.push(format!("{target} IS DISTINCT FROM {value}"));
        from.push(value.to_string());
        to.push(target.to_string());
    }
    Backfill {
        database: database.clone(),
        url_env: url_env.clone(),
        table: table.clone(),
        key: key.clone(),
        replica: *replica,
        from: from.join(", "),
        pending: pending.clone().unwrap_or_else(|| differs.join(" OR ")),
        to: to.join(", "),
        batch_size: *batch_size,
        pause: *pause,
        batch_sql: batch_sql.clone(),
        indexes: indexes.clone(),
        lock_timeout: lock_timeout.unwrap_or_default(),
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
    let quiet = prepare(&mut conn, b.replica).await?;
    if cursor.is_none() {
        cursor = b.before_first_key(&mut conn).await?;
        if cursor.is_none() {
            return Ok(Done {
                undo: (),
                detail: Some(format!("`{}` is empty: nothing to copy", b.table)),
            });
        }
    }
    let mut progress = Reported {
        estimate,
        last: None,
    };
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
    let built = b.build_indexes(&mut conn).await?;
    conn.release().await;
    let fired = if b.replica && !quiet {
        "; the table's own triggers fired for it (the role may not set \
         session_replication_role)"
    } else {
        ""
    };
    Ok(Done {
        undo: (),
        detail: Some(format!(
            "copied {} into {} on {rows} rows in {secs:.1}s ({:.0} rows/s){fired}{built}",
            b.from,
            b.to,
            rows as f64 / secs
        )),
    })
}

/// Sets the backfill's session up; with `replica`, tries [`quiet_triggers`] and says whether the
/// table's own triggers are quiet.
async fn prepare(conn: &mut Pooled, replica: bool) -> Result<bool, StepError> {
    conn.dirty = true;
    sqlx::Executor::execute(
        &mut **conn,
        // cutover.backfill: a type change's sync trigger leaves the batches alone (they write
        // the converted value themselves).
        "SET synchronous_commit = off; SET plan_cache_mode = force_custom_plan; SET \
         cutover.backfill = on",
    )
    .await
    .map_err(err)?;
    Ok(replica && quiet_triggers(conn).await?)
}

/// Sets `session_replication_role = replica` on the backfill's connection, so the table's own
/// triggers stay quiet for its batches; `false` when the role may not (SQLSTATE 42501: only a
/// superuser, or a role granted SET on the parameter, may), and the batches go on with them.
async fn quiet_triggers(conn: &mut PgConnection) -> Result<bool, StepError> {
    match sqlx::Executor::execute(&mut *conn, "SET session_replication_role = replica").await {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => Ok(false),
        Err(e) => Err(err(e)),
    }
}

/// How a backfill reports its progress after a batch, the first of an attempt and then every
/// `PROGRESS_EVERY` (250 ms): the cursor (for a resume) and the rows done of the estimated total (for
/// the views, which draw the line for humans).
struct Reported {
    /// Rows to copy, estimated.
    estimate: i64,
    /// When it last reported.
    last: Option<std::time::Instant>,
}

impl Reported {
    fn report(&mut self, ctx: &StepContext, cursor: i64, rows: u64, end: Option<i64>) {
        let Some(p) = &ctx.progress else { return };
        if self.last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        self.last = Some(std::time::Instant::now());
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
        let mut backoff = LockBackoff::new(BATCH_BACKOFF);
        loop {
            match sqlx::query_as(&self.batch_sql)
                .bind(cursor)
                .bind(i64::from(self.batch_size))
                .fetch_one(&mut *conn)
                .await
            {
                Ok(r) => return Ok(r),
                Err(e) if backoff.retry(&e).await => {}
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

    /// Builds the indexes of the new columns, each `CREATE INDEX CONCURRENTLY` under the
    /// database's lock_timeout: one already there and valid is an earlier attempt's (its name is
    /// cutover's own), an INVALID one is dropped and built again. Says what it built, for the
    /// step's detail.
    async fn build_indexes(&self, conn: &mut PgConnection) -> Result<String, StepError> {
        if self.indexes.is_empty() {
            return Ok(String::new());
        }
        let started = std::time::Instant::now();
        sqlx::Executor::execute(
            &mut *conn,
            format!("SET lock_timeout = '{}ms'", self.lock_timeout.as_millis()).as_str(),
        )
        .await
        .map_err(err)?;
        let mut names = Vec::new();
        for stmt in &self.indexes {
            let Effect::CreateIndex { index, table } = pgstmt::effect(stmt) else {
                return Err(PgError::NotAnIndexBuild {
                    statement: first_line(stmt),
                }
                .into());
            };
            create_index_concurrently(conn, stmt, &index, &table, &self.lock_timeout, true).await?;
            names.push(index);
        }
        Ok(format!(
            "; built {} on the new column{} in {:.1}s",
            names.join(", "),
            if self.to.contains(", ") { "s" } else { "" },
            started.elapsed().as_secs_f64()
        ))
    }

    /// Whether every index to build is there and valid.
    async fn indexes_built(&self, conn: &mut PgConnection) -> Result<bool, StepError> {
        for stmt in &self.indexes {
            let Effect::CreateIndex { index, table } = pgstmt::effect(stmt) else {
                return Ok(false);
            };
            if !matches!(index_state(conn, &index, &table).await?, IndexState::Valid) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether some row's new column still differs from the old one.
    async fn differs(&self, conn: &mut PgConnection) -> Result<bool, StepError> {
        sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {})",
            self.table, self.pending
        ))
        .fetch_one(&mut *conn)
        .await
        .map_err(err)
    }
}

async fn probe_backfill(step: Job<BackfillParams>) -> Result<Option<Probe<()>>, StepError> {
    let b = backfill(&step);
    let mut conn = connect(&b.url_env, &b.database, "probe").await?;
    Ok(Some(
        if b.differs(&mut conn).await? || !b.indexes_built(&mut conn).await? {
            Probe::NotDone
        } else {
            Probe::Done(())
        },
    ))
}
