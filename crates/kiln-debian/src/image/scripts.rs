//! Maintainer scripts: which packages kiln configures natively and which keep their
//! scripts, the order those run in, and the shell script of the container step that runs
//! them (and what else cannot be done natively).

use super::Assembled;
use crate::deb::ControlFiles;
use crate::dpkg::Alternative;
use crate::native::{self, Handling, Tree};
use crate::unpack::Unpacked;
use crate::Result;
use std::collections::{BTreeMap, BTreeSet};

/// A package whose maintainer scripts run in the container step.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ScriptPackage {
    /// Package name.
    pub name: String,
    /// `libc6:amd64` for Multi-Arch: same.
    pub info_name: String,
    /// Its `preinst` runs (as `preinst install`).
    pub preinst: bool,
    /// Its `postinst` runs (as `postinst configure`), after which it is marked installed.
    pub postinst: bool,
}

/// What configuring packages leaves for later: the scripts of the container step (and
/// whether ldconfig runs there), the report of how each package was handled, and what
/// the databases layer records (alternatives, diversions, /etc/shells). Stored with a
/// cached layer, so a cache hit configures nothing again.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Configured {
    /// Packages whose scripts run in the container step.
    pub scripts: Vec<ScriptPackage>,
    pub ldconfig: bool,
    /// Each package with maintainer scripts: (name, `native`|`nothing`|`script`, what
    /// kiln did instead or why nothing was needed).
    pub handling: Vec<(String, String, String)>,
    pub alternatives: Vec<Alternative>,
    /// (path, diverted to, package)
    pub diversions: Vec<(String, String, String)>,
    /// /etc/shells is to be (re)built.
    pub shells: bool,
}

impl Configured {
    /// Adds what the packages of a layer above left.
    pub fn extend(&mut self, above: &Configured) {
        self.scripts.extend(above.scripts.iter().cloned());
        self.ldconfig |= above.ldconfig;
        self.shells |= above.shells;
        self.handling.extend(above.handling.iter().cloned());
        self.alternatives.extend(above.alternatives.iter().cloned());
        self.diversions.extend(above.diversions.iter().cloned());
    }

    /// Whether `name`'s postinst runs in the container step (dpkg lists it unpacked
    /// until then).
    pub fn postinst_pending(&self, name: &str) -> bool {
        self.scripts.iter().any(|s| s.name == name && s.postinst)
    }
}

/// Configures the packages just unpacked onto `tree` (`info_names`: their dpkg info
/// names): natively where kiln can, else their scripts are left for the container step.
pub(super) fn configure(
    unpacked: &BTreeMap<String, Unpacked>,
    info_names: &BTreeMap<&String, String>,
    tree: &Tree<'_>,
) -> Result<Configured> {
    let mut c = Configured::default();
    // Native configuration in a fixed order: users and groups first (others look up ids
    // in them), then the rest by name.
    let mut order: Vec<&String> = unpacked.keys().collect();
    order.sort_by_key(|n| {
        (
            !matches!(n.as_str(), "base-passwd" | "passwd"),
            n.as_str() != "base-passwd",
            n.to_string(),
        )
    });
    for name in order {
        let u: &Unpacked = &unpacked[name];
        let h = native::handling_in(name, &u.control, tree);
        let (kind, why) = match &h {
            Handling::Native(w) => ("native", w.to_string()),
            Handling::Nothing(w) => ("nothing", w.to_string()),
            Handling::Script => ("script", String::new()),
        };
        if u.control.get("postinst").is_some() || u.control.get("preinst").is_some() {
            c.handling.push((name.clone(), kind.into(), why));
        }
        match h {
            Handling::Script => {
                c.scripts.push(ScriptPackage {
                    name: name.clone(),
                    info_name: info_names[name].clone(),
                    preinst: u.control.get("preinst").is_some(),
                    postinst: u.control.get("postinst").is_some(),
                });
            }
            _ => {
                let fx = native::configure(name, &u.control, tree)?;
                c.ldconfig |= fx.ldconfig;
                c.shells |= fx.shells;
                c.diversions.extend(fx.diversions);
                c.alternatives.extend(fx.alternatives);
            }
        }
    }
    Ok(c)
}

