//! Views of file systems the steps read: a stage or an image mounted read-only
//! (`--from`), a copy-on-write view of a directory (`RUN --mount=type=bind,rw`), and
//! the temporary mounts a step removes when it ends.

use super::stage::StageState;
use super::{BuildError, Builder, Result};
use crate::dockerfile::Instruction;
use crate::plan::Plan;
use kiln_store::snapshot;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

impl Builder<'_> {
    /// A writable view of `source` whose writes never reach it: an overlay with a
    /// throw-away upper directory (a copy, for a single file). Returns a directory whose
    /// `rootfs` is the view (the caller unmounts and removes it).
    pub(super) fn copy_on_write(&self, source: &Path, ins: &Instruction) -> Result<PathBuf> {
        let dir = self.store.tmp_path("bind");
        let view = dir.join("rootfs");
        let io = |source: std::io::Error| BuildError::Io {
            path: dir.clone(),
            source,
        };
        if !source.is_dir() {
            std::fs::create_dir_all(&dir).map_err(io)?;
            std::fs::copy(source, &view).map_err(io)?;
            return Ok(dir);
        }
        for d in ["rootfs", "upper", "work"] {
            std::fs::create_dir_all(dir.join(d)).map_err(io)?;
        }
        // overlayfs splits its options at `,` and lower layers at `:`; a backslash
        // escapes them.
        let escape = |p: &Path| {
            p.to_string_lossy()
                .replace('\\', "\\\\")
                .replace(',', "\\,")
                .replace(':', "\\:")
        };
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            escape(source),
            escape(&dir.join("upper")),
            escape(&dir.join("work"))
        );
        nix::mount::mount(
            Some("overlay"),
            &view,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            self.step_error(
                ins,
                format!("cannot mount a writable view of {}: {e}", source.display()),
            )
        })?;
        Ok(dir)
    }

    /// Mounts a stage's (or an image's) file system read-only for `--from`; returns a
    /// directory whose `rootfs` is the mount (the caller unmounts and removes it).
    pub(super) fn mount_source(
        &self,
        plan: &Plan,
        from: &str,
        done: &BTreeMap<usize, StageState>,
        ins: &Instruction,
    ) -> Result<PathBuf> {
        let lowers = match plan.stage_by_ref(from) {
            Some(i) => {
                let st = done.get(&i).ok_or_else(|| {
                    self.step_error(ins, format!("stage `{from}` is not built before this one"))
                })?;
                self.lowers(st)?
            }
            None => {
                let img = self
                    .images
                    .resolve(from)
                    .map_err(|e| self.step_error(ins, e))?;
                snapshot::prepare(self.store, &img.manifest, &img.config)?
            }
        };
        let dir = self.store.tmp_path("from");
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(|source| BuildError::Io {
            path: rootfs.clone(),
            source,
        })?;
        if lowers.is_empty() {
            return Ok(dir);
        }
        let mut lw: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
        if lw.len() == 1 {
            // overlayfs needs two lower layers without an upper one: add an empty one.
            let empty = dir.join("empty");
            std::fs::create_dir_all(&empty).map_err(BuildError::Os)?;
            lw.push(empty);
        }
        let data = format!(
            "lowerdir={}",
            lw.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        );
        nix::mount::mount(
            Some("overlay"),
            &rootfs,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(data.as_str()),
        )
        .map_err(|e| self.step_error(ins, format!("cannot mount `{from}`: {e}")))?;
        Ok(dir)
    }
}

/// Directories whose `rootfs` may be a mount (stage views, copy-on-write binds, secret
/// files): unmounted and removed on drop.
#[derive(Default)]
pub(super) struct TempMounts(Vec<PathBuf>);

impl TempMounts {
    pub(super) fn push(&mut self, dir: PathBuf) {
        self.0.push(dir);
    }
}

impl Drop for TempMounts {
    fn drop(&mut self) {
        // The last mounted first: a view may sit on a stage mounted before it.
        for d in self.0.iter().rev() {
            let _ = nix::mount::umount2(&d.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
