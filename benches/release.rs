//! Release benchmark (not a test): on real PostgreSQL, Docker, nginx and HAProxy, under load
//! through the router, it measures per router
//! - failed requests per strategy (canary, blue-green, rolling; recreate's downtime window),
//! - the blue-green switch: the shift step's duration, and how long after it began 1.0.0 still
//!   answered,
//! - rollback: from invoking `cutover rollback` on a canary held at 50% until the last response
//!   from 1.1.0 (100% of traffic back on the stable version).
//!
//! Run with `bench/release-bench.sh`; figures go to stdout and bench/out/release.json.

#![allow(dead_code)]

#[path = "../tests/it/common.rs"]
mod common;
#[path = "../tests/it/e2e.rs"]
mod e2e;
#[path = "../tests/it/pg.rs"]
mod pg;
#[path = "../tests/it/stack.rs"]
mod stack;

use e2e::{Load, World};
use serde_json::{Value, json};
use stack::Kind;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// (unix_ms, version) of every response in a loadgen timeline.
fn timeline(file: &std::path::Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.first()?.parse().ok()?, f.get(4)?.to_string()))
        })
        .collect()
}

fn step_ms(w: &World, id_prefix: &str) -> Option<u64> {
    let out = w.cutover(&["status", "--format", "json", w.run_dir().to_str().unwrap()]);
    let doc: Value = serde_json::from_slice(&out.stdout).ok()?;
    let s = doc["steps"]
        .as_array()?
        .iter()
        .find(|s| s["id"].as_str().is_some_and(|i| i.starts_with(id_prefix)))?;
    s["duration_ms"].as_u64()
}

fn name(kind: Kind) -> &'static str {
    if kind == Kind::Haproxy {
        "haproxy"
    } else {
        "nginx"
    }
}

fn strategy_run(kind: Kind, strategy: &str) -> Value {
    let replicas = if strategy == "rolling" { 2 } else { 1 };
    let w = World::new(kind, replicas, 5000);
    w.write_spec(strategy, "");
    let timeline_file = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start_with(
        w.router.port,
        150,
        &["--timeline", timeline_file.path().to_str().unwrap()],
    );
    let out = w.cutover(&["apply", "spec.toml"]);
    let s = load.stop_any_rate();
    assert_eq!(out.status.code(), Some(0), "{}", common::transcript(&out));
    let mut v = json!({
        "router": name(kind),
        "strategy": strategy,
        "requests": s.requests,
        "failed": s.failed,
        "failed_get": s.by_method.get.failed,
        "failed_post": s.by_method.post.failed,
        "get_retried_ok": s.retried_ok,
        "max_latency_ms": s.latency_ms.max,
    });
    if strategy == "blue-green" {
        let lines = timeline(timeline_file.path());
        let first_new = lines
            .iter()
            .filter(|(_, ver)| ver == "1.1.0")
            .map(|(t, _)| *t)
            .min()
            .unwrap_or(0);
        let last_old = lines
            .iter()
            .filter(|(_, ver)| ver == "1.0.0")
            .map(|(t, _)| *t)
            .max()
            .unwrap_or(0);
        v["switch_step_ms"] = json!(step_ms(&w, "shift/").unwrap());
        // Both versions answer during the switch only as long as requests already in flight.
        v["both_versions_answered_ms"] = json!(last_old.saturating_sub(first_new));
    }
    if strategy == "recreate" {
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        v["downtime_window_s"] = json!(
            text.split("downtime window: ")
                .nth(1)
                .and_then(|t| t.split(' ').next())
                .and_then(|x| x.parse::<f64>().ok())
        );
    }
    v
}

