//! uv, the resolver and installer kiln uses for Python (kiln has none of its own).
//!
//! Found as `$KILN_UV`, else `uv` on PATH, else the pinned release is installed from PyPI
//! into `$KILN_ROOT/cache/uv/VERSION/uv` (the wheel is verified against the sha256 kiln
//! pins before its binary is taken out). uv runs with its cache in the store's cache, never
//! in a layer; the host's CA bundle and proxy settings reach it through the environment
//! (SSL_CERT_FILE, HTTPS_PROXY, ...) and never land in a layer either.

use crate::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The uv release kiln installs when none is given.
pub const PINNED_VERSION: &str = "0.13.9";

/// (architecture, wheel URL, sha256) of the pinned release.
const PINNED_WHEELS: &[(&str, &str, &str)] = &[
    (
        "x86_64",
        "https://files.pythonhosted.org/packages/3d/aa/26d64642d808de4a652579ef950d7cd2d37f080a8babf9c67c6b75fc4c3f/uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
    ),
    (
        "aarch64",
        "https://files.pythonhosted.org/packages/fe/2f/51a5de367c602592c018a42a23d57fba5f2689fe6c3bf025dcf043b39c61/uv-0.13.9-py3-none-manylinux_2_28_aarch64.whl",
        "ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375",
    ),
];

/// The most a uv wheel may weigh (the real one is ~18 MB).
const WHEEL_CAP: u64 = 128 << 20;

/// A uv binary and the cache directory it uses.
#[derive(Clone, Debug)]
pub struct Uv {
    /// The uv executable: `$KILN_UV`, the first `uv` on `PATH`, or the pinned release
    /// installed under `CACHE_ROOT/uv/VERSION/uv`.
    pub bin: PathBuf,
    /// uv's package cache (`CACHE_ROOT/uv-cache`), passed as `UV_CACHE_DIR`; it stays on
    /// the host and never lands in a layer.
    pub cache: PathBuf,
}

/// Finds uv, installing the pinned release into `cache_root/uv/` when there is none.
///
/// `note` is told when the pinned release is downloaded. Fails when `$KILN_UV` names no
/// file, or when the pinned release is needed but cannot be installed (no pinned wheel for
/// this architecture, the download fails or its sha256 differs, or the binary cannot be
/// written); the error's hint says how to provide uv instead.
pub fn locate(cache_root: &Path, note: &dyn Fn(&str)) -> Result<Uv> {
    let uv_cache = cache_root.join("uv-cache");
    if let Some(p) = std::env::var_os("KILN_UV").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(p);
        if !bin.is_file() {
            return Err(Error::with_hint(
                format!("KILN_UV={} is not a file", bin.display()),
                "point KILN_UV at a uv binary, or unset it to let kiln install its pinned uv",
            ));
        }
        return Ok(Uv {
            bin,
            cache: uv_cache,
        });
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let c = d.join("uv");
            if c.is_file() {
                return Ok(Uv {
                    bin: c,
                    cache: uv_cache,
                });
            }
        }
    }
    let dir = cache_root.join("uv").join(PINNED_VERSION);
    let bin = dir.join("uv");
    if !bin.is_file() {
        install_pinned(&dir, note)?;
    }
    Ok(Uv {
        bin,
        cache: uv_cache,
    })
}

/// Downloads the pinned uv wheel, checks its sha256 and takes the binary out.
fn install_pinned(dir: &Path, note: &dyn Fn(&str)) -> Result<()> {
    let arch = std::env::consts::ARCH;
    let (_, url, sha) = PINNED_WHEELS
        .iter()
        .find(|(a, _, _)| *a == arch)
        .ok_or_else(|| {
            Error::with_hint(
                format!("kiln has no pinned uv for {arch}"),
                "install uv (https://docs.astral.sh/uv/) and put it on PATH, or set KILN_UV",
            )
        })?;
    note(&format!("installing uv {PINNED_VERSION} from PyPI"));
    let fail = |e: String| {
        Error::with_hint(
            format!("cannot download uv {PINNED_VERSION} from {url}: {e}"),
            "put a uv binary on PATH or set KILN_UV=/path/to/uv (`pip install uv` gives one)",
        )
    };
    let bytes =
        crate::fetch::fetch_verified(url, sha, WHEEL_CAP, std::time::Duration::from_secs(300))
            .map_err(|e| match e {
                crate::fetch::FetchError::Transfer(e) => fail(e),
                crate::fetch::FetchError::TooLarge => {
                    fail(format!("the wheel is larger than {WHEEL_CAP} bytes"))
                }
                crate::fetch::FetchError::Mismatch(got) => {
                    fail(format!("sha256 {got}, expected {sha}"))
                }
            })?;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| fail(format!("not a wheel: {e}")))?;
    let member = format!("uv-{PINNED_VERSION}.data/scripts/uv");
    let mut f = zip
        .by_name(&member)
        .map_err(|e| fail(format!("{member}: {e}")))?;
    let mut bin = Vec::new();
    (&mut f)
        .take(WHEEL_CAP)
        .read_to_end(&mut bin)
        .map_err(|e| fail(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::new(format!("{}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".uv.{}", std::process::id()));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o755)
            .open(&tmp)
            .map_err(|e| Error::new(format!("{}: {e}", tmp.display())))?;
        std::io::Write::write_all(&mut out, &bin)
            .and_then(|_| out.sync_all())
            .map_err(|e| Error::new(format!("{}: {e}", tmp.display())))?;
    }
    std::fs::rename(&tmp, dir.join("uv")).map_err(|e| Error::new(format!("{}: {e}", dir.display())))
}

impl Uv {
    /// A uv command with kiln's settings: its own cache, no user or project config files,
    /// no interpreter downloads, no prompts, files created 0644/0755.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("UV_CACHE_DIR", &self.cache)
            .env("UV_NO_CONFIG", "1")
            .env("UV_PYTHON_DOWNLOADS", "never")
            .env("UV_NO_PROGRESS", "1")
            .env_remove("UV_SYSTEM_PYTHON")
            .env_remove("VIRTUAL_ENV")
            .env_remove("UV_PROJECT_ENVIRONMENT")
            .stdin(Stdio::null());
        // SAFETY: umask is async-signal-safe and touches only the child's state.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                libc::umask(0o022);
                Ok(())
            });
        }
        c
    }

    /// Runs a uv command; its stderr becomes the error on failure.
    pub fn run(&self, mut c: Command, what: &str, hint: &str) -> Result<Vec<u8>> {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = c.output().map_err(|e| {
            Error::with_hint(
                format!("cannot run uv ({}): {e}", self.bin.display()),
                "put a uv binary on PATH or set KILN_UV",
            )
        })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let err = err.trim();
            return Err(Error::with_hint(format!("{what}: uv says:\n{err}"), hint));
        }
        Ok(out.stdout)
    }

    /// uv's version line (`uv 0.13.9`).
    pub fn version(&self) -> Result<String> {
        let mut c = self.command();
        c.arg("--version");
        let out = self.run(c, "uv --version", "")?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }
}
