//! One module per command; each is a screen or two.

pub mod base;
pub mod build;
pub mod commit;
pub mod copy;
pub mod deploy;
pub mod diff;
pub mod env;
pub mod export;
pub mod history;
pub mod images;
pub mod import;
pub mod inspect;
pub mod lifecycle;
pub mod load;
pub mod project;
pub mod ps;
pub mod registry;
pub mod run;
pub mod save;
pub mod sbom;
pub mod store;
pub mod tag;

use crate::output::with_hint;
use anyhow::{Context, Result};
use kiln_store::{Resolved, Store, StoreError};
use std::path::Path;
use std::process::ExitCode;

/// Opens the store at `root`.
pub fn open_store(root: &Path) -> Result<Store> {
    Store::open(root).with_context(|| format!("cannot open the store at {}", root.display()))
}

/// Resolves a user's image reference, with a hint when it is not there.
pub fn resolve(store: &Store, reference: &str) -> Result<Resolved> {
    store.resolve(reference).map_err(|e| match e {
        StoreError::ImageNotFound { .. } => {
            with_hint(e, "`kiln images` lists the images in the store")
        }
        StoreError::Oci(_) => with_hint(e, REFERENCE_HINT),
        other => other.into(),
    })
}

pub const REFERENCE_HINT: &str =
    "references look like `name`, `name:tag`, `registry.example.com/team/name:tag` or `name@sha256:...`";

/// Parses a reference given as an argument.
pub fn parse_reference(s: &str) -> Result<kiln_oci::Reference> {
    kiln_oci::Reference::parse(s).map_err(|e| with_hint(e, REFERENCE_HINT))
}

/// Writes an archive to `path`, or to standard output when there is none. A file is
/// written beside its destination and renamed into place only when complete, so a failure
/// never leaves half an archive; a terminal is refused as standard output.
pub fn write_archive(
    path: Option<&Path>,
    write: impl FnOnce(&mut dyn std::io::Write) -> Result<()>,
) -> Result<()> {
    use std::io::{IsTerminal, Write};
    match path {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp);
            write(&mut out)?;
            let tmp = out.into_inner().map_err(|e| e.into_error())?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                return Err(with_hint(
                    anyhow::anyhow!("refusing to write an archive to a terminal"),
                    "use `-o FILE` or redirect standard output",
                ));
            }
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            write(&mut out)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// Runs `f` for each of several names (as `docker rm a b c` does): each failure is
/// printed and the others still run; the exit code says whether any failed.
pub fn each<T>(keys: &[String], mut f: impl FnMut(&str) -> Result<T>) -> ExitCode {
    let mut failed = false;
    for key in keys {
        if let Err(e) = f(key) {
            crate::output::print_error(&e);
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// SOURCE_DATE_EPOCH as seconds, if set.
pub fn source_date_epoch() -> Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Ok(Some(v.trim().parse().map_err(|_| {
            with_hint(
                anyhow::anyhow!("SOURCE_DATE_EPOCH=`{v}` is not a number of seconds"),
                "set it to a Unix time such as the last commit's: `git log -1 --format=%ct`",
            )
        })?)),
        _ => Ok(None),
    }
}

/// The labels a build in a git checkout gets: the commit (`org.opencontainers.image.revision`)
/// and where it comes from (`...source`); with what `kiln history` records of it.
pub fn git_labels(
    dir: &Path,
) -> (
    std::collections::BTreeMap<String, String>,
    Option<kiln_build::git::GitInfo>,
) {
    let mut labels = std::collections::BTreeMap::new();
    let git = kiln_build::git::describe(dir);
    if let Some(g) = &git {
        labels.insert(
            "org.opencontainers.image.revision".to_string(),
            g.commit.clone(),
        );
        if let Some(s) = &g.source {
            labels.insert("org.opencontainers.image.source".to_string(), s.clone());
        }
    }
    (labels, git)
}
