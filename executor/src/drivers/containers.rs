//! `deploy`, `health`, `retire` and `cleanup` steps, over a [`ContainerRuntime`].
//!
//! - deploy starts the new version's containers (host networking, one port each, `PORT` set),
//!   labelled with the run and step so a probe after a crash finds them; undo stops and removes
//!   them.
//! - health polls each container's health URL (and the runtime's own health state, where the
//!   image defines one) until it answers or the timeout passes.
//! - retire stops the old version's containers but keeps them; undo starts them again and
//!   waits for their health, so traffic can go back within seconds.
//! - cleanup removes the retired containers once the release is through (a pivot).

use crate::driver::{BoxFuture, Done, Driver, Job, Probe, StepContext, StepError};
use crate::drivers::preflight::EnvError;
use crate::runtime::{
    Container, ContainerRuntime, LABEL_PORT, LABEL_RUN, LABEL_SERVICE, LABEL_STEP, LABEL_VERSION,
    NewContainer,
};
use cutover_planner::dag::{DeployParams, HealthParams, VersionParams};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a stopped container gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

fn run_id(ctx: &StepContext) -> String {
    ctx.run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn labels(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Docker container names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn container_name(service: &str, version: &str, port: u16) -> String {
    let clean = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>()
    };
    format!("{}-{}-{port}", clean(service), clean(version))
}

/// Why a container step cannot go on: the containers are not as it needs them.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// Images the release deploys are not on the engine (cutover never pulls).
    #[error("image(s) not on the container engine: {} (build or `docker load` them first; cutover \
             never pulls)", images.join(", "))]
    ImagesMissing {
        /// `image:tag` of each.
        images: Vec<String>,
    },
    /// Another running container of the service holds the port.
    #[error(
        "port {port} is taken by running container `{name}` ({image}); stop it or choose another \
         `candidate_port`"
    )]
    PortTaken {
        /// The port.
        port: u16,
        /// The container holding it.
        name: String,
        /// Its image.
        image: String,
    },
    /// A container the health check waits for has exited.
    #[error("container {name} on port {port} exited; see `docker logs {name}`")]
    Exited {
        /// The container.
        name: String,
        /// Its port.
        port: u16,
    },
    /// The health check did not pass in time.
    #[error("not healthy after {} s: {last}", timeout.as_secs_f64())]
    NotHealthy {
        /// How long it waited.
        timeout: Duration,
        /// The last answer (or failure) it saw.
        last: String,
    },
    /// No container of the old version carries cutover's labels.
    #[error(
        "no container of `{image}` found on port(s) {ports:?}: cutover finds the old version by the \
         labels {LABEL_SERVICE}={service}, {LABEL_VERSION}={version}, {LABEL_PORT}=<port>; add them \
         to containers started outside cutover"
    )]
    OldVersionNotFound {
        /// The image.
        image: String,
        /// The ports looked at.
        ports: Vec<u16>,
        /// The service.
        service: String,
        /// The old version.
        version: String,
    },
    /// A retired container runs again, so cleanup will not remove it.
    #[error(
        "container `{name}` of the old version is running again; cleanup removes only stopped \
         containers (stop it, or roll back)"
    )]
    RunningAgain {
        /// The container.
        name: String,
    },
    /// Removed containers cannot come back.
    #[error("{step} removed the old containers; it cannot be undone")]
    CleanupIrreversible {
        /// Step id.
        step: String,
    },
}

/// A deploy's undo data: the containers it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployed {
    /// Their ids.
    pub containers: Vec<String>,
}

/// The old containers a retire stops: saved before it stops any, and its undo data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retired {
    /// Their ids.
    pub containers: Vec<String>,
    /// Their names, for humans.
    pub names: Vec<String>,
}

/// Starts the new version.
pub struct DeployDriver(pub Arc<dyn ContainerRuntime>);

