//! [`Schema`]: what the migrations say about tables, enough for the planner's decisions.
//!
//! The planner never connects to a database, so it learns the schema by replaying the
//! migrations' DDL in version order: column types (the rename rewrite needs the old column's
//! type), primary keys (the backfill walks them), validated `IS NOT NULL` checks (SET NOT NULL is
//! safe after one), and which tables this release creates (nobody uses those yet, so statements
//! on them are safe at any time). What it cannot see (tables made outside the migrations) is
//! simply unknown, and callers fall back to the safe choice.

use std::collections::{BTreeMap, BTreeSet};

/// A column as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Normalized name.
    pub name: String,
    /// Type as written (`varchar(255)`).
    pub ty: String,
    /// Declared NOT NULL (or part of the primary key).
    pub not_null: bool,
}

/// A table as declared.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Columns in declaration order.
    pub columns: Vec<Column>,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// Created by a migration of this release (not yet used by the running version).
    pub created_in_release: bool,
    /// Columns with a validated `CHECK (col IS NOT NULL)`.
    pub not_null_checked: BTreeSet<String>,
    /// Constraint name to column, for `CHECK (col IS NOT NULL) NOT VALID` awaiting VALIDATE.
    pub pending_not_null: BTreeMap<String, String>,
    /// Column to collation, for columns declared with a COLLATE other than `default` (an ALTER
    /// COLUMN TYPE without COLLATE resets it, which rebuilds the column's indexes).
    pub collations: BTreeMap<String, String>,
}

impl Table {
    /// A column by normalized name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn column_mut(&mut self, name: &str) -> Option<&mut Column> {
        self.columns.iter_mut().find(|c| c.name == name)
    }
}

/// Tables by normalized name.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    tables: BTreeMap<String, Table>,
}

