//! The [`Environment`] of an image: its model (stable JSON, documented in `docs/env.md`)
//! and its assembly from the files the layer reader found.

use crate::reader::{interpreter_version, Files};
use crate::{apk, conda, dpkg, license, python};
use kiln_oci::types::ImageConfig;
use serde::Serialize;
use std::collections::BTreeMap;

/// The schema name of the JSON document; bumped on incompatible changes.
pub const SCHEMA: &str = "kiln.env/v1";

/// Everything kiln found about an image's environment.
#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// Which image was read: name, digests, creation time and platform.
    pub image: ImageSummary,
    /// From `/etc/os-release`; `null` when the image has none.
    pub distribution: Option<OsRelease>,
    /// How its containers start (entrypoint, cmd, env, user...), from the image config.
    pub config: RunConfig,
    /// Python interpreters (`bin/python3.X` files), by path.
    pub python: Vec<Interpreter>,
    /// dpkg and apk packages, by name.
    pub os_packages: Vec<OsPackage>,
    /// Python distributions (dist-info and egg-info), by normalized name.
    pub python_packages: Vec<PythonPackage>,
    /// conda packages (`conda-meta/*.json`), by name.
    pub conda_packages: Vec<CondaPackage>,
    /// CUDA, cuDNN and NCCL versions found in packages or the config.
    pub accelerators: Vec<Accelerator>,
    /// Weights files the image declares (a kiln project's `[weights]`): path, size,
    /// sha256 and the layer holding each.
    pub weights: Vec<WeightsFile>,
    /// A kiln project's own description (the `dev.kiln.project` label): name, version,
    /// ports, resources, healthcheck, the kiln.lock digest, the Python environment, and
    /// the git revision; `null` for other images.
    pub project: Option<serde_json::Value>,
    /// What kiln could not find or had to guess.
    pub notes: Vec<String>,
}

/// One weights file.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct WeightsFile {
    /// The weights entry's name.
    pub name: String,
    /// Absolute path in the image.
    pub path: String,
    /// Size of the file in bytes.
    pub size: u64,
    /// SHA-256 of the file's content, lowercase hex.
    pub sha256: String,
    /// Digest of the layer that holds it.
    pub layer: Option<String>,
}

/// The label a kiln project image describes itself with.
pub const PROJECT_LABEL: &str = kiln_oci::media::LABEL_KILN_PROJECT;

/// The project description and its weights files, from the label.
fn project_of(
    labels: &std::collections::BTreeMap<String, String>,
) -> (Option<serde_json::Value>, Vec<WeightsFile>) {
    let Some(mut v) = labels
        .get(PROJECT_LABEL)
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .filter(|v| v.is_object())
    else {
        return (None, Vec::new());
    };
    let mut weights = Vec::new();
    for w in v["weights"].as_array().cloned().unwrap_or_default() {
        let name = w["name"].as_str().unwrap_or_default().to_string();
        for f in w["files"].as_array().cloned().unwrap_or_default() {
            if let (Some(path), Some(size), Some(sha)) =
                (f["path"].as_str(), f["size"].as_u64(), f["sha256"].as_str())
            {
                weights.push(WeightsFile {
                    name: name.clone(),
                    path: path.to_string(),
                    size,
                    sha256: sha.to_string(),
                    layer: f["layer"].as_str().map(str::to_string),
                });
            }
        }
    }
    if let Some(r) = labels.get("org.opencontainers.image.revision") {
        v["revision"] = serde_json::Value::String(r.clone());
    }
    (Some(v), weights)
}

/// Which image this is.
#[derive(Clone, Debug, Serialize)]
pub struct ImageSummary {
    /// The name it was asked for by, if a name.
    pub name: Option<String>,
    /// The manifest digest.
    pub digest: String,
    /// The config digest (Docker's image ID).
    pub id: String,
    /// The config's creation time (RFC 3339), when it records one.
    pub created: Option<String>,
    /// The config's operating system, e.g. `linux`.
    pub os: String,
    /// The config's CPU architecture in Go's spelling, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// The CPU variant, e.g. `v8` for arm64, when the config gives one.
    pub variant: Option<String>,
}

