//! Downloads from a Debian mirror (`http://`, `https://` or a local `file://` mirror),
//! verified by SHA256 before anything lands in the cache.

use kiln_oci::{Digest, HashingReader};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::DebianError;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DebianError + '_ {
    move |source| DebianError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An HTTP client for mirrors (proxies from the environment, as apt's `http_proxy`).
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::blocking::Client,
}

impl Default for Fetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl Fetcher {
    /// A client with kiln's user agent, a 20 s connect timeout and a 10 min limit per
    /// request.
    pub fn new() -> Fetcher {
        let client = reqwest::blocking::Client::builder()
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(600))
            .pool_max_idle_per_host(16)
            .build()
            .expect("the TLS backend initializes");
        Fetcher { client }
    }

    /// Opens `url` for reading; a 404 is reported as such (callers may try another file).
    pub fn open(&self, url: &str) -> Result<Box<dyn Read + Send>, DebianError> {
        if let Some(p) = url.strip_prefix("file://") {
            let path = Path::new(p);
            return Ok(Box::new(File::open(path).map_err(io_err(path))?));
        }
        let mut last = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(300 << attempt));
            }
            match self.client.get(url).send() {
                Ok(r) if r.status().is_success() => return Ok(Box::new(r)),
                Ok(r) if r.status().is_server_error() => last = r.status().to_string(),
                Ok(r) => {
                    return Err(DebianError::Http {
                        url: url.to_string(),
                        msg: r.status().to_string(),
                    })
                }
                Err(e) => last = error_chain(&e),
            }
        }
        Err(DebianError::Http {
            url: url.to_string(),
            msg: last,
        })
    }

    /// The whole body of `url`.
    pub fn get(&self, url: &str) -> Result<Vec<u8>, DebianError> {
        let mut out = Vec::new();
        self.open(url)?
            .read_to_end(&mut out)
            .map_err(|e| DebianError::Http {
                url: url.to_string(),
                msg: e.to_string(),
            })?;
        Ok(out)
    }

    /// Makes `dest` hold the file at `url` whose SHA256 is `sha256` (lowercase hex). A file
    /// already at `dest` is used if its hash matches; if it does not, it is refused (a
    /// cache somebody changed is reported, not silently replaced). Downloads go to a
    /// temporary file next to `dest`, verified, then renamed. Returns the bytes downloaded.
    pub fn fetch_verified(
        &self,
        url: &str,
        dest: &Path,
        sha256: &str,
        size: Option<u64>,
    ) -> Result<u64, DebianError> {
        if dest.exists() {
            verify_file(dest, sha256)?;
            return Ok(0);
        }
        let dir = dest.parent().expect("cache files have a parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
        let mut input = HashingReader::new(self.open(url)?);
        let mut out = io::BufWriter::with_capacity(256 * 1024, tmp.as_file());
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0u64;
        loop {
            let k = input.read(&mut buf).map_err(|e| DebianError::Http {
                url: url.to_string(),
                msg: format!("download cut after {n} bytes: {e}"),
            })?;
            if k == 0 {
                break;
            }
            out.write_all(&buf[..k]).map_err(io_err(dir))?;
            n += k as u64;
        }
        out.flush().map_err(io_err(dir))?;
        drop(out);
        let actual = input.finish().0.hex().to_string();
        if actual != sha256 || size.is_some_and(|s| s != n) {
            return Err(DebianError::Mismatch {
                what: url.to_string(),
                expected: sha256.to_string(),
                actual,
                size: match size {
                    Some(s) if s != n => format!(" (size {n}, expected {s})"),
                    _ => String::new(),
                },
            });
        }
        tmp.persist(dest).map_err(|e| DebianError::Io {
            path: dest.to_path_buf(),
            source: e.error,
        })?;
        Ok(n)
    }
}

/// Checks that `path` hashes to `sha256`.
pub fn verify_file(path: &Path, sha256: &str) -> Result<(), DebianError> {
    let actual = sha256_file(path)?;
    if actual != sha256 {
        return Err(DebianError::Mismatch {
            what: path.display().to_string(),
            expected: sha256.to_string(),
            actual,
            size: String::new(),
        });
    }
    Ok(())
}

/// SHA256 of the file at `path`, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, DebianError> {
    let mut r = HashingReader::new(File::open(path).map_err(io_err(path))?);
    io::copy(&mut r, &mut io::sink()).map_err(io_err(path))?;
    Ok(r.finish().0.hex().to_string())
}

/// SHA256 of `b`, as lowercase hex.
pub fn sha256_bytes(b: &[u8]) -> String {
    Digest::of_bytes(b).hex().to_string()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
