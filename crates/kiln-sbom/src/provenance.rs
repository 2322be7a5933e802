//! SLSA provenance v1 of a kiln build, as an in-toto Statement v1.
//!
//! What it records: the image (subject: the manifest digest), the build's inputs (the
//! Dockerfile's digest; the context's git commit, and a digest of the context's files
//! when it is not a clean git checkout; the base images named by `FROM` with the digests
//! they resolved to in the store), the build arguments and the *ids* of the secrets
//! (never a secret's value: this module is never given one), the target and platform,
//! and the builder (`https://kiln.invalid/kiln@VERSION`). No wall-clock time and no
//! build-host path: the times are the image's `created`, paths are relative to the
//! context, so the same build gives the same bytes.

use crate::error::{Result, SbomError};
use kiln_store::Store;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The build type of a Dockerfile build by kiln.
pub const BUILD_TYPE_DOCKERFILE: &str = "https://kiln.invalid/build/dockerfile@v1";
/// The buildType of a kiln project build (kiln.toml + kiln.lock).
pub const BUILD_TYPE_PROJECT: &str = "https://kiln.invalid/build/project@v1";

/// The builder id: `https://kiln.invalid/kiln@VERSION`.
pub fn builder_id() -> String {
    format!("https://kiln.invalid/kiln@{}", env!("CARGO_PKG_VERSION"))
}

/// What a Dockerfile build was given.
#[derive(Clone, Debug, Default)]
pub struct BuildInputs {
    /// The image's first name (`app:v1`), if it was given one.
    pub name: Option<String>,
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile.
    pub dockerfile: PathBuf,
    /// `--build-arg`s, with their values.
    pub build_args: BTreeMap<String, String>,
    /// The ids of `--secret`s (their values are never given to this module).
    pub secret_ids: Vec<String>,
    /// `--target`.
    pub target: Option<String>,
    /// Attach the provenance statement too (the SBOM always).
    pub provenance: bool,
    /// A kiln project build: its kiln.lock (then `dockerfile` is its kiln.toml) and its
    /// base image, as `reference@digest`.
    pub project: Option<ProjectInputs>,
}

/// What a kiln project build adds to the provenance.
#[derive(Clone, Debug)]
pub struct ProjectInputs {
    /// The project's kiln.lock on the host; its sha256 is recorded as a dependency.
    pub lock: PathBuf,
    /// The base image the project was built on, as `reference@digest`.
    pub base: String,
}

/// One resolved dependency (SLSA's ResourceDescriptor).
fn dep(uri: &str, name: Option<&str>, digest: BTreeMap<&str, String>) -> Value {
    let mut v = json!({ "uri": uri, "digest": digest });
    if let Some(n) = name {
        v["name"] = Value::String(n.to_string());
    }
    v
}

fn git(context: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(context)
        .args(args)
        .stderr(std::process::Stdio::null())
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A remote URL without credentials (`https://user:token@host/x` -> `https://host/x`).
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            if path.is_empty() {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => url.to_string(),
    }
}

/// sha256 over the context's files: for each entry, in byte order of its path relative
/// to the context, `path\0type\0mode\0content-sha256-or-link-target\n`.
pub fn context_digest(context: &Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    let mut stack = vec![context.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(SbomError::io(&dir))? {
            let e = e.map_err(SbomError::io(&dir))?;
            let p = e.path();
            let rel = p.strip_prefix(context).unwrap_or(&p);
            entries.push((rel.as_os_str().as_encoded_bytes().to_vec(), p.clone()));
            if e.file_type().map_err(SbomError::io(&p))?.is_dir() {
                stack.push(p);
            }
        }
    }
    entries.sort();
    let mut h = Sha256::new();
    for (rel, p) in entries {
        let meta = std::fs::symlink_metadata(&p).map_err(SbomError::io(&p))?;
        let mode = meta.permissions().mode() & 0o7777;
        let (kind, content) = if meta.is_symlink() {
            let t = std::fs::read_link(&p).map_err(SbomError::io(&p))?;
            ("l", t.as_os_str().as_encoded_bytes().to_vec())
        } else if meta.is_dir() {
            ("d", Vec::new())
        } else if meta.is_file() {
            let mut f = std::fs::File::open(&p).map_err(SbomError::io(&p))?;
            let mut fh = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = f.read(&mut buf).map_err(SbomError::io(&p))?;
                if n == 0 {
                    break;
                }
                fh.update(&buf[..n]);
            }
            ("f", hex::encode(fh.finalize()).into_bytes())
        } else {
            ("o", Vec::new())
        };
        h.update(&rel);
        h.update(format!("\0{kind}\0{mode:o}\0").as_bytes());
        h.update(&content);
        h.update(b"\n");
    }
    Ok(hex::encode(h.finalize()))
}

