//! [`Event`]: the one event type. The log stores it, `status` and `log` replay it, and the
//! progress display is fed from it, so every view of a run agrees.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What happened in a run. Serialized as JSON with a `type` tag (`"step_started"`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// First event of every run.
    RunStarted {
        /// Run id (also the directory name).
        run_id: String,
        /// Plan hash at the start.
        plan_hash: String,
        /// Fingerprint of every step, so a resume can name the steps that changed.
        step_hashes: Vec<(String, String)>,
        /// Release name.
        release: String,
        /// Spec path as given, and absolute.
        spec_path: String,
        /// Absolute spec path, for resuming from another directory.
        spec_abs: String,
        /// cutover's version.
        tool_version: String,
        /// Who ran it.
        user: String,
        /// Where.
        host: String,
        /// Describe-only run.
        dry_run: bool,
    },
    /// A process took over the run (first start or a resume).
    Attached {
        /// pid of the executor.
        pid: u32,
        /// Host.
        host: String,
        /// `apply`, `resume` or `rollback`.
        command: String,
    },
    /// A step is about to run; written (and fsync'ed) before its side effect starts.
    StepStarted {
        /// Step id.
        step: String,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// The step's effect is done. `undo` is what a rollback needs to restore the exact previous
    /// state.
    StepSucceeded {
        /// Step id.
        step: String,
        /// Undo data (driver-specific).
        undo: Value,
        /// What the step did, for humans.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// The step failed; its effect did not happen (or was cleaned up by the driver).
    StepFailed {
        /// Step id.
        step: String,
        /// Error, redacted.
        error: String,
    },
    /// A step found started without an end event was checked against the real system.
    StepProbed {
        /// Step id.
        step: String,
        /// `done` (its effect is there) or `not_done` (run it again).
        outcome: ProbeOutcome,
        /// Undo data when done.
        #[serde(default, skip_serializing_if = "Value::is_null")]
        undo: Value,
    },
    /// The run stopped to wait for an operator.
    Paused {
        /// Why.
        reason: String,
    },
    /// A rollback began.
    RollbackStarted {
        /// `--to` step, if any (rollback stops after compensating the steps done after it).
        target: Option<String>,
        /// Why (an operator, or the failed step).
        reason: String,
    },
    /// A compensation is about to run.
    CompensationStarted {
        /// Step id being undone.
        step: String,
    },
    /// A step was undone.
    CompensationSucceeded {
        /// Step id.
        step: String,
    },
    /// Undoing a step failed.
    CompensationFailed {
        /// Step id.
        step: String,
        /// Error, redacted.
        error: String,
    },
    /// The run (or this attempt at it) ended.
    RunFinished {
        /// How.
        outcome: Outcome,
    },
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// The effect is in place.
    Done,
    /// The effect is not there; run the step again.
    NotDone,
}

/// How a run (or one invocation on it) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step succeeded.
    Succeeded,
    /// A step failed and the run stopped (policy `pause`, or a rollback could not start).
    Failed,
    /// Waiting for an operator.
    Paused,
    /// Stopped by a signal; resumable.
    Interrupted,
    /// Rolled back (fully, or to the requested step).
    RolledBack,
    /// A rollback stopped (pivot or failed compensation).
    RollbackStopped,
}

impl Outcome {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Paused => "paused",
            Outcome::Interrupted => "interrupted",
            Outcome::RolledBack => "rolled_back",
            Outcome::RollbackStopped => "rollback_stopped",
        }
    }
}

/// One record of the log: sequence number, time and event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1-based position in the log.
    pub seq: u64,
    /// When it was written (UTC).
    pub time: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

impl Event {
    /// The step the event is about, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            Event::StepStarted { step, .. }
            | Event::StepSucceeded { step, .. }
            | Event::StepFailed { step, .. }
            | Event::StepProbed { step, .. }
            | Event::CompensationStarted { step }
            | Event::CompensationSucceeded { step }
            | Event::CompensationFailed { step, .. } => Some(step),
            _ => None,
        }
    }
}
