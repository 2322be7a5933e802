//! Instructions that only change the image config: ARG, ENV, LABEL, WORKDIR, USER,
//! EXPOSE, VOLUME, STOPSIGNAL, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD and
//! MAINTAINER. Each extends the stage's cache key and adds an empty-layer history entry.

use super::stage::StageState;
use super::{clean_path, hash, rfc3339, Builder, Result};
use crate::dockerfile::{self, ArgDecl, Command, Healthcheck, Instruction};
use kiln_oci::types::History;
use std::collections::BTreeMap;

/// A config instruction being applied: the line, and what every kind needs to expand
/// its words and report its errors.
pub(super) struct ConfigStep<'b> {
    pub(super) builder: &'b Builder<'b>,
    pub(super) ins: &'b Instruction,
    /// The Dockerfile's escape character.
    pub(super) esc: char,
}

impl ConfigStep<'_> {
    /// `w` with the stage's variables substituted.
    fn expand(&self, st: &StageState, w: &str) -> Result<String> {
        self.builder.expand(self.ins, self.esc, st, w)
    }

    /// Ends a step that changes only the config: the cache key takes `word` and `args`,
    /// the history says `word args`.
    fn config_step(&self, st: &mut StageState, word: &str, args: &str) {
        st.key = hash(&[&st.key, word, args]);
        self.history(st, format!("{word} {args}"));
    }

    /// Records the instruction in the image's history (no layer).
    fn history(&self, st: &mut StageState, created_by: String) {
        st.config
            .history
            .get_or_insert_with(Vec::new)
            .push(History {
                created: Some(rfc3339(self.builder.opts.source_date_epoch)),
                created_by: Some(created_by),
                author: None,
                comment: Some("kiln build".into()),
                empty_layer: true,
            });
    }

    /// `ARG`: a `--build-arg`, else the global value (when the ARG has no default of
    /// its own), else the default; none of them unsets the name.
    pub(super) fn arg(
        &self,
        st: &mut StageState,
        decls: &[ArgDecl],
        globals: &BTreeMap<String, String>,
    ) -> Result<()> {
        for a in decls {
            let v = self
                .builder
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
                    Some(d) => Some(self.expand(st, d)?),
                    None => None,
                });
            if let Some(v) = v {
                st.args.insert(a.name.clone(), v);
            } else {
                st.args.remove(&a.name);
            }
        }
        st.key = hash(&[&st.key, &self.ins.original]);
        self.history(
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
        Ok(())
    }

    pub(super) fn env(&self, st: &mut StageState, pairs: &[(String, String)]) -> Result<()> {
        let mut shown = Vec::new();
        // Every value on the line sees the environment as it was before the line
        // (BuildKit: `ENV A=10 B=$A` gives B the old A).
        let before = st.clone();
        for (k, v) in pairs {
            let v = self.expand(&before, v)?;
            shown.push(format!("{k}={v}"));
            st.set_env(k, &v);
        }
        self.config_step(st, "ENV", &shown.join(" "));
        Ok(())
    }

    pub(super) fn label(&self, st: &mut StageState, pairs: &[(String, String)]) -> Result<()> {
        let mut shown = Vec::new();
        for (k, v) in pairs {
            let k = self.expand(st, k)?;
            let v = self.expand(st, v)?;
            shown.push(format!("{k}={v}"));
            st.cfg()
                .labels
                .get_or_insert_with(Default::default)
                .insert(k, v);
        }
        self.config_step(st, "LABEL", &shown.join(" "));
        Ok(())
    }

    /// `WORKDIR`: sets the directory; the directory itself is made by the next layer
    /// step (see [`StageState::pending_dirs`]).
    pub(super) fn workdir(&self, st: &mut StageState, w: &str) -> Result<()> {
        let w = self.expand(st, w)?;
        // BuildKit keeps an absolute path as written (`/final/dir/`) and joins a
        // relative one to the current directory (cleaned, as Go's path.Join).
        let path = if w.starts_with('/') {
            w.clone()
        } else {
            clean_path(&format!("{}/{}", st.workdir().trim_end_matches('/'), w))
        };
        st.cfg().working_dir = Some(path.clone());
        let user = st.user();
        let dir = clean_path(&path);
        if dir != "/" {
            st.pending_dirs.push((dir, user.clone()));
        }
        st.key = hash(&[&st.key, "WORKDIR", &path, &user]);
        self.history(st, format!("WORKDIR {path}"));
        Ok(())
    }

    pub(super) fn user(&self, st: &mut StageState, u: &str) -> Result<()> {
        let u = self.expand(st, u)?;
        st.cfg().user = Some(u.clone());
        self.config_step(st, "USER", &u);
        Ok(())
    }

    pub(super) fn expose(&self, st: &mut StageState, ports: &[String]) -> Result<()> {
        let mut shown = Vec::new();
        for p in ports {
            for p in dockerfile::expand_words(p, self.esc, &|n| st.lookup(n))
                .map_err(|e| self.builder.step_error(self.ins, e))?
            {
                // `8000-8002` exposes each port of the range (nat.ParsePortSpecs).
                for p in port_range(&p).map_err(|e| self.builder.step_error(self.ins, e))? {
                    shown.push(p.clone());
                    st.cfg()
                        .exposed_ports
                        .get_or_insert_with(Default::default)
                        .insert(p, serde_json::json!({}));
                }
            }
        }
        self.config_step(st, "EXPOSE", &shown.join(" "));
        Ok(())
    }

    pub(super) fn volume(&self, st: &mut StageState, vols: &[String]) -> Result<()> {
        let mut shown = Vec::new();
        for v in vols {
            let v = self.expand(st, v)?;
            shown.push(v.clone());
            st.cfg()
                .volumes
                .get_or_insert_with(Default::default)
                .insert(v, serde_json::json!({}));
        }
        st.key = hash(&[&st.key, "VOLUME", &shown.join(" ")]);
        self.history(st, format!("VOLUME [{}]", shown.join(" ")));
        Ok(())
    }

    pub(super) fn stop_signal(&self, st: &mut StageState, s: &str) -> Result<()> {
        let s = self.expand(st, s)?;
        st.cfg().stop_signal = Some(s.clone());
        self.config_step(st, "STOPSIGNAL", &s);
        Ok(())
    }

    /// `CMD` (`is_cmd`) or `ENTRYPOINT`; the shell form runs in the stage's SHELL.
    pub(super) fn command(&self, st: &mut StageState, c: &Command, is_cmd: bool) {
        let argv = match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => st.shell.iter().cloned().chain([s.clone()]).collect(),
        };
        let cmd_set = st.cmd_set;
        let cfg = st.cfg();
        if is_cmd {
            cfg.cmd = Some(argv.clone());
        } else {
            cfg.entrypoint = Some(argv.clone());
            // ENTRYPOINT resets a CMD inherited from the base, not one set in this
            // stage (BuildKit's rule).
            if !cmd_set {
                cfg.cmd = None;
            }
        }
        if is_cmd {
            st.cmd_set = true;
        }
        let word = if is_cmd { "CMD" } else { "ENTRYPOINT" };
        let shown = serde_json::to_string(&argv).expect("strings serialize");
        self.config_step(st, word, &shown);
    }

    pub(super) fn shell(&self, st: &mut StageState, sh: &[String]) {
        st.shell = sh.to_vec();
        st.cfg().extra.insert("Shell".into(), serde_json::json!(sh));
        st.key = hash(&[&st.key, "SHELL", &sh.join(" ")]);
        self.history(
            st,
            format!("SHELL {}", serde_json::to_string(sh).expect("strings")),
        );
    }

    /// `HEALTHCHECK` (`None`: `HEALTHCHECK NONE`), its durations in nanoseconds as
    /// Docker stores them.
    pub(super) fn healthcheck(&self, st: &mut StageState, h: Option<&Healthcheck>) -> Result<()> {
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
                            .map_err(|e| self.builder.step_error(self.ins, e))?;
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
        self.config_step(st, "HEALTHCHECK", &v.to_string());
        Ok(())
    }

    /// `ONBUILD`: the trigger is kept in the config, for images built FROM this one.
    pub(super) fn onbuild(&self, st: &mut StageState, trigger: &str) {
        let cfg = st.cfg();
        let list = cfg
            .extra
            .entry("OnBuild".to_string())
            .or_insert_with(|| serde_json::json!([]));
        if let Some(a) = list.as_array_mut() {
            a.push(serde_json::json!(trigger));
        }
        self.config_step(st, "ONBUILD", trigger);
    }

    pub(super) fn maintainer(&self, st: &mut StageState, m: &str) {
        st.config.author = Some(m.to_string());
        self.history(st, format!("MAINTAINER {m}"));
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
