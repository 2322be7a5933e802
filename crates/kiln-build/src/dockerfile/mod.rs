//! Dockerfile parser with Docker/BuildKit's syntax
//! (<https://docs.docker.com/reference/dockerfile/>), following the behaviour of BuildKit's
//! `frontend/dockerfile/parser` and `instructions` packages:
//!
//! - parser directives (`# syntax=`, `# escape=`, `# check=`) only before anything else;
//!   a blank line, a comment or an instruction ends them;
//! - `#` comments at the start of a line (after whitespace), also between continuation
//!   lines; the escape token (`\` or `` ` ``) at the end of a line continues it, blank
//!   continuation lines are skipped (with a warning, as Docker does);
//! - instructions are case-insensitive; leading `--flag[=value]` words are validated per
//!   instruction (`unknown flag: x`), also on instructions that take none;
//! - heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`, several per line) on RUN, COPY and ADD (and
//!   ONBUILD RUN/COPY/ADD).
//!
//! Values are kept **unexpanded and unquoted only where Docker's parser unquotes them**:
//! like BuildKit's AST, `ENV`/`LABEL`/`ARG` values keep their quotes and escapes
//! (`ENV a="x y"` gives the value `"x y"`); running them through [`expand`] yields what
//! Docker stores (`x y`).
//!
//! # Which arguments the builder expands
//!
//! BuildKit substitutes variables (stage `ENV` plus `ARG`s in scope) with [`expand`]
//! (one word, quotes removed) in:
//! `ADD`/`COPY` (each source, the destination, `--chown`, `--chmod`, `--from`,
//! `--checksum`, `--exclude`), `ENV` (keys and values), `LABEL` (keys and values),
//! `FROM` (image and `--platform`, with the global `ARG`s only), `STOPSIGNAL`, `USER`,
//! `VOLUME` (each entry), `WORKDIR`, `ARG` (the default value), `RUN --mount` option values.
//! `EXPOSE` uses [`expand_words`] on each word (a variable holding `"80 443"` gives two
//! ports). Heredoc bodies of `COPY`/`ADD` whose delimiter was not quoted go through
//! [`expand_heredoc`] (quotes are not special there).
//! Not expanded by the builder: `RUN`, `CMD`, `ENTRYPOINT`, `SHELL`, `HEALTHCHECK` (the
//! shell does it at run time), `MAINTAINER`, and `ONBUILD` (its trigger is stored as
//! written and expanded when it fires in a child build).

mod instruction;
mod shell;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use instruction::parse_go_duration;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dockerfile {
    /// The escape token: `\` (default) or `` ` `` from `# escape=`.
    pub escape: char,
    /// The `# syntax=` directive, if any.
    pub syntax: Option<String>,
    /// `ARG`s before the first `FROM` (usable in `FROM` lines).
    pub global_args: Vec<ArgDecl>,
    /// The build stages in file order; a stage's index here is its [`Stage::index`].
    pub stages: Vec<Stage>,
    /// Non-fatal findings, e.g. empty continuation lines (`FILE:LINE: message`).
    pub warnings: Vec<String>,
}

/// One build stage: a `FROM` line and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// 0-based position among the file's stages (what `--from=0` refers to).
    pub index: usize,
    /// The `AS` name, lowercased.
    pub name: Option<String>,
    /// The image word as written (variables not expanded).
    pub base: String,
    /// `--platform` as written (variables not expanded); `None` when absent or empty.
    pub platform: Option<String>,
    /// 1-based line of the `FROM` instruction.
    pub line: usize,
    /// The `FROM` line as written (continuations joined).
    pub original: String,
    /// The stage's instructions after `FROM`, in file order.
    pub instructions: Vec<Instruction>,
}

/// One instruction of a stage (or a global `ARG`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instruction {
    /// 1-based first line.
    pub line: usize,
    /// The instruction as written, continuation lines joined the way Docker shows them in
    /// the image history (`RUN apt-get update &&     apt-get install -y x`), trimmed;
    /// heredoc bodies are not included.
    pub original: String,
    /// The parsed instruction with its flags and arguments.
    pub kind: Kind,
}

