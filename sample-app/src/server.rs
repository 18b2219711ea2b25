//! The HTTP/1.1 server: hyper's connections over tokio's `TcpListener`, the request handling
//! around [`App`], and the graceful shutdown that zero-downtime releases depend on.
//!
//! hyper parses and frames requests (`Content-Length` or chunked bodies), keeps connections
//! alive, answers `Expect: 100-continue` when a body is read, adds `Date`, and answers a
//! malformed request with 400 and a head over [`MAX_HEAD`] bytes with 431, then closes. This
//! module refuses bodies over [`MAX_BODY`] bytes with 413 and bodies not received within
//! [`REQUEST_TIMEOUT`] with 408, closing the connection after either.
//!
//! Shutdown, once the `shutdown` future given to [`run`] completes (SIGTERM or SIGINT):
//! 1. the listening socket is closed at once: new connections are refused, so a load balancer
//!    or client moves on to the other instance;
//! 2. idle connections are closed: those waiting between keep-alive requests and those that
//!    have not sent a byte yet (hyper-util's [`GracefulShutdown`] asks hyper to);
//! 3. requests being received or handled are finished, and their responses carry
//!    `Connection: close`, after which the connection is closed;
//! 4. [`run`] returns when every connection is done, or [`DRAIN_TIMEOUT`] after the signal
//!    at the latest.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response as HyperResponse};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};

use crate::app::{App, RouteError, route};
use crate::http::Response;

/// The largest request line plus headers accepted (431 beyond).
pub const MAX_HEAD: usize = 16 * 1024;
/// The largest request body accepted (413 beyond).
pub const MAX_BODY: usize = 64 * 1024;
/// How long shutdown waits for open connections before giving up on them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection has to complete its next request's head (hyper's header read
/// timeout): counted from the connection's start, then from the end of each response. An idle
/// keep-alive connection is thus closed after it, as is one that sends a head too slowly.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client has to send a request's body once its head has arrived (408 beyond).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves connections from `listener` until `shutdown` completes, then drains them (see the
/// module documentation) and closes the database pool.
pub async fn run(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT)
        .max_header_size(MAX_HEAD);
    let server = Arc::new(Server {
        http,
        version: HeaderValue::from_str(&app.version)
            .expect("APP_VERSION is checked to be printable ASCII"),
        app,
    });
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Responses are written in one piece; no reason to delay them.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, server.clone(), graceful.watcher()));
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    eprintln!("sample-app: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections as they end, so the set does not grow forever.
            Some(finished) = connections.join_next() => log_panic(finished),
        }
    }

    let deadline = Instant::now() + DRAIN_TIMEOUT;
    drop(listener);
    eprintln!(
        "sample-app: stopped accepting connections, draining {} open connection(s)",
        connections.len()
    );
    let drain = async {
        // Tells every connection to finish (idle ones, including those that have not sent a
        // byte yet, close at once), then waits for all of them to end.
        graceful.shutdown().await;
        while let Some(finished) = connections.join_next().await {
            log_panic(finished);
        }
    };
    if timeout_at(deadline, drain).await.is_err() {
        eprintln!(
            "sample-app: {} connection(s) still open after {} s, closing them",
            connections.len(),
            DRAIN_TIMEOUT.as_secs()
        );
        connections.abort_all();
    }
    // No request uses the pool any more (or the deadline has passed and it does not matter).
    let _ = timeout_at(deadline, server.app.close()).await;
}

/// What every connection shares.
struct Server {
    http: http1::Builder,
    app: Arc<App>,
    /// `X-App-Version`, checked once.
    version: HeaderValue,
}

/// Reports a connection task that panicked (a bug); normal ends are silent.
fn log_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(e) = finished
        && e.is_panic()
    {
        eprintln!("sample-app: connection handler panicked: {e}");
    }
}

/// Serves requests on one connection until either side closes it.
async fn serve_connection(stream: TcpStream, server: Arc<Server>, watcher: Watcher) {
    let service = service_fn(|request| {
        let server = server.clone();
        async move { Ok::<_, Infallible>(respond(&server, request).await) }
    });
    let connection = server.http.serve_connection(TokioIo::new(stream), service);
    // An error here is the client's (a reset, a malformed request hyper has answered, a head
    // that took too long): the connection is over either way.
    let _ = watcher.watch(connection).await;
}

