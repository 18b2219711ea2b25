//! The HTTP/1.1 wire format, as far as this app needs it: pure functions over bytes, no I/O.
//!
//! [`parse_head`] turns the bytes received so far into a [`RequestHead`] (request line and
//! headers), [`RequestHead::body_length`] decides how the body is framed, and
//! [`serialize_response`] writes a [`Response`] back. The connection loop in `server` does the
//! reading and writing around them.
//!
//! Deliberate limits, all answered with a status code and a closed connection:
//! - the head (request line and headers) is at most `max_head` bytes: 431;
//! - request bodies are framed by `Content-Length` only; any `Transfer-Encoding` (chunked
//!   uploads) is refused with 411, since the body could not be delimited otherwise;
//! - bodies are at most `max_body` bytes: 413;
//! - obsolete header line folding, whitespace before a header's colon, control characters and
//!   conflicting `Content-Length` headers are refused with 400 (they are the usual ways to smuggle
//!   a request past a proxy).
//!
//! Lines may end with CRLF or a bare LF (RFC 9112 §2.2 allows recipients to accept the latter).

use std::time::{SystemTime, UNIX_EPOCH};

/// The HTTP versions this server speaks. Responses always carry `HTTP/1.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: connections close after each response unless the client asks otherwise.
    Http10,
    /// HTTP/1.1: connections stay open unless either side says `Connection: close`.
    Http11,
}

/// A request that cannot be served, with the status code that says why.
///
/// After any of these the connection is closed: the server no longer knows where the next
/// request would start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed request line or headers (400).
    BadRequest(&'static str),
    /// The client took too long to send a whole request (408).
    Timeout,
    /// A body without `Content-Length`, i.e. `Transfer-Encoding` (411).
    LengthRequired,
    /// The body is larger than the limit (413).
    PayloadTooLarge,
    /// The request line and headers are larger than the limit (431).
    HeaderTooLarge,
    /// An HTTP version other than 1.0 and 1.1 (505).
    VersionNotSupported,
}

impl HttpError {
    /// The status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::Timeout => 408,
            HttpError::LengthRequired => 411,
            HttpError::PayloadTooLarge => 413,
            HttpError::HeaderTooLarge => 431,
            HttpError::VersionNotSupported => 505,
        }
    }

    /// A short human-readable explanation, sent in the JSON error body.
    pub fn message(&self) -> &'static str {
        match self {
            HttpError::BadRequest(why) => why,
            HttpError::Timeout => "request not received in time",
            HttpError::LengthRequired => {
                "request bodies must be sent with Content-Length (Transfer-Encoding is not supported)"
            }
            HttpError::PayloadTooLarge => "request body too large",
            HttpError::HeaderTooLarge => "request header fields too large",
            HttpError::VersionNotSupported => "only HTTP/1.0 and HTTP/1.1 are supported",
        }
    }
}

