//! The seed's release end to end, on real parts: PostgreSQL, the Docker engine, nginx and
//! HAProxy, the sample app's images built here, and a load generator sending reads and writes
//! through the router for the whole release.
//!
//! What "zero failed requests" means is the load generator's contract (tests/loadgen): keep-alive
//! connections, a GET retried once only when its connection closed before any response byte,
//! a POST never retried, every failure counted.

use crate::common::{root, transcript};
use crate::pg::Cluster;
use crate::stack::{Apps, Kind, Router, free_ports};
use cutover_loadgen::Summary;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

const UPSTREAM: &str = "api";

/// One release's world.
pub(crate) struct World {
    _pg: Cluster,
    pub(crate) url: String,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) apps: Apps,
    pub(crate) router: Router,
    pub(crate) port: u16,
    pub(crate) candidate: u16,
    pub(crate) replicas: u16,
}

impl World {
    /// PostgreSQL at the baseline with `rows` users, version 1 on `replicas` containers, and the
    /// router in front, set up with every server the release will use.
    pub(crate) fn new(kind: Kind, replicas: u16, rows: u32) -> World {
        let pg = Cluster::start();
        pg.psql("CREATE DATABASE app");
        let url = pg.url_for("app");
        let dir = tempfile::Builder::new()
            .prefix("cutover-e2e-")
            .tempdir()
            .unwrap();
        let base = free_ports(replicas * 2);
        let (port, candidate) = (base, base + replicas);
        let apps = Apps::new();
        let servers: Vec<(u16, u32)> = (0..replicas)
            .map(|i| (port + i, 100))
            .chain((0..replicas).map(|i| (candidate + i, 0)))
            .collect();
        let router = match kind {
            Kind::Nginx => Router::nginx(dir.path(), UPSTREAM, &servers[..replicas as usize]),
            Kind::Haproxy => Router::haproxy(dir.path(), UPSTREAM, &servers),
        };
        let w = World {
            _pg: pg,
            url,
            dir,
            apps,
            router,
            port,
            candidate,
            replicas,
        };
        w.sql(
            &std::fs::read_to_string(root().join("migrations-sample/rename/V1__create_users.sql"))
                .unwrap(),
        );
        w.sql(&format!(
            "INSERT INTO users (name, email) SELECT 'user ' || g, 'u' || g || '@example.com' FROM \
             generate_series(1, {rows}) g"
        ));
        // refinery's history at the baseline, with refinery's checksum as the plan computes it.
        w.write_spec("canary", "");
        let plan = w.cutover(&["plan", "spec.toml", "--format", "json"]);
        let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
        let v1 = &plan["steps"][0]["params"]["databases"][0]["applied"][0];
        w.sql(
            "CREATE TABLE refinery_schema_history (version INT4 PRIMARY KEY, name VARCHAR(255), \
             applied_on VARCHAR(255), checksum VARCHAR(255))",
        );
        w.sql(&format!(
            "INSERT INTO refinery_schema_history VALUES (1, '{}', '2026-01-01T00:00:00Z', '{}')",
            v1["name"].as_str().unwrap(),
            v1["checksum"].as_str().unwrap()
        ));
        for i in 0..replicas {
            w.apps.start("1.0.0", port + i, &w.url);
        }
        w
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The seed's migrations and a type change in the same release: `V3` widens
    /// `users.legacy_flags` to bigint, which `plan` rewrites with a view the new version reads
    /// `users` through (started with `PGOPTIONS`). Specs written after this use them.
    pub(crate) fn with_type_change(&self) {
        let m = self.path().join("m");
        std::fs::create_dir_all(&m).unwrap();
        for f in ["V1__create_users.sql", "V2__rename_name_to_full_name.sql"] {
            std::fs::copy(root().join("migrations-sample/rename").join(f), m.join(f)).unwrap();
        }
        std::fs::write(
            m.join("V3__widen_legacy_flags.sql"),
            "ALTER TABLE users ALTER COLUMN legacy_flags TYPE bigint;\n",
        )
        .unwrap();
    }

    /// Writes `spec.toml` for `strategy`; `env` is extra TOML for the new version's env table.
    pub(crate) fn write_spec(&self, strategy: &str, env: &str) {
        let strategy = match strategy {
            "canary" => {
                "kind = \"canary\"\nsteps = [10, 25, 50, 100]\npause = \"1s\"\nanalysis = { window \
                 = \"2s\", max_error_rate = 0.01, max_p99_latency = \"500ms\", min_requests = 5 }"
                    .to_string()
            }
            "blue-green" => "kind = \"blue-green\"".to_string(),
            "rolling" => "kind = \"rolling\"\nbatch_size = 1\ndelay = \"1s\"".to_string(),
            "recreate" => "kind = \"recreate\"".to_string(),
            other => panic!("{other}"),
        };
        let router = self.router.spec();
        let spec = format!(
            "[release]\nname = \"users-full-name\"\non_failure = \"rollback\"\n\n[[service]]\nname \
             = \"{svc}\"\nimage = \"cutover-sample-app\"\ncurrent = \"1.0.0\"\ntarget \
             = \"1.1.0\"\nport = {port}\ncandidate_port = {candidate}\nreplicas = \
             {replicas}\nupstream = \"{UPSTREAM}\"\nsecret_env = [\"DATABASE_URL\"]\nenv = {{ {env} \
             }}\n\n[service.health]\npath = \"/health\"\ninterval = \"200ms\"\ntimeout \
             = \"20s\"\n\n[service.strategy]\n{strategy}\n\n[[database]]\nname = \"main\"\nurl_env \
             = \"DATABASE_URL\"\nmigrations = \"{migrations}\"\nbaseline = 1\nlock_timeout \
             = \"2s\"\nbackup = {{ dir = \"backups\" }}\nbackfill = {{ batch_size = 500 \
             }}\n\n{router}",
            svc = self.apps.service,
            port = self.port,
            candidate = self.candidate,
            replicas = self.replicas,
            migrations = if self.path().join("m").is_dir() {
                self.path().join("m")
            } else {
                root().join("migrations-sample/rename")
            }
            .display(),
        );
        std::fs::write(self.path().join("spec.toml"), spec).unwrap();
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cutover"));
        c.args(args)
            .current_dir(self.path())
            .env("DATABASE_URL", &self.url)
            .env("NO_COLOR", "1");
        c
    }

    pub(crate) fn cutover(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
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
                &self.url,
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
    }

    pub(crate) fn columns(&self) -> String {
        self.sql(
            "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM \
             information_schema.columns WHERE table_name = 'users'",
        )
    }

    pub(crate) fn history(&self) -> String {
        self.sql(
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM refinery_schema_history",
        )
    }

    /// Every write the load generator saw acknowledged is in the table, under `column`.
    pub(crate) fn assert_writes_kept(&self, load: &Summary, column: &str) {
        assert!(
            !load.acked_writes.is_empty(),
            "the load generator got no write acknowledged"
        );
        let rows = self.sql(&format!(
            "SELECT string_agg(id || '=' || {column}, E'\\n') FROM users WHERE {column} LIKE 'lg-%'"
        ));
        let present: std::collections::BTreeSet<&str> = rows.lines().collect();
        for w in &load.acked_writes {
            let key = format!("{}={}", w.id, w.name);
            assert!(
                present.contains(key.as_str()),
                "acknowledged write {key} is missing"
            );
        }
    }

    pub(crate) fn try_run_dir(&self) -> Option<PathBuf> {
        let runs = self.path().join(".cutover/runs");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs)
            .ok()?
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        dirs.pop()
    }

