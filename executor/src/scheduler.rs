//! [`Scheduler`]: what the runner decides, apart from what it does. Given the DAG, where each
//! step stands and what has happened so far (a step ended, a stop was asked for), it says which
//! step starts next, what a stop request stops, and how the forward pass ends ([`Verdict`]);
//! [`rollback_order`] and [`compensation`] say what a rollback undoes and how.
//!
//! It does no I/O and knows nothing of tokio, the log or the drivers, so every decision is a
//! plain function of its inputs and unit-tested as one. The runner's `select!` loop
//! (`runner::forward`) is the other half, as in nextest's dispatcher: it turns what happens (a
//! task's result, a step's progress, SIGINT/SIGTERM) into calls here, and carries out the answers
//! (writes the events, spawns and stops the tasks).
//!
//! ```text
//!   task ended ─┐                        ┌─► next_start(): start step i (plan order, ≤ jobs)
//!   progress ───┼─► runner (select!) ───►│   stop_requested(): stop the watchers / stop all
//!   signal ─────┘   writes the events    └─► verdict(): complete, interrupted, pause, roll back
//! ```
//!
//! Which steps a pass runs at all (pending and failed ones; not succeeded ones, and never one in
//! doubt) is a resume rule: [`crate::resume::runs_forward`].

use crate::event::Gate;
use crate::resume::runs_forward;
use crate::state::{RunState, StepState};
use cutover_planner::analysis::Phase;
use cutover_planner::dag::{Params, PauseParams, Plan, Step, StepKind};
use cutover_planner::spec::OnFailure;
use std::collections::{BTreeSet, HashMap};

/// A step that failed, with its (redacted) error.
pub type Failure = (String, String);

/// How a step's task ended, as the scheduler needs to know it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// It succeeded (recorded): its dependents may become ready.
    Succeeded,
    /// It failed (recorded): no new step starts.
    Failed {
        /// The error, redacted.
        error: String,
        /// It could not decide (`StepError::Inconclusive`): the run pauses whatever
        /// `on_failure` says.
        inconclusive: bool,
    },
    /// A stop request ended it before it finished; nothing is recorded (it stays in doubt).
    Stopped,
}

/// What a stop request (SIGINT, SIGTERM) stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// The first: the steps that only wait or watch stop now; the `effectful` others finish.
    StopWatching {
        /// Running steps with effects, which the pass waits for.
        effectful: usize,
    },
    /// The second: every running step stops now, left in doubt, and the pass ends.
    StopAll,
}

/// How a forward pass ends, once nothing runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing failed and nothing was interrupted.
    Complete,
    /// A stop request came; with the step that failed meanwhile, if one did.
    Interrupted {
        /// The first failure.
        failed: Option<Failure>,
    },
    /// A step failed and the run waits for an operator (`on_failure = "pause"`, or the step was
    /// inconclusive).
    Pause {
        /// The first failure.
        failed: Failure,
    },
    /// A step failed and the run rolls back (`on_failure = "rollback"`, the default).
    RollBack {
        /// The first failure.
        failed: Failure,
    },
    /// A step failed before anything with an effect succeeded (only preflight ran, or a dry
    /// run): there is nothing to undo, and "rolled back" would say something happened; the run
    /// fails as it stands.
    Fail {
        /// The first failure.
        failed: Failure,
    },
    /// Nothing failed, and what is left waits behind a gate for `cutover promote` (the first in
    /// plan order).
    AwaitPromotion {
        /// The gate.
        gate: Gate,
    },
}

