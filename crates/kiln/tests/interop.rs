//! Interoperability with the real peers: images go Docker/Podman -> kiln -> Docker/Podman
//! keeping their IDs, and OCI tools read kiln's store directly.

mod common;
use common::*;
use std::process::Command;

/// docker import + docker build -> docker save -> kiln load -> kiln save -> docker load:
/// the same image ID, and the image runs.
#[test]
fn docker_save_kiln_load_save_docker_load() {
    let k = Kiln::new();
    let (base, app) = docker_build_on_busybox(
        k.dir.path(),
        "d",
        "RUN echo built by docker > /built.txt && rm /etc/hello.txt\nCMD [\"cat\", \"/built.txt\"]\n",
    );
    let id = run(docker().args(["inspect", "--format", "{{.Id}}", &format!("{app}:v1")]));
    let id = id.trim();
    let saved = k.dir.path().join("docker.tar");
    run(docker()
        .args(["save", "-o"])
        .arg(&saved)
        .arg(format!("{app}:v1")));

    let out = k.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("Loaded image: {app}:v1"));
    let kid = k.ok(&["inspect", "--format", "{{.Id}}", &format!("{app}:v1")]);
    assert_eq!(
        kid.trim(),
        id,
        "kiln keeps Docker's image ID (config digest)"
    );

    let resaved = k.dir.path().join("kiln.tar");
    k.ok(&[
        "save",
        &format!("{app}:v1"),
        "-o",
        resaved.to_str().unwrap(),
    ]);
    run(docker().args(["rmi", &format!("{app}:v1"), &format!("{base}:v1")]));
    let loaded = run(docker().args(["load", "-i"]).arg(&resaved));
    assert!(loaded.contains(&format!("{app}:v1")), "{loaded}");
    let id2 = run(docker().args(["inspect", "--format", "{{.Id}}", &format!("{app}:v1")]));
    assert_eq!(id2.trim(), id);
    let ran = run(docker().args(["run", "--rm", "--network", "none", &format!("{app}:v1")]));
    assert_eq!(ran, "built by docker\n");
    // The whiteout of /etc/hello.txt survived the trip.
    let ls = run(docker().args([
        "run",
        "--rm",
        "--network",
        "none",
        &format!("{app}:v1"),
        "ls",
        "/etc",
    ]));
    assert!(!ls.contains("hello.txt"), "{ls}");
    run(docker().args(["rmi", &format!("{app}:v1")]));
}

/// `docker save | gzip` and the flattened tree of `kiln export` against `docker export`.
#[test]
fn docker_compressed_archive_and_export_match() {
    let k = Kiln::new();
    let (base, app) = docker_build_on_busybox(
        k.dir.path(),
        "dexp",
        "RUN mkdir -p /data/sub /gone && echo a > /data/sub/a && echo b > /data/b && echo x > /gone/x && ln -s /data/b /link\nRUN rm -rf /data/sub /gone /etc/hello.txt && mkdir /data/sub && echo c > /data/sub/c\n",
    );
    let gz = k.dir.path().join("image.tar.gz");
    run(Command::new("sh").arg("-c").arg(format!(
        "DOCKER_HOST={} /usr/bin/docker save {app}:v1 | gzip -1 > {}",
        docker()
            .get_envs()
            .find(|(k, _)| *k == "DOCKER_HOST")
            .unwrap()
            .1
            .unwrap()
            .to_str()
            .unwrap(),
        gz.display()
    )));
    k.ok(&["load", "-q", "-i", gz.to_str().unwrap()]);
    let kflat = k.dir.path().join("kiln-export.tar");
    k.ok(&[
        "export",
        &format!("{app}:v1"),
        "-o",
        kflat.to_str().unwrap(),
    ]);
    let cid = run(docker().args(["create", &format!("{app}:v1"), "true"]));
    let dflat = k.dir.path().join("docker-export.tar");
    run(docker().args(["export", "-o"]).arg(&dflat).arg(cid.trim()));
    run(docker().args(["rm", cid.trim()]));
    run(docker().args(["rmi", &format!("{app}:v1"), &format!("{base}:v1")]));

    // docker export adds the runtime's mount points and /.dockerenv; compare the rest.
    let tree = flat_tree;
    let ours = tree(&kflat);
    assert_eq!(ours, tree(&dflat));
    assert!(ours.iter().any(|l| l.starts_with("data/sub/c ")));
    assert!(!ours.iter().any(|l| l.starts_with("data/sub/a ")));
    assert!(!ours.iter().any(|l| l.starts_with("etc/hello.txt")));
    assert!(!ours.iter().any(|l| l.starts_with("gone")));
}

