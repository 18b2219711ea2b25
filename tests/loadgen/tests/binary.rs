//! The `loadgen` binary against an in-process HTTP server whose every
//! decision is logged, so the summary can be checked count for count against
//! what the server actually did.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutover_loadgen::{FailureClass, Summary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

/// How the test server behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers every request with 200 (GET) or 201 (POST).
    Healthy,
    /// Deterministic faults keyed on the accept order of the connection and
    /// the request's position on it; see [`decide`].
    Faulty,
}

/// What the server did with one request.
#[derive(Debug, Clone)]
enum Action {
    /// Read the request, then closed the connection without a response.
    Dropped,
    Answered {
        status: u16,
        version: &'static str,
        /// `(id, name)` of an acknowledged (201) write.
        ack: Option<(u64, String)>,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    method: String,
    action: Action,
}

struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Entry>>>,
    accepted: Arc<AtomicU64>,
    closes_sent: Arc<AtomicU64>,
}

impl Server {
    async fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server {
            addr: listener.local_addr().unwrap(),
            log: Arc::default(),
            accepted: Arc::default(),
            closes_sent: Arc::default(),
        };
        let state = Arc::new(State {
            mode,
            log: Arc::clone(&server.log),
            answered: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            closes_sent: Arc::clone(&server.closes_sent),
        });
        let accepted = Arc::clone(&server.accepted);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let conn_no = accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, conn_no, Arc::clone(&state)));
            }
        });
        server
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn entries(&self) -> Vec<Entry> {
        self.log.lock().unwrap().clone()
    }
}

struct State {
    mode: Mode,
    log: Arc<Mutex<Vec<Entry>>>,
    /// Requests answered so far, over all connections.
    answered: AtomicU64,
    next_id: AtomicU64,
    closes_sent: Arc<AtomicU64>,
}

struct Request {
    method: String,
    body: Vec<u8>,
}

