//! `kiln build` against `docker build` (BuildKit, Docker 20.10): a busybox base under one
//! name in both, builds of the same context by each, their exported file trees and their
//! configs, compared. Also the table of every Dockerfile the tests build
//! ([`DOCKERFILES`]): tests/build.rs builds them one by one, tests/fidelity.rs walks
//! them all through both builders.

use super::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The busybox base under one name in both Docker and kiln.
pub struct Base {
    pub k: Kiln,
    pub name: String,
}

impl Base {
    pub fn new(prefix: &str) -> Self {
        let k = Kiln::new();
        let name = format!("{}:v1", unique(prefix));
        run(docker().arg("import").arg(busybox_tar()).arg(&name));
        k.ok(&["import", busybox_rootfs().to_str().unwrap(), "-t", &name]);
        Self { k, name }
    }

    /// A context directory with `Dockerfile` = `FROM base` + `body`, and `files`.
    pub fn context(&self, label: &str, body: &str, files: &[(&str, &str)]) -> PathBuf {
        let ctx = self.k.dir.path().join(format!("ctx-{label}"));
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), body.replace("BASE", &self.name)).unwrap();
        for (path, content) in files {
            let p = ctx.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
        }
        ctx
    }
}

impl Drop for Base {
    fn drop(&mut self) {
        let _ = docker().args(["rmi", "-f", &self.name]).output();
    }
}

pub fn docker_build(ctx: &Path, tag: &str, extra: &[&str]) {
    run(docker()
        .env("DOCKER_BUILDKIT", "1")
        .args(["build", "--network", "none", "-q", "-t", tag])
        .args(extra)
        .arg(ctx));
}

pub fn kiln_build(k: &Kiln, ctx: &Path, tag: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "build",
        "--network",
        "none",
        "--progress",
        "plain",
        "-t",
        tag,
    ];
    args.extend_from_slice(extra);
    let ctx = ctx.to_str().unwrap().to_string();
    args.push(&ctx);
    let out = k.cmd().args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "kiln build failed:\n{stderr}");
    stderr
}

/// `docker export` of a container of `tag`, as a tar file under `dir`.
pub fn docker_export(dir: &Path, tag: &str) -> PathBuf {
    let cid = run(docker().args(["create", tag, "true"]));
    let out = dir.join(format!("docker-{}.tar", tag.replace([':', '/'], "_")));
    run(docker().args(["export", "-o"]).arg(&out).arg(cid.trim()));
    run(docker().args(["rm", cid.trim()]));
    out
}

/// `kiln export` of `tag`, as a tar file in the store's directory.
pub fn kiln_export(k: &Kiln, tag: &str) -> PathBuf {
    let out = k
        .dir
        .path()
        .join(format!("kiln-{}.tar", tag.replace([':', '/'], "_")));
    k.ok(&["export", tag, "-o", out.to_str().unwrap()]);
    out
}

pub fn docker_tree(dir: &Path, tag: &str) -> Vec<String> {
    flat_tree(&docker_export(dir, tag))
}

pub fn kiln_tree(k: &Kiln, tag: &str) -> Vec<String> {
    flat_tree(&kiln_export(k, tag))
}

/// Like [`flat_tree`], with hard-link identity: a `Link` entry is shown as the file it
/// links to, and every name of a file with several names ends in `=GROUP`, GROUP being
/// the first of its names in path order. Two exports compare as trees whichever name
/// each tar wrote first.
pub fn linked_tree(p: &Path) -> Vec<String> {
    let entries = tar_listing(p);
    let desc: std::collections::BTreeMap<String, String> = entries.iter().cloned().collect();
    // name -> the name holding the data.
    let mut target: std::collections::BTreeMap<String, String> = Default::default();
    for (name, d) in &entries {
        if let Some(rest) = d.strip_prefix("Link ") {
            let t = rest.split(' ').nth(2).unwrap_or("");
            let t = t
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_string();
            target.insert(name.clone(), t.clone());
            target.entry(t.clone()).or_insert(t);
        }
    }
    let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, t) in &target {
        groups.entry(t.clone()).or_default().push(name.clone());
    }
    let group_of = |name: &str| -> Option<String> {
        let t = target.get(name)?;
        groups.get(t).and_then(|g| g.iter().min().cloned())
    };
    let mut v: Vec<String> = entries
        .iter()
        .filter(|(name, _)| {
            !name.is_empty()
                && !DOCKER_RUNTIME_ENTRIES
                    .iter()
                    .any(|r| name == r || name.starts_with(&format!("{r}/")))
        })
        .map(|(name, d)| {
            let shown = match (d.starts_with("Link "), target.get(name)) {
                (true, Some(t)) => desc.get(t).cloned().unwrap_or_else(|| d.clone()),
                _ => d.clone(),
            };
            match group_of(name) {
                Some(g) => format!("{name} {shown} ={g}"),
                None => format!("{name} {shown}"),
            }
        })
        .collect();
    v.sort();
    v
}

