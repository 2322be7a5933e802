//! Names: PEP 503 package names, the name of a requirement line, and names made valid for
//! an image (`[project].name`), an image tag and a `[weights.NAME]` table.

/// The name of a requirement line (`torch>=2; python_version>"3"`, `fastapi[standard]`,
/// `pkg @ https://...`), with its extras.
pub(super) fn requirement_name(line: &str) -> Option<(String, Vec<String>)> {
    let line = line.trim();
    if let Some(egg) = line.split("#egg=").nth(1) {
        let name: String = egg.chars().take_while(|c| is_name_char(*c)).collect();
        return (!name.is_empty()).then(|| (normalize_name(&name), Vec::new()));
    }
    let name: String = line.chars().take_while(|c| is_name_char(*c)).collect();
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let rest = line[name.len()..].trim_start();
    let extras = rest
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map(|(e, _)| e.split(',').map(|x| x.trim().to_lowercase()).collect())
        .unwrap_or_default();
    Some((normalize_name(&name), extras))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// PEP 503 normalization: lowercase, runs of `-_.` become `-`.
pub(super) fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A name for `[project].name`: lowercase, `[a-z0-9]` runs joined by single `.`, `_` or
/// `-`; `"app"` when nothing is left.
pub(super) fn sanitize_name(raw: &str) -> String {
    let mut out = String::new();
    let mut sep: Option<char> = None;
    for c in raw.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if let Some(s) = sep.take() {
                if !out.is_empty() {
                    out.push(s);
                }
            }
            out.push(c);
        } else {
            let s = if matches!(c, '.' | '_' | '-') { c } else { '-' };
            sep = Some(match sep {
                Some(prev) if prev != s => '-',
                _ => s,
            });
        }
    }
    out.truncate(128);
    let out = out.trim_end_matches(['.', '_', '-']);
    if out.is_empty() {
        "app".to_string()
    } else {
        out.to_string()
    }
}

/// A name for a `[weights.NAME]` table: `[a-z0-9_-]`, never empty.
pub(super) fn sanitize_key(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "weights".to_string()
    } else {
        out
    }
}

/// `version` made a valid image tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
pub(super) fn sanitize_tag(version: &str) -> String {
    let mut tag: String = version
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    while tag.starts_with(['.', '-']) {
        tag.remove(0);
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(sanitize_name("My_Cool..App--"), "my_cool.app");
        assert_eq!(sanitize_name("__init__"), "init");
        assert_eq!(sanitize_name("Ünïcode"), "n-code");
        assert_eq!(sanitize_name("!!!"), "app");
        assert_eq!(sanitize_name(&"a-".repeat(100)).len(), 127);
        assert_eq!(sanitize_key("ResNet50.v2"), "resnet50-v2");
        assert_eq!(normalize_name("Scikit_Learn"), "scikit-learn");
        assert_eq!(
            requirement_name("fastapi[standard]>=0.1 ; python_version > '3'"),
            Some(("fastapi".into(), vec!["standard".into()]))
        );
        assert_eq!(
            requirement_name("git+https://x/y.git#egg=my_pkg").map(|r| r.0),
            Some("my-pkg".into())
        );
    }
}
