//! Where SYNs leave: as Ethernet frames on the interface that holds the source address
//! (AF_PACKET, ZMap's way), which spares the kernel a route look-up and the IP output path for
//! every packet; or, where no frame can be addressed (no Ethernet, next hop's MAC unknown,
//! targets on the local link), through the kernel's IP layer from a raw IP socket.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use pnet_datalink::{ChannelType, NetworkInterface};
use socket2::{Domain, SockAddr, Socket, Type};

/// How SYNs leave this host, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// Ethernet frames on this interface (AF_PACKET), to this next hop.
    Link { interface: String, next_hop: String },
    /// IP packets through the kernel's routing (a raw IP socket), and why.
    Ip { why: String },
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Link {
                interface,
                next_hop,
            } => write!(f, "link layer on {interface} via {next_hop}"),
            Path::Ip { why } => write!(f, "IP layer ({why})"),
        }
    }
}

/// The sending end of a sweep: writes one SYN at a time.
pub(super) enum Sender {
    Link {
        socket: Socket,
        /// The Ethernet header every frame starts with.
        header: [u8; 14],
    },
    Ip(Socket),
}

impl Sender {
    /// Opens the sender for SYNs from `source` towards `first` (the sweep's first prefix).
    pub(super) fn open(source: Ipv4Addr, first: Ipv4Addr) -> std::io::Result<(Sender, Path)> {
        match link_for(source, first) {
            Ok((interface, header, next_hop)) => {
                let name = interface.name.clone();
                let socket = frame_sender(&interface)?;
                Ok((
                    Sender::Link { socket, header },
                    Path::Link {
                        interface: name,
                        next_hop,
                    },
                ))
            }
            Err(why) => Ok((Sender::Ip(ip_sender()?), Path::Ip { why })),
        }
    }

    /// What goes in front of the IP packet.
    pub(super) fn prefix(&self) -> &[u8] {
        match self {
            Sender::Link { header, .. } => header,
            Sender::Ip(_) => &[],
        }
    }

    /// Sends one packet (`prefix()` then the IP packet) to `to`.
    pub(super) fn send(&mut self, packet: &[u8], to: Ipv4Addr) -> std::io::Result<()> {
        match self {
            Sender::Link { socket, .. } => socket.send(packet).map(drop),
            Sender::Ip(socket) => socket
                .send_to(packet, &SockAddr::from(SocketAddrV4::new(to, 0)))
                .map(drop),
        }
    }
}

/// Checks that this process may open raw sockets.
pub(super) fn ip_sender() -> std::io::Result<Socket> {
    // IPPROTO_RAW: we write the IP header ourselves (IP_HDRINCL is implied).
    Socket::new(Domain::IPV4, Type::RAW, Some(socket2::Protocol::from(255)))
}

/// A packet socket bound to the interface that receives nothing: protocol 0 registers no
/// receive hook, so the kernel copies none of the interface's traffic to it.
///
/// pnet_datalink binds it (a link-layer address is not safely built otherwise); we keep a
/// handle of our own to the same socket and send on it directly, since pnet's sender polls
/// before every packet, a tenth of the sender's time.
fn frame_sender(interface: &NetworkInterface) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::PACKET, Type::RAW, None)?;
    let ours = socket.try_clone()?;
    let config = pnet_datalink::Config {
        channel_type: ChannelType::Layer3(0),
        socket_fd: Some(std::os::fd::IntoRawFd::into_raw_fd(socket)),
        // Never change the interface's state.
        promiscuous: false,
        ..pnet_datalink::Config::default()
    };
    // Binding is all we need of the channel; dropping it closes only pnet's handle.
    drop(pnet_datalink::channel(interface, config)?);
    // pnet made the socket non-blocking; a full device queue should make us wait instead.
    ours.set_nonblocking(false)?;
    ours.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(ours)
}

/// The interface holding `source`, the Ethernet header towards `first`'s next hop and that
/// next hop's name; `Err` says why no frame can be addressed.
fn link_for(
    source: Ipv4Addr,
    first: Ipv4Addr,
) -> Result<(NetworkInterface, [u8; 14], String), String> {
    let interface = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.is_up() && i.ips.iter().any(|n| n.ip() == source))
        .ok_or_else(|| format!("no interface that is up holds {source}"))?;
    if interface.is_loopback() {
        // A frame put on loopback enters as if from outside, and the kernel drops packets
        // from and to 127/8 that come from outside unless told otherwise (a test
        // namespace's setting; benches/dark/netns.sh makes it).
        for knob in LOOPBACK_KNOBS {
            let path = format!("/proc/sys/net/ipv4/conf/{}/{knob}", interface.name);
            if !std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
                return Err(format!(
                    "{} drops injected frames unless net.ipv4.conf.{}.{knob} is 1",
                    interface.name, interface.name
                ));
            }
        }
        // Loopback frames carry an Ethernet header with both addresses zero.
        return Ok((interface, ethernet([0; 6], [0; 6]), "loopback".into()));
    }
    let own = interface
        .mac
        .map(|m| m.octets())
        .filter(|m| *m != [0; 6])
        .ok_or_else(|| format!("{} has no Ethernet address", interface.name))?;
    let routes = std::fs::read_to_string("/proc/net/route").map_err(|e| e.to_string())?;
    let gateway = gateway(&routes, &interface.name, first)
        .ok_or_else(|| format!("{first} is on the local link of {}", interface.name))?;
    let neighbours = std::fs::read_to_string("/proc/net/arp").map_err(|e| e.to_string())?;
    let mac = neighbour_mac(&neighbours, &interface.name, gateway)
        .ok_or_else(|| format!("the gateway {gateway}'s MAC is not in the ARP cache"))?;
    Ok((interface, ethernet(mac, own), format!("gateway {gateway}")))
}

