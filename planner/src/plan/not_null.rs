//! The online rewrite of `ALTER TABLE t ALTER [COLUMN] c SET NOT NULL` on a column the running
//! version may still write NULL into.
//!
//! As written it is breaking twice over: it scans the whole table under an ACCESS EXCLUSIVE lock,
//! and from then on it fails the old version's writes of NULL. Rewritten, it runs after the old
//! version is retired (contract), in four transactions of its own:
//!
//! 1. `ADD CONSTRAINT t_c_not_null CHECK (c IS NOT NULL) NOT VALID`: a brief lock; new rows are
//!    checked;
//! 2. `VALIDATE CONSTRAINT t_c_not_null`: scans the existing rows under SHARE UPDATE EXCLUSIVE,
//!    so reads and writes go on; it fails, naming the constraint, while NULL rows remain;
//! 3. `ALTER COLUMN c SET NOT NULL`: PostgreSQL skips its scan because the valid CHECK proves no
//!    NULL is there (manual, ALTER TABLE, `SET NOT NULL`: "if a valid CHECK constraint exists
//!    ... the table scan is skipped", PostgreSQL 12 and later);
//! 4. `DROP CONSTRAINT t_c_not_null`: the check is redundant now.
//!
//! The executor judges each from the catalog after a crash (the constraint exists, is
//! validated, the column is NOT NULL, the constraint is gone), so a resume does what is left.
//! NULL rows already there are not filled: the validation fails on them with its error, and the
//! rows are the author's to fill (an `UPDATE` in an earlier migration) before a resume.

use super::index::Concurrent;
use super::unique::{prelude, tokens};
use crate::analysis::Inverse;
use crate::schema::{bare, quote_ident};
use squawk_syntax::ast;

/// The finding a breaking `SET NOT NULL` gets.
const RULES: &[&str] = &["breaking-set-not-null"];
/// The info finding of the rewrite.
pub(super) const ENFORCED: &str = "not-null-via-check";

/// The four-step form of `at` (text `sql`): `ALTER TABLE [IF EXISTS] table ALTER [COLUMN] c SET
/// NOT NULL`, one action; `None` for anything else, or when the check's name would pass 63
/// bytes.
pub(super) fn not_null_form(at: &ast::AlterTable, sql: &str) -> Option<Concurrent> {
    let toks = tokens(at);
    let (table, only, mut c) = prelude(&toks, sql, "alter")?;
    if only || !c.word("alter") {
        return None;
    }
    c.word("column");
    let column = c.next(sql)?;
    let rest: Vec<&str> = toks[c.at..]
        .iter()
        .map(|t| t.word.as_str())
        .filter(|w| *w != ";")
        .collect();
    if rest != ["set", "not", "null"] {
        return None;
    }
    let (table, column) = (table.as_str(), column.as_str());
    let relation = bare(table.rsplit('.').next()?);
    let check = format!("{relation}_{}_not_null", bare(column));
    if check.len() > 63 {
        return None;
    }
    let check = quote_ident(&check);
    Some(Concurrent {
        rules: RULES,
        info: ENFORCED,
        contract: true,
        sql: vec![
            (
                format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID"
                ),
                Inverse::Sql(format!(
                    "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check};"
                )),
            ),
            (
                format!("ALTER TABLE {table} VALIDATE CONSTRAINT {check}"),
                Inverse::Noop,
            ),
            (
                format!("ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL"),
                Inverse::Sql(format!(
                    "ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL;"
                )),
            ),
            (
                format!("ALTER TABLE {table} DROP CONSTRAINT {check}"),
                Inverse::Noop,
            ),
        ],
    })
}

#[cfg(test)]
mod tests {
    fn form(sql: &str) -> Option<Vec<String>> {
        let Some(super::ast::Stmt::AlterTable(at)) = super::super::index::first_statement(sql)
        else {
            return None;
        };
        super::not_null_form(&at, sql).map(|c| c.sql.into_iter().map(|(s, _)| s).collect())
    }

    #[test]
    fn set_not_null_is_enforced_through_a_validated_check() {
        assert_eq!(
            form("ALTER TABLE users ALTER COLUMN email SET NOT NULL;").unwrap(),
            [
                "ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) \
                 NOT VALID",
                "ALTER TABLE users VALIDATE CONSTRAINT users_email_not_null",
                "ALTER TABLE users ALTER COLUMN email SET NOT NULL",
                "ALTER TABLE users DROP CONSTRAINT users_email_not_null",
            ]
        );
        assert_eq!(
            form("alter table if exists app.\"Users\" alter \"Email\" set not null").unwrap()[0],
            "ALTER TABLE app.\"Users\" ADD CONSTRAINT \"Users_Email_not_null\" CHECK (\"Email\" \
             IS NOT NULL) NOT VALID"
        );
    }

    #[test]
    fn anything_else_is_left_as_written() {
        for sql in [
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL, ALTER COLUMN name SET NOT NULL",
            "ALTER TABLE ONLY users ALTER COLUMN email SET NOT NULL",
            "ALTER TABLE users ALTER COLUMN email DROP NOT NULL",
            "ALTER TABLE users ALTER COLUMN email SET DEFAULT ''",
        ] {
            assert_eq!(form(sql), None, "{sql}");
        }
    }
}
