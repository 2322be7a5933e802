//! Everything kiln prints: errors with their causes and hints, sizes and ages, and
//! progress (bars on a terminal, plain lines otherwise).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

/// An error to show with a `hint:` line after it.
#[derive(Debug)]
pub struct Hint(pub String);
impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Hint {}

/// Attaches a hint to an error.
pub fn with_hint(e: impl Into<anyhow::Error>, hint: &str) -> anyhow::Error {
    e.into().context(Hint(hint.to_string()))
}

/// Prints `error: ...`, `caused by: ...` lines and a final `hint: ...`.
pub fn print_error(e: &anyhow::Error) {
    // anyhow hands a context back by downcasting the error that carries it, not through
    // the chain, where it shows as plain text: take it from there and skip its line.
    let mut hint: Option<String> = e.downcast_ref::<Hint>().map(|h| h.0.clone());
    let mut lines: Vec<String> = Vec::new();
    for cause in e.chain() {
        if hint.as_deref() == Some(cause.to_string().as_str()) {
            continue;
        }
        if let Some(h) = library_hint(cause) {
            hint.get_or_insert(h);
        }
        let text = cause.to_string();
        // A full disk, wherever it struck (some library errors carry it only as text).
        let no_space = cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::ENOSPC))
            || text.contains("No space left on device");
        if no_space {
            hint.get_or_insert_with(|| {
                "the file system holding the store is full: free space (`kiln prune`, `kiln rmi`) or move the store with `--root` (or `KILN_ROOT`)".to_string()
            });
        }
        // Messages that quote their source (`{path}: {source}`) and transparent variants
        // would print a cause twice: print it once.
        let repeated = lines
            .last()
            .is_some_and(|l| *l == text || l.ends_with(&format!(": {text}")));
        if !repeated {
            lines.push(text);
        }
    }
    for (i, l) in lines.iter().enumerate() {
        eprintln!("{}{l}", if i == 0 { "error: " } else { "caused by: " });
    }
    if let Some(h) = hint {
        eprintln!("hint: {h}");
    }
}

/// The hint of an error of one of kiln's libraries that carries one.
fn library_hint(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    type Cause<'a> = &'a (dyn std::error::Error + 'static);
    let hints: [fn(Cause) -> Option<String>; 5] = [
        |c| c.downcast_ref::<kiln_registry::RegistryError>()?.hint(),
        |c| c.downcast_ref::<kiln_runtime::RuntimeError>()?.hint(),
        |c| c.downcast_ref::<kiln_archive::ArchiveError>()?.hint(),
        |c| c.downcast_ref::<kiln_debian::DebianError>()?.hint(),
        |c| c.downcast_ref::<kiln_build::exec::BuildError>()?.hint(),
    ];
    hints.iter().find_map(|hint| hint(cause))
}

/// Sizes as Docker prints them (SI units).
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[u]
    }
}

/// "3 days ago" from an RFC 3339 time.
pub fn human_age(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()) else {
        return "N/A".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds();
    let (n, unit) = match secs {
        s if s < 60 => return "Less than a minute ago".into(),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86400 => (s / 3600, "hour"),
        s if s < 86400 * 14 => (s / 86400, "day"),
        s if s < 86400 * 60 => (s / (86400 * 7), "week"),
        s if s < 86400 * 365 * 2 => (s / (86400 * 30), "month"),
        s => (s / (86400 * 365), "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// Progress as the terminal allows: bars on a TTY, a line per finished task otherwise,
/// nothing when quiet.
pub struct Reporter {
    mode: Mode,
}

/// In plain-line mode, tasks smaller than this finish silently: a line per small JSON
/// blob is noise in a CI log.
const LINE_MIN_BYTES: u64 = 16 << 20;

enum Mode {
    Quiet,
    Lines(Mutex<HashMap<String, u64>>),
    Bars {
        multi: MultiProgress,
        bars: Mutex<HashMap<String, ProgressBar>>,
    },
}

impl Reporter {
    /// Picks the mode from `quiet` and whether stderr is a terminal.
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(HashMap::new()),
            }
        } else {
            Mode::Lines(Mutex::new(HashMap::new()))
        };
        Self { mode }
    }
}

impl kiln_store::Progress for Reporter {
    fn start(&self, id: &str, label: &str, total: Option<u64>) {
        if let Mode::Lines(sizes) = &self.mode {
            sizes
                .lock()
                .unwrap()
                .insert(id.to_string(), total.unwrap_or(0));
        }
        if let Mode::Bars { multi, bars } = &self.mode {
            let bar = multi.add(ProgressBar::new(total.unwrap_or(0)));
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            bars.lock().unwrap().insert(id.to_string(), bar);
        }
    }
    fn advance(&self, id: &str, n: u64) {
        if let Mode::Bars { bars, .. } = &self.mode {
            if let Some(b) = bars.lock().unwrap().get(id) {
                b.inc(n);
            }
        }
    }
    fn finish(&self, id: &str, status: &str) {
        match &self.mode {
            Mode::Bars { bars, .. } => {
                if let Some(b) = bars.lock().unwrap().remove(id) {
                    b.finish_and_clear();
                }
            }
            Mode::Lines(sizes) => {
                let size = sizes.lock().unwrap().remove(id).unwrap_or(0);
                if size >= LINE_MIN_BYTES {
                    eprintln!("{id}: {status} ({})", human_size(size));
                }
            }
            Mode::Quiet => {}
        }
    }
}
