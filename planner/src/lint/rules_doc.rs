//! `docs/rules.md` against [`RULES`]: one section per rule, headed by its id (the anchor every
//! finding links to, [`doc_link`]), each with its severity, source and effect on `plan`, a bad
//! and a good example; and the examples do what the page says, under `lint` and an online `plan`.
//!
//! A rule added to [`RULES`] fails here until its section is written.

use super::{RULES, RuleInfo, Severity, doc_link};
use crate::analysis::{AnalyzeOptions, Phase, analyze};
use crate::error::PlanError;
use crate::migrations::MigrationFile;
use crate::plan::{blocks_always, blocks_online, plan_release};
use crate::spec::ReleaseSpec;
use std::collections::BTreeSet;

/// Rules whose bad example cannot fire: squawk checks `prefer-repack` only for PostgreSQL 19+,
/// and cutover runs it for its default version. When it starts firing, its section must say so.
const NEVER_FIRES: &[&str] = &["prefer-repack"];

/// Rules that still fire on their good example, as their section says: a reminder on every
/// rewritten rename that cannot tell whether the indexes were added.
const GOOD_STILL_FIRES: &[&str] = &[
    "rename-rewrite-incomplete",
    "type-change-rewrite-incomplete",
];

/// Rules only a `recreate` release reports: their examples are planned with one.
const RECREATE_ONLY: &[&str] = &["recreate-runs-as-is"];

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/rules.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The sections headed `### <heading>`, each up to the next heading of level 2 or 3.
fn sections(doc: &str) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let mut current: Option<(&str, usize)> = None;
    let mut offset = 0;
    for line in doc.split_inclusive('\n') {
        if line.starts_with("## ") || line.starts_with("### ") {
            if let Some((h, start)) = current.take() {
                out.push((h, &doc[start..offset]));
            }
            if let Some(h) = line.strip_prefix("### ") {
                current = Some((h.trim_end(), offset + line.len()));
            }
        }
        offset += line.len();
    }
    if let Some((h, start)) = current {
        out.push((h, &doc[start..]));
    }
    out
}

/// The ```sql blocks of `text`, in order.
fn sql_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        match &mut current {
            None if line.starts_with("```sql") => current = Some(Vec::new()),
            None => {}
            Some(_) if line.starts_with("```") => out.push(current.take().unwrap().join("\n")),
            Some(lines) => lines.push(line),
        }
    }
    out
}

/// An example's files: a line `-- V3__name.sql (contract)` starts one and may say where `plan`
/// runs it; text before the first such line is `V2__example.sql`.
fn example_files(block: &str) -> Vec<(String, Option<&'static str>, String)> {
    let mut files: Vec<(String, Option<&'static str>, String)> = Vec::new();
    for line in block.lines() {
        let header = line
            .strip_prefix("-- V")
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|name| name.ends_with(".sql") && name.contains("__"));
        if let Some(name) = header {
            let phase = ["expand", "contract"]
                .into_iter()
                .find(|p| line.contains(&format!("({p})")));
            files.push((format!("V{name}"), phase, String::new()));
            continue;
        }
        if files.is_empty() {
            files.push(("V2__example.sql".into(), None, String::new()));
        }
        let text = &mut files.last_mut().unwrap().2;
        text.push_str(line);
        text.push('\n');
    }
    files
}

/// What running an example found.
struct Outcome {
    /// Rule and severity of every finding, from `lint` and from `plan`.
    findings: Vec<(String, Severity)>,
    /// Where `plan` runs each file, if it built a plan; otherwise why not.
    phases: Result<Vec<(String, &'static str)>, String>,
}

impl Outcome {
    fn fired(&self, rule: &str) -> bool {
        self.findings.iter().any(|(r, _)| r == rule)
    }

