//! The release spec: [`ReleaseSpec`], read from `plans/*.toml`.
//!
//! A spec names what changes (services, their current and target versions), how traffic moves
//! (the strategy and the router), the databases whose migrations ship with the release, and
//! optional `command` hooks. Parsing is strict: unknown keys, wrong types and values that make no
//! sense (canary weights that do not end at 100, say) are [`Diagnostic`]s naming the file, line,
//! column and key, with a hint. Secrets never live here: a database is reached through the
//! environment variable named by `url_env`, and `secret_env` lists variable *names* only.

use crate::duration::Duration;
use crate::error::Diagnostic;
use crate::source::{LineIndex, Location};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

mod values;

/// A whole release spec, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSpec {
    /// `[release]`: name and policy.
    pub release: Release,
    /// `[[service]]`: the services this release changes.
    #[serde(default)]
    pub service: Vec<Spanned<Service>>,
    /// `[[database]]`: databases whose migrations ship with the release.
    #[serde(default)]
    pub database: Vec<Spanned<Database>>,
    /// `[router]`: the traffic router in front of the services.
    pub router: Option<Spanned<Router>>,
    /// `[[command]]`: hooks run at fixed stages of the release.
    #[serde(default)]
    pub command: Vec<Spanned<Command>>,
}

/// `[release]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
}

/// Failure policy of a release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Undo what was done, in reverse, up to the last pivot.
    #[default]
    Rollback,
    /// Stop and wait for an operator (`cutover resume` or `cutover rollback`).
    Pause,
}

/// `[[service]]`: one service and the versions it moves between.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    pub strategy: Spanned<Strategy>,
}

fn one() -> u32 {
    1
}

/// `[service.health]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
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
/// [`ReleaseSpec::validate`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    /// Which strategy.
    pub kind: StrategyKind,
    /// rolling: replicas replaced per batch.
    #[serde(default)]
    pub batch_size: Option<Spanned<u32>>,
    /// rolling: wait between batches.
    #[serde(default)]
    pub delay: Option<Spanned<Duration>>,
    /// canary: traffic weights (percent to the new version), increasing, ending at 100.
    #[serde(default)]
    pub steps: Option<Spanned<Vec<u32>>>,
    /// canary: pause after each weight below 100.
    #[serde(default)]
    pub pause: Option<Spanned<Duration>>,
    /// canary: analysis gate run after each pause.
    #[serde(default)]
    pub analysis: Option<Spanned<Analysis>>,
}

/// Thresholds of a canary analysis gate, computed from the router's own data.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
}

fn default_window() -> Duration {
    Duration::from_secs(30)
}
fn default_min_requests() -> u32 {
    20
}

/// `[[database]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouterKind {
    /// nginx: upstream file written atomically, `nginx -t`, reload.
    Nginx,
    /// HAProxy: weights through the runtime API, no reload.
    Haproxy,
}

/// `[router]`. Which keys apply depends on `kind`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Router {
    /// Which router.
    pub kind: RouterKind,
    /// nginx: file holding the `upstream` blocks cutover owns.
    #[serde(default)]
    pub upstream_file: Option<Spanned<String>>,
    /// nginx: pid file of the master process.
    #[serde(default)]
    pub pid_file: Option<Spanned<String>>,
    /// nginx: argv that validates the config (default `["nginx", "-t"]`).
    #[serde(default)]
    pub test: Option<Spanned<Vec<String>>>,
    /// nginx: argv that reloads (default: SIGHUP to the master process named by `pid_file`).
    #[serde(default)]
    pub reload: Option<Spanned<Vec<String>>>,
    /// nginx: JSON access log read by analysis gates.
    #[serde(default)]
    pub access_log: Option<Spanned<String>>,
    /// HAProxy: admin socket path.
    #[serde(default)]
    pub admin_socket: Option<Spanned<String>>,
    /// HAProxy: config file rewritten so a restart keeps the state.
    #[serde(default)]
    pub config_file: Option<Spanned<String>>,
}

/// When a `command` hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// Name, unique among commands; the step id is `command/<name>`.
    pub name: String,
    /// When it runs.
    pub stage: Stage,
    /// Program and arguments.
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

