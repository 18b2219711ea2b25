//! Where runs live: `<state dir>/runs/<run id>/` holds `events.log` (the truth), `plan.json` (the
//! steps the run executes, as planned when it started) and `lock` (held by the one executor
//! working on the run). [`Store`] creates, finds and lists runs; [`RunLock`] is the OS file lock.

use crate::error::ExecError;
use crate::log::{Header, read_log};
use chrono::{DateTime, Utc};
use cutover_planner::dag::{PLAN_FORMAT, Plan, Step};
use cutover_planner::spec::StrategyKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// File names inside a run directory.
pub const LOG_FILE: &str = "events.log";
const PLAN_FILE: &str = "plan.json";
const LOCK_FILE: &str = "lock";
const HOLDER_FILE: &str = "holder.json";

/// The runs under one state directory.
#[derive(Debug, Clone)]
pub struct Store {
    runs: PathBuf,
}

/// The steps a run executes, recorded when it starts.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordedPlan {
    /// [`PLAN_FORMAT`] of the cutover that recorded it; absent from plans of format 1.
    #[serde(default = "format_one")]
    pub plan_format: u32,
    /// Release name.
    pub release: String,
    /// Plan hash.
    pub plan_hash: String,
    /// Strategy per service.
    pub strategies: BTreeMap<String, StrategyKind>,
    /// Steps in dependency order.
    pub steps: Vec<Step>,
}

fn format_one() -> u32 {
    1
}

/// Refuses a recorded plan (`bytes`, the JSON of a [`RecordedPlan`]; `what` names where it is)
/// written in another plan format than this cutover's, naming both: its steps would not read
/// back as they were planned.
pub fn check_plan_format(bytes: &[u8], what: &str) -> Result<(), ExecError> {
    #[derive(Deserialize)]
    struct Format {
        #[serde(default = "format_one")]
        plan_format: u32,
    }
    // Unreadable JSON is reported by the full parse that follows.
    let Ok(Format { plan_format }) = serde_json::from_slice::<Format>(bytes) else {
        return Ok(());
    };
    if plan_format == PLAN_FORMAT {
        return Ok(());
    }
    Err(ExecError::PlanFormat {
        what: what.to_string(),
        found: plan_format,
    })
}

impl RecordedPlan {
    /// Records `plan`.
    pub fn of(plan: &Plan) -> Self {
        Self {
            plan_format: PLAN_FORMAT,
            release: plan.release.clone(),
            plan_hash: plan.hash.clone(),
            strategies: plan.strategies.clone(),
            steps: plan.steps().cloned().collect(),
        }
    }

    /// Back to a plan.
    pub fn into_plan(self, dir: &Path) -> Result<Plan, ExecError> {
        Plan::from_steps(self.release, self.plan_hash, self.steps, self.strategies).map_err(|e| {
            ExecError::Damaged {
                path: dir.join(PLAN_FILE),
                why: e.to_string(),
            }
        })
    }
}

/// Who holds a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// Since when (RFC 3339).
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub since: DateTime<Utc>,
    /// `apply`, `resume` or `rollback`.
    pub command: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`cutover {}` (pid {} on {}, since {})",
            self.command,
            self.pid,
            self.host,
            self.since
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
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
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// Takes the lock of the run in `dir`, or says who has it.
///
/// The winner writes its [`Holder`] to `holder.json` (a temporary file renamed into place, so a
/// reader never sees half of one) right after taking the lock. A loser asks the kernel which
/// process holds the lock (`/proc/locks`) and names the holder the file describes only when its
/// pid is that one, waiting briefly for the winner to write it: a dead previous holder is never
/// named.
///
/// Errors: [`ExecError::Locked`] (named holder), [`ExecError::LockedByPid`] (the kernel's pid of a
/// holder that has not written its details), [`ExecError::File`] when the lock or holder file
/// cannot be opened or written.
pub fn lock_run(dir: &Path, command: &str) -> Result<RunLock, ExecError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| ExecError::file("open the run's lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => {
            let holder = Holder {
                pid: std::process::id(),
                host: hostname(),
                since: Utc::now(),
                command: command.into(),
            };
            write_holder(dir, &holder)?;
            Ok(RunLock { _file: file })
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let run = run_id_of(dir);
            match find_holder(dir, &file) {
                Found::Holder(holder) => Err(ExecError::Locked {
                    run,
                    holder: Some(holder),
                }),
                Found::Pid(pid) => Err(ExecError::LockedByPid {
                    run,
                    pid,
                    cmdline: cmdline(pid),
                }),
                Found::Unknown => Err(ExecError::Locked { run, holder: None }),
            }
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(ExecError::file("lock the run (flock)", &path, e))
        }
    }
}

