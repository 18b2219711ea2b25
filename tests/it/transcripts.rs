//! What an operator sees, as insta transcripts: `apply` (a release that succeeds and one that
//! fails and rolls back), `status`, `log`, `runs` and `rollback --dry-run`, from the real binary
//! on a release of `command` steps (no database or container needed). Run ids, times,
//! durations, process ids and the host name change from run to run and are filtered out; all
//! else, including the exit code, is held to the snapshot.

use crate::common::transcript;
use std::path::Path;
use std::process::{Command, Output};

/// Two hooks, each appending its name to `journal`, with a probe and an idempotent undo; the
/// second runs `fail` first (empty: it succeeds).
fn release(fail: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = String::from("[release]\nname = \"hooks\"\non_failure = \"rollback\"\n\n");
    for (name, stage, extra) in [("a", "pre-migrate", ""), ("c", "post-shift", fail)] {
        spec += &format!(
            "[[command]]\nname = \"{name}\"\nstage = \"{stage}\"\nargv = \
             [\"sh\", \"-c\", \"{extra}echo {name} >> journal\"]\nprobe = [\"sh\", \"-c\", \"test \
             -e journal && grep -qx {name} journal\"]\nundo = [\"sh\", \"-c\", \"grep -qx \
             undo-{name} journal || echo undo-{name} >> journal\"]\n\n"
        );
    }
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    dir
}

fn cutover(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .current_dir(dir)
        .env("CUTOVER_STATE_DIR", dir.join(".cutover"))
        .env_remove("CUTOVER_LOG_DATABASE_URL")
        .env_remove("CUTOVER_CRASH_AFTER_EVENTS")
        .env_remove("CUTOVER_CRASH_AFTER_EFFECT")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("cutover runs")
}

