//! The runner against fake drivers and a fake container runtime: what it writes to the log and
//! asks of the drivers when steps succeed, fail, cannot decide, are stopped, or were left in
//! doubt. The real drivers are tested against real servers in `tests/it`.

use super::forward::Stops;
use super::{RunOptions, Session};
use crate::driver::{BoxFuture, Done, Driver, Drivers, Job, Probe, StepContext, StepParams};
use crate::error::{ExecError, StepError};
use crate::event::{Event, Outcome};
use crate::redact::Redactor;
use crate::report::Silent;
use crate::runtime::{Container, ContainerRuntime, NewContainer, RuntimeError};
use crate::session::{Backend, start};
use crate::state::StepState;
use crate::store::Store;
use cutover_planner::dag::{
    Builder, CommandParams, DeployParams, Params, PauseParams, Plan, Step, StepKind,
};
use cutover_planner::duration::Duration as SpecDuration;
use cutover_planner::spec::{OnFailure, Stage};
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// What a fake step does when it runs.
#[derive(Clone, Copy)]
enum Act {
    /// Succeeds after `ms`.
    Succeed(u64),
    /// Fails (a gate that failed).
    Fail,
    /// Cannot decide.
    Inconclusive,
    /// Never ends (until stopped).
    Hang,
}

/// What the fakes did, in order: `run <id>`, `undo <id> <undo data>`, `probe <id>`.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A driver for the steps of parameters `P` that does what its script says.
struct Fake<P> {
    acts: HashMap<String, Act>,
    /// What a probe answers, by step; a step not here cannot be probed.
    probes: HashMap<String, Probe<String>>,
    journal: Journal,
    /// Tells the test each step that started.
    started: mpsc::UnboundedSender<String>,
    /// Steps running now, and the most that ever ran at once.
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    interruptible: bool,
    params: PhantomData<fn() -> P>,
}

impl<P: StepParams> Driver for Fake<P> {
    type Params = P;
    type Undo = String;

    fn run(&self, step: Job<P>, _ctx: StepContext) -> BoxFuture<Result<Done<String>, StepError>> {
        self.journal.push(format!("run {}", step.id));
        let _ = self.started.send(step.id.clone());
        let act = self.acts.get(&step.id).copied().unwrap_or(Act::Succeed(0));
        let (running, most) = (self.running.clone(), self.most.clone());
        Box::pin(async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let result = match act {
                Act::Succeed(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(Done {
                        undo: format!("undo-of-{}", step.id),
                        detail: None,
                    })
                }
                Act::Fail => Err(StepError::GateFailed {
                    reason: format!("{} failed", step.id),
                }),
                Act::Inconclusive => Err(StepError::Inconclusive {
                    reason: "too few requests".into(),
                }),
                Act::Hang => std::future::pending().await,
            };
            running.fetch_sub(1, Ordering::SeqCst);
            result
        })
    }

    fn undo(
        &self,
        step: Job<P>,
        undo: String,
        _ctx: StepContext,
    ) -> BoxFuture<Result<(), StepError>> {
        self.journal.push(format!("undo {} {undo}", step.id));
        Box::pin(async { Ok(()) })
    }

    fn probe(
        &self,
        step: Job<P>,
        _ctx: StepContext,
    ) -> BoxFuture<Result<Option<Probe<String>>, StepError>> {
        self.journal.push(format!("probe {}", step.id));
        let answer = self.probes.get(&step.id).cloned();
        Box::pin(async move { Ok(answer) })
    }

    fn interruptible(&self) -> bool {
        self.interruptible
    }
}

