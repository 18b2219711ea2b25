//! Checks of a parsed spec that the TOML types cannot make: names, cross references, weights,
//! keys that belong to another strategy or router kind, commands and databases.
//! [`ReleaseSpec::validate`] runs them in spec order and then the value checks of `values`.

use super::values::{self, Report};
use super::{Command, Database, KeySpan, ReleaseSpec, Router, RouterKind, Service, StrategyKind};
use crate::error::Diagnostic;
use crate::source::Location;
use std::ops::Range;
use toml::Spanned;

impl ReleaseSpec {
    /// Checks what the TOML types cannot: names, cross references, weights, per-kind keys.
    pub(super) fn validate(
        &self,
        text: &str,
        at: &dyn Fn(Range<usize>) -> Location,
    ) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let mut err = |span: Range<usize>, message: String, hint: &str| {
            out.push(Diagnostic {
                location: at(span),
                message,
                hint: Some(hint.to_string()),
                doc: None,
                finding: None,
            });
        };
        if self.service.is_empty() && self.database.is_empty() && self.command.is_empty() {
            err(
                0..0,
                "the spec describes nothing to do".into(),
                "add a `[[service]]` (name, image, current, target, port, [service.strategy]), a \
                 `[[database]]` with migrations, or `[[command]]` hooks",
            );
        }
        check_names(
            self.service
                .iter()
                .map(|s| (s.get_ref().name.as_str(), s.span())),
            "service",
            &mut err,
        );
        check_names(
            self.database
                .iter()
                .map(|s| (s.get_ref().name.as_str(), s.span())),
            "database",
            &mut err,
        );
        check_names(
            self.command
                .iter()
                .map(|s| (s.get_ref().name.as_str(), s.span())),
            "command",
            &mut err,
        );

        let db_names: Vec<&str> = self
            .database
            .iter()
            .map(|d| d.get_ref().name.as_str())
            .collect();
        let (mut recreate, mut online) = (0, 0);
        for s in &self.service {
            match s.get_ref().strategy.get_ref().kind {
                StrategyKind::Recreate => recreate += 1,
                _ => online += 1,
            }
            self.check_service(s, &db_names, &mut err);
        }
        if recreate > 0 && online > 0 {
            err(
                0..0,
                "the spec mixes `recreate` with online strategies".into(),
                "a recreate release stops every service it changes while migrations run; release \
                 the other services in a separate spec",
            );
        }
        if let Some(r) = &self.router {
            check_router(r, &mut err);
        }
        for c in &self.command {
            check_command(c, &mut err);
        }
        for d in &self.database {
            check_database(d, &mut err);
        }
        values::check(self, text, &mut err);
        out
    }

    /// One service: its versions, replicas, databases and secrets, its strategy, and whether
    /// its ports and router work for that strategy.
    fn check_service(&self, s: &Spanned<Service>, db_names: &[&str], err: &mut Report) {
        let svc = s.get_ref();
        if svc.current == svc.target {
            err(
                s.span(),
                format!(
                    "service `{}`: `current` and `target` are both `{}`",
                    svc.name, svc.current
                ),
                "a release moves a service to a new version; set `target` to the tag you release",
            );
        }
        if svc.replicas == 0 {
            err(
                s.span(),
                format!("service `{}`: `replicas` is 0", svc.name),
                "use at least 1 replica",
            );
        }
        if let Some(dbs) = &svc.databases {
            for d in dbs {
                if !db_names.contains(&d.as_str()) {
                    err(
                        s.span(),
                        format!(
                            "service `{}` uses database `{d}`, which no `[[database]]` defines",
                            svc.name
                        ),
                        "add a `[[database]]` with that name or fix the name in `databases`",
                    );
                }
            }
        }
        for name in &svc.secret_env {
            if svc.env.contains_key(name) {
                err(
                    s.span(),
                    format!(
                        "service `{}`: `{name}` is in both `env` and `secret_env`",
                        svc.name
                    ),
                    "keep secret values out of the spec: remove it from `env`; cutover passes it \
                     through from its own environment",
                );
            }
        }
        check_strategy(svc, err);
        let kind = svc.strategy.get_ref().kind;
        if kind != StrategyKind::Recreate && self.router.is_none() {
            err(
                svc.strategy.span(),
                format!(
                    "service `{}`: a {} strategy needs a `[router]`",
                    svc.name,
                    kind.as_str()
                ),
                "add `[router]` with `kind = \"nginx\"` (and `upstream_file`) or `kind \
                 = \"haproxy\"` (and `admin_socket`)",
            );
        }
        check_ports(s, err);
    }
}