fn rollback_run(kind: Kind) -> Value {
    let w = World::new(kind, 1, 5000);
    w.write_spec("canary", "");
    // Hold the canary at 50% for a minute: the operator rolls back from there.
    let spec = std::fs::read_to_string(w.path().join("spec.toml")).unwrap();
    let spec = spec.replace(
        "steps = [10, 25, 50, 100]\npause = \"1s\"\nanalysis = { window = \"2s\", max_error_rate = \
         0.01, max_p99_latency = \"500ms\", min_requests = 5 }",
        "steps = [50, 100]\npause = \"60s\"",
    );
    std::fs::write(w.path().join("spec.toml"), spec).unwrap();
    let timeline_file = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start_with(
        w.router.port,
        150,
        &["--timeline", timeline_file.path().to_str().unwrap()],
    );
    let mut child = w
        .command(&["apply", "spec.toml"])
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !matches!(
        w.state_of(&format!("pause/{}/50", w.apps.service))
            .as_deref(),
        Some("started")
    ) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the canary never reached 50%"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let start = now_ms();
    let out = w.cutover(&["rollback", w.run_dir().to_str().unwrap()]);
    let rollback_total = now_ms() - start;
    let s = load.stop_any_rate();
    assert_eq!(out.status.code(), Some(0), "{}", common::transcript(&out));
    let lines = timeline(timeline_file.path());
    let last_new = lines
        .iter()
        .filter(|(_, ver)| ver == "1.1.0")
        .map(|(t, _)| *t)
        .max()
        .unwrap_or(0);
    json!({
        "router": name(kind),
        "rollback_to_100pct_stable_ms": last_new.saturating_sub(start),
        "rollback_command_total_ms": rollback_total,
        "failed": s.failed,
        "requests": s.requests,
    })
}

/// The bad canary (half of 1.1.0's answers 500) at 10% under 150 requests/s, with a pause of
/// `pause` and the gate's default `min_requests` (20): background analysis during the pause.
fn bad_canary_run(kind: Kind, pause: &str) -> Value {
    let (failed, back_ms, pause_ms) = e2e::bad_canary_in_a_pause(kind, pause, 20);
    json!({
        "router": name(kind),
        "bad_canary_pause": pause,
        "failed": failed,
        "stable_again_after_first_failure_ms": back_ms,
        "pause_ran_ms": pause_ms,
    })
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted. RELEASE_BENCH=bad-canary runs
    // only the bad-canary cases.
    let only_bad = std::env::var("RELEASE_BENCH").is_ok_and(|v| v == "bad-canary");
    let mut results = Vec::new();
    for kind in [Kind::Haproxy, Kind::Nginx] {
        for pause in ["5s", "30s", "2m"] {
            let v = bad_canary_run(kind, pause);
            println!("{v}");
            results.push(v);
        }
        if only_bad {
            continue;
        }
        for strategy in ["canary", "blue-green", "rolling", "recreate"] {
            let v = strategy_run(kind, strategy);
            println!("{v}");
            results.push(v);
        }
        let v = rollback_run(kind);
        println!("{v}");
        results.push(v);
    }
    let out = common::root().join("bench/out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("release.json"),
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .unwrap();
    println!("\nrouter   strategy     requests  failed (GET/POST)  notes");
    for r in &results {
        if let Some(pause) = r.get("bad_canary_pause") {
            println!(
                "{:<8} bad canary, pause {pause}: {} failed; 100% on 1.0.0 {} ms after the first \
                 failure; the pause ran {} ms",
                r["router"].as_str().unwrap(),
                r["failed"],
                r["stable_again_after_first_failure_ms"],
                r["pause_ran_ms"]
            );
            continue;
        }
        let notes = if let Some(ms) = r.get("rollback_to_100pct_stable_ms") {
            format!(
                "rollback: 100% on 1.0.0 {ms} ms after `cutover rollback` started (command total {} \
                 ms)",
                r["rollback_command_total_ms"]
            )
        } else if let Some(ms) = r.get("switch_step_ms") {
            format!(
                "switch step {ms} ms; both versions answered for {} ms",
                r["both_versions_answered_ms"]
            )
        } else if let Some(d) = r.get("downtime_window_s") {
            format!(
                "downtime window {d} s; worst latency {} ms",
                r["max_latency_ms"]
            )
        } else {
            String::new()
        };
        println!(
            "{:<8} {:<12} {:>8}  {:>6} ({}/{})  {notes}",
            r["router"].as_str().unwrap(),
            r.get("strategy")
                .and_then(Value::as_str)
                .unwrap_or("rollback"),
            r["requests"],
            r["failed"],
            r.get("failed_get").unwrap_or(&json!("-")),
            r.get("failed_post").unwrap_or(&json!("-"))
        );
    }
}
