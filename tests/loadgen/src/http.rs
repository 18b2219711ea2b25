//! The HTTP/1.1 wire format, as far as the load generator needs it:
//! serialising a request and parsing a response from a byte buffer.
//!
//! The parser is a pure function over the bytes received so far
//! ([`parse_response`]): the connection code appends whatever the socket
//! delivers and asks again until the response is complete, the input is
//! malformed, or the peer closed the connection. Re-parsing from the start
//! on every read is quadratic in theory, but responses of the API under test
//! are a few hundred bytes and both head and body are capped
//! ([`MAX_HEAD`], [`MAX_BODY`]), which keeps the code small and obviously
//! correct.
//!
//! Supported framing (RFC 9112 §6.3): no body (1xx, 204, 304), a
//! `Content-Length` body, a `Transfer-Encoding: chunked` body (nginx uses it
//! for proxied responses without a length), and a body delimited by the
//! server closing the connection. Interim 1xx responses are skipped.

use std::fmt;

/// Largest response head (status line and headers) accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted, however it is framed.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Longest chunk-size line (size, extensions) accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 4096;

/// The request methods the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `GET`: a read.
    Get,
    /// `POST`: a write.
    Post,
}

impl Method {
    /// The method as it is sent on the request line.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }

    /// Whether the method is idempotent (RFC 9110 §9.2.2), the precondition
    /// for retrying it automatically.
    pub fn is_idempotent(self) -> bool {
        matches!(self, Method::Get)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serialises one request. `host` is the value of the `Host` header
/// (`127.0.0.1:8080`); `path` is the request target (`/users?limit=5`).
/// A body, when given, is sent as JSON with a `Content-Length`.
pub fn encode_request(method: Method, host: &str, path: &str, body: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.map_or(0, <[u8]>::len));
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\nUser-Agent: cutover-loadgen\r\nAccept: application/json\r\n");
    if let Some(body) = body {
        out.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A complete, final (non-1xx) response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code (200, 503, ...).
    pub status: u16,
    /// Header fields in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked if it was chunked.
    pub body: Vec<u8>,
    /// Whether the connection may carry another request: false after
    /// `Connection: close`, for an HTTP/1.0 response without
    /// `Connection: keep-alive`, and when the body was delimited by the close.
    pub keep_alive: bool,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What [`parse_response`] made of the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A complete response; `consumed` bytes of the buffer belong to it
    /// (including any interim 1xx responses before it).
    Complete {
        /// The parsed response.
        response: Response,
        /// Bytes of the buffer it used.
        consumed: usize,
    },
}

/// The response violates HTTP/1.1 or the size limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn bad<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

/// How the body of a response is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    NoBody,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Parses the response at the start of `buf`. `eof` says the peer has closed
/// its side, which completes a body delimited by the close; for any other
/// framing, an `Incomplete` result with `eof` set means the response was cut
/// short.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Parsed, ParseError> {
    let mut start = 0;
    loop {
        let rest = &buf[start..];
        let Some(head_len) = find(rest, b"\r\n\r\n") else {
            if rest.len() > MAX_HEAD {
                return bad(format!("response head longer than {MAX_HEAD} bytes"));
            }
            return Ok(Parsed::Incomplete);
        };
        if head_len > MAX_HEAD {
            return bad(format!("response head longer than {MAX_HEAD} bytes"));
        }
        let head = parse_head(&rest[..head_len])?;
        let body_start = start + head_len + 4;

        // Interim responses (100 Continue, 103 Early Hints) carry no body and
        // precede the final response on the same connection.
        if (100..200).contains(&head.status) {
            if head.status == 101 {
                return bad("unexpected 101 Switching Protocols");
            }
            start = body_start;
            continue;
        }

        let framing = head.framing()?;
        let mut keep_alive = head.keep_alive();
        let body_bytes = &buf[body_start..];
        let (body, consumed) = match framing {
            Framing::NoBody => (Vec::new(), body_start),
            Framing::Length(n) => {
                if body_bytes.len() < n {
                    return Ok(Parsed::Incomplete);
                }
                (body_bytes[..n].to_vec(), body_start + n)
            }
            Framing::Chunked => match decode_chunked(body_bytes)? {
                Some((body, used)) => (body, body_start + used),
                None => return Ok(Parsed::Incomplete),
            },
            Framing::UntilClose => {
                if body_bytes.len() > MAX_BODY {
                    return bad(format!("response body longer than {MAX_BODY} bytes"));
                }
                if !eof {
                    return Ok(Parsed::Incomplete);
                }
                keep_alive = false;
                (body_bytes.to_vec(), buf.len())
            }
        };
        let response = Response {
            status: head.status,
            headers: head.headers,
            body,
            keep_alive,
        };
        return Ok(Parsed::Complete { response, consumed });
    }
}

/// Status line and header fields of one response.
struct Head {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    minor: u8,
    status: u16,
    headers: Vec<(String, String)>,
}

fn parse_head(bytes: &[u8]) -> Result<Head, ParseError> {
    // Header values are ASCII in practice; tolerate stray obs-text bytes
    // rather than failing on them, the framing headers are ASCII anyway.
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();

    let (version, rest) = status_line
        .split_once(' ')
        .ok_or_else(|| ParseError(format!("malformed status line {status_line:?}")))?;
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => {
            return bad(format!(
                "unsupported protocol version in status line {status_line:?}"
            ));
        }
    };
    let code = rest.get(..3).unwrap_or(rest);
    let after = rest.get(3..).unwrap_or("");
    if code.len() != 3
        || !code.bytes().all(|b| b.is_ascii_digit())
        || !(after.is_empty() || after.starts_with(' '))
    {
        return bad(format!(
            "malformed status code in status line {status_line:?}"
        ));
    }
    let status: u16 = code.parse().expect("three ASCII digits");
    if status < 100 {
        return bad(format!("status code {status} out of range"));
    }

