//! `cutover.toml`: found from any subdirectory; `[lint]` excludes and rule settings; the state
//! directory and the log database variable; errors that name the file, line and key.

use crate::common::{cutover_in, transcript};
use serde_json::Value;
use std::fs;
use std::path::Path;

/// A project: two migration directories (one of them legacy), and `settings` as cutover.toml.
fn project(settings: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    fs::create_dir_all(p.join("db/app")).unwrap();
    fs::create_dir_all(p.join("db/legacy")).unwrap();
    fs::create_dir_all(p.join("sub/deeper")).unwrap();
    fs::write(
        p.join("db/app/V1__t.sql"),
        "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n",
    )
    .unwrap();
    fs::write(
        p.join("db/app/V2__idx.sql"),
        "CREATE INDEX users_email_idx ON users (email);\n",
    )
    .unwrap();
    fs::write(
        p.join("db/legacy/V3__drop.sql"),
        "ALTER TABLE users DROP COLUMN email;\n",
    )
    .unwrap();
    if !settings.is_empty() {
        fs::write(p.join("cutover.toml"), settings).unwrap();
    }
    dir
}

/// `(rule, severity)` of each finding of `cutover lint --format json PATHS` run in `dir`.
fn findings(dir: &Path, paths: &[&str]) -> (Option<i32>, Vec<(String, String)>) {
    let mut args = vec!["lint", "--format", "json"];
    args.extend_from_slice(paths);
    let out = cutover_in(dir, &args);
    let doc: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", transcript(&out)));
    let found = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().into(),
                f["severity"].as_str().unwrap().into(),
            )
        })
        .collect();
    (out.status.code(), found)
}

#[test]
fn lint_leaves_out_excluded_files_and_applies_rule_settings_from_any_subdirectory() {
    let without = project("");
    let (code, all) = findings(without.path(), &["db/app", "db/legacy"]);
    assert_eq!(code, Some(2), "the plain index build is an error: {all:?}");
    assert!(all.iter().any(|(r, _)| r == "data-loss"), "{all:?}");

    let dir = project(
        "[lint]\nexclude = [\"db/legacy/**\"]\n\n[lint.rules]\nrequire-concurrent-index-creation \
         = \"off\"\nrequire-lock-timeout = \"error\"\n",
    );
    for cwd in [dir.path().to_path_buf(), dir.path().join("sub/deeper")] {
        let paths: Vec<String> = ["db/app", "db/legacy"]
            .iter()
            .map(|p| dir.path().join(p).display().to_string())
            .collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let (code, found) = findings(&cwd, &paths);
        assert!(
            !found.iter().any(|(r, _)| r == "data-loss"),
            "db/legacy is excluded: {found:?}"
        );
        assert!(
            !found
                .iter()
                .any(|(r, _)| r == "require-concurrent-index-creation"),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(r, s)| r == "require-lock-timeout" && s == "error"),
            "{found:?}"
        );
        assert_eq!(code, Some(2), "an error by the settings fails the lint");
    }
}

#[test]
fn a_bad_setting_is_refused_naming_the_file_line_and_what_to_do() {
    for (settings, line, says) in [
        (
            "[lint.rules]\nrequire-concurent-index-creation = \"off\"\n",
            2,
            "unknown rule `require-concurent-index-creation`",
        ),
        (
            "state_dir = \"s\"\nstate-dir = \"t\"\n",
            2,
            "unknown field `state-dir`",
        ),
        (
            "[lint.rules]\ndata-loss = \"loud\"\n",
            2,
            "unknown variant `loud`",
        ),
        ("[lint]\nexclude = [\"db/[legacy\"]\n", 2, "is not a glob"),
    ] {
        let dir = project(settings);
        let out = cutover_in(&dir.path().join("sub"), &["lint", "../db/app"]);
        let text = transcript(&out);
        assert_eq!(out.status.code(), Some(1), "{settings}: {text}");
        assert!(
            text.contains(&format!("cutover.toml:{line}:")) && text.contains(says),
            "{settings}: {text}"
        );
        assert!(text.contains("hint:"), "{text}");
    }
}

#[test]
fn runs_are_found_from_a_subdirectory_and_the_log_database_variable_must_be_set() {
    let dir = project("state_dir = \"state\"\n");
    let spec = "[release]\nname = \"p\"\n\n[[command]]\nname = \"a\"\nstage = \"pre-migrate\"\nargv \
                = [\"true\"]\nread_only = true\n";
    fs::write(dir.path().join("spec.toml"), spec).unwrap();
    let out = cutover_in(dir.path(), &["apply", "spec.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(dir.path().join("state/runs").is_dir());
    let out = cutover_in(&dir.path().join("sub/deeper"), &["status", "latest"]);
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("release `p`") && text.contains("succeeded"),
        "{text}"
    );

    let dir = project("log_database_url_env = \"CUTOVER_TEST_UNSET_LOG_DB\"\n");
    let out = cutover_in(dir.path(), &["runs"]);
    let text = transcript(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("cutover.toml:1:") && text.contains("CUTOVER_TEST_UNSET_LOG_DB"),
        "{text}"
    );
}
