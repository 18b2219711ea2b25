//! PostgreSQL steps against a real server (a throwaway cluster per test): preflight, pg_dump
//! backups, expand and contract migrations recorded in refinery's history, crash and resume,
//! and a rollback of the expand phase back to the exact pre-release schema.

use crate::common::{root, transcript};
use crate::pg::Cluster;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

pub(crate) struct Db {
    pub(crate) cluster: Cluster,
    name: String,
    pub(crate) dir: tempfile::TempDir,
}

impl Db {
    /// A fresh cluster with a database `app`, a temporary release directory, and `spec(dir)`
    /// written as its `spec.toml` (the closure may also put migrations into `dir`).
    pub(crate) fn create(spec: impl FnOnce(&Path) -> String) -> Db {
        let cluster = Cluster::start();
        cluster.psql("CREATE DATABASE app");
        let dir = tempfile::tempdir().unwrap();
        let text = spec(dir.path());
        std::fs::write(dir.path().join("spec.toml"), text).unwrap();
        Db {
            cluster,
            name: "app".into(),
            dir,
        }
    }

    /// Applies the baseline migration (V1 of `migrations`) and records it in refinery's history
    /// with refinery's checksum, as a release made with refinery would have left it.
    pub(crate) fn baseline(&self, migrations: &Path) {
        let plan = self.plan();
        let v1 = &plan["steps"][0]["params"]["databases"][0]["applied"][0];
        assert_eq!(v1["version"], 1);
        let file = std::fs::read_dir(migrations)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("V1__"))
            .unwrap();
        self.sql(&std::fs::read_to_string(file).unwrap());
        self.sql(
            "CREATE TABLE refinery_schema_history (version INT4 PRIMARY KEY, name VARCHAR(255), \
             applied_on VARCHAR(255), checksum VARCHAR(255))",
        );
        self.sql(&format!(
            "INSERT INTO refinery_schema_history VALUES (1, '{}', '2026-01-01T00:00:00Z', '{}')",
            v1["name"].as_str().unwrap(),
            v1["checksum"].as_str().unwrap()
        ));
    }

    /// The sample app at its baseline, with a schema-only spec for V2..V7 (backups on).
    fn app() -> Db {
        let migrations = root().join("migrations-sample/app");
        let db = Db::create(|_| {
            format!(
                "[release]\nname = \"schema-only\"\n\n[[database]]\nname = \"main\"\nurl_env \
                 = \"DATABASE_URL\"\nmigrations = \"{}\"\nbaseline = 1\nlock_timeout \
                 = \"2s\"\nbackup = {{ dir = \"backups\" }}\n",
                migrations.display()
            )
        });
        db.baseline(&migrations);
        db
    }

    pub(crate) fn url(&self) -> String {
        self.cluster.url_for(&self.name)
    }

    pub(crate) fn sql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                &self.url(),
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub(crate) fn plan(&self) -> Value {
        let out = self.cutover(&["plan", "spec.toml", "--format", "json"], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `cutover args` in the release directory, on this database.
    pub(crate) fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("CUTOVER_STATE_DIR", self.dir.path().join(".cutover"))
            .env("DATABASE_URL", self.url())
            .env_remove("CUTOVER_CRASH_AFTER_EFFECT")
            .env_remove("CUTOVER_CRASH_AFTER_EVENTS")
            .env_remove("CUTOVER_LOG_DATABASE_URL");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    pub(crate) fn cutover(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().unwrap()
    }

    /// `cutover args` started in the background, its output captured.
    pub(crate) fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args, &[])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// One psql session on this database running `commands` (each its own `-c`, so a `BEGIN`
    /// carries over) in the background: another client holding a transaction open.
    fn session(&self, commands: &[&str]) -> std::process::Child {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &self.url()]);
        for c in commands {
            cmd.args(["-c", c]);
        }
        cmd.stdout(std::process::Stdio::null()).spawn().unwrap()
    }

    /// The schema, as pg_dump prints it, without cutover's and refinery's bookkeeping tables.
    pub(crate) fn schema(&self) -> String {
        let out = Command::new("pg_dump")
            .args([
                "--schema-only",
                "--no-owner",
                "--exclude-table=cutover_migration_phases",
                "--exclude-table=refinery_schema_history",
                &self.url(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // pg_dump wraps its output in \restrict/\unrestrict lines with a random key.
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub(crate) fn run_id(&self) -> String {
        let mut ids: Vec<String> = std::fs::read_dir(self.dir.path().join(".cutover/runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(ids.len(), 1);
        ids.pop().unwrap()
    }

    pub(crate) fn events(&self, run: &str) -> Vec<Value> {
        let out = self.cutover(&["log", run, "--format", "json"], &[]);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub(crate) fn history(&self) -> Vec<(i64, String)> {
        self.sql("SELECT version || ' ' || checksum FROM refinery_schema_history ORDER BY version")
            .lines()
            .map(|l| {
                let (v, c) = l.split_once(' ').unwrap();
                (v.parse().unwrap(), c.to_string())
            })
            .collect()
    }
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_schema_release_applies_expand_and_contract_with_backup_and_history() {
    let db = Db::app();
    let plan = db.plan();
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("PostgreSQL 1") && stdout.contains("1 applied, 6 pending"),
        "preflight: {stdout}"
    );

    // The schema after each phase, through information_schema.
    assert_eq!(
        db.sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'"),
        "1"
    );
    assert_eq!(
        db.sql(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND \
             column_name = 'last_login_at'"
        ),
        "1"
    );
    assert_eq!(
        db.sql(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND \
             column_name = 'legacy_flags'"
        ),
        "0",
        "the contract migration dropped it"
    );
    assert_eq!(
        db.sql(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE \
             c.relname = 'users_email_idx'"
        ),
        "t"
    );
    assert_eq!(
        db.sql("SELECT convalidated FROM pg_constraint WHERE conname = 'orders_user_id_fk'"),
        "t"
    );

    // refinery's history: every version, with refinery's own checksums.
    let pending: Vec<(i64, String)> = plan["steps"][0]["params"]["databases"][0]["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["version"].as_i64().unwrap(),
                e["checksum"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let history = db.history();
    assert_eq!(history.len(), 7);
    assert_eq!(&history[1..], &pending[..]);

    // The backup: where the event says, the size and sha256 it says, readable by pg_restore.
    let run = db.run_id();
    let evs = db.events(&run);
    let backup = evs
        .iter()
        .find(|e| e["type"] == "step_succeeded" && e["step"] == "backup/main")
        .unwrap();
    let path = Path::new(backup["undo"]["path"].as_str().unwrap());
    assert!(path.starts_with(db.dir.path().join("backups")), "{path:?}");
    assert_eq!(
        std::fs::metadata(path).unwrap().len(),
        backup["undo"]["size"].as_u64().unwrap()
    );
    assert_eq!(sha256_hex(path), backup["undo"]["sha256"].as_str().unwrap());
    assert!(
        Command::new("pg_restore")
            .arg("--list")
            .arg(path)
            .output()
            .unwrap()
            .status
            .success()
    );
    // The password never appears in the log (the URL has none here; the event must not carry it either).
    assert!(!evs.iter().any(|e| e.to_string().contains(&db.url())));

    // A rollback stops at the contract migration, a pivot.
    let out = db.cutover(&["rollback", &run], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("migrate/contract/V7__drop_users_legacy_flags")
    );
    // A second release with the same spec finds everything applied: preflight refuses.
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("already applied, but this release plans to apply it"),
        "{}",
        transcript(&out)
    );
}

#[test]
fn rolling_back_the_expand_phase_restores_the_schema_exactly() {
    let db = Db::app();
    let before = db.schema();
    // Crash right after the last expand migration took effect, before its event.
    let out = db.cutover(
        &["apply", "spec.toml"],
        &[(
            "CUTOVER_CRASH_AFTER_EFFECT",
            "migrate/expand/V6__validate_orders_fk",
        )],
    );
    assert_eq!(out.status.code(), None, "{}", transcript(&out));
    assert_ne!(db.schema(), before);
    let run = db.run_id();
    let out = db.cutover(&["rollback", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("checked migrate/expand/V6__validate_orders_fk: its effect is in place"),
        "{stdout}"
    );
    assert_eq!(
        db.schema(),
        before,
        "the rollback must restore the pre-release schema exactly"
    );
    assert_eq!(
        db.history().len(),
        1,
        "history rows of undone migrations are removed"
    );
    assert_eq!(db.sql("SELECT count(*) FROM cutover_migration_phases"), "0");
}

#[test]
fn a_crash_after_a_concurrent_index_build_resumes_without_building_it_twice() {
    let db = Db::app();
    {
        let step = &"migrate/expand/V4__index_users_email";
        let out = db.cutover(
            &["apply", "spec.toml"],
            &[("CUTOVER_CRASH_AFTER_EFFECT", step)],
        );
        assert_eq!(out.status.code(), None, "{}", transcript(&out));
        let run = db.run_id();
        let out = db.cutover(&["resume", &run], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
        assert_eq!(db.history().len(), 7);
        let evs = db.events(&run);
        let ends = evs
            .iter()
            .filter(|e| {
                e["step"] == *step && (e["type"] == "step_succeeded" || e["type"] == "step_probed")
            })
            .count();
        assert_eq!(ends, 1, "{step} ended {ends} times");
        assert_eq!(
            db.sql("SELECT count(*) FROM pg_indexes WHERE indexname = 'users_email_idx'"),
            "1"
        );
    }
}

#[test]
fn a_failed_concurrent_index_build_leaves_no_invalid_index_and_resumes_clean() {
    let cluster = Cluster::start();
    cluster.psql("CREATE DATABASE shop");
    let url = cluster.url_for("shop");
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(
        migrations.join("V1__codes.sql"),
        "CREATE TABLE codes (id bigint PRIMARY KEY, code text);\n",
    )
    .unwrap();
    std::fs::write(
        migrations.join("V2__unique_code.sql"),
        "CREATE UNIQUE INDEX CONCURRENTLY codes_code_key ON codes (code);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        "[release]\nname = \"unique\"\non_failure = \"pause\"\n\n[[database]]\nname \
         = \"main\"\nurl_env = \"DATABASE_URL\"\nmigrations = \"migrations\"\nbaseline = 1\nbackup \
         = { enabled = false }\n",
    )
    .unwrap();
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                &url,
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let cutover = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(args)
            .current_dir(dir.path())
            .env("CUTOVER_STATE_DIR", dir.path().join(".cutover"))
            .env("DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    // The baseline, with a duplicate the unique index will trip over.
    let plan: Value =
        serde_json::from_slice(&cutover(&["plan", "spec.toml", "--format", "json"]).stdout)
            .unwrap();
    let v1 = plan["steps"][0]["params"]["databases"][0]["applied"][0]["checksum"]
        .as_str()
        .unwrap()
        .to_string();
    psql("CREATE TABLE codes (id bigint PRIMARY KEY, code text)");
    psql(&format!(
        "CREATE TABLE refinery_schema_history (version INT4 PRIMARY KEY, name VARCHAR(255), \
         applied_on VARCHAR(255), checksum VARCHAR(255)); INSERT INTO refinery_schema_history \
         VALUES (1, 'codes', 'x', '{v1}')"
    ));
    psql("INSERT INTO codes VALUES (1, 'a'), (2, 'a'), (3, 'b')");

    let out = cutover(&["apply", "spec.toml"]);
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("could not create unique index"),
        "{}",
        transcript(&out)
    );
    // PostgreSQL leaves a failed concurrent build's index behind, INVALID; the step drops it.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the INVALID index it left was dropped"),
        "{}",
        transcript(&out)
    );
    assert_eq!(
        psql("SELECT count(*) FROM pg_class WHERE relname = 'codes_code_key'"),
        "0"
    );

    // Fix the data; the resume builds it from a clean state.
    psql("DELETE FROM codes WHERE id = 2");
    let run = std::fs::read_dir(dir.path().join(".cutover/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let out = cutover(&["resume", &run]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(
        psql(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE \
             c.relname = 'codes_code_key'"
        ),
        "t"
    );
    assert_eq!(
        psql("SELECT count(*) FROM pg_indexes WHERE tablename = 'codes'"),
        "2"
    );
    assert_eq!(
        psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM refinery_schema_history"),
        "1,2"
    );
}

/// A database at the rename sample's baseline with `rows` users, and a database-only spec for
/// the seed's rename (V2), rewritten into expand, backfill and contract.
fn rename_db(rows: u64, batch: u32) -> Db {
    let migrations = root().join("migrations-sample/rename");
    let db = Db::create(|_| {
        format!(
            "[release]\nname = \"rename\"\n\n[[database]]\nname = \"main\"\nurl_env \
             = \"DATABASE_URL\"\nmigrations = \"{}\"\nbaseline = 1\nbackup = {{ enabled = false \
             }}\nbackfill = {{ batch_size = {batch} }}\n",
            migrations.display()
        )
    });
    db.baseline(&migrations);
    db.sql(&format!(
        "INSERT INTO users (name, email) SELECT 'user ' || g, 'u' || g || '@example.com' FROM \
         generate_series(1, {rows}) g"
    ));
    db
}

fn columns(db: &Db) -> String {
    db.sql(
        "SELECT string_agg(column_name || ':' || is_nullable, ',' ORDER BY column_name) FROM \
         information_schema.columns WHERE table_name = 'users'",
    )
}

#[test]
fn the_seed_rename_runs_expand_backfill_and_contract_on_a_real_database() {
    let db = rename_db(20_000, 1000);
    // Stop after the backfill: the schema of the expand phase, with both versions' columns.
    let out = db.cutover(
        &["apply", "spec.toml"],
        &[("CUTOVER_CRASH_AFTER_EFFECT", "backfill/users.full_name")],
    );
    assert_eq!(out.status.code(), None, "{}", transcript(&out));
    assert_eq!(
        columns(&db),
        "created_at:NO,email:YES,full_name:YES,id:NO,legacy_flags:YES,name:NO"
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM users WHERE full_name IS DISTINCT FROM name"),
        "0"
    );
    assert_eq!(
        db.sql(
            "SELECT count(*) FROM information_schema.triggers WHERE event_object_table = 'users'"
        ),
        "2",
        "INSERT and UPDATE"
    );
    // Both versions write, the trigger keeps the other column right.
    db.sql("INSERT INTO users (name) VALUES ('old version')");
    db.sql("INSERT INTO users (full_name) VALUES ('new version')");
    db.sql("UPDATE users SET name = 'renamed by v1' WHERE id = 1");
    db.sql("UPDATE users SET full_name = 'renamed by v2' WHERE id = 2");
    assert_eq!(
        db.sql("SELECT count(*) FROM users WHERE full_name IS DISTINCT FROM name"),
        "0"
    );
    assert_eq!(
        db.sql("SELECT full_name FROM users WHERE name = 'old version'"),
        "old version"
    );
    let run = db.run_id();
    let out = db.cutover(&["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    // The contract phase: the old column, trigger and function are gone; NOT NULL carried over.
    assert_eq!(
        columns(&db),
        "created_at:NO,email:YES,full_name:NO,id:NO,legacy_flags:YES"
    );
    assert_eq!(
        db.sql(
            "SELECT count(*) FROM information_schema.triggers WHERE event_object_table = 'users'"
        ),
        "0"
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_proc WHERE proname LIKE 'cutover_sync%'"),
        "0"
    );
    assert_eq!(
        db.sql("SELECT full_name FROM users WHERE id = 1"),
        "renamed by v1"
    );
    assert_eq!(db.history().len(), 2);
    assert_eq!(
        db.sql(
            "SELECT string_agg(version || phase, ',' ORDER BY version, phase) FROM \
             cutover_migration_phases"
        ),
        "2contract,2expand"
    );
}

#[test]
fn kill_9_during_a_million_row_backfill_with_a_writer_then_resume() {
    let db = rename_db(1_000_000, 5000);
    let url = db.url();
    let checksum = |db: &Db| {
        db.sql(
            "SELECT md5(string_agg(coalesce(full_name, '-'), ',' ORDER BY id)) || ' ' || \
             md5(string_agg(name, ',' ORDER BY id)) || ' ' || count(*) FROM users",
        )
    };
    let mut apply = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["apply", "spec.toml", "--format", "quiet"])
        .current_dir(db.dir.path())
        .env("CUTOVER_STATE_DIR", db.dir.path().join(".cutover"))
        .env("DATABASE_URL", &url)
        .env("CUTOVER_CRASH_AFTER_EFFECT", "backfill/users.full_name")
        .spawn()
        .unwrap();
    // Wait until the backfill is under way, with a writer of the old version running meanwhile.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, url) = (stop.clone(), url.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let sql = format!(
                    "INSERT INTO users (name) VALUES ('writer {n}'); UPDATE users SET name = \
                     'updated {n}' WHERE id = {}",
                    1 + (n * 7919) % 1_000_000
                );
                let _ = Command::new("psql")
                    .args(["-X", "-q", &url, "-c", &sql])
                    .output();
                // A steady trickle, not a process-spawning loop that starves a 2-core machine.
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
            n
        })
    };
    let mut progressed = false;
    for _ in 0..600 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let done: i64 = db
            .sql(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND \
                 column_name = 'full_name'",
            )
            .parse()
            .unwrap();
        if done == 1
            && db.sql(
                "SELECT count(*) FROM (SELECT 1 FROM users WHERE full_name IS NOT NULL LIMIT 50000) \
                 s",
            ) == "50000"
        {
            progressed = true;
            break;
        }
    }
    assert!(progressed, "the backfill never got going");
    unsafe { libc::kill(apply.id() as i32, libc::SIGKILL) };
    let _ = apply.wait();
    let run = db.run_id();
    let evs = db.events(&run);
    assert!(
        evs.iter().any(|e| e["type"] == "step_progress"),
        "the cursor was recorded"
    );
    // Resume up to the end of the backfill (stopping before the contract, to compare columns).
    let out = db.cutover(
        &["resume", &run],
        &[("CUTOVER_CRASH_AFTER_EFFECT", "backfill/users.full_name")],
    );
    assert_eq!(out.status.code(), None, "{}", transcript(&out));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 5, "the writer barely ran ({written})");
    assert_eq!(
        db.sql("SELECT count(*) FROM users WHERE full_name IS DISTINCT FROM name"),
        "0",
        "every row copied, the writer's included"
    );
    let sums = checksum(&db);
    let parts: Vec<&str> = sums.split(' ').collect();
    assert_eq!(parts[0], parts[1], "full_name equals name row for row");
    assert_eq!(parts[2], (1_000_000 + written).to_string());
    // The resumed backfill started after the recorded cursor, not from the beginning.
    let resumed_from = evs
        .iter()
        .rev()
        .find(|e| e["type"] == "step_progress")
        .unwrap()["data"]["cursor"]
        .as_i64()
        .unwrap();
    let after = db.events(&run);
    let first_resumed = after
        .iter()
        .skip(evs.len())
        .find(|e| e["type"] == "step_progress")
        .expect("the resumed backfill reported progress");
    assert!(
        first_resumed["data"]["cursor"].as_i64().unwrap() > resumed_from,
        "the resume started over instead of after key {resumed_from}"
    );
    assert!(
        first_resumed["data"]["cursor"].as_i64().unwrap() <= resumed_from + 5000 + 1000,
        "one batch after the cursor"
    );
    // Progress is typed: rows done of an estimated total (no count(*) scan before the first
    // batch), which the views turn into a line for humans.
    let amount = after
        .iter()
        .filter(|e| e["type"] == "step_progress")
        .find_map(|e| e.get("amount").filter(|a| !a.is_null()).cloned())
        .expect("the backfill reports how much is done");
    assert_eq!(amount["unit"], "rows", "{amount}");
    let total = amount["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("{amount}"));
    assert!((900_000..=1_100_000).contains(&total), "{amount}");
    assert!(amount["done"].as_u64().unwrap() > 0, "{amount}");
    let log = db.cutover(&["log", &run], &[]);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.lines()
            .any(|l| l.contains(&format!(" of about {total} rows (")) && l.ends_with("rows/s")),
        "no progress line in the log's text:\n{log}"
    );
    let out = db.cutover(&["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(
        columns(&db),
        "created_at:NO,email:YES,full_name:NO,id:NO,legacy_flags:YES"
    );
}

#[test]
fn rollback_past_the_contract_pivot_restores_the_backup_on_request() {
    let db = Db::app();
    db.sql(
        "INSERT INTO users (name, email, legacy_flags) SELECT 'user ' || g, 'u' || g || \
         '@example.com', g % 7 FROM generate_series(1, 5000) g",
    );
    let content = |db: &Db| {
        db.sql(
            "SELECT count(*) || ' ' || md5(string_agg(id || name || coalesce(email, '') || \
             coalesce(legacy_flags::text, ''), ',' ORDER BY id)) FROM users",
        )
    };
    let history = |db: &Db| {
        db.sql(
            "SELECT string_agg(version || ' ' || checksum, ',' ORDER BY version) FROM \
             refinery_schema_history",
        )
    };
    let (schema, rows, hist) = (db.schema(), content(&db), history(&db));
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_ne!(db.schema(), schema);
    let run = db.run_id();
    // Without the flag the rollback stops at the contract migration; with it, the database comes
    // back from this run's pg_dump: schema, rows and refinery history exactly as before.
    assert_eq!(db.cutover(&["rollback", &run], &[]).status.code(), Some(4));
    // Where and why it stopped is in the log, so `status` tells it after the fact.
    let status: Value = serde_json::from_slice(
        &db.cutover(&["status", &run, "--format", "json"], &[])
            .stdout,
    )
    .unwrap();
    assert_eq!(status["outcome"], "rollback_stopped");
    let stopped = &status["rollback_stopped"];
    assert!(
        stopped["step"]
            .as_str()
            .unwrap()
            .starts_with("migrate/contract/")
            && stopped["reason"]
                .as_str()
                .unwrap()
                .contains("cannot be undone"),
        "{status:#}"
    );
    let out = db.cutover(&["rollback", &run, "--restore-backup"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("restored database `main` from `backup/"),
        "{}",
        transcript(&out)
    );
    let restored: Vec<Value> = db
        .events(&run)
        .into_iter()
        .filter(|e| e["type"] == "backup_restored")
        .collect();
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(restored[0]["database"], "main");
    assert_eq!(db.schema(), schema);
    assert_eq!(content(&db), rows);
    assert_eq!(history(&db), hist);
    let status: Value = serde_json::from_slice(
        &db.cutover(&["status", &run, "--format", "json"], &[])
            .stdout,
    )
    .unwrap();
    assert_eq!(status["outcome"], "rolled_back");
    assert_eq!(status["rollback_stopped"], Value::Null, "{status:#}");
    assert_eq!(status["restored"][0]["database"], "main", "{status:#}");
    assert!(
        status["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "compensated"),
        "{status:#}"
    );
}

#[test]
fn two_executors_on_one_database_never_apply_anything_twice() {
    let db = Db::app();
    // Two runs of the same release at once (separate state directories, as on two machines).
    let spawn = |state: &str| {
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["apply", "spec.toml", "--format", "quiet"])
            .current_dir(db.dir.path())
            .env("CUTOVER_STATE_DIR", db.dir.path().join(state))
            .env("DATABASE_URL", db.url())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(".a"), spawn(".b"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    assert!(
        codes.contains(&Some(0)),
        "one run must win: {}\n{}",
        transcript(&a),
        transcript(&b)
    );
    let loser = if a.status.code() == Some(0) { &b } else { &a };
    assert_ne!(
        loser.status.code(),
        Some(0),
        "both runs claim the release:\n{}\n{}",
        transcript(&a),
        transcript(&b)
    );
    let why = String::from_utf8_lossy(&loser.stderr);
    assert!(
        why.contains("applied by another run")
            || why.contains("already applied, but this release plans to apply it")
            || why.contains("migration lock"),
        "{}",
        transcript(loser)
    );
    // Each migration applied exactly once.
    assert_eq!(db.history().len(), 7);
    assert_eq!(db.sql("SELECT count(*) FROM cutover_migration_phases"), "6");
    assert_eq!(
        db.sql("SELECT count(DISTINCT run_id) FROM cutover_migration_phases"),
        "1"
    );
}

/// A database with `users` at V1 and a spec whose migrations directory holds `files` (V2...).
fn custom_db(files: &[(&str, &str)], lock_timeout: &str) -> Db {
    let db = Db::create(|dir| {
        let migrations = dir.join("migrations");
        std::fs::create_dir(&migrations).unwrap();
        std::fs::copy(
            root().join("migrations-sample/app/V1__create_users.sql"),
            migrations.join("V1__create_users.sql"),
        )
        .unwrap();
        for (name, sql) in files {
            std::fs::write(migrations.join(name), sql).unwrap();
        }
        format!(
            "[release]\nname = \"custom\"\non_failure = \"pause\"\n\n[[database]]\nname \
             = \"main\"\nurl_env = \"DATABASE_URL\"\nmigrations = \"migrations\"\nbaseline = \
             1\nlock_timeout = \"{lock_timeout}\"\nbackup = {{ enabled = false }}\n"
        )
    });
    db.baseline(&db.dir.path().join("migrations"));
    db
}

#[test]
fn kill_9_during_a_long_migration_then_resume() {
    let db = custom_db(
        &[(
            "V2__slow.sql",
            "CREATE TABLE slow (id int);\nSELECT pg_sleep(1.5);\nALTER TABLE users ADD COLUMN \
             nickname text;\n",
        )],
        "2s",
    );
    let mut apply = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["apply", "spec.toml", "--format", "quiet"])
        .current_dir(db.dir.path())
        .env("CUTOVER_STATE_DIR", db.dir.path().join(".cutover"))
        .env("DATABASE_URL", db.url())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    unsafe { libc::kill(apply.id() as i32, libc::SIGKILL) };
    let _ = apply.wait();
    let run = db.run_id();
    let evs = db.events(&run);
    assert_eq!(
        evs.last().unwrap()["type"],
        "step_started",
        "killed inside the migration: {evs:#?}"
    );
    // The migration's transaction dies with its connection: nothing of it is left half-done.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        db.sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'slow'"),
        "0"
    );
    assert_eq!(db.history().len(), 1);
    let out = db.cutover(&["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("checked migrate/expand/V2__slow: its effect is not there; it runs again"),
        "{}",
        transcript(&out)
    );
    assert_eq!(db.history().len(), 2);
    assert_eq!(
        db.sql(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND \
             column_name = 'nickname'"
        ),
        "1"
    );
}

#[test]
fn a_lock_timeout_is_retried_with_backoff_instead_of_failing() {
    let db = custom_db(
        &[(
            "V2__add_column.sql",
            "ALTER TABLE users ADD COLUMN nickname text;\n",
        )],
        "200ms",
    );
    // Another session holds an ACCESS EXCLUSIVE lock on users for two seconds.
    let holder = Command::new("psql")
        .args([
            "-X",
            "-q",
            &db.url(),
            "-c",
            "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2); COMMIT;",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    let took = started.elapsed();
    let _ = { holder }.wait();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(
        took >= std::time::Duration::from_millis(1200),
        "it waited only {took:?}: the lock was not in the way?"
    );
    assert_eq!(db.history().len(), 2);
}

#[test]
fn an_applied_migration_edited_afterwards_is_refused_by_preflight() {
    let db = custom_db(
        &[(
            "V2__add_column.sql",
            "ALTER TABLE users ADD COLUMN nickname text;\n",
        )],
        "2s",
    );
    // V1 is applied (the baseline); someone edits the file afterwards.
    let v1 = db.dir.path().join("migrations/V1__create_users.sql");
    let text = std::fs::read_to_string(&v1).unwrap();
    std::fs::write(
        &v1,
        text.replace("legacy_flags integer", "legacy_flags bigint"),
    )
    .unwrap();
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("V1__create_users was applied from different content"),
        "{}",
        transcript(&out)
    );
    assert_eq!(db.history().len(), 1, "nothing was applied");
}

#[test]
fn a_down_file_is_what_the_rollback_runs() {
    let db = custom_db(
        &[
            (
                "V2__default_email.sql",
                "ALTER TABLE users ALTER COLUMN email SET DEFAULT 'none';\n",
            ),
            (
                "V2__default_email.down.sql",
                "ALTER TABLE users ALTER COLUMN email DROP DEFAULT;\n",
            ),
        ],
        "2s",
    );
    let before = db.schema();
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_ne!(db.schema(), before);
    let out = db.cutover(&["rollback", &db.run_id()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(db.schema(), before);
    assert_eq!(db.history().len(), 1);
}

#[test]
fn preflight_lists_transactions_older_than_the_lock_timeout() {
    let db = custom_db(
        &[(
            "V2__add_column.sql",
            "ALTER TABLE users ADD COLUMN nickname text;\n",
        )],
        "1s",
    );
    // A session that opened a transaction two seconds ago and is still in it.
    let holder = Command::new("psql")
        .args([
            "-X",
            "-q",
            &db.url(),
            "-c",
            "SET application_name = 'report-job'; BEGIN; SELECT count(*) FROM \
             refinery_schema_history; SELECT pg_sleep(4); COMMIT;",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2000));
    let out = db.cutover(&["apply", "spec.toml", "--jobs", "1"], &[]);
    let _ = { holder }.wait();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("transactions open longer than the lock_timeout (1s)")
            && stdout.contains("report-job"),
        "{stdout}"
    );
}

#[test]
fn with_a_password_the_backup_works_and_the_password_is_never_written() {
    let password = "s3cret-Pw_9f8e";
    let cluster = Cluster::start_with_password(password);
    let url = cluster
        .url_for("postgres")
        .replace("postgres@", &format!("postgres:{password}@"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        format!(
            "[release]\nname = \"pw\"\n\n[[database]]\nname = \"main\"\nurl_env \
             = \"DATABASE_URL\"\nmigrations = \"{}\"\nbackup = {{ dir = \"backups\" }}\n",
            root().join("migrations-sample/rename").display()
        ),
    )
    .unwrap();
    let cutover = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(args)
            .current_dir(dir.path())
            .env("CUTOVER_STATE_DIR", dir.path().join(".cutover"))
            .env("DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    // The whole rename release (V1 creates users; V2 renames) on a password-protected server.
    let out = cutover(&["apply", "spec.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let run = std::fs::read_dir(dir.path().join(".cutover/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let log = std::fs::read(run.join("events.log")).unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(
        log.contains("backup/main") && log.contains(".dump"),
        "the backup ran"
    );
    assert!(
        !log.contains(password),
        "the password reached the event log"
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(password), "the password reached the terminal");
    // A wrong password is a clear failure that does not echo the URL's secret either.
    let bad = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["apply", "spec.toml"])
        .current_dir(dir.path())
        .env("CUTOVER_STATE_DIR", dir.path().join(".cutover2"))
        .env("DATABASE_URL", url.replace(password, "wrong-pass-123"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(3), "{}", transcript(&bad));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(
        text.contains("password authentication failed") && !text.contains("wrong-pass-123"),
        "{text}"
    );
}

/// What preflight can only learn from the environment (the URL, the server, the role, the
/// secrets) is checked before the first change: each bad value fails the release at `preflight`
/// with a message naming what is wrong, the database is untouched (refinery's history, the
/// schema), the pre-migrate hook never ran, and no password is printed.
#[test]
fn preflight_refuses_environments_that_would_fail_mid_release_and_nothing_changes() {
    let db = custom_db(
        &[(
            "V2__add_column.sql",
            "ALTER TABLE users ADD COLUMN nickname text;\n",
        )],
        "2s",
    );
    let spec = db.dir.path().join("spec.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        format!(
            "{text}\n[[command]]\nname = \"hook\"\nstage = \"pre-migrate\"\nargv = \
             [\"sh\", \"-c\", \"echo ran >> hook-ran\"]\nsecret_env = [\"HOOK_TOKEN\"]\nundo = \
             [\"true\"]\n"
        ),
    )
    .unwrap();
    db.sql(
        "CREATE ROLE no_create LOGIN; CREATE ROLE read_only LOGIN; GRANT CREATE ON SCHEMA public TO \
         read_only; ALTER ROLE read_only SET default_transaction_read_only = on; CREATE ROLE \
         not_owner LOGIN; GRANT CREATE ON SCHEMA public TO not_owner; CREATE ROLE no_history LOGIN; \
         GRANT CREATE ON SCHEMA public TO no_history; ALTER TABLE users OWNER TO no_history; GRANT \
         SELECT ON refinery_schema_history TO no_history",
    );
    let (history, schema) = (db.history(), db.schema());
    let url = db.url();
    let secret = "pw-9f8e7d";
    let with_pw = url.replace("postgres@", &format!("postgres:{secret}@"));
    let as_role = |role: &str| url.replace("postgres@", &format!("{role}:{secret}@"));
    let cases: Vec<(&str, Option<String>, Option<&str>, &str)> = vec![
        (
            "unset url",
            None,
            Some("t"),
            "environment variable `DATABASE_URL` (the URL of database `main`) is not set",
        ),
        (
            "empty url",
            Some(String::new()),
            Some("t"),
            "is set but empty",
        ),
        (
            "not a url",
            Some("host=127.0.0.1 dbname=app".into()),
            Some("t"),
            "contains whitespace",
        ),
        (
            "no scheme",
            Some("127.0.0.1:5432/app".into()),
            Some("t"),
            "does not hold a URL",
        ),
        (
            "mysql scheme",
            Some(with_pw.replacen("postgres://", "mysql://", 1)),
            Some("t"),
            "is a `mysql://` URL",
        ),
        (
            "driver prefix",
            Some(with_pw.replacen("postgres://", "postgresql+psycopg2://", 1)),
            Some("t"),
            "is a `postgresql+psycopg2://` URL",
        ),
        (
            "no CREATE on the schema",
            Some(as_role("no_create")),
            Some("t"),
            "role `no_create` may not create objects in schema `public`",
        ),
        (
            "read-only role",
            Some(as_role("read_only")),
            Some("t"),
            "sessions of role `read_only` are read-only",
        ),
        (
            "not the owner of an altered table",
            Some(as_role("not_owner")),
            Some("t"),
            "which role `not_owner` does not own",
        ),
        (
            "no INSERT on refinery's history",
            Some(as_role("no_history")),
            Some("t"),
            "role `no_history` lacks DELETE on `refinery_schema_history`, INSERT on \
             `refinery_schema_history`",
        ),
        (
            "several hosts",
            Some(with_pw.replacen("@127.0.0.1:", "@127.0.0.2:5432,127.0.0.1:", 1)),
            Some("t"),
            "names several hosts",
        ),
        (
            "unset secret",
            Some(with_pw.clone()),
            None,
            "not set: HOOK_TOKEN",
        ),
    ];
    for (i, (case, url, token, needle)) in cases.into_iter().enumerate() {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.args(["apply", "spec.toml"])
            .current_dir(db.dir.path())
            .env(
                "CUTOVER_STATE_DIR",
                db.dir.path().join(format!(".cutover-{i}")),
            )
            .env_remove("CUTOVER_LOG_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .env_remove("HOOK_TOKEN");
        if let Some(u) = &url {
            cmd.env("DATABASE_URL", u);
        }
        if let Some(t) = token {
            cmd.env("HOOK_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        crate::common::assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(3), "{case}: {}", transcript(&out));
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            all.contains("step `preflight` failed") && all.contains(needle),
            "{case}: expected {needle:?} in:\n{all}"
        );
        assert!(
            !all.contains(secret),
            "{case}: the password was printed:\n{all}"
        );
        assert!(
            !db.dir.path().join("hook-ran").exists(),
            "{case}: the pre-migrate hook ran"
        );
        assert_eq!(db.history(), history, "{case}: refinery's history changed");
        assert_eq!(db.schema(), schema, "{case}: the schema changed");
    }
    // The same release with everything in place goes through.
    db.sql("ALTER TABLE users OWNER TO postgres");
    let out = db.cutover(&["apply", "spec.toml"], &[("HOOK_TOKEN", "t")]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(db.history().len(), 2);
}

/// Placeholder migrations (an empty file, comments only, `SELECT 1`), which refinery, diesel and
/// pop accept, plan with an info finding and are applied for real: recorded in refinery's history
/// with refinery's checksum, the schema unchanged; a rollback forgets them again.
#[test]
fn placeholder_migrations_are_applied_and_recorded_like_any_other() {
    let db = custom_db(
        &[
            ("V2__reserved.sql", ""),
            (
                "V3__note.sql",
                "-- reserved for the billing team\n/* nothing yet */\n",
            ),
            ("V4__noop.sql", "SELECT 1;\n"),
        ],
        "2s",
    );
    let plan = db.plan();
    let infos: Vec<&Value> = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "empty-migration")
        .collect();
    assert_eq!(infos.len(), 3, "{:#}", plan["findings"]);
    assert!(infos.iter().all(|f| f["severity"] == "info"), "{infos:?}");
    let schema = db.schema();
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let history = db.history();
    assert_eq!(
        history.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    let applied = &plan["steps"][0]["params"]["databases"][0]["pending"];
    for (v, checksum) in &history[1..] {
        let want = applied
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["version"] == *v)
            .unwrap()["checksum"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(checksum, &want, "V{v}: refinery's checksum");
    }
    assert_eq!(db.schema(), schema, "a placeholder changed the schema");
    let run = db.run_id();
    let out = db.cutover(&["rollback", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(
        db.history().len(),
        1,
        "the rollback left placeholder rows in refinery's history"
    );
}

/// golang-migrate and pop wrap a file in its own BEGIN ... COMMIT. cutover leaves the wrapper
/// out, so the file and its refinery row commit together, and a failure leaves nothing behind.
#[test]
fn a_files_own_begin_commit_wrapper_runs_as_one_transaction_with_its_history_row() {
    let db = custom_db(
        &[(
            "V2__wrapped.sql",
            "BEGIN;\nALTER TABLE users ADD COLUMN nick text;\nCREATE TABLE wrapped (id \
             int);\nCOMMIT;\n",
        )],
        "2s",
    );
    let plan = db.plan();
    let rules: Vec<&str> = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"transaction-wrapper"), "{rules:?}");
    assert!(!rules.contains(&"transaction-nesting"), "{rules:?}");
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(db.history().len(), 2);
    assert_eq!(
        db.sql(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND \
             column_name = 'nick'"
        ),
        "1"
    );
    let run = db.run_id();
    let out = db.cutover(&["rollback", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(db.history().len(), 1);
    assert_eq!(
        db.sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'wrapped'"),
        "0"
    );
}

/// A wrapped file that fails half-way commits nothing and is not recorded: the run stops at
/// the migration with the database as it was.
#[test]
fn a_wrapped_file_that_fails_half_way_leaves_nothing_committed() {
    let db = custom_db(
        &[(
            "V2__half.sql",
            "BEGIN;\nCREATE TABLE half (id int);\nALTER TABLE users ADD COLUMN half_done \
             text;\nSELECT 1 / 0;\nCOMMIT;\n",
        )],
        "2s",
    );
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_ne!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(db.history().len(), 1, "{}", transcript(&out));
    assert_eq!(
        db.sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'half'"),
        "0",
        "{}",
        transcript(&out)
    );
}

/// A COMMIT in the middle of a file would commit its first half on its own: `plan` stops with
/// the fix, and `apply` changes nothing.
#[test]
fn a_commit_inside_a_migration_stops_the_plan_and_the_apply() {
    let db = custom_db(&[], "2s");
    std::fs::write(
        db.dir.path().join("migrations/V2__two_halves.sql"),
        "CREATE TABLE first_half (id int);\nCOMMIT;\nCREATE TABLE second_half (id int);\n",
    )
    .unwrap();
    let out = db.cutover(&["plan", "spec.toml"], &[]);
    assert_ne!(out.status.code(), Some(0), "{}", transcript(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("transaction-control-in-migration") && err.contains("V2__two_halves.sql:2"),
        "{err}"
    );
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_ne!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(
        db.sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('first_half', \
             'second_half')"
        ),
        "0"
    );
    assert_eq!(db.history().len(), 1);
}

/// A file of two statements that cannot run in a transaction (two CREATE INDEX CONCURRENTLY):
/// `plan` reports nothing (concurrently-in-transaction is about statements that need the
/// transaction), and the executor runs them one by one outside a transaction, both indexes
/// valid, the file recorded once; a crash right after the step resumes without building twice.
#[test]
fn two_concurrent_index_builds_in_one_file_apply_one_by_one() {
    let db = custom_db(
        &[(
            "V2__two_indexes.sql",
            "CREATE INDEX CONCURRENTLY users_name_idx ON users (name);\nCREATE INDEX \
             CONCURRENTLY users_email_idx ON users (email);\n",
        )],
        "2s",
    );
    let out = db.cutover(&["plan", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let step = "migrate/expand/V2__two_indexes";
    let out = db.cutover(
        &["apply", "spec.toml"],
        &[("CUTOVER_CRASH_AFTER_EFFECT", step)],
    );
    assert_eq!(out.status.code(), None, "{}", transcript(&out));
    let run = db.run_id();
    let out = db.cutover(&["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(db.history().len(), 2);
    assert_eq!(
        db.sql(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE \
             c.relname IN ('users_name_idx', 'users_email_idx') AND i.indisvalid"
        ),
        "2"
    );
}

/// PostgreSQL refuses an enum value in the transaction that added it (ALTER TYPE, Notes).
/// `plan` says so on the line that uses it; the same statements in two files apply.
#[test]
fn an_enum_value_used_where_it_is_added_stops_the_plan_and_two_files_apply() {
    let base = "CREATE TYPE plan_tier AS ENUM ('free');\nALTER TABLE users ADD COLUMN tier \
                plan_tier NOT NULL DEFAULT 'free';\n";
    let db = custom_db(&[("V2__tier.sql", base)], "2s");
    std::fs::write(
        db.dir.path().join("migrations/V3__pro.sql"),
        "ALTER TYPE plan_tier ADD VALUE 'pro';\nALTER TABLE users ALTER COLUMN tier SET DEFAULT \
         'pro';\n",
    )
    .unwrap();
    let out = db.cutover(&["plan", "spec.toml"], &[]);
    assert_ne!(out.status.code(), Some(0), "{}", transcript(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("enum-value-in-same-transaction") && err.contains("V3__pro.sql:2"),
        "{err}"
    );
    // Split: V3 adds the value, V4 uses it; each commits on its own.
    let db = custom_db(
        &[
            ("V2__tier.sql", base),
            ("V3__pro.sql", "ALTER TYPE plan_tier ADD VALUE 'pro';\n"),
            (
                "V4__pro_default.sql",
                "ALTER TABLE users ALTER COLUMN tier SET DEFAULT 'pro';\n",
            ),
        ],
        "2s",
    );
    db.plan();
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(db.history().len(), 4);
    assert_eq!(
        db.sql(
            "SELECT column_default FROM information_schema.columns WHERE table_name = 'users' AND \
             column_name = 'tier'"
        ),
        "'pro'::plan_tier"
    );
}

/// The create-if-missing idiom in a DO block is expand: the type and the column the new
/// version needs exist before it serves, and running the block twice is harmless.
#[test]
fn do_blocks_that_add_what_the_new_version_needs_run_in_expand() {
    let db = custom_db(
        &[
            (
                "V2__status_type.sql",
                "DO $$ BEGIN\n  CREATE TYPE account_status AS ENUM ('active', \
                 'closed');\nEXCEPTION\n  WHEN duplicate_object THEN NULL;\nEND $$;\n",
            ),
            (
                "V3__status_column.sql",
                "DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE \
                 table_name = 'users' AND column_name = 'status') THEN\n    ALTER TABLE users ADD \
                 COLUMN status account_status;\n  END IF;\nEND\n$$;\n",
            ),
        ],
        "2s",
    );
    let plan = db.plan();
    let ids: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"migrate/expand/V2__status_type")
            && ids.contains(&"migrate/expand/V3__status_column"),
        "{ids:?}"
    );
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(
        db.sql(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'users' AND \
             column_name = 'status'"
        ),
        "USER-DEFINED"
    );
}

/// A database whose release directory holds `m/V1__baseline.sql` (`v1`), applied and recorded
/// in refinery's history; the test writes V2 into `m/` afterwards.
fn baseline_db(v1: &str) -> Db {
    let db = Db::create(|dir| {
        std::fs::create_dir(dir.join("m")).unwrap();
        std::fs::write(dir.join("m/V1__baseline.sql"), v1).unwrap();
        "[release]\nname = \"schema\"\n\n[[database]]\nname = \"main\"\nurl_env \
         = \"DATABASE_URL\"\nmigrations = \"m\"\nbaseline = 1\nbackup = { enabled = false \
         }\nbackfill = { batch_size = 700 }\n"
            .to_string()
    });
    db.baseline(&db.dir.path().join("m"));
    db
}

/// Backfill params of the plan's one backfill step.
fn backfill_params(plan: &Value) -> Value {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "backfill")
        .unwrap_or_else(|| panic!("no backfill step: {plan:#}"))["params"]
        .clone()
}

/// A baseline in pg_dump's style (field case f06): session settings, a table without
/// constraints, a sequence owned by the key column, its default and the primary key added by
/// `ALTER TABLE ONLY`. The key is not named `id`.
const PG_DUMP_BASELINE: &str = r#"--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

CREATE TABLE public.invoices (
    invoice_no integer NOT NULL,
    customer text NOT NULL,
    title character varying(200) NOT NULL,
    total numeric(12,2)
);

CREATE SEQUENCE public.invoices_invoice_no_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.invoices_invoice_no_seq OWNED BY public.invoices.invoice_no;

ALTER TABLE ONLY public.invoices ALTER COLUMN invoice_no
    SET DEFAULT nextval('public.invoices_invoice_no_seq'::regclass);

ALTER TABLE ONLY public.invoices
    ADD CONSTRAINT invoices_pkey PRIMARY KEY (invoice_no);
"#;

/// Field case f06: the rename's backfill walks the key pg_dump declared (`invoice_no`), not a
/// guessed `id`, and the release succeeds on a real server with every row copied.
#[test]
fn a_pg_dump_baseline_rename_backfills_by_its_declared_key_on_a_real_database() {
    let db = baseline_db(PG_DUMP_BASELINE);
    // Keys far from 1, and gaps: the walk follows the key, not a row count.
    db.sql("SELECT setval('invoices_invoice_no_seq', 5000)");
    db.sql(
        "INSERT INTO invoices (customer, title, total) SELECT 'c' || g, 'invoice ' || g, g FROM \
         generate_series(1, 2600) g",
    );
    db.sql("DELETE FROM invoices WHERE invoice_no % 7 = 0");
    let rows = db.sql("SELECT count(*) FROM invoices");
    std::fs::write(
        db.dir.path().join("m/V2__rename_title.sql"),
        "ALTER TABLE invoices RENAME COLUMN title TO subject;\n",
    )
    .unwrap();

    let plan = db.plan();
    let params = backfill_params(&plan);
    assert_eq!(params["key"], "invoice_no", "{params:#}");
    assert!(
        params["batch_sql"]
            .as_str()
            .unwrap()
            .contains("ORDER BY invoice_no"),
        "{params:#}"
    );
    let rules: Vec<&str> = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(
        !rules.contains(&"rename-type-unknown") && !rules.contains(&"rename-rewrite-unsupported"),
        "the key and the type are declared: {rules:?}"
    );

    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("finished: succeeded"),
        "{}",
        transcript(&out)
    );
    // Every row's value arrived in the new column; the old one is gone; key and default stay.
    assert_eq!(
        db.sql("SELECT count(*) FROM invoices WHERE subject = 'invoice ' || (invoice_no - 5000)"),
        rows
    );
    assert_eq!(
        db.sql(
            "SELECT string_agg(column_name || ':' || is_nullable, ',' ORDER BY ordinal_position) \
             FROM information_schema.columns WHERE table_name = 'invoices'"
        ),
        "invoice_no:NO,customer:NO,total:YES,subject:NO"
    );
    assert_eq!(
        db.sql(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'invoices'::regclass AND contype = \
             'p'"
        ),
        "invoices_pkey"
    );
    assert_eq!(
        db.sql(
            "INSERT INTO invoices (customer, subject) VALUES ('new', 'after') RETURNING invoice_no"
        ),
        "7601",
        "the sequence default still numbers new rows"
    );
    assert_eq!(db.history().len(), 2);
}

/// Quoted and schema-qualified names go through the rewrite as written: the key is quoted in the
/// backfill, and a table the migrations do not declare (its type and key read from the catalog)
/// works with quoted names too.
#[test]
fn quoted_schema_qualified_names_are_rewritten_and_applied_on_a_real_database() {
    let db = baseline_db(
        r#"CREATE SCHEMA app;
CREATE TABLE app."Invoices" (
    "InvoiceNo" bigint GENERATED ALWAYS AS IDENTITY,
    "Title" text NOT NULL
);
ALTER TABLE ONLY app."Invoices" ADD CONSTRAINT "Invoices_pkey" PRIMARY KEY ("InvoiceNo");
CREATE TABLE "Invoices" (id bigint PRIMARY KEY, "Title" text);
"#,
    );
    // Made outside the migrations: the planner knows neither its type nor its key (`id`).
    db.sql(r#"CREATE TABLE app."Notes" (id bigint PRIMARY KEY, "Body" varchar(80))"#);
    db.sql(r#"INSERT INTO app."Invoices" ("Title") SELECT 'app ' || g FROM generate_series(1, 1500) g"#);
    db.sql(r#"INSERT INTO "Invoices" SELECT g, 'public ' || g FROM generate_series(1, 900) g"#);
    db.sql(r#"INSERT INTO app."Notes" SELECT g, 'note ' || g FROM generate_series(1, 800) g"#);
    std::fs::write(
        db.dir.path().join("m/V2__renames.sql"),
        r#"ALTER TABLE app."Invoices" RENAME COLUMN "Title" TO "Subject";
ALTER TABLE "Invoices" RENAME COLUMN "Title" TO "Subject";
ALTER TABLE app."Notes" RENAME COLUMN "Body" TO "Text";
"#,
    )
    .unwrap();
    let plan = db.plan();
    let keys: Vec<(String, String)> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "backfill")
        .map(|s| {
            (
                s["params"]["table"].as_str().unwrap().to_string(),
                s["params"]["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("app.\"Invoices\"".to_string(), "\"InvoiceNo\"".to_string()),
            ("\"Invoices\"".to_string(), "id".to_string()),
            ("app.\"Notes\"".to_string(), "id".to_string()),
        ]
    );
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(
        db.sql(r#"SELECT count(*) FROM app."Invoices" WHERE "Subject" = 'app ' || "InvoiceNo""#),
        "1500"
    );
    assert_eq!(
        db.sql(r#"SELECT count(*) FROM "Invoices" WHERE "Subject" = 'public ' || id"#),
        "900"
    );
    assert_eq!(
        db.sql(r#"SELECT count(*) FROM app."Notes" WHERE "Text" = 'note ' || id"#),
        "800"
    );
    assert_eq!(
        db.sql(concat!(
            r#"SELECT format_type(atttypid, atttypmod) FROM pg_attribute "#,
            r#"WHERE attrelid = 'app."Notes"'::regclass AND attname = 'Text'"#
        )),
        "character varying(80)",
        "the type came from the catalog"
    );
    assert_eq!(
        db.sql(concat!(
            r#"SELECT count(*) FROM pg_attribute WHERE attrelid IN ('app."Invoices"'::regclass, "#,
            r#"'"Invoices"'::regclass, 'app."Notes"'::regclass) AND attname IN ('Title', 'Body') "#,
            r#"AND NOT attisdropped"#
        )),
        "0"
    );
}

/// Tester case ren_collate on a real server: the renamed column keeps its collation, declared
/// in the migrations (`COLLATE "C"`, written into the ADD COLUMN) or read from the catalog with
/// the type (a table the migrations do not declare).
#[test]
fn a_rename_keeps_the_column_collation_on_a_real_database() {
    let db = baseline_db("CREATE TABLE items (id bigint PRIMARY KEY, code text COLLATE \"C\");\n");
    // Made outside the migrations: its type and collation come from the catalog.
    db.sql("CREATE TABLE notes (id bigint PRIMARY KEY, tag varchar(20) COLLATE \"C\", body text)");
    db.sql("INSERT INTO items SELECT g, 'code ' || g FROM generate_series(1, 300) g");
    db.sql("INSERT INTO notes SELECT g, 'tag ' || g, 'b' FROM generate_series(1, 200) g");
    std::fs::write(
        db.dir.path().join("m/V2__renames.sql"),
        "ALTER TABLE items RENAME COLUMN code TO sku;\nALTER TABLE notes RENAME COLUMN tag TO \
         label;\nALTER TABLE notes RENAME COLUMN body TO text;\n",
    )
    .unwrap();
    let plan = db.plan();
    assert!(
        plan.to_string()
            .contains(r#"ALTER TABLE items ADD COLUMN sku text COLLATE \"C\";"#),
        "{plan:#}"
    );
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(
        db.sql(concat!(
            "SELECT string_agg(attrelid::regclass || '.' || attname || ':' || ",
            "format_type(atttypid, atttypmod) || ':' || coalesce(collname, '-'), ',' ",
            "ORDER BY attrelid::regclass::text, attname) FROM pg_attribute ",
            "LEFT JOIN pg_collation c ON c.oid = attcollation AND attcollation <> 100 ",
            "WHERE attrelid IN ('items'::regclass, 'notes'::regclass) AND attnum > 1 ",
            "AND NOT attisdropped"
        )),
        "items.sku:text:C,notes.label:character varying(20):C,notes.text:text:-"
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM items WHERE sku = 'code ' || id"),
        "300"
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM notes WHERE label = 'tag ' || id"),
        "200"
    );
}

/// Field case f07 on a real server: renaming the primary key (an identity column, with and
/// without a foreign key referencing it) is refused before anything runs, even with
/// --allow-error-findings, and the table keeps its key and identity.
#[test]
fn a_primary_key_rename_is_refused_before_anything_changes_on_a_real_database() {
    for posts in [
        "CREATE TABLE posts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, member_id bigint \
         NOT NULL REFERENCES members (id), body text);",
        "",
    ] {
        let db = baseline_db(&format!(
            "CREATE TABLE members (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, display_name \
             text NOT NULL);\n{posts}\n"
        ));
        db.sql(
            "INSERT INTO members (display_name) SELECT 'm' || g FROM generate_series(1, 1500) g",
        );
        std::fs::write(
            db.dir.path().join("m/V2__rename_member_pk.sql"),
            "-- the key gets a clearer name\nALTER TABLE members RENAME COLUMN id TO member_id;\n",
        )
        .unwrap();
        let before = db.schema();
        for args in [
            &["apply", "spec.toml"][..],
            &["apply", "spec.toml", "--allow-error-findings"][..],
        ] {
            let out = db.cutover(args, &[]);
            let text = transcript(&out);
            assert_eq!(out.status.code(), Some(2), "{posts}: {text}");
            assert!(
                text.contains("m/V2__rename_member_pk.sql:2: error [rename-rewrite-unsupported]")
                    && text.contains("`id` is the primary key (`members_pkey`)")
                    && text.contains("identity column"),
                "{posts}: {text}"
            );
            assert_eq!(
                text.contains("referenced by the foreign key `posts_member_id_fkey` of `posts`"),
                !posts.is_empty(),
                "{text}"
            );
        }
        assert_eq!(db.schema(), before, "{posts}: the schema changed");
        assert_eq!(
            db.sql(
                "SELECT attidentity FROM pg_attribute WHERE attrelid = 'members'::regclass AND \
                 attname = 'id'"
            ),
            "a"
        );
        assert_eq!(db.history().len(), 1);
        assert!(
            !db.dir.path().join(".cutover/runs").exists()
                || std::fs::read_dir(db.dir.path().join(".cutover/runs"))
                    .unwrap()
                    .next()
                    .is_none(),
            "no run was started"
        );
    }
}

/// Under a pseudo-terminal (util-linux `script`), a backfill is drawn as a bar with its rate and
/// ETA while it runs; the lines of finished steps are still printed, as off a terminal.
#[test]
fn on_a_terminal_a_backfill_is_drawn_as_a_bar_with_rate_and_eta() {
    let db = rename_db(20_000, 500);
    let spec = db.dir.path().join("spec.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        text.replace("batch_size = 500", "batch_size = 500, pause = \"50ms\""),
    )
    .unwrap();
    let command = format!("{} apply spec.toml --yes", env!("CARGO_BIN_EXE_cutover"));
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(db.dir.path())
        .env("CUTOVER_STATE_DIR", db.dir.path().join(".cutover"))
        .env("DATABASE_URL", db.url())
        .env("TERM", "xterm")
        .output()
        .expect("util-linux `script` runs (Debian's bsdutils)");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(
        screen.contains("backfill/users.full_name [")
            && screen.contains("/20000 rows (")
            && screen.contains("ETA"),
        "no backfill bar:\n{screen}"
    );
    assert!(
        screen.contains("done    backfill/users.full_name")
            && screen.contains("finished: succeeded"),
        "{screen}"
    );
}

/// A plain `CREATE INDEX` in a migration of its own runs as `CREATE INDEX CONCURRENTLY` outside
/// a transaction: while the build waits for a transaction that wrote to the table, the running
/// version's new writes go through (a plain build would queue its SHARE lock behind that
/// transaction, and every write after it). Then the index is valid and the migration recorded.
#[test]
fn a_plain_create_index_is_built_concurrently_while_the_old_version_writes() {
    let db = custom_db(
        &[(
            "V2__index_users_email.sql",
            "-- golang-migrate style: the index the new version's lookups need\nCREATE INDEX \
             users_email_idx ON users (email);\n",
        )],
        "20s",
    );
    let plan = db.plan();
    let step = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "migrate/expand/V2__index_users_email")
        .unwrap();
    assert_eq!(
        step["params"]["sql"],
        serde_json::json!(["CREATE INDEX CONCURRENTLY users_email_idx ON users (email);"]),
        "{step:#}"
    );
    assert_eq!(step["params"]["transactional"], false, "{step:#}");
    let rules: Vec<&str> = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["index-built-concurrently"],
        "{:#}",
        plan["findings"]
    );

    db.sql("INSERT INTO users (name, email) SELECT 'u' || g, 'u' || g || '@x' FROM generate_series(1, 2000) g");
    // A transaction of the old version that wrote and is still open.
    let mut writer = db.session(&[
        "BEGIN",
        "INSERT INTO users (name) VALUES ('open')",
        "SELECT pg_sleep(6)",
        "COMMIT",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let apply = db.spawn(&["apply", "spec.toml"]);
    // Wait until the build waits for the open transaction.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let waiting = db.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX%' AND \
             wait_event_type = 'Lock'",
        );
        if waiting == "1" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the index build never waited for the open transaction"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The old version writes meanwhile, and is not made to wait.
    db.sql(
        "SET statement_timeout = '1s'; INSERT INTO users (name, email) VALUES ('during', 'd@x')",
    );
    let out = apply.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(writer.wait().unwrap().success());
    assert_eq!(
        db.sql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_idx'::regclass"),
        "t"
    );
    assert_eq!(
        db.history().iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [1, 2]
    );
}

/// `ADD CONSTRAINT ... UNIQUE` on a live table runs as a concurrent unique index build and an
/// attach (`USING INDEX`): the old version's writes go on during the build; the constraint is
/// there at the end. With duplicates, the build fails, the INVALID index it leaves is dropped,
/// and nothing is recorded.
#[test]
fn a_unique_constraint_is_built_concurrently_then_attached() {
    let db = custom_db(
        &[(
            "V2__unique_email.sql",
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);\n",
        )],
        "20s",
    );
    let plan = db.plan();
    let step = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "migrate/contract/V2__unique_email")
        .unwrap();
    assert_eq!(
        step["params"]["sql"],
        serde_json::json!([
            "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);",
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;"
        ]),
        "{step:#}"
    );
    assert_eq!(step["params"]["transactional"], false, "{step:#}");

    // Duplicates: the build fails and leaves nothing behind.
    db.sql("INSERT INTO users (name, email) VALUES ('a', 'dup@x'), ('b', 'dup@x')");
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    assert!(
        transcript(&out).contains("could not create unique index"),
        "{}",
        transcript(&out)
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_class WHERE relname = 'users_email_key'"),
        "0"
    );
    assert_eq!(db.history().len(), 1);

    // Fixed: the build waits for an open writing transaction while new writes go through.
    db.sql("DELETE FROM users WHERE name = 'b'");
    db.sql(
        "INSERT INTO users (name, email) SELECT 'u' || g, 'u' || g || '@x' FROM \
         generate_series(1, 2000) g",
    );
    let mut writer = db.session(&[
        "BEGIN",
        "INSERT INTO users (name) VALUES ('open')",
        "SELECT pg_sleep(5)",
        "COMMIT",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let run = db.run_id();
    let resume = db.spawn(&["resume", &run]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while db.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CREATE UNIQUE INDEX%' AND \
         wait_event_type = 'Lock'",
    ) != "1"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the build never waited for the open transaction"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    db.sql("SET statement_timeout = '1s'; INSERT INTO users (name, email) VALUES ('w', 'w@x')");
    let out = resume.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(writer.wait().unwrap().success());
    assert_eq!(
        db.sql(
            "SELECT contype::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE \
             conname = 'users_email_key'"
        ),
        "u UNIQUE (email)"
    );
    assert_eq!(
        db.history().iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [1, 2]
    );
}

/// SIGKILL between the unique index build and the attach: the resume reads from the catalog
/// that the index is built and valid and the constraint is not there, builds nothing again,
/// and attaches it.
#[test]
fn kill_9_between_the_unique_index_build_and_the_attach_then_resume() {
    let db = custom_db(
        &[(
            "V2__unique_email.sql",
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);\n",
        )],
        "30s",
    );
    db.sql(
        "INSERT INTO users (name, email) SELECT 'u' || g, 'u' || g || '@x' FROM \
         generate_series(1, 1000) g",
    );
    // A reader in an open transaction: the build (READ COMMITTED, no snapshot held) does not
    // wait for it, the attach's ACCESS EXCLUSIVE lock does.
    // Idle in the transaction (a shell sleep, no query running, so no snapshot held).
    let mut reader = db.session(&[
        "BEGIN",
        "SELECT count(*) FROM users",
        "\\! sleep 3",
        "COMMIT",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut apply = db.spawn(&["apply", "spec.toml"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER TABLE users ADD \
         CONSTRAINT%' AND wait_event_type = 'Lock'",
    ) != "1"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the attach never waited for the reader"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    apply.kill().unwrap(); // SIGKILL
    apply.wait().unwrap();
    assert!(reader.wait().unwrap().success());
    let built = db.sql("SELECT oid FROM pg_class WHERE relname = 'users_email_key'");
    assert!(!built.is_empty(), "the index was built before the kill");
    let run = db.run_id();
    let out = db.cutover(&["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(
        db.sql("SELECT oid FROM pg_class WHERE relname = 'users_email_key'"),
        built,
        "the index was built again"
    );
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_constraint WHERE conname = 'users_email_key'"),
        "1"
    );
    assert_eq!(
        db.history().iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [1, 2]
    );
}

/// A CHECK added without `NOT VALID` runs as `ADD ... NOT VALID` and then `VALIDATE` in its
/// own transaction: while the validation scans (slow on purpose: the check calls a function
/// that sleeps), the add's brief lock is gone and the old version writes. SIGKILL during the
/// scan, then resume: the add is not repeated, the validation runs, the constraint is valid.
#[test]
fn a_check_is_added_not_valid_then_validated_across_a_kill() {
    let db = custom_db(
        &[(
            "V2__orders_total_positive.sql",
            "ALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK (slow_positive(total));\n",
        )],
        "30s",
    );
    db.sql(
        "CREATE FUNCTION slow_positive(n int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS \
         $$ BEGIN PERFORM pg_sleep(0.01); RETURN n > 0; END $$",
    );
    db.sql("CREATE TABLE orders (id bigint PRIMARY KEY, total int)");
    db.sql("INSERT INTO orders SELECT g, g FROM generate_series(1, 400) g");
    let plan = db.plan();
    let step = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["id"]
                .as_str()
                .unwrap()
                .ends_with("/V2__orders_total_positive")
        })
        .unwrap();
    assert_eq!(
        step["params"]["sql"],
        serde_json::json!([
            "ALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK \
             (slow_positive(total)) NOT VALID;",
            "ALTER TABLE orders VALIDATE CONSTRAINT orders_total_positive;"
        ]),
        "{step:#}"
    );
    let mut apply = db.spawn(&["apply", "spec.toml"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while db.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER TABLE orders VALIDATE%' \
         AND state = 'active'",
    ) != "1"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the validation never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The constraint is there (NOT VALID) and checks new rows; the old version's writes go on.
    db.sql("SET statement_timeout = '1s'; INSERT INTO orders VALUES (1001, 1)");
    assert_eq!(
        db.sql("SELECT convalidated FROM pg_constraint WHERE conname = 'orders_total_positive'"),
        "f"
    );
    apply.kill().unwrap(); // SIGKILL
    apply.wait().unwrap();
    let oid = db.sql("SELECT oid FROM pg_constraint WHERE conname = 'orders_total_positive'");
    let run = db.run_id();
    let out = db.cutover(&["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(
        db.sql(
            "SELECT oid || ' ' || convalidated FROM pg_constraint WHERE conname = \
             'orders_total_positive'"
        ),
        format!("{oid} true"),
        "the constraint was added again, or not validated"
    );
    assert_eq!(
        db.history().iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [1, 2]
    );
}

/// `SET NOT NULL` on a column the old version leaves NULL runs in contract through a validated
/// CHECK. NULL rows still there: the validation fails naming the check, the column stays
/// nullable; filled, the resume does what is left and the column ends NOT NULL, the check gone.
#[test]
fn set_not_null_is_enforced_through_a_validated_check_and_resumes_after_a_failure() {
    let db = custom_db(
        &[(
            "V2__email_required.sql",
            "-- pop/fizz: change_column(\"users\", \"email\", \"text\", {})\nALTER TABLE users \
             ALTER COLUMN email SET NOT NULL;\n",
        )],
        "5s",
    );
    let plan = db.plan();
    let step = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "migrate/contract/V2__email_required")
        .unwrap_or_else(|| panic!("no contract step: {plan:#}"));
    assert_eq!(
        step["params"]["sql"],
        serde_json::json!([
            "ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT \
             VALID;",
            "ALTER TABLE users VALIDATE CONSTRAINT users_email_not_null;",
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
            "ALTER TABLE users DROP CONSTRAINT users_email_not_null;"
        ]),
        "{step:#}"
    );
    db.sql("INSERT INTO users (name, email) VALUES ('a', 'a@x'), ('b', NULL)");
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    assert!(
        transcript(&out).contains("users_email_not_null"),
        "{}",
        transcript(&out)
    );
    let not_null = || {
        db.sql("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email'")
    };
    assert_eq!(not_null(), "f");
    assert_eq!(db.history().len(), 1);

    db.sql("UPDATE users SET email = name || '@unknown' WHERE email IS NULL");
    let run = db.run_id();
    let out = db.cutover(&["resume", &run], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(not_null(), "t");
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_constraint WHERE conname = 'users_email_not_null'"),
        "0"
    );
    assert_eq!(
        db.history().iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [1, 2]
    );
}

/// A constraint already there under the name a rewrite picks is not the release's: the first
/// attempt does not adopt it (nor, later, drop it); PostgreSQL's refusal stops the step.
#[test]
fn a_rewrite_never_adopts_a_constraint_it_did_not_add() {
    let db = custom_db(
        &[(
            "V2__email_required.sql",
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n",
        )],
        "5s",
    );
    db.sql(
        "ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (length(email) > 3) NOT VALID",
    );
    let out = db.cutover(&["apply", "spec.toml"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    assert!(
        transcript(&out).contains("already exists"),
        "{}",
        transcript(&out)
    );
    assert_eq!(
        db.sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'users_email_not_null'"),
        "CHECK ((length(email) > 3)) NOT VALID"
    );
    assert_eq!(db.history().len(), 1);
}

/// An index or constraint already there under the name a migration's statement creates is not
/// taken for that statement's work, on the first attempt or on a resume after it failed: the
/// statement runs and PostgreSQL refuses it (here a unique key whose default name belongs to a
/// wider index, and a CHECK whose name is taken), so duplicates are never let in silently.
#[test]
fn a_name_already_taken_fails_the_step_on_every_attempt_and_adopts_nothing() {
    for (migration, existing, check) in [
        (
            "ALTER TABLE users ADD UNIQUE (email);\n",
            "CREATE UNIQUE INDEX users_email_key ON users (email, name)",
            "SELECT pg_get_indexdef('users_email_key'::regclass) || ' ' || (SELECT count(*) FROM \
             pg_constraint WHERE conname = 'users_email_key')",
        ),
        (
            "ALTER TABLE users ADD CONSTRAINT users_name_chk CHECK (length(name) > 1);\n",
            "ALTER TABLE users ADD CONSTRAINT users_name_chk CHECK (length(name) > 0) NOT VALID",
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'users_name_chk'",
        ),
    ] {
        let db = custom_db(&[("V2__taken.sql", migration)], "5s");
        db.sql(existing);
        let was = db.sql(check);
        let out = db.cutover(&["apply", "spec.toml"], &[]);
        assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
        assert!(
            transcript(&out).contains("already exists"),
            "{}",
            transcript(&out)
        );
        let run = db.run_id();
        let out = db.cutover(&["resume", &run], &[]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{migration}: {}",
            transcript(&out)
        );
        assert_eq!(db.sql(check), was, "{migration}");
        assert_eq!(db.history().len(), 1, "{migration}");
    }
}
