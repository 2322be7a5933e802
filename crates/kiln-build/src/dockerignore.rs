//! `.dockerignore` files with Docker's semantics: reading as moby's `ignorefile.ReadAll`,
//! matching as `moby/patternmatcher` (the patterns are turned into the same regular
//! expressions and matched with the same rules) and walking as BuildKit's `fsutil`, which
//! evaluates each path using its parent directory's results.
//!
//! - lines starting with `#` are comments (only in the first column), blank lines are
//!   skipped, patterns are trimmed;
//! - `!pattern` re-includes; the last pattern that matches a path (or one of its parent
//!   directories) decides;
//! - patterns are cleaned like Go's `filepath.Clean` (`./a` → `a`, `a/../b` → `b`,
//!   `a//b` → `a/b`) and a leading `/` is dropped;
//! - `*` matches any run of non-`/` characters, `?` one non-`/` character, `[...]` a
//!   character class (`[^...]` negated), `\` escapes, `**` any number of directories
//!   (`**/x`, `x/**`, `a/**/b`).
//!
//! The `.dockerignore` and the Dockerfile themselves are always sent by Docker even when
//! matched; that is for the caller to apply.

use crate::dockerfile::SyntaxError;
use std::path::{Path, PathBuf};

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
    errors: Vec<SyntaxError>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Cleaned pattern, without the `!`.
    text: String,
    exclusion: bool,
    matcher: Matcher,
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    /// `foo/**`: the text before the `**`.
    Prefix(String),
    /// `**/foo`: the text after the `**`.
    Suffix(String),
    Regex(Vec<Node>),
}

impl Ignore {
    /// Reads a `.dockerignore`. Patterns Docker would reject (see [`Ignore::try_parse`])
    /// are left out; [`Ignore::errors`] lists them.
    pub fn parse(text: &str) -> Ignore {
        let mut ignore = Ignore::default();
        for line in read_all(text) {
            match Pattern::new(&line) {
                Ok(Some(p)) => ignore.patterns.push(p),
                Ok(None) => {}
                Err(e) => ignore.errors.push(e),
            }
        }
        ignore
    }

    /// Like [`Ignore::parse`], but fails on the first pattern Docker rejects (a lone `!`,
    /// a malformed `[...]` class, a trailing `\`), with Docker's message.
    pub fn try_parse(text: &str) -> Result<Ignore, SyntaxError> {
        let ignore = Ignore::parse(text);
        match ignore.errors.first() {
            Some(e) => Err(e.clone()),
            None => Ok(ignore),
        }
    }

    /// Messages for the patterns left out by [`Ignore::parse`].
    pub fn errors(&self) -> &[SyntaxError] {
        &self.errors
    }

    /// The patterns in order, cleaned, as `(pattern, is_exception)`.
    pub fn patterns(&self) -> impl Iterator<Item = (&str, bool)> {
        self.patterns.iter().map(|p| (p.text.as_str(), p.exclusion))
    }

