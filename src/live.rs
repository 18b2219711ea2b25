//! What a running step looks like while it runs, beside the lines [`crate::progress`] prints.
//!
//! - On a terminal ([`Live`], indicatif): a spinner per running step with its elapsed time; a
//!   countdown for a pause or an analysis window (their lengths come from the plan); a bar with
//!   rate and ETA once a step counts its work (a backfill's rows). Finished steps print their
//!   line above the bars, so the scrollback is the same as without a terminal.
//! - Elsewhere (CI logs, pipes; [`StillRunning`]): a `still running ... [30s elapsed]` line
//!   every [`STILL_RUNNING_EVERY`] per running step, as Terraform's "Still creating...".
//!
//! The templates use no colour, so `NO_COLOR` has nothing to switch off.

use cutover_executor::event::Amount;
use cutover_planner::dag::Plan;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a running step gets a `still running` line off a terminal.
pub const STILL_RUNNING_EVERY: Duration = Duration::from_secs(30);

/// How long each pause and analysis window of `plan` lasts, by step id (a manual gate has none).
pub fn windows(plan: &Plan) -> HashMap<String, Duration> {
    plan.steps()
        .filter_map(|s| Some((s.id.clone(), Duration::from(s.window()?))))
        .collect()
}

/// The bars of the running steps on a terminal.
pub struct Live {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    windows: Mutex<HashMap<String, Duration>>,
}

impl Live {
    /// A live view drawing on `target` (stdout when it is a terminal).
    pub fn new(target: ProgressDrawTarget) -> Self {
        Self {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Learns the pause and analysis windows of the run's plan.
    pub fn plan(&self, plan: &Plan) {
        *self.windows.lock().expect("live view lock") = windows(plan);
    }

    /// `step` started: a spinner with its elapsed time, or a countdown for a window.
    pub fn started(&self, step: &str) {
        let window = self
            .windows
            .lock()
            .expect("live view lock")
            .get(step)
            .copied();
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(match window {
            Some(w) => countdown_style(w),
            None => spinner_style(),
        });
        bar.set_prefix(step.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bars
            .lock()
            .expect("live view lock")
            .insert(step.to_string(), bar);
    }

    /// `step` counted its work: its spinner becomes a bar with rate and ETA (a count, when the
    /// total is unknown).
    pub fn progress(&self, step: &str, amount: &Amount) {
        let bars = self.bars.lock().expect("live view lock");
        let Some(bar) = bars.get(step) else { return };
        match amount.total {
            Some(total) if total > 0 => {
                if bar.length() != Some(total) {
                    bar.set_style(bar_style(&amount.unit));
                    bar.set_length(total);
                }
            }
            _ => bar.set_style(count_style(&amount.unit)),
        }
        bar.set_position(amount.done);
    }

    /// What `step`'s analysis window has seen so far, shown beside its countdown.
    pub fn observed(&self, step: &str, text: &str) {
        if let Some(bar) = self.bars.lock().expect("live view lock").get(step) {
            bar.set_message(text.to_string());
        }
    }

    /// `step` ended: its bar goes.
    pub fn ended(&self, step: &str) {
        if let Some(bar) = self.bars.lock().expect("live view lock").remove(step) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    /// Prints `line` above the bars.
    pub fn println(&self, line: &str) {
        if self.multi.println(line).is_err() {
            println!("{line}");
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        for (_, bar) in self.bars.lock().expect("live view lock").drain() {
            bar.finish_and_clear();
        }
    }
}

fn template(t: &str) -> ProgressStyle {
    ProgressStyle::with_template(t).expect("the live view's templates are valid")
}

/// `⠋ STEP [12s]`.
fn spinner_style() -> ProgressStyle {
    template("  {spinner} {prefix} [{elapsed}]")
}

/// `⠋ STEP [12s of 60s, 48s left] 523 requests, 2 errors (0.4%), p99 120ms`: a pause or an
/// analysis window of `window`, with what the window has seen so far.
fn countdown_style(window: Duration) -> ProgressStyle {
    let total = window.as_secs();
    template("  {spinner} {prefix} [{elapsed} of {window}, {left} left] {msg}")
        .with_key(
            "window",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{total}s");
            },
        )
        .with_key(
            "left",
            move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let left = window.saturating_sub(s.elapsed());
                let _ = write!(w, "{}s", left.as_secs());
            },
        )
}

/// `STEP [#####-----] 1200/5000 rows (600/s, ETA 6s)`.
fn bar_style(unit: &str) -> ProgressStyle {
    template(&format!(
        "  {{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}})"
    ))
    .progress_chars("#>-")
}

/// `⠋ STEP 1200 rows (600/s) [12s]`.
fn count_style(unit: &str) -> ProgressStyle {
    template(&format!(
        "  {{spinner}} {{prefix}} {{pos}} {unit} ({{per_sec}}) [{{elapsed}}]"
    ))
}

/// Off a terminal: a `still running` line per running step every [`STILL_RUNNING_EVERY`],
/// printed by a thread that ends with it.
pub struct StillRunning {
    running: Arc<Mutex<HashMap<String, Instant>>>,
    stop: Arc<AtomicBool>,
}

impl StillRunning {
    /// Starts the thread, writing to stdout every [`STILL_RUNNING_EVERY`].
    pub fn start() -> Self {
        Self::start_on(STILL_RUNNING_EVERY, Box::new(std::io::stdout()))
    }

    /// Starts the thread, writing to `out` every `every`.
    fn start_on(every: Duration, mut out: Box<dyn std::io::Write + Send>) -> Self {
        let running: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (Arc::clone(&running), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut said: HashMap<String, u32> = HashMap::new();
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200).min(every));
                let now = Instant::now();
                let running = r.lock().expect("still-running lock");
                said.retain(|step, _| running.contains_key(step));
                for (step, since) in running.iter() {
                    let periods = (now - *since).as_millis() / every.as_millis().max(1);
                    let periods = u32::try_from(periods).unwrap_or(u32::MAX);
                    let last = said.entry(step.clone()).or_default();
                    if periods > *last {
                        *last = periods;
                        let elapsed = (now - *since).as_secs();
                        let line = format!("  ...     {step}: still running [{elapsed}s elapsed]");
                        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
                    }
                }
            }
        });
        Self { running, stop }
    }

    /// `step` started.
    pub fn started(&self, step: &str) {
        self.running
            .lock()
            .expect("still-running lock")
            .insert(step.to_string(), Instant::now());
    }

    /// `step` ended.
    pub fn ended(&self, step: &str) {
        self.running
            .lock()
            .expect("still-running lock")
            .remove(step);
    }
}

