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
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Version of the plan format; part of every hash.
pub const PLAN_FORMAT: u32 = 1;

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementRef {
    /// Line in the migration file.
    pub line: u32,
    /// The statement, shortened.
    pub summary: String,
}

/// Kind-specific parameters of a step: everything the executor needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Params {
    /// preflight
    Preflight {
        /// Databases to connect to, with what their migration history must say.
        databases: Vec<DatabaseCheck>,
        /// Services whose images and containers are checked.
        services: Vec<String>,
        /// Images (`image:tag`) that must exist on the container engine: the current and the
        /// target version of every service.
        images: Vec<String>,
        /// Router to validate.
        #[serde(skip_serializing_if = "Option::is_none")]
        router: Option<RouterParams>,
        /// Upstreams/backends of the router and the server addresses the release will use in
        /// each (HAProxy: every one must already be declared in the backend).
        upstreams: BTreeMap<String, Vec<String>>,
        /// Every planned shift, in plan order, with the servers and weights it sets: preflight
        /// proves the router will accept each one (HAProxy's static algorithms take only some
        /// weights) before anything changes. Empty in plans recorded before it existed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shifts: Vec<PlannedShift>,
        /// Variables named in `secret_env` (services and commands), sorted: each must be set
        /// when the release starts, not only when the deploy or the command that needs it runs.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        secret_env: Vec<String>,
        /// Programs the `command` steps start (argv, undo and probe): each must exist and be
        /// executable when the release starts, not only when its stage comes.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        programs: Vec<ProgramCheck>,
    },
    /// backup
    Backup {
        /// Database name in the spec.
        database: String,
        /// Env var with the URL.
        url_env: String,
        /// Dump directory (relative to the spec).
        dir: String,
    },
    /// migrate
    Migrate {
        /// Database name in the spec.
        database: String,
        /// Env var with the URL.
        url_env: String,
        /// Migration version.
        version: u64,
        /// Migration file name.
        file: String,
        /// sha256 of the file.
        checksum: String,
        /// Runs in one transaction.
        transactional: bool,
        /// lock_timeout set for each statement.
        lock_timeout: Duration,
        /// statement_timeout set for each statement.
        statement_timeout: Duration,
        /// Statements from the file that this step runs.
        statements: Vec<StatementRef>,
        /// SQL generated by a rewrite (runs instead of the file's statements).
        #[serde(skip_serializing_if = "Option::is_none")]
        generated_sql: Option<String>,
        /// SQL that undoes this step, when one is known.
        #[serde(skip_serializing_if = "Option::is_none")]
        undo_sql: Option<String>,
        /// What this step executes, in order: the file's statements, or the generated script.
        /// Kept in the plan so a resume or rollback runs exactly what was planned.
        sql: Vec<String>,
        /// This step completes the migration, so it writes refinery's history row.
        records_history: bool,
        /// refinery's checksum of the file (decimal, as refinery stores it).
        refinery_checksum: String,
    },
    /// backfill
    Backfill {
        /// Database name in the spec.
        database: String,
        /// Env var with the URL.
        url_env: String,
        /// Table.
        table: String,
        /// Primary key column walked in batches.
        key: String,
        /// Source column.
        from_column: String,
        /// Target column.
        to_column: String,
        /// Rows per batch.
        batch_size: u32,
        /// Pause between batches.
        pause: Duration,
        /// One batch (`$1` < key <= `$2`).
        batch_sql: String,
    },
    /// deploy
    Deploy {
        /// Service.
        service: String,
        /// `image:tag`.
        image: String,
        /// The tag, also written to the containers' `cutover.version` label.
        version: String,
        /// One port per container started by this step (host networking; the container gets
        /// its port in `PORT`).
        ports: Vec<u16>,
        /// Containers started by this step.
        replicas: u32,
        /// Rolling batch (1-based) and batch count.
        #[serde(skip_serializing_if = "Option::is_none")]
        batch: Option<(u32, u32)>,
        /// Plain env.
        env: BTreeMap<String, String>,
        /// Names of env vars passed through (values never recorded).
        secret_env: Vec<String>,
    },
    /// health
    Health {
        /// Service.
        service: String,
        /// URLs polled, one per container.
        urls: Vec<String>,
        /// Ports of the containers checked (their Docker health state counts too, where the
        /// image defines one).
        ports: Vec<u16>,
        /// Expected status.
        expect_status: u16,
        /// Poll interval.
        interval: Duration,
        /// Give up after.
        timeout: Duration,
    },
    /// shift
    Shift {
        /// Service.
        service: String,
        /// Router upstream/backend.
        upstream: String,
        /// Router and how to reach it.
        router: RouterParams,
        /// Percent of traffic on the new version before.
        from_weight: u32,
        /// Percent after.
        to_weight: u32,
        /// Every server of the upstream after this step, with its weight (0: no traffic).
        servers: Vec<Server>,
    },
    /// pause
    Pause {
        /// Service.
        service: String,
        /// How long.
        duration: Duration,
    },
    /// analysis
    Analysis {
        /// Service.
        service: String,
        /// Canary weight during the window.
        weight: u32,
        /// Window of router data.
        window: Duration,
        /// Error-rate threshold (fraction).
        max_error_rate: f64,
        /// p99 latency threshold.
        max_p99_latency: Duration,
        /// Fewer requests: inconclusive.
        min_requests: u32,
        /// Router upstream/backend.
        upstream: String,
        /// Router whose data is read.
        router: RouterParams,
        /// Addresses of the canary's servers.
        canary: Vec<String>,
    },
    /// retire / cleanup
    Version {
        /// Service.
        service: String,
        /// `image:tag` of the old version.
        image: String,
        /// The old version's tag (its containers carry it in the `cutover.version` label).
        version: String,
        /// Ports of the containers affected.
        ports: Vec<u16>,
        /// Health URLs of those containers: a rollback that starts them again waits for these.
        health_urls: Vec<String>,
        /// Status those URLs answer when healthy.
        health_status: u16,
        /// How long a rollback waits for that.
        health_timeout: Duration,
        /// Containers affected.
        replicas: u32,
        /// Rolling batch, when the old version goes batch by batch.
        #[serde(skip_serializing_if = "Option::is_none")]
        batch: Option<(u32, u32)>,
    },
    /// command
    Command {
        /// Hook name.
        name: String,
        /// Stage.
        stage: Stage,
        /// Program and arguments.
        argv: Vec<String>,
        /// Kill after.
        timeout: Duration,
        /// Plain env.
        env: BTreeMap<String, String>,
        /// Names of env vars passed through.
        secret_env: Vec<String>,
        /// Undo argv.
        #[serde(skip_serializing_if = "Option::is_none")]
        undo: Option<Vec<String>>,
        /// Probe argv (exit 0: the effect is in place).
        #[serde(skip_serializing_if = "Option::is_none")]
        probe: Option<Vec<String>>,
    },
}

