//! `kiln build --sbom`: the image's SBOM (SPDX 2.3 JSON) and its SLSA provenance (an
//! in-toto statement) attached to it as OCI artifacts whose `subject` is the image
//! manifest, stored in the store's OCI layout (see [`kiln_store::referrers`]), pushed
//! and pulled with the image, and preferred by `kiln sbom` ([`attached_sbom`]).

use crate::error::Result;
use crate::provenance::{self, BuildInputs};
use crate::Source;
use kiln_oci::types::{Descriptor, StringMap};
use kiln_store::Store;

/// The artifact and document type of an SPDX JSON SBOM.
pub const SPDX_JSON: &str = "application/spdx+json";
/// The artifact and document type of an in-toto statement.
pub const IN_TOTO_JSON: &str = "application/vnd.in-toto+json";

/// What [`attach`] stored.
#[derive(Clone, Debug)]
pub struct Attached {
    /// The SBOM artifact's index.json entry.
    pub sbom: Descriptor,
    /// The provenance artifact's, when asked for.
    pub provenance: Option<Descriptor>,
}

/// Writes the SBOM of the image `image` (an index.json entry of the store) and, with
/// `inputs.provenance`, its provenance, as artifacts of it. The documents depend only
/// on the image and the inputs: the same build attaches the same bytes.
pub fn attach(store: &Store, image: &Descriptor, inputs: &BuildInputs) -> Result<Attached> {
    let info = store.image(image)?;
    let (env, _) = crate::read_environment(store, &info, inputs.name.as_deref(), Source::Auto)?;
    let created = crate::spdx::created(&env);
    let annotations: StringMap = [(
        kiln_oci::media::ANNOTATION_CREATED.to_string(),
        created.clone(),
    )]
    .into();
    let sbom = store.add_referrer(
        image,
        SPDX_JSON,
        SPDX_JSON,
        &crate::spdx::write(&env),
        Some(annotations.clone()),
        true,
    )?;
    let provenance = if inputs.provenance {
        let platform = match &info.config.variant {
            Some(v) => format!("{}/{}/{v}", info.config.os, info.config.architecture),
            None => format!("{}/{}", info.config.os, info.config.architecture),
        };
        let doc = provenance::statement(store, &image.digest, &created, &platform, inputs)?;
        Some(store.add_referrer(
            image,
            IN_TOTO_JSON,
            IN_TOTO_JSON,
            &doc,
            Some(annotations),
            true,
        )?)
    } else {
        None
    };
    Ok(Attached { sbom, provenance })
}

/// The SPDX SBOM attached to the image `image` (its index.json entry's digest, or the
/// manifest chosen for this host), if there is one.
pub fn attached_sbom(store: &Store, image: &kiln_store::ImageInfo) -> Result<Option<Vec<u8>>> {
    for d in [&image.descriptor.digest, &image.manifest_descriptor.digest] {
        if let Some(doc) = store.referrer_document(d, SPDX_JSON)? {
            return Ok(Some(doc));
        }
    }
    Ok(None)
}
