//! Image references with Docker's normalization rules (`busybox` is
//! `docker.io/library/busybox:latest`).
//!
//! Parsed by hand rather than with `oci-spec`'s `Reference`: that one compiles a large
//! regular expression on first use, about 90 ms here, which is several times the whole
//! budget of a container start. This parser follows the same grammar (distribution's
//! `reference` package) and is checked against Docker's normalization cases below.

use crate::error::{OciError, Result};
use std::fmt;

const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A parsed, normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<crate::Digest>,
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*`
fn valid_path_component(p: &str) -> bool {
    let b = p.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A host name (components of `[a-zA-Z0-9-]` not starting or ending with `-`), an
/// IPv6 literal in brackets, and an optional `:port`.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, after)) => {
                if ip.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (
                    None,
                    after
                        .strip_prefix(':')
                        .map(Some)
                        .unwrap_or(if after.is_empty() { None } else { return false }),
                )
            }
            None => return false,
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    host.is_none_or(|h| {
        !h.is_empty()
            && h.split('.').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-')
                    && !c.starts_with('-')
                    && !c.ends_with('-')
            })
    })
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl Reference {
    /// Parses a reference as `docker` does, defaulting the registry to docker.io, the
    /// namespace to `library/` and the tag to `latest` when no digest is given.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| OciError::InvalidReference {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("repository name must have at least one component"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(crate::Digest::parse(d).map_err(|e| bad(&e.to_string()))?),
            ),
            None => (s, None),
        };
        // A tag is a `:` after the last `/` (a `:` before it is a registry port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad("invalid tag format"));
            }
        }
        let (domain, remote) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|c| c.is_ascii_uppercase()) =>
            {
                (Some(first), remainder)
            }
            _ => (None, name),
        };
        if let Some(d) = domain {
            if !valid_domain(d) {
                return Err(bad("invalid reference format"));
            }
        }
        for component in remote.split('/') {
            if !valid_path_component(component) {
                return Err(if component.bytes().any(|c| c.is_ascii_uppercase()) {
                    bad("repository name must be lowercase")
                } else {
                    bad("invalid reference format")
                });
            }
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(bad("repository name must not be more than 255 characters"));
        }
        let mut registry = domain.unwrap_or("docker.io").to_string();
        if registry == "index.docker.io" {
            registry = "docker.io".into();
        }
        let repository = if registry == "docker.io" && !remote.contains('/') {
            format!("library/{remote}")
        } else {
            remote.to_string()
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Registry host (`docker.io` for Docker Hub).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<crate::Digest> {
        self.digest.clone()
    }

    /// The fully qualified name without tag or digest: `docker.io/library/busybox`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short name Docker shows: `busybox`, `user/app`, `ghcr.io/x/y`.
    pub fn familiar_name(&self) -> String {
        if self.registry == "docker.io" {
            self.repository
                .strip_prefix("library/")
                .filter(|r| !r.contains('/'))
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.full_name()
        }
    }

    /// The familiar form with tag and digest: `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.full_name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = OciError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cases from Docker's reference normalization tests.
    #[test]
    fn normalizes_like_docker() {
        for (input, full, familiar) in [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            ("user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
            (
                "docker.io/library/debian",
                "docker.io/library/debian:latest",
                "debian:latest",
            ),
            (
                "index.docker.io/library/debian:12",
                "docker.io/library/debian:12",
                "debian:12",
            ),
            (
                "localhost/app",
                "localhost/app:latest",
                "localhost/app:latest",
            ),
            (
                "localhost:5000/a/b:c",
                "localhost:5000/a/b:c",
                "localhost:5000/a/b:c",
            ),
            (
                "ghcr.io/org/model:v2",
                "ghcr.io/org/model:v2",
                "ghcr.io/org/model:v2",
            ),
            (
                "test.com:5000",
                "docker.io/library/test.com:5000",
                "test.com:5000",
            ),
        ] {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(Reference::parse(&r.familiar()).unwrap(), r);
        }
    }

    #[test]
    fn digests() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse(&format!("app:v1@{d}")).unwrap();
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest().unwrap().to_string(), d);
        let r = Reference::parse(&format!("app@{d}")).unwrap();
        assert_eq!(r.tag(), None);
    }

    #[test]
    fn rejects_bad_references() {
        for (bad, why) in [
            ("", ""),
            ("Busybox", "lowercase"),
            ("docker.io/Library/x", "lowercase"),
            ("app:", ""),
            ("app:tag with space", ""),
            ("-app", ""),
            ("app@sha256:abc", ""),
            ("a//b", ""),
            (":tag", ""),
            ("a..b", ""),
            ("a._b", ""),
            ("a-", ""),
            ("host:port/x", ""),
            ("-host.com/x", ""),
            ("x:-tag", ""),
            ("x@sha512:abc", ""),
        ] {
            let e = Reference::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
