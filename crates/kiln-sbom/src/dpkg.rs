//! dpkg's database: `var/lib/dpkg/status` and distroless's `var/lib/dpkg/status.d/*`.

use crate::control::{field, paragraphs};

/// An installed Debian package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebPackage {
    /// The binary package name (`Package:`), e.g. `libc6`.
    pub name: String,
    /// The full Debian version (`Version:`), epoch and revision included.
    pub version: String,
    /// `Architecture:` as dpkg records it (`amd64`, `all`, ...); empty when absent.
    pub architecture: String,
    /// The source package, when it differs from the binary package's name or version.
    pub source: Option<String>,
    /// The source package's version, given only when the `Source:` field names one in
    /// parentheses (it differs from `version`).
    pub source_version: Option<String>,
}

/// The packages of a status file that are installed (not removed with only their
/// configuration files left, nor purged), as `dpkg-query -W` lists them.
pub fn parse_status(text: &str) -> Vec<DebPackage> {
    let mut out = Vec::new();
    for p in paragraphs(text, false) {
        let (Some(name), Some(version)) = (field(&p, "Package"), field(&p, "Version")) else {
            continue;
        };
        // distroless's status.d entries have no Status field: they are installed.
        let state = field(&p, "Status").and_then(|s| s.split_whitespace().nth(2));
        if matches!(state, Some("not-installed" | "config-files")) {
            continue;
        }
        let (source, source_version) = match field(&p, "Source") {
            Some(s) => match s.split_once('(') {
                Some((n, v)) => (
                    Some(n.trim().to_string()),
                    Some(v.trim_end_matches(')').trim().to_string()),
                ),
                None => (Some(s.trim().to_string()), None),
            },
            None => (None, None),
        };
        out.push(DebPackage {
            name: name.to_string(),
            version: version.to_string(),
            architecture: field(&p, "Architecture").unwrap_or("").to_string(),
            source,
            source_version,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12986
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u7
Replaces: libc6-amd64
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
 .
 This package includes shared versions of the standard C library.
Homepage: https://www.gnu.org/software/libc/libc.html

Package: libpython3.11-minimal
Status: install ok installed
Architecture: amd64
Source: python3.11 (3.11.2-6+deb12u2)
Version: 3.11.2-6+deb12u2
Description: Minimal subset of the Python language (version 3.11)
 This package contains some essential modules.

Package: oldpkg
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u6
";

    #[test]
    fn status_with_multiline_fields_and_sources() {
        let p = parse_status(STATUS);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].name, "libc6");
        assert_eq!(p[0].version, "2.36-9+deb12u7");
        assert_eq!(p[0].architecture, "amd64");
        assert_eq!(p[0].source.as_deref(), Some("glibc"));
        assert_eq!(p[0].source_version, None);
        assert_eq!(p[1].source.as_deref(), Some("python3.11"));
        assert_eq!(p[1].source_version.as_deref(), Some("3.11.2-6+deb12u2"));
        assert_eq!(p[2].name, "base-files");
        assert_eq!(p[2].source, None);
    }

    #[test]
    fn distroless_status_d_entry() {
        let p = parse_status("Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].architecture, "all");
    }
}
