//! `[base].packages`: Debian packages the Python dependencies need at run time.

use super::detector::Detector;
use super::PythonDeps;

impl Detector<'_> {
    pub(super) fn packages(&mut self) {
        let rules: &[(&[&str], &[&str], &str)] = &[
            (
                &[
                    "scikit-learn",
                    "sklearn",
                    "lightgbm",
                    "xgboost",
                    "torch",
                    "catboost",
                ],
                &["libgomp1"],
                "the OpenMP runtime",
            ),
            (
                &["opencv-python", "opencv-contrib-python"],
                &["libgl1", "libglib2.0-0"],
                "OpenGL and GLib",
            ),
        ];
        let mut needed: Vec<String> = Vec::new();
        for (deps, packages, what) in rules {
            let users: Vec<&str> = deps.iter().copied().filter(|d| self.has_dep(d)).collect();
            if users.is_empty() {
                continue;
            }
            needed.extend(packages.iter().map(|p| p.to_string()));
            let line = format!(
                "base packages: {} ({what}, for {})",
                packages.join(", "),
                users.join(", ")
            );
            self.detected(line);
        }
        needed.dedup();
        if !needed.is_empty() && !self.d.base.starts_with("debian:") {
            self.missing(format!(
                "{} must already be in {} ([base].packages only works with debian:SUITE)",
                needed.join(", "),
                self.d.base
            ));
        }
        if self.has_dep("torch") && !matches!(self.d.deps, PythonDeps::UvLock) && self.d.gpus == 0 {
            self.detected(
                "torch from PyPI brings CUDA libraries: for a CPU-only image set [python].extra-index-url to https://download.pytorch.org/whl/cpu",
            );
        }
        self.d.packages_needed = needed;
    }
}
