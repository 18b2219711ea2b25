//! `sample-app`: the small users API from the deployment tutorial, used by cutover's
//! end-to-end tests of zero-downtime releases.
//!
//! A release renames `users.name` to `users.full_name` in expand/contract phases while two
//! versions of this app serve traffic side by side: version 1 (`USERS_COLUMN=name`) and
//! version 2 (`USERS_COLUMN=full_name`). The tests drive requests through a release and check
//! that none fail; `FAIL_RATE` makes a deliberately broken version for canary rollbacks, and
//! `X-App-Version` tells which version answered.
//!
//! Endpoints (JSON):
//! - `GET /health`: 200 `{"status":"ok","version":...}` once `SELECT 1` succeeds, else 503
//!   `{"status":"db-unavailable"}`;
//! - `GET /users?limit=N`: the newest users, `[{"id":..,"name":..}]` (10 by default, 100 max);
//! - `GET /users/{id}`: one user, or 404;
//! - `POST /users` with `{"name":"..."}`: 201 with the new user.
//!
//! It runs in a `FROM scratch` container, so it is built as a fully static binary and needs
//! neither TLS nor DNS (the database is reached by IP address). The HTTP/1.1 server is hyper's
//! (see [`server`]), the stack real services use, so the zero-downtime tests measure releases
//! against it. SIGTERM (`docker stop`) and SIGINT stop it gracefully: new connections are
//! refused at once, idle ones closed, requests in flight are finished, and it exits 0 within
//! 5 s.
//!
//! Configuration is read from environment variables, see [`config`]. Exit codes: 0 after a
//! graceful shutdown, 1 when it cannot listen, 2 for invalid configuration.

mod app;
mod config;
mod http;
mod server;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::app::App;
use crate::config::Config;

/// How long a request waits for a database connection before failing (500, or 503 for
/// `/health`). Short, so that requests fail fast while the database is down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sample-app: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sample-app: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve(config));
    // Connections abandoned at the drain deadline are not waited for.
    runtime.shutdown_background();
    code
}

/// Listens and serves until a shutdown signal has been handled.
async fn serve(config: Config) -> ExitCode {
    // Signal handlers first: a SIGTERM arriving right after startup then shuts down
    // gracefully instead of being ignored (as PID 1 in a container) or killing the process.
    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(e) => {
            eprintln!("sample-app: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("sample-app: cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(config.listen);
    let app = App::new(&config, ACQUIRE_TIMEOUT);
    eprintln!(
        "sample-app {} listening on {addr}, users column {}",
        app.version, app.users_column
    );
    server::run(listener, app, shutdown).await;
    eprintln!("sample-app: stopped");
    ExitCode::SUCCESS
}

/// A future that completes at the first SIGTERM or SIGINT.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        eprintln!("sample-app: {name} received, shutting down");
    })
}
