//! Concurrent index builds outside a transaction (`CREATE INDEX CONCURRENTLY`, `REINDEX ...
//! CONCURRENTLY`, `DROP INDEX CONCURRENTLY`) and the INVALID indexes a failed or interrupted build
//! leaves behind (PostgreSQL manual, CREATE INDEX, "Building Indexes Concurrently"): a build
//! succeeds only with a valid index, and what a failed attempt left is dropped, so neither a
//! retry nor a rollback trips over it. The catalog queries here are also what a probe judges a
//! non-transactional migration by.

use super::retry::{DDL_BACKOFF, LockBackoff, exec_with_lock_retries, is_lock_timeout};
use super::{err, first_line};
use crate::driver::StepError;
use crate::drivers::pgerror::PgError;
use crate::drivers::pgstmt::Name;
use cutover_planner::duration::Duration as SpecDuration;
use sqlx::postgres::PgConnection;

/// `CREATE INDEX CONCURRENTLY`, succeeding only with a valid index. A build that fails (a
/// lock timeout while it waits for older transactions, a duplicate key, a cancel) leaves an
/// INVALID index behind (PostgreSQL manual, CREATE INDEX, "Building Indexes Concurrently"),
/// which `IF NOT EXISTS` would then take for done and a plain retry would trip over: every
/// attempt here starts by dropping it, and a failure drops what it left.
/// `Ok(false)`: the index was already there, valid, and `adopt` says it may be taken as built
/// (by an attempt whose end was not recorded, or before the release with `IF NOT EXISTS`);
/// without `adopt` the statement runs, and PostgreSQL refuses an index that is there.
pub(super) async fn create_index_concurrently(
    conn: &mut PgConnection,
    stmt: &str,
    index: &str,
    table: &Name,
    lock_timeout: &SpecDuration,
    adopt: bool,
) -> Result<bool, StepError> {
    match index_state(conn, index, table).await? {
        IndexState::Valid if adopt => return Ok(false),
        IndexState::Valid => {
            exec_with_lock_retries(conn, stmt)
                .await
                .map_err(|source| PgError::Statement {
                    statement: first_line(stmt),
                    source,
                })?;
            return Ok(false);
        }
        IndexState::Invalid(q) => drop_invalid_index(conn, &q).await?,
        IndexState::Absent => {}
    }
    exec_cleaning_invalid(conn, stmt, &table.regclass(), lock_timeout).await?;
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

/// What is there of an index a `CREATE INDEX CONCURRENTLY` names.
pub(super) enum IndexState {
    /// Valid.
    Valid,
    /// Left INVALID by a failed or interrupted build; with its schema-qualified, quoted name.
    Invalid(String),
    Absent,
}

/// The index `index` in `table`'s schema (where PostgreSQL creates it).
pub(super) async fn index_state(
    conn: &mut PgConnection,
    index: &str,
    table: &Name,
) -> Result<IndexState, StepError> {
    let row: Option<(bool, String)> = sqlx::query_as(
        "SELECT i.indisvalid, format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN \
            pg_index i ON i.indexrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace
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

pub(super) async fn drop_invalid_index(
    conn: &mut PgConnection,
    qualified: &str,
) -> Result<(), StepError> {
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

pub(super) fn cleanup_note(dropped: Result<(), StepError>) -> String {
    match dropped {
        Ok(()) => "; the INVALID index it left was dropped".into(),
        Err(e) => format!("; {}", crate::error::chain(&e)),
    }
}

/// The INVALID indexes on `table` (a regclass text), schema-qualified and quoted.
pub(super) async fn invalid_indexes(
    conn: &mut PgConnection,
    table: &str,
) -> Result<Vec<String>, StepError> {
    sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i JOIN pg_class c ON c.oid = \
         i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.indrelid = \
         to_regclass($1) AND NOT i.indisvalid",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(err)
}

/// The table a `REINDEX {TABLE|INDEX} CONCURRENTLY target` works on, as a regclass text: the
/// target itself, or the table of the index; `None` when there is no such index.
pub(super) async fn reindexed_table(
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
pub(super) async fn exec_cleaning_invalid(
    conn: &mut PgConnection,
    stmt: &str,
    table: &str,
    lock_timeout: &SpecDuration,
) -> Result<(), StepError> {
    let mut backoff = LockBackoff::new(DDL_BACKOFF);
    loop {
        let before = invalid_indexes(conn, table).await?;
        let Err(e) = sqlx::Executor::execute(&mut *conn, stmt).await else {
            return Ok(());
        };
        let left = drop_new_invalid(conn, table, &before).await;
        if backoff.retry(&e).await {
            continue;
        }
        let attempts = backoff.attempt();
        return Err(index_build_failed(conn, stmt, e, attempts, lock_timeout, left).await);
    }
}

/// Drops the INVALID indexes on `table` that are not in `before` (what a failed build left);
/// says how that went, for the error.
async fn drop_new_invalid(conn: &mut PgConnection, table: &str, before: &[String]) -> String {
    let mut left = String::new();
    for q in invalid_indexes(conn, table)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|q| !before.contains(q))
    {
        left = cleanup_note(drop_invalid_index(conn, &q).await);
    }
    left
}

/// The error of a concurrent build that failed for good after `attempts` attempts. One that
/// waited (a lock timeout, or a statement timeout: SQLSTATE 57014) names the transactions it
/// may have waited for; `left` says what became of its leftovers.
async fn index_build_failed(
    conn: &mut PgConnection,
    stmt: &str,
    e: sqlx::Error,
    attempts: u32,
    lock_timeout: &SpecDuration,
    left: String,
) -> StepError {
    let waited = is_lock_timeout(&e)
        || matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("57014"));
    let mut note = String::new();
    if waited {
        note = format!(
            " (after {attempts} attempt(s) under lock_timeout {lock_timeout}: a concurrent index \
             build waits for every transaction older than its own snapshot to end, even one on \
             another table{})",
            old_transactions(conn).await
        );
    }
    note.push_str(&left);
    PgError::IndexBuild {
        statement: first_line(stmt),
        source: e,
        note,
    }
    .into()
}

/// How many of `indexes` exist.
/// Whether `table` has a constraint named `constraint`, and if so whether it is validated
/// (`pg_constraint.convalidated`): `None` when it has none.
pub(super) async fn constraint_state(
    conn: &mut PgConnection,
    table: &Name,
    constraint: &str,
) -> Result<Option<bool>, StepError> {
    sqlx::query_scalar(
        "SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2",
    )
    .bind(table.regclass())
    .bind(constraint)
    .fetch_optional(&mut *conn)
    .await
    .map_err(err)
}

/// Whether `column` of `table` is NOT NULL (`pg_attribute.attnotnull`); false when there is no
/// such column.
pub(super) async fn column_not_null(
    conn: &mut PgConnection,
    table: &Name,
    column: &str,
) -> Result<bool, StepError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 \
         AND attnotnull AND NOT attisdropped",
    )
    .bind(table.regclass())
    .bind(column)
    .fetch_one(&mut *conn)
    .await
    .map_err(err)?;
    Ok(n > 0)
}

pub(super) async fn indexes_present(
    conn: &mut PgConnection,
    indexes: &[Name],
) -> Result<usize, StepError> {
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
        "SELECT pid, EXTRACT(EPOCH FROM now() - xact_start)::bigint, \
            COALESCE(NULLIF(application_name, ''), usename::text, '?') || ', ' || \
            COALESCE(state, '?') || COALESCE(', database ' || datname, '')
         FROM pg_stat_activity WHERE xact_start IS NOT NULL AND backend_xmin IS NOT NULL AND pid \
         <> \
         pg_backend_pid() ORDER BY xact_start LIMIT 5",
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
        "; open now: {}: let them finish, or end them (pg_terminate_backend), before the next \
         attempt",
        list.join("; ")
    )
}
