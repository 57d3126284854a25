//! Target lists in every input format, and CIDR lists (blocklists, allowlists, opt-outs).
//!
//! Invariants (beyond "never panics"): a refusal names the list (and so the line); `Auto` gives
//! exactly what one of the explicit formats gives; every prefix is truncated to its network
//! address and no IPv6 prefix is larger than a /112; every explicit target speaks the scheme of
//! its port, and a port of 0 (meaning "the scan's ports") only comes with a DOMAIN; a DOMAIN is
//! a lower-case host name.
#![no_main]

use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use surveyor_scan::targets::{
    parse_cidr_list, parse_target_list, scheme_for_port, Entry, InputFormat, MIN_IPV6_PREFIX,
};

const NAME: &str = "fuzz-list.txt";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text: &str = &text;

    let explicit: Vec<_> = [
        "plain",
        "zgrab-csv",
        "zmap-json",
        "masscan-list",
        "masscan-json",
    ]
    .into_iter()
    .map(|f| {
        let format = InputFormat::parse(f).expect("a known format name");
        let parsed = parse_target_list(text, NAME, format);
        match &parsed {
            Ok(entries) => entries.iter().for_each(check_entry),
            Err(e) => assert!(e.to_string().starts_with(NAME), "{f}: {e}"),
        }
        parsed
    })
    .collect();

    let auto = parse_target_list(text, NAME, InputFormat::Auto);
    assert!(
        explicit.contains(&auto),
        "Auto gave what no explicit format gives: {auto:?}"
    );

    match parse_cidr_list(text, NAME) {
        Ok(nets) => {
            for net in nets {
                assert_eq!(net, net.trunc(), "{net} is not truncated");
            }
        }
        Err(e) => assert!(e.to_string().starts_with(NAME), "{e}"),
    }
});

fn check_entry(entry: &Entry) {
    match entry {
        Entry::Net(net) => {
            assert_eq!(*net, net.trunc(), "{net} is not truncated");
            if let IpNet::V6(v6) = net {
                assert!(
                    v6.prefix_len() >= MIN_IPV6_PREFIX,
                    "{net} is too large to scan"
                );
            }
        }
        Entry::Target(t) => {
            assert_eq!(t.scheme, scheme_for_port(t.port), "{t:?}");
            assert!(
                t.port != 0 || t.domain.is_some(),
                "port 0 without a domain: {t:?}"
            );
            if let Some(d) = &t.domain {
                assert!(!d.is_empty() && d.len() <= 253, "{d:?}");
                assert!(
                    d.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b"-_.".contains(&b)),
                    "{d:?}"
                );
            }
        }
    }
}
