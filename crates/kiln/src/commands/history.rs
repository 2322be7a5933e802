//! `kiln history` and `kiln rollback`: the versions of a tag, and moving it back.

use crate::output::{human_size, with_hint};
use crate::versions::{version_error, warn_bad};
use anyhow::{anyhow, bail, Result};
use kiln_store::history::{self, short, Move, Version};
use kiln_store::Store;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct HistoryArgs {
    /// A tag (`NAME[:TAG]`), or with `--layers` an image
    reference: String,
    /// The layers of the image and the steps that made them, as `docker history`
    #[arg(long)]
    layers: bool,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct RollbackArgs {
    /// The tag to move back: `NAME[:TAG]` in the store, or `REGISTRY/NAME:TAG` that kiln
    /// pushed
    reference: String,
    /// The version to go back to: a digest from `kiln history`, or `-N` (N versions back)
    #[arg(long, allow_hyphen_values = true)]
    to: Option<String>,
    /// Move the tag in the store even when kiln pushed it to a registry
    #[arg(long)]
    local: bool,
    #[command(flatten)]
    registry: crate::registry_flags::RegistryFlags,
}

/// The history of a name: its moves and versions, with bad lines reported.
fn read(store: &Store, name: &str) -> Result<(Vec<Move>, Vec<Version>)> {
    Ok(store.versions_of(name, &mut |b| warn_bad(store, b))?)
}

/// How a version got there: the kiln command that moved the tag (`build`, `pull`,
/// `load`...), or the move's own action (`rollback`, `push`).
fn how(m: &Move) -> String {
    const COMMANDS: &[&str] = &[
        "build", "pull", "load", "import", "commit", "base", "tag", "copy", "run",
    ];
    if m.action != "tag" {
        return m.action.clone();
    }
    m.command
        .as_deref()
        .and_then(|c| c.split_whitespace().find(|w| COMMANDS.contains(w)))
        .unwrap_or(&m.action)
        .to_string()
}

pub fn run_history(root: &Path, args: HistoryArgs) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    if args.layers {
        return layers(&store, &args);
    }
    let reference = super::parse_reference(&args.reference)?;
    let (moves, mut versions) = {
        let remote = history::remote_name(&reference);
        let (moves, versions) = read(&store, &remote)?;
        if versions.is_empty() {
            read(&store, &reference.familiar())?
        } else {
            (moves, versions)
        }
    };
    let Some(name) = versions.first().map(|v| v.first.name.clone()) else {
        bail!(with_hint(
            anyhow!("no history for {}", reference.familiar()),
            "`kiln images` lists the names in the store; every build, tag, pull, load and push is recorded from then on",
        ));
    };
    let current = history::current(&moves, &name);
    versions.reverse();
    let rows: Vec<serde_json::Value> = versions
        .iter()
        .map(|v| {
            let size = kiln_oci::Digest::parse(&v.digest)
                .ok()
                .and_then(|d| store.descriptor_of(&d).ok().flatten())
                .and_then(|d| store.image(&d).ok())
                .map(|i| i.size);
            let inputs = v.first.inputs.clone().unwrap_or_default();
            serde_json::json!({
                "digest": v.digest,
                "current": current.as_deref() == Some(v.digest.as_str()),
                "created": v.first.time,
                "size": size,
                "action": v.first.action,
                "how": how(&v.first),
                "command": v.first.command,
                "user": v.first.user,
                "commit": inputs.pointer("/git/commit"),
                "dirty": inputs.pointer("/git/dirty"),
                "message": inputs.get("message"),
                "last_moved": v.last.time,
            })
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{name}");
    println!(
        "  {:<14} {:<22} {:>9}  {:<10} {:<10} MESSAGE",
        "DIGEST", "CREATED", "SIZE", "HOW", "COMMIT"
    );
    for r in &rows {
        let commit = r["commit"].as_str().map(|c| {
            let c = &c[..c.len().min(9)];
            if r["dirty"] == true {
                format!("{c}+")
            } else {
                c.to_string()
            }
        });
        println!(
            "{} {:<14} {:<22} {:>9}  {:<10} {:<10} {}",
            if r["current"] == true { "*" } else { " " },
            short(r["digest"].as_str().unwrap_or_default()),
            r["created"].as_str().unwrap_or_default(),
            r["size"]
                .as_u64()
                .map(human_size)
                .unwrap_or_else(|| "-".into()),
            r["how"].as_str().unwrap_or_default(),
            commit.unwrap_or_else(|| "-".into()),
            r["message"].as_str().unwrap_or_default(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `docker history`: the config's history entries, newest first, with their layers.
fn layers(store: &Store, args: &HistoryArgs) -> Result<ExitCode> {
    let info = store.image(&super::resolve(store, &args.reference)?.descriptor)?;
    let mut layers = info.manifest.layers.iter();
    let mut rows = Vec::new();
    for h in info.config.history.clone().unwrap_or_default() {
        let layer = if h.empty_layer { None } else { layers.next() };
        rows.push(serde_json::json!({
            "layer": layer.map(|l| l.digest.to_string()),
            "size": layer.map_or(0, |l| l.size),
            "created": h.created,
            "created_by": h.created_by,
            "comment": h.comment,
        }));
    }
    rows.reverse();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<14} {:<22} {:<50} {:>9}  COMMENT",
        "LAYER", "CREATED", "CREATED BY", "SIZE"
    );
    for r in &rows {
        let by: String = r["created_by"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(50)
            .collect();
        println!(
            "{:<14} {:<22} {:<50} {:>9}  {}",
            r["layer"].as_str().map(short).unwrap_or("<missing>"),
            r["created"].as_str().unwrap_or_default(),
            by,
            human_size(r["size"].as_u64().unwrap_or(0)),
            r["comment"].as_str().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_rollback(root: &Path, args: RollbackArgs) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let reference = super::parse_reference(&args.reference)?;
    let remote = history::remote_name(&reference);
    let (_, pushed) = read(&store, &remote)?;
    if !pushed.is_empty() && !args.local {
        return rollback_remote(&store, &reference, &remote, &pushed, &args);
    }
    let name = reference.familiar();
    let (_, versions) = read(&store, &name)?;
    if versions.is_empty() {
        bail!(with_hint(
            anyhow!("no history for {name}"),
            "`kiln history NAME` shows the versions kiln recorded",
        ));
    }
    let current = store
        .resolve(&name)
        .map(|r| r.descriptor.digest.to_string())
        .map_err(|e| {
            with_hint(
                e,
                "the name was removed: give the version with `--to DIGEST`",
            )
        });
    let current = match (&current, args.to.as_deref()) {
        (Ok(c), _) => c.clone(),
        // An untagged name can still be brought back to a named version.
        (Err(_), Some(d)) if !d.starts_with('-') => String::new(),
        (Err(_), _) => return Err(current.unwrap_err()),
    };
    let v = history::pick_version(&name, &versions, &current, args.to.as_deref())
        .map_err(version_error)?;
    let digest = kiln_oci::Digest::parse(&v.digest)?;
    let desc = store.descriptor_of(&digest)?.ok_or_else(|| {
        with_hint(
            anyhow!("version {} of {name} is no longer in the store", v.digest),
            "`kiln prune --keep-history N` keeps the N most recent versions of each tag; pull it again by digest if a registry has it",
        )
    })?;
    store.tag_as(&desc, &reference, "rollback")?;
    println!("{name}: {} -> {}", short(&current), v.digest);
    Ok(ExitCode::SUCCESS)
}

/// Moves a registry's tag back to a manifest kiln pushed there before: the registry's
/// copy of that manifest (or the store's) is put under the tag again.
fn rollback_remote(
    store: &Store,
    reference: &kiln_oci::Reference,
    remote: &str,
    versions: &[Version],
    args: &RollbackArgs,
) -> Result<ExitCode> {
    let opts = args.registry.options()?;
    let repo = kiln_registry::Repo::new(&opts, reference, true)?;
    let tag = reference.tag().unwrap_or("latest").to_string();
    let (_, _, current) = repo.get_manifest(&tag)?;
    let v = history::pick_version(remote, versions, &current.to_string(), args.to.as_deref())
        .map_err(version_error)?;
    let digest = kiln_oci::Digest::parse(&v.digest)?;
    let (bytes, media_type) = match repo.get_manifest(&digest.to_string()) {
        Ok((bytes, media_type, _)) => (bytes, media_type),
        Err(_) => {
            let desc = store.descriptor_of(&digest)?.ok_or_else(|| {
                anyhow!("{} is neither on the registry nor in the store", v.digest)
            })?;
            (store.read_blob(&digest)?, desc.media_type)
        }
    };
    kiln_registry::push::put_manifest(&repo, &tag, &bytes, &media_type)?;
    store.record_move(Move {
        action: "rollback".into(),
        name: remote.to_string(),
        digest: Some(v.digest.clone()),
        previous: Some(current.to_string()),
        ..Default::default()
    })?;
    println!(
        "{reference}: {} -> {}",
        short(&current.to_string()),
        v.digest
    );
    Ok(ExitCode::SUCCESS)
}
