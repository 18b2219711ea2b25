//! The release DAG: [`Plan`], [`Step`] and [`StepKind`].
//!
//! A plan is a petgraph `DiGraph` whose edges mean "must finish before". Steps are added in an
//! order where every dependency already exists, so node order is a topological order and the
//! graph is acyclic by construction; [`Plan::check_invariants`] verifies that and the release
//! rules (backup before schema change, expand before traffic, contract after retirement) and is
//! run by the planner on every plan and by the property tests on generated releases.
//!
//! Each step has a fingerprint over everything that defines it (kind, parameters, generated SQL,
//! migration checksums, dependencies), and the plan hash is built from the fingerprints. Nothing
//! machine-specific (absolute paths, file order, time) enters either, so the same spec and
//! migrations hash the same everywhere, and a resume can name exactly which steps changed.

use crate::analysis::Phase;
use crate::duration::Duration;
use crate::migrations::hex;
use crate::spec::{RouterKind, Stage, StrategyKind};
use fixedbitset::FixedBitSet;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Version of the plan format; part of every hash.
///
/// 2: a step's parameters are tagged with its kind (`kind` follows from `params`; `retire` and
/// `cleanup` steps each have their own variant). Plans of format 1 are not read.
pub const PLAN_FORMAT: u32 = 2;

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Read-only checks before anything changes.
    Preflight,
    /// `pg_dump` of a database.
    Backup,
    /// A migration, in its expand or contract phase.
    Migrate,
    /// Batched copy of data into a new column.
    Backfill,
    /// Start the new version's containers.
    Deploy,
    /// Wait until the new containers are healthy.
    Health,
    /// Change the router's traffic weights.
    Shift,
    /// Wait (canary pause, rolling delay).
    Pause,
    /// Canary analysis gate.
    Analysis,
    /// Stop the old version (kept for rollback).
    Retire,
    /// Remove the old version's containers.
    Cleanup,
    /// A `[[command]]` hook.
    Command,
}

impl StepKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preflight => "preflight",
            Self::Backup => "backup",
            Self::Migrate => "migrate",
            Self::Backfill => "backfill",
            Self::Deploy => "deploy",
            Self::Health => "health",
            Self::Shift => "shift",
            Self::Pause => "pause",
            Self::Analysis => "analysis",
            Self::Retire => "retire",
            Self::Cleanup => "cleanup",
            Self::Command => "command",
        }
    }
}

/// One statement of a migration step, as shown to reviewers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatementRef {
    /// Line in the migration file.
    pub line: u32,
    /// The statement, shortened.
    pub summary: String,
}

/// A step's parameters, tagged with its kind: the kind of a step follows from its parameters, and
/// each driver gets its own variant's struct. In JSON the step carries `"kind": "migrate"` and
/// `"params": {...}` (adjacently tagged, flattened into [`Step`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "params", rename_all = "lowercase")]
pub enum Params {
    /// Read-only checks before anything changes.
    Preflight(PreflightParams),
    /// `pg_dump` of a database.
    Backup(BackupParams),
    /// A migration, in its expand or contract phase.
    Migrate(MigrateParams),
    /// Batched copy of data into a new column.
    Backfill(BackfillParams),
    /// Start the new version's containers.
    Deploy(DeployParams),
    /// Wait until the new containers are healthy.
    Health(HealthParams),
    /// Change the router's traffic weights.
    Shift(ShiftParams),
    /// Wait (canary pause, rolling delay).
    Pause(PauseParams),
    /// Canary analysis gate.
    Analysis(AnalysisParams),
    /// Stop the old version (kept for rollback).
    Retire(VersionParams),
    /// Remove the old version's containers.
    Cleanup(VersionParams),
    /// A `[[command]]` hook.
    Command(CommandParams),
}

/// Parameters of a `preflight` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PreflightParams {
    /// Databases to connect to, with what their migration history must say.
    pub databases: Vec<DatabaseCheck>,
    /// Services whose images and containers are checked.
    pub services: Vec<String>,
    /// Images (`image:tag`) that must exist on the container engine: the current and the
    /// target version of every service.
    pub images: Vec<String>,
    /// Router to validate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterParams>,
    /// Upstreams/backends of the router and the server addresses the release will use in
    /// each (HAProxy: every one must already be declared in the backend).
    pub upstreams: BTreeMap<String, Vec<String>>,
    /// Every planned shift, in plan order, with the servers and weights it sets: preflight
    /// proves the router will accept each one (HAProxy's static algorithms take only some
    /// weights) before anything changes. Empty in plans recorded before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shifts: Vec<PlannedShift>,
    /// Variables named in `secret_env` (services and commands), sorted: each must be set
    /// when the release starts, not only when the deploy or the command that needs it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<String>,
    /// Programs the `command` steps start (argv, undo and probe): each must exist and be
    /// executable when the release starts, not only when its stage comes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<ProgramCheck>,
}

