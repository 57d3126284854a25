//! Starts a fleet with DNS and queries it over UDP and TCP with a hand-written DNS client
//! (RFC 1035 wire format), so the check shares no code with hickory, which serves it.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use surveyor_testbed::{FleetOptions, Testbed, TestbedConfig, TruthHost};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(5);
const NET: &str = "127.204.0.0/22";
/// Outside the fleet's net on purpose: the server's address is configurable.
const DNS_IP: Ipv4Addr = Ipv4Addr::new(127, 204, 200, 53);

const TYPE_A: u16 = 1;
const TYPE_NS: u16 = 2;
const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;
const TYPE_PTR: u16 = 12;
const TYPE_MX: u16 = 15;
const TYPE_AAAA: u16 = 28;

const NOERROR: u8 = 0;
const NXDOMAIN: u8 = 3;
const REFUSED: u8 = 5;

/// One resource record as the test reads it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Data {
    A(Ipv4Addr),
    Name(String),
    Mx(u16, String),
    Other(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rr {
    name: String,
    rtype: u16,
    data: Data,
}

#[derive(Debug)]
struct Answer {
    authoritative: bool,
    rcode: u8,
    answers: Vec<Rr>,
    authority: Vec<Rr>,
}

impl Answer {
    fn data(&self, rtype: u16) -> BTreeSet<Data> {
        self.answers
            .iter()
            .filter(|rr| rr.rtype == rtype)
            .map(|rr| rr.data.clone())
            .collect()
    }
}

fn query_packet(id: u16, name: &str, rtype: u16) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend(id.to_be_bytes());
    p.extend([0x01, 0x00]); // RD set, like a stub resolver; an authority ignores it
    p.extend([0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        p.push(u8::try_from(label.len()).unwrap());
        p.extend(label.as_bytes());
    }
    p.push(0);
    p.extend(rtype.to_be_bytes());
    p.extend(1u16.to_be_bytes()); // IN
    p
}

/// Reads a possibly compressed name at `pos`; returns it (lower case, no trailing dot) and
/// the position after it.
fn read_name(msg: &[u8], mut pos: usize) -> (String, usize) {
    let mut labels = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = msg[pos] as usize;
        if len & 0xC0 == 0xC0 {
            let target = ((len & 0x3F) << 8) | msg[pos + 1] as usize;
            end.get_or_insert(pos + 2);
            pos = target;
            continue;
        }
        if len == 0 {
            end.get_or_insert(pos + 1);
            break;
        }
        labels.push(String::from_utf8(msg[pos + 1..pos + 1 + len].to_vec()).unwrap());
        pos += 1 + len;
    }
    (labels.join(".").to_ascii_lowercase(), end.unwrap())
}

fn u16_at(msg: &[u8], pos: usize) -> u16 {
    u16::from_be_bytes([msg[pos], msg[pos + 1]])
}

fn parse(msg: &[u8], id: u16) -> Answer {
    assert_eq!(u16_at(msg, 0), id, "response id");
    assert_ne!(msg[2] & 0x80, 0, "QR bit");
    let counts: Vec<usize> = (0..4).map(|i| u16_at(msg, 4 + 2 * i) as usize).collect();
    let mut pos = 12;
    for _ in 0..counts[0] {
        pos = read_name(msg, pos).1 + 4;
    }
    let mut sections = Vec::new();
    for &count in &counts[1..3] {
        let mut rrs = Vec::new();
        for _ in 0..count {
            let (name, after) = read_name(msg, pos);
            let rtype = u16_at(msg, after);
            let len = u16_at(msg, after + 8) as usize;
            let start = after + 10;
            let data = match rtype {
                TYPE_A => Data::A(Ipv4Addr::new(
                    msg[start],
                    msg[start + 1],
                    msg[start + 2],
                    msg[start + 3],
                )),
                TYPE_NS | TYPE_CNAME | TYPE_PTR => Data::Name(read_name(msg, start).0),
                TYPE_MX => Data::Mx(u16_at(msg, start), read_name(msg, start + 2).0),
                _ => Data::Other(msg[start..start + len].to_vec()),
            };
            rrs.push(Rr { name, rtype, data });
            pos = start + len;
        }
        sections.push(rrs);
    }
    let authority = sections.pop().unwrap();
    let answers = sections.pop().unwrap();
    Answer {
        authoritative: msg[2] & 0x04 != 0,
        rcode: msg[3] & 0x0F,
        answers,
        authority,
    }
}

