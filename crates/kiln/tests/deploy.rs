//! `kiln deploy`: the objects reference a digest the registry serves, validate against
//! Kubernetes' schemas (kubernetes-validate --strict, 1.33 and the newest it knows), pass
//! checkov's Kubernetes checks but for those docs/deploy.md lists, are byte-identical for
//! the same inputs, and bad input fails with a clear error.

mod common;

use common::registry::Registry;
use common::validators::{checkov_failures, validate, validate_and_check, EXPECTED_CHECKOV};
use common::{json, kiln_with_busybox, run, skopeo, Kiln};
use std::path::Path;

const DOCKERFILE: &str = "FROM bb:v1\n\
    LABEL org.opencontainers.image.revision=0123456789abcdef\n\
    USER 1000\n\
    EXPOSE 8000\n\
    HEALTHCHECK CMD wget -q -O- http://localhost:8000/health || exit 1\n\
    CMD [\"httpd\", \"-f\", \"-p\", \"8000\"]\n";

/// A store with `bb:v1` and `app:v1` built from [`DOCKERFILE`].
fn kiln_with_app() -> Kiln {
    let k = kiln_with_busybox();
    let ctx = k.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    k.ok(&["build", "-q", "-t", "app:v1", ctx.to_str().unwrap()]);
    k
}

fn deploy(k: &Kiln, args: &[&str]) -> String {
    let mut a = vec!["deploy"];
    a.extend_from_slice(args);
    k.ok(&a)
}

