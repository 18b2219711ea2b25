//! The release spec: [`ReleaseSpec`], read from `plans/*.toml`.
//!
//! A spec names what changes (services, their current and target versions), how traffic moves
//! (the strategy and the router), the databases whose migrations ship with the release, and
//! optional `command` hooks. Parsing is strict: unknown keys, wrong types and values that make no
//! sense (canary weights that do not end at 100, say) are
//! [`Diagnostic`](crate::error::Diagnostic)s naming the file, line, column and key, with a hint,
//! all of a file's in one run. Secrets never live here: a database is reached through the
//! environment variable named by `url_env`, and `secret_env` lists variable *names* only.

use crate::duration::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

mod keys;
mod parse;
mod schema;
mod validate;
mod values;

pub use schema::json_schema;

/// A whole release spec, as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSpec {
    /// `[release]`: name and policy.
    pub release: Release,
    /// `[[service]]`: the services this release changes.
    #[serde(default)]
    #[schemars(with = "Vec<Service>")]
    pub service: Vec<Spanned<Service>>,
    /// `[[database]]`: databases whose migrations ship with the release.
    #[serde(default)]
    #[schemars(with = "Vec<Database>")]
    pub database: Vec<Spanned<Database>>,
    /// `[router]`: the traffic router in front of the services.
    #[schemars(with = "Option<Router>")]
    pub router: Option<Spanned<Router>>,
    /// `[[command]]`: hooks run at fixed stages of the release.
    #[serde(default)]
    #[schemars(with = "Vec<Command>")]
    pub command: Vec<Spanned<Command>>,
}

/// `[release]`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Short name, used in run ids and reports.
    pub name: String,
    /// Free text for reviewers.
    #[serde(default)]
    pub description: Option<String>,
    /// What the executor does when a step fails: `rollback` (default) or `pause`.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Stop before the point of no return (the first contract migration or other step that
    /// cannot be undone) until `cutover promote RUN`: both schema versions stay usable for as
    /// long as the operator needs (pgroll's start/complete). `apply --hold` asks for it per run.
    #[serde(default)]
    pub hold: bool,
}

/// A canary's pause after each weight below 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryPause {
    /// Hold for this long, then go on.
    For(Duration),
    /// Wait for a person: `cutover promote RUN` (`"manual"` in the spec).
    Manual,
}

impl Serialize for CanaryPause {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CanaryPause::For(d) => d.serialize(s),
            CanaryPause::Manual => s.serialize_str("manual"),
        }
    }
}

impl<'de> Deserialize<'de> for CanaryPause {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = crate::duration::text(d, "a duration in quotes, e.g. \"30s\", or \"manual\"")?;
        if s.trim() == "manual" {
            return Ok(CanaryPause::Manual);
        }
        Duration::parse(&s).map(CanaryPause::For).map_err(|e| {
            serde::de::Error::custom(format!(
                "{e} (or \"manual\", to wait for `cutover promote`)"
            ))
        })
    }
}

/// Failure policy of a release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Undo what was done, in reverse, up to the last pivot.
    #[default]
    Rollback,
    /// Stop and wait for an operator (`cutover resume` or `cutover rollback`).
    Pause,
}

/// `[[service]]`: one service and the versions it moves between.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Service name, unique in the spec; used in step ids.
    pub name: String,
    /// Image repository, e.g. `xtms-saas-api`.
    pub image: String,
    /// Tag running now (the stable version).
    pub current: String,
    /// Tag to release.
    pub target: String,
    /// Port the current version listens on (loopback).
    pub port: u16,
    /// Port the new version listens on while both run; defaults to `port + 1`.
    #[serde(default)]
    pub candidate_port: Option<u16>,
    /// Replica count (rolling releases replace them in batches).
    #[serde(default = "one")]
    pub replicas: u32,
    /// Plain environment for the containers. Values here are not secret; use `secret_env`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of environment variables passed through from cutover's own environment. Their
    /// values are never written to the plan or the log.
    #[serde(default)]
    pub secret_env: Vec<String>,
    /// Databases (by name) this service uses; defaults to all of the spec's databases.
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    /// Upstream (nginx) or backend (HAProxy) name in the router; defaults to the service name.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Health check of each new container.
    #[serde(default)]
    pub health: Health,
    /// How traffic moves to the new version.
    #[schemars(with = "Strategy")]
    pub strategy: Spanned<Strategy>,
}

fn one() -> u32 {
    1
}

/// `[service.health]`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// HTTP path polled on the container's port.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Poll interval.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Give up after this long.
    #[serde(default = "default_health_timeout")]
    pub timeout: Duration,
    /// HTTP status that counts as healthy.
    #[serde(default = "default_status")]
    pub expect_status: u16,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            path: default_health_path(),
            interval: default_interval(),
            timeout: default_health_timeout(),
            expect_status: default_status(),
        }
    }
}

