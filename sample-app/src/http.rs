//! What the handlers answer with, and the one query parameter they read. The wire format
//! itself (parsing, framing, keep-alive, `Date`) is hyper's, see `server`.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};

/// A response to send: status, JSON body and any extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, JSON.
    pub body: Vec<u8>,
    /// Extra headers beyond the ones every response gets (e.g. `Allow`, `Location`).
    pub headers: Vec<(&'static str, String)>,
    /// Whether the connection must be closed after this response, whatever the client wants
    /// (set when the request's body was refused or could not be read, so the rest of it is
    /// never read).
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

    /// A `{"error": message}` response after which the connection is closed.
    pub fn closing_error(status: u16, message: &str) -> Response {
        Response {
            close: true,
            ..Response::error(status, message)
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    /// The response as hyper sends it, with the headers every response of this app carries:
    /// `Content-Type`, `Content-Length` (also on answers to `HEAD`, whose body hyper drops) and
    /// `X-App-Version`. hyper adds `Date`, and `Connection` where keep-alive needs saying.
    pub fn into_hyper(self, app_version: &HeaderValue) -> hyper::Response<Full<Bytes>> {
        let length = self.body.len();
        let mut response = hyper::Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() = hyper::StatusCode::from_u16(self.status)
            .expect("handlers answer with valid status codes");
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        headers.insert("x-app-version", app_version.clone());
        for (name, value) in self.headers {
            let value = HeaderValue::try_from(value).expect("handlers' header values are ASCII");
            headers.append(name, value);
        }
        if self.close {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_query_parameters() {
        assert_eq!(query_param(Some("limit=5"), "limit"), Some("5"));
        assert_eq!(query_param(Some("a=1&limit=7&limit=9"), "limit"), Some("7"));
        assert_eq!(query_param(Some("limit"), "limit"), Some(""));
        assert_eq!(query_param(Some("limits=5"), "limit"), None);
        assert_eq!(query_param(None, "limit"), None);
    }
}
