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

/// Tables by normalized name, and what the release being analyzed has created so far.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    tables: BTreeMap<String, Table>,
    /// Columns this release added to tables that existed before it, by (table, column), with
    /// whether the column has a default: the running version neither reads nor writes them, so
    /// its inserts leave them NULL (or at their default).
    new_columns: BTreeMap<(String, String), bool>,
    /// Objects this release created, by kind (`view`, `index`, `function`, ...) and normalized
    /// name: no running version uses them yet.
    new_objects: BTreeSet<(&'static str, String)>,
    /// Index name to the normalized name of its table.
    indexes: BTreeMap<String, String>,
    /// Constraints (by table and constraint name) placed after the old version is retired
    /// because they can reject its writes: validating one belongs there too.
    deferred_constraints: BTreeSet<(String, String)>,
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
        self.with_table(table, |t| t.columns.retain(|c| c.name != column));
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

impl Schema {
    /// Whether `column` of `table` was added by this release to a table the running version
    /// already uses; `Some(has_default)` when it was.
    pub fn new_column(&self, table: &str, column: &str) -> Option<bool> {
        self.new_columns
            .get(&(normalize(table), normalize(column)))
            .copied()
    }

    /// Records a column this release adds (ignored for tables the release creates).
    pub fn add_new_column(&mut self, table: &str, column: &str, has_default: bool) {
        if !self.is_new(table) {
            self.new_columns
                .insert((normalize(table), normalize(column)), has_default);
        }
    }

    /// Records that `column` now has (or no longer has) a default.
    pub fn set_new_column_default(&mut self, table: &str, column: &str, has_default: bool) {
        if let Some(d) = self
            .new_columns
            .get_mut(&(normalize(table), normalize(column)))
        {
            *d = has_default;
        }
    }

    /// Records an object this release creates. `kind` is the SQL keyword (`view`, `index`,
    /// `function`, `constraint`, ...); `key` its normalized name (see [`normalize`]), with
    /// `@table` for objects named per table (triggers, policies, rules, constraints).
    pub fn create_object(&mut self, kind: &'static str, key: &str) {
        self.new_objects.insert((kind, key.to_string()));
    }

    /// Whether this release created the object (`key` as for [`Schema::create_object`]).
    pub fn is_new_object(&self, kind: &'static str, key: &str) -> bool {
        self.new_objects.contains(&(kind, key.to_string()))
    }

    /// CREATE INDEX `name` ON `table`.
    pub fn create_index(&mut self, name: &str, table: &str) {
        self.indexes.insert(normalize(name), normalize(table));
    }

    /// The table of an index the migrations created, normalized.
    pub fn index_table(&self, name: &str) -> Option<&str> {
        self.indexes.get(&normalize(name)).map(String::as_str)
    }

    /// Marks a constraint as placed after the old version is retired.
    pub fn defer_constraint(&mut self, table: &str, constraint: &str) {
        self.deferred_constraints
            .insert((normalize(table), normalize(constraint)));
    }

    /// Whether a constraint was placed after the old version is retired.
    pub fn is_deferred_constraint(&self, table: &str, constraint: &str) -> bool {
        self.deferred_constraints
            .contains(&(normalize(table), normalize(constraint)))
    }

    /// Ends a file. Unless the file belongs to the release (`keep_new` false: a file already
    /// applied, or `lint`, which has no release), what it created is no longer new: the running
    /// version may use it.
    pub fn end_file(&mut self, keep_new: bool) {
        if keep_new {
            return;
        }
        for t in self.tables.values_mut() {
            t.created_in_release = false;
        }
        self.new_columns.clear();
        self.new_objects.clear();
        self.deferred_constraints.clear();
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
