//! Saved plans: `cutover plan SPEC --out FILE` writes what was reviewed, `cutover apply --plan
//! FILE` runs it only if planning the same spec now gives the same steps (Terraform refuses a
//! stale saved plan the same way).

use crate::error::Error;
use cutover_planner::dag::Plan;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The version of the saved-plan file this cutover writes and reads.
pub const SAVED_PLAN_FORMAT: u32 = 1;

/// A reviewed plan, as `plan --out` writes it: the spec it came from, its hash and each step's
/// fingerprint (what `apply --plan` compares), and the plan itself for humans and tools.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    /// [`SAVED_PLAN_FORMAT`].
    pub format: u32,
    /// The spec's path as given to `plan`.
    pub spec: PathBuf,
    /// The release name.
    pub release: String,
    /// The plan's hash.
    pub plan_hash: String,
    /// Step id and fingerprint, in plan order.
    pub steps: Vec<(String, String)>,
}

impl SavedPlan {
    /// The saved form of `plan`, planned from `spec`.
    pub fn of(plan: &Plan, spec: &Path) -> Self {
        SavedPlan {
            format: SAVED_PLAN_FORMAT,
            spec: spec.to_path_buf(),
            release: plan.release.clone(),
            plan_hash: plan.hash.clone(),
            steps: plan
                .steps()
                .map(|s| (s.id.clone(), s.hash.clone()))
                .collect(),
        }
    }

    /// What differs between this saved plan and `now` (planned from the spec as it is): steps
    /// added, removed or changed, each as `added STEP`, `removed STEP` or `changed STEP`. Empty
    /// when they are the same plan.
    pub fn drift(&self, now: &Plan) -> Vec<String> {
        if now.hash == self.plan_hash {
            return Vec::new();
        }
        use cutover_executor::session::{StepDrift, step_drift};
        let mut out: Vec<String> = step_drift(&self.steps, now)
            .into_iter()
            .map(|d| match d {
                StepDrift::Changed(id) => format!("changed {id}"),
                StepDrift::Removed(id) => format!("removed {id}"),
                StepDrift::Added(id) => format!("added {id}"),
            })
            .collect();
        if out.is_empty() {
            // Same steps, other order or release-level settings.
            out.push("the plan as a whole (same steps, other order or settings)".into());
        }
        out
    }
}

/// Writes `plan` (planned from `spec`) to `file`, with the spec's absolute path so `apply --plan`
/// finds it from any directory.
///
/// Errors: the file cannot be written ([`Error::SavedPlanUnreadable`] naming it and why).
pub fn write(plan: &Plan, spec: &Path, file: &Path) -> Result<(), Error> {
    let abs = std::fs::canonicalize(spec).unwrap_or_else(|_| spec.to_path_buf());
    let text = serde_json::to_string_pretty(&SavedPlan::of(plan, &abs)).expect("plans serialize");
    std::fs::write(file, text + "\n").map_err(|e| Error::SavedPlanUnreadable {
        file: file.to_path_buf(),
        why: format!("cannot write it: {e}"),
    })
}

/// Reads a saved plan.
///
/// Errors: [`Error::SavedPlanUnreadable`] when it cannot be read, is not JSON of this shape, or
/// has another format version.
pub fn read(file: &Path) -> Result<SavedPlan, Error> {
    let bad = |why: String| Error::SavedPlanUnreadable {
        file: file.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    let saved: SavedPlan = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if saved.format != SAVED_PLAN_FORMAT {
        return Err(bad(format!(
            "format {} (this cutover reads {SAVED_PLAN_FORMAT})",
            saved.format
        )));
    }
    Ok(saved)
}

/// Whether `hash` (a full plan hash or at least its first 8 hex digits, as the plan prints 16)
/// names `plan`.
pub fn hash_matches(plan: &Plan, hash: &str) -> bool {
    let h = hash.trim().to_ascii_lowercase();
    h.len() >= 8 && plan.hash.starts_with(&h)
}
