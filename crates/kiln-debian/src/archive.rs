//! The trust chain of a suite: InRelease (signature verified against the archive keys,
//! not expired), then the Packages index it lists (by SHA256), then each .deb the index
//! lists (by SHA256, see [`crate::fetch`]).

use crate::control::paragraphs;
use crate::fetch::{sha256_bytes, Fetcher};
use crate::index::Index;
use crate::verify::Keyring;
use crate::{DebianError, Result};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// One suite of one mirror: `http://deb.debian.org/debian` + `bookworm` + `main`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Base URL of the mirror, e.g. `http://deb.debian.org/debian`.
    pub mirror: String,
    /// Suite (or codename) below `dists/`: `bookworm`, `bookworm-security`.
    pub suite: String,
    /// Archive components whose indexes are read: `main`, `contrib`...
    pub components: Vec<String>,
}

impl Source {
    /// The URL of `path` below the mirror root (a `pool/...` filename, `dists/...`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.mirror.trim_end_matches('/'), path)
    }
    fn dists(&self, path: &str) -> String {
        self.url(&format!("dists/{}/{}", self.suite, path))
    }
}

/// What a verified InRelease says.
#[derive(Clone, Debug)]
pub struct Release {
    /// The `Date` field, as written (RFC 2822).
    pub date: String,
    /// Seconds since the epoch of `date`.
    pub timestamp: i64,
    /// The `Valid-Until` field, as written, if any: past it the InRelease is refused as
    /// expired.
    pub valid_until: Option<String>,
    /// SHA256 of the InRelease file as downloaded: the snapshot a lock records.
    pub inrelease_sha256: String,
    /// Index path (`main/binary-amd64/Packages.xz`) -> (sha256, size).
    pub files: BTreeMap<String, (String, u64)>,
}

fn bad(url: &str, msg: impl Into<String>) -> DebianError {
    DebianError::Release {
        url: url.to_string(),
        msg: msg.into(),
        hint: None,
    }
}

/// Fetches and verifies the InRelease of `src`. `now` (seconds) is checked against
/// `Valid-Until`, as apt does, so an old signed file cannot be replayed.
pub fn fetch_release(f: &Fetcher, src: &Source, keys: &Keyring, now: i64) -> Result<Release> {
    let url = src.dists("InRelease");
    let bytes = f.get(&url)?;
    parse_release(&url, &bytes, keys, now)
}

/// Verifies and parses InRelease `bytes` fetched from `url`.
pub fn parse_release(url: &str, bytes: &[u8], keys: &Keyring, now: i64) -> Result<Release> {
    let text = keys
        .verify_cleartext(bytes)
        .map_err(|e| DebianError::Unsigned {
            url: url.to_string(),
            source: Box::new(e),
        })?;
    let paras = paragraphs(&text).map_err(|e| in_index(url, e))?;
    let p = paras
        .first()
        .ok_or_else(|| bad(url, "the signed text is empty"))?;
    let date = p
        .get("Date")
        .ok_or_else(|| bad(url, "no Date field"))?
        .to_string();
    let timestamp = parse_rfc2822(&date).ok_or_else(|| bad(url, format!("bad Date `{date}`")))?;
    let valid_until = p.get("Valid-Until").map(str::to_string);
    if let Some(v) = &valid_until {
        let t = parse_rfc2822(v).ok_or_else(|| bad(url, format!("bad Valid-Until `{v}`")))?;
        if t < now {
            return Err(DebianError::Release {
                url: url.to_string(),
                msg: format!("expired: Valid-Until is {v}"),
                hint: Some("the mirror serves an outdated suite; try another mirror".into()),
            });
        }
    }
    let mut files = BTreeMap::new();
    for line in p.get("SHA256").unwrap_or("").lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() == 3 {
            let size = parts[1]
                .parse()
                .map_err(|_| bad(url, format!("bad SHA256 line `{line}`")))?;
            files.insert(parts[2].to_string(), (parts[0].to_ascii_lowercase(), size));
        }
    }
    if files.is_empty() {
        return Err(bad(url, "no SHA256 file list"));
    }
    Ok(Release {
        date,
        timestamp,
        valid_until,
        inrelease_sha256: sha256_bytes(bytes),
        files,
    })
}

