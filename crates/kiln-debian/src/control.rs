//! Debian control data (deb822): paragraphs of `Field: value` lines, continuation lines
//! starting with a space, paragraphs separated by blank lines (Packages, Release, status,
//! a package's `control` file), and the relationship fields (`Depends` and friends).

use crate::version::Version;
use crate::{DebianError, Result};
use std::cmp::Ordering;

/// One paragraph: fields in file order, values with the continuation lines joined by `\n`
/// (as written, leading space kept on continuation lines).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Paragraph<'a> {
    /// (field name, value) pairs, borrowed from the text parsed.
    pub fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Paragraph<'a> {
    /// The value of `name` (case-insensitive, as dpkg reads field names).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// Splits `text` into paragraphs. Lines that are neither fields nor continuations are
/// errors naming the line (1-based) so that a corrupt index is refused, not half read.
pub fn paragraphs(text: &str) -> Result<Vec<Paragraph<'_>>> {
    let mut out = Vec::new();
    let mut cur = Paragraph::default();
    // (start offset of the value, offset of the end of the value so far)
    let mut pos = 0usize;
    let mut open: Option<(usize, &str, usize, usize)> = None;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let start = pos;
        pos += line.len();
        let l = line.trim_end_matches(['\n', '\r']);
        if l.trim().is_empty() {
            if let Some((_, k, s, e)) = open.take() {
                cur.fields.push((k, text[s..e].trim()));
            }
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if l.starts_with('#') && open.is_none() {
            continue;
        }
        if l.starts_with(' ') || l.starts_with('\t') {
            match &mut open {
                Some((_, _, _, e)) => *e = start + l.len(),
                None => {
                    return Err(DebianError::Syntax {
                        line: n + 1,
                        msg: "continuation without a field".into(),
                    })
                }
            }
            continue;
        }
        let Some(colon) = l.find(':') else {
            return Err(DebianError::Syntax {
                line: n + 1,
                msg: format!("`{l}` is not a `Field: value` line"),
            });
        };
        if let Some((_, k, s, e)) = open.take() {
            cur.fields.push((k, text[s..e].trim()));
        }
        let key = &l[..colon];
        open = Some((n, key, start + colon + 1, start + l.len()));
    }
    if let Some((_, k, s, e)) = open.take() {
        cur.fields.push((k, text[s..e].trim()));
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// A version constraint operator of a relationship.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `<<`: strictly earlier.
    Lt,
    /// `<=` (or the obsolete `<`): earlier or equal.
    Le,
    /// `=`: exactly this version.
    Eq,
    /// `>=` (or the obsolete `>`): later or equal.
    Ge,
    /// `>>`: strictly later.
    Gt,
}

impl Op {
    /// Whether a version comparing `o` to the constraint's version satisfies it
    /// (`o` is `candidate.cmp(constraint)`).
    pub fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Eq => o == Ordering::Equal,
            Op::Ge => o != Ordering::Less,
            Op::Gt => o == Ordering::Greater,
        }
    }
    /// The operator as Debian control files write it (`<<`, `<=`, `=`, `>=`, `>>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

/// One alternative of a relationship: `name[:arch] [(op version)]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dep {
    /// Package (or virtual package) name.
    pub name: String,
    /// `:any` / `:native` / an architecture qualifier, if given.
    pub arch: Option<String>,
    /// The version constraint in parentheses, if any.
    pub version: Option<(Op, Version)>,
}

impl Dep {
    /// Whether a package `version` satisfies this alternative's version constraint.
    pub fn allows(&self, version: &Version) -> bool {
        match &self.version {
            None => true,
            Some((op, v)) => op.holds(version.cmp(v)),
        }
    }
}

impl std::fmt::Display for Dep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if let Some(a) = &self.arch {
            write!(f, ":{a}")?;
        }
        if let Some((op, v)) = &self.version {
            write!(f, " ({} {v})", op.as_str())?;
        }
        Ok(())
    }
}

/// A relationship field: clauses (comma-separated) of alternatives (`|`-separated).
pub type Relation = Vec<Vec<Dep>>;

