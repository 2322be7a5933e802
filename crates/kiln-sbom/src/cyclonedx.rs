//! CycloneDX 1.6 JSON.

use crate::env::{AnyPackage, Environment, PackageId};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// A version-5 style UUID made from the image digest, so the same image gives the same
/// serial number.
fn serial(digest: &str) -> String {
    let hex: Vec<u8> = digest
        .trim_start_matches("sha256:")
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|b| b.to_ascii_lowercase())
        .chain(std::iter::repeat(b'0'))
        .take(32)
        .collect();
    let mut h = String::from_utf8(hex).expect("hex digits");
    h.replace_range(12..13, "5");
    let variant = match &h[16..17] {
        "0" | "1" | "2" | "3" | "8" => "8",
        "4" | "5" | "6" | "7" | "9" => "9",
        "a" | "c" | "e" => "a",
        _ => "b",
    };
    h.replace_range(16..17, variant);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn licenses(names: &[String], expr: Option<&str>) -> Option<Value> {
    match (expr, names.first()) {
        (Some(e), _) => Some(json!([{ "expression": e }])),
        (None, Some(_)) => Some(Value::Array(
            names
                .iter()
                .map(|n| json!({"license": {"name": n}}))
                .collect(),
        )),
        (None, None) => None,
    }
}

/// Writes the CycloneDX document of `env` (pretty JSON, keys sorted): the image as the
/// metadata component, one library component per package.
pub fn write(env: &Environment) -> Vec<u8> {
    let mut refs: BTreeSet<String> = BTreeSet::new();
    let mut unique = |purl: &str| {
        let mut r = purl.to_string();
        let mut n = 1;
        while !refs.insert(r.clone()) {
            n += 1;
            r = format!("{purl}#{n}");
        }
        r
    };
    let mut components = Vec::new();
    if let Some(d) = &env.distribution {
        let mut c = json!({
            "type": "operating-system",
            "bom-ref": unique(&format!("os:{}", d.id)),
            "name": d.id,
        });
        if let Some(v) = d.version_id.as_ref().or(d.version_codename.as_ref()) {
            c["version"] = json!(v);
        }
        if let Some(p) = &d.pretty_name {
            c["description"] = json!(p);
        }
        components.push(c);
    }
    let mut push = |id: PackageId, props: Vec<(&str, String)>, hashes: Option<Value>| {
        let mut c = json!({
            "type": "library",
            "bom-ref": unique(id.purl),
            "name": id.name,
            "version": id.version,
            "purl": id.purl,
        });
        if let Some(l) = licenses(id.licenses, id.license) {
            c["licenses"] = l;
        }
        if let Some(h) = hashes {
            c["hashes"] = h;
        }
        let props: Vec<Value> = props
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        if !props.is_empty() {
            c["properties"] = Value::Array(props);
        }
        components.push(c);
    };
    for p in env.packages() {
        let (props, hashes) = match p {
            AnyPackage::Os(p) => (
                vec![
                    ("kiln:package:manager", p.manager.to_string()),
                    ("kiln:package:source", p.source.clone().unwrap_or_default()),
                ],
                None,
            ),
            AnyPackage::Python(p) => (
                vec![
                    ("kiln:python:location", p.location.clone()),
                    (
                        "kiln:python:installer",
                        p.installer.clone().unwrap_or_default(),
                    ),
                ],
                None,
            ),
            AnyPackage::Conda(p) => {
                let mut hashes = Vec::new();
                if let Some(s) = &p.sha256 {
                    hashes.push(json!({"alg": "SHA-256", "content": s}));
                }
                if let Some(s) = &p.md5 {
                    hashes.push(json!({"alg": "MD5", "content": s}));
                }
                (
                    vec![("kiln:conda:location", p.location.clone())],
                    (!hashes.is_empty()).then_some(Value::Array(hashes)),
                )
            }
        };
        push(p.id(), props, hashes);
    }
    // Weights files: the model data the image carries, by sha256.
    for w in &env.weights {
        let mut c = json!({
            "type": "data",
            "bom-ref": unique(&format!("file:{}", w.path)),
            "name": w.path,
            "hashes": [{"alg": "SHA-256", "content": w.sha256}],
            "data": [{"type": "other", "name": w.name, "description": format!("weights `{}`, {} bytes", w.name, w.size)}],
        });
        let mut props = vec![
            json!({"name": "kiln:weights:name", "value": w.name}),
            json!({"name": "kiln:weights:size", "value": w.size.to_string()}),
        ];
        if let Some(l) = &w.layer {
            props.push(json!({"name": "kiln:weights:layer", "value": l}));
        }
        c["properties"] = Value::Array(props);
        components.push(c);
    }
    let name = env
        .image
        .name
        .clone()
        .unwrap_or_else(|| env.image.digest.clone());
    let mut metadata = json!({
        "timestamp": crate::spdx::created(env),
        "tools": {"components": [{"type": "application", "name": "kiln", "version": env!("CARGO_PKG_VERSION")}]},
        "component": {
            "type": "container",
            "bom-ref": "image",
            "name": name,
            "version": env.image.digest,
            "hashes": [{"alg": "SHA-256", "content": env.image.digest.trim_start_matches("sha256:")}],
        },
    });
    if !env.notes.is_empty() {
        metadata["properties"] = env
            .notes
            .iter()
            .map(|n| json!({"name": "kiln:note", "value": n}))
            .collect();
    }
    let doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial(&env.image.digest),
        "version": 1,
        "metadata": metadata,
        "components": components,
    });
    let mut out = serde_json::to_vec_pretty(&doc).expect("JSON values serialize");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn serial_is_a_uuid() {
        let s = super::serial(
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        );
        assert_eq!(s, "urn:uuid:01234567-89ab-5def-8123-456789abcdef");
    }
}