/// Routes a request, reads its body and runs its handler.
async fn respond(server: &Server, request: Request<Incoming>) -> HyperResponse<Full<Bytes>> {
    let response = match route(request.method().as_str(), request.uri().path()) {
        Ok(route) => {
            let query = request.uri().query().map(str::to_owned);
            match read_body(request.into_body()).await {
                Ok(body) => server.app.handle(route, query.as_deref(), &body).await,
                Err(refused) => refused,
            }
        }
        Err(RouteError::NotFound) => Response::error(404, "not found"),
        Err(RouteError::MethodNotAllowed(allow)) => {
            Response::error(405, "method not allowed").with_header("Allow", allow.to_string())
        }
    };
    response.into_hyper(&server.version)
}

/// The whole body of a request, at most [`MAX_BODY`] bytes, within [`REQUEST_TIMEOUT`]; or the
/// response refusing it, after which the connection is closed (the rest of the body is unread).
async fn read_body(body: Incoming) -> Result<Bytes, Response> {
    // A declared length over the limit is refused before reading, and before `100 Continue`.
    if body.size_hint().lower() > MAX_BODY as u64 {
        return Err(Response::closing_error(413, "request body too large"));
    }
    match timeout(REQUEST_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            Err(Response::closing_error(413, "request body too large"))
        }
        Ok(Err(_)) => Err(Response::closing_error(
            400,
            "request body could not be read",
        )),
        Err(_) => Err(Response::closing_error(408, "request not received in time")),
    }
}

#[cfg(test)]
mod tests {
    //! End-to-end tests of the connection handling over real sockets. No database: the pool
    //! points at a closed port, `/users` is failed by `FAIL_RATE=1`, and `/health` reports
    //! the database unavailable.

    use super::*;
    use crate::config::Config;
    use std::ffi::OsString;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    struct TestServer {
        addr: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<()>,
    }

