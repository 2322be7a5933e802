use super::*;
use crate::spec::{ALL_CAPS, DEFAULT_CAPS};
use std::collections::BTreeMap;

const MOBY_PROFILE: &str =
    "/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json";

/// One allowed or refused call: (name, action, errno, args as canonical JSON).
type Tuple = (String, String, Option<u64>, String);
/// Each tuple and how many times it is there (moby names ptrace and syslog twice).
type Rules = BTreeMap<Tuple, usize>;

fn moby_profile() -> Value {
    let text = std::fs::read_to_string(MOBY_PROFILE).unwrap_or_else(|e| {
        panic!(
            "{MOBY_PROFILE}: {e}: install golang-github-docker-docker-dev (scripts/install-deps.sh)"
        )
    });
    serde_json::from_str(&text).expect("moby's default.json parses")
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap()).collect())
        .unwrap_or_default()
}

fn kernel_at_least(min: &Value, kernel: Option<(u32, u32)>) -> Option<bool> {
    let min = parse_kernel_version(min.as_str()?)?;
    Some(kernel.is_none_or(|k| k >= min))
}

/// What moby's `setupSeccomp` (profiles/seccomp/seccomp_linux.go) makes of its profile
/// for a bounding set `caps` on `arch`: (architectures, default action, rules).
fn moby_effective(
    moby: &Value,
    caps: &[String],
    arch: &str,
    kernel: Option<(u32, u32)>,
) -> (Vec<String>, String, Rules) {
    let seccomp_arch = match arch {
        "x86" => "SCMP_ARCH_X86",
        "amd64" => "SCMP_ARCH_X86_64",
        "arm" => "SCMP_ARCH_ARM",
        "arm64" => "SCMP_ARCH_AARCH64",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mipsel64" => "SCMP_ARCH_MIPSEL64",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "s390x" => "SCMP_ARCH_S390X",
        _ => "",
    };
    let mut arches = Vec::new();
    for a in moby["archMap"].as_array().unwrap() {
        if a["architecture"] == seccomp_arch {
            arches.push(seccomp_arch.to_string());
            arches.extend(strs(&a["subArchitectures"]).iter().map(|s| s.to_string()));
            break;
        }
    }
    let has = |c: &str| caps.iter().any(|h| h == c);
    let mut rules = Rules::new();
    for call in moby["syscalls"].as_array().unwrap() {
        let (inc, exc) = (&call["includes"], &call["excludes"]);
        if strs(&exc["arches"]).contains(&arch)
            || strs(&exc["caps"]).iter().any(|c| has(c))
            || kernel_at_least(&exc["minKernel"], kernel) == Some(true)
        {
            continue;
        }
        let on = strs(&inc["arches"]);
        if (!on.is_empty() && !on.contains(&arch))
            || !strs(&inc["caps"]).iter().all(|c| has(c))
            || kernel_at_least(&inc["minKernel"], kernel) == Some(false)
        {
            continue;
        }
        let mut names = strs(&call["names"]);
        if let Some(n) = call["name"].as_str() {
            names.push(n);
        }
        for n in names {
            *rules.entry(tuple(n, call)).or_default() += 1;
        }
    }
    (
        arches,
        moby["defaultAction"].as_str().unwrap().into(),
        rules,
    )
}

fn tuple(name: &str, rule: &Value) -> Tuple {
    let args = match &rule["args"] {
        Value::Null => json!([]),
        a => a.clone(),
    };
    (
        name.to_string(),
        rule["action"].as_str().unwrap().to_string(),
        rule["errnoRet"].as_u64(),
        args.to_string(),
    )
}

fn kiln_effective(profile: &Value) -> (Vec<String>, String, Rules) {
    let mut rules = Rules::new();
    for rule in profile["syscalls"].as_array().unwrap() {
        for n in strs(&rule["names"]) {
            *rules.entry(tuple(n, rule)).or_default() += 1;
        }
    }
    (
        strs(&profile["architectures"])
            .iter()
            .map(|s| s.to_string())
            .collect(),
        profile["defaultAction"].as_str().unwrap().into(),
        rules,
    )
}

fn caps(base: &[&str], extra: &[&str]) -> Vec<String> {
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

#[test]
fn matches_mobys_default_profile_rule_for_rule() {
    let moby = moby_profile();
    let cap_sets = [
        caps(DEFAULT_CAPS, &[]),
        caps(DEFAULT_CAPS, &["CAP_SYS_ADMIN"]),
        caps(DEFAULT_CAPS, &["CAP_SYS_PTRACE"]),
        caps(ALL_CAPS, &[]),
        vec![],
    ];
    for arch in ["amd64", "arm64", "s390x", "ppc64le", "mips64", "x86"] {
        for kernel in [Some((6, 1)), Some((4, 4)), None] {
            for caps in &cap_sets {
                let want = moby_effective(&moby, caps, arch, kernel);
                let got = kiln_effective(&profile_for(caps, arch, kernel));
                assert_eq!(got.0, want.0, "architectures on {arch}");
                assert_eq!(got.1, want.1, "default action");
                let missing: Vec<_> = want
                    .2
                    .iter()
                    .filter(|(t, n)| got.2.get(*t) != Some(n))
                    .collect();
                let extra: Vec<_> = got
                    .2
                    .iter()
                    .filter(|(t, n)| want.2.get(*t) != Some(n))
                    .collect();
                assert!(
                    missing.is_empty() && extra.is_empty(),
                    "{arch} {kernel:?} {caps:?}: kiln lacks {missing:?}, kiln adds {extra:?}"
                );
            }
        }
    }
}

fn rules_for<'a>(profile: &'a Value, name: &str) -> Vec<&'a Value> {
    profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| strs(&r["names"]).contains(&name))
        .collect()
}

