//! Values that parse but cannot work: the part of [`ReleaseSpec::validate`] that asks, of each
//! key, what a later step will do with its value. A `lock_timeout` of `"0s"` is a valid duration,
//! but PostgreSQL reads 0 as "no timeout"; `=` in an environment key is a valid TOML string, but
//! no process environment can hold it; a NUL byte cannot be passed in an argv at all. Each such
//! value would fail (or do harm) in the middle of a release, after irreversible steps, so `cutover
//! plan` refuses it here, naming the file, line and key.
//!
//! What only the environment can tell (is `url_env` set, does its URL connect, may the role run
//! DDL) is checked by the `preflight` step, which also runs before anything changes.

use super::{Command, Database, Health, ReleaseSpec, Router, RouterKind, Service, StrategyKind};
use std::collections::BTreeMap;
use std::ops::Range;

/// Reports one problem: where, what, and the hint.
pub(super) type Report<'a> = dyn FnMut(Range<usize>, String, &str) + 'a;

/// The span of `key = ...` written inside `within` (a table's span), so a message points at the
/// key's own line; `within` itself when the key is not written there (a default).
pub(super) fn key_span(text: &str, within: &Range<usize>, key: &str) -> Range<usize> {
    let Some(body) = text.get(within.clone()) else {
        return within.clone();
    };
    let quoted = format!("\"{key}\"");
    for needle in [key, quoted.as_str()].into_iter().filter(|n| !n.is_empty()) {
        for (i, _) in body.match_indices(needle) {
            let before = body[..i].chars().next_back();
            let after = body[i + needle.len()..].trim_start_matches([' ', '\t']);
            if before.is_none_or(|c| c.is_whitespace() || c == '{' || c == ',' || c == '.')
                && after.starts_with('=')
            {
                let start = within.start + i;
                return start..start + needle.len();
            }
        }
    }
    within.clone()
}

/// The text of an array-of-tables element whose header `[[{name}]]` is at `header` (toml's span
/// of such an element covers only its header): up to the next header that is not one of its
/// subtables (`[{name}.health]`).
fn element(text: &str, header: &Range<usize>, name: &str) -> Range<usize> {
    let sub = format!("[{name}.");
    let mut at = header.end;
    for line in text
        .get(header.end..)
        .unwrap_or_default()
        .split_inclusive('\n')
    {
        let t = line.trim_start();
        if t.starts_with('[') && !t.starts_with(&sub) {
            break;
        }
        at += line.len();
    }
    header.start..at
}

/// Why `name` cannot be an environment variable name, if it cannot.
fn env_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.contains('=') {
        Some("contains `=`, which ends a name in a process environment")
    } else if name.contains('\0') {
        Some("contains a NUL byte, which no process environment can hold")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        // Any other byte is allowed by execve and Docker; refusing more would refuse working
        // specs.
        Some("contains a space or a control character, which no shell can export")
    } else {
        None
    }
}

const ENV_HINT: &str = "environment variable names are letters, digits and `_`, e.g. \
                        `DATABASE_URL`; values may not hold NUL bytes";
const NUL_HINT: &str =
    "a NUL byte (`\\u0000`) cannot be passed to a program, a path or PostgreSQL; remove it";

/// Checks an `env` table and a `secret_env` list of `what` (e.g. "service `api`").
fn check_env(
    what: &str,
    env: &BTreeMap<String, String>,
    secret_env: &[String],
    reserved: &[&str],
    text: &str,
    span: &Range<usize>,
    err: &mut Report,
) {
    for (k, v) in env {
        if let Some(why) = env_name_problem(k) {
            err(
                key_span(text, span, k),
                format!("{what}: `env` key {k:?} {why}"),
                ENV_HINT,
            );
        } else if reserved.contains(&k.as_str()) {
            err(
                key_span(text, span, k),
                format!("{what}: `env` sets `{k}`, which cutover sets itself"),
                "cutover gives each container its port in `PORT`; drop the key (the port comes from \
                 `port` and `candidate_port`)",
            );
        }
        if v.contains('\0') {
            err(
                key_span(text, span, k),
                format!(
                    "{what}: the value of `env` key `{}` contains a NUL byte",
                    k.escape_debug()
                ),
                NUL_HINT,
            );
        }
    }
    for name in secret_env {
        if let Some(why) = env_name_problem(name) {
            err(
                key_span(text, span, "secret_env"),
                format!("{what}: `secret_env` name {name:?} {why}"),
                ENV_HINT,
            );
        }
    }
}

