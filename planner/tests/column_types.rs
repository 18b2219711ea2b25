//! `ALTER COLUMN ... TYPE` on a table the running version uses: expand when PostgreSQL makes the
//! change in place (the planner's `types::NO_REWRITE`), breaking otherwise, with the old type
//! taken from the migrations whatever its spelling. Whether PostgreSQL really keeps the table is
//! checked against a server by the suite (`tests/it/column_types.rs`).

use cutover_planner::analysis::{Analysis, AnalyzeOptions, StmtPhase, analyze};
use cutover_planner::lint::Finding;
use cutover_planner::migrations::MigrationFile;

const BASE: &str = "CREATE TABLE items (
    id bigint PRIMARY KEY,
    name varchar(20),
    code character varying(10),
    body text,
    price numeric(10,2),
    at timestamp(0),
    seen TIMESTAMP(3) WITH TIME ZONE,
    tags varchar(10)[],
    addr cidr,
    n int,
    doc xml,
    label char(5),
    spent interval(0),
    flags bit varying(8),
    sorted text COLLATE \"C\"
);";

fn analyze_release(sql: &str, release: bool) -> Analysis {
    let files = vec![
        MigrationFile::from_bytes("V1__base.sql", "V1__base.sql", BASE.as_bytes()).unwrap(),
        MigrationFile::from_bytes("V2__x.sql", "V2__x.sql", sql.as_bytes()).unwrap(),
    ];
    analyze(&files, Some(1), AnalyzeOptions { release })
}

/// The last statement's phase and the findings of the migration.
fn classify(sql: &str) -> (StmtPhase, Vec<Finding>) {
    let a = analyze_release(sql, true);
    let phase = a.migrations[0].statements.last().unwrap().phase;
    (phase, a.findings)
}

const NO_REWRITE: &str = "alter-column-type-no-rewrite";
const BREAKING: &str = "breaking-alter-column-type";

