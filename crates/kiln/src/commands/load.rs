//! `kiln load`.

use crate::output::Reporter;
use anyhow::{Context, Result};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Archive file or OCI layout directory (default: standard input)
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Print only the loaded images' names or IDs
    #[arg(short, long)]
    quiet: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let progress = Reporter::new(args.quiet || args.json);
    let loaded = match &args.input {
        Some(p) if p.is_dir() => kiln_archive::load_dir(&store, p, &progress)?,
        Some(p) => {
            let f =
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            kiln_archive::load_reader(&store, f, &p.display().to_string(), &progress)?
        }
        None => {
            if std::io::stdin().is_terminal() {
                return Err(crate::output::with_hint(
                    anyhow::anyhow!("no archive given and standard input is a terminal"),
                    "use `kiln load -i FILE` or pipe an archive: `docker save IMAGE | kiln load`",
                ));
            }
            kiln_archive::load_reader(&store, std::io::stdin().lock(), "standard input", &progress)?
        }
    };
    if args.json {
        let v: Vec<_> = loaded
            .iter()
            .map(|l| {
                serde_json::json!({
                    "Names": l.names.iter().map(|n| n.familiar()).collect::<Vec<_>>(),
                    "Digest": l.descriptor.digest.to_string(),
                    "Id": l.id.as_ref().map(|d| d.to_string()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    for l in &loaded {
        if l.names.is_empty() {
            let id = l.id.as_ref().unwrap_or(&l.descriptor.digest);
            println!("Loaded image ID: {id}");
        }
        for n in &l.names {
            println!("Loaded image: {}", n.familiar());
        }
    }
    Ok(ExitCode::SUCCESS)
}
