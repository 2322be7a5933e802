//! Licenses: the names packages declare (Debian copyright files, Python METADATA, apk,
//! conda) turned into SPDX license expressions when the mapping is obvious; a name with
//! no SPDX id becomes `LicenseRef-NAME`, which SPDX documents declare with its text.

use crate::control::{field, fields, paragraphs};

/// SPDX license ids kiln recognises (matched case-insensitively).
const IDS: &[&str] = &[
    "0BSD",
    "AFL-2.1",
    "AFL-3.0",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-1.1",
    "Apache-2.0",
    "APSL-2.0",
    "Artistic-1.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "Beerware",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause",
    "BSD-Source-Code",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "CDDL-1.0",
    "CDDL-1.1",
    "curl",
    "ECL-2.0",
    "EPL-1.0",
    "EPL-2.0",
    "EUPL-1.2",
    "FSFAP",
    "FSFUL",
    "FSFULLR",
    "FTL",
    "GFDL-1.2-only",
    "GFDL-1.2-or-later",
    "GFDL-1.3-only",
    "GFDL-1.3-or-later",
    "GPL-1.0-only",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "HPND",
    "ICU",
    "IJG",
    "ISC",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "Libpng",
    "libtiff",
    "MIT",
    "MIT-0",
    "MIT-CMU",
    "MPL-1.1",
    "MPL-2.0",
    "MS-PL",
    "NCSA",
    "OFL-1.1",
    "OLDAP-2.8",
    "OpenSSL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "SGI-B-2.0",
    "Sleepycat",
    "TCL",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Unlicense",
    "UPL-1.0",
    "Vim",
    "W3C",
    "WTFPL",
    "X11",
    "Zlib",
    "ZPL-2.1",
];

/// SPDX license exceptions kiln recognises after `WITH`.
const EXCEPTIONS: &[&str] = &[
    "Autoconf-exception-3.0",
    "Bison-exception-2.2",
    "Classpath-exception-2.0",
    "GCC-exception-3.1",
    "LLVM-exception",
    "OpenSSL-exception",
];

