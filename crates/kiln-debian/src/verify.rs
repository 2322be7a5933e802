//! OpenPGP verification of InRelease files against the Debian archive keys, on rPGP
//! (`pgp`, pure Rust). The policy follows gpgv as apt runs it: the whole file is one
//! cleartext-signed message; a signature counts if it verifies with a primary key or a
//! bound signing subkey of the keyring that is neither expired nor revoked, is itself
//! not expired, and uses no weak digest; a signature from a known key that fails to
//! verify is fatal; at least one good signature is required.

use crate::{DebianError, Result};
use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey, SignedPublicSubKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureType, SubpacketData};
use pgp::types::{KeyDetails, Tag};
use std::path::{Path, PathBuf};

/// The keyring Debian installs (package debian-archive-keyring).
pub const SYSTEM_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The Debian archive keys kiln ships, for hosts without debian-archive-keyring: the
/// public keys of Debian's archive signing keys (bullseye to trixie), as Debian
/// publishes them.
const BUILTIN_KEYRING: &[u8] = include_bytes!("../keys/debian-archive-keyring.gpg");

/// Trusted public keys.
pub struct Keyring {
    certs: Vec<SignedPublicKey>,
    from: Vec<String>,
}

impl Keyring {
    /// Loads `paths`; with none, the system keyring if present, else kiln's own.
    pub fn load(paths: &[PathBuf]) -> Result<Keyring> {
        let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
        if paths.is_empty() {
            match std::fs::read(SYSTEM_KEYRING) {
                Ok(b) => blobs.push((SYSTEM_KEYRING.to_string(), b)),
                Err(_) => blobs.push((
                    "kiln's built-in Debian archive keyring".into(),
                    BUILTIN_KEYRING.to_vec(),
                )),
            }
        }
        for p in paths {
            let b = std::fs::read(p).map_err(|source| DebianError::KeyringRead {
                path: p.clone(),
                source,
            })?;
            blobs.push((p.display().to_string(), b));
        }
        let mut certs = Vec::new();
        for (name, b) in &blobs {
            let before = certs.len();
            let (iter, _) =
                SignedPublicKey::from_reader_many(&b[..]).map_err(|e| DebianError::Keyring {
                    name: name.clone(),
                    msg: format!("not an OpenPGP keyring: {}", short(&e)),
                })?;
            certs.extend(iter.flatten());
            if certs.len() == before {
                return Err(DebianError::Keyring {
                    name: name.clone(),
                    msg: "holds no public key".into(),
                });
            }
        }
        Ok(Keyring {
            certs,
            from: blobs.into_iter().map(|(n, _)| n).collect(),
        })
    }

    /// Loads one keyring file.
    pub fn from_file(path: &Path) -> Result<Keyring> {
        Self::load(&[path.to_path_buf()])
    }

    /// Where the keys came from, for messages.
    pub fn describe(&self) -> String {
        self.from.join(", ")
    }

    /// Verifies a cleartext-signed message; returns the signed text (LF line ends).
    pub fn verify_cleartext(&self, bytes: &[u8]) -> Result<String> {
        self.verify_at(bytes, now())
    }

