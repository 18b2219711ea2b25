//! [`Error`]: every way a `cutover` command can fail, in one place (as nextest's
//! `ExpectedError`): which documented exit code it maps to ([`crate::exit`]), and how it is
//! printed on stderr: an `error:` line, the `caused by:` chain, details (a plan's diagnostics, a
//! refused plan's findings) and `hint:` lines. URL passwords are removed from everything it
//! prints; a step's error arrives already redacted of the run's secrets
//! ([`cutover_executor::error::StepFailure`]).

use crate::exit;
use cutover_executor::ExecError;
use cutover_executor::redact::redact_url_passwords;
use cutover_planner::error::{Diagnostic, PlanError};
use cutover_planner::lint::Finding;
use cutover_planner::render;
use serde::Serialize;
use std::error::Error as _;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec, its migrations or the lint paths are not valid: nothing was planned. With
    /// `json`, a JSON document on stdout says so too, so machines never parse text.
    #[error("{}", plan_headline(source))]
    Plan {
        /// The planner's error, with its diagnostics.
        source: PlanError,
        /// `--format json` was asked for.
        json: bool,
    },
    /// `plan` or `lint` printed findings of error severity (exit 2; nothing more to say).
    #[error("a finding has error severity")]
    Findings,
    /// `status` showed a run that did not succeed: its exit code says how it stands (as
    /// `apply` would have ended), with nothing more to print.
    #[error("the run did not succeed")]
    RunState {
        /// [`exit::RELEASE_FAILED`], [`exit::ROLLBACK_STOPPED`] or [`exit::INTERRUPTED`].
        code: u8,
    },
    /// `apply --plan FILE`: the spec or its migrations changed since the plan was saved.
    #[error("{}: the saved plan is stale: planning {} now gives other steps; nothing was applied",
            file.display(), spec.display())]
    StalePlan {
        /// The saved plan.
        file: PathBuf,
        /// The spec it names.
        spec: PathBuf,
        /// `added STEP`, `removed STEP`, `changed STEP`.
        drift: Vec<String>,
    },
    /// `apply --plan FILE`: the file is not a plan `plan --out` wrote.
    #[error("{}: not a saved plan this cutover can read: {why}", file.display())]
    SavedPlanUnreadable {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// `apply --expect-hash HASH`: the plan has another hash.
    #[error(
        "the plan's hash is {actual}, not {expected}: the spec or its migrations are not \
             what was reviewed; nothing was applied"
    )]
    HashMismatch {
        /// What was expected.
        expected: String,
        /// The plan's hash.
        actual: String,
    },
    /// `apply --hold` (or `[release] hold`) of a recreate release whose point of no return lies
    /// inside its downtime window: the run would stop with the old version stopped and the new
    /// one not started, and the release would stay down until `cutover promote`.
    #[error(
        "the hold would stop the run before `{step}`, inside the downtime window (from `{from}`, \
         which stops the old version, to `{to}`): the release would be down until `cutover \
         promote`; nothing was applied"
    )]
    HoldInDowntime {
        /// The first step that cannot be undone.
        step: String,
        /// The step that stops the old version.
        from: String,
        /// The step after which the new version serves.
        to: String,
    },
    /// `apply` asked for confirmation on a terminal and did not get `yes`.
    #[error("not confirmed; nothing was applied")]
    NotConfirmed,
    /// `apply` refused a plan with error-severity findings.
    #[error("the plan has {} error-severity finding(s); nothing was applied", findings.len())]
    FindingsRefused {
        /// The spec.
        spec: PathBuf,
        /// The findings.
        findings: Vec<Finding>,
    },
    /// A run records its spec's path as text, so a spec whose path is not UTF-8 could not be
    /// found again by `resume`.
    #[error("{}: the spec's path is not valid UTF-8 (shown with \u{FFFD} for the bytes that are \
             not); a run records its spec's path as text, so `cutover resume` could not find the \
             file again. Nothing was started", path.display())]
    SpecNotUtf8 {
        /// The spec's absolute path.
        path: PathBuf,
    },
    /// The RUN argument is not UTF-8 (run ids are ASCII).
    #[error(
        "the run `{run}` is not valid UTF-8 (\u{FFFD} marks the bytes that are not); run ids are \
         ASCII, and a run is named by its id or by a UTF-8 path"
    )]
    RunNotUtf8 {
        /// The argument, lossily.
        run: String,
    },
    /// The executor refused, or stopped before the run could end.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// A step failed and the release was rolled back.
    #[error("step `{step}` failed ({error}); the release was rolled back")]
    RolledBack {
        /// The step.
        step: String,
        /// Its error, redacted.
        error: String,
    },
    /// A step failed and the run paused (by `on_failure`, or because a gate could not decide).
    #[error("{}", failed.as_ref().map_or(
        format!("run {run} stopped before it finished"),
        |(step, error)| format!("step `{step}` failed: {error}")
    ))]
    Paused {
        /// Run id.
        run: String,
        /// The step that failed, with its error.
        failed: Option<(String, String)>,
    },
    /// The run waits at a gate for `cutover promote` (nothing failed).
    #[error("run {run}: {reason}")]
    AwaitingPromotion {
        /// Run id.
        run: String,
        /// What it waits for ([`cutover_executor::event::Gate::reason`]).
        reason: String,
    },
    /// A step failed before anything with an effect succeeded (preflight, or a dry run): there
    /// was nothing to roll back.
    #[error("step `{}` failed: {}; nothing was changed", failed.0, failed.1)]
    NothingChanged {
        /// Run id.
        run: String,
        /// The step that failed, with its error.
        failed: (String, String),
        /// A dry run.
        dry_run: bool,
    },
    /// A rollback stopped: at a pivot, or at an undo that failed.
    #[error("{}", rollback_headline(run, stopped_at.as_ref(), *undo_failed))]
    RollbackStopped {
        /// Run id.
        run: String,
        /// The step it stopped at, with why.
        stopped_at: Option<(String, String)>,
        /// It stopped because undoing that step failed (running it again retries the undo).
        undo_failed: bool,
        /// The step whose failure started the rollback, with its error.
        failed: Option<(String, String)>,
    },
    /// Stopped by SIGINT or SIGTERM; the run is resumable.
    #[error("interrupted; continue with `cutover resume {run}`")]
    Interrupted {
        /// Run id.
        run: String,
    },
}

