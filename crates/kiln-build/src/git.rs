//! What a git checkout says about a build context: the commit (the image's
//! `org.opencontainers.image.revision`), whether the tree differs from it, where it comes
//! from (`source`, credentials removed) and when it was made (the reproducible epoch).

use std::path::Path;
use std::process::{Command, Stdio};

/// A context's git facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitInfo {
    /// The full commit hash of HEAD.
    pub commit: String,
    /// Tracked or untracked (not ignored) files differ from the commit.
    pub dirty: bool,
    /// `remote.origin.url`, without credentials, when there is one.
    pub source: Option<String>,
    /// The commit's time (seconds since the epoch).
    pub time: Option<i64>,
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// A URL without `user:password@` (a token in a remote URL must not land in an image).
pub fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if path.is_empty() && !rest.contains('/') {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => url.to_string(),
    }
}

/// The git facts of `dir` when it is inside a work tree with a commit; `None` otherwise
/// (no git, not a checkout, no commit yet).
pub fn describe(dir: &Path) -> Option<GitInfo> {
    let commit = git(dir, &["rev-parse", "--verify", "HEAD"])?;
    if commit.len() < 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let dirty = git(dir, &["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    let source = git(dir, &["config", "--get", "remote.origin.url"])
        .filter(|s| !s.is_empty())
        .map(|s| without_credentials(&s));
    let time = git(dir, &["log", "-1", "--format=%ct"]).and_then(|t| t.parse().ok());
    Some(GitInfo {
        commit,
        dirty,
        source,
        time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_leave() {
        assert_eq!(
            without_credentials("https://user:ghp_secret@github.com/team/app.git"),
            "https://github.com/team/app.git"
        );
        assert_eq!(
            without_credentials("https://github.com/team/app"),
            "https://github.com/team/app"
        );
        assert_eq!(
            without_credentials("git@github.com:team/app.git"),
            "git@github.com:team/app.git"
        );
    }

    #[test]
    fn a_checkout_is_described() {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            assert!(Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .env("GIT_AUTHOR_DATE", "@1700000000 +0000")
                .env("GIT_COMMITTER_DATE", "@1700000000 +0000")
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success());
        };
        assert_eq!(describe(dir.path()), None);
        run(&["init", "-q"]);
        run(&["config", "user.email", "t@example.com"]);
        run(&["config", "user.name", "t"]);
        std::fs::write(dir.path().join("a"), "1").unwrap();
        run(&["add", "a"]);
        run(&["commit", "-q", "-m", "one"]);
        run(&[
            "remote",
            "add",
            "origin",
            "https://tok:en@example.com/team/app.git",
        ]);
        let g = describe(dir.path()).unwrap();
        assert_eq!(g.commit.len(), 40);
        assert!(!g.dirty);
        assert_eq!(g.time, Some(1_700_000_000));
        assert_eq!(
            g.source.as_deref(),
            Some("https://example.com/team/app.git")
        );
        std::fs::write(dir.path().join("a"), "2").unwrap();
        assert!(describe(dir.path()).unwrap().dirty);
    }
}