/// podman import -> podman save (oci-archive and docker-archive) -> kiln load -> kiln save
/// -> podman load: the same image ID, and podman runs it.
#[test]
fn podman_archives_round_trip() {
    let k = Kiln::new();
    let name = unique("pod");
    let full = format!("localhost/{name}:v1");
    run(podman()
        .args(["import", "--change", "CMD [\"cat\", \"/etc/hello.txt\"]"])
        .arg(busybox_tar())
        .arg(&full));
    let id = run(podman().args(["image", "inspect", "--format", "{{.Id}}", &full]));
    let id = id.trim();
    for format in ["oci-archive", "docker-archive"] {
        let k = Kiln::new();
        let saved = k.dir.path().join("podman.tar");
        run(podman()
            .args(["save", "--format", format, "-o"])
            .arg(&saved)
            .arg(&full));
        let out = k.ok(&["load", "-i", saved.to_str().unwrap()]);
        assert_eq!(out.trim(), format!("Loaded image: {full}"), "{format}");
        let kid = k.ok(&["inspect", "--format", "{{.Id}}", &full]);
        assert_eq!(kid.trim(), format!("sha256:{id}"), "{format}");
    }
    run(podman()
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(k.dir.path().join("p.tar"))
        .arg(&full));
    k.ok(&["load", "-i", k.dir.path().join("p.tar").to_str().unwrap()]);
    let resaved = k.dir.path().join("kiln.tar");
    k.ok(&["save", &full, "-o", resaved.to_str().unwrap()]);
    run(podman().args(["rmi", &full]));
    let loaded = run(podman().args(["load", "-i"]).arg(&resaved));
    assert!(loaded.contains(&full), "{loaded}");
    let id2 = run(podman().args(["image", "inspect", "--format", "{{.Id}}", &full]));
    assert_eq!(id2.trim(), id);
    let ran = run(podman().args(PODMAN_RUN).arg(&full));
    assert_eq!(ran, "hello from kiln\n");
    // The plain OCI format loads too (podman reads it as an oci-archive).
    let oci = k.dir.path().join("kiln-oci.tar");
    k.ok(&[
        "save",
        "--format",
        "oci",
        &full,
        "-o",
        oci.to_str().unwrap(),
    ]);
    run(podman().args(["rmi", &full]));
    run(podman().args(["load", "-i"]).arg(&oci));
    let id3 = run(podman().args(["image", "inspect", "--format", "{{.Id}}", &full]));
    assert_eq!(id3.trim(), id);
    run(podman().args(["rmi", &full]));
}

/// umoci and skopeo read the kiln store as the OCI layout it is.
#[test]
fn oci_tools_read_the_store() {
    let k = Kiln::new();
    k.ok(&[
        "import",
        busybox_rootfs().to_str().unwrap(),
        "-t",
        "tools:v1",
        "-c",
        "CMD [\"sh\"]",
    ]);
    k.ok(&["tag", "tools:v1", "ghcr.io/team/tools:v2"]);
    let root = k.root();
    let ls = run(umoci().args(["ls", "--layout"]).arg(&root));
    let mut names: Vec<&str> = ls.lines().collect();
    names.sort();
    assert_eq!(names, ["ghcr.io/team/tools:v2", "tools:v1"]);
    let inspect = run(skopeo()
        .arg("inspect")
        .arg(format!("oci:{}:tools:v1", root.display())));
    let v = json(&inspect);
    let digest = k.ok(&["inspect", "--format", "{{.Digest}}", "tools:v1"]);
    assert_eq!(v["Digest"], digest.trim());
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    // umoci unpacks what kiln wrote, file for file.
    let bundle = k.dir.path().join("bundle");
    run(umoci()
        .args(["unpack", "--image"])
        .arg(format!("{}:tools:v1", root.display()))
        .arg(&bundle));
    let hello = std::fs::read_to_string(bundle.join("rootfs/etc/hello.txt")).unwrap();
    assert_eq!(hello, "hello from kiln\n");
    // skopeo copies out of the store and back into another kiln store via an OCI dir.
    let dir = k.dir.path().join("copy");
    run(skopeo()
        .arg("copy")
        .arg(format!("oci:{}:tools:v1", root.display()))
        .arg(format!("oci:{}:tools:v1", dir.display())));
    let k2 = Kiln::new();
    let out = k2.ok(&["load", "-i", dir.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: tools:v1");
    assert_eq!(
        k2.ok(&["inspect", "--format", "{{.Digest}}", "tools:v1"]),
        digest
    );
    k.ok(&["check"]);
    k2.ok(&["check"]);
}