/// An instruction and its parsed flags and arguments; values are as written (not yet
/// expanded) unless stated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// `RUN [--mount=...] [--network=...] [--security=...] command`.
    Run {
        /// The command: shell form, or a JSON array for the exec form.
        cmd: Command,
        /// Raw value of each `--mount=` flag, in order.
        mounts: Vec<String>,
        /// `--network=` (`default`, `none` or `host`).
        network: Option<String>,
        /// `--security=` (`sandbox` or `insecure`).
        security: Option<String>,
        /// Heredocs of the line, in order. With `RUN <<EOF` alone the body is the script;
        /// otherwise (`RUN python3 <<EOF`) `cmd` is the shell text and the bodies are fed
        /// as a shell heredoc would be: see [`heredoc_script`].
        heredocs: Vec<Heredoc>,
    },
    /// `COPY [flags] src... dest`: files from the context, a stage or an image.
    Copy(CopyArgs),
    /// `ADD [flags] src... dest`: like `COPY`, but a source may also be an `http(s)` URL
    /// (downloaded), and a tar archive from the context is unpacked.
    Add(CopyArgs),
    /// `(key, value)` as written: quotes and escapes still in place, to be run through
    /// [`expand`] (both forms, `ENV k v` and `ENV k=v k2="v 2"`).
    Env(Vec<(String, String)>),
    /// `ARG name[=default] ...`: build arguments declared in this stage.
    Arg(Vec<ArgDecl>),
    /// `WORKDIR path`: the working directory of later instructions and of containers,
    /// relative paths resolved against the previous one.
    Workdir(String),
    /// `USER user[:group]`, by name or numeric id.
    User(String),
    /// Ports as written; each goes through [`expand_words`].
    Expose(Vec<String>),
    /// JSON or whitespace-separated form.
    Volume(Vec<String>),
    /// `(key, value)` as written (like [`Kind::Env`]).
    Label(Vec<(String, String)>),
    /// `ENTRYPOINT`: what the image's containers run.
    Entrypoint(Command),
    /// `CMD`: the default command, or the default arguments of the entrypoint.
    Cmd(Command),
    /// The JSON form is required.
    Shell(Vec<String>),
    /// `STOPSIGNAL`: the signal (`SIGTERM`, `9`, ...) sent to stop a container.
    StopSignal(String),
    /// `None` for `HEALTHCHECK NONE`.
    Healthcheck(Option<Healthcheck>),
    /// The trigger instruction as written (`RUN echo hi`), with heredoc bodies appended
    /// the way BuildKit stores them (`"\n" + body + name`).
    Onbuild(String),
    /// `MAINTAINER name` (deprecated): the author, stored in the image config.
    Maintainer(String),
}

impl Kind {
    /// The instruction keyword in upper case (`RUN`, `COPY`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Run { .. } => "RUN",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
            Kind::Env(_) => "ENV",
            Kind::Arg(_) => "ARG",
            Kind::Workdir(_) => "WORKDIR",
            Kind::User(_) => "USER",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::Label(_) => "LABEL",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Cmd(_) => "CMD",
            Kind::Shell(_) => "SHELL",
            Kind::StopSignal(_) => "STOPSIGNAL",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Onbuild(_) => "ONBUILD",
            Kind::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// `CMD`/`ENTRYPOINT`/`RUN` arguments: a JSON array is the exec form, anything else
/// the shell form (run with the stage's `SHELL`, `/bin/sh -c` by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// The text after the keyword, run as the last argument of the stage's `SHELL`.
    Shell(String),
    /// The JSON array's elements: the program and its arguments, run without a shell.
    Exec(Vec<String>),
}