pub const CONFIG_KEYS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Labels",
    "Volumes",
    "StopSignal",
];

/// Every config field the fidelity tests compare.
pub const ALL_CONFIG_KEYS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Labels",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
];

fn normalized(v: &serde_json::Value, k: &str) -> serde_json::Value {
    let x = v.get(k).cloned().unwrap_or(serde_json::Value::Null);
    // Docker writes empty strings, maps and lists where kiln leaves the key out.
    match &x {
        serde_json::Value::String(s) if s.is_empty() => serde_json::Value::Null,
        serde_json::Value::Object(m) if m.is_empty() => serde_json::Value::Null,
        serde_json::Value::Array(a) if a.is_empty() => serde_json::Value::Null,
        _ => x,
    }
}

pub fn config_of(v: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    CONFIG_KEYS
        .iter()
        .map(|k| (k.to_string(), normalized(v, k)))
        .collect()
}

/// [`ALL_CONFIG_KEYS`] of a config.
pub fn full_config_of(v: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    ALL_CONFIG_KEYS
        .iter()
        .map(|k| (k.to_string(), normalized(v, k)))
        .collect()
}

/// Builds `body` with both and compares trees and configs; returns kiln's tree.
pub fn same_as_docker(
    b: &Base,
    label: &str,
    body: &str,
    files: &[(&str, &str)],
    extra: &[&str],
) -> Vec<String> {
    let ctx = b.context(label, body, files);
    let tag = format!("{}:v1", unique(label));
    docker_build(&ctx, &tag, extra);
    kiln_build(&b.k, &ctx, &tag, extra);
    let dt = docker_tree(b.k.dir.path(), &tag);
    let kt = kiln_tree(&b.k, &tag);
    let dconf = json(&run(docker().args(["image", "inspect", &tag])))[0]["Config"].clone();
    let kconf = json(&b.k.ok(&["inspect", &tag]))[0]["Config"].clone();
    run(docker().args(["rmi", &tag]));
    let only_docker: Vec<_> = dt.iter().filter(|l| !kt.contains(l)).collect();
    let only_kiln: Vec<_> = kt.iter().filter(|l| !dt.contains(l)).collect();
    assert!(
        only_docker.is_empty() && only_kiln.is_empty(),
        "{label}: trees differ\nonly in docker's: {only_docker:#?}\nonly in kiln's: {only_kiln:#?}"
    );
    assert_eq!(
        config_of(&kconf),
        config_of(&dconf),
        "{label}: configs differ"
    );
    kt
}

/// What both builders made of one context: trees with hard-link identity
/// ([`linked_tree`]) and configs ([`full_config_of`]) compared; kiln's tree returned.
pub fn compare_built(b: &Base, label: &str, tag: &str) -> Vec<String> {
    let mut dt = linked_tree(&docker_export(b.k.dir.path(), tag));
    let kt = linked_tree(&kiln_export(&b.k, tag));
    // `docker create` makes /etc for its mount points when the image has none.
    if !kt.iter().any(|l| l.starts_with("etc ")) && !dt.iter().any(|l| l.starts_with("etc/")) {
        dt.retain(|l| !l.starts_with("etc Directory 755 0:0 "));
    }
    let dconf = json(&run(docker().args(["image", "inspect", tag])))[0]["Config"].clone();
    let kconf = json(&b.k.ok(&["inspect", tag]))[0]["Config"].clone();
    let _ = docker().args(["rmi", tag]).output();
    let only_docker: Vec<_> = dt.iter().filter(|l| !kt.contains(l)).collect();
    let only_kiln: Vec<_> = kt.iter().filter(|l| !dt.contains(l)).collect();
    assert!(
        only_docker.is_empty() && only_kiln.is_empty(),
        "{label}: trees differ\nonly in docker's: {only_docker:#?}\nonly in kiln's: {only_kiln:#?}"
    );
    assert_eq!(
        full_config_of(&kconf),
        full_config_of(&dconf),
        "{label}: configs differ (docker: {dconf:#})"
    );
    kt
}

