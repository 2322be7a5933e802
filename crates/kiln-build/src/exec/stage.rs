//! A stage being built: its state, the base it starts from (with the ONBUILD triggers
//! it inherits), and its instructions run in order.

use super::config::ConfigStep;
use super::run::RunArgs;
use super::{default_shell, hash, BuildError, Builder, Result, DEFAULT_PATH};
use crate::dockerfile::{self, Dockerfile, Instruction, Kind, Stage};
use crate::plan::{self, Plan};
use kiln_oci::types::{Descriptor, ImageConfig, RootFs};
use std::collections::BTreeMap;
use std::time::Instant;

/// The state of a stage being built.
#[derive(Clone)]
pub(super) struct StageState {
    pub(super) layers: Vec<Descriptor>,
    pub(super) config: ImageConfig,
    /// The cache key of everything so far.
    pub(super) key: String,
    /// ARGs in scope: name -> value.
    pub(super) args: BTreeMap<String, String>,
    pub(super) shell: Vec<String>,
    /// WORKDIRs not yet created in any layer: (path, the USER then). BuildKit makes each
    /// at once, owned by that user; kiln makes them in the next layer step (or a layer
    /// of their own at the end of the stage), which gives the same tree.
    pub(super) pending_dirs: Vec<(String, String)>,
    /// A CMD was set in this stage (ENTRYPOINT then keeps it; an inherited one is reset).
    pub(super) cmd_set: bool,
}

impl StageState {
    pub(super) fn cfg(&mut self) -> &mut kiln_oci::types::ContainerConfig {
        self.config.config.get_or_insert_with(Default::default)
    }
    pub(super) fn env(&self) -> Vec<(String, String)> {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.env.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e, String::new()),
            })
            .collect()
    }
    pub(super) fn set_env(&mut self, k: &str, v: &str) {
        let mut env = self.env();
        // A variable set again keeps its place (Docker replaces it in place).
        match env.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
        self.cfg().env = Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect());
    }
    /// Variables for substitution: ARGs, overridden by ENV (Docker's rule).
    pub(super) fn lookup(&self, name: &str) -> Option<String> {
        self.env()
            .into_iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .or_else(|| self.args.get(name).cloned())
    }
    /// The USER set so far (empty: the image's default, root).
    pub(super) fn user(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default()
    }
    pub(super) fn workdir(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }
}

/// What a stage's instructions see besides its state.
pub(super) struct StageInputs<'s> {
    pub(super) df: &'s Dockerfile,
    pub(super) plan: &'s Plan,
    pub(super) stage: &'s Stage,
    /// The global ARGs (before the first FROM, and the platform ones).
    pub(super) globals: &'s BTreeMap<String, String>,
    /// The stages built before this one, by index.
    pub(super) done: &'s BTreeMap<usize, StageState>,
}

