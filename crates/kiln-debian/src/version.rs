//! Debian version numbers (`[epoch:]upstream[-revision]`) and their order, as dpkg
//! defines it (deb-version(7)). Written here because it is twenty lines of a precise
//! algorithm; the crates that have it bring a whole packaging toolkit along.

use crate::DebianError;
use std::cmp::Ordering;
use std::fmt;

/// A parsed Debian version. Ordering is dpkg's; equality is dpkg's too (`1.0` == `0:1.0`).
#[derive(Clone, Debug)]
pub struct Version {
    /// The number before `:`, 0 when there is none.
    pub epoch: u64,
    /// Between the epoch and the last `-`: the upstream version (`2.36`).
    pub upstream: String,
    /// After the last `-`: the Debian revision (`9+deb12u4`); empty for a native
    /// package.
    pub revision: String,
    text: String,
}

impl Version {
    /// Parses `text`; an error names what is wrong with it.
    pub fn parse(text: &str) -> crate::Result<Version> {
        let t = text.trim();
        if t.is_empty() {
            return Err(DebianError::Version("empty version".into()));
        }
        let (epoch, rest) = match t.split_once(':') {
            Some((e, r)) => (
                e.parse::<u64>().map_err(|_| {
                    DebianError::Version(format!("version `{t}`: epoch `{e}` is not a number"))
                })?,
                r,
            ),
            None => (0, t),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(DebianError::Version(format!(
                "version `{t}`: empty upstream version"
            )));
        }
        if let Some(c) = rest
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".+-~:".contains(*c)))
        {
            return Err(DebianError::Version(format!(
                "version `{t}`: invalid character `{c}`"
            )));
        }
        Ok(Version {
            epoch,
            upstream: upstream.to_string(),
            revision: revision.to_string(),
            text: t.to_string(),
        })
    }

    /// The version exactly as written (trimmed), as `Display` prints it: `1.0` and
    /// `0:1.0` compare equal but keep their own text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// dpkg's character weight in the non-digit parts: `~` before everything (even the end),
/// then the end, then letters, then everything else.
fn weight(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

/// Compares two upstream or revision strings by dpkg's rules: alternating non-digit runs
/// (compared by [`weight`]) and digit runs (compared as numbers).
pub fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix.
        loop {
            let ca = a.get(i).copied().filter(|c| !c.is_ascii_digit());
            let cb = b.get(j).copied().filter(|c| !c.is_ascii_digit());
            if ca.is_none() && cb.is_none() {
                break;
            }
            let (wa, wb) = (weight(ca), weight(cb));
            if wa != wb {
                return wa.cmp(&wb);
            }
            i += 1;
            j += 1;
        }
        // Digit run, compared numerically (leading zeros ignored).
        let sa = i;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        let sb = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let da = trim_zeros(&a[sa..i]);
        let db = trim_zeros(&b[sb..j]);
        let o = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n..]
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(&self.upstream, &other.upstream))
            .then_with(|| compare_part(&self.revision, &other.revision))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        Version::parse(a).unwrap().cmp(&Version::parse(b).unwrap())
    }

    #[test]
    fn dpkg_order() {
        use Ordering::*;
        // Cases from deb-version(7) and dpkg's own test suite.
        assert_eq!(cmp("1.0", "1.0"), Equal);
        assert_eq!(cmp("0:1.0", "1.0"), Equal);
        assert_eq!(cmp("1.0-1", "1.0-2"), Less);
        assert_eq!(cmp("1.0~rc1", "1.0"), Less);
        assert_eq!(cmp("1.0~~", "1.0~"), Less);
        assert_eq!(cmp("1.0~", "1.0"), Less);
        assert_eq!(cmp("1.0", "1.0a"), Less);
        assert_eq!(cmp("1.0a", "1.0+"), Less);
        assert_eq!(cmp("1:0.1", "2.0"), Greater);
        assert_eq!(cmp("1.10", "1.9"), Greater);
        assert_eq!(cmp("1.010", "1.10"), Equal);
        assert_eq!(cmp("2.36-9+deb12u4", "2.36-9+deb12u10"), Less);
        assert_eq!(cmp("3.11.2-6", "3.11.2-6+deb12u1"), Less);
        assert_eq!(cmp("1.2.3-1", "1.2.3"), Greater);
        assert_eq!(cmp("7.88.1-10+deb12u5", "7.88.1-10"), Greater);
        assert_eq!(cmp("1:2.38.1-5+deb12u1", "2.39"), Greater);
    }

    #[test]
    fn bad_versions() {
        assert!(Version::parse("").is_err());
        assert!(Version::parse("a:1").is_err());
        assert!(Version::parse("1 2").is_err());
        assert!(Version::parse("-1").is_err());
    }
}
