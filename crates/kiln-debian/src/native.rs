//! What the maintainer scripts of the base system do on a fresh install, done natively.
//!
//! Each package with a `postinst` (or a `preinst` with effects) is classified: handled here
//! (the effect written by kiln, byte for byte what the script writes), a no-op on a fresh
//! merged-/usr image (upgrade-only code, systemd units and init scripts that a container
//! never starts, Python byte-code that the interpreter writes on demand), or one that truly
//! needs its script: those run in a kiln container afterwards, and are listed.
//!
//! The facts come from reading the bookworm and trixie scripts; the integration tests
//! compare the result with a tree `mmdebstrap` made by running them.

use crate::deb::ControlFiles;
use crate::dpkg::{set_mtime, write_file, Alternative};
use crate::{DebianError, Result};
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// How a package's maintainer scripts are taken care of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handling {
    /// kiln writes the effect (described).
    Native(&'static str),
    /// Nothing to do in an image (why).
    Nothing(&'static str),
    /// The scripts run in a container.
    Script,
}

/// Classifies `name` (whose control archive is `control`).
pub fn handling(name: &str, control: &ControlFiles) -> Handling {
    let has = |s: &str| control.get(s).is_some();
    if !has("postinst") && !has("preinst") {
        return Handling::Nothing("no maintainer scripts");
    }
    match name {
        "base-files" => {
            Handling::Native("skeleton files, /usr/local, /var/run and /var/lock links, log files")
        }
        "base-passwd" => Handling::Native("/etc/passwd and /etc/group from the master files"),
        "passwd" => Handling::Native("shadow passwords (/etc/shadow, /etc/gshadow)"),
        "login" => Handling::Native("/etc/subuid, /etc/subgid, /var/log/faillog"),
        "libpam-modules" => Handling::Native("/etc/environment, /etc/security/opasswd"),
        "libc-bin" => Handling::Native("/etc/nsswitch.conf (ldconfig runs in the container step)"),
        "readline-common" => Handling::Native("/etc/inputrc"),
        "tzdata" => Handling::Native("/etc/localtime and /etc/timezone: Etc/UTC"),
        "dash" => Handling::Native("the /bin/sh diversions"),
        "mawk" | "bash" | "util-linux" | "tar" => Handling::Native("alternatives"),
        "debianutils" => Handling::Native("alternatives, /etc/shells"),
        "python3" => {
            Handling::Native("/etc/python3/debian_config (byte-code is written on first import)")
        }
        "python3-minimal" | "python3-distutils" | "python3-lib2to3" => Handling::Nothing(
            "byte-compiles its modules (and cleans up on upgrades): Python writes byte-code on first import",
        ),
        "openssl" => Handling::Native("/usr/lib/ssl -> /etc/ssl where libssl did not make it"),
        "ca-certificates" => Handling::Native(
            "/etc/ca-certificates.conf, the /etc/ssl/certs links and bundle (update-ca-certificates)",
        ),
        "coreutils" => Handling::Nothing("links /usr/bin/touch only on a /usr that is not merged"),
        "usrmerge" | "usr-is-merged" => {
            Handling::Nothing("converts a /usr that is not merged; kiln's is")
        }
        "init-system-helpers"
        | "libc6"
        | "libgcrypt20"
        | "libgssapi-krb5-2"
        | "perl"
        | "perl-base"
        | "debian-archive-keyring"
        | "libpam0g"
        | "adduser"
        | "libpython3.11-minimal"
        | "libpython3.12-minimal"
        | "libpython3.13-minimal" => Handling::Nothing("acts only on upgrades"),
        "dpkg" | "apt" | "e2fsprogs" => {
            Handling::Nothing("enables systemd timers; an image starts no systemd")
        }
        "util-linux-extra" => Handling::Nothing("links an init script; an image runs no init"),
        "debconf" => {
            Handling::Nothing("initialises its database, which debconf creates on first use")
        }
        _ if is_python_minimal(name) => Handling::Native(
            "/usr/local/lib/python3.X/dist-packages (byte-code is written on first import)",
        ),
        _ if is_python_interpreter(name) => Handling::Nothing(
            "byte-compiles the standard library: Python writes byte-code on first import",
        ),
        _ if control.get("preinst").is_none()
            && control.text("postinst").is_some_and(|s| only_byte_compiles(&s)) =>
        {
            Handling::Nothing("byte-compiles its modules (dh_python3): Python writes byte-code on first import")
        }
        _ => Handling::Script,
    }
}

/// The environment variable naming packages (comma-separated) whose native handling is
/// turned off, so their scripts run in the container step. For tests comparing the two.
pub const NO_NATIVE_ENV: &str = "KILN_DEBIAN_NO_NATIVE";

/// The packages [`NO_NATIVE_ENV`] names.
pub fn no_native() -> Vec<String> {
    std::env::var(NO_NATIVE_ENV)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// [`handling`] refined by what the tree holds: a package whose native effect does not
/// apply to this tree (or that [`NO_NATIVE_ENV`] names) runs its scripts.
pub fn handling_in(name: &str, control: &ControlFiles, tree: &Tree<'_>) -> Handling {
    let h = handling(name, control);
    if matches!(h, Handling::Nothing("no maintainer scripts")) {
        return h;
    }
    if no_native().iter().any(|n| n == name) {
        return Handling::Script;
    }
    match (name, &h) {
        ("ca-certificates", Handling::Native(_))
            if crate::cacerts::plan(tree, control).is_err() =>
        {
            Handling::Script
        }
        _ => h,
    }
}

/// Whether a postinst does nothing but dh_python3's byte-compilation snippet
/// (`py3compile -p PKG`, `pypy3compile -p PKG`).
fn only_byte_compiles(script: &str) -> bool {
    let mut compiles = false;
    for l in script.lines().map(str::trim) {
        if l.is_empty() || l.starts_with('#') || l == "set -e" || l == "fi" {
            continue;
        }
        let words: Vec<&str> = l.split_whitespace().collect();
        match words.as_slice() {
            ["if", "command", "-v", "py3compile" | "pypy3compile", ">/dev/null", "2>&1;", "then"]
            | ["if", "which", "py3compile" | "pypy3compile", ">/dev/null", "2>&1;", "then"] => {}
            ["py3compile", "-p", _] | ["pypy3compile", "-p", _, "||", "true"] => compiles = true,
            _ => return false,
        }
    }
    compiles
}

/// `python3.11-minimal`, `python3.13-minimal`.
fn is_python_minimal(name: &str) -> bool {
    python_version(name, "-minimal").is_some()
}

/// `python3.11`, `python3.13`.
fn is_python_interpreter(name: &str) -> bool {
    python_version(name, "").is_some()
}

fn python_version<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    let v = name.strip_prefix("python")?.strip_suffix(suffix)?;
    let (major, minor) = v.split_once('.')?;
    (major == "3" && !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit())).then_some(v)
}

