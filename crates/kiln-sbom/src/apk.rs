//! Alpine's package database, `lib/apk/db/installed`.

/// An installed Alpine package.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApkPackage {
    /// The package name (`P:` line), e.g. `musl`.
    pub name: String,
    /// The full version with its `-rN` release suffix (`V:` line), e.g. `1.2.4-r4`.
    pub version: String,
    /// The architecture it was built for (`A:` line), e.g. `x86_64`; empty when absent.
    pub architecture: String,
    /// The origin (source) package.
    pub origin: Option<String>,
    /// The license as apk records it (SPDX-like, space-separated alternatives).
    pub license: Option<String>,
}

/// Parses the installed database: one-letter fields, packages separated by blank lines.
pub fn parse_installed(text: &str) -> Vec<ApkPackage> {
    let mut out = Vec::new();
    let mut cur = ApkPackage::default();
    let flush = |cur: &mut ApkPackage, out: &mut Vec<ApkPackage>| {
        let p = std::mem::take(cur);
        if !p.name.is_empty() && !p.version.is_empty() {
            out.push(p);
        }
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut cur, &mut out);
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.to_string();
        match k {
            "P" => cur.name = v,
            "V" => cur.version = v,
            "A" => cur.architecture = v,
            "o" => cur.origin = Some(v),
            "L" => cur.license = Some(v),
            _ => {}
        }
    }
    flush(&mut cur, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_db() {
        let db = "C:Q1Fv3YyyE2dbBvlXvUxTkcvs3K4KQ=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nS:407278\nI:667648\nT:the musl c library (libc) implementation\nU:https://musl.libc.org/\nL:MIT\no:musl\nm:Natanael Copa <ncopa@alpinelinux.org>\nt:1711467437\nc:74d26ab2a7a5ebef8b4bd0ac8cd6c2aa1eb19765\np:so:libc.musl-x86_64.so.1=1\nF:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\nZ:Q1eJqGE/NDUUVcH5/5dx0IFOU2mUo=\n\nC:Q1abc=\nP:busybox-binsh\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\no:busybox\n";
        let p = parse_installed(db);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "musl");
        assert_eq!(p[0].version, "1.2.4_git20230717-r4");
        assert_eq!(p[0].license.as_deref(), Some("MIT"));
        assert_eq!(p[1].origin.as_deref(), Some("busybox"));
        assert_eq!(p[1].architecture, "x86_64");
    }
}
