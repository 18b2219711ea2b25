//! Reading a release from disk: [`load`] parses the spec and reads the migrations of each of
//! its databases, collecting every problem before it gives up.

use super::DatabaseFiles;
use crate::error::{Diagnostic, PlanError};
use crate::migrations::load_dir;
use crate::source::Location;
use crate::spec::ReleaseSpec;
use std::path::{Component, Path, PathBuf};

/// Reads and validates a spec and its migrations without planning.
pub fn load(spec_path: &Path) -> Result<(ReleaseSpec, DatabaseFiles), PlanError> {
    let display = spec_path.display().to_string();
    let text = std::fs::read(spec_path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            PlanError::Invalid(vec![Diagnostic::new(
                Location::file(&display),
                format!("the release spec `{display}` does not exist"),
                "pass the path of a spec, e.g. `cutover plan plans/canary-rename.toml`",
            )])
        } else {
            PlanError::Io {
                path: spec_path.to_path_buf(),
                source,
            }
        }
    })?;
    let text = String::from_utf8(text).map_err(|_| {
        PlanError::Invalid(vec![Diagnostic::new(
            Location::file(&display),
            "the release spec is not valid UTF-8",
            "save it as UTF-8",
        )])
    })?;
    let spec = ReleaseSpec::parse(&display, &text).map_err(PlanError::Invalid)?;
    let base = spec_path.parent().unwrap_or(Path::new(""));
    let mut dbs = Vec::new();
    let mut problems = Vec::new();
    for db in &spec.database {
        let db = db.get_ref();
        let dir = base.join(&db.migrations);
        let shown = lexical(&dir).display().to_string();
        match load_dir(&dir, &shown) {
            Ok(files) => dbs.push((db.name.clone(), files)),
            Err(PlanError::Invalid(d)) => problems.extend(d),
            Err(e) => return Err(e),
        }
    }
    if problems.is_empty() {
        Ok((spec, dbs))
    } else {
        Err(PlanError::Invalid(problems))
    }
}

/// `plans/../migrations-sample/x` → `migrations-sample/x`, without touching the disk.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}
