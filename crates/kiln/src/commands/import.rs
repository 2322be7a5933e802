//! `kiln import`: a one-layer image from a root filesystem.

use crate::output::with_hint;
use anyhow::{bail, Context, Result};
use kiln_layer::{Compression, Compressor, WriteOptions};
use kiln_oci::media;
use kiln_oci::types::{
    to_canonical_json, ContainerConfig, Descriptor, History, ImageConfig, Manifest, RootFs,
};
use kiln_oci::{HashingWriter, Platform};
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
    let blob = store.blob_writer()?;
    let mut diff = HashingWriter::new(Compressor::new(blob, compression)?);
    let opts = WriteOptions {
        source_date_epoch: epoch,
    };
    let source = &args.source;
    let written = if source.as_os_str() == "-" {
        let (_, input) = kiln_layer::decompress(std::io::stdin().lock())?;
        kiln_layer::normalize(input, &mut diff, &opts).map(|_| ())
    } else if source.is_dir() {
        kiln_layer::write_dir(source, &mut diff, &opts).map(|_| ())
    } else {
        let f = std::fs::File::open(source).map_err(|e| {
            with_hint(
                anyhow::Error::new(e).context(format!("cannot open {}", source.display())),
                "give a tar archive of a root filesystem or a directory",
            )
        })?;
        let (_, input) = kiln_layer::decompress(f)?;
        kiln_layer::normalize(input, &mut diff, &opts).map(|_| ())
    };
    if let Err(e) = written {
        // The blob writer deletes its temp file when dropped: nothing enters the store.
        return Err(anyhow::Error::new(e).context(format!("cannot import {}", source.display())));
    }
    let (diff_id, _, compressor) = diff.finish();
    let blob = compressor.finish()?;
    let (layer_digest, layer_size) = blob.commit(None)?;
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
            diff_ids: vec![diff_id],
        },
        history: Some(vec![History {
            created: Some(created),
            created_by: Some("kiln import".into()),
            comment: args.message.clone(),
            ..Default::default()
        }]),
        extra: Default::default(),
    };
    let config_bytes = to_canonical_json(&image_config);
    let config_digest = store.write_blob(&config_bytes)?;
    let manifest = Manifest::oci(
        Descriptor::new(
            media::OCI_CONFIG,
            config_digest.clone(),
            config_bytes.len() as u64,
        ),
        vec![Descriptor::new(
            media::oci_layer(compression.media_type_suffix()),
            layer_digest,
            layer_size,
        )],
    );
    let manifest_bytes = to_canonical_json(&manifest);
    let manifest_digest = store.write_blob(&manifest_bytes)?;
    let desc = Descriptor::new(
        media::OCI_MANIFEST,
        manifest_digest,
        manifest_bytes.len() as u64,
    );
    match &name {
        Some(n) => store.tag(&desc, n)?,
        None => store.add_untagged(&desc)?,
    }
    std::io::stdout().flush()?;
    println!("{config_digest}");
    Ok(ExitCode::SUCCESS)
}
