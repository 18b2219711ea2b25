//! The step interface: [`Driver`] (run, undo, probe) and [`Drivers`], which maps step kinds to
//! drivers. The runner knows nothing about PostgreSQL, Docker or routers; each is a driver here,
//! and a later container runtime (Swarm, Kubernetes) is another driver behind the same trait.

use crate::redact::Redactor;
use cutover_planner::dag::{Step, StepKind};
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, as drivers return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a step's run produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// What a rollback needs to restore the exact previous state (recorded in the log).
    pub undo: Value,
    /// One line for humans.
    pub detail: Option<String>,
}

/// What a probe found out about a step whose end was not recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// The effect is in place; here is its undo data.
    Done(Value),
    /// The effect is not there.
    NotDone,
    /// Part of the effect is in place (a migration outside a transaction stopped between its
    /// statements). A resume runs the step again (its run must then skip what is done); a
    /// rollback undoes it with this undo data (its undo must tolerate what is missing).
    Partial(Value),
}

/// A step failed; the message is shown to the operator and written to the log (redacted).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StepError(pub String);

impl StepError {
    /// How an inconclusive result starts: the step could not decide (an analysis gate saw too
    /// few requests). The run pauses then, whatever `on_failure` says: rolling back a release
    /// nobody found fault with would be as wrong as going on.
    pub const INCONCLUSIVE: &'static str = "inconclusive: ";

    /// An inconclusive result.
    pub fn inconclusive(why: impl std::fmt::Display) -> Self {
        Self(format!("{}{why}", Self::INCONCLUSIVE))
    }

    /// Whether this is an inconclusive result.
    pub fn is_inconclusive(&self) -> bool {
        self.0.starts_with(Self::INCONCLUSIVE)
    }
}

/// Everything a driver may need besides the step.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The run's directory (for files a driver keeps, e.g. router backups).
    pub run_dir: PathBuf,
    /// Directory of the spec: relative paths in the spec resolve here.
    pub spec_dir: PathBuf,
    /// Secret remover for anything a driver reports.
    pub redactor: Arc<Redactor>,
    /// Where a long step reports progress (`step_progress` events, e.g. a backfill's cursor).
    /// The runner sets it for each step.
    pub progress: Option<Progress>,
    /// The step's last recorded progress, when a resume runs it again: where to continue.
    pub resume_from: Option<Value>,
    /// Which attempt of the step this is (1 for the first; the runner sets it).
    pub attempt: u32,
}

/// Sends a step's progress to the runner, which records it in the log.
#[derive(Debug, Clone)]
pub struct Progress {
    step: String,
    tx: tokio::sync::mpsc::UnboundedSender<(String, Value)>,
}

impl Progress {
    /// A sender for `step`'s progress.
    pub fn new(step: String, tx: tokio::sync::mpsc::UnboundedSender<(String, Value)>) -> Self {
        Self { step, tx }
    }

    /// Reports `data` (the runner writes it as a `step_progress` event).
    pub fn report(&self, data: Value) {
        let _ = self.tx.send((self.step.clone(), data));
    }
}

impl StepContext {
    /// A context with no progress channel and nothing to resume from.
    pub fn new(run_dir: PathBuf, spec_dir: PathBuf, redactor: Arc<Redactor>) -> Self {
        Self {
            run_dir,
            spec_dir,
            redactor,
            progress: None,
            resume_from: None,
            attempt: 1,
        }
    }
}

/// Runs, undoes and probes one kind of step.
///
/// - `run` performs the effect and returns the undo data. The runner has already made the
///   `step_started` event durable.
/// - `undo` restores the state from before `run`, using exactly the recorded undo data. It must be
///   safe to repeat: a rollback interrupted after it ran will run it again.
/// - `probe` inspects the real system for a step that started but whose end was not recorded.
///   `None` means this step cannot be probed.
pub trait Driver: Send + Sync {
    /// Performs the step.
    fn run(&self, step: Step, ctx: StepContext) -> BoxFuture<Result<Done, StepError>>;
    /// Undoes the step.
    fn undo(&self, step: Step, undo: Value, ctx: StepContext) -> BoxFuture<Result<(), StepError>>;
    /// Checks whether the step's effect is in place.
    fn probe(&self, step: Step, ctx: StepContext) -> BoxFuture<Result<Option<Probe>, StepError>>;