/// The request line and headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, case-sensitive as sent (`GET`, `POST`, ...).
    pub method: String,
    /// The request target as sent: usually origin-form (`/users?limit=5`).
    pub target: String,
    /// The protocol version of the request.
    pub version: Version,
    /// Header fields in the order received; names keep their case, look them up with
    /// [`RequestHead::header`], which ignores case.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first value of header `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).next()
    }

    /// Every value of header `name` (case-insensitive), in the order received.
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the comma-separated list header `name` contains `token` (case-insensitive),
    /// across all its occurrences: `Connection: keep-alive, Close` contains `close`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the client is willing to send another request on this connection: HTTP/1.1
    /// unless it said `Connection: close`, HTTP/1.0 only if it said `Connection: keep-alive`.
    pub fn wants_keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.has_token("connection", "close"),
            Version::Http10 => {
                self.has_token("connection", "keep-alive") && !self.has_token("connection", "close")
            }
        }
    }

    /// Whether the client waits for `100 Continue` before sending the body (curl does this for
    /// bodies over 1 KiB). Only meaningful for HTTP/1.1.
    pub fn expects_continue(&self) -> bool {
        self.version == Version::Http11 && self.has_token("expect", "100-continue")
    }

    /// The length of the body that follows the head, from `Content-Length` (0 without one).
    ///
    /// Refuses `Transfer-Encoding` (411), malformed or conflicting `Content-Length` values
    /// (400) and bodies over `max_body` bytes (413).
    pub fn body_length(&self, max_body: usize) -> Result<usize, HttpError> {
        if self.header("transfer-encoding").is_some() {
            return Err(HttpError::LengthRequired);
        }
        let mut length: Option<usize> = None;
        // Several Content-Length fields, or one with a list, are only acceptable when all the
        // values agree (RFC 9112 §6.3): otherwise the framing is ambiguous.
        for value in self
            .header_values("content-length")
            .flat_map(|v| v.split(','))
        {
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::BadRequest("invalid Content-Length"));
            }
            // All digits, so the only way to fail is overflow: certainly too large.
            let n: usize = value.parse().map_err(|_| HttpError::PayloadTooLarge)?;
            match length {
                Some(previous) if previous != n => {
                    return Err(HttpError::BadRequest("conflicting Content-Length headers"));
                }
                _ => length = Some(n),
            }
        }
        let length = length.unwrap_or(0);
        if length > max_body {
            return Err(HttpError::PayloadTooLarge);
        }
        Ok(length)
    }

    /// The path of the target, without query or fragment. An absolute-form target
    /// (`http://host/path`, as sent to proxies) is reduced to its path.
    pub fn path(&self) -> &str {
        split_target(&self.target).0
    }

    /// The query of the target (after `?`, without the `?`), if any.
    pub fn query(&self) -> Option<&str> {
        split_target(&self.target).1
    }
}

/// Splits a request target into path and optional query.
pub fn split_target(target: &str) -> (&str, Option<&str>) {
    let mut rest = target;
    // absolute-form: drop "scheme://authority", keep what follows (at least "/").
    if let Some(scheme_end) = rest.find("://") {
        let scheme = &rest[..scheme_end];
        if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
            let after = &rest[scheme_end + 3..];
            // The path starts at the first "/" or "?" ("http://host?x" has an empty path).
            rest = match after.find(['/', '?']) {
                Some(i) => &after[i..],
                None => "/",
            };
        }
    }
    // Clients do not send fragments, but drop one if present.
    let rest = rest.split('#').next().unwrap_or(rest);
    match rest.split_once('?') {
        Some((path, query)) => (if path.is_empty() { "/" } else { path }, Some(query)),
        None => (rest, None),
    }
}

/// The raw value of query parameter `name` (the first occurrence), if present. Values are not
/// percent-decoded: the only parameter this app reads is a number.
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
        .next()
}

/// Parses the request line and headers at the start of `buf`.
///
/// Returns `Ok(None)` when the head is not complete yet (read more and call again), or the head
/// and the number of bytes it took (the body, or the next request, starts there). Empty lines
/// before the request line are skipped, as RFC 9112 §2.2 recommends. A head longer than
/// `max_head` bytes, complete or not, is refused with 431.
pub fn parse_head(buf: &[u8], max_head: usize) -> Result<Option<(RequestHead, usize)>, HttpError> {
    let mut pos = 0;
    let mut lines: Vec<&[u8]> = Vec::new();
    loop {
        let Some(newline) = buf[pos..].iter().position(|&b| b == b'\n') else {
            return if buf.len() > max_head {
                Err(HttpError::HeaderTooLarge)
            } else {
                Ok(None)
            };
        };
        let end = pos + newline;
        let line = buf[pos..end].strip_suffix(b"\r").unwrap_or(&buf[pos..end]);
        pos = end + 1;
        if pos > max_head {
            return Err(HttpError::HeaderTooLarge);
        }
        if line.is_empty() {
            if lines.is_empty() {
                continue; // empty line(s) before the request line
            }
            break;
        }
        lines.push(line);
    }

    let (request_line, header_lines) = lines.split_first().expect("at least the request line");
    let (method, target, version) = parse_request_line(request_line)?;
    let headers = header_lines
        .iter()
        .map(|line| parse_header_line(line))
        .collect::<Result<Vec<_>, _>>()?;
    let head = RequestHead {
        method,
        target,
        version,
        headers,
    };
    Ok(Some((head, pos)))
}

