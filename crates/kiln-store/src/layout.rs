//! Where kiln keeps what is not an OCI blob, below the store's root. Every crate asks
//! here instead of joining path strings of its own, so the layout has one owner.

use std::path::{Path, PathBuf};

/// A cache directory of the store (`cache/NAME`): what it holds can be rebuilt or fetched again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// Build step results (`cache/build`).
    Build,
    /// `RUN --mount=type=cache` directories (`cache/mounts`).
    Mounts,
    /// Where pushed blobs came from (`cache/sources`).
    Sources,
    /// Debian archive downloads and base memos (`cache/debian`).
    Debian,
    /// Compressed variants of uncompressed layers, by compression (`cache/variants`).
    Variants,
    /// Blob uploads a registry accepted, by content (`cache/uploads`).
    Uploads,
    /// Compiled seccomp filters (`cache/seccomp`).
    Seccomp,
    /// kiln project builds: layers, bases, built wheels, uv (`cache/project`).
    Project,
}

impl Cache {
    fn name(self) -> &'static str {
        match self {
            Cache::Build => "build",
            Cache::Mounts => "mounts",
            Cache::Sources => "sources",
            Cache::Debian => "debian",
            Cache::Variants => "variants",
            Cache::Uploads => "uploads",
            Cache::Seccomp => "seccomp",
            Cache::Project => "project",
        }
    }
}

/// The root of every cache (`cache/`), for tools that keep several directories in it.
pub fn caches(root: &Path) -> PathBuf {
    root.join("cache")
}

/// The directory of a cache (not created).
pub fn cache_dir(root: &Path, cache: Cache) -> PathBuf {
    caches(root).join(cache.name())
}

/// The directory holding every container (`containers/`).
pub fn containers_dir(root: &Path) -> PathBuf {
    root.join("containers")
}

/// The directory holding named volumes (`volumes/`).
pub fn volumes_dir(root: &Path) -> PathBuf {
    root.join("volumes")
}

/// The data directory of a named volume (`volumes/NAME/_data`, not created).
pub fn volume_data(root: &Path, name: &str) -> PathBuf {
    volumes_dir(root).join(name).join("_data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let r = Path::new("/s");
        assert_eq!(cache_dir(r, Cache::Mounts), Path::new("/s/cache/mounts"));
        assert_eq!(volume_data(r, "v"), Path::new("/s/volumes/v/_data"));
        assert_eq!(containers_dir(r), Path::new("/s/containers"));
    }
}
