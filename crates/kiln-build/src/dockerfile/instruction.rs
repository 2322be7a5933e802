//! From one joined instruction line to a [`Kind`]: command splitting, builder flags,
//! JSON arrays, word splitting and each instruction's argument rules (BuildKit's
//! `parser/line_parsers.go` and `instructions/parse.go`).

use std::collections::HashMap;

use super::shell::{self, Mode};
use super::{ArgDecl, Command, CopyArgs, Healthcheck, Heredoc, Kind, SyntaxError};

const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// An instruction line split into keyword, builder flags and the rest.
pub(crate) struct Head {
    /// The keyword as written.
    pub cmd: String,
    pub lower: String,
    /// `--name[=value]` words, quotes removed.
    pub flags: Vec<String>,
    /// The arguments after the flags, trimmed.
    pub rest: String,
}

pub(crate) enum Parsed {
    From {
        base: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Kind(Kind),
}

fn is_re_ws(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Whitespace-separated words, no quote handling (`[\t\v\f\r ]+`).
fn split_ws(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_re_ws)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub(crate) fn split_line(line: &str) -> Result<Head, SyntaxError> {
    let line = line.trim();
    let (cmd, args) = match line.find(is_re_ws) {
        Some(i) => (&line[..i], line[i..].trim_start_matches(is_re_ws)),
        None => (line, ""),
    };
    let (rest, flags) = extract_builder_flags(args);
    Ok(Head {
        cmd: cmd.to_string(),
        lower: cmd.to_ascii_lowercase(),
        flags,
        rest: rest.trim().to_string(),
    })
}

impl Head {
    /// Whether the lines after this one may hold heredoc bodies: RUN, COPY and ADD (also
    /// as ONBUILD triggers) in their non-JSON form.
    pub fn can_contain_heredoc(&self) -> Result<bool, SyntaxError> {
        match self.lower.as_str() {
            "run" | "copy" | "add" => Ok(json_array(&self.rest)?.is_none()),
            "onbuild" if !self.rest.is_empty() => split_line(&self.rest)?.can_contain_heredoc(),
            _ => Ok(false),
        }
    }
}

/// `Ok(Some(..))` for a JSON array of strings, `Ok(None)` when the text is not a JSON
/// array (the shell form applies), an error for a JSON array holding non-strings.
fn json_array(rest: &str) -> Result<Option<Vec<String>>, SyntaxError> {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(t) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(SyntaxError::Instruction(NOT_STRING_ARRAY.to_string())),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Leading `--flag` words (BuildKit's `extractBuilderFlags`): returns the rest of the
/// line and the flag words with quotes and backslash escapes removed. A lone `--` ends the
/// flags.
fn extract_builder_flags(line: &str) -> (String, Vec<String>) {
    split_words(line, Words::Flags)
}

/// BuildKit's `parseWords`: splits on whitespace outside quotes, keeping quotes and
/// escape tokens in the words.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    split_words(rest, Words::All { escape }).1
}

/// Which words [`split_words`] takes, and what it keeps of their quotes and escapes.
#[derive(Clone, Copy, PartialEq)]
enum Words {
    /// Leading `--` words only (a lone `--` ends them and is dropped); quotes and `\`
    /// escapes removed, `\` escaping inside both kinds of quotes.
    Flags,
    /// Every word; quotes and escape tokens kept, nothing escaped inside `'` quotes.
    All { escape: char },
}

/// The word splitter behind [`extract_builder_flags`] and [`parse_words`]: whitespace
/// outside quotes separates words, a quoted empty word counts. Returns the text left
/// after the flags (always empty for [`Words::All`]) and the words.
fn split_words(text: &str, which: Words) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let flags = which == Words::Flags;
    let (escape, keep) = match which {
        Words::Flags => ('\\', false),
        Words::All { escape } => (escape, true),
    };
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let rest_from = |pos: usize| chars[pos..].iter().collect::<String>();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            if flags && (ch != '-' || pos + 1 == n || chars[pos + 1] != '-') {
                return (rest_from(pos), words);
            }
            phase = Phase::Word;
        }
        if pos == n {
            if !(flags && word == "--") && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        let mut c = ch;
        let single_quoted = phase == Phase::Quote && quote == '\'';
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if flags && word == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                if !keep {
                    pos += 1;
                    continue;
                }
            }
        } else if ch == quote {
            phase = Phase::Word;
            if !keep {
                pos += 1;
                continue;
            }
        }
        if ch == escape && (flags || !single_quoted) {
            if pos + 1 == n {
                // A trailing escape token is dropped.
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            if keep {
                word.push(ch);
            }
            pos += 1;
            c = chars[pos];
        }
        word.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// Parses one word as a heredoc opener (`^(\d*)<<(-?)([^<]*)$`); the returned heredoc
/// has an empty body.
pub(crate) fn parse_heredoc_word(word: &str) -> Result<Option<Heredoc>, SyntaxError> {
    let r = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(r) = r.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, r) = match r.strip_prefix('-') {
        Some(x) => (true, x),
        None => (false, r),
    };
    if r.is_empty() || r.contains('<') {
        return Ok(None);
    }
    let none = |_: &str| None;
    let plain = Mode {
        skip_unset: true,
        ..Mode::default()
    };
    let (_, words) = shell::process(r, '\\', plain, &none)?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = Mode {
        raw_quotes: true,
        ..plain
    };
    let (_, raw_words) = shell::process(r, '\\', raw, &none)?;
    if raw_words.len() != words.len() {
        return Err(SyntaxError::Instruction(format!(
            "internal lexing of heredoc produced inconsistent results: {r}"
        )));
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '"' || c == '\'').count();
    let expand = quotes(&words[0]) == quotes(&raw_words[0]);
    Ok(Some(Heredoc {
        name: words[0].clone(),
        content: String::new(),
        expand,
        chomp_tabs: chomp,
    }))
}

/// The heredocs a line opens, in order (bodies empty).
pub(crate) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, SyntaxError> {
    let mode = Mode {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
        skip_quotes: false,
    };
    let words = shell::process(line, '\\', mode, &|_| None)
        .map(|(_, w)| w)
        .unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc_word(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

#[derive(Clone, Copy, PartialEq)]
enum FlagType {
    Bool,
    Str,
    Strings,
}

#[derive(Debug, Clone)]
enum FlagValue {
    Bool(bool),
    Str(String),
    Strings(Vec<String>),
}

/// Validated builder flags (BuildKit's `BFlags.Parse`).
struct Flags(HashMap<&'static str, FlagValue>);

impl Flags {
    fn parse(raw: &[String], spec: &[(&'static str, FlagType)]) -> Result<Flags, SyntaxError> {
        let mut used: HashMap<&'static str, FlagValue> = HashMap::new();
        for arg in raw {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(SyntaxError::Instruction(format!(
                    "arg should start with -- : {arg}"
                )));
            };
            if body.is_empty() {
                break;
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(key, ty)) = spec.iter().find(|(n, _)| *n == name) else {
                return Err(SyntaxError::Instruction(format!("unknown flag: {name}")));
            };
            if used.contains_key(key) && ty != FlagType::Strings {
                return Err(SyntaxError::Instruction(format!(
                    "duplicate flag specified: {name}"
                )));
            }
            match ty {
                FlagType::Bool => {
                    if value == Some("") {
                        return Err(SyntaxError::Instruction(format!(
                            "missing a value on flag: {name}"
                        )));
                    }
                    let v = match value.map(str::to_ascii_lowercase).as_deref() {
                        None | Some("true") => true,
                        Some("false") => false,
                        Some(_) => {
                            return Err(SyntaxError::Instruction(format!(
                                "expecting boolean value for flag {name}, not: {}",
                                value.unwrap_or_default()
                            )))
                        }
                    };
                    used.insert(key, FlagValue::Bool(v));
                }
                FlagType::Str => {
                    let Some(v) = value else {
                        return Err(SyntaxError::Instruction(format!(
                            "missing a value on flag: {name}"
                        )));
                    };
                    used.insert(key, FlagValue::Str(v.to_string()));
                }
                FlagType::Strings => {
                    let Some(v) = value else {
                        return Err(SyntaxError::Instruction(format!(
                            "missing a value on flag: {name}"
                        )));
                    };
                    match used
                        .entry(key)
                        .or_insert_with(|| FlagValue::Strings(Vec::new()))
                    {
                        FlagValue::Strings(list) => list.push(v.to_string()),
                        _ => unreachable!("flag types are fixed per name"),
                    }
                }
            }
        }
        Ok(Flags(used))
    }

    fn string(&self, name: &str) -> Option<String> {
        match self.0.get(name) {
            Some(FlagValue::Str(s)) => Some(s.clone()),
            _ => None,
        }
    }

    fn strings(&self, name: &str) -> Vec<String> {
        match self.0.get(name) {
            Some(FlagValue::Strings(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    fn bool(&self, name: &str) -> Option<bool> {
        match self.0.get(name) {
            Some(FlagValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

fn no_flags(head: &Head) -> Result<(), SyntaxError> {
    Flags::parse(&head.flags, &[]).map(|_| ())
}

fn maybe_json_command(rest: &str) -> Result<Command, SyntaxError> {
    if rest.is_empty() {
        return Ok(Command::Shell(String::new()));
    }
    Ok(match json_array(rest)? {
        Some(v) => Command::Exec(v),
        None => Command::Shell(rest.to_string()),
    })
}

/// `ENV`/`LABEL` arguments: the legacy `KEY value...` form or `k=v k2=v2...`.
fn parse_name_val(
    rest: &str,
    cmd: &str,
    escape: char,
) -> Result<Vec<(String, String)>, SyntaxError> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Err(SyntaxError::Instruction(at_least_one(cmd)));
    }
    let pairs = if !words[0].contains('=') {
        let mut parts = rest.splitn(2, is_re_ws);
        let key = parts.next().unwrap_or_default();
        let value = parts
            .next()
            .map(|v| v.trim_start_matches(is_re_ws))
            .ok_or_else(|| SyntaxError::Instruction(format!("{cmd} must have two arguments")))?;
        vec![(key.to_string(), value.to_string())]
    } else {
        let mut pairs = Vec::new();
        for w in &words {
            let Some((k, v)) = w.split_once('=') else {
                return Err(SyntaxError::Instruction(format!(
                    "Syntax error - can't find = in \"{w}\". Must be of the form: name=value"
                )));
            };
            pairs.push((k.to_string(), v.to_string()));
        }
        pairs
    };
    if pairs.iter().any(|(k, _)| k.is_empty()) {
        return Err(SyntaxError::Instruction(format!(
            "{cmd} names can not be blank"
        )));
    }
    Ok(pairs)
}

fn duration_flag(flags: &Flags, name: &'static str) -> Result<Option<String>, SyntaxError> {
    let Some(v) = flags.string(name) else {
        return Ok(None);
    };
    if v.is_empty() {
        return Ok(None);
    }
    let nanos = parse_go_duration(&v)?;
    if nanos != 0 && nanos < 1_000_000 {
        return Err(SyntaxError::Instruction(format!(
            "Interval \"{name}\" cannot be less than 1ms"
        )));
    }
    Ok(Some(v))
}

fn healthcheck(head: &Head) -> Result<Kind, SyntaxError> {
    let rest = head.rest.as_str();
    if rest.is_empty() {
        return Err(SyntaxError::Instruction(at_least_one("HEALTHCHECK")));
    }
    let (typ, args) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim_start()),
        None => (rest, ""),
    };
    let typ = typ.to_ascii_uppercase();
    let json = if args.is_empty() {
        None
    } else {
        json_array(args)?
    };
    if typ == "NONE" {
        if !args.is_empty() {
            return Err(SyntaxError::Instruction(
                "HEALTHCHECK NONE takes no arguments".into(),
            ));
        }
        return Ok(Kind::Healthcheck(None));
    }
    use FlagType::Str;
    let flags = Flags::parse(
        &head.flags,
        &[
            ("interval", Str),
            ("timeout", Str),
            ("start-period", Str),
            ("start-interval", Str),
            ("retries", Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(SyntaxError::Instruction(format!(
            "Unknown type \"{typ}\" in HEALTHCHECK (try CMD)"
        )));
    }
    let test = match json {
        Some(v) if v.is_empty() => {
            return Err(SyntaxError::Instruction(
                "Missing command after HEALTHCHECK CMD".into(),
            ))
        }
        Some(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
        None if args.is_empty() => {
            return Err(SyntaxError::Instruction(
                "Missing command after HEALTHCHECK CMD".into(),
            ))
        }
        None => vec!["CMD-SHELL".to_string(), args.to_string()],
    };
    let retries = match flags.string("retries").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let n: i32 = s.parse().map_err(|_| {
                SyntaxError::Instruction(format!(
                    "strconv.ParseInt: parsing \"{s}\": invalid syntax"
                ))
            })?;
            if n < 0 {
                return Err(SyntaxError::Instruction(format!(
                    "--retries cannot be negative ({n})"
                )));
            }
            Some(n as u32)
        }
    };
    Ok(Kind::Healthcheck(Some(Healthcheck {
        test,
        interval: duration_flag(&flags, "interval")?,
        timeout: duration_flag(&flags, "timeout")?,
        start_period: duration_flag(&flags, "start-period")?,
        start_interval: duration_flag(&flags, "start-interval")?,
        retries,
    })))
}

fn copy_or_add(head: &Head, heredocs: &[Heredoc], add: bool) -> Result<CopyArgs, SyntaxError> {
    let cmd = if add { "ADD" } else { "COPY" };
    let (json, args) = match json_array(&head.rest)? {
        Some(v) => (true, v),
        None => (false, split_ws(&head.rest)),
    };
    if args.len() < 2 {
        return Err(SyntaxError::Instruction(format!(
            "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined."
        )));
    }
    use FlagType::{Bool, Str, Strings};
    let spec: &[(&'static str, FlagType)] = if add {
        &[
            ("chown", Str),
            ("chmod", Str),
            ("link", Bool),
            ("keep-git-dir", Bool),
            ("checksum", Str),
            ("exclude", Strings),
            ("unpack", Bool),
        ]
    } else {
        &[
            ("from", Str),
            ("chown", Str),
            ("chmod", Str),
            ("link", Bool),
            ("parents", Bool),
            ("exclude", Strings),
        ]
    };
    let flags = Flags::parse(&head.flags, spec)?;
    let (srcs, dest) = args.split_at(args.len() - 1);
    let dest = dest[0].clone();
    let mut sources = Vec::new();
    let mut docs = Vec::new();
    if !json && matches!(parse_heredoc_word(&dest), Ok(Some(_))) {
        return Err(SyntaxError::Instruction(format!(
            "{cmd} cannot accept a heredoc as a destination"
        )));
    }
    for src in srcs {
        match (json, parse_heredoc_word(src)) {
            (false, Ok(Some(h))) => {
                let body = heredocs.iter().find(|d| d.name == h.name);
                docs.push(Heredoc {
                    content: body.map(|d| d.content.clone()).unwrap_or_default(),
                    ..h
                });
            }
            _ => sources.push(src.clone()),
        }
    }
    Ok(CopyArgs {
        sources,
        dest,
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link").unwrap_or(false),
        parents: flags.bool("parents").unwrap_or(false),
        exclude: flags.strings("exclude"),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
        unpack: flags.bool("unpack"),
        heredocs: docs,
    })
}

/// Builds the instruction from its joined line and the heredoc bodies read after it.
pub(crate) fn build(
    head: &Head,
    line: &str,
    heredocs: Vec<Heredoc>,
    escape: char,
) -> Result<Parsed, SyntaxError> {
    let rest = head.rest.as_str();
    let kind = match head.lower.as_str() {
        "from" => {
            let args = split_ws(rest);
            let name = match args.len() {
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let name = args[2].to_ascii_lowercase();
                    let mut chars = name.chars();
                    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                        && chars.all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)
                        });
                    if !valid {
                        return Err(SyntaxError::Instruction(format!(
                            "invalid name for build stage: \"{}\", name can't start with a number or contain symbols",
                            args[2]
                        )));
                    }
                    Some(name)
                }
                1 => None,
                _ => {
                    return Err(SyntaxError::Instruction(
                        "FROM requires either one or three arguments".into(),
                    ))
                }
            };
            let flags = Flags::parse(&head.flags, &[("platform", FlagType::Str)])?;
            return Ok(Parsed::From {
                base: args[0].clone(),
                name,
                platform: flags.string("platform").filter(|p| !p.is_empty()),
            });
        }
        "run" => {
            use FlagType::{Str, Strings};
            let flags = Flags::parse(
                &head.flags,
                &[("mount", Strings), ("network", Str), ("security", Str)],
            )?;
            let network = flags.string("network");
            if let Some(n) = &network {
                if !matches!(n.as_str(), "default" | "none" | "host") {
                    return Err(SyntaxError::Instruction(format!(
                        "unsupported network mode: {n}"
                    )));
                }
            }
            let security = flags.string("security");
            if let Some(s) = &security {
                if !matches!(s.as_str(), "sandbox" | "insecure") {
                    return Err(SyntaxError::Instruction(format!(
                        "unsupported security mode: {s}"
                    )));
                }
            }
            Kind::Run {
                cmd: maybe_json_command(rest)?,
                mounts: flags.strings("mount"),
                network,
                security,
                heredocs,
            }
        }
        "copy" => Kind::Copy(copy_or_add(head, &heredocs, false)?),
        "add" => Kind::Add(copy_or_add(head, &heredocs, true)?),
        "env" | "label" => {
            let upper = head.lower.to_ascii_uppercase();
            let pairs = parse_name_val(rest, &upper, escape)?;
            no_flags(head)?;
            if head.lower == "env" {
                Kind::Env(pairs)
            } else {
                Kind::Label(pairs)
            }
        }
        "arg" => {
            let words = parse_words(rest, escape);
            if words.is_empty() {
                return Err(SyntaxError::Instruction(at_least_one("ARG")));
            }
            no_flags(head)?;
            let mut decls = Vec::new();
            for w in words {
                let decl = match w.split_once('=') {
                    Some((k, v)) => ArgDecl {
                        name: k.to_string(),
                        default: Some(v.to_string()),
                    },
                    None => ArgDecl {
                        name: w,
                        default: None,
                    },
                };
                if decl.name.is_empty() {
                    return Err(SyntaxError::Instruction(
                        "ARG names can not be blank".into(),
                    ));
                }
                decls.push(decl);
            }
            Kind::Arg(decls)
        }
        "workdir" | "user" | "stopsignal" | "maintainer" => {
            if rest.is_empty() {
                return Err(SyntaxError::Instruction(exactly_one(
                    &head.lower.to_ascii_uppercase(),
                )));
            }
            no_flags(head)?;
            let v = rest.to_string();
            match head.lower.as_str() {
                "workdir" => Kind::Workdir(v),
                "user" => Kind::User(v),
                "stopsignal" => Kind::StopSignal(v),
                _ => Kind::Maintainer(v),
            }
        }
        "expose" => {
            let ports = split_ws(rest);
            if ports.is_empty() {
                return Err(SyntaxError::Instruction(at_least_one("EXPOSE")));
            }
            no_flags(head)?;
            Kind::Expose(ports)
        }
        "volume" => {
            let vols = match json_array(rest)? {
                Some(v) => v,
                None => split_ws(rest),
            };
            if vols.is_empty() {
                return Err(SyntaxError::Instruction(at_least_one("VOLUME")));
            }
            no_flags(head)?;
            if vols.iter().any(|v| v.trim().is_empty()) {
                return Err(SyntaxError::Instruction(
                    "VOLUME specified can not be an empty string".into(),
                ));
            }
            Kind::Volume(vols)
        }
        "cmd" | "entrypoint" => {
            no_flags(head)?;
            let c = maybe_json_command(rest)?;
            if head.lower == "cmd" {
                Kind::Cmd(c)
            } else {
                Kind::Entrypoint(c)
            }
        }
        "shell" => {
            no_flags(head)?;
            match json_array(rest)? {
                Some(v) if v.is_empty() => {
                    return Err(SyntaxError::Instruction(at_least_one("SHELL")))
                }
                Some(v) => Kind::Shell(v),
                None if rest.is_empty() => {
                    return Err(SyntaxError::Instruction(at_least_one("SHELL")))
                }
                None => {
                    return Err(SyntaxError::Instruction(
                        "SHELL requires the arguments to be in JSON form".into(),
                    ))
                }
            }
        }
        "healthcheck" => healthcheck(head)?,
        "onbuild" => {
            if rest.is_empty() {
                return Err(SyntaxError::Instruction(at_least_one("ONBUILD")));
            }
            no_flags(head)?;
            let child = split_line(rest)?;
            let trigger = child.cmd.to_ascii_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err(SyntaxError::Instruction(
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                    ))
                }
                "MAINTAINER" | "FROM" => {
                    return Err(SyntaxError::Instruction(format!(
                        "{trigger} isn't allowed as an ONBUILD trigger"
                    )))
                }
                _ => {}
            }
            if matches!(
                child.lower.as_str(),
                "run" | "cmd" | "entrypoint" | "shell" | "copy" | "add" | "volume"
            ) {
                json_array(&child.rest)?;
            }
            let mut original = strip_onbuild(line).to_string();
            for h in &heredocs {
                original.push('\n');
                original.push_str(&h.content);
                original.push_str(&h.name);
            }
            Kind::Onbuild(original)
        }
        _ => {
            return Err(SyntaxError::Instruction(format!(
                "unknown instruction: {}",
                head.cmd
            )))
        }
    };
    Ok(Parsed::Kind(kind))
}

/// `(?i)^\s*ONBUILD\s*` removed.
fn strip_onbuild(line: &str) -> &str {
    let t = line.trim_start();
    match t.get(..7) {
        Some(k) if k.eq_ignore_ascii_case("onbuild") => t[7..].trim_start(),
        _ => t,
    }
}

/// Parses a Go duration (`time.ParseDuration`: `300ms`, `1.5h`, `2h45m`, `-1s`) into
/// nanoseconds, with Go's error messages.
pub fn parse_go_duration(s: &str) -> Result<i64, SyntaxError> {
    let invalid = || SyntaxError::Duration(format!("time: invalid duration \"{s}\""));
    let (neg, mut t) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if t == "0" {
        return Ok(0);
    }
    if t.is_empty() {
        return Err(invalid());
    }
    let digits = |x: &str| x.bytes().take_while(u8::is_ascii_digit).count();
    let mut total: u128 = 0;
    while !t.is_empty() {
        let n = digits(t);
        let int_part = &t[..n];
        t = &t[n..];
        let mut frac = "";
        if let Some(after) = t.strip_prefix('.') {
            let f = digits(after);
            frac = &after[..f];
            t = &after[f..];
        }
        if int_part.is_empty() && frac.is_empty() {
            return Err(invalid());
        }
        let ul = t
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(t.len());
        let unit = &t[..ul];
        t = &t[ul..];
        if unit.is_empty() {
            return Err(SyntaxError::Duration(format!(
                "time: missing unit in duration \"{s}\""
            )));
        }
        let mult: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(SyntaxError::Duration(format!(
                    "time: unknown unit \"{unit}\" in duration \"{s}\""
                )))
            }
        };
        if int_part.len() > 20 {
            return Err(invalid());
        }
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = whole.checked_mul(mult).ok_or_else(invalid)?;
        if !frac.is_empty() {
            let mut scale: u128 = 1;
            let mut f: u128 = 0;
            for b in frac.bytes().take(30) {
                f = f * 10 + u128::from(b - b'0');
                scale *= 10;
            }
            value += f * mult / scale;
        }
        total += value;
        if total > (i64::MAX as u128) + u128::from(neg) {
            return Err(invalid());
        }
    }
    Ok(if neg {
        (total as i128).wrapping_neg() as i64
    } else {
        total as i64
    })
}
