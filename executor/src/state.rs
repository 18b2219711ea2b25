//! [`RunState`]: a run as its log tells it. `status`, `resume` and `rollback` all start here, so
//! they can never disagree about where a run stands.

use crate::event::{Event, Gate, Outcome, ProbeOutcome, Record, RunStarted};
use crate::log::Header;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Where one step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not started.
    Pending,
    /// Started, no end recorded: running now, or in doubt after a crash.
    Started,
    /// Done; its undo data is recorded.
    Succeeded,
    /// Failed; will be retried by a resume.
    Failed,
    /// Being undone (or in doubt during a rollback).
    Compensating,
    /// Undone.
    Compensated,
    /// Undoing it failed.
    CompensationFailed,
}

impl StepState {
    /// Every state, in the order a step moves through them.
    pub const ALL: [StepState; 7] = [
        StepState::Pending,
        StepState::Started,
        StepState::Succeeded,
        StepState::Failed,
        StepState::Compensating,
        StepState::Compensated,
        StepState::CompensationFailed,
    ];
}

/// One step's history.
#[derive(Debug, Clone, Serialize)]
pub struct StepStatus {
    /// Where it stands.
    pub state: StepState,
    /// Attempts started.
    pub attempts: u32,
    /// When the last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it last ended (success, failure, compensation).
    pub finished_at: Option<DateTime<Utc>>,
    /// Undo data from its success.
    pub undo: Option<Value>,
    /// Last error.
    pub error: Option<String>,
    /// What it did.
    pub detail: Option<String>,
    /// Its last recorded progress.
    pub progress: Option<Value>,
}

impl Default for StepStatus {
    fn default() -> Self {
        Self {
            state: StepState::Pending,
            attempts: 0,
            started_at: None,
            finished_at: None,
            undo: None,
            error: None,
            detail: None,
            progress: None,
        }
    }
}

/// How each event moves a step (`step` is its id, for the refusal). `Err`: the event does not
/// fit where the step stands.
impl StepStatus {
    fn start(&mut self, step: &str, attempt: u32, time: DateTime<Utc>) -> Result<(), String> {
        if !matches!(
            self.state,
            StepState::Pending | StepState::Failed | StepState::Started
        ) {
            return Err(format!(
                "step `{step}` started again while {:?}",
                self.state
            ));
        }
        if attempt != self.attempts + 1 {
            return Err(format!(
                "step `{step}` attempt {attempt} after {} attempts",
                self.attempts
            ));
        }
        self.state = StepState::Started;
        self.attempts = attempt;
        self.started_at = Some(time);
        Ok(())
    }

    fn progress(&mut self, step: &str, data: &Value) -> Result<(), String> {
        if self.state != StepState::Started {
            return Err(format!("step `{step}` reported progress while not running"));
        }
        self.progress = Some(data.clone());
        Ok(())
    }

    fn succeed(
        &mut self,
        step: &str,
        undo: &Value,
        detail: &Option<String>,
        time: DateTime<Utc>,
    ) -> Result<(), String> {
        if self.state != StepState::Started {
            return Err(format!(
                "step `{step}` succeeded without being started (it was {:?})",
                self.state
            ));
        }
        self.state = StepState::Succeeded;
        self.undo = Some(undo.clone());
        self.detail = detail.clone();
        self.finished_at = Some(time);
        Ok(())
    }

    fn fail(&mut self, step: &str, error: &str, time: DateTime<Utc>) -> Result<(), String> {
        if self.state != StepState::Started {
            return Err(format!("step `{step}` failed without being started"));
        }
        self.state = StepState::Failed;
        self.error = Some(error.to_string());
        self.finished_at = Some(time);
        Ok(())
    }

