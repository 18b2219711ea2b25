//! The step interface: [`Driver`] (run, undo, probe) and [`Drivers`], which maps step kinds to
//! drivers. The runner knows nothing about PostgreSQL, Docker or routers; each is a driver in
//! [`crate::drivers`], and a later container runtime (Swarm, Kubernetes) is another driver behind
//! the same trait. This module names no concrete driver: the built-in set,
//! [`Drivers::builtin`], is assembled in [`crate::drivers`], so the trait does not depend on
//! what implements it.
//!
//! A driver is typed: it gets its own parameters (e.g. [`MigrateParams`]) and declares its undo
//! data as a serde type. [`AnyDriver`] is the form the runner holds: it picks the step's
//! parameters out of [`Params`] (one match, in [`StepParams`]) and turns the undo data into the
//! JSON the log records and back.
//!
//! [`MigrateParams`]: cutover_planner::dag::MigrateParams

pub use crate::error::StepError;
use crate::redact::Redactor;
use cutover_planner::analysis::Phase;
use cutover_planner::dag::{
    AnalysisParams, BackfillParams, BackupParams, CommandParams, DeployParams, HealthParams,
    MigrateParams, Params, PauseParams, PreflightParams, ShiftParams, Step, StepKind,
    VersionParams,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
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
pub struct Done<U = Value> {
    /// What a rollback needs to restore the exact previous state (recorded in the log).
    pub undo: U,
    /// One line for humans.
    pub detail: Option<String>,
}

/// What a probe found out about a step whose end was not recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe<U = Value> {
    /// The effect is in place; here is its undo data.
    Done(U),
    /// The effect is not there.
    NotDone,
    /// Part of the effect is in place (a migration outside a transaction stopped between its
    /// statements). A resume runs the step again (its run must then skip what is done); a
    /// rollback undoes it with this undo data (its undo must tolerate what is missing).
    Partial(U),
}

impl<U> Probe<U> {
    fn map<V>(self, f: impl FnOnce(U) -> V) -> Probe<V> {
        match self {
            Probe::Done(u) => Probe::Done(f(u)),
            Probe::NotDone => Probe::NotDone,
            Probe::Partial(u) => Probe::Partial(f(u)),
        }
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
    /// The run the step belongs to (what hooks see in their environment).
    pub run: RunInfo,
}

/// The run a step belongs to, as commands see it in their environment (`CUTOVER_RUN_ID`,
/// `CUTOVER_RELEASE`, `CUTOVER_DRY_RUN`).
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// Run id.
    pub run_id: String,
    /// Release name.
    pub release: String,
    /// A describe-only run.
    pub dry_run: bool,
}

/// One report of a step's progress on its way to the runner: step id, the driver's progress
/// struct as JSON, and how much is done.
pub type Reported = (String, Value, Option<crate::event::Amount>);

/// Sends a step's progress to the runner, which records it in the log.
#[derive(Debug, Clone)]
pub struct Progress {
    step: String,
    tx: tokio::sync::mpsc::UnboundedSender<crate::driver::Reported>,
}

impl Progress {
    /// A sender for `step`'s progress.
    pub fn new(
        step: String,
        tx: tokio::sync::mpsc::UnboundedSender<crate::driver::Reported>,
    ) -> Self {
        Self { step, tx }
    }

    /// Reports `data`, a driver's progress struct (the runner writes it as a `step_progress`
    /// event).
    pub fn report(&self, data: &impl Serialize) {
        self.report_amount(data, None);
    }

    /// Reports `data` with how much of the step's work is done (shown by the views).
    pub fn report_amount(&self, data: &impl Serialize, amount: Option<crate::event::Amount>) {
        let data = serde_json::to_value(data).expect("progress structs serialize");
        let _ = self.tx.send((self.step.clone(), data, amount));
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
            run: RunInfo::default(),
        }
    }

    /// The step's last recorded progress as the driver's progress struct `T`, when a resume runs
    /// it again; `None` for a first attempt, or progress this driver did not write.
    pub fn resumed<T: DeserializeOwned>(&self) -> Option<T> {
        self.resume_from
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
    }

    /// Reports progress, when the runner gave this step a progress channel.
    pub fn report(&self, data: &impl Serialize) {
        if let Some(p) = &self.progress {
            p.report(data);
        }
    }
}

