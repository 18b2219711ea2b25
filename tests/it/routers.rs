//! The routers on their own, against real nginx and HAProxy processes (no containers needed):
//! what a shift writes, that it is live, that a rejected config changes nothing, and that the
//! undo restores the exact previous state.

use crate::stack::{Router, free_ports, rt};
use cutover_executor::router::Router as _;
use cutover_executor::router::haproxy::Haproxy;
use cutover_executor::router::nginx::Nginx;
use cutover_planner::dag::{PlannedShift, Server};
use std::collections::BTreeSet;

fn s(port: u16, weight: u32) -> Server {
    Server {
        addr: format!("127.0.0.1:{port}"),
        weight,
    }
}

fn nginx_of(r: &Router) -> Nginx {
    let d = r.dir.display().to_string();
    Nginx {
        upstream_file: r.dir.join("upstreams.conf"),
        pid_file: r.dir.join("nginx.pid"),
        test: vec![
            "nginx".into(),
            "-t".into(),
            "-q".into(),
            "-c".into(),
            format!("{d}/nginx.conf"),
            "-p".into(),
            d,
        ],
        reload: None,
        access_log: Some(r.dir.join("access.json")),
    }
}

/// nginx's worker pids (children of the master).
fn workers(r: &Router) -> BTreeSet<i32> {
    let master: i32 = std::fs::read_to_string(r.dir.join("nginx.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|st| {
                    st.rsplit(')')
                        .next()
                        .and_then(|r| r.split_whitespace().nth(1))
                        .and_then(|p| p.parse::<i32>().ok())
                })
                == Some(master)
        })
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
    let (undo, detail) = rt()
        .block_on(n.apply(
            "api".into(),
            vec![s(p, 90), s(p + 1, 10)],
            state.path().into(),
            "shift/api/10".into(),
        ))
        .unwrap();
    assert_eq!(
        r.config_bytes(),
        format!(
            "upstream api {{\n    keepalive 16;\n    server 127.0.0.1:{p} weight=90;\n    server \
             127.0.0.1:{} weight=10;\n}}\n",
            p + 1
        )
    );
    assert!(detail.contains("nginx reloaded"), "{detail}");
    let after_workers = workers(&r);
    assert!(
        after_workers.is_disjoint(&before_workers),
        "the step returns once the old workers are gone: {before_workers:?} -> {after_workers:?}"
    );
    // A re-run after a crash uses the state saved before the first attempt, not the live file.
    let (undo2, _) = rt()
        .block_on(n.apply(
            "api".into(),
            vec![s(p, 90), s(p + 1, 10)],
            state.path().into(),
            "shift/api/10".into(),
        ))
        .unwrap();
    assert_eq!(undo2, undo);
    rt().block_on(n.restore(undo)).unwrap();
    assert_eq!(
        r.config_bytes(),
        before,
        "rollback restores the upstream file byte for byte"
    );
    assert!(workers(&r).is_disjoint(&after_workers), "and reloads nginx");
}

#[test]
fn nginx_rejecting_the_new_file_leaves_the_live_config_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(1);
    let r = Router::nginx(dir.path(), "api", &[(p, 100)]);
    let before = r.config_bytes();
    // nginx listens before its worker is forked: wait for it, or a late fork looks like a reload.
    let t0 = std::time::Instant::now();
    while workers(&r).is_empty() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "nginx started no worker"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let before_workers = workers(&r);
    let state = tempfile::tempdir().unwrap();
    // A port nginx cannot accept: `nginx -t` fails.
    let bad = Server {
        addr: "127.0.0.1:99999".into(),
        weight: 10,
    };
    let err = rt()
        .block_on(nginx_of(&r).apply(
            "api".into(),
            vec![s(p, 90), bad],
            state.path().into(),
            "shift/api/10".into(),
        ))
        .unwrap_err();
    assert!(
        err.message()
            .contains("nginx -t rejected the new upstream file; the live config is unchanged")
            && err.message().contains("invalid port"),
        "{}",
        err.message()
    );
    assert_eq!(r.config_bytes(), before, "the previous file is back");
    assert_eq!(workers(&r), before_workers, "nginx was not reloaded");
}

