//! Serves the fleet's DNS on loopback: one authoritative zone per organisation, reverse zones
//! for the fleet's net and the name server's own zone, over UDP and TCP (hickory-server).
//!
//! The zones are laid out as plain data first ([`zones`]), so what DNS says can be checked
//! without a server, then loaded into hickory's in-memory authorities. Names outside these
//! zones get REFUSED (the server is not a resolver); unknown names inside them NXDOMAIN.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hickory_server::proto::rr::rdata::{A, CNAME, MX, NS, PTR, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use hickory_server::Server;
use ipnet::Ipv4Net;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::server::IDLE_TIMEOUT;
use crate::{TestbedError, TruthHost};

/// The zone that holds the name server's own name; every zone's NS and SOA point there.
/// No organisation domain can take it: they are all `<kind>-<name>` or `<name>-<kind>`.
pub(crate) const NS_ZONE: &str = "testbed.example";
/// TTL of every record; short, because a fleet lives for one test run.
const TTL: u32 = 300;
/// Preference of the one MX record per organisation.
const MX_PREFERENCE: u16 = 10;
/// Responses queued per TCP connection, as in hickory's own tests.
const TCP_RESPONSE_BUFFER: usize = 32;
/// Fresh ports tried when port 0 was asked for and the UDP port is taken for TCP.
const BIND_ATTEMPTS: u32 = 8;

/// One zone as plain data: its origin (no trailing dot) and its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Zone {
    pub(crate) origin: String,
    pub(crate) records: Vec<(String, RecordData)>,
}

/// The record types the test-bed serves. Names carry no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordData {
    /// `ns.testbed.example`, `hostmaster.testbed.example`, serial 1.
    Soa,
    Ns(String),
    A(Ipv4Addr),
    Cname(String),
    Mx(u16, String),
    Ptr(String),
}

/// The name DNS gives a host: `mail.<domain>` for Exchange hosts (the name on their
/// certificate), `www.<domain>` for everything else.
pub(crate) fn hostname(exchange: bool, domain: &str) -> String {
    if exchange {
        format!("mail.{domain}")
    } else {
        format!("www.{domain}")
    }
}

/// Lays out every zone for the fleet: the name server's zone (with `ns.testbed.example` at
/// `ns_ip`), one forward zone per organisation in order of first appearance, and reverse
/// zones covering `net` on octet boundaries (only those that hold a live host).
pub(crate) fn zones<'a>(
    truth: impl Iterator<Item = &'a TruthHost> + Clone,
    net: Ipv4Net,
    ns_ip: Ipv4Addr,
) -> Vec<Zone> {
    let ns_name = format!("ns.{NS_ZONE}");
    let mut zones = vec![Zone {
        origin: NS_ZONE.to_owned(),
        records: vec![
            (NS_ZONE.to_owned(), RecordData::Soa),
            (NS_ZONE.to_owned(), RecordData::Ns(ns_name.clone())),
            (ns_name.clone(), RecordData::A(ns_ip)),
        ],
    }];

    // Organisations in order of first appearance, each with its hosts.
    let mut order: Vec<&str> = Vec::new();
    let mut by_domain: BTreeMap<&str, Vec<&TruthHost>> = BTreeMap::new();
    for host in truth.clone() {
        let hosts = by_domain.entry(host.domain.as_str()).or_default();
        if hosts.is_empty() {
            order.push(host.domain.as_str());
        }
        hosts.push(host);
    }
    for domain in order {
        let mut records = vec![
            (domain.to_owned(), RecordData::Soa),
            (domain.to_owned(), RecordData::Ns(ns_name.clone())),
        ];
        let mut has_mail = false;
        for host in &by_domain[domain] {
            let IpAddr::V4(ip) = host.ip else { continue };
            let name = host_name(host);
            has_mail |= name == format!("mail.{domain}");
            records.push((name, RecordData::A(ip)));
        }
        if has_mail {
            let mail = format!("mail.{domain}");
            records.push((
                domain.to_owned(),
                RecordData::Mx(MX_PREFERENCE, mail.clone()),
            ));
            records.push((format!("autodiscover.{domain}"), RecordData::Cname(mail)));
        }
        zones.push(Zone {
            origin: domain.to_owned(),
            records,
        });
    }

    // Reverse zones on the octet boundary at or below the net's prefix: a /16 is one zone,
    // a /22 is up to four /24 zones. A net longer than /24 still gets its whole /24.
    let prefix = (u32::from(net.prefix_len()).div_ceil(8) * 8).clamp(8, 24);
    let mut reverse: BTreeMap<Ipv4Addr, Vec<(String, RecordData)>> = BTreeMap::new();
    for host in truth {
        let IpAddr::V4(ip) = host.ip else { continue };
        let mask = u32::MAX << (32 - prefix);
        let network = Ipv4Addr::from(u32::from(ip) & mask);
        reverse
            .entry(network)
            .or_default()
            .push((reverse_name(ip), RecordData::Ptr(host_name(host))));
    }
    for (network, ptrs) in reverse {
        let octets = network.octets();
        let labels: Vec<String> = octets[..(prefix / 8) as usize]
            .iter()
            .rev()
            .map(u8::to_string)
            .collect();
        let origin = format!("{}.in-addr.arpa", labels.join("."));
        let mut records = vec![
            (origin.clone(), RecordData::Soa),
            (origin.clone(), RecordData::Ns(ns_name.clone())),
        ];
        records.extend(ptrs);
        zones.push(Zone { origin, records });
    }
    zones
}

