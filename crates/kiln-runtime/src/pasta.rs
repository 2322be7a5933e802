//! User-mode networking for a container's private network namespace with `pasta` (from
//! Debian's passt package): outbound connectivity without root-owned bridges or iptables,
//! and published ports (`-p`) forwarded from the host.

use crate::error::{Result, RuntimeError};
use std::path::{Path, PathBuf};

/// One published port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// Host address to listen on; all addresses when `None`.
    pub host_ip: Option<std::net::Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub udp: bool,
}

impl Publish {
    /// Docker's `[IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]`.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |reason: &str| RuntimeError::Invalid {
            what: "port specification",
            value: spec.to_string(),
            reason: reason.to_string(),
        };
        let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
        let udp = match proto {
            "tcp" => false,
            "udp" => true,
            _ => return Err(bad("the protocol is `tcp` or `udp`")),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (ip, host, ctr) = match parts.as_slice() {
            [h, c] => (None, *h, *c),
            [i, h, c] => (Some(*i), *h, *c),
            [_] => return Err(bad("give the host port too: `-p HOST_PORT:CONTAINER_PORT`")),
            _ => return Err(bad("expected `[IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]`")),
        };
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(&format!("`{p}` is not a port number")))
        };
        Ok(Self {
            host_ip: match ip {
                None | Some("") | Some("0.0.0.0") => None,
                Some(i) => Some(
                    i.parse()
                        .map_err(|_| bad(&format!("`{i}` is not an IPv4 address")))?,
                ),
            },
            host_port: port(host)?,
            container_port: port(ctr)?,
            udp,
        })
    }

    fn pasta_arg(&self) -> String {
        match self.host_ip {
            Some(ip) => format!("{ip}/{}:{}", self.host_port, self.container_port),
            None => format!("{}:{}", self.host_port, self.container_port),
        }
    }
}

/// The pasta binary, if installed.
pub fn binary() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("pasta"))
                .find(|c| c.is_file())
        })
        .unwrap_or_default()
        .or_else(|| Some(PathBuf::from("/usr/bin/pasta")).filter(|p| p.is_file()))
}

fn command(
    pasta: &Path,
    netns: &Path,
    publish: &[Publish],
    pidfile: &Path,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(pasta);
    // pasta drops to `nobody` when started as root, which may not enter a namespace that
    // root owns: keep root, as podman does for rootful containers.
    cmd.args([
        "--config-net",
        "--quiet",
        "--ipv4-only",
        "--runas",
        "0:0",
        "--netns",
    ])
    .arg(netns)
    .arg("--pid")
    .arg(pidfile);
    // Nothing is forwarded unless published (pasta's default would forward every port).
    let (tcp, udp): (Vec<&Publish>, Vec<&Publish>) = publish.iter().partition(|p| !p.udp);
    for (flag, list) in [("-t", tcp), ("-u", udp)] {
        if list.is_empty() {
            cmd.args([flag, "none"]);
        }
        for p in list {
            cmd.args([flag, &p.pasta_arg()]);
        }
    }
    // The container cannot reach the host's loopback: no port of it is forwarded in,
    // and the gateway address is not mapped to it (pasta maps it by default).
    cmd.args(["-T", "none", "-U", "none", "--no-map-gw"]);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// A pasta connecting a network namespace: started with [`Pasta::start`], it sets the
/// namespace up while the caller goes on (creating the container); [`Pasta::ready`] waits
/// for it, right before the application starts. Dropped, it stops pasta, whether or not
/// it was waited for.
pub struct Pasta {
    bin: PathBuf,
    pidfile: PathBuf,
    child: Option<std::process::Child>,
    pid: Option<i32>,
}

impl Pasta {
    /// Starts pasta on the namespace at `netns`, forwarding `publish`; does not wait.
    pub fn start(pasta: &Path, netns: &Path, publish: &[Publish], pidfile: &Path) -> Result<Pasta> {
        let child = command(pasta, netns, publish, pidfile)
            .spawn()
            .map_err(RuntimeError::io(pasta))?;
        Ok(Pasta {
            bin: pasta.to_path_buf(),
            pidfile: pidfile.to_path_buf(),
            child: Some(child),
            pid: None,
        })
    }

    /// Waits until the namespace is configured (pasta's first process exits once it is,
    /// leaving its daemon); returns the daemon's pid.
    pub fn ready(&mut self) -> Result<i32> {
        if let Some(pid) = self.pid {
            return Ok(pid);
        }
        let child = self
            .child
            .take()
            .expect("a pasta not yet waited for has its child");
        let out = child
            .wait_with_output()
            .map_err(RuntimeError::io(&self.bin))?;
        // The daemon's pid, even on failure: it may have forked before failing.
        self.pid = std::fs::read_to_string(&self.pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        if !out.status.success() {
            return Err(RuntimeError::Io {
                path: self.bin.clone(),
                source: std::io::Error::other(format!(
                    "cannot set up the container network: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
            });
        }
        self.pid.ok_or_else(|| RuntimeError::Io {
            path: self.pidfile.clone(),
            source: std::io::Error::other("pasta wrote no pid"),
        })
    }
}

impl Drop for Pasta {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.ready();
        }
        if let Some(pid) = self.pid {
            stop(pid);
        }
    }
}

/// Ends a pasta daemon.
pub fn stop(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_port_specs() {
        let p = Publish::parse("8080:80").unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port, p.udp),
            (None, 8080, 80, false)
        );
        let p = Publish::parse("127.0.0.1:9000:9000/udp").unwrap();
        assert_eq!(p.host_ip, Some(std::net::Ipv4Addr::LOCALHOST));
        assert!(p.udp);
        assert_eq!(p.pasta_arg(), "127.0.0.1/9000:9000");
        for bad in [
            "80",
            "a:b",
            "0:80",
            "1:2:3:4",
            "80:80/sctp",
            "x.y:1:2",
            "70000:80",
        ] {
            assert!(Publish::parse(bad).is_err(), "{bad}");
        }
    }
}
