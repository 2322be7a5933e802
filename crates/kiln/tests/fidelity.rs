//! Docker fidelity (issue 14): what BuildKit (Docker 20.10, DOCKER_BUILDKIT=1) builds,
//! `kiln build` builds, and what `docker run` runs, `kiln run` runs. Each test builds one
//! context with both and compares the exported file trees (type, mode, owner, content,
//! link target, hard-link identity) and the config fields (Env in order, Cmd,
//! Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels, Healthcheck,
//! StopSignal, Shell, OnBuild). The last test walks every Dockerfile the tests have.

mod common;
use common::builds::*;
use common::*;
use std::path::Path;
use std::process::Command;

/// Builds `body` (`BASE` = the busybox base) with `files` in both builders, after
/// `prepare` has added to the context, and compares; returns kiln's tree.
fn compare(
    b: &Base,
    label: &str,
    body: &str,
    files: &[(&str, &str)],
    args: &[&str],
    prepare: impl FnOnce(&Path),
) -> Vec<String> {
    let label = unique(label);
    let ctx = b.context(&label, body, files);
    prepare(&ctx);
    let ctx_s = ctx.to_str().unwrap().to_string();
    let args: Vec<String> = args.iter().map(|a| a.replace("CTX", &ctx_s)).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let tag = format!("{label}:v1");
    docker_build(&ctx, &tag, &args);
    kiln_build(&b.k, &ctx, &tag, &args);
    compare_built(b, &label, &tag)
}

fn has(t: &[String], prefix: &str) -> bool {
    t.iter().any(|l| l.starts_with(prefix))
}

fn sh(script: &str, dir: &Path) {
    run(Command::new("sh").arg("-c").arg(script).current_dir(dir));
}

/// Item 1: ADD of local archives: plain, gzip, bzip2 and xz tars are unpacked; a gzip (or
/// xz) file that is not a tar is copied as it is.
#[test]
fn add_unpacks_every_tar_and_copies_the_rest() {
    let b = Base::new("f1");
    let body = "FROM BASE\nADD plain.tar /plain/\nADD gz.tar.gz /gz/\nADD bz.tar.bz2 /bz/\nADD xz.tar.xz /xz/\nADD data.csv.gz /data/\nADD notes.txt.xz /data/\nADD empty.tar.gz /empty/\n";
    let t = compare(
        &b,
        "add",
        body,
        &[("src/pkg/mod.py", "x = 1\n"), ("src/pkg/data.csv", "a,b\n")],
        &[],
        |ctx| {
            sh(
            "tar --owner=0 --group=0 -C src -cf plain.tar pkg && gzip -kn9 -c plain.tar > gz.tar.gz && bzip2 -kc plain.tar > bz.tar.bz2 && xz -kc plain.tar > xz.tar.xz \
             && printf 'a,b\\n1,2\\n' | gzip -n > data.csv.gz && printf 'notes\\n' | xz > notes.txt.xz && : | gzip -n > empty.tar.gz",
            ctx,
        )
        },
    );
    for p in [
        "plain/pkg/mod.py",
        "gz/pkg/mod.py",
        "bz/pkg/mod.py",
        "xz/pkg/mod.py",
    ] {
        assert!(has(&t, &format!("{p} Regular")), "{p}: {t:#?}");
    }
    assert!(has(&t, "data/data.csv.gz Regular"), "{t:#?}");
    assert!(has(&t, "data/notes.txt.xz Regular"), "{t:#?}");
}

/// Item 2: The automatic platform ARGs, in the global scope (FROM, global ARG defaults) and in
/// a stage after `ARG NAME`, with and without `--platform`.
#[test]
fn automatic_platform_args() {
    let b = Base::new("f2");
    let body = "ARG GLOBAL_ARCH=$TARGETARCH\nFROM --platform=$BUILDPLATFORM BASE\nARG GLOBAL_ARCH\nARG TARGETPLATFORM\nARG TARGETOS\nARG TARGETARCH\nARG TARGETVARIANT\nARG BUILDPLATFORM\nARG BUILDOS\nARG BUILDARCH\nARG BUILDVARIANT\nRUN echo \"$TARGETPLATFORM $TARGETOS $TARGETARCH [$TARGETVARIANT] $BUILDPLATFORM $BUILDOS $BUILDARCH [$BUILDVARIANT] $GLOBAL_ARCH\" > /platform\nLABEL arch=$TARGETARCH global=$GLOBAL_ARCH build=$BUILDPLATFORM\nENV DOWNLOAD=tool_${TARGETOS}_${TARGETARCH}.tar.gz\n";
    let t = compare(&b, "platform", body, &[], &[], |_| {});
    assert!(has(&t, "platform Regular"), "{t:#?}");
    compare(
        &b,
        "platform-flag",
        body,
        &[],
        &["--platform", "linux/amd64"],
        |_| {},
    );
}

