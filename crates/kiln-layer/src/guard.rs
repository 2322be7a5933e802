//! A bound on the tar members that the `tar` crate reads whole into memory.
//!
//! `tar` 0.4's [`tar::Entries`] (not raw) reads a GNU long-name (`L`), long-link (`K`) or PAX
//! extended-header (`x`) member completely into a `Vec` before it yields the entry they
//! describe, whatever size its header declares. A layer or archive holding a multi-GB `L`
//! member of zeros (a few MB once gzipped) would make us allocate all of it. [`TarGuard`] sits
//! between the decompressed stream and [`tar::Archive`], follows the tar structure as the bytes
//! pass (exactly as `tar::Archive` advances through it), and fails the read that completes the
//! header of an `L`, `K`, `x` or `g` member declaring more than a cap.
//!
//! It never rejects anything else: where it cannot follow the structure (a bad checksum, a bad
//! size field, the end-of-archive block), it stops looking and passes the bytes through, so
//! the tar crate reports the error (or the end) as it always did.

use std::fmt;
use std::io::{self, Read};

use crate::error::{LayerError, Result};

/// The default cap on one extension member: PATH_MAX is 4 KiB and PAX headers holding xattrs
/// (security.capability, SELinux labels, ACLs) take a few KiB, so 1 MiB is generous.
pub const EXTENSION_CAP: u64 = 1 << 20;

const BLOCK: usize = 512;

/// A [`Read`] adapter that bounds tar extension members (see the module docs). Put it directly
/// under [`tar::Archive`] and read the archive with (non-raw) `entries()`:
///
/// ```no_run
/// # fn f(r: impl std::io::Read) -> std::io::Result<()> {
/// let mut ar = tar::Archive::new(kiln_layer::TarGuard::new(r));
/// for e in ar.entries()? {
///     let _e = e?; // an oversized long name fails here, with an InvalidData error
/// }
/// # Ok(()) }
/// ```
pub struct TarGuard<R> {
    inner: R,
    cap: u64,
    ignore_zeros: bool,
    state: State,
    /// The header block (or GNU sparse extension block) being assembled.
    block: [u8; BLOCK],
    have: usize,
    /// The records of the PAX `x` member passing now.
    pax: Vec<u8>,
    /// Set while a PAX `x` member waits for the entry it describes: that member's `size`
    /// record, which overrides the entry's header size as the tar crate does.
    pending_pax: Option<Option<u64>>,
    /// The oversized member this guard failed on (what, size); every later read repeats it.
    failed: Option<(&'static str, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Assembling a header block.
    Header,
    /// Assembling the old-GNU sparse extension blocks that follow a sparse header; `padded` is
    /// the entry's data size rounded up to a block, which follows them.
    SparseExt { padded: u64 },
    /// Passing `left` bytes of member data and padding. For a PAX `x` member (`pax`), its
    /// first `collect` bytes are its records, kept to find a `size` record.
    Data {
        left: u64,
        collect: usize,
        pax: bool,
    },
    /// The structure cannot be followed (or the archive ended): bytes pass untouched.
    Off,
}

impl<R: Read> TarGuard<R> {
    /// Guards `inner` with the default cap, [`EXTENSION_CAP`].
    pub fn new(inner: R) -> Self {
        Self::with_cap(inner, EXTENSION_CAP)
    }

    /// Guards `inner`, refusing extension members of more than `cap` bytes.
    pub fn with_cap(inner: R, cap: u64) -> Self {
        TarGuard {
            inner,
            cap,
            ignore_zeros: false,
            state: State::Header,
            block: [0; BLOCK],
            have: 0,
            pax: Vec::new(),
            pending_pax: None,
            failed: None,
        }
    }

    /// Mirrors [`tar::Archive::set_ignore_zeros`]: set it the same way on both, so that the
    /// guard keeps following the structure past zero blocks when the archive reader does.
    pub fn ignore_zeros(mut self, ignore: bool) -> Self {
        self.ignore_zeros = ignore;
        self
    }

