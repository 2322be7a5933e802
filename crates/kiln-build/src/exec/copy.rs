//! COPY and ADD: sources found in the build context or a stage (globs resolved inside
//! their root, `.dockerignore` and `--exclude` applied), heredocs, downloads, local
//! tars unpacked, all copied into a layer step.

use super::glob::{glob, ignore_keep};
use super::layer::owner_in_root;
use super::mount::TempMounts;
use super::stage::{StageInputs, StageState};
use super::{clean_path, hash, BuildError, Builder, Result};
use crate::dockerfile::{self, CopyArgs, Instruction};
use crate::dockerignore::Ignore;
use crate::fsutil::{self, CopyMeta, Keep};
use sha2::{Digest as _, Sha256};
use std::io::BufRead;
use std::path::{Path, PathBuf};

impl Builder<'_> {
    /// A COPY (or ADD, `is_add`) step: a cache hit, or its sources copied into a layer.
    pub(super) fn copy_step(
        &self,
        inputs: &StageInputs,
        st: &mut StageState,
        ins: &Instruction,
        c: &CopyArgs,
        is_add: bool,
    ) -> Result<()> {
        let esc = inputs.df.escape;
        // Variables as they are before this step (the layer step's work must not hold
        // `st`).
        let vars = st.clone();
        let dest = CopyDest::new(&self.expand(ins, esc, &vars, &c.dest)?, &st.workdir());
        // The source stage's mount, unmounted and removed however this step ends.
        let mut source_mount = TempMounts::default();
        let (src_root, from_context) = match &c.from {
            None => (self.opts.context.clone(), true),
            Some(f) => {
                let f = self.expand(ins, esc, &vars, f)?;
                let d = self.mount_source(inputs.plan, &f, inputs.done, ins)?;
                source_mount.push(d.clone());
                (d.join("rootfs"), false)
            }
        };
        let step = CopyStep {
            builder: self,
            ins,
            c,
            is_add,
            esc,
            vars,
            src_root,
            from_context,
            dest,
        };
        // Heredocs and downloads are written here; it goes when the step ends.
        let tmp = tempfile::tempdir().map_err(BuildError::Os)?;
        let mut sources = step.sources(tmp.path())?;
        if sources.len() > 1 && !step.dest.is_dir {
            return Err(self.step_error(
                ins,
                "when copying several sources, the destination must be a directory ending in `/`",
            ));
        }
        let filter = step.filter(&sources)?;
        let filter = |p: &Path| filter.keep(p);
        sources.retain(|s| {
            s.label.starts_with("http")
                || fsutil::kept(&s.path, &filter)
                || c.heredocs.iter().any(|h| h.name == s.label)
        });
        let chmod = step.chmod()?;
        let chown = c.chown.as_ref().map(|o| step.expand(o)).transpose()?;
        // The name each source is copied under is part of what is copied.
        let hashed: Vec<(String, PathBuf)> = sources
            .iter()
            .map(|s| (format!("{}\0{}", s.label, s.rel), s.path.clone()))
            .collect();
        let content = fsutil::content_hash(&hashed, &filter)
            .map_err(|e| self.step_error(ins, e.to_string()))?;
        let word = if is_add { "ADD" } else { "COPY" };
        let key_text = format!(
            "{word} {content} {}{} chown={chown:?} chmod={chmod:?} link={}",
            step.dest.path,
            if step.dest.is_dir { "/" } else { "" },
            c.link
        );
        let created_by = format!("{word} {} {}", c.sources.join(" "), step.dest.raw);
        let n = self.steps.lock().expect("steps lock").0;
        self.layer_step(st, &key_text, Some(n), |rootfs| {
            let owner = match &chown {
                Some(o) => Some(owner_in_root(rootfs, o)?),
                None => None,
            };
            let meta = CopyMeta {
                owner,
                mode: chmod,
                keep_owner: !from_context && owner.is_none(),
            };
            step.copy_all(rootfs, &sources, &meta, &filter)?;
            Ok(None)
        })?;
        if let Some(last) = st.config.history.as_mut().and_then(|h| h.last_mut()) {
            last.created_by = Some(created_by);
        }
        Ok(())
    }
}