#[test]
fn push_then_objects_validate_and_are_reproducible() {
    let reg = Registry::open();
    let k = kiln_with_app();
    let dest = format!("{}/team/app:v1", reg.addr());
    let args = [
        "app:v1",
        "--push",
        &dest,
        "--namespace",
        "ml",
        "--cpu",
        "500m",
        "--memory",
        "256Mi",
        "--min",
        "2",
        "--max",
        "5",
    ];
    let yaml = deploy(&k, &args);
    assert!(yaml.contains("kind: Deployment"), "{yaml}");
    for kind in ["Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"] {
        assert!(yaml.contains(&format!("kind: {kind}\n")), "{kind}: {yaml}");
    }
    assert!(
        yaml.contains("dev.kiln/revision: 0123456789abcdef"),
        "{yaml}"
    );
    assert!(yaml.contains("app.kubernetes.io/version: v1"), "{yaml}");
    assert!(yaml.contains("path: /health"), "{yaml}");
    assert!(yaml.contains("runAsUser: 1000"), "{yaml}");

    // The digest exists in the registry.
    let image = yaml
        .lines()
        .find_map(|l| l.trim().trim_start_matches("- ").strip_prefix("image: "))
        .expect("an image line")
        .to_string();
    assert!(
        image.starts_with(&format!("{}/team/app@sha256:", reg.addr())),
        "{image}"
    );
    let si = json(&run(skopeo()
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{image}"))));
    assert_eq!(si["Digest"].as_str(), image.split_once('@').map(|(_, d)| d));

    // Same inputs, same bytes (the second push uploads nothing and gives the same digest).
    assert_eq!(deploy(&k, &args), yaml);

    // Without --push: the history knows where the manifest was pushed.
    let again = deploy(
        &k,
        &args[..1]
            .iter()
            .chain(&args[3..])
            .copied()
            .collect::<Vec<_>>(),
    );
    assert_eq!(again, yaml);

    let file = k.dir.path().join("app.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let failed = validate_and_check(&file);
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/deploy.md"))
            .unwrap();
    for id in &failed {
        assert!(doc.contains(id.as_str()), "{id} is not in docs/deploy.md");
    }

    // One file per object with --out.
    let dir = k.dir.path().join("out");
    let listed = deploy(&k, &[&args[..], &["--out", dir.to_str().unwrap()]].concat());
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "deployment.yaml",
            "horizontalpodautoscaler.yaml",
            "poddisruptionbudget.yaml",
            "service.yaml"
        ],
        "{listed}"
    );
    let v = json(&deploy(&k, &[&args[..], &["-o", "json"]].concat()));
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"].as_array().unwrap().len(), 4);
}

#[test]
fn gpu_variant_and_job_validate() {
    let reg = Registry::open();
    let k = kiln_with_app();
    let dest = format!("{}/team/gpu:v1", reg.addr());
    let yaml = deploy(
        &k,
        &[
            "app:v1",
            "--push",
            &dest,
            "--gpus",
            "1",
            "--node-selector",
            "nvidia.com/gpu.present=true",
            "--namespace",
            "ml",
            "--cpu",
            "2",
            "--memory",
            "4Gi",
            "--replicas",
            "2",
        ],
    );
    assert!(yaml.contains("nvidia.com/gpu: '1'"), "{yaml}");
    assert!(
        yaml.contains(
            "- effect: NoSchedule\n        key: nvidia.com/gpu\n        operator: Exists"
        ),
        "{yaml}"
    );
    assert!(yaml.contains("nvidia.com/gpu.present: 'true'"), "{yaml}");
    assert!(yaml.contains("kind: PodDisruptionBudget"), "{yaml}");
    let file = k.dir.path().join("gpu.yaml");
    std::fs::write(&file, &yaml).unwrap();
    validate(&file);
    let failed = checkov_failures(&file);
    assert!(
        failed
            .iter()
            .all(|id| EXPECTED_CHECKOV.contains(&id.as_str())),
        "checkov: {failed:?}\n{yaml}"
    );

    let job = deploy(
        &k,
        &[
            "app:v1",
            "--push",
            &dest,
            "--job",
            "--name",
            "train",
            "--gpus",
            "1",
            "--namespace",
            "ml",
            "--cpu",
            "1",
            "--memory",
            "1Gi",
        ],
    );
    assert!(
        job.starts_with("apiVersion: batch/v1\nkind: Job\n"),
        "{job}"
    );
    assert!(!job.contains("kind: Service"), "{job}");
    let file = k.dir.path().join("job.yaml");
    std::fs::write(&file, &job).unwrap();
    validate(&file);
    let failed = checkov_failures(&file);
    assert!(
        failed
            .iter()
            .all(|id| EXPECTED_CHECKOV.contains(&id.as_str())),
        "checkov: {failed:?}\n{job}"
    );
}

#[test]
fn bad_input_fails_with_a_clear_error() {
    let k = kiln_with_app();
    let reg = "127.0.0.1:1/team/app:v1";
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["app:v1", "--push", reg, "--min", "3", "--max", "2"],
            &["--min 3 is above --max 2"],
        ),
        (
            &["app:v1", "--push", reg, "--name", "Bad_Name"],
            &[
                "invalid name `Bad_Name`",
                "only lowercase letters, digits and '-'",
            ],
        ),
        (
            &["app:v1", "--push", reg, "--job", "--max", "2"],
            &["--job cannot autoscale"],
        ),
        (&["nothere:v1"], &["nothere", "hint:"]),
        (&["app:v1"], &["has no registry name", "--push"]),
        (&["bb:v1", "--push", reg], &["runs as root", "--allow-root"]),
    ];
    for (args, needles) in cases {
        let mut a = vec!["deploy"];
        a.extend_from_slice(args);
        let (code, stderr) = k.fails(&a);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        for n in *needles {
            assert!(stderr.contains(n), "{args:?}: `{n}` is not in:\n{stderr}");
        }
        // Nothing was pushed: the registry does not exist, and no error is about it.
        assert!(!stderr.contains("127.0.0.1:1"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_docker_built_image_deploys_and_validates() {
    let reg = Registry::open();
    let k = Kiln::new();
    // Built by Docker (BuildKit) from the same Dockerfile body, saved, loaded into kiln.
    let body = DOCKERFILE.split_once('\n').map(|(_, b)| b).unwrap();
    let (base, app) = common::docker_build_on_busybox(k.dir.path(), "deploy", body);
    let tar = k.dir.path().join("docker-app.tar");
    run(common::docker()
        .args(["save", "-o"])
        .arg(&tar)
        .arg(format!("{app}:v1")));
    let _ = common::docker()
        .args(["rmi", &format!("{app}:v1"), &format!("{base}:v1")])
        .output();
    k.ok(&["load", "-i", tar.to_str().unwrap()]);
    let dest = format!("{}/team/docker-app:v1", reg.addr());
    let yaml = deploy(
        &k,
        &[
            &format!("{app}:v1"),
            "--push",
            &dest,
            "--namespace",
            "ml",
            "--cpu",
            "250m",
            "--memory",
            "64Mi",
        ],
    );
    assert!(
        yaml.contains("kind: Service\n") && yaml.contains("path: /health"),
        "{yaml}"
    );
    assert!(yaml.contains("runAsUser: 1000"), "{yaml}");
    let file = k.dir.path().join("docker-app.yaml");
    std::fs::write(&file, &yaml).unwrap();
    validate_and_check(&file);
}
