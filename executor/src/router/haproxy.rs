//! HAProxy through its runtime API: weights change without a reload, so no client connection
//! is closed. The config file is rewritten too (the `weight` of the same `server` lines), so a
//! restart keeps the state.
//!
//! Servers are matched by address: the backend must declare a `server` line for every address
//! the release uses (the new version's included, e.g. with `weight 0`); preflight checks this.
//!
//! A weight on a server in MAINT or DRAIN sends it nothing, and a backend on a static algorithm
//! takes only weight 0 or the configured one: a shift sets the servers it gives traffic to
//! `ready` (dropping `disabled` from the file) and confirms them UP before and after the weights
//! change, and preflight (`Router::check`) checks every planned weight
//! against the backend's [`Algorithm`] before anything changes.

use super::{Observation, Router, RouterBefore, other_router, saved_before, write_atomic};
use crate::driver::{BoxFuture, StepError};
use cutover_planner::dag::{PlannedShift, Server};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// HAProxy as configured in the spec.
#[derive(Debug, Clone)]
pub struct Haproxy {
    /// Admin socket (`stats socket ... level admin`).
    pub admin_socket: PathBuf,
    /// Config file kept in step with the runtime state.
    pub config_file: Option<PathBuf>,
    /// `host:port` (UDP) where gates listen for HAProxy's request log ([`log`]); `None`: gates
    /// read `show stat` (an average response time).
    pub log: Option<String>,
}

static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One server as `show servers state` reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerState {
    /// Server name.
    pub name: String,
    /// `addr:port`.
    pub addr: String,
    /// Current (user) weight.
    pub weight: u32,
    /// The weight the configuration gave it: on a static algorithm, the only one besides 0
    /// HAProxy accepts at runtime.
    pub iweight: u32,
    /// `srv_op_state`: 0 stopped (DOWN), 1 starting, 2 running, 3 stopping.
    pub op_state: u8,
    /// `srv_admin_state` bits (see [`admin`]).
    pub admin_state: u8,
    /// `srv_check_state` bits: 0x02 configured, 0x04 enabled, 0x08 paused.
    pub check_state: u16,
    /// `srv_check_result`: 0 unknown, 1 neutral, 2 failed, 3 passed, 4 passed on condition.
    pub check_result: u8,
}

/// `srv_admin_state` bits (HAProxy 2.6 `enum srv_admin`).
pub mod admin {
    /// Forced into maintenance (`set server ... state maint`, or `disabled` in the config).
    pub const FMAINT: u8 = 0x01;
    /// Maintenance inherited from a tracked server.
    pub const IMAINT: u8 = 0x02;
    /// Marks `disabled` in the configuration (stays after `state ready`; no effect alone).
    pub const CMAINT: u8 = 0x04;
    /// Forced into drain (`set server ... state drain`).
    pub const FDRAIN: u8 = 0x08;
    /// Drain inherited from a tracked server.
    pub const IDRAIN: u8 = 0x10;
    /// Down because its address does not resolve.
    pub const RMAINT: u8 = 0x20;
}

impl ServerState {
    /// In maintenance or drain, for whatever reason: it takes no new traffic.
    pub fn held(&self) -> bool {
        self.admin_state
            & (admin::FMAINT | admin::IMAINT | admin::RMAINT | admin::FDRAIN | admin::IDRAIN)
            != 0
    }

    /// Held for a reason `set server ... state ready` cannot clear (a tracked server's state, a
    /// name that does not resolve): what to say about it.
    pub fn held_elsewhere(&self) -> Option<&'static str> {
        if self.admin_state & (admin::IMAINT | admin::IDRAIN) != 0 {
            Some("inherits maintenance or drain from the server it `track`s")
        } else if self.admin_state & admin::RMAINT != 0 {
            Some("is in maintenance because its address does not resolve")
        } else {
            None
        }
    }

    /// The admin state cutover can set back: `maint`, `drain` or `ready`.
    pub fn admin_word(&self) -> &'static str {
        if self.admin_state & admin::FMAINT != 0 {
            "maint"
        } else if self.admin_state & admin::FDRAIN != 0 {
            "drain"
        } else {
            "ready"
        }
    }

    /// Takes traffic now: not held, running (or starting), and its health check (if it has
    /// one) passed.
    pub fn takes_traffic(&self) -> bool {
        let checked = self.check_state & 0x04 != 0;
        !self.held()
            && matches!(self.op_state, 1 | 2)
            && (!checked || matches!(self.check_result, 3 | 4))
    }

    /// Its state in words, for messages.
    pub fn describe(&self) -> String {
        let op = match self.op_state {
            0 => "DOWN",
            1 => "starting",
            2 => "UP",
            _ => "stopping",
        };
        let held = if self.admin_state & (admin::FMAINT | admin::IMAINT | admin::RMAINT) != 0 {
            " in MAINT"
        } else if self.admin_state & (admin::FDRAIN | admin::IDRAIN) != 0 {
            " in DRAIN"
        } else {
            ""
        };
        let check = match (self.check_state & 0x04 != 0, self.check_result) {
            (false, _) => "",
            (true, 2) => ", health check failing",
            (true, 0) => ", health check not run yet",
            _ => "",
        };
        format!("{op}{held}{check}")
    }
}