/// Where a COPY copies to.
struct CopyDest {
    /// As written, variables expanded.
    raw: String,
    /// The absolute path in the root, cleaned (a relative one is under the WORKDIR).
    path: String,
    /// Written as a directory (`dir/`, `.`): sources are copied into it.
    is_dir: bool,
}

impl CopyDest {
    fn new(raw: &str, workdir: &str) -> CopyDest {
        let path = if raw.starts_with('/') {
            raw.to_string()
        } else {
            format!("{}/{}", workdir.trim_end_matches('/'), raw)
        };
        CopyDest {
            raw: raw.to_string(),
            path: clean_path(&path),
            is_dir: raw.ends_with('/') || raw == "." || raw.ends_with("/."),
        }
    }
}

/// A COPY or ADD being run.
struct CopyStep<'c> {
    builder: &'c Builder<'c>,
    ins: &'c Instruction,
    c: &'c CopyArgs,
    is_add: bool,
    /// The Dockerfile's escape character.
    esc: char,
    /// The stage's variables before the step.
    vars: StageState,
    /// The root the sources are in: the build context, or a stage's mounted root.
    src_root: PathBuf,
    from_context: bool,
    dest: CopyDest,
}

impl CopyStep<'_> {
    fn expand(&self, w: &str) -> Result<String> {
        self.builder.expand(self.ins, self.esc, &self.vars, w)
    }

    /// What the step copies: its heredocs (written as files into `tmp`), then each
    /// source word, a URL downloaded into `tmp` (ADD) or a glob in the source root.
    fn sources(&self, tmp: &Path) -> Result<Vec<Source>> {
        let (b, ins) = (self.builder, self.ins);
        let mut sources: Vec<Source> = Vec::new();
        for h in &self.c.heredocs {
            let content = if h.expand {
                dockerfile::expand_heredoc(&h.content, self.esc, &|n| self.vars.lookup(n))
                    .map_err(|e| b.step_error(ins, e))?
            } else {
                h.content.clone()
            };
            let p = tmp.join(&h.name);
            std::fs::write(&p, content).map_err(BuildError::Os)?;
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644));
            sources.push(Source {
                label: h.name.clone(),
                rel: h.name.clone(),
                path: p,
            });
        }
        for s in &self.c.sources {
            let s = self.expand(s)?;
            if self.is_add && (s.starts_with("http://") || s.starts_with("https://")) {
                let p = download(&s, self.c.checksum.as_deref(), tmp)
                    .map_err(|e| b.step_error(ins, e))?;
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
            let matches = glob(&self.src_root, &s, self.from_context.then_some(&b.ignore))
                .map_err(|e| b.step_error(ins, e))?;
            if matches.is_empty() {
                return Err(b.step_error(
                    ins,
                    format!(
                        "{s}: no such file or directory in the {}",
                        if self.from_context {
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
        Ok(sources)
    }

    /// Which paths under `sources` are copied: `--exclude` and `.dockerignore`.
    fn filter<'f>(&'f self, sources: &[Source]) -> Result<CopyFilter<'f>> {
        // `--exclude` patterns (.dockerignore syntax), relative to the source root.
        let excludes = self
            .c
            .exclude
            .iter()
            .map(|e| self.expand(e))
            .collect::<Result<Vec<_>>>()?;
        let exclude = (!excludes.is_empty()).then(|| Ignore::parse(&excludes.join("\n")));
        Ok(CopyFilter {
            exclude,
            // Each source's own tree is what its patterns see (BuildKit matches them
            // relative to the path being copied).
            roots: sources.iter().map(|s| s.path.clone()).collect(),
            context: self
                .from_context
                .then_some((&self.builder.ignore, self.builder.opts.context.as_path())),
        })
    }

    /// `--chmod`, an octal mode.
    fn chmod(&self) -> Result<Option<u32>> {
        Ok(match &self.c.chmod {
            Some(m) => Some(u32::from_str_radix(&self.expand(m)?, 8).map_err(|_| {
                self.builder.step_error(
                    self.ins,
                    format!("invalid --chmod `{m}`: an octal mode is expected"),
                )
            })?),
            None => None,
        })
    }

    /// Copies every source into `rootfs` (a local tar ADDed from the context is
    /// unpacked instead).
    fn copy_all(
        &self,
        rootfs: &Path,
        sources: &[Source],
        meta: &CopyMeta,
        filter: &dyn Fn(&Path) -> Keep,
    ) -> Result<()> {
        let dest = &self.dest.path;
        let mut links = fsutil::HardLinks::new();
        for source in sources {
            let src = &source.path;
            let md = std::fs::symlink_metadata(src).map_err(|source| BuildError::Io {
                path: src.clone(),
                source,
            })?;
            let target = if self.c.parents && src.starts_with(&self.src_root) {
                // `--parents`: the source's path under the root is kept.
                format!("{}/{}", dest.trim_end_matches('/'), source.rel)
            } else if md.is_dir() {
                dest.clone()
            } else if let Some(plain) = self.local_tar(source) {
                let d =
                    fsutil::mkdir_all(rootfs, dest, None).map_err(|source| BuildError::Named {
                        name: dest.clone(),
                        source,
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
                self.file_target(rootfs, source)
            };
            fsutil::copy_into(rootfs, src, &target, meta, filter, &mut links).map_err(
                |source| BuildError::Copy {
                    src: src.clone(),
                    target: target.clone(),
                    source,
                },
            )?;
        }
        Ok(())
    }

    /// The tar stream of a source that ADD unpacks: a local file of the build context
    /// that is a tar (compressed or not).
    fn local_tar(&self, source: &Source) -> Option<Box<dyn std::io::Read>> {
        (self.is_add
            && self.from_context
            && !source.label.starts_with("http://")
            && !source.label.starts_with("https://"))
        .then(|| open_tar(&source.path))
        .flatten()
    }

    /// Where a file (not a directory) is copied: into the destination when that is a
    /// directory (written as one, or one in the root), else to it.
    fn file_target(&self, rootfs: &Path, source: &Source) -> String {
        let dest = &self.dest.path;
        let into_dir = self.dest.is_dir
            || fsutil::secure_join(rootfs, dest)
                .map(|p| p.is_dir())
                .unwrap_or(false);
        if into_dir {
            // Named as the Dockerfile names it (a link copies what it points to, under
            // the link's name).
            let name = source.rel.rsplit('/').next().unwrap_or(&source.rel);
            format!("{}/{name}", dest.trim_end_matches('/'))
        } else {
            dest.clone()
        }
    }
}

/// Which paths a COPY takes: none that `--exclude` matches (relative to the source it
/// is under), and from the build context none that `.dockerignore` excludes.
struct CopyFilter<'f> {
    /// `--exclude`, when given.
    exclude: Option<Ignore>,
    /// The sources' paths.
    roots: Vec<PathBuf>,
    /// `.dockerignore` and the context's root, when the sources are in the context.
    context: Option<(&'f Ignore, &'f Path)>,
}

impl CopyFilter<'_> {
    fn keep(&self, p: &Path) -> Keep {
        if let Some(exclude) = &self.exclude {
            let rel = self
                .roots
                .iter()
                .filter(|r| p.starts_with(r) && p != r.as_path())
                .max_by_key(|r| r.as_os_str().len())
                .and_then(|r| p.strip_prefix(r).ok());
            if rel.is_some_and(|rel| exclude.is_excluded(&rel.to_string_lossy())) {
                return Keep::No;
            }
        }
        let Some((ignore, ctx)) = self.context else {
            return Keep::Yes;
        };
        match p.strip_prefix(ctx) {
            Ok(rel) => ignore_keep(ignore, &rel.to_string_lossy(), p),
            Err(_) => Keep::Yes,
        }
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