/// Item 3: Symlinks as sources: a link in the context copies what it points to (inside the
/// context), under the link's name; links inside a copied directory stay links.
#[test]
fn symlink_sources_copy_their_targets() {
    let b = Base::new("f3");
    let body = "FROM BASE\nCOPY link.txt /x\nCOPY link.txt /into/\nCOPY linkeddir /d/\nCOPY realdir /r/\nADD link.txt /added\n";
    let t = compare(
        &b,
        "links",
        body,
        &[("real.txt", "real\n"), ("realdir/f", "f\n")],
        &[],
        |ctx| {
            sh("ln -s real.txt link.txt && ln -s realdir linkeddir && ln -s f realdir/inner-link && ln -s ../real.txt realdir/up-link", ctx)
        },
    );
    assert!(has(&t, "x Regular"), "{t:#?}");
    assert!(has(&t, "into/link.txt Regular"), "{t:#?}");
    assert!(has(&t, "d/f Regular"), "{t:#?}");
    assert!(has(&t, "r/inner-link Symlink"), "{t:#?}");
}

/// Item 4: `ENV A=10 B=$A`: every value on the line sees the environment before the line; a
/// variable set again keeps its place in Env.
#[test]
fn env_line_expands_against_the_previous_environment() {
    let b = Base::new("f4");
    let body = "FROM BASE\nENV A=1 Z=z\nENV A=10 B=$A C=${A}x\nENV A=$A$A PATH=/opt/bin:$PATH D=\"$B $Z\"\nRUN echo \"$A $B $C $D\" > /env.txt\n";
    compare(&b, "env", body, &[], &[], |_| {});
}

/// Item 5: `.dockerignore` exceptions below an excluded directory (`docs`, `/vendor`,
/// `./build` forms) re-include the files, in `COPY .` and in `COPY dir`.
#[test]
fn dockerignore_exceptions_below_excluded_directories() {
    let b = Base::new("f5");
    let body = "FROM BASE\nCOPY . /ctx/\nCOPY docs /docs/\nCOPY vendor /vendor/\n";
    let files = [
        (
            ".dockerignore",
            "docs\n!docs/README.md\n/vendor\n!vendor/keep/a.txt\n./build\n!build/keep.txt\n*.log\n",
        ),
        ("docs/README.md", "readme\n"),
        ("docs/other.md", "no\n"),
        ("docs/sub/x.md", "no\n"),
        ("vendor/keep/a.txt", "a\n"),
        ("vendor/keep/b.txt", "no\n"),
        ("vendor/other/c.txt", "no\n"),
        ("build/keep.txt", "k\n"),
        ("build/drop.txt", "no\n"),
        ("app.log", "no\n"),
        ("main.py", "m\n"),
    ];
    let t = compare(&b, "ignore", body, &files, &[], |_| {});
    for p in [
        "ctx/docs/README.md",
        "ctx/vendor/keep/a.txt",
        "ctx/build/keep.txt",
        "docs/README.md",
        "vendor/keep/a.txt",
    ] {
        assert!(has(&t, &format!("{p} Regular")), "{p}: {t:#?}");
    }
    assert!(!t
        .iter()
        .any(|l| l.contains("no-") || l.starts_with("ctx/docs/other")));
}

/// Item 6: `EXPOSE 8000-8002` exposes each port of the range.
#[test]
fn expose_ranges() {
    let b = Base::new("f6");
    compare(
        &b,
        "expose",
        "FROM BASE\nEXPOSE 8000-8002 53/udp 9000-9001/udp 7000/TCP\n",
        &[],
        &[],
        |_| {},
    );
}