/// Parses a binary package relationship field (`Depends`, `Pre-Depends`, `Provides`,
/// `Conflicts`, `Breaks`, `Replaces`). Architecture lists (`[amd64]`) and build profiles
/// (`<!nocheck>`) only occur in source packages; they are accepted and ignored.
pub fn parse_relation(text: &str) -> Result<Relation> {
    let mut out = Vec::new();
    for clause in text.split(',') {
        let clause = clause.trim();
        if clause.is_empty() {
            continue;
        }
        let mut alts = Vec::new();
        for alt in clause.split('|') {
            alts.push(
                parse_dep(alt.trim())
                    .map_err(|e| DebianError::Relation(format!("`{clause}`: {e}")))?,
            );
        }
        out.push(alts);
    }
    Ok(out)
}

fn parse_dep(s: &str) -> Result<Dep> {
    // Drop architecture lists and build profiles, which follow the version constraint.
    let s = match (s.find('('), s.find(['[', '<'])) {
        (Some(p), _) => match s[p..].find(')') {
            Some(e) => &s[..p + e + 1],
            None => s,
        },
        (None, Some(b)) => &s[..b],
        (None, None) => s,
    }
    .trim();
    let (head, ver) = match s.split_once('(') {
        Some((h, v)) => {
            let v = v
                .strip_suffix(')')
                .ok_or_else(|| DebianError::Relation("unclosed `(`".into()))?
                .trim();
            (h.trim(), Some(v))
        }
        None => (s, None),
    };
    if head.is_empty() || head.contains(char::is_whitespace) {
        return Err(DebianError::Relation(format!("bad package name `{head}`")));
    }
    let (name, arch) = match head.split_once(':') {
        Some((n, a)) => (n, Some(a.to_string())),
        None => (head, None),
    };
    let version = match ver {
        None => None,
        Some(v) => {
            // Two-character operators first; `<` and `>` alone are obsolete forms, read
            // by dpkg as <= and >=.
            const OPS: [(&str, Op); 7] = [
                ("<<", Op::Lt),
                ("<=", Op::Le),
                (">>", Op::Gt),
                (">=", Op::Ge),
                ("=", Op::Eq),
                ("<", Op::Le),
                (">", Op::Ge),
            ];
            let Some((op, rest)) = OPS
                .iter()
                .find_map(|&(prefix, op)| Some((op, v.strip_prefix(prefix)?)))
            else {
                return Err(DebianError::Relation(format!(
                    "bad version constraint `({v})`"
                )));
            };
            Some((op, Version::parse(rest.trim())?))
        }
    };
    Ok(Dep {
        name: name.to_string(),
        arch,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_and_continuations() {
        let t = "Package: a\nVersion: 1.0\nDescription: short\n long line\n .\n more\n\n\nPackage: b\nDepends: c (>= 2), d | e:any\n";
        let p = paragraphs(t).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].get("package"), Some("a"));
        assert_eq!(
            p[0].get("Description"),
            Some("short\n long line\n .\n more")
        );
        let r = parse_relation(p[1].get("Depends").unwrap()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0][0].name, "c");
        assert_eq!(r[0][0].version.as_ref().unwrap().0, Op::Ge);
        assert_eq!(r[1][1].name, "e");
        assert_eq!(r[1][1].arch.as_deref(), Some("any"));
        assert!(paragraphs("Package: a\nnot a field\n").is_err());
        assert!(paragraphs(" leading continuation\n").is_err());
    }

    #[test]
    fn relation_forms() {
        let r =
            parse_relation("libc6 (>= 2.34), python3 (<< 3.12), awk | mawk, x (= 1:2-3)").unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0][0].to_string(), "libc6 (>= 2.34)");
        assert!(r[1][0].allows(&Version::parse("3.11.2-1").unwrap()));
        assert!(!r[1][0].allows(&Version::parse("3.12.0-1").unwrap()));
        assert_eq!(r[3][0].version.as_ref().unwrap().1.epoch, 1);
        assert!(parse_relation("a (>= 1").is_err());
        assert!(parse_relation("a (~ 1)").is_err());
    }
}
