//! The API itself: routing, the handlers and their SQL, and the failure injection.
//!
//! Every handler returns a [`Response`]; database errors become a 500 with a short message
//! (PostgreSQL's own message at most, never the connection string).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::{Config, UsersColumn};
use crate::http::{Response, query_param};

/// `GET /users` returns this many users without `?limit=`.
pub const DEFAULT_LIMIT: i64 = 10;
/// `GET /users` never returns more than this many users.
pub const MAX_LIMIT: i64 = 100;
/// How long `/health` waits for `SELECT 1` before reporting the database unavailable.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// What a request is asking for, once its method and path are understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`
    Health,
    /// `GET /users`
    ListUsers,
    /// `GET /users/{id}`
    GetUser(i64),
    /// `POST /users`
    CreateUser,
}

/// Why a request has no [`Route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// No such resource: 404.
    NotFound,
    /// The resource exists but not with this method: 405, with the `Allow` value.
    MethodNotAllowed(&'static str),
}

/// Maps a method and a path (no query) to a route. `HEAD` is accepted wherever `GET` is.
pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    let is_get = method == "GET" || method == "HEAD";
    match path {
        "/health" if is_get => Ok(Route::Health),
        "/health" => Err(RouteError::MethodNotAllowed("GET, HEAD")),
        "/users" if is_get => Ok(Route::ListUsers),
        "/users" if method == "POST" => Ok(Route::CreateUser),
        "/users" => Err(RouteError::MethodNotAllowed("GET, HEAD, POST")),
        _ => {
            let id = path
                .strip_prefix("/users/")
                .and_then(parse_id)
                .ok_or(RouteError::NotFound)?;
            if is_get {
                Ok(Route::GetUser(id))
            } else {
                Err(RouteError::MethodNotAllowed("GET, HEAD"))
            }
        }
    }
}

/// A user id: plain decimal digits that fit a `bigint`.
fn parse_id(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The `limit` query parameter of `GET /users`: 10 when absent, at most 100.
pub fn parse_limit(query: Option<&str>) -> Result<i64, &'static str> {
    let Some(value) = query_param(query, "limit") else {
        return Ok(DEFAULT_LIMIT);
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("limit must be a non-negative whole number");
    }
    // All digits: a parse failure is an overflow, which is over the maximum anyway.
    Ok(value.parse::<i64>().map_or(MAX_LIMIT, |n| n.min(MAX_LIMIT)))
}

/// Decides deterministically which `/users` requests fail on purpose (`FAIL_RATE`).
///
/// Request number `n` fails when `floor((n+1)·rate)` exceeds `floor(n·rate)`: exactly
/// `floor(N·rate)` of the first `N` requests fail, spread evenly (rate 0.25 fails every fourth,
/// rate 1 fails all, rate 0 none).
#[derive(Debug)]
pub struct FailInjector {
    rate: f64,
    seen: AtomicU64,
}

impl FailInjector {
    /// An injector failing `rate` (0..=1) of the calls to [`FailInjector::should_fail`].
    pub fn new(rate: f64) -> FailInjector {
        FailInjector {
            rate,
            seen: AtomicU64::new(0),
        }
    }

    /// Counts one request and says whether to fail it.
    pub fn should_fail(&self) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        fails_nth(self.rate, n)
    }
}

/// Whether request number `n` (from 0) fails at `rate`.
fn fails_nth(rate: f64, n: u64) -> bool {
    ((n + 1) as f64 * rate).floor() > (n as f64 * rate).floor()
}

/// One user as the API shows it: the name column is always under `"name"`. It is `null` when
/// the column is (e.g. a `full_name` not yet backfilled during a release).
#[derive(Debug, Serialize)]
struct User {
    id: i64,
    name: Option<String>,
}

/// The body of `POST /users`. Other fields are ignored.
#[derive(Debug, Deserialize)]
struct NewUser {
    name: String,
}

/// The SQL of each handler, built once for the configured column.
#[derive(Debug)]
struct Queries {
    list: String,
    get: String,
    insert: String,
}

