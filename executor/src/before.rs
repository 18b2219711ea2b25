//! State saved by a step before it changes anything, in the run directory: the router's
//! configuration before a shift, the containers a retire stops. A re-run after a crash, a probe
//! and a rollback all start from this saved "before", however far a crashed attempt got. Each
//! driver saves its own serde type (e.g. [`crate::router::RouterBefore`]) as JSON.

use crate::driver::StepError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Writes `content` to `path` atomically: a temp file in the same directory, fsync, rename,
/// fsync of the directory. Readers see the old file or the new one, never a mix. A symbolic link
/// is written through (the file it names is replaced, the link stays: a config kept as
/// `sites-enabled/x -> ../sites-available/x` stays so), and the file keeps its mode, owner and
/// group.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let resolved = std::fs::canonicalize(path).ok();
    let path = resolved.as_deref().unwrap_or(path);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.cutover-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = f.set_permissions(meta.permissions());
        // Only root may give a file away; for anyone else it is theirs already.
        let _ = std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()));
    }
    f.write_all(content)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn saved_file(state_dir: &Path, key: &str) -> PathBuf {
    // One file per step id, injectively: `%` and `/` escaped.
    state_dir.join("before").join(format!(
        "{}.json",
        key.replace('%', "%25").replace('/', "%2F")
    ))
}

/// The state saved before step `key` changed anything, if it got that far: a step with no saved
/// state changed nothing.
pub fn saved<T: DeserializeOwned>(state_dir: &Path, key: &str) -> Option<T> {
    std::fs::read(saved_file(state_dir, key))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The state saved before step `key` changed anything, or `save()`d now when this is the first
/// attempt. Kept in the run directory (fsync'ed before the step changes anything), so a re-run
/// after a crash, a probe and a rollback all use the true "before".
pub fn saved_before<T: Serialize + DeserializeOwned>(
    state_dir: &Path,
    key: &str,
    save: impl FnOnce() -> Result<T, StepError>,
) -> Result<T, StepError> {
    let file = saved_file(state_dir, key);
    if let Some(v) = saved(state_dir, key) {
        return Ok(v);
    }
    let v = save()?;
    let dir = file.parent().expect("saved files are in a directory");
    std::fs::create_dir_all(dir).map_err(|source| StepError::File {
        action: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    write_atomic(&file, &serde_json::to_vec(&v).unwrap()).map_err(|source| StepError::File {
        action: "save the router state to",
        path: file.clone(),
        source,
    })?;
    Ok(v)
}
