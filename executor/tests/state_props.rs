//! `RunState` replays any sequence of events, as a damaged or hand-edited log could hold, without
//! panicking: it either rebuilds a state every query answers on, or refuses with a
//! [`ReplayError`](cutover_executor::state::ReplayError) naming the event. `status`, `log` and
//! `resume` all start from this replay, so a panic here would leave an operator with no view of a
//! run at all.

use chrono::{TimeZone, Utc};
use cutover_executor::event::{Amount, Event, Gate, Outcome, ProbeOutcome, Record, RunStarted};
use cutover_executor::log::{FORMAT_VERSION, Header};
use cutover_executor::state::RunState;
use proptest::prelude::*;
use serde_json::json;

/// Two steps of the plan and one that is not in it.
const STEPS: &[&str] = &["migrate/a", "deploy/b", "not/in-plan"];

fn step() -> impl Strategy<Value = String> {
    prop::sample::select(STEPS).prop_map(str::to_string)
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop::sample::select(vec![
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::Paused,
        Outcome::Interrupted,
        Outcome::RolledBack,
        Outcome::RollbackStopped,
    ])
}

fn run_started(dry_run: bool) -> Event {
    Event::RunStarted(Box::new(RunStarted {
        run_id: "r".into(),
        plan_hash: "h".into(),
        step_hashes: STEPS[..2]
            .iter()
            .map(|s| (s.to_string(), format!("hash-{s}")))
            .collect(),
        release: "rel".into(),
        spec_path: "spec.toml".into(),
        spec_abs: "/x/spec.toml".into(),
        tool_version: "0".into(),
        user: "u".into(),
        host: "h".into(),
        dry_run,
        hold: !dry_run,
    }))
}

fn gate() -> impl Strategy<Value = Gate> {
    (step(), any::<bool>()).prop_map(|(step, manual)| {
        if manual {
            Gate::Manual { step }
        } else {
            Gate::Hold { step }
        }
    })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        any::<bool>().prop_map(run_started),
        (any::<u32>(), "[a-z]{0,4}").prop_map(|(pid, host)| Event::Attached {
            pid,
            host,
            command: "resume".into()
        }),
        (step(), 0u32..4).prop_map(|(step, attempt)| Event::StepStarted { step, attempt }),
        (step(), any::<bool>()).prop_map(|(step, has)| Event::StepSucceeded {
            step,
            undo: if has {
                json!({"sql": "x"})
            } else {
                json!(null)
            },
            detail: None,
        }),
        (step(), any::<u32>(), prop::option::of(any::<u64>())).prop_map(|(step, n, total)| {
            Event::StepProgress {
                step,
                data: json!({"cursor": n}),
                amount: Some(Amount {
                    done: n.into(),
                    total,
                    unit: "rows".into(),
                }),
            }
        }),
        (step(), "[a-z ]{0,8}").prop_map(|(step, error)| Event::StepFailed { step, error }),
        (step(), any::<bool>()).prop_map(|(step, done)| Event::StepProbed {
            step,
            outcome: if done {
                ProbeOutcome::Done
            } else {
                ProbeOutcome::NotDone
            },
            undo: json!(null),
        }),
        ("[a-z ]{0,8}", prop::option::of(gate()))
            .prop_map(|(reason, gate)| Event::Paused { reason, gate }),
        (gate(), any::<bool>()).prop_map(|(gate, full)| Event::Promoted {
            gate,
            full,
            user: "u".into()
        }),
        (prop::option::of(step()), "[a-z]{0,4}")
            .prop_map(|(target, reason)| Event::RollbackStarted { target, reason }),
        step().prop_map(|step| Event::CompensationStarted { step }),
        step().prop_map(|step| Event::CompensationSucceeded { step }),
        (step(), "[a-z]{0,4}").prop_map(|(step, error)| Event::CompensationFailed { step, error }),
        (step(), "[a-z]{0,4}").prop_map(|(step, database)| Event::BackupRestored {
            step,
            backup: format!("backup/{database}"),
            database,
            detail: String::new(),
        }),
        (step(), "[a-z ]{0,8}").prop_map(|(step, reason)| Event::RollbackStopped { step, reason }),
        outcome().prop_map(|outcome| Event::RunFinished { outcome }),
    ]
}

fn records(events: Vec<Event>) -> Vec<Record> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Record {
            seq: i as u64 + 1,
            time: Utc.timestamp_opt(1_800_000_000 + i as i64, 0).unwrap(),
            event,
        })
        .collect()
}

