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

/// A gate's thresholds ([`AnalysisParams`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Highest acceptable canary error rate (fraction).
    pub max_error_rate: f64,
    /// Highest acceptable canary latency.
    pub max_latency: std::time::Duration,
    /// Fewer canary requests: inconclusive.
    pub min_requests: u32,
    /// Relative mode: highest acceptable error-rate difference, canary minus stable.
    pub max_error_rate_increase: Option<f64>,
    /// Relative mode: highest acceptable latency ratio, canary over stable.
    pub max_latency_ratio: Option<f64>,
}

impl Thresholds {
    /// The thresholds of the gate `p`.
    pub fn of(p: &AnalysisParams) -> Self {
        Thresholds {
            max_error_rate: p.max_error_rate,
            max_latency: p.max_p99_latency.into(),
            min_requests: p.min_requests,
            max_error_rate_increase: p.max_error_rate_increase,
            max_latency_ratio: p.max_latency_ratio,
        }
    }
}

/// `errors / requests` of `o`, 0 without requests.
fn rate(o: &Observation) -> f64 {
    if o.requests == 0 {
        0.0
    } else {
        o.errors as f64 / o.requests as f64
    }
}

/// `n requests, e errors (r%), kind l ms` of `o`.
fn summary(o: &Observation, who: &str) -> String {
    let lat = o
        .latency
        .map_or("-".to_string(), |l| format!("{} ms", l.as_millis()));
    format!(
        "{} {who} requests, {} errors ({:.2}%), {} {lat}",
        o.requests,
        o.errors,
        rate(o) * 100.0,
        o.latency_kind
    )
}

/// The gate's verdict on what the window saw of the canary (`obs`) and, in relative mode, of
/// the stable version over the same time (`stable`; compared only once it too has
/// `min_requests`). Absolute thresholds first, then the relative ones.
pub fn verdict(obs: &Observation, stable: &Observation, t: &Thresholds) -> Gate {
    let relative = t.max_error_rate_increase.is_some() || t.max_latency_ratio.is_some();
    let mut summary = summary(obs, "canary");
    if relative {
        summary = format!("{summary}; {}", self::summary(stable, "stable"));
    }
    let min = u64::from(t.min_requests);
    if obs.requests < min {
        return Gate::Inconclusive(format!(
            "{summary}; the gate needs at least {min} requests (send traffic, lengthen `window`, \
             or lower `min_requests`)"
        ));
    }
    let canary_rate = rate(obs);
    if canary_rate > t.max_error_rate {
        return Gate::Fail(format!(
            "error rate {:.2}% is above the threshold {:.2}%: {summary}",
            canary_rate * 100.0,
            t.max_error_rate * 100.0
        ));
    }
    if let Some(l) = obs.latency
        && l > t.max_latency
    {
        return Gate::Fail(format!(
            "latency {} ms is above the threshold {} ms: {summary}",
            l.as_millis(),
            t.max_latency.as_millis()
        ));
    }
    if stable.requests < min {
        return Gate::Pass(summary);
    }
    if let Some(d) = t.max_error_rate_increase
        && canary_rate - rate(stable) > d
    {
        return Gate::Fail(format!(
            "error rate {:.2}% is {:.2} points above the stable version's {:.2}% (allowed: \
             {:.2}): {summary}",
            canary_rate * 100.0,
            (canary_rate - rate(stable)) * 100.0,
            rate(stable) * 100.0,
            d * 100.0
        ));
    }
    if let (Some(r), Some(c), Some(b)) = (t.max_latency_ratio, obs.latency, stable.latency) {
        // A stable latency under a millisecond counts as one: no ratio over nothing.
        let ratio = c.as_secs_f64() / b.as_secs_f64().max(0.001);
        if ratio > r {
            return Gate::Fail(format!(
                "latency {} ms is {ratio:.1}x the stable version's {} ms (allowed: {r}x): \
                 {summary}",
                c.as_millis(),
                b.as_millis()
            ));
        }
    }
    Gate::Pass(summary)
}

