//! The whole of a Debian base image: [`plan`], [`download`], [`assemble`], the stage
//! image written to the store, then the maintainer scripts kiln does not replicate (and
//! ldconfig) run by the [`ScriptRunner`] the caller hands in. kiln-debian runs no
//! container itself: the runner (kiln-project's is a kiln build step) does.

use super::ScriptPackage;
use super::{assemble, configure_script, download, plan, Assembled, Options, Progress};
use crate::error::{DebianError, Result};
use crate::fetch::Fetcher;
use crate::lock::Lock;
use kiln_oci::types::Descriptor;
use kiln_store::Store;

/// Runs a shell script on top of an image of the store: the container step of
/// [`build`].
pub trait ScriptRunner {
    /// Runs `script` with `/bin/sh -c`, with no network, on top of the image `stage` of
    /// the store [`build`] writes to, at time `epoch` (`SOURCE_DATE_EPOCH`), and returns
    /// the image with the script's changes as its last layer. A failure is best a
    /// [`DebianError::ScriptStep`], which keeps the runner's message and hint.
    fn run(&self, stage: &Descriptor, script: &str, epoch: i64) -> Result<Descriptor>;
}

/// The outcome of [`build`].
#[derive(Clone, Debug)]
pub struct DebianImage {
    /// The image (not tagged).
    pub descriptor: Descriptor,
    /// The packages installed, exactly (written to [`Options::lock`] when resolved).
    pub lock: Lock,
    /// The packages were resolved (no lock was given, or it did not exist yet).
    pub resolved: bool,
    /// The number of .debs downloaded (not found in the cache).
    pub downloaded: usize,
    /// The bytes downloaded.
    pub bytes: u64,
    /// The layers found in the cache.
    pub cached_layers: usize,
    /// The maintainer scripts run in a container, named (`libc-bin (ldconfig)`).
    pub scripts_run: Vec<String>,
    /// How each package's scripts were handled: (package, native|nothing|container, why).
    pub handling: Vec<(String, String, String)>,
    /// The image's time.
    pub epoch: i64,
}

/// The architecture of this host, as Debian names it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

/// What becomes of the scripts an assembly leaves for a container (see [`script_plan`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptPlan {
    /// Nothing is left: the stage image is the image.
    Nothing,
    /// Only ldconfig is left, and this host cannot run the image's programs: it is left
    /// out (the image has no /etc/ld.so.cache).
    SkipLdconfig,
    /// These are run in a container, named (`base-passwd (preinst, postinst)`,
    /// `libc-bin (ldconfig)`), in order.
    Run(Vec<String>),
}

/// Decides what becomes of the maintainer `scripts` and `ldconfig` an assembly leaves,
/// for an image of `arch` built on a `host` machine: scripts an `arch` program must run
/// on another host are refused ([`DebianError::ForeignScripts`]); ldconfig alone is
/// skipped there.
pub fn script_plan(
    scripts: &[ScriptPackage],
    ldconfig: bool,
    arch: &str,
    host: &str,
) -> Result<ScriptPlan> {
    let mut names: Vec<String> = scripts
        .iter()
        .map(|s| {
            let what: Vec<&str> = [(s.preinst, "preinst"), (s.postinst, "postinst")]
                .into_iter()
                .filter_map(|(has, name)| has.then_some(name))
                .collect();
            format!("{} ({})", s.name, what.join(", "))
        })
        .collect();
    if ldconfig {
        names.push("libc-bin (ldconfig)".into());
    }
    if names.is_empty() {
        Ok(ScriptPlan::Nothing)
    } else if arch != host {
        if scripts.is_empty() {
            Ok(ScriptPlan::SkipLdconfig)
        } else {
            Err(DebianError::ForeignScripts {
                scripts: names.join(", "),
                host: host.to_string(),
                arch: arch.to_string(),
            })
        }
    } else {
        Ok(ScriptPlan::Run(names))
    }
}