    /// Whether no pattern is left: then nothing is excluded from the context.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `rel_path` (relative to the context, `/`-separated) is left out of the
    /// context. A path inside an excluded directory is excluded unless a later `!`
    /// pattern matches it (or a directory between).
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let cleaned = go_clean(rel_path);
        let path = cleaned.trim_start_matches('/');
        if path.is_empty() || path == "." {
            return false;
        }
        // BuildKit walks from the top, evaluating each entry with its parent's results.
        let mut parent: Option<Vec<bool>> = None;
        let mut matched = false;
        for (i, _) in path
            .match_indices('/')
            .chain(std::iter::once((path.len(), "")))
        {
            let (m, info) = self.matches_using_parent(&path[..i], parent.as_deref());
            matched = m;
            parent = Some(info);
        }
        matched
    }

    /// False when `dir_rel` is excluded and no `!` pattern could re-include anything
    /// below it, so a walker may skip the whole subtree (BuildKit's rule: exceptions
    /// with wildcards always force a walk; literal ones only under their own prefix).
    pub fn may_include_under(&self, dir_rel: &str) -> bool {
        if !self.is_excluded(dir_rel) {
            return true;
        }
        let exceptions: Vec<&Pattern> = self.patterns.iter().filter(|p| p.exclusion).collect();
        if exceptions.iter().any(|p| contains_wildcards(&p.text)) {
            return true;
        }
        let cleaned = go_clean(dir_rel);
        let dir_slash = format!("{}/", cleaned.trim_start_matches('/'));
        exceptions
            .iter()
            .any(|p| format!("{}/", p.text).starts_with(&dir_slash))
    }

    /// patternmatcher's `MatchesUsingParentResults`.
    fn matches_using_parent(&self, file: &str, parent: Option<&[bool]>) -> (bool, Vec<bool>) {
        let mut matched = false;
        let mut info = vec![false; self.patterns.len()];
        for (i, p) in self.patterns.iter().enumerate() {
            let mut m = parent.is_some_and(|pm| pm[i]);
            if !m {
                if p.exclusion != matched {
                    continue;
                }
                m = p.matches(file);
                if !m && parent.is_none() {
                    // No parent results: check each parent directory, as
                    // MatchesOrParentMatches does.
                    if let Some(slash) = file.rfind('/') {
                        let dir = &file[..slash];
                        m = dir
                            .match_indices('/')
                            .map(|(j, _)| &dir[..j])
                            .chain(std::iter::once(dir))
                            .any(|d| p.matches(d));
                    }
                }
            }
            info[i] = m;
            if m {
                matched = !p.exclusion;
            }
        }
        (matched, info)
    }
}

/// Where the ignore file for a build is: `<Dockerfile>.dockerignore` beside the
/// Dockerfile (e.g. `Containerfile.dockerignore`, `app.Dockerfile.dockerignore`) wins over
/// `.dockerignore` at the root of the context. A relative `dockerfile_name` is taken
/// relative to `context`.
pub fn find(context: &Path, dockerfile_name: &str) -> Option<PathBuf> {
    let df = Path::new(dockerfile_name);
    let df = if df.is_absolute() {
        df.to_path_buf()
    } else {
        context.join(df)
    };
    if let Some(name) = df.file_name() {
        let mut n = name.to_os_string();
        n.push(".dockerignore");
        let candidate = df.with_file_name(n);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    let root = context.join(".dockerignore");
    root.is_file().then_some(root)
}

/// moby's `ignorefile.ReadAll`: the pattern lines, cleaned, `!` kept in front.
fn read_all(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = String::new();
        if !pattern.is_empty() {
            p = go_clean(pattern);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
        }
        if invert {
            p.insert(0, '!');
        }
        out.push(p);
    }
    out
}

impl Pattern {
    /// patternmatcher's `New` for one pattern.
    fn new(raw: &str) -> Result<Option<Pattern>, SyntaxError> {
        let p = raw.trim();
        if p.is_empty() {
            return Ok(None);
        }
        let p = go_clean(p);
        let (exclusion, p) = match p.strip_prefix('!') {
            Some("") => {
                return Err(SyntaxError::Pattern(
                    "illegal exclusion pattern: \"!\"".into(),
                ))
            }
            Some(rest) => (true, rest.to_string()),
            None => (false, p),
        };
        validate_glob(&p).map_err(|e| SyntaxError::Pattern(format!("{e}: {p}")))?;
        let matcher = compile(&p)
            .map_err(|e| SyntaxError::Pattern(format!("syntax error in pattern: {p}: {e}")))?;
        Ok(Some(Pattern {
            text: p,
            exclusion,
            matcher,
        }))
    }

    fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact(s) => path == s,
            Matcher::Prefix(s) => path.starts_with(s.as_str()),
            Matcher::Suffix(s) => {
                path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Matcher::Regex(nodes) => regex_search(nodes, path),
        }
    }
}