/// Removes every container this step (any attempt of it) created.
async fn remove_created(
    rt: &Arc<dyn ContainerRuntime>,
    step: &str,
    ctx: &StepContext,
    extra: Vec<String>,
) -> Result<(), StepError> {
    let mut targets = extra;
    for c in rt
        .list(labels(&[
            (LABEL_RUN, run_id(ctx)),
            (LABEL_STEP, step.to_string()),
        ]))
        .await?
    {
        if !targets.contains(&c.id) {
            targets.push(c.id);
        }
    }
    for id in targets {
        rt.stop(id.clone(), STOP_GRACE).await?;
        rt.remove(id).await?;
    }
    Ok(())
}

impl Driver for DeployDriver {
    type Params = DeployParams;
    type Undo = Deployed;

    fn run(
        &self,
        step: Job<DeployParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Done<Deployed>, StepError>> {
        let rt = self.0.clone();
        Box::pin(async move {
            match deploy(&rt, &step, &ctx).await {
                Ok(done) => Ok(done),
                Err(e) => {
                    // A failed step is not undone by a rollback: leave no container behind.
                    match remove_created(&rt, &step.id, &ctx, Vec::new()).await {
                        Ok(()) => Err(e),
                        Err(also) => Err(StepError::PutBackFailed {
                            source: Box::new(e),
                            what: "removing what it started",
                            also: Box::new(also),
                        }),
                    }
                }
            }
        })
    }

    fn undo(
        &self,
        step: Job<DeployParams>,
        undo: Deployed,
        ctx: StepContext,
    ) -> BoxFuture<Result<(), StepError>> {
        let rt = self.0.clone();
        Box::pin(async move { remove_created(&rt, &step.id, &ctx, undo.containers).await })
    }

    fn probe(
        &self,
        step: Job<DeployParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Option<Probe<Deployed>>, StepError>> {
        let rt = self.0.clone();
        Box::pin(async move {
            // Every container running: done. Anything less: remove what the crashed attempt
            // created (no secrets or images needed for that) and say not done, so a resume runs
            // the step again and a rollback has nothing of it left to undo.
            let ports = &step.params.ports;
            let found = rt
                .list(labels(&[
                    (LABEL_RUN, run_id(&ctx)),
                    (LABEL_STEP, step.id.clone()),
                ]))
                .await?;
            let up = |p: &u16| {
                found
                    .iter()
                    .any(|c| c.running && c.labels.get(LABEL_PORT) == Some(&p.to_string()))
            };
            if !found.is_empty() && ports.iter().all(up) {
                return Ok(Some(Probe::Done(Deployed {
                    containers: found.iter().map(|c| c.id.clone()).collect(),
                })));
            }
            remove_created(&rt, &step.id, &ctx, Vec::new()).await?;
            Ok(Some(Probe::NotDone))
        })
    }
}

async fn deploy(
    rt: &Arc<dyn ContainerRuntime>,
    step: &Job<DeployParams>,
    ctx: &StepContext,
) -> Result<Done<Deployed>, StepError> {
    let DeployParams {
        service,
        image,
        version,
        ports,
        env,
        secret_env,
        ..
    } = &step.params;
    let run = run_id(ctx);
    let mut started = Vec::new();
    for port in ports {
        let mine = labels(&[
            (LABEL_RUN, run.clone()),
            (LABEL_STEP, step.id.clone()),
            (LABEL_PORT, port.to_string()),
        ]);
        let existing = rt.list(mine.clone()).await?;
        if let Some(c) = existing.first() {
            // A crashed attempt of this step created it: reuse it.
            rt.start(c.id.clone()).await?;
            started.push(c.id.clone());
            continue;
        }
        // Another running container of this service on the port would make ours fail to bind.
        let on_port = rt
            .list(labels(&[
                (LABEL_SERVICE, service.clone()),
                (LABEL_PORT, port.to_string()),
            ]))
            .await?;
        if let Some(c) = on_port.iter().find(|c| c.running) {
            return Err(ContainerError::PortTaken {
                port: *port,
                name: c.name.clone(),
                image: c.image.clone(),
            }
            .into());
        }
        let mut vars: Vec<(String, String)> =
            env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for name in secret_env {
            let v = std::env::var(name).map_err(|_| EnvError::ServiceSecretUnset {
                name: name.clone(),
                service: service.clone(),
            })?;
            vars.push((name.clone(), v));
        }
        vars.push(("PORT".into(), port.to_string()));
        let mut l = mine;
        l.insert(LABEL_SERVICE.into(), service.clone());
        l.insert(LABEL_VERSION.into(), version.clone());
        let id = rt
            .create_and_start(NewContainer {
                name: container_name(service, version, *port),
                image: image.clone(),
                env: vars,
                labels: l,
            })
            .await?;
        started.push(id);
    }
    let names: Vec<String> = ports
        .iter()
        .map(|p| container_name(service, version, *p))
        .collect();
    Ok(Done {
        undo: Deployed {
            containers: started,
        },
        detail: Some(format!("started {} ({image})", names.join(", "))),
    })
}

/// One HTTP GET to a loopback URL, on a connection of its own that it closes; the status code.
///
/// The request is hyper's HTTP/1.1 client over a plain `TcpStream` (only loopback `http://`
/// URLs, so no pool, DNS resolver or TLS). Errors say what happened in words: the connection
/// refused (`connect 127.0.0.1:3333: Connection refused (os error 111)`), closed before a status
/// line, a malformed response, or no answer within `timeout` (which covers connecting too).
pub async fn http_status(url: &str, timeout: Duration) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}` is not an http:// URL"))?;
    let (hostport, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let fut = async {
        let stream = tokio::net::TcpStream::connect(hostport)
            .await
            .map_err(|e| format!("connect {hostport}: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| hyper_error(&e))?;
        let request = hyper::Request::get(path.as_str())
            .header(hyper::header::HOST, hostport)
            .header(hyper::header::CONNECTION, "close")
            .header(hyper::header::USER_AGENT, "cutover")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .map_err(|e| format!("`{url}` cannot be requested: {e}"))?;
        // The connection is driven here, alongside the request, until the status has arrived;
        // the body is not read, and dropping both closes the socket. A connection that ends
        // first may have delivered the response (or the error) on its way out.
        tokio::pin!(connection);
        let send = sender.send_request(request);
        tokio::pin!(send);
        let response = tokio::select! {
            biased;
            response = &mut send => response,
            _ = &mut connection => send.await,
        }
        .map_err(|e| hyper_error(&e))?;
        Ok(response.status().as_u16())
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

/// A client error of hyper's in words, with its cause (hyper's own message leaves it out).
fn hyper_error(e: &hyper::Error) -> String {
    use std::error::Error as _;
    if e.is_incomplete_message() {
        return "connection closed before a status line".to_string();
    }
    let what = if e.is_parse() {
        format!("malformed response: {e}")
    } else {
        e.to_string()
    };
    match e.source() {
        Some(cause) => format!("{what}: {cause}"),
        None => what,
    }
}

/// Polls `urls` until each answers `expect`, the containers on `ports` (if any are known) run and
/// are not unhealthy, or `timeout` passes.
struct Wait<'a> {
    service: &'a str,
    /// Only containers of this version count (a rollback waits for the old one).
    version: Option<&'a str>,
    urls: &'a [String],
    ports: &'a [u16],
    expect: u16,
    interval: Duration,
    timeout: Duration,
}

async fn wait_healthy(rt: &Arc<dyn ContainerRuntime>, w: Wait<'_>) -> Result<Duration, StepError> {
    let Wait {
        service,
        version,
        urls,
        ports,
        expect,
        interval,
        timeout,
    } = w;
    let t0 = Instant::now();
    let mut pending: Vec<(String, u16)> = urls
        .iter()
        .cloned()
        .zip(ports.iter().copied().chain(std::iter::repeat(0)))
        .collect();
    let mut last = String::new();
    loop {
        let mut still = Vec::new();
        for (url, port) in pending {
            let mut ok = match http_status(&url, interval.max(Duration::from_millis(500))).await {
                Ok(s) if s == expect => true,
                Ok(s) => {
                    last = format!("{url} answered {s}");
                    false
                }
                Err(e) => {
                    last = format!("{url}: {e}");
                    false
                }
            };
            if port != 0 {
                let mut want = labels(&[
                    (LABEL_SERVICE, service.to_string()),
                    (LABEL_PORT, port.to_string()),
                ]);
                if let Some(v) = version {
                    want.insert(LABEL_VERSION.into(), v.to_string());
                }
                let cs = rt.list(want).await?;
                let running: Vec<&Container> = cs.iter().filter(|c| c.running).collect();
                if running.is_empty() && !cs.is_empty() && t0.elapsed() > Duration::from_secs(1) {
                    return Err(ContainerError::Exited {
                        name: cs[0].name.clone(),
                        port,
                    }
                    .into());
                }
                if let Some(h) = running.iter().find_map(|c| c.health.clone())
                    && h != "healthy"
                {
                    last = format!("port {port}: Docker health is `{h}`");
                    ok = false;
                }
            }
            if !ok {
                still.push((url, port));
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() >= timeout {
            return Err(ContainerError::NotHealthy { timeout, last }.into());
        }
        tokio::time::sleep(
            interval
                .min(timeout.saturating_sub(t0.elapsed()))
                .max(Duration::from_millis(50)),
        )
        .await;
    }
}

/// Waits for the new containers' health.
pub struct HealthDriver(pub Arc<dyn ContainerRuntime>);

impl Driver for HealthDriver {
    type Params = HealthParams;
    type Undo = ();

    fn run(
        &self,
        step: Job<HealthParams>,
        _ctx: StepContext,
    ) -> BoxFuture<Result<Done<()>, StepError>> {
        let rt = self.0.clone();
        Box::pin(async move {
            let HealthParams {
                service,
                urls,
                ports,
                expect_status,
                interval,
                timeout,
            } = &step.params;
            let took = wait_healthy(
                &rt,
                Wait {
                    service,
                    version: None,
                    urls,
                    ports,
                    expect: *expect_status,
                    interval: interval.into(),
                    timeout: timeout.into(),
                },
            )
            .await?;
            Ok(Done {
                undo: (),
                detail: Some(format!(
                    "{} healthy after {} ms",
                    urls.join(", "),
                    took.as_millis()
                )),
            })
        })
    }
}

async fn old_containers(
    rt: &Arc<dyn ContainerRuntime>,
    service: &str,
    version: &str,
    ports: &[u16],
) -> Result<Vec<Container>, StepError> {
    let mut out = Vec::new();
    for port in ports {
        let found = rt
            .list(labels(&[
                (LABEL_SERVICE, service.to_string()),
                (LABEL_VERSION, version.to_string()),
                (LABEL_PORT, port.to_string()),
            ]))
            .await?;
        out.extend(found);
    }
    Ok(out)
}

/// Stops the old version (kept for rollback).
pub struct RetireDriver(pub Arc<dyn ContainerRuntime>);

/// The old containers that were running when the step began, saved before it stopped any: a
/// re-run, a probe and the undo all start from this list, however far a crashed attempt got.
async fn retire_list(
    rt: &Arc<dyn ContainerRuntime>,
    step: &Job<VersionParams>,
    ctx: &StepContext,
) -> Result<Retired, StepError> {
    let VersionParams {
        service,
        image,
        version,
        ports,
        ..
    } = &step.params;
    if let Some(saved) = crate::before::saved(&ctx.run_dir, &step.id) {
        return Ok(saved);
    }
    let found = old_containers(rt, service, version, ports).await?;
    if found.is_empty() {
        return Err(ContainerError::OldVersionNotFound {
            image: image.clone(),
            ports: ports.clone(),
            service: service.clone(),
            version: version.clone(),
        }
        .into());
    }
    // Every container of the old version on these ports, stopped ones included: one a crashed
    // attempt already stopped must be started again by the undo too.
    let list = Retired {
        containers: found.iter().map(|c| c.id.clone()).collect(),
        names: found.iter().map(|c| c.name.clone()).collect(),
    };
    crate::before::saved_before(&ctx.run_dir, &step.id, || Ok(list))
}

/// Starts the listed old containers and waits for their health (the step's own settings, and
/// only containers of the old version count).
async fn start_all(
    rt: &Arc<dyn ContainerRuntime>,
    step: &Job<VersionParams>,
    list: &Retired,
) -> Result<(), StepError> {
    let VersionParams {
        service,
        version,
        health_urls,
        ports,
        health_status,
        health_timeout,
        ..
    } = &step.params;
    for id in &list.containers {
        rt.start(id.clone()).await?;
    }
    if !list.containers.is_empty() {
        wait_healthy(
            rt,
            Wait {
                service,
                version: Some(version),
                urls: health_urls,
                ports,
                expect: *health_status,
                interval: Duration::from_millis(100),
                timeout: health_timeout.into(),
            },
        )
        .await?;
    }
    Ok(())
}

async fn stop_all(rt: &Arc<dyn ContainerRuntime>, list: &Retired) -> Result<(), StepError> {
    for id in &list.containers {
        rt.stop(id.clone(), STOP_GRACE).await?;
    }
    Ok(())
}

impl Driver for RetireDriver {
    type Params = VersionParams;
    type Undo = Retired;

    fn run(
        &self,
        step: Job<VersionParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Done<Retired>, StepError>> {
        let rt = self.0.clone();
        Box::pin(async move {
            let list = retire_list(&rt, &step, &ctx).await?;
            let t0 = Instant::now();
            if let Err(e) = stop_all(&rt, &list).await {
                // A failed step is not undone by a rollback: start again what it stopped.
                return Err(e.put_back(
                    start_all(&rt, &step, &list).await,
                    "the old containers were started again and are healthy",
                    "starting the old containers again",
                ));
            }
            let names = &list.names;
            let what = if names.is_empty() {
                "nothing was running".to_string()
            } else {
                format!("stopped {}", names.join(", "))
            };
            Ok(Done {
                undo: list,
                detail: Some(format!(
                    "{what} in {} ms (kept for rollback)",
                    t0.elapsed().as_millis()
                )),
            })
        })
    }

    fn undo(
        &self,
        step: Job<VersionParams>,
        undo: Retired,
        _ctx: StepContext,
    ) -> BoxFuture<Result<(), StepError>> {
        let rt = self.0.clone();
        Box::pin(async move { start_all(&rt, &step, &undo).await })
    }

    fn probe(
        &self,
        step: Job<VersionParams>,
        ctx: StepContext,
    ) -> BoxFuture<Result<Option<Probe<Retired>>, StepError>> {
        let rt = self.0.clone();
        Box::pin(async move {
            // No saved list: nothing was stopped. All of the list stopped: done. Part of it:
            // start those again and say not done, so a resume stops them all (the step runs
            // again) and a rollback has nothing of it left to undo.
            let Some(list) = crate::before::saved::<Retired>(&ctx.run_dir, &step.id) else {
                return Ok(Some(Probe::NotDone));
            };
            let VersionParams {
                service,
                version,
                ports,
                ..
            } = &step.params;
            let now = old_containers(&rt, service, version, ports).await?;
            let wanted = &list.containers;
            if now
                .iter()
                .filter(|c| wanted.contains(&c.id))
                .all(|c| !c.running)
            {
                return Ok(Some(Probe::Done(list)));
            }
            start_all(&rt, &step, &list).await?;
            Ok(Some(Probe::NotDone))
        })
    }
}

/// Removes the retired containers.
pub struct CleanupDriver(pub Arc<dyn ContainerRuntime>);

impl Driver for CleanupDriver {
    type Params = VersionParams;
    type Undo = ();

    fn run(
        &self,
        step: Job<VersionParams>,
        _ctx: StepContext,
    ) -> BoxFuture<Result<Done<()>, StepError>> {
        let rt = self.0.clone();
        Box::pin(async move {
            let VersionParams {
                service,
                version,
                ports,
                ..
            } = &step.params;
            let found = old_containers(&rt, service, version, ports).await?;
            if let Some(c) = found.iter().find(|c| c.running) {
                return Err(ContainerError::RunningAgain {
                    name: c.name.clone(),
                }
                .into());
            }
            for c in &found {
                rt.remove(c.id.clone()).await?;
            }
            let names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
            Ok(Done {
                undo: (),
                detail: Some(if names.is_empty() {
                    "nothing left to remove".into()
                } else {
                    format!("removed {}", names.join(", "))
                }),
            })
        })
    }

    fn undo(
        &self,
        step: Job<VersionParams>,
        _undo: (),
        _ctx: StepContext,
    ) -> BoxFuture<Result<(), StepError>> {
        Box::pin(async move { Err(ContainerError::CleanupIrreversible { step: step.id }.into()) })
    }

    // The default probe (not done): removing again is a no-op.
}

#[cfg(test)]
mod tests {
    use super::http_status;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-connection server on a free loopback port: reads the request head, then answers
    /// `reply` (nothing when `None`: it then closes, or keeps silent with `hang`). Returns the
    /// port and the request it read.
    async fn serve_once(
        reply: Option<&'static str>,
        hang: bool,
    ) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                if s.read(&mut byte).await.unwrap() == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            if let Some(reply) = reply {
                s.write_all(reply.as_bytes()).await.unwrap();
            }
            if hang {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            String::from_utf8(head).unwrap()
        });
        (port, task)
    }

    #[tokio::test]
    async fn reports_the_status_of_a_get() {
        let (port, server) = serve_once(
            Some(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: \
                 27\r\n\r\n{\"status\":\"db-unavailable\"}",
            ),
            false,
        )
        .await;
        let url = format!("http://127.0.0.1:{port}/health");
        assert_eq!(http_status(&url, Duration::from_secs(5)).await, Ok(503));
        let request = server.await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("get /health http/1.1\r\n"), "{request}");
        assert!(
            request.contains(&format!("host: 127.0.0.1:{port}\r\n")),
            "{request}"
        );
        assert!(request.contains("connection: close\r\n"), "{request}");
        assert!(request.contains("user-agent: cutover\r\n"), "{request}");

        // A URL without a path asks for `/`; a status without a body is enough.
        let (port, server) = serve_once(Some("HTTP/1.1 200 OK\r\n\r\n"), true).await;
        let url = format!("http://127.0.0.1:{port}");
        assert_eq!(http_status(&url, Duration::from_secs(5)).await, Ok(200));
        server.abort();
    }

    #[tokio::test]
    async fn names_what_went_wrong() {
        // Nothing listens on a port just released.
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let err = http_status(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            err.starts_with(&format!("connect 127.0.0.1:{port}: ")) && err.contains("refused"),
            "{err}"
        );

        let (port, _server) = serve_once(None, false).await;
        let err = http_status(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err, "connection closed before a status line");

        let (port, _server) = serve_once(Some("SSH-2.0-OpenSSH\r\n\r\n"), false).await;
        let err = http_status(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.starts_with("malformed response: "), "{err}");

        let (port, server) = serve_once(None, true).await;
        let err = http_status(
            &format!("http://127.0.0.1:{port}/"),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert_eq!(err, "no answer within 300 ms");
        server.abort();

        assert_eq!(
            http_status("https://127.0.0.1:1/", Duration::from_secs(1)).await,
            Err("`https://127.0.0.1:1/` is not an http:// URL".to_string())
        );
    }
}
