//! Column type changes: [`judge`] says whether PostgreSQL changes a column's type in place, and
//! so whether `ALTER COLUMN ... TYPE` is safe while the old version runs ([`TypeChange`]).
//!
//! PostgreSQL rewrites the table and rebuilds its indexes for a type change unless the old type is
//! binary coercible to the new one and no value needs a check or a conversion (manual: ALTER
//! TABLE, Notes; release notes 9.2, "Reduce need to rebuild tables and indexes for certain ALTER
//! TABLE ... ALTER COLUMN TYPE operations"). The changes it makes in place, and that the old
//! version cannot notice in the values it reads and writes, are the rows of [`NO_REWRITE`]; every
//! other change is breaking. The examples of each row, and [`BREAKING_EXAMPLES`], are run against
//! PostgreSQL 15 by the suite (`tests/it/column_types.rs`), which compares `pg_relation_filenode`
//! of the table and of an index on the column before and after, so this table and the server
//! cannot drift apart.
//!
//! A change in place still takes an ACCESS EXCLUSIVE lock for a moment, still rebuilds indexes on
//! expressions of the column or with a WHERE that uses it (only plain column indexes are kept),
//! still re-checks CHECK constraints on the column with a full scan, and still changes the result type of prepared
//! statements that return the column (PostgreSQL 15 answers them `cached plan must not change
//! result type` until they are prepared again); the finding says so.

/// A column type, normalized the way PostgreSQL resolves its spellings: `character varying(20)`,
/// `VARCHAR (20)` and `pg_catalog.varchar(20)` are all `varchar` with modifier 20.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlType {
    /// PostgreSQL's internal name for a built-in type (`varchar`, `bpchar`, `int4`, `float8`,
    /// `timestamptz`); otherwise the name as PostgreSQL folds it, schema included (`app.email`).
    pub name: String,
    /// Type modifiers: `[20]` for `varchar(20)`, `[10, 2]` for `numeric(10,2)` (and `[10, 0]` for
    /// `numeric(10)`), `[3]` for `timestamp(3)`, `[1]` for `char` and `bit`; empty when
    /// unconstrained.
    pub mods: Vec<u32>,
    /// The fields of an interval type (`day to second`), lower case.
    pub fields: Option<String>,
    /// An array of the type (PostgreSQL does not enforce the number of dimensions).
    pub array: bool,
}

/// Built-in types the rules know; a change to or from any other type (a domain, an enum, an
/// extension's type) is breaking, since cutover cannot see its definition.
const KNOWN: &[&str] = &[
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "numeric",
    "money",
    "bool",
    "text",
    "varchar",
    "bpchar",
    "bytea",
    "date",
    "timestamp",
    "timestamptz",
    "time",
    "timetz",
    "interval",
    "bit",
    "varbit",
    "cidr",
    "inet",
    "macaddr",
    "uuid",
    "json",
    "jsonb",
    "xml",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An unquoted word, lower case.
    Word(String),
    /// A quoted identifier, as PostgreSQL reads it.
    Quoted(String),
    Num(u32),
    Punct(char),
}

fn tokenize(text: &str) -> Option<Vec<Tok>> {
    let mut toks = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        s.push('"');
                    }
                    '"' => break,
                    other => s.push(other),
                }
            }
            toks.push(Tok::Quoted(s));
        } else if c.is_ascii_digit() {
            let mut s = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                s.push(d);
                chars.next();
            }
            toks.push(Tok::Num(s.parse().ok()?));
        } else if c.is_alphanumeric() || c == '_' {
            let mut s = String::new();
            while let Some(&d) = chars
                .peek()
                .filter(|d| d.is_alphanumeric() || **d == '_' || **d == '$')
            {
                s.extend(d.to_lowercase());
                chars.next();
            }
            toks.push(Tok::Word(s));
        } else if "()[],.".contains(c) {
            toks.push(Tok::Punct(c));
            chars.next();
        } else {
            return None;
        }
    }
    Some(toks)
}