/// Why HAProxy could not be driven, watched or checked.
#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    /// The admin socket does not answer.
    #[error("HAProxy: cannot connect to the admin socket {}: {source} (is HAProxy running with \
             `stats socket {} level admin`?)", socket.display(), socket.display())]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Talking to the admin socket failed.
    #[error("HAProxy: {command}")]
    Socket {
        /// The runtime API command.
        command: String,
        /// The error.
        source: std::io::Error,
    },
    /// The admin socket did not answer in time.
    #[error("HAProxy: `{command}` got no answer within 10s")]
    NoAnswer {
        /// The runtime API command.
        command: String,
    },
    /// `show servers state` could not be read.
    #[error("HAProxy: backend `{backend}`: {reason}")]
    ServersState {
        /// The backend.
        backend: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// HAProxy refused a runtime command.
    #[error("HAProxy refused `{command}`: {answer}")]
    Refused {
        /// The runtime API command.
        command: String,
        /// HAProxy's answer.
        answer: String,
    },
    /// A weight did not take.
    #[error("HAProxy: {backend}/{server} has weight {weight} after setting {wanted}")]
    WeightNotSet {
        /// The backend.
        backend: String,
        /// The server.
        server: String,
        /// The weight it has.
        weight: u32,
        /// The weight set.
        wanted: u32,
    },
    /// A server vanished while its weight was set.
    #[error("HAProxy: {backend}/{server} disappeared")]
    Disappeared {
        /// The backend.
        backend: String,
        /// The server.
        server: String,
    },
    /// The config file could not be put back.
    #[error("HAProxy: cannot restore {}", path.display())]
    RestoreConfig {
        /// The config file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The config file could not be written.
    #[error("HAProxy: cannot write {}", path.display())]
    WriteConfig {
        /// The config file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `config_file` names no file.
    #[error("HAProxy: config file {} does not exist; hint: fix `config_file` in [router]", path.display())]
    NoConfigFile {
        /// The config file.
        path: PathBuf,
    },
    /// Servers a shift gives traffic to are not UP in time.
    #[error("HAProxy: {servers} {} s after the shift asked for it, so no traffic was moved; {}",
        UP_WITHIN.as_secs(),
        up_hint(backend)
    )]
    NotUp {
        /// The backend.
        backend: String,
        /// Each server that is not, with its state.
        servers: String,
    },
    /// Servers a shift gives traffic to are down once the weights are set.
    #[error(
        "HAProxy: {servers} right after the weights were set; {}",
        up_hint(backend)
    )]
    DownAfterShift {
        /// The backend.
        backend: String,
        /// Each server that is not, with its state.
        servers: String,
    },
    /// Preflight: servers the release keeps traffic on are not UP.
    #[error("HAProxy: {servers} (waited {} s), and the release keeps traffic on it; the shifts \
             would wait for it after the migrations ran; {}", SERVING_WITHIN.as_secs(), up_hint(backend))]
    NotServing {
        /// The backend.
        backend: String,
        /// Each server that is not, with its state.
        servers: String,
    },
    /// The backend has no server at a planned address.
    #[error("HAProxy: backend `{backend}` has no server at {addr}; declare it in the config (e.g. \
             `server p{} {addr} weight 0`) and reload HAProxy once before the release",
                 addr.rsplit(':').next().unwrap_or("")
             )]
    NoServerAt {
        /// The backend.
        backend: String,
        /// `host:port`.
        addr: String,
    },
    /// A server is held in MAINT or DRAIN by something cutover does not control.
    #[error(
        "HAProxy: {backend}/{server} ({addr}) {why}, so cutover cannot give it traffic; hint: make \
         it ready at its source (`show servers state {backend}`), then resume"
    )]
    HeldElsewhere {
        /// The backend.
        backend: String,
        /// The server.
        server: String,
        /// `host:port`.
        addr: String,
        /// What holds it.
        why: String,
    },
    /// Preflight: a server a shift gives traffic to is held by something cutover does not control.
    #[error(
        "HAProxy: {backend}/{server} ({addr}) {why}, and step {step} gives it traffic; cutover \
         cannot make it ready itself; hint: make it ready at its source (`show servers state \
         {backend}` on the admin socket), then run the release"
    )]
    HeldAtSource {
        /// The backend.
        backend: String,
        /// The server.
        server: String,
        /// `host:port`.
        addr: String,
        /// What holds it.
        why: String,
        /// The first shift that gives it traffic.
        step: String,
    },
    /// The request log's address cannot be listened on.
    #[error(
        "HAProxy: cannot listen for the request log on {addr} (`log` of the [router] table): \
         {source}"
    )]
    LogListen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// An analysis gate's canary servers are not in the backend.
    #[error("HAProxy: backend `{backend}` has none of the canary's servers ({})", canary.join(", "))]
    NoCanary {
        /// The backend.
        backend: String,
        /// The canary's addresses.
        canary: Vec<String>,
    },
    /// Preflight: planned servers are not declared.
    #[error("HAProxy: these servers are not declared in their backends: {}; add a `server` line for \
             each (e.g. `weight 0` for the new version) and reload HAProxy once before the release",
                 missing.join(", ")
             )]
    Undeclared {
        /// `backend: host:port` of each.
        missing: Vec<String>,
    },
    /// Preflight: a shift gives weight to a `backup` server.
    #[error(
        "HAProxy: {backend}/{server} ({addr}) is declared `backup`, so HAProxy sends it traffic \
         only when every other server is down, and step {step} would give it none of the weight it \
         sets; nothing was changed; hint: remove `backup` from its `server` line and reload HAProxy \
         before the release"
    )]
    BackupServer {
        /// The backend.
        backend: String,
        /// The server.
        server: String,
        /// `host:port`.
        addr: String,
        /// The shift.
        step: String,
    },
    /// Preflight: `balance first` cannot split traffic.
    #[error("HAProxy: backend `{backend}` uses `balance first`, which ignores weights (it fills \
             servers in declaration order): step {step} would give traffic to {} at once and could \
             not split it as planned; hint: plan 0%/100% steps only (strategy `blue-green`), or use \
             `balance roundrobin` or `leastconn`", serving.join(" and "))]
    BalanceFirst {
        /// The backend.
        backend: String,
        /// The shift.
        step: String,
        /// The servers it gives traffic to.
        serving: Vec<String>,
    },
    /// Preflight: a static algorithm refuses the planned weights.
    #[error("HAProxy: backend `{backend}` balances with `{algorithm}`, a static algorithm{unseen}: \
             at runtime HAProxy accepts only weight 0 or a server's configured weight, and step \
             {step} needs {}; nothing was changed; hint: use a dynamic algorithm (`balance \
             roundrobin`, `leastconn`, or `hash-type consistent`), or plan 0%/100% steps only \
             (strategy `blue-green`) with the new version's server declared at its full weight and \
             `disabled` (cutover sets it ready)", refused.join(", "))]
    StaticAlgorithm {
        /// The backend.
        backend: String,
        /// The algorithm.
        algorithm: String,
        /// Why cutover may have misjudged it, or nothing.
        unseen: &'static str,
        /// The shift.
        step: String,
        /// Each weight it refuses.
        refused: Vec<String>,
    },
}

impl Haproxy {
    /// Sends one command to the admin socket and returns the answer.
    pub async fn command(&self, cmd: &str) -> Result<String, StepError> {
        let mut s = tokio::net::UnixStream::connect(&self.admin_socket)
            .await
            .map_err(|source| HaproxyError::Connect {
                socket: self.admin_socket.clone(),
                source,
            })?;
        let failed = |source| HaproxyError::Socket {
            command: cmd.to_string(),
            source,
        };
        s.write_all(format!("{cmd}\n").as_bytes())
            .await
            .map_err(failed)?;
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
            .await
            .map_err(|_| HaproxyError::NoAnswer {
                command: cmd.to_string(),
            })?
            .map_err(failed)?;
        Ok(out)
    }

    /// Servers of `backend`.
    pub async fn servers(&self, backend: &str) -> Result<Vec<ServerState>, StepError> {
        let out = self
            .command(&format!("show servers state {backend}"))
            .await?;
        Ok(
            parse_servers_state(&out).map_err(|reason| HaproxyError::ServersState {
                backend: backend.to_string(),
                reason,
            })?,
        )
    }

    async fn set_weights(
        &self,
        backend: &str,
        weights: &BTreeMap<String, u32>,
    ) -> Result<(), StepError> {
        for (name, w) in weights {
            let out = self
                .command(&format!("set server {backend}/{name} weight {w}"))
                .await?;
            if !out.trim().is_empty() {
                return Err(HaproxyError::Refused {
                    command: format!("set server {backend}/{name} weight {w}"),
                    answer: out.trim().to_string(),
                }
                .into());
            }
        }
        let now = self.servers(backend).await?;
        for (name, w) in weights {
            let (backend, server) = (backend.to_string(), name.clone());
            match now.iter().find(|s| &s.name == name) {
                Some(s) if s.weight == *w => {}
                Some(s) => {
                    return Err(HaproxyError::WeightNotSet {
                        backend,
                        server,
                        weight: s.weight,
                        wanted: *w,
                    }
                    .into());
                }
                None => return Err(HaproxyError::Disappeared { backend, server }.into()),
            }
        }
        Ok(())
    }
}

/// A backend before a shift changed it ([`RouterBefore::Haproxy`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Before {
    /// The backend.
    pub backend: String,
    /// Weight of each server the shift sets.
    pub weights: BTreeMap<String, u32>,
    /// Admin state (`ready`, `maint`, `drain`) of each of those servers.
    pub states: BTreeMap<String, String>,
    /// The config file cutover rewrites, if any.
    pub config_file: Option<PathBuf>,
    /// Its text (`None`: no such file).
    pub config: Option<String>,
}