/// Builds the image `opts` describe into `store`, running what is left of the
/// maintainer scripts with `runner`. Returns the image, not tagged.
pub fn build(
    store: &Store,
    opts: &Options,
    runner: &dyn ScriptRunner,
    progress: &dyn Progress,
) -> Result<DebianImage> {
    let cache = kiln_store::layout::cache_dir(store.root(), kiln_store::layout::Cache::Debian);
    let fetcher = Fetcher::new();
    let (lock, resolved) = plan(opts, &fetcher, &cache, progress)?;
    let base_count = lock.packages.iter().filter(|p| p.group == "base").count();
    progress.note(&format!(
        "{} {} packages ({base_count} essential/required, {} requested and their dependencies) for {} {}",
        if resolved { "resolved" } else { "locked:" },
        lock.packages.len(),
        lock.packages.len() - base_count,
        lock.suite,
        lock.architecture,
    ));
    if resolved {
        if let Some(l) = &opts.lock {
            progress.note(&format!("wrote the lock {}", l.display()));
        }
    }
    let (downloaded, bytes) = download(&lock, &fetcher, &cache, opts.jobs, progress)?;
    let epoch = opts.source_date_epoch.unwrap_or_else(|| lock.timestamp());
    let asm = assemble(store, &lock, &cache, epoch, opts.jobs.min(4), progress)?;
    let (stage, _) = store.write_image(&asm.config, asm.layers.clone())?;
    let (descriptor, scripts_run) = configure(
        stage,
        &asm,
        epoch,
        &opts.arch,
        host_arch(),
        runner,
        progress,
    )?;
    Ok(DebianImage {
        descriptor,
        lock,
        resolved,
        downloaded,
        bytes,
        cached_layers: asm.cached_layers,
        scripts_run,
        handling: asm.handling.clone(),
        epoch,
    })
}

