//! The container runtime behind the `deploy`, `health`, `retire` and `cleanup` steps.
//!
//! [`ContainerRuntime`] is the seam: [`Docker`] drives the local (or `DOCKER_HOST`) engine
//! through bollard; a Swarm or Kubernetes runtime for users who outgrow one host is another
//! implementation of the same trait, and the drivers do not change.
//!
//! Containers cutover starts carry labels ([`LABEL_SERVICE`] and friends), so a probe after a
//! crash finds what a run started, and a retire finds the old version whoever started it.

use crate::driver::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Service name.
pub const LABEL_SERVICE: &str = "cutover.service";
/// Version (image tag).
pub const LABEL_VERSION: &str = "cutover.version";
/// Port the container listens on (host networking).
pub const LABEL_PORT: &str = "cutover.port";
/// Run that started it.
pub const LABEL_RUN: &str = "cutover.run";
/// Step that started it.
pub const LABEL_STEP: &str = "cutover.step";

/// A container as the runtime reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// Runtime id.
    pub id: String,
    /// Name, without Docker's leading `/`.
    pub name: String,
    /// Image reference it was created from.
    pub image: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Running now.
    pub running: bool,
    /// The runtime's own health verdict, when the image defines a health check:
    /// `starting`, `healthy` or `unhealthy`.
    pub health: Option<String>,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct NewContainer {
    /// Name.
    pub name: String,
    /// `image:tag`.
    pub image: String,
    /// Environment (`KEY`, value). Values may be secret: they go to the engine, never to a log.
    pub env: Vec<(String, String)>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// A container runtime failure, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No engine answers where cutover looked.
    #[error(
        "cannot reach the Docker engine at {host}: {source} (is dockerd running? set DOCKER_HOST \
         for another engine)"
    )]
    Unreachable {
        /// `DOCKER_HOST`, or the default socket.
        host: String,
        /// bollard's error.
        source: bollard::errors::Error,
    },
    /// The image is not on the engine (cutover never pulls).
    #[error(
        "docker: image `{image}` not found on the engine (no registry is consulted: build or load \
         it first, e.g. `docker load -i image.tar`)"
    )]
    ImageMissing {
        /// `image:tag`.
        image: String,
        /// The engine's answer.
        source: bollard::errors::Error,
    },
    /// A container of that name exists and is not one this step started.
    #[error(
        "docker: a container named `{name}` already exists and was not started by this step; remove \
         it (`docker rm -f {name}`) or rename it"
    )]
    NameTaken {
        /// The container name.
        name: String,
        /// The engine's answer.
        source: bollard::errors::Error,
    },
    /// The engine refused or failed an operation.
    #[error("docker: {operation}")]
    Engine {
        /// What cutover asked for ("inspect image api:2", "stop container 3f2a...").
        operation: String,
        /// The engine's answer.
        source: bollard::errors::Error,
    },
}

/// Starts, stops, lists and removes containers.
pub trait ContainerRuntime: Send + Sync {
    /// Whether `image` exists on the engine (no registry is consulted).
    fn image_exists(&self, image: &str) -> BoxFuture<Result<bool, RuntimeError>>;
    /// Containers, running or not, carrying every label of `labels`.
    fn list(
        &self,
        labels: BTreeMap<String, String>,
    ) -> BoxFuture<Result<Vec<Container>, RuntimeError>>;
    /// Creates and starts a container on the host network; returns its id.
    fn create_and_start(&self, c: NewContainer) -> BoxFuture<Result<String, RuntimeError>>;
    /// Starts a stopped container (a no-op when it runs).
    fn start(&self, id: String) -> BoxFuture<Result<(), RuntimeError>>;
    /// Stops a container: SIGTERM, then SIGKILL after `grace` (a no-op when it is stopped).
    fn stop(&self, id: String, grace: Duration) -> BoxFuture<Result<(), RuntimeError>>;
    /// Removes a container (a no-op when it is gone).
    fn remove(&self, id: String) -> BoxFuture<Result<(), RuntimeError>>;
}

/// The Docker engine through bollard. Connects on first use (once per process), so commands
/// that never touch a container never need an engine.
#[derive(Debug, Default, Clone, Copy)]
pub struct Docker;

fn where_docker() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

fn err(operation: &str, source: bollard::errors::Error) -> RuntimeError {
    RuntimeError::Engine {
        operation: operation.to_string(),
        source,
    }
}

fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn not_modified(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 304,
            ..
        }
    )
}

/// The process's engine client.
async fn client() -> Result<bollard::Docker, RuntimeError> {
    static SHARED: tokio::sync::OnceCell<bollard::Docker> = tokio::sync::OnceCell::const_new();
    SHARED
        .get_or_try_init(|| async {
            let unreachable = |source| RuntimeError::Unreachable {
                host: where_docker(),
                source,
            };
            let d = bollard::Docker::connect_with_defaults().map_err(unreachable)?;
            // The engine may speak an older API than bollard's default: agree on one.
            d.negotiate_version().await.map_err(unreachable)
        })
        .await
        .cloned()
}

