//! JSON output; the schema is documented in `docs/json.md`.

use super::Summary;
use crate::analysis::MigrationAnalysis;
use crate::dag::{Downtime, Plan, Step};
use crate::lint::{Counts, Finding};
use serde::Serialize;
use std::collections::BTreeMap;

/// Version of the JSON documents; bumped on any incompatible change.
pub const JSON_SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct PlanDoc<'a> {
    schema_version: u32,
    release: &'a str,
    plan_hash: &'a str,
    strategies: BTreeMap<&'a str, &'static str>,
    summary: Summary,
    point_of_no_return: Option<&'a str>,
    downtime: Option<&'a Downtime>,
    steps: Vec<&'a Step>,
    findings: &'a [Finding],
    migrations: Vec<MigrationDoc<'a>>,
}

#[derive(Serialize)]
struct MigrationDoc<'a> {
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
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        summary: Summary::of(plan),
        point_of_no_return: plan.point_of_no_return().map(|s| s.id.as_str()),
        downtime: plan.downtime.as_ref(),
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

#[derive(Serialize)]
struct LintDoc<'a> {
    schema_version: u32,
    summary: Counts,
    migrations: &'a [MigrationAnalysis],
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