/// Checks an argv list: a program to run, and no NUL byte anywhere.
fn check_argv(
    what: &str,
    key: &str,
    argv: &[String],
    text: &str,
    span: &Range<usize>,
    err: &mut Report,
) {
    if argv.iter().any(|a| a.contains('\0')) {
        err(
            key_span(text, span, key),
            format!("{what}: `{key}` contains a NUL byte"),
            NUL_HINT,
        );
    }
}

/// Checks a path-like string that reaches the file system.
fn check_path(
    what: &str,
    key: &str,
    value: &str,
    text: &str,
    span: &Range<usize>,
    err: &mut Report,
) {
    if value.trim().is_empty() {
        err(
            key_span(text, span, key),
            format!("{what}: `{key}` is empty"),
            "write a path, or leave the key out for its default",
        );
    } else if value.contains('\0') {
        err(
            key_span(text, span, key),
            format!("{what}: `{key}` contains a NUL byte"),
            NUL_HINT,
        );
    }
}

/// A Docker tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Why `image` cannot be a Docker repository name, if it cannot.
fn image_problem(image: &str) -> Option<&'static str> {
    let path = image.rsplit('/').next().unwrap_or(image);
    if image.is_empty() {
        Some("is empty")
    } else if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains a space or a control character")
    } else if path.contains(':') || image.contains('@') {
        Some("holds a tag or a digest; the tags are `current` and `target`")
    } else if image
        .split('/')
        .skip(usize::from(image.contains('/')))
        .any(|p| p.chars().any(|c| c.is_ascii_uppercase()))
    {
        Some("has capital letters, which Docker refuses in repository names")
    } else if image.starts_with('/') || image.ends_with('/') || image.contains("//") {
        Some("has an empty path component")
    } else {
        None
    }
}

/// Runs every check of this module on `spec`, whose TOML is `text`.
pub(super) fn check(spec: &ReleaseSpec, text: &str, err: &mut Report) {
    let name = &spec.release.name;
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        err(
            key_span(text, &(0..text.len()), "name"),
            format!("release `name` {name:?} is empty or holds control characters"),
            "name the release in plain text, e.g. `name = \"users-full-name\"`",
        );
    }
    for s in &spec.service {
        check_service(s.get_ref(), text, &element(text, &s.span(), "service"), err);
    }
    check_port_overlap(spec, text, err);
    check_shared_routing(spec, text, err);
    for d in &spec.database {
        check_database(
            d.get_ref(),
            text,
            &element(text, &d.span(), "database"),
            err,
        );
    }
    if let Some(r) = &spec.router {
        check_router(r.get_ref(), text, err);
    }
    for c in &spec.command {
        check_command(c.get_ref(), text, &element(text, &c.span(), "command"), err);
    }
}

