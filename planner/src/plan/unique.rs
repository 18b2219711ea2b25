//! The online rewrite of `ALTER TABLE t ADD [CONSTRAINT c] {UNIQUE | PRIMARY KEY} (columns)`:
//! build the index first, without blocking, then attach it.
//!
//! As written, the statement builds the constraint's index under an ACCESS EXCLUSIVE lock:
//! every read and write of the table waits for the whole build. Rewritten:
//!
//! 1. `CREATE UNIQUE INDEX CONCURRENTLY c ON t (columns)`: a SHARE UPDATE EXCLUSIVE lock, reads
//!    and writes go on (PostgreSQL manual, CREATE INDEX, "Building Indexes Concurrently"); a
//!    duplicate makes it fail and leave an INVALID index, which the executor drops;
//! 2. `ALTER TABLE t ADD CONSTRAINT c {UNIQUE | PRIMARY KEY} USING INDEX c`: a brief ACCESS
//!    EXCLUSIVE lock, no build (manual, ALTER TABLE, `ADD table_constraint_using_index`). For a
//!    primary key, PostgreSQL first sets NOT NULL on key columns that lack it, which scans the
//!    table; a column declared NOT NULL is not scanned.
//!
//! The constraint keeps its phase (a unique key can reject the old version's writes: contract).
//! Only the plain form is rewritten: `UNIQUE [NULLS [NOT] DISTINCT] (columns) [INCLUDE
//! (columns)]` or `PRIMARY KEY (columns) [INCLUDE (columns)]`, one action, with the constraint
//! named or PostgreSQL's default name short enough to be known (`<table>_<columns>_key`,
//! `<table>_pkey`, at most 63 bytes); DEFERRABLE, storage parameters, a tablespace or anything
//! else keep the statement as written with its lock finding.

use super::index::Concurrent;
use crate::analysis::Inverse;
use crate::schema::{Schema, bare, normalize, quote_ident};
use squawk_syntax::ast::{self, AstNode};

/// The lock finding of `ADD ... UNIQUE` (squawk's), and the one squawk gives it besides.
const UNIQUE_RULES: &[&str] = &[
    "disallowed-unique-constraint",
    "constraint-missing-not-valid",
];
/// The lock finding of `ADD PRIMARY KEY` (squawk's), and the one squawk gives it besides.
const PRIMARY_RULES: &[&str] = &[
    "adding-serial-primary-key-field",
    "constraint-missing-not-valid",
];

/// A non-trivia token: its lower-cased text and its byte range in the statement.
pub(super) struct Tok {
    pub(super) word: String,
    start: usize,
    end: usize,
}

/// The concurrent form of `at` (whose text is `sql`), or `None` when it is not the plain form
/// described in the module's documentation.
pub(super) fn unique_form(at: &ast::AlterTable, sql: &str, schema: &Schema) -> Option<Concurrent> {
    let toks = tokens(at);
    let (table, only, mut c) = prelude(&toks, sql, "add")?;
    if !c.word("add") || only || schema.is_partitioned(&normalize(&table)) {
        return None;
    }
    let name = if c.word("constraint") {
        Some(c.next(sql)?)
    } else {
        None
    };
    let (kind, rules, suffix) = if c.word("unique") {
        ("UNIQUE", UNIQUE_RULES, "key")
    } else if c.words(&["primary", "key"]) {
        ("PRIMARY KEY", PRIMARY_RULES, "pkey")
    } else {
        return None;
    };
    let nulls = c.nulls(sql);
    let (columns, names) = c.parens(sql)?;
    let include = if c.word("include") {
        Some(c.parens(sql)?.0)
    } else {
        None
    };
    c.punct(";");
    if c.at != toks.len() || (kind == "PRIMARY KEY" && nulls.is_some()) {
        return None;
    }
    let name = match name {
        Some(n) => n,
        None => default_name(&table, &names, suffix)?,
    };
    let index = format!(
        "CREATE UNIQUE INDEX CONCURRENTLY {name} ON {table} {columns}{}{}",
        include.map(|i| format!(" INCLUDE {i}")).unwrap_or_default(),
        nulls.map(|n| format!(" {n}")).unwrap_or_default(),
    );
    let attach = format!("ALTER TABLE {table} ADD CONSTRAINT {name} {kind} USING INDEX {name}");
    Some(Concurrent {
        rules,
        info: super::index::REWRITTEN,
        contract: false,
        sql: vec![
            (index, Inverse::Sql(format!("DROP INDEX IF EXISTS {name};"))),
            (
                attach,
                Inverse::Sql(format!(
                    "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name};"
                )),
            ),
        ],
    })
}

