//! `scripts/demo`, the README's first command, run the way a newcomer runs it, and judged from
//! what it prints and its exit code: the seed's release succeeds behind HAProxy with zero failed
//! requests; with `--bad --kill` the release is killed, picked up again and rolled back by its
//! gate; and afterwards nothing of the demo is left: no container, no process, no listening port,
//! no temporary directory.
//!
//! The demo builds what it needs (`scripts/test` builds the release binaries up front, so here
//! that is a check that they are fresh) and installs nothing when everything is there. Its runs
//! go to a temporary state directory (`CUTOVER_STATE_DIR`), not the repository's `.cutover`.

use crate::common::root;
use crate::stack::rt;
use cutover_executor::runtime::{ContainerRuntime, Docker, LABEL_RUN};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// One finished run of the demo.
struct Demo {
    args: String,
    code: Option<i32>,
    out: String,
}

impl Demo {
    /// Runs `scripts/demo ARGS` to its end. Its output goes to a file, not a pipe: a process the
    /// demo left behind holding the pipe would hang the test instead of failing it below.
    fn run(args: &[&str]) -> Demo {
        let state = tempfile::tempdir().unwrap();
        let log = state.path().join("demo.out");
        let file = std::fs::File::create(&log).unwrap();
        let t0 = Instant::now();
        let status = Command::new(root().join("scripts/demo"))
            .args(args)
            .current_dir(root())
            .env("CUTOVER_STATE_DIR", state.path().join("state"))
            .env_remove("DEMO_SEED")
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .status()
            .expect("scripts/demo runs");
        let demo = Demo {
            args: args.join(" "),
            code: status.code(),
            out: std::fs::read_to_string(&log).unwrap(),
        };
        eprintln!(
            "scripts/demo {} took {:.0?}, exit {:?}:\n{}",
            demo.args,
            t0.elapsed(),
            demo.code,
            demo.out
        );
        demo
    }

    fn has(&self, text: &str) -> bool {
        self.out.contains(text)
    }

    /// The text after `prefix` on the first line that has it, up to `end`.
    fn after(&self, prefix: &str, end: char) -> Option<&str> {
        let at = self.out.find(prefix)? + prefix.len();
        self.out[at..].split([end, '\n']).next()
    }

    /// The failed requests in the load generator's totals (`N requests in S s: F failed`).
    fn failed_requests(&self) -> u64 {
        self.out
            .lines()
            .filter(|l| l.contains(" requests in ") && l.contains(" failed"))
            .find_map(|l| l.split(" s: ").nth(1)?.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no load totals in the output of scripts/demo {}", self.args))
    }

    /// Everything the demo said it started, then a check that none of it is still there.
    fn assert_nothing_left(&self) {
        let id = self
            .after("Starting the stack (demo ", ',')
            .expect("the demo names its id");
        let work = PathBuf::from(
            self.after(", files in ", ')')
                .expect("the demo names its directory"),
        );
        let run = self
            .after("\nrun ", ' ')
            .expect("the demo shows its run id");
        let ports: BTreeSet<u16> = self
            .out
            .split("127.0.0.1:")
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        assert!(
            ports.len() >= 4,
            "PostgreSQL, the router and both app ports are shown: {ports:?}"
        );

        assert!(
            !work.exists(),
            "{} (the demo's files) is removed",
            work.display()
        );
        let docker = Docker::new();
        for (label, value) in [("cutover.demo", id), (LABEL_RUN, run)] {
            let left = rt()
                .block_on(docker.list(BTreeMap::from([(label.to_string(), value.to_string())])))
                .expect("the Docker engine answers");
            assert!(
                left.is_empty(),
                "containers labelled {label}={value} are left: {:?}",
                left.iter().map(|c| &c.name).collect::<Vec<_>>()
            );
        }
        let work_text = work.to_string_lossy().into_owned();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            if !entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
            {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(
                !cmdline.contains(&work_text),
                "process {} still runs from the demo's directory: {cmdline}",
                entry.file_name().to_string_lossy()
            );
        }
        for port in ports {
            assert!(
                std::net::TcpStream::connect_timeout(
                    &([127, 0, 0, 1], port).into(),
                    Duration::from_millis(500)
                )
                .is_err(),
                "127.0.0.1:{port} still listens after the demo"
            );
        }
    }
}

#[test]
fn the_seed_release_succeeds_with_zero_failed_requests_behind_haproxy() {
    let d = Demo::run(&[]);
    assert_eq!(d.code, Some(0), "scripts/demo exits 0");
    assert!(d.has("finished: succeeded") && d.has("state: succeeded"));
    assert!(
        d.has("users columns: id, email, legacy_flags, created_at, full_name"),
        "the contract phase dropped `name`"
    );
    assert_eq!(
        d.failed_requests(),
        0,
        "zero failed requests behind HAProxy"
    );
    assert!(d.has(", 0 of them missing from users.full_name"));
    assert!(d.has("demo ok: the release succeeded; 0 failed request(s) behind HAProxy"));
    d.assert_nothing_left();
}

#[test]
fn a_bad_release_killed_midway_is_resumed_and_rolls_back_by_itself() {
    let d = Demo::run(&["--bad", "--kill"]);
    assert_eq!(d.code, Some(0), "scripts/demo --bad --kill exits 0");
    assert!(
        d.has("==> kill -9 cutover") || d.has("before the kill landed"),
        "apply was killed, or had ended first"
    );
    if d.has("==> kill -9 cutover") {
        assert!(d.has("(after the kill)") && d.has("state: stopped before it finished"));
        assert!(d.has("==> cutover resume") || d.has("==> cutover rollback"));
    }
    assert!(d.has("analysis gate failed: error rate"), "the gate failed");
    assert!(d.has("state: rolled_back"));
    assert!(d.has("schema: as before the release"));
    assert!(d.has("router: haproxy.cfg is byte-identical to before the release"));
    assert!(d.has(", 0 of them missing from users.name"));
    assert!(d.has("demo ok: the bad release rolled back by itself"));
    d.assert_nothing_left();
}
