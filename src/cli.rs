//! Argument parsing (clap) and the commands. Each command returns `Ok` or an [`Error`], which
//! owns the exit code and prints itself: `error: ...` with the location, causes and `hint:`
//! lines, and a JSON document on stdout when `--format json` was asked for, so machines never
//! have to parse text.

use crate::config::Project;
use crate::error::Error;
use crate::exit;
use clap::{Parser, Subcommand, ValueEnum};
use cutover_executor::resume::Continue;
use cutover_planner::analysis::{AnalyzeOptions, analyze};
use cutover_planner::error::{Diagnostic, PlanError};
use cutover_planner::lint::{RULES, RULES_DOC, Severity};
use cutover_planner::migrations::{MigrationFile, load_dir};
use cutover_planner::render;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const ABOUT: &str = "Plan and run schema-changing releases: expand/contract migrations, canary and \
                     blue-green traffic steps, one resumable DAG.";

const AFTER_HELP: &str = "\
Examples:
  cutover plan plans/canary-rename.toml                   review the release in a terminal
  cutover plan plans/canary-rename.toml --format markdown pull-request comment
  cutover plan plans/canary.toml --format json            for scripts (schema: docs/json.md)
  cutover lint migrations-sample/app                      lint a migrations directory
  cutover lint --list-rules                               every rule id and its severity \
    (docs/rules.md)

Runs:
  cutover apply plans/canary-rename.toml --dry-run        walk the DAG without side effects
  cutover apply SPEC                                      run it (event log under .cutover/runs/)
  cutover resume RUN / cutover rollback RUN               continue / undo a run
  cutover status RUN / cutover log RUN / cutover runs     inspect

Exit codes: 0 ok, 1 bad input or internal error, 2 error-severity findings;
apply/resume/rollback add 3 (a step failed), 4 (rollback stopped at a pivot), 130 (interrupted).";

/// cutover: migration-aware release planner and executor.
#[derive(Debug, Parser)]
#[command(name = "cutover", version, about = ABOUT, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Where runs are kept (each in `<dir>/runs/<run id>/`). Default: `state_dir` of the
    /// nearest cutover.toml; else the nearest `.cutover` with runs, walking up from here; else
    /// `.cutover` beside cutover.toml, or here.
    #[arg(long, global = true, env = "CUTOVER_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Keep run events in this PostgreSQL database instead of files (prefer the environment
    /// variable: a command line is visible to every user of the machine).
    #[arg(
        long,
        global = true,
        env = "CUTOVER_LOG_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    log_database_url: Option<String>,
    /// With a PostgreSQL log: how long to poll for a run another executor holds before refusing.
    #[arg(long, global = true, default_value_t = 0, value_name = "SECONDS")]
    lock_wait: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RunFormat {
    /// A line per step start and end.
    Text,
    /// Every event as a JSON line.
    Json,
    /// Only errors and notices.
    Quiet,
}

