//! Terminal and JSON-lines views of the executor's events (the library reports through
//! `cutover_executor::report::Reporter`; only this module draws).

use cutover_executor::event::{Amount, Event, ProbeOutcome, Record};
use cutover_executor::report::Reporter;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use crate::live::{Live, StillRunning};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One line per step start and end, on stdout.
    Text,
    /// Every event as one JSON line on stdout.
    Json,
    /// Nothing but notices.
    Quiet,
}

/// Draws events.
pub struct Progress {
    mode: Mode,
    /// Bars of the running steps, on a terminal ([`Progress::for_run`]).
    live: Option<Live>,
    /// `still running` lines off a terminal ([`Progress::for_run`]).
    still: Option<StillRunning>,
    started: Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>,
    /// A rollback is under way (what a probe's answer leads to differs).
    rolling_back: std::sync::atomic::AtomicBool,
}

impl Progress {
    /// A reporter in `mode`.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            live: None,
            still: None,
            started: Mutex::new(HashMap::new()),
            rolling_back: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Progress {
    /// The reporter of a live run in `mode`: in text mode, bars on a terminal (stdout is one and
    /// `TERM` is not `dumb`), else `still running` lines.
    pub fn for_run(mode: Mode) -> Self {
        use std::io::IsTerminal;
        let mut p = Self::new(mode);
        if mode != Mode::Text {
            return p;
        }
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if std::io::stdout().is_terminal() && !dumb {
            p.live = Some(Live::new(indicatif::ProgressDrawTarget::stdout()));
        } else {
            p.still = Some(StillRunning::start());
        }
        p
    }

    /// Moves the bars (or the `still running` clock) for `r`.
    fn track(&self, r: &Record) {
        let (started, ended): (Option<String>, Option<String>) = match &r.event {
            Event::StepStarted { step, .. } => (Some(step.clone()), None),
            Event::StepSucceeded { step, .. } | Event::StepFailed { step, .. } => {
                (None, Some(step.clone()))
            }
            Event::CompensationStarted { step } => (Some(format!("undo {step}")), None),
            Event::CompensationSucceeded { step } | Event::CompensationFailed { step, .. } => {
                (None, Some(format!("undo {step}")))
            }
            Event::StepProgress {
                step, amount, data, ..
            } => {
                if let Some(live) = &self.live {
                    match amount {
                        Some(amount) => live.progress(step, amount),
                        None => observation_text(data).map_or((), |o| live.observed(step, &o)),
                    }
                }
                (None, None)
            }
            _ => (None, None),
        };
        if let Some(step) = ended {
            self.live.iter().for_each(|l| l.ended(&step));
            self.still.iter().for_each(|s| s.ended(&step));
        }
        if let Some(step) = started {
            self.live.iter().for_each(|l| l.started(&step));
            self.still.iter().for_each(|s| s.started(&step));
        }
    }
}

fn secs(from: Option<chrono::DateTime<chrono::Utc>>, to: chrono::DateTime<chrono::Utc>) -> String {
    from.map(|f| format!(" ({:.1}s)", (to - f).num_milliseconds() as f64 / 1000.0))
        .unwrap_or_default()
}

impl Progress {
    /// The line the live view draws for `r` in text mode, or `None` for a record it leaves out
    /// (an `apply`'s own attach, progress without a line for humans). It keeps the step start
    /// times it has seen, so a step's end shows its duration: feed it the records in order.
    /// (One arm per event type, a flat table: it stays one function so every type is drawn in
    /// one place.)
    pub fn text_line(&self, r: &Record) -> Option<String> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut started = self.started.lock().expect("progress lock");
        let took = |key: &str| secs(started.get(key).copied(), r.time);
        Some(match &r.event {
            Event::RunStarted(rs) => format!(
                "run {}{}",
                rs.run_id,
                if rs.dry_run {
                    " (dry run: nothing is changed)"
                } else {
                    ""
                }
            ),
            Event::Attached { command, pid, .. } if command != "apply" => {
                if command == "rollback" {
                    self.rolling_back.store(true, Relaxed);
                }
                format!("attached ({command}, pid {pid})")
            }
            Event::Attached { .. } => return None,
            Event::StepStarted { step, attempt } => {
                started.insert(step.clone(), r.time);
                match attempt {
                    1 => format!("  start   {step}"),
                    _ => format!("  start   {step} (attempt {attempt})"),
                }
            }
            Event::StepSucceeded { step, detail, .. } => {
                let detail = detail.as_ref().map(|d| format!(": {d}"));
                format!(
                    "  done    {step}{}{}",
                    took(step),
                    detail.unwrap_or_default()
                )
            }
            Event::StepProgress { step, amount, data } => {
                return progress_line(&mut started, step, amount.as_ref(), data, r.time);
            }
            Event::StepFailed { step, error } => format!("  FAILED  {step}{}: {error}", took(step)),
            Event::StepProbed { step, outcome, .. } => {
                let verdict = probe_verdict(*outcome, self.rolling_back.load(Relaxed));
                format!("  checked {step}: {verdict}")
            }
            Event::Paused { reason, .. } => format!("paused: {reason}"),
            Event::Promoted { gate, full, user } => {
                let full = if *full { " (--full)" } else { "" };
                format!("promoted `{}` by {user}{full}", gate.step())
            }
            Event::RollbackStarted { target, reason } => {
                self.rolling_back.store(true, Relaxed);
                let target = target.as_ref().map(|t| format!(" to {t}"));
                format!("rolling back{}: {reason}", target.unwrap_or_default())
            }
            Event::CompensationStarted { step } => {
                started.insert(format!("undo:{step}"), r.time);
                format!("  undo    {step}")
            }
            Event::CompensationSucceeded { step } => {
                format!("  undone  {step}{}", took(&format!("undo:{step}")))
            }
            Event::CompensationFailed { step, error } => format!("  UNDO FAILED {step}: {error}"),
            Event::BackupRestored {
                database,
                backup,
                detail,
                ..
            } => format!(
                "  restored database `{database}` from `{backup}` ({detail}); writes made since \
                 the backup are gone"
            ),
            Event::RollbackStopped { step, reason } => {
                format!("rollback stopped at `{step}`: {reason}")
            }
            Event::RunFinished { outcome } => format!("finished: {}", outcome.as_str()),
        })
    }
}