/// Parameters of a `backup` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackupParams {
    /// Database name in the spec.
    pub database: String,
    /// Env var with the URL.
    pub url_env: String,
    /// Dump directory (relative to the spec).
    pub dir: String,
}

/// Parameters of a `migrate` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MigrateParams {
    /// Database name in the spec.
    pub database: String,
    /// Env var with the URL.
    pub url_env: String,
    /// Migration version.
    pub version: u64,
    /// Migration file name.
    pub file: String,
    /// sha256 of the file.
    pub checksum: String,
    /// Runs in one transaction.
    pub transactional: bool,
    /// lock_timeout set for each statement.
    pub lock_timeout: Duration,
    /// statement_timeout set for each statement.
    pub statement_timeout: Duration,
    /// Statements from the file that this step runs.
    pub statements: Vec<StatementRef>,
    /// SQL generated by a rewrite (runs instead of the file's statements).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_sql: Option<String>,
    /// SQL that undoes this step, when one is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo_sql: Option<String>,
    /// What this step executes, in order: the file's statements, or the generated script.
    /// Kept in the plan so a resume or rollback runs exactly what was planned.
    pub sql: Vec<String>,
    /// This step completes the migration, so it writes refinery's history row.
    pub records_history: bool,
    /// refinery's checksum of the file (decimal, as refinery stores it).
    pub refinery_checksum: String,
}

/// Parameters of a `backfill` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackfillParams {
    /// Database name in the spec.
    pub database: String,
    /// Env var with the URL.
    pub url_env: String,
    /// Table.
    pub table: String,
    /// Primary key column walked in batches.
    pub key: String,
    /// Source column.
    pub from_column: String,
    /// Target column.
    pub to_column: String,
    /// What the target column gets when it is not the source column itself: a type change's
    /// conversion (its USING expression, or a cast to the new type), naming the table's columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A condition true for a row still to do, when it is not "the target differs from the
    /// value": a fill's `c IS NULL` (its value may itself be NULL for some rows, which must
    /// fail the step, not pass it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// The batches run with `session_replication_role = replica`, so the table's own triggers
    /// (an `updated_at` stamp, an audit row) do not fire for a copy into a new column, as they do
    /// not for the statement rewritten (manual: Server Configuration, Client Connection Defaults,
    /// `session_replication_role`). Off for a fill, whose column's foreign keys (enforced by
    /// triggers, off in that mode) must check the values it writes.
    #[serde(default)]
    pub replica: bool,
    /// Other columns of the table the same batches fill, in one pass over its rows: a migration
    /// that renames or retypes several columns of one table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<ColumnCopy>,
    /// Built once every row is copied, before the step succeeds: the old columns' plain indexes
    /// on the new columns, each a `CREATE INDEX CONCURRENTLY` (an INVALID index a failed or
    /// interrupted build leaves is dropped before the next try).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<String>,
    /// lock_timeout of the index builds (the database's); set when there are some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_timeout: Option<Duration>,
    /// Rows per batch.
    pub batch_size: u32,
    /// Pause between batches.
    pub pause: Duration,
    /// One batch (`$1` < key <= `$2`).
    pub batch_sql: String,
}

/// One more column a backfill fills ([`BackfillParams::more`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ColumnCopy {
    /// Source column.
    pub from_column: String,
    /// Target column.
    pub to_column: String,
    /// What the target column gets, as [`BackfillParams::value`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Parameters of a `deploy` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeployParams {
    /// Service.
    pub service: String,
    /// `image:tag`.
    pub image: String,
    /// The tag, also written to the containers' `cutover.version` label.
    pub version: String,
    /// One port per container started by this step (host networking; the container gets
    /// its port in `PORT`).
    pub ports: Vec<u16>,
    /// Containers started by this step.
    pub replicas: u32,
    /// Rolling batch (1-based) and batch count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<(u32, u32)>,
    /// Plain env.
    pub env: BTreeMap<String, String>,
    /// Names of env vars passed through (values never recorded).
    pub secret_env: Vec<String>,
}

