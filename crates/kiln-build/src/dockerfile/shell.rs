//! Variable substitution with the rules of BuildKit's `shell.Lex` (the "shell-like"
//! word processing Docker applies to instruction arguments, not a real shell).
//!
//! Supported: `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`,
//! `${VAR+word}`, `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`, `${VAR##pat}`,
//! `${VAR%pat}`, `${VAR%%pat}`, `${VAR/pat/repl}`, `${VAR//pat/repl}`; single quotes
//! (literal), double quotes (only `$`, the escape token and `"` are special), the escape
//! token (`\` or `` ` ``) escaping the next character. Anything else after `${VAR` is an
//! error (`unsupported modifier (:=) in substitution`).

use super::SyntaxError;

/// Options of one lexing pass; the public entry points use the defaults.
#[derive(Clone, Copy, Default)]
pub(crate) struct Mode {
    /// Keep quote characters in the output (used to detect quoted heredoc delimiters).
    pub raw_quotes: bool,
    /// Keep escape tokens in the output.
    pub raw_escapes: bool,
    /// Leave `$VAR` of unset variables as written instead of substituting "".
    pub skip_unset: bool,
    /// Quotes are ordinary characters (heredoc bodies).
    pub skip_quotes: bool,
}

pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    mode: Mode,
    lookup: Lookup<'a>,
}

/// Builds the list of words the way BuildKit's `wordsStruct` does: text from quotes and
/// escapes never splits; literal text and substituted values split on whitespace.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

