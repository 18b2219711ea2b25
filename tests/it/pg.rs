//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary directory and a server on a
//! free loopback port, from Debian's `postgresql` package (scripts/test installs it). A test that
//! needs one and cannot start it fails with the reason; it never skips.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster; stopped (immediately) and deleted on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not installed (/usr/lib/postgresql: {e}); run scripts/test, which \
                 installs Debian's `postgresql` package"
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin; run scripts/test")
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Runs a server binary, as `postgres` when we are root (initdb and postgres refuse root).
fn run(bin: &Path, program: &str, args: &[&str]) {
    let exe = bin.join(program);
    let out = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&exe)
            .args(args)
            .output()
    } else {
        Command::new(&exe).args(args).output()
    }
    .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// initdb + start on a free loopback port; no password needed.
    pub fn start() -> Cluster {
        Self::start_with(None)
    }

    /// A cluster whose `postgres` role needs `password` over TCP (scram-sha-256).
    pub fn start_with_password(password: &str) -> Cluster {
        Self::start_with(Some(password))
    }

    fn start_with(password: Option<&str>) -> Cluster {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("cutover-pg-")
            .tempdir()
            .unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown of the cluster directory failed");
        }
        let data = dir.path().join("data");
        match password {
            None => run(
                &bin,
                "initdb",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            ),
            Some(pw) => {
                let pwfile = dir.path().join("pwfile");
                std::fs::write(&pwfile, pw).unwrap();
                if is_root() {
                    Command::new("chown")
                        .args(["postgres:postgres"])
                        .arg(&pwfile)
                        .status()
                        .unwrap();
                }
                run(
                    &bin,
                    "initdb",
                    &[
                        "-D",
                        data.to_str().unwrap(),
                        "-U",
                        "postgres",
                        "--auth-local=trust",
                        "--auth-host=scram-sha-256",
                        "--pwfile",
                        pwfile.to_str().unwrap(),
                        "-E",
                        "UTF8",
                        "--no-sync",
                    ],
                );
            }
        }
        for _ in 0..5 {
            let port = free_port();
            let opts = format!(
                "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=on",
                dir.path().display()
            );
            let log = dir.path().join("server.log");
            let exe = bin.join("pg_ctl");
            let args = [
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ];
            let out = if is_root() {
                Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(&exe)
                    .args(args)
                    .output()
            } else {
                Command::new(&exe).args(args).output()
            }
            .unwrap();
            if out.status.success() {
                return Cluster { dir, bin, port };
            }
            // The port may have been taken in between; try another.
            let _ = std::fs::read_to_string(&log)
                .map(|l| eprintln!("pg_ctl start failed on port {port}:\n{l}"));
        }
        panic!("could not start PostgreSQL on a free loopback port");
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The last `lines` lines of the server's log, for a failure message: what PostgreSQL said
    /// about a connection it closed or a backend that died.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The URL of database `db` on this cluster.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL with psql in database `postgres`, returning stdout.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Runs SQL with psql in database `db`, returning stdout (trimmed); fails the test on error.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                &self.url_for(db),
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Cluster {
    /// Runs each command as its own `-c` of one psql session in database `postgres` (so
    /// `PREPARE` and `BEGIN` carry over to the next one) and stops at the first error: stdout
    /// (trimmed) on success, stderr otherwise.
    pub fn psql_session(&self, commands: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", &self.url()]);
        for c in commands {
            cmd.args(["-c", c]);
        }
        let out = cmd.output().expect("psql runs");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", data.to_str().unwrap(), "-m", "immediate", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}
