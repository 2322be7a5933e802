//! Binary package indexes (`Packages` files) merged across the suites of one build.

use crate::control::{paragraphs, parse_relation, Relation};
use crate::version::Version;
use crate::{DebianError, Result};
use std::collections::BTreeMap;

/// A binary package as an index describes it: what the resolver and the downloader need.
#[derive(Clone, Debug)]
pub struct Package {
    /// Binary package name (`libc6`).
    pub name: String,
    /// The version this index offers.
    pub version: Version,
    /// The build's architecture (`amd64`) or `all`.
    pub architecture: String,
    /// `Essential: yes`: always part of the base layer.
    pub essential: bool,
    /// `Priority` (`required`, `important`, `standard`, `optional`...); `optional` when
    /// absent. `required` packages go in the base layer.
    pub priority: String,
    /// `Multi-Arch` (`same`, `foreign`, `allowed`), `no` when absent.
    pub multi_arch: String,
    /// Provides, parsed when the index is read (the resolver needs every provider).
    pub provides: Relation,
    /// The other relationship fields as written: parsed by [`Package::relation`] only for
    /// the packages the resolver visits (a few hundred of some 60,000).
    pub depends: String,
    /// `Pre-Depends`, as written (empty when absent).
    pub pre_depends: String,
    /// `Conflicts`, as written (empty when absent).
    pub conflicts: String,
    /// `Breaks`, as written (empty when absent).
    pub breaks: String,
    /// Path of the .deb below the mirror root (`pool/main/...`).
    pub filename: String,
    /// Size of the .deb in bytes.
    pub size: u64,
    /// SHA256 of the .deb (lowercase hex), checked after download.
    pub sha256: String,
    /// `Installed-Size`: KiB the package takes once unpacked (0 when absent).
    pub installed_size: u64,
    /// The suite whose index listed it (`bookworm`, `bookworm-security`).
    pub suite: String,
    /// Index of the mirror (in [`crate::Source`] order) the package comes from.
    pub source: usize,
}

/// A Debian package (or architecture) name: lowercase letters, digits, `+ - .`, starting
/// with a letter or digit (policy 5.6.1).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(&c))
}

/// A Debian version's characters (policy 5.6.12), never `/`.
pub fn valid_version(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".+~:-".contains(&c))
}

impl Package {
    /// One of the relationship fields kept as text (`Depends`, `Pre-Depends`,
    /// `Conflicts`, `Breaks`), parsed; an error names the package and field.
    pub fn relation(&self, field: &str) -> Result<Relation> {
        let text = match field {
            "Depends" => &self.depends,
            "Pre-Depends" => &self.pre_depends,
            "Conflicts" => &self.conflicts,
            "Breaks" => &self.breaks,
            _ => return Ok(Relation::new()),
        };
        parse_relation(text).map_err(|e| DebianError::PackageField {
            package: self.name.clone(),
            version: self.version.to_string(),
            suite: self.suite.clone(),
            field: field.to_string(),
            source: Box::new(e),
        })
    }
}

/// Every package of the suites, each name's candidates sorted best (highest version) first.
#[derive(Default)]
pub struct Index {
    /// Package name -> its candidates from every suite (best first after
    /// [`Index::finish`]).
    pub packages: BTreeMap<String, Vec<Package>>,
    /// Virtual package name -> (provider name, version provided if any).
    pub providers: BTreeMap<String, Vec<(String, Option<Version>)>>,
}

impl Index {
    /// Adds the packages of one `Packages` file. `what` names the file in errors.
    pub fn add(
        &mut self,
        text: &str,
        suite: &str,
        source: usize,
        arch: &str,
        what: &str,
    ) -> Result<()> {
        let bad = |msg: String| DebianError::Index {
            file: what.to_string(),
            line: None,
            msg,
        };
        let paras = paragraphs(text).map_err(|e| crate::archive::in_index(what, e))?;
        for p in paras {
            let name = p
                .get("Package")
                .ok_or_else(|| bad("a paragraph has no Package field".into()))?;
            let a = p.get("Architecture").unwrap_or("");
            if a != arch && a != "all" {
                continue;
            }
            let rel = |f: &str| -> Result<Relation> {
                p.get(f)
                    .map(parse_relation)
                    .transpose()
                    .map(Option::unwrap_or_default)
                    .map_err(|e| bad(format!("package {name}: {f}: {e}")))
            };
            let raw = |f: &str| p.get(f).unwrap_or("").to_string();
            let field = |f: &str| -> Result<&str> {
                p.get(f)
                    .ok_or_else(|| bad(format!("package {name} has no {f} field")))
            };
            if !valid_name(name) || !valid_name(a) {
                return Err(bad(format!(
                    "invalid package name or architecture `{name}` `{a}`"
                )));
            }
            let version = Version::parse(field("Version")?)
                .map_err(|e| bad(format!("package {name}: {e}")))?;
            let sha256 = field("SHA256")?.to_ascii_lowercase();
            if sha256.len() != 64 || !sha256.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad(format!("package {name}: bad SHA256 `{sha256}`")));
            }
            let pkg = Package {
                name: name.to_string(),
                version,
                architecture: a.to_string(),
                essential: p.get("Essential") == Some("yes"),
                priority: p.get("Priority").unwrap_or("optional").to_string(),
                multi_arch: p.get("Multi-Arch").unwrap_or("no").to_string(),
                provides: rel("Provides")?,
                depends: raw("Depends"),
                pre_depends: raw("Pre-Depends"),
                conflicts: raw("Conflicts"),
                breaks: raw("Breaks"),
                filename: field("Filename")?.to_string(),
                size: field("Size")?
                    .parse()
                    .map_err(|_| bad(format!("package {name}: bad Size")))?,
                sha256,
                installed_size: p
                    .get("Installed-Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                suite: suite.to_string(),
                source,
            };
            for alt in pkg.provides.iter().flatten() {
                self.providers
                    .entry(alt.name.clone())
                    .or_default()
                    .push((pkg.name.clone(), alt.version.as_ref().map(|v| v.1.clone())));
            }
            self.packages.entry(pkg.name.clone()).or_default().push(pkg);
        }
        Ok(())
    }

    /// Sorts candidates (highest version first; at equal versions the first suite added
    /// wins) and drops duplicate providers. Call once after every file was added.
    pub fn finish(&mut self) {
        for c in self.packages.values_mut() {
            // Stable sort: equal versions keep the order the suites were added in.
            c.sort_by(|a, b| b.version.cmp(&a.version));
            c.dedup_by(|a, b| a.version == b.version);
        }
        for p in self.providers.values_mut() {
            p.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1)));
            p.dedup_by(|a, b| a.0 == b.0);
        }
    }

    /// The candidate apt would install for `name`: its highest version.
    pub fn candidate(&self, name: &str) -> Option<&Package> {
        self.packages.get(name).and_then(|c| c.first())
    }
}
