//! Reading migration files: [`MigrationFile`] and [`load_dir`].
//!
//! Files follow refinery's naming, `V{version}__{name}.sql`, so the history table refinery keeps
//! stays the record users already know. Like refinery, the folder and its sub-folders are read.
//! Loading is strict where refinery is silent: a `.sql` file with another name, a duplicate or
//! non-numeric version, a file that is not UTF-8, a dangling link or a folder named like a
//! migration is an error naming it. An empty file is a placeholder migration (the analysis says
//! so). A UTF-8 byte order mark is removed and CRLF line ends are kept (line numbers count `\n`),
//! so both kinds of files report the same lines an editor shows.

use crate::error::{Diagnostic, PlanError};
use crate::source::{Location, strip_bom};
use sha2::{Digest, Sha256};
use std::path::Path;

/// One migration file, read and checksummed.
#[derive(Debug, Clone)]
pub struct MigrationFile {
    /// Version number from the file name.
    pub version: u64,
    /// Name part of the file name (`add_full_name`).
    pub name: String,
    /// File name (`V2__add_full_name.sql`).
    pub file_name: String,
    /// Path as shown to the user.
    pub display_path: String,
    /// Content without a byte order mark.
    pub text: String,
    /// sha256 of the file's bytes, hex.
    pub checksum: String,
    /// The checksum refinery records in `refinery_schema_history` for this file (SipHash-1-3 of
    /// name, version and text), so plain refinery agrees about what is applied.
    pub refinery_checksum: u64,
    /// The explicit undo of this migration, from `V{n}__{name}.down.sql` beside it (refinery
    /// ignores such files: its file pattern does not allow the extra `.down`).
    pub down: Option<String>,
}

impl MigrationFile {
    /// Id used in step ids: the file name without `.sql`.
    pub fn stem(&self) -> &str {
        self.file_name.trim_end_matches(".sql")
    }

    /// Builds a migration from a file name and its bytes (used by [`load_dir`] and by tests).
    pub fn from_bytes(
        file_name: &str,
        display_path: &str,
        bytes: &[u8],
    ) -> Result<Self, Diagnostic> {
        let (version, name) = parse_file_name(file_name)
            .map_err(|(msg, hint)| Diagnostic::new(Location::file(display_path), msg, hint))?;
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u32
                + 1;
            Diagnostic::new(
                Location::line(display_path, line),
                "the file is not valid UTF-8",
                "save the migration as UTF-8",
            )
        })?;
        let checksum = hex(&Sha256::digest(bytes));
        let refinery_version = i32::try_from(version).map_err(|_| {
            Diagnostic::new(
                Location::file(display_path),
                format!(
                    "migration version {version} does not fit refinery's history table (a 32-bit \
                     integer)"
                ),
                "use versions below 2,147,483,648",
            )
        })?;
        Ok(Self {
            version,
            refinery_checksum: refinery_checksum(&name, refinery_version, text),
            name,
            file_name: file_name.to_string(),
            display_path: display_path.to_string(),
            text: strip_bom(text).to_string(),
            checksum,
            down: None,
        })
    }
}

impl MigrationFile {
    /// A file named on the command line: refinery's naming is used when it fits, otherwise the
    /// file gets `fallback_version` and its stem as name (lint only; `plan` is strict).
    pub fn loose(
        file_name: &str,
        display_path: &str,
        bytes: &[u8],
        fallback_version: u64,
    ) -> Result<Self, Diagnostic> {
        match Self::from_bytes(file_name, display_path, bytes) {
            Ok(m) => Ok(m),
            Err(e) if e.message.contains("UTF-8") => Err(e),
            Err(_) => {
                let mut m = Self::from_bytes("V0__x.sql", display_path, bytes)?;
                m.version = fallback_version;
                m.name = file_name.trim_end_matches(".sql").to_string();
                m.file_name = file_name.to_string();
                Ok(m)
            }
        }
    }
}