/// Names that are not SPDX ids but map to one obviously (Debian's short names, common
/// Python `License` values and classifiers).
const ALIASES: &[(&str, &str)] = &[
    ("Expat", "MIT"),
    ("MIT License", "MIT"),
    ("The MIT License", "MIT"),
    ("GPL-1", "GPL-1.0-only"),
    ("GPL-1+", "GPL-1.0-or-later"),
    ("GPL-2", "GPL-2.0-only"),
    ("GPL-2+", "GPL-2.0-or-later"),
    ("GPL-3", "GPL-3.0-only"),
    ("GPL-3+", "GPL-3.0-or-later"),
    ("LGPL-2", "LGPL-2.0-only"),
    ("LGPL-2+", "LGPL-2.0-or-later"),
    ("LGPL-2.1", "LGPL-2.1-only"),
    ("LGPL-2.1+", "LGPL-2.1-or-later"),
    ("LGPL-3", "LGPL-3.0-only"),
    ("LGPL-3+", "LGPL-3.0-or-later"),
    ("AGPL-3", "AGPL-3.0-only"),
    ("AGPL-3+", "AGPL-3.0-or-later"),
    ("GFDL-1.2", "GFDL-1.2-only"),
    ("GFDL-1.2+", "GFDL-1.2-or-later"),
    ("GFDL-1.3", "GFDL-1.3-only"),
    ("GFDL-1.3+", "GFDL-1.3-or-later"),
    ("GPL-2.0", "GPL-2.0-only"),
    ("GPL-2.0+", "GPL-2.0-or-later"),
    ("GPL-3.0", "GPL-3.0-only"),
    ("GPL-3.0+", "GPL-3.0-or-later"),
    ("LGPL-2.1+", "LGPL-2.1-or-later"),
    ("LGPL-3.0", "LGPL-3.0-only"),
    ("Apache-2", "Apache-2.0"),
    ("Apache 2.0", "Apache-2.0"),
    ("Apache2", "Apache-2.0"),
    ("Apache License 2.0", "Apache-2.0"),
    ("Apache License, Version 2.0", "Apache-2.0"),
    ("Apache Software License", "Apache-2.0"),
    ("Apache Software License 2.0", "Apache-2.0"),
    ("Apache License Version 2.0", "Apache-2.0"),
    ("ASL 2.0", "Apache-2.0"),
    ("BSD-2-clause", "BSD-2-Clause"),
    ("BSD-3-clause", "BSD-3-Clause"),
    ("BSD-4-clause", "BSD-4-Clause"),
    ("3-Clause BSD License", "BSD-3-Clause"),
    ("New BSD License", "BSD-3-Clause"),
    ("Modified BSD License", "BSD-3-Clause"),
    ("Simplified BSD License", "BSD-2-Clause"),
    ("Artistic", "Artistic-1.0-Perl"),
    ("Artistic-2", "Artistic-2.0"),
    ("MPL-2", "MPL-2.0"),
    ("Mozilla Public License 2.0 (MPL 2.0)", "MPL-2.0"),
    ("PSF", "PSF-2.0"),
    ("PSF-2", "PSF-2.0"),
    ("PSFL", "PSF-2.0"),
    ("Python Software Foundation License", "PSF-2.0"),
    ("Python-2", "Python-2.0"),
    ("ISC License (ISCL)", "ISC"),
    ("ISCL", "ISC"),
    ("The Unlicense (Unlicense)", "Unlicense"),
    ("Universal Permissive License (UPL)", "UPL-1.0"),
    ("Eclipse Public License 2.0 (EPL-2.0)", "EPL-2.0"),
    ("Boost Software License 1.0 (BSL-1.0)", "BSL-1.0"),
    ("CC0", "CC0-1.0"),
    (
        "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication",
        "CC0-1.0",
    ),
    ("zlib/libpng License", "Zlib"),
    ("GNU General Public License v2 (GPLv2)", "GPL-2.0-only"),
    (
        "GNU General Public License v2 or later (GPLv2+)",
        "GPL-2.0-or-later",
    ),
    ("GNU General Public License v3 (GPLv3)", "GPL-3.0-only"),
    (
        "GNU General Public License v3 or later (GPLv3+)",
        "GPL-3.0-or-later",
    ),
    (
        "GNU Lesser General Public License v2 (LGPLv2)",
        "LGPL-2.0-only",
    ),
    (
        "GNU Lesser General Public License v2 or later (LGPLv2+)",
        "LGPL-2.0-or-later",
    ),
    (
        "GNU Lesser General Public License v3 (LGPLv3)",
        "LGPL-3.0-only",
    ),
    (
        "GNU Lesser General Public License v3 or later (LGPLv3+)",
        "LGPL-3.0-or-later",
    ),
    (
        "GNU Library or Lesser General Public License (LGPL)",
        "LGPL-2.0-or-later",
    ),
    ("GNU Affero General Public License v3", "AGPL-3.0-only"),
    (
        "GNU Affero General Public License v3 or later (AGPLv3+)",
        "AGPL-3.0-or-later",
    ),
];

/// The SPDX id for a license name, when it is one or obviously maps to one.
pub fn spdx_id(name: &str) -> Option<&'static str> {
    let name = name.trim();
    ALIASES
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(name))
        .map(|(_, id)| *id)
        .or_else(|| IDS.iter().find(|id| id.eq_ignore_ascii_case(name)).copied())
}

/// `name` with every character SPDX does not allow in an idstring (letters, digits, `.`,
/// `-`) replaced by `-`.
pub fn idstring(name: &str) -> String {
    name.chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                true => c,
                false => '-',
            },
        )
        .collect()
}

/// `LicenseRef-NAME` for a license name SPDX has no id for.
pub fn license_ref(name: &str) -> String {
    let mut s = idstring(name.trim());
    s.truncate(64);
    let s = s.trim_matches('-');
    format!("LicenseRef-{}", if s.is_empty() { "unknown" } else { s })
}

/// Parses an SPDX-like expression (`MIT OR Apache-2.0`, `GPL-2.0-or-later WITH
/// Classpath-exception-2.0`; apk's space-separated lists mean AND) into a canonical one;
/// `None` if a token is not a known id.
pub fn parse_expression(text: &str) -> Option<String> {
    let spaced = text.replace('(', " ( ").replace(')', " ) ");
    let mut out: Vec<String> = Vec::new();
    let mut after_with = false;
    // Whether the previous token ends an operand (so an id right after it needs an AND).
    let mut operand = false;
    for tok in spaced.split_whitespace() {
        let up = tok.to_ascii_uppercase();
        match up.as_str() {
            "AND" | "OR" | "WITH" => {
                if !operand {
                    return None;
                }
                after_with = up == "WITH";
                out.push(up);
                operand = false;
            }
            "(" => {
                if operand {
                    out.push("AND".into());
                }
                out.push(tok.into());
                operand = false;
            }
            ")" => {
                out.push(tok.into());
                operand = true;
            }
            _ => {
                if operand {
                    out.push("AND".into());
                }
                let id = if after_with {
                    EXCEPTIONS
                        .iter()
                        .find(|e| e.eq_ignore_ascii_case(tok))
                        .map(|e| e.to_string())
                } else if tok.starts_with("LicenseRef-") {
                    Some(tok.to_string())
                } else {
                    let (base, plus) = match tok.strip_suffix('+') {
                        Some(b) if spdx_id(tok).is_none() => (b, true),
                        _ => (tok, false),
                    };
                    spdx_id(base).map(|id| {
                        if plus && !id.ends_with("-or-later") {
                            id.replace("-only", "-or-later")
                        } else {
                            id.to_string()
                        }
                    })
                };
                out.push(id?);
                after_with = false;
                operand = true;
            }
        }
    }
    if out.is_empty() || !operand {
        return None;
    }
    Some(out.join(" ").replace("( ", "(").replace(" )", ")"))
}