/// The distribution, from os-release.
#[derive(Clone, Debug, Serialize)]
pub struct OsRelease {
    /// `ID`: `debian`, `ubuntu`, `alpine`...
    pub id: String,
    /// `VERSION_ID`: `12`, `22.04`, `3.20.1`...; absent on rolling releases.
    pub version_id: Option<String>,
    /// `VERSION_CODENAME`: `bookworm`, `jammy`...
    pub version_codename: Option<String>,
    /// `PRETTY_NAME`, for people: `Debian GNU/Linux 12 (bookworm)`.
    pub pretty_name: Option<String>,
}

/// How containers of the image start, from its config.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunConfig {
    /// The entrypoint's argv; empty when the image sets none.
    pub entrypoint: Vec<String>,
    /// The default command (or the arguments given to the entrypoint); empty when unset.
    pub cmd: Vec<String>,
    /// The directory processes start in; empty when unset (then `/`).
    pub working_dir: String,
    /// `USER` as the config gives it (`name`, `uid`, `uid:gid`...); empty means root.
    pub user: String,
    /// `NAME=value`, in the config's order.
    pub env: Vec<String>,
    /// `8000/tcp`..., sorted.
    pub exposed_ports: Vec<String>,
    /// The image's labels, by key.
    pub labels: BTreeMap<String, String>,
}

/// A Python interpreter.
#[derive(Clone, Debug, Serialize)]
pub struct Interpreter {
    /// Absolute path in the image.
    pub path: String,
    /// The full version when a package or the config says it, else `X.Y`.
    pub version: String,
}

/// An OS package.
#[derive(Clone, Debug, Serialize)]
pub struct OsPackage {
    /// `dpkg` or `apk`.
    pub manager: &'static str,
    /// The binary package name, e.g. `libc6` or `musl`.
    pub name: String,
    /// The full version as the package manager records it (Debian's epoch and revision,
    /// apk's `-rN` included).
    pub version: String,
    /// The package's architecture (`amd64`, `all`, `x86_64`...); empty when unrecorded.
    pub architecture: String,
    /// The source package (dpkg's `Source`, apk's origin), when known.
    pub source: Option<String>,
    /// The source version, when it differs from `version`.
    pub source_version: Option<String>,
    /// License names as declared (Debian copyright `License:` lines, apk `L:`).
    pub licenses: Vec<String>,
    /// SPDX license expression, when known.
    pub license: Option<String>,
    /// Package URL, e.g. `pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12`.
    pub purl: String,
}

/// A Python distribution.
#[derive(Clone, Debug, Serialize)]
pub struct PythonPackage {
    /// As its metadata spells it.
    pub name: String,
    /// The version from its metadata, as written.
    pub version: String,
    /// The `INSTALLER` file's content (`pip`, `uv`, `conda`...), when present.
    pub installer: Option<String>,
    /// The site directory holding it (`/usr/local/lib/python3.11/dist-packages`).
    pub location: String,
    /// `dist-info` or `egg-info`.
    pub metadata: &'static str,
    /// License names as declared (`License-Expression:`, `License:` or the license
    /// classifiers).
    pub licenses: Vec<String>,
    /// SPDX license expression derived from the declared names, when known.
    pub license: Option<String>,
    /// Package URL with the PEP 503 normalized name, e.g. `pkg:pypi/flask-login@0.6.3`.
    pub purl: String,
}

/// A conda package.
#[derive(Clone, Debug, Serialize)]
pub struct CondaPackage {
    /// The conda package name, e.g. `python`.
    pub name: String,
    /// The upstream version, e.g. `3.11.5`.
    pub version: String,
    /// The build string, e.g. `h955ad1f_1`.
    pub build: Option<String>,
    /// The channel's name, the last part of its URL (`main`, `conda-forge`...).
    pub channel: Option<String>,
    /// The channel's platform directory, e.g. `linux-64` or `noarch`.
    pub subdir: Option<String>,
    /// The environment's prefix (`/opt/conda`).
    pub location: String,
    /// The license as the record declares it (none when empty).
    pub licenses: Vec<String>,
    /// SPDX license expression derived from the declared license, when known.
    pub license: Option<String>,
    /// SHA-256 of the package archive, lowercase hex.
    pub sha256: Option<String>,
    /// MD5 of the package archive, lowercase hex.
    pub md5: Option<String>,
    /// Package URL with build, channel and subdir as qualifiers, e.g.
    /// `pkg:conda/python@3.11.5?build=h955ad1f_1&channel=main&subdir=linux-64`.
    pub purl: String,
}

