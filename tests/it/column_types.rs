//! Column type changes on a real PostgreSQL: the planner's compatibility table
//! (`cutover_planner::types`) against what the server does. Every example of the table is
//! classified by the planner (two migrations: the table, then the ALTER) and run on a throwaway
//! cluster with rows and an index on the column; `pg_relation_filenode` of the table and of the
//! index before and after the ALTER show whether PostgreSQL rewrote anything. The caveats the
//! finding names (prepared statements, CHECK constraints, expression and partial indexes) are
//! checked the same way.

use crate::pg::Cluster;
use cutover_planner::analysis::{AnalyzeOptions, StmtPhase, analyze};
use cutover_planner::migrations::MigrationFile;
use cutover_planner::types::{self, Server, SqlType};

/// The phase and findings the planner gives `ALTER TABLE t ALTER COLUMN c TYPE <to>` on a column
/// declared `<from>` by an applied migration.
fn planned(from: &str, to: &str) -> (StmtPhase, Vec<String>) {
    let base = format!("CREATE TABLE t (id bigint PRIMARY KEY, c {from});");
    let alter = format!("ALTER TABLE t ALTER COLUMN c TYPE {to};");
    let files = [
        MigrationFile::from_bytes("V1__t.sql", "V1__t.sql", base.as_bytes()).unwrap(),
        MigrationFile::from_bytes("V2__alter.sql", "V2__alter.sql", alter.as_bytes()).unwrap(),
    ];
    let a = analyze(&files, Some(1), AnalyzeOptions { release: true });
    let rules = a.findings.iter().map(|f| f.rule.clone()).collect();
    (a.migrations[0].statements[0].phase, rules)
}

/// An SQL expression of type `ty`, for the test rows. A type without one here fails the test:
/// add one when the table gains an example of a new type.
fn sample(ty: &SqlType) -> String {
    let one = match ty.name.as_str() {
        "varchar" | "text" => "'abc'".to_string(),
        "bpchar" => "'a'".into(),
        "int2" | "int4" | "int8" => "7".into(),
        "numeric" | "float4" | "float8" | "money" => "1.5".into(),
        "bool" => "true".into(),
        "bytea" => "'\\x00ff'::bytea".into(),
        "date" => "current_date".into(),
        "timestamp" | "timestamptz" | "time" | "timetz" => "clock_timestamp()".into(),
        "interval" => "interval '1 day 02:03:04.5678'".into(),
        "bit" => format!("B'{}'", "1".repeat(ty.mods[0] as usize)),
        "varbit" => "B'101'".into(),
        "cidr" | "inet" => "'10.0.0.1/32'".into(),
        "uuid" => "gen_random_uuid()".into(),
        "json" | "jsonb" => "'{\"a\": 1}'".into(),
        "xml" => "'<a/>'".into(),
        other => panic!("no sample value for type `{other}`; add one to `sample`"),
    };
    if ty.array {
        format!("ARRAY[{one}]")
    } else {
        one
    }
}

/// `pg_relation_filenode` of the table and of its index (`-` without one).
fn filenodes(cluster: &Cluster, table: &str) -> String {
    cluster.psql(&format!(
        "SELECT pg_relation_filenode('{table}') || ' ' || \
         coalesce(pg_relation_filenode(to_regclass('{table}_c'))::text, '-')"
    ))
}

