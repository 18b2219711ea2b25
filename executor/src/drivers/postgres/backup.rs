//! [`BackupDriver`]: `pg_dump` before a release changes the database, and the restore from
//! that dump when the operator rolls back past a pivot (`rollback --restore-backup`). The
//! client programs get the password through `PGPASSWORD`, never on their command line.

use super::url_from_env;
use crate::driver::{BoxFuture, Done, Driver, Job, StepContext, StepError};
use crate::drivers::pgerror::PgError;
use crate::drivers::pgurl::ClientTarget;
use cutover_planner::dag::BackupParams;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A PostgreSQL client program: from PATH, else the newest under /usr/lib/postgresql.
fn pg_program(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_else(|| PathBuf::from(name))
}

/// Runs a PostgreSQL client program as part of `step` (marked, in its own process group, killed
/// with cutover: see [`crate::drivers::command::tie_to_step`]), the password in `PGPASSWORD` and
/// never on its command line.
async fn run_tool(
    program: &Path,
    args: &[&str],
    password: Option<&str>,
    mark: &str,
) -> Result<Vec<u8>, StepError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(std::process::Stdio::null());
    crate::drivers::command::tie_to_step(&mut cmd, mark);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd.output().await.map_err(|source| PgError::ToolStart {
        program: program.to_path_buf(),
        source,
    })?;
    if !out.status.success() {
        return Err(PgError::ToolFailed {
            program: program.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }
        .into());
    }
    Ok(out.stdout)
}

/// Runs `backup` steps: `pg_dump -Fc`, checked with `pg_restore --list`, with path, size and
/// sha256 recorded.
pub struct BackupDriver;

/// A backup's undo data: the dump, which a restore past a pivot checks and reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupDump {
    /// The dump file.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, hex.
    pub sha256: String,
}

impl Driver for BackupDriver {
    type Params = BackupParams;
    type Undo = BackupDump;

