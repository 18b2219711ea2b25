//! Routers: how a `shift` step moves traffic and where an `analysis` gate reads its data.
//!
//! One trait, [`Router`], two implementations:
//! - [`nginx::Nginx`] rewrites the `upstream` block of the file cutover owns (temp file +
//!   rename), validates with `nginx -t` before anything goes live, reloads, and confirms a new
//!   worker generation is serving before the step succeeds. Analysis reads the JSON access log.
//! - [`haproxy::Haproxy`] changes server weights through the runtime API (admin socket), with no
//!   reload, and rewrites the config file so a restart keeps the state. Analysis reads the
//!   per-server counters from the same socket.
//!
//! Both record the exact previous state before they change anything, in the run directory, so
//! a shift interrupted by a crash is re-run against the right "before", and a rollback puts it
//! back byte for byte.

pub mod haproxy;
pub mod nginx;

use crate::driver::{BoxFuture, StepError};
use cutover_planner::dag::{RouterParams, Server};
use cutover_planner::spec::RouterKind;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What an analysis window saw of the canary.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    /// Requests answered by the canary's servers.
    pub requests: u64,
    /// Of those, 5xx answers and failed attempts.
    pub errors: u64,
    /// p99 latency (nginx: from the access log) or HAProxy's average response time (it keeps
    /// no percentiles); `None` with no requests.
    pub latency: Option<Duration>,
    /// Which statistic `latency` is.
    pub latency_kind: &'static str,
}

/// Moves traffic between servers and reports what the canary served.
pub trait Router: Send + Sync {
    /// Sets the servers (and weights) of `upstream` to exactly `servers`, confirms the change
    /// is live, and returns the undo data that restores the state before it. `key` names the
    /// step: the state before it is saved under that name in `state_dir` before any change, and
    /// a re-run of the same step reuses it.
    fn apply(&self, upstream: String, servers: Vec<Server>, state_dir: PathBuf, key: String) -> BoxFuture<Result<(Value, String), StepError>>;
    /// Restores the state `undo` recorded, and confirms it is live.
    fn restore(&self, undo: Value) -> BoxFuture<Result<(), StepError>>;
    /// Watches the canary's servers for `window` and reports what they served. Returns early
    /// once `early` says the verdict cannot change.
    fn observe(&self, upstream: String, canary: Vec<String>, window: Duration, early: Arc<dyn Fn(&Observation) -> bool + Send + Sync>) -> BoxFuture<Result<Observation, StepError>>;
    /// Checks the router is reachable and that `upstreams` can carry the planned servers.
    fn check(&self, upstreams: Vec<(String, Vec<String>)>) -> BoxFuture<Result<String, StepError>>;
}

/// The router a step's params describe, with relative paths resolved against `spec_dir`.
pub fn from_params(p: &RouterParams, spec_dir: &Path) -> Result<Arc<dyn Router>, StepError> {
    let path = |v: &Option<String>| v.as_ref().map(|v| spec_dir.join(v));
    Ok(match p.kind {
        RouterKind::Nginx => Arc::new(nginx::Nginx {
            upstream_file: path(&p.upstream_file).ok_or_else(|| StepError("router: nginx needs `upstream_file`".into()))?,
            pid_file: path(&p.pid_file).unwrap_or_else(|| PathBuf::from("/run/nginx.pid")),
            test: p.test.clone().unwrap_or_else(|| vec!["nginx".into(), "-t".into()]),
            reload: p.reload.clone(),
            access_log: path(&p.access_log),
        }),
        RouterKind::Haproxy => Arc::new(haproxy::Haproxy {
            admin_socket: path(&p.admin_socket).ok_or_else(|| StepError("router: HAProxy needs `admin_socket`".into()))?,
            config_file: path(&p.config_file),
        }),
    })
}

/// Writes `content` to `path` atomically: a temp file in the same directory, fsync, rename,
/// fsync of the directory. Readers see the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.cutover-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = f.set_permissions(meta.permissions());
    }
    f.write_all(content)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn saved_file(state_dir: &Path, key: &str) -> PathBuf {
    // One file per step id, injectively: `%` and `/` escaped.
    state_dir.join("before").join(format!("{}.json", key.replace('%', "%25").replace('/', "%2F")))
}

/// The state saved before step `key` changed anything, if it got that far: a step with no saved
/// state changed nothing.
pub fn saved(state_dir: &Path, key: &str) -> Option<Value> {
    std::fs::read(saved_file(state_dir, key)).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// The state saved before step `key` changed anything, or `save()`d now when this is the first
/// attempt. Kept in the run directory (fsync'ed before the step changes anything), so a re-run
/// after a crash, a probe and a rollback all use the true "before".
pub fn saved_before(state_dir: &Path, key: &str, save: impl FnOnce() -> Result<Value, StepError>) -> Result<Value, StepError> {
    let file = saved_file(state_dir, key);
    if let Some(v) = saved(state_dir, key) {
        return Ok(v);
    }
    let v = save()?;
    std::fs::create_dir_all(file.parent().unwrap()).map_err(|e| StepError(format!("cannot create {}: {e}", file.parent().unwrap().display())))?;
    write_atomic(&file, &serde_json::to_vec(&v).unwrap()).map_err(|e| StepError(format!("cannot save the router state to {}: {e}", file.display())))?;
    Ok(v)
}

/// p99 of `values` (nearest rank).
pub fn p99(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((values.len() as f64) * 0.99).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}
