//! nginx: the upstream file cutover owns, `nginx -t`, reload, and a confirmation that the new
//! configuration is the one serving.
//!
//! A reload starts a new generation of worker processes; the old ones finish their requests
//! and exit. cutover confirms a reload took effect by waiting for a worker of the master that
//! did not exist before the reload (a reload nginx rejects at apply time starts none). Idle
//! keep-alive client connections of the old workers are closed by the reload: clients that
//! reuse connections without retrying see failures, which is why HAProxy is offered too.

use super::{Observation, Router, RouterBefore, other_router, saved_before, write_atomic};
use crate::driver::{BoxFuture, StepError};
use cutover_planner::dag::{PlannedShift, Server};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
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
                while i < b.len()
                    && !b[i].is_ascii_whitespace()
                    && !matches!(b[i], b'{' | b'}' | b';')
                {
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
    let w = |k: usize| {
        toks.get(k)
            .filter(|t| t.0 == Tok::Word)
            .map(|t| &text[t.1..t.2])
    };
    let open = (0..toks.len()).find(|&k| {
        w(k) == Some("upstream")
            && w(k + 1) == Some(upstream)
            && toks.get(k + 2).is_some_and(|t| t.0 == Tok::Open)
    })? + 2;
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

/// `addr` as cutover compares server addresses: `localhost` and `[::1]` are `127.0.0.1` (the
/// containers listen on loopback, where they are one server), a missing port is nginx's 80,
/// quotes and letter case do not count. Anything else (a hostname, `unix:`) is itself.
pub fn same_addr(addr: &str) -> String {
    let a = addr
        .trim_matches(|c| c == '"' || c == '\'')
        .to_ascii_lowercase();
    if a.starts_with("unix:") {
        return a;
    }
    let (host, port) = match a.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, rest)) => (
                format!("[{h}]"),
                rest.strip_prefix(':').unwrap_or("80").to_string(),
            ),
            None => return a,
        },
        None => match a.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), p.to_string()),
            Some(_) => return a,
            None => (a.clone(), "80".to_string()),
        },
    };
    let host = match host.as_str() {
        "localhost" | "[::1]" | "[0:0:0:0:0:0:0:1]" => "127.0.0.1".to_string(),
        _ => host,
    };
    format!("{host}:{port}")
}

/// One `server` statement of an upstream block, as written.
#[derive(Debug)]
struct ServerStmt {
    /// Bytes of the statement, from `server` to its `;` included.
    span: (usize, usize),
    /// Byte ranges of its words: `server`, the address, the parameters.
    words: Vec<(usize, usize)>,
}

impl ServerStmt {
    fn word<'a>(&self, text: &'a str, k: usize) -> Option<&'a str> {
        self.words.get(k).map(|(a, b)| &text[*a..*b])
    }

    fn params<'a>(&self, text: &'a str) -> Vec<&'a str> {
        self.words
            .iter()
            .skip(2)
            .map(|(a, b)| &text[*a..*b])
            .collect()
    }

    /// Whether the statement is alone on its lines: then it goes with its indentation and line
    /// end. `block` is the byte range of the block's braces.
    fn whole_lines(&self, text: &str, block: (usize, usize)) -> Option<(usize, usize)> {
        let (a, b) = self.span;
        let ls = line_start(text, a);
        let le = text[b..].find('\n').map_or(text.len(), |i| b + i);
        (text[ls..a].trim().is_empty()
            && ls > block.0
            && text[b..le].trim().is_empty()
            && le < block.1)
            .then(|| (ls, (le + 1).min(text.len())))
    }
}

/// Parameters of a server line that say how cutover routes to it, not how nginx treats a
/// server: cutover sets `weight=` and drops `down` when it gives the server traffic, and never
/// copies them (nor a hostname's `resolve`/`service=`) to a new server's line.
fn routing_param(p: &str) -> bool {
    p.starts_with("weight=")
        || p.starts_with("service=")
        || matches!(p, "down" | "backup" | "resolve" | "drain")
}

/// The `server` statements between the block's braces (token indexes `open`, `close`).
fn server_stmts(
    toks: &[(Tok, usize, usize)],
    text: &str,
    open: usize,
    close: usize,
) -> Vec<ServerStmt> {
    let mut out = Vec::new();
    let mut k = open + 1;
    while k < close {
        let start = k;
        while k < close && toks[k].0 != Tok::Semi {
            k += 1;
        }
        let words: Vec<(usize, usize)> = toks[start..k]
            .iter()
            .filter(|t| t.0 == Tok::Word)
            .map(|t| (t.1, t.2))
            .collect();
        if k < close
            && words
                .first()
                .is_some_and(|(a, b)| &text[*a..*b] == "server")
        {
            out.push(ServerStmt {
                span: (toks[start].1, toks[k].2),
                words,
            });
        }
        k += 1;
    }
    out
}

/// The servers of an upstream block that the release does not manage (they stay as written):
/// (address as written, its parameters).
pub fn unmanaged(content: &str, upstream: &str, addrs: &[String]) -> Vec<(String, String)> {
    let toks = tokens(content);
    let Some((open, close)) = find_block(&toks, content, upstream) else {
        return Vec::new();
    };
    let ours: BTreeSet<String> = addrs.iter().map(|a| same_addr(a)).collect();
    server_stmts(&toks, content, open, close)
        .iter()
        .filter(|s| {
            s.word(content, 1)
                .is_none_or(|a| !ours.contains(&same_addr(a)))
        })
        .map(|s| {
            (
                s.word(content, 1).unwrap_or("").to_string(),
                s.params(content).join(" "),
            )
        })
        .collect()
}

