//! The result of a run, as written to `--out`. Test code deserialises the
//! file with these same types.
//!
//! Invariants: `requests == ok + failed`; `ok` includes `retried_ok`; the
//! same holds per method. A request retried once counts as one request.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a request failed. Serialised as the snake_case names below, which are
/// the keys of [`MethodStats::failures`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FailureClass {
    /// The TCP connection could not be established.
    #[serde(rename = "connect_error")]
    ConnectError,
    /// The connection was closed or reset before any byte of the response
    /// arrived (for a GET: also on its one retry).
    #[serde(rename = "closed_before_response")]
    ClosedBeforeResponse,
    /// The connection was closed or reset after part of the response arrived.
    #[serde(rename = "closed_mid_response")]
    ClosedMidResponse,
    /// No complete response within the per-request timeout.
    #[serde(rename = "timeout")]
    Timeout,
    /// A complete response with a 5xx status.
    #[serde(rename = "http_5xx")]
    Http5xx,
    /// A complete response with a status that is neither 2xx nor 5xx.
    #[serde(rename = "http_other")]
    HttpOther,
    /// Bytes that are not a valid HTTP/1.1 response.
    #[serde(rename = "bad_response")]
    BadResponse,
}

impl FailureClass {
    /// Every class, in the order the summary lists them.
    pub const ALL: [FailureClass; 7] = [
        FailureClass::ConnectError,
        FailureClass::ClosedBeforeResponse,
        FailureClass::ClosedMidResponse,
        FailureClass::Timeout,
        FailureClass::Http5xx,
        FailureClass::HttpOther,
        FailureClass::BadResponse,
    ];

    /// The class's name in the summary's JSON (`connect_error`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::ConnectError => "connect_error",
            FailureClass::ClosedBeforeResponse => "closed_before_response",
            FailureClass::ClosedMidResponse => "closed_mid_response",
            FailureClass::Timeout => "timeout",
            FailureClass::Http5xx => "http_5xx",
            FailureClass::HttpOther => "http_other",
            FailureClass::BadResponse => "bad_response",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts for one request method.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodStats {
    /// Requests sent (each counted once, retried or not).
    pub requests: u64,
    /// Requests answered with a 2xx status, including `retried_ok`.
    pub ok: u64,
    /// Requests that failed (after their retry, for GETs).
    pub failed: u64,
    /// Requests (GETs only) that succeeded on their one retry.
    pub retried_ok: u64,
    /// Failures by class; classes that did not occur are absent.
    pub failures: BTreeMap<FailureClass, u64>,
}

impl MethodStats {
    /// Failures of `class` (0 when none occurred).
    pub fn failures_of(&self, class: FailureClass) -> u64 {
        self.failures.get(&class).copied().unwrap_or(0)
    }

    pub(crate) fn merge(&mut self, other: &MethodStats) {
        self.requests += other.requests;
        self.ok += other.ok;
        self.failed += other.failed;
        self.retried_ok += other.retried_ok;
        for (class, n) in &other.failures {
            *self.failures.entry(*class).or_default() += n;
        }
    }
}

/// Per-method counts, keyed `"GET"` and `"POST"` in JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByMethod {
    /// Reads.
    #[serde(rename = "GET")]
    pub get: MethodStats,
    /// Writes.
    #[serde(rename = "POST")]
    pub post: MethodStats,
}

/// A write the server acknowledged with a 2xx status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedWrite {
    /// The `"id"` field of the JSON response body, as sent (number or
    /// string); `null` if the body had none.
    pub id: serde_json::Value,
    /// The name that was written, `lg-<run nonce>-<sequence number>`.
    pub name: String,
}

/// Latency of successful requests (a retried request's latency includes the
/// failed first attempt), in milliseconds. All zero when none succeeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `micros` (sorted in place).
    pub fn from_micros(micros: &mut [u64]) -> Latency {
        if micros.is_empty() {
            return Latency::default();
        }
        micros.sort_unstable();
        let rank = |p: f64| {
            let idx = ((p * micros.len() as f64).ceil() as usize).clamp(1, micros.len()) - 1;
            micros[idx] as f64 / 1000.0
        };
        Latency {
            p50: rank(0.50),
            p99: rank(0.99),
            max: micros[micros.len() - 1] as f64 / 1000.0,
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Requests issued (a retried GET counts once).
    pub requests: u64,
    /// Requests answered with 2xx, including `retried_ok`.
    pub ok: u64,
    /// Requests that failed, for any reason in [`FailureClass`].
    pub failed: u64,
    /// GETs whose connection closed before any response byte and which then
    /// succeeded on their one retry.
    pub retried_ok: u64,
    /// Retries attempted; `retries - retried_ok` retried GETs still failed.
    pub retries: u64,
    /// Scheduled slots skipped because a connection was still busy with an
    /// earlier request (see the crate docs on pacing).
    pub late: u64,
    /// TCP connections opened, including reconnects.
    pub connections_opened: u64,
    /// Counts by request method.
    pub by_method: ByMethod,
    /// Responses (any status) by their `X-App-Version` header value.
    pub versions: BTreeMap<String, u64>,
    /// Writes acknowledged with 2xx, in the order they were issued.
    pub acked_writes: Vec<AckedWrite>,
    /// Latency of successful requests, in milliseconds.
    pub latency_ms: Latency,
    /// Seconds from the first scheduled slot until the last in-flight
    /// request finished.
    pub duration_s: f64,
    /// What ended the run: `duration`, `signal` or `stop_file`.
    pub stopped_by: String,
    /// A description of the earliest failure, if any.
    pub first_failure: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        v.reverse();
        let l = Latency::from_micros(&mut v);
        assert_eq!((l.p50, l.p99, l.max), (50.0, 99.0, 100.0));
        let l = Latency::from_micros(&mut [1500]);
        assert_eq!((l.p50, l.p99, l.max), (1.5, 1.5, 1.5));
        assert_eq!(Latency::from_micros(&mut []), Latency::default());
    }

    #[test]
    fn summary_json_round_trips() {
        let mut s = Summary {
            requests: 3,
            ok: 2,
            failed: 1,
            stopped_by: "duration".into(),
            ..Summary::default()
        };
        s.by_method.post.failures.insert(FailureClass::Http5xx, 1);
        s.by_method
            .get
            .failures
            .insert(FailureClass::ClosedBeforeResponse, 2);
        s.versions.insert("1.0.0".into(), 2);
        s.acked_writes.push(AckedWrite {
            id: serde_json::json!(17),
            name: "lg-abc-4".into(),
        });
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["by_method"]["POST"]["failures"]["http_5xx"], 1);
        assert_eq!(
            json["by_method"]["GET"]["failures"]["closed_before_response"],
            2
        );
        assert_eq!(json["first_failure"], serde_json::Value::Null);
        assert_eq!(json["acked_writes"][0]["id"], 17);
        let back: Summary = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn class_names_match_serde() {
        for class in FailureClass::ALL {
            assert_eq!(serde_json::to_value(class).unwrap(), class.as_str());
        }
    }
}
