//! The keys each table of a spec takes, and [`check`]: every unknown key or table of a file in
//! one pass, each at its line with the closest valid name ("did you mean `service`?").
//!
//! The key lists are the serde field names of the spec's types; a unit test compares each with
//! the list serde's `deny_unknown_fields` error gives, so the two cannot drift apart.

use super::parse::hint_for_unknown_key;
use std::borrow::Cow;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One table of a spec: how it is written, its keys, and the keys holding a nested table.
pub(super) struct Shape {
    /// The table as written in a spec, for messages: `[[service]]`, `[service.strategy]`.
    pub header: &'static str,
    /// Every key the table takes (the serde field names of its type).
    pub keys: &'static [&'static str],
    /// Keys whose value is a table (or an array of tables) with known keys of its own.
    pub nested: &'static [(&'static str, &'static Shape)],
}

pub(super) static ROOT: Shape = Shape {
    header: "the spec's top level",
    keys: &["release", "service", "database", "router", "command"],
    nested: &[
        ("release", &RELEASE),
        ("service", &SERVICE),
        ("database", &DATABASE),
        ("router", &ROUTER),
        ("command", &COMMAND),
    ],
};
pub(super) static RELEASE: Shape = Shape {
    header: "[release]",
    keys: &["name", "description", "on_failure", "hold"],
    nested: &[],
};
pub(super) static SERVICE: Shape = Shape {
    header: "[[service]]",
    keys: &[
        "name",
        "image",
        "current",
        "target",
        "port",
        "candidate_port",
        "replicas",
        "env",
        "secret_env",
        "databases",
        "upstream",
        "health",
        "strategy",
    ],
    nested: &[("health", &HEALTH), ("strategy", &STRATEGY)],
};
pub(super) static HEALTH: Shape = Shape {
    header: "[service.health]",
    keys: &["path", "interval", "timeout", "expect_status"],
    nested: &[],
};
pub(super) static STRATEGY: Shape = Shape {
    header: "[service.strategy]",
    keys: &[
        "kind",
        "batch_size",
        "delay",
        "steps",
        "pause",
        "analysis",
        "bake",
    ],
    nested: &[("analysis", &ANALYSIS), ("bake", &BAKE)],
};
pub(super) static ANALYSIS: Shape = Shape {
    header: "[service.strategy.analysis]",
    keys: &[
        "window",
        "max_error_rate",
        "max_p99_latency",
        "min_requests",
        "max_error_rate_increase",
        "max_latency_ratio",
    ],
    nested: &[],
};
pub(super) static BAKE: Shape = Shape {
    header: "[service.strategy.bake]",
    keys: ANALYSIS.keys,
    nested: &[],
};
pub(super) static DATABASE: Shape = Shape {
    header: "[[database]]",
    keys: &[
        "name",
        "url_env",
        "migrations",
        "baseline",
        "lock_timeout",
        "statement_timeout",
        "backup",
        "backfill",
    ],
    nested: &[("backup", &BACKUP), ("backfill", &BACKFILL)],
};
pub(super) static BACKUP: Shape = Shape {
    header: "[database.backup]",
    keys: &["enabled", "dir"],
    nested: &[],
};
pub(super) static BACKFILL: Shape = Shape {
    header: "[database.backfill]",
    keys: &["batch_size", "pause"],
    nested: &[],
};
pub(super) static ROUTER: Shape = Shape {
    header: "[router]",
    keys: &[
        "kind",
        "upstream_file",
        "pid_file",
        "test",
        "reload",
        "access_log",
        "admin_socket",
        "config_file",
        "log",
    ],
    nested: &[],
};
pub(super) static COMMAND: Shape = Shape {
    header: "[[command]]",
    keys: &[
        "name",
        "stage",
        "argv",
        "timeout",
        "env",
        "secret_env",
        "idempotent",
        "read_only",
        "undo",
        "probe",
    ],
    nested: &[],
};

