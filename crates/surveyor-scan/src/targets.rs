//! Target specifications (addresses and CIDRs), the exclusion list, and lazy expansion.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use surveyor_model::Scheme;

/// One (address, port) to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub ip: IpAddr,
    pub port: u16,
    pub scheme: Scheme,
}

/// The scheme a port speaks: plain HTTP on 80 and 8080, HTTPS everywhere else (OWA is served
/// over HTTPS; test-beds and odd deployments use other ports for it).
pub fn scheme_for_port(port: u16) -> Scheme {
    match port {
        80 | 8080 => Scheme::Http,
        _ => Scheme::Https,
    }
}

/// Why a target specification was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{origin}: {input:?} is not an IP address or CIDR prefix")]
    Malformed { origin: String, input: String },
    #[error(
        "{origin}: {input} lies in {range} ({why}), which Surveyor never scans{hint}",
        hint = if *.loopback { "; pass --allow-loopback to scan loopback (test-beds only)" } else { "" }
    )]
    Excluded {
        origin: String,
        input: String,
        range: IpNet,
        why: &'static str,
        loopback: bool,
    },
    #[error("{origin}: IPv6 prefix {input} is too large to scan (at most /{min_len} allowed)")]
    TooLarge {
        origin: String,
        input: String,
        min_len: u8,
    },
}

/// The smallest IPv6 prefix length Surveyor expands (a /112 is 65,536 addresses).
pub const MIN_IPV6_PREFIX: u8 = 112;

/// Where a target came from, for error messages: "argument 2", "targets.txt line 14".
pub fn parse_target(input: &str, origin: &str) -> Result<IpNet, TargetError> {
    let malformed = || TargetError::Malformed {
        origin: origin.into(),
        input: input.into(),
    };
    let s = input.trim();
    let net = if s.contains('/') {
        s.parse::<IpNet>().map_err(|_| malformed())?.trunc()
    } else {
        IpNet::from(s.parse::<IpAddr>().map_err(|_| malformed())?)
    };
    if let IpNet::V6(v6) = net {
        if v6.prefix_len() < MIN_IPV6_PREFIX {
            return Err(TargetError::TooLarge {
                origin: origin.into(),
                input: s.into(),
                min_len: MIN_IPV6_PREFIX,
            });
        }
    }
    Ok(net)
}

/// Parses a target list: one address or CIDR per line, `#` comments and blank lines allowed.
/// A malformed line is an error naming its line number, never silently dropped.
pub fn parse_target_list(text: &str, name: &str) -> Result<Vec<IpNet>, TargetError> {
    let mut nets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        nets.push(parse_target(line, &format!("{name} line {}", i + 1))?);
    }
    Ok(nets)
}

/// One built-in excluded range and why it is excluded.
#[derive(Debug, Clone, Copy)]
struct Reserved {
    net: IpNet,
    why: &'static str,
    loopback: bool,
}

/// The address space Surveyor refuses to scan: IANA's special-purpose registries and multicast,
/// as ZMap's default blocklist. Only loopback can be opened, and only by `allow_loopback`.
#[derive(Debug, Clone)]
pub struct Exclusions {
    ranges: Vec<Reserved>,
    allow_loopback: bool,
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
        let ranges = vec![
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
        ];
        Exclusions {
            ranges,
            allow_loopback,
        }
    }

    fn active(&self) -> impl Iterator<Item = &Reserved> {
        self.ranges
            .iter()
            .filter(move |r| !(r.loopback && self.allow_loopback))
    }

    /// Whether one address may be scanned.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.active().all(|r| !r.net.contains(&ip))
    }

    /// Rejects a target that lies wholly inside an excluded range; the error says which range
    /// and how loopback can be opened. Partly excluded prefixes are accepted: their excluded
    /// addresses are skipped during expansion.
    pub fn check(&self, net: IpNet, origin: &str) -> Result<(), TargetError> {
        match self.active().find(|r| r.net.contains(&net)) {
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

/// Every address of the prefixes, lazily, skipping excluded ones, crossed with the ports.
/// Network and broadcast addresses are included: on the Internet they are ordinary hosts.
pub fn expand<'a>(
    nets: &'a [IpNet],
    ports: &'a [u16],
    exclusions: &'a Exclusions,
) -> impl Iterator<Item = Target> + Send + 'a {
    nets.iter()
        .flat_map(|net| addresses(*net))
        .filter(move |ip| exclusions.allows(*ip))
        .flat_map(move |ip| {
            ports.iter().map(move |&port| Target {
                ip,
                port,
                scheme: scheme_for_port(port),
            })
        })
}

/// Number of (address, port) targets before exclusions, for progress and summaries.
pub fn count(nets: &[IpNet], ports: &[u16]) -> u128 {
    nets.iter()
        .map(|n| 1u128 << (max_len(n) - n.prefix_len()))
        .sum::<u128>()
        * ports.len() as u128
}

fn max_len(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => 32,
        IpNet::V6(_) => 128,
    }
}

fn addresses(net: IpNet) -> Box<dyn Iterator<Item = IpAddr> + Send> {
    match net {
        IpNet::V4(n) => {
            let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
            Box::new((lo..=hi).map(|a| IpAddr::V4(Ipv4Addr::from(a))))
        }
        IpNet::V6(n) => {
            let (lo, hi) = (u128::from(n.network()), u128::from(n.broadcast()));
            Box::new((lo..=hi).map(|a| IpAddr::V6(Ipv6Addr::from(a))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_prefixes() {
        assert_eq!(
            parse_target("192.0.2.7", "arg").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            parse_target(" 198.51.100.9/24 ", "arg")
                .unwrap()
                .to_string(),
            "198.51.100.0/24"
        );
        assert_eq!(
            parse_target("2001:db8::1", "arg").unwrap().to_string(),
            "2001:db8::1/128"
        );
        let err = parse_target("2001:db8::/64", "arg").unwrap_err();
        assert!(matches!(err, TargetError::TooLarge { .. }));
        for bad in [
            "",
            "300.1.1.1",
            "1.2.3.4/33",
            "example.org",
            "1.2.3.4-1.2.3.9",
        ] {
            assert!(
                matches!(parse_target(bad, "arg"), Err(TargetError::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn target_list_reports_line_numbers() {
        let text = "# census\n203.0.113.0/30\n\n198.51.100.1 # gateway\nnot-an-ip\n";
        let err = parse_target_list(text, "targets.txt").unwrap_err();
        assert_eq!(
            err.to_string(),
            "targets.txt line 5: \"not-an-ip\" is not an IP address or CIDR prefix"
        );
        let ok = parse_target_list("203.0.113.0/30\n# only a comment\n", "t").unwrap();
        assert_eq!(ok.len(), 1);
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
        // A prefix that only overlaps excluded space is accepted and filtered on expansion.
        assert!(closed.check("126.0.0.0/7".parse().unwrap(), "a").is_ok());
    }

    #[test]
    fn expansion_skips_excluded_addresses() {
        let ex = Exclusions::builtin(false);
        let nets = [
            parse_target("126.255.255.254/31", "a").unwrap(),
            parse_target("127.0.0.1", "b").unwrap(),
        ];
        let targets: Vec<_> = expand(&nets, &[443, 80], &ex).collect();
        assert_eq!(targets.len(), 4);
        assert!(targets.iter().all(|t| t.ip.to_string().starts_with("126.")));
        assert_eq!(targets[1].scheme, Scheme::Http);
        assert_eq!(count(&nets, &[443, 80]), 6);
    }
}
