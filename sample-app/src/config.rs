//! Configuration from environment variables, validated before anything starts.
//!
//! | variable       | default     | meaning                                                   |
//! |----------------|-------------|-----------------------------------------------------------|
//! | `PORT`         | `3333`      | TCP port to listen on                                     |
//! | `BIND`         | `127.0.0.1` | IP address to listen on (`0.0.0.0` in a container)        |
//! | `DATABASE_URL` | (required)  | `postgres://...`; never printed                           |
//! | `USERS_COLUMN` | `name`      | `name` (API version 1) or `full_name` (API version 2)     |
//! | `APP_VERSION`  | `dev`       | sent as `X-App-Version` and in `/health`                  |
//! | `FAIL_RATE`    | `0`         | fraction (0..=1) of `/users` requests answered 500        |
//! | `DELAY_MS`     | `0`         | milliseconds added to every `/users` request (0..=60000)  |
//! | `DB_POOL`      | `8`         | maximum database connections                              |
//!
//! An empty value counts as unset, except for `DATABASE_URL`, which must be given.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

/// The column of `users` the API reads and writes as a user's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsersColumn {
    /// `name`: version 1 of the API, before the rename.
    Name,
    /// `full_name`: version 2 of the API, after the rename.
    FullName,
}

impl UsersColumn {
    /// The column name, safe to put into SQL text as is (it is one of two fixed identifiers).
    pub fn as_sql(self) -> &'static str {
        match self {
            UsersColumn::Name => "name",
            UsersColumn::FullName => "full_name",
        }
    }
}

impl fmt::Display for UsersColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_sql())
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// How to reach PostgreSQL (parsed from `DATABASE_URL`; its `Debug` output is not used
    /// anywhere since it would show the password).
    pub database: PgConnectOptions,
    /// The column holding the user's name.
    pub users_column: UsersColumn,
    /// The version announced in responses.
    pub app_version: String,
    /// The fraction of `/users` requests to fail on purpose.
    pub fail_rate: f64,
    /// Added to every `/users` request on purpose (a slow version).
    pub delay: std::time::Duration,
    /// The maximum number of pooled database connections.
    pub db_pool: u32,
}

/// An invalid or missing setting. Its message names the variable but never repeats the value
/// of `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|key| std::env::var_os(key))
    }

    /// Reads the configuration through `lookup`, which returns a variable's raw value (tests
    /// pass a map here rather than changing the process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Config, ConfigError> {
        let get = |key: &str| -> Result<Option<String>, ConfigError> {
            match lookup(key) {
                None => Ok(None),
                Some(raw) => match raw.into_string() {
                    Ok(value) if value.is_empty() => Ok(None),
                    Ok(value) => Ok(Some(value)),
                    Err(_) => Err(ConfigError(format!("{key} is not valid UTF-8"))),
                },
            }
        };

        let port = match get("PORT")? {
            None => 3333,
            Some(v) => v.trim().parse::<u16>().map_err(|_| {
                ConfigError(format!("PORT must be a port number (0-65535), got {v:?}"))
            })?,
        };
        let bind = match get("BIND")? {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(v) => v.trim().parse::<IpAddr>().map_err(|_| {
                ConfigError(format!(
                    "BIND must be an IP address such as 0.0.0.0, got {v:?}"
                ))
            })?,
        };

        let database = database(get("DATABASE_URL")?)?;
        let users_column = match get("USERS_COLUMN")?.as_deref().map(str::trim) {
            None | Some("name") => UsersColumn::Name,
            Some("full_name") => UsersColumn::FullName,
            Some(other) => {
                return Err(ConfigError(format!(
                    "USERS_COLUMN must be \"name\" or \"full_name\", got {other:?}"
                )));
            }
        };

        let app_version = app_version(get("APP_VERSION")?)?;

        let fail_rate = match get("FAIL_RATE")? {
            None => 0.0,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(rate) if (0.0..=1.0).contains(&rate) => rate,
                _ => {
                    return Err(ConfigError(format!(
                        "FAIL_RATE must be a number from 0 to 1, got {v:?}"
                    )));
                }
            },
        };

        let delay = match get("DELAY_MS")? {
            None => std::time::Duration::ZERO,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(ms) if ms <= 60_000 => std::time::Duration::from_millis(ms),
                _ => {
                    return Err(ConfigError(format!(
                        "DELAY_MS must be a whole number of milliseconds from 0 to 60000, got {v:?}"
                    )));
                }
            },
        };

        let db_pool = match get("DB_POOL")? {
            None => 8,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(ConfigError(format!(
                        "DB_POOL must be a whole number of at least 1, got {v:?}"
                    )));
                }
            },
        };

        Ok(Config {
            listen: SocketAddr::new(bind, port),
            database,
            users_column,
            app_version,
            fail_rate,
            delay,
            db_pool,
        })
    }
}