impl Docker {
    /// A runtime for the engine at `DOCKER_HOST` (default: the local socket).
    pub fn new() -> Arc<Self> {
        Arc::new(Self)
    }
}

impl ContainerRuntime for Docker {
    fn image_exists(&self, image: &str) -> BoxFuture<Result<bool, RuntimeError>> {
        let image = image.to_string();
        Box::pin(async move {
            let d = client().await?;
            match d.inspect_image(&image).await {
                Ok(_) => Ok(true),
                Err(e) if not_found(&e) => Ok(false),
                Err(e) => Err(err(&format!("inspect image {image}"), e)),
            }
        })
    }

    fn list(
        &self,
        labels: BTreeMap<String, String>,
    ) -> BoxFuture<Result<Vec<Container>, RuntimeError>> {
        Box::pin(async move {
            let d = client().await?;
            let filter: HashMap<String, Vec<String>> = HashMap::from([(
                "label".to_string(),
                labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            )]);
            let opts = bollard::query_parameters::ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filter)
                .build();
            let list = d
                .list_containers(Some(opts))
                .await
                .map_err(|e| err("list containers", e))?;
            let mut out = Vec::with_capacity(list.len());
            for c in list {
                let id = c.id.unwrap_or_default();
                // The summary has no health state: inspect each match (few per service).
                let inspect = match d.inspect_container(&id, None).await {
                    Ok(i) => i,
                    Err(e) if not_found(&e) => continue,
                    Err(e) => return Err(err(&format!("inspect container {id}"), e)),
                };
                let state = inspect.state.unwrap_or_default();
                out.push(Container {
                    id,
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    image: c.image.unwrap_or_default(),
                    labels: c.labels.unwrap_or_default().into_iter().collect(),
                    running: state.running.unwrap_or(false),
                    health: state.health.and_then(|h| h.status).and_then(|s| match s {
                        bollard::models::HealthStatusEnum::EMPTY
                        | bollard::models::HealthStatusEnum::NONE => None,
                        other => Some(other.to_string()),
                    }),
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn create_and_start(&self, c: NewContainer) -> BoxFuture<Result<String, RuntimeError>> {
        Box::pin(async move {
            let d = client().await?;
            let body = bollard::models::ContainerCreateBody {
                image: Some(c.image.clone()),
                env: Some(c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                labels: Some(c.labels.clone().into_iter().collect()),
                host_config: Some(bollard::models::HostConfig {
                    network_mode: Some("host".into()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let opts = bollard::query_parameters::CreateContainerOptionsBuilder::new()
                .name(&c.name)
                .build();
            let created =
                d.create_container(Some(opts), body)
                    .await
                    .map_err(|source| match &source {
                        bollard::errors::Error::DockerResponseServerError {
                            status_code: 404,
                            ..
                        } => RuntimeError::ImageMissing {
                            image: c.image.clone(),
                            source,
                        },
                        bollard::errors::Error::DockerResponseServerError {
                            status_code: 409,
                            ..
                        } => RuntimeError::NameTaken {
                            name: c.name.clone(),
                            source,
                        },
                        _ => err(&format!("create container {}", c.name), source),
                    })?;
            match d.start_container(&created.id, None).await {
                Ok(()) => Ok(created.id),
                Err(e) if not_modified(&e) => Ok(created.id),
                Err(e) => Err(err(&format!("start container {}", c.name), e)),
            }
        })
    }

    fn start(&self, id: String) -> BoxFuture<Result<(), RuntimeError>> {
        Box::pin(async move {
            match client().await?.start_container(&id, None).await {
                Ok(()) => Ok(()),
                Err(e) if not_modified(&e) => Ok(()),
                Err(e) => Err(err(&format!("start container {id}"), e)),
            }
        })
    }

    fn stop(&self, id: String, grace: Duration) -> BoxFuture<Result<(), RuntimeError>> {
        Box::pin(async move {
            let opts = bollard::query_parameters::StopContainerOptionsBuilder::new()
                .t(grace.as_secs().clamp(1, i32::MAX as u64) as i32)
                .build();
            match client().await?.stop_container(&id, Some(opts)).await {
                Ok(()) => Ok(()),
                Err(e) if not_modified(&e) || not_found(&e) => Ok(()),
                Err(e) => Err(err(&format!("stop container {id}"), e)),
            }
        })
    }

    fn remove(&self, id: String) -> BoxFuture<Result<(), RuntimeError>> {
        Box::pin(async move {
            let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
                .force(true)
                .build();
            match client().await?.remove_container(&id, Some(opts)).await {
                Ok(()) => Ok(()),
                Err(e) if not_found(&e) => Ok(()),
                Err(e) => Err(err(&format!("remove container {id}"), e)),
            }
        })
    }
}
