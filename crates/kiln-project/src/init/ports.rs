//! `[app].ports`: the port named in the Python code (assignments, server calls, environment
//! defaults), else in the Procfile, Dockerfile, compose files, scripts or README, else the
//! framework's default.

use super::candidates::{AppKind, Candidate, NOT_APP_FILES};
use super::detector::Detector;
use super::scan::{find_ci, is_ident_byte, is_ident_char, Framework};
use super::util::{file_name, in_dirs, list_some};
use super::{MAX_TEXT_BYTES, TEST_DIRS};
use std::collections::BTreeSet;

/// Names whose assignment (or keyword argument in a server call) gives the port.
const PORT_NAMES: &[&str] = &[
    "port",
    "PORT",
    "server_port",
    "SERVER_PORT",
    "app_port",
    "APP_PORT",
    "http_port",
    "HTTP_PORT",
    "listen_port",
    "LISTEN_PORT",
];

/// Environment variables whose default in the code gives the port.
const PORT_ENV: &[&str] = &[
    "PORT",
    "APP_PORT",
    "SERVER_PORT",
    "HTTP_PORT",
    "GRADIO_SERVER_PORT",
    "STREAMLIT_SERVER_PORT",
];

/// Calls whose `port=` keyword is the server's.
const SERVER_CALLS: &[&str] = &[
    "run",
    "launch",
    "serve",
    "run_app",
    "run_simple",
    "run_server",
    "start_server",
    "Config",
    "listen",
];

/// Where the `(` of a server call (`uvicorn.run(`, `demo.launch(`) on the line is.
pub(super) fn server_call_start(line: &str) -> Option<usize> {
    if !line.contains('(') {
        return None;
    }
    SERVER_CALLS.iter().find_map(|name| {
        let mut from = 0;
        while let Some(pos) = line[from..].find(name) {
            let i = from + pos;
            from = i + name.len();
            if line[from..].starts_with('(') && !line[..i].ends_with(is_ident_char) {
                return Some(from);
            }
        }
        None
    })
}

pub(super) fn paren_balance(s: &str) -> i32 {
    s.chars().fold(0, |n, c| match c {
        '(' => n + 1,
        ')' => n - 1,
        _ => n,
    })
}

/// A port number at the start of `s` (digits not followed by more of a word).
fn leading_port(s: &str) -> Option<u16> {
    let digits: &str = &s[..s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())];
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    if s[digits.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_') {
        return None;
    }
    digits.parse::<u16>().ok().filter(|p| *p > 0)
}

/// The port in `= 8000`, `: int = 8000`, `=int("8000")` after a port name.
fn assigned_port(after: &str) -> Option<u16> {
    let mut s = after.trim_start();
    if let Some(rest) = s.strip_prefix(':') {
        s = &rest[rest.find('=')?..];
    }
    let rest = s.strip_prefix('=')?;
    if rest.starts_with('=') {
        return None;
    }
    let rest = rest.trim_start();
    let rest = rest.strip_prefix("int(").unwrap_or(rest).trim_start();
    leading_port(rest.trim_start_matches(['"', '\'']))
}

