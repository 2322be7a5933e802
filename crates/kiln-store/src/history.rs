//! Tag history: every move of a name (build, tag, pull, load, import, commit, base,
//! rollback, push to a registry), appended to `history/tags.jsonl`, one JSON object per
//! line, never rewritten.
//!
//! A line: `time`, `action` (`tag`, `untag`, `rollback`, `push`), `name` (the familiar
//! name, or the full remote reference for a push), `digest` (where the name points now),
//! `previous` (where it pointed before), `user`, `command` (the kiln command line) and, for
//! a build, `inputs` (git commit and dirty flag of the context, a message). Appends are
//! single `O_APPEND` writes, so processes moving tags at once lose no record; a line cut
//! short by a killed kiln is reported with its number and the rest stays readable.

use crate::error::{Result, StoreError};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Mutex;

/// One move of a name.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Move {
    /// When the move happened, RFC 3339 in UTC with whole seconds; filled in by
    /// [`Store::record_move`] when empty.
    pub time: String,
    /// `tag`, `untag`, `rollback` or `push`.
    pub action: String,
    /// The familiar name moved (`iris:v1`), or `docker://REF` for a push (see
    /// [`remote_name`]).
    pub name: String,
    /// Digest of the manifest or index the name points to after the move; `None` after an
    /// untag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Digest the name pointed to before the move; `None` when it pointed nowhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Who moved it: `$SUDO_USER`, else `$USER`, else `uid N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The kiln command line that moved it, with passwords given by `--creds` masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// What a build was made from (`git`: commit and dirty flag, `message`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<serde_json::Value>,
    /// The line of `history/tags.jsonl` it was read from (1-based; not written).
    #[serde(skip)]
    pub line: usize,
}

/// A line that is not a move (cut short by a killed kiln, or edited by hand).
#[derive(Clone, Debug, PartialEq)]
pub struct BadLine {
    /// Line number in `history/tags.jsonl`, 1-based.
    pub line: usize,
    /// Why it is not a move: the JSON error, or "no `name`".
    pub reason: String,
}

/// One version of a name: an image it pointed to, and the move that first brought it.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    /// Digest (`sha256:...`) of the manifest or index the name pointed to.
    pub digest: String,
    /// The first move that pointed the name here.
    pub first: Move,
    /// The last move that pointed the name here.
    pub last: Move,
}

/// What this process records with each move besides the move itself: build inputs.
static INPUTS: Mutex<Option<serde_json::Value>> = Mutex::new(None);

/// Sets the inputs recorded with the moves this process makes from now on (a build's
/// git commit and message).
pub fn set_inputs(inputs: serde_json::Value) {
    *INPUTS.lock().expect("inputs lock") = Some(inputs);
}

fn user() -> Option<String> {
    std::env::var("SUDO_USER")
        .ok()
        .or_else(|| std::env::var("USER").ok())
        .filter(|u| !u.is_empty())
        .or_else(|| Some(format!("uid {}", rustix::process::getuid().as_raw())))
}

fn command() -> String {
    let mut args = std::env::args();
    let mut out = vec!["kiln".to_string()];
    args.next();
    let mut after_creds = false;
    for a in args {
        // A password given on the command line never lands in the history.
        let masked = match a.strip_prefix("--creds=") {
            Some(c) => Some(format!("--creds={}", mask(c))),
            None if after_creds => Some(mask(&a)),
            None => None,
        };
        after_creds = a == "--creds";
        out.push(masked.unwrap_or(a));
    }
    out.join(" ")
}

fn mask(creds: &str) -> String {
    match creds.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => creds.to_string(),
    }
}

/// Whether a file is empty or ends with a newline.
fn ends_with_newline(f: &std::fs::File) -> bool {
    use std::os::unix::fs::FileExt;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut last = [b'\n'];
    len == 0 || (f.read_at(&mut last, len - 1).is_ok() && last[0] == b'\n')
}

impl Store {
    /// Appends one move to the history; `user`, `command` and this process's build inputs
    /// are added.
    pub fn record_move(&self, mut m: Move) -> Result<()> {
        if m.time.is_empty() {
            m.time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        }
        m.user = m.user.or_else(user);
        m.command = m.command.or_else(|| Some(command()));
        if m.inputs.is_none() {
            m.inputs = INPUTS.lock().expect("inputs lock").clone();
        }
        let p = self.root().join("history/tags.jsonl");
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&p)
            .map_err(StoreError::io(&p))?;
        // A line cut short by a killed kiln must not swallow this one: start afresh.
        let mut line = Vec::new();
        if !ends_with_newline(&f) {
            line.push(b'\n');
        }
        line.extend(serde_json::to_vec(&m).expect("moves serialize"));
        line.push(b'\n');
        // One write: concurrent appends never interleave.
        f.write_all(&line).map_err(StoreError::io(&p))?;
        f.sync_data().map_err(StoreError::io(&p))
    }

    /// Every move, oldest first, and the lines that are not moves.
    pub fn history(&self) -> Result<(Vec<Move>, Vec<BadLine>)> {
        let p = self.root().join("history/tags.jsonl");
        let text = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StoreError::io(p)(e)),
        };
        let mut moves = Vec::new();
        let mut bad = Vec::new();
        for (i, line) in text.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Move>(line) {
                Ok(mut m) if !m.name.is_empty() => {
                    m.line = i + 1;
                    moves.push(m);
                }
                Ok(_) => bad.push(BadLine {
                    line: i + 1,
                    reason: "no `name`".into(),
                }),
                Err(e) => bad.push(BadLine {
                    line: i + 1,
                    reason: e.to_string(),
                }),
            }
        }
        Ok((moves, bad))
    }
}

