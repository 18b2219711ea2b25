//! Handing a database URL to PostgreSQL's client programs (`pg_dump`, `pg_restore`) without its
//! secrets: a command line is readable by every local user (`ps`, `/proc/PID/cmdline`), so the
//! password travels in the child's environment (`PGPASSWORD`) and the URL on the command line
//! carries none.
//!
//! libpq takes a password in two places of a URL (PostgreSQL manual, "Connection Strings",
//! section 34.1.1): the authority (`postgresql://user:secret@host/db`) and the query
//! (`?password=secret`), where the keyword, like the value, may be percent-encoded
//! (`?pass%77ord=secret`). Both are removed here; if both are given, libpq uses the query's, and
//! so does [`ClientTarget::of`]. `sslpassword` (the passphrase of a client key) has no
//! environment variable in libpq, so a URL that carries one is refused with a hint rather than
//! passed on a command line.

/// Why a database URL cannot be handed to PostgreSQL's client programs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No `scheme://` at all.
    #[error("the database URL is not a `postgres://` URL")]
    NotAUrl,
    /// Another scheme.
    #[error("the database URL's scheme is `{scheme}`, not `postgres` or `postgresql`")]
    Scheme {
        /// The scheme it has.
        scheme: String,
    },
    /// A client key passphrase, which libpq's programs take only on their command line.
    #[error(
        "the database URL carries `sslpassword`, which PostgreSQL's client programs can only take \
         on their command line, where every local user can read it; use a client key without a \
         passphrase (readable only by this user), or leave `backup` off for this database"
    )]
    SslPassword,
}

/// A URL safe for a command line, and the password to pass through the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTarget {
    /// The URL without any password.
    pub url: String,
    /// The password (percent-decoded), for `PGPASSWORD`.
    pub password: Option<String>,
}

impl ClientTarget {
    /// Splits `url` (a `postgres://` or `postgresql://` URL) into a password-free URL and its
    /// password. Errors: a URL that is not of those schemes, or one that carries `sslpassword`.
    pub fn of(url: &str) -> Result<ClientTarget, UrlError> {
        let Some(scheme_end) = url.find("://") else {
            return Err(UrlError::NotAUrl);
        };
        let scheme = &url[..scheme_end];
        if !scheme.eq_ignore_ascii_case("postgres") && !scheme.eq_ignore_ascii_case("postgresql") {
            return Err(UrlError::Scheme {
                scheme: scheme.to_string(),
            });
        }
        let rest = &url[scheme_end + 3..];
        // The authority ends at the path or the query, whichever comes first.
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..auth_end];
        let after = &rest[auth_end..];
        let mut password = None;
        let authority = match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        password = Some(percent_decode(&userinfo[colon + 1..]));
                        format!("{}{}", &userinfo[..colon], &authority[at..])
                    }
                    None => authority.to_string(),
                }
            }
            None => authority.to_string(),
        };
        let (path, query) = match after.find('?') {
            Some(q) => (&after[..q], Some(&after[q + 1..])),
            None => (after, None),
        };
        let mut kept = Vec::new();
        if let Some(query) = query {
            for pair in query.split('&') {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                // libpq's keywords are lower case; `Password=` is an error for libpq but still a
                // password on a command line, so every spelling leaves the URL.
                match percent_decode(key).to_ascii_lowercase().as_str() {
                    "password" => password = Some(percent_decode(value)),
                    "sslpassword" => return Err(UrlError::SslPassword),
                    _ => kept.push(pair),
                }
            }
        }
        let mut url = format!("{scheme}://{authority}{path}");
        if !kept.is_empty() {
            url.push('?');
            url.push_str(&kept.join("&"));
        }
        Ok(ClientTarget { url, password })
    }

    /// The same target with database `dbname` (for a maintenance connection to `postgres`); a
    /// `dbname` query parameter, which would override the path, is dropped.
    pub fn with_database(&self, dbname: &str) -> ClientTarget {
        let scheme_end = self.url.find("://").map_or(0, |i| i + 3);
        let rest = &self.url[scheme_end..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let after = &rest[auth_end..];
        let kept: Vec<&str> = after
            .find('?')
            .map(|q| {
                after[q + 1..]
                    .split('&')
                    .filter(|p| {
                        !percent_decode(p.split_once('=').map_or(*p, |(k, _)| k))
                            .eq_ignore_ascii_case("dbname")
                    })
                    .collect()
            })
            .unwrap_or_default();
        let query = if kept.is_empty() {
            String::new()
        } else {
            format!("?{}", kept.join("&"))
        };
        let url = format!(
            "{}/{}{query}",
            &self.url[..scheme_end + auth_end],
            percent_encode(dbname)
        );
        ClientTarget {
            url,
            password: self.password.clone(),
        }
    }
}

