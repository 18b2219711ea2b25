//! A recreate release: stop every old version (downtime starts), run every migration in version
//! order while nothing serves (breaking statements run as written), start the new version, and
//! report the downtime window.

use super::Ctx;
use super::migrate::{Migrate, migrate_step};
use super::preflight::Start;
use super::steps::{cleanup_step, deploy_step, health_step, hooks, or_else, retire_step, svc_dbs};
use crate::analysis::Phase;
use crate::dag::{Builder, Downtime, Step};
use crate::spec::Stage;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::BTreeMap;

/// The steps that stop the old versions and those that find the new ones healthy: the
/// downtime lies between them.
pub(super) struct Window {
    retires: Vec<NodeIndex>,
    healths: Vec<NodeIndex>,
}

/// Adds the steps of a recreate release after `start`.
pub(super) fn recreate(cx: &Ctx, b: &mut Builder, start: &Start) -> Window {
    let spec = cx.spec;
    // Stop everything, migrate in version order, start the new version.
    let mut retires = Vec::new();
    for svc in &cx.services {
        let mut r = retire_step(svc, svc.old_ports().collect(), None);
        r.description = format!(
            "Stop `{}:{}` ({} replica(s)); downtime starts.",
            svc.image, svc.current, svc.replicas
        );
        let n = b.add(r, &start.pre_migrate);
        retires.push(n);
    }
    let db_done = migrate_all(cx, b, &retires);
    let all_migrated: Vec<NodeIndex> = if db_done.is_empty() {
        retires.clone()
    } else {
        db_done.values().copied().collect()
    };
    let pre_deploy = hooks(b, spec, Stage::PreDeploy, &all_migrated);
    let mut healths = Vec::new();
    for svc in &cx.services {
        let deps: Vec<NodeIndex> = if cx.has_hooks(Stage::PreDeploy) {
            pre_deploy.clone()
        } else {
            svc_dbs(svc, &cx.databases)
                .iter()
                .filter_map(|d| db_done.get(*d).copied())
                .chain(retires.iter().copied())
                .collect()
        };
        let ports: Vec<u16> = svc.old_ports().collect();
        let d = b.add(deploy_step(svc, &svc.env, &ports, None), &deps);
        healths.push(b.add(health_step(svc, &ports, None), &[d]));
    }
    let post_deploy = hooks(b, spec, Stage::PostDeploy, or_else(&healths, &pre_deploy));
    let post_shift = hooks(b, spec, Stage::PostShift, &post_deploy);
    let mut cleanups = Vec::new();
    for svc in &cx.services {
        cleanups.push(b.add(cleanup_step(svc), &post_shift));
    }
    hooks(b, spec, Stage::PostRelease, &cleanups);
    Window { retires, healths }
}

/// Every migration of each database in version order, after the old versions stopped; the
/// last step of each database that has one.
fn migrate_all(cx: &Ctx, b: &mut Builder, retires: &[NodeIndex]) -> BTreeMap<String, NodeIndex> {
    let mut db_done: BTreeMap<String, NodeIndex> = BTreeMap::new();
    for (name, ms) in cx.analyzed {
        let db = cx.db(name);
        let mut prev = retires.to_vec();
        for m in ms {
            let phase = if m.phase == Phase::Expand {
                Phase::Expand
            } else {
                Phase::Contract
            };
            let n = migrate_step(cx, b, Migrate::whole(db, m, phase), &prev);
            prev = vec![n];
        }
        if let [n] = prev[..] {
            db_done.insert(name.clone(), n);
        }
    }
    db_done
}

/// The downtime of a built plan: every step between stopping the first old version and the
/// last health check of the new one.
pub(super) fn downtime(graph: &DiGraph<Step, ()>, window: &Window) -> Downtime {
    let Window { retires, healths } = window;
    let anc = crate::dag::ancestor_sets(graph);
    let reaches = |a: NodeIndex, b: NodeIndex| a == b || anc[b.index()].contains(a.index());
    let ids: Vec<String> = graph
        .node_indices()
        .filter(|n| {
            retires.iter().any(|r| reaches(*r, *n)) && healths.iter().any(|h| reaches(*n, *h))
        })
        .map(|n| graph[n].id.clone())
        .collect();
    Downtime {
        from: graph[retires[0]].id.clone(),
        to: graph[*healths.last().unwrap()].id.clone(),
        steps: ids,
    }
}
