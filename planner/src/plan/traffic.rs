//! The service side of an online release: each service's new version is deployed and found
//! healthy (its [`Lane`]), traffic moves to it per strategy (blue-green, canary with pauses and
//! analysis gates, rolling batches), and the old version is retired.

use super::Ctx;
use super::phases::Expanded;
use super::rename::new_version_env;
use super::steps::{
    Batch, addr, deploy_step, health_step, hooks, or_else, retire_step, step, svc_dbs,
};
use crate::dag::{AnalysisParams, Builder, Params, PauseParams, RouterParams, Server, ShiftParams};
use crate::duration::Duration;
use crate::spec::{Analysis, CanaryPause, RouterKind, Service, Stage, Strategy, StrategyKind};
use petgraph::graph::NodeIndex;
use std::collections::BTreeMap;

/// A service up to its first traffic change.
pub(super) struct Lane<'a> {
    svc: &'a Service,
    /// What its first shift waits for: its new version's health, and every expand step and
    /// backfill of the release.
    pub ready: Vec<NodeIndex>,
}

/// A service's last traffic shift, and its rolling batch (`None` for the other strategies).
pub(super) type Final<'a> = (&'a Service, NodeIndex, Batch);

/// Per service: everything up to the first traffic change (the first batch of a rolling one).
pub(super) fn lanes<'a>(
    cx: &Ctx<'a>,
    b: &mut Builder,
    expanded: &Expanded,
    pre_deploy: &[NodeIndex],
    pre_migrate: &[NodeIndex],
) -> Vec<Lane<'a>> {
    let (all_expanded, all_backfills) = expanded.all_done();
    let mut lanes = Vec::new();
    for svc in &cx.services {
        let dbs = svc_dbs(svc, &cx.databases);
        let mut deps: Vec<NodeIndex> = if cx.has_hooks(Stage::PreDeploy) {
            pre_deploy.to_vec()
        } else {
            dbs.iter()
                .filter_map(|d| expanded.end.get(*d))
                .flatten()
                .copied()
                .collect()
        };
        if deps.is_empty() {
            deps = pre_migrate.to_vec();
        }
        let st = svc.strategy.get_ref();
        let new: Vec<u16> = svc.new_ports().collect();
        let (ports, batch) = match st.kind {
            StrategyKind::Rolling => {
                let size = st.batch_size.as_ref().map_or(1, |b| *b.get_ref());
                let count = svc.replicas.div_ceil(size);
                (
                    new[..size.min(svc.replicas) as usize].to_vec(),
                    Some((1, count)),
                )
            }
            _ => (new, None),
        };
        let env = new_version_env(cx, svc);
        let d = b.add(deploy_step(svc, &env, &ports, batch), &deps);
        let h = b.add(health_step(svc, &ports, batch), &[d]);
        // Traffic moves only once every expand migration and backfill of the release is done:
        // the new version may read any of them, and a rollback point is simpler to reason
        // about when no schema work overlaps traffic changes.
        let mut ready = vec![h];
        ready.extend(all_expanded.iter().copied());
        ready.extend(all_backfills.iter().copied());
        lanes.push(Lane { svc, ready });
    }
    lanes
}

/// The router the shifts and analysis gates talk to: the spec's, or nginx without files when
/// there is none.
fn router_params(cx: &Ctx) -> RouterParams {
    cx.spec
        .router
        .as_ref()
        .map(|r| RouterParams::from(r.get_ref()))
        .unwrap_or(RouterParams {
            kind: RouterKind::Nginx,
            upstream_file: None,
            pid_file: None,
            test: None,
            reload: None,
            access_log: None,
            admin_socket: None,
            config_file: None,
            log: None,
        })
}

