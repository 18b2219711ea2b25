//! Step drivers built into this release of cutover, and [`Drivers::builtin`], the set `apply`,
//! `resume` and `rollback` run with.
//!
//! The trait they implement lives in [`crate::driver`], which names none of them: the
//! dependency goes one way, from each driver (and this set) to the trait, never back.

pub mod command;
pub mod containers;
pub mod pause;
pub mod pgerror;
pub mod pgstmt;
pub mod pgurl;
pub mod postgres;
pub mod preflight;
pub mod traffic;

use crate::driver::Drivers;
use crate::runtime::ContainerRuntime;
use cutover_planner::dag::StepKind;
use std::sync::Arc;

impl Drivers {
    /// The drivers this build has: commands, pauses, preflight, PostgreSQL migrations, backups
    /// and backfills, containers on the Docker engine, and nginx/HAProxy traffic steps.
    pub fn builtin() -> Self {
        Self::with_runtime(crate::runtime::Docker::new())
    }

    /// The built-in drivers with `runtime` for the container steps (a Swarm or Kubernetes
    /// runtime plugs in here).
    pub fn with_runtime(runtime: Arc<dyn ContainerRuntime>) -> Self {
        let mut d = Drivers::default();
        d.insert(StepKind::Command, command::CommandDriver);
        d.insert(StepKind::Pause, pause::PauseDriver);
        d.insert(
            StepKind::Preflight,
            preflight::PreflightDriver(runtime.clone()),
        );
        d.insert(StepKind::Deploy, containers::DeployDriver(runtime.clone()));
        d.insert(StepKind::Health, containers::HealthDriver(runtime.clone()));
        d.insert(StepKind::Retire, containers::RetireDriver(runtime.clone()));
        d.insert(StepKind::Cleanup, containers::CleanupDriver(runtime));
        d.insert(StepKind::Shift, traffic::ShiftDriver);
        d.insert(StepKind::Analysis, traffic::AnalysisDriver);
        d.insert(StepKind::Migrate, postgres::MigrateDriver);
        d.insert(StepKind::Backup, postgres::BackupDriver);
        d.insert(StepKind::Backfill, postgres::BackfillDriver);
        d
    }
}
