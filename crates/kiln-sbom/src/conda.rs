//! conda's record of installed packages, `conda-meta/*.json`.

use serde::Deserialize;

/// The fields of a conda-meta record kiln uses (the file also lists every file).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct CondaRecord {
    /// The conda package name, e.g. `python`.
    pub name: String,
    /// The upstream version, e.g. `3.11.5`.
    pub version: String,
    /// The build string that tells builds of one version apart, e.g. `h955ad1f_1`.
    #[serde(default)]
    pub build: Option<String>,
    /// The channel URL the package was installed from.
    #[serde(default)]
    pub channel: Option<String>,
    /// The channel's platform directory, e.g. `linux-64` or `noarch`.
    #[serde(default)]
    pub subdir: Option<String>,
    /// The license as the package's recipe declares it (often, not always, SPDX).
    #[serde(default)]
    pub license: Option<String>,
    /// MD5 of the package archive, lowercase hex.
    #[serde(default)]
    pub md5: Option<String>,
    /// SHA-256 of the package archive, lowercase hex.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// Parses one conda-meta record; `None` for other JSON files there (`history` is not JSON,
/// `pinned` has no `.json`).
pub fn parse_record(bytes: &[u8]) -> Option<CondaRecord> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conda_meta_record() {
        let json = br#"{"arch":"x86_64","build":"h955ad1f_1","build_number":1,"channel":"https://repo.anaconda.com/pkgs/main/linux-64","constrains":[],"depends":["bzip2 >=1.0.8,<2.0a0","libffi >=3.4,<4.0a0"],"extracted_package_dir":"/opt/conda/pkgs/python-3.11.5-h955ad1f_1","features":"","files":["bin/python3.11","lib/libpython3.11.so"],"fn":"python-3.11.5-h955ad1f_1.conda","license":"PSF-2.0","md5":"a4a1f2ab6b2f4b4e3f0d1b6c4cdb2c1f","name":"python","package_tarball_full_path":"/opt/conda/pkgs/python-3.11.5-h955ad1f_1.conda","paths_data":{"paths":[],"paths_version":1},"requested_spec":"python=3.11","sha256":"0f4a1bbe5d2a6a2e5a8d1e7f0e2b8c2d4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c","size":31268489,"subdir":"linux-64","timestamp":1692979934000,"url":"https://repo.anaconda.com/pkgs/main/linux-64/python-3.11.5-h955ad1f_1.conda","version":"3.11.5"}"#;
        let r = parse_record(json).unwrap();
        assert_eq!(r.name, "python");
        assert_eq!(r.version, "3.11.5");
        assert_eq!(r.build.as_deref(), Some("h955ad1f_1"));
        assert_eq!(r.subdir.as_deref(), Some("linux-64"));
        assert_eq!(r.license.as_deref(), Some("PSF-2.0"));
        assert!(r.sha256.is_some());
        assert!(parse_record(b"not json").is_none());
    }
}
