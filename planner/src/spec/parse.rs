//! [`ReleaseSpec::parse`]: from TOML text to a checked spec, or every problem found in it.
//!
//! The text is parsed into toml's spanned tables first; [`keys::check`] finds every unknown key
//! and table, each table is then deserialized on its own for its first type error, and when the
//! types are right [`ReleaseSpec::validate`] checks the values.

use super::{Command, Database, Release, ReleaseSpec, Router, Service, keys};
use crate::error::Diagnostic;
use crate::source::{LineIndex, Location};
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Keys that people try and that cutover refuses on purpose, with the reason.
pub(super) fn hint_for_unknown_key(key: &str) -> Option<String> {
    let hint = match key {
        "url" | "password" | "dsn" | "connection" | "connection_string" => {
            "cutover never reads a connection string from the spec: export it in an environment \
             variable and name that variable with `url_env = \"DATABASE_URL\"`"
        }
        "cmd" | "shell" | "script" | "run" => {
            "commands are argv lists run without a shell: `argv = [\"./smoke.sh\", \"--fast\"]`"
        }
        "weights" => "canary weights are written `steps = [10, 25, 50, 100]`",
        "strategy" => "`strategy` belongs to a service: `[service.strategy]` under `[[service]]`",
        _ => return None,
    };
    Some(hint.to_string())
}

/// The hint for a serde or TOML error message.
fn hint_for_error(message: &str) -> String {
    let after_expected = || message.split("expected").nth(1).map(str::trim);
    if message.starts_with("unknown field") {
        let expected = after_expected()
            .unwrap_or("")
            .trim_start_matches("one of")
            .trim();
        format!(
            "check the spelling; the keys allowed here are {}",
            expected.trim_end_matches('.')
        )
    } else if message.starts_with("unknown variant") {
        format!(
            "use {}",
            after_expected()
                .unwrap_or("another value")
                .trim_end_matches('.')
        )
    } else if message.starts_with("invalid type") {
        let expected = match after_expected().unwrap_or("another type") {
            "u16" => "a whole number from 0 to 65535",
            "u32" | "u64" => "a whole number",
            "a sequence" => "a list, e.g. [\"a\", \"b\"]",
            other => other,
        };
        if expected.starts_with("a duration") {
            return "durations are strings: a number and a unit (ms, s, m or h) in quotes, e.g. \
                    \"30s\" or \"1m30s\""
                .to_string();
        }
        format!(
            "this key takes {expected}: numbers and true/false are written without quotes, \
             durations as strings like \"30s\""
        )
    } else if message.contains("duration `") {
        "durations are a whole number and one unit (ms, s, m or h), at most 596h, e.g. \"30s\""
            .to_string()
    } else if message.starts_with("missing field") {
        "see plans/README.md for every key of a release spec".to_string()
    } else {
        "the spec must be valid TOML; see plans/README.md".to_string()
    }
}

/// Turns byte ranges of one spec into [`Location`]s and errors into [`Diagnostic`]s.
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
    index: LineIndex,
}

impl Locator<'_> {
    fn at(&self, span: Range<usize>) -> Location {
        let (line, col) = self.index.line_col(self.text, span.start);
        Location::at(self.file, line, col)
    }

    /// A TOML syntax or serde error, with the hint its message calls for.
    fn error(&self, e: &toml::de::Error) -> Diagnostic {
        let message = e.message().trim().to_string();
        Diagnostic {
            location: e
                .span()
                .map_or_else(|| Location::file(self.file), |s| self.at(s)),
            hint: Some(hint_for_error(&message)),
            message: format!("invalid release spec: {message}"),
            doc: None,
            finding: None,
        }
    }
}

/// Deserializes `value` as a `T` only to see whether it can be: the error, if any.
fn probe<T: serde::de::DeserializeOwned>(value: &Spanned<DeValue<'_>>) -> Option<toml::de::Error> {
    T::deserialize(toml::de::ValueDeserializer::from(value.clone())).err()
}

/// As [`probe`], for each table of an array of tables (`[[service]]`): one error per table.
fn probe_each<T: serde::de::DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
) -> Vec<toml::de::Error> {
    match value.get_ref() {
        DeValue::Array(items) => items.iter().filter_map(probe::<T>).collect(),
        _ => probe::<Vec<T>>(value).into_iter().collect(),
    }
}