/// Rewrites the servers of `upstream NAME { ... }` in `content` that the plan names (every
/// address in `servers`, compared with [`same_addr`]), or appends the block. Everything else is
/// kept byte for byte: other directives, comments, and every server the release does not manage
/// (a `backup` maintenance server, another application's, one marked `down`).
///
/// Of a planned server's line, only `weight=` changes (and `down` goes when it gets traffic); its
/// address as written and its other parameters (`max_fails=`, `fail_timeout=`, ...) stay. A
/// planned server of weight 0 is left out (nginx has no weight 0). A planned server with no line
/// yet gets one after the release's last line, with that line's indentation and the parameters
/// of the release's first line (so `max_fails=1 fail_timeout=1s` outlive the old version).
pub fn render(content: &str, upstream: &str, servers: &[Server]) -> Result<String, String> {
    let live: Vec<&Server> = servers.iter().filter(|s| s.weight > 0).collect();
    if live.is_empty() {
        return Err(format!(
            "upstream `{upstream}` would have no server with a weight above 0; hint: every shift \
             must leave at least one server with traffic"
        ));
    }
    let toks = tokens(content);
    let Some((open, close)) = find_block(&toks, content, upstream) else {
        return Ok(with_block_appended(content, upstream, &live));
    };
    let ours = release_lines(content, &toks, (open, close), upstream, servers)?;
    let block = (toks[open].1, toks[close].1);
    let eol = if content.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    // A new server's line: the parameters of the release's first line, minus routing ones.
    let inherited: String = ours
        .first()
        .map(|(st, _)| {
            st.params(content)
                .into_iter()
                .filter(|p| !routing_param(p))
                .map(|p| format!(" {p}"))
                .collect()
        })
        .unwrap_or_default();
    let new: Vec<String> = live
        .iter()
        .filter(|s| !ours.iter().any(|(_, p)| p.addr == s.addr))
        .map(|s| format!("server {} weight={}{inherited};", s.addr, s.weight))
        .collect();
    // Edits as (from, to, replacement), in file order and not overlapping.
    let mut edits: Vec<Edit> = Vec::new();
    for (i, (st, p)) in ours.iter().enumerate() {
        let last = i + 1 == ours.len();
        edits.push(line_edit(
            content,
            block,
            st,
            p.weight,
            if last { &new } else { &[] },
            eol,
        ));
    }
    if ours.is_empty() {
        edits.push(insertion(content, block, &new, eol));
    }
    Ok(edited(content, edits))
}

/// A replacement of `content[from..to]`.
type Edit = (usize, usize, String);

/// `content` with a new `upstream` block of the `live` servers at its end.
fn with_block_appended(content: &str, upstream: &str, live: &[&Server]) -> String {
    let mut out = content.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("upstream {upstream} {{\n"));
    for s in live {
        out.push_str(&format!("    server {} weight={};\n", s.addr, s.weight));
    }
    out.push_str("}\n");
    out
}

/// The statements of the block (`open`, `close`: its braces' tokens) for the release's servers,
/// each with its planned server; refuses a server written twice and one marked `backup`.
fn release_lines<'s>(
    content: &str,
    toks: &[(Tok, usize, usize)],
    (open, close): (usize, usize),
    upstream: &str,
    servers: &'s [Server],
) -> Result<Vec<(ServerStmt, &'s Server)>, String> {
    let planned: BTreeMap<String, &Server> =
        servers.iter().map(|s| (same_addr(&s.addr), s)).collect();
    let mut ours: Vec<(ServerStmt, &Server)> = Vec::new();
    for st in server_stmts(toks, content, open, close) {
        let Some(p) = st.word(content, 1).and_then(|a| planned.get(&same_addr(a))) else {
            continue;
        };
        let written = st.word(content, 1).unwrap_or("");
        if let Some((other, _)) = ours
            .iter()
            .find(|(o, _)| same_addr(o.word(content, 1).unwrap_or("")) == same_addr(written))
        {
            return Err(format!(
                "upstream `{upstream}` has two `server` lines for {} (`{}` and `{written}`): nginx \
                 would count it twice; hint: keep one of the two lines",
                p.addr,
                other.word(content, 1).unwrap_or("")
            ));
        }
        if st.params(content).contains(&"backup") {
            return Err(format!(
                "upstream `{upstream}`: the release's server `{written}` is marked `backup`, which \
                 gets traffic only when every other server is down, so no shift could move traffic \
                 to or from it; hint: remove `backup` from that line (a maintenance server on a \
                 port the release does not use may stay `backup`)"
            ));
        }
        ours.push((st, p));
    }
    Ok(ours)
}

/// The edit of one of the release's server statements: its weight set (gone at weight 0), then
/// the `new` servers' lines after it (the release's last line gets them), with its indentation.
fn line_edit(
    content: &str,
    block: (usize, usize),
    st: &ServerStmt,
    weight: u32,
    new: &[String],
    eol: &str,
) -> Edit {
    let lines = st.whole_lines(content, block);
    let (from, to) = lines.unwrap_or(st.span);
    let mut text = if weight == 0 {
        String::new()
    } else {
        content[from..st.span.0].to_string()
            + &set_weight(content, st, weight)
            + &content[st.span.1..to]
    };
    if !new.is_empty() {
        match lines {
            Some(_) => {
                let indent = &content[from..st.span.0];
                new.iter()
                    .for_each(|l| text.push_str(&format!("{indent}{l}{eol}")));
            }
            None if text.is_empty() => text = new.join(" "),
            None => text = format!("{text} {}", new.join(" ")),
        }
    }
    // A statement that goes from inside a line takes the blanks after it along.
    let to = if lines.is_none() && text.is_empty() {
        to + content[to..].len() - content[to..].trim_start_matches([' ', '\t']).len()
    } else {
        to
    };
    (from, to, text)
}

/// The `new` servers' lines in a block that has none of the release's yet: before its closing
/// brace, on lines of their own when the brace has one.
fn insertion(content: &str, block: (usize, usize), new: &[String], eol: &str) -> Edit {
    let at = block.1;
    let ls = line_start(content, at);
    if content[ls..at].trim().is_empty() && ls > block.0 {
        return (
            ls,
            ls,
            new.iter().map(|l| format!("    {l}{eol}")).collect(),
        );
    }
    let sep = if content[..at].ends_with(' ') {
        ""
    } else {
        " "
    };
    (at, at, format!("{sep}{} ", new.join(" ")))
}

/// `content` with `edits` (in file order, not overlapping) made.
fn edited(content: &str, edits: Vec<Edit>) -> String {
    let mut out = String::with_capacity(content.len() + 64);
    let mut pos = 0;
    for (from, to, text) in edits {
        out.push_str(&content[pos..from]);
        out.push_str(&text);
        pos = to;
    }
    out.push_str(&content[pos..]);
    out
}