impl Builder<'_> {
    pub(super) fn build_stage(
        &self,
        df: &Dockerfile,
        plan: &Plan,
        stage: &Stage,
        done: &BTreeMap<usize, StageState>,
    ) -> Result<StageState> {
        let globals = self.global_args(df);
        let mut st = match &plan.bases[stage.index] {
            plan::Base::Scratch => self.scratch_state(),
            plan::Base::Stage(i) => {
                let mut s = done.get(i).expect("stages are built in order").clone();
                s.args = BTreeMap::new();
                s.cmd_set = false;
                s
            }
            plan::Base::Image(name) => self.image_state(stage, name)?,
        };
        // ONBUILD triggers of a base image run first, then leave the config (Docker's
        // rule: they fire once, in the image built FROM it).
        let mut triggers = Vec::new();
        // The same for an earlier stage of this Dockerfile that declared ONBUILD.
        if !matches!(plan.bases[stage.index], plan::Base::Scratch) {
            triggers = self.onbuild_triggers(stage, &mut st)?;
        }
        let inputs = StageInputs {
            df,
            plan,
            stage,
            globals: &globals,
            done,
        };
        let total = stage.instructions.len() + triggers.len();
        for (i, ins) in triggers.iter().chain(&stage.instructions).enumerate() {
            self.instruction(&inputs, &mut st, ins, i + 1, total)?;
        }
        if !st.pending_dirs.is_empty() {
            let wd = st.workdir();
            self.layer_step(&mut st, &format!("WORKDIR {wd}"), None, |_rootfs| Ok(None))?;
        }
        Ok(st)
    }

    /// `FROM scratch`: BuildKit's empty image, the default PATH and WorkingDir `/`.
    fn scratch_state(&self) -> StageState {
        StageState {
            layers: vec![],
            config: ImageConfig {
                created: None,
                author: None,
                architecture: self.opts.platform.architecture.clone(),
                os: self.opts.platform.os.clone(),
                variant: self.opts.platform.variant.clone(),
                config: Some(kiln_oci::types::ContainerConfig {
                    env: Some(vec![format!("PATH={DEFAULT_PATH}")]),
                    working_dir: Some("/".into()),
                    ..Default::default()
                }),
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: vec![],
                },
                history: None,
                extra: Default::default(),
            },
            key: hash(&["scratch"]),
            args: BTreeMap::new(),
            shell: default_shell(),
            pending_dirs: Vec::new(),
            cmd_set: false,
        }
    }

    /// `FROM image`: the image the caller's [`super::Images`] gives, with its SHELL,
    /// and the default PATH when it sets none (a step of its own in the progress).
    fn image_state(&self, stage: &Stage, name: &str) -> Result<StageState> {
        let n = self.next_step(stage, 0, stage.instructions.len(), &format!("FROM {name}"));
        let t = Instant::now();
        let img = self.images.resolve(name).map_err(|e| BuildError::Step {
            file: self.file.clone(),
            line: stage.line,
            text: format!("FROM {}", stage.base),
            message: e.to_string(),
        })?;
        self.progress.done(n, t.elapsed().as_secs_f64());
        let mut config = img.config.clone();
        config.history.get_or_insert_with(Vec::new);
        let shell = config
            .config
            .as_ref()
            .and_then(|c| c.extra.get("Shell"))
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
            .unwrap_or_else(default_shell);
        // BuildKit gives images without PATH the default one.
        let has_path = config
            .config
            .as_ref()
            .and_then(|c| c.env.as_ref())
            .is_some_and(|e| e.iter().any(|v| v.starts_with("PATH=")));
        if !has_path {
            let cfg = config.config.get_or_insert_with(Default::default);
            let mut env = vec![format!("PATH={DEFAULT_PATH}")];
            env.extend(cfg.env.take().unwrap_or_default());
            cfg.env = Some(env);
        }
        Ok(StageState {
            layers: img.manifest.layers.clone(),
            config,
            key: hash(&["image", &img.id.to_string()]),
            args: BTreeMap::new(),
            shell,
            pending_dirs: Vec::new(),
            cmd_set: false,
        })
    }

    /// The ONBUILD triggers of the base's config, parsed as instructions of the FROM
    /// line; taken out of the config.
    fn onbuild_triggers(&self, stage: &Stage, st: &mut StageState) -> Result<Vec<Instruction>> {
        let mut triggers = Vec::new();
        let cfg = st.cfg();
        if let Some(list) = cfg.extra.remove("OnBuild") {
            for t in list
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
            {
                let parsed = dockerfile::parse(&format!("FROM scratch\n{t}\n"), &self.file)
                    .map_err(|e| BuildError::Step {
                        file: self.file.clone(),
                        line: stage.line,
                        text: format!("ONBUILD {t}"),
                        message: e.message.clone(),
                    })?;
                let mut ins = parsed.stages[0].instructions[0].clone();
                ins.line = stage.line;
                ins.original = format!("ONBUILD {t}");
                triggers.push(ins);
            }
        }
        Ok(triggers)
    }

    /// `w` with the variables of `st` substituted (`esc`: the Dockerfile's escape
    /// character); an error names the instruction.
    pub(super) fn expand(
        &self,
        ins: &Instruction,
        esc: char,
        st: &StageState,
        w: &str,
    ) -> Result<String> {
        dockerfile::expand(w, esc, &|n| st.lookup(n)).map_err(|e| self.step_error(ins, e))
    }

    /// Runs instruction `i` of `total` of the stage: as a step of the progress, given
    /// to the step of its kind.
    fn instruction(
        &self,
        inputs: &StageInputs,
        st: &mut StageState,
        ins: &Instruction,
        i: usize,
        total: usize,
    ) -> Result<()> {
        let n = self.next_step(inputs.stage, i, total, &ins.original);
        let t = Instant::now();
        let config = ConfigStep {
            builder: self,
            ins,
            esc: inputs.df.escape,
        };
        match &ins.kind {
            Kind::Arg(decls) => config.arg(st, decls, inputs.globals)?,
            Kind::Env(pairs) => config.env(st, pairs)?,
            Kind::Label(pairs) => config.label(st, pairs)?,
            Kind::Workdir(w) => config.workdir(st, w)?,
            Kind::User(u) => config.user(st, u)?,
            Kind::Expose(ports) => config.expose(st, ports)?,
            Kind::Volume(vols) => config.volume(st, vols)?,
            Kind::StopSignal(s) => config.stop_signal(st, s)?,
            Kind::Cmd(c) => config.command(st, c, true),
            Kind::Entrypoint(c) => config.command(st, c, false),
            Kind::Shell(sh) => config.shell(st, sh),
            Kind::Healthcheck(h) => config.healthcheck(st, h.as_ref())?,
            Kind::Onbuild(trigger) => config.onbuild(st, trigger),
            Kind::Maintainer(m) => config.maintainer(st, m),
            Kind::Run {
                cmd,
                mounts,
                network,
                heredocs,
                ..
            } => {
                let run = RunArgs {
                    cmd,
                    mounts,
                    network: network.as_deref(),
                    heredocs,
                };
                self.run_step(inputs, st, ins, n, &run)?;
            }
            Kind::Copy(c) => self.copy_step(inputs, st, ins, c, false)?,
            Kind::Add(c) => self.copy_step(inputs, st, ins, c, true)?,
        }
        self.progress.done(n, t.elapsed().as_secs_f64());
        Ok(())
    }
}
