//! `kiln inspect`.

use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Images (name, name:tag, ID or digest)
    #[arg(required = true)]
    images: Vec<String>,
    /// Format each image with a Go template, e.g. '{{.Digest}}' or '{{json .Config.Env}}'
    #[arg(short, long)]
    format: Option<String>,
    /// Print JSON (the default; kept for symmetry with other commands)
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let mut out = Vec::new();
    for reference in &args.images {
        let resolved = super::resolve(&store, reference)?;
        let info = store.image(&resolved.descriptor)?;
        let names: Vec<String> = store.names_of(&info.descriptor.digest)?;
        let config = serde_json::to_value(&info.config)?;
        out.push(serde_json::json!({
            "Id": info.id.to_string(),
            "Digest": info.descriptor.digest.to_string(),
            "MediaType": info.descriptor.media_type,
            "RepoTags": names,
            "Created": info.config.created,
            "Architecture": info.config.architecture,
            "Os": info.config.os,
            "Variant": info.config.variant,
            "Size": info.size,
            "Config": config.get("config").cloned().unwrap_or_default(),
            "RootFS": config.get("rootfs").cloned().unwrap_or_default(),
            "History": config.get("history").cloned().unwrap_or_default(),
            "ManifestDigest": info.manifest_descriptor.digest.to_string(),
            "Manifest": serde_json::to_value(&info.manifest)?,
            "ImageConfig": config,
        }));
    }
    match &args.format {
        Some(t) => {
            for v in &out {
                println!("{}", crate::template::render(t, v)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&out)?),
    }
    let _ = args.json;
    Ok(ExitCode::SUCCESS)
}