/// fsutil's `containsWildcards`.
fn contains_wildcards(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub(crate) fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for elem in path.split('/') {
        match elem {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            e => parts.push(e),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Checks a pattern the way Go's `filepath.Match` does (`syntax error in pattern`).
fn validate_glob(p: &str) -> Result<(), SyntaxError> {
    const BAD: &str = "syntax error in pattern";
    let c: Vec<char> = p.chars().collect();
    let n = c.len();
    let get_esc = |i: &mut usize| -> Result<char, SyntaxError> {
        if *i >= n || c[*i] == '-' || c[*i] == ']' {
            return Err(SyntaxError::Pattern(BAD.into()));
        }
        if c[*i] == '\\' {
            *i += 1;
            if *i >= n {
                return Err(SyntaxError::Pattern(BAD.into()));
            }
        }
        let ch = c[*i];
        *i += 1;
        if *i >= n {
            return Err(SyntaxError::Pattern(BAD.into()));
        }
        Ok(ch)
    };
    let mut i = 0;
    while i < n {
        match c[i] {
            '\\' => {
                if i + 1 >= n {
                    return Err(SyntaxError::Pattern(BAD.into()));
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if i < n && c[i] == '^' {
                    i += 1;
                }
                let mut nrange = 0;
                loop {
                    if i < n && c[i] == ']' && nrange > 0 {
                        i += 1;
                        break;
                    }
                    let lo = get_esc(&mut i)?;
                    if c[i] == '-' {
                        i += 1;
                        let hi = get_esc(&mut i)?;
                        if hi < lo {
                            return Err(SyntaxError::Pattern(BAD.into()));
                        }
                    }
                    nrange += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// patternmatcher's `compile`: the match type, and for regex patterns the same regular
/// expression Go builds (then parsed by the small engine below).
fn compile(p: &str) -> Result<Matcher, SyntaxError> {
    #[derive(PartialEq)]
    enum Ty {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let chars: Vec<char> = p.chars().collect();
    let mut re = String::from("^");
    let mut ty = Ty::Exact;
    let mut pos = 0;
    let mut i = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        pos += 1;
        let peek = chars.get(pos).copied();
        match ch {
            '*' if peek == Some('*') => {
                pos += 1;
                if chars.get(pos) == Some(&'/') {
                    pos += 1;
                }
                if pos == chars.len() {
                    if ty == Ty::Exact {
                        ty = Ty::Prefix;
                    } else {
                        re.push_str(".*");
                        ty = Ty::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    ty = Ty::Regex;
                }
                if i == 0 {
                    ty = Ty::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                ty = Ty::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                ty = Ty::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => match peek {
                Some(n) => {
                    re.push('\\');
                    re.push(n);
                    pos += 1;
                    ty = Ty::Regex;
                }
                None => re.push('\\'),
            },
            '[' | ']' => {
                re.push(ch);
                ty = Ty::Regex;
            }
            _ => re.push(ch),
        }
        i += 1;
    }
    Ok(match ty {
        Ty::Exact => Matcher::Exact(p.to_string()),
        Ty::Prefix => Matcher::Prefix(p[..p.len() - 2].to_string()),
        Ty::Suffix => Matcher::Suffix(p[2..].to_string()),
        Ty::Regex => {
            re.push('$');
            Matcher::Regex(parse_regex(&re)?)
        }
    })
}

// A tiny backtracking engine for the regular expressions `compile` produces (Go RE2
// syntax subset: literals, escapes, `.`, classes, groups, `*`, `+`, `?`, `^`, `$`).

#[derive(Debug, Clone)]
enum Atom {
    Lit(char),
    Dot,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Group(Vec<Node>),
    Start,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Quant {
    One,
    Opt,
    Star,
    Plus,
}

#[derive(Debug, Clone)]
struct Node {
    atom: Atom,
    quant: Quant,
}

fn escape_class(c: char) -> Option<(bool, Vec<(char, char)>)> {
    let digits = vec![('0', '9')];
    let space = vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')];
    let word = vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
    Some(match c {
        'd' => (false, digits),
        'D' => (true, digits),
        's' => (false, space),
        'S' => (true, space),
        'w' => (false, word),
        'W' => (true, word),
        _ => return None,
    })
}

fn escape_char(c: char) -> Result<char, SyntaxError> {
    Ok(match c {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'f' => '\x0c',
        'v' => '\x0b',
        'a' => '\x07',
        c if c.is_ascii_alphanumeric() => {
            return Err(SyntaxError::Pattern(format!(
                "invalid escape sequence: \\{c}"
            )))
        }
        c => c,
    })
}

fn parse_regex(re: &str) -> Result<Vec<Node>, SyntaxError> {
    let chars: Vec<char> = re.chars().collect();
    let mut pos = 0;
    let nodes = parse_seq(&chars, &mut pos, false)?;
    if pos != chars.len() {
        return Err(SyntaxError::Pattern("unexpected )".into()));
    }
    Ok(nodes)
}

fn parse_seq(c: &[char], pos: &mut usize, in_group: bool) -> Result<Vec<Node>, SyntaxError> {
    let mut nodes: Vec<Node> = Vec::new();
    while *pos < c.len() {
        let ch = c[*pos];
        *pos += 1;
        let atom = match ch {
            ')' if in_group => return Ok(nodes),
            ')' => return Err(SyntaxError::Pattern("unexpected )".into())),
            '(' => {
                let inner = parse_seq(c, pos, true)?;
                if c.get(*pos - 1) != Some(&')') {
                    return Err(SyntaxError::Pattern("missing closing )".into()));
                }
                Atom::Group(inner)
            }
            '^' => Atom::Start,
            '$' => Atom::End,
            '.' => Atom::Dot,
            '\\' => {
                let Some(&e) = c.get(*pos) else {
                    return Err(SyntaxError::Pattern(
                        "trailing backslash at end of expression".into(),
                    ));
                };
                *pos += 1;
                match escape_class(e) {
                    Some((negated, ranges)) => Atom::Class { negated, ranges },
                    None => Atom::Lit(escape_char(e)?),
                }
            }
            '[' => parse_class(c, pos)?,
            '*' | '+' | '?' => {
                let Some(last) = nodes.last_mut().filter(|n| n.quant == Quant::One) else {
                    return Err(SyntaxError::Pattern(format!(
                        "missing argument to repetition operator: {ch}"
                    )));
                };
                last.quant = match ch {
                    '*' => Quant::Star,
                    '+' => Quant::Plus,
                    _ => Quant::Opt,
                };
                continue;
            }
            c => Atom::Lit(c),
        };
        nodes.push(Node {
            atom,
            quant: Quant::One,
        });
    }
    if in_group {
        return Err(SyntaxError::Pattern("missing closing )".into()));
    }
    Ok(nodes)
}

fn parse_class(c: &[char], pos: &mut usize) -> Result<Atom, SyntaxError> {
    let mut negated = false;
    if c.get(*pos) == Some(&'^') {
        negated = true;
        *pos += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let Some(&ch) = c.get(*pos) else {
            return Err(SyntaxError::Pattern("missing closing ]".into()));
        };
        if ch == ']' && !first {
            *pos += 1;
            break;
        }
        first = false;
        *pos += 1;
        let lo = if ch == '\\' {
            let Some(&e) = c.get(*pos) else {
                return Err(SyntaxError::Pattern("missing closing ]".into()));
            };
            *pos += 1;
            if let Some((neg, rs)) = escape_class(e) {
                if neg {
                    return Err(SyntaxError::Pattern(
                        "negated escape class inside [] is not supported".into(),
                    ));
                }
                ranges.extend(rs);
                continue;
            }
            escape_char(e)?
        } else {
            ch
        };
        let mut hi = lo;
        if c.get(*pos) == Some(&'-') && c.get(*pos + 1).is_some_and(|&n| n != ']') {
            *pos += 1;
            let h = c[*pos];
            *pos += 1;
            hi = if h == '\\' {
                let Some(&e) = c.get(*pos) else {
                    return Err(SyntaxError::Pattern("missing closing ]".into()));
                };
                *pos += 1;
                escape_char(e)?
            } else {
                h
            };
            if hi < lo {
                return Err(SyntaxError::Pattern(format!(
                    "invalid character class range: {lo}-{hi}"
                )));
            }
        }
        ranges.push((lo, hi));
    }
    Ok(Atom::Class { negated, ranges })
}

/// Go's `MatchString`: a match anywhere (the patterns are anchored with `^...$`).
fn regex_search(nodes: &[Node], s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    (0..=chars.len()).any(|start| match_seq(nodes, &chars, start, &|_| true))
}

fn match_seq(nodes: &[Node], s: &[char], i: usize, k: &dyn Fn(usize) -> bool) -> bool {
    let Some((node, rest)) = nodes.split_first() else {
        return k(i);
    };
    let next = |j: usize| match_seq(rest, s, j, k);
    match node.quant {
        Quant::One => match_atom(&node.atom, s, i, &next),
        Quant::Opt => match_atom(&node.atom, s, i, &next) || next(i),
        Quant::Star => match_star(&node.atom, s, i, &next),
        Quant::Plus => match_atom(&node.atom, s, i, &|j| match_star(&node.atom, s, j, &next)),
    }
}

fn match_star(atom: &Atom, s: &[char], i: usize, k: &dyn Fn(usize) -> bool) -> bool {
    match_atom(atom, s, i, &|j| j > i && match_star(atom, s, j, k)) || k(i)
}

fn match_atom(atom: &Atom, s: &[char], i: usize, k: &dyn Fn(usize) -> bool) -> bool {
    match atom {
        Atom::Lit(c) => s.get(i) == Some(c) && k(i + 1),
        Atom::Dot => s.get(i).is_some_and(|&c| c != '\n') && k(i + 1),
        Atom::Class { negated, ranges } => {
            s.get(i)
                .is_some_and(|&c| ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated)
                && k(i + 1)
        }
        Atom::Group(nodes) => match_seq(nodes, s, i, k),
        Atom::Start => i == 0 && k(i),
        Atom::End => i == s.len() && k(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> Ignore {
        let i = Ignore::parse(text);
        assert!(i.errors().is_empty(), "{:?}", i.errors());
        i
    }

    #[test]
    fn go_clean_matches_filepath_clean() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("./foo", "foo"),
            ("foo/", "foo"),
            ("foo//bar", "foo/bar"),
            ("foo/./bar", "foo/bar"),
            ("foo/../bar", "bar"),
            ("foo/..", "."),
            ("../x", "../x"),
            ("../../x/..", "../.."),
            ("/../x", "/x"),
            ("/", "/"),
            ("//a//b/", "/a/b"),
            ("a/b/../../..", ".."),
        ] {
            assert_eq!(go_clean(input), want, "{input}");
        }
    }

    #[test]
    fn read_all_cleans_and_skips_comments() {
        let got = read_all(
            "\u{feff}# comment\n\n  \n/foo\n./bar/\n!/baz\n! qux \n../x\n  # not a comment\na//b/../c\r\n",
        );
        assert_eq!(
            got,
            vec![
                "foo",
                "bar",
                "!baz",
                "!qux",
                "../x",
                "# not a comment",
                "a/c"
            ]
        );
    }

    #[test]
    fn docker_doc_example_temp() {
        let i = ig("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
        assert!(i.is_excluded("somedir/temporary.txt"));
        assert!(i.is_excluded("somedir/temp"));
        assert!(i.is_excluded("somedir/subdir/temporary.txt"));
        assert!(i.is_excluded("tempa"));
        assert!(i.is_excluded("tempb"));
        assert!(
            !i.is_excluded("temporary.txt"),
            "*/temp* needs one directory level"
        );
        assert!(
            !i.is_excluded("temp"),
            "temp? needs exactly one more character"
        );
        assert!(!i.is_excluded("tempab"));
        assert!(
            !i.is_excluded("a/b/c/temp.txt"),
            "three levels deep is not matched"
        );
        assert!(!i.is_excluded("somedir/other.txt"));
    }

    #[test]
    fn double_star_matches_any_depth() {
        let i = ig("**/*.go\n");
        assert!(i.is_excluded("main.go"));
        assert!(i.is_excluded("a/b/c/x.go"));
        assert!(!i.is_excluded("a/b/c/x.gox"));
        assert!(!i.is_excluded("a/go"));

        let i = ig("**/node_modules\n");
        assert!(i.is_excluded("node_modules"));
        assert!(i.is_excluded("web/node_modules"));
        assert!(i.is_excluded("web/node_modules/react/index.js"));
        assert!(!i.is_excluded("web/node_modules_old"));

        let i = ig("build/**\n");
        assert!(i.is_excluded("build/x"));
        assert!(i.is_excluded("build/a/b"));
        assert!(!i.is_excluded("builder"));

        let i = ig("a/**/b\n");
        assert!(i.is_excluded("a/b"));
        assert!(i.is_excluded("a/x/y/b"));
        assert!(!i.is_excluded("a/x/y/c"));

        let i = ig("**\n");
        assert!(i.is_excluded("anything"));
        assert!(i.is_excluded("deep/down/file"));
    }

    #[test]
    fn exception_after_wildcard() {
        let i = ig("*.md\n!README.md\n");
        assert!(i.is_excluded("CHANGES.md"));
        assert!(!i.is_excluded("README.md"));
        assert!(!i.is_excluded("main.rs"));
        assert!(!i.is_excluded("docs/x.md"), "*.md only matches at the root");
    }

    #[test]
    fn readme_secret_reexcluded_then_reincluded() {
        let i = ig("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(i.is_excluded("CHANGES.md"));
        assert!(!i.is_excluded("README.md"));
        assert!(!i.is_excluded("README-public.md"));
        assert!(i.is_excluded("README-secret.md"));

        let i = ig("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(
            !i.is_excluded("README-secret.md"),
            "the last matching pattern wins"
        );
        assert!(i.is_excluded("CHANGES.md"));
    }

    #[test]
    fn leading_slash_dot_and_dotdot() {
        let i = ig("/foo\n./bar\nbaz/../qux\n../outside\n");
        assert!(i.is_excluded("foo"));
        assert!(i.is_excluded("foo/inner.txt"));
        assert!(i.is_excluded("bar"));
        assert!(i.is_excluded("qux"));
        assert!(!i.is_excluded("baz"));
        assert!(!i.is_excluded("outside"));
        assert_eq!(
            i.patterns().collect::<Vec<_>>(),
            vec![
                ("foo", false),
                ("bar", false),
                ("qux", false),
                ("../outside", false)
            ]
        );
        // Paths given to the matcher are cleaned too.
        assert!(i.is_excluded("./foo/x"));
        assert!(i.is_excluded("/bar"));
        assert!(!i.is_excluded("."));
        assert!(!i.is_excluded(""));
    }

    #[test]
    fn directory_pattern_excludes_children_unless_reincluded() {
        let i = ig("docs\n!docs/keep.txt\n");
        assert!(i.is_excluded("docs"));
        assert!(i.is_excluded("docs/a.txt"));
        assert!(i.is_excluded("docs/sub/b.txt"));
        assert!(!i.is_excluded("docs/keep.txt"));
        assert!(i.may_include_under("docs"));
        assert!(
            !i.may_include_under("docs/sub"),
            "no exception lies under docs/sub"
        );
        assert!(i.may_include_under("src"), "not excluded at all");
    }

    #[test]
    fn may_include_under_rules() {
        let i = ig("vendor\n");
        assert!(!i.may_include_under("vendor"));
        assert!(i.may_include_under("src"));

        let i = ig("vendor\n!vendor/keep/a.txt\n");
        assert!(i.may_include_under("vendor"));
        assert!(i.may_include_under("vendor/keep"));
        assert!(!i.may_include_under("vendor/other"));

        // An exception with wildcards could match anywhere: never skip.
        let i = ig("vendor\n!**/*.keep\n");
        assert!(i.may_include_under("vendor"));
        assert!(!i.is_excluded("vendor/x/a.keep"));
        assert!(i.is_excluded("vendor/x/a.txt"));

        // Re-including the directory itself.
        let i = ig("*\n!src\n");
        assert!(i.may_include_under("src"));
        assert!(!i.is_excluded("src/main.rs"));
        assert!(i.is_excluded("target/debug/x"));
    }

    #[test]
    fn everything_but_one_dir() {
        let i = ig("*\n!app\n!requirements.txt\n");
        assert!(i.is_excluded("Dockerfile"));
        assert!(i.is_excluded("data/big.bin"));
        assert!(!i.is_excluded("app"));
        assert!(!i.is_excluded("app/main.py"));
        assert!(!i.is_excluded("app/pkg/mod.py"));
        assert!(!i.is_excluded("requirements.txt"));
    }

    #[test]
    fn question_mark_and_classes() {
        let i = ig("file?.txt\n[abc].log\n[^x]y\nv[0-9]\n");
        assert!(i.is_excluded("file1.txt"));
        assert!(!i.is_excluded("file12.txt"));
        assert!(!i.is_excluded("file/.txt"), "? does not match /");
        assert!(i.is_excluded("a.log"));
        assert!(!i.is_excluded("d.log"));
        assert!(i.is_excluded("zy"));
        assert!(!i.is_excluded("xy"));
        assert!(i.is_excluded("v7"));
        assert!(!i.is_excluded("va"));
    }

    #[test]
    fn star_does_not_cross_directories() {
        let i = ig("*.pyc\nsrc/*.o\n");
        assert!(i.is_excluded("x.pyc"));
        assert!(!i.is_excluded("pkg/x.pyc"));
        assert!(i.is_excluded("src/a.o"));
        assert!(!i.is_excluded("src/sub/a.o"));
    }

    #[test]
    fn escapes_and_regex_metacharacters_are_literal() {
        let i = ig("a\\*b\nweird(1).txt\nx+y\n$HOME\n{a,b}\n");
        assert!(i.is_excluded("a*b"));
        assert!(!i.is_excluded("axxb"));
        assert!(i.is_excluded("weird(1).txt"));
        assert!(!i.is_excluded("weird(1)xtxt"));
        assert!(i.is_excluded("x+y"));
        assert!(!i.is_excluded("xxy"));
        assert!(i.is_excluded("$HOME"));
        assert!(i.is_excluded("{a,b}"));
        assert!(!i.is_excluded("a"));
    }

    #[test]
    fn suffix_match_quirk() {
        // "**" at the start followed by a literal is a suffix test, as in patternmatcher.
        let i = ig("**foo\n");
        assert!(i.is_excluded("foo"));
        assert!(i.is_excluded("barfoo"));
        assert!(i.is_excluded("a/b/foo"));
        assert!(!i.is_excluded("foobar"));
    }

    #[test]
    fn invalid_patterns_are_reported() {
        assert_eq!(
            Ignore::try_parse("ok\n!\n").unwrap_err().to_string(),
            "illegal exclusion pattern: \"!\""
        );
        assert!(Ignore::try_parse("[abc\n")
            .unwrap_err()
            .to_string()
            .contains("syntax error in pattern"));
        assert!(Ignore::try_parse("a\\\n").is_err(), "trailing backslash");
        assert!(Ignore::try_parse("[z-a]\n").is_err(), "reversed range");
        // The lenient parser keeps the valid ones.
        let i = Ignore::parse("[abc\nvalid\n");
        assert_eq!(i.errors().len(), 1);
        assert!(i.is_excluded("valid"));
        assert!(!i.is_excluded("[abc"));
    }

    #[test]
    fn empty_file_excludes_nothing() {
        let i = ig("# only comments\n\n");
        assert!(i.is_empty());
        assert!(!i.is_excluded("anything"));
        assert!(i.may_include_under("anything"));
    }

    #[test]
    fn find_prefers_dockerfile_specific_ignore() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path();
        assert_eq!(find(ctx, "Dockerfile"), None);
        std::fs::write(ctx.join(".dockerignore"), "x\n").unwrap();
        assert_eq!(find(ctx, "Dockerfile"), Some(ctx.join(".dockerignore")));
        std::fs::write(ctx.join("Containerfile.dockerignore"), "y\n").unwrap();
        assert_eq!(
            find(ctx, "Containerfile"),
            Some(ctx.join("Containerfile.dockerignore"))
        );
        assert_eq!(find(ctx, "Dockerfile"), Some(ctx.join(".dockerignore")));
        std::fs::create_dir(ctx.join("build")).unwrap();
        std::fs::write(ctx.join("build/app.Dockerfile.dockerignore"), "z\n").unwrap();
        assert_eq!(
            find(ctx, "build/app.Dockerfile"),
            Some(ctx.join("build/app.Dockerfile.dockerignore"))
        );
        let abs = ctx.join("build/app.Dockerfile");
        assert_eq!(
            find(ctx, abs.to_str().unwrap()),
            Some(ctx.join("build/app.Dockerfile.dockerignore"))
        );
    }

    #[test]
    fn parent_results_semantics_of_buildkit() {
        // With parent results, an exception matching only a parent directory but
        // skipped while evaluating that directory does not re-include the child
        // (fsutil's walk); the later general pattern still applies to children.
        let i = ig("foo/x\n!foo\n");
        assert!(!i.is_excluded("foo"));
        assert!(i.is_excluded("foo/x"));
        // The usual ordering works as expected.
        let i = ig("foo\n!foo/x\n");
        assert!(i.is_excluded("foo/y"));
        assert!(!i.is_excluded("foo/x"));
        assert!(!i.is_excluded("foo/x/deeper"));
    }
}
