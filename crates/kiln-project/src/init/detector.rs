//! The detection's state: the walked tree, the scanned sources, the dependency names, and
//! the [`Detection`] being filled in. Each concern adds its own `impl Detector` in its module;
//! [`Detector::run`] calls them in order.

use super::declared::Declared;
use super::project::Pyproject;
use super::scan::PyScan;
use super::util::{one_line, read_text};
use super::walk::{IgnoreNames, Tree};
use super::{Detection, InitOptions, MAX_NOTED};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

pub(super) struct Detector<'a> {
    pub(super) root: PathBuf,
    pub(super) opts: &'a InitOptions,
    pub(super) ignore: IgnoreNames,
    pub(super) tree: Tree,
    pub(super) pyproject: Option<Pyproject>,
    /// What cog.yaml and bentofile.yaml declare, in that order.
    pub(super) declared: Vec<Declared>,
    pub(super) sources: BTreeMap<String, PyScan>,
    pub(super) dep_names: BTreeSet<String>,
    pub(super) deps_known: bool,
    pub(super) weights: Vec<(String, String)>,
    /// The Python files of the app (the app file and what it imports), in visit order.
    pub(super) closure: Vec<String>,
    skipped: Vec<(String, String)>,
    pub(super) d: Detection,
}

impl<'a> Detector<'a> {
    pub(super) fn new(root: PathBuf, opts: &'a InitOptions, limit: usize) -> Self {
        let ignore = IgnoreNames::read(&root);
        let mut tree = Tree::walk(&root, &ignore, limit);
        let skipped = std::mem::take(&mut tree.skipped);
        Detector {
            root,
            opts,
            ignore,
            tree,
            pyproject: None,
            declared: Vec::new(),
            sources: BTreeMap::new(),
            dep_names: BTreeSet::new(),
            deps_known: false,
            weights: Vec::new(),
            closure: Vec::new(),
            skipped,
            d: Detection::default(),
        }
    }

    pub(super) fn run(&mut self) -> Detection {
        if self.tree.truncated {
            self.d.missing.push(format!(
                "the project has more than {} entries: stopped looking after them; check the detections",
                self.tree.limit
            ));
        }
        self.read_pyproject();
        self.read_declared();
        self.project();
        self.dependencies();
        self.declared_dependency_notes();
        self.python_and_base();
        self.find_weights();
        self.scan_sources();
        self.app();
        self.declared_files();
        self.packages();
        self.declared_extras();
        self.note_skipped();
        let mut d = std::mem::take(&mut self.d);
        d.dependencies = self.dep_names.iter().cloned().collect();
        d.weights = self.weights.clone();
        d
    }

    pub(super) fn detected(&mut self, line: impl Into<String>) {
        self.d.detected.push(line.into());
    }

    pub(super) fn missing(&mut self, line: impl Into<String>) {
        self.d.missing.push(line.into());
    }

    /// A text file of the project (a regular file, within `limit`).
    pub(super) fn text(&mut self, rel: &str, limit: u64) -> Option<String> {
        match read_text(&self.root.join(rel), limit) {
            Ok(text) => Some(text),
            Err(e) => {
                self.skipped.push((rel.to_string(), e.to_string()));
                None
            }
        }
    }

    pub(super) fn has_dep(&self, name: &str) -> bool {
        self.dep_names.contains(name)
    }

    fn note_skipped(&mut self) {
        if self.skipped.is_empty() {
            return;
        }
        let shown: Vec<String> = self
            .skipped
            .iter()
            .take(MAX_NOTED)
            .map(|(path, why)| format!("{path} ({})", one_line(why)))
            .collect();
        let more = self.skipped.len().saturating_sub(MAX_NOTED);
        let mut line = format!("skipped: {}", shown.join(", "));
        if more > 0 {
            line.push_str(&format!(" and {more} more"));
        }
        self.missing(line);
    }
}