/// The name pushes to a registry are recorded under (`docker://REF`, as skopeo writes a
/// registry reference), so a registry's tag and a local image of the same name keep
/// separate histories.
pub fn remote_name(reference: &kiln_oci::Reference) -> String {
    format!("docker://{reference}")
}

/// The versions of `name`, oldest first: each image it pointed to, in the order it first
/// did (a rollback brings back an older version, it does not make a new one).
pub fn versions(moves: &[Move], name: &str) -> Vec<Version> {
    let mut out: Vec<Version> = Vec::new();
    for m in moves.iter().filter(|m| m.name == name) {
        let Some(d) = &m.digest else { continue };
        match out.iter_mut().find(|v| &v.digest == d) {
            Some(v) => v.last = m.clone(),
            None => out.push(Version {
                digest: d.clone(),
                first: m.clone(),
                last: m.clone(),
            }),
        }
    }
    out
}

/// Where `name` points according to its history (None after an untag).
pub fn current(moves: &[Move], name: &str) -> Option<String> {
    moves
        .iter()
        .rev()
        .find(|m| m.name == name)
        .and_then(|m| m.digest.clone())
}

/// The first twelve hex digits of a digest, as kiln prints image IDs.
pub fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// Why no version could be chosen: a message, and what to do about it where there is
/// advice.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The history has no version matching the request: an unknown or ambiguous `--to`,
    /// no version that far back, or no history at all for the name.
    #[error("{message}")]
    NoVersion {
        /// What is wrong, naming the image and the version asked for.
        message: String,
        /// What the user can do, e.g. "`kiln history NAME` lists its versions".
        hint: Option<String>,
    },
    /// The name has a history but no longer resolves to an image in the store, so the
    /// current version is unknown.
    #[error("{name} no longer names an image")]
    Gone {
        /// The familiar name (`iris:v1`).
        name: String,
        /// Why resolving it failed, usually [`StoreError::ImageNotFound`].
        #[source]
        source: StoreError,
    },
    /// Reading the history from the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VersionError {
    fn new(message: String, hint: Option<String>) -> Self {
        VersionError::NoVersion { message, hint }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            VersionError::NoVersion { hint, .. } => hint.clone(),
            _ => None,
        }
    }
}

/// The version `to` names (a digest or a unique prefix of one in the history, or `-N`:
/// N versions back), counted from `current`; the one before `current` without `to`.
pub fn pick_version<'v>(
    name: &str,
    versions: &'v [Version],
    current: &str,
    to: Option<&str>,
) -> std::result::Result<&'v Version, VersionError> {
    let pos = versions.iter().position(|v| v.digest == current);
    let listed = || Some(format!("`kiln history {name}` lists its versions"));
    let back = match to {
        None => 1,
        Some(n) if n.starts_with('-') => n[1..].parse::<usize>().map_err(|_| {
            VersionError::new(
                format!("--to {n}: give a digest from `kiln history`, or -N to go N versions back"),
                None,
            )
        })?,
        Some(d) => {
            let hex = d.strip_prefix("sha256:").unwrap_or(d);
            let found: Vec<&Version> = versions
                .iter()
                .filter(|v| v.digest.trim_start_matches("sha256:").starts_with(hex))
                .collect();
            return match found.as_slice() {
                [one] => Ok(one),
                [] => Err(VersionError::new(
                    format!("{d} is not a version of {name}"),
                    listed(),
                )),
                _ => Err(VersionError::new(
                    format!("{d} matches several versions of {name}: give more of it"),
                    None,
                )),
            };
        }
    };
    let Some(pos) = pos else {
        return Err(VersionError::new(
            format!("{name} points at {current}, which its history does not know"),
            Some("give the version with `--to DIGEST`".into()),
        ));
    };
    if back == 0 || back > pos {
        return Err(VersionError::new(
            format!(
                "{name} has no version {back} before {}: it is version {} of {}",
                short(current),
                pos + 1,
                versions.len()
            ),
            listed(),
        ));
    }
    Ok(&versions[pos - back])
}

impl Store {
    /// The moves of the history and the versions of `name`; lines that are no record go
    /// to `bad`.
    pub fn versions_of(
        &self,
        name: &str,
        bad: &mut dyn FnMut(&BadLine),
    ) -> Result<(Vec<Move>, Vec<Version>)> {
        let (moves, bad_lines) = self.history()?;
        bad_lines.iter().for_each(&mut *bad);
        let versions = versions(&moves, name);
        Ok((moves, versions))
    }

