//! `kiln ps` and `kiln rm`.

use crate::containers::find;
use crate::output::human_age;
use anyhow::Result;
use kiln_runtime::container::{self, ContainerDirs, Record};
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PsArgs {
    /// Show all containers (default: running only)
    #[arg(short, long)]
    all: bool,
    /// Only IDs
    #[arg(short, long)]
    quiet: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Containers (names or ID prefixes)
    #[arg(required = true)]
    containers: Vec<String>,
    /// Kill running containers first
    #[arg(short, long)]
    force: bool,
}

fn status(r: &Record) -> String {
    match (container::is_running(r), r.exit_code) {
        (true, _) => "Up".into(),
        (false, Some(c)) => format!("Exited ({c})"),
        (false, None) => "Exited (unknown)".into(),
    }
}

pub fn run_ps(root: &Path, args: PsArgs) -> Result<ExitCode> {
    let records: Vec<Record> = Record::list(root)
        .into_iter()
        .filter(|r| args.all || container::is_running(r))
        .collect();
    if args.json {
        let v: Vec<_> = records
            .iter()
            .map(|r| serde_json::json!({"Id": r.id, "Name": r.name, "Image": r.image, "ImageId": r.image_id,
                "Command": r.command, "Created": r.created, "State": if container::is_running(r) {"running"} else {"exited"},
                "ExitCode": r.exit_code, "Pid": r.pid}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if args.quiet {
        for r in &records {
            println!("{}", &r.id[..12]);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "NAMES",
    ]
    .map(String::from)
    .to_vec()];
    for r in &records {
        let mut cmd = r.command.join(" ");
        if cmd.chars().count() > 20 {
            cmd = cmd.chars().take(19).collect::<String>() + "…";
        }
        rows.push(vec![
            r.id[..12].to_string(),
            r.image.clone(),
            format!("\"{cmd}\""),
            human_age(Some(&r.created)),
            status(r),
            r.name.clone(),
        ]);
    }
    crate::tables::print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

pub fn run_rm(root: &Path, args: RmArgs) -> Result<ExitCode> {
    Ok(super::each(&args.containers, |key| {
        let r = find(root, key)?;
        container::remove(&ContainerDirs::new(root, &r.id), &r, args.force)?;
        println!("{key}");
        Ok(())
    }))
}