/// Whether the canary's figures `obs`, `elapsed` into a window of `window`, already decide
/// that the window fails, whatever its rest brings: a reason when they do. The window is
/// expected to hold `requests × window / elapsed` canary requests (its rate so far); it fails
/// once the errors so far exceed `max_error_rate` of that, or (where the router gives each
/// request's latency) once more than 1% of that are slower than `max_p99_latency`. So a few
/// early errors or a short stall do not fail a window whose whole would pass, and a canary
/// failing half its requests fails at once. At the window's end it is [`verdict`]'s absolute
/// check; the relative thresholds are judged only then.
pub fn decided(
    obs: &Observation,
    t: &Thresholds,
    elapsed: std::time::Duration,
    window: std::time::Duration,
) -> Option<String> {
    if obs.requests < u64::from(t.min_requests) {
        return None;
    }
    let share = window.as_secs_f64() / elapsed.as_secs_f64().max(0.5);
    let projected = (obs.requests as f64 * share.max(1.0)).round();
    let summary = summary(obs, "canary");
    let into = format!(
        "{:.1}s into a {}s window, which holds about {projected} canary requests at this rate",
        elapsed.as_secs_f64(),
        window.as_secs()
    );
    if obs.errors as f64 > t.max_error_rate * projected {
        return Some(format!(
            "error rate: {} errors already exceed {:.2}% of the window ({into}): {summary}",
            obs.errors,
            t.max_error_rate * 100.0
        ));
    }
    let limit = t.max_latency.as_secs_f64();
    let slow = obs
        .times
        .as_ref()
        .map_or(0, |ts| ts.iter().filter(|x| **x > limit).count());
    if slow as f64 > 0.01 * projected {
        return Some(format!(
            "latency: {slow} requests slower than {} ms already exceed 1% of the window, so its \
             p99 is above the threshold ({into}): {summary}",
            t.max_latency.as_millis()
        ));
    }
    None
}

/// One evaluation of a canary's gate, as a `step_progress` event of the analysis step (and,
/// with the pause's start, of a watched pause): the window's figures and the verdict on them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
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
    /// Which statistic: `p99` (nginx's access log, HAProxy's request log), or HAProxy's
    /// `average response time` (its statistics, without `log`).
    pub latency_kind: String,
    /// `pass`, `fail` or `inconclusive` (too few requests yet).
    pub verdict: String,
    /// Relative mode: what the stable version served over the same window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<StableFigures>,
}

/// The stable version's figures over an evaluation's window (relative mode).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct StableFigures {
    /// Requests it answered.
    pub requests: u64,
    /// Of those, 5xx answers and failed attempts.
    pub errors: u64,
    /// `errors / requests`.
    pub error_rate: f64,
    /// Its latency statistic (the same as the canary's), in milliseconds.
    pub latency_ms: Option<u64>,
}