/// refinery's checksum: SipHash-1-3 over the name, the version (i32) and the file's text, each
/// through `Hash` exactly as refinery-core's `Migration::unapplied` does.
pub fn refinery_checksum(name: &str, version: i32, text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = siphasher::sip::SipHasher13::new();
    name.hash(&mut h);
    version.hash(&mut h);
    text.hash(&mut h);
    h.finish()
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn parse_file_name(file_name: &str) -> Result<(u64, String), (String, String)> {
    let hint =
        "name migrations `V{version}__{name}.sql`, e.g. `V2__add_full_name.sql` (refinery's \
                convention), and their undo `V2__add_full_name.down.sql`"
            .to_string();
    if let Some(up) = file_name.strip_suffix(".down.sql") {
        return parse_file_name(&format!("{up}.sql"));
    }
    let stem = file_name
        .strip_suffix(".sql")
        .ok_or_else(|| (format!("`{file_name}` is not a .sql file"), hint.clone()))?;
    let rest = stem.strip_prefix('V').ok_or_else(|| {
        (
            format!("migration file name `{file_name}` does not start with `V`"),
            hint.clone(),
        )
    })?;
    let (version, name) = rest.split_once("__").ok_or_else(|| {
        (
            format!("migration file name `{file_name}` has no `__` between version and name"),
            hint.clone(),
        )
    })?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err((
            format!("migration version `{version}` in `{file_name}` is not a whole number"),
            hint,
        ));
    }
    let version: u64 = version.parse().map_err(|_| {
        (
            format!("migration version in `{file_name}` is too large"),
            hint.clone(),
        )
    })?;
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err((
            format!("migration name `{name}` in `{file_name}` must be letters, digits and `_`"),
            hint,
        ));
    }
    Ok((version, name.to_string()))
}

/// Reads every `.sql` file of `dir` (not recursing), sorted by version.
///
/// `display` is how the directory is shown in messages (as the user wrote it). Every problem is
/// collected, so one run shows them all.
pub fn load_dir(dir: &Path, display: &str) -> Result<Vec<MigrationFile>, PlanError> {
    let entries = open_dir(dir, display)?;
    // refinery reads the folder and every folder below it (a team may group files:
    // `migrations/schema_v2/V3__users.sql`); so does cutover. What it cannot read is an error
    // naming the entry, never silently left out.
    let mut files: Vec<(std::path::PathBuf, String, String)> = Vec::new();
    let mut problems = Vec::new();
    walk(
        dir,
        display.trim_end_matches('/'),
        entries,
        0,
        &mut files,
        &mut problems,
    )?;
    // Sorted so problems are reported in the same order on every machine.
    files.sort_by(|a, b| a.2.cmp(&b.2));
    let out = read_files(files, &mut problems)?;
    let out = attach_downs(out, &mut problems);
    duplicate_versions(&out, &mut problems);
    if out.is_empty() && problems.is_empty() {
        problems.push(Diagnostic::new(
            Location::file(display),
            format!("the migrations directory `{display}` has no `V{{n}}__{{name}}.sql` files"),
            "add migrations, or drop the `[[database]]` table if this release changes no schema",
        ));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(PlanError::Invalid(problems))
    }
}

/// The entries of the migrations directory `dir` (shown as `display`); a directory that does
/// not exist is a problem with a hint, any other failure an I/O error.
fn open_dir(dir: &Path, display: &str) -> Result<std::fs::ReadDir, PlanError> {
    std::fs::read_dir(dir).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            PlanError::Invalid(vec![Diagnostic::new(
                Location::file(display),
                format!("the migrations directory `{display}` does not exist"),
                "`migrations` in `[[database]]` is relative to the spec file; check the path",
            )])
        } else {
            PlanError::Io {
                path: dir.to_path_buf(),
                source,
            }
        }
    })
}

/// Reads the `files` [`walk`] found (path, file name, shown path), in their order; a file
/// that is not a migration is a problem, one that cannot be read an I/O error.
fn read_files(
    files: Vec<(std::path::PathBuf, String, String)>,
    problems: &mut Vec<Diagnostic>,
) -> Result<Vec<MigrationFile>, PlanError> {
    let mut out = Vec::new();
    for (path, name, shown) in files {
        let bytes = std::fs::read(&path).map_err(|source| PlanError::Io {
            path: path.clone(),
            source,
        })?;
        match MigrationFile::from_bytes(&name, &shown, &bytes) {
            Ok(m) => out.push(m),
            Err(d) => problems.push(d),
        }
    }
    Ok(out)
}

