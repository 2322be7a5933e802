//! Architectures by moby's (Go's) names, and the seccomp architectures each covers.

/// The architecture kiln was built for, by moby's (Go's) name; "" where moby has none.
pub fn host_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "x86") {
        "x86"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else if cfg!(target_arch = "arm") {
        "arm"
    } else if cfg!(target_arch = "s390x") {
        "s390x"
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        "ppc64le"
    } else if cfg!(target_arch = "powerpc64") {
        "ppc64"
    } else if cfg!(all(target_arch = "mips64", target_endian = "little")) {
        "mipsel64"
    } else if cfg!(target_arch = "mips64") {
        "mips64"
    } else if cfg!(all(target_arch = "mips", target_endian = "little")) {
        "mipsle"
    } else {
        ""
    }
}

/// The seccomp architectures a filter for `arch` covers (moby's `archMap`): the native
/// one and those its processes can also call the kernel as (32-bit x86 and x32 on
/// x86_64...). Empty where moby has no entry: libseccomp then uses the native one.
pub(super) fn architectures(arch: &str) -> &'static [&'static str] {
    match arch {
        "amd64" => &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "arm64" => &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "mips64" => &["SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"],
        "mips64n32" => &["SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"],
        "mipsel64" => &[
            "SCMP_ARCH_MIPSEL64",
            "SCMP_ARCH_MIPSEL",
            "SCMP_ARCH_MIPSEL64N32",
        ],
        "mips3l64n32" => &[
            "SCMP_ARCH_MIPSEL64N32",
            "SCMP_ARCH_MIPSEL",
            "SCMP_ARCH_MIPSEL64",
        ],
        "s390x" => &["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
        _ => &[],
    }
}