    pub(crate) fn run_dir(&self) -> PathBuf {
        self.try_run_dir().expect("no run directory")
    }

    /// The schema without cutover's own bookkeeping table.
    pub(crate) fn schema(&self) -> String {
        let out = Command::new("pg_dump")
            .args(["--schema-only", "--no-owner", "-T", "cutover_*", &self.url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The step `step` of the run as `cutover status --format json` shows it.
    pub(crate) fn status_of(&self, step: &str) -> Option<Value> {
        let out = self.cutover(&[
            "status",
            "--format",
            "json",
            self.try_run_dir()?.to_str().unwrap(),
        ]);
        let doc: Value = serde_json::from_slice(&out.stdout).ok()?;
        doc["steps"]
            .as_array()?
            .iter()
            .find(|s| s["id"] == step)
            .cloned()
    }

    pub(crate) fn state_of(&self, step: &str) -> Option<String> {
        self.status_of(step)?["state"].as_str().map(String::from)
    }

    /// How long the step `step` of the run took, from `cutover status`.
    pub(crate) fn step_duration_ms(&self, step: &str) -> Option<u64> {
        self.status_of(step)?["duration_ms"].as_u64()
    }
}

/// The load generator, as its own process, through the router.
pub(crate) struct Load {
    child: Child,
    pub(crate) dir: tempfile::TempDir,
}

fn loadgen_bin() -> PathBuf {
    // target/<profile>/deps/<test binary> -> target/<profile>/loadgen
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("loadgen");
    if !bin.exists() {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args(["build", "-q", "-p", "cutover-loadgen", "--target-dir"])
            .arg(profile_dir.parent().unwrap());
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let out = cargo.current_dir(root()).output().unwrap();
        assert!(
            out.status.success(),
            "building the load generator failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(bin.exists(), "no load generator at {}", bin.display());
    bin
}

impl Load {
    pub(crate) fn start(port: u16, rate: u32) -> Load {
        Self::start_with(port, rate, &[])
    }

    /// With extra loadgen arguments.
    pub(crate) fn start_with(port: u16, rate: u32, extra: &[&str]) -> Load {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(loadgen_bin())
            .args(extra)
            .args([
                "--url",
                &format!("http://127.0.0.1:{port}"),
                "--rate",
                &rate.to_string(),
                "--connections",
                "4",
                "--write-ratio",
                "0.2",
            ])
            .arg("--stop-file")
            .arg(dir.path().join("stop"))
            .arg("--ready-file")
            .arg(dir.path().join("ready"))
            .arg("--out")
            .arg(dir.path().join("summary.json"))
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while !dir.path().join("ready").exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no request succeeded through the router within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // A few seconds of steady traffic on version 1 before the release starts.
        std::thread::sleep(Duration::from_secs(2));
        Load { child, dir }
    }

    pub(crate) fn stop(self) -> Summary {
        let s = self.stop_any_rate();
        assert!(
            s.requests as f64 / s.duration_s >= 100.0,
            "the load was below 100 requests/s"
        );
        s
    }

    pub(crate) fn stop_any_rate(mut self) -> Summary {
        std::thread::sleep(Duration::from_secs(1));
        std::fs::write(self.dir.path().join("stop"), "").unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "loadgen exited with {status}");
        let s: Summary =
            serde_json::from_slice(&std::fs::read(self.dir.path().join("summary.json")).unwrap())
                .unwrap();
        eprintln!(
            "load: {} requests in {:.1} s ({:.0}/s), {} failed ({} GET, {} POST), {} GET retried \
             ok, {} late, max latency {:.0} ms, versions {:?}, first failure: {:?}",
            s.requests,
            s.duration_s,
            s.requests as f64 / s.duration_s,
            s.failed,
            s.by_method.get.failed,
            s.by_method.post.failed,
            s.retried_ok,
            s.late,
            s.latency_ms.max,
            s.versions,
            s.first_failure
        );
        s
    }
}

pub(crate) fn assert_release_done(w: &World, out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", transcript(out));
    assert_eq!(
        w.columns(),
        "created_at,email,full_name,id,legacy_flags",
        "the contract phase dropped `name`, the expand phase added `full_name`"
    );
    // With the type change, V3 is applied too.
    let history = if w.path().join("m").is_dir() {
        "1,2,3"
    } else {
        "1,2"
    };
    assert_eq!(w.history(), history);
    let containers = w.apps.containers();
    assert!(
        containers
            .iter()
            .all(|(n, running)| *running && n.contains("1.1.0")),
        "only 1.1.0 runs, 1.0.0 is removed: {containers:?}"
    );
    assert_eq!(containers.len(), w.replicas as usize);
}

fn canary_release(kind: Kind) {
    let w = World::new(kind, 1, 5000);
    w.with_type_change();
    w.write_spec("canary", "");
    dry_run_checks_the_world_and_walks_the_release(&w);
    let load = Load::start(w.router.port, 150);
    let out = w.cutover(&["apply", "spec.toml"]);
    let s = load.stop();
    eprintln!("{}", transcript(&out));
    assert_release_done(&w, &out);
    w.assert_writes_kept(&s, "full_name");
    assert!(
        s.versions.get("1.1.0").copied().unwrap_or(0) > 0
            && s.versions.get("1.0.0").copied().unwrap_or(0) > 0
    );
    // The type change went through the new version's view: swapped in, the view gone.
    assert_eq!(
        w.sql(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'users' AND \
             column_name = 'legacy_flags' UNION ALL SELECT count(*)::text FROM pg_namespace \
             WHERE nspname LIKE 'cutover_v%'"
        ),
        "bigint\n0"
    );
    match kind {
        Kind::Haproxy => {
            assert_eq!(
                s.failed, 0,
                "zero failed requests behind HAProxy: {:?}",
                s.first_failure
            );
            let weights = w.router.weights(UPSTREAM);
            assert_eq!(
                weights,
                [
                    (format!("p{}", w.port), 0),
                    (format!("p{}", w.candidate), 100)
                ]
                .into_iter()
                .collect()
            );
            let cfg = w.router.config_bytes();
            assert!(
                cfg.contains(&format!("server p{} 127.0.0.1:{} weight 0", w.port, w.port))
                    && cfg.contains(&format!(
                        "server p{} 127.0.0.1:{} weight 100",
                        w.candidate, w.candidate
                    )),
                "{cfg}"
            );
        }
        Kind::Nginx => {
            // A reload closes idle keep-alive connections: GETs survive by the one allowed retry,
            // POSTs that crossed a close are reported.
            assert_eq!(
                s.by_method.get.failed, 0,
                "zero failed GETs behind nginx: {:?}",
                s.first_failure
            );
            eprintln!(
                "nginx: {} POST failures across the release's reloads",
                s.by_method.post.failed
            );
            let up = w.router.config_bytes();
            assert_eq!(
                up,
                format!(
                    "upstream {UPSTREAM} {{\n    keepalive 16;\n    server 127.0.0.1:{} \
                     weight=100;\n}}\n",
                    w.candidate
                )
            );
        }
    }
}

/// `apply --dry-run` against the real world: preflight runs for real (database, history,
/// images, router) and passes, every other step is described, the log is marked dry-run, and a
/// rollback preview of it stops at the first pivot it meets. Nothing changes.
fn dry_run_checks_the_world_and_walks_the_release(w: &World) {
    let state = tempfile::tempdir().unwrap();
    let schema = w.schema();
    let mut dry = w.command(&["apply", "spec.toml", "--dry-run", "--state-dir"]);
    let out = dry.arg(state.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("(dry run: nothing is changed)")
            && stdout.contains("done    preflight")
            && !stdout.contains("done    preflight (0.0s): dry run")
            && stdout.contains("done    migrate/expand/V2__rename_name_to_full_name"),
        "{stdout}"
    );
    assert_eq!(w.schema(), schema, "a dry run changes nothing");
    let run_dir = std::fs::read_dir(state.path().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let preview = |extra: &[&str]| {
        let out = w
            .command(&["rollback", "--dry-run"])
            .args(extra)
            .arg(run_dir.join("events.log"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let svc = &w.apps.service;
    let text = preview(&[]);
    assert!(text.contains(&format!("stop at cleanup/{svc}")), "{text}");
    let text = preview(&["--to", &format!("shift/{svc}/100")]);
    assert!(
        text.contains(&format!("stop at cleanup/{svc}"))
            && !text.contains(&format!("retire/{svc}")),
        "{text}"
    );
}

#[test]
fn seed_release_behind_haproxy() {
    canary_release(Kind::Haproxy);
}

#[test]
fn seed_release_behind_nginx() {
    canary_release(Kind::Nginx);
}

/// A 1.1.0 that fails every /users request: the analysis gate fails at 10%, the run rolls back,
/// and everything is as before the release.
fn bad_release(kind: Kind) {
    let w = World::new(kind, 1, 2000);
    w.write_spec("canary", "FAIL_RATE = \"1\"");
    let router_before = w.router.config_bytes();
    let weights_before = (kind == Kind::Haproxy).then(|| w.router.weights(UPSTREAM));
    let schema_before = w.schema();
    let load = Load::start(w.router.port, 150);
    let out = w.cutover(&["apply", "spec.toml"]);
    let s = load.stop();
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("analysis gate failed: error rate"), "{text}");
    assert_eq!(
        w.router.config_bytes(),
        router_before,
        "the router's config is byte-identical after the rollback"
    );
    if let Some(before) = weights_before {
        assert_eq!(w.router.weights(UPSTREAM), before);
    }
    assert_eq!(
        w.schema(),
        schema_before,
        "the schema (pg_dump --schema-only) is back to its pre-expand state"
    );
    assert_eq!(w.history(), "1");
    w.assert_writes_kept(&s, "name");
    let containers = w.apps.containers();
    assert_eq!(
        containers,
        vec![(format!("{}-1.0.0-{}", w.apps.service, w.port), true)],
        "1.0.0 serves, 1.1.0 is removed"
    );
    // All traffic is back on 1.0.0: a fresh burst sees only it.
    let after = Load::start(w.router.port, 120).stop();
    assert_eq!(after.failed, 0);
    assert_eq!(after.versions.keys().collect::<Vec<_>>(), vec!["1.0.0"]);
}

#[test]
fn bad_release_rolls_back_behind_haproxy() {
    bad_release(Kind::Haproxy);
}

#[test]
fn bad_release_rolls_back_behind_nginx() {
    bad_release(Kind::Nginx);
}

/// A 1.1.0 that fails half of its /users requests, at 10% with pauses of `pause` and a gate
/// needing `min_requests`: the gate, watched during the pause, rolls the release back within
/// seconds of the canary's first failure, not after the pause. Returns (failed requests, ms
/// from the first failure to the last answer of 1.1.0, ms the pause lasted) for the benchmark.
pub(crate) fn bad_canary_in_a_pause(kind: Kind, pause: &str, min_requests: u32) -> (u64, u64, u64) {
    let w = World::new(kind, 1, 2000);
    w.write_spec("canary", "FAIL_RATE = \"0.5\"");
    let spec = std::fs::read_to_string(w.path().join("spec.toml")).unwrap();
    let spec = spec
        .replace("pause = \"1s\"", &format!("pause = \"{pause}\""))
        .replace("window = \"2s\"", "window = \"10s\"")
        .replace(
            "min_requests = 5",
            &format!("min_requests = {min_requests}"),
        );
    std::fs::write(w.path().join("spec.toml"), spec).unwrap();
    let timeline = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start_with(
        w.router.port,
        150,
        &["--timeline", timeline.path().to_str().unwrap()],
    );
    let out = w.cutover(&["apply", "spec.toml"]);
    let s = load.stop();
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("(background analysis"), "{text}");
    let pause_ms = w
        .step_duration_ms(&format!("pause/{}/10", w.apps.service))
        .unwrap_or_else(|| panic!("no pause/{}/10 in the run: {text}", w.apps.service));
    // `status` shows the failing evaluation on the pause, in JSON and as text.
    let run_dir = w.run_dir();
    let pause = w
        .status_of(&format!("pause/{}/10", w.apps.service))
        .unwrap();
    assert_eq!(pause["evaluation"]["verdict"], "fail", "{pause}");
    assert!(
        pause["evaluation"]["requests"].as_u64().unwrap() >= u64::from(min_requests),
        "{pause}"
    );
    let shown = transcript(&w.cutover(&["status", run_dir.to_str().unwrap()]));
    assert!(
        shown.contains("last evaluation: ") && shown.contains(": fail"),
        "{shown}"
    );
    // (unix_ms, outcome, version) of every answer.
    let rows: Vec<(u64, String, String)> = std::fs::read_to_string(timeline.path())
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((
                f.first()?.parse().ok()?,
                f.get(2)?.to_string(),
                f.get(4)?.to_string(),
            ))
        })
        .collect();
    let first_failure = rows
        .iter()
        .filter(|r| r.1 == "fail")
        .map(|r| r.0)
        .min()
        .unwrap();
    let last_new = rows
        .iter()
        .filter(|r| r.2 == "1.1.0")
        .map(|r| r.0)
        .max()
        .unwrap();
    (s.failed, last_new.saturating_sub(first_failure), pause_ms)
}

fn assert_bad_canary_stopped_early(kind: Kind) {
    let (failed, back_ms, pause_ms) = bad_canary_in_a_pause(kind, "30s", 5);
    eprintln!(
        "{failed} failed, stable again {back_ms} ms after the first failure, pause {pause_ms} ms"
    );
    assert!(failed < 30, "{failed} requests failed");
    assert!(
        back_ms <= 3_000,
        "1.1.0 still answered {back_ms} ms after its first failure"
    );
    assert!(pause_ms < 10_000, "the pause ran {pause_ms} ms of its 30 s");
}

#[test]
fn a_bad_canary_is_rolled_back_during_its_pause_behind_haproxy() {
    assert_bad_canary_stopped_early(Kind::Haproxy);
}

#[test]
fn a_bad_canary_is_rolled_back_during_its_pause_behind_nginx() {
    assert_bad_canary_stopped_early(Kind::Nginx);
}

/// A canary release at 50% judged by `analysis` (the spec's inline table) with `env` for 1.1.0;
/// with `lock`, the `users` table is locked for 300 ms every 600 ms from the shift to 50% until
/// the gate after it ends, which slows both versions alike. Returns `apply`'s exit code and
/// transcript, after a line counting the locks.
fn gated_canary(kind: Kind, env: &str, analysis: &str, lock: bool) -> (Option<i32>, String) {
    let w = World::new(kind, 1, 2000);
    w.write_spec("canary", env);
    let spec = std::fs::read_to_string(w.path().join("spec.toml")).unwrap();
    let spec = spec.replace(
        "steps = [10, 25, 50, 100]\npause = \"1s\"\nanalysis = { window = \"2s\", max_error_rate = \
         0.01, max_p99_latency = \"500ms\", min_requests = 5 }",
        &format!("steps = [50, 100]\npause = \"5s\"\nanalysis = {analysis}"),
    );
    std::fs::write(w.path().join("spec.toml"), spec).unwrap();
    let load = Load::start(w.router.port, 150);
    let apply = w
        .command(&["apply", "spec.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let svc = w.apps.service.clone();
    let done = |state: Option<String>| matches!(state.as_deref(), Some("succeeded" | "failed"));
    let mut locks = 0;
    if lock {
        let t0 = Instant::now();
        while !done(w.state_of(&format!("shift/{svc}/50"))) {
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "the canary never reached 50%"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Until the gate after the pause ended, or the watched pause failed.
        let ended = || {
            done(w.state_of(&format!("analysis/{svc}/50")))
                || w.state_of(&format!("pause/{svc}/50")).as_deref() == Some("failed")
        };
        while !ended() {
            w.sql(
                "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(0.3); COMMIT;",
            );
            locks += 1;
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "the gate never ended"
            );
        }
    }
    let out = apply.wait_with_output().unwrap();
    load.stop_any_rate();
    (
        out.status.code(),
        format!("{locks} locks\n{}", transcript(&out)),
    )
}

/// Loose absolute limits, tight relative ones: the canary must stay close to stable.
const RELATIVE: &str = "{ window = \"4s\", max_error_rate = 0.5, max_p99_latency = \"20s\", \
                        min_requests = 20, max_error_rate_increase = 0.05, max_latency_ratio = 3.0 }";

#[test]
fn a_database_slowdown_of_both_versions_passes_the_relative_gate_and_fails_a_tight_absolute_one() {
    let (code, text) = gated_canary(Kind::Nginx, "", RELATIVE, true);
    assert_eq!(code, Some(0), "{text}");
    let locks: u32 = text.split(' ').next().unwrap().parse().unwrap();
    assert!(locks >= 8, "{text}");
    let tight = "{ window = \"4s\", max_error_rate = 0.5, max_p99_latency = \"100ms\", \
                 min_requests = 20 }";
    let (code, text) = gated_canary(Kind::Nginx, "", tight, true);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("analysis gate failed: latency") && text.contains("100 ms"),
        "{text}"
    );
}

#[test]
fn haproxy_p99_from_its_request_log_is_the_load_generators_p99() {
    // 1.1.0 answers /users 40 ms late; the gate reads HAProxy's request log (`log`), not its
    // average response time, and its p99 must be what the clients saw.
    let w = World::new(Kind::Haproxy, 1, 2000);
    w.write_spec("canary", "DELAY_MS = \"40\"");
    let spec = std::fs::read_to_string(w.path().join("spec.toml")).unwrap();
    let spec = spec
        .replace(
            "steps = [10, 25, 50, 100]\npause = \"1s\"\nanalysis = { window = \"2s\", \
             max_error_rate = 0.01, max_p99_latency = \"500ms\", min_requests = 5 }",
            "steps = [50, 100]\npause = \"0s\"\nanalysis = { window = \"6s\", max_error_rate = \
             0.01, max_p99_latency = \"2s\", min_requests = 20 }",
        )
        .replace(&w.router.spec(), &w.router.spec_with_log());
    std::fs::write(w.path().join("spec.toml"), spec).unwrap();
    let timeline = tempfile::NamedTempFile::new().unwrap();
    let load = Load::start_with(
        w.router.port,
        150,
        &["--timeline", timeline.path().to_str().unwrap()],
    );
    let out = w.cutover(&["apply", "spec.toml"]);
    load.stop_any_rate();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let gate = w
        .status_of(&format!("analysis/{}/50", w.apps.service))
        .unwrap();
    let e = &gate["evaluation"];
    assert_eq!(e["latency_kind"], "p99", "{gate}");
    let from_log = e["latency_ms"].as_u64().unwrap() as f64;
    // The clients' own p99 of 1.1.0's GET /users answers (`latency_us`, column 6).
    let mut seen: Vec<f64> = std::fs::read_to_string(timeline.path())
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.get(4) == Some(&"1.1.0") && f.get(1) == Some(&"GET"))
                .then(|| f.get(5)?.parse::<f64>().ok())
                .flatten()
        })
        .map(|us| us / 1000.0)
        .collect();
    seen.sort_by(f64::total_cmp);
    let clients = seen[((seen.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)];
    // Within 5 ms or 15%: HAProxy's %Ta starts at the request's first byte, the client's clock
    // at its write, and the two sets differ by the requests outside the gate's window.
    assert!(
        (from_log - clients).abs() <= 5f64.max(clients * 0.15),
        "HAProxy's log p99 {from_log} ms, the clients' {clients} ms"
    );
    assert!(from_log >= 40.0, "{from_log} ms: not the delayed answers");
}

#[test]
fn a_canary_failing_less_than_the_threshold_is_not_rolled_back_by_an_early_error() {
    // One /users request in 200 fails (evenly spread): 0.5% against a 1% gate. One error among
    // a window's first requests must not decide a window that holds hundreds.
    let gate = "{ window = \"10s\", max_error_rate = 0.01, max_p99_latency = \"2s\", \
                min_requests = 20 }";
    let (code, text) = gated_canary(Kind::Haproxy, "FAIL_RATE = \"0.005\"", gate, false);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn a_canary_slower_than_stable_fails_the_relative_gate_under_the_absolute_limits() {
    for kind in [Kind::Nginx, Kind::Haproxy] {
        let (code, text) = gated_canary(kind, "DELAY_MS = \"150\"", RELATIVE, false);
        assert_eq!(code, Some(3), "{text}");
        assert!(text.contains("x the stable version's"), "{text}");
    }
}

/// `cutover apply` SIGKILLed at three seeded points and resumed each time, under load.
#[test]
fn killed_three_times_and_resumed_behind_haproxy() {
    let w = World::new(Kind::Haproxy, 1, 20000);
    w.write_spec("canary", "");
    // Seeded choice of where to kill: three of the release's steps, in plan order.
    let points = [
        "backfill",
        "shift/{svc}/10",
        "analysis/{svc}/25",
        "shift/{svc}/50",
        "retire/{svc}",
        "migrate/contract",
    ];
    let seed: u64 = std::env::var("CUTOVER_E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = seed;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut chosen: Vec<usize> = Vec::new();
    while chosen.len() < 3 {
        let i = (next() % points.len() as u64) as usize;
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen.sort();
    let plan: Value =
        serde_json::from_slice(&w.cutover(&["plan", "spec.toml", "--format", "json"]).stdout)
            .unwrap();
    let ids: Vec<String> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let targets: Vec<String> = chosen
        .iter()
        .map(|i| {
            let p = points[*i].replace("{svc}", &w.apps.service);
            ids.iter()
                .find(|id| id.starts_with(&p))
                .unwrap_or_else(|| panic!("no step {p}"))
                .clone()
        })
        .collect();
    eprintln!("seed {seed:#x}: killing at {targets:?}");
    let load = Load::start(w.router.port, 150);
    let mut first = true;
    for target in &targets {
        let mut child = if first {
            w.command(&["apply", "spec.toml"]).spawn().unwrap()
        } else {
            w.command(&["resume", w.run_dir().to_str().unwrap()])
                .spawn()
                .unwrap()
        };
        first = false;
        let t0 = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("cutover exited ({status}) before reaching {target}");
            }
            // The step's start, read straight from the event log every 2 ms (each record is
            // framed JSON: `"event":{"step_started":{"step":ID,...}}`).
            if started_in_log(&w, target) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "{target} never started"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        // A seeded moment in the step's first 40 ms: inside it, or (for a quicker step) just
        // after, between two events of the release either way.
        std::thread::sleep(Duration::from_millis(next() % 40));
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        eprintln!("killed at {target} (while it ran, or just after)");
    }
    let out = w.cutover(&["resume", w.run_dir().to_str().unwrap()]);
    let s = load.stop();
    eprintln!("{}", transcript(&out));
    assert_release_done(&w, &out);
    assert_eq!(
        s.failed, 0,
        "zero failed requests behind HAProxy across three kills: {:?}",
        s.first_failure
    );
    w.assert_writes_kept(&s, "full_name");
    assert_eq!(
        w.sql("SELECT count(*) FROM users WHERE full_name IS NULL"),
        "0",
        "every row backfilled"
    );
    assert_eq!(
        w.router.weights(UPSTREAM),
        [
            (format!("p{}", w.port), 0),
            (format!("p{}", w.candidate), 100)
        ]
        .into_iter()
        .collect()
    );
}

#[test]
fn blue_green_and_rolling_under_load_behind_haproxy() {
    for (strategy, replicas) in [("blue-green", 1), ("rolling", 2)] {
        let w = World::new(Kind::Haproxy, replicas, 2000);
        w.write_spec(strategy, "");
        let load = Load::start(w.router.port, 150);
        let out = w.cutover(&["apply", "spec.toml"]);
        let s = load.stop();
        eprintln!("{strategy}: {}", transcript(&out));
        assert_release_done(&w, &out);
        assert_eq!(
            s.failed, 0,
            "{strategy}: zero failed requests: {:?}",
            s.first_failure
        );
        w.assert_writes_kept(&s, "full_name");
        let weights = w.router.weights(UPSTREAM);
        for i in 0..replicas {
            assert_eq!(
                weights[&format!("p{}", w.port + i)],
                0,
                "{strategy}: {weights:?}"
            );
            assert!(
                weights[&format!("p{}", w.candidate + i)] > 0,
                "{strategy}: {weights:?}"
            );
        }
    }
}

#[test]
fn recreate_reports_its_downtime() {
    let w = World::new(Kind::Haproxy, 1, 2000);
    w.write_spec("recreate", "");
    let load = Load::start(w.router.port, 120);
    let out = w.cutover(&["apply", "spec.toml"]);
    // Requests stall (HAProxy retries a refused connection) or fail while nothing serves: the
    // offered rate is kept, the achieved one drops.
    let s = load.stop_any_rate();
    let text = transcript(&out);
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    let window: f64 = text
        .split("downtime window: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no downtime window reported: {text}"));
    assert!(window > 0.0);
    assert_eq!(w.history(), "1,2");
    assert_eq!(
        w.columns(),
        "created_at,email,full_name,id,legacy_flags",
        "recreate runs the rename as written"
    );
    eprintln!(
        "recreate: downtime window {window} s; the load generator saw {} failed requests and a \
         worst latency of {:.0} ms",
        s.failed, s.latency_ms.max
    );
    assert!(
        s.failed > 0 || s.latency_ms.max >= window * 1000.0 * 0.5,
        "the load generator saw the downtime: failures, or requests held for about its length"
    );
}

/// Too few canary requests to judge: the gate is inconclusive and the run pauses (it neither
/// goes on nor rolls back a release nobody found fault with); `resume` watches a new window.
#[test]
fn an_inconclusive_gate_pauses_the_run() {
    let w = World::new(Kind::Haproxy, 1, 100);
    w.write_spec("canary", "");
    let spec = std::fs::read_to_string(w.path().join("spec.toml"))
        .unwrap()
        .replace("min_requests = 5", "min_requests = 1000000");
    std::fs::write(w.path().join("spec.toml"), spec).unwrap();
    let weights_before = w.router.weights(UPSTREAM);
    let out = w.cutover(&["apply", "spec.toml"]);
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("inconclusive: analysis gate") && text.contains("the run pauses"),
        "{text}"
    );
    assert!(!text.contains("rolling back"), "{text}");
    let status: Value = serde_json::from_slice(
        &w.cutover(&["status", "--format", "json", w.run_dir().to_str().unwrap()])
            .stdout,
    )
    .unwrap();
    assert!(status["paused"].is_string(), "{status}");
    // Traffic stays where the gate found it (10% on the canary) until someone decides.
    assert_eq!(
        w.router.weights(UPSTREAM),
        [
            (format!("p{}", w.port), 90),
            (format!("p{}", w.candidate), 10)
        ]
        .into_iter()
        .collect()
    );
    let out = w.cutover(&["rollback", w.run_dir().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(w.router.weights(UPSTREAM), weights_before);
    assert_eq!(w.history(), "1");
}

/// Whether the run's event log records the start of `step` (its latest attempt or any).
fn started_in_log(w: &World, step: &str) -> bool {
    let Some(dir) = w.try_run_dir() else {
        return false;
    };
    let Ok(bytes) = std::fs::read(dir.join("events.log")) else {
        return false;
    };
    let needle = format!("{{\"step_started\":{{\"step\":\"{step}\",");
    String::from_utf8_lossy(&bytes).contains(&needle)
}

/// `apply` dies right after a step's effect, before the event that records it (the step is in
/// doubt), and the operator rolls back: the probe finds out what the step did, so the rollback
/// undoes it too. After a shift: the router is back byte for byte; after a retire: 1.0.0 runs
/// and serves again.
fn crash_after_effect_then_rollback(kind: Kind, step: &str) {
    let w = World::new(kind, 1, 1000);
    w.write_spec("canary", "");
    let router_before = w.router.config_bytes();
    let schema_before = w.schema();
    let step = step.replace("{svc}", &w.apps.service);
    let load = Load::start(w.router.port, 120);
    let out = w
        .command(&["apply", "spec.toml"])
        .env("CUTOVER_CRASH_AFTER_EFFECT", &step)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        None,
        "apply was to die after {step}: {}",
        transcript(&out)
    );
    assert_eq!(
        w.state_of(&step).as_deref(),
        Some("started"),
        "{step} is in doubt"
    );
    let out = w.cutover(&["rollback", w.run_dir().to_str().unwrap()]);
    let s = load.stop();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(
        w.router.config_bytes(),
        router_before,
        "{step}: the router's config is byte-identical after the rollback"
    );
    assert_eq!(w.schema(), schema_before);
    assert_eq!(
        w.apps.containers(),
        vec![(format!("{}-1.0.0-{}", w.apps.service, w.port), true)],
        "{step}: 1.0.0 runs, 1.1.0 is removed"
    );
    if kind == Kind::Haproxy {
        assert_eq!(s.failed, 0, "{step}: {:?}", s.first_failure);
    }
    let after = Load::start(w.router.port, 120).stop();
    assert_eq!(after.failed, 0, "{step}");
    assert_eq!(
        after.versions.keys().collect::<Vec<_>>(),
        vec!["1.0.0"],
        "{step}: all traffic on 1.0.0"
    );
}

#[test]
fn a_crash_after_a_shift_or_a_retire_is_rolled_back_exactly_behind_haproxy() {
    crash_after_effect_then_rollback(Kind::Haproxy, "shift/{svc}/25");
    crash_after_effect_then_rollback(Kind::Haproxy, "retire/{svc}");
}

#[test]
fn a_crash_after_a_shift_is_rolled_back_exactly_behind_nginx() {
    crash_after_effect_then_rollback(Kind::Nginx, "shift/{svc}/10");
}

/// Runs the canary release of `w` with `strategy` in place of the sample's steps, sends SIGINT
/// `after` the step `step` started, and returns how long `apply` took to exit after the signal
/// (it must exit 130: interrupted, resumable).
fn interrupt_inside(w: &World, strategy: &str, step: &str, after: Duration) -> Duration {
    w.write_spec("canary", "");
    let spec = std::fs::read_to_string(w.path().join("spec.toml")).unwrap();
    let sample = "steps = [10, 25, 50, 100]\npause = \"1s\"\nanalysis = { window = \"2s\", \
                  max_error_rate = 0.01, max_p99_latency = \"500ms\", min_requests = 5 }";
    assert!(spec.contains(sample));
    std::fs::write(w.path().join("spec.toml"), spec.replace(sample, strategy)).unwrap();
    let child = w
        .command(&["apply", "spec.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !started_in_log(w, step) {
        assert!(Instant::now() < deadline, "{step} never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(after);
    let signalled = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stopped_in = signalled.elapsed();
    assert_eq!(out.status.code(), Some(130), "{}", transcript(&out));
    stopped_in
}

/// The first Ctrl-C during a canary pause ends the pause at once (it only waits; the run stays
/// resumable), and `resume` waits only what was left of it: the pause's start is in the log.
#[test]
fn ctrl_c_during_a_canary_pause_stops_it_and_resume_waits_what_is_left() {
    let w = World::new(Kind::Haproxy, 1, 100);
    let pause = format!("pause/{}/50", w.apps.service);
    let stopped_in = interrupt_inside(
        &w,
        "steps = [50, 100]\npause = \"20s\"",
        &pause,
        Duration::from_secs(8),
    );
    assert!(
        stopped_in < Duration::from_secs(3),
        "the first signal ended the 20s pause promptly, not after {stopped_in:?}"
    );
    assert_eq!(
        w.state_of(&pause).as_deref(),
        Some("started"),
        "the stopped pause is left for resume to check"
    );

    let resumed = Instant::now();
    let out = w.cutover(&["resume", w.run_dir().to_str().unwrap()]);
    let resume_took = resumed.elapsed();
    assert_release_done(&w, &out);
    // The second attempt of the pause waited the ~12 s left, not 20 s again.
    let log = w.cutover(&["log", w.run_dir().to_str().unwrap(), "--format", "json"]);
    let events: Vec<Value> = String::from_utf8_lossy(&log.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let time = |kind: &str| -> chrono::DateTime<chrono::Utc> {
        let e = events
            .iter()
            .rev()
            .find(|e| e["step"] == pause.as_str() && e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} of {pause}"));
        e["time"].as_str().unwrap().parse().unwrap()
    };
    let waited = (time("step_succeeded") - time("step_started"))
        .to_std()
        .unwrap();
    eprintln!(
        "stopped {stopped_in:?} after the signal; the resumed pause waited {waited:?}; resume took \
         {resume_took:?}"
    );
    assert!(
        waited >= Duration::from_secs(8) && waited <= Duration::from_secs(16),
        "the resumed pause waited {waited:?}; about 12 s were left of 20 s"
    );
    assert!(
        resume_took >= Duration::from_secs(8),
        "resume took {resume_took:?}"
    );
    let progress = events
        .iter()
        .filter(|e| e["step"] == pause.as_str() && e["type"] == "step_progress")
        .count();
    assert_eq!(
        progress, 1,
        "the pause's start is recorded once, by its first attempt"
    );
}

/// The first Ctrl-C during an analysis window stops the gate at once too (it only reads the
/// router's data): the run is interrupted, the gate left for `resume` to watch a fresh window.
#[test]
fn ctrl_c_during_an_analysis_window_stops_it_at_once() {
    let w = World::new(Kind::Haproxy, 1, 100);
    let gate = format!("analysis/{}/50", w.apps.service);
    let stopped_in = interrupt_inside(
        &w,
        "steps = [50, 100]\npause = \"0s\"\nanalysis = { window = \"60s\", max_error_rate = 0.01, \
         max_p99_latency = \"500ms\", min_requests = 5 }",
        &gate,
        Duration::from_secs(2),
    );
    assert!(
        stopped_in < Duration::from_secs(3),
        "the first signal ended the 60s window promptly, not after {stopped_in:?}"
    );
    assert_eq!(
        w.state_of(&gate).as_deref(),
        Some("started"),
        "the stopped gate is left for resume to check"
    );
    let out = w.cutover(&["rollback", w.run_dir().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert_eq!(w.history(), "1");
}
