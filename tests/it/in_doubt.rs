//! Steps left in doubt by a kill -9, against the real things they act on: a command whose
//! grandchild writes late, `CREATE/DROP INDEX CONCURRENTLY` that PostgreSQL goes on running after
//! the executor died, a migration lock that belongs to the run, a recorded plan that must match
//! the log. Each effect happens exactly once, and resume and rollback end where they should.

use crate::common::{Seeded, assert_no_panic, transcript};
use crate::pg::Cluster;
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn cutover(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.args(args)
        .current_dir(dir)
        .env("CUTOVER_STATE_DIR", dir.join(".cutover"))
        .env_remove("CUTOVER_LOG_DATABASE_URL")
        .env_remove("CUTOVER_CRASH_AFTER_EFFECT")
        .env_remove("CUTOVER_CRASH_AFTER_EVENTS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("cutover runs")
}

/// Starts `cutover apply spec.toml --format json` and SIGKILLs it `delay` after the event
/// `kind` of step `step` appears (or lets it finish if that never comes). Returns the run id
/// (None if the kill landed before the run's first event) and whether the kill hit a live run.
fn apply_and_kill_at(
    dir: &Path,
    env: &[(&str, &str)],
    step: &str,
    kind: &str,
    delay: Duration,
) -> (Option<String>, bool) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.args(["apply", "spec.toml", "--format", "json"])
        .current_dir(dir)
        .env("CUTOVER_STATE_DIR", dir.join(".cutover"))
        .env_remove("CUTOVER_LOG_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let mut run = None;
    let mut hit = false;
    while let Ok(ev) = rx.recv_timeout(Duration::from_secs(60)) {
        if ev["type"] == "run_started" {
            run = ev["run_id"].as_str().map(String::from);
        }
        if ev["type"] == kind && ev["step"] == step {
            std::thread::sleep(delay);
            unsafe { libc::kill(pid, libc::SIGKILL) };
            hit = true;
            break;
        }
    }
    let status = child.wait().unwrap();
    drop(rx);
    let _ = reader.join();
    (run, hit && status.code().is_none())
}

/// Resumes (or rolls back) `run` to its end: the exit code of the last invocation.
fn finish(dir: &Path, env: &[(&str, &str)], verb: &str, run: &str) -> Output {
    let out = cutover(dir, &[verb, run], env);
    assert_no_panic(&out);
    out
}

fn journal(dir: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(dir.join("journal"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

/// Commands whose work is done by a grandchild that writes late (as a hook script that starts
/// a program does): `PR_SET_PDEATHSIG` does not reach it, so only the fence keeps the effect
/// single. 200 rounds over both log backends, kills aimed at the start and end of each step.
fn grandchildren_write_once(log_url: Option<&str>, rounds: u32, seed: u64) -> (u32, u32) {
    let mut rng = Seeded(seed);
    let names = ["a", "b", "c"];
    let mut spec = String::from("[release]\nname = \"late-writers\"\n\n");
    for n in names {
        spec += &format!(
            "[[command]]\nname = \"{n}\"\nstage = \"pre-migrate\"\nargv = [\"sh\", \"-c\", \"sh -c \
             'sleep 0.04; echo {n} >> journal' & wait\"]\nprobe = [\"sh\", \"-c\", \"test -e \
             journal && grep -qx {n} journal\"]\n\n"
        );
    }
    let env: Vec<(&str, &str)> = log_url
        .map(|u| vec![("CUTOVER_LOG_DATABASE_URL", u)])
        .unwrap_or_default();
    let (mut kills, mut fenced) = (0, 0);
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spec.toml"), &spec).unwrap();
        let target = format!("command/{}", names[(rng.next() % 3) as usize]);
        let kind = if rng.next().is_multiple_of(2) {
            "step_started"
        } else {
            "step_succeeded"
        };
        let delay = Duration::from_micros(rng.next() % 8000);
        let (run, hit) = apply_and_kill_at(dir.path(), &env, &target, kind, delay);
        kills += u32::from(hit);
        let run = run
            .unwrap_or_else(|| panic!("round {round}: the kill came before the run's first event"));
        let mut done = false;
        for _ in 0..5 {
            let out = finish(dir.path(), &env, "resume", &run);
            fenced += u32::from(
                String::from_utf8_lossy(&out.stderr).contains("an earlier attempt left running"),
            );
            if out.status.code() == Some(0) {
                done = true;
                break;
            }
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("is held by"),
                "round {round}: {}",
                transcript(&out)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(done, "round {round}: resume did not finish");
        // A straggler of an earlier attempt would write within 40 ms; wait well past that.
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(
            journal(dir.path()),
            vec!["a", "b", "c"],
            "round {round}: killed at {kind} of {target} + {delay:?}; an effect happened twice or \
             never"
        );
    }
    (kills, fenced)
}

#[test]
fn kill_9_around_command_steps_never_runs_an_effect_twice_on_either_log_backend() {
    let (kills_files, fenced_files) = grandchildren_write_once(None, 100, 0x0c0f_fee0_0000_0002);
    let cluster = Cluster::start();
    let (kills_pg, fenced_pg) =
        grandchildren_write_once(Some(&cluster.url()), 100, 0x0c0f_fee0_0000_0003);
    eprintln!(
        "files: {kills_files} kills, {fenced_files} fences; postgres: {kills_pg} kills, {fenced_pg} \
         fences"
    );
    // Most kills land on a live run (one aimed just after the last step may find it exited), and
    // many leave a grandchild for the fence to stop
    // (otherwise this test would not be testing the fence).
    assert!(
        kills_files >= 70 && kills_pg >= 70,
        "kills: files {kills_files}, postgres {kills_pg}"
    );
    assert!(
        fenced_files + fenced_pg >= 10,
        "the fence stopped leftovers only {} times",
        fenced_files + fenced_pg
    );
}

/// A database at a refinery baseline (V1) with a release directory: `migrations` are written to
/// `dir/m`, the spec names them.
struct Release {
    cluster: Cluster,
    dir: tempfile::TempDir,
}

impl Release {
    fn new(migrations: &[(&str, &str)], extra_spec: &str) -> Release {
        let cluster = Cluster::start();
        cluster.psql("CREATE DATABASE app");
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir(&m).unwrap();
        for (name, sql) in migrations {
            std::fs::write(m.join(name), sql).unwrap();
        }
        std::fs::write(
            dir.path().join("spec.toml"),
            format!(
                "[release]\nname = \"db\"\n{extra_spec}\n[[database]]\nname = \"main\"\nurl_env \
                 = \"DATABASE_URL\"\nmigrations = \"m\"\nbaseline = 1\nbackup = {{ enabled = false \
                 }}\n"
            ),
        )
        .unwrap();
        let r = Release { cluster, dir };
        let plan = r.plan();
        let v1 = &plan["steps"][0]["params"]["databases"][0]["applied"][0];
        r.sql(migrations[0].1);
        r.sql(
            "CREATE TABLE refinery_schema_history (version INT4 PRIMARY KEY, name VARCHAR(255), \
             applied_on VARCHAR(255), checksum VARCHAR(255))",
        );
        r.sql(&format!(
            "INSERT INTO refinery_schema_history VALUES (1, '{}', '2026-01-01T00:00:00Z', '{}')",
            v1["name"].as_str().unwrap(),
            v1["checksum"].as_str().unwrap()
        ));
        r
    }

    fn url(&self) -> String {
        self.cluster.url_for("app")
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("DATABASE_URL", self.url())]
    }

    fn cutover(&self, args: &[&str]) -> Output {
        let url = self.url();
        cutover(self.dir.path(), args, &[("DATABASE_URL", &url)])
    }

    fn plan(&self) -> Value {
        let out = self.cutover(&["plan", "spec.toml", "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn sql(&self, sql: &str) -> String {
        self.cluster.psql_in("app", sql)
    }

    /// Indexes of the public schema with their validity, and the refinery history: the state a
    /// resume or rollback must end at.
    fn state(&self) -> String {
        self.sql(
            "SELECT coalesce((SELECT string_agg(c.relname || CASE WHEN i.indisvalid THEN '' ELSE ' \
             INVALID' END, ',' ORDER BY c.relname) FROM pg_index i JOIN pg_class c ON c.oid = \
             i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' \
             AND c.relname NOT LIKE '%pkey'), '-') || ' | ' || (SELECT string_agg(version::text, \
             ',' ORDER BY version) FROM refinery_schema_history)",
        )
    }

    fn run_id(&self) -> String {
        std::fs::read_dir(self.dir.path().join(".cutover/runs"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .into_owned()
    }
}

#[test]
fn a_rename_and_two_more_expand_migrations_succeed_with_the_default_jobs_each_once() {
    let r = Release::new(
        &[
            (
                "V1__people.sql",
                "CREATE TABLE people (id bigint PRIMARY KEY, name text NOT NULL);",
            ),
            (
                "V2__rename.sql",
                "ALTER TABLE people RENAME COLUMN name TO full_name;",
            ),
            ("V3__note.sql", "ALTER TABLE people ADD COLUMN note text;"),
            ("V4__nick.sql", "ALTER TABLE people ADD COLUMN nick text;"),
        ],
        "",
    );
    r.sql("INSERT INTO people SELECT g, 'p' || g FROM generate_series(1, 20000) g");
    // The backfill and the later expand migrations share a stage: they run at the same time.
    let started = Instant::now();
    let out = r.cutover(&["apply", "spec.toml", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for step in [
        "migrate/expand/V2__rename",
        "migrate/expand/V3__note",
        "migrate/expand/V4__nick",
        "migrate/contract/V2__rename",
        "backfill/people.full_name",
    ] {
        let starts = events
            .iter()
            .filter(|e| e["type"] == "step_started" && e["step"] == step)
            .count();
        assert_eq!(starts, 1, "{step} started {starts} times");
    }
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("another migrator"),
        "{}",
        transcript(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the release waited for something ({:?})",
        started.elapsed()
    );
    assert_eq!(
        r.sql(
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM refinery_schema_history"
        ),
        "1,2,3,4"
    );
    assert_eq!(
        r.sql(
            "SELECT string_agg(version || phase, ',' ORDER BY version, phase) FROM \
             cutover_migration_phases"
        ),
        "2contract,2expand,3expand,4expand"
    );
    assert_eq!(
        r.sql("SELECT count(*) FROM people WHERE full_name IS NULL"),
        "0"
    );
}

/// Another session's transaction holds `table` for `secs` seconds (an ordinary long
/// transaction that a concurrent index build or drop must wait for).
fn blocker(r: &Release, table: &str, secs: f64) -> std::process::Child {
    let child = Command::new("psql")
        .args([
            "-X",
            "-q",
            &r.url(),
            "-c",
            &format!("BEGIN; SELECT count(*) FROM {table}; SELECT pg_sleep({secs}); COMMIT;"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> \
         pg_backend_pid()",
    ) == "0"
    {
        assert!(
            Instant::now() < deadline,
            "the blocking transaction did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn a_drop_index_concurrently_finished_by_the_server_after_kill_9_resumes_to_success() {
    let r = Release::new(
        &[
            (
                "V1__events.sql",
                "CREATE TABLE events (id bigint PRIMARY KEY, kind text); CREATE INDEX \
                 events_kind_idx ON events (kind);",
            ),
            (
                "V2__drop_kind_index.sql",
                "-- cutover:phase=contract\nDROP INDEX CONCURRENTLY events_kind_idx;",
            ),
        ],
        "",
    );
    r.sql("INSERT INTO events SELECT g, 'k' || (g % 10) FROM generate_series(1, 1000) g");
    let mut b = blocker(&r, "events", 1.5);
    let env = r.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (run, hit) = apply_and_kill_at(
        r.dir.path(),
        &env,
        "migrate/contract/V2__drop_kind_index",
        "step_started",
        Duration::from_millis(400),
    );
    assert!(hit, "the kill did not land inside the DROP INDEX");
    b.wait().unwrap();
    let out = finish(r.dir.path(), &env, "resume", &run.unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(r.state(), "- | 1,2");
}

#[test]
fn a_create_index_concurrently_still_running_after_kill_9_is_waited_for_and_rolled_back() {
    let r = Release::new(
        &[
            (
                "V1__events.sql",
                "CREATE TABLE events (id bigint PRIMARY KEY, kind text);",
            ),
            (
                "V2__index_kind.sql",
                "CREATE INDEX CONCURRENTLY events_kind_idx ON events (kind);",
            ),
        ],
        "",
    );
    r.sql("INSERT INTO events SELECT g, 'k' || (g % 10) FROM generate_series(1, 1000) g");
    let before = r.state();
    let mut b = blocker(&r, "events", 2.0);
    let env = r.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (run, hit) = apply_and_kill_at(
        r.dir.path(),
        &env,
        "migrate/expand/V2__index_kind",
        "step_started",
        Duration::from_millis(400),
    );
    assert!(hit, "the kill did not land inside the CREATE INDEX");
    // Roll back at once, while PostgreSQL is still building the index for the dead executor.
    let out = finish(r.dir.path(), &env, "rollback", &run.unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a dead executor left running"),
        "{}",
        transcript(&out)
    );
    b.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        r.state(),
        before,
        "the index appeared after the rollback said it was done"
    );
}

/// `CREATE INDEX CONCURRENTLY` (plain and `IF NOT EXISTS`) behind a transaction that holds an
/// old snapshot on another table: each attempt times out and leaves an INVALID index. The step
/// fails naming the wait, leaves no INVALID index and no history row; once the transaction is
/// gone, the next release builds a valid index.
#[test]
fn a_concurrent_index_build_that_times_out_leaves_no_invalid_index_and_is_not_recorded() {
    for if_not_exists in ["", "IF NOT EXISTS "] {
        let r = Release::new(
            &[
                (
                    "V1__base.sql",
                    "CREATE TABLE event_log (id bigint PRIMARY KEY, occurred_at timestamptz NOT \
                     NULL DEFAULT now()); CREATE TABLE job_queue (id bigint PRIMARY KEY);",
                ),
                (
                    "V2__idx.sql",
                    &format!(
                        "CREATE INDEX CONCURRENTLY {if_not_exists}event_log_occurred_idx ON \
                         event_log (occurred_at);"
                    ),
                ),
            ],
            "",
        );
        let spec = std::fs::read_to_string(r.dir.path().join("spec.toml"))
            .unwrap()
            .replace("baseline = 1\n", "baseline = 1\nlock_timeout = \"300ms\"\n");
        std::fs::write(r.dir.path().join("spec.toml"), spec).unwrap();
        r.sql(
            "INSERT INTO event_log SELECT g FROM generate_series(1, 20000) g; INSERT INTO job_queue \
             SELECT g FROM generate_series(1, 100) g",
        );
        let before = r.state();
        let mut worker = Command::new("psql")
            .args([
                "-X",
                "-q",
                &r.url(),
                "-c",
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM job_queue; SELECT \
                 pg_sleep(60); COMMIT;",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let out = r.cutover(&["apply", "spec.toml"]);
        let text = transcript(&out);
        assert_eq!(out.status.code(), Some(3), "{text}");
        assert!(
            text.contains("lock timeout")
                && text.contains("older than its own snapshot")
                && text.contains("INVALID index it left was dropped"),
            "{text}"
        );
        assert_eq!(
            r.state(),
            before,
            "{if_not_exists}: an INVALID index or a history row was left"
        );
        r.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE \
             '%pg_sleep(60)%' AND pid <> pg_backend_pid()",
        );
        let _ = worker.wait();
        std::fs::remove_dir_all(r.dir.path().join(".cutover")).unwrap();
        let out = r.cutover(&["apply", "spec.toml"]);
        assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
        assert_eq!(r.state(), "event_log_occurred_idx | 1,2");
    }
}

/// Kill -9 at seeded moments (0-120 ms after a step's start) inside two `CREATE INDEX
/// CONCURRENTLY` migrations of a 200k-row
/// table, then resume or roll back at once (PostgreSQL may still be building): resume always
/// ends with both indexes valid and recorded once, rollback with neither and no INVALID leftover.
#[test]
fn kill_9_inside_concurrent_index_builds_then_resume_or_rollback_ends_at_the_reference_schema() {
    let r = Release::new(
        &[
            (
                "V1__accounts.sql",
                "CREATE TABLE accounts (id bigint PRIMARY KEY, email text, created_at timestamptz);",
            ),
            (
                "V2__email_idx.sql",
                "CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);",
            ),
            (
                "V3__created_idx.sql",
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_created_idx ON accounts \
                 (created_at);",
            ),
        ],
        "",
    );
    r.sql(
        "INSERT INTO accounts SELECT g, 'user' || g || '@example.com', now() - g * interval '1 \
         minute' FROM generate_series(1, 200000) g",
    );
    let before = r.state();
    let after = "accounts_created_idx,accounts_email_idx | 1,2,3";
    let env = r.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut rng = Seeded(0x1dec_0de0_0000_0004);
    let rounds: u32 = 200;
    let (mut hits, mut fenced, mut partial) = (0, 0, 0);
    for round in 0..rounds {
        let target = if rng.next().is_multiple_of(2) {
            "migrate/expand/V2__email_idx"
        } else {
            "migrate/expand/V3__created_idx"
        };
        // The end of V2 (V3 is next), or inside either build.
        let kind = if target.contains("V2") && rng.next().is_multiple_of(4) {
            "step_succeeded"
        } else {
            "step_started"
        };
        let delay = Duration::from_millis(rng.next() % 120);
        let (run, hit) = apply_and_kill_at(r.dir.path(), &env, target, kind, delay);
        hits += u32::from(hit);
        let run = run.expect("the run started");
        let verb = if round.is_multiple_of(2) {
            "resume"
        } else {
            "rollback"
        };
        let out = finish(r.dir.path(), &env, verb, &run);
        let text = transcript(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "round {round} ({verb} after a kill at {kind} of {target} + {delay:?}): {text}\n\
             server log:\n{}",
            r.cluster.log_tail(40)
        );
        fenced += u32::from(text.contains("a dead executor left running"));
        partial += u32::from(text.contains("part of its effect"));
        let want = if verb == "resume" {
            after
        } else {
            before.as_str()
        };
        assert_eq!(
            r.state(),
            want,
            "round {round}: {verb} after a kill at {kind} of {target} + {delay:?}:\n{text}"
        );
        if verb == "resume" {
            assert_eq!(
                r.sql("SELECT count(*) FROM cutover_migration_phases"),
                "2",
                "round {round}"
            );
            // Back to the baseline for the next round.
            r.sql(
                "DROP INDEX accounts_email_idx, accounts_created_idx; DELETE FROM \
                 refinery_schema_history WHERE version > 1; DELETE FROM cutover_migration_phases",
            );
        }
        std::fs::remove_dir_all(r.dir.path().join(".cutover")).unwrap();
    }
    eprintln!(
        "{rounds} rounds: {hits} kills inside a live run, {fenced} waits for a dead executor's \
         statement, {partial} partial"
    );
    // A build of 200k rows takes about 100-300 ms here: most kills land inside one, some after
    // the release ended (those rounds still check that a finished run resumes and rolls back).
    assert!(
        hits >= rounds * 6 / 10,
        "only {hits} of {rounds} kills hit a live run"
    );
    assert!(
        fenced >= 5,
        "the fence waited for a running statement only {fenced} times"
    );
}

/// The run's recorded plan must be the one its log fingerprinted: a flipped byte in a step's
/// SQL, a step removed, or a log moved into another run's directory is refused before anything
/// runs, naming what differs; the database is not touched.
#[test]
fn resume_and_rollback_refuse_a_recorded_plan_that_differs_from_the_log() {
    let r = Release::new(
        &[
            ("V1__t.sql", "CREATE TABLE t (id bigint PRIMARY KEY);"),
            ("V2__a.sql", "ALTER TABLE t ADD COLUMN a text;"),
            ("V3__b.sql", "ALTER TABLE t ADD COLUMN b text;"),
        ],
        "",
    );
    // Stop the run after V2 (a crash right after its effect), so there is something to resume.
    let url = r.url();
    let out = cutover(
        r.dir.path(),
        &["apply", "spec.toml"],
        &[
            ("DATABASE_URL", &url),
            ("CUTOVER_CRASH_AFTER_EFFECT", "migrate/expand/V2__a"),
        ],
    );
    assert_eq!(out.status.code(), None, "{}", transcript(&out));
    let run = r.run_id();
    let run_dir = r.dir.path().join(".cutover/runs").join(&run);
    let plan_path = run_dir.join("plan.json");
    let original = std::fs::read_to_string(&plan_path).unwrap();
    let columns = || {
        r.sql(
            "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM \
             information_schema.columns WHERE table_name = 't'",
        )
    };
    let cols = columns();
    for (what, edited, names) in [
        (
            "one letter of V3's SQL",
            original.replacen("ADD COLUMN b text", "ADD COLUMN c text", 1),
            "migrate/expand/V3__b",
        ),
        (
            "a step's undo SQL",
            original.replacen("DROP COLUMN IF EXISTS a", "DROP COLUMN IF EXISTS id", 1),
            "migrate/expand/V2__a",
        ),
    ] {
        assert_ne!(edited, original, "{what}: the edit did not apply");
        std::fs::write(&plan_path, &edited).unwrap();
        for verb in ["resume", "rollback"] {
            let out = cutover(r.dir.path(), &[verb, &run], &[("DATABASE_URL", &url)]);
            let text = transcript(&out);
            assert_eq!(out.status.code(), Some(1), "{what}, {verb}: {text}");
            assert!(
                text.contains("plan.json") && text.contains(names) && text.contains("hint:"),
                "{what}, {verb}: {text}"
            );
            assert_eq!(columns(), cols, "{what}, {verb}: the database changed");
        }
    }
    // The log of this run copied into another run's directory.
    std::fs::write(&plan_path, &original).unwrap();
    let other = r.dir.path().join(".cutover/runs/20260101T000000Z-db-0000");
    std::fs::create_dir(&other).unwrap();
    std::fs::copy(run_dir.join("events.log"), other.join("events.log")).unwrap();
    std::fs::copy(&plan_path, other.join("plan.json")).unwrap();
    let out = cutover(
        r.dir.path(),
        &["resume", "20260101T000000Z-db-0000"],
        &[("DATABASE_URL", &url)],
    );
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&run) && text.contains("20260101T000000Z-db-0000"),
        "{text}"
    );
    std::fs::remove_dir_all(&other).unwrap();
    // Untouched, the run resumes.
    let out = cutover(r.dir.path(), &["resume", &run], &[("DATABASE_URL", &url)]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(columns(), "a,b,id");
}

/// Every form of password libpq takes from a URL reaches `pg_dump` and `pg_restore` through the
/// environment: while the backup (and a restore) runs, no process's command line holds it.
#[test]
fn no_password_form_reaches_a_client_programs_command_line() {
    let password = "Pw-7f3a9-Secret";
    let cluster = Cluster::start_with_password(password);
    // `127.0.0.1:PORT`
    let hostport = cluster
        .url_for("x")
        .trim_start_matches("postgres://postgres@")
        .trim_end_matches("/x")
        .to_string();
    let forms = |db: &str| {
        [
            format!("postgres://postgres:{password}@{hostport}/{db}"),
            format!("postgresql://postgres@{hostport}/{db}?password={password}"),
            format!(
                "postgres://postgres@{hostport}/{db}?sslmode=disable&pass%77ord={password}&application_name=x"
            ),
            format!("postgres://postgres:not-this-one@{hostport}/{db}?password={password}"),
            format!("postgres://{hostport}/{db}?user=postgres&password={password}"),
        ]
    };
    for i in 0..forms("x").len() {
        let db = format!("pw{i}");
        let admin = forms("postgres")[0].clone();
        let made = Command::new("psql")
            .args(["-X", "-q", &admin, "-c", &format!("CREATE DATABASE {db}")])
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let url = forms(&db)[i].clone();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("m")).unwrap();
        std::fs::write(
            dir.path().join("m/V1__t.sql"),
            "CREATE TABLE t (id bigint PRIMARY KEY, body text);\nINSERT INTO t SELECT g, \
             repeat('x', 300) FROM generate_series(1, 150000) g;",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("m/V2__drop.sql"),
            "-- cutover:phase=contract\nALTER TABLE t DROP COLUMN body;",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("spec.toml"),
            "[release]\nname = \"pw\"\n\n[[database]]\nname = \"main\"\nurl_env \
             = \"DATABASE_URL\"\nmigrations = \"m\"\nbackup = { dir = \"backups\" }\n",
        )
        .unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut seen, mut scans) = (Vec::new(), 0u32);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    scans += 1;
                    for e in std::fs::read_dir("/proc").unwrap().flatten() {
                        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
                            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                            if (text.contains("pg_dump") || text.contains("pg_restore"))
                                && !seen.contains(&text)
                            {
                                seen.push(text);
                            }
                        }
                    }
                }
                (seen, scans)
            })
        };
        let out = cutover(
            dir.path(),
            &["apply", "spec.toml"],
            &[("DATABASE_URL", &url)],
        );
        assert_eq!(out.status.code(), Some(0), "form {i}: {}", transcript(&out));
        let run = std::fs::read_dir(dir.path().join(".cutover/runs"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .into_owned();
        // The contract is a pivot: only the backup brings the column back (pg_restore).
        let out = cutover(
            dir.path(),
            &["rollback", &run, "--restore-backup"],
            &[("DATABASE_URL", &url)],
        );
        assert_eq!(out.status.code(), Some(0), "form {i}: {}", transcript(&out));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (seen, scans) = watcher.join().unwrap();
        assert!(
            seen.iter().any(|c| c.contains("pg_dump"))
                && seen.iter().any(|c| c.contains("pg_restore --create")),
            "form {i}: the watcher ({scans} scans) never saw the client programs run: {seen:?}"
        );
        for c in &seen {
            assert!(
                !c.contains(password) && !c.contains("not-this-one"),
                "form {i}: a password was on a command line: {c}"
            );
        }
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !all.contains(password),
            "form {i}: the password reached the terminal"
        );
        let log = std::fs::read(
            dir.path()
                .join(".cutover/runs")
                .join(&run)
                .join("events.log"),
        )
        .unwrap();
        assert!(
            !String::from_utf8_lossy(&log).contains(password),
            "form {i}: the password reached the log"
        );
    }
}

/// One database reached through two URL spellings (two `[[database]]` entries, one with
/// `?sslmode=disable`): one migration lock for the run, no wait for itself.
#[test]
fn one_database_under_two_url_spellings_shares_the_runs_migration_lock() {
    let cluster = Cluster::start();
    cluster.psql("CREATE DATABASE app");
    let url = cluster.url_for("app");
    let dir = tempfile::tempdir().unwrap();
    for (m, v1, v2) in [
        ("ma", "V1__a.sql", "V2__a_note.sql"),
        ("mb", "V11__b.sql", "V12__b_note.sql"),
    ] {
        std::fs::create_dir(dir.path().join(m)).unwrap();
        let t = &m[1..];
        std::fs::write(
            dir.path().join(m).join(v1),
            format!("CREATE TABLE t_{t} (id bigint PRIMARY KEY);"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(m).join(v2),
            format!("ALTER TABLE t_{t} ADD COLUMN note text;"),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("spec.toml"),
        "[release]\nname = \"two-spellings\"\n\n[[database]]\nname = \"app\"\nurl_env \
         = \"A_URL\"\nmigrations = \"ma\"\nbaseline = 1\nbackup = { enabled = false \
         }\n\n[[database]]\nname = \"audit\"\nurl_env = \"B_URL\"\nmigrations = \"mb\"\nbaseline = \
         11\nbackup = { enabled = false }\n",
    )
    .unwrap();
    let b_url = format!("{url}?sslmode=disable");
    let env = [("A_URL", url.as_str()), ("B_URL", b_url.as_str())];
    let plan: Value = serde_json::from_slice(
        &cutover(dir.path(), &["plan", "spec.toml", "--format", "json"], &env).stdout,
    )
    .unwrap();
    let sql = |s: &str| cluster.psql_in("app", s);
    sql(
        "CREATE TABLE t_a (id bigint PRIMARY KEY); CREATE TABLE t_b (id bigint PRIMARY KEY); CREATE \
         TABLE refinery_schema_history (version INT4 PRIMARY KEY, name VARCHAR(255), applied_on \
         VARCHAR(255), checksum VARCHAR(255))",
    );
    for i in 0..2 {
        let a = &plan["steps"][0]["params"]["databases"][i]["applied"][0];
        sql(&format!(
            "INSERT INTO refinery_schema_history VALUES ({}, '{}', 'x', '{}')",
            a["version"],
            a["name"].as_str().unwrap(),
            a["checksum"].as_str().unwrap()
        ));
    }
    let started = Instant::now();
    let out = cutover(dir.path(), &["apply", "spec.toml"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the run waited {:?} (for its own lock?)",
        started.elapsed()
    );
    assert_eq!(
        sql("SELECT string_agg(version::text, ',' ORDER BY version) FROM refinery_schema_history"),
        "1,2,11,12"
    );
}

/// Processes of a command that escape the step's mark (`env -i`) or its process group
/// (`setsid`) still do not act twice or after a failure: the recorded process group catches
/// the first after a kill -9, and a failed or timed-out attempt kills what carries its mark.
#[test]
fn a_helper_with_a_cleared_environment_or_its_own_session_does_not_act_twice_or_late() {
    // env -i: found through the process group the attempt recorded.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hook.sh"),
        "env -i PATH=/usr/bin:/bin sh -c 'sleep 0.5; echo notified >> journal' &\necho hook done\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        "[release]\nname = \"env-i\"\n\n[[command]]\nname = \"notify\"\nstage \
         = \"pre-migrate\"\nargv = [\"sh\", \"hook.sh\"]\nprobe = [\"sh\", \"-c\", \"test -e \
         journal && grep -qx notified journal\"]\n",
    )
    .unwrap();
    let (run, hit) = apply_and_kill_at(
        dir.path(),
        &[],
        "command/notify",
        "step_started",
        Duration::from_millis(150),
    );
    assert!(hit, "the kill did not land while the hook ran");
    let out = finish(dir.path(), &[], "resume", &run.unwrap());
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        journal(dir.path()),
        vec!["notified"],
        "{}",
        transcript(&out)
    );
    // setsid + a timeout: the step fails, the release rolls back, and nothing writes afterwards.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        "[release]\nname = \"setsid\"\n\n[[command]]\nname = \"hook\"\nstage \
         = \"pre-migrate\"\nargv = [\"sh\", \"-c\", \"setsid sh -c 'sleep 1.5; echo effect >> \
         journal' & sleep 5\"]\ntimeout = \"500ms\"\n",
    )
    .unwrap();
    let out = cutover(dir.path(), &["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    std::thread::sleep(Duration::from_millis(2000));
    assert!(
        journal(dir.path()).is_empty(),
        "an effect landed after the failed step was rolled back: {:?}",
        journal(dir.path())
    );
}

/// Concurrent index work behind an old snapshot that fails leaves no INVALID index, whatever
/// PostgreSQL names them: `REINDEX ... CONCURRENTLY` (`<index>_ccnew`) and an unnamed `CREATE
/// INDEX CONCURRENTLY` (a new name at every retry).
#[test]
fn failed_reindex_and_unnamed_index_builds_leave_no_invalid_index() {
    // (A file of REINDEX alone changes no schema: the planner refuses it as empty.)
    for (name, v2) in [
        (
            "reindex",
            "REINDEX INDEX CONCURRENTLY ev_kind_idx;\nCREATE INDEX CONCURRENTLY ev_id_kind_idx ON \
             ev (id, kind);",
        ),
        ("unnamed", "CREATE INDEX CONCURRENTLY ON ev (id, kind);"),
    ] {
        let r = Release::new(
            &[
                (
                    "V1__ev.sql",
                    "CREATE TABLE ev (id bigint PRIMARY KEY, kind text); CREATE INDEX ev_kind_idx \
                     ON ev (kind); CREATE TABLE jobq (id int);",
                ),
                ("V2__work.sql", v2),
            ],
            "",
        );
        let spec = std::fs::read_to_string(r.dir.path().join("spec.toml"))
            .unwrap()
            .replace("baseline = 1\n", "baseline = 1\nlock_timeout = \"200ms\"\n");
        std::fs::write(r.dir.path().join("spec.toml"), spec).unwrap();
        let before = r.state();
        let mut worker = Command::new("psql")
            .args([
                "-X",
                "-q",
                &r.url(),
                "-c",
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM jobq; SELECT \
                 pg_sleep(60); COMMIT;",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let out = r.cutover(&["apply", "spec.toml"]);
        assert_eq!(out.status.code(), Some(3), "{name}: {}", transcript(&out));
        assert_eq!(
            r.state(),
            before,
            "{name}: INVALID indexes or a history row were left"
        );
        r.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE \
             '%pg_sleep(60)%' AND pid <> pg_backend_pid()",
        );
        let _ = worker.wait();
    }
}

/// What a migration run outside a transaction must not get wrong about names: a `SET
/// search_path` does not leak into the bookkeeping, an index on a schema-qualified table is the
/// one a rollback drops, an index that was there before the release (`IF NOT EXISTS`) is kept by
/// the rollback, and an index of the same name on another table is not taken for this one.
#[test]
fn names_in_concurrent_index_migrations_resolve_as_postgresql_resolves_them() {
    let fail_v3 = ("V3__fail.sql", "ALTER TABLE ev ADD COLUMN x int;");
    // search_path set by the migration; then a rollback (V3 fails) drops the index it built.
    let r = Release::new(
        &[
            (
                "V1__s.sql",
                "CREATE SCHEMA app; CREATE TABLE app.ev (id bigint PRIMARY KEY, kind text); CREATE \
                 TABLE ev (id int, x int);",
            ),
            (
                "V2__idx.sql",
                "SET search_path = app;\nCREATE INDEX CONCURRENTLY ev_kind_idx ON ev (kind);",
            ),
            fail_v3,
        ],
        "",
    );
    let out = r.cutover(&["apply", "spec.toml"]);
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("undone  migrate/expand/V2__idx")
            || String::from_utf8_lossy(&out.stdout).contains("undone  migrate/expand/V2__idx"),
        "{}",
        transcript(&out)
    );
    assert_eq!(
        r.sql("SELECT count(*) FROM pg_class WHERE relname = 'ev_kind_idx'"),
        "0",
        "{}",
        transcript(&out)
    );
    // A schema-qualified table: the derived undo drops app.ev_kind_idx, not public's.
    let r = Release::new(
        &[
            (
                "V1__s.sql",
                "CREATE SCHEMA app; CREATE TABLE app.ev (id bigint PRIMARY KEY, kind text); CREATE \
                 TABLE ev (id int, x int);",
            ),
            (
                "V2__idx.sql",
                "CREATE INDEX CONCURRENTLY ev_kind_idx ON app.ev (kind);",
            ),
            fail_v3,
        ],
        "",
    );
    let out = r.cutover(&["apply", "spec.toml"]);
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    assert_eq!(
        r.sql("SELECT count(*) FROM pg_class WHERE relname = 'ev_kind_idx'"),
        "0",
        "{}",
        transcript(&out)
    );
    // IF NOT EXISTS on an index the database already had: the rollback keeps it.
    let r = Release::new(
        &[
            (
                "V1__t.sql",
                "CREATE TABLE ev (id bigint PRIMARY KEY, kind text, x int);",
            ),
            (
                "V2__idx.sql",
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS ev_kind_idx ON ev (kind);",
            ),
            fail_v3,
        ],
        "",
    );
    r.sql("CREATE INDEX ev_kind_idx ON ev (kind)");
    let out = r.cutover(&["apply", "spec.toml"]);
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    assert_eq!(
        r.sql("SELECT count(*) FROM pg_class WHERE relname = 'ev_kind_idx'"),
        "1",
        "the rollback dropped an index the release did not create: {}",
        transcript(&out)
    );
    // The same index name on another table is not this migration's index.
    let r = Release::new(
        &[
            (
                "V1__t.sql",
                "CREATE TABLE orders (id bigint PRIMARY KEY, created_at timestamptz); CREATE TABLE \
                 invoices (id bigint PRIMARY KEY, created_at timestamptz); CREATE INDEX \
                 created_at_idx ON orders (created_at);",
            ),
            (
                "V2__idx.sql",
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS created_at_idx ON invoices (created_at);",
            ),
        ],
        "",
    );
    let out = r.cutover(&["apply", "spec.toml"]);
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    assert!(
        transcript(&out).contains("no index `created_at_idx` on"),
        "{}",
        transcript(&out)
    );
    assert_eq!(
        r.sql(
            "SELECT indrelid::regclass::text FROM pg_index WHERE indexrelid = \
             'created_at_idx'::regclass"
        ),
        "orders"
    );
}

/// `resume` and `rollback` in a shell that lacks what the rest of the run needs (the database
/// URL's variable) stop before they touch anything, naming the variable; with it, they finish.
#[test]
fn resume_and_rollback_check_the_environment_before_touching_anything() {
    let r = Release::new(
        &[
            ("V1__t.sql", "CREATE TABLE t (id bigint PRIMARY KEY);"),
            ("V2__a.sql", "ALTER TABLE t ADD COLUMN a text;"),
            ("V3__b.sql", "ALTER TABLE t ADD COLUMN b text;"),
        ],
        "",
    );
    let url = r.url();
    let out = cutover(
        r.dir.path(),
        &["apply", "spec.toml"],
        &[
            ("DATABASE_URL", &url),
            ("CUTOVER_CRASH_AFTER_EFFECT", "migrate/expand/V2__a"),
        ],
    );
    assert_eq!(out.status.code(), None, "{}", transcript(&out));
    let run = r.run_id();
    let events = |r: &Release| {
        std::fs::read(
            r.dir
                .path()
                .join(".cutover/runs")
                .join(&run)
                .join("events.log"),
        )
        .unwrap()
        .len()
    };
    let before = events(&r);
    for verb in ["resume", "rollback"] {
        let out = cutover(r.dir.path(), &[verb, &run], &[]);
        let text = transcript(&out);
        assert_eq!(out.status.code(), Some(1), "{verb}: {text}");
        assert!(
            text.contains("DATABASE_URL")
                && text.contains("nothing was changed")
                && text.contains("hint:"),
            "{verb}: {text}"
        );
    }
    // Only the attach events were added; no step was started, probed or undone.
    let log = cutover(r.dir.path(), &["log", &run, "--format", "json"], &[]);
    let types: Vec<String> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        !types
            .iter()
            .any(|t| t == "step_probed" || t == "compensation_started"),
        "{types:?}"
    );
    assert!(events(&r) >= before);
    let out = cutover(r.dir.path(), &["resume", &run], &[("DATABASE_URL", &url)]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(
        r.sql(
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM refinery_schema_history"
        ),
        "1,2,3"
    );
}
