//! The line-based scan of a Python file: app objects (FastAPI, Starlette, Flask, Gradio,
//! Streamlit), `__main__` blocks, imports, health routes, path literals, runtime downloads
//! and the ports it names (see [`super::ports`]).

use super::detector::Detector;
use super::ports::{paren_balance, python_line_ports, server_call_start};
use super::util::{human_size, list_some};
use super::{MAX_SOURCE_BYTES, MAX_SOURCE_TOTAL};

/// A web framework app object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Framework {
    FastApi,
    Starlette,
    Flask,
}

impl Framework {
    pub(super) fn label(self) -> &'static str {
        match self {
            Framework::FastApi => "FastAPI",
            Framework::Starlette => "Starlette",
            Framework::Flask => "Flask",
        }
    }

    pub(super) fn rank(self) -> u8 {
        match self {
            Framework::FastApi | Framework::Starlette => 0,
            Framework::Flask => 1,
        }
    }
}

/// `app = FastAPI(...)`, or a factory function that makes one.
#[derive(Clone, Debug)]
pub(super) struct AppDef {
    pub(super) framework: Framework,
    pub(super) var: String,
    /// The top-level function the assignment is in.
    pub(super) factory: Option<String>,
}

/// A string literal that may name a path.
#[derive(Debug)]
pub(super) struct Literal {
    pub(super) text: String,
    /// The line is about paths (`Path(`, `open(`, `join(`, ...).
    pub(super) pathy: bool,
    /// The line builds on `__file__`: the path is relative to the file's directory.
    pub(super) file_relative: bool,
}

/// What a Python file shows.
#[derive(Default, Debug)]
pub(super) struct PyScan {
    pub(super) apps: Vec<AppDef>,
    pub(super) gradio: bool,
    pub(super) streamlit: bool,
    pub(super) main_block: bool,
    /// (port, line)
    pub(super) ports: Vec<(u16, usize)>,
    /// (decorated object or `None` for `Route(...)`, path)
    pub(super) health: Vec<(Option<String>, String)>,
    /// Dotted module names of absolute imports.
    pub(super) imports: Vec<String>,
    /// String literals that look like paths.
    pub(super) literals: Vec<Literal>,
    /// The code downloads models at run time.
    pub(super) downloads: bool,
    /// BentoML services: `@bentoml.service` classes.
    pub(super) bento: Vec<String>,
    /// BentoML services of before 1.2: `bentoml.Service(...)` objects.
    pub(super) bento_legacy: Vec<String>,
}

/// Each physical line with comments and the insides of triple-quoted strings removed
/// (one-line strings are kept).
fn code_lines(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut triple: Option<char> = None;
    for line in src.lines() {
        let chars: Vec<char> = line.chars().collect();
        let mut code = String::with_capacity(line.len());
        let mut single: Option<char> = None;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let tripled = |q: char| chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q);
            if let Some(q) = triple {
                if c == '\\' {
                    i += 2;
                } else if c == q && tripled(q) {
                    triple = None;
                    code.push_str("\"\"");
                    i += 3;
                } else {
                    i += 1;
                }
                continue;
            }
            if let Some(q) = single {
                code.push(c);
                if c == '\\' {
                    if let Some(&next) = chars.get(i + 1) {
                        code.push(next);
                    }
                    i += 2;
                    continue;
                }
                if c == q {
                    single = None;
                }
                i += 1;
                continue;
            }
            match c {
                '#' => break,
                '"' | '\'' if tripled(c) => {
                    triple = Some(c);
                    i += 3;
                }
                '"' | '\'' => {
                    single = Some(c);
                    code.push(c);
                    i += 1;
                }
                _ => {
                    code.push(c);
                    i += 1;
                }
            }
        }
        out.push(code);
    }
    out
}

/// The contents of the one-line string literals on a code line.
fn string_literals(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let q = bytes[i];
        if q != b'"' && q != b'\'' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        while j < bytes.len() && bytes[j] != q {
            j += if bytes[j] == b'\\' { 2 } else { 1 };
        }
        if j >= bytes.len() {
            break;
        }
        out.push(&line[start..j]);
        i = j + 1;
    }
    out
}

pub(super) fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub(super) fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Where `needle` (ASCII) first occurs in `hay`, ignoring ASCII case.
pub(super) fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

pub(super) fn is_identifier(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && s.chars().all(is_ident_char)
}

/// `name` of a top-level `def name(` / `async def name(`.
fn def_name(line: &str) -> Option<String> {
    let rest = line
        .strip_prefix("async ")
        .unwrap_or(line)
        .trim_start()
        .strip_prefix("def ")?;
    let name: String = rest
        .trim_start()
        .chars()
        .take_while(|c| is_ident_char(*c))
        .collect();
    (!name.is_empty()).then_some(name)
}