/// Ports a Python code line names.
pub(super) fn python_line_ports(line: &str, in_server_call: bool) -> Vec<u16> {
    let mut out = Vec::new();
    if find_ci(line.as_bytes(), b"port").is_none() && !line.contains("0.0.0.0:") {
        return out;
    }
    let statement = |prefix: &str| {
        let p = prefix.trim();
        p.is_empty() || p == "self."
    };
    // Identifiers containing "port": the names of PORT_NAMES, and PORT_ENV in quotes.
    let bytes = line.as_bytes();
    let mut at = 0;
    while let Some(pos) = find_ci(&bytes[at..], b"port") {
        let hit = at + pos;
        let mut start = hit;
        while start > 0 && is_ident_byte(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = hit + 4;
        while end < bytes.len() && is_ident_byte(bytes[end]) {
            end += 1;
        }
        at = end;
        if !line.is_char_boundary(start) || !line.is_char_boundary(end) {
            continue;
        }
        let (before, name, after) = (&line[..start], &line[start..end], &line[end..]);
        if PORT_NAMES.contains(&name) && (in_server_call || statement(before)) {
            out.extend(assigned_port(after));
        }
        if PORT_ENV.contains(&name) {
            let quote = before
                .chars()
                .next_back()
                .filter(|c| matches!(c, '"' | '\''));
            let rest = quote.and_then(|q| after.strip_prefix(q));
            if let Some(rest) = rest.and_then(|r| r.trim_start().strip_prefix(',')) {
                out.extend(leading_port(
                    rest.trim_start().trim_start_matches(['"', '\'']),
                ));
            }
        }
    }
    if line.contains("\"--port\"") || line.contains("'--port'") {
        if let Some(i) = line.find("default=") {
            out.extend(leading_port(line[i + 8..].trim_start_matches(['"', '\''])));
        }
    }
    if let Some(i) = line.find("0.0.0.0:") {
        out.extend(leading_port(&line[i + 8..]));
    }
    out
}

/// Ports a command line or config line names (Procfile, Dockerfile, README, scripts):
/// `--port 8000`, `--server.port=8501`, `EXPOSE 8000`, `-p 8080:8000`, `--bind 0.0.0.0:8000`,
/// `PORT=8000`, `${PORT:-8000}`, `internal_port = 8080`.
pub(super) fn text_line_ports(line: &str) -> Vec<u16> {
    let tokens: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '"' | '\'' | '`'))
        .filter(|t| !t.is_empty())
        .collect();
    let mut out = Vec::new();
    let after_colon = |t: &str| t.rsplit(':').next().and_then(leading_port);
    for (i, t) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1).copied().unwrap_or("");
        let flag_value = |flag: &str| t.strip_prefix(flag).and_then(|r| r.strip_prefix('='));
        for flag in ["--port", "--server.port", "--server_port"] {
            if *t == flag {
                out.extend(leading_port(next));
            } else if let Some(v) = flag_value(flag) {
                out.extend(leading_port(v));
            }
        }
        match *t {
            "EXPOSE" | "expose" => out.extend(leading_port(next.split('/').next().unwrap_or(""))),
            "-p" | "--publish" => out.extend(after_colon(next.split('/').next().unwrap_or(""))),
            "-b" | "--bind" => out.extend(after_colon(next)),
            "internal_port" | "internal_port=" => {
                out.extend(
                    leading_port(next.trim_start_matches('='))
                        .or_else(|| tokens.get(i + 2).and_then(|n| leading_port(n))),
                );
            }
            "PORT" if i > 0 && tokens[i - 1] == "ENV" => out.extend(leading_port(next)),
            _ => {}
        }
        if let Some(v) = t
            .strip_prefix("PORT=")
            .or_else(|| t.strip_prefix("ENV PORT="))
        {
            out.extend(leading_port(v));
        }
        if let Some(i) = t.find(":-") {
            if t[..i].ends_with("PORT") {
                out.extend(leading_port(&t[i + 2..]));
            }
        }
        if let Some(i) = t.find("0.0.0.0:") {
            out.extend(leading_port(&t[i + 8..]));
        }
    }
    out
}

/// Rank of a top-level file as a place where ports are named (lower is stronger).
fn port_file_rank(path: &str) -> Option<u8> {
    let name = file_name(path).to_ascii_lowercase();
    let strong = name == "procfile"
        || name.starts_with("dockerfile")
        || name.starts_with("containerfile")
        || name.ends_with(".dockerfile")
        || name.starts_with("docker-compose")
        || name.starts_with("compose.")
        || name == "fly.toml"
        || name == "makefile"
        || name.ends_with(".sh")
        || name == ".env.example";
    if strong {
        Some(2)
    } else if name.starts_with("readme") {
        Some(3)
    } else {
        None
    }
}