/// The fakes' script and what they saw.
#[derive(Default)]
struct Script {
    acts: HashMap<String, Act>,
    probes: HashMap<String, Probe<String>>,
    journal: Journal,
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Script {
    fn act(mut self, id: &str, act: Act) -> Self {
        self.acts.insert(id.into(), act);
        self
    }

    fn fake<P>(&self, interruptible: bool, started: &mpsc::UnboundedSender<String>) -> Fake<P> {
        Fake {
            acts: self.acts.clone(),
            probes: self.probes.clone(),
            journal: self.journal.clone(),
            started: started.clone(),
            running: self.running.clone(),
            most: self.most.clone(),
            interruptible,
            params: PhantomData,
        }
    }

    /// `command` steps run by an effectful fake, `pause` steps by an interruptible one; the
    /// receiver hears each step that started.
    fn drivers(&self, base: Drivers) -> (Drivers, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut d = base;
        d.insert(StepKind::Command, self.fake::<CommandParams>(false, &tx));
        d.insert(StepKind::Pause, self.fake::<PauseParams>(true, &tx));
        (d, rx)
    }
}

fn step(id: &str, params: Params) -> Step {
    Step {
        id: id.into(),
        phase: None,
        depends_on: vec![],
        description: format!("{id}, faked"),
        idempotent: false,
        reversible: true,
        undo: String::new(),
        params,
        hash: String::new(),
    }
}

fn command(id: &str) -> Step {
    step(
        id,
        Params::Command(CommandParams {
            name: id.into(),
            stage: Stage::PostDeploy,
            argv: vec!["true".into()],
            timeout: SpecDuration::from_millis(1000),
            env: BTreeMap::new(),
            secret_env: vec![],
            undo: None,
            probe: None,
        }),
    )
}

fn pause(id: &str) -> Step {
    step(
        id,
        Params::Pause(PauseParams {
            service: "api".into(),
            duration: Some(SpecDuration::from_millis(60_000)),
            watch: None,
        }),
    )
}

/// A manual gate: a pause without a duration (`pause = "manual"`).
fn manual_pause(id: &str) -> Step {
    step(
        id,
        Params::Pause(PauseParams {
            service: "api".into(),
            duration: None,
            watch: None,
        }),
    )
}

fn deploy(id: &str, ports: Vec<u16>) -> Step {
    step(
        id,
        Params::Deploy(DeployParams {
            service: "api".into(),
            image: "api:2".into(),
            version: "2".into(),
            replicas: ports.len() as u32,
            ports,
            batch: None,
            env: BTreeMap::new(),
            secret_env: vec![],
        }),
    )
}

/// A plan of `steps`, each after the ones it names (earlier in the list).
fn plan(steps: Vec<(Step, &[&str])>) -> Plan {
    let mut b = Builder::default();
    let mut nodes = HashMap::new();
    for (s, deps) in steps {
        let deps: Vec<_> = deps.iter().map(|d| nodes[*d]).collect();
        let id = s.id.clone();
        nodes.insert(id, b.add(s, &deps));
    }
    let (graph, hash) = b.finish();
    Plan {
        release: "fake".into(),
        strategies: BTreeMap::new(),
        graph,
        hash,
        downtime: None,
        findings: vec![],
        migrations: vec![],
        hold: false,
    }
}

/// A run of `plan` started in a fresh state directory (kept while the test lives).
async fn started(
    plan: Plan,
    jobs: usize,
    on_failure: OnFailure,
) -> (tempfile::TempDir, Session, RunOptions) {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, "").unwrap();
    let store = Store::new(&dir.path().join("state"));
    let session = start(
        &Backend::Files,
        &store,
        plan,
        &spec,
        crate::session::NewRun::default(),
        Box::new(Silent),
    )
    .await
    .unwrap();
    let opts = RunOptions {
        jobs,
        on_failure,
        ..started_opts(&session)
    };
    (dir, session, opts)
}

/// Options for a pass over `session`: one step at a time, rollback on failure.
fn started_opts(session: &Session) -> RunOptions {
    RunOptions {
        jobs: 1,
        on_failure: OnFailure::Rollback,
        ctx: StepContext::new(
            session.dir.clone(),
            session.dir.clone(),
            Arc::new(Redactor::default()),
        ),
        restore_backup: false,
    }
}