/// `(lhs, rhs)` of a plain assignment statement.
fn split_assignment(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    let i = (0..bytes.len()).find(|&i| {
        bytes[i] == b'='
            && bytes.get(i + 1) != Some(&b'=')
            && !(i > 0 && b"=!<>:+-*/%&|^@".contains(&bytes[i - 1]))
    })?;
    Some((&line[..i], &line[i + 1..]))
}

/// `app = FastAPI(`, `api: FastAPI = fastapi.FastAPI(`, `server = Flask(`.
fn app_assignment(line: &str) -> Option<(Framework, String)> {
    let (lhs, rhs) = split_assignment(line)?;
    let var = lhs.split(':').next()?.trim();
    if !is_identifier(var) {
        return None;
    }
    let rhs = rhs.trim_start();
    let callee = rhs[..rhs.find('(')?].trim();
    if !callee.split('.').all(is_identifier) {
        return None;
    }
    let framework = match callee.rsplit('.').next()? {
        "FastAPI" => Framework::FastApi,
        "Starlette" => Framework::Starlette,
        "Flask" => Framework::Flask,
        _ => return None,
    };
    Some((framework, var.to_string()))
}

/// Dotted module names a line imports (absolute imports only).
fn imports_of(line: &str) -> Vec<String> {
    if let Some(rest) = line.strip_prefix("import ") {
        return rest
            .split(',')
            .filter_map(|part| part.split_whitespace().next())
            .filter(|m| m.split('.').all(is_identifier))
            .map(str::to_string)
            .collect();
    }
    if let Some(rest) = line.strip_prefix("from ") {
        if let Some(m) = rest.split_whitespace().next() {
            if m != "__future__" && m.split('.').all(is_identifier) {
                return vec![m.to_string()];
            }
        }
    }
    Vec::new()
}

fn is_health(path: &str) -> bool {
    matches!(path.trim_end_matches('/'), "/health" | "/healthz")
}

/// A `/health` or `/healthz` route: `@app.get("/health")`, `app.add_api_route("/healthz",`,
/// `Route("/health", ...)`.
fn health_route(line: &str) -> Option<(Option<String>, String)> {
    let first = |s: &str| string_literals(s).first().map(|l| l.to_string());
    if let Some(rest) = line.strip_prefix('@') {
        let (obj, call) = rest.split_once('.')?;
        if !is_identifier(obj.trim()) || !call.contains('(') {
            return None;
        }
        let path = first(call)?;
        return is_health(&path).then(|| (Some(obj.trim().to_string()), path));
    }
    for marker in [".add_api_route(", ".add_url_rule(", ".add_route("] {
        if let Some(i) = line.find(marker) {
            let obj: String = line[..i]
                .chars()
                .rev()
                .take_while(|c| is_ident_char(*c))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let path = first(&line[i..])?;
            return (is_health(&path) && !obj.is_empty()).then_some((Some(obj), path));
        }
    }
    let i = line.find("Route(")?;
    if line[..i].ends_with(|c: char| is_ident_char(c) || c == '.') {
        return None;
    }
    let path = first(&line[i..])?;
    is_health(&path).then_some((None, path))
}

/// Markers of Gradio UIs.
const GRADIO_UI: &[&str] = &[
    "gr.Interface(",
    "gr.Blocks(",
    "gr.ChatInterface(",
    "gradio.Interface(",
    "gradio.Blocks(",
    "gradio.ChatInterface(",
];

/// Calls that download models at run time.
const DOWNLOADS: &[&str] = &[
    "from_pretrained(",
    "hf_hub_download(",
    "snapshot_download(",
    "SentenceTransformer(",
    "torch.hub.load(",
];

/// Words that make a line about paths (for directory literals).
const PATH_WORDS: &[&str] = &[
    "Path",
    "path",
    "open(",
    "join(",
    "dir",
    "folder",
    "Templates(",
    "StaticFiles(",
    "glob",
    "load",
    "read_",
];

/// `bentoml.service` decorators: `@bentoml.service`, `@bentoml.service(...)`, and
/// `@service` when the file imports bentoml.
fn bento_decorator(line: &str, imports_bentoml: bool) -> bool {
    let Some(rest) = line.strip_prefix('@') else {
        return false;
    };
    let name = rest.split('(').next().unwrap_or(rest).trim();
    name == "bentoml.service" || (name == "service" && imports_bentoml)
}

/// `svc = bentoml.Service(...)` (BentoML before 1.2): the variable.
fn bento_object(line: &str) -> Option<String> {
    let (lhs, rhs) = split_assignment(line)?;
    let var = lhs.split(':').next()?.trim();
    (is_identifier(var) && rhs.trim_start().starts_with("bentoml.Service("))
        .then(|| var.to_string())
}