/// An unknown key: where its name is, the message and the hint.
pub(super) type Unknown = (Range<usize>, String, String);

/// The valid name closest to `key`, if it is close enough to be a slip of the keyboard: at most
/// one edit in a name of up to 4 characters, two up to 8, three beyond (Damerau-Levenshtein, so
/// a swap of two letters is one edit).
pub(super) fn closest<'a>(key: &str, valid: &[&'a str]) -> Option<&'a str> {
    let allowed = match key.chars().count() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    let lower = key.to_lowercase();
    valid
        .iter()
        .map(|v| (strsim::damerau_levenshtein(&lower, v), *v))
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

/// How a key of `shape` is written when its value is a table: `[[service]]` at the top level
/// (arrays of tables) or `[release]`, `[service.health]` below.
fn table_header(shape: &Shape, key: &str, array: bool) -> String {
    let prefix = shape
        .header
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let path = if std::ptr::eq(shape, &ROOT) {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    };
    if array {
        format!("[[{path}]]")
    } else {
        format!("[{path}]")
    }
}

/// Whether a key of `shape` named `key` is written as an array of tables.
fn is_array_table(shape: &Shape, key: &str) -> bool {
    std::ptr::eq(shape, &ROOT) && matches!(key, "service" | "database" | "command")
}

/// The message and hint for an unknown `key` in `shape`, whose value is `value`.
fn describe(shape: &Shape, key: &str, value: &DeValue<'_>, best: Option<&str>) -> (String, String) {
    let array = matches!(value, DeValue::Array(a) if a.iter().all(|v| v.get_ref().is_table()))
        && !matches!(value, DeValue::Array(a) if a.is_empty());
    let message = if value.is_table() || array {
        let written = table_header(shape, key, array);
        match best {
            Some(b) => format!(
                "unknown table `{written}`; did you mean `{}`?",
                table_header(shape, b, is_array_table(shape, b))
            ),
            None => format!("unknown table `{written}`"),
        }
    } else {
        let place = if std::ptr::eq(shape, &ROOT) {
            "at the spec's top level".to_string()
        } else {
            format!("in {}", shape.header)
        };
        match best {
            Some(b) => format!("unknown key `{key}` {place}; did you mean `{b}`?"),
            None => format!("unknown key `{key}` {place}"),
        }
    };
    let allowed = shape
        .keys
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let hint = hint_for_unknown_key(key).unwrap_or_else(|| {
        if std::ptr::eq(shape, &ROOT) {
            "a spec has the tables `[release]`, `[[service]]`, `[[database]]`, `[router]` and \
             `[[command]]`; see plans/README.md"
                .to_string()
        } else {
            format!("check the spelling; the keys allowed here are {allowed}")
        }
    });
    (message, hint)
}