impl Queries {
    fn new(column: UsersColumn) -> Queries {
        // The column name is one of two fixed identifiers (see UsersColumn::as_sql), never
        // user input, so formatting it into the SQL text is safe.
        let col = column.as_sql();
        Queries {
            list: format!("SELECT id, {col} FROM users ORDER BY id DESC LIMIT $1"),
            get: format!("SELECT id, {col} FROM users WHERE id = $1"),
            insert: format!("INSERT INTO users ({col}) VALUES ($1) RETURNING id"),
        }
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct App {
    pool: PgPool,
    /// The version announced in `X-App-Version` and `/health`.
    pub version: String,
    /// The configured name column, for the startup log line.
    pub users_column: UsersColumn,
    queries: Queries,
    failures: FailInjector,
    /// Added to every `/users` request (`DELAY_MS`).
    delay: Duration,
    /// Whether the last health check reached the database; only changes are logged.
    db_reachable: AtomicBool,
}

impl App {
    /// Builds the app with a lazily connecting pool: nothing is connected until the first
    /// request needs the database, so the app starts (and answers `/health` with 503) while
    /// PostgreSQL is still coming up, and reconnects by itself when it comes back.
    ///
    /// `acquire_timeout` bounds how long a request waits for a connection, including the
    /// retries of a connection attempt when the database is down.
    pub fn new(config: &Config, acquire_timeout: Duration) -> Arc<App> {
        let pool = PgPoolOptions::new()
            .max_connections(config.db_pool)
            .acquire_timeout(acquire_timeout)
            // Connections that have sat unused are closed, so a release's schema changes
            // meet few long-lived sessions.
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(config.database.clone());
        Arc::new(App {
            pool,
            version: config.app_version.clone(),
            users_column: config.users_column,
            queries: Queries::new(config.users_column),
            failures: FailInjector::new(config.fail_rate),
            delay: config.delay,
            db_reachable: AtomicBool::new(true),
        })
    }

    /// Closes the pool's connections (at shutdown, once no request uses them).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Answers one routed request. `query` is the target's query string, `body` the request
    /// body (empty when none was sent).
    pub async fn handle(&self, route: Route, query: Option<&str>, body: &[u8]) -> Response {
        if matches!(
            route,
            Route::ListUsers | Route::GetUser(_) | Route::CreateUser
        ) && self.failures.should_fail()
        {
            return Response::error(500, "injected failure (FAIL_RATE)");
        }
        if matches!(
            route,
            Route::ListUsers | Route::GetUser(_) | Route::CreateUser
        ) && !self.delay.is_zero()
        {
            tokio::time::sleep(self.delay).await;
        }
        match route {
            Route::Health => self.health().await,
            Route::ListUsers => match parse_limit(query) {
                Ok(limit) => self.list_users(limit).await,
                Err(message) => Response::error(400, message),
            },
            Route::GetUser(id) => self.get_user(id).await,
            Route::CreateUser => self.create_user(body).await,
        }
    }

    async fn health(&self) -> Response {
        let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool);
        let failure = match tokio::time::timeout(HEALTH_TIMEOUT, ping).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {} s", HEALTH_TIMEOUT.as_secs())),
        };
        // Log transitions only: health is polled often, and an outage would flood the log.
        let reachable = failure.is_none();
        if self.db_reachable.swap(reachable, Ordering::Relaxed) != reachable {
            match &failure {
                None => eprintln!("sample-app: database reachable again"),
                Some(why) => eprintln!("sample-app: database unreachable: {why}"),
            }
        }
        if reachable {
            Response::json(200, &json!({ "status": "ok", "version": self.version }))
        } else {
            Response::json(503, &json!({ "status": "db-unavailable" }))
        }
    }

    // The user queries are not kept as prepared statements (`persistent(false)`): during a
    // release the table's columns are added, retyped and dropped under this app, and
    // PostgreSQL refuses to run a prepared statement whose result type has changed ("cached
    // plan must not change result type"). Unnamed statements are planned afresh every time.

    async fn list_users(&self, limit: i64) -> Response {
        let rows = sqlx::query_as::<_, (i64, Option<String>)>(&self.queries.list)
            .bind(limit)
            .persistent(false)
            .fetch_all(&self.pool)
            .await;
        match rows {
            Ok(rows) => {
                let users: Vec<User> = rows
                    .into_iter()
                    .map(|(id, name)| User { id, name })
                    .collect();
                Response::json(200, &json!(users))
            }
            Err(e) => db_error("GET /users", &e),
        }
    }

    async fn get_user(&self, id: i64) -> Response {
        let row = sqlx::query_as::<_, (i64, Option<String>)>(&self.queries.get)
            .bind(id)
            .persistent(false)
            .fetch_optional(&self.pool)
            .await;
        match row {
            Ok(Some((id, name))) => Response::json(200, &json!(User { id, name })),
            Ok(None) => Response::error(404, "user not found"),
            Err(e) => db_error("GET /users/{id}", &e),
        }
    }

    async fn create_user(&self, body: &[u8]) -> Response {
        let new_user: NewUser = match serde_json::from_slice(body) {
            Ok(user) => user,
            Err(e) => {
                return Response::error(
                    400,
                    &format!("invalid JSON body, expected {{\"name\": \"...\"}}: {e}"),
                );
            }
        };
        let id = sqlx::query_scalar::<_, i64>(&self.queries.insert)
            .bind(&new_user.name)
            .persistent(false)
            .fetch_one(&self.pool)
            .await;
        match id {
            Ok(id) => Response::json(
                201,
                &json!(User {
                    id,
                    name: Some(new_user.name)
                }),
            )
            .with_header("Location", format!("/users/{id}")),
            Err(e) => db_error("POST /users", &e),
        }
    }
}

