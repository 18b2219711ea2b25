//! `shift` and `analysis` steps, over a [`Router`](crate::router::Router).
//!
//! - shift sets the upstream's servers and weights exactly as planned and confirms the change
//!   is live; the state before it is saved in the run directory before anything changes and
//!   recorded as the step's undo data, so rollback restores it byte for byte (nginx) or weight
//!   for weight (HAProxy, and its config file byte for byte).
//! - analysis watches the canary for the window, from the router's own data, and fails when the
//!   error rate or latency crosses the spec's thresholds, or when too few requests arrived to
//!   judge (inconclusive). A failed gate makes the run roll back (`on_failure = "rollback"`); an
//!   inconclusive one pauses the run whatever `on_failure` says, as Argo Rollouts does.

use crate::driver::{BoxFuture, Done, Driver, Job, Probe, StepContext, StepError};
use crate::router::{Observation, RouterBefore, from_params};
use cutover_planner::dag::{AnalysisParams, ShiftParams};
use std::sync::Arc;

/// Moves traffic.
pub struct ShiftDriver;

impl Driver for ShiftDriver {
    type Params = ShiftParams;
    type Undo = RouterBefore;

    fn run(
        &self,
        step: Job<ShiftParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Done<RouterBefore>, StepError>> {
        Box::pin(async move {
            let p = step.params;
            let r = from_params(&p.router, &ctx.spec_dir)?;
            let (undo, detail) = r
                .apply(p.upstream, p.servers, ctx.run_dir.clone(), step.id)
                .await?;
            Ok(Done {
                undo,
                detail: Some(detail),
            })
        })
    }

    fn undo(
        &self,
        step: Job<ShiftParams>,
        undo: RouterBefore,
        ctx: StepContext,
    ) -> BoxFuture<Result<(), StepError>> {
        Box::pin(async move {
            from_params(&step.params.router, &ctx.spec_dir)?
                .restore(undo)
                .await
        })
    }

    fn probe(
        &self,
        step: Job<ShiftParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Option<Probe<RouterBefore>>, StepError>> {
        Box::pin(async move {
            let Some(before) = crate::before::saved::<RouterBefore>(&ctx.run_dir, &step.id) else {
                return Ok(Some(Probe::NotDone));
            };
            from_params(&step.params.router, &ctx.spec_dir)?
                .restore(before)
                .await?;
            Ok(Some(Probe::NotDone))
        })
    }
}

/// The canary gate.
pub struct AnalysisDriver;

/// The verdict on one observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// Within the thresholds: what was seen.
    Pass(String),
    /// A threshold crossed: which, and what was seen.
    Fail(String),
    /// Too few requests to judge.
    Inconclusive(String),
}

/// The gate's verdict on what the window saw.
pub fn verdict(
    obs: &Observation,
    max_error_rate: f64,
    max_latency: std::time::Duration,
    min_requests: u32,
) -> Gate {
    let rate = if obs.requests == 0 {
        0.0
    } else {
        obs.errors as f64 / obs.requests as f64
    };
    let lat = obs
        .latency
        .map_or("-".to_string(), |l| format!("{} ms", l.as_millis()));
    let summary = format!(
        "{} canary requests, {} errors ({:.2}%), {} {lat}",
        obs.requests,
        obs.errors,
        rate * 100.0,
        obs.latency_kind
    );
    if obs.requests < u64::from(min_requests) {
        return Gate::Inconclusive(format!(
            "{summary}; the gate needs at least {min_requests} requests (send traffic, lengthen \
             `window`, or lower `min_requests`)"
        ));
    }
    if rate > max_error_rate {
        return Gate::Fail(format!(
            "error rate {:.2}% is above the threshold {:.2}%: {summary}",
            rate * 100.0,
            max_error_rate * 100.0
        ));
    }
    if let Some(l) = obs.latency
        && l > max_latency
    {
        return Gate::Fail(format!(
            "latency {} ms is above the threshold {} ms: {summary}",
            l.as_millis(),
            max_latency.as_millis()
        ));
    }
    Gate::Pass(summary)
}

/// One evaluation of a canary's gate, as a `step_progress` event of the analysis step (and,
/// with the pause's start, of a watched pause): the window's figures and the verdict on them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// How long the window has been open, in milliseconds.
    pub window_ms: u64,
    /// Requests the canary answered in it.
    pub requests: u64,
    /// Of those, 5xx answers and failed attempts.
    pub errors: u64,
    /// `errors / requests`, 0 without requests.
    pub error_rate: f64,
    /// The latency statistic, in milliseconds (`None` without requests).
    pub latency_ms: Option<u64>,
    /// Which statistic: `p99` (nginx) or `avg` (HAProxy's).
    pub latency_kind: String,
    /// `pass`, `fail` or `inconclusive` (too few requests yet).
    pub verdict: String,
}

