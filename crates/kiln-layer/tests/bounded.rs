//! Tar extension members are read with a bound: a layer cannot make extraction allocate what its
//! headers declare (a GNU long name of 4 GiB of zeros gzips to a few MB), while valid layers,
//! PAX `size` records and long names included, extract as before.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use kiln_layer::{decompress, extract, ExtractOptions};
use tar::{EntryType, Header};

fn header(gnu: bool, kind: EntryType, name: &[u8], size: u64) -> Header {
    let mut h = if gnu {
        Header::new_gnu()
    } else {
        Header::new_ustar()
    };
    h.set_entry_type(kind);
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h.set_cksum();
    h
}

fn pad(v: &mut Vec<u8>) {
    v.resize(v.len().next_multiple_of(512), 0);
}

fn member(v: &mut Vec<u8>, h: &Header, data: &[u8]) {
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(data);
    pad(v);
}

fn pax(v: &mut Vec<u8>, recs: &[(&str, &[u8])]) {
    let mut r = Vec::new();
    for (k, val) in recs {
        let base = k.len() + val.len() + 3;
        let mut len = base + 1;
        while base + len.to_string().len() != len {
            len += 1;
        }
        r.extend_from_slice(format!("{len} {k}=").as_bytes());
        r.extend_from_slice(val);
        r.push(b'\n');
    }
    member(
        v,
        &header(false, EntryType::XHeader, b"PaxHeaders/x", r.len() as u64),
        &r,
    );
}

/// (VmHWM, VmRSS) of this process, in KiB.
fn memory() -> (u64, u64) {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Writes a gzip layer whose first member is a GNU long name of `size` zero bytes, streaming
/// the zeros through the encoder (nothing that big is ever in memory).
fn zero_bomb(path: &Path, size: u64) {
    let out = BufWriter::new(File::create(path).unwrap());
    let mut gz = GzEncoder::new(out, flate2::Compression::fast());
    gz.write_all(header(true, EntryType::GNULongName, b"././@LongLink", size).as_bytes())
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        gz.write_all(&zeros[..n]).unwrap();
        left -= n as u64;
    }
    let mut tail = Vec::new();
    member(&mut tail, &header(true, EntryType::Regular, b"x", 1), b"x");
    tail.extend_from_slice(&[0; 1024]);
    gz.write_all(&tail).unwrap();
    gz.finish().unwrap().flush().unwrap();
}

#[test]
fn a_4gib_long_name_of_zeros_is_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("bomb.tar.gz");
    zero_bomb(&layer, 4 << 30);
    let compressed = fs::metadata(&layer).unwrap().len();
    assert!(
        compressed < 64 << 20,
        "the bomb is small: {compressed} bytes"
    );
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();

    // Reset the peak RSS (Linux >= 4.0), so that the peak read after is extraction's own.
    let reset = fs::write("/proc/self/clear_refs", "5").is_ok();
    let (_, rss_before) = memory();
    let t = Instant::now();
    let (_, tar) = decompress(File::open(&layer).unwrap()).unwrap();
    let err = extract(tar, &root, &ExtractOptions::default()).unwrap_err();
    let took = t.elapsed();
    let (peak, _) = memory();
    eprintln!("refused in {took:?}; RSS {rss_before} KiB before, peak {peak} KiB (reset: {reset})");

    let mut msg = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    assert!(
        msg.contains("tar: a GNU long name member of 4294967296 bytes (more than 1 MiB)"),
        "{msg}"
    );
    assert!(took < Duration::from_secs(5), "refused after {took:?}");
    if reset {
        assert!(
            peak < rss_before + 64 * 1024,
            "peak RSS grew from {rss_before} KiB to {peak} KiB"
        );
    } else {
        assert!(peak < 512 * 1024, "peak RSS {peak} KiB");
    }
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

/// A tar whose first member is a GNU long name declaring 4 GiB (its data left out).
fn nested_bomb() -> Vec<u8> {
    let mut v = header(true, EntryType::GNULongName, b"././@LongLink", 4 << 30)
        .as_bytes()
        .to_vec();
    v.extend_from_slice(&[0; 1024]);
    v
}

#[test]
fn valid_layers_with_long_names_and_pax_sizes_still_extract() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let nested = nested_bomb();
    let long = "l".repeat(250);
    let mut t = Vec::new();
    // A GNU long name, and a file whose contents are a tar holding a huge long-name header:
    // the guard passes over file data without reading headers into it.
    let mut name = format!("a/{long}").into_bytes();
    name.push(0);
    member(
        &mut t,
        &header(
            true,
            EntryType::GNULongName,
            b"././@LongLink",
            name.len() as u64,
        ),
        &name,
    );
    member(
        &mut t,
        &header(true, EntryType::Regular, b"a/l", nested.len() as u64),
        &nested,
    );
    // The same file as big weights are written: header size 0, the size in a PAX record,
    // along with a PAX path longer than 100 bytes.
    let mut weights = vec![7u8; 3 << 20];
    weights[..nested.len()].copy_from_slice(&nested);
    let wpath = format!("weights/{long}.bin");
    pax(
        &mut t,
        &[
            ("path", wpath.as_bytes()),
            ("size", (weights.len() as u64).to_string().as_bytes()),
        ],
    );
    member(
        &mut t,
        &header(false, EntryType::Regular, b"w", 0),
        &weights,
    );
    member(
        &mut t,
        &header(false, EntryType::Regular, b"after", 3),
        b"end",
    );
    t.extend_from_slice(&[0; 1024]);

    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&t).unwrap();
    let layer = gz.finish().unwrap();
    let (_, tar) = decompress(io::Cursor::new(layer)).unwrap();
    let stats = extract(tar, &root, &ExtractOptions::default()).unwrap();
    assert_eq!(stats.entries, 3);
    assert_eq!(fs::read(root.join("a").join(&long)).unwrap(), nested);
    let mut got = Vec::new();
    File::open(root.join(&wpath))
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert!(got == weights, "the PAX-sized file extracted whole");
    assert_eq!(fs::read(root.join("after")).unwrap(), b"end");
}
