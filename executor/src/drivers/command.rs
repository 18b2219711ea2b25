//! `command` steps: run an argv directly (no shell), with a timeout, the spec's environment and
//! the exit code checked. The undo argv is recorded when the step succeeds, so a rollback runs
//! exactly what was planned at the time, even if the spec changed since.
//!
//! Children run in their own process group (a terminal's Ctrl-C reaches cutover, which lets the
//! step finish) and are killed if cutover itself dies (`PR_SET_PDEATHSIG`), so a crashed executor
//! never leaves a command running behind a resume's back.

use crate::driver::{BoxFuture, Done, Driver, Probe, StepContext, StepError};
use cutover_planner::dag::{Params, Step};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Runs `command` steps.
pub struct CommandDriver;

struct Spec {
    argv: Vec<String>,
    timeout: Duration,
    env: Vec<(String, String)>,
    secret_env: Vec<String>,
    undo: Option<Vec<String>>,
    probe: Option<Vec<String>>,
}

fn spec(step: &Step) -> Result<Spec, StepError> {
    match &step.params {
        Params::Command { argv, timeout, env, secret_env, undo, probe, .. } => Ok(Spec {
            argv: argv.clone(),
            timeout: Duration::from_millis(timeout.as_millis()),
            env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            secret_env: secret_env.clone(),
            undo: undo.clone(),
            probe: probe.clone(),
        }),
        _ => Err(StepError(format!("{} is not a command step", step.id))),
    }
}

/// Runs `argv` and returns its exit code, or an error naming what went wrong.
async fn run_argv(argv: &[String], s: &Spec, ctx: &StepContext) -> Result<i32, StepError> {
    for name in &s.secret_env {
        if std::env::var_os(name).is_none() {
            return Err(StepError(format!("environment variable `{name}` (listed in `secret_env`) is not set")));
        }
    }
    let (program, args) = argv.split_first().ok_or_else(|| StepError("empty argv".into()))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&ctx.spec_dir)
        .envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| StepError(format!("cannot start `{program}`: {e}")))?;
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let collect = async {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        (out, err)
    };
    let waited = tokio::time::timeout(s.timeout, async { tokio::join!(child.wait(), collect) }).await;
    match waited {
        Err(_) => {
            if let Some(pid) = pid {
                // The whole group: a shell's children too.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
            Err(StepError(format!("`{}` did not finish within {:?} and was killed", argv.join(" "), s.timeout)))
        }
        Ok((status, (_out, err))) => {
            let status = status.map_err(|e| StepError(format!("waiting for `{program}`: {e}")))?;
            match status.code() {
                Some(code) => {
                    if code != 0 && code != 1 {
                        let tail = tail(&err);
                        return Err(StepError(ctx.redactor.redact(&format!("`{}` exited with status {code}{tail}", argv.join(" ")))));
                    }
                    if code == 1 {
                        // The caller decides whether 1 is an answer (probe) or a failure.
                        return Ok(1);
                    }
                    Ok(0)
                }
                None => Err(StepError(format!("`{}` was killed by a signal", argv.join(" ")))),
            }
        }
    }
}

fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
    if lines.is_empty() { String::new() } else { format!("; stderr: {}", lines.join(" | ")) }
}

fn undo_data(s: &Spec) -> Value {
    json!({ "undo": s.undo })
}

impl Driver for CommandDriver {
    fn run(&self, step: Step, ctx: StepContext) -> BoxFuture<Result<Done, StepError>> {
        Box::pin(async move {
            let s = spec(&step)?;
            match run_argv(&s.argv, &s, &ctx).await? {
                0 => Ok(Done { undo: undo_data(&s), detail: Some(format!("`{}` exited 0", s.argv.join(" "))) }),
                code => Err(StepError(format!("`{}` exited with status {code}", s.argv.join(" ")))),
            }
        })
    }

    fn undo(&self, step: Step, undo: Value, ctx: StepContext) -> BoxFuture<Result<(), StepError>> {
        Box::pin(async move {
            let s = spec(&step)?;
            // Exactly what was recorded when the step ran.
            let argv: Option<Vec<String>> = serde_json::from_value(undo.get("undo").cloned().unwrap_or(Value::Null)).map_err(|e| StepError(format!("recorded undo data is unreadable: {e}")))?;
            let Some(argv) = argv else { return Ok(()) };
            match run_argv(&argv, &s, &ctx).await? {
                0 => Ok(()),
                code => Err(StepError(format!("undo `{}` exited with status {code}", argv.join(" ")))),
            }
        })
    }

    fn probe(&self, step: Step, ctx: StepContext) -> BoxFuture<Result<Option<Probe>, StepError>> {
        Box::pin(async move {
            let s = spec(&step)?;
            let Some(probe) = s.probe.clone() else { return Ok(None) };
            match run_argv(&probe, &s, &ctx).await? {
                0 => Ok(Some(Probe::Done(undo_data(&s)))),
                _ => Ok(Some(Probe::NotDone)),
            }
        })
    }
}
