//! `command` steps: run an argv directly (no shell), with a timeout, the spec's environment and
//! the exit code checked. The undo argv is recorded when the step succeeds, so a rollback runs
//! exactly what was planned at the time, even if the spec changed since.
//!
//! Children run in their own process group (a terminal's Ctrl-C reaches cutover, which lets the
//! step finish) and are killed if cutover itself dies (`PR_SET_PDEATHSIG`; a child whose parent
//! died before that call took effect exits at once instead of running the command).
//!
//! `PR_SET_PDEATHSIG` reaches only the direct child: a script's own children (a hook that starts
//! a program, `make`, `npm`) outlive a kill -9 of cutover and may still be working when the next
//! executor resumes. So every process of a step carries [`STEP_MARK`] = `<run id>/<step id>` in
//! its environment (inherited by everything it starts), and before a resume or rollback probes,
//! re-runs or undoes a command step left in doubt, [`CommandDriver`]'s fence finds every process
//! that carries the step's mark (through `/proc/PID/environ`), kills each with its process group,
//! and waits until they are gone. The probe then judges an effect that can no longer change.

use crate::driver::{BoxFuture, Done, Driver, Job, Probe, StepContext, StepError};
use crate::drivers::preflight::EnvError;
use cutover_planner::dag::CommandParams;
use serde::{Deserialize, Serialize};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Runs `command` steps.
pub struct CommandDriver;

/// Why a command (or its undo or probe argv) failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The argv is empty.
    #[error("empty argv")]
    EmptyArgv,
    /// The program could not be started.
    #[error("cannot start `{program}`")]
    Spawn {
        /// The program.
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Waiting for the program failed.
    #[error("waiting for `{program}`")]
    Wait {
        /// The program.
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The command ran past its timeout and was killed, with its process group.
    #[error("`{argv}` did not finish within {timeout:?} and was killed")]
    TimedOut {
        /// The argv, joined.
        argv: String,
        /// The step's timeout.
        timeout: Duration,
    },
    /// The command exited with a failure status.
    #[error("`{argv}` exited with status {code}{output}")]
    Exited {
        /// The argv, joined.
        argv: String,
        /// Its exit status.
        code: i32,
        /// `; stderr: ...; stdout: ...`: the last lines it printed, redacted, or empty.
        output: String,
    },
    /// The undo argv exited with a failure status.
    #[error("undo `{argv}` exited with status {code}{output}")]
    UndoExited {
        /// The argv, joined.
        argv: String,
        /// Its exit status.
        code: i32,
        /// `; stderr: ...; stdout: ...`: the last lines it printed, redacted, or empty.
        output: String,
    },
    /// The command was killed by a signal.
    #[error("`{argv}` was killed by a signal")]
    Signalled {
        /// The argv, joined.
        argv: String,
    },
    /// Processes of an earlier attempt survive SIGKILL (uninterruptible sleep).
    #[error("processes of an earlier attempt are still alive {waited:?} after SIGKILL (pid {}); \
             cutover will not judge or repeat the step while they may still act", pids.join(", "))]
    StillAlive {
        /// Their pids.
        pids: Vec<String>,
        /// How long the fence waited.
        waited: Duration,
    },
}

/// The environment variable every process of a step carries: `<run id>/<step id>`. cutover uses
/// it to find what an earlier attempt left running.
pub const STEP_MARK: &str = "CUTOVER_STEP_MARK";

/// How long the fence waits for killed processes to disappear (a process in uninterruptible
/// sleep, e.g. on a hung NFS mount, may take this long).
const FENCE_WAIT: Duration = Duration::from_secs(30);

/// [`STEP_MARK`]'s value for `step` in the run `ctx` belongs to.
pub(crate) fn mark(step: &str, ctx: &StepContext) -> String {
    let run = ctx
        .run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{run}/{step}")
}

/// The progress of a step that starts a process (a command, `pg_dump`): its process group, by id
/// and its leader's start time, so a later fence finds what the attempt started even when a
/// process drops the mark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProcessGroup {
    /// Process group id (the leader's pid).
    pub pgid: i32,
    /// The leader's start time, in clock ticks since boot (`/proc/PID/stat`).
    pub pgid_start: u64,
}

/// A command's undo data: the undo argv as planned when it ran (`None`: nothing to run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandUndo {
    /// The argv.
    pub undo: Option<Vec<String>>,
}

/// What an attempt of a step left running: every process whose environment holds
/// `STEP_MARK=<mark>`, and every member of the process group the attempt recorded (`group`: its
/// id and its leader's start time), as (pid, process group); never this process or its group,
/// never a zombie. The recorded group counts only while its id is not another group's now (the
/// leader gone and its pid reused); while any member lives, the kernel does not reuse the id.
/// One walk of `/proc`.
fn leftovers(mark: &str, group: Option<(i32, u64)>) -> Vec<(i32, i32)> {
    let needle = format!("{STEP_MARK}={mark}");
    let me = std::process::id() as i32;
    let my_group = unsafe { libc::getpgrp() };
    let group = group
        .filter(|&(pgid, start)| {
            pgid > 1
                && pgid != my_group
                && crate::procfs::start_ticks(pgid).is_none_or(|now| now == start)
        })
        .map(|(pgid, _)| pgid);
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let pgid = unsafe { libc::getpgid(pid) };
        // Unreadable (another user's, or gone): not ours.
        let ours = group == Some(pgid)
            || std::fs::read(entry.path().join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()));
        if ours && !crate::procfs::is_zombie(pid) {
            out.push((pid, if pgid == my_group { -1 } else { pgid }));
        }
    }
    out
}

