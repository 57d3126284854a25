//! Plans a fleet from a seed: addresses, personas, builds and names, without binding anything.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::builds::{BuildTable, Family};
use crate::names;
use crate::{TestbedConfig, TestbedError, TruthExchange, TruthHost};

/// Share (in percent) of live hosts that run Exchange.
const EXCHANGE_PERCENT: u32 = 75;
/// Share of Exchange hosts whose `X-OWA-Version` header survives any reverse proxy.
const OWA_HEADER_PROBABILITY: f64 = 0.8;
/// Share of 2013+ hosts that still serve the eDiscovery export tool manifest.
const EXPORTTOOL_PROBABILITY: f64 = 0.7;

/// Everything a host needs to answer requests; the truth is the part the scanner should find.
#[derive(Debug, Clone)]
pub(crate) struct HostPlan {
    pub(crate) truth: TruthHost,
    /// Organisation display name for the certificate subject.
    pub(crate) org_name: String,
    pub(crate) persona: Persona,
    /// Seeds this host's own random stream (request ids), so answers are reproducible.
    pub(crate) seed: u64,
}

/// What software a host pretends to be.
#[derive(Debug, Clone)]
pub(crate) enum Persona {
    Exchange(ExchangeSpec),
    IisDefault,
    Nginx,
    Apache,
}

/// The installation details an Exchange persona needs to render its responses.
#[derive(Debug, Clone)]
pub(crate) struct ExchangeSpec {
    pub(crate) family: Family,
    /// Installed build, 4-part, exactly as in the table.
    pub(crate) build: String,
    /// Product and release name, e.g. "Exchange Server 2016 CU23 Oct25SU".
    pub(crate) version_name: String,
    /// `a.b.c`, the CU folder of 2013+ logon pages.
    pub(crate) cu: String,
    /// NetBIOS name of the front end, sent as `X-FEServer` by 2013+.
    pub(crate) fe_server: String,
    pub(crate) owa_version_header: bool,
    pub(crate) exporttool_manifest: bool,
}

impl Persona {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Persona::Exchange(_) => "exchange",
            Persona::IisDefault => "iis-default",
            Persona::Nginx => "nginx",
            Persona::Apache => "apache",
        }
    }
}

/// Checks the config and lays out the fleet. Same config, same plan.
pub(crate) fn plan(config: &TestbedConfig) -> Result<Vec<HostPlan>, TestbedError> {
    let net = config.net.trunc();
    let loopback = Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).expect("8 is a valid prefix");
    if !loopback.contains(&net) {
        return Err(TestbedError::NetNotLoopback { net: config.net });
    }
    let table = BuildTable::load()?;

    let (first, available) = usable_range(net);
    if config.hosts > available {
        return Err(TestbedError::TooManyHosts {
            net,
            requested: config.hosts,
            available,
        });
    }

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    // Floyd-style sampling stays cheap even for a sparse fleet in a /8.
    let mut offsets = rand::seq::index::sample(&mut rng, available, config.hosts).into_vec();
    offsets.sort_unstable();

    let base = u32::from(net.network());
    let mut taken = HashSet::new();
    let mut hosts = Vec::with_capacity(config.hosts);
    for offset in offsets {
        let offset = u32::try_from(offset).expect("a /8 has fewer than 2^32 addresses");
        let ip = Ipv4Addr::from(base + first + offset);
        hosts.push(plan_host(ip, config.port, &table, &mut rng, &mut taken));
    }
    Ok(hosts)
}

fn plan_host(
    ip: Ipv4Addr,
    port: u16,
    table: &BuildTable,
    rng: &mut ChaCha8Rng,
    taken: &mut HashSet<String>,
) -> HostPlan {
    let org = names::organisation(rng, taken);
    let persona = if rng.gen_range(0..100) < EXCHANGE_PERCENT {
        Persona::Exchange(exchange_spec(table, rng))
    } else {
        match rng.gen_range(0..3) {
            0 => Persona::IisDefault,
            1 => Persona::Nginx,
            _ => Persona::Apache,
        }
    };
    let exchange = match &persona {
        Persona::Exchange(spec) => Some(TruthExchange {
            family: spec.family.label().to_owned(),
            build: spec.build.clone(),
            version_name: spec.version_name.clone(),
            owa_version_header: spec.owa_version_header,
            exporttool_manifest: spec.exporttool_manifest,
        }),
        _ => None,
    };
    HostPlan {
        truth: TruthHost {
            ip: IpAddr::V4(ip),
            port,
            scheme: "https".to_owned(),
            persona: persona.label().to_owned(),
            domain: org.domain,
            exchange,
        },
        org_name: org.name,
        persona,
        seed: rng.gen(),
    }
}