/// `plan` run forward to its end with `jobs` at once and `on_failure = "rollback"`, the drivers
/// acting as `script` says: the state directory (kept while the test lives), the session, and
/// the run's result.
async fn forward(
    plan: Plan,
    script: &Script,
    jobs: usize,
) -> (tempfile::TempDir, Session, crate::runner::ForwardResult) {
    let (drivers, _started) = script.drivers(Drivers::default());
    let (dir, mut session, opts) = started(plan, jobs, OnFailure::Rollback).await;
    let r = session
        .forward_until(&drivers, &opts, no_stops())
        .await
        .unwrap();
    (dir, session, r)
}

fn state_of(session: &Session, id: &str) -> StepState {
    session.state.steps[id].state
}

/// The step ids of the events of `kind` this session wrote, in order.
fn logged(session: &Session, kind: &str) -> Vec<String> {
    let contents = crate::log::read_log(&session.dir.join(crate::store::LOG_FILE)).unwrap();
    contents
        .records
        .iter()
        .filter(|r| crate::state::event_kind(&r.event) == kind)
        .filter_map(|r| r.event.step().map(String::from))
        .collect()
}

/// Nothing stops the run.
fn no_stops() -> Stops {
    Stops::Channel(mpsc::unbounded_channel().1)
}

#[tokio::test]
async fn a_failed_step_rolls_back_what_succeeded_newest_first_with_its_undo_data() {
    let p = plan(vec![
        (command("command/a"), &[]),
        (command("command/b"), &["command/a"]),
        (command("command/c"), &["command/b"]),
        (command("command/d"), &["command/c"]),
    ]);
    let script = Script::default().act("command/c", Act::Fail);
    let (_dir, session, r) = forward(p, &script, 4).await;
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert_eq!(
        r.failed,
        Some((
            "command/c".into(),
            "analysis gate failed: command/c failed".into()
        ))
    );
    assert_eq!(
        script.journal.lines(),
        [
            "run command/a",
            "run command/b",
            "run command/c",
            "undo command/b undo-of-command/b",
            "undo command/a undo-of-command/a",
        ]
    );
    assert_eq!(
        logged(&session, "compensation_succeeded"),
        ["command/b", "command/a"]
    );
    assert_eq!(state_of(&session, "command/c"), StepState::Failed);
    assert_eq!(state_of(&session, "command/d"), StepState::Pending);
}

#[tokio::test]
async fn a_rollback_stops_at_a_pivot() {
    let mut pivot = command("command/b");
    pivot.reversible = false;
    pivot.undo = "it drops the old column".into();
    let p = plan(vec![
        (command("command/a"), &[]),
        (pivot, &["command/a"]),
        (command("command/c"), &["command/b"]),
    ]);
    let script = Script::default().act("command/c", Act::Fail);
    let (_dir, session, r) = forward(p, &script, 1).await;
    assert_eq!(r.outcome, Outcome::RollbackStopped);
    assert_eq!(
        r.stopped_at,
        Some((
            "command/b".into(),
            "`command/b` cannot be undone: it drops the old column".into()
        ))
    );
    assert!(!script.journal.lines().iter().any(|l| l.starts_with("undo")));
    assert_eq!(state_of(&session, "command/a"), StepState::Succeeded);
}

#[tokio::test]
async fn an_inconclusive_gate_pauses_the_run_whatever_on_failure_says() {
    let p = plan(vec![
        (command("command/a"), &[]),
        (command("command/gate"), &["command/a"]),
        (command("command/b"), &["command/gate"]),
    ]);
    let script = Script::default().act("command/gate", Act::Inconclusive);
    let (_dir, session, r) = forward(p, &script, 2).await;
    assert_eq!(r.outcome, Outcome::Paused);
    assert_eq!(
        session.state.paused.as_deref(),
        Some("step `command/gate` failed: inconclusive: too few requests")
    );
    assert_eq!(state_of(&session, "command/a"), StepState::Succeeded);
    assert_eq!(state_of(&session, "command/b"), StepState::Pending);
    assert!(logged(&session, "compensation_started").is_empty());
}