/// `d.c.b.a.in-addr.arpa` for `a.b.c.d`.
pub(crate) fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

/// Loads the zones into a hickory catalog.
pub(crate) fn catalog(zones: &[Zone]) -> Result<Catalog, TestbedError> {
    let mut catalog = Catalog::new();
    for zone in zones {
        let origin = name(&zone.origin)?;
        let mut handler: InMemoryZoneHandler =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        for (owner, data) in &zone.records {
            let record = Record::from_rdata(name(owner)?, TTL, rdata(data)?);
            if !handler.upsert_mut(record, 1) {
                return Err(TestbedError::Dns {
                    reason: format!("zone {} refused {owner} {data:?}", zone.origin),
                });
            }
        }
        let handler: Arc<dyn ZoneHandler> = Arc::new(handler);
        catalog.upsert(LowerName::new(&origin), vec![handler]);
    }
    Ok(catalog)
}

/// Binds UDP and TCP on the same port of `ip`. With `port == 0` a free UDP port is picked
/// and TCP follows; if TCP has that port taken, both are released and another is tried.
pub(crate) async fn bind(
    ip: Ipv4Addr,
    port: u16,
) -> Result<(u16, UdpSocket, TcpListener), TestbedError> {
    let attempts = if port == 0 { BIND_ATTEMPTS } else { 1 };
    for attempt in 1..=attempts {
        let addr = SocketAddr::new(IpAddr::V4(ip), port);
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| TestbedError::Bind { addr, source })?;
        let addr = udp
            .local_addr()
            .map_err(|source| TestbedError::Bind { addr, source })?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((addr.port(), udp, tcp)),
            Err(source) if port == 0 && source.kind() == io::ErrorKind::AddrInUse => {
                debug!(
                    port = addr.port(),
                    attempt, "DNS port taken for TCP, trying another"
                );
            }
            Err(source) => return Err(TestbedError::Bind { addr, source }),
        }
    }
    Err(TestbedError::NoCommonPort {
        attempts: BIND_ATTEMPTS,
    })
}

