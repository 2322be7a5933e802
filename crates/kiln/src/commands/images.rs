//! `kiln images`.

use crate::output::{human_age, human_size};
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Show the manifest digest of each image
    #[arg(long)]
    digests: bool,
    /// Print JSON (one object per image, in an array)
    #[arg(long)]
    json: bool,
    /// Show only image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show full image IDs
    #[arg(long)]
    no_trunc: bool,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let images = store.images()?;
    if args.json {
        let rows: Vec<_> = images
            .iter()
            .map(|i| {
                serde_json::json!({
                    "Names": i.names,
                    "Id": i.id.to_string(),
                    "Digest": i.descriptor.digest.to_string(),
                    "MediaType": i.descriptor.media_type,
                    "Created": i.config.created,
                    "Size": i.size,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if args.quiet {
        for i in &images {
            println!(
                "{}",
                if args.no_trunc {
                    i.id.to_string()
                } else {
                    i.id.short().to_string()
                }
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![{
        let mut h = vec!["REPOSITORY", "TAG"];
        if args.digests {
            h.push("DIGEST");
        }
        h.extend(["IMAGE ID", "CREATED", "SIZE"]);
        h.into_iter().map(String::from).collect::<Vec<_>>()
    }];
    for i in &images {
        let names: Vec<(String, String)> = if i.names.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.names
                .iter()
                .map(
                    |n| match n.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                        Some((r, t)) => (r.to_string(), t.to_string()),
                        None => (n.clone(), "<none>".into()),
                    },
                )
                .collect()
        };
        for (repo, tag) in names {
            let mut row = vec![repo, tag];
            if args.digests {
                row.push(i.descriptor.digest.to_string());
            }
            row.push(if args.no_trunc {
                i.id.to_string()
            } else {
                i.id.short().to_string()
            });
            row.push(human_age(i.config.created.as_deref()));
            row.push(human_size(i.size));
            rows.push(row);
        }
    }
    crate::tables::print_table(&rows);
    Ok(ExitCode::SUCCESS)
}
