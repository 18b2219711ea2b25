//! Every secret a plan names (each database's `url_env`, each `secret_env`) is kept out of every
//! place the executor writes or shows text: the event log, a step's failure as the operator and
//! the log see it, and the plan as rendered and recorded. Checked for a plan with a step of every
//! kind, and for each step kind alone, so a kind whose secrets the redactor does not know (as
//! migrate and backfill URLs once were, on resume and rollback) fails here.

use cutover_executor::drivers::command::CommandError;
use cutover_executor::error::{StepError, StepFailure};
use cutover_executor::event::Event;
use cutover_executor::log::LogWriter;
use cutover_executor::redact::Redactor;
use cutover_planner::dag::{Params, Plan, Step, StepKind};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The database URL: both its password and its host are secret (the whole value is).
const DB_URL: &str = "postgres://app:db-pass-8f3k@db-7c1f.internal:5432/app";
const DB_SECRETS: [&str; 2] = ["db-pass-8f3k", "db-7c1f.internal"];
const API_TOKEN: &str = "api-token-6d1e-c0ffee";
const HOOK_TOKEN: &str = "hook-token-93ab-beef";

const SPEC: &str = r#"
[release]
name = "redaction"

[[service]]
name = "api"
image = "api"
current = "1.0.0"
target = "1.1.0"
port = 3333
candidate_port = 3334
secret_env = ["REDACTION_API_TOKEN"]

[service.health]
path = "/health"

[service.strategy]
kind = "canary"
steps = [50, 100]
pause = "1s"
analysis = { window = "1s", max_error_rate = 0.01, max_p99_latency = "500ms", min_requests = 1 }

[[database]]
name = "main"
url_env = "REDACTION_DATABASE_URL"
migrations = "MIGRATIONS"
baseline = 1
backup = { dir = "backups" }

[router]
kind = "nginx"
upstream_file = "upstreams.conf"
access_log = "access.json"

[[command]]
name = "smoke"
stage = "post-deploy"
argv = ["true"]
secret_env = ["REDACTION_HOOK_TOKEN"]
"#;

/// The secret values `step` names, by what its kind takes: written out here, not derived the
/// way the redactor derives them, so the two are checked against each other.
fn named_by(step: &Step) -> Vec<&'static str> {
    match &step.params {
        Params::Preflight(_) => [&DB_SECRETS[..], &[API_TOKEN, HOOK_TOKEN]].concat(),
        Params::Backup(_) | Params::Migrate(_) | Params::Backfill(_) => DB_SECRETS.to_vec(),
        Params::Deploy(_) => vec![API_TOKEN],
        Params::Command(_) => vec![HOOK_TOKEN],
        Params::Health(_)
        | Params::Shift(_)
        | Params::Pause(_)
        | Params::Analysis(_)
        | Params::Retire(_)
        | Params::Cleanup(_) => Vec::new(),
    }
}

/// Text quoting every secret, raw and as it appears inside JSON.
fn leaky() -> String {
    let all = format!("{DB_URL} {API_TOKEN} {HOOK_TOKEN}");
    format!("{all} / {}", serde_json::to_string(&all).unwrap())
}

fn planned(dir: &Path) -> Plan {
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations-sample/rename");
    let spec = SPEC.replace("MIGRATIONS", &migrations.display().to_string());
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    // SAFETY: nextest runs each test in a process of its own; no other thread reads these.
    unsafe {
        std::env::set_var("REDACTION_DATABASE_URL", DB_URL);
        std::env::set_var("REDACTION_API_TOKEN", API_TOKEN);
        std::env::set_var("REDACTION_HOOK_TOKEN", HOOK_TOKEN);
    }
    cutover_planner::plan_file(&dir.join("spec.toml"))
        .unwrap()
        .plan
}

/// `step` alone, as a plan: what a resume or rollback of a run that has only it would redact.
fn alone(plan: &Plan, step: &Step) -> Plan {
    let mut step = step.clone();
    step.depends_on.clear();
    Plan::from_steps(
        plan.release.clone(),
        plan.hash.clone(),
        vec![step],
        BTreeMap::new(),
    )
    .unwrap()
}

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "{what} shows the secret {s:?}:\n{text}");
    }
}

/// What the log records and the operator reads when a step fails with a message that quotes
/// every secret (a command's stderr, a driver's error naming a URL).
fn failure_text(redactor: &Redactor) -> String {
    let e = StepError::from(CommandError::Exited {
        argv: "sh -c env".into(),
        code: 2,
        output: format!("; stderr: {}", leaky()),
    });
    StepFailure::new(&e, redactor).as_str().to_string()
}

/// The event log as written with `redactor`, given events that quote every secret.
fn logged(path: &Path, plan: &Plan, redactor: Redactor) -> String {
    let header = cutover_executor::store::header("r", plan, false, false);
    let mut log = LogWriter::create(path, &header).unwrap();
    log.set_redactor(redactor);
    let step = plan.steps().next().unwrap().id.clone();
    let events = [
        Event::StepFailed {
            step: step.clone(),
            error: leaky(),
        },
        Event::StepSucceeded {
            step: step.clone(),
            undo: serde_json::json!({ "note": leaky() }),
            detail: Some(leaky()),
        },
        Event::StepProgress {
            step: step.clone(),
            data: serde_json::json!({ "message": leaky() }),
            amount: None,
        },
        Event::Paused {
            reason: leaky(),
            gate: None,
        },
        Event::BackupRestored {
            step: step.clone(),
            database: "main".into(),
            backup: "backup/main".into(),
            detail: leaky(),
        },
        Event::RollbackStopped {
            step: step.clone(),
            reason: leaky(),
        },
        Event::CompensationFailed {
            step,
            error: leaky(),
        },
    ];
    for e in events {
        log.append(e).unwrap();
    }
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

#[test]
fn every_secret_of_every_step_kind_is_redacted_from_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let plan = planned(dir.path());
    let kinds: BTreeSet<StepKind> = plan.steps().map(Step::kind).collect();
    assert_eq!(kinds.len(), 12, "a step of every kind: {kinds:?}");
    let all = [&DB_SECRETS[..], &[API_TOKEN, HOOK_TOKEN]].concat();
    // The plan itself holds variable names, never values, wherever it is shown or recorded.
    assert_clean(
        "plan text",
        &cutover_planner::render::plan_text(&plan),
        &all,
    );
    assert_clean(
        "plan JSON",
        &cutover_planner::render::plan_json(&plan),
        &all,
    );
    // The whole plan: every secret.
    let redactor = Redactor::for_plan(&plan);
    assert_clean("a step failure", &failure_text(&redactor), &all);
    let log = logged(&dir.path().join("events.log"), &plan, redactor);
    assert_clean("the event log", &log, &all);
    // Each step alone: the secrets its kind takes.
    for (i, step) in plan.steps().enumerate() {
        let secrets = named_by(step);
        let single = alone(&plan, step);
        let redactor = Redactor::for_plan(&single);
        let what = format!("`{}` alone", step.id);
        assert_clean(
            &format!("{what}: a step failure"),
            &failure_text(&redactor),
            &secrets,
        );
        let log = logged(&dir.path().join(format!("{i}.log")), &single, redactor);
        assert_clean(&format!("{what}: the event log"), &log, &secrets);
    }
}