fn plan_headline(e: &PlanError) -> String {
    match e {
        PlanError::Blocked(_) => format!("{e}; nothing was planned"),
        PlanError::Invalid(d) if d.len() > 1 => {
            format!("{} problems in the input; nothing was planned", d.len())
        }
        _ => "nothing was planned".to_string(),
    }
}

fn rollback_headline(
    run: &str,
    stopped_at: Option<&(String, String)>,
    undo_failed: bool,
) -> String {
    match stopped_at {
        Some((step, why)) if undo_failed => {
            format!("undoing `{step}` failed, so the rollback stopped there: {why}")
        }
        Some((step, why)) => format!("the rollback stopped at `{step}`: {why}"),
        None => format!("the rollback of run {run} stopped"),
    }
}

impl Error {
    /// The documented exit code ([`crate::exit`], README "Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            // Findings stop the plan: the input is readable, the migrations are not safe.
            Error::Plan {
                source: PlanError::Blocked(_),
                ..
            } => exit::FINDINGS,
            Error::Plan { .. }
            | Error::SpecNotUtf8 { .. }
            | Error::RunNotUtf8 { .. }
            | Error::StalePlan { .. }
            | Error::SavedPlanUnreadable { .. }
            | Error::HashMismatch { .. }
            | Error::NotConfirmed
            | Error::HoldInDowntime { .. }
            | Error::Exec(_) => exit::INPUT,
            Error::Findings | Error::FindingsRefused { .. } => exit::FINDINGS,
            Error::RunState { code } => *code,
            Error::RolledBack { .. } | Error::Paused { .. } | Error::NothingChanged { .. } => {
                exit::RELEASE_FAILED
            }
            Error::RollbackStopped { .. } => exit::ROLLBACK_STOPPED,
            Error::AwaitingPromotion { .. } => exit::AWAITING_PROMOTION,
            Error::Interrupted { .. } => exit::INTERRUPTED,
        }
    }

    /// Prints the error on stderr (and, for a planning error asked for as JSON, a JSON document
    /// on stdout).
    pub fn print(&self) {
        let text = redact_url_passwords(&self.render());
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
        if let Error::Plan { source, json: true } = self {
            print_json(source);
        }
    }

    /// What [`Error::print`] writes on stderr.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match self {
            Error::Findings | Error::RunState { .. } => return out,
            Error::Interrupted { .. } => return format!("{self}\n"),
            // Not an error: the run waits for a person, as the spec or `--hold` asked.
            Error::AwaitingPromotion { .. } => {
                let _ = writeln!(out, "{self}");
                for hint in self.hints() {
                    let _ = writeln!(out, "  next: {hint}");
                }
                return out;
            }
            _ => {}
        }
        let _ = writeln!(out, "error: {self}");
        for cause in self.causes() {
            let _ = writeln!(out, "  caused by: {cause}");
        }
        for line in self.details() {
            let _ = writeln!(out, "  {line}");
        }
        for hint in self.hints() {
            let _ = writeln!(out, "  hint: {hint}");
        }
        out
    }

    /// The causes below the `error:` line, each once: a cause whose text a line above already
    /// holds (a message that names its cause inline) is not repeated, and a planner error
    /// shows as its diagnostics instead ([`Error::details`]).
    fn causes(&self) -> Vec<String> {
        let Error::Exec(e) = self else {
            return Vec::new();
        };
        let mut shown = e.to_string();
        let mut out = Vec::new();
        let mut next = e.source();
        while let Some(cause) = next {
            if cause.is::<PlanError>() {
                break;
            }
            let text = cause.to_string();
            if !shown.contains(&text) {
                shown.push('\n');
                shown.push_str(&text);
                out.push(text);
            }
            next = cause.source();
        }
        out
    }

    /// Lines after the causes: a planner error's diagnostics, a refused plan's findings, what
    /// started a rollback that stopped.
    fn details(&self) -> Vec<String> {
        match self {
            Error::Plan { source, .. } => diagnostic_lines(&source.diagnostics()),
            Error::Exec(ExecError::Replan { source, .. }) => {
                diagnostic_lines(&source.diagnostics())
            }
            Error::StalePlan { drift, .. } => drift.clone(),
            Error::FindingsRefused { findings, .. } => findings
                .iter()
                .map(|f| {
                    format!(
                        "{}:{}: {}[{}] {}",
                        f.file, f.line, f.severity, f.rule, f.message
                    )
                })
                .collect(),
            Error::RollbackStopped {
                failed: Some((step, error)),
                ..
            } => vec![format!(
                "(it started because step `{step}` failed: {error})"
            )],
            _ => Vec::new(),
        }
    }

    /// What to do about it.
    fn hints(&self) -> Vec<String> {
        let hint = match self {
            Error::Exec(e) => e.hint(),
            Error::FindingsRefused { spec, .. } => Some(format!(
                "fix them (see `cutover plan {}`), or pass --allow-error-findings to apply anyway",
                spec.display()
            )),
            Error::StalePlan { spec, .. } => Some(format!(
                "review the plan again (`cutover plan {} --out FILE`) and apply that file",
                spec.display()
            )),
            Error::SavedPlanUnreadable { .. } => {
                Some("write it again with `cutover plan SPEC --out FILE`".into())
            }
            Error::HashMismatch { .. } => Some(
                "`cutover plan SPEC` prints the plan's hash; pass the one that was reviewed".into(),
            ),
            Error::HoldInDowntime { .. } => Some(
                "a recreate release is down while its migrations run, so there is no point at which \
                 both versions serve: apply it without `--hold` (and without `[release] hold`), or \
                 use a rolling, blue-green or canary strategy, whose old version serves during the \
                 hold"
                    .into(),
            ),
            Error::NotConfirmed => Some(
                "answer `yes` to apply, or pass --yes (scripts and CI, where standard input is \
                 not a terminal, are not asked)"
                    .into(),
            ),
            Error::SpecNotUtf8 { .. } => Some(
                "rename the file, or the directory holding it, to a UTF-8 name (or copy the spec \
                 and its migrations to one), then run `cutover apply` again"
                    .into(),
            ),
            Error::RunNotUtf8 { .. } => Some(
                "pass the run's id (`cutover runs` lists them) and the directory holding `runs/` \
                 with --state-dir, which may be any path"
                    .into(),
            ),
            Error::NothingChanged { dry_run: true, .. } => Some(
                "fix it, then run the dry run again: it passes when the real run can start".into(),
            ),
            Error::NothingChanged { run, .. } => Some(format!(
                "fix it, then `cutover resume {run}` starts the run again (or `cutover apply` \
                 starts a new one)"
            )),
            Error::AwaitingPromotion { run, .. } => Some(format!(
                "the run holds no lock while it waits; `cutover status {run}` shows it, `cutover \
                 promote {run}` continues (`--full` also skips the remaining pauses and \
                 analyses), `cutover abort {run}` rolls back"
            )),
            Error::Paused { run, .. } => Some(format!(
                "fix the cause, then `cutover resume {run}` retries from that step, or `cutover \
                 rollback {run}` undoes what was done"
            )),
            Error::RollbackStopped {
                run,
                stopped_at: Some((step, _)),
                undo_failed: true,
                ..
            } => Some(format!(
                "fix what made the undo of `{step}` fail (its error is above), then run `cutover \
                 rollback {run}` again: it retries that undo and continues; `cutover status {run}` \
                 shows what was undone"
            )),
            Error::RollbackStopped { run, .. } => Some(format!(
                "`cutover status {run}` shows what was undone; the steps before the pivot need a \
                 decision (a backup restore, or finishing the release)"
            )),
            Error::Plan { .. }
            | Error::Findings
            | Error::RunState { .. }
            | Error::RolledBack { .. }
            | Error::Interrupted { .. } => None,
        };
        hint.into_iter().collect()
    }
}

