//! Which country an address is registered in: the Regional Internet Registries' delegation
//! files (`delegated-<rir>-extended-latest`, one per RIR, concatenated) or `PREFIX CC` lines,
//! for the census by country.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::lines;
use crate::lpm::{AddressTable, Ranges};

/// Address ranges with their ISO 3166-1 alpha-2 country, most specific first.
#[derive(Debug, Clone)]
pub struct CountryTable {
    table: AddressTable,
    ranges: usize,
}

/// Every bad line of a country table, by line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryTableError {
    pub problems: Vec<(usize, String)>,
}

impl fmt::Display for CountryTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::lines::write_problems(f, &self.problems)
    }
}

impl std::error::Error for CountryTableError {}

/// One line's meaning: a range with its country, or nothing to keep (a header, a summary, an
/// AS number record, space not delegated to anyone).
enum Line {
    /// An IPv4 range by first and last address (delegations count addresses, not prefixes).
    V4(u32, u32, u32),
    Net(IpNet, u32),
    Skip,
}

impl CountryTable {
    /// Reads RIR delegation lines (`registry|CC|ipv4|START|COUNT|date|status[|...]`, IPv6 with
    /// a prefix length for COUNT; version and summary lines and `asn` records are skipped, as
    /// are ranges not `allocated` or `assigned`) and `PREFIX/LEN CC` lines, in any mix. `#`
    /// comments and blank lines are skipped; every other line that does not parse is an error,
    /// all of them reported. Where ranges nest, the more specific one wins.
    pub fn parse(text: &str) -> Result<CountryTable, CountryTableError> {
        let mut ranges = Ranges::default();
        lines::each_line(text, |line| {
            match parse_line(line)? {
                Line::V4(first, last, cc) => ranges.push_v4(first, last, cc),
                Line::Net(net, cc) => ranges.push_net(net, cc),
                Line::Skip => {}
            }
            Ok(())
        })
        .map_err(|problems| CountryTableError { problems })?;
        Ok(CountryTable {
            ranges: ranges.len(),
            table: ranges.build(),
        })
    }

    /// The country of the most specific range holding `ip`; IPv4-mapped IPv6 addresses count
    /// as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Option<String> {
        self.table.get(ip).map(decode)
    }

    /// Number of ranges read.
    pub fn ranges(&self) -> usize {
        self.ranges
    }
}

/// Two upper-case ASCII letters as one table value (never `u32::MAX`, the table's "none").
fn encode(cc: &str) -> Result<u32, String> {
    match cc.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Ok(u32::from(a.to_ascii_uppercase()) << 8 | u32::from(b.to_ascii_uppercase()))
        }
        _ => Err(format!("{cc:?} is not a two-letter country code")),
    }
}

fn decode(code: u32) -> String {
    [(code >> 8) as u8 as char, (code & 0xff) as u8 as char]
        .into_iter()
        .collect()
}

fn parse_line(line: &str) -> Result<Line, String> {
    if line.contains('|') {
        parse_delegation(line)
    } else {
        parse_prefix(line)
    }
}

fn parse_delegation(line: &str) -> Result<Line, String> {
    let fields: Vec<&str> = line.split('|').collect();
    // The version line: `2|ripencc|20261122|...` (its first field is a number).
    if fields[0].parse::<f64>().is_ok() {
        return Ok(Line::Skip);
    }
    let [_registry, cc, kind, start, value, _date, status, ..] = fields.as_slice() else {
        // Summary lines: `ripencc|*|ipv4|*|93000|summary`.
        if fields.get(5) == Some(&"summary") {
            return Ok(Line::Skip);
        }
        return Err(format!(
            "expected `registry|cc|type|start|value|date|status`, got {} fields",
            fields.len()
        ));
    };
    if !matches!(*status, "allocated" | "assigned") || *kind == "asn" {
        return Ok(Line::Skip);
    }
    let cc = encode(cc)?;
    match *kind {
        "ipv4" => {
            let first: Ipv4Addr = start
                .parse()
                .map_err(|_| format!("{start:?} is not an IPv4 address"))?;
            let count: u64 = value
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{value:?} is not an address count"))?;
            let last = u64::from(u32::from(first)) + count - 1;
            let last = u32::try_from(last)
                .map_err(|_| format!("{start}+{count} runs past 255.255.255.255"))?;
            Ok(Line::V4(u32::from(first), last, cc))
        }
        "ipv6" => {
            let first: Ipv6Addr = start
                .parse()
                .map_err(|_| format!("{start:?} is not an IPv6 address"))?;
            let net = format!("{first}/{value}")
                .parse::<IpNet>()
                .map_err(|_| format!("{value:?} is not an IPv6 prefix length"))?;
            match net {
                IpNet::V6(n) if n.trunc() == n => Ok(Line::Net(net, cc)),
                _ => Err(format!("{net} has host bits set")),
            }
        }
        other => Err(format!("{other:?} is not a record type (ipv4, ipv6, asn)")),
    }
}

fn parse_prefix(line: &str) -> Result<Line, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [prefix, cc] = fields.as_slice() else {
        return Err(format!(
            "expected `PREFIX/LEN CC` or an RIR delegation line, got {} fields",
            fields.len()
        ));
    };
    let net = lines::parse_prefix(prefix)?;
    Ok(Line::Net(net, encode(cc)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELEGATED: &str = "\
2|ripencc|20261122|5|19830705|20261122|+0100
ripencc|*|ipv4|*|3|summary
ripencc|*|asn|*|1|summary
ripencc|DE|asn|64500|1|20100101|allocated|a1
ripencc|DE|ipv4|198.51.100.0|768|20100101|allocated|a1
ripencc|AT|ipv4|203.0.113.0|256|20110101|assigned|a2
ripencc||ipv4|192.0.2.0|256||available
ripencc|DE|ipv6|2001:db8::|32|20120101|allocated|a1
";

    #[test]
    fn delegation_files_and_prefix_lines_with_the_most_specific_winning() {
        let table =
            CountryTable::parse(&format!("{DELEGATED}# a correction\n198.51.101.0/24 nl\n"))
                .unwrap();
        assert_eq!(table.ranges(), 4);
        let at = |s: &str| table.lookup(s.parse().unwrap());
        assert_eq!(at("198.51.100.7").as_deref(), Some("DE"));
        // 768 addresses: not a power of two, still one range.
        assert_eq!(at("198.51.102.255").as_deref(), Some("DE"));
        assert_eq!(at("198.51.103.0"), None);
        assert_eq!(at("198.51.101.9").as_deref(), Some("NL"));
        assert_eq!(at("::ffff:203.0.113.5").as_deref(), Some("AT"));
        assert_eq!(at("2001:db8:1::1").as_deref(), Some("DE"));
        // Not delegated to anyone: no country.
        assert_eq!(at("192.0.2.1"), None);
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let err = CountryTable::parse(
            "198.51.100.0/24 DE\nripencc|DE|ipv4|198.51.100.0|0|20100101|allocated\n\
             198.51.100.1/24 DE\nripencc|DEU|ipv4|198.51.100.0|256|20100101|allocated\n\
             ripencc|DE|ipv4|255.255.255.0|512|20100101|allocated\nx\n",
        )
        .unwrap_err();
        let lines: Vec<usize> = err.problems.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6]);
        let text = err.to_string();
        assert!(text.contains("line 4: \"DEU\" is not a two-letter country code"));
        assert!(text.contains("runs past 255.255.255.255"));
    }
}
