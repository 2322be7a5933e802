//! Content digests (`sha256:<hex>`) and streaming hashers.

use crate::error::{OciError, Result};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// A validated `sha256:<64 lowercase hex>` digest. Other algorithms are refused at the
/// boundary: kiln cannot verify them, and a blob that cannot be verified is never trusted.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| OciError::InvalidDigest {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let (algo, hex) = s
            .split_once(':')
            .ok_or_else(|| bad("expected `sha256:<hex>`"))?;
        if algo != "sha256" {
            return Err(bad("only sha256 digests are supported"));
        }
        Self::from_hex(hex).map_err(|_| bad("expected 64 lowercase hexadecimal characters"))
    }

    /// Builds a digest from the 64 hex characters of a sha256.
    pub fn from_hex(hex: &str) -> Result<Self> {
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(OciError::InvalidDigest {
                value: hex.to_string(),
                reason: "expected 64 lowercase hexadecimal characters".into(),
            });
        }
        Ok(Self {
            hex: hex.to_string(),
        })
    }

    /// The digest of a byte slice.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(h: Sha256) -> Self {
        Self {
            hex: hex::encode(h.finalize()),
        }
    }

    /// The algorithm, always `sha256`.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters, as Docker shows image IDs.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = OciError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A reader or writer that hashes and counts every byte read or written through it.
pub struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    count: u64,
}

/// A reader that hashes and counts every byte read through it.
pub type HashingReader<R> = Hashing<R>;

/// A writer that hashes and counts every byte written through it.
pub type HashingWriter<W> = Hashing<W>;

impl<T> Hashing<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes read or written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The inner reader or writer.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The digest and size of everything read or written, and the inner reader or writer.
    pub fn finish(self) -> (Digest, u64, T) {
        (Digest::from_hasher(self.hasher), self.count, self.inner)
    }

    /// Hashes and counts the first `n` bytes of `buf`, passed through; returns `n`.
    fn tally(&mut self, buf: &[u8], n: usize) -> usize {
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        n
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        Ok(self.tally(buf, n))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        Ok(self.tally(buf, n))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that only hashes and counts (no output).
pub fn sink_hasher() -> HashingWriter<io::Sink> {
    HashingWriter::new(io::sink())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let d = Digest::of_bytes(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        assert_eq!(d.short(), "e3b0c44298fc");
    }

    #[test]
    fn rejects_bad_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:../../../../etc/passwd0000000000000000000000000000000000000000",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn hashing_adapters_agree() {
        let data = vec![7u8; 100_000];
        let mut r = HashingReader::new(&data[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        let mut w = sink_hasher();
        w.write_all(&data).unwrap();
        let (d1, n1, _) = r.finish();
        let (d2, n2, _) = w.finish();
        assert_eq!((d1.clone(), n1), (d2, n2));
        assert_eq!(d1, Digest::of_bytes(&data));
    }
}