/// Parameters of a `health` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthParams {
    /// Service.
    pub service: String,
    /// URLs polled, one per container.
    pub urls: Vec<String>,
    /// Ports of the containers checked (their Docker health state counts too, where the
    /// image defines one).
    pub ports: Vec<u16>,
    /// Expected status.
    pub expect_status: u16,
    /// Poll interval.
    pub interval: Duration,
    /// Give up after.
    pub timeout: Duration,
}

/// Parameters of a `shift` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShiftParams {
    /// Service.
    pub service: String,
    /// Router upstream/backend.
    pub upstream: String,
    /// Router and how to reach it.
    pub router: RouterParams,
    /// Percent of traffic on the new version before.
    pub from_weight: u32,
    /// Percent after.
    pub to_weight: u32,
    /// Every server of the upstream after this step, with its weight (0: no traffic).
    pub servers: Vec<Server>,
}

/// Parameters of a `pause` step. Unknown fields are refused: with `duration` optional, another
/// kind's parameters would otherwise read as a manual gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseParams {
    /// Service.
    pub service: String,
    /// How long; `None`: until `cutover promote RUN` (a manual gate, Argo Rollouts' `pause: {}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// The canary's gate, watched while the pause lasts (background analysis, as Argo Rollouts
    /// runs it for a whole rollout): the router's figures for the canary are judged at every
    /// poll (twice a second) over a window of `watch.window`, and the pause fails, rolling the
    /// release back, as soon as a threshold is crossed with at least `watch.min_requests` in the
    /// window; too few requests only mean "keep watching". The analysis step after the pause is
    /// the final verdict for the weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<AnalysisParams>,
}

/// Parameters of a `analysis` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnalysisParams {
    /// Service.
    pub service: String,
    /// Canary weight during the window.
    pub weight: u32,
    /// Window of router data.
    pub window: Duration,
    /// Error-rate threshold (fraction).
    pub max_error_rate: f64,
    /// p99 latency threshold.
    pub max_p99_latency: Duration,
    /// Fewer requests: inconclusive.
    pub min_requests: u32,
    /// Router upstream/backend.
    pub upstream: String,
    /// Router whose data is read.
    pub router: RouterParams,
    /// Addresses of the canary's servers.
    pub canary: Vec<String>,
    /// Relative mode: highest acceptable error-rate difference, canary minus stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate_increase: Option<f64>,
    /// Relative mode: highest acceptable ratio of the canary's latency to the stable one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ratio: Option<f64>,
    /// Addresses of the stable version's servers, watched over the same window in relative
    /// mode (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stable: Vec<String>,
}

/// Parameters of a `retire` / `cleanup` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VersionParams {
    /// Service.
    pub service: String,
    /// `image:tag` of the old version.
    pub image: String,
    /// The old version's tag (its containers carry it in the `cutover.version` label).
    pub version: String,
    /// Ports of the containers affected.
    pub ports: Vec<u16>,
    /// Health URLs of those containers: a rollback that starts them again waits for these.
    pub health_urls: Vec<String>,
    /// Status those URLs answer when healthy.
    pub health_status: u16,
    /// How long a rollback waits for that.
    pub health_timeout: Duration,
    /// Containers affected.
    pub replicas: u32,
    /// Rolling batch, when the old version goes batch by batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<(u32, u32)>,
}

/// Parameters of a `command` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandParams {
    /// Hook name.
    pub name: String,
    /// Stage.
    pub stage: Stage,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Kill after.
    pub timeout: Duration,
    /// Plain env.
    pub env: BTreeMap<String, String>,
    /// Names of env vars passed through.
    pub secret_env: Vec<String>,
    /// Undo argv.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo: Option<Vec<String>>,
    /// Probe argv (exit 0: the effect is in place).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<Vec<String>>,
}

/// A router as a step drives it: the spec's `[router]`, paths as written (relative ones resolve
/// against the spec's directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RouterParams {
    /// nginx or HAProxy.
    pub kind: RouterKind,
    /// nginx: the file holding the `upstream` blocks cutover owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_file: Option<String>,
    /// nginx: pid file of the master process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<String>,
    /// nginx: argv that validates the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// nginx: argv that reloads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<Vec<String>>,
    /// nginx: JSON access log read by analysis gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<String>,
    /// HAProxy: admin socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_socket: Option<String>,
    /// HAProxy: config file rewritten so a restart keeps the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
    /// HAProxy: `host:port` (UDP) where gates listen for its request log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

