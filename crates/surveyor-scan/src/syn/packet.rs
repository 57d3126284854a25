//! The packets of SYN discovery: a SYN with a cookie for a sequence number, and the answers
//! (SYN-ACK, RST) read back. Headers and checksums come from etherparse.

use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;

use etherparse::{IpNumber, Ipv4Header, Ipv4HeaderSlice, TcpHeader, TcpHeaderSlice};

/// Source ports of our SYNs: above Linux's default ephemeral range (32768–60999), so that no
/// answer to a SYN of ours is taken for one of the kernel's own connections (the L7 probes)
/// and no answer to those is taken for ours.
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 61_000..=65_535;

const TTL: u8 = 64;
const WINDOW: u16 = 65_535;

/// A keyed cookie of a target: the SYN's sequence number and source port come from it, and an
/// answer is ours only if it acknowledges exactly that sequence number plus one. The key is
/// random per scan (`RandomState`), so nobody can forge an answer for a target we did not ask.
#[derive(Debug, Clone)]
pub struct Cookies {
    key: std::collections::hash_map::RandomState,
}

impl Default for Cookies {
    fn default() -> Cookies {
        Cookies {
            key: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl Cookies {
    fn hash(&self, ip: Ipv4Addr, port: u16) -> u64 {
        let mut h = self.key.build_hasher();
        h.write_u32(u32::from(ip));
        h.write_u16(port);
        h.finish()
    }

    /// The sequence number and source port of the SYN to (ip, port).
    pub fn of(&self, ip: Ipv4Addr, port: u16) -> (u32, u16) {
        let h = self.hash(ip, port);
        let span = u64::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
        let sport = SOURCE_PORTS.start() + (((h >> 32) % span) as u16);
        (h as u32, sport)
    }
}

/// Writes a SYN from `source` to (ip, port) into `buf` (cleared first) after `prefix` (a
/// link-layer header, or nothing): IPv4 header and TCP header, both checksums set.
pub fn syn(
    buf: &mut Vec<u8>,
    prefix: &[u8],
    cookies: &Cookies,
    source: Ipv4Addr,
    ip: Ipv4Addr,
    port: u16,
) -> std::io::Result<()> {
    let (seq, sport) = cookies.of(ip, port);
    let mut tcp = TcpHeader::new(sport, port, seq, WINDOW);
    tcp.syn = true;
    let mut ipv4 = Ipv4Header::new(
        tcp.header_len() as u16,
        TTL,
        IpNumber::TCP,
        source.octets(),
        ip.octets(),
    )
    .map_err(std::io::Error::other)?;
    ipv4.identification = seq as u16;
    ipv4.header_checksum = ipv4.calc_header_checksum();
    tcp.checksum = tcp
        .calc_checksum_ipv4(&ipv4, &[])
        .map_err(std::io::Error::other)?;
    buf.clear();
    buf.extend_from_slice(prefix);
    ipv4.write(buf)?;
    tcp.write(buf)?;
    Ok(())
}

/// What an answer says about the target that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// SYN-ACK: the port is open.
    Open(Ipv4Addr, u16),
    /// RST: the host is up, the port closed.
    Closed(Ipv4Addr, u16),
}

/// Reads an IPv4 packet received on a raw TCP socket; `Some` only for a SYN-ACK or RST that
/// answers one of our SYNs (its ports and acknowledgement match the target's cookie).
pub fn answer(packet: &[u8], cookies: &Cookies) -> Option<Answer> {
    let ip = Ipv4HeaderSlice::from_slice(packet).ok()?;
    if ip.protocol() != IpNumber::TCP {
        return None;
    }
    let tcp = TcpHeaderSlice::from_slice(packet.get(ip.slice().len()..)?).ok()?;
    if !SOURCE_PORTS.contains(&tcp.destination_port()) || !tcp.ack() {
        return None;
    }
    let (from, port) = (ip.source_addr(), tcp.source_port());
    let (seq, sport) = cookies.of(from, port);
    if tcp.destination_port() != sport || tcp.acknowledgment_number() != seq.wrapping_add(1) {
        return None;
    }
    match (tcp.syn(), tcp.rst()) {
        (true, false) => Some(Answer::Open(from, port)),
        (false, true) => Some(Answer::Closed(from, port)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;

    const US: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
    const THEM: Ipv4Addr = Ipv4Addr::new(127, 60, 1, 2);

    /// The packet a target's kernel sends back to a SYN.
    fn reply(cookies: &Cookies, syn: bool, rst: bool, ack_offset: u32, port: u16) -> Vec<u8> {
        let (seq, sport) = cookies.of(THEM, 443);
        let mut b = PacketBuilder::ipv4(THEM.octets(), US.octets(), 64)
            .tcp(port, sport, 777, 1024)
            .ack(seq.wrapping_add(ack_offset));
        if syn {
            b = b.syn();
        }
        if rst {
            b = b.rst();
        }
        let mut out = Vec::new();
        b.write(&mut out, &[]).unwrap();
        out
    }

    #[test]
    fn a_syn_carries_the_cookie_and_valid_checksums() {
        let cookies = Cookies::default();
        let mut buf = Vec::new();
        syn(&mut buf, &[], &cookies, US, THEM, 443).unwrap();
        let ip = Ipv4HeaderSlice::from_slice(&buf).unwrap();
        assert_eq!((ip.source_addr(), ip.destination_addr()), (US, THEM));
        assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());
        let tcp = TcpHeaderSlice::from_slice(&buf[20..]).unwrap();
        let (seq, sport) = cookies.of(THEM, 443);
        assert!(tcp.syn() && !tcp.ack() && !tcp.rst());
        assert_eq!(
            (
                tcp.source_port(),
                tcp.destination_port(),
                tcp.sequence_number()
            ),
            (sport, 443, seq)
        );
        assert!(SOURCE_PORTS.contains(&sport));
        let header = tcp.to_header();
        assert_eq!(
            tcp.checksum(),
            header
                .calc_checksum_ipv4_raw(US.octets(), THEM.octets(), &[])
                .unwrap()
        );
    }

    #[test]
    fn a_link_layer_header_goes_in_front_unchanged() {
        let cookies = Cookies::default();
        let (mut bare, mut framed) = (Vec::new(), Vec::new());
        syn(&mut bare, &[], &cookies, US, THEM, 443).unwrap();
        syn(&mut framed, &[9; 14], &cookies, US, THEM, 443).unwrap();
        assert_eq!(&framed[..14], &[9; 14]);
        assert_eq!(&framed[14..], &bare[..]);
    }

    #[test]
    fn only_answers_to_our_cookie_count() {
        let cookies = Cookies::default();
        assert_eq!(
            answer(&reply(&cookies, true, false, 1, 443), &cookies),
            Some(Answer::Open(THEM, 443))
        );
        assert_eq!(
            answer(&reply(&cookies, false, true, 1, 443), &cookies),
            Some(Answer::Closed(THEM, 443))
        );
        // A wrong acknowledgement, another key, another port, a bare SYN: not ours.
        assert_eq!(
            answer(&reply(&cookies, true, false, 2, 443), &cookies),
            None
        );
        assert_eq!(
            answer(&reply(&cookies, true, false, 1, 443), &Cookies::default()),
            None
        );
        assert_eq!(
            answer(&reply(&cookies, true, false, 1, 8443), &cookies),
            None
        );
        assert_eq!(answer(&[0x45, 0, 0], &cookies), None);
        assert_eq!(answer(&[], &cookies), None);
    }

    #[test]
    fn cookies_spread_over_the_source_ports() {
        let cookies = Cookies::default();
        let ports: std::collections::BTreeSet<u16> = (0..2_000u32)
            .map(|i| cookies.of(Ipv4Addr::from(0x7f00_0000 | i), 443).1)
            .collect();
        assert!(ports.len() > 1_000, "{}", ports.len());
        assert!(ports.iter().all(|p| SOURCE_PORTS.contains(p)));
    }
}
