//! HAProxy through its runtime API: weights change without a reload, so no client connection
//! is closed. The config file is rewritten too (the `weight` of the same `server` lines), so a
//! restart keeps the state.
//!
//! Servers are matched by address: the backend must declare a `server` line for every address
//! the release uses (the new version's included, e.g. with `weight 0`); preflight checks this.

use super::{Observation, Router, saved_before, write_atomic};
use crate::driver::{BoxFuture, StepError};
use cutover_planner::dag::Server;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// HAProxy as configured in the spec.
#[derive(Debug, Clone)]
pub struct Haproxy {
    /// Admin socket (`stats socket ... level admin`).
    pub admin_socket: PathBuf,
    /// Config file kept in step with the runtime state.
    pub config_file: Option<PathBuf>,
}

static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One server as `show servers state` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerState {
    /// Server name.
    pub name: String,
    /// `addr:port`.
    pub addr: String,
    /// Current (user) weight.
    pub weight: u32,
}

impl Haproxy {
    /// Sends one command to the admin socket and returns the answer.
    pub async fn command(&self, cmd: &str) -> Result<String, StepError> {
        let mut s = tokio::net::UnixStream::connect(&self.admin_socket).await.map_err(|e| StepError(format!("HAProxy: cannot connect to the admin socket {}: {e} (is HAProxy running with `stats socket {} level admin`?)", self.admin_socket.display(), self.admin_socket.display())))?;
        s.write_all(format!("{cmd}\n").as_bytes()).await.map_err(|e| StepError(format!("HAProxy: {cmd}: {e}")))?;
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out)).await.map_err(|_| StepError(format!("HAProxy: `{cmd}` got no answer within 10s")))?.map_err(|e| StepError(format!("HAProxy: {cmd}: {e}")))?;
        Ok(out)
    }

    /// Servers of `backend`.
    pub async fn servers(&self, backend: &str) -> Result<Vec<ServerState>, StepError> {
        let out = self.command(&format!("show servers state {backend}")).await?;
        parse_servers_state(&out).map_err(|m| StepError(format!("HAProxy: backend `{backend}`: {m}")))
    }

    async fn set_weights(&self, backend: &str, weights: &BTreeMap<String, u32>) -> Result<(), StepError> {
        for (name, w) in weights {
            let out = self.command(&format!("set server {backend}/{name} weight {w}")).await?;
            if !out.trim().is_empty() {
                return Err(StepError(format!("HAProxy refused `set server {backend}/{name} weight {w}`: {}", out.trim())));
            }
        }
        let now = self.servers(backend).await?;
        for (name, w) in weights {
            match now.iter().find(|s| &s.name == name) {
                Some(s) if s.weight == *w => {}
                Some(s) => return Err(StepError(format!("HAProxy: {backend}/{name} has weight {} after setting {w}", s.weight))),
                None => return Err(StepError(format!("HAProxy: {backend}/{name} disappeared"))),
            }
        }
        Ok(())
    }
}

impl Haproxy {
    /// Puts back the weights and config file a step saved before it changed anything.
    async fn put_back(&self, backend: &str, before: &Value) -> Result<(), StepError> {
        let weights: BTreeMap<String, u32> = serde_json::from_value(before.get("weights").cloned().unwrap_or_default()).map_err(|e| StepError(format!("HAProxy saved state: {e}")))?;
        if let (Some(file), Some(content)) = (before.get("config_file").and_then(Value::as_str), before.get("config").and_then(Value::as_str)) {
            let file = Path::new(file);
            if read_opt(file)?.as_deref() != Some(content) {
                write_atomic(file, content.as_bytes()).map_err(|e| StepError(format!("HAProxy: cannot restore {}: {e}", file.display())))?;
            }
        }
        self.set_weights(backend, &weights).await
    }
}

