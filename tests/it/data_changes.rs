//! Statements that look like reads but change data, on a real PostgreSQL: the planner calls a
//! statement neutral exactly when the server leaves the rows alone.

use crate::pg::Cluster;
use cutover_planner::analysis::{AnalyzeOptions, StmtPhase, analyze};
use cutover_planner::migrations::MigrationFile;

const BASE: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE archive (id bigint PRIMARY KEY, name text NOT NULL);
CREATE SEQUENCE users_seq;";

fn planned(sql: &str) -> StmtPhase {
    let files = [
        MigrationFile::from_bytes("V1__base.sql", "V1__base.sql", BASE.as_bytes()).unwrap(),
        MigrationFile::from_bytes("V2__x.sql", "V2__x.sql", sql.as_bytes()).unwrap(),
    ];
    let a = analyze(&files, Some(1), AnalyzeOptions { release: true });
    a.migrations[0].statements.last().unwrap().phase
}

/// Each statement runs on fresh tables (10 users, an empty archive, the sequence at 1); the
/// planner's phase is `Neutral` exactly when the rows and the sequence are as they were, and
/// `Contract` for the whole-table deletes.
#[test]
fn statements_that_change_data_are_never_neutral() {
    let cluster = Cluster::start();
    let cases: &[(&str, StmtPhase)] = &[
        (
            "WITH gone AS (DELETE FROM users RETURNING *) INSERT INTO archive SELECT * FROM gone",
            StmtPhase::Contract,
        ),
        // The outer SELECT does not even read the WITH query; PostgreSQL runs it anyway.
        (
            "WITH gone AS (DELETE FROM users RETURNING *) SELECT 1",
            StmtPhase::Contract,
        ),
        (
            "WITH x AS (UPDATE users SET name = 'y' RETURNING id) SELECT count(*) FROM x",
            StmtPhase::Expand,
        ),
        (
            "CREATE TABLE snap AS WITH gone AS (DELETE FROM users RETURNING *) SELECT * FROM gone",
            StmtPhase::Contract,
        ),
        (
            "WITH gone AS (DELETE FROM users RETURNING *) SELECT * INTO snap FROM gone",
            StmtPhase::Contract,
        ),
        (
            "COPY (DELETE FROM users RETURNING id) TO STDOUT",
            StmtPhase::Contract,
        ),
        (
            "EXPLAIN (ANALYZE, COSTS OFF) DELETE FROM users",
            StmtPhase::Contract,
        ),
        ("EXPLAIN (COSTS OFF) DELETE FROM users", StmtPhase::Neutral),
        ("SELECT setval('users_seq', 42)", StmtPhase::Contract),
        (
            "SELECT pg_catalog.set_config('search_path', 'public', false)",
            StmtPhase::Neutral,
        ),
        ("SELECT count(*) FROM users", StmtPhase::Neutral),
    ];
    let state = "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM users WHERE \
                 name = 'x') || ' ' || (SELECT count(*) FROM archive) || ' ' || (SELECT last_value \
                 FROM users_seq)";
    let mut wrong = Vec::new();
    for (sql, want) in cases {
        cluster.psql(&format!(
            "DROP TABLE IF EXISTS users, archive, snap; DROP SEQUENCE IF EXISTS users_seq; {BASE} \
             INSERT INTO users SELECT g, 'x' FROM generate_series(1, 10) g"
        ));
        let before = cluster.psql(state);
        cluster
            .psql_session(&[sql])
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let after = cluster.psql(state);
        let changed = before != after;
        let phase = planned(&format!("{sql};"));
        if phase != *want || changed != (phase != StmtPhase::Neutral) {
            wrong.push(format!(
                "{sql}: the planner says {phase:?} (want {want:?}); the server went from {before} \
                 to {after}"
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