    async fn start() -> TestServer {
        let config = Config::from_lookup(|key| {
            let value = match key {
                // Port 1 on loopback: nothing listens there, connections are refused at once.
                "DATABASE_URL" => "postgres://app:secret@127.0.0.1:1/app",
                "APP_VERSION" => "test-1",
                "FAIL_RATE" => "1",
                _ => return None,
            };
            Some(OsString::from(value))
        })
        .unwrap();
        let app = App::new(&config, Duration::from_millis(300));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, app, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// A parsed response: status, headers (names lowercased) and body.
    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Reads one response (framed by Content-Length) from `stream`; `pending` keeps bytes
    /// read past it. `head_only` for responses to HEAD.
    async fn read_reply(stream: &mut TcpStream, pending: &mut Vec<u8>, head_only: bool) -> Reply {
        let head_end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = timeout(Duration::from_secs(10), stream.read(&mut chunk))
                .await
                .expect("response in time")
                .unwrap();
            assert!(n > 0, "connection closed before a response: {pending:?}");
            pending.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(pending[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_ascii_lowercase(), v.to_string())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .expect("Content-Length on every response")
            .1
            .parse()
            .unwrap();
        let body_len = if head_only { 0 } else { length };
        while pending.len() < head_end + body_len {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed inside a body");
            pending.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8(pending[head_end..head_end + body_len].to_vec()).unwrap();
        pending.drain(..head_end + body_len);
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn assert_closed(stream: &mut TcpStream) {
        let mut rest = Vec::new();
        let read = timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("server closes in time");
        // A reset also counts as closed.
        if let Ok(n) = read {
            assert_eq!(
                n,
                0,
                "unexpected bytes: {:?}",
                String::from_utf8_lossy(&rest)
            );
        }
    }

    async fn exchange(stream: &mut TcpStream, pending: &mut Vec<u8>, request: &str) -> Reply {
        stream.write_all(request.as_bytes()).await.unwrap();
        read_reply(stream, pending, request.starts_with("HEAD ")).await
    }

    #[tokio::test]
    async fn keep_alive_serves_several_requests_then_honours_close() {
        let server = start().await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let mut pending = Vec::new();

        let reply = exchange(
            &mut stream,
            &mut pending,
            "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.header("x-app-version"), Some("test-1"));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("connection"), None);
        assert!(reply.header("date").unwrap().ends_with(" GMT"));

        let reply = exchange(&mut stream, &mut pending, "DELETE /users HTTP/1.1\r\n\r\n").await;
        assert_eq!(reply.status, 405);
        assert_eq!(reply.header("allow"), Some("GET, HEAD, POST"));

        // FAIL_RATE=1: every /users request fails without touching the database.
        let reply = exchange(
            &mut stream,
            &mut pending,
            "GET /users?limit=3 HTTP/1.1\r\n\r\n",
        )
        .await;
        assert_eq!(reply.status, 500);
        assert!(reply.body.contains("FAIL_RATE"), "{}", reply.body);
        let post = "POST /users HTTP/1.1\r\nContent-Length: 15\r\n\r\n{\"name\":\"Ada\"}\n";
        assert_eq!(exchange(&mut stream, &mut pending, post).await.status, 500);

        // Pipelined: both answered, in order.
        stream
            .write_all(b"GET /a HTTP/1.1\r\n\r\nPUT /users/7 HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            read_reply(&mut stream, &mut pending, false).await.status,
            404
        );
        assert_eq!(
            read_reply(&mut stream, &mut pending, false).await.status,
            405
        );

        let reply = exchange(
            &mut stream,
            &mut pending,
            "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.header("connection"), Some("close"));
        assert_closed(&mut stream).await;
    }

    #[tokio::test]
    async fn http10_closes_unless_asked_to_keep_alive() {
        let server = start().await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let mut pending = Vec::new();
        let reply = exchange(
            &mut stream,
            &mut pending,
            "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        )
        .await;
        assert_eq!(reply.header("connection"), Some("keep-alive"));
        // Without keep-alive an HTTP/1.0 response closes the connection; no header needed.
        let reply = exchange(&mut stream, &mut pending, "GET /x HTTP/1.0\r\n\r\n").await;
        assert_eq!(reply.status, 404);
        assert_ne!(reply.header("connection"), Some("keep-alive"));
        assert_closed(&mut stream).await;
        drop(server);
    }

    #[tokio::test]
    async fn health_reports_an_unreachable_database() {
        let server = start().await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let mut pending = Vec::new();
        let reply = exchange(&mut stream, &mut pending, "GET /health HTTP/1.1\r\n\r\n").await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body, r#"{"status":"db-unavailable"}"#);
        // HEAD: same headers, no body; the connection stays usable.
        let reply = exchange(&mut stream, &mut pending, "HEAD /health HTTP/1.1\r\n\r\n").await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("content-length"), Some("27"));
        assert_eq!(reply.body, "");
        let reply = exchange(&mut stream, &mut pending, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert_eq!(reply.status, 404);
    }

    #[tokio::test]
    async fn protocol_errors_are_answered_then_closed() {
        let server = start().await;
        let cases = [
            ("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n".to_string(), 400),
            ("GET / HTTP/3.0\r\n\r\n".to_string(), 400),
            ("GET /\r\n\r\n".to_string(), 400),
            (
                "POST /users HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
                    .to_string(),
                400,
            ),
            (
                format!(
                    "POST /users HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                    MAX_BODY + 1
                ),
                413,
            ),
            (
                format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD)),
                431,
            ),
        ];
        for (request, status) in cases {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let reply = read_reply(&mut stream, &mut Vec::new(), false).await;
            assert_eq!(reply.status, status, "{request:?}: {reply:?}");
            assert_closed(&mut stream).await;
        }
    }

    #[tokio::test]
    async fn refused_bodies_get_json_errors_then_close() {
        let server = start().await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "POST /users HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let reply = read_reply(&mut stream, &mut Vec::new(), false).await;
        assert_eq!(reply.status, 413);
        assert_eq!(reply.body, r#"{"error":"request body too large"}"#);
        assert_eq!(reply.header("x-app-version"), Some("test-1"));
        assert_eq!(reply.header("connection"), Some("close"));
        assert_closed(&mut stream).await;

        // A chunked body is read, up to the same limit.
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let chunk = "a".repeat(MAX_BODY / 2 + 1);
        let request = format!(
            "POST /users HTTP/1.1\r\nTransfer-Encoding: \
             chunked\r\n\r\n{len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
            len = chunk.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let reply = read_reply(&mut stream, &mut Vec::new(), false).await;
        assert_eq!(reply.status, 413);
        assert_eq!(reply.header("connection"), Some("close"));
        assert_closed(&mut stream).await;
    }

    #[tokio::test]
    async fn chunked_bodies_within_the_limit_are_served() {
        let server = start().await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let mut pending = Vec::new();
        // FAIL_RATE=1 answers 500 once the body has been read; the connection stays usable.
        let post = "POST /users HTTP/1.1\r\nTransfer-Encoding: \
                    chunked\r\n\r\n6\r\n{\"name\r\n8\r\n\":\"Ada\"}\r\n0\r\n\r\n";
        let reply = exchange(&mut stream, &mut pending, post).await;
        assert_eq!(reply.status, 500);
        assert_eq!(reply.header("connection"), None);
        let reply = exchange(&mut stream, &mut pending, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert_eq!(reply.status, 404);
    }

    #[tokio::test]
    async fn expect_continue_gets_an_interim_response() {
        let server = start().await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"POST /users HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
            .await
            .unwrap();
        let mut pending = Vec::new();
        let interim = read_reply_raw_head(&mut stream, &mut pending).await;
        assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
        stream.write_all(b"{}").await.unwrap();
        assert_eq!(
            read_reply(&mut stream, &mut pending, false).await.status,
            500
        );
    }

    /// Reads up to the end of the next head, without interpreting it.
    async fn read_reply_raw_head(stream: &mut TcpStream, pending: &mut Vec<u8>) -> String {
        loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = pending.drain(..i + 4).collect();
                return String::from_utf8(head).unwrap();
            }
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            pending.extend_from_slice(&chunk[..n]);
        }
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_finishes_started_requests() {
        let mut server = start().await;

        // One idle keep-alive connection, one in the middle of sending a request.
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        let mut pending = Vec::new();
        assert_eq!(
            exchange(&mut idle, &mut pending, "GET /x HTTP/1.1\r\n\r\n")
                .await
                .status,
            404
        );
        let mut busy = TcpStream::connect(server.addr).await.unwrap();
        busy.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;

        server.stop.take().unwrap().send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;

        // The idle connection is closed; new connections are refused.
        assert_closed(&mut idle).await;
        assert!(TcpStream::connect(server.addr).await.is_err());

        // The started request is answered, with Connection: close, and then closed.
        busy.write_all(b"\r\n").await.unwrap();
        let reply = read_reply(&mut busy, &mut Vec::new(), false).await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.header("connection"), Some("close"));
        assert_closed(&mut busy).await;

        // With every connection done, the server stops well before the drain timeout.
        timeout(Duration::from_secs(3), &mut server.task)
            .await
            .expect("server stops once drained")
            .unwrap();
    }

    #[tokio::test]
    async fn shutdown_closes_connections_that_sent_nothing_yet() {
        let mut server = start().await;
        let mut silent = TcpStream::connect(server.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.stop.take().unwrap().send(()).unwrap();
        assert_closed(&mut silent).await;
        timeout(Duration::from_secs(3), &mut server.task)
            .await
            .expect("server stops without waiting for the silent connection")
            .unwrap();
    }

    #[tokio::test]
    async fn shutdown_gives_up_on_stuck_connections_after_the_drain_timeout() {
        let mut server = start().await;
        // A request that never completes (its head never ends).
        let mut stuck = TcpStream::connect(server.addr).await.unwrap();
        stuck.write_all(b"GET /x HTTP/1.1\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;

        let started = Instant::now();
        server.stop.take().unwrap().send(()).unwrap();
        timeout(DRAIN_TIMEOUT + Duration::from_secs(2), &mut server.task)
            .await
            .expect("server stops by the drain timeout")
            .unwrap();
        let took = started.elapsed();
        assert!(
            took >= DRAIN_TIMEOUT - Duration::from_millis(100),
            "{took:?}"
        );
        assert_closed(&mut stuck).await;
    }
}
