//! Lint findings for CI systems: GitHub Actions workflow commands (annotations on the pull
//! request's diff) and SARIF 2.1.0 (code scanning: GitHub, GitLab, Azure DevOps).

use crate::lint::{Finding, RULES, Severity};
use serde::Serialize;
use std::fmt::Write;

/// One `::error file=...,line=...,title=...::message` line per finding, as GitHub Actions reads
/// workflow commands from a step's output (GitHub Docs, "Workflow commands for GitHub Actions":
/// `error`, `warning` and `notice` with `file`, `line` and `title`). Property values escape `%`,
/// CR, LF, `:` and `,`; the message escapes `%`, CR and LF.
pub fn lint_github(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let command = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let message = format!("{} (fix: {}) see {}", f.message, f.hint, f.doc());
        let _ = writeln!(
            out,
            "::{command} file={},line={},title={}::{}",
            property(&f.file),
            f.line,
            property(&format!("cutover {}", f.rule)),
            data(&message)
        );
    }
    out
}

fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The findings as a SARIF 2.1.0 log (OASIS, "Static Analysis Results Interchange Format
/// Version 2.1.0"): one run of the tool `cutover` listing every rule it knows, and one result per
/// finding with its rule, level (`error`, `warning`, `note`), message and location.
pub fn lint_sarif(findings: &[Finding]) -> String {
    let rules: Vec<SarifRule> = RULES
        .iter()
        .map(|r| SarifRule {
            id: r.id,
            short_description: Text {
                text: r.summary.to_string(),
            },
            help: Text {
                text: format!("{} (in the cutover repository)", r.doc),
            },
            default_configuration: Level {
                level: level(r.severity),
            },
        })
        .collect();
    let results = findings
        .iter()
        .map(|f| SarifResult {
            rule_id: f.rule.clone(),
            level: level(f.severity),
            message: Text {
                text: format!("{} Fix: {}", f.message, f.hint),
            },
            locations: vec![SarifLocation {
                physical_location: Physical {
                    artifact_location: Artifact {
                        uri: f.file.clone(),
                    },
                    region: Region {
                        start_line: f.line.max(1),
                    },
                },
            }],
        })
        .collect();
    let log = SarifLog {
        schema: "https://json.schemastore.org/sarif-2.1.0.json",
        version: "2.1.0",
        runs: vec![SarifRun {
            tool: Tool {
                driver: Driver {
                    name: "cutover",
                    version: env!("CARGO_PKG_VERSION"),
                    rules,
                },
            },
            results,
        }],
    };
    serde_json::to_string_pretty(&log).expect("SARIF serializes") + "\n"
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

#[derive(Serialize)]
struct SarifLog {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: Vec<SarifRun>,
}

#[derive(Serialize)]
struct SarifRun {
    tool: Tool,
    results: Vec<SarifResult>,
}

#[derive(Serialize)]
struct Tool {
    driver: Driver,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    name: &'static str,
    version: &'static str,
    rules: Vec<SarifRule>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifRule {
    id: &'static str,
    short_description: Text,
    help: Text,
    default_configuration: Level,
}

#[derive(Serialize)]
struct Level {
    level: &'static str,
}

#[derive(Serialize)]
struct Text {
    text: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    rule_id: String,
    level: &'static str,
    message: Text,
    locations: Vec<SarifLocation>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifLocation {
    physical_location: Physical,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Physical {
    artifact_location: Artifact,
    region: Region,
}

#[derive(Serialize)]
struct Artifact {
    uri: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(file: &str, message: &str) -> Finding {
        Finding {
            rule: "data-loss".into(),
            severity: Severity::Warning,
            file: file.into(),
            line: 3,
            column: None,
            message: message.into(),
            hint: "h".into(),
            blocking: false,
        }
    }

    #[test]
    fn github_commands_escape_what_would_end_a_property_or_the_line() {
        let out = lint_github(&[finding("db/V2__a,b:c.sql", "50% of\nrows")]);
        assert_eq!(
            out,
            "::warning file=db/V2__a%2Cb%3Ac.sql,line=3,title=cutover data-loss::50%25 of%0Arows \
             (fix: h) see docs/rules.md#data-loss\n"
        );
    }

    #[test]
    fn sarif_results_name_rules_the_log_lists() {
        let doc: serde_json::Value =
            serde_json::from_str(&lint_sarif(&[finding("V2__x.sql", "m")])).unwrap();
        assert_eq!(doc["version"], "2.1.0");
        let run = &doc["runs"][0];
        let result = &run["results"][0];
        assert_eq!(result["ruleId"], "data-loss");
        assert_eq!(result["level"], "warning");
        let loc = &result["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "V2__x.sql");
        assert_eq!(loc["region"]["startLine"], 3);
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert!(rules.iter().any(|r| r["id"] == "data-loss"));
        assert_eq!(rules.len(), RULES.len());
    }
}
