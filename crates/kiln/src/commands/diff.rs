//! `kiln diff A B`: what changed between two images: config, layers, size, and with
//! `--files` the files (reading only the layers the images do not share).

use crate::output::human_size;
use anyhow::{Context, Result};
use kiln_store::ImageInfo;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The older image
    a: String,
    /// The newer image
    b: String,
    /// Also the files added, removed and modified
    #[arg(long)]
    files: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// `KEY=VALUE` lists as a map.
fn env_map(env: &Option<Vec<String>>) -> BTreeMap<String, String> {
    env.iter()
        .flatten()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect()
}

/// Added, removed and changed keys of two maps.
fn map_diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Value {
    let added: BTreeMap<_, _> = b.iter().filter(|(k, _)| !a.contains_key(*k)).collect();
    let removed: BTreeMap<_, _> = a.iter().filter(|(k, _)| !b.contains_key(*k)).collect();
    let changed: Vec<Value> = a
        .iter()
        .filter_map(|(k, v)| {
            b.get(k)
                .filter(|w| *w != v)
                .map(|w| json!({"name": k, "from": v, "to": w}))
        })
        .collect();
    json!({"added": added, "removed": removed, "changed": changed})
}

fn config_diff(a: &ImageInfo, b: &ImageInfo) -> Value {
    let ca = a.config.config.clone().unwrap_or_default();
    let cb = b.config.config.clone().unwrap_or_default();
    let keys = |m: &Option<BTreeMap<String, Value>>| -> BTreeMap<String, String> {
        m.iter()
            .flatten()
            .map(|(k, _)| (k.clone(), String::new()))
            .collect()
    };
    let labels = |m: &Option<BTreeMap<String, String>>| m.clone().unwrap_or_default();
    let field = |x: Value, y: Value| {
        if x == y {
            Value::Null
        } else {
            json!({"from": x, "to": y})
        }
    };
    json!({
        "env": map_diff(&env_map(&ca.env), &env_map(&cb.env)),
        "entrypoint": field(json!(ca.entrypoint), json!(cb.entrypoint)),
        "cmd": field(json!(ca.cmd), json!(cb.cmd)),
        "workdir": field(json!(ca.working_dir), json!(cb.working_dir)),
        "user": field(json!(ca.user), json!(cb.user)),
        "ports": map_diff(&keys(&ca.exposed_ports), &keys(&cb.exposed_ports)),
        "volumes": map_diff(&keys(&ca.volumes), &keys(&cb.volumes)),
        "labels": map_diff(&labels(&ca.labels), &labels(&cb.labels)),
    })
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let image = |r: &str| -> Result<ImageInfo> {
        let info = store.image(&super::resolve(&store, r)?.descriptor)?;
        store.hold_image(&info)?;
        Ok(info)
    };
    let (a, b) = (image(&args.a)?, image(&args.b)?);
    let shared = a
        .manifest
        .layers
        .iter()
        .filter(|l| b.manifest.layers.iter().any(|m| m.digest == l.digest))
        .count();
    // Packages from each image's own package databases (kiln-sbom's reader).
    let env = |i: &ImageInfo, r: &str| {
        kiln_sbom::read_environment(&store, i, Some(r), kiln_sbom::Source::Auto)
            .map(|(e, _)| e)
            .with_context(|| format!("cannot read the packages of {r}"))
    };
    let packages = kiln_sbom::pkgdiff::diff(&env(&a, &args.a)?, &env(&b, &args.b)?);
    let mut out = json!({
        "a": {"reference": args.a, "digest": a.descriptor.digest.to_string(), "size": a.size},
        "b": {"reference": args.b, "digest": b.descriptor.digest.to_string(), "size": b.size},
        "size_delta": b.size as i64 - a.size as i64,
        "layers": {
            "shared": shared,
            "only_a": a.manifest.layers.len() - shared,
            "only_b": b.manifest.layers.len() - shared,
        },
        "config": config_diff(&a, &b),
        "packages": packages,
    });
    if args.files {
        out["files"] = serde_json::to_value(store.diff_files(&a, &b)?)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_human(&out);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_human(d: &Value) {
    let delta = d["size_delta"].as_i64().unwrap_or(0);
    println!(
        "{} -> {}: size {} ({}{})",
        d["a"]["reference"].as_str().unwrap_or_default(),
        d["b"]["reference"].as_str().unwrap_or_default(),
        human_size(d["b"]["size"].as_u64().unwrap_or(0)),
        if delta < 0 { "-" } else { "+" },
        human_size(delta.unsigned_abs())
    );
    println!(
        "layers: {} shared, {} only in the first, {} only in the second",
        d["layers"]["shared"], d["layers"]["only_a"], d["layers"]["only_b"]
    );
    for (kind, label) in [("os", "os"), ("python", "python"), ("conda", "conda")] {
        let p = &d["packages"][kind];
        for x in p["added"].as_array().into_iter().flatten() {
            println!(
                "+ {label} {} {}",
                x["name"].as_str().unwrap_or_default(),
                x["version"].as_str().unwrap_or_default()
            );
        }
        for x in p["removed"].as_array().into_iter().flatten() {
            println!(
                "- {label} {} {}",
                x["name"].as_str().unwrap_or_default(),
                x["version"].as_str().unwrap_or_default()
            );
        }
        for x in p["changed"].as_array().into_iter().flatten() {
            println!(
                "~ {label} {} {} -> {}",
                x["name"].as_str().unwrap_or_default(),
                x["from"].as_str().unwrap_or_default(),
                x["to"].as_str().unwrap_or_default()
            );
        }
    }
    let c = &d["config"];
    for (what, key) in [
        ("env", "env"),
        ("port", "ports"),
        ("volume", "volumes"),
        ("label", "labels"),
    ] {
        for (k, v) in c[key]["added"].as_object().into_iter().flatten() {
            println!(
                "+ {what} {k}{}",
                v.as_str()
                    .filter(|v| !v.is_empty())
                    .map(|v| format!("={v}"))
                    .unwrap_or_default()
            );
        }
        for (k, _) in c[key]["removed"].as_object().into_iter().flatten() {
            println!("- {what} {k}");
        }
        for ch in c[key]["changed"].as_array().into_iter().flatten() {
            println!(
                "~ {what} {}: {} -> {}",
                ch["name"].as_str().unwrap_or_default(),
                ch["from"],
                ch["to"]
            );
        }
    }
    for key in ["entrypoint", "cmd", "workdir", "user"] {
        if !c[key].is_null() {
            println!("~ {key}: {} -> {}", c[key]["from"], c[key]["to"]);
        }
    }
    if let Some(files) = d["files"]["changes"].as_array() {
        for f in files {
            let sign = match f["change"].as_str() {
                Some("added") => "A",
                Some("removed") => "D",
                _ => "M",
            };
            println!("{sign} {}", f["path"].as_str().unwrap_or_default());
        }
        println!(
            "files: {} changed ({} shared layers skipped, {} read)",
            files.len(),
            d["files"]["shared_layers"],
            d["files"]["layers_read"]
        );
    }
}
