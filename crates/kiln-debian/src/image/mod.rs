//! `kiln base debian`: from suites (or a lock) to an image in the store.
//!
//! Layers follow change frequency: the Essential/required set and apt (`base`), then what
//! the requested packages add (`extra`), then the small layer of shared databases (dpkg
//! status, alternatives, /etc/shells, apt sources). Adding a package rebuilds neither the
//! base layer nor its snapshot. Each layer is cached by the exact packages in it, so a
//! rebuild from a lock with a warm cache writes nothing.
//!
//! [`plan`] resolves (or reads) the lock, [`download`] fetches its packages, [`assemble`]
//! turns them into layers, and [`configure_script`] is what a container runs afterwards.
//! [`build`] does it all, handing that script to the caller's [`ScriptRunner`].

mod assemble;
mod databases;
mod layer;
mod pipeline;
mod plan;
mod scripts;

pub use assemble::{assemble, Assembled};
pub use pipeline::{build, host_arch, script_plan, DebianImage, ScriptPlan, ScriptRunner};
pub use plan::{deb_path, download, plan};
pub use scripts::{configure_script, ScriptPackage};

use crate::archive::Source;
use std::path::PathBuf;

/// The Debian archive used when no `--mirror` is given (plain HTTP: every file is checked
/// against the signed InRelease).
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Where the `SUITE-security` suite is fetched from by default.
pub const DEFAULT_SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";
/// The `PATH` of the image config, as Debian's images set it.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to build with `kiln base debian`: suites and mirrors, architecture, packages,
/// keyrings, lock.
#[derive(Clone, Debug)]
pub struct Options {
    /// The suite or codename (`bookworm`, `trixie`, `sid`).
    pub suite: String,
    /// Debian architecture of the image (`amd64`, `arm64`).
    pub arch: String,
    /// Base URL of the Debian mirror for the suite and `SUITE-updates`.
    pub mirror: String,
    /// `None`: no security suite.
    pub security_mirror: Option<String>,
    /// Include `SUITE-updates`.
    pub updates: bool,
    /// Archive components to read (`main`, `contrib`, `non-free`...).
    pub components: Vec<String>,
    /// Packages to add to the base set, as `name` or `name=VERSION`.
    pub packages: Vec<String>,
    /// Keyrings to trust; empty: the system's Debian archive keyring, else kiln's own.
    pub keyrings: Vec<PathBuf>,
    /// Lock file: built from when it exists (no index is read), else written after
    /// resolving.
    pub lock: Option<PathBuf>,
    /// The time of every file and of the image, in seconds since the epoch; `None`: the
    /// newest InRelease date of the lock.
    pub source_date_epoch: Option<i64>,
    /// Parallel downloads.
    pub jobs: usize,
}

/// Progress reports (libraries never print).
pub trait Progress: Sync {
    /// One line about a step begun or done (`unpacked 91 packages (base)`).
    fn note(&self, _msg: &str) {}
}

/// The sources of a build of `opts`.
pub fn sources(opts: &Options) -> Vec<Source> {
    let mut v = vec![Source {
        mirror: opts.mirror.clone(),
        suite: opts.suite.clone(),
        components: opts.components.clone(),
    }];
    let rolling = matches!(opts.suite.as_str(), "sid" | "unstable" | "experimental");
    if opts.updates && !rolling {
        v.push(Source {
            mirror: opts.mirror.clone(),
            suite: format!("{}-updates", opts.suite),
            components: opts.components.clone(),
        });
    }
    if let (Some(m), false) = (&opts.security_mirror, rolling) {
        v.push(Source {
            mirror: m.clone(),
            suite: format!("{}-security", opts.suite),
            components: opts.components.clone(),
        });
    }
    v
}