impl Haproxy {
    /// Puts back the weights, admin states and config file a step saved before it changed
    /// anything. Servers that were ready are made ready first and servers that were in MAINT or
    /// DRAIN go back to it last, after the weights: traffic is never left with nowhere to go.
    async fn put_back(&self, before: &Before) -> Result<(), StepError> {
        let Before {
            backend,
            weights,
            states,
            ..
        } = before;
        if let (Some(file), Some(content)) = (&before.config_file, &before.config)
            && read_opt(file)?.as_deref() != Some(content.as_str())
        {
            write_atomic(file, content.as_bytes()).map_err(|source| {
                HaproxyError::RestoreConfig {
                    path: file.clone(),
                    source,
                }
            })?;
        }
        let now = self.servers(backend).await?;
        let differs = |name: &str, want: &str| {
            now.iter()
                .find(|s| s.name == name)
                .is_some_and(|s| s.admin_word() != want)
        };
        for (name, st) in states
            .iter()
            .filter(|(n, st)| *st == "ready" && differs(n, st))
        {
            self.set_state(backend, name, st).await?;
        }
        self.set_weights(backend, weights).await?;
        for (name, st) in states
            .iter()
            .filter(|(n, st)| *st != "ready" && differs(n, st))
        {
            self.set_state(backend, name, st).await?;
        }
        Ok(())
    }

    /// `set server BACKEND/NAME state STATE` (`ready`, `drain` or `maint`).
    async fn set_state(&self, backend: &str, name: &str, state: &str) -> Result<(), StepError> {
        let cmd = format!("set server {backend}/{name} state {state}");
        let out = self.command(&cmd).await?;
        if !out.trim().is_empty() {
            return Err(HaproxyError::Refused {
                command: cmd,
                answer: out.trim().to_string(),
            }
            .into());
        }
        Ok(())
    }

    /// Waits until every server in `names` takes traffic (UP, not in MAINT or DRAIN, its health
    /// check passed), at most `timeout`; `Ok(Err(list))` names those that still do not.
    async fn wait_taking_traffic(
        &self,
        backend: &str,
        names: &BTreeSet<String>,
        timeout: Duration,
    ) -> Result<Result<(), String>, StepError> {
        let t0 = Instant::now();
        loop {
            let now = self.servers(backend).await?;
            let not: Vec<&ServerState> = now
                .iter()
                .filter(|s| names.contains(&s.name) && !s.takes_traffic())
                .collect();
            if not.is_empty() {
                return Ok(Ok(()));
            }
            if t0.elapsed() >= timeout {
                return Ok(Err(not
                    .iter()
                    .map(|s| format!("{backend}/{} ({}) is {}", s.name, s.addr, s.describe()))
                    .collect::<Vec<_>>()
                    .join(", ")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Haproxy {
    /// How `backend` takes runtime weights: its algorithm from `show stat`, `hash-type` from
    /// `config` (the config file's text, if known).
    async fn algorithm(&self, backend: &str, config: Option<&str>) -> Result<Algorithm, StepError> {
        let stat = self.command("show stat").await?;
        Ok(algorithm(
            &stat_algo(&stat, backend).unwrap_or_default(),
            config.and_then(|c| hash_type(c, backend)).as_deref(),
        ))
    }
}

/// The hint for a server that does not take traffic.
fn up_hint(backend: &str) -> String {
    format!(
        "hint: check that the server answers HAProxy's health check (`show servers state {backend}` \
         on the admin socket)"
    )
}

impl Haproxy {
    /// The step's changes, in the order that never sends traffic where it cannot go: the config
    /// file (weights, and no `disabled` on the servers that get traffic), then servers in MAINT
    /// or DRAIN that get traffic set ready, then every server that gets traffic confirmed UP,
    /// then the weights, confirmed.
    async fn go_live(
        &self,
        backend: &str,
        weights: &BTreeMap<String, u32>,
        serving: &BTreeSet<String>,
        woken: &[String],
    ) -> Result<(), StepError> {
        if let Some(c) = &self.config_file {
            let current =
                read_opt(c)?.ok_or_else(|| HaproxyError::NoConfigFile { path: c.clone() })?;
            let park: BTreeSet<String> = match self.algorithm(backend, Some(&current)).await? {
                Algorithm::Static(_) => weights
                    .iter()
                    .filter(|(_, w)| **w == 0)
                    .map(|(n, _)| n.clone())
                    .collect(),
                _ => BTreeSet::new(),
            };
            let new = rewrite_config(&current, backend, weights, serving, &park);
            if new != current {
                write_atomic(c, new.as_bytes()).map_err(|source| HaproxyError::WriteConfig {
                    path: c.clone(),
                    source,
                })?;
            }
        }
        for name in woken {
            self.set_state(backend, name, "ready").await?;
        }
        if let Err(servers) = self
            .wait_taking_traffic(backend, serving, UP_WITHIN)
            .await?
        {
            let backend = backend.to_string();
            return Err(HaproxyError::NotUp { backend, servers }.into());
        }
        self.set_weights(backend, weights).await?;
        // Still so once the weights are set: a release never ends on a server that cannot answer.
        if let Err(servers) = self
            .wait_taking_traffic(backend, serving, Duration::ZERO)
            .await?
        {
            let backend = backend.to_string();
            return Err(HaproxyError::DownAfterShift { backend, servers }.into());
        }
        Ok(())
    }
}

/// How long preflight waits for the servers serving now to show a passed health check (HAProxy
/// just restarted has not run one yet).
const SERVING_WITHIN: Duration = Duration::from_secs(10);

/// How long a shift waits for the servers it gives traffic to to be UP (HAProxy's health
/// checks run every 2 s by default and need 2 successes).
const UP_WITHIN: Duration = Duration::from_secs(30);

/// How a backend's algorithm takes runtime weights, from `show stat`'s `algo` and the config's
/// `hash-type` (HAProxy 2.6 manual, `balance`): hash-based algorithms are static unless
/// `hash-type consistent`, `static-rr` always is; `first` accepts weights and ignores them.
#[derive(Debug, Clone, PartialEq)]
pub enum Algorithm {
    /// Any weight applies at runtime.
    Dynamic,
    /// Only weight 0 or the configured weight (`iweight`) is accepted at runtime.
    Static(String),
    /// Weights are accepted and ignored: servers are filled in order.
    First,
}

/// Classifies `algo` (as `show stat` names it); `hash_type` is the config's, if known.
pub fn algorithm(algo: &str, hash_type: Option<&str>) -> Algorithm {
    let consistent = hash_type.is_some_and(|h| h.split_whitespace().next() == Some("consistent"));
    match algo {
        "static-rr" => Algorithm::Static(algo.to_string()),
        "first" => Algorithm::First,
        "source" | "uri" | "url_param" | "hash" | "rdp-cookie" | "hdr" if !consistent => {
            Algorithm::Static(algo.to_string())
        }
        a if (a.starts_with("hdr(") || a.starts_with("rdp-cookie(")) && !consistent => {
            Algorithm::Static(algo.to_string())
        }
        _ => Algorithm::Dynamic,
    }
}

/// `algo` of `backend`'s BACKEND row in `show stat`.
fn stat_algo(csv: &str, backend: &str) -> Option<String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let col = header.iter().position(|h| *h == "algo")?;
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&backend) && f.get(1) == Some(&"BACKEND"))
        .and_then(|f| f.get(col).map(|a| a.to_string()))
        .filter(|a| !a.is_empty())
}

/// Names of `backend`'s servers declared `backup` (`bck` = 1 in `show stat`).
fn backup_servers(csv: &str, backend: &str) -> Vec<String> {
    stat_rows(csv, backend)
        .into_iter()
        .filter(|(name, row)| name != "BACKEND" && name != "FRONTEND" && row.get("bck") == Some(&1))
        .map(|(name, _)| name)
        .collect()
}

/// Parses `show servers state` (format version 1; columns named by its header line).
pub fn parse_servers_state(out: &str) -> Result<Vec<ServerState>, String> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().ok_or("empty answer")?;
    if first.trim() != "1" {
        return Err(first.trim().to_string());
    }
    let header: Vec<&str> = lines
        .next()
        .ok_or("no header")?
        .trim_start_matches('#')
        .split_whitespace()
        .collect();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| *h == n)
            .ok_or(format!("no `{n}` column"))
    };
    let (name, addr, port, weight) = (
        col("srv_name")?,
        col("srv_addr")?,
        col("srv_port")?,
        col("srv_uweight")?,
    );
    let opt = |n: &str| header.iter().position(|h| *h == n);
    let (iweight, op, adm, cstate, cres) = (
        opt("srv_iweight"),
        opt("srv_op_state"),
        opt("srv_admin_state"),
        opt("srv_check_state"),
        opt("srv_check_result"),
    );
    let mut out = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < header.len().min(weight + 1) {
            continue;
        }
        let num = |c: Option<usize>| c.and_then(|c| f.get(c)).and_then(|v| v.parse::<u32>().ok());
        let weight = f[weight]
            .parse()
            .map_err(|_| format!("bad weight `{}`", f[weight]))?;
        out.push(ServerState {
            name: f[name].to_string(),
            addr: format!("{}:{}", f[addr], f.get(port).unwrap_or(&"0")),
            weight,
            iweight: num(iweight).unwrap_or(weight),
            op_state: num(op).map_or(2, |v| v as u8),
            admin_state: num(adm).unwrap_or(0) as u8,
            check_state: num(cstate).unwrap_or(0) as u16,
            check_result: num(cres).unwrap_or(0) as u8,
        });
    }
    Ok(out)
}