impl From<&crate::spec::Router> for RouterParams {
    fn from(r: &crate::spec::Router) -> Self {
        let s = |v: &Option<toml::Spanned<String>>| v.as_ref().map(|v| v.get_ref().clone());
        let a = |v: &Option<toml::Spanned<Vec<String>>>| v.as_ref().map(|v| v.get_ref().clone());
        Self {
            kind: r.kind,
            upstream_file: s(&r.upstream_file),
            pid_file: s(&r.pid_file),
            test: a(&r.test),
            reload: a(&r.reload),
            access_log: s(&r.access_log),
            admin_socket: s(&r.admin_socket),
            config_file: s(&r.config_file),
            log: s(&r.log),
        }
    }
}

/// One server of an upstream/backend and its weight (0: in the upstream, no new traffic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Server {
    /// `host:port`.
    pub addr: String,
    /// Relative weight.
    pub weight: u32,
}

/// One shift as preflight sees it: which step, which upstream, the servers after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedShift {
    /// Step id.
    pub step: String,
    /// Router upstream/backend.
    pub upstream: String,
    /// Every server of the upstream after the step, with its weight.
    pub servers: Vec<Server>,
}

/// A program a `command` step starts, as preflight checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProgramCheck {
    /// Who starts it: `command/smoke`, `command/smoke (undo)`, `command/smoke (probe)`.
    pub what: String,
    /// `argv[0]`: a path (relative to the spec's directory) or a name looked up in `PATH`.
    pub program: String,
    /// The `PATH` the command's `env` sets, if it sets one (the lookup uses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// What preflight checks about one database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DatabaseCheck {
    /// Database name in the spec.
    pub name: String,
    /// Env var with the URL.
    pub url_env: String,
    /// Migrations that must already be applied (the baseline), with refinery's checksums.
    pub applied: Vec<HistoryEntry>,
    /// Migrations this release applies: none of them may be applied yet.
    pub pending: Vec<HistoryEntry>,
    /// The database's `lock_timeout`: transactions open longer than this would make the
    /// release's DDL wait past it, so preflight lists them.
    pub lock_timeout: Duration,
    /// Tables the pending migrations ALTER or index, as written: only their owner may, so
    /// preflight checks the role owns those that exist (tables the release creates do not yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owned_tables: Vec<String>,
}

/// A migration as refinery's history table records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryEntry {
    /// Version.
    pub version: u64,
    /// Name.
    pub name: String,
    /// refinery's checksum (decimal).
    pub checksum: String,
}

/// One node of the release DAG.
///
/// In JSON its fields come in this order: `id`, `kind`, `phase`, `depends_on`, `description`,
/// `idempotent`, `reversible`, `undo`, `params`, `hash`; `kind` and `params` are [`Params`]'
/// tag and content (read back in any order).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[schemars(
    description = "One node of the release DAG: `kind` and `params` go together, one \
                          of the variants below."
)]
pub struct Step {
    /// Stable, human-readable id, e.g. `migrate/expand/V2__add_full_name`.
    pub id: String,
    /// What it does and with what: `kind` and `params` in JSON.
    #[serde(flatten)]
    pub params: Params,
    /// `expand` or `contract`, for `migrate` steps (left out for the others: the hand-written
    /// `Serialize` skips it, and the schema says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Ids of the steps that must finish first.
    pub depends_on: Vec<String>,
    /// One sentence for humans.
    pub description: String,
    /// Running it twice has the same effect as once.
    pub idempotent: bool,
    /// A rollback can undo it. Irreversible steps are pivots: rollback stops before them.
    pub reversible: bool,
    /// How a rollback undoes it, or why it cannot.
    pub undo: String,
    /// Fingerprint of the step's definition.
    pub hash: String,
}

impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Step", 10)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("kind", &self.kind())?;
        match &self.phase {
            Some(p) => st.serialize_field("phase", p)?,
            None => st.skip_field("phase")?,
        }
        st.serialize_field("depends_on", &self.depends_on)?;
        st.serialize_field("description", &self.description)?;
        st.serialize_field("idempotent", &self.idempotent)?;
        st.serialize_field("reversible", &self.reversible)?;
        st.serialize_field("undo", &self.undo)?;
        st.serialize_field("params", &ParamsContent(&self.params))?;
        st.serialize_field("hash", &self.hash)?;
        st.end()
    }
}

/// The content of [`Params`] without its kind tag, as the `params` field of a step.
struct ParamsContent<'a>(&'a Params);

