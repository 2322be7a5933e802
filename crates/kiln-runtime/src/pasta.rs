//! User-mode networking for a container's private network namespace with `pasta` (from
//! Debian's passt package): outbound connectivity without root-owned bridges or iptables,
//! and published ports (`-p`) forwarded from the host.

use crate::error::{Result, RuntimeError};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// One published port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// Host address to listen on; all addresses when `None`.
    pub host_ip: Option<std::net::Ipv4Addr>,
    /// Port on the host that pasta listens on.
    pub host_port: u16,
    /// Port in the container's network namespace that connections are forwarded to.
    pub container_port: u16,
    /// Whether UDP is forwarded (`/udp`) rather than TCP, the default.
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

/// passt's AVX2 build beside `pasta`, when this CPU has AVX2: what pasta itself would
/// re-execute, minus one exec on the container's path.
fn avx2_build(pasta: &Path) -> Option<PathBuf> {
    #[cfg(target_arch = "x86_64")]
    {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return None;
        }
        let real = std::fs::canonicalize(pasta).ok()?;
        let avx2 = real.with_file_name(format!("{}.avx2", real.file_name()?.to_str()?));
        avx2.is_file().then_some(avx2)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = pasta;
        None
    }
}

fn command(
    pasta: &Path,
    netns: &Path,
    publish: &[Publish],
    pidfile: &Path,
    tap: Option<&OwnedFd>,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(avx2_build(pasta).unwrap_or_else(|| pasta.into()));
    // The name tells passt to act as pasta.
    std::os::unix::process::CommandExt::arg0(&mut cmd, "pasta");
    match tap {
        // The namespace's device, opened and configured by kiln (see `crate::tap`).
        // Inherited under its own number (see `crate::tap::inheritable`).
        Some(fd) => {
            cmd.args(["--fd", &fd.as_raw_fd().to_string()]);
        }
        None => {
            cmd.arg("--config-net");
        }
    }
    // pasta drops to `nobody` when started as root, which may not enter a namespace that
    // root owns: keep root, as podman does for rootful containers.
    cmd.args(["--quiet", "--ipv4-only", "--runas", "0:0", "--netns"])
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
    // With nothing published, readiness is the namespace's default route (see
    // `Pasta::ready`): pasta stays in the foreground, the process kiln started and stops.
    if publish.is_empty() {
        cmd.arg("--foreground");
    }
    // Started on demand, pasta is not waited for: what it says (with `--quiet`, only why
    // it fails) goes to kiln's standard error, where the user sees that the container has
    // no network and why. Otherwise kiln reads it and reports it in its own error.
    let stderr = match tap {
        Some(_) => std::process::Stdio::inherit(),
        None => std::process::Stdio::piped(),
    };
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr);
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
    /// Route events of the namespace, when nothing is published (see [`Pasta::ready`]).
    routes: Option<RouteWatch>,
    /// pasta runs in the foreground (nothing published): the child is pasta itself.
    foreground: bool,
    /// kiln made and configured the namespace's device: pasta starts on its first
    /// packet (see [`Pasta::start`]).
    on_demand: Option<OnDemand>,
}

/// A thread that starts pasta when the namespace's device has a packet to read.
struct OnDemand {
    /// Closed to stop the thread (its end of the pipe then reads as hung up).
    stop: Option<OwnedFd>,
    /// Ends with the pasta it started, if any.
    watcher: std::thread::JoinHandle<std::io::Result<Option<std::process::Child>>>,
}

impl OnDemand {
    fn start(tap: OwnedFd, mut cmd: std::process::Command) -> Result<OnDemand> {
        let (stop_r, stop_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| RuntimeError::io("pipe")(e.into()))?;
        let watcher = quiet_thread("pasta-on-demand", move || {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            use std::os::fd::AsFd;
            loop {
                let mut fds = [
                    PollFd::new(tap.as_fd(), PollFlags::POLLIN),
                    PollFd::new(stop_r.as_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                    Ok(_) => {}
                }
                if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                    return Ok(None);
                }
                if fds[0].revents().is_some_and(|r| !r.is_empty()) {
                    // pasta holds the device from now on; it goes when pasta does.
                    return crate::tap::inheritable(&tap, || cmd.spawn()).map(Some);
                }
            }
        })
        .map_err(RuntimeError::io("thread"))?;
        Ok(OnDemand {
            stop: Some(stop_w),
            watcher,
        })
    }

    /// Stops the thread; the pasta it started, if it did.
    fn finish(mut self) -> Option<std::process::Child> {
        drop(self.stop.take());
        self.watcher.join().ok().and_then(|r| r.ok()).flatten()
    }
}

