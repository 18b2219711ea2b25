//! The schema phases of an online release. Expand: each database's migrations in version order,
//! after its backup, with a rewritten rename's backfills after its expand step; contract
//! migrations (and the contract parts of rewritten ones) are set aside. Contract: after every
//! old version is retired, then each service's cleanup and the post-release hooks.

use super::migrate::terminated;
use super::migrate::{Migrate, migrate_step, refs};
use super::preflight::Start;
use super::rename::{Views, release_views, rewrite_renames};
use super::steps::{cleanup_step, hooks, or_else, svc_dbs};
use super::{ContractPart, Ctx};
use crate::analysis::{MigrationAnalysis, Phase};
use crate::dag::Builder;
use crate::dag::StatementRef;
use crate::lint::Finding;
use crate::spec::Stage;
use petgraph::graph::NodeIndex;
use std::collections::BTreeMap;

/// What the expand phase added, per database.
pub(super) struct Expanded<'a> {
    /// The last expand steps of each database.
    pub end: BTreeMap<String, Vec<NodeIndex>>,
    /// The backfills of each database's rewritten renames.
    pub backfills: BTreeMap<String, Vec<NodeIndex>>,
    /// What each database runs in the contract phase, in version order.
    pub contract_parts: BTreeMap<String, Vec<ContractPart<'a>>>,
}

impl Expanded<'_> {
    /// Every last expand step and every backfill: what traffic waits for.
    pub fn all_done(&self) -> (Vec<NodeIndex>, Vec<NodeIndex>) {
        (
            self.end.values().flatten().copied().collect(),
            self.backfills.values().flatten().copied().collect(),
        )
    }
}

/// Expand phase per database, with backfills after their migration.
pub(super) fn expand<'a>(
    cx: &Ctx<'a>,
    b: &mut Builder,
    start: &Start,
    findings: &mut Vec<Finding>,
) -> Expanded<'a> {
    let mut out = Expanded {
        end: BTreeMap::new(),
        backfills: BTreeMap::new(),
        contract_parts: BTreeMap::new(),
    };
    for (name, ms) in cx.analyzed {
        let db = cx.db(name);
        // A database's migrations wait for its own backup (and the pre-migrate hooks, which
        // wait for every backup), not for the other databases' backups.
        let mut prev = if cx.has_hooks(Stage::PreMigrate) {
            start.pre_migrate.clone()
        } else {
            vec![start.preflight]
        };
        prev.extend(start.backup_of.get(name));
        // The last expand step (what deploys wait for; backfills are waited for apart).
        let mut last = prev.clone();
        let views = release_views(cx, name);
        for m in ms {
            if !m.split() {
                if m.phase == Phase::Contract {
                    out.contract_parts.entry(name.clone()).or_default().push((
                        m,
                        None,
                        refs(m, |_| true),
                    ));
                    continue;
                }
                let mut step = Migrate::whole(db, m, Phase::Expand);
                // After the migration that made the new version's views, a migration that
                // changes their tables changes the views too.
                if let Some(v) = views.as_ref().filter(|v| m.version > v.first) {
                    let v = Some(v);
                    step.generated = around_views(v, m, None, &step.statements);
                    step.undo_sql = step
                        .undo_sql
                        .map(|u| around_views(v, m, Some(&u), &[]).unwrap_or(u));
                }
                let n = migrate_step(cx, b, step, &prev);
                prev = vec![n];
                last = vec![n];
                continue;
            }
            // Split a migration holding renames into generated expand and contract parts.
            // From the migration that makes the new version's views on, the split's expand (and
            // its undo) runs between a drop of the views and their refresh: a column it adds or
            // drops, or changes the type of, shows in them.
            let around = views.as_ref().filter(|v| m.version >= v.first);
            let split = rewrite_renames(cx, b, (db, m), &prev, findings, around);
            // What follows may read or write the new column: it waits until the backfill has
            // filled it (else an UPDATE of it runs on NULLs the backfill then overwrites).
            prev = std::iter::once(split.expand)
                .chain(split.backfills.iter().copied())
                .collect();
            last = vec![split.expand];
            out.backfills
                .entry(name.clone())
                .or_default()
                .extend(split.backfills);
            out.contract_parts
                .entry(name.clone())
                .or_default()
                .push(split.contract);
        }
        out.end.insert(name.clone(), last);
    }
    out
}

