//! `kiln tag` and `kiln rmi`.

use crate::output::with_hint;
use anyhow::{bail, Result};
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TagArgs {
    /// The image (name, ID or digest)
    source: String,
    /// The new name, e.g. `iris:v2`
    target: String,
}

#[derive(clap::Args)]
pub struct RmiArgs {
    /// Images to remove (names, IDs or digests)
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove an image by ID even when several names refer to it; untag an image that
    /// containers use (its content stays until they are removed)
    #[arg(short, long)]
    force: bool,
}

pub fn run_tag(root: &Path, args: TagArgs) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let target = super::parse_reference(&args.target)?;
    if target.digest().is_some() {
        bail!("`{}`: a tag cannot contain a digest", args.target);
    }
    let resolved = super::resolve(&store, &args.source)?;
    store.tag(&resolved.descriptor, &target)?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_rmi(root: &Path, args: RmiArgs) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let code = super::each(&args.images, |r| remove(&store, r, args.force));
    if code == ExitCode::SUCCESS {
        eprintln!("hint: `kiln prune` reclaims the space of removed images");
    }
    Ok(code)
}

fn remove(store: &kiln_store::Store, reference: &str, force: bool) -> Result<()> {
    let resolved = super::resolve(store, reference)?;
    let digest = resolved.descriptor.digest.clone();
    let names = store.names_of(&digest)?;
    // Containers (running or stopped) keep their image: removing its last name needs
    // `--force`, and then only the names go (Docker's rule).
    let last = resolved.name.is_none() || names.len() <= 1;
    let users = store.roots_holding(&digest);
    if last && !users.is_empty() {
        if !force {
            return Err(with_hint(
                anyhow::anyhow!(
                    "image {reference} is in use by {}",
                    users.join(", ")
                ),
                "remove those containers first (`kiln rm`), or untag the image with `--force` (the containers keep its content)",
            ));
        }
        untag_all(store, &digest)?;
        return Ok(());
    }
    match resolved.name {
        // By name: untag; the image goes when its last name does (Docker's rule).
        Some(name) => {
            store.untag(&kiln_oci::Reference::parse(&name)?)?;
            println!("Untagged: {name}");
            if names.len() <= 1 {
                store.remove_image(&digest)?;
                println!("Deleted: {digest}");
            }
        }
        None => {
            if names.len() > 1 && !force {
                return Err(with_hint(
                    anyhow::anyhow!(
                        "image {reference} is referenced by several names: {}",
                        names.join(", ")
                    ),
                    "remove the names one by one, or use `--force`",
                ));
            }
            untag_all(store, &digest)?;
            println!("Deleted: {digest}");
        }
    }
    Ok(())
}

/// Removes the image `digest` with all its names, printing each.
fn untag_all(store: &kiln_store::Store, digest: &kiln_oci::Digest) -> Result<()> {
    for n in store.remove_image(digest)? {
        println!("Untagged: {n}");
    }
    Ok(())
}
