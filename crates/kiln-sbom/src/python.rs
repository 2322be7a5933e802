//! Python distributions: `*.dist-info/METADATA` (+ `INSTALLER`) and `*.egg-info`
//! (`PKG-INFO` in a directory, or the file itself).

use crate::control::{field, paragraphs, Paragraph};

/// A distribution's core metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distribution {
    /// The project name as the metadata's `Name:` spells it (not normalized; see
    /// [`normalize`]).
    pub name: String,
    /// The `Version:` header as written.
    pub version: String,
    /// Declared license names as found.
    pub licenses: Vec<String>,
    /// SPDX expression, when one could be derived.
    pub license: Option<String>,
}

/// Parses METADATA or PKG-INFO (headers only; the body is the description).
pub fn parse_metadata(text: &str) -> Option<Distribution> {
    let meta: Paragraph = paragraphs(text, true).into_iter().next()?;
    let name = field(&meta, "Name")?.to_string();
    let version = field(&meta, "Version")?.to_string();
    let (licenses, license) = crate::license::python(&meta);
    Some(Distribution {
        name,
        version,
        licenses,
        license,
    })
}

/// PEP 503 normalization: lowercase, runs of `-`, `_`, `.` as one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if c == '-' || c == '_' || c == '.' {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_with_license_expression_and_classifiers() {
        let text = "Metadata-Version: 2.4\nName: Flask_Login\nVersion: 0.6.3\nSummary: User session management\nLicense-Expression: MIT OR Apache-2.0\nLicense-File: LICENSE\nClassifier: License :: OSI Approved :: MIT License\nClassifier: Programming Language :: Python :: 3\nRequires-Dist: Flask>=1.0.4\nDescription-Content-Type: text/markdown\n\n# Flask-Login\n\nName: not-a-header\n";
        let d = parse_metadata(text).unwrap();
        assert_eq!(d.name, "Flask_Login");
        assert_eq!(d.version, "0.6.3");
        assert_eq!(d.license.as_deref(), Some("MIT OR Apache-2.0"));
        assert_eq!(normalize(&d.name), "flask-login");
    }

    #[test]
    fn metadata_with_classifiers_only_and_long_license_text() {
        let text = "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: Copyright (c) 2010-2020 Benjamin Peterson\n        \n        Permission is hereby granted, free of charge\nClassifier: Development Status :: 5 - Production/Stable\nClassifier: License :: OSI Approved :: MIT License\nClassifier: Topic :: Utilities\n\nSix is a Python 2 and 3 compatibility library.\n";
        let d = parse_metadata(text).unwrap();
        assert_eq!(d.license.as_deref(), Some("MIT"));
        assert_eq!(d.licenses, ["MIT License"]);
        let unknown = "Name: x\nVersion: 1\nClassifier: License :: OSI Approved :: BSD License\n";
        assert_eq!(parse_metadata(unknown).unwrap().license, None);
        let short = "Name: x\nVersion: 1\nLicense: BSD\n";
        assert_eq!(
            parse_metadata(short).unwrap().license.as_deref(),
            Some("LicenseRef-BSD")
        );
        let apache = "Name: x\nVersion: 1\nLicense: Apache 2.0\n";
        assert_eq!(
            parse_metadata(apache).unwrap().license.as_deref(),
            Some("Apache-2.0")
        );
    }

    #[test]
    fn egg_info_pkg_info() {
        let text = "Metadata-Version: 1.2\nName: pyxdg\nVersion: 0.28\nSummary: PyXDG contains implementations of freedesktop.org standards in python.\nHome-page: http://freedesktop.org/wiki/Software/pyxdg\nAuthor: Freedesktop.org\nLicense: LGPLv2\nPlatform: UNKNOWN\nClassifier: License :: OSI Approved :: GNU Library or Lesser General Public License (LGPL)\n";
        let d = parse_metadata(text).unwrap();
        assert_eq!(d.name, "pyxdg");
        assert_eq!(d.version, "0.28");
        assert_eq!(d.license.as_deref(), Some("LGPL-2.0-or-later"));
        assert!(parse_metadata("Summary: no name\n").is_none());
        assert_eq!(normalize("zope.interface"), "zope-interface");
        assert_eq!(normalize("Foo__Bar"), "foo-bar");
    }
}