#[tokio::test]
async fn no_more_steps_run_at_once_than_jobs() {
    let ids: Vec<String> = (0..6).map(|i| format!("command/s{i}")).collect();
    let p = plan(ids.iter().map(|id| (command(id), &[][..])).collect());
    let mut script = Script::default();
    for id in &ids {
        script = script.act(id, Act::Succeed(30));
    }
    let (_dir, session, r) = forward(p, &script, 2).await;
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_eq!(script.most.load(Ordering::SeqCst), 2);
    // Started in plan order.
    assert_eq!(logged(&session, "step_started"), ids);
}

#[tokio::test]
async fn a_stop_ends_waiting_steps_at_once_lets_effects_finish_and_starts_nothing_new() {
    let p = plan(vec![
        (command("command/a"), &[]),
        (pause("pause/api"), &[]),
        (command("command/b"), &["command/a"]),
    ]);
    let script = Script::default()
        .act("command/a", Act::Succeed(200))
        .act("pause/api", Act::Hang);
    let (drivers, mut started_rx) = script.drivers(Drivers::default());
    let (_dir, mut session, opts) = started(p, 4, OnFailure::Rollback).await;
    let (stop, stops) = mpsc::unbounded_channel();
    let request = async {
        for _ in 0..2 {
            started_rx.recv().await;
        }
        stop.send(()).unwrap();
    };
    let (r, ()) = tokio::join!(
        session.forward_until(&drivers, &opts, Stops::Channel(stops)),
        request
    );
    assert_eq!(r.unwrap().outcome, Outcome::Interrupted);
    assert_eq!(state_of(&session, "command/a"), StepState::Succeeded);
    // Left in doubt: a resume probes it.
    assert_eq!(state_of(&session, "pause/api"), StepState::Started);
    assert_eq!(state_of(&session, "command/b"), StepState::Pending);
}

#[tokio::test]
async fn a_second_stop_leaves_the_running_steps_in_doubt() {
    let p = plan(vec![(command("command/a"), &[]), (pause("pause/api"), &[])]);
    let script = Script::default()
        .act("command/a", Act::Hang)
        .act("pause/api", Act::Hang);
    let (drivers, mut started_rx) = script.drivers(Drivers::default());
    let (_dir, mut session, opts) = started(p, 4, OnFailure::Rollback).await;
    let (stop, stops) = mpsc::unbounded_channel();
    let request = async {
        for _ in 0..2 {
            started_rx.recv().await;
        }
        stop.send(()).unwrap();
        stop.send(()).unwrap();
    };
    let (r, ()) = tokio::join!(
        session.forward_until(&drivers, &opts, Stops::Channel(stops)),
        request
    );
    assert_eq!(r.unwrap().outcome, Outcome::Interrupted);
    assert_eq!(session.state.in_doubt(), ["command/a", "pause/api"]);
}