/// `method SP request-target SP HTTP-version`, single spaces, nothing else.
fn parse_request_line(line: &[u8]) -> Result<(String, String, Version), HttpError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequest("malformed request line"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_token_byte(b)) {
        return Err(HttpError::BadRequest("malformed method"));
    }
    // A target is visible ASCII only (RFC 3986 characters; anything else must be
    // percent-encoded).
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(HttpError::BadRequest("malformed request target"));
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(HttpError::VersionNotSupported);
        }
        _ => return Err(HttpError::BadRequest("malformed HTTP version")),
    };
    // Both checked to be ASCII above.
    let method = String::from_utf8_lossy(method).into_owned();
    let target = String::from_utf8_lossy(target).into_owned();
    Ok((method, target, version))
}

/// `field-name ":" OWS field-value OWS`.
fn parse_header_line(line: &[u8]) -> Result<(String, String), HttpError> {
    if line[0] == b' ' || line[0] == b'\t' {
        // obs-fold: a continuation of the previous line. Refused (RFC 9112 §5.2 allows that).
        return Err(HttpError::BadRequest(
            "folded header lines are not supported",
        ));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HttpError::BadRequest("header line without colon"))?;
    let name = &line[..colon];
    // Rejects "Name : value" too: whitespace is not a token byte.
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return Err(HttpError::BadRequest("malformed header name"));
    }
    let value = trim_ows(&line[colon + 1..]);
    // Visible characters, spaces, tabs and obs-text (bytes >= 0x80); no controls, no bare CR.
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(HttpError::BadRequest("control character in header value"));
    }
    Ok((
        String::from_utf8_lossy(name).into_owned(),
        String::from_utf8_lossy(value).into_owned(),
    ))
}

/// Strips optional whitespace (spaces and tabs) from both ends.
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// `tchar` from RFC 9110 §5.6.2: the bytes allowed in methods and header names.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A response to serialize: status, JSON body and any extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, JSON.
    pub body: Vec<u8>,
    /// Extra headers beyond the ones every response gets (e.g. `Allow`, `Location`).
    pub headers: Vec<(&'static str, String)>,
    /// Whether the connection must be closed after this response, whatever the client wants
    /// (set for protocol errors, after which the framing of the stream is unknown).
    pub close: bool,
}

impl Response {
    /// A response with a JSON body serialized from `value`.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            body: serde_json::to_vec(value).expect("a serde_json::Value always serializes"),
            headers: Vec::new(),
            close: false,
        }
    }

    /// A `{"error": message}` response.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, &serde_json::json!({ "error": message }))
    }

    /// The response to a request that could not be parsed; the connection is closed after it.
    pub fn from_http_error(error: &HttpError) -> Response {
        Response {
            close: true,
            ..Response::error(error.status(), error.message())
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }
}

/// Per-connection facts that shape how a response is written.
#[derive(Debug, Clone, Copy)]
pub struct ResponseContext<'a> {
    /// The request's version (decides whether keep-alive must be announced).
    pub version: Version,
    /// Whether the connection stays open after this response.
    pub keep_alive: bool,
    /// Whether the request was `HEAD`: headers as for `GET`, no body.
    pub head_only: bool,
    /// The value of `X-App-Version`.
    pub app_version: &'a str,
    /// The value of `Date`, from [`http_date`].
    pub date: &'a str,
}

/// Serializes `response` as an HTTP/1.1 response, always with `Content-Length`.
pub fn serialize_response(response: &Response, cx: &ResponseContext<'_>) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut head = String::with_capacity(256);
    // Writing to a String cannot fail.
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-App-Version: {}\r\n",
        response.status,
        reason_phrase(response.status),
        cx.date,
        response.body.len(),
        cx.app_version,
    );
    for (name, value) in &response.headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if !cx.keep_alive {
        head.push_str("Connection: close\r\n");
    } else if cx.version == Version::Http10 {
        // HTTP/1.0 closes by default: persistence must be confirmed explicitly.
        head.push_str("Connection: keep-alive\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !cx.head_only {
        out.extend_from_slice(&response.body);
    }
    out
}

