//! nginx: the upstream file cutover owns, `nginx -t`, reload, and a confirmation that the new
//! configuration is the one serving.
//!
//! A reload starts a new generation of worker processes; the old ones finish their requests
//! and exit. cutover confirms a reload took effect by waiting for a worker of the master that
//! did not exist before the reload (a reload nginx rejects at apply time starts none). Idle
//! keep-alive client connections of the old workers are closed by the reload: clients that
//! reuse connections without retrying see failures, which is why HAProxy is offered too.

use super::{Observation, Router, saved_before, write_atomic};
use crate::driver::{BoxFuture, StepError};
use cutover_planner::dag::Server;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// nginx as configured in the spec.
#[derive(Debug, Clone)]
pub struct Nginx {
    /// The file holding the `upstream` blocks.
    pub upstream_file: PathBuf,
    /// The master's pid file.
    pub pid_file: PathBuf,
    /// Validation argv.
    pub test: Vec<String>,
    /// Reload argv; `None`: SIGHUP to the master.
    pub reload: Option<Vec<String>>,
    /// JSON access log.
    pub access_log: Option<PathBuf>,
}

/// One change at a time to the files cutover owns, whichever step asks.
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Rewrites the `server` lines of `upstream NAME { ... }` in `content` (other directives in the
/// block, and everything outside it, are kept byte for byte), or appends the block. Servers of
/// weight 0 are left out: nginx sends them nothing then.
pub fn render(content: &str, upstream: &str, servers: &[Server]) -> Result<String, String> {
    let live: Vec<&Server> = servers.iter().filter(|s| s.weight > 0).collect();
    if live.is_empty() {
        return Err(format!("upstream `{upstream}` would have no server with a weight above 0"));
    }
    let lines: Vec<String> = live.iter().map(|s| format!("    server {} weight={};\n", s.addr, s.weight)).collect();
    match find_block(content, upstream) {
        Some((open, close)) => {
            // Body between `{` and `}`: keep every line that is not a `server` directive.
            let body = &content[open + 1..close];
            let mut out = String::with_capacity(content.len() + 64);
            out.push_str(&content[..=open]);
            let mut inserted = false;
            for line in body.split_inclusive('\n') {
                let t = line.trim_start();
                if t.starts_with("server ") || t.starts_with("server\t") {
                    if !inserted {
                        lines.iter().for_each(|l| out.push_str(l));
                        inserted = true;
                    }
                } else {
                    if !inserted && t.starts_with('}') {
                        lines.iter().for_each(|l| out.push_str(l));
                        inserted = true;
                    }
                    out.push_str(line);
                }
            }
            if !inserted {
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                lines.iter().for_each(|l| out.push_str(l));
            }
            out.push_str(&content[close..]);
            Ok(out)
        }
        None => {
            let mut out = content.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("upstream {upstream} {{\n"));
            lines.iter().for_each(|l| out.push_str(l));
            out.push_str("}\n");
            Ok(out)
        }
    }
}

/// Byte offsets of the `{` and `}` of `upstream NAME { ... }` (comments skipped).
fn find_block(content: &str, upstream: &str) -> Option<(usize, usize)> {
    let mut pos = 0;
    let bytes = content.as_bytes();
    while pos < content.len() {
        let line_end = content[pos..].find('\n').map_or(content.len(), |i| pos + i + 1);
        let line = &content[pos..line_end];
        let t = line.trim_start();
        if !t.starts_with('#') {
            let mut words = t.split_whitespace();
            if words.next() == Some("upstream") && words.next().map(|w| w.trim_end_matches('{')) == Some(upstream) {
                let open = pos + line.find('{').or_else(|| content[line_end..].find('{').map(|i| i + line_end - pos))?;
                let close = open + content[open..].find('}')?;
                let _ = bytes;
                return Some((open, close));
            }
        }
        pos = line_end;
    }
    None
}

fn run_argv(argv: &[String]) -> Result<(), String> {
    let out = std::process::Command::new(&argv[0]).args(&argv[1..]).output().map_err(|e| format!("cannot run `{}`: {e}", argv[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if msg.is_empty() { format!("`{}` exited with {}", argv.join(" "), out.status) } else { msg })
    }
}

/// Children of `pid`, from /proc.
fn children(pid: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat"))
            && let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..])
            && rest.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok()) == Some(pid)
        {
            out.insert(child);
        }
    }
    out
}

impl Nginx {
    fn master(&self) -> Result<i32, StepError> {
        let text = std::fs::read_to_string(&self.pid_file).map_err(|e| StepError(format!("nginx: cannot read the pid file {}: {e} (is nginx running? set `pid_file` in [router])", self.pid_file.display())))?;
        let pid: i32 = text.trim().parse().map_err(|_| StepError(format!("nginx: {} does not hold a pid", self.pid_file.display())))?;
        if unsafe { libc::kill(pid, 0) } != 0 {
            return Err(StepError(format!("nginx: the master process {pid} from {} is not running", self.pid_file.display())));
        }
        Ok(pid)
    }