/// The statement `st` with its `weight=` set to `w` (in place, or after the address) and
/// without `down`; every other byte as it was.
fn set_weight(text: &str, st: &ServerStmt, w: u32) -> String {
    let (a, b) = st.span;
    let mut out = String::with_capacity(b - a + 12);
    let mut pos = a;
    let mut has_weight = false;
    for (k, (wa, wb)) in st.words.iter().enumerate().skip(2) {
        let word = &text[*wa..*wb];
        if word.starts_with("weight=") {
            out.push_str(&text[pos..*wa]);
            out.push_str(&format!("weight={w}"));
            pos = *wb;
            has_weight = true;
        } else if word == "down" {
            // With the blank before it.
            out.push_str(&text[pos..st.words[k - 1].1]);
            pos = *wb;
        }
    }
    out.push_str(&text[pos..b]);
    if !has_weight {
        let at = st.words[1].1 - a;
        out.insert_str(at, &format!(" weight={w}"));
    }
    out
}

/// Runs `argv` (bounded by 30 s: a hung `nginx -t` must not hang the release); nginx's own
/// message on failure.
async fn run_argv(argv: &[String]) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("an empty argv")?;
    let child = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .map_err(|_| format!("`{}` did not finish within 30 s", argv.join(" ")))?
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if msg.is_empty() {
            format!("`{}` exited with {}", argv.join(" "), out.status)
        } else {
            msg
        })
    }
}

/// Children of `pid`: the kernel's list when it keeps one, else a walk of /proc.
fn children(pid: i32) -> BTreeSet<i32> {
    if let Ok(list) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        return list
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    let mut out = BTreeSet::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat"))
            && let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..])
            && rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i32>().ok())
                == Some(pid)
        {
            out.insert(child);
        }
    }
    out
}

