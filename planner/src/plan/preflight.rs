//! The first steps of every release: `preflight` (connections, pending migrations, images,
//! programs, secrets and the router, checked before anything changes) and a `backup/<db>` of
//! each database the release changes.

use super::Ctx;
use super::steps::{addr, hooks, step};
use crate::dag::{
    BackupParams, Builder, DatabaseCheck, HistoryEntry, Params, PreflightParams, ProgramCheck,
    RouterParams,
};
use crate::migrations::MigrationFile;
use crate::spec::{Database, Stage, StrategyKind};
use petgraph::graph::NodeIndex;
use std::collections::BTreeMap;

/// Where the release's schema work starts: the preflight, each database's backup and the
/// pre-migrate hooks.
pub(super) struct Start {
    pub preflight: NodeIndex,
    /// The backup step of each database that has one.
    pub backup_of: BTreeMap<String, NodeIndex>,
    /// The pre-migrate hooks' last steps (the backups, or the preflight, when there are none).
    pub pre_migrate: Vec<NodeIndex>,
}

/// Adds the preflight, the backups in parallel after it, and the pre-migrate hooks.
pub(super) fn start(cx: &Ctx, b: &mut Builder) -> Start {
    let preflight = b.add(
        step(
            "preflight",
            None,
            "Check connections, pending migrations, images and the router before anything changes.",
            true,
            true,
            "nothing to undo (read-only)",
            Params::Preflight(preflight_params(cx)),
        ),
        &[],
    );
    // Backups of every database the release changes, in parallel.
    let mut backup_of: BTreeMap<String, NodeIndex> = BTreeMap::new();
    for (name, ms) in cx.analyzed {
        let db = cx.db(name);
        if !ms.is_empty() && db.backup.enabled {
            let n = b.add(
                step(
                    &format!("backup/{name}"),
                    None,
                    &format!(
                        "pg_dump database `{name}` (custom format) to `{}` and verify it with \
                         pg_restore --list.",
                        db.backup.dir
                    ),
                    true,
                    true,
                    "nothing to undo; the dump is kept",
                    Params::Backup(BackupParams {
                        database: name.clone(),
                        url_env: db.url_env.clone(),
                        dir: db.backup.dir.clone(),
                    }),
                ),
                &[preflight],
            );
            backup_of.insert(name.clone(), n);
        }
    }
    let after_backups: Vec<NodeIndex> = if backup_of.is_empty() {
        vec![preflight]
    } else {
        backup_of.values().copied().collect()
    };
    let pre_migrate = hooks(b, cx.spec, Stage::PreMigrate, &after_backups);
    Start {
        preflight,
        backup_of,
        pre_migrate,
    }
}

/// What the preflight checks. Its shifts are filled in once the plan is built
/// ([`Builder::record_shifts_in`]).
fn preflight_params(cx: &Ctx) -> PreflightParams {
    let spec = cx.spec;
    let services = &cx.services;
    PreflightParams {
        databases: cx.databases.iter().map(|d| database_check(cx, d)).collect(),
        services: services.iter().map(|s| s.name.clone()).collect(),
        images: services
            .iter()
            .flat_map(|s| {
                [
                    format!("{}:{}", s.image, s.current),
                    format!("{}:{}", s.image, s.target),
                ]
            })
            .collect(),
        router: spec
            .router
            .as_ref()
            .map(|r| RouterParams::from(r.get_ref())),
        secret_env: {
            let mut names: Vec<String> = services
                .iter()
                .flat_map(|s| s.secret_env.iter())
                .chain(
                    spec.command
                        .iter()
                        .flat_map(|c| c.get_ref().secret_env.iter()),
                )
                .cloned()
                .collect();
            names.sort();
            names.dedup();
            names
        },
        programs: program_checks(cx),
        upstreams: if spec.router.is_some() {
            services
                .iter()
                .filter(|s| s.strategy.get_ref().kind != StrategyKind::Recreate)
                .map(|s| {
                    (
                        s.upstream().to_string(),
                        s.old_ports().chain(s.new_ports()).map(addr).collect(),
                    )
                })
                .collect()
        } else {
            BTreeMap::new()
        },
        shifts: Vec::new(),
    }
}

/// A database's migration history as the preflight expects it, and the tables its pending
/// migrations need to own.
fn database_check(cx: &Ctx, d: &Database) -> DatabaseCheck {
    let mut files: Vec<&MigrationFile> = cx
        .files
        .iter()
        .find(|(n, _)| *n == d.name)
        .map(|(_, f)| f.iter().collect())
        .unwrap_or_default();
    // Version order whatever order the files were read in: this is part of the hash.
    files.sort_by_key(|f| f.version);
    let entry = |f: &&MigrationFile| HistoryEntry {
        version: f.version,
        name: f.name.clone(),
        checksum: f.refinery_checksum.to_string(),
    };
    let applied = |f: &&&MigrationFile| d.baseline.is_some_and(|b| f.version <= b);
    DatabaseCheck {
        name: d.name.clone(),
        url_env: d.url_env.clone(),
        applied: files.iter().filter(applied).map(entry).collect(),
        pending: files.iter().filter(|f| !applied(f)).map(entry).collect(),
        lock_timeout: d.lock_timeout,
        owned_tables: {
            let pending = cx
                .analyzed
                .iter()
                .filter(|(n, _)| *n == d.name)
                .flat_map(|(_, ms)| ms.iter())
                .filter(|m| d.baseline.is_none_or(|b| m.version > b));
            let mut tables: Vec<String> = pending
                .flat_map(|m| m.statements.iter().filter_map(|s| s.owner_of.clone()))
                .collect();
            tables.sort();
            tables.dedup();
            tables
        },
    }
}

/// The programs the commands run (their undo and probe included), to be found on the PATH.
fn program_checks(cx: &Ctx) -> Vec<ProgramCheck> {
    cx.spec
        .command
        .iter()
        .map(|c| c.get_ref())
        .flat_map(|c| {
            [
                ("", Some(c.argv.get_ref())),
                (" (undo)", c.undo.as_ref()),
                (" (probe)", c.probe.as_ref()),
            ]
            .into_iter()
            .filter_map(move |(role, argv)| Some((c, role, argv?.first()?)))
        })
        .map(|(c, role, program)| ProgramCheck {
            what: format!("command/{}{role}", c.name),
            program: program.clone(),
            path: c.env.get("PATH").cloned(),
        })
        .collect()
}
