//! `--progress`: one line of live figures per second on stderr while the run goes on, for a
//! person watching a release (`scripts/demo` draws it under cutover's own output).
//!
//! The workers keep their own counts and merge them only when the run ends (that is what the
//! summary is built from); [`Live`] is a second, shared tally they add each finished request
//! to, so a ticker can read the totals at any moment. [`line`] draws the totals and the second
//! since the previous line, whose split by `X-App-Version` shows a canary's weights as they move:
//!
//! ```text
//! load +14s: 2101 requests, 0 failed; last second: 150 requests, 1.0.0 75% 1.1.0 25%
//! load +15s: 2251 requests, 7 failed (http_5xx 7); last second: 150 requests, 1.0.0 90% 1.1.0 10%
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::summary::FailureClass;

/// Running totals the workers add to as each request ends.
#[derive(Debug, Default)]
pub struct Live(Mutex<Figures>);

/// The totals at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    /// Requests that ended (a retried GET counts once).
    pub requests: u64,
    /// Requests that failed, for any reason.
    pub failed: u64,
    /// Failures by class; classes that did not occur are absent.
    pub failures: BTreeMap<FailureClass, u64>,
    /// Responses (any status) by their `X-App-Version` header value.
    pub versions: BTreeMap<String, u64>,
}

impl Live {
    /// Counts one finished request: its failure class if it failed, the version that answered
    /// it if a response carried one.
    pub fn record(&self, failure: Option<FailureClass>, version: Option<&str>) {
        let mut f = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f.requests += 1;
        if let Some(class) = failure {
            f.failed += 1;
            *f.failures.entry(class).or_default() += 1;
        }
        if let Some(v) = version {
            *f.versions.entry(v.to_string()).or_default() += 1;
        }
    }

    /// A copy of the totals now.
    pub fn figures(&self) -> Figures {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The line for the totals `now`, `elapsed` into the run, with the requests since `before`
/// (the totals at the previous line) and the share of each version among their responses.
pub fn line(elapsed: Duration, now: &Figures, before: &Figures) -> String {
    let mut out = format!(
        "load +{}s: {} requests, {} failed",
        elapsed.as_secs(),
        now.requests,
        now.failed
    );
    if now.failed > 0 {
        let classes: Vec<String> = now
            .failures
            .iter()
            .map(|(class, n)| format!("{class} {n}"))
            .collect();
        let _ = write!(out, " ({})", classes.join(", "));
    }
    let _ = write!(
        out,
        "; last second: {} requests",
        now.requests.saturating_sub(before.requests)
    );
    let recent: Vec<(&String, u64)> = now
        .versions
        .iter()
        .map(|(v, n)| {
            (
                v,
                n.saturating_sub(before.versions.get(v).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let answered: u64 = recent.iter().map(|(_, n)| n).sum();
    for (i, (version, n)) in recent.iter().enumerate() {
        let sep = if i == 0 { ", " } else { " " };
        let share = (*n as f64 * 100.0 / answered as f64).round();
        let _ = write!(out, "{sep}{version} {share}%");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_shows_totals_failures_by_class_and_the_last_second_by_version() {
        let live = Live::default();
        for _ in 0..9 {
            live.record(None, Some("1.0.0"));
        }
        live.record(None, Some("1.1.0"));
        let before = live.figures();
        assert_eq!(
            line(Duration::from_millis(1400), &before, &Figures::default()),
            "load +1s: 10 requests, 0 failed; last second: 10 requests, 1.0.0 90% 1.1.0 10%"
        );
        for _ in 0..3 {
            live.record(None, Some("1.0.0"));
        }
        live.record(Some(FailureClass::Http5xx), Some("1.1.0"));
        live.record(Some(FailureClass::ConnectError), None);
        assert_eq!(
            line(Duration::from_secs(2), &live.figures(), &before),
            "load +2s: 15 requests, 2 failed (connect_error 1, http_5xx 1); last second: 5 \
             requests, 1.0.0 75% 1.1.0 25%"
        );
        assert_eq!(
            line(Duration::from_secs(3), &live.figures(), &live.figures()),
            "load +3s: 15 requests, 2 failed (connect_error 1, http_5xx 1); last second: 0 requests"
        );
    }
}