/// A view of the tree being assembled: lower directories first, the writable one last.
pub struct Tree<'a> {
    /// Directories of the layers below (unpacked packages, earlier layers), bottom first;
    /// read, never written.
    pub lower: Vec<&'a Path>,
    /// The directory of the layer being written: every change lands here.
    pub out: &'a Path,
    /// The mtime of everything written (the image's SOURCE_DATE_EPOCH).
    pub mtime: i64,
}

impl Tree<'_> {
    /// The path holding `rel` (no leading `/`), topmost first.
    pub fn find(&self, rel: &str) -> Option<PathBuf> {
        std::iter::once(self.out)
            .chain(self.lower.iter().rev().copied())
            .map(|d| d.join(rel))
            .find(|p| p.symlink_metadata().is_ok())
    }
    /// Whether any tree holds `rel` (no leading `/`; a dangling symlink counts).
    pub fn exists(&self, rel: &str) -> bool {
        self.find(rel).is_some()
    }
    /// Whether `rel` is a directory (not a link to one) in the topmost tree holding it.
    pub fn is_dir(&self, rel: &str) -> bool {
        self.find(rel)
            .and_then(|p| p.symlink_metadata().ok())
            .is_some_and(|m| m.is_dir())
    }
    /// The names in directory `rel`, merged over the trees (down to the first tree where
    /// `rel` is not a directory).
    pub fn list(&self, rel: &str) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        for d in std::iter::once(self.out).chain(self.lower.iter().rev().copied()) {
            let p = d.join(rel);
            match p.symlink_metadata() {
                Ok(m) if m.is_dir() => {}
                Ok(_) => break,
                Err(_) => continue,
            }
            if let Ok(rd) = fs::read_dir(&p) {
                for e in rd.flatten() {
                    names.insert(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        names
    }
    fn read(&self, rel: &str) -> io::Result<Vec<u8>> {
        match self.find(rel) {
            Some(p) => fs::read(p),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("/{rel} is in no package"),
            )),
        }
    }
    /// Writes `bytes` at `rel` in `out` with `mode` and (uid, gid) `owner`, the tree's
    /// mtime, and parents as the lower trees have them.
    pub fn write(&self, rel: &str, bytes: &[u8], mode: u32, owner: (u32, u32)) -> io::Result<()> {
        let p = self.out.join(rel);
        self.parents(rel)?;
        write_file(&p, bytes, mode, self.mtime)?;
        chown(&p, owner)?;
        // chown clears set-id bits: set the mode again.
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
    }
    /// Copies `from` (looked up in the tree) to `to`, keeping its mode and mtime (`cp -p`).
    fn copy(&self, from: &str, to: &str) -> io::Result<()> {
        let src = self.find(from).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("/{from} is in no package"))
        })?;
        let m = fs::metadata(&src)?;
        let dst = self.out.join(to);
        self.parents(to)?;
        let _ = fs::remove_file(&dst);
        fs::copy(&src, &dst)?;
        fs::set_permissions(
            &dst,
            fs::Permissions::from_mode(m.permissions().mode() & 0o7777),
        )?;
        use std::os::unix::fs::MetadataExt;
        set_mtime(&dst, m.mtime())
    }
    pub(crate) fn dir(&self, rel: &str, mode: u32, owner: (u32, u32)) -> io::Result<()> {
        let p = self.out.join(rel);
        self.parents(rel)?;
        match fs::create_dir(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        chown(&p, owner)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
        set_mtime(&p, self.mtime)
    }
    /// Makes `rel` in `out` a symlink to `target`, replacing a file or directory there.
    pub fn link(&self, rel: &str, target: &str) -> io::Result<()> {
        let p = self.out.join(rel);
        self.parents(rel)?;
        if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&p)?;
        } else {
            let _ = fs::remove_file(&p);
        }
        symlink(target, &p)?;
        set_mtime(&p, self.mtime)
    }
    /// Creates the parent directories of `rel` in `out` with the metadata they have in the
    /// lower trees (0755 root where they are new), so the layer does not change them.
    fn parents(&self, rel: &str) -> io::Result<()> {
        let mut cur = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(part);
            let p = self.out.join(&cur);
            if p.symlink_metadata().is_ok() {
                continue;
            }
            let lower = self
                .lower
                .iter()
                .rev()
                .map(|d| d.join(&cur))
                .find_map(|q| q.symlink_metadata().ok().filter(|m| m.is_dir()));
            fs::create_dir(&p)?;
            use std::os::unix::fs::MetadataExt;
            let (mode, owner, mtime) = match lower {
                Some(m) => (m.mode() & 0o7777, (m.uid(), m.gid()), m.mtime()),
                None => (0o755, (0, 0), self.mtime),
            };
            chown(&p, owner)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
            set_mtime(&p, mtime)?;
        }
        Ok(())
    }
}