/// Spawns a thread with every signal blocked, so that signals meant for the caller's
/// waiting loop (SIGCHLD of the container) never go to it.
fn quiet_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    let all = nix::sys::signal::SigSet::all();
    let old = all.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK);
    let t = std::thread::Builder::new().name(name.into()).spawn(f);
    if let Ok(old) = old {
        let _ = old.thread_set_mask();
    }
    t
}

impl Pasta {
    /// Starts pasta on the namespace at `netns`, forwarding `publish`; does not wait.
    pub fn start(pasta: &Path, netns: &Path, publish: &[Publish], pidfile: &Path) -> Result<Pasta> {
        // With nothing published, kiln configures the namespace itself when the host has
        // an IPv4 default route, and pasta is started when the namespace sends its first
        // packet, which waits in the device's queue meanwhile: the container never waits
        // for pasta, and one that sends nothing never starts it. With published ports
        // pasta's whole start is waited for anyway (below): the host side must listen;
        // on a host kiln cannot read, pasta configures the namespace.
        if publish.is_empty() {
            let tap = crate::tap::Template::of_host()
                .and_then(|t| crate::tap::open_configured(netns, &t).ok());
            if let Some(tap) = tap {
                let cmd = command(pasta, netns, publish, pidfile, Some(&tap));
                return Ok(Pasta {
                    bin: pasta.to_path_buf(),
                    pidfile: pidfile.to_path_buf(),
                    child: None,
                    pid: None,
                    routes: None,
                    foreground: true,
                    on_demand: Some(OnDemand::start(tap, cmd)?),
                });
            }
        }
        // Subscribed before pasta starts, so that no event is missed.
        let routes = match publish.is_empty() {
            true => Some(RouteWatch::open(netns)?),
            false => None,
        };
        let child = command(pasta, netns, publish, pidfile, None)
            .spawn()
            .map_err(RuntimeError::io(pasta))?;
        Ok(Pasta {
            bin: pasta.to_path_buf(),
            pidfile: pidfile.to_path_buf(),
            child: Some(child),
            pid: None,
            foreground: routes.is_some(),
            routes,
            on_demand: None,
        })
    }

    /// Waits until the container's network is usable.
    ///
    /// pasta opens the namespace's tap device, then configures the interface (link,
    /// address, and last the default route), then prepares socket pools, sandboxes
    /// itself and daemonizes; only then does its first process exit. Once the default
    /// route exists the tap is attached and configured: what the application sends from
    /// then on waits in the tap's queue until pasta's loop reads it, and nothing is lost.
    /// So with nothing published, the route event is enough, and pasta's own start-up
    /// goes on while the application starts. With published ports, the whole start-up is
    /// waited for: the host side listens before the application does.
    ///
    /// When kiln configured the namespace itself, the network is usable already.
    pub fn ready(&mut self) -> Result<()> {
        if self.on_demand.is_some() {
            return Ok(());
        }
        let Some(routes) = self.routes.take() else {
            return self.finished().map(|_| ());
        };
        let Some(child) = self.child.as_ref() else {
            return Ok(());
        };
        let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a child has a pid");
        let exited = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .map_err(|e| RuntimeError::io(&self.bin)(e.into()))?;
        loop {
            use std::os::fd::AsFd;
            let mut fds = [
                nix::poll::PollFd::new(routes.sock.as_fd(), nix::poll::PollFlags::POLLIN),
                nix::poll::PollFd::new(exited.as_fd(), nix::poll::PollFlags::POLLIN),
            ];
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(RuntimeError::io("poll")(e.into())),
                Ok(_) => {}
            }
            let readable = |f: &nix::poll::PollFd| f.revents().is_some_and(|r| !r.is_empty());
            if readable(&fds[1]) {
                // In the foreground pasta only exits when it fails: its status says why.
                return self.finished().and_then(|_| {
                    Err(RuntimeError::Io {
                        path: self.bin.clone(),
                        source: std::io::Error::other(
                            "cannot set up the container network: pasta exited",
                        ),
                    })
                });
            }
            if readable(&fds[0]) && routes.default_route_added()? {
                return Ok(());
            }
        }
    }

    /// Waits until pasta's first process has exited, once the namespace is configured
    /// and its daemon runs; returns the daemon's pid.
    fn finished(&mut self) -> Result<i32> {
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

/// A netlink socket inside a network namespace, subscribed to its IPv4 route events.
struct RouteWatch {
    sock: netlink_sys::Socket,
}

/// `RTMGRP_IPV4_ROUTE`: the multicast group of IPv4 route changes.
const RTMGRP_IPV4_ROUTE: u32 = 0x40;

impl RouteWatch {
    /// A socket made in the namespace at `netns` by a short-lived thread that enters it
    /// (a socket stays in the namespace it was made in; this process does not move).
    fn open(netns: &Path) -> Result<RouteWatch> {
        let ns = std::fs::File::open(netns).map_err(RuntimeError::io(netns))?;
        let made = std::thread::spawn(move || -> std::io::Result<netlink_sys::Socket> {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            let mut sock = netlink_sys::Socket::new(netlink_sys::constants::NETLINK_ROUTE)?;
            sock.bind(&netlink_sys::SocketAddr::new(0, RTMGRP_IPV4_ROUTE))?;
            Ok(sock)
        })
        .join()
        .map_err(|_| {
            RuntimeError::io(netns)(std::io::Error::other("the netlink thread panicked"))
        })?;
        Ok(RouteWatch {
            sock: made.map_err(RuntimeError::io(netns))?,
        })
    }

    /// Reads one datagram of events: whether it added an IPv4 default route.
    fn default_route_added(&self) -> Result<bool> {
        use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
        use netlink_packet_route::route::RouteMessage;
        use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
        let mut buf = vec![0u8; 1 << 16];
        let n = self
            .sock
            .recv(&mut &mut buf[..], libc::MSG_DONTWAIT)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            })
            .map_err(RuntimeError::io("netlink"))?;
        let mut at = 0;
        while at + 16 <= n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            if len < 16 || at + len > n {
                break;
            }
            if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[at..at + len])
            {
                if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(RouteMessage {
                    header,
                    ..
                })) = msg.payload
                {
                    if header.address_family == AddressFamily::Inet
                        && header.destination_prefix_length == 0
                    {
                        return Ok(true);
                    }
                }
            }
            // Messages are 4-byte aligned.
            at += (len + 3) & !3;
        }
        Ok(false)
    }
}