impl Serialize for ParamsContent<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Params::Preflight(p) => p.serialize(s),
            Params::Backup(p) => p.serialize(s),
            Params::Migrate(p) => p.serialize(s),
            Params::Backfill(p) => p.serialize(s),
            Params::Deploy(p) => p.serialize(s),
            Params::Health(p) => p.serialize(s),
            Params::Shift(p) => p.serialize(s),
            Params::Pause(p) => p.serialize(s),
            Params::Analysis(p) => p.serialize(s),
            Params::Retire(p) | Params::Cleanup(p) => p.serialize(s),
            Params::Command(p) => p.serialize(s),
        }
    }
}

impl Step {
    /// What the step does: follows from its parameters.
    pub fn kind(&self) -> StepKind {
        self.params.kind()
    }

    /// How long the step holds the release at least: a timed pause's duration or an analysis
    /// gate's window; `None` for a manual gate and every other kind.
    pub fn window(&self) -> Option<Duration> {
        match &self.params {
            Params::Pause(PauseParams { duration, .. }) => *duration,
            Params::Analysis(a) => Some(a.window),
            _ => None,
        }
    }

    /// The database (its name in the spec) the step works on: backups, migrations and
    /// backfills name one.
    pub fn database(&self) -> Option<&str> {
        self.params.database()
    }
}

impl Params {
    /// The kind of step these parameters are for.
    pub fn kind(&self) -> StepKind {
        match self {
            Params::Preflight(_) => StepKind::Preflight,
            Params::Backup(_) => StepKind::Backup,
            Params::Migrate(_) => StepKind::Migrate,
            Params::Backfill(_) => StepKind::Backfill,
            Params::Deploy(_) => StepKind::Deploy,
            Params::Health(_) => StepKind::Health,
            Params::Shift(_) => StepKind::Shift,
            Params::Pause(_) => StepKind::Pause,
            Params::Analysis(_) => StepKind::Analysis,
            Params::Retire(_) => StepKind::Retire,
            Params::Cleanup(_) => StepKind::Cleanup,
            Params::Command(_) => StepKind::Command,
        }
    }

    /// The database (its name in the spec) these parameters name, if any.
    pub fn database(&self) -> Option<&str> {
        match self {
            Params::Migrate(p) => Some(&p.database),
            Params::Backup(p) => Some(&p.database),
            Params::Backfill(p) => Some(&p.database),
            _ => None,
        }
    }
}

/// Downtime of a recreate release: the old version stops at `from` and the new one serves after
/// `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Downtime {
    /// Step that stops the old version.
    pub from: String,
    /// Step after which the new version serves.
    pub to: String,
    /// Steps inside the window; `apply` measures how long they take.
    pub steps: Vec<String>,
}

/// A built plan: the value `plan`, `apply --dry-run` and `apply` consume.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Release name.
    pub release: String,
    /// Strategies used, per service.
    pub strategies: BTreeMap<String, StrategyKind>,
    /// The DAG. Node order is a topological order.
    pub graph: DiGraph<Step, ()>,
    /// Deterministic hash of the whole plan.
    pub hash: String,
    /// Downtime window (recreate).
    pub downtime: Option<Downtime>,
    /// Findings from the migrations.
    pub findings: Vec<crate::lint::Finding>,
    /// Migrations of the release, analyzed.
    pub migrations: Vec<(String, crate::analysis::MigrationAnalysis)>,
    /// The spec asks every run to stop before the point of no return until `cutover promote`
    /// (`[release] hold`). A run option, not part of the hash: `apply --hold` asks the same.
    pub hold: bool,
}

/// Adds steps so that node order stays topological.
#[derive(Debug, Default)]
pub struct Builder {
    graph: DiGraph<Step, ()>,
    ids: BTreeMap<String, NodeIndex>,
    /// Ancestors of each node, kept as nodes are added (a plan of thousands of steps would
    /// otherwise pay a graph walk per dependency pair).
    ancestors: Vec<FixedBitSet>,
}

/// Ancestor sets of every node of a graph whose node order is topological.
pub fn ancestor_sets<N, E>(graph: &DiGraph<N, E>) -> Vec<FixedBitSet> {
    let n = graph.node_count();
    let mut sets: Vec<FixedBitSet> = Vec::with_capacity(n);
    for node in graph.node_indices() {
        let mut set = FixedBitSet::with_capacity(n);
        for p in graph.neighbors_directed(node, Direction::Incoming) {
            debug_assert!(p.index() < node.index(), "node order is not topological");
            set.union_with(&sets[p.index()]);
            set.insert(p.index());
        }
        sets.push(set);
    }
    sets
}

