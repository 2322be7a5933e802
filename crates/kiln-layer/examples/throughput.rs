//! Throughput of the hashing and compression kiln's layers go through, on data held in memory.
//!
//! ```text
//! cargo run --release -p kiln-layer --example throughput -- [--mib N] [--runs N] [--data FILE] [--tsv FILE]
//! ```
//!
//! Generates N MiB (default 256) of deterministic, semi-compressible data (a mix of random bytes,
//! fp16-like weights, text and zero runs), then measures sha256 (one core), gzip compression and
//! decompression through `kiln_layer::Compressor` / `kiln_layer::decompress` (one core), and zstd
//! compression (multi-threaded, as kiln writes layers) and decompression. `--data` also writes the data
//! to FILE so command-line tools can be timed on the same bytes; `--tsv` appends `name<TAB>MB/s<TAB>ratio`
//! lines for scripts. MB are 10^6 bytes.

use kiln_layer::{decompress, Compression, Compressor};
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// xorshift64*: fast and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "import",
    "numpy",
    "as",
    "np",
    "def",
    "return",
    "self",
    "tensor",
    "weight",
    "bias",
    "layer",
    "model",
    "torch",
    "float32",
    "shape",
    "batch",
    "for",
    "in",
    "range",
    "if",
    "else",
    "None",
    "True",
    "config",
    "\"attention\":",
    "0.0125,",
    "-1.5e-3,",
    "{",
    "}",
    "\n",
    "    ",
    "=",
    "(",
    ")",
    "tokenizer",
    "vocab",
];

/// 64 KiB blocks of four kinds, in proportions that make gzip -6 shrink the whole by about a third.
fn generate(len: usize) -> Vec<u8> {
    const BLOCK: usize = 64 * 1024;
    let mut rng = Rng(0x6b69_6c6e_6265_6e63);
    let mut data = vec![0u8; len];
    for block in data.chunks_mut(BLOCK) {
        match rng.next() % 10 {
            // Already compressed or encrypted content.
            0..=3 => rng.fill(block),
            // fp16-like weights: random mantissa bytes, exponent bytes from a narrow range.
            4..=6 => {
                rng.fill(block);
                for pair in block.chunks_mut(2) {
                    if let [_, hi] = pair {
                        *hi = (0x2c + (*hi & 0x0f)) | (*hi & 0x80);
                    }
                }
            }
            // Source code and JSON.
            7..=8 => {
                let mut pos = 0;
                while pos < block.len() {
                    let w = WORDS[(rng.next() % WORDS.len() as u64) as usize].as_bytes();
                    let n = w.len().min(block.len() - pos);
                    block[pos..pos + n].copy_from_slice(&w[..n]);
                    pos += n;
                    if pos < block.len() {
                        block[pos] = b' ';
                        pos += 1;
                    }
                }
            }
            // Padding and sparse regions.
            _ => {}
        }
    }
    data
}

/// Runs `f` `runs` times and returns the median duration and the last result.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(std::hint::black_box(f()));
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], last.expect("at least one run"))
}

fn compress(data: &[u8], c: Compression) -> Vec<u8> {
    let mut z = Compressor::new(Vec::with_capacity(data.len()), c).expect("start compressor");
    for chunk in data.chunks(1 << 20) {
        z.write_all(chunk).expect("compress");
    }
    z.finish().expect("finish compressor")
}

fn decompress_all(blob: &[u8]) -> u64 {
    let (_, mut r) = decompress(blob).expect("start decompressor");
    io::copy(&mut r, &mut io::sink()).expect("decompress")
}

struct Row {
    name: &'static str,
    threads: String,
    mbps: f64,
    ratio: Option<f64>,
    target: &'static str,
}

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("usage: throughput [--mib N] [--runs N] [--data FILE] [--tsv FILE]");
        return Ok(());
    }
    let parse = |name: &str, default: usize| -> usize {
        arg_value(&args, name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, not {v:?}"))
        })
    };
    let mib = parse("--mib", 256);
    let runs = parse("--runs", 3).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let data = generate(mib << 20);
    if let Some(path) = arg_value(&args, "--data") {
        std::fs::write(&path, &data)?;
    }
    let mb = data.len() as f64 / 1e6;
    let speed = |d: Duration| mb / d.as_secs_f64();
    let row = |name, threads: usize, d, ratio, target| Row {
        name,
        threads: threads.to_string(),
        mbps: speed(d),
        ratio,
        target,
    };
    let mut rows = Vec::new();

    let (d, digest) = time(runs, || Sha256::digest(&data));
    println!("sha256 {}", hex::encode(digest));
    rows.push(row("sha256", 1, d, None, ">= 1000 MB/s"));

    let (d, gz) = time(runs, || compress(&data, Compression::Gzip));
    let gz_ratio = gz.len() as f64 / data.len() as f64;
    rows.push(row(
        "gzip-compress",
        1,
        d,
        Some(gz_ratio),
        ">= 0.8x gzip -6",
    ));
    let (d, n) = time(runs, || decompress_all(&gz));
    assert_eq!(n, data.len() as u64, "gzip round trip");
    rows.push(row("gzip-decompress", 1, d, None, ">= 0.8x gzip -d"));

    let (d, zst) = time(runs, || compress(&data, Compression::Zstd));
    let zst_ratio = zst.len() as f64 / data.len() as f64;
    rows.push(row(
        "zstd-compress",
        cores,
        d,
        Some(zst_ratio),
        ">= 0.8x zstd -T0 -3",
    ));
    let (d, n) = time(runs, || decompress_all(&zst));
    assert_eq!(n, data.len() as u64, "zstd round trip");
    rows.push(row("zstd-decompress", 1, d, None, ">= 0.8x zstd -d"));

    println!(
        "{} MiB of semi-compressible data, median of {runs} runs, {cores} cores available",
        mib
    );
    println!("| operation | threads | MB/s | size out/in | target |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        let ratio = r
            .ratio
            .map_or_else(|| "-".to_string(), |x| format!("{x:.3}"));
        println!(
            "| {} | {} | {:.0} | {} | {} |",
            r.name, r.threads, r.mbps, ratio, r.target
        );
    }
    let sha = rows[0].mbps;
    println!(
        "sha256 {:.0} MB/s on one core: target >= 1000 MB/s {}",
        sha,
        if sha >= 1000.0 { "met" } else { "NOT met" }
    );

    if let Some(path) = arg_value(&args, "--tsv") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for r in &rows {
            writeln!(
                f,
                "{}\t{:.1}\t{}",
                r.name,
                r.mbps,
                r.ratio.map_or(0.0, |x| x)
            )?;
        }
    }
    Ok(())
}
