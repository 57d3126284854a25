//! The target space: every (address, port) of the inputs, indexed without materialising it,
//! and walked in a keyed pseudo-random order, optionally one shard of several.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use surveyor_model::Scheme;

use super::{scheme_for_port, Entry, Target};
use crate::permute::Permutation;

/// Scan order: the permutation seed, and which shard of how many this process scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub seed: u64,
    pub shards: u32,
    /// 0-based, below `shards`.
    pub shard: u32,
}

impl Default for Order {
    fn default() -> Order {
        Order {
            seed: 0,
            shards: 1,
            shard: 0,
        }
    }
}

/// A port and the protocol to speak on it (`--ports 443,2525/smtp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    pub port: u16,
    pub scheme: Scheme,
}

impl PortSpec {
    /// `443`, `8443/https`, `8081/http`, `2525/smtp`; a bare port gets its usual scheme.
    pub fn parse(s: &str) -> Option<PortSpec> {
        let (port, scheme) = match s.trim().split_once('/') {
            Some((p, scheme)) => (p, Some(Scheme::parse(&scheme.trim().to_ascii_lowercase())?)),
            None => (s.trim(), None),
        };
        let port = port.parse::<u16>().ok().filter(|&p| p != 0)?;
        Some(PortSpec {
            port,
            scheme: scheme.unwrap_or_else(|| scheme_for_port(port)),
        })
    }
}

impl std::str::FromStr for PortSpec {
    type Err = String;

    /// As [`PortSpec::parse`], with an error that says what is accepted.
    fn from_str(s: &str) -> Result<PortSpec, String> {
        PortSpec::parse(s).ok_or_else(|| {
            format!("{s:?} is not PORT or PORT/PROTOCOL (1-65535; http, https, smtp)")
        })
    }
}

impl From<u16> for PortSpec {
    fn from(port: u16) -> PortSpec {
        PortSpec {
            port,
            scheme: scheme_for_port(port),
        }
    }
}

/// Prefixes crossed with ports, plus explicit targets; index `i` names one target.
#[derive(Debug, Clone)]
pub struct TargetSpace {
    nets: Vec<IpNet>,
    /// `ends[k]` = number of targets in `nets[..=k]`.
    ends: Vec<u128>,
    ports: Vec<PortSpec>,
    explicit: Vec<Target>,
}

impl TargetSpace {
    /// Prefixes expand over `ports`; an explicit target with port 0 (a ZGrab2 line without a
    /// PORT) is probed on each of `ports`; an explicit port speaks the scheme `ports` gives it,
    /// or its usual one.
    pub fn new<P: Into<PortSpec> + Copy>(entries: Vec<Entry>, ports: &[P]) -> TargetSpace {
        let ports: Vec<PortSpec> = ports.iter().map(|&p| p.into()).collect();
        let scheme_of = |port: u16| {
            ports
                .iter()
                .find(|p| p.port == port)
                .map_or_else(|| scheme_for_port(port), |p| p.scheme)
        };
        let mut nets = Vec::new();
        let mut explicit = Vec::new();
        for entry in entries {
            match entry {
                Entry::Net(net) => nets.push(net),
                Entry::Target(t) if t.port == 0 => explicit.extend(ports.iter().map(|p| Target {
                    port: p.port,
                    scheme: p.scheme,
                    ..t.clone()
                })),
                Entry::Target(t) => explicit.push(Target {
                    scheme: scheme_of(t.port),
                    ..t
                }),
            }
        }
        let per_address = ports.len() as u128;
        let mut total = 0u128;
        let ends = nets
            .iter()
            .map(|net| {
                total = total.saturating_add(addresses_in(net).saturating_mul(per_address));
                total
            })
            .collect();
        TargetSpace {
            nets,
            ends,
            ports,
            explicit,
        }
    }

    /// Number of targets, before exclusions.
    pub fn len(&self) -> u128 {
        self.ends.last().copied().unwrap_or(0) + self.explicit.len() as u128
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The prefixes, for descriptions and checks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// The target at index `i < len()`.
    pub fn get(&self, i: u128) -> Target {
        let from_nets = self.ends.last().copied().unwrap_or(0);
        if i >= from_nets {
            return self.explicit[(i - from_nets) as usize].clone();
        }
        let k = self.ends.partition_point(|&end| end <= i);
        let start = if k == 0 { 0 } else { self.ends[k - 1] };
        let offset = i - start;
        let per_address = self.ports.len() as u128;
        let spec = self.ports[(offset % per_address) as usize];
        let ip = nth_address(&self.nets[k], offset / per_address);
        Target {
            ip,
            port: spec.port,
            scheme: spec.scheme,
            domain: None,
        }
    }

    /// Number of positions in one shard's walk.
    pub fn shard_len(&self, order: Order) -> u128 {
        let (n, s, i) = (
            self.len(),
            u128::from(order.shards.max(1)),
            u128::from(order.shard),
        );
        if i >= n {
            0
        } else {
            (n - i).div_ceil(s)
        }
    }

    /// Walks this shard's targets in permuted order from `from` (a position within the
    /// shard's walk, for resuming). Shards are disjoint and together complete: shard `i` takes
    /// the permutation's positions `i, i + shards, i + 2 shards, …`.
    pub fn walk(
        &self,
        order: Order,
        from: u128,
    ) -> impl Iterator<Item = (u128, Target)> + Send + '_ {
        let perm = Permutation::new(self.len(), order.seed);
        let shards = u128::from(order.shards.max(1));
        let shard = u128::from(order.shard);
        (from..self.shard_len(order)).map(move |pos| (pos, self.get(perm.at(shard + pos * shards))))
    }
}

