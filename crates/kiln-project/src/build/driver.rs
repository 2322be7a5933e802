//! The build itself: kiln.lock, then each layer (cached or built), snapshots, config and
//! the image, with a report per layer.

use super::base::{debian_options, BaseNow};
use super::code::code_files;
use super::config::{history, image_config};
use super::env::{base_file, env_layer};
use super::install::install;
use super::layer::{cache_get, cache_put, key_of, parents, write_placed, write_tree};
use super::lock::ensure_lock;
use super::resolve::get_uv;
use super::sdist::build_sdists;
use super::{
    tempdir, BuildOutcome, BuildRequest, LayerReport, LARGE_WEIGHTS_FILE, LARGE_WHEEL, VENV,
};
use crate::debian::{self, DebianImage};
use crate::lockfile;
use crate::manifest::{Base, Project};
use crate::pylock::LockedDist;
use crate::uv::Uv;
use crate::{Progress, Result};
use kiln_build::exec::CacheEntry;
use kiln_layer::Compression;
use kiln_oci::media;
use kiln_oci::types::{Descriptor, History, Manifest};
use kiln_oci::Digest;
use kiln_store::lease::Held;
use kiln_store::{snapshot, Store};
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

/// Builds the project in `req.dir` (or only updates kiln.lock with `lock_only`).
pub fn build(store: &Store, req: &BuildRequest, progress: &dyn Progress) -> Result<BuildOutcome> {
    let p = Project::load(&req.dir)?;
    let mut uv: Option<Uv> = None;
    let (lock, base_now, interp, lock_changes) = ensure_lock(store, &p, req, progress, &mut uv)?;
    if !lock_changes.is_empty() {
        progress.note(&format!("wrote kiln.lock ({})", lock_changes.join("; ")));
    }
    if req.lock_only {
        return Ok(BuildOutcome {
            project: p,
            lock,
            lock_changes,
            descriptor: None,
            layers: vec![],
        });
    }
    let mut reports: Vec<LayerReport> = Vec::new();
    let mut layers: Vec<CacheEntry> = Vec::new();
    let mut hist: Vec<History> = Vec::new();

    // The base first: its time is the image's time.
    let mut base_cached = matches!(base_now, BaseNow::Image(_));
    let (base_info, epoch) = match &base_now {
        BaseNow::Debian(dlock) => {
            // The image a Debian lock gives is remembered: a rebuild neither re-reads the
            // .debs nor assembles anything.
            let key = key_of(&[
                "debian base v1",
                &serde_json::to_string(dlock).expect("serializes"),
                &format!("{:?}", req.source_date_epoch),
            ]);
            let memo =
                kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Project)
                    .join("bases")
                    .join(format!("{key}.json"));
            let remembered = (!req.no_cache)
                .then(|| fs::read(&memo).ok())
                .flatten()
                .and_then(|b| serde_json::from_slice::<(Descriptor, i64)>(&b).ok())
                .and_then(|(d, epoch)| {
                    let info = store.image(&d).ok()?;
                    store.hold_image(&info).ok()?;
                    let all = info
                        .manifest
                        .layers
                        .iter()
                        .all(|l| store.has_blob(&l.digest));
                    all.then_some((info, epoch))
                });
            match remembered {
                Some((info, epoch)) => {
                    base_cached = true;
                    (info, epoch)
                }
                None => {
                    let tmp = tempdir(store, "debian-lock")?;
                    let lf = tmp.path().join("debian.lock");
                    dlock.write(&lf).map_err(crate::debian::debian_error)?;
                    let suite = match &p.base {
                        Base::Debian { suite } => suite.clone(),
                        Base::Image(_) => unreachable!("a Debian lock for a Debian base"),
                    };
                    let opts =
                        debian_options(&p, &suite, Some(lf), req.source_date_epoch, req.jobs);
                    let img: DebianImage = debian::build(store, &opts, progress)?;
                    if let Some(d) = memo.parent() {
                        let _ = fs::create_dir_all(d);
                    }
                    let _ = store.write_atomic(
                        &memo,
                        &serde_json::to_vec(&(&img.descriptor, img.epoch)).expect("serializes"),
                    );
                    (store.image(&img.descriptor)?, img.epoch)
                }
            }
        }
        BaseNow::Image(info) => {
            let created = info
                .config
                .created
                .as_deref()
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                .map_or(0, |t| t.timestamp());
            ((**info).clone(), req.source_date_epoch.unwrap_or(created))
        }
    };
    store.hold_image(&base_info)?;

    // 1. Weights. (image path -> the digest of the layer holding it)
    let mut weights_layer: BTreeMap<String, String> = BTreeMap::new();
    for (w, wl) in p.weights.iter().zip(&lock.weights) {
        let files = lockfile::weights_files(&w.path)?;
        let (big, small): (Vec<_>, Vec<_>) = files
            .iter()
            .zip(&wl.files)
            .partition(|(_, f)| f.size >= LARGE_WEIGHTS_FILE);
        let target_of = |rel: &str| {
            if rel.is_empty() {
                w.target.clone()
            } else {
                crate::manifest::image_join(&w.target, rel)
            }
        };
        type Group<'a> = (
            String,
            Vec<(&'a (String, PathBuf), &'a lockfile::WeightsFile)>,
        );
        let mut groups: Vec<Group> = big
            .into_iter()
            .map(|f| {
                let shown = if f.0 .0.is_empty() {
                    w.rel.clone()
                } else {
                    format!("{}/{}", w.rel, f.0 .0)
                };
                (shown, vec![f])
            })
            .collect();
        if !small.is_empty() {
            let shown = if small.len() == 1 && small[0].0 .0.is_empty() {
                w.rel.clone()
            } else {
                format!("{} ({} files)", w.rel, small.len())
            };
            groups.push((shown, small));
        }
        for (shown, group) in groups {
            let key_parts: Vec<String> = std::iter::once("weights v2".to_string())
                .chain(
                    group
                        .iter()
                        .map(|((rel, _), f)| format!("{} {} {}", target_of(rel), f.size, f.sha256)),
                )
                .collect();
            let refs: Vec<&str> = key_parts.iter().map(String::as_str).collect();
            let key = key_of(&refs);
            let (entry, cached) = match cache_get(store, &key, req.no_cache) {
                Some(e) => (e, true),
                None => {
                    progress.note(&format!("weights `{}`: {shown}", w.name));
                    let placed: Vec<(String, PathBuf, u32, Option<String>)> = group
                        .iter()
                        .map(|((rel, abs), f)| {
                            (target_of(rel), abs.clone(), 0o644, Some(f.sha256.clone()))
                        })
                        .collect();
                    // Time 0, not the image's: the same weights give the same layer in
                    // every version and every project, whatever the base's date.
                    let e = write_placed(store, &placed, &[], 0, Compression::None)?;
                    cache_put(store, &key, &e);
                    (e, false)
                }
            };
            hist.push(history(
                epoch,
                format!("kiln weights {} {shown} -> {}", w.name, w.target),
            ));
            for ((rel, _), _) in &group {
                weights_layer.insert(target_of(rel), entry.layer.digest.to_string());
            }
            reports.push(LayerReport {
                kind: "weights",
                name: format!("{}: {shown}", w.name),
                digest: entry.layer.digest.to_string(),
                size: entry.layer.size,
                cached,
            });
            layers.push(entry);
        }
    }

    // 2. OS: the base's layers.
    let base_layers = base_info.manifest.layers.clone();
    let base_diffs = base_info.config.rootfs.diff_ids.clone();
    let base_hist = base_info.config.history.clone().unwrap_or_default();
    for (i, (l, d)) in base_layers.iter().zip(&base_diffs).enumerate() {
        reports.push(LayerReport {
            kind: "os",
            name: format!("{} layer {}", lock.base.image, i + 1),
            digest: l.digest.to_string(),
            size: l.size,
            cached: base_cached,
        });
        layers.push(CacheEntry {
            layer: l.clone(),
            diff_id: d.clone(),
        });
    }
    hist.extend(base_hist.into_iter().filter(|h| !h.empty_layer));
    while hist.len() < layers.len() {
        hist.push(history(epoch, "base layer".into()));
    }

    // Trees just written as layers (layer index, directory): kept as their snapshots.
    let mut fresh_trees: Vec<(usize, PathBuf)> = Vec::new();
    let mut keep: Vec<tempfile::TempDir> = Vec::new();
    // 3. env: user, venv skeleton, workdir. Keyed by the base image (which fixes its
    // /etc/passwd and /etc/group), so a hit reads nothing of the base.
    let (uid, gid, uname) = p.user.clone();
    let env_key = key_of(&[
        "env v2",
        &epoch.to_string(),
        &base_info.manifest_descriptor.digest.to_string(),
        &format!("{uid}:{gid}:{uname:?}"),
        &interp.path,
        &interp.full,
        &p.workdir,
        &p.manifest.app.writable.join("\n"),
    ]);
    let (env_entry, cached) = match cache_get(store, &env_key, req.no_cache) {
        Some(e) => (e, true),
        None => {
            let base_manifest = Manifest::oci(
                Descriptor::new(media::OCI_CONFIG, Digest::of_bytes(b""), 0),
                base_layers.clone(),
            );
            let lowers = snapshot::prepare(store, &base_manifest, &base_info.config)?;
            let passwd = base_file(&lowers, "etc/passwd").unwrap_or_default();
            let group = base_file(&lowers, "etc/group").unwrap_or_default();
            let tmp = tempdir(store, "env")?;
            let root = tmp.path().join("root");
            let e = env_layer(store, &root, &p, &interp, &passwd, &group, epoch)?;
            cache_put(store, &env_key, &e);
            fresh_trees.push((layers.len(), root));
            keep.push(tmp);
            (e, false)
        }
    };
    reports.push(LayerReport {
        kind: "env",
        name: format!(
            "user {}, {VENV} for Python {}",
            uname.as_deref().unwrap_or(&uid.to_string()),
            interp.full
        ),
        digest: env_entry.layer.digest.to_string(),
        size: env_entry.layer.size,
        cached,
    });
    hist.push(history(
        epoch,
        format!("kiln env: user {uid}:{gid}, {VENV} -> {}", interp.path),
    ));
    layers.push(env_entry);

    // 4. Python.
    let mut groups: Vec<(String, Vec<LockedDist>)> = Vec::new();
    let mut rest = Vec::new();
    for d in &lock.python.packages {
        if d.size >= LARGE_WHEEL {
            groups.push((format!("{} {}", d.name, d.version), vec![d.clone()]));
        } else {
            rest.push(d.clone());
        }
    }
    if !rest.is_empty() {
        groups.push((format!("{} packages", rest.len()), rest));
    }
    let mut todo = Vec::new();
    let mut py_entries: Vec<Option<(CacheEntry, bool)>> = Vec::new();
    for (i, (_, dists)) in groups.iter().enumerate() {
        let mut parts = vec![
            "python v2".to_string(),
            interp.version.clone(),
            interp.platform.clone(),
            VENV.to_string(),
        ];
        parts.extend(
            dists
                .iter()
                .map(|d| format!("{} {} {}", d.name, d.version, d.sha256)),
        );
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let key = key_of(&refs);
        match cache_get(store, &key, req.no_cache) {
            Some(e) => py_entries.push(Some((e, true))),
            None => {
                py_entries.push(None);
                todo.push((i, key));
            }
        }
    }
    if !todo.is_empty() {
        let u = get_uv(store, &mut uv, progress)?.clone();
        // Source distributions are built into wheels first, in build containers.
        let sdists: Vec<&LockedDist> = todo
            .iter()
            .flat_map(|(i, _)| groups[*i].1.iter())
            .filter(|d| d.sdist)
            .collect();
        let built = build_sdists(store, &u, &sdists, &base_info, &interp, epoch, &p, progress)?;
        let tmp = tempdir(store, "python")?;
        let jobs = req.jobs.clamp(1, 4);
        let results: std::sync::Mutex<Vec<(usize, Result<CacheEntry>)>> = Default::default();
        let queue = std::sync::Mutex::new(todo.clone());
        std::thread::scope(|s| {
            for _ in 0..jobs.min(todo.len()) {
                s.spawn(|| loop {
                    let Some((i, key)) = queue.lock().expect("queue").pop() else {
                        break;
                    };
                    let (label, dists) = &groups[i];
                    progress.note(&format!("installing {label} with uv"));
                    let root = tmp.path().join(format!("layer-{i}"));
                    let scratch = tmp.path().join(format!("scratch-{i}"));
                    let r = install(&u, dists, &built, &interp, &root, &scratch).and_then(|_| {
                        // Time 0 as for weights: a distribution's layer depends only on
                        // its wheel and the interpreter's X.Y, so every project shares it.
                        let e = write_tree(store, &root, 0, Compression::None)?;
                        cache_put(store, &key, &e);
                        Ok(e)
                    });
                    results.lock().expect("results").push((i, r));
                });
            }
        });
        let first = layers.len();
        for (i, r) in results.into_inner().expect("results") {
            py_entries[i] = Some((r?, false));
            fresh_trees.push((first + i, tmp.path().join(format!("layer-{i}"))));
        }
        keep.push(tmp);
    }
    for ((label, dists), e) in groups.iter().zip(py_entries) {
        let (entry, cached) = e.expect("every group built or cached");
        reports.push(LayerReport {
            kind: "python",
            name: label.clone(),
            digest: entry.layer.digest.to_string(),
            size: entry.layer.size,
            cached,
        });
        let names: Vec<String> = dists
            .iter()
            .map(|d| format!("{}=={}", d.name, d.version))
            .collect();
        let by = if names.len() <= 8 {
            names.join(" ")
        } else {
            format!(
                "{} ... ({} distributions)",
                names[..8].join(" "),
                names.len()
            )
        };
        hist.push(history(epoch, format!("kiln python: uv pip install {by}")));
        layers.push(entry);
    }

    // 5. Code.
    let files = code_files(&p)?;
    if files.is_empty() {
        progress.note("no code files matched [app].files: the image has no code layer");
    } else {
        let placed: Vec<(String, PathBuf, u32, Option<String>)> = files
            .iter()
            .map(|(rel, abs)| {
                use std::os::unix::fs::PermissionsExt;
                let exec = fs::metadata(abs)
                    .map(|m| m.permissions().mode() & 0o100 != 0)
                    .unwrap_or(false);
                (
                    crate::manifest::image_join(&p.workdir, rel),
                    abs.clone(),
                    if exec { 0o755 } else { 0o644 },
                    None,
                )
            })
            .collect();
        let mut workdir_dirs = parents(&format!("{}/x", p.workdir));
        workdir_dirs.retain(|d| !d.is_empty());
        let e = write_placed(store, &placed, &workdir_dirs, epoch, Compression::None)?;
        reports.push(LayerReport {
            kind: "code",
            name: match files.len() {
                1 => format!("1 file -> {}", p.workdir),
                n => format!("{n} files -> {}", p.workdir),
            },
            digest: e.layer.digest.to_string(),
            size: e.layer.size,
            cached: false,
        });
        hist.push(history(
            epoch,
            format!("kiln code: {} files -> {}", files.len(), p.workdir),
        ));
        layers.push(e);
    }

    // Each tree just written is exactly its layer, unpacked: it becomes the layer's
    // snapshot, so the first `kiln run` unpacks nothing of it.
    let diffs: Vec<Digest> = layers.iter().map(|e| e.diff_id.clone()).collect();
    let chains = kiln_store::prune::chain_ids(&diffs);
    for (i, dir) in fresh_trees {
        store.hold(&[Held::Snapshot(chains[i].clone())])?;
        let snap = snapshot::path(store, &chains[i]);
        if !snap.exists() {
            if let Some(parent) = snap.parent() {
                let _ = fs::create_dir_all(parent);
            }
            // Another process may have made it meanwhile: theirs is as good.
            let _ = fs::rename(&dir, &snap);
        }
    }
    drop(keep);
    // Config.
    let config = image_config(
        &p,
        &lock,
        &base_info,
        &interp,
        epoch,
        &layers,
        hist,
        &req.labels,
        &weights_layer,
    );
    let layer_list: Vec<Descriptor> = layers.iter().map(|e| e.layer.clone()).collect();
    let (descriptor, _) = store.write_image(&config, layer_list.clone())?;
    // The layers not unpacked yet (weights, code) are unpacked now: the image is ready to
    // run, and reading its packages (SBOM, `kiln env`) walks snapshots, not blobs.
    let manifest = Manifest::oci(
        Descriptor::new(media::OCI_CONFIG, Digest::of_bytes(b""), 0),
        layer_list,
    );
    snapshot::prepare(store, &manifest, &config)?;
    Ok(BuildOutcome {
        project: p,
        lock,
        lock_changes,
        descriptor: Some(descriptor),
        layers: reports,
    })
}
