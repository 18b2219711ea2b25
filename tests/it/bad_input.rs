//! Bad input: every case gets a clear message naming the file and line, a hint, exit code 1 (2
//! when findings in readable migrations stop the plan) and no panic. The fixtures live in
//! `tests/fixtures/<case>/` (one folder per edge case).

use crate::common::{assert_no_panic, cutover, transcript};

/// Plans `tests/fixtures/<case>/spec.toml` and checks the failure (exit 1: bad input); returns
/// stderr.
fn fails(case: &str, location: &str, needles: &[&str]) -> String {
    fails_with(1, case, location, needles)
}

/// As [`fails`], for migrations that are read but whose findings stop the plan (exit 2, as any
/// error finding).
fn blocked(case: &str, location: &str, needles: &[&str]) -> String {
    fails_with(2, case, location, needles)
}

fn fails_with(code: i32, case: &str, location: &str, needles: &[&str]) -> String {
    let spec = format!("tests/fixtures/{case}/spec.toml");
    let out = cutover(&["plan", &spec]);
    assert_no_panic(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{case}: {}",
        transcript(&out)
    );
    assert!(
        out.stdout.is_empty(),
        "{case}: nothing is planned, so nothing goes to stdout"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(location),
        "{case}: expected location {location:?} in:\n{stderr}"
    );
    assert!(stderr.contains("hint: "), "{case}: no hint in:\n{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{case}: expected {n:?} in:\n{stderr}");
    }
    insta::assert_snapshot!(format!("bad-{case}"), stderr);
    stderr
}

#[test]
fn malformed_toml() {
    fails(
        "malformed-toml",
        "tests/fixtures/malformed-toml/spec.toml:1:9",
        &["unclosed table"],
    );
}

#[test]
fn every_syntax_error_of_a_file_is_reported() {
    fails(
        "two-syntax-errors",
        "tests/fixtures/two-syntax-errors/spec.toml:2:16",
        &[
            "2 problems",
            "spec.toml:12:8: invalid release spec: unclosed table",
        ],
    );
}

#[test]
fn unknown_key() {
    fails(
        "unknown-key",
        "tests/fixtures/unknown-key/spec.toml:10:1",
        &[
            "unknown key `colour` in [[service]]",
            "the keys allowed here are",
        ],
    );
}

#[test]
fn three_mistakes_are_reported_in_one_run_each_at_its_line() {
    let stderr = fails(
        "three-mistakes",
        "tests/fixtures/three-mistakes/spec.toml:5:3",
        &["3 problems"],
    );
    for (at, needle) in [
        (
            "spec.toml:5:3:",
            "unknown table `[[services]]`; did you mean `[[service]]`?",
        ),
        (
            "spec.toml:10:1:",
            "unknown key `prot` in [[service]]; did you mean `port`?",
        ),
        (
            "spec.toml:19:16:",
            "invalid type: integer `3`, expected a duration in quotes",
        ),
    ] {
        assert!(
            stderr.lines().any(|l| l.contains(at) && l.contains(needle)),
            "expected {needle:?} at {at} in:\n{stderr}"
        );
    }
    assert_eq!(stderr.matches("hint: ").count(), 3, "{stderr}");
}

