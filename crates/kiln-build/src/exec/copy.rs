//! COPY and ADD: sources found in the build context or a stage (globs resolved inside
//! their root, `.dockerignore` and `--exclude` applied), heredocs, downloads, local
//! tars unpacked, all copied into a layer step.

use super::layer::owner_in_root;
use super::stage::StageState;
use super::{clean_path, hash, BuildError, Builder, Result};
use crate::dockerfile::{self, CopyArgs, Dockerfile, Instruction};
use crate::dockerignore::Ignore;
use crate::fsutil::{self, CopyMeta, Keep};
use crate::plan::Plan;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn copy_step(
        &self,
        df: &Dockerfile,
        plan: &Plan,
        st: &mut StageState,
        ins: &Instruction,
        c: &CopyArgs,
        is_add: bool,
        done: &BTreeMap<usize, StageState>,
    ) -> Result<()> {
        let esc = df.escape;
        // Variables as they are before this step (the closure must not hold `st`).
        let vars = st.clone();
        let expand = |w: &str| {
            dockerfile::expand(w, esc, &|n| vars.lookup(n)).map_err(|e| self.step_error(ins, e))
        };
        let dest_raw = expand(&c.dest)?;
        let dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{}", st.workdir().trim_end_matches('/'), dest_raw)
        };
        let dest_is_dir = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        let dest = clean_path(&dest);
        let mut source_root_mount = None;
        let (src_root, from_context) = match &c.from {
            None => (self.opts.context.clone(), true),
            Some(f) => {
                let f = expand(f)?;
                let d = self.mount_source(plan, &f, done, ins)?;
                source_root_mount = Some(d.clone());
                (d.join("rootfs"), false)
            }
        };
        let cleanup = |m: &Option<PathBuf>| {
            if let Some(d) = m {
                let _ = nix::mount::umount2(&d.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
                let _ = std::fs::remove_dir_all(d);
            }
        };
        let result = (|| -> Result<()> {
            // Sources: heredocs become files; the rest are globs in the context or stage.
            let tmp_heredocs = tempfile::tempdir().map_err(BuildError::Os)?;
            let mut sources: Vec<Source> = Vec::new();
            for h in &c.heredocs {
                let content = if h.expand {
                    dockerfile::expand_heredoc(&h.content, esc, &|n| vars.lookup(n))
                        .map_err(|e| self.step_error(ins, e))?
                } else {
                    h.content.clone()
                };
                let p = tmp_heredocs.path().join(&h.name);
                std::fs::write(&p, content).map_err(BuildError::Os)?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644));
                sources.push(Source {
                    label: h.name.clone(),
                    rel: h.name.clone(),
                    path: p,
                });
            }
            for s in &c.sources {
                let s = expand(s)?;
                if is_add && (s.starts_with("http://") || s.starts_with("https://")) {
                    let p = download(&s, c.checksum.as_deref(), tmp_heredocs.path())
                        .map_err(|e| self.step_error(ins, e))?;
                    let name = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    sources.push(Source {
                        label: s.clone(),
                        rel: name,
                        path: p,
                    });
                    continue;
                }
                let matches = glob(&src_root, &s, from_context.then_some(&self.ignore))
                    .map_err(|e| self.step_error(ins, e))?;
                if matches.is_empty() {
                    return Err(self.step_error(
                        ins,
                        format!(
                            "{s}: no such file or directory in the {}",
                            if from_context {
                                "build context"
                            } else {
                                "source stage"
                            }
                        ),
                    ));
                }
                sources.extend(matches.into_iter().map(|(rel, path)| Source {
                    label: s.clone(),
                    rel,
                    path,
                }));
            }
            if sources.len() > 1 && !dest_is_dir {
                return Err(self.step_error(ins, "when copying several sources, the destination must be a directory ending in `/`"));
            }
            let ignore = &self.ignore;
            // `--exclude` patterns (.dockerignore syntax), relative to the source root.
            let excludes = c
                .exclude
                .iter()
                .map(|e| expand(e))
                .collect::<Result<Vec<_>>>()?;
            let exclude = Ignore::parse(&excludes.join("\n"));
            // Each source's own tree is what its patterns see (BuildKit matches them
            // relative to the path being copied).
            let roots: Vec<PathBuf> = sources.iter().map(|s| s.path.clone()).collect();
            let ctx = self.opts.context.clone();
            let filter = move |p: &Path| -> Keep {
                if !excludes.is_empty() {
                    let rel = roots
                        .iter()
                        .filter(|r| p.starts_with(r) && p != r.as_path())
                        .max_by_key(|r| r.as_os_str().len())
                        .and_then(|r| p.strip_prefix(r).ok());
                    if rel.is_some_and(|rel| exclude.is_excluded(&rel.to_string_lossy())) {
                        return Keep::No;
                    }
                }
                if !from_context {
                    return Keep::Yes;
                }
                match p.strip_prefix(&ctx) {
                    Ok(rel) => ignore_keep(ignore, &rel.to_string_lossy(), p),
                    Err(_) => Keep::Yes,
                }
            };
            sources.retain(|s| {
                s.label.starts_with("http")
                    || fsutil::kept(&s.path, &filter)
                    || c.heredocs.iter().any(|h| h.name == s.label)
            });
            let chmod = match &c.chmod {
                Some(m) => Some(u32::from_str_radix(&expand(m)?, 8).map_err(|_| {
                    self.step_error(
                        ins,
                        format!("invalid --chmod `{m}`: an octal mode is expected"),
                    )
                })?),
                None => None,
            };
            let chown = c.chown.as_ref().map(|o| expand(o)).transpose()?;
            // The name each source is copied under is part of what is copied.
            let hashed: Vec<(String, PathBuf)> = sources
                .iter()
                .map(|s| (format!("{}\0{}", s.label, s.rel), s.path.clone()))
                .collect();
            let content = fsutil::content_hash(&hashed, &filter)
                .map_err(|e| self.step_error(ins, e.to_string()))?;
            let word = if is_add { "ADD" } else { "COPY" };
            let key_text = format!(
                "{word} {content} {dest}{} chown={chown:?} chmod={chmod:?} link={}",
                if dest_is_dir { "/" } else { "" },
                c.link
            );
            let created_by = format!("{word} {} {dest_raw}", c.sources.join(" "));
            let n = self.steps.lock().expect("steps lock").0;
            let from_image = !from_context;
            self.layer_step(st, &key_text, Some(n), |rootfs| {
                let owner = match &chown {
                    Some(o) => Some(owner_in_root(rootfs, o)?),
                    None => None,
                };
                let meta = CopyMeta {
                    owner,
                    mode: chmod,
                    keep_owner: from_image && owner.is_none(),
                };
                let mut links = fsutil::HardLinks::new();
                for source in &sources {
                    let src = &source.path;
                    let md = std::fs::symlink_metadata(src).map_err(|source| BuildError::Io {
                        path: src.clone(),
                        source,
                    })?;
                    let target = if c.parents && src.starts_with(&src_root) {
                        // `--parents`: the source's path under the root is kept.
                        format!("{}/{}", dest.trim_end_matches('/'), source.rel)
                    } else if md.is_dir() {
                        dest.clone()
                    } else if let Some(plain) = (is_add
                        && from_context
                        && !source.label.starts_with("http://")
                        && !source.label.starts_with("https://"))
                    .then(|| open_tar(src))
                    .flatten()
                    {
                        let d = fsutil::mkdir_all(rootfs, &dest, None).map_err(|source| {
                            BuildError::Named {
                                name: dest.clone(),
                                source,
                            }
                        })?;
                        kiln_layer::extract(
                            plain,
                            &d,
                            &kiln_layer::ExtractOptions {
                                same_owner: true,
                                ..Default::default()
                            },
                        )
                        .map_err(|source| BuildError::Extract {
                            path: src.clone(),
                            source,
                        })?;
                        continue;
                    } else {
                        let into_dir = dest_is_dir
                            || fsutil::secure_join(rootfs, &dest)
                                .map(|p| p.is_dir())
                                .unwrap_or(false);
                        if into_dir {
                            // Named as the Dockerfile names it (a link copies what it
                            // points to, under the link's name).
                            let name = source.rel.rsplit('/').next().unwrap_or(&source.rel);
                            format!("{}/{name}", dest.trim_end_matches('/'))
                        } else {
                            dest.clone()
                        }
                    };
                    fsutil::copy_into(rootfs, src, &target, &meta, &filter, &mut links).map_err(
                        |source| BuildError::Copy {
                            src: src.clone(),
                            target: target.clone(),
                            source,
                        },
                    )?;
                }
                Ok(None)
            })?;
            if let Some(last) = st.config.history.as_mut().and_then(|h| h.last_mut()) {
                last.created_by = Some(created_by);
            }
            Ok(())
        })();
        cleanup(&source_root_mount);
        result
    }
}