/// A service's ports: old and new apart (for an online strategy), all below 65536.
fn check_ports(s: &Spanned<Service>, err: &mut Report) {
    let svc = s.get_ref();
    let kind = svc.strategy.get_ref().kind;
    if kind != StrategyKind::Recreate && svc.candidate_port() == svc.port {
        err(
            s.span(),
            format!(
                "service `{}`: `candidate_port` equals `port` ({})",
                svc.name, svc.port
            ),
            "while both versions run they need different ports, e.g. 3333 and 3334",
        );
    } else if kind != StrategyKind::Recreate
        && svc.new_ports().any(|p| svc.old_ports().any(|q| q == p))
    {
        err(
            s.span(),
            format!(
                "service `{}`: the {} replica(s) use ports {}..={} and {}..={}, which overlap",
                svc.name,
                svc.replicas,
                svc.port,
                svc.port as u32 + svc.replicas - 1,
                svc.candidate_port(),
                svc.candidate_port() as u32 + svc.replicas - 1
            ),
            format!(
                "replica i of the current version listens on `port + i` and of the new one on \
                 `candidate_port + i`; set `candidate_port = {}` or higher",
                svc.port as u32 + svc.replicas
            )
            .as_str(),
        );
    }
    if u32::from(svc.port).max(u32::from(svc.candidate_port())) + svc.replicas > 65536 {
        err(
            s.span(),
            format!(
                "service `{}`: {} replicas from port {} run past port 65535",
                svc.name,
                svc.replicas,
                svc.port.max(svc.candidate_port())
            ),
            "use lower ports or fewer replicas",
        );
    }
}

/// A service's strategy: only its own kind's keys, a rolling batch that fits, canary weights
/// that increase to 100, an analysis gate that can pass.
fn check_strategy(svc: &Service, err: &mut Report) {
    let st = svc.strategy.get_ref();
    let kind = st.kind;
    misplaced_keys(svc, err);
    match kind {
        StrategyKind::Rolling => {
            if let Some(b) = &st.batch_size
                && (*b.get_ref() == 0 || *b.get_ref() > svc.replicas)
            {
                err(
                    b.span(),
                    format!(
                        "service `{}`: `batch_size = {}` must be between 1 and `replicas` ({})",
                        svc.name,
                        b.get_ref(),
                        svc.replicas
                    ),
                    "a batch replaces that many replicas at once; raise `replicas` or lower \
                     `batch_size`",
                );
            }
        }
        StrategyKind::Canary => match &st.steps {
            None => err(
                svc.strategy.span(),
                format!("service `{}`: a canary needs `steps`", svc.name),
                "add the traffic weights in percent, e.g. `steps = [10, 25, 50, 100]`",
            ),
            Some(steps) => canary_steps(svc, steps, err),
        },
        _ => {}
    }
    for (key, a) in st.gates() {
        let an = a.get_ref();
        if !(0.0..=1.0).contains(&an.max_error_rate) {
            err(
                a.span(),
                format!(
                    "service `{}`: `max_error_rate = {}` is not between 0.0 and 1.0",
                    svc.name, an.max_error_rate
                ),
                "write the rate as a fraction: 0.01 means 1% of requests",
            );
        }
        if let Some(d) = an.max_error_rate_increase
            && !(0.0..=1.0).contains(&d)
        {
            err(
                a.span(),
                format!(
                    "service `{}`: {key} `max_error_rate_increase = {d}` is not between 0.0 and \
                     1.0",
                    svc.name
                ),
                "write the difference as a fraction: 0.02 lets the canary fail at most 2% more of \
                 its requests than the stable version",
            );
        }
        if let Some(r) = an.max_latency_ratio
            && !(r >= 1.0 && r.is_finite())
        {
            err(
                a.span(),
                format!(
                    "service `{}`: {key} `max_latency_ratio = {r}` is below 1.0",
                    svc.name
                ),
                "a ratio of the canary's latency to the stable version's: 1.5 lets the canary be \
                 at most 50% slower; below 1.0 it would have to be faster",
            );
        }
        if an.window.is_zero() {
            err(
                a.span(),
                format!("service `{}`: {key} `window` is 0s", svc.name),
                "give the gate a window of router data to look at, e.g. `window = \"30s\"`",
            );
        }
    }
}