/// Reads a type as written in SQL (`character varying(20)[]`, `timestamp(3) with time zone`,
/// `interval day to second(3)`, `public.email`); `None` for text that is not a type name.
pub fn parse(text: &str) -> Option<SqlType> {
    let mut toks = tokenize(text)?;
    let mut array = false;
    loop {
        let n = toks.len();
        match toks.as_slice() {
            [.., Tok::Punct('['), Tok::Punct(']')] => toks.truncate(n - 2),
            [.., Tok::Punct('['), Tok::Num(_), Tok::Punct(']')] => toks.truncate(n - 3),
            [_, .., Tok::Word(w)] if w == "array" => toks.truncate(n - 1),
            _ => break,
        }
        array = true;
    }
    let mut p = Reader { toks, pos: 0 };
    let mut ty = p.base()?;
    ty.array = array;
    (p.pos == p.toks.len()).then_some(ty)
}

struct Reader {
    toks: Vec<Tok>,
    pos: usize,
}

impl Reader {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn word(&self) -> Option<&str> {
        match self.peek() {
            Some(Tok::Word(w)) => Some(w),
            _ => None,
        }
    }

    /// Consumes the unquoted word `w` if it comes next.
    fn eat(&mut self, w: &str) -> bool {
        let hit = self.word() == Some(w);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn punct(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(&Tok::Punct(c));
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// `(n [, n]*)`, if it comes next; `Some(vec![])` when it does not.
    fn mods(&mut self) -> Option<Vec<u32>> {
        let mut mods = Vec::new();
        if !self.punct('(') {
            return Some(mods);
        }
        loop {
            match self.toks.get(self.pos)? {
                Tok::Num(n) => mods.push(*n),
                _ => return None,
            }
            self.pos += 1;
            if self.punct(')') {
                return Some(mods);
            }
            if !self.punct(',') {
                return None;
            }
        }
    }

    fn base(&mut self) -> Option<SqlType> {
        // A qualified name: `pg_catalog.` names the built-in type, another schema a type of its
        // own (a domain or an extension's type), kept as PostgreSQL folds it.
        if self.toks.get(1) == Some(&Tok::Punct('.')) {
            let schema = match self.peek()? {
                Tok::Word(w) | Tok::Quoted(w) => w.clone(),
                _ => return None,
            };
            self.pos += 2;
            if schema != "pg_catalog" {
                let name = match self.peek()? {
                    Tok::Word(w) | Tok::Quoted(w) => w.clone(),
                    _ => return None,
                };
                self.pos += 1;
                return Some(plain(format!("{schema}.{name}"), self.mods()?));
            }
        }
        let word = match self.peek()? {
            // A quoted name is the type of exactly that name: `"varchar"` is varchar, `"char"`
            // is PostgreSQL's one-byte internal type (not `char`, which is `bpchar`).
            Tok::Quoted(q) => {
                let q = q.clone();
                self.pos += 1;
                return Some(plain(q, self.mods()?));
            }
            Tok::Word(w) => w.clone(),
            _ => return None,
        };
        self.pos += 1;
        let name = match word.as_str() {
            "double" => {
                if !self.eat("precision") {
                    return None;
                }
                "float8"
            }
            "national" | "nchar" | "character" | "char" => {
                if word == "national" && !(self.eat("character") || self.eat("char")) {
                    return None;
                }
                if self.eat("varying") {
                    "varchar"
                } else {
                    let mods = self.mods()?;
                    return Some(plain(
                        "bpchar",
                        if mods.is_empty() { vec![1] } else { mods },
                    ));
                }
            }
            "bit" => {
                if self.eat("varying") {
                    "varbit"
                } else {
                    let mods = self.mods()?;
                    return Some(plain("bit", if mods.is_empty() { vec![1] } else { mods }));
                }
            }
            "timestamp" | "time" => return self.time(&word),
            "interval" => return self.interval(),
            "decimal" | "dec" | "numeric" => return self.numeric(),
            "float" => return self.float(),
            "int" | "integer" | "int4" | "serial" | "serial4" => "int4",
            "smallint" | "int2" | "smallserial" | "serial2" => "int2",
            "bigint" | "int8" | "bigserial" | "serial8" => "int8",
            "real" | "float4" => "float4",
            "boolean" | "bool" => "bool",
            other => other,
        };
        let name = name.to_string();
        Some(plain(name, self.mods()?))
    }

    /// After `timestamp` or `time`: `(p)`, then `with[out] time zone`.
    fn time(&mut self, word: &str) -> Option<SqlType> {
        let mods = self.mods()?;
        let tz = if self.eat("with") {
            true
        } else if self.eat("without") {
            false
        } else {
            return Some(plain(word, mods));
        };
        if !(self.eat("time") && self.eat("zone")) {
            return None;
        }
        let name = match (word, tz) {
            ("timestamp", true) => "timestamptz",
            ("time", true) => "timetz",
            _ => word,
        };
        Some(plain(name, mods))
    }

    /// After `numeric` (`decimal`, `dec`): `(p)` or `(p, s)`.
    fn numeric(&mut self) -> Option<SqlType> {
        let mods = match self.mods()?.as_slice() {
            [] => vec![],
            [p] => vec![*p, 0],
            [p, s] => vec![*p, *s],
            _ => return None,
        };
        Some(plain("numeric", mods))
    }

    /// After `float`: `(p)`, which picks `float4` or `float8`.
    fn float(&mut self) -> Option<SqlType> {
        let mods = self.mods()?;
        match mods.as_slice() {
            [] => Some(plain("float8", vec![])),
            [1..=24] => Some(plain("float4", vec![])),
            [25..=53] => Some(plain("float8", vec![])),
            _ => None,
        }
    }

    /// After `interval`: `(p)`, or fields (`day to second`) with an optional `(p)` after them.
    fn interval(&mut self) -> Option<SqlType> {
        const FIELDS: &[&str] = &["year", "month", "day", "hour", "minute", "second", "to"];
        let mut mods = self.mods()?;
        let mut fields = Vec::new();
        while let Some(w) = self.word().filter(|w| FIELDS.contains(w)) {
            fields.push(w.to_string());
            self.pos += 1;
        }
        if !fields.is_empty() && mods.is_empty() {
            mods = self.mods()?;
        }
        let mut ty = plain("interval", mods);
        ty.fields = (!fields.is_empty()).then(|| fields.join(" "));
        Some(ty)
    }
}

fn plain(name: impl Into<String>, mods: Vec<u32>) -> SqlType {
    SqlType {
        name: name.into(),
        mods,
        fields: None,
        array: false,
    }
}

/// What PostgreSQL 15 does to a table when the column's type changes, with an index on the
/// column when the type has a default btree operator class. This is the claim the suite checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// The table and the index keep their files (`pg_relation_filenode` unchanged).
    Keeps,
    /// The table is rewritten, or the index rebuilt, or the change is refused without USING.
    Rebuilds,
    /// It depends on more than the two types (the session's TimeZone, whether an index exists),
    /// or cutover makes no claim.
    Depends,
}

/// A type change PostgreSQL makes in place: no table rewrite, no index rebuild, and values the
/// old version reads and writes keep their meaning. One row of [`NO_REWRITE`].
#[derive(Debug)]
pub struct NoRewrite {
    /// Stable id of the row (in test output and the docs).
    pub id: &'static str,
    /// The shape of the change and why PostgreSQL skips the rewrite.
    pub what: &'static str,
    /// What the running version may notice anyway, if anything.
    pub note: Option<&'static str>,
    /// Changes of this shape (old type, new type); the suite runs each on PostgreSQL 15.
    pub examples: &'static [(&'static str, &'static str)],
    holds: fn(&SqlType, &SqlType) -> bool,
}

impl NoRewrite {
    /// Whether the change from `old` to `new` has this row's shape.
    pub fn holds(&self, old: &SqlType, new: &SqlType) -> bool {
        (self.holds)(old, new)
    }
}

/// Fractional digits of a timestamp, time or interval: unconstrained means 6.
fn frac_digits(t: &SqlType) -> u32 {
    t.mods.first().map_or(6, |p| (*p).min(6))
}

fn scalar(t: &SqlType, names: &[&str]) -> bool {
    !t.array && names.contains(&t.name.as_str())
}

/// The changes PostgreSQL makes without rewriting the table or rebuilding the column's indexes,
/// as PostgreSQL 15 showed them (see the module docs). Anything else is breaking.
pub const NO_REWRITE: &[NoRewrite] = &[
    NoRewrite {
        id: "same-type",
        what: "the same type spelled another way: nothing is converted",
        note: None,
        examples: &[
            ("int", "integer"),
            ("int4", "int"),
            ("serial", "integer"),
            ("bool", "boolean"),
            ("character varying(20)", "VARCHAR (20)"),
            ("varchar(10)[]", "character varying(10)[]"),
            ("char", "character(1)"),
            ("float", "double precision"),
            ("float(10)", "real"),
            ("decimal(10,2)", "numeric(10, 2)"),
            ("timestamp without time zone", "timestamp"),
            ("timestamp(3) with time zone", "timestamptz(3)"),
        ],
        holds: |old, new| old == new,
    },
    NoRewrite {
        id: "varchar-longer",
        what: "varchar(n) to a longer varchar or to varchar without a limit: binary coercible, and \
               the length check can only pass",
        note: None,
        examples: &[
            ("varchar(10)", "varchar(20)"),
            ("character varying(10)", "varchar"),
            ("varchar(20)", "pg_catalog.varchar(255)"),
            ("varchar(20)", "\"varchar\"(30)"),
        ],
        holds: |old, new| {
            scalar(old, &["varchar"])
                && scalar(new, &["varchar"])
                && match (old.mods.first(), new.mods.first()) {
                    (_, None) => true,
                    (Some(o), Some(n)) => n >= o,
                    (None, Some(_)) => false,
                }
        },
    },
    NoRewrite {
        id: "to-text",
        what: "varchar (with or without a limit) or xml to text: binary coercible",
        note: None,
        examples: &[
            ("varchar(10)", "text"),
            ("varchar", "text"),
            ("xml", "text"),
        ],
        holds: |old, new| {
            scalar(old, &["varchar", "xml"]) && scalar(new, &["text"]) && new.mods.is_empty()
        },
    },
    NoRewrite {
        id: "to-unlimited-varchar",
        what: "text or xml to varchar without a limit: binary coercible",
        note: None,
        examples: &[("text", "varchar"), ("xml", "character varying")],
        holds: |old, new| {
            scalar(old, &["text", "xml"]) && scalar(new, &["varchar"]) && new.mods.is_empty()
        },
    },
    NoRewrite {
        id: "numeric-precision",
        what: "numeric(p,s) to numeric with more digits and the same scale, or to numeric without a \
               limit: the same type, and every value still fits unchanged",
        note: Some(
            "to numeric without a limit, new values are no longer rounded to the old scale, the old \
             version's writes included",
        ),
        examples: &[
            ("numeric(10,2)", "numeric(12,2)"),
            ("decimal(10)", "numeric(12)"),
            ("numeric(10,2)", "numeric"),
        ],
        holds: |old, new| {
            scalar(old, &["numeric"])
                && scalar(new, &["numeric"])
                && match (old.mods.as_slice(), new.mods.as_slice()) {
                    (_, []) => true,
                    ([p, s], [p2, s2]) => p2 >= p && s2 == s,
                    _ => false,
                }
        },
    },
    NoRewrite {
        id: "varbit-longer",
        what: "bit varying(n) to a longer bit varying or to one without a limit: the same type, and \
               the length check can only pass",
        note: None,
        examples: &[("varbit(5)", "varbit(10)"), ("bit varying(5)", "varbit")],
        holds: |old, new| {
            scalar(old, &["varbit"])
                && scalar(new, &["varbit"])
                && match (old.mods.first(), new.mods.first()) {
                    (_, None) => true,
                    (Some(o), Some(n)) => n >= o,
                    (None, Some(_)) => false,
                }
        },
    },
    NoRewrite {
        id: "datetime-precision",
        what: "timestamp, timestamptz, time or timetz to the same type with at least as many \
               fractional digits (unconstrained is 6): the same type, no value is rounded",
        note: Some(
            "new values keep the extra fractional digits, the old version's writes included",
        ),
        examples: &[
            ("timestamp(0)", "timestamp(3)"),
            ("timestamp(3)", "timestamp"),
            ("timestamp", "timestamp(6) without time zone"),
            ("timestamptz(0)", "timestamp(3) with time zone"),
            ("time(0)", "time(3)"),
            ("time", "time(6)"),
            ("timetz(0)", "timetz"),
        ],
        holds: |old, new| {
            scalar(old, &["timestamp", "timestamptz", "time", "timetz"])
                && new.name == old.name
                && !new.array
                && frac_digits(new) >= frac_digits(old)
        },
    },
    NoRewrite {
        id: "interval-precision",
        what: "interval to interval with the same fields and at least as many fractional digits, or \
               to plain interval: the same type, no value is truncated",
        note: None,
        examples: &[
            ("interval(0)", "interval(3)"),
            ("interval(3)", "interval"),
            ("interval day", "interval"),
            ("interval hour to minute", "interval"),
            ("interval day to second(0)", "interval day to second(3)"),
        ],
        holds: |old, new| {
            scalar(old, &["interval"])
                && scalar(new, &["interval"])
                && ((new.fields.is_none() && new.mods.is_empty())
                    || (old.fields == new.fields && frac_digits(new) >= frac_digits(old)))
        },
    },
];

/// Changes that are breaking (old type, new type), a sample over every reason [`judge`] gives;
/// the suite runs those whose claim is not [`Server::Depends`] on PostgreSQL 15.
pub const BREAKING_EXAMPLES: &[(&str, &str)] = &[
    ("varchar(20)", "varchar(10)"),
    ("varchar", "varchar(20)"),
    ("text", "varchar(20)"),
    ("text", "varchar(10485760)"),
    ("xml", "varchar(100)"),
    ("varchar(10)", "char(20)"),
    ("text", "char(10)"),
    ("char(5)", "char(10)"),
    ("char(5)", "text"),
    ("char(5)", "varchar(10)"),
    ("text", "bpchar"),
    ("char(5)", "bpchar"),
    ("varchar(10)[]", "varchar(20)[]"),
    ("varchar[]", "text[]"),
    ("numeric(10,2)", "numeric(8,2)"),
    ("numeric(10,2)", "numeric(12,3)"),
    ("numeric(10,2)", "numeric(12,1)"),
    ("numeric", "numeric(10,2)"),
    ("varbit(10)", "varbit(5)"),
    ("varbit", "varbit(5)"),
    ("bit(5)", "bit(10)"),
    ("bit(5)", "varbit"),
    ("bit(5)", "bit varying(10)"),
    ("timestamp", "timestamp(3)"),
    ("timestamp(3)", "timestamp(0)"),
    ("timestamptz(3)", "timestamptz(0)"),
    ("time", "time(3)"),
    ("timetz(3)", "timetz(0)"),
    ("timestamp", "timestamptz"),
    ("timestamptz", "timestamp"),
    ("interval", "interval(3)"),
    ("interval(3)", "interval(1)"),
    ("interval day", "interval hour"),
    ("cidr", "inet"),
    ("inet", "cidr"),
    ("text", "xml"),
    ("smallint", "int"),
    ("int", "bigint"),
    ("bigint", "int"),
    ("real", "double precision"),
    ("int", "text"),
    ("uuid", "text"),
    ("json", "jsonb"),
    ("date", "timestamp"),
    ("money", "numeric"),
    ("bytea", "text"),
];

/// Every example: those of [`NO_REWRITE`], then [`BREAKING_EXAMPLES`].
pub fn examples() -> impl Iterator<Item = (&'static str, &'static str)> {
    NO_REWRITE
        .iter()
        .flat_map(|r| r.examples.iter().copied())
        .chain(BREAKING_EXAMPLES.iter().copied())
}

/// What cutover makes of a column's type change.
#[derive(Debug, Clone)]
pub struct TypeChange {
    /// The row of [`NO_REWRITE`] the change matches: it is safe while the old version runs
    /// (expand). `None`: it is breaking.
    pub no_rewrite: Option<&'static NoRewrite>,
    /// Why, as a clause that completes "changing ... from `a` to `b` ...".
    pub why: String,
    /// What PostgreSQL does to the table, as cutover claims it.
    pub server: Server,
}

impl TypeChange {
    /// Safe while the old version runs.
    pub fn is_safe(&self) -> bool {
        self.no_rewrite.is_some()
    }

