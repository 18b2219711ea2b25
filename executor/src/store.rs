//! Where runs live: `<state dir>/runs/<run id>/` holds `events.log` (the truth), `plan.json` (the
//! steps the run executes, as planned when it started) and `lock` (held by the one executor
//! working on the run). [`Store`] creates, finds and lists runs; [`RunLock`] is the OS file lock.

use crate::error::ExecError;
use crate::log::{Header, read_log};
use chrono::{DateTime, Utc};
use cutover_planner::dag::{Plan, Step};
use cutover_planner::spec::StrategyKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// File names inside a run directory.
pub const LOG_FILE: &str = "events.log";
const PLAN_FILE: &str = "plan.json";
const LOCK_FILE: &str = "lock";

/// The runs under one state directory.
#[derive(Debug, Clone)]
pub struct Store {
    runs: PathBuf,
}

/// The steps a run executes, recorded when it starts.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordedPlan {
    /// Release name.
    pub release: String,
    /// Plan hash.
    pub plan_hash: String,
    /// Strategy per service.
    pub strategies: BTreeMap<String, StrategyKind>,
    /// Steps in dependency order.
    pub steps: Vec<Step>,
}

impl RecordedPlan {
    /// Records `plan`.
    pub fn of(plan: &Plan) -> Self {
        Self { release: plan.release.clone(), plan_hash: plan.hash.clone(), strategies: plan.strategies.clone(), steps: plan.steps().cloned().collect() }
    }

    /// Back to a plan.
    pub fn into_plan(self, dir: &Path) -> Result<Plan, ExecError> {
        Plan::from_steps(self.release, self.plan_hash, self.steps, self.strategies)
            .map_err(|e| ExecError::Damaged { path: dir.join(PLAN_FILE), why: e.to_string() })
    }
}

/// Who holds a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// Since when.
    pub since: DateTime<Utc>,
    /// `apply`, `resume` or `rollback`.
    pub command: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`cutover {}` (pid {} on {}, since {})", self.command, self.pid, self.host, self.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }
}

/// An exclusive OS lock on a run (`flock`): released by the kernel when the process dies, so a
/// kill -9 never leaves a stale lock behind.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// This machine's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown-host".into())
}

/// Takes the lock of the run in `dir`, or says who has it.
pub fn lock_run(dir: &Path, command: &str) -> Result<RunLock, ExecError> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| ExecError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {
            let holder = Holder { pid: std::process::id(), host: hostname(), since: Utc::now(), command: command.into() };
            file.set_len(0).map_err(|e| ExecError::io(&path, e))?;
            file.write_all(serde_json::to_string(&holder).expect("holder serializes").as_bytes()).map_err(|e| ExecError::io(&path, e))?;
            Ok(RunLock { _file: file })
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(ExecError::Locked { run: run_id_of(dir), holder: read_holder(dir) }),
        Err(std::fs::TryLockError::Error(e)) => Err(ExecError::io(&path, e)),
    }
}

/// The last holder written to a run's lock file (the current one, if the lock is held).
pub fn read_holder(dir: &Path) -> Option<Holder> {
    std::fs::read_to_string(dir.join(LOCK_FILE)).ok().and_then(|s| serde_json::from_str(&s).ok())
}

/// Whether some process holds the run's lock right now.
pub fn is_locked(dir: &Path) -> bool {
    match File::open(dir.join(LOCK_FILE)) {
        Ok(f) => match f.try_lock_shared() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => true,
            Err(_) => false,
        },
        Err(_) => false,
    }
}

fn run_id_of(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// One line of `cutover runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Release.
    pub release: String,
    /// Start time.
    pub started_at: Option<DateTime<Utc>>,
    /// Last event time.
    pub updated_at: Option<DateTime<Utc>>,
    /// `succeeded`, `rolled_back`, ..., or `in progress` / `stopped`.
    pub state: String,
    /// Describe-only run.
    pub dry_run: bool,
    /// Directory.
    pub dir: PathBuf,
}

impl RunSummary {
    /// The summary of a replayed run; `locked` says whether an executor holds it now.
    pub fn of(run_id: String, st: &crate::state::RunState, locked: bool, dir: PathBuf) -> Self {
        let state = match (st.outcome, locked) {
            (_, true) => "in progress".to_string(),
            (Some(o), false) => o.as_str().to_string(),
            (None, false) => "stopped (resumable)".to_string(),
        };
        RunSummary { run_id, release: st.release.clone(), started_at: st.started_at, updated_at: st.updated_at, state, dry_run: st.dry_run, dir }
    }
}