impl TargetSpace {
    /// The target at one position of a shard's walk.
    pub fn at(&self, order: Order, position: u128) -> Target {
        let perm = Permutation::new(self.len(), order.seed);
        self.get(perm.at(u128::from(order.shard) + position * u128::from(order.shards.max(1))))
    }

    /// Continues a walk from a checkpoint: the positions left pending first, then everything
    /// from `next` on. Nothing finished is repeated, nothing unfinished is skipped.
    pub fn resume<'a>(
        &'a self,
        order: Order,
        pending: &'a std::collections::BTreeSet<u128>,
        next: u128,
    ) -> impl Iterator<Item = (u128, Target)> + Send + 'a {
        let shard_len = self.shard_len(order);
        let pending = pending.iter().copied().filter(move |&p| p < shard_len);
        pending
            .map(move |p| (p, self.at(order, p)))
            .chain(self.walk(order, next))
    }
}

impl TargetSpace {
    /// The index of a prefix target (address and port), the inverse of [`TargetSpace::get`]
    /// for the prefixes; `None` outside them (explicit targets are not looked up: SYN
    /// discovery sweeps prefixes).
    pub fn index_of(&self, ip: IpAddr, port: u16) -> Option<u128> {
        let per_address = self.ports.len() as u128;
        let port_at = self.ports.iter().position(|p| p.port == port)? as u128;
        let k = self.nets.iter().position(|net| net.contains(&ip))?;
        let start = if k == 0 { 0 } else { self.ends[k - 1] };
        let offset = match (ip, self.nets[k].network()) {
            (IpAddr::V4(ip), IpAddr::V4(base)) => u128::from(u32::from(ip) - u32::from(base)),
            (IpAddr::V6(ip), IpAddr::V6(base)) => u128::from(ip) - u128::from(base),
            _ => return None,
        };
        Some(start + offset * per_address + port_at)
    }

    /// Whether the space holds targets given one by one, besides prefixes.
    pub fn has_explicit(&self) -> bool {
        !self.explicit.is_empty()
    }

    /// The position in a shard's walk of the target at `index`, `None` when another shard
    /// walks it: the inverse of [`TargetSpace::at`].
    pub fn position_of(&self, order: Order, index: u128) -> Option<u128> {
        let perm = Permutation::new(self.len(), order.seed);
        let global = perm.position_of(index);
        let shards = u128::from(order.shards.max(1));
        (global % shards == u128::from(order.shard)).then_some(global / shards)
    }
}

pub(super) fn addresses_in(net: &IpNet) -> u128 {
    let bits = match net {
        IpNet::V4(n) => 32 - u32::from(n.prefix_len()),
        IpNet::V6(n) => 128 - u32::from(n.prefix_len()),
    };
    1u128.checked_shl(bits).unwrap_or(u128::MAX)
}