/// Traffic steps, per strategy, after each lane is ready (or after the post-deploy hooks);
/// each service's last shift.
pub(super) fn shifts<'a>(
    cx: &Ctx,
    b: &mut Builder,
    lanes: &[Lane<'a>],
    post_deploy: &[NodeIndex],
) -> Vec<Final<'a>> {
    let router = router_params(cx);
    let mut finals: Vec<Final> = Vec::new();
    for lane in lanes {
        let svc = lane.svc;
        let st = svc.strategy.get_ref();
        let prev: Vec<NodeIndex> = if cx.has_hooks(Stage::PostDeploy) {
            post_deploy.to_vec()
        } else {
            lane.ready.clone()
        };
        let t = Shifter {
            svc,
            router: &router,
            old: svc.old_ports().collect(),
            new: svc.new_ports().collect(),
            env: new_version_env(cx, svc),
        };
        match st.kind {
            StrategyKind::BlueGreen => {
                let s = t.shift(b, 0, 100, None, "100", &prev);
                finals.push((svc, t.bake(b, st, s), None));
            }
            StrategyKind::Canary => {
                let s = canary(b, &t, st, prev);
                finals.push((svc, t.bake(b, st, s), None));
            }
            StrategyKind::Rolling => {
                let (s, batch) = rolling(b, &t, st, prev);
                finals.push((svc, t.bake(b, st, s), batch));
            }
            StrategyKind::Recreate => unreachable!("recreate is planned separately"),
        }
    }
    finals
}

/// Adds the shifts of one service.
struct Shifter<'a> {
    svc: &'a Service,
    router: &'a RouterParams,
    /// The old version's ports.
    old: Vec<u16>,
    /// The new version's ports.
    new: Vec<u16>,
    /// The new version's environment.
    env: BTreeMap<String, String>,
}

impl Shifter<'_> {
    /// Adds `analysis/<svc>/<id_suffix>`: a gate on the new version's requests at `weight`
    /// over `a`'s window, after `deps`; failing it rolls back.
    fn gate(
        &self,
        b: &mut Builder,
        a: &Analysis,
        id_suffix: &str,
        weight: u32,
        description: &str,
        deps: &[NodeIndex],
    ) -> NodeIndex {
        let svc = self.svc;
        b.add(
            step(
                &format!("analysis/{}/{id_suffix}", svc.name),
                None,
                description,
                true,
                true,
                "nothing to undo (read-only); a failed gate rolls back",
                Params::Analysis(self.analysis_params(a, weight)),
            ),
            deps,
        )
    }

    /// The gate `a` on the service's new version at `weight` percent of its traffic.
    fn analysis_params(&self, a: &Analysis, weight: u32) -> AnalysisParams {
        let svc = self.svc;
        AnalysisParams {
            service: svc.name.clone(),
            weight,
            window: a.window,
            max_error_rate: a.max_error_rate,
            max_p99_latency: a.max_p99_latency,
            min_requests: a.min_requests,
            upstream: svc.upstream().to_string(),
            router: self.router.clone(),
            canary: svc.new_ports().map(addr).collect(),
            // At 100% the stable version serves nothing to compare with.
            max_error_rate_increase: a.max_error_rate_increase.filter(|_| weight < 100),
            max_latency_ratio: a.max_latency_ratio.filter(|_| weight < 100),
            stable: if relative(a).is_empty() || weight == 100 {
                Vec::new()
            } else {
                svc.old_ports().map(addr).collect()
            },
        }
    }

    /// With a `bake` window: its gate after `last`, the service's last shift, so that the old
    /// version is retired (and the contract phase runs) only once the new one has taken all
    /// traffic for the whole window; without one, `last`.
    fn bake(&self, b: &mut Builder, st: &Strategy, last: NodeIndex) -> NodeIndex {
        let Some(a) = &st.bake else { return last };
        let a = a.get_ref();
        let description = format!(
            "Bake: `{}` takes all traffic for {}; error rate <= {} and p99 <= {} (at least {} \
             requests) before the old version is retired.",
            self.svc.name, a.window, a.max_error_rate, a.max_p99_latency, a.min_requests
        );
        self.gate(b, a, "bake", 100, &description, &[last])
    }

    /// Canary and blue-green: every old server gets `100 - to`, every new one `to`.
    /// Rolling: each replica weighs 1, the old ones of finished batches 0.
    fn weights(&self, to: u32, rolling_done: Option<u32>) -> Vec<Server> {
        let w_old = |i: usize| rolling_done.map_or(100 - to, |done| u32::from(i as u32 >= done));
        let w_new = |i: usize| rolling_done.map_or(to, |done| u32::from((i as u32) < done));
        self.old
            .iter()
            .enumerate()
            .map(|(i, p)| Server {
                addr: addr(*p),
                weight: w_old(i),
            })
            .chain(self.new.iter().enumerate().map(|(i, p)| Server {
                addr: addr(*p),
                weight: w_new(i),
            }))
            .collect()
    }

    /// Adds `shift/<svc>/<id_suffix>`, moving the new version's share from `from` to `to`.
    fn shift(
        &self,
        b: &mut Builder,
        from: u32,
        to: u32,
        rolling_done: Option<u32>,
        id_suffix: &str,
        deps: &[NodeIndex],
    ) -> NodeIndex {
        let svc = self.svc;
        let router_params = self.router;
        let router = router_params.kind;
        b.add(
            step(
                &format!("shift/{}/{}", svc.name, id_suffix),
                None,
                &format!(
                    "Route {to}% of `{}` traffic to `{}:{}` (from {from}%).",
                    svc.name, svc.image, svc.target
                ),
                true,
                true,
                if router == RouterKind::Nginx {
                    "restore the previous upstream file byte for byte and reload"
                } else {
                    "restore the previous server weights through the admin socket, and the config \
                     file byte for byte"
                },
                Params::Shift(ShiftParams {
                    service: svc.name.clone(),
                    upstream: svc.upstream().to_string(),
                    router: router_params.clone(),
                    from_weight: from,
                    to_weight: to,
                    servers: self.weights(to, rolling_done),
                }),
            ),
            deps,
        )
    }
}