/// Writes `holder.json` atomically: a reader sees the previous holder or this one, never a mix.
fn write_holder(dir: &Path, holder: &Holder) -> Result<(), ExecError> {
    let tmp = dir.join(format!("{HOLDER_FILE}.{}.tmp", std::process::id()));
    let json = serde_json::to_vec(holder).expect("holder serializes");
    std::fs::write(&tmp, json).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ExecError::file("write the run's holder file", &tmp, e)
    })?;
    let path = dir.join(HOLDER_FILE);
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ExecError::file("put the run's holder file in place", &path, e)
    })
}

/// Who holds a run's lock, as far as can be known.
enum Found {
    /// The holder file's holder, whose pid the kernel says holds the lock.
    Holder(Holder),
    /// The kernel's holder; its details are not written (yet).
    Pid(u32),
    /// Neither the kernel nor the file can say (no `/proc/locks`, or the holder let go).
    Unknown,
}

/// The lock file's identity as `/proc/locks` prints it (`major:minor:inode`, hex device numbers),
/// if the kernel's lock table can be read here.
fn kernel_lock_id(lock: &File) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = lock.metadata().ok()?;
    std::fs::metadata("/proc/locks").ok()?;
    // Linux's dev_t encoding (glibc's major()/minor()).
    let dev = m.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    Some(format!("{major:02x}:{minor:02x}:{}", m.ino()))
}

/// Asks the kernel who holds the lock on `lock` (open on the run's lock file) and matches it with
/// the holder file, waiting up to half a second for a new holder to write its details. Without
/// the kernel's table, the holder file is believed only if its process is alive on this host.
fn find_holder(dir: &Path, lock: &File) -> Found {
    let Some(id) = kernel_lock_id(lock) else {
        return read_holder(dir)
            .filter(|h| h.host == hostname() && process_alive(h.pid))
            .map_or(Found::Unknown, Found::Holder);
    };
    let mut last = None;
    for _ in 0..250 {
        let Some(pid) = flock_holder(&id) else {
            // Let go since we tried it, or held from another pid namespace: nobody to name.
            return Found::Unknown;
        };
        last = Some(pid);
        match read_holder(dir) {
            Some(h) if h.pid == pid => return Found::Holder(h),
            _ => std::thread::sleep(std::time::Duration::from_millis(2)),
        }
    }
    last.map_or(Found::Unknown, Found::Pid)
}

/// Whether process `pid` exists on this machine.
fn process_alive(pid: u32) -> bool {
    // Signal 0 checks existence and permission without sending anything.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// When process `pid` started (`/proc/PID/stat` field 22, after boot time), if it can be read.
fn process_start(pid: u32) -> Option<DateTime<Utc>> {
    let ticks = i64::try_from(crate::procfs::start_ticks(pid as i32)?).ok()?;
    let boot: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0)
        .then(|| DateTime::from_timestamp_millis(boot * 1000 + ticks * 1000 / hz))
        .flatten()
}