fn exchange_spec(table: &BuildTable, rng: &mut ChaCha8Rng) -> ExchangeSpec {
    let family = pick_family(rng);
    let row = table.pick(family, rng);
    let owa_version_header = rng.gen_bool(OWA_HEADER_PROBABILITY);
    // 2010 has no ECP export tool at all.
    let exporttool_manifest = family != Family::Ex2010 && rng.gen_bool(EXPORTTOOL_PROBABILITY);
    let tag = match family {
        Family::Ex2010 => "10",
        Family::Ex2013 => "13",
        Family::Ex2016 => "16",
        Family::Ex2019 => "19",
        Family::Se => "SE",
    };
    ExchangeSpec {
        family,
        build: row.build.clone(),
        version_name: format!("{} {}", row.product, row.version_name),
        cu: row.cu(),
        fe_server: names::netbios_name(rng, tag),
        owa_version_header,
        exporttool_manifest,
    }
}

fn pick_family(rng: &mut ChaCha8Rng) -> Family {
    let total: u32 = Family::ALL.iter().map(|f| f.weight()).sum();
    let mut roll = rng.gen_range(0..total);
    for family in Family::ALL {
        if roll < family.weight() {
            return family;
        }
        roll -= family.weight();
    }
    unreachable!("roll is below the sum of weights")
}

/// Offset of the first usable address and how many there are. Network and broadcast
/// addresses are skipped, except in /31 and /32 where every address is a host.
fn usable_range(net: Ipv4Net) -> (u32, usize) {
    let size: u64 = 1u64 << (32 - u32::from(net.prefix_len()));
    if net.prefix_len() >= 31 {
        (0, size as usize)
    } else {
        (1, (size - 2) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_range_skips_network_and_broadcast() {
        let net = |s: &str| s.parse::<Ipv4Net>().unwrap();
        assert_eq!(usable_range(net("127.0.0.0/24")), (1, 254));
        assert_eq!(usable_range(net("127.0.0.0/30")), (1, 2));
        assert_eq!(usable_range(net("127.0.0.0/31")), (0, 2));
        assert_eq!(usable_range(net("127.0.0.1/32")), (0, 1));
        assert_eq!(usable_range(net("127.0.0.0/8")), (1, 16_777_214));
    }

    #[test]
    fn addresses_avoid_network_and_broadcast_even_when_full() {
        let config = TestbedConfig {
            hosts: 254,
            net: "127.9.9.0/24".parse().unwrap(),
            ..TestbedConfig::default()
        };
        let hosts = plan(&config).unwrap();
        let ips: HashSet<IpAddr> = hosts.iter().map(|h| h.truth.ip).collect();
        assert_eq!(ips.len(), 254);
        assert!(!ips.contains(&IpAddr::V4(Ipv4Addr::new(127, 9, 9, 0))));
        assert!(!ips.contains(&IpAddr::V4(Ipv4Addr::new(127, 9, 9, 255))));
    }

    #[test]
    fn host_bits_in_the_net_are_ignored() {
        let config = TestbedConfig {
            hosts: 10,
            net: "127.9.9.77/24".parse().unwrap(),
            ..TestbedConfig::default()
        };
        let hosts = plan(&config).unwrap();
        assert!(hosts.iter().all(|h| match h.truth.ip {
            IpAddr::V4(ip) => ip.octets()[..3] == [127, 9, 9],
            IpAddr::V6(_) => false,
        }));
    }

    #[test]
    fn exchange_2010_never_serves_the_exporttool() {
        let config = TestbedConfig {
            hosts: 3000,
            net: "127.64.0.0/16".parse().unwrap(),
            ..TestbedConfig::default()
        };
        let plans = plan(&config).unwrap();
        let ex2010: Vec<&ExchangeSpec> = plans
            .iter()
            .filter_map(|p| match &p.persona {
                Persona::Exchange(spec) if spec.family == Family::Ex2010 => Some(spec),
                _ => None,
            })
            .collect();
        assert!(!ex2010.is_empty());
        assert!(ex2010.iter().all(|s| !s.exporttool_manifest));
    }
}
