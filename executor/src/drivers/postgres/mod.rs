//! PostgreSQL steps: `preflight` checks, `backup` (pg_dump) and `migrate` (expand or contract),
//! and `backfill`. One module per concern:
//!
//! | module | what |
//! |---|---|
//! | `connection` | connections named for the run, their idle cache, each database's migrator |
//! | `fence` | waiting for (then stopping) the backends a dead executor of the run left at work |
//! | `retry` | the one lock-timeout backoff every retried statement goes through |
//! | `migrate` | [`MigrateDriver`]: apply, undo and probe a migration phase |
//! | `history` | the bookkeeping a migration writes: refinery's history and cutover's phase table |
//! | `indexes` | concurrent index builds and the INVALID indexes a failed one leaves |
//! | `backup` | [`BackupDriver`]: `pg_dump`, and the restore past a pivot |
//! | `backfill` | [`BackfillDriver`]: the batched copy into a new column |
//! | `preflight` | [`check_database`]: what preflight checks in each database |
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

mod backfill;
mod backup;
mod connection;
mod fence;
mod history;
mod indexes;
mod migrate;
mod preflight;
mod retry;

pub use backfill::{BackfillDriver, BackfillProgress};
pub use backup::{BackupDriver, BackupDump};
pub use connection::attach_run;
pub use migrate::{MigrateDriver, MigrateUndo};
pub use preflight::check_database;

use crate::driver::{StepContext, StepError};
use crate::drivers::pgerror::PgError;
use cutover_planner::duration::Duration as SpecDuration;

/// A query of cutover's own failed.
fn err(e: sqlx::Error) -> StepError {
    PgError::Query(e).into()
}

/// The URL of `database`, from the variable `url_env` the spec names.
fn url_from_env(url_env: &str, database: &str) -> Result<String, StepError> {
    std::env::var(url_env).map_err(|_| {
        PgError::UrlUnset {
            url_env: url_env.to_string(),
            database: database.to_string(),
        }
        .into()
    })
}

fn millis(d: SpecDuration) -> u64 {
    d.as_millis()
}

/// The id of the run a step belongs to: its run directory's name.
fn run_id(ctx: &StepContext) -> String {
    ctx.run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The start of a statement, for messages.
fn first_line(s: &str) -> String {
    s.split_whitespace().take(12).collect::<Vec<_>>().join(" ")
}