/// Runs one lexing pass: the processed string and its words.
pub(crate) fn process(
    text: &str,
    escape: char,
    mode: Mode,
    lookup: Lookup<'_>,
) -> Result<(String, Vec<String>), SyntaxError> {
    let mut lx = Lexer {
        chars: text.chars().collect(),
        pos: 0,
        escape,
        mode,
        lookup,
    };
    let raw = mode.raw_escapes;
    lx.process_stop_on(None, raw)
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), SyntaxError> {
        let saved = self.mode.raw_escapes;
        self.mode.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.mode.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), SyntaxError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            let quotes = !self.mode.skip_quotes;
            if ch == '$' {
                let tmp = self.process_dollar()?;
                result.push_str(&tmp);
                words.add_string(&tmp);
            } else if quotes && ch == '\'' {
                let tmp = self.process_single_quote()?;
                result.push_str(&tmp);
                words.add_raw_string(&tmp);
            } else if quotes && ch == '"' {
                let tmp = self.process_double_quote()?;
                result.push_str(&tmp);
                words.add_raw_string(&tmp);
            } else {
                let ch = self.next().unwrap_or_default();
                if ch == self.escape {
                    if self.mode.raw_escapes {
                        words.add_raw_char(ch);
                        result.push(ch);
                    }
                    // An escape token at the very end is dropped.
                    let Some(next) = self.next() else { break };
                    words.add_raw_char(next);
                    result.push(next);
                } else {
                    words.add_char(ch);
                    result.push(ch);
                }
            }
        }
        if let Some(stop) = stop {
            return Err(Self::unclosed(&stop.to_string()));
        }
        Ok((result, words.finish()))
    }

    /// Adds `quote` to `word` in raw-quotes mode (words keep their quotes there).
    fn keep_quote(&self, word: &mut String, quote: char) {
        if self.mode.raw_quotes {
            word.push(quote);
        }
    }

    /// The error of a statement that ends inside a quote or substitution: `what` was not found.
    fn unclosed(what: &str) -> SyntaxError {
        SyntaxError::Substitution(format!(
            "unexpected end of statement while looking for matching {what}"
        ))
    }

    fn process_single_quote(&mut self) -> Result<String, SyntaxError> {
        let mut result = String::new();
        self.next();
        self.keep_quote(&mut result, '\'');
        loop {
            match self.next() {
                None => return Err(Self::unclosed("single-quote")),
                Some('\'') => {
                    self.keep_quote(&mut result, '\'');
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, SyntaxError> {
        let mut result = String::new();
        self.next();
        self.keep_quote(&mut result, '"');
        loop {
            match self.peek() {
                None => return Err(Self::unclosed("double-quote")),
                Some('"') => {
                    self.next();
                    self.keep_quote(&mut result, '"');
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.escape {
                        if self.mode.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // An escape token right before the end is ignored.
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                ch = c;
                                self.next();
                            }
                            // Any other escaped character keeps its escape token.
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn get_env(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// The word of a `${NAME<op>word}` substitution, read up to its closing `}`.
    fn word_to_brace(&mut self, raw: bool) -> Result<String, SyntaxError> {
        match self.process_stop_on(Some('}'), raw) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(missing_brace()),
            Err(e) => Err(e),
        }
    }

    fn process_dollar(&mut self) -> Result<String, SyntaxError> {
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.mode.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // '{'
        match self.peek() {
            None => return Err(missing_brace()),
            Some('{' | '}' | ':') => {
                return Err(SyntaxError::Substitution(
                    "syntax error: bad substitution".into(),
                ))
            }
            _ => {}
        }
        let name = self.process_name();
        let Some(mut ch) = self.next() else {
            return Err(missing_brace());
        };
        let mut chs = ch.to_string();
        match ch {
            '}' => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.mode.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = ch == ':';
                if null_is_unset {
                    match self.next() {
                        Some(c) => {
                            ch = c;
                            chs.push(c);
                        }
                        None => return Err(missing_brace()),
                    }
                }
                let raw = ch == '#' || ch == '%';
                if null_is_unset && raw {
                    return Err(unsupported_modifier(&chs));
                }
                let word = self.word_to_brace(raw)?;
                let value = self.get_env(&name);
                if self.mode.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let unset = match &value {
                    None => true,
                    Some(v) => null_is_unset && v.is_empty(),
                };
                match ch {
                    '-' => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    // `${VAR:x}`: BuildKit reads the word first, then rejects the modifier.
                    c if !matches!(c, '?' | '#' | '%') => Err(unsupported_modifier(&chs)),
                    '?' => match value {
                        None => Err(SyntaxError::Substitution(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        ))),
                        Some(v) if null_is_unset && v.is_empty() => {
                            Err(SyntaxError::Substitution(format!(
                                "{name}: {}",
                                if word.is_empty() {
                                    "is not allowed to be empty"
                                } else {
                                    &word
                                }
                            )))
                        }
                        Some(v) => Ok(v),
                    },
                    _ => {
                        let value = value.unwrap_or_default();
                        let (greedy, pat) = match word.strip_prefix(ch) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let pat = substitution_pattern(&pat)?;
                        Ok(if ch == '#' {
                            trim_prefix(&pat, &value, greedy)
                        } else {
                            trim_suffix(&pat, &value, greedy)
                        })
                    }
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let (pattern, _) = self.process_stop_on(Some('/'), true)?;
                let replacement = self.word_to_brace(true)?;
                let value = self.get_env(&name);
                if self.mode.skip_unset && value.is_none() {
                    let slash = if all { "//" } else { "/" };
                    return Ok(format!("${{{name}{slash}{pattern}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let pat = substitution_pattern(&pattern)?;
                Ok(replace(&pat, &value, &replacement, all))
            }
            _ => Err(unsupported_modifier(&chs)),
        }
    }
}

fn missing_brace() -> SyntaxError {
    SyntaxError::Substitution("syntax error: missing '}'".into())
}

/// `chs`: the modifier as written (`:=`, `^^`...).
fn unsupported_modifier(chs: &str) -> SyntaxError {
    SyntaxError::Substitution(format!("unsupported modifier ({chs}) in substitution"))
}

/// The pattern of `${VAR#pat}`, `${VAR%pat}` or `${VAR/pat/word}`.
fn substitution_pattern(pat: &str) -> Result<Vec<Glob>, SyntaxError> {
    parse_glob(pat).map_err(|e| {
        SyntaxError::Substitution(format!("invalid pattern ({pat}) in substitution: {e}"))
    })
}

/// One element of a shell pattern as used by `${VAR#pat}` and friends.
#[derive(Debug, Clone)]
enum Glob {
    Lit(char),
    Any,
    Star,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

fn parse_glob(pat: &str) -> Result<Vec<Glob>, SyntaxError> {
    let chars: Vec<char> = pat.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push(Glob::Star),
            '?' => out.push(Glob::Any),
            '\\' => match chars.get(i) {
                Some(&n) => {
                    out.push(Glob::Lit(n));
                    i += 1;
                }
                None => out.push(Glob::Lit('\\')),
            },
            '[' => {
                let mut j = i;
                let negated = matches!(chars.get(j), Some('!' | '^'));
                if negated {
                    j += 1;
                }
                let mut items = Vec::new();
                let mut first = true;
                loop {
                    let Some(&c) = chars.get(j) else {
                        return Err(SyntaxError::Substitution("missing closing ]".into()));
                    };
                    if c == ']' && !first {
                        j += 1;
                        break;
                    }
                    first = false;
                    let mut lo = c;
                    j += 1;
                    if lo == '\\' {
                        lo = *chars.get(j).ok_or_else(|| {
                            SyntaxError::Substitution("trailing backslash".into())
                        })?;
                        j += 1;
                    }
                    let mut hi = lo;
                    if chars.get(j) == Some(&'-') && chars.get(j + 1).is_some_and(|&c| c != ']') {
                        hi = chars[j + 1];
                        j += 2;
                        if hi == '\\' {
                            hi = *chars.get(j).ok_or_else(|| {
                                SyntaxError::Substitution("trailing backslash".into())
                            })?;
                            j += 1;
                        }
                        if hi < lo {
                            return Err(SyntaxError::Substitution(format!(
                                "invalid character class range: {lo}-{hi}"
                            )));
                        }
                    }
                    items.push((lo, hi));
                }
                out.push(Glob::Class { negated, items });
                i = j;
            }
            c => out.push(Glob::Lit(c)),
        }
    }
    Ok(out)
}

fn glob_match(pat: &[Glob], s: &[char]) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some((Glob::Star, rest)) => (0..=s.len()).any(|k| glob_match(rest, &s[k..])),
        Some((g, rest)) => match s.split_first() {
            None => false,
            Some((&c, srest)) => {
                let ok = match g {
                    Glob::Lit(l) => *l == c,
                    Glob::Any => true,
                    Glob::Class { negated, items } => {
                        items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                    }
                    Glob::Star => unreachable!(),
                };
                ok && glob_match(rest, srest)
            }
        },
    }
}

fn trim_prefix(pat: &[Glob], value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut ends: Vec<usize> = (0..=chars.len()).collect();
    if greedy {
        ends.reverse();
    }
    for end in ends {
        if glob_match(pat, &chars[..end]) {
            return chars[end..].iter().collect();
        }
    }
    value.to_string()
}

fn trim_suffix(pat: &[Glob], value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut starts: Vec<usize> = (0..=chars.len()).collect();
    if !greedy {
        starts.reverse();
    }
    for start in starts {
        if glob_match(pat, &chars[start..]) {
            return chars[..start].iter().collect();
        }
    }
    value.to_string()
}

/// `${VAR/pat/repl}`: the leftmost, longest match is replaced (every non-overlapping
/// one with `//`).
fn replace(pat: &[Glob], value: &str, repl: &str, all: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut replaced = false;
    let mut prev_end = None;
    while i <= chars.len() {
        if all || !replaced {
            let found = (i..=chars.len())
                .rev()
                .find(|&e| glob_match(pat, &chars[i..e]));
            // An empty match right after the previous match is skipped, as in Go.
            if let Some(end) = found.filter(|&e| !(e == i && prev_end == Some(i))) {
                out.push_str(repl);
                replaced = true;
                prev_end = Some(end);
                if end > i {
                    i = end;
                    continue;
                }
            }
        }
        if i < chars.len() {
            out.push(chars[i]);
        }
        i += 1;
    }
    out
}