    fn errors(&self) -> Vec<&str> {
        self.findings
            .iter()
            .filter(|(_, s)| *s == Severity::Error)
            .map(|(r, _)| r.as_str())
            .collect()
    }
}

/// Runs an example after the baseline, with `lint` (no release) and with `plan` (an online
/// release, or a recreate one).
fn run(baseline: &str, block: &str, recreate: bool) -> Outcome {
    let mut files = vec![
        MigrationFile::from_bytes(
            "V1__baseline.sql",
            "m/V1__baseline.sql",
            baseline.as_bytes(),
        )
        .unwrap(),
    ];
    for (name, _, text) in example_files(block) {
        files.push(
            MigrationFile::from_bytes(&name, &format!("m/{name}"), text.as_bytes())
                .unwrap_or_else(|d| panic!("{name}: {d}")),
        );
    }
    let lint = analyze(&files, Some(1), AnalyzeOptions::default());
    let mut findings: Vec<(String, Severity)> = lint
        .findings
        .iter()
        .map(|f| (f.rule.clone(), f.severity))
        .collect();
    let service = if recreate {
        "[[service]]\nname = \"api\"\nimage = \"api\"\ncurrent = \"1.0.0\"\ntarget \
         = \"1.1.0\"\nport = 3333\n\n[service.strategy]\nkind = \"recreate\"\n\n"
    } else {
        ""
    };
    let spec = format!(
        "[release]\nname = \"docs\"\n\n{service}[[database]]\nname = \"main\"\nurl_env \
         = \"DATABASE_URL\"\nmigrations = \"m\"\nbaseline = 1\n"
    );
    let spec = ReleaseSpec::parse("docs.toml", &spec).expect("the examples' spec is valid");
    let phases = match plan_release(&spec, vec![("main".into(), files)]) {
        Ok(plan) => {
            findings.extend(plan.findings.iter().map(|f| (f.rule.clone(), f.severity)));
            Ok(plan
                .migrations
                .iter()
                .map(|(_, m)| {
                    let runs = if m.phase == Phase::Contract {
                        "contract"
                    } else {
                        "expand"
                    };
                    (m.file_name.clone(), runs)
                })
                .collect())
        }
        Err(PlanError::Blocked(blocking)) => {
            findings.extend(blocking.iter().map(|f| (f.rule.clone(), f.severity)));
            Err(format!(
                "blocked by {:?}",
                blocking.iter().map(|f| &f.rule).collect::<Vec<_>>()
            ))
        }
        Err(e) => Err(format!("{e}: {:?}", e.diagnostics())),
    };
    Outcome { findings, phases }
}

/// The first line of a section: `**severity** · source · `plan`: ...`, matching the registry
/// and what `plan` does with the rule.
fn check_summary_line(r: &RuleInfo, body: &str) -> Result<(), String> {
    let first = body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let want = format!("**{}** · {} · `plan`: ", r.severity, r.source);
    if !first.starts_with(&want) {
        return Err(format!(
            "its first line should start `{want}`, not `{first}`"
        ));
    }
    let (always, online) = (
        first.contains("stops every plan"),
        first.contains("stops an online plan"),
    );
    match (blocks_always(r.id), blocks_online(r.id)) {
        (true, _) if !always => {
            Err("`plan` stops on it whatever the strategy: say **stops every plan**".into())
        }
        (false, true) if !online || always => {
            Err("`plan` stops on it in online releases: say **stops an online plan**".into())
        }
        (false, false) if always || online => Err("`plan` does not stop on it".into()),
        _ => Ok(()),
    }
}

#[test]
fn every_rule_has_a_section_headed_by_its_id() {
    let doc = doc();
    let sections = sections(&doc);
    let headings: Vec<&str> = sections.iter().map(|(h, _)| *h).collect();
    let ids: BTreeSet<&str> = RULES.iter().map(|r| r.id).collect();
    let missing: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| !headings.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "rules without a `### <rule id>` section in docs/rules.md: {missing:?}"
    );
    let unknown: Vec<&str> = headings
        .iter()
        .copied()
        .filter(|h| !ids.contains(h))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/rules.md has `###` sections for ids that are not rules (`###` is for rules only): \
         {unknown:?}"
    );
    let distinct: BTreeSet<&str> = headings.iter().copied().collect();
    assert_eq!(distinct.len(), headings.len(), "a rule has two sections");
    for r in RULES {
        // GitHub's anchor of a heading that is only lowercase letters, digits and hyphens is the
        // heading itself.
        assert_eq!(doc_link(r.id), format!("docs/rules.md#{}", r.id));
    }
}

#[test]
fn every_section_states_the_rule_and_has_a_bad_and_a_good_example() {
    let doc = doc();
    let mut problems = Vec::new();
    for (id, body) in sections(&doc) {
        let Some(r) = RULES.iter().find(|r| r.id == id) else {
            continue;
        };
        if let Err(e) = check_summary_line(r, body) {
            problems.push(format!("{id}: {e}"));
        }
        let (bad, good) = (body.find("\n**Bad**"), body.find("\n**Good**"));
        match (bad, good) {
            (Some(b), Some(g)) if b < g => {
                if sql_blocks(&body[b..g]).is_empty() {
                    problems.push(format!("{id}: no ```sql block after **Bad**"));
                }
                if sql_blocks(&body[g..]).is_empty() {
                    problems.push(format!("{id}: no ```sql block after **Good**"));
                }
            }
            _ => problems.push(format!(
                "{id}: needs a **Bad** and then a **Good** paragraph"
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "docs/rules.md:\n{}",
        problems.join("\n")
    );
}

/// The bad example fires the rule; the good one does not, has no error finding under `lint` or
/// `plan`, is planned, and each file runs in the phase its header says.
#[test]
fn the_examples_do_what_their_sections_say() {
    let doc = doc();
    let first_rule = doc.find("\n### ").expect("rule sections");
    let baseline = sql_blocks(&doc[..first_rule])
        .into_iter()
        .find(|b| b.starts_with("-- V1__baseline.sql"))
        .expect("the baseline of the examples, a ```sql block starting `-- V1__baseline.sql`");
    let mut problems = Vec::new();
    for (id, body) in sections(&doc) {
        let (Some(b), Some(g)) = (body.find("\n**Bad**"), body.find("\n**Good**")) else {
            continue;
        };
        let (Some(bad), Some(good)) = (
            sql_blocks(&body[b..g]).into_iter().next(),
            sql_blocks(&body[g..]).into_iter().next(),
        ) else {
            continue;
        };
        let recreate = RECREATE_ONLY.contains(&id);
        let fired = run(&baseline, &bad, recreate).fired(id);
        if NEVER_FIRES.contains(&id) {
            if fired {
                problems.push(format!("{id}: fires now; its section says it does not"));
            }
        } else if !fired {
            problems.push(format!("{id}: the bad example does not fire it"));
        }
        let outcome = run(&baseline, &good, recreate);
        if outcome.fired(id) && !GOOD_STILL_FIRES.contains(&id) {
            problems.push(format!("{id}: the good example fires it"));
        }
        let errors = outcome.errors();
        if !errors.is_empty() {
            problems.push(format!("{id}: the good example has errors: {errors:?}"));
        }
        match &outcome.phases {
            Err(why) => problems.push(format!("{id}: the good example is not planned: {why}")),
            Ok(phases) => {
                for (name, said, _) in example_files(&good) {
                    let runs = phases.iter().find(|(n, _)| *n == name).map(|(_, p)| *p);
                    if let Some(said) = said
                        && runs != Some(said)
                    {
                        problems.push(format!(
                            "{id}: {name} says ({said}), but `plan` runs it in {runs:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/rules.md:\n{}",
        problems.join("\n")
    );
}
