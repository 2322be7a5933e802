//! `kiln check`: every blob against its digest, every reference against the blobs.

use crate::error::{Result, StoreError};
use crate::progress::Progress;
use crate::store::Store;
use kiln_oci::media::{self, Kind};
use kiln_oci::types::{Descriptor, Index, Manifest};
use kiln_oci::{Digest, HashingReader};
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::sync::Mutex;

/// What `check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Number of blobs hashed in `blobs/sha256/`.
    pub blobs: u64,
    /// Total size in bytes of the blobs hashed.
    pub bytes: u64,
    /// Each names what is broken. Empty means the store is sound.
    pub problems: Vec<String>,
    /// Facts worth knowing that are not damage (an index with platforms not pulled).
    pub notes: Vec<String>,
}

impl Store {
    /// Verifies the layout, every blob's bytes, and that everything index.json refers to
    /// is present with the right size and a known media type.
    pub fn check(&self, progress: &dyn Progress) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let layout = self.root().join("oci-layout");
        match fs::read(&layout) {
            Ok(b)
                if serde_json::from_slice::<serde_json::Value>(&b)
                    .ok()
                    .and_then(|v| v.get("imageLayoutVersion").cloned())
                    .is_some() => {}
            _ => report
                .problems
                .push(format!("{}: missing or invalid", layout.display())),
        }
        // Blobs: hash them all, on every core.
        let dir = self.root().join("blobs/sha256");
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(StoreError::io(&dir))? {
            let entry = entry.map_err(StoreError::io(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            match Digest::from_hex(&name) {
                Ok(d) if entry.file_type().is_ok_and(|t| t.is_file()) => names.push(d),
                _ => report.problems.push(format!(
                    "{}: not a blob (the name must be a sha256 hex digest of a regular file)",
                    entry.path().display()
                )),
            }
        }
        let queue = Mutex::new(names.into_iter());
        let found = Mutex::new((Vec::<String>::new(), 0u64, 0u64));
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let Some(d) = queue.lock().unwrap().next() else { break };
                    let res = self.open_blob(&d).and_then(|f| {
                        let mut r = HashingReader::new(f);
                        io::copy(&mut r, &mut io::sink())
                            .map_err(StoreError::io(self.blob_path(&d)))?;
                        Ok(r.finish())
                    });
                    let mut found = found.lock().unwrap();
                    match res {
                        Ok((actual, size, _)) => {
                            found.1 += 1;
                            found.2 += size;
                            if actual != d {
                                found.0.push(format!(
                                    "blob {d}: content does not match its digest (hashes to {actual})"
                                ));
                            }
                        }
                        Err(e) => found.0.push(format!("blob {d}: {e}")),
                    }
                    progress.advance("check", 1);
                });
            }
        });
        let (bad, blobs, bytes) = found.into_inner().unwrap();
        report.problems.extend(bad);
        report.blobs = blobs;
        report.bytes = bytes;
        // References.
        match self.index() {
            Ok(index) => {
                let mut seen = BTreeSet::new();
                for d in &index.manifests {
                    if crate::referrers::is_referrer(d) {
                        report.problems.extend(self.check_referrer(d));
                        continue;
                    }
                    let what = d
                        .annotation(media::ANNOTATION_REF_NAME)
                        .map(|n| format!("image {n}"))
                        .unwrap_or_else(|| format!("image {}", d.digest));
                    self.check_descriptor(d, &what, &mut seen, &mut report);
                }
            }
            Err(e) => report.problems.push(e.to_string()),
        }
        report.problems.sort();
        report.problems.dedup();
        // The tag history is append-only: a line a killed kiln cut short is a fact worth
        // knowing, not damage (`kiln history` skips it).
        let (_, bad) = self.history()?;
        for b in bad {
            report.notes.push(format!(
                "history/tags.jsonl:{}: not a history record ({}); `kiln history` skips it",
                b.line, b.reason
            ));
        }
        Ok(report)
    }

    fn check_descriptor(
        &self,
        d: &Descriptor,
        what: &str,
        seen: &mut BTreeSet<Digest>,
        report: &mut CheckReport,
    ) {
        let kind = media::kind(&d.media_type);
        let present = match self.blob_size(&d.digest) {
            Ok(size) if size == d.size => true,
            Ok(size) => {
                report.problems.push(format!(
                    "{what}: blob {} is {size} bytes, its descriptor says {}",
                    d.digest, d.size
                ));
                false
            }
            Err(_) => {
                report.problems.push(format!(
                    "{what}: blob {} ({}) is missing",
                    d.digest, d.media_type
                ));
                false
            }
        };
        if kind.is_none() {
            report.problems.push(format!(
                "{what}: blob {} has unknown media type `{}`",
                d.digest, d.media_type
            ));
        }
        if !present || !seen.insert(d.digest.clone()) {
            return;
        }
        match kind {
            Some(Kind::Manifest) => match self.read_json::<Manifest>(&d.digest) {
                Ok(m) => {
                    self.check_descriptor(&m.config, what, seen, report);
                    for l in &m.layers {
                        self.check_descriptor(l, what, seen, report);
                    }
                }
                Err(e) => report.problems.push(format!("{what}: {e}")),
            },
            Some(Kind::Index) => match self.read_json::<Index>(&d.digest) {
                Ok(ix) => {
                    let (here, absent): (Vec<_>, Vec<_>) =
                        ix.manifests.iter().partition(|c| self.has_blob(&c.digest));
                    if here.is_empty() && !ix.manifests.is_empty() {
                        report.problems.push(format!(
                            "{what}: index {} has none of its manifests",
                            d.digest
                        ));
                    }
                    for c in absent {
                        let p = c
                            .platform
                            .as_ref()
                            .map(|p| format!("{}/{}", p.os, p.architecture))
                            .unwrap_or_default();
                        report.notes.push(format!(
                            "{what}: platform {p} ({}) is not in the store",
                            c.digest
                        ));
                    }
                    for c in here {
                        self.check_descriptor(c, what, seen, report);
                    }
                }
                Err(e) => report.problems.push(format!("{what}: {e}")),
            },
            _ => {}
        }
    }
}