/// Why nginx could not be driven, watched or checked.
#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    /// The pid file cannot be read.
    #[error("nginx: cannot read the pid file {}: {source} (is nginx running? set `pid_file` in \
             [router])", path.display())]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The pid file holds no pid.
    #[error("nginx: {} does not hold a master pid (it says `{content}`)", path.display())]
    PidFileContent {
        /// The pid file.
        path: PathBuf,
        /// What it holds, trimmed.
        content: String,
    },
    /// The pid file names a process that is gone.
    #[error("nginx: the master process {pid} from {} is not running", path.display())]
    MasterGone {
        /// The pid.
        pid: i32,
        /// The pid file.
        path: PathBuf,
    },
    /// The pid file names a process that is not nginx (a stale file).
    #[error("nginx: {} names pid {pid}, which is not an nginx master (its command line: \
             `{cmdline}`); cutover would send it SIGHUP on every shift; hint: point `pid_file` in \
             [router] at the `pid` file of the running nginx", path.display())]
    NotNginx {
        /// The pid file.
        path: PathBuf,
        /// The pid.
        pid: i32,
        /// That process's command line.
        cmdline: String,
    },
    /// `nginx -t` rejected the new upstream file, and putting the old one back failed.
    #[error(
        "nginx rejected the new upstream file and restoring the previous one failed: {source}; \
         nginx said: {said}"
    )]
    RejectedNotRestored {
        /// Why restoring failed.
        source: std::io::Error,
        /// nginx's words.
        said: String,
    },
    /// `nginx -t` rejected the new upstream file, which was put back.
    #[error(
        "nginx -t rejected the new upstream file; the live config is unchanged. nginx said: {said}"
    )]
    Rejected {
        /// nginx's words.
        said: String,
    },
    /// The `reload` argv failed.
    #[error("nginx reload failed: {said}")]
    ReloadFailed {
        /// Its words.
        said: String,
    },
    /// SIGHUP could not be sent.
    #[error("nginx: cannot signal the master process {master}")]
    Signal {
        /// The master's pid.
        master: i32,
        /// The error.
        source: std::io::Error,
    },
    /// No new worker generation after a reload.
    #[error(
        "nginx did not start new workers within 10s of the reload (master {master}); check nginx's \
         error log: the new config may have failed to apply"
    )]
    NoNewWorkers {
        /// The master's pid.
        master: i32,
    },
    /// The upstream file could not be written.
    #[error("nginx: cannot write {}", path.display())]
    Write {
        /// The upstream file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The upstream file could not be removed.
    #[error("nginx: cannot remove {}", path.display())]
    Remove {
        /// The upstream file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The upstream file has a line cutover cannot rewrite.
    #[error("nginx: {}: {reason}", path.display())]
    Render {
        /// The upstream file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An analysis gate without `access_log`.
    #[error(
        "analysis with nginx needs `access_log` in [router], written in cutover's JSON log_format \
         (see docs/routers.md)"
    )]
    NoAccessLog,
    /// The access log cannot be read when a window starts.
    #[error("nginx: cannot read the access log {}", path.display())]
    AccessLog {
        /// The access log.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The access log cannot be read during a window.
    #[error("nginx: {}", path.display())]
    AccessLogRead {
        /// The access log.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Preflight: the access log is not readable.
    #[error("nginx: the access log {} is not readable", path.display())]
    AccessLogUnreadable {
        /// The access log.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Preflight: `nginx -t` fails already.
    #[error("nginx -t fails before the release changes anything: {said}")]
    TestFails {
        /// nginx's words.
        said: String,
    },
    /// Preflight: no upstream file.
    #[error("nginx: the upstream file {} does not exist; nothing was changed; hint: set \
             `upstream_file` in [router] to the file nginx includes that holds the `upstream` \
             block(s)", path.display())]
    NoUpstreamFile {
        /// The upstream file.
        path: PathBuf,
    },
    /// Preflight: the upstream file lacks a block the release shifts.
    #[error("nginx: {} has no `upstream {upstream} {{ ... }}` block; nothing was changed; hint: \
             `upstream_file` must be the file that declares it (with the old version's `server` \
             line)", path.display())]
    NoUpstreamBlock {
        /// The upstream file.
        path: PathBuf,
        /// The upstream.
        upstream: String,
    },
    /// Preflight: the block pulls servers in with `include`.
    #[error("nginx: the `upstream {upstream}` block in {} pulls servers in with `include`, which \
             cutover does not rewrite (the old version's server could keep its share); nothing was \
             changed; hint: write the `server` lines into the block itself", path.display())]
    IncludeInBlock {
        /// The upstream file.
        path: PathBuf,
        /// The upstream.
        upstream: String,
    },
    /// Preflight: nginx does not load the upstream file.
    #[error("nginx: {} is not part of the configuration nginx loads (`nginx -T` does not list it); \
             shifting traffic there would change nothing live; nothing was changed; hint: `include` \
             it from nginx.conf, or set `upstream_file` to the file that is", path.display())]
    NotLoaded {
        /// The upstream file.
        path: PathBuf,
    },
    /// Preflight: a planned shift could not be written.
    #[error("nginx: {}: step {step} would fail: {reason}", path.display())]
    ShiftWouldFail {
        /// The upstream file.
        path: PathBuf,
        /// The shift step.
        step: String,
        /// What is wrong.
        reason: String,
    },
}

impl Nginx {
    fn master(&self) -> Result<i32, StepError> {
        let path = self.pid_file.clone();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(source) => return Err(NginxError::PidFile { path, source }.into()),
        };
        let Some(pid) = text.trim().parse().ok().filter(|p: &i32| *p > 1) else {
            let content = text.trim().to_string();
            return Err(NginxError::PidFileContent { path, content }.into());
        };
        if unsafe { libc::kill(pid, 0) } != 0 {
            return Err(NginxError::MasterGone { pid, path }.into());
        }
        // A stale pid file may name another program now: cutover signals this pid (SIGHUP).
        let cmdline = crate::procfs::cmdline(pid);
        if !cmdline.contains("nginx") {
            return Err(NginxError::NotNginx { path, pid, cmdline }.into());
        }
        Ok(pid)
    }

    /// Puts `content` back as the upstream file (`None`: there was none).
    fn put_back(&self, content: Option<&str>) -> std::io::Result<()> {
        match content {
            Some(c) => write_atomic(&self.upstream_file, c.as_bytes()),
            None => std::fs::remove_file(&self.upstream_file).or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            }),
        }
    }

    /// Validates the file now on disk; on failure puts `restore` back and reports nginx's words.
    async fn validate_or_restore(&self, restore: Option<&str>) -> Result<(), StepError> {
        if let Err(said) = run_argv(&self.test).await {
            return Err(match self.put_back(restore) {
                Ok(()) => NginxError::Rejected { said },
                Err(source) => NginxError::RejectedNotRestored { source, said },
            }
            .into());
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
            Some(argv) => run_argv(argv)
                .await
                .map_err(|said| NginxError::ReloadFailed { said })?,
            None => {
                if unsafe { libc::kill(master, libc::SIGHUP) } != 0 {
                    let source = std::io::Error::last_os_error();
                    return Err(NginxError::Signal { master, source }.into());
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
                while children(master).iter().any(|p| before.contains(p)) && Instant::now() < drain
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return Ok(t0.elapsed());
            }
            if Instant::now() > deadline {
                return Err(NginxError::NoNewWorkers { master }.into());
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
                Some(t) => write_atomic(&self.upstream_file, t.as_bytes()).map_err(|source| {
                    NginxError::Write {
                        path: self.upstream_file.clone(),
                        source,
                    }
                })?,
                None => self.put_back(None).map_err(|source| NginxError::Remove {
                    path: self.upstream_file.clone(),
                    source,
                })?,
            }
            self.validate_or_restore(current.as_deref()).await?;
        }
        self.reload_and_confirm().await
    }
}

/// The upstream file before a shift changed it ([`RouterBefore::Nginx`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Before {
    /// The file cutover owns.
    pub file: PathBuf,
    /// Its text; `None` when there was no such file.
    pub previous: Option<String>,
}

fn read_opt(path: &Path) -> Result<Option<String>, StepError> {
    Ok(super::read_opt("nginx", path)?)
}

/// Every upstream the release shifts has its block in the upstream file (`path`, holding
/// `content`), with its `server` lines in the block itself.
fn check_blocks(
    path: &Path,
    content: &str,
    upstreams: &[(String, Vec<String>)],
) -> Result<(), NginxError> {
    for (u, _) in upstreams {
        let (path, upstream) = (path.to_path_buf(), u.clone());
        match block_directives(content, u) {
            None => return Err(NginxError::NoUpstreamBlock { path, upstream }),
            Some(d) if d.iter().any(|w| w == "include") => {
                return Err(NginxError::IncludeInBlock { path, upstream });
            }
            _ => {}
        }
    }
    Ok(())
}

/// What preflight says of the servers of `upstream` the release does not manage (kept as
/// written), or nothing.
fn unmanaged_note(content: &str, upstream: &str, addrs: &[String]) -> String {
    let others = unmanaged(content, upstream, addrs);
    if others.is_empty() {
        return String::new();
    }
    let list = others
        .iter()
        .map(|(a, p)| {
            if p.is_empty() {
                format!("`{a}`")
            } else {
                format!("`{a} {p}`")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let serving = others
        .iter()
        .filter(|(_, p)| !p.split_whitespace().any(|w| w == "backup" || w == "down"))
        .count();
    let mut note = format!(
        "; upstream `{upstream}` keeps {} server(s) the release does not manage, as written: {list}",
        others.len()
    );
    if serving > 0 {
        note.push_str(&format!(
            " ({serving} of them neither `backup` nor `down`: they keep taking a share of the \
             traffic at every step)"
        ));
    }
    note
}

impl Nginx {
    /// nginx must load the upstream file, or every shift changes a file nothing reads: the
    /// files `nginx -T` (the `test` argv with `-T`) lists must include it. Not checked when the
    /// argv has no `-t` or `-T` fails.
    async fn check_loaded(&self) -> Result<(), NginxError> {
        let Some(pos) = self.test.iter().position(|a| a == "-t") else {
            return Ok(());
        };
        let mut dump = self.test.clone();
        dump[pos] = "-T".into();
        let Ok(out) = tokio::process::Command::new(&dump[0])
            .args(&dump[1..])
            .stdin(std::process::Stdio::null())
            .output()
            .await
        else {
            return Ok(());
        };
        if !out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let real = std::fs::canonicalize(&self.upstream_file)
            .unwrap_or_else(|_| self.upstream_file.clone());
        let loaded = text
            .lines()
            .filter_map(|l| {
                l.strip_prefix("# configuration file ")
                    .and_then(|r| r.strip_suffix(':'))
            })
            .any(|f| std::fs::canonicalize(f).is_ok_and(|f| f == real));
        if loaded {
            return Ok(());
        }
        Err(NginxError::NotLoaded {
            path: self.upstream_file.clone(),
        })
    }
}

impl Router for Nginx {
    fn apply(
        &self,
        upstream: String,
        servers: Vec<Server>,
        state_dir: PathBuf,
        key: String,
    ) -> BoxFuture<Result<(RouterBefore, String), StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let _g = LOCK.lock().await;
            let file = this.upstream_file.clone();
            let before = saved_before(&state_dir, &key, || {
                Ok(RouterBefore::Nginx(Before {
                    file: file.clone(),
                    previous: read_opt(&file)?,
                }))
            })?;
            let RouterBefore::Nginx(saved) = &before else {
                return Err(other_router(&before, "nginx"));
            };
            let current = read_opt(&file)?;
            let new = render(current.as_deref().unwrap_or(""), &upstream, &servers).map_err(
                |reason| NginxError::Render {
                    path: file.clone(),
                    reason,
                },
            )?;
            let took = match this.go_to(Some(&new)).await {
                Ok(took) => took,
                Err(e) => {
                    // A failed step is not undone by a rollback: go back to the state saved before
                    // the step (not merely this attempt's reading, which a crashed attempt may
                    // already have changed).
                    // When the file on disk already is that one (nginx -t rejected the new file,
                    // which was put back at once), nothing went live and nothing is reloaded.
                    let previous = saved.previous.as_deref();
                    if read_opt(&file)?.as_deref() == previous {
                        return Err(e);
                    }
                    return Err(e.put_back(
                        this.go_to(previous).await.map(|_| ()),
                        "the file from before the step is back and live",
                        "going back to the file from before the step",
                    ));
                }
            };
            let desc = servers
                .iter()
                .filter(|s| s.weight > 0)
                .map(|s| format!("{}={}", s.addr, s.weight))
                .collect::<Vec<_>>()
                .join(" ");
            Ok((
                before,
                format!(
                    "upstream {upstream}: {desc}; nginx reloaded, old workers gone after {} ms",
                    took.as_millis()
                ),
            ))
        })
    }

    fn restore(&self, undo: RouterBefore) -> BoxFuture<Result<(), StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let RouterBefore::Nginx(before) = undo else {
                return Err(other_router(&undo, "nginx"));
            };
            let _g = LOCK.lock().await;
            let this = Nginx {
                upstream_file: before.file,
                ..this
            };
            this.go_to(before.previous.as_deref()).await?;
            Ok(())
        })
    }

    fn observe(
        &self,
        _upstream: String,
        (canary, stable): (Vec<String>, Vec<String>),
        window: Duration,
        early: super::Early,
    ) -> BoxFuture<Result<(Observation, Observation), StepError>> {
        let log = self.access_log.clone();
        Box::pin(async move {
            let log = log.ok_or(NginxError::NoAccessLog)?;
            let start = std::fs::metadata(&log).map(|m| m.len()).map_err(|source| {
                NginxError::AccessLog {
                    path: log.clone(),
                    source,
                }
            })?;
            let mut scan = Scan::new(start, canary);
            let mut stable_scan = (!stable.is_empty()).then(|| Scan::new(start, stable));
            let t0 = Instant::now();
            loop {
                tokio::time::sleep(
                    Duration::from_millis(500).min(
                        window
                            .saturating_sub(t0.elapsed())
                            .max(Duration::from_millis(10)),
                    ),
                )
                .await;
                scan.read(&log)?;
                let obs = scan.observation();
                let base = match &mut stable_scan {
                    Some(s) => {
                        s.read(&log)?;
                        s.observation()
                    }
                    None => Observation::default(),
                };
                if t0.elapsed() >= window || early(&obs, &base) {
                    return Ok((obs, base));
                }
            }
        })
    }

    fn check(
        &self,
        upstreams: Vec<(String, Vec<String>)>,
        shifts: Vec<PlannedShift>,
    ) -> BoxFuture<Result<String, StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let master = this.master()?;
            run_argv(&this.test)
                .await
                .map_err(|said| NginxError::TestFails { said })?;
            if let Some(log) = &this.access_log {
                std::fs::metadata(log).map_err(|source| NginxError::AccessLogUnreadable {
                    path: log.clone(),
                    source,
                })?;
            }
            let path = this.upstream_file.clone();
            let content = read_opt(&path)?
                .ok_or_else(|| NginxError::NoUpstreamFile { path: path.clone() })?;
            check_blocks(&path, &content, &upstreams)?;
            this.check_loaded().await?;
            // Every planned shift, in order, on a copy: a line cutover cannot manage is found now,
            // not after the migrations ran.
            let mut sim = content.clone();
            for sh in &shifts {
                sim = render(&sim, &sh.upstream, &sh.servers).map_err(|reason| {
                    NginxError::ShiftWouldFail {
                        path: path.clone(),
                        step: sh.step.clone(),
                        reason,
                    }
                })?;
            }
            let mut detail = format!(
                "nginx master {master}, config valid; upstream file {}",
                path.display()
            );
            for (u, addrs) in &upstreams {
                detail.push_str(&unmanaged_note(&content, u, addrs));
            }
            Ok(detail)
        })
    }
}

