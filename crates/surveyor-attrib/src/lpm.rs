//! Longest-prefix match as sorted, disjoint address ranges: nested prefixes are flattened once
//! at build time, so a lookup is one short binary search, narrowed by an index on the top 16
//! address bits.
//!
//! prefix-trie 0.8 (already in the tree) was measured first: 2.1 s to load a million prefixes
//! and 480,000 lookups a second, short of the targets (under 1 s, over a million a second).

use std::net::IpAddr;

use ipnet::IpNet;

/// An address as an unsigned integer: `u32` for IPv4, `u128` for IPv6.
pub(crate) trait Address: Copy + Ord {
    /// The top 16 bits, the bucket of the index.
    fn top16(self) -> usize;
    /// The next address; `None` after the last one.
    fn successor(self) -> Option<Self>;
}

impl Address for u32 {
    fn top16(self) -> usize {
        (self >> 16) as usize
    }

    fn successor(self) -> Option<u32> {
        self.checked_add(1)
    }
}

impl Address for u128 {
    fn top16(self) -> usize {
        (self >> 112) as usize
    }

    fn successor(self) -> Option<u128> {
        self.checked_add(1)
    }
}

/// Ranges for an [`AddressTable`], collected before it is built.
#[derive(Debug, Default)]
pub(crate) struct Ranges {
    v4: Vec<(u32, u32, u32)>,
    v6: Vec<(u128, u128, u32)>,
}

impl Ranges {
    /// A prefix with its value (`value` must not be `u32::MAX`).
    pub(crate) fn push_net(&mut self, net: IpNet, value: u32) {
        match net {
            IpNet::V4(n) => self.push_v4(n.network().into(), n.broadcast().into(), value),
            IpNet::V6(n) => self.push_v6(n.network().into(), n.broadcast().into(), value),
        }
    }

    pub(crate) fn push_v4(&mut self, first: u32, last: u32, value: u32) {
        self.v4.push((first, last, value));
    }

    pub(crate) fn push_v6(&mut self, first: u128, last: u128, value: u32) {
        self.v6.push((first, last, value));
    }

    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub(crate) fn build(self) -> AddressTable {
        AddressTable {
            v4: RangeTable::build(self.v4),
            v6: RangeTable::build(self.v6),
        }
    }
}

/// An IPv4 and an IPv6 [`RangeTable`] behind one lookup by address.
#[derive(Debug, Clone)]
pub(crate) struct AddressTable {
    v4: RangeTable<u32>,
    v6: RangeTable<u128>,
}

impl AddressTable {
    /// The value of the longest prefix holding `ip`; IPv4-mapped IPv6 addresses count as IPv4.
    pub(crate) fn get(&self, ip: IpAddr) -> Option<u32> {
        match ip.to_canonical() {
            IpAddr::V4(ip) => self.v4.get(ip.into()),
            IpAddr::V6(ip) => self.v6.get(ip.into()),
        }
    }
}

/// No prefix holds the range.
const NONE: u32 = u32::MAX;
const BUCKETS: usize = 1 << 16;

/// Disjoint ranges `starts[i]..starts[i + 1]`, each with the value of the longest prefix
/// holding it (or [`NONE`]).
#[derive(Debug, Clone)]
pub(crate) struct RangeTable<A> {
    starts: Vec<A>,
    values: Vec<u32>,
    /// `buckets[k]`: the index of the first range starting in top-16-bit block `k` or later.
    buckets: Vec<usize>,
}

impl<A: Address> RangeTable<A> {
    /// `prefixes` as (first address, last address, value). CIDR prefixes either nest or are
    /// disjoint; of two equal ones the later wins. `value` must not be `u32::MAX`.
    pub(crate) fn build(mut prefixes: Vec<(A, A, u32)>) -> RangeTable<A> {
        // Enclosing prefixes before the prefixes they hold; of equal ones the later last.
        prefixes.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        let mut table = RangeTable {
            starts: Vec::with_capacity(prefixes.len() * 2),
            values: Vec::with_capacity(prefixes.len() * 2),
            buckets: Vec::with_capacity(BUCKETS + 1),
        };
        // The prefixes holding the current position, innermost last, as (last, value).
        let mut open: Vec<(A, u32)> = Vec::new();
        for (first, last, value) in prefixes {
            table.close_before(&mut open, Some(first));
            table.emit(first, value);
            open.push((last, value));
        }
        table.close_before(&mut open, None);

        let mut i = 0;
        for block in 0..=BUCKETS {
            while i < table.starts.len() && table.starts[i].top16() < block {
                i += 1;
            }
            table.buckets.push(i);
        }
        table
    }

    /// The value of the longest prefix holding `addr`.
    pub(crate) fn get(&self, addr: A) -> Option<u32> {
        let block = addr.top16();
        let (low, high) = (*self.buckets.get(block)?, *self.buckets.get(block + 1)?);
        let before = low + self.starts.get(low..high)?.partition_point(|&s| s <= addr);
        let value = *self.values.get(before.checked_sub(1)?)?;
        (value != NONE).then_some(value)
    }

    /// Number of disjoint ranges (for tests and capacity checks).
    #[cfg(test)]
    fn ranges(&self) -> usize {
        self.starts.len()
    }