/// Parses `show servers state` (format version 1; columns named by its header line).
pub fn parse_servers_state(out: &str) -> Result<Vec<ServerState>, String> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().ok_or("empty answer")?;
    if first.trim() != "1" {
        return Err(first.trim().to_string());
    }
    let header: Vec<&str> = lines.next().ok_or("no header")?.trim_start_matches('#').split_whitespace().collect();
    let col = |n: &str| header.iter().position(|h| *h == n).ok_or(format!("no `{n}` column"));
    let (name, addr, port, weight) = (col("srv_name")?, col("srv_addr")?, col("srv_port")?, col("srv_uweight")?);
    let mut out = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < header.len().min(weight + 1) {
            continue;
        }
        out.push(ServerState { name: f[name].to_string(), addr: format!("{}:{}", f[addr], f.get(port).unwrap_or(&"0")), weight: f[weight].parse().map_err(|_| format!("bad weight `{}`", f[weight]))? });
    }
    Ok(out)
}

/// Sets the `weight` of the `server` lines (matched by name) of `backend` in a config file: the
/// weight's digits are replaced in place, or ` weight N` is added before any comment. Every
/// other byte is kept.
pub fn rewrite_config(content: &str, backend: &str, weights: &BTreeMap<String, u32>) -> String {
    let mut out = String::with_capacity(content.len());
    let mut inside = false;
    for line in content.split_inclusive('\n') {
        let code_end = line.find('#').unwrap_or(line.len());
        let code = &line[..code_end];
        let mut words = code.split_whitespace();
        let first = words.next().unwrap_or("");
        if !line.starts_with([' ', '\t']) && ["global", "defaults", "frontend", "backend", "listen", "resolvers", "peers", "userlist", "program", "http-errors", "ring", "cache", "mailers"].contains(&first) {
            inside = (first == "backend" || first == "listen") && words.next() == Some(backend);
        }
        let name = code.split_whitespace().nth(1);
        match (inside && first == "server", name.and_then(|n| weights.get(n))) {
            (true, Some(w)) => out.push_str(&set_weight(line, code_end, *w)),
            _ => out.push_str(line),
        }
    }
    out
}

