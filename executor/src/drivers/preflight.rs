//! `preflight`: read-only checks before anything changes. For each database: it is reachable
//! (through the environment variable the spec names), its refinery history is what the plan
//! expects (the baseline applied with the same checksums, nothing of this release applied yet),
//! and transactions open longer than the database's `lock_timeout` (which would make DDL wait)
//! are reported. Nothing to undo.

use crate::driver::{BoxFuture, Done, Driver, Probe, StepContext, StepError};
use cutover_planner::dag::{Params, Step};
use serde_json::Value;

/// Runs the checks.
pub struct PreflightDriver(pub std::sync::Arc<dyn crate::runtime::ContainerRuntime>);

impl Driver for PreflightDriver {
    fn run(&self, step: Step, ctx: StepContext) -> BoxFuture<Result<Done, StepError>> {
        let rt = self.0.clone();
        Box::pin(async move {
            let Params::Preflight { databases, images, router, upstreams, shifts, .. } = &step.params else { return Err(StepError(format!("{} is not a preflight step", step.id))) };
            let mut details = Vec::new();
            for db in databases {
                details.push(crate::drivers::postgres::check_database(db).await?);
            }
            // Images: nothing can be pulled later, so every one must be on the engine now.
            let mut missing = Vec::new();
            for image in images {
                if !rt.image_exists(image).await.map_err(|e| StepError(e.0))? {
                    missing.push(image.clone());
                }
            }
            if !missing.is_empty() {
                return Err(StepError(format!("image(s) not on the container engine: {} (build or `docker load` them first; cutover never pulls)", missing.join(", "))));
            }
            if !images.is_empty() {
                details.push(format!("{} image(s) present", images.len()));
            }
            if let Some(r) = router {
                let r = crate::router::from_params(r, &ctx.spec_dir)?;
                details.push(r.check(upstreams.iter().map(|(k, v)| (k.clone(), v.clone())).collect(), shifts.clone()).await?);
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