/// Finds every unknown key in `table` (of `shape`) and the tables below it. Each is removed, or
/// renamed to its suggestion when the table does not have that key yet, so that deserializing
/// the rest reports the file's other mistakes rather than the echoes of this one.
pub(super) fn check(table: &mut DeTable<'_>, shape: &Shape, out: &mut Vec<Unknown>) {
    let unknown: Vec<String> = table
        .keys()
        .filter(|k| !shape.keys.contains(&k.get_ref().as_ref()))
        .map(|k| k.get_ref().to_string())
        .collect();
    for key in unknown {
        let (k, v) = table.remove_entry(key.as_str()).expect("listed above");
        let best = closest(&key, shape.keys);
        let (message, hint) = describe(shape, &key, v.get_ref(), best);
        out.push((k.span(), message, hint));
        if let Some(b) = best.filter(|b| !table.contains_key(*b)) {
            table.insert(Spanned::new(k.span(), Cow::Borrowed(b)), v);
        }
    }
    for (key, inner) in shape.nested {
        let Some(value) = table.get_mut(*key) else {
            continue;
        };
        match value.get_mut() {
            DeValue::Table(t) => check(t, inner, out),
            DeValue::Array(items) => {
                for item in items.iter_mut() {
                    if let DeValue::Table(t) = item.get_mut() {
                        check(t, inner, out);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{
        Analysis, Backfill, Backup, Command, Database, Health, Release, ReleaseSpec, Router,
        Service, Strategy,
    };
    use serde::de::DeserializeOwned;

    /// The keys serde's `deny_unknown_fields` error lists for `T`, in declaration order.
    fn serde_keys<T: DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
        let err = toml::from_str::<T>("zzz_not_a_key = 1\n").unwrap_err();
        let message = err.message();
        let expected = message.split("expected").nth(1).expect(message);
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect()
    }

    #[test]
    fn each_shape_lists_exactly_the_fields_of_its_type() {
        let pairs: [(&Shape, Vec<String>); 12] = [
            (&ROOT, serde_keys::<ReleaseSpec>()),
            (&RELEASE, serde_keys::<Release>()),
            (&SERVICE, serde_keys::<Service>()),
            (&HEALTH, serde_keys::<Health>()),
            (&STRATEGY, serde_keys::<Strategy>()),
            (&ANALYSIS, serde_keys::<Analysis>()),
            (&BAKE, serde_keys::<Analysis>()),
            (&DATABASE, serde_keys::<Database>()),
            (&BACKUP, serde_keys::<Backup>()),
            (&BACKFILL, serde_keys::<Backfill>()),
            (&ROUTER, serde_keys::<Router>()),
            (&COMMAND, serde_keys::<Command>()),
        ];
        for (shape, serde) in pairs {
            assert_eq!(shape.keys, serde, "{}", shape.header);
        }
    }

    #[test]
    fn a_slip_of_the_keyboard_gets_the_closest_name_and_a_different_word_none() {
        assert_eq!(closest("servcie", ROOT.keys), Some("service"));
        assert_eq!(closest("services", ROOT.keys), Some("service"));
        assert_eq!(closest("Name", SERVICE.keys), Some("name"));
        assert_eq!(closest("on_falure", RELEASE.keys), Some("on_failure"));
        assert_eq!(closest("replica", SERVICE.keys), Some("replicas"));
        assert_eq!(closest("colour", SERVICE.keys), None);
        assert_eq!(closest("url", DATABASE.keys), None);
    }

    fn unknown_in(text: &str) -> Vec<String> {
        let mut root = DeTable::parse(text).unwrap();
        let mut out = Vec::new();
        check(root.get_mut(), &ROOT, &mut out);
        out.sort_by_key(|(span, _, _)| span.start);
        out.into_iter().map(|(_, m, _)| m).collect()
    }

    #[test]
    fn every_unknown_key_and_table_is_found_in_one_pass_even_under_a_misspelt_table() {
        let text = "[release]\nname = \"r\"\nhodl = true\n\n[[services]]\nnmae = \"api\"\n\n\
                    [services.helth]\npath = \"/\"\n\n[services.strategy]\nkind = \"canary\"\n\
                    [services.strategy.analysis]\nwindw = \"1s\"\n\n[[database]]\nurl = \"x\"\n";
        let text = format!("nmae = \"x\"\n{text}");
        assert_eq!(
            unknown_in(&text),
            [
                "unknown key `nmae` at the spec's top level",
                "unknown key `hodl` in [release]; did you mean `hold`?",
                "unknown table `[[services]]`; did you mean `[[service]]`?",
                "unknown key `nmae` in [[service]]; did you mean `name`?",
                "unknown table `[service.helth]`; did you mean `[service.health]`?",
                "unknown key `windw` in [service.strategy.analysis]; did you mean `window`?",
                "unknown key `url` in [[database]]",
            ]
        );
    }

    #[test]
    fn a_known_spec_has_no_unknown_keys() {
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../plans")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert_eq!(
                    unknown_in(&text),
                    Vec::<String>::new(),
                    "{}",
                    path.display()
                );
            }
        }
    }
}