fn only_run(dir: &Path) -> String {
    let ids: Vec<String> = std::fs::read_dir(dir.join(".cutover/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.into_iter().next().unwrap()
}

/// Snapshots `out` under `name`, with what changes between runs replaced by placeholders.
fn snapshot(name: &str, dir: &Path, out: &Output) {
    let dir = dir.display().to_string();
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&dir), "[DIR]");
    settings.add_filter(r"\d{8}T\d{6}Z-hooks-[0-9a-f]+", "[RUN]");
    settings.add_filter(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "[TIME]",
    );
    settings.add_filter(r"\b\d+\.\ds\b", "[SECS]");
    settings.add_filter(
        r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC \(\d+[smh] ago\)",
        "[TIME] ([AGO])",
    );
    settings.add_filter(r"(promoted `[^`]+`) by .+", "$1 by [USER]");
    settings.add_filter(r"plan [0-9a-f]{16} for", "plan [HASH] for");
    settings.add_filter(
        r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z  \S+( \d+)? +",
        "[STARTED]  [USER]  ",
    );
    settings.add_filter(r#""(pid|pgid|pgid_start)":\d+"#, "\"$1\":[N]");
    settings.add_filter(r"pid \d+", "pid [N]");
    settings.add_filter(r#""host":"[^"]*""#, "\"host\":[HOST]");
    settings.bind(|| insta::assert_snapshot!(name, transcript(out)));
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

#[test]
fn a_release_that_succeeds_as_the_operator_sees_it() {
    let dir = release("");
    let d = dir.path();
    let apply = cutover(d, &["apply", "spec.toml"]);
    assert_eq!(apply.status.code(), Some(0), "{}", transcript(&apply));
    snapshot("apply-succeeded", d, &apply);
    let run = only_run(d);
    snapshot("status-succeeded", d, &cutover(d, &["status", &run]));
    snapshot("log-succeeded", d, &cutover(d, &["log", &run]));
    snapshot("runs", d, &cutover(d, &["runs"]));
    snapshot(
        "rollback-dry-run",
        d,
        &cutover(d, &["rollback", &run, "--dry-run"]),
    );
    // The dry run changed nothing: both hooks ran once and nothing was undone.
    assert_eq!(
        std::fs::read_to_string(d.join("journal")).unwrap(),
        "a\nc\n"
    );
}

#[test]
fn a_release_that_fails_and_rolls_back_as_the_operator_sees_it() {
    let dir = release("echo broken >&2; exit 3; ");
    let d = dir.path();
    let apply = cutover(d, &["apply", "spec.toml"]);
    assert_ne!(apply.status.code(), Some(0), "{}", transcript(&apply));
    snapshot("apply-rolled-back", d, &apply);
    let run = only_run(d);
    snapshot("status-rolled-back", d, &cutover(d, &["status", &run]));
    snapshot("log-rolled-back", d, &cutover(d, &["log", &run]));
    // What the transcript says happened did happen: `a` ran and was undone, `c` never wrote.
    assert_eq!(
        std::fs::read_to_string(d.join("journal")).unwrap(),
        "a\nundo-a\n"
    );
}

/// A hook learns its run and step from its environment, and a hook that fails with status 1
/// says why: the last lines it printed on stderr and stdout are in the error.
#[test]
fn a_hook_sees_its_run_and_its_failure_shows_what_it_printed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = "[release]\nname = \"hooks\"\non_failure = \"pause\"\n\n[[command]]\nname \
                = \"env\"\nstage = \"pre-migrate\"\nread_only = true\nargv = [\"sh\", \"-c\", \"env \
                | grep -E '^CUTOVER_(RUN_ID|RELEASE|STEP|DRY_RUN)=' | sort > \
                seen\"]\n\n[[command]]\nname = \"check\"\nstage = \"post-shift\"\nread_only = \
                true\nargv = [\"sh\", \"-c\", \"echo 3 rows fail the check; echo see report.txt \
                >&2; exit 1\"]\n";
    std::fs::write(d.join("spec.toml"), spec).unwrap();
    let out = cutover(d, &["apply", "spec.toml"]);
    assert_ne!(out.status.code(), Some(0), "{}", transcript(&out));
    let run = only_run(d);
    let seen = std::fs::read_to_string(d.join("seen")).unwrap();
    assert_eq!(
        seen,
        format!(
            "CUTOVER_DRY_RUN=0\nCUTOVER_RELEASE=hooks\nCUTOVER_RUN_ID={run}\nCUTOVER_STEP=command/env\n"
        )
    );
    let all = transcript(&out);
    assert!(
        all.contains("exited with status 1; stderr: see report.txt; stdout: 3 rows fail the check"),
        "{all}"
    );
}

/// Wherever a RUN is taken, `latest`, the release name (its newest run) or the start of one run
/// id name a run; the start of several is refused with their ids. `runs` shows who started each
/// and the step a run that did not succeed stopped at.
#[test]
fn runs_are_addressed_by_latest_release_name_or_a_unique_prefix() {
    let dir = release("echo broken >&2; exit 3; ");
    let d = dir.path();
    let first = cutover(d, &["apply", "spec.toml"]);
    assert_ne!(first.status.code(), Some(0), "{}", transcript(&first));
    let older = only_run(d);
    // Run ids carry the second they started in: make the second run's id sort after the first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(
        d.join("spec.toml"),
        std::fs::read_to_string(d.join("spec.toml"))
            .unwrap()
            .replace("echo broken >&2; exit 3; ", ""),
    )
    .unwrap();
    let second = cutover(d, &["apply", "spec.toml"]);
    assert_eq!(second.status.code(), Some(0), "{}", transcript(&second));
    let mut ids: Vec<String> = std::fs::read_dir(d.join(".cutover/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    let newer = ids.iter().find(|i| **i != older).unwrap().clone();
    let named = |run: &str| {
        // (Its exit code is the run's state: 3 for the one that rolled back.)
        let out = cutover(d, &["status", run, "--format", "json"]);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["run_id"].as_str().unwrap().to_string()
    };
    assert_eq!(named("latest"), newer);
    assert_eq!(named("hooks"), newer);
    assert_eq!(named(&older[..18]), older, "the start of one run id");
    assert_eq!(named(&newer), newer);
    let both = cutover(d, &["status", &older[..4]]);
    assert_eq!(both.status.code(), Some(1), "{}", transcript(&both));
    let err = String::from_utf8_lossy(&both.stderr);
    assert!(
        err.contains(&older) && err.contains(&newer) && err.contains("give more of the run id"),
        "{err}"
    );
    let runs = cutover(d, &["runs"]);
    let text = String::from_utf8_lossy(&runs.stdout);
    let line = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap()
            .to_string()
    };
    assert!(
        line(&older).contains("rolled_back") && line(&older).ends_with("at command/c"),
        "{text}"
    );
    assert!(
        line(&newer).contains("succeeded") && !line(&newer).contains(" at "),
        "{text}"
    );
}

/// A database that cannot be reached is named with its host and port, never its password.
#[test]
fn an_unreachable_database_is_named_by_host_and_port_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let migrations = crate::common::root().join("migrations-sample/app");
    let spec = format!(
        "[release]\nname = \"schema\"\n\n[[database]]\nname = \"main\"\nurl_env \
         = \"DATABASE_URL\"\nmigrations = \"{}\"\nbaseline = 1\n",
        migrations.display()
    );
    std::fs::write(d.join("spec.toml"), spec).unwrap();
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["apply", "spec.toml"])
        .current_dir(d)
        .env("CUTOVER_STATE_DIR", d.join(".cutover"))
        .env(
            "DATABASE_URL",
            format!("postgres://app:hunter2secret@127.0.0.1:{port}/app"),
        )
        .env_remove("CUTOVER_LOG_DATABASE_URL")
        .output()
        .unwrap();
    let all = transcript(&out);
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains(&format!(
            "cannot connect to database `main` at 127.0.0.1:{port} (from `DATABASE_URL`)"
        )),
        "{all}"
    );
    assert!(!all.contains("hunter2secret"), "{all}");
    let log = cutover(d, &["log", &only_run(d), "--format", "json"]);
    assert!(!String::from_utf8_lossy(&log.stdout).contains("hunter2secret"));
}

