//! Installing distributions with uv into a layer's tree: console scripts pointed at the
//! venv's interpreter, and the RECORD entries that name them fixed.

use super::base::Interp;
use super::{io, VENV};
use crate::pylock::{self, LockedDist};
use crate::uv::Uv;
use crate::Result;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// URL-safe base64 without padding (the wheel RECORD's hash encoding). By hand: four
/// lines, not worth a crate.
pub(super) fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for ch in bytes.chunks(3) {
        let n = (u32::from(ch[0]) << 16)
            | (u32::from(*ch.get(1).unwrap_or(&0)) << 8)
            | u32::from(*ch.get(2).unwrap_or(&0));
        for i in 0..=ch.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Installs `dists` with uv into `root`/opt/venv (site-packages and bin), for `interp`.
///
/// uv writes console scripts with the host interpreter in their `#!` line, since it runs
/// here and not in the image; kiln rewrites that line to the venv's interpreter and fixes
/// the script's RECORD entry (uv has no option for a foreign interpreter path).
pub(super) fn install(
    uv: &Uv,
    dists: &[LockedDist],
    built: &BTreeMap<String, (String, String)>,
    interp: &Interp,
    root: &Path,
    scratch: &Path,
) -> Result<()> {
    let site = root.join(format!(
        "opt/venv/lib/python{}/site-packages",
        interp.version
    ));
    fs::create_dir_all(&site).map_err(io(&site))?;
    fs::create_dir_all(scratch).map_err(io(scratch))?;
    let lock = scratch.join("pylock.toml");
    fs::write(&lock, pylock::write(dists, built)).map_err(io(&lock))?;
    let mut c = uv.command();
    c.args([
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--only-binary",
        ":all:",
    ])
    .args([
        "--python-platform",
        &interp.platform,
        "--python-version",
        &interp.version,
    ])
    .arg("--target")
    .arg(&site)
    .arg("-r")
    .arg(&lock);
    let names: Vec<String> = dists
        .iter()
        .map(|d| format!("{} {}", d.name, d.version))
        .collect();
    uv.run(
        c,
        &format!("cannot install {}", names.join(", ")),
        "uv needs a python3 on this host to run (the image gets the base's own interpreter)",
    )?;
    let _ = fs::remove_file(site.join(".lock"));
    // A wheel kiln built from an sdist is installed from a local path: uv records that
    // host path (direct_url.json) and the time it saw the file (uv_cache.json), neither
    // of which has a place in a layer.
    if !built.is_empty() {
        const HOST_FILES: [&str; 2] = ["direct_url.json", "uv_cache.json"];
        for e in fs::read_dir(&site).map_err(io(&site))? {
            let dir = e.map_err(io(&site))?.path();
            let mut removed = false;
            for name in HOST_FILES {
                let f = dir.join(name);
                if f.is_file() {
                    fs::remove_file(&f).map_err(io(&f))?;
                    removed = true;
                }
            }
            let rec = dir.join("RECORD");
            if removed {
                if let Ok(text) = fs::read_to_string(&rec) {
                    let kept: Vec<&str> = text
                        .lines()
                        .filter(|l| {
                            let path = l.split(',').next().unwrap_or("");
                            !HOST_FILES.iter().any(|h| path.ends_with(&format!("/{h}")))
                        })
                        .collect();
                    fs::write(&rec, kept.join("\n") + "\n").map_err(io(&rec))?;
                }
            }
        }
    }
    let bin_src = site.join("bin");
    if bin_src.is_dir() {
        let bin = root.join("opt/venv/bin");
        fs::create_dir_all(&bin).map_err(io(&bin))?;
        let mut renamed: BTreeMap<String, (String, usize)> = BTreeMap::new();
        for e in fs::read_dir(&bin_src).map_err(io(&bin_src))? {
            let e = e.map_err(io(&bin_src))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let src = e.path();
            let mut bytes = fs::read(&src).map_err(io(&src))?;
            if bytes.starts_with(b"#!") {
                let end = bytes
                    .iter()
                    .position(|b| *b == b'\n')
                    .unwrap_or(bytes.len());
                let first = String::from_utf8_lossy(&bytes[..end]).to_string();
                if first.contains("python") {
                    let mut fixed = format!("#!{VENV}/bin/python").into_bytes();
                    fixed.extend_from_slice(&bytes[end..]);
                    bytes = fixed;
                }
            }
            let hash = b64(&Sha256::digest(&bytes));
            let dest = bin.join(&name);
            fs::write(&dest, &bytes).map_err(io(&dest))?;
            let mode = fs::metadata(&src).map_err(io(&src))?.permissions();
            fs::set_permissions(&dest, mode).map_err(io(&dest))?;
            fs::remove_file(&src).map_err(io(&src))?;
            renamed.insert(name, (hash, bytes.len()));
        }
        let _ = fs::remove_dir(&bin_src);
        // RECORD paths are relative to site-packages: bin/X becomes ../../../bin/X.
        for e in fs::read_dir(&site).map_err(io(&site))? {
            let rec = e.map_err(io(&site))?.path().join("RECORD");
            if !rec.is_file() {
                continue;
            }
            let text = fs::read_to_string(&rec).map_err(io(&rec))?;
            let mut changed = false;
            let lines: Vec<String> = text
                .lines()
                .map(|l| {
                    let path = l.split(',').next().unwrap_or("");
                    if let Some(name) = path.strip_prefix("bin/") {
                        if let Some((h, n)) = renamed.get(name) {
                            changed = true;
                            return format!("../../../bin/{name},sha256={h},{n}");
                        }
                    }
                    l.to_string()
                })
                .collect();
            if changed {
                fs::write(&rec, lines.join("\n") + "\n").map_err(io(&rec))?;
            }
        }
    }
    Ok(())
}