/// A step as its driver gets it: the step's id and phase, and its parameters, of the driver's
/// own type.
#[derive(Debug, Clone)]
pub struct Job<P> {
    /// Step id.
    pub id: String,
    /// `expand` or `contract`, for `migrate` steps.
    pub phase: Option<Phase>,
    /// The step's parameters.
    pub params: P,
}

/// The parameters a driver takes: one variant (two for retire and cleanup, which share theirs)
/// of [`Params`].
pub trait StepParams: Clone + Send + Sync + 'static {
    /// These parameters, when `params` is of this type.
    fn of(params: &Params) -> Option<&Self>;
}

macro_rules! step_params {
    ($($ty:ty => $($variant:ident)|+;)*) => {$(
        impl StepParams for $ty {
            fn of(params: &Params) -> Option<&Self> {
                match params {
                    $(Params::$variant(p))|+ => Some(p),
                    _ => None,
                }
            }
        }
    )*};
}

step_params! {
    PreflightParams => Preflight;
    BackupParams => Backup;
    MigrateParams => Migrate;
    BackfillParams => Backfill;
    DeployParams => Deploy;
    HealthParams => Health;
    ShiftParams => Shift;
    PauseParams => Pause;
    AnalysisParams => Analysis;
    VersionParams => Retire | Cleanup;
    CommandParams => Command;
}

/// Runs, undoes and probes one kind of step.
///
/// - `run` performs the effect and returns the undo data. The runner has already made the
///   `step_started` event durable.
/// - `undo` restores the state from before `run`, using exactly the recorded undo data. It must be
///   safe to repeat: a rollback interrupted after it ran will run it again. The default does
///   nothing: right for steps that change nothing (checks, waits, gates).
/// - `probe` inspects the real system for a step that started but whose end was not recorded.
///   `None` means this step cannot be probed. The default answers [`Probe::NotDone`]: right for
///   steps that leave no effect behind, which a resume simply runs again.
pub trait Driver: Send + Sync + 'static {
    /// The parameters of the steps it runs.
    type Params: StepParams;
    /// What a rollback needs to undo a run, recorded in the log as JSON (`()` when there is
    /// nothing to undo: `null`).
    type Undo: Serialize + DeserializeOwned + Send + 'static;

    /// Performs the step.
    fn run(
        &self,
        step: Job<Self::Params>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Done<Self::Undo>, StepError>>;

    /// Undoes the step.
    fn undo(
        &self,
        _step: Job<Self::Params>,
        _undo: Self::Undo,
        _ctx: StepContext,
    ) -> BoxFuture<Result<(), StepError>> {
        Box::pin(async { Ok(()) })
    }

    /// Checks whether the step's effect is in place.
    fn probe(
        &self,
        _step: Job<Self::Params>,
        _ctx: StepContext,
    ) -> BoxFuture<Result<Option<Probe<Self::Undo>>, StepError>> {
        Box::pin(async { Ok(Some(Probe::NotDone)) })
    }

    /// Makes sure nothing of an earlier attempt of `step` (by an executor that died) is still
    /// acting: its processes are gone, its database statements have ended. The runner calls it
    /// for every step in doubt or half-compensated before it probes, re-runs or undoes one, so a
    /// probe never judges an effect that is still on its way. `Ok(Some(line))` says what had to
    /// be waited for or stopped, for the operator. The default has nothing to fence.
    fn fence(
        &self,
        _step: Job<Self::Params>,
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
        step: Job<Self::Params>,
        _undo: Self::Undo,
        _ctx: StepContext,
    ) -> BoxFuture<Result<String, StepError>> {
        Box::pin(async move { Err(StepError::CannotRestore { step: step.id }) })
    }
}