/// After a failed or timed-out attempt: kills what it left (its group, and every process with
/// its mark) and waits for them, so no effect lands after the failure is recorded.
async fn stop_leftovers(s: &Spec, pid: Option<u32>) {
    if let Some(pid) = pid {
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
    }
    let _ = fence_processes(&s.mark, None).await;
}

/// Kills every process an earlier attempt of the step left behind and waits until they are gone:
/// every process carrying its mark, and the members of the process group the attempt recorded
/// (`recorded`: its `pgid` and `pgid_start` progress), which catches a process that dropped the
/// mark with its environment. A process that left both (`setsid` and a cleared environment) is
/// out of reach; a cgroup per step would close that gap.
pub(crate) async fn fence_processes(
    mark: &str,
    recorded: Option<ProcessGroup>,
) -> Result<Option<String>, CommandError> {
    let group = recorded.map(|g| (g.pgid, g.pgid_start));
    let all = || leftovers(mark, group);
    let found = all();
    if found.is_empty() {
        return Ok(None);
    }
    let pids: Vec<String> = found.iter().map(|(p, _)| p.to_string()).collect();
    let deadline = tokio::time::Instant::now() + FENCE_WAIT;
    loop {
        let left = all();
        if left.is_empty() {
            return Ok(Some(format!(
                "stopped {} process(es) an earlier attempt left running (pid {}) before checking it",
                found.len(),
                pids.join(", ")
            )));
        }
        for (pid, group) in &left {
            // SAFETY: plain kill(2) calls; a pid that exited meanwhile gets ESRCH.
            unsafe {
                if *group > 1 {
                    libc::kill(-*group, libc::SIGKILL);
                }
                libc::kill(*pid, libc::SIGKILL);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CommandError::StillAlive {
                pids: left.iter().map(|(p, _)| p.to_string()).collect(),
                waited: FENCE_WAIT,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Spec {
    argv: Vec<String>,
    timeout: Duration,
    env: Vec<(String, String)>,
    secret_env: Vec<String>,
    undo: Option<Vec<String>>,
    probe: Option<Vec<String>>,
    /// [`STEP_MARK`]'s value for this step.
    mark: String,
    /// What a hook learns of its run and step, as Kamal gives its hooks: `CUTOVER_RUN_ID`,
    /// `CUTOVER_RELEASE`, `CUTOVER_STEP` (the step id), `CUTOVER_DRY_RUN` (`1` or `0`).
    hook_env: Vec<(&'static str, String)>,
}

fn spec(step: &Job<CommandParams>, ctx: &StepContext) -> Spec {
    let p = &step.params;
    Spec {
        argv: p.argv.clone(),
        timeout: Duration::from_millis(p.timeout.as_millis()),
        env: p.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        secret_env: p.secret_env.clone(),
        undo: p.undo.clone(),
        probe: p.probe.clone(),
        mark: mark(&step.id, ctx),
        hook_env: vec![
            ("CUTOVER_RUN_ID", ctx.run.run_id.clone()),
            ("CUTOVER_RELEASE", ctx.run.release.clone()),
            ("CUTOVER_STEP", step.id.clone()),
            (
                "CUTOVER_DRY_RUN",
                if ctx.run.dry_run { "1" } else { "0" }.into(),
            ),
        ],
    }
}

/// Makes a child process part of a step: marked with [`STEP_MARK`] (so a later fence finds it and
/// everything it starts), in its own process group, and killed when cutover dies
/// (`PR_SET_PDEATHSIG`), or never started when cutover died before that took effect.
pub(crate) fn tie_to_step(cmd: &mut tokio::process::Command, mark: &str) {
    cmd.env(STEP_MARK, mark).process_group(0).kill_on_drop(true);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl, getppid and _exit are async-signal-safe and touch only the child's state.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // cutover died between fork and prctl: the signal will never come, so do not run.
            if libc::getppid() != parent {
                libc::_exit(125);
            }
            Ok(())
        });
    }
}

/// How a command that exited 0 or 1 ended (any other status is an error).
struct Ran {
    /// 0 or 1: the caller decides whether 1 is an answer (a probe) or a failure.
    code: i32,
    /// `; stderr: ...; stdout: ...`: the last lines of each (redacted), or empty, so a failure
    /// always says what the command printed.
    output: String,
}

/// Runs `argv` and returns how it ended, or an error naming what went wrong.
async fn run_argv(argv: &[String], s: &Spec, ctx: &StepContext) -> Result<Ran, StepError> {
    for name in &s.secret_env {
        if std::env::var_os(name).is_none() {
            return Err(EnvError::SecretUnset { name: name.clone() }.into());
        }
    }
    let (program, args) = argv.split_first().ok_or(CommandError::EmptyArgv)?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&ctx.spec_dir)
        .envs(s.hook_env.iter().map(|(k, v)| (*k, v.as_str())))
        .envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tie_to_step(&mut cmd, &s.mark);
    let mut child = cmd.spawn().map_err(|source| CommandError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pid = child.id();
    // The process group, recorded (as the step's progress) so that a later fence finds what
    // this attempt started even when a process drops the mark (`env -i`, `sudo`, `su -`).
    if let (Some(pid), Some(progress)) = (pid, &ctx.progress)
        && let Some(start) = crate::procfs::start_ticks(pid as i32)
    {
        progress.report(&ProcessGroup {
            pgid: pid as i32,
            pgid_start: start,
        });
    }
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let collect = async {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let _ = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        (out, err)
    };
    let waited =
        tokio::time::timeout(s.timeout, async { tokio::join!(child.wait(), collect) }).await;
    let Ok((status, (out, err))) = waited else {
        if let Some(pid) = pid {
            // The whole group: a shell's children too.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
        // And whatever left the group (setsid) but carries the mark: a step that failed
        // leaves nothing behind to take effect after the rollback.
        stop_leftovers(s, pid).await;
        return Err(CommandError::TimedOut {
            argv: argv.join(" "),
            timeout: s.timeout,
        }
        .into());
    };
    let status = status.map_err(|source| CommandError::Wait {
        program: program.clone(),
        source,
    })?;
    if !status.success() {
        stop_leftovers(s, pid).await;
    }
    let output = ctx
        .redactor
        .redact(&format!("{}{}", tail("stderr", &err), tail("stdout", &out)));
    exit_code(argv, status, output)
}

/// 0 or 1 (the caller decides whether 1 is an answer, for a probe, or a failure), or the error
/// for any other status, with what the command printed last, or for a signal.
fn exit_code(
    argv: &[String],
    status: std::process::ExitStatus,
    output: String,
) -> Result<Ran, StepError> {
    match status.code() {
        Some(code @ (0 | 1)) => Ok(Ran { code, output }),
        Some(code) => Err(CommandError::Exited {
            argv: argv.join(" "),
            code,
            output,
        }
        .into()),
        None => Err(CommandError::Signalled {
            argv: argv.join(" "),
        }
        .into()),
    }
}

/// `; {stream}: ` and the last 10 lines of `bytes` joined by ` | `, or nothing when it is empty.
fn tail(stream: &str, bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = &lines[lines.len().saturating_sub(10)..];
    if last.is_empty() {
        String::new()
    } else {
        format!("; {stream}: {}", last.join(" | "))
    }
}

fn undo_data(s: &Spec) -> CommandUndo {
    CommandUndo {
        undo: s.undo.clone(),
    }
}

impl Driver for CommandDriver {
    type Params = CommandParams;
    type Undo = CommandUndo;

    fn run(
        &self,
        step: Job<CommandParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Done<CommandUndo>, StepError>> {
        Box::pin(async move {
            let s = spec(&step, &ctx);
            match run_argv(&s.argv, &s, &ctx).await? {
                Ran { code: 0, .. } => Ok(Done {
                    undo: undo_data(&s),
                    detail: Some(format!("`{}` exited 0", s.argv.join(" "))),
                }),
                Ran { code, output } => Err(CommandError::Exited {
                    argv: s.argv.join(" "),
                    code,
                    output,
                }
                .into()),
            }
        })
    }

    fn undo(
        &self,
        step: Job<CommandParams>,
        undo: CommandUndo,
        ctx: StepContext,
    ) -> BoxFuture<Result<(), StepError>> {
        Box::pin(async move {
            let s = spec(&step, &ctx);
            // Exactly what was recorded when the step ran.
            let Some(argv) = undo.undo else { return Ok(()) };
            match run_argv(&argv, &s, &ctx).await? {
                Ran { code: 0, .. } => Ok(()),
                Ran { code, output } => Err(CommandError::UndoExited {
                    argv: argv.join(" "),
                    code,
                    output,
                }
                .into()),
            }
        })
    }

    fn probe(
        &self,
        step: Job<CommandParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Option<Probe<CommandUndo>>, StepError>> {
        Box::pin(async move {
            let s = spec(&step, &ctx);
            let Some(probe) = s.probe.clone() else {
                return Ok(None);
            };
            match run_argv(&probe, &s, &ctx).await?.code {
                0 => Ok(Some(Probe::Done(undo_data(&s)))),
                _ => Ok(Some(Probe::NotDone)),
            }
        })
    }

    fn fence(
        &self,
        step: Job<CommandParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Option<String>, StepError>> {
        Box::pin(async move { Ok(fence_processes(&mark(&step.id, &ctx), ctx.resumed()).await?) })
    }
}