/// Dependency order among the packages whose scripts run: a package's postinst after
/// those of the packages it (pre-)depends on; otherwise by name.
pub(super) fn order_scripts(
    scripts: Vec<ScriptPackage>,
    controls: &BTreeMap<String, (String, ControlFiles)>,
) -> Vec<ScriptPackage> {
    let names: BTreeSet<String> = scripts.iter().map(|s| s.name.clone()).collect();
    let deps = |n: &str| -> BTreeSet<String> {
        let Some((_, c)) = controls.get(n) else {
            return BTreeSet::new();
        };
        let text = c.text("control").unwrap_or_default();
        let Ok(paras) = crate::control::paragraphs(&text) else {
            return BTreeSet::new();
        };
        let mut out = BTreeSet::new();
        for f in ["Depends", "Pre-Depends"] {
            if let Some(v) = paras.first().and_then(|p| p.get(f)) {
                for d in crate::control::parse_relation(v)
                    .unwrap_or_default()
                    .iter()
                    .flatten()
                {
                    if names.contains(&d.name) && d.name != n {
                        out.insert(d.name.clone());
                    }
                }
            }
        }
        out
    };
    // Each package's dependencies among `names`, parsed once.
    let deps: BTreeMap<String, BTreeSet<String>> =
        names.iter().map(|n| (n.clone(), deps(n))).collect();
    let mut left: BTreeMap<String, ScriptPackage> =
        scripts.into_iter().map(|s| (s.name.clone(), s)).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while !left.is_empty() {
        let ready: Option<String> = left
            .keys()
            .find(|n| deps[*n].iter().all(|d| done.contains(d)))
            .cloned()
            // A cycle: take the first by name, as dpkg breaks cycles somewhere too.
            .or_else(|| left.keys().next().cloned());
        let n = ready.expect("non-empty");
        done.insert(n.clone());
        out.push(left.remove(&n).expect("present"));
    }
    out
}

/// The shell script the container step runs: the maintainer scripts kiln does not
/// replicate, then ldconfig; files whose content is the build's time or order removed.
pub fn configure_script(a: &Assembled) -> String {
    let mut s = String::from(
        "set -e\nexport DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true DPKG_ROOT= LC_ALL=C.UTF-8\n",
    );
    s.push_str(&format!("export SOURCE_DATE_EPOCH={}\n", a.epoch));
    let arch = a.config.architecture.as_str();
    for p in &a.scripts {
        let env = format!(
            "DPKG_MAINTSCRIPT_PACKAGE={} DPKG_MAINTSCRIPT_ARCH={arch} DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1",
            p.name
        );
        if p.preinst {
            s.push_str(&format!(
                "DPKG_MAINTSCRIPT_NAME=preinst {env} /var/lib/dpkg/info/{}.preinst install\n",
                p.info_name
            ));
        }
        if p.postinst {
            s.push_str(&format!(
                "DPKG_MAINTSCRIPT_NAME=postinst {env} /var/lib/dpkg/info/{}.postinst configure\n",
                p.info_name
            ));
            // dpkg marks the package configured once its postinst succeeded.
            s.push_str(&format!(
                "sed -i '/^Package: {}$/,/^$/ s/^Status: install ok unpacked$/Status: install ok installed/' /var/lib/dpkg/status\n",
                p.name.replace('.', "\\.").replace('+', "\\+")
            ));
        }
    }
    if a.ldconfig {
        s.push_str("ldconfig\n");
    }
    let day = a.epoch.max(0) / 86400;
    s.push_str(&format!(
        "if [ -f /etc/shadow ]; then sed -i -E 's/^([^:]*:[^:]*:)[0-9]+:/\\1{day}:/' /etc/shadow; fi\n"
    ));
    s.push_str("rm -f /var/cache/ldconfig/aux-cache /var/log/dpkg.log /var/log/alternatives.log /var/cache/debconf/*-old /var/lib/dpkg/*-old /etc/passwd- /etc/group- /etc/shadow- /etc/gshadow-\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(name: &str, postinst: bool) -> ScriptPackage {
        ScriptPackage {
            name: name.into(),
            info_name: format!("{name}:amd64"),
            preinst: !postinst,
            postinst,
        }
    }

    fn control(name: &str, depends: &str) -> (String, ControlFiles) {
        let mut c = ControlFiles::default();
        let text = format!("Package: {name}\nVersion: 1\nDepends: {depends}\n");
        c.files.insert("control".into(), (0o644, text.into_bytes()));
        (name.into(), c)
    }

    #[test]
    fn scripts_run_after_what_they_depend_on() {
        let controls: BTreeMap<String, (String, ControlFiles)> = [
            ("a", "c, libc6"),
            ("b", "a | x"),
            ("c", ""),
            // A cycle: broken by name.
            ("y", "z"),
            ("z", "y"),
        ]
        .into_iter()
        .map(|(n, d)| (n.to_string(), control(n, d)))
        .collect();
        let scripts = ["z", "y", "b", "a", "c"].map(|n| script(n, true)).to_vec();
        let order: Vec<String> = order_scripts(scripts, &controls)
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(order, ["c", "a", "b", "y", "z"]);
    }

    #[test]
    fn pending_postinsts_and_extend() {
        let mut all = Configured::default();
        let above = Configured {
            scripts: vec![script("ca-certificates", true), script("x", false)],
            ldconfig: true,
            shells: false,
            ..Default::default()
        };
        all.extend(&above);
        all.extend(&Configured {
            shells: true,
            ..Default::default()
        });
        assert!(all.postinst_pending("ca-certificates"));
        assert!(!all.postinst_pending("x"));
        assert!(!all.postinst_pending("bash"));
        assert!(all.ldconfig && all.shells);
        assert_eq!(all.scripts.len(), 2);
    }
}
