//! The tar format as this crate reads and writes it: one parsed [`Meta`] per entry, lexical path cleaning,
//! and a writer of minimal, deterministic ustar + PAX headers.

use std::borrow::Cow;
use std::io::{self, Read, Write};

use crate::error::{show, tar_err, LayerError, Result};

/// The entry kinds a layer may hold; anything else is refused by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Link,
    Char,
    Block,
    Fifo,
}

/// Everything this crate keeps of a tar entry. Deliberately absent: uname/gname, atime/ctime and unknown
/// PAX records, so that rewriting an entry drops build-host facts; the sub-second part of a PAX mtime is
/// kept for extraction only (the writer emits whole seconds).
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    /// Raw path as written in the archive (PAX / GNU long names applied), not yet cleaned.
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Permission bits plus setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    /// Nanoseconds of a fractional PAX mtime (extraction sets them; writing drops them).
    pub mtime_nsec: u32,
    /// Data size; zero for everything but files.
    pub size: u64,
    /// Symlink target or hardlink target path; empty otherwise.
    pub link: Vec<u8>,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Extended attributes from `SCHILY.xattr.NAME` records, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    /// A file entry at `path` with this mode, owner and mtime, and nothing else: no data, link,
    /// device numbers or xattrs (callers set the kind and fields they need).
    pub(crate) fn file(path: Vec<u8>, mode: u32, uid: u64, gid: u64, mtime: i64) -> Meta {
        Meta {
            path,
            kind: Kind::File,
            mode,
            uid,
            gid,
            mtime,
            mtime_nsec: 0,
            size: 0,
            link: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }
}

/// The entries of `ar`; the error names the stream.
pub(crate) fn entries<R: Read>(ar: &mut tar::Archive<R>) -> Result<tar::Entries<'_, R>> {
    ar.entries()
        .map_err(|s| tar_err(b"", "cannot read archive", s))
}

/// The entries of `ar` that carry a file, each with its parsed header ([`read_meta`]; PAX global
/// headers are skipped), in archive order.
pub(crate) fn file_entries<R: Read>(
    ar: &mut tar::Archive<R>,
) -> Result<impl Iterator<Item = Result<(tar::Entry<'_, R>, Meta)>>> {
    Ok(entries(ar)?.filter_map(|e| {
        let mut e = match e {
            Ok(e) => e,
            Err(s) => return Some(Err(tar_err(b"", "cannot read entry header", s))),
        };
        read_meta(&mut e).transpose().map(|m| m.map(|m| (e, m)))
    }))
}

/// Parses the next entry's header. `Ok(None)` for entries that carry no file (PAX global headers).
pub(crate) fn read_meta<R: Read>(e: &mut tar::Entry<'_, R>) -> Result<Option<Meta>> {
    let path = e.path_bytes().into_owned();
    let h = e.header();
    use tar::EntryType as T;
    let kind = match h.entry_type() {
        // A GNU sparse entry reads back as its expanded contents, so it is a plain file to us.
        T::Regular | T::Continuous | T::GNUSparse => Kind::File,
        T::Directory => Kind::Dir,
        T::Symlink => Kind::Symlink,
        T::Link => Kind::Link,
        T::Char => Kind::Char,
        T::Block => Kind::Block,
        T::Fifo => Kind::Fifo,
        T::XGlobalHeader => return Ok(None),
        other => {
            return Err(LayerError::Unsupported {
                entry: show(&path),
                reason: format!("unsupported tar entry type `{}`", other.as_byte() as char),
            })
        }
    };
    let field = |r: io::Result<u64>, what: &str| {
        r.map_err(|s| tar_err(&path, &format!("bad {what} in entry"), s))
    };
    let mode = field(h.mode().map(u64::from), "mode")? as u32 & 0o7777;
    let (uid, gid) = (field(h.uid(), "uid")?, field(h.gid(), "gid")?);
    let mut mtime = field(h.mtime(), "mtime")? as i64;
    let mut mtime_nsec = 0;
    let (mut dev_major, mut dev_minor) = (0, 0);
    if matches!(kind, Kind::Char | Kind::Block) {
        let dev = |r: io::Result<Option<u32>>| {
            r.map_err(|s| tar_err(&path, "bad device number in entry", s))
        };
        dev_major = dev(h.device_major())?.unwrap_or(0);
        dev_minor = dev(h.device_minor())?.unwrap_or(0);
    }
    let link = match kind {
        Kind::Symlink | Kind::Link => e.link_name_bytes().map(Cow::into_owned).unwrap_or_default(),
        _ => Vec::new(),
    };
    let size = if kind == Kind::File { e.size() } else { 0 };
    let mut xattrs = Vec::new();
    if let Some(pax) = e
        .pax_extensions()
        .map_err(|s| tar_err(&path, "bad pax header of entry", s))?
    {
        for rec in pax {
            let rec = rec.map_err(|s| tar_err(&path, "bad pax record in entry", s))?;
            let key = rec.key_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((name.to_vec(), rec.value_bytes().to_vec()));
            } else if key == b"mtime" {
                // PAX mtimes may be fractional or negative.
                if let Some((secs, nsec)) = pax_time(rec.value().unwrap_or("")) {
                    (mtime, mtime_nsec) = (secs, nsec);
                }
            }
        }
    }
    xattrs.sort();
    Ok(Some(Meta {
        path,
        kind,
        mode,
        uid,
        gid,
        mtime,
        mtime_nsec,
        size,
        link,
        dev_major,
        dev_minor,
        xattrs,
    }))
}

