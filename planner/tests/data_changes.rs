//! Statements that change data are classified by every INSERT, UPDATE, DELETE and MERGE they
//! hold, WITH queries included, and a SELECT also by the functions it calls: none of them passes
//! for a placeholder migration.

use cutover_planner::analysis::{Analysis, AnalyzeOptions, Inverse, Phase, StmtPhase, analyze};
use cutover_planner::migrations::MigrationFile;

const BASE: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE archive (id bigint PRIMARY KEY, name text, email text);
CREATE SEQUENCE users_seq;";

fn analyze_one(sql: &str) -> Analysis {
    let files = vec![
        MigrationFile::from_bytes("V1__base.sql", "V1__base.sql", BASE.as_bytes()).unwrap(),
        MigrationFile::from_bytes("V2__x.sql", "V2__x.sql", sql.as_bytes()).unwrap(),
    ];
    analyze(&files, Some(1), AnalyzeOptions { release: true })
}

/// The last statement's phase and the sorted rule ids of the migration's findings.
fn classify(sql: &str) -> (StmtPhase, Vec<String>) {
    let a = analyze_one(sql);
    let mut rules: Vec<String> = a.findings.iter().map(|f| f.rule.clone()).collect();
    rules.sort();
    (a.migrations[0].statements.last().unwrap().phase, rules)
}