pub(super) fn nth_address(net: &IpNet, n: u128) -> IpAddr {
    match net {
        IpNet::V4(v4) => IpAddr::V4(Ipv4Addr::from(
            u32::from(v4.network()).wrapping_add(n as u32),
        )),
        IpNet::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6.network()).wrapping_add(n))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::targets::parse_target_list;
    use crate::targets::InputFormat;

    fn space(text: &str, ports: &[u16]) -> TargetSpace {
        TargetSpace::new(
            parse_target_list(text, "t", InputFormat::Auto).unwrap(),
            ports,
        )
    }

    fn key(t: &Target) -> String {
        format!("{}:{}", t.ip, t.port)
    }

    #[test]
    fn indexes_every_target_once() {
        let s = space("198.51.100.0/30\n203.0.113.9\n", &[443, 80]);
        assert_eq!(s.len(), 10);
        let all: BTreeSet<String> = (0..s.len()).map(|i| key(&s.get(i))).collect();
        assert_eq!(all.len(), 10);
        assert!(all.contains("198.51.100.3:80") && all.contains("203.0.113.9:443"));
        assert_eq!(s.get(1).scheme, surveyor_model::Scheme::Http);
    }

    #[test]
    fn explicit_targets_keep_their_domain_and_port() {
        let s = space(
            "198.51.100.7, mail.example.org, t, 8443\n198.51.100.8, owa.example.net\n",
            &[443, 80],
        );
        assert_eq!(s.len(), 3);
        let t: Vec<Target> = (0..3).map(|i| s.get(i)).collect();
        assert_eq!(
            (t[0].port, t[0].domain.as_deref()),
            (8443, Some("mail.example.org"))
        );
        assert_eq!(
            (t[2].port, t[2].domain.as_deref()),
            (80, Some("owa.example.net"))
        );
    }

    #[test]
    fn shards_are_disjoint_and_complete_and_resume_continues() {
        let s = space("198.51.100.0/26\n203.0.113.0/28\n", &[443, 25, 80]);
        let mut seen = BTreeSet::new();
        for shard in 0..3 {
            let order = Order {
                seed: 9,
                shards: 3,
                shard,
            };
            for (_, t) in s.walk(order, 0) {
                assert!(seen.insert(key(&t)), "{} twice", key(&t));
            }
        }
        assert_eq!(seen.len() as u128, s.len());
        let order = Order {
            seed: 9,
            shards: 1,
            shard: 0,
        };
        let full: Vec<String> = s.walk(order, 0).map(|(_, t)| key(&t)).collect();
        let resumed: Vec<String> = s.walk(order, 100).map(|(_, t)| key(&t)).collect();
        assert_eq!(&full[100..], &resumed[..]);
        let sequential: Vec<String> = (0..s.len()).map(|i| key(&s.get(i))).collect();
        assert_ne!(full, sequential, "the walk is permuted");
    }

    #[test]
    fn resuming_repeats_nothing_and_skips_nothing() {
        let s = space("198.51.100.0/27\n", &[443]);
        let order = Order {
            seed: 3,
            shards: 2,
            shard: 1,
        };
        let full: Vec<String> = s.walk(order, 0).map(|(_, t)| key(&t)).collect();
        // Stopped after taking 10 positions, with 4 and 7 unfinished.
        let pending: BTreeSet<u128> = [4, 7].into();
        let resumed: Vec<String> = s
            .resume(order, &pending, 10)
            .map(|(_, t)| key(&t))
            .collect();
        let done: BTreeSet<String> = full[..10]
            .iter()
            .enumerate()
            .filter(|(i, _)| ![4, 7].contains(i))
            .map(|(_, k)| k.clone())
            .collect();
        let mut all: BTreeSet<String> = done.clone();
        for k in &resumed {
            assert!(all.insert(k.clone()), "{k} scanned twice");
        }
        assert_eq!(all.len(), full.len());
        assert_eq!(resumed[..2], [full[4].clone(), full[7].clone()]);
    }

    #[test]
    fn a_bad_port_spec_says_what_is_accepted() {
        assert_eq!(
            "0".parse::<PortSpec>().unwrap_err(),
            r#""0" is not PORT or PORT/PROTOCOL (1-65535; http, https, smtp)"#
        );
        assert_eq!(
            "8443/https".parse::<PortSpec>(),
            Ok(PortSpec::parse("8443/https").unwrap())
        );
        assert_eq!(
            "masscan"
                .parse::<crate::targets::InputFormat>()
                .unwrap_err(),
            "one of auto, plain, zgrab-csv, zmap-json, masscan-list, masscan-json"
        );
    }

    #[test]
    fn port_specs_choose_the_protocol() {
        let spec = |s: &str| PortSpec::parse(s).map(|p| (p.port, p.scheme));
        assert_eq!(spec("443"), Some((443, Scheme::Https)));
        assert_eq!(spec("25"), Some((25, Scheme::Smtp)));
        assert_eq!(spec("2525/smtp"), Some((2525, Scheme::Smtp)));
        assert_eq!(spec("8081/HTTP"), Some((8081, Scheme::Http)));
        assert_eq!(spec("0"), None);
        assert_eq!(spec("443/gopher"), None);
        let s = TargetSpace::new(
            vec![Entry::Net("198.51.100.1/32".parse().unwrap())],
            &[PortSpec::parse("2525/smtp").unwrap()],
        );
        assert_eq!(s.get(0).scheme, Scheme::Smtp);
    }

    #[test]
    fn huge_spaces_are_not_materialised() {
        let s = space("0.0.0.0/0\n", &[443]);
        assert_eq!(s.len(), 1u128 << 32);
        assert_eq!(s.walk(Order::default(), 0).take(3).count(), 3);
    }
}