#[test]
fn haproxy_shift_changes_weights_live_and_in_the_file_and_restores_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let r = Router::haproxy(dir.path(), "api", &[(p, 100), (p + 1, 0)]);
    let before = r.config_bytes();
    let h = Haproxy {
        admin_socket: dir.path().join("admin.sock"),
        config_file: Some(dir.path().join("haproxy.cfg")),
        log: None,
    };
    let state = tempfile::tempdir().unwrap();
    let (undo, detail) = rt()
        .block_on(h.apply(
            "api".into(),
            vec![s(p, 75), s(p + 1, 25)],
            state.path().into(),
            "shift/api/25".into(),
        ))
        .unwrap();
    assert!(detail.contains("no reload"), "{detail}");
    assert_eq!(
        r.weights("api"),
        [(format!("p{p}"), 75), (format!("p{}", p + 1), 25)]
            .into_iter()
            .collect()
    );
    let cfg = r.config_bytes();
    assert!(
        cfg.contains(&format!("server p{p} 127.0.0.1:{p} weight 75\n"))
            && cfg.contains(&format!(
                "server p{} 127.0.0.1:{} weight 25\n",
                p + 1,
                p + 1
            )),
        "{cfg}"
    );
    rt().block_on(h.restore(undo)).unwrap();
    assert_eq!(
        r.weights("api"),
        [(format!("p{p}"), 100), (format!("p{}", p + 1), 0)]
            .into_iter()
            .collect()
    );
    assert_eq!(
        r.config_bytes(),
        before,
        "the config file is byte-identical after the undo"
    );
}

#[test]
fn haproxy_names_a_server_the_backend_does_not_declare() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(3);
    let _r = Router::haproxy(dir.path(), "api", &[(p, 100)]);
    let h = Haproxy {
        admin_socket: dir.path().join("admin.sock"),
        config_file: None,
        log: None,
    };
    let state = tempfile::tempdir().unwrap();
    let err = rt()
        .block_on(h.apply(
            "api".into(),
            vec![s(p, 50), s(p + 2, 50)],
            state.path().into(),
            "shift/api/50".into(),
        ))
        .unwrap_err();
    assert!(
        err.message().contains(&format!(
            "backend `api` has no server at 127.0.0.1:{}",
            p + 2
        )) && err.message().contains("declare it"),
        "{}",
        err.message()
    );
    let err = rt()
        .block_on(h.check(
            vec![(
                "api".into(),
                vec![format!("127.0.0.1:{p}"), format!("127.0.0.1:{}", p + 2)],
            )],
            vec![],
        ))
        .unwrap_err();
    assert!(
        err.message().contains(&format!("api: 127.0.0.1:{}", p + 2)),
        "{}",
        err.message()
    );
    // Nothing was changed on the way.
    assert_eq!(
        _r.weights("api"),
        [(format!("p{p}"), 100)].into_iter().collect()
    );
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
    let script = format!(
        "if [ -e {m} ]; then kill -HUP $(cat {pid}); else touch {m}; exit 1; fi",
        m = mark.display(),
        pid = dir.path().join("nginx.pid").display()
    );
    let n = Nginx {
        reload: Some(vec!["sh".into(), "-c".into(), script]),
        ..nginx_of(&r)
    };
    let workers_before = workers(&r);
    let state = tempfile::tempdir().unwrap();
    let err = rt()
        .block_on(n.apply(
            "api".into(),
            vec![s(p, 50), s(p + 1, 50)],
            state.path().into(),
            "shift/api/50".into(),
        ))
        .unwrap_err();
    assert!(
        err.message().starts_with("nginx reload failed")
            && err
                .message()
                .contains("the file from before the step is back and live"),
        "{}",
        err.message()
    );
    assert_eq!(r.config_bytes(), before);
    assert!(
        workers(&r).is_disjoint(&workers_before),
        "nginx was reloaded with the previous file"
    );
}

// ---- Routers keep what they do not own (issue 9, item 10) -------------------------------------

/// A stand-in for an app or a maintenance page: answers every request on `port` with `status`
/// and `body` for as long as the test runs (also HAProxy's TCP health checks).
fn serve(port: u16, status: &'static str, body: &'static str) {
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let (mut buf, mut got) = ([0u8; 4096], Vec::new());
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = c.write_all(
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
}

/// (status, body) of `GET /` through the router on `port`.
fn get(port: u16) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        out.split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default(),
    )
}

fn planned(upstream: &str, steps: &[(&str, Vec<Server>)]) -> Vec<PlannedShift> {
    steps
        .iter()
        .map(|(id, servers)| PlannedShift {
            step: id.to_string(),
            upstream: upstream.into(),
            servers: servers.clone(),
        })
        .collect()
}

fn addrs(ports: &[u16]) -> Vec<String> {
    ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
}

