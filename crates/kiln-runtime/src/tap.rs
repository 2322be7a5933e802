//! The container's network interface, made and configured by kiln so that the
//! application never waits for pasta.
//!
//! pasta normally opens the namespace's tap device and configures it itself
//! (`--config-net`): the container must wait for that, and pasta's own start (several
//! milliseconds of CPU, and as much again to exit) lies on the path of every `kiln run`.
//! Here kiln opens the tap device in the namespace and gives it the host's address and
//! default route (what pasta would copy). The device is handed to pasta (`--fd`) when
//! the namespace sends its first packet (`crate::pasta`): what the application sends
//! waits in the device's queue until pasta reads it, and a container that sends
//! nothing never starts pasta.
//!
//! Written by hand: a tap device and three netlink requests are all it takes, and no
//! crate does these in a foreign namespace without a daemon.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The namespace's interface name, as pasta names it.
pub const IFNAME: &str = "eth0";

/// pasta's MTU for the namespace's interface (its default, 65520).
const MTU: u32 = 65520;

/// The host's IPv4 configuration the namespace copies, as pasta would: the address of
/// the interface with the default route, its prefix length, and the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// The host interface carrying the default route (pasta's "template interface").
    pub iface: String,
    /// Its first IPv4 address, given to the namespace's interface.
    pub addr: Ipv4Addr,
    /// The prefix length of that address.
    pub prefix: u8,
    /// The default route's gateway.
    pub gateway: Ipv4Addr,
}

impl Template {
    /// The host's, or `None` when it has no IPv4 default route through a gateway or no
    /// IPv4 address on that interface (pasta is then left to configure the namespace).
    pub fn of_host() -> Option<Template> {
        let routes = std::fs::read_to_string("/proc/net/route").ok()?;
        let (iface, gateway) = default_route(&routes)?;
        let (addr, prefix) = nix::ifaddrs::getifaddrs().ok()?.find_map(|a| {
            if a.interface_name != iface {
                return None;
            }
            let ip = a.address?.as_sockaddr_in()?.ip();
            let mask = a.netmask?.as_sockaddr_in()?.ip();
            Some((ip, u32::from(mask).leading_ones() as u8))
        })?;
        Some(Template {
            iface,
            addr,
            prefix,
            gateway,
        })
    }
}

/// The IPv4 default route with the lowest metric in `/proc/net/route`'s text: its
/// interface and gateway.
fn default_route(table: &str) -> Option<(String, Ipv4Addr)> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = |i: usize| u32::from_str_radix(f.get(i)?, 16).ok();
            let (dest, gw, flags, metric, mask) = (hex(1)?, hex(2)?, hex(3)?, f.get(6)?, hex(7)?);
            let metric: u32 = metric.parse().ok()?;
            // Addresses are printed as the native word whose bytes are the address.
            (dest == 0 && mask == 0 && flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY)
                .then(|| (metric, f[0].to_string(), Ipv4Addr::from(gw.to_ne_bytes())))
        })
        .min_by_key(|(metric, ..)| *metric)
        .map(|(_, iface, gw)| (iface, gw))
}

/// Opens a tap device named [`IFNAME`] in the network namespace at `netns` (with
/// `IFF_NO_PI`, non-blocking, as pasta reads it), brings it up with pasta's MTU, gives
/// it `t`'s address and a default route through `t`'s gateway. Returns the open device:
/// it exists as long as a descriptor of it is open.
pub fn open_configured(netns: &Path, t: &Template) -> io::Result<OwnedFd> {
    let ns = std::fs::File::open(netns)?;
    let t = t.clone();
    // A thread enters the namespace: the device and the netlink socket are made in the
    // namespace of the thread that makes them; this process does not move.
    std::thread::spawn(move || -> io::Result<OwnedFd> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let tap = open_tap()?;
        // IPv4 only, as pasta is run (`--ipv4-only`): without IPv6 the kernel sends
        // nothing on its own (no router solicitations, no duplicate address detection),
        // so the first packet on the device is the application's. A kernel without IPv6
        // has no such file.
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{IFNAME}/disable_ipv6"),
            b"1",
        );
        let index = nix::net::if_::if_nametoindex(IFNAME)?;
        let mut nl = Netlink::open()?;
        nl.link_up(index)?;
        nl.add_address(index, t.addr, t.prefix)?;
        nl.add_default_route(index, t.gateway)?;
        Ok(tap)
    })
    .join()
    .map_err(|_| io::Error::other("the network thread panicked"))?
}

