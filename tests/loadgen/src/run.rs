//! A load run: the connection workers, their schedule, the retry policy,
//! what ends the run, and the outputs (summary, timeline, ready file).

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};

use crate::client::Connection;
use crate::http::{Method, Response};
use crate::progress::{Figures, Live, line};
use crate::summary::{AckedWrite, ByMethod, FailureClass, Latency, MethodStats, Summary};
use crate::target::Target;

/// How often the stop file is looked for.
pub const STOP_FILE_POLL: Duration = Duration::from_millis(50);

/// Everything a run needs; the CLI fills it from its arguments.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where requests go (the router's address and base path).
    pub target: Target,
    /// Total requests per second over all connections.
    pub rate: f64,
    /// Number of keep-alive connections.
    pub connections: usize,
    /// Stop issuing requests this long after the start; `None` runs until
    /// the stop file appears or the shutdown future completes.
    pub duration: Option<Duration>,
    /// Stop once this file exists (checked every [`STOP_FILE_POLL`]).
    pub stop_file: Option<PathBuf>,
    /// Fraction of requests that are writes (POST), 0.0 to 1.0.
    pub write_ratio: f64,
    /// Path (and query) of reads, starting with `/`.
    pub read_path: String,
    /// Path of writes, starting with `/`.
    pub write_path: String,
    /// Limit on one request, from sending it (or connecting for it) to its
    /// complete response, including its retry if it has one.
    pub timeout: Duration,
    /// Write one CSV line per request here.
    pub timeline: Option<PathBuf>,
    /// Create this file once the first request succeeded.
    pub ready_file: Option<PathBuf>,
    /// Print a line of live figures to stderr every second ([`crate::progress`]).
    pub progress: bool,
}

/// Runs load until the duration elapses, the stop file appears, or
/// `shutdown` completes (the CLI passes SIGTERM/SIGINT); then lets in-flight
/// requests finish (each is bounded by the timeout) and returns the summary.
///
/// Request failures are data in the summary, not errors; an `Err` means the
/// timeline file could not be created or written.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> io::Result<Summary> {
    assert!(
        config.rate > 0.0 && config.rate.is_finite(),
        "rate must be positive"
    );
    assert!(config.connections > 0, "at least one connection");

    let timeline = match &config.timeline {
        Some(path) => Some(open_timeline(path)?),
        None => None,
    };

    let start = Instant::now();
    let shared = Arc::new(Shared {
        start,
        end: config.duration.map(|d| start + d),
        nonce: run_nonce(),
        timeline,
        ready: AtomicBool::new(false),
        first_failure: OnceLock::new(),
        live: config.progress.then(Live::default),
        config,
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = JoinSet::new();
    for index in 0..shared.config.connections {
        workers.spawn(worker(index, Arc::clone(&shared), stop_rx.clone()));
    }

    let ticker = shared
        .live
        .is_some()
        .then(|| tokio::spawn(print_progress(Arc::clone(&shared))));

    let stopped_by = wait_for_stop(&shared, shutdown).await;
    if stopped_by != "duration" {
        // Workers finish the request they are in and issue no new one. At
        // the end of the duration they need no signal: each stops by itself
        // at its first slot past the end, so every slot inside the duration
        // is either sent or counted late.
        let _ = stop_tx.send(true);
    }

    let mut totals = WorkerStats::default();
    while let Some(joined) = workers.join_next().await {
        totals.merge(joined.expect("load worker panicked"));
    }
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    let duration_s = start.elapsed().as_secs_f64();

    if let Some(timeline) = &shared.timeline {
        let mut t = timeline.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = t.error.take() {
            return Err(e);
        }
        t.out.flush()?;
    }

    Ok(summarize(
        totals,
        duration_s,
        stopped_by,
        shared.first_failure.get().cloned(),
    ))
}

/// The timeline CSV at `path`, created with its header row.
fn open_timeline(path: &std::path::Path) -> io::Result<Mutex<Timeline>> {
    let mut w = BufWriter::new(File::create(path)?);
    writeln!(w, "unix_ms,method,outcome,status,version,latency_us")?;
    Ok(Mutex::new(Timeline {
        out: w,
        error: None,
    }))
}

/// The run's summary from the workers' merged counts.
fn summarize(
    mut totals: WorkerStats,
    duration_s: f64,
    stopped_by: &str,
    first_failure: Option<String>,
) -> Summary {
    totals.acked.sort_by_key(|(seq, _)| *seq);
    let by_method = ByMethod {
        get: totals.get,
        post: totals.post,
    };
    Summary {
        requests: by_method.get.requests + by_method.post.requests,
        ok: by_method.get.ok + by_method.post.ok,
        failed: by_method.get.failed + by_method.post.failed,
        retried_ok: by_method.get.retried_ok + by_method.post.retried_ok,
        retries: totals.retries,
        late: totals.late,
        connections_opened: totals.opened,
        by_method,
        versions: totals.versions,
        acked_writes: totals.acked.into_iter().map(|(_, w)| w).collect(),
        latency_ms: Latency::from_micros(&mut totals.latencies_us),
        duration_s,
        stopped_by: stopped_by.to_string(),
        first_failure,
    }
}

/// Waits for the first of: duration elapsed, stop file present, shutdown.
async fn wait_for_stop(shared: &Shared, shutdown: impl Future<Output = ()>) -> &'static str {
    let end = shared.end;
    let stop_file = shared.config.stop_file.clone();
    tokio::select! {
        _ = async { sleep_until(end.expect("guarded")).await }, if end.is_some() => "duration",
        _ = wait_for_file(stop_file.as_deref()), if stop_file.is_some() => "stop_file",
        _ = shutdown => "signal",
    }
}