impl Drop for Pasta {
    fn drop(&mut self) {
        if self.foreground {
            // The process started is pasta itself: stopped and reaped, whether or not it
            // had finished starting.
            // SIGKILL: a pasta still starting acts on SIGTERM only once it has started,
            // and it keeps no state the kernel does not free (the namespace is kiln's).
            // Its exit takes tens of milliseconds (it frees large socket buffers): reaped
            // by a thread of its own instead of in the container's path.
            // Started on demand: the watcher stops, and hands over the pasta it started.
            let child = match self.on_demand.take() {
                Some(d) => d.finish(),
                None => self.child.take(),
            };
            if let Some(mut child) = child {
                let _ = child.kill();
                let _ = quiet_thread("pasta-reaper", move || {
                    let _ = child.wait();
                });
            }
            return;
        }
        if self.child.is_some() {
            let _ = self.finished();
        }
        if let Some(pid) = self.pid {
            stop(pid);
        }
    }
}

/// Whether process `pid` is a pasta kiln started for the namespace at `netns` (its
/// command line says so): a pid file outliving its process must not make kiln signal
/// whatever process reuses the number.
pub fn is_ours(pid: i32, netns: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let netns = netns.as_os_str().as_encoded_bytes();
    args.first() == Some(&&b"pasta"[..])
        && args.windows(2).any(|w| w[0] == b"--netns" && w[1] == netns)
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
    fn only_our_pasta_is_ours() {
        use std::os::unix::process::CommandExt;
        let ns = Path::new("/tmp/kiln-test/containers/abc/netns");
        let spawn = |arg0: &str, netns: &str| {
            std::process::Command::new("/bin/sh")
                .arg0(arg0)
                .args(["-c", "sleep 5; :", "--netns", netns])
                .spawn()
                .unwrap()
        };
        // `spawn` returns once the exec is under way, but the new command line appears
        // in /proc only when the kernel has set up the new stack: wait for it, so each
        // check below sees the command line it is about.
        let exec_done = |c: &std::process::Child, arg0: &str| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let cmdline = std::fs::read(format!("/proc/{}/cmdline", c.id())).unwrap();
                if cmdline.split(|&b| b == 0).next() == Some(arg0.as_bytes()) {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "no exec of {arg0}");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        };
        let mut ours = spawn("pasta", "/tmp/kiln-test/containers/abc/netns");
        let mut other_ns = spawn("pasta", "/tmp/kiln-test/containers/abd/netns");
        let mut not_pasta = spawn("sh", "/tmp/kiln-test/containers/abc/netns");
        exec_done(&ours, "pasta");
        exec_done(&other_ns, "pasta");
        exec_done(&not_pasta, "sh");
        assert!(is_ours(ours.id() as i32, ns));
        assert!(!is_ours(other_ns.id() as i32, ns));
        assert!(!is_ours(not_pasta.id() as i32, ns));
        for c in [&mut ours, &mut other_ns, &mut not_pasta] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        // A pid no process has.
        assert!(!is_ours(i32::MAX, ns));
    }

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
