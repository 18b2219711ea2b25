//! Property tests of the release DAG over generated releases: specs of 1-4 services with every
//! strategy, 0-3 databases with generated migrations, and hooks at every stage. The checks here
//! re-derive the invariants from the plan's public data (ids, kinds, `depends_on`, params) rather
//! than calling the planner's own checker, so a bug in one cannot hide a bug in the other.

use cutover_planner::analysis::Phase;
use cutover_planner::dag::{Params, Plan, ShiftParams, StepKind};
use cutover_planner::migrations::MigrationFile;
use cutover_planner::plan::plan_release;
use cutover_planner::spec::ReleaseSpec;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
struct Svc {
    strategy: u8, // 0 rolling, 1 blue-green, 2 canary
    replicas: u32,
    batch: u32,
    steps: Vec<u32>,
    pause: bool,
    analysis: bool,
    db_subset: Option<Vec<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mig {
    AddColumn,
    CreateTable,
    ConcurrentIndex,
    Rename,
    DropColumn,
}

#[derive(Debug, Clone)]
struct Release {
    recreate: bool,
    services: Vec<Svc>,
    dbs: Vec<Vec<Mig>>,
    hooks: Vec<(u8, u8)>, // (stage, 0 read-only / 1 with undo / 2 neither)
}

fn svc() -> impl Strategy<Value = Svc> {
    (
        0u8..3,
        1u32..6,
        any::<u32>(),
        proptest::collection::btree_set(1u32..100, 0..4),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(proptest::collection::vec(any::<bool>(), 3)),
    )
        .prop_map(
            |(strategy, replicas, b, steps, pause, analysis, db_subset)| {
                let mut steps: Vec<u32> = steps.into_iter().collect();
                steps.push(100);
                Svc {
                    strategy,
                    replicas,
                    batch: 1 + b % replicas,
                    steps,
                    pause,
                    analysis,
                    db_subset,
                }
            },
        )
}

fn mig() -> impl Strategy<Value = Mig> {
    prop_oneof![
        Just(Mig::AddColumn),
        Just(Mig::CreateTable),
        Just(Mig::ConcurrentIndex),
        Just(Mig::Rename),
        Just(Mig::DropColumn)
    ]
}

fn release() -> impl Strategy<Value = Release> {
    (
        any::<bool>(),
        proptest::collection::vec(svc(), 1..4),
        proptest::collection::vec(proptest::collection::vec(mig(), 1..7), 0..3),
        proptest::collection::vec((0u8..5, 0u8..3), 0..4),
    )
        .prop_map(|(recreate, services, mut dbs, hooks)| {
            if !recreate {
                // Online releases number expand migrations before contract ones (renames are
                // rewritten, so they may sit anywhere).
                for d in &mut dbs {
                    d.sort_by_key(|m| *m == Mig::DropColumn);
                }
            }
            Release {
                recreate,
                services,
                dbs,
                hooks,
            }
        })
}

const STAGES: [&str; 5] = [
    "pre-migrate",
    "pre-deploy",
    "post-deploy",
    "post-shift",
    "post-release",
];

fn spec_text(r: &Release) -> String {
    let mut t = String::from("[release]\nname = \"generated\"\n\n");
    for (i, s) in r.services.iter().enumerate() {
        t += &format!(
            "[[service]]\nname = \"svc{i}\"\nimage = \"img{i}\"\ncurrent = \"1\"\ntarget \
             = \"2\"\nport = {}\nreplicas = {}\n",
            4000 + i * 10,
            s.replicas
        );
        if let Some(subset) = &s.db_subset {
            let names: Vec<String> = subset
                .iter()
                .enumerate()
                .filter(|(j, on)| **on && *j < r.dbs.len())
                .map(|(j, _)| format!("\"db{j}\""))
                .collect();
            t += &format!("databases = [{}]\n", names.join(", "));
        }
        if r.recreate {
            t += "[service.strategy]\nkind = \"recreate\"\n\n";
            continue;
        }
        match s.strategy {
            0 => {
                t += &format!(
                    "[service.strategy]\nkind = \"rolling\"\nbatch_size = {}\ndelay = \"1s\"\n\n",
                    s.batch
                )
            }
            1 => t += "[service.strategy]\nkind = \"blue-green\"\n\n",
            _ => {
                let steps: Vec<String> = s.steps.iter().map(u32::to_string).collect();
                t += &format!(
                    "[service.strategy]\nkind = \"canary\"\nsteps = [{}]\n",
                    steps.join(", ")
                );
                if s.pause {
                    t += "pause = \"5s\"\n";
                }
                if s.analysis {
                    t += "analysis = { max_error_rate = 0.05, max_p99_latency = \"250ms\" }\n";
                }
                t += "\n";
            }
        }
    }
    for j in 0..r.dbs.len() {
        t += &format!(
            "[[database]]\nname = \"db{j}\"\nurl_env = \"DB{j}_URL\"\nmigrations \
             = \"m{j}\"\nbaseline = 1\n\n"
        );
    }
    if !r.recreate {
        t += "[router]\nkind = \"haproxy\"\nadmin_socket = \"/run/haproxy.sock\"\n\n";
    }
    for (k, (stage, kind)) in r.hooks.iter().enumerate() {
        t += &format!(
            "[[command]]\nname = \"hook{k}\"\nstage = \"{}\"\nargv = [\"true\"]\n",
            STAGES[*stage as usize]
        );
        match kind {
            0 => t += "read_only = true\n\n",
            1 => t += "undo = [\"true\"]\n\n",
            _ => t += "\n",
        }
    }
    t
}

fn migrations(kinds: &[Mig]) -> Vec<MigrationFile> {
    let cols: Vec<String> = (0..10).map(|i| format!("c{i} text")).collect();
    let mut files = vec![
        MigrationFile::from_bytes(
            "V1__base.sql",
            "m/V1__base.sql",
            format!(
                "CREATE TABLE t (id bigint PRIMARY KEY, {});",
                cols.join(", ")
            )
            .as_bytes(),
        )
        .unwrap(),
    ];
    for (i, k) in kinds.iter().enumerate() {
        let sql = match k {
            Mig::AddColumn => format!("ALTER TABLE t ADD COLUMN n{i} text;"),
            Mig::CreateTable => format!("CREATE TABLE x{i} (id bigint PRIMARY KEY);"),
            Mig::ConcurrentIndex => format!("CREATE INDEX CONCURRENTLY t_c{i}_idx ON t (c{i});"),
            Mig::Rename => format!("ALTER TABLE t RENAME COLUMN c{i} TO r{i};"),
            Mig::DropColumn => format!("ALTER TABLE t DROP COLUMN c{i};"),
        };
        let name = format!("V{}__m{i}.sql", i + 2);
        files.push(MigrationFile::from_bytes(&name, &format!("m/{name}"), sql.as_bytes()).unwrap());
    }
    files
}

fn build(r: &Release, reverse_files: bool) -> Plan {
    let text = spec_text(r);
    let spec = ReleaseSpec::parse("generated.toml", &text)
        .unwrap_or_else(|e| panic!("generated spec is invalid: {e:?}\n{text}"));
    let dbs = r
        .dbs
        .iter()
        .enumerate()
        .map(|(j, kinds)| {
            let mut files = migrations(kinds);
            if reverse_files {
                files.reverse();
            }
            (format!("db{j}"), files)
        })
        .collect();
    plan_release(&spec, dbs)
        .unwrap_or_else(|e| panic!("planning failed: {e} {:?}\n{text}", e.diagnostics()))
}

/// Ancestors of every step, from `depends_on` alone.
fn ancestors(plan: &Plan) -> BTreeMap<String, BTreeSet<String>> {
    let mut anc: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in plan.steps() {
        let mut set = BTreeSet::new();
        for d in &s.depends_on {
            set.insert(d.clone());
            set.extend(anc.get(d).cloned().unwrap_or_default());
        }
        anc.insert(s.id.clone(), set);
    }
    anc
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn generated_releases_keep_the_release_invariants(r in release()) {
        let plan = build(&r, false);
        let steps: Vec<_> = plan.steps().collect();

        // Acyclic, and listed in an order where dependencies come first; ids unique.
        let mut seen = BTreeSet::new();
        for s in &steps {
            for d in &s.depends_on {
                prop_assert!(seen.contains(d), "{} depends on {} which comes later or not at all", s.id, d);
            }
            prop_assert!(seen.insert(s.id.clone()), "duplicate id {}", s.id);
        }
        prop_assert!(petgraph::algo::toposort(&plan.graph, None).is_ok());
        let anc = ancestors(&plan);
        let before = |a: &str, b: &str| anc[b].contains(a);
        let ids = |k: StepKind| steps.iter().filter(|s| s.kind() == k).map(|s| s.id.clone()).collect::<Vec<_>>();
        let db_of = |id: &str| plan.step(id).unwrap().database().expect("names its database").to_string();

        // A backup precedes the first (every) schema change of its database.
        for m in ids(StepKind::Migrate) {
            let backup = format!("backup/{}", db_of(&m));
            prop_assert!(before(&backup, &m), "{m} does not wait for {backup}");
        }
        // Every database with migrations is backed up.
        for (j, kinds) in r.dbs.iter().enumerate() {
            prop_assert_eq!(plan.step(&format!("backup/db{j}")).is_some(), !kinds.is_empty());
        }

        let shifts = ids(StepKind::Shift);
        let retires = ids(StepKind::Retire);
        if r.recreate {
            prop_assert!(shifts.is_empty());
            for m in ids(StepKind::Migrate) {
                for rt in &retires {
                    prop_assert!(before(rt, &m), "recreate: {m} runs before {rt} stops the old \
                                                  version");
                }
            }
            let d = plan.downtime.as_ref().expect("recreate reports downtime");
            prop_assert_eq!(plan.step(&d.from).unwrap().kind(), StepKind::Retire);
            prop_assert_eq!(plan.step(&d.to).unwrap().kind(), StepKind::Health);
        } else {
            prop_assert!(plan.downtime.is_none());
            for m in ids(StepKind::Migrate) {
                let step = plan.step(&m).unwrap();
                match step.phase {
                    Some(Phase::Expand) => for s in &shifts {
                        prop_assert!(before(&m, s), "expand {m} does not precede {s}");
                    },
                    Some(Phase::Contract) => {
                        prop_assert!(!step.reversible, "contract {m} is marked reversible");
                        let full = |s: &&String| matches!(
                            plan.step(s).unwrap().params,
                            Params::Shift(ShiftParams { to_weight: 100, .. })
                        );
                        for s in shifts.iter().filter(full) {
                            prop_assert!(before(s, &m), "contract {m} does not follow {s}");
                        }
                        for rt in &retires {
                            prop_assert!(before(rt, &m), "contract {m} does not follow {rt}");
                        }
                    }
                    other => prop_assert!(false, "{m} has phase {other:?}"),
                }
            }
            for b in ids(StepKind::Backfill) {
                for s in &shifts {
                    prop_assert!(before(&b, s), "backfill {b} does not precede {s}");
                }
            }
            // Each service's traffic only grows and ends at 100%.
            for (i, _) in r.services.iter().enumerate() {
                let weights: Vec<(u32, u32)> = steps.iter().filter_map(|s| match &s.params {
                    Params::Shift(ShiftParams { service, from_weight, to_weight, .. })
                        if *service == format!("svc{i}") => Some((*from_weight, *to_weight)),
                    _ => None,
                }).collect();
                prop_assert!(!weights.is_empty());
                prop_assert_eq!(weights.last().unwrap().1, 100);
                prop_assert!(weights.windows(2).all(|w| w[0].1 == w[1].0 && w[0].1 < w[1].1), "{weights:?}");
            }
        }
        // Every rename became a backfill, in online releases.
        let renames: usize = r.dbs.iter().map(|d| d.iter().filter(|m| **m == Mig::Rename).count()).sum();
        prop_assert_eq!(ids(StepKind::Backfill).len(), if r.recreate { 0 } else { renames });
    }

    #[test]
    fn the_plan_hash_ignores_file_order_and_is_stable(r in release()) {
        let a = build(&r, false);
        let b = build(&r, true);
        prop_assert_eq!(&a.hash, &b.hash);
        let hashes = |p: &Plan| p.steps().map(|s| s.hash.clone()).collect::<Vec<_>>();
        prop_assert_eq!(hashes(&a), hashes(&b));
    }
}

#[test]
fn changing_one_migration_changes_the_hash_of_its_step_and_the_plan() {
    let r = Release {
        recreate: false,
        services: vec![Svc {
            strategy: 2,
            replicas: 1,
            batch: 1,
            steps: vec![50, 100],
            pause: true,
            analysis: true,
            db_subset: None,
        }],
        dbs: vec![vec![Mig::AddColumn, Mig::Rename]],
        hooks: vec![],
    };
    let a = build(&r, false);
    let text = spec_text(&r);
    let spec = ReleaseSpec::parse("generated.toml", &text).unwrap();
    let mut files = migrations(&r.dbs[0]);
    files[1] = MigrationFile::from_bytes(
        "V2__m0.sql",
        "m/V2__m0.sql",
        b"ALTER TABLE t ADD COLUMN n0 bigint;",
    )
    .unwrap();
    let b = plan_release(&spec, vec![("db0".into(), files)]).unwrap();
    assert_ne!(a.hash, b.hash);
    let changed: Vec<&str> = a
        .steps()
        .zip(b.steps())
        .filter(|(x, y)| x.hash != y.hash)
        .map(|(x, _)| x.id.as_str())
        .collect();
    // The migration's own step, and preflight, which checks that exactly these migrations are
    // pending.
    assert_eq!(changed, vec!["preflight", "migrate/expand/V2__m0"]);
}

#[test]
fn a_huge_release_still_fits_a_pull_request_comment() {
    let r = Release {
        recreate: false,
        services: (0..3)
            .map(|_| Svc {
                strategy: 2,
                replicas: 3,
                batch: 1,
                steps: vec![1, 2, 3, 4, 5, 10, 25, 50, 100],
                pause: true,
                analysis: true,
                db_subset: None,
            })
            .collect(),
        dbs: vec![vec![Mig::AddColumn; 6], vec![Mig::CreateTable; 6]],
        hooks: vec![],
    };
    // Widen it: many databases' worth of migrations by repeating the generated spec's services.
    let mut big = r.clone();
    big.services = (0..60)
        .map(|i| Svc {
            strategy: (i % 3) as u8,
            ..r.services[0].clone()
        })
        .collect();
    let plan = build(&big, false);
    let md = cutover_planner::render::markdown(&plan, "plans/huge.toml");
    assert!(
        md.len() <= cutover_planner::render::MARKDOWN_LIMIT,
        "{} characters",
        md.len()
    );
    assert!(md.starts_with("### cutover plan `generated`"));
    // Summarised rather than cut: the steps others sections do not cover are listed, the rest
    // counted by kind; when even that is too long, the cut says so.
    assert!(
        md.contains("Not listed:") || md.trim_end().ends_with("for all of it."),
        "neither summarised nor marked as cut"
    );
    for m in plan
        .steps()
        .filter(|s| s.kind() == StepKind::Migrate)
        .take(3)
    {
        assert!(
            md.contains(&format!("`{}`", m.id)),
            "migration {} not listed",
            m.id
        );
    }
    assert_eq!(md.matches("```").count() % 2, 0, "an unclosed code block");
}