/// Keys of another strategy's kind in a service's strategy.
fn misplaced_keys(svc: &Service, err: &mut Report) {
    let st = svc.strategy.get_ref();
    let kind = st.kind;
    let misplaced = |key: &str,
                     span: Range<usize>,
                     err: &mut dyn FnMut(Range<usize>, String, &str)| {
        err(
            span,
            format!(
                "service `{}`: `{key}` does not apply to a {} strategy",
                svc.name,
                kind.as_str()
            ),
            match key {
                "batch_size" | "delay" => "`batch_size` and `delay` belong to `kind = \"rolling\"`",
                "bake" => {
                    "a bake window watches traffic through the router after the switch: \
                           rolling, blue-green and canary have one, recreate does not"
                }
                _ => "`steps`, `pause` and `analysis` belong to `kind = \"canary\"`",
            },
        );
    };
    if kind != StrategyKind::Rolling {
        if let Some(v) = &st.batch_size {
            misplaced("batch_size", v.span(), err);
        }
        if let Some(v) = &st.delay {
            misplaced("delay", v.span(), err);
        }
    }
    if let (StrategyKind::Recreate, Some(v)) = (kind, &st.bake) {
        misplaced("bake", v.span(), err);
    }
    if kind != StrategyKind::Canary {
        if let Some(v) = &st.steps {
            misplaced("steps", v.span(), err);
        }
        if let Some(v) = &st.pause {
            misplaced("pause", v.span(), err);
        }
        if let Some(v) = &st.analysis {
            misplaced("analysis", v.span(), err);
        }
    }
}

/// Canary weights: percent, strictly increasing, ending at 100.
fn canary_steps(svc: &Service, steps: &Spanned<Vec<u32>>, err: &mut Report) {
    let w = steps.get_ref();
    if w.is_empty() || w.last() != Some(&100) {
        err(
            steps.span(),
            format!(
                "service `{}`: canary `steps` {w:?} must end at 100",
                svc.name
            ),
            "the last step sends all traffic to the new version, e.g. `steps = [10, 25, 50, 100]`",
        );
    }
    if w.iter().any(|&x| x == 0 || x > 100) {
        err(
            steps.span(),
            format!(
                "service `{}`: canary `steps` {w:?} must each be between 1 and 100",
                svc.name
            ),
            "weights are percent of traffic sent to the new version",
        );
    }
    if w.windows(2).any(|p| p[0] >= p[1]) {
        err(
            steps.span(),
            format!(
                "service `{}`: canary `steps` {w:?} must increase strictly",
                svc.name
            ),
            "each step sends more traffic to the new version than the one before, e.g. `steps = \
             [10, 25, 50, 100]`",
        );
    }
}

/// The router: only its own kind's keys, the one it needs, no empty argv.
fn check_router(r: &Spanned<Router>, err: &mut Report) {
    let router = r.get_ref();
    let nginx_only = [
        (
            "upstream_file",
            r.get_ref().upstream_file.as_ref().map(|v| v.span()),
        ),
        ("pid_file", router.pid_file.as_ref().map(|v| v.span())),
        ("test", router.test.as_ref().map(|v| v.span())),
        ("reload", router.reload.as_ref().map(|v| v.span())),
        ("access_log", router.access_log.as_ref().map(|v| v.span())),
    ];
    let haproxy_only = [
        (
            "admin_socket",
            router.admin_socket.as_ref().map(|v| v.span()),
        ),
        ("config_file", router.config_file.as_ref().map(|v| v.span())),
        ("log", router.log.as_ref().map(|v| v.span())),
    ];
    let (wrong, needed, hint): (&[KeySpan], &str, &str) = match router.kind {
        RouterKind::Nginx => (
            &haproxy_only,
            "upstream_file",
            "nginx needs the file cutover owns: `upstream_file \
             = \"/etc/nginx/conf.d/cutover-upstreams.conf\"`",
        ),
        RouterKind::Haproxy => (
            &nginx_only,
            "admin_socket",
            "HAProxy is driven through its runtime API: `admin_socket = \"/run/haproxy/admin.sock\"`",
        ),
    };
    for (key, span) in wrong {
        if let Some(span) = span {
            err(
                span.clone(),
                format!(
                    "router: `{key}` does not apply to `kind = \"{}\"`",
                    if router.kind == RouterKind::Nginx {
                        "nginx"
                    } else {
                        "haproxy"
                    }
                ),
                "nginx takes upstream_file, pid_file, test, reload, access_log; haproxy takes \
                 admin_socket, config_file, log",
            );
        }
    }
    let has_needed = match router.kind {
        RouterKind::Nginx => router.upstream_file.is_some(),
        RouterKind::Haproxy => router.admin_socket.is_some(),
    };
    if !has_needed {
        err(r.span(), format!("router: `{needed}` is required"), hint);
    }
    if let Some(log) = &router.log
        && log.get_ref().parse::<std::net::SocketAddr>().is_err()
    {
        err(
            log.span(),
            format!(
                "router: `log = \"{}\"` is not an IP address and port",
                log.get_ref()
            ),
            "where cutover listens for HAProxy's request log (UDP), e.g. `log = \"127.0.0.1:5514\"`, \
             the address of HAProxy's `log` line",
        );
    }
    for argv in [&router.test, &router.reload].into_iter().flatten() {
        if argv.get_ref().is_empty() {
            err(
                argv.span(),
                "router: an argv list is empty".into(),
                "write the program and its arguments, e.g. `[\"nginx\", \"-s\", \"reload\"]`",
            );
        }
    }
}