/// The field case (f12): `localhost:PORT max_fails=1 fail_timeout=1s` for the old version and a
/// `backup` maintenance page. Every step keeps the backup line and the parameters; after the
/// release an outage of the app still shows the maintenance page; the rollback is byte for byte.
#[test]
fn nginx_keeps_a_backup_server_and_the_parameters_of_a_localhost_line_at_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(3);
    let (new, maint) = (p + 1, p + 2);
    serve(p, "200 OK", "old\n");
    serve(maint, "503 Service Unavailable", "maintenance\n");
    // Nothing listens on `new`: the new version is down once it has all the traffic.
    let r = Router::nginx(dir.path(), "api", &[(p, 100)]);
    let backup = format!("    server 127.0.0.1:{maint} backup;\n");
    let before = format!(
        "upstream api {{\n    server localhost:{p} max_fails=1 fail_timeout=1s;\n{backup}    \
         keepalive 16;\n}}\n"
    );
    std::fs::write(dir.path().join("upstreams.conf"), &before).unwrap();
    let n = nginx_of(&r);
    let steps = [
        ("shift/api/50", vec![s(p, 50), s(new, 50)]),
        ("shift/api/100", vec![s(p, 0), s(new, 100)]),
    ];
    let detail = rt()
        .block_on(n.check(
            vec![("api".into(), addrs(&[p, new]))],
            planned("api", &steps),
        ))
        .unwrap();
    assert!(
        detail.contains(&format!(
            "keeps 1 server(s) the release does not manage, as written: `127.0.0.1:{maint} backup`"
        )),
        "{detail}"
    );
    let state = tempfile::tempdir().unwrap();
    let (undo50, _) = rt()
        .block_on(n.apply(
            "api".into(),
            steps[0].1.clone(),
            state.path().into(),
            steps[0].0.into(),
        ))
        .unwrap();
    let at50 = r.config_bytes();
    assert_eq!(
        at50,
        format!(
            "upstream api {{\n    server localhost:{p} weight=50 max_fails=1 fail_timeout=1s;\n    \
             server 127.0.0.1:{new} weight=50 max_fails=1 fail_timeout=1s;\n{backup}    keepalive \
             16;\n}}\n"
        )
    );
    for _ in 0..4 {
        assert_eq!(
            get(r.port),
            (200, "old\n".to_string()),
            "at 50% the old version answers (the new one is down)"
        );
    }
    let (undo100, _) = rt()
        .block_on(n.apply(
            "api".into(),
            steps[1].1.clone(),
            state.path().into(),
            steps[1].0.into(),
        ))
        .unwrap();
    assert_eq!(
        r.config_bytes(),
        format!(
            "upstream api {{\n    server 127.0.0.1:{new} weight=100 max_fails=1 \
             fail_timeout=1s;\n{backup}    keepalive 16;\n}}\n"
        )
    );
    assert_eq!(
        get(r.port),
        (503, "maintenance\n".to_string()),
        "after the release an app outage still shows the maintenance page"
    );
    rt().block_on(n.restore(undo100)).unwrap();
    assert_eq!(r.config_bytes(), at50);
    rt().block_on(n.restore(undo50)).unwrap();
    assert_eq!(
        r.config_bytes(),
        before,
        "the rollback restores the file byte for byte"
    );
    assert_eq!(get(r.port), (200, "old\n".to_string()));
}

/// An upstream cutover cannot manage (two lines for one server; the release's server marked
/// `backup`) is refused by preflight, naming the file, before anything changes.
#[test]
fn nginx_preflight_refuses_an_upstream_it_cannot_manage_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let r = Router::nginx(dir.path(), "api", &[(p, 100)]);
    let n = nginx_of(&r);
    let steps = planned(
        "api",
        &[
            ("shift/api/50", vec![s(p, 50), s(p + 1, 50)]),
            ("shift/api/100", vec![s(p, 0), s(p + 1, 100)]),
        ],
    );
    for (file, want) in [
        (
            format!(
                "upstream api {{\n    server localhost:{p};\n    server 127.0.0.1:{p} \
                 max_fails=2;\n}}\n"
            ),
            format!("two `server` lines for 127.0.0.1:{p}"),
        ),
        (
            format!(
                "upstream api {{\n    server 127.0.0.1:{p};\n    server [::1]:{} backup;\n}}\n",
                p + 1
            ),
            format!("`[::1]:{}` is marked `backup`", p + 1),
        ),
    ] {
        std::fs::write(dir.path().join("upstreams.conf"), &file).unwrap();
        let err = rt()
            .block_on(n.check(vec![("api".into(), addrs(&[p, p + 1]))], steps.clone()))
            .unwrap_err()
            .message();
        assert!(
            err.contains(&dir.path().join("upstreams.conf").display().to_string())
                && err.contains("step shift/api/50 would fail")
                && err.contains(&want)
                && err.contains("hint:"),
            "{err}"
        );
        assert_eq!(r.config_bytes(), file, "preflight changes nothing");
    }
}