/// What the server does to a table of 200 rows of `from`, indexed on the column when the type
/// has a default btree operator class, when the column becomes `to`; and a line saying so.
fn observe(cluster: &Cluster, n: usize, from: &str, to: &str) -> (Server, String) {
    // A column declared with a collation (`text COLLATE "C"`) takes a sample of its type.
    let base = from.split(" COLLATE ").next().unwrap_or(from);
    let ty = types::parse(base).unwrap_or_else(|| panic!("the planner cannot read `{base}`"));
    let table = format!("tc{n}");
    cluster.psql(&format!(
        "CREATE TABLE {table} (id int, c {from}); INSERT INTO {table} SELECT g, {} FROM \
         generate_series(1, 200) g",
        sample(&ty)
    ));
    let index = cluster.psql_session(&[&format!("CREATE INDEX {table}_c ON {table} (c)")]);
    if let Err(e) = &index {
        assert!(
            e.contains("has no default operator class"),
            "CREATE INDEX on `{from}` failed: {e}"
        );
    }
    let before = filenodes(cluster, &table);
    let alter = cluster.psql_session(&[&format!("ALTER TABLE {table} ALTER COLUMN c TYPE {to}")]);
    let after = filenodes(cluster, &table);
    let (b, a): (Vec<&str>, Vec<&str>) = (before.split(' ').collect(), after.split(' ').collect());
    let what = match &alter {
        Err(e) => format!("refused: {}", e.lines().next().unwrap_or_default()),
        Ok(_) => format!(
            "table {}, index {}",
            if b[0] == a[0] { "kept" } else { "rewritten" },
            match (b[1], a[1]) {
                ("-", _) => "none",
                (x, y) if x == y => "kept",
                _ => "rebuilt",
            }
        ),
    };
    let server = if alter.is_ok() && before == after {
        Server::Keeps
    } else {
        Server::Rebuilds
    };
    (server, what)
}

/// For every example of the compatibility table: the planner calls the change expand exactly
/// when `types::judge` finds a no-rewrite row for it (with the `alter-column-type-no-rewrite`
/// finding; breaking ones get `breaking-alter-column-type`), and PostgreSQL 15 does what the
/// judgement claims: an expand change keeps the table's and the index's files, a breaking one
/// claimed to rebuild rewrites the table, rebuilds the index or is refused.
#[test]
fn type_changes_the_planner_calls_expand_are_the_ones_postgres_makes_in_place() {
    let cluster = Cluster::start();
    let mut report = Vec::new();
    let mut wrong = Vec::new();
    for (n, (from, to)) in types::examples().enumerate() {
        let judged = types::judge(Some(from), to);
        let (phase, rules) = planned(from, to);
        let (want_phase, want_rule) = if judged.is_safe() {
            (StmtPhase::Expand, "alter-column-type-no-rewrite")
        } else {
            (StmtPhase::Breaking, "breaking-alter-column-type")
        };
        if phase != want_phase || !rules.iter().any(|r| r == want_rule) {
            wrong.push(format!(
                "{from} -> {to}: the planner says {phase:?} {rules:?}, the table {want_phase:?} \
                 {want_rule}"
            ));
        }
        let (seen, what) = observe(&cluster, n, from, to);
        if judged.server != Server::Depends && seen != judged.server {
            wrong.push(format!(
                "{from} -> {to}: cutover claims {:?}, PostgreSQL: {what}",
                judged.server
            ));
        }
        report.push(format!(
            "{from:>28} -> {to:<32} {:<9} claim {:<8?} server: {what}",
            if judged.is_safe() {
                "expand"
            } else {
                "breaking"
            },
            judged.server
        ));
    }
    eprintln!("{}", report.join("\n"));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The claims are not vacuous: both kinds occur.
    assert!(report.iter().any(|l| l.contains("claim Keeps")));
    assert!(report.iter().any(|l| l.contains("claim Rebuilds")));
}

/// A collation change is breaking even between binary-coercible types: PostgreSQL keeps the
/// table but rebuilds the column's index. That includes an ALTER without COLLATE on a column
/// declared with one (it falls back to the type's default); naming the same collation again
/// changes nothing. A USING clause is breaking unless it is the column or its cast to the new
/// type (Django's `USING "col"::type`), which the server takes as no USING at all.
#[test]
fn collation_changes_and_using_clauses_are_breaking() {
    let cases: &[(&str, &str, StmtPhase, &str)] = &[
        (
            "varchar(10)",
            "text COLLATE \"C\"",
            StmtPhase::Breaking,
            "table kept, index rebuilt",
        ),
        (
            "text COLLATE \"C\"",
            "varchar",
            StmtPhase::Breaking,
            "table kept, index rebuilt",
        ),
        (
            "text COLLATE \"C\"",
            "varchar COLLATE \"C\"",
            StmtPhase::Expand,
            "table kept, index kept",
        ),
        (
            "text",
            "varchar COLLATE \"default\"",
            StmtPhase::Expand,
            "table kept, index kept",
        ),
        (
            "varchar(10)",
            "varchar(20) USING c::varchar(20)",
            StmtPhase::Expand,
            "table kept, index kept",
        ),
        (
            "varchar(10)",
            "text USING \"c\"::text",
            StmtPhase::Expand,
            "table kept, index kept",
        ),
        (
            "varchar(10)",
            "varchar(20) USING c",
            StmtPhase::Expand,
            "table kept, index kept",
        ),
        (
            "varchar(10)",
            "text USING lower(c)",
            StmtPhase::Breaking,
            "table rewritten, index rebuilt",
        ),
    ];
    let cluster = Cluster::start();
    for (n, (from, to, phase, server)) in cases.iter().enumerate() {
        assert_eq!(planned(from, to).0, *phase, "{from} -> {to}");
        let (_, what) = observe(&cluster, n, from, to);
        assert_eq!(what, *server, "{from} -> {to}");
    }
}

