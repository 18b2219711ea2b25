//! `preflight`: read-only checks before anything changes. For each database: it is reachable
//! (through the environment variable the spec names), its refinery history is what the plan
//! expects (the baseline applied with the same checksums, nothing of this release applied yet),
//! and transactions open longer than the database's `lock_timeout` (which would make DDL wait)
//! are reported. Nothing to undo.

use crate::driver::{BoxFuture, Done, Driver, Probe, StepContext, StepError};
use cutover_planner::dag::{Params, Step};
use serde_json::Value;

/// Runs the checks.
pub struct PreflightDriver;

impl Driver for PreflightDriver {
    fn run(&self, step: Step, _ctx: StepContext) -> BoxFuture<Result<Done, StepError>> {
        Box::pin(async move {
            let Params::Preflight { databases, .. } = &step.params else { return Err(StepError(format!("{} is not a preflight step", step.id))) };
            let mut details = Vec::new();
            for db in databases {
                details.push(crate::drivers::postgres::check_database(db).await?);
            }
            let detail = if details.is_empty() { "no database to check".to_string() } else { details.join("; ") };
            Ok(Done { undo: Value::Null, detail: Some(detail) })
        })
    }

    fn undo(&self, _step: Step, _undo: Value, _ctx: StepContext) -> BoxFuture<Result<(), StepError>> {
        Box::pin(async { Ok(()) })
    }

    fn probe(&self, _step: Step, _ctx: StepContext) -> BoxFuture<Result<Option<Probe>, StepError>> {
        // Checking again is harmless.
        Box::pin(async { Ok(Some(Probe::NotDone)) })
    }
}
