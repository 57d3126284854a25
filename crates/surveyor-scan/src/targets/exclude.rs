//! The exclusion list: IANA special-purpose ranges, operator blocklists and allowlists, and an
//! opt-out list that can be replaced while a scan runs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, RwLock};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::TargetError;

/// Address ranges as sorted, merged intervals: membership is a binary search, so a blocklist of
/// a million prefixes costs no more per probe than one of ten.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntervalSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IntervalSet {
    pub fn from_nets(nets: impl IntoIterator<Item = IpNet>) -> IntervalSet {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        IntervalSet {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => hit(&self.v4, u32::from(a)),
            IpAddr::V6(a) => hit(&self.v6, u128::from(a)),
        }
    }

    /// Whether the whole prefix lies inside the set.
    pub fn covers(&self, net: IpNet) -> bool {
        let within = |set: &[(u128, u128)], lo: u128, hi: u128| {
            let i = set.partition_point(|&(_, end)| end < lo);
            set.get(i)
                .is_some_and(|&(start, end)| start <= lo && hi <= end)
        };
        match net {
            IpNet::V4(n) => {
                let set: Vec<(u128, u128)> =
                    self.v4.iter().map(|&(a, b)| (a.into(), b.into())).collect();
                within(
                    &set,
                    u32::from(n.network()).into(),
                    u32::from(n.broadcast()).into(),
                )
            }
            IpNet::V6(n) => within(&self.v6, n.network().into(), n.broadcast().into()),
        }
    }
}

fn merge<T: Ord + Copy + num_like::Succ>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.succ() => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn hit<T: Ord + Copy>(set: &[(T, T)], x: T) -> bool {
    let i = set.partition_point(|&(_, end)| end < x);
    set.get(i).is_some_and(|&(start, _)| start <= x)
}

mod num_like {
    /// The next value, saturating: adjacent ranges merge.
    pub trait Succ {
        fn succ(self) -> Self;
    }
    impl Succ for u32 {
        fn succ(self) -> u32 {
            self.saturating_add(1)
        }
    }
    impl Succ for u128 {
        fn succ(self) -> u128 {
            self.saturating_add(1)
        }
    }
}

/// An opt-out list shared between the scan and whoever reloads it (the binary, on SIGHUP).
#[derive(Debug, Clone, Default)]
pub struct OptOut(Arc<RwLock<IntervalSet>>);

impl OptOut {
    /// Replaces the list; probes admitted from now on see the new one.
    pub fn replace(&self, nets: impl IntoIterator<Item = IpNet>) {
        let set = IntervalSet::from_nets(nets);
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = set;
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(ip)
    }
}

/// One built-in excluded range and why it is excluded.
#[derive(Debug, Clone, Copy)]
struct Reserved {
    net: IpNet,
    why: &'static str,
    loopback: bool,
}

/// The address space Surveyor refuses to scan: IANA's special-purpose registries and multicast,
/// as ZMap's default blocklist, plus the operator's blocklist and opt-outs; and, when an
/// allowlist is given, everything outside it. Only loopback can be opened, by `allow_loopback`.
#[derive(Debug, Clone)]
pub struct Exclusions {
    reserved: Vec<Reserved>,
    builtin: IntervalSet,
    blocklist: IntervalSet,
    allowlist: Option<IntervalSet>,
    opt_out: OptOut,
}

