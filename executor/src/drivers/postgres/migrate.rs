//! [`MigrateDriver`]: applies one phase (expand or contract) of a migration, undoes it, and
//! judges after a crash whether it took effect.
//!
//! Every migration of a database goes through that database's migrator connection (see
//! [`super::connection::migrator`]), which holds the migration lock. A transactional phase runs
//! in one transaction with its bookkeeping ([`super::history`]), retried on a lock timeout
//! ([`super::retry`]); a phase that cannot run in a transaction runs statement by statement,
//! skipping what an earlier attempt did ([`super::indexes`]), and records itself at the end.

use super::connection::{Migrator, migrator};
use super::fence::fence_database;
use super::history::{HISTORY, PHASES, ensure_tables, forget};
use super::indexes::{
    IndexState, column_not_null, constraint_state, create_index_concurrently, drop_invalid_index,
    exec_cleaning_invalid, index_state, indexes_present, invalid_indexes, reindexed_table,
};
use super::retry::{DDL_BACKOFF, LockBackoff, exec_with_lock_retries};
use super::{err, first_line, millis, run_id};
use crate::driver::{BoxFuture, Done, Driver, Job, Probe, StepContext, StepError};
use crate::drivers::pgerror::PgError;
use crate::drivers::pgstmt::{self, Effect};
use cutover_planner::dag::MigrateParams;
use cutover_planner::duration::Duration as SpecDuration;
use serde::{Deserialize, Serialize};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::time::Duration;

/// The pieces of a migrate step the driver needs.
pub(super) struct Migration {
    pub(super) database: String,
    pub(super) url_env: String,
    pub(super) version: i32,
    /// The file's name without `V<version>__` and `.sql` (refinery's name).
    pub(super) name: String,
    /// `expand` or `contract`.
    pub(super) phase: String,
    /// The phase's checksum, recorded with it.
    pub(super) checksum: String,
    /// refinery's checksum of the whole file, recorded when the migration completes.
    pub(super) refinery_checksum: String,
    pub(super) transactional: bool,
    pub(super) lock_timeout: SpecDuration,
    pub(super) statement_timeout: SpecDuration,
    pub(super) sql: Vec<String>,
    pub(super) undo_sql: Option<String>,
    /// This phase completes the migration: it writes refinery's history row.
    pub(super) records_history: bool,
    /// The run applying it (recorded, so another run finding it applied can tell).
    pub(super) run_id: String,
}

/// The migration a migrate step applies.
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
    /// end was not recorded) already did is skipped: a valid index it built, a constraint it
    /// added, an index or constraint it dropped. What was there before the first attempt
    /// ([`Before`], recorded as the step's progress) is never taken for that: its statement
    /// runs, and PostgreSQL refuses it unless it says `IF NOT EXISTS`. Returns the indexes an
    /// `IF NOT EXISTS` found there before the release: undoing the step must not drop those.
    async fn run_non_transactional(
        &self,
        conn: &mut PgConnection,
        ctx: &StepContext,
    ) -> Result<Vec<String>, StepError> {
        let attempt = ctx.attempt;
        let before = self.before_first_attempt(conn, ctx).await?;
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
                    preexisting.extend(self.build_index(conn, stmt, index, &table, &before).await?);
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
                // A constraint of that name there before the first attempt is not this
                // migration's: the statement runs and PostgreSQL refuses it, rather than cutover
                // adopting (and later dropping) it.
                Effect::AttachConstraint { table, constraint } => {
                    let key = format!("{}/{constraint}", table.regclass());
                    if !before.constraints.contains(&key)
                        && constraint_state(conn, &table, &constraint).await?.is_some()
                    {
                        continue; // added by an attempt whose end was not recorded
                    }
                    exec_with_lock_retries(conn, stmt).await.map_err(failed)?;
                }
                Effect::DropConstraint { table, constraint } => {
                    if attempt > 1 && constraint_state(conn, &table, &constraint).await?.is_none() {
                        continue; // dropped by an attempt whose end was not recorded
                    }
                    exec_with_lock_retries(conn, stmt).await.map_err(failed)?;
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
}

/// What the indexes and constraints a non-transactional migration's statements create were
/// before its first attempt: `"<table regclass>/<name>"` of each that already existed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Before {
    indexes: Vec<String>,
    constraints: Vec<String>,
}

/// The step's progress record holding [`Before`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BeforeProgress {
    before: Before,
}

impl Migration {
    /// `CREATE INDEX CONCURRENTLY` of `index` on `table`: an index of that name there before the
    /// first attempt is taken as built only under `IF NOT EXISTS` (then returned: a rollback
    /// keeps it); one an earlier attempt built is skipped.
    async fn build_index(
        &self,
        conn: &mut PgConnection,
        stmt: &str,
        index: String,
        table: &pgstmt::Name,
        before: &Before,
    ) -> Result<Option<String>, StepError> {
        let was_there = before
            .indexes
            .contains(&format!("{}/{index}", table.regclass()));
        let adopt = !was_there || pgstmt::if_not_exists(stmt);
        let lock_timeout = &self.lock_timeout;
        let built =
            create_index_concurrently(conn, stmt, &index, table, lock_timeout, adopt).await?;
        Ok((!built && was_there).then_some(index))
    }