    fn run(
        &self,
        step: Job<BackupParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Done<BackupDump>, StepError>> {
        Box::pin(backup(step, ctx))
    }

    // The default undo (nothing): the dump is kept, it is what a restore past a pivot would
    // use. The default probe (not done): dumping again is harmless (once the fence has stopped
    // the dead attempt's pg_dump).

    fn restore(
        &self,
        step: Job<BackupParams>,
        undo: BackupDump,
        ctx: StepContext,
    ) -> BoxFuture<Result<String, StepError>> {
        Box::pin(restore_backup(step, undo, ctx))
    }

    fn fence(
        &self,
        step: Job<BackupParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Option<String>, StepError>> {
        // A pg_dump of a dead executor would write the same .partial file as the next attempt.
        Box::pin(async move {
            Ok(crate::drivers::command::fence_processes(
                &crate::drivers::command::mark(&step.id, &ctx),
                None,
            )
            .await?)
        })
    }
}

/// Dumps the database to `<dir>/<run id>-<database>.dump`: written as `.dump.partial`, listed
/// with `pg_restore --list` (an empty listing is no dump), then moved into place.
async fn backup(step: Job<BackupParams>, ctx: StepContext) -> Result<Done<BackupDump>, StepError> {
    let BackupParams {
        database,
        url_env,
        dir,
    } = &step.params;
    let target = ClientTarget::of(&url_from_env(url_env, database)?).map_err(|source| {
        PgError::ClientUrl {
            url_env: url_env.clone(),
            source,
        }
    })?;
    let mark = crate::drivers::command::mark(&step.id, &ctx);
    let dir = ctx.spec_dir.join(dir);
    std::fs::create_dir_all(&dir).map_err(|source| StepError::File {
        action: "create",
        path: dir.clone(),
        source,
    })?;
    let run = ctx
        .run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let path = dir.join(format!("{run}-{database}.dump"));
    let tmp = path.with_extension("dump.partial");
    let tmp_s = tmp.to_string_lossy().into_owned();
    run_tool(
        &pg_program("pg_dump"),
        &[
            "--format=custom",
            "--no-password",
            "--file",
            &tmp_s,
            "--dbname",
            &target.url,
        ],
        target.password.as_deref(),
        &mark,
    )
    .await?;
    let listing = run_tool(&pg_program("pg_restore"), &["--list", &tmp_s], None, &mark).await?;
    if listing.is_empty() {
        return Err(PgError::EmptyDump { path: tmp }.into());
    }
    std::fs::rename(&tmp, &path).map_err(|source| StepError::File {
        action: "move the dump into place at",
        path: path.clone(),
        source,
    })?;
    recorded_dump(&path)
}

/// The dump at `path` as a backup step records it: path, size and sha256.
fn recorded_dump(path: &Path) -> Result<Done<BackupDump>, StepError> {
    let bytes = std::fs::read(path).map_err(|source| StepError::File {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let sha = sha256_hex(&bytes);
    let path_s = path.display().to_string();
    Ok(Done {
        undo: BackupDump {
            path: path_s.clone(),
            size: bytes.len() as u64,
            sha256: sha.clone(),
        },
        detail: Some(format!(
            "{path_s} ({} bytes, sha256 {})",
            bytes.len(),
            &sha[..16]
        )),
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Restores a database from the dump a backup step recorded: checks the file against its recorded
/// sha256, drops the database (closing its connections) and recreates it from the dump. Writes
/// made since the backup are lost; only an explicit `rollback --restore-backup` gets here.
async fn restore_backup(
    step: Job<BackupParams>,
    undo: BackupDump,
    ctx: StepContext,
) -> Result<String, StepError> {
    let BackupParams {
        database, url_env, ..
    } = &step.params;
    let (path, sha) = (undo.path.as_str(), undo.sha256.as_str());
    let size = verified_dump(&undo)?;
    let url = url_from_env(url_env, database)?;
    // Everything that can be refused is checked before the database is dropped.
    let admin = ClientTarget::of(&url)
        .map_err(|source| PgError::ClientUrl {
            url_env: url_env.clone(),
            source,
        })?
        .with_database("postgres");
    let opts = PgConnectOptions::from_str(&url).map_err(|source| PgError::BadUrl {
        url_env: url_env.clone(),
        source,
    })?;
    let dbname = opts.get_database().map(str::to_string);
    let dbname = dbname.ok_or_else(|| PgError::NoDatabaseName {
        url_env: url_env.clone(),
    })?;
    drop_database(opts, database, &dbname).await?;
    let mark = crate::drivers::command::mark(&step.id, &ctx);
    run_tool(
        &pg_program("pg_restore"),
        &[
            "--create",
            "--exit-on-error",
            "--no-password",
            "--dbname",
            &admin.url,
            path,
        ],
        admin.password.as_deref(),
        &mark,
    )
    .await
    .map_err(|e| PgError::NotRestored {
        database: dbname.clone(),
        path: path.to_string(),
        sha256: sha.to_string(),
        source: Box::new(e),
    })?;
    Ok(format!("{path}, {size} bytes"))
}

/// The size of the dump a backup step recorded, once its content is checked against the sha256
/// recorded with it.
fn verified_dump(undo: &BackupDump) -> Result<usize, StepError> {
    let bytes = std::fs::read(&undo.path).map_err(|source| StepError::File {
        action: "read the backup",
        path: PathBuf::from(&undo.path),
        source,
    })?;
    let actual = sha256_hex(&bytes);
    if actual != undo.sha256 {
        return Err(PgError::BackupChanged {
            path: undo.path.clone(),
            actual,
            recorded: undo.sha256.clone(),
        }
        .into());
    }
    Ok(bytes.len())
}

/// Drops database `dbname` (of the spec's `database`), closing its connections, from a
/// maintenance connection to the same server (`opts` with database `postgres`).
async fn drop_database(
    opts: PgConnectOptions,
    database: &str,
    dbname: &str,
) -> Result<(), StepError> {
    let mut admin = opts
        .database("postgres")
        .application_name("cutover restore")
        .connect()
        .await
        .map_err(|source| PgError::ConnectServer {
            database: database.to_string(),
            source,
        })?;
    let drop = format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        dbname.replace('"', "\"\"")
    );
    sqlx::Executor::execute(&mut admin, drop.as_str())
        .await
        .map_err(|source| PgError::DropForRestore {
            database: dbname.to_string(),
            source,
        })?;
    let _ = admin.close().await;
    Ok(())
}
