//! Which autonomous system announces an address: a prefix-to-AS table as routing data gives it
//! (CAIDA's RouteViews `pfx2as`, or `PREFIX ASN` lines), for the registry's AS rule.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::lines;
use crate::lpm::{AddressTable, Ranges};

/// Prefix-to-AS data, longest prefix first.
#[derive(Debug, Clone)]
pub struct AsnTable {
    table: AddressTable,
    prefixes: usize,
}

/// Every bad line of an AS table, by line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsnTableError {
    pub problems: Vec<(usize, String)>,
}

impl fmt::Display for AsnTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::lines::write_problems(f, &self.problems)
    }
}

impl std::error::Error for AsnTableError {}

impl AsnTable {
    /// Reads one prefix per line: `ADDRESS<TAB>LENGTH<TAB>AS` (CAIDA pfx2as) or
    /// `PREFIX/LEN AS` (whitespace-separated). An AS field of a multi-origin prefix
    /// (`64500_64501`) or an AS set (`64500,64501`) counts as its first AS. `#` comments and
    /// blank lines are skipped; any other line that does not parse is an error, all of them
    /// reported.
    pub fn parse(text: &str) -> Result<AsnTable, AsnTableError> {
        let mut ranges = Ranges::default();
        lines::each_line(text, |line| {
            let (net, asn) = parse_line(line)?;
            ranges.push_net(net, asn);
            Ok(())
        })
        .map_err(|problems| AsnTableError { problems })?;
        Ok(AsnTable {
            prefixes: ranges.len(),
            table: ranges.build(),
        })
    }

    /// The AS of the longest prefix holding `ip`; IPv4-mapped IPv6 addresses count as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Option<u32> {
        self.table.get(ip)
    }

    pub fn prefixes(&self) -> usize {
        self.prefixes
    }
}

fn parse_line(line: &str) -> Result<(IpNet, u32), String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (prefix, asn) = match fields.as_slice() {
        [address, length, asn] => (format!("{address}/{length}"), *asn),
        [prefix, asn] => (prefix.to_string(), *asn),
        _ => {
            return Err(format!(
                "expected `ADDRESS LENGTH AS` or `PREFIX/LEN AS`, got {} fields",
                fields.len()
            ))
        }
    };
    let net = crate::lines::parse_prefix(&prefix)?;
    let first = asn.split(['_', ',']).next().unwrap_or(asn);
    let number = first.strip_prefix("AS").unwrap_or(first);
    match number.parse::<u32>() {
        // u32::MAX is reserved (RFC 7300), and the range table uses it as "none".
        Ok(n) if n != u32::MAX => Ok((net, n)),
        _ => Err(format!("{asn:?} is not an AS number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_longest_prefix_and_mapped_addresses() {
        let table = AsnTable::parse(
            "# pfx2as\n198.51.100.0\t24\t64500\n198.51.100.128/25 64501_64502\n\n\
             2001:db8::/32 AS64503\n",
        )
        .unwrap();
        assert_eq!(table.prefixes(), 3);
        let at = |s: &str| table.lookup(s.parse().unwrap());
        assert_eq!(at("198.51.100.1"), Some(64500));
        assert_eq!(at("198.51.100.200"), Some(64501));
        assert_eq!(at("::ffff:198.51.100.2"), Some(64500));
        assert_eq!(at("2001:db8::1"), Some(64503));
        assert_eq!(at("192.0.2.1"), None);
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let err = AsnTable::parse("198.51.100.0 24 64500\n198.51.100.1/24 1\nx 2\n10.0.0.0/8 AS\n")
            .unwrap_err();
        let lines: Vec<usize> = err.problems.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 3, 4]);
        assert!(err
            .to_string()
            .contains("line 2: 198.51.100.1/24 has host bits set"));
    }
}