/// A `pause/<svc>/<at>` step holding for `duration` (`None`: until promoted).
fn pause_step(
    b: &mut Builder,
    svc: &Service,
    (at, description): (&str, &str),
    duration: Option<Duration>,
    watch: Option<AnalysisParams>,
    deps: &[NodeIndex],
) -> NodeIndex {
    b.add(
        step(
            &format!("pause/{}/{at}", svc.name),
            None,
            description,
            true,
            true,
            "nothing to undo",
            Params::Pause(PauseParams {
                service: svc.name.clone(),
                duration,
                watch,
            }),
        ),
        deps,
    )
}

/// The relative thresholds of `a` in words (`, and error rate at most 0.02 above the stable
/// version's and latency at most 1.5x the stable version's`), or nothing.
fn relative(a: &Analysis) -> String {
    let mut parts = Vec::new();
    if let Some(d) = a.max_error_rate_increase {
        parts.push(format!("error rate at most {d} above the stable version's"));
    }
    if let Some(r) = a.max_latency_ratio {
        parts.push(format!("latency at most {r}x the stable version's"));
    }
    match parts.as_slice() {
        [] => String::new(),
        _ => format!(", and {}", parts.join(" and ")),
    }
}

/// Canary: a shift per declared weight, each below 100% followed by its pause and its
/// analysis gate; the last shift.
fn canary(b: &mut Builder, t: &Shifter, st: &Strategy, mut prev: Vec<NodeIndex>) -> NodeIndex {
    let svc = t.svc;
    let steps = st
        .steps
        .as_ref()
        .map(|s| s.get_ref().clone())
        .unwrap_or_else(|| vec![100]);
    let mut from = 0;
    let mut last = None;
    for w in steps {
        let s = t.shift(b, from, w, None, &w.to_string(), &prev);
        prev = vec![s];
        last = Some(s);
        from = w;
        if w < 100 {
            let pause = st.pause.as_ref().map(|p| *p.get_ref());
            let (description, duration) = match pause {
                Some(CanaryPause::For(p)) if !p.is_zero() => {
                    (format!("Hold `{}` at {w}% for {p}.", svc.name), Some(p))
                }
                Some(CanaryPause::Manual) => (
                    format!(
                        "Manual gate: hold `{}` at {w}% until `cutover promote RUN` (or `cutover \
                         abort RUN` to roll back).",
                        svc.name
                    ),
                    None,
                ),
                _ => (String::new(), Some(Duration::default())),
            };
            let analysis = st.analysis.as_ref().map(|a| a.get_ref());
            if duration.is_none_or(|d| !d.is_zero()) {
                // A timed pause watches the gate the whole time (background analysis).
                let watch = analysis
                    .filter(|_| duration.is_some())
                    .map(|a| t.analysis_params(a, w));
                let description = match &watch {
                    Some(a) => format!(
                        "{description} Watched throughout: the release rolls back as soon as the \
                         canary's error rate exceeds {} or its p99 {} over the last {} (at least {} \
                         requests).",
                        a.max_error_rate, a.max_p99_latency, a.window, a.min_requests
                    ),
                    None => description,
                };
                prev = vec![pause_step(
                    b,
                    svc,
                    (&w.to_string(), &description),
                    duration,
                    watch,
                    &prev,
                )];
            }
            if let Some(a) = analysis {
                let description = format!(
                    "Gate: `{}` canary error rate <= {} and p99 <= {}{} over the last {} (at least \
                     {} requests).",
                    svc.name,
                    a.max_error_rate,
                    a.max_p99_latency,
                    relative(a),
                    a.window,
                    a.min_requests
                );
                prev = vec![t.gate(b, a, &w.to_string(), w, &description, &prev)];
            }
        }
    }
    last.unwrap()
}