/// Expands `$X`, `${X}` and `${X:-default}` from `vars` (enough for FROM lines).
fn expand(word: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(inner) = after.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                out.push_str(&rest[i..]);
                return out;
            };
            let body = &inner[..end];
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            match vars.get(name).filter(|v| !v.is_empty()) {
                Some(v) => out.push_str(v),
                None => out.push_str(default.unwrap_or("")),
            }
            rest = &inner[end + 1..];
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            out.push_str(vars.get(&after[..n]).map_or("", String::as_str));
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    out
}

/// The images a Dockerfile's `FROM` lines name (after expanding the global `ARG`s and
/// the build arguments), skipping `scratch` and earlier stages, in order, deduplicated.
pub fn base_images(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for l in dockerfile.lines() {
        let t = l.trim();
        if cur.is_empty() && (t.starts_with('#') || t.is_empty()) {
            continue;
        }
        if let Some(s) = t.strip_suffix('\\') {
            cur.push_str(s);
            cur.push(' ');
        } else {
            cur.push_str(t);
            lines.push(std::mem::take(&mut cur));
        }
    }
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    let mut seen_from = false;
    for l in lines {
        let mut words = l.split_whitespace();
        let Some(kw) = words.next() else { continue };
        if kw.eq_ignore_ascii_case("ARG") && !seen_from {
            for w in words {
                let (k, v) = w.split_once('=').unwrap_or((w, ""));
                let v = v.trim_matches('"');
                let val = build_args.get(k).cloned().unwrap_or_else(|| v.to_string());
                vars.insert(k.to_string(), val);
            }
        } else if kw.eq_ignore_ascii_case("FROM") {
            seen_from = true;
            let rest: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
            let Some(image) = rest.first() else { continue };
            let image = expand(image, &vars);
            if let (Some(a), Some(n)) = (rest.get(1), rest.get(2)) {
                if a.eq_ignore_ascii_case("AS") {
                    stages.push(n.to_ascii_lowercase());
                }
            }
            let is_stage = stages[..stages.len().saturating_sub(usize::from(
                rest.get(1).is_some_and(|a| a.eq_ignore_ascii_case("AS")),
            ))]
                .contains(&image.to_ascii_lowercase());
            if image.eq_ignore_ascii_case("scratch") || is_stage || out.contains(&image) {
                continue;
            }
            out.push(image);
        }
    }
    out
}

