//! `kiln env` and `kiln sbom` against what the image itself says when run: `pip list`
//! and `dpkg-query` inside the container, for an image built by kiln and the same
//! Dockerfile built by Docker; the documents checked by the SPDX and CycloneDX projects'
//! own validators.
mod common;

use common::registry::*;
use common::validators::{venv, CDX_VALIDATE};
use common::*;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

const PIP: &str =
    "pip install --break-system-packages --no-cache-dir --progress-bar off six==1.16.0 idna==3.7";

struct Fixture {
    k: Kiln,
    /// Built by kiln, and by Docker (then loaded).
    kiln_image: String,
    docker_image: String,
}

fn host_ca() -> PathBuf {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt"))
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let k = Kiln::new().kept_until_exit();
        k.ok(&[
            "base",
            "debian",
            "--suite",
            "bookworm",
            "--packages",
            "python3,python3-pip",
            "-t",
            "pybase:1",
            "-q",
        ]);
        let ctx = k.dir.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), format!("FROM pybase:1\nRUN {PIP}\n")).unwrap();
        k.ok(&[
            "build",
            "--host-ca",
            "--network",
            "host",
            "--progress",
            "plain",
            "-t",
            "pyapp:1",
            ctx.to_str().unwrap(),
        ]);

        // The same Dockerfile built by Docker on the same base; Docker's classic builder
        // has no secret mounts, so the CA travels in a layer and a later one deletes it
        // (a whiteout the reader must apply).
        let base_tar = k.dir.path().join("pybase.tar");
        k.ok(&["save", "pybase:1", "-o", base_tar.to_str().unwrap()]);
        run(docker().args(["load", "-i", base_tar.to_str().unwrap()]));
        let dctx = k.dir.path().join("dctx");
        std::fs::create_dir_all(&dctx).unwrap();
        std::fs::copy(host_ca(), dctx.join("ca.pem")).unwrap();
        std::fs::write(
            dctx.join("Dockerfile"),
            format!("FROM pybase:1\nCOPY ca.pem /tmp/ca.pem\nRUN PIP_CERT=/tmp/ca.pem {PIP} && rm /tmp/ca.pem\n"),
        )
        .unwrap();
        let tag = format!("{}:1", unique("sbom"));
        run(docker()
            .args(["build", "--network", "host", "-q", "-t", &tag])
            .arg(&dctx));
        let saved = k.dir.path().join("docker.tar");
        run(docker().args(["save", &tag, "-o", saved.to_str().unwrap()]));
        let _ = docker().args(["rmi", &tag, "pybase:1"]).output();
        k.ok(&["load", "-i", saved.to_str().unwrap()]);
        Fixture {
            k,
            kiln_image: "pyapp:1".into(),
            docker_image: tag,
        }
    })
}