impl Builder {
    /// Adds `step` after `deps` (which must already exist). Duplicate ids are a planner bug.
    pub fn add(&mut self, mut step: Step, deps: &[NodeIndex]) -> NodeIndex {
        assert!(
            !self.ids.contains_key(&step.id),
            "duplicate step id {}",
            step.id
        );
        let mut deps: Vec<NodeIndex> = deps.to_vec();
        deps.sort();
        deps.dedup();
        // Keep `depends_on` minimal: drop a dependency another dependency already waits for.
        if deps.len() > 1 {
            let implied: Vec<NodeIndex> = deps
                .iter()
                .copied()
                .filter(|d| {
                    deps.iter()
                        .any(|o| o != d && self.ancestors[o.index()].contains(d.index()))
                })
                .collect();
            deps.retain(|d| !implied.contains(d));
        }
        let mut set = FixedBitSet::new();
        for d in &deps {
            set.union_with(&self.ancestors[d.index()]);
            set.grow(d.index() + 1);
            set.insert(d.index());
        }
        step.depends_on = deps.iter().map(|d| self.graph[*d].id.clone()).collect();
        let id = step.id.clone();
        let n = self.graph.add_node(step);
        for d in deps {
            self.graph.add_edge(d, n, ());
        }
        self.ids.insert(id, n);
        self.ancestors.push(set);
        n
    }

    /// Copies every shift step's servers, in node order, into the preflight step `preflight`, so
    /// that preflight can check them all against the router before anything changes.
    pub fn record_shifts_in(&mut self, preflight: NodeIndex) {
        let planned: Vec<PlannedShift> = self
            .graph
            .node_indices()
            .filter_map(|n| match &self.graph[n].params {
                Params::Shift(p) => Some(PlannedShift {
                    step: self.graph[n].id.clone(),
                    upstream: p.upstream.clone(),
                    servers: p.servers.clone(),
                }),
                _ => None,
            })
            .collect();
        if let Params::Preflight(p) = &mut self.graph[preflight].params {
            p.shifts = planned;
        }
    }

    /// Finishes the plan: fingerprints every step and hashes the whole.
    pub fn finish(mut self) -> (DiGraph<Step, ()>, String) {
        for n in self.graph.node_indices() {
            let step = &mut self.graph[n];
            step.hash = step_fingerprint(step);
        }
        let hash = plan_hash(self.graph.node_indices().map(|n| &self.graph[n]));
        (self.graph, hash)
    }
}

/// A step's fingerprint: 16 hex digits of the sha256 of what running it depends on (id, kind,
/// phase, parameters, dependencies, idempotence, reversibility); not its descriptions.
pub fn step_fingerprint(step: &Step) -> String {
    let canonical = serde_json::to_vec(&(
        &step.id,
        step.kind(),
        step.phase,
        ParamsContent(&step.params),
        &step.depends_on,
        step.idempotent,
        step.reversible,
    ))
    .expect("steps serialize");
    hex(&Sha256::digest(&canonical))[..16].to_string()
}

/// The plan hash: 64 hex digits of the sha256 of the plan format and each step's id and recorded
/// fingerprint, in order.
pub fn plan_hash<'a>(steps: impl IntoIterator<Item = &'a Step>) -> String {
    let mut plan_hasher = Sha256::new();
    plan_hasher.update(format!("cutover-plan-format:{PLAN_FORMAT}\n"));
    for step in steps {
        plan_hasher.update(step.id.as_bytes());
        plan_hasher.update(b"\0");
        plan_hasher.update(step.hash.as_bytes());
        plan_hasher.update(b"\n");
    }
    hex(&plan_hasher.finalize())
}

/// Why recorded steps cannot be turned back into a plan.
#[derive(Debug, thiserror::Error)]
pub enum RecordedPlanError {
    /// A step depends on one that is not listed before it.
    #[error("step `{step}` depends on `{dep}`, which is not listed before it")]
    Order {
        /// The step.
        step: String,
        /// Its missing dependency.
        dep: String,
    },
}

