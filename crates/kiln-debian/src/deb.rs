//! Reading a .deb: an `ar` archive of `debian-binary`, `control.tar.*` and `data.tar.*`
//! (deb(5)), each tar compressed with xz, zstd, gzip or not at all.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::{DebianError, Result};

/// The control archive of a package: `control`, `md5sums`, `conffiles`, maintainer
/// scripts, `triggers`, `shlibs`... by name, with their modes.
#[derive(Clone, Debug, Default)]
pub struct ControlFiles {
    pub files: BTreeMap<String, (u32, Vec<u8>)>,
}

impl ControlFiles {
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(|(_, b)| b.as_slice())
    }
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

/// Opens the .deb at `path`, reads its control archive, and hands the decompressed
/// data.tar stream to `data`. Errors name the file.
pub fn read_deb<T>(
    path: &Path,
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
            let r = decompressor(&name, &mut entry).map_err(DebianError::io(path))?;
            control = Some(read_control(r).map_err(|e| member(&name, e.into()))?);
        } else if name.starts_with("data.tar") {
            if !seen_binary {
                return Err(bad("not a Debian package (no debian-binary)".into()));
            }
            let control = control.ok_or_else(|| bad("data.tar before control.tar".into()))?;
            let mut r = decompressor(&name, &mut entry).map_err(DebianError::io(path))?;
            let t = data(&mut r).map_err(|e| member(&name, e.into()))?;
            // Drain what the extractor left (tar padding) so a truncated member is noticed.
            io::copy(&mut r, &mut io::sink()).map_err(|e| member(&name, e.into()))?;
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
