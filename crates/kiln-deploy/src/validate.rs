//! Checks of the user's input: Kubernetes names, label keys and values, resource
//! quantities, node selectors, and options that contradict each other.

use crate::error::{Error, Result};
use crate::options::Options;

/// Checks that `s` is an RFC 1123 DNS label (what Kubernetes requires of names), and
/// that it starts with a letter (RFC 1035, required of a Service's name); the error names
/// the rule broken.
pub fn validate_name(what: &str, s: &str) -> Result<()> {
    let rule = |r: &str| {
        Err(Error::new(
            format!("invalid {what} `{s}`: {r}"),
            "Kubernetes names are RFC 1123 DNS labels: at most 63 lowercase letters, digits and \
             '-', starting with a letter and ending with a letter or digit, e.g. `iris-v2`",
        ))
    };
    if s.is_empty() {
        return rule("a name must not be empty");
    }
    if s.len() > 63 {
        return rule(&format!(
            "a name must be at most 63 characters (it has {})",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return rule(&format!(
            "a name may contain only lowercase letters, digits and '-' (found `{c}`)"
        ));
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return rule("a name must start with a lowercase letter");
    }
    if s.ends_with('-') {
        return rule("a name must end with a letter or a digit");
    }
    Ok(())
}

/// A label value: at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
pub(crate) fn valid_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() <= 63
        && (b.is_empty()
            || (b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))))
}

/// A label key: `[prefix/]name`, the name a label value that is not empty.
fn valid_label_key(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    !name.is_empty()
        && valid_label_value(name)
        && prefix.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 253
                && p.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
        })
}

/// A resource quantity as users write them: `500m`, `2`, `1.5`, `512Mi`, `4G`.
pub(crate) fn valid_quantity(s: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    SUFFIXES.iter().any(|suf| {
        s.strip_suffix(suf).is_some_and(|n| {
            let (int, frac) = n.split_once('.').unwrap_or((n, "0"));
            !int.is_empty()
                && int.bytes().all(|c| c.is_ascii_digit())
                && !frac.is_empty()
                && frac.bytes().all(|c| c.is_ascii_digit())
                && n.bytes().any(|c| c != b'0' && c != b'.')
        })
    })
}

/// Parses `K=V` for `--node-selector`.
pub fn parse_node_selector(s: &str) -> Result<(String, String)> {
    let hint =
        "give a node label as KEY=VALUE, e.g. `nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3`";
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| Error::new(format!("invalid node selector `{s}`: no `=`"), hint))?;
    if !valid_label_key(k) {
        return Err(Error::new(
            format!("invalid node selector `{s}`: `{k}` is not a label key"),
            hint,
        ));
    }
    if !valid_label_value(v) {
        return Err(Error::new(
            format!("invalid node selector `{s}`: `{v}` is not a label value (at most 63 of letters, digits, '-', '_', '.', alphanumeric at both ends)"),
            hint,
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

pub(crate) fn check_options(opts: &Options) -> Result<()> {
    validate_name("name", &opts.name)?;
    if let Some(ns) = &opts.namespace {
        validate_name("namespace", ns)?;
    }
    let positive = |flag: &str, v: Option<i32>, least: i32| match v {
        Some(n) if n < least => Err(Error::new(
            format!("{flag} {n}: must be at least {least}"),
            format!("give {flag} a number of at least {least}"),
        )),
        _ => Ok(()),
    };
    positive("--replicas", opts.replicas, 0)?;
    positive("--min", opts.min, 1)?;
    positive("--max", opts.max, 1)?;
    positive("--cpu-target", opts.cpu_target, 1)?;
    if let (Some(min), Some(max)) = (opts.min, opts.max) {
        if min > max {
            return Err(Error::new(
                format!("--min {min} is above --max {max}"),
                "the autoscaler needs --min at most --max, e.g. `--min 2 --max 10`",
            ));
        }
    }
    if opts.max.is_none() && (opts.min.is_some() || opts.cpu_target.is_some()) {
        let flag = if opts.min.is_some() {
            "--min"
        } else {
            "--cpu-target"
        };
        return Err(Error::new(
            format!("{flag} needs --max: they configure the autoscaler"),
            "add `--max N`, or give a fixed number of pods with `--replicas N`",
        ));
    }
    if opts.max.is_some() && opts.replicas.is_some() {
        return Err(Error::new(
            "--replicas and --max both set the number of pods",
            "use `--replicas N` for a fixed number, or `--min N --max M` to autoscale",
        ));
    }
    if opts.job && (opts.max.is_some() || opts.min.is_some()) {
        return Err(Error::new(
            "--job cannot autoscale: a Job runs to completion, an autoscaler scales a Deployment",
            "drop --min/--max/--cpu-target, or drop --job to serve",
        ));
    }
    for (flag, q) in [("--cpu", &opts.cpu), ("--memory", &opts.memory)] {
        if let Some(q) = q {
            if !valid_quantity(q) {
                return Err(Error::new(
                    format!("invalid {flag} `{q}`: not a Kubernetes quantity"),
                    "quantities look like `500m` or `2` (CPUs), `512Mi` or `4Gi` (memory)",
                ));
            }
        }
    }
    if opts.gpus == Some(0) {
        return Err(Error::new(
            "--gpus 0: give at least one GPU",
            "drop --gpus for a pod without GPUs",
        ));
    }
    Ok(())
}