/// A PAX time (`-?SECONDS[.FRACTION]`) as whole seconds (rounded down) and nanoseconds; digits
/// beyond nanoseconds are dropped.
pub(crate) fn pax_time(v: &str) -> Option<(i64, u32)> {
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = int.parse::<i64>().ok()?;
    let mut nsec = 0u32;
    for i in 0..9 {
        let d = frac.as_bytes().get(i).map_or(0, |b| u32::from(b - b'0'));
        nsec = nsec * 10 + d;
    }
    Some(match (neg, nsec) {
        (false, _) => (secs, nsec),
        (true, 0) => (-secs, 0),
        (true, n) => (-secs - 1, 1_000_000_000 - n),
    })
}

/// Lexically cleans a tar path as if it were rooted at `/` (Go's `filepath.Clean("/"+p)` minus the slash):
/// empty and `.` components vanish and `..` pops one component. Returns the clean relative path (empty for
/// the root itself) and whether some `..` tried to climb above the root (it is clamped there).
pub(crate) fn clean(raw: &[u8]) -> (Vec<u8>, bool) {
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut escaped = false;
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => escaped |= parts.pop().is_none(),
            c => parts.push(c),
        }
    }
    (parts.join(&b'/'), escaped)
}

/// Splits a clean path into its parent (maybe empty) and its last component.
pub(crate) fn split_last(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (&p[..0], p),
    }
}

/// Joins a clean parent and one component.
pub(crate) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// A PAX record: key and value bytes.
type PaxRecord<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// Largest value of an 11-digit octal ustar field (size, mtime); beyond it PAX records carry the value.
const MAX_OCTAL_11: u64 = 0o777_7777_7777;
/// Largest value of a 7-digit octal ustar field (uid, gid).
const MAX_OCTAL_7: u64 = 0o777_7777;

/// Writes entries as ustar headers, adding a PAX header only when a value does not fit (long paths, big
/// sizes or ids, xattrs). Every header field not set here is zero, so output depends only on the metadata.
pub(crate) struct TarOut<W: Write> {
    w: W,
    buf: Vec<u8>,
}

impl<W: Write> TarOut<W> {
    pub(crate) fn new(w: W) -> Self {
        TarOut {
            w,
            buf: vec![0; 256 * 1024],
        }
    }