/// PostgreSQL's name for an unnamed constraint, `<table>_<columns>_key` (UNIQUE) or
/// `<table>_pkey`, quoted as needed; `None` when it would pass 63 bytes (PostgreSQL then
/// shortens it by rules not repeated here) or a column is not a plain name.
fn default_name(table: &str, columns: &[String], suffix: &str) -> Option<String> {
    let relation = bare(table.rsplit('.').next()?);
    let mut parts = vec![relation];
    if suffix == "key" {
        parts.extend(columns.iter().cloned());
    }
    parts.push(suffix.to_string());
    let name = parts.join("_");
    (name.len() <= 63).then(|| quote_ident(&name))
}

/// The source text from the first to the last of `toks`, as written.
fn text(sql: &str, toks: &[Tok]) -> Option<String> {
    let (first, last) = (toks.first()?, toks.last()?);
    Some(sql[first.start..last.end].to_string())
}

pub(super) struct Cursor<'a> {
    toks: &'a [Tok],
    pub(super) at: usize,
}

impl Cursor<'_> {
    pub(super) fn word(&mut self, w: &str) -> bool {
        let hit = self.toks.get(self.at).is_some_and(|t| t.word == w);
        self.at += usize::from(hit);
        hit
    }

    fn words(&mut self, ws: &[&str]) -> bool {
        let start = self.at;
        if ws.iter().all(|w| self.word(w)) {
            return true;
        }
        self.at = start;
        false
    }

    fn punct(&mut self, p: &str) -> bool {
        self.word(p)
    }

    /// The next token as written in `sql` (a name).
    pub(super) fn next(&mut self, sql: &str) -> Option<String> {
        let t = self.toks.get(self.at)?;
        if t.word == "(" {
            return None;
        }
        self.at += 1;
        Some(sql[t.start..t.end].to_string())
    }

    /// `NULLS [NOT] DISTINCT`, as written.
    fn nulls(&mut self, sql: &str) -> Option<String> {
        let start = self.at;
        if self.words(&["nulls", "not", "distinct"]) || self.words(&["nulls", "distinct"]) {
            return text(sql, &self.toks[start..self.at]);
        }
        None
    }

    /// A parenthesized list of plain column names: its text as written, and the names
    /// normalized; `None` for anything else (expressions, opclasses, sort orders).
    fn parens(&mut self, sql: &str) -> Option<(String, Vec<String>)> {
        let start = self.at;
        if !self.punct("(") {
            return None;
        }
        let mut names = Vec::new();
        loop {
            let t = self.toks.get(self.at)?;
            let plain = t
                .word
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
                || t.word.starts_with('"');
            if !plain {
                return None;
            }
            names.push(bare(&sql[t.start..t.end]));
            self.at += 1;
            if self.punct(")") {
                break;
            }
            if !self.punct(",") {
                return None;
            }
        }
        Some((text(sql, &self.toks[start..self.at])?, names))
    }
}

/// Parses `sql` and returns its concurrent form, for tests.
#[cfg(test)]
fn form(sql: &str) -> Option<Vec<String>> {
    let Some(ast::Stmt::AlterTable(at)) = super::index::first_statement(sql) else {
        return None;
    };
    unique_form(&at, sql, &Schema::default()).map(|c| c.sql.into_iter().map(|(s, _)| s).collect())
}

#[cfg(test)]
mod tests {
    use super::form;

