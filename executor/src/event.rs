//! [`Event`]: the one event type. The log stores it, `status` and `log` replay it, and the
//! progress display is fed from it, so every view of a run agrees.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What happened in a run. Stored externally tagged (`{"step_started": {...}}`), which serde reads
/// without buffering; [`Record::to_flat_json`] gives the flat view `cutover log` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// First event of every run (boxed: it is by far the largest, and a million-event log
    /// should not pay for it in every record).
    #[schemars(description = "First event of every run.")]
    RunStarted(Box<RunStarted>),
    /// A process took over the run (first start or a resume).
    Attached {
        /// pid of the executor.
        pid: u32,
        /// Host.
        host: String,
        /// `apply`, `resume`, `promote` or `rollback`.
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
    /// A long step's progress (e.g. a backfill's last committed cursor): a resume continues from
    /// the last one.
    StepProgress {
        /// Step id.
        step: String,
        /// Driver-specific progress data (a backfill's cursor, a process group).
        data: Value,
        /// How much of the step's work is done, for the views (a backfill: rows).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<Amount>,
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
        /// The gate it waits at, when it waits for `cutover promote` rather than after a failure.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate: Option<Gate>,
    },
    /// An operator released the gate the run waited at (`cutover promote`).
    Promoted {
        /// The gate released.
        gate: Gate,
        /// `--full`: the remaining pauses and analyses are skipped too.
        full: bool,
        /// Who promoted.
        user: String,
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
    /// A rollback past an irreversible migration (`--restore-backup`) put its database back
    /// to the backup this run took; writes made since the backup are gone.
    BackupRestored {
        /// The irreversible migration step this restore undoes.
        step: String,
        /// The database restored.
        database: String,
        /// The backup step whose dump was restored.
        backup: String,
        /// What the restore did, for humans.
        detail: String,
    },
    /// A rollback stopped before undoing everything: at `step`, for `reason` (a pivot that
    /// cannot be undone, no backup to restore, or an undo that failed). Written before the
    /// run's `run_finished` (`rollback_stopped`).
    RollbackStopped {
        /// The step the rollback could not undo.
        step: String,
        /// Why, redacted.
        reason: String,
    },
    /// The run (or this attempt at it) ended.
    RunFinished {
        /// How.
        outcome: Outcome,
    },
}

/// How much of a long step's work is done: `done` of about `total` `unit`s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Amount {
    /// Units done so far.
    pub done: u64,
    /// The expected total, when known (an estimate: a backfill's row count comes from the
    /// planner's statistics, PostgreSQL's `reltuples`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// What is counted (`rows`).
    pub unit: String,
}

/// The first event of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunStarted {
    /// Run id (also the directory name).
    pub run_id: String,
    /// Plan hash at the start.
    pub plan_hash: String,
    /// Fingerprint of every step, so a resume can name the steps that changed.
    pub step_hashes: Vec<(String, String)>,
    /// Release name.
    pub release: String,
    /// Spec path as given, and absolute.
    pub spec_path: String,
    /// Absolute spec path, for resuming from another directory.
    pub spec_abs: String,
    /// cutover's version.
    pub tool_version: String,
    /// Who ran it.
    pub user: String,
    /// Where.
    pub host: String,
    /// Describe-only run.
    pub dry_run: bool,
    /// Stop before the point of no return until `cutover promote` (`[release] hold`, `apply
    /// --hold`).
    #[serde(default)]
    pub hold: bool,
}

/// Where a run waits for a person, until `cutover promote RUN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Gate {
    /// A manual gate: the pause step `step` (a canary's `pause = "manual"`; Argo Rollouts'
    /// `pause: {}`).
    Manual {
        /// The pause step.
        step: String,
    },
    /// The hold before the point of no return: `step` is the first step that cannot be undone
    /// (a contract migration or another pivot); nothing after it starts until promoted.
    Hold {
        /// The first step that cannot be undone.
        step: String,
    },
}

impl Gate {
    /// The step the gate holds back.
    pub fn step(&self) -> &str {
        match self {
            Gate::Manual { step } | Gate::Hold { step } => step,
        }
    }

    /// What the run waits for, for `status`, the pause event and the terminal.
    pub fn reason(&self) -> String {
        match self {
            Gate::Manual { step } => format!("manual gate `{step}`: waiting for `cutover promote`"),
            Gate::Hold { step } => format!(
                "hold before `{step}`, the first step that cannot be undone (what ran before it can \
                 still be rolled back): waiting for `cutover promote`"
            ),
        }
    }
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// The effect is in place.
    Done,
    /// The effect is not there; run the step again.
    NotDone,
}

/// How a run (or one invocation on it) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// When it was written (UTC, RFC 3339 with microseconds).
    #[serde(with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// What happened.
    pub event: Event,
}

