//! A Dockerfile and its build context are the attacker: nothing a build does may read or
//! write the host outside the context and the store, nor change the context.

use crate::common::*;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// A directory on the host, outside any context, holding a secret a build must not read.
struct HostSecret {
    dir: PathBuf,
    secret: String,
}

impl HostSecret {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(label));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = format!("host-secret-{}", unique("s"));
        std::fs::write(dir.join("secret.txt"), &secret).unwrap();
        Self { dir, secret }
    }

    /// The host directory as seen from `/` (for a Dockerfile that tries to reach it).
    fn path(&self) -> String {
        self.dir.display().to_string()
    }

    /// Nothing was written next to the secret.
    fn untouched(&self) -> bool {
        let names: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names == ["secret.txt"]
    }
}

impl Drop for HostSecret {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every entry under `dir`: path, type, link target or content.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, p: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for e in entries {
            let rel = e.strip_prefix(root).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&e).unwrap();
            if md.file_type().is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    std::fs::read_link(&e).unwrap().display()
                ));
            } else if md.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &e, out);
            } else {
                out.push(format!("{rel} = {:?}", std::fs::read(&e).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// A context holding `Dockerfile` (`FROM bb:v1` + `body`).
fn context(k: &Kiln, label: &str, body: &str) -> PathBuf {
    let ctx = k.dir.path().join(label);
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM bb:v1\n{body}")).unwrap();
    ctx
}

fn build(k: &Kiln, ctx: &Path, tag: &str) -> std::process::Output {
    k.cmd()
        .args([
            "build",
            "--network",
            "none",
            "--progress",
            "plain",
            "-t",
            tag,
        ])
        .arg(ctx)
        .output()
        .unwrap()
}

/// Nothing of a build is left behind, and the store passes `kiln check`.
fn nothing_left(k: &Kiln) {
    k.assert_nothing_left();
    k.ok(&["check"]);
}

/// The reproduction of the review: an rw bind of the context makes a link to `/`, and the
/// next step binds that link to read and write the host's root. Now the first step's
/// writes are thrown away (copy-on-write, as BuildKit) and the link is not found.
#[test]
fn rw_bind_mount_of_the_context_is_copy_on_write() {
    let k = kiln_with_busybox();
    let host = HostSecret::new("bindrw");
    let ctx = context(
        &k,
        "ctx-rw",
        &format!(
            "RUN --mount=type=bind,source=.,target=/ctx,rw /bin/busybox ln -s / /ctx/hostroot && echo made > /ctx/new.txt && cat /ctx/new.txt\n\
             RUN --mount=type=bind,source=hostroot,target=/h,rw sh -c 'cat /h{0}/secret.txt; echo x > /h{0}/PWNED'\n",
            host.path()
        ),
    );
    let before = tree(&ctx);
    let out = build(&k, &ctx, "rw:1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the link must not exist:\n{stderr}");
    assert!(
        stderr.contains("`hostroot` is not in the build context"),
        "{stderr}"
    );
    // The first step could write in its view of the context (it printed its file)...
    assert!(stderr.contains("made"), "{stderr}");
    // ... and the context itself is as it was.
    assert_eq!(tree(&ctx), before);
    assert!(!stderr.contains(&host.secret), "{stderr}");
    assert!(host.untouched());
    nothing_left(&k);
}

/// A context that ships a link to `/` (or `../..`) binds the context itself, never the
/// host's root; writes through an rw bind stay in the step's view.
#[test]
fn bind_mount_sources_resolve_inside_the_context() {
    let k = kiln_with_busybox();
    let host = HostSecret::new("bindlink");
    let ctx = context(
        &k,
        "ctx-link",
        &format!(
            "RUN --mount=type=bind,source=hostroot,target=/h,rw sh -c 'cat /h{0}/secret.txt; echo x > /h{0}/PWNED; echo x > /h/PWNED; ls /h'\n\
             RUN --mount=type=bind,source=up/../../..,target=/u sh -c 'cat /u{0}/secret.txt; ls /u'\n\
             RUN --mount=type=bind,source=dotdot,target=/d sh -c 'cat /d{0}/secret.txt; ls /d'\n",
            host.path()
        ),
    );
    symlink("/", ctx.join("hostroot")).unwrap();
    std::fs::create_dir(ctx.join("up")).unwrap();
    symlink("../../../../../../..", ctx.join("dotdot")).unwrap();
    let before = tree(&ctx);
    let out = build(&k, &ctx, "link:1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Each step saw the context: its Dockerfile is listed.
    assert!(stderr.matches("Dockerfile").count() >= 3, "{stderr}");
    assert!(!stderr.contains(&host.secret), "{stderr}");
    assert!(host.untouched());
    assert_eq!(tree(&ctx), before);
    nothing_left(&k);
}

/// COPY resolves its sources as if the context were `/` (BuildKit): a link to a host
/// directory leads nowhere, a link to `.` cannot get around .dockerignore, and a link
/// inside the context copies what it points to.
#[test]
fn copy_sources_resolve_inside_the_context() {
    let k = kiln_with_busybox();
    let host = HostSecret::new("copy");
    for (label, link, source) in [
        ("abs", host.path(), "dirlink/secret.txt"),
        (
            "rel",
            "../../../../../../..".to_string() + &host.path(),
            "dirlink/secret.txt",
        ),
        ("file", format!("{}/secret.txt", host.path()), "dirlink"),
    ] {
        let ctx = context(
            &k,
            &format!("ctx-copy-{label}"),
            &format!("COPY {source} /x\n"),
        );
        symlink(&link, ctx.join("dirlink")).unwrap();
        let out = build(&k, &ctx, &format!("copy-{label}:1"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{label}: copied from the host:\n{stderr}"
        );
        assert!(
            stderr.contains("no such file or directory in the build context"),
            "{label}: {stderr}"
        );
    }
    // .dockerignore holds under another name.
    let ctx = context(&k, "ctx-ignored", "COPY selflink/ignored.txt /y\n");
    std::fs::write(ctx.join("ignored.txt"), "must not be copied").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "ignored.txt\n").unwrap();
    symlink(".", ctx.join("selflink")).unwrap();
    let out = build(&k, &ctx, "ignored:1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("selflink/ignored.txt"), "{stderr}");

    // Links inside the context: what they point to is copied, under the link's name.
    let ctx = context(
        &k,
        "ctx-inside",
        "COPY link.txt abs.txt /d/\nCOPY linkeddir /e/\nCOPY linkeddir/inner /f\n",
    );
    std::fs::write(ctx.join("real.txt"), "real content").unwrap();
    std::fs::create_dir_all(ctx.join("realdir")).unwrap();
    std::fs::write(ctx.join("realdir/inner"), "inner content").unwrap();
    symlink("real.txt", ctx.join("link.txt")).unwrap();
    symlink("/real.txt", ctx.join("abs.txt")).unwrap();
    symlink("realdir", ctx.join("linkeddir")).unwrap();
    let out = build(&k, &ctx, "inside:1");
    assert_success(&out);
    let shown = k.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "inside:1",
        "sh",
        "-c",
        "cat /d/link.txt /d/abs.txt /e/inner /f; ls -l /d",
    ]);
    assert!(
        shown.starts_with("real contentreal contentinner contentinner content"),
        "{shown}"
    );
    assert!(!shown.contains("->"), "links were copied as links: {shown}");
    nothing_left(&k);
}

/// A RUN step cannot lift its own limits through the cgroup file system.
#[test]
fn build_steps_see_the_cgroup_filesystem_read_only() {
    let k = kiln_with_busybox();
    let ctx = context(
        &k,
        "ctx-cgroup",
        "RUN ls /sys/fs/cgroup/ && ! echo max > /sys/fs/cgroup/pids/pids.max && ! ls /sys/fs/cgroup/systemd/release_agent\n",
    );
    let out = build(&k, &ctx, "cg:1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    nothing_left(&k);
}

/// A failed step leaves no container directory, mount or temporary file behind.
#[test]
fn a_failed_build_leaves_nothing_behind() {
    let k = kiln_with_busybox();
    let ctx = context(
        &k,
        "ctx-fail",
        "RUN --mount=type=bind,source=.,target=/c,rw sh -c 'echo x > /c/y; exit 3'\n",
    );
    let out = build(&k, &ctx, "fail:1");
    assert_eq!(out.status.code(), Some(1));
    let tmp: Vec<_> = std::fs::read_dir(k.root().join("tmp"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "tmp/ holds {tmp:?}");
    assert!(!ctx.join("y").exists());
    nothing_left(&k);
}