/// One Dockerfile of the tests, with its context. `BASE` is the busybox base image,
/// `PARENT` the image built from `parent` first (by each builder), `CACHEID` a fresh
/// cache id, `CTX` (in `args`) the context directory.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub name: &'static str,
    pub dockerfile: &'static str,
    pub files: &'static [(&'static str, &'static str)],
    /// Build flags, the same for both builders.
    pub args: &'static [&'static str],
    /// Secrets (`id`, content) given as `--secret id=ID,src=FILE` to both.
    pub secrets: &'static [(&'static str, &'static str)],
    /// A Dockerfile (FROM BASE ...) built first as `PARENT`, with the same files.
    pub parent: Option<&'static str>,
    /// Makes more of the context (archives, binaries).
    pub prepare: Option<fn(&Path)>,
    /// Both builders must refuse it.
    pub fails: bool,
    /// Why the walk cannot compare it with Docker (it is still listed, never skipped
    /// silently).
    pub not_comparable: Option<&'static str>,
}

impl Case {
    const fn new(name: &'static str, dockerfile: &'static str) -> Case {
        Case {
            name,
            dockerfile,
            files: &[],
            args: &[],
            secrets: &[],
            parent: None,
            prepare: None,
            fails: false,
            not_comparable: None,
        }
    }
    const fn files(mut self, files: &'static [(&'static str, &'static str)]) -> Case {
        self.files = files;
        self
    }
    const fn args(mut self, args: &'static [&'static str]) -> Case {
        self.args = args;
        self
    }
    const fn fails(mut self) -> Case {
        self.fails = true;
        self
    }
    const fn because(mut self, why: &'static str) -> Case {
        self.not_comparable = Some(why);
        self
    }
}

pub const INSTRUCTIONS: Case = Case::new(
    "instructions",
    r#"FROM BASE
ARG VERSION=1.0
ARG EMPTY
ENV APP_HOME=/srv/app \
    GREETING="hello world" PLAIN=plain
ENV LEGACY value with spaces
LABEL org.example.version=${VERSION} "quoted key"="a b" other=${EMPTY:-fallback}
WORKDIR $APP_HOME
WORKDIR sub
RUN echo "${VERSION:+set}-${EMPTY:-unset}" > version.txt && mkdir -p /data/keep && echo k > /data/keep/k
RUN ["/bin/sh", "-c", "echo exec-form > /exec.txt"]
COPY app.py ./
COPY conf/ /etc/app/
COPY --chown=1000:1000 conf/a.conf /owned/
COPY --chmod=0640 conf/a.conf /moded.conf
COPY *.txt /texts/
COPY dir1 dir2 /merged/
RUN rm -rf /data/keep && ln -s /srv/app/sub/version.txt /link
USER 1000:1000
EXPOSE 8000 9000/udp
VOLUME ["/data", "/models"]
STOPSIGNAL SIGINT
ENTRYPOINT ["python3", "app.py"]
CMD ["--port", "8000"]
"#,
)
.files(&[
    ("app.py", "print('hi')\n"),
    ("conf/a.conf", "a=1\n"),
    ("conf/nested/b.conf", "b=2\n"),
    ("one.txt", "1\n"),
    ("two.txt", "2\n"),
    ("dir1/x", "x\n"),
    ("dir2/y", "y\n"),
]);