/// A planner's diagnostics: each with its location, then its hint and documentation link.
fn diagnostic_lines(diagnostics: &[Diagnostic]) -> Vec<String> {
    let mut out = Vec::new();
    for d in diagnostics {
        out.push(d.to_string());
        if let Some(h) = &d.hint {
            out.push(format!("  hint: {h}"));
        }
        if let Some(doc) = &d.doc {
            out.push(format!("  see: {doc}"));
        }
    }
    out
}

/// The document `--format json` prints when nothing could be planned (exit code 1, or 2 when error
/// findings stop the plan; docs/json.md, docs/schemas/error.schema.json).
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct ErrorDoc<'a> {
    /// Version of the JSON documents (now 1); fields are only added within a version.
    schema_version: u32,
    /// What went wrong.
    error: ErrorBody<'a>,
}

/// The error: a message and every problem found.
#[derive(Serialize, schemars::JsonSchema)]
struct ErrorBody<'a> {
    /// One sentence.
    message: String,
    /// Every problem found, in file order.
    diagnostics: &'a [Diagnostic],
}

/// A planning error as the JSON document `--format json` promises (docs/json.md).
fn print_json(e: &PlanError) {
    let diagnostics = e.diagnostics();
    let doc = ErrorDoc {
        schema_version: render::JSON_SCHEMA_VERSION,
        error: ErrorBody {
            message: e.to_string(),
            diagnostics: &diagnostics,
        },
    };
    crate::cli::out(&(serde_json::to_string_pretty(&doc).expect("errors serialize") + "\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_documented_exit_code_and_ends_with_what_to_do() {
        let run = "20250101-000000-abcd".to_string();
        let failed = Some(("migrate/x".to_string(), "boom".to_string()));
        let paused = Error::Paused {
            run: run.clone(),
            failed: failed.clone(),
        };
        assert_eq!(paused.exit_code(), exit::RELEASE_FAILED);
        assert_eq!(
            paused.render(),
            format!(
                "error: step `migrate/x` failed: boom\n  hint: fix the cause, then `cutover resume \
                 {run}` retries from that step, or `cutover rollback {run}` undoes what was done\n"
            )
        );
        let stopped = Error::RollbackStopped {
            run: run.clone(),
            stopped_at: Some(("shift/api/50".into(), "nginx said no".into())),
            undo_failed: true,
            failed,
        };
        assert_eq!(stopped.exit_code(), exit::ROLLBACK_STOPPED);
        let text = stopped.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..2],
            [
                "error: undoing `shift/api/50` failed, so the rollback stopped there: nginx said no",
                "  (it started because step `migrate/x` failed: boom)",
            ]
        );
        assert!(
            lines[2].starts_with("  hint: fix what made the undo"),
            "{text}"
        );
        let interrupted = Error::Interrupted { run: run.clone() };
        assert_eq!(interrupted.exit_code(), exit::INTERRUPTED);
        assert_eq!(
            interrupted.render(),
            format!("interrupted; continue with `cutover resume {run}`\n")
        );
        assert_eq!(Error::Findings.exit_code(), exit::FINDINGS);
        assert_eq!(Error::Findings.render(), "");
    }

    #[test]
    fn the_cause_chain_is_printed_once_each_between_the_error_and_its_hint() {
        // A cause the message already names inline is not repeated.
        let full = std::io::Error::from_raw_os_error(28); // ENOSPC
        let e = Error::from(ExecError::file(
            "append an event to the event log",
            std::path::Path::new("/st/runs/r/events.log"),
            full,
        ));
        let text = e.render();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.starts_with(
                "error: /st/runs/r/events.log: cannot append an event to the event log: No space \
                 left on device"
            ),
            "{text}"
        );
        assert!(
            text.lines()
                .last()
                .unwrap()
                .starts_with("  hint: the disk (or your quota) is full"),
            "{text}"
        );
        // A cause the message does not name gets its own line.
        let e = Error::from(ExecError::PgPlanUnreadable {
            run: "r".into(),
            source: serde_json::from_str::<u32>("x").unwrap_err(),
        });
        let text = e.render();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "error: PostgreSQL log: the recorded plan of r is unreadable",
                "  caused by: expected value at line 1 column 1",
            ]
        );
        assert_eq!(e.exit_code(), exit::INPUT);
    }
}