/// Rolling: per batch, deploy and check it (the first batch is the lane's), shift, retire the
/// old batch and wait the delay; the last shift and its batch.
fn rolling(
    b: &mut Builder,
    t: &Shifter,
    st: &Strategy,
    mut prev: Vec<NodeIndex>,
) -> (NodeIndex, Batch) {
    let svc = t.svc;
    let (old, new) = (&t.old, &t.new);
    let size = st.batch_size.as_ref().map_or(1, |b| *b.get_ref());
    let count = svc.replicas.div_ceil(size);
    let delay = st
        .delay
        .as_ref()
        .map(|d| *d.get_ref())
        .filter(|d| !d.is_zero());
    let mut from = 0;
    for i in 1..=count {
        let done = (i * size).min(svc.replicas);
        let weight = if i == count {
            100
        } else {
            done * 100 / svc.replicas
        };
        let batch_ports = ((i - 1) * size) as usize..done as usize;
        if i > 1 {
            let d = b.add(
                deploy_step(svc, &t.env, &new[batch_ports.clone()], Some((i, count))),
                &prev,
            );
            prev = vec![b.add(
                health_step(svc, &new[batch_ports.clone()], Some((i, count))),
                &[d],
            )];
        }
        // Named by batch: with many replicas two batches can round to the same percent.
        let s = t.shift(b, from, weight, Some(done), &format!("batch-{i}"), &prev);
        from = weight;
        if i == count {
            return (s, Some((i, count)));
        }
        let r = b.add(
            retire_step(svc, old[batch_ports].to_vec(), Some((i, count))),
            &[s],
        );
        prev = vec![r];
        if let Some(delay) = delay {
            let description = format!("Wait {delay} before the next batch of `{}`.", svc.name);
            let at = format!("batch-{i}");
            prev = vec![pause_step(
                b,
                svc,
                (&at, &description),
                Some(delay),
                None,
                &prev,
            )];
        }
    }
    unreachable!("a rolling service has at least one batch")
}

/// After the last shifts (and the post-shift hooks, added here), each service's remaining old
/// containers are retired; the retire step of each service, and the post-shift hooks' end.
pub(super) fn retire<'a>(
    cx: &Ctx,
    b: &mut Builder,
    finals: &[Final<'a>],
    post_deploy: &[NodeIndex],
) -> (BTreeMap<String, NodeIndex>, Vec<NodeIndex>) {
    let last_shifts: Vec<NodeIndex> = finals.iter().map(|f| f.1).collect();
    let post_shift = hooks(
        b,
        cx.spec,
        Stage::PostShift,
        or_else(&last_shifts, post_deploy),
    );
    let mut retired: BTreeMap<String, NodeIndex> = BTreeMap::new();
    for (svc, last, batch) in finals {
        let first = match batch {
            Some((i, _)) => {
                ((i - 1)
                    * svc
                        .strategy
                        .get_ref()
                        .batch_size
                        .as_ref()
                        .map_or(1, |b| *b.get_ref())) as usize
            }
            None => 0,
        };
        let deps = if cx.has_hooks(Stage::PostShift) {
            post_shift.clone()
        } else {
            vec![*last]
        };
        retired.insert(
            svc.name.clone(),
            b.add(
                retire_step(svc, svc.old_ports().skip(first).collect(), *batch),
                &deps,
            ),
        );
    }
    (retired, post_shift)
}
