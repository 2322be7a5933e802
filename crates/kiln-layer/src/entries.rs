//! Layers made of entries the caller names one by one ([`EntryWriter`]): for content that
//! is not a directory tree on disk, such as weights files placed at their image path or a
//! project's code files under its workdir. Same format as [`crate::write_dir`].

use std::io::{self, Read, Write};

use crate::tarfmt::{clean, Kind, Meta, TarOut};

/// Owner and mode of an entry, and its mtime.
#[derive(Clone, Copy, Debug)]
pub struct EntryMeta {
    /// Permission bits with setuid/setgid/sticky (`0o7777`); file type bits are ignored.
    pub mode: u32,
    /// Numeric owner user id written in the header (no user name is written).
    pub uid: u64,
    /// Numeric owner group id written in the header (no group name is written).
    pub gid: u64,
    /// Modification time in whole seconds since the Unix epoch.
    pub mtime: i64,
}

/// Writes a deterministic layer entry by entry. The caller decides the order (layers
/// written with it should be sorted by path, parents first, as [`crate::write_dir`] does);
/// paths are cleaned lexically (`a/../b` is `b`, a leading `/` is dropped).
pub struct EntryWriter<W: Write> {
    out: TarOut<W>,
}

impl<W: Write> EntryWriter<W> {
    /// A writer of a layer tar into `w` (plain tar: wrap `w` in a compressor to compress).
    pub fn new(w: W) -> Self {
        EntryWriter {
            out: TarOut::new(w),
        }
    }

    fn meta(path: &str, kind: Kind, m: EntryMeta, size: u64, link: &[u8]) -> io::Result<Meta> {
        let (clean_path, _) = clean(path.as_bytes());
        if clean_path.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{path}` names the root, not an entry"),
            ));
        }
        Ok(Meta {
            path: clean_path,
            kind,
            mode: m.mode & 0o7777,
            uid: m.uid,
            gid: m.gid,
            mtime: m.mtime,
            mtime_nsec: 0,
            size,
            link: link.to_vec(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        })
    }

    /// A directory.
    pub fn dir(&mut self, path: &str, m: EntryMeta) -> io::Result<()> {
        let meta = Self::meta(path, Kind::Dir, m, 0, b"")?;
        self.out.entry(&meta, &mut io::empty())
    }

    /// A regular file of exactly `size` bytes read from `data` (an error if it runs short).
    pub fn file(
        &mut self,
        path: &str,
        m: EntryMeta,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let meta = Self::meta(path, Kind::File, m, size, b"")?;
        self.out.entry(&meta, data)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str, m: EntryMeta) -> io::Result<()> {
        let meta = Self::meta(path, Kind::Symlink, m, 0, target.as_bytes())?;
        self.out.entry(&meta, &mut io::empty())
    }

    /// Ends the archive and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        self.out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_as_written() {
        let m = EntryMeta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 7,
        };
        let mut w = EntryWriter::new(Vec::new());
        w.dir("/app", EntryMeta { mode: 0o755, ..m }).unwrap();
        w.file("app/x/../a.txt", m, 3, &mut &b"abc"[..]).unwrap();
        w.symlink("app/l", "a.txt", m).unwrap();
        let out = w.finish().unwrap();
        let mut ar = tar::Archive::new(&out[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                assert_eq!(e.header().mtime().unwrap(), 7);
                e.path().unwrap().display().to_string()
            })
            .collect();
        assert_eq!(names, ["app/", "app/a.txt", "app/l"]);
        assert!(EntryWriter::new(Vec::new()).dir("/", m).is_err());
        let mut short = EntryWriter::new(Vec::new());
        assert!(short.file("app/short", m, 5, &mut &b"ab"[..]).is_err());
    }
}