impl Drop for StillRunning {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::InMemoryTerm;

    fn live(windows: &[(&str, u64)]) -> (Live, InMemoryTerm) {
        let term = InMemoryTerm::new(10, 100);
        let live = Live::new(ProgressDrawTarget::term_like(Box::new(term.clone())));
        *live.windows.lock().unwrap() = windows
            .iter()
            .map(|(s, secs)| (s.to_string(), Duration::from_secs(*secs)))
            .collect();
        (live, term)
    }

    #[test]
    fn a_pause_counts_down_its_window() {
        let (live, term) = live(&[("pause/api/10", 60)]);
        live.started("pause/api/10");
        std::thread::sleep(Duration::from_millis(400));
        let screen = term.contents();
        assert!(
            screen.contains("pause/api/10 [0s of 60s, 59s left]"),
            "{screen}"
        );
        live.observed("pause/api/10", "523 requests, 2 errors (0.4%), p99 120ms");
        std::thread::sleep(Duration::from_millis(300));
        let screen = term.contents();
        assert!(
            screen.contains("59s left] 523 requests, 2 errors (0.4%), p99 120ms"),
            "{screen}"
        );
        live.ended("pause/api/10");
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !term.contents().contains("pause/api/10"),
            "{}",
            term.contents()
        );
    }

    #[test]
    fn a_backfill_gets_a_bar_with_its_rate_and_eta_and_lines_print_above_it() {
        let (live, term) = live(&[]);
        live.started("backfill/users.full_name");
        let amount = |done| Amount {
            done,
            total: Some(5000),
            unit: "rows".into(),
        };
        live.progress("backfill/users.full_name", &amount(1200));
        live.println("  done    migrate/expand/V2__x (0.1s)");
        std::thread::sleep(Duration::from_millis(300));
        let screen = term.contents();
        assert!(screen.contains("done    migrate/expand/V2__x"), "{screen}");
        assert!(
            screen.contains("backfill/users.full_name [#######")
                && screen.contains("1200/5000 rows (")
                && screen.contains("ETA"),
            "{screen}"
        );
    }

    #[test]
    fn off_a_terminal_a_long_step_says_it_is_still_running() {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let still = StillRunning::start_on(Duration::from_millis(300), Box::new(buf.clone()));
        still.started("command/slow");
        still.started("command/quick");
        still.ended("command/quick");
        std::thread::sleep(Duration::from_millis(800));
        still.ended("command/slow");
        std::thread::sleep(Duration::from_millis(400));
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "one line per period while it runs: {text}");
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("  ...     command/slow: still running [")),
            "{text}"
        );
    }
}
