//! The expand / contract / breaking classification, statement by statement, against a baseline
//! where `users(id bigint PRIMARY KEY, name text NOT NULL, email text)` already exists.

use cutover_planner::analysis::{AnalyzeOptions, Phase, StmtPhase, analyze};
use cutover_planner::migrations::MigrationFile;

const BASE: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, email text);";

fn classify(sql: &str) -> (StmtPhase, Vec<String>, Phase) {
    let files = vec![
        MigrationFile::from_bytes("V1__base.sql", "V1__base.sql", BASE.as_bytes()).unwrap(),
        MigrationFile::from_bytes("V2__x.sql", "V2__x.sql", sql.as_bytes()).unwrap(),
    ];
    let a = analyze(&files, Some(1), AnalyzeOptions { release: true });
    let m = &a.migrations[0];
    let rules = a.findings.iter().map(|f| f.rule.clone()).collect();
    (m.statements.last().unwrap().phase, rules, m.phase)
}

#[test]
fn statements_land_in_the_right_phase() {
    use StmtPhase::*;
    let cases: &[(&str, StmtPhase)] = &[
        ("ALTER TABLE users ADD COLUMN nickname text;", Expand),
        (
            "ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;",
            Expand,
        ),
        ("ALTER TABLE users ADD COLUMN code text NOT NULL;", Breaking),
        ("CREATE TABLE things (id bigint PRIMARY KEY);", Expand),
        (
            "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
            Expand,
        ),
        // It can reject what the old version writes: NOT VALID only skips existing rows.
        (
            "ALTER TABLE users ADD CONSTRAINT email_len CHECK (length(email) < 300) NOT VALID;",
            Contract,
        ),
        ("ALTER TABLE users VALIDATE CONSTRAINT email_len;", Expand),
        (
            "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;",
            Expand,
        ),
        (
            "ALTER TABLE users ALTER COLUMN email SET DEFAULT 'x';",
            Expand,
        ),
        (
            "COMMENT ON COLUMN users.email IS 'primary address';",
            Expand,
        ),
        ("ALTER TYPE mood ADD VALUE 'meh';", Expand),
        ("ALTER TABLE users DROP COLUMN email;", Contract),
        ("DROP TABLE users;", Contract),
        ("DROP INDEX CONCURRENTLY users_email_idx;", Contract),
        ("ALTER TABLE users DROP CONSTRAINT email_len;", Contract),
        ("DROP TRIGGER t ON users;", Contract),
        ("DROP FUNCTION f();", Contract),
        ("TRUNCATE users;", Contract),
        (
            "ALTER TABLE users RENAME COLUMN name TO full_name;",
            Breaking,
        ),
        ("ALTER TABLE users RENAME TO people;", Breaking),
        (
            "ALTER TABLE users ALTER COLUMN email TYPE varchar(100);",
            Breaking,
        ),
        (
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
            Breaking,
        ),
        ("ALTER VIEW v RENAME TO w;", Breaking),
        ("SET lock_timeout = '2s';", Neutral),
        ("ANALYZE users;", Neutral),
    ];
    for (sql, want) in cases {
        let (got, rules, _) = classify(sql);
        assert_eq!(got, *want, "{sql} (findings: {rules:?})");
    }
}