/// The first type error of each top-level table and of each table of an array of tables, so a
/// wrong value in one service does not hide one in a database.
fn section_errors(root: &DeTable<'_>) -> Vec<toml::de::Error> {
    let mut out = Vec::new();
    for (key, value) in root {
        if bracket_mistake(key.get_ref(), value.get_ref()).is_some() {
            continue;
        }
        match key.get_ref().as_ref() {
            "release" => out.extend(probe::<Release>(value)),
            "router" => out.extend(probe::<Router>(value)),
            "service" => out.extend(probe_each::<Service>(value)),
            "database" => out.extend(probe_each::<Database>(value)),
            "command" => out.extend(probe_each::<Command>(value)),
            _ => {}
        }
    }
    out
}

/// The tables a spec repeats (`[[service]]`) and the ones it has once (`[release]`).
const REPEATED: &[&str] = &["service", "database", "command"];
const SINGLE: &[&str] = &["release", "router"];

/// A section written with one pair of brackets where it takes two, or the reverse: the
/// message and hint to give instead of serde's "invalid type: map, expected a sequence".
fn bracket_mistake(key: &str, value: &DeValue<'_>) -> Option<(String, String)> {
    match value {
        DeValue::Table(_) if REPEATED.contains(&key) => Some((
            format!("`[{key}]` is one table, but a spec lists each {key} as an array of tables"),
            format!(
                "write `[[{key}]]` (two pairs of brackets) above each {key}; its sub-tables \
                 stay `[{key}.<name>]`"
            ),
        )),
        DeValue::Array(_) if SINGLE.contains(&key) => Some((
            format!("`[[{key}]]` is an array of tables, but a spec has one `{key}` table"),
            format!("write `[{key}]` (one pair of brackets)"),
        )),
        _ => None,
    }
}

/// A diagnostic for each section written with the wrong brackets ([`bracket_mistake`]).
fn bracket_errors(root: &DeTable<'_>, loc: &Locator<'_>) -> Vec<Diagnostic> {
    root.iter()
        .filter_map(|(key, value)| {
            let (message, hint) = bracket_mistake(key.get_ref(), value.get_ref())?;
            Some(Diagnostic::new(loc.at(key.span()), message, hint))
        })
        .collect()
}

impl ReleaseSpec {
    /// Parses and validates a spec. `file` is the name used in messages.
    ///
    /// Reports every problem it can find in one go: all unknown keys and tables (with the
    /// closest valid name), the first type error of each table, and, when the types are right,
    /// every failed check of the values. TOML syntax errors are reported alone
    /// (every one the parser finds): the tables around them are not known for sure.
    pub fn parse(file: &str, text: &str) -> Result<Self, Vec<Diagnostic>> {
        let text = crate::source::strip_bom(text);
        let loc = Locator {
            file,
            text,
            index: LineIndex::new(text),
        };
        let (mut root, syntax) = DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            // What a syntax error leaves of the tables is a guess: report the errors alone.
            let mut errors: Vec<Diagnostic> = syntax.iter().map(|e| loc.error(e)).collect();
            errors.sort_by_key(|d| (d.location.line, d.location.column));
            return Err(errors);
        }
        let mut unknown = Vec::new();
        keys::check(root.get_mut(), &keys::ROOT, &mut unknown);
        let mut errors: Vec<Diagnostic> = unknown
            .into_iter()
            .map(|(span, message, hint)| Diagnostic::new(loc.at(span), message, hint))
            .collect();
        let brackets = bracket_errors(root.get_ref(), &loc);
        let sections = section_errors(root.get_ref());
        errors.extend(sections.iter().map(|e| loc.error(e)));
        let mut parsed = None;
        if sections.is_empty() && brackets.is_empty() {
            match ReleaseSpec::deserialize(toml::de::Deserializer::from(root)) {
                Ok(spec) => {
                    errors.extend(spec.validate(text, &|span| loc.at(span)));
                    parsed = Some(spec);
                }
                Err(e) => errors.push(loc.error(&e)),
            }
        }
        errors.extend(brackets);
        errors.sort_by_key(|d| (d.location.line, d.location.column));
        match parsed {
            Some(spec) if errors.is_empty() => Ok(spec),
            _ => Err(errors),
        }
    }
}
