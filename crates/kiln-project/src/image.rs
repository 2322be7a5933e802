//! A project's image on the command line: which argument names a project directory,
//! the request of an ordinary build, and the names the image gets.

use crate::{BuildOutcome, BuildRequest, Error, Result};
use kiln_oci::Reference;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const REFERENCE_HINT: &str =
    "references look like `name`, `name:tag`, `registry.example.com/team/name:tag` or `name@sha256:...`";

/// The project directory `arg` names, if it names one (`.`, `./x`, `/x`, `../x` with a
/// kiln.toml).
pub fn project_dir(arg: &str) -> Option<PathBuf> {
    let looks_like_path = arg == "."
        || arg == ".."
        || arg.starts_with("./")
        || arg.starts_with('/')
        || arg.starts_with("../");
    let p = Path::new(arg);
    (looks_like_path && p.join(crate::manifest::FILE).is_file())
        .then(|| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()))
}

impl BuildRequest {
    /// A build of the project in `dir` (not lock-only, no refresh, 8 jobs).
    pub fn new(
        dir: &Path,
        locked: bool,
        no_cache: bool,
        source_date_epoch: Option<i64>,
        labels: BTreeMap<String, String>,
    ) -> Self {
        BuildRequest {
            dir: dir.to_path_buf(),
            locked,
            lock_only: false,
            refresh: false,
            no_cache,
            jobs: 8,
            source_date_epoch,
            labels,
        }
    }
}

fn parse_reference(s: &str) -> Result<Reference> {
    Reference::parse(s).map_err(|e| Error::with_hint(e.to_string(), REFERENCE_HINT))
}

/// The names a project image gets: the ones given, else NAME:VERSION and NAME:latest.
pub fn default_tags(outcome: &BuildOutcome, given: &[String]) -> Result<Vec<Reference>> {
    if !given.is_empty() {
        return given.iter().map(|t| parse_reference(t)).collect();
    }
    let p = &outcome.project;
    let mut v = Vec::new();
    if let Some(ver) = &p.version {
        v.push(parse_reference(&format!("{}:{ver}", p.name))?);
    }
    v.push(parse_reference(&format!("{}:latest", p.name))?);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_dirs_are_paths_with_a_manifest() {
        let d = tempfile::tempdir().unwrap();
        let arg = d.path().display().to_string();
        assert_eq!(project_dir(&arg), None);
        std::fs::write(d.path().join(crate::manifest::FILE), "").unwrap();
        assert!(project_dir(&arg).is_some());
        assert_eq!(project_dir("name:tag"), None);
    }
}
