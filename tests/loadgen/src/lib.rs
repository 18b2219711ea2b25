//! `cutover-loadgen`: load for end-to-end tests and benchmarks of
//! zero-downtime releases through a reverse proxy (nginx, HAProxy) in front
//! of a small HTTP API.
//!
//! The point of the tool is that "zero failed requests" means zero: a
//! release that drops, cuts or refuses a single request a real client would
//! have seen as an error must show up as a failure. So the client behaves
//! like a well-behaved service client and nothing more forgiving:
//!
//! # Connections
//!
//! A fixed pool of keep-alive HTTP/1.1 connections (`--connections`). Each
//! sends one request at a time (no pipelining) and reuses its TCP connection
//! until the server closes it or answers with `Connection: close`; only then
//! is a new one opened. Before reusing an idle connection the client checks
//! whether the server closed it meanwhile (as nginx does to idle keep-alive
//! connections on reload) and, if so, opens a new one without counting
//! anything: that is what hyper or Go's `net/http` do, and no request was
//! lost. See [`client`].
//!
//! # Retries
//!
//! A GET is retried **once**, on a new connection, when its connection was
//! closed (EOF or reset) before **any** byte of the response arrived. RFC
//! 9112 §9.3.1 allows exactly that for idempotent requests: a keep-alive
//! connection can be closed by the server at the moment the client sends on
//! it, the client cannot tell whether the request was processed, and
//! repeating an idempotent request is harmless. Every mainstream HTTP client
//! does this retry, so such a close is invisible to real users of GETs. It
//! is still counted (`retries`, `retried_ok`, outcome `retry_ok` in the
//! timeline) so a test can insist on zero of those too.
//!
//! A POST is **never** retried: the server may have committed the write
//! before the connection closed, so repeating it could write twice and not
//! repeating it loses it; a real client would have to report an error. Any
//! failure of a POST is a failure.
//!
//! Nothing else is retried either: not a response cut off after its first
//! byte, not a timeout, not a refused connection, not a 5xx.
//!
//! # Failures
//!
//! Every request that did not end in a 2xx response is a failure of one
//! [`summary::FailureClass`]: connect error, closed before response, closed
//! mid-response, timeout (`--timeout`, default 5 s per request including its
//! retry), HTTP 5xx, other non-2xx status, malformed response. Counts are
//! kept per method and the first failure is described in words.
//!
//! # Pacing
//!
//! `--rate` is the total request rate. Slots are `1/rate` apart and dealt
//! round-robin to the connections, so each connection's requests are
//! `connections/rate` apart and the connections are staggered. The schedule
//! is open-loop (fixed in advance, not relative to the previous response).
//! A connection still busy at its next slot sends as soon as it is free; if
//! it fell behind by more than one slot it skips the older missed slots and
//! counts them as `late` instead of bursting to catch up.
//!
//! # Writes
//!
//! A `--write-ratio` fraction of slots, spread evenly, are `POST
//! --write-path` with body `{"name":"lg-<run nonce>-<slot>"}`. A write is
//! acknowledged when a 2xx response arrived; acknowledged writes are listed
//! in the summary with the `"id"` of the JSON response, so a test can check
//! that every acknowledged write survived the release.
//!
//! # Live figures
//!
//! With `--progress`, a line per second on stderr: requests and failures
//! by class so far, and how the last second's responses split between
//! versions (see [`progress`]).
//!
//! The binary (`loadgen`) only parses arguments and handles signals; the
//! work is [`run::run`], and [`Summary`] is the type of its `--out` file.

#![warn(missing_docs)]

pub mod client;
pub mod http;
pub mod progress;
pub mod run;
pub mod summary;
pub mod target;

pub use run::{Config, run};
pub use summary::{AckedWrite, ByMethod, FailureClass, Latency, MethodStats, Summary};