/// The state of one forward pass: which steps wait for which, which are ready and running, what
/// failed, how many stop requests came.
pub struct Scheduler {
    /// The plan's steps, in plan order.
    order: Vec<Step>,
    /// Each step's index in `order`.
    index: HashMap<String, usize>,
    /// Steps depending on each step.
    dependents: Vec<Vec<usize>>,
    /// Unfinished dependencies of each step: a step is ready when its count reaches zero, so
    /// each completion costs work proportional to its dependents, not to the plan's size.
    waiting: Vec<usize>,
    /// Whether this pass runs each step at all (where the log left it).
    runnable: Vec<bool>,
    ready: BTreeSet<usize>,
    running: BTreeSet<String>,
    /// Running steps that only wait or watch: the first stop request ends them.
    watching: BTreeSet<String>,
    jobs: usize,
    on_failure: OnFailure,
    failed: Option<Failure>,
    /// The first failure was an inconclusive result.
    inconclusive: bool,
    stops: u32,
    /// A dry run: nothing it does changes anything.
    dry_run: bool,
    /// A step with an effect (anything but preflight) succeeded in this run, in a real run.
    changed: bool,
    /// The gate each step waits behind, if any ([`gate_of`]).
    gates: Vec<Option<Gate>>,
    /// Ready steps held back by their gate, never started in this pass.
    held: BTreeSet<usize>,
    /// `cutover promote --full` was given: pauses and analyses are passed without running.
    promoted_full: bool,
}

/// The gate step `step` waits behind in a run standing at `state`, if any: a manual pause not
/// promoted (and no `promote --full`), or, in a run that holds, the first step past the point of
/// no return (a contract migration or any step that cannot be undone) while the hold is not
/// promoted. A dry run waits for nobody.
pub fn gate_of(step: &Step, state: &RunState) -> Option<Gate> {
    if state.dry_run {
        return None;
    }
    if let Params::Pause(PauseParams { duration: None, .. }) = &step.params {
        let gate = Gate::Manual {
            step: step.id.clone(),
        };
        return (!state.promoted_full && !state.promoted.contains(&gate)).then_some(gate);
    }
    let no_return = !undoable(step);
    let hold_released = state
        .promoted
        .iter()
        .any(|g| matches!(g, Gate::Hold { .. }));
    (state.hold && no_return && !hold_released).then(|| Gate::Hold {
        step: step.id.clone(),
    })
}

/// Whether a rollback can undo `step`: it is reversible and not a contract migration. The first
/// step that is not is the point of no return a hold stops before ([`gate_of`]).
pub fn undoable(step: &Step) -> bool {
    step.reversible && step.phase != Some(Phase::Contract)
}