    #[test]
    fn a_unique_or_primary_key_constraint_is_built_concurrently_then_attached() {
        assert_eq!(
            form("ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);").unwrap(),
            [
                "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email)",
                "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX \
                 users_email_key",
            ]
        );
        assert_eq!(
            form("alter table only_t add unique nulls not distinct (a, \"B\") include (c)")
                .unwrap(),
            [
                "CREATE UNIQUE INDEX CONCURRENTLY \"only_t_a_B_key\" ON only_t (a, \"B\") \
                 INCLUDE (c) nulls not distinct",
                "ALTER TABLE only_t ADD CONSTRAINT \"only_t_a_B_key\" UNIQUE USING INDEX \
                 \"only_t_a_B_key\"",
            ]
        );
        assert_eq!(
            form("ALTER TABLE IF EXISTS app.orders ADD PRIMARY KEY (id)").unwrap(),
            [
                "CREATE UNIQUE INDEX CONCURRENTLY orders_pkey ON app.orders (id)",
                "ALTER TABLE app.orders ADD CONSTRAINT orders_pkey PRIMARY KEY USING INDEX \
                 orders_pkey",
            ]
        );
    }

    #[test]
    fn anything_but_the_plain_form_is_left_as_written() {
        for sql in [
            "ALTER TABLE users ADD CONSTRAINT k UNIQUE (email) DEFERRABLE",
            "ALTER TABLE users ADD CONSTRAINT k UNIQUE (lower(email))",
            "ALTER TABLE users ADD CONSTRAINT k UNIQUE USING INDEX k",
            "ALTER TABLE users ADD CONSTRAINT k UNIQUE (email) WITH (fillfactor = 70)",
            "ALTER TABLE users ADD CONSTRAINT k UNIQUE (email), ADD COLUMN x int",
            "ALTER TABLE ONLY users ADD CONSTRAINT k UNIQUE (email)",
            "ALTER TABLE users ADD CONSTRAINT k CHECK (email <> '')",
            "ALTER TABLE users ADD COLUMN x int",
        ] {
            assert_eq!(form(sql), None, "{sql}");
        }
        // PostgreSQL shortens a default name past 63 bytes by rules not repeated here.
        let long = format!("ALTER TABLE users ADD UNIQUE ({})", "c".repeat(60));
        assert_eq!(form(&long), None);
    }
}

/// The findings a `CHECK` or `FOREIGN KEY` added without `NOT VALID` gets (squawk's).
const NOT_VALID_RULES: &[&str] = &[
    "constraint-missing-not-valid",
    "adding-foreign-key-constraint",
];

/// The two-step form of `ALTER TABLE t ADD CONSTRAINT c {CHECK (...) | FOREIGN KEY (...)
/// REFERENCES ...}` without `NOT VALID`: `ADD CONSTRAINT ... NOT VALID` (a brief lock; rows
/// written from then on are checked), then `VALIDATE CONSTRAINT c` in its own transaction,
/// which scans the table under SHARE UPDATE EXCLUSIVE, so reads and writes go on (manual,
/// ALTER TABLE, `VALIDATE CONSTRAINT` and Notes). The constraint must be named (`VALIDATE`
/// names it); one action only.
pub(super) fn not_valid_form(
    at: &ast::AlterTable,
    sql: &str,
    schema: &Schema,
) -> Option<Concurrent> {
    let toks = tokens(at);
    let (table, _, mut c) = prelude(&toks, sql, "add")?;
    if !c.words(&["add", "constraint"]) {
        return None;
    }
    let name = c.next(sql)?;
    let foreign = c.words(&["foreign", "key"]);
    // PostgreSQL refuses a NOT VALID foreign key on a partitioned table (manual, ALTER TABLE).
    if !(foreign || c.word("check")) || (foreign && schema.is_partitioned(&normalize(&table))) {
        return None;
    }
    // One action: no comma outside parentheses; and not already NOT VALID.
    let mut depth = 0i32;
    for t in &toks[c.at..] {
        match t.word.as_str() {
            "(" => depth += 1,
            ")" => depth -= 1,
            "," if depth == 0 => return None,
            "valid" => return None,
            _ => {}
        }
    }
    // Up to the last token before the `;`: a comment after it (or before the `;`) must not
    // swallow the `NOT VALID` appended here.
    let last = match toks.last()? {
        t if t.word == ";" => toks.get(toks.len().checked_sub(2)?)?,
        t => t,
    };
    let body = &sql[..last.end];
    Some(Concurrent {
        rules: NOT_VALID_RULES,
        info: super::index::VALIDATED_APART,
        contract: false,
        sql: vec![
            (
                format!("{body} NOT VALID"),
                Inverse::Sql(format!(
                    "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name};"
                )),
            ),
            (
                format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name}"),
                Inverse::Noop,
            ),
        ],
    })
}