/// Keys that people try and that cutover refuses on purpose, with the reason.
fn hint_for_unknown_key(message: &str) -> Option<String> {
    let key = message.split('`').nth(1)?;
    let hint = match key {
        "url" | "password" | "dsn" | "connection" | "connection_string" => {
            "cutover never reads a connection string from the spec: export it in an environment variable and name that variable with `url_env = \"DATABASE_URL\"`".to_string()
        }
        "cmd" | "shell" | "script" | "run" => {
            "commands are argv lists run without a shell: `argv = [\"./smoke.sh\", \"--fast\"]`".to_string()
        }
        "weights" => "canary weights are written `steps = [10, 25, 50, 100]`".to_string(),
        "strategy" => "`strategy` belongs to a service: `[service.strategy]` under `[[service]]`".to_string(),
        _ => {
            let expected = message.split("expected").nth(1)?.trim().trim_start_matches("one of").trim();
            format!("check the spelling; the keys allowed here are {}", expected.trim_end_matches('.'))
        }
    };
    Some(hint)
}

impl ReleaseSpec {
    /// Parses and validates a spec. `file` is the name used in messages.
    pub fn parse(file: &str, text: &str) -> Result<Self, Vec<Diagnostic>> {
        let text = crate::source::strip_bom(text);
        let index = LineIndex::new(text);
        let at = |span: Range<usize>| {
            let (line, col) = index.line_col(text, span.start);
            Location::at(file, line, col)
        };
        let spec: ReleaseSpec = toml::from_str(text).map_err(|e| {
            let location = e.span().map_or_else(|| Location::file(file), &at);
            let message = e.message().trim().to_string();
            let hint = if message.starts_with("unknown field") {
                hint_for_unknown_key(&message)
            } else if message.starts_with("unknown variant") {
                message
                    .split("expected")
                    .nth(1)
                    .map(|rest| format!("use {}", rest.trim().trim_end_matches('.')))
            } else if message.starts_with("invalid type") {
                let expected = message.split("expected").nth(1).unwrap_or("another type").trim();
                let expected = match expected {
                    "u16" => "a whole number from 0 to 65535",
                    "u32" | "u64" => "a whole number",
                    "a sequence" => "a list, e.g. [\"a\", \"b\"]",
                    other => other,
                };
                Some(format!("this key takes {expected}: numbers and true/false are written without quotes, durations as strings like \"30s\""))
            } else if message.contains("duration `") {
                Some("durations are a whole number and one unit (ms, s, m or h), at most 596h, e.g. \"30s\"".to_string())
            } else if message.starts_with("missing field") {
                Some("see plans/README.md for every key of a release spec".to_string())
            } else {
                Some("the spec must be valid TOML; see plans/README.md".to_string())
            };
            vec![Diagnostic { location, message: format!("invalid release spec: {message}"), hint, doc: None }]
        })?;
        let mut errors = spec.validate(text, &at);
        errors.sort_by_key(|d| (d.location.line, d.location.column));
        if errors.is_empty() {
            Ok(spec)
        } else {
            Err(errors)
        }
    }

    /// Checks what the TOML types cannot: names, cross references, weights, per-kind keys.
    fn validate(&self, text: &str, at: &dyn Fn(Range<usize>) -> Location) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let mut err = |span: Range<usize>, message: String, hint: &str| {
            out.push(Diagnostic {
                location: at(span),
                message,
                hint: Some(hint.to_string()),
                doc: None,
            });
        };
        if self.service.is_empty() && self.database.is_empty() && self.command.is_empty() {
            err(
                0..0,
                "the spec describes nothing to do".into(),
                "add a `[[service]]` (name, image, current, target, port, [service.strategy]), a `[[database]]` with migrations, or `[[command]]` hooks",
            );
        }
        check_names(
            self.service
                .iter()
                .map(|s| (s.get_ref().name.as_str(), s.span())),
            "service",
            &mut err,
        );
        check_names(
            self.database
                .iter()
                .map(|s| (s.get_ref().name.as_str(), s.span())),
            "database",
            &mut err,
        );
        check_names(
            self.command
                .iter()
                .map(|s| (s.get_ref().name.as_str(), s.span())),
            "command",
            &mut err,
        );

