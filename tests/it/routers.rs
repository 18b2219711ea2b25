//! The routers on their own, against real nginx and HAProxy processes (no containers needed):
//! what a shift writes, that it is live, that a rejected config changes nothing, and that the
//! undo restores the exact previous state.

use crate::stack::{Router, free_ports, rt};
use cutover_executor::router::Router as _;
use cutover_executor::router::haproxy::Haproxy;
use cutover_executor::router::nginx::Nginx;
use cutover_planner::dag::Server;
use std::collections::BTreeSet;

fn s(port: u16, weight: u32) -> Server {
    Server { addr: format!("127.0.0.1:{port}"), weight }
}

fn nginx_of(r: &Router) -> Nginx {
    let d = r.dir.display().to_string();
    Nginx { upstream_file: r.dir.join("upstreams.conf"), pid_file: r.dir.join("nginx.pid"), test: vec!["nginx".into(), "-t".into(), "-q".into(), "-c".into(), format!("{d}/nginx.conf"), "-p".into(), d], reload: None, access_log: Some(r.dir.join("access.json")) }
}

/// nginx's worker pids (children of the master).
fn workers(r: &Router) -> BTreeSet<i32> {
    let master: i32 = std::fs::read_to_string(r.dir.join("nginx.pid")).unwrap().trim().parse().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|st| st.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|p| p.parse::<i32>().ok())) == Some(master))
        .collect()
}

#[test]
fn nginx_shift_is_validated_reloaded_and_restored_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let r = Router::nginx(dir.path(), "api", &[(p, 100)]);
    let before = r.config_bytes();
    let before_workers = workers(&r);
    let n = nginx_of(&r);
    let state = tempfile::tempdir().unwrap();
    let (undo, detail) = rt().block_on(n.apply("api".into(), vec![s(p, 90), s(p + 1, 10)], state.path().into(), "shift/api/10".into())).unwrap();
    assert_eq!(r.config_bytes(), format!("upstream api {{\n    keepalive 16;\n    server 127.0.0.1:{p} weight=90;\n    server 127.0.0.1:{} weight=10;\n}}\n", p + 1));
    assert!(detail.contains("nginx reloaded"), "{detail}");
    let after_workers = workers(&r);
    assert!(after_workers.is_disjoint(&before_workers), "the step returns once the old workers are gone: {before_workers:?} -> {after_workers:?}");
    // A re-run after a crash uses the state saved before the first attempt, not the live file.
    let (undo2, _) = rt().block_on(n.apply("api".into(), vec![s(p, 90), s(p + 1, 10)], state.path().into(), "shift/api/10".into())).unwrap();
    assert_eq!(undo2, undo);
    rt().block_on(n.restore(undo)).unwrap();
    assert_eq!(r.config_bytes(), before, "rollback restores the upstream file byte for byte");
    assert!(workers(&r).is_disjoint(&after_workers), "and reloads nginx");
}

#[test]
fn nginx_rejecting_the_new_file_leaves_the_live_config_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(1);
    let r = Router::nginx(dir.path(), "api", &[(p, 100)]);
    let before = r.config_bytes();
    let before_workers = workers(&r);
    let state = tempfile::tempdir().unwrap();
    // A port nginx cannot accept: `nginx -t` fails.
    let bad = Server { addr: "127.0.0.1:99999".into(), weight: 10 };
    let err = rt().block_on(nginx_of(&r).apply("api".into(), vec![s(p, 90), bad], state.path().into(), "shift/api/10".into())).unwrap_err();
    assert!(err.0.contains("nginx -t rejected the new upstream file; the live config is unchanged") && err.0.contains("invalid port"), "{}", err.0);
    assert_eq!(r.config_bytes(), before, "the previous file is back");
    assert_eq!(workers(&r), before_workers, "nginx was not reloaded");
}

#[test]
fn haproxy_shift_changes_weights_live_and_in_the_file_and_restores_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let r = Router::haproxy(dir.path(), "api", &[(p, 100), (p + 1, 0)]);
    let before = r.config_bytes();
    let h = Haproxy { admin_socket: dir.path().join("admin.sock"), config_file: Some(dir.path().join("haproxy.cfg")) };
    let state = tempfile::tempdir().unwrap();
    let (undo, detail) = rt().block_on(h.apply("api".into(), vec![s(p, 75), s(p + 1, 25)], state.path().into(), "shift/api/25".into())).unwrap();
    assert!(detail.contains("no reload"), "{detail}");
    assert_eq!(r.weights("api"), [(format!("p{p}"), 75), (format!("p{}", p + 1), 25)].into_iter().collect());
    let cfg = r.config_bytes();
    assert!(cfg.contains(&format!("server p{p} 127.0.0.1:{p} weight 75\n")) && cfg.contains(&format!("server p{} 127.0.0.1:{} weight 25\n", p + 1, p + 1)), "{cfg}");
    rt().block_on(h.restore(undo)).unwrap();
    assert_eq!(r.weights("api"), [(format!("p{p}"), 100), (format!("p{}", p + 1), 0)].into_iter().collect());
    assert_eq!(r.config_bytes(), before, "the config file is byte-identical after the undo");
}

#[test]
fn haproxy_names_a_server_the_backend_does_not_declare() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(3);
    let _r = Router::haproxy(dir.path(), "api", &[(p, 100)]);
    let h = Haproxy { admin_socket: dir.path().join("admin.sock"), config_file: None };
    let state = tempfile::tempdir().unwrap();
    let err = rt().block_on(h.apply("api".into(), vec![s(p, 50), s(p + 2, 50)], state.path().into(), "shift/api/50".into())).unwrap_err();
    assert!(err.0.contains(&format!("backend `api` has no server at 127.0.0.1:{}", p + 2)) && err.0.contains("declare it"), "{}", err.0);
    let err = rt().block_on(h.check(vec![("api".into(), vec![format!("127.0.0.1:{p}"), format!("127.0.0.1:{}", p + 2)])])).unwrap_err();
    assert!(err.0.contains(&format!("api: 127.0.0.1:{}", p + 2)), "{}", err.0);
    // Nothing was changed on the way.
    assert_eq!(_r.weights("api"), [(format!("p{p}"), 100)].into_iter().collect());
}

/// A failed step is not undone by a rollback, so a shift that fails half-way puts the router back
/// itself: here the reload fails after the new file was written and validated.
#[test]
fn nginx_a_failed_reload_puts_the_previous_file_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let r = Router::nginx(dir.path(), "api", &[(p, 100)]);
    let before = r.config_bytes();
    // The first reload fails; the next ones work (SIGHUP to the master).
    let mark = dir.path().join("reloaded-once");
    let script = format!("if [ -e {m} ]; then kill -HUP $(cat {pid}); else touch {m}; exit 1; fi", m = mark.display(), pid = dir.path().join("nginx.pid").display());
    let n = Nginx { reload: Some(vec!["sh".into(), "-c".into(), script]), ..nginx_of(&r) };
    let workers_before = workers(&r);
    let state = tempfile::tempdir().unwrap();
    let err = rt().block_on(n.apply("api".into(), vec![s(p, 50), s(p + 1, 50)], state.path().into(), "shift/api/50".into())).unwrap_err();
    assert!(err.0.starts_with("nginx reload failed") && err.0.contains("the file from before the step is back and live"), "{}", err.0);
    assert_eq!(r.config_bytes(), before);
    assert!(workers(&r).is_disjoint(&workers_before), "nginx was reloaded with the previous file");
}
