//! The census: Exchange servers counted by family and support status.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::build::{Build, Family};
use crate::observation::Support;

/// One recognised Exchange server as the census counts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeServer {
    pub ip: IpAddr,
    pub port: u16,
    pub family: Family,
    /// As precise as the scan saw it (3 parts when only the CU was seen).
    pub build: Build,
    pub support: Support,
}

/// Keeps one server per address: the newest family seen wins (a host with 2016 on one port
/// and SE on another is being migrated, not two servers), then the lowest port.
fn by_address(
    servers: impl IntoIterator<Item = ExchangeServer>,
) -> BTreeMap<IpAddr, ExchangeServer> {
    let mut by_ip: BTreeMap<IpAddr, ExchangeServer> = BTreeMap::new();
    for s in servers {
        by_ip
            .entry(s.ip)
            .and_modify(|seen| {
                if s.family > seen.family || (s.family == seen.family && s.port < seen.port) {
                    *seen = s.clone();
                }
            })
            .or_insert(s);
    }
    by_ip
}

/// One row of the census table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CensusRow {
    pub family: Family,
    pub servers: u64,
    /// Fraction of all servers found, 0.0..=1.0.
    pub share: f64,
    pub supported: u64,
    pub unsupported: u64,
}

/// Exchange servers found, by family, with supported and unsupported counts and shares.
///
/// A server is an address: several ports of one address count once, so that a host answering
/// on 443 and 80 does not inflate the census.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Census {
    pub servers: u64,
    pub supported: u64,
    pub unsupported: u64,
    pub supported_share: f64,
    pub unsupported_share: f64,
    /// One row per family, oldest first, including families with no servers.
    pub families: Vec<CensusRow>,
}

impl Census {
    /// Counts servers. When one address shows up more than once, the newest family seen wins
    /// (a host with 2016 on one port and SE on another is being migrated, not two servers).
    pub fn from_servers(servers: impl IntoIterator<Item = ExchangeServer>) -> Census {
        Census::from_counts(
            by_address(servers)
                .into_values()
                .map(|s| (s.family, s.support, 1)),
        )
    }

    /// The census of servers already counted per family and support status (as the store's
    /// aggregates give them); several counts of one pair add up.
    pub fn from_counts(counts: impl IntoIterator<Item = (Family, Support, u64)>) -> Census {
        let mut by_family: BTreeMap<Family, (u64, u64)> = BTreeMap::new();
        for (family, support, n) in counts {
            let entry = by_family.entry(family).or_default();
            match support {
                Support::Supported => entry.0 += n,
                Support::Unsupported => entry.1 += n,
            }
        }
        let total: u64 = by_family.values().map(|(s, u)| s + u).sum();
        let share = |n: u64| {
            if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            }
        };
        let families = Family::ALL
            .into_iter()
            .map(|family| {
                let (supported, unsupported) = by_family.get(&family).copied().unwrap_or_default();
                let servers = supported + unsupported;
                CensusRow {
                    family,
                    servers,
                    share: share(servers),
                    supported,
                    unsupported,
                }
            })
            .collect::<Vec<_>>();
        let supported: u64 = families.iter().map(|r| r.supported).sum();
        Census {
            servers: total,
            supported,
            unsupported: total - supported,
            supported_share: share(supported),
            unsupported_share: share(total - supported),
            families,
        }
    }
}

/// One address seen in both scans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerChange {
    pub ip: IpAddr,
    pub before: ExchangeServer,
    pub after: ExchangeServer,
}

/// What changed between two scans, address by address (one server per address, as the
/// census counts). `upgraded` and `downgraded` compare builds; the support lists are a second,
/// independent view, so a server can be both upgraded and still unsupported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CensusDiff {
    /// Exchange in the later scan only.
    pub new: Vec<ExchangeServer>,
    /// Exchange in the earlier scan only (gone, or no longer recognisable).
    pub gone: Vec<ExchangeServer>,
    /// A newer family, or a higher build of the same family.
    pub upgraded: Vec<ServerChange>,
    /// An older family, or a lower build of the same family.
    pub downgraded: Vec<ServerChange>,
    /// Unsupported in both scans.
    pub still_unsupported: Vec<ServerChange>,
    pub newly_supported: Vec<ServerChange>,
    pub newly_unsupported: Vec<ServerChange>,
    /// In both scans with the same family and build.
    pub unchanged: u64,
}

impl CensusDiff {
    pub fn between(
        before: impl IntoIterator<Item = ExchangeServer>,
        after: impl IntoIterator<Item = ExchangeServer>,
    ) -> CensusDiff {
        let before = by_address(before);
        let mut after = by_address(after);
        let mut diff = CensusDiff::default();
        for (ip, old) in before {
            let Some(new) = after.remove(&ip) else {
                diff.gone.push(old);
                continue;
            };
            let change = ServerChange {
                ip,
                before: old.clone(),
                after: new.clone(),
            };
            match compare_builds(&old, &new) {
                Some(std::cmp::Ordering::Less) => diff.upgraded.push(change.clone()),
                Some(std::cmp::Ordering::Greater) => diff.downgraded.push(change.clone()),
                _ => diff.unchanged += 1,
            }
            match (old.support, new.support) {
                (Support::Unsupported, Support::Unsupported) => diff.still_unsupported.push(change),
                (Support::Unsupported, Support::Supported) => diff.newly_supported.push(change),
                (Support::Supported, Support::Unsupported) => diff.newly_unsupported.push(change),
                _ => {}
            }
        }
        diff.new = after.into_values().collect();
        diff
    }
}