/// `line` with its `weight` set to `w` (its code part ends at `code_end`).
fn set_weight(line: &str, code_end: usize, w: u32) -> String {
    let code = &line[..code_end];
    // Byte ranges of the code's words.
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in code.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(st)) => {
                spans.push((st, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(st) = start {
        spans.push((st, code.len()));
    }
    // Keywords start after `server NAME ADDR`; HAProxy takes the last `weight`.
    if let Some(k) = spans.iter().enumerate().skip(3).filter(|(_, (a, b))| &code[*a..*b] == "weight").map(|(k, _)| k).next_back() {
        return match spans.get(k + 1) {
            Some((a, b)) => format!("{}{w}{}", &line[..*a], &line[*b..]),
            None => format!("{} {w}{}", &line[..spans[k].1], &line[spans[k].1..]),
        };
    }
    let end = code.trim_end().len();
    format!("{} weight {w}{}", &line[..end], &line[end..])
}

fn read_opt(path: &Path) -> Result<Option<String>, StepError> {
    super::read_opt("HAProxy", path)
}

/// Per-server counters from `show stat`.
fn stat_rows(csv: &str, backend: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").trim_start_matches("# ").split(',').collect();
    let mut out = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        if f.first() != Some(&backend) {
            continue;
        }
        let row: BTreeMap<String, u64> = header.iter().zip(&f).filter_map(|(h, v)| v.parse().ok().map(|v| (h.to_string(), v))).collect();
        out.insert(f.get(1).unwrap_or(&"").to_string(), row);
    }
    out
}

impl Router for Haproxy {
    fn apply(&self, upstream: String, servers: Vec<Server>, state_dir: PathBuf, key: String) -> BoxFuture<Result<(Value, String), StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let _g = LOCK.lock().await;
            let live = this.servers(&upstream).await?;
            let mut weights = BTreeMap::new();
            for s in &servers {
                let Some(l) = live.iter().find(|l| l.addr == s.addr) else {
                    return Err(StepError(format!("HAProxy: backend `{upstream}` has no server at {}; declare it in the config (e.g. `server p{} {} weight 0`) and reload HAProxy once before the release", s.addr, s.addr.rsplit(':').next().unwrap_or(""), s.addr)));
                };
                weights.insert(l.name.clone(), s.weight.min(256));
            }
            let config = this.config_file.clone();
            let before = saved_before(&state_dir, &key, || {
                let prev: BTreeMap<String, u32> = live.iter().filter(|l| weights.contains_key(&l.name)).map(|l| (l.name.clone(), l.weight)).collect();
                Ok(json!({ "router": "haproxy", "backend": upstream, "weights": prev, "config_file": config, "config": match &config { Some(c) => read_opt(c)?, None => None } }))
            })?;
            if let Some(c) = &config {
                let current = read_opt(c)?.ok_or_else(|| StepError(format!("HAProxy: config file {} does not exist", c.display())))?;
                let new = rewrite_config(&current, &upstream, &weights);
                if new != current {
                    write_atomic(c, new.as_bytes()).map_err(|e| StepError(format!("HAProxy: cannot write {}: {e}", c.display())))?;
                }
            }
            let t0 = Instant::now();
            if let Err(e) = this.set_weights(&upstream, &weights).await {
                // A failed step is not undone by a rollback: go back to the state saved before
                // the step (a crashed earlier attempt may have changed some weights already).
                let back = match this.put_back(&upstream, &before).await {
                    Ok(()) => "; the weights and file from before the step are back".to_string(),
                    Err(e2) => format!("; going back to the state from before the step failed too: {}", e2.0),
                };
                return Err(StepError(format!("{}{back}", e.0)));
            }
            let desc = weights.iter().map(|(n, w)| format!("{n}={w}")).collect::<Vec<_>>().join(" ");
            Ok((before, format!("backend {upstream}: {desc}; live through the admin socket in {} ms, no reload", t0.elapsed().as_millis())))
        })
    }

    fn restore(&self, undo: Value) -> BoxFuture<Result<(), StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let _g = LOCK.lock().await;
            let backend = undo.get("backend").and_then(Value::as_str).ok_or_else(|| StepError("HAProxy undo data names no backend".into()))?.to_string();
            this.put_back(&backend, &undo).await
        })
    }

    fn observe(&self, upstream: String, canary: Vec<String>, window: Duration, early: Arc<dyn Fn(&Observation) -> bool + Send + Sync>) -> BoxFuture<Result<Observation, StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let live = this.servers(&upstream).await?;
            let names: Vec<String> = canary.iter().filter_map(|a| live.iter().find(|l| &l.addr == a).map(|l| l.name.clone())).collect();
            if names.is_empty() {
                return Err(StepError(format!("HAProxy: backend `{upstream}` has none of the canary's servers ({})", canary.join(", "))));
            }
            let snap = || async { this.command("show stat").await.map(|csv| stat_rows(&csv, &upstream)) };
            let base = snap().await?;
            let t0 = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(500).min(window.saturating_sub(t0.elapsed()).max(Duration::from_millis(10)))).await;
                let now = snap().await?;
                let mut obs = Observation { latency_kind: "average response time (HAProxy keeps no percentiles)", ..Default::default() };
                let mut rtime = 0u64;
                for n in &names {
                    let (a, b) = (base.get(n), now.get(n));
                    let d = |k: &str| b.and_then(|r| r.get(k)).copied().unwrap_or(0).saturating_sub(a.and_then(|r| r.get(k)).copied().unwrap_or(0));
                    let answered: u64 = ["hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other"].iter().map(|k| d(k)).sum();
                    let failed = d("eresp") + d("econ");
                    obs.requests += answered + failed;
                    obs.errors += d("hrsp_5xx") + failed;
                    rtime = rtime.max(b.and_then(|r| r.get("rtime")).copied().unwrap_or(0));
                }
                obs.latency = (obs.requests > 0).then(|| Duration::from_millis(rtime));
                if t0.elapsed() >= window || early(&obs) {
                    return Ok(obs);
                }
            }
        })
    }

    fn check(&self, upstreams: Vec<(String, Vec<String>)>) -> BoxFuture<Result<String, StepError>> {
        let this = self.clone();
        Box::pin(async move {
            let mut missing = Vec::new();
            for (backend, addrs) in &upstreams {
                let live = this.servers(backend).await?;
                missing.extend(addrs.iter().filter(|a| !live.iter().any(|l| &l.addr == *a)).map(|a| format!("{backend}: {a}")));
            }
            if !missing.is_empty() {
                return Err(StepError(format!("HAProxy: these servers are not declared in their backends: {}; add a `server` line for each (e.g. `weight 0` for the new version) and reload HAProxy once before the release", missing.join(", "))));
            }
            if let Some(c) = &this.config_file {
                read_opt(c)?.ok_or_else(|| StepError(format!("HAProxy: config file {} does not exist", c.display())))?;
            }
            Ok(format!("HAProxy admin socket {} answers; every planned server is declared", this.admin_socket.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_servers_state() {
        let out = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n3 api 1 p3333 127.0.0.1 2 0 90 100 10 1 0 3 0 0 0 0 - 3333 - 0 0 - - 0\n3 api 2 p3334 127.0.0.1 2 0 10 0 10 1 0 3 0 0 0 0 - 3334 - 0 0 - - 0\n";
        let s = parse_servers_state(out).unwrap();
        assert_eq!(s, vec![ServerState { name: "p3333".into(), addr: "127.0.0.1:3333".into(), weight: 90 }, ServerState { name: "p3334".into(), addr: "127.0.0.1:3334".into(), weight: 10 }]);
        assert!(parse_servers_state("Can't find backend.\n").is_err());
    }

    #[test]
    fn rewrites_only_the_backend_weights() {
        let cfg = "global\n  stats socket /run/h.sock level admin\nbackend web\n  server p3333 127.0.0.1:3333 weight 5\nbackend api\n  balance roundrobin\n  server p3333 127.0.0.1:3333 weight 100 check\n  server p3334 127.0.0.1:3334\n";
        let w = BTreeMap::from([("p3333".to_string(), 90), ("p3334".to_string(), 10)]);
        let out = rewrite_config(cfg, "api", &w);
        assert_eq!(out, "global\n  stats socket /run/h.sock level admin\nbackend web\n  server p3333 127.0.0.1:3333 weight 5\nbackend api\n  balance roundrobin\n  server p3333 127.0.0.1:3333 weight 90 check\n  server p3334 127.0.0.1:3334 weight 10\n");
        // Whitespace and comments stay; the weight goes before a comment.
        let cfg = "backend api\n\tserver\tp3333  127.0.0.1:3333\tweight  100   check # old\n    server p3334 127.0.0.1:3334 check  # new one\n";
        let out = rewrite_config(cfg, "api", &w);
        assert_eq!(out, "backend api\n\tserver\tp3333  127.0.0.1:3333\tweight  90   check # old\n    server p3334 127.0.0.1:3334 check weight 10  # new one\n");
        // A server named `weight` keeps its address; the last `weight` keyword is the one set.
        let odd = BTreeMap::from([("weight".to_string(), 7)]);
        assert_eq!(rewrite_config("backend api\n  server weight 10.0.0.1:80 weight 1 check weight 2\n", "api", &odd), "backend api\n  server weight 10.0.0.1:80 weight 1 check weight 7\n");
        assert_eq!(rewrite_config("backend api\n  server weight 10.0.0.1:80 check\n", "api", &odd), "backend api\n  server weight 10.0.0.1:80 check weight 7\n");
        let back = BTreeMap::from([("p3333".to_string(), 100)]);
        assert!(rewrite_config(&out, "api", &back).starts_with("backend api\n\tserver\tp3333  127.0.0.1:3333\tweight  100   check # old\n"));
    }
}
