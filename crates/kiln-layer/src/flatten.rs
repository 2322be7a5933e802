//! Flattening a stack of layers into one tar of the final tree, in memory of paths only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Write};

use crate::error::{tar_err, unsafe_entry, LayerError, Result};
use crate::guard::TarGuard;
use crate::tarfmt::{clean, entries, join, read_meta, split_last, Kind, TarOut};

/// An entry by position: (layer, index among the layer's tar entries).
type Id = (usize, u64);

#[derive(Clone, Copy)]
struct Owner {
    id: Id,
    dir: bool,
}

/// Flattens layers (bottom first) into one tar stream of the final tree, applying whiteouts, without touching
/// the filesystem and without root. `open(i)` returns a fresh *decompressed* reader of layer i; it is called
/// twice per layer (one pass computes what is visible, one copies). Output: for each layer bottom-up, the
/// entries of that layer visible in the final tree, in layer order, with clean paths; whiteouts never appear.
///
/// Hardlinks stay valid: a visible link whose target was hidden by a later layer is written as the target's
/// file (data and metadata) under the link's path, at the target's place in the stream, and other links to
/// the same file point to that path. Writes *through* symlinks (a layer writing `lib/x` where a lower layer
/// made `lib` a symlink) are kept as written; extracting the output resolves them the same way.
pub fn flatten<'a, W: Write>(
    layer_count: usize,
    open: &mut dyn FnMut(usize) -> io::Result<Box<dyn Read + 'a>>,
    out: W,
) -> Result<W> {
    // Pass 1: replay the layers on a map of clean path -> owning entry.
    let mut tree: BTreeMap<Vec<u8>, Owner> = BTreeMap::new();
    // Link entry -> (the file entry that owns its data, that entry's path).
    let mut links: HashMap<Id, (Id, Vec<u8>)> = HashMap::new();
    each_entry(layer_count, open, |id, e| {
        let Some(m) = read_meta(e)? else {
            return Ok(());
        };
        let (rel, _) = clean(&m.path);
        let (parent, name) = split_last(&rel);
        if let Some(wh) = name.strip_prefix(b".wh.") {
            if wh == b".wh..opq" {
                remove_below(&mut tree, parent, id.0);
            } else if !wh.starts_with(b".wh.") {
                if wh.is_empty() || wh == b"." || wh == b".." {
                    return Err(unsafe_entry(
                        &m.path,
                        "whiteout names no file in its directory",
                    ));
                }
                let target = join(parent, wh);
                if tree.get(&target).is_some_and(|o| o.id.0 != id.0) {
                    tree.remove(&target);
                }
                remove_below(&mut tree, &target, id.0);
            }
            return Ok(());
        }
        if rel.is_empty() && m.kind != Kind::Dir {
            return Ok(()); // the extractor ignores it too
        }
        let dir = m.kind == Kind::Dir;
        if !dir || tree.get(&rel).is_some_and(|o| !o.dir) {
            // A non-directory replaces a whole subtree, whichever layer made it.
            remove_below(&mut tree, &rel, usize::MAX);
        }
        if m.kind == Kind::Link {
            let (target, _) = clean(&m.link);
            if let Some(o) = tree.get(&target) {
                let src = links.get(&o.id).cloned().unwrap_or((o.id, target));
                links.insert(id, src);
            }
        }
        tree.insert(rel, Owner { id, dir });
        Ok(())
    })?;

    // Decide the fate of each entry: written as is, written under another path, or written with another
    // link target.
    let visible: HashSet<Id> = tree.values().map(|o| o.id).collect();
    let link_path: HashMap<Id, &Vec<u8>> = tree
        .iter()
        .filter(|(_, o)| links.contains_key(&o.id))
        .map(|(p, o)| (o.id, p))
        .collect();
    let mut rename: HashMap<Id, Vec<u8>> = HashMap::new();
    let mut relink: HashMap<Id, Vec<u8>> = HashMap::new();
    let mut skip: HashSet<Id> = HashSet::new();
    let mut visible_links: Vec<(&Id, &(Id, Vec<u8>))> = links
        .iter()
        .filter(|(id, _)| visible.contains(id))
        .collect();
    visible_links.sort_unstable_by_key(|(id, _)| **id);
    for (id, (src, src_path)) in visible_links {
        if tree.get(src_path).is_some_and(|o| o.id == *src) {
            relink.insert(*id, src_path.clone());
        } else if let Some(p) = rename.get(src) {
            relink.insert(*id, p.clone());
        } else {
            // The first surviving link takes over the hidden file.
            rename.insert(*src, link_path[id].clone());
            skip.insert(*id);
        }
    }

    // Pass 2: copy.
    let mut t = TarOut::new(out);
    each_entry(layer_count, open, |id, e| {
        let shown = (visible.contains(&id) && !skip.contains(&id)) || rename.contains_key(&id);
        if !shown {
            return Ok(()); // unread data is skipped by the tar reader
        }
        let Some(mut m) = read_meta(e)? else {
            return Ok(());
        };
        let raw = std::mem::take(&mut m.path);
        m.path = rename.remove(&id).unwrap_or_else(|| clean(&raw).0);
        if m.kind == Kind::Link {
            m.link = relink.remove(&id).unwrap_or_else(|| clean(&m.link).0);
        }
        t.entry(&m, e)
            .map_err(|s| tar_err(&raw, "cannot copy entry", s))?;
        Ok(())
    })?;
    t.finish()
        .map_err(|s| tar_err(b"", "cannot finish the archive", s))
}

/// Drops everything strictly below `dir` (the whole tree for the root) not made by layer `keep`.
fn remove_below(tree: &mut BTreeMap<Vec<u8>, Owner>, dir: &[u8], keep: usize) {
    let prefix = join(dir, b"");
    let doomed: Vec<Vec<u8>> = tree
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
        .filter(|(p, o)| o.id.0 != keep && !p.is_empty())
        .map(|(p, _)| p.clone())
        .collect();
    for p in doomed {
        tree.remove(&p);
    }
}

/// Calls `f` with every tar entry of every layer, bottom layer first, in archive order, and the
/// entry's [`Id`] (both passes read every layer the same way).
fn each_entry<'a>(
    layer_count: usize,
    open: &mut dyn FnMut(usize) -> io::Result<Box<dyn Read + 'a>>,
    mut f: impl FnMut(Id, &mut tar::Entry<'_, TarGuard<Box<dyn Read + 'a>>>) -> Result<()>,
) -> Result<()> {
    for layer in 0..layer_count {
        let r = open(layer).map_err(|s| tar_err(b"", &format!("cannot open layer {layer}"), s))?;
        let mut ar = tar::Archive::new(TarGuard::new(r));
        for (idx, e) in entries(&mut ar)?.enumerate() {
            let mut e = e.map_err(|s| header_err(layer, s))?;
            f((layer, idx as u64), &mut e)?;
        }
    }
    Ok(())
}

fn header_err(layer: usize, s: io::Error) -> LayerError {
    tar_err(
        b"",
        &format!("cannot read entry header in layer {layer}"),
        s,
    )
}