/// The pid holding a `flock` on the file `dev`:`ino`, from `/proc/locks` (Linux; pids as this
/// process's pid namespace sees them, so a holder in another namespace is not found).
fn flock_holder(want: &str) -> Option<u32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 1433 fe:00:753924 0 EOF"; a waiter's line has "->" second.
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() >= 6 && f[1] == "FLOCK" && f[5] == want)
            .then(|| f[4].parse::<u32>().ok())
            .flatten()
            .filter(|&p| p > 0)
    })
}

/// Process `pid`'s command line, for naming it (passwords in URLs removed; at most 200 chars).
fn cmdline(pid: u32) -> String {
    let text = crate::redact::redact_url_passwords(&crate::procfs::cmdline(pid as i32));
    if text.is_empty() {
        "command line unknown".into()
    } else {
        text.chars().take(200).collect()
    }
}

/// The holder last written to a run's holder file (the current one, if the lock is held and
/// [`current_holder`] confirmed it).
pub fn read_holder(dir: &Path) -> Option<Holder> {
    std::fs::read(dir.join(HOLDER_FILE))
        .ok()
        .and_then(|s| serde_json::from_slice(&s).ok())
}

/// Who holds the run's lock right now, if anyone: the holder file's holder when the kernel
/// confirms its pid; else the kernel's pid, its start time and its command line. Reads only: takes
/// no lock (a reader must never make an executor's `try_lock` fail).
pub fn current_holder(dir: &Path) -> Option<Holder> {
    let file = File::open(dir.join(LOCK_FILE)).ok()?;
    if kernel_lock_id(&file).is_none() && !is_locked(dir) {
        return None;
    }
    match find_holder(dir, &file) {
        Found::Holder(h) => Some(h),
        Found::Pid(pid) => Some(Holder {
            pid,
            host: hostname(),
            since: process_start(pid).unwrap_or_else(Utc::now),
            command: format!(
                "? (details not written yet; command line: {})",
                cmdline(pid)
            ),
        }),
        Found::Unknown => None,
    }
}

/// Whether some process holds the run's lock right now (the kernel's table, read without taking
/// any lock; without it, a shared lock tried and let go at once).
pub fn is_locked(dir: &Path) -> bool {
    let Ok(f) = File::open(dir.join(LOCK_FILE)) else {
        return false;
    };
    if let Some(id) = kernel_lock_id(&f) {
        return std::fs::read_to_string("/proc/locks").is_ok_and(|locks| {
            locks.lines().any(|l| {
                l.split_whitespace().nth(5) == Some(id.as_str())
                    && l.split_whitespace().nth(1) == Some("FLOCK")
            })
        });
    }
    match f.try_lock_shared() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(_) => false,
    }
}

fn run_id_of(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One line of `cutover runs`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Release.
    pub release: String,
    /// Start time (RFC 3339), null when the log has no events.
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub started_at: Option<DateTime<Utc>>,
    /// Last event time (RFC 3339), null when the log has no events.
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub updated_at: Option<DateTime<Utc>>,
    /// How the last invocation ended (`succeeded`, `failed`, `paused` after a failure,
    /// `interrupted`, `rolled_back`, `rollback_stopped`), `awaiting promotion` at a manual gate or
    /// hold, `in progress` while an executor holds it, or `stopped (resumable)` after a crash.
    pub state: String,
    /// Who started it.
    pub user: String,
    /// The step it stopped at, when it did not succeed ([`RunState::stopped_at`]), or the step a
    /// gate holds back while it awaits promotion.
    ///
    /// [`RunState::stopped_at`]: crate::state::RunState::stopped_at
    pub stopped_at: Option<String>,
    /// Describe-only run.
    pub dry_run: bool,
    /// The run's directory (under the state directory, as given).
    pub dir: PathBuf,
}