    /// Writes one entry; `m.path` must already be clean. For files exactly `m.size` bytes are copied from
    /// `data`, and running short is an error (a truncated input or a file that shrank while being read).
    pub(crate) fn entry(&mut self, m: &Meta, data: &mut dyn Read) -> io::Result<()> {
        let mut path = Cow::Borrowed(&m.path[..]);
        if m.kind == Kind::Dir && !path.is_empty() {
            // The conventional trailing slash makes `tar tv` and old readers see a directory.
            let mut p = path.into_owned();
            p.push(b'/');
            path = Cow::Owned(p);
        }
        let mut pax: Vec<PaxRecord<'_>> = Vec::new();
        let mut h = tar::Header::new_ustar();
        let old = h.as_old_mut();
        if path.len() > old.name.len() {
            pax.push((Cow::Borrowed(b"path"), path.clone()));
        }
        let n = path.len().min(old.name.len());
        old.name[..n].copy_from_slice(&path[..n]);
        if !m.link.is_empty() {
            if m.link.len() > old.linkname.len() {
                pax.push((Cow::Borrowed(b"linkpath"), Cow::Borrowed(&m.link[..])));
            }
            let n = m.link.len().min(old.linkname.len());
            old.linkname[..n].copy_from_slice(&m.link[..n]);
        }
        h.set_entry_type(match m.kind {
            Kind::File => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink => tar::EntryType::Symlink,
            Kind::Link => tar::EntryType::Link,
            Kind::Char => tar::EntryType::Char,
            Kind::Block => tar::EntryType::Block,
            Kind::Fifo => tar::EntryType::Fifo,
        });
        h.set_mode(m.mode & 0o7777);
        let mut big = |key: &'static [u8], v: u64, max: u64| -> u64 {
            if v > max {
                pax.push((Cow::Borrowed(key), Cow::Owned(v.to_string().into_bytes())));
                0
            } else {
                v
            }
        };
        h.set_uid(big(b"uid", m.uid, MAX_OCTAL_7));
        h.set_gid(big(b"gid", m.gid, MAX_OCTAL_7));
        h.set_size(big(b"size", m.size, MAX_OCTAL_11));
        h.set_mtime((m.mtime.max(0) as u64).min(MAX_OCTAL_11));
        if matches!(m.kind, Kind::Char | Kind::Block) {
            h.set_device_major(m.dev_major)?;
            h.set_device_minor(m.dev_minor)?;
        }
        for (name, value) in &m.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(name);
            pax.push((Cow::Owned(key), Cow::Borrowed(&value[..])));
        }
        h.set_cksum();
        if !pax.is_empty() {
            self.pax_header(&pax)?;
        }
        self.w.write_all(h.as_bytes())?;
        if m.kind == Kind::File {
            self.data(data, m.size)?;
        }
        Ok(())
    }

    /// A PAX `x` header with records `"<len> key=value\n"`, `len` counting its own digits.
    fn pax_header(&mut self, recs: &[PaxRecord<'_>]) -> io::Result<()> {
        let mut body = Vec::new();
        for (k, v) in recs {
            let rest = k.len() + v.len() + 3; // space, '=', newline
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(len.to_string().as_bytes());
            body.push(b' ');
            body.extend_from_slice(k);
            body.push(b'=');
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        let mut h = tar::Header::new_ustar();
        let name = b"././@PaxHeader";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(body.len() as u64);
        h.set_mtime(0);
        h.set_cksum();
        self.w.write_all(h.as_bytes())?;
        self.data(&mut &body[..], body.len() as u64)
    }

    /// Copies exactly `size` bytes and pads to the 512-byte block.
    fn data(&mut self, r: &mut dyn Read, size: u64) -> io::Result<()> {
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match r.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("data ended {left} bytes short of its {size}-byte size"),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.w.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        let pad = (512 - (size % 512) as usize) % 512;
        self.w.write_all(&[0u8; 512][..pad])
    }

    /// Writes the two zero blocks that end an archive and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&[0u8; 1024])?;
        self.w.flush()?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_clamps_like_docker() {
        let c = |p: &str| {
            let (v, esc) = clean(p.as_bytes());
            (String::from_utf8(v).unwrap(), esc)
        };
        assert_eq!(c("./a/b/"), ("a/b".into(), false));
        assert_eq!(c("/etc//passwd"), ("etc/passwd".into(), false));
        assert_eq!(c("a/../b"), ("b".into(), false));
        assert_eq!(c("../escape"), ("escape".into(), true));
        assert_eq!(c("a/../../escape"), ("escape".into(), true));
        assert_eq!(c("./"), ("".into(), false));
        assert_eq!(c(".."), ("".into(), true));
        assert_eq!(split_last(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
    }

    #[test]
    fn pax_times_keep_nanoseconds() {
        assert_eq!(pax_time("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(pax_time("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(pax_time("1.123456789123"), Some((1, 123_456_789)));
        assert_eq!(pax_time("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(pax_time("-3"), Some((-3, 0)));
        assert_eq!(pax_time("x"), None);
        assert_eq!(pax_time("1.x"), None);
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        // 5 + 1 + 4 + 1 + value 90 + 1 -> crosses from 2 to 3 digits
        let mut t = TarOut::new(Vec::new());
        let v = [b'x'; 95];
        t.pax_header(&[(Cow::Borrowed(b"path"), Cow::Borrowed(&v[..]))])
            .unwrap();
        let body = &t.w[512..];
        let text = std::str::from_utf8(&body[..body.iter().position(|&b| b == b'\n').unwrap() + 1])
            .unwrap();
        let (len, _) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), text.len());
    }
}