/// Serves `catalog` on the bound sockets until `cancel` fires; the task that owns the server
/// belongs to `tracker`, so a shutdown waits for it.
pub(crate) fn serve(
    catalog: Catalog,
    udp: UdpSocket,
    tcp: TcpListener,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) {
    let mut server = Server::new(catalog);
    server.register_socket(udp);
    server.register_listener(tcp, IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    tracker.spawn(async move {
        cancel.cancelled().await;
        if let Err(error) = server.shutdown_gracefully().await {
            debug!(%error, "DNS server stopped with an error");
        }
    });
}

/// The name a host has in DNS: the truth's, or the one [`hostname`] would give it.
fn host_name(host: &TruthHost) -> String {
    host.hostname
        .clone()
        .unwrap_or_else(|| hostname(host.exchange.is_some(), &host.domain))
}

fn name(text: &str) -> Result<Name, TestbedError> {
    Name::from_ascii(format!("{text}.")).map_err(|error| TestbedError::Dns {
        reason: format!("invalid DNS name {text}: {error}"),
    })
}

fn rdata(data: &RecordData) -> Result<RData, TestbedError> {
    Ok(match data {
        RecordData::Soa => RData::SOA(SOA::new(
            name(&format!("ns.{NS_ZONE}"))?,
            name(&format!("hostmaster.{NS_ZONE}"))?,
            1,
            3600,
            600,
            86_400,
            TTL,
        )),
        RecordData::Ns(target) => RData::NS(NS(name(target)?)),
        RecordData::A(ip) => RData::A(A(*ip)),
        RecordData::Cname(target) => RData::CNAME(CNAME(name(target)?)),
        RecordData::Mx(preference, target) => RData::MX(MX::new(*preference, name(target)?)),
        RecordData::Ptr(target) => RData::PTR(PTR(name(target)?)),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{try_generate_with, FleetOptions, TestbedConfig};

    fn fleet(net: &str, hosts: usize) -> (Vec<TruthHost>, Ipv4Net) {
        let config = TestbedConfig {
            hosts,
            seed: 5,
            net: net.parse().unwrap(),
            port: 0,
        };
        let options = FleetOptions {
            dns_port: Some(0),
            ..FleetOptions::default()
        };
        (try_generate_with(&config, &options).unwrap(), config.net)
    }

    #[test]
    fn reverse_zones_follow_octet_boundaries() {
        let origins = |net: &str| -> BTreeSet<String> {
            let (truth, net) = fleet(net, 40);
            zones(truth.iter(), net, Ipv4Addr::LOCALHOST)
                .into_iter()
                .map(|z| z.origin)
                .filter(|o| o.ends_with(".in-addr.arpa"))
                .collect()
        };
        assert_eq!(
            origins("127.40.0.0/16"),
            BTreeSet::from(["40.127.in-addr.arpa".to_owned()])
        );
        assert_eq!(
            origins("127.41.8.0/22"),
            (8..12)
                .map(|c| format!("{c}.41.127.in-addr.arpa"))
                .collect::<BTreeSet<_>>()
        );
        assert_eq!(
            origins("127.42.7.64/26"),
            BTreeSet::from(["7.42.127.in-addr.arpa".to_owned()])
        );
        assert_eq!(
            origins("127.0.0.0/8"),
            BTreeSet::from(["127.in-addr.arpa".to_owned()])
        );
    }

    #[test]
    fn every_host_has_forward_and_reverse_records_that_agree() {
        let (truth, net) = fleet("127.43.0.0/20", 300);
        let zones = zones(truth.iter(), net, Ipv4Addr::new(127, 43, 255, 1));
        let records: Vec<&(String, RecordData)> =
            zones.iter().flat_map(|z| z.records.iter()).collect();
        for host in &truth {
            let IpAddr::V4(ip) = host.ip else {
                panic!("IPv6 host {host:?}")
            };
            let name = host.hostname.clone().unwrap();
            assert!(records.contains(&&(name.clone(), RecordData::A(ip))));
            assert!(records.contains(&&(reverse_name(ip), RecordData::Ptr(name))));
        }
        // Every zone has exactly one SOA, at its origin, and is loadable.
        for zone in &zones {
            let soas: Vec<&String> = zone
                .records
                .iter()
                .filter(|(_, d)| *d == RecordData::Soa)
                .map(|(n, _)| n)
                .collect();
            assert_eq!(soas, [&zone.origin]);
        }
        catalog(&zones).unwrap();
    }
}