fn default_health_path() -> String {
    "/health".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_health_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_status() -> u16 {
    200
}

/// The four strategies of the seed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Stop the old version, migrate, start the new one: downtime.
    Recreate,
    /// Replace replicas in batches, start-first.
    Rolling,
    /// Start the new version beside the old, switch all traffic at once.
    BlueGreen,
    /// Move traffic in weight steps with pauses and analysis.
    Canary,
}

impl StrategyKind {
    /// The name used in specs and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recreate => "recreate",
            Self::Rolling => "rolling",
            Self::BlueGreen => "blue-green",
            Self::Canary => "canary",
        }
    }
}

/// `[service.strategy]`. Which keys apply depends on `kind`; the rest are rejected by
/// `ReleaseSpec::validate`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    /// Which strategy.
    pub kind: StrategyKind,
    /// rolling: replicas replaced per batch.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub batch_size: Option<Spanned<u32>>,
    /// rolling: wait between batches.
    #[serde(default)]
    #[schemars(with = "Option<Duration>")]
    pub delay: Option<Spanned<Duration>>,
    /// canary: traffic weights (percent to the new version), increasing, ending at 100.
    #[serde(default)]
    #[schemars(with = "Option<Vec<u32>>")]
    pub steps: Option<Spanned<Vec<u32>>>,
    /// canary: pause after each weight below 100: a duration, or `"manual"` to wait for
    /// `cutover promote` (Argo Rollouts' `pause: {}`).
    #[serde(default)]
    #[schemars(with = "Option<CanaryPause>")]
    pub pause: Option<Spanned<CanaryPause>>,
    /// canary: analysis gate run after each pause.
    #[serde(default)]
    #[schemars(with = "Option<Analysis>")]
    pub analysis: Option<Spanned<Analysis>>,
    /// rolling, blue-green, canary: a bake window once all traffic is on the new version, before
    /// the old version is retired and the contract phase runs (the seed's "monitor for 15-30
    /// minutes"): an analysis gate over the new version's requests; failing it rolls back.
    #[serde(default)]
    #[schemars(with = "Option<Analysis>")]
    pub bake: Option<Spanned<Analysis>>,
}

impl Strategy {
    /// The strategy's analysis gates, by key: `analysis` (canary) and `bake`.
    pub fn gates(&self) -> impl Iterator<Item = (&'static str, &Spanned<Analysis>)> {
        [("analysis", &self.analysis), ("bake", &self.bake)]
            .into_iter()
            .filter_map(|(key, a)| a.as_ref().map(|a| (key, a)))
    }
}

/// Thresholds of a canary analysis gate, computed from the router's own data.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    /// Window of router data looked at.
    #[serde(default = "default_window")]
    pub window: Duration,
    /// Highest acceptable share of 5xx responses from the canary, 0.0 to 1.0.
    pub max_error_rate: f64,
    /// Highest acceptable p99 latency of the canary.
    pub max_p99_latency: Duration,
    /// Below this many canary requests the result is inconclusive (the run pauses).
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    /// Relative mode, canary against stable over the same window: the highest acceptable
    /// difference of error rates (canary minus stable), 0.0 to 1.0. A slowdown or an outage that
    /// hurts both versions does not fail the canary through it; a canary clearly worse than
    /// stable does, even under the absolute limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate_increase: Option<f64>,
    /// Relative mode: the highest acceptable ratio of the canary's latency to the stable
    /// version's over the same window (1.5: at most 50% slower), 1.0 or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ratio: Option<f64>,
}

fn default_window() -> Duration {
    Duration::from_secs(30)
}
fn default_min_requests() -> u32 {
    20
}

/// `[[database]]`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// Name used in step ids (`backup/main`).
    pub name: String,
    /// Name of the environment variable holding the connection URL.
    pub url_env: String,
    /// Directory of `V{n}__{name}.sql` files, relative to the spec file.
    pub migrations: String,
    /// Versions up to and including this one are already applied (the current version's schema).
    #[serde(default)]
    pub baseline: Option<u64>,
    /// `lock_timeout` set for every migration statement.
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout: Duration,
    /// `statement_timeout` set for every migration statement.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout: Duration,
    /// Backup policy.
    #[serde(default)]
    pub backup: Backup,
    /// Backfill batching.
    #[serde(default)]
    pub backfill: Backfill,
}

fn default_lock_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_statement_timeout() -> Duration {
    Duration::from_secs(60)
}

/// `[database.backup]`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Take a `pg_dump` before the first schema change.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Directory for dumps, relative to the spec file.
    #[serde(default = "default_backup_dir")]
    pub dir: String,
}

impl Default for Backup {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: default_backup_dir(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_backup_dir() -> String {
    "backups".into()
}

/// `[database.backfill]`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backfill {
    /// Rows per batch (each batch its own transaction).
    #[serde(default = "default_batch")]
    pub batch_size: u32,
    /// Pause between batches.
    #[serde(default)]
    pub pause: Duration,
}

impl Default for Backfill {
    fn default() -> Self {
        Self {
            batch_size: default_batch(),
            pause: Duration::default(),
        }
    }
}

fn default_batch() -> u32 {
    1000
}

/// Router kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RouterKind {
    /// nginx: upstream file written atomically, `nginx -t`, reload.
    Nginx,
    /// HAProxy: weights through the runtime API, no reload.
    Haproxy,
}