    /// The guarded reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The guarded reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Feeds `bytes`, just read and all inside the current state's span, to the state machine.
    fn advance(&mut self, bytes: &[u8]) -> Result<()> {
        match self.state {
            State::Header | State::SparseExt { .. } => {
                self.block[self.have..self.have + bytes.len()].copy_from_slice(bytes);
                self.have += bytes.len();
                if self.have == BLOCK {
                    self.have = 0;
                    match self.state {
                        State::SparseExt { padded } => self.sparse_ext_block(padded),
                        _ => self.header()?,
                    }
                }
            }
            State::Data { left, collect, pax } => {
                let k = collect.min(bytes.len());
                self.pax.extend_from_slice(&bytes[..k]);
                self.state = State::Data {
                    left: left - bytes.len() as u64,
                    collect: collect - k,
                    pax,
                };
                self.data_done_if_empty();
            }
            State::Off => {}
        }
        Ok(())
    }

    /// A header block is complete: works out what follows it, as `tar::Archive` does
    /// (`EntriesFields::next_entry_raw`, `next_entry`, `parse_sparse_header` in tar 0.4).
    fn header(&mut self) -> Result<()> {
        if self.block.iter().all(|&b| b == 0) {
            // The end of the archive, unless the reader skips zero blocks.
            if !self.ignore_zeros {
                self.state = State::Off;
            }
            return Ok(());
        }
        let h = tar::Header::from_byte_slice(&self.block);
        let sum = self.block[..148]
            .iter()
            .chain(&self.block[156..])
            .fold(0u32, |a, &b| a + u32::from(b))
            + 8 * 32;
        let Ok(mut size) = h.entry_size() else {
            self.state = State::Off;
            return Ok(());
        };
        if h.cksum().ok() != Some(sum) {
            self.state = State::Off;
            return Ok(());
        }
        let t = h.entry_type();
        let extension = if t.is_gnu_longname() {
            Some("a GNU long name")
        } else if t.is_gnu_longlink() {
            Some("a GNU long link")
        } else if t.is_pax_local_extensions() {
            Some("a PAX extended header")
        } else if t.is_pax_global_extensions() {
            Some("a PAX global header")
        } else {
            None
        };
        match extension {
            // A PAX `size` record describes the next member that is not an extension.
            None => {
                if let Some(Some(s)) = self.pending_pax {
                    size = s;
                }
            }
            Some(what) if size > self.cap => {
                return Err(LayerError::Oversized {
                    what,
                    size,
                    cap: show_bytes(self.cap),
                });
            }
            Some(_) => {}
        }
        // The tar crate reads these whole and goes on to the member they describe; any other
        // member (an unrecognised `L`, `K` or `x` too) is yielded, which ends the pending PAX.
        let recognized = h.as_gnu().is_some() || h.as_ustar().is_some();
        let pax = recognized && t.is_pax_local_extensions();
        let absorbed = pax || (recognized && (t.is_gnu_longname() || t.is_gnu_longlink()));
        let mut collect = 0;
        if pax {
            // Capped above, so it fits in memory.
            collect = usize::try_from(size).unwrap_or(usize::MAX);
            self.pax.clear();
        } else if !absorbed {
            self.pending_pax = None;
        }
        let Some(padded) = size.checked_add(BLOCK as u64 - 1) else {
            self.state = State::Off;
            return Ok(());
        };
        let padded = padded & !(BLOCK as u64 - 1);
        // An old-GNU sparse entry: extension blocks listing more chunks come before its data.
        if !absorbed && t.is_gnu_sparse() && h.as_gnu().is_some_and(|g| g.is_extended()) {
            self.state = State::SparseExt { padded };
            return Ok(());
        }
        self.state = State::Data {
            left: padded,
            collect,
            pax,
        };
        self.data_done_if_empty();
        Ok(())
    }