/// Arguments of `COPY` and `ADD`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyArgs {
    /// Source words as written (JSON form: the array elements); heredoc sources are in
    /// `heredocs` instead.
    pub sources: Vec<String>,
    /// The destination path in the image; a trailing `/` makes it a directory, a
    /// relative path is resolved against the stage's `WORKDIR`.
    pub dest: String,
    /// `--from=`: a stage (by name or index) or an image to copy from instead of the
    /// build context.
    pub from: Option<String>,
    /// `--chown=user[:group]`: the owner given to the copied files (names looked up in
    /// the destination's `/etc/passwd` and `/etc/group`).
    pub chown: Option<String>,
    /// `--chmod=`: octal mode (`755`) given to the copied files.
    pub chmod: Option<String>,
    /// `--link`: accepted and part of the cache key; the files are copied the same way
    /// as without it.
    pub link: bool,
    /// `COPY --parents` only.
    pub parents: bool,
    /// `--exclude=` patterns (`.dockerignore` syntax): matching sources are not copied.
    pub exclude: Vec<String>,
    /// `ADD --checksum` only.
    pub checksum: Option<String>,
    /// `ADD --keep-git-dir` only.
    pub keep_git_dir: bool,
    /// `ADD --unpack[=bool]` only; `None` when not given.
    pub unpack: Option<bool>,
    /// Inline files (`COPY <<EOF /dest`), in source order; each is a file named
    /// after its delimiter.
    pub heredocs: Vec<Heredoc>,
}

/// A here-document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The body, every line with its newline. With `<<-` leading tabs are already
    /// removed from each line (as BuildKit does before use).
    pub content: String,
    /// False when (part of) the delimiter was quoted: the body is used literally.
    pub expand: bool,
    /// Written as `<<-`.
    pub chomp_tabs: bool,
}

/// `ARG name[=default]`; the default as written (quotes kept, see [`expand`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgDecl {
    /// The argument's name, as `--build-arg` and `$name` refer to it.
    pub name: String,
    /// The value after `=` as written; `None` for `ARG name` alone (then unset unless a
    /// `--build-arg` or an earlier global `ARG` gives one).
    pub default: Option<String>,
}

/// `HEALTHCHECK [flags] CMD ...`. Durations are Go duration strings as written
/// (`30s`, `1m30s`), already validated; see [`parse_go_duration`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["CMD-SHELL", "curl -f http://localhost/"]` or `["CMD", "arg0", ...]`, as in
    /// the image config.
    pub test: Vec<String>,
    /// `--interval`: time between two checks.
    pub interval: Option<String>,
    /// `--timeout`: how long one check may run before it counts as failed.
    pub timeout: Option<String>,
    /// `--start-period`: time after start during which failures do not count.
    pub start_period: Option<String>,
    /// `--start-interval`: time between checks during the start period.
    pub start_interval: Option<String>,
    /// `--retries`: consecutive failures after which the container is unhealthy.
    pub retries: Option<u32>,
}

/// A Dockerfile that cannot be parsed. `line` is 1-based (0 when the error concerns the
/// whole file) and `text` is that line as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ParseError {
    /// The Dockerfile's name as given to [`parse`], for messages.
    pub file: String,
    /// 1-based line number of the offending instruction; 0 for the whole file.
    pub line: usize,
    /// The offending line as written; empty when `line` is 0.
    pub text: String,
    /// What is wrong, in BuildKit's (or Docker's) words.
    pub message: String,
}

/// What is wrong with a Dockerfile line, a word being expanded or a `.dockerignore`
/// pattern, before its place is known: [`parse`] makes it a [`ParseError`] naming the
/// line, the builder a step error. Each message is BuildKit's (or Docker's) own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    /// A parser directive (`# escape=`, `# syntax=`) that cannot be used.
    #[error("{0}")]
    Directive(String),
    /// An instruction, its flags or its arguments as BuildKit rejects them.
    #[error("{0}")]
    Instruction(String),
    /// A variable substitution or quoting that cannot be expanded (`${A:=x}`,
    /// `${U:?message}`, an unclosed quote).
    #[error("{0}")]
    Substitution(String),
    /// A Go duration (`--interval=30s`) that cannot be read.
    #[error("{0}")]
    Duration(String),
    /// A `.dockerignore` pattern Docker rejects.
    #[error("{0}")]
    Pattern(String),
}

