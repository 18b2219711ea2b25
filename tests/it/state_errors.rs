//! A state directory, run directory or event log in a bad state: the real binary names the path,
//! states the true cause, ends with a `hint:`, exits 1 (4 for a stopped rollback) and never
//! panics. Permission cases run as `nobody` when the tests run as root (root ignores modes); the
//! full disk is a 40 KiB tmpfs mounted in a private mount namespace (`unshare`).

use crate::common::{assert_no_panic, transcript};
use cutover_executor::log::{FORMAT_VERSION, GATED_FORMAT_VERSION, Header, LogWriter};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SPEC: &str = r#"[release]
name = "st"

[[command]]
name = "a"
stage = "pre-migrate"
argv = ["sh", "-c", "echo a >> journal"]
probe = ["sh", "-c", "test -e journal && grep -qx a journal"]

[[command]]
name = "b"
stage = "post-release"
argv = ["sh", "-c", "echo b >> journal"]
probe = ["sh", "-c", "test -e journal && grep -qx b journal"]
"#;

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A release directory with the spec, readable by `nobody` (for the permission cases).
fn release() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.path().join("spec.toml"), SPEC).unwrap();
    dir
}

fn command(dir: &Path, args: &[&OsStr]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("CUTOVER_STATE_DIR")
        .env_remove("CUTOVER_LOG_DATABASE_URL")
        .env_remove("CUTOVER_CRASH_AFTER_EVENTS")
        .env_remove("CUTOVER_CRASH_AFTER_EFFECT")
        .env_remove("RUST_BACKTRACE");
    cmd
}

fn os(args: &[&str]) -> Vec<&'static OsStr> {
    args.iter()
        .map(|a| OsStr::new(Box::leak(a.to_string().into_boxed_str())))
        .collect()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    command(dir, &os(args)).output().unwrap()
}

/// As `nobody` when root, so file modes apply.
fn run_unprivileged(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = command(dir, &os(args));
    if is_root() {
        cmd.uid(65534).gid(65534);
    }
    cmd.output().unwrap()
}

/// The refusal: exit `code`, no panic, `error:` naming `path` with each of `causes`, and the last
/// line a hint. Returns stderr.
fn refused(out: &Output, code: i32, path: &Path, causes: &[&str]) -> String {
    assert_no_panic(out);
    assert_eq!(out.status.code(), Some(code), "{}", transcript(out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(
        error.contains(&path.display().to_string()),
        "the error does not name {}:\n{stderr}",
        path.display()
    );
    for c in causes {
        assert!(stderr.contains(c), "expected {c:?} in:\n{stderr}");
    }
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("  hint: ") && last.len() > 12,
        "the last line is not a hint:\n{stderr}"
    );
    stderr
}

/// A run that stopped after its sixth event (step a started and running), ready for `resume`.
fn stopped_run(dir: &Path, state: &Path) -> (String, PathBuf) {
    let out = command(
        dir,
        &[
            OsStr::new("--state-dir"),
            state.as_os_str(),
            OsStr::new("apply"),
            OsStr::new("spec.toml"),
            OsStr::new("--format"),
            OsStr::new("quiet"),
        ],
    )
    .env("CUTOVER_CRASH_AFTER_EVENTS", "6")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), None, "{}", transcript(&out));
    let id = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let run_dir = state.join("runs").join(&id);
    (id, run_dir)
}

#[test]
fn runs_is_a_file() {
    let dir = release();
    std::fs::create_dir(dir.path().join("st")).unwrap();
    std::fs::write(dir.path().join("st/runs"), "").unwrap();
    let runs = dir.path().join("st/runs");
    for args in [
        &["apply", "spec.toml"][..],
        &["runs"],
        &["resume", "20260101T000000Z-st-0000"],
        &["status", "20260101T000000Z-st-0000"],
    ] {
        let mut all = vec!["--state-dir", "st"];
        all.extend_from_slice(args);
        let out = run(dir.path(), &all);
        let stderr = refused(
            &out,
            1,
            Path::new("st/runs"),
            &["it is a file, not a directory", "move it away"],
        );
        assert!(
            !stderr.contains("File exists") && !stderr.contains("no runs"),
            "{args:?}: {stderr}"
        );
    }
    assert!(runs.is_file(), "the file is left alone");
}

