//! Dependency resolution over an [`Index`]: Depends and Pre-Depends with alternatives,
//! virtual packages (Provides, versioned or not) and version constraints; Conflicts and
//! Breaks checked on the result.
//!
//! Determinism: roots are taken in name order and dependencies breadth first in field
//! order; a clause already satisfied by a chosen package adds nothing; otherwise its first
//! alternative that can be installed is chosen, as apt does. A virtual package with
//! several providers resolves to an already chosen one, else the provider of highest
//! priority, then the first by name. The same index and roots always give the same set.

use crate::control::{Dep, Op};
use crate::index::{Index, Package};
use crate::version::Version;
use crate::{DebianError, Result};
use std::collections::{BTreeMap, VecDeque};

/// Which layer of the image a package lands in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// The Essential/required set and apt: the same for every image of a suite snapshot.
    Base,
    /// What the requested packages add on top.
    Extra,
}

impl Group {
    /// The name the lock file uses (`base`, `extra`).
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Base => "base",
            Group::Extra => "extra",
        }
    }
}

/// A chosen package and why.
#[derive(Clone, Debug)]
pub struct Chosen {
    /// The package version picked from the index.
    pub pkg: Package,
    /// The layer it goes in.
    pub group: Group,
    /// `requested`, `essential`, `required`, or `NAME depends on CLAUSE`.
    pub reason: String,
}

/// The result: chosen packages in name order.
pub struct Resolution {
    /// Every package to install, base and extra, sorted by name.
    pub packages: Vec<Chosen>,
}

/// A package asked for by name, optionally with `=VERSION` (as `apt-get install name=ver`).
pub fn parse_request(s: &str) -> Result<Dep> {
    let s = s.trim();
    let (name, version) = match s.split_once('=') {
        Some((n, v)) => (n, Some((Op::Eq, Version::parse(v)?))),
        None => (s, None),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
    {
        return Err(DebianError::BadRequest(s.to_string()));
    }
    Ok(Dep {
        name: name.to_string(),
        arch: None,
        version,
    })
}

fn priority_rank(p: &str) -> u8 {
    match p {
        "required" => 0,
        "important" => 1,
        "standard" => 2,
        "optional" => 3,
        _ => 4,
    }
}

struct Resolver<'a> {
    index: &'a Index,
    chosen: BTreeMap<String, Chosen>,
    queue: VecDeque<String>,
}