pub const MULTI_STAGE: Case = Case::new(
    "multi",
    r#"FROM BASE AS builder
RUN mkdir -p /out && echo built > /out/artifact && echo tmp > /out/tmp.log
FROM BASE AS unused
RUN exit 1
FROM builder AS tester
RUN echo tested > /out/tested
FROM BASE
COPY --from=builder /out/artifact /app/artifact
COPY --from=0 /out /copied-dir
COPY . /ctx/
"#,
)
.files(&[
    (
        ".dockerignore",
        "# comment\n*.log\n**/secret*\n!keep.log\n/build\nsub/*/deep\n",
    ),
    ("a.log", "no\n"),
    ("keep.log", "yes\n"),
    ("x/secret.txt", "no\n"),
    ("x/visible.txt", "yes\n"),
    ("build/out", "no\n"),
    ("sub/a/deep", "no\n"),
    ("sub/a/shallow", "yes\n"),
]);

/// [`MULTI_STAGE`] with `--target tester`.
pub const MULTI_STAGE_TARGET: Case = Case {
    name: "multitarget",
    args: &["--target", "tester"],
    ..MULTI_STAGE
};

pub const RUN_MOUNTS: Case = Case {
    secrets: &[("token", "s3cr3t-value\n")],
    ..Case::new(
        "mounts",
        r#"FROM BASE
RUN --mount=type=cache,id=CACHEID,target=/var/cache/app echo cached >> /var/cache/app/log && cat /var/cache/app/log > /cache-seen
RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && ls /scratch > /tmpfs-seen
RUN --mount=type=bind,source=files,target=/mnt/files cat /mnt/files/f > /bind-seen
RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /secret-len
"#,
    )
    .files(&[("files/f", "from the context\n")])
};

fn bundle_tar_gz(ctx: &Path) {
    let src = ctx.parent().unwrap().join(format!(
        "bundle-src-{}",
        ctx.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(src.join("pkg")).unwrap();
    std::fs::write(src.join("pkg/mod.py"), "x = 1\n").unwrap();
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "-C"])
        .arg(&src)
        .arg("-czf")
        .arg(ctx.join("bundle.tar.gz"))
        .arg("pkg"));
}

pub const ADD_ARCHIVE_HEREDOCS: Case = Case {
    prepare: Some(bundle_tar_gz),
    ..Case::new(
        "add",
        "FROM BASE\nADD bundle.tar.gz /opt/\nRUN <<EOF\necho from heredoc > /heredoc.txt\nEOF\nCOPY <<EOT /etc/app.conf\nkey=value\nEOT\n",
    )
    .because("heredocs are Dockerfile 1.4; Docker 20.10's built-in frontend refuses them (and cannot fetch a newer one offline); ADD of archives is compared in tests/fidelity.rs")
};

pub const CACHE_STEPS: Case = Case::new(
    "cache",
    "FROM BASE\nRUN echo deps > /deps\nCOPY requirements.txt /app/\nRUN cat /app/requirements.txt > /app/installed\nCOPY app.py /app/\nCMD [\"cat\", \"/app/app.py\"]\n",
)
.files(&[("requirements.txt", "numpy\n"), ("app.py", "v1\n")]);

pub const REPRODUCIBLE: Case = Case::new(
    "repro",
    "FROM BASE\nCOPY . /src/\nRUN ls -la /src > /listing && echo built > /marker\nENV A=1\nCMD [\"sh\"]\n",
)
.files(&[("a.txt", "a\n"), ("dir/b.txt", "b\n")])
.because("RUN ls -la records file times and sizes of directories, which differ between any two builds");

pub const BAD_SYNTAX: Case = Case::new("syntax", "FROM BASE\nRUN true\nCOPY\n").fails();
pub const BAD_UNKNOWN: Case = Case::new("unknown", "FROM BASE\nFROBNICATE now\n").fails();
pub const BAD_MISSING: Case = Case::new("missing", "FROM BASE\nCOPY nothere.txt /x\n").fails();
pub const BAD_FAILING: Case = Case::new(
    "failing",
    "FROM BASE\nRUN echo first-line && echo about-to-fail >&2 && exit 3\n",
)
.fails();

pub const INTERRUPTED: Case = Case::new(
    "int",
    "FROM BASE\nRUN echo a > /a\nRUN echo started && sleep 30\n",
)
.because("the test interrupts it; a whole build takes 30 s of sleep");

pub const PRIVATE_NETWORK: Case = Case::new(
    "net",
    "FROM BASE\nRUN (printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc 127.0.0.1 PORT | busybox tail -n 1 > /got) 2>/dev/null; [ -s /got ] || echo unreachable > /got\nCMD [\"cat\", \"/got\"]\n",
)
.because("needs a server on the host's loopback (PORT) and a network");

