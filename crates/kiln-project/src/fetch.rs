//! Downloads whose bytes kiln knows beforehand (a pinned uv wheel, a locked sdist): read
//! up to a cap, then checked against their sha256 before anything uses them.

use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::time::Duration;

/// Why a download was refused.
pub(crate) enum FetchError {
    /// The connection or the HTTP status.
    Transfer(String),
    /// More than the cap was sent.
    TooLarge,
    /// The bytes' sha256 (hex) is this, not the expected one.
    Mismatch(String),
}

/// GETs `url`, reading at most `cap` bytes, and checks them against `sha256` (hex).
pub(crate) fn fetch_verified(
    url: &str,
    sha256: &str,
    cap: u64,
    timeout: Duration,
) -> Result<Vec<u8>, FetchError> {
    let transfer = |e: String| FetchError::Transfer(e);
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| transfer(e.to_string()))?;
    let resp = client
        .get(url)
        .send()
        .and_then(|r| r.error_for_status())
        .map_err(|e| transfer(e.to_string()))?;
    let mut bytes = Vec::new();
    resp.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| transfer(e.to_string()))?;
    if bytes.len() as u64 > cap {
        return Err(FetchError::TooLarge);
    }
    let got = hex::encode(Sha256::digest(&bytes));
    if got != sha256 {
        return Err(FetchError::Mismatch(got));
    }
    Ok(bytes)
}