/// `ADD URL`: the file downloaded into `dir` (named after the URL's last path part,
/// mode 0600 and the mtime of `Last-Modified`, as Docker does), checked against
/// `--checksum` when given.
fn download(url: &str, checksum: Option<&str>, dir: &Path) -> Result<PathBuf> {
    use std::io::Write as _;
    let client = reqwest::blocking::Client::builder()
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| BuildError::Download {
        url: url.to_string(),
        source: e,
    };
    let mut resp = client.get(url).send().map_err(|e| failed(e.into()))?;
    if !resp.status().is_success() {
        return Err(BuildError::DownloadStatus {
            url: url.to_string(),
            status: resp.status(),
        });
    }
    let name = resp
        .url()
        .path_segments()
        .and_then(|mut s| s.next_back().map(str::to_string))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "__unnamed__".into());
    let mtime = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map(|t| t.timestamp());
    let sub = dir.join(format!("url-{}", hash(&[url])));
    std::fs::create_dir_all(&sub).map_err(BuildError::Os)?;
    let path = sub.join(&name);
    let mut f = std::fs::File::create(&path).map_err(|source| BuildError::Io {
        path: path.clone(),
        source,
    })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut resp, &mut buf).map_err(|e| failed(e.into()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).map_err(BuildError::Os)?;
    }
    let got = format!("sha256:{}", hex::encode(h.finalize()));
    if let Some(want) = checksum {
        if want != got {
            return Err(BuildError::Checksum {
                url: url.to_string(),
                want: want.to_string(),
                got,
            });
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(BuildError::Os)?;
    if let Some(t) = mtime {
        let ts = rustix::fs::Timespec {
            tv_sec: t,
            tv_nsec: 0,
        };
        let _ = rustix::fs::utimensat(
            rustix::fs::CWD,
            &path,
            &rustix::fs::Timestamps {
                last_access: ts,
                last_modification: ts,
            },
            rustix::fs::AtFlags::empty(),
        );
    }
    Ok(path)
}

/// The tar stream of a local ADD source when it is a tar Docker unpacks: plain, gzip,
/// bzip2, xz or zstd, whose first header reads as a tar header (moby's
/// `archive.IsArchivePath`). Anything else (`data.csv.gz`, a bare `.xz` file) is `None`
/// and is copied as it is.
pub(super) fn open_tar(p: &Path) -> Option<Box<dyn std::io::Read>> {
    use std::io::Read;
    let mut f = std::io::BufReader::new(std::fs::File::open(p).ok()?);
    let magic = f.fill_buf().ok()?.to_vec();
    let mut plain: Box<dyn Read> = if magic.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(f))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(f))
    } else {
        kiln_layer::decompress(f).ok()?.1
    };
    let mut head = vec![0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match plain.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    if n < 512 || !tar_header_checksum_ok(&head) {
        return None;
    }
    Some(Box::new(std::io::Cursor::new(head).chain(plain)))
}

