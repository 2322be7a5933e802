//! Reading a .deb: an `ar` archive of `debian-binary`, `control.tar.*` and `data.tar.*`
//! (deb(5)), each tar compressed with xz, zstd, gzip or not at all.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use crate::{DebianError, Result};

/// The control archive of a package: `control`, `md5sums`, `conffiles`, maintainer
/// scripts, `triggers`, `shlibs`... by name, with their modes.
#[derive(Clone, Debug, Default)]
pub struct ControlFiles {
    /// Member name (`postinst`) -> (mode from the tar header, content).
    pub files: BTreeMap<String, (u32, Vec<u8>)>,
}

impl ControlFiles {
    /// The bytes of member `name`, if the package has it.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(|(_, b)| b.as_slice())
    }
    /// Member `name` as text (invalid UTF-8 replaced), if the package has it.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

fn decompressor<'a, R: Read + 'a>(name: &str, r: R) -> io::Result<Box<dyn Read + 'a>> {
    let r = BufReader::with_capacity(256 * 1024, r);
    Ok(if name.ends_with(".xz") {
        Box::new(liblzma::read::XzDecoder::new(r))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::with_buffer(r)?)
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::GzDecoder::new(r))
    } else if name.ends_with(".tar") {
        Box::new(r)
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unsupported member `{name}`"),
        ));
    })
}

/// The zstd level of repacked data: level 1 compresses 217 MB of Debian packages in
/// about 0.4 CPU-s and decodes as fast as higher levels.
const REPACK_LEVEL: i32 = 1;

/// A reader that copies what it reads into a zstd encoder, until writing fails.
struct Tee<'a, R> {
    inner: R,
    out: Option<zstd::stream::write::Encoder<'a, io::BufWriter<tempfile::NamedTempFile>>>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(out) = self.out.as_mut() {
            if out.write_all(&buf[..n]).is_err() {
                self.out = None;
            }
        }
        Ok(n)
    }
}

/// Starts the zstd copy of a data member next to `repack`.
fn repack_encoder<'a>(
    repack: &Path,
) -> io::Result<zstd::stream::write::Encoder<'a, io::BufWriter<tempfile::NamedTempFile>>> {
    let dir = repack.parent().expect("a repack path has a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::Builder::new().prefix(".data-").tempfile_in(dir)?;
    let mut enc = zstd::stream::write::Encoder::new(
        io::BufWriter::with_capacity(256 * 1024, tmp),
        REPACK_LEVEL,
    )?;
    enc.include_checksum(true)?;
    Ok(enc)
}

/// Writes the repacked .deb at `repack`: `debian-binary`, the control member as it was,
/// and the zstd data written by a [`Tee`].
fn write_repack(
    repack: &Path,
    control: (&str, &[u8]),
    data: zstd::stream::write::Encoder<'_, io::BufWriter<tempfile::NamedTempFile>>,
) -> io::Result<()> {
    let data = data.finish()?.into_inner().map_err(|e| e.into_error())?;
    let dir = repack.parent().expect("a repack path has a parent");
    let out = tempfile::Builder::new().prefix(".deb-").tempfile_in(dir)?;
    {
        let mut ar = ar::Builder::new(io::BufWriter::with_capacity(256 * 1024, out.as_file()));
        let version = b"2.0\n";
        ar.append(
            &ar::Header::new(b"debian-binary".to_vec(), version.len() as u64),
            &version[..],
        )?;
        ar.append(
            &ar::Header::new(control.0.as_bytes().to_vec(), control.1.len() as u64),
            control.1,
        )?;
        let len = data.as_file().metadata()?.len();
        let mut f = data.reopen()?;
        ar.append(&ar::Header::new(b"data.tar.zst".to_vec(), len), &mut f)?;
        ar.into_inner()?.flush()?;
    }
    out.persist(repack).map_err(|e| e.error)?;
    Ok(())
}

