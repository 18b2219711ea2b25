//! Views of a [`Plan`] and of a lint run: text for terminals, JSON for machines, Markdown for
//! pull-request comments, Mermaid and DOT for diagrams. All are pure functions of the value, so
//! `plan`, `apply --dry-run` and the snapshot tests see the same output.

mod ci;
mod graph;
mod json;
mod markdown;
mod schema;
mod text;

pub use ci::{lint_github, lint_sarif};
pub use graph::{dot, mermaid};
pub use json::{JSON_SCHEMA_VERSION, lint_json, plan_json};
pub use markdown::{MARKDOWN_LIMIT, blocked_markdown, markdown};
pub use schema::{lint_schema, output_schema, plan_schema, rules_schema};
pub use text::{lint_text, plan_text};

use crate::analysis::Phase;
use crate::dag::{Plan, StepKind};
use crate::lint::Counts;
use serde::Serialize;

/// Headline numbers of a plan, shared by every format.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Summary {
    /// Number of steps.
    pub steps: usize,
    /// Migration steps in the expand phase.
    pub expand_migrations: usize,
    /// Migration steps in the contract phase.
    pub contract_migrations: usize,
    /// Steps a rollback cannot undo.
    pub irreversible_steps: usize,
    /// Findings by severity.
    pub findings: Counts,
}

impl Summary {
    /// Computes the summary of `plan`.
    pub fn of(plan: &Plan) -> Self {
        let migrations = |p: Phase| {
            plan.steps()
                .filter(|s| s.kind() == StepKind::Migrate && s.phase == Some(p))
                .count()
        };
        Summary {
            steps: plan.graph.node_count(),
            expand_migrations: migrations(Phase::Expand),
            contract_migrations: migrations(Phase::Contract),
            irreversible_steps: plan.steps().filter(|s| !s.reversible).count(),
            findings: Counts::of(&plan.findings),
        }
    }

    /// One line, e.g. `14 steps · 1 expand / 1 contract migration(s) · 2 irreversible · findings: ...`.
    pub fn line(&self) -> String {
        format!(
            "{} steps · {} expand / {} contract migration(s) · {} irreversible · findings: {}",
            self.steps,
            self.expand_migrations,
            self.contract_migrations,
            self.irreversible_steps,
            self.findings
        )
    }
}

/// What `[release] hold = true` does to this plan's runs, for the text and Markdown views:
/// where a run stops until `cutover promote`, or that it has nothing to stop before. `None`
/// without a hold in the spec (`apply --hold` asks for one per run).
pub(crate) fn hold_line(plan: &Plan) -> Option<String> {
    if !plan.hold {
        return None;
    }
    Some(match plan.point_of_no_return() {
        Some(p) => format!(
            "`[release] hold`: every run stops before `{}` until `cutover promote RUN`; until \
             then a rollback undoes everything",
            p.id
        ),
        None => "`[release] hold`: every step can be rolled back, so a run has nothing to hold \
                 before and goes to the end"
            .to_string(),
    })
}
