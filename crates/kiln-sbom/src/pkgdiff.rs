//! Package differences of two environments (`kiln diff`): OS, Python and conda packages
//! added, removed, or at another version.

use crate::env::Environment;
use serde::Serialize;
use std::collections::BTreeMap;

/// A package present in one environment only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Package {
    /// The package name: Python names PEP 503 normalized, OS packages as `name:arch`
    /// unless their architecture is `all` or unrecorded.
    pub name: String,
    /// One version installed in that environment.
    pub version: String,
}

/// A package at another version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Changed {
    /// The package name, keyed as in [`Package::name`].
    pub name: String,
    /// The version(s) in the first environment, sorted and joined with `, ` when
    /// installed more than once.
    pub from: String,
    /// The version(s) in the second environment, joined likewise.
    pub to: String,
}

/// The differences within one kind of package.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Packages only the second environment has, by name.
    pub added: Vec<Package>,
    /// Packages only the first environment has, by name.
    pub removed: Vec<Package>,
    /// Packages both have, at different versions, by name.
    pub changed: Vec<Changed>,
}

impl Changes {
    /// Nothing differs.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The package differences of two environments, by kind.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PackageDiff {
    /// dpkg and apk packages.
    pub os: Changes,
    /// Python distributions (dist-info and egg-info).
    pub python: Changes,
    /// conda packages.
    pub conda: Changes,
}

/// Python names compare normalized (PEP 503: case, `-`, `_` and `.` alike).
fn pep503(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Compares two name -> versions maps (a name may be installed twice, e.g. in two
/// site directories or for two architectures: its versions compare as a set).
fn compare(a: BTreeMap<String, Vec<String>>, b: BTreeMap<String, Vec<String>>) -> Changes {
    let mut c = Changes::default();
    for (name, va) in &a {
        match b.get(name) {
            None => c.removed.extend(va.iter().map(|v| Package {
                name: name.clone(),
                version: v.clone(),
            })),
            Some(vb) if vb != va => c.changed.push(Changed {
                name: name.clone(),
                from: va.join(", "),
                to: vb.join(", "),
            }),
            Some(_) => {}
        }
    }
    for (name, vb) in &b {
        if !a.contains_key(name) {
            c.added.extend(vb.iter().map(|v| Package {
                name: name.clone(),
                version: v.clone(),
            }));
        }
    }
    c
}

fn collect<'a>(items: impl Iterator<Item = (String, &'a str)>) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in items {
        m.entry(k).or_default().push(v.to_string());
    }
    for v in m.values_mut() {
        v.sort();
        v.dedup();
    }
    m
}

/// What changed from `a` to `b`.
pub fn diff(a: &Environment, b: &Environment) -> PackageDiff {
    let os = |e: &Environment| {
        collect(e.os_packages.iter().map(|p| {
            let key = if p.architecture.is_empty() || p.architecture == "all" {
                p.name.clone()
            } else {
                format!("{}:{}", p.name, p.architecture)
            };
            (key, p.version.as_str())
        }))
    };
    let py = |e: &Environment| {
        collect(
            e.python_packages
                .iter()
                .map(|p| (pep503(&p.name), p.version.as_str())),
        )
    };
    let conda = |e: &Environment| {
        collect(
            e.conda_packages
                .iter()
                .map(|p| (p.name.clone(), p.version.as_str())),
        )
    };
    PackageDiff {
        os: compare(os(a), os(b)),
        python: compare(py(a), py(b)),
        conda: compare(conda(a), conda(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        collect(pairs.iter().map(|(k, v)| (k.to_string(), *v)))
    }

    #[test]
    fn added_removed_changed() {
        let c = compare(
            m(&[("numpy", "1.26.4"), ("six", "1.16.0"), ("idna", "3.7")]),
            m(&[("numpy", "2.0.1"), ("six", "1.16.0"), ("torch", "2.4.0")]),
        );
        assert_eq!(
            c.changed,
            [Changed {
                name: "numpy".into(),
                from: "1.26.4".into(),
                to: "2.0.1".into()
            }]
        );
        assert_eq!(c.removed[0].name, "idna");
        assert_eq!(c.added[0].name, "torch");
        assert!(compare(m(&[("a", "1")]), m(&[("a", "1")])).is_empty());
    }

    #[test]
    fn python_names_compare_normalized() {
        assert_eq!(pep503("Scikit_Learn"), "scikit-learn");
        assert_eq!(pep503("zope.interface"), "zope-interface");
        assert_eq!(pep503("a__b"), "a-b");
    }
}