/// Opens the .deb at `path`, reads its control archive, and hands the decompressed
/// data.tar stream to `data`. Errors name the file.
///
/// With `repack`, it also writes the package again there with its data.tar compressed
/// with zstd instead (a valid .deb: dpkg reads zstd members). xz, which nearly every
/// Debian package uses, decodes at about 100 MB/s, zstd at over 1 GB/s: unpacking the
/// repack costs a tenth of the CPU, which is most of a rebuild from cached packages.
/// The copy is made from the bytes `data` reads, so it costs no second decode; the zstd
/// frame carries a checksum of its content, so a damaged copy fails to read instead of
/// unpacking other files. Failing to write the copy is not an error: it is left out.
pub fn read_deb_repacking<T>(
    path: &Path,
    repack: Option<&Path>,
    data: impl FnOnce(&mut dyn Read) -> Result<T>,
) -> Result<(ControlFiles, T)> {
    let bad = |msg: String| DebianError::Deb {
        path: path.to_path_buf(),
        msg,
    };
    let member = |name: &str, e: crate::error::Cause| DebianError::DebMember {
        path: path.to_path_buf(),
        member: name.to_string(),
        source: e,
    };
    let f = File::open(path).map_err(DebianError::io(path))?;
    let mut ar = ar::Archive::new(BufReader::with_capacity(64 * 1024, f));
    let mut control = None;
    let mut control_raw: Option<(String, Vec<u8>)> = None;
    let mut seen_binary = false;
    while let Some(entry) = ar.next_entry() {
        let mut entry = entry.map_err(|e| bad(format!("not a Debian package: {e}")))?;
        let name = String::from_utf8_lossy(entry.header().identifier())
            .trim_end_matches('/')
            .to_string();
        if name == "debian-binary" {
            let mut v = String::new();
            entry
                .read_to_string(&mut v)
                .map_err(DebianError::io(path))?;
            if !v.starts_with("2.") {
                return Err(bad(format!("unsupported deb format `{}`", v.trim())));
            }
            seen_binary = true;
        } else if name.starts_with("control.tar") {
            if repack.is_some() {
                // Kept as it is for the repack (control archives are a few KB).
                let mut raw = Vec::new();
                (&mut entry)
                    .take(MAX_CONTROL_MEMBER)
                    .read_to_end(&mut raw)
                    .map_err(DebianError::io(path))?;
                let r = decompressor(&name, raw.as_slice()).map_err(DebianError::io(path))?;
                control = Some(read_control(r).map_err(|e| member(&name, e.into()))?);
                control_raw = Some((name, raw));
            } else {
                let r = decompressor(&name, &mut entry).map_err(DebianError::io(path))?;
                control = Some(read_control(r).map_err(|e| member(&name, e.into()))?);
            }
        } else if name.starts_with("data.tar") {
            if !seen_binary {
                return Err(bad("not a Debian package (no debian-binary)".into()));
            }
            let control = control.ok_or_else(|| bad("data.tar before control.tar".into()))?;
            let r = decompressor(&name, &mut entry).map_err(DebianError::io(path))?;
            let out = match (repack, &control_raw) {
                (Some(rp), Some(_)) => repack_encoder(rp).ok(),
                _ => None,
            };
            let mut r = Tee { inner: r, out };
            let t = data(&mut r).map_err(|e| member(&name, e.into()))?;
            // Drain what the extractor left (tar padding) so a truncated member is noticed.
            io::copy(&mut r, &mut io::sink()).map_err(|e| member(&name, e.into()))?;
            if let (Some(rp), Some((cname, raw)), Some(enc)) = (repack, &control_raw, r.out) {
                // A repack that cannot be written is only a missed speed-up.
                let _ = write_repack(rp, (cname, raw), enc);
            }
            return Ok((control, t));
        }
    }
    Err(bad("not a Debian package (no data.tar member)".into()))
}

/// Only the control archive of the .deb at `path` (the data is not decompressed).
pub fn read_control_only(path: &Path) -> Result<ControlFiles> {
    let bad = |msg: String| DebianError::Deb {
        path: path.to_path_buf(),
        msg,
    };
    let f = File::open(path).map_err(DebianError::io(path))?;
    let mut ar = ar::Archive::new(BufReader::with_capacity(64 * 1024, f));
    while let Some(entry) = ar.next_entry() {
        let mut entry = entry.map_err(|e| bad(format!("not a Debian package: {e}")))?;
        let name = String::from_utf8_lossy(entry.header().identifier())
            .trim_end_matches('/')
            .to_string();
        if name.starts_with("control.tar") {
            let r = decompressor(&name, &mut entry).map_err(DebianError::io(path))?;
            return read_control(r).map_err(|e| DebianError::DebMember {
                path: path.to_path_buf(),
                member: name,
                source: e.into(),
            });
        }
    }
    Err(bad("not a Debian package (no control.tar member)".into()))
}

/// The largest control member read into memory.
const MAX_CONTROL_MEMBER: u64 = 64 << 20;

fn read_control(r: impl Read) -> io::Result<ControlFiles> {
    let mut out = ControlFiles::default();
    let mut t = tar::Archive::new(kiln_layer::TarGuard::new(r));
    for e in t.entries()? {
        let mut e = e?;
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = e.path()?.to_string_lossy().into_owned();
        let name = path.trim_start_matches("./").to_string();
        if name.is_empty() || name.contains('/') {
            continue;
        }
        let mode = e.header().mode()?;
        // Control members are small (md5sums of a large package: a few MB); the .deb was
        // checked against its signed hash, but its size is still no licence to fill memory.
        if e.size() > MAX_CONTROL_MEMBER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "control member `{name}` is {} bytes, more than {} MiB",
                    e.size(),
                    MAX_CONTROL_MEMBER >> 20
                ),
            ));
        }
        let mut b = Vec::new();
        e.by_ref().take(MAX_CONTROL_MEMBER).read_to_end(&mut b)?;
        out.files.insert(name, (mode, b));
    }
    if !out.files.contains_key("control") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no control file",
        ));
    }
    Ok(out)
}
