//! The organisations registry: which organisation owns which addresses, and whom to tell.
//!
//! CERTs route notifications through such a registry; the test-bed writes one that fits its
//! fleet so notification code can be tested against ground truth.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

use crate::TruthHost;

/// Writes one CSV row per organisation, in the order organisations first appear in
/// `truth`, with the header `organisation,sector,cidr,domain,abuse_contact,language`.
///
/// `cidr` is the smallest prefix covering all of the organisation's hosts if that prefix
/// holds no other organisation's host, else the hosts' /32s separated by spaces.
pub fn write_registry(truth: &[TruthHost], w: impl Write) -> std::io::Result<()> {
    let all: BTreeSet<Ipv4Addr> = truth.iter().filter_map(|h| v4(h.ip)).collect();
    let mut order: Vec<&str> = Vec::new();
    let mut members: HashMap<&str, Vec<&TruthHost>> = HashMap::new();
    for host in truth {
        let hosts = members.entry(host.domain.as_str()).or_default();
        if hosts.is_empty() {
            order.push(&host.domain);
        }
        hosts.push(host);
    }

    let mut out = csv::Writer::from_writer(w);
    out.write_record([
        "organisation",
        "sector",
        "cidr",
        "domain",
        "abuse_contact",
        "language",
    ])?;
    for domain in order {
        let hosts = &members[domain];
        let ips: Vec<Ipv4Addr> = hosts.iter().filter_map(|h| v4(h.ip)).collect();
        let first = hosts[0];
        out.write_record([
            first.organisation.as_str(),
            first.sector.as_str(),
            &cidr(&ips, &all),
            domain,
            &format!("abuse@{domain}"),
            first.language.as_str(),
        ])?;
    }
    out.flush()
}

fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(_) => None,
    }
}

/// The registry's address field for `ips`, given every live address of the fleet.
fn cidr(ips: &[Ipv4Addr], all: &BTreeSet<Ipv4Addr>) -> String {
    let (Some(low), Some(high)) = (ips.iter().min(), ips.iter().max()) else {
        return String::new();
    };
    let common = (u32::from(*low) ^ u32::from(*high)).leading_zeros() as u8;
    let net = Ipv4Net::new(*low, common)
        .expect("leading_zeros of a u32 is at most 32")
        .trunc();
    let inside = all.range(net.network()..=net.broadcast()).count();
    if inside == ips.len() {
        net.to_string()
    } else {
        let mut sorted = ips.to_vec();
        sorted.sort_unstable();
        sorted
            .iter()
            .map(|ip| format!("{ip}/32"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ips: &[[u8; 4]]) -> BTreeSet<Ipv4Addr> {
        ips.iter().map(|o| Ipv4Addr::from(*o)).collect()
    }

    fn check(org: &[[u8; 4]], fleet: &[[u8; 4]], expected: &str) {
        let ips: Vec<Ipv4Addr> = org.iter().map(|o| Ipv4Addr::from(*o)).collect();
        assert_eq!(cidr(&ips, &set(fleet)), expected);
    }

    #[test]
    fn cidr_covers_or_lists() {
        check(
            &[[127, 0, 0, 5]],
            &[[127, 0, 0, 5], [127, 0, 0, 6]],
            "127.0.0.5/32",
        );
        check(
            &[[127, 0, 0, 4], [127, 0, 0, 7]],
            &[[127, 0, 0, 4], [127, 0, 0, 7], [127, 0, 0, 9]],
            "127.0.0.4/30",
        );
        check(
            &[[127, 0, 0, 4], [127, 0, 0, 7]],
            &[[127, 0, 0, 4], [127, 0, 0, 5], [127, 0, 0, 7]],
            "127.0.0.4/32 127.0.0.7/32",
        );
    }
}