async fn wait_for_file(path: Option<&Path>) {
    let path = path.expect("guarded");
    while !path.exists() {
        sleep(STOP_FILE_POLL).await;
    }
}

/// State shared by the workers of one run.
struct Shared {
    config: Config,
    start: Instant,
    end: Option<Instant>,
    /// Distinguishes this run's written names from every other run's.
    nonce: String,
    timeline: Option<Mutex<Timeline>>,
    /// Set once the ready file was created (or attempted).
    ready: AtomicBool,
    first_failure: OnceLock<String>,
    /// The shared tally `--progress` prints from.
    live: Option<Live>,
}

struct Timeline {
    out: BufWriter<File>,
    /// The first write error; reported when the run ends.
    error: Option<io::Error>,
}

impl Shared {
    /// When global slot `seq` is due. Slots are spaced `1/rate` apart over
    /// all connections; connection `i` owns slots `i, i+C, i+2C, ...`, so
    /// each connection's requests are `C/rate` apart and the connections are
    /// staggered evenly.
    fn due(&self, seq: u64) -> Instant {
        self.start + Duration::from_secs_f64(seq as f64 / self.config.rate)
    }

    /// Whether `at` is still inside the run's duration.
    fn within(&self, at: Instant) -> bool {
        self.end.is_none_or(|end| at < end)
    }

    /// Slot `seq` is a write when it crosses a multiple of `1/write_ratio`:
    /// exactly `write_ratio` of the slots, evenly spread, and the same for
    /// every run, so tests know which requests are writes.
    fn is_write(&self, seq: u64) -> bool {
        let r = self.config.write_ratio;
        ((seq + 1) as f64 * r).floor() > (seq as f64 * r).floor()
    }

    fn record_timeline(&self, line: std::fmt::Arguments<'_>) {
        let Some(timeline) = &self.timeline else {
            return;
        };
        let mut t = timeline.lock().unwrap_or_else(PoisonError::into_inner);
        if t.error.is_none()
            && let Err(e) = t.out.write_fmt(line)
        {
            t.error = Some(e);
        }
    }

    fn mark_ready(&self) {
        let Some(path) = &self.config.ready_file else {
            return;
        };
        if self.ready.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Err(e) = std::fs::write(path, format!("{}\n", unix_ms())) {
            eprintln!(
                "loadgen: warning: cannot create ready file {}: {e}",
                path.display()
            );
        }
    }
}