/// Preflight refuses, before any change, an nginx set-up where shifts could not work: the
/// upstream file missing, without the block, pulling servers in with `include`, not loaded by
/// nginx at all, or a pid file that names another program (cutover would SIGHUP it).
#[test]
fn nginx_preflight_refuses_files_and_pids_a_shift_could_not_use() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let r = Router::nginx(dir.path(), "api", &[(p, 100)]);
    let steps = planned(
        "api",
        &[
            ("shift/api/50", vec![s(p, 50), s(p + 1, 50)]),
            ("shift/api/100", vec![s(p, 0), s(p + 1, 100)]),
        ],
    );
    let check =
        |n: &Nginx| rt().block_on(n.check(vec![("api".into(), addrs(&[p, p + 1]))], steps.clone()));
    let good = nginx_of(&r);
    check(&good).expect("the test's own set-up passes");
    let before = r.config_bytes();
    // A typo in upstream_file.
    let mut typo = nginx_of(&r);
    typo.upstream_file = r.dir.join("upstream.conf");
    let err = check(&typo).unwrap_err().message();
    assert!(
        err.contains("upstream.conf does not exist") && err.contains("hint:"),
        "{err}"
    );
    assert!(
        !r.dir.join("upstream.conf").exists(),
        "preflight created the file"
    );
    // A file nginx does not load (exists, has the block).
    let stray = r.dir.join("stray.conf");
    std::fs::write(&stray, &before).unwrap();
    let mut unloaded = nginx_of(&r);
    unloaded.upstream_file = stray;
    let err = check(&unloaded).unwrap_err().message();
    assert!(
        err.contains("is not part of the configuration nginx loads") && err.contains("hint:"),
        "{err}"
    );
    // A file without the block.
    let empty = r.dir.join("empty.conf");
    std::fs::write(&empty, "# nothing here\n").unwrap();
    let mut blockless = nginx_of(&r);
    blockless.upstream_file = empty;
    let err = check(&blockless).unwrap_err().message();
    assert!(
        err.contains("has no `upstream api") && err.contains("hint:"),
        "{err}"
    );
    // The loaded file with an `include` inside the block.
    std::fs::write(r.dir.join("old.conf"), format!("server 127.0.0.1:{p};\n")).unwrap();
    let text = format!(
        "upstream api {{\n    include {}/old.conf;\n}}\n",
        r.dir.display()
    );
    std::fs::write(r.dir.join("upstreams.conf"), &text).unwrap();
    let err = check(&good).unwrap_err().message();
    assert!(
        err.contains("pulls servers in with `include`") && err.contains("hint:"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(r.dir.join("upstreams.conf")).unwrap(),
        text,
        "preflight changed the file"
    );
    std::fs::write(r.dir.join("upstreams.conf"), &before).unwrap();
    // A pid file naming another program.
    let mut other = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    std::fs::write(r.dir.join("other.pid"), other.id().to_string()).unwrap();
    let mut wrong = nginx_of(&r);
    wrong.pid_file = r.dir.join("other.pid");
    let err = check(&wrong).unwrap_err().message();
    assert!(
        err.contains("which is not an nginx master") && err.contains("hint:"),
        "{err}"
    );
    assert!(
        other.try_wait().unwrap().is_none(),
        "the other program was signalled"
    );
    let _ = other.kill();
    let _ = other.wait();
}

