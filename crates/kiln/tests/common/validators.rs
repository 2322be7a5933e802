//! The validators the tests run offline (SPDX, CycloneDX, Kubernetes schemas, checkov),
//! installed once into a venv outside the repository.

use super::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The venv with pyspdxtools, cyclonedx-python-lib, kubernetes-validate and checkov.
pub fn venv() -> &'static Path {
    static V: OnceLock<PathBuf> = OnceLock::new();
    V.get_or_init(|| {
        let dir = PathBuf::from(
            std::env::var_os("KILN_TEST_VENV").unwrap_or_else(|| "/var/tmp/kiln-test-venv".into()),
        );
        let ready = dir.join("bin/pyspdxtools").exists()
            && dir.join("bin/kubernetes-validate").exists()
            && dir.join("bin/checkov").exists()
            && Command::new(dir.join("bin/python"))
                .args(["-c", "import cyclonedx.validation.json, jsonschema"])
                .status()
                .is_ok_and(|s| s.success());
        if !ready {
            let ok = (dir.join("bin/pip").exists()
                || Command::new("python3")
                    .arg("-m")
                    .arg("venv")
                    .arg(&dir)
                    .status()
                    .is_ok_and(|s| s.success()))
                && Command::new(dir.join("bin/pip"))
                    .args([
                        "install",
                        "-q",
                        "spdx-tools",
                        "cyclonedx-python-lib[json-validation]",
                        "kubernetes-validate",
                        "checkov",
                    ])
                    .status()
                    .is_ok_and(|s| s.success());
            assert!(
                ok,
                "the validators are required: python3 -m venv {0} && {0}/bin/pip install spdx-tools 'cyclonedx-python-lib[json-validation]' kubernetes-validate checkov (needs python3-venv and PyPI)",
                dir.display()
            );
        }
        dir
    })
}

/// `kubernetes-validate --strict` for 1.33 and for the newest version it knows.
pub fn validate(file: &Path) {
    for version in [Some("1.33.0"), None] {
        let mut cmd = Command::new(venv().join("bin/kubernetes-validate"));
        cmd.arg("--strict");
        if let Some(v) = version {
            cmd.args(["-k", v]);
        }
        let out = cmd.arg(file).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && !text.contains("ERROR") && !text.contains("WARN"),
            "{} (Kubernetes {}): {text}\n{}",
            file.display(),
            version.unwrap_or("newest"),
            std::fs::read_to_string(file).unwrap()
        );
    }
}

/// The ids of the checks checkov fails on `file` (Kubernetes framework).
pub fn checkov_failures(file: &Path) -> Vec<String> {
    let out = Command::new(venv().join("bin/checkov"))
        .arg("-f")
        .arg(file)
        .args([
            "--framework",
            "kubernetes",
            "--compact",
            "--quiet",
            "-o",
            "json",
            // Offline: no download of policies or guidelines, no traffic but loopback.
            "--skip-download",
        ])
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v = json(&text);
    // One report, or a list of them; an empty report when all checks pass.
    let reports = match v {
        serde_json::Value::Array(a) => a,
        v => vec![v],
    };
    let mut ids: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r["results"]["failed_checks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|c| c["check_id"].as_str().unwrap_or("").to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Validates a CycloneDX 1.6 document (argument 1).
pub const CDX_VALIDATE: &str = "import sys\nfrom cyclonedx.schema import SchemaVersion\nfrom cyclonedx.validation.json import JsonStrictValidator\nerr = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\nif err is not None:\n    print(err)\n    sys.exit(1)\n";

/// checkov failures expected for every Deployment kiln writes (see docs/deploy.md).
pub const EXPECTED_CHECKOV: &[&str] = &[
    "CKV_K8S_40", // uid 1000 is below 10000: kiln keeps the image's uid, it invents none
    "CKV2_K8S_6", // no NetworkPolicy: who may talk to the app is the cluster's to say
];

/// `validate`, then checkov: every failure must be one docs/deploy.md lists
/// ([`EXPECTED_CHECKOV`]); returns the failures.
pub fn validate_and_check(file: &Path) -> Vec<String> {
    validate(file);
    let failed = checkov_failures(file);
    let unexpected: Vec<&String> = failed
        .iter()
        .filter(|id| !EXPECTED_CHECKOV.contains(&id.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{}: checkov: {failed:?}\n{}",
        file.display(),
        std::fs::read_to_string(file).unwrap_or_default()
    );
    failed
}
