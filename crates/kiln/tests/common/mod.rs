//! Shared fixtures of the integration tests: the kiln binary with a private store, the
//! peers (Docker, Podman, skopeo, umoci) with private state, and a busybox root filesystem.
//! A missing peer fails the test with the command that installs it: never a silent skip.
#![allow(dead_code)]
pub mod builds;
pub mod registry;
pub mod validators;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// A kiln store in a temp dir, and a way to run `kiln` on it.
pub struct Kiln {
    pub dir: tempfile::TempDir,
}

impl Kiln {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
        c.env("KILN_ROOT", self.root())
            .env_remove("SOURCE_DATE_EPOCH");
        c
    }

    /// Runs kiln and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run kiln");
        assert!(
            out.status.success(),
            "kiln {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs kiln expecting failure; returns (exit code, stderr).
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.cmd().args(args).output().expect("run kiln");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "kiln {args:?} succeeded unexpectedly"
        );
        assert!(
            !stderr.contains("panicked"),
            "kiln {args:?} panicked:\n{stderr}"
        );
        (out.status.code().unwrap_or(-1), stderr)
    }
}

/// Paths removed when the test process exits: the temp dirs of fixtures kept in statics,
/// which Rust never drops (each run would otherwise leave gigabytes of stores in /tmp).
static AT_EXIT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

extern "C" fn remove_registered() {
    if let Ok(paths) = AT_EXIT.lock() {
        for p in paths.iter() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Removes `path` (a directory) when the test process exits.
pub fn remove_at_exit(path: &Path) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a plain function with no captured state.
        unsafe {
            libc::atexit(remove_registered);
        }
    });
    AT_EXIT
        .lock()
        .expect("at-exit list")
        .push(path.to_path_buf());
}

impl Kiln {
    /// This store, for a fixture kept in a static: removed when the test process exits.
    pub fn kept_until_exit(self) -> Self {
        remove_at_exit(self.dir.path());
        self
    }

    /// Asserts that nothing of a container or a build step is left: no `containers/`
    /// entry, no mount of this store.
    pub fn assert_nothing_left(&self) {
        let left: Vec<_> = std::fs::read_dir(self.root().join("containers"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "containers left behind: {left:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(self.root().to_str().unwrap()),
            "a mount of the store is left:\n{mounts}"
        );
    }
}

/// Runs a command, asserting success, returning stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    check(cmd, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that a command succeeded; the message is its stderr.
#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check(cmd: &Command, out: &Output) {
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn need(bin: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin"] {
        let p = Path::new(dir).join(bin);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "`{bin}` is required by this test: apt-get install -y {package} (scripts/test.sh does it)"
    );
}

/// Debian's Docker client talking to the private dockerd of scripts/start-dockerd.sh.
pub fn docker() -> Command {
    static HOST: OnceLock<String> = OnceLock::new();
    let host = HOST.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/start-dockerd.sh");
        let out = Command::new("bash")
            .arg(script)
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/sbin",
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .output()
            .expect("run scripts/start-dockerd.sh");
        assert!(
            out.status.success(),
            "dockerd is required (apt-get install -y docker.io): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    });
    let mut c = Command::new(need("docker", "docker.io"));
    c.env("DOCKER_HOST", host);
    c
}

/// Podman with storage of its own, so tests never touch a user's images.
pub fn podman() -> Command {
    let base = std::env::temp_dir().join("kiln-test-podman");
    let mut c = Command::new(need("podman", "podman"));
    c.arg("--root")
        .arg(base.join("root"))
        .arg("--runroot")
        .arg(base.join("run"))
        .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
    c
}

/// `podman run` flags that work on these hosts (see MACHINE-NOTES).
pub const PODMAN_RUN: &[&str] = &[
    "run",
    "--rm",
    "--runtime",
    "runc",
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

pub fn skopeo() -> Command {
    Command::new(need("skopeo", "skopeo"))
}

pub fn umoci() -> Command {
    Command::new(need("umoci", "umoci"))
}

/// A unique name for this test's images in the shared peers' stores.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "kiln-test-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A busybox root filesystem (directory), built once per test binary.
pub fn busybox_rootfs() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let busybox = need("busybox", "busybox-static");
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(&busybox, bin.join("busybox")).unwrap();
        for applet in [
            "sh", "cat", "echo", "ls", "true", "rm", "mkdir", "touch", "sleep",
        ] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/hello.txt"), "hello from kiln\n").unwrap();
        remove_at_exit(dir.path());
        dir
    })
    .path()
}

/// The busybox root filesystem as a tar file.
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &TAR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        remove_at_exit(dir.path());
        let path = dir.path().join("rootfs.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(busybox_rootfs())
            .arg("-cf")
            .arg(&path)
            .arg("."));
        (dir, path)
    })
    .1
}

/// A tar's entries as `path type mode uid:gid link sha256-of-content`, in archive order;
/// paths without `./` or a trailing `/`.
pub fn tar_listing(path: &Path) -> Vec<(String, String)> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(file);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let name = name
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let h = e.header().clone();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let kind = format!("{:?}", h.entry_type());
        let desc = format!(
            "{kind} {:o} {}:{} {link} {}",
            h.mode().unwrap() & 0o7777,
            h.uid().unwrap(),
            h.gid().unwrap(),
            hex::encode(sha2::Sha256::digest(&data))
        );
        out.push((name, desc));
    }
    out
}

/// Parses JSON output.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// `docker import`s the busybox root filesystem as `BASE:v1`, then `docker build`s
/// `APP:v1` from it with BuildKit; `body` is the Dockerfile after its `FROM` line.
/// Returns (base, app) names, unique to this test.
pub fn docker_build_on_busybox(dir: &Path, prefix: &str, body: &str) -> (String, String) {
    let base = unique(&format!("{prefix}base"));
    let app = unique(&format!("{prefix}app"));
    run(docker()
        .arg("import")
        .arg(busybox_tar())
        .arg(format!("{base}:v1")));
    let ctx = dir.join(format!("ctx-{app}"));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {base}:v1\n{body}")).unwrap();
    run(docker()
        .env("DOCKER_BUILDKIT", "1")
        .args([
            "build",
            "--network",
            "none",
            "-q",
            "-t",
            &format!("{app}:v1"),
        ])
        .arg(&ctx));
    (base, app)
}

/// A store holding the busybox image `bb:v1`, whose command prints /etc/hello.txt.
pub fn kiln_with_busybox() -> Kiln {
    let k = Kiln::new();
    k.ok(&[
        "import",
        busybox_rootfs().to_str().unwrap(),
        "-t",
        "bb:v1",
        "-c",
        "CMD [\"cat\", \"/etc/hello.txt\"]",
    ]);
    k
}

/// Entries Docker's runtime adds to a container (and so to `docker export`).
pub const DOCKER_RUNTIME_ENTRIES: &[&str] = &[
    "dev",
    "proc",
    "sys",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    ".dockerenv",
    "etc/mtab",
];

/// A flattened image tar as sorted `path type mode owner link content-hash` lines,
/// without what Docker's runtime adds: two exports compare as trees.
pub fn flat_tree(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = tar_listing(p)
        .into_iter()
        .filter(|(name, _)| {
            !name.is_empty()
                && !DOCKER_RUNTIME_ENTRIES
                    .iter()
                    .any(|r| name == r || name.starts_with(&format!("{r}/")))
        })
        .map(|(name, desc)| format!("{name} {desc}"))
        .collect();
    v.sort();
    v
}
