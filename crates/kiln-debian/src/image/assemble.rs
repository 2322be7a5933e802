//! Turning the cached .debs of a lock into the image's layers: one per package group
//! (unpacked, their info files written, configured), then the databases layer, each
//! found in the memo or built, and the image config over them.

use super::databases::{self, Controls};
use super::layer::{
    ensure_snapshot, memo_path, read_memo, write_memo, write_snapshot_layer, CachedLayer, FORMAT,
};
use super::plan::{deb_path, repack_path};
use super::scripts::{self, order_scripts, Configured, ScriptPackage};
use super::{Progress, PATH_ENV};
use crate::dpkg;
use crate::lock::{Lock, LockedPackage};
use crate::native::{self, Tree};
use crate::resolve::Group;
use crate::unpack::{merged_links, unpack_all, DebFile};
use crate::{DebianError, Result};
use kiln_oci::types::{rfc3339, ContainerConfig, Descriptor, History, ImageConfig, RootFs};
use kiln_oci::Digest;
use kiln_store::Store;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// What [`assemble`] made: the image (not yet tagged) and what is left for a container.
pub struct Assembled {
    /// The image config: architecture, `PATH`, labels naming the suite and snapshot,
    /// the layers' diff IDs and history.
    pub config: ImageConfig,
    /// The layers written to the store, bottom first: base, extra (if any packages
    /// were asked for), databases.
    pub layers: Vec<Descriptor>,
    /// Packages whose maintainer scripts the container step runs, in run order.
    pub scripts: Vec<ScriptPackage>,
    /// Whether the container step must run ldconfig.
    pub ldconfig: bool,
    /// The build time in seconds since the epoch (SOURCE_DATE_EPOCH): every file's
    /// mtime and the image's creation date.
    pub epoch: i64,
    /// Layers found in the cache.
    pub cached_layers: usize,
    /// Each package with maintainer scripts: (name, `native`|`nothing`|`script`, what
    /// kiln did instead or why nothing was needed).
    pub handling: Vec<(String, String, String)>,
}

/// Builds the layers of `lock` from the cached .debs into `store`.
pub fn assemble(
    store: &Store,
    lock: &Lock,
    cache: &Path,
    epoch: i64,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<Assembled> {
    let mut a = Assembler {
        store,
        lock,
        cache,
        epoch,
        jobs,
        progress,
        created: rfc3339(epoch),
        diff_ids: Vec::new(),
        layers: Vec::new(),
        history: Vec::new(),
        lowers: Vec::new(),
        configured: Configured::default(),
        controls: Controls::new(),
        cached_layers: 0,
    };
    for group in [Group::Base, Group::Extra] {
        a.package_layer(group)?;
    }
    a.databases_layer()?;
    Ok(a.finish())
}

/// The image as its layers are added, bottom first.
struct Assembler<'a> {
    store: &'a Store,
    lock: &'a Lock,
    cache: &'a Path,
    epoch: i64,
    jobs: usize,
    progress: &'a dyn Progress,
    /// The epoch in RFC 3339: the image's and each layer's creation time.
    created: String,
    diff_ids: Vec<Digest>,
    layers: Vec<Descriptor>,
    history: Vec<History>,
    /// The snapshots of the package layers so far, for native configuration and the
    /// databases to look at.
    lowers: Vec<PathBuf>,
    /// What configuring the packages so far left for the databases and the container.
    configured: Configured,
    /// Every package's control files (the dpkg database needs them all, cached layer or
    /// not).
    controls: Controls,
    /// Layers found in the memo.
    cached_layers: usize,
}

