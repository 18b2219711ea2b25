//! `pause` steps: wait, then succeed. Nothing to undo.

use crate::driver::{BoxFuture, Done, Driver, Probe, StepContext, StepError};
use cutover_planner::dag::{Params, Step};
use serde_json::Value;

/// Sleeps for the step's duration.
pub struct PauseDriver;

impl Driver for PauseDriver {
    fn run(&self, step: Step, _ctx: StepContext) -> BoxFuture<Result<Done, StepError>> {
        Box::pin(async move {
            let Params::Pause { duration, .. } = step.params else { return Err(StepError(format!("{} is not a pause step", step.id))) };
            if !duration.is_zero() {
                tokio::time::sleep(std::time::Duration::from_millis(duration.as_millis())).await;
            }
            Ok(Done { undo: Value::Null, detail: Some(format!("waited {duration}")) })
        })
    }

    fn undo(&self, _step: Step, _undo: Value, _ctx: StepContext) -> BoxFuture<Result<(), StepError>> {
        Box::pin(async { Ok(()) })
    }

    fn probe(&self, _step: Step, _ctx: StepContext) -> BoxFuture<Result<Option<Probe>, StepError>> {
        // Waiting again is harmless: treat an interrupted pause as not done.
        Box::pin(async { Ok(Some(Probe::NotDone)) })
    }
}
