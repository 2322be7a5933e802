use super::config::port_range;
use super::copy::open_tar;
use super::glob::wildcard;
use super::run_mount::{parse_run_mount, MountKind};
use super::stage::StageState;
use super::{clean_path, default_shell, platform_args};
use kiln_oci::types::{ImageConfig, RootFs};
use kiln_oci::Platform;
use std::collections::BTreeMap;

#[test]
fn wildcards_and_durations() {
    assert!(wildcard("*.py", "app.py"));
    assert!(!wildcard("*.py", "app.pyc"));
    assert!(wildcard("file?.txt", "file1.txt"));
    assert!(wildcard("[a-c]x", "bx"));
    assert!(!wildcard("[!a-c]x", "bx"));
    assert_eq!(clean_path("/a/./b/../c//d/"), "/a/c/d");
    assert_eq!(clean_path("/../.."), "/");
}

#[test]
fn expose_ranges_and_platform_args() {
    assert_eq!(
        port_range("8000-8002").unwrap(),
        ["8000/tcp", "8001/tcp", "8002/tcp"]
    );
    assert_eq!(port_range("53/UDP").unwrap(), ["53/udp"]);
    assert!(port_range("9-1").is_err());
    assert!(port_range("http").is_err());
    let arm = Platform::parse("linux/arm64/v8").unwrap();
    let amd = Platform::parse("linux/amd64").unwrap();
    let args: BTreeMap<_, _> = platform_args(&arm, &amd).into_iter().collect();
    assert_eq!(args["TARGETPLATFORM"], "linux/arm64");
    assert_eq!(args["TARGETARCH"], "arm64");
    assert_eq!(args["TARGETVARIANT"], "");
    assert_eq!(args["BUILDPLATFORM"], "linux/amd64");
    assert_eq!(args["BUILDOS"], "linux");
}

#[test]
fn only_tars_are_unpacked() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("a.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "x.txt", &b"abc"[..]).unwrap();
        b.finish().unwrap();
    }
    let bytes = std::fs::read(&tar).unwrap();
    let bz = dir.path().join("a.tar.bz2");
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    std::io::Write::write_all(&mut e, &bytes).unwrap();
    std::fs::write(&bz, e.finish().unwrap()).unwrap();
    let xz = dir.path().join("a.tar.xz");
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    std::io::Write::write_all(&mut e, &bytes).unwrap();
    std::fs::write(&xz, e.finish().unwrap()).unwrap();
    let notar = dir.path().join("data.csv.xz");
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    std::io::Write::write_all(&mut e, &[b'a'; 600]).unwrap();
    std::fs::write(&notar, e.finish().unwrap()).unwrap();
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "hello\n").unwrap();
    for p in [&tar, &bz, &xz] {
        let mut r = open_tar(p).unwrap_or_else(|| panic!("{}", p.display()));
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut out).unwrap();
        assert_eq!(out, bytes, "{}", p.display());
    }
    assert!(open_tar(&notar).is_none());
    assert!(open_tar(&short).is_none());
}

#[test]
fn env_set_again_keeps_its_place() {
    let mut st = StageState {
        layers: vec![],
        config: ImageConfig {
            created: None,
            author: None,
            architecture: String::new(),
            os: String::new(),
            variant: None,
            config: None,
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![],
            },
            history: None,
            extra: Default::default(),
        },
        key: String::new(),
        args: BTreeMap::new(),
        shell: default_shell(),
        pending_dirs: vec![],
        cmd_set: false,
    };
    st.set_env("PATH", "/bin");
    st.set_env("A", "1");
    st.set_env("PATH", "/x:/bin");
    assert_eq!(
        st.config.config.unwrap().env.unwrap(),
        ["PATH=/x:/bin", "A=1"]
    );
}

#[test]
fn run_mounts_parse() {
    let m = parse_run_mount("type=cache,target=/root/.cache/pip").unwrap();
    assert_eq!(m.kind, MountKind::Cache);
    assert!(m.rw);
    let s = parse_run_mount("type=secret,id=ca,target=/etc/ssl/ca.pem").unwrap();
    assert_eq!(s.kind, MountKind::Secret);
    assert!(!s.key_text().contains("pem-content"));
    assert!(parse_run_mount("type=nfs,target=/x").is_err());
    assert!(parse_run_mount("type=bind").is_err());
}
