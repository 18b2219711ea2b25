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

/// A token of an nginx config: a word, `{`, `}` or `;`, with its byte range. Comments
/// (`#` to the end of the line) are skipped, quoted strings are one word.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Word,
    Open,
    Close,
    Semi,
}

fn tokens(text: &str) -> Vec<(Tok, usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => {
                out.push((Tok::Open, i, i + 1));
                i += 1;
            }
            b'}' => {
                out.push((Tok::Close, i, i + 1));
                i += 1;
            }
            b';' => {
                out.push((Tok::Semi, i, i + 1));
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            q @ (b'"' | b'\'') => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.push((Tok::Word, start, i));
            }
            _ => {
                let start = i;
                // As in nginx, `#` starts a comment only where a token would start.
                while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'{' | b'}' | b';') {
                    i += 1;
                }
                out.push((Tok::Word, start, i));
            }
        }
    }
    out
}

/// Token indexes of the `{` and matching `}` of `upstream NAME { ... }`.
fn find_block(toks: &[(Tok, usize, usize)], text: &str, upstream: &str) -> Option<(usize, usize)> {
    let w = |k: usize| toks.get(k).filter(|t| t.0 == Tok::Word).map(|t| &text[t.1..t.2]);
    let open = (0..toks.len()).find(|&k| w(k) == Some("upstream") && w(k + 1) == Some(upstream) && toks.get(k + 2).is_some_and(|t| t.0 == Tok::Open))? + 2;
    let mut depth = 0;
    for (k, t) in toks.iter().enumerate().skip(open) {
        match t.0 {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth -= 1;
                if depth == 0 {
                    return Some((open, k));
                }
            }
            _ => {}
        }
    }
    None
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// Rewrites the `server` directives of `upstream NAME { ... }` in `content`, or appends the
/// block. Every other directive in the block, and everything outside it, is kept byte for byte;
/// a server that stays keeps its other parameters (`max_fails=`, `backup`, ...), and only its
/// `weight=` (and `down`) are cutover's. Servers of weight 0 are left out: nginx sends them
/// nothing then.
pub fn render(content: &str, upstream: &str, servers: &[Server]) -> Result<String, String> {
    let live: Vec<&Server> = servers.iter().filter(|s| s.weight > 0).collect();
    if live.is_empty() {
        return Err(format!("upstream `{upstream}` would have no server with a weight above 0"));
    }
    let toks = tokens(content);
    let Some((open, close)) = find_block(&toks, content, upstream) else {
        let mut out = content.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("upstream {upstream} {{\n"));
        for s in &live {
            out.push_str(&format!("    server {} weight={};\n", s.addr, s.weight));
        }
        out.push_str("}\n");
        return Ok(out);
    };
    // The block's `server` statements: byte ranges and the parameters worth keeping.
    let mut removed: Vec<(usize, usize)> = Vec::new();
    let mut params: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut k = open + 1;
    while k < close {
        let start = k;
        while k < close && toks[k].0 != Tok::Semi {
            k += 1;
        }
        let words: Vec<&str> = toks[start..k].iter().filter(|t| t.0 == Tok::Word).map(|t| &content[t.1..t.2]).collect();
        if words.first() == Some(&"server") && k < close {
            removed.push((toks[start].1, toks[k].2));
            if let Some(addr) = words.get(1) {
                params.insert(addr.to_string(), words[2..].iter().filter(|p| !p.starts_with("weight=") && **p != "down").map(|p| p.to_string()).collect());
            }
        }
        k += 1;
    }
    let eol = if content.contains("\r\n") { "\r\n" } else { "\n" };
    let line_of = |s: &Server| {
        let extra = params.get(&s.addr).map(|p| p.iter().map(|p| format!(" {p}")).collect::<String>()).unwrap_or_default();
        format!("server {} weight={}{extra};", s.addr, s.weight)
    };
    let (close_at, open_at) = (toks[close].1, toks[open].1);
    let mut out = String::with_capacity(content.len() + 64);
    let mut pos = 0;
    let mut inserted = false;
    // On lines of their own, or inline where the block's servers shared a line.
    let insert = |out: &mut String, own_line: bool| {
        if own_line {
            live.iter().for_each(|s| out.push_str(&format!("    {}{eol}", line_of(s))));
        } else {
            out.push_str(&live.iter().map(|s| line_of(s)).collect::<Vec<_>>().join(" "));
        }
    };
    for (a, b) in &removed {
        // A statement alone on its lines goes with its indentation and line end.
        let ls = line_start(content, *a);
        let own_start = content[ls..*a].trim().is_empty() && ls > open_at;
        let le = content[*b..].find('\n').map_or(content.len(), |i| b + i);
        let own_end = content[*b..le].trim().is_empty() && le < close_at;
        let (from, to) = (if own_start { ls } else { *a }, if own_end { (le + 1).min(content.len()) } else { *b });
        out.push_str(&content[pos..from]);
        if !inserted {
            insert(&mut out, own_start && own_end);
            inserted = true;
        }
        pos = to;
    }
    if !inserted {
        let ls = line_start(content, close_at);
        if content[ls..close_at].trim().is_empty() && ls > open_at {
            out.push_str(&content[pos..ls]);
            insert(&mut out, true);
            pos = ls;
        } else {
            out.push_str(&content[pos..close_at]);
            if !out.ends_with(' ') {
                out.push(' ');
            }
            insert(&mut out, false);
            out.push(' ');
            pos = close_at;
        }
    }
    out.push_str(&content[pos..]);
    Ok(out)
}

