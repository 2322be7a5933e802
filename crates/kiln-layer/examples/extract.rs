//! Times one layer extraction: the path pull, load and snapshots take.
//!
//! ```text
//! cargo run --release -p kiln-layer --example extract -- LAYER.tar[.gz|.zst] DEST [--apply]
//! ```
//!
//! Reads the (maybe compressed) layer from a file, decompresses it and extracts it into DEST, which
//! must not exist (it is created; use a fresh directory per run: on ext4 with `discard`, creating
//! files right after deleting a big tree is much slower). Whiteouts are recorded for overlayfs (as
//! snapshots are) unless `--apply`. Prints entries, bytes and the wall time.

use kiln_layer::{decompress, extract, ExtractOptions, Whiteouts};
use std::io::BufReader;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let apply = args.iter().any(|a| a == "--apply");
    let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [layer, dest] = paths[..] else {
        eprintln!("usage: extract LAYER.tar[.gz|.zst] DEST [--apply]");
        std::process::exit(2);
    };
    let f = std::fs::File::open(layer).expect("open the layer");
    std::fs::create_dir(dest).expect("create DEST (it must not exist)");
    let opts = ExtractOptions {
        whiteouts: if apply {
            Whiteouts::Apply
        } else {
            Whiteouts::Overlay
        },
        ..Default::default()
    };
    let t = Instant::now();
    let (_, r) = decompress(BufReader::with_capacity(1 << 20, f)).expect("read the layer");
    let stats = extract(r, std::path::Path::new(dest), &opts).expect("extract");
    let wall = t.elapsed();
    println!(
        "{} entries, {:.0} MB in {:.3} s",
        stats.entries,
        stats.bytes as f64 / 1e6,
        wall.as_secs_f64()
    );
}