fn normalize(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if c == '_' || c == '.' {
            '-'
        } else {
            c.to_ascii_lowercase()
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

/// `kiln env --json`'s Python and Debian packages equal what pip and dpkg say inside a
/// container of the image, nothing more, nothing less; both readers agree.
fn env_matches_the_running_image(k: &Kiln, image: &str) {
    let env = json(&k.ok(&["env", "--json", image]));
    let listed: BTreeSet<(String, String)> = env["python_packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                normalize(p["name"].as_str().unwrap()),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let pip = json(&k.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "python3",
        "-m",
        "pip",
        "list",
        "--format",
        "json",
    ]));
    let pip: BTreeSet<(String, String)> = pip
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                normalize(p["name"].as_str().unwrap()),
                p["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(listed, pip, "{image}: kiln env vs pip list");
    assert!(pip.contains(&("six".into(), "1.16.0".into())), "{pip:?}");
    assert!(pip.contains(&("idna".into(), "3.7".into())), "{pip:?}");

    let debs: BTreeSet<String> = env["os_packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect();
    let dpkg = k.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "dpkg-query",
        "-W",
        "-f",
        "${Package} ${Version}\n",
    ]);
    let dpkg: BTreeSet<String> = dpkg.lines().map(str::to_string).collect();
    assert_eq!(debs, dpkg, "{image}: kiln env vs dpkg-query");
    assert!(dpkg.len() > 50);

    assert_eq!(env["distribution"]["id"], "debian");
    assert_eq!(env["distribution"]["version_id"], "12");
    let py = env["python"].as_array().unwrap();
    assert!(
        py.iter().any(|p| p["path"] == "/usr/bin/python3.11"
            && p["version"].as_str().unwrap().starts_with("3.11.")),
        "{py:?}"
    );
    let six = env["python_packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "six" && p["version"] == "1.16.0")
        .unwrap();
    assert_eq!(six["purl"], "pkg:pypi/six@1.16.0");
    assert_eq!(six["license"], "MIT");
    assert_eq!(six["installer"], "pip");
    let bash = env["os_packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "bash")
        .unwrap();
    assert!(
        bash["purl"]
            .as_str()
            .unwrap()
            .starts_with("pkg:deb/debian/bash@")
            && bash["purl"]
                .as_str()
                .unwrap()
                .ends_with("?arch=amd64&distro=debian-12"),
        "{bash}"
    );
    assert!(
        bash["license"]
            .as_str()
            .unwrap()
            .contains("GPL-3.0-or-later"),
        "{bash}"
    );

    // The snapshots (unpacked by `kiln run`) and the layer blobs give the same document.
    let from_snapshots = k.ok(&["env", "--json", "--read", "snapshots", image]);
    let from_layers = k.ok(&["env", "--json", "--read", "layers", image]);
    assert_eq!(
        from_snapshots, from_layers,
        "{image}: the two readers differ"
    );
}

#[test]
fn env_of_a_kiln_built_image_matches_pip_and_dpkg() {
    let f = fixture();
    env_matches_the_running_image(&f.k, &f.kiln_image);
}

#[test]
fn env_of_a_docker_built_image_matches_pip_and_dpkg() {
    let f = fixture();
    env_matches_the_running_image(&f.k, &f.docker_image);
}

#[test]
fn sbom_documents_validate_and_are_reproducible() {
    let f = fixture();
    let venv = venv();
    for image in [&f.kiln_image, &f.docker_image] {
        let spdx = f.k.dir.path().join("sbom.spdx.json");
        let cdx = f.k.dir.path().join("sbom.cdx.json");
        f.k.ok(&["sbom", image, "-o", spdx.to_str().unwrap()]);
        f.k.ok(&[
            "sbom",
            image,
            "--format",
            "cyclonedx",
            "-o",
            cdx.to_str().unwrap(),
        ]);
        let out = Command::new(venv.join("bin/pyspdxtools"))
            .arg("-i")
            .arg(&spdx)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && !text.to_lowercase().contains("invalid"),
            "{image}: pyspdxtools: {text}"
        );
        let out = Command::new(venv.join("bin/python"))
            .args(["-c", CDX_VALIDATE])
            .arg(&cdx)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{image}: CycloneDX 1.6: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Same image, same bytes: no wall-clock time, a namespace from the digest.
        assert_eq!(
            f.k.ok(&["sbom", image]).as_bytes(),
            std::fs::read(&spdx).unwrap()
        );
        assert_eq!(
            f.k.ok(&["sbom", image, "--format", "cyclonedx"]).as_bytes(),
            std::fs::read(&cdx).unwrap()
        );
        let doc = json(&std::fs::read_to_string(&spdx).unwrap());
        let purls: Vec<&str> = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["externalRefs"][0]["referenceLocator"].as_str())
            .collect();
        assert!(purls.contains(&"pkg:pypi/idna@3.7"), "{purls:?}");
    }
}

#[test]
fn busybox_gives_a_document_with_a_note_and_unknown_references_fail() {
    let k = kiln_with_busybox();
    let out = k.cmd().args(["sbom", "bb:v1"]).output().unwrap();
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("note: no OS package database"));
    let doc = json(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["packages"].as_array().unwrap().len(), 1);
    let env = json(&k.ok(&["env", "--json", "bb:v1"]));
    assert!(env["notes"][0]
        .as_str()
        .unwrap()
        .contains("no OS package database"));
    assert_eq!(
        env["config"]["cmd"],
        serde_json::json!(["cat", "/etc/hello.txt"])
    );
    for cmd in [&["sbom", "nope:1"][..], &["env", "nope:1"]] {
        let (code, stderr) = k.fails(cmd);
        assert_eq!(code, 1);
        assert!(
            stderr.contains("error:") && stderr.contains("hint:"),
            "{stderr}"
        );
    }
}