/// A service's values: image, tags, ports, environment, upstream, health, analysis gate.
fn check_service(svc: &Service, text: &str, span: &Range<usize>, err: &mut Report) {
    let what = format!("service `{}`", svc.name);
    if let Some(why) = image_problem(&svc.image) {
        err(
            key_span(text, span, "image"),
            format!("{what}: `image = {:?}` {why}", svc.image),
            "write the repository alone, lowercase, e.g. `image = \"registry.local:5000/api\"`, and \
             the versions in `current` and `target`",
        );
    }
    for (key, tag) in [("current", &svc.current), ("target", &svc.target)] {
        if !valid_tag(tag) {
            err(
                key_span(text, span, key),
                format!("{what}: `{key} = {tag:?}` is not a Docker tag"),
                "a tag is up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or \
                 `-`, e.g. `\"1.4.2\"`",
            );
        }
    }
    if svc.port == 0 {
        err(
            key_span(text, span, "port"),
            format!("{what}: `port` is 0"),
            "0 asks the OS for any free port, so neither cutover nor the router would know where \
             the service listens; use a fixed port, e.g. 3333",
        );
    }
    if svc.candidate_port == Some(0) {
        err(
            key_span(text, span, "candidate_port"),
            format!("{what}: `candidate_port` is 0"),
            "use a fixed port past the current replicas' ports, or leave the key out (`port + \
             replicas`)",
        );
    }
    check_env(&what, &svc.env, &svc.secret_env, &["PORT"], text, span, err);
    if let Some(up) = &svc.upstream
        && (up.is_empty()
            || !up
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        err(
            key_span(text, span, "upstream"),
            format!("{what}: `upstream = {up:?}` is not a name nginx or HAProxy accept"),
            "use letters, digits, `-`, `_`, `.` and `:`, exactly as the upstream (nginx) or backend \
             (HAProxy) is named",
        );
    }
    check_health(&what, &svc.health, text, span, err);
    let st = svc.strategy.get_ref();
    for (key, a) in st.gates() {
        if a.get_ref().max_p99_latency.is_zero() {
            err(
                key_span(text, &a.span(), "max_p99_latency"),
                format!("{what}: {key} `max_p99_latency` is 0s"),
                "every request takes some time, so the gate would always fail; use e.g. \
                 `max_p99_latency = \"500ms\"`",
            );
        }
    }
}

/// A service's health check: an HTTP path, a pause between polls, time to become healthy, an
/// HTTP status.
fn check_health(what: &str, h: &Health, text: &str, span: &Range<usize>, err: &mut Report) {
    if !h.path.starts_with('/') || h.path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        err(
            key_span(text, span, "path"),
            format!("{what}: health `path = {:?}` is not an HTTP path", h.path),
            "write the path the health check requests, starting with `/`, without spaces, e.g. \
             `path = \"/health\"`",
        );
    }
    if h.interval.is_zero() {
        err(
            key_span(text, span, "interval"),
            format!("{what}: health `interval` is 0s"),
            "the check would poll the container without a pause; use e.g. `interval = \"1s\"`",
        );
    }
    if h.timeout.is_zero() {
        err(
            key_span(text, span, "timeout"),
            format!("{what}: health `timeout` is 0s"),
            "a new container gets no time to become healthy; use e.g. `timeout = \"30s\"`",
        );
    }
    if !(100..=599).contains(&h.expect_status) {
        err(
            key_span(text, span, "expect_status"),
            format!(
                "{what}: health `expect_status = {}` is not an HTTP status",
                h.expect_status
            ),
            "use a status from 100 to 599, e.g. 200",
        );
    }
}

/// Two services whose replicas would listen on the same port: the second deploy cannot bind.
fn check_port_overlap(spec: &ReleaseSpec, text: &str, err: &mut Report) {
    let mut owner: BTreeMap<u16, &str> = BTreeMap::new();
    for s in &spec.service {
        let svc = s.get_ref();
        let mut ports: Vec<u16> = svc.old_ports().chain(svc.new_ports()).collect();
        ports.sort_unstable();
        ports.dedup();
        if let Some((p, other)) = ports.iter().find_map(|p| owner.get(p).map(|o| (*p, *o))) {
            err(
                key_span(text, &element(text, &s.span(), "service"), "port"),
                format!(
                    "service `{}` uses port {p}, which service `{other}` uses too",
                    svc.name
                ),
                "replica i of a service listens on `port + i` and, while both versions run, on \
                 `candidate_port + i`; give each service its own range",
            );
            continue;
        }
        for p in ports {
            owner.insert(p, &svc.name);
        }
    }
}

