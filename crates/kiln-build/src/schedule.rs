//! Independent stages built at the same time: each by a helper process (a build of that
//! one stage; separate processes keep each container's reaping and signals its own),
//! ahead of the main build, which then finds their layers in the cache.

use crate::exec::{BuildError, Result};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Helper processes building stages ahead; stopped (SIGTERM, then waited for) if they
/// are dropped before they end, as when the main build fails first.
pub struct Helpers {
    children: Vec<Child>,
    stages: Vec<usize>,
    keys: tempfile::TempDir,
}

impl Helpers {
    /// Starts one helper for each of `stages`. `command(i, keys)` is the command that
    /// builds stage `i` and writes the cache keys of the layers it used to the file
    /// `keys`; its standard streams are null. The key files live in a directory under
    /// `tmp` (the store's `tmp/`), removed with the helpers.
    pub fn start(
        tmp: &Path,
        stages: &[usize],
        mut command: impl FnMut(usize, &Path) -> Command,
    ) -> Result<Helpers> {
        let keys = tempfile::Builder::new()
            .prefix(&format!("build-keys-{}-", std::process::id()))
            .tempdir_in(tmp)
            .map_err(|source| BuildError::Io {
                path: tmp.to_path_buf(),
                source,
            })?;
        let mut helpers = Helpers {
            children: Vec::new(),
            stages: stages.to_vec(),
            keys,
        };
        for &i in stages {
            let file = helpers.keys.path().join(i.to_string());
            let child = command(i, &file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(BuildError::HelperStart)?;
            helpers.children.push(child);
        }
        Ok(helpers)
    }

    /// Waits for every helper and returns the cache keys of the layers they built. A
    /// helper that fails leaves its stage to the main build, which reports the error
    /// where it happens.
    pub fn wait(mut self) -> Vec<String> {
        for c in &mut self.children {
            let _ = c.wait();
        }
        let mut keys = Vec::new();
        for &i in &self.stages {
            if let Ok(text) = std::fs::read_to_string(self.keys.path().join(i.to_string())) {
                keys.extend(text.lines().map(str::to_string));
            }
        }
        keys
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        for c in &mut self.children {
            if let Ok(None) = c.try_wait() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_the_helpers_that_wrote_them() {
        let tmp = tempfile::tempdir().unwrap();
        let helpers = Helpers::start(tmp.path(), &[1, 3, 4], |i, keys| {
            let mut c = Command::new("sh");
            let script = match i {
                1 => "printf 'a\\nb' > \"$0\"",
                3 => "exit 1",
                _ => "printf c > \"$0\"",
            };
            c.arg("-c").arg(script).arg(keys);
            c
        })
        .unwrap();
        assert_eq!(helpers.wait(), ["a", "b", "c"]);
        // The key files went with the helpers.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn dropped_helpers_are_stopped() {
        let tmp = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let helpers = Helpers::start(tmp.path(), &[0], |_, _| {
            let mut c = Command::new("sleep");
            c.arg("30");
            c
        })
        .unwrap();
        drop(helpers);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}
