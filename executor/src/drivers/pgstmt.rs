//! What a statement of a migration that runs outside a transaction does to the catalog, read
//! from its text: enough for the executor to tell, after a crash, whether it took effect, and to
//! make a retry start from a clean state. Only the statements whose effect the catalog shows
//! exactly are judged; everything else is [`Effect::Unknown`] and left to the operator.
//!
//! Names follow PostgreSQL's rules (manual, "Identifiers and Key Words", section 4.1.1): an
//! unquoted identifier is folded to lower case, a quoted one is kept as written with `""` read as
//! `"`. Comments (`--` and nested `/* */`) and string literals are skipped.

/// A qualified name as PostgreSQL stores it: optional schema, then the object's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// Schema, when written.
    pub schema: Option<String>,
    /// The object's name.
    pub name: String,
}

impl Name {
    /// The name quoted for `to_regclass` (`"schema"."name"`), which resolves an unqualified name
    /// through `search_path` as the statement itself did.
    pub fn regclass(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        match &self.schema {
            Some(s) => format!("{}.{}", q(s), q(&self.name)),
            None => q(&self.name),
        }
    }
}

/// What a statement does that the catalog can show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] name ON [ONLY] table ...`: done when
    /// the index exists on the table and is valid (`pg_index.indisvalid`).
    CreateIndex {
        /// The index (created in the table's schema).
        index: String,
        /// The table.
        table: Name,
    },
    /// `CREATE INDEX CONCURRENTLY ON table ...` without a name: PostgreSQL picks one, so the
    /// catalog cannot tell this build's index from another; a failed attempt's INVALID index is
    /// still found (it is new on the table) and dropped.
    CreateUnnamedIndex {
        /// The table.
        table: Name,
    },
    /// `REINDEX {INDEX|TABLE} CONCURRENTLY name`: repeatable, but a failed attempt leaves
    /// INVALID `<index>_ccnew` (or `_ccold`) indexes on the table, to be dropped.
    Reindex {
        /// The index or table named.
        target: Name,
        /// `REINDEX TABLE` (else `REINDEX INDEX`).
        table: bool,
    },
    /// `DROP INDEX CONCURRENTLY [IF EXISTS] name [, ...]`: done when none of them exists.
    DropIndex {
        /// The indexes.
        indexes: Vec<Name>,
    },
    /// `ALTER TABLE [IF EXISTS] [ONLY] table ADD CONSTRAINT name {UNIQUE | PRIMARY KEY} USING
    /// INDEX index`, or `ADD CONSTRAINT name ... NOT VALID` (what `plan` makes of `ADD ...
    /// UNIQUE`, `CHECK` and `FOREIGN KEY` to run them without a long lock): done when the table
    /// has the constraint (`pg_constraint`).
    AttachConstraint {
        /// The table.
        table: Name,
        /// The constraint.
        constraint: String,
    },
    /// `ALTER TABLE [IF EXISTS] [ONLY] table VALIDATE CONSTRAINT name`: done when the constraint
    /// is validated (`pg_constraint.convalidated`).
    ValidateConstraint {
        /// The table.
        table: Name,
        /// The constraint.
        constraint: String,
    },
    /// `ALTER TABLE [IF EXISTS] [ONLY] table ALTER [COLUMN] column SET NOT NULL`: done when the
    /// column is NOT NULL (`pg_attribute.attnotnull`).
    SetNotNull {
        /// The table.
        table: Name,
        /// The column, as PostgreSQL stores it.
        column: String,
    },
    /// `ALTER TABLE [IF EXISTS] [ONLY] table DROP CONSTRAINT [IF EXISTS] name`: done when the
    /// table has no such constraint.
    DropConstraint {
        /// The table.
        table: Name,
        /// The constraint.
        constraint: String,
    },
    /// Running it again changes nothing that matters (SET, RESET, SELECT, SHOW, ANALYZE,
    /// VACUUM, REINDEX without CONCURRENTLY): it does not decide whether the migration took
    /// effect.
    Repeatable,
    /// Anything else: cutover cannot tell from the catalog whether it ran.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An unquoted word, lower-cased.
    Word(String),
    /// A quoted identifier, as written.
    Quoted(String),
    Punct(char),
    Other,
}