#[test]
fn data_changes_are_classified_by_every_dml_they_hold() {
    use StmtPhase::*;
    const LOSS: &[&str] = &["data-loss", "unbatched-dml"];
    const WHOLE: &[&str] = &["unbatched-dml"];
    const NONE: &[&str] = &[];
    let cases: &[(&str, StmtPhase, &[&str])] = &[
        // The statement itself, as before.
        ("DELETE FROM users;", Contract, LOSS),
        ("DELETE FROM ONLY users;", Contract, LOSS),
        ("DELETE FROM users WHERE id = 1;", Expand, NONE),
        ("UPDATE users SET name = 'x';", Expand, WHOLE),
        ("UPDATE users SET name = 'x' WHERE id < 100;", Expand, NONE),
        ("INSERT INTO users VALUES (1, 'a', 'b');", Expand, NONE),
        (
            "MERGE INTO users u USING archive a ON u.id = a.id WHEN MATCHED THEN DELETE;",
            Expand,
            NONE,
        ),
        // A WHERE inside a subquery does not limit the outer statement.
        (
            "UPDATE users SET email = (SELECT email FROM archive WHERE archive.id = users.id);",
            Expand,
            WHOLE,
        ),
        // DML in WITH: judged by what it does, whatever the outer statement is.
        (
            "WITH gone AS (DELETE FROM users RETURNING *) INSERT INTO archive SELECT * FROM gone;",
            Contract,
            LOSS,
        ),
        (
            "WITH gone AS (DELETE FROM users WHERE id < 10 RETURNING *) INSERT INTO archive SELECT \
             * FROM gone;",
            Expand,
            NONE,
        ),
        (
            "WITH x AS (DELETE FROM users RETURNING *) SELECT * FROM x;",
            Contract,
            LOSS,
        ),
        (
            "WITH x AS (UPDATE users SET name = lower(name) RETURNING id) SELECT count(*) FROM x;",
            Expand,
            WHOLE,
        ),
        (
            "WITH x AS (UPDATE users SET name = 'y' WHERE id = 1 RETURNING id) SELECT * FROM x;",
            Expand,
            NONE,
        ),
        (
            "WITH x AS (INSERT INTO archive VALUES (1, 'a', 'b') RETURNING id) SELECT * FROM x;",
            Expand,
            NONE,
        ),
        (
            "WITH a AS (DELETE FROM archive RETURNING id), b AS (UPDATE users SET email = NULL \
             WHERE id IN (SELECT id FROM a) RETURNING id) SELECT * FROM b;",
            Contract,
            LOSS,
        ),
        (
            "WITH x AS (DELETE FROM archive RETURNING *) UPDATE users SET email = NULL WHERE id IN \
             (SELECT id FROM x);",
            Contract,
            LOSS,
        ),
        (
            "WITH x AS (DELETE FROM users RETURNING *) DELETE FROM archive WHERE id IN (SELECT id \
             FROM x);",
            Contract,
            LOSS,
        ),
        // Nested deeper than PostgreSQL accepts: still seen.
        (
            "WITH x AS (WITH y AS (DELETE FROM users RETURNING *) SELECT * FROM y) SELECT * FROM x;",
            Contract,
            LOSS,
        ),
        (
            "SELECT 1 UNION ALL (WITH x AS (UPDATE users SET name = 'z' RETURNING id) SELECT id \
             FROM x);",
            Expand,
            WHOLE,
        ),
        // Statements that run a query: CREATE TABLE AS, SELECT INTO, COPY (query) TO.
        (
            "CREATE TABLE snapshot AS WITH gone AS (DELETE FROM users RETURNING *) SELECT * FROM \
             gone;",
            Contract,
            LOSS,
        ),
        (
            "WITH gone AS (DELETE FROM users RETURNING *) SELECT * INTO snapshot FROM gone;",
            Contract,
            LOSS,
        ),
        (
            "COPY (WITH gone AS (DELETE FROM users RETURNING *) SELECT * FROM gone) TO STDOUT;",
            Contract,
            LOSS,
        ),
        (
            "COPY (DELETE FROM users RETURNING *) TO STDOUT;",
            Contract,
            LOSS,
        ),
        ("COPY users TO STDOUT;", Neutral, &["empty-migration"]),
        ("COPY users FROM '/srv/users.csv';", Expand, NONE),
        // EXPLAIN runs its statement only with ANALYZE.
        ("EXPLAIN ANALYZE DELETE FROM users;", Contract, LOSS),
        (
            "EXPLAIN (ANALYZE, BUFFERS) UPDATE users SET name = 'x';",
            Expand,
            WHOLE,
        ),
        (
            "EXPLAIN (ANALYZE false) DELETE FROM users;",
            Neutral,
            &["empty-migration"],
        ),
        ("EXPLAIN DELETE FROM users;", Neutral, &["empty-migration"]),
        // SELECTs that change things, and those that do not.
        // setval may move the sequence behind keys the running version already has (issue 10).
        (
            "SELECT setval('users_seq', 42);",
            Contract,
            &["sequence-moved"],
        ),
        (
            "SELECT pg_catalog.setval('public.users_seq', 42, true);",
            Contract,
            &["sequence-moved"],
        ),
        ("SELECT nextval('users_seq');", Expand, NONE),
        (
            "SELECT pg_catalog.set_config('search_path', '', false);",
            Neutral,
            &["empty-migration"],
        ),
        (
            "SELECT pg_advisory_xact_lock(42);",
            Neutral,
            &["empty-migration"],
        ),
        ("SELECT 1;", Neutral, &["empty-migration"]),
        ("SELECT count(*) FROM users;", Neutral, &["empty-migration"]),
        ("SELECT 1 UNION SELECT 2;", Neutral, &["empty-migration"]),
        ("(SELECT 1);", Neutral, &["empty-migration"]),
        (
            "SELECT refresh_everything();",
            Contract,
            &["unclassified-statement"],
        ),
        (
            "SELECT app.backfill_emails(1000);",
            Contract,
            &["unclassified-statement"],
        ),
        (
            "SELECT id FROM users WHERE app.is_stale(id);",
            Contract,
            &["unclassified-statement"],
        ),
    ];
    let mut wrong = Vec::new();
    for (sql, phase, rules) in cases {
        let (got, got_rules) = classify(sql);
        if got != *phase || got_rules != *rules {
            wrong.push(format!(
                "{sql}\n    got {got:?} {got_rules:?}, want {phase:?} {rules:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn findings_say_when_the_dml_is_in_a_with_query() {
    let a = analyze_one(
        "WITH gone AS (DELETE FROM users RETURNING *) INSERT INTO archive SELECT * FROM gone;",
    );
    let messages: Vec<&str> = a.findings.iter().map(|f| f.message.as_str()).collect();
    assert!(
        messages.contains(&"DELETE without WHERE in a WITH query empties `users`"),
        "{messages:?}"
    );
    assert!(
        messages.contains(
            &"this DELETE in a WITH query touches every row of `users` in one transaction"
        ),
        "{messages:?}"
    );
    // The plain statement keeps its message.
    let a = analyze_one("DELETE FROM users;");
    assert!(
        a.findings
            .iter()
            .any(|f| f.message == "DELETE without WHERE empties `users`")
    );
}

#[test]
fn a_file_of_a_select_that_changes_data_is_no_placeholder() {
    for sql in [
        "WITH x AS (UPDATE users SET name = 'y' WHERE id = 1 RETURNING id) SELECT * FROM x;",
        "SELECT setval('users_seq', 42);",
        "SELECT refresh_everything();",
    ] {
        let a = analyze_one(sql);
        assert!(
            !a.findings.iter().any(|f| f.rule == "empty-migration"),
            "{sql}: {:?}",
            a.findings
        );
        assert_ne!(
            a.migrations[0].statements[0].phase,
            StmtPhase::Neutral,
            "{sql}"
        );
    }
    // pg_dump's session header stays a placeholder.
    let a = analyze_one(
        "SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\nSET \
         check_function_bodies = false;\n",
    );
    assert!(a.findings.iter().any(|f| f.rule == "empty-migration"));
}

#[test]
fn an_opaque_function_call_asks_for_a_declaration_and_honours_one() {
    let a = analyze_one("SELECT refresh_everything();");
    let f = a
        .findings
        .iter()
        .find(|f| f.rule == "unclassified-statement")
        .unwrap();
    // cutover never places a statement by guessing: an error until the file declares a phase.
    assert_eq!(f.severity.as_str(), "error");
    assert!(
        f.message.contains("`refresh_everything()`"),
        "{}",
        f.message
    );
    assert!(f.hint.contains("-- cutover:phase=expand"), "{}", f.hint);
    assert_eq!(a.migrations[0].phase, Phase::Contract);
    // Declared expand: accepted (no mismatch), and the migration runs in the expand phase.
    let a = analyze_one("-- cutover:phase=expand\nSELECT refresh_everything();");
    assert!(
        !a.findings
            .iter()
            .any(|f| f.rule == "phase-declaration-mismatch"),
        "{:?}",
        a.findings
    );
    assert_eq!(a.migrations[0].phase, Phase::Expand, "{:?}", a.findings);
}

#[test]
fn data_changes_have_no_automatic_inverse() {
    let a = analyze_one(
        "WITH gone AS (DELETE FROM users WHERE id < 10 RETURNING *) INSERT INTO archive SELECT * \
         FROM gone;\nCREATE TABLE snap AS WITH g AS (DELETE FROM archive WHERE id = 1 RETURNING *) \
         SELECT * FROM g;\nCREATE TABLE plain AS SELECT * FROM users;\nSELECT setval('users_seq', \
         42);",
    );
    let inverses: Vec<&Inverse> = a.migrations[0]
        .statements
        .iter()
        .map(|s| &s.inverse)
        .collect();
    assert!(
        matches!(inverses[0], Inverse::Unknown(r) if r.contains("changed rows")),
        "{inverses:?}"
    );
    assert!(
        matches!(inverses[1], Inverse::Unknown(r) if r.contains("dropping the table does not restore")),
        "{inverses:?}"
    );
    assert_eq!(
        *inverses[2],
        Inverse::Sql("DROP TABLE IF EXISTS plain;".into())
    );
    assert!(
        matches!(inverses[3], Inverse::Unknown(r) if r.contains("sequence")),
        "{inverses:?}"
    );
}

#[test]
fn dml_on_a_table_the_release_creates_is_quiet() {
    let (phase, rules) = classify(
        "CREATE TABLE t2 (id bigint);\nWITH x AS (DELETE FROM t2 RETURNING *) SELECT * FROM x;",
    );
    assert_eq!((phase, rules), (StmtPhase::Expand, vec![]));
}
