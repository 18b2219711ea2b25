//! Fencing a database: before a step left in doubt by a dead executor is judged, repeated or
//! undone, nothing of that executor's attempt may still be at work in the database. Its
//! backends are found by the run tag in their `application_name` (see [`super::connection`]).

use super::connection::{Pooled, connect, own_suffix, run_tag};
use super::err;
use crate::driver::StepError;
use crate::drivers::pgerror::PgError;
use std::time::Duration;

/// Connections the fence replaces in a row, after each was lost at the transport, before it fails.
const LOST_CONNECTIONS: u32 = 3;

/// Waits until no backend of an earlier executor of run `run_id` is still at work in the
/// database at `url_env`; past `limit`, cancels their statements (`pg_cancel_backend`) and then
/// terminates them (`pg_terminate_backend`; PostgreSQL manual, "Server Signaling Functions",
/// section 9.27.2). Such a backend exists when a kill -9 landed while a statement ran: PostgreSQL
/// finishes the statement (or, for a transaction, rolls back at its next read) and only then
/// notices the client is gone.
pub(super) async fn fence_database(
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
        let rows = poll(&mut conn, url_env, database, &pattern).await?;
        if rows.is_empty() {
            conn.release().await;
            if seen.is_empty() {
                return Ok(None);
            }
            let how = if cancelled { "stopped" } else { "waited for" };
            return Ok(Some(format!(
                "{how} the database work a dead executor left running in `{database}` ({}) for \
                 {:.1}s before checking it",
                seen.join("; "),
                started.elapsed().as_secs_f64()
            )));
        }
        for (pid, name, state) in &rows {
            if !seen
                .iter()
                .any(|s| s.starts_with(&format!("backend pid {pid},")))
            {
                let state = state.as_deref().unwrap_or("?");
                seen.push(format!("backend pid {pid}, `{name}`, {state}"));
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

/// A backend of an earlier executor: pid, `application_name`, state (`pg_stat_activity`).
type Backend = (i32, String, Option<String>);

/// The backends whose `application_name` matches `pattern`, other than this process's own. The
/// poll only reads `pg_stat_activity`, so asking again on a new connection is safe: a connection
/// lost at the transport (reset by the peer, a broken pipe) is replaced, up to
/// [`LOST_CONNECTIONS`] times in a row, before the fence gives up.
async fn poll(
    conn: &mut Pooled,
    url_env: &str,
    database: &str,
    pattern: &str,
) -> Result<Vec<Backend>, StepError> {
    let mut lost = 0;
    loop {
        let rows = sqlx::query_as(
            "SELECT pid, application_name, state FROM pg_stat_activity WHERE application_name LIKE \
             $1 AND application_name NOT LIKE '%' || $2 AND pid <> pg_backend_pid()",
        )
        .bind(pattern)
        .bind(own_suffix())
        .fetch_all(&mut **conn)
        .await;
        match rows {
            Ok(rows) => return Ok(rows),
            Err(sqlx::Error::Io(_)) if lost < LOST_CONNECTIONS => {
                lost += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                *conn = connect(url_env, database, "fence").await?;
            }
            Err(e) => return Err(err(e)),
        }
    }
}