impl Scheduler {
    /// A pass over `plan` from where `state` stands, running up to `jobs` steps at once (at
    /// least one), with `on_failure` the spec's policy.
    pub fn new(plan: &Plan, state: &RunState, jobs: usize, on_failure: OnFailure) -> Self {
        let order: Vec<Step> = plan.steps().cloned().collect();
        let index: HashMap<String, usize> = order
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        let stands = |id: &str| state.steps.get(id).map_or(StepState::Pending, |s| s.state);
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); order.len()];
        let mut waiting: Vec<usize> = vec![0; order.len()];
        for (i, step) in order.iter().enumerate() {
            for d in &step.depends_on {
                dependents[index[d.as_str()]].push(i);
                if stands(d) != StepState::Succeeded {
                    waiting[i] += 1;
                }
            }
        }
        let runnable: Vec<bool> = order.iter().map(|s| runs_forward(stands(&s.id))).collect();
        let gates = order.iter().map(|s| gate_of(s, state)).collect();
        let ready = (0..order.len())
            .filter(|i| waiting[*i] == 0 && runnable[*i])
            .collect();
        Scheduler {
            order,
            index,
            dependents,
            waiting,
            runnable,
            ready,
            running: BTreeSet::new(),
            watching: BTreeSet::new(),
            jobs: jobs.max(1),
            on_failure,
            failed: None,
            inconclusive: false,
            stops: 0,
            dry_run: state.dry_run,
            changed: !state.dry_run
                && state.completed.iter().any(|id| {
                    plan.step(id)
                        .is_some_and(|s| s.kind() != cutover_planner::dag::StepKind::Preflight)
                }),
            gates,
            held: BTreeSet::new(),
            promoted_full: state.promoted_full,
        }
    }

    /// The next step to start, now marked running: the ready step first in plan order, while
    /// fewer than `jobs` run; none once a step failed or a stop was asked for.
    pub fn next_start(&mut self) -> Option<usize> {
        if self.failed.is_some() || self.stops > 0 || self.running.len() >= self.jobs {
            return None;
        }
        loop {
            let i = self.ready.pop_first()?;
            if self.gates[i].is_some() {
                self.held.insert(i);
                continue;
            }
            self.running.insert(self.order[i].id.clone());
            return Some(i);
        }
    }

    /// Whether step `i`, now starting, is passed without running: a pause or an analysis after
    /// `cutover promote --full` (Argo Rollouts' full promotion).
    pub fn skipped(&self, i: usize) -> bool {
        self.promoted_full && matches!(self.order[i].kind(), StepKind::Pause | StepKind::Analysis)
    }

    /// Step `i` of the plan order.
    pub fn step(&self, i: usize) -> &Step {
        &self.order[i]
    }

    /// The running step `id` only waits or watches (`Driver::interruptible`): the first stop
    /// request ends it.
    pub fn watching(&mut self, id: &str) {
        self.watching.insert(id.to_string());
    }

    /// Whether any step runs.
    pub fn has_running(&self) -> bool {
        !self.running.is_empty()
    }

    /// Whether `id` runs (its progress is recorded only then).
    pub fn is_running(&self, id: &str) -> bool {
        self.running.contains(id)
    }

    /// `id`'s task ended (and the runner recorded how).
    pub fn ended(&mut self, id: &str, how: Ended) {
        self.running.remove(id);
        self.watching.remove(id);
        match how {
            Ended::Succeeded => self.succeeded(id),
            Ended::Failed {
                error,
                inconclusive,
            } => {
                if self.failed.is_none() {
                    self.inconclusive = inconclusive;
                    self.failed = Some((id.to_string(), error));
                }
            }
            Ended::Stopped => {}
        }
    }

    /// `id` succeeded: its dependents whose last dependency it was become ready.
    fn succeeded(&mut self, id: &str) {
        let Some(&i) = self.index.get(id) else { return };
        if !self.dry_run && self.order[i].kind() != cutover_planner::dag::StepKind::Preflight {
            self.changed = true;
        }
        for &j in &self.dependents[i] {
            self.waiting[j] -= 1;
            if self.waiting[j] == 0 && self.runnable[j] {
                self.ready.insert(j);
            }
        }
    }

    /// A stop request came (it only comes while steps run): the first stops the steps that only
    /// wait or watch and lets the others finish; a second stops those too.
    pub fn stop_requested(&mut self) -> Interrupt {
        self.stops += 1;
        if self.stops == 1 {
            Interrupt::StopWatching {
                effectful: self.running.len() - self.watching.len(),
            }
        } else {
            Interrupt::StopAll
        }
    }

    /// The first step that failed, with its error.
    pub fn failed(&self) -> Option<&Failure> {
        self.failed.as_ref()
    }

    /// How the pass ends, once nothing runs: interrupted if a stop came; else after a failure,
    /// pause (by policy, or because the step could not decide) or roll back; else complete.
    pub fn verdict(self) -> Verdict {
        if self.stops > 0 {
            return Verdict::Interrupted {
                failed: self.failed,
            };
        }
        let held = self.held.first().and_then(|&i| self.gates[i].clone());
        match self.failed {
            None => match held {
                Some(gate) => Verdict::AwaitPromotion { gate },
                None => Verdict::Complete,
            },
            Some(failed) if self.inconclusive => Verdict::Pause { failed },
            Some(failed) if !self.changed => Verdict::Fail { failed },
            Some(failed) if self.on_failure == OnFailure::Pause => Verdict::Pause { failed },
            Some(failed) => Verdict::RollBack { failed },
        }
    }
}

/// Steps a rollback to `target` would undo, newest first: those that succeeded after `target`
/// (or at all) and are not undone yet. `rollback` and `rollback --dry-run` both use this.
pub fn rollback_order(state: &RunState, target: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for id in state.completed.iter().rev() {
        if Some(id.as_str()) == target {
            break;
        }
        if matches!(
            state.steps[id].state,
            StepState::Succeeded | StepState::Compensating | StepState::CompensationFailed
        ) {
            out.push(id.clone());
        }
    }
    out
}

/// How a rollback deals with one step of [`rollback_order`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compensation {
    /// Its database was put back to its backup earlier in this rollback, which undid it.
    UndoneByRestore {
        /// The database.
        database: String,
    },
    /// An irreversible migration, and the operator asked for `--restore-backup`: restore its
    /// database from this run's backup.
    RestoreBackup,
    /// A pivot: the rollback stops here.
    Pivot,
    /// Undo it with its recorded undo data.
    Undo,
}

