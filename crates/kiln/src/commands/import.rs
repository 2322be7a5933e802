//! `kiln import`: a one-layer image from a root filesystem.

use crate::output::with_hint;
use anyhow::{bail, Context, Result};
use kiln_layer::{Compression, WriteOptions};
use kiln_oci::types::{ContainerConfig, History, ImageConfig, RootFs};
use kiln_oci::Platform;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LayerCompression {
    Gzip,
    Zstd,
    None,
}

impl From<LayerCompression> for Compression {
    fn from(c: LayerCompression) -> Self {
        match c {
            LayerCompression::Gzip => Compression::Gzip,
            LayerCompression::Zstd => Compression::Zstd,
            LayerCompression::None => Compression::None,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Root filesystem: a tar archive (optionally gzip/zstd), a directory, or `-` for stdin
    source: PathBuf,
    /// Name of the image (also accepted as `-t`)
    reference: Option<String>,
    /// Name of the image, e.g. `base:v1`
    #[arg(short, long = "tag")]
    tag: Option<String>,
    /// Dockerfile instruction to apply to the config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
    /// USER, VOLUME, WORKDIR, STOPSIGNAL, ONBUILD); repeatable
    #[arg(short, long)]
    change: Vec<String>,
    /// Layer compression
    #[arg(long, value_enum, default_value = "gzip")]
    compression: LayerCompression,
    /// Set the commit message (history comment)
    #[arg(short, long)]
    message: Option<String>,
}

pub fn run(root: &Path, args: Args) -> Result<ExitCode> {
    let name = match (&args.tag, &args.reference) {
        (Some(_), Some(_)) => bail!("give the name once: either `-t NAME` or a second argument"),
        (Some(n), None) | (None, Some(n)) => Some(super::parse_reference(n)?),
        (None, None) => None,
    };
    let mut config = ContainerConfig::default();
    for c in &args.change {
        kiln_oci::change::apply(&mut config, c)?;
    }
    let epoch = super::source_date_epoch()?;
    let store = super::open_store(root)?;
    let _gc = store.gc_lock(false)?;
    let compression: Compression = args.compression.into();
    let opts = WriteOptions {
        source_date_epoch: epoch,
        ..Default::default()
    };
    let source = &args.source;
    let layer = store
        .write_layer(compression, |out| -> Result<()> {
            if source.as_os_str() == "-" {
                let (_, input) = kiln_layer::decompress(std::io::stdin().lock())?;
                kiln_layer::normalize(input, out, &opts)?;
            } else if source.is_dir() {
                kiln_layer::write_dir(source, out, &opts)?;
            } else {
                let f = std::fs::File::open(source).map_err(|e| {
                    with_hint(
                        anyhow::Error::new(e).context(format!("cannot open {}", source.display())),
                        "give a tar archive of a root filesystem or a directory",
                    )
                })?;
                let (_, input) = kiln_layer::decompress(f)?;
                kiln_layer::normalize(input, out, &opts)?;
            }
            Ok(())
        })
        .map_err(|e| match e {
            kiln_store::compose::LayerWriteError::Produce(e) => {
                e.context(format!("cannot import {}", source.display()))
            }
            kiln_store::compose::LayerWriteError::Store(e) => e.into(),
        })?;
    let created = chrono::DateTime::from_timestamp(epoch.unwrap_or(0), 0)
        .context("SOURCE_DATE_EPOCH is out of range")?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let host = Platform::host();
    let image_config = ImageConfig {
        created: Some(created.clone()),
        author: None,
        architecture: host.architecture,
        os: host.os,
        variant: host.variant,
        config: Some(config),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.diff_id],
        },
        history: Some(vec![History {
            created: Some(created),
            created_by: Some("kiln import".into()),
            comment: args.message.clone(),
            ..Default::default()
        }]),
        extra: Default::default(),
    };
    let (desc, config_digest) = store.write_image(&image_config, vec![layer.descriptor])?;
    match &name {
        Some(n) => store.tag(&desc, n)?,
        None => store.add_untagged(&desc)?,
    }
    std::io::stdout().flush()?;
    println!("{config_digest}");
    Ok(ExitCode::SUCCESS)
}
