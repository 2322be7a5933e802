use super::*;

fn p(text: &str) -> Dockerfile {
    parse(text, "Dockerfile").unwrap_or_else(|e| panic!("{e}"))
}

fn perr(text: &str) -> ParseError {
    match parse(text, "Dockerfile") {
        Ok(d) => panic!("expected an error, got {d:?}"),
        Err(e) => e,
    }
}

/// The instructions of the only stage.
fn kinds(text: &str) -> Vec<Kind> {
    let d = p(text);
    assert_eq!(d.stages.len(), 1);
    d.stages[0]
        .instructions
        .iter()
        .map(|i| i.kind.clone())
        .collect()
}

fn one(text: &str) -> Kind {
    let mut k = kinds(&format!("FROM scratch\n{text}"));
    assert_eq!(k.len(), 1, "{k:?}");
    k.remove(0)
}

fn copy_args(k: Kind) -> CopyArgs {
    match k {
        Kind::Copy(c) | Kind::Add(c) => c,
        other => panic!("not COPY/ADD: {other:?}"),
    }
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

fn x(word: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    expand(word, '\\', &env(vars)).map_err(|e| e.to_string())
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn strs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

// ---- structure, stages, lines -------------------------------------------------

#[test]
fn minimal_stage() {
    let d = p("FROM alpine:3.20\nRUN echo hi\n");
    assert_eq!(d.escape, '\\');
    assert_eq!(d.syntax, None);
    assert!(d.global_args.is_empty());
    let s = &d.stages[0];
    assert_eq!(s.index, 0);
    assert_eq!(s.name, None);
    assert_eq!(s.base, "alpine:3.20");
    assert_eq!(s.platform, None);
    assert_eq!(s.line, 1);
    assert_eq!(s.instructions.len(), 1);
    assert_eq!(s.instructions[0].line, 2);
    assert_eq!(s.instructions[0].original, "RUN echo hi");
}

#[test]
fn multi_stage_names_platform_and_lines() {
    let d = p("ARG BASE=debian\n\
         FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\n\
         RUN go build\n\
         \n\
         from ${BASE} as final\n\
         COPY --from=build /out /app\n");
    assert_eq!(d.stages.len(), 2);
    assert_eq!(d.stages[0].name.as_deref(), Some("build"));
    assert_eq!(d.stages[0].platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(d.stages[0].base, "golang:1.22");
    assert_eq!(d.stages[0].line, 2);
    assert_eq!(d.stages[1].index, 1);
    assert_eq!(d.stages[1].name.as_deref(), Some("final"));
    assert_eq!(d.stages[1].base, "${BASE}");
    assert_eq!(d.stages[1].line, 5);
    assert_eq!(d.stages[1].instructions[0].line, 6);
    assert_eq!(
        d.global_args,
        vec![ArgDecl {
            name: "BASE".into(),
            default: Some("debian".into())
        }]
    );
    assert_eq!(d.find_stage("BUILD").map(|s| s.index), Some(0));
    assert_eq!(d.find_stage("1").map(|s| s.index), Some(1));
    assert!(d.find_stage("nope").is_none());
}

#[test]
fn global_args_only_before_first_from() {
    let d = p("ARG A\nARG B=2 C\nFROM x\nARG D\n");
    let names: Vec<_> = d.global_args.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["A", "B", "C"]);
    assert_eq!(d.global_args[1].default.as_deref(), Some("2"));
    assert_eq!(
        d.stages[0].instructions[0].kind,
        Kind::Arg(vec![ArgDecl {
            name: "D".into(),
            default: None
        }])
    );
}

#[test]
fn instructions_are_case_insensitive() {
    let k = kinds("from x\nrun a\nWorkDir /w\ncOpY a b\n");
    assert!(matches!(&k[0], Kind::Run { cmd: Command::Shell(s), .. } if s == "a"));
    assert_eq!(k[1], Kind::Workdir("/w".into()));
    assert_eq!(copy_args(k[2].clone()).dest, "b");
}

#[test]
fn bad_from_forms() {
    for (text, msg) in [
        ("FROM\n", "FROM requires either one or three arguments"),
        ("FROM a b\n", "FROM requires either one or three arguments"),
        ("FROM a AS\n", "FROM requires either one or three arguments"),
        ("FROM a AS b c\n", "FROM requires either one or three arguments"),
        ("FROM a XS b\n", "FROM requires either one or three arguments"),
        (
            "FROM a AS 1st\n",
            "invalid name for build stage: \"1st\", name can't start with a number or contain symbols",
        ),
        (
            "FROM a AS my/stage\n",
            "invalid name for build stage: \"my/stage\", name can't start with a number or contain symbols",
        ),
        ("FROM --plat=x a\n", "unknown flag: plat"),
        ("FROM --platform a\n", "missing a value on flag: platform"),
    ] {
        let e = perr(text);
        assert_eq!(e.message, msg, "{text}");
        assert_eq!(e.line, 1);
    }
    assert_eq!(
        p("FROM a AS my-stage_2.x\n").stages[0].name.as_deref(),
        Some("my-stage_2.x")
    );
    assert_eq!(p("FROM --platform= a\n").stages[0].platform, None);
}

#[test]
fn duplicate_stage_name() {
    let e = perr("FROM a AS x\nFROM b AS X\n");
    assert_eq!(e.message, "duplicate stage name \"x\"");
    assert_eq!(e.line, 2);
    assert_eq!(e.text, "FROM b AS X");
}

#[test]
fn empty_and_stageless_files() {
    let e = perr("");
    assert_eq!(e.message, "file with no instructions");
    assert_eq!(e.to_string(), "Dockerfile: file with no instructions");
    assert_eq!(
        perr("# just a comment\n\n   \n").message,
        "file with no instructions"
    );
    assert_eq!(
        perr("ARG A=1\n").message,
        "dockerfile contains no stages to build"
    );
}

#[test]
fn instruction_before_from_is_an_error() {
    let e = perr("# c\nARG X\nRUN echo hi\nFROM a\n");
    assert_eq!(e.message, "no build stage in current context");
    assert_eq!(e.line, 3);
    assert_eq!(e.text, "RUN echo hi");
}

#[test]
fn unknown_instruction_names_line_and_text() {
    let e = parse("FROM a\nRUN ok\n  FOO bar baz\n", "ctx/Containerfile").unwrap_err();
    assert_eq!(e.message, "unknown instruction: FOO");
    assert_eq!(e.file, "ctx/Containerfile");
    assert_eq!(e.line, 3);
    assert_eq!(e.text, "  FOO bar baz");
    let shown = e.to_string();
    assert_eq!(
        shown,
        "ctx/Containerfile:3: unknown instruction: FOO\n  3 |   FOO bar baz"
    );
    // The case as written is kept.
    assert_eq!(
        perr("FROM a\ncopyy a b\n").message,
        "unknown instruction: copyy"
    );
}

#[test]
fn error_in_continued_instruction_reports_first_line() {
    let e = perr("FROM a\nCOPY \\\n   onlyone\n");
    assert_eq!(e.line, 2);
    assert_eq!(e.text, "COPY \\");
    assert!(e
        .message
        .starts_with("COPY requires at least two arguments"));
}

#[test]
fn maintainer_is_accepted() {
    assert_eq!(
        one("MAINTAINER Jane Doe <jane@example.com>"),
        Kind::Maintainer("Jane Doe <jane@example.com>".into())
    );
    assert_eq!(
        perr("FROM a\nMAINTAINER\n").message,
        "MAINTAINER requires exactly one argument"
    );
}

#[test]
fn bom_is_ignored() {
    let d = p("\u{feff}FROM a\n");
    assert_eq!(d.stages[0].base, "a");
}

#[test]
fn crlf_line_endings() {
    let d = p("FROM a\r\nRUN echo \\\r\n  hi\r\nENV A=1\r\n");
    let ins = &d.stages[0].instructions;
    assert_eq!(ins[0].original, "RUN echo   hi");
    assert_eq!(ins[1].kind, Kind::Env(pairs(&[("A", "1")])));
}

// ---- directives -------------------------------------------------------------------

#[test]
fn directives_syntax_and_escape() {
    let d = p("# syntax=docker/dockerfile:1.7\n# escape=`\nFROM a\nRUN echo `\n  hi\n");
    assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1.7"));
    assert_eq!(d.escape, '`');
    assert_eq!(d.stages[0].instructions[0].original, "RUN echo   hi");
}

#[test]
fn directives_are_case_insensitive_with_spacing() {
    let d = p("#ESCAPE = `\n#\tSyntax=\tfoo/bar \nFROM a\n");
    assert_eq!(d.escape, '`');
    assert_eq!(d.syntax.as_deref(), Some("foo/bar"));
}

#[test]
fn directives_stop_at_blank_comment_or_instruction() {
    // After a blank line, `# escape=` is an ordinary comment.
    let d = p("\n# escape=`\nFROM a\nRUN a \\\n b\n");
    assert_eq!(d.escape, '\\');
    assert_eq!(d.stages[0].instructions[0].original, "RUN a  b");
    // After a plain comment too.
    assert_eq!(p("# hello\n# escape=`\nFROM a\n").escape, '\\');
    // After an instruction too.
    assert_eq!(p("FROM a\n# escape=`\nRUN x\n").escape, '\\');
    // An unknown directive ends the directives.
    assert_eq!(p("# foo=bar\n# escape=`\nFROM a\n").escape, '\\');
    // `check` is a known directive.
    assert_eq!(p("# check=skip=all\n# escape=`\nFROM a\n").escape, '`');
}

#[test]
fn bad_directives() {
    let e = perr("# escape=x\nFROM a\n");
    assert_eq!(e.message, "invalid escape token 'x' does not match ` or \\");
    assert_eq!(e.line, 1);
    let e = perr("# syntax=a\n# syntax=b\nFROM a\n");
    assert_eq!(e.message, "only one syntax parser directive can be used");
    assert_eq!(e.line, 2);
    assert_eq!(e.text, "# syntax=b");
}

#[test]
fn backtick_escape_leaves_backslashes_alone() {
    let d = p("# escape=`\nFROM mcr.microsoft.com/windows\nWORKDIR c:\\app\nCOPY . c:\\app\\\n");
    let ins = &d.stages[0].instructions;
    assert_eq!(ins[0].kind, Kind::Workdir("c:\\app".into()));
    assert_eq!(copy_args(ins[1].kind.clone()).dest, "c:\\app\\");
    assert_eq!(
        expand("c:\\app\\$X", '`', &env(&[("X", "y")])).unwrap(),
        "c:\\app\\y"
    );
}

// ---- comments and continuations -------------------------------------------------

#[test]
fn comments_removed_including_inside_continuations() {
    let d = p("FROM a\n  # indented comment\nRUN apt-get update && \\\n# a comment\n    apt-get install -y \\\n    # another\n    curl\n");
    let ins = &d.stages[0].instructions;
    assert_eq!(ins.len(), 1);
    assert_eq!(ins[0].line, 3);
    assert_eq!(
        ins[0].original,
        "RUN apt-get update &&     apt-get install -y     curl"
    );
    assert_eq!(
        ins[0].kind,
        Kind::Run {
            cmd: Command::Shell("apt-get update &&     apt-get install -y     curl".into()),
            mounts: vec![],
            network: None,
            security: None,
            heredocs: vec![],
        }
    );
}

#[test]
fn hash_inside_an_instruction_is_not_a_comment() {
    assert_eq!(
        one("RUN echo hi # not a comment"),
        Kind::Run {
            cmd: Command::Shell("echo hi # not a comment".into()),
            mounts: vec![],
            network: None,
            security: None,
            heredocs: vec![]
        }
    );
}

#[test]
fn empty_continuation_lines_are_skipped_with_warning() {
    let d = p("FROM a\nRUN echo a \\\n\n   \n  b\nRUN next\n");
    let ins = &d.stages[0].instructions;
    assert_eq!(ins[0].original, "RUN echo a   b");
    assert_eq!(ins[1].line, 6);
    assert_eq!(d.warnings.len(), 1);
    assert!(d.warnings[0].contains("Dockerfile:2: empty continuation line"));
}

#[test]
fn continuation_with_trailing_whitespace_and_at_eof() {
    let d = p("FROM a\nRUN a \\  \t\n b\nRUN c \\");
    let ins = &d.stages[0].instructions;
    assert_eq!(ins[0].original, "RUN a  b");
    assert_eq!(ins[1].original, "RUN c");
}

#[test]
fn escaped_backslash_at_end_still_continues() {
    // Docker only looks at the last escape token.
    let d = p("FROM a\nRUN echo \\\\\nENV A=1\n");
    assert_eq!(d.stages[0].instructions.len(), 1);
    assert_eq!(d.stages[0].instructions[0].original, "RUN echo \\ENV A=1");
}

// ---- RUN ------------------------------------------------------------------------

#[test]
fn run_shell_and_exec_forms() {
    assert!(
        matches!(one("RUN make all"), Kind::Run { cmd: Command::Shell(s), .. } if s == "make all")
    );
    assert!(matches!(
        one(r#"RUN ["/bin/bash", "-c", "echo \"hi\""]"#),
        Kind::Run { cmd: Command::Exec(v), .. } if v == strs(&["/bin/bash", "-c", "echo \"hi\""])
    ));
    // Not valid JSON: the shell form.
    assert!(matches!(
        one("RUN [ -f x ] && echo y"),
        Kind::Run { cmd: Command::Shell(s), .. } if s == "[ -f x ] && echo y"
    ));
    assert!(matches!(
        one("RUN ['single', 'quotes']"),
        Kind::Run { cmd: Command::Shell(s), .. } if s == "['single', 'quotes']"
    ));
    assert_eq!(
        perr("FROM a\nRUN [\"a\", 1]\n").message,
        "when using JSON array syntax, arrays must be comprised of strings only"
    );
}

#[test]
fn run_flags() {
    let k = one("RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok \\\n    --network=none --security=insecure pip install x");
    assert_eq!(
        k,
        Kind::Run {
            cmd: Command::Shell("pip install x".into()),
            mounts: strs(&["type=cache,target=/root/.cache", "type=secret,id=tok"]),
            network: Some("none".into()),
            security: Some("insecure".into()),
            heredocs: vec![],
        }
    );
    // Quotes in flag values are removed.
    assert!(matches!(
        one(r#"RUN --mount="type=bind,source=a b,target=/x" ls"#),
        Kind::Run { mounts, .. } if mounts == strs(&["type=bind,source=a b,target=/x"])
    ));
    // `--` ends the flags.
    assert!(matches!(
        one("RUN -- --version"),
        Kind::Run { cmd: Command::Shell(s), .. } if s == "--version"
    ));
}

#[test]
fn run_flag_errors() {
    for (line, msg) in [
        ("RUN --mount type=cache x", "missing a value on flag: mount"),
        ("RUN --foo=bar x", "unknown flag: foo"),
        (
            "RUN --network=none --network=host x",
            "duplicate flag specified: network",
        ),
        ("RUN --network=bridge x", "unsupported network mode: bridge"),
        ("RUN --security=root x", "unsupported security mode: root"),
        ("RUN --Mount=type=cache x", "unknown flag: Mount"),
    ] {
        let e = perr(&format!("FROM a\n{line}\n"));
        assert_eq!(e.message, msg, "{line}");
        assert_eq!(e.line, 2);
        assert_eq!(e.text, line);
    }
}

#[test]
fn flags_on_instructions_without_flags_are_rejected() {
    assert_eq!(perr("FROM a\nENV --x=1 A=B\n").message, "unknown flag: x");
    assert_eq!(perr("FROM a\nWORKDIR --p /x\n").message, "unknown flag: p");
    // As in Docker, the shell form of CMD cannot start with `--`.
    assert_eq!(perr("FROM a\nCMD --help\n").message, "unknown flag: help");
    assert_eq!(
        one(r#"CMD ["--help"]"#),
        Kind::Cmd(Command::Exec(strs(&["--help"])))
    );
}

// ---- heredocs -------------------------------------------------------------------

#[test]
fn run_heredoc_as_script() {
    let d = p("FROM a\nRUN <<EOF\napt-get update\napt-get install -y curl\nEOF\nRUN echo after\n");
    let ins = &d.stages[0].instructions;
    assert_eq!(ins.len(), 2);
    assert_eq!(ins[1].line, 6);
    let Kind::Run { cmd, heredocs, .. } = &ins[0].kind else {
        panic!()
    };
    assert_eq!(cmd, &Command::Shell("<<EOF".into()));
    assert_eq!(
        heredocs,
        &vec![Heredoc {
            name: "EOF".into(),
            content: "apt-get update\napt-get install -y curl\n".into(),
            expand: true,
            chomp_tabs: false,
        }]
    );
    assert_eq!(ins[0].original, "RUN <<EOF");
    assert_eq!(
        heredoc_script("<<EOF", heredocs),
        "apt-get update\napt-get install -y curl\n"
    );
}

#[test]
fn run_heredoc_on_stdin_of_command() {
    let k = one("RUN python3 <<EOF\nprint('hi')\nEOF");
    let Kind::Run { cmd, heredocs, .. } = k else {
        panic!()
    };
    assert_eq!(cmd, Command::Shell("python3 <<EOF".into()));
    assert_eq!(heredocs[0].content, "print('hi')\n");
    assert_eq!(
        heredoc_script("python3 <<EOF", &heredocs),
        "python3 <<EOF\nprint('hi')\nEOF"
    );
}

#[test]
fn quoted_heredoc_delimiters_disable_expansion() {
    for (opener, name) in [("<<\"EOF\"", "EOF"), ("<<'EOF'", "EOF"), ("<<E'O'F", "EOF")] {
        let k = one(&format!("RUN cat {opener}\n$HOME\n{name}"));
        let Kind::Run { heredocs, .. } = k else {
            panic!()
        };
        assert_eq!(heredocs[0].name, name, "{opener}");
        assert!(!heredocs[0].expand, "{opener}");
        assert_eq!(heredocs[0].content, "$HOME\n");
    }
}

#[test]
fn chomped_heredoc_strips_leading_tabs() {
    let k = one("RUN <<-EOT\n\techo a\n\t\techo b\n  echo c\n\tEOT\n");
    let Kind::Run { heredocs, .. } = k else {
        panic!()
    };
    assert!(heredocs[0].chomp_tabs);
    assert_eq!(heredocs[0].content, "echo a\necho b\n  echo c\n");
}

#[test]
fn several_heredocs_on_one_line() {
    let d = p("FROM a\nRUN <<FILE1 cat > file1 && <<FILE2 cat > file2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2\nUSER app\n");
    let ins = &d.stages[0].instructions;
    assert_eq!(ins.len(), 2);
    let Kind::Run { heredocs, cmd, .. } = &ins[0].kind else {
        panic!()
    };
    assert_eq!(
        cmd,
        &Command::Shell("<<FILE1 cat > file1 && <<FILE2 cat > file2".into())
    );
    assert_eq!(heredocs.len(), 2);
    assert_eq!(
        (heredocs[0].name.as_str(), heredocs[0].content.as_str()),
        ("FILE1", "I am\nfirst\n")
    );
    assert_eq!(
        (heredocs[1].name.as_str(), heredocs[1].content.as_str()),
        ("FILE2", "I am\nsecond\n")
    );
    assert_eq!(ins[1].kind, Kind::User("app".into()));
    assert_eq!(ins[1].line, 9);
}

#[test]
fn heredoc_body_keeps_comments_and_blank_lines() {
    let k = one("RUN <<EOF\n#!/bin/sh\n\n# comment\necho \\\nEOF");
    let Kind::Run { heredocs, .. } = k else {
        panic!()
    };
    assert_eq!(heredocs[0].content, "#!/bin/sh\n\n# comment\necho \\\n");
}

#[test]
fn copy_heredoc_and_destination() {
    let k = one("COPY <<EOF /etc/app.conf\nport=$PORT\nEOF");
    let c = copy_args(k);
    assert!(c.sources.is_empty());
    assert_eq!(c.dest, "/etc/app.conf");
    assert_eq!(c.heredocs.len(), 1);
    assert_eq!(c.heredocs[0].name, "EOF");
    assert_eq!(c.heredocs[0].content, "port=$PORT\n");
    assert!(c.heredocs[0].expand);
    assert_eq!(
        expand_heredoc(&c.heredocs[0].content, '\\', &env(&[("PORT", "80")])).unwrap(),
        "port=80\n"
    );

    let c = copy_args(one(
        "COPY --chmod=755 <<one <<'two' real.txt /dst/\nA\none\nB\ntwo",
    ));
    assert_eq!(c.sources, strs(&["real.txt"]));
    assert_eq!(c.chmod.as_deref(), Some("755"));
    assert_eq!(c.heredocs.len(), 2);
    assert_eq!(
        (c.heredocs[0].name.as_str(), c.heredocs[0].content.as_str()),
        ("one", "A\n")
    );
    assert!(!c.heredocs[1].expand);
    assert_eq!(c.heredocs[1].content, "B\n");

    assert_eq!(
        perr("FROM a\nCOPY x <<EOF\nhi\nEOF\n").message,
        "COPY cannot accept a heredoc as a destination"
    );
}

#[test]
fn expand_heredoc_keeps_quotes() {
    let out = expand_heredoc("echo \"$A\" '$A' \\$A\n", '\\', &env(&[("A", "1")])).unwrap();
    assert_eq!(out, "echo \"1\" '1' $A\n");
}

#[test]
fn unterminated_heredoc() {
    let e = perr("FROM a\nRUN <<EOF\necho hi\n");
    assert_eq!(e.message, "unterminated heredoc");
    assert_eq!(e.line, 2);
    assert_eq!(e.text, "RUN <<EOF");
}

#[test]
fn heredocs_not_recognised_elsewhere() {
    // JSON form and other instructions do not read heredoc bodies.
    let d = p("FROM a\nRUN [\"cat\", \"<<EOF\"]\nCMD cat <<EOF\nENV A=1\n");
    let ins = &d.stages[0].instructions;
    assert_eq!(ins.len(), 3);
    assert_eq!(ins[2].kind, Kind::Env(pairs(&[("A", "1")])));
    // `<<<` here-strings and `<<` inside quotes are not heredocs.
    assert!(matches!(one("RUN cat <<<word"), Kind::Run { heredocs, .. } if heredocs.is_empty()));
    assert!(matches!(one("RUN echo '<<EOF'"), Kind::Run { heredocs, .. } if heredocs.is_empty()));
}

#[test]
fn onbuild_with_heredoc() {
    let k = one("ONBUILD RUN <<EOF\necho hi\nEOF");
    assert_eq!(k, Kind::Onbuild("RUN <<EOF\necho hi\nEOF".into()));
}

// ---- COPY / ADD -------------------------------------------------------------------

#[test]
fn copy_flags_and_sources() {
    let c = copy_args(one("COPY --from=build --chown=app:app --chmod=0644 --link --parents --exclude=*.tmp --exclude=.git a b/ c /dst/"));
    assert_eq!(c.sources, strs(&["a", "b/", "c"]));
    assert_eq!(c.dest, "/dst/");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("app:app"));
    assert_eq!(c.chmod.as_deref(), Some("0644"));
    assert!(c.link);
    assert!(c.parents);
    assert_eq!(c.exclude, strs(&["*.tmp", ".git"]));
    assert_eq!(c.checksum, None);
    assert!(!c.keep_git_dir);

    let c = copy_args(one("COPY --link=false a b"));
    assert!(!c.link);
}

#[test]
fn copy_json_form() {
    let c = copy_args(one(r#"COPY ["my file.txt", "other", "/dest dir/"]"#));
    assert_eq!(c.sources, strs(&["my file.txt", "other"]));
    assert_eq!(c.dest, "/dest dir/");
    let c = copy_args(one(r#"COPY --chown=1:1 ["<<EOF", "/x"]"#));
    assert_eq!(c.sources, strs(&["<<EOF"]), "no heredocs in the JSON form");
    assert_eq!(c.chown.as_deref(), Some("1:1"));
}

#[test]
fn add_flags() {
    let c = copy_args(one("ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --chown=1 https://x/y.tgz /opt/"));
    assert_eq!(c.checksum.as_deref(), Some("sha256:abc"));
    assert!(c.keep_git_dir);
    assert_eq!(c.unpack, Some(false));
    assert_eq!(c.sources, strs(&["https://x/y.tgz"]));
    assert!(matches!(one("ADD a b"), Kind::Add(_)));
    assert_eq!(
        perr("FROM a\nADD --from=x a b\n").message,
        "unknown flag: from"
    );
    assert_eq!(
        perr("FROM a\nADD --parents a b\n").message,
        "unknown flag: parents"
    );
    assert_eq!(
        perr("FROM a\nCOPY --checksum=x a b\n").message,
        "unknown flag: checksum"
    );
}

#[test]
fn copy_errors() {
    assert_eq!(
        perr("FROM a\nCOPY onlyone\n").message,
        "COPY requires at least two arguments, but only one was provided. Destination could not be determined."
    );
    assert_eq!(
        perr("FROM a\nADD\n").message,
        "ADD requires at least two arguments, but only one was provided. Destination could not be determined."
    );
    assert_eq!(
        perr("FROM a\nCOPY --link=maybe a b\n").message,
        "expecting boolean value for flag link, not: maybe"
    );
    assert_eq!(
        perr("FROM a\nCOPY --link= a b\n").message,
        "missing a value on flag: link"
    );
    assert_eq!(
        perr("FROM a\nCOPY --from a b\n").message,
        "missing a value on flag: from"
    );
}

// ---- ENV / LABEL / ARG ------------------------------------------------------------

#[test]
fn env_forms() {
    assert_eq!(
        one("ENV PATH /usr/local/bin:$PATH"),
        Kind::Env(pairs(&[("PATH", "/usr/local/bin:$PATH")]))
    );
    assert_eq!(
        one("ENV MSG hello   world"),
        Kind::Env(pairs(&[("MSG", "hello   world")]))
    );
    assert_eq!(
        one(r#"ENV A=1 B="two words" C=three\ words D='$lit' E="""#),
        Kind::Env(pairs(&[
            ("A", "1"),
            ("B", "\"two words\""),
            ("C", "three\\ words"),
            ("D", "'$lit'"),
            ("E", "\"\""),
        ]))
    );
}

#[test]
fn env_values_expand_like_docker() {
    let Kind::Env(list) = one(r#"ENV B="two words" C=three\ words D='$A' E=${A}x F="a\"b""#) else {
        panic!()
    };
    let vars = env(&[("A", "1")]);
    let got: Vec<String> = list
        .iter()
        .map(|(_, v)| expand(v, '\\', &vars).unwrap())
        .collect();
    assert_eq!(got, strs(&["two words", "three words", "$A", "1x", "a\"b"]));
}

#[test]
fn env_errors() {
    assert_eq!(
        perr("FROM a\nENV\n").message,
        "ENV requires at least one argument"
    );
    assert_eq!(
        perr("FROM a\nENV ONLYKEY\n").message,
        "ENV must have two arguments"
    );
    assert_eq!(
        perr("FROM a\nENV =x\n").message,
        "ENV names can not be blank"
    );
    assert_eq!(
        perr("FROM a\nENV a=1 b\n").message,
        "Syntax error - can't find = in \"b\". Must be of the form: name=value"
    );
}

#[test]
fn label_forms() {
    assert_eq!(
        one(
            r#"LABEL "com.example.vendor"="ACME Incorporated" version=1.0 description="multi \
line""#
        ),
        Kind::Label(pairs(&[
            ("\"com.example.vendor\"", "\"ACME Incorporated\""),
            ("version", "1.0"),
            ("description", "\"multi line\""),
        ]))
    );
    assert_eq!(
        one("LABEL maintainer someone"),
        Kind::Label(pairs(&[("maintainer", "someone")]))
    );
    assert_eq!(
        perr("FROM a\nLABEL\n").message,
        "LABEL requires at least one argument"
    );
}

#[test]
fn arg_forms() {
    assert_eq!(
        one(r#"ARG A B=2 C="x y" D="#),
        Kind::Arg(vec![
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("2".into())
            },
            ArgDecl {
                name: "C".into(),
                default: Some("\"x y\"".into())
            },
            ArgDecl {
                name: "D".into(),
                default: Some(String::new())
            },
        ])
    );
    assert_eq!(
        perr("FROM a\nARG\n").message,
        "ARG requires at least one argument"
    );
    assert_eq!(
        perr("FROM a\nARG =1\n").message,
        "ARG names can not be blank"
    );
}

// ---- single-value and list instructions -------------------------------------------

#[test]
fn workdir_user_stopsignal() {
    assert_eq!(
        one("WORKDIR /app/$NAME"),
        Kind::Workdir("/app/$NAME".into())
    );
    assert_eq!(one("USER 1000:1000"), Kind::User("1000:1000".into()));
    assert_eq!(
        one("STOPSIGNAL SIGTERM"),
        Kind::StopSignal("SIGTERM".into())
    );
    for (name, kw) in [
        ("WORKDIR", "WORKDIR"),
        ("user", "USER"),
        ("StopSignal", "STOPSIGNAL"),
    ] {
        assert_eq!(
            perr(&format!("FROM a\n{name}\n")).message,
            format!("{kw} requires exactly one argument")
        );
    }
}

#[test]
fn expose_and_volume() {
    assert_eq!(
        one("EXPOSE 80/tcp 443  $PORTS"),
        Kind::Expose(strs(&["80/tcp", "443", "$PORTS"]))
    );
    assert_eq!(
        perr("FROM a\nEXPOSE\n").message,
        "EXPOSE requires at least one argument"
    );
    assert_eq!(
        one("VOLUME /data /logs"),
        Kind::Volume(strs(&["/data", "/logs"]))
    );
    assert_eq!(
        one(r#"VOLUME ["/data", "/var/my logs"]"#),
        Kind::Volume(strs(&["/data", "/var/my logs"]))
    );
    assert_eq!(
        perr("FROM a\nVOLUME\n").message,
        "VOLUME requires at least one argument"
    );
    assert_eq!(
        perr("FROM a\nVOLUME [\"\"]\n").message,
        "VOLUME specified can not be an empty string"
    );
    let ports = expand_words("$PORTS", '\\', &env(&[("PORTS", "8080 9090/udp")])).unwrap();
    assert_eq!(ports, strs(&["8080", "9090/udp"]));
}

#[test]
fn cmd_entrypoint_shell() {
    assert_eq!(
        one("CMD [\"python\", \"app.py\"]"),
        Kind::Cmd(Command::Exec(strs(&["python", "app.py"])))
    );
    assert_eq!(
        one("CMD python app.py"),
        Kind::Cmd(Command::Shell("python app.py".into()))
    );
    assert_eq!(one("CMD []"), Kind::Cmd(Command::Exec(vec![])));
    assert_eq!(
        one("ENTRYPOINT [\"/init\"]"),
        Kind::Entrypoint(Command::Exec(strs(&["/init"])))
    );
    assert_eq!(
        one("ENTRYPOINT exec /init"),
        Kind::Entrypoint(Command::Shell("exec /init".into()))
    );
    assert_eq!(
        one("SHELL [\"/bin/bash\", \"-eo\", \"pipefail\", \"-c\"]"),
        Kind::Shell(strs(&["/bin/bash", "-eo", "pipefail", "-c"]))
    );
    assert_eq!(
        perr("FROM a\nSHELL /bin/bash -c\n").message,
        "SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        perr("FROM a\nSHELL []\n").message,
        "SHELL requires at least one argument"
    );
    assert_eq!(
        perr("FROM a\nSHELL\n").message,
        "SHELL requires at least one argument"
    );
}

#[test]
fn healthcheck_forms() {
    assert_eq!(one("HEALTHCHECK NONE"), Kind::Healthcheck(None));
    assert_eq!(one("healthcheck none"), Kind::Healthcheck(None));
    assert_eq!(
        one("HEALTHCHECK --interval=30s --timeout=3s --start-period=1m30s --start-interval=500ms --retries=3 \\\n  CMD curl -f http://localhost/ || exit 1"),
        Kind::Healthcheck(Some(Healthcheck {
            test: strs(&["CMD-SHELL", "curl -f http://localhost/ || exit 1"]),
            interval: Some("30s".into()),
            timeout: Some("3s".into()),
            start_period: Some("1m30s".into()),
            start_interval: Some("500ms".into()),
            retries: Some(3),
        }))
    );
    assert_eq!(
        one(r#"HEALTHCHECK CMD ["/bin/check", "--quick"]"#),
        Kind::Healthcheck(Some(Healthcheck {
            test: strs(&["CMD", "/bin/check", "--quick"]),
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        }))
    );
}

#[test]
fn healthcheck_errors() {
    for (line, msg) in [
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        (
            "HEALTHCHECK CMD []",
            "Missing command after HEALTHCHECK CMD",
        ),
        (
            "HEALTHCHECK RUN x",
            "Unknown type \"RUN\" in HEALTHCHECK (try CMD)",
        ),
        (
            "HEALTHCHECK --interval=5 CMD x",
            "time: missing unit in duration \"5\"",
        ),
        (
            "HEALTHCHECK --interval=5x CMD x",
            "time: unknown unit \"x\" in duration \"5x\"",
        ),
        (
            "HEALTHCHECK --timeout=1ns CMD x",
            "Interval \"timeout\" cannot be less than 1ms",
        ),
        (
            "HEALTHCHECK --retries=-1 CMD x",
            "--retries cannot be negative (-1)",
        ),
        (
            "HEALTHCHECK --retries=x CMD x",
            "strconv.ParseInt: parsing \"x\": invalid syntax",
        ),
        ("HEALTHCHECK --every=5s CMD x", "unknown flag: every"),
    ] {
        let e = perr(&format!("FROM a\n{line}\n"));
        assert_eq!(e.message, msg, "{line}");
        assert_eq!(e.line, 2);
    }
}

#[test]
fn go_durations() {
    assert_eq!(parse_go_duration("0"), Ok(0));
    assert_eq!(parse_go_duration("1s"), Ok(1_000_000_000));
    assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
    assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
    assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
    assert_eq!(parse_go_duration("-2ms"), Ok(-2_000_000));
    assert_eq!(parse_go_duration("10us"), Ok(10_000));
    assert_eq!(parse_go_duration("10µs"), Ok(10_000));
    assert_eq!(parse_go_duration("3ns"), Ok(3));
    assert!(parse_go_duration("").is_err());
    assert!(parse_go_duration("s").is_err());
    assert!(parse_go_duration(".s").is_err());
    assert!(parse_go_duration("99999999999999h").is_err());
}

#[test]
fn onbuild() {
    assert_eq!(
        one("ONBUILD COPY . /app/src"),
        Kind::Onbuild("COPY . /app/src".into())
    );
    assert_eq!(
        one("onbuild   RUN --mount=type=cache,target=/x make"),
        Kind::Onbuild("RUN --mount=type=cache,target=/x make".into())
    );
    assert_eq!(
        perr("FROM a\nONBUILD\n").message,
        "ONBUILD requires at least one argument"
    );
    assert_eq!(
        perr("FROM a\nONBUILD ONBUILD RUN x\n").message,
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        perr("FROM a\nONBUILD from x\n").message,
        "FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        perr("FROM a\nONBUILD MAINTAINER x\n").message,
        "MAINTAINER isn't allowed as an ONBUILD trigger"
    );
}

#[test]
fn kind_names() {
    let k = kinds("FROM a\nRUN x\nCOPY a b\nHEALTHCHECK NONE\nSTOPSIGNAL 9\n");
    let names: Vec<_> = k.iter().map(Kind::name).collect();
    assert_eq!(names, ["RUN", "COPY", "HEALTHCHECK", "STOPSIGNAL"]);
}

#[test]
fn serializes_to_json() {
    let d = p("FROM a AS b\nRUN x\n");
    let json = serde_json::to_string(&d).unwrap();
    let back: Dockerfile = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d);
}

// ---- variable substitution ---------------------------------------------------------

#[test]
fn expand_simple_and_braced() {
    let v = [("A", "x"), ("EMPTY", ""), ("LONG_NAME1", "y")];
    assert_eq!(x("$A", &v).unwrap(), "x");
    assert_eq!(x("${A}", &v).unwrap(), "x");
    assert_eq!(x("pre-$A-post", &v).unwrap(), "pre-x-post");
    assert_eq!(x("${A}b", &v).unwrap(), "xb");
    assert_eq!(x("$Ab", &v).unwrap(), "", "the name is Ab, unset");
    assert_eq!(x("$LONG_NAME1/z", &v).unwrap(), "y/z");
    assert_eq!(x("$UNSET", &v).unwrap(), "");
    assert_eq!(x("$", &v).unwrap(), "$");
    assert_eq!(x("a$ b", &v).unwrap(), "a$ b");
    assert_eq!(x("$1", &v).unwrap(), "");
    assert_eq!(x("$A$A", &v).unwrap(), "xx");
}

#[test]
fn expand_defaults_and_alternatives() {
    let v = [("SET", "v"), ("EMPTY", "")];
    assert_eq!(x("${SET:-d}", &v).unwrap(), "v");
    assert_eq!(x("${EMPTY:-d}", &v).unwrap(), "d");
    assert_eq!(x("${UNSET:-d}", &v).unwrap(), "d");
    assert_eq!(x("${SET-d}", &v).unwrap(), "v");
    assert_eq!(
        x("${EMPTY-d}", &v).unwrap(),
        "",
        "set but empty keeps the empty value"
    );
    assert_eq!(x("${UNSET-d}", &v).unwrap(), "d");
    assert_eq!(x("${SET:+alt}", &v).unwrap(), "alt");
    assert_eq!(x("${EMPTY:+alt}", &v).unwrap(), "");
    assert_eq!(x("${UNSET:+alt}", &v).unwrap(), "");
    assert_eq!(x("${SET+alt}", &v).unwrap(), "alt");
    assert_eq!(
        x("${EMPTY+alt}", &v).unwrap(),
        "alt",
        "set (even empty) gives alt"
    );
    assert_eq!(x("${UNSET+alt}", &v).unwrap(), "");
    assert_eq!(x("${UNSET:-two words}", &v).unwrap(), "two words");
}

#[test]
fn expand_nested() {
    let v = [("B", "bee"), ("C", "")];
    assert_eq!(x("${A:-${B}}", &v).unwrap(), "bee");
    assert_eq!(x("${A:-${C:-${B}-x}}", &v).unwrap(), "bee-x");
    assert_eq!(x("${B:+[${B}]}", &v).unwrap(), "[bee]");
    assert_eq!(x("${A:-$B}", &v).unwrap(), "bee");
}

#[test]
fn expand_quotes_and_escapes() {
    let v = [("A", "x")];
    assert_eq!(x("'$A'", &v).unwrap(), "$A");
    assert_eq!(x("\"$A\"", &v).unwrap(), "x");
    assert_eq!(x("\\$A", &v).unwrap(), "$A");
    assert_eq!(x("\"\\$A\"", &v).unwrap(), "$A");
    assert_eq!(x("\"a\\\"b\"", &v).unwrap(), "a\"b");
    assert_eq!(
        x("\"a\\nb\"", &v).unwrap(),
        "a\\nb",
        "other escapes stay in double quotes"
    );
    assert_eq!(
        x("a\\nb", &v).unwrap(),
        "anb",
        "outside quotes the escape is removed"
    );
    assert_eq!(x("'a\\b'", &v).unwrap(), "a\\b");
    assert_eq!(x("it'\"'s", &v).unwrap(), "it\"s");
    assert_eq!(x("trailing\\", &v).unwrap(), "trailing");
    assert_eq!(x("${A:-'q'}", &v).unwrap(), "x");
    assert_eq!(x("${U:-'$A'}", &v).unwrap(), "$A");
    assert_eq!(expand("`$A", '`', &env(&v)).unwrap(), "$A");
    assert_eq!(expand("\\$A", '`', &env(&v)).unwrap(), "\\x");
}

#[test]
fn expand_errors() {
    let v = [("A", "x"), ("E", "")];
    assert_eq!(
        x("${A:=d}", &v).unwrap_err(),
        "unsupported modifier (:=) in substitution"
    );
    assert_eq!(
        x("${A=d}", &v).unwrap_err(),
        "unsupported modifier (=) in substitution"
    );
    assert_eq!(
        x("${A:#x}", &v).unwrap_err(),
        "unsupported modifier (:#) in substitution"
    );
    assert_eq!(x("${A", &v).unwrap_err(), "syntax error: missing '}'");
    assert_eq!(x("${A:-x", &v).unwrap_err(), "syntax error: missing '}'");
    assert_eq!(x("${}", &v).unwrap_err(), "syntax error: bad substitution");
    assert_eq!(
        x("${:-x}", &v).unwrap_err(),
        "syntax error: bad substitution"
    );
    assert_eq!(
        x("'open", &v).unwrap_err(),
        "unexpected end of statement while looking for matching single-quote"
    );
    assert_eq!(
        x("\"open", &v).unwrap_err(),
        "unexpected end of statement while looking for matching double-quote"
    );
    // `?` is supported by BuildKit: an error only when unset (or empty with `:`).
    assert_eq!(x("${A:?need A}", &v).unwrap(), "x");
    assert_eq!(x("${U:?need U}", &v).unwrap_err(), "U: need U");
    assert_eq!(
        x("${E:?}", &v).unwrap_err(),
        "E: is not allowed to be empty"
    );
    assert_eq!(x("${E?}", &v).unwrap(), "");
    assert_eq!(x("${U?}", &v).unwrap_err(), "U: is not allowed to be unset");
}

#[test]
fn expand_pattern_trimming_and_replacement() {
    let v = [("P", "/usr/local/bin/tool.tar.gz"), ("V", "v1.2.3")];
    assert_eq!(x("${P#*/}", &v).unwrap(), "usr/local/bin/tool.tar.gz");
    assert_eq!(x("${P##*/}", &v).unwrap(), "tool.tar.gz");
    assert_eq!(x("${P%.*}", &v).unwrap(), "/usr/local/bin/tool.tar");
    assert_eq!(x("${P%%.*}", &v).unwrap(), "/usr/local/bin/tool");
    assert_eq!(x("${V#v}", &v).unwrap(), "1.2.3");
    assert_eq!(x("${V#x}", &v).unwrap(), "v1.2.3");
    assert_eq!(x("${V/./-}", &v).unwrap(), "v1-2.3");
    assert_eq!(x("${V//./-}", &v).unwrap(), "v1-2-3");
    assert_eq!(x("${V/[0-9]/N}", &v).unwrap(), "vN.2.3");
    assert_eq!(x("${U#x}", &v).unwrap(), "");
}

#[test]
fn expand_words_splitting() {
    let vars = env(&[("TWO", "a b"), ("E", "")]);
    let w = |t: &str| expand_words(t, '\\', &vars).unwrap();
    assert_eq!(w("x y  z"), strs(&["x", "y", "z"]));
    assert_eq!(w("$TWO c"), strs(&["a", "b", "c"]));
    assert_eq!(w("\"$TWO\" c"), strs(&["a b", "c"]));
    assert_eq!(w("'x y' z"), strs(&["x y", "z"]));
    assert_eq!(w("x\\ y"), strs(&["x y"]));
    assert_eq!(w("pre$TWO"), strs(&["prea", "b"]));
    assert_eq!(w("$E"), Vec::<String>::new());
    assert_eq!(w("\"\" x"), strs(&["x"]));
    assert_eq!(w(""), Vec::<String>::new());
    assert!(expand_words("'x", '\\', &vars).is_err());
}

#[test]
fn full_example_dockerfile() {
    let text = r#"# syntax=docker/dockerfile:1
ARG PYTHON=3.12
FROM python:${PYTHON}-slim AS base
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1
WORKDIR /app

FROM base AS deps
COPY requirements.txt .
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -r requirements.txt

FROM deps
COPY --chown=1000:1000 src/ ./src/
USER 1000
EXPOSE 8000
HEALTHCHECK --interval=10s CMD curl -fs localhost:8000/health
ENTRYPOINT ["python", "-m", "src.app"]
CMD ["--port", "8000"]
"#;
    let d = p(text);
    assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(d.global_args[0].name, "PYTHON");
    assert_eq!(d.stages.len(), 3);
    assert_eq!(d.stages[0].base, "python:${PYTHON}-slim");
    let base = expand(&d.stages[0].base, d.escape, &|n: &str| {
        (n == "PYTHON").then(|| "3.12".to_string())
    })
    .unwrap();
    assert_eq!(base, "python:3.12-slim");
    assert_eq!(
        d.stages[0].instructions[0].kind,
        Kind::Env(pairs(&[
            ("PIP_NO_CACHE_DIR", "1"),
            ("PYTHONUNBUFFERED", "1")
        ]))
    );
    assert_eq!(d.stages[1].base, "base");
    assert_eq!(d.stages[1].instructions[1].line, 10);
    assert_eq!(
        d.stages[1].instructions[1].original,
        "RUN --mount=type=cache,target=/root/.cache/pip     pip install -r requirements.txt"
    );
    assert_eq!(d.stages[2].name, None);
    assert_eq!(d.stages[2].instructions.len(), 6);
    assert!(d.warnings.is_empty());
}
