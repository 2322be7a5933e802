//! Source distributions: downloaded, checked, and built into wheels in a kiln build
//! container from the base.

use super::base::Interp;
use super::resolve::index_args;
use super::{io, tempdir};
use crate::manifest::Project;
use crate::pylock::LockedDist;
use crate::uv::Uv;
use crate::{Error, Progress, Result};
use kiln_layer::Compression;
use kiln_oci::types::Descriptor;
use kiln_store::{snapshot, Store};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The image a build container starts from (the project's base).
struct BaseImage<'a> {
    store: &'a Store,
    descriptor: Descriptor,
}

impl kiln_build::exec::Images for BaseImage<'_> {
    fn resolve(&self, _name: &str) -> kiln_build::exec::Result<kiln_store::ImageInfo> {
        Ok(self.store.image(&self.descriptor)?)
    }
}

/// Downloads `url` to `dest`, at most `size` bytes (when known), checking its sha256.
fn download_verified(url: &str, sha256: &str, size: u64, dest: &Path) -> Result<()> {
    use crate::fetch::{fetch_verified, FetchError};
    let fail = |e: String| Error::new(format!("cannot download {url}: {e}"));
    let cap = if size > 0 { size } else { 1 << 30 };
    let bytes = fetch_verified(url, sha256, cap, std::time::Duration::from_secs(600)).map_err(
        |e| match e {
            FetchError::Transfer(e) => fail(e),
            FetchError::TooLarge => fail(format!("more than the {cap} bytes the index announced")),
            FetchError::Mismatch(got) => Error::with_hint(
                format!("{url}: sha256 {got}, kiln.lock has {sha256}"),
                "the index serves other bytes than when kiln.lock was written: `kiln lock --upgrade`",
            ),
        },
    )?;
    fs::write(dest, &bytes).map_err(io(dest))
}

/// Builds each source distribution into a wheel in a kiln build container from the base
/// (its interpreter, its libraries): `uv build --wheel`, with the network (the build
/// backend comes from the index) and the host's CA bundle offered, never in a layer.
/// Wheels are cached by the sdist's sha256 and the interpreter. Returns, by name, the
/// built wheel's path and sha256.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_sdists(
    store: &Store,
    uv: &Uv,
    sdists: &[&LockedDist],
    base: &kiln_store::ImageInfo,
    interp: &Interp,
    epoch: i64,
    p: &Project,
    progress: &dyn Progress,
) -> Result<BTreeMap<String, (String, String)>> {
    let mut out = BTreeMap::new();
    for d in sdists {
        let dir = kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Project)
            .join("built")
            .join(format!(
                "{}-{}-{}",
                d.sha256,
                interp.version,
                base.manifest_descriptor.digest.hex()
            ));
        let memo = dir.join("wheel.json");
        if let Some((name, sha)) = fs::read(&memo)
            .ok()
            .and_then(|b| serde_json::from_slice::<(String, String)>(&b).ok())
            .filter(|(name, _)| dir.join(name).is_file())
        {
            out.insert(d.name.clone(), (dir.join(name).display().to_string(), sha));
            continue;
        }
        progress.note(&format!(
            "building {} {} from its source distribution in a kiln build container (uv build --wheel)",
            d.name, d.version
        ));
        let ctx = tempdir(store, "sdist")?;
        let file = d.filename().to_string();
        if file.is_empty() || file.contains(['/', '\\']) || file.starts_with('.') {
            return Err(Error::new(format!(
                "{}: not a file name in {}",
                file, d.url
            )));
        }
        download_verified(&d.url, &d.sha256, d.size, &ctx.path().join(&file))?;
        fs::copy(&uv.bin, ctx.path().join("uv")).map_err(io(&uv.bin))?;
        let mut index = String::new();
        for a in index_args(p, &[]).chunks(2) {
            if let [k, v] = a {
                index.push_str(&format!(" {k} {}", shell_quote(v)));
            }
        }
        let script = format!(
            "set -e; export UV_CACHE_DIR=/tmp/uv-cache UV_PYTHON_DOWNLOADS=never HOME=/tmp; /kiln-ctx/uv build --wheel --no-config --python {python}{index} --out-dir /kiln-out /kiln-ctx/{file}",
            python = interp.path,
            file = shell_quote(&file),
        );
        let dockerfile = format!(
            "FROM kiln-project-base\nRUN --mount=type=bind,target=/kiln-ctx {}\n",
            serde_json::to_string(&["/bin/sh", "-c", &script]).expect("serializes")
        );
        let df = kiln_build::dockerfile::parse(&dockerfile, "kiln project (sdist build)")
            .map_err(|e| Error::new(e.to_string()))?;
        let host_ca = std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .or_else(|| {
                Some(PathBuf::from("/etc/ssl/certs/ca-certificates.crt")).filter(|p| p.is_file())
            });
        let opts = kiln_build::exec::BuildOptions {
            context: ctx.path().to_path_buf(),
            dockerfile_name: "Dockerfile".into(),
            build_args: BTreeMap::new(),
            target: None,
            no_cache: false,
            network: kiln_build::exec::RunNetwork::Private,
            labels: BTreeMap::new(),
            secrets: BTreeMap::new(),
            source_date_epoch: epoch,
            platform: kiln_oci::Platform::host(),
            host_ca,
            stage_index: None,
            fresh_keys: Default::default(),
            compression: Compression::None,
        };
        let images = BaseImage {
            store,
            descriptor: base.descriptor.clone(),
        };
        let builder =
            kiln_build::exec::Builder::new(store, &images, progress, &opts, "kiln project".into())
                .map_err(|e| Error::new(e.to_string()))?;
        let result = builder.build(&df).map_err(|e| {
            Error::with_hint(
                format!("cannot build {} {} from its source distribution: {e}", d.name, d.version),
                "a source distribution that needs a compiler needs it in the base: add it to [base] packages (e.g. build-essential), or use a version with a wheel",
            )
        })?;
        let info = store.image(&result.descriptor)?;
        let dirs = snapshot::prepare(store, &info.manifest, &info.config)?;
        let out_dir = dirs.last().expect("a layer").join("kiln-out");
        let wheel = fs::read_dir(&out_dir)
            .map_err(io(&out_dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(".whl"))
            .ok_or_else(|| {
                Error::new(format!(
                    "uv build left no wheel of {} in {}",
                    d.name,
                    out_dir.display()
                ))
            })?;
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let bytes = fs::read(out_dir.join(&wheel)).map_err(io(&out_dir))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        fs::write(dir.join(&wheel), &bytes).map_err(io(&dir))?;
        store.write_atomic(
            &memo,
            &serde_json::to_vec(&(&wheel, &sha)).expect("serializes"),
        )?;
        out.insert(
            d.name.clone(),
            (dir.join(&wheel).display().to_string(), sha),
        );
    }
    Ok(out)
}

/// A word for /bin/sh, single-quoted.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
