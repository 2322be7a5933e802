//! The subset of Go templates that `--format` takes, as in `docker inspect --format`:
//! `{{.Field.Sub}}`, `{{json .Field}}`, `{{index .Map "key"}}`, and literal text.
//! Hand-written: no Rust crate implements Go's text/template, and this subset is small.

use anyhow::{bail, Result};
use serde_json::Value;

/// Renders `template` against `value`.
pub fn render(template: &str, value: &Value) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("template `{template}`: unclosed `{{{{`");
        };
        out.push_str(&action(after[..end].trim(), value, template)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out.replace("\\n", "\n").replace("\\t", "\t"))
}

fn action(expr: &str, value: &Value, template: &str) -> Result<String> {
    let words: Vec<&str> = expr.split_whitespace().collect();
    match words.as_slice() {
        ["json", path] => Ok(serde_json::to_string(lookup(value, path, template)?)?),
        ["index", path, key] => {
            let v = lookup(value, path, template)?;
            let key = key.trim_matches('"');
            Ok(v.get(key).map(plain).unwrap_or_else(|| "<no value>".into()))
        }
        [path] => Ok(plain(lookup(value, path, template)?)),
        _ => bail!("template `{template}`: unsupported action `{expr}`; use `.Field`, `json .Field` or `index .Map \"key\"`"),
    }
}

fn lookup<'a>(value: &'a Value, path: &str, template: &str) -> Result<&'a Value> {
    if path == "." {
        return Ok(value);
    }
    let Some(path) = path.strip_prefix('.') else {
        bail!("template `{template}`: `{path}` is not a field (fields start with `.`)");
    };
    let mut v = value;
    for part in path.split('.') {
        v = match v.get(part) {
            Some(x) => x,
            None => bail!("template `{template}`: no field `{part}`"),
        };
    }
    Ok(v)
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<no value>".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let v = serde_json::json!({"Digest": "sha256:ab", "Config": {"Env": ["A=1"], "Labels": {"k": "v"}}});
        assert_eq!(render("{{.Digest}}", &v).unwrap(), "sha256:ab");
        assert_eq!(
            render("x={{ json .Config.Env }}", &v).unwrap(),
            "x=[\"A=1\"]"
        );
        assert_eq!(render("{{index .Config.Labels \"k\"}}", &v).unwrap(), "v");
        assert!(render("{{.Nope}}", &v).is_err());
        assert!(render("{{.Digest", &v).is_err());
    }
}
