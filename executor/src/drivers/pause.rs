//! `pause` steps: wait, then succeed. Nothing to undo.
//!
//! A pause records when it started ([`PauseProgress`], a `step_progress` event) before it waits.
//! The runner stops a pause at once on the first Ctrl-C (it only waits, see
//! [`Driver::interruptible`]), leaving it in doubt; the probe says "not done", and the re-run on
//! `cutover resume` waits only what is left of the pause, measured in wall-clock time from the
//! recorded start (as Argo Rollouts persists a pause's start). A pause whose time ran out while
//! the run was stopped ends at once.

use crate::driver::{BoxFuture, Done, Driver, Job, StepContext, StepError};
use chrono::{DateTime, Utc};
use cutover_planner::dag::PauseParams;
use cutover_planner::duration::Duration as SpecDuration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Sleeps for the step's duration, or for what is left of it.
pub struct PauseDriver;

/// What a pause records before it waits: when it began, in wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PauseProgress {
    /// When the first attempt of this pause began.
    pub started_at: DateTime<Utc>,
}

/// How long is left of a pause of `duration` that began at `started_at`, at `now`. A start in
/// the future (the clock was set back) counts as a start now: the pause waits in full.
pub fn remaining(
    duration: SpecDuration,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Duration {
    let elapsed = (now - started_at).to_std().unwrap_or_default();
    Duration::from(duration).saturating_sub(elapsed)
}

impl Driver for PauseDriver {
    type Params = PauseParams;
    type Undo = ();

    fn run(
        &self,
        step: Job<PauseParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Done<()>, StepError>> {
        Box::pin(async move {
            // A manual gate is passed by `cutover promote`, which the runner records without
            // running this driver; one that reaches it anyway has nothing to wait for.
            let Some(duration) = step.params.duration else {
                return Ok(Done {
                    undo: (),
                    detail: Some("manual gate: promoted".into()),
                });
            };
            let earlier: Option<PauseProgress> = ctx.resumed();
            let progress = earlier.unwrap_or_else(|| PauseProgress {
                started_at: Utc::now(),
            });
            if earlier.is_none() {
                ctx.report(&progress);
            }
            let left = remaining(duration, progress.started_at, Utc::now());
            if !left.is_zero() {
                tokio::time::sleep(left).await;
            }
            let detail = match earlier {
                None => format!("waited {duration}"),
                Some(_) => format!(
                    "waited {duration} in all; {:.1}s of it after the resume",
                    left.as_secs_f64()
                ),
            };
            Ok(Done {
                undo: (),
                detail: Some(detail),
            })
        })
    }

    fn interruptible(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_pause_waits_only_what_is_left() {
        let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let d = SpecDuration::from_secs(60);
        let at = |secs: i64| start + chrono::Duration::seconds(secs);
        assert_eq!(remaining(d, start, at(0)), Duration::from_secs(60));
        assert_eq!(remaining(d, start, at(45)), Duration::from_secs(15));
        assert_eq!(remaining(d, start, at(60)), Duration::ZERO);
        assert_eq!(
            remaining(d, start, at(3600)),
            Duration::ZERO,
            "ran out while stopped: ends at once"
        );
        assert_eq!(
            remaining(d, start, at(-30)),
            Duration::from_secs(60),
            "clock set back: waits in full"
        );
    }

    #[test]
    fn the_recorded_start_round_trips_through_the_log() {
        let p = PauseProgress {
            started_at: "2026-01-01T00:00:01.250Z".parse().unwrap(),
        };
        let v = serde_json::to_value(p).unwrap();
        assert!(
            v["started_at"]
                .as_str()
                .unwrap()
                .starts_with("2026-01-01T00:00:01.25"),
            "{v}"
        );
        assert_eq!(serde_json::from_value::<PauseProgress>(v).unwrap(), p);
    }
}
