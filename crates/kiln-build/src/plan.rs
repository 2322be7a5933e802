//! The build plan: which stages the target needs, what each starts from, and an order
//! in which every stage comes after the stages it reads (FROM, `COPY --from`,
//! `RUN --mount=from=`). It is made from the parsed Dockerfile alone; the ML project
//! frontend of a later issue produces the same shape.

use crate::dockerfile::{self, Dockerfile, Kind};
use crate::exec::{BuildError, Result};
use std::collections::BTreeMap;

/// What a stage starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`: an empty root filesystem, no layers.
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference (global ARGs expanded).
    Image(String),
}

/// The stages to build, in order.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Indexes of the stages to build, each after the stages it reads; the target last.
    pub order: Vec<usize>,
    /// Index of the stage whose result is the image.
    pub target: usize,
    /// The base of every stage (indexed like the Dockerfile's stages).
    pub bases: Vec<Base>,
    names: BTreeMap<String, usize>,
}

impl Plan {
    /// A stage named by `AS name` or by its index.
    pub fn stage_by_ref(&self, r: &str) -> Option<usize> {
        self.names
            .get(&r.to_ascii_lowercase())
            .copied()
            .or_else(|| r.parse::<usize>().ok().filter(|i| *i < self.bases.len()))
    }
}

/// Plans the build of `target` (the last stage when `None`).
pub fn plan(
    df: &Dockerfile,
    target: Option<&str>,
    globals: &BTreeMap<String, String>,
) -> Result<Plan> {
    let mut names = BTreeMap::new();
    let mut bases = Vec::new();
    for s in &df.stages {
        let base = dockerfile::expand(&s.base, df.escape, &|n| globals.get(n).cloned()).map_err(
            |source| BuildError::BaseName {
                line: s.line,
                base: s.base.clone(),
                source,
            },
        )?;
        let b = if base.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else if let Some(i) = names.get(&base.to_ascii_lowercase()) {
            Base::Stage(*i)
        } else {
            Base::Image(base)
        };
        bases.push(b);
        if let Some(n) = &s.name {
            names.insert(n.to_ascii_lowercase(), s.index);
        }
    }
    let target = match target {
        None => df.stages.len().checked_sub(1).ok_or(BuildError::NoStages)?,
        Some(t) => *names
            .get(&t.to_ascii_lowercase())
            .ok_or_else(|| BuildError::NoTarget(t.to_string()))?,
    };
    let mut p = Plan {
        order: vec![],
        target,
        bases,
        names,
    };
    let mut state = vec![0u8; df.stages.len()];
    visit(df, &mut p, target, &mut state, globals)?;
    Ok(p)
}

/// Plans the build of the stage with index `i` (a helper building it ahead).
pub fn plan_stage(df: &Dockerfile, i: usize, globals: &BTreeMap<String, String>) -> Result<Plan> {
    let mut p = plan(df, None, globals)?;
    if i >= df.stages.len() {
        return Err(BuildError::NoStage(i));
    }
    p.order.clear();
    p.target = i;
    let mut state = vec![0u8; df.stages.len()];
    visit(df, &mut p, i, &mut state, globals)?;
    Ok(p)
}

/// The needed stages other than the target that no other needed non-target stage
/// depends on, in plan order.
pub fn independent(df: &Dockerfile, p: &Plan, globals: &BTreeMap<String, String>) -> Vec<usize> {
    let others: Vec<usize> = p.order.iter().copied().filter(|i| *i != p.target).collect();
    let mut used = std::collections::BTreeSet::new();
    for &i in &others {
        // Everything `i` needs, directly or not.
        let mut stack = deps(df, p, i, globals);
        while let Some(d) = stack.pop() {
            if used.insert(d) {
                stack.extend(deps(df, p, d, globals));
            }
        }
    }
    others.into_iter().filter(|i| !used.contains(i)).collect()
}

fn deps(df: &Dockerfile, p: &Plan, i: usize, globals: &BTreeMap<String, String>) -> Vec<usize> {
    let mut out = Vec::new();
    if let Base::Stage(b) = p.bases[i] {
        out.push(b);
    }
    let expand = |w: &str| {
        dockerfile::expand(w, df.escape, &|n| globals.get(n).cloned())
            .unwrap_or_else(|_| w.to_string())
    };
    for ins in &df.stages[i].instructions {
        match &ins.kind {
            Kind::Copy(c) | Kind::Add(c) => {
                if let Some(f) = &c.from {
                    if let Some(s) = p.stage_by_ref(&expand(f)) {
                        out.push(s);
                    }
                }
            }
            Kind::Run { mounts, .. } => {
                for m in mounts {
                    for kv in m.split(',') {
                        if let Some(f) = kv.strip_prefix("from=") {
                            if let Some(s) = p.stage_by_ref(&expand(f)) {
                                out.push(s);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn visit(
    df: &Dockerfile,
    p: &mut Plan,
    i: usize,
    state: &mut [u8],
    globals: &BTreeMap<String, String>,
) -> Result<()> {
    match state[i] {
        2 => return Ok(()),
        1 => return Err(BuildError::StageCycle(i)),
        _ => {}
    }
    state[i] = 1;
    for d in deps(df, p, i, globals) {
        if d >= i {
            return Err(BuildError::LaterStage {
                stage: i,
                line: df.stages[i].line,
                dep: d,
            });
        }
        visit(df, p, d, state, globals)?;
    }
    state[i] = 2;
    p.order.push(i);
    Ok(())
}