fn chown(p: &Path, (uid, gid): (u32, u32)) -> io::Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
}

/// gid of a group in the tree's /etc/group (falls back to Debian's fixed ids).
fn gid(tree: &Tree<'_>, name: &str, fallback: u32) -> u32 {
    let text = tree.read("etc/group").unwrap_or_default();
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[0] == name)
                .then(|| f[2].parse().ok())
                .flatten()
        })
        .unwrap_or(fallback)
}

/// Applies the native effect of `name`'s scripts onto `tree.out`. Alternatives and
/// diversions are returned, not written: they are shared databases the caller writes.
pub fn configure(name: &str, control: &ControlFiles, tree: &Tree<'_>) -> Result<Effects> {
    let mut fx = Effects::default();
    let e = |what: &str| {
        let name = name.to_string();
        let what = what.to_string();
        move |source: io::Error| DebianError::ConfigureIo {
            package: name,
            what,
            source,
        }
    };
    match name {
        "base-files" => {
            if tree.exists("etc/dpkg/origins/debian") && !tree.exists("etc/dpkg/origins/default") {
                tree.link("etc/dpkg/origins/default", "debian")
                    .map_err(e("origins"))?;
            }
            for (from, to) in [
                ("dot.profile", "root/.profile"),
                ("dot.bashrc", "root/.bashrc"),
                ("profile", "etc/profile"),
                ("motd", "etc/motd"),
            ] {
                if !tree.exists(to) && tree.exists(&format!("usr/share/base-files/{from}")) {
                    tree.copy(&format!("usr/share/base-files/{from}"), to)
                        .map_err(e(to))?;
                }
            }
            let mail = gid(tree, "mail", 8);
            for (d, mode, g) in [
                ("mnt", 0o755, 0),
                ("srv", 0o755, 0),
                ("opt", 0o755, 0),
                ("etc/opt", 0o755, 0),
                ("var/opt", 0o755, 0),
                ("media", 0o755, 0),
                ("var/mail", 0o2775, mail),
                ("run/lock", 0o1777, 0),
            ] {
                if !tree.exists(d) {
                    tree.dir(d, mode, (0, g)).map_err(e(d))?;
                }
            }
            tree.link("var/spool/mail", "../mail")
                .map_err(e("var/spool/mail"))?;
            tree.link("var/run", "/run").map_err(e("var/run"))?;
            tree.link("var/lock", "/run/lock").map_err(e("var/lock"))?;
            for d in [
                "usr/local",
                "usr/local/share",
                "usr/local/share/man",
                "usr/local/bin",
                "usr/local/games",
                "usr/local/lib",
                "usr/local/include",
                "usr/local/sbin",
                "usr/local/src",
                "usr/local/etc",
            ] {
                if !tree.exists(d) {
                    tree.dir(d, 0o755, (0, 0)).map_err(e(d))?;
                }
            }
            tree.link("usr/local/man", "share/man")
                .map_err(e("usr/local/man"))?;
            let utmp = gid(tree, "utmp", 43);
            for (f, mode) in [
                ("var/log/wtmp", 0o664),
                ("var/log/btmp", 0o660),
                ("var/log/lastlog", 0o664),
            ] {
                tree.write(f, b"", mode, (0, utmp)).map_err(e(f))?;
            }
            if tree.exists("usr/share/info")
                && !tree.exists("usr/share/info/dir")
                && tree.exists("usr/share/base-files/info.dir")
            {
                tree.copy("usr/share/base-files/info.dir", "usr/share/info/dir")
                    .map_err(e("usr/share/info/dir"))?;
            }
        }
        "base-passwd" => {
            for f in ["passwd", "group"] {
                if !tree.exists(&format!("etc/{f}")) {
                    let master = tree
                        .read(&format!("usr/share/base-passwd/{f}.master"))
                        .map_err(e(f))?;
                    tree.write(&format!("etc/{f}"), &master, 0o644, (0, 0))
                        .map_err(e(f))?;
                }
            }
        }
        "passwd" => shadowconfig(tree).map_err(e("shadowconfig"))?,
        "login" => {
            for f in ["etc/subuid", "etc/subgid", "var/log/faillog"] {
                if !tree.exists(f) {
                    tree.write(f, b"", 0o644, (0, 0)).map_err(e(f))?;
                }
            }
        }
        "libpam-modules" => {
            if !tree.exists("etc/security/opasswd") {
                tree.write("etc/security/opasswd", b"", 0o600, (0, 0))
                    .map_err(e("opasswd"))?;
            }
            if !tree.exists("etc/environment") {
                tree.write("etc/environment", b"", 0o644, (0, 0))
                    .map_err(e("environment"))?;
            }
        }
        "libc-bin" => {
            if !tree.exists("etc/nsswitch.conf") && tree.exists("usr/share/libc-bin/nsswitch.conf")
            {
                tree.copy("usr/share/libc-bin/nsswitch.conf", "etc/nsswitch.conf")
                    .map_err(e("nsswitch.conf"))?;
            }
            fx.ldconfig = true;
        }
        "readline-common"
            if !tree.exists("etc/inputrc") && tree.exists("usr/share/readline/inputrc") =>
        {
            tree.copy("usr/share/readline/inputrc", "etc/inputrc")
                .map_err(e("inputrc"))?;
        }
        "tzdata" => {
            tree.link("etc/localtime", "/usr/share/zoneinfo/Etc/UTC")
                .map_err(e("localtime"))?;
            tree.write("etc/timezone", b"Etc/UTC\n", 0o644, (0, 0))
                .map_err(e("timezone"))?;
        }
        "dash" => {
            fx.diversions.push((
                "/usr/share/man/man1/sh.1.gz".into(),
                "/usr/share/man/man1/sh.distrib.1.gz".into(),
                "dash".into(),
            ));
            fx.diversions
                .push(("/bin/sh".into(), "/bin/sh.distrib".into(), "dash".into()));
        }
        "debianutils" => fx.shells = true,
        "ca-certificates" => {
            let plan = crate::cacerts::plan(tree, control).map_err(|m| DebianError::Configure {
                package: name.to_string(),
                source: Box::new(m),
            })?;
            crate::cacerts::apply(tree, &plan).map_err(e("/etc/ssl/certs"))?;
        }
        "openssl" if !tree.exists("usr/lib/ssl") => {
            tree.link("usr/lib/ssl", "/etc/ssl")
                .map_err(e("usr/lib/ssl"))?;
        }
        "python3" if !tree.exists("etc/python3/debian_config") => {
            tree.write(
                    "etc/python3/debian_config",
                    b"[DEFAULT]\n# how to byte-compile (comma separated: standard, optimize)\nbyte-compile = standard\n",
                    0o644,
                    (0, 0),
                )
                .map_err(e("debian_config"))?;
        }
        _ if is_python_minimal(name) => {
            let v = python_version(name, "-minimal").expect("checked");
            tree.write(
                &format!("var/lib/python/python{v}_installed"),
                b"",
                0o644,
                (0, 0),
            )
            .map_err(e("python_installed"))?;
            for d in [
                format!("usr/local/lib/python{v}"),
                format!("usr/local/lib/python{v}/dist-packages"),
            ] {
                if !tree.exists(&d) {
                    tree.dir(&d, 0o755, (0, 0)).map_err(e(&d))?;
                }
            }
        }
        _ => {}
    }
    if matches!(handling(name, control), Handling::Native(_)) {
        if let Some(script) = control.text("postinst") {
            fx.alternatives = parse_alternatives(&script).map_err(|m| DebianError::Postinst {
                package: name.to_string(),
                source: Box::new(m),
            })?;
        }
    }
    Ok(fx)
}