impl Resolver<'_> {
    /// Whether a chosen package (or something it provides) satisfies `d`.
    fn satisfied(&self, d: &Dep) -> bool {
        if let Some(c) = self.chosen.get(&d.name) {
            if d.allows(&c.pkg.version) {
                return true;
            }
        }
        self.index.providers.get(&d.name).is_some_and(|provs| {
            provs.iter().any(|(p, pv)| {
                self.chosen
                    .get(p)
                    .is_some_and(|c| provides_match(&c.pkg, &d.name, pv.as_ref(), d))
            })
        })
    }

    /// The package to install for alternative `d`, if any can be.
    fn pick(&self, d: &Dep) -> Option<Package> {
        if let Some(c) = self.chosen.get(&d.name) {
            // Already chosen at a version `d` does not allow: only a provider may help.
            if !d.allows(&c.pkg.version) {
                return self.pick_provider(d);
            }
            return Some(c.pkg.clone());
        }
        if let Some(cands) = self.index.packages.get(&d.name) {
            if let Some(p) = cands.iter().find(|p| d.allows(&p.version)) {
                return Some(p.clone());
            }
        }
        self.pick_provider(d)
    }

    fn pick_provider(&self, d: &Dep) -> Option<Package> {
        let provs = self.index.providers.get(&d.name)?;
        let mut best: Option<(u8, &str, &Package)> = None;
        for (name, pv) in provs {
            let pkg = match self.chosen.get(name) {
                Some(c) => &c.pkg,
                None => match self.index.candidate(name) {
                    Some(p) => p,
                    None => continue,
                },
            };
            if !provides_match(pkg, &d.name, pv.as_ref(), d) {
                continue;
            }
            let rank = if self.chosen.contains_key(name) {
                0
            } else {
                1 + priority_rank(&pkg.priority)
            };
            if best.is_none_or(|(r, n, _)| (rank, name.as_str()) < (r, n)) {
                best = Some((rank, name, pkg));
            }
        }
        best.map(|(_, _, p)| p.clone())
    }

    fn choose(&mut self, pkg: Package, group: Group, reason: String) -> Result<()> {
        if let Some(c) = self.chosen.get(&pkg.name) {
            if c.pkg.version != pkg.version {
                return Err(DebianError::Unsatisfiable(format!(
                    "{} is needed at version {} ({reason}) and at {} ({})",
                    pkg.name, pkg.version, c.pkg.version, c.reason
                )));
            }
            return Ok(());
        }
        self.queue.push_back(pkg.name.clone());
        self.chosen
            .insert(pkg.name.clone(), Chosen { pkg, group, reason });
        Ok(())
    }

    fn run(&mut self, group: Group) -> Result<()> {
        while let Some(name) = self.queue.pop_front() {
            let pkg = self.chosen[&name].pkg.clone();
            for field in ["Pre-Depends", "Depends"] {
                for clause in &pkg.relation(field)? {
                    if clause.iter().any(|d| self.satisfied(d)) {
                        continue;
                    }
                    let text = clause
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(" | ");
                    let Some(p) = clause.iter().find_map(|d| self.pick(d)) else {
                        return Err(DebianError::Unsatisfiable(format!(
                            "{} {} {field}: {text}, which no package of the suites provides",
                            pkg.name, pkg.version
                        )));
                    };
                    self.choose(p, group, format!("{} depends on {text}", pkg.name))?;
                }
            }
        }
        Ok(())
    }

    fn check_conflicts(&self) -> Result<()> {
        for c in self.chosen.values() {
            for field in ["Conflicts", "Breaks"] {
                for d in c.pkg.relation(field)?.iter().flatten() {
                    if let Some(o) = self.chosen.get(&d.name) {
                        if o.pkg.name != c.pkg.name && d.allows(&o.pkg.version) {
                            return Err(DebianError::Unsatisfiable(format!(
                                "{} {} {field} {d}, and {} {} was chosen ({})",
                                c.pkg.name, c.pkg.version, o.pkg.name, o.pkg.version, o.reason
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether `pkg` providing `virt` (at `pv`) satisfies `d` (whose name is `virt`).
fn provides_match(pkg: &Package, virt: &str, pv: Option<&Version>, d: &Dep) -> bool {
    pkg.provides.iter().flatten().any(|p| p.name == virt)
        && match (&d.version, pv) {
            (None, _) => true,
            (Some(_), Some(v)) => d.allows(v),
            // An unversioned Provides never satisfies a versioned dependency (policy 7.5).
            (Some(_), None) => false,
        }
}

/// Resolves the base set (every Essential: yes and Priority: required package, plus
/// `apt`) and then `requests` on top of it.
pub fn resolve(index: &Index, requests: &[Dep]) -> Result<Resolution> {
    let mut r = Resolver {
        index,
        chosen: BTreeMap::new(),
        queue: VecDeque::new(),
    };
    let mut base: Vec<(Package, &str)> = Vec::new();
    for (name, cands) in &index.packages {
        let Some(p) = cands.first() else { continue };
        if p.essential {
            base.push((p.clone(), "essential"));
        } else if p.priority == "required" {
            base.push((p.clone(), "required"));
        } else if name == "apt" {
            base.push((p.clone(), "apt, to add packages later"));
        }
    }
    if base.is_empty() {
        return Err(DebianError::Unsatisfiable(
            "the suites list no Essential or required package".into(),
        ));
    }
    for (p, why) in base {
        r.choose(p, Group::Base, why.to_string())?;
    }
    r.run(Group::Base)?;
    for d in requests {
        if r.satisfied(d) && r.chosen.contains_key(&d.name) {
            continue;
        }
        let p = match index.packages.get(&d.name) {
            Some(c) => c
                .iter()
                .find(|p| d.allows(&p.version))
                .cloned()
                .ok_or_else(|| DebianError::NoSuchVersion {
                    dep: d.to_string(),
                    have: c
                        .iter()
                        .map(|p| p.version.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?,
            None => match r.pick_provider(d) {
                Some(p) => p,
                None => {
                    let mut near: Vec<&String> = index
                        .packages
                        .keys()
                        .filter(|k| {
                            k.contains(d.name.as_str())
                                || d.name.contains(k.as_str()) && k.len() > 3
                        })
                        .collect();
                    near.sort_by_key(|k| (k.len().abs_diff(d.name.len()), k.to_string()));
                    near.truncate(5);
                    return Err(DebianError::UnknownPackage {
                        name: d.name.clone(),
                        similar: near.into_iter().cloned().collect(),
                    });
                }
            },
        };
        r.choose(p, Group::Extra, "requested".into())?;
    }
    r.run(Group::Extra)?;
    r.check_conflicts()?;
    Ok(Resolution {
        packages: r.chosen.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(text: &str) -> Index {
        let mut i = Index::default();
        i.add(text, "test", 0, "amd64", "Packages").unwrap();
        i.finish();
        i
    }

    const PKGS: &str = "\
Package: base
Version: 1
Architecture: all
Essential: yes
Priority: required
Depends: libc (>= 2), awk
Filename: pool/base.deb
Size: 1
SHA256: 0000000000000000000000000000000000000000000000000000000000000000

Package: libc
Version: 2.1
Architecture: amd64
Priority: optional
Filename: pool/libc.deb
Size: 1
SHA256: 0000000000000000000000000000000000000000000000000000000000000000

Package: libc
Version: 1.0
Architecture: amd64
Priority: optional
Filename: pool/libc-old.deb
Size: 1
SHA256: 0000000000000000000000000000000000000000000000000000000000000000

Package: zawk
Version: 1
Architecture: amd64
Priority: optional
Provides: awk
Filename: pool/zawk.deb
Size: 1
SHA256: 0000000000000000000000000000000000000000000000000000000000000000

Package: mawk
Version: 1
Architecture: amd64
Priority: required
Provides: awk
Filename: pool/mawk.deb
Size: 1
SHA256: 0000000000000000000000000000000000000000000000000000000000000000

Package: app
Version: 3
Architecture: amd64
Priority: optional
Depends: missing | libc (>= 2), virt (>= 2)
Filename: pool/app.deb
Size: 1
SHA256: 0000000000000000000000000000000000000000000000000000000000000000

Package: v1
Version: 1
Architecture: amd64
Provides: virt (= 1)
Filename: pool/v1.deb
Size: 1
SHA256: 0000000000000000000000000000000000000000000000000000000000000000

Package: v2
Version: 1
Architecture: amd64
Provides: virt (= 2)
Conflicts: zawk
Filename: pool/v2.deb
Size: 1
SHA256: 0000000000000000000000000000000000000000000000000000000000000000

Package: armonly
Version: 1
Architecture: arm64
Filename: pool/arm.deb
Size: 1
SHA256: 0000000000000000000000000000000000000000000000000000000000000000
";

    fn names(r: &Resolution) -> Vec<String> {
        r.packages
            .iter()
            .map(|c| format!("{}={}:{}", c.pkg.name, c.pkg.version, c.group.as_str()))
            .collect()
    }

    #[test]
    fn base_alternatives_virtuals_versions() {
        let i = index(PKGS);
        let r = resolve(&i, &[parse_request("app").unwrap()]).unwrap();
        // mawk (required) provides awk, so zawk is never pulled; libc at its highest
        // version; the versioned virtual picks the provider whose version fits.
        assert_eq!(
            names(&r),
            [
                "app=3:extra",
                "base=1:base",
                "libc=2.1:base",
                "mawk=1:base",
                "v2=1:extra"
            ]
        );
        let again = resolve(&i, &[parse_request("app").unwrap()]).unwrap();
        assert_eq!(names(&r), names(&again));
    }

    #[test]
    fn pins_conflicts_and_missing() {
        let i = index(PKGS);
        // An explicit older version clashes with base's libc (>= 2).
        let e = resolve(&i, &[parse_request("libc=1.0").unwrap()])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("libc"), "{e}");
        let e = resolve(&i, &[parse_request("nosuch").unwrap()])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("nosuch is not in the suites"), "{e}");
        // Other architectures are not candidates.
        assert!(resolve(&i, &[parse_request("armonly").unwrap()]).is_err());
        // v2 conflicts with zawk.
        let e = resolve(
            &i,
            &[
                parse_request("zawk").unwrap(),
                parse_request("app").unwrap(),
            ],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("Conflicts zawk"), "{e}");
        assert!(parse_request("Bad Name").is_err());
    }
}