/// Runs `argv` (bounded by 30 s: a hung `nginx -t` must not hang the release); nginx's own
/// message on failure.
async fn run_argv(argv: &[String]) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("an empty argv")?;
    let child = tokio::process::Command::new(program).args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(30), child).await.map_err(|_| format!("`{}` did not finish within 30 s", argv.join(" ")))?.map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if msg.is_empty() { format!("`{}` exited with {}", argv.join(" "), out.status) } else { msg })
    }
}

/// Children of `pid`: the kernel's list when it keeps one, else a walk of /proc.
fn children(pid: i32) -> BTreeSet<i32> {
    if let Ok(list) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return list.split_whitespace().filter_map(|p| p.parse().ok()).collect();
    }
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
        let pid: i32 = text.trim().parse().ok().filter(|p| *p > 1).ok_or_else(|| StepError(format!("nginx: {} does not hold a master pid (it says `{}`)", self.pid_file.display(), text.trim())))?;
        if unsafe { libc::kill(pid, 0) } != 0 {
            return Err(StepError(format!("nginx: the master process {pid} from {} is not running", self.pid_file.display())));
        }
        Ok(pid)
    }

    /// Puts `content` back as the upstream file (`None`: there was none).
    fn put_back(&self, content: Option<&str>) -> std::io::Result<()> {
        match content {
            Some(c) => write_atomic(&self.upstream_file, c.as_bytes()),
            None => std::fs::remove_file(&self.upstream_file).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }),
        }
    }

    /// Validates the file now on disk; on failure puts `restore` back and reports nginx's words.
    async fn validate_or_restore(&self, restore: Option<&str>) -> Result<(), StepError> {
        if let Err(msg) = run_argv(&self.test).await {
            self.put_back(restore).map_err(|e| StepError(format!("nginx rejected the new upstream file and restoring the previous one failed: {e}; nginx said: {msg}")))?;
            return Err(StepError(format!("nginx -t rejected the new upstream file; the live config is unchanged. nginx said: {msg}")));
        }
        Ok(())
    }

    /// Reloads and waits until a new worker generation serves and the old one has exited (at
    /// most 10 s more).
    async fn reload_and_confirm(&self) -> Result<Duration, StepError> {
        let master = self.master()?;
        let before = children(master);
        let t0 = Instant::now();
        match &self.reload {
            Some(argv) => run_argv(argv).await.map_err(|m| StepError(format!("nginx reload failed: {m}")))?,
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
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return Ok(t0.elapsed());
            }
            if Instant::now() > deadline {
                return Err(StepError(format!("nginx did not start new workers within 10s of the reload (master {master}); check nginx's error log: the new config may have failed to apply")));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Makes `target` the live upstream file (`None`: no file): writes it if it differs from
    /// the file on disk, validates (a rejected file is put back), reloads and confirms.
    async fn go_to(&self, target: Option<&str>) -> Result<Duration, StepError> {
        let current = read_opt(&self.upstream_file)?;
        if current.as_deref() != target {
            match target {
                Some(t) => write_atomic(&self.upstream_file, t.as_bytes()).map_err(|e| StepError(format!("nginx: cannot write {}: {e}", self.upstream_file.display())))?,
                None => self.put_back(None).map_err(|e| StepError(format!("nginx: cannot remove {}: {e}", self.upstream_file.display())))?,
            }
            self.validate_or_restore(current.as_deref()).await?;
        }
        self.reload_and_confirm().await
    }
}

fn read_opt(path: &Path) -> Result<Option<String>, StepError> {
    super::read_opt("nginx", path)
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
            let took = match this.go_to(Some(&new)).await {
                Ok(took) => took,
                Err(e) => {
                    // A failed step is not undone by a rollback: go back to the state saved before
                    // the step (not merely this attempt's reading, which a crashed attempt may
                    // already have changed).
                    // When the file on disk already is that one (nginx -t rejected the new file,
                    // which was put back at once), nothing went live and nothing is reloaded.
                    let previous = before.get("previous").and_then(Value::as_str);
                    let back = if read_opt(&file)?.as_deref() == previous {
                        String::new()
                    } else {
                        match this.go_to(previous).await {
                            Ok(_) => "; the file from before the step is back and live".to_string(),
                            Err(e2) => format!("; going back to the file from before the step failed too: {}", e2.0),
                        }
                    };
                    return Err(StepError(format!("{}{back}", e.0)));
                }
            };
            let desc = servers.iter().filter(|s| s.weight > 0).map(|s| format!("{}={}", s.addr, s.weight)).collect::<Vec<_>>().join(" ");
            Ok((before, format!("upstream {upstream}: {desc}; nginx reloaded, old workers gone after {} ms", took.as_millis())))
        })
    }

    fn restore(&self, undo: Value) -> BoxFuture<Result<(), StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let _g = LOCK.lock().await;
            let file = undo.get("file").and_then(Value::as_str).map(PathBuf::from).unwrap_or_else(|| this.upstream_file.clone());
            let this = Nginx { upstream_file: file, ..this };
            this.go_to(undo.get("previous").and_then(Value::as_str)).await?;
            Ok(())
        })
    }

    fn observe(&self, _upstream: String, canary: Vec<String>, window: Duration, early: Arc<dyn Fn(&Observation) -> bool + Send + Sync>) -> BoxFuture<Result<Observation, StepError>> {
        let log = self.access_log.clone();
        Box::pin(async move {
            let log = log.ok_or_else(|| StepError("analysis with nginx needs `access_log` in [router], written in cutover's JSON log_format (see docs/routers.md)".into()))?;
            let start = std::fs::metadata(&log).map(|m| m.len()).map_err(|e| StepError(format!("nginx: cannot read the access log {}: {e}", log.display())))?;
            let mut scan = Scan::new(start, canary);
            let t0 = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(500).min(window.saturating_sub(t0.elapsed()).max(Duration::from_millis(10)))).await;
                scan.read(&log)?;
                let obs = scan.observation();
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
            run_argv(&this.test).await.map_err(|m| StepError(format!("nginx -t fails before the release changes anything: {m}")))?;
            if let Some(log) = &this.access_log {
                std::fs::metadata(log).map_err(|e| StepError(format!("nginx: the access log {} is not readable: {e}", log.display())))?;
            }
            let names: Vec<&str> = upstreams.iter().map(|(u, _)| u.as_str()).collect();
            Ok(format!("nginx master {master}, config valid; upstream file {} (upstreams: {})", this.upstream_file.display(), names.join(", ")))
        })
    }
}