    /// Validates the file now on disk; on failure puts `restore` back and reports nginx's words.
    fn validate_or_restore(&self, restore: Option<&str>) -> Result<(), StepError> {
        if let Err(msg) = run_argv(&self.test) {
            match restore {
                Some(c) => write_atomic(&self.upstream_file, c.as_bytes()),
                None => std::fs::remove_file(&self.upstream_file),
            }
            .map_err(|e| StepError(format!("nginx rejected the new upstream file and restoring the previous one failed: {e}; nginx said: {msg}")))?;
            return Err(StepError(format!("nginx -t rejected the new upstream file; the live config is unchanged. nginx said: {msg}")));
        }
        Ok(())
    }

    /// Reloads and waits until a new worker generation serves and the old one has exited (at most
/// 10 s more).
    async fn reload_and_confirm(&self) -> Result<Duration, StepError> {
        let master = self.master()?;
        let before = children(master);
        let t0 = Instant::now();
        match &self.reload {
            Some(argv) => run_argv(argv).map_err(|m| StepError(format!("nginx reload failed: {m}")))?,
            None => {
                if unsafe { libc::kill(master, libc::SIGHUP) } != 0 {
                    return Err(StepError(format!("nginx: cannot signal the master process {master}: {}", std::io::Error::last_os_error())));
                }
            }
        }
        let deadline = t0 + Duration::from_secs(10);
        loop {
            let now = children(master);
            if now.iter().any(|p| !before.contains(p)) {
                // The old generation still finishes requests it had accepted, with the old
                // upstreams: wait until it is gone, so a retire that follows never stops a server
                // an old worker still sends to (bounded: a long request must not stall the release).
                let drain = Instant::now() + Duration::from_secs(10);
                while children(master).iter().any(|p| before.contains(p)) && Instant::now() < drain {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                return Ok(t0.elapsed());
            }
            if Instant::now() > deadline {
                return Err(StepError(format!("nginx did not start new workers within 10s of the reload (master {master}); check nginx's error log: the new config may have failed to apply")));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn read_opt(path: &Path) -> Result<Option<String>, StepError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StepError(format!("nginx: cannot read {}: {e}", path.display()))),
    }
}

impl Router for Nginx {
    fn apply(&self, upstream: String, servers: Vec<Server>, state_dir: PathBuf, key: String) -> BoxFuture<Result<(Value, String), StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let _g = LOCK.lock().await;
            let file = this.upstream_file.clone();
            let before = saved_before(&state_dir, &key, || Ok(json!({ "router": "nginx", "file": file, "previous": read_opt(&file)? })))?;
            let current = read_opt(&file)?;
            let new = render(current.as_deref().unwrap_or(""), &upstream, &servers).map_err(|m| StepError(format!("nginx: {m}")))?;
            if current.as_deref() != Some(new.as_str()) {
                write_atomic(&file, new.as_bytes()).map_err(|e| StepError(format!("nginx: cannot write {}: {e}", file.display())))?;
                this.validate_or_restore(current.as_deref())?;
            }
            let took = this.reload_and_confirm().await?;
            let desc = servers.iter().filter(|s| s.weight > 0).map(|s| format!("{}={}", s.addr, s.weight)).collect::<Vec<_>>().join(" ");
            Ok((before, format!("upstream {upstream}: {desc}; nginx reloaded, old workers gone after {} ms", took.as_millis())))
        })
    }

    fn restore(&self, undo: Value) -> BoxFuture<Result<(), StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let _g = LOCK.lock().await;
            let file = undo.get("file").and_then(Value::as_str).map(PathBuf::from).unwrap_or_else(|| this.upstream_file.clone());
            let previous = undo.get("previous").and_then(Value::as_str);
            let current = read_opt(&file)?;
            if current.as_deref() != previous {
                match previous {
                    Some(c) => write_atomic(&file, c.as_bytes()),
                    None => std::fs::remove_file(&file),
                }
                .map_err(|e| StepError(format!("nginx: cannot restore {}: {e}", file.display())))?;
                this.validate_or_restore(current.as_deref())?;
            }
            this.reload_and_confirm().await?;
            Ok(())
        })
    }

    fn observe(&self, _upstream: String, canary: Vec<String>, window: Duration, early: Arc<dyn Fn(&Observation) -> bool + Send + Sync>) -> BoxFuture<Result<Observation, StepError>> {
        let log = self.access_log.clone();
        Box::pin(async move {
            let log = log.ok_or_else(|| StepError("analysis with nginx needs `access_log` in [router], written in cutover's JSON log_format (see docs/routers.md)".into()))?;
            let start = std::fs::metadata(&log).map(|m| m.len()).map_err(|e| StepError(format!("nginx: cannot read the access log {}: {e}", log.display())))?;
            let t0 = Instant::now();
            let mut obs;
            loop {
                tokio::time::sleep(Duration::from_millis(500).min(window.saturating_sub(t0.elapsed()).max(Duration::from_millis(10)))).await;
                obs = scan(&log, start, &canary)?;
                if t0.elapsed() >= window || early(&obs) {
                    return Ok(obs);
                }
            }
        })
    }

    fn check(&self, upstreams: Vec<(String, Vec<String>)>) -> BoxFuture<Result<String, StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let master = this.master()?;
            run_argv(&this.test).map_err(|m| StepError(format!("nginx -t fails before the release changes anything: {m}")))?;
            if let Some(log) = &this.access_log {
                std::fs::metadata(log).map_err(|e| StepError(format!("nginx: the access log {} is not readable: {e}", log.display())))?;
            }
            let names: Vec<&str> = upstreams.iter().map(|(u, _)| u.as_str()).collect();
            Ok(format!("nginx master {master}, config valid; upstream file {} (upstreams: {})", this.upstream_file.display(), names.join(", ")))
        })
    }
}