/// One package of an [`Environment`], of any kind (for the SBOM writers).
#[derive(Clone, Copy)]
pub(crate) enum AnyPackage<'a> {
    Os(&'a OsPackage),
    Python(&'a PythonPackage),
    Conda(&'a CondaPackage),
}

/// The fields every kind of package has.
pub(crate) struct PackageId<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub purl: &'a str,
    pub licenses: &'a [String],
    pub license: Option<&'a str>,
}

impl<'a> AnyPackage<'a> {
    /// Its name, version, purl and licenses.
    pub(crate) fn id(self) -> PackageId<'a> {
        let (name, version, purl, licenses, license) = match self {
            AnyPackage::Os(p) => (&p.name, &p.version, &p.purl, &p.licenses, &p.license),
            AnyPackage::Python(p) => (&p.name, &p.version, &p.purl, &p.licenses, &p.license),
            AnyPackage::Conda(p) => (&p.name, &p.version, &p.purl, &p.licenses, &p.license),
        };
        PackageId {
            name,
            version,
            purl,
            licenses,
            license: license.as_deref(),
        }
    }
}

impl Environment {
    /// Every package: the OS packages, then the Python distributions, then the conda
    /// packages, each in its list's order.
    pub(crate) fn packages(&self) -> impl Iterator<Item = AnyPackage<'_>> {
        let os = self.os_packages.iter().map(AnyPackage::Os);
        let python = self.python_packages.iter().map(AnyPackage::Python);
        let conda = self.conda_packages.iter().map(AnyPackage::Conda);
        os.chain(python).chain(conda)
    }
}

/// A GPU library version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Accelerator {
    /// `cuda`, `cudnn` or `nccl`.
    pub name: &'static str,
    /// The library's upstream version (a Debian version without epoch or revision).
    pub version: String,
    /// Where it was read: `python nvidia-cudnn-cu12`, `dpkg libcudnn8`, `env CUDA_VERSION`.
    pub from: String,
}

/// Percent-encodes a purl component (everything but unreserved characters).
pub(crate) fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn os_release(text: &str) -> Option<OsRelease> {
    let mut kv = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
            kv.insert(k.trim().to_string(), v);
        }
    }
    Some(OsRelease {
        id: kv.remove("ID")?,
        version_id: kv.remove("VERSION_ID"),
        version_codename: kv.remove("VERSION_CODENAME"),
        pretty_name: kv.remove("PRETTY_NAME"),
    })
}

/// Debian's upstream part of a version: no epoch, no revision.
fn upstream(version: &str) -> &str {
    let v = version.split_once(':').map_or(version, |(_, v)| v);
    v.rsplit_once('-').map_or(v, |(u, _)| u)
}

fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// Assembles the environment from the files found and the image's config.
pub fn assemble(files: &Files, image: ImageSummary, config: &ImageConfig) -> Environment {
    let mut notes = Vec::new();
    let distribution = files
        .content("etc/os-release")
        .or_else(|| files.content("usr/lib/os-release"))
        .and_then(|b| os_release(&String::from_utf8_lossy(b)));
    let distro_q = distribution.as_ref().and_then(|d| {
        d.version_id
            .as_ref()
            .or(d.version_codename.as_ref())
            .map(|v| format!("{}-{}", d.id, v))
    });
    let cc = config.config.clone().unwrap_or_default();
    let run = RunConfig {
        entrypoint: cc.entrypoint.unwrap_or_default(),
        cmd: cc.cmd.unwrap_or_default(),
        working_dir: cc.working_dir.unwrap_or_default(),
        user: cc.user.unwrap_or_default(),
        env: cc.env.unwrap_or_default(),
        exposed_ports: cc.exposed_ports.unwrap_or_default().into_keys().collect(),
        labels: cc.labels.unwrap_or_default(),
    };
    let env_var = |k: &str| {
        run.env
            .iter()
            .find_map(|e| e.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
            .map(str::to_string)
    };

    // OS packages.
    let mut os_packages = Vec::new();
    let mut have_db = false;
    let mut debs: Vec<dpkg::DebPackage> = Vec::new();
    for (path, _) in files.map.range("var/lib/dpkg/".to_string()..) {
        if !path.starts_with("var/lib/dpkg/") {
            break;
        }
        if let Some(b) = files.content(path) {
            have_db = true;
            debs.extend(dpkg::parse_status(&String::from_utf8_lossy(b)));
        }
    }
    let deb_ns = distribution
        .as_ref()
        .map_or("debian".to_string(), |d| d.id.to_ascii_lowercase());
    for d in debs {
        let names = files
            .copyright(&d.name)
            .map(|b| license::debian_copyright(&String::from_utf8_lossy(&b)))
            .unwrap_or_default();
        let expr = license::and_all(
            names
                .iter()
                .map(|n| license::debian_expression(n))
                .collect(),
        );
        let mut q = vec![format!("arch={}", pct(&d.architecture))];
        if let Some(dq) = &distro_q {
            q.push(format!("distro={}", pct(dq)));
        }
        let purl = format!(
            "pkg:deb/{deb_ns}/{}@{}?{}",
            pct(&d.name),
            pct(&d.version),
            q.join("&")
        );
        let source_version = d.source_version.filter(|v| *v != d.version);
        os_packages.push(OsPackage {
            manager: "dpkg",
            name: d.name,
            version: d.version,
            architecture: d.architecture,
            source: d.source,
            source_version,
            licenses: names,
            license: expr,
            purl,
        });
    }
    if let Some(b) = files.content("lib/apk/db/installed") {
        have_db = true;
        let ns = distribution
            .as_ref()
            .map_or("alpine".to_string(), |d| d.id.to_ascii_lowercase());
        for p in apk::parse_installed(&String::from_utf8_lossy(b)) {
            let mut q = vec![format!("arch={}", pct(&p.architecture))];
            if let Some(dq) = &distro_q {
                q.push(format!("distro={}", pct(dq)));
            }
            let purl = format!(
                "pkg:apk/{ns}/{}@{}?{}",
                pct(&p.name),
                pct(&p.version),
                q.join("&")
            );
            let license = p.license.as_deref().map(license::expression_of);
            os_packages.push(OsPackage {
                manager: "apk",
                name: p.name,
                version: p.version,
                architecture: p.architecture,
                source: p.origin,
                source_version: None,
                licenses: p.license.into_iter().collect(),
                license,
                purl,
            });
        }
    }
    os_packages.sort_by(|a, b| {
        (a.manager, &a.name, &a.architecture, &a.version).cmp(&(
            b.manager,
            &b.name,
            &b.architecture,
            &b.version,
        ))
    });

    // Python distributions and conda packages.
    let mut python_packages = Vec::new();
    let mut conda_packages = Vec::new();
    let mut interpreters = Vec::new();
    for (path, node) in &files.map {
        let dir = parent_dir(path);
        let name = path.rsplit('/').next().unwrap_or(path);
        if dir.ends_with(".dist-info") && name == "METADATA"
            || dir.ends_with(".egg-info") && name == "PKG-INFO"
            || name.ends_with(".egg-info") && matches!(node, crate::reader::Node::File(_))
        {
            let Some(meta) = files.content(path) else {
                continue;
            };
            let Some(dist) = python::parse_metadata(&String::from_utf8_lossy(meta)) else {
                continue;
            };
            let (site, kind) = if name.ends_with(".egg-info") {
                (dir, "egg-info")
            } else if dir.ends_with(".egg-info") {
                (parent_dir(dir), "egg-info")
            } else {
                (parent_dir(dir), "dist-info")
            };
            let installer = if kind == "dist-info" {
                files
                    .content(&format!("{dir}/INSTALLER"))
                    .map(|b| String::from_utf8_lossy(b).trim().to_string())
                    .filter(|s| !s.is_empty())
            } else {
                None
            };
            let purl = format!(
                "pkg:pypi/{}@{}",
                pct(&python::normalize(&dist.name)),
                pct(&dist.version)
            );
            python_packages.push(PythonPackage {
                name: dist.name,
                version: dist.version,
                installer,
                location: format!("/{site}"),
                metadata: kind,
                licenses: dist.licenses,
                license: dist.license,
                purl,
            });
        } else if dir.ends_with("conda-meta") && name.ends_with(".json") {
            let Some(r) = files.content(path).and_then(conda::parse_record) else {
                continue;
            };
            let channel = r.channel.as_deref().map(|c| {
                let c = c.trim_end_matches('/');
                let c = r
                    .subdir
                    .as_deref()
                    .and_then(|s| c.strip_suffix(s))
                    .unwrap_or(c);
                c.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or(c)
                    .to_string()
            });
            let mut q = Vec::new();
            for (k, v) in [
                ("build", &r.build),
                ("channel", &channel),
                ("subdir", &r.subdir),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", pct(v)));
                }
            }
            let purl = format!(
                "pkg:conda/{}@{}{}{}",
                pct(&r.name),
                pct(&r.version),
                if q.is_empty() { "" } else { "?" },
                q.join("&")
            );
            let license = r
                .license
                .as_deref()
                .filter(|l| !l.is_empty())
                .map(license::expression_of);
            conda_packages.push(CondaPackage {
                name: r.name,
                version: r.version,
                build: r.build,
                channel,
                subdir: r.subdir,
                location: format!("/{}", parent_dir(dir)),
                licenses: r.license.into_iter().filter(|l| !l.is_empty()).collect(),
                license,
                sha256: r.sha256,
                md5: r.md5,
                purl,
            });
        } else if dir.ends_with("bin") && matches!(node, crate::reader::Node::File(_)) {
            if let Some(v) = interpreter_version(name) {
                interpreters.push((path.clone(), v.to_string()));
            }
        }
    }
    python_packages.sort_by(|a, b| {
        (python::normalize(&a.name), &a.version, &a.location).cmp(&(
            python::normalize(&b.name),
            &b.version,
            &b.location,
        ))
    });
    conda_packages.sort_by(|a, b| {
        (&a.name, &a.version, &a.location).cmp(&(&b.name, &b.version, &b.location))
    });

    // Interpreter versions: the package that installed it, else the official images' env.
    let python = interpreters
        .into_iter()
        .map(|(path, short)| {
            let prefix = parent_dir(parent_dir(&path));
            let from_pkg = os_packages
                .iter()
                .find(|p| {
                    (p.manager == "dpkg"
                        && (p.name == format!("python{short}-minimal")
                            || p.name == format!("python{short}")))
                        || (p.manager == "apk" && p.name == "python3")
                })
                .filter(|_| prefix == "usr")
                .map(|p| upstream(&p.version).to_string());
            let from_conda = conda_packages
                .iter()
                .find(|c| c.name == "python" && c.location == format!("/{prefix}"))
                .map(|c| c.version.clone());
            let from_env = env_var("PYTHON_VERSION").filter(|_| prefix == "usr/local");
            let version = from_pkg
                .or(from_conda)
                .or(from_env)
                .filter(|v| v == &short || v.starts_with(&format!("{short}.")))
                .unwrap_or(short);
            Interpreter {
                path: format!("/{path}"),
                version,
            }
        })
        .collect();

    let accelerators = accelerators(
        &os_packages,
        &python_packages,
        &conda_packages,
        env_var("CUDA_VERSION"),
    );

    if !have_db {
        notes.push("no OS package database (dpkg status, apk installed) in the image".to_string());
    }
    if distribution.is_none() {
        notes.push(
            "no os-release file (etc/os-release, usr/lib/os-release) in the image".to_string(),
        );
    }
    let (project, weights) = project_of(&run.labels);
    Environment {
        schema: SCHEMA,
        image,
        distribution,
        weights,
        project,
        config: run,
        python,
        os_packages,
        python_packages,
        conda_packages,
        accelerators,
        notes,
    }
}

