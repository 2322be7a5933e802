//! Credentials, read from and written to the files Docker and Podman use:
//! `~/.docker/config.json` (`auths`, `credsStore`, `credHelpers`) and Podman's
//! `auth.json` (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.config/containers/auth.json`). Both have the same `auths` format, so one reader
//! serves them; credential helpers are the `docker-credential-NAME` programs.

use crate::error::{RegistryError, Result};
use base64::Engine;
use serde_json::{json, Map, Value};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A user name and secret for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// User name and password (or access token used as a password).
    Basic {
        /// Account name at the registry.
        username: String,
        /// Password, or a personal access token used in its place.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged for access tokens.
    IdentityToken(String),
}

/// The key Docker uses for Docker Hub in `auths`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The keys under which credentials for `registry` may be stored, most usual first.
fn candidate_keys(registry: &str) -> Vec<String> {
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        return vec![
            DOCKER_HUB_KEY.into(),
            "docker.io".into(),
            "index.docker.io".into(),
            "registry-1.docker.io".into(),
            "https://registry-1.docker.io".into(),
        ];
    }
    vec![
        registry.into(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ]
}

/// The key `login` writes for `registry` (Docker's spelling).
fn store_key(registry: &str) -> String {
    candidate_keys(registry).swap_remove(0)
}

/// Where credentials are looked up and stored.
#[derive(Clone, Debug, Default)]
pub struct AuthFiles {
    /// An explicit `--authfile`: the only file read and written.
    pub explicit: Option<PathBuf>,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/".into())
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl AuthFiles {
    /// The files read, in order: the first holding credentials for a registry wins.
    pub fn search_path(&self) -> Vec<PathBuf> {
        if let Some(p) = &self.explicit {
            return vec![p.clone()];
        }
        let mut v = Vec::new();
        if let Some(p) = env_path("REGISTRY_AUTH_FILE") {
            v.push(p);
        }
        v.push(docker_config_path());
        if let Some(run) = env_path("XDG_RUNTIME_DIR") {
            v.push(run.join("containers/auth.json"));
        }
        let config = env_path("XDG_CONFIG_HOME").unwrap_or_else(|| home().join(".config"));
        v.push(config.join("containers/auth.json"));
        v
    }

    /// The file `login` writes: `--authfile`, `$REGISTRY_AUTH_FILE`, else Docker's.
    pub fn write_path(&self) -> PathBuf {
        self.explicit
            .clone()
            .or_else(|| env_path("REGISTRY_AUTH_FILE"))
            .unwrap_or_else(docker_config_path)
    }

    /// Credentials for `registry` (and `repository`, for files keyed by namespace),
    /// or `None` for anonymous access.
    pub fn lookup(&self, registry: &str, repository: &str) -> Result<Option<Credentials>> {
        for path in self.search_path() {
            let Some(doc) = read_json(&path)? else {
                continue;
            };
            if let Some(c) = lookup_in(&doc, &path, registry, repository)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Stores credentials for `registry`; returns the file (or helper) used.
    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<String> {
        let path = self.write_path();
        let mut doc = read_json(&path)?.unwrap_or_else(|| json!({}));
        if let Some(helper) = helper_for(&doc, registry) {
            let Credentials::Basic { username, password } = creds else {
                return Err(cred_error(
                    &path,
                    "only a user name and password can be stored",
                ));
            };
            let input = json!({
                "ServerURL": store_key(registry),
                "Username": username,
                "Secret": password,
            });
            run_helper(&helper, "store", &input.to_string(), &path)?;
            return Ok(format!("docker-credential-{helper}"));
        }
        let entry = match creds {
            Credentials::Basic { username, password } => json!({
                "auth": base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}")),
            }),
            Credentials::IdentityToken(t) => json!({ "identitytoken": t }),
        };
        let obj = as_object(&mut doc, &path)?;
        let auths = obj
            .entry("auths")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| cred_error(&path, "`auths` is not an object"))?;
        for k in candidate_keys(registry) {
            auths.remove(&k);
        }
        auths.insert(store_key(registry), entry);
        write_json(&path, &doc)?;
        Ok(path.display().to_string())
    }

    /// Removes the credentials of `registry`; false when there were none.
    pub fn remove(&self, registry: &str) -> Result<bool> {
        let path = self.write_path();
        let Some(mut doc) = read_json(&path)? else {
            return Ok(false);
        };
        if let Some(helper) = helper_for(&doc, registry) {
            run_helper(&helper, "erase", &store_key(registry), &path)?;
            return Ok(true);
        }
        let obj = as_object(&mut doc, &path)?;
        let mut removed = false;
        if let Some(auths) = obj.get_mut("auths").and_then(Value::as_object_mut) {
            for k in candidate_keys(registry) {
                removed |= auths.remove(&k).is_some();
            }
        }
        if removed {
            write_json(&path, &doc)?;
        }
        Ok(removed)
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> PathBuf {
    env_path("DOCKER_CONFIG")
        .unwrap_or_else(|| home().join(".docker"))
        .join("config.json")
}

fn cred_error(path: &Path, reason: impl Into<String>) -> RegistryError {
    RegistryError::Credentials {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| cred_error(path, format!("not valid JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(cred_error(path, e.to_string())),
    }
}

fn as_object<'a>(doc: &'a mut Value, path: &Path) -> Result<&'a mut Map<String, Value>> {
    doc.as_object_mut()
        .ok_or_else(|| cred_error(path, "not a JSON object"))
}

/// Writes the file atomically with mode 0600: it holds secrets.
fn write_json(path: &Path, doc: &Value) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| cred_error(dir, e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}.kiln-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("auth"),
        std::process::id()
    ));
    let bytes = serde_json::to_vec_pretty(doc).expect("a JSON value serializes");
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        cred_error(path, e.to_string())
    })
}