#[test]
fn set_not_null_after_a_validated_check_runs_with_the_check_after_the_old_version() {
    // The check rejects the NULLs the old version may write, so the recipe runs in contract;
    // SET NOT NULL after it rejects nothing new and skips the scan.
    let sql = "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT \
               VALID;\nALTER TABLE users VALIDATE CONSTRAINT email_nn;\nALTER TABLE users ALTER \
               COLUMN email SET NOT NULL;";
    let (phase, rules, file) = classify(sql);
    assert_eq!(phase, StmtPhase::Contract, "{rules:?}");
    assert_eq!(file, Phase::Contract, "{rules:?}");
    assert!(!rules.contains(&"breaking-set-not-null".to_string()));
    assert!(!rules.contains(&"mixed-phase-migration".to_string()));
    assert!(rules.contains(&"constraint-rejects-old-writes".to_string()));
    // A check that was there before the release already rejects NULLs: SET NOT NULL is expand.
    let files = vec![
        MigrationFile::from_bytes(
            "V1__base.sql",
            "V1__base.sql",
            format!("{BASE}\nALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL);")
                .as_bytes(),
        )
        .unwrap(),
        MigrationFile::from_bytes(
            "V2__x.sql",
            "V2__x.sql",
            b"ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
        )
        .unwrap(),
    ];
    let a = analyze(&files, Some(1), AnalyzeOptions { release: true });
    assert_eq!(a.migrations[0].phase, Phase::Expand, "{:?}", a.findings);
}

#[test]
fn statements_on_a_table_created_in_the_release_are_safe() {
    // Nobody uses `things` yet: no CONCURRENTLY needed, renaming its column breaks nothing.
    let sql = "CREATE TABLE things (id bigint PRIMARY KEY, a text);";
    let files = vec![
        MigrationFile::from_bytes("V1__base.sql", "V1__base.sql", BASE.as_bytes()).unwrap(),
        MigrationFile::from_bytes("V2__t.sql", "V2__t.sql", sql.as_bytes()).unwrap(),
        MigrationFile::from_bytes(
            "V3__i.sql",
            "V3__i.sql",
            b"CREATE INDEX things_a ON things (a);\nALTER TABLE things RENAME COLUMN a TO b;",
        )
        .unwrap(),
    ];
    let a = analyze(&files, Some(1), AnalyzeOptions { release: true });
    assert!(a.findings.is_empty(), "{:#?}", a.findings);
    assert_eq!(a.migrations[1].phase, Phase::Expand);
    // Without release context (lint), the same files are judged as if every table were live.
    let lint = analyze(&files, None, AnalyzeOptions::default());
    assert!(
        lint.findings
            .iter()
            .any(|f| f.rule == "require-concurrent-index-creation" && f.file == "V3__i.sql")
    );
}

#[test]
fn a_declared_contract_phase_delays_an_expand_migration() {
    let (_, rules, phase) =
        classify("-- cutover:phase=contract\nALTER TABLE users ADD COLUMN x text;");
    assert_eq!(phase, Phase::Contract, "{rules:?}");
}