/// A busybox image whose RUN step (with a secret mounted) writes a fake dpkg status
/// and a fake dist-info METADATA: no network, a second or two.
const SECRET: &str = "kiln-test-secret-value-5f2d9c";

fn build_with_sbom(k: &Kiln) -> PathBuf {
    let ctx = k.dir.path().join("sbomctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG BASE=bb:v1\nFROM ${BASE}\nARG FLAVOR\n\
         RUN --mount=type=secret,id=s test -s /run/secrets/s \
         && mkdir -p /usr/lib/python3/dist-packages/demo-1.0.dist-info /var/lib/dpkg \
         && printf 'Metadata-Version: 2.1\\nName: demo\\nVersion: 1.0\\n' \
            > /usr/lib/python3/dist-packages/demo-1.0.dist-info/METADATA \
         && printf 'Package: hello\\nStatus: install ok installed\\nVersion: 2.10-3\\nArchitecture: amd64\\n\\n' \
            > /var/lib/dpkg/status\n",
    )
    .unwrap();
    run(k.cmd().env("SECRET_VAR", SECRET).args([
        "build",
        "--sbom",
        "--network",
        "none",
        "--progress",
        "plain",
        "--secret",
        "id=s,env=SECRET_VAR",
        "--build-arg",
        "FLAVOR=plain",
        "-t",
        "sbomapp:v1",
        ctx.to_str().unwrap(),
    ]));
    ctx
}

/// The index.json entries of the store that are artifacts: (artifactType, digest).
fn artifacts(k: &Kiln) -> Vec<(String, String)> {
    let index = json(&std::fs::read_to_string(k.root().join("index.json")).unwrap());
    let mut v: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| {
            Some((
                d["artifactType"].as_str()?.to_string(),
                d["digest"].as_str()?.to_string(),
            ))
        })
        .collect();
    v.sort();
    v
}

fn blob(k: &Kiln, digest: &str) -> Vec<u8> {
    std::fs::read(
        k.root()
            .join("blobs/sha256")
            .join(&digest["sha256:".len()..]),
    )
    .unwrap()
}