/// Normalizes an identifier as PostgreSQL does: unquoted names fold to lower case, quoted ones
/// keep their case; a `public.` schema prefix is dropped.
pub fn normalize(ident: &str) -> String {
    let ident = ident.trim();
    let last = split_qualified(ident);
    let last = if last.len() == 2 && last[0].eq_ignore_ascii_case("public") {
        &last[1..]
    } else {
        &last[..]
    };
    last.iter()
        .map(|part| {
            if part.len() >= 2 && part.starts_with('"') && part.ends_with('"') {
                part[1..part.len() - 1].replace("\"\"", "\"")
            } else {
                part.to_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A collation name as written (`"C"`, `pg_catalog."C"`), normalized like an identifier;
/// `None` for `"default"`, which names the type's default collation.
pub fn normalize_collation(name: &str) -> Option<String> {
    let name = normalize(name);
    let name = name
        .strip_prefix("pg_catalog.")
        .map_or(name.clone(), str::to_string);
    (name != "default").then_some(name)
}

fn split_qualified(ident: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in ident.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => {
                parts.push(ident[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(ident[start..].trim());
    parts
}

impl Schema {
    /// A table by (raw or normalized) name.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(&normalize(name))
    }

    /// Whether `name` was created by a migration of this release.
    pub fn is_new(&self, name: &str) -> bool {
        self.table(name).is_some_and(|t| t.created_in_release)
    }

    /// CREATE TABLE.
    pub fn create_table(
        &mut self,
        name: &str,
        columns: Vec<Column>,
        primary_key: Vec<String>,
        in_release: bool,
    ) {
        let mut table = Table {
            columns,
            primary_key,
            created_in_release: in_release,
            ..Table::default()
        };
        for pk in table.primary_key.clone() {
            if let Some(c) = table.column_mut(&pk) {
                c.not_null = true;
            }
        }
        self.tables.insert(normalize(name), table);
    }

    /// DROP TABLE.
    pub fn drop_table(&mut self, name: &str) {
        self.tables.remove(&normalize(name));
    }

    /// ALTER TABLE ... RENAME TO.
    pub fn rename_table(&mut self, from: &str, to: &str) {
        if let Some(t) = self.tables.remove(&normalize(from)) {
            self.tables.insert(normalize(to), t);
        }
    }

    fn with_table(&mut self, table: &str, f: impl FnOnce(&mut Table)) {
        if let Some(t) = self.tables.get_mut(&normalize(table)) {
            f(t);
        }
    }

    /// ADD COLUMN.
    pub fn add_column(&mut self, table: &str, column: Column) {
        self.with_table(table, |t| {
            t.columns.retain(|c| c.name != column.name);
            t.columns.push(column);
        });
    }

    /// DROP COLUMN.
    pub fn drop_column(&mut self, table: &str, column: &str) {
        let column = normalize(column);
        self.with_table(table, |t| {
            t.columns.retain(|c| c.name != column);
            t.collations.remove(&column);
        });
    }

    /// RENAME COLUMN.
    pub fn rename_column(&mut self, table: &str, from: &str, to: &str) {
        let (from, to) = (normalize(from), normalize(to));
        self.with_table(table, |t| {
            if let Some(c) = t.column_mut(&from) {
                c.name = to.clone();
            }
            for pk in &mut t.primary_key {
                if *pk == from {
                    *pk = to.clone();
                }
            }
            if let Some(collation) = t.collations.remove(&from) {
                t.collations.insert(to.clone(), collation);
            }
        });
    }

    /// The collation a column is declared with (`COLLATE "C"`, normalized); `None` for the
    /// type's default.
    pub fn collation(&self, table: &str, column: &str) -> Option<&str> {
        let t = self.table(table)?;
        t.collations.get(&normalize(column)).map(String::as_str)
    }

    /// A column's collation as written, as a CREATE TABLE, ADD COLUMN or ALTER COLUMN TYPE
    /// leaves it (`None` or `"default"`: the type's default).
    pub fn set_collation(&mut self, table: &str, column: &str, collation: Option<&str>) {
        let column = normalize(column);
        let collation = collation.and_then(normalize_collation);
        self.with_table(table, |t| match collation {
            Some(c) => {
                t.collations.insert(column, c);
            }
            None => {
                t.collations.remove(&column);
            }
        });
    }

    /// ALTER COLUMN TYPE.
    pub fn set_type(&mut self, table: &str, column: &str, ty: &str) {
        let column = normalize(column);
        self.with_table(table, |t| {
            if let Some(c) = t.column_mut(&column) {
                c.ty = ty.to_string();
            }
        });
    }

    /// SET / DROP NOT NULL.
    pub fn set_not_null(&mut self, table: &str, column: &str, not_null: bool) {
        let column = normalize(column);
        self.with_table(table, |t| {
            if let Some(c) = t.column_mut(&column) {
                c.not_null = not_null;
            }
        });
    }

    /// ADD CONSTRAINT name CHECK (column IS NOT NULL) [NOT VALID].
    pub fn add_not_null_check(
        &mut self,
        table: &str,
        constraint: Option<&str>,
        column: &str,
        validated: bool,
    ) {
        let column = normalize(column);
        self.with_table(table, |t| {
            if validated {
                t.not_null_checked.insert(column);
            } else if let Some(name) = constraint {
                t.pending_not_null.insert(normalize(name), column);
            }
        });
    }

    /// VALIDATE CONSTRAINT name.
    pub fn validate_constraint(&mut self, table: &str, constraint: &str) {
        let constraint = normalize(constraint);
        self.with_table(table, |t| {
            if let Some(col) = t.pending_not_null.remove(&constraint) {
                t.not_null_checked.insert(col);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_fold_like_postgres() {
        assert_eq!(normalize("Users"), "users");
        assert_eq!(normalize("\"Users\""), "Users");
        assert_eq!(normalize("public.users"), "users");
        assert_eq!(normalize("app.\"My.Table\""), "app.My.Table");
    }
}