/// What [`configure`] leaves for the shared databases.
#[derive(Debug, Default)]
pub struct Effects {
    /// What the package's postinst registers with `update-alternatives --install`.
    pub alternatives: Vec<Alternative>,
    /// (path, diverted to, package)
    pub diversions: Vec<(String, String, String)>,
    /// /etc/shells is to be (re)built.
    pub shells: bool,
    /// ldconfig is to run.
    pub ldconfig: bool,
}

/// `shadowconfig on`: passwords move to /etc/shadow and /etc/gshadow (0640 root:shadow),
/// `x` in /etc/passwd and /etc/group. The last-change day is the image's date, not today.
fn shadowconfig(tree: &Tree<'_>) -> io::Result<()> {
    if tree.exists("etc/shadow") {
        return Ok(());
    }
    let shadow_gid = gid(tree, "shadow", 42);
    let day = tree.mtime.max(0) / 86400;
    let passwd = String::from_utf8_lossy(&tree.read("etc/passwd")?).into_owned();
    let group = String::from_utf8_lossy(&tree.read("etc/group")?).into_owned();
    let (p2, s) = split_shadow(&passwd, 7, |f| {
        format!("{}:{}:{day}:0:99999:7:::\n", f[0], f[1])
    });
    let (g2, gs) = split_shadow(&group, 4, |f| format!("{}:{}::{}\n", f[0], f[1], f[3]));
    tree.write("etc/passwd", p2.as_bytes(), 0o644, (0, 0))?;
    tree.write("etc/group", g2.as_bytes(), 0o644, (0, 0))?;
    tree.write("etc/shadow", s.as_bytes(), 0o640, (0, shadow_gid))?;
    tree.write("etc/gshadow", gs.as_bytes(), 0o640, (0, shadow_gid))
}

