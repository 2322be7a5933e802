//! Tests of loading, resolving and applying CDI specs, host devices and `--gpus`.

use super::*;
use std::path::Path;

use oci_spec::runtime::Spec;
use serde_json::{json, Value};

const JSON_SPEC: &str = r#"{
    "cdiVersion": "0.5.0",
    "kind": "example.com/dev",
    "containerEdits": {
        "env": ["EXAMPLE_SPEC=1"],
        "hooks": [
            {"hookName": "createContainer", "path": "/usr/bin/example-hook",
             "args": ["example-hook", "update"], "env": ["A=b"], "timeout": 5}
        ]
    },
    "devices": [
        {"name": "null", "containerEdits": {
            "env": ["EXAMPLE_DEV=null"],
            "deviceNodes": [{"path": "/dev/example-null", "hostPath": "/dev/null"}]
        }},
        {"name": "zero", "containerEdits": {
            "env": ["EXAMPLE_DEV=zero"],
            "deviceNodes": [{"path": "/dev/zero", "permissions": "rw", "fileMode": 438, "uid": 1000, "gid": 1000}],
            "mounts": [{"hostPath": "/usr/lib/libexample.so", "containerPath": "/usr/lib/libexample.so",
                        "options": ["ro", "nosuid", "nodev", "bind"]}],
            "additionalGIDs": [44]
        }}
    ]
}"#;

const YAML_SPEC: &str = r#"
cdiVersion: "0.8.0"
kind: nvidia.com/gpu
containerEdits:
  env:
    - NVIDIA_VISIBLE_DEVICES=void
  deviceNodes:
    - path: /dev/null
      type: c
      major: 1
      minor: 3
devices:
  - name: "0"
    containerEdits:
      deviceNodes:
        - path: /dev/zero
  - name: "1"
    containerEdits:
      deviceNodes:
        - path: /dev/full
  - name: "10"
    containerEdits:
      env:
        - GPU=10
"#;

/// A later-directory override of example.com/dev=null.
const OVERRIDE_SPEC: &str = r#"{
    "cdiVersion": "0.6.0",
    "kind": "example.com/dev",
    "devices": [
        {"name": "null", "containerEdits": {"env": ["EXAMPLE_DEV=overridden"],
         "mounts": [{"hostPath": "/tmp/x", "containerPath": "/x"}]}}
    ]
}"#;

fn minimal_config() -> Spec {
    spec_from(json!({
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/bin:/bin", "EXAMPLE_DEV=old"],
            "cwd": "/"
        },
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}}
    }))
}

/// A runtime spec from its JSON.
fn spec_from(json: Value) -> Spec {
    serde_json::from_value(json).unwrap()
}

/// Applies `edits` to `spec` and returns the spec's JSON.
fn applied(edits: &Edits, spec: &mut Spec) -> Value {
    edits.apply(spec).unwrap();
    serde_json::to_value(&*spec).unwrap()
}

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).unwrap();
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn two_dirs() -> (tempfile::TempDir, tempfile::TempDir) {
    let etc = tempfile::tempdir().unwrap();
    let run = tempfile::tempdir().unwrap();
    write(etc.path(), "example.json", JSON_SPEC);
    write(etc.path(), "README.txt", "not a spec");
    write(run.path(), "nvidia.yaml", YAML_SPEC);
    (etc, run)
}

#[test]
fn cdi_load_json_and_yaml() {
    let (etc, run) = two_dirs();
    let missing = etc.path().join("missing");
    let reg = Registry::load(&[etc.path(), run.path(), &missing]).unwrap();
    assert_eq!(
        reg.device_names(),
        names(&[
            "example.com/dev=null",
            "example.com/dev=zero",
            "nvidia.com/gpu=0",
            "nvidia.com/gpu=1",
            "nvidia.com/gpu=10",
        ])
    );
}

