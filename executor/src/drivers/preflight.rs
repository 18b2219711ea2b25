//! `preflight`: read-only checks before anything changes, of everything a later step needs that
//! can be checked up front. The environment: every `secret_env` variable is set, and every
//! program a command step starts exists and is executable. For each database: the variable the
//! spec names holds a PostgreSQL URL (`postgres://` or `postgresql://`, what both sqlx and
//! `pg_dump` read), it connects, the role may run the release's DDL there (a writable primary,
//! CREATE on the first schema of its `search_path`, ownership of the tables the migrations alter),
//! its refinery history is what the plan expects (the baseline applied with the same checksums,
//! nothing of this release applied yet), and transactions open longer than the database's
//! `lock_timeout` (which would make DDL wait) are reported. Then the images and the router.
//! Nothing to undo.

use crate::driver::{BoxFuture, Done, Driver, Job, StepContext, StepError};
use cutover_planner::dag::{Params, PreflightParams, ProgramCheck};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What the shell lacks that the release needs: a variable, or a program a command starts.
/// Only names and schemes appear in these messages, never a value: a variable may hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// `secret_env` variables that are not set.
    #[error("environment variable(s) listed in `secret_env` are not set: {} (export them in the \
             shell that runs cutover; their values are passed through, never written)", names.join(", "))]
    SecretsUnset {
        /// The variables.
        names: Vec<String>,
    },
    /// `secret_env` variables that are not UTF-8.
    #[error("environment variable(s) listed in `secret_env` do not hold valid UTF-8: {}", names.join(", "))]
    SecretsNotUtf8 {
        /// The variables.
        names: Vec<String>,
    },
    /// A command's `secret_env` variable is not set.
    #[error("environment variable `{name}` (listed in `secret_env`) is not set")]
    SecretUnset {
        /// The variable.
        name: String,
    },
    /// A service's `secret_env` variable is not set.
    #[error(
        "environment variable `{name}` (listed in `secret_env` of service `{service}`) is not set"
    )]
    ServiceSecretUnset {
        /// The variable.
        name: String,
        /// The service.
        service: String,
    },
    /// Programs the command steps start are missing or not executable.
    #[error("command programs cannot be started: {}",
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Programs {
        /// One per program.
        problems: Vec<ProgramProblem>,
    },
    /// A database's `url_env` is not set.
    #[error(
        "environment variable `{url_env}` (the URL of database `{database}`) is not set; export it, \
         e.g. `export {url_env}=postgres://app@db.internal:5432/app`"
    )]
    UrlUnset {
        /// The variable.
        url_env: String,
        /// The database.
        database: String,
    },
    /// A database's `url_env` is not UTF-8.
    #[error(
        "environment variable `{url_env}` (the URL of database `{database}`) does not hold valid \
         UTF-8"
    )]
    UrlNotUtf8 {
        /// The variable.
        url_env: String,
        /// The database.
        database: String,
    },
    /// A database's `url_env` is empty.
    #[error(
        "environment variable `{url_env}` (the URL of database `{database}`) is set but empty; it \
         must hold a URL such as postgres://app@db.internal:5432/app"
    )]
    UrlEmpty {
        /// The variable.
        url_env: String,
        /// The database.
        database: String,
    },
    /// A database's URL holds white space or a control character.
    #[error(
        "environment variable `{url_env}` (the URL of database `{database}`) contains whitespace or \
         a control character; a URL has none (percent-encode them, e.g. %20)"
    )]
    UrlWhitespace {
        /// The variable.
        url_env: String,
        /// The database.
        database: String,
    },
    /// A database's URL names several hosts.
    #[error(
        "environment variable `{url_env}` (the URL of database `{database}`) names several hosts; \
         libpq accepts that, but cutover's PostgreSQL client (sqlx) connects to one host only: \
         point `{url_env}` at the primary (e.g. postgres://app@primary.internal:5432/app)"
    )]
    UrlSeveralHosts {
        /// The variable.
        url_env: String,
        /// The database.
        database: String,
    },
    /// A database's URL has another scheme.
    #[error(
        "environment variable `{url_env}` (the URL of database `{database}`) is a `{scheme}://` \
         URL; cutover and pg_dump need `postgres://` or `postgresql://` (a driver prefix such as \
         `postgresql+psycopg2://` or `jdbc:` is not part of a libpq URL)"
    )]
    UrlScheme {
        /// The variable.
        url_env: String,
        /// The database.
        database: String,
        /// The scheme it has.
        scheme: String,
    },
    /// A database's variable does not hold a URL.
    #[error(
        "environment variable `{url_env}` (the URL of database `{database}`) does not hold a URL; \
         it must look like postgres://user:password@host:5432/dbname"
    )]
    NotAUrl {
        /// The variable.
        url_env: String,
        /// The database.
        database: String,
    },
}

