use std::collections::BTreeMap;

use kiln_oci::ImageConfig;

use super::*;
use crate::image::{cpu_quantity, memory_quantity};
use crate::validate::valid_quantity;

fn config(v: serde_json::Value) -> ImageConfig {
    serde_json::from_value(serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": v,
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap()
}

fn app() -> ImageConfig {
    config(serde_json::json!({
        "User": "1000",
        "ExposedPorts": {"8000/tcp": {}},
        "Healthcheck": {"Test": ["CMD-SHELL", "wget -q -O- http://localhost:8000/health || exit 1"]},
        "Labels": {"org.opencontainers.image.revision": "abc123"},
        "Volumes": {"/data": {}},
    }))
}

fn opts() -> Options {
    Options {
        name: "app".into(),
        ..Default::default()
    }
}

fn gen(c: &ImageConfig, o: &Options) -> Result<Objects> {
    generate(
        &Image {
            reference: "reg.example/team/app@sha256:0123".into(),
            version: Some("v1".into()),
            config: c,
        },
        o,
    )
}

fn kinds(o: &Objects) -> Vec<&str> {
    o.objects.iter().map(|o| o.kind).collect()
}

#[test]
fn names_follow_rfc1123_and_say_which_rule() {
    assert!(validate_name("name", "iris-v2").is_ok());
    for (bad, rule) in [
        ("Bad_Name", "lowercase letters, digits and '-'"),
        ("", "empty"),
        ("-a", "start with a lowercase letter"),
        ("1a", "start with a lowercase letter"),
        ("a-", "end with a letter or a digit"),
        (&"a".repeat(64), "at most 63"),
    ] {
        let e = validate_name("name", bad).unwrap_err().to_string();
        assert!(e.contains(rule), "{bad}: {e}");
    }
}

#[test]
fn http_healthcheck_gives_http_probes_and_a_startup_budget() {
    let o = gen(&app(), &opts()).unwrap();
    assert_eq!(kinds(&o), ["Deployment", "Service"]);
    let c = &o.objects[0].value["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "reg.example/team/app@sha256:0123");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], 8000);
    assert_eq!(c["startupProbe"]["failureThreshold"], STARTUP_FAILURES);
    assert_eq!(c["securityContext"]["runAsUser"], 1000);
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(mounts, ["/tmp", "/data"]);
    let meta = &o.objects[0].value["metadata"];
    assert_eq!(meta["annotations"][REVISION_ANNOTATION], "abc123");
    assert_eq!(meta["labels"]["app.kubernetes.io/version"], "v1");
    assert_eq!(meta["labels"]["app.kubernetes.io/managed-by"], "kiln");
}

#[test]
fn exec_and_tcp_probes() {
    let c = config(serde_json::json!({
        "User": "1000:1000",
        "Healthcheck": {"Test": ["CMD", "/bin/check", "--ready"], "Interval": 5_000_000_000u64, "Retries": 5},
    }));
    let o = gen(&c, &opts()).unwrap();
    assert_eq!(kinds(&o), ["Deployment"]);
    let p = &o.objects[0].value["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(
        p["exec"]["command"],
        serde_json::json!(["/bin/check", "--ready"])
    );
    assert_eq!(p["periodSeconds"], 5);
    assert_eq!(p["failureThreshold"], 5);
    let c = config(serde_json::json!({"User": "1000"}));
    let o = gen(
        &c,
        &Options {
            port: Some(9000),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(kinds(&o), ["Deployment", "Service"]);
    let p = &o.objects[0].value["spec"]["template"]["spec"]["containers"][0]["livenessProbe"];
    assert_eq!(p["tcpSocket"]["port"], 9000);
}

#[test]
fn autoscaling_gpus_and_budget() {
    let mut sel = BTreeMap::new();
    sel.insert("nvidia.com/gpu.present".to_string(), "true".to_string());
    let o = gen(
        &app(),
        &Options {
            min: Some(2),
            max: Some(5),
            gpus: Some(1),
            cpu: Some("2".into()),
            memory: Some("4Gi".into()),
            node_selector: sel,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(
        kinds(&o),
        [
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget"
        ]
    );
    let d = &o.objects[0].value["spec"];
    assert!(d.get("replicas").is_none(), "the autoscaler owns replicas");
    let pod = &d["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["resources"]["limits"][GPU_RESOURCE],
        "1"
    );
    assert_eq!(pod["tolerations"][0]["key"], GPU_RESOURCE);
    assert_eq!(pod["nodeSelector"]["nvidia.com/gpu.present"], "true");
    assert_eq!(o.objects[2].value["spec"]["minReplicas"], 2);
    assert_eq!(o.objects[2].value["spec"]["maxReplicas"], 5);
}

#[test]
fn job_and_bad_input() {
    let o = gen(
        &app(),
        &Options {
            job: true,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(kinds(&o), ["Job"]);
    let pod = &o.objects[0].value["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let err = |o: Options| gen(&app(), &o).unwrap_err().to_string();
    assert!(err(Options {
        min: Some(3),
        max: Some(2),
        ..opts()
    })
    .contains("above --max"));
    assert!(err(Options {
        job: true,
        max: Some(2),
        ..opts()
    })
    .contains("--job"));
    assert!(err(Options {
        cpu: Some("lots".into()),
        ..opts()
    })
    .contains("--cpu"));
    let root = config(serde_json::json!({}));
    let e = gen(&root, &opts()).unwrap_err();
    assert!(e.to_string().contains("root") && e.hint().unwrap().contains("--allow-root"));
    let o = gen(
        &root,
        &Options {
            allow_root: true,
            ..opts()
        },
    )
    .unwrap();
    assert!(!o.warnings.is_empty());
    assert!(gen(&config(serde_json::json!({"User": "app"})), &opts()).is_err());
}

#[test]
fn output_is_deterministic_and_sorted() {
    let o = gen(
        &app(),
        &Options {
            replicas: Some(3),
            ..opts()
        },
    )
    .unwrap();
    let y = to_yaml(&o.objects);
    assert_eq!(
        y,
        to_yaml(
            &gen(
                &app(),
                &Options {
                    replicas: Some(3),
                    ..opts()
                }
            )
            .unwrap()
            .objects
        )
    );
    assert!(
        y.starts_with("apiVersion: apps/v1\nkind: Deployment\n"),
        "{y}"
    );
    assert_eq!(y.matches("---\n").count(), 2);
    assert!(to_json(&o.objects).contains("\"kind\": \"List\""));
}

#[test]
fn quantities_and_selectors() {
    for q in ["500m", "2", "1.5", "512Mi", "4G"] {
        assert!(valid_quantity(q), "{q}");
    }
    for q in ["", "m", "1.", "abc", "0", "-1"] {
        assert!(!valid_quantity(q), "{q}");
    }
    assert!(parse_node_selector("a/b=c").is_ok());
    assert!(parse_node_selector("ab").is_err());
    assert!(parse_node_selector("a=b c").is_err());
}

#[test]
fn a_kiln_project_label_gives_the_defaults() {
    let meta = serde_json::json!({
        "ports": [8000],
        "resources": {"cpus": 0.5, "memory_bytes": 1073741824u64, "gpus": 1},
        "healthcheck": {"path": "/health", "test": ["CMD", "python3", "-c", "..."]},
        "writable": ["/app/cache"],
    });
    let c = config(serde_json::json!({
        "User": "1000:1000",
        "ExposedPorts": {"8000/tcp": {}},
        "Healthcheck": {"Test": ["CMD", "python3", "-c", "import urllib.request"]},
        "Labels": {PROJECT_LABEL: meta.to_string()},
    }));
    let o = gen(&c, &opts()).unwrap();
    let pod = &o.objects[0].value["spec"]["template"]["spec"];
    let ctr = &pod["containers"][0];
    assert_eq!(ctr["resources"]["limits"]["cpu"], "500m");
    assert_eq!(ctr["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(ctr["resources"]["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(pod["tolerations"][0]["key"], "nvidia.com/gpu");
    assert_eq!(ctr["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(ctr["readinessProbe"]["httpGet"]["port"], 8000);
    let mounts: Vec<&str> = ctr["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(mounts, ["/tmp", "/app/cache"]);
    // Options win over the project's.
    let o = gen(
        &c,
        &Options {
            cpu: Some("2".into()),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(
        o.objects[0].value["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
            ["cpu"],
        "2"
    );
    assert_eq!(cpu_quantity(2.0), "2");
    assert_eq!(memory_quantity(512 << 20), "512Mi");
    assert_eq!(memory_quantity(1000), "1000");
}

#[test]
fn a_service_needs_a_port() {
    let c = config(serde_json::json!({"User": "1000"}));
    let e = gen(
        &c,
        &Options {
            service: true,
            ..opts()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("exposes no port"), "{e}");
    assert!(e.hint().unwrap().contains("ports = [8000]"));
}

#[test]
fn registry_names_and_default_names() {
    assert!(registry_name("app:v1").is_none());
    assert!(registry_name("team/app:v1").is_none());
    let r = registry_name("localhost:5000/team/app:v1").unwrap();
    let p = Pullable::new(&r, "sha256:abc");
    assert_eq!(p.reference, "localhost:5000/team/app@sha256:abc");
    assert_eq!(p.repository, "team/app");
    assert_eq!(p.tag.as_deref(), Some("v1"));
    assert_eq!(default_name(None, "team/app"), "app");
    assert_eq!(default_name(Some("web"), "team/app"), "web");
    let e = no_registry_name("app:v1");
    assert!(e.hint().unwrap().contains("kiln deploy app:v1 --push"));
}