/// An upstream file kept as a symbolic link (`sites-enabled/x -> ../sites-available/x`) is
/// written through: the link stays, its target gets the new servers, mode and owner are kept.
#[test]
fn nginx_writes_through_a_symlinked_upstream_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    serve(p, "200 OK", "old\n");
    serve(p + 1, "200 OK", "new\n");
    let r = Router::nginx(dir.path(), "api", &[(p, 100)]);
    let real = r.dir.join("available");
    std::fs::create_dir(&real).unwrap();
    std::fs::rename(r.dir.join("upstreams.conf"), real.join("api.conf")).unwrap();
    std::fs::set_permissions(
        real.join("api.conf"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::symlink(real.join("api.conf"), r.dir.join("upstreams.conf")).unwrap();
    let n = nginx_of(&r);
    let state = tempfile::tempdir().unwrap();
    rt().block_on(n.apply(
        "api".into(),
        vec![s(p, 0), s(p + 1, 100)],
        state.path().into(),
        "shift/api/100".into(),
    ))
    .unwrap();
    let link = std::fs::symlink_metadata(r.dir.join("upstreams.conf")).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "the link was replaced by a file"
    );
    let text = std::fs::read_to_string(real.join("api.conf")).unwrap();
    assert!(
        text.contains(&format!("127.0.0.1:{}", p + 1))
            && !text.contains(&format!("127.0.0.1:{p} ")),
        "{text}"
    );
    assert_eq!(
        std::fs::metadata(real.join("api.conf"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
    assert_eq!(get(r.port), (200, "new\n".to_string()));
}

fn haproxy_of(dir: &std::path::Path) -> Haproxy {
    Haproxy {
        admin_socket: dir.join("admin.sock"),
        config_file: Some(dir.join("haproxy.cfg")),
        log: None,
    }
}

/// The admin state (`ready`, `maint`, `drain`) of each server, and whether it takes traffic.
fn states(h: &Haproxy, backend: &str) -> std::collections::BTreeMap<String, (&'static str, bool)> {
    rt().block_on(h.servers(backend))
        .unwrap()
        .into_iter()
        .map(|s| (s.name.clone(), (s.admin_word(), s.takes_traffic())))
        .collect()
}

/// The field case (f13): the new version's slot is declared `disabled` (MAINT). The first shift
/// that gives it traffic sets it ready and confirms it UP; at 100% every request is answered by
/// it (no 503); the config file loses `disabled` so a restart keeps it; the rollback puts MAINT,
/// the weights and the file back.
#[test]
fn haproxy_a_maint_slot_is_set_ready_confirmed_up_and_put_back_by_the_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let q = p + 1;
    serve(p, "200 OK", "old\n");
    serve(q, "200 OK", "new\n");
    let r = Router::haproxy_with(
        dir.path(),
        "api",
        &format!(
            "    balance roundrobin\n    server p{p} 127.0.0.1:{p} weight 100 check inter \
             200ms\n    # slot for the next version, kept out of rotation until release day\n    \
             server p{q} 127.0.0.1:{q} weight 0 check inter 200ms disabled\n"
        ),
    );
    let before = r.config_bytes();
    let h = haproxy_of(dir.path());
    assert_eq!(states(&h, "api")[&format!("p{q}")], ("maint", false));
    let steps = [
        ("shift/api/50", vec![s(p, 50), s(q, 50)]),
        ("shift/api/100", vec![s(p, 0), s(q, 100)]),
    ];
    let detail = rt()
        .block_on(h.check(vec![("api".into(), addrs(&[p, q]))], planned("api", &steps)))
        .unwrap();
    assert!(
        detail.contains(&format!("api/p{q} is"))
            && detail.contains("step shift/api/50 sets it ready"),
        "{detail}"
    );
    let state = tempfile::tempdir().unwrap();
    let (undo50, d50) = rt()
        .block_on(h.apply(
            "api".into(),
            steps[0].1.clone(),
            state.path().into(),
            steps[0].0.into(),
        ))
        .unwrap();
    assert!(d50.contains(&format!("p{q} set ready")), "{d50}");
    assert_eq!(
        r.weights("api"),
        [(format!("p{p}"), 50), (format!("p{q}"), 50)]
            .into_iter()
            .collect()
    );
    assert_eq!(states(&h, "api")[&format!("p{q}")], ("ready", true));
    assert!(
        r.config_bytes().contains(&format!(
            "    server p{q} 127.0.0.1:{q} weight 50 check inter 200ms\n"
        )),
        "`disabled` is gone from the file, so a restart keeps the server ready:\n{}",
        r.config_bytes()
    );
    let (undo100, _) = rt()
        .block_on(h.apply(
            "api".into(),
            steps[1].1.clone(),
            state.path().into(),
            steps[1].0.into(),
        ))
        .unwrap();
    for _ in 0..20 {
        assert_eq!(
            get(r.port),
            (200, "new\n".to_string()),
            "at 100% the new version answers every request"
        );
    }
    rt().block_on(h.restore(undo100)).unwrap();
    rt().block_on(h.restore(undo50)).unwrap();
    assert_eq!(
        r.config_bytes(),
        before,
        "the rollback restores the file byte for byte, `disabled` included"
    );
    assert_eq!(
        r.weights("api"),
        [(format!("p{p}"), 100), (format!("p{q}"), 0)]
            .into_iter()
            .collect()
    );
    assert_eq!(
        states(&h, "api")[&format!("p{q}")],
        ("maint", false),
        "and MAINT"
    );
    assert_eq!(get(r.port), (200, "old\n".to_string()));
}

/// A server put in DRAIN at runtime is made ready for the shift and drained again by the undo.
#[test]
fn haproxy_a_drained_server_is_made_ready_and_drained_again_by_the_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let q = p + 1;
    serve(p, "200 OK", "old\n");
    serve(q, "200 OK", "new\n");
    let r = Router::haproxy_with(
        dir.path(),
        "api",
        &format!(
            "    balance leastconn\n    server p{p} 127.0.0.1:{p} weight 100 check inter 200ms\n    \
             server p{q} 127.0.0.1:{q} weight 0 check inter 200ms\n"
        ),
    );
    let h = haproxy_of(dir.path());
    assert_eq!(
        rt().block_on(h.command(&format!("set server api/p{q} state drain")))
            .unwrap()
            .trim(),
        ""
    );
    assert_eq!(states(&h, "api")[&format!("p{q}")].0, "drain");
    let state = tempfile::tempdir().unwrap();
    let (undo, _) = rt()
        .block_on(h.apply(
            "api".into(),
            vec![s(p, 0), s(q, 100)],
            state.path().into(),
            "shift/api/100".into(),
        ))
        .unwrap();
    assert_eq!(states(&h, "api")[&format!("p{q}")], ("ready", true));
    for _ in 0..10 {
        assert_eq!(get(r.port), (200, "new\n".to_string()));
    }
    rt().block_on(h.restore(undo)).unwrap();
    assert_eq!(states(&h, "api")[&format!("p{q}")].0, "drain");
    assert_eq!(
        r.weights("api"),
        [(format!("p{p}"), 100), (format!("p{q}"), 0)]
            .into_iter()
            .collect()
    );
    assert_eq!(get(r.port), (200, "old\n".to_string()));
}

/// A shift never ends with traffic on a server that cannot take it: the slot is set ready but
/// its health check fails (nothing listens), so the step fails without moving traffic, and puts
/// MAINT, the weights and the file back itself.
#[test]
fn haproxy_a_shift_never_leaves_traffic_on_a_server_that_cannot_take_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let q = p + 1;
    serve(p, "200 OK", "old\n");
    let r = Router::haproxy_with(
        dir.path(),
        "api",
        &format!(
            "    balance roundrobin\n    server p{p} 127.0.0.1:{p} weight 100 check inter \
             200ms\n    server p{q} 127.0.0.1:{q} weight 0 check inter 200ms disabled\n"
        ),
    );
    let before = r.config_bytes();
    let h = haproxy_of(dir.path());
    let state = tempfile::tempdir().unwrap();
    let err = rt()
        .block_on(h.apply(
            "api".into(),
            vec![s(p, 0), s(q, 100)],
            state.path().into(),
            "shift/api/100".into(),
        ))
        .unwrap_err()
        .message();
    assert!(
        err.contains(&format!("api/p{q} (127.0.0.1:{q}) is DOWN"))
            && err.contains("no traffic was moved")
            && err.contains("hint:")
            && err.contains("are back"),
        "{err}"
    );
    assert_eq!(
        r.weights("api"),
        [(format!("p{p}"), 100), (format!("p{q}"), 0)]
            .into_iter()
            .collect()
    );
    assert_eq!(states(&h, "api")[&format!("p{q}")].0, "maint");
    assert_eq!(r.config_bytes(), before);
    assert_eq!(get(r.port), (200, "old\n".to_string()));
    // The other way round: the server serving now is DOWN (nothing listens) and a canary keeps
    // traffic on it: preflight says so, before the migrations.
    let dir2 = tempfile::tempdir().unwrap();
    let o = free_ports(2);
    let n = o + 1;
    serve(n, "200 OK", "new\n");
    let _r2 = Router::haproxy_with(
        dir2.path(),
        "api",
        &format!(
            "    balance roundrobin\n    server p{o} 127.0.0.1:{o} weight 100 check inter \
             200ms\n    server p{n} 127.0.0.1:{n} weight 0 check inter 200ms\n"
        ),
    );
    let steps = planned(
        "api",
        &[
            ("shift/api/50", vec![s(o, 50), s(n, 50)]),
            ("shift/api/100", vec![s(o, 0), s(n, 100)]),
        ],
    );
    let err = rt()
        .block_on(haproxy_of(dir2.path()).check(vec![("api".into(), addrs(&[o, n]))], steps))
        .unwrap_err()
        .message();
    assert!(
        err.contains(&format!("api/p{o} (127.0.0.1:{o}) is DOWN"))
            && err.contains("the release keeps traffic on it")
            && err.contains("hint:"),
        "{err}"
    );
    // The new version's slot, declared at full weight, is DOWN before the release deploys it:
    // that is no reason to refuse (the deploy starts it before any shift).
    let dir3 = tempfile::tempdir().unwrap();
    let (o3, n3) = {
        let b = free_ports(2);
        (b, b + 1)
    };
    serve(o3, "200 OK", "old\n");
    let _r3 = Router::haproxy_with(
        dir3.path(),
        "api",
        &format!(
            "    balance roundrobin\n    server p{o3} 127.0.0.1:{o3} weight 100 check inter \
             200ms\n    server p{n3} 127.0.0.1:{n3} weight 100 check inter 200ms\n"
        ),
    );
    let steps = planned(
        "api",
        &[
            ("shift/api/50", vec![s(o3, 50), s(n3, 50)]),
            ("shift/api/100", vec![s(o3, 0), s(n3, 100)]),
        ],
    );
    rt().block_on(haproxy_of(dir3.path()).check(vec![("api".into(), addrs(&[o3, n3]))], steps))
        .expect("a slot the release deploys may be DOWN at preflight");
    // A new-version slot declared `backup` would get no traffic at any weight: refused.
    let dir4 = tempfile::tempdir().unwrap();
    let (o4, n4) = {
        let b = free_ports(2);
        (b, b + 1)
    };
    serve(o4, "200 OK", "old\n");
    let _r4 = Router::haproxy_with(
        dir4.path(),
        "api",
        &format!(
            "    balance roundrobin\n    server p{o4} 127.0.0.1:{o4} weight 100 check inter \
             200ms\n    server p{n4} 127.0.0.1:{n4} weight 0 check inter 200ms backup\n"
        ),
    );
    let steps = planned(
        "api",
        &[
            ("shift/api/50", vec![s(o4, 50), s(n4, 50)]),
            ("shift/api/100", vec![s(o4, 0), s(n4, 100)]),
        ],
    );
    let err = rt()
        .block_on(haproxy_of(dir4.path()).check(vec![("api".into(), addrs(&[o4, n4]))], steps))
        .unwrap_err()
        .message();
    assert!(
        err.contains(&format!("api/p{n4} (127.0.0.1:{n4}) is declared `backup`"))
            && err.contains("hint:"),
        "{err}"
    );
}