/// A `rollback --to` naming a step that did not succeed is refused before anything is written:
/// the run's log and state stay as they were; `--dry-run` refuses it the same way.
#[test]
fn a_refused_rollback_target_leaves_the_run_untouched() {
    let dir = release("");
    let d = dir.path();
    assert_eq!(cutover(d, &["apply", "spec.toml"]).status.code(), Some(0));
    let run = only_run(d);
    let log_before = cutover(d, &["log", &run, "--format", "json"]).stdout;
    for extra in [&[][..], &["--dry-run"][..]] {
        let mut args = vec!["rollback", run.as_str(), "--to", "command/nope"];
        args.extend_from_slice(extra);
        let out = cutover(d, &args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{extra:?}: {}",
            transcript(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("`--to command/nope`: that step has not succeeded"),
            "{extra:?}: {}",
            transcript(&out)
        );
    }
    assert_eq!(
        cutover(d, &["log", &run, "--format", "json"]).stdout,
        log_before
    );
    let status = cutover(d, &["status", &run]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("state: succeeded"),
        "{}",
        transcript(&status)
    );
}

/// Apply exactly what was reviewed: `plan --out FILE` saves the plan, `apply --plan FILE` runs
/// it, and refuses, naming the steps, once the spec plans other steps; `--expect-hash` refuses
/// another hash; on a terminal `apply` asks and anything but `yes` changes nothing.
#[test]
fn apply_runs_the_reviewed_plan_or_nothing() {
    let dir = release("");
    let d = dir.path();
    let plan = cutover(d, &["plan", "spec.toml", "--out", "reviewed.json"]);
    assert_eq!(plan.status.code(), Some(0), "{}", transcript(&plan));
    // The spec moves on after the review: the saved plan is stale.
    let spec = std::fs::read_to_string(d.join("spec.toml")).unwrap();
    std::fs::write(d.join("spec.toml"), spec.replace("echo c >>", "echo C >>")).unwrap();
    let stale = cutover(d, &["apply", "--plan", "reviewed.json"]);
    assert_eq!(stale.status.code(), Some(1), "{}", transcript(&stale));
    let err = String::from_utf8_lossy(&stale.stderr);
    assert!(
        err.contains("the saved plan is stale") && err.contains("changed command/c"),
        "{err}"
    );
    assert!(
        !d.join(".cutover/runs").exists() || only_runs(d).is_empty(),
        "nothing may start"
    );
    assert!(!d.join("journal").exists());
    // Back as reviewed: it runs, and says which plan at its start.
    std::fs::write(d.join("spec.toml"), spec).unwrap();
    let ok = cutover(d, &["apply", "--plan", "reviewed.json"]);
    assert_eq!(ok.status.code(), Some(0), "{}", transcript(&ok));
    let said = String::from_utf8_lossy(&ok.stderr).to_string();
    assert!(said.starts_with("plan "), "{said}");
    let json = cutover(d, &["plan", "spec.toml", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let short = &doc["plan_hash"].as_str().unwrap()[..12];
    let again = cutover(
        d,
        &["apply", "spec.toml", "--expect-hash", short, "--dry-run"],
    );
    assert_eq!(
        again.status.code(),
        Some(0),
        "{short}: {}",
        transcript(&again)
    );
    let wrong = cutover(
        d,
        &["apply", "spec.toml", "--expect-hash", "0123456789abcdef"],
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", transcript(&wrong));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not 0123456789abcdef"));
    // On a terminal (script(1) gives it one), `no` applies nothing.
    let before = only_runs(d).len();
    let bin = env!("CARGO_BIN_EXE_cutover");
    let tty = Command::new("script")
        .args(["-qec", &format!("{bin} apply spec.toml"), "/dev/null"])
        .current_dir(d)
        .env("CUTOVER_STATE_DIR", d.join(".cutover"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux runs the command on a pseudo-terminal");
    use std::io::Write;
    let mut tty = tty;
    tty.stdin.take().unwrap().write_all(b"no\n").unwrap();
    let out = tty.wait_with_output().unwrap();
    let all = transcript(&out);
    assert!(
        all.contains("Apply this release?") && all.contains("not confirmed"),
        "{all}"
    );
    assert_eq!(
        only_runs(d).len(),
        before,
        "a refused confirmation starts no run"
    );
}

fn only_runs(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir.join(".cutover/runs")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `status` exits by the run's state (0 succeeded, 3 failed or rolled back, 130 stopped before
/// it finished); `status --watch` follows a running release until it ends, then does the same.
#[test]
fn status_exits_by_the_run_state_and_watch_follows_it_to_the_end() {
    let dir = release("sleep 1; ");
    let d = dir.path();
    let apply = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["apply", "spec.toml"])
        .current_dir(d)
        .env("CUTOVER_STATE_DIR", d.join(".cutover"))
        .env_remove("CUTOVER_LOG_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the run to exist (its events.log comes a moment after its directory), then
    // watch it from another process.
    let t0 = std::time::Instant::now();
    let started = |d: &Path| {
        only_runs(d)
            .first()
            .is_some_and(|r| d.join(".cutover/runs").join(r).join("events.log").exists())
    };
    while !started(d) {
        assert!(t0.elapsed().as_secs() < 20, "the run never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let watch = cutover(d, &["status", "latest", "--watch"]);
    let mut apply = apply;
    assert!(apply.wait().unwrap().success());
    assert_eq!(watch.status.code(), Some(0), "{}", transcript(&watch));
    let text = String::from_utf8_lossy(&watch.stdout);
    assert!(
        text.contains("state: in progress"),
        "it saw the run going: {text}"
    );
    assert!(
        text.trim_end().contains("state: succeeded"),
        "and followed it to its end: {text}"
    );
    // A release that fails and rolls back: 3; `--watch` on an ended run returns at once.
    let failing = release("echo broken >&2; exit 3; ");
    assert_ne!(
        cutover(failing.path(), &["apply", "spec.toml"])
            .status
            .code(),
        Some(0)
    );
    for args in [
        &["status", "latest"][..],
        &["status", "latest", "--watch"][..],
    ] {
        let out = cutover(failing.path(), args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", transcript(&out));
    }
}

/// [`release`] with `c` made irreversible (no undo): the point of no return a hold stops before.
fn release_with_pivot() -> tempfile::TempDir {
    let dir = release("");
    let path = dir.path().join("spec.toml");
    let spec = std::fs::read_to_string(&path).unwrap();
    let undo_c = "undo = [\"sh\", \"-c\", \"grep -qx undo-c journal || echo undo-c >> journal\"]\n";
    assert!(spec.contains(undo_c), "{spec}");
    std::fs::write(&path, spec.replace(undo_c, "")).unwrap();
    dir
}

/// A hold as the operator meets it: the plan says where it stops, `apply --hold` stops there
/// (exit 5, no error), `status` and `runs` say it awaits promotion, `promote` releases it.
#[test]
fn a_hold_released_by_promote_as_the_operator_sees_it() {
    let dir = release_with_pivot();
    let d = dir.path();
    let apply = cutover(d, &["apply", "spec.toml", "--hold"]);
    assert_eq!(apply.status.code(), Some(5), "{}", transcript(&apply));
    snapshot("apply-hold", d, &apply);
    let run = only_run(d);
    snapshot("status-hold", d, &cutover(d, &["status", &run]));
    snapshot("runs-hold", d, &cutover(d, &["runs"]));
    let promote = cutover(d, &["promote", &run]);
    assert_eq!(promote.status.code(), Some(0), "{}", transcript(&promote));
    snapshot("promote", d, &promote);
    assert_eq!(
        std::fs::read_to_string(d.join("journal")).unwrap(),
        "a\nc\n"
    );
}

/// `abort` at a hold: the Argo name for "roll back now" undoes what ran before the hold.
#[test]
fn a_hold_aborted_as_the_operator_sees_it() {
    let dir = release_with_pivot();
    let d = dir.path();
    let apply = cutover(d, &["apply", "spec.toml", "--hold"]);
    assert_eq!(apply.status.code(), Some(5), "{}", transcript(&apply));
    let abort = cutover(d, &["abort", "latest"]);
    assert_eq!(abort.status.code(), Some(0), "{}", transcript(&abort));
    snapshot("abort-hold", d, &abort);
    assert_eq!(
        std::fs::read_to_string(d.join("journal")).unwrap(),
        "a\nundo-a\n"
    );
}