impl Plan {
    /// Rebuilds a plan from steps as recorded (in dependency order), e.g. a run's `plan.json`.
    pub fn from_steps(
        release: String,
        hash: String,
        steps: Vec<Step>,
        strategies: BTreeMap<String, StrategyKind>,
    ) -> Result<Plan, RecordedPlanError> {
        let mut graph = DiGraph::new();
        let mut ids: BTreeMap<String, NodeIndex> = BTreeMap::new();
        for step in steps {
            let deps: Vec<NodeIndex> = step
                .depends_on
                .iter()
                .map(|d| {
                    ids.get(d).copied().ok_or_else(|| RecordedPlanError::Order {
                        step: step.id.clone(),
                        dep: d.clone(),
                    })
                })
                .collect::<Result<_, _>>()?;
            let id = step.id.clone();
            let n = graph.add_node(step);
            for d in deps {
                graph.add_edge(d, n, ());
            }
            ids.insert(id, n);
        }
        Ok(Plan {
            release,
            strategies,
            graph,
            hash,
            downtime: None,
            findings: Vec::new(),
            migrations: Vec::new(),
            hold: false,
        })
    }

    /// Steps in topological order.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.graph.node_indices().map(|n| &self.graph[n])
    }

    /// A step by id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps().find(|s| s.id == id)
    }

    /// The first irreversible step in topological order: where rollback stops being possible.
    pub fn point_of_no_return(&self) -> Option<&Step> {
        self.steps().find(|s| !s.reversible)
    }

    /// Depth of each step (longest path from a root): steps at the same depth can run at once.
    pub fn levels(&self) -> Vec<usize> {
        let mut level = vec![0usize; self.graph.node_count()];
        for n in self.graph.node_indices() {
            let l = self
                .graph
                .neighbors_directed(n, Direction::Incoming)
                .map(|p| level[p.index()] + 1)
                .max()
                .unwrap_or(0);
            level[n.index()] = l;
        }
        level
    }

    /// Checks the release invariants. Returns the violations (empty when the plan is sound).
    pub fn check_invariants(&self) -> Vec<String> {
        let mut out = Vec::new();
        let topological = self.graph.edge_indices().all(|e| {
            let (a, b) = self.graph.edge_endpoints(e).expect("edge exists");
            a.index() < b.index()
        });
        if !topological || petgraph::algo::toposort(&self.graph, None).is_err() {
            out.push("the step graph has a cycle or is not in dependency order".to_string());
            return out;
        }
        let o = Order {
            g: &self.graph,
            ancestors: ancestor_sets(&self.graph),
        };
        let g = o.g;
        let migrations = o.of(StepKind::Migrate);
        let backups = o.of(StepKind::Backup);
        // A backup of a database precedes every schema change of it.
        for m in &migrations {
            let db = g[*m].database();
            for b in backups.iter().filter(|b| g[**b].database() == db) {
                if !o.precedes(*b, *m) {
                    out.push(format!("{} does not wait for {}", g[*m].id, g[*b].id));
                }
            }
        }
        let online = self
            .strategies
            .values()
            .any(|s| *s != StrategyKind::Recreate);
        if online {
            o.online_phases(&migrations, &mut out);
        } else {
            let retires = o.of(StepKind::Retire);
            for m in &migrations {
                for r in &retires {
                    if !o.precedes(*r, *m) {
                        out.push(format!(
                            "recreate: {} runs before the old version is stopped by {}",
                            g[*m].id,
                            g[r.to_owned()].id
                        ));
                    }
                }
            }
            if !retires.is_empty() && self.downtime.is_none() {
                out.push("recreate plan does not report its downtime".to_string());
            }
        }
        out
    }
}

/// A plan's steps by kind, and which precede which, for [`Plan::check_invariants`].
struct Order<'g> {
    g: &'g DiGraph<Step, ()>,
    /// Each step's ancestors ([`ancestor_sets`]).
    ancestors: Vec<FixedBitSet>,
}

