//! `kiln commit`: a container's changes as a new image (its upper directory becomes one
//! layer on top of the image it was started from).

use crate::containers::find;
use anyhow::{anyhow, Context, Result};
use kiln_layer::{Compression, WriteOptions};
use kiln_oci::types::History;
use kiln_runtime::container::ContainerDirs;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Container (name or ID)
    container: String,
    /// Name of the new image, e.g. `iris:v2`
    reference: Option<String>,
    /// Dockerfile instruction applied to the config (CMD, ENV, LABEL, ...); repeatable
    #[arg(short, long)]
    change: Vec<String>,
    /// Commit message (history comment)
    #[arg(short, long)]
    message: Option<String>,
    /// Author
    #[arg(short, long)]
    author: Option<String>,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let name = args
        .reference
        .as_deref()
        .map(super::parse_reference)
        .transpose()?;
    let record = find(root, &args.container)?;
    let store = super::open_store(root)?;
    // The image as the container recorded it (its content stays while the container
    // does, named or not); older records name only the image ID.
    let recorded = record
        .manifest
        .as_ref()
        .and_then(|m| store.image(m).ok())
        .filter(|i| i.id.to_string() == record.image_id);
    let base = match recorded {
        Some(i) => Some(i),
        None => store
            .images()?
            .into_iter()
            .find(|i| i.id.to_string() == record.image_id),
    }
    .ok_or_else(|| {
        anyhow!(
            "the image of container {} ({}) is no longer in the store",
            record.name,
            record.image_id
        )
    })?;
    store.hold_image(&base)?;
    let mut config = base.config.clone();
    let mut cc = config.config.clone().unwrap_or_default();
    for c in &args.change {
        kiln_oci::change::apply(&mut cc, c)?;
    }
    config.config = Some(cc);
    let epoch = super::source_date_epoch()?;
    let upper = ContainerDirs::new(root, &record.id).upper();
    let _gc = store.gc_lock(false)?;
    let opts = WriteOptions {
        source_date_epoch: epoch,
        overlay_whiteouts: true,
        exclude: kiln_runtime::container::runtime_mount_points(&upper),
    };
    let layer = store
        .write_layer(Compression::Gzip, |out| {
            kiln_layer::write_dir(&upper, out, &opts).map(|_| ())
        })
        .map_err(|e| match e {
            kiln_store::compose::LayerWriteError::Produce(e) => {
                anyhow::Error::new(e).context(format!("cannot read the changes of {}", record.name))
            }
            kiln_store::compose::LayerWriteError::Store(e) => e.into(),
        })?;
    let created = match epoch {
        Some(e) => {
            chrono::DateTime::from_timestamp(e, 0).context("SOURCE_DATE_EPOCH is out of range")?
        }
        None => chrono::Utc::now(),
    }
    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    config.created = Some(created.clone());
    if args.author.is_some() {
        config.author = args.author.clone();
    }
    config.rootfs.diff_ids.push(layer.diff_id.clone());
    config.history.get_or_insert_with(Vec::new).push(History {
        created: Some(created),
        created_by: Some(format!("kiln commit {}", record.name)),
        author: args.author.clone(),
        comment: args.message.clone(),
        empty_layer: false,
    });
    let mut layers = base.manifest.layers.clone();
    layers.push(layer.descriptor);
    let (desc, id) = store.write_image(&config, layers)?;
    match &name {
        Some(n) => store.tag(&desc, n)?,
        None => store.add_untagged(&desc)?,
    }
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
