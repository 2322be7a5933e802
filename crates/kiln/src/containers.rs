//! Finding containers by name or ID, for the commands that act on them.

use anyhow::{anyhow, Result};
use kiln_runtime::container::Record;
use std::path::Path;

/// Finds a container by name, full ID or unique ID prefix.
pub fn find(root: &Path, key: &str) -> Result<Record> {
    let all = Record::list(root);
    if let Some(r) = all.iter().find(|r| r.name == key || r.id == key) {
        return Ok(r.clone());
    }
    let hits: Vec<&Record> = all
        .iter()
        .filter(|r| !key.is_empty() && r.id.starts_with(key))
        .collect();
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(crate::output::with_hint(
            anyhow!("no such container: {key}"),
            "`kiln ps -a` lists containers",
        )),
        _ => Err(anyhow!(
            "`{key}` matches several containers; give more of the ID or the name"
        )),
    }
}
