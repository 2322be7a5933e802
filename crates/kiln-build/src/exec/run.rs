//! RUN: the step's command, environment, network and mounts (caches, tmpfs, secrets,
//! binds), run in a kiln container on an overlay of the stage.

use super::mount::TempMounts;
use super::stage::StageState;
use super::{
    hash, BuildError, Builder, Result, RunNetwork, SecretSource, DEFAULT_PATH, HOST_CA_PATH,
    PREDEFINED_ARGS,
};
use crate::dockerfile::{self, Command, Dockerfile, Heredoc, Instruction};
use crate::fsutil;
use crate::plan::Plan;
use kiln_runtime::container::{self, ContainerDirs};
use kiln_runtime::launch::{options::NetworkMode, NetworkSetup};
use kiln_runtime::spec::{self, SpecOptions, UserMount};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Variables that point package managers and TLS libraries at a CA bundle.
const CA_VARIABLES: &[&str] = &[
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "UV_NATIVE_TLS",
];

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_step(
        &self,
        _df: &Dockerfile,
        plan: &Plan,
        st: &mut StageState,
        ins: &Instruction,
        n: usize,
        cmd: &Command,
        mounts: &[String],
        network: Option<&str>,
        heredocs: &[Heredoc],
        done: &BTreeMap<usize, StageState>,
    ) -> Result<()> {
        let argv: Vec<String> = match cmd {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let script = if heredocs.is_empty() {
                    s.clone()
                } else {
                    dockerfile::heredoc_script(s, heredocs)
                };
                st.shell.iter().cloned().chain([script]).collect()
            }
        };
        let net = match network {
            None => self.opts.network,
            Some("host") => RunNetwork::Host,
            Some("none") => RunNetwork::None,
            Some("default") => self.opts.network,
            Some("private") => RunNetwork::Private,
            Some(other) => {
                return Err(self.step_error(
                    ins,
                    format!("unknown network `{other}` (host, none, default)"),
                ))
            }
        };
        let run_mounts = mounts
            .iter()
            .map(|m| parse_run_mount(m).map_err(|e| self.step_error(ins, e)))
            .collect::<Result<Vec<_>>>()?;
        // The cache key: the command, the build args it sees, the mounts (secrets by id only).
        let args_text: Vec<String> = st.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mounts_text: Vec<String> = run_mounts.iter().map(|m| m.key_text()).collect();
        let key_text = format!(
            "RUN {} |{}| {} net={:?}",
            serde_json::to_string(&argv).expect("strings"),
            args_text.join(" "),
            mounts_text.join(" "),
            net
        );
        let created_by = match cmd {
            Command::Exec(v) => format!("RUN {}", serde_json::to_string(v).expect("strings")),
            Command::Shell(s) => format!("RUN {} {s}", st.shell.join(" ")),
        };
        let env: Vec<String> = {
            let mut env = st.env();
            for (k, v) in &st.args {
                if !env.iter().any(|(e, _)| e == k) {
                    env.push((k.clone(), v.clone()));
                }
            }
            if !env.iter().any(|(k, _)| k == "PATH") {
                env.push(("PATH".into(), DEFAULT_PATH.into()));
            }
            // Docker's predefined proxy args reach RUN without an ARG (and stay out of
            // the cache key and the history).
            for (k, v) in &self.opts.build_args {
                if PREDEFINED_ARGS.contains(&k.as_str()) && !env.iter().any(|(e, _)| e == k) {
                    env.push((k.clone(), v.clone()));
                }
            }
            if self.opts.host_ca.is_some() {
                for var in CA_VARIABLES {
                    if !env.iter().any(|(e, _)| e == var) {
                        let v = if *var == "UV_NATIVE_TLS" {
                            "true"
                        } else {
                            HOST_CA_PATH
                        };
                        env.push((var.to_string(), v.to_string()));
                    }
                }
            }
            env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
        };
        let user_spec = st
            .config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default();
        let cwd = st.workdir();
        let key = hash(&[&st.key, &key_text]);
        if let Some(e) = self.cache_get(&key) {
            self.progress.cached(n);
            self.steps.lock().expect("steps lock").1 += 1;
            st.pending_dirs.clear();
            self.add_layer(st, key, e, created_by);
            return Ok(());
        }
        let mut extra_mounts = Vec::new();
        // Unmounted and removed however this step ends.
        let mut stage_mounts = TempMounts::default();
        let mut excluded = Vec::new();
        if let Some(ca) = &self.opts.host_ca {
            extra_mounts.push(UserMount::Bind {
                source: ca.display().to_string(),
                destination: HOST_CA_PATH.into(),
                readonly: true,
            });
            excluded.push(HOST_CA_PATH.trim_start_matches('/').to_string());
            excluded.push("run/kiln".to_string());
        }
        for m in &run_mounts {
            match m.kind {
                MountKind::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| m.target.clone());
                    let dir = kiln_store::layout::cache_dir(
                        self.store.root(),
                        kiln_store::layout::Cache::Mounts,
                    )
                    .join(hash(&[&id]));
                    std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
                        path: dir.clone(),
                        source,
                    })?;
                    extra_mounts.push(UserMount::Bind {
                        source: dir.display().to_string(),
                        destination: m.target.clone(),
                        readonly: false,
                    });
                }
                MountKind::Tmpfs => extra_mounts.push(UserMount::Tmpfs {
                    destination: m.target.clone(),
                    options: vec![],
                }),
                MountKind::Secret => {
                    let id = m
                        .id
                        .clone()
                        .unwrap_or_else(|| m.target.rsplit('/').next().unwrap_or("").to_string());
                    let target = if m.target.is_empty() {
                        format!("/run/secrets/{id}")
                    } else {
                        m.target.clone()
                    };
                    excluded.push(target.trim_start_matches('/').to_string());
                    match self.opts.secrets.get(&id) {
                        Some(SecretSource::File(p)) => extra_mounts.push(UserMount::Bind { source: p.display().to_string(), destination: target, readonly: true }),
                        Some(SecretSource::Env(var)) => {
                            let value = std::env::var(var).map_err(|_| self.step_error(ins, format!("secret `{id}`: ${var} is not set")))?;
                            let dir = self.store.tmp_path("secret");
                            std::fs::create_dir_all(&dir).map_err(BuildError::Os)?;
                            let f = dir.join(&id);
                            std::fs::write(&f, value).map_err(BuildError::Os)?;
                            extra_mounts.push(UserMount::Bind { source: f.display().to_string(), destination: target, readonly: true });
                            stage_mounts.push(dir);
                        }
                        None if m.required => return Err(self.step_error(ins, format!("secret `{id}` is required but was not given (--secret id={id},src=FILE)"))),
                        None => {}
                    }
                }
                MountKind::Bind => {
                    // The source is resolved inside its root as if that were `/` (a link
                    // to `/` in the context means the context, never the host's root).
                    let (root, what) = match &m.from {
                        None => (self.opts.context.clone(), "the build context".to_string()),
                        Some(from) => {
                            let dir = self.mount_source(plan, from, done, ins)?;
                            stage_mounts.push(dir.clone());
                            (dir.join("rootfs"), format!("`{from}`"))
                        }
                    };
                    let named = m.source.as_deref().unwrap_or("/");
                    let mut source = fsutil::secure_join(&root, named)
                        .map_err(|e| self.step_error(ins, e.to_string()))?;
                    if std::fs::symlink_metadata(&source).is_err() {
                        return Err(self.step_error(
                            ins,
                            format!("--mount=type=bind: `{named}` is not in {what}"),
                        ));
                    }
                    if m.rw {
                        // BuildKit's rw bind is copy-on-write: the step may write, and
                        // its writes are thrown away with the mount.
                        let dir = self.copy_on_write(&source, ins)?;
                        source = dir.join("rootfs");
                        stage_mounts.push(dir);
                    }
                    extra_mounts.push(UserMount::Bind {
                        source: source.display().to_string(),
                        destination: m.target.clone(),
                        readonly: !m.rw,
                    });
                }
            }
        }
        let progress = self.progress;
        let file = self.file.clone();
        let result = self.layer_step(st, &key_text, None, |rootfs| {
            let user = kiln_runtime::user::resolve(
                &user_spec,
                container::read_in_root(rootfs, "/etc/passwd").as_deref(),
                container::read_in_root(rootfs, "/etc/group").as_deref(),
            )?;
            let dirs = ContainerDirs {
                dir: rootfs
                    .parent()
                    .and_then(Path::parent)
                    .expect("rootfs is bundle/rootfs")
                    .to_path_buf(),
            };
            let id = dirs
                .dir
                .file_name()
                .expect("a container dir")
                .to_string_lossy()
                .into_owned();
            let etc_files =
                container::write_etc_files(&dirs.dir, "buildkitsandbox", net == RunNetwork::Host)?;
            // The namespace first: pasta comes up while the container is created, and
            // is waited for right before the step's process starts.
            let mode = match net {
                RunNetwork::Host => NetworkMode::Host,
                RunNetwork::None => NetworkMode::None,
                RunNetwork::Private => NetworkMode::Private {
                    pasta: kiln_runtime::pasta::binary().ok_or_else(|| BuildError::NoPasta)?,
                    publish: vec![],
                },
            };
            let mut network = NetworkSetup::start(&dirs.dir, &mode)?;
            let netns_path = network.netns().map(|p| p.display().to_string());
            let opts = SpecOptions {
                args: argv.clone(),
                env: env.clone(),
                cwd: cwd.clone(),
                uid: user.uid,
                gid: user.gid,
                additional_gids: user.additional_gids,
                hostname: "buildkitsandbox".into(),
                network: network.spec_network(),
                mounts: extra_mounts.clone(),
                etc_files,
                // kiln's default, also in builds: set-user-ID programs (su, sudo) cannot
                // gain privileges in a RUN step. (libcontainer loads the seccomp filter
                // after dropping capabilities, which needs no-new-privileges.)
                no_new_privileges: true,
                cgroups_path: format!("/kiln/{id}"),
                cgroup_view: kiln_runtime::cgroupfs::prepare(&dirs.dir, &format!("/kiln/{id}"))
                    .map_err(|source| BuildError::Io {
                        path: dirs.dir.clone(),
                        source,
                    })?,
                netns_path,
                ..Default::default()
            };
            let config = spec::build(&opts);
            let config_path = dirs.bundle().join("config.json");
            std::fs::write(
                &config_path,
                serde_json::to_vec_pretty(&config).expect("serializes"),
            )
            .map_err(|source| BuildError::Io {
                path: config_path.clone(),
                source,
            })?;
            let (out_r, out_w) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(BuildError::Sys)?;
            let tail: Arc<Mutex<VecDeque<String>>> = Arc::new(Mutex::new(VecDeque::new()));
            // The reader runs with every signal blocked, so the wait loop gets them all.
            let all = nix::sys::signal::SigSet::all();
            let _ = all.thread_block();
            let reader = {
                let tail = tail.clone();
                std::thread::scope(|s| {
                    let h = s.spawn(move || {
                        for line in BufReader::new(std::fs::File::from(out_r))
                            .split(b'\n')
                            .map_while(|l| l.ok())
                        {
                            let line = String::from_utf8_lossy(&line).into_owned();
                            progress.output(n, &line);
                            let mut t = tail.lock().expect("tail lock");
                            if t.len() == 10 {
                                t.pop_front();
                            }
                            t.push_back(line);
                        }
                    });
                    let _ = all.thread_unblock();
                    let null = kiln_runtime::container::dev_null().map_err(BuildError::Os);
                    let res = null.and_then(|null| {
                        let err_w = out_w.try_clone().map_err(BuildError::Os)?;
                        let exit = container::run_foreground(
                            &dirs,
                            &id,
                            Some([null.into(), out_w, err_w]),
                            false,
                            container::OnSignal::Kill,
                            || network.ready(),
                            |_| {},
                        )?;
                        Ok(exit)
                    });
                    let _ = h.join();
                    res
                })
            };
            drop(network);
            let exit = reader?;
            if exit.code() != 0 {
                return Err(BuildError::RunFailed {
                    file: file.clone(),
                    line: ins.line,
                    text: ins.original.clone(),
                    code: exit.code(),
                    output: tail.lock().expect("tail lock").iter().cloned().collect(),
                });
            }
            let mut excluded = excluded.clone();
            // /run made only to hold the CA mount point is not the step's change.
            let run_dir = dirs.upper().join("run");
            let only_kiln = std::fs::read_dir(&run_dir)
                .map(|d| d.flatten().all(|e| e.file_name() == "kiln"))
                .unwrap_or(false);
            if self.opts.host_ca.is_some() && only_kiln {
                excluded.push("run".into());
            }
            Ok(Some(excluded))
        });
        drop(stage_mounts);
        result?;
        if let Some(last) = st.config.history.as_mut().and_then(|h| h.last_mut()) {
            last.created_by = Some(created_by);
        }
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