/// Item 7: CMD then ENTRYPOINT: a CMD of the same stage is kept, an inherited one is reset
/// (also one inherited from an earlier stage).
#[test]
fn cmd_then_entrypoint_keeps_the_stage_cmd() {
    let b = Base::new("f7");
    compare(
        &b,
        "cmdkept",
        "FROM BASE\nCMD [\"kept\"]\nENTRYPOINT [\"echo\"]\n",
        &[],
        &[],
        |_| {},
    );
    compare(
        &b,
        "cmdreset",
        "FROM BASE AS parent\nCMD [\"inherited\"]\nFROM parent\nENTRYPOINT [\"echo\"]\n",
        &[],
        &[],
        |_| {},
    );
}

/// Item 8: WORKDIR makes the directory at once, owned by the USER of that moment (so a
/// non-root user can write there), and WorkingDir is kept as written.
#[test]
fn workdir_is_made_at_once_for_the_user() {
    let b = Base::new("f8");
    let body = "FROM BASE\nRUN mkdir -p /etc && echo 'root:x:0:0::/root:/bin/sh' > /etc/passwd && echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'root:x:0:' > /etc/group && echo 'app:x:1000:' >> /etc/group\nWORKDIR /opt/rootdir\nUSER app\nWORKDIR /data\nWORKDIR /final/dir/\nUSER 0\nRUN true\nUSER app\nWORKDIR /final/dir/\n";
    let label = unique("workdir");
    let ctx = b.context(&label, body, &[]);
    let tag = format!("{label}:v1");
    docker_build(&ctx, &tag, &[]);
    kiln_build(&b.k, &ctx, &tag, &[]);
    let kt = compare_built(&b, &label, &tag);
    let kconf = json(&b.k.ok(&["inspect", &tag]))[0]["Config"].clone();
    assert_eq!(kconf["WorkingDir"], "/final/dir/");
    for (p, owner) in [
        ("opt/rootdir", "0:0"),
        ("data", "1000:1000"),
        ("final", "1000:1000"),
        ("final/dir", "1000:1000"),
    ] {
        assert!(
            kt.iter()
                .any(|l| l.starts_with(&format!("{p} Directory 755 {owner} "))),
            "{p}: {kt:#?}"
        );
    }
    // The app can write there.
    let out = b.k.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-u",
        "app",
        "-w",
        "/data",
        &tag,
        "sh",
        "-c",
        "echo ok > /data/f && cat /data/f",
    ]);
    assert_eq!(out, "ok\n");
}

/// Item 9: Hard links in the build context stay hard links in the layer.
#[test]
fn hard_links_in_the_context_stay_hard_links() {
    let b = Base::new("f9");
    let t = compare(
        &b,
        "hardlinks",
        "FROM BASE\nCOPY models /models/\nCOPY . /all/\n",
        &[("models/a.bin", "weights\n"), ("models/c.bin", "other\n")],
        &[],
        |ctx| sh("ln models/a.bin models/b.bin", ctx),
    );
    assert!(
        t.iter()
            .any(|l| l.starts_with("models/b.bin Regular") && l.ends_with("=models/a.bin")),
        "{t:#?}"
    );
    // The layer holds the bytes once: the second name is a Link entry.
    let k = &b.k;
    let tag = format!("{}:v1", unique("hl"));
    let ctx = b.context(
        &unique("hl2"),
        "FROM scratch\nCOPY models /models/\n",
        &[("models/a.bin", "weights\n")],
    );
    sh("ln models/a.bin models/b.bin", &ctx);
    kiln_build(k, &ctx, &tag, &[]);
    let listing = tar_listing(&kiln_export(k, &tag));
    assert!(
        listing
            .iter()
            .any(|(n, d)| n.starts_with("models/") && d.starts_with("Link ")),
        "{listing:#?}"
    );
}

/// Item 10: ONBUILD triggers of an earlier stage fire in a stage built FROM it.
#[test]
fn onbuild_of_an_earlier_stage_fires() {
    let b = Base::new("f10");
    let t = compare(
        &b,
        "onbuild",
        "FROM BASE AS parent\nONBUILD RUN echo fired > /onbuild.txt\nONBUILD COPY trigger.txt /t.txt\nFROM parent\nRUN echo child > /child\n",
        &[("trigger.txt", "trigger\n")],
        &[],
        |_| {},
    );
    assert!(has(&t, "onbuild.txt Regular"), "{t:#?}");
    assert!(has(&t, "t.txt Regular"), "{t:#?}");
}

