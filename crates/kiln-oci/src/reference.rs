//! Image references with Docker's normalization rules (`busybox` is
//! `docker.io/library/busybox:latest`). Parsing is delegated to `oci-spec`; this wrapper
//! adds Docker's error wording and the "familiar" short form that kiln shows and stores.

use crate::error::{OciError, Result};
use oci_spec::distribution::Reference as SpecRef;
use std::fmt;

/// A parsed, normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    inner: SpecRef,
}

impl Reference {
    /// Parses a reference as `docker` does, defaulting the registry to docker.io, the
    /// namespace to `library/` and the tag to `latest` when no digest is given.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: String| OciError::InvalidReference {
            value: s.to_string(),
            reason,
        };
        let inner: SpecRef = s.parse().map_err(|e: oci_spec::distribution::ParseError| {
            // The regex in oci-spec rejects uppercase without saying why; Docker says it.
            let name = s.split(['@']).next().unwrap_or(s);
            let path = name
                .rsplit_once(':')
                .map_or(name, |(n, t)| if t.contains('/') { name } else { n });
            let repo_part = path.split_once('/').map_or(path, |(first, rest)| {
                if first.contains('.') || first.contains(':') || first == "localhost" {
                    rest
                } else {
                    path
                }
            });
            if repo_part.chars().any(|c| c.is_ascii_uppercase()) {
                bad("repository name must be lowercase".into())
            } else {
                bad(e.to_string())
            }
        })?;
        if let Some(d) = inner.digest() {
            crate::Digest::parse(d).map_err(|e| bad(e.to_string()))?;
        }
        Ok(Self { inner })
    }

    /// Registry host (`docker.io` for Docker Hub).
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// Repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<crate::Digest> {
        self.inner
            .digest()
            .and_then(|d| crate::Digest::parse(d).ok())
    }

    /// The fully qualified name without tag or digest: `docker.io/library/busybox`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.registry(), self.repository())
    }

    /// The short name Docker shows: `busybox`, `user/app`, `ghcr.io/x/y`.
    pub fn familiar_name(&self) -> String {
        if self.registry() == "docker.io" {
            self.repository()
                .strip_prefix("library/")
                .filter(|r| !r.contains('/'))
                .unwrap_or(self.repository())
                .to_string()
        } else {
            self.full_name()
        }
    }

    /// The familiar form with tag and digest: `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = self.tag() {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = self.inner.digest() {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            inner: SpecRef::with_tag(
                self.registry().to_string(),
                self.repository().to_string(),
                tag.to_string(),
            ),
        }
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
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
        ] {
            let e = Reference::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