#[test]
fn the_state_dir_is_a_file() {
    let dir = release();
    std::fs::write(dir.path().join("st"), "").unwrap();
    let out = run(dir.path(), &["--state-dir", "st", "apply", "spec.toml"]);
    refused(&out, 1, Path::new("st"), &["it is a file, not a directory"]);
}

#[test]
fn the_state_dir_is_not_writable() {
    let dir = release();
    let st = dir.path().join("st");
    std::fs::create_dir(&st).unwrap();
    std::fs::set_permissions(&st, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out = run_unprivileged(dir.path(), &["--state-dir", "st", "apply", "spec.toml"]);
    refused(
        &out,
        1,
        Path::new("st/runs"),
        &[
            "cannot create the runs directory",
            "Permission denied",
            "owner or mode",
        ],
    );
}

#[test]
fn a_run_directory_without_its_plan() {
    let dir = release();
    let (id, run_dir) = stopped_run(dir.path(), &dir.path().join("st"));
    let log = std::fs::read(run_dir.join("events.log")).unwrap();
    std::fs::remove_file(run_dir.join("plan.json")).unwrap();
    for verb in ["resume", "status", "rollback"] {
        let out = run(dir.path(), &["--state-dir", "st", verb, &id]);
        refused(
            &out,
            1,
            &Path::new("st/runs").join(&id).join("plan.json"),
            &["the run's recorded plan is missing", "restore the file"],
        );
    }
    assert_eq!(
        std::fs::read(run_dir.join("events.log")).unwrap(),
        log,
        "nothing was written"
    );
}

#[test]
fn events_log_is_a_directory_or_missing() {
    let dir = release();
    let (id, run_dir) = stopped_run(dir.path(), &dir.path().join("st"));
    let log = run_dir.join("events.log");
    std::fs::rename(&log, run_dir.join("saved.log")).unwrap();
    std::fs::create_dir(&log).unwrap();
    for verb in ["resume", "status", "log"] {
        let out = run(dir.path(), &["--state-dir", "st", verb, &id]);
        refused(
            &out,
            1,
            &Path::new("st/runs").join(&id).join("events.log"),
            &["it is a directory, not the run's event log file"],
        );
    }
    std::fs::remove_dir(&log).unwrap();
    let out = run(dir.path(), &["--state-dir", "st", "resume", &id]);
    let stderr = refused(
        &out,
        1,
        &Path::new("st/runs").join(&id),
        &["events.log is missing"],
    );
    assert!(!stderr.contains("no run `"), "the run exists: {stderr}");
}

#[test]
fn an_event_log_that_is_not_one() {
    let dir = release();
    let (id, run_dir) = stopped_run(dir.path(), &dir.path().join("st"));
    let log = run_dir.join("events.log");
    let shown = Path::new("st/runs").join(&id).join("events.log");
    let other_version = {
        let other = dir.path().join("other.log");
        LogWriter::create(
            &other,
            &Header {
                format_version: GATED_FORMAT_VERSION + 1,
                run_id: id.clone(),
                plan_hash: "h".into(),
                dry_run: false,
            },
        )
        .unwrap();
        std::fs::read(other).unwrap()
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "the file is empty (0 bytes)"),
        (vec![0; 4096], "4096 zero bytes"),
        (
            b"{\"seq\": 1}\n".to_vec(),
            "does not start with the magic bytes",
        ),
        (b"CUTLOG\x00\x07".to_vec(), "format 7"),
        (
            other_version,
            &*Box::leak(
                format!(
                    "format {}; this cutover reads format {FORMAT_VERSION}",
                    GATED_FORMAT_VERSION + 1
                )
                .into_boxed_str(),
            ),
        ),
    ];
    for (bytes, cause) in cases {
        std::fs::write(&log, &bytes).unwrap();
        for verb in ["resume", "status"] {
            let out = run(dir.path(), &["--state-dir", "st", verb, &id]);
            let stderr = refused(&out, 1, &shown, &[cause]);
            assert!(!stderr.contains("later record"), "{stderr}");
        }
        assert_eq!(
            std::fs::read(&log).unwrap(),
            bytes,
            "{cause}: the file was changed"
        );
    }
}