/// A hook command: an argv that runs without a shell, a consistent undo, a timeout.
fn check_command(c: &Spanned<Command>, err: &mut Report) {
    let cmd = c.get_ref();
    if cmd.argv.get_ref().is_empty() || cmd.argv.get_ref()[0].trim().is_empty() {
        err(
            cmd.argv.span(),
            format!("command `{}`: `argv` is empty", cmd.name),
            "write the program and its arguments, e.g. `argv = \
             [\"./scripts/smoke.sh\", \"http://127.0.0.1:3334\"]`",
        );
    }
    if cmd.argv.get_ref().len() == 1 && cmd.argv.get_ref()[0].contains(' ') {
        err(
            cmd.argv.span(),
            format!(
                "command `{}`: `argv` is one string with spaces: {:?}",
                cmd.name,
                cmd.argv.get_ref()[0]
            ),
            "commands run without a shell; split the program and its arguments into list items",
        );
    }
    if cmd.read_only && cmd.undo.is_some() {
        err(
            c.span(),
            format!("command `{}` is `read_only` and has an `undo`", cmd.name),
            "a read-only command changes nothing, so it has nothing to undo; drop one of the two",
        );
    }
    for (key, argv) in [("undo", &cmd.undo), ("probe", &cmd.probe)] {
        if argv
            .as_ref()
            .is_some_and(|a| a.is_empty() || a[0].trim().is_empty())
        {
            err(
                c.span(),
                format!("command `{}`: `{key}` is empty", cmd.name),
                "write the program and its arguments, or leave the key out",
            );
        }
    }
    if cmd.timeout.is_zero() {
        err(
            c.span(),
            format!("command `{}`: `timeout` is 0s", cmd.name),
            "give it time to finish, e.g. `timeout = \"30s\"`",
        );
    }
}

/// A database: a variable name (not a URL) in `url_env`, a positive backfill batch.
fn check_database(d: &Spanned<Database>, err: &mut Report) {
    let db = d.get_ref();
    if db.url_env.contains("://") || db.url_env.contains('@') {
        err(
            d.span(),
            format!(
                "database `{}`: `url_env` looks like a connection string, not a variable name",
                db.name
            ),
            "put the URL in an environment variable and write its name here, e.g. `url_env \
             = \"DATABASE_URL\"`; cutover never prints it",
        );
    }
    if db.backfill.batch_size == 0 {
        err(
            d.span(),
            format!("database `{}`: backfill `batch_size` is 0", db.name),
            "use a positive batch size, e.g. 1000",
        );
    }
}

/// Names usable in step ids, each given once.
fn check_names<'a>(
    items: impl Iterator<Item = (&'a str, Range<usize>)>,
    what: &str,
    err: &mut dyn FnMut(Range<usize>, String, &str),
) {
    let mut seen: Vec<&str> = Vec::new();
    for (name, span) in items {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            err(
                span.clone(),
                format!("{what} name `{name}` is not usable in step ids"),
                "use letters, digits, `-` and `_` only, e.g. `api` or `billing-db`",
            );
        }
        if seen.contains(&name) {
            err(
                span,
                format!("{what} name `{name}` appears twice"),
                "names identify steps, so each must be unique",
            );
        }
        seen.push(name);
    }
}