pub const LOCAL_CACHE: Case = Case::new(
    "cx",
    "FROM BASE\nCOPY data.txt /data.txt\nRUN cat /data.txt > /copy.txt\nRUN echo done > /done\n",
)
.files(&[("data.txt", "payload\n")]);

pub const HOST_CA: Case = Case::new(
    "ca",
    "FROM BASE\nRUN cat \"$SSL_CERT_FILE\" | grep -c 'BEGIN CERT' > /seen && echo \"$PIP_CERT $REQUESTS_CA_BUNDLE\" > /vars\n",
)
.because("--host-ca is kiln's own flag; Docker has no equivalent");

pub const ONBUILD_PARENT: &str =
    "FROM BASE\nONBUILD RUN echo fired > /onbuild.txt\nONBUILD COPY trigger.txt /from-trigger.txt\n";

fn bundle_tar(ctx: &Path) {
    let src = ctx.parent().unwrap().join(format!(
        "bundle-src-{}",
        ctx.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(src.join("pkg/sub")).unwrap();
    std::fs::write(src.join("pkg/sub/mod.py"), "x = 1\n").unwrap();
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(ctx.join("bundle.tar"))
        .arg("pkg"));
}

pub const DIRECTIVES: Case = Case {
    parent: Some(ONBUILD_PARENT),
    prepare: Some(bundle_tar),
    ..Case::new(
        "directives",
        "# escape=`\nARG TAG=v1\nARG SRC=BASE\nFROM ${SRC} AS src\nRUN mkdir -p /payload && echo p > /payload/p\nFROM PARENT\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN echo one `\n    two > /continued.txt\nADD bundle.tar /opt/\nCOPY --from=src /payload /payload\nCOPY --from=BASE /bin/busybox /copied-busybox\nHEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD cat /continued.txt\nENTRYPOINT echo entry\nCMD echo cmd\n",
    )
    .files(&[("trigger.txt", "from the trigger\n")])
};

pub const ADD_URL: Case = Case::new(
    "url",
    "FROM BASE\nADD --checksum=SUM http://127.0.0.1:PORT/models/w.bin /models/\n",
)
.because("needs an HTTP server on loopback, which Docker's daemon (--network none) cannot reach; ADD --checksum is newer than Docker 20.10");

pub const COPY_EXCLUDE_PARENTS: Case = Case::new(
    "cx",
    "FROM BASE\nCOPY --exclude=*.tmp --exclude=cache/ src/ /app/\nCOPY --parents a/*/conf.yaml /etc/svc/\n",
)
.files(&[
    ("src/main.py", "m\n"),
    ("src/junk.tmp", "j\n"),
    ("src/cache/x", "c\n"),
    ("src/pkg/mod.py", "p\n"),
    ("a/one/conf.yaml", "1\n"),
    ("a/two/conf.yaml", "2\n"),
    ("a/two/other.txt", "o\n"),
])
.because("COPY --exclude and --parents are Dockerfile 1.7; Docker 20.10's BuildKit refuses them");

pub const ML: Case = Case::new(
    "ml",
    "FROM pybase:bookworm\nRUN pip install --break-system-packages --no-cache-dir --progress-bar off scikit-learn\nWORKDIR /app\nCOPY app.py ./\nCMD [\"python3\", \"app.py\"]\n",
)
.because("needs PyPI (network) and a Debian base made by mmdebstrap");

pub const PARALLEL_STAGES: Case = Case::new(
    "par",
    "FROM BASE AS a\nRUN cat /proc/uptime > /start && sleep 2 && cat /proc/uptime > /end\nFROM BASE AS b\nRUN cat /proc/uptime > /start && sleep 2 && cat /proc/uptime > /end\nFROM BASE\nCOPY --from=a /start /a-start\nCOPY --from=a /end /a-end\nCOPY --from=b /start /b-start\nCOPY --from=b /end /b-end\n",
)
.because("records the times it ran (/proc/uptime): the contents differ by design");

fn scratch_context(ctx: &Path) {
    std::fs::create_dir_all(ctx.join("bin")).unwrap();
    std::fs::copy(
        busybox_rootfs().join("bin/busybox"),
        ctx.join("bin/busybox"),
    )
    .unwrap();
    std::fs::rename(ctx.join("Dockerfile"), ctx.join("Containerfile")).unwrap();
}

pub const SCRATCH_CONTAINERFILE: Case = Case {
    prepare: Some(scratch_context),
    ..Case::new(
        "scratch",
        "FROM scratch\nCOPY . /\nENTRYPOINT [\"/bin/busybox\", \"echo\"]\nCMD [\"from scratch\"]\n",
    )
    .files(&[
        ("notes.txt", "ignored\n"),
        (".dockerignore", "bin\n"),
        ("Containerfile.dockerignore", "notes.txt\n"),
    ])
    .args(&["-f", "CTX/Containerfile", "--label", "team=ml"])
};

/// Every Dockerfile the integration tests build, with its context.
pub const DOCKERFILES: &[Case] = &[
    INSTRUCTIONS,
    MULTI_STAGE,
    MULTI_STAGE_TARGET,
    RUN_MOUNTS,
    ADD_ARCHIVE_HEREDOCS,
    CACHE_STEPS,
    REPRODUCIBLE,
    BAD_SYNTAX,
    BAD_UNKNOWN,
    BAD_MISSING,
    BAD_FAILING,
    INTERRUPTED,
    PRIVATE_NETWORK,
    LOCAL_CACHE,
    HOST_CA,
    DIRECTIVES,
    ADD_URL,
    COPY_EXCLUDE_PARENTS,
    ML,
    PARALLEL_STAGES,
    SCRATCH_CONTAINERFILE,
];

impl Base {
    /// The context of `case` (its Dockerfile with `BASE`, `PARENT` and `CACHEID`
    /// replaced, its files, what `prepare` makes), under `label`.
    pub fn case_context(&self, case: &Case, label: &str, parent: &str) -> PathBuf {
        let body = case
            .dockerfile
            .replace("PARENT", parent)
            .replace("CACHEID", &unique("cache"));
        let ctx = self.context(label, &body, case.files);
        if let Some(f) = case.prepare {
            f(&ctx);
        }
        ctx
    }

    /// Builds `case` with both builders and compares ([`compare_built`]); a case that
    /// [`Case::fails`] must fail in both. Returns kiln's tree (empty for a failure).
    pub fn compare_case(&self, case: &Case) -> Vec<String> {
        let label = unique(case.name);
        let mut parent = String::new();
        if let Some(p) = case.parent {
            parent = format!("{}:v1", unique(&format!("{}-parent", case.name)));
            let pctx = self.context(&format!("{label}-parent"), p, case.files);
            docker_build(&pctx, &parent, &[]);
            kiln_build(&self.k, &pctx, &parent, &[]);
        }
        let ctx = self.case_context(case, &label, &parent);
        let ctx_s = ctx.to_str().unwrap().to_string();
        let mut args: Vec<String> = case.args.iter().map(|a| a.replace("CTX", &ctx_s)).collect();
        for (id, content) in case.secrets {
            let f = self.k.dir.path().join(format!("{label}-secret-{id}"));
            std::fs::write(&f, content).unwrap();
            args.push("--secret".into());
            args.push(format!("id={id},src={}", f.display()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let tag = format!("{label}:v1");
        let t = if case.fails {
            let d = docker()
                .env("DOCKER_BUILDKIT", "1")
                .args(["build", "--network", "none", "-q", "-t", &tag])
                .args(&args)
                .arg(&ctx)
                .output()
                .unwrap();
            assert!(!d.status.success(), "{}: docker build succeeded", case.name);
            let k = self
                .k
                .cmd()
                .args(["build", "--network", "none", "-t", &tag])
                .args(&args)
                .arg(&ctx)
                .output()
                .unwrap();
            assert!(!k.status.success(), "{}: kiln build succeeded", case.name);
            vec![]
        } else {
            docker_build(&ctx, &tag, &args);
            kiln_build(&self.k, &ctx, &tag, &args);
            compare_built(self, case.name, &tag)
        };
        if !parent.is_empty() {
            let _ = docker().args(["rmi", &parent]).output();
        }
        t
    }
}
