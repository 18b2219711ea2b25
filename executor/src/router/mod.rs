//! Routers: how a `shift` step moves traffic and where an `analysis` gate reads its data.
//!
//! One trait, [`Router`], two implementations:
//! - [`nginx::Nginx`] rewrites the `upstream` block of the file cutover owns (temp file +
//!   rename), validates with `nginx -t` before anything goes live, reloads, and confirms a new
//!   worker generation is serving and the old one has exited before the step succeeds. Analysis
//!   reads the JSON access log.
//! - [`haproxy::Haproxy`] changes server weights (and sets servers in MAINT or DRAIN ready)
//!   through the runtime API (admin socket), with no reload, and rewrites the config file so a
//!   restart keeps the state. Analysis reads the per-server counters from the same socket.
//!
//! Routers change only the servers the plan names and keep everything else as it is: a
//! `backup` server, another application's, a parameter like `max_fails=`.
//!
//! Both record the exact previous state before they change anything, in the run directory, so
//! a shift interrupted by a crash is re-run against the right "before", and a rollback puts it
//! back byte for byte.

pub mod haproxy;
pub mod nginx;
pub mod requestlog;

use crate::before::{saved_before, write_atomic};
use crate::driver::{BoxFuture, StepError};
use cutover_planner::dag::{PlannedShift, RouterParams, Server};
use cutover_planner::spec::RouterKind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Judges the canary's and the stable version's figures so far: `true` once the verdict cannot
/// change (a threshold crossed).
pub type Early = Arc<dyn Fn(&Observation, &Observation) -> bool + Send + Sync>;

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
    /// Each request's latency in seconds, where the router gives them (nginx's access log);
    /// `None` behind HAProxy, whose statistics keep only an average.
    pub times: Option<Vec<f64>>,
}

impl Observation {
    /// The figures of `requests` requests with `errors` among them, from each request's latency
    /// in seconds (`times`: the router's log of them): p99 and all.
    pub fn of_requests(requests: u64, errors: u64, times: &[f64]) -> Self {
        let mut times = times.to_vec();
        Observation {
            requests,
            errors,
            latency: p99(&mut times).map(Duration::from_secs_f64),
            latency_kind: "p99",
            times: Some(times),
        }
    }
}

/// A router's state before a shift changed it: saved in the run directory before any change, and
/// the shift's undo data. In JSON, `"router": "nginx"` or `"haproxy"` and that router's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "router", rename_all = "lowercase")]
pub enum RouterBefore {
    /// nginx: the upstream file as it was.
    Nginx(nginx::Before),
    /// HAProxy: the backend's weights and admin states, and the config file as it was.
    Haproxy(haproxy::Before),
}

impl RouterBefore {
    fn router(&self) -> &'static str {
        match self {
            RouterBefore::Nginx(_) => "nginx",
            RouterBefore::Haproxy(_) => "HAProxy",
        }
    }
}

/// Why a router could not move traffic, or could not be watched or checked.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// `[router]` lacks a key this router needs.
    #[error("router: {router} needs `{key}`")]
    Unconfigured {
        /// `nginx` or `HAProxy`.
        router: &'static str,
        /// The key.
        key: &'static str,
    },
    /// A file the router reads could not be read.
    #[error("{router}: cannot read {}", path.display())]
    Read {
        /// `nginx` or `HAProxy`.
        router: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The state saved before the step is another router's.
    #[error("the recorded router state is {found}'s, but this step's router is {want}")]
    OtherRouter {
        /// The router that saved it.
        found: &'static str,
        /// The step's router.
        want: &'static str,
    },
    /// nginx.
    #[error(transparent)]
    Nginx(#[from] nginx::NginxError),
    /// HAProxy.
    #[error(transparent)]
    Haproxy(#[from] haproxy::HaproxyError),
}

impl From<nginx::NginxError> for StepError {
    fn from(e: nginx::NginxError) -> Self {
        RouterError::from(e).into()
    }
}

impl From<haproxy::HaproxyError> for StepError {
    fn from(e: haproxy::HaproxyError) -> Self {
        RouterError::from(e).into()
    }
}

/// The error for state recorded by another router than the step's.
fn other_router(found: &RouterBefore, want: &'static str) -> StepError {
    RouterError::OtherRouter {
        found: found.router(),
        want,
    }
    .into()
}

/// Moves traffic between servers and reports what the canary served.
pub trait Router: Send + Sync {
    /// Sets the servers (and weights) of `upstream` to exactly `servers`, confirms the change
    /// is live, and returns the undo data that restores the state before it. `key` names the
    /// step: the state before it is saved under that name in `state_dir` before any change, and
    /// a re-run of the same step reuses it.
    fn apply(
        &self,
        upstream: String,
        servers: Vec<Server>,
        state_dir: PathBuf,
        key: String,
    ) -> BoxFuture<Result<(RouterBefore, String), StepError>>;
    /// Restores the state `undo` recorded, and confirms it is live.
    fn restore(&self, undo: RouterBefore) -> BoxFuture<Result<(), StepError>>;
    /// Watches `servers`, the canary's and the stable version's (for a gate comparing the two;
    /// none otherwise), for `window` and reports what each set served over the same time. Returns
    /// early once `early` (given both) says the verdict cannot change.
    fn observe(
        &self,
        upstream: String,
        servers: (Vec<String>, Vec<String>),
        window: Duration,
        early: Early,
    ) -> BoxFuture<Result<(Observation, Observation), StepError>>;
    /// Checks the router is reachable, that `upstreams` can carry the planned servers, and that
    /// it will accept every one of the planned `shifts` (in plan order), before anything changes.
    fn check(
        &self,
        upstreams: Vec<(String, Vec<String>)>,
        shifts: Vec<PlannedShift>,
    ) -> BoxFuture<Result<String, StepError>>;
}

/// The router a step's params describe, with relative paths resolved against `spec_dir`.
pub fn from_params(p: &RouterParams, spec_dir: &Path) -> Result<Arc<dyn Router>, StepError> {
    let path = |v: &Option<String>| v.as_ref().map(|v| spec_dir.join(v));
    Ok(match p.kind {
        RouterKind::Nginx => Arc::new(nginx::Nginx {
            upstream_file: path(&p.upstream_file).ok_or(RouterError::Unconfigured {
                router: "nginx",
                key: "upstream_file",
            })?,
            pid_file: path(&p.pid_file).unwrap_or_else(|| PathBuf::from("/run/nginx.pid")),
            test: p
                .test
                .clone()
                .unwrap_or_else(|| vec!["nginx".into(), "-t".into()]),
            reload: p.reload.clone(),
            access_log: path(&p.access_log),
        }),
        RouterKind::Haproxy => Arc::new(haproxy::Haproxy {
            admin_socket: path(&p.admin_socket).ok_or(RouterError::Unconfigured {
                router: "HAProxy",
                key: "admin_socket",
            })?,
            config_file: path(&p.config_file),
            log: p.log.clone(),
        }),
    })
}

/// The text of `path`, or `None` when there is no such file; `who` names the router in errors.
pub fn read_opt(who: &'static str, path: &Path) -> Result<Option<String>, RouterError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RouterError::Read {
            router: who,
            path: path.to_path_buf(),
            source,
        }),
    }
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