impl Detector<'_> {
    /// Ports named outside the Python code: Procfile, Dockerfile, compose files, scripts
    /// (rank 2), README (rank 3). Each with where it was found.
    pub(super) fn other_ports(&mut self) -> Vec<(u16, String)> {
        let mut found: Vec<(u8, u16, String)> = Vec::new();
        let files: Vec<String> = self
            .tree
            .files_in("")
            .map(|f| f.path.clone())
            .filter(|p| port_file_rank(p).is_some())
            .collect();
        for path in files {
            let Some(rank) = port_file_rank(&path) else {
                continue;
            };
            let Some(text) = self.text(&path, MAX_TEXT_BYTES) else {
                continue;
            };
            for (i, line) in text.lines().enumerate() {
                for port in text_line_ports(line) {
                    found.push((rank, port, format!("{path}:{}", i + 1)));
                }
            }
        }
        found.sort_by_key(|(rank, _, _)| *rank);
        found.into_iter().map(|(_, p, w)| (p, w)).collect()
    }

    /// The port: the flag, else the app file's, else the other Python files of the app,
    /// else the Procfile/Dockerfile/README; for web apps the framework's default.
    pub(super) fn port(&mut self, chosen: &Candidate) -> Option<u16> {
        if let Some(port) = self.opts.port {
            self.detected(format!("port: {port} (from the --port flag)"));
            return Some(port);
        }
        if let Some((port, _, whose)) = chosen.kind.server() {
            self.detected(format!("port: {port} ({whose}'s default)"));
            return Some(port);
        }
        let mut found: Vec<(u16, String)> = Vec::new();
        if let Some(scan) = self.sources.get(&chosen.file) {
            found.extend(
                scan.ports
                    .iter()
                    .map(|(p, line)| (*p, format!("{}:{line}", chosen.file))),
            );
        }
        // Then the app's other files, then the other top-level files.
        let top_level = self.sources.keys().filter(|f| {
            !f.contains('/') && !f.starts_with("test_") && !NOT_APP_FILES.contains(&f.as_str())
        });
        let mut seen_files = BTreeSet::from([chosen.file.as_str()]);
        for file in self.closure.iter().chain(top_level) {
            let name = file_name(file);
            let test = in_dirs(file, TEST_DIRS) || name.starts_with("test_");
            if test || !seen_files.insert(file.as_str()) {
                continue;
            }
            if let Some(scan) = self.sources.get(file) {
                found.extend(
                    scan.ports
                        .iter()
                        .map(|(p, line)| (*p, format!("{file}:{line}"))),
                );
            }
        }
        found.extend(self.other_ports());
        if let Some((port, at)) = found.first().cloned() {
            let mut others: Vec<String> = Vec::new();
            let mut seen = BTreeSet::from([port]);
            for (p, at) in &found {
                if seen.insert(*p) {
                    others.push(format!("{p} ({at})"));
                }
            }
            let mut line = format!("port: {port} ({at})");
            if !others.is_empty() {
                line.push_str(&format!("; also named: {}", list_some(&others)));
            }
            self.detected(line);
            return Some(port);
        }
        let default = match &chosen.kind {
            AppKind::Web(app) if app.framework == Framework::Flask && !self.has_dep("gunicorn") => {
                Some((5000, "flask run's default"))
            }
            AppKind::Web(_) => Some((8000, "the server's default")),
            AppKind::Gradio => Some((7860, "Gradio's default")),
            AppKind::Streamlit => Some((8501, "Streamlit's default")),
            _ => None,
        };
        match default {
            Some((port, why)) => {
                self.missing(format!(
                    "no port found in the code: assumed {port} ({why}); check [app].ports"
                ));
                Some(port)
            }
            None => {
                self.detected("no port found: the app serves none, or set [app].ports");
                None
            }
        }
    }
}