/// `DATABASE_URL`, required. The parse error is not shown: some of sqlx's messages quote parts
/// of the URL, which may include the password.
fn database(url: Option<String>) -> Result<PgConnectOptions, ConfigError> {
    let Some(url) = url else {
        return Err(ConfigError(
            "DATABASE_URL is required (postgres://user:password@127.0.0.1:5432/db)".to_string(),
        ));
    };
    PgConnectOptions::from_str(&url).map_err(|_| {
        ConfigError("DATABASE_URL is not a valid PostgreSQL URL (value not shown)".to_string())
    })
}

/// `APP_VERSION` (default `dev`). It goes into a response header: visible ASCII and inner
/// spaces only, so that it can neither break the header block nor need encoding.
fn app_version(value: Option<String>) -> Result<String, ConfigError> {
    let app_version = value.unwrap_or_else(|| "dev".to_string());
    if !app_version
        .bytes()
        .all(|b| b.is_ascii_graphic() || b == b' ')
        || app_version.starts_with(' ')
        || app_version.ends_with(' ')
    {
        return Err(ConfigError(format!(
            "APP_VERSION must be printable ASCII, got {app_version:?}"
        )));
    }
    Ok(app_version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const URL: &str = "postgres://app:s3cret@127.0.0.1:5432/app";

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Config::from_lookup(|key| map.get(key).cloned())
    }

    #[test]
    fn defaults() {
        let config = load(&[("DATABASE_URL", URL)]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:3333".parse().unwrap());
        assert_eq!(config.users_column, UsersColumn::Name);
        assert_eq!(config.app_version, "dev");
        assert_eq!(config.fail_rate, 0.0);
        assert_eq!(config.db_pool, 8);
    }

    #[test]
    fn everything_set() {
        let config = load(&[
            ("DATABASE_URL", URL),
            ("PORT", "8080"),
            ("BIND", "0.0.0.0"),
            ("USERS_COLUMN", "full_name"),
            ("APP_VERSION", "2.0.1"),
            ("FAIL_RATE", "0.25"),
            ("DELAY_MS", "150"),
            ("DB_POOL", "3"),
        ])
        .unwrap();
        assert_eq!(config.delay, std::time::Duration::from_millis(150));
        assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.users_column, UsersColumn::FullName);
        assert_eq!(config.app_version, "2.0.1");
        assert_eq!(config.fail_rate, 0.25);
        assert_eq!(config.db_pool, 3);
    }

    #[test]
    fn ipv6_bind_and_empty_values_as_unset() {
        let config = load(&[("DATABASE_URL", URL), ("BIND", "::"), ("PORT", "")]).unwrap();
        assert_eq!(config.listen, "[::]:3333".parse().unwrap());
    }

    #[test]
    fn database_url_is_required() {
        let err = load(&[]).unwrap_err();
        assert!(err.0.contains("DATABASE_URL is required"), "{err}");
        let err = load(&[("DATABASE_URL", "")]).unwrap_err();
        assert!(err.0.contains("DATABASE_URL is required"), "{err}");
    }

    #[test]
    fn an_invalid_database_url_is_not_echoed() {
        let err = load(&[("DATABASE_URL", "mysql://u:hunter2@h:notaport/db")]).unwrap_err();
        assert!(err.0.contains("DATABASE_URL"), "{err}");
        assert!(!err.0.contains("hunter2"), "{err}");
    }

    #[test]
    fn rejects_invalid_values() {
        for (key, value) in [
            ("PORT", "70000"),
            ("PORT", "http"),
            ("BIND", "localhost"),
            ("USERS_COLUMN", "email"),
            ("USERS_COLUMN", "Name"),
            ("APP_VERSION", "v1\r\nX-Evil: 1"),
            ("FAIL_RATE", "1.5"),
            ("FAIL_RATE", "-0.1"),
            ("FAIL_RATE", "NaN"),
            ("FAIL_RATE", "half"),
            ("DB_POOL", "0"),
            ("DB_POOL", "-1"),
            ("DELAY_MS", "-5"),
            ("DELAY_MS", "60001"),
        ] {
            let err = load(&[("DATABASE_URL", URL), (key, value)]).unwrap_err();
            assert!(err.0.starts_with(key), "{key}={value:?}: {err}");
        }
    }
}
