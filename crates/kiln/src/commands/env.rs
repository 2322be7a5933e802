//! `kiln env`: an image's environment, read from its layers (docs/env.md).

use crate::image_env::{read, Read};
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The image (name, ID or digest)
    image: String,
    /// Print the stable JSON document (docs/env.md)
    #[arg(long)]
    json: bool,
    /// Read the unpacked snapshots or the layer blobs (default: snapshots when all exist)
    #[arg(long, value_enum, default_value = "auto", hide = true)]
    pub read: Read,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let env = read(root, &args.image, args.read)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&env)?);
        return Ok(ExitCode::SUCCESS);
    }
    let i = &env.image;
    println!(
        "image         {} ({})",
        i.name.as_deref().unwrap_or("-"),
        i.digest
    );
    println!(
        "platform      {}/{}{}",
        i.os,
        i.architecture,
        i.variant
            .as_ref()
            .map(|v| format!("/{v}"))
            .unwrap_or_default()
    );
    if let Some(d) = &env.distribution {
        println!(
            "distribution  {}",
            d.pretty_name.clone().unwrap_or_else(|| d.id.clone())
        );
    }
    for p in &env.python {
        println!("python        {} ({})", p.version, p.path);
    }
    for a in &env.accelerators {
        println!("{:<13} {} ({})", a.name, a.version, a.from);
    }
    let count = |m: &str| env.os_packages.iter().filter(|p| p.manager == m).count();
    println!(
        "packages      {} dpkg, {} apk, {} python, {} conda",
        count("dpkg"),
        count("apk"),
        env.python_packages.len(),
        env.conda_packages.len()
    );
    let shown: Vec<String> = env
        .python_packages
        .iter()
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect();
    if !shown.is_empty() {
        println!("python pkgs   {}", shown.join(" "));
    }
    if let Some(p) = &env.project {
        let s = |k: &str| p[k].as_str().unwrap_or("-").to_string();
        println!(
            "project       {} {} (kiln.lock {})",
            s("name"),
            p["version"].as_str().unwrap_or(""),
            s("lock")
        );
        if let Some(r) = p["revision"].as_str() {
            println!("revision      {r}");
        }
        let r = &p["resources"];
        let mut res = Vec::new();
        if let Some(c) = r["cpus"].as_f64() {
            res.push(format!("cpus {c}"));
        }
        if let Some(m) = r["memory_bytes"].as_u64() {
            res.push(format!("memory {}", crate::output::human_size(m)));
        }
        if let Some(g) = r["gpus"].as_u64().filter(|g| *g > 0) {
            res.push(format!("gpus {g}"));
        }
        if !res.is_empty() {
            println!("resources     {}", res.join(", "));
        }
        if let Some(h) = p["healthcheck"]["path"].as_str() {
            println!("healthcheck   GET {h}");
        }
    }
    for w in &env.weights {
        println!(
            "weights       {} {} sha256:{} ({}){}",
            w.path,
            crate::output::human_size(w.size),
            w.sha256,
            w.name,
            w.layer
                .as_deref()
                .map(|l| format!(" in layer {}", &l[..l.len().min(19)]))
                .unwrap_or_default()
        );
    }
    let c = &env.config;
    let words = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(" ")
        }
    };
    println!("entrypoint    {}", words(&c.entrypoint));
    println!("cmd           {}", words(&c.cmd));
    println!(
        "workdir       {}",
        if c.working_dir.is_empty() {
            "/"
        } else {
            &c.working_dir
        }
    );
    println!(
        "user          {}",
        if c.user.is_empty() {
            "root (default)"
        } else {
            &c.user
        }
    );
    if !c.exposed_ports.is_empty() {
        println!("ports         {}", c.exposed_ports.join(" "));
    }
    for e in &c.env {
        println!("env           {e}");
    }
    for (k, v) in &c.labels {
        // The project's own label is shown above, readably.
        if k != kiln_sbom::env::PROJECT_LABEL {
            println!("label         {k}={v}");
        }
    }
    for n in &env.notes {
        println!("note          {n}");
    }
    Ok(ExitCode::SUCCESS)
}