/// Sets the `weight` of the `server` lines (matched by name) of `backend` in a config file: the
/// weight's digits are replaced in place, or ` weight N` is added before any comment. The lines
/// of the servers in `enable` lose their `disabled` keyword, so a restart does not put them back
/// in maintenance. The servers in `park` (going to weight 0 on a static algorithm) keep their
/// weight and get `disabled` instead: after a restart they take no traffic, as now, and keep the
/// configured weight the next release needs (HAProxy makes it the only one it accepts besides 0).
/// Every other byte is kept.
pub fn rewrite_config(
    content: &str,
    backend: &str,
    weights: &BTreeMap<String, u32>,
    enable: &BTreeSet<String>,
    park: &BTreeSet<String>,
) -> String {
    let mut out = String::with_capacity(content.len());
    let mut inside = false;
    // `disabled` on a `default-server` line (of the last `defaults` section, or of this backend
    // above the server) applies to the servers after it: enabling one of them takes `enabled`.
    let (mut defaults_disabled, mut section_disabled, mut in_defaults) = (false, false, false);
    for line in content.split_inclusive('\n') {
        let code_end = line.find('#').unwrap_or(line.len());
        let code = &line[..code_end];
        let mut words = code.split_whitespace();
        let first = words.next().unwrap_or("");
        if !line.starts_with([' ', '\t']) && SECTIONS.contains(&first) {
            inside = (first == "backend" || first == "listen") && words.next() == Some(backend);
            in_defaults = first == "defaults";
            if in_defaults {
                defaults_disabled = false;
            }
            section_disabled = defaults_disabled;
        }
        if first == "default-server" {
            let has = |w: &str| keywords(line).iter().any(|(a, b)| &line[*a..*b] == w);
            let disabled = if has("disabled") {
                Some(true)
            } else if has("enabled") {
                Some(false)
            } else {
                None
            };
            if let Some(d) = disabled {
                section_disabled = d;
                if in_defaults {
                    // A defaults section's default-server carries to the proxies after it.
                    defaults_disabled = d;
                }
            }
        }
        let name = code
            .split_whitespace()
            .nth(1)
            .filter(|_| inside && first == "server");
        let mut line = line.to_string();
        let has = |line: &str, w: &str| keywords(line).iter().any(|(a, b)| &line[*a..*b] == w);
        if name.is_some_and(|n| park.contains(n)) {
            if !has(&line, "disabled") {
                let end = code.trim_end().len();
                line = format!("{} disabled{}", &line[..end], &line[end..]);
            }
        } else if let Some(w) = name.and_then(|n| weights.get(n)) {
            line = set_weight(&line, code_end, *w);
        }
        if name.is_some_and(|n| enable.contains(n)) {
            line = drop_keyword(&line, "disabled");
            if section_disabled && !has(&line, "enabled") {
                let code_end = line.find('#').unwrap_or(line.len());
                let end = line[..code_end].trim_end().len();
                line = format!("{} enabled{}", &line[..end], &line[end..]);
            }
        }
        out.push_str(&line);
    }
    out
}

/// `server` / `default-server` keywords that take a value: a word after one of them is its
/// value, not a keyword (`cookie disabled` names a cookie; HAProxy 2.6 manual, section 5.2).
const KEYWORDS_WITH_VALUE: &[&str] = &[
    "addr",
    "agent-addr",
    "agent-inter",
    "agent-port",
    "agent-send",
    "alpn",
    "ca-file",
    "check-alpn",
    "check-proto",
    "check-sni",
    "ciphers",
    "ciphersuites",
    "cookie",
    "crl-file",
    "crt",
    "curves",
    "downinter",
    "error-limit",
    "fall",
    "fastinter",
    "hash-key",
    "id",
    "init-addr",
    "inter",
    "log-proto",
    "max-reuse",
    "maxconn",
    "maxqueue",
    "minconn",
    "namespace",
    "npn",
    "observe",
    "on-error",
    "on-marked-down",
    "on-marked-up",
    "pool-conn-name",
    "pool-low-conn",
    "pool-max-conn",
    "pool-purge-delay",
    "port",
    "proto",
    "proxy-v2-options",
    "redir",
    "resolve-net",
    "resolve-opts",
    "resolve-prefer",
    "resolvers",
    "rise",
    "shard",
    "sigalgs",
    "slowstart",
    "sni",
    "socks4",
    "source",
    "ssl-max-ver",
    "ssl-min-ver",
    "tcp-ut",
    "track",
    "usesrc",
    "verify",
    "verifyhost",
    "weight",
    "ws",
];

/// Byte ranges of the keywords (not their values) of a `server NAME ADDR ...` or
/// `default-server ...` line's code part.
fn keywords(line: &str) -> Vec<(usize, usize)> {
    let code_end = line.find('#').unwrap_or(line.len());
    let spans = word_spans(&line[..code_end]);
    let skip = if line[..code_end].trim_start().starts_with("default-server") {
        1
    } else {
        3
    };
    let mut out = Vec::new();
    let mut value_next = false;
    for &(a, b) in spans.iter().skip(skip) {
        if value_next {
            value_next = false;
            continue;
        }
        value_next = KEYWORDS_WITH_VALUE.contains(&&line[a..b]);
        out.push((a, b));
    }
    out
}

/// Section keywords of a HAProxy config file.
const SECTIONS: [&str; 13] = [
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "resolvers",
    "peers",
    "userlist",
    "program",
    "http-errors",
    "ring",
    "cache",
    "mailers",
];

/// `line` without the keyword `word` (and the blank before it) in its code part; keywords start
/// after `server NAME ADDR`.
fn drop_keyword(line: &str, word: &str) -> String {
    let code_end = line.find('#').unwrap_or(line.len());
    let spans = word_spans(&line[..code_end]);
    let keys = keywords(line);
    let mut out = String::with_capacity(line.len());
    let mut pos = 0;
    for (k, (a, b)) in spans.iter().enumerate().skip(1) {
        if &line[*a..*b] == word && keys.contains(&(*a, *b)) {
            out.push_str(&line[pos..spans[k - 1].1]);
            pos = *b;
        }
    }
    out.push_str(&line[pos..]);
    out
}

