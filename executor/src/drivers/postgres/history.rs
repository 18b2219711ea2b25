//! The bookkeeping a migration writes, in the database it migrates: refinery's
//! `refinery_schema_history` (one row when a migration completes, with refinery's checksum) and
//! cutover's `cutover_migration_phases` (one row per applied phase, committed with its SQL).
//! Probes read the phases; a rollback deletes what the undone phase wrote.

use super::err;
use super::migrate::Migration;
use crate::driver::StepError;
use crate::drivers::pgerror::PgError;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// refinery's history table, as refinery creates it.
pub(super) const HISTORY: &str = "CREATE TABLE IF NOT EXISTS refinery_schema_history (
    version INT4 PRIMARY KEY,
    name VARCHAR(255),
    applied_on VARCHAR(255),
    checksum VARCHAR(255))";
/// cutover's record of each applied phase (probes read it; a resume never applies one twice).
pub(super) const PHASES: &str = "CREATE TABLE IF NOT EXISTS cutover_migration_phases (
    version INT4 NOT NULL,
    phase TEXT NOT NULL,
    checksum TEXT NOT NULL,
    run_id TEXT NOT NULL,
    applied_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (version, phase))";

impl Migration {
    /// Whether this phase is recorded as applied; refuses if it was applied with other content.
    pub(super) async fn applied(
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
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT checksum, run_id FROM cutover_migration_phases WHERE version = $1 AND phase = $2",
        )
        .bind(self.version)
        .bind(&self.phase)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err)?;
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

    /// Records the phase in `conn`'s transaction, and refinery's row when the phase completes
    /// the migration.
    pub(super) async fn record(
        &self,
        conn: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ) -> Result<(), sqlx::Error> {
        if self.records_history {
            // Both rows in one statement.
            let applied_on = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            sqlx::query(
                "WITH phase AS (INSERT INTO cutover_migration_phases (version, phase, checksum, \
                 run_id) VALUES ($1, $2, $3, $4)) INSERT INTO refinery_schema_history (version, \
                 name, applied_on, checksum) VALUES ($1, $5, $6, $7)",
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
            sqlx::query(
                "INSERT INTO cutover_migration_phases (version, phase, checksum, run_id) VALUES \
                 ($1, $2, $3, $4)",
            )
            .bind(self.version)
            .bind(&self.phase)
            .bind(&self.checksum)
            .bind(&self.run_id)
            .execute(&mut **conn)
            .await?;
        }
        Ok(())
    }

    /// Records the phase (and refinery's row) in a transaction of its own, after statements that
    /// ran outside one.
    pub(super) async fn record_committed(&self, conn: &mut PgConnection) -> Result<(), StepError> {
        let mut tx = conn.begin().await.map_err(err)?;
        self.record(&mut tx).await.map_err(err)?;
        tx.commit().await.map_err(err)
    }
}

/// Creates the history and phase tables on `conn`'s database unless `ready` says they exist.
pub(super) async fn ensure_tables(
    conn: &mut PgConnection,
    ready: &mut bool,
) -> Result<(), StepError> {
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
pub(super) async fn forget(
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
