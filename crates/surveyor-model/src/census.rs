//! The census: Exchange servers counted by family and support status.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::build::Family;
use crate::observation::Support;

/// One recognised Exchange server as the census counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeServer {
    pub ip: IpAddr,
    pub family: Family,
    pub support: Support,
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
        let mut by_ip: BTreeMap<IpAddr, ExchangeServer> = BTreeMap::new();
        for s in servers {
            by_ip
                .entry(s.ip)
                .and_modify(|seen| {
                    if s.family > seen.family {
                        *seen = s.clone();
                    }
                })
                .or_insert(s);
        }
        let total = by_ip.len() as u64;
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
                let of: Vec<_> = by_ip.values().filter(|s| s.family == family).collect();
                let supported = of
                    .iter()
                    .filter(|s| s.support == Support::Supported)
                    .count() as u64;
                let servers = of.len() as u64;
                CensusRow {
                    family,
                    servers,
                    share: share(servers),
                    supported,
                    unsupported: servers - supported,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn server(ip: &str, family: Family, support: Support) -> ExchangeServer {
        ExchangeServer {
            ip: ip.parse().unwrap(),
            family,
            support,
        }
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
