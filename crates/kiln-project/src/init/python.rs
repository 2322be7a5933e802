//! `[python].version` and `[base].image`: the Python version the project asks for
//! (`.python-version`, `requires-python`) and the Debian release that ships it.

use super::detector::Detector;
use super::util::one_line;
use super::{DEFAULT_BASE, MAX_TEXT_BYTES};

/// Debian releases kiln builds, with the Python they ship.
const SUITES: &[(&str, &str, [u32; 3])] = &[
    ("debian:bookworm", "3.11", [3, 11, 2]),
    ("debian:trixie", "3.13", [3, 13, 5]),
];

/// A PEP 440 (or Poetry `^`/`~`) version specifier, evaluated on a release version.
/// `None` when the specifier is not understood.
fn spec_allows(spec: &str, version: [u32; 3]) -> Option<bool> {
    let mut any = false;
    for clause in spec.split(',') {
        let clause = clause.trim();
        if clause.is_empty() {
            continue;
        }
        any = true;
        if !clause_allows(clause, version)? {
            return Some(false);
        }
    }
    any.then_some(true)
}

fn clause_allows(clause: &str, v: [u32; 3]) -> Option<bool> {
    let ops = ["===", "~=", "==", "!=", "<=", ">=", "<", ">", "^", "~", "="];
    let (op, rest) = match ops.iter().find(|op| clause.starts_with(**op)) {
        Some(op) => (*op, clause[op.len()..].trim()),
        None => ("==", clause),
    };
    let (rest, wildcard) = match rest.strip_suffix(".*") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let parts: Vec<u32> = rest
        .split('.')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let padded = [
        parts[0],
        parts.get(1).copied().unwrap_or(0),
        parts.get(2).copied().unwrap_or(0),
    ];
    let prefix = |n: usize| v.iter().zip(&parts).take(n).all(|(a, b)| a == b);
    Some(match op {
        "==" | "===" | "=" if wildcard => prefix(parts.len()),
        "==" | "===" | "=" => v == padded,
        "!=" if wildcard => !prefix(parts.len()),
        "!=" => v != padded,
        "<=" => v <= padded,
        ">=" => v >= padded,
        "<" => v < padded,
        ">" => v > padded,
        "~=" if parts.len() >= 2 => v >= padded && prefix(parts.len() - 1),
        "^" => {
            let first_nonzero = parts
                .iter()
                .position(|p| *p != 0)
                .unwrap_or(parts.len() - 1);
            v >= padded && prefix(first_nonzero + 1)
        }
        "~" => v >= padded && prefix(parts.len().clamp(1, 2)),
        _ => return None,
    })
}

/// The one `3.X` minor version a specifier allows, if it allows exactly one.
fn spec_single_minor(spec: &str) -> Option<String> {
    let mut allowed = (6..=30).filter(|m| {
        [0, 50]
            .iter()
            .any(|patch| spec_allows(spec, [3, *m, *patch]) == Some(true))
    });
    let first = allowed.next()?;
    allowed.next().is_none().then(|| format!("3.{first}"))
}

/// `3.X` from a `.python-version` line (`3.11`, `3.11.4`, `cpython-3.11.4-linux`).
fn minor_of(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let start = raw.find("3.")?;
    let mut parts = raw[start..].split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?;
    let minor = parts.next()?;
    (major == "3" && !minor.is_empty() && minor.len() <= 3).then(|| format!("3.{minor}"))
}

/// The Python of a `debian:SUITE` base kiln builds.
fn suite_python(base: &str) -> Option<(&'static str, [u32; 3])> {
    SUITES
        .iter()
        .find(|(image, _, _)| *image == base)
        .map(|(_, minor, full)| (*minor, *full))
}

/// The `debian:SUITE` base that ships Python `minor`.
fn suite_for(minor: &str) -> Option<&'static str> {
    SUITES
        .iter()
        .find(|(_, m, _)| *m == minor)
        .map(|(image, _, _)| *image)
}