    fn breaking(why: impl Into<String>, server: Server) -> Self {
        TypeChange {
            no_rewrite: None,
            why: why.into(),
            server,
        }
    }
}

/// Judges `ALTER COLUMN ... TYPE new` on a column whose current type is `old` as the migrations
/// declare it (`None`: they do not declare it, so the change is breaking).
pub fn judge(old: Option<&str>, new: &str) -> TypeChange {
    use Server::*;
    let Some(old_text) = old else {
        return TypeChange::breaking(
            "cannot be judged: the migrations do not declare the column's current type, so cutover \
             assumes PostgreSQL rewrites the table under an ACCESS EXCLUSIVE lock",
            Depends,
        );
    };
    let (Some(o), Some(n)) = (parse(old_text), parse(new)) else {
        return TypeChange::breaking(
            format!("cannot be judged: cutover cannot read the type `{old_text}` or `{new}`"),
            Depends,
        );
    };
    if let Some(rule) = NO_REWRITE.iter().find(|r| r.holds(&o, &n)) {
        return TypeChange {
            no_rewrite: Some(rule),
            why: rule.what.to_string(),
            server: Keeps,
        };
    }
    for t in [&o, &n] {
        if !KNOWN.contains(&t.name.as_str()) {
            return TypeChange::breaking(
                format!(
                    "cannot be judged: `{}` is not a built-in type cutover knows (a domain, an enum \
                     or an extension's type), so cutover assumes PostgreSQL rewrites the table \
                     under an ACCESS EXCLUSIVE lock",
                    t.name
                ),
                Depends,
            );
        }
    }
    let (why, server) = breaking(&o, &n);
    TypeChange::breaking(why, server)
}

/// Why a change between two known types that no row of [`NO_REWRITE`] allows is breaking, and
/// what PostgreSQL does with it.
fn breaking(o: &SqlType, n: &SqlType) -> (&'static str, Server) {
    use Server::*;
    let narrowing = o.name == n.name
        || (o.name == "text" && n.name == "varchar")
        || (o.name == "xml" && n.name == "varchar");
    match (o.name.as_str(), n.name.as_str()) {
        _ if o.array || n.array => (
            "converts an array element by element: PostgreSQL rewrites the table under an ACCESS \
             EXCLUSIVE lock even when the element types are binary coercible",
            Rebuilds,
        ),
        ("timestamp", "timestamptz") | ("timestamptz", "timestamp") => (
            "reinterprets every value in the session's TimeZone: the running version reads another \
             type and other values; PostgreSQL rebuilds the column's indexes and, unless TimeZone \
             is UTC, rewrites the table under an ACCESS EXCLUSIVE lock",
            Rebuilds,
        ),
        ("cidr", "inet") => (
            "needs no rewrite, but the running version reads host addresses without their `/32` or \
             `/128` suffix",
            Keeps,
        ),
        ("bpchar", "bpchar") if n.mods.is_empty() => (
            "needs no rewrite, but new values are no longer padded with spaces to the old length, \
             the old version's writes included",
            Keeps,
        ),
        // text to bpchar keeps the table and rebuilds the index; xml has no index to rebuild.
        (_, "bpchar") if n.mods.is_empty() => (
            "makes values compare ignoring trailing spaces, so the running version's comparisons \
             change; PostgreSQL rebuilds the column's indexes under an ACCESS EXCLUSIVE lock",
            Depends,
        ),
        ("bpchar", _) | (_, "bpchar") => (
            "converts to or from char(n), which pads values with spaces: PostgreSQL converts every \
             row, rewriting the table under an ACCESS EXCLUSIVE lock",
            Rebuilds,
        ),
        ("bit", "bit") => (
            "changes a fixed length: bit(n) holds exactly n bits, so PostgreSQL refuses the \
             existing values",
            Rebuilds,
        ),
        ("bit", "varbit") => (
            "changes bit(n) to bit varying: PostgreSQL rebuilds the column's indexes (another \
             operator class) and, for a limited length, rewrites the table under an ACCESS \
             EXCLUSIVE lock",
            Rebuilds,
        ),
        ("numeric", "numeric")
            if o.mods.len() == 2 && n.mods.len() == 2 && o.mods[1] != n.mods[1] =>
        {
            (
                "changes the scale: PostgreSQL rounds every value, rewriting the table under an \
                 ACCESS EXCLUSIVE lock",
                Rebuilds,
            )
        }
        ("interval", "interval") if o.fields != n.fields => (
            "changes an interval's fields: cutover does not judge which of those PostgreSQL makes \
             in place, so it assumes a rewrite under an ACCESS EXCLUSIVE lock",
            Depends,
        ),
        _ if narrowing => (
            "narrows the type: the old version may write values the new type rejects or rounds, and \
             PostgreSQL checks or converts every row, rewriting the table under an ACCESS EXCLUSIVE \
             lock",
            Rebuilds,
        ),
        _ => (
            "converts every value (the types are not binary coercible): PostgreSQL rewrites the \
             table and its indexes under an ACCESS EXCLUSIVE lock, or refuses the change without \
             USING",
            Rebuilds,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, mods: &[u32]) -> SqlType {
        plain(name, mods.to_vec())
    }

    #[test]
    fn spellings_normalize_like_postgres() {
        let cases: &[(&str, SqlType)] = &[
            ("character varying(20)", t("varchar", &[20])),
            ("VARCHAR (20)", t("varchar", &[20])),
            ("pg_catalog.varchar(20)", t("varchar", &[20])),
            ("\"varchar\"(20)", t("varchar", &[20])),
            ("national character varying(5)", t("varchar", &[5])),
            ("char", t("bpchar", &[1])),
            ("character(3)", t("bpchar", &[3])),
            ("bpchar", t("bpchar", &[])),
            ("\"char\"", t("char", &[])),
            ("bit", t("bit", &[1])),
            ("bit varying(4)", t("varbit", &[4])),
            ("integer", t("int4", &[])),
            ("serial", t("int4", &[])),
            ("BIGINT", t("int8", &[])),
            ("double precision", t("float8", &[])),
            ("float(24)", t("float4", &[])),
            ("float(25)", t("float8", &[])),
            ("decimal(10)", t("numeric", &[10, 0])),
            ("numeric(10, 2)", t("numeric", &[10, 2])),
            ("timestamp without time zone", t("timestamp", &[])),
            ("timestamp(3) with time zone", t("timestamptz", &[3])),
            ("time with time zone", t("timetz", &[])),
            ("Public.Email", t("public.email", &[])),
            ("app.\"Email\"", t("app.Email", &[])),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).as_ref(), Some(want), "{text}");
        }
        let arr = parse("varchar(10)[]").unwrap();
        assert!(arr.array && arr.mods == [10]);
        assert_eq!(parse("int ARRAY"), parse("integer[3]"));
        let iv = parse("interval day to second(3)").unwrap();
        assert_eq!(
            (iv.fields.as_deref(), iv.mods.as_slice()),
            (Some("day to second"), &[3][..])
        );
        for bad in [
            "",
            "varchar(",
            "double",
            "timestamp with zone",
            "text; drop",
            "varchar(x)",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    /// Every example is judged as its list says, and every safe judgement claims the server
    /// keeps the table (the suite then holds the server to the claim).
    #[test]
    fn examples_are_judged_as_listed() {
        for rule in NO_REWRITE {
            for (old, new) in rule.examples {
                let j = judge(Some(old), new);
                assert_eq!(j.no_rewrite.map(|r| r.id), Some(rule.id), "{old} -> {new}");
                assert_eq!(j.server, Server::Keeps, "{old} -> {new}");
            }
        }
        for (old, new) in BREAKING_EXAMPLES {
            let j = judge(Some(old), new);
            assert!(!j.is_safe(), "{old} -> {new} is listed as breaking: {j:?}");
        }
    }

    #[test]
    fn unknown_old_types_and_domains_are_breaking_with_the_reason() {
        let j = judge(None, "text");
        assert!(!j.is_safe() && j.why.contains("do not declare the column's current type"));
        let j = judge(Some("text"), "app.email");
        assert!(!j.is_safe() && j.why.contains("`app.email` is not a built-in type"));
        let j = judge(Some("email"), "text");
        assert!(!j.is_safe() && j.why.contains("`email`"));
    }
}