impl Evaluation {
    /// The evaluation of `o` (and, in relative mode, `stable`), seen over `window`, judged
    /// `gate`.
    pub fn of(
        o: &Observation,
        stable: Option<&Observation>,
        window: std::time::Duration,
        gate: &Gate,
    ) -> Self {
        Evaluation {
            stable: stable.map(|b| StableFigures {
                requests: b.requests,
                errors: b.errors,
                error_rate: rate(b),
                latency_ms: b.latency.map(|l| l.as_millis() as u64),
            }),
            window_ms: window.as_millis() as u64,
            requests: o.requests,
            errors: o.errors,
            error_rate: rate(o),
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

/// How often an analysis window's figures (or a watched pause's) are recorded while it runs.
const OBSERVATION_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Reports what `data` makes (an evaluation, or a watched pause's) unless one was reported less
/// than [`OBSERVATION_EVERY`] ago (`last`); a `failing` one always.
pub(crate) fn report_throttled<T: serde::Serialize>(
    progress: Option<&crate::driver::Progress>,
    last: &std::sync::Mutex<Option<std::time::Instant>>,
    failing: bool,
    data: impl FnOnce() -> T,
) {
    let Some(progress) = progress else { return };
    let mut last = last
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !failing && last.is_some_and(|t| t.elapsed() < OBSERVATION_EVERY) {
        return;
    }
    *last = Some(std::time::Instant::now());
    progress.report(&data());
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
            let p = &step.params;
            let r = from_params(&p.router, &ctx.spec_dir)?;
            let t = Thresholds::of(p);
            let relative = !p.stable.is_empty();
            // What the window shows so far, for the views, every few seconds.
            let progress = ctx.progress.clone();
            let last = std::sync::Mutex::new(None::<std::time::Instant>);
            let opened = std::time::Instant::now();
            // Stop watching once enough requests show a threshold is crossed.
            let window = std::time::Duration::from(p.window);
            let early = Arc::new(move |o: &Observation, b: &Observation| {
                let fail = decided(o, &t, opened.elapsed(), window);
                let gate = match &fail {
                    Some(reason) => Gate::Fail(reason.clone()),
                    None => verdict(o, b, &t),
                };
                let failing = matches!(gate, Gate::Fail(_));
                report_throttled(progress.as_ref(), &last, failing, || {
                    Evaluation::of(o, relative.then_some(b), opened.elapsed(), &gate)
                });
                fail.is_some()
            });
            let servers = (p.canary.clone(), p.stable.clone());
            let (obs, stable) = r
                .observe(p.upstream.clone(), servers, p.window.into(), early)
                .await?;
            // Stopped early: the window already failed; else the whole window's verdict.
            let early = decided(&obs, &t, opened.elapsed(), p.window.into());
            let gate = early.map_or_else(|| verdict(&obs, &stable, &t), Gate::Fail);
            // The verdict's own evaluation is always recorded.
            if let Some(progress) = &ctx.progress {
                let stable = relative.then_some(&stable);
                progress.report(&Evaluation::of(&obs, stable, opened.elapsed(), &gate));
            }
            match gate {
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
            times: None,
        }
    }

    fn t(max_error_rate: f64, ms: u64, min_requests: u32) -> Thresholds {
        Thresholds {
            max_error_rate,
            max_latency: Duration::from_millis(ms),
            min_requests,
            max_error_rate_increase: None,
            max_latency_ratio: None,
        }
    }

    #[test]
    fn the_gate_passes_fails_or_is_inconclusive() {
        let none = Observation::default();
        let g = t(0.01, 500, 20);
        assert!(
            matches!(verdict(&obs(100, 1, 20), &none, &g), Gate::Pass(_)),
            "1% is not above 1%"
        );
        let Gate::Fail(e) = verdict(&obs(100, 2, 20), &none, &g) else {
            panic!("not a failure")
        };
        assert!(
            e.starts_with("error rate 2.00% is above the threshold 1.00%"),
            "{e}"
        );
        let Gate::Fail(e) = verdict(&obs(100, 0, 501), &none, &g) else {
            panic!("not a failure")
        };
        assert!(
            e.starts_with("latency 501 ms is above the threshold 500 ms"),
            "{e}"
        );
        let Gate::Inconclusive(e) = verdict(&obs(19, 0, 1), &none, &g) else {
            panic!("not inconclusive")
        };
        assert!(e.starts_with("19 canary requests"), "{e}");
    }

    #[test]
    fn only_figures_that_decide_the_whole_window_fail_it_early() {
        let g = t(0.01, 200, 20);
        let secs = Duration::from_secs_f64;
        // One error among the first 53 requests of a 10 s window holding about 150: no verdict.
        assert_eq!(decided(&obs(53, 1, 20), &g, secs(3.5), secs(10.0)), None);
        // Half of them failing: decided at once.
        let e = decided(&obs(20, 10, 20), &g, secs(1.3), secs(10.0)).unwrap();
        assert!(
            e.starts_with("error rate: 10 errors already exceed 1.00%"),
            "{e}"
        );
        // A short stall: 5 slow of 28, 2 s into a 60 s window of about 840 requests.
        let mut stall = obs(28, 0, 295);
        stall.times = Some([vec![0.01; 23], vec![0.295; 5]].concat());
        assert_eq!(decided(&stall, &g, secs(2.0), secs(60.0)), None);
        // A canary slow throughout: decided.
        let mut slow = obs(100, 0, 300);
        slow.times = Some(vec![0.3; 100]);
        let e = decided(&slow, &g, secs(5.0), secs(10.0)).unwrap();
        assert!(
            e.starts_with("latency: 100 requests slower than 200 ms"),
            "{e}"
        );
        // Too few requests: nothing decided.
        assert_eq!(decided(&obs(19, 19, 20), &g, secs(1.0), secs(10.0)), None);
    }

    #[test]
    fn the_relative_gate_judges_the_canary_against_stable() {
        let g = Thresholds {
            max_error_rate_increase: Some(0.02),
            max_latency_ratio: Some(1.5),
            ..t(0.5, 5_000, 20)
        };
        // Both slowed by the database, both failing a little: the canary is no worse.
        let slow = verdict(&obs(100, 3, 900), &obs(900, 27, 800), &g);
        assert!(matches!(slow, Gate::Pass(_)), "{slow:?}");
        // Clearly slower than stable, though under the absolute limit.
        let Gate::Fail(e) = verdict(&obs(100, 0, 300), &obs(900, 0, 100), &g) else {
            panic!("a canary 3x slower passed")
        };
        assert!(
            e.starts_with("latency 300 ms is 3.0x the stable version's 100 ms"),
            "{e}"
        );
        // Failing 4 points more than stable, though under the absolute limit of 50%.
        let Gate::Fail(e) = verdict(&obs(100, 5, 20), &obs(1000, 10, 20), &g) else {
            panic!("a worse canary passed")
        };
        assert!(
            e.starts_with("error rate 5.00% is 4.00 points above the stable"),
            "{e}"
        );
        // Too few stable requests to compare: the absolute thresholds decide alone.
        let few = verdict(&obs(100, 5, 20), &obs(10, 0, 20), &g);
        assert!(matches!(few, Gate::Pass(_)), "{few:?}");
    }
}