/// Contract phase per database, after every service is retired (`retired`, or `post_shift` when
/// there are no services); then each service's cleanup and the post-release hooks.
pub(super) fn contract(
    cx: &Ctx,
    b: &mut Builder,
    start: &Start,
    contract_parts: &BTreeMap<String, Vec<ContractPart>>,
    retired: &BTreeMap<String, NodeIndex>,
    post_shift: &[NodeIndex],
) {
    let mut contract_end: BTreeMap<String, NodeIndex> = BTreeMap::new();
    for (name, parts) in contract_parts {
        let db = cx.db(name);
        // Every old version is gone before anything is contracted: a service that does not
        // declare the database may still reach it through another.
        let mut prev: Vec<NodeIndex> = retired.values().copied().collect();
        if prev.is_empty() {
            prev = post_shift.to_vec();
        }
        prev.extend(start.backup_of.get(name));
        let views = release_views(cx, name);
        for (m, generated, statements) in parts {
            let generated = around_views(views.as_ref(), m, generated.as_deref(), statements);
            let step = Migrate {
                db,
                m,
                phase: Phase::Contract,
                statements: statements.clone(),
                generated,
                undo_sql: None,
                reversible_note: None,
            };
            let n = migrate_step(cx, b, step, &prev);
            prev = vec![n];
        }
        contract_end.insert(name.clone(), prev[0]);
    }
    let mut cleanups = Vec::new();
    for svc in &cx.services {
        let mut deps: Vec<NodeIndex> = svc_dbs(svc, &cx.databases)
            .iter()
            .filter_map(|d| contract_end.get(*d).copied())
            .collect();
        deps.push(retired[&svc.name]);
        cleanups.push(b.add(cleanup_step(svc), &deps));
    }
    let contracted: Vec<NodeIndex> = contract_end.values().copied().collect();
    hooks(
        b,
        cx.spec,
        Stage::PostRelease,
        or_else(&cleanups, or_else(&contracted, post_shift)),
    );
}

/// The SQL of a contract step while the release gives the new version views (`views`: their
/// schema and tables): they are dropped first and made again from the catalog at the end, in the
/// step's transaction, since a view depends on every column it shows and PostgreSQL refuses to
/// drop or change a column a view shows (manual: DROP TABLE ... `DROP COLUMN`, "dependent
/// objects"; Dependency Tracking). Dropping them first also locks them before the tables, the
/// order the new version's statements lock them in. A migration that cannot run in a
/// transaction is left as it is: the new version would read the tables without the views
/// between its statements. `None`: the step runs its statements as written.
pub(super) fn around_views(
    views: Option<&Views>,
    m: &MigrationAnalysis,
    generated: Option<&str>,
    statements: &[StatementRef],
) -> Option<String> {
    let Some(Views { schema, tables, .. }) = views.filter(|_| m.transactional) else {
        return generated.map(str::to_string);
    };
    let body = match generated {
        Some(g) => g.to_string(),
        None => m
            .statements
            .iter()
            .filter(|s| statements.iter().any(|r| r.line == s.line))
            .map(|s| terminated(&s.sql))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let refresh: Vec<String> = tables
        .iter()
        .map(|t| crate::rewrite::refresh_view_sql(t, schema))
        .collect();
    Some(format!(
        "-- the new version's views go while the columns they show change\nDROP SCHEMA IF \
         EXISTS {schema} CASCADE;\n{body}\n{}",
        refresh.join("\n")
    ))
}
