//! Target input formats: addresses, prefixes and ranges; ZMap and masscan output; ZGrab2's CSV.
//!
//! Every line is accounted for: a line that is not understood is an error naming its line
//! number, never silently dropped.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};

use super::{scheme_for_port, Entry, Target, TargetError, MIN_IPV6_PREFIX};

/// The format of a target list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Decide from the first meaningful line.
    Auto,
    /// One address, CIDR prefix or `first-last` range per line (also ZMap's default output).
    Plain,
    /// ZGrab2's `IP, DOMAIN, TAG, PORT` CSV.
    ZgrabCsv,
    /// ZMap's `-O json` output: one object per line with `saddr`.
    ZmapJson,
    /// masscan's `-oL` list output: `open tcp 443 192.0.2.1 1700000000`.
    MasscanList,
    /// masscan's `-oJ` output: a JSON array of `{"ip": …, "ports": [{"port": …}]}` objects.
    MasscanJson,
}

impl std::str::FromStr for InputFormat {
    type Err = String;

    /// As [`InputFormat::parse`], with an error that lists the formats.
    fn from_str(s: &str) -> Result<InputFormat, String> {
        InputFormat::parse(s).ok_or_else(|| {
            "one of auto, plain, zgrab-csv, zmap-json, masscan-list, masscan-json".to_string()
        })
    }
}

impl InputFormat {
    pub fn parse(s: &str) -> Option<InputFormat> {
        Some(match s {
            "auto" => InputFormat::Auto,
            "plain" => InputFormat::Plain,
            "zgrab-csv" => InputFormat::ZgrabCsv,
            "zmap-json" => InputFormat::ZmapJson,
            "masscan-list" => InputFormat::MasscanList,
            "masscan-json" => InputFormat::MasscanJson,
            _ => return None,
        })
    }

    /// Whether a line (trimmed) can decide the format: blank lines and `//` lines cannot.
    pub(crate) fn decides(line: &str) -> bool {
        !line.is_empty() && !line.starts_with("//")
    }

    /// The format the first meaningful line (trimmed) is written in.
    pub(crate) fn detect(first: &str) -> InputFormat {
        match first {
            l if l.starts_with("#masscan") || l.starts_with("open ") => InputFormat::MasscanList,
            "[" => InputFormat::MasscanJson,
            l if l.starts_with('{') && l.contains("\"saddr\"") => InputFormat::ZmapJson,
            l if l.starts_with('{') => InputFormat::MasscanJson,
            l if !l.starts_with('#') && l.contains(',') => InputFormat::ZgrabCsv,
            _ => InputFormat::Plain,
        }
    }
}

/// Parses one address, prefix or range given on the command line or a plain list.
pub fn parse_target(input: &str, origin: &str) -> Result<Vec<IpNet>, TargetError> {
    let s = input.trim();
    let malformed = || TargetError::Malformed {
        origin: origin.into(),
        input: s.into(),
        expected: "an IP address, a CIDR prefix or a first-last address range",
    };
    let nets = if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>());
        match (a, b) {
            (Ok(IpAddr::V4(a)), Ok(IpAddr::V4(b))) if a <= b => {
                Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect()
            }
            (Ok(IpAddr::V6(a)), Ok(IpAddr::V6(b))) if a <= b => {
                Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect()
            }
            _ => return Err(malformed()),
        }
    } else if s.contains('/') {
        vec![s.parse::<IpNet>().map_err(|_| malformed())?.trunc()]
    } else {
        vec![IpNet::from(s.parse::<IpAddr>().map_err(|_| malformed())?)]
    };
    let v6_addresses: u128 = nets
        .iter()
        .filter_map(|n| match n {
            IpNet::V6(v6) => Some(1u128 << (128 - u32::from(v6.prefix_len())).min(127)),
            IpNet::V4(_) => None,
        })
        .sum();
    if v6_addresses > 1u128 << (128 - u32::from(MIN_IPV6_PREFIX)) {
        return Err(TargetError::TooLarge {
            origin: origin.into(),
            input: s.into(),
            min_len: MIN_IPV6_PREFIX,
        });
    }
    Ok(nets)
}

/// Parses a target list of any supported format. Blank lines and `#` comments are skipped in
/// line formats.
pub fn parse_target_list(
    text: &str,
    name: &str,
    format: InputFormat,
) -> Result<Vec<Entry>, TargetError> {
    let mut parser = super::LineParser::new(name, format);
    let mut entries = Vec::new();
    for line in text.lines() {
        parser.line(line, &mut entries)?;
    }
    parser.finish()?;
    Ok(entries)
}

