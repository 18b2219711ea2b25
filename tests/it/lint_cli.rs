//! `cutover lint`: classification, findings, ignores, exit codes.

use crate::common::{assert_no_panic, cutover, transcript};
use serde_json::Value;
use std::fs;

fn lint_json(args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["lint", "--format", "json"];
    all.extend_from_slice(args);
    let out = cutover(&all);
    assert_no_panic(&out);
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", transcript(&out))),
    )
}

fn rules(doc: &Value) -> Vec<(String, u64)> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn sample_directory_classifies_every_migration() {
    let (code, doc) = lint_json(&["migrations-sample/app"]);
    assert_eq!(code, Some(0));
    let phases: Vec<(&str, &str)> = doc["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["file"].as_str().unwrap(), m["phase"].as_str().unwrap()))
        .collect();
    assert_eq!(
        phases.last().unwrap(),
        &(
            "migrations-sample/app/V7__drop_users_legacy_flags.sql",
            "contract"
        )
    );
    // The foreign key of V5 can reject orders the old version writes: it waits for its
    // retirement. Everything else but V7's drop is expand.
    for (i, (file, phase)) in phases[..6].iter().enumerate() {
        let want = if i == 4 { "contract" } else { "expand" };
        assert_eq!(*phase, want, "{file}: {phases:?}");
    }
    let v4 = &doc["migrations"][3];
    assert_eq!(
        v4["transactional"], false,
        "CREATE INDEX CONCURRENTLY cannot run in a transaction"
    );
    assert_eq!(v4["statements"][0]["line"], 2);
}

#[test]
fn lock_hazards_and_breaking_changes_exit_2_with_locations() {
    let dir = tempfile::tempdir().unwrap();
    let sql = "\
CREATE INDEX users_email_idx ON users (email);
ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);
ALTER TABLE users RENAME COLUMN name TO full_name;
ALTER TABLE users ADD COLUMN created timestamptz DEFAULT now();
ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();
DELETE FROM sessions;
";
    fs::write(dir.path().join("V9__risky.sql"), sql).unwrap();
    let (code, doc) = lint_json(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(2));
    let r = rules(&doc);
    for expected in [
        ("require-concurrent-index-creation", 1),
        ("adding-foreign-key-constraint", 2),
        ("breaking-rename-column", 3),
        ("adding-field-with-default", 5),
        ("data-loss", 6),
        ("unbatched-dml", 6),
    ] {
        assert!(
            r.contains(&(expected.0.to_string(), expected.1)),
            "missing {expected:?} in {r:?}"
        );
    }
    // now() is not volatile in PostgreSQL's sense: no table rewrite, no finding on line 4.
    assert!(
        !r.iter()
            .any(|(rule, line)| rule == "adding-field-with-default" && *line == 4),
        "{r:?}"
    );
    let m = &doc["migrations"][0];
    assert_eq!(m["phase"], "breaking");
    let phases: Vec<&str> = m["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        // The foreign key on line 2 can reject orders the running version writes: contract.
        [
            "expand", "contract", "breaking", "expand", "expand", "contract"
        ]
    );
}

#[test]
fn concurrently_sharing_a_migration_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("V2__two.sql"),
        "ALTER TABLE users ADD COLUMN a text;\nCREATE INDEX CONCURRENTLY users_a ON users (a);\n",
    )
    .unwrap();
    let (code, doc) = lint_json(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        rules(&doc).contains(&("concurrently-in-transaction".to_string(), 2)),
        "{:?}",
        rules(&doc)
    );
    // Alone in its file (SET aside) it is fine.
    fs::write(
        dir.path().join("V2__two.sql"),
        "SET lock_timeout = '1s';\nCREATE INDEX CONCURRENTLY users_a ON users (a);\n",
    )
    .unwrap();
    let (_, doc) = lint_json(&[dir.path().to_str().unwrap()]);
    assert!(
        !rules(&doc)
            .iter()
            .any(|(r, _)| r == "concurrently-in-transaction"),
        "{:?}",
        rules(&doc)
    );
}

#[test]
fn ignore_comments_silence_one_statement_only() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("V3__idx.sql"),
        "-- cutover:ignore require-concurrent-index-creation\nCREATE INDEX a_idx ON users \
         (a);\nCREATE INDEX b_idx ON users (b);\n",
    )
    .unwrap();
    let (_, doc) = lint_json(&[dir.path().to_str().unwrap()]);
    let hits: Vec<u64> = rules(&doc)
        .into_iter()
        .filter(|(r, _)| r == "require-concurrent-index-creation")
        .map(|(_, l)| l)
        .collect();
    assert_eq!(hits, vec![3]);
}

