//! What to scan: target specifications in the formats peers produce, the exclusion list, the
//! target space walked in a keyed pseudo-random order, and target lists read as a stream.

mod exclude;
mod parse;
mod space;
mod stream;

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use surveyor_model::Scheme;

pub use exclude::{Exclusions, IntervalSet, OptOut};
pub use parse::{parse_cidr_list, parse_target, parse_target_list, InputFormat};
pub use space::{Order, PortSpec, TargetSpace};
pub use stream::{read_entries, EntryWalk, LineParser, StreamError, StreamWalk, MAX_LINE};

/// One (address, port) to probe, with the name to present when the input gave one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub ip: IpAddr,
    pub port: u16,
    pub scheme: Scheme,
    /// Sent as TLS SNI and HTTP Host (ZGrab2's DOMAIN column); the address is used otherwise.
    pub domain: Option<Arc<str>>,
}

/// One parsed input entry: a prefix to expand over the scan's ports, or an explicit target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Net(IpNet),
    Target(Target),
}

/// The scheme a port speaks unless told otherwise: plain HTTP on 80 and 8080, SMTP on 25 and
/// 587, HTTPS everywhere else (OWA is served over HTTPS; test-beds and odd deployments use
/// other ports for it).
pub fn scheme_for_port(port: u16) -> Scheme {
    match port {
        80 | 8080 => Scheme::Http,
        25 | 587 => Scheme::Smtp,
        _ => Scheme::Https,
    }
}

/// Why a target specification was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{origin}: {input:?} is not {expected}")]
    Malformed {
        origin: String,
        input: String,
        expected: &'static str,
    },
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
    #[error(
        "{origin}: {input:?} names no address; resolving names is not supported yet, give the IP"
    )]
    NeedsResolution { origin: String, input: String },
}

/// The smallest IPv6 prefix length Surveyor expands (a /112 is 65,536 addresses).
pub const MIN_IPV6_PREFIX: u8 = 112;
