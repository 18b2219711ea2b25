//! JSON output; the schema is documented in `docs/json.md`.

use super::Summary;
use crate::analysis::MigrationAnalysis;
use crate::dag::{Downtime, Plan, Step};
use crate::lint::{Counts, Finding};
use crate::spec::StrategyKind;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeMap;

/// Version of the JSON documents; bumped on any incompatible change.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// `cutover plan SPEC --format json`: the release plan (docs/json.md,
/// docs/schemas/plan.schema.json).
#[derive(Serialize, JsonSchema)]
pub(crate) struct PlanDoc<'a> {
    /// Version of the JSON documents (now 1); fields are only added within a version.
    schema_version: u32,
    /// The release's name (`[release] name`).
    release: &'a str,
    /// sha256 (64 hex characters) over the plan format version and the step fingerprints: the
    /// same spec and migration contents give the same hash on any machine.
    plan_hash: &'a str,
    /// Each service's strategy.
    strategies: BTreeMap<&'a str, StrategyKind>,
    /// Headline numbers.
    summary: Summary,
    /// The first step a rollback cannot undo; null if every step can be undone.
    point_of_no_return: Option<&'a str>,
    /// A recreate release's downtime window; null for the other strategies.
    downtime: Option<&'a Downtime>,
    /// The spec's `[release] hold`: every run stops before `point_of_no_return` until `cutover
    /// promote` (present only when true; `apply --hold` asks the same per run).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    hold: bool,
    /// The steps, in dependency order.
    steps: Vec<&'a Step>,
    /// What the analysis found in the migrations.
    findings: &'a [Finding],
    /// Every migration of the release, analyzed.
    migrations: Vec<MigrationDoc<'a>>,
}

/// A migration of a plan, with the database it belongs to.
#[derive(Serialize, JsonSchema)]
pub(crate) struct MigrationDoc<'a> {
    /// The database (its name in the spec).
    database: &'a str,
    #[serde(flatten)]
    migration: &'a MigrationAnalysis,
}

/// The plan as a JSON document (pretty-printed, trailing newline).
pub fn plan_json(plan: &Plan) -> String {
    let doc = PlanDoc {
        schema_version: JSON_SCHEMA_VERSION,
        release: &plan.release,
        plan_hash: &plan.hash,
        strategies: plan
            .strategies
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect(),
        summary: Summary::of(plan),
        point_of_no_return: plan.point_of_no_return().map(|s| s.id.as_str()),
        downtime: plan.downtime.as_ref(),
        hold: plan.hold,
        steps: plan.steps().collect(),
        findings: &plan.findings,
        migrations: plan
            .migrations
            .iter()
            .map(|(db, m)| MigrationDoc {
                database: db,
                migration: m,
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("plan serializes");
    s.push('\n');
    s
}

/// `cutover lint PATHS --format json` (docs/json.md, docs/schemas/lint.schema.json).
#[derive(Serialize, JsonSchema)]
pub(crate) struct LintDoc<'a> {
    /// Version of the JSON documents (now 1); fields are only added within a version.
    schema_version: u32,
    /// Findings by severity.
    summary: Counts,
    /// Every migration linted, in file order.
    migrations: &'a [MigrationAnalysis],
    /// What the analysis found.
    findings: &'a [Finding],
}

/// A lint run as a JSON document.
pub fn lint_json(migrations: &[MigrationAnalysis], findings: &[Finding]) -> String {
    let doc = LintDoc {
        schema_version: JSON_SCHEMA_VERSION,
        summary: Counts::of(findings),
        migrations,
        findings,
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("lint serializes");
    s.push('\n');
    s
}