    /// `Ok(true)`: the probe found it done (it counts as succeeded).
    fn probed(
        &mut self,
        step: &str,
        outcome: ProbeOutcome,
        undo: &Value,
        time: DateTime<Utc>,
    ) -> Result<bool, String> {
        if self.state != StepState::Started {
            return Err(format!("step `{step}` probed while not in doubt"));
        }
        match outcome {
            ProbeOutcome::Done => {
                self.state = StepState::Succeeded;
                self.undo = Some(undo.clone());
                self.finished_at = Some(time);
                Ok(true)
            }
            ProbeOutcome::NotDone => {
                self.state = StepState::Failed;
                Ok(false)
            }
        }
    }

    fn compensating(&mut self, step: &str) -> Result<(), String> {
        if !matches!(
            self.state,
            StepState::Succeeded | StepState::Compensating | StepState::CompensationFailed
        ) {
            return Err(format!("step `{step}` compensated while {:?}", self.state));
        }
        self.state = StepState::Compensating;
        Ok(())
    }

    fn compensated(&mut self, step: &str, time: DateTime<Utc>) -> Result<(), String> {
        if self.state != StepState::Compensating {
            return Err(format!("step `{step}` compensated without a start"));
        }
        self.state = StepState::Compensated;
        self.finished_at = Some(time);
        Ok(())
    }

    fn compensation_failed(&mut self, error: &str, time: DateTime<Utc>) {
        self.state = StepState::CompensationFailed;
        self.error = Some(error.to_string());
        self.finished_at = Some(time);
    }
}

/// A run replayed from its log.
#[derive(Debug, Clone, Serialize)]
pub struct RunState {
    /// Run id.
    pub run_id: String,
    /// Plan hash the run was started with.
    pub plan_hash: String,
    /// Step fingerprints at the start, in plan order.
    pub step_hashes: Vec<(String, String)>,
    /// Release name.
    pub release: String,
    /// Who started the run.
    pub user: String,
    /// Spec path as given.
    pub spec_path: String,
    /// Absolute spec path.
    pub spec_abs: String,
    /// Describe-only run.
    pub dry_run: bool,
    /// First event time.
    pub started_at: Option<DateTime<Utc>>,
    /// Last event time.
    pub updated_at: Option<DateTime<Utc>>,
    /// Steps by id.
    pub steps: BTreeMap<String, StepStatus>,
    /// Steps in the order they succeeded (what a rollback reverses).
    pub completed: Vec<String>,
    /// A rollback was started: its target.
    pub rollback: Option<Option<String>>,
    /// Outcome of the last invocation, if it ended cleanly.
    pub outcome: Option<Outcome>,
    /// Why the run paused, if it did.
    pub paused: Option<String>,
    /// When it paused.
    pub paused_at: Option<DateTime<Utc>>,
    /// The gate it waits at for `cutover promote`, if it does.
    pub gate: Option<Gate>,
    /// The run holds before the point of no return until promoted (`RunStarted::hold`).
    pub hold: bool,
    /// Gates released by `cutover promote`.
    pub promoted: Vec<Gate>,
    /// `cutover promote --full` was given: the remaining pauses and analyses are skipped.
    pub promoted_full: bool,
    /// Databases a rollback restored from this run's backup: (database, backup step).
    pub restored: Vec<(String, String)>,
    /// Where the last rollback stopped, and why.
    pub rollback_stopped: Option<(String, String)>,
    /// Number of events.
    pub events: u64,
}

/// The log contradicts itself (a bug or a hand-edited log): refused, never guessed around.
#[derive(Debug, thiserror::Error)]
#[error("event {seq} ({kind}) does not fit the run's history: {why}")]
pub struct ReplayError {
    /// Sequence number.
    pub seq: u64,
    /// Event type.
    pub kind: String,
    /// What is wrong.
    pub why: String,
}

