//! The tag history on the command line: warnings for bad lines, errors with their hints.

use crate::output::with_hint;
use kiln_store::history;
use kiln_store::Store;

/// A warning for a line of the history that is no record.
pub fn warn_bad(store: &Store, b: &history::BadLine) {
    eprintln!(
        "warning: {}:{}: not a history record ({}); skipped",
        store.root().join("history/tags.jsonl").display(),
        b.line,
        b.reason
    );
}

/// A history error, with its hint.
pub fn version_error(e: history::VersionError) -> anyhow::Error {
    match e.hint() {
        Some(h) => with_hint(e, &h),
        None => e.into(),
    }
}