/// The canary's requests in the access log, read incrementally from a byte offset: each poll
/// reads only what was appended since the last one.
///
/// Each line is one JSON object, from this `log_format`:
/// `{"time":$msec,"upstream":"$upstream_addr","upstream_status":"$upstream_status","status":$status,"request_time":$request_time}`.
/// When nginx tried several servers for one request, `upstream` and `upstream_status` list each
/// attempt (`, ` between attempts, ` : ` between upstream groups); every attempt at a canary
/// server counts, and a failed attempt is an error even when a retry elsewhere succeeded.
pub struct Scan {
    offset: u64,
    /// (device, inode) of the file read so far: a rotated log is a new file.
    file_id: Option<(u64, u64)>,
    partial: Vec<u8>,
    canary: Vec<String>,
    requests: u64,
    errors: u64,
    times: Vec<f64>,
}

impl Scan {
    /// Starts reading at byte `offset`.
    pub fn new(offset: u64, canary: Vec<String>) -> Self {
        Self { offset, file_id: None, partial: Vec::new(), canary, requests: 0, errors: 0, times: Vec::new() }
    }

    /// Reads what was appended since the last call.
    pub fn read(&mut self, log: &Path) -> Result<(), StepError> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(log).map_err(|e| StepError(format!("nginx: cannot open {}: {e}", log.display())))?;
        let meta = f.metadata().map_err(|e| StepError(format!("nginx: {}: {e}", log.display())))?;
        let id = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        // Rotated (another file, or this one truncated): the new file from its start.
        if self.file_id.is_some_and(|old| old != id) || meta.len() < self.offset {
            self.offset = 0;
            self.partial.clear();
        }
        self.file_id = Some(id);
        f.seek(SeekFrom::Start(self.offset)).map_err(|e| StepError(format!("nginx: {}: {e}", log.display())))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(|e| StepError(format!("nginx: {}: {e}", log.display())))?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let complete = self.partial.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let lines: Vec<u8> = self.partial.drain(..complete).collect();
        for line in lines.split(|b| *b == b'\n') {
            self.line(line);
        }
        Ok(())
    }

    fn line(&mut self, line: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(line) else { return };
        let attempts = |k: &str| -> Vec<String> { v.get(k).and_then(Value::as_str).unwrap_or("").split([',']).flat_map(|g| g.split(" : ")).map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect() };
        let (addrs, statuses) = (attempts("upstream"), attempts("upstream_status"));
        let mut any = false;
        for (i, addr) in addrs.iter().enumerate() {
            if self.canary.contains(addr) {
                any = true;
                self.requests += 1;
                if statuses.get(i).and_then(|s| s.parse::<u16>().ok()).is_none_or(|s| s >= 500) {
                    self.errors += 1;
                }
            }
        }
        if any && let Some(t) = v.get("request_time").and_then(|t| t.as_f64().or_else(|| t.as_str().and_then(|s| s.parse().ok()))) {
            self.times.push(t);
        }
    }

    /// What was seen so far.
    pub fn observation(&self) -> Observation {
        let mut times = self.times.clone();
        Observation { requests: self.requests, errors: self.errors, latency: super::p99(&mut times).map(Duration::from_secs_f64), latency_kind: "p99" }
    }
}