/// How a rollback deals with `step`, when `restored` lists the databases it put back to their
/// backup so far and `restore_backup` says whether the operator allowed that.
pub fn compensation(step: &Step, restored: &[String], restore_backup: bool) -> Compensation {
    if let Some(db) = step
        .database()
        .filter(|db| restored.iter().any(|r| r == db))
        && matches!(step.kind(), StepKind::Migrate | StepKind::Backfill)
    {
        return Compensation::UndoneByRestore {
            database: db.to_string(),
        };
    }
    match (
        step.reversible,
        restore_backup && step.kind() == StepKind::Migrate,
    ) {
        (true, _) => Compensation::Undo,
        (false, true) => Compensation::RestoreBackup,
        (false, false) => Compensation::Pivot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Record, RunStarted};
    use crate::log::{FORMAT_VERSION, Header};
    use cutover_planner::dag::{Builder, CommandParams, MigrateParams, Params};
    use cutover_planner::duration::Duration;
    use cutover_planner::spec::Stage;

    fn command(id: &str) -> Step {
        Step {
            id: id.into(),
            phase: None,
            depends_on: vec![],
            description: String::new(),
            idempotent: false,
            reversible: true,
            undo: String::new(),
            params: Params::Command(CommandParams {
                name: id.into(),
                stage: Stage::PostDeploy,
                argv: vec!["true".into()],
                timeout: Duration::from_millis(1000),
                env: Default::default(),
                secret_env: vec![],
                undo: None,
                probe: None,
            }),
            hash: String::new(),
        }
    }

    /// A plan of command steps: `(id, dependencies)`, in plan order.
    fn plan(steps: &[(&str, &[&str])]) -> Plan {
        let mut b = Builder::default();
        let mut nodes = HashMap::new();
        for (id, deps) in steps {
            let deps: Vec<_> = deps.iter().map(|d| nodes[d]).collect();
            nodes.insert(*id, b.add(command(id), &deps));
        }
        let (graph, hash) = b.finish();
        Plan {
            release: "test".into(),
            strategies: Default::default(),
            graph,
            hash,
            downtime: None,
            findings: vec![],
            migrations: vec![],
            hold: false,
        }
    }

    /// `plan`'s run with `events` (after `run_started`) replayed.
    fn state(plan: &Plan, events: Vec<Event>) -> RunState {
        let header = Header {
            format_version: FORMAT_VERSION,
            run_id: "r".into(),
            plan_hash: plan.hash.clone(),
            dry_run: false,
        };
        let started = Event::RunStarted(Box::new(RunStarted {
            run_id: "r".into(),
            plan_hash: plan.hash.clone(),
            step_hashes: plan
                .steps()
                .map(|s| (s.id.clone(), s.hash.clone()))
                .collect(),
            release: "test".into(),
            spec_path: "spec.toml".into(),
            spec_abs: "/spec.toml".into(),
            tool_version: "0".into(),
            user: "u".into(),
            host: "h".into(),
            dry_run: false,
            hold: false,
        }));
        let records: Vec<Record> = std::iter::once(started)
            .chain(events)
            .enumerate()
            .map(|(i, event)| Record {
                seq: i as u64 + 1,
                time: chrono::Utc::now(),
                event,
            })
            .collect();
        RunState::replay(&header, &records).expect("the test's events replay")
    }

    fn succeeded(step: &str, attempt: u32) -> Vec<Event> {
        vec![
            Event::StepStarted {
                step: step.into(),
                attempt,
            },
            Event::StepSucceeded {
                step: step.into(),
                undo: serde_json::Value::Null,
                detail: None,
            },
        ]
    }

    /// Starts what the scheduler lets start; the ids, in order.
    fn start_all(s: &mut Scheduler) -> Vec<String> {
        std::iter::from_fn(|| s.next_start().map(|i| s.step(i).id.clone())).collect()
    }

    const DIAMOND: &[(&str, &[&str])] = &[
        ("command/a", &[]),
        ("command/b", &["command/a"]),
        ("command/c", &["command/a"]),
        ("command/d", &["command/b", "command/c"]),
    ];

    #[test]
    fn a_step_starts_once_all_its_dependencies_succeeded_in_plan_order() {
        let p = plan(DIAMOND);
        let mut s = Scheduler::new(&p, &state(&p, vec![]), 4, OnFailure::Rollback);
        assert_eq!(start_all(&mut s), ["command/a"]);
        s.ended("command/a", Ended::Succeeded);
        assert_eq!(start_all(&mut s), ["command/b", "command/c"]);
        s.ended("command/c", Ended::Succeeded);
        assert_eq!(
            start_all(&mut s),
            Vec::<String>::new(),
            "d still waits for b"
        );
        s.ended("command/b", Ended::Succeeded);
        assert_eq!(start_all(&mut s), ["command/d"]);
        s.ended("command/d", Ended::Succeeded);
        assert!(!s.has_running());
        assert_eq!(s.verdict(), Verdict::Complete);
    }

    #[test]
    fn no_more_than_jobs_steps_run_at_once() {
        let p = plan(&[
            ("command/a", &[]),
            ("command/b", &[]),
            ("command/c", &[]),
            ("command/d", &[]),
        ]);
        let mut s = Scheduler::new(&p, &state(&p, vec![]), 2, OnFailure::Rollback);
        assert_eq!(start_all(&mut s), ["command/a", "command/b"]);
        s.ended("command/b", Ended::Succeeded);
        assert_eq!(start_all(&mut s), ["command/c"]);
        // `jobs` 0 means one at a time, not none.
        let mut one = Scheduler::new(&p, &state(&p, vec![]), 0, OnFailure::Rollback);
        assert_eq!(start_all(&mut one), ["command/a"]);
    }

    #[test]
    fn a_resumed_pass_skips_what_succeeded_and_runs_what_failed_again() {
        let p = plan(DIAMOND);
        let mut events = succeeded("command/a", 1);
        events.extend(succeeded("command/c", 1));
        events.push(Event::StepStarted {
            step: "command/b".into(),
            attempt: 1,
        });
        events.push(Event::StepFailed {
            step: "command/b".into(),
            error: "boom".into(),
        });
        let mut s = Scheduler::new(&p, &state(&p, events), 4, OnFailure::Rollback);
        assert_eq!(start_all(&mut s), ["command/b"]);
        s.ended("command/b", Ended::Succeeded);
        assert_eq!(start_all(&mut s), ["command/d"]);
    }

    #[test]
    fn a_failure_starts_nothing_more_and_ends_by_the_policy() {
        for (policy, inconclusive, pause) in [
            (OnFailure::Rollback, false, false),
            (OnFailure::Pause, false, true),
            // A step that could not decide pauses whatever the policy says.
            (OnFailure::Rollback, true, true),
        ] {
            let p = plan(&[
                ("command/x", &[]),
                ("command/a", &["command/x"]),
                ("command/b", &["command/x"]),
                ("command/c", &["command/x"]),
            ]);
            let mut s = Scheduler::new(&p, &state(&p, vec![]), 2, policy);
            // Something with an effect succeeded first: there is something to roll back.
            assert_eq!(start_all(&mut s), ["command/x"]);
            s.ended("command/x", Ended::Succeeded);
            assert_eq!(start_all(&mut s), ["command/a", "command/b"]);
            s.ended(
                "command/a",
                Ended::Failed {
                    error: "first".into(),
                    inconclusive,
                },
            );
            assert_eq!(start_all(&mut s), Vec::<String>::new());
            // A later failure is recorded but does not replace the first.
            s.ended(
                "command/b",
                Ended::Failed {
                    error: "second".into(),
                    inconclusive: !inconclusive,
                },
            );
            let failed = ("command/a".to_string(), "first".to_string());
            let expected = if pause {
                Verdict::Pause { failed }
            } else {
                Verdict::RollBack { failed }
            };
            assert_eq!(
                s.verdict(),
                expected,
                "{policy:?}, inconclusive {inconclusive}"
            );
        }
    }

    #[test]
    fn a_failure_before_anything_changed_fails_the_run_instead_of_rolling_back_nothing() {
        for (policy, inconclusive) in [
            (OnFailure::Rollback, false),
            (OnFailure::Pause, false),
            (OnFailure::Rollback, true),
        ] {
            let p = plan(&[("command/a", &[]), ("command/b", &["command/a"])]);
            let mut s = Scheduler::new(&p, &state(&p, vec![]), 2, policy);
            assert_eq!(start_all(&mut s), ["command/a"]);
            s.ended(
                "command/a",
                Ended::Failed {
                    error: "e".into(),
                    inconclusive,
                },
            );
            let failed = ("command/a".to_string(), "e".to_string());
            // An inconclusive gate still pauses: an operator decides.
            let expected = if inconclusive {
                Verdict::Pause { failed }
            } else {
                Verdict::Fail { failed }
            };
            assert_eq!(
                s.verdict(),
                expected,
                "{policy:?}, inconclusive {inconclusive}"
            );
        }
    }

    #[test]
    fn the_first_stop_ends_the_watchers_and_the_second_everything() {
        let p = plan(&[
            ("command/a", &[]),
            ("command/b", &[]),
            ("command/c", &[]),
            ("command/d", &[]),
        ]);
        let mut s = Scheduler::new(&p, &state(&p, vec![]), 3, OnFailure::Rollback);
        assert_eq!(start_all(&mut s).len(), 3);
        s.watching("command/b");
        assert_eq!(s.stop_requested(), Interrupt::StopWatching { effectful: 2 });
        s.ended("command/b", Ended::Stopped);
        s.ended("command/a", Ended::Succeeded);
        assert_eq!(start_all(&mut s), Vec::<String>::new(), "nothing starts");
        assert_eq!(s.stop_requested(), Interrupt::StopAll);
        s.ended(
            "command/c",
            Ended::Failed {
                error: "killed".into(),
                inconclusive: false,
            },
        );
        assert_eq!(
            s.verdict(),
            Verdict::Interrupted {
                failed: Some(("command/c".into(), "killed".into()))
            }
        );
    }

    #[test]
    fn a_rollback_undoes_newest_first_down_to_its_target() {
        let p = plan(DIAMOND);
        let mut events = succeeded("command/a", 1);
        events.extend(succeeded("command/c", 1));
        events.extend(succeeded("command/b", 1));
        events.push(Event::CompensationStarted {
            step: "command/b".into(),
        });
        let st = state(&p, events.clone());
        assert_eq!(
            rollback_order(&st, None),
            ["command/b", "command/c", "command/a"]
        );
        assert_eq!(
            rollback_order(&st, Some("command/a")),
            ["command/b", "command/c"]
        );
        events.push(Event::CompensationSucceeded {
            step: "command/b".into(),
        });
        let st = state(&p, events);
        assert_eq!(rollback_order(&st, None), ["command/c", "command/a"]);
    }

    #[test]
    fn a_rollback_stops_at_a_pivot_unless_a_backup_may_be_restored() {
        let mut migrate = command("migrate/contract/V2__x");
        migrate.params = Params::Migrate(MigrateParams {
            database: "main".into(),
            url_env: "DB".into(),
            version: 2,
            file: "V2__x.sql".into(),
            checksum: "c".into(),
            transactional: true,
            lock_timeout: Duration::from_millis(1000),
            statement_timeout: Duration::from_millis(1000),
            statements: vec![],
            generated_sql: None,
            undo_sql: None,
            sql: vec![],
            records_history: true,
            refinery_checksum: "r".into(),
        });
        migrate.reversible = false;
        assert_eq!(compensation(&migrate, &[], false), Compensation::Pivot);
        assert_eq!(
            compensation(&migrate, &[], true),
            Compensation::RestoreBackup
        );
        assert_eq!(
            compensation(&migrate, &["main".into()], false),
            Compensation::UndoneByRestore {
                database: "main".into()
            }
        );
        let mut hook = command("command/a");
        assert_eq!(
            compensation(&hook, &["main".into()], true),
            Compensation::Undo
        );
        hook.reversible = false;
        // Only a migration's database has a backup to restore.
        assert_eq!(compensation(&hook, &[], true), Compensation::Pivot);
    }
}