impl RunState {
    /// Replays `records` (in order) on top of `header`.
    pub fn replay(header: &Header, records: &[Record]) -> Result<Self, ReplayError> {
        let mut st = RunState {
            run_id: header.run_id.clone(),
            plan_hash: header.plan_hash.clone(),
            step_hashes: Vec::new(),
            release: String::new(),
            user: String::new(),
            spec_path: String::new(),
            spec_abs: String::new(),
            dry_run: header.dry_run,
            started_at: None,
            updated_at: None,
            steps: BTreeMap::new(),
            completed: Vec::new(),
            rollback: None,
            outcome: None,
            paused: None,
            paused_at: None,
            gate: None,
            hold: false,
            promoted: Vec::new(),
            promoted_full: false,
            restored: Vec::new(),
            rollback_stopped: None,
            events: 0,
        };
        for r in records {
            st.apply(r)?;
        }
        Ok(st)
    }

    /// Applies one record: each event moves one step (or the run) from where it stands, and an
    /// event that does not fit where it stands is refused ([`ReplayError`]).
    pub fn apply(&mut self, r: &Record) -> Result<(), ReplayError> {
        let bad = |why: String| ReplayError {
            seq: r.seq,
            kind: event_kind(&r.event).to_string(),
            why,
        };
        self.events += 1;
        self.started_at.get_or_insert(r.time);
        self.updated_at = Some(r.time);
        if let Some(step) = r.event.step()
            && !self.steps.contains_key(step)
        {
            if !self.step_hashes.iter().any(|(id, _)| id == step) {
                return Err(bad(format!("step `{step}` is not in the run's plan")));
            }
            self.steps.insert(step.to_string(), StepStatus::default());
        }
        self.apply_event(r).map_err(bad)
    }

    /// [`RunState::apply`] once the event's step is known: one arm per event type, each
    /// delegating to the run or to the step's [`StepStatus`].
    fn apply_event(&mut self, r: &Record) -> Result<(), String> {
        let time = r.time;
        match &r.event {
            Event::RunStarted(rs) => self.run_started(r.seq, rs)?,
            Event::Attached { .. } => {
                // A new invocation: what the last one ended with, and where its rollback
                // stopped, no longer describe the run.
                self.outcome = None;
                self.rollback_stopped = None;
            }
            Event::StepStarted { step, attempt } => self.step(step).start(step, *attempt, time)?,
            Event::StepProgress { step, data, .. } => self.step(step).progress(step, data)?,
            Event::StepSucceeded { step, undo, detail } => {
                self.step(step).succeed(step, undo, detail, time)?;
                self.completed.push(step.clone());
            }
            Event::StepFailed { step, error } => self.step(step).fail(step, error, time)?,
            Event::StepProbed {
                step,
                outcome,
                undo,
            } => {
                if self.step(step).probed(step, *outcome, undo, time)? {
                    self.completed.push(step.clone());
                }
            }
            Event::Paused { reason, gate } => {
                self.paused = Some(reason.clone());
                self.paused_at = Some(time);
                self.gate = gate.clone();
            }
            Event::Promoted { gate, full, .. } => {
                if self.gate.as_ref() != Some(gate) {
                    return Err(format!(
                        "promoted `{}`, not the gate the run waits at",
                        gate.step()
                    ));
                }
                self.promoted.push(gate.clone());
                self.promoted_full |= *full;
                (self.paused, self.paused_at, self.gate) = (None, None, None);
            }
            Event::RollbackStarted { target, .. } => {
                self.rollback = Some(target.clone());
                (self.paused, self.paused_at, self.gate) = (None, None, None);
            }
            Event::CompensationStarted { step } => self.step(step).compensating(step)?,
            Event::CompensationSucceeded { step } => self.step(step).compensated(step, time)?,
            Event::CompensationFailed { step, error } => {
                self.step(step).compensation_failed(error, time)
            }
            Event::BackupRestored {
                database, backup, ..
            } => {
                if self.rollback.is_none() {
                    return Err("a backup was restored outside a rollback".into());
                }
                self.restored.push((database.clone(), backup.clone()));
            }
            Event::RollbackStopped { step, reason } => {
                if self.rollback.is_none() {
                    return Err(format!("a rollback stopped at `{step}` before one started"));
                }
                self.rollback_stopped = Some((step.clone(), reason.clone()));
            }
            Event::RunFinished { outcome } => self.outcome = Some(*outcome),
        }
        Ok(())
    }