/// Moves the password of each record of a passwd or group file (one with at least `fields`
/// fields) to the shadow file's record `shadow` makes of it, leaving `x`: the file and
/// its shadow file.
fn split_shadow(file: &str, fields: usize, shadow: impl Fn(&[&str]) -> String) -> (String, String) {
    let (mut out, mut shadowed) = (String::new(), String::new());
    for l in file.lines() {
        let mut f: Vec<&str> = l.split(':').collect();
        if f.len() < fields {
            out.push_str(l);
            out.push('\n');
            continue;
        }
        shadowed.push_str(&shadow(&f));
        f[1] = "x";
        out.push_str(&f.join(":"));
        out.push('\n');
    }
    (out, shadowed)
}

/// The `update-alternatives --install LINK NAME PATH PRIORITY [--slave LINK NAME PATH]...`
/// calls of a postinst. Arguments must be literal: a `$` or backquote in one is an error
/// (the package then needs its script run).
pub fn parse_alternatives(script: &str) -> Result<Vec<Alternative>> {
    let joined = script.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(pos) = line.find("update-alternatives") else {
            continue;
        };
        let words: Vec<&str> = line[pos..]
            .split_whitespace()
            .take_while(|w| !matches!(*w, "||" | "&&" | ";" | "|"))
            .collect();
        let Some(i) = words.iter().position(|w| *w == "--install") else {
            continue;
        };
        let a = &words[i + 1..];
        if a.len() < 4 {
            return Err(DebianError::Script(format!("cannot read `{line}`")));
        }
        if a.iter().any(|w| w.contains('$') || w.contains('`')) {
            return Err(DebianError::Script(format!("`{line}` is not literal")));
        }
        let priority = a[3]
            .parse()
            .map_err(|_| DebianError::Script(format!("`{line}`: priority `{}`", a[3])))?;
        let mut alt = Alternative {
            link: a[0].to_string(),
            name: a[1].to_string(),
            path: a[2].to_string(),
            priority,
            slaves: Vec::new(),
        };
        let mut rest = &a[4..];
        while let Some(w) = rest.first() {
            if *w != "--slave" || rest.len() < 4 {
                return Err(DebianError::Script(format!("cannot read `{line}`")));
            }
            alt.slaves.push((
                rest[2].to_string(),
                rest[1].to_string(),
                rest[3].to_string(),
            ));
            rest = &rest[4..];
        }
        out.push(alt);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternatives_from_postinst() {
        let s = "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n  update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 \\\n    --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/mawk.1.gz \\\n    --slave /usr/bin/nawk nawk /usr/bin/mawk\nfi\n";
        let a = parse_alternatives(s).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].name, "awk");
        assert_eq!(a[0].priority, 5);
        assert_eq!(
            a[0].slaves[1],
            (
                "nawk".into(),
                "/usr/bin/nawk".into(),
                "/usr/bin/mawk".into()
            )
        );
        assert!(parse_alternatives("update-alternatives --install $L x /p 1").is_err());
        assert!(
            parse_alternatives("update-alternatives --remove rename /usr/bin/prename")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn dh_python3_snippets() {
        let pip = "#!/bin/sh\nset -e\n\n# Automatically added by dh_python3\nif command -v py3compile >/dev/null 2>&1; then\n\tpy3compile -p python3-pip \nfi\nif command -v pypy3compile >/dev/null 2>&1; then\n\tpypy3compile -p python3-pip  || true\nfi\n\n# End automatically added section\n";
        assert!(only_byte_compiles(pip));
        assert!(!only_byte_compiles(&format!("{pip}adduser --system foo\n")));
        assert!(!only_byte_compiles("#!/bin/sh\nset -e\n"));
    }

    #[test]
    fn python_names() {
        assert!(is_python_minimal("python3.11-minimal"));
        assert!(!is_python_minimal("python3-minimal"));
        assert!(is_python_interpreter("python3.13"));
        assert!(!is_python_interpreter("python3"));
        assert!(!is_python_interpreter("python3.11-venv"));
    }
}
