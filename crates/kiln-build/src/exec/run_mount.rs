//! `RUN --mount`: the options parsed, and the mounts a step gets from them (cache
//! directories, tmpfs, secrets, binds of the context or of a stage), with the host's
//! CA bundle when `--host-ca` offers it.

use super::mount::TempMounts;
use super::stage::StageState;
use super::{hash, BuildError, Builder, Result, SecretSource, HOST_CA_PATH};
use crate::dockerfile::{self, Instruction};
use crate::fsutil;
use crate::plan::Plan;
use kiln_runtime::spec::UserMount;
use std::collections::BTreeMap;

/// The mounts of a RUN step, beyond its root.
#[derive(Default)]
pub(super) struct StepMounts {
    pub(super) mounts: Vec<UserMount>,
    /// Mount points (relative to the root) that are not the step's changes, whatever
    /// the step leaves there.
    pub(super) excluded: Vec<String>,
    /// Stage views, copy-on-write binds and secret files: unmounted and removed
    /// however the step ends (when this is dropped).
    pub(super) temp: TempMounts,
}

impl Builder<'_> {
    /// The mounts of a RUN step: the host's CA bundle (`--host-ca`), then each of
    /// `run_mounts` in order.
    pub(super) fn step_mounts(
        &self,
        plan: &Plan,
        ins: &Instruction,
        run_mounts: &[RunMount],
        done: &BTreeMap<usize, StageState>,
    ) -> Result<StepMounts> {
        let mut out = StepMounts::default();
        if let Some(ca) = &self.opts.host_ca {
            out.mounts.push(UserMount::Bind {
                source: ca.display().to_string(),
                destination: HOST_CA_PATH.into(),
                readonly: true,
            });
            out.excluded
                .push(HOST_CA_PATH.trim_start_matches('/').to_string());
            out.excluded.push("run/kiln".to_string());
        }
        for m in run_mounts {
            match m.kind {
                MountKind::Cache => out.mounts.push(self.cache_mount(m)?),
                MountKind::Tmpfs => out.mounts.push(UserMount::Tmpfs {
                    destination: m.target.clone(),
                    options: vec![],
                }),
                MountKind::Secret => self.secret_mount(ins, m, &mut out)?,
                MountKind::Bind => self.bind_mount(plan, ins, m, done, &mut out)?,
            }
        }
        Ok(out)
    }

    /// `type=cache`: a directory of the store's, one for each id (the target when the
    /// mount names none), kept between builds.
    fn cache_mount(&self, m: &RunMount) -> Result<UserMount> {
        let id = m.id.clone().unwrap_or_else(|| m.target.clone());
        let dir =
            kiln_store::layout::cache_dir(self.store.root(), kiln_store::layout::Cache::Mounts)
                .join(hash(&[&id]));
        std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(UserMount::Bind {
            source: dir.display().to_string(),
            destination: m.target.clone(),
            readonly: false,
        })
    }

    /// `type=secret`: the file of a `--secret`, or one written from its variable (at
    /// `/run/secrets/ID` unless the mount names a target); never part of the layer.
    fn secret_mount(&self, ins: &Instruction, m: &RunMount, out: &mut StepMounts) -> Result<()> {
        let id =
            m.id.clone()
                .unwrap_or_else(|| m.target.rsplit('/').next().unwrap_or("").to_string());
        let target = if m.target.is_empty() {
            format!("/run/secrets/{id}")
        } else {
            m.target.clone()
        };
        out.excluded
            .push(target.trim_start_matches('/').to_string());
        match self.opts.secrets.get(&id) {
            Some(SecretSource::File(p)) => out.mounts.push(UserMount::Bind {
                source: p.display().to_string(),
                destination: target,
                readonly: true,
            }),
            Some(SecretSource::Env(var)) => {
                let value = std::env::var(var).map_err(|_| {
                    self.step_error(ins, format!("secret `{id}`: ${var} is not set"))
                })?;
                let dir = self.store.tmp_path("secret");
                std::fs::create_dir_all(&dir).map_err(BuildError::Os)?;
                let f = dir.join(&id);
                std::fs::write(&f, value).map_err(BuildError::Os)?;
                out.mounts.push(UserMount::Bind {
                    source: f.display().to_string(),
                    destination: target,
                    readonly: true,
                });
                out.temp.push(dir);
            }
            None if m.required => {
                return Err(self.step_error(
                    ins,
                    format!(
                        "secret `{id}` is required but was not given (--secret id={id},src=FILE)"
                    ),
                ))
            }
            None => {}
        }
        Ok(())
    }

    /// `type=bind`: a path of the build context or of a stage (`from`), read-only, or
    /// copy-on-write with `rw`.
    fn bind_mount(
        &self,
        plan: &Plan,
        ins: &Instruction,
        m: &RunMount,
        done: &BTreeMap<usize, StageState>,
        out: &mut StepMounts,
    ) -> Result<()> {
        // The source is resolved inside its root as if that were `/` (a link to `/` in
        // the context means the context, never the host's root).
        let (root, what) = match &m.from {
            None => (self.opts.context.clone(), "the build context".to_string()),
            Some(from) => {
                let dir = self.mount_source(plan, from, done, ins)?;
                out.temp.push(dir.clone());
                (dir.join("rootfs"), format!("`{from}`"))
            }
        };
        let named = m.source.as_deref().unwrap_or("/");
        let mut source =
            fsutil::secure_join(&root, named).map_err(|e| self.step_error(ins, e.to_string()))?;
        if std::fs::symlink_metadata(&source).is_err() {
            return Err(self.step_error(
                ins,
                format!("--mount=type=bind: `{named}` is not in {what}"),
            ));
        }
        if m.rw {
            // BuildKit's rw bind is copy-on-write: the step may write, and its writes
            // are thrown away with the mount.
            let dir = self.copy_on_write(&source, ins)?;
            source = dir.join("rootfs");
            out.temp.push(dir);
        }
        out.mounts.push(UserMount::Bind {
            source: source.display().to_string(),
            destination: m.target.clone(),
            readonly: !m.rw,
        });
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MountKind {
    Bind,
    Cache,
    Tmpfs,
    Secret,
}

/// One `RUN --mount=...`.
#[derive(Clone, Debug)]
pub(super) struct RunMount {
    pub(super) kind: MountKind,
    pub(super) target: String,
    pub(super) source: Option<String>,
    pub(super) from: Option<String>,
    pub(super) id: Option<String>,
    pub(super) rw: bool,
    pub(super) required: bool,
}

impl RunMount {
    /// What the cache key sees: never a secret's content.
    pub(super) fn key_text(&self) -> String {
        format!(
            "{:?}:{}:{:?}:{:?}:{:?}:{}",
            self.kind, self.target, self.source, self.from, self.id, self.rw
        )
    }
}

pub(super) fn parse_run_mount(
    spec: &str,
) -> std::result::Result<RunMount, dockerfile::SyntaxError> {
    let mut m = RunMount {
        kind: MountKind::Bind,
        target: String::new(),
        source: None,
        from: None,
        id: None,
        rw: false,
        required: false,
    };
    for kv in spec.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => {
                m.kind = match v {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "tmpfs" => MountKind::Tmpfs,
                    "secret" => MountKind::Secret,
                    other => {
                        return Err(dockerfile::SyntaxError::Instruction(format!(
                            "--mount: type `{other}` is not supported (bind, cache, tmpfs, secret)"
                        )))
                    }
                }
            }
            "target" | "dst" | "destination" => m.target = v.to_string(),
            "source" | "src" => m.source = Some(v.to_string()),
            "from" => m.from = Some(v.to_string()),
            "id" => m.id = Some(v.to_string()),
            "rw" | "readwrite" => m.rw = v.is_empty() || v == "true",
            "ro" | "readonly" => m.rw = !(v.is_empty() || v == "true"),
            "required" => m.required = v.is_empty() || v == "true",
            "sharing" | "mode" | "uid" | "gid" | "size" | "env" => {}
            other => {
                return Err(dockerfile::SyntaxError::Instruction(format!(
                    "--mount: unknown option `{other}`"
                )))
            }
        }
    }
    if m.kind == MountKind::Cache {
        m.rw = true;
    }
    if m.target.is_empty() && m.kind != MountKind::Secret {
        return Err(dockerfile::SyntaxError::Instruction(format!(
            "--mount `{spec}` has no target"
        )));
    }
    if !m.target.is_empty() && !m.target.starts_with('/') {
        m.target = format!("/{}", m.target);
    }
    Ok(m)
}