#[test]
fn type_changes_are_expand_exactly_when_postgres_makes_them_in_place() {
    use StmtPhase::*;
    let cases: &[(&str, StmtPhase, &str)] = &[
        // varchar: a longer limit, no limit, text; the same type spelled another way.
        (
            "ALTER TABLE items ALTER COLUMN name TYPE varchar(40)",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER name TYPE character varying(255)",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER name SET DATA TYPE varchar",
            Expand,
            NO_REWRITE,
        ),
        ("ALTER TABLE items ALTER name TYPE text", Expand, NO_REWRITE),
        (
            "ALTER TABLE items ALTER name TYPE VARCHAR (20)",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER code TYPE varchar(10)",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE public.items ALTER name TYPE pg_catalog.varchar(30)",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER name TYPE varchar(10)",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER name TYPE char(20)",
            Breaking,
            BREAKING,
        ),
        // text and xml
        (
            "ALTER TABLE items ALTER body TYPE varchar",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER body TYPE varchar(100)",
            Breaking,
            BREAKING,
        ),
        ("ALTER TABLE items ALTER body TYPE xml", Breaking, BREAKING),
        ("ALTER TABLE items ALTER doc TYPE text", Expand, NO_REWRITE),
        (
            "ALTER TABLE items ALTER doc TYPE varchar(100)",
            Breaking,
            BREAKING,
        ),
        // numeric: more precision at the same scale, or no limit
        (
            "ALTER TABLE items ALTER price TYPE numeric(12,2)",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER price TYPE decimal(12, 2)",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER price TYPE numeric",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER price TYPE numeric(8,2)",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER price TYPE numeric(12,3)",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER price TYPE float8",
            Breaking,
            BREAKING,
        ),
        // timestamps: more fractional digits; not a time zone
        (
            "ALTER TABLE items ALTER at TYPE timestamp(3)",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER at TYPE timestamp without time zone",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER at TYPE timestamp(0) without time zone",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER at TYPE timestamptz",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER seen TYPE timestamptz",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER seen TYPE timestamp with time zone",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER seen TYPE timestamptz(0)",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER seen TYPE timestamp(3)",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER spent TYPE interval(3)",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER spent TYPE interval day",
            Breaking,
            BREAKING,
        ),
        // bit varying
        (
            "ALTER TABLE items ALTER flags TYPE varbit(16)",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER flags TYPE bit varying(4)",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER flags TYPE bit(8)",
            Breaking,
            BREAKING,
        ),
        // arrays: the same array type only
        (
            "ALTER TABLE items ALTER tags TYPE character varying(10)[]",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER tags TYPE varchar(10) ARRAY",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER tags TYPE varchar(20)[]",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER tags TYPE text[]",
            Breaking,
            BREAKING,
        ),
        // integers: a spelling is not a change, a width is
        ("ALTER TABLE items ALTER n TYPE integer", Expand, NO_REWRITE),
        ("ALTER TABLE items ALTER n TYPE int4", Expand, NO_REWRITE),
        ("ALTER TABLE items ALTER n TYPE bigint", Breaking, BREAKING),
        (
            "ALTER TABLE items ALTER n TYPE smallint",
            Breaking,
            BREAKING,
        ),
        ("ALTER TABLE items ALTER n TYPE text", Breaking, BREAKING),
        // char(n) pads, cidr to inet changes what the old version reads
        (
            "ALTER TABLE items ALTER label TYPE char(10)",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER label TYPE text",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER label TYPE character(5)",
            Expand,
            NO_REWRITE,
        ),
        ("ALTER TABLE items ALTER addr TYPE inet", Breaking, BREAKING),
        // USING, COLLATE, domains
        // A USING that is the column or its cast to the new type changes nothing (Django).
        (
            "ALTER TABLE items ALTER name TYPE varchar(40) USING name::varchar(40)",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER name TYPE varchar(40) USING name",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER name TYPE varchar(40) USING name || ''",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER name TYPE text COLLATE \"C\"",
            Breaking,
            BREAKING,
        ),
        // A collation change, named or by falling back to the type's default.
        (
            "ALTER TABLE items ALTER body TYPE varchar COLLATE \"default\"",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER sorted TYPE varchar",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER sorted TYPE varchar COLLATE \"C\"",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER sorted TYPE varchar COLLATE pg_catalog.\"C\"",
            Expand,
            NO_REWRITE,
        ),
        (
            "ALTER TABLE items ALTER sorted TYPE text COLLATE \"POSIX\"",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER name TYPE app.short_text",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER name TYPE citext",
            Breaking,
            BREAKING,
        ),
        // several actions: the worst wins
        (
            "ALTER TABLE items ALTER name TYPE text, ALTER n TYPE bigint",
            Breaking,
            BREAKING,
        ),
        (
            "ALTER TABLE items ALTER name TYPE text, ALTER price TYPE numeric",
            Expand,
            NO_REWRITE,
        ),
    ];
    let mut wrong = Vec::new();
    for (sql, want, rule) in cases {
        let (got, findings) = classify(sql);
        let rules: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
        if got != *want || !rules.contains(rule) {
            wrong.push(format!(
                "{sql}: {got:?} {rules:?}, want {want:?} with {rule}"
            ));
        }
        if *want == StmtPhase::Expand && rules.contains(&BREAKING) {
            wrong.push(format!("{sql}: expand, yet {rules:?}"));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn the_no_rewrite_finding_names_both_types_the_lock_and_the_caveats() {
    let (_, findings) = classify("ALTER TABLE items ALTER COLUMN name TYPE text;");
    let f = findings.iter().find(|f| f.rule == NO_REWRITE).unwrap();
    assert_eq!(f.severity.as_str(), "warning");
    assert!(
        f.message
            .contains("`items.name` from `varchar(20)` to `text`")
            && f.message.contains("ACCESS EXCLUSIVE lock"),
        "{}",
        f.message
    );
    for caveat in [
        "CHECK constraints",
        "indexes on expressions",
        "cached plan must not change result type",
    ] {
        assert!(f.hint.contains(caveat), "{}", f.hint);
    }
    // A rounding the old version relied on is named.
    let (_, findings) = classify("ALTER TABLE items ALTER price TYPE numeric;");
    let f = findings.iter().find(|f| f.rule == NO_REWRITE).unwrap();
    assert!(f.hint.contains("no longer rounded"), "{}", f.hint);
}

#[test]
fn breaking_type_changes_say_why() {
    let cases: &[(&str, &str)] = &[
        (
            "ALTER TABLE items ALTER name TYPE varchar(10)",
            "narrows the type",
        ),
        (
            "ALTER TABLE items ALTER n TYPE bigint",
            "not binary coercible",
        ),
        ("ALTER TABLE items ALTER tags TYPE text[]", "array"),
        ("ALTER TABLE items ALTER at TYPE timestamptz", "TimeZone"),
        ("ALTER TABLE items ALTER addr TYPE inet", "/32"),
        (
            "ALTER TABLE items ALTER name TYPE text USING upper(name)",
            "USING",
        ),
        (
            "ALTER TABLE items ALTER name TYPE text COLLATE \"C\"",
            "collation from the default to `C`",
        ),
        (
            "ALTER TABLE items ALTER sorted TYPE text",
            "collation from `C` to the default",
        ),
        (
            "ALTER TABLE items ALTER name TYPE app.short_text",
            "`app.short_text` is not a built-in type",
        ),
    ];
    for (sql, why) in cases {
        let (_, findings) = classify(sql);
        let f = findings.iter().find(|f| f.rule == BREAKING).unwrap();
        assert!(f.message.contains(why), "{sql}: {}", f.message);
        assert!(
            f.hint.contains("add a column of the new type"),
            "{}",
            f.hint
        );
    }
}

#[test]
fn an_old_type_the_migrations_do_not_declare_is_breaking_and_the_hint_says_so() {
    for sql in [
        "ALTER TABLE elsewhere ALTER COLUMN c TYPE text;",
        "ALTER TABLE items ALTER COLUMN undeclared TYPE text;",
    ] {
        let (phase, findings) = classify(sql);
        assert_eq!(phase, StmtPhase::Breaking, "{sql}");
        let f = findings.iter().find(|f| f.rule == BREAKING).unwrap();
        assert!(
            f.message
                .contains("do not declare the column's current type"),
            "{}",
            f.message
        );
        assert!(f.hint.contains("do not declare"), "{}", f.hint);
    }
}

#[test]
fn the_schema_follows_each_type_change() {
    // After varchar(20) -> varchar(40), going to varchar(30) narrows; to varchar(50) widens.
    let (phase, _) = classify(
        "ALTER TABLE items ALTER name TYPE varchar(40);\nALTER TABLE items ALTER name TYPE \
         varchar(30);",
    );
    assert_eq!(phase, StmtPhase::Breaking);
    let (phase, _) = classify(
        "ALTER TABLE items ALTER name TYPE varchar(40);\nALTER TABLE items ALTER name TYPE \
         varchar(50);",
    );
    assert_eq!(phase, StmtPhase::Expand);
    // A column added by an applied migration is known with its type.
    let files = vec![
        MigrationFile::from_bytes("V1__base.sql", "V1__base.sql", BASE.as_bytes()).unwrap(),
        MigrationFile::from_bytes(
            "V2__add.sql",
            "V2__add.sql",
            b"ALTER TABLE items ADD COLUMN note varchar(5);",
        )
        .unwrap(),
        MigrationFile::from_bytes(
            "V3__widen.sql",
            "V3__widen.sql",
            b"ALTER TABLE items ALTER note TYPE varchar(9);\nALTER TABLE items ALTER note TYPE \
              varchar(7);",
        )
        .unwrap(),
    ];
    let a = analyze(&files, Some(2), AnalyzeOptions { release: true });
    let phases: Vec<StmtPhase> = a.migrations[0].statements.iter().map(|s| s.phase).collect();
    assert_eq!(
        phases,
        [StmtPhase::Expand, StmtPhase::Breaking],
        "{:?}",
        a.findings
    );
}

#[test]
fn the_schema_follows_each_collation() {
    use StmtPhase::*;
    let files = vec![
        MigrationFile::from_bytes("V1__base.sql", "V1__base.sql", BASE.as_bytes()).unwrap(),
        MigrationFile::from_bytes(
            "V2__add.sql",
            "V2__add.sql",
            b"ALTER TABLE items ADD COLUMN tag text COLLATE \"C\";\nALTER TABLE items ALTER body \
              TYPE text COLLATE \"C\";",
        )
        .unwrap(),
        MigrationFile::from_bytes(
            "V3__alter.sql",
            "V3__alter.sql",
            b"ALTER TABLE items ALTER tag TYPE varchar COLLATE \"C\";\nALTER TABLE items ALTER body \
              TYPE varchar COLLATE \"C\";\nALTER TABLE items ALTER tag TYPE text;\nALTER TABLE \
              items ALTER tag TYPE varchar;",
        )
        .unwrap(),
    ];
    let a = analyze(&files, Some(2), AnalyzeOptions { release: true });
    let phases: Vec<StmtPhase> = a.migrations[0].statements.iter().map(|s| s.phase).collect();
    // Added with "C", kept; altered to "C", kept; then back to the default (breaking), after
    // which the default is what the column has.
    assert_eq!(
        phases,
        [Expand, Expand, Breaking, Expand],
        "{:?}",
        a.findings
    );
}

#[test]
fn a_type_change_on_a_table_the_release_creates_is_expand_without_findings() {
    let a = analyze_release(
        "CREATE TABLE fresh (id bigint PRIMARY KEY, v int);\nALTER TABLE fresh ALTER v TYPE bigint;",
        true,
    );
    assert_eq!(a.migrations[0].statements[1].phase, StmtPhase::Expand);
    assert!(
        !a.findings
            .iter()
            .any(|f| f.rule == BREAKING || f.rule == NO_REWRITE),
        "{:?}",
        a.findings
    );
}

#[test]
fn lint_judges_type_changes_the_same_way() {
    let a = analyze_release("ALTER TABLE items ALTER name TYPE text;", false);
    assert_eq!(a.migrations[0].statements[0].phase, StmtPhase::Expand);
    assert!(a.findings.iter().any(|f| f.rule == NO_REWRITE));
    let a = analyze_release("ALTER TABLE items ALTER n TYPE bigint;", false);
    assert_eq!(a.migrations[0].statements[0].phase, StmtPhase::Breaking);
}