    /// Ends the open prefixes that end before `next` (all of them for `None`): after each,
    /// the prefix around it (or none) holds the addresses again.
    fn close_before(&mut self, open: &mut Vec<(A, u32)>, next: Option<A>) {
        while let Some(&(last, _)) = open.last() {
            if next.is_some_and(|next| last >= next) {
                break;
            }
            open.pop();
            if let Some(after) = last.successor() {
                self.emit(after, open.last().map_or(NONE, |&(_, value)| value));
            }
        }
    }

    fn emit(&mut self, start: A, value: u32) {
        if self.starts.last() == Some(&start) {
            // A prefix starting where another range starts is the more specific one.
            if let Some(last) = self.values.last_mut() {
                *last = value;
            }
        } else if self.values.last() != Some(&value) {
            self.starts.push(start);
            self.values.push(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use ipnet::Ipv4Net;
    use proptest::prelude::*;

    use super::*;

    fn table(prefixes: &[&str]) -> (RangeTable<u32>, Vec<Ipv4Net>) {
        let nets: Vec<Ipv4Net> = prefixes.iter().map(|p| p.parse().unwrap()).collect();
        (build(&nets), nets)
    }

    fn build(nets: &[Ipv4Net]) -> RangeTable<u32> {
        let rows = nets
            .iter()
            .enumerate()
            .map(|(i, n)| (u32::from(n.network()), u32::from(n.broadcast()), i as u32))
            .collect();
        RangeTable::build(rows)
    }

    /// The longest prefix by brute force.
    fn naive(nets: &[Ipv4Net], addr: u32) -> Option<u32> {
        nets.iter()
            .enumerate()
            .filter(|(_, n)| n.contains(&Ipv4Addr::from(addr)))
            .max_by_key(|(i, n)| (n.prefix_len(), *i))
            .map(|(i, _)| i as u32)
    }

    fn check(prefixes: &[&str], lookups: &[(&str, Option<&str>)]) {
        let (table, nets) = table(prefixes);
        for &(addr, expected) in lookups {
            let addr: Ipv4Addr = addr.parse().unwrap();
            let got = table
                .get(u32::from(addr))
                .map(|i| nets[i as usize].to_string());
            assert_eq!(got.as_deref(), expected, "{addr}");
        }
    }

    #[test]
    fn nested_prefixes_and_the_edges_of_the_space() {
        check(
            &[
                "0.0.0.0/0",
                "10.0.0.0/8",
                "10.1.0.0/16",
                "10.1.2.0/24",
                "10.1.2.255/32",
                "255.255.255.255/32",
            ],
            &[
                ("0.0.0.0", Some("0.0.0.0/0")),
                ("9.255.255.255", Some("0.0.0.0/0")),
                ("10.0.0.0", Some("10.0.0.0/8")),
                ("10.1.0.0", Some("10.1.0.0/16")),
                ("10.1.2.7", Some("10.1.2.0/24")),
                ("10.1.2.255", Some("10.1.2.255/32")),
                ("10.1.3.0", Some("10.1.0.0/16")),
                ("10.2.0.0", Some("10.0.0.0/8")),
                ("11.0.0.0", Some("0.0.0.0/0")),
                ("255.255.255.254", Some("0.0.0.0/0")),
                ("255.255.255.255", Some("255.255.255.255/32")),
            ],
        );
        check(
            &["192.0.2.0/25", "192.0.2.128/25"],
            &[
                ("192.0.1.255", None),
                ("192.0.2.127", Some("192.0.2.0/25")),
                ("192.0.2.128", Some("192.0.2.128/25")),
                ("192.0.3.0", None),
            ],
        );
        check(&[], &[("192.0.2.1", None)]);
        // Adjacent equal values merge into one range.
        let (table, _) = table(&["10.0.0.0/8", "10.0.0.0/9"]);
        assert_eq!(table.ranges(), 3);
    }

    #[test]
    fn ipv6_addresses_work_alike() {
        let net: ipnet::Ipv6Net = "2001:db8::/32".parse().unwrap();
        let host: ipnet::Ipv6Net = "2001:db8::1/128".parse().unwrap();
        let rows = [net, host]
            .iter()
            .enumerate()
            .map(|(i, n)| (u128::from(n.network()), u128::from(n.broadcast()), i as u32))
            .collect();
        let table = RangeTable::<u128>::build(rows);
        let get = |a: &str| table.get(u128::from(a.parse::<std::net::Ipv6Addr>().unwrap()));
        assert_eq!(get("2001:db8::1"), Some(1));
        assert_eq!(get("2001:db8::2"), Some(0));
        assert_eq!(get("2001:db9::"), None);
        assert_eq!(get("::"), None);
        assert_eq!(get("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), None);
    }

    proptest! {
        #[test]
        fn agrees_with_brute_force(
            raw in prop::collection::vec((any::<u32>(), 0u8..=32), 0..60),
            probes in prop::collection::vec(any::<u32>(), 0..60),
        ) {
            // Addresses squeezed into few blocks so that prefixes nest often.
            let mut nets: Vec<Ipv4Net> = raw
                .iter()
                .map(|&(a, len)| Ipv4Net::new(Ipv4Addr::from(a & 0xff0f_00ff), len).unwrap().trunc())
                .collect();
            nets.sort();
            nets.dedup();
            let table = build(&nets);
            let edges = nets.iter().flat_map(|n| {
                let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
                [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]
            });
            for addr in probes.into_iter().map(|a| a & 0xff0f_00ff).chain(edges) {
                prop_assert_eq!(table.get(addr), naive(&nets, addr), "{}", Ipv4Addr::from(addr));
            }
        }
    }
}