/// A run as an executor writes one: each plan step started, then succeeded, failed, left in
/// doubt (probed or not) with progress on the way; maybe a rollback compensating what succeeded,
/// in reverse; maybe a finish. Then up to three edits (an event inserted, removed or two swapped)
/// as a damaged or hand-edited log would have.
fn plausible_run() -> impl Strategy<Value = Vec<Event>> {
    let lifecycle = (0u8..5, 0usize..3, any::<bool>());
    (
        prop::collection::vec(lifecycle, 2),
        any::<bool>(),
        prop::option::of(outcome()),
        prop::collection::vec((0u8..3, any::<prop::sample::Index>(), event()), 0..4),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(steps, rollback, finish, edits, swap_with)| {
            let mut ev = vec![
                run_started(false),
                Event::Attached {
                    pid: 1,
                    host: "h".into(),
                    command: "apply".into(),
                },
            ];
            let mut done = Vec::new();
            for (i, (end, progress, probe_done)) in steps.into_iter().enumerate() {
                let step = STEPS[i].to_string();
                ev.push(Event::StepStarted {
                    step: step.clone(),
                    attempt: 1,
                });
                for n in 0..progress {
                    ev.push(Event::StepProgress {
                        step: step.clone(),
                        data: json!({ "cursor": n }),
                        amount: None,
                    });
                }
                match end {
                    0 | 1 => {
                        ev.push(Event::StepSucceeded {
                            step: step.clone(),
                            undo: json!({}),
                            detail: None,
                        });
                        done.push(step);
                    }
                    2 => ev.push(Event::StepFailed {
                        step,
                        error: "x".into(),
                    }),
                    3 => ev.push(Event::StepProbed {
                        step,
                        outcome: if probe_done {
                            ProbeOutcome::Done
                        } else {
                            ProbeOutcome::NotDone
                        },
                        undo: json!(null),
                    }),
                    _ => {}
                }
            }
            if rollback {
                ev.push(Event::RollbackStarted {
                    target: None,
                    reason: "r".into(),
                });
                for step in done.into_iter().rev() {
                    ev.push(Event::CompensationStarted { step: step.clone() });
                    ev.push(Event::CompensationSucceeded { step });
                }
            }
            if let Some(outcome) = finish {
                ev.push(Event::RunFinished { outcome });
            }
            for (kind, at, extra) in edits {
                let i = 1 + at.index(ev.len());
                match kind {
                    0 => ev.insert(i.min(ev.len()), extra),
                    1 if i < ev.len() => {
                        ev.remove(i);
                    }
                    _ if i < ev.len() => {
                        let j = 1 + swap_with.index(ev.len() - 1);
                        ev.swap(i, j);
                    }
                    _ => {}
                }
            }
            ev
        })
}

fn header() -> Header {
    Header {
        format_version: FORMAT_VERSION,
        run_id: "r".into(),
        plan_hash: "h".into(),
        dry_run: false,
    }
}

/// Every query `status` and `resume` make of a replayed state.
fn query(st: &RunState) {
    let _ = st.in_doubt();
    let _ = st.started();
    let _ = st.complete();
    for r in &st.completed {
        assert!(st.steps.contains_key(r), "completed step {r} has no status");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Any sequence at all: replay answers Ok or a ReplayError naming one of the events.
    #[test]
    fn any_event_sequence_replays_or_is_refused_without_panicking(
        events in prop::collection::vec(event(), 0..40)
    ) {
        let recs = records(events);
        match RunState::replay(&header(), &recs) {
            Ok(st) => {
                prop_assert_eq!(st.events, recs.len() as u64);
                query(&st);
            }
            Err(e) => prop_assert!(
                (1..=recs.len() as u64).contains(&e.seq),
                "the refusal names an event of the log: {}", e
            ),
        }
    }

    /// Runs as an executor writes them, and damaged copies, so the replay gets past the first
    /// events into the step, rollback and finish handling; applying the records one at a time
    /// agrees with replaying them all.
    #[test]
    fn plausible_runs_and_their_damaged_copies_replay_or_are_refused_without_panicking(
        events in plausible_run()
    ) {
        let recs = records(events);
        let whole = RunState::replay(&header(), &recs);
        match &whole {
            Ok(st) => query(st),
            Err(e) => prop_assert!((1..=recs.len() as u64).contains(&e.seq), "{}", e),
        }
        let mut st = RunState::replay(&header(), &[]).unwrap();
        let mut refused = None;
        for r in &recs {
            if let Err(e) = st.apply(r) {
                refused = Some(e.seq);
                break;
            }
        }
        query(&st);
        prop_assert_eq!(refused, whole.as_ref().err().map(|e| e.seq));
    }
}

/// The generator reaches deep states, not only refusals at the second event: many generated runs
/// replay cleanly through several steps, and many are refused somewhere after the start.
#[test]
fn the_generated_runs_reach_past_their_first_events() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut deep_ok, mut late_refusal) = (0, 0);
    for _ in 0..2_000 {
        let recs = records(plausible_run().new_tree(&mut runner).unwrap().current());
        match RunState::replay(&header(), &recs) {
            Ok(st) if st.events >= 6 => deep_ok += 1,
            Err(e) if e.seq >= 6 => late_refusal += 1,
            _ => {}
        }
    }
    eprintln!("deep_ok={deep_ok} late_refusal={late_refusal}");
    assert!(
        deep_ok >= 20,
        "only {deep_ok} of 2,000 runs replayed 6 or more events"
    );
    assert!(
        late_refusal >= 20,
        "only {late_refusal} of 2,000 runs were refused after event 5"
    );
}