/// The migrations of `files` sorted by version, each with the text of its down file
/// (`V2__add_email.down.sql` undoes `V2__add_email.sql`); a down file with no migration to
/// undo is a problem.
fn attach_downs(files: Vec<MigrationFile>, problems: &mut Vec<Diagnostic>) -> Vec<MigrationFile> {
    let (downs, mut out): (Vec<MigrationFile>, Vec<MigrationFile>) = files
        .into_iter()
        .partition(|m| m.file_name.ends_with(".down.sql"));
    out.sort_by_key(|m: &MigrationFile| m.version);
    for d in downs {
        let up_name = d.name.as_str();
        match out
            .iter_mut()
            .find(|m| m.version == d.version && m.name == up_name)
        {
            Some(m) => m.down = Some(d.text),
            None => problems.push(Diagnostic::new(
                Location::file(d.display_path.clone()),
                format!(
                    "`{}` has no migration to undo: no `V{}__{up_name}.sql` beside it",
                    d.file_name, d.version
                ),
                "name a down file after its migration: `V2__add_email.sql` is undone by \
                 `V2__add_email.down.sql`",
            )),
        }
    }
    out
}

/// A problem for each migration of `out` (sorted by version) whose version the one before it
/// has too.
fn duplicate_versions(out: &[MigrationFile], problems: &mut Vec<Diagnostic>) {
    for pair in out.windows(2) {
        if pair[0].version == pair[1].version {
            problems.push(Diagnostic::new(
                Location::file(pair[1].display_path.clone()),
                format!(
                    "duplicate migration version {}: `{}` and `{}`",
                    pair[1].version, pair[0].file_name, pair[1].file_name
                ),
                "each version is applied once; renumber one of the files",
            ));
        }
    }
}

/// Folders nested deeper than this are refused (a symbolic link loop otherwise never ends).
const MAX_DEPTH: usize = 16;

/// Collects the `.sql` files of `dir` and its sub-folders as (path, file name, shown path); an
/// entry that cannot be read as refinery would read it is a problem naming it.
fn walk(
    dir: &Path,
    shown_dir: &str,
    entries: std::fs::ReadDir,
    depth: usize,
    files: &mut Vec<(std::path::PathBuf, String, String)>,
    problems: &mut Vec<Diagnostic>,
) -> Result<(), PlanError> {
    for entry in entries {
        let entry = entry.map_err(|source| PlanError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            let lossy = entry.file_name().to_string_lossy().into_owned();
            problems.push(Diagnostic::new(
                Location::file(format!("{shown_dir}/{lossy}")),
                "the name is not valid UTF-8, so cutover cannot tell whether it is a migration",
                "rename it in UTF-8 (refinery's names are `V{version}__{name}.sql`), or move it out \
                 of the migrations folder",
            ));
            continue;
        };
        let shown = format!("{shown_dir}/{name}");
        // Follows a symbolic link; a dangling one has no metadata.
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(_)
                if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) =>
            {
                problems.push(Diagnostic::new(
                    Location::file(shown),
                    "a symbolic link to nothing (its target does not exist)",
                    "point it at the migration file, or remove it",
                ));
                continue;
            }
            Err(source) => return Err(PlanError::Io { path, source }),
        };
        if meta.is_dir() {
            if name.ends_with(".sql") {
                problems.push(Diagnostic::new(
                    Location::file(shown),
                    "a folder named like a migration file",
                    "migrations are files; rename the folder or move the file out of it",
                ));
                continue;
            }
            if depth >= MAX_DEPTH {
                problems.push(Diagnostic::new(
                    Location::file(shown),
                    format!("folders nested more than {MAX_DEPTH} deep (a symbolic link loop?)"),
                    "keep migrations at most a few folders deep",
                ));
                continue;
            }
            let inner = std::fs::read_dir(&path).map_err(|source| PlanError::Io {
                path: path.clone(),
                source,
            })?;
            walk(&path, &shown, inner, depth + 1, files, problems)?;
        } else if name.ends_with(".sql") {
            files.push((path, name, shown));
        } else if let Some(rest) = migration_like(&name) {
            // `V3__users.SQL`, `V3__users.sql.bak`, `V3__users.rs`: left out silently, the
            // migration would never run while the plan looks complete.
            problems.push(Diagnostic::new(
                Location::file(shown),
                format!(
                    "named like a migration, but `{rest}` is not `.sql`: neither refinery nor \
                     cutover would run it"
                ),
                "rename it to end in `.sql` to apply it (cutover runs SQL migrations only), or \
                 move it out of the migrations folder (a copy or backup belongs elsewhere)",
            ));
        }
    }
    Ok(())
}