/// Prints a line of live figures to stderr every second until aborted.
async fn print_progress(shared: Arc<Shared>) {
    let live = shared.live.as_ref().expect("only started with --progress");
    let mut before = Figures::default();
    let mut tick = tokio::time::interval_at(
        shared.start + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    loop {
        tick.tick().await;
        let now = live.figures();
        let text = line(shared.start.elapsed(), &now, &before);
        // A closed stderr must not end the run: the figures are only for watching.
        let _ = writeln!(io::stderr().lock(), "{text}");
        before = now;
    }
}

/// What one worker counted.
#[derive(Default)]
struct WorkerStats {
    get: MethodStats,
    post: MethodStats,
    retries: u64,
    late: u64,
    opened: u64,
    versions: BTreeMap<String, u64>,
    /// Acknowledged writes with their slot number, for ordering.
    acked: Vec<(u64, AckedWrite)>,
    latencies_us: Vec<u64>,
}

impl WorkerStats {
    fn method(&mut self, method: Method) -> &mut MethodStats {
        match method {
            Method::Get => &mut self.get,
            Method::Post => &mut self.post,
        }
    }

    fn merge(&mut self, other: WorkerStats) {
        self.get.merge(&other.get);
        self.post.merge(&other.post);
        self.retries += other.retries;
        self.late += other.late;
        self.opened += other.opened;
        for (version, n) in other.versions {
            *self.versions.entry(version).or_default() += n;
        }
        self.acked.extend(other.acked);
        self.latencies_us.extend(other.latencies_us);
    }
}

/// The outcome of one request after the retry policy.
enum Outcome {
    Ok {
        response: Response,
        retried: bool,
    },
    Failed {
        class: FailureClass,
        /// The status of a complete non-2xx response.
        status: Option<u16>,
        /// The `X-App-Version` of a complete non-2xx response.
        version: Option<String>,
        detail: String,
    },
}

/// One connection's loop: wait for the next slot, send one request, repeat.
///
/// The schedule is open-loop: slot times are fixed from the start, not
/// relative to the previous response, so a slow server does not silently
/// lower the offered load. A connection that is still busy when its next
/// slot comes sends as soon as it is free; if it fell behind by more than
/// one slot it does not burst to catch up: it skips the older missed slots,
/// counts each as `late`, and serves only the most recent one.
async fn worker(index: usize, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) -> WorkerStats {
    let config = &shared.config;
    let connections = config.connections as u64;
    let mut conn = Connection::new(config.target.addr, config.target.authority.clone());
    let mut stats = WorkerStats::default();
    let read_path = config.target.request_path(&config.read_path);
    let write_path = config.target.request_path(&config.write_path);

    let mut k: u64 = 0;
    loop {
        let seq = index as u64 + k * connections;
        let due = shared.due(seq);
        if !shared.within(due) {
            break;
        }
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            _ = sleep_until(due) => {}
        }
        if *stop.borrow() {
            break;
        }

        let method = if shared.is_write(seq) {
            Method::Post
        } else {
            Method::Get
        };
        let (path, name) = match method {
            Method::Get => (read_path.as_str(), None),
            Method::Post => (
                write_path.as_str(),
                Some(format!("lg-{}-{seq}", shared.nonce)),
            ),
        };
        let body = name
            .as_ref()
            .map(|n| serde_json::json!({ "name": n }).to_string().into_bytes());

        let started_unix_ms = unix_ms();
        let started = Instant::now();
        let outcome = request(
            &mut conn,
            &mut stats,
            method,
            path,
            body.as_deref(),
            started + config.timeout,
        )
        .await;
        let latency_us = started.elapsed().as_micros() as u64;

        let attempt = Attempt {
            index,
            seq,
            method,
            path,
            started,
            started_unix_ms,
            latency_us,
        };
        count(&shared, &mut stats, &attempt, outcome, name);
        k = next_slot(&shared, &mut stats, index, k, &stop);
    }
    stats.opened = conn.opened();
    stats
}

/// One request as [`count`] records it.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    /// The connection's index.
    index: usize,
    /// The request's slot number.
    seq: u64,
    method: Method,
    path: &'a str,
    /// When it was sent (monotonic, and as Unix milliseconds for the timeline).
    started: Instant,
    started_unix_ms: u128,
    /// Until its outcome, retry included, in microseconds.
    latency_us: u64,
}

