//! The real parts an end-to-end release needs, started per test: a PostgreSQL cluster at the
//! sample's baseline, the sample app's images (built here, FROM scratch, through the Docker API:
//! there is no registry to pull from), version 1 running in a container on the host network,
//! and nginx or HAProxy in front of it on loopback ports. Everything is removed on drop.
//!
//! A missing Docker engine, nginx or HAProxy fails the test with what to install; nothing skips.

use crate::common::root;
use cutover_executor::runtime::{
    ContainerRuntime, Docker, LABEL_PORT, LABEL_SERVICE, LABEL_VERSION, NewContainer,
};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "cutover-sample-app";

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The static sample-app binary, built once (under a lock: tests run in parallel processes).
fn sample_binary() -> PathBuf {
    let target = root().join("target/static");
    std::fs::create_dir_all(&target).unwrap();
    let lock = std::fs::File::create(target.join(".build-lock")).unwrap();
    lock.lock().unwrap();
    let out = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "cutover-sample-app",
            "--target",
            "x86_64-unknown-linux-gnu",
            "--target-dir",
        ])
        .arg(&target)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(root())
        .output()
        .expect("cannot run cargo to build the sample app");
    assert!(
        out.status.success(),
        "building the static sample app failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("x86_64-unknown-linux-gnu/release/sample-app")
}

/// A ustar archive of `files` (name, mode, bytes): the build context sent to the engine.
fn tar(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, mode, data) in files {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
            let s = format!("{v:0width$o}\0", width = len - 1);
            h[at..at + len].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, u64::from(*mode));
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, data.len() as u64);
        octal(&mut h, 136, 12, 0);
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Builds `cutover-sample-app:1.0.0` (reads `users.name`) and `:1.1.0` (reads `users.full_name`)
/// from the static binary, unless images of this very binary exist.
pub fn ensure_images() {
    use futures_util::StreamExt;
    let bin = sample_binary();
    let bytes = std::fs::read(&bin).unwrap();
    let digest = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(&bytes))
    };
    let lock = std::fs::File::create(root().join("target/static/.image-lock")).unwrap();
    lock.lock().unwrap();
    rt().block_on(async {
        let docker = bollard::Docker::connect_with_defaults()
            .expect("no Docker engine: these tests need one (DOCKER_HOST or /var/run/docker.sock)")
            .negotiate_version()
            .await
            .expect("the Docker engine does not answer: these tests need one running");
        for (tag, column) in [("1.0.0", "name"), ("1.1.0", "full_name")] {
            let image = format!("{IMAGE}:{tag}");
            if let Ok(i) = docker.inspect_image(&image).await
                && i.config
                    .and_then(|c| c.labels)
                    .and_then(|l| l.get("cutover.test.binary").cloned())
                    .as_deref()
                    == Some(digest.as_str())
            {
                continue;
            }
            let dockerfile = format!(
                "FROM scratch\nCOPY sample-app /sample-app\nENV USERS_COLUMN={column} \
                 APP_VERSION={tag}\nLABEL cutover.test.binary={digest}\nENTRYPOINT \
                 [\"/sample-app\"]\n"
            );
            let context = tar(&[
                ("Dockerfile", 0o644, dockerfile.as_bytes()),
                ("sample-app", 0o755, &bytes),
            ]);
            let opts = bollard::query_parameters::BuildImageOptionsBuilder::new()
                .t(&image)
                .rm(true)
                .build();
            let mut stream =
                docker.build_image(opts, None, Some(bollard::body_full(context.into())));
            while let Some(item) = stream.next().await {
                let info = item.unwrap_or_else(|e| panic!("building {image} failed: {e}"));
                if let Some(e) = info.error_detail {
                    panic!("building {image} failed: {e:?}");
                }
            }
        }
    });
}

/// `n` consecutive free loopback ports, below the kernel's ephemeral range: ports handed out by
/// `bind(0)` (the PostgreSQL clusters of tests running beside this one, outgoing connections)
/// come from that range, and one of them taking a port between this check and the container's
/// bind made the container exit.
pub fn free_ports(n: u16) -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| {
            r.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    let (from, to) = (
        low.saturating_sub(12_000).max(10_000),
        low.saturating_sub(n + 1),
    );
    assert!(
        from < to,
        "no room for test ports below the ephemeral range (it starts at {low})"
    );
    // A different starting point per process, so tests running beside each other rarely probe
    // the same ports; within a process the scan goes on after the ports handed out before (they
    // are not bound yet when the next call looks).
    static CURSOR: std::sync::Mutex<Option<u16>> = std::sync::Mutex::new(None);
    let mut cursor = CURSOR.lock().unwrap();
    let mut at =
        cursor.unwrap_or(from + (std::process::id() as u16).wrapping_mul(7919) % (to - from));
    for _ in 0..2000 {
        if at + n >= to {
            at = from;
        }
        if (0..n).all(|i| TcpListener::bind(("127.0.0.1", at + i)).is_ok()) {
            *cursor = Some(at + n);
            return at;
        }
        at += n;
    }
    panic!("no {n} consecutive free loopback ports between {from} and {to}");
}