    /// Makes sure nothing of an earlier attempt of `step` (by an executor that died) is still
    /// acting: its processes are gone, its database statements have ended. The runner calls it
    /// for every step in doubt or half-compensated before it probes, re-runs or undoes one, so a
    /// probe never judges an effect that is still on its way. `Ok(Some(line))` says what had to
    /// be waited for or stopped, for the operator. The default has nothing to fence.
    fn fence(
        &self,
        _step: Step,
        _ctx: StepContext,
    ) -> BoxFuture<Result<Option<String>, StepError>> {
        Box::pin(async { Ok(None) })
    }

    /// Whether `run` only waits or watches, so the runner may drop it at any point: on the first
    /// Ctrl-C it stops such a step at once (left in doubt; the probe must then say `NotDone` and a
    /// re-run must be right) instead of waiting for it to end as it does for steps with effects.
    fn interruptible(&self) -> bool {
        false
    }

    /// Puts back the state a `backup` step captured (its undo data names the dump). Only backup
    /// drivers can; it is destructive, and the runner calls it only when the operator asked for a
    /// rollback past a pivot with `--restore-backup`.
    fn restore(
        &self,
        step: Step,
        _undo: Value,
        _ctx: StepContext,
    ) -> BoxFuture<Result<String, StepError>> {
        Box::pin(async move {
            Err(StepError(format!(
                "`{}` steps cannot restore anything",
                step.kind.as_str()
            )))
        })
    }
}

/// The driver for each step kind.
#[derive(Clone, Default)]
pub struct Drivers {
    map: BTreeMap<StepKind, Arc<dyn Driver>>,
}

impl Drivers {
    /// The drivers this build has: commands, pauses, preflight, PostgreSQL migrations, backups
    /// and backfills, containers on the Docker engine, and nginx/HAProxy traffic steps.
    pub fn builtin() -> Self {
        Self::with_runtime(crate::runtime::Docker::new())
    }

    /// The built-in drivers with `runtime` for the container steps (a Swarm or Kubernetes
    /// runtime plugs in here).
    pub fn with_runtime(runtime: Arc<dyn crate::runtime::ContainerRuntime>) -> Self {
        use crate::drivers::{containers, traffic};
        let mut d = Drivers::default();
        d.insert(
            StepKind::Command,
            Arc::new(crate::drivers::command::CommandDriver),
        );
        d.insert(
            StepKind::Pause,
            Arc::new(crate::drivers::pause::PauseDriver),
        );
        d.insert(
            StepKind::Preflight,
            Arc::new(crate::drivers::preflight::PreflightDriver(runtime.clone())),
        );
        d.insert(
            StepKind::Deploy,
            Arc::new(containers::DeployDriver(runtime.clone())),
        );
        d.insert(
            StepKind::Health,
            Arc::new(containers::HealthDriver(runtime.clone())),
        );
        d.insert(
            StepKind::Retire,
            Arc::new(containers::RetireDriver(runtime.clone())),
        );
        d.insert(
            StepKind::Cleanup,
            Arc::new(containers::CleanupDriver(runtime)),
        );
        d.insert(StepKind::Shift, Arc::new(traffic::ShiftDriver));
        d.insert(StepKind::Analysis, Arc::new(traffic::AnalysisDriver));
        d.insert(
            StepKind::Migrate,
            Arc::new(crate::drivers::postgres::MigrateDriver),
        );
        d.insert(
            StepKind::Backup,
            Arc::new(crate::drivers::postgres::BackupDriver),
        );
        d.insert(
            StepKind::Backfill,
            Arc::new(crate::drivers::postgres::BackfillDriver),
        );
        d
    }

    /// Sets the driver of `kind`.
    pub fn insert(&mut self, kind: StepKind, driver: Arc<dyn Driver>) {
        self.map.insert(kind, driver);
    }

    /// The driver of `kind`.
    pub fn get(&self, kind: StepKind) -> Option<Arc<dyn Driver>> {
        self.map.get(&kind).cloned()
    }
}