impl Order<'_> {
    fn precedes(&self, a: NodeIndex, b: NodeIndex) -> bool {
        self.ancestors[b.index()].contains(a.index())
    }

    /// The steps of kind `k`, in graph order.
    fn of(&self, k: StepKind) -> Vec<NodeIndex> {
        let g = self.g;
        g.node_indices().filter(|n| g[*n].kind() == k).collect()
    }

    /// Online: every expand step and backfill precedes every shift; every contract step
    /// follows the last shifts (to 100%) and every retire.
    fn online_phases(&self, migrations: &[NodeIndex], out: &mut Vec<String>) {
        let g = self.g;
        let precedes = |a, b| self.precedes(a, b);
        let shifts = self.of(StepKind::Shift);
        let retires = self.of(StepKind::Retire);
        for m in migrations {
            match g[*m].phase {
                Some(Phase::Expand) => {
                    for s in &shifts {
                        if !precedes(*m, *s) {
                            out.push(format!(
                                "expand step {} does not precede {}",
                                g[*m].id, g[*s].id
                            ));
                        }
                    }
                }
                Some(Phase::Contract) => {
                    for s in shifts.iter().filter(
                        |s| matches!(&g[**s].params, Params::Shift(p) if p.to_weight == 100),
                    ) {
                        if !precedes(*s, *m) {
                            out.push(format!(
                                "contract step {} does not follow {}",
                                g[*m].id, g[*s].id
                            ));
                        }
                    }
                    for r in &retires {
                        if !precedes(*r, *m) {
                            out.push(format!(
                                "contract step {} does not follow {}",
                                g[*m].id, g[*r].id
                            ));
                        }
                    }
                }
                _ => out.push(format!("{} has no expand/contract phase", g[*m].id)),
            }
        }
        for b in self.of(StepKind::Backfill) {
            for s in &shifts {
                if !precedes(b, *s) {
                    out.push(format!(
                        "backfill {} does not precede {}",
                        g[b].id, g[*s].id
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, params: Params) -> Step {
        let mut s = Step {
            id: id.into(),
            params,
            phase: None,
            depends_on: vec!["preflight".into()],
            description: "d".into(),
            idempotent: true,
            reversible: true,
            undo: "u".into(),
            hash: String::new(),
        };
        s.hash = step_fingerprint(&s);
        s
    }

    fn version() -> VersionParams {
        VersionParams {
            service: "api".into(),
            image: "api:1".into(),
            version: "1".into(),
            ports: vec![3000],
            health_urls: vec!["http://127.0.0.1:3000/health".into()],
            health_status: 200,
            health_timeout: Duration::from_secs(30),
            replicas: 1,
            batch: None,
        }
    }

    #[test]
    fn the_kind_follows_from_the_params_and_reads_back() {
        let pause = step(
            "pause/api/10",
            Params::Pause(PauseParams {
                service: "api".into(),
                duration: Some(Duration::from_secs(5)),
                watch: None,
            }),
        );
        assert_eq!(pause.kind(), StepKind::Pause);
        let json = serde_json::to_value(&pause).unwrap();
        // The shape plans have always had: `kind` second, `params` (untagged content) before
        // `hash`.
        let text = serde_json::to_string(&pause).unwrap();
        let at = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
        let order = [
            "id",
            "kind",
            "depends_on",
            "description",
            "idempotent",
            "reversible",
            "undo",
            "params",
            "hash",
        ];
        assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
        assert!(!text.contains("\"phase\""), "{text}");
        assert_eq!(json["kind"], "pause");
        assert_eq!(json["params"]["duration"], "5s");
        assert_eq!(serde_json::from_value::<Step>(json).unwrap(), pause);
        // Retire and cleanup share their parameters' type, not their kind.
        for (id, params, kind) in [
            ("retire/api", Params::Retire(version()), StepKind::Retire),
            ("cleanup/api", Params::Cleanup(version()), StepKind::Cleanup),
        ] {
            let s = step(id, params);
            assert_eq!(s.kind(), kind);
            let back: Step = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
            assert_eq!(back, s);
            assert_eq!(back.kind(), kind);
        }
        assert_ne!(
            step("x", Params::Retire(version())).hash,
            step("x", Params::Cleanup(version())).hash,
            "the kind is part of the fingerprint"
        );
    }

    #[test]
    fn params_that_do_not_fit_the_kind_are_refused() {
        let mut json =
            serde_json::to_value(step("cleanup/api", Params::Cleanup(version()))).unwrap();
        json["kind"] = "pause".into();
        let e = serde_json::from_value::<Step>(json)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
        let mut json =
            serde_json::to_value(step("cleanup/api", Params::Cleanup(version()))).unwrap();
        json["kind"] = "teleport".into();
        let e = serde_json::from_value::<Step>(json)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `teleport`"), "{e}");
    }

    #[test]
    fn one_method_names_the_database() {
        let backup = step(
            "backup/main",
            Params::Backup(BackupParams {
                database: "main".into(),
                url_env: "DATABASE_URL".into(),
                dir: "backups".into(),
            }),
        );
        assert_eq!(backup.database(), Some("main"));
        assert_eq!(
            step("retire/api", Params::Retire(version())).database(),
            None
        );
    }
}
