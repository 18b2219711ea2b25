//! `cutover.toml`, the project's settings: found by walking up from the current directory to the
//! first directory that has one (as cargo finds `Cargo.toml`), so every command works from any
//! subdirectory of the project. A flag wins over its environment variable, which wins over the
//! file, which wins over the default.
//!
//! ```toml
//! state_dir = ".cutover"                      # relative to this file
//! log_database_url_env = "CUTOVER_LOG_DB"     # the variable holding the URL, never the URL
//!
//! [lint]
//! exclude = ["migrations/legacy/**"]          # globs, relative to this file
//! rules = { adding-field-with-default = "off", prefer-text-field = "warning" }
//! ```

use cutover_planner::error::{Diagnostic, PlanError};
use cutover_planner::lint::{Finding, RULES, Severity};
use cutover_planner::source::{LineIndex, Location};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file's name.
pub const FILE: &str = "cutover.toml";

/// What `cutover.toml` says.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where runs are kept, relative to the file.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// The environment variable holding the log database's URL (a URL can hold a password,
    /// which has no place in a committed file).
    #[serde(default)]
    pub log_database_url_env: Option<toml::Spanned<String>>,
    /// `[lint]`.
    #[serde(default)]
    pub lint: LintSettings,
}

/// `[lint]` of `cutover.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LintSettings {
    /// Files `cutover lint` leaves out: globs relative to the file (`**` crosses directories).
    #[serde(default)]
    pub exclude: Vec<toml::Spanned<String>>,
    /// A rule's severity, or `off`, by rule id (`cutover lint --list-rules`).
    #[serde(default)]
    pub rules: BTreeMap<toml::Spanned<String>, RuleSetting>,
}

/// What `cutover lint` makes of a rule's findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleSetting {
    /// Left out.
    Off,
    /// Reported as info.
    Info,
    /// Reported as a warning.
    Warning,
    /// Reported as an error (exit 2).
    Error,
}

/// Where `span` of `text` (the file `shown`) is: its line and column, or the whole file.
fn located(shown: &str, text: &str, span: Option<std::ops::Range<usize>>) -> Location {
    match span {
        Some(s) => {
            let (line, column) = LineIndex::new(text).line_col(text, s.start);
            Location::at(shown, line, column)
        }
        None => Location::file(shown),
    }
}

/// The project: the directory of its `cutover.toml` and what the file says (defaults when there
/// is none).
#[derive(Debug, Default)]
pub struct Project {
    /// The file, when one was found.
    pub file: Option<PathBuf>,
    /// What it says.
    pub settings: Settings,
    exclude: Option<globset::GlobSet>,
}

