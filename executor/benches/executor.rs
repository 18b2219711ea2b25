//! Executor benchmarks (not tests): durable append rate beside the disk's raw write+fdatasync
//! rate, replay of a 1,000,000-event log, and the runner's per-step overhead on 10,000 no-op
//! steps (one wide DAG, one deep chain). Run with `bench/executor-bench.sh`.

use cutover_executor::driver::{Drivers, StepContext};
use cutover_executor::event::Event;
use cutover_executor::log::{FORMAT_VERSION, Header, LogWriter, read_log};
use cutover_executor::redact::Redactor;
use cutover_executor::report::Silent;
use cutover_executor::runner::{RunOptions, Session};
use cutover_executor::state::RunState;
use cutover_executor::store::lock_run;
use cutover_planner::dag::{Builder, Params, PauseParams, Plan, PreflightParams, Step};
use cutover_planner::duration::Duration;
use cutover_planner::spec::OnFailure;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

fn header(id: &str) -> Header {
    Header {
        format_version: FORMAT_VERSION,
        run_id: id.into(),
        plan_hash: "bench".into(),
        dry_run: false,
    }
}

fn raw_fdatasync_rate(dir: &std::path::Path, n: usize) -> f64 {
    let mut f = std::fs::File::create(dir.join("raw")).unwrap();
    let buf = [b'x'; 200];
    let t = Instant::now();
    for _ in 0..n {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn append_rate(dir: &std::path::Path, n: usize) -> f64 {
    let mut w = LogWriter::create(&dir.join("append.log"), &header("append")).unwrap();
    let t = Instant::now();
    for i in 0..n {
        w.append(Event::StepSucceeded {
            step: format!("command/step-{i}"),
            undo: serde_json::json!({"undo": ["true"]}),
            detail: None,
        })
        .unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn replay(dir: &std::path::Path) {
    let path = dir.join("big.log");
    let steps = 1000;
    let mut w = LogWriter::create(&path, &header("big")).unwrap();
    let step_hashes: Vec<(String, String)> = (0..steps)
        .map(|i| (format!("command/s{i}"), "0123456789abcdef".to_string()))
        .collect();
    w.append_unsynced(Event::RunStarted(Box::new(
        cutover_executor::event::RunStarted {
            run_id: "big".into(),
            plan_hash: "bench".into(),
            step_hashes,
            release: "bench".into(),
            spec_path: "spec.toml".into(),
            spec_abs: "/spec.toml".into(),
            tool_version: "0".into(),
            user: "bench".into(),
            host: "bench".into(),
            dry_run: false,
            hold: false,
        },
    )))
    .unwrap();
    let mut n = 1u64;
    // 1,000 steps each failing and retrying 500 times: 999,999 more events.
    'outer: for attempt in 1..=500u32 {
        for i in 0..steps {
            let step = format!("command/s{i}");
            w.append_unsynced(Event::StepStarted {
                step: step.clone(),
                attempt,
            })
            .unwrap();
            w.append_unsynced(Event::StepFailed {
                step,
                error: "exit status 1".into(),
            })
            .unwrap();
            n += 2;
            if n >= 1_000_000 {
                break 'outer;
            }
        }
    }
    drop(w);
    let size = std::fs::metadata(&path).unwrap().len();
    let t = Instant::now();
    let contents = read_log(&path).unwrap();
    let read = t.elapsed();
    let t = Instant::now();
    let state = RunState::replay(&contents.header, &contents.records).unwrap();
    let replay = t.elapsed();
    assert_eq!(state.events, contents.records.len() as u64);
    println!(
        "replay of {} events ({:.0} MiB): read+verify {:.0} ms, replay {:.0} ms, total {:.0} ms",
        contents.records.len(),
        size as f64 / 1048576.0,
        read.as_secs_f64() * 1000.0,
        replay.as_secs_f64() * 1000.0,
        (read + replay).as_secs_f64() * 1000.0
    );
}

fn noop_plan(n: usize, deep: bool) -> Plan {
    let mut b = Builder::default();
    let root = b.add(
        step(
            "preflight".into(),
            Params::Preflight(PreflightParams {
                databases: vec![],
                services: vec![],
                images: vec![],
                upstreams: Default::default(),
                shifts: vec![],
                router: None,
                secret_env: vec![],
                programs: vec![],
            }),
        ),
        &[],
    );
    let mut prev = root;
    for i in 0..n {
        let s = step(
            format!("pause/n{i}"),
            Params::Pause(PauseParams {
                service: "bench".into(),
                duration: Some(Duration::from_millis(0)),
                watch: None,
            }),
        );
        prev = b.add(s, &[if deep { prev } else { root }]);
    }
    let (graph, hash) = b.finish();
    Plan {
        release: "bench".into(),
        strategies: BTreeMap::new(),
        graph,
        hash,
        downtime: None,
        findings: vec![],
        migrations: vec![],
        hold: false,
    }
}

fn step(id: String, params: Params) -> Step {
    Step {
        id,
        phase: None,
        depends_on: vec![],
        description: String::new(),
        idempotent: true,
        reversible: true,
        undo: String::new(),
        params,
        hash: String::new(),
    }
}

fn runner(dir: &std::path::Path, n: usize, deep: bool, fsync_s: f64) {
    let plan = noop_plan(n, deep);
    let run_dir = dir.join(if deep { "deep" } else { "wide" });
    std::fs::create_dir_all(&run_dir).unwrap();
    let hdr = Header {
        format_version: FORMAT_VERSION,
        run_id: "r".into(),
        plan_hash: plan.hash.clone(),
        dry_run: false,
    };
    let log = LogWriter::create(&run_dir.join("events.log"), &hdr).unwrap();
    let lock = lock_run(&run_dir, "apply").unwrap();
    let state = RunState::replay(&hdr, &[]).unwrap();
    let mut session = Session::new(
        run_dir.clone(),
        plan,
        state,
        cutover_executor::sink::Sink::File { writer: log, lock },
        Box::new(Silent),
    );
    let step_hashes = session
        .plan
        .steps()
        .map(|s| (s.id.clone(), s.hash.clone()))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(session.emit(Event::RunStarted(Box::new(
        cutover_executor::event::RunStarted {
            run_id: "r".into(),
            plan_hash: session.plan.hash.clone(),
            step_hashes,
            release: "bench".into(),
            spec_path: "-".into(),
            spec_abs: "-".into(),
            tool_version: "0".into(),
            user: "b".into(),
            host: "b".into(),
            dry_run: false,
            hold: false,
        },
    ))))
    .unwrap();
    let opts = RunOptions {
        jobs: 4,
        on_failure: OnFailure::Pause,
        ctx: StepContext::new(
            run_dir.clone(),
            run_dir.clone(),
            Arc::new(Redactor::default()),
        ),
        restore_backup: false,
    };
    let drivers = Drivers::builtin();
    let t = Instant::now();
    let r = rt.block_on(session.forward(&drivers, &opts)).unwrap();
    let total = t.elapsed().as_secs_f64();
    assert_eq!(r.outcome, cutover_executor::event::Outcome::Succeeded);
    let events = session.state.events as f64;
    let per_step = total / (n + 1) as f64;
    let beyond = (total - events * fsync_s) / (n + 1) as f64;
    println!(
        "  runner, {} DAG of {n} no-op steps: {:.2} s total, {:.0} µs per step, {:.0} µs of it \
         beyond its 2 fsync'ed events",
        if deep { "deep (chain)" } else { "wide" },
        total,
        per_step * 1e6,
        beyond * 1e6
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if std::env::var("PARSE_ONLY").is_ok() {
        parse_speed();
        return;
    }
    let base = std::env::var("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = tempfile::tempdir_in(base).unwrap();
    // Disks are noisy: alternate the two measurements and compare medians.
    let (mut raws, mut apps) = (Vec::new(), Vec::new());
    for round in 0..7 {
        let sub = dir.path().join(format!("round{round}"));
        std::fs::create_dir_all(&sub).unwrap();
        raws.push(raw_fdatasync_rate(&sub, 500));
        apps.push(append_rate(&sub, 500));
    }
    let (raw, app) = (median(raws), median(apps));
    println!(
        "raw 200-byte write + fdatasync: {raw:.0}/s; durable event append: {app:.0}/s ({:.0}% of \
         raw; medians of 7 alternating rounds of 500)",
        app / raw * 100.0
    );
    replay(dir.path());
    let fsync_s = 1.0 / app;
    runner(dir.path(), 10_000, false, fsync_s);
    runner(dir.path(), 10_000, true, fsync_s);
    // On tmpfs fdatasync costs nothing: what is left is the runner's own work per step.
    if std::path::Path::new("/dev/shm").is_dir() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        println!("same on tmpfs (no fsync cost):");
        runner(shm.path(), 10_000, false, 0.0);
        runner(shm.path(), 10_000, true, 0.0);
    }
}

#[allow(dead_code)]
fn parse_speed() {
    let r = cutover_executor::event::Record {
        seq: 5,
        time: chrono::Utc::now(),
        event: Event::StepFailed {
            step: "command/s12".into(),
            error: "exit status 1".into(),
        },
    };
    let text = serde_json::to_vec(&r).unwrap();
    let t = Instant::now();
    for _ in 0..1_000_000 {
        let r: cutover_executor::event::Record = serde_json::from_slice(&text).unwrap();
        std::hint::black_box(r);
    }
    println!(
        "parse: {:?} per record ({} bytes)",
        t.elapsed() / 1_000_000,
        text.len()
    );
    let t = Instant::now();
    for _ in 0..1_000_000 {
        let r: serde_json::Value = serde_json::from_slice(&text).unwrap();
        std::hint::black_box(r);
    }
    println!("parse as Value: {:?} per record", t.elapsed() / 1_000_000);
}