#[test]
fn unparseable_statement_is_a_finding_and_neighbours_are_still_checked() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("V4__typo.sql"),
        "CREATE INDEX a_idx ON users (a);\nALTERR TABLE users ADD COLUMN b int;\nALTER TABLE users \
         DROP COLUMN c;\n",
    )
    .unwrap();
    let (code, doc) = lint_json(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(2));
    let r = rules(&doc);
    assert!(r.contains(&("unparseable-statement".into(), 2)), "{r:?}");
    assert!(
        r.contains(&("require-concurrent-index-creation".into(), 1)),
        "{r:?}"
    );
    assert!(r.contains(&("data-loss".into(), 3)), "{r:?}");
    assert_eq!(
        doc["migrations"][0]["phase"], "unknown",
        "an unreadable statement blocks classification"
    );
}

#[test]
fn list_rules_names_every_rule_with_a_severity() {
    let out = cutover(&["lint", "--list-rules", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let rules: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for id in [
        "unparseable-statement",
        "breaking-rename-column",
        "data-loss",
        "concurrently-in-transaction",
        "require-concurrent-index-creation",
        "constraint-missing-not-valid",
        "require-lock-timeout",
    ] {
        assert!(ids.contains(&id), "{id} missing");
    }
}

/// Every finding links to its rule's section of docs/rules.md: `doc` in JSON, a `see:` line in
/// text; `--list-rules` gives the same link per rule.
#[test]
fn findings_and_listed_rules_link_to_their_section_of_the_rules_doc() {
    let doc = fs::read_to_string(crate::common::root().join("docs/rules.md")).unwrap();
    let section = |id: &str| doc.contains(&format!("\n### {id}\n"));
    let (_, lint) = lint_json(&["migrations-sample/app"]);
    let findings = lint["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    for f in findings {
        let rule = f["rule"].as_str().unwrap();
        assert_eq!(f["doc"], format!("docs/rules.md#{rule}"), "{f:#}");
        assert!(section(rule), "docs/rules.md has no `### {rule}`");
    }
    let text = cutover(&["lint", "migrations-sample/app"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("\n      see: docs/rules.md#data-loss\n"),
        "{text}"
    );
    let listed = cutover(&["lint", "--list-rules", "--format", "json"]);
    let rules: Value = serde_json::from_slice(&listed.stdout).unwrap();
    for r in rules.as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        assert_eq!(r["doc"], format!("docs/rules.md#{id}"));
        assert!(section(id), "docs/rules.md has no `### {id}`");
    }
    let listed = cutover(&["lint", "--list-rules"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("docs/rules.md#<rule id>"));
}

#[test]
fn lint_of_a_missing_path_is_bad_input() {
    let out = cutover(&["lint", "no/such/dir"]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`no/such/dir` does not exist"));
}

#[test]
fn lint_formats_of_the_sample_migrations_match_their_snapshots() {
    for dir in ["app", "rename"] {
        for format in ["text", "json"] {
            let out = cutover(&[
                "lint",
                &format!("migrations-sample/{dir}"),
                "--format",
                format,
            ]);
            assert_no_panic(&out);
            insta::assert_snapshot!(format!("lint-{dir}-{format}"), transcript(&out));
        }
    }
}

/// A trailing `-- cutover:ignore` silences the statement on its own line, not the next one
/// (squawk#833's shape: the comment written after the statement it was meant for).
#[test]
fn a_trailing_ignore_comment_silences_its_own_line_only() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("V1__t.sql"),
        "CREATE TABLE t (id bigint PRIMARY KEY, a int, b int);\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("V2__idx.sql"),
        "CREATE INDEX a_idx ON t (a); -- cutover:ignore require-concurrent-index-creation\nCREATE \
         INDEX b_idx ON t (b);\n",
    )
    .unwrap();
    let out = cutover(&["lint", dir.path().to_str().unwrap(), "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines: Vec<u64> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["rule"] == "require-concurrent-index-creation"
                && f["file"].as_str().unwrap().ends_with("V2__idx.sql")
        })
        .map(|f| f["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![2], "{doc:#}");
    // The same for cutover's own rules: the accepted DROP COLUMN is silenced, the DROP TABLE
    // after it is not; a comment above a statement still silences that statement.
    fs::write(
        dir.path().join("V2__idx.sql"),
        "ALTER TABLE t DROP COLUMN a; -- cutover:ignore data-loss\nDROP TABLE t;\n",
    )
    .unwrap();
    let out = cutover(&["lint", dir.path().to_str().unwrap(), "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines: Vec<u64> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "data-loss")
        .map(|f| f["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![2], "{doc:#}");
    fs::write(
        dir.path().join("V2__idx.sql"),
        "-- cutover:ignore data-loss\nALTER TABLE t DROP COLUMN a;\n",
    )
    .unwrap();
    let out = cutover(&["lint", dir.path().to_str().unwrap(), "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "data-loss"),
        "{doc:#}"
    );
}

/// `--list-rules` names rules as findings do (squawk's `prefer-timestamp-tz`), and an ignore
/// comment takes that id or squawk's alias.
#[test]
fn listed_rule_ids_are_the_reported_ones_and_ignores_take_aliases() {
    let listed = cutover(&["lint", "--list-rules", "--format", "json"]);
    let rules: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let info = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "prefer-timestamp-tz")
        .unwrap_or_else(|| panic!("{rules:#}"));
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("V1__t.sql"),
        "CREATE TABLE t (id bigint PRIMARY KEY, at timestamp);\n",
    )
    .unwrap();
    let out = cutover(&["lint", dir.path().to_str().unwrap(), "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "prefer-timestamp-tz")
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert_eq!(
        f["severity"], info["severity"],
        "listed and reported severities differ"
    );
    for alias in ["prefer-timestamp-tz", "prefer-timestamptz"] {
        fs::write(
            dir.path().join("V1__t.sql"),
            format!(
                "-- cutover:ignore {alias}\nCREATE TABLE t (id bigint PRIMARY KEY, at timestamp);\n"
            ),
        )
        .unwrap();
        let out = cutover(&["lint", dir.path().to_str().unwrap(), "--format", "json"]);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            !doc["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["rule"] == "prefer-timestamp-tz"),
            "{alias}: {doc:#}"
        );
    }
}

/// A generated statement as deep as real cleanup migrations get (a 150,000-term OR chain,
/// 20,000 nested parentheses) is analyzed, not a stack overflow: `plan` and `lint` answer with
/// an exit code and classify it.
#[test]
fn deeply_nested_statements_are_analyzed_without_overflowing_the_stack() {
    let deep = [
        (
            "or-chain",
            format!(
                "DELETE FROM items WHERE {};\n",
                (0..150_000)
                    .map(|i| format!("id = {i}"))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ),
            "expand",
        ),
        (
            "parentheses",
            format!(
                "UPDATE items SET name = {}'x'{} WHERE id = 1;\n",
                "(".repeat(20_000),
                ")".repeat(20_000)
            ),
            "expand",
        ),
    ];
    for (what, sql, phase) in deep {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        fs::create_dir(&m).unwrap();
        fs::write(
            m.join("V1__base.sql"),
            "CREATE TABLE items (id bigint PRIMARY KEY, name text);\n",
        )
        .unwrap();
        fs::write(m.join("V2__cleanup.sql"), &sql).unwrap();
        fs::write(
            dir.path().join("spec.toml"),
            "[release]\nname = \"deep\"\n\n[[database]]\nname = \"main\"\nurl_env \
             = \"DATABASE_URL\"\nmigrations = \"m\"\nbaseline = 1\n",
        )
        .unwrap();
        let (code, doc) = lint_json(&[m.to_str().unwrap()]);
        assert!(matches!(code, Some(0..=2)), "{what}: lint exited {code:?}");
        assert_eq!(doc["migrations"][1]["phase"], phase, "{what}");
        let out = cutover(&[
            "plan",
            dir.path().join("spec.toml").to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", transcript(&out));
    }
}

/// In CI: `--format github` writes one workflow command per finding (an annotation on the
/// diff) and `--format sarif` a SARIF 2.1.0 log; both keep lint's exit code.
#[test]
fn github_annotations_and_sarif_carry_every_finding() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("V1__base.sql"),
        "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("V2__tighten.sql"),
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let json = crate::common::cutover(&["lint", path, "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let findings = doc["findings"].as_array().unwrap();
    assert!(!findings.is_empty());

    let gh = crate::common::cutover(&["lint", path, "--format", "github"]);
    assert_eq!(gh.status.code(), json.status.code(), "{}", transcript(&gh));
    assert_eq!(
        gh.status.code(),
        Some(2),
        "an error finding: {}",
        transcript(&gh)
    );
    let text = String::from_utf8(gh.stdout).unwrap();
    assert_eq!(text.lines().count(), findings.len(), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("::error file=")
            && l.contains("V2__tighten.sql,line=1,title=cutover breaking-set-not-null::")),
        "{text}"
    );

    let sarif = crate::common::cutover(&["lint", path, "--format", "sarif"]);
    assert_eq!(sarif.status.code(), Some(2), "{}", transcript(&sarif));
    let log: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), findings.len());
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"] == "breaking-set-not-null" && r["level"] == "error")
    );
}