#[test]
fn a_run_of_the_format_before_typed_step_data_is_refused() {
    let dir = release();
    let (id, run_dir) = stopped_run(dir.path(), &dir.path().join("st"));
    let hint = "finish or roll back this run with the cutover version that started it";
    // A plan recorded before plans named their format (format 1: untagged step parameters).
    let plan_path = run_dir.join("plan.json");
    let plan = std::fs::read(&plan_path).unwrap();
    let mut old_plan: serde_json::Value = serde_json::from_slice(&plan).unwrap();
    assert_eq!(old_plan["plan_format"], 2, "{old_plan}");
    old_plan.as_object_mut().unwrap().remove("plan_format");
    let old_plan = serde_json::to_vec_pretty(&old_plan).unwrap();
    std::fs::write(&plan_path, &old_plan).unwrap();
    for verb in ["resume", "status", "rollback"] {
        let out = run(dir.path(), &["--state-dir", "st", verb, &id]);
        let stderr = refused(
            &out,
            1,
            &Path::new("st/runs").join(&id).join("plan.json"),
            &[
                "is in plan format 1; this cutover reads plan format 2 only",
                hint,
            ],
        );
        assert!(
            stderr.trim_end().lines().last().unwrap().contains(hint),
            "{stderr}"
        );
    }
    assert_eq!(
        std::fs::read(&plan_path).unwrap(),
        old_plan,
        "nothing was written"
    );
    std::fs::write(&plan_path, &plan).unwrap();
    // A log of format 1.
    let log = run_dir.join("events.log");
    std::fs::remove_file(&log).unwrap();
    LogWriter::create(
        &log,
        &Header {
            format_version: 1,
            run_id: id.clone(),
            plan_hash: "h".into(),
            dry_run: false,
        },
    )
    .unwrap();
    let bytes = std::fs::read(&log).unwrap();
    for verb in ["resume", "status", "rollback"] {
        let out = run(dir.path(), &["--state-dir", "st", verb, &id]);
        let stderr = refused(
            &out,
            1,
            &Path::new("st/runs").join(&id).join("events.log"),
            &[
                "the event log is in format 1; this cutover reads format 2 (and 3, a run with gates) only",
                hint,
            ],
        );
        assert!(
            stderr.trim_end().lines().last().unwrap().contains(hint),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "nothing was written");
}

#[test]
fn damage_in_the_middle_is_refused_saying_where_the_later_record_is() {
    let dir = release();
    let (id, run_dir) = stopped_run(dir.path(), &dir.path().join("st"));
    let log = run_dir.join("events.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[200] ^= 0x01;
    bytes.extend_from_slice(&[0; 512]);
    std::fs::write(&log, &bytes).unwrap();
    let out = run(dir.path(), &["--state-dir", "st", "resume", &id]);
    refused(
        &out,
        1,
        &Path::new("st/runs").join(&id).join("events.log"),
        &[
            "the log is damaged at byte",
            "a valid later record starts at byte",
            "truncate -s",
        ],
    );
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "nothing was changed");
    assert!(
        !std::fs::read_dir(&run_dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".torn-")),
        "nothing was kept aside: nothing was cut"
    );
}

