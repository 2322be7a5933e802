//! `[weights]`: directories and files of model weights, and the table name each gets.

use super::detector::Detector;
use super::names::sanitize_key;
use super::util::{file_name, human_size, in_dirs, is_placeholder, is_under, parent, plural};
use super::walk::FileEntry;
use super::TEST_DIRS;
use std::collections::BTreeSet;

/// File suffixes (lowercase, without the dot) of model weights.
const WEIGHT_SUFFIXES: &[&str] = &[
    "safetensors",
    "bin",
    "pt",
    "pth",
    "onnx",
    "gguf",
    "joblib",
    "pkl",
    "h5",
    "keras",
    "tflite",
];

/// Directories that hold weights (when they hold no Python code).
const WEIGHT_DIRS: &[&str] = &["models", "weights"];

impl Detector<'_> {
    pub(super) fn find_weights(&mut self) {
        let is_weight_file = |path: &str| {
            let name = file_name(path);
            name.rsplit_once('.').is_some_and(|(stem, ext)| {
                !stem.is_empty() && WEIGHT_SUFFIXES.contains(&ext.to_ascii_lowercase().as_str())
            })
        };
        let mut dirs: Vec<String> = Vec::new();
        let (mut found, mut empty) = (Vec::new(), Vec::new());
        for dir in &self.tree.dirs {
            if dirs.iter().any(|d| is_under(dir, d))
                || self.tree.py_dirs.contains(dir)
                || dir.split('/').any(|p| TEST_DIRS.contains(&p))
            {
                continue;
            }
            let named = WEIGHT_DIRS.contains(&file_name(dir));
            let direct: Vec<&FileEntry> = self.tree.files_in(dir).collect();
            let weight_files = direct.iter().filter(|f| is_weight_file(&f.path)).count();
            let model_dir = weight_files > 0
                && (weight_files >= 2
                    || direct.iter().any(|f| file_name(&f.path) == "config.json"));
            if !named && !model_dir {
                continue;
            }
            let (count, bytes) = self
                .tree
                .files_under(dir)
                .filter(|f| !is_placeholder(&f.path))
                .fold((0usize, 0u64), |(n, b), f| (n + 1, b + f.size));
            if count == 0 {
                if named {
                    empty.push(format!(
                        "{dir}/ holds no files: no [weights] entry for it (add one when the weights are there)"
                    ));
                }
                continue;
            }
            dirs.push(dir.clone());
            let mut line = format!(
                "weights: {dir}/ ({count} file{}, {})",
                plural(count),
                human_size(bytes)
            );
            if self.tree.gitignored_weights.contains(dir) {
                line.push_str("; it is in .gitignore, kiln takes it from this checkout");
            }
            found.push((dir.clone(), line));
        }
        for (dir, line) in found {
            self.weights.push((String::new(), dir));
            self.detected(line);
        }
        for line in empty {
            self.missing(line);
        }
        let files: Vec<(String, u64)> = self
            .tree
            .files
            .iter()
            .filter(|f| {
                is_weight_file(&f.path)
                    && !dirs.iter().any(|d| is_under(&f.path, d))
                    && !in_dirs(&f.path, TEST_DIRS)
            })
            .map(|f| (f.path.clone(), f.size))
            .collect();
        for (path, size) in files {
            self.weights.push((String::new(), path.clone()));
            self.detected(format!("weights: {path} ({})", human_size(size)));
        }
        // Names: the directory name or the file stem; the parent's name on a clash.
        let mut taken = BTreeSet::new();
        for (name, path) in &mut self.weights {
            let base = file_name(path);
            let stem = if self.tree.has_dir(path) {
                base
            } else {
                base.rsplit_once('.').map_or(base, |(s, _)| s)
            };
            let mut candidate = sanitize_key(stem);
            if taken.contains(&candidate) && !parent(path).is_empty() {
                candidate = sanitize_key(&format!("{}-{stem}", file_name(parent(path))));
            }
            let mut n = 2;
            let first = candidate.clone();
            while taken.contains(&candidate) {
                candidate = format!("{first}-{n}");
                n += 1;
            }
            taken.insert(candidate.clone());
            *name = candidate;
        }
        for line in self.d.detected.iter_mut() {
            if let Some(rest) = line.strip_prefix("weights: ") {
                let path = rest.split(' ').next().unwrap_or("").trim_end_matches('/');
                if let Some((name, _)) = self.weights.iter().find(|(_, p)| p == path) {
                    *line = format!("{line} as [weights.{name}]");
                }
            }
        }
    }

    pub(super) fn is_weight_path(&self, path: &str) -> bool {
        self.weights
            .iter()
            .any(|(_, w)| path == w || is_under(path, w) || is_under(w, path))
    }
}