/// Logs a database error and turns it into a 500 with a short message: PostgreSQL's own
/// message for errors the server reported (e.g. a missing column during a release), a generic
/// one otherwise. sqlx's errors do not contain the connection string.
fn db_error(what: &str, error: &sqlx::Error) -> Response {
    eprintln!("sample-app: {what}: database error: {error}");
    let message = match error {
        sqlx::Error::Database(e) => format!("database error: {}", e.message()),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            "database unavailable".to_string()
        }
        _ => "database error".to_string(),
    };
    Response::error(500, &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_known_paths() {
        assert_eq!(route("GET", "/health"), Ok(Route::Health));
        assert_eq!(route("HEAD", "/health"), Ok(Route::Health));
        assert_eq!(route("GET", "/users"), Ok(Route::ListUsers));
        assert_eq!(route("POST", "/users"), Ok(Route::CreateUser));
        assert_eq!(route("GET", "/users/42"), Ok(Route::GetUser(42)));
        assert_eq!(route("GET", "/users/0"), Ok(Route::GetUser(0)));
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "/",
            "/health/",
            "/users/",
            "/users/abc",
            "/users/-1",
            "/users/+1",
            "/users/1/2",
            "/users/99999999999999999999",
            "/Users",
            "*",
        ] {
            assert_eq!(route("GET", path), Err(RouteError::NotFound), "{path}");
        }
        assert_eq!(route("DELETE", "/nope"), Err(RouteError::NotFound));
    }

    #[test]
    fn wrong_methods_are_405_with_allow() {
        assert_eq!(
            route("POST", "/health"),
            Err(RouteError::MethodNotAllowed("GET, HEAD"))
        );
        assert_eq!(
            route("DELETE", "/users"),
            Err(RouteError::MethodNotAllowed("GET, HEAD, POST"))
        );
        assert_eq!(
            route("PUT", "/users/1"),
            Err(RouteError::MethodNotAllowed("GET, HEAD"))
        );
        // Methods are case-sensitive.
        assert_eq!(
            route("get", "/health"),
            Err(RouteError::MethodNotAllowed("GET, HEAD"))
        );
    }

    #[test]
    fn limit_defaults_and_caps() {
        assert_eq!(parse_limit(None), Ok(10));
        assert_eq!(parse_limit(Some("")), Ok(10));
        assert_eq!(parse_limit(Some("other=1")), Ok(10));
        assert_eq!(parse_limit(Some("limit=3")), Ok(3));
        assert_eq!(parse_limit(Some("limit=0")), Ok(0));
        assert_eq!(parse_limit(Some("limit=100")), Ok(100));
        assert_eq!(parse_limit(Some("limit=101")), Ok(100));
        assert_eq!(parse_limit(Some("limit=99999999999999999999999")), Ok(100));
        for bad in ["limit=", "limit=-1", "limit=ten", "limit=1.5"] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn fail_injection_is_exact_and_spread() {
        let count = |rate: f64, n: u64| (0..n).filter(|&i| fails_nth(rate, i)).count();
        assert_eq!(count(0.0, 1000), 0);
        assert_eq!(count(1.0, 1000), 1000);
        assert_eq!(count(0.5, 1000), 500);
        assert_eq!(count(0.1, 1000), 100);
        assert_eq!(count(0.01, 1000), 10);
        // Every fourth request at 0.25.
        let pattern: Vec<bool> = (0..8).map(|i| fails_nth(0.25, i)).collect();
        assert_eq!(
            pattern,
            [false, false, false, true, false, false, false, true]
        );

        let always = FailInjector::new(1.0);
        assert!((0..10).all(|_| always.should_fail()));
        let never = FailInjector::new(0.0);
        assert!((0..10).all(|_| !never.should_fail()));
    }

    #[test]
    fn queries_use_the_configured_column() {
        let v1 = Queries::new(UsersColumn::Name);
        assert_eq!(
            v1.list,
            "SELECT id, name FROM users ORDER BY id DESC LIMIT $1"
        );
        assert_eq!(
            v1.insert,
            "INSERT INTO users (name) VALUES ($1) RETURNING id"
        );
        let v2 = Queries::new(UsersColumn::FullName);
        assert_eq!(v2.get, "SELECT id, full_name FROM users WHERE id = $1");
        assert_eq!(
            v2.insert,
            "INSERT INTO users (full_name) VALUES ($1) RETURNING id"
        );
    }
}
