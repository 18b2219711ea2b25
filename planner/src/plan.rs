//! Putting it together: [`plan_file`] reads a spec and its migrations; [`plan_release`] turns
//! them into a [`Plan`] without touching the disk.
//!
//! The shape of an online release (rolling, blue-green, canary), per database and service:
//!
//! ```text
//! preflight ─► backup/db ─► [pre-migrate] ─► migrate/expand/* ─► backfill/* ─┐
//!                                                  │                          │
//!                                                  └► deploy/svc ─► health/svc ┴► [post-deploy]
//!   ─► shift/svc/10 ─► pause ─► analysis ─► ... ─► shift/svc/100 ─► [post-shift]
//!   ─► retire/svc ─► migrate/contract/* ─► cleanup/svc ─► [post-release]
//! ```
//!
//! A recreate release stops the old version first, runs every migration in version order while
//! nothing serves (breaking statements run as written), starts the new version and reports the
//! downtime window.

use crate::analysis::{AnalyzeOptions, Inverse, MigrationAnalysis, Phase, StmtPhase, analyze};
use crate::dag::{Builder, Downtime, Params, Plan, StatementRef, Step, StepKind};
use crate::error::{Diagnostic, PlanError};
use crate::lint::{Finding, Severity};
use crate::migrations::{MigrationFile, load_dir};
use crate::rewrite::rename_column;
use crate::source::Location;
use crate::spec::{Database, ReleaseSpec, RouterKind, Service, Stage, StrategyKind};
use petgraph::graph::NodeIndex;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Reads the spec at `spec_path` and the migrations it names, and plans the release.
pub fn plan_file(spec_path: &Path) -> Result<Plan, PlanError> {
    let (spec, dbs) = load(spec_path)?;
    plan_release(&spec, dbs)
}

/// Reads and validates a spec and its migrations without planning.
pub fn load(spec_path: &Path) -> Result<(ReleaseSpec, Vec<(String, Vec<MigrationFile>)>), PlanError> {
    let display = spec_path.display().to_string();
    let text = std::fs::read(spec_path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            PlanError::Invalid(vec![Diagnostic::new(Location::file(&display), format!("the release spec `{display}` does not exist"), "pass the path of a spec, e.g. `cutover plan plans/canary-rename.toml`")])
        } else {
            PlanError::Io { path: spec_path.to_path_buf(), source }
        }
    })?;
    let text = String::from_utf8(text).map_err(|_| PlanError::Invalid(vec![Diagnostic::new(Location::file(&display), "the release spec is not valid UTF-8", "save it as UTF-8")]))?;
    let spec = ReleaseSpec::parse(&display, &text).map_err(PlanError::Invalid)?;
    let base = spec_path.parent().unwrap_or(Path::new(""));
    let mut dbs = Vec::new();
    let mut problems = Vec::new();
    for db in &spec.database {
        let db = db.get_ref();
        let dir = base.join(&db.migrations);
        let shown = lexical(&dir).display().to_string();
        match load_dir(&dir, &shown) {
            Ok(files) => dbs.push((db.name.clone(), files)),
            Err(PlanError::Invalid(d)) => problems.extend(d),
            Err(e) => return Err(e),
        }
    }
    if problems.is_empty() { Ok((spec, dbs)) } else { Err(PlanError::Invalid(problems)) }
}

/// `plans/../migrations-sample/x` → `migrations-sample/x`, without touching the disk.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// Rules whose findings stop planning in an online release.
fn blocks_online(rule: &str) -> bool {
    matches!(rule, "unparseable-statement" | "phase-declaration-mismatch" | "mixed-phase-migration" | "empty-migration")
        || (rule.starts_with("breaking-") && rule != "breaking-rename-column")
}