/// What loopback needs to take frames from 127/8 to 127/8 as if they came from outside.
pub const LOOPBACK_KNOBS: [&str; 2] = ["accept_local", "route_localnet"];

fn ethernet(destination: [u8; 6], source: [u8; 6]) -> [u8; 14] {
    etherparse::Ethernet2Header {
        source,
        destination,
        ether_type: etherparse::EtherType::IPV4,
    }
    .to_bytes()
}

/// The gateway of the most specific route to `to` through `interface`, from
/// `/proc/net/route`; `None` if that route is on-link or there is none.
fn gateway(table: &str, interface: &str, to: Ipv4Addr) -> Option<Ipv4Addr> {
    // Addresses are hex of the address in host (little-endian) byte order.
    let addr = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::from_be);
    let target = u32::from(to);
    let mut best: Option<(u32, u32)> = None;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [iface, dest, gw, _flags, _, _, _, mask, ..] = f.as_slice() else {
            continue;
        };
        let (Some(dest), Some(gw), Some(mask)) = (addr(dest), addr(gw), addr(mask)) else {
            continue;
        };
        if *iface == interface
            && target & mask == dest
            && best.is_none_or(|(m, _)| mask.count_ones() > m.count_ones())
        {
            best = Some((mask, gw));
        }
    }
    best.map(|(_, gw)| gw)
        .filter(|gw| *gw != 0)
        .map(Ipv4Addr::from)
}

/// The MAC of `ip` on `interface` from `/proc/net/arp`, if the entry is complete.
fn neighbour_mac(table: &str, interface: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    const COMPLETE: u32 = 0x2;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, _hw_type, flags, mac, _mask, device] = f.as_slice() else {
            return None;
        };
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
        if *device != interface || addr.parse::<Ipv4Addr>().ok()? != ip || flags & COMPLETE == 0 {
            return None;
        }
        let octets: Vec<u8> = mac
            .split(':')
            .map(|o| u8::from_str_radix(o, 16))
            .collect::<Result<_, _>>()
            .ok()?;
        octets.try_into().ok().filter(|m| *m != [0; 6])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0102000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0002000A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth1\t000010AC\tFE01A8C0\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0
";

    #[test]
    fn the_gateway_is_that_of_the_most_specific_route() {
        let check = |iface: &str, to: [u8; 4], expected: Option<[u8; 4]>| {
            assert_eq!(
                gateway(ROUTES, iface, Ipv4Addr::from(to)),
                expected.map(Ipv4Addr::from),
                "{iface} {to:?}"
            );
        };
        // The default route: via 10.0.2.1.
        check("eth0", [198, 51, 100, 7], Some([10, 0, 2, 1]));
        // On the link of eth0: no gateway.
        check("eth0", [10, 0, 2, 99], None);
        // A more specific route via 192.168.1.254 beats none on eth1.
        check("eth1", [172, 16, 4, 4], Some([192, 168, 1, 254]));
        check("eth1", [192, 168, 3, 3], None);
        // No route through that interface.
        check("eth2", [198, 51, 100, 7], None);
        check("eth0", [1, 2, 3, 4], Some([10, 0, 2, 1]));
        assert_eq!(
            gateway("garbage\nnot a table", "eth0", Ipv4Addr::LOCALHOST),
            None
        );
    }

    const ARP: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
10.0.2.1         0x1         0x2         52:54:00:12:35:02     *        eth0
10.0.2.3         0x1         0x0         00:00:00:00:00:00     *        eth0
192.168.1.254    0x1         0x2         aa:bb:cc:dd:ee:0f     *        eth1
";

    #[test]
    fn only_complete_neighbour_entries_give_a_mac() {
        let check = |iface: &str, ip: [u8; 4], expected: Option<[u8; 6]>| {
            assert_eq!(
                neighbour_mac(ARP, iface, Ipv4Addr::from(ip)),
                expected,
                "{iface} {ip:?}"
            );
        };
        check("eth0", [10, 0, 2, 1], Some([0x52, 0x54, 0, 0x12, 0x35, 2]));
        check(
            "eth1",
            [192, 168, 1, 254],
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f]),
        );
        // Incomplete, on another interface, unknown.
        check("eth0", [10, 0, 2, 3], None);
        check("eth1", [10, 0, 2, 1], None);
        check("eth0", [10, 0, 2, 2], None);
    }

    #[test]
    fn frames_start_with_an_ipv4_ethernet_header() {
        let h = ethernet([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]);
        assert_eq!(&h[..6], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(&h[6..12], &[7, 8, 9, 10, 11, 12]);
        assert_eq!(&h[12..], &[0x08, 0x00]);
    }
}
