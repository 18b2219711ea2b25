//! Argument parsing (clap) and the commands. Each command returns an exit code; errors are
//! printed as `error: ...` with the location and `hint:` lines, and as a JSON document on stdout
//! when `--format json` was asked for, so machines never have to parse text.

use crate::exit;
use clap::{Parser, Subcommand, ValueEnum};
use cutover_planner::analysis::{AnalyzeOptions, analyze};
use cutover_planner::error::{Diagnostic, PlanError};
use cutover_planner::lint::{RULES, Severity};
use cutover_planner::migrations::{MigrationFile, load_dir};
use cutover_planner::render;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const ABOUT: &str = "Plan and run schema-changing releases: expand/contract migrations, canary and blue-green traffic steps, one resumable DAG.";

const AFTER_HELP: &str = "\
Examples:
  cutover plan plans/canary-rename.toml                   review the release in a terminal
  cutover plan plans/canary-rename.toml --format markdown pull-request comment
  cutover plan plans/canary.toml --format json            for scripts (schema: docs/json.md)
  cutover lint migrations-sample/app                      lint a migrations directory
  cutover lint --list-rules                               every rule id and its severity

Exit codes: 0 ok, 1 bad input or internal error, 2 error-severity findings.";

/// cutover: migration-aware release planner and executor.
#[derive(Debug, Parser)]
#[command(name = "cutover", version, about = ABOUT, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
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
    },
    /// Lint SQL migrations: classify each statement as expand, contract or breaking and report
    /// lock hazards, data loss and renames, with rule ids, file:line and a fix.
    #[command(after_help = "\
PATHS are migration directories (every V{n}__{name}.sql in them, in version order) or single
.sql files. Silence a finding on one statement with a comment above it:
    -- cutover:ignore require-concurrent-index-creation
Declare a file's phase when cutover cannot know it:
    -- cutover:phase=contract

Exit codes: 0 no error findings; 1 bad input; 2 some finding has error severity.")]
    Lint {
        /// Migration directories or .sql files.
        #[arg(required_unless_present = "list_rules")]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, short = 'f', value_enum, default_value_t = LintFormat::Text)]
        format: LintFormat,
        /// Print every rule id with its severity and what it catches, and exit.
        #[arg(long)]
        list_rules: bool,
    },
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
    Text,
    Json,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors are bad input (1); clap's own 2 would read as "findings".
            return ExitCode::from(if e.use_stderr() { exit::INPUT } else { exit::OK });
        }
    };
    let code = match cli.command {
        Command::Plan { spec, format } => plan(&spec, format),
        Command::Lint { paths, format, list_rules } => {
            if list_rules {
                list(format)
            } else {
                lint(&paths, format)
            }
        }
    };
    ExitCode::from(code)
}

fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`cutover plan ... | head`) is not an error worth a panic.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

#[derive(Serialize)]
struct ErrorDoc<'a> {
    schema_version: u32,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: String,
    diagnostics: &'a [Diagnostic],
}

/// Prints a planning error: text on stderr, and a JSON document on stdout if asked for.
fn report(err: &PlanError, json: bool) -> u8 {
    let diagnostics = err.diagnostics();
    let mut stderr = std::io::stderr().lock();
    let headline = match err {
        PlanError::Blocked(_) => format!("error: {err}; nothing was planned"),
        PlanError::Invalid(d) if d.len() > 1 => format!("error: {} problems in the input; nothing was planned", d.len()),
        _ => "error: nothing was planned".to_string(),
    };
    let _ = writeln!(stderr, "{headline}");
    for d in &diagnostics {
        let _ = writeln!(stderr, "  {d}");
        if let Some(h) = &d.hint {
            let _ = writeln!(stderr, "    hint: {h}");
        }
    }
    if json {
        let doc = ErrorDoc { schema_version: render::JSON_SCHEMA_VERSION, error: ErrorBody { message: err.to_string(), diagnostics: &diagnostics } };
        out(&(serde_json::to_string_pretty(&doc).expect("errors serialize") + "\n"));
    }
    exit::INPUT
}

fn plan(spec: &std::path::Path, format: PlanFormat) -> u8 {
    let plan = match cutover_planner::plan_file(spec) {
        Ok(p) => p,
        Err(e) => return report(&e, format == PlanFormat::Json),
    };
    let text = match format {
        PlanFormat::Text => render::plan_text(&plan),
        PlanFormat::Json => render::plan_json(&plan),
        PlanFormat::Markdown => render::markdown(&plan, &spec.display().to_string()),
        PlanFormat::Mermaid => render::mermaid(&plan),
        PlanFormat::Dot => render::dot(&plan),
    };
    out(&text);
    if plan.findings.iter().any(|f| f.severity == Severity::Error) { exit::FINDINGS } else { exit::OK }
}

fn lint(paths: &[PathBuf], format: LintFormat) -> u8 {
    let json = format == LintFormat::Json;
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let shown = path.display().to_string();
        if path.is_dir() {
            match load_dir(path, shown.trim_end_matches('/')) {
                Ok(f) => files.extend(f),
                Err(PlanError::Invalid(d)) => problems.extend(d),
                Err(e) => return report(&e, json),
            }
        } else {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            match std::fs::read(path) {
                Ok(bytes) => match MigrationFile::loose(&name, &shown, &bytes, i as u64) {
                    Ok(m) => files.push(m),
                    Err(d) => problems.push(d),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => problems.push(Diagnostic::new(
                    cutover_planner::source::Location::file(&shown),
                    format!("`{shown}` does not exist"),
                    "pass migration directories or .sql files",
                )),
                Err(source) => return report(&PlanError::Io { path: path.clone(), source }, json),
            }
        }
    }
    if !problems.is_empty() {
        return report(&PlanError::Invalid(problems), json);
    }
    files.sort_by_key(|m| m.version);
    let analysis = analyze(&files, None, AnalyzeOptions::default());
    let text = if json { render::lint_json(&analysis.migrations, &analysis.findings) } else { render::lint_text(&analysis.migrations, &analysis.findings) };
    out(&text);
    if analysis.findings.iter().any(|f| f.severity == Severity::Error) { exit::FINDINGS } else { exit::OK }
}

fn list(format: LintFormat) -> u8 {
    if format == LintFormat::Json {
        out(&(serde_json::to_string_pretty(RULES).expect("rules serialize") + "\n"));
    } else {
        let mut s = String::new();
        for r in RULES {
            s.push_str(&format!("{:<46} {:<8} {:<8} {}\n", r.id, r.severity.as_str(), r.source, r.summary));
        }
        out(&s);
    }
    exit::OK
}