/// Decodes `%XX` escapes (libpq decodes both keywords and values of a URL).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(hi), Some(lo)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, Option<String>) {
        let t = ClientTarget::of(url).unwrap();
        (t.url, t.password)
    }

    #[test]
    fn every_password_form_leaves_the_url() {
        // Authority, percent-encoded.
        assert_eq!(
            split("postgres://app:p%40ss@db:5432/app?x=1"),
            ("postgres://app@db:5432/app?x=1".into(), Some("p@ss".into()))
        );
        // No password at all.
        assert_eq!(
            split("postgres://app@db/app"),
            ("postgres://app@db/app".into(), None)
        );
        // Query parameter, alone, first, last and in the middle.
        assert_eq!(
            split("postgresql://app@db/app?password=s3cret"),
            ("postgresql://app@db/app".into(), Some("s3cret".into()))
        );
        assert_eq!(
            split("postgres://app@db/app?password=a%26b&sslmode=disable"),
            (
                "postgres://app@db/app?sslmode=disable".into(),
                Some("a&b".into())
            )
        );
        assert_eq!(
            split("postgres://app@db/app?sslmode=disable&password=x1&application_name=a"),
            (
                "postgres://app@db/app?sslmode=disable&application_name=a".into(),
                Some("x1".into())
            )
        );
        // A percent-encoded keyword is still the password keyword for libpq.
        assert_eq!(
            split("postgres://app@db/app?pass%77ord=x2"),
            ("postgres://app@db/app".into(), Some("x2".into()))
        );
        // Both forms: libpq takes the query's; neither stays.
        assert_eq!(
            split("postgres://app:one@db/app?password=two"),
            ("postgres://app@db/app".into(), Some("two".into()))
        );
        // No path, query straight after the host; a user and host given as parameters.
        assert_eq!(
            split("postgres://db?password=x3&user=app"),
            ("postgres://db?user=app".into(), Some("x3".into()))
        );
        assert_eq!(
            split("postgresql:///app?host=/var/run/postgresql&password=x4"),
            (
                "postgresql:///app?host=/var/run/postgresql".into(),
                Some("x4".into())
            )
        );
        // IPv6 host with a port, and several hosts.
        assert_eq!(
            split("postgres://app:x5@[::1]:5432/app"),
            ("postgres://app@[::1]:5432/app".into(), Some("x5".into()))
        );
        assert_eq!(
            split("postgres://app:x6@h1:5432,h2:5433/app?target_session_attrs=read-write"),
            (
                "postgres://app@h1:5432,h2:5433/app?target_session_attrs=read-write".into(),
                Some("x6".into())
            )
        );
        // Any spelling of the keyword (libpq rejects `Password=`, but it is on the command line).
        assert_eq!(
            split("postgres://app:x7@db/app?Password=x7"),
            ("postgres://app@db/app".into(), Some("x7".into()))
        );
        // An empty password is still a password.
        assert_eq!(
            split("postgres://app:@db/app"),
            ("postgres://app@db/app".into(), Some(String::new()))
        );
        // A password with '@', ':' and '/' written raw in the query.
        assert_eq!(
            split("postgres://app@db/app?password=a:b@c/d"),
            ("postgres://app@db/app".into(), Some("a:b@c/d".into()))
        );
    }

    #[test]
    fn what_cannot_be_passed_safely_is_refused() {
        assert_eq!(
            ClientTarget::of("postgres://app@db/app?sslpassword=k"),
            Err(UrlError::SslPassword)
        );
        assert_eq!(
            ClientTarget::of("mysql://app:x@db/app"),
            Err(UrlError::Scheme {
                scheme: "mysql".into()
            })
        );
        assert_eq!(
            ClientTarget::of("host=db password=x"),
            Err(UrlError::NotAUrl)
        );
    }

    #[test]
    fn a_maintenance_target_keeps_the_query_and_the_password() {
        let t = ClientTarget::of("postgres://app:pw@db:5432/app?sslmode=require&password=q")
            .unwrap()
            .with_database("postgres");
        assert_eq!(t.url, "postgres://app@db:5432/postgres?sslmode=require");
        assert_eq!(t.password.as_deref(), Some("q"));
        let t = ClientTarget::of("postgres://app@db?password=q")
            .unwrap()
            .with_database("postgres");
        assert_eq!(t.url, "postgres://app@db/postgres");
        // A dbname parameter would override the maintenance database.
        let t = ClientTarget::of("postgres://app@db/app?dbname=app&sslmode=require")
            .unwrap()
            .with_database("postgres");
        assert_eq!(t.url, "postgres://app@db/postgres?sslmode=require");
    }
}