/// The image with what `asm` leaves run on top of `stage` (by `runner`, at time `epoch`;
/// nothing when nothing is left to run here), and the scripts run, named.
fn configure(
    stage: Descriptor,
    asm: &Assembled,
    epoch: i64,
    arch: &str,
    host: &str,
    runner: &dyn ScriptRunner,
    progress: &dyn Progress,
) -> Result<(Descriptor, Vec<String>)> {
    match script_plan(&asm.scripts, asm.ldconfig, arch, host)? {
        ScriptPlan::Nothing => Ok((stage, Vec::new())),
        ScriptPlan::SkipLdconfig => {
            progress.note(&format!(
                "ldconfig not run ({arch} programs cannot run on this host): the image has no /etc/ld.so.cache"
            ));
            Ok((stage, Vec::new()))
        }
        ScriptPlan::Run(names) => {
            progress.note(&format!(
                "running in a container the maintainer scripts kiln does not replicate: {}",
                names.join(", ")
            ));
            let script = configure_script(asm);
            let descriptor = runner.run(&stage, &script, epoch)?;
            Ok((descriptor, names))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Notes(Mutex<Vec<String>>);

    impl Progress for Notes {
        fn note(&self, msg: &str) {
            self.0.lock().unwrap().push(msg.to_string());
        }
    }

    /// Records what it is handed; answers `answer`.
    struct Fake {
        seen: Mutex<Vec<(Descriptor, String, i64)>>,
        answer: fn() -> Result<Descriptor>,
    }

    impl ScriptRunner for Fake {
        fn run(&self, stage: &Descriptor, script: &str, epoch: i64) -> Result<Descriptor> {
            self.seen
                .lock()
                .unwrap()
                .push((stage.clone(), script.to_string(), epoch));
            (self.answer)()
        }
    }

    fn descriptor(byte: char) -> Descriptor {
        serde_json::from_value(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", byte.to_string().repeat(64)),
            "size": 1,
        }))
        .unwrap()
    }

    fn package(name: &str, preinst: bool, postinst: bool) -> ScriptPackage {
        ScriptPackage {
            name: name.into(),
            info_name: format!("{name}:amd64"),
            preinst,
            postinst,
        }
    }

    fn assembled(scripts: Vec<ScriptPackage>, ldconfig: bool) -> Assembled {
        Assembled {
            config: serde_json::from_value(
                serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}),
            )
            .unwrap(),
            layers: Vec::new(),
            scripts,
            ldconfig,
            epoch: 1_700_000_000,
            cached_layers: 0,
            handling: Vec::new(),
        }
    }

    #[test]
    fn the_plan_names_each_script_then_ldconfig() {
        let scripts = [
            package("base-passwd", true, true),
            package("ca-certificates-java", false, true),
        ];
        assert_eq!(
            script_plan(&scripts, true, "amd64", "amd64").unwrap(),
            ScriptPlan::Run(vec![
                "base-passwd (preinst, postinst)".into(),
                "ca-certificates-java (postinst)".into(),
                "libc-bin (ldconfig)".into(),
            ])
        );
        assert_eq!(
            script_plan(&[], false, "arm64", "amd64").unwrap(),
            ScriptPlan::Nothing
        );
        assert_eq!(
            script_plan(&[], true, "arm64", "amd64").unwrap(),
            ScriptPlan::SkipLdconfig
        );
    }

    #[test]
    fn scripts_of_a_foreign_architecture_are_refused_with_a_hint() {
        let e = script_plan(&[package("foo", false, true)], true, "arm64", "amd64").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the maintainer scripts of foo (postinst), libc-bin (ldconfig) must run, and this amd64 host cannot run arm64 programs"
        );
        assert_eq!(
            e.hint().as_deref(),
            Some("build on an arm64 machine, or leave out the packages that need their scripts")
        );
    }

    #[test]
    fn the_runner_gets_the_configure_script_on_the_stage() {
        let runner = Fake {
            seen: Mutex::new(Vec::new()),
            answer: || Ok(descriptor('b')),
        };
        let notes = Notes::default();
        let asm = assembled(vec![package("foo", false, true)], true);
        let (d, run) = configure(
            descriptor('a'),
            &asm,
            asm.epoch,
            "amd64",
            "amd64",
            &runner,
            &notes,
        )
        .unwrap();
        assert_eq!(d, descriptor('b'));
        assert_eq!(run, ["foo (postinst)", "libc-bin (ldconfig)"]);
        let seen = runner.seen.into_inner().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, descriptor('a'));
        assert_eq!(seen[0].1, configure_script(&asm));
        assert_eq!(seen[0].2, asm.epoch);
        assert_eq!(
            notes.0.into_inner().unwrap(),
            ["running in a container the maintainer scripts kiln does not replicate: foo (postinst), libc-bin (ldconfig)"]
        );
    }

    #[test]
    fn nothing_runs_when_nothing_is_left_or_only_a_foreign_ldconfig() {
        let runner = Fake {
            seen: Mutex::new(Vec::new()),
            answer: || unreachable!("no script runs"),
        };
        let notes = Notes::default();
        for (asm, arch) in [
            (assembled(Vec::new(), false), "amd64"),
            (assembled(Vec::new(), true), "arm64"),
        ] {
            let (d, run) = configure(
                descriptor('a'),
                &asm,
                asm.epoch,
                arch,
                "amd64",
                &runner,
                &notes,
            )
            .unwrap();
            assert_eq!(d, descriptor('a'));
            assert!(run.is_empty());
        }
        assert_eq!(
            notes.0.into_inner().unwrap(),
            ["ldconfig not run (arm64 programs cannot run on this host): the image has no /etc/ld.so.cache"]
        );
    }

    #[test]
    fn a_failing_runner_keeps_its_message_and_hint() {
        let runner = Fake {
            seen: Mutex::new(Vec::new()),
            answer: || {
                Err(DebianError::ScriptStep {
                    msg: "the maintainer scripts failed: exit status 1".into(),
                    hint: Some("look at the output above".into()),
                })
            },
        };
        let asm = assembled(vec![package("foo", true, false)], false);
        let e = configure(
            descriptor('a'),
            &asm,
            asm.epoch,
            "amd64",
            "amd64",
            &runner,
            &Notes::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the maintainer scripts failed: exit status 1"
        );
        assert_eq!(e.hint().as_deref(), Some("look at the output above"));
    }
}