#[test]
fn derived_inverses_undo_expand_statements() {
    use cutover_planner::analysis::Inverse;
    let files = vec![
        MigrationFile::from_bytes("V1__base.sql", "V1__base.sql", BASE.as_bytes()).unwrap(),
        MigrationFile::from_bytes(
            "V2__x.sql",
            "V2__x.sql",
            b"ALTER TABLE users ADD COLUMN n text;\nCREATE INDEX CONCURRENTLY users_n ON users \
              (n);\nCREATE TABLE t (id int);\nALTER TABLE users ADD CONSTRAINT c CHECK (n <> '') \
              NOT VALID;",
        )
        .unwrap(),
    ];
    let a = analyze(&files, Some(1), AnalyzeOptions { release: true });
    let inv: Vec<String> = a.migrations[0]
        .statements
        .iter()
        .map(|s| match &s.inverse {
            Inverse::Sql(x) => x.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        inv,
        vec![
            "ALTER TABLE users DROP COLUMN IF EXISTS n;",
            "DROP INDEX CONCURRENTLY IF EXISTS users_n;",
            "DROP TABLE IF EXISTS t;",
            "ALTER TABLE users DROP CONSTRAINT IF EXISTS c;",
        ]
    );
}

#[test]
fn a_down_file_undoes_a_migration_without_a_derived_inverse() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("V1__base.sql"), BASE).unwrap();
    std::fs::write(
        m.join("V2__default_email.sql"),
        "ALTER TABLE users ALTER COLUMN email SET DEFAULT 'none';\n",
    )
    .unwrap();
    let spec = "[release]\nname = \"d\"\n\n[[database]]\nname = \"main\"\nurl_env \
                = \"DATABASE_URL\"\nmigrations = \"m\"\nbaseline = 1\n";
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    let undo = |plan: &cutover_planner::Plan| {
        plan.step("migrate/expand/V2__default_email")
            .map(|s| {
                (
                    s.reversible,
                    s.undo.clone(),
                    match &s.params {
                        cutover_planner::dag::Params::Migrate(
                            cutover_planner::dag::MigrateParams { undo_sql, .. },
                        ) => undo_sql.clone(),
                        _ => None,
                    },
                )
            })
            .unwrap()
    };
    // Without a down file the previous default is unknown: irreversible.
    let plan = cutover_planner::plan_file(&dir.path().join("spec.toml"))
        .unwrap()
        .plan;
    assert!(!undo(&plan).0);
    // With one, the step is reversible and runs exactly that file.
    std::fs::write(
        m.join("V2__default_email.down.sql"),
        "ALTER TABLE users ALTER COLUMN email DROP DEFAULT;\n",
    )
    .unwrap();
    let plan = cutover_planner::plan_file(&dir.path().join("spec.toml"))
        .unwrap()
        .plan;
    let (reversible, how, sql) = undo(&plan);
    assert!(reversible);
    assert!(how.contains("V2__default_email.down.sql"), "{how}");
    assert_eq!(
        sql.as_deref(),
        Some("ALTER TABLE users ALTER COLUMN email DROP DEFAULT;")
    );
    // A down file without its migration is an error naming it.
    std::fs::write(m.join("V3__nothing.down.sql"), "SELECT 1;\n").unwrap();
    let err = cutover_planner::plan_file(&dir.path().join("spec.toml")).unwrap_err();
    assert!(
        err.to_string().contains("V3__nothing.down.sql")
            || err
                .diagnostics()
                .iter()
                .any(|d| d.message.contains("V3__nothing.down.sql")),
        "{:?}",
        err.diagnostics()
    );
}

/// `breaking-rename-object` names the kind of object in full (it said "renaming this
/// materialized breaks ...").
#[test]
fn a_rename_names_the_whole_kind_of_object() {
    let base = "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, email text);\n\
                CREATE MATERIALIZED VIEW user_names AS SELECT id, name FROM users;\n\
                CREATE VIEW user_emails AS SELECT id, email FROM users;";
    let cases = [
        (
            "ALTER MATERIALIZED VIEW user_names RENAME TO names;",
            "this materialized view breaks",
        ),
        (
            "ALTER FOREIGN TABLE remote_users RENAME TO remote_people;",
            "this foreign table breaks",
        ),
        (
            "ALTER TABLE user_names RENAME TO names;",
            "this materialized view breaks",
        ),
        (
            "ALTER TABLE user_emails RENAME COLUMN email TO mail;",
            "this view column breaks",
        ),
    ];
    for (sql, want) in cases {
        let files = vec![
            MigrationFile::from_bytes("V1__base.sql", "V1__base.sql", base.as_bytes()).unwrap(),
            MigrationFile::from_bytes("V2__x.sql", "V2__x.sql", sql.as_bytes()).unwrap(),
        ];
        let a = analyze(&files, Some(1), AnalyzeOptions { release: true });
        let f = a
            .findings
            .iter()
            .find(|f| f.rule == "breaking-rename-object")
            .unwrap_or_else(|| panic!("{sql}: no breaking-rename-object in {:?}", a.findings));
        assert!(f.message.contains(want), "{sql}: {}", f.message);
        assert!(
            a.findings
                .iter()
                .all(|f| f.rule != "breaking-rename-column"),
            "{sql}: {:?}",
            a.findings
        );
    }
}
