//! The `--url` argument: parsing, and the rule that load only ever goes to
//! this machine's loopback interface.
//!
//! A load generator pointed at the wrong address is a denial-of-service tool,
//! so the check is strict: the host must be an IPv4 address in 127.0.0.0/8,
//! the IPv6 address `::1`, or the name `localhost`, and `localhost` must
//! resolve to loopback addresses only.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The loopback address connections are made to.
    pub addr: SocketAddr,
    /// The `Host` header value: the URL's authority (`127.0.0.1:8080`).
    pub authority: String,
    /// A path prefix from the URL (empty for `http://host:port` or
    /// `http://host:port/`), prepended to `--read-path` and `--write-path`.
    pub base_path: String,
}

impl Target {
    /// The request target for `path` (which starts with `/`).
    pub fn request_path(&self, path: &str) -> String {
        format!("{}{path}", self.base_path)
    }
}

/// The URL is malformed or not a loopback target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError(pub String);

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TargetError {}

/// The host part of a parsed URL, before name resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A literal loopback address.
    Ip(IpAddr),
    /// `localhost`.
    Localhost,
}

/// A syntactically valid `http://` URL with a loopback host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUrl {
    /// The host, not yet resolved.
    pub host: Host,
    /// The port (80 when the URL has none).
    pub port: u16,
    /// `host:port` as the `Host` header carries it.
    pub authority: String,
    /// The path prefix requests go under, without a trailing `/`.
    pub base_path: String,
}

const LOOPBACK_ONLY: &str = "only loopback targets are allowed (127.0.0.0/8, ::1 or localhost)";

/// Parses `http://HOST[:PORT][/PATH]` and checks that HOST is loopback.
pub fn parse_url(url: &str) -> Result<ParsedUrl, TargetError> {
    let err = |msg: String| Err(TargetError(msg));
    let Some(scheme_end) = url.find("://") else {
        return err(format!(
            "URL {url:?} has no scheme; expected http://HOST:PORT"
        ));
    };
    if !url[..scheme_end].eq_ignore_ascii_case("http") {
        return err(format!("URL {url:?}: only the http scheme is supported"));
    }
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let path = &rest[authority_end..];
    if path.contains(['?', '#']) {
        return err(format!(
            "URL {url:?} has a query or fragment; put it in --read-path instead"
        ));
    }
    if authority.contains('@') {
        return err(format!("URL {url:?}: user information is not supported"));
    }

    let (host_text, port_text) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return err(format!("URL {url:?}: unterminated IPv6 address"));
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return err(format!("URL {url:?}: malformed authority")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host_text.is_empty() {
        return err(format!("URL {url:?} has no host"));
    }
    let port = match port_text {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port != 0 && p.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => return err(format!("URL {url:?}: invalid port {p:?}")),
        },
    };

    let host = if host_text.eq_ignore_ascii_case("localhost") {
        Host::Localhost
    } else {
        match host_text.parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => Host::Ip(ip),
            _ => {
                return err(format!(
                    "refusing target host {host_text:?}: {LOOPBACK_ONLY}"
                ));
            }
        }
    };

    Ok(ParsedUrl {
        host,
        port,
        authority: authority.to_string(),
        base_path: path.trim_end_matches('/').to_string(),
    })
}

/// Parses `url` and resolves it to a loopback socket address.
pub async fn resolve(url: &str) -> Result<Target, TargetError> {
    let parsed = parse_url(url)?;
    let addr = match parsed.host {
        Host::Ip(ip) => SocketAddr::new(ip, parsed.port),
        Host::Localhost => {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(("localhost", parsed.port))
                .await
                .map_err(|e| TargetError(format!("cannot resolve localhost: {e}")))?
                .collect();
            if let Some(other) = addrs.iter().find(|a| !a.ip().is_loopback()) {
                return Err(TargetError(format!(
                    "refusing target: localhost resolves to non-loopback address {other}"
                )));
            }
            *addrs
                .first()
                .ok_or_else(|| TargetError("localhost resolves to no address".into()))?
        }
    };
    Ok(Target {
        addr,
        authority: parsed.authority,
        base_path: parsed.base_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn loopback_urls_are_accepted() {
        let u = parse_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(u.host, Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(
            (u.port, u.authority.as_str(), u.base_path.as_str()),
            (8080, "127.0.0.1:8080", "")
        );

        let u = parse_url("http://127.1.2.3:9/").unwrap();
        assert_eq!(u.host, Host::Ip(IpAddr::V4(Ipv4Addr::new(127, 1, 2, 3))));
        assert_eq!(u.base_path, "");

        let u = parse_url("HTTP://[::1]:8443/api/").unwrap();
        assert_eq!(u.host, Host::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(
            (u.authority.as_str(), u.base_path.as_str()),
            ("[::1]:8443", "/api")
        );

        let u = parse_url("http://LocalHost").unwrap();
        assert_eq!((u.host, u.port), (Host::Localhost, 80));
    }

    #[test]
    fn other_hosts_are_refused() {
        for url in [
            "http://10.0.0.1:80",
            "http://192.168.1.10:8080",
            "http://8.8.8.8",
            "http://example.com:80",
            "http://localhost.example.com",
            "http://[::ffff:127.0.0.1]:80",
            "http://[fe80::1]:80",
            "http://0.0.0.0:80",
            "http://127.1:80",
        ] {
            let e = parse_url(url).unwrap_err();
            assert!(e.0.contains("only loopback targets"), "{url}: {e}");
        }
    }

    #[test]
    fn malformed_urls_are_refused() {
        for url in [
            "127.0.0.1:80",
            "https://127.0.0.1:443",
            "http://127.0.0.1:0",
            "http://127.0.0.1:99999",
            "http://127.0.0.1:+80",
            "http://127.0.0.1:80/x?y=1",
            "http://user@127.0.0.1:80",
            "http://[::1:80",
            "http://:80",
        ] {
            assert!(parse_url(url).is_err(), "{url}");
        }
    }

    #[test]
    fn request_path_joins_the_prefix() {
        let t = Target {
            addr: "127.0.0.1:1".parse().unwrap(),
            authority: "127.0.0.1:1".into(),
            base_path: "/api".into(),
        };
        assert_eq!(t.request_path("/users?limit=5"), "/api/users?limit=5");
    }
}