async fn udp(server: SocketAddr, name: &str, rtype: u16) -> Answer {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let id = 0x5A5A ^ u16::try_from(name.len()).unwrap();
    socket
        .send_to(&query_packet(id, name, rtype), server)
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, from) = timeout(STEP, socket.recv_from(&mut buf))
        .await
        .expect("UDP answer in time")
        .unwrap();
    assert_eq!(from, server);
    parse(&buf[..n], id)
}

async fn tcp(server: SocketAddr, name: &str, rtype: u16) -> Answer {
    let mut stream = timeout(STEP, TcpStream::connect(server))
        .await
        .unwrap()
        .unwrap();
    let id = 0x1234;
    let packet = query_packet(id, name, rtype);
    let mut framed = u16::try_from(packet.len()).unwrap().to_be_bytes().to_vec();
    framed.extend(packet);
    stream.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    timeout(STEP, stream.read_exact(&mut len))
        .await
        .unwrap()
        .unwrap();
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    timeout(STEP, stream.read_exact(&mut msg))
        .await
        .unwrap()
        .unwrap();
    parse(&msg, id)
}

fn reverse(ip: IpAddr) -> String {
    let IpAddr::V4(ip) = ip else {
        panic!("the fleet is IPv4")
    };
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

fn v4(host: &TruthHost) -> Ipv4Addr {
    match host.ip {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => panic!("the fleet is IPv4"),
    }
}

async fn start() -> Testbed {
    Testbed::start_with(
        TestbedConfig {
            hosts: 60,
            seed: 31,
            net: NET.parse().unwrap(),
            port: 0,
        },
        FleetOptions {
            dns_port: Some(0),
            dns_ip: DNS_IP,
            hostile_share: 0.0,
            ..FleetOptions::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn forward_zones_answer_from_the_truth() {
    let bed = start().await;
    let server = bed.dns_addr().unwrap();
    assert_eq!(server.ip(), IpAddr::V4(DNS_IP));
    let truth = bed.truth();

    let domains: BTreeSet<&str> = truth.iter().map(|h| h.domain.as_str()).collect();
    let mut mail_domains = 0;
    let mut web_domains = 0;
    for domain in domains {
        let hosts: Vec<&TruthHost> = truth.iter().filter(|h| h.domain == domain).collect();
        let exchange: BTreeSet<Data> = hosts
            .iter()
            .filter(|h| h.exchange.is_some())
            .map(|h| Data::A(v4(h)))
            .collect();
        let others: BTreeSet<Data> = hosts
            .iter()
            .filter(|h| h.exchange.is_none())
            .map(|h| Data::A(v4(h)))
            .collect();

        let soa = udp(server, domain, TYPE_SOA).await;
        assert!(soa.authoritative, "{domain}");
        assert_eq!(soa.answers.len(), 1);
        let ns = udp(server, domain, TYPE_NS).await;
        assert_eq!(
            ns.data(TYPE_NS),
            BTreeSet::from([Data::Name("ns.testbed.example".into())])
        );

        let mail_name = format!("mail.{domain}");
        let mail = udp(server, &mail_name, TYPE_A).await;
        let mx = udp(server, domain, TYPE_MX).await;
        let autodiscover = udp(server, &format!("autodiscover.{domain}"), TYPE_A).await;
        if exchange.is_empty() {
            assert_eq!(mail.rcode, NXDOMAIN, "{domain}");
            assert!(mx.answers.is_empty(), "{domain}");
            assert_eq!(autodiscover.rcode, NXDOMAIN);
        } else {
            mail_domains += 1;
            assert!(mail.authoritative);
            assert_eq!(mail.rcode, NOERROR);
            assert_eq!(mail.data(TYPE_A), exchange, "{domain}");
            assert_eq!(
                mx.data(TYPE_MX),
                BTreeSet::from([Data::Mx(10, mail_name.clone())])
            );
            // The CNAME is followed inside the zone: the answer carries both.
            assert_eq!(
                autodiscover.data(TYPE_CNAME),
                BTreeSet::from([Data::Name(mail_name.clone())])
            );
            assert_eq!(autodiscover.data(TYPE_A), exchange);
            let cname = udp(server, &format!("autodiscover.{domain}"), TYPE_CNAME).await;
            assert_eq!(
                cname.data(TYPE_CNAME),
                BTreeSet::from([Data::Name(mail_name.clone())])
            );
            // No IPv6 in the fleet: the name exists, the type does not.
            let aaaa = udp(server, &mail_name, TYPE_AAAA).await;
            assert_eq!(aaaa.rcode, NOERROR);
            assert!(aaaa.answers.is_empty());
        }
        let www = udp(server, &format!("www.{domain}"), TYPE_A).await;
        if others.is_empty() {
            assert_eq!(www.rcode, NXDOMAIN, "{domain}");
        } else {
            web_domains += 1;
            assert_eq!(www.data(TYPE_A), others, "{domain}");
        }

        let unknown = udp(server, &format!("no-such-host.{domain}"), TYPE_A).await;
        assert_eq!(unknown.rcode, NXDOMAIN);
        assert!(unknown.authoritative);
        assert!(unknown.answers.is_empty());
        assert!(unknown.authority.iter().any(|rr| rr.rtype == TYPE_SOA));
    }
    assert!(
        mail_domains > 5 && web_domains > 2,
        "{mail_domains} {web_domains}"
    );

    // The same over TCP.
    let host = truth.iter().find(|h| h.exchange.is_some()).unwrap();
    let answer = tcp(server, &format!("mail.{}", host.domain), TYPE_A).await;
    assert!(answer.authoritative);
    assert!(answer.data(TYPE_A).contains(&Data::A(v4(host))));
    let answer = tcp(server, &format!("gibt-es-nicht.{}", host.domain), TYPE_A).await;
    assert_eq!(answer.rcode, NXDOMAIN);

    bed.shutdown().await;
}

#[tokio::test]
async fn reverse_zones_name_every_host_and_names_resolve_back() {
    let bed = start().await;
    let server = bed.dns_addr().unwrap();
    for host in bed.truth() {
        let name = host.hostname.clone().expect("DNS is on");
        let expected = if host.exchange.is_some() {
            "mail"
        } else {
            "www"
        };
        assert_eq!(name, format!("{expected}.{}", host.domain));

        let ptr = udp(server, &reverse(host.ip), TYPE_PTR).await;
        assert!(ptr.authoritative);
        assert_eq!(
            ptr.data(TYPE_PTR),
            BTreeSet::from([Data::Name(name.clone())])
        );
        let forward = udp(server, &name, TYPE_A).await;
        assert!(forward.data(TYPE_A).contains(&Data::A(v4(host))), "{name}");
    }
    let host = &bed.truth()[0];
    let ptr = tcp(server, &reverse(host.ip), TYPE_PTR).await;
    assert_eq!(
        ptr.data(TYPE_PTR),
        BTreeSet::from([Data::Name(host.hostname.clone().unwrap())])
    );

    // An empty address inside the fleet's net: the zone is ours, the name does not exist.
    let live: BTreeSet<Ipv4Addr> = bed.truth().iter().map(v4).collect();
    let empty = bed.net().hosts().find(|ip| !live.contains(ip)).unwrap();
    let answer = udp(server, &reverse(IpAddr::V4(empty)), TYPE_PTR).await;
    assert_eq!(answer.rcode, NXDOMAIN);
    assert!(answer.authoritative);
    bed.shutdown().await;
}

#[tokio::test]
async fn zones_outside_the_fleet_are_refused() {
    let bed = start().await;
    let server = bed.dns_addr().unwrap();
    for (name, rtype) in [
        ("outlook.office365.com", TYPE_A),
        ("example", TYPE_SOA),
        ("not-in-the-fleet.example", TYPE_MX),
        ("8.8.8.8.in-addr.arpa", TYPE_PTR),
        ("1.0.0.127.in-addr.arpa", TYPE_PTR),
    ] {
        for answer in [
            udp(server, name, rtype).await,
            tcp(server, name, rtype).await,
        ] {
            assert_eq!(answer.rcode, REFUSED, "{name}");
            assert!(!answer.authoritative, "{name}");
            assert!(answer.answers.is_empty(), "{name}");
        }
    }
    bed.shutdown().await;
}

#[tokio::test]
async fn dns_is_off_by_default() {
    let bed = Testbed::start(TestbedConfig {
        hosts: 3,
        seed: 31,
        net: "127.204.8.0/24".parse().unwrap(),
        port: 0,
    })
    .await
    .unwrap();
    assert_eq!(bed.dns_addr(), None);
    assert!(bed.truth().iter().all(|h| h.hostname.is_none()));
    bed.shutdown().await;
}