/// The credential helper configured for `registry`, if any.
fn helper_for(doc: &Value, registry: &str) -> Option<String> {
    let keys = candidate_keys(registry);
    if let Some(helpers) = doc.get("credHelpers").and_then(Value::as_object) {
        for k in &keys {
            if let Some(h) = helpers.get(k).and_then(Value::as_str) {
                return Some(h.to_string());
            }
        }
    }
    doc.get("credsStore")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn run_helper(helper: &str, verb: &str, input: &str, path: &Path) -> Result<String> {
    let bin = format!("docker-credential-{helper}");
    let mut child = Command::new(&bin)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| cred_error(path, format!("cannot run credential helper {bin}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| cred_error(path, format!("{bin}: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string()
            + String::from_utf8_lossy(&out.stderr).trim();
        return Err(cred_error(path, format!("{bin} {verb} failed: {msg}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn lookup_in(
    doc: &Value,
    path: &Path,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>> {
    if let Some(helper) = helper_for(doc, registry) {
        let out = match run_helper(&helper, "get", &store_key(registry), path) {
            Ok(out) => out,
            // Helpers report "credentials not found" with a failure: anonymous access.
            Err(RegistryError::Credentials { reason, .. })
                if reason.contains("not found") || reason.contains("Not Found") =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let v: Value = serde_json::from_str(&out)
            .map_err(|e| cred_error(path, format!("credential helper {helper}: {e}")))?;
        let user = v.get("Username").and_then(Value::as_str).unwrap_or("");
        let secret = v.get("Secret").and_then(Value::as_str).unwrap_or("");
        if secret.is_empty() {
            return Ok(None);
        }
        return Ok(Some(if user == "<token>" {
            Credentials::IdentityToken(secret.into())
        } else {
            Credentials::Basic {
                username: user.into(),
                password: secret.into(),
            }
        }));
    }
    let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    // Podman allows keys for a namespace (`quay.io/team`): the longest match wins.
    let full = format!("{registry}/{repository}");
    let mut best: Option<(&str, &Value)> = None;
    for (k, v) in auths {
        let bare = k
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .trim_end_matches("/v2");
        let hit = candidate_keys(registry).iter().any(|c| c == k)
            || (bare.contains('/') && (full == bare || full.starts_with(&format!("{bare}/"))));
        if hit && best.is_none_or(|(b, _)| bare.len() > b.len()) {
            best = Some((bare, v));
        }
    }
    let Some((_, entry)) = best else {
        return Ok(None);
    };
    if let Some(t) = entry
        .get("identitytoken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(Credentials::IdentityToken(t.into())));
    }
    if let Some(a) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|e| cred_error(path, format!("auths.{registry}.auth: {e}")))?;
        let s = String::from_utf8(raw)
            .map_err(|_| cred_error(path, format!("auths.{registry}.auth is not UTF-8")))?;
        let (u, p) = s
            .split_once(':')
            .ok_or_else(|| cred_error(path, format!("auths.{registry}.auth has no `:`")))?;
        return Ok(Some(Credentials::Basic {
            username: u.into(),
            password: p.into(),
        }));
    }
    // Older files: separate username and password fields.
    if let (Some(u), Some(p)) = (
        entry.get("username").and_then(Value::as_str),
        entry.get("password").and_then(Value::as_str),
    ) {
        return Ok(Some(Credentials::Basic {
            username: u.into(),
            password: p.into(),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_lookup_remove_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        fs::write(&path, r#"{"auths":{},"psFormat":"table"}"#).unwrap();
        let files = AuthFiles {
            explicit: Some(path.clone()),
        };
        let creds = Credentials::Basic {
            username: "ann".into(),
            password: "s:cret".into(),
        };
        files.store("127.0.0.1:5000", &creds).unwrap();
        let doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["psFormat"], "table", "other settings survive");
        assert_eq!(
            doc["auths"]["127.0.0.1:5000"]["auth"],
            base64::engine::general_purpose::STANDARD.encode("ann:s:cret")
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            files.lookup("127.0.0.1:5000", "x/y").unwrap(),
            Some(creds.clone())
        );
        assert_eq!(files.lookup("127.0.0.1:5001", "x/y").unwrap(), None);
        assert!(files.remove("127.0.0.1:5000").unwrap());
        assert_eq!(files.lookup("127.0.0.1:5000", "x/y").unwrap(), None);
        assert!(!files.remove("127.0.0.1:5000").unwrap());
    }

    #[test]
    fn docker_hub_and_namespaced_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        fs::write(
            &path,
            json!({"auths": {
                "https://index.docker.io/v1/": {"auth": b64("hub:pw")},
                "quay.io": {"auth": b64("all:pw")},
                "quay.io/team": {"auth": b64("team:pw")},
                "ghcr.io": {"identitytoken": "tok"},
            }})
            .to_string(),
        )
        .unwrap();
        let files = AuthFiles {
            explicit: Some(path),
        };
        let user = |r: &str, repo: &str| match files.lookup(r, repo).unwrap() {
            Some(Credentials::Basic { username, .. }) => username,
            other => format!("{other:?}"),
        };
        assert_eq!(user("docker.io", "library/busybox"), "hub");
        assert_eq!(user("quay.io", "team/app"), "team");
        assert_eq!(user("quay.io", "other/app"), "all");
        assert_eq!(
            files.lookup("ghcr.io", "a/b").unwrap(),
            Some(Credentials::IdentityToken("tok".into()))
        );
    }

    #[test]
    fn malformed_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, "{not json").unwrap();
        let files = AuthFiles {
            explicit: Some(path.clone()),
        };
        let err = files.lookup("r.example", "a").unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}