/// Plans a release from a parsed spec and the migration files of each of its databases.
pub fn plan_release(spec: &ReleaseSpec, dbs: Vec<(String, Vec<MigrationFile>)>) -> Result<Plan, PlanError> {
    let services: Vec<&Service> = spec.service.iter().map(|s| s.get_ref()).collect();
    let recreate = services.iter().all(|s| s.strategy.get_ref().kind == StrategyKind::Recreate);
    let databases: Vec<&Database> = spec.database.iter().map(|d| d.get_ref()).collect();

    // Analysis.
    let mut analyzed: Vec<(String, Vec<MigrationAnalysis>)> = Vec::new();
    let mut findings: Vec<Finding> = Vec::new();
    for (name, files) in &dbs {
        let db = databases.iter().find(|d| &d.name == name).expect("databases come from the spec");
        let a = analyze(files, db.baseline, AnalyzeOptions { release: true });
        findings.extend(a.findings);
        analyzed.push((name.clone(), a.migrations));
    }
    let mut blocking = Vec::new();
    let mut kept = Vec::new();
    for mut f in findings {
        if recreate && f.rule.starts_with("breaking-") {
            f.message = format!("{} (runs as written: the recreate strategy stops the old version first)", f.message);
            f.rule = "recreate-runs-as-is".into();
            f.severity = Severity::Info;
            f.hint = "nothing to do; an online strategy would need the phased recipe".into();
        }
        if recreate && f.rule == "mixed-phase-migration" {
            continue;
        }
        let blocks = if recreate {
            matches!(f.rule.as_str(), "unparseable-statement" | "phase-declaration-mismatch" | "empty-migration")
        } else {
            blocks_online(&f.rule)
        };
        if blocks {
            f.blocking = true;
            blocking.push(f);
        } else {
            kept.push(f);
        }
    }
    if !blocking.is_empty() {
        return Err(PlanError::Blocked(blocking));
    }
    let mut findings = kept;

    // Online releases apply migrations in version order: expand ones must come first.
    if !recreate {
        let mut problems = Vec::new();
        for (_, ms) in &analyzed {
            let mut contract: Option<&MigrationAnalysis> = None;
            for m in ms {
                let split = m.renames().next().is_some();
                match m.phase {
                    Phase::Contract if !split => contract = contract.or(Some(m)),
                    Phase::Expand if !split => {
                        if let Some(c) = contract {
                            problems.push(Diagnostic::new(
                                Location::file(m.file.clone()),
                                format!("expand migration `{}` is numbered after contract migration `{}`", m.file_name, c.file_name),
                                "migrations apply in version order, but expand runs before traffic moves and contract after the old version is retired: renumber so every expand migration comes first",
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        if !problems.is_empty() {
            return Err(PlanError::Invalid(problems));
        }
    }

    let multi_db = databases.len() > 1;
    let qualify = |db: &str, rest: &str| if multi_db { format!("{db}/{rest}") } else { rest.to_string() };
    let mut b = Builder::default();
    let mut downtime: Option<(Vec<NodeIndex>, Vec<NodeIndex>)> = None;

    let preflight = b.add(
        step("preflight", StepKind::Preflight, None, "Check connections, pending migrations, images and the router before anything changes.", true, true, "nothing to undo (read-only)", Params::Preflight {
            databases: databases.iter().map(|d| d.name.clone()).collect(),
            services: services.iter().map(|s| s.name.clone()).collect(),
            router: spec.router.as_ref().map(|r| r.get_ref().kind),
        }),
        &[],
    );

    // Backups of every database the release changes, in parallel.
    let mut backup_of: BTreeMap<String, NodeIndex> = BTreeMap::new();
    for (name, ms) in &analyzed {
        let db = databases.iter().find(|d| &d.name == name).unwrap();
        if !ms.is_empty() && db.backup.enabled {
            let n = b.add(step(&format!("backup/{name}"), StepKind::Backup, None, &format!("pg_dump database `{name}` (custom format) to `{}` and verify it with pg_restore --list.", db.backup.dir), true, true, "nothing to undo; the dump is kept", Params::Backup { database: name.clone(), url_env: db.url_env.clone(), dir: db.backup.dir.clone() }), &[preflight]);
            backup_of.insert(name.clone(), n);
        }
    }
    let after_backups: Vec<NodeIndex> = if backup_of.is_empty() { vec![preflight] } else { backup_of.values().copied().collect() };
    let pre_migrate = hooks(&mut b, spec, Stage::PreMigrate, &after_backups);

    let migrate_step = |b: &mut Builder, db: &Database, m: &MigrationAnalysis, phase: Phase, statements: Vec<StatementRef>, generated: Option<String>, undo_sql: Option<String>, reversible_note: Option<String>, deps: &[NodeIndex]| {
        let id = format!("migrate/{}/{}", phase.as_str(), qualify(&db.name, m.stem()));
        let reversible = phase == Phase::Expand && undo_sql.is_some();
        let undo = match (&undo_sql, phase) {
            (Some(_), _) => "run the undo SQL and remove the history row".to_string(),
            (None, Phase::Contract) => "irreversible (pivot): dropped objects and data come back only from the backup".to_string(),
            (None, _) => format!("irreversible (pivot): {}", reversible_note.unwrap_or_else(|| "no inverse known; add a down migration".into())),
        };
        let what = if generated.is_some() { "generated SQL, rewritten from a breaking change" } else { "the file's statements" };
        let description = format!("Apply {} of `{}` to `{}` ({}).", phase.as_str(), m.file_name, db.name, what);
        b.add(step(&id, StepKind::Migrate, Some(phase), &description, false, reversible, &undo, Params::Migrate {
            database: db.name.clone(),
            version: m.version,
            file: m.file_name.clone(),
            checksum: m.checksum.clone(),
            transactional: m.transactional,
            lock_timeout: db.lock_timeout,
            statement_timeout: db.statement_timeout,
            statements,
            generated_sql: generated,
            undo_sql,
        }), deps)
    };

    if recreate {
        // Stop everything, migrate in version order, start the new version.
        let mut retires = Vec::new();
        for svc in &services {
            let n = b.add(step(&format!("retire/{}", svc.name), StepKind::Retire, None, &format!("Stop `{}:{}` ({} replica(s)); downtime starts.", svc.image, svc.current, svc.replicas), true, true, "start the old containers again", Params::Version { service: svc.name.clone(), image: format!("{}:{}", svc.image, svc.current), replicas: svc.replicas, batch: None }), &pre_migrate);
            retires.push(n);
        }
        let mut db_done: BTreeMap<String, NodeIndex> = BTreeMap::new();
        for (name, ms) in &analyzed {
            let db = databases.iter().find(|d| &d.name == name).unwrap();
            let mut prev = retires.clone();
            for m in ms {
                let phase = if m.phase == Phase::Expand { Phase::Expand } else { Phase::Contract };
                let (undo_sql, note) = undo_of(m);
                let n = migrate_step(&mut b, db, m, phase, refs(m, |_| true), None, undo_sql, note, &prev);
                prev = vec![n];
            }
            if let [n] = prev[..] {
                db_done.insert(name.clone(), n);
            }
        }
        let all_migrated: Vec<NodeIndex> = if db_done.is_empty() { retires.clone() } else { db_done.values().copied().collect() };
        let pre_deploy = hooks(&mut b, spec, Stage::PreDeploy, &all_migrated);
        let mut healths = Vec::new();
        for svc in &services {
            let deps: Vec<NodeIndex> = if spec.command.iter().any(|c| c.get_ref().stage == Stage::PreDeploy) { pre_deploy.clone() } else { svc_dbs(svc, &databases).iter().filter_map(|d| db_done.get(*d).copied()).chain(retires.iter().copied()).collect() };
            let d = b.add(deploy_step(svc, svc.port, svc.replicas, None), &deps);
            healths.push(b.add(health_step(svc, svc.port, None), &[d]));
        }
        let post_deploy = hooks(&mut b, spec, Stage::PostDeploy, &healths);
        let post_shift = hooks(&mut b, spec, Stage::PostShift, &post_deploy);
        let mut cleanups = Vec::new();
        for svc in &services {
            cleanups.push(b.add(cleanup_step(svc), &post_shift));
        }
        hooks(&mut b, spec, Stage::PostRelease, &cleanups);
        downtime = Some((retires, healths));
    } else {
        // Expand phase per database, with backfills after their migration.
        let mut expand_end: BTreeMap<String, Vec<NodeIndex>> = BTreeMap::new();
        let mut backfills: BTreeMap<String, Vec<NodeIndex>> = BTreeMap::new();
        let mut contract_parts: BTreeMap<String, Vec<(&MigrationAnalysis, Option<String>, Vec<StatementRef>)>> = BTreeMap::new();
        for (name, ms) in &analyzed {
            let db = databases.iter().find(|d| &d.name == name).unwrap();
            // A database's migrations wait for its own backup (and the pre-migrate hooks, which
            // wait for every backup), not for the other databases' backups.
            let has_pre_migrate = spec.command.iter().any(|c| c.get_ref().stage == Stage::PreMigrate);
            let mut prev = if has_pre_migrate { pre_migrate.clone() } else { vec![preflight] };
            prev.extend(backup_of.get(name));
            for m in ms {
                let renames: Vec<_> = m.renames().map(|s| (s.line, rename_column(s.rename.as_ref().unwrap()))).collect();
                if renames.is_empty() {
                    if m.phase == Phase::Contract {
                        contract_parts.entry(name.clone()).or_default().push((m, None, refs(m, |_| true)));
                        continue;
                    }
                    let (undo_sql, note) = undo_of(m);
                    let n = migrate_step(&mut b, db, m, Phase::Expand, refs(m, |_| true), None, undo_sql, note, &prev);
                    prev = vec![n];
                    continue;
                }
                // Split a migration holding renames into generated expand and contract parts.
                let mut expand_sql = Vec::new();
                let mut expand_undo = Vec::new();
                let mut contract_sql = Vec::new();
                let mut undo_known = true;
                for s in &m.statements {
                    match (&s.rename, s.phase) {
                        (Some(_), _) => {
                            let r = &renames.iter().find(|(l, _)| *l == s.line).unwrap().1;
                            expand_sql.push(format!("-- line {}: {}\n{}", s.line, s.summary, r.expand_sql));
                            expand_undo.push(r.expand_undo_sql.clone());
                            contract_sql.push(format!("-- line {}: {}\n{}", s.line, s.summary, r.contract_sql));
                        }
                        (None, StmtPhase::Neutral) => {
                            expand_sql.push(terminated(&s.sql));
                            contract_sql.push(terminated(&s.sql));
                        }
                        (None, StmtPhase::Contract) => contract_sql.push(terminated(&s.sql)),
                        (None, _) => {
                            expand_sql.push(terminated(&s.sql));
                            match &s.inverse {
                                Inverse::Sql(sql) => expand_undo.push(sql.clone()),
                                Inverse::Noop => {}
                                Inverse::Unknown(_) => undo_known = false,
                            }
                        }
                    }
                }
                expand_undo.reverse();
                let undo = undo_known.then(|| expand_undo.join("\n"));
                let n = migrate_step(&mut b, db, m, Phase::Expand, refs(m, |s| s.phase != StmtPhase::Contract), Some(expand_sql.join("\n")), undo, None, &prev);
                prev = vec![n];
                for (_, r) in &renames {
                    let table_col = format!("{}.{}", crate::schema::normalize(&r.rename.table), crate::schema::normalize(&r.rename.to));
                    let id = format!("backfill/{}", qualify(name, &table_col));
                    let bf = b.add(step(&id, StepKind::Backfill, None, &format!("Copy `{}` into `{}` on `{}` in batches of {} rows by `{}`.", r.rename.from, r.rename.to, r.rename.table, db.backfill.batch_size, r.key), true, true, "nothing to undo; undoing the expand step drops the new column", Params::Backfill {
                        database: name.clone(),
                        table: r.rename.table.clone(),
                        key: r.key.clone(),
                        from_column: r.rename.from.clone(),
                        to_column: r.rename.to.clone(),
                        batch_size: db.backfill.batch_size,
                        pause: db.backfill.pause,
                        batch_sql: r.backfill_batch_sql.clone(),
                    }), &[n]);
                    backfills.entry(name.clone()).or_default().push(bf);
                    let line = m.renames().find(|s| s.rename.as_ref().is_some_and(|x| x == &r.rename)).map_or(1, |s| s.line);
                    findings.push(finding("rename-rewrite-incomplete", m, line, format!("the rewrite of `{}.{}` → `{}` copies values only; indexes, constraints and defaults on `{}` are not recreated on `{}`", r.rename.table, r.rename.from, r.rename.to, r.rename.from, r.rename.to), format!("if `{}` has indexes or constraints, add them for `{}` in an expand migration (CREATE INDEX CONCURRENTLY, ADD CONSTRAINT ... NOT VALID)", r.rename.from, r.rename.to)));
                    if r.column_type.is_none() {
                        findings.push(finding("rename-type-unknown", m, line, format!("the type of `{}.{}` is not declared in the migrations; the expand step copies it from the live catalog", r.rename.table, r.rename.from), "declare the table in the migrations (or a baseline migration) to see the exact type in the plan"));
                    }
                    if !r.key_known {
                        findings.push(finding("rename-type-unknown", m, line, format!("the primary key of `{}` is not declared in the migrations; the backfill assumes `id`", r.rename.table), "declare the table's primary key in the migrations (or a baseline migration)"));
                    }
                }
                contract_parts.entry(name.clone()).or_default().push((m, Some(contract_sql.join("\n")), refs(m, |s| s.phase != StmtPhase::Expand)));
            }
            expand_end.insert(name.clone(), prev);
        }
        let all_expanded: Vec<NodeIndex> = expand_end.values().flatten().copied().collect();
        let all_backfills: Vec<NodeIndex> = backfills.values().flatten().copied().collect();
        let has_pre_deploy = spec.command.iter().any(|c| c.get_ref().stage == Stage::PreDeploy);
        let pre_deploy = hooks(&mut b, spec, Stage::PreDeploy, &[all_expanded.clone(), all_backfills.clone()].concat().into_iter().chain(pre_migrate.clone()).collect::<Vec<_>>());

        // Per service: everything up to the first traffic change.
        struct Lane<'a> {
            svc: &'a Service,
            ready: Vec<NodeIndex>,
        }
        let mut lanes = Vec::new();
        for svc in &services {
            let dbs = svc_dbs(svc, &databases);
            let mut deps: Vec<NodeIndex> = if has_pre_deploy { pre_deploy.clone() } else { dbs.iter().filter_map(|d| expand_end.get(*d)).flatten().copied().collect() };
            if deps.is_empty() {
                deps = pre_migrate.clone();
            }
            let st = svc.strategy.get_ref();
            let (port, replicas, batch) = match st.kind {
                StrategyKind::Rolling => {
                    let size = st.batch_size.as_ref().map_or(1, |b| *b.get_ref());
                    let count = svc.replicas.div_ceil(size);
                    (svc.candidate_port(), size.min(svc.replicas), Some((1, count)))
                }
                _ => (svc.candidate_port(), svc.replicas, None),
            };
            let d = b.add(deploy_step(svc, port, replicas, batch), &deps);
            let h = b.add(health_step(svc, port, batch), &[d]);
            // Traffic moves only once every expand migration and backfill of the release is done:
            // the new version may read any of them, and a rollback point is simpler to reason
            // about when no schema work overlaps traffic changes.
            let mut ready = vec![h];
            ready.extend(all_expanded.iter().copied());
            ready.extend(all_backfills.iter().copied());
            lanes.push(Lane { svc, ready });
        }
        let healths: Vec<NodeIndex> = lanes.iter().flat_map(|l| l.ready.clone()).collect();
        let post_deploy = hooks(&mut b, spec, Stage::PostDeploy, &healths);
        let has_post_deploy = spec.command.iter().any(|c| c.get_ref().stage == Stage::PostDeploy);
        let router = spec.router.as_ref().map(|r| r.get_ref().kind).unwrap_or(RouterKind::Nginx);

        // Traffic steps, per strategy.
        let mut finals: Vec<(&Service, NodeIndex, Option<(u32, u32)>)> = Vec::new();
        for lane in &lanes {
            let svc = lane.svc;
            let st = svc.strategy.get_ref();
            let mut prev: Vec<NodeIndex> = if has_post_deploy { post_deploy.clone() } else { lane.ready.clone() };
            let shift = |b: &mut Builder, from: u32, to: u32, id_suffix: &str, deps: &[NodeIndex]| {
                b.add(step(&format!("shift/{}/{}", svc.name, id_suffix), StepKind::Shift, None, &format!("Route {to}% of `{}` traffic to `{}:{}` (from {from}%).", svc.name, svc.image, svc.target), true, true, if router == RouterKind::Nginx { "restore the previous upstream file byte for byte and reload" } else { "restore the previous server weights through the admin socket" }, Params::Shift { service: svc.name.clone(), upstream: svc.upstream().to_string(), router, from_weight: from, to_weight: to }), deps)
            };
            match st.kind {
                StrategyKind::BlueGreen => {
                    let s = shift(&mut b, 0, 100, "100", &prev);
                    finals.push((svc, s, None));
                }
                StrategyKind::Canary => {
                    let steps = st.steps.as_ref().map(|s| s.get_ref().clone()).unwrap_or_else(|| vec![100]);
                    let mut from = 0;
                    let mut last = None;
                    for w in steps {
                        let s = shift(&mut b, from, w, &w.to_string(), &prev);
                        prev = vec![s];
                        last = Some(s);
                        from = w;
                        if w < 100 {
                            if let Some(p) = st.pause.as_ref().filter(|p| !p.get_ref().is_zero()) {
                                let p = *p.get_ref();
                                let n = b.add(step(&format!("pause/{}/{w}", svc.name), StepKind::Pause, None, &format!("Hold `{}` at {w}% for {p}.", svc.name), true, true, "nothing to undo", Params::Pause { service: svc.name.clone(), duration: p }), &prev);
                                prev = vec![n];
                            }
                            if let Some(a) = &st.analysis {
                                let a = a.get_ref();
                                let n = b.add(step(&format!("analysis/{}/{w}", svc.name), StepKind::Analysis, None, &format!("Gate: `{}` canary error rate <= {} and p99 <= {} over the last {} (at least {} requests).", svc.name, a.max_error_rate, a.max_p99_latency, a.window, a.min_requests), true, true, "nothing to undo (read-only); a failed gate rolls back", Params::Analysis { service: svc.name.clone(), weight: w, window: a.window, max_error_rate: a.max_error_rate, max_p99_latency: a.max_p99_latency, min_requests: a.min_requests }), &prev);
                                prev = vec![n];
                            }
                        }
                    }
                    finals.push((svc, last.unwrap(), None));
                }
                StrategyKind::Rolling => {
                    let size = st.batch_size.as_ref().map_or(1, |b| *b.get_ref());
                    let count = svc.replicas.div_ceil(size);
                    let delay = st.delay.as_ref().map(|d| *d.get_ref()).filter(|d| !d.is_zero());
                    let mut from = 0;
                    for i in 1..=count {
                        let done = (i * size).min(svc.replicas);
                        let weight = if i == count { 100 } else { done * 100 / svc.replicas };
                        let replicas = done - (i - 1) * size;
                        if i > 1 {
                            let d = b.add(deploy_step(svc, svc.candidate_port(), replicas, Some((i, count))), &prev);
                            prev = vec![b.add(health_step(svc, svc.candidate_port(), Some((i, count))), &[d])];
                        }
                        let s = shift(&mut b, from, weight, &weight.to_string(), &prev);
                        from = weight;
                        if i == count {
                            finals.push((svc, s, Some((i, count))));
                            break;
                        }
                        let r = b.add(retire_step(svc, replicas, Some((i, count))), &[s]);
                        prev = vec![r];
                        if let Some(delay) = delay {
                            prev = vec![b.add(step(&format!("pause/{}/batch-{i}", svc.name), StepKind::Pause, None, &format!("Wait {delay} before the next batch of `{}`.", svc.name), true, true, "nothing to undo", Params::Pause { service: svc.name.clone(), duration: delay }), &prev)];
                        }
                    }
                }
                StrategyKind::Recreate => unreachable!("recreate is planned separately"),
            }
        }
        let last_shifts: Vec<NodeIndex> = finals.iter().map(|f| f.1).collect();
        let post_shift = hooks(&mut b, spec, Stage::PostShift, &last_shifts);
        let has_post_shift = spec.command.iter().any(|c| c.get_ref().stage == Stage::PostShift);
        let mut retired: BTreeMap<String, NodeIndex> = BTreeMap::new();
        for (svc, last, batch) in &finals {
            let replicas = match batch {
                Some((i, _)) => svc.replicas - (i - 1) * svc.strategy.get_ref().batch_size.as_ref().map_or(1, |b| *b.get_ref()),
                None => svc.replicas,
            };
            let deps = if has_post_shift { post_shift.clone() } else { vec![*last] };
            retired.insert(svc.name.clone(), b.add(retire_step(svc, replicas, *batch), &deps));
        }

        // Contract phase per database: after every service using it is retired.
        let mut contract_end: BTreeMap<String, NodeIndex> = BTreeMap::new();
        for (name, parts) in &contract_parts {
            let db = databases.iter().find(|d| &d.name == name).unwrap();
            // Every old version is gone before anything is contracted: a service that does not
            // declare the database may still reach it through another.
            let mut prev: Vec<NodeIndex> = retired.values().copied().collect();
            prev.extend(backup_of.get(name));
            for (m, generated, statements) in parts {
                let n = migrate_step(&mut b, db, m, Phase::Contract, statements.clone(), generated.clone(), None, None, &prev);
                prev = vec![n];
            }
            contract_end.insert(name.clone(), prev[0]);
        }
        let mut cleanups = Vec::new();
        for svc in &services {
            let mut deps: Vec<NodeIndex> = svc_dbs(svc, &databases).iter().filter_map(|d| contract_end.get(*d).copied()).collect();
            deps.push(retired[&svc.name]);
            cleanups.push(b.add(cleanup_step(svc), &deps));
        }
        hooks(&mut b, spec, Stage::PostRelease, &cleanups);
    }

    let (graph, hash) = b.finish();
    if let Some((retires, healths)) = downtime {
        let anc = crate::dag::ancestor_sets(&graph);
        let reaches = |a: NodeIndex, b: NodeIndex| a == b || anc[b.index()].contains(a.index());
        let ids: Vec<String> = graph.node_indices().filter(|n| retires.iter().any(|r| reaches(*r, *n)) && healths.iter().any(|h| reaches(*n, *h))).map(|n| graph[n].id.clone()).collect();
        let plan_downtime = Downtime { from: graph[retires[0]].id.clone(), to: graph[*healths.last().unwrap()].id.clone(), steps: ids };
        return finish(spec, graph, hash, Some(plan_downtime), findings, analyzed);
    }
    finish(spec, graph, hash, None, findings, analyzed)
}

fn finish(spec: &ReleaseSpec, graph: petgraph::graph::DiGraph<Step, ()>, hash: String, downtime: Option<Downtime>, mut findings: Vec<Finding>, analyzed: Vec<(String, Vec<MigrationAnalysis>)>) -> Result<Plan, PlanError> {
    findings.sort_by(|a, b| (&a.file, a.line, &a.rule).cmp(&(&b.file, b.line, &b.rule)));
    let plan = Plan {
        release: spec.release.name.clone(),
        strategies: spec.service.iter().map(|s| (s.get_ref().name.clone(), s.get_ref().strategy.get_ref().kind)).collect(),
        graph,
        hash,
        downtime,
        findings,
        migrations: analyzed.into_iter().flat_map(|(db, ms)| ms.into_iter().map(move |m| (db.clone(), m))).collect(),
    };
    let broken = plan.check_invariants();
    assert!(broken.is_empty(), "planner produced a plan that breaks its invariants: {broken:?}");
    Ok(plan)
}

fn finding(rule_id: &str, m: &MigrationAnalysis, line: u32, message: String, hint: impl Into<String>) -> Finding {
    Finding {
        rule: rule_id.into(),
        severity: crate::lint::rule(rule_id).map_or(Severity::Warning, |r| r.severity),
        file: m.file.clone(),
        line,
        message,
        hint: hint.into(),
        blocking: false,
    }
}

fn terminated(sql: &str) -> String {
    let s = sql.trim();
    if s.ends_with(';') { s.to_string() } else { format!("{s};") }
}

fn refs(m: &MigrationAnalysis, keep: impl Fn(&crate::analysis::StatementAnalysis) -> bool) -> Vec<StatementRef> {
    m.statements.iter().filter(|s| keep(s)).map(|s| StatementRef { line: s.line, summary: s.summary.clone() }).collect()
}

/// The derived inverse of a whole migration, or why there is none.
fn undo_of(m: &MigrationAnalysis) -> (Option<String>, Option<String>) {
    let mut parts = Vec::new();
    for s in m.statements.iter().rev() {
        match &s.inverse {
            Inverse::Sql(sql) => parts.push(sql.clone()),
            Inverse::Noop => {}
            Inverse::Unknown(reason) => return (None, Some(format!("line {}: {reason}", s.line))),
        }
    }
    (Some(parts.join("\n")), None)
}

fn svc_dbs<'a>(svc: &'a Service, all: &[&'a Database]) -> Vec<&'a str> {
    match &svc.databases {
        Some(list) => list.iter().map(String::as_str).collect(),
        None => all.iter().map(|d| d.name.as_str()).collect(),
    }
}

#[allow(clippy::too_many_arguments)]
fn step(id: &str, kind: StepKind, phase: Option<Phase>, description: &str, idempotent: bool, reversible: bool, undo: &str, params: Params) -> Step {
    Step { id: id.into(), kind, phase, depends_on: Vec::new(), description: description.into(), idempotent, reversible, undo: undo.into(), params, hash: String::new() }
}

fn batch_suffix(batch: Option<(u32, u32)>) -> String {
    batch.map_or(String::new(), |(i, _)| format!("/batch-{i}"))
}

fn deploy_step(svc: &Service, port: u16, replicas: u32, batch: Option<(u32, u32)>) -> Step {
    let what = batch.map_or(String::new(), |(i, n)| format!(" (batch {i} of {n})"));
    step(&format!("deploy/{}{}", svc.name, batch_suffix(batch)), StepKind::Deploy, None, &format!("Start {replicas} container(s) of `{}:{}` on port {port}{what}.", svc.image, svc.target), true, true, "stop and remove the containers this step started", Params::Deploy {
        service: svc.name.clone(),
        image: format!("{}:{}", svc.image, svc.target),
        port,
        replicas,
        batch,
        env: svc.env.clone(),
        secret_env: svc.secret_env.clone(),
    })
}

fn health_step(svc: &Service, port: u16, batch: Option<(u32, u32)>) -> Step {
    let h = &svc.health;
    let url = format!("http://127.0.0.1:{port}{}", h.path);
    step(&format!("health/{}{}", svc.name, batch_suffix(batch)), StepKind::Health, None, &format!("Poll {url} every {} until it answers {} (give up after {}).", h.interval, h.expect_status, h.timeout), true, true, "nothing to undo (read-only)", Params::Health { service: svc.name.clone(), url, expect_status: h.expect_status, interval: h.interval, timeout: h.timeout })
}

fn retire_step(svc: &Service, replicas: u32, batch: Option<(u32, u32)>) -> Step {
    let what = batch.map_or(String::new(), |(i, n)| format!(" (batch {i} of {n})"));
    step(&format!("retire/{}{}", svc.name, batch_suffix(batch)), StepKind::Retire, None, &format!("Stop {replicas} container(s) of `{}:{}`{what}; they are kept for rollback.", svc.image, svc.current), true, true, "start the old containers again", Params::Version { service: svc.name.clone(), image: format!("{}:{}", svc.image, svc.current), replicas, batch })
}

fn cleanup_step(svc: &Service) -> Step {
    step(&format!("cleanup/{}", svc.name), StepKind::Cleanup, None, &format!("Remove the stopped containers of `{}:{}`.", svc.image, svc.current), true, false, "irreversible: the old containers are gone; a rollback would redeploy the old image", Params::Version { service: svc.name.clone(), image: format!("{}:{}", svc.image, svc.current), replicas: svc.replicas, batch: None })
}

/// Adds the hooks of `stage` in declaration order after `deps`; returns what comes next's deps.
fn hooks(b: &mut Builder, spec: &ReleaseSpec, stage: Stage, deps: &[NodeIndex]) -> Vec<NodeIndex> {
    let mut prev = deps.to_vec();
    for c in spec.command.iter().map(|c| c.get_ref()).filter(|c| c.stage == stage) {
        let (reversible, undo) = if c.read_only {
            (true, "nothing to undo (read-only)".to_string())
        } else if let Some(u) = &c.undo {
            (true, format!("run {u:?}"))
        } else {
            (false, "irreversible (pivot): the command has no `undo`; mark it `read_only` or give it an `undo` argv".to_string())
        };
        let n = b.add(step(&format!("command/{}", c.name), StepKind::Command, None, &format!("Run `{}` ({}, timeout {}).", c.argv.get_ref().join(" "), stage.as_str(), c.timeout), c.idempotent || c.read_only, reversible, &undo, Params::Command {
            name: c.name.clone(),
            stage,
            argv: c.argv.get_ref().clone(),
            timeout: c.timeout,
            env: c.env.clone(),
            secret_env: c.secret_env.clone(),
            undo: c.undo.clone(),
        }), &prev);
        prev = vec![n];
    }
    prev
}