impl Store {
    /// The store under `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self { runs: state_dir.join("runs") }
    }

    /// Creates a run directory for `plan` and records the plan in it.
    pub fn create(&self, plan: &Plan) -> Result<(String, PathBuf), ExecError> {
        std::fs::create_dir_all(&self.runs).map_err(|e| ExecError::io(&self.runs, e))?;
        let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
        let name: String = plan.release.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).take(40).collect();
        // A random suffix: run ids must also be unique in a PostgreSQL log shared by machines.
        use std::hash::{BuildHasher, Hasher};
        for _ in 0..1000u32 {
            let salt = std::collections::hash_map::RandomState::new().build_hasher().finish() as u16;
            let id = format!("{stamp}-{name}-{salt:04x}");
            let dir = self.runs.join(&id);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let json = serde_json::to_vec_pretty(&RecordedPlan::of(plan)).expect("plans serialize");
                    std::fs::write(dir.join(PLAN_FILE), json).map_err(|e| ExecError::io(&dir, e))?;
                    return Ok((id, dir));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(ExecError::io(&dir, e)),
            }
        }
        Err(ExecError::io(&self.runs, std::io::Error::other("too many runs started in one second")))
    }

    /// The local directory of a run kept in PostgreSQL (driver scratch files), created if needed.
    pub fn scratch_dir(&self, run_id: &str) -> Result<PathBuf, ExecError> {
        if run_id.contains('/') || run_id.contains("..") {
            return Err(ExecError::State(format!("`{run_id}` is not a run id")));
        }
        let dir = self.runs.join(run_id);
        std::fs::create_dir_all(&dir).map_err(|e| ExecError::io(&dir, e))?;
        Ok(dir)
    }

    /// Finds a run by id, by directory or by the path of its `events.log`.
    pub fn resolve(&self, run: &str) -> Result<PathBuf, ExecError> {
        let p = Path::new(run);
        let by_id = self.runs.join(run);
        if !run.contains('/') && by_id.join(LOG_FILE).is_file() {
            return Ok(by_id);
        }
        if p.is_dir() && p.join(LOG_FILE).is_file() {
            return Ok(p.to_path_buf());
        }
        if p.is_file() && p.file_name().is_some_and(|f| f == LOG_FILE) {
            return Ok(p.parent().unwrap_or(Path::new(".")).to_path_buf());
        }
        Err(ExecError::NoSuchRun { run: run.into(), runs_dir: self.runs.clone() })
    }

    /// Every run, newest first.
    pub fn list(&self) -> Vec<RunSummary> {
        let Ok(entries) = std::fs::read_dir(&self.runs) else { return Vec::new() };
        let mut out: Vec<RunSummary> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join(LOG_FILE).is_file())
            .map(|e| summarize(&e.path()))
            .collect();
        out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.run_id.cmp(&a.run_id)));
        out
    }
}

fn summarize(dir: &Path) -> RunSummary {
    let run_id = run_id_of(dir);
    match read_log(&dir.join(LOG_FILE)).map_err(|e| e.to_string()).and_then(|c| crate::state::RunState::replay(&c.header, &c.records).map_err(|e| e.to_string())) {
        Ok(st) => RunSummary::of(run_id, &st, is_locked(dir), dir.to_path_buf()),
        Err(e) => RunSummary { run_id, release: String::new(), started_at: None, updated_at: None, state: format!("unreadable: {e}"), dry_run: false, dir: dir.to_path_buf() },
    }
}

/// Reads a run's recorded plan.
pub fn read_plan(dir: &Path) -> Result<Plan, ExecError> {
    let path = dir.join(PLAN_FILE);
    let bytes = std::fs::read(&path).map_err(|e| ExecError::io(&path, e))?;
    let rec: RecordedPlan = serde_json::from_slice(&bytes).map_err(|e| ExecError::Damaged { path: path.clone(), why: e.to_string() })?;
    rec.into_plan(dir)
}

/// The header a new run's log starts with.
pub fn header(run_id: &str, plan: &Plan, dry_run: bool) -> Header {
    Header { format_version: crate::log::FORMAT_VERSION, run_id: run_id.into(), plan_hash: plan.hash.clone(), dry_run }
}
