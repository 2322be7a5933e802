//! The dpkg database (`/var/lib/dpkg`), written as dpkg itself leaves it after installing
//! the packages: `status`, `info/PKG.*` (file lists, md5sums, conffiles, maintainer
//! scripts), trigger interests, diversions and alternatives. dpkg, apt and the security
//! scanners that read the database then see every package as installed.

use crate::control::paragraphs;
use crate::deb::ControlFiles;
use crate::{DebianError, Result};
use md5::{Digest as _, Md5};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// dpkg's field order in `status` (lib/dpkg's field table); other fields follow in the
/// order the control file has them.
const FIELD_ORDER: &[&str] = &[
    "Package",
    "Essential",
    "Protected",
    "Status",
    "Priority",
    "Section",
    "Installed-Size",
    "Origin",
    "Maintainer",
    "Bugs",
    "Architecture",
    "Multi-Arch",
    "Source",
    "Version",
    "Config-Version",
    "Replaces",
    "Provides",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Breaks",
    "Conflicts",
    "Enhances",
    "Conffiles",
    "Description",
    "Triggers-Pending",
    "Triggers-Awaited",
];

/// A package as the database records it.
pub struct Record<'a> {
    /// The package's control archive; its `control` paragraph is the base of the entry.
    pub control: &'a ControlFiles,
    /// `install ok installed`, or `install ok unpacked` for a package whose postinst is
    /// still to run.
    pub status: &'a str,
    /// (path, md5) of each conffile.
    pub conffiles: Vec<(String, String)>,
}

fn bad(msg: &str) -> DebianError {
    DebianError::Dpkg(msg.into())
}

/// The name dpkg files the package's info under: `libc6:amd64` for Multi-Arch: same.
pub fn info_name(control: &ControlFiles) -> Result<(String, String)> {
    let text = control.text("control").unwrap_or_default();
    let paras = paragraphs(&text)?;
    let p = paras.first().ok_or_else(|| bad("empty control file"))?;
    let name = p
        .get("Package")
        .ok_or_else(|| bad("control file without Package"))?;
    let key = if p.get("Multi-Arch") == Some("same") {
        format!("{name}:{}", p.get("Architecture").unwrap_or(""))
    } else {
        name.to_string()
    };
    Ok((name.to_string(), key))
}

/// One `status` paragraph (without the blank line after it).
pub fn status_entry(r: &Record<'_>) -> Result<String> {
    let text = r.control.text("control").unwrap_or_default();
    let paras = paragraphs(&text)?;
    let p = paras.first().ok_or_else(|| bad("empty control file"))?;
    let mut fields: BTreeMap<&str, String> = BTreeMap::new();
    let mut extra: Vec<(&str, String)> = Vec::new();
    for (k, v) in &p.fields {
        if let Some(canon) = FIELD_ORDER.iter().find(|f| f.eq_ignore_ascii_case(k)) {
            fields.insert(canon, v.to_string());
        } else {
            extra.push((k, v.to_string()));
        }
    }
    fields.insert("Status", r.status.to_string());
    if !r.conffiles.is_empty() {
        let mut v = String::new();
        for (path, md5) in &r.conffiles {
            let _ = write!(v, "\n {path} {md5}");
        }
        fields.insert("Conffiles", v);
    }
    let mut out = String::new();
    for f in FIELD_ORDER {
        if let Some(v) = fields.get(f) {
            if v.starts_with('\n') {
                let _ = writeln!(out, "{f}:{v}");
            } else {
                let _ = writeln!(out, "{f}: {v}");
            }
        }
    }
    for (k, v) in extra {
        let _ = writeln!(out, "{k}: {v}");
    }
    Ok(out)
}

