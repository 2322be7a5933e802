//! `kiln run`'s option values, parsed into types the launcher takes: sizes, rlimits,
//! security options, the network, the runtime and init binaries, environment entries.
//! Each parser names the value it refuses and how to write it.

use crate::error::{Result, RuntimeError};
use crate::pasta::Publish;
use crate::spec::{self, Rlimit, Seccomp};
use std::path::{Path, PathBuf};

/// Docker's size syntax: a number with an optional b/k/m/g/t suffix (binary units).
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|x| !x.is_empty() && !x.ends_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('b') => (&t[..t.len() - 1], 1),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| {
            RuntimeError::refused(
                format!("invalid size `{s}`"),
                "sizes look like `512m`, `2g`, `100000`",
            )
        })?;
    Ok((n * mult as f64) as i64)
}

/// `--ulimit NAME=SOFT[:HARD]`, clamped to what this process may grant.
pub fn parse_ulimit(u: &str) -> Result<Rlimit> {
    let invalid = |why: &str| {
        RuntimeError::refused(
            format!("invalid --ulimit `{u}`{why}"),
            "use NAME=SOFT[:HARD], e.g. `nofile=1024:2048`",
        )
    };
    let (name, vals) = u.split_once('=').ok_or_else(|| invalid(""))?;
    let (s, h) = vals.split_once(':').unwrap_or((vals, vals));
    let (s, h): (u64, u64) = (
        s.parse().map_err(|_| invalid(""))?,
        h.parse().map_err(|_| invalid(""))?,
    );
    let resource = match name {
        "nofile" => rustix::process::Resource::Nofile,
        "nproc" => rustix::process::Resource::Nproc,
        "core" => rustix::process::Resource::Core,
        "memlock" => rustix::process::Resource::Memlock,
        "stack" => rustix::process::Resource::Stack,
        _ => return Err(invalid(&format!(": unknown resource `{name}`"))),
    };
    let (soft, hard) = spec::clamp_rlimit(resource, s, h);
    Ok(Rlimit {
        name: format!("RLIMIT_{}", name.to_ascii_uppercase()),
        soft,
        hard,
    })
}

/// Docker's default rlimits (nofile 1048576, clamped) with `--ulimit` values over them.
pub fn rlimits(ulimits: &[String]) -> Result<Vec<Rlimit>> {
    let (soft, hard) = spec::clamp_rlimit(rustix::process::Resource::Nofile, 1 << 20, 1 << 20);
    let mut out = vec![Rlimit {
        name: "RLIMIT_NOFILE".into(),
        soft,
        hard,
    }];
    for u in ulimits {
        let r = parse_ulimit(u)?;
        out.retain(|x| x.name != r.name);
        out.push(r);
    }
    Ok(out)
}

/// What `--security-opt` values decide.
#[derive(Clone, Debug, PartialEq)]
pub struct Security {
    /// `no-new-privileges` (on unless `=false`).
    pub no_new_privileges: bool,
    /// The seccomp filter.
    pub seccomp: Seccomp,
}

/// `--security-opt no-new-privileges[=true|false]`, `seccomp=PROFILE.json|unconfined`.
pub fn parse_security_opts(opts: &[String]) -> Result<Security> {
    let mut out = Security {
        no_new_privileges: true,
        seccomp: Seccomp::Default,
    };
    for opt in opts {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), "true"));
        match k {
            "no-new-privileges" => out.no_new_privileges = v != "false",
            "seccomp" if v == "unconfined" => out.seccomp = Seccomp::Unconfined,
            "seccomp" => {
                let text = std::fs::read_to_string(v).map_err(RuntimeError::io(v))?;
                let profile = serde_json::from_str(&text).map_err(|e| RuntimeError::Invalid {
                    what: "seccomp profile",
                    value: v.to_string(),
                    reason: format!("not a JSON seccomp profile: {e}"),
                })?;
                out.seccomp = Seccomp::Profile(profile);
            }
            _ => return Err(RuntimeError::refused(
                format!("unknown --security-opt `{opt}`"),
                "kiln takes `no-new-privileges[=true|false]` and `seccomp=PROFILE.json|unconfined`",
            )),
        }
    }
    Ok(out)
}

/// The network a container gets (`--network`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// Its own namespace connected by pasta (user-mode networking), with published ports.
    Private {
        /// The pasta binary.
        pasta: PathBuf,
        /// Ports forwarded from the host.
        publish: Vec<Publish>,
    },
    /// Its own namespace with loopback only (`none`; also `private` when pasta is not
    /// installed and no port is published).
    None,
    /// The host's namespace.
    Host,
}

impl NetworkMode {
    /// `--network NAME` with its `-p` specs; `pasta` is where pasta is installed.
    pub fn parse(name: &str, publish: &[String], pasta: Option<PathBuf>) -> Result<NetworkMode> {
        let publish = publish
            .iter()
            .map(|p| Publish::parse(p))
            .collect::<Result<Vec<_>>>()?;
        match name {
            "private" | "default" | "bridge" => match pasta {
                Some(pasta) => Ok(NetworkMode::Private { pasta, publish }),
                None if publish.is_empty() => Ok(NetworkMode::None),
                None => Err(RuntimeError::refused(
                    "publishing ports needs `pasta`, which is not installed",
                    "apt-get install passt",
                )),
            },
            "none" if !publish.is_empty() => Err(RuntimeError::refused(
                "ports cannot be published with `--network none`",
                "use the default network (`--network private`) to publish ports",
            )),
            "none" => Ok(NetworkMode::None),
            // As Docker: published ports mean nothing on the host's network.
            "host" => Ok(NetworkMode::Host),
            other => Err(RuntimeError::refused(
                format!("unknown network `{other}`"),
                "use `--network private`, `none` or `host`",
            )),
        }
    }