/// `[router]`. Which keys apply depends on `kind`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Router {
    /// Which router.
    pub kind: RouterKind,
    /// nginx: file holding the `upstream` blocks cutover owns.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub upstream_file: Option<Spanned<String>>,
    /// nginx: pid file of the master process.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub pid_file: Option<Spanned<String>>,
    /// nginx: argv that validates the config (default `["nginx", "-t"]`).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub test: Option<Spanned<Vec<String>>>,
    /// nginx: argv that reloads (default: SIGHUP to the master process named by `pid_file`).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub reload: Option<Spanned<Vec<String>>>,
    /// nginx: JSON access log read by analysis gates.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub access_log: Option<Spanned<String>>,
    /// HAProxy: admin socket path.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub admin_socket: Option<Spanned<String>>,
    /// HAProxy: config file rewritten so a restart keeps the state.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub config_file: Option<Spanned<String>>,
    /// HAProxy: `host:port` (UDP) where cutover listens, while a gate watches, for the request log
    /// HAProxy sends with `log <this address> local0` and `log-format "cutover %si:%sp %ST %Ta"`:
    /// each request's server, status and time, so gates judge a true p99 over their window
    /// instead of HAProxy's average response time.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub log: Option<Spanned<String>>,
}

/// When a `command` hook runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// After backups, before the first migration.
    PreMigrate,
    /// After expand migrations and backfills, before new containers start.
    PreDeploy,
    /// After the new version is healthy, before traffic moves (smoke tests).
    PostDeploy,
    /// After all traffic is on the new version, before the old one is retired.
    PostShift,
    /// At the very end.
    PostRelease,
}

impl Stage {
    /// The name used in specs and step ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreMigrate => "pre-migrate",
            Self::PreDeploy => "pre-deploy",
            Self::PostDeploy => "post-deploy",
            Self::PostShift => "post-shift",
            Self::PostRelease => "post-release",
        }
    }
}

/// `[[command]]`: a hook. Runs an argv directly (no shell, no interpolation).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// Name, unique among commands; the step id is `command/<name>`.
    pub name: String,
    /// When it runs.
    pub stage: Stage,
    /// Program and arguments.
    #[schemars(with = "Vec<String>")]
    pub argv: Spanned<Vec<String>>,
    /// Killed after this long.
    #[serde(default = "default_command_timeout")]
    pub timeout: Duration,
    /// Plain environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of variables passed through from cutover's environment (values never logged).
    #[serde(default)]
    pub secret_env: Vec<String>,
    /// Safe to run twice (a resume may re-run a command whose end was not recorded).
    #[serde(default)]
    pub idempotent: bool,
    /// Changes nothing, so a rollback has nothing to undo (smoke tests, checks).
    #[serde(default)]
    pub read_only: bool,
    /// argv that undoes the command during a rollback. It must be safe to run twice: a rollback
    /// interrupted right after it ran runs it again.
    #[serde(default)]
    pub undo: Option<Vec<String>>,
    /// argv that tells whether the command's effect is in place (exit 0: yes, 1: no). A resume
    /// runs it for a command that started but whose end was not recorded.
    #[serde(default)]
    pub probe: Option<Vec<String>>,
}

fn default_command_timeout() -> Duration {
    Duration::from_secs(60)
}

impl Service {
    /// Port of the new version while both versions run.
    pub fn candidate_port(&self) -> u16 {
        self.candidate_port.unwrap_or(
            self.port
                .saturating_add(self.replicas.clamp(1, u16::MAX as u32) as u16),
        )
    }

    /// Ports of the current version's replicas: `port`, `port + 1`, ...
    pub fn old_ports(&self) -> impl Iterator<Item = u16> + use<> {
        let (p, n) = (self.port, self.replicas);
        (0..n).map(move |i| p.saturating_add(i as u16))
    }

    /// Ports of the new version's replicas: `candidate_port`, `candidate_port + 1`, ... (a
    /// recreate release starts the new version on the old ports).
    pub fn new_ports(&self) -> impl Iterator<Item = u16> + use<> {
        let (p, n) = (
            if self.strategy.get_ref().kind == StrategyKind::Recreate {
                self.port
            } else {
                self.candidate_port()
            },
            self.replicas,
        );
        (0..n).map(move |i| p.saturating_add(i as u16))
    }

    /// Router upstream/backend name.
    pub fn upstream(&self) -> &str {
        self.upstream.as_deref().unwrap_or(&self.name)
    }
}

/// A key and where it is, if present.
type KeySpan<'a> = (&'a str, Option<Range<usize>>);