#[test]
fn permission_denied_on_the_log_and_the_run_directory() {
    let dir = release();
    let (id, run_dir) = stopped_run(dir.path(), &dir.path().join("st"));
    for p in [
        dir.path().join("st"),
        dir.path().join("st/runs"),
        run_dir.clone(),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let log = run_dir.join("events.log");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = run_unprivileged(dir.path(), &["--state-dir", "st", "status", &id]);
    refused(
        &out,
        1,
        &Path::new("st/runs").join(&id).join("events.log"),
        &["cannot read the event log", "Permission denied"],
    );
    // Readable, but the run directory is not writable: resume cannot take the run.
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(run_dir.join("lock"), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out = run_unprivileged(dir.path(), &["--state-dir", "st", "resume", &id]);
    refused(
        &out,
        1,
        &Path::new("st/runs").join(&id),
        &["Permission denied", "owner or mode"],
    );
}

#[test]
fn non_utf8_names() {
    let dir = release();
    // A spec whose path is not UTF-8 is refused before a run starts (a resume could not find it).
    let sub = dir.path().join(OsStr::from_bytes(b"spec-\xfe"));
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("spec.toml"), SPEC).unwrap();
    let spec = PathBuf::from(OsStr::from_bytes(b"spec-\xfe/spec.toml"));
    let out = command(
        dir.path(),
        &[
            OsStr::new("--state-dir"),
            OsStr::new("st"),
            OsStr::new("apply"),
            spec.as_os_str(),
        ],
    )
    .output()
    .unwrap();
    refused(
        &out,
        1,
        &std::fs::canonicalize(dir.path().join(&spec)).unwrap(),
        &["is not valid UTF-8", "rename"],
    );
    assert!(!dir.path().join("st").exists(), "no run was started");
    // A RUN argument that is not UTF-8.
    let out = command(
        dir.path(),
        &[OsStr::new("resume"), OsStr::from_bytes(b"run-\xff")],
    )
    .output()
    .unwrap();
    refused(
        &out,
        1,
        Path::new("run-\u{FFFD}"),
        &["is not valid UTF-8", "--state-dir"],
    );
    // A state directory that is not UTF-8 works, torn tail included: the tail is kept under the
    // directory's real name, and the notice is true.
    let state = dir.path().join(OsStr::from_bytes(b"state-\xff"));
    let (id, run_dir) = stopped_run(dir.path(), &state);
    let log = run_dir.join("events.log");
    let valid = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &[0x40, 0, 0]))
        .unwrap();
    let out = command(
        dir.path(),
        &[
            OsStr::new("--state-dir"),
            state.as_os_str(),
            OsStr::new("resume"),
            OsStr::new(&id),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let mut kept = log.as_os_str().to_owned();
    kept.push(format!(".torn-{valid}"));
    assert_eq!(std::fs::read(&kept).unwrap(), [0x40, 0, 0]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cut off and kept in"),
        "{}",
        transcript(&out)
    );
}

#[test]
fn a_failed_undo_is_not_called_a_pivot() {
    let dir = release();
    // Step b's undo fails while the "database" is down; step c fails, so the release rolls back.
    let undo = |n: &str| {
        format!(
            "undo = [\"sh\", \"-c\", \"test -e db-up || {{ echo 'could not connect to the database' \
             >&2; exit 2; }}; echo undo-{n} >> journal\"]\n"
        )
    };
    let spec = SPEC.replace(
        "grep -qx a journal\"]\n",
        &format!("grep -qx a journal\"]\n{}", undo("a")),
    ) + &undo("b")
        + "\n[[command]]\nname = \"c\"\nstage = \"post-release\"\nargv = [\"sh\", \"-c\", \"exit \
           1\"]\n";
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    let out = run(dir.path(), &["--state-dir", "st", "apply", "spec.toml"]);
    let id = std::fs::read_dir(dir.path().join("st/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let stderr = refused(
        &out,
        4,
        Path::new("command/b"),
        &[
            "undoing `command/b` failed",
            "could not connect to the database",
            &format!("run `cutover rollback {id}` again"),
        ],
    );
    assert!(!stderr.contains("pivot"), "{stderr}");
    // What the hint says works: once the cause is gone, the same rollback finishes.
    std::fs::write(dir.path().join("db-up"), "").unwrap();
    let out = run(dir.path(), &["--state-dir", "st", "rollback", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
}

/// A 40 KiB tmpfs in a mount namespace of its own; `script` runs there with `$B` (cutover),
/// `$M` (the mount point) and `$O` (a directory outside it for output). None if this machine
/// cannot make one (no `unshare`, or no user namespaces for a non-root user).
fn on_tiny_tmpfs(dir: &Path, script: &str) -> Option<Output> {
    let probe = Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=40k tmpfs \"$0\""])
        .arg(dir)
        .output()
        .ok()?;
    if !probe.status.success() {
        return None;
    }
    let m = dir.join("tiny");
    std::fs::create_dir_all(&m).unwrap();
    let out = Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            &format!("set -e; mount -t tmpfs -o size=40k tmpfs \"$M\"; cd \"$O\"; {script}"),
        ])
        .env("B", env!("CARGO_BIN_EXE_cutover"))
        .env("M", &m)
        .env("O", dir)
        .env_remove("CUTOVER_STATE_DIR")
        .env_remove("CUTOVER_LOG_DATABASE_URL")
        .output()
        .unwrap();
    Some(out)
}

