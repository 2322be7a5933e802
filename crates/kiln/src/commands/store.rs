//! `kiln prune` and `kiln check`.

use crate::output::human_size;
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PruneArgs {
    /// Print JSON (with what was kept, and why)
    #[arg(long)]
    json: bool,
    /// List what was kept although no image refers to it, and who uses it
    #[arg(short, long)]
    verbose: bool,
    /// Versions of each tag kept for `kiln rollback` (the most recent N); older ones go
    #[arg(long, value_name = "N", default_value_t = 10)]
    keep_history: usize,
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn run_prune(root: &Path, args: PruneArgs) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let r = store.prune_with(kiln_store::PruneOptions {
        keep_history: args.keep_history,
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "blobs": r.blobs, "snapshots": r.snapshots, "reclaimed": r.bytes,
                "expired_leases": r.expired_leases, "kept": r.kept,
                "old_versions": r.old_versions,
            })
        );
    } else {
        println!(
            "Deleted {} blobs and {} snapshots\nTotal reclaimed space: {}",
            r.blobs,
            r.snapshots,
            human_size(r.bytes)
        );
        if !r.kept.is_empty() {
            println!(
                "Kept {} in use by containers or running kiln processes{}",
                r.kept.len(),
                if args.verbose {
                    ":"
                } else {
                    " (-v lists them)"
                }
            );
        }
        if args.verbose {
            for k in &r.kept {
                println!("  {} {}: {}", k.kind, k.digest, k.users.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_check(root: &Path, args: CheckArgs) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let r = store.check(&kiln_store::NoProgress)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "ok": r.problems.is_empty(), "blobs": r.blobs, "bytes": r.bytes,
                "problems": r.problems, "notes": r.notes,
            })
        );
    } else {
        for n in &r.notes {
            eprintln!("note: {n}");
        }
        for p in &r.problems {
            eprintln!("error: {p}");
        }
        if r.problems.is_empty() {
            println!("ok: {} blobs ({}) verified", r.blobs, human_size(r.bytes));
        } else {
            eprintln!(
                "hint: {} problem(s) in {}; `kiln rmi` the damaged images and load or pull them again",
                r.problems.len(),
                root.display()
            );
        }
    }
    Ok(if r.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