#[test]
fn cdi_resolve_and_apply() {
    let (etc, run) = two_dirs();
    let reg = Registry::load(&[etc.path(), run.path()]).unwrap();
    let edits = reg
        .resolve(&names(&["example.com/dev=null", "example.com/dev=zero"]))
        .unwrap();
    assert_eq!(
        edits.env,
        names(&["EXAMPLE_SPEC=1", "EXAMPLE_DEV=null", "EXAMPLE_DEV=zero"])
    );
    assert_eq!(edits.device_nodes.len(), 2);
    let null = &edits.device_nodes[0];
    assert_eq!(null.path, "/dev/example-null");
    assert_eq!(null.host_path, "/dev/null");
    assert_eq!(
        (null.dev_type.as_str(), null.major, null.minor),
        ("c", 1, 3)
    );
    assert_eq!(null.permissions, "rwm");
    let zero = &edits.device_nodes[1];
    assert_eq!(
        (zero.dev_type.as_str(), zero.major, zero.minor),
        ("c", 1, 5)
    );
    assert_eq!(zero.permissions, "rw");
    assert_eq!(edits.hooks.len(), 1);
    assert_eq!(edits.additional_gids, vec![44]);

    let mut config = minimal_config();
    let spec = applied(&edits, &mut config);
    assert_eq!(
        spec["process"]["env"],
        json!(["PATH=/usr/bin:/bin", "EXAMPLE_DEV=zero", "EXAMPLE_SPEC=1"])
    );
    assert_eq!(
        spec["linux"]["devices"],
        json!([
            {"path": "/dev/example-null", "type": "c", "major": 1, "minor": 3},
            {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5,
             "fileMode": 438, "uid": 1000, "gid": 1000}
        ])
    );
    assert_eq!(
        spec["linux"]["resources"]["devices"],
        json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rw"}
        ])
    );
    assert_eq!(
        spec["mounts"],
        json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/usr/lib/libexample.so", "type": "bind",
             "source": "/usr/lib/libexample.so", "options": ["ro", "nosuid", "nodev", "bind"]}
        ])
    );
    assert_eq!(
        spec["hooks"]["createContainer"],
        json!([{"path": "/usr/bin/example-hook", "args": ["example-hook", "update"],
                "env": ["A=b"], "timeout": 5}])
    );
    assert_eq!(spec["process"]["user"]["additionalGids"], json!([44]));

    // Applying twice does not duplicate device nodes, env or mounts.
    let spec = applied(&edits, &mut config);
    assert_eq!(spec["linux"]["devices"].as_array().unwrap().len(), 2);
    assert_eq!(spec["mounts"].as_array().unwrap().len(), 2);
    assert_eq!(spec["process"]["env"].as_array().unwrap().len(), 3);
    assert_eq!(spec["process"]["user"]["additionalGids"], json!([44]));
}

#[test]
fn cdi_apply_to_empty_spec_creates_sections() {
    let (etc, run) = two_dirs();
    let reg = Registry::load(&[etc.path(), run.path()]).unwrap();
    let edits = reg.resolve(&names(&["example.com/dev=zero"])).unwrap();
    let mut config =
        spec_from(json!({"process": {"user": {"uid": 1000, "gid": 1000}, "cwd": "/"}}));
    let spec = applied(&edits, &mut config);
    assert_eq!(spec["linux"]["devices"][0]["path"], "/dev/zero");
    assert_eq!(spec["linux"]["resources"]["devices"][0]["allow"], true);
    assert_eq!(spec["mounts"][0]["destination"], "/usr/lib/libexample.so");
    assert!(spec["hooks"]["createContainer"].is_array());

    // The process's uid and gid own the node.
    assert_eq!(spec["linux"]["devices"][0]["uid"], 1000);
    assert_eq!(spec["process"]["cwd"], "/");

    // Edits that do not fit a spec (built by hand: resolved ones are validated).
    let mut bad = edits.clone();
    bad.hooks[0].hook_name = "whenever".into();
    assert!(matches!(
        bad.apply(&mut config),
        Err(CdiError::Apply { .. })
    ));
    let mut bad = edits.clone();
    bad.device_nodes[0].dev_type = "x".into();
    assert!(matches!(
        bad.apply(&mut config),
        Err(CdiError::Apply { .. })
    ));
}

#[test]
fn cdi_later_dir_overrides() {
    let (etc, run) = two_dirs();
    write(run.path(), "override.json", OVERRIDE_SPEC);
    let reg = Registry::load(&[etc.path(), run.path()]).unwrap();
    let edits = reg.resolve(&names(&["example.com/dev=null"])).unwrap();
    // The overriding spec has no spec-level edits; its device has no device nodes.
    assert_eq!(edits.env, names(&["EXAMPLE_DEV=overridden"]));
    assert!(edits.device_nodes.is_empty());
    assert_eq!(
        edits.mounts,
        vec![Mount {
            host_path: "/tmp/x".into(),
            container_path: "/x".into(),
            mount_type: "bind".into(),
            options: names(&["rbind", "rprivate"]),
        }]
    );
    // The non-overridden device still comes from the earlier dir.
    let edits = reg.resolve(&names(&["example.com/dev=zero"])).unwrap();
    assert_eq!(edits.env, names(&["EXAMPLE_SPEC=1", "EXAMPLE_DEV=zero"]));
}

#[test]
fn cdi_conflict_in_same_dir() {
    let (etc, _run) = two_dirs();
    write(etc.path(), "override.json", OVERRIDE_SPEC);
    let err = Registry::load(&[etc.path()]).unwrap_err().to_string();
    assert!(err.contains("example.com/dev=null"), "{err}");
    assert!(err.contains("override.json"), "{err}");
}