/// `  ...     STEP: AMOUNT` for a step's progress at `time`, about once a second by the records'
/// own times (so `cutover log` draws the same lines as the live run did); `None` for a record
/// within a second of the last line, or of a step not seen starting. `started` holds the step
/// start times and, under `progress:STEP`, when its last line was drawn. Progress without an
/// amount is an analysis window's figures so far (every one drawn), or nothing to draw.
fn progress_line(
    started: &mut HashMap<String, chrono::DateTime<chrono::Utc>>,
    step: &str,
    amount: Option<&Amount>,
    data: &serde_json::Value,
    time: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let Some(amount) = amount else {
        return observation_text(data).map(|o| format!("  ...     {step}: {o}"));
    };
    let since = started.get(step).copied()?;
    let shown = format!("progress:{step}");
    let last = started.get(&shown).copied().unwrap_or(since);
    if (time - last).num_milliseconds() < 1000 {
        return None;
    }
    started.insert(shown, time);
    Some(format!(
        "  ...     {step}: {}",
        amount_text(amount, time - since)
    ))
}

/// `523 requests, 2 errors (0.4%), p99 120ms`: what an analysis window has seen so far, from
/// its `step_progress` data; `None` for another step's data.
pub fn observation_text(data: &serde_json::Value) -> Option<String> {
    let requests = data.get("requests")?.as_u64()?;
    let errors = data.get("errors")?.as_u64()?;
    let rate = if requests > 0 {
        format!(" ({:.1}%)", errors as f64 * 100.0 / requests as f64)
    } else {
        String::new()
    };
    let latency = match (
        data.get("latency_ms").and_then(|v| v.as_u64()),
        data.get("latency_kind"),
    ) {
        (Some(ms), Some(kind)) => format!(", {} {ms}ms", kind.as_str().unwrap_or("latency")),
        _ => String::new(),
    };
    let verdict = match data.get("verdict").and_then(|v| v.as_str()) {
        Some(v) => format!(": {v}"),
        None => String::new(),
    };
    // Relative mode: the stable version over the same window.
    let stable = data
        .get("stable")
        .filter(|b| b.is_object())
        .and_then(|b| {
            let (n, e) = (b.get("requests")?.as_u64()?, b.get("errors")?.as_u64()?);
            let ms = b
                .get("latency_ms")
                .and_then(|v| v.as_u64())
                .map_or(String::new(), |ms| format!(", {ms}ms"));
            Some(format!("; stable {n} requests, {e} errors{ms}"))
        })
        .unwrap_or_default();
    Some(format!(
        "{requests} requests, {errors} errors{rate}{latency}{stable}{verdict}"
    ))
}

