//! The registry: every device of the spec directories, by kind then name, and the
//! resolution of requested names into merged edits.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::edits::Edits;
use super::names::parse_qualified_name;
use super::spec::{parse_spec_file, SpecEdits, SpecFile};
use super::{CdiError, DEFAULT_DIRS};

#[derive(Debug, Clone)]
struct LoadedSpec {
    path: PathBuf,
    edits: SpecEdits,
}

#[derive(Debug, Clone)]
struct DeviceEntry {
    /// Index into `Registry::specs`.
    spec: usize,
    /// Index of the directory the spec came from (priority).
    dir: usize,
    edits: SpecEdits,
}

/// All CDI devices found in the spec directories, by kind (`vendor/class`) then device name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    specs: Vec<LoadedSpec>,
    kinds: BTreeMap<String, BTreeMap<String, DeviceEntry>>,
}

impl Registry {
    /// Loads every *.json, *.yaml, *.yml spec in `dirs` (missing dirs are fine). A spec that fails to parse or
    /// validate is an error naming the file (path) and the reason.
    pub fn load(dirs: &[&Path]) -> Result<Registry, CdiError> {
        let mut reg = Registry::default();
        for (dir_idx, dir) in dirs.iter().enumerate() {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(CdiError::Io {
                        path: dir.to_path_buf(),
                        source,
                    })
                }
            };
            let mut files = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|source| CdiError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
                let path = entry.path();
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                if !matches!(ext, "json" | "yaml" | "yml") {
                    continue;
                }
                // Follows symlinks; skips directories and other non-files.
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => files.push(path),
                    _ => continue,
                }
            }
            files.sort();
            for path in files {
                let spec = parse_spec_file(&path)?;
                reg.add_spec(path, dir_idx, spec)?;
            }
        }
        Ok(reg)
    }

    /// Loads the specs in [`DEFAULT_DIRS`].
    pub fn load_default() -> Result<Registry, CdiError> {
        let dirs: Vec<&Path> = DEFAULT_DIRS.iter().map(Path::new).collect();
        Registry::load(&dirs)
    }

    /// Every known device as a fully-qualified name, sorted.
    pub fn device_names(&self) -> Vec<String> {
        self.kinds
            .iter()
            .flat_map(|(kind, devs)| sorted_names(devs).map(move |n| format!("{kind}={n}")))
            .collect()
    }

    /// Whether no devices are known.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    fn add_spec(&mut self, path: PathBuf, dir: usize, spec: SpecFile) -> Result<(), CdiError> {
        let spec_idx = self.specs.len();
        self.specs.push(LoadedSpec {
            path: path.clone(),
            edits: spec.container_edits.unwrap_or_default(),
        });
        let devs = self.kinds.entry(spec.kind.clone()).or_default();
        for dev in spec.devices {
            if let Some(existing) = devs.get(&dev.name) {
                if existing.dir == dir {
                    return Err(CdiError::Conflict {
                        device: format!("{}={}", spec.kind, dev.name),
                        first: self.specs[existing.spec].path.clone(),
                        second: path,
                    });
                }
                // A later directory overrides an earlier one.
            }
            devs.insert(
                dev.name,
                DeviceEntry {
                    spec: spec_idx,
                    dir,
                    edits: dev.container_edits,
                },
            );
        }
        Ok(())
    }

    /// Resolves fully-qualified names `vendor.com/class=name` (name `all` means every device of that kind, as
    /// nvidia-ctk generates an `all` device; if the spec has no device named `all`, expand to all devices).
    /// Unknown kind or device -> error listing the known devices of that kind (a hint).
    pub fn resolve(&self, names: &[String]) -> Result<Edits, CdiError> {
        // (kind, device name) in request order, without duplicates.
        let mut selected: Vec<(&str, &str, &DeviceEntry)> = Vec::new();
        let mut seen = HashSet::new();
        for name in names {
            let (kind, dev) = parse_qualified_name(name)?;
            let Some(devs) = self.kinds.get(kind) else {
                let known: Vec<&str> = self.kinds.keys().map(String::as_str).collect();
                return Err(CdiError::UnknownKind {
                    name: name.clone(),
                    kind: kind.to_string(),
                    known: list_or_none(&known),
                });
            };
            let (kind_key, _) = self.kinds.get_key_value(kind).expect("kind exists");
            let mut push = |dev_name: &str| {
                let (key, entry) = devs.get_key_value(dev_name).expect("device exists");
                if seen.insert((kind_key.as_str(), key.as_str())) {
                    selected.push((kind_key.as_str(), key.as_str(), entry));
                }
            };
            if devs.contains_key(dev) {
                push(dev);
            } else if dev == "all" {
                for n in sorted_names(devs) {
                    push(n);
                }
            } else {
                let known: Vec<&str> = sorted_names(devs).collect();
                return Err(CdiError::UnknownDevice {
                    name: name.clone(),
                    kind: kind.to_string(),
                    known: list_or_none(&known),
                });
            }
        }

        let mut edits = Edits::default();
        let mut specs_done = HashSet::new();
        for (kind, dev, entry) in &selected {
            if specs_done.insert(entry.spec) {
                let spec_edits = &self.specs[entry.spec].edits;
                edits.append(spec_edits, &format!("{kind}={dev}"))?;
            }
        }
        for (kind, dev, entry) in &selected {
            edits.append(&entry.edits, &format!("{kind}={dev}"))?;
        }
        Ok(edits)
    }
}

/// Device names of a kind, numeric names in numeric order first, then the rest by name.
fn sorted_names(devs: &BTreeMap<String, DeviceEntry>) -> impl Iterator<Item = &str> {
    let mut names: Vec<&str> = devs.keys().map(String::as_str).collect();
    names.sort_by_key(|n| match n.parse::<u64>() {
        Ok(i) => (0, i, *n),
        Err(_) => (1, 0, *n),
    });
    names.into_iter()
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}
