//! The reading side of extraction: the calling thread reads (and so decompresses and hashes) the stream
//! in chunks and hands them to the parsing thread.

use std::io::{self, Read};
use std::sync::mpsc;

/// The reading thread hands the stream to the parser in chunks of this size, at most this many ahead.
const CHUNK: usize = 1 << 20;
pub(super) const CHUNKS_AHEAD: usize = 8;

/// Reads `r` in chunks for [`ChanReader`] until its end, an error (passed on) or the parser is done.
pub(super) fn pump<R: Read>(
    mut r: R,
    tx: &mpsc::SyncSender<io::Result<(Vec<u8>, usize)>>,
    back: &mpsc::Receiver<Vec<u8>>,
) {
    loop {
        let mut buf = back.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
        let mut n = 0;
        let mut end = false;
        while n < CHUNK {
            match r.read(&mut buf[n..]) {
                Ok(0) => {
                    end = true;
                    break;
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        if n > 0 && tx.send(Ok((buf, n))).is_err() {
            return; // the parser is done (or failed)
        }
        if end {
            return;
        }
    }
}

/// The parser's side of [`pump`].
pub(super) struct ChanReader {
    pub(super) rx: mpsc::Receiver<io::Result<(Vec<u8>, usize)>>,
    pub(super) back: mpsc::Sender<Vec<u8>>,
    pub(super) cur: Option<Vec<u8>>,
    pub(super) len: usize,
    pub(super) pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.len {
            if let Some(b) = self.cur.take() {
                let _ = self.back.send(b);
            }
            match self.rx.recv() {
                Ok(Ok((b, n))) => {
                    self.cur = Some(b);
                    self.len = n;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let cur = self.cur.as_deref().unwrap_or_default();
        let n = buf.len().min(self.len - self.pos);
        buf[..n].copy_from_slice(&cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