/// Parses one line of a list in a known format, appending its entries.
pub(crate) fn parse_line(
    format: InputFormat,
    raw: &str,
    origin: &str,
    entries: &mut Vec<Entry>,
) -> Result<(), TargetError> {
    let line = raw.trim();
    match format {
        InputFormat::Auto | InputFormat::Plain => {
            let line = line.split('#').next().unwrap_or("").trim();
            if !line.is_empty() {
                entries.extend(parse_target(line, origin)?.into_iter().map(Entry::Net));
            }
        }
        InputFormat::ZgrabCsv => {
            if !line.is_empty() && !line.starts_with('#') {
                entries.push(zgrab_line(line, origin)?);
            }
        }
        InputFormat::ZmapJson => {
            if !line.is_empty() {
                entries.push(Entry::Net(IpNet::from(json_ip(line, "saddr", origin)?)));
            }
        }
        InputFormat::MasscanList => {
            if !line.is_empty() && !line.starts_with('#') {
                entries.push(masscan_list_line(line, origin)?);
            }
        }
        InputFormat::MasscanJson => {
            let line = line.trim_end_matches(',');
            if !(line.is_empty() || line == "[" || line == "]") {
                entries.extend(masscan_json_line(line, origin)?);
            }
        }
    }
    Ok(())
}

/// A list of CIDR prefixes or addresses (blocklists, allowlists, opt-outs): one per line,
/// `#` comments allowed.
pub fn parse_cidr_list(text: &str, name: &str) -> Result<Vec<IpNet>, TargetError> {
    let mut nets = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let origin = format!("{name} line {}", i + 1);
        let net = if line.contains('/') {
            line.parse::<IpNet>().ok().map(|n| n.trunc())
        } else {
            line.parse::<IpAddr>().ok().map(IpNet::from)
        };
        nets.push(net.ok_or_else(|| TargetError::Malformed {
            origin,
            input: line.into(),
            expected: "an IP address or CIDR prefix",
        })?);
    }
    Ok(nets)
}

fn target(ip: IpAddr, port: u16, domain: Option<Arc<str>>) -> Entry {
    Entry::Target(Target {
        ip,
        port,
        scheme: scheme_for_port(port),
        domain,
    })
}

/// `IP, DOMAIN, TAG, PORT`: DOMAIN becomes SNI and Host; PORT (optional) overrides --ports.
fn zgrab_line(line: &str, origin: &str) -> Result<Entry, TargetError> {
    let malformed = |expected| TargetError::Malformed {
        origin: origin.into(),
        input: line.into(),
        expected,
    };
    let cols: Vec<&str> = line.split(',').map(str::trim).collect();
    if cols.len() > 4 {
        return Err(malformed("a ZGrab2 CSV line: IP, DOMAIN, TAG, PORT"));
    }
    let col = |i: usize| cols.get(i).copied().filter(|c| !c.is_empty());
    let domain = match col(1) {
        Some(d) if is_hostname(d) => Some(Arc::<str>::from(d.to_ascii_lowercase())),
        Some(_) => return Err(malformed("a ZGrab2 CSV line whose DOMAIN is a host name")),
        None => None,
    };
    let Some(ip) = col(0) else {
        return match domain {
            Some(d) => Err(TargetError::NeedsResolution {
                origin: origin.into(),
                input: d.to_string(),
            }),
            None => Err(malformed("a ZGrab2 CSV line with an IP or a DOMAIN")),
        };
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| malformed("a ZGrab2 CSV line starting with an IP address"))?;
    match col(3) {
        Some(p) => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| malformed("a ZGrab2 CSV line with a PORT of 1-65535"))?;
            Ok(target(ip, port, domain))
        }
        None if domain.is_some() => Ok(target(ip, 0, domain)),
        None => Ok(Entry::Net(IpNet::from(ip))),
    }
}

fn is_hostname(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
        })
}

fn json_ip(line: &str, field: &str, origin: &str) -> Result<IpAddr, TargetError> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|_| TargetError::Malformed {
            origin: origin.into(),
            input: line.chars().take(80).collect(),
            expected: "a JSON object",
        })?;
    value[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| TargetError::Malformed {
            origin: origin.into(),
            input: line.chars().take(80).collect(),
            expected: if field == "saddr" {
                "a ZMap JSON record with an \"saddr\" address"
            } else {
                "a masscan JSON record with an \"ip\" address"
            },
        })
}

/// `open tcp 443 192.0.2.1 1700000000`; closed ports are not targets.
fn masscan_list_line(line: &str, origin: &str) -> Result<Entry, TargetError> {
    let malformed = || TargetError::Malformed {
        origin: origin.into(),
        input: line.into(),
        expected: "a masscan list line: open tcp PORT IP TIMESTAMP",
    };
    let cols: Vec<&str> = line.split_whitespace().collect();
    match cols.as_slice() {
        ["open", "tcp", port, ip, ..] => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(malformed)?;
            Ok(target(ip.parse().map_err(|_| malformed())?, port, None))
        }
        _ => Err(malformed()),
    }
}