    /// [`Keyring::verify_cleartext`] as at `now` (seconds since the epoch): expired
    /// signatures and keys are judged against that time.
    pub fn verify_at(&self, bytes: &[u8], now: u64) -> Result<String> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| DebianError::Signature("not a signed text file (not UTF-8)".into()))?;
        let (msg, _) = CleartextSignedMessage::from_string(text).map_err(|e| {
            DebianError::Signature(format!(
                "not an OpenPGP cleartext-signed file: {}",
                short(&e)
            ))
        })?;
        if msg.signatures().is_empty() {
            return Err(DebianError::Signature(
                "the file carries no signature".into(),
            ));
        }
        let signed = msg.signed_text();
        let mut good = 0;
        let mut bad = Vec::new();
        let mut ignored = Vec::new();
        for sig in msg.signatures() {
            let who = issuer(sig);
            if !matches!(sig.typ(), Some(SignatureType::Text | SignatureType::Binary)) {
                ignored.push(format!("{who}: not a document signature"));
                continue;
            }
            if matches!(
                sig.hash_alg(),
                None | Some(HashAlgorithm::Md5 | HashAlgorithm::Sha1 | HashAlgorithm::Ripemd160)
            ) {
                ignored.push(format!("{who}: weak digest {:?}", sig.hash_alg()));
                continue;
            }
            if let (Some(c), Some(e)) = (sig.created(), sig.signature_expiration_time()) {
                if e.as_secs() != 0 && c.as_secs() as u64 + e.as_secs() as u64 <= now {
                    ignored.push(format!("{who}: the signature expired"));
                    continue;
                }
            }
            match self.check(sig, signed.as_bytes(), now) {
                Check::Good => good += 1,
                Check::Bad => bad.push(format!("{who}: BAD signature")),
                Check::Unusable(why) => ignored.push(format!("{who}: {why}")),
                Check::Unknown => ignored.push(format!("{who}: no such key in the keyring")),
            }
        }
        if !bad.is_empty() {
            return Err(DebianError::Signature(format!(
                "bad signature: {}",
                bad.join("; ")
            )));
        }
        if good == 0 {
            return Err(DebianError::Signature(format!(
                "no valid signature from a trusted key ({})",
                ignored.join("; ")
            )));
        }
        Ok(signed.replace("\r\n", "\n"))
    }

    /// Whether `sig` over `data` verifies against a usable key of the keyring.
    fn check(&self, sig: &Signature, data: &[u8], now: u64) -> Check {
        let mut known = false;
        for cert in &self.certs {
            if issued_by(sig, &cert.primary_key) {
                known = true;
                if sig.verify(&cert.primary_key, data).is_ok() {
                    return Check::from(primary_ok(cert, now).and_then(|ss| {
                        if may_sign(ss) {
                            Ok(())
                        } else {
                            Err(DebianError::Signature(format!(
                                "key {} may not sign",
                                fpr(&cert.primary_key)
                            )))
                        }
                    }));
                }
            }
            for sub in &cert.public_subkeys {
                if issued_by(sig, &sub.key) {
                    known = true;
                    if sig.verify(&sub.key, data).is_ok() {
                        return Check::from(
                            primary_ok(cert, now).and_then(|_| subkey_ok(cert, sub, now)),
                        );
                    }
                }
            }
        }
        if known {
            Check::Bad
        } else {
            Check::Unknown
        }
    }
}

/// What [`Keyring::check`] found of one signature.
enum Check {
    /// It verifies against a usable key.
    Good,
    /// No key of the keyring issued it.
    Unknown,
    /// A known key, and the signature does not verify.
    Bad,
    /// It verifies, but the key is unusable (why).
    Unusable(DebianError),
}

