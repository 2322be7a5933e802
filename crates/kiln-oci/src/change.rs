//! `--change` instructions (`CMD ["python","app.py"]`, `ENV K=V`, ...) applied to an image
//! config, as `docker import --change` and `docker commit --change` do.

use crate::error::{OciError, Result};
use crate::types::ContainerConfig;
use serde_json::Value;

/// Instructions `--change` accepts (Docker's list).
pub const SUPPORTED: &[&str] = &[
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Applies one Dockerfile-style instruction to `config`.
pub fn apply(config: &mut ContainerConfig, change: &str) -> Result<()> {
    let bad = |reason: &str| OciError::InvalidChange {
        value: change.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = change.trim();
    let (word, rest) = trimmed
        .split_once(char::is_whitespace)
        .map(|(w, r)| (w, r.trim()))
        .unwrap_or((trimmed, ""));
    let word = word.to_ascii_uppercase();
    if !SUPPORTED.contains(&word.as_str()) {
        return Err(bad(&format!(
            "`{word}` is not supported; use one of {}",
            SUPPORTED.join(", ")
        )));
    }
    if rest.is_empty() {
        return Err(bad(&format!("`{word}` needs an argument")));
    }
    match word.as_str() {
        "CMD" => config.cmd = Some(command(rest)),
        "ENTRYPOINT" => config.entrypoint = Some(command(rest)),
        "USER" => config.user = Some(rest.to_string()),
        "WORKDIR" => config.working_dir = Some(rest.to_string()),
        "STOPSIGNAL" => config.stop_signal = Some(rest.to_string()),
        "ENV" => {
            let env = config.env.get_or_insert_with(Vec::new);
            for (k, v) in
                pairs(rest).ok_or_else(|| bad("expected `KEY=VALUE ...` or `KEY VALUE`"))?
            {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) != k);
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            let labels = config.labels.get_or_insert_with(Default::default);
            for (k, v) in pairs(rest).ok_or_else(|| bad("expected `KEY=VALUE ...`"))? {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            let ports = config.exposed_ports.get_or_insert_with(Default::default);
            for p in rest.split_whitespace() {
                let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let valid_num = num.split('-').all(|n| n.parse::<u16>().is_ok());
                if !valid_num || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(bad(&format!("invalid port `{p}`")));
                }
                ports.insert(format!("{num}/{proto}"), Value::Object(Default::default()));
            }
        }
        "VOLUME" => {
            let vols = config.volumes.get_or_insert_with(Default::default);
            let list: Vec<String> = if rest.starts_with('[') {
                serde_json::from_str(rest).map_err(|_| bad("invalid JSON array"))?
            } else {
                rest.split_whitespace().map(str::to_string).collect()
            };
            for v in list {
                vols.insert(v, Value::Object(Default::default()));
            }
        }
        "ONBUILD" => {
            let list = config
                .extra
                .entry("OnBuild".to_string())
                .or_insert_with(|| Value::Array(vec![]));
            if let Value::Array(a) = list {
                a.push(Value::String(rest.to_string()));
            }
        }
        _ => unreachable!("checked against SUPPORTED"),
    }
    Ok(())
}

/// Exec form (a JSON array) or shell form (run by `/bin/sh -c`).
fn command(rest: &str) -> Vec<String> {
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), rest.into()]
}

/// `K=V K2="v 2"` or the legacy `K V` form.
fn pairs(rest: &str) -> Option<Vec<(String, String)>> {
    let words = split_words(rest)?;
    if !words.first()?.contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace)?;
        return Some(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .filter(|p| p.as_ref().is_none_or(|(k, _)| !k.is_empty()))
        .collect()
}

/// Splits on whitespace, honouring double and single quotes and backslash escapes.
fn split_words(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                cur.push(chars.next()?);
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_changes() {
        let mut c = ContainerConfig::default();
        apply(&mut c, r#"CMD ["python", "app.py"]"#).unwrap();
        apply(&mut c, "ENTRYPOINT /entry.sh").unwrap();
        apply(&mut c, r#"ENV A=1 B="two words""#).unwrap();
        apply(&mut c, "ENV A 3").unwrap();
        apply(&mut c, "label org.x=y").unwrap();
        apply(&mut c, "EXPOSE 8000 53/udp").unwrap();
        apply(&mut c, "WORKDIR /app").unwrap();
        apply(&mut c, "USER 1000:1000").unwrap();
        apply(&mut c, r#"VOLUME ["/data"]"#).unwrap();
        assert_eq!(c.cmd.unwrap(), ["python", "app.py"]);
        assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "/entry.sh"]);
        assert_eq!(c.env.unwrap(), ["B=two words", "A=3"]);
        assert_eq!(c.labels.unwrap()["org.x"], "y");
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, ["53/udp", "8000/tcp"]);
        assert_eq!(c.working_dir.unwrap(), "/app");
        assert_eq!(c.user.unwrap(), "1000:1000");
        assert!(c.volumes.unwrap().contains_key("/data"));
    }

    #[test]
    fn rejects_bad_changes() {
        let mut c = ContainerConfig::default();
        for bad in [
            "RUN echo hi",
            "CMD",
            "EXPOSE http",
            "ENV A=\"open",
            "FROM x",
        ] {
            assert!(apply(&mut c, bad).is_err(), "{bad}");
        }
    }
}