        let db_names: Vec<&str> = self
            .database
            .iter()
            .map(|d| d.get_ref().name.as_str())
            .collect();
        let mut recreate = 0;
        let mut online = 0;
        for s in &self.service {
            let svc = s.get_ref();
            if svc.current == svc.target {
                err(
                    s.span(),
                    format!(
                        "service `{}`: `current` and `target` are both `{}`",
                        svc.name, svc.current
                    ),
                    "a release moves a service to a new version; set `target` to the tag you release",
                );
            }
            if svc.replicas == 0 {
                err(
                    s.span(),
                    format!("service `{}`: `replicas` is 0", svc.name),
                    "use at least 1 replica",
                );
            }
            if let Some(dbs) = &svc.databases {
                for d in dbs {
                    if !db_names.contains(&d.as_str()) {
                        err(
                            s.span(),
                            format!(
                                "service `{}` uses database `{d}`, which no `[[database]]` defines",
                                svc.name
                            ),
                            "add a `[[database]]` with that name or fix the name in `databases`",
                        );
                    }
                }
            }
            for name in &svc.secret_env {
                if svc.env.contains_key(name) {
                    err(
                        s.span(),
                        format!(
                            "service `{}`: `{name}` is in both `env` and `secret_env`",
                            svc.name
                        ),
                        "keep secret values out of the spec: remove it from `env`; cutover passes it through from its own environment",
                    );
                }
            }
            let st = svc.strategy.get_ref();
            let kind = st.kind;
            match kind {
                StrategyKind::Recreate => recreate += 1,
                _ => online += 1,
            }
            let misplaced =
                |key: &str, span: Range<usize>, err: &mut dyn FnMut(Range<usize>, String, &str)| {
                    err(
                        span,
                        format!(
                            "service `{}`: `{key}` does not apply to a {} strategy",
                            svc.name,
                            kind.as_str()
                        ),
                        match key {
                            "batch_size" | "delay" => {
                                "`batch_size` and `delay` belong to `kind = \"rolling\"`"
                            }
                            _ => "`steps`, `pause` and `analysis` belong to `kind = \"canary\"`",
                        },
                    );
                };
            if kind != StrategyKind::Rolling {
                if let Some(v) = &st.batch_size {
                    misplaced("batch_size", v.span(), &mut err);
                }
                if let Some(v) = &st.delay {
                    misplaced("delay", v.span(), &mut err);
                }
            }
            if kind != StrategyKind::Canary {
                if let Some(v) = &st.steps {
                    misplaced("steps", v.span(), &mut err);
                }
                if let Some(v) = &st.pause {
                    misplaced("pause", v.span(), &mut err);
                }
                if let Some(v) = &st.analysis {
                    misplaced("analysis", v.span(), &mut err);
                }
            }
            match kind {
                StrategyKind::Rolling => {
                    if let Some(b) = &st.batch_size
                        && (*b.get_ref() == 0 || *b.get_ref() > svc.replicas)
                    {
                        err(
                            b.span(),
                            format!(
                                "service `{}`: `batch_size = {}` must be between 1 and `replicas` ({})",
                                svc.name,
                                b.get_ref(),
                                svc.replicas
                            ),
                            "a batch replaces that many replicas at once; raise `replicas` or lower `batch_size`",
                        );
                    }
                }
                StrategyKind::Canary => match &st.steps {
                    None => err(
                        svc.strategy.span(),
                        format!("service `{}`: a canary needs `steps`", svc.name),
                        "add the traffic weights in percent, e.g. `steps = [10, 25, 50, 100]`",
                    ),
                    Some(steps) => {
                        let w = steps.get_ref();
                        if w.is_empty() || w.last() != Some(&100) {
                            err(
                                steps.span(),
                                format!(
                                    "service `{}`: canary `steps` {w:?} must end at 100",
                                    svc.name
                                ),
                                "the last step sends all traffic to the new version, e.g. `steps = [10, 25, 50, 100]`",
                            );
                        }
                        if w.iter().any(|&x| x == 0 || x > 100) {
                            err(
                                steps.span(),
                                format!(
                                    "service `{}`: canary `steps` {w:?} must each be between 1 and 100",
                                    svc.name
                                ),
                                "weights are percent of traffic sent to the new version",
                            );
                        }
                        if w.windows(2).any(|p| p[0] >= p[1]) {
                            err(
                                steps.span(),
                                format!(
                                    "service `{}`: canary `steps` {w:?} must increase strictly",
                                    svc.name
                                ),
                                "each step sends more traffic to the new version than the one before, e.g. `steps = [10, 25, 50, 100]`",
                            );
                        }
                    }
                },
                _ => {}
            }
            if let Some(a) = &st.analysis {
                let an = a.get_ref();
                if !(0.0..=1.0).contains(&an.max_error_rate) {
                    err(
                        a.span(),
                        format!(
                            "service `{}`: `max_error_rate = {}` is not between 0.0 and 1.0",
                            svc.name, an.max_error_rate
                        ),
                        "write the rate as a fraction: 0.01 means 1% of requests",
                    );
                }
                if an.window.is_zero() {
                    err(
                        a.span(),
                        format!("service `{}`: analysis `window` is 0s", svc.name),
                        "give the gate a window of router data to look at, e.g. `window = \"30s\"`",
                    );
                }
            }
            if kind != StrategyKind::Recreate && self.router.is_none() {
                err(
                    svc.strategy.span(),
                    format!(
                        "service `{}`: a {} strategy needs a `[router]`",
                        svc.name,
                        kind.as_str()
                    ),
                    "add `[router]` with `kind = \"nginx\"` (and `upstream_file`) or `kind = \"haproxy\"` (and `admin_socket`)",
                );
            }
            if kind != StrategyKind::Recreate && svc.candidate_port() == svc.port {
                err(
                    s.span(),
                    format!(
                        "service `{}`: `candidate_port` equals `port` ({})",
                        svc.name, svc.port
                    ),
                    "while both versions run they need different ports, e.g. 3333 and 3334",
                );
            } else if kind != StrategyKind::Recreate
                && svc.new_ports().any(|p| svc.old_ports().any(|q| q == p))
            {
                err(s.span(), format!("service `{}`: the {} replica(s) use ports {}..={} and {}..={}, which overlap", svc.name, svc.replicas, svc.port, svc.port as u32 + svc.replicas - 1, svc.candidate_port(), svc.candidate_port() as u32 + svc.replicas - 1), format!("replica i of the current version listens on `port + i` and of the new one on `candidate_port + i`; set `candidate_port = {}` or higher", svc.port as u32 + svc.replicas).as_str());
            }
            if u32::from(svc.port).max(u32::from(svc.candidate_port())) + svc.replicas > 65536 {
                err(
                    s.span(),
                    format!(
                        "service `{}`: {} replicas from port {} run past port 65535",
                        svc.name,
                        svc.replicas,
                        svc.port.max(svc.candidate_port())
                    ),
                    "use lower ports or fewer replicas",
                );
            }
        }
        if recreate > 0 && online > 0 {
            err(
                0..0,
                "the spec mixes `recreate` with online strategies".into(),
                "a recreate release stops every service it changes while migrations run; release the other services in a separate spec",
            );
        }
        if let Some(r) = &self.router {
            let router = r.get_ref();
            let nginx_only = [
                (
                    "upstream_file",
                    r.get_ref().upstream_file.as_ref().map(|v| v.span()),
                ),
                ("pid_file", router.pid_file.as_ref().map(|v| v.span())),
                ("test", router.test.as_ref().map(|v| v.span())),
                ("reload", router.reload.as_ref().map(|v| v.span())),
                ("access_log", router.access_log.as_ref().map(|v| v.span())),
            ];
            let haproxy_only = [
                (
                    "admin_socket",
                    router.admin_socket.as_ref().map(|v| v.span()),
                ),
                ("config_file", router.config_file.as_ref().map(|v| v.span())),
            ];
            let (wrong, needed, hint): (&[KeySpan], &str, &str) = match router.kind {
                RouterKind::Nginx => (
                    &haproxy_only,
                    "upstream_file",
                    "nginx needs the file cutover owns: `upstream_file = \"/etc/nginx/conf.d/cutover-upstreams.conf\"`",
                ),
                RouterKind::Haproxy => (
                    &nginx_only,
                    "admin_socket",
                    "HAProxy is driven through its runtime API: `admin_socket = \"/run/haproxy/admin.sock\"`",
                ),
            };
            for (key, span) in wrong {
                if let Some(span) = span {
                    err(
                        span.clone(),
                        format!(
                            "router: `{key}` does not apply to `kind = \"{}\"`",
                            if router.kind == RouterKind::Nginx {
                                "nginx"
                            } else {
                                "haproxy"
                            }
                        ),
                        "nginx takes upstream_file, pid_file, test, reload, access_log; haproxy takes admin_socket, config_file",
                    );
                }
            }
            let has_needed = match router.kind {
                RouterKind::Nginx => router.upstream_file.is_some(),
                RouterKind::Haproxy => router.admin_socket.is_some(),
            };
            if !has_needed {
                err(r.span(), format!("router: `{needed}` is required"), hint);
            }
            for argv in [&router.test, &router.reload].into_iter().flatten() {
                if argv.get_ref().is_empty() {
                    err(
                        argv.span(),
                        "router: an argv list is empty".into(),
                        "write the program and its arguments, e.g. `[\"nginx\", \"-s\", \"reload\"]`",
                    );
                }
            }
        }
        for c in &self.command {
            let cmd = c.get_ref();
            if cmd.argv.get_ref().is_empty() || cmd.argv.get_ref()[0].trim().is_empty() {
                err(
                    cmd.argv.span(),
                    format!("command `{}`: `argv` is empty", cmd.name),
                    "write the program and its arguments, e.g. `argv = [\"./scripts/smoke.sh\", \"http://127.0.0.1:3334\"]`",
                );
            }
            if cmd.argv.get_ref().len() == 1 && cmd.argv.get_ref()[0].contains(' ') {
                err(
                    cmd.argv.span(),
                    format!(
                        "command `{}`: `argv` is one string with spaces: {:?}",
                        cmd.name,
                        cmd.argv.get_ref()[0]
                    ),
                    "commands run without a shell; split the program and its arguments into list items",
                );
            }
            if cmd.read_only && cmd.undo.is_some() {
                err(
                    c.span(),
                    format!("command `{}` is `read_only` and has an `undo`", cmd.name),
                    "a read-only command changes nothing, so it has nothing to undo; drop one of the two",
                );
            }
            for (key, argv) in [("undo", &cmd.undo), ("probe", &cmd.probe)] {
                if argv
                    .as_ref()
                    .is_some_and(|a| a.is_empty() || a[0].trim().is_empty())
                {
                    err(
                        c.span(),
                        format!("command `{}`: `{key}` is empty", cmd.name),
                        "write the program and its arguments, or leave the key out",
                    );
                }
            }
            if cmd.timeout.is_zero() {
                err(
                    c.span(),
                    format!("command `{}`: `timeout` is 0s", cmd.name),
                    "give it time to finish, e.g. `timeout = \"30s\"`",
                );
            }
        }
        for d in &self.database {
            let db = d.get_ref();
            if db.url_env.contains("://") || db.url_env.contains('@') {
                err(
                    d.span(),
                    format!(
                        "database `{}`: `url_env` looks like a connection string, not a variable name",
                        db.name
                    ),
                    "put the URL in an environment variable and write its name here, e.g. `url_env = \"DATABASE_URL\"`; cutover never prints it",
                );
            }
            if db.backfill.batch_size == 0 {
                err(
                    d.span(),
                    format!("database `{}`: backfill `batch_size` is 0", db.name),
                    "use a positive batch size, e.g. 1000",
                );
            }
        }
        values::check(self, text, &mut err);
        out
    }
}

fn check_names<'a>(
    items: impl Iterator<Item = (&'a str, Range<usize>)>,
    what: &str,
    err: &mut dyn FnMut(Range<usize>, String, &str),
) {
    let mut seen: Vec<&str> = Vec::new();
    for (name, span) in items {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            err(
                span.clone(),
                format!("{what} name `{name}` is not usable in step ids"),
                "use letters, digits, `-` and `_` only, e.g. `api` or `billing-db`",
            );
        }
        if seen.contains(&name) {
            err(
                span,
                format!("{what} name `{name}` appears twice"),
                "names identify steps, so each must be unique",
            );
        }
        seen.push(name);
    }
}