fn tokens(sql: &str) -> Vec<Tok> {
    let c: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '-' && c.get(i + 1) == Some(&'-') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == '"' {
            let mut s = String::new();
            i += 1;
            while i < c.len() {
                if c[i] == '"' {
                    if c.get(i + 1) == Some(&'"') {
                        s.push('"');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                s.push(c[i]);
                i += 1;
            }
            out.push(Tok::Quoted(s));
        } else if ch == '\'' {
            i += 1;
            while i < c.len() {
                if c[i] == '\'' {
                    if c.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            out.push(Tok::Other);
        } else if ch.is_alphabetic() || ch == '_' {
            let mut s = String::new();
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '$') {
                s.extend(c[i].to_lowercase());
                i += 1;
            }
            out.push(Tok::Word(s));
        } else if "(),.;".contains(ch) {
            out.push(Tok::Punct(ch));
            i += 1;
        } else {
            out.push(Tok::Other);
            i += 1;
        }
    }
    out
}

struct Cursor {
    toks: Vec<Tok>,
    at: usize,
}

impl Cursor {
    fn word(&mut self, w: &str) -> bool {
        if matches!(self.toks.get(self.at), Some(Tok::Word(x)) if x == w) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn words(&mut self, ws: &[&str]) -> bool {
        let save = self.at;
        for w in ws {
            if !self.word(w) {
                self.at = save;
                return false;
            }
        }
        true
    }

    fn ident(&mut self) -> Option<String> {
        let t = match self.toks.get(self.at)? {
            Tok::Word(w) => w.clone(),
            Tok::Quoted(q) => q.clone(),
            _ => return None,
        };
        self.at += 1;
        Some(t)
    }

    fn punct(&mut self, p: char) -> bool {
        if self.toks.get(self.at) == Some(&Tok::Punct(p)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn name(&mut self) -> Option<Name> {
        let first = self.ident()?;
        if self.punct('.') {
            let second = self.ident()?;
            if self.punct('.') {
                // database.schema.name: the database part must be the current one anyway.
                let third = self.ident()?;
                return Some(Name {
                    schema: Some(second),
                    name: third,
                });
            }
            return Some(Name {
                schema: Some(first),
                name: second,
            });
        }
        Some(Name {
            schema: None,
            name: first,
        })
    }
}

/// Whether a `CREATE [UNIQUE] INDEX ...` says `IF NOT EXISTS` (it then takes an index of that
/// name already there as done, by PostgreSQL's own rule).
pub fn if_not_exists(sql: &str) -> bool {
    let toks = tokens(sql);
    toks.windows(3).any(|w| {
        matches!(w, [Tok::Word(a), Tok::Word(b), Tok::Word(c)]
            if a == "if" && b == "not" && c == "exists")
    })
}

/// The effect of one statement: by its first word, then `reindex`, `create_index` or
/// `drop_index` read the rest.
pub fn effect(sql: &str) -> Effect {
    let toks = tokens(sql);
    let first = match toks.first() {
        Some(Tok::Word(w)) => w.clone(),
        None => return Effect::Repeatable,
        _ => return Effect::Unknown,
    };
    let mut c = Cursor { toks, at: 1 };
    let effect = match first.as_str() {
        "set" | "reset" | "select" | "show" | "analyze" | "analyse" | "vacuum" => {
            Some(Effect::Repeatable)
        }
        "reindex" => reindex(&mut c),
        "create" => create_index(&mut c),
        "drop" => drop_index(&mut c),
        "alter" => attach_constraint(&mut c),
        _ => None,
    };
    effect.unwrap_or(Effect::Unknown)
}

/// `REINDEX [ ( options ) ] { INDEX | TABLE | SCHEMA | DATABASE | SYSTEM } [ CONCURRENTLY ]
/// name`, after `REINDEX`; `None`: unknown.
fn reindex(c: &mut Cursor) -> Option<Effect> {
    if c.punct('(') {
        while !c.punct(')') {
            if c.at >= c.toks.len() {
                return None;
            }
            c.at += 1;
        }
    }
    let table = if c.word("index") {
        false
    } else if c.word("table") {
        true
    } else {
        // A schema or the whole database: repeatable, and its leftovers are too many to name;
        // left to the operator if it fails.
        let concurrently = c
            .toks
            .iter()
            .any(|t| matches!(t, Tok::Word(w) if w == "concurrently"));
        return (!concurrently).then_some(Effect::Repeatable);
    };
    if !c.word("concurrently") {
        return Some(Effect::Repeatable);
    }
    Some(Effect::Reindex {
        target: c.name()?,
        table,
    })
}

/// `CREATE [ UNIQUE ] INDEX CONCURRENTLY [ IF NOT EXISTS ] [ name ] ON [ ONLY ] table ...`,
/// after `CREATE`; `None`: unknown (any other CREATE too).
fn create_index(c: &mut Cursor) -> Option<Effect> {
    c.word("unique");
    if !c.words(&["index", "concurrently"]) {
        return None;
    }
    c.words(&["if", "not", "exists"]);
    if c.word("on") {
        // Unnamed: PostgreSQL picks the name, so the catalog cannot be asked by name.
        c.word("only");
        return Some(Effect::CreateUnnamedIndex { table: c.name()? });
    }
    let index = c.ident()?;
    if !c.word("on") {
        return None;
    }
    c.word("only");
    Some(Effect::CreateIndex {
        index,
        table: c.name()?,
    })
}

/// `DROP INDEX CONCURRENTLY [ IF EXISTS ] name [, ...] [ CASCADE | RESTRICT ]`, after `DROP`;
/// `None`: unknown (any other DROP too).
fn drop_index(c: &mut Cursor) -> Option<Effect> {
    if !c.words(&["index", "concurrently"]) {
        return None;
    }
    c.words(&["if", "exists"]);
    let mut indexes = Vec::new();
    loop {
        indexes.push(c.name()?);
        if !c.punct(',') {
            break;
        }
    }
    c.word("cascade");
    c.word("restrict");
    c.punct(';');
    (c.at == c.toks.len()).then_some(Effect::DropIndex { indexes })
}

/// `TABLE [IF EXISTS] [ONLY] table` then `ADD CONSTRAINT name {UNIQUE | PRIMARY KEY} USING
/// INDEX index`, `ADD CONSTRAINT name ... NOT VALID` or `VALIDATE CONSTRAINT name`, after
/// `ALTER`; `None`: unknown (any other ALTER too).
fn attach_constraint(c: &mut Cursor) -> Option<Effect> {
    if !c.word("table") {
        return None;
    }
    c.words(&["if", "exists"]);
    c.word("only");
    let table = c.name()?;
    if c.word("alter") {
        c.word("column");
        let column = c.ident()?;
        let set = c.words(&["set", "not", "null"]);
        c.punct(';');
        return (set && c.at == c.toks.len()).then_some(Effect::SetNotNull { table, column });
    }
    if c.words(&["drop", "constraint"]) {
        c.words(&["if", "exists"]);
        let constraint = c.ident()?;
        c.word("restrict");
        c.punct(';');
        return (c.at == c.toks.len()).then_some(Effect::DropConstraint { table, constraint });
    }
    if c.words(&["validate", "constraint"]) {
        let constraint = c.ident()?;
        c.punct(';');
        return (c.at == c.toks.len()).then_some(Effect::ValidateConstraint { table, constraint });
    }
    if !c.words(&["add", "constraint"]) {
        return None;
    }
    let constraint = c.ident()?;
    if (c.word("unique") || c.words(&["primary", "key"])) && c.words(&["using", "index"]) {
        c.ident()?;
        c.punct(';');
        return (c.at == c.toks.len()).then_some(Effect::AttachConstraint { table, constraint });
    }
    // `... NOT VALID`: one action (no comma outside parentheses), ending so.
    let rest = &c.toks[c.at..];
    let rest = match rest.last() {
        Some(Tok::Punct(';')) => &rest[..rest.len() - 1],
        _ => rest,
    };
    let mut depth = 0i32;
    for t in rest {
        match t {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth -= 1,
            Tok::Punct(',') if depth == 0 => return None,
            _ => {}
        }
    }
    let not_valid = matches!(
        rest,
        [.., Tok::Word(a), Tok::Word(b)] if a == "not" && b == "valid"
    );
    not_valid.then_some(Effect::AttachConstraint { table, constraint })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(schema: Option<&str>, name: &str) -> Name {
        Name {
            schema: schema.map(str::to_string),
            name: name.into(),
        }
    }

    #[test]
    fn index_statements_are_read_as_postgresql_reads_them() {
        assert_eq!(
            effect("CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);"),
            Effect::CreateIndex {
                index: "users_email_idx".into(),
                table: n(None, "users")
            }
        );
        // Unquoted names fold to lower case; quoted ones keep their case and escaped quotes.
        assert_eq!(
            effect(
                "create UNIQUE index concurrently Users_Email ON Public.Users USING btree \
                 (lower(email))"
            ),
            Effect::CreateIndex {
                index: "users_email".into(),
                table: n(Some("public"), "users")
            }
        );
        assert_eq!(
            effect("CREATE INDEX CONCURRENTLY \"Odd \"\"Name\" ON ONLY \"App\".\"Events\" (kind)"),
            Effect::CreateIndex {
                index: "Odd \"Name".into(),
                table: n(Some("App"), "Events")
            }
        );
        // Comments before and inside.
        assert_eq!(
            effect(
                "-- speeds up the feed\n/* a /* nested */ note */ CREATE INDEX CONCURRENTLY \
                 feed_idx -- why\n ON feed (created_at)"
            ),
            Effect::CreateIndex {
                index: "feed_idx".into(),
                table: n(None, "feed")
            }
        );
        assert_eq!(
            effect("CREATE INDEX CONCURRENTLY ON t (a)"),
            Effect::CreateUnnamedIndex {
                table: n(None, "t")
            }
        );
        assert_eq!(
            effect("DROP INDEX CONCURRENTLY IF EXISTS a, s.\"B\" CASCADE;"),
            Effect::DropIndex {
                indexes: vec![n(None, "a"), n(Some("s"), "B")]
            }
        );
        assert_eq!(
            effect("DROP INDEX CONCURRENTLY rt03_events_kind_idx;"),
            Effect::DropIndex {
                indexes: vec![n(None, "rt03_events_kind_idx")]
            }
        );
        assert_eq!(effect("SET lock_timeout = '1s'"), Effect::Repeatable);
        assert_eq!(
            effect("REINDEX INDEX CONCURRENTLY a"),
            Effect::Reindex {
                target: n(None, "a"),
                table: false
            }
        );
        assert_eq!(
            effect("REINDEX (VERBOSE) TABLE CONCURRENTLY app.t"),
            Effect::Reindex {
                target: n(Some("app"), "t"),
                table: true
            }
        );
        assert_eq!(effect("REINDEX INDEX a"), Effect::Repeatable);
        assert_eq!(effect("REINDEX SCHEMA CONCURRENTLY app"), Effect::Unknown);
        assert_eq!(
            effect("ALTER TABLE m DETACH PARTITION m_2020 CONCURRENTLY"),
            Effect::Unknown
        );
        assert_eq!(effect("ALTER TYPE mood ADD VALUE 'meh'"), Effect::Unknown);
        assert_eq!(
            effect("ALTER TABLE app.users ADD CONSTRAINT \"Email\" UNIQUE USING INDEX \"Email\";"),
            Effect::AttachConstraint {
                table: n(Some("app"), "users"),
                constraint: "Email".into(),
            }
        );
        assert_eq!(
            effect(
                "ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_pkey"
            ),
            Effect::AttachConstraint {
                table: n(None, "users"),
                constraint: "users_pkey".into(),
            }
        );
        assert_eq!(
            effect("ALTER TABLE users ADD CONSTRAINT k UNIQUE (email)"),
            Effect::Unknown
        );
        assert_eq!(
            effect(
                "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id) NOT \
                 VALID;"
            ),
            Effect::AttachConstraint {
                table: n(None, "orders"),
                constraint: "fk".into(),
            }
        );
        assert_eq!(
            effect("ALTER TABLE users ALTER COLUMN \"Email\" SET NOT NULL;"),
            Effect::SetNotNull {
                table: n(None, "users"),
                column: "Email".into(),
            }
        );
        assert_eq!(
            effect("ALTER TABLE users DROP CONSTRAINT users_email_not_null"),
            Effect::DropConstraint {
                table: n(None, "users"),
                constraint: "users_email_not_null".into(),
            }
        );
        assert_eq!(
            effect("ALTER TABLE users DROP CONSTRAINT c CASCADE"),
            Effect::Unknown
        );
        assert_eq!(
            effect("ALTER TABLE users ALTER COLUMN email DROP NOT NULL"),
            Effect::Unknown
        );
        assert_eq!(
            effect("ALTER TABLE orders VALIDATE CONSTRAINT fk;"),
            Effect::ValidateConstraint {
                table: n(None, "orders"),
                constraint: "fk".into(),
            }
        );
        assert_eq!(
            effect("ALTER TABLE orders ADD CONSTRAINT c CHECK (a > 0) NOT VALID, ADD COLUMN b int"),
            Effect::Unknown
        );
        assert_eq!(n(Some("a\"b"), "c").regclass(), "\"a\"\"b\".\"c\"");
    }
}