impl From<RunFormat> for crate::progress::Mode {
    fn from(f: RunFormat) -> Self {
        match f {
            RunFormat::Text => crate::progress::Mode::Text,
            RunFormat::Json => crate::progress::Mode::Json,
            RunFormat::Quiet => crate::progress::Mode::Quiet,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the release plan (the DAG of backups, migrations, deploys, gates and traffic
    /// shifts) from a spec and its migrations, and print it. Changes nothing.
    #[command(after_help = "\
The plan splits migrations into expand (safe while the old version runs) and contract (only
after it is retired), rewrites a breaking RENAME COLUMN into expand + backfill + contract, and
marks the point after which a rollback needs the backup.

Formats: text (terminal), json (machines; see docs/json.md), markdown (pull-request comment,
under 60,000 characters), mermaid and dot (diagrams of the DAG).

Exit codes: 0 planned, no error findings; 1 bad input (nothing planned); 2 planned, but some
finding has error severity.")]
    Plan {
        /// Release spec (TOML), e.g. plans/canary-rename.toml.
        spec: PathBuf,
        /// Output format.
        #[arg(long, short = 'f', value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Also save the plan to FILE, for `cutover apply --plan FILE` (which runs it only if
        /// the spec and its migrations still plan the same steps).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Lint SQL migrations: classify each statement as expand, contract or breaking and report
    /// lock hazards, data loss and renames, with rule ids, file:line and a fix.
    #[command(after_help = "\
PATHS are migration directories (every V{n}__{name}.sql in them, in version order) or single
.sql files. Silence a finding on one statement with a comment above it (or at the end of its
line); a reason may follow a colon:
    -- cutover:ignore require-concurrent-index-creation: tiny table, built in milliseconds
Declare a file's phase when cutover cannot know it:
    -- cutover:phase=contract
Every rule, when it fires, a bad and a good example: docs/rules.md (each finding links to it).

Exit codes: 0 no error findings; 1 bad input; 2 some finding has error severity.")]
    Lint {
        /// Migration directories or .sql files.
        #[arg(required_unless_present = "list_rules")]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, short = 'f', value_enum, default_value_t = LintFormat::Text)]
        format: LintFormat,
        /// Print every rule id with its severity, source and what it catches (and, in JSON, the
        /// link to its documentation), and exit.
        #[arg(long)]
        list_rules: bool,
    },
    /// Run a release: plan it, then execute the DAG, writing every step to the run's event log.
    #[command(after_help = "\
Every event is on disk (fsync) before the effect it announces starts, so a run killed at any
point resumes where it stopped: `cutover resume RUN`. A failed step stops new steps; then the
spec's `on_failure` decides: `rollback` (default) undoes what was done, `pause` waits for an
operator. An analysis gate that saw too few requests to judge pauses the run either way.
Ctrl-C lets running steps finish and leaves the run resumable (twice: stop now).

What a real run uses: each database's URL from the variable its `url_env` names; the Docker
engine at DOCKER_HOST (default: the local socket), with both images already there (nothing is
pulled); nginx or HAProxy as `[router]` says (docs/routers.md). Preflight checks all of it
before anything changes.

Apply exactly what was reviewed: `cutover plan SPEC --out FILE`, review, then `cutover apply
--plan FILE`, refused when the spec or its migrations now plan other steps; in CI,
`--expect-hash HASH`. On a terminal, apply shows the plan's hash and summary and asks for `yes`.

Gates: a canary with `pause = \"manual\"` stops at each of its pauses, and `--hold` (or
`[release] hold = true`) stops before the point of no return (the first contract migration or
other step that cannot be undone), both until `cutover promote RUN`; the run holds no lock
while it waits, and `cutover abort RUN` rolls it back instead.

Exit codes: 0 succeeded; 1 bad input or refused; 2 the plan has error findings (nothing ran);
3 a step failed (rolled back or paused); 4 a rollback stopped at a pivot; 5 waiting at a gate
for `cutover promote`; 130 interrupted.")]
    Apply {
        /// Release spec (TOML); optional with --plan, which names it.
        #[arg(required_unless_present = "plan")]
        spec: Option<PathBuf>,
        /// Run the plan saved by `cutover plan SPEC --out FILE`, and refuse, naming the steps,
        /// when the spec or its migrations plan other steps now (a stale plan).
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        /// Refuse unless the plan's hash is HASH (the full hash or at least its first 8 hex
        /// digits, as `cutover plan` prints it): for CI, which applies what was reviewed.
        #[arg(long, value_name = "HASH")]
        expect_hash: Option<String>,
        /// Do not ask for confirmation (asked only when standard input is a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Walk the whole DAG describing each step without doing it; writes a real event log
        /// marked dry-run.
        #[arg(long)]
        dry_run: bool,
        /// Stop before the point of no return (the first contract migration, or any step that
        /// cannot be undone) until `cutover promote RUN`, as `[release] hold = true` does.
        #[arg(long)]
        hold: bool,
        /// Steps that may run at the same time.
        #[arg(long, default_value_t = 4, value_name = "N")]
        jobs: usize,
        /// Apply even though the plan has error-severity findings.
        #[arg(long)]
        allow_error_findings: bool,
        /// Output.
        #[arg(long, short = 'f', value_enum, default_value_t = RunFormat::Text)]
        format: RunFormat,
    },
    /// Continue a run that stopped (crash, kill -9, Ctrl-C, pause). Refuses if the spec or
    /// migrations changed since it started, naming the steps.
    #[command(after_help = "\
Steps that succeeded are skipped. A step that started but whose end was not recorded is checked
with its probe; without one it runs again if it is idempotent, otherwise resume stops and asks
you to check it (then `--retry STEP`).

Exit codes: as for `apply`.")]
    Resume {
        /// Run id (see `cutover runs`), run directory or events.log path.
        run: std::ffi::OsString,
        /// A step left in doubt that you checked and want run again.
        #[arg(long, value_name = "STEP")]
        retry: Vec<String>,
        /// Steps that may run at the same time.
        #[arg(long, default_value_t = 4, value_name = "N")]
        jobs: usize,
        /// Output.
        #[arg(long, short = 'f', value_enum, default_value_t = RunFormat::Text)]
        format: RunFormat,
    },
    /// Continue a run that waits at a gate: a canary's manual pause (`pause = "manual"`) or the
    /// hold before the point of no return (`[release] hold`, `apply --hold`).
    #[command(after_help = "\
As Argo Rollouts' `promote` and pgroll's `complete`: the run continues in this process from the
gate it waits at, after the same checks as `cutover resume` (spec and migrations unchanged, the
environment ready); the release is recorded in the log (`promoted`, with who). A later gate
stops the run again. `--full` also passes every later pause and analysis without waiting (the
hold before the point of no return still holds). A run that paused after a failure is not at a
gate: `cutover resume` or `cutover abort` it.

Exit codes: as for `apply`; 5 when it stops at the next gate.")]
    Promote {
        /// Run id (see `cutover runs`), `latest`, a release name or the start of a run id.
        run: std::ffi::OsString,
        /// Skip the remaining pauses and analyses too (Argo's `promote --full`).
        #[arg(long)]
        full: bool,
        /// Steps that may run at the same time.
        #[arg(long, default_value_t = 4, value_name = "N")]
        jobs: usize,
        /// Output.
        #[arg(long, short = 'f', value_enum, default_value_t = RunFormat::Text)]
        format: RunFormat,
    },
    /// Roll a run back now (Argo Rollouts' `abort`): the same as `cutover rollback RUN`, recorded
    /// as aborted by the operator. Works on a run at a gate, paused, failed or interrupted; a run
    /// that succeeded is refused (`cutover rollback RUN` undoes a finished release).
    #[command(after_help = "Exit codes: as for `rollback`.")]
    Abort {
        /// Run id, `latest`, a release name or the start of a run id.
        run: std::ffi::OsString,
        /// Past an irreversible migration, restore that database from the backup this run took
        /// (pg_restore of the whole database: writes made since the backup are lost).
        #[arg(long)]
        restore_backup: bool,
        /// Output.
        #[arg(long, short = 'f', value_enum, default_value_t = RunFormat::Text)]
        format: RunFormat,
    },
    /// Undo what a run did, newest first, with the undo data recorded when each step ran.
    #[command(after_help = "\
Stops at a pivot (an irreversible step such as a contract migration) and says why; with
--restore-backup, a pivot that is a migration is undone by restoring the database from the
backup this run took (everything written since is lost). A rollback that is interrupted
continues when you run the same command again.

Exit codes: 0 rolled back; 1 refused; 4 stopped at a pivot or a failed undo.")]
    Rollback {
        /// Run id, run directory or events.log path.
        run: std::ffi::OsString,
        /// Undo only the steps that succeeded after STEP.
        #[arg(long, value_name = "STEP")]
        to: Option<String>,
        /// Print what the rollback would do, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Past an irreversible migration, restore that database from the backup this run took
        /// (pg_restore of the whole database: writes made since the backup are lost).
        #[arg(long)]
        restore_backup: bool,
        /// Output.
        #[arg(long, short = 'f', value_enum, default_value_t = RunFormat::Text)]
        format: RunFormat,
    },
    /// Show where a run stands: each step's state, attempts and duration, and who holds it.
    Status {
        /// Run id, run directory or events.log path.
        run: std::ffi::OsString,
        /// Show it again every second until no executor holds the run, then exit by its state
        /// (as Argo Rollouts' `status --watch`).
        #[arg(long, short = 'w')]
        watch: bool,
        /// Output.
        #[arg(long, short = 'f', value_enum, default_value_t = ViewFormat::Text)]
        format: ViewFormat,
    },
    /// Print a run's events.
    Log {
        /// Run id, run directory or events.log path.
        run: std::ffi::OsString,
        /// Output.
        #[arg(long, short = 'f', value_enum, default_value_t = ViewFormat::Text)]
        format: ViewFormat,
    },
    /// List runs, newest first.
    Runs {
        /// Output.
        #[arg(long, short = 'f', value_enum, default_value_t = ViewFormat::Text)]
        format: ViewFormat,
    },
    /// Print a shell completion script, e.g. `cutover completions bash >
    /// ~/.local/share/bash-completion/completions/cutover`, or for zsh into a directory of
    /// your `fpath` as `_cutover`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the JSON Schema of an input file or of a JSON output, for editors and CI, e.g.
    /// `cutover schema spec > spec.schema.json` (the same as docs/schemas/spec.schema.json).
    Schema {
        /// Which schema: `spec`, a release spec (plans/*.toml); or a `--format json` output.
        which: SchemaKind,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SchemaKind {
    /// A release spec (TOML).
    Spec,
    /// `cutover plan SPEC --format json`.
    Plan,
    /// `cutover lint PATHS --format json`.
    Lint,
    /// `cutover lint --list-rules --format json`.
    Rules,
    /// The document printed instead when nothing could be planned (exit code 1, or 2 when
    /// error findings stop the plan).
    Error,
    /// A line of `cutover log RUN --format json` and `apply --format json`.
    Event,
    /// `cutover status RUN --format json`.
    Status,
    /// `cutover runs --format json`.
    Runs,
}

impl SchemaKind {
    /// The JSON Schema, pretty-printed, ending in a newline: `docs/schemas/<name>.schema.json`.
    fn json_schema(self) -> String {
        use cutover_planner::render::{self, output_schema};
        match self {
            Self::Spec => cutover_planner::spec::json_schema(),
            Self::Plan => render::plan_schema(),
            Self::Lint => render::lint_schema(),
            Self::Rules => render::rules_schema(),
            Self::Error => output_schema::<crate::error::ErrorDoc>(),
            Self::Event => output_schema::<cutover_executor::event::LogLine>(),
            Self::Status => output_schema::<crate::exec::StatusDoc>(),
            Self::Runs => output_schema::<Vec<cutover_executor::store::RunSummary>>(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlanFormat {
    Text,
    Json,
    Markdown,
    Mermaid,
    Dot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LintFormat {
    /// A line per migration and per finding.
    Text,
    /// One JSON document (docs/json.md).
    Json,
    /// GitHub Actions workflow commands: annotations on the pull request's diff.
    Github,
    /// SARIF 2.1.0, for code scanning (GitHub, GitLab, Azure DevOps).
    Sarif,
}

/// The output of `status`, `log` and `runs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ViewFormat {
    /// For people.
    Text,
    /// For machines (docs/json.md).
    Json,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors are bad input (1); clap's own 2 would read as "findings".
            return ExitCode::from(if e.use_stderr() {
                exit::INPUT
            } else {
                exit::OK
            });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            e.print();
            ExitCode::from(e.exit_code())
        }
    }
}

impl Cli {
    /// Options of the run commands: where runs live, how events are kept, what is shown.
    ///
    /// Errors: cutover.toml is invalid, or names a log database variable that is not set.
    fn common(
        &self,
        mode: crate::progress::Mode,
        jobs: usize,
    ) -> Result<crate::exec::Common, Error> {
        let bad_settings = |source| Error::Plan {
            source,
            json: false,
        };
        let project = Project::discover().map_err(bad_settings)?;
        let log_database_url = match &self.log_database_url {
            Some(url) => Some(url.clone()),
            None => project.log_database_url().map_err(bad_settings)?,
        };
        let backend = match &log_database_url {
            Some(url) => {
                cutover_executor::session::Backend::Postgres(cutover_executor::pglog::PgStore::new(
                    url,
                    std::time::Duration::from_secs(self.lock_wait),
                ))
            }
            None => cutover_executor::session::Backend::Files,
        };
        Ok(crate::exec::Common {
            state_dir: self
                .state_dir
                .clone()
                .unwrap_or_else(|| project.state_dir()),
            mode,
            jobs,
            backend,
        })
    }
}

/// Runs the command `cli` names.
fn run(cli: Cli) -> Result<(), Error> {
    let text_or_json = |f: ViewFormat| {
        if f == ViewFormat::Json {
            crate::progress::Mode::Json
        } else {
            crate::progress::Mode::Text
        }
    };
    let common = |mode, jobs| cli.common(mode, jobs);
    match &cli.command {
        Command::Apply { .. }
        | Command::Resume { .. }
        | Command::Promote { .. }
        | Command::Abort { .. }
        | Command::Rollback { .. } => run_release(&cli),
        Command::Status { run, format, watch } => {
            crate::exec::status(&common(text_or_json(*format), 1)?, run_id(run)?, *watch)
        }
        Command::Log { run, format } => {
            crate::exec::log(&common(text_or_json(*format), 1)?, run_id(run)?)
        }
        Command::Runs { format } => crate::exec::runs(&common(text_or_json(*format), 1)?),
        Command::Plan { spec, format, out } => plan(spec, *format, out.as_deref()),
        Command::Lint {
            list_rules: true,
            format,
            ..
        } => {
            list(*format);
            Ok(())
        }
        Command::Lint { paths, format, .. } => lint(paths, *format),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "cutover", &mut out);
            self::out(&String::from_utf8_lossy(&out));
            Ok(())
        }
        Command::Schema { which } => {
            self::out(&which.json_schema());
            Ok(())
        }
    }
}

/// The commands that act on a run: `apply`, `resume`, `promote`, `abort`, `rollback`.
fn run_release(cli: &Cli) -> Result<(), Error> {
    let common = |mode, jobs| cli.common(mode, jobs);
    match &cli.command {
        Command::Apply {
            spec,
            plan,
            expect_hash,
            yes,
            dry_run,
            hold,
            jobs,
            allow_error_findings,
            format,
        } => crate::exec::apply(
            &common((*format).into(), *jobs)?,
            &crate::exec::ApplyArgs {
                spec: spec.clone(),
                saved: plan.clone(),
                expect_hash: expect_hash.clone(),
                yes: *yes,
                dry_run: *dry_run,
                hold: *hold,
                allow_error_findings: *allow_error_findings,
            },
        ),
        Command::Resume {
            run,
            retry,
            jobs,
            format,
        } => crate::exec::resume(
            &common((*format).into(), *jobs)?,
            run_id(run)?,
            retry,
            Continue::Resume,
        ),
        Command::Promote {
            run,
            full,
            jobs,
            format,
        } => crate::exec::resume(
            &common((*format).into(), *jobs)?,
            run_id(run)?,
            &[],
            Continue::Promote { full: *full },
        ),
        Command::Abort {
            run,
            restore_backup,
            format,
        } => crate::exec::abort(&common((*format).into(), 1)?, run_id(run)?, *restore_backup),
        Command::Rollback {
            run,
            to,
            dry_run,
            restore_backup,
            format,
        } => crate::exec::rollback(
            &common((*format).into(), 1)?,
            run_id(run)?,
            to.clone(),
            *dry_run,
            *restore_backup,
            "requested by the operator",
        ),
        _ => unreachable!("run() sends only the commands that act on a run here"),
    }
}

/// The RUN argument as text: run ids are ASCII, and a path to a run that is not valid UTF-8 is
/// refused with what to pass instead (clap's own message names neither).
fn run_id(run: &std::ffi::OsStr) -> Result<&str, Error> {
    run.to_str().ok_or_else(|| Error::RunNotUtf8 {
        run: run.to_string_lossy().into_owned(),
    })
}

/// Writes `text` to stdout.
pub(crate) fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`cutover plan ... | head`) is not an error worth a panic.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn plan(
    spec: &std::path::Path,
    format: PlanFormat,
    save: Option<&std::path::Path>,
) -> Result<(), Error> {
    let plan = match cutover_planner::plan_file(spec) {
        Ok(planned) => planned.plan,
        Err(source) => {
            // A pull request whose migrations stop planning still gets its comment: why.
            if let (PlanFormat::Markdown, PlanError::Blocked(findings)) = (format, &source) {
                out(&render::blocked_markdown(
                    &spec.display().to_string(),
                    findings,
                ));
            }
            let json = format == PlanFormat::Json;
            return Err(Error::Plan { source, json });
        }
    };
    let text = match format {
        PlanFormat::Text => render::plan_text(&plan),
        PlanFormat::Json => render::plan_json(&plan),
        PlanFormat::Markdown => render::markdown(&plan, &spec.display().to_string()),
        PlanFormat::Mermaid => render::mermaid(&plan),
        PlanFormat::Dot => render::dot(&plan),
    };
    out(&text);
    if let Some(file) = save {
        crate::saved::write(&plan, spec, file)?;
    }
    if plan.findings.iter().any(|f| f.severity == Severity::Error) {
        return Err(Error::Findings);
    }
    Ok(())
}

fn lint(paths: &[PathBuf], format: LintFormat) -> Result<(), Error> {
    let json = format == LintFormat::Json;
    let report = |source| Error::Plan { source, json };
    let project = Project::discover().map_err(report)?;
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let shown = path.display().to_string();
        if path.is_dir() {
            match load_dir(path, shown.trim_end_matches('/')) {
                Ok(f) => files.extend(f),
                Err(PlanError::Invalid(d)) => problems.extend(d),
                Err(e) => return Err(report(e)),
            }
        } else {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match std::fs::read(path) {
                Ok(bytes) => match MigrationFile::loose(&name, &shown, &bytes, i as u64) {
                    Ok(m) => files.push(m),
                    Err(d) => problems.push(d),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    problems.push(Diagnostic::new(
                        cutover_planner::source::Location::file(&shown),
                        format!("`{shown}` does not exist"),
                        "pass migration directories or .sql files",
                    ))
                }
                Err(source) => {
                    let path = path.clone();
                    return Err(report(PlanError::Io { path, source }));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(report(PlanError::Invalid(problems)));
    }
    files.retain(|m| !project.excluded(Path::new(&m.display_path)));
    files.sort_by_key(|m| m.version);
    let mut analysis = analyze(&files, None, AnalyzeOptions::default());
    analysis.findings = project.apply_rules(std::mem::take(&mut analysis.findings));
    let text = match format {
        LintFormat::Json => render::lint_json(&analysis.migrations, &analysis.findings),
        LintFormat::Text => render::lint_text(&analysis.migrations, &analysis.findings),
        LintFormat::Github => render::lint_github(&analysis.findings),
        LintFormat::Sarif => render::lint_sarif(&analysis.findings),
    };
    out(&text);
    let errors = analysis
        .findings
        .iter()
        .any(|f| f.severity == Severity::Error);
    // The process exits next: freeing every statement, finding and file text one by one would
    // cost more instructions than rendering them.
    std::mem::forget((analysis, files, text));
    if errors {
        return Err(Error::Findings);
    }
    Ok(())
}

fn list(format: LintFormat) {
    if format == LintFormat::Json {
        out(&(serde_json::to_string_pretty(RULES).expect("rules serialize") + "\n"));
    } else {
        let mut s = String::new();
        for r in RULES {
            s.push_str(&format!(
                "{:<46} {:<8} {:<8} {}\n",
                r.id,
                r.severity.as_str(),
                r.source,
                r.summary
            ));
        }
        s.push_str(&format!(
            "\nEach rule is documented, with a bad and a good example, at {RULES_DOC}#<rule id> \
             (e.g. {RULES_DOC}#data-loss).\n"
        ));
        out(&s);
    }
}