impl Detector<'_> {
    pub(super) fn python_and_base(&mut self) {
        let requires = self
            .pyproject
            .as_ref()
            .and_then(|p| p.requires_python.clone());
        let version_file = if self.tree.has_file(".python-version") {
            self.text(".python-version", MAX_TEXT_BYTES).and_then(|t| {
                t.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string)
            })
        } else {
            None
        };
        let declared = self.declared_python();
        let wanted: Option<(String, String)> = version_file
            .as_deref()
            .and_then(|raw| Some((minor_of(raw)?, ".python-version".to_string())))
            .or_else(|| declared.clone())
            .or_else(|| {
                let r = requires.as_deref()?;
                Some((spec_single_minor(r)?, format!("requires-python {r:?}")))
            });
        if let (Some((minor, from)), Some((used, used_from))) = (&declared, &wanted) {
            if minor != used {
                self.detected(format!("{from} says {minor}; {used_from}'s {used} is used"));
            }
        }
        if let (Some(raw), None) = (&version_file, &wanted) {
            let line = format!(
                ".python-version says {:?}: not a CPython 3 version, ignored",
                one_line(raw)
            );
            self.detected(line);
        }
        let allows = |base: &str| -> Option<bool> {
            let (_, full) = suite_python(base)?;
            spec_allows(requires.as_deref()?, full)
        };
        // A flag counts when it is given with something in it.
        let [base_flag, python_flag] = [&self.opts.base, &self.opts.python]
            .map(|f| f.as_deref().map(str::trim).filter(|f| !f.is_empty()));

        // The base.
        let base = if let Some(b) = base_flag {
            self.detected(format!("base: {b} (from the --base flag)"));
            b.to_string()
        } else if let Some(p) = python_flag {
            match minor_of(p).and_then(|m| suite_for(&m)) {
                Some(b) => b.to_string(),
                None => {
                    self.missing(format!(
                        "python {p} (the --python flag) is neither debian:bookworm's (3.11) nor debian:trixie's (3.13): set [base].image to an image with python {p}"
                    ));
                    DEFAULT_BASE.to_string()
                }
            }
        } else if let Some(b) = wanted.as_ref().and_then(|(m, _)| suite_for(m)) {
            b.to_string()
        } else if allows(DEFAULT_BASE) == Some(false) && allows("debian:trixie") == Some(true) {
            let r = requires.clone().unwrap_or_default();
            self.detected(format!(
                "base: debian:trixie (python 3.13; requires-python {r:?} excludes bookworm's 3.11)"
            ));
            "debian:trixie".to_string()
        } else {
            DEFAULT_BASE.to_string()
        };
        let suite = base_flag.and_then(|b| b.strip_prefix("debian:"));
        if suite.is_some_and(|s| !["bookworm", "trixie", "forky", "sid"].contains(&s)) {
            self.missing(format!(
                "{base}: kiln builds debian:bookworm, trixie, forky and sid; another Debian needs an image reference"
            ));
        }
        let base_python = suite_python(&base).map(|(m, _)| m);

        // The version.
        let python = if let Some(p) = python_flag {
            self.detected(format!("python: {p} (from the --python flag)"));
            if let Some(bp) = base_python.filter(|bp| minor_of(p).as_deref() != Some(*bp)) {
                self.missing(format!(
                    "python {p} (the --python flag) but {base} gives {bp}: change [base].image or [python].version"
                ));
            }
            Some(p.to_string())
        } else if let Some((minor, from)) = wanted {
            match base_python {
                Some(bp) if bp == minor => {
                    self.detected(format!("python: {minor} (from {from}), {base}'s"));
                    Some(minor)
                }
                Some(bp) => {
                    self.missing(format!(
                        "python {minor} (from {from}) is not what {base} gives ({bp}); [python].version is left unset, so {bp} is used: set [base].image to an image with python {minor} if the app needs it"
                    ));
                    None
                }
                None => {
                    self.detected(format!("python: {minor} (from {from})"));
                    Some(minor)
                }
            }
        } else {
            match (&requires, base_python) {
                (Some(r), Some(bp)) => self.detected(format!(
                    "python: not pinned (requires-python {r:?}); {base}'s {bp} is used"
                )),
                (None, Some(bp)) => {
                    self.detected(format!("python: not pinned; {base}'s {bp} is used"));
                }
                _ => {}
            }
            None
        };
        if allows(&base) == Some(false) {
            let r = requires.clone().unwrap_or_default();
            self.missing(format!(
                "requires-python {r:?} excludes {base}'s python {}: set [base].image to an image whose python it allows",
                base_python.unwrap_or("?")
            ));
        }
        self.d.base = base;
        self.d.python = python;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specifiers() {
        assert_eq!(spec_allows(">=3.11", [3, 11, 2]), Some(true));
        assert_eq!(spec_allows(">=3.12", [3, 11, 2]), Some(false));
        assert_eq!(spec_allows(">=3.9,<3.12", [3, 13, 5]), Some(false));
        assert_eq!(spec_allows("~=3.10", [3, 13, 5]), Some(true));
        assert_eq!(spec_allows("~=3.11.0", [3, 13, 5]), Some(false));
        assert_eq!(spec_allows("^3.10", [3, 13, 5]), Some(true));
        assert_eq!(spec_allows("!=3.11.*", [3, 11, 2]), Some(false));
        assert_eq!(spec_allows("nonsense", [3, 11, 2]), None);
        assert_eq!(spec_single_minor("==3.11.*").as_deref(), Some("3.11"));
        assert_eq!(spec_single_minor(">=3.11,<3.12").as_deref(), Some("3.11"));
        assert_eq!(spec_single_minor(">=3.11"), None);
        assert_eq!(minor_of("cpython-3.12.1-linux").as_deref(), Some("3.12"));
        assert_eq!(minor_of("pypy2.7"), None);
    }
}
