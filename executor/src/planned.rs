//! [`plan_file`]: a spec and the plan built from it, read once. `cutover plan`, `apply` and
//! `resume` all need the plan; `apply` and `resume` need the spec too (its `on_failure`), and
//! reading the files twice could see two versions of them.

use cutover_planner::spec::ReleaseSpec;
use cutover_planner::{Plan, PlanError};
use std::path::Path;

/// A release spec and its plan.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The spec as read.
    pub spec: ReleaseSpec,
    /// The plan built from it and its migrations.
    pub plan: Plan,
}

/// Reads the spec at `spec_path` and the migrations it names, once, and plans the release.
pub fn plan_file(spec_path: &Path) -> Result<Planned, PlanError> {
    let (spec, migrations) = cutover_planner::plan::load(spec_path)?;
    let plan = cutover_planner::plan_release(&spec, migrations)?;
    Ok(Planned { spec, plan })
}
