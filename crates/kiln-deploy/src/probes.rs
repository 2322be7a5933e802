//! Probes: readiness, liveness and startup, from the image's HEALTHCHECK (an HTTP GET
//! where the check is one) or a TCP check of its port.

use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kiln_oci::ImageConfig;

use crate::image::project_meta;

/// The startup probe's budget: `STARTUP_FAILURES` × `STARTUP_PERIOD` seconds (10 minutes),
/// for models that take long to load.
pub const STARTUP_FAILURES: i32 = 60;

/// Seconds between two startup probes (the probe's `periodSeconds`).
pub const STARTUP_PERIOD: i32 = 10;

/// Seconds from a Docker duration in nanoseconds, rounded up, at least 1.
fn seconds(ns: Option<&serde_json::Value>) -> Option<i32> {
    let ns = ns?.as_u64().filter(|n| *n > 0)?;
    Some(ns.div_ceil(1_000_000_000).clamp(1, i32::MAX as u64) as i32)
}

/// `http://localhost:PORT/PATH` in a curl or wget command: (port, path).
fn http_check(words: &[String]) -> Option<(i32, String)> {
    let program = words.first()?.rsplit('/').next()?;
    if program != "curl" && program != "wget" {
        return None;
    }
    words.iter().skip(1).find_map(|w| {
        let w = w.trim_matches(|c| c == '"' || c == '\'');
        let rest = w.strip_prefix("http://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p > 0)?),
            None => (authority, 80),
        };
        matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "0.0.0.0")
            .then(|| (i32::from(port), path.to_string()))
    })
}

/// The probe handler and timing from the image's HEALTHCHECK, if it has one.
fn healthcheck_probe(config: &ImageConfig) -> Option<Probe> {
    let hc = config.config.as_ref()?.extra.get("Healthcheck")?;
    let test: Vec<String> = hc
        .get("Test")?
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let (command, words): (Vec<String>, Vec<String>) = match test.first()?.as_str() {
        "CMD" if test.len() > 1 => (test[1..].to_vec(), test[1..].to_vec()),
        "CMD-SHELL" if test.len() > 1 => {
            let script = test[1..].join(" ");
            let words = script.split_whitespace().map(str::to_string).collect();
            (vec!["/bin/sh".into(), "-c".into(), script], words)
        }
        _ => return None,
    };
    // A kiln project's HTTP check is a python3 one-liner; its label names the path.
    let project_http = project_meta(config).and_then(|m| {
        let path = m.healthcheck?.path?;
        let port = *m.ports.first()?;
        Some((i32::from(port), path))
    });
    let mut probe = match project_http.or_else(|| http_check(&words)) {
        Some((port, path)) => Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path),
                port: IntOrString::Int(port),
                ..Default::default()
            }),
            ..Default::default()
        },
        None => Probe {
            exec: Some(ExecAction {
                command: Some(command),
            }),
            ..Default::default()
        },
    };
    probe.period_seconds = Some(seconds(hc.get("Interval")).unwrap_or(10));
    probe.timeout_seconds = Some(seconds(hc.get("Timeout")).unwrap_or(5));
    probe.failure_threshold = Some(
        hc.get("Retries")
            .and_then(|r| r.as_i64())
            .filter(|r| *r > 0)
            .map_or(3, |r| r.min(i32::MAX as i64) as i32),
    );
    Some(probe)
}

/// Readiness, liveness and startup probes.
pub(crate) fn probes(config: &ImageConfig, port: Option<i32>) -> Option<(Probe, Probe, Probe)> {
    let base = healthcheck_probe(config).or_else(|| {
        port.map(|p| Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(p),
                ..Default::default()
            }),
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            failure_threshold: Some(3),
            ..Default::default()
        })
    })?;
    let startup = Probe {
        period_seconds: Some(STARTUP_PERIOD),
        failure_threshold: Some(STARTUP_FAILURES),
        ..base.clone()
    };
    Some((base.clone(), base, startup))
}