#[test]
fn cdi_all_expansion() {
    let (etc, run) = two_dirs();
    let reg = Registry::load(&[etc.path(), run.path()]).unwrap();
    let edits = reg
        .resolve(&names(&["nvidia.com/gpu=all", "nvidia.com/gpu=1"]))
        .unwrap();
    // spec-level env once, then the devices in numeric order.
    assert_eq!(edits.env, names(&["NVIDIA_VISIBLE_DEVICES=void", "GPU=10"]));
    let paths: Vec<&str> = edits.device_nodes.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, ["/dev/null", "/dev/zero", "/dev/full"]);

    // A spec with its own `all` device uses it.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "gpu.yml",
        "cdiVersion: 0.7.0\nkind: nvidia.com/gpu\ndevices:\n- name: '0'\n  containerEdits: {env: [D=0]}\n- name: all\n  containerEdits: {env: [D=all]}\n",
    );
    let reg = Registry::load(&[dir.path()]).unwrap();
    let edits = reg.resolve(&names(&["nvidia.com/gpu=all"])).unwrap();
    assert_eq!(edits.env, names(&["D=all"]));
}

#[test]
fn cdi_unknown_device_lists_known() {
    let (etc, run) = two_dirs();
    let reg = Registry::load(&[etc.path(), run.path()]).unwrap();
    let err = reg
        .resolve(&names(&["nvidia.com/gpu=7"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nvidia.com/gpu=7"), "{err}");
    assert!(err.contains("0, 1, 10"), "{err}");
    let err = reg
        .resolve(&names(&["amd.com/gpu=0"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("example.com/dev, nvidia.com/gpu"), "{err}");
    let err = reg.resolve(&names(&["gpu0"])).unwrap_err().to_string();
    assert!(err.contains("fully-qualified"), "{err}");
    assert!(reg.resolve(&names(&["nvidia.com/gpu=-x"])).is_err());
}

#[test]
fn cdi_missing_device_node_names_it() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "x.json",
        r#"{"cdiVersion":"0.3.0","kind":"x.com/y","devices":[{"name":"a",
            "containerEdits":{"deviceNodes":[{"path":"/dev/kiln-does-not-exist"}]}}]}"#,
    );
    let reg = Registry::load(&[dir.path()]).unwrap();
    let err = reg.resolve(&names(&["x.com/y=a"])).unwrap_err().to_string();
    assert!(err.contains("/dev/kiln-does-not-exist"), "{err}");
    assert!(err.contains("x.com/y=a"), "{err}");
}

#[test]
fn cdi_malformed_spec_names_file() {
    let cases = [
        ("bad.json", "{not json"),
        ("bad.yaml", "cdiVersion: [\n"),
        (
            "version.json",
            r#"{"cdiVersion":"9.9.9","kind":"x.com/y","devices":[]}"#,
        ),
        (
            "kind.json",
            r#"{"cdiVersion":"0.8.0","kind":"nokind","devices":[]}"#,
        ),
        (
            "name.json",
            r#"{"cdiVersion":"0.8.0","kind":"x.com/y","devices":[{"name":"a b"}]}"#,
        ),
        (
            "hook.json",
            r#"{"cdiVersion":"0.8.0","kind":"x.com/y","devices":[],
                "containerEdits":{"hooks":[{"hookName":"createContainer","path":"rel/hook"}]}}"#,
        ),
        (
            "hookname.json",
            r#"{"cdiVersion":"0.8.0","kind":"x.com/y","devices":[],
                "containerEdits":{"hooks":[{"hookName":"whenever","path":"/bin/true"}]}}"#,
        ),
        (
            "node.json",
            r#"{"cdiVersion":"0.8.0","kind":"x.com/y","devices":[{"name":"a",
                "containerEdits":{"deviceNodes":[{"hostPath":"/dev/null"}]}}]}"#,
        ),
        (
            "dup.json",
            r#"{"cdiVersion":"0.8.0","kind":"x.com/y","devices":[{"name":"a"},{"name":"a"}]}"#,
        ),
    ];
    for (file, body) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), file, body);
        let err = Registry::load(&[dir.path()]).unwrap_err().to_string();
        assert!(err.contains(file), "{file}: {err}");
    }
}

#[test]
fn cdi_gpus_to_devices() {
    assert_eq!(
        gpus_to_devices("all").unwrap(),
        names(&["nvidia.com/gpu=all"])
    );
    assert_eq!(
        gpus_to_devices("2").unwrap(),
        names(&["nvidia.com/gpu=0", "nvidia.com/gpu=1"])
    );
    assert_eq!(
        gpus_to_devices("count=1").unwrap(),
        names(&["nvidia.com/gpu=0"])
    );
    assert_eq!(
        gpus_to_devices("device=0,2").unwrap(),
        names(&["nvidia.com/gpu=0", "nvidia.com/gpu=2"])
    );
    assert_eq!(
        gpus_to_devices("\"device=1,3\"").unwrap(),
        names(&["nvidia.com/gpu=1", "nvidia.com/gpu=3"])
    );
    assert_eq!(
        gpus_to_devices("device=GPU-8f3b2c1a-0000-1111-2222-333344445555").unwrap(),
        names(&["nvidia.com/gpu=GPU-8f3b2c1a-0000-1111-2222-333344445555"])
    );
    for bad in ["", "0", "-1", "none", "device=", "device=0,,1", "gpus=1"] {
        let err = gpus_to_devices(bad).unwrap_err().to_string();
        assert!(err.contains("--gpus"), "{bad}: {err}");
    }
}
