//! RUN: the step's command, environment and network, run in a kiln container on an
//! overlay of the stage (its mounts are `run_mount`'s).

use super::run_mount::{parse_run_mount, RunMount};
use super::stage::{StageInputs, StageState};
use super::{
    hash, BuildError, Builder, Result, RunNetwork, DEFAULT_PATH, HOST_CA_PATH, PREDEFINED_ARGS,
};
use crate::dockerfile::{self, Command, Heredoc, Instruction};
use kiln_runtime::container::{self, ContainerDirs, Exit};
use kiln_runtime::launch::{options::NetworkMode, NetworkSetup};
use kiln_runtime::spec::{self, SpecOptions, UserMount};
use kiln_runtime::user::ExecUser;
use std::collections::VecDeque;
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

/// A RUN instruction as parsed.
pub(super) struct RunArgs<'i> {
    pub(super) cmd: &'i Command,
    /// `--mount` options, as written.
    pub(super) mounts: &'i [String],
    /// `--network`, as written.
    pub(super) network: Option<&'i str>,
    pub(super) heredocs: &'i [Heredoc],
}

/// What the step's container runs, and how.
struct RunContainer<'m> {
    argv: Vec<String>,
    env: Vec<String>,
    cwd: String,
    /// The USER, resolved in the step's root.
    user: String,
    net: RunNetwork,
    mounts: &'m [UserMount],
    excluded: &'m [String],
}

