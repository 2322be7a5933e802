//! SPDX 2.3 JSON.

use crate::env::{AnyPackage, Environment, PackageId};
use crate::license::license_ref;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The image's `created`, as SPDX wants it (`YYYY-MM-DDThh:mm:ssZ`, UTC); the epoch
/// when the image has none, so the document never holds the time it was written.
pub fn created(env: &Environment) -> String {
    env.image
        .created
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

fn spdx_id(i: usize, name: &str) -> String {
    format!("SPDXRef-Package-{i}-{}", crate::license::idstring(name))
}

struct Pkg<'a> {
    id: PackageId<'a>,
    sha256: Option<&'a str>,
    comment: String,
}

/// Writes the SPDX document of `env` (pretty JSON, keys sorted): a package for the image
/// that CONTAINS one package per OS, Python and conda package.
pub fn write(env: &Environment) -> Vec<u8> {
    let pkgs: Vec<Pkg> = env
        .packages()
        .map(|p| {
            let (sha256, comment) = match p {
                AnyPackage::Os(p) => (
                    None,
                    format!("{} package, architecture {}", p.manager, p.architecture),
                ),
                AnyPackage::Python(p) => (None, format!("Python distribution in {}", p.location)),
                AnyPackage::Conda(p) => (
                    p.sha256.as_deref(),
                    format!("conda package in {}", p.location),
                ),
            };
            Pkg {
                id: p.id(),
                sha256,
                comment,
            }
        })
        .collect();
    // LicenseRefs used must be declared with the text they stand for.
    let mut refs: BTreeMap<String, String> = BTreeMap::new();
    let image_id = "SPDXRef-Image";
    let image_name = env
        .image
        .name
        .clone()
        .unwrap_or_else(|| env.image.digest.clone());
    let mut packages = vec![json!({
        "SPDXID": image_id,
        "name": image_name,
        "versionInfo": env.image.digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": env.image.digest.trim_start_matches("sha256:")}],
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_id,
    })];
    for (i, p) in pkgs.iter().enumerate() {
        let id = spdx_id(i + 1, p.id.name);
        if let Some(expr) = p.id.license {
            for tok in expr.split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
                if tok.starts_with("LicenseRef-") && !refs.contains_key(tok) {
                    let text =
                        p.id.licenses
                            .iter()
                            .flat_map(|l| std::iter::once(l.as_str()).chain(l.split([',', ' '])))
                            .find(|l| license_ref(l) == tok)
                            .unwrap_or(&tok["LicenseRef-".len()..]);
                    refs.insert(tok.to_string(), text.to_string());
                }
            }
        }
        let mut pkg = json!({
            "SPDXID": id,
            "name": p.id.name,
            "versionInfo": p.id.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": p.id.license.filter(|e| crate::license::valid(e)).unwrap_or("NOASSERTION"),
            "copyrightText": "NOASSERTION",
            "comment": p.comment,
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": p.id.purl,
            }],
        });
        if let Some(sum) = p.sha256 {
            pkg["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sum}]);
        }
        packages.push(pkg);
        relationships.push(json!({
            "spdxElementId": image_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    // Weights files: packages of purpose FILE (SPDX 2.3 files need a SHA1 kiln does not
    // keep; a package may carry the SHA256 alone).
    for (i, w) in env.weights.iter().enumerate() {
        let id = format!("SPDXRef-Weights-{}", i + 1);
        packages.push(json!({
            "SPDXID": id,
            "name": w.path,
            "versionInfo": format!("sha256:{}", w.sha256),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "FILE",
            "checksums": [{"algorithm": "SHA256", "checksumValue": w.sha256}],
            "comment": format!(
                "weights `{}`, {} bytes{}",
                w.name,
                w.size,
                w.layer.as_deref().map(|l| format!(", in layer {l}")).unwrap_or_default()
            ),
        }));
        relationships.push(json!({
            "spdxElementId": image_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image_name,
        "documentNamespace": format!("https://kiln.invalid/spdx/{}", env.image.digest.replace(':', "/")),
        "creationInfo": {
            "created": created(env),
            "creators": [format!("Tool: kiln-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !env.notes.is_empty() {
        doc["comment"] = Value::String(env.notes.join("; "));
    }
    if !refs.is_empty() {
        doc["hasExtractedLicensingInfos"] = refs
            .into_iter()
            .map(|(id, text)| {
                json!({
                    "licenseId": id,
                    "extractedText": format!("License named `{text}` by the package's metadata"),
                    "name": text,
                })
            })
            .collect();
    }
    let mut out = serde_json::to_vec_pretty(&doc).expect("JSON values serialize");
    out.push(b'\n');
    out
}