/// Counts one request's outcome in `stats`, writes its timeline row, and keeps the write
/// (`name`) when the server acknowledged it, or the first failure of the run.
fn count(
    shared: &Shared,
    stats: &mut WorkerStats,
    a: &Attempt,
    outcome: Outcome,
    name: Option<String>,
) {
    let Attempt {
        index,
        seq,
        method,
        path,
        started,
        started_unix_ms,
        latency_us,
    } = *a;
    let m = stats.method(method);
    m.requests += 1;
    let (label, status, version) = match &outcome {
        Outcome::Ok { response, retried } => {
            m.ok += 1;
            if *retried {
                m.retried_ok += 1;
            }
            let label = if *retried { "retry_ok" } else { "ok" };
            (label, Some(response.status), version_of(response))
        }
        Outcome::Failed {
            class,
            status,
            version,
            ..
        } => {
            m.failed += 1;
            *m.failures.entry(*class).or_default() += 1;
            ("fail", *status, version.clone())
        }
    };
    if let Some(live) = &shared.live {
        let failure = match &outcome {
            Outcome::Ok { .. } => None,
            Outcome::Failed { class, .. } => Some(*class),
        };
        live.record(failure, version.as_deref());
    }
    shared.record_timeline(format_args!(
        "{started_unix_ms},{method},{label},{},{},{latency_us}\n",
        status.map(|s| s.to_string()).unwrap_or_default(),
        version.as_deref().map(csv_safe).unwrap_or_default(),
    ));

    match outcome {
        Outcome::Ok { response, .. } => {
            stats.latencies_us.push(latency_us);
            if let Some(name) = name {
                let id = serde_json::from_slice::<serde_json::Value>(&response.body)
                    .ok()
                    .and_then(|v| v.get("id").cloned())
                    .unwrap_or(serde_json::Value::Null);
                stats.acked.push((seq, AckedWrite { id, name }));
            }
            shared.mark_ready();
        }
        Outcome::Failed { class, detail, .. } => {
            let at = started.duration_since(shared.start).as_secs_f64();
            let _ = shared.first_failure.set(format!(
                "{method} {path} at +{at:.3}s on connection {index}: {class}: {detail}"
            ));
        }
    }
}

/// The next slot this connection serves after slot `k`: all but the latest overdue one are
/// skipped and counted as `late`.
fn next_slot(
    shared: &Shared,
    stats: &mut WorkerStats,
    index: usize,
    mut k: u64,
    stop: &watch::Receiver<bool>,
) -> u64 {
    let connections = shared.config.connections as u64;
    k += 1;
    let now = Instant::now();
    loop {
        let next = shared.due(index as u64 + (k + 1) * connections);
        if next > now || !shared.within(next) || *stop.borrow() {
            break;
        }
        stats.late += 1;
        k += 1;
    }
    k
}

/// Sends one request, applying the retry policy (see the crate docs): a
/// request with an idempotent method is sent once more, on a new
/// connection, if its connection closed before any response byte arrived.
/// Versions seen on responses are counted here, since a failed-status
/// response carries one too.
async fn request(
    conn: &mut Connection,
    stats: &mut WorkerStats,
    method: Method,
    path: &str,
    body: Option<&[u8]>,
    deadline: Instant,
) -> Outcome {
    let first = conn.send(method, path, body, deadline).await;
    let (result, first_error) = match first {
        Err(e) if method.is_idempotent() && e.may_retry() => {
            // The failed attempt dropped its connection, so this opens a
            // new one.
            debug_assert!(!conn.is_open(), "a closed connection is never reused");
            stats.retries += 1;
            (conn.send(method, path, body, deadline).await, Some(e))
        }
        other => (other, None),
    };
    let retried = first_error.is_some();
    let retry_note = match &first_error {
        Some(first) => format!(" (on retry; first attempt: {first})"),
        None => String::new(),
    };

    match result {
        Ok(response) => {
            let version = version_of(&response);
            if let Some(v) = &version {
                *stats.versions.entry(v.clone()).or_default() += 1;
            }
            let status = response.status;
            if (200..300).contains(&status) {
                Outcome::Ok { response, retried }
            } else {
                let class = if (500..600).contains(&status) {
                    FailureClass::Http5xx
                } else {
                    FailureClass::HttpOther
                };
                Outcome::Failed {
                    class,
                    status: Some(status),
                    version,
                    detail: format!("HTTP status {status}{retry_note}"),
                }
            }
        }
        Err(e) => Outcome::Failed {
            class: e.class(),
            status: None,
            version: None,
            detail: format!("{e}{retry_note}"),
        },
    }
}

fn version_of(response: &Response) -> Option<String> {
    response.header("x-app-version").map(str::to_string)
}

/// A header value made safe for an unquoted CSV field.
fn csv_safe(value: &str) -> String {
    value
        .chars()
        .map(|c| if c == ',' || c.is_control() { '_' } else { c })
        .collect()
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// A string unique to this run: start time in nanoseconds and process id,
/// in hex. Written names are `lg-<nonce>-<slot>`, so two runs against the
/// same database never write the same name.
fn run_nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{:x}{:x}", nanos as u64, std::process::id())
}