impl RunSummary {
    /// The summary of a replayed run; `locked` says whether an executor holds it now.
    pub fn of(run_id: String, st: &crate::state::RunState, locked: bool, dir: PathBuf) -> Self {
        let gate = st.gate.as_ref().filter(|_| !locked);
        let state = match (st.outcome, locked) {
            (_, true) => "in progress".to_string(),
            // Waiting for a person, not stopped by a failure: `cutover promote` continues it.
            (Some(crate::event::Outcome::Paused), false) if gate.is_some() => {
                "awaiting promotion".to_string()
            }
            (Some(o), false) => o.as_str().to_string(),
            (None, false) => "stopped (resumable)".to_string(),
        };
        RunSummary {
            run_id,
            release: st.release.clone(),
            started_at: st.started_at,
            updated_at: st.updated_at,
            state,
            user: st.user.clone(),
            stopped_at: match gate {
                Some(g) => Some(g.step().to_string()),
                None if st.outcome == Some(crate::event::Outcome::Succeeded) => None,
                None => st.stopped_at().map(String::from),
            },
            dry_run: st.dry_run,
            dir,
        }
    }
}

impl Store {
    /// The store under `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            runs: state_dir.join("runs"),
        }
    }

    /// Creates a run directory for `plan` and records the plan in it.
    ///
    /// Errors: [`ExecError::File`] naming the directory or file that could not be made and why
    /// (a file where a directory belongs, permission, a full disk).
    pub fn create(&self, plan: &Plan) -> Result<(String, PathBuf), ExecError> {
        check_dir(&self.runs)?;
        std::fs::create_dir_all(&self.runs)
            .map_err(|e| ExecError::file("create the runs directory", &self.runs, e))?;
        let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
        let name: String = plan
            .release
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        // A random suffix: run ids must also be unique in a PostgreSQL log shared by machines.
        use std::hash::{BuildHasher, Hasher};
        for _ in 0..1000u32 {
            let salt = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish() as u16;
            let id = format!("{stamp}-{name}-{salt:04x}");
            let dir = self.runs.join(&id);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let json = serde_json::to_vec_pretty(&RecordedPlan::of(plan))
                        .expect("plans serialize");
                    let path = dir.join(PLAN_FILE);
                    std::fs::write(&path, json)
                        .map_err(|e| ExecError::file("write the run's plan", &path, e))?;
                    return Ok((id, dir));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(ExecError::file("create the run directory", &dir, e)),
            }
        }
        Err(ExecError::file(
            "create a run directory",
            &self.runs,
            std::io::Error::other("1000 names taken: too many runs started in one second"),
        ))
    }

    /// The local directory of a run kept in PostgreSQL (driver scratch files), created if needed.
    pub fn scratch_dir(&self, run_id: &str) -> Result<PathBuf, ExecError> {
        if run_id.contains('/') || run_id.contains("..") {
            return Err(ExecError::BadRunId {
                run: run_id.to_string(),
            });
        }
        let dir = self.runs.join(run_id);
        check_dir(&self.runs)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| ExecError::file("create the run's scratch directory", &dir, e))?;
        Ok(dir)
    }

    /// Finds a run by id, by directory or by the path of its `events.log`.
    ///
    /// Errors: [`ExecError::NoSuchRun`]; [`ExecError::NoLog`] for a run directory without its
    /// log; [`ExecError::File`] when the runs directory or `events.log` is not what it must be.
    pub fn resolve(&self, run: &str) -> Result<PathBuf, ExecError> {
        check_dir(&self.runs)?;
        let p = Path::new(run);
        let by_id = self.runs.join(run);
        let is_run =
            |d: &Path| d.is_dir() && (d.join(LOG_FILE).exists() || d.join(PLAN_FILE).exists());
        let dir = if !run.contains('/') && is_run(&by_id) {
            by_id
        } else if is_run(p) {
            p.to_path_buf()
        } else if p.file_name().is_some_and(|f| f == LOG_FILE) && p.exists() {
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf()
        } else {
            return Err(ExecError::NoSuchRun {
                run: run.into(),
                runs_dir: self.runs.clone(),
            });
        };
        let log = dir.join(LOG_FILE);
        match std::fs::metadata(&log) {
            Ok(m) if m.is_dir() => Err(ExecError::file(
                "read the event log",
                &log,
                std::io::Error::new(
                    std::io::ErrorKind::IsADirectory,
                    "it is a directory, not the run's event log file",
                ),
            )),
            Ok(_) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ExecError::NoLog { dir }),
            Err(e) => Err(ExecError::file("read the event log", &log, e)),
        }
    }

    /// Every run, newest first (none if the runs directory does not exist yet).
    ///
    /// Errors: [`ExecError::File`] when the runs directory cannot be listed (a file in its place,
    /// permission).
    pub fn list(&self) -> Result<Vec<RunSummary>, ExecError> {
        check_dir(&self.runs)?;
        let entries = match std::fs::read_dir(&self.runs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ExecError::file("list the runs directory", &self.runs, e)),
        };
        let mut out: Vec<RunSummary> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join(LOG_FILE).is_file())
            .map(|e| summarize(&e.path()))
            .collect();
        out.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then(b.run_id.cmp(&a.run_id))
        });
        Ok(out)
    }
}