/// `ALTER TABLE [IF EXISTS] [ONLY] table` up to the word `stop`: the table as written, whether
/// `ONLY` was given, and a cursor at `stop` (or at the end); `None` for another statement or
/// no table.
pub(super) fn prelude<'a>(
    toks: &'a [Tok],
    sql: &str,
    stop: &str,
) -> Option<(String, bool, Cursor<'a>)> {
    let mut c = Cursor { toks, at: 0 };
    if !c.words(&["alter", "table"]) {
        return None;
    }
    c.words(&["if", "exists"]);
    let only = c.word("only");
    let table_start = c.at;
    while c.at < toks.len() && toks[c.at].word != stop {
        c.at += 1;
    }
    let table = text(sql, &toks[table_start..c.at])?;
    Some((table, only, c))
}

/// The statement's non-trivia tokens.
pub(super) fn tokens(at: &ast::AlterTable) -> Vec<Tok> {
    at.syntax()
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .filter(|t| !t.kind().is_trivia())
        .map(|t| Tok {
            word: t.text().to_ascii_lowercase(),
            start: usize::from(t.text_range().start()),
            end: usize::from(t.text_range().end()),
        })
        .collect()
}

#[cfg(test)]
mod not_valid_tests {
    fn form(sql: &str) -> Option<Vec<String>> {
        let Some(super::ast::Stmt::AlterTable(at)) = super::super::index::first_statement(sql)
        else {
            return None;
        };
        super::not_valid_form(&at, sql, &crate::schema::Schema::default())
            .map(|c| c.sql.into_iter().map(|(s, _)| s).collect())
    }

    #[test]
    fn a_check_or_foreign_key_is_added_not_valid_then_validated() {
        // A comment after the statement, even before its `;`, stays after `NOT VALID`.
        assert_eq!(
            form("ALTER TABLE orders ADD CONSTRAINT c CHECK (total > 0) -- must be positive\n;")
                .unwrap()[0],
            "ALTER TABLE orders ADD CONSTRAINT c CHECK (total > 0) NOT VALID"
        );
        assert_eq!(
            form(
                "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) \
                 REFERENCES users (id) ON DELETE CASCADE;"
            )
            .unwrap(),
            [
                "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) \
                 REFERENCES users (id) ON DELETE CASCADE NOT VALID",
                "ALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk",
            ]
        );
        assert_eq!(
            form("alter table public.orders add constraint total_positive check (total > 0)")
                .unwrap(),
            [
                "alter table public.orders add constraint total_positive check (total > 0) NOT \
                 VALID",
                "ALTER TABLE public.orders VALIDATE CONSTRAINT total_positive",
            ]
        );
    }

    #[test]
    fn unnamed_multi_action_or_already_not_valid_is_left_as_written() {
        for sql in [
            "ALTER TABLE orders ADD CHECK (total > 0)",
            "ALTER TABLE orders ADD CONSTRAINT c CHECK (total > 0) NOT VALID",
            "ALTER TABLE orders ADD CONSTRAINT c CHECK (total > 0), ADD COLUMN x int",
            "ALTER TABLE orders ADD CONSTRAINT c UNIQUE (total)",
        ] {
            assert_eq!(form(sql), None, "{sql}");
        }
    }
}
