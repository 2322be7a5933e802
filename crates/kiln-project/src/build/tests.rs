use super::base::{platform_for, upstream};
use super::code::gitignore_to_dockerignore;
use super::install::b64;
use super::layer::parents;

#[test]
fn record_hashes_are_urlsafe_base64_without_padding() {
    assert_eq!(b64(b""), "");
    assert_eq!(b64(b"f"), "Zg");
    assert_eq!(b64(b"fo"), "Zm8");
    assert_eq!(b64(b"foo"), "Zm9v");
    assert_eq!(b64(&[0xfb, 0xff]), "-_8");
}

#[test]
fn versions_and_platforms() {
    assert_eq!(upstream("3.11.2-6+deb12u1").unwrap().2, "3.11.2");
    assert_eq!(
        upstream("2.36-9+deb12u13").map(|v| (v.0, v.1)),
        Some((2, 36))
    );
    assert_eq!(
        platform_for("amd64", Some((2, 36))),
        "x86_64-manylinux_2_36"
    );
    assert_eq!(
        platform_for("amd64", Some((2, 41))),
        "x86_64-manylinux_2_40"
    );
    assert_eq!(
        platform_for("arm64", Some((2, 24))),
        "aarch64-manylinux_2_17"
    );
    assert_eq!(parents("/app/models/x.bin"), ["app", "app/models"]);
}

#[test]
fn kilnignore_is_gitignore_syntax() {
    let d = gitignore_to_dockerignore("# c\n__pycache__/\n/build\ndocs/*.md\n!keep.py\n");
    let i = kiln_build::dockerignore::Ignore::parse(&d);
    assert!(i.is_excluded("__pycache__"));
    assert!(i.is_excluded("a/b/__pycache__/x.pyc"));
    assert!(i.is_excluded("build/x"));
    assert!(!i.is_excluded("src/build"));
    assert!(i.is_excluded("docs/a.md"));
}