impl Exclusions {
    pub fn builtin(allow_loopback: bool) -> Exclusions {
        let v4 = |a, b, c, d, len, why, loopback| Reserved {
            net: IpNet::V4(Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len).expect("valid prefix")),
            why,
            loopback,
        };
        let v6 = |s: &str, why| Reserved {
            net: IpNet::V6(s.parse::<Ipv6Net>().expect("valid prefix")),
            why,
            loopback: false,
        };
        let reserved: Vec<Reserved> = vec![
            v4(0, 0, 0, 0, 8, "\"this network\", RFC 791", false),
            v4(10, 0, 0, 0, 8, "private use, RFC 1918", false),
            v4(100, 64, 0, 0, 10, "shared address space, RFC 6598", false),
            v4(127, 0, 0, 0, 8, "loopback, RFC 1122", true),
            v4(169, 254, 0, 0, 16, "link local, RFC 3927", false),
            v4(172, 16, 0, 0, 12, "private use, RFC 1918", false),
            v4(
                192,
                0,
                0,
                0,
                24,
                "IETF protocol assignments, RFC 6890",
                false,
            ),
            v4(
                192,
                0,
                2,
                0,
                24,
                "documentation (TEST-NET-1), RFC 5737",
                false,
            ),
            v4(192, 88, 99, 0, 24, "6to4 relay anycast, RFC 7526", false),
            v4(192, 168, 0, 0, 16, "private use, RFC 1918", false),
            v4(198, 18, 0, 0, 15, "benchmarking, RFC 2544", false),
            v4(
                198,
                51,
                100,
                0,
                24,
                "documentation (TEST-NET-2), RFC 5737",
                false,
            ),
            v4(
                203,
                0,
                113,
                0,
                24,
                "documentation (TEST-NET-3), RFC 5737",
                false,
            ),
            v4(224, 0, 0, 0, 4, "multicast, RFC 5771", false),
            v4(240, 0, 0, 0, 4, "reserved, RFC 1112", false),
            Reserved {
                net: IpNet::V6(Ipv6Net::new(Ipv6Addr::LOCALHOST, 128).expect("valid prefix")),
                why: "loopback, RFC 4291",
                loopback: true,
            },
            v6("::/128", "unspecified address, RFC 4291"),
            v6("::ffff:0:0/96", "IPv4-mapped addresses, RFC 4291"),
            v6("64:ff9b::/96", "IPv4/IPv6 translation, RFC 6052"),
            v6(
                "64:ff9b:1::/48",
                "local-use IPv4/IPv6 translation, RFC 8215",
            ),
            v6("100::/64", "discard-only, RFC 6666"),
            v6("2001::/23", "IETF protocol assignments, RFC 2928"),
            v6("2001:db8::/32", "documentation, RFC 3849"),
            v6("2002::/16", "6to4, RFC 3056"),
            v6("fc00::/7", "unique local, RFC 4193"),
            v6("fe80::/10", "link local, RFC 4291"),
            v6("ff00::/8", "multicast, RFC 4291"),
        ]
        .into_iter()
        .filter(|r| !(r.loopback && allow_loopback))
        .collect();
        let builtin = IntervalSet::from_nets(reserved.iter().map(|r| r.net));
        Exclusions {
            reserved,
            builtin,
            blocklist: IntervalSet::default(),
            allowlist: None,
            opt_out: OptOut::default(),
        }
    }

    /// Adds the operator's blocklist (`--blocklist-file`).
    pub fn with_blocklist(mut self, nets: impl IntoIterator<Item = IpNet>) -> Exclusions {
        self.blocklist = IntervalSet::from_nets(nets);
        self
    }

    /// Restricts scanning to these prefixes (`--allowlist-file`); the built-in exclusions and
    /// the blocklist still apply inside them.
    pub fn with_allowlist(mut self, nets: impl IntoIterator<Item = IpNet>) -> Exclusions {
        self.allowlist = Some(IntervalSet::from_nets(nets));
        self
    }

    /// Shares an opt-out list that can be replaced during the scan.
    pub fn with_opt_out(mut self, opt_out: OptOut) -> Exclusions {
        self.opt_out = opt_out;
        self
    }

    /// Whether one address may be scanned.
    pub fn allows(&self, ip: IpAddr) -> bool {
        !self.builtin.contains(ip)
            && !self.blocklist.contains(ip)
            && self.allowlist.as_ref().is_none_or(|a| a.contains(ip))
            && !self.opt_out.contains(ip)
    }

    /// Rejects a target that lies wholly inside a built-in excluded range; the error says which
    /// range and how loopback can be opened. Partly excluded prefixes are accepted: their
    /// excluded addresses are skipped during the scan. Blocklisted targets are skipped, not
    /// errors: a blocklist is a standing policy, not a typo.
    pub fn check(&self, net: IpNet, origin: &str) -> Result<(), TargetError> {
        match self.reserved.iter().find(|r| r.net.contains(&net)) {
            Some(r) => Err(TargetError::Excluded {
                origin: origin.into(),
                input: net.to_string(),
                range: r.net,
                why: r.why,
                loopback: r.loopback,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn loopback_only_opens_with_the_flag() {
        let closed = Exclusions::builtin(false);
        let open = Exclusions::builtin(true);
        let lo: IpAddr = "127.1.2.3".parse().unwrap();
        assert!(!closed.allows(lo));
        assert!(open.allows(lo));
        assert!(open.allows("::1".parse().unwrap()));
        assert!(!closed.allows("::1".parse().unwrap()));
        for ip in [
            "10.1.1.1",
            "192.168.0.1",
            "172.20.0.1",
            "224.0.0.1",
            "0.1.2.3",
            "fe80::1",
            "255.255.255.255",
        ] {
            assert!(!open.allows(ip.parse().unwrap()), "{ip}");
        }
        assert!(open.allows("8.8.8.8".parse().unwrap()));
        let err = closed
            .check("127.0.0.1/32".parse().unwrap(), "argument 1")
            .unwrap_err();
        assert!(err.to_string().contains("--allow-loopback"), "{err}");
        let err = open
            .check("10.0.0.0/24".parse().unwrap(), "argument 1")
            .unwrap_err();
        assert!(err.to_string().contains("private use"), "{err}");
        assert!(!err.to_string().contains("--allow-loopback"), "{err}");
        assert!(closed.check("126.0.0.0/7".parse().unwrap(), "a").is_ok());
    }

    #[test]
    fn blocklists_allowlists_and_opt_outs() {
        let opt_out = OptOut::default();
        let ex = Exclusions::builtin(false)
            .with_blocklist(nets(&["8.8.8.0/24"]))
            .with_allowlist(nets(&["8.0.0.0/8", "2a00::/16"]))
            .with_opt_out(opt_out.clone());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(!ex.allows(ip("8.8.8.8")));
        assert!(ex.allows(ip("8.8.9.1")));
        assert!(!ex.allows(ip("9.9.9.9")), "outside the allowlist");
        assert!(ex.allows(ip("2a00::1")));
        opt_out.replace(nets(&["8.8.9.0/30"]));
        assert!(!ex.allows(ip("8.8.9.1")), "opt-out applies at once");
        opt_out.replace(Vec::new());
        assert!(ex.allows(ip("8.8.9.1")));
    }

    #[test]
    fn interval_sets_merge_and_cover() {
        let set = IntervalSet::from_nets(nets(&["1.0.0.0/25", "1.0.0.128/25", "1.0.2.0/24"]));
        assert!(set.covers("1.0.0.0/24".parse().unwrap()));
        assert!(!set.covers("1.0.0.0/22".parse().unwrap()));
        assert!(set.contains("1.0.2.255".parse().unwrap()));
        assert!(!set.contains("1.0.1.0".parse().unwrap()));
        assert!(IntervalSet::from_nets(nets(&["0.0.0.0/0"]))
            .contains("255.255.255.255".parse().unwrap()));
    }
}
