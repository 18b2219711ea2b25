//! One keep-alive HTTP/1.1 connection and one request/response exchange on
//! it, with every way that can fail told apart.
//!
//! A [`Connection`] holds at most one TCP stream and reuses it for request
//! after request, one at a time (no pipelining). The stream is dropped, and
//! the next request opens a new one, only when the server closed it, asked for
//! it to be closed (`Connection: close`), or the exchange failed in a way that
//! leaves the stream in an unknown state (timeout, malformed response).
//!
//! Retrying is *not* done here; [`AttemptError::may_retry`] only says whether
//! the failure is one after which an idempotent request may be retried. The
//! policy lives in [`crate::run`].

use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;

use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::http::{self, Method, Parsed, Response};
use crate::summary::FailureClass;

/// Why one attempt (one request on one connection) produced no response.
#[derive(Debug)]
pub enum AttemptError {
    /// Opening the TCP connection failed.
    Connect(io::Error),
    /// The connection was closed before any response byte arrived.
    /// `retryable` is true when that was an orderly close (EOF) or a reset,
    /// the cases RFC 9112 §9.3.1 lets a client retry idempotent requests on.
    ClosedBeforeResponse {
        /// What the socket said (EOF, the OS error).
        reason: String,
        /// Whether a retry is allowed (see above).
        retryable: bool,
    },
    /// The connection was closed after `received` response bytes.
    ClosedMidResponse {
        /// Response bytes read before the close.
        received: usize,
        /// What the socket said (EOF, the OS error).
        reason: String,
    },
    /// The deadline passed; `received` response bytes had arrived by then.
    Timeout {
        /// Response bytes read before the deadline.
        received: usize,
    },
    /// The response was not valid HTTP/1.1.
    BadResponse(String),
}

impl AttemptError {
    /// The failure class this error counts under in the summary.
    pub fn class(&self) -> FailureClass {
        match self {
            AttemptError::Connect(_) => FailureClass::ConnectError,
            AttemptError::ClosedBeforeResponse { .. } => FailureClass::ClosedBeforeResponse,
            AttemptError::ClosedMidResponse { .. } => FailureClass::ClosedMidResponse,
            AttemptError::Timeout { .. } => FailureClass::Timeout,
            AttemptError::BadResponse(_) => FailureClass::BadResponse,
        }
    }

    /// Whether an idempotent request that failed this way may be sent once
    /// more on a new connection: only if the connection was closed or reset
    /// before a single response byte arrived. Anything else (a partial
    /// response, a timeout, a refused connection) is never retried.
    pub fn may_retry(&self) -> bool {
        matches!(
            self,
            AttemptError::ClosedBeforeResponse {
                retryable: true,
                ..
            }
        )
    }
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Connect(e) => write!(f, "connect failed: {e}"),
            AttemptError::ClosedBeforeResponse { reason, .. } => {
                write!(f, "connection closed before any response byte ({reason})")
            }
            AttemptError::ClosedMidResponse { received, reason } => {
                write!(
                    f,
                    "connection closed after {received} response bytes ({reason})"
                )
            }
            AttemptError::Timeout { received } => {
                write!(
                    f,
                    "no complete response before the timeout ({received} bytes received)"
                )
            }
            AttemptError::BadResponse(msg) => write!(f, "malformed response: {msg}"),
        }
    }
}

impl std::error::Error for AttemptError {}

