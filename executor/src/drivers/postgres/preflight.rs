//! What preflight checks in each database the release migrates ([`check_database`]): it is
//! reachable, the role can run the migrations and write the bookkeeping, refinery's history is
//! what the plan expects, and which transactions would make DDL wait.

use super::connection::connect;
use super::err;
use crate::driver::StepError;
use crate::drivers::pgerror::{HistoryProblem, PgError};
use cutover_planner::dag::DatabaseCheck;
use sqlx::Row;
use sqlx::postgres::PgConnection;

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
    let (standby, read_only, user, schema, path, create): (
        bool,
        String,
        String,
        Option<String>,
        String,
        Option<bool>,
    ) = sqlx::query_as(
        "SELECT pg_is_in_recovery(), current_setting('transaction_read_only'), current_user::text, \
         current_schema()::text, current_setting('search_path'), \
         has_schema_privilege(current_schema(), 'CREATE')",
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
        "SELECT t, pg_get_userbyid(c.relowner)::text FROM unnest($1::text[]) AS t JOIN pg_class c \
         ON c.oid = to_regclass(t) WHERE NOT pg_has_role(current_user, c.relowner, 'USAGE') ORDER \
         BY t",
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
        "SELECT t, p FROM unnest(ARRAY['refinery_schema_history', 'cutover_migration_phases']) \
            AS t, unnest(ARRAY['SELECT', 'INSERT', 'DELETE']) AS p
         WHERE to_regclass(t) IS NOT NULL AND NOT has_table_privilege(to_regclass(t), p) ORDER BY \
         t, p",
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
    Ok(sqlx::query(
        "SELECT pid, EXTRACT(EPOCH FROM now() - xact_start)::bigint, \
         COALESCE(NULLIF(application_name, ''), usename::text, '?') || ', ' || COALESCE(state, '?') \
         FROM pg_stat_activity WHERE datname = current_database() AND xact_start < now() - \
         make_interval(secs => $1) AND pid <> pg_backend_pid() ORDER BY xact_start",
    )
    .bind(db.lock_timeout.as_millis() as f64 / 1000.0)
    .fetch_all(&mut *conn)
    .await
    .map_err(err)?
    .iter()
    .map(|r| {
        format!(
            "pid {} open {}s: {}",
            r.get::<i32, _>(0),
            r.get::<i64, _>(1),
            r.get::<String, _>(2)
        )
    })
    .collect())
}