/// Reads the access log from byte `start` and counts the canary's requests.
///
/// Each line is one JSON object, from this `log_format`:
/// `{"time":$msec,"upstream":"$upstream_addr","upstream_status":"$upstream_status","status":$status,"request_time":$request_time}`.
/// When nginx tried several servers for one request, `upstream` and `upstream_status` list
/// each attempt; every attempt at a canary server counts, and a failed attempt is an error even
/// when a retry elsewhere succeeded.
pub fn scan(log: &Path, start: u64, canary: &[String]) -> Result<Observation, StepError> {
    use std::io::{BufRead, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).map_err(|e| StepError(format!("nginx: cannot open {}: {e}", log.display())))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    // A rotated (shorter) log is read from its start.
    f.seek(SeekFrom::Start(if len < start { 0 } else { start })).map_err(|e| StepError(format!("nginx: {}: {e}", log.display())))?;
    let mut obs = Observation { latency_kind: "p99", ..Default::default() };
    let mut times = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
        let addrs = v.get("upstream").and_then(Value::as_str).unwrap_or("");
        let statuses = v.get("upstream_status").and_then(Value::as_str).unwrap_or("");
        let mut statuses = statuses.split([',', ':']).map(str::trim);
        let mut any = false;
        for a in addrs.split([',', ':']).map(str::trim).collect::<Vec<_>>().chunks(2) {
            let status = statuses.next().unwrap_or("");
            let addr = a.join(":");
            if canary.contains(&addr) {
                any = true;
                obs.requests += 1;
                if status.parse::<u16>().map_or(true, |s| s >= 500) {
                    obs.errors += 1;
                }
            }
        }
        if any && let Some(t) = v.get("request_time").and_then(|t| t.as_f64().or_else(|| t.as_str().and_then(|s| s.parse().ok()))) {
            times.push(t);
        }
    }
    obs.latency = super::p99(&mut times).map(Duration::from_secs_f64);
    Ok(obs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(addr: &str, weight: u32) -> Server {
        Server { addr: addr.into(), weight }
    }

    #[test]
    fn render_keeps_other_directives_and_blocks() {
        let before = "# mine\nupstream web {\n    server 10.0.0.1:80;\n}\nupstream api {\n    keepalive 16;\n    server 127.0.0.1:3333 weight=100;\n}\n";
        let out = render(before, "api", &[s("127.0.0.1:3333", 90), s("127.0.0.1:3334", 10)]).unwrap();
        assert_eq!(out, "# mine\nupstream web {\n    server 10.0.0.1:80;\n}\nupstream api {\n    keepalive 16;\n    server 127.0.0.1:3333 weight=90;\n    server 127.0.0.1:3334 weight=10;\n}\n");
        let back = render(&out, "api", &[s("127.0.0.1:3333", 100), s("127.0.0.1:3334", 0)]).unwrap();
        assert_eq!(back, before);
    }

    #[test]
    fn render_appends_a_missing_block_and_refuses_an_empty_one() {
        assert_eq!(render("", "api", &[s("127.0.0.1:1", 1)]).unwrap(), "upstream api {\n    server 127.0.0.1:1 weight=1;\n}\n");
        assert!(render("", "api", &[s("127.0.0.1:1", 0)]).is_err());
    }

    #[test]
    fn scan_counts_canary_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.json");
        std::fs::write(&log, concat!(
            "{\"time\":1.0,\"upstream\":\"127.0.0.1:3334\",\"upstream_status\":\"200\",\"status\":200,\"request_time\":0.010}\n",
            "{\"time\":1.1,\"upstream\":\"127.0.0.1:3333\",\"upstream_status\":\"500\",\"status\":500,\"request_time\":0.020}\n",
            "{\"time\":1.2,\"upstream\":\"127.0.0.1:3334, 127.0.0.1:3333\",\"upstream_status\":\"502, 200\",\"status\":200,\"request_time\":0.030}\n",
            "not json\n",
        )).unwrap();
        let obs = scan(&log, 0, &["127.0.0.1:3334".into()]).unwrap();
        assert_eq!((obs.requests, obs.errors), (2, 1));
        assert_eq!(obs.latency, Some(Duration::from_secs_f64(0.030)));
    }
}