    /// The digest of the version before the current one of `reference` (or the one `to`
    /// names): in the registry's history when kiln pushed the name, else in the store's.
    /// What `kiln deploy --rollback` deploys.
    pub fn previous_version(
        &self,
        reference: &kiln_oci::Reference,
        to: Option<&str>,
        bad: &mut dyn FnMut(&BadLine),
    ) -> std::result::Result<String, VersionError> {
        let remote = remote_name(reference);
        let (moves, pushed) = self.versions_of(&remote, bad)?;
        if !pushed.is_empty() {
            let current = current(&moves, &remote).unwrap_or_default();
            return Ok(pick_version(&remote, &pushed, &current, to)?.digest.clone());
        }
        let name = reference.familiar();
        let (_, versions) = self.versions_of(&name, bad)?;
        if versions.is_empty() {
            return Err(VersionError::new(
                format!("no history for {name}: nothing to roll back to"),
                Some("`kiln history NAME` shows the versions kiln recorded".into()),
            ));
        }
        let current = self
            .resolve(&name)
            .map(|r| r.descriptor.digest.to_string())
            .map_err(|source| VersionError::Gone {
                name: name.clone(),
                source,
            })?;
        Ok(pick_version(&name, &versions, &current, to)?.digest.clone())
    }
}

/// The last push of one of `digests` (a manifest kiln pushed as it is, or recompressed).
pub fn last_push<'m>(moves: &'m [Move], digests: &[String]) -> Option<&'m Move> {
    moves
        .iter()
        .rev()
        .find(|m| m.action == "push" && m.digest.as_ref().is_some_and(|d| digests.contains(d)))
}

/// The image in the store that the manifest `digest` was pushed from (`inputs.local` of
/// its last push).
pub fn pushed_from(moves: &[Move], digest: &str) -> Option<String> {
    moves
        .iter()
        .rev()
        .filter(|m| m.action == "push" && m.digest.as_deref() == Some(digest))
        .find_map(|m| {
            m.inputs
                .as_ref()?
                .get("local")?
                .as_str()
                .map(str::to_string)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(action: &str, name: &str, digest: Option<&str>) -> Move {
        Move {
            action: action.into(),
            name: name.into(),
            digest: digest.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn versions_follow_first_appearance() {
        let moves = vec![
            mv("tag", "app:v", Some("a")),
            mv("tag", "other:v", Some("x")),
            mv("tag", "app:v", Some("b")),
            mv("tag", "app:v", Some("c")),
            mv("rollback", "app:v", Some("b")),
        ];
        let v = versions(&moves, "app:v");
        assert_eq!(
            v.iter().map(|v| v.digest.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(v[1].last.action, "rollback");
        assert_eq!(current(&moves, "app:v").as_deref(), Some("b"));
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.record_move(mv("tag", "a:1", Some("d1"))).unwrap();
        let p = dir.path().join("history/tags.jsonl");
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str("{\"time\": \"cut sh\n");
        std::fs::write(&p, text).unwrap();
        store.record_move(mv("tag", "a:1", Some("d2"))).unwrap();
        let (moves, bad) = store.history().unwrap();
        assert_eq!(moves.len(), 2);
        assert_eq!(moves[1].line, 3);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 2);
        assert!(moves[0].command.is_some() && moves[0].user.is_some());
    }

    fn three() -> Vec<Version> {
        let moves = vec![
            mv("tag", "app:v1", Some("sha256:aaa111")),
            mv("tag", "app:v1", Some("sha256:bbb222")),
            mv("tag", "app:v1", Some("sha256:ccc333")),
        ];
        versions(&moves, "app:v1")
    }

    #[test]
    fn picks_versions_back_and_by_digest() {
        let v = three();
        let cur = "sha256:ccc333";
        assert_eq!(
            pick_version("app:v1", &v, cur, None).unwrap().digest,
            "sha256:bbb222"
        );
        assert_eq!(
            pick_version("app:v1", &v, cur, Some("-2")).unwrap().digest,
            "sha256:aaa111"
        );
        assert_eq!(
            pick_version("app:v1", &v, cur, Some("aaa")).unwrap().digest,
            "sha256:aaa111"
        );
        let e = pick_version("app:v1", &v, cur, Some("-3")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "app:v1 has no version 3 before ccc333: it is version 3 of 3"
        );
        assert_eq!(
            e.hint().as_deref(),
            Some("`kiln history app:v1` lists its versions")
        );
        let e = pick_version("app:v1", &v, cur, Some("ddd")).unwrap_err();
        assert_eq!(e.to_string(), "ddd is not a version of app:v1");
        let e = pick_version("app:v1", &v, "sha256:eee", None).unwrap_err();
        assert_eq!(
            e.hint().as_deref(),
            Some("give the version with `--to DIGEST`")
        );
        assert!(pick_version("app:v1", &v, cur, Some("-x"))
            .unwrap_err()
            .hint()
            .is_none());
    }
}