    /// [`Before`] as the first attempt recorded it (the step's progress), or, on the first
    /// attempt (or when a crash came before the record), read now and recorded.
    async fn before_first_attempt(
        &self,
        conn: &mut PgConnection,
        ctx: &StepContext,
    ) -> Result<Before, StepError> {
        let recorded = ctx
            .resume_from
            .clone()
            .and_then(|v| serde_json::from_value::<BeforeProgress>(v).ok());
        if let Some(p) = recorded {
            return Ok(p.before);
        }
        let before = self.before(conn).await?;
        if let Some(progress) = &ctx.progress {
            progress.report(&BeforeProgress {
                before: before.clone(),
            });
        }
        Ok(before)
    }

    /// Which of the indexes and constraints the statements create exist now.
    async fn before(&self, conn: &mut PgConnection) -> Result<Before, StepError> {
        let mut out = Before::default();
        for stmt in &self.sql {
            match pgstmt::effect(stmt) {
                Effect::CreateIndex { index, table } => {
                    let state = index_state(conn, &index, &table).await?;
                    if !matches!(state, IndexState::Absent) {
                        out.indexes.push(format!("{}/{index}", table.regclass()));
                    }
                }
                Effect::AttachConstraint { table, constraint } => {
                    let state = constraint_state(conn, &table, &constraint).await?;
                    if state.is_some() {
                        out.constraints
                            .push(format!("{}/{constraint}", table.regclass()));
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
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
        Box::pin(migrate(step, run_id(&ctx), ctx))
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
    ctx: StepContext,
) -> Result<Done<MigrateUndo>, StepError> {
    let m = Migration {
        run_id,
        ..migration(&step)?
    };
    let mut slot = migrator(&m.url_env, &m.database).await?;
    let migrator = slot
        .as_mut()
        .expect("migrator() leaves a connection in the slot");
    let result = m.apply(migrator, &ctx).await;
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
        let mut backoff = LockBackoff::new(DDL_BACKOFF);
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
                Err(e) if backoff.retry(&e).await => {}
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
        ctx: &StepContext,
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
            let preexisting = self.run_non_transactional(conn, ctx).await?;
            if !preexisting.is_empty() {
                let mut undo = self.undo_data();
                undo.undo_sql = self
                    .undo_sql
                    .as_deref()
                    .map(|u| without_drops_of(u, &preexisting));
                return Ok(Done {
                    undo,
                    detail: Some(format!(
                        "V{}__{} {} applied; index(es) {} were already there before the release and \
                         are kept by a rollback",
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
    let mut slot = migrator(&m.url_env, &m.database).await?;
    let conn = &mut slot
        .as_mut()
        .expect("migrator() leaves a connection in the slot")
        .conn;
    let result = if undo.transactional {
        m.undo_transactional(conn, &undo_sql, undo.history).await
    } else {
        m.undo_statements(conn, &undo_sql, undo.history).await
    };
    if result.is_err() {
        *slot = None;
    }
    result
}

impl Migration {
    /// Runs `undo_sql` and forgets the phase in one transaction, under the migration's own SETs
    /// (a search_path: its undo names what it named) and its lock_timeout.
    async fn undo_transactional(
        &self,
        conn: &mut PgConnection,
        undo_sql: &str,
        history: bool,
    ) -> Result<(), StepError> {
        let mut tx = conn.begin().await.map_err(err)?;
        let settings = format!(
            "{}SET LOCAL lock_timeout = '{}ms'",
            self.session_settings(),
            millis(self.lock_timeout)
        );
        sqlx::Executor::execute(&mut *tx, settings.as_str())
            .await
            .map_err(err)?;
        sqlx::Executor::execute(&mut *tx, undo_sql)
            .await
            .map_err(|source| PgError::Undo {
                version: self.version,
                name: self.name.clone(),
                source,
            })?;
        sqlx::Executor::execute(&mut *tx, "RESET ALL")
            .await
            .map_err(err)?;
        forget(&mut tx, self.version, &self.phase, history)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    /// The undo of a migration that ran outside a transaction: derived inverses of such
    /// migrations are one statement per line (DROP INDEX CONCURRENTLY IF EXISTS ...), and run
    /// outside a transaction too, each retried on a lock timeout, under the migration's own SETs
    /// (a search_path); then the phase is forgotten.
    async fn undo_statements(
        &self,
        conn: &mut PgConnection,
        undo_sql: &str,
        history: bool,
    ) -> Result<(), StepError> {
        let settings = self.session_settings();
        if !settings.is_empty() {
            sqlx::Executor::execute(&mut *conn, settings.as_str())
                .await
                .map_err(err)?;
        }
        for stmt in undo_sql.lines().filter(|l| !l.trim().is_empty()) {
            exec_with_lock_retries(conn, stmt)
                .await
                .map_err(|source| PgError::UndoStatement {
                    statement: stmt.to_string(),
                    source,
                })?;
        }
        sqlx::Executor::execute(&mut *conn, "RESET ALL")
            .await
            .map_err(err)?;
        let mut tx = conn.begin().await.map_err(err)?;
        forget(&mut tx, self.version, &self.phase, history)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)
    }
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
                Effect::AttachConstraint { table, constraint } => {
                    judged += 1;
                    if constraint_state(conn, &table, &constraint).await?.is_some() {
                        done += 1;
                    }
                }
                Effect::ValidateConstraint { table, constraint } => {
                    judged += 1;
                    if constraint_state(conn, &table, &constraint).await? == Some(true) {
                        done += 1;
                    }
                }
                Effect::SetNotNull { table, column } => {
                    judged += 1;
                    if column_not_null(conn, &table, &column).await? {
                        done += 1;
                    }
                }
                Effect::DropConstraint { table, constraint } => {
                    judged += 1;
                    if constraint_state(conn, &table, &constraint).await?.is_none() {
                        done += 1;
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