impl Project {
    /// The project of the current directory: the nearest `cutover.toml` above it, read and
    /// checked; none is not an error.
    ///
    /// Errors: the file cannot be read, is not valid TOML, has an unknown key, names an unknown
    /// rule or severity, or an invalid glob (each with the file, line and column).
    pub fn discover() -> Result<Project, PlanError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let Some(file) = cwd.ancestors().map(|d| d.join(FILE)).find(|f| f.is_file()) else {
            return Ok(Project::default());
        };
        let text = std::fs::read_to_string(&file).map_err(|source| PlanError::Io {
            path: file.clone(),
            source,
        })?;
        Project::parse(file, &text)
    }

    /// `text`, the contents of `file`, read and checked.
    fn parse(file: PathBuf, text: &str) -> Result<Project, PlanError> {
        let shown = file.display().to_string();
        let at = |span: Option<std::ops::Range<usize>>| located(&shown, text, span);
        let settings: Settings = toml::from_str(text).map_err(|e| {
            let message = e.message().to_string();
            let d = Diagnostic::new(
                at(e.span()),
                message,
                "see the keys of cutover.toml in the README (\"Project settings\")",
            );
            PlanError::Invalid(vec![d])
        })?;
        let mut problems = Vec::new();
        for rule in settings.lint.rules.keys() {
            if !RULES.iter().any(|r| r.id == rule.get_ref()) {
                problems.push(Diagnostic::new(
                    at(Some(rule.span())),
                    format!("unknown rule `{}` in [lint.rules]", rule.get_ref()),
                    "`cutover lint --list-rules` lists the rule ids",
                ));
            }
        }
        let mut globs = globset::GlobSetBuilder::new();
        for pattern in &settings.lint.exclude {
            match globset::Glob::new(pattern.get_ref()) {
                Ok(g) => {
                    globs.add(g);
                }
                Err(e) => problems.push(Diagnostic::new(
                    at(Some(pattern.span())),
                    format!(
                        "`{}` in [lint] exclude is not a glob: {e}",
                        pattern.get_ref()
                    ),
                    "a glob relative to cutover.toml, e.g. `migrations/legacy/**`",
                )),
            }
        }
        if !problems.is_empty() {
            return Err(PlanError::Invalid(problems));
        }
        let exclude = globs.build().ok().filter(|g| !g.is_empty());
        Ok(Project {
            file: Some(file),
            settings,
            exclude,
        })
    }

    /// The directory of the file (paths in it are relative to it).
    pub fn root(&self) -> Option<&Path> {
        self.file.as_deref().and_then(Path::parent)
    }

    /// Where runs live when neither `--state-dir` nor `CUTOVER_STATE_DIR` says: the file's
    /// `state_dir`; else the nearest `.cutover` directory with a `runs/` in it, walking up from
    /// the current directory; else `.cutover` beside the file, or in the current directory.
    pub fn state_dir(&self) -> PathBuf {
        if let (Some(root), Some(dir)) = (self.root(), &self.settings.state_dir) {
            return root.join(dir);
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        if let Some(found) = cwd
            .ancestors()
            .map(|d| d.join(".cutover"))
            .find(|d| d.join("runs").is_dir())
        {
            return found;
        }
        self.root()
            .map_or_else(|| PathBuf::from(".cutover"), |r| r.join(".cutover"))
    }

    /// The log database's URL from the variable the file names, when neither
    /// `--log-database-url` nor `CUTOVER_LOG_DATABASE_URL` gave one.
    ///
    /// Errors: the file names a variable that is not set.
    pub fn log_database_url(&self) -> Result<Option<String>, PlanError> {
        let Some(var) = &self.settings.log_database_url_env else {
            return Ok(None);
        };
        match std::env::var(var.get_ref()) {
            Ok(url) => Ok(Some(url)),
            Err(_) => {
                let file = self.file.as_ref().expect("settings come from a file");
                let text = std::fs::read_to_string(file).unwrap_or_default();
                let shown = file.display().to_string();
                let at = located(&shown, &text, Some(var.span()));
                Err(PlanError::Invalid(vec![Diagnostic::new(
                    at,
                    format!(
                        "log_database_url_env names `{}`, which is not set",
                        var.get_ref()
                    ),
                    "set it to the log database's URL, or remove the key to keep runs in files",
                )]))
            }
        }
    }

    /// Whether `cutover lint` leaves `path` out: it matches an `exclude` glob, relative to the
    /// file's directory.
    pub fn excluded(&self, path: &Path) -> bool {
        let (Some(globs), Some(root)) = (&self.exclude, self.root()) else {
            return false;
        };
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        abs.strip_prefix(&root).is_ok_and(|rel| globs.is_match(rel))
    }

    /// `findings` with the file's rule settings applied: `off` ones dropped, the others at the
    /// severity it gives.
    pub fn apply_rules(&self, findings: Vec<Finding>) -> Vec<Finding> {
        let rules = &self.settings.lint.rules;
        if rules.is_empty() {
            return findings;
        }
        let setting = |rule: &str| {
            rules
                .iter()
                .find(|(id, _)| id.get_ref() == rule)
                .map(|(_, s)| *s)
        };
        findings
            .into_iter()
            .filter_map(|mut f| {
                f.severity = match setting(&f.rule) {
                    None => f.severity,
                    Some(RuleSetting::Off) => return None,
                    Some(RuleSetting::Info) => Severity::Info,
                    Some(RuleSetting::Warning) => Severity::Warning,
                    Some(RuleSetting::Error) => Severity::Error,
                };
                Some(f)
            })
            .collect()
    }
}