/// `kiln build --sbom` attaches an SPDX SBOM and an in-toto SLSA provenance statement
/// as OCI artifacts (subject: the image manifest) in the store's layout; no secret
/// value lands anywhere in the store; `kiln sbom` returns the attached document; `kiln
/// push` sends them along (the registry's referrers fallback tag lists both), `kiln
/// pull` into an empty store brings them back with the same SBOM bytes; prune keeps them
/// while the image lives and drops them with it.
#[test]
fn build_sbom_attaches_pushes_and_pulls_referrers() {
    let k = kiln_with_busybox();
    build_with_sbom(&k);
    let image = k.ok(&["inspect", "--format", "{{.Digest}}", "sbomapp:v1"]);
    let image = image.trim();
    let arts = artifacts(&k);
    let types: Vec<&str> = arts.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        ["application/spdx+json", "application/vnd.in-toto+json"]
    );
    let mut statement = None;
    for (t, d) in &arts {
        let m = json(&String::from_utf8(blob(&k, d)).unwrap());
        assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(m["artifactType"].as_str(), Some(t.as_str()));
        assert_eq!(
            m["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        assert_eq!(
            m["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(m["config"]["size"], 2);
        assert_eq!(m["subject"]["digest"], image);
        assert_eq!(m["layers"].as_array().unwrap().len(), 1);
        if t == "application/vnd.in-toto+json" {
            statement = Some(json(
                &String::from_utf8(blob(&k, m["layers"][0]["digest"].as_str().unwrap())).unwrap(),
            ));
        }
    }
    let st = statement.unwrap();
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(
        format!(
            "sha256:{}",
            st["subject"][0]["digest"]["sha256"].as_str().unwrap()
        ),
        image
    );
    let def = &st["predicate"]["buildDefinition"];
    assert_eq!(def["externalParameters"]["args"]["FLAVOR"], "plain");
    assert_eq!(
        def["externalParameters"]["secrets"],
        serde_json::json!(["s"])
    );
    let deps = def["resolvedDependencies"].as_array().unwrap();
    let bb = k.ok(&["inspect", "--format", "{{.Digest}}", "bb:v1"]);
    assert!(
        deps.iter().any(|d| d["name"] == "bb:v1"
            && format!("sha256:{}", d["digest"]["sha256"].as_str().unwrap_or("")) == bb.trim()),
        "base image with its digest in {deps:?}"
    );
    assert!(st["predicate"]["runDetails"]["builder"]["id"]
        .as_str()
        .unwrap()
        .starts_with("https://kiln.invalid/kiln@"));
    // No secret value anywhere in the store's blobs.
    for e in std::fs::read_dir(k.root().join("blobs/sha256")).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the secret's value is in a blob"
        );
    }
    // The attached SBOM is what `kiln sbom` gives; it names what the RUN step wrote.
    let sbom = k.ok(&["sbom", "sbomapp:v1"]);
    let spdx_blob = {
        let m = json(&String::from_utf8(blob(&k, &arts[0].1)).unwrap());
        blob(&k, m["layers"][0]["digest"].as_str().unwrap())
    };
    assert_eq!(sbom.as_bytes(), &spdx_blob[..]);
    assert!(
        sbom.contains("\"demo\"") && sbom.contains("\"hello\""),
        "{sbom}"
    );
    // Artifacts are not images; the store stays sound.
    let images = k.ok(&["images", "--json"]);
    assert_eq!(json(&images).as_array().unwrap().len(), 2, "{images}");
    k.ok(&["check"]);
    k.ok(&["prune"]);
    assert_eq!(
        artifacts(&k),
        arts,
        "prune keeps the artifacts of a live image"
    );

    // Push: the image, then its referrers and the fallback tag.
    let reg = Registry::open();
    let dest = format!("{}/team/sbomapp:v1", reg.addr());
    k.ok(&["push", "sbomapp:v1", &dest]);
    let (_, pushed) = raw_manifest(&reg.addr(), "team/sbomapp", "v1", None);
    let tag = pushed.replace("sha256:", "sha256-");
    let (fallback, _) = raw_manifest(&reg.addr(), "team/sbomapp", &tag, None);
    let fallback = json(&String::from_utf8(fallback).unwrap());
    let mut listed: Vec<&str> = fallback["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap())
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        ["application/spdx+json", "application/vnd.in-toto+json"]
    );
    for d in fallback["manifests"].as_array().unwrap() {
        let (m, _) = raw_manifest(
            &reg.addr(),
            "team/sbomapp",
            d["digest"].as_str().unwrap(),
            None,
        );
        assert_eq!(
            json(&String::from_utf8(m).unwrap())["subject"]["digest"],
            pushed.as_str()
        );
    }

    // Pull into an empty store: the same SBOM bytes; the provenance names the pushed digest.
    let k2 = Kiln::new();
    k2.ok(&["pull", &dest]);
    assert_eq!(k2.ok(&["sbom", &dest]), sbom);
    let arts2 = artifacts(&k2);
    assert_eq!(arts2.len(), 2);
    let m = json(&String::from_utf8(blob(&k2, &arts2[1].1)).unwrap());
    let st2 =
        json(&String::from_utf8(blob(&k2, m["layers"][0]["digest"].as_str().unwrap())).unwrap());
    assert_eq!(
        format!(
            "sha256:{}",
            st2["subject"][0]["digest"]["sha256"].as_str().unwrap()
        ),
        pushed
    );
    k2.ok(&["check"]);

    // Gone with their image.
    k.ok(&["rmi", "sbomapp:v1"]);
    k.ok(&["prune", "--keep-history", "0"]);
    assert!(artifacts(&k).is_empty());
    k.ok(&["check"]);
}
