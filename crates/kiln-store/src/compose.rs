//! Writing new images into the store: a layer from a tar stream being produced, then the
//! config and manifest around a stack of layers. Shared by `import`, `commit` and builds.

use crate::error::{Result, StoreError};
use crate::store::Store;
use kiln_layer::{Compression, Compressor};
use kiln_oci::media;
use kiln_oci::types::{to_canonical_json, Descriptor, ImageConfig, Manifest};
use kiln_oci::{Digest, HashingWriter};
use std::io::Write;

/// A layer written to the store: its descriptor and its diff ID (uncompressed digest).
pub struct NewLayer {
    /// Descriptor of the stored (possibly compressed) blob, with the OCI layer media type
    /// of its compression.
    pub descriptor: Descriptor,
    /// Digest of the uncompressed tar, for the config's `rootfs.diff_ids`.
    pub diff_id: Digest,
}

impl Store {
    /// Writes the tree `dir` as it is (a whole root, no overlay whiteouts to translate)
    /// as a layer, every mtime clamped to `epoch`, while holding the store's GC lock
    /// shared. Used where a tree made outside any container becomes a layer and its
    /// snapshot (Debian package groups, a project's layers).
    pub fn write_tree_layer(
        &self,
        dir: &std::path::Path,
        epoch: i64,
        compression: Compression,
    ) -> std::result::Result<NewLayer, LayerWriteError<kiln_layer::LayerError>> {
        let opts = kiln_layer::WriteOptions {
            source_date_epoch: Some(epoch),
            overlay_whiteouts: false,
            exclude: vec![],
        };
        let _gc = self.gc_lock(false).map_err(LayerWriteError::Store)?;
        self.write_layer(compression, |out| {
            kiln_layer::write_dir(dir, out, &opts).map(|_| ())
        })
    }

    /// Writes a layer: `produce` writes the uncompressed tar into the given writer; it is
    /// hashed (diff ID), compressed, hashed again and committed as a blob. If `produce`
    /// fails nothing enters the store.
    pub fn write_layer<E>(
        &self,
        compression: Compression,
        produce: impl FnOnce(&mut dyn Write) -> std::result::Result<(), E>,
    ) -> std::result::Result<NewLayer, LayerWriteError<E>> {
        let mut blob = self.blob_writer()?;
        let tmp_err = |e: std::io::Error| StoreError::Io {
            path: self.root().join("tmp"),
            source: e,
        };
        if compression == Compression::None {
            // The blob is the tar itself: its digest is the diff ID (one hash, not two).
            produce(&mut blob).map_err(LayerWriteError::Produce)?;
            let (digest, size) = blob.commit(None)?;
            return Ok(NewLayer {
                descriptor: Descriptor::new(media::OCI_LAYER, digest.clone(), size),
                diff_id: digest,
            });
        }
        let mut diff = HashingWriter::new(Compressor::new(blob, compression).map_err(tmp_err)?);
        produce(&mut diff).map_err(LayerWriteError::Produce)?;
        let (diff_id, _, compressor) = diff.finish();
        let blob = compressor.finish().map_err(tmp_err)?;
        let (digest, size) = blob.commit(None)?;
        Ok(NewLayer {
            descriptor: Descriptor::new(
                media::oci_layer(compression.media_type_suffix()),
                digest,
                size,
            ),
            diff_id,
        })
    }

    /// Writes `config` and an OCI manifest of it and `layers`; returns the manifest's
    /// descriptor (ready to tag) and the config digest (the image ID).
    pub fn write_image(
        &self,
        config: &ImageConfig,
        layers: Vec<Descriptor>,
    ) -> Result<(Descriptor, Digest)> {
        let config_bytes = to_canonical_json(config);
        let config_digest = self.write_blob(&config_bytes)?;
        let manifest = Manifest::oci(
            Descriptor::new(
                media::OCI_CONFIG,
                config_digest.clone(),
                config_bytes.len() as u64,
            ),
            layers,
        );
        let bytes = to_canonical_json(&manifest);
        let digest = self.write_blob(&bytes)?;
        Ok((
            Descriptor::new(media::OCI_MANIFEST, digest, bytes.len() as u64),
            config_digest,
        ))
    }
}

/// Why a layer could not be written: the producer's own error, or the store's.
#[derive(Debug, thiserror::Error)]
pub enum LayerWriteError<E> {
    /// The store failed: the temporary blob could not be written, compressed or
    /// committed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller's `produce` closure returned this error; nothing entered the store.
    #[error("cannot write the layer")]
    Produce(#[source] E),
}