    /// An old-GNU sparse extension block is complete.
    fn sparse_ext_block(&mut self, padded: u64) {
        let mut ext = tar::GnuExtSparseHeader::new();
        ext.as_mut_bytes().copy_from_slice(&self.block);
        if !ext.is_extended() {
            self.state = State::Data {
                left: padded,
                collect: 0,
                pax: false,
            };
            self.data_done_if_empty();
        }
    }

    /// After a member's data and padding, the next header; a PAX `x` member's `size` record
    /// now waits for the member it describes.
    fn data_done_if_empty(&mut self) {
        let State::Data { left: 0, pax, .. } = self.state else {
            return;
        };
        if pax {
            self.pending_pax = Some(pax_size(&self.pax));
            self.pax = Vec::new();
        }
        self.state = State::Header;
    }
}

/// The `size` record of PAX records, read exactly as tar 0.4's `pax_extensions_value` does:
/// the first `size` record, and nothing if a record before it (or its value) is malformed.
fn pax_size(records: &[u8]) -> Option<u64> {
    for r in tar::PaxExtensions::new(records) {
        let r = r.ok()?;
        if r.key() != Ok("size") {
            continue;
        }
        return r.value().ok()?.parse::<u64>().ok();
    }
    None
}

fn show_bytes(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((what, size)) = self.failed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                LayerError::Oversized {
                    what,
                    size,
                    cap: show_bytes(self.cap),
                },
            ));
        }
        // Never read across the end of a header block or of a member's data: each read then
        // belongs to one span, and a bad header fails before its data is read.
        let span = match self.state {
            State::Header | State::SparseExt { .. } => (BLOCK - self.have) as u64,
            State::Data { left, .. } => left,
            State::Off => u64::MAX,
        };
        let len = buf.len().min(usize::try_from(span).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        if n > len {
            return Err(io::Error::other(
                "the reader under a tar guard misreported a read",
            ));
        }
        if n > 0 {
            if let Err(e) = self.advance(&buf[..n]) {
                if let LayerError::Oversized { what, size, .. } = e {
                    self.failed = Some((what, size));
                }
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        Ok(n)
    }
}

impl<R> fmt::Debug for TarGuard<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TarGuard")
            .field("cap", &self.cap)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use tar::{EntryType, Header};

    /// A reader that hands out at most `n` bytes a call.
    struct Chunks<R>(R, usize);

    impl<R: Read> Read for Chunks<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    fn header(gnu: bool, kind: EntryType, name: &[u8], size: u64) -> Header {
        let mut h = if gnu {
            Header::new_gnu()
        } else {
            Header::new_ustar()
        };
        h.set_entry_type(kind);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_cksum();
        h
    }

    fn member(h: &Header, data: &[u8]) -> Vec<u8> {
        let mut v = h.as_bytes().to_vec();
        v.extend_from_slice(data);
        v.resize(v.len().next_multiple_of(BLOCK), 0);
        v
    }

    fn records(recs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in recs {
            let base = k.len() + v.len() + 3;
            let mut len = base + 1;
            while base + len.to_string().len() != len {
                len += 1;
            }
            out.extend_from_slice(format!("{len} {k}=").as_bytes());
            out.extend_from_slice(v);
            out.push(b'\n');
        }
        out
    }

    fn pax(recs: &[(&str, &[u8])]) -> Vec<u8> {
        let r = records(recs);
        member(
            &header(false, EntryType::XHeader, b"PaxHeaders/x", r.len() as u64),
            &r,
        )
    }

    fn file(name: &[u8], data: &[u8]) -> Vec<u8> {
        member(
            &header(false, EntryType::Regular, name, data.len() as u64),
            data,
        )
    }

    fn payload(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    type Listing = Vec<(
        Vec<u8>,
        Option<Vec<u8>>,
        u64,
        Vec<u8>,
        Vec<(Vec<u8>, Vec<u8>)>,
    )>;

    /// Every entry as the tar crate reads it: path, link, size, contents, PAX records.
    fn list(r: impl Read) -> io::Result<Listing> {
        let mut ar = tar::Archive::new(r);
        let mut out = Vec::new();
        for e in ar.entries()? {
            let mut e = e?;
            let path = e.path_bytes().into_owned();
            let link = e.link_name_bytes().map(|l| l.into_owned());
            let mut pax = Vec::new();
            if let Some(p) = e.pax_extensions()? {
                for r in p {
                    pax.push(match r {
                        Ok(r) => (r.key_bytes().to_vec(), r.value_bytes().to_vec()),
                        Err(_) => (b"(malformed)".to_vec(), Vec::new()),
                    });
                }
            }
            let mut data = Vec::new();
            e.read_to_end(&mut data)?;
            out.push((path, link, e.size(), data, pax));
        }
        Ok(out)
    }

    const TWO_GIB: u64 = 2 << 30;

    fn long_name_header(size: u64) -> Vec<u8> {
        header(true, EntryType::GNULongName, b"././@LongLink", size)
            .as_bytes()
            .to_vec()
    }

    /// `body` (members, no end blocks) passes through the guard unchanged whatever the read
    /// sizes, reads back as without the guard, and the guard follows it to its end: an
    /// oversized long name appended after it is caught.
    fn check_valid(body: &[u8], expect_entries: usize) -> Listing {
        let mut full = body.to_vec();
        full.extend_from_slice(&[0; 2 * BLOCK]);
        let plain = list(Cursor::new(&full)).expect("the archive is valid");
        assert_eq!(plain.len(), expect_entries);
        for chunk in [1, 7, 100, 512, 513, 4096, 1 << 20] {
            let mut out = Vec::new();
            let mut g = TarGuard::new(Chunks(Cursor::new(&full), chunk));
            let mut buf = vec![0; chunk.min(1000) + 3];
            loop {
                let n = g.read(&mut buf).expect("a valid archive passes");
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert!(out == full, "bytes changed (chunk {chunk})");
            assert_eq!(g.state, State::Off, "the guard saw the end (chunk {chunk})");
            let guarded = list(TarGuard::new(Chunks(Cursor::new(&full), chunk)))
                .expect("a valid archive reads through the guard");
            assert!(guarded == plain, "entries changed (chunk {chunk})");
        }
        let mut bad = body.to_vec();
        bad.extend_from_slice(&long_name_header(TWO_GIB));
        bad.extend_from_slice(&[0; 2 * BLOCK]);
        let err = list(TarGuard::new(Cursor::new(&bad))).expect_err("the guard follows to the end");
        assert_eq!(
            err.to_string(),
            "tar: a GNU long name member of 2147483648 bytes (more than 1 MiB)"
        );
        plain
    }

    fn without_end(mut v: Vec<u8>) -> Vec<u8> {
        v.truncate(v.len() - 2 * BLOCK);
        v
    }

    #[test]
    fn gnu_long_name_and_long_link_pass() {
        let name = "d/".repeat(99) + "ff"; // 200 bytes
        let target = "t/".repeat(75) + "target"; // 156 bytes
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        b.append_data(&mut h, &name, &b"hello"[..]).unwrap();
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "short-link", &target).unwrap();
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, &name, &target).unwrap();
        let mut h = Header::new_gnu();
        h.set_size(700);
        b.append_data(&mut h, "after", &payload(700, 1)[..])
            .unwrap();
        let body = without_end(b.into_inner().unwrap());
        let l = check_valid(&body, 4);
        assert_eq!(l[0].0, name.as_bytes());
        assert_eq!(l[0].3, b"hello");
        assert_eq!(l[1].1.as_deref(), Some(target.as_bytes()));
        assert_eq!(l[2].0, name.as_bytes());
        assert_eq!(l[2].1.as_deref(), Some(target.as_bytes()));
        assert_eq!(l[3].3, payload(700, 1));
    }

    #[test]
    fn pax_path_and_xattrs_pass() {
        let name = "p/".repeat(100) + "x";
        let mut body = pax(&[
            ("path", name.as_bytes()),
            ("SCHILY.xattr.user.comment", b"kiln"),
            (
                "SCHILY.xattr.security.capability",
                &[1, 0, 0, 2, 0, 0x20, 0, 0],
            ),
            ("mtime", b"1700000000.5"),
        ]);
        body.extend(file(b"short", &payload(1300, 2)));
        // A global header is yielded as an entry of its own.
        let g = records(&[("comment", b"global")]);
        body.extend(member(
            &header(false, EntryType::XGlobalHeader, b"g", g.len() as u64),
            &g,
        ));
        body.extend(file(b"after", b"x"));
        let l = check_valid(&body, 3);
        assert_eq!(l[0].0, name.as_bytes());
        assert_eq!(l[0].3, payload(1300, 2));
        assert!(l[0]
            .4
            .iter()
            .any(|(k, v)| k == b"SCHILY.xattr.user.comment" && v == b"kiln"));
        assert_eq!(l[2].3, b"x");
    }

    #[test]
    fn pax_size_overrides_the_header_size() {
        // The header says 7 bytes; the PAX record says 1000, and the tar crate reads 1000.
        let mut body = pax(&[("mtime", b"1"), ("size", b"1000")]);
        body.extend(member(
            &header(false, EntryType::Regular, b"big", 7),
            &payload(1000, 3),
        ));
        // A `size` record passes over the long name that follows it to the file after.
        body.extend(pax(&[("size", b"1500")]));
        let name = "n".repeat(300);
        let mut lname = name.clone().into_bytes();
        lname.push(0);
        body.extend(member(
            &header(
                true,
                EntryType::GNULongName,
                b"././@LongLink",
                lname.len() as u64,
            ),
            &lname,
        ));
        body.extend(member(
            &header(true, EntryType::Regular, b"n", 0),
            &payload(1500, 4),
        ));
        // A malformed record before `size` hides it from the tar crate: the header size counts.
        let mut bad = b"5 a=b\n".to_vec();
        bad.extend(records(&[("size", b"4000")]));
        body.extend(member(
            &header(false, EntryType::XHeader, b"x", bad.len() as u64),
            &bad,
        ));
        body.extend(file(b"plain", &payload(600, 5)));
        body.extend(file(b"after", b"end"));
        let l = check_valid(&body, 4);
        assert_eq!((l[0].2, &l[0].3), (1000, &payload(1000, 3)));
        assert_eq!(l[1].0, name.as_bytes());
        assert_eq!(l[1].3, payload(1500, 4));
        assert_eq!(l[2].3, payload(600, 5));
        assert_eq!(l[3].3, b"end");
    }

    #[test]
    fn gnu_base256_size_passes() {
        let mut h = header(true, EntryType::Regular, b"b256", 0);
        h.as_old_mut().size = [0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0xe8];
        h.set_cksum();
        assert_eq!(h.entry_size().unwrap(), 1000);
        let mut body = member(&h, &payload(1000, 6));
        body.extend(file(b"after", b"end"));
        let l = check_valid(&body, 2);
        assert_eq!(l[0].3, payload(1000, 6));
    }

    #[test]
    fn old_gnu_sparse_with_extension_blocks_passes() {
        // Chunks of 512 at 0, 1024, 2048, 3072 in the header, 4096 and 5120 in two extension
        // blocks: 3072 bytes stored, 5632 bytes expanded.
        let mut h = header(true, EntryType::GNUSparse, b"sparse", 3072);
        {
            let g = h.as_gnu_mut().unwrap();
            for (i, s) in g.sparse.iter_mut().enumerate() {
                s.set_offset(i as u64 * 1024);
                s.set_length(512);
            }
            g.set_is_extended(true);
            g.set_real_size(5632);
        }
        h.set_cksum();
        let mut body = h.as_bytes().to_vec();
        for (off, more) in [(4096, true), (5120, false)] {
            let mut ext = tar::GnuExtSparseHeader::new();
            ext.sparse[0].set_offset(off);
            ext.sparse[0].set_length(512);
            ext.set_is_extended(more);
            body.extend_from_slice(ext.as_bytes());
        }
        let data = payload(3072, 7);
        body.extend_from_slice(&data);
        body.extend(file(b"after", &payload(513, 8)));
        let l = check_valid(&body, 2);
        let mut expanded = vec![0u8; 5632];
        for i in 0..6 {
            expanded[i * 1024..i * 1024 + 512].copy_from_slice(&data[i * 512..(i + 1) * 512]);
        }
        assert!(l[0].3 == expanded);
        assert_eq!(l[1].3, payload(513, 8));
    }

    /// A header followed by `size` lazily made zeros: nothing that big is ever in memory.
    fn lazy(header: Vec<u8>, size: u64) -> impl Read {
        Cursor::new(header).chain(io::repeat(0).take(size))
    }

    fn first_error(r: impl Read) -> io::Error {
        let mut ar = tar::Archive::new(TarGuard::new(r));
        let mut entries = ar.entries().unwrap();
        match entries.next() {
            Some(Err(e)) => e,
            other => panic!("expected an error, got {:?}", other.map(|e| e.map(|_| ()))),
        }
    }

    #[test]
    fn huge_long_name_fails_fast() {
        let t = std::time::Instant::now();
        let err = first_error(lazy(long_name_header(TWO_GIB), TWO_GIB));
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            "tar: a GNU long name member of 2147483648 bytes (more than 1 MiB)"
        );
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        // Only the header exists: the data is missing altogether.
        let err = first_error(Cursor::new(long_name_header(TWO_GIB)));
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn every_extension_type_is_capped() {
        for (kind, gnu, what) in [
            (EntryType::GNULongName, true, "a GNU long name"),
            (EntryType::GNULongLink, true, "a GNU long link"),
            (EntryType::XHeader, false, "a PAX extended header"),
            (EntryType::XGlobalHeader, false, "a PAX global header"),
        ] {
            let size = (1 << 20) + 1;
            let err = first_error(lazy(
                header(gnu, kind, b"x", size).as_bytes().to_vec(),
                size,
            ));
            assert_eq!(
                err.to_string(),
                format!("tar: {what} member of 1048577 bytes (more than 1 MiB)")
            );
            // At the cap it passes (the tar crate then reads it as it always did).
            let mut ok = member(&header(gnu, kind, b"x", 1 << 20), &vec![b'a'; 1 << 20]);
            ok.extend(file(b"f", b"data"));
            ok.extend_from_slice(&[0; 1024]);
            let mut out = Vec::new();
            TarGuard::new(Cursor::new(&ok))
                .read_to_end(&mut out)
                .unwrap();
            assert!(out == ok);
        }
    }

    #[test]
    fn the_error_sticks_and_split_headers_are_caught() {
        let mut bytes = file(b"first", &payload(100, 9));
        bytes.extend(long_name_header(TWO_GIB));
        let mut g = TarGuard::with_cap(Chunks(Cursor::new(bytes), 3), 4096);
        let mut out = Vec::new();
        let err = g.read_to_end(&mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tar: a GNU long name member of 2147483648 bytes (more than 4 KiB)"
        );
        // The first member and the long name's header up to the read that completed it.
        assert!((1024..1536).contains(&out.len()), "{}", out.len());
        let again = g.read(&mut [0; 16]).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::InvalidData);
        assert_eq!(again.to_string(), err.to_string());
    }

    #[test]
    fn garbage_passes_through() {
        let garbage: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut out = Vec::new();
        let mut g = TarGuard::new(Cursor::new(&garbage));
        g.read_to_end(&mut out).unwrap();
        assert!(out == garbage);
        assert_eq!(g.state, State::Off);
        // A bad checksum stops the guard looking; the tar crate reports it.
        let mut h = long_name_header(TWO_GIB);
        h[148] = b'7';
        assert!(list(TarGuard::new(Cursor::new(h))).is_err());
    }
}