/// md5 of each conffile the package lists, read from the unpacked tree (`root`, merged
/// /usr applied by the caller's `resolve`).
pub fn conffile_sums(
    control: &ControlFiles,
    resolve: impl Fn(&str) -> std::path::PathBuf,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for line in control.text("conffiles").unwrap_or_default().lines() {
        let line = line.trim();
        // `remove-on-upgrade /path` and friends: flags before the path.
        let Some(path) = line.split_whitespace().last() else {
            continue;
        };
        if !path.starts_with('/') {
            continue;
        }
        let file = resolve(path);
        let bytes = fs::read(&file).map_err(|source| DebianError::Conffile {
            path: path.to_string(),
            source,
        })?;
        out.push((path.to_string(), hex::encode(Md5::digest(&bytes))));
    }
    Ok(out)
}

/// Writes `info/KEY.list` and the control members dpkg keeps (`md5sums`, `conffiles`,
/// scripts, `triggers`, `shlibs`, `symbols`, `templates`, ...) into `info_dir`.
pub fn write_info(
    info_dir: &Path,
    key: &str,
    control: &ControlFiles,
    paths: &[String],
    mtime: i64,
) -> io::Result<()> {
    fs::create_dir_all(info_dir)?;
    let mut list = String::new();
    for p in paths {
        list.push_str(p);
        list.push('\n');
    }
    write_file(
        &info_dir.join(format!("{key}.list")),
        list.as_bytes(),
        0o644,
        mtime,
    )?;
    for (name, (mode, bytes)) in &control.files {
        if name == "control" {
            continue;
        }
        let m = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        write_file(&info_dir.join(format!("{key}.{name}")), bytes, m, mtime)?;
    }
    Ok(())
}

/// Writes a file with a fixed mode and mtime (layers must not depend on the umask or
/// the clock).
pub fn write_file(path: &Path, bytes: &[u8], mode: u32, mtime: i64) -> io::Result<()> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d)?;
    }
    let _ = fs::remove_file(path);
    fs::write(path, bytes)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    set_mtime(path, mtime)
}

/// Sets the access and modification times of `path` (the link itself, for a symlink)
/// to `mtime`, in seconds since the epoch.
pub fn set_mtime(path: &Path, mtime: i64) -> io::Result<()> {
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &t,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

/// The trigger interest files: `triggers/File` for file triggers, `triggers/NAME` for
/// named ones, from each package's `triggers` member (`interest`, `interest-await`,
/// `interest-noawait`). Activations are not recorded: every package is configured.
pub fn trigger_files(pkgs: &[(&str, &ControlFiles)]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut file = String::new();
    for (key, c) in pkgs {
        for line in c.text("triggers").unwrap_or_default().lines() {
            let mut w = line.split_whitespace();
            let (Some(kind), Some(name)) = (w.next(), w.next()) else {
                continue;
            };
            let suffix = match kind {
                "interest" | "interest-await" => "",
                "interest-noawait" => "/noawait",
                _ => continue,
            };
            if name.starts_with('/') {
                let _ = writeln!(file, "{name} {key}{suffix}");
            } else {
                let e = out.entry(name.to_string()).or_default();
                let _ = writeln!(e, "{key}{suffix}");
            }
        }
    }
    out.insert("File".into(), file);
    out.insert("Unincorp".into(), String::new());
    out
}

/// One alternative as `update-alternatives --install` registers it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alternative {
    /// The alternative's name, its file under `/etc/alternatives` (`awk`).
    pub name: String,
    /// The generic symlink users call (`/usr/bin/awk`).
    pub link: String,
    /// The program this candidate provides (`/usr/bin/mawk`).
    pub path: String,
    /// Auto mode picks the candidate with the highest priority.
    pub priority: i64,
    /// (name, link, path) of each slave.
    pub slaves: Vec<(String, String, String)>,
}