pub fn wait_http(url: &str, timeout: Duration) {
    let t0 = Instant::now();
    let r = rt();
    loop {
        if r.block_on(cutover_executor::drivers::containers::http_status(
            url,
            Duration::from_millis(500),
        )) == Ok(200)
        {
            return;
        }
        assert!(
            t0.elapsed() < timeout,
            "{url} did not answer 200 within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Which router fronts the app.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Nginx,
    Haproxy,
}

/// A running router process.
pub struct Router {
    pub kind: Kind,
    pub dir: PathBuf,
    pub port: u16,
    /// HAProxy: the UDP port its frontend sends its request log to (`log-format "cutover
    /// ..."`); nobody listens unless a spec names it ([`Router::spec_with_log`]).
    pub log_port: u16,
    /// Read once it started: the directory may be gone by the time the router is dropped.
    pid: i32,
}

/// The pid a daemon wrote to `file`, once it is there.
fn pid_of(file: &Path) -> i32 {
    let t0 = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .filter(|p| *p > 1)
        {
            return pid;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no pid in {}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn need(program: &str, package: &str) -> PathBuf {
    for d in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(d).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "`{program}` is not installed: these tests need Debian's `{package}` package (scripts/test \
         installs it)"
    );
}

impl Router {
    /// nginx with the upstream file cutover owns, a JSON access log and a master pid file.
    pub fn nginx(dir: &Path, upstream: &str, servers: &[(u16, u32)]) -> Router {
        let bin = need("nginx", "nginx");
        let port = free_ports(1);
        let up = servers
            .iter()
            .map(|(p, w)| format!("    server 127.0.0.1:{p} weight={w};\n"))
            .collect::<String>();
        std::fs::write(
            dir.join("upstreams.conf"),
            format!("upstream {upstream} {{\n    keepalive 16;\n{up}}}\n"),
        )
        .unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "user root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log \
                 {d}/error.log;\nevents {{ worker_connections 1024; }}\nhttp {{\n    access_log \
                 off;\n    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; \
                 fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path \
                 {d}/scgi;\n    log_format cutover_json escape=json \
                 '{{\"time\":$msec,\"upstream\":\"$upstream_addr\",' \
                 '\"upstream_status\":\"$upstream_status\",\"status\":$status,' \
                 '\"request_time\":$request_time}}';\n    include {d}/upstreams.conf;\n    server \
                 {{\n        listen 127.0.0.1:{port};\n        access_log {d}/access.json \
                 cutover_json;\n        location / {{\n            proxy_pass \
                 http://{upstream};\n            proxy_http_version 1.1;\n            \
                 proxy_set_header Connection \"\";\n            proxy_next_upstream error timeout \
                 http_502;\n        }}\n    }}\n}}\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("access.json"), "").unwrap();
        let out = Command::new(&bin)
            .args(["-c", &format!("{d}/nginx.conf"), "-p", &format!("{d}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nginx did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = Router {
            kind: Kind::Nginx,
            log_port: 0,
            dir: dir.to_path_buf(),
            port,
            pid: pid_of(&dir.join("nginx.pid")),
        };
        r.wait_listening();
        r
    }

    /// HAProxy with an admin socket; every server the release will use is declared.
    pub fn haproxy(dir: &Path, upstream: &str, servers: &[(u16, u32)]) -> Router {
        let lines = servers
            .iter()
            .map(|(p, w)| format!("    server p{p} 127.0.0.1:{p} weight {w}\n"))
            .collect::<String>();
        Router::haproxy_with(dir, upstream, &format!("    balance roundrobin\n{lines}"))
    }

    /// HAProxy whose backend `upstream` has the lines `backend` (balance, servers, ...).
    pub fn haproxy_with(dir: &Path, upstream: &str, backend: &str) -> Router {
        let bin = need("haproxy", "haproxy");
        let port = free_ports(1);
        let log_port = free_ports(1);
        let d = dir.display();
        std::fs::write(
            dir.join("haproxy.cfg"),
            format!(
                "global\n    stats socket {d}/admin.sock mode 600 level admin\n    pidfile \
                 {d}/haproxy.pid\n\ndefaults\n    mode http\n    timeout connect 2s\n    timeout \
                 client 30s\n    timeout server 30s\n    option http-keep-alive\n    retries 2\n    \
                 retry-on conn-failure empty-response\n    option redispatch\n\nfrontend fe\n    \
                 bind 127.0.0.1:{port}\n    log 127.0.0.1:{log_port} local0\n    log-format \
                 \"cutover %si:%sp %ST %Ta\"\n    default_backend {upstream}\n\nbackend \
                 {upstream}\n{backend}"
            ),
        )
        .unwrap();
        let out = Command::new(&bin)
            .args([
                "-D",
                "-f",
                &format!("{d}/haproxy.cfg"),
                "-p",
                &format!("{d}/haproxy.pid"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "HAProxy did not start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let r = Router {
            kind: Kind::Haproxy,
            dir: dir.to_path_buf(),
            port,
            log_port,
            pid: pid_of(&dir.join("haproxy.pid")),
        };
        r.wait_listening();
        r
    }

    fn wait_listening(&self) {
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{:?} is not listening on {}",
                self.kind,
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `[router]` section of a spec for this router.
    pub fn spec(&self) -> String {
        let d = self.dir.display();
        match self.kind {
            Kind::Nginx => format!(
                "[router]\nkind = \"nginx\"\nupstream_file = \"{d}/upstreams.conf\"\npid_file \
                 = \"{d}/nginx.pid\"\ntest = \
                 [\"nginx\", \"-t\", \"-q\", \"-c\", \"{d}/nginx.conf\", \"-p\", \"{d}\"]\naccess_log \
                 = \"{d}/access.json\"\n"
            ),
            Kind::Haproxy => format!(
                "[router]\nkind = \"haproxy\"\nadmin_socket = \"{d}/admin.sock\"\nconfig_file \
                 = \"{d}/haproxy.cfg\"\n"
            ),
        }
    }

    /// [`Router::spec`], with HAProxy's request log for the gates (`log`).
    pub fn spec_with_log(&self) -> String {
        format!("{}log = \"127.0.0.1:{}\"\n", self.spec(), self.log_port)
    }

    /// The file whose bytes a rollback must restore (compared as text: equal strings are equal bytes).
    pub fn config_bytes(&self) -> String {
        std::fs::read_to_string(self.dir.join(if self.kind == Kind::Nginx {
            "upstreams.conf"
        } else {
            "haproxy.cfg"
        }))
        .unwrap()
    }

    /// HAProxy's live weights by server name.
    pub fn weights(&self, upstream: &str) -> BTreeMap<String, u32> {
        let h = cutover_executor::router::haproxy::Haproxy {
            admin_socket: self.dir.join("admin.sock"),
            config_file: None,
            log: None,
        };
        rt().block_on(h.servers(upstream))
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.weight))
            .collect()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        // Fast shutdown (both nginx and HAProxy stop at once on SIGTERM), and wait for it: a
        // router left behind would hold its port and keep sending to nothing.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let t0 = Instant::now();
        let alive = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
                st.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().next())
                    != Some("Z")
            })
        };
        while alive(self.pid) && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The sample app's containers of one test (removed on drop).
pub struct Apps {
    pub service: String,
    docker: Arc<Docker>,
}

impl Apps {
    pub fn new() -> Apps {
        ensure_images();
        let service = format!("e2e{}", std::process::id());
        Apps {
            service,
            docker: Docker::new(),
        }
    }

    /// Starts `version` on `port` as cutover would (labels, host network, `PORT`).
    pub fn start(&self, version: &str, port: u16, database_url: &str) {
        let labels = BTreeMap::from([
            (LABEL_SERVICE.to_string(), self.service.clone()),
            (LABEL_VERSION.to_string(), version.to_string()),
            (LABEL_PORT.to_string(), port.to_string()),
        ]);
        let c = NewContainer {
            name: format!("{}-{version}-{port}", self.service),
            image: format!("{IMAGE}:{version}"),
            env: vec![
                ("PORT".into(), port.to_string()),
                ("DATABASE_URL".into(), database_url.into()),
            ],
            labels,
        };
        rt().block_on(self.docker.create_and_start(c)).unwrap();
        wait_http(
            &format!("http://127.0.0.1:{port}/health"),
            Duration::from_secs(20),
        );
    }

    /// (name, running) of this test's containers.
    pub fn containers(&self) -> Vec<(String, bool)> {
        let l = BTreeMap::from([(LABEL_SERVICE.to_string(), self.service.clone())]);
        rt().block_on(self.docker.list(l))
            .unwrap()
            .into_iter()
            .map(|c| (c.name, c.running))
            .collect()
    }
}

impl Drop for Apps {
    fn drop(&mut self) {
        let l = BTreeMap::from([(LABEL_SERVICE.to_string(), self.service.clone())]);
        let r = rt();
        if let Ok(list) = r.block_on(self.docker.list(l)) {
            for c in list {
                let _ = r.block_on(self.docker.remove(c.id));
            }
        }
    }
}
