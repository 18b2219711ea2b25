//! `Connection` against scripted one-connection servers: each way an
//! exchange can fail is classified as documented, and the connection is
//! reused or replaced as documented.

use std::net::SocketAddr;
use std::time::Duration;

use cutover_loadgen::FailureClass;
use cutover_loadgen::client::{AttemptError, Connection};
use cutover_loadgen::http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Instant;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-App-Version: 1.0.0\r\n\r\nok";

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// Reads one request head (the tests send GETs only).
async fn read_request(s: &mut TcpStream) {
    let mut buf = Vec::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 1024];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "client closed before sending a request");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

async fn get(
    conn: &mut Connection,
    deadline: Instant,
) -> Result<cutover_loadgen::http::Response, AttemptError> {
    conn.send(Method::Get, "/", None, deadline).await
}

#[tokio::test]
async fn keep_alive_connection_is_reused() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        for _ in 0..3 {
            read_request(&mut s).await;
            s.write_all(OK).await.unwrap();
        }
    });
    let mut conn = Connection::new(addr, addr.to_string());
    for _ in 0..3 {
        let r = get(&mut conn, soon()).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        assert_eq!(r.header("X-App-Version"), Some("1.0.0"));
    }
    assert_eq!(conn.opened(), 1);
    server.await.unwrap();
}

#[tokio::test]
async fn connection_close_header_makes_the_next_request_reconnect() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            let (mut s, _) = l.accept().await.unwrap();
            read_request(&mut s).await;
            s.write_all(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: \
                  chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            )
            .await
            .unwrap();
            // Keep the socket open: the client must leave on its own.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut conn = Connection::new(addr, addr.to_string());
    for _ in 0..2 {
        let r = get(&mut conn, soon()).await.unwrap();
        assert_eq!(r.body, b"ok");
        assert!(!conn.is_open());
    }
    assert_eq!(conn.opened(), 2);
    server.await.unwrap();
}

#[tokio::test]
async fn idle_close_is_noticed_before_sending() {
    let (l, addr) = listener().await;
    let (closed_tx, closed_rx) = oneshot::channel();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s).await;
        s.write_all(OK).await.unwrap();
        drop(s); // idle close, as nginx does to keep-alive connections on reload
        closed_tx.send(()).unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s).await;
        s.write_all(OK).await.unwrap();
    });
    let mut conn = Connection::new(addr, addr.to_string());
    get(&mut conn, soon()).await.unwrap();
    closed_rx.await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await; // let the FIN land
    let r = get(&mut conn, soon())
        .await
        .expect("a new connection, no failure");
    assert_eq!(r.status, 200);
    assert_eq!(conn.opened(), 2);
    server.await.unwrap();
}

#[tokio::test]
async fn close_as_the_request_arrives_is_closed_before_response_and_retryable() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s).await;
        s.write_all(OK).await.unwrap();
        read_request(&mut s).await; // the second request arrives ...
        drop(s); // ... and the connection closes without a response
    });
    let mut conn = Connection::new(addr, addr.to_string());
    get(&mut conn, soon()).await.unwrap();
    let e = get(&mut conn, soon()).await.unwrap_err();
    assert_eq!(e.class(), FailureClass::ClosedBeforeResponse, "{e}");
    assert!(e.may_retry(), "{e}");
    assert!(!conn.is_open());
    server.await.unwrap();
}

#[tokio::test]
async fn close_after_part_of_the_response_is_closed_mid_response() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s).await;
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .unwrap();
    });
    let mut conn = Connection::new(addr, addr.to_string());
    let e = get(&mut conn, soon()).await.unwrap_err();
    assert!(
        matches!(e, AttemptError::ClosedMidResponse { received, .. } if received > 0),
        "{e}"
    );
    assert_eq!(e.class(), FailureClass::ClosedMidResponse);
    assert!(!e.may_retry());
    server.await.unwrap();
}

#[tokio::test]
async fn no_response_is_a_timeout() {
    let (l, addr) = listener().await;
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s).await;
        let _ = done_rx.await; // hold the connection open, silent
    });
    let mut conn = Connection::new(addr, addr.to_string());
    let started = Instant::now();
    let e = get(&mut conn, started + Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(e.class(), FailureClass::Timeout, "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!conn.is_open(), "a timed-out connection is not reused");
    done_tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn garbage_is_a_bad_response() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s).await;
        s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await.unwrap();
    });
    let mut conn = Connection::new(addr, addr.to_string());
    let e = get(&mut conn, soon()).await.unwrap_err();
    assert_eq!(e.class(), FailureClass::BadResponse, "{e}");
    server.await.unwrap();
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let (l, addr) = listener().await;
    drop(l);
    let mut conn = Connection::new(addr, addr.to_string());
    let e = get(&mut conn, soon()).await.unwrap_err();
    assert_eq!(e.class(), FailureClass::ConnectError, "{e}");
    assert!(!e.may_retry());
    assert_eq!(conn.opened(), 0);
}