    /// The step an event names ([`RunState::apply`] made sure it is known).
    fn step(&mut self, id: &str) -> &mut StepStatus {
        self.steps
            .get_mut(id)
            .expect("apply inserted every step it meets")
    }

    /// `run_started`: the first record, matching the log's header; every step is pending.
    fn run_started(&mut self, seq: u64, rs: &RunStarted) -> Result<(), String> {
        let RunStarted {
            run_id,
            plan_hash,
            step_hashes,
            release,
            spec_path,
            spec_abs,
            dry_run,
            user,
            ..
        } = rs;
        if seq != 1 {
            return Err("a run starts only once".into());
        }
        if *run_id != self.run_id || *plan_hash != self.plan_hash {
            return Err("run id or plan hash differs from the log header".into());
        }
        self.step_hashes = step_hashes.clone();
        self.release = release.clone();
        self.user = user.clone();
        self.spec_path = spec_path.clone();
        self.spec_abs = spec_abs.clone();
        self.dry_run = *dry_run;
        self.hold = rs.hold;
        for (id, _) in step_hashes {
            self.steps.insert(id.clone(), StepStatus::default());
        }
        Ok(())
    }

    /// The step a run that did not succeed stopped at: where its rollback stopped, else the
    /// step that failed, else the first step left in doubt.
    pub fn stopped_at(&self) -> Option<&str> {
        if let Some((step, _)) = &self.rollback_stopped {
            return Some(step);
        }
        let failed = self
            .step_hashes
            .iter()
            .map(|(id, _)| id.as_str())
            .find(|id| {
                matches!(
                    self.steps.get(*id).map(|s| s.state),
                    Some(StepState::Failed | StepState::CompensationFailed)
                )
            });
        failed.or_else(|| self.in_doubt().first().copied())
    }

    /// Ids of steps started but not ended.
    pub fn in_doubt(&self) -> Vec<&str> {
        self.step_hashes
            .iter()
            .map(|(id, _)| id.as_str())
            .filter(|id| {
                self.steps
                    .get(*id)
                    .is_some_and(|s| s.state == StepState::Started)
            })
            .collect()
    }

    /// Whether the run got as far as its `run_started` event (a process killed while creating the
    /// run can leave a log with only its header).
    pub fn started(&self) -> bool {
        !self.step_hashes.is_empty()
    }

    /// Whether every step succeeded.
    pub fn complete(&self) -> bool {
        self.started() && self.steps.values().all(|s| s.state == StepState::Succeeded)
    }

    /// The directory of the spec the run started from: relative paths of its steps resolve there.
    pub fn spec_dir(&self) -> std::path::PathBuf {
        std::path::Path::new(&self.spec_abs)
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    }
}

/// The `type` tag of an event.
pub fn event_kind(e: &Event) -> &'static str {
    match e {
        Event::RunStarted(_) => "run_started",
        Event::Attached { .. } => "attached",
        Event::StepStarted { .. } => "step_started",
        Event::StepProgress { .. } => "step_progress",
        Event::StepSucceeded { .. } => "step_succeeded",
        Event::StepFailed { .. } => "step_failed",
        Event::StepProbed { .. } => "step_probed",
        Event::Paused { .. } => "paused",
        Event::Promoted { .. } => "promoted",
        Event::RollbackStarted { .. } => "rollback_started",
        Event::CompensationStarted { .. } => "compensation_started",
        Event::CompensationSucceeded { .. } => "compensation_succeeded",
        Event::CompensationFailed { .. } => "compensation_failed",
        Event::BackupRestored { .. } => "backup_restored",
        Event::RollbackStopped { .. } => "rollback_stopped",
        Event::RunFinished { .. } => "run_finished",
    }
}