    /// The ports published on the host.
    pub fn publish(&self) -> &[Publish] {
        match self {
            NetworkMode::Private { publish, .. } => publish,
            _ => &[],
        }
    }
}

/// Finds an executable on `$PATH` (or takes a path as it is), as `--runtime` does.
pub fn find_runtime(r: &Path) -> Result<PathBuf> {
    let found = if r.components().count() > 1 {
        Some(r.to_path_buf())
    } else {
        std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(r))
                    .find(|c| c.is_file())
            })
            .unwrap_or_default()
    };
    match found {
        Some(p) if p.is_file() => Ok(p),
        Some(p) => Err(RuntimeError::refused(
            format!("OCI runtime {} does not exist", p.display()),
            "give the path of a runtime binary, e.g. `--runtime /usr/sbin/runc`",
        )),
        None => Err(RuntimeError::refused(
            format!("OCI runtime `{}` not found in $PATH", r.display()),
            "give its full path, e.g. `--runtime /usr/sbin/runc`",
        )),
    }
}

/// Where `--init` puts the init binary in the container (Docker's path).
pub const INIT_PATH: &str = "/sbin/docker-init";

/// A static init binary on the host: tini as Debian's docker.io ships it, or tini itself.
pub fn find_init() -> Result<PathBuf> {
    [
        "/usr/bin/docker-init",
        "/usr/bin/tini-static",
        "/usr/libexec/docker/docker-init",
        "/usr/local/bin/tini-static",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .ok_or_else(|| {
        RuntimeError::refused(
            "`--init` needs a static init binary (docker-init or tini-static) and none was found",
            "apt-get install tini",
        )
    })
}

/// The `KEY=VALUE` lines of env files (blank lines and `#` comments skipped), then the
/// `-e` values, in the order Docker applies them.
pub fn env_entries(files: &[PathBuf], env: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(RuntimeError::io(f))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    out.extend(env.iter().cloned());
    Ok(out)
}

/// `KEY=VALUE` as given, `KEY` alone takes the value of `lookup(KEY)` and is left out
/// when that is unset (Docker's rule, for `run` and `exec` alike).
pub fn resolve_env(
    entries: &[String],
    lookup: impl Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    entries
        .iter()
        .filter_map(|e| match e.split_once('=') {
            Some((k, v)) => Some((k.to_string(), v.to_string())),
            None => lookup(e).map(|v| (e.clone(), v)),
        })
        .collect()
}

/// A container ID: 64 random hex digits, as Docker's.
pub fn random_id() -> String {
    let mut b = [0u8; 32];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32m").unwrap(), 32 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("512kb").unwrap(), 512 << 10);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("100b").unwrap(), 100);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1m").is_err());
    }

    #[test]
    fn ulimits_replace_the_default() {
        let r = rlimits(&["nofile=100:200".into(), "nproc=50".into()]).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].name.as_str(), r[0].soft, r[0].hard),
            ("RLIMIT_NOFILE", 100, 200)
        );
        assert_eq!((r[1].name.as_str(), r[1].soft), ("RLIMIT_NPROC", 50));
        for bad in ["nofile", "nofile=x", "bogus=1", "nofile=1:y"] {
            assert!(parse_ulimit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn security_opts() {
        let s = parse_security_opts(&[
            "no-new-privileges=false".into(),
            "seccomp=unconfined".into(),
        ])
        .unwrap();
        assert!(!s.no_new_privileges);
        assert_eq!(s.seccomp, Seccomp::Unconfined);
        assert!(parse_security_opts(&[]).unwrap().no_new_privileges);
        assert!(parse_security_opts(&["apparmor=x".into()]).is_err());
    }

    #[test]
    fn networks() {
        let pasta = Some(PathBuf::from("/usr/bin/pasta"));
        let p = NetworkMode::parse("private", &["8080:80".into()], pasta.clone()).unwrap();
        assert_eq!(p.publish().len(), 1);
        assert_eq!(
            NetworkMode::parse("private", &[], None).unwrap(),
            NetworkMode::None
        );
        assert!(NetworkMode::parse("private", &["1:2".into()], None).is_err());
        assert!(NetworkMode::parse("none", &["1:2".into()], pasta.clone()).is_err());
        assert_eq!(
            NetworkMode::parse("host", &[], pasta.clone()).unwrap(),
            NetworkMode::Host
        );
        assert!(NetworkMode::parse("weave", &[], pasta).is_err());
    }

    #[test]
    fn env_passes_set_host_values_only() {
        let got = resolve_env(
            &["A=1".into(), "HOSTVAR".into(), "UNSET".into(), "B=".into()],
            |k| (k == "HOSTVAR").then(|| "h".to_string()),
        );
        assert_eq!(
            got,
            vec![
                ("A".into(), "1".into()),
                ("HOSTVAR".into(), "h".into()),
                ("B".into(), String::new())
            ]
        );
    }
}