/// Byte ranges of the whitespace-separated words of `code`.
fn word_spans(code: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in code.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(st)) => {
                spans.push((st, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(st) = start {
        spans.push((st, code.len()));
    }
    spans
}

/// The `hash-type` that applies to `backend` in a config file: its own, or that of the
/// `defaults` section it takes its defaults from (the last one before it, or `from NAME`).
pub fn hash_type(content: &str, backend: &str) -> Option<String> {
    let mut defaults: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut last_defaults: Option<String> = None;
    // The section being read: (is it `defaults`, its name, is it the backend).
    let mut section: Option<(bool, String, bool)> = None;
    let mut found: Option<Option<String>> = None;
    let mut own: Option<String> = None;
    for line in content.lines() {
        let code = &line[..line.find('#').unwrap_or(line.len())];
        let w: Vec<&str> = code.split_whitespace().collect();
        let Some(first) = w.first().copied() else {
            continue;
        };
        if !line.starts_with([' ', '\t']) && SECTIONS.contains(&first) {
            if let Some((false, _, true)) = &section {
                return own.or(found.flatten());
            }
            let name = w
                .get(1)
                .filter(|n| **n != "from")
                .map_or(String::new(), |n| n.to_string());
            let is_defaults = first == "defaults";
            if is_defaults {
                // A `defaults` section starts from HAProxy's own defaults, not the previous one's.
                defaults.insert(name.clone(), None);
                last_defaults = Some(name.clone());
            }
            let is_backend = (first == "backend" || first == "listen") && name == backend;
            if is_backend {
                let from = w
                    .iter()
                    .position(|x| *x == "from")
                    .and_then(|i| w.get(i + 1))
                    .map(|n| n.to_string())
                    .or(last_defaults.clone());
                found = Some(from.and_then(|d| defaults.get(&d).cloned().flatten()));
            }
            section = Some((is_defaults, name, is_backend));
            continue;
        }
        if first == "hash-type" {
            let v = w[1..].join(" ");
            match &section {
                Some((true, name, _)) => {
                    defaults.insert(name.clone(), Some(v));
                }
                Some((false, _, true)) => own = Some(v),
                _ => {}
            }
        }
    }
    own.or(found.flatten())
}

/// `line` with its `weight` set to `w` (its code part ends at `code_end`).
fn set_weight(line: &str, code_end: usize, w: u32) -> String {
    let code = &line[..code_end];
    let spans = word_spans(code);
    // Keywords start after `server NAME ADDR`; HAProxy takes the last `weight`.
    if let Some(k) = spans
        .iter()
        .enumerate()
        .skip(3)
        .filter(|(_, (a, b))| &code[*a..*b] == "weight")
        .map(|(k, _)| k)
        .next_back()
    {
        return match spans.get(k + 1) {
            Some((a, b)) => format!("{}{w}{}", &line[..*a], &line[*b..]),
            None => format!("{} {w}{}", &line[..spans[k].1], &line[spans[k].1..]),
        };
    }
    let end = code.trim_end().len();
    format!("{} weight {w}{}", &line[..end], &line[end..])
}

fn read_opt(path: &Path) -> Result<Option<String>, StepError> {
    Ok(super::read_opt("HAProxy", path)?)
}

/// Per-server counters from `show stat`.
fn stat_rows(csv: &str, backend: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let mut out = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        if f.first() != Some(&backend) {
            continue;
        }
        let row: BTreeMap<String, u64> = header
            .iter()
            .zip(&f)
            .filter_map(|(h, v)| v.parse().ok().map(|v| (h.to_string(), v)))
            .collect();
        out.insert(f.get(1).unwrap_or(&"").to_string(), row);
    }
    out
}

/// The weight of each server of `backend` a shift sets (`servers`, by address; `live`, the
/// backend now), and the servers it gives traffic to, which must not be held in MAINT or DRAIN
/// by something cutover does not control.
fn planned_weights(
    backend: &str,
    live: &[ServerState],
    servers: &[Server],
) -> Result<(BTreeMap<String, u32>, BTreeSet<String>), HaproxyError> {
    let mut weights = BTreeMap::new();
    let mut serving = BTreeSet::new();
    for s in servers {
        let Some(l) = live.iter().find(|l| l.addr == s.addr) else {
            return Err(HaproxyError::NoServerAt {
                backend: backend.to_string(),
                addr: s.addr.clone(),
            });
        };
        weights.insert(l.name.clone(), s.weight.min(256));
        if s.weight > 0 {
            if let Some(why) = l.held_elsewhere() {
                return Err(HaproxyError::HeldElsewhere {
                    backend: backend.to_string(),
                    server: l.name.clone(),
                    addr: l.addr.clone(),
                    why: why.to_string(),
                });
            }
            serving.insert(l.name.clone());
        }
    }
    Ok((weights, serving))
}

impl Haproxy {
    /// The state a shift of `weights` would change, as it is now: those servers' weights and
    /// admin states in `live`, and the config file.
    fn state_of(
        &self,
        backend: &str,
        live: &[ServerState],
        weights: &BTreeMap<String, u32>,
    ) -> Result<RouterBefore, StepError> {
        let changed = || live.iter().filter(|l| weights.contains_key(&l.name));
        let config = self.config_file.clone();
        Ok(RouterBefore::Haproxy(Before {
            backend: backend.to_string(),
            weights: changed().map(|l| (l.name.clone(), l.weight)).collect(),
            states: changed()
                .map(|l| (l.name.clone(), l.admin_word().to_string()))
                .collect(),
            config: match &config {
                Some(c) => read_opt(c)?,
                None => None,
            },
            config_file: config,
        }))
    }
}

impl Router for Haproxy {
    fn apply(
        &self,
        upstream: String,
        servers: Vec<Server>,
        state_dir: PathBuf,
        key: String,
    ) -> BoxFuture<Result<(RouterBefore, String), StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let _g = LOCK.lock().await;
            let live = this.servers(&upstream).await?;
            let (weights, serving) = planned_weights(&upstream, &live, &servers)?;
            let before = saved_before(&state_dir, &key, || {
                this.state_of(&upstream, &live, &weights)
            })?;
            let RouterBefore::Haproxy(saved) = &before else {
                return Err(other_router(&before, "HAProxy"));
            };
            let t0 = Instant::now();
            let woken: Vec<String> = live
                .iter()
                .filter(|l| serving.contains(&l.name) && l.held())
                .map(|l| l.name.clone())
                .collect();
            if let Err(e) = this.go_live(&upstream, &weights, &serving, &woken).await {
                // Back to the state saved before the step (a crashed earlier attempt may have
                // changed some weights already).
                return Err(e.put_back(
                    this.put_back(saved).await,
                    "the weights, server states and file from before the step are back",
                    "going back to the state from before the step",
                ));
            }
            let desc = weights
                .iter()
                .map(|(n, w)| format!("{n}={w}"))
                .collect::<Vec<_>>()
                .join(" ");
            let woke = if woken.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} set ready (was MAINT or DRAIN) and UP",
                    woken.join(", ")
                )
            };
            Ok((
                before,
                format!(
                    "backend {upstream}: {desc}{woke}; live through the admin socket in {} ms, no \
                     reload",
                    t0.elapsed().as_millis()
                ),
            ))
        })
    }

    fn restore(&self, undo: RouterBefore) -> BoxFuture<Result<(), StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let RouterBefore::Haproxy(before) = undo else {
                return Err(other_router(&undo, "HAProxy"));
            };
            let _g = LOCK.lock().await;
            this.put_back(&before).await
        })
    }

    fn observe(
        &self,
        upstream: String,
        (canary, stable): (Vec<String>, Vec<String>),
        window: Duration,
        early: super::Early,
    ) -> BoxFuture<Result<(Observation, Observation), StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let live = this.servers(&upstream).await?;
            let named = |addrs: &[String]| -> Vec<String> {
                addrs
                    .iter()
                    .filter_map(|a| live.iter().find(|l| &l.addr == a).map(|l| l.name.clone()))
                    .collect()
            };
            let (names, stable_names) = (named(&canary), named(&stable));
            if names.is_empty() {
                return Err(HaproxyError::NoCanary {
                    backend: upstream,
                    canary,
                }
                .into());
            }
            if let Some(addr) = &this.log {
                return observe_log(addr, (&canary, &stable), window, early).await;
            }
            let snap = || async {
                this.command("show stat")
                    .await
                    .map(|csv| stat_rows(&csv, &upstream))
            };
            let base = snap().await?;
            let t0 = Instant::now();
            loop {
                tokio::time::sleep(
                    Duration::from_millis(500).min(
                        window
                            .saturating_sub(t0.elapsed())
                            .max(Duration::from_millis(10)),
                    ),
                )
                .await;
                let now = snap().await?;
                let obs = served(&names, &base, &now);
                let stable_obs = served(&stable_names, &base, &now);
                if t0.elapsed() >= window || early(&obs, &stable_obs) {
                    return Ok((obs, stable_obs));
                }
            }
        })
    }

    fn check(
        &self,
        upstreams: Vec<(String, Vec<String>)>,
        shifts: Vec<PlannedShift>,
    ) -> BoxFuture<Result<String, StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let mut missing = Vec::new();
            let mut live: BTreeMap<String, Vec<ServerState>> = BTreeMap::new();
            for (backend, addrs) in &upstreams {
                let servers = this.servers(backend).await?;
                missing.extend(
                    addrs
                        .iter()
                        .filter(|a| !servers.iter().any(|l| &l.addr == *a))
                        .map(|a| format!("{backend}: {a}")),
                );
                live.insert(backend.clone(), servers);
            }
            if !missing.is_empty() {
                return Err(HaproxyError::Undeclared { missing }.into());
            }
            let config = match &this.config_file {
                Some(c) => Some(
                    read_opt(c)?.ok_or_else(|| HaproxyError::NoConfigFile { path: c.clone() })?,
                ),
                None => None,
            };
            let mut notes = Vec::new();
            let stat = this.command("show stat").await?;
            for (backend, servers) in &live {
                let planned: Vec<&PlannedShift> =
                    shifts.iter().filter(|sh| &sh.upstream == backend).collect();
                let config = config.as_deref();
                notes.extend(
                    this.check_backend(backend, servers, &planned, &stat, config)
                        .await?,
                );
            }
            let mut detail = format!(
                "HAProxy admin socket {} answers; every planned server is declared",
                this.admin_socket.display()
            );
            if !shifts.is_empty() {
                detail.push_str(&format!(
                    " and every one of the {} planned shift(s) takes weights the backend accepts",
                    shifts.len()
                ));
            }
            for n in notes {
                detail.push_str(&format!("; {n}"));
            }
            Ok(detail)
        })
    }
}

