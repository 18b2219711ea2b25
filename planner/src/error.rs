//! Errors of the planner: [`PlanError`] and the [`Diagnostic`]s it carries.
//!
//! Every diagnostic names a place (file, and line/column where known) and says what to do about
//! it in a `hint`; the CLI prints them as `file:line:col: message` followed by `hint:` lines.

use crate::lint::Finding;
use crate::source::Location;
use schemars::JsonSchema;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// One problem with the input, with where it is and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Diagnostic {
    /// Where the problem is.
    #[serde(flatten)]
    pub location: Location,
    /// A complete sentence saying what is wrong.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Where to read more: the rule's section of `docs/rules.md`, for a finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    /// For a finding: its rule and severity (`rule`, `severity` in JSON). Boxed: most
    /// diagnostics are not findings, and results carrying one stay small.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub finding: Option<Box<FindingRef>>,
}

/// The rule a finding diagnostic comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FindingRef {
    /// The rule's id.
    pub rule: String,
    /// The finding's severity.
    pub severity: crate::lint::Severity,
}

impl Diagnostic {
    /// A diagnostic with a hint.
    pub fn new(location: Location, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            location,
            message: message.into(),
            hint: Some(hint.into()),
            doc: None,
            finding: None,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Why no plan could be built.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The spec or the migrations are malformed.
    #[error("{}", summary(.0))]
    Invalid(Vec<Diagnostic>),
    /// Migrations were read, but some statements cannot be placed in a phase (unparseable,
    /// breaking without a rewrite, or a phase declaration they contradict).
    #[error("{} finding(s) in the migrations stop planning", .0.len())]
    Blocked(Vec<Finding>),
}

fn summary(d: &[Diagnostic]) -> String {
    match d {
        [one] => one.to_string(),
        _ => format!("{} problems in the input", d.len()),
    }
}

impl PlanError {
    /// Diagnostics for display: the list of an `Invalid`, the findings of a `Blocked`.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            PlanError::Io { path, .. } => vec![Diagnostic {
                location: Location::file(path.display().to_string()),
                message: self.to_string(),
                hint: None,
                doc: None,
                finding: None,
            }],
            PlanError::Invalid(d) => d.clone(),
            PlanError::Blocked(findings) => findings.iter().map(Finding::to_diagnostic).collect(),
        }
    }
}