/// The expression for one declared name: an id, an expression, or a `LicenseRef`.
pub fn expression_of(name: &str) -> String {
    spdx_id(name)
        .map(str::to_string)
        .or_else(|| parse_expression(name).filter(|e| valid(e)))
        .unwrap_or_else(|| license_ref(name))
}

/// Joins several expressions with AND (each parenthesised when compound), sorted and
/// deduplicated so the result does not depend on the order they were found in.
pub fn and_all(mut exprs: Vec<String>) -> Option<String> {
    exprs.retain(|e| valid(e));
    exprs.sort();
    exprs.dedup();
    match exprs.len() {
        0 => None,
        1 => exprs.pop(),
        _ => Some(
            exprs
                .iter()
                .map(|e| {
                    if e.contains(' ') {
                        format!("({e})")
                    } else {
                        e.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
    }
}

/// The license short names of a machine-readable Debian copyright file (the `License:`
/// lines of its header and `Files:` paragraphs), in order of appearance, deduplicated;
/// empty for a free-form file.
pub fn debian_copyright(text: &str) -> Vec<String> {
    let paras = paragraphs(text, false);
    let Some(header) = paras.first() else {
        return Vec::new();
    };
    if !field(header, "Format").is_some_and(|f| f.contains("copyright-format")) {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for (i, p) in paras.iter().enumerate() {
        if i > 0 && field(p, "Files").is_none() {
            continue;
        }
        if let Some(l) = field(p, "License") {
            let short = l.lines().next().unwrap_or("").trim().to_string();
            if !short.is_empty() && !out.contains(&short) {
                out.push(short);
            }
        }
    }
    out
}

/// A Debian short-name line (`GPL-2+ or Artistic`, `BSD-3-clause, MIT`) as an SPDX
/// expression; parts with no SPDX id become `LicenseRef`s.
pub fn debian_expression(short: &str) -> String {
    if short.to_ascii_lowercase().contains(" with ") {
        return license_ref(short);
    }
    // Operands and operators; a comma means AND. Real files have "A or B, and C" and
    // "A and/or B": consecutive operators collapse, dangling ones go.
    let mut toks: Vec<String> = Vec::new();
    let is_op = |t: &str| t == "AND" || t == "OR";
    for tok in short.replace(',', " , ").split_whitespace() {
        let op = match tok.to_ascii_lowercase().as_str() {
            "or" | "and/or" => Some("OR"),
            "and" | "," | "&" => Some("AND"),
            _ => None,
        };
        match op {
            Some(op) => match toks.last_mut() {
                Some(last) if is_op(last) && op == "AND" => *last = op.to_string(),
                Some(last) if is_op(last) => {}
                Some(_) => toks.push(op.to_string()),
                None => {}
            },
            None => {
                if toks.last().is_some_and(|t| !is_op(t)) {
                    toks.push("AND".to_string());
                }
                toks.push(spdx_id(tok).map_or_else(|| license_ref(tok), str::to_string));
            }
        }
    }
    while toks.last().is_some_and(|t| is_op(t)) {
        toks.pop();
    }
    let expr = toks.join(" ");
    if valid(&expr) {
        expr
    } else {
        license_ref(short)
    }
}

/// Whether `expr` is a well-formed expression of known ids and `LicenseRef`s.
pub fn valid(expr: &str) -> bool {
    let mut depth = 0i32;
    for c in expr.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0 && parse_expression(expr).is_some()
}

/// The license of a Python distribution from its METADATA: `License-Expression`, else a
/// short `License` value, else the `License ::` classifiers that map to an SPDX id.
/// Returns (declared names as found, expression).
pub fn python(meta: &crate::control::Paragraph) -> (Vec<String>, Option<String>) {
    if let Some(e) = field(meta, "License-Expression").filter(|e| !e.is_empty()) {
        let expr = parse_expression(e)
            .filter(|x| valid(x))
            .unwrap_or_else(|| license_ref(e));
        return (vec![e.to_string()], Some(expr));
    }
    let classifiers: Vec<&str> = fields(meta, "Classifier")
        .filter_map(|c| c.strip_prefix("License ::"))
        .map(|c| c.rsplit("::").next().unwrap_or(c).trim())
        .collect();
    if let Some(l) = field(meta, "License") {
        let l = l.trim();
        let useful = !l.is_empty() && !l.eq_ignore_ascii_case("UNKNOWN") && !l.contains('\n');
        if useful && l.len() <= 64 {
            if let Some(e) = spdx_id(l)
                .map(str::to_string)
                .or_else(|| parse_expression(l).filter(|x| valid(x)))
            {
                return (vec![l.to_string()], Some(e));
            }
            if classifiers.iter().all(|c| spdx_id(c).is_none()) {
                return (vec![l.to_string()], Some(license_ref(l)));
            }
        }
    }
    let mapped: Vec<String> = classifiers
        .iter()
        .filter_map(|c| spdx_id(c))
        .map(str::to_string)
        .collect();
    let names = classifiers.iter().map(|c| c.to_string()).collect();
    (names, and_all(mapped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions() {
        assert_eq!(parse_expression("MIT").as_deref(), Some("MIT"));
        assert_eq!(
            parse_expression("mit or apache-2.0").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(
            parse_expression("(MIT OR Apache-2.0) AND BSD-3-Clause").as_deref(),
            Some("(MIT OR Apache-2.0) AND BSD-3-Clause")
        );
        assert_eq!(
            parse_expression("GPL-2.0-or-later LGPL-2.1-or-later").as_deref(),
            Some("GPL-2.0-or-later AND LGPL-2.1-or-later")
        );
        assert_eq!(
            parse_expression("GPL-2.0-only WITH Classpath-exception-2.0").as_deref(),
            Some("GPL-2.0-only WITH Classpath-exception-2.0")
        );
        assert_eq!(
            parse_expression("GPL-2+").as_deref(),
            Some("GPL-2.0-or-later")
        );
        assert_eq!(parse_expression("Some Weird License"), None);
        assert_eq!(parse_expression("MIT OR"), None);
        assert_eq!(license_ref("public domain"), "LicenseRef-public-domain");
        assert_eq!(
            and_all(vec![
                "MIT".into(),
                "ISC OR Zlib".into(),
                "MIT".into(),
                "AND OR".into()
            ])
            .as_deref(),
            Some("(ISC OR Zlib) AND MIT")
        );
    }

    #[test]
    fn debian_copyright_file() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: bash\nSource: https://ftp.gnu.org/gnu/bash/\n\nFiles: *\nCopyright: 1987-2022 Free Software Foundation, Inc.\nLicense: GPL-3+\n\nFiles: lib/sh/strtoimax.c\n lib/sh/snprintf.c\nCopyright: 1991 The Regents\nLicense: BSD-4-clause-UC, public-domain\n\nFiles: doc/*\nCopyright: 1988-2022 FSF\nLicense: GFDL-1.3 or GPL-3+\n\nLicense: GPL-3+\n This program is free software\n .\n On Debian systems...\n";
        let names = debian_copyright(text);
        assert_eq!(
            names,
            [
                "GPL-3+",
                "BSD-4-clause-UC, public-domain",
                "GFDL-1.3 or GPL-3+"
            ]
        );
        let exprs: Vec<String> = names.iter().map(|n| debian_expression(n)).collect();
        assert_eq!(exprs[0], "GPL-3.0-or-later");
        assert_eq!(
            exprs[1],
            "LicenseRef-BSD-4-clause-UC AND LicenseRef-public-domain"
        );
        assert_eq!(exprs[2], "GFDL-1.3-only OR GPL-3.0-or-later");
        assert_eq!(
            debian_expression("GPL-1+ or Artistic, and BSD-3-clause-GENERIC"),
            "GPL-1.0-or-later OR Artistic-1.0-Perl AND LicenseRef-BSD-3-clause-GENERIC"
        );
        assert_eq!(
            debian_expression("BSD-3-clause and/or GPL-3+"),
            "BSD-3-Clause OR GPL-3.0-or-later"
        );
        assert_eq!(
            debian_expression("GPL-3+ with Bison exception"),
            "LicenseRef-GPL-3--with-Bison-exception"
        );
        assert!(debian_copyright("This is free-form text.\nCopyright 1999\n").is_empty());
    }
}
