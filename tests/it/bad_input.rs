//! Bad input: every case gets a clear message naming the file and line, a hint, exit code 1 and
//! no panic. The fixtures live in `tests/fixtures/<case>/` (one folder per edge case).

use crate::common::{assert_no_panic, cutover, transcript};

/// Plans `tests/fixtures/<case>/spec.toml` and checks the failure; returns stderr.
fn fails(case: &str, location: &str, needles: &[&str]) -> String {
    let spec = format!("tests/fixtures/{case}/spec.toml");
    let out = cutover(&["plan", &spec]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "{case}: {}", transcript(&out));
    assert!(out.stdout.is_empty(), "{case}: nothing is planned, so nothing goes to stdout");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(location), "{case}: expected location {location:?} in:\n{stderr}");
    assert!(stderr.contains("hint: "), "{case}: no hint in:\n{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{case}: expected {n:?} in:\n{stderr}");
    }
    insta::assert_snapshot!(format!("bad-{case}"), stderr);
    stderr
}

#[test]
fn malformed_toml() {
    fails("malformed-toml", "tests/fixtures/malformed-toml/spec.toml:1:9", &["unclosed table"]);
}

#[test]
fn unknown_key() {
    fails("unknown-key", "tests/fixtures/unknown-key/spec.toml:10:1", &["unknown field `colour`", "the keys allowed here are"]);
}

#[test]
fn unknown_strategy() {
    fails("unknown-strategy", "tests/fixtures/unknown-strategy/spec.toml:12:8", &["unknown variant `blue_green`", "`blue-green`"]);
}

#[test]
fn wrong_type() {
    fails("wrong-type", "tests/fixtures/wrong-type/spec.toml:9:8", &["invalid type", "without quotes"]);
}

#[test]
fn weights_not_increasing() {
    fails("weights-not-increasing", "tests/fixtures/weights-not-increasing/spec.toml:13:9", &["must increase strictly"]);
}

#[test]
fn weights_not_ending_at_100() {
    fails("weights-not-ending-at-100", "tests/fixtures/weights-not-ending-at-100/spec.toml:13:9", &["must end at 100"]);
}

#[test]
fn a_literal_database_url_is_refused_and_never_echoed() {
    let stderr = fails("literal-database-url", "tests/fixtures/literal-database-url/spec.toml:19:1", &["url_env"]);
    assert!(!stderr.contains("s3cret-pa55"), "the password leaked into the error:\n{stderr}");
}

#[test]
fn duplicate_version() {
    fails("duplicate-version", "tests/fixtures/duplicate-version/migrations/V2__another.sql", &["duplicate migration version 2", "V2__add_column.sql"]);
}

#[test]
fn non_numeric_version() {
    fails("non-numeric-version", "tests/fixtures/non-numeric-version/migrations/Vtwo__add.sql", &["is not a whole number"]);
}

#[test]
fn contract_numbered_before_expand() {
    fails("contract-before-expand", "tests/fixtures/contract-before-expand/migrations/V3__add_column.sql", &["numbered after contract migration `V2__drop_email.sql`"]);
}

#[test]
fn missing_migrations_dir() {
    fails("missing-migrations-dir", "tests/fixtures/missing-migrations-dir/migrations", &["does not exist"]);
}

#[test]
fn unparseable_sql() {
    fails("unparseable-sql", "tests/fixtures/unparseable-sql/migrations/V2__typo.sql:3", &["[unparseable-statement]"]);
}

#[test]
fn empty_file() {
    fails("empty-file", "tests/fixtures/empty-file/migrations/V2__nothing.sql:1", &["[empty-migration]"]);
}

#[test]
fn bom_and_crlf_keep_line_numbers_right() {
    // The unreadable statement is on line 3 as an editor shows it, BOM and CRLF notwithstanding.
    fails("bom-crlf-unparseable", "tests/fixtures/bom-crlf-unparseable/migrations/V2__bom_crlf.sql:3", &["[unparseable-statement]"]);
}

#[test]
fn bom_and_crlf_files_that_are_fine_plan_fine() {
    let out = cutover(&["plan", "tests/fixtures/bom-crlf-clean/spec.toml", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &doc["migrations"][0];
    assert_eq!(m["phase"], "expand");
    let lines: Vec<u64> = m["statements"].as_array().unwrap().iter().map(|s| s["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![2, 4]);
}

#[test]
fn breaking_change_without_a_rewrite_names_the_recipe() {
    fails("breaking-without-rewrite", "tests/fixtures/breaking-without-rewrite/migrations/V2__email_type.sql:1", &["[breaking-alter-column-type]", "add a column of the new type"]);
}

#[test]
fn contradicted_phase_declaration() {
    fails("phase-declaration-mismatch", "tests/fixtures/phase-declaration-mismatch/migrations/V2__declared.sql:1", &["declares `expand` but line 2 is a contract statement"]);
}

#[test]
fn missing_spec_file() {
    let out = cutover(&["plan", "plans/no-such-release.toml"]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the release spec `plans/no-such-release.toml` does not exist"));
}

#[test]
fn errors_are_json_on_stdout_when_json_was_asked_for() {
    let out = cutover(&["plan", "tests/fixtures/unknown-key/spec.toml", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON error document");
    let d = &doc["error"]["diagnostics"][0];
    assert_eq!(d["file"], "tests/fixtures/unknown-key/spec.toml");
    assert_eq!(d["line"], 10);
    assert!(d["hint"].as_str().unwrap().contains("keys allowed"));
}