fn open_tap() -> io::Result<OwnedFd> {
    let fd: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")?
        .into();
    // SAFETY: an ifreq is plain data; all zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in IFNAME.bytes().enumerate() {
        req.ifr_name[i] = b as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads an ifreq, which `req` is, on a descriptor we own.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // Persistent: closing the last descriptor then leaves the device to be removed with
    // its namespace, which the kernel does in the background. Removing it on close costs
    // a network-wide RCU wait (tens of milliseconds) on the container's path.
    // SAFETY: TUNSETPERSIST takes an integer argument.
    let _ = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) };
    Ok(fd)
}

/// A rtnetlink socket sending requests one at a time and waiting for each one's answer.
struct Netlink {
    sock: netlink_sys::Socket,
    seq: u32,
}

impl Netlink {
    fn open() -> io::Result<Netlink> {
        let mut sock = netlink_sys::Socket::new(netlink_sys::constants::NETLINK_ROUTE)?;
        sock.bind_auto()?;
        Ok(Netlink { sock, seq: 0 })
    }

    fn link_up(&mut self, index: u32) -> io::Result<()> {
        use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::Mtu(MTU));
        self.request(
            netlink_packet_route::RouteNetlinkMessage::SetLink(m),
            0,
            "bring the interface up",
        )
    }

    fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
        let mut m = AddressMessage::default();
        m.header.family = netlink_packet_route::AddressFamily::Inet;
        m.header.prefix_len = prefix;
        m.header.scope = AddressScope::Universe;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(addr.into()));
        m.attributes.push(AddressAttribute::Address(addr.into()));
        self.request(
            netlink_packet_route::RouteNetlinkMessage::NewAddress(m),
            netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL,
            "set the interface's address",
        )
    }

    fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> io::Result<()> {
        use netlink_packet_route::route::{
            RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol,
            RouteScope, RouteType,
        };
        let mut m = RouteMessage::default();
        m.header.address_family = netlink_packet_route::AddressFamily::Inet;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        // On-link: the gateway is reached through the interface even when the host's
        // prefix does not hold it (a /32 address, as some clouds give).
        m.header.flags = RouteFlags::Onlink;
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        m.attributes.push(RouteAttribute::Oif(index));
        self.request(
            netlink_packet_route::RouteNetlinkMessage::NewRoute(m),
            netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL,
            "add the default route",
        )
    }

    /// Sends `msg` with `flags` (plus REQUEST and ACK) and waits for its acknowledgement;
    /// an error answer becomes an error naming `what`.
    fn request(
        &mut self,
        msg: netlink_packet_route::RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> io::Result<()> {
        use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = netlink_packet_core::NLM_F_REQUEST | netlink_packet_core::NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut answer = vec![0u8; 8192];
        loop {
            let n = self.sock.recv(&mut &mut answer[..], 0)?;
            let reply = NetlinkMessage::<netlink_packet_route::RouteNetlinkMessage>::deserialize(
                &answer[..n],
            )
            .map_err(|e| io::Error::other(format!("cannot {what}: bad answer: {e}")))?;
            if reply.header.sequence_number != self.seq {
                continue;
            }
            return match reply.payload {
                NetlinkPayload::Error(e) => match e.code {
                    None => Ok(()),
                    Some(code) => Err(io::Error::new(
                        io::Error::from_raw_os_error(-code.get()).kind(),
                        format!(
                            "cannot {what}: {}",
                            io::Error::from_raw_os_error(-code.get())
                        ),
                    )),
                },
                _ => Ok(()),
            };
        }
    }
}

/// Runs `spawn` with `fd` inheritable (close-on-exec cleared), then sets the flag
/// again. A pre-exec hook would do it only in the child, but any hook makes the
/// standard library fork the whole process instead of spawning with `CLONE_VFORK`,
/// which costs about a millisecond on every container start. A process another thread
/// starts meanwhile may inherit the device too; it only keeps the device alive while it
/// runs, in a namespace nothing else uses.
pub(crate) fn inheritable<T>(fd: &OwnedFd, spawn: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))?;
    let out = spawn();
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_route_with_the_lowest_metric() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth1\t00000000\t0102A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            default_route(table),
            Some(("eth0".to_string(), Ipv4Addr::new(192, 0, 2, 1)))
        );
        // No gateway flag, or not a default route: none.
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
            eth0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\n\
            eth0\t000200C0\t010200C0\t0003\t0\t0\t0\t00FFFFFF\n";
        assert_eq!(default_route(table), None);
    }
}