/// Counts the canary's requests in `log` from byte `start` (one pass).
pub fn scan(log: &Path, start: u64, canary: &[String]) -> Result<Observation, StepError> {
    let mut s = Scan::new(start, canary.to_vec());
    s.read(log)?;
    Ok(s.observation())
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
    fn render_handles_comments_one_line_blocks_continued_lines_and_server_parameters() {
        // A `}` in a comment does not end the block; the comment stays.
        let c = "upstream api {\n    # was: server 10.0.0.9:80; }\n    server 127.0.0.1:3333 weight=100 max_fails=3 fail_timeout=5s;\n}\n";
        assert_eq!(render(c, "api", &[s("127.0.0.1:3333", 90), s("127.0.0.1:3334", 10)]).unwrap(), "upstream api {\n    # was: server 10.0.0.9:80; }\n    server 127.0.0.1:3333 weight=90 max_fails=3 fail_timeout=5s;\n    server 127.0.0.1:3334 weight=10;\n}\n");
        // One line: other directives survive.
        let c = "upstream api { server 127.0.0.1:3333; keepalive 8; }\n";
        assert_eq!(render(c, "api", &[s("127.0.0.1:3334", 100)]).unwrap(), "upstream api { server 127.0.0.1:3334 weight=100; keepalive 8; }\n");
        // A server directive over two lines goes as a whole.
        let c = "upstream api{\n    server 127.0.0.1:3333\n        weight=100;\n    keepalive 4;\n}\n";
        assert_eq!(render(c, "api", &[s("127.0.0.1:3334", 100)]).unwrap(), "upstream api{\n    server 127.0.0.1:3334 weight=100;\n    keepalive 4;\n}\n");
        // Another upstream whose name starts the same is not touched; `down` is cutover's.
        let c = "upstream api2 {\n    server 10.0.0.1:80;\n}\nupstream api {\n    server 127.0.0.1:3333 down;\n}\n";
        assert_eq!(render(c, "api", &[s("127.0.0.1:3333", 5)]).unwrap(), "upstream api2 {\n    server 10.0.0.1:80;\n}\nupstream api {\n    server 127.0.0.1:3333 weight=5;\n}\n");
        // `#` inside a word is not a comment (as in nginx); CRLF files get CRLF lines.
        let c = "upstream api {\r\n    server unix:/run/a#1.sock;\r\n}\r\n";
        assert_eq!(render(c, "api", &[s("127.0.0.1:1", 1)]).unwrap(), "upstream api {\r\n    server 127.0.0.1:1 weight=1;\r\n}\r\n");
        // A block without servers gets them before its closing brace.
        let c = "upstream api {\n    keepalive 4;\n}\n";
        assert_eq!(render(c, "api", &[s("127.0.0.1:1", 1)]).unwrap(), "upstream api {\n    keepalive 4;\n    server 127.0.0.1:1 weight=1;\n}\n");
    }

    #[test]
    fn scan_splits_attempts_and_groups_and_reads_incrementally() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.json");
        std::fs::write(&log, "{\"upstream\":\"unix:/tmp/x.sock, 127.0.0.1:3334 : 127.0.0.1:3335\",\"upstream_status\":\"502, 200 : 200\",\"request_time\":0.5}\n{\"upstream\":\"127.0.0.1:33").unwrap();
        let mut sc = Scan::new(0, vec!["127.0.0.1:3334".into()]);
        sc.read(&log).unwrap();
        assert_eq!((sc.observation().requests, sc.observation().errors), (1, 0), "the second attempt (200) was the canary's");
        // The half-written line is read once it is complete.
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"34\",\"upstream_status\":\"500\",\"request_time\":0.1}\n").unwrap();
        sc.read(&log).unwrap();
        assert_eq!((sc.observation().requests, sc.observation().errors), (2, 1));
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