/// Orders two sightings of one server; `None` when the builds cannot be told apart (the same
/// CU seen once exactly and once only to the CU).
fn compare_builds(old: &ExchangeServer, new: &ExchangeServer) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    if old.family != new.family {
        return Some(old.family.cmp(&new.family));
    }
    match old.build.cu().cmp(&new.build.cu()) {
        Ordering::Equal => match (old.build.revision, new.build.revision) {
            (Some(a), Some(b)) if a != b => Some(a.cmp(&b)),
            _ => None,
        },
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(ip: &str, family: Family, support: Support) -> ExchangeServer {
        let build = match family {
            Family::Se => "15.2.2562.17",
            Family::E2019 => "15.2.1748.10",
            _ => "15.1.2507.6",
        };
        at(ip, family, build, support)
    }

    fn at(ip: &str, family: Family, build: &str, support: Support) -> ExchangeServer {
        ExchangeServer {
            ip: ip.parse().unwrap(),
            port: 443,
            family,
            build: build.parse().unwrap(),
            support,
        }
    }

    #[test]
    fn a_diff_sorts_every_address_into_its_change() {
        use Support::{Supported, Unsupported};
        let before = [
            at("192.0.2.1", Family::E2016, "15.1.2507.6", Unsupported),
            at("192.0.2.2", Family::E2019, "15.2.1544.4", Unsupported),
            at("192.0.2.3", Family::E2019, "15.2.1748.10", Unsupported),
            at("192.0.2.4", Family::Se, "15.2.2562.17", Supported),
            at("192.0.2.5", Family::E2016, "15.1.2507", Unsupported),
            at("192.0.2.6", Family::Se, "15.2.2562.20", Supported),
        ];
        let after = [
            // .1 gone; .2 patched within 2019; .3 migrated to SE; .4 fell out of support.
            at("192.0.2.2", Family::E2019, "15.2.1544.9", Unsupported),
            at("192.0.2.3", Family::Se, "15.2.2562.17", Supported),
            at("192.0.2.4", Family::Se, "15.2.2562.17", Unsupported),
            // .5 now seen exactly: the same CU, not an upgrade. .6 rolled back.
            at("192.0.2.5", Family::E2016, "15.1.2507.6", Unsupported),
            at("192.0.2.6", Family::Se, "15.2.2562.17", Supported),
            at("192.0.2.7", Family::E2013, "15.0.1497.2", Unsupported),
        ];
        let diff = CensusDiff::between(before, after);
        let ips = |v: &[ServerChange]| v.iter().map(|c| c.ip.to_string()).collect::<Vec<_>>();
        assert_eq!(diff.gone.len(), 1);
        assert_eq!(diff.gone[0].ip.to_string(), "192.0.2.1");
        assert_eq!(diff.new.len(), 1);
        assert_eq!(diff.new[0].ip.to_string(), "192.0.2.7");
        assert_eq!(ips(&diff.upgraded), ["192.0.2.2", "192.0.2.3"]);
        assert_eq!(ips(&diff.downgraded), ["192.0.2.6"]);
        assert_eq!(diff.unchanged, 2);
        assert_eq!(ips(&diff.still_unsupported), ["192.0.2.2", "192.0.2.5"]);
        assert_eq!(ips(&diff.newly_supported), ["192.0.2.3"]);
        assert_eq!(ips(&diff.newly_unsupported), ["192.0.2.4"]);
        assert_eq!(CensusDiff::between([], []), CensusDiff::default());
    }

    #[test]
    fn counts_by_family_and_dedupes_addresses() {
        let census = Census::from_servers([
            server("192.0.2.1", Family::E2016, Support::Unsupported),
            server("192.0.2.2", Family::E2019, Support::Unsupported),
            server("192.0.2.3", Family::Se, Support::Supported),
            server("192.0.2.3", Family::E2016, Support::Unsupported),
            server("192.0.2.4", Family::E2019, Support::Unsupported),
        ]);
        assert_eq!(census.servers, 4);
        assert_eq!(census.supported, 1);
        assert_eq!(census.unsupported, 3);
        assert_eq!(census.unsupported_share, 0.75);
        let row = |f: Family| {
            census
                .families
                .iter()
                .find(|r| r.family == f)
                .unwrap()
                .clone()
        };
        assert_eq!(row(Family::E2019).servers, 2);
        assert_eq!(row(Family::E2019).share, 0.5);
        assert_eq!(row(Family::Se).supported, 1);
        assert_eq!(row(Family::E2016).servers, 1);
        assert_eq!(row(Family::E2007).servers, 0);
        assert_eq!(census.families.len(), 6);
    }

    #[test]
    fn empty_census_has_zero_shares() {
        let census = Census::from_servers([]);
        assert_eq!(census.servers, 0);
        assert_eq!(census.unsupported_share, 0.0);
        assert!(census.families.iter().all(|r| r.share == 0.0));
    }
}