/// For a file name that starts like a refinery migration (`V` or `U`, a version, `__`, a name)
/// and does not end in `.sql`: what follows the name's first `.` (`SQL`, `sql.bak`, `rs`).
fn migration_like(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(['V', 'U'])?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let after = rest[digits..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if digits == 0 || !after.starts_with("__") {
        return None;
    }
    let (_, ext) = after.split_once('.')?;
    Some(ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_named_like_migrations_that_are_not_sql_are_recognised() {
        for (name, ext) in [
            ("V3__users.SQL", Some("SQL")),
            ("V3__users.sql.bak", Some("sql.bak")),
            ("V3__users.rs", Some("rs")),
            ("U4.1__undo_x.Sql", Some("Sql")),
            ("V3__users", None),
            ("README.md", None),
            ("Vendor__notes.txt", None),
            ("V__x.txt", None),
        ] {
            assert_eq!(migration_like(name), ext, "{name}");
        }
    }

    #[test]
    fn sub_folders_are_read_and_what_cannot_be_read_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("V1__a.sql"), "CREATE TABLE a (id int);").unwrap();
        std::fs::create_dir_all(d.join("schema_v2/deeper")).unwrap();
        std::fs::write(d.join("schema_v2/V2__b.sql"), "CREATE TABLE b (id int);").unwrap();
        std::fs::write(
            d.join("schema_v2/deeper/V3__c.sql"),
            "CREATE TABLE c (id int);",
        )
        .unwrap();
        std::fs::write(d.join("README.md"), "not a migration").unwrap();
        std::fs::write(d.join("V1__a.sql.md"), "notes").unwrap();
        let got = load_dir(d, "m");
        let Err(PlanError::Invalid(problems)) = got else {
            panic!("a file named like a migration but not .sql must be named: {got:?}");
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].to_string().contains("`sql.md` is not `.sql`"),
            "{problems:?}"
        );
        std::fs::remove_file(d.join("V1__a.sql.md")).unwrap();
        let got = load_dir(d, "m").unwrap();
        assert_eq!(
            got.iter()
                .map(|m| (m.version, m.display_path.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (1, "m/V1__a.sql"),
                (2, "m/schema_v2/V2__b.sql"),
                (3, "m/schema_v2/deeper/V3__c.sql")
            ]
        );
        // A duplicate version in another folder, a dangling link and a folder named like a file.
        std::fs::write(d.join("schema_v2/V1__again.sql"), "SELECT 1;").unwrap();
        std::os::unix::fs::symlink(d.join("nowhere.sql"), d.join("V4__gone.sql")).unwrap();
        std::fs::create_dir(d.join("V5__dir.sql")).unwrap();
        let Err(PlanError::Invalid(problems)) = load_dir(d, "m") else {
            panic!("accepted")
        };
        let text: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.location, p.message))
            .collect();
        assert!(
            text.iter()
                .any(|t| t.contains("m/V4__gone.sql") && t.contains("symbolic link to nothing")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("m/V5__dir.sql")
                && t.contains(
                    "folder named like a migration"
                )),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("duplicate migration version 1")),
            "{text:?}"
        );
    }

    #[test]
    fn file_names() {
        assert_eq!(
            parse_file_name("V2__add_full_name.sql").unwrap(),
            (2, "add_full_name".into())
        );
        assert_eq!(parse_file_name("V010__x.sql").unwrap(), (10, "x".into()));
        for bad in [
            "2__x.sql",
            "V2_x.sql",
            "Vtwo__x.sql",
            "V__x.sql",
            "V2__.sql",
            "V2__a-b.sql",
            "V1.5__x.sql",
        ] {
            assert!(parse_file_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refinery_checksums_match_refinery() {
        // Values computed with refinery-core 0.8.16's Migration::unapplied.
        assert_eq!(
            refinery_checksum(
                "add_full_name",
                2,
                "ALTER TABLE users ADD COLUMN full_name text;\n"
            ),
            11106081119141097707
        );
        let m =
            MigrationFile::from_bytes("V10__x.sql", "V10__x.sql", "\u{feff}SELECT 1;".as_bytes())
                .unwrap();
        assert_eq!(m.refinery_checksum, 15225638107181312090);
    }

    #[test]
    fn bom_is_stripped_but_checksummed() {
        let m = MigrationFile::from_bytes("V1__a.sql", "m/V1__a.sql", b"\xef\xbb\xbfSELECT 1;")
            .unwrap();
        assert_eq!(m.text, "SELECT 1;");
        let plain = MigrationFile::from_bytes("V1__a.sql", "m/V1__a.sql", b"SELECT 1;").unwrap();
        assert_ne!(m.checksum, plain.checksum);
    }
}