/// Whether a 512-byte block is a tar header: its checksum field matches the sum of its
/// bytes (unsigned or signed, as Go's archive/tar accepts), the field counted as spaces.
fn tar_header_checksum_ok(h: &[u8]) -> bool {
    let field = &h[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let Ok(want) = i64::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += b as i64;
        signed += b as i8 as i64;
    }
    want == unsigned || want == signed
}

/// One thing a COPY or ADD copies.
struct Source {
    /// The source as the Dockerfile writes it.
    label: String,
    /// Its path as named, relative to its root: the name it is copied under, and the
    /// path `--parents` keeps.
    rel: String,
    /// Where it is on the host, every symlink resolved inside its root.
    path: PathBuf,
}

/// Expands a COPY source (with `*`, `?`, `[...]` in any component) under `root`, as if
/// `root` were the root file system (BuildKit's rule): every symlink on the way, the
/// last one included, is resolved inside the root, so a link to `/etc` means
/// `<root>/etc` and never the host's. Returns each match as (the path as named,
/// relative to the root; where it leads on the host). `ignore` is checked on both, so
/// a link cannot reach an excluded file under another name.
fn glob(root: &Path, pattern: &str, ignore: Option<&Ignore>) -> Result<Vec<(String, PathBuf)>> {
    let clean = clean_path(&format!("/{pattern}"));
    let parts: Vec<&str> = clean.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Ok(vec![(String::new(), root.to_path_buf())]);
    }
    let mut current = vec![(String::new(), root.to_path_buf())];
    for part in &parts {
        let mut next = Vec::new();
        for (rel, dir) in &current {
            let names: Vec<String> = if part.contains(['*', '?', '[']) {
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| wildcard(part, name))
                    .collect();
                names.sort();
                names
            } else {
                vec![part.to_string()]
            };
            let dir_in_root = dir.strip_prefix(root).unwrap_or(Path::new(""));
            for name in names {
                let named = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let inside = format!("/{}/{name}", dir_in_root.to_string_lossy());
                let resolved =
                    fsutil::secure_join(root, &inside).map_err(|source| BuildError::Named {
                        name: named.clone(),
                        source,
                    })?;
                if std::fs::symlink_metadata(&resolved).is_ok() {
                    next.push((named, resolved));
                }
            }
        }
        current = next;
    }
    if let Some(ig) = ignore {
        // An excluded directory stays when an exception may re-include something
        // below it; the copy then takes only what is re-included.
        current.retain(|(named, p)| {
            ignore_keep(ig, named, p) != Keep::No
                && p.strip_prefix(root)
                    .is_ok_and(|r| ignore_keep(ig, &r.to_string_lossy(), p) != Keep::No)
        });
    }
    Ok(current)
}

/// What `.dockerignore` says of the context path `rel` (on the host at `p`).
fn ignore_keep(ig: &Ignore, rel: &str, p: &Path) -> Keep {
    if !ig.is_excluded(rel) {
        Keep::Yes
    } else if ig.may_include_under(rel) && std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        Keep::Below
    } else {
        Keep::No
    }
}

/// Shell-style wildcard match of one path component.
pub(super) fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some('['), Some(c)) => {
                let Some(end) = p.iter().position(|x| *x == ']') else {
                    return false;
                };
                let class = &p[1..end];
                let (neg, class) = match class.first() {
                    Some('!') | Some('^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= *c && *c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == *c;
                        i += 1;
                    }
                }
                hit != neg && go(&p[end + 1..], &n[1..])
            }
            (Some('\\'), Some(c)) if p.len() > 1 => p[1] == *c && go(&p[2..], &n[1..]),
            (Some(a), Some(b)) => a == b && go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}
