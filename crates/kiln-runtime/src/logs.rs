//! Container logs in Docker's json-file format: one JSON object a line,
//! `{"log":"text\n","stream":"stdout","time":"RFC3339Nano"}`, rotated by size.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The current log file of a container directory.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("container.log")
}

/// Appends lines to a container's log, rotating to `container.log.1` past `max_size`.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
}

impl LogWriter {
    /// Opens (appending) the log of `dir`.
    pub fn open(dir: &Path, max_size: u64) -> io::Result<Self> {
        let path = path(dir);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            file,
            size,
            max_size,
        })
    }

    /// Writes one record.
    pub fn write(&mut self, stream: &str, text: &[u8]) -> io::Result<()> {
        let line = serde_json::json!({
            "log": String::from_utf8_lossy(text),
            "stream": stream,
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        });
        let mut bytes = serde_json::to_vec(&line).expect("json values serialize");
        bytes.push(b'\n');
        if self.size + bytes.len() as u64 > self.max_size && self.size > 0 {
            let rotated = self.path.with_extension("log.1");
            fs::rename(&self.path, &rotated)?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = 0;
        }
        self.file.write_all(&bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }
}

/// Copies a stream (a container's stdout or stderr pipe) into the log, a line a record,
/// until it closes.
pub fn pump(reader: impl Read, stream: &'static str, log: Arc<Mutex<LogWriter>>) {
    let mut r = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let _ = log.lock().unwrap().write(stream, &line);
            }
        }
    }
}

/// One record of a log.
#[derive(Debug, serde::Deserialize)]
pub struct Entry {
    /// One line of output, its newline included (invalid UTF-8 replaced).
    pub log: String,
    /// The stream it came from: `stdout` or `stderr`.
    pub stream: String,
    /// When it was written, RFC 3339 in UTC with nanoseconds.
    pub time: String,
}

/// Reads the records of the log of `dir` from byte `offset`, rotated file first when
/// starting from the beginning. Returns them and the new offset in the current file.
pub fn read_from(dir: &Path, offset: u64) -> io::Result<(Vec<Entry>, u64)> {
    let mut out = Vec::new();
    if offset == 0 {
        if let Ok(f) = File::open(path(dir).with_extension("log.1")) {
            out.extend(parse(BufReader::new(f)));
        }
    }
    let mut f = match File::open(path(dir)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((out, offset)),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    // The file was rotated under us: start it over.
    let offset = if len < offset { 0 } else { offset };
    io::Seek::seek(&mut f, io::SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    // Only whole lines: a record being written stays for the next read.
    let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    out.extend(parse(&buf[..end]));
    Ok((out, offset + end as u64))
}

fn parse(r: impl BufRead) -> Vec<Entry> {
    r.lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reads_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path(), 200).unwrap();
        w.write("stdout", b"one\n").unwrap();
        w.write("stderr", b"two\n").unwrap();
        let (entries, off) = read_from(dir.path(), 0).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].stream, "stderr");
        for i in 0..5 {
            w.write("stdout", format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(path(dir.path()).with_extension("log.1").exists());
        let (all, _) = read_from(dir.path(), 0).unwrap();
        assert!(all.len() >= 3 && all.last().unwrap().log == "line 4\n");
        let (_, off2) = read_from(dir.path(), off).unwrap();
        assert!(off2 > 0);
    }
}
