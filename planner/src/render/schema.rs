//! JSON Schemas of the JSON output (`cutover schema plan|lint|rules`, `docs/schemas/`), derived by
//! schemars from the same serde types that write it, so the documents and their schemas cannot
//! drift apart. The executor's and the CLI's documents use [`output_schema`] too.

use super::json::{LintDoc, PlanDoc};
use crate::lint::RuleInfo;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;

/// The JSON Schema (draft 2020-12) of what `T` serializes to, pretty-printed, ending in a newline.
/// Written for serialization: a field serde leaves out when empty is not required, and an
/// `Option` that is written as `null` allows it.
pub fn output_schema<T: JsonSchema>() -> String {
    let generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let schema = generator.into_root_schema_for::<T>();
    serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
}

/// `cutover plan SPEC --format json`.
pub fn plan_schema() -> String {
    output_schema::<PlanDoc>()
}

/// `cutover lint PATHS --format json`.
pub fn lint_schema() -> String {
    output_schema::<LintDoc>()
}

/// `cutover lint --list-rules --format json`: every rule, in id order.
pub fn rules_schema() -> String {
    output_schema::<Vec<RuleInfo>>()
}