/// The interim response sent to a client waiting with `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The reason phrase for the status codes this app sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The current time as an IMF-fixdate, the format of the `Date` header.
pub fn http_date_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    http_date(secs)
}

/// `secs` since the Unix epoch as an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(secs: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize], // 1970-01-01 was a Thursday
        day,
        MONTHS[(month - 1) as usize],
        year,
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153; // month, counted from March
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_HEAD: usize = 16 * 1024;
    const MAX_BODY: usize = 64 * 1024;

    fn parse(bytes: &[u8]) -> RequestHead {
        let (head, used) = parse_head(bytes, MAX_HEAD).unwrap().expect("complete head");
        assert!(used <= bytes.len());
        head
    }

    fn parse_err(bytes: &[u8]) -> HttpError {
        parse_head(bytes, MAX_HEAD).unwrap_err()
    }

    #[test]
    fn parses_request_line_and_headers() {
        let raw = b"GET /users?limit=5 HTTP/1.1\r\nHost: localhost:3333\r\nAccept: */*\r\n\r\n";
        let (head, used) = parse_head(raw, MAX_HEAD).unwrap().unwrap();
        assert_eq!(used, raw.len());
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/users?limit=5");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.path(), "/users");
        assert_eq!(head.query(), Some("limit=5"));
        assert_eq!(
            head.headers,
            vec![
                ("Host".to_string(), "localhost:3333".to_string()),
                ("Accept".to_string(), "*/*".to_string()),
            ]
        );
    }

    #[test]
    fn incomplete_head_asks_for_more() {
        for partial in [
            &b""[..],
            b"GET",
            b"GET / HTTP/1.1",
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r",
        ] {
            assert_eq!(parse_head(partial, MAX_HEAD), Ok(None), "{partial:?}");
        }
    }

    #[test]
    fn reports_where_the_body_starts() {
        let raw = b"POST /users HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody";
        let (head, used) = parse_head(raw, MAX_HEAD).unwrap().unwrap();
        assert_eq!(&raw[used..], b"body");
        assert_eq!(head.body_length(MAX_BODY), Ok(4));
    }

    #[test]
    fn pipelined_requests_are_parsed_one_at_a_time() {
        let raw = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let (first, used) = parse_head(raw, MAX_HEAD).unwrap().unwrap();
        assert_eq!(first.target, "/a");
        let (second, used2) = parse_head(&raw[used..], MAX_HEAD).unwrap().unwrap();
        assert_eq!(second.target, "/b");
        assert_eq!(used + used2, raw.len());
    }

    #[test]
    fn accepts_bare_lf_and_leading_empty_lines() {
        let head = parse(b"\r\n\nGET /health HTTP/1.0\nX-A:  b \n\n");
        assert_eq!(head.target, "/health");
        assert_eq!(head.version, Version::Http10);
        assert_eq!(head.header("x-a"), Some("b"));
    }

    #[test]
    fn header_lookup_ignores_case_and_trims_whitespace() {
        let head = parse(b"GET / HTTP/1.1\r\ncOnTeNt-LeNgTh:\t 12 \t\r\nX-Empty:\r\n\r\n");
        assert_eq!(head.header("Content-Length"), Some("12"));
        assert_eq!(head.header("CONTENT-LENGTH"), Some("12"));
        assert_eq!(head.header("x-empty"), Some(""));
        assert_eq!(head.header("missing"), None);
    }

    #[test]
    fn rejects_malformed_request_lines() {
        for raw in [
            &b"GET /\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET /a\x01b HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1\r\n\r\n",
            b"GET / http/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\r\n\r\n",
        ] {
            assert!(
                matches!(parse_err(raw), HttpError::BadRequest(_)),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn other_http_versions_get_505() {
        assert_eq!(
            parse_err(b"GET / HTTP/2.0\r\n\r\n"),
            HttpError::VersionNotSupported
        );
        assert_eq!(
            parse_err(b"GET / HTTP/0.9\r\n\r\n"),
            HttpError::VersionNotSupported
        );
        assert_eq!(parse_err(b"GET / HTTP/2.0\r\n\r\n").status(), 505);
    }

    #[test]
    fn rejects_malformed_header_lines() {
        for raw in [
            &b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nName : value\r\n\r\n",
            b"GET / HTTP/1.1\r\n: value\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
        ] {
            assert!(
                matches!(parse_err(raw), HttpError::BadRequest(_)),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn header_values_may_hold_obs_text() {
        let head = parse("GET / HTTP/1.1\r\nX-Name: Zoë\r\n\r\n".as_bytes());
        assert_eq!(head.header("x-name"), Some("Zoë"));
    }

    #[test]
    fn oversized_heads_get_431_complete_or_not() {
        let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n", "a".repeat(MAX_HEAD));
        // Not complete yet, already too long: no point reading further.
        assert_eq!(parse_err(big.as_bytes()), HttpError::HeaderTooLarge);
        let complete = format!("{big}\r\n");
        assert_eq!(parse_err(complete.as_bytes()), HttpError::HeaderTooLarge);
        assert_eq!(HttpError::HeaderTooLarge.status(), 431);
        // Just at the limit is fine.
        let head = "GET / HTTP/1.1\r\n\r\n";
        assert!(parse_head(head.as_bytes(), head.len()).unwrap().is_some());
        assert_eq!(
            parse_head(head.as_bytes(), head.len() - 1),
            Err(HttpError::HeaderTooLarge)
        );
    }

    #[test]
    fn endless_empty_lines_count_toward_the_limit() {
        let raw = "\r\n".repeat(MAX_HEAD);
        assert_eq!(parse_err(raw.as_bytes()), HttpError::HeaderTooLarge);
    }

    #[test]
    fn body_length_comes_from_content_length() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n\r\n").body_length(MAX_BODY),
            Ok(0)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n").body_length(MAX_BODY),
            Ok(17)
        );
        // Repeated but identical values are one length.
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n")
                .body_length(MAX_BODY),
            Ok(5)
        );
    }

    #[test]
    fn rejects_bad_content_length() {
        for value in ["", "-1", "+5", "0x10", "5 5", "1e3", "abc"] {
            let raw = format!("POST / HTTP/1.1\r\nContent-Length: {value}\r\n\r\n");
            assert!(
                matches!(
                    parse(raw.as_bytes()).body_length(MAX_BODY),
                    Err(HttpError::BadRequest(_))
                ),
                "{value:?}"
            );
        }
        let conflicting =
            parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
        assert!(matches!(
            conflicting.body_length(MAX_BODY),
            Err(HttpError::BadRequest(_))
        ));
    }

    #[test]
    fn oversized_bodies_get_413() {
        let at_limit = format!("POST / HTTP/1.1\r\nContent-Length: {MAX_BODY}\r\n\r\n");
        assert_eq!(
            parse(at_limit.as_bytes()).body_length(MAX_BODY),
            Ok(MAX_BODY)
        );
        let over = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(
            parse(over.as_bytes()).body_length(MAX_BODY),
            Err(HttpError::PayloadTooLarge)
        );
        let overflow = parse(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        assert_eq!(
            overflow.body_length(MAX_BODY),
            Err(HttpError::PayloadTooLarge)
        );
        assert_eq!(HttpError::PayloadTooLarge.status(), 413);
    }

    #[test]
    fn transfer_encoding_is_refused_with_411() {
        for te in ["chunked", "gzip, chunked", "identity"] {
            let raw = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {te}\r\n\r\n");
            assert_eq!(
                parse(raw.as_bytes()).body_length(MAX_BODY),
                Err(HttpError::LengthRequired)
            );
        }
        // Even alongside a Content-Length (the classic smuggling combination).
        let both =
            parse(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(both.body_length(MAX_BODY), Err(HttpError::LengthRequired));
        assert_eq!(HttpError::LengthRequired.status(), 411);
    }

    #[test]
    fn keep_alive_defaults_per_version() {
        assert!(parse(b"GET / HTTP/1.1\r\n\r\n").wants_keep_alive());
        assert!(!parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").wants_keep_alive());
        assert!(!parse(b"GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n").wants_keep_alive());
        assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").wants_keep_alive());
        assert!(parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").wants_keep_alive());
    }

    #[test]
    fn expect_continue_only_for_http11() {
        assert!(parse(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expects_continue());
        assert!(!parse(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expects_continue());
        assert!(!parse(b"POST / HTTP/1.1\r\n\r\n").expects_continue());
    }

    #[test]
    fn splits_targets() {
        assert_eq!(split_target("/users"), ("/users", None));
        assert_eq!(split_target("/users?limit=3"), ("/users", Some("limit=3")));
        assert_eq!(split_target("/users?"), ("/users", Some("")));
        assert_eq!(split_target("/users#frag"), ("/users", None));
        assert_eq!(
            split_target("http://example:3333/users/7?x=1"),
            ("/users/7", Some("x=1"))
        );
        assert_eq!(split_target("HTTP://example"), ("/", None));
        assert_eq!(
            split_target("http://example?limit=1"),
            ("/", Some("limit=1"))
        );
        assert_eq!(split_target("*"), ("*", None));
    }

    #[test]
    fn reads_query_parameters() {
        assert_eq!(query_param(Some("limit=5"), "limit"), Some("5"));
        assert_eq!(query_param(Some("a=1&limit=7&limit=9"), "limit"), Some("7"));
        assert_eq!(query_param(Some("limit"), "limit"), Some(""));
        assert_eq!(query_param(Some("limits=5"), "limit"), None);
        assert_eq!(query_param(None, "limit"), None);
    }

    fn cx(version: Version, keep_alive: bool, head_only: bool) -> ResponseContext<'static> {
        ResponseContext {
            version,
            keep_alive,
            head_only,
            app_version: "v2",
            date: "Sun, 06 Nov 1994 08:49:37 GMT",
        }
    }

    #[test]
    fn serializes_responses_with_content_length() {
        let response = Response::json(200, &serde_json::json!({"status": "ok"}));
        let out = serialize_response(&response, &cx(Version::Http11, true, false));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: application/json\r\nContent-Length: 15\r\nX-App-Version: v2\r\n\r\n\
             {\"status\":\"ok\"}"
        );
    }

    #[test]
    fn serialization_announces_the_connection_fate() {
        let response = Response::error(404, "not found").with_header("Allow", "GET".to_string());
        let text = |cx| String::from_utf8(serialize_response(&response, &cx)).unwrap();

        let closing = text(cx(Version::Http11, false, false));
        assert!(closing.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(closing.contains("\r\nAllow: GET\r\n"));
        assert!(closing.contains("\r\nConnection: close\r\n"));

        assert!(!text(cx(Version::Http11, true, false)).contains("Connection:"));
        assert!(text(cx(Version::Http10, true, false)).contains("\r\nConnection: keep-alive\r\n"));
    }

    #[test]
    fn head_responses_keep_the_length_but_drop_the_body() {
        let response = Response::json(200, &serde_json::json!([1, 2, 3]));
        let out = String::from_utf8(serialize_response(
            &response,
            &cx(Version::Http11, true, true),
        ))
        .unwrap();
        assert!(out.contains("Content-Length: 7\r\n"));
        assert!(out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn http_errors_close_the_connection() {
        let response = Response::from_http_error(&HttpError::PayloadTooLarge);
        assert_eq!(response.status, 413);
        assert!(response.close);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&response.body).unwrap(),
            serde_json::json!({"error": "request body too large"})
        );
    }

    #[test]
    fn formats_http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
        assert_eq!(http_date(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
    }
}