/// The admin file `var/lib/dpkg/alternatives/NAME` for the alternatives registered under
/// one name (every candidate), in auto mode.
pub fn alternatives_admin(alts: &[Alternative]) -> String {
    let first = &alts[0];
    let mut slaves: BTreeMap<&str, &str> = BTreeMap::new();
    for a in alts {
        for (n, l, _) in &a.slaves {
            slaves.insert(n, l);
        }
    }
    let mut s = format!("auto\n{}\n", first.link);
    for (n, l) in &slaves {
        let _ = write!(s, "{n}\n{l}\n");
    }
    s.push('\n');
    let mut sorted: Vec<&Alternative> = alts.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for a in sorted {
        let _ = write!(s, "{}\n{}\n", a.path, a.priority);
        for n in slaves.keys() {
            let p = a
                .slaves
                .iter()
                .find(|(sn, _, _)| sn == n)
                .map_or("", |(_, _, p)| p.as_str());
            let _ = writeln!(s, "{p}");
        }
    }
    s.push('\n');
    s
}

/// The candidate auto mode selects: highest priority, then the first path by name.
pub fn best_alternative(alts: &[Alternative]) -> &Alternative {
    alts.iter()
        .max_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then_with(|| b.path.cmp(&a.path))
        })
        .expect("at least one alternative")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(text: &str) -> ControlFiles {
        let mut c = ControlFiles::default();
        c.files
            .insert("control".into(), (0o644, text.as_bytes().to_vec()));
        c
    }

    #[test]
    fn status_field_order() {
        let c = control(
            "Package: libc6\nSource: glibc\nVersion: 2.36-9\nArchitecture: amd64\nMulti-Arch: same\nMaintainer: M <m@x>\nInstalled-Size: 10\nDepends: libgcc-s1\nSection: libs\nPriority: optional\nHomepage: https://x\nDescription: GNU C Library\n Shared libraries.\n",
        );
        let e = status_entry(&Record {
            control: &c,
            status: "install ok installed",
            conffiles: vec![("/etc/ld.so.conf.d/x.conf".into(), "d4e7".into())],
        })
        .unwrap();
        assert_eq!(
            e,
            "Package: libc6\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: 10\nMaintainer: M <m@x>\nArchitecture: amd64\nMulti-Arch: same\nSource: glibc\nVersion: 2.36-9\nDepends: libgcc-s1\nConffiles:\n /etc/ld.so.conf.d/x.conf d4e7\nDescription: GNU C Library\n Shared libraries.\nHomepage: https://x\n"
        );
        assert_eq!(info_name(&c).unwrap().1, "libc6:amd64");
    }

    #[test]
    fn alternatives_file() {
        let a = Alternative {
            name: "awk".into(),
            link: "/usr/bin/awk".into(),
            path: "/usr/bin/mawk".into(),
            priority: 5,
            slaves: vec![
                (
                    "awk.1.gz".into(),
                    "/usr/share/man/man1/awk.1.gz".into(),
                    "/usr/share/man/man1/mawk.1.gz".into(),
                ),
                (
                    "nawk".into(),
                    "/usr/bin/nawk".into(),
                    "/usr/bin/mawk".into(),
                ),
                (
                    "nawk.1.gz".into(),
                    "/usr/share/man/man1/nawk.1.gz".into(),
                    "/usr/share/man/man1/mawk.1.gz".into(),
                ),
            ],
        };
        // Byte for byte what update-alternatives writes (bookworm's mawk).
        assert_eq!(
            alternatives_admin(&[a]),
            "auto\n/usr/bin/awk\nawk.1.gz\n/usr/share/man/man1/awk.1.gz\nnawk\n/usr/bin/nawk\nnawk.1.gz\n/usr/share/man/man1/nawk.1.gz\n\n/usr/bin/mawk\n5\n/usr/share/man/man1/mawk.1.gz\n/usr/bin/mawk\n/usr/share/man/man1/mawk.1.gz\n\n"
        );
        let trig = trigger_files(&[("debianutils", &{
            let mut c = control("Package: debianutils\n");
            c.files.insert(
                "triggers".into(),
                (
                    0o644,
                    b"interest-noawait /usr/share/debianutils/shells.d\n".to_vec(),
                ),
            );
            c
        })]);
        assert_eq!(
            trig["File"],
            "/usr/share/debianutils/shells.d debianutils/noawait\n"
        );
    }
}