#[test]
fn namespaces_need_sys_admin() {
    let default = profile_for(&caps(DEFAULT_CAPS, &[]), "amd64", Some((6, 1)));
    assert_eq!(CLONE_NS_FLAGS, 2114060288);
    assert_eq!(default["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(default["defaultErrnoRet"], libc::EPERM);
    assert_eq!(
        default["architectures"],
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    );
    let clone = rules_for(&default, "clone");
    assert_eq!(clone.len(), 1);
    assert_eq!(
        clone[0]["args"],
        json!([{"index": 0, "value": 2114060288u64, "op": "SCMP_CMP_MASKED_EQ"}])
    );
    let clone3 = rules_for(&default, "clone3");
    assert_eq!(clone3.len(), 1);
    assert_eq!(clone3[0]["action"], "SCMP_ACT_ERRNO");
    assert_eq!(clone3[0]["errnoRet"], libc::ENOSYS);
    for refused in ["mount", "unshare", "setns", "keyctl", "bpf", "umount2"] {
        assert!(rules_for(&default, refused).is_empty(), "{refused}");
    }

    let admin = profile_for(&caps(DEFAULT_CAPS, &["CAP_SYS_ADMIN"]), "amd64", None);
    for name in ["clone", "clone3", "mount", "unshare", "setns"] {
        let r = rules_for(&admin, name);
        assert_eq!(r.len(), 1, "{name}");
        assert_eq!(r[0]["action"], "SCMP_ACT_ALLOW");
        assert!(r[0].get("args").is_none(), "{name}");
    }
    // s390 passes clone's flags second.
    let s390 = profile_for(&caps(DEFAULT_CAPS, &[]), "s390x", None);
    assert_eq!(rules_for(&s390, "clone")[0]["args"][0]["index"], 1);
}

#[test]
fn libcontainer_accepts_the_profile() {
    for caps in [caps(DEFAULT_CAPS, &[]), caps(ALL_CAPS, &[])] {
        let p = default_profile(&caps);
        let parsed: oci_spec::runtime::LinuxSeccomp =
            serde_json::from_value(p.clone()).expect("an OCI linux.seccomp object");
        assert_eq!(parsed.default_errno_ret(), Some(libc::EPERM as u32));
        assert_eq!(
            parsed.syscalls().as_ref().unwrap().len(),
            p["syscalls"].as_array().unwrap().len()
        );
    }
}

#[test]
fn kernel_versions() {
    assert_eq!(parse_kernel_version("6.18.44-fc-v669\n"), Some((6, 18)));
    assert_eq!(parse_kernel_version("4.8-rc5"), Some((4, 8)));
    assert_eq!(parse_kernel_version("5"), None);
}

#[test]
fn libcontainer_gets_masked_comparisons_its_way_round() {
    let mut config = json!({"linux": {"seccomp": default_profile(&caps(DEFAULT_CAPS, &[]))}});
    let before = config.clone();
    for_libcontainer(&mut config);
    let clone = rules_for(&config["linux"]["seccomp"], "clone");
    assert_eq!(clone[0]["args"][0]["value"], 0);
    assert_eq!(clone[0]["args"][0]["valueTwo"], CLONE_NS_FLAGS);
    let personality = rules_for(&config["linux"]["seccomp"], "personality");
    assert_eq!(
        personality[0]["args"],
        rules_for(&before["linux"]["seccomp"], "personality")[0]["args"]
    );
    // libcontainer's reading of it: mask = valueTwo, datum = value.
    let parsed: oci_spec::runtime::LinuxSeccomp =
        serde_json::from_value(config["linux"]["seccomp"].clone()).unwrap();
    let arg = parsed
        .syscalls()
        .as_ref()
        .unwrap()
        .iter()
        .find(|s| s.names().contains(&"clone".to_string()))
        .unwrap()
        .args()
        .clone()
        .unwrap()[0];
    assert_eq!((arg.value(), arg.value_two()), (0, Some(CLONE_NS_FLAGS)));
    let mut unconfined = json!({"linux": {}});
    for_libcontainer(&mut unconfined);
    assert_eq!(unconfined, json!({"linux": {}}));
}