impl ParseError {
    fn render(&self) -> String {
        if self.line == 0 {
            format!("{}: {}", self.file, self.message)
        } else {
            format!(
                "{}:{}: {}\n  {} | {}",
                self.file, self.line, self.message, self.line, self.text
            )
        }
    }
}

impl Dockerfile {
    /// The stage a `--from`/`FROM` reference names: by `AS` name (case-insensitive) or
    /// by index.
    pub fn find_stage(&self, name_or_index: &str) -> Option<&Stage> {
        let lower = name_or_index.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| {
                name_or_index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| self.stages.get(i))
            })
    }
}

/// Expands variables in one word the way BuildKit's `ProcessWord` does: quotes are
/// removed, `$VAR`/`${VAR...}` substituted (unset variables give ""), the escape token
/// escapes the next character. Errors are BuildKit's messages
/// (`unsupported modifier (:=) in substitution`, `VAR: is not allowed to be unset`, ...).
pub fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SyntaxError> {
    shell::process(word, escape, shell::Mode::default(), lookup).map(|(s, _)| s)
}

/// Like [`expand`], then splits into words as BuildKit's `ProcessWords` does: unquoted
/// whitespace (also whitespace coming from a substituted value) separates words, quoted
/// or escaped whitespace does not; empty words are dropped.
pub fn expand_words(
    text: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, SyntaxError> {
    shell::process(text, escape, shell::Mode::default(), lookup).map(|(_, w)| w)
}

/// Expands a heredoc body of `COPY`/`ADD` (when [`Heredoc::expand`]): variables and
/// escapes are processed, quotes are ordinary characters.
pub fn expand_heredoc(
    content: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SyntaxError> {
    let mode = shell::Mode {
        skip_quotes: true,
        ..Default::default()
    };
    shell::process(content, escape, mode, lookup).map(|(s, _)| s)
}

/// The shell script for a `RUN` whose command uses heredocs (`python3 <<EOF`): the
/// command line followed by each body and its delimiter, as a POSIX shell reads
/// here-documents. For `RUN <<EOF` alone BuildKit runs the body itself (or, when it starts
/// with `#!`, executes it as a file); this function returns the body in that case.
pub fn heredoc_script(cmd: &str, heredocs: &[Heredoc]) -> String {
    if let [only] = heredocs {
        if let Ok(Some(h)) = instruction::parse_heredoc_word(cmd.trim()) {
            if h.name == only.name {
                return only.content.clone();
            }
        }
    }
    let mut s = cmd.to_string();
    for h in heredocs {
        s.push('\n');
        s.push_str(&h.content);
        s.push_str(&h.name);
    }
    s
}

/// Parses a Dockerfile. `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let err = |line: usize, message: String| ParseError {
        file: file.to_string(),
        line,
        text: line
            .checked_sub(1)
            .and_then(|i| lines.get(i))
            .map(|l| trim_newline(l).to_string())
            .unwrap_or_default(),
        message,
    };

    let mut directives = Directives::default();
    let mut warnings = Vec::new();
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut any_instruction = false;
    let mut i = 0;
    while i < lines.len() {
        let raw = trim_newline(lines[i]);
        i += 1;
        let start = i;
        let lead = trim_leading_ws(raw);
        directives
            .parse_line(lead)
            .map_err(|m| err(start, m.to_string()))?;
        let escape = directives.escape;
        let first = if lead.starts_with('#') { "" } else { lead };
        let (first, mut eol) = trim_continuation(first, escape);
        if eol && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        let mut empty_continuation = false;
        while !eol && i < lines.len() {
            let raw = trim_newline(lines[i]);
            i += 1;
            let lead = trim_leading_ws(raw);
            if lead.starts_with('#') {
                continue;
            }
            if lead.is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, e) = trim_continuation(raw, escape);
            line.push_str(part);
            eol = e;
        }
        if empty_continuation {
            warnings.push(format!(
                "{file}:{start}: empty continuation line found in: {}",
                line.trim()
            ));
        }

        let head = instruction::split_line(&line).map_err(|m| err(start, m.to_string()))?;
        let mut heredocs = Vec::new();
        if head
            .can_contain_heredoc()
            .map_err(|m| err(start, m.to_string()))?
            && line.contains("<<")
        {
            for mut h in
                instruction::heredocs_from_line(&line).map_err(|m| err(start, m.to_string()))?
            {
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let mut candidate = trim_newline(raw);
                    if h.chomp_tabs {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == h.name {
                        terminated = true;
                        break;
                    }
                    h.content.push_str(raw);
                }
                if !terminated {
                    return Err(err(start, "unterminated heredoc".into()));
                }
                if h.chomp_tabs {
                    h.content = h
                        .content
                        .split_inclusive('\n')
                        .map(|l| l.trim_start_matches('\t'))
                        .collect();
                }
                heredocs.push(h);
            }
        }
        any_instruction = true;

        let parsed = instruction::build(&head, &line, heredocs, escape)
            .map_err(|m| err(start, m.to_string()))?;
        let original = line.trim().to_string();
        match parsed {
            instruction::Parsed::From {
                base,
                name,
                platform,
            } => {
                if let Some(n) = &name {
                    if stages.iter().any(|s| s.name.as_ref() == Some(n)) {
                        return Err(err(start, format!("duplicate stage name \"{n}\"")));
                    }
                }
                stages.push(Stage {
                    index: stages.len(),
                    name,
                    base,
                    platform,
                    line: start,
                    original,
                    instructions: Vec::new(),
                });
            }
            instruction::Parsed::Kind(kind) => match stages.last_mut() {
                Some(stage) => stage.instructions.push(Instruction {
                    line: start,
                    original,
                    kind,
                }),
                None => match kind {
                    Kind::Arg(args) => global_args.extend(args),
                    _ => return Err(err(start, "no build stage in current context".into())),
                },
            },
        }
    }
    if !any_instruction {
        return Err(err(0, "file with no instructions".into()));
    }
    if stages.is_empty() {
        return Err(err(0, "dockerfile contains no stages to build".into()));
    }
    Ok(Dockerfile {
        escape: directives.escape,
        syntax: directives.syntax,
        global_args,
        stages,
        warnings,
    })
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn trim_leading_ws(s: &str) -> &str {
    s.trim_start_matches([' ', '\t'])
}