/// Refuses when `dir`, or the nearest of its parents that exists, is not a directory, naming it.
fn check_dir(dir: &Path) -> Result<(), ExecError> {
    for a in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match std::fs::metadata(a) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                let action = if a == dir {
                    "use it as the runs directory".to_string()
                } else {
                    format!("use it as a directory (runs are kept in {})", dir.display())
                };
                return Err(ExecError::file(
                    action,
                    a,
                    std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        "it is a file, not a directory",
                    ),
                ));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                continue;
            }
            Err(e) => return Err(ExecError::file("look up the runs directory", a, e)),
        }
    }
    Ok(())
}

fn summarize(dir: &Path) -> RunSummary {
    let run_id = run_id_of(dir);
    match read_log(&dir.join(LOG_FILE))
        .map_err(|e| e.to_string())
        .and_then(|c| {
            crate::state::RunState::replay(&c.header, &c.records).map_err(|e| e.to_string())
        }) {
        Ok(st) => RunSummary::of(run_id, &st, is_locked(dir), dir.to_path_buf()),
        Err(e) => RunSummary {
            run_id,
            release: String::new(),
            started_at: None,
            updated_at: None,
            state: format!("unreadable: {e}"),
            user: String::new(),
            stopped_at: None,
            dry_run: false,
            dir: dir.to_path_buf(),
        },
    }
}

/// Reads a run's recorded plan.
pub fn read_plan(dir: &Path) -> Result<Plan, ExecError> {
    let path = dir.join(PLAN_FILE);
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ExecError::Damaged {
            path: path.clone(),
            why: "the run's recorded plan is missing".into(),
        },
        _ => ExecError::file("read the run's recorded plan", &path, e),
    })?;
    check_plan_format(&bytes, &path.display().to_string())?;
    let rec: RecordedPlan = serde_json::from_slice(&bytes).map_err(|e| ExecError::Damaged {
        path: path.clone(),
        why: e.to_string(),
    })?;
    rec.into_plan(dir)
}

/// The header a new run's log starts with: of [`crate::log::GATED_FORMAT_VERSION`] when the run
/// can wait at a gate (`hold`, or a manual pause in the plan), so a cutover older than gates
/// refuses it rather than run past them.
pub fn header(run_id: &str, plan: &Plan, dry_run: bool, hold: bool) -> Header {
    let manual = plan.steps().any(|s| {
        matches!(
            s.params,
            cutover_planner::dag::Params::Pause(cutover_planner::dag::PauseParams {
                duration: None,
                ..
            })
        )
    });
    Header {
        format_version: if hold || manual {
            crate::log::GATED_FORMAT_VERSION
        } else {
            crate::log::FORMAT_VERSION
        },
        run_id: run_id.into(),
        plan_hash: plan.hash.clone(),
        dry_run,
    }
}