fn accelerators(
    os: &[OsPackage],
    py: &[PythonPackage],
    conda: &[CondaPackage],
    cuda_env: Option<String>,
) -> Vec<Accelerator> {
    let mut out = Vec::new();
    for p in py {
        let n = python::normalize(&p.name);
        let name = if n.starts_with("nvidia-cuda-runtime-cu") {
            "cuda"
        } else if n.starts_with("nvidia-cudnn-cu") {
            "cudnn"
        } else if n.starts_with("nvidia-nccl-cu") {
            "nccl"
        } else {
            continue;
        };
        out.push(Accelerator {
            name,
            version: p.version.clone(),
            from: format!("python {n}"),
        });
    }
    for p in os.iter().filter(|p| p.manager == "dpkg") {
        let name = if p.name.starts_with("cuda-cudart-") && !p.name.contains("-dev") {
            "cuda"
        } else if p.name.starts_with("libcudnn")
            && !p.name.contains("-dev")
            && !p.name.contains("-samples")
        {
            "cudnn"
        } else if p.name == "libnccl2" {
            "nccl"
        } else {
            continue;
        };
        out.push(Accelerator {
            name,
            version: upstream(&p.version).to_string(),
            from: format!("dpkg {}", p.name),
        });
    }
    for c in conda {
        let name = match c.name.as_str() {
            "cuda-cudart" | "cudatoolkit" => "cuda",
            "cudnn" => "cudnn",
            "nccl" => "nccl",
            _ => continue,
        };
        out.push(Accelerator {
            name,
            version: c.version.clone(),
            from: format!("conda {}", c.name),
        });
    }
    if let Some(v) = cuda_env {
        if !out.iter().any(|a| a.name == "cuda") {
            out.push(Accelerator {
                name: "cuda",
                version: v,
                from: "env CUDA_VERSION".into(),
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purl_encoding_and_versions() {
        assert_eq!(pct("1:2.3+dfsg-1"), "1%3A2.3%2Bdfsg-1");
        assert_eq!(upstream("1:8.9.0.131-1+cuda12.1"), "8.9.0.131");
        assert_eq!(upstream("3.11.2-6+deb12u2"), "3.11.2");
        let r = os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        )
        .unwrap();
        assert_eq!(r.id, "debian");
        assert_eq!(r.version_id.as_deref(), Some("12"));
    }

    #[test]
    fn accelerator_versions() {
        let py = |n: &str, v: &str| PythonPackage {
            name: n.into(),
            version: v.into(),
            installer: None,
            location: "/x".into(),
            metadata: "dist-info",
            licenses: vec![],
            license: None,
            purl: String::new(),
        };
        let os = |n: &str, v: &str| OsPackage {
            manager: "dpkg",
            name: n.into(),
            version: v.into(),
            architecture: "amd64".into(),
            source: None,
            source_version: None,
            licenses: vec![],
            license: None,
            purl: String::new(),
        };
        let a = accelerators(
            &[
                os("libcudnn8", "8.9.0.131-1+cuda12.1"),
                os("libnccl2", "2.18.3-1+cuda12.1"),
                os("cuda-cudart-12-1", "12.1.105-1"),
            ],
            &[py("nvidia_cudnn_cu12", "8.9.2.26"), py("six", "1.16.0")],
            &[],
            Some("12.1.1".into()),
        );
        let got: Vec<(&str, &str)> = a.iter().map(|a| (a.name, a.version.as_str())).collect();
        assert_eq!(
            got,
            [
                ("cuda", "12.1.105"),
                ("cudnn", "8.9.0.131"),
                ("cudnn", "8.9.2.26"),
                ("nccl", "2.18.3")
            ]
        );
    }
}
