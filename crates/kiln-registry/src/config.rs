//! Registry settings: which registries speak plain HTTP or unverified TLS, and mirrors.
//!
//! Read from `$KILN_CONFIG`, else `$XDG_CONFIG_HOME/kiln/config.json` (`~/.config/...`),
//! else `/etc/kiln/config.json`, with the keys of Docker's `daemon.json`:
//!
//! ```json
//! { "insecure-registries": ["registry.lan:5000"],
//!   "registry-mirrors": ["https://mirror.example"] }
//! ```
//!
//! `registry-mirrors` may also be an object mapping a registry to its mirrors
//! (`{"ghcr.io": ["https://cache.lan/ghcr"]}`); a list applies to Docker Hub, as in
//! Docker. `$KILN_INSECURE_REGISTRIES` (comma-separated) adds insecure registries.
//! Loopback registries (`localhost`, 127.0.0.0/8, `[::1]`) are insecure by default, as
//! in Docker.

use crate::error::{RegistryError, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Registry settings.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Registry hosts (`host[:port]`, scheme stripped) reached over unverified TLS or
    /// plain HTTP; loopback ones are insecure without being listed.
    pub insecure: Vec<String>,
    /// Registry host -> mirror locations (`[scheme://]host[/path-prefix]`).
    pub mirrors: BTreeMap<String, Vec<String>>,
}

fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KILN_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("kiln/config.json"));
    user.filter(|p| p.exists())
        .or_else(|| Some(PathBuf::from("/etc/kiln/config.json")))
}

impl Settings {
    /// Loads the settings file (missing is fine) and the environment.
    pub fn load() -> Result<Self> {
        let mut s = Settings::default();
        if let Some(path) = config_path() {
            match std::fs::read(&path) {
                Ok(bytes) => s = Self::parse(&bytes, &path)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(RegistryError::Credentials {
                        path,
                        reason: e.to_string(),
                    })
                }
            }
        }
        if let Ok(v) = std::env::var("KILN_INSECURE_REGISTRIES") {
            s.insecure.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(String::from),
            );
        }
        Ok(s)
    }

    /// Parses the JSON settings document read from `path` (which errors name).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let invalid = |reason: String| RegistryError::Credentials {
            path: path.to_path_buf(),
            reason,
        };
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        let mut s = Settings::default();
        if let Some(list) = doc.get("insecure-registries") {
            let list = list.as_array().ok_or_else(|| {
                invalid("`insecure-registries` must be a list of registries".into())
            })?;
            for v in list {
                let r = v
                    .as_str()
                    .ok_or_else(|| invalid("`insecure-registries` must hold strings".into()))?;
                s.insecure.push(strip_scheme(r).to_string());
            }
        }
        match doc.get("registry-mirrors") {
            None => {}
            Some(Value::Array(list)) => {
                let m = strings(list)
                    .ok_or_else(|| invalid("`registry-mirrors` must hold strings".into()))?;
                s.mirrors.insert("docker.io".into(), m);
            }
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    let m = v.as_array().and_then(|l| strings(l)).ok_or_else(|| {
                        invalid(format!("`registry-mirrors.{k}` must be a list of strings"))
                    })?;
                    s.mirrors.insert(k.clone(), m);
                }
            }
            Some(_) => {
                return Err(invalid(
                    "`registry-mirrors` must be a list or an object".into(),
                ))
            }
        }
        Ok(s)
    }

    /// Whether `registry` may be reached over plain HTTP or unverified TLS.
    pub fn is_insecure(&self, registry: &str) -> bool {
        is_loopback(registry) || self.insecure.iter().any(|r| r == registry)
    }
}

fn strings(list: &[Value]) -> Option<Vec<String>> {
    list.iter().map(|v| v.as_str().map(String::from)).collect()
}

fn strip_scheme(s: &str) -> &str {
    s.trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
}

/// The host part of `host[:port]` or `[v6]:port`.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

/// `localhost`, 127.0.0.0/8 or ::1, with or without a port.
pub fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_style_settings() {
        let s = Settings::parse(
            br#"{"insecure-registries":["http://reg.lan:5000/"],"registry-mirrors":["https://m.example"]}"#,
            Path::new("c.json"),
        )
        .unwrap();
        assert!(s.is_insecure("reg.lan:5000"));
        assert!(!s.is_insecure("reg.lan"));
        assert_eq!(s.mirrors["docker.io"], vec!["https://m.example"]);
        let s = Settings::parse(
            br#"{"registry-mirrors":{"ghcr.io":["cache.lan/ghcr"]}}"#,
            Path::new("c.json"),
        )
        .unwrap();
        assert_eq!(s.mirrors["ghcr.io"], vec!["cache.lan/ghcr"]);
        assert!(Settings::parse(br#"{"registry-mirrors":3}"#, Path::new("c.json")).is_err());
    }

    #[test]
    fn loopback_is_insecure() {
        let s = Settings::default();
        for r in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(s.is_insecure(r), "{r}");
        }
        for r in ["example.com", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!s.is_insecure(r), "{r}");
        }
    }
}
