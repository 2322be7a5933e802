//! The databases written into the image's top layer, everything that depends on the
//! whole package set: dpkg's status (with each package's state), info/format, triggers,
//! diversions and alternatives, /etc/shells and the apt sources. The per-package info
//! files (`PKG.list`, `PKG.md5sums`, scripts) go with each package's layer.

use super::scripts::Configured;
use crate::deb::ControlFiles;
use crate::dpkg::{self, Alternative};
use crate::lock::Lock;
use crate::native::Tree;
use crate::{DebianError, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;

/// The controls of every package of an image, by name: (dpkg info name, control files).
pub(super) type Controls = BTreeMap<String, (String, ControlFiles)>;

/// Each package's dpkg status: installed, or unpacked while its postinst is left for the
/// container step.
pub(super) fn status_of(lock: &Lock, configured: &Configured) -> BTreeMap<String, String> {
    let mut status_of = BTreeMap::new();
    for p in &lock.packages {
        let pending = configured.postinst_pending(&p.name);
        status_of.insert(
            p.name.clone(),
            if pending {
                "install ok unpacked"
            } else {
                "install ok installed"
            }
            .into(),
        );
    }
    status_of
}

/// status, info/format, triggers, diversions, alternatives, /etc/shells and the apt
/// sources: everything that depends on the whole package set.
pub(super) fn write_databases(
    tree: &Tree<'_>,
    lock: &Lock,
    controls: &Controls,
    status_of: &BTreeMap<String, String>,
    configured: &Configured,
) -> Result<()> {
    let Configured {
        alternatives,
        diversions,
        shells,
        ..
    } = configured;
    let e = |what: &str| {
        let what = what.to_string();
        move |source: std::io::Error| DebianError::WriteDatabase { what, source }
    };
    let mtime = tree.mtime;
    let db = tree.out.join("var/lib/dpkg");
    // status: every package, sorted by name, with its conffiles' sums.
    let mut status = String::new();
    for (name, (_, control)) in controls {
        let conffiles = dpkg::conffile_sums(control, |p| {
            let rel = p.trim_start_matches('/');
            tree.find(&crate::unpack::merged_rel(rel))
                .unwrap_or_else(|| tree.out.join(rel))
        })
        .map_err(|m| DebianError::Package {
            name: name.clone(),
            source: Box::new(m),
        })?;
        status.push_str(&dpkg::status_entry(&dpkg::Record {
            control,
            status: &status_of[name],
            conffiles,
        })?);
        status.push('\n');
    }
    dpkg::write_file(&db.join("status"), status.as_bytes(), 0o644, mtime).map_err(e("status"))?;
    dpkg::write_file(&db.join("info/format"), b"1\n", 0o644, mtime).map_err(e("info/format"))?;
    for f in ["lock", "lock-frontend"] {
        dpkg::write_file(&db.join(f), b"", 0o640, mtime).map_err(e(f))?;
    }
    for d in ["updates", "parts", "alternatives"] {
        fs::create_dir_all(db.join(d)).map_err(e(d))?;
    }
    let keyed: Vec<(&str, &ControlFiles)> =
        controls.values().map(|(k, c)| (k.as_str(), c)).collect();
    for (name, text) in dpkg::trigger_files(&keyed) {
        dpkg::write_file(
            &db.join("triggers").join(&name),
            text.as_bytes(),
            0o644,
            mtime,
        )
        .map_err(e("triggers"))?;
    }
    dpkg::write_file(&db.join("triggers/Lock"), b"", 0o600, mtime).map_err(e("triggers"))?;
    let mut div = String::new();
    for (from, to, pkg) in diversions {
        div.push_str(&format!("{from}\n{to}\n{pkg}\n"));
    }
    dpkg::write_file(&db.join("diversions"), div.as_bytes(), 0o644, mtime)
        .map_err(e("diversions"))?;
    // Alternatives: grouped by name; auto mode picks the best; links only where the
    // target exists (update-alternatives skips missing slaves the same way).
    let mut by_name: BTreeMap<&str, Vec<Alternative>> = BTreeMap::new();
    for a in alternatives {
        by_name.entry(&a.name).or_default().push(a.clone());
    }
    for (name, alts) in &by_name {
        dpkg::write_file(
            &db.join("alternatives").join(name),
            dpkg::alternatives_admin(alts).as_bytes(),
            0o644,
            mtime,
        )
        .map_err(e("alternatives"))?;
        let best = dpkg::best_alternative(alts);
        let mut links = vec![(best.name.clone(), best.link.clone(), best.path.clone())];
        links.extend(best.slaves.iter().cloned());
        for (n, link, path) in links {
            let target_rel = crate::unpack::merged_rel(path.trim_start_matches('/'));
            if !tree.exists(&target_rel) {
                continue;
            }
            tree_link(tree, &format!("etc/alternatives/{n}"), &path)?;
            tree_link(
                tree,
                &crate::unpack::merged_rel(link.trim_start_matches('/')),
                &format!("/etc/alternatives/{n}"),
            )?;
        }
    }
    if *shells {
        write_shells(tree)?;
    }
    // apt sources (deb822), so `apt-get update` works in the image.
    let mut src = String::new();
    let mut by_mirror: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for s in &lock.sources {
        if s.mirror.starts_with("file:") {
            continue;
        }
        match by_mirror
            .iter_mut()
            .find(|(m, _, c)| *m == s.mirror && *c == s.components)
        {
            Some((_, suites, _)) => suites.push(s.suite.clone()),
            None => by_mirror.push((
                s.mirror.clone(),
                vec![s.suite.clone()],
                s.components.clone(),
            )),
        }
    }
    for (m, suites, comps) in by_mirror {
        if !src.is_empty() {
            src.push('\n');
        }
        src.push_str(&format!(
            "Types: deb\nURIs: {m}\nSuites: {}\nComponents: {}\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            suites.join(" "),
            comps.join(" ")
        ));
    }
    if !src.is_empty() {
        let rel = "etc/apt/sources.list.d/debian.sources";
        tree_write(tree, rel, src.as_bytes())?;
    }
    Ok(())
}

fn tree_link(tree: &Tree<'_>, rel: &str, target: &str) -> Result<()> {
    tree.link(rel, target)
        .map_err(DebianError::io(format!("/{rel}")))
}

fn tree_write(tree: &Tree<'_>, rel: &str, bytes: &[u8]) -> Result<()> {
    tree.write(rel, bytes, 0o644, (0, 0))
        .map_err(DebianError::io(format!("/{rel}")))
}

/// /etc/shells as debianutils' update-shells writes it on a merged /usr: the shells of
/// /usr/share/debianutils/shells and shells.d/*, each followed by its /usr twin.
fn write_shells(tree: &Tree<'_>) -> Result<()> {
    let base = tree
        .find("usr/share/debianutils/shells")
        .and_then(|p| fs::read_to_string(p).ok())
        .unwrap_or_default();
    let mut header = String::new();
    let mut list: Vec<String> = Vec::new();
    for l in base.lines() {
        if l.starts_with('#') || l.trim().is_empty() {
            header.push_str(l);
            header.push('\n');
        } else {
            list.push(l.trim().to_string());
        }
    }
    let mut names: BTreeSet<String> = BTreeSet::new();
    for d in std::iter::once(tree.out).chain(tree.lower.iter().copied()) {
        if let Ok(rd) = fs::read_dir(d.join("usr/share/debianutils/shells.d")) {
            for e in rd.flatten() {
                names.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    for n in names {
        if let Some(p) = tree.find(&format!("usr/share/debianutils/shells.d/{n}")) {
            for l in fs::read_to_string(p).unwrap_or_default().lines() {
                let l = l.trim();
                if !l.is_empty() && !l.starts_with('#') {
                    list.push(l.to_string());
                }
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for s in list {
        let twin = crate::unpack::MERGED_DIRS
            .iter()
            .any(|d| s.starts_with(&format!("/{d}/")))
            .then(|| format!("/usr{s}"));
        for x in std::iter::once(s).chain(twin) {
            if !out.contains(&x) {
                out.push(x);
            }
        }
    }
    let mut text = header;
    let mut state = String::new();
    for s in &out {
        text.push_str(s);
        text.push('\n');
        state.push_str(s);
        state.push('\n');
    }
    tree_write(tree, "etc/shells", text.as_bytes())?;
    tree_write(tree, "var/lib/shells.state", state.as_bytes())
}