impl Evaluation {
    /// The evaluation of `o`, seen over `window`, judged `gate`.
    pub fn of(o: &Observation, window: std::time::Duration, gate: &Gate) -> Self {
        Evaluation {
            window_ms: window.as_millis() as u64,
            requests: o.requests,
            errors: o.errors,
            error_rate: if o.requests == 0 {
                0.0
            } else {
                o.errors as f64 / o.requests as f64
            },
            latency_ms: o.latency.map(|l| l.as_millis() as u64),
            latency_kind: o.latency_kind.to_string(),
            verdict: match gate {
                Gate::Pass(_) => "pass",
                Gate::Fail(_) => "fail",
                Gate::Inconclusive(_) => "inconclusive",
            }
            .to_string(),
        }
    }
}

/// How often an analysis window's figures are recorded while it runs.
const OBSERVATION_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Reports `e` unless one was reported less than [`OBSERVATION_EVERY`] ago (`last`); a failing
/// one always.
fn report_observation(
    progress: Option<&crate::driver::Progress>,
    last: &std::sync::Mutex<Option<std::time::Instant>>,
    e: &Evaluation,
) {
    let Some(progress) = progress else { return };
    let mut last = last
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if e.verdict != "fail" && last.is_some_and(|t| t.elapsed() < OBSERVATION_EVERY) {
        return;
    }
    *last = Some(std::time::Instant::now());
    progress.report(e);
}

impl Driver for AnalysisDriver {
    type Params = AnalysisParams;
    type Undo = ();

    fn run(
        &self,
        step: Job<AnalysisParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Done<()>, StepError>> {
        Box::pin(async move {
            let AnalysisParams {
                upstream,
                router,
                canary,
                window,
                max_error_rate,
                max_p99_latency,
                min_requests,
                ..
            } = &step.params;
            let r = from_params(router, &ctx.spec_dir)?;
            let (max_rate, min) = (*max_error_rate, u64::from(*min_requests));
            // What the window shows so far, for the views, every few seconds.
            let progress = ctx.progress.clone();
            let last = std::sync::Mutex::new(None::<std::time::Instant>);
            // Stop watching once enough requests show a threshold is crossed.
            let max_latency = std::time::Duration::from(*max_p99_latency);
            let min_requests = *min_requests;
            let opened = std::time::Instant::now();
            let early = Arc::new(move |o: &Observation| {
                let gate = verdict(o, max_rate, max_latency, min_requests);
                let e = Evaluation::of(o, opened.elapsed(), &gate);
                report_observation(progress.as_ref(), &last, &e);
                o.requests >= min && matches!(gate, Gate::Fail(_))
            });
            let obs = r
                .observe(upstream.clone(), canary.clone(), window.into(), early)
                .await?;
            match verdict(&obs, *max_error_rate, max_latency, min_requests) {
                Gate::Pass(summary) => Ok(Done {
                    undo: (),
                    detail: Some(format!("passed: {summary}")),
                }),
                Gate::Inconclusive(why) => Err(StepError::Inconclusive {
                    reason: format!(
                        "analysis gate {why}; the run pauses: `cutover resume` watches a new \
                         window, `cutover rollback` undoes the release"
                    ),
                }),
                Gate::Fail(reason) => Err(StepError::GateFailed { reason }),
            }
        })
    }

    fn interruptible(&self) -> bool {
        // It only reads the router's data.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn obs(requests: u64, errors: u64, ms: u64) -> Observation {
        Observation {
            requests,
            errors,
            latency: Some(Duration::from_millis(ms)),
            latency_kind: "p99",
        }
    }

    #[test]
    fn the_gate_passes_fails_or_is_inconclusive() {
        let max = Duration::from_millis(500);
        assert!(
            matches!(verdict(&obs(100, 1, 20), 0.01, max, 20), Gate::Pass(_)),
            "1% is not above 1%"
        );
        let Gate::Fail(e) = verdict(&obs(100, 2, 20), 0.01, max, 20) else {
            panic!("not a failure")
        };
        assert!(
            e.starts_with("error rate 2.00% is above the threshold 1.00%"),
            "{e}"
        );
        let Gate::Fail(e) = verdict(&obs(100, 0, 501), 0.01, max, 20) else {
            panic!("not a failure")
        };
        assert!(
            e.starts_with("latency 501 ms is above the threshold 500 ms"),
            "{e}"
        );
        let Gate::Inconclusive(e) = verdict(&obs(19, 0, 1), 0.01, max, 20) else {
            panic!("not inconclusive")
        };
        assert!(e.starts_with("19 canary requests"), "{e}");
    }
}
