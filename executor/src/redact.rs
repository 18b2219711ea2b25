//! [`Redactor`]: keeps secrets out of the log and the terminal.
//!
//! Two kinds of secret are removed from every record before it is written and from every message
//! before it is printed: the values of environment variables the plan marks secret (`secret_env`,
//! and each database's `url_env`), and the password part of any `scheme://user:password@host` URL.
//!
//! [`secret_variables`] is the one list of those variables, read from the plan (which carries
//! every one the spec names, in the preflight step and in the steps that use them): `apply`,
//! `resume` and `rollback` redact the same secrets, whether they start from the spec or from the
//! recorded plan.

use cutover_planner::dag::{Params, Plan};
use std::collections::BTreeSet;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Replaces known secret values and URL passwords.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for `values` (empty and very short values are ignored: replacing every `a`
    /// would destroy the text without protecting anything).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = values.into_iter().filter(|v| v.len() >= 4).collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// The secrets `plan` names ([`secret_variables`]), read from the environment.
    pub fn for_plan(plan: &Plan) -> Self {
        Self::new(
            secret_variables(plan)
                .iter()
                .filter_map(|n| std::env::var(n).ok()),
        )
    }

    /// `text` with every secret and URL password replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
            // The same value as it appears inside JSON strings.
            let escaped = serde_json::to_string(s).expect("strings serialize");
            let escaped = &escaped[1..escaped.len() - 1];
            if escaped != s && out.contains(escaped) {
                out = out.replace(escaped, REDACTED);
            }
        }
        redact_url_passwords(&out)
    }
}

/// The environment variables whose values are secret in `plan`: every database's `url_env` and
/// every `secret_env`, of whichever step names them. Each step kind is listed, so a new kind that
/// takes a secret cannot be forgotten here.
pub fn secret_variables(plan: &Plan) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for step in plan.steps() {
        match &step.params {
            Params::Preflight(p) => {
                names.extend(p.databases.iter().map(|d| d.url_env.clone()));
                names.extend(p.secret_env.iter().cloned());
            }
            Params::Backup(p) => {
                names.insert(p.url_env.clone());
            }
            Params::Migrate(p) => {
                names.insert(p.url_env.clone());
            }
            Params::Backfill(p) => {
                names.insert(p.url_env.clone());
            }
            Params::Deploy(p) => names.extend(p.secret_env.iter().cloned()),
            Params::Command(p) => names.extend(p.secret_env.iter().cloned()),
            Params::Health(_)
            | Params::Shift(_)
            | Params::Pause(_)
            | Params::Analysis(_)
            | Params::Retire(_)
            | Params::Cleanup(_) => {}
        }
    }
    names
}

/// `postgres://app:hunter2@db/x` → `postgres://app:[redacted]@db/x`, anywhere in `text`.
pub fn redact_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace, quote or end.
        let end = tail
            .find(|c: char| c == '/' || c == '"' || c == '\'' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon + 1]);
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_password_parameters(&out)
}

/// `...?sslmode=require&password=hunter2` → `...&password=[redacted]`, and the same for a
/// conninfo `password=hunter2` and `sslpassword=`: libpq takes a password as a parameter too
/// (PostgreSQL manual, "Connection Strings", section 34.1.1). The value ends at `&`, white
/// space, a quote or the end.
fn redact_password_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("password=") {
        let key_start = if rest[..i].ends_with("ssl") { i - 3 } else { i };
        let boundary = rest[..key_start].chars().next_back();
        let is_param = matches!(
            boundary,
            None | Some('?' | '&' | ' ' | '\t' | '\n' | '"' | '\'')
        );
        let value_start = i + "password=".len();
        out.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        if is_param {
            let end = rest
                .find(|c: char| c == '&' || c == '"' || c == '\'' || c.is_whitespace())
                .unwrap_or(rest.len());
            if end > 0 {
                out.push_str(REDACTED);
            }
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords_only() {
        assert_eq!(
            redact_url_passwords("connect postgres://app:s3cret@db:5432/app failed"),
            "connect postgres://app:[redacted]@db:5432/app failed"
        );
        assert_eq!(
            redact_url_passwords("postgres://app@db/app and http://x/y:z@w"),
            "postgres://app@db/app and http://x/y:z@w"
        );
        assert_eq!(redact_url_passwords("no url here"), "no url here");
        assert_eq!(
            redact_url_passwords("postgres://app@db/app?sslmode=require&password=s3cret failed"),
            "postgres://app@db/app?sslmode=require&password=[redacted] failed"
        );
        assert_eq!(
            redact_url_passwords("`postgres://db/app?password=a%26b&user=x`"),
            "`postgres://db/app?password=[redacted]&user=x`"
        );
        assert_eq!(
            redact_url_passwords("host=db sslpassword=k3y password=pw dbname=app"),
            "host=db sslpassword=[redacted] password=[redacted] dbname=app"
        );
        // Not a parameter: left alone.
        assert_eq!(
            redact_url_passwords("wrong_password=3 attempts"),
            "wrong_password=3 attempts"
        );
    }

    #[test]
    fn secret_values_are_replaced_raw_and_json_escaped() {
        let r = Redactor::new(["pa\"ss-word".to_string(), "abc".to_string()]);
        assert_eq!(r.redact("token=pa\"ss-word;"), "token=[redacted];");
        let json = serde_json::to_string("x pa\"ss-word y").unwrap();
        assert_eq!(r.redact(&json), "\"x [redacted] y\"");
        // Too short to be worth redacting (and would shred ordinary text).
        assert_eq!(r.redact("abc"), "abc");
    }
}
