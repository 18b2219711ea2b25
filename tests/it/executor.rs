//! The executor end to end through the real binary: crash at every event and at every
//! side-effect gap, real SIGKILLs, the run lock, plan drift, failures, secrets, dry runs.
//!
//! The release is a spec of `command` steps that each append one line to `journal` (one atomic
//! `write`), with a probe (`grep -qx`) and an idempotent undo, so "every side effect happened
//! exactly once" is visible in the journal.

use crate::common::{Seeded, assert_no_panic, transcript};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

thread_local! {
    /// Set by the PostgreSQL test: scenarios then keep their events in that database.
    pub static LOG_URL: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Makes `dir`'s cutover invocations use the current test's log backend.
fn mark(dir: &Path) {
    if let Some(url) = LOG_URL.with(|u| u.borrow().clone()) {
        std::fs::write(dir.join(".log-url"), url).unwrap();
    }
}

/// A cutover command for `dir`, with its state dir and log backend.
fn command_for(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.current_dir(dir)
        .env("CUTOVER_STATE_DIR", dir.join(".cutover"))
        .env_remove("CUTOVER_CRASH_AFTER_EVENTS")
        .env_remove("CUTOVER_CRASH_AFTER_EFFECT")
        .env_remove("CUTOVER_LOG_DATABASE_URL");
    if let Ok(url) = std::fs::read_to_string(dir.join(".log-url")) {
        cmd.env("CUTOVER_LOG_DATABASE_URL", url);
    }
    cmd
}

const STEPS: &[(&str, &str)] = &[
    ("a", "pre-migrate"),
    ("b", "pre-migrate"),
    ("c", "post-shift"),
    ("d", "post-release"),
];

fn command(name: &str, stage: &str, extra: &str) -> String {
    format!(
        "[[command]]\nname = \"{name}\"\nstage = \"{stage}\"\nargv = [\"sh\", \"-c\", \"{extra}echo \
         {name} >> journal\"]\nprobe = [\"sh\", \"-c\", \"test -e journal && grep -qx {name} \
         journal\"]\nundo = [\"sh\", \"-c\", \"grep -qx undo-{name} journal || echo undo-{name} >> \
         journal\"]\n\n"
    )
}

/// A release directory with its spec; `extra` runs before each step's write (e.g. a sleep).
fn release(extra: &str, on_failure: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = format!("[release]\nname = \"hooks\"\non_failure = \"{on_failure}\"\n\n");
    for (name, stage) in STEPS {
        spec += &command(name, stage, extra);
    }
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    mark(dir.path());
    dir
}

fn cutover(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command_for(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("cutover runs")
}

/// [`release`] (rollback on failure) applied to the end, and its run id.
fn applied_release() -> (tempfile::TempDir, String) {
    let dir = release("", "rollback");
    let out = cutover(dir.path(), &["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let run = run_id(dir.path());
    (dir, run)
}

fn run_id(dir: &Path) -> String {
    let mut ids: Vec<String> = std::fs::read_dir(dir.join(".cutover/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.pop().unwrap()
}

fn journal(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("journal"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn events(dir: &Path, run: &str) -> Vec<Value> {
    let out = cutover(dir, &["log", run, "--format", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The log replays cleanly: contiguous sequence numbers, and each step ends exactly once.
fn assert_clean_log(dir: &Path, run: &str, expect_compensated: bool) {
    let evs = events(dir, run);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
    }
    let ids: Vec<String> = std::iter::once("preflight".to_string())
        .chain(STEPS.iter().map(|(n, _)| format!("command/{n}")))
        .collect();
    for id in &ids {
        let ended = evs
            .iter()
            .filter(|e| {
                e["step"] == id.as_str()
                    && (e["type"] == "step_succeeded"
                        || (e["type"] == "step_probed" && e["outcome"] == "done"))
            })
            .count();
        assert_eq!(ended, 1, "{id} ended {ended} times:\n{evs:#?}");
        let undone = evs
            .iter()
            .filter(|e| e["step"] == id.as_str() && e["type"] == "compensation_succeeded")
            .count();
        assert_eq!(
            undone, expect_compensated as usize,
            "{id} compensated {undone} times"
        );
    }
    let status = cutover(dir, &["status", run, "--format", "json"], &[]);
    // `status` exits by the run's state (0, 3, 4 or 130), never as for an error (1).
    assert!(
        matches!(status.status.code(), Some(0 | 3 | 4 | 130)),
        "{}",
        transcript(&status)
    );
    let doc: Value = serde_json::from_slice(&status.stdout).unwrap();
    let want = if expect_compensated {
        "compensated"
    } else {
        "succeeded"
    };
    assert!(
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == want),
        "{doc:#}"
    );
}

fn forward_journal() -> Vec<String> {
    STEPS.iter().map(|(n, _)| n.to_string()).collect()
}

fn full_journal() -> Vec<String> {
    let mut j = forward_journal();
    j.extend(STEPS.iter().rev().map(|(n, _)| format!("undo-{n}")));
    j
}

/// Resumes until the run succeeds (a crash leaves it resumable; each resume gets further).
fn resume_to_end(dir: &Path, run: &str, verb: &str) {
    for _ in 0..20 {
        let out = cutover(dir, &[verb, run], &[]);
        assert_no_panic(&out);
        if out.status.code() == Some(0) {
            return;
        }
        // Only a crash (abort: signal) is acceptable on the way.
        assert_eq!(out.status.code(), None, "{verb}: {}", transcript(&out));
    }
    panic!("{verb} did not finish in 20 attempts");
}

pub fn an_uninterrupted_run_and_its_rollback() {
    let dir = release("", "rollback");
    let out = cutover(dir.path(), &["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(journal(dir.path()), forward_journal());
    let run = run_id(dir.path());
    assert_clean_log(dir.path(), &run, false);
    let out = cutover(dir.path(), &["rollback", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(journal(dir.path()), full_journal());
    assert_clean_log(dir.path(), &run, true);
}

/// `cutover log RUN | head` and friends: a reader that went away ends the output quietly.
pub fn a_closed_stdout_is_not_a_panic() {
    let dir = release("", "rollback");
    cutover(dir.path(), &["apply", "spec.toml"], &[]);
    let run = run_id(dir.path());
    for args in [
        vec!["log", run.as_str()],
        vec!["log", run.as_str(), "--format", "json"],
        vec!["status", run.as_str()],
        vec!["runs"],
    ] {
        let mut child = command_for(dir.path())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before the first line is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

fn total_events(verb_after_apply: bool) -> usize {
    let dir = release("", "rollback");
    cutover(dir.path(), &["apply", "spec.toml"], &[]);
    let run = run_id(dir.path());
    if verb_after_apply {
        cutover(dir.path(), &["rollback", &run], &[]);
    }
    events(dir.path(), &run).len()
}

pub fn crash_after_every_event_then_resume_gives_the_same_end_state() {
    let total = total_events(false);
    assert!(total >= 12, "{total}");
    for n in 1..=total {
        let dir = release("", "rollback");
        let n_s = n.to_string();
        let out = cutover(
            dir.path(),
            &["apply", "spec.toml"],
            &[("CUTOVER_CRASH_AFTER_EVENTS", &n_s)],
        );
        assert_no_panic(&out);
        let run = run_id(dir.path());
        if n < total {
            assert_eq!(
                out.status.code(),
                None,
                "crash at {n} did not abort: {}",
                transcript(&out)
            );
        }
        resume_to_end(dir.path(), &run, "resume");
        assert_eq!(
            journal(dir.path()),
            forward_journal(),
            "crash after event {n}"
        );
        assert_clean_log(dir.path(), &run, false);
    }
}

pub fn crashing_again_and_again_across_resumes() {
    // One run, killed over and over: each invocation (apply, then resumes) dies a few events
    // after the point the log had reached (the count runs from the start of the log, across
    // resumes, so N = events so far + 2..6 lands inside the invocation's own work). A resume
    // of a command step in doubt whose process the crash cut off writes five events to finish
    // it (attached, probed, started, progress, succeeded): with at most 4, a slow machine, on
    // which the cut-off process had not written its line yet, could crash at the same point
    // for ever and run out of rounds.
    let dir = release("", "rollback");
    let mut run: Option<String> = None;
    let mut crashes = 0;
    for k in 0..60 {
        let so_far = run.as_ref().map_or(0, |r| events(dir.path(), r).len());
        let n = (so_far + 2 + k % 5).to_string();
        let args: Vec<&str> = match &run {
            None => vec!["apply", "spec.toml"],
            Some(r) => vec!["resume", r.as_str()],
        };
        let out = cutover(dir.path(), &args, &[("CUTOVER_CRASH_AFTER_EVENTS", &n)]);
        assert_no_panic(&out);
        run = Some(run_id(dir.path()));
        match out.status.code() {
            Some(0) => break,
            None => crashes += 1,
            Some(c) => panic!("exit {c}: {}", transcript(&out)),
        }
    }
    assert!(crashes >= 5, "only {crashes} crashes");
    let run = run.unwrap();
    assert_eq!(
        journal(dir.path()),
        forward_journal(),
        "after {crashes} crashes; the log:\n{:#?}",
        kinds(dir.path(), &run)
    );
    assert_clean_log(dir.path(), &run, false);
}

pub fn crash_between_every_effect_and_its_success_event() {
    for id in std::iter::once("preflight".to_string())
        .chain(STEPS.iter().map(|(n, _)| format!("command/{n}")))
    {
        let dir = release("", "rollback");
        let out = cutover(
            dir.path(),
            &["apply", "spec.toml"],
            &[("CUTOVER_CRASH_AFTER_EFFECT", &id)],
        );
        assert_eq!(out.status.code(), None, "{id}: {}", transcript(&out));
        let run = run_id(dir.path());
        resume_to_end(dir.path(), &run, "resume");
        assert_eq!(
            journal(dir.path()),
            forward_journal(),
            "crash after the effect of {id}"
        );
        assert_clean_log(dir.path(), &run, false);
    }
}

pub fn a_rollback_interrupted_at_every_point_finishes_exactly_once() {
    let applied = total_events(false);
    let total = total_events(true);
    for n in applied + 1..=total {
        let (dir, run) = applied_release();
        let out = cutover(
            dir.path(),
            &["rollback", &run],
            &[("CUTOVER_CRASH_AFTER_EVENTS", &n.to_string())],
        );
        assert_no_panic(&out);
        resume_to_end(dir.path(), &run, "rollback");
        assert_eq!(
            journal(dir.path()),
            full_journal(),
            "rollback crashed after event {n}"
        );
        assert_clean_log(dir.path(), &run, true);
    }
    // And between every undo and its record.
    for (name, _) in STEPS {
        let (dir, run) = applied_release();
        let id = format!("command/{name}");
        let out = cutover(
            dir.path(),
            &["rollback", &run],
            &[("CUTOVER_CRASH_AFTER_EFFECT", &id)],
        );
        assert_eq!(out.status.code(), None, "{}", transcript(&out));
        resume_to_end(dir.path(), &run, "rollback");
        assert_eq!(
            journal(dir.path()),
            full_journal(),
            "crash after undoing {id}"
        );
        assert_clean_log(dir.path(), &run, true);
    }
}

pub fn sigkill_at_seeded_random_moments_then_resume() {
    let mut rng = Seeded(0x5eed_c0ff_ee00_0001);
    let mut killed_mid_run = 0;
    for round in 0..24 {
        // Each step sleeps a little so kills land before, during and after commands.
        let dir = release("sleep 0.05; ", "rollback");
        let child = command_for(dir.path())
            .args(["apply", "spec.toml", "--format", "quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(5 + rng.next() % 220));
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let status = child.wait_with_output().unwrap().status;
        if status.code().is_none() {
            killed_mid_run += 1;
        }
        // A kill before the run directory existed leaves nothing to resume: start over.
        let runs = dir.path().join(".cutover/runs");
        let mut status_seen = String::new();
        let started = std::fs::read_dir(&runs)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
            && {
                let status = cutover(
                    dir.path(),
                    &["status", &run_id(dir.path()), "--format", "json"],
                    &[],
                );
                status_seen = transcript(&status);
                status.status.code() != Some(1)
                    && serde_json::from_slice::<Value>(&status.stdout)
                        .is_ok_and(|d| !d["steps"].as_array().unwrap().is_empty())
            };
        if !started {
            // Nothing ran, or this round would start the release over on top of what did.
            assert!(
                journal(dir.path()).is_empty(),
                "round {round}: the run looks unstarted but steps ran: {:?}; status \
                 said:\n{status_seen}",
                journal(dir.path())
            );
            // Killed before the run's first event: nothing ran, and resume says so.
            if std::fs::read_dir(&runs)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
            {
                let out = cutover(dir.path(), &["resume", &run_id(dir.path())], &[]);
                assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
                let stderr = String::from_utf8_lossy(&out.stderr);
                // The run was created but got no event, or (PostgreSQL) not even its row.
                assert!(
                    stderr.contains("never started") || stderr.contains("no run"),
                    "{}",
                    transcript(&out)
                );
            }
            let _ = std::fs::remove_dir_all(dir.path().join(".cutover"));
            assert_eq!(
                cutover(dir.path(), &["apply", "spec.toml"], &[])
                    .status
                    .code(),
                Some(0)
            );
        }
        let run = run_id(dir.path());
        resume_to_end(dir.path(), &run, "resume");
        // The child's orphaned `sleep` cannot write; give any straggler a moment anyway.
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert_eq!(journal(dir.path()), forward_journal(), "round {round}");
        assert_clean_log(dir.path(), &run, false);
    }
    assert!(
        killed_mid_run >= 20,
        "only {killed_mid_run} of 24 kills hit a running apply"
    );
}

pub fn two_executors_on_one_run_then_kill_9_of_the_holder() {
    // The holder waits inside its first command until the file `go` exists.
    let dir = release("while [ ! -e go ]; do sleep 0.01; done; ", "rollback");
    let mut holder = command_for(dir.path())
        .args(["apply", "spec.toml", "--format", "quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run = wait_for_run(dir.path());
    let second = cutover(dir.path(), &["resume", &run], &[]);
    assert_eq!(second.status.code(), Some(1), "{}", transcript(&second));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("pid {}", holder.id())) && stderr.contains("cutover apply"),
        "the refusal must name the holder:\n{stderr}"
    );
    let status = cutover(dir.path(), &["status", &run, "--format", "json"], &[]);
    let doc: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["lock_holder"]["pid"], holder.id());
    // kill -9 the holder: the kernel drops the lock, and the next resume starts at once.
    unsafe { libc::kill(holder.id() as i32, libc::SIGKILL) };
    holder.wait().unwrap();
    std::fs::write(dir.path().join("go"), "").unwrap();
    let started = std::time::Instant::now();
    let out = cutover(dir.path(), &["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(journal(dir.path()), forward_journal());
    assert_clean_log(dir.path(), &run, false);
}

/// A run whose `apply` was killed by kill -9, then two `resume`s started together, many times:
/// exactly one proceeds, and the other's refusal names that one (its pid), never the dead apply
/// nor "another process". The winner's details are written only after it takes the lock, so the
/// loser must ask the kernel who holds it.
pub fn a_refusal_names_the_live_holder_never_a_dead_one() {
    let dir = release("sleep 0.05; ", "rollback");
    let (mut right, mut rounds) = (0, 0);
    for round in 0..12 {
        let _ = std::fs::remove_dir_all(dir.path().join(".cutover"));
        let _ = std::fs::remove_file(dir.path().join("journal"));
        let mut apply = command_for(dir.path())
            .args(["apply", "spec.toml", "--format", "quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it once its first command has started (its `step_started` is on disk).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let log = std::fs::read_dir(dir.path().join(".cutover/runs"))
                .ok()
                .and_then(|mut d| d.next())
                .map(|e| e.unwrap().path().join("events.log"));
            if log
                .and_then(|l| std::fs::read(l).ok())
                .is_some_and(|b| String::from_utf8_lossy(&b).contains("command/a"))
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let dead = apply.id();
        unsafe { libc::kill(dead as i32, libc::SIGKILL) };
        apply.wait().unwrap();
        let run = run_id(dir.path());
        let spawn = || {
            command_for(dir.path())
                .args(["resume", &run])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (r1, r2) = (spawn(), spawn());
        let (p1, p2) = (r1.id(), r2.id());
        let (o1, o2) = (
            r1.wait_with_output().unwrap(),
            r2.wait_with_output().unwrap(),
        );
        assert_no_panic(&o1);
        assert_no_panic(&o2);
        let (winner, loser) = match (o1.status.code(), o2.status.code()) {
            (Some(0), Some(1)) => (p1, &o2),
            (Some(1), Some(0)) => (p2, &o1),
            // Each resume runs for 0.15 s at least: both proceeding means the lock failed.
            (Some(0), Some(0)) => panic!(
                "round {round}: both resumes proceeded:\n{}\n{}",
                transcript(&o1),
                transcript(&o2)
            ),
            _ => panic!("round {round}:\n{}\n{}", transcript(&o1), transcript(&o2)),
        };
        rounds += 1;
        let stderr = String::from_utf8_lossy(&loser.stderr);
        assert!(
            !stderr.contains(&format!("pid {dead} ")) && !stderr.contains(&format!("pid {dead})")),
            "round {round}: the refusal names the killed apply {dead}:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("pid {winner} ")),
            "round {round}: the refusal does not name the holder {winner}:\n{stderr}"
        );
        assert!(stderr.contains("hint: wait for pid"), "{stderr}");
        right += 1;
    }
    assert_eq!(right, rounds);
}

/// A holder whose details are missing (holder.json removed, or a dead holder's left behind) is
/// named by the kernel's pid and its command line, never by the file's stale pid.
pub fn a_holder_without_details_is_named_by_the_kernel() {
    let dir = release("while [ ! -e go ]; do sleep 0.01; done; ", "rollback");
    let mut holder = command_for(dir.path())
        .args(["apply", "spec.toml", "--format", "quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run = wait_for_run(dir.path());
    let file = dir
        .path()
        .join(".cutover/runs")
        .join(&run)
        .join("holder.json");
    for stale in [
        None,
        Some(r#"{"pid":1,"host":"elsewhere","since":"2020-01-01T00:00:00Z","command":"apply"}"#),
    ] {
        match stale {
            Some(text) => std::fs::write(&file, text).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        let out = cutover(dir.path(), &["resume", &run], &[]);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("is held by pid {} (`", holder.id()))
                && stderr.contains("apply spec.toml")
                && stderr.contains("has not written its details yet"),
            "{stale:?}:\n{stderr}"
        );
        assert!(
            !stderr.contains("pid 1 ")
                && stderr.contains(&format!("hint: wait for pid {}", holder.id())),
            "{stderr}"
        );
        let status = cutover(dir.path(), &["status", &run, "--format", "json"], &[]);
        let doc: Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_eq!(doc["lock_holder"]["pid"], holder.id(), "{doc:#}");
    }
    unsafe { libc::kill(holder.id() as i32, libc::SIGKILL) };
    holder.wait().unwrap();
    // Nobody holds the run now: status names no one, though holder.json still names pid 1.
    let status = cutover(dir.path(), &["status", &run, "--format", "json"], &[]);
    let doc: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(doc["lock_holder"].is_null(), "{doc:#}");
}

fn wait_for_run(dir: &Path) -> String {
    for _ in 0..500 {
        if let Ok(mut d) = std::fs::read_dir(dir.join(".cutover/runs"))
            && let Some(e) = d.next()
        {
            let p: PathBuf = e.unwrap().path();
            if p.join("plan.json").exists() {
                // Wait until the first command has started (the lock is surely held).
                std::thread::sleep(std::time::Duration::from_millis(100));
                return p.file_name().unwrap().to_string_lossy().into_owned();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("no run appeared");
}

pub fn resume_refuses_an_edited_spec_naming_the_changed_step() {
    let dir = release("", "rollback");
    let out = cutover(
        dir.path(),
        &["apply", "spec.toml"],
        &[("CUTOVER_CRASH_AFTER_EFFECT", "command/b")],
    );
    assert_eq!(out.status.code(), None);
    let run = run_id(dir.path());
    let spec = std::fs::read_to_string(dir.path().join("spec.toml")).unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        spec.replace("echo c >> journal", "echo C >> journal"),
    )
    .unwrap();
    let out = cutover(dir.path(), &["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("command/c (changed)"), "{stderr}");
    assert!(!stderr.contains("command/a (changed)"), "{stderr}");
    // Restoring the spec lets it continue.
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    assert_eq!(
        cutover(dir.path(), &["resume", &run], &[]).status.code(),
        Some(0)
    );
    assert_eq!(journal(dir.path()), forward_journal());
}

pub fn a_failed_step_rolls_back_what_was_done() {
    let dir = release("", "rollback");
    let spec = std::fs::read_to_string(dir.path().join("spec.toml")).unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        spec.replace("echo c >> journal", "echo c-fails >&2; exit 7"),
    )
    .unwrap();
    let out = cutover(dir.path(), &["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("step `command/c` failed")
            && stderr.contains("status 7")
            && stderr.contains("c-fails"),
        "{stderr}"
    );
    assert_eq!(journal(dir.path()), vec!["a", "b", "undo-b", "undo-a"]);
}

pub fn a_paused_run_resumes_after_the_cause_is_fixed() {
    let dir = release("", "pause");
    let spec = std::fs::read_to_string(dir.path().join("spec.toml")).unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        spec.replace(
            "\"sh\", \"-c\", \"echo c >> journal\"",
            "\"sh\", \"-c\", \"test -e fixed && echo c >> journal\"",
        ),
    )
    .unwrap();
    let out = cutover(dir.path(), &["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    let run = run_id(dir.path());
    let status = cutover(dir.path(), &["status", &run, "--format", "json"], &[]);
    let doc: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["outcome"], "paused");
    std::fs::write(dir.path().join("fixed"), "").unwrap();
    let out = cutover(dir.path(), &["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(journal(dir.path()), forward_journal());
}

/// [`release`] whose step `c` cannot be undone (no `undo`): the point of no return.
fn release_with_pivot(release_table_extra: &str) -> tempfile::TempDir {
    let dir = release("", "rollback");
    let path = dir.path().join("spec.toml");
    let spec = std::fs::read_to_string(&path).unwrap();
    let undo_c = "undo = [\"sh\", \"-c\", \"grep -qx undo-c journal || echo undo-c >> journal\"]\n";
    assert!(spec.contains(undo_c));
    let spec = spec.replace(undo_c, "").replace(
        "on_failure = \"rollback\"\n",
        &format!("on_failure = \"rollback\"\n{release_table_extra}"),
    );
    std::fs::write(&path, spec).unwrap();
    dir
}

fn kinds(dir: &Path, run: &str) -> Vec<String> {
    events(dir, run)
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub fn a_hold_stops_before_the_point_of_no_return_until_promoted() {
    let dir = release_with_pivot("");
    let out = cutover(dir.path(), &["apply", "spec.toml", "--hold"], &[]);
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        text.contains("hold before `command/c`") && text.contains("cutover promote"),
        "{text}"
    );
    assert_eq!(journal(dir.path()), ["a", "b"]);
    let run = run_id(dir.path());
    let status = cutover(dir.path(), &["status", &run, "--format", "json"], &[]);
    assert_eq!(status.status.code(), Some(5), "{}", transcript(&status));
    let doc: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["gate"]["kind"], "hold", "{doc}");
    assert_eq!(doc["gate"]["step"], "command/c", "{doc}");
    assert!(doc["paused_at"].is_string(), "{doc}");
    let status = cutover(dir.path(), &["status", &run], &[]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("paused since") && text.contains("ago)"),
        "{text}"
    );
    // A resume does not pass the gate: it stops there again, having run nothing.
    let out = cutover(dir.path(), &["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(5), "{}", transcript(&out));
    assert_eq!(journal(dir.path()), ["a", "b"]);
    let out = cutover(dir.path(), &["promote", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(journal(dir.path()), forward_journal());
    let promoted: Vec<Value> = events(dir.path(), &run)
        .into_iter()
        .filter(|e| e["type"] == "promoted")
        .collect();
    assert_eq!(promoted.len(), 1, "{promoted:?}");
    assert_eq!(promoted[0]["gate"]["step"], "command/c");
    assert!(promoted[0]["user"].is_string());
    // Nothing waits at a gate now: refused, and the log is left as it was.
    let before = kinds(dir.path(), &run);
    let out = cutover(dir.path(), &["promote", &run], &[]);
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("does not wait at a gate") && text.contains("hint:"),
        "{text}"
    );
    assert_eq!(kinds(dir.path(), &run), before);
}

pub fn a_run_aborted_at_its_hold_rolls_back_what_was_done() {
    let dir = release_with_pivot("hold = true\n");
    // The reviewer sees the hold in the plan, before any run: where it stops.
    let plan = cutover(dir.path(), &["plan", "spec.toml"], &[]);
    assert!(
        String::from_utf8_lossy(&plan.stdout)
            .contains("`[release] hold`: every run stops before `command/c`"),
        "{}",
        transcript(&plan)
    );
    let plan = cutover(dir.path(), &["plan", "spec.toml", "--format", "json"], &[]);
    let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(doc["hold"], true, "{doc:#}");
    assert_eq!(doc["point_of_no_return"], "command/c", "{doc:#}");
    let plan = cutover(
        dir.path(),
        &["plan", "spec.toml", "--format", "markdown"],
        &[],
    );
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("**Hold**: `[release] hold`"),
        "{}",
        transcript(&plan)
    );
    let out = cutover(dir.path(), &["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(5), "{}", transcript(&out));
    let run = run_id(dir.path());
    let out = cutover(dir.path(), &["abort", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(journal(dir.path()), ["a", "b", "undo-b", "undo-a"]);
    let started: Vec<Value> = events(dir.path(), &run)
        .into_iter()
        .filter(|e| e["type"] == "rollback_started")
        .collect();
    assert_eq!(
        started[0]["reason"], "aborted by the operator",
        "{started:?}"
    );
}

pub fn a_held_run_is_in_a_log_format_a_cutover_older_than_gates_refuses() {
    // A cutover older than gates ignores `hold` (and `paused.gate`): its `resume` would run the
    // step behind the hold without a promote. A run that can wait at a gate is written in a
    // format it refuses; a run without one stays readable by it.
    let format = |dir: &Path, run: &str| {
        let log = dir.join(".cutover/runs").join(run).join("events.log");
        cutover_executor::log::read_log(&log)
            .unwrap()
            .header
            .format_version
    };
    let (plain, run) = applied_release();
    assert_eq!(
        format(plain.path(), &run),
        cutover_executor::log::FORMAT_VERSION
    );
    let dir = release_with_pivot("");
    let out = cutover(dir.path(), &["apply", "spec.toml", "--hold"], &[]);
    assert_eq!(out.status.code(), Some(5), "{}", transcript(&out));
    let run = run_id(dir.path());
    assert_eq!(
        format(dir.path(), &run),
        cutover_executor::log::GATED_FORMAT_VERSION
    );
    // `runs` tells a run waiting for a person from one stopped by a failure, and names the
    // step the hold keeps back.
    let runs = cutover(dir.path(), &["runs", "--format", "json"], &[]);
    let list: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(list[0]["state"], "awaiting promotion", "{list:#}");
    assert_eq!(list[0]["stopped_at"], "command/c", "{list:#}");
    let out = cutover(dir.path(), &["promote", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(journal(dir.path()), forward_journal());
}

pub fn a_crash_right_after_the_gate_is_recorded_leaves_the_run_at_the_gate() {
    let dir = release_with_pivot("");
    // Events: run_started, attached, preflight, a and b (started, progress, succeeded), then
    // `paused` at the hold: the crash comes before `run_finished`.
    let out = cutover(
        dir.path(),
        &["apply", "spec.toml", "--hold"],
        &[("CUTOVER_CRASH_AFTER_EVENTS", "11")],
    );
    assert_eq!(out.status.code(), None, "{}", transcript(&out));
    let run = run_id(dir.path());
    assert_eq!(kinds(dir.path(), &run).last().unwrap(), "paused");
    let status = cutover(dir.path(), &["status", &run], &[]);
    let text = transcript(&status);
    assert_eq!(status.status.code(), Some(5), "{text}");
    assert!(text.contains("state: paused at a gate"), "{text}");
    let out = cutover(dir.path(), &["promote", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(journal(dir.path()), forward_journal());
}

pub fn a_hold_with_nothing_irreversible_says_it_will_not_stop() {
    // Every step has an undo: there is no point of no return to stop before. The run goes to
    // the end (a rollback undoes all of it), and says so rather than ignore `--hold` silently.
    let dir = release("", "rollback");
    let out = cutover(dir.path(), &["apply", "spec.toml", "--hold"], &[]);
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("the hold has nothing to stop before"),
        "{text}"
    );
    assert_eq!(journal(dir.path()), forward_journal());
}

pub fn a_hold_says_what_is_true_whatever_ran_before_it() {
    // The first step cannot be undone: nothing was deployed, so "the old and the new version
    // both work now" would be false (as it is for a recreate, whose old version is stopped).
    let dir = release("", "rollback");
    let path = dir.path().join("spec.toml");
    let spec = std::fs::read_to_string(&path).unwrap();
    let undo_a = "undo = [\"sh\", \"-c\", \"grep -qx undo-a journal || echo undo-a >> journal\"]\n";
    assert!(spec.contains(undo_a));
    std::fs::write(&path, spec.replace(undo_a, "")).unwrap();
    let out = cutover(dir.path(), &["apply", "spec.toml", "--hold"], &[]);
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(journal(dir.path()).is_empty(), "{text}");
    assert!(
        text.contains("hold before `command/a`")
            && text.contains("what ran before it can still be rolled back")
            && !text.contains("both work"),
        "{text}"
    );
}

pub fn a_hold_inside_a_recreate_downtime_window_is_refused() {
    // Recreate stops the old version, migrates (contract included), then starts the new one: a
    // hold before the contract migration would stop the run with nothing serving, until promote.
    let dir = tempfile::tempdir().unwrap();
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations-sample/app");
    let spec = format!(
        "[release]\nname = \"rc\"\nhold = true\n\n[[service]]\nname = \"api\"\nimage = \
         \"api\"\ncurrent = \"1.0.0\"\ntarget = \"1.1.0\"\nport = 3333\n\n\
         [service.strategy]\nkind = \"recreate\"\n\n[[database]]\nname = \"main\"\nurl_env = \
         \"DATABASE_URL\"\nmigrations = \"{}\"\nbaseline = 1\n",
        migrations.display()
    );
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    for args in [
        &["apply", "spec.toml"][..],
        &["apply", "spec.toml", "--dry-run"],
    ] {
        let out = cutover(dir.path(), args, &[]);
        let text = transcript(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains("inside the downtime window")
                && text.contains("migrate/contract/V7__drop_users_legacy_flags"),
            "{text}"
        );
        assert!(!dir.path().join(".cutover/runs").exists(), "{text}");
    }
}

pub fn promote_again_after_a_crash_past_the_promote_points_to_resume() {
    let dir = release_with_pivot("");
    let out = cutover(dir.path(), &["apply", "spec.toml", "--hold"], &[]);
    assert_eq!(out.status.code(), Some(5), "{}", transcript(&out));
    let run = run_id(dir.path());
    // Events 13 and 14 are the promote's `attached` and `promoted`: it dies right after.
    let out = cutover(
        dir.path(),
        &["promote", &run],
        &[("CUTOVER_CRASH_AFTER_EVENTS", "14")],
    );
    assert_eq!(out.status.code(), None, "{}", transcript(&out));
    assert_eq!(kinds(dir.path(), &run).last().unwrap(), "promoted");
    let out = cutover(dir.path(), &["promote", &run], &[]);
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("`cutover resume {run}` continues it")),
        "{text}"
    );
    let out = cutover(dir.path(), &["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(journal(dir.path()), forward_journal());
}

pub fn promote_while_the_run_is_running_says_so() {
    let dir = release("sleep 1; ", "rollback");
    let mut apply = command_for(dir.path())
        .args(["apply", "spec.toml", "--hold"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // The run directory comes a moment before its events.log: wait for the log itself.
    let has_log = |d: &Path| {
        d.join(".cutover/runs").exists()
            && d.join(".cutover/runs")
                .join(run_id(d))
                .join("events.log")
                .exists()
    };
    while !has_log(dir.path())
        || !kinds(dir.path(), &run_id(dir.path()))
            .iter()
            .any(|k| k == "step_started")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let run = run_id(dir.path());
    let out = cutover(dir.path(), &["promote", &run], &[]);
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("it is running now") && !text.contains("cutover resume"),
        "{text}"
    );
    assert_eq!(apply.wait().unwrap().code(), Some(0));
}

pub fn abort_refuses_a_run_that_already_succeeded() {
    // `abort` stops a release in flight (Argo's abort); `cutover abort latest` typed after the
    // release finished must not roll the finished release back.
    let (dir, run) = applied_release();
    let before = kinds(dir.path(), &run);
    let out = cutover(dir.path(), &["abort", &run], &[]);
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("already succeeded") && text.contains("cutover rollback"),
        "{text}"
    );
    assert_eq!(journal(dir.path()), forward_journal());
    assert_eq!(kinds(dir.path(), &run), before);
}

pub fn status_watch_follows_a_promote_run_by_another_process() {
    let dir = release_with_pivot("");
    let path = dir.path().join("spec.toml");
    let spec = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        spec.replace("\"echo c >> journal\"", "\"sleep 2; echo c >> journal\""),
    )
    .unwrap();
    let out = cutover(dir.path(), &["apply", "spec.toml", "--hold"], &[]);
    assert_eq!(out.status.code(), Some(5), "{}", transcript(&out));
    let run = run_id(dir.path());
    let promote = command_for(dir.path())
        .args(["promote", &run])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the promote is recorded, its process holds the run while `c` sleeps.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !kinds(dir.path(), &run).iter().any(|k| k == "promoted") {
        assert!(
            std::time::Instant::now() < deadline,
            "the promote was never recorded"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let watch = cutover(dir.path(), &["status", &run, "--watch"], &[]);
    let text = transcript(&watch);
    assert_eq!(watch.status.code(), Some(0), "{text}");
    assert!(
        text.contains("in progress") && text.contains("state: succeeded"),
        "{text}"
    );
    let promoted = promote.wait_with_output().unwrap();
    assert_eq!(promoted.status.code(), Some(0), "{}", transcript(&promoted));
    assert_eq!(journal(dir.path()), forward_journal());
}

pub fn a_step_in_doubt_without_probe_stops_the_resume_and_retry_continues() {
    let dir = release("", "rollback");
    let spec = std::fs::read_to_string(dir.path().join("spec.toml")).unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        spec.replace(
            "probe = [\"sh\", \"-c\", \"test -e journal && grep -qx b journal\"]\n",
            "",
        ),
    )
    .unwrap();
    // Events: run_started, attached, preflight started and succeeded, command/a started, its
    // process group (progress), succeeded, command/b started: the crash leaves b in doubt.
    let out = cutover(
        dir.path(),
        &["apply", "spec.toml"],
        &[("CUTOVER_CRASH_AFTER_EVENTS", "8")],
    );
    assert_eq!(out.status.code(), None);
    let run = run_id(dir.path());
    let evs = events(dir.path(), &run);
    assert_eq!(evs.last().unwrap()["type"], "step_started");
    assert_eq!(evs.last().unwrap()["step"], "command/b");
    let out = cutover(dir.path(), &["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`command/b` started but its end was not recorded")
            && stderr.contains("--retry command/b"),
        "{stderr}"
    );
    let out = cutover(dir.path(), &["resume", &run, "--retry", "command/b"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(journal(dir.path()), forward_journal());
}

pub fn secrets_never_reach_the_log_or_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "[release]\nname = \"secret\"\n\n[[command]]\nname = \"leak\"\nstage \
                = \"pre-migrate\"\nsecret_env = [\"API_TOKEN\"]\nargv = [\"sh\", \"-c\", \"echo \
                token=$API_TOKEN url=postgres://app:hunter2-pw@db/app >&2; exit 3\"]\n";
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    mark(dir.path());
    let out = cutover(
        dir.path(),
        &["apply", "spec.toml"],
        &[("API_TOKEN", "tok-9f8e7d6c5b")],
    );
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("token=[redacted]") && all.contains("postgres://app:[redacted]@db/app"),
        "{all}"
    );
    let run = run_id(dir.path());
    let log = match std::fs::read(
        dir.path()
            .join(".cutover/runs")
            .join(&run)
            .join("events.log"),
    ) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        // PostgreSQL backend: what the database holds, through `cutover log`.
        Err(_) => String::from_utf8_lossy(
            &cutover(dir.path(), &["log", &run, "--format", "json"], &[]).stdout,
        )
        .into_owned(),
    };
    assert!(
        !log.contains("tok-9f8e7d6c5b") && !log.contains("hunter2-pw"),
        "a secret reached the log"
    );
    assert!(log.contains("[redacted]"));
    let status = cutover(
        dir.path(),
        &["status", &run],
        &[("API_TOKEN", "tok-9f8e7d6c5b")],
    );
    assert!(!String::from_utf8_lossy(&status.stdout).contains("tok-9f8e7d6c5b"));
}

/// `apply --dry-run` checks the world for real: without `DATABASE_URL` it fails at preflight,
/// says nothing was changed (no rollback), and its log is marked dry-run; a real apply stops at
/// the same place the same way. (The walk through a whole release that passes preflight is in
/// the end-to-end tests, against a real database, images and router.)
pub fn dry_run_walks_the_seed_release_and_writes_a_marked_log() {
    let root = crate::common::root();
    let state = tempfile::tempdir().unwrap();
    for dry in [true, false] {
        let mut args = vec!["apply", "plans/canary-rename.toml"];
        if dry {
            args.push("--dry-run");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(&args)
            .arg("--state-dir")
            .arg(state.path())
            .current_dir(&root)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("step `preflight` failed: environment variable `DATABASE_URL`")
                && stderr.contains("nothing was changed")
                && !stderr.contains("rolled back"),
            "{}",
            transcript(&out)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains("rolling back") && stdout.contains("finished: failed"),
            "{stdout}"
        );
        assert_eq!(
            stdout.contains("(dry run: nothing is changed)"),
            dry,
            "{stdout}"
        );
    }
    for run in std::fs::read_dir(state.path().join("runs")).unwrap() {
        let status = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["status", "--format", "json"])
            .arg(run.unwrap().path())
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_eq!(doc["outcome"], "failed", "{doc:#}");
        let started: Vec<&Value> = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state"] != "pending")
            .collect();
        assert_eq!(started.len(), 1, "only preflight ran: {doc:#}");
    }
}

pub fn a_torn_tail_is_cut_and_the_run_continues() {
    let dir = release("", "rollback");
    let out = cutover(
        dir.path(),
        &["apply", "spec.toml"],
        &[("CUTOVER_CRASH_AFTER_EFFECT", "command/c")],
    );
    assert_eq!(out.status.code(), None);
    let run = run_id(dir.path());
    let log = dir
        .path()
        .join(".cutover/runs")
        .join(&run)
        .join("events.log");
    // A half-written record at the end, as a crash mid-write leaves.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 9, 0, 0]);
    std::fs::write(&log, &bytes).unwrap();
    let status = cutover(dir.path(), &["status", &run], &[]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("torn record (7 bytes)"),
        "{}",
        transcript(&status)
    );
    let out = cutover(dir.path(), &["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("torn record"));
    assert_eq!(journal(dir.path()), forward_journal());
    assert_clean_log(dir.path(), &run, false);
    // Damage in the middle is refused, and nothing is changed.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[60] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    let out = cutover(dir.path(), &["rollback", &run], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the log is damaged at byte"),
        "{}",
        transcript(&out)
    );
    assert_eq!(std::fs::read(&log).unwrap(), bytes);
}

/// What a power loss leaves when the file's new size reached the disk before its bytes: zeros after
/// the last record, of any length. The resume cuts them off, keeps them in the file it names, and
/// the run finishes.
pub fn a_tail_of_zeros_is_cut_and_the_run_continues() {
    for zeros in [1, 17, 120, 4096] {
        let dir = release("", "rollback");
        let out = cutover(
            dir.path(),
            &["apply", "spec.toml"],
            &[("CUTOVER_CRASH_AFTER_EFFECT", "command/b")],
        );
        assert_eq!(out.status.code(), None, "{}", transcript(&out));
        let run = run_id(dir.path());
        let log = dir
            .path()
            .join(".cutover/runs")
            .join(&run)
            .join("events.log");
        let mut bytes = std::fs::read(&log).unwrap();
        let valid = bytes.len();
        bytes.resize(valid + zeros, 0);
        std::fs::write(&log, &bytes).unwrap();
        let status = cutover(dir.path(), &["status", &run], &[]);
        // Stopped before it finished: resumable (130), not an error.
        assert_eq!(
            status.status.code(),
            Some(130),
            "{zeros}: {}",
            transcript(&status)
        );
        assert!(
            String::from_utf8_lossy(&status.stdout)
                .contains(&format!("torn record ({zeros} bytes)")),
            "{zeros}: {}",
            transcript(&status)
        );
        let out = cutover(dir.path(), &["resume", &run], &[]);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(0), "{zeros}: {}", transcript(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("later record"), "{zeros}: {stderr}");
        // The notice names the file the zeros were kept in, and that file holds them.
        let kept = format!("{}.torn-{valid}", log.display());
        assert!(
            stderr.contains(&format!("torn record of {zeros} zero bytes"))
                && stderr.contains(&format!("kept in {kept}")),
            "{zeros}: {stderr}"
        );
        assert_eq!(std::fs::read(&kept).unwrap(), vec![0u8; zeros], "{zeros}");
        assert_eq!(journal(dir.path()), forward_journal(), "{zeros}");
        assert_clean_log(dir.path(), &run, false);
    }
}

pub fn ctrl_c_lets_the_running_step_finish_and_leaves_the_run_resumable() {
    for signals in [1, 2] {
        // Step a takes a while; the signal arrives while it runs.
        let dir = release("sleep 0.6; ", "rollback");
        let child = command_for(dir.path())
            .args(["apply", "spec.toml"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let run = wait_for_run(dir.path());
        // wait_for_run returns once the run exists; give step a time to start.
        std::thread::sleep(std::time::Duration::from_millis(200));
        for _ in 0..signals {
            unsafe { libc::kill(pid, libc::SIGINT) };
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(130),
            "{signals} signal(s): {}",
            transcript(&out)
        );
        let status = cutover(dir.path(), &["status", &run, "--format", "json"], &[]);
        let doc: Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_eq!(doc["outcome"], "interrupted");
        let a = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "command/a")
            .unwrap()
            .clone();
        if signals == 1 {
            // One signal: the running step finished and its end is recorded.
            assert_eq!(a["state"], "succeeded", "{doc:#}");
            assert_eq!(journal(dir.path()), vec!["a"]);
        } else {
            // Two: stopped at once; the step is left in doubt for resume to check.
            assert_eq!(a["state"], "started", "{doc:#}");
        }
        let out = cutover(dir.path(), &["resume", &run], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
        std::thread::sleep(std::time::Duration::from_millis(700));
        assert_eq!(
            journal(dir.path()),
            forward_journal(),
            "{signals} signal(s)"
        );
        assert_clean_log(dir.path(), &run, false);
    }
}

/// Every scenario with the file log.
mod files {
    #[test]
    fn a_hold_stops_before_the_point_of_no_return_until_promoted() {
        super::a_hold_stops_before_the_point_of_no_return_until_promoted();
    }

    #[test]
    fn a_run_aborted_at_its_hold_rolls_back_what_was_done() {
        super::a_run_aborted_at_its_hold_rolls_back_what_was_done();
    }

    #[test]
    fn abort_refuses_a_run_that_already_succeeded() {
        super::abort_refuses_a_run_that_already_succeeded();
    }

    #[test]
    fn promote_while_the_run_is_running_says_so() {
        super::promote_while_the_run_is_running_says_so();
    }

    #[test]
    fn promote_again_after_a_crash_past_the_promote_points_to_resume() {
        super::promote_again_after_a_crash_past_the_promote_points_to_resume();
    }

    #[test]
    fn a_hold_inside_a_recreate_downtime_window_is_refused() {
        super::a_hold_inside_a_recreate_downtime_window_is_refused();
    }

    #[test]
    fn a_hold_says_what_is_true_whatever_ran_before_it() {
        super::a_hold_says_what_is_true_whatever_ran_before_it();
    }

    #[test]
    fn a_hold_with_nothing_irreversible_says_it_will_not_stop() {
        super::a_hold_with_nothing_irreversible_says_it_will_not_stop();
    }

    #[test]
    fn a_crash_right_after_the_gate_is_recorded_leaves_the_run_at_the_gate() {
        super::a_crash_right_after_the_gate_is_recorded_leaves_the_run_at_the_gate();
    }

    #[test]
    fn a_held_run_is_in_a_log_format_a_cutover_older_than_gates_refuses() {
        super::a_held_run_is_in_a_log_format_a_cutover_older_than_gates_refuses();
    }

    #[test]
    fn status_watch_follows_a_promote_run_by_another_process() {
        super::status_watch_follows_a_promote_run_by_another_process();
    }

    #[test]
    fn a_closed_stdout_is_not_a_panic() {
        super::a_closed_stdout_is_not_a_panic();
    }

    #[test]
    fn ctrl_c_lets_the_running_step_finish_and_leaves_the_run_resumable() {
        super::ctrl_c_lets_the_running_step_finish_and_leaves_the_run_resumable();
    }

    #[test]
    fn an_uninterrupted_run_and_its_rollback() {
        super::an_uninterrupted_run_and_its_rollback();
    }

    #[test]
    fn crash_after_every_event_then_resume_gives_the_same_end_state() {
        super::crash_after_every_event_then_resume_gives_the_same_end_state();
    }

    #[test]
    fn crashing_again_and_again_across_resumes() {
        super::crashing_again_and_again_across_resumes();
    }

    #[test]
    fn crash_between_every_effect_and_its_success_event() {
        super::crash_between_every_effect_and_its_success_event();
    }

    #[test]
    fn a_rollback_interrupted_at_every_point_finishes_exactly_once() {
        super::a_rollback_interrupted_at_every_point_finishes_exactly_once();
    }

    #[test]
    fn sigkill_at_seeded_random_moments_then_resume() {
        super::sigkill_at_seeded_random_moments_then_resume();
    }

    #[test]
    fn two_executors_on_one_run_then_kill_9_of_the_holder() {
        super::two_executors_on_one_run_then_kill_9_of_the_holder();
    }

    #[test]
    fn resume_refuses_an_edited_spec_naming_the_changed_step() {
        super::resume_refuses_an_edited_spec_naming_the_changed_step();
    }

    #[test]
    fn a_refusal_names_the_live_holder_never_a_dead_one() {
        super::a_refusal_names_the_live_holder_never_a_dead_one();
    }

    #[test]
    fn a_holder_without_details_is_named_by_the_kernel() {
        super::a_holder_without_details_is_named_by_the_kernel();
    }

    #[test]
    fn a_failed_step_rolls_back_what_was_done() {
        super::a_failed_step_rolls_back_what_was_done();
    }

    #[test]
    fn a_paused_run_resumes_after_the_cause_is_fixed() {
        super::a_paused_run_resumes_after_the_cause_is_fixed();
    }

    #[test]
    fn a_step_in_doubt_without_probe_stops_the_resume_and_retry_continues() {
        super::a_step_in_doubt_without_probe_stops_the_resume_and_retry_continues();
    }

    #[test]
    fn secrets_never_reach_the_log_or_the_terminal() {
        super::secrets_never_reach_the_log_or_the_terminal();
    }

    #[test]
    fn dry_run_walks_the_seed_release_and_writes_a_marked_log() {
        super::dry_run_walks_the_seed_release_and_writes_a_marked_log();
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_run_continues() {
        super::a_torn_tail_is_cut_and_the_run_continues();
    }

    #[test]
    fn a_tail_of_zeros_is_cut_and_the_run_continues() {
        super::a_tail_of_zeros_is_cut_and_the_run_continues();
    }
}

/// The same scenarios with the PostgreSQL log, against a real server started for the test. The
/// file-only ones (a torn tail, the dry run of the seed) have no PostgreSQL counterpart: an
/// INSERT is never half-written.
#[test]
fn postgres_log_backend_passes_the_same_tests() {
    let cluster = crate::pg::Cluster::start();
    LOG_URL.with(|u| *u.borrow_mut() = Some(cluster.url()));
    an_uninterrupted_run_and_its_rollback();
    crash_after_every_event_then_resume_gives_the_same_end_state();
    crashing_again_and_again_across_resumes();
    crash_between_every_effect_and_its_success_event();
    a_rollback_interrupted_at_every_point_finishes_exactly_once();
    sigkill_at_seeded_random_moments_then_resume();
    two_executors_on_one_run_then_kill_9_of_the_holder();
    resume_refuses_an_edited_spec_naming_the_changed_step();
    a_failed_step_rolls_back_what_was_done();
    a_paused_run_resumes_after_the_cause_is_fixed();
    a_step_in_doubt_without_probe_stops_the_resume_and_retry_continues();
    secrets_never_reach_the_log_or_the_terminal();
    // cutover never updates or deletes a row of its log.
    let changed = cluster.psql(
        "SELECT n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname IN ('cutover_events', \
         'cutover_runs') ORDER BY relname",
    );
    assert_eq!(
        changed.lines().map(str::trim).collect::<Vec<_>>(),
        vec!["0", "0"],
        "rows were updated or deleted"
    );
    // A row altered behind cutover's back is refused, naming where (seq 8: `command/b` started).
    let (dir, run) = applied_release();
    cluster.psql(&format!(
        "UPDATE cutover_events SET payload = replace(payload, 'command/b', 'command/x') WHERE \
         run_id = '{run}' AND seq = 8"
    ));
    let out = cutover(dir.path(), &["status", &run], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("damaged at seq 8"),
        "{}",
        transcript(&out)
    );
    // A run recorded by a cutover before typed step data (plan format 1: its plan row names no
    // format) is refused by name, with the way out, and left as it is.
    let (dir, run) = applied_release();
    cluster.psql(&format!(
        "UPDATE cutover_runs SET plan = (plan::jsonb - 'plan_format')::text WHERE run_id = '{run}'"
    ));
    let before = cluster.psql(&format!(
        "SELECT md5(plan) FROM cutover_runs WHERE run_id = '{run}'"
    ));
    for verb in ["status", "resume", "rollback"] {
        let out = cutover(dir.path(), &[verb, &run], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{verb}: {}", transcript(&out));
        assert!(
            stderr.contains(&format!(
                "the recorded plan of {run} in the PostgreSQL log is in plan format 1; this cutover \
                 reads plan format 2 only"
            )) && stderr
                .contains("finish or roll back this run with the cutover version that started it"),
            "{verb}: {}",
            transcript(&out)
        );
    }
    assert_eq!(
        cluster.psql(&format!(
            "SELECT md5(plan) FROM cutover_runs WHERE run_id = '{run}'"
        )),
        before,
        "the recorded plan was left as it is"
    );
    LOG_URL.with(|u| *u.borrow_mut() = None);
}

/// `runs`, `status` and `log` with the PostgreSQL log only read: on a database that holds no
/// runs they say so, and create nothing (read-only privileges are enough).
#[test]
fn postgres_log_reading_commands_create_nothing() {
    let cluster = crate::pg::Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(args)
            .current_dir(dir.path())
            .env("CUTOVER_LOG_DATABASE_URL", cluster.url())
            .output()
            .unwrap()
    };
    let out = run(&["runs", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    for verb in ["status", "log"] {
        let out = run(&[verb, "20260101T000000Z-x-0000"]);
        assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("this database holds no cutover runs"),
            "{}",
            transcript(&out)
        );
    }
    assert_eq!(
        cluster.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'cutover%'"),
        "0"
    );
}

/// A hook program that cannot be started (missing, not executable, not in PATH) or a secret that
/// is not set fails the release at preflight, before the first hook ran, not at its own stage
/// after irreversible steps; the error names the command.
#[test]
fn hooks_that_cannot_start_are_refused_by_preflight() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "argv = [\"./missing.sh\"]",
            "",
            "command/late: `./missing.sh` does not exist",
        ),
        (
            "argv = [\"./plain.txt\"]",
            "",
            "command/late: `./plain.txt` is not an executable file",
        ),
        (
            "argv = [\"no-such-program-xyz\"]",
            "",
            "command/late: `no-such-program-xyz` is not found in PATH",
        ),
        (
            "argv = [\"true\"]\nundo = [\"./gone.sh\"]",
            "",
            "command/late (undo): `./gone.sh` does not exist",
        ),
        (
            "argv = [\"sh\", \"-c\", \"true\"]\nenv = { PATH = \"/nonexistent\" }",
            "",
            "command/late: `sh` is not found in PATH",
        ),
        (
            "argv = [\"true\"]\nsecret_env = [\"LATE_TOKEN_XYZ\"]",
            "",
            "not set: LATE_TOKEN_XYZ",
        ),
    ];
    for (late, _, needle) in cases {
        let dir = release("", "rollback");
        std::fs::write(dir.path().join("plain.txt"), "echo hi\n").unwrap();
        let spec = dir.path().join("spec.toml");
        let text = std::fs::read_to_string(&spec).unwrap();
        std::fs::write(
            &spec,
            format!(
                "{text}[[command]]\nname = \"late\"\nstage = \"post-release\"\n{late}\n{}\n",
                if late.contains("undo") {
                    ""
                } else {
                    "read_only = true"
                }
            ),
        )
        .unwrap();
        let out = cutover(dir.path(), &["apply", "spec.toml"], &[]);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(3), "{late}: {}", transcript(&out));
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            all.contains("step `preflight` failed") && all.contains(needle),
            "{late}: expected {needle:?} in:\n{all}"
        );
        assert_eq!(
            journal(dir.path()),
            Vec::<String>::new(),
            "{late}: a hook ran"
        );
    }
}