/// A router as a step drives it: the spec's `[router]`, paths as written (relative ones resolve
/// against the spec's directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        }
    }
}

/// One server of an upstream/backend and its weight (0: in the upstream, no new traffic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// `host:port`.
    pub addr: String,
    /// Relative weight.
    pub weight: u32,
}

/// One shift as preflight sees it: which step, which upstream, the servers after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedShift {
    /// Step id.
    pub step: String,
    /// Router upstream/backend.
    pub upstream: String,
    /// Every server of the upstream after the step, with its weight.
    pub servers: Vec<Server>,
}

/// A program a `command` step starts, as preflight checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Version.
    pub version: u64,
    /// Name.
    pub name: String,
    /// refinery's checksum (decimal).
    pub checksum: String,
}

/// One node of the release DAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Stable, human-readable id, e.g. `migrate/expand/V2__add_full_name`.
    pub id: String,
    /// What it does.
    pub kind: StepKind,
    /// `expand` or `contract`, for `migrate` steps.
    #[serde(skip_serializing_if = "Option::is_none")]
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
    /// Kind-specific parameters.
    pub params: Params,
    /// Fingerprint of the step's definition.
    pub hash: String,
}

impl Step {
    /// Checks that `params` is the variant `kind` calls for. Params are untagged in JSON, so a
    /// step read back from a recorded plan is checked before it is trusted.
    pub fn params_match_kind(&self) -> bool {
        matches!(
            (self.kind, &self.params),
            (StepKind::Preflight, Params::Preflight { .. })
                | (StepKind::Backup, Params::Backup { .. })
                | (StepKind::Migrate, Params::Migrate { .. })
                | (StepKind::Backfill, Params::Backfill { .. })
                | (StepKind::Deploy, Params::Deploy { .. })
                | (StepKind::Health, Params::Health { .. })
                | (StepKind::Shift, Params::Shift { .. })
                | (StepKind::Pause, Params::Pause { .. })
                | (StepKind::Analysis, Params::Analysis { .. })
                | (StepKind::Retire | StepKind::Cleanup, Params::Version { .. })
                | (StepKind::Command, Params::Command { .. })
        )
    }
}

/// Downtime of a recreate release: the old version stops at `from` and the new one serves after
/// `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
                Params::Shift {
                    upstream, servers, ..
                } => Some(PlannedShift {
                    step: self.graph[n].id.clone(),
                    upstream: upstream.clone(),
                    servers: servers.clone(),
                }),
                _ => None,
            })
            .collect();
        if let Params::Preflight { shifts, .. } = &mut self.graph[preflight].params {
            *shifts = planned;
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
        step.kind,
        step.phase,
        &step.params,
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
    /// A step's parameters do not fit its kind, or do not read back as written.
    #[error("step `{0}` has parameters that do not match its kind")]
    Params(String),
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
            if !step.params_match_kind() {
                return Err(RecordedPlanError::Params(step.id));
            }
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
        let ancestors = ancestor_sets(&self.graph);
        let precedes = |a: NodeIndex, b: NodeIndex| ancestors[b.index()].contains(a.index());
        let g = &self.graph;
        let of = |k: StepKind| {
            g.node_indices()
                .filter(move |n| g[*n].kind == k)
                .collect::<Vec<_>>()
        };
        let migrations = of(StepKind::Migrate);
        let backups = of(StepKind::Backup);
        let shifts = of(StepKind::Shift);
        let retires = of(StepKind::Retire);
        let db_of = |n: NodeIndex| match &g[n].params {
            Params::Migrate { database, .. }
            | Params::Backup { database, .. }
            | Params::Backfill { database, .. } => Some(database.clone()),
            _ => None,
        };
        // A backup of a database precedes every schema change of it.
        for m in &migrations {
            let db = db_of(*m);
            for b in backups.iter().filter(|b| db_of(**b) == db) {
                if !precedes(*b, *m) {
                    out.push(format!("{} does not wait for {}", g[*m].id, g[*b].id));
                }
            }
        }
        let online = self
            .strategies
            .values()
            .any(|s| *s != StrategyKind::Recreate);
        if online {
            for m in &migrations {
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
                        for s in shifts.iter().filter(|s| {
                            matches!(g[**s].params, Params::Shift { to_weight: 100, .. })
                        }) {
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
            for b in of(StepKind::Backfill) {
                for s in &shifts {
                    if !precedes(b, *s) {
                        out.push(format!(
                            "backfill {} does not precede {}",
                            g[b].id, g[*s].id
                        ));
                    }
                }
            }
        } else {
            for m in &migrations {
                for r in &retires {
                    if !precedes(*r, *m) {
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