impl Builder<'_> {
    /// A RUN step: a cache hit, or the command run in a container whose changes to the
    /// root become the layer.
    pub(super) fn run_step(
        &self,
        inputs: &StageInputs,
        st: &mut StageState,
        ins: &Instruction,
        n: usize,
        run: &RunArgs,
    ) -> Result<()> {
        let argv = run_argv(st, run.cmd, run.heredocs);
        let net = self.run_network(ins, run.network)?;
        let run_mounts = run
            .mounts
            .iter()
            .map(|m| parse_run_mount(m).map_err(|e| self.step_error(ins, e)))
            .collect::<Result<Vec<_>>>()?;
        let key_text = run_key_text(st, &argv, &run_mounts, net);
        let created_by = match run.cmd {
            Command::Exec(v) => format!("RUN {}", serde_json::to_string(v).expect("strings")),
            Command::Shell(s) => format!("RUN {} {s}", st.shell.join(" ")),
        };
        let env = self.run_env(st);
        let user = st.user();
        let cwd = st.workdir();
        let key = hash(&[&st.key, &key_text]);
        if let Some(e) = self.cache_get(&key) {
            self.progress.cached(n);
            self.steps.lock().expect("steps lock").1 += 1;
            st.pending_dirs.clear();
            self.add_layer(st, key, e, created_by);
            return Ok(());
        }
        // Unmounted and removed however this step ends.
        let mounts = self.step_mounts(inputs.plan, ins, &run_mounts, inputs.done)?;
        let container = RunContainer {
            argv,
            env,
            cwd,
            user,
            net,
            mounts: &mounts.mounts,
            excluded: &mounts.excluded,
        };
        let result = self.layer_step(st, &key_text, None, |rootfs| {
            self.run_container(rootfs, &container, ins, n)
        });
        drop(mounts);
        result?;
        if let Some(last) = st.config.history.as_mut().and_then(|h| h.last_mut()) {
            last.created_by = Some(created_by);
        }
        Ok(())
    }

    /// The step's network: `--network` when given, else the build's.
    fn run_network(&self, ins: &Instruction, network: Option<&str>) -> Result<RunNetwork> {
        Ok(match network {
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
        })
    }

    /// The step's environment (`K=V`): the stage's ENV, then its ARGs, the default PATH,
    /// Docker's predefined proxy args and the CA variables of `--host-ca`, each where
    /// nothing before set the name.
    fn run_env(&self, st: &StageState) -> Vec<String> {
        let mut env = st.env();
        for (k, v) in &st.args {
            if !env.iter().any(|(e, _)| e == k) {
                env.push((k.clone(), v.clone()));
            }
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        // Docker's predefined proxy args reach RUN without an ARG (and stay out of the
        // cache key and the history).
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
    }

    /// Runs the step's container on `rootfs` (the overlay of a layer step); returns the
    /// paths its layer leaves out.
    fn run_container(
        &self,
        rootfs: &Path,
        c: &RunContainer,
        ins: &Instruction,
        n: usize,
    ) -> Result<Option<Vec<String>>> {
        let user = kiln_runtime::user::resolve(
            &c.user,
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
            container::write_etc_files(&dirs.dir, "buildkitsandbox", c.net == RunNetwork::Host)?;
        // The namespace first: pasta comes up while the container is created, and is
        // waited for right before the step's process starts.
        let mode = match c.net {
            RunNetwork::Host => NetworkMode::Host,
            RunNetwork::None => NetworkMode::None,
            RunNetwork::Private => NetworkMode::Private {
                pasta: kiln_runtime::pasta::binary().ok_or_else(|| BuildError::NoPasta)?,
                publish: vec![],
            },
        };
        let network = NetworkSetup::start(&dirs.dir, &mode)?;
        self.write_spec(&dirs, &id, c, user, etc_files, &network)?;
        let (exit, tail) = self.run_logged(&dirs, &id, network, n)?;
        if exit.code() != 0 {
            return Err(BuildError::RunFailed {
                file: self.file.clone(),
                line: ins.line,
                text: ins.original.clone(),
                code: exit.code(),
                output: tail,
            });
        }
        let mut excluded = c.excluded.to_vec();
        // /run made only to hold the CA mount point is not the step's change.
        let run_dir = dirs.upper().join("run");
        let only_kiln = std::fs::read_dir(&run_dir)
            .map(|d| d.flatten().all(|e| e.file_name() == "kiln"))
            .unwrap_or(false);
        if self.opts.host_ca.is_some() && only_kiln {
            excluded.push("run".into());
        }
        Ok(Some(excluded))
    }

    /// Writes the OCI spec of the step's container into its bundle.
    fn write_spec(
        &self,
        dirs: &ContainerDirs,
        id: &str,
        c: &RunContainer,
        user: ExecUser,
        etc_files: Vec<(String, String)>,
        network: &NetworkSetup,
    ) -> Result<()> {
        let opts = SpecOptions {
            args: c.argv.clone(),
            env: c.env.clone(),
            cwd: c.cwd.clone(),
            uid: user.uid,
            gid: user.gid,
            additional_gids: user.additional_gids,
            hostname: "buildkitsandbox".into(),
            network: network.spec_network(),
            mounts: c.mounts.to_vec(),
            etc_files,
            // kiln's default, also in builds: set-user-ID programs (su, sudo) cannot gain
            // privileges in a RUN step. (libcontainer loads the seccomp filter after
            // dropping capabilities, which needs no-new-privileges.)
            no_new_privileges: true,
            cgroups_path: format!("/kiln/{id}"),
            cgroup_view: kiln_runtime::cgroupfs::prepare(&dirs.dir, &format!("/kiln/{id}"))
                .map_err(|source| BuildError::Io {
                    path: dirs.dir.clone(),
                    source,
                })?,
            netns_path: network.netns().map(|p| p.display().to_string()),
            ..Default::default()
        };
        let config = spec::build(&opts)?;
        let config_path = dirs.bundle().join("config.json");
        std::fs::write(
            &config_path,
            serde_json::to_vec_pretty(&config).expect("serializes"),
        )
        .map_err(|source| BuildError::Io {
            path: config_path.clone(),
            source,
        })
    }

    /// Runs the container in the foreground, stdin from /dev/null and stdout and stderr
    /// together reported as step `n`'s output, line by line; the network goes when it
    /// ends. Returns its exit and its last 10 lines.
    fn run_logged(
        &self,
        dirs: &ContainerDirs,
        id: &str,
        mut network: NetworkSetup,
        n: usize,
    ) -> Result<(Exit, Vec<String>)> {
        let progress = self.progress;
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
                        dirs,
                        id,
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
        let tail = tail.lock().expect("tail lock").iter().cloned().collect();
        Ok((exit, tail))
    }
}

/// The step's command: the exec form as written, the shell form (its heredocs made
/// one script) run by the stage's SHELL.
fn run_argv(st: &StageState, cmd: &Command, heredocs: &[Heredoc]) -> Vec<String> {
    match cmd {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let script = if heredocs.is_empty() {
                s.clone()
            } else {
                dockerfile::heredoc_script(s, heredocs)
            };
            st.shell.iter().cloned().chain([script]).collect()
        }
    }
}

/// What the step's cache key covers: the command, the build args it sees, the mounts
/// (secrets by id only) and the network.
fn run_key_text(
    st: &StageState,
    argv: &[String],
    run_mounts: &[RunMount],
    net: RunNetwork,
) -> String {
    let args_text: Vec<String> = st.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mounts_text: Vec<String> = run_mounts.iter().map(|m| m.key_text()).collect();
    format!(
        "RUN {} |{}| {} net={:?}",
        serde_json::to_string(&argv).expect("strings"),
        args_text.join(" "),
        mounts_text.join(" "),
        net
    )
}