fn scan_python(src: &str) -> PyScan {
    let mut scan = PyScan::default();
    let mut def: Option<String> = None;
    let mut bento_pending = false;
    let mut call_depth = 0i32;
    let (mut gradio_ui, mut gradio_launch) = (false, false);
    for (index, line) in code_lines(src).iter().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 0 {
            def = def_name(t);
        }
        scan.imports.extend(imports_of(t));
        if indent == 0 {
            let imports_bentoml = t.starts_with('@') && scan.imports.iter().any(|m| m == "bentoml");
            if bento_decorator(t, imports_bentoml) {
                bento_pending = true;
            } else if let Some(class) = t.strip_prefix("class ") {
                let name: String = class.chars().take_while(|c| is_ident_char(*c)).collect();
                if bento_pending && !name.is_empty() {
                    scan.bento.push(name);
                }
                bento_pending = false;
            } else if !t.starts_with('@') && !t.starts_with(')') {
                bento_pending = false;
            }
            scan.bento_legacy.extend(bento_object(t));
        }
        if t.starts_with("import streamlit") || t.starts_with("from streamlit") {
            scan.streamlit = true;
        }
        if let Some((framework, var)) = app_assignment(t) {
            let factory = if indent > 0 { def.clone() } else { None };
            scan.apps.push(AppDef {
                framework,
                var,
                factory,
            });
        }
        if t.starts_with("if") && t.contains("__name__") && t.contains("__main__") {
            scan.main_block = true;
        }
        let call = t.contains('(');
        gradio_ui |= call && GRADIO_UI.iter().any(|m| t.contains(m));
        gradio_launch |= call && t.contains(".launch(");
        if call {
            scan.health.extend(health_route(t));
        }
        let start = server_call_start(t);
        let in_call = call_depth > 0 || start.is_some();
        if call_depth > 0 {
            call_depth = (call_depth + paren_balance(t)).max(0);
        } else if let Some(i) = start {
            call_depth = paren_balance(&t[i..]).max(0);
        }
        scan.ports.extend(
            python_line_ports(t, in_call)
                .into_iter()
                .map(|p| (p, index + 1)),
        );
        let literals: Vec<&str> = string_literals(t)
            .into_iter()
            .filter(|l| looks_like_path(l))
            .collect();
        if !literals.is_empty() {
            let pathy = PATH_WORDS.iter().any(|w| t.contains(w));
            let file_relative = t.contains("__file__");
            scan.literals.extend(literals.into_iter().map(|l| Literal {
                text: l.to_string(),
                pathy,
                file_relative,
            }));
        }
        scan.downloads |= call && DOWNLOADS.iter().any(|m| t.contains(m));
    }
    scan.gradio = gradio_ui && gradio_launch;
    scan
}

fn looks_like_path(lit: &str) -> bool {
    (1..=200).contains(&lit.len())
        && lit.chars().any(|c| c.is_alphanumeric())
        && !lit.chars().any(|c| c.is_whitespace() || c.is_control())
        && !lit.contains("://")
        && !lit.contains(['*', '{', '%', '\\'])
        && !lit.starts_with('/')
}

impl Detector<'_> {
    pub(super) fn scan_sources(&mut self) {
        let mut total = 0u64;
        let mut large = Vec::new();
        let files: Vec<(String, u64)> = self
            .tree
            .files
            .iter()
            .filter(|f| f.path.ends_with(".py"))
            .map(|f| (f.path.clone(), f.size))
            .collect();
        for (path, size) in files {
            if size > MAX_SOURCE_BYTES {
                large.push(path);
                continue;
            }
            if total + size > MAX_SOURCE_TOTAL {
                self.missing(format!(
                    "stopped reading Python files after {}: the app may be among the rest",
                    human_size(total)
                ));
                break;
            }
            total += size;
            if let Some(src) = self.text(&path, MAX_SOURCE_BYTES) {
                self.sources.insert(path, scan_python(&src));
            }
        }
        if !large.is_empty() {
            let line = format!(
                "not scanned (over {}): {}",
                human_size(MAX_SOURCE_BYTES),
                list_some(&large)
            );
            self.detected(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ports::text_line_ports;
    use super::*;

    #[test]
    fn python_scanning() {
        let scan = scan_python(
            "'''\napp = FastAPI()\n'''\nx = 1  # app = Flask(__name__)\nPORT = int(os.getenv('PORT', '7000'))\ndb = connect(port=5432)\nparser.add_argument('--port', type=int, default=8888)\n",
        );
        assert!(scan.apps.is_empty());
        let ports: Vec<u16> = scan.ports.iter().map(|(p, _)| *p).collect();
        assert_eq!(ports, [7000, 8888]);
        assert_eq!(
            text_line_ports("web: gunicorn -b 0.0.0.0:${PORT:-8050} app:server"),
            [8050]
        );
        assert_eq!(text_line_ports("docker run -p 8080:8000 img"), [8000]);
        assert_eq!(text_line_ports("EXPOSE 7000/tcp"), [7000]);
        assert_eq!(
            text_line_ports("uvicorn app:app --port=8123 --port $PORT"),
            [8123]
        );
    }
}