/// Item 11: `-f build/App.Dockerfile` uses `build/App.Dockerfile.dockerignore` when it exists.
#[test]
fn dockerfile_specific_ignore_file() {
    let b = Base::new("f11");
    let files = [
        (".dockerignore", "other.txt\n"),
        ("build/App.Dockerfile.dockerignore", "secret.txt\nbuild\n"),
        ("secret.txt", "no\n"),
        ("other.txt", "yes\n"),
        ("app.py", "a\n"),
    ];
    let t = compare(
        &b,
        "dfignore",
        "FROM BASE\nCOPY . /ctx/\n",
        &files,
        &["-f", "CTX/build/App.Dockerfile"],
        |ctx| {
            std::fs::rename(ctx.join("Dockerfile"), ctx.join("build/App.Dockerfile")).unwrap();
        },
    );
    assert!(has(&t, "ctx/other.txt "), "{t:#?}");
    assert!(!has(&t, "ctx/secret.txt"), "{t:#?}");
}

/// Item 12: A base without PATH: BuildKit's default PATH comes first in Env, and stays there
/// when the Dockerfile sets PATH later.
#[test]
fn default_path_comes_first() {
    let b = Base::new("f12");
    compare(
        &b,
        "path",
        "FROM BASE\nENV A=1\nENV PATH=/opt/bin:$PATH B=2\n",
        &[],
        &[],
        |_| {},
    );
    compare(
        &b,
        "path-scratch",
        "FROM scratch\nENV A=1\nCOPY f /f\n",
        &[("f", "f\n")],
        &[],
        |_| {},
    );
}

/// Item 13: `run -v DIR:/app IMAGE /app/run.sh`: the command is found after the mounts, as
/// `docker run` finds it; also through PATH in a mounted directory, and the 126/127 of a
/// command that is not executable or not there.
#[test]
fn run_finds_the_command_in_a_volume() {
    let b = Base::new("f13");
    let dir = b.k.dir.path().join("vol");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("run.sh"),
        "#!/bin/sh\necho \"from the volume $*\"\nexit 3\n",
    )
    .unwrap();
    std::fs::write(dir.join("plain.txt"), "not a program\n").unwrap();
    sh("chmod 755 run.sh && chmod 644 plain.txt", &dir);
    let vol = |target: &str| format!("{}:{target}", dir.display());
    let cases: Vec<(String, Vec<&str>)> = vec![
        (vol("/app"), vec!["/app/run.sh", "a", "b"]),
        (vol("/usr/local/bin"), vec!["run.sh", "via", "PATH"]),
        (vol("/app"), vec!["/app/nothere"]),
        (vol("/app"), vec!["/app/plain.txt"]),
    ];
    for (v, cmd) in &cases {
        let d = docker()
            .args(["run", "--rm", "--network", "none", "-v", v, &b.name])
            .args(cmd)
            .output()
            .unwrap();
        let k =
            b.k.cmd()
                .args(["run", "--rm", "--network", "none", "-v", v, &b.name])
                .args(cmd)
                .output()
                .unwrap();
        assert_eq!(
            (k.status.code(), String::from_utf8_lossy(&k.stdout)),
            (d.status.code(), String::from_utf8_lossy(&d.stdout)),
            "{v} {cmd:?}: kiln's stderr {}\ndocker's stderr {}",
            String::from_utf8_lossy(&k.stderr),
            String::from_utf8_lossy(&d.stderr)
        );
    }
}

/// Every Dockerfile the integration tests build (tests/common/builds.rs `DOCKERFILES`),
/// through both builders, compared; those that cannot be compared are named with the
/// reason.
#[test]
fn every_test_dockerfile_matches_docker() {
    let b = Base::new("fall");
    let mut skipped = Vec::new();
    for case in DOCKERFILES {
        if let Some(why) = case.not_comparable {
            skipped.push(format!("{}: {why}", case.name));
            continue;
        }
        b.compare_case(case);
    }
    eprintln!("not compared with Docker:\n  {}", skipped.join("\n  "));
    assert!(skipped.len() < DOCKERFILES.len() / 2, "{skipped:#?}");
}