/// The first word of every directive in the `upstream name { ... }` block of `content` (as
/// [`tokens`] reads it: comments skipped, quoted strings one word); `None` when there is no such
/// block.
fn block_directives(content: &str, name: &str) -> Option<Vec<String>> {
    let toks = tokens(content);
    let (open, close) = find_block(&toks, content, name)?;
    let mut directives = Vec::new();
    let mut at_start = true;
    for &(kind, a, b) in &toks[open + 1..close] {
        if kind == Tok::Word {
            if at_start {
                directives.push(content[a..b].to_string());
            }
            at_start = false;
        } else {
            at_start = true;
        }
    }
    Some(directives)
}

/// The canary's requests in the access log, read incrementally from a byte offset: each poll
/// reads only what was appended since the last one.
///
/// Each line is one JSON object, from this `log_format` (one line in the config):
///
/// ```text
/// {"time":$msec,"upstream":"$upstream_addr","upstream_status":"$upstream_status",
///  "status":$status,"request_time":$request_time}
/// ```
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
        // nginx logs the address it connected to: `localhost:3334` in the file is `127.0.0.1:3334` here.
        let canary = canary.iter().map(|a| same_addr(a)).collect();
        Self {
            offset,
            file_id: None,
            partial: Vec::new(),
            canary,
            requests: 0,
            errors: 0,
            times: Vec::new(),
        }
    }

    /// Reads what was appended since the last call.
    pub fn read(&mut self, log: &Path) -> Result<(), StepError> {
        use std::io::{Read, Seek, SeekFrom};
        let failed = |source| NginxError::AccessLogRead {
            path: log.to_path_buf(),
            source,
        };
        let mut f = std::fs::File::open(log).map_err(|source| NginxError::AccessLog {
            path: log.to_path_buf(),
            source,
        })?;
        let meta = f.metadata().map_err(failed)?;
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
        f.seek(SeekFrom::Start(self.offset)).map_err(failed)?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(failed)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let complete = self
            .partial
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let lines: Vec<u8> = self.partial.drain(..complete).collect();
        for line in lines.split(|b| *b == b'\n') {
            self.line(line);
        }
        Ok(())
    }

    fn line(&mut self, line: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        let attempts = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .split([','])
                .flat_map(|g| g.split(" : "))
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect()
        };
        let (addrs, statuses) = (attempts("upstream"), attempts("upstream_status"));
        // 499: the client closed the connection before the answer (nginx's own code); an
        // attempt it cut short has no upstream status, and is no fault of the server.
        let client_gone = v.get("status").and_then(Value::as_u64) == Some(499);
        let mut any = false;
        for (i, addr) in addrs.iter().enumerate() {
            if self.canary.contains(&same_addr(addr)) {
                let status = statuses.get(i).and_then(|s| s.parse::<u16>().ok());
                if status.is_none() && client_gone {
                    continue;
                }
                any = true;
                self.requests += 1;
                if status.is_none_or(|s| s >= 500) {
                    self.errors += 1;
                }
            }
        }
        if any
            && let Some(t) = v.get("request_time").and_then(|t| {
                t.as_f64()
                    .or_else(|| t.as_str().and_then(|s| s.parse().ok()))
            })
        {
            self.times.push(t);
        }
    }

    /// What was seen so far.
    pub fn observation(&self) -> Observation {
        Observation::of_requests(self.requests, self.errors, &self.times)
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
        Server {
            addr: addr.into(),
            weight,
        }
    }

    #[test]
    fn render_keeps_other_directives_and_blocks() {
        let before = "# mine\nupstream web {\n    server 10.0.0.1:80;\n}\nupstream api {\n    \
                      keepalive 16;\n    server 127.0.0.1:3333 weight=100;\n}\n";
        let out = render(
            before,
            "api",
            &[s("127.0.0.1:3333", 90), s("127.0.0.1:3334", 10)],
        )
        .unwrap();
        assert_eq!(
            out,
            "# mine\nupstream web {\n    server 10.0.0.1:80;\n}\nupstream api {\n    keepalive \
             16;\n    server 127.0.0.1:3333 weight=90;\n    server 127.0.0.1:3334 weight=10;\n}\n"
        );
        let back = render(
            &out,
            "api",
            &[s("127.0.0.1:3333", 100), s("127.0.0.1:3334", 0)],
        )
        .unwrap();
        assert_eq!(back, before);
    }

    #[test]
    fn render_handles_comments_one_line_blocks_continued_lines_and_server_parameters() {
        // A `}` in a comment does not end the block; the comment stays.
        let c = "upstream api {\n    # was: server 10.0.0.9:80; }\n    server 127.0.0.1:3333 \
                 weight=100 max_fails=3 fail_timeout=5s;\n}\n";
        // The new server takes the release's parameters.
        assert_eq!(
            render(
                c,
                "api",
                &[s("127.0.0.1:3333", 90), s("127.0.0.1:3334", 10)]
            )
            .unwrap(),
            "upstream api {\n    # was: server 10.0.0.9:80; }\n    server 127.0.0.1:3333 weight=90 \
             max_fails=3 fail_timeout=5s;\n    server 127.0.0.1:3334 weight=10 max_fails=3 \
             fail_timeout=5s;\n}\n"
        );
        // One line: other directives survive.
        let c = "upstream api { server 127.0.0.1:3333; keepalive 8; }\n";
        assert_eq!(
            render(
                c,
                "api",
                &[s("127.0.0.1:3333", 0), s("127.0.0.1:3334", 100)]
            )
            .unwrap(),
            "upstream api { server 127.0.0.1:3334 weight=100; keepalive 8; }\n"
        );
        // A server directive over two lines goes as a whole.
        let c =
            "upstream api{\n    server 127.0.0.1:3333\n        weight=100;\n    keepalive 4;\n}\n";
        assert_eq!(
            render(
                c,
                "api",
                &[s("127.0.0.1:3333", 0), s("127.0.0.1:3334", 100)]
            )
            .unwrap(),
            "upstream api{\n    server 127.0.0.1:3334 weight=100;\n    keepalive 4;\n}\n"
        );
        // Another upstream whose name starts the same is not touched; `down` is cutover's.
        let c = "upstream api2 {\n    server 10.0.0.1:80;\n}\nupstream api {\n    server \
                 127.0.0.1:3333 down;\n}\n";
        assert_eq!(
            render(c, "api", &[s("127.0.0.1:3333", 5)]).unwrap(),
            "upstream api2 {\n    server 10.0.0.1:80;\n}\nupstream api {\n    server 127.0.0.1:3333 \
             weight=5;\n}\n"
        );
        // `#` inside a word is not a comment (as in nginx); CRLF files get CRLF lines; a server
        // the plan does not name stays.
        let c = "upstream api {\r\n    server unix:/run/a#1.sock;\r\n}\r\n";
        assert_eq!(
            render(c, "api", &[s("127.0.0.1:1", 1)]).unwrap(),
            "upstream api {\r\n    server unix:/run/a#1.sock;\r\n    server 127.0.0.1:1 \
             weight=1;\r\n}\r\n"
        );
        // A block without servers gets them before its closing brace.
        let c = "upstream api {\n    keepalive 4;\n}\n";
        assert_eq!(
            render(c, "api", &[s("127.0.0.1:1", 1)]).unwrap(),
            "upstream api {\n    keepalive 4;\n    server 127.0.0.1:1 weight=1;\n}\n"
        );
    }

    #[test]
    fn same_addr_treats_loopback_spellings_as_one() {
        for a in [
            "127.0.0.1:21100",
            "localhost:21100",
            "LocalHost:21100",
            "[::1]:21100",
            "\"localhost:21100\"",
        ] {
            assert_eq!(same_addr(a), "127.0.0.1:21100", "{a}");
        }
        assert_eq!(same_addr("localhost"), "127.0.0.1:80");
        assert_ne!(same_addr("app.internal:21100"), "127.0.0.1:21100");
        assert_ne!(same_addr("127.0.0.1:21101"), "127.0.0.1:21100");
        assert_eq!(same_addr("unix:/run/app.sock"), "unix:/run/app.sock");
    }

    /// The field case: a hostname line with parameters, a `backup` maintenance server.
    #[test]
    fn render_changes_only_the_release_servers_and_keeps_their_parameters() {
        let c = "upstream api {\n    server localhost:21100 max_fails=1 fail_timeout=1s;\n    \
                 server 127.0.0.1:21190 backup;\n    keepalive 16;\n}\n";
        let at50 = render(
            c,
            "api",
            &[s("127.0.0.1:21100", 50), s("127.0.0.1:21101", 50)],
        )
        .unwrap();
        assert_eq!(
            at50,
            "upstream api {\n    server localhost:21100 weight=50 max_fails=1 fail_timeout=1s;\n    \
             server 127.0.0.1:21101 weight=50 max_fails=1 fail_timeout=1s;\n    server \
             127.0.0.1:21190 backup;\n    keepalive 16;\n}\n"
        );
        let at100 = render(
            &at50,
            "api",
            &[s("127.0.0.1:21100", 0), s("127.0.0.1:21101", 100)],
        )
        .unwrap();
        assert_eq!(
            at100,
            "upstream api {\n    server 127.0.0.1:21101 weight=100 max_fails=1 \
             fail_timeout=1s;\n    server 127.0.0.1:21190 backup;\n    keepalive 16;\n}\n"
        );
        // The next release finds its parameters on the line the last one left.
        let next = render(
            &at100,
            "api",
            &[s("127.0.0.1:21101", 90), s("127.0.0.1:21100", 10)],
        )
        .unwrap();
        assert!(
            next.contains("server 127.0.0.1:21100 weight=10 max_fails=1 fail_timeout=1s;\n"),
            "{next}"
        );
    }

    #[test]
    fn render_keeps_servers_it_does_not_manage_byte_for_byte() {
        // Another app's server, a `down` one, a hostname with `resolve`, a unix socket, odd
        // spacing and a comment: none of them is the release's.
        let others = [
            "server 127.0.0.1:9000   weight=5 max_conns=10; # billing",
            "server 127.0.0.1:21102 down;",
            "server app.internal:21100 resolve;",
            "server unix:/run/x.sock backup;",
        ];
        let c = format!(
            "upstream api {{\n    zone api 64k;\n    {}\n    server [::1]:21100 weight=100 \
             max_conns=50 slow_start=30s;\n    {}\n    {}\n    {}\n}}\n",
            others[0], others[1], others[2], others[3]
        );
        for step in [
            vec![s("127.0.0.1:21100", 75), s("127.0.0.1:21101", 25)],
            vec![s("127.0.0.1:21100", 0), s("127.0.0.1:21101", 100)],
        ] {
            let out = render(&c, "api", &step).unwrap();
            for o in others {
                assert!(
                    out.contains(&format!("\n    {o}\n")),
                    "{o} is kept as written:\n{out}"
                );
            }
            assert!(out.contains("    zone api 64k;\n"), "{out}");
            let w = step[1].weight;
            assert!(
                out.contains(&format!(
                    "    server 127.0.0.1:21101 weight={w} max_conns=50 slow_start=30s;\n"
                )),
                "{out}"
            );
        }
        let out = render(
            &c,
            "api",
            &[s("127.0.0.1:21100", 75), s("127.0.0.1:21101", 25)],
        )
        .unwrap();
        assert!(
            out.contains("    server [::1]:21100 weight=75 max_conns=50 slow_start=30s;\n"),
            "the address stays as written:\n{out}"
        );
    }

    #[test]
    fn render_gives_a_down_server_of_the_release_its_weight_and_refuses_what_it_cannot_manage() {
        // A slot kept `down` until release day: it loses `down` when it gets traffic, keeps the rest.
        let c = "upstream api {\n    server 127.0.0.1:21100;\n    server 127.0.0.1:21101 down \
                 max_fails=2;\n}\n";
        assert_eq!(
            render(
                c,
                "api",
                &[s("127.0.0.1:21100", 50), s("127.0.0.1:21101", 50)]
            )
            .unwrap(),
            "upstream api {\n    server 127.0.0.1:21100 weight=50;\n    server 127.0.0.1:21101 \
             weight=50 max_fails=2;\n}\n"
        );
        // Two lines for one server: nginx would count it twice.
        let e = render(
            "upstream api {\n    server localhost:21100;\n    server 127.0.0.1:21100;\n}\n",
            "api",
            &[s("127.0.0.1:21100", 50), s("127.0.0.1:21101", 50)],
        )
        .unwrap_err();
        assert!(
            e.contains(
                "two `server` lines for 127.0.0.1:21100 (`localhost:21100` and `127.0.0.1:21100`)"
            ) && e.contains("hint:"),
            "{e}"
        );
        // The release's own server marked `backup` would never take the traffic planned for it.
        let e = render(
            "upstream api {\n    server 127.0.0.1:21100;\n    server 127.0.0.1:21101 backup;\n}\n",
            "api",
            &[s("127.0.0.1:21100", 50), s("127.0.0.1:21101", 50)],
        )
        .unwrap_err();
        assert!(
            e.contains("`127.0.0.1:21101` is marked `backup`") && e.contains("hint:"),
            "{e}"
        );
        // Inherited parameters never include how a server is routed.
        let c = "upstream api {\n    server localhost:21100 max_fails=1 down;\n}\n";
        let out = render(
            c,
            "api",
            &[s("127.0.0.1:21100", 0), s("127.0.0.1:21101", 100)],
        )
        .unwrap();
        assert_eq!(
            out,
            "upstream api {\n    server 127.0.0.1:21101 weight=100 max_fails=1;\n}\n"
        );
    }

    #[test]
    fn render_on_one_line_and_next_to_comments() {
        let c = "upstream api { server localhost:21100; server 127.0.0.1:21190 backup; }\n";
        let at50 = render(
            c,
            "api",
            &[s("127.0.0.1:21100", 50), s("127.0.0.1:21101", 50)],
        )
        .unwrap();
        assert_eq!(
            at50,
            "upstream api { server localhost:21100 weight=50; server 127.0.0.1:21101 weight=50; \
             server 127.0.0.1:21190 backup; }\n"
        );
        assert_eq!(
            render(
                &at50,
                "api",
                &[s("127.0.0.1:21100", 0), s("127.0.0.1:21101", 100)]
            )
            .unwrap(),
            "upstream api { server 127.0.0.1:21101 weight=100; server 127.0.0.1:21190 backup; }\n"
        );
        // A comment on the line of a server that goes: the comment stays.
        let c = "upstream api {\n    server 127.0.0.1:21100; # v1\n    server 127.0.0.1:21190 \
                 backup; # maintenance\n}\n";
        let out = render(
            c,
            "api",
            &[s("127.0.0.1:21100", 0), s("127.0.0.1:21101", 100)],
        )
        .unwrap();
        assert_eq!(
            out,
            "upstream api {\n    server 127.0.0.1:21101 weight=100; # v1\n    server \
             127.0.0.1:21190 backup; # maintenance\n}\n"
        );
    }

    #[test]
    fn unmanaged_lists_the_servers_a_release_leaves_alone() {
        let c = "upstream api {\n    server localhost:21100 max_fails=1;\n    server \
                 127.0.0.1:21190 backup;\n}\n";
        assert_eq!(
            unmanaged(
                c,
                "api",
                &["127.0.0.1:21100".into(), "127.0.0.1:21101".into()]
            ),
            vec![("127.0.0.1:21190".to_string(), "backup".to_string())]
        );
    }

    #[test]
    fn scan_splits_attempts_and_groups_and_reads_incrementally() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.json");
        std::fs::write(
            &log,
            "{\"upstream\":\"unix:/tmp/x.sock, 127.0.0.1:3334 : \
             127.0.0.1:3335\",\"upstream_status\":\"502, 200 : \
             200\",\"request_time\":0.5}\n{\"upstream\":\"127.0.0.1:33",
        )
        .unwrap();
        let mut sc = Scan::new(0, vec!["127.0.0.1:3334".into()]);
        sc.read(&log).unwrap();
        assert_eq!(
            (sc.observation().requests, sc.observation().errors),
            (1, 0),
            "the second attempt (200) was the canary's"
        );
        // The half-written line is read once it is complete.
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(b"34\",\"upstream_status\":\"500\",\"request_time\":0.1}\n")
            .unwrap();
        sc.read(&log).unwrap();
        assert_eq!((sc.observation().requests, sc.observation().errors), (2, 1));
    }

    #[test]
    fn render_appends_a_missing_block_and_refuses_an_empty_one() {
        assert_eq!(
            render("", "api", &[s("127.0.0.1:1", 1)]).unwrap(),
            "upstream api {\n    server 127.0.0.1:1 weight=1;\n}\n"
        );
        assert!(render("", "api", &[s("127.0.0.1:1", 0)]).is_err());
    }

    #[test]
    fn scan_counts_canary_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.json");
        std::fs::write(
            &log,
            concat!(
                "{\"time\":1.0,\"upstream\":\"127.0.0.1:3334\",\"upstream_status\":\"200\",",
                "\"status\":200,\"request_time\":0.010}\n",
                "{\"time\":1.1,\"upstream\":\"127.0.0.1:3333\",\"upstream_status\":\"500\",",
                "\"status\":500,\"request_time\":0.020}\n",
                "{\"time\":1.2,\"upstream\":\"127.0.0.1:3334, \
             127.0.0.1:3333\",\"upstream_status\":\"502, \
             200\",\"status\":200,\"request_time\":0.030}\n",
                "not json\n",
            ),
        )
        .unwrap();
        let obs = scan(&log, 0, &["127.0.0.1:3334".into()]).unwrap();
        assert_eq!((obs.requests, obs.errors), (2, 1));
        // A canary line written `localhost:3334` or `[::1]:3334` is logged by the address nginx used.
        std::fs::write(
            &log,
            "{\"upstream\":\"[::1]:3334\",\"upstream_status\":\"200\",\"request_time\":0.1}\n",
        )
        .unwrap();
        assert_eq!(
            scan(&log, 0, &["localhost:3334".into()]).unwrap().requests,
            1
        );
        assert_eq!(obs.latency, Some(Duration::from_secs_f64(0.030)));
        // A client that gave up (499) before the canary answered is no canary error; a 502
        // with no answer at all (`-`) is.
        std::fs::write(
            &log,
            concat!(
                "{\"upstream\":\"127.0.0.1:3334\",\"upstream_status\":\"-\",\"status\":499,",
                "\"request_time\":0.5}\n",
                "{\"upstream\":\"127.0.0.1:3334\",\"upstream_status\":\"-\",\"status\":502,",
                "\"request_time\":0.5}\n",
            ),
        )
        .unwrap();
        let obs = scan(&log, 0, &["127.0.0.1:3334".into()]).unwrap();
        assert_eq!((obs.requests, obs.errors), (1, 1));
    }
}