/// Removes a trailing escape token (followed by optional spaces/tabs); `true` when the
/// line ends here (no continuation).
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(rest) => (rest, false),
        None => (line, true),
    }
}

struct Directives {
    escape: char,
    syntax: Option<String>,
    seen: Vec<String>,
    done: bool,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            escape: '\\',
            syntax: None,
            seen: Vec::new(),
            done: false,
        }
    }
}

impl Directives {
    /// BuildKit's `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`, only until the first line
    /// that is not a known directive.
    fn parse_line(&mut self, line: &str) -> Result<(), SyntaxError> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "escape" | "syntax" | "check") {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&key) {
            return Err(SyntaxError::Directive(format!(
                "only one {key} parser directive can be used"
            )));
        }
        self.seen.push(key.clone());
        match key.as_str() {
            "escape" => {
                if value != "\\" && value != "`" {
                    return Err(SyntaxError::Directive(format!(
                        "invalid escape token '{value}' does not match ` or \\"
                    )));
                }
                self.escape = value.chars().next().unwrap_or('\\');
            }
            "syntax" => self.syntax = Some(value.to_string()),
            _ => {}
        }
        Ok(())
    }
}

fn directive(line: &str) -> Option<(&str, &str)> {
    let ws = |c: char| matches!(c, ' ' | '\t' | '\x0c' | '\r' | '\n' | '\x0b');
    let rest = line.strip_prefix('#')?.trim_start_matches(ws);
    let key_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let key = &rest[..key_len];
    let rest = rest[key_len..].trim_start_matches(ws);
    let value = rest.strip_prefix('=')?.trim_matches(ws);
    if value.is_empty() {
        return None;
    }
    Some((key, value))
}