/// The field case (f13, `spec-static.toml`): a canary on a `balance source` backend is refused by
/// preflight (the first step of the plan, before any migration), from the plan's own shifts;
/// the same backend with `hash-type consistent` is accepted.
#[test]
fn haproxy_preflight_refuses_a_static_backend_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let q = p + 1;
    serve(p, "200 OK", "old\n");
    serve(q, "200 OK", "new\n");
    let servers = format!(
        "    server p{p} 127.0.0.1:{p} weight 100\n    server p{q} 127.0.0.1:{q} weight 0\n"
    );
    let r = Router::haproxy_with(
        dir.path(),
        "api",
        &format!(
            "    balance source\n{servers}\nbackend api2\n    balance source\n    hash-type \
             consistent\n{servers}"
        ),
    );
    let before = r.config_bytes();
    // The plan of a canary release, as `cutover apply` makes it.
    let d = dir.path().display();
    std::fs::create_dir(dir.path().join("m")).unwrap();
    std::fs::write(
        dir.path().join("m/V1__base.sql"),
        "CREATE TABLE users (id bigint PRIMARY KEY, name text);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("m/V2__users_full_name.sql"),
        "ALTER TABLE users ADD COLUMN full_name text;\n",
    )
    .unwrap();
    let spec = format!(
        "[release]\nname = \"static\"\n\n[[service]]\nname = \"api\"\nimage = \"app\"\ncurrent \
         = \"1.0.0\"\ntarget = \"1.1.0\"\nport = {p}\ncandidate_port = \
         {q}\n\n[service.health]\npath = \"/health\"\n\n[service.strategy]\nkind \
         = \"canary\"\nsteps = [50, 100]\n\n[[database]]\nname = \"main\"\nurl_env \
         = \"DATABASE_URL\"\nmigrations = \"m\"\nbaseline = 1\nbackup = {{ enabled = false \
         }}\n\n[router]\nkind = \"haproxy\"\nadmin_socket = \"{d}/admin.sock\"\nconfig_file \
         = \"{d}/haproxy.cfg\"\n"
    );
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    let plan = cutover_planner::plan_file(&dir.path().join("spec.toml"))
        .unwrap()
        .plan;
    let first = plan.steps().next().unwrap();
    assert_eq!(first.id, "preflight", "preflight runs before anything else");
    let cutover_planner::dag::Params::Preflight(cutover_planner::dag::PreflightParams {
        upstreams,
        shifts,
        ..
    }) = &first.params
    else {
        panic!("not a preflight step")
    };
    assert_eq!(
        shifts.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(),
        ["shift/api/50", "shift/api/100"]
    );
    let h = haproxy_of(dir.path());
    let err = rt()
        .block_on(h.check(upstreams.clone().into_iter().collect(), shifts.clone()))
        .unwrap_err()
        .message();
    assert!(
        err.contains("backend `api` balances with `source`, a static algorithm")
            && err.contains(&format!(
                "step shift/api/50 needs p{p} at 50 (configured 100), p{q} at 50 (configured 0)"
            ))
            && err.contains("hint:"),
        "{err}"
    );
    assert_eq!(
        r.weights("api"),
        [(format!("p{p}"), 100), (format!("p{q}"), 0)]
            .into_iter()
            .collect(),
        "nothing changed"
    );
    assert_eq!(r.config_bytes(), before);
    // What preflight found is what HAProxy itself says at the first shift.
    let out = rt()
        .block_on(h.command(&format!("set server api/p{q} weight 50")))
        .unwrap();
    assert!(out.contains("static LB algorithm"), "{out}");
    // With `hash-type consistent` the same weights are taken.
    let to_api2 = |v: &Vec<PlannedShift>| {
        v.iter()
            .map(|s| PlannedShift {
                upstream: "api2".into(),
                ..s.clone()
            })
            .collect::<Vec<_>>()
    };
    let detail = rt()
        .block_on(h.check(vec![("api2".into(), addrs(&[p, q]))], to_api2(shifts)))
        .unwrap();
    assert!(
        detail.contains("every one of the 2 planned shift(s) takes weights the backend accepts"),
        "{detail}"
    );
}