fn masscan_json_line(line: &str, origin: &str) -> Result<Vec<Entry>, TargetError> {
    let ip = json_ip(line, "ip", origin)?;
    let value: serde_json::Value = serde_json::from_str(line).expect("parsed once already");
    let ports: Vec<u16> = value["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p["port"].as_u64())
                .filter_map(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0)
                .collect()
        })
        .unwrap_or_default();
    if ports.is_empty() {
        return Ok(vec![Entry::Net(IpNet::from(ip))]);
    }
    Ok(ports
        .into_iter()
        .map(|port| target(ip, port, None))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one place tests touch the parser: input text → entries rendered as strings.
    fn check(text: &str, format: InputFormat, expected: Result<&[&str], &str>) {
        let got = parse_target_list(text, "in.txt", format).map(|entries| {
            entries
                .iter()
                .map(|e| match e {
                    Entry::Net(n) => n.to_string(),
                    Entry::Target(t) => format!(
                        "{}:{}{}",
                        t.ip,
                        t.port,
                        t.domain
                            .as_ref()
                            .map(|d| format!(" {d}"))
                            .unwrap_or_default()
                    ),
                })
                .collect::<Vec<_>>()
        });
        match expected {
            Ok(want) => assert_eq!(got.unwrap(), want, "{text:?}"),
            Err(want) => {
                let err = got.unwrap_err().to_string();
                assert!(err.contains(want), "{text:?}: {err}");
            }
        }
    }

    #[test]
    fn plain_lists() {
        use InputFormat::*;
        check(
            "# census\n198.51.100.0/30\n\n198.51.100.9 # gateway\n",
            Auto,
            Ok(&["198.51.100.0/30", "198.51.100.9/32"]),
        );
        check(
            "198.51.100.1-198.51.100.6",
            Plain,
            Ok(&[
                "198.51.100.1/32",
                "198.51.100.2/31",
                "198.51.100.4/31",
                "198.51.100.6/32",
            ]),
        );
        check("2001:db8::/120\n", Auto, Ok(&["2001:db8::/120"]));
        check(
            "198.51.100.0/24\nnot-an-ip\n",
            Auto,
            Err("in.txt line 2: \"not-an-ip\" is not an IP address"),
        );
        check("198.51.100.9-198.51.100.1", Plain, Err("line 1"));
        check("198.51.100.9-2001:db8::1", Plain, Err("line 1"));
        check("2001:db8::/64", Plain, Err("too large"));
        check("300.1.1.1", Plain, Err("line 1"));
        check("", Auto, Ok(&[]));
    }

    #[test]
    fn peer_formats() {
        use InputFormat::*;
        check(
            "198.51.100.7, mail.example.org, tag1, 443\n198.51.100.8,,,\n198.51.100.9, owa.example.net\n",
            Auto,
            Ok(&["198.51.100.7:443 mail.example.org", "198.51.100.8/32", "198.51.100.9:0 owa.example.net"]),
        );
        check(
            ", mail.example.org, t, 443",
            ZgrabCsv,
            Err("resolving names is not supported"),
        );
        check(
            "198.51.100.7, bad name!, t, 443",
            ZgrabCsv,
            Err("DOMAIN is a host name"),
        );
        check(
            "198.51.100.7, x.example, t, 99999",
            ZgrabCsv,
            Err("PORT of 1-65535"),
        );
        check(
            "{\"saddr\": \"198.51.100.3\", \"sport\": 443}\n{\"saddr\": \"198.51.100.4\"}",
            Auto,
            Ok(&["198.51.100.3/32", "198.51.100.4/32"]),
        );
        check("{\"daddr\": \"198.51.100.3\"}", ZmapJson, Err("\"saddr\""));
        check(
            "#masscan\nopen tcp 443 198.51.100.5 1700000000\n# end\n",
            Auto,
            Ok(&["198.51.100.5:443"]),
        );
        check(
            "open udp 53 198.51.100.5 1700000000",
            MasscanList,
            Err("masscan list line"),
        );
        check(
            "[\n{   \"ip\": \"198.51.100.6\", \"timestamp\": \"1700000000\", \"ports\": [ {\"port\": 443, \"proto\": \"tcp\", \"status\": \"open\"} ] },\n{ \"ip\": \"198.51.100.7\", \"ports\": [ {\"port\": 25}, {\"port\": 443} ] }\n]\n",
            Auto,
            Ok(&["198.51.100.6:443", "198.51.100.7:25", "198.51.100.7:443"]),
        );
        check("[\n{ \"ip\": 5 }\n]", MasscanJson, Err("line 2"));
    }

    #[test]
    fn cidr_lists() {
        let nets = parse_cidr_list(
            "# opt-outs\n192.0.2.0/24 # a hospital\n2001:db8::1\n",
            "optout",
        )
        .unwrap();
        assert_eq!(nets.len(), 2);
        let err = parse_cidr_list("10.0.0.0/8\n10.0.0.0/33\n", "blocklist.txt").unwrap_err();
        assert!(err.to_string().starts_with("blocklist.txt line 2"), "{err}");
    }
}