/// I/O error kinds that mean the peer closed or reset the connection.
fn is_close(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// A keep-alive connection to one server address.
pub struct Connection {
    addr: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    opened: u64,
}

impl Connection {
    /// A connection to `addr`, sending `host` as the `Host` header. Nothing
    /// is opened until the first request.
    pub fn new(addr: SocketAddr, host: impl Into<String>) -> Connection {
        Connection {
            addr,
            host: host.into(),
            stream: None,
            buf: Vec::with_capacity(8192),
            opened: 0,
        }
    }

    /// How many TCP connections this has opened so far.
    pub fn opened(&self) -> u64 {
        self.opened
    }

    /// Whether a TCP stream is held for the next request.
    pub fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    /// Sends one request and reads its response, all before `deadline`.
    ///
    /// Uses the held stream if it is still open, otherwise opens a new one.
    /// Any complete response is `Ok`, whatever its status.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<Response, AttemptError> {
        let request = http::encode_request(method, &self.host, path, body);

        // A server may close a keep-alive connection while it is idle (nginx
        // does on reload and after keepalive_timeout). A real client notices
        // that before picking the connection for a new request, as hyper and
        // Go's net/http do, and simply opens a new one: that is not a failed
        // request. Only a close that crosses the request on the wire is.
        if self.stream.as_ref().is_some_and(closed_while_idle) {
            self.stream = None;
        }
        if self.stream.is_none() {
            let stream = match timeout_at(deadline, TcpStream::connect(self.addr)).await {
                Err(_elapsed) => return Err(AttemptError::Timeout { received: 0 }),
                Ok(Err(e)) => return Err(AttemptError::Connect(e)),
                Ok(Ok(stream)) => stream,
            };
            // Requests are small and written at once; don't let Nagle delay
            // them behind the previous response's ACK.
            stream.set_nodelay(true).map_err(AttemptError::Connect)?;
            self.opened += 1;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");

        self.buf.clear();
        let result = match timeout_at(deadline, exchange(stream, &mut self.buf, &request)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(AttemptError::Timeout {
                received: self.buf.len(),
            }),
        };
        // Keep the stream only after a complete response that allows reuse;
        // after any error its state is unknown (or it is closed).
        if !matches!(&result, Ok(response) if response.keep_alive) {
            self.stream = None;
        }
        result
    }
}

/// Writes `request` and reads one response into `buf`.
async fn exchange(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    request: &[u8],
) -> Result<Response, AttemptError> {
    // If the server already closed the connection, the write may fail
    // (EPIPE/ECONNRESET) or succeed into the kernel buffer. Either way,
    // read afterwards: a server may have sent an early response (e.g. 503)
    // before closing, and that response is what happened.
    let write_error = stream.write_all(request).await.err();

    loop {
        buf.reserve(8192);
        let n = match stream.read_buf(buf).await {
            Ok(n) => n,
            Err(e) if buf.is_empty() => {
                let reason = match &write_error {
                    Some(we) => format!("write: {we}; read: {e}"),
                    None => format!("read: {e}"),
                };
                return Err(AttemptError::ClosedBeforeResponse {
                    retryable: is_close(e.kind()),
                    reason,
                });
            }
            Err(e) => {
                return Err(AttemptError::ClosedMidResponse {
                    received: buf.len(),
                    reason: format!("read: {e}"),
                });
            }
        };
        let eof = n == 0;
        match http::parse_response(buf, eof) {
            Err(e) => return Err(AttemptError::BadResponse(e.0)),
            Ok(Parsed::Complete {
                mut response,
                consumed,
            }) => {
                // Nothing was pipelined, so bytes after the response mean the
                // stream is out of step with the requests: don't reuse it.
                if consumed < buf.len() {
                    response.keep_alive = false;
                }
                return Ok(response);
            }
            Ok(Parsed::Incomplete) if eof => {
                return Err(if buf.is_empty() {
                    let reason = match &write_error {
                        Some(we) => format!("write: {we}; then EOF"),
                        None => "EOF".to_string(),
                    };
                    AttemptError::ClosedBeforeResponse {
                        reason,
                        retryable: true,
                    }
                } else {
                    AttemptError::ClosedMidResponse {
                        received: buf.len(),
                        reason: "EOF".into(),
                    }
                });
            }
            Ok(Parsed::Incomplete) => {}
        }
    }
}

/// Whether the server closed (or reset, or wrote unsolicited bytes to) an
/// idle connection. A non-blocking `MSG_PEEK` asks the kernel directly, so
/// the answer does not depend on when the runtime last polled the socket.
fn closed_while_idle(stream: &TcpStream) -> bool {
    let mut probe = [MaybeUninit::<u8>::uninit(); 1];
    match SockRef::from(stream).peek(&mut probe) {
        // EOF: the server closed its side.
        Ok(0) => true,
        // Bytes nobody asked for (e.g. a 408 sent before closing): the
        // stream is no longer in step with our requests.
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ),
    }
}
