//! Longest-prefix-match benchmark: a registry of 1,000,000 random prefixes (IPv4 /8 to /32,
//! one in ten IPv6), the time to validate it and build the [`Attributor`], and 10,000,000
//! lookups. Prints `key=value` lines.
//!
//! `cargo run --release -j2 -p surveyor-attrib --example lpm`

use std::collections::HashSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use surveyor_attrib::{Attributor, Evidence, Registry};
use surveyor_model::{Organisation, Sector};

const PREFIXES: usize = 1_000_000;
const PER_ORGANISATION: usize = 100;
const LOOKUPS: usize = 10_000_000;
/// Distinct addresses looked up; the lookups cycle over them.
const ADDRESSES: usize = 1_000_000;

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(2555);
    let prefixes = random_prefixes(&mut rng);
    let v6 = prefixes
        .iter()
        .filter(|p| matches!(p, IpNet::V6(_)))
        .count();

    let organisations: Vec<Organisation> = prefixes
        .chunks(PER_ORGANISATION)
        .enumerate()
        .map(|(i, cidrs)| Organisation {
            id: format!("org-{i}"),
            name: format!("Organisation {i}"),
            sector: Sector::ALL[i % Sector::ALL.len()],
            subsector: None,
            country: Some("DE".to_owned()),
            naics: None,
            cidrs: cidrs.to_vec(),
            asns: Vec::new(),
            domains: vec![format!("org-{i}.example")],
            abuse_contact: None,
            language: None,
        })
        .collect();
    let count = organisations.len();

    let start = Instant::now();
    let registry = Registry::new(organisations).expect("generated registry is valid");
    let registry_ms = start.elapsed().as_secs_f64() * 1e3;

    let start = Instant::now();
    let attributor = Attributor::new(&registry);
    let build_ms = start.elapsed().as_secs_f64() * 1e3;

    // Half the addresses inside registry prefixes, half anywhere (mostly misses or short
    // prefixes), so both deep and shallow walks are timed.
    let addresses: Vec<IpAddr> = (0..ADDRESSES)
        .map(|i| {
            if i % 2 == 0 {
                inside(&prefixes[rng.gen_range(0..prefixes.len())], &mut rng)
            } else if i % 10 == 1 {
                IpAddr::V6(Ipv6Addr::from(rng.gen::<u128>()))
            } else {
                IpAddr::V4(Ipv4Addr::from(rng.gen::<u32>()))
            }
        })
        .collect();

    let start = Instant::now();
    let mut hits = 0usize;
    for ip in addresses.iter().cycle().take(LOOKUPS) {
        if black_box(attributor.longest_prefix(black_box(*ip))).is_some() {
            hits += 1;
        }
    }
    let lookup_s = start.elapsed().as_secs_f64();

    // The full rule set with an address alone (builds an Attribution with owned strings).
    let start = Instant::now();
    let mut attributed = 0usize;
    for ip in addresses.iter().take(ADDRESSES) {
        if black_box(attributor.attribute(&Evidence::from_ip(*ip))).is_some() {
            attributed += 1;
        }
    }
    let attribute_s = start.elapsed().as_secs_f64();

    println!("prefixes={}", attributor.prefixes());
    println!("prefixes_v4={}", prefixes.len() - v6);
    println!("prefixes_v6={v6}");
    println!("organisations={count}");
    println!("registry_validate_ms={registry_ms:.0}");
    println!("attributor_build_ms={build_ms:.0}");
    println!("lookups={LOOKUPS}");
    println!("lookup_hits={hits}");
    println!("lookup_total_ms={:.0}", lookup_s * 1e3);
    println!("lookups_per_sec={:.0}", LOOKUPS as f64 / lookup_s);
    println!("lookup_ns={:.0}", lookup_s * 1e9 / LOOKUPS as f64);
    println!("attribute_calls={ADDRESSES}");
    println!("attribute_hits={attributed}");
    println!("attributes_per_sec={:.0}", ADDRESSES as f64 / attribute_s);
}

/// Unique random prefixes: IPv4 /8 to /32 (uniform length), IPv6 /16 to /64 and /128 in
/// 2000::/3.
fn random_prefixes(rng: &mut ChaCha8Rng) -> Vec<IpNet> {
    let mut seen = HashSet::with_capacity(PREFIXES);
    let mut out = Vec::with_capacity(PREFIXES);
    while out.len() < PREFIXES {
        let net = if rng.gen_ratio(1, 10) {
            let len = if rng.gen_ratio(1, 8) {
                128
            } else {
                rng.gen_range(16..=64)
            };
            let addr = (rng.gen::<u128>() >> 3) | (1u128 << 125);
            IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from(addr), len)
                    .expect("length ≤ 128")
                    .trunc(),
            )
        } else {
            let len = rng.gen_range(8..=32);
            IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(rng.gen::<u32>()), len)
                    .expect("length ≤ 32")
                    .trunc(),
            )
        };
        if seen.insert(net) {
            out.push(net);
        }
    }
    out
}

/// A random address inside `net`.
fn inside(net: &IpNet, rng: &mut ChaCha8Rng) -> IpAddr {
    match net {
        IpNet::V4(net) => {
            let host = rng.gen::<u32>() & !u32::from(net.netmask());
            IpAddr::V4(Ipv4Addr::from(u32::from(net.network()) | host))
        }
        IpNet::V6(net) => {
            let host = rng.gen::<u128>() & !u128::from(net.netmask());
            IpAddr::V6(Ipv6Addr::from(u128::from(net.network()) | host))
        }
    }
}