/// What the router side of the services needs: an upstream of their own, and the data an
/// analysis gate reads (nginx only has it in the JSON access log).
fn check_shared_routing(spec: &ReleaseSpec, text: &str, err: &mut Report) {
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &spec.service {
        let svc = s.get_ref();
        let st = svc.strategy.get_ref();
        if st.kind == StrategyKind::Recreate {
            continue;
        }
        if let Some(other) = owner.insert(svc.upstream(), &svc.name) {
            err(
                key_span(text, &element(text, &s.span(), "service"), "upstream"),
                format!(
                    "services `{other}` and `{}` both move traffic in upstream `{}`",
                    svc.name,
                    svc.upstream()
                ),
                "each service's weights are set in its own upstream (nginx) or backend (HAProxy); \
                 give each service its own `upstream`",
            );
        }
        if let (Some((_, a)), Some(r)) = (st.gates().next(), &spec.router)
            && r.get_ref().kind == RouterKind::Nginx
            && r.get_ref().access_log.is_none()
        {
            err(
                a.span(),
                format!(
                    "service `{}`: an analysis gate behind nginx needs `access_log` in `[router]`",
                    svc.name
                ),
                "the gate reads the canary's requests from nginx's JSON access log; add `access_log \
                 = \"/var/log/nginx/cutover.json\"` with the log_format of docs/routers.md",
            );
        }
    }
}

fn check_database(db: &Database, text: &str, span: &Range<usize>, err: &mut Report) {
    let what = format!("database `{}`", db.name);
    // A literal URL has its own message (and must not be echoed).
    if !(db.url_env.contains("://") || db.url_env.contains('@'))
        && let Some(why) = env_name_problem(&db.url_env)
    {
        err(
            key_span(text, span, "url_env"),
            format!("{what}: `url_env = {:?}` {why}", db.url_env),
            "name the environment variable that holds the URL, e.g. `url_env = \"DATABASE_URL\"`",
        );
    }
    for (key, value) in [
        ("lock_timeout", db.lock_timeout),
        ("statement_timeout", db.statement_timeout),
    ] {
        if value.is_zero() {
            err(
                key_span(text, span, key),
                format!(
                    "{what}: `{key} = \"0s\"` turns the timeout off: PostgreSQL reads 0 as \"no \
                     timeout\""
                ),
                match key {
                    "lock_timeout" => {
                        "without a lock timeout, DDL queues behind a long transaction and every \
                         query on the table queues behind it; use a short one, e.g. `lock_timeout \
                         = \"3s\"` (cutover retries)"
                    }
                    _ => {
                        "give migrations a limit, as long as the slowest needs, e.g. \
                         `statement_timeout = \"30m\"`"
                    }
                },
            );
        }
    }
    if db.backup.enabled {
        check_path(&what, "dir", &db.backup.dir, text, span, err);
    }
    if db.migrations.contains('\0') {
        err(
            key_span(text, span, "migrations"),
            format!("{what}: `migrations` contains a NUL byte"),
            NUL_HINT,
        );
    }
}

fn check_router(router: &Router, text: &str, err: &mut Report) {
    let paths = [
        ("upstream_file", &router.upstream_file),
        ("pid_file", &router.pid_file),
        ("access_log", &router.access_log),
        ("admin_socket", &router.admin_socket),
        ("config_file", &router.config_file),
    ];
    for (key, value) in paths {
        if let Some(v) = value {
            check_path("router", key, v.get_ref(), text, &v.span(), err);
        }
    }
    for (key, argv) in [("test", &router.test), ("reload", &router.reload)] {
        if let Some(a) = argv {
            check_argv("router", key, a.get_ref(), text, &a.span(), err);
            if a.get_ref().first().is_some_and(|p| p.trim().is_empty()) {
                err(
                    a.span(),
                    format!("router: `{key}` has an empty program name"),
                    "write the program first, e.g. `[\"nginx\", \"-t\"]`",
                );
            }
        }
    }
}

fn check_command(cmd: &Command, text: &str, span: &Range<usize>, err: &mut Report) {
    let what = format!("command `{}`", cmd.name);
    check_argv(
        &what,
        "argv",
        cmd.argv.get_ref(),
        text,
        &cmd.argv.span(),
        err,
    );
    for (key, argv) in [("undo", &cmd.undo), ("probe", &cmd.probe)] {
        if let Some(a) = argv {
            check_argv(&what, key, a, text, span, err);
        }
    }
    check_env(&what, &cmd.env, &cmd.secret_env, &[], text, span, err);
}