/// The provenance statement of `image` (the manifest digest `subject`) built from
/// `inputs`; `created` is the image's creation time, `platform` its `os/arch`.
pub fn statement(
    store: &Store,
    subject: &kiln_oci::Digest,
    created: &str,
    platform: &str,
    inputs: &BuildInputs,
) -> Result<Vec<u8>> {
    let text = std::fs::read(&inputs.dockerfile).map_err(SbomError::io(&inputs.dockerfile))?;
    let mut deps = Vec::new();
    let dockerfile_name = inputs
        .dockerfile
        .strip_prefix(&inputs.context)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| {
            inputs
                .dockerfile
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    deps.push(dep(
        "dockerfile",
        Some(&dockerfile_name),
        [("sha256", hex::encode(Sha256::digest(&text)))].into(),
    ));
    let commit = git(&inputs.context, &["rev-parse", "--verify", "HEAD"]);
    let clean = commit.is_some()
        && git(&inputs.context, &["status", "--porcelain"]).is_some_and(|s| s.is_empty());
    if let Some(c) = &commit {
        let remote = git(&inputs.context, &["remote", "get-url", "origin"])
            .map(|u| format!("git+{}", without_userinfo(&u)))
            .unwrap_or_else(|| "git".into());
        deps.push(dep(
            &remote,
            Some("context"),
            [("gitCommit", c.clone())].into(),
        ));
    }
    if !clean {
        deps.push(dep(
            "context",
            Some("context"),
            [("sha256", context_digest(&inputs.context)?)].into(),
        ));
    }
    if let Some(p) = &inputs.project {
        let lock = std::fs::read(&p.lock).map_err(SbomError::io(&p.lock))?;
        deps.push(dep(
            "kiln.lock",
            Some("kiln.lock"),
            [("sha256", hex::encode(Sha256::digest(&lock)))].into(),
        ));
        let (name, digest) = p.base.rsplit_once('@').unwrap_or((&p.base, ""));
        let mut d = BTreeMap::new();
        if let Some((alg, hex)) = digest.split_once(':') {
            d.insert(alg, hex.to_string());
        }
        deps.push(dep(&format!("pkg:docker/{name}"), Some(name), d));
    }
    let text = String::from_utf8_lossy(&text);
    let bases = if inputs.project.is_some() {
        Vec::new()
    } else {
        base_images(&text, &inputs.build_args)
    };
    for base in bases {
        let mut digest = BTreeMap::new();
        if let Ok(r) = store.resolve(&base) {
            digest.insert(
                r.descriptor.digest.algorithm(),
                r.descriptor.digest.hex().to_string(),
            );
        }
        deps.push(dep(&format!("pkg:docker/{base}"), Some(&base), digest));
    }
    let mut secrets = inputs.secret_ids.clone();
    secrets.sort();
    secrets.dedup();
    let mut external = json!({
        "frontend": if inputs.project.is_some() { "kiln-project" } else { "dockerfile" },
        "dockerfile": dockerfile_name,
        "args": inputs.build_args,
        "secrets": secrets,
    });
    if let Some(t) = &inputs.target {
        external["target"] = Value::String(t.clone());
    }
    let doc = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": inputs.name.clone().unwrap_or_else(|| subject.to_string()),
            "digest": BTreeMap::from([(subject.algorithm(), subject.hex())]),
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": if inputs.project.is_some() { BUILD_TYPE_PROJECT } else { BUILD_TYPE_DOCKERFILE },
                "externalParameters": external,
                "internalParameters": { "platform": platform },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {
                    "id": builder_id(),
                    "version": { "kiln": env!("CARGO_PKG_VERSION") },
                },
                "metadata": { "startedOn": created, "finishedOn": created },
            },
        },
    });
    let mut out = serde_json::to_vec_pretty(&doc).expect("JSON values serialize");
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lines_name_base_images() {
        let args: BTreeMap<String, String> = [("V".to_string(), "12".to_string())].into();
        let df = "# c\nARG V=11\nARG R=debian\nFROM --platform=$BUILDPLATFORM ${R}:${V} AS build\nRUN x\nFROM build\nFROM \\\n  busybox:1 AS b2\nFROM scratch\nCOPY --from=b2 / /\n";
        assert_eq!(base_images(df, &args), vec!["debian:12", "busybox:1"]);
    }

    #[test]
    fn credentials_leave_remote_urls() {
        assert_eq!(
            without_userinfo("https://u:tok@example.com/a/b.git"),
            "https://example.com/a/b.git"
        );
        assert_eq!(
            without_userinfo("git@example.com:a/b"),
            "git@example.com:a/b"
        );
    }

    #[test]
    fn context_digest_follows_content() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), b"1").unwrap();
        let one = context_digest(d.path()).unwrap();
        assert_eq!(one, context_digest(d.path()).unwrap());
        std::fs::write(d.path().join("a"), b"2").unwrap();
        assert_ne!(one, context_digest(d.path()).unwrap());
    }
}