/// The caveats the `alter-column-type-no-rewrite` finding names hold on PostgreSQL 15 for a
/// varchar limit raised in place: a prepared statement that returns the column fails (one that
/// does not return it keeps working); a CHECK constraint on the column is re-checked with a scan
/// of the table, while a change to an unconstrained column scans nothing; and an index on an
/// expression of the column, or with a WHERE that uses it, is rebuilt while a plain one is kept.
#[test]
fn a_change_in_place_still_has_the_costs_its_finding_names() {
    let (phase, _) = planned("varchar(10)", "varchar(20)");
    assert_eq!(phase, StmtPhase::Expand);
    let cluster = Cluster::start();
    cluster.psql(
        "CREATE TABLE p (id int, c varchar(10) CHECK (length(c) > 0), d varchar(10)); INSERT INTO p \
         SELECT g, 'abc', 'x' FROM generate_series(1, 100) g",
    );
    let unrelated = cluster.psql_session(&[
        "PREPARE returns_id AS SELECT id FROM p WHERE id = 1",
        "EXECUTE returns_id",
        "ALTER TABLE p ALTER COLUMN c TYPE varchar(20)",
        "EXECUTE returns_id",
    ]);
    assert_eq!(unrelated.as_deref(), Ok("1\n1"));
    let returning = cluster.psql_session(&[
        "PREPARE returns_c AS SELECT c FROM p WHERE id = 1",
        "EXECUTE returns_c",
        "ALTER TABLE p ALTER COLUMN c TYPE varchar(25)",
        "EXECUTE returns_c",
    ]);
    let err = returning.expect_err("a prepared SELECT of the column survived its type change");
    assert!(
        err.contains("cached plan must not change result type"),
        "{err}"
    );
    let scans = cluster
        .psql_session(&[
            "BEGIN",
            "ALTER TABLE p ALTER COLUMN d TYPE varchar(30)",
            "SELECT pg_stat_get_xact_numscans('p'::regclass)",
            "ALTER TABLE p ALTER COLUMN c TYPE varchar(30)",
            "SELECT pg_stat_get_xact_numscans('p'::regclass)",
            "COMMIT",
        ])
        .unwrap();
    assert_eq!(scans.lines().collect::<Vec<_>>(), ["0", "1"], "{scans}");
    cluster.psql(
        "CREATE TABLE q (k int, c varchar(10)); INSERT INTO q SELECT g, 'abc' FROM \
         generate_series(1, 100) g; CREATE INDEX q_plain ON q (c); CREATE INDEX q_expr ON q \
         (lower(c)); CREATE INDEX q_part ON q (k) WHERE c <> ''",
    );
    let nodes = "SELECT concat_ws(' ', pg_relation_filenode('q'), pg_relation_filenode('q_plain'), \
                 pg_relation_filenode('q_expr'), pg_relation_filenode('q_part'))";
    let before = cluster.psql(nodes);
    cluster.psql("ALTER TABLE q ALTER COLUMN c TYPE varchar(20)");
    let after = cluster.psql(nodes);
    let kept: Vec<bool> = before
        .split(' ')
        .zip(after.split(' '))
        .map(|(b, a)| b == a)
        .collect();
    assert_eq!(kept, [true, true, false, false], "{before} -> {after}");
}