/// A [`Driver`] as the runner holds it: steps in, the undo data as the JSON the log records.
/// Implemented for every driver.
pub trait AnyDriver: Send + Sync {
    /// [`Driver::run`].
    fn run(&self, step: &Step, ctx: StepContext) -> BoxFuture<Result<Done, StepError>>;
    /// [`Driver::undo`], with the undo data as recorded.
    fn undo(&self, step: &Step, undo: Value, ctx: StepContext) -> BoxFuture<Result<(), StepError>>;
    /// [`Driver::probe`].
    fn probe(&self, step: &Step, ctx: StepContext) -> BoxFuture<Result<Option<Probe>, StepError>>;
    /// [`Driver::fence`].
    fn fence(&self, step: &Step, ctx: StepContext) -> BoxFuture<Result<Option<String>, StepError>>;
    /// [`Driver::interruptible`].
    fn interruptible(&self) -> bool;
    /// [`Driver::restore`], with the undo data as recorded.
    fn restore(
        &self,
        step: &Step,
        undo: Value,
        ctx: StepContext,
    ) -> BoxFuture<Result<String, StepError>>;
}

/// `step` as a job for a driver of `P`, or why not (a driver registered for the wrong kind).
fn job<P: StepParams>(step: &Step) -> Result<Job<P>, StepError> {
    let params = P::of(&step.params).ok_or_else(|| StepError::WrongKind {
        step: step.id.clone(),
        kind: step.kind().as_str(),
    })?;
    Ok(Job {
        id: step.id.clone(),
        phase: step.phase,
        params: params.clone(),
    })
}

/// Recorded undo data as the driver's type.
fn recorded<U: DeserializeOwned>(step: &Step, undo: Value) -> Result<U, StepError> {
    serde_json::from_value(undo).map_err(|source| StepError::UndoUnreadable {
        step: step.id.clone(),
        source,
    })
}

fn to_json(undo: impl Serialize) -> Value {
    serde_json::to_value(undo).expect("undo data serializes")
}

fn failed<T: Send + 'static>(e: StepError) -> BoxFuture<Result<T, StepError>> {
    Box::pin(async move { Err(e) })
}

impl<D: Driver> AnyDriver for D {
    fn run(&self, step: &Step, ctx: StepContext) -> BoxFuture<Result<Done, StepError>> {
        match job(step) {
            Ok(job) => {
                let run = Driver::run(self, job, ctx);
                Box::pin(async move {
                    let done = run.await?;
                    Ok(Done {
                        undo: to_json(done.undo),
                        detail: done.detail,
                    })
                })
            }
            Err(e) => failed(e),
        }
    }

    fn undo(&self, step: &Step, undo: Value, ctx: StepContext) -> BoxFuture<Result<(), StepError>> {
        match job(step).and_then(|job| Ok((job, recorded(step, undo)?))) {
            Ok((job, undo)) => Driver::undo(self, job, undo, ctx),
            Err(e) => failed(e),
        }
    }

    fn probe(&self, step: &Step, ctx: StepContext) -> BoxFuture<Result<Option<Probe>, StepError>> {
        match job(step) {
            Ok(job) => {
                let probe = Driver::probe(self, job, ctx);
                Box::pin(async move { Ok(probe.await?.map(|p| p.map(to_json))) })
            }
            Err(e) => failed(e),
        }
    }

    fn fence(&self, step: &Step, ctx: StepContext) -> BoxFuture<Result<Option<String>, StepError>> {
        match job(step) {
            Ok(job) => Driver::fence(self, job, ctx),
            Err(e) => failed(e),
        }
    }

    fn interruptible(&self) -> bool {
        Driver::interruptible(self)
    }

    fn restore(
        &self,
        step: &Step,
        undo: Value,
        ctx: StepContext,
    ) -> BoxFuture<Result<String, StepError>> {
        match job(step).and_then(|job| Ok((job, recorded(step, undo)?))) {
            Ok((job, undo)) => Driver::restore(self, job, undo, ctx),
            Err(e) => failed(e),
        }
    }
}

/// The driver for each step kind.
#[derive(Clone, Default)]
pub struct Drivers {
    map: BTreeMap<StepKind, Arc<dyn AnyDriver>>,
}

impl Drivers {
    /// Sets the driver of `kind`.
    pub fn insert(&mut self, kind: StepKind, driver: impl Driver) {
        self.map.insert(kind, Arc::new(driver));
    }

    /// The driver of `kind`.
    pub fn get(&self, kind: StepKind) -> Option<Arc<dyn AnyDriver>> {
        self.map.get(&kind).cloned()
    }
}
