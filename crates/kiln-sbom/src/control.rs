//! RFC 822-style fields, as dpkg's status, Debian copyright files and Python's METADATA
//! and PKG-INFO write them: `Name: value`, continuation lines starting with a space or tab.

/// One paragraph: its fields in order (a field may repeat, as `Classifier` does).
pub type Paragraph = Vec<(String, String)>;

/// The value of the first field named `name` (case-insensitive).
pub fn field<'a>(p: &'a Paragraph, name: &str) -> Option<&'a str> {
    p.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// All values of the fields named `name` (case-insensitive).
pub fn fields<'a>(p: &'a Paragraph, name: &str) -> impl Iterator<Item = &'a str> + 'a {
    let name = name.to_string();
    p.iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(&name))
        .map(|(_, v)| v.as_str())
}

/// Splits `text` into paragraphs separated by blank lines. With `first_only`, stops at
/// the end of the first one (a METADATA body follows its headers).
pub fn paragraphs(text: &str, first_only: bool) -> Vec<Paragraph> {
    let mut out = Vec::new();
    let mut cur: Paragraph = Vec::new();
    for line in text.lines() {
        // A whitespace-only line is a continuation (METADATA's multi-line License), an
        // empty one ends the paragraph.
        if line.is_empty() || (line.trim().is_empty() && cur.is_empty()) {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
                if first_only {
                    return out;
                }
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, v)) = cur.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            cur.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}