impl Haproxy {
    /// Preflight of one backend (its servers now, `stat` from `show stat`, the config file's
    /// text if known) against the shifts `planned` for it: no `backup` server gets weight, the
    /// algorithm takes every planned weight, servers in MAINT or DRAIN can be set ready, and the
    /// servers the release keeps serving are UP. Returns notes for the operator.
    async fn check_backend(
        &self,
        backend: &str,
        servers: &[ServerState],
        planned: &[&PlannedShift],
        stat: &str,
        config: Option<&str>,
    ) -> Result<Vec<String>, StepError> {
        // A `backup` server takes traffic only when every other server is down: a weight the
        // release gives it would send it nothing.
        let backups = backup_servers(stat, backend);
        let gets_weight = |l: &ServerState| {
            planned
                .iter()
                .find(|sh| sh.servers.iter().any(|s| s.addr == l.addr && s.weight > 0))
        };
        if let Some((l, sh)) = servers
            .iter()
            .filter(|l| backups.contains(&l.name))
            .find_map(|l| gets_weight(l).map(|sh| (l, sh)))
        {
            return Err(HaproxyError::BackupServer {
                backend: backend.to_string(),
                server: l.name.clone(),
                addr: l.addr.clone(),
                step: sh.step.clone(),
            }
            .into());
        }
        if !planned.is_empty() {
            let algorithm = self.algorithm(backend, config).await?;
            check_shifts(backend, servers, planned, &algorithm, config.is_some())?;
        }
        let notes = wake_notes(backend, servers, planned)?;
        let keeps = kept_serving(servers, planned);
        if let Err(servers) = self
            .wait_taking_traffic(backend, &keeps, SERVING_WITHIN)
            .await?
        {
            let backend = backend.to_string();
            return Err(HaproxyError::NotServing { backend, servers }.into());
        }
        Ok(notes)
    }
}

/// The servers serving now (the old version) that the first shift naming them keeps serving:
/// they must be UP now, or the shift would wait for them after the migrations ran. The servers
/// the release ends on are the ones it deploys: they cannot serve yet.
fn kept_serving(servers: &[ServerState], planned: &[&PlannedShift]) -> BTreeSet<String> {
    let last: BTreeSet<&str> = planned
        .last()
        .map(|sh| {
            sh.servers
                .iter()
                .filter(|s| s.weight > 0)
                .map(|s| s.addr.as_str())
                .collect()
        })
        .unwrap_or_default();
    servers
        .iter()
        .filter(|l| l.weight > 0 && !l.held() && !last.contains(l.addr.as_str()))
        .filter(|l| {
            planned
                .iter()
                .find_map(|sh| sh.servers.iter().find(|s| s.addr == l.addr))
                .is_some_and(|s| s.weight > 0)
        })
        .map(|l| l.name.clone())
        .collect()
}

/// Whether `backend` (its servers now, the algorithm it balances with) accepts every weight the
/// planned shifts set; the first shift it would refuse, as an error with what to change.
fn check_shifts(
    backend: &str,
    servers: &[ServerState],
    shifts: &[&PlannedShift],
    algo: &Algorithm,
    config_known: bool,
) -> Result<(), HaproxyError> {
    for sh in shifts {
        let named = |addr: &str| servers.iter().find(|l| l.addr == addr);
        match algo {
            Algorithm::Dynamic => {}
            Algorithm::First => {
                let serving: Vec<String> = sh
                    .servers
                    .iter()
                    .filter(|s| s.weight > 0)
                    .filter_map(|s| named(&s.addr))
                    .map(|l| l.name.clone())
                    .collect();
                if serving.len() > 1 {
                    return Err(HaproxyError::BalanceFirst {
                        backend: backend.to_string(),
                        step: sh.step.clone(),
                        serving,
                    });
                }
            }
            Algorithm::Static(name) => {
                let refused: Vec<String> = sh
                    .servers
                    .iter()
                    .filter_map(|s| named(&s.addr).map(|l| (l, s.weight.min(256))))
                    .filter(|(l, w)| *w != 0 && *w != l.iweight)
                    .map(|(l, w)| format!("{} at {w} (configured {})", l.name, l.iweight))
                    .collect();
                if !refused.is_empty() {
                    let unseen = if config_known || name == "static-rr" {
                        ""
                    } else {
                        " (cutover reads `hash-type consistent` from `config_file`, which [router] \
                         does not set)"
                    };
                    return Err(HaproxyError::StaticAlgorithm {
                        backend: backend.to_string(),
                        algorithm: name.clone(),
                        unseen,
                        step: sh.step.clone(),
                        refused,
                    });
                }
            }
        }
    }
    Ok(())
}

/// What preflight says about planned servers in MAINT or DRAIN: a note for those a shift will
/// set ready, an error for those it cannot.
fn wake_notes(
    backend: &str,
    servers: &[ServerState],
    shifts: &[&PlannedShift],
) -> Result<Vec<String>, HaproxyError> {
    let mut notes = Vec::new();
    for l in servers {
        let Some(first) = shifts
            .iter()
            .find(|sh| sh.servers.iter().any(|s| s.addr == l.addr && s.weight > 0))
        else {
            continue;
        };
        if let Some(why) = l.held_elsewhere() {
            return Err(HaproxyError::HeldAtSource {
                backend: backend.to_string(),
                server: l.name.clone(),
                addr: l.addr.clone(),
                why: why.to_string(),
                step: first.step.clone(),
            });
        }
        if l.held() || l.admin_state & admin::CMAINT != 0 {
            let disabled = if l.admin_state & admin::CMAINT != 0 {
                " (`disabled` in the config)"
            } else {
                ""
            };
            notes.push(format!(
                "{backend}/{} is {}{disabled}: step {} sets it ready and confirms it UP before \
                 moving traffic (and drops `disabled` from the config file), and a rollback puts it \
                 back",
                l.name,
                l.describe(),
                first.step
            ));
        }
    }
    Ok(notes)
}