/// `1200 of about 5000 rows (24%), 600 rows/s`: `amount` after `took` of the step.
fn amount_text(amount: &Amount, took: chrono::TimeDelta) -> String {
    let Amount { done, total, unit } = amount;
    let secs = (took.num_milliseconds() as f64 / 1000.0).max(0.001);
    let rate = format!("{:.0} {unit}/s", *done as f64 / secs);
    match total {
        Some(total) if *total > 0 => {
            let pct = (*done as f64 * 100.0 / *total as f64).min(100.0);
            format!("{done} of about {total} {unit} ({pct:.0}%), {rate}")
        }
        _ => format!("{done} {unit}, {rate}"),
    }
}

/// What a probe's answer means for the step: during a forward run, whether it runs again;
/// during a rollback, whether it is undone.
fn probe_verdict(outcome: ProbeOutcome, rolling_back: bool) -> &'static str {
    match (outcome, rolling_back) {
        (ProbeOutcome::Done, false) => "its effect is in place; not run again",
        (ProbeOutcome::NotDone, false) => "its effect is not there; it runs again",
        (ProbeOutcome::Done, true) => "its effect is in place; it is undone with the rest",
        (ProbeOutcome::NotDone, true) => "its effect is not there; nothing to undo",
    }
}

impl Reporter for Progress {
    fn event(&self, r: &Record) {
        let line = match self.mode {
            Mode::Quiet => return,
            Mode::Json => r.to_flat_json().to_string(),
            Mode::Text => {
                self.track(r);
                // On a terminal the bar shows a step's progress; its lines would only scroll.
                let bar_shows_it = matches!(r.event, Event::StepProgress { .. });
                match self.text_line(r) {
                    Some(_) if bar_shows_it && self.live.is_some() => return,
                    Some(line) => line,
                    None => return,
                }
            }
        };
        if let Some(live) = &self.live {
            live.println(&line);
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    fn notice(&self, text: &str) {
        eprintln!("cutover: {text}");
    }

    fn plan(&self, plan: &cutover_planner::dag::Plan) {
        if let Some(live) = &self.live {
            live.plan(plan);
        }
    }
}

/// `cutover log` in text: every record of a run, led by its sequence number and time, drawn by
/// the live view's own code ([`Progress::text_line`], as nextest replays a run through its
/// reporter). A record the live view leaves out is shown as its type and fields, so the log
/// shows everything that was recorded.
pub fn replay(records: &[Record]) -> Vec<String> {
    let view = Progress::new(Mode::Text);
    records
        .iter()
        .map(|r| {
            let time = r.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let line = view.text_line(r).unwrap_or_else(|| {
                let mut v = r.to_flat_json();
                let o = v.as_object_mut().expect("records are objects");
                let kind = o
                    .remove("type")
                    .and_then(|t| t.as_str().map(String::from))
                    .unwrap_or_default();
                o.remove("seq");
                o.remove("time");
                format!("{kind} {v}")
            });
            format!("{:>5}  {time}  {line}", r.seq)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_analysis_window_so_far_is_a_line_and_other_progress_data_is_not() {
        let data = serde_json::json!({
            "requests": 523, "errors": 2, "latency_ms": 120, "latency_kind": "p99"
        });
        assert_eq!(
            observation_text(&data).as_deref(),
            Some("523 requests, 2 errors (0.4%), p99 120ms")
        );
        let none_yet = serde_json::json!({"requests": 0, "errors": 0, "latency_ms": null,
            "latency_kind": "p99"});
        assert_eq!(
            observation_text(&none_yet).as_deref(),
            Some("0 requests, 0 errors")
        );
        assert_eq!(observation_text(&serde_json::json!({"pgid": 7})), None);
        let record = Record {
            seq: 9,
            time: chrono::Utc::now(),
            event: Event::StepProgress {
                step: "analysis/api/bake".into(),
                data,
                amount: None,
            },
        };
        assert_eq!(
            Progress::new(Mode::Text).text_line(&record).as_deref(),
            Some("  ...     analysis/api/bake: 523 requests, 2 errors (0.4%), p99 120ms")
        );
    }
}
