//! gzip / zstd detection, decompression and deterministic compression of layer blobs.

use std::io::{self, Read, Write};

/// gzip level: 6 is zlib's default, a good size/speed balance for layers that are pushed once and pulled often.
pub const GZIP_LEVEL: u32 = 6;
/// zstd level 3 is zstd's own default; higher levels cost much CPU for little size on already-packed weights.
pub const ZSTD_LEVEL: i32 = 3;

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar, media type suffix `""`.
    None,
    /// gzip (magic `1f 8b`), media type suffix `+gzip`.
    Gzip,
    /// zstd (magic `28 b5 2f fd`), media type suffix `+zstd`.
    Zstd,
}

impl Compression {
    /// Recognises the compression from the first bytes of a blob (at least 4 are needed for zstd).
    pub fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The suffix of the OCI layer media type: `""`, `"+gzip"` or `"+zstd"`.
    pub fn media_type_suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "+gzip",
            Compression::Zstd => "+zstd",
        }
    }
}

/// Wraps a reader, sniffing its first bytes, and returns a reader of the decompressed stream.
pub fn decompress<'a, R: Read + 'a>(mut r: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    // Read the magic with a loop: a pipe or a network body may hand out one byte at a time.
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        match r.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let c = Compression::detect(&magic[..n]);
    let whole =
        io::BufReader::with_capacity(256 * 1024, io::Cursor::new(magic).take(n as u64).chain(r));
    let out: Box<dyn Read + 'a> = match c {
        Compression::None => Box::new(whole),
        // Multi-member: pigz and concatenated gzip files are valid layers.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(whole)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(whole)?),
    };
    Ok((c, out))
}

enum Inner<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

/// A compressing writer whose output depends only on its input; call `finish()` to flush trailers and get
/// the inner writer back (dropping it without `finish` leaves a truncated stream).
pub struct Compressor<W: Write> {
    inner: Inner<W>,
}

impl<W: Write> Compressor<W> {
    /// Starts a stream of the given compression on `w`.
    pub fn new(w: W, c: Compression) -> io::Result<Self> {
        let inner = match c {
            Compression::None => Inner::None(w),
            // mtime 0, no file name and a fixed OS byte keep the header free of build-host facts.
            Compression::Gzip => Inner::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(w, flate2::Compression::new(GZIP_LEVEL)),
            ),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(w, ZSTD_LEVEL)?;
                // zstd's multithreaded output is the same for every worker count >= 1 (but differs from
                // single-threaded mode), so always using >= 1 worker keeps digests equal across machines.
                let n = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
                e.multithread(n.max(1))?;
                e.include_checksum(true)?;
                Inner::Zstd(e)
            }
        };
        Ok(Compressor { inner })
    }

    /// Writes the trailers and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self.inner {
            Inner::None(w) => Ok(w),
            Inner::Gzip(e) => e.finish(),
            Inner::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::None(w) => w.write(buf),
            Inner::Gzip(e) => e.write(buf),
            Inner::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::None(w) => w.flush(),
            Inner::Gzip(e) => e.flush(),
            Inner::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(c: Compression) {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut z = Compressor::new(Vec::new(), c).unwrap();
        z.write_all(&data).unwrap();
        let blob = z.finish().unwrap();
        assert_eq!(Compression::detect(&blob), c);
        // Deterministic: the same input gives the same bytes.
        let mut z2 = Compressor::new(Vec::new(), c).unwrap();
        z2.write_all(&data).unwrap();
        assert_eq!(z2.finish().unwrap(), blob);
        // Feed the decoder one byte per read to exercise the magic sniffing loop.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let (got, mut r) = decompress(Trickle(&blob)).unwrap();
        assert_eq!(got, c);
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn roundtrips() {
        roundtrip(Compression::None);
        roundtrip(Compression::Gzip);
        roundtrip(Compression::Zstd);
    }

    #[test]
    fn detect_and_suffix() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(&[0x28, 0xb5]), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
        assert_eq!(Compression::detect(b"usr/"), Compression::None);
        assert_eq!(Compression::Zstd.media_type_suffix(), "+zstd");
        assert_eq!(Compression::Gzip.media_type_suffix(), "+gzip");
        assert_eq!(Compression::None.media_type_suffix(), "");
    }

    #[test]
    fn empty_and_truncated_streams() {
        let (c, mut r) = decompress(io::empty()).unwrap();
        assert_eq!(c, Compression::None);
        assert_eq!(r.read(&mut [0u8; 8]).unwrap(), 0);
        let mut z = Compressor::new(Vec::new(), Compression::Gzip).unwrap();
        z.write_all(&[7u8; 100_000]).unwrap();
        let blob = z.finish().unwrap();
        let (_, mut r) = decompress(&blob[..blob.len() / 2]).unwrap();
        assert!(r.read_to_end(&mut Vec::new()).is_err());
    }
}