/// [`Router::observe`] from HAProxy's request log ([`super::requestlog`]), received at `addr`:
/// each request of the canary's and the stable version's servers (`servers`) over `window`,
/// judged by `early` every 0.5 s; the latency is a true p99 of the window's requests.
async fn observe_log(
    addr: &str,
    servers: (&[String], &[String]),
    window: Duration,
    early: super::Early,
) -> Result<(Observation, Observation), StepError> {
    let mut sub = super::requestlog::subscribe(addr).map_err(|source| HaproxyError::LogListen {
        addr: addr.to_string(),
        source,
    })?;
    let (mut canary, mut stable) = (Tally::default(), Tally::default());
    let t0 = Instant::now();
    loop {
        let until = tokio::time::Instant::now()
            + Duration::from_millis(500).min(window.saturating_sub(t0.elapsed()));
        loop {
            match tokio::time::timeout_at(until, sub.rx.recv()).await {
                Ok(Ok(e)) if servers.0.contains(&e.server) => canary.add(&e),
                Ok(Ok(e)) if servers.1.contains(&e.server) => stable.add(&e),
                Ok(Ok(_)) => {}
                // More lines than the channel holds arrived between two reads: those are lost
                // to the figures (65,536 lines: far beyond a canary's rate).
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        let (obs, base) = (canary.observation(), stable.observation());
        if t0.elapsed() >= window || early(&obs, &base) {
            return Ok((obs, base));
        }
    }
}

/// A server set's requests from the log so far.
#[derive(Default)]
struct Tally {
    requests: u64,
    errors: u64,
    times: Vec<f64>,
}

impl Tally {
    fn add(&mut self, e: &super::requestlog::Entry) {
        self.requests += 1;
        if e.status >= 500 {
            self.errors += 1;
        }
        self.times.push(e.ms as f64 / 1000.0);
    }

    fn observation(&self) -> Observation {
        Observation::of_requests(self.requests, self.errors, &self.times)
    }
}

/// What the servers `names` of a backend served between two `show stat` snapshots: requests
/// answered or failed, 5xx answers and failures, and the highest of their `rtime` (HAProxy's
/// average response time over each server's last 1,024 requests: HAProxy keeps no
/// percentiles; manual, Management Guide, "show stat", the `rtime` field).
fn served(
    names: &[String],
    base: &BTreeMap<String, BTreeMap<String, u64>>,
    now: &BTreeMap<String, BTreeMap<String, u64>>,
) -> Observation {
    let mut obs = Observation {
        latency_kind: "average response time (HAProxy keeps no percentiles)",
        ..Default::default()
    };
    let mut rtime = 0u64;
    for n in names {
        let (a, b) = (base.get(n), now.get(n));
        let d = |k: &str| {
            b.and_then(|r| r.get(k))
                .copied()
                .unwrap_or(0)
                .saturating_sub(a.and_then(|r| r.get(k)).copied().unwrap_or(0))
        };
        let answered: u64 = [
            "hrsp_1xx",
            "hrsp_2xx",
            "hrsp_3xx",
            "hrsp_4xx",
            "hrsp_5xx",
            "hrsp_other",
        ]
        .iter()
        .map(|k| d(k))
        .sum();
        let failed = d("eresp") + d("econ");
        obs.requests += answered + failed;
        obs.errors += d("hrsp_5xx") + failed;
        rtime = rtime.max(b.and_then(|r| r.get("rtime")).copied().unwrap_or(0));
    }
    obs.latency = (obs.requests > 0).then(|| Duration::from_millis(rtime));
    obs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_static_algorithms_and_the_hash_type_that_applies() {
        assert_eq!(algorithm("roundrobin", None), Algorithm::Dynamic);
        assert_eq!(algorithm("leastconn", None), Algorithm::Dynamic);
        assert_eq!(algorithm("random", None), Algorithm::Dynamic);
        assert_eq!(
            algorithm("static-rr", Some("consistent")),
            Algorithm::Static("static-rr".into())
        );
        assert_eq!(algorithm("first", None), Algorithm::First);
        for a in ["source", "uri", "url_param", "hdr", "rdp-cookie", "hash"] {
            assert_eq!(algorithm(a, None), Algorithm::Static(a.into()), "{a}");
            assert_eq!(
                algorithm(a, Some("map-based")),
                Algorithm::Static(a.into()),
                "{a}"
            );
            assert_eq!(
                algorithm(a, Some("consistent sdbm avalanche")),
                Algorithm::Dynamic,
                "{a}"
            );
        }
        let cfg = "defaults\n    hash-type consistent\nbackend a\n    balance source\nbackend \
                   b\n    balance source\n    hash-type map-based\ndefaults named\n    mode \
                   http\nbackend c\n    balance uri\nbackend d from unnamed # comment\n    balance \
                   uri\n";
        assert_eq!(
            hash_type(cfg, "a").as_deref(),
            Some("consistent"),
            "from the defaults before it"
        );
        assert_eq!(hash_type(cfg, "b").as_deref(), Some("map-based"), "its own");
        assert_eq!(
            hash_type(cfg, "c"),
            None,
            "a later defaults section starts over"
        );
        assert_eq!(hash_type(cfg, "nope"), None);
        let csv =
            "# pxname,svname,qcur,algo,x\nfe,FRONTEND,0,,\napi,p1,0,,\napi,BACKEND,0,source,\n";
        assert_eq!(stat_algo(csv, "api").as_deref(), Some("source"));
    }

    #[test]
    fn preflight_refuses_weights_a_static_backend_would_refuse() {
        let srv = |name: &str, port: u16, iweight: u32| ServerState {
            name: name.into(),
            addr: format!("127.0.0.1:{port}"),
            weight: iweight,
            iweight,
            op_state: 2,
            ..Default::default()
        };
        let servers = [srv("p1", 1, 100), srv("p2", 2, 0)];
        let shift = |step: &str, a: u32, b: u32| PlannedShift {
            step: step.into(),
            upstream: "api".into(),
            servers: vec![
                Server {
                    addr: "127.0.0.1:1".into(),
                    weight: a,
                },
                Server {
                    addr: "127.0.0.1:2".into(),
                    weight: b,
                },
            ],
        };
        let canary = [
            shift("shift/api/50", 50, 50),
            shift("shift/api/100", 0, 100),
        ];
        let canary: Vec<&PlannedShift> = canary.iter().collect();
        let e = check_shifts("api", &servers, &canary, &algorithm("source", None), true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("balances with `source`, a static algorithm")
                && e.contains(
                    "step shift/api/50 needs p1 at 50 (configured 100), p2 at 50 (configured 0)"
                )
                && e.contains("hint:"),
            "{e}"
        );
        assert!(
            check_shifts(
                "api",
                &servers,
                &canary,
                &algorithm("roundrobin", None),
                true
            )
            .is_ok()
        );
        assert!(
            check_shifts(
                "api",
                &servers,
                &canary,
                &algorithm("source", Some("consistent")),
                true
            )
            .is_ok()
        );
        // Blue-green: fine once the new server is declared at its full weight.
        let bg = [shift("shift/api/100", 0, 100)];
        let bg: Vec<&PlannedShift> = bg.iter().collect();
        assert!(
            check_shifts("api", &servers, &bg, &algorithm("static-rr", None), true)
                .unwrap_err()
                .to_string()
                .contains("p2 at 100 (configured 0)")
        );
        assert!(
            check_shifts(
                "api",
                &[srv("p1", 1, 100), srv("p2", 2, 100)],
                &bg,
                &algorithm("static-rr", None),
                true
            )
            .is_ok()
        );
        let e = check_shifts("api", &servers, &canary, &algorithm("first", None), true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`balance first`, which ignores weights") && e.contains("step shift/api/50"),
            "{e}"
        );
    }

    #[test]
    fn parses_servers_state() {
        let out = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state \
                   srv_uweight srv_iweight srv_time_since_last_change srv_check_status \
                   srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id \
                   srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port \
                   srv_check_addr srv_agent_addr srv_agent_port\n3 api 1 p3333 127.0.0.1 2 0 90 100 \
                   10 1 0 3 0 0 0 0 - 3333 - 0 0 - - 0\n3 api 2 p3334 127.0.0.1 2 0 10 0 10 1 0 3 0 \
                   0 0 0 - 3334 - 0 0 - - 0\n";
        let s = parse_servers_state(out).unwrap();
        let got: Vec<(&str, &str, u32, u32, u8)> = s
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.addr.as_str(),
                    s.weight,
                    s.iweight,
                    s.op_state,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("p3333", "127.0.0.1:3333", 90, 100, 2),
                ("p3334", "127.0.0.1:3334", 10, 0, 2)
            ]
        );
        assert!(s.iter().all(ServerState::takes_traffic));
        // HAProxy 2.6 for `weight 0 check disabled` (MAINT, checks paused), then after `state ready`
        // before its first check, then with the check failing, then in DRAIN.
        let row = |op: u8, adm: u8, cstate: u16, cres: u8| ServerState {
            op_state: op,
            admin_state: adm,
            check_state: cstate,
            check_result: cres,
            ..Default::default()
        };
        assert_eq!(
            (
                row(0, 5, 14, 1).held(),
                row(0, 5, 14, 1).admin_word(),
                row(0, 5, 14, 1).takes_traffic()
            ),
            (true, "maint", false)
        );
        assert!(
            !row(2, 4, 6, 0).takes_traffic() && !row(2, 4, 6, 0).held(),
            "UP before its first check is not confirmed"
        );
        assert!(
            row(2, 4, 6, 3).takes_traffic(),
            "`disabled` in the config alone (CMAINT) does not hold it once ready"
        );
        assert!(!row(0, 4, 6, 2).takes_traffic());
        assert_eq!(
            (row(2, 8, 0, 1).held(), row(2, 8, 0, 1).admin_word()),
            (true, "drain")
        );
        assert!(
            row(2, 2, 0, 1).held_elsewhere().is_some()
                && row(2, 0x20, 0, 1).held_elsewhere().is_some()
                && row(0, 5, 14, 1).held_elsewhere().is_none()
        );
        assert!(parse_servers_state("Can't find backend.\n").is_err());
    }

    #[test]
    fn rewrites_only_the_backend_weights() {
        let none = BTreeSet::new();
        let cfg = "global\n  stats socket /run/h.sock level admin\nbackend web\n  server p3333 \
                   127.0.0.1:3333 weight 5\nbackend api\n  balance roundrobin\n  server p3333 \
                   127.0.0.1:3333 weight 100 check\n  server p3334 127.0.0.1:3334\n";
        let w = BTreeMap::from([("p3333".to_string(), 90), ("p3334".to_string(), 10)]);
        let out = rewrite_config(cfg, "api", &w, &none, &none);
        assert_eq!(
            out,
            "global\n  stats socket /run/h.sock level admin\nbackend web\n  server p3333 \
             127.0.0.1:3333 weight 5\nbackend api\n  balance roundrobin\n  server p3333 \
             127.0.0.1:3333 weight 90 check\n  server p3334 127.0.0.1:3334 weight 10\n"
        );
        // Whitespace and comments stay; the weight goes before a comment.
        let cfg = "backend api\n\tserver\tp3333  127.0.0.1:3333\tweight  100   check # old\n    \
                   server p3334 127.0.0.1:3334 check  # new one\n";
        let out = rewrite_config(cfg, "api", &w, &none, &none);
        assert_eq!(
            out,
            "backend api\n\tserver\tp3333  127.0.0.1:3333\tweight  90   check # old\n    server \
             p3334 127.0.0.1:3334 check weight 10  # new one\n"
        );
        // A server named `weight` keeps its address; the last `weight` keyword is the one set.
        let odd = BTreeMap::from([("weight".to_string(), 7)]);
        assert_eq!(
            rewrite_config(
                "backend api\n  server weight 10.0.0.1:80 weight 1 check weight 2\n",
                "api",
                &odd,
                &none,
                &none
            ),
            "backend api\n  server weight 10.0.0.1:80 weight 1 check weight 7\n"
        );
        assert_eq!(
            rewrite_config(
                "backend api\n  server weight 10.0.0.1:80 check\n",
                "api",
                &odd,
                &none,
                &none
            ),
            "backend api\n  server weight 10.0.0.1:80 check weight 7\n"
        );
        // `disabled` as a cookie's value is no keyword; a default-server's `disabled` takes
        // `enabled` on the server that gets traffic.
        let cfg = "backend api\n    default-server check disabled\n    server p1 127.0.0.1:1 weight \
                   100 cookie disabled\n    server p2 127.0.0.1:2 cookie disabled weight 0 check \
                   disabled # slot\n";
        let cookies = rewrite_config(
            cfg,
            "api",
            &BTreeMap::from([("p1".to_string(), 0), ("p2".to_string(), 100)]),
            &BTreeSet::from(["p2".to_string()]),
            &BTreeSet::new(),
        );
        assert_eq!(
            cookies,
            "backend api\n    default-server check disabled\n    server p1 127.0.0.1:1 weight 0 \
             cookie disabled\n    server p2 127.0.0.1:2 cookie disabled weight 100 check enabled # \
             slot\n"
        );
        // A server that gets traffic loses `disabled` (a restart keeps it ready); nothing else moves.
        let cfg = "backend api\n    server p1 127.0.0.1:1 weight 100 check\n    server p2 \
                   127.0.0.1:2 weight 0 check inter 500ms disabled # slot\n";
        let on = BTreeSet::from(["p2".to_string()]);
        let w2 = BTreeMap::from([("p1".to_string(), 50), ("p2".to_string(), 50)]);
        assert_eq!(
            rewrite_config(cfg, "api", &w2, &on, &none),
            "backend api\n    server p1 127.0.0.1:1 weight 50 check\n    server p2 127.0.0.1:2 \
             weight 50 check inter 500ms # slot\n"
        );
        // Static algorithm, blue-green: the old server keeps its weight in the file and is parked
        // `disabled` (once only); the new one loses `disabled`.
        let cfg = "backend api\n    balance source\n    server p1 127.0.0.1:1 weight 100 check # \
                   v1\n    server p2 127.0.0.1:2 weight 100 check disabled\n";
        let bg = BTreeMap::from([("p1".to_string(), 0), ("p2".to_string(), 100)]);
        let parked = rewrite_config(
            cfg,
            "api",
            &bg,
            &BTreeSet::from(["p2".to_string()]),
            &BTreeSet::from(["p1".to_string()]),
        );
        assert_eq!(
            parked,
            "backend api\n    balance source\n    server p1 127.0.0.1:1 weight 100 check disabled # \
             v1\n    server p2 127.0.0.1:2 weight 100 check\n"
        );
        assert_eq!(
            rewrite_config(
                &parked,
                "api",
                &bg,
                &BTreeSet::from(["p2".to_string()]),
                &BTreeSet::from(["p1".to_string()])
            ),
            parked
        );
        let back = BTreeMap::from([("p3333".to_string(), 100)]);
        assert!(
            rewrite_config(&out, "api", &back, &none, &none).starts_with(
                "backend api\n\tserver\tp3333  127.0.0.1:3333\tweight  100   check # old\n"
            )
        );
    }
}
