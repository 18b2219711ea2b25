//! `pause` steps: wait, then succeed. Nothing to undo.
//!
//! A pause records when it started ([`PauseProgress`], a `step_progress` event) before it waits.
//! The runner stops a pause at once on the first Ctrl-C (it only waits, see
//! [`Driver::interruptible`]), leaving it in doubt; the probe says "not done", and the re-run on
//! `cutover resume` waits only what is left of the pause, measured in wall-clock time from the
//! recorded start (as Argo Rollouts persists a pause's start). A pause whose time ran out while
//! the run was stopped ends at once.
//!
//! A canary's timed pause with a gate ([`PauseParams::watch`]) watches it the whole time:
//! background analysis, as Argo Rollouts runs it for a whole rollout and Flagger every interval.
//! The router's figures for the canary are judged at each of its polls (twice a second) over
//! back-to-back windows of the gate's `window` (the last one cut to what is left of the pause);
//! as soon as a window's figures already decide that it fails, whatever the rest of it brings
//! ([`decided`]: its errors, or its requests slower than `max_p99_latency`, exceed the
//! threshold's share of the requests the window will hold at this rate), the pause fails and so
//! rolls the release back, without waiting for the pause to end. A few early errors, or a short
//! stall, in a window whose whole would pass do not; the analysis step after the pause is the
//! final verdict.

use crate::driver::{BoxFuture, Done, Driver, Job, StepContext, StepError};
use crate::drivers::traffic::{Evaluation, Gate, Thresholds, decided, report_throttled, verdict};
use crate::router::{Observation, from_params};
use chrono::{DateTime, Utc};
use cutover_planner::dag::{AnalysisParams, PauseParams};
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
            let watched = match &step.params.watch {
                Some(gate) => format!("; {}", watch(gate, &ctx, left, progress).await?),
                None => {
                    if !left.is_zero() {
                        tokio::time::sleep(left).await;
                    }
                    String::new()
                }
            };
            let detail = match earlier {
                None => format!("waited {duration}"),
                Some(_) => format!(
                    "waited {duration} in all; {:.1}s of it after the resume",
                    left.as_secs_f64()
                ),
            };
            Ok(Done {
                undo: (),
                detail: Some(format!("{detail}{watched}")),
            })
        })
    }

    fn interruptible(&self) -> bool {
        true
    }
}

/// What a watched pause records while it waits: its start (what a resume reads, as
/// [`PauseProgress`]) and the latest evaluation of its gate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchProgress {
    /// When the first attempt of this pause began.
    pub started_at: DateTime<Utc>,
    /// The latest evaluation (its fields beside `started_at`).
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

/// Watches `gate` for `left` (what is left of the pause that began at `progress.started_at`):
/// fails the step on the first window that crosses a threshold; says what it watched otherwise.
async fn watch(
    gate: &AnalysisParams,
    ctx: &StepContext,
    left: Duration,
    progress: PauseProgress,
) -> Result<String, StepError> {
    let router = from_params(&gate.router, &ctx.spec_dir)?;
    let window = Duration::from(gate.window);
    let deadline = std::time::Instant::now() + left;
    let t = Thresholds::of(gate);
    let relative = !gate.stable.is_empty();
    let mut seen = (0u64, 0u64, 0u32);
    loop {
        let span = deadline
            .saturating_duration_since(std::time::Instant::now())
            .min(window);
        if span.is_zero() {
            break;
        }
        let reporter = ctx.progress.clone();
        let last = std::sync::Mutex::new(None::<std::time::Instant>);
        let opened = std::time::Instant::now();
        let judge = move |o: &Observation, b: &Observation| {
            // Only what already decides the window fails it here; the gate step after the
            // pause gives the whole window's verdict (relative thresholds included).
            let fail = decided(o, &t, opened.elapsed(), window);
            let failed = fail.is_some();
            let g = fail.map_or_else(|| verdict(o, b, &t), Gate::Fail);
            report_throttled(reporter.as_ref(), &last, failed, || WatchProgress {
                started_at: progress.started_at,
                evaluation: Evaluation::of(o, relative.then_some(b), opened.elapsed(), &g),
            });
            failed
        };
        let servers = (gate.canary.clone(), gate.stable.clone());
        let (obs, _) = router
            .observe(
                gate.upstream.clone(),
                servers,
                span,
                std::sync::Arc::new(judge),
            )
            .await?;
        if let Some(reason) = decided(&obs, &t, opened.elapsed(), window) {
            return Err(StepError::GateFailed {
                reason: format!(
                    "{reason} (background analysis, {:.1}s into a window of the pause at {}%)",
                    opened.elapsed().as_secs_f64(),
                    gate.weight
                ),
            });
        }
        seen = (seen.0 + obs.requests, seen.1 + obs.errors, seen.2 + 1);
    }
    if seen.2 == 0 {
        return Ok("the pause had run out: nothing left to watch".into());
    }
    Ok(format!(
        "gate watched throughout: {} canary requests, {} errors, in {} window{}",
        seen.0,
        seen.1,
        seen.2,
        if seen.2 == 1 { "" } else { "s" }
    ))
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