#[test]
fn a_full_disk() {
    let dir = release();
    // Ten steps: more events than one free page of the tmpfs holds.
    let mut spec = String::from("[release]\nname = \"full\"\n\n");
    for i in 0..10 {
        // The first step fills the disk the state directory is on (`$M`), so the run's next
        // appends fail mid-run, whatever the plan's size.
        let fill = if i == 0 {
            "; head -c 1073741824 /dev/zero > \\\"$M/fill\\\" 2>/dev/null; true"
        } else {
            ""
        };
        spec += &format!(
            "[[command]]\nname = \"s{i}\"\nstage = \"pre-migrate\"\nargv = [\"sh\", \"-c\", \"echo \
             s{i} >> journal{fill}\"]\nprobe = [\"sh\", \"-c\", \"test -e journal && grep -qx s{i} \
             journal\"]\n\n"
        );
    }
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    // 1: the disk is full before the run starts. 2: the first step fills it, so an append fails
    // mid-run; after space is freed, `resume` finishes the run.
    let script = r#"
        head -c 40960 /dev/zero > "$M/fill" 2>/dev/null || true
        "$B" --state-dir "$M/st" apply spec.toml > out1 2> err1 || echo $? > code1
        rm -rf "$M/st" "$M/fill" journal
        "$B" --state-dir "$M/st" apply spec.toml > out2 2> err2 || echo $? > code2
        rm "$M/fill"
        ls "$M/st/runs" > run
        "$B" --state-dir "$M/st" resume "$(cat run)" > out3 2> err3 || echo $? > code3
        echo done
    "#;
    let Some(out) = on_tiny_tmpfs(dir.path(), script) else {
        panic!(
            "this machine cannot mount a tmpfs in a private namespace (`unshare -rm`, util-linux): \
             the full-disk test needs it"
        );
    };
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("done"),
        "{}",
        transcript(&out)
    );
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
    for (err, code) in [("err1", "code1"), ("err2", "code2")] {
        let stderr = read(err);
        assert_eq!(read(code).trim(), "1", "{err}:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let error = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("{err}:\n{stderr}"));
        assert!(
            error.contains(&dir.path().join("tiny/st/runs").display().to_string())
                && error.contains("No space left on device"),
            "{err}:\n{stderr}"
        );
        assert!(
            stderr
                .trim_end()
                .lines()
                .last()
                .unwrap()
                .starts_with("  hint: the disk (or your quota) is full"),
            "{err}:\n{stderr}"
        );
    }
    assert!(
        read("err2").contains("events.log: cannot append an event to the event log"),
        "{}",
        read("err2")
    );
    assert!(
        read("err2").contains("then `cutover resume RUN` continues the run"),
        "{}",
        read("err2")
    );
    assert_eq!(
        read("code3"),
        "",
        "resume after freeing space:\n{}",
        read("err3")
    );
    assert_eq!(read("journal").lines().count(), 10, "{}", read("err3"));
}
