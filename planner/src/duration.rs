//! [`Duration`]: the human-written durations of release specs (`"500ms"`, `"30s"`, `"2m"`, `"1h"`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A duration written in a spec, kept in milliseconds and printed back in the largest whole unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    millis: u64,
}

impl Duration {
    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self { millis }
    }

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self {
            millis: secs * 1000,
        }
    }

    /// Length in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// The longest duration a spec may hold: PostgreSQL's `lock_timeout` and `statement_timeout`
    /// are whole milliseconds in a 32-bit integer, and one limit for every duration keeps the rule
    /// simple (about 24.8 days; a release that waits longer is not one release).
    pub const MAX: Self = Self::from_millis(i32::MAX as u64);

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.millis == 0
    }

    /// Parses a duration as Go, Argo Rollouts and Kamal users write them: `"250ms"`, `"30s"`,
    /// `"1m30s"`, `"1.5s"`, `"1h 30m"`, `"10 seconds"` (jiff's "friendly" format; ISO 8601's
    /// `"PT1M"` too). Kept to whole milliseconds.
    ///
    /// Errors: not a duration, negative, finer than a millisecond, or longer than [`Self::MAX`];
    /// each message names the text and gives an example.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let bad = |why: &str| {
            format!(
                "invalid duration `{text}`: {why}; write a number and a unit (ms, s, m or h), e.g. \
                 \"30s\", \"1m30s\" or \"1.5s\""
            )
        };
        let parsed: jiff::SignedDuration = t.parse().map_err(|_| bad("not a duration"))?;
        if parsed.is_negative() {
            return Err(bad("it is negative"));
        }
        if parsed.subsec_nanos() % 1_000_000 != 0 {
            return Err(bad("cutover keeps durations in whole milliseconds"));
        }
        let too_long = || {
            format!(
                "duration `{text}` is longer than {}ms (about 24.8 days), the most cutover accepts: \
                 PostgreSQL's timeouts stop there",
                Self::MAX.millis
            )
        };
        let millis = u64::try_from(parsed.as_millis()).map_err(|_| too_long())?;
        let d = Self::from_millis(millis);
        if d > Self::MAX {
            return Err(too_long());
        }
        Ok(d)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.millis;
        if m == 0 {
            write!(f, "0s")
        } else if m.is_multiple_of(3_600_000) {
            write!(f, "{}h", m / 3_600_000)
        } else if m.is_multiple_of(60_000) {
            write!(f, "{}m", m / 60_000)
        } else if m.is_multiple_of(1_000) {
            write!(f, "{}s", m / 1_000)
        } else {
            write!(f, "{m}ms")
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = text(d, "a duration in quotes, e.g. \"30s\"")?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A string, or an error that says what the string should hold (`expected a duration in quotes,
/// e.g. "30s"`) rather than serde's `expected a string`.
pub(crate) fn text<'de, D: Deserializer<'de>>(
    d: D,
    expecting: &'static str,
) -> Result<String, D::Error> {
    struct Text(&'static str);
    impl serde::de::Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_string(Text(expecting))
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        std::time::Duration::from_millis(d.millis)
    }
}

impl From<&Duration> for std::time::Duration {
    fn from(d: &Duration) -> Self {
        std::time::Duration::from_millis(d.millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        for (text, ms, back) in [
            ("500ms", 500, "500ms"),
            ("30s", 30_000, "30s"),
            ("90s", 90_000, "90s"),
            ("2m", 120_000, "2m"),
            ("1h", 3_600_000, "1h"),
            ("0s", 0, "0s"),
            ("1m30s", 90_000, "90s"),
            ("1.5s", 1_500, "1500ms"),
            ("1h 30m", 5_400_000, "90m"),
            ("10 seconds", 10_000, "10s"),
            ("PT1M", 60_000, "1m"),
        ] {
            let d = Duration::parse(text).unwrap();
            assert_eq!(d.as_millis(), ms);
            assert_eq!(d.to_string(), back);
        }
    }

    #[test]
    fn rejects_garbage_with_an_example() {
        for bad in ["", "s", "10", "1.0005s", "10 parsecs", "-1s", "1d"] {
            let err = Duration::parse(bad).unwrap_err();
            assert!(err.contains("e.g. \"30s\""), "{bad}: {err}");
        }
    }

    #[test]
    fn refuses_what_postgresql_cannot_hold() {
        assert_eq!(Duration::parse("2147483647ms").unwrap(), Duration::MAX);
        for long in ["2147483648ms", "2147484s", "597h", "99999999999999h"] {
            let err = Duration::parse(long).unwrap_err();
            assert!(err.contains("longer than 2147483647ms"), "{long}: {err}");
        }
    }
}