impl Record {
    /// `{"seq": 7, "time": "...", "type": "step_started", "step": "...", "attempt": 1}`: the view
    /// `cutover log --format json` and the JSON progress stream print (documented in docs/json.md).
    pub fn to_flat_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        out.insert("seq".into(), self.seq.into());
        out.insert(
            "time".into(),
            serde_json::to_value(self.time).expect("times serialize"),
        );
        if let serde_json::Value::Object(tagged) =
            serde_json::to_value(&self.event).expect("events serialize")
        {
            for (kind, fields) in tagged {
                out.insert("type".into(), kind.into());
                if let serde_json::Value::Object(fields) = fields {
                    out.extend(fields);
                }
            }
        }
        serde_json::Value::Object(out)
    }
}

/// A line of `cutover log RUN --format json` and `apply --format json`, as
/// [`Record::to_flat_json`] writes it: `seq`, `time`, `type` (the event's tag) and the event's
/// fields. Only its JSON Schema (`cutover schema event`) is of use: each of [`Event`]'s variants,
/// as schemars derives it, flattened the same way.
pub struct LogLine;

impl schemars::JsonSchema for LogLine {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LogLine".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let event = Event::json_schema(generator);
        let defs = generator.definitions().clone();
        let branches: Vec<Value> = event
            .get("oneOf")
            .and_then(Value::as_array)
            .expect("an externally tagged enum's schema is a oneOf")
            .iter()
            .map(|b| flat_branch(b, &defs))
            .collect();
        schemars::json_schema!({
            "description": "One event of a run, on one line: `seq`, `time`, `type` and the \
                            event's fields.",
            "oneOf": branches
        })
    }
}

/// `{"step_started": {fields}}`'s schema as `{"seq", "time", "type": "step_started", fields}`'s.
fn flat_branch(branch: &Value, defs: &serde_json::Map<String, Value>) -> Value {
    let (tag, fields) = branch["properties"]
        .as_object()
        .and_then(|p| p.iter().next())
        .expect("a variant's schema has its tag as its one property");
    let fields = match fields["$ref"].as_str() {
        Some(r) => &defs[r.trim_start_matches("#/$defs/")],
        None => fields,
    };
    let mut properties = serde_json::json!({
        "seq": {"description": "1-based position in the log.", "type": "integer", "minimum": 1},
        "time": {"description": "When it was written (RFC 3339, UTC).",
                 "type": "string", "format": "date-time"},
        "type": {"description": "What happened.", "const": tag},
    });
    let mut required = vec![Value::from("seq"), "time".into(), "type".into()];
    if let (Some(p), Some(own)) = (properties.as_object_mut(), fields["properties"].as_object()) {
        p.extend(own.clone());
    }
    required.extend(fields["required"].as_array().into_iter().flatten().cloned());
    let mut schema = serde_json::json!({
        "type": "object",
        "properties": properties,
        "required": required,
    });
    if let Some(d) = branch.get("description") {
        schema["description"] = d.clone();
    }
    schema
}

impl Event {
    /// The step the event is about, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            Event::StepStarted { step, .. }
            | Event::StepProgress { step, .. }
            | Event::StepSucceeded { step, .. }
            | Event::StepFailed { step, .. }
            | Event::StepProbed { step, .. }
            | Event::CompensationStarted { step }
            | Event::CompensationSucceeded { step }
            | Event::CompensationFailed { step, .. }
            | Event::BackupRestored { step, .. }
            | Event::RollbackStopped { step, .. } => Some(step),
            _ => None,
        }
    }
}

/// RFC 3339 timestamps, written as `2026-11-26T17:40:55.948123Z` and read back by hand when they
/// have that exact shape (chrono's general parser costs about a microsecond, which dominated
/// replaying a million-event log), with chrono's parser for anything else.
mod rfc3339 {
    use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        fast(&s)
            .or_else(|| {
                DateTime::parse_from_rfc3339(&s)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            })
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 time `{s}`")))
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ` exactly.
    pub(super) fn fast(s: &str) -> Option<DateTime<Utc>> {
        let b = s.as_bytes();
        if b.len() != 27
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'.'
            || b[26] != b'Z'
        {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            b[r].iter().try_fold(0u32, |acc, c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        };
        let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
        let time =
            date.and_hms_micro_opt(num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?)?;
        Some(time.and_utc())
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn fast_path_agrees_with_chrono() {
            for s in [
                "2026-11-26T17:40:55.948123Z",
                "2024-02-29T00:00:00.000000Z",
                "1999-12-31T23:59:59.999999Z",
            ] {
                let slow = chrono::DateTime::parse_from_rfc3339(s)
                    .unwrap()
                    .with_timezone(&chrono::Utc);
                assert_eq!(super::fast(s), Some(slow), "{s}");
            }
            assert_eq!(super::fast("2026-02-30T00:00:00.000000Z"), None);
            assert_eq!(super::fast("2026-11-26T17:40:55Z"), None);
        }
    }
}