/// Leaves `id` started with no end recorded, as a crash would.
async fn left_in_doubt(session: &mut Session, id: &str) {
    session
        .emit(Event::StepStarted {
            step: id.into(),
            attempt: 1,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_step_in_doubt_its_probe_finds_done_is_not_run_again() {
    let p = plan(vec![
        (command("command/a"), &[]),
        (command("command/b"), &["command/a"]),
    ]);
    let mut script = Script::default();
    script
        .probes
        .insert("command/a".into(), Probe::Done("found".into()));
    let (drivers, _started) = script.drivers(Drivers::default());
    let (_dir, mut session, opts) = started(p, 1, OnFailure::Rollback).await;
    left_in_doubt(&mut session, "command/a").await;
    session.settle_in_doubt(&drivers, &opts, &[]).await.unwrap();
    assert_eq!(state_of(&session, "command/a"), StepState::Succeeded);
    assert_eq!(session.state.steps["command/a"].undo, Some("found".into()));
    let r = session
        .forward_until(&drivers, &opts, no_stops())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_eq!(script.journal.lines(), ["probe command/a", "run command/b"]);
}

#[tokio::test]
async fn a_step_in_doubt_nobody_can_judge_runs_again_only_if_idempotent_or_retried() {
    let mut idempotent = command("command/i");
    idempotent.idempotent = true;
    let p = plan(vec![(idempotent, &[]), (command("command/n"), &[])]);
    let script = Script::default();
    let (drivers, _started) = script.drivers(Drivers::default());
    let (_dir, mut session, opts) = started(p, 1, OnFailure::Rollback).await;
    left_in_doubt(&mut session, "command/i").await;
    left_in_doubt(&mut session, "command/n").await;
    let refused = session.settle_in_doubt(&drivers, &opts, &[]).await;
    assert!(
        matches!(&refused, Err(ExecError::InDoubt { step }) if step == "command/n"),
        "{:?}",
        refused.err()
    );
    // The idempotent one was settled (it runs again) before the refusal.
    assert_eq!(state_of(&session, "command/i"), StepState::Failed);
    session
        .settle_in_doubt(&drivers, &opts, &["command/n".into()])
        .await
        .unwrap();
    assert_eq!(
        session.state.steps["command/n"].error.as_deref(),
        Some(
            "interrupted before its end was recorded; the operator checked it and asked for a retry"
        )
    );
    let r = session
        .forward_until(&drivers, &opts, no_stops())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_eq!(session.state.steps["command/n"].attempts, 2);
}

/// A container engine in memory: what the container drivers asked of it.
#[derive(Default)]
struct FakeRuntime {
    containers: Mutex<Vec<Container>>,
    calls: Mutex<Vec<String>>,
}

impl FakeRuntime {
    fn call(&self, what: String) {
        self.calls.lock().unwrap().push(what);
    }
}

impl ContainerRuntime for FakeRuntime {
    fn image_exists(&self, _image: &str) -> BoxFuture<Result<bool, RuntimeError>> {
        Box::pin(async { Ok(true) })
    }

    fn list(
        &self,
        labels: BTreeMap<String, String>,
    ) -> BoxFuture<Result<Vec<Container>, RuntimeError>> {
        let found: Vec<Container> = self
            .containers
            .lock()
            .unwrap()
            .iter()
            .filter(|c| labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
            .cloned()
            .collect();
        Box::pin(async move { Ok(found) })
    }

    fn create_and_start(&self, c: NewContainer) -> BoxFuture<Result<String, RuntimeError>> {
        let mut all = self.containers.lock().unwrap();
        let id = format!("c{}", all.len() + 1);
        self.call(format!("create {} {id}", c.name));
        all.push(Container {
            id: id.clone(),
            name: c.name,
            image: c.image,
            labels: c.labels,
            running: true,
            health: None,
        });
        Box::pin(async move { Ok(id) })
    }

    fn start(&self, id: String) -> BoxFuture<Result<(), RuntimeError>> {
        self.call(format!("start {id}"));
        Box::pin(async { Ok(()) })
    }

    fn stop(&self, id: String, _grace: Duration) -> BoxFuture<Result<(), RuntimeError>> {
        self.call(format!("stop {id}"));
        for c in self.containers.lock().unwrap().iter_mut() {
            if c.id == id {
                c.running = false;
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn remove(&self, id: String) -> BoxFuture<Result<(), RuntimeError>> {
        self.call(format!("remove {id}"));
        self.containers.lock().unwrap().retain(|c| c.id != id);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn a_rollback_removes_the_containers_a_deploy_started() {
    let p = plan(vec![
        (deploy("deploy/api", vec![4001, 4002]), &[]),
        (command("command/smoke"), &["deploy/api"]),
    ]);
    let runtime = Arc::new(FakeRuntime::default());
    let script = Script::default().act("command/smoke", Act::Fail);
    let (drivers, _started) = script.drivers(Drivers::with_runtime(runtime.clone()));
    let (_dir, mut session, opts) = started(p, 2, OnFailure::Rollback).await;
    let r = session
        .forward_until(&drivers, &opts, no_stops())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert_eq!(
        *runtime.calls.lock().unwrap(),
        [
            "create api-2-4001 c1",
            "create api-2-4002 c2",
            "stop c1",
            "remove c1",
            "stop c2",
            "remove c2",
        ]
    );
    assert!(runtime.containers.lock().unwrap().is_empty());
    assert_eq!(state_of(&session, "deploy/api"), StepState::Compensated);
}

#[tokio::test]
async fn a_manual_gate_holds_what_follows_it_until_promoted_and_full_skips_the_later_pauses() {
    use crate::event::Gate;
    let p = plan(vec![
        (command("command/a"), &[]),
        (manual_pause("pause/api/10"), &["command/a"]),
        (command("command/b"), &["pause/api/10"]),
        (pause("pause/api/50"), &["command/b"]),
        (command("command/c"), &["pause/api/50"]),
        // Beside the gate, not behind it: runs before the pass stops.
        (command("command/side"), &[]),
    ]);
    let script = Script::default();
    let (_dir, mut session, r) = forward(p, &script, 1).await;
    assert_eq!(r.outcome, Outcome::Paused);
    let gate = Gate::Manual {
        step: "pause/api/10".into(),
    };
    assert_eq!(session.state.gate, Some(gate.clone()));
    assert_eq!(
        script.journal.lines(),
        ["run command/a", "run command/side"]
    );
    assert_eq!(state_of(&session, "pause/api/10"), StepState::Pending);
    // A pass that is not promoted stops at the same gate, running nothing.
    let (drivers, _started) = script.drivers(Drivers::default());
    let opts = started_opts(&session);
    let again = session
        .forward_until(&drivers, &opts, no_stops())
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Paused);
    assert_eq!(script.journal.lines().len(), 2);
    // Promoted with --full: the gate opens and the timed pause is passed without waiting.
    session.promote(true).await.unwrap();
    assert_eq!(session.state.gate, None);
    let r = session
        .forward_until(&drivers, &opts, no_stops())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_eq!(
        script.journal.lines(),
        [
            "run command/a",
            "run command/side",
            "run command/b",
            "run command/c"
        ]
    );
    assert_eq!(
        session.state.steps["pause/api/10"].detail.as_deref(),
        Some("skipped: promoted with --full")
    );
    assert_eq!(
        session.state.steps["pause/api/50"].detail.as_deref(),
        Some("skipped: promoted with --full")
    );
}

#[tokio::test]
async fn a_hold_stops_before_the_first_step_that_cannot_be_undone() {
    let mut pivot = command("command/drop");
    pivot.reversible = false;
    let p = plan(vec![
        (command("command/a"), &[]),
        (pivot, &["command/a"]),
        (command("command/b"), &["command/drop"]),
    ]);
    let script = Script::default();
    let (drivers, _started) = script.drivers(Drivers::default());
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, "").unwrap();
    let store = Store::new(&dir.path().join("state"));
    let how = crate::session::NewRun {
        dry_run: false,
        hold: true,
    };
    let mut session = start(&Backend::Files, &store, p, &spec, how, Box::new(Silent))
        .await
        .unwrap();
    let opts = started_opts(&session);
    let r = session
        .forward_until(&drivers, &opts, no_stops())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Paused);
    assert_eq!(
        session.state.gate,
        Some(crate::event::Gate::Hold {
            step: "command/drop".into()
        })
    );
    assert_eq!(script.journal.lines(), ["run command/a"]);
    session.promote(false).await.unwrap();
    let r = session
        .forward_until(&drivers, &opts, no_stops())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_eq!(
        script.journal.lines(),
        ["run command/a", "run command/drop", "run command/b"]
    );
}
