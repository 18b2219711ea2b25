//! Helpers shared by the tests that classify or plan a release against a baseline migration
//! (`old_version.rs`, `structural.rs`): each test file passes its own baseline.

use cutover_planner::analysis::{Analysis, AnalyzeOptions, Phase, analyze};
use cutover_planner::migrations::MigrationFile;

/// Analyzes `files` (name, SQL) as one release after the baseline `V1__base.sql` holding
/// `base`.
pub fn release(base: &str, files: &[(&str, &str)]) -> Analysis {
    let mut all =
        vec![MigrationFile::from_bytes("V1__base.sql", "V1__base.sql", base.as_bytes()).unwrap()];
    for (name, sql) in files {
        all.push(MigrationFile::from_bytes(name, name, sql.as_bytes()).unwrap());
    }
    analyze(&all, Some(1), AnalyzeOptions { release: true })
}

/// One file's phase and its findings' rule ids, as a one-file release after `base`.
pub fn one(base: &str, sql: &str) -> (Phase, Vec<String>) {
    let a = release(base, &[("V2__x.sql", sql)]);
    (
        a.migrations[0].phase,
        a.findings.iter().map(|f| f.rule.clone()).collect(),
    )
}

/// Checks each case (SQL, phase, rules present, rules absent) as a one-file release after
/// `base`; fails listing every case that is wrong.
pub fn check(base: &str, cases: &[(&str, Phase, &[&str], &[&str])]) {
    let mut wrong = Vec::new();
    for (sql, phase, present, absent) in cases {
        let (got, rules) = one(base, sql);
        let missing: Vec<&&str> = present
            .iter()
            .filter(|r| !rules.iter().any(|x| x == *r))
            .collect();
        let extra: Vec<&&str> = absent
            .iter()
            .filter(|r| rules.iter().any(|x| x == *r))
            .collect();
        if got != *phase || !missing.is_empty() || !extra.is_empty() {
            wrong.push(format!(
                "{sql}\n  want {phase:?} with {present:?} without {absent:?}\n  got  {got:?} with \
                 {rules:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} case(s) wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// A release to plan: a temporary directory holding `spec.toml` (database `main`, baseline 1)
/// and its migrations in `m/`: `V1__base.sql` holding `base`, then `migrations` (name, SQL).
pub fn release_dir(base: &str, migrations: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("V1__base.sql"), base).unwrap();
    for (name, sql) in migrations {
        std::fs::write(m.join(name), sql).unwrap();
    }
    std::fs::write(
        dir.path().join("spec.toml"),
        "[release]\nname = \"r\"\n\n[[database]]\nname = \"main\"\nurl_env \
         = \"DATABASE_URL\"\nmigrations = \"m\"\nbaseline = 1\n",
    )
    .unwrap();
    dir
}