/// Reads one request; `None` when the client closed the connection.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).unwrap();
            let method = head.split(' ').next().unwrap().to_string();
            let length: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.trim().parse().unwrap());
            while buf.len() < end + 4 + length {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            return Some(Request { method, body });
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The fault plan, for request number `nth` (from 1) on connection
/// `conn_no` (accept order from 0), the `answered`-th answer overall (from 0):
/// - every third connection is closed when its 3rd request arrives (the
///   request was read; no response byte is sent), as if the server's idle
///   close crossed the request on the wire;
/// - on another third, the 4th response carries `Connection: close`;
/// - later requests on a connection (never the first, so never a retry,
///   which always goes on a new connection) get a 500 every 7th answer and
///   a 429 every 11th;
/// - every other GET response is chunked; versions alternate by answer.
fn drops(mode: Mode, conn_no: u64, nth: u64) -> bool {
    mode == Mode::Faulty && conn_no.is_multiple_of(3) && nth == 3
}

/// How an answered request is answered (see [`drops`] for the others).
struct Decision {
    status_override: Option<u16>,
    close: bool,
    chunked: bool,
    version: &'static str,
}

fn decide(mode: Mode, conn_no: u64, nth: u64, answered: u64) -> Decision {
    let faulty = mode == Mode::Faulty;
    Decision {
        status_override: match () {
            _ if !faulty || nth < 2 => None,
            _ if answered % 7 == 3 => Some(500),
            _ if answered % 11 == 5 => Some(429),
            _ => None,
        },
        close: faulty && conn_no % 3 == 1 && nth == 4,
        chunked: answered % 2 == 1,
        version: if answered.is_multiple_of(3) {
            "1.1.0"
        } else {
            "1.0.0"
        },
    }
}

async fn serve(mut stream: TcpStream, conn_no: u64, state: Arc<State>) {
    let mut buf = Vec::new();
    let mut nth = 0;
    while let Some(req) = read_request(&mut stream, &mut buf).await {
        nth += 1;
        if drops(state.mode, conn_no, nth) {
            state.log.lock().unwrap().push(Entry {
                method: req.method,
                action: Action::Dropped,
            });
            return; // drops the stream: FIN with no response byte
        }
        let answered = state.answered.fetch_add(1, Ordering::SeqCst);
        let d = decide(state.mode, conn_no, nth, answered);
        let is_post = req.method == "POST";
        let status = d.status_override.unwrap_or(if is_post { 201 } else { 200 });
        let (body, ack) = match (is_post, status) {
            (true, 201) => {
                let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
                let name = v["name"].as_str().unwrap().to_string();
                let id = state.next_id.fetch_add(1, Ordering::SeqCst);
                (
                    serde_json::json!({ "id": id, "name": name }).to_string(),
                    Some((id, name)),
                )
            }
            (false, 200) => (
                r#"[{"id":1,"name":"alice"},{"id":2,"name":"bob"}]"#.to_string(),
                None,
            ),
            _ => (r#"{"error":"injected"}"#.to_string(), None),
        };
        state.log.lock().unwrap().push(Entry {
            method: req.method,
            action: Action::Answered {
                status,
                version: d.version,
                ack,
            },
        });

        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nX-App-Version: {}\r\n",
            d.version
        );
        if d.close {
            head.push_str("Connection: close\r\n");
            state.closes_sent.fetch_add(1, Ordering::SeqCst);
        }
        let mut out = Vec::new();
        if d.chunked && !is_post {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            out.extend_from_slice(head.as_bytes());
            let (a, b) = body.split_at(body.len() / 2);
            for part in [a, b, ""] {
                out.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
            }
        } else {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(body.as_bytes());
        }
        if stream.write_all(&out).await.is_err() || d.close {
            return;
        }
    }
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("loadgen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `loadgen` with `args` to completion off the async runtime.
async fn run_loadgen(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(LOADGEN)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn read_summary(path: &Path) -> Summary {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn wait_for(path: &Path, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while !path.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_match_what_the_server_did() {
    let server = Server::start(Mode::Faulty).await;
    let dir = scratch("faulty");
    let out = dir.join("summary.json");
    let timeline = dir.join("timeline.csv");
    let args: Vec<String> = [
        "--url",
        &server.url(),
        "--rate",
        "200",
        "--duration",
        "2s",
        "--connections",
        "4",
        "--write-ratio",
        "0.25",
        "--out",
        out.to_str().unwrap(),
        "--timeline",
        timeline.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let output = run_loadgen(args).await;
    assert!(output.status.success(), "{output:?}");
    let s = read_summary(&out);
    let entries = server.entries();

    // Ground truth from the server's log.
    let count = |method: &str, f: &dyn Fn(&Action) -> bool| {
        entries
            .iter()
            .filter(|e| e.method == method && f(&e.action))
            .count() as u64
    };
    let dropped = |a: &Action| matches!(a, Action::Dropped);
    let status_is = |code: u16| move |a: &Action| matches!(a, Action::Answered { status, .. } if *status == code);
    let dropped_get = count("GET", &dropped);
    let dropped_post = count("POST", &dropped);
    let get_200 = count("GET", &status_is(200));
    let post_201 = count("POST", &status_is(201));
    let (get_500, post_500) = (
        count("GET", &status_is(500)),
        count("POST", &status_is(500)),
    );
    let (get_429, post_429) = (
        count("GET", &status_is(429)),
        count("POST", &status_is(429)),
    );

    // The plan must actually have exercised every case.
    for (what, n) in [
        ("dropped GETs", dropped_get),
        ("dropped POSTs", dropped_post),
        ("GET 500s", get_500),
        ("POST 500s", post_500),
        ("429s", get_429 + post_429),
        (
            "Connection: close responses",
            server.closes_sent.load(Ordering::SeqCst),
        ),
    ] {
        assert!(n > 0, "the run produced no {what}; summary: {s:#?}");
    }

    // Every slot of 2 s at 200/s was either sent or skipped as late.
    assert_eq!(s.requests + s.late, 400, "{s:#?}");
    assert_eq!(s.stopped_by, "duration");

    // A dropped GET is retried once on a new connection (first on it, so
    // never faulted) and succeeds; a dropped POST is a failure.
    let get = &s.by_method.get;
    let post = &s.by_method.post;
    assert_eq!(s.retries, dropped_get);
    assert_eq!(s.retried_ok, dropped_get);
    assert_eq!(get.retried_ok, dropped_get);
    assert_eq!(post.retried_ok, 0);
    assert_eq!(get.requests, get_200 + get_500 + get_429);
    assert_eq!(get.ok, get_200);
    assert_eq!(get.failed, get_500 + get_429);
    let expected_get_failures: BTreeMap<FailureClass, u64> = [
        (FailureClass::Http5xx, get_500),
        (FailureClass::HttpOther, get_429),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect();
    assert_eq!(get.failures, expected_get_failures);

    assert_eq!(post.requests, post_201 + post_500 + post_429 + dropped_post);
    assert_eq!(post.ok, post_201);
    assert_eq!(post.failed, post_500 + post_429 + dropped_post);
    let expected_post_failures: BTreeMap<FailureClass, u64> = [
        (FailureClass::ClosedBeforeResponse, dropped_post),
        (FailureClass::Http5xx, post_500),
        (FailureClass::HttpOther, post_429),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect();
    assert_eq!(post.failures, expected_post_failures);

    assert_eq!(s.requests, entries.len() as u64 - dropped_get);
    assert_eq!(s.ok, get.ok + post.ok);
    assert_eq!(s.failed, get.failed + post.failed);
    assert_eq!(s.requests, s.ok + s.failed);
    // Writes are every 4th slot (unless slots were skipped as late).
    if s.late == 0 {
        assert_eq!(post.requests, 100);
    }

    // Every response's version was counted, failed statuses included.
    let mut versions = BTreeMap::<String, u64>::new();
    for e in &entries {
        if let Action::Answered { version, .. } = &e.action {
            *versions.entry(version.to_string()).or_default() += 1;
        }
    }
    assert_eq!(s.versions, versions);

    // Acknowledged writes are exactly the server's 201s, ids and names.
    let acked: BTreeSet<(u64, String)> = s
        .acked_writes
        .iter()
        .map(|w| (w.id.as_u64().unwrap(), w.name.clone()))
        .collect();
    let server_acked: BTreeSet<(u64, String)> = entries
        .iter()
        .filter_map(|e| match &e.action {
            Action::Answered { ack: Some(a), .. } => Some(a.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        acked.len(),
        s.acked_writes.len(),
        "names and ids are unique"
    );
    assert_eq!(acked, server_acked);
    assert!(s.acked_writes.iter().all(|w| w.name.starts_with("lg-")));

    // Connections: the 4 of the pool plus one per reconnect.
    assert_eq!(s.connections_opened, server.accepted.load(Ordering::SeqCst));
    let first = s.first_failure.as_deref().expect("there were failures");
    assert!(first.contains("GET") || first.contains("POST"), "{first}");
    assert!(
        s.latency_ms.p50 > 0.0
            && s.latency_ms.p50 <= s.latency_ms.p99
            && s.latency_ms.p99 <= s.latency_ms.max
    );

    // Timeline: a header and one line per request, outcomes as counted.
    let csv = std::fs::read_to_string(&timeline).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("unix_ms,method,outcome,status,version,latency_us")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len() as u64, s.requests);
    assert!(rows.iter().all(|r| r.len() == 6));
    let outcomes = |o: &str| rows.iter().filter(|r| r[2] == o).count() as u64;
    assert_eq!(outcomes("ok"), s.ok - s.retried_ok);
    assert_eq!(outcomes("retry_ok"), s.retried_ok);
    assert_eq!(outcomes("fail"), s.failed);
    let closed_rows = rows
        .iter()
        .filter(|r| r[2] == "fail" && r[3].is_empty())
        .count() as u64;
    assert_eq!(
        closed_rows, dropped_post,
        "only dropped POSTs failed without a status"
    );
    assert_eq!(
        rows.iter().filter(|r| r[3] == "500").count() as u64,
        get_500 + post_500
    );

    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_file_then_stop_file() {
    let server = Server::start(Mode::Healthy).await;
    let dir = scratch("stopfile");
    let (out, ready, stop) = (dir.join("s.json"), dir.join("ready"), dir.join("stop"));
    let args: Vec<String> = vec![
        "--url".into(),
        server.url(),
        "--rate".into(),
        "100".into(),
        "--out".into(),
        out.display().to_string(),
        "--ready-file".into(),
        ready.display().to_string(),
        "--stop-file".into(),
        stop.display().to_string(),
    ];
    let child = tokio::spawn(run_loadgen(args));
    wait_for(&ready, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&stop, "").unwrap();
    let output = tokio::time::timeout(Duration::from_secs(10), child)
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "{output:?}");

    let s = read_summary(&out);
    assert_eq!(s.stopped_by, "stop_file");
    assert!(s.requests >= 20, "{s:#?}");
    assert_eq!((s.failed, s.retries, s.ok), (0, 0, s.requests));
    assert_eq!(s.connections_opened, 4);
    assert_eq!(s.requests, server.entries().len() as u64);
    assert_eq!(s.acked_writes.len() as u64, s.by_method.post.ok);
    assert_eq!(s.first_failure, None);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_run_and_the_summary_goes_to_stdout() {
    let server = Server::start(Mode::Healthy).await;
    let dir = scratch("sigterm");
    let ready = dir.join("ready");
    let child = Command::new(LOADGEN)
        .args([
            "--url",
            &server.url(),
            "--rate",
            "100",
            "--ready-file",
            ready.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&ready, Duration::from_secs(10)).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let s: Summary = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(s.stopped_by, "signal");
    assert!(s.requests > 0 && s.failed == 0, "{s:#?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn non_loopback_targets_and_bad_arguments_exit_2() {
    for url in [
        "http://10.0.0.1:8080",
        "http://192.168.1.1",
        "http://example.com:80",
        "https://127.0.0.1:1",
    ] {
        let output = run_loadgen(vec![
            "--url".into(),
            url.into(),
            "--rate".into(),
            "10".into(),
        ])
        .await;
        assert_eq!(output.status.code(), Some(2), "{url}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--url"), "{url}: {stderr}");
        assert!(output.stdout.is_empty());
    }
    let output = run_loadgen(vec![
        "--url".into(),
        "http://10.0.0.1:8080".into(),
        "--rate".into(),
        "10".into(),
    ])
    .await;
    assert!(String::from_utf8_lossy(&output.stderr).contains("only loopback targets"));

    for bad in [
        vec!["--rate", "10"],
        vec!["--url", "http://127.0.0.1:1", "--rate", "0"],
        vec![
            "--url",
            "http://127.0.0.1:1",
            "--rate",
            "10",
            "--write-ratio",
            "1.5",
        ],
        vec![
            "--url",
            "http://127.0.0.1:1",
            "--rate",
            "10",
            "--connections",
            "0",
        ],
        vec![
            "--url",
            "http://127.0.0.1:1",
            "--rate",
            "10",
            "--duration",
            "soon",
        ],
        vec![
            "--url",
            "http://127.0.0.1:1",
            "--rate",
            "10",
            "--read-path",
            "users",
        ],
    ] {
        let output = run_loadgen(bad.iter().map(|s| s.to_string()).collect()).await;
        assert_eq!(output.status.code(), Some(2), "{bad:?}: {output:?}");
    }
}

#[tokio::test]
async fn an_existing_stop_file_is_refused() {
    let dir = scratch("stale-stop");
    let stop = dir.join("stop");
    std::fs::write(&stop, "").unwrap();
    let output = run_loadgen(
        [
            "--url",
            "http://127.0.0.1:1",
            "--rate",
            "10",
            "--stop-file",
            stop.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `--progress` prints a line a second on stderr while the run goes on: totals that never go down,
/// failures by the same classes the summary counts, and the last second split by version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_prints_a_line_of_figures_every_second() {
    let server = Server::start(Mode::Faulty).await;
    let dir = scratch("progress");
    let out = dir.join("s.json");
    let args: Vec<String> = [
        "--url",
        &server.url(),
        "--rate",
        "100",
        "--duration",
        "3500ms",
        "--progress",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let output = run_loadgen(args).await;
    assert!(output.status.success(), "{output:?}");
    let s = read_summary(&out);
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    // One line per whole second of a 3.5 s run (a tick delayed past the end on a busy
    // machine is not printed).
    assert!(
        (2..=3).contains(&lines.len()),
        "one line per second: {stderr}"
    );
    let (mut before, mut second) = (0, 0);
    for line in &lines {
        let (at, rest) = line
            .strip_prefix("load +")
            .and_then(|l| l.split_once("s: "))
            .unwrap_or_else(|| panic!("{line}"));
        let at: u64 = at.parse().unwrap();
        let requests: u64 = rest.split(' ').next().unwrap().parse().unwrap();
        assert!(at >= second && at >= 1, "{stderr}");
        assert!(requests >= before && requests <= s.requests, "{line}");
        (before, second) = (requests, at);
        assert!(line.contains("; last second: "), "{line}");
        // The test server answers 1.0.0 two times in three and 1.1.0 the third.
        assert!(
            line.contains(" 1.0.0 ") && line.contains(" 1.1.0 "),
            "{line}"
        );
    }
    let last = lines[lines.len() - 1];
    assert!(before > 0, "{stderr}");
    assert!(
        s.failed > 0 && last.contains(" failed ("),
        "the faulty server's failures show by class: {last}"
    );
    for class in FailureClass::ALL {
        if last.contains(&format!("{class} ")) {
            assert!(
                s.by_method.get.failures_of(class) + s.by_method.post.failures_of(class) > 0,
                "{class} in {last} but not in the summary"
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}