#[test]
fn a_section_with_the_wrong_brackets_is_named_with_the_brackets_it_takes() {
    // serde alone says "invalid type: map, expected a sequence", which does not say that
    // `[service]` needs a second pair of brackets.
    let stderr = fails(
        "single-brackets",
        "tests/fixtures/single-brackets/spec.toml:3:3",
        &["2 problems"],
    );
    for (at, needle) in [
        (
            "spec.toml:3:3:",
            "`[[release]]` is an array of tables, but a spec has one `release` table",
        ),
        (
            "spec.toml:6:2:",
            "`[service]` is one table, but a spec lists each service as an array of tables",
        ),
    ] {
        assert!(
            stderr.lines().any(|l| l.contains(at) && l.contains(needle)),
            "expected {needle:?} at {at} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("write `[[service]]`"), "{stderr}");
    assert!(!stderr.contains("expected a sequence"), "{stderr}");
}

#[test]
fn a_misspelt_key_does_not_hide_the_checks_of_the_values() {
    let stderr = fails(
        "misspelt-and-unworkable",
        "tests/fixtures/misspelt-and-unworkable/spec.toml:4:1",
        &[
            "unknown key `on_falure` in [release]; did you mean `on_failure`?",
            "2 problems",
        ],
    );
    assert!(stderr.contains("spec.toml:15:"), "{stderr}");
}

#[test]
fn unknown_strategy() {
    fails(
        "unknown-strategy",
        "tests/fixtures/unknown-strategy/spec.toml:12:8",
        &["unknown variant `blue_green`", "`blue-green`"],
    );
}

#[test]
fn wrong_type() {
    fails(
        "wrong-type",
        "tests/fixtures/wrong-type/spec.toml:9:8",
        &["invalid type", "without quotes"],
    );
}

#[test]
fn weights_not_increasing() {
    fails(
        "weights-not-increasing",
        "tests/fixtures/weights-not-increasing/spec.toml:13:9",
        &["must increase strictly"],
    );
}

#[test]
fn weights_not_ending_at_100() {
    fails(
        "weights-not-ending-at-100",
        "tests/fixtures/weights-not-ending-at-100/spec.toml:13:9",
        &["must end at 100"],
    );
}

#[test]
fn a_literal_database_url_is_refused_and_never_echoed() {
    let stderr = fails(
        "literal-database-url",
        "tests/fixtures/literal-database-url/spec.toml:19:1",
        &["url_env"],
    );
    assert!(
        !stderr.contains("s3cret-pa55"),
        "the password leaked into the error:\n{stderr}"
    );
}

#[test]
fn duplicate_version() {
    fails(
        "duplicate-version",
        "tests/fixtures/duplicate-version/migrations/V2__another.sql",
        &["duplicate migration version 2", "V2__add_column.sql"],
    );
}

#[test]
fn non_numeric_version() {
    fails(
        "non-numeric-version",
        "tests/fixtures/non-numeric-version/migrations/Vtwo__add.sql",
        &["is not a whole number"],
    );
}

#[test]
fn contract_numbered_before_expand() {
    fails(
        "contract-before-expand",
        "tests/fixtures/contract-before-expand/migrations/V3__add_column.sql",
        &["numbered after contract migration `V2__drop_email.sql`"],
    );
}

#[test]
fn missing_migrations_dir() {
    fails(
        "missing-migrations-dir",
        "tests/fixtures/missing-migrations-dir/migrations",
        &["does not exist"],
    );
}

#[test]
fn unparseable_sql() {
    blocked(
        "unparseable-sql",
        "tests/fixtures/unparseable-sql/migrations/V2__typo.sql:3",
        &["[unparseable-statement]"],
    );
}

#[test]
fn bom_and_crlf_keep_line_numbers_right() {
    // The unreadable statement is on line 3 as an editor shows it, BOM and CRLF notwithstanding.
    blocked(
        "bom-crlf-unparseable",
        "tests/fixtures/bom-crlf-unparseable/migrations/V2__bom_crlf.sql:3",
        &["[unparseable-statement]"],
    );
}

#[test]
fn bom_and_crlf_files_that_are_fine_plan_fine() {
    let out = cutover(&[
        "plan",
        "tests/fixtures/bom-crlf-clean/spec.toml",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &doc["migrations"][0];
    assert_eq!(m["phase"], "expand");
    let lines: Vec<u64> = m["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![2, 4]);
}

#[test]
fn breaking_change_without_a_rewrite_names_the_recipe() {
    blocked(
        "breaking-without-rewrite",
        "tests/fixtures/breaking-without-rewrite/migrations/V2__email_type.sql:1",
        &[
            "[breaking-alter-column-type]",
            "add a column of the new type",
            "see: docs/rules.md#breaking-alter-column-type",
        ],
    );
    // The JSON error carries the link too.
    let out = cutover(&[
        "plan",
        "tests/fixtures/breaking-without-rewrite/spec.toml",
        "--format",
        "json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["error"]["diagnostics"][0]["doc"],
        "docs/rules.md#breaking-alter-column-type"
    );
}

#[test]
fn contradicted_phase_declaration() {
    blocked(
        "phase-declaration-mismatch",
        "tests/fixtures/phase-declaration-mismatch/migrations/V2__declared.sql:1",
        &["declares `expand` but line 2 is a contract statement"],
    );
}

#[test]
fn missing_spec_file() {
    let out = cutover(&["plan", "plans/no-such-release.toml"]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the release spec `plans/no-such-release.toml` does not exist")
    );
}

#[test]
fn errors_are_json_on_stdout_when_json_was_asked_for() {
    let out = cutover(&[
        "plan",
        "tests/fixtures/unknown-key/spec.toml",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("a JSON error document");
    let d = &doc["error"]["diagnostics"][0];
    assert_eq!(d["file"], "tests/fixtures/unknown-key/spec.toml");
    assert_eq!(d["line"], 10);
    assert!(d["hint"].as_str().unwrap().contains("keys allowed"));
}

#[test]
fn every_diagnostic_of_a_spec_is_in_the_json_error() {
    let out = cutover(&[
        "plan",
        "tests/fixtures/three-mistakes/spec.toml",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("a JSON error document");
    let lines: Vec<_> = doc["error"]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["line"].as_u64().unwrap(), d["hint"].is_string()))
        .collect();
    assert_eq!(lines, [(5, true), (10, true), (19, true)]);
    let first = &doc["error"]["diagnostics"][0]["message"];
    assert_eq!(
        first,
        "unknown table `[[services]]`; did you mean `[[service]]`?"
    );
}

#[test]
fn values_that_would_fail_mid_release_are_refused_by_plan() {
    // One spec with a value of each kind that parses but cannot work: each is named at its line.
    let stderr = fails(
        "unworkable-values",
        "tests/fixtures/unworkable-values/spec.toml:6:1",
        &["22 problems"],
    );
    for (line, needle) in [
        (6, "`image = \"Api:1\"` holds a tag"),
        (7, "`current = \"1 0\"` is not a Docker tag"),
        (9, "`port` is 0"),
        (10, "`env` key \"A=B\" contains `=`"),
        (10, "`env` sets `PORT`"),
        (10, "the value of `env` key `OK` contains a NUL byte"),
        (11, "`secret_env` name \"\" is empty"),
        (12, "`upstream = \"api; x\"` is not a name"),
        (15, "health `path = \"health\"` is not an HTTP path"),
        (16, "health `interval` is 0s"),
        (17, "health `timeout` is 0s"),
        (18, "health `expect_status = 0`"),
        (24, "analysis `max_p99_latency` is 0s"),
        (24, "an analysis gate behind nginx needs `access_log`"),
        (28, "`url_env = \"DATABASE URL\"` contains a space"),
        (31, "`lock_timeout = \"0s\"` turns the timeout off"),
        (32, "`statement_timeout = \"0s\"` turns the timeout off"),
        (33, "`dir` is empty"),
        (37, "router: `upstream_file` is empty"),
        (38, "router: `test` contains a NUL byte"),
        (43, "command `c`: `argv` contains a NUL byte"),
        (44, "command `c`: `env` key \"\" is empty"),
    ] {
        let at = format!("spec.toml:{line}:");
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&at) && l.contains(needle)),
            "expected {needle:?} at line {line} in:\n{stderr}"
        );
    }
}

/// A valid spec (canary behind nginx, one database) with `edit` applied: (old, new) replacements.
fn spec_with(edits: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let mut spec = "[release]\nname = \"values\"\n\n[[service]]\nname = \"api\"\nimage \
                    = \"api\"\ncurrent = \"1\"\ntarget = \"2\"\nport = \
                    3333\n\n[service.strategy]\nkind = \"canary\"\nsteps = [50, 100]\npause \
                    = \"1s\"\n\n[[service]]\nname = \"web\"\nimage = \"web\"\ncurrent \
                    = \"1\"\ntarget = \"2\"\nport = 4000\n\n[service.strategy]\nkind \
                    = \"blue-green\"\n\n[[database]]\nname = \"main\"\nurl_env \
                    = \"DATABASE_URL\"\nmigrations = \"MIGRATIONS\"\nbaseline = 1\n\n[router]\nkind \
                    = \"nginx\"\nupstream_file = \"/tmp/u.conf\"\n\n[[command]]\nname \
                    = \"smoke\"\nstage = \"post-deploy\"\nargv = [\"true\"]\nread_only = true\n"
        .to_string();
    spec = spec.replace(
        "MIGRATIONS",
        &crate::common::root()
            .join("migrations-sample/rename")
            .display()
            .to_string(),
    );
    for (old, new) in edits {
        assert!(spec.contains(old), "{old:?} is not in the base spec");
        spec = spec.replacen(old, new, 1);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), &spec).unwrap();
    (dir, spec)
}

#[test]
fn each_unworkable_value_is_named_at_its_line_with_a_hint() {
    let (dir, _) = spec_with(&[]);
    let out = crate::common::cutover_in(dir.path(), &["plan", "spec.toml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the base spec plans: {}",
        transcript(&out)
    );
    // (edits to the base spec, the line the error must name, what it must say)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("baseline = 1", "baseline = 1\nlock_timeout = \"0s\"")],
            "lock_timeout = \"0s\"",
            "turns the timeout off",
        ),
        (
            &[("baseline = 1", "baseline = 1\nstatement_timeout = \"0ms\"")],
            "statement_timeout = \"0ms\"",
            "turns the timeout off",
        ),
        (
            &[("baseline = 1", "baseline = 1\nlock_timeout = \"2147484s\"")],
            "lock_timeout = \"2147484s\"",
            "longer than 2147483647ms",
        ),
        (
            &[("baseline = 1", "baseline = 1\nstatement_timeout = \"597h\"")],
            "statement_timeout = \"597h\"",
            "longer than 2147483647ms",
        ),
        (
            &[("pause = \"1s\"", "pause = \"99999999999999999999h\"")],
            "pause = ",
            "invalid duration",
        ),
        (
            &[("url_env = \"DATABASE_URL\"", "url_env = \"\"")],
            "url_env = \"\"",
            "`url_env = \"\"` is empty",
        ),
        (
            &[("url_env = \"DATABASE_URL\"", "url_env = \"DB=URL\"")],
            "url_env = \"DB=URL\"",
            "contains `=`",
        ),
        (
            &[("argv = [\"true\"]", "argv = [\"true\", \"a\\u0000b\"]")],
            "argv = [",
            "`argv` contains a NUL byte",
        ),
        (
            &[(
                "read_only = true",
                "read_only = true\nenv = { \"A=B\" = \"1\" }",
            )],
            "env = {",
            "contains `=`",
        ),
        (
            &[(
                "read_only = true",
                "read_only = true\nsecret_env = [\"TOKEN\\u0000\"]",
            )],
            "secret_env = [",
            "contains a NUL byte",
        ),
        (
            &[(
                "read_only = true",
                "idempotent = true\nprobe = [\"test\", \"\\u0000\"]",
            )],
            "probe = [",
            "`probe` contains a NUL byte",
        ),
        (&[("port = 3333", "port = 0")], "port = 0", "`port` is 0"),
        (
            &[("port = 3333", "port = 3333\ncandidate_port = 0")],
            "candidate_port = 0",
            "`candidate_port` is 0",
        ),
        (
            &[("port = 4000", "port = 3334")],
            "port = 3334",
            "uses port 3334, which service `api` uses too",
        ),
        (
            &[(
                "steps = [50, 100]",
                "steps = [50, 100]\nanalysis = { max_error_rate = 0.01, max_p99_latency = \"0s\" }",
            )],
            "analysis = {",
            "`max_p99_latency` is 0s",
        ),
        (
            &[(
                "steps = [50, 100]",
                "steps = [50, 100]\nanalysis = { max_error_rate = 0.01, max_p99_latency = \"1s\", \
                 max_latency_ratio = 0.8 }",
            )],
            "analysis = {",
            "`max_latency_ratio = 0.8` is below 1.0",
        ),
        (
            &[(
                "port = 3333",
                "port = 3333\n[service.health]\ninterval = \"0s\"",
            )],
            "interval = \"0s\"",
            "health `interval` is 0s",
        ),
        (
            &[("image = \"api\"", "image = \"\"")],
            "image = \"\"",
            "is empty",
        ),
        (
            &[("target = \"2\"", "target = \"-2\"")],
            "target = \"-2\"",
            "is not a Docker tag",
        ),
        (
            &[(
                "upstream_file = \"/tmp/u.conf\"",
                "upstream_file = \"/tmp/u.conf\"\nreload = [\"\", \"-s\", \"reload\"]",
            )],
            "reload = [",
            "empty program name",
        ),
        (
            &[("port = 4000", "port = 4000\nupstream = \"api\"")],
            "upstream = \"api\"",
            "services `api` and `web` both move traffic in upstream `api`",
        ),
        (
            &[(
                "pause = \"1s\"",
                "pause = \"1s\"\nanalysis = { max_error_rate = 0.01, max_p99_latency = \"1s\" }",
            )],
            "analysis = {",
            "an analysis gate behind nginx needs `access_log`",
        ),
    ];
    for (edits, key_line, needle) in cases {
        let (dir, spec) = spec_with(edits);
        let line = spec
            .lines()
            .position(|l| l.starts_with(key_line))
            .expect("the edited key is in the spec")
            + 1;
        let out = crate::common::cutover_in(dir.path(), &["plan", "spec.toml"]);
        assert_no_panic(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{edits:?}: {}",
            transcript(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let at = format!("spec.toml:{line}:");
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&at) && l.contains(needle)),
            "{edits:?}: expected {needle:?} at line {line} in:\n{stderr}"
        );
        assert!(
            stderr.contains("hint: "),
            "{edits:?}: no hint in:\n{stderr}"
        );
    }
}