/// Why a program a command step starts cannot be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramProblem {
    /// A path that does not exist.
    #[error("{what}: `{program}` does not exist (relative paths start at the spec's directory, {})",
        spec_dir.display()
    )]
    Missing {
        /// Which step starts it, and how.
        what: String,
        /// The program as written.
        program: String,
        /// Where relative paths start.
        spec_dir: PathBuf,
    },
    /// A file without an execute bit.
    #[error(
        "{what}: `{program}` is not an executable file (`chmod +x` it, or run it through its \
         interpreter, e.g. `[\"sh\", \"{program}\"]`)"
    )]
    NotExecutable {
        /// Which step starts it, and how.
        what: String,
        /// The program as written.
        program: String,
    },
    /// A bare name not in `PATH`.
    #[error("{what}: `{program}` is not found in PATH")]
    NotInPath {
        /// Which step starts it, and how.
        what: String,
        /// The program as written.
        program: String,
    },
}

/// Every variable named in a `secret_env` is set (a deploy or a command that needs one would
/// otherwise fail mid-release). Values are never read into a message.
fn check_secret_env(names: &[String]) -> Result<(), EnvError> {
    let unset: Vec<String> = names
        .iter()
        .filter(|n| std::env::var_os(n).is_none())
        .cloned()
        .collect();
    let not_utf8: Vec<String> = names
        .iter()
        .filter(|n| std::env::var_os(n).is_some_and(|v| v.to_str().is_none()))
        .cloned()
        .collect();
    if !unset.is_empty() {
        return Err(EnvError::SecretsUnset { names: unset });
    }
    if !not_utf8.is_empty() {
        return Err(EnvError::SecretsNotUtf8 { names: not_utf8 });
    }
    Ok(())
}

/// Every program a command step will start exists and may be executed, found as the command
/// will find it: a path with a `/` from the spec's directory (the command's working directory),
/// a bare name in `PATH` (the command's own, if its `env` sets one).
fn check_programs(programs: &[ProgramCheck], spec_dir: &Path) -> Result<(), EnvError> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let mut problems = Vec::new();
    for c in programs {
        let (what, program) = (c.what.clone(), c.program.clone());
        if c.program.contains('/') {
            let p = spec_dir.join(&c.program);
            if !p.exists() {
                problems.push(ProgramProblem::Missing {
                    what,
                    program,
                    spec_dir: spec_dir.to_path_buf(),
                });
            } else if !executable(&p) {
                problems.push(ProgramProblem::NotExecutable { what, program });
            }
        } else {
            let path = c
                .path
                .clone()
                .map(std::ffi::OsString::from)
                .or_else(|| std::env::var_os("PATH"))
                .unwrap_or_default();
            if !std::env::split_paths(&path).any(|d| executable(&spec_dir.join(d).join(&c.program)))
            {
                problems.push(ProgramProblem::NotInPath { what, program });
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EnvError::Programs { problems })
    }
}