/// HAProxy started on an existing config file (a restart), stopped when dropped.
struct Restarted(i32);

impl Restarted {
    fn start(dir: &std::path::Path) -> Restarted {
        let pid = dir.join("haproxy-restarted.pid");
        let out = std::process::Command::new("haproxy")
            .args(["-D", "-f"])
            .arg(dir.join("haproxy.cfg"))
            .arg("-p")
            .arg(&pid)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "HAProxy did not restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Restarted(
            std::fs::read_to_string(&pid)
                .unwrap()
                .trim()
                .parse()
                .unwrap(),
        )
    }
}

impl Drop for Restarted {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0, libc::SIGTERM) };
    }
}

/// A static backend, blue-green as preflight's hint says (the new slot at its full weight and
/// `disabled`): the shift is taken, and the file it leaves survives a restart: the new server
/// ready, the old one parked `disabled` at its configured weight, so the next release (the
/// other way round) is accepted too.
#[test]
fn haproxy_static_blue_green_survives_a_restart_and_the_next_release() {
    let dir = tempfile::tempdir().unwrap();
    let p = free_ports(2);
    let q = p + 1;
    serve(p, "200 OK", "old\n");
    serve(q, "200 OK", "new\n");
    let r = Router::haproxy_with(
        dir.path(),
        "api",
        &format!(
            "    balance source\n    server p{p} 127.0.0.1:{p} weight 100 check inter 200ms\n    \
             server p{q} 127.0.0.1:{q} weight 100 check inter 200ms disabled\n"
        ),
    );
    let port = r.port;
    let h = haproxy_of(dir.path());
    let release = planned("api", &[("shift/api/100", vec![s(p, 0), s(q, 100)])]);
    rt().block_on(h.check(vec![("api".into(), addrs(&[p, q]))], release.clone()))
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    rt().block_on(h.apply(
        "api".into(),
        release[0].servers.clone(),
        state.path().into(),
        "shift/api/100".into(),
    ))
    .unwrap();
    assert_eq!(get(port), (200, "new\n".to_string()));
    let cfg = r.config_bytes();
    assert!(
        cfg.contains(&format!(
            "    server p{p} 127.0.0.1:{p} weight 100 check inter 200ms disabled\n"
        )) && cfg.contains(&format!(
            "    server p{q} 127.0.0.1:{q} weight 100 check inter 200ms\n"
        )),
        "{cfg}"
    );
    drop(r);
    let _h2 = Restarted::start(dir.path());
    let t0 = std::time::Instant::now();
    while states(&h, "api").get(&format!("p{q}")) != Some(&("ready", true)) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "p{q} is not UP after the restart: {:?}",
            states(&h, "api")
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        states(&h, "api")[&format!("p{p}")],
        ("maint", false),
        "the old server is parked after the restart"
    );
    assert_eq!(
        get(port),
        (200, "new\n".to_string()),
        "the restart kept the release"
    );
    // The next release, back to p: preflight accepts it and the shift is taken.
    let next = planned("api", &[("shift/api/100", vec![s(q, 0), s(p, 100)])]);
    rt().block_on(h.check(vec![("api".into(), addrs(&[q, p]))], next.clone()))
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    rt().block_on(h.apply(
        "api".into(),
        next[0].servers.clone(),
        state.path().into(),
        "shift/api/100".into(),
    ))
    .unwrap();
    assert_eq!(get(port), (200, "old\n".to_string()));
}
