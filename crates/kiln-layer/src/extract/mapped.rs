//! The mapped variant of extraction: every path of the archive is first shown to a [`PathMap`], which
//! may skip the entry or move it (Debian packages onto a merged-/usr tree).

use std::io::Read;
use std::path::Path;

use crate::error::Result;

use super::{extract_with, ExtractOptions, ExtractStats};

/// What [`extract_mapped`] does with one path of the archive.
pub type PathMap<'a> = dyn FnMut(&[u8], PathRole) -> Option<Option<Vec<u8>>> + 'a;

/// Where a path handed to a [`PathMap`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathRole {
    /// The name of a directory entry about to be applied.
    Dir,
    /// The name of any other entry about to be applied.
    Entry,
    /// The target of a hardlink entry.
    HardlinkTarget,
}

/// [`extract`], with every path first shown to `map` in clean form (`usr/bin/sh`, no `./`):
/// `None` skips the entry, `Some(None)` keeps the path, `Some(Some(p))` applies the entry
/// at `p` instead (confinement applies to `p` as to any path). Used to unpack Debian
/// packages onto a merged-/usr tree (`bin/sh` lands at `usr/bin/sh`) and to list what each
/// package installed.
///
/// [`extract`]: super::extract
pub fn extract_mapped<R: Read>(
    tar: R,
    target: &Path,
    opts: &ExtractOptions,
    map: &mut PathMap<'_>,
) -> Result<ExtractStats> {
    extract_with(tar, target, opts, Some(map))
}