/// The variable `url_env` holds a URL that sqlx and `pg_dump` both read as PostgreSQL's. Only the
/// scheme is ever quoted back: the rest may hold a password.
fn check_url(url_env: &str, database: &str) -> Result<(), EnvError> {
    let (url_env, database) = (url_env.to_string(), database.to_string());
    let url = match std::env::var(&url_env) {
        Ok(u) => u,
        Err(std::env::VarError::NotPresent) => {
            return Err(EnvError::UrlUnset { url_env, database });
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(EnvError::UrlNotUtf8 { url_env, database });
        }
    };
    if url.trim().is_empty() {
        return Err(EnvError::UrlEmpty { url_env, database });
    }
    if url.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(EnvError::UrlWhitespace { url_env, database });
    }
    match url.split_once("://") {
        Some(("postgres" | "postgresql", rest))
            if rest.split(['/', '?']).next().is_some_and(|authority| {
                authority
                    .rsplit('@')
                    .next()
                    .is_some_and(|hosts| hosts.contains(','))
            }) =>
        {
            Err(EnvError::UrlSeveralHosts { url_env, database })
        }
        Some(("postgres" | "postgresql", _)) => Ok(()),
        Some((scheme, _))
            if scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !scheme.is_empty() =>
        {
            Err(EnvError::UrlScheme {
                url_env,
                database,
                scheme: scheme.to_string(),
            })
        }
        _ => Err(EnvError::NotAUrl { url_env, database }),
    }
}

/// The environment checks of the plan's preflight step, without its database, image and router
/// checks: `resume` and `rollback` run them before they touch anything, since the shell they run
/// in may lack a variable the one that started the run had. `programs`: also the programs the
/// commands start (a rollback runs only undo and probe argvs, so it passes false). `Ok` when the
/// plan has no preflight.
pub fn check_environment(
    plan: &cutover_planner::dag::Plan,
    spec_dir: &Path,
    programs: bool,
) -> Result<(), EnvError> {
    for step in plan.steps() {
        if let Params::Preflight(PreflightParams {
            databases,
            secret_env,
            programs: to_start,
            ..
        }) = &step.params
        {
            for db in databases {
                check_url(&db.url_env, &db.name)?;
            }
            check_secret_env(secret_env)?;
            if programs {
                check_programs(to_start, spec_dir)?;
            }
        }
    }
    Ok(())
}

/// Runs the checks.
pub struct PreflightDriver(pub std::sync::Arc<dyn crate::runtime::ContainerRuntime>);

impl Driver for PreflightDriver {
    type Params = PreflightParams;
    type Undo = ();

    fn run(
        &self,
        step: Job<PreflightParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Done<()>, StepError>> {
        let rt = self.0.clone();
        Box::pin(async move {
            let PreflightParams {
                databases,
                images,
                router,
                upstreams,
                shifts,
                secret_env,
                programs,
                ..
            } = &step.params;
            let mut details = Vec::new();
            // The environment first (cheap, and the most precise message for a variable that is
            // both a `url_env` and a `secret_env`), then the servers.
            for db in databases {
                check_url(&db.url_env, &db.name)?;
            }
            check_secret_env(secret_env)?;
            check_programs(programs, &ctx.spec_dir)?;
            for db in databases {
                details.push(crate::drivers::postgres::check_database(db).await?);
            }
            // Images: nothing can be pulled later, so every one must be on the engine now.
            let mut missing = Vec::new();
            for image in images {
                if !rt.image_exists(image).await? {
                    missing.push(image.clone());
                }
            }
            if !missing.is_empty() {
                return Err(crate::drivers::containers::ContainerError::ImagesMissing {
                    images: missing,
                }
                .into());
            }
            if !images.is_empty() {
                details.push(format!("{} image(s) present", images.len()));
            }
            if let Some(r) = router {
                let r = crate::router::from_params(r, &ctx.spec_dir)?;
                details.push(
                    r.check(
                        upstreams
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                        shifts.clone(),
                    )
                    .await?,
                );
            }
            let detail = if details.is_empty() {
                "no database to check".to_string()
            } else {
                details.join("; ")
            };
            Ok(Done {
                undo: (),
                detail: Some(detail),
            })
        })
    }

    // The default probe (not done): checking again is harmless.
}