impl Assembler<'_> {
    /// The layer of the packages of `group` (none when the lock has none): from the memo,
    /// or unpacked and configured.
    fn package_layer(&mut self, group: Group) -> Result<()> {
        let pkgs: Vec<&LockedPackage> = self
            .lock
            .packages
            .iter()
            .filter(|p| p.group == group.as_str())
            .collect();
        if pkgs.is_empty() {
            return Ok(());
        }
        let mut key_parts: Vec<String> = vec![
            FORMAT.into(),
            self.lock.architecture.clone(),
            group.as_str().into(),
            self.epoch.to_string(),
        ];
        key_parts.extend(self.diff_ids.iter().map(|d| d.to_string()));
        let no_native = native::no_native();
        if !no_native.is_empty() {
            key_parts.push(format!("no native: {}", no_native.join(",")));
        }
        key_parts.extend(
            pkgs.iter()
                .map(|p| format!("{} {} {}", p.name, p.version, p.sha256)),
        );
        let memo = memo_path(self.cache, &key_parts);
        // Largest first: the threads finish together instead of waiting on one big
        // package picked last.
        let mut by_size: Vec<&&LockedPackage> = pkgs.iter().collect();
        by_size.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
        let debs: Vec<DebFile> = by_size
            .iter()
            .map(|p| DebFile {
                name: p.name.clone(),
                deb: deb_path(self.cache, p),
                repack: Some(repack_path(self.cache, p)),
            })
            .collect();
        let c = match read_memo(self.store, &memo) {
            Some(c) => {
                self.cached_layers += 1;
                self.read_controls(&debs)?;
                c
            }
            None => {
                let c = self.build_layer(group, pkgs.len(), &debs)?;
                write_memo(&memo, &c);
                c
            }
        };
        self.configured.extend(&c.configured);
        self.diff_ids.push(c.diff_id.clone());
        self.layers.push(c.descriptor.clone());
        self.lowers
            .push(ensure_snapshot(self.store, &self.layers, &self.diff_ids)?);
        self.history.push(History {
            created: Some(self.created.clone()),
            created_by: Some(format!(
                "kiln base debian: {} packages ({})",
                pkgs.len(),
                group.as_str()
            )),
            comment: Some(match group {
                Group::Base => "Essential and required packages, apt".into(),
                Group::Extra => format!("requested: {}", self.lock.requested.join(", ")),
            }),
            ..Default::default()
        });
        Ok(())
    }

    /// The control files of the packages of a cached layer.
    fn read_controls(&mut self, debs: &[DebFile]) -> Result<()> {
        for d in debs {
            let control = crate::deb::read_control_only(&d.deb)?;
            let (_, info) = dpkg::info_name(&control)?;
            self.controls.insert(d.name.clone(), (info, control));
        }
        Ok(())
    }

    /// Unpacks the `n` packages `debs` of `group` onto the layers so far, writes their
    /// info files and configures them, and writes the result as a layer.
    fn build_layer(&mut self, group: Group, n: usize, debs: &[DebFile]) -> Result<CachedLayer> {
        let (store, epoch, progress) = (self.store, self.epoch, self.progress);
        progress.note(&format!("unpacking {n} packages ({})", group.as_str()));
        let dir = store.tmp_path(&format!("debian-{}", group.as_str()));
        fs::create_dir_all(&dir).map_err(DebianError::io(&dir))?;
        let result = (|| {
            if group == Group::Base {
                for l in merged_links(&self.lock.architecture) {
                    fs::create_dir_all(dir.join("usr").join(l)).map_err(DebianError::io(&dir))?;
                    symlink(format!("usr/{l}"), dir.join(l)).map_err(DebianError::io(&dir))?;
                }
            }
            let unpacked = unpack_all(debs, &dir, self.jobs)?;
            progress.note(&format!("unpacked {n} packages ({})", group.as_str()));
            let tree = Tree {
                lower: self.lowers.iter().map(PathBuf::as_path).collect(),
                out: &dir,
                mtime: epoch,
            };
            let info_dir = dir.join("var/lib/dpkg/info");
            let mut info_names: BTreeMap<&String, String> = BTreeMap::new();
            for (name, u) in &unpacked {
                let (_, info) = dpkg::info_name(&u.control)?;
                info_names.insert(name, info.clone());
                dpkg::write_info(&info_dir, &info, &u.control, &u.paths, epoch)
                    .map_err(DebianError::io(&info_dir))?;
                self.controls
                    .insert(name.clone(), (info, u.control.clone()));
            }
            let configured = scripts::configure(&unpacked, &info_names, &tree)?;
            progress.note(&format!("configured {n} packages ({})", group.as_str()));
            let (descriptor, diff_id) = write_snapshot_layer(store, &dir, &self.diff_ids, epoch)?;
            progress.note(&format!(
                "wrote the {} layer ({:.1} MB)",
                group.as_str(),
                descriptor.size as f64 / 1e6
            ));
            Ok(CachedLayer {
                descriptor,
                diff_id,
                configured,
            })
        })();
        let _ = fs::remove_dir_all(&dir);
        result
    }

    /// The top layer: the databases over every package (from the memo, or written).
    fn databases_layer(&mut self) -> Result<()> {
        let status_of = databases::status_of(self.lock, &self.configured);
        let mut key_parts = vec![FORMAT.to_string(), "db".into(), self.epoch.to_string()];
        key_parts.extend(self.diff_ids.iter().map(|d| d.to_string()));
        key_parts.extend(
            self.lock
                .sources
                .iter()
                .map(|s| format!("{} {}", s.mirror, s.suite)),
        );
        key_parts.extend(status_of.iter().map(|(k, v)| format!("{k} {v}")));
        let memo = memo_path(self.cache, &key_parts);
        let db = match read_memo(self.store, &memo) {
            Some(c) => {
                self.cached_layers += 1;
                c
            }
            None => {
                let dir = self.store.tmp_path("debian-db");
                fs::create_dir_all(&dir).map_err(DebianError::io(&dir))?;
                let result = (|| {
                    let tree = Tree {
                        lower: self.lowers.iter().map(PathBuf::as_path).collect(),
                        out: &dir,
                        mtime: self.epoch,
                    };
                    databases::write_databases(
                        &tree,
                        self.lock,
                        &self.controls,
                        &status_of,
                        &self.configured,
                    )?;
                    write_snapshot_layer(self.store, &dir, &self.diff_ids, self.epoch)
                })();
                let _ = fs::remove_dir_all(&dir);
                let (descriptor, diff_id) = result?;
                let c = CachedLayer {
                    descriptor,
                    diff_id,
                    configured: Configured::default(),
                };
                write_memo(&memo, &c);
                c
            }
        };
        self.diff_ids.push(db.diff_id);
        self.layers.push(db.descriptor);
        self.history.push(History {
            created: Some(self.created.clone()),
            created_by: Some("kiln base debian: dpkg database, alternatives, apt sources".into()),
            ..Default::default()
        });
        Ok(())
    }

    /// The image config over the layers, and what is left for the container step.
    fn finish(self) -> Assembled {
        let arch = self.lock.architecture.as_str();
        let mut labels = BTreeMap::new();
        labels.insert(
            "org.opencontainers.image.created".to_string(),
            self.created.clone(),
        );
        labels.insert("dev.kiln.debian.suite".to_string(), self.lock.suite.clone());
        labels.insert(
            "dev.kiln.debian.snapshot".to_string(),
            self.lock
                .sources
                .iter()
                .map(|s| format!("{}@{}", s.suite, s.date))
                .collect::<Vec<_>>()
                .join("; "),
        );
        let config = ImageConfig {
            created: Some(self.created),
            author: None,
            architecture: arch.to_string(),
            os: "linux".into(),
            variant: (arch == "arm64").then(|| "v8".to_string()),
            config: Some(ContainerConfig {
                env: Some(vec![PATH_ENV.to_string()]),
                cmd: Some(vec!["bash".to_string()]),
                labels: Some(labels),
                ..Default::default()
            }),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: self.diff_ids,
            },
            history: Some(self.history),
            extra: Default::default(),
        };
        // Scripts run in dependency order (a package after what it depends on).
        let scripts = order_scripts(self.configured.scripts, &self.controls);
        Assembled {
            config,
            layers: self.layers,
            scripts,
            ldconfig: self.configured.ldconfig,
            epoch: self.epoch,
            cached_layers: self.cached_layers,
            handling: self.configured.handling,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1686387231), "2023-06-10T08:53:51Z");
    }
}
