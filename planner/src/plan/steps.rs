//! Step constructors: one function per kind of step that is not a migration (deploy, health,
//! retire, cleanup, hooks), each filling in the description, the undo note and the typed params
//! the executor's driver reads.

use crate::analysis::Phase;
use crate::dag::{Builder, CommandParams, DeployParams, HealthParams, Params, Step, VersionParams};
use crate::spec::{Database, ReleaseSpec, Service, Stage};
use petgraph::graph::NodeIndex;
use std::collections::BTreeMap;

/// Rolling batch (1-based) and batch count.
pub(super) type Batch = Option<(u32, u32)>;

/// `deps`, or `fallback` when there are none (a stage with no steps, e.g. no services).
pub(super) fn or_else<'a>(deps: &'a [NodeIndex], fallback: &'a [NodeIndex]) -> &'a [NodeIndex] {
    if deps.is_empty() { fallback } else { deps }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn step(
    id: &str,
    phase: Option<Phase>,
    description: &str,
    idempotent: bool,
    reversible: bool,
    undo: &str,
    params: Params,
) -> Step {
    Step {
        id: id.into(),
        params,
        phase,
        depends_on: Vec::new(),
        description: description.into(),
        idempotent,
        reversible,
        undo: undo.into(),
        hash: String::new(),
    }
}

fn batch_suffix(batch: Batch) -> String {
    batch.map_or(String::new(), |(i, _)| format!("/batch-{i}"))
}

/// Loopback address of a container port.
pub(super) fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// `env`: the new version's environment, the service's `env` and what the release adds to it
/// ([`super::rename::new_version_env`]).
pub(super) fn deploy_step(
    svc: &Service,
    env: &BTreeMap<String, String>,
    ports: &[u16],
    batch: Batch,
) -> Step {
    let what = batch.map_or(String::new(), |(i, n)| format!(" (batch {i} of {n})"));
    let on = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let views = match env.get("PGOPTIONS") {
        Some(o) if svc.env.get("PGOPTIONS") != Some(o) => format!(
            " `PGOPTIONS` ({o}) puts the schema of the new version's views first: it reads the \
             tables whose column types change through them"
        ),
        _ => String::new(),
    };
    step(
        &format!("deploy/{}{}", svc.name, batch_suffix(batch)),
        None,
        &format!(
            "Start {} container(s) of `{}:{}` on port(s) {on}{what}.{views}",
            ports.len(),
            svc.image,
            svc.target
        ),
        true,
        true,
        "stop and remove the containers this step started",
        Params::Deploy(DeployParams {
            service: svc.name.clone(),
            image: format!("{}:{}", svc.image, svc.target),
            version: svc.target.clone(),
            ports: ports.to_vec(),
            replicas: ports.len() as u32,
            batch,
            env: env.clone(),
            secret_env: svc.secret_env.clone(),
        }),
    )
}

fn health_urls(svc: &Service, ports: &[u16]) -> Vec<String> {
    ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}{}", svc.health.path))
        .collect()
}

pub(super) fn health_step(svc: &Service, ports: &[u16], batch: Batch) -> Step {
    let h = &svc.health;
    let urls = health_urls(svc, ports);
    step(
        &format!("health/{}{}", svc.name, batch_suffix(batch)),
        None,
        &format!(
            "Poll {} every {} until it answers {} (give up after {}).",
            urls.join(", "),
            h.interval,
            h.expect_status,
            h.timeout
        ),
        true,
        true,
        "nothing to undo (read-only)",
        Params::Health(HealthParams {
            service: svc.name.clone(),
            urls,
            ports: ports.to_vec(),
            expect_status: h.expect_status,
            interval: h.interval,
            timeout: h.timeout,
        }),
    )
}

fn version_params(svc: &Service, ports: Vec<u16>, batch: Batch) -> VersionParams {
    VersionParams {
        service: svc.name.clone(),
        image: format!("{}:{}", svc.image, svc.current),
        version: svc.current.clone(),
        health_urls: health_urls(svc, &ports),
        health_status: svc.health.expect_status,
        health_timeout: svc.health.timeout,
        replicas: ports.len() as u32,
        ports,
        batch,
    }
}

pub(super) fn retire_step(svc: &Service, ports: Vec<u16>, batch: Batch) -> Step {
    let what = batch.map_or(String::new(), |(i, n)| format!(" (batch {i} of {n})"));
    step(
        &format!("retire/{}{}", svc.name, batch_suffix(batch)),
        None,
        &format!(
            "Stop {} container(s) of `{}:{}`{what}; they are kept for rollback.",
            ports.len(),
            svc.image,
            svc.current
        ),
        true,
        true,
        "start the old containers again and wait for their health",
        Params::Retire(version_params(svc, ports, batch)),
    )
}

pub(super) fn cleanup_step(svc: &Service) -> Step {
    step(
        &format!("cleanup/{}", svc.name),
        None,
        &format!(
            "Remove the stopped containers of `{}:{}`.",
            svc.image, svc.current
        ),
        true,
        false,
        "irreversible: the old containers are gone; a rollback would redeploy the old image",
        Params::Cleanup(version_params(svc, svc.old_ports().collect(), None)),
    )
}

/// Adds the hooks of `stage` in declaration order after `deps`; returns what comes next's deps.
pub(super) fn hooks(
    b: &mut Builder,
    spec: &ReleaseSpec,
    stage: Stage,
    deps: &[NodeIndex],
) -> Vec<NodeIndex> {
    let mut prev = deps.to_vec();
    for c in spec
        .command
        .iter()
        .map(|c| c.get_ref())
        .filter(|c| c.stage == stage)
    {
        let (reversible, undo) = if c.read_only {
            (true, "nothing to undo (read-only)".to_string())
        } else if let Some(u) = &c.undo {
            (true, format!("run {u:?}"))
        } else {
            (
                false,
                "irreversible (pivot): the command has no `undo`; mark it `read_only` or give it an \
                 `undo` argv"
                    .to_string(),
            )
        };
        let n = b.add(
            step(
                &format!("command/{}", c.name),
                None,
                &format!(
                    "Run `{}` ({}, timeout {}).",
                    c.argv.get_ref().join(" "),
                    stage.as_str(),
                    c.timeout
                ),
                c.idempotent || c.read_only,
                reversible,
                &undo,
                Params::Command(CommandParams {
                    name: c.name.clone(),
                    stage,
                    argv: c.argv.get_ref().clone(),
                    timeout: c.timeout,
                    env: c.env.clone(),
                    secret_env: c.secret_env.clone(),
                    undo: c.undo.clone(),
                    probe: c.probe.clone(),
                }),
            ),
            &prev,
        );
        prev = vec![n];
    }
    prev
}

/// The databases a service uses: those it names, else every database of the release.
pub(super) fn svc_dbs<'a>(svc: &'a Service, all: &[&'a Database]) -> Vec<&'a str> {
    match &svc.databases {
        Some(list) => list.iter().map(String::as_str).collect(),
        None => all.iter().map(|d| d.name.as_str()).collect(),
    }
}