    let mut headers = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // RFC 9112 §5.2: obsolete line folding in a response may be
            // rejected; nothing under test sends it.
            return bad("obsolete header line folding");
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ParseError(format!("malformed header line {line:?}")))?;
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return bad(format!("malformed header name in {line:?}"));
        }
        headers.push((
            name.to_string(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
    Ok(Head {
        minor,
        status,
        headers,
    })
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The comma-separated tokens of all `name` fields, lower-cased.
    fn tokens(&self, name: &str) -> Vec<String> {
        self.values(name)
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }

    fn framing(&self) -> Result<Framing, ParseError> {
        if self.status == 204 || self.status == 304 {
            return Ok(Framing::NoBody);
        }
        let codings = self.tokens("transfer-encoding");
        if !codings.is_empty() {
            // Chunked must be the final coding; any other final coding means
            // the body runs until the connection closes (RFC 9112 §6.3 item 4).
            return Ok(if codings.last().map(String::as_str) == Some("chunked") {
                Framing::Chunked
            } else {
                Framing::UntilClose
            });
        }
        let lengths = self.tokens("content-length");
        if let Some(first) = lengths.first() {
            // A repeated field or a list of identical values is acceptable;
            // differing values are not (RFC 9112 §6.3 item 5).
            if lengths.iter().any(|l| l != first) {
                return bad(format!("conflicting Content-Length values {lengths:?}"));
            }
            if !first.bytes().all(|b| b.is_ascii_digit()) {
                return bad(format!("invalid Content-Length {first:?}"));
            }
            let n: usize = first
                .parse()
                .map_err(|_| ParseError(format!("invalid Content-Length {first:?}")))?;
            if n > MAX_BODY {
                return bad(format!("Content-Length {n} exceeds {MAX_BODY} bytes"));
            }
            return Ok(Framing::Length(n));
        }
        Ok(Framing::UntilClose)
    }

    fn keep_alive(&self) -> bool {
        let connection = self.tokens("connection");
        let framed_by_both = self.values("transfer-encoding").next().is_some()
            && self.values("content-length").next().is_some();
        if framed_by_both {
            // RFC 9112 §6.1: such a message may be an attempt at request
            // smuggling; the connection must not be reused.
            return false;
        }
        if self.minor == 0 {
            connection.iter().any(|t| t == "keep-alive")
        } else {
            !connection.iter().any(|t| t == "close")
        }
    }
}

/// Decodes a chunked body at the start of `buf`. Returns the body and the
/// number of bytes used (up to and including the final CRLF after the
/// trailer section), or `None` if more bytes are needed.
fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ParseError> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(line_len) = find(&buf[pos..], b"\r\n") else {
            if buf.len() - pos > MAX_CHUNK_LINE {
                return bad("chunk size line too long");
            }
            return Ok(None);
        };
        let line = &buf[pos..pos + line_len];
        // chunk-size [ BWS ; chunk-ext ]: the extension is ignored.
        let size_field = line.split(|&b| b == b';').next().unwrap_or_default();
        let size_field = std::str::from_utf8(size_field)
            .map_err(|_| ParseError("chunk size is not ASCII".into()))?
            .trim_matches([' ', '\t']);
        if size_field.is_empty()
            || size_field.len() > 15
            || !size_field.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return bad(format!("invalid chunk size {size_field:?}"));
        }
        let size = usize::from_str_radix(size_field, 16).expect("checked hex digits");
        pos += line_len + 2;

        if size == 0 {
            // Last chunk: skip trailer fields up to the empty line.
            loop {
                let Some(len) = find(&buf[pos..], b"\r\n") else {
                    if buf.len() - pos > MAX_HEAD {
                        return bad("chunked trailer section too long");
                    }
                    return Ok(None);
                };
                pos += len + 2;
                if len == 0 {
                    return Ok(Some((body, pos)));
                }
            }
        }

        if body.len() + size > MAX_BODY {
            return bad(format!("chunked body longer than {MAX_BODY} bytes"));
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return bad("chunk data not followed by CRLF");
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(bytes: &[u8]) -> (Response, usize) {
        match parse_response(bytes, false).expect("valid response") {
            Parsed::Complete { response, consumed } => (response, consumed),
            Parsed::Incomplete => panic!("incomplete: {:?}", String::from_utf8_lossy(bytes)),
        }
    }

    /// Feeds `bytes` one byte at a time: every proper prefix must be
    /// `Incomplete` and the whole must parse to the same as parsing at once.
    fn assert_incremental(bytes: &[u8]) {
        for end in 0..bytes.len() {
            assert_eq!(
                parse_response(&bytes[..end], false),
                Ok(Parsed::Incomplete),
                "prefix of {end} bytes"
            );
        }
        complete(bytes);
    }

    #[test]
    fn request_get_has_host_and_no_body() {
        let req = encode_request(Method::Get, "127.0.0.1:8080", "/users?limit=5", None);
        let text = String::from_utf8(req).unwrap();
        assert!(text.starts_with("GET /users?limit=5 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        assert!(!text.contains("Content-Length"));
    }

    #[test]
    fn request_post_has_content_length_and_body() {
        let body = br#"{"name":"lg-x-1"}"#;
        let req = encode_request(Method::Post, "localhost:1", "/users", Some(body));
        let text = String::from_utf8(req).unwrap();
        assert!(text.starts_with("POST /users HTTP/1.1\r\nHost: localhost:1\r\n"));
        assert!(text.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(text.ends_with("\r\n\r\n{\"name\":\"lg-x-1\"}"));
    }

    #[test]
    fn content_length_body() {
        let raw = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-App-Version: \
                    1.2.0\r\nContent-Length: 8\r\n\r\n{\"id\":7}";
        let (resp, consumed) = complete(raw);
        assert_eq!(resp.status, 201);
        assert_eq!(resp.body, b"{\"id\":7}");
        assert_eq!(resp.header("x-app-version"), Some("1.2.0"));
        assert!(resp.keep_alive);
        assert_eq!(consumed, raw.len());
        assert_incremental(raw);
    }

    #[test]
    fn bytes_after_the_response_are_not_consumed() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1";
        let (resp, consumed) = complete(raw);
        assert_eq!(resp.body, b"ok");
        assert_eq!(consumed, raw.len() - "HTTP/1.1".len());
    }

    #[test]
    fn chunked_body_with_extension_and_trailer() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: \
                    chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n \
                    in\r\n\r\nchunks.\r\n0\r\nX-Trailer: yes\r\n\r\n";
        let (resp, consumed) = complete(raw);
        assert_eq!(resp.body, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(consumed, raw.len());
        assert!(resp.keep_alive);
        assert_incremental(raw);
    }

    #[test]
    fn chunked_empty_body_and_uppercase_hex() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, \
                    Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n";
        let (resp, _) = complete(raw);
        assert_eq!(resp.body, b"0123456789");
        let (resp, _) = complete(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
        assert!(resp.body.is_empty());
    }

    #[test]
    fn chunked_errors() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+4\r\nWiki\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        ] {
            assert!(
                parse_response(raw, false).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn connection_close_is_honoured() {
        let (resp, _) =
            complete(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert!(!resp.keep_alive);
        let (resp, _) = complete(
            b"HTTP/1.1 200 OK\r\nconnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(!resp.keep_alive);
        // HTTP/1.0 closes unless it says keep-alive.
        let (resp, _) = complete(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(!resp.keep_alive);
        let (resp, _) =
            complete(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(resp.keep_alive);
        // Both Transfer-Encoding and Content-Length: never reuse.
        let (resp, _) = complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        );
        assert!(!resp.keep_alive);
    }

    #[test]
    fn body_until_close() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello";
        assert_eq!(parse_response(raw, false), Ok(Parsed::Incomplete));
        match parse_response(raw, true).unwrap() {
            Parsed::Complete { response, consumed } => {
                assert_eq!(response.body, b"hello");
                assert!(!response.keep_alive);
                assert_eq!(consumed, raw.len());
            }
            Parsed::Incomplete => panic!("the close completes the body"),
        }
    }

    #[test]
    fn cut_short_stays_incomplete_at_eof() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(parse_response(raw, true), Ok(Parsed::Incomplete));
        assert_eq!(
            parse_response(b"HTTP/1.1 200 O", true),
            Ok(Parsed::Incomplete)
        );
    }

    #[test]
    fn no_body_statuses_and_interim_responses() {
        let (resp, _) = complete(b"HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(resp.status, 204);
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: \
                    </a>\r\n\r\nHTTP/1.1 500 Internal Server Error\r\nContent-Length: 1\r\n\r\nx";
        let (resp, consumed) = complete(raw);
        assert_eq!(resp.status, 500);
        assert_eq!(resp.body, b"x");
        assert_eq!(consumed, raw.len());
        assert_incremental(raw);
    }

    #[test]
    fn status_line_without_reason_phrase() {
        let (resp, _) = complete(b"HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(resp.status, 503);
    }

    #[test]
    fn malformed_responses_are_errors() {
        for raw in [
            &b"SSH-2.0-OpenSSH_9.6\r\n\r\n"[..],
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 20x OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        ] {
            assert!(
                parse_response(raw, false).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        // Identical repeated lengths are fine.
        let (resp, _) = complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nab");
        assert_eq!(resp.body, b"ab");
    }

    #[test]
    fn oversized_head_is_an_error() {
        let mut raw = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        raw.resize(MAX_HEAD + 10, b'a');
        assert!(parse_response(&raw, false).is_err());
    }
}