impl From<Result<()>> for Check {
    fn from(r: Result<()>) -> Check {
        match r {
            Ok(()) => Check::Good,
            Err(why) => Check::Unusable(why),
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// rPGP's error texts can hold a dump of the input: keep them short.
fn short(e: &impl std::fmt::Display) -> String {
    let s = e.to_string();
    match s.char_indices().nth(160) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

fn fpr(k: &impl KeyDetails) -> String {
    format!("{:X}", k.fingerprint())
}

fn secs(t: Option<pgp::types::Timestamp>) -> u64 {
    t.map(|t| t.as_secs() as u64).unwrap_or(0)
}

fn issuer(sig: &Signature) -> String {
    let mut v: Vec<String> = sig
        .issuer_fingerprint()
        .iter()
        .map(|f| format!("{f:X}"))
        .collect();
    if v.is_empty() {
        v = sig
            .issuer_key_id()
            .iter()
            .map(|k| k.to_string().to_uppercase())
            .collect();
    }
    if v.is_empty() {
        "a signature without issuer".into()
    } else {
        format!("key {}", v.join("/"))
    }
}

fn issued_by(sig: &Signature, k: &impl KeyDetails) -> bool {
    let fps = sig.issuer_fingerprint();
    let ids = sig.issuer_key_id();
    if fps.is_empty() && ids.is_empty() {
        return true;
    }
    let (f, id) = (k.fingerprint(), k.legacy_key_id());
    fps.iter().any(|x| **x == f) || ids.iter().any(|x| **x == id)
}

/// The primary key is not revoked, has a valid self-signature and has not expired;
/// returns its newest self-signature (which carries its flags).
fn primary_ok(cert: &SignedPublicKey, now: u64) -> Result<&Signature> {
    let pk = &cert.primary_key;
    if cert
        .details
        .revocation_signatures
        .iter()
        .any(|s| s.typ() == Some(SignatureType::KeyRevocation) && s.verify_key(pk).is_ok())
    {
        return Err(DebianError::Signature(format!(
            "key {} is revoked",
            fpr(pk)
        )));
    }
    let by_uid = cert.details.users.iter().flat_map(|u| {
        u.signatures.iter().filter(move |s| {
            s.typ() != Some(SignatureType::CertRevocation)
                && s.verify_certification(pk, Tag::UserId, &u.id).is_ok()
        })
    });
    let direct = cert
        .details
        .direct_signatures
        .iter()
        .filter(|s| s.verify_key(pk).is_ok());
    let sig = by_uid
        .chain(direct)
        .max_by_key(|s| secs(s.created()))
        .ok_or_else(|| {
            DebianError::Signature(format!("key {} has no valid self-signature", fpr(pk)))
        })?;
    if let Some(exp) = sig.key_expiration_time() {
        let exp = exp.as_secs() as u64;
        if exp != 0 && pk.created_at().as_secs() as u64 + exp <= now {
            return Err(DebianError::Signature(format!("key {} expired", fpr(pk))));
        }
    }
    Ok(sig)
}

/// No key flags at all (old keys) means no restriction.
fn may_sign(selfsig: &Signature) -> bool {
    let flagged = selfsig.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    });
    !flagged || selfsig.key_flags().sign()
}

fn subkey_ok(cert: &SignedPublicKey, sub: &SignedPublicSubKey, now: u64) -> Result<()> {
    let pk = &cert.primary_key;
    let mut newest: Option<&Signature> = None;
    for s in &sub.signatures {
        match s.typ() {
            Some(SignatureType::SubkeyRevocation)
                if s.verify_subkey_binding(pk, &sub.key).is_ok() =>
            {
                return Err(DebianError::Signature(format!(
                    "subkey {} is revoked",
                    fpr(&sub.key)
                )));
            }
            Some(SignatureType::SubkeyBinding) => {
                if s.verify_subkey_binding(pk, &sub.key).is_err() {
                    continue;
                }
                // A signing subkey needs its back-signature (primary key binding).
                if s.key_flags().sign()
                    && s.embedded_signature()
                        .is_none_or(|b| b.verify_primary_key_binding(&sub.key, pk).is_err())
                {
                    continue;
                }
                if newest.is_none_or(|n| secs(s.created()) > secs(n.created())) {
                    newest = Some(s);
                }
            }
            _ => {}
        }
    }
    let b = newest.ok_or_else(|| {
        DebianError::Signature(format!("subkey {} is not bound to its key", fpr(&sub.key)))
    })?;
    if !may_sign(b) {
        return Err(DebianError::Signature(format!(
            "subkey {} may not sign",
            fpr(&sub.key)
        )));
    }
    if let Some(exp) = b.key_expiration_time() {
        let exp = exp.as_secs() as u64;
        if exp != 0 && sub.key.created_at().as_secs() as u64 + exp <= now {
            return Err(DebianError::Signature(format!(
                "subkey {} expired",
                fpr(&sub.key)
            )));
        }
    }
    Ok(())
}