/// Loads the Packages index of every component of `src` for `arch` into `index`, each
/// file verified against `rel`. Compressed indexes are cached in `cache` by hash.
#[allow(clippy::too_many_arguments)]
pub fn load_packages(
    f: &Fetcher,
    src: &Source,
    source_no: usize,
    rel: &Release,
    arch: &str,
    cache: &Path,
    index: &mut Index,
) -> Result<()> {
    for comp in &src.components {
        let base = format!("{comp}/binary-{arch}/Packages");
        // gzip first: a few MB more to download, decompressed three times faster than xz.
        let pick = ["gz", "xz"]
            .iter()
            .map(|ext| format!("{base}.{ext}"))
            .chain([base.clone()])
            .find(|p| rel.files.contains_key(p));
        let Some(path) = pick else {
            return Err(DebianError::Release {
                url: src.dists("InRelease"),
                msg: format!("lists no {base} index"),
                hint: Some(format!(
                    "is `{arch}` an architecture of suite {} ({comp})?",
                    src.suite
                )),
            });
        };
        let (sha, size) = rel.files[&path].clone();
        let url = src.dists(&path);
        let cached = cache.join(format!("{sha}.{}", path.rsplit('.').next().unwrap_or("")));
        f.fetch_verified(&url, &cached, &sha, Some(size))
            .map_err(|e| match e {
                DebianError::Mismatch { actual, .. } => DebianError::Release {
                    url: url.clone(),
                    msg: format!(
                        "SHA256 {actual} does not match {sha}, the hash the signed InRelease lists for it"
                    ),
                    hint: Some(
                        "the mirror is inconsistent or tampered with; try again or use another mirror"
                            .into(),
                    ),
                },
                e => e,
            })?;
        let text = read_index(&cached).map_err(|e| in_index(&url, e))?;
        // `add` names the file too: the text is as it always was (`URL: URL: ...`).
        index
            .add(&text, &src.suite, source_no, arch, &url)
            .map_err(|e| in_index(&url, e))?;
    }
    Ok(())
}

fn read_index(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(DebianError::io(path))?;
    let name = path.to_string_lossy();
    let mut r: Box<dyn Read> = if name.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new(std::io::BufReader::new(file)))
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(file)
    };
    let mut s = String::new();
    r.read_to_string(&mut s)
        .map_err(|source| DebianError::Decompress { source })?;
    Ok(s)
}

/// A control-file error of the InRelease or Packages file at `file`.
pub(crate) fn in_index(file: &str, e: DebianError) -> DebianError {
    match e {
        DebianError::Syntax { line, msg } => DebianError::Index {
            file: file.to_string(),
            line: Some(line),
            msg,
        },
        e => DebianError::Index {
            file: file.to_string(),
            line: None,
            msg: e.to_string(),
        },
    }
}

/// Parses the RFC 2822 dates of Release files (`Sat, 10 Jun 2023 08:53:51 UTC`).
pub fn parse_rfc2822(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.split_once(',').map_or(s, |(_, r)| r).trim();
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() < 4 {
        return None;
    }
    let day: i64 = parts[0].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[1])? as i64
        + 1;
    let year: i64 = parts[2].parse().ok()?;
    let hms: Vec<i64> = parts[3]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    let offset = match parts.get(4) {
        None | Some(&"UTC") | Some(&"GMT") | Some(&"Z") => 0,
        Some(z) => {
            let (sign, d) = match z.as_bytes().first()? {
                b'+' => (1, &z[1..]),
                b'-' => (-1, &z[1..]),
                _ => return None,
            };
            let n: i64 = d.parse().ok()?;
            sign * ((n / 100) * 3600 + (n % 100) * 60)
        }
    };
    Some(days_from_civil(year, month, day) * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2] - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_dates() {
        assert_eq!(parse_rfc2822("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_rfc2822("Sat, 10 Jun 2023 08:53:51 UTC"),
            Some(1686387231)
        );
        assert_eq!(
            parse_rfc2822("Sat, 10 Jun 2023 10:53:51 +0200"),
            Some(1686387231)
        );
        assert_eq!(parse_rfc2822("yesterday"), None);
    }
}
