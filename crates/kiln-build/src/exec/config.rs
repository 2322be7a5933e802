//! Instructions that only change the image config (ARG, ENV, LABEL, WORKDIR, USER,
//! EXPOSE, VOLUME, STOPSIGNAL, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD,
//! MAINTAINER), and the dispatch of every instruction to its step.

use super::stage::StageState;
use super::{clean_path, hash, rfc3339, Builder, Result};
use crate::dockerfile::{self, Command, Dockerfile, Instruction, Kind, Stage};
use crate::plan::Plan;
use kiln_oci::types::History;
use std::collections::BTreeMap;
use std::time::Instant;

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn instruction(
        &self,
        df: &Dockerfile,
        plan: &Plan,
        stage: &Stage,
        st: &mut StageState,
        ins: &Instruction,
        i: usize,
        total: usize,
        globals: &BTreeMap<String, String>,
        done: &BTreeMap<usize, StageState>,
    ) -> Result<()> {
        let esc = df.escape;
        let expand = |st: &StageState, w: &str| -> Result<String> {
            dockerfile::expand(w, esc, &|n| st.lookup(n)).map_err(|e| self.step_error(ins, e))
        };
        let n = self.next_step(stage, i, total, &ins.original);
        let t = Instant::now();
        let history = |st: &mut StageState, created_by: String| {
            st.config
                .history
                .get_or_insert_with(Vec::new)
                .push(History {
                    created: Some(rfc3339(self.opts.source_date_epoch)),
                    created_by: Some(created_by),
                    author: None,
                    comment: Some("kiln build".into()),
                    empty_layer: true,
                });
        };
        match &ins.kind {
            Kind::Arg(decls) => {
                for a in decls {
                    let v = self
                        .opts
                        .build_args
                        .get(&a.name)
                        .cloned()
                        .or_else(|| {
                            globals
                                .get(&a.name)
                                .filter(|_| a.default.is_none())
                                .cloned()
                        })
                        .or(match &a.default {
                            Some(d) => Some(expand(st, d)?),
                            None => None,
                        });
                    if let Some(v) = v {
                        st.args.insert(a.name.clone(), v);
                    } else {
                        st.args.remove(&a.name);
                    }
                }
                st.key = hash(&[&st.key, &ins.original]);
                history(
                    st,
                    format!(
                        "ARG {}",
                        decls
                            .iter()
                            .map(|a| a.name.clone())
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                );
            }
            Kind::Env(pairs) => {
                let mut shown = Vec::new();
                // Every value on the line sees the environment as it was before the
                // line (BuildKit: `ENV A=10 B=$A` gives B the old A).
                let before = st.clone();
                for (k, v) in pairs {
                    let v = expand(&before, v)?;
                    shown.push(format!("{k}={v}"));
                    st.set_env(k, &v);
                }
                st.key = hash(&[&st.key, "ENV", &shown.join(" ")]);
                history(st, format!("ENV {}", shown.join(" ")));
            }
            Kind::Label(pairs) => {
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    let k = expand(st, k)?;
                    let v = expand(st, v)?;
                    shown.push(format!("{k}={v}"));
                    st.cfg()
                        .labels
                        .get_or_insert_with(Default::default)
                        .insert(k, v);
                }
                st.key = hash(&[&st.key, "LABEL", &shown.join(" ")]);
                history(st, format!("LABEL {}", shown.join(" ")));
            }
            Kind::Workdir(w) => {
                let w = expand(st, w)?;
                // BuildKit keeps an absolute path as written (`/final/dir/`) and joins a
                // relative one to the current directory (cleaned, as Go's path.Join).
                let path = if w.starts_with('/') {
                    w.clone()
                } else {
                    clean_path(&format!("{}/{}", st.workdir().trim_end_matches('/'), w))
                };
                st.cfg().working_dir = Some(path.clone());
                let user = st
                    .config
                    .config
                    .as_ref()
                    .and_then(|c| c.user.clone())
                    .unwrap_or_default();
                let dir = clean_path(&path);
                if dir != "/" {
                    st.pending_dirs.push((dir, user.clone()));
                }
                st.key = hash(&[&st.key, "WORKDIR", &path, &user]);
                history(st, format!("WORKDIR {path}"));
            }
            Kind::User(u) => {
                let u = expand(st, u)?;
                st.cfg().user = Some(u.clone());
                st.key = hash(&[&st.key, "USER", &u]);
                history(st, format!("USER {u}"));
            }
            Kind::Expose(ports) => {
                let mut shown = Vec::new();
                for p in ports {
                    for p in dockerfile::expand_words(p, esc, &|n| st.lookup(n))
                        .map_err(|e| self.step_error(ins, e))?
                    {
                        // `8000-8002` exposes each port of the range (nat.ParsePortSpecs).
                        for p in port_range(&p).map_err(|e| self.step_error(ins, e))? {
                            shown.push(p.clone());
                            st.cfg()
                                .exposed_ports
                                .get_or_insert_with(Default::default)
                                .insert(p, serde_json::json!({}));
                        }
                    }
                }
                st.key = hash(&[&st.key, "EXPOSE", &shown.join(" ")]);
                history(st, format!("EXPOSE {}", shown.join(" ")));
            }
            Kind::Volume(vols) => {
                let mut shown = Vec::new();
                for v in vols {
                    let v = expand(st, v)?;
                    shown.push(v.clone());
                    st.cfg()
                        .volumes
                        .get_or_insert_with(Default::default)
                        .insert(v, serde_json::json!({}));
                }
                st.key = hash(&[&st.key, "VOLUME", &shown.join(" ")]);
                history(st, format!("VOLUME [{}]", shown.join(" ")));
            }
            Kind::StopSignal(s) => {
                let s = expand(st, s)?;
                st.cfg().stop_signal = Some(s.clone());
                st.key = hash(&[&st.key, "STOPSIGNAL", &s]);
                history(st, format!("STOPSIGNAL {s}"));
            }
            Kind::Cmd(c) | Kind::Entrypoint(c) => {
                let argv = match c {
                    Command::Exec(v) => v.clone(),
                    Command::Shell(s) => st.shell.iter().cloned().chain([s.clone()]).collect(),
                };
                let is_cmd = matches!(ins.kind, Kind::Cmd(_));
                let cmd_set = st.cmd_set;
                let cfg = st.cfg();
                if is_cmd {
                    cfg.cmd = Some(argv.clone());
                } else {
                    cfg.entrypoint = Some(argv.clone());
                    // ENTRYPOINT resets a CMD inherited from the base, not one set in
                    // this stage (BuildKit's rule).
                    if !cmd_set {
                        cfg.cmd = None;
                    }
                }
                if is_cmd {
                    st.cmd_set = true;
                }
                let word = if is_cmd { "CMD" } else { "ENTRYPOINT" };
                let shown = serde_json::to_string(&argv).expect("strings serialize");
                st.key = hash(&[&st.key, word, &shown]);
                history(st, format!("{word} {shown}"));
            }
            Kind::Shell(sh) => {
                st.shell = sh.clone();
                st.cfg().extra.insert("Shell".into(), serde_json::json!(sh));
                st.key = hash(&[&st.key, "SHELL", &sh.join(" ")]);
                history(
                    st,
                    format!("SHELL {}", serde_json::to_string(sh).expect("strings")),
                );
            }
            Kind::Healthcheck(h) => {
                let v = match h {
                    None => serde_json::json!({"Test": ["NONE"]}),
                    Some(h) => {
                        let mut m = serde_json::Map::new();
                        m.insert("Test".into(), serde_json::json!(h.test));
                        for (k, v) in [
                            ("Interval", &h.interval),
                            ("Timeout", &h.timeout),
                            ("StartPeriod", &h.start_period),
                            ("StartInterval", &h.start_interval),
                        ] {
                            if let Some(v) = v {
                                let ns = dockerfile::parse_go_duration(v)
                                    .map_err(|e| self.step_error(ins, e))?;
                                m.insert(k.into(), serde_json::json!(ns));
                            }
                        }
                        if let Some(r) = h.retries {
                            m.insert("Retries".into(), serde_json::json!(r));
                        }
                        serde_json::Value::Object(m)
                    }
                };
                st.cfg().extra.insert("Healthcheck".into(), v.clone());
                st.key = hash(&[&st.key, "HEALTHCHECK", &v.to_string()]);
                history(st, format!("HEALTHCHECK {v}"));
            }
            Kind::Onbuild(trigger) => {
                let cfg = st.cfg();
                let list = cfg
                    .extra
                    .entry("OnBuild".to_string())
                    .or_insert_with(|| serde_json::json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(serde_json::json!(trigger));
                }
                st.key = hash(&[&st.key, "ONBUILD", trigger]);
                history(st, format!("ONBUILD {trigger}"));
            }
            Kind::Maintainer(m) => {
                st.config.author = Some(m.clone());
                history(st, format!("MAINTAINER {m}"));
            }
            Kind::Run {
                cmd,
                mounts,
                network,
                heredocs,
                ..
            } => {
                self.run_step(
                    df,
                    plan,
                    st,
                    ins,
                    n,
                    cmd,
                    mounts,
                    network.as_deref(),
                    heredocs,
                    done,
                )?;
            }
            Kind::Copy(c) | Kind::Add(c) => {
                let is_add = matches!(ins.kind, Kind::Add(_));
                self.copy_step(df, plan, st, ins, c, is_add, done)?;
            }
        }
        self.progress.done(n, t.elapsed().as_secs_f64());
        Ok(())
    }
}

/// One EXPOSE word as Docker's `nat.ParsePortSpecs` reads it: `PORT[-END][/PROTO]`,
/// the protocol `tcp` by default; a range gives every port in it.
pub(super) fn port_range(word: &str) -> std::result::Result<Vec<String>, dockerfile::SyntaxError> {
    let (ports, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_ascii_lowercase();
    let num = |s: &str| {
        s.parse::<u16>().map_err(|_| {
            dockerfile::SyntaxError::Instruction(format!("invalid port `{s}` in `{word}`"))
        })
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(ports)?, num(ports)?),
    };
    if end < start {
        return Err(dockerfile::SyntaxError::Instruction(format!(
            "invalid port range `{ports}`: the end is before the start"
        )));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}
