//! A synthetic Internet on 127.0.0.0/8: Exchange and other HTTPS servers with ground truth.
//!
//! [`generate`] plans a fleet from a seed; [`Testbed::start`] binds it on loopback addresses
//! and serves it until [`Testbed::shutdown`]. The truth ([`TruthHost`]) says what a perfect
//! scanner would report for each host. This crate shares no parsing or fingerprinting code
//! with the scanner, so a bug in one cannot be mirrored by the other.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod builds;
mod dns;
mod hostile;
mod http;
mod link;
mod names;
mod ntlm;
mod pages;
mod persona;
mod plan;
mod registry;
mod server;
mod smtp;
mod tls;

pub use names::SECTORS;
pub use registry::write_registry;

/// Most listeners one fleet may open in this process. Every listener is a file descriptor, so
/// the budget is the process's open-file limit (RLIMIT_NOFILE, as it stands when asked) less
/// room for connections (as many as the default [`FleetOptions::max_connections`]) and the
/// runtime.
/// The `surveyor` binary raises the limit as far as it may before starting a fleet; a library
/// never changes process limits.
pub fn max_listeners() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(soft)
        .unwrap_or(usize::MAX)
        .saturating_sub(server::MAX_CONNECTIONS + 1000)
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestbedConfig {
    /// Number of live hosts (Exchange and non-Exchange).
    pub hosts: usize,
    /// Same seed, same fleet: addresses, personas, builds and names.
    pub seed: u64,
    /// Where hosts live; must lie within 127.0.0.0/8. Most addresses stay empty.
    pub net: Ipv4Net,
    /// The one port every host listens on; 0 picks a free unprivileged port.
    pub port: u16,
}

impl Default for TestbedConfig {
    fn default() -> TestbedConfig {
        TestbedConfig {
            hosts: 60,
            seed: 1,
            net: Ipv4Net::new(Ipv4Addr::new(127, 77, 0, 0), 22).expect("22 is a valid prefix"),
            port: 0,
        }
    }
}

/// How a fleet is mixed and which extra services run, beyond [`TestbedConfig`].
///
/// [`Testbed::start`] uses [`FleetOptions::default`].
#[derive(Debug, Clone, PartialEq)]
pub struct FleetOptions {
    /// Relative weights of the Exchange families among Exchange hosts.
    pub family_weights: FamilyWeights,
    /// Share of live hosts with a hostile persona, 0.0 to 1.0 (default 0.03).
    pub hostile_share: f64,
    /// Share of the other live hosts that do not run Exchange, 0.0 to 1.0 (default 0.25).
    pub non_exchange_share: f64,
    /// SMTP on this port for Exchange (and Postfix) hosts; `Some(0)` picks a free port.
    pub smtp_port: Option<u16>,
    /// Plain HTTP on this port for Exchange hosts, answering 301 to https; `Some(0)` picks
    /// a free port.
    pub http_port: Option<u16>,
    /// An authoritative DNS server for the fleet's zones on this UDP and TCP port of
    /// [`dns_ip`](Self::dns_ip); `Some(0)` picks a free port. Also fills
    /// [`TruthHost::hostname`].
    pub dns_port: Option<u16>,
    /// Where the DNS server listens; must lie within 127.0.0.0/8 (default 127.0.0.1).
    pub dns_ip: Ipv4Addr,
    /// How hosts get their sockets (default [`Listeners::Auto`]).
    pub listeners: Listeners,
    /// Open connections across the fleet (default 4096); beyond it, connections wait in the
    /// kernel backlog.
    pub max_connections: usize,
    /// Each host's round-trip time is drawn from this range, and its answers on every
    /// service are delayed by it (jittered per answer; `docs/testbed.md`, "Dark space and
    /// distance", says exactly what is delayed). `None` (the default) answers at loopback
    /// speed. Fills [`TruthHost::rtt_ms`].
    pub rtt: Option<RttRange>,
    /// Share of live hosts, 0.0 to 1.0, whose HTTPS connections stall mid-way and stay
    /// silent until the client leaves (default 0; hostile personas never stall). Fills
    /// [`TruthHost::stall`]; their `expected_status` is `io-timeout`.
    pub stall_share: f64,
    /// Make every organisation's keys and certificates before serving, as real servers hold
    /// theirs before the first client comes (default false: each is made on first use, so
    /// a large fleet starts at once). Benchmarks set it, so that a scan's figures do not
    /// include the test-bed's key generation.
    pub eager_certs: bool,
}

/// A range of round-trip times in whole milliseconds, `min..=max`, at most 10 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttRange {
    min_ms: u32,
    max_ms: u32,
}

impl RttRange {
    /// The longest round trip accepted: beyond it a host would look dead, not far.
    pub const MAX_MS: u32 = 10_000;

    /// A range from `min_ms` to `max_ms` inclusive; `None` if `min_ms > max_ms` or
    /// `max_ms` exceeds [`RttRange::MAX_MS`].
    pub fn new(min_ms: u32, max_ms: u32) -> Option<RttRange> {
        (min_ms <= max_ms && max_ms <= RttRange::MAX_MS).then_some(RttRange { min_ms, max_ms })
    }

    /// Parses `20-200` (a range) or `50` (every host the same), in milliseconds.
    pub fn parse(text: &str) -> Option<RttRange> {
        let (min, max) = text.split_once('-').unwrap_or((text, text));
        RttRange::new(min.trim().parse().ok()?, max.trim().parse().ok()?)
    }

    pub fn min_ms(self) -> u32 {
        self.min_ms
    }

    pub fn max_ms(self) -> u32 {
        self.max_ms
    }

    /// The round trip at `place` (0.0 to 1.0) of the range, uniformly.
    fn pick(self, place: f64) -> u32 {
        let span = f64::from(self.max_ms - self.min_ms + 1);
        // `place` is below 1, so the product is below span; min() guards the rounding.
        (self.min_ms + (place * span) as u32).min(self.max_ms)
    }
}

impl std::fmt::Display for RttRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.min_ms, self.max_ms)
    }
}

impl std::str::FromStr for RttRange {
    type Err = OptionError;

    /// [`RttRange::parse`], saying what was expected.
    fn from_str(text: &str) -> Result<RttRange, OptionError> {
        RttRange::parse(text).ok_or_else(|| {
            OptionError(format!(
                "expected milliseconds MIN-MAX or MS (at most {}), not {text:?}",
                RttRange::MAX_MS
            ))
        })
    }
}

/// How the fleet's hosts get their sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Listeners {
    /// Per host when the listeners fit in [`max_listeners`], shared otherwise.
    #[default]
    Auto,
    /// One listener per host and service. An empty address refuses connections, as on the
    /// Internet; the fleet is bounded by the open-file limit.
    PerHost,
    /// One listener per service for the whole fleet, on the loopback device only (Linux).
    /// No limit but memory; a connection to an empty address is accepted and reset at once.
    Shared,
}

impl Listeners {
    /// Parses `auto`, `per-host` or `shared`.
    pub fn parse(text: &str) -> Option<Listeners> {
        match text {
            "auto" => Some(Listeners::Auto),
            "per-host" => Some(Listeners::PerHost),
            "shared" => Some(Listeners::Shared),
            _ => None,
        }
    }
}

impl std::str::FromStr for Listeners {
    type Err = OptionError;

    fn from_str(text: &str) -> Result<Listeners, OptionError> {
        Listeners::parse(text)
            .ok_or_else(|| OptionError(format!("expected auto, per-host or shared, not {text:?}")))
    }
}

/// A fleet option given as text that does not parse; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OptionError(String);

/// The ports a fleet serves: HTTPS on every host, optionally plain HTTP and SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServicePorts {
    /// 0 picks a free port.
    pub https: u16,
    pub http: Option<u16>,
    pub smtp: Option<u16>,
}

impl ServicePorts {
    /// Reads `PORT/SERVICE` items (`443/https`, `0/smtp`); a bare port is HTTP for 80 and
    /// 8080, SMTP for 25 and 587, else HTTPS. At most one port per service; no HTTPS port
    /// means 0.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<ServicePorts, OptionError> {
        let (mut https, mut http, mut smtp) = (None, None, None);
        for item in items {
            let item = item.as_ref();
            let (port, proto) = match item.trim().split_once('/') {
                Some((p, proto)) => (p, proto.trim().to_ascii_lowercase()),
                None => {
                    let proto = match item.trim() {
                        "80" | "8080" => "http",
                        "25" | "587" => "smtp",
                        _ => "https",
                    };
                    (item.trim(), proto.to_string())
                }
            };
            let port: u16 = port
                .parse()
                .map_err(|e| OptionError(format!("{item:?} is not a port: {e}")))?;
            let slot = match proto.as_str() {
                "https" => &mut https,
                "http" => &mut http,
                "smtp" => &mut smtp,
                other => return Err(OptionError(format!("{other:?} is not https, http or smtp"))),
            };
            if slot.replace(port).is_some() {
                return Err(OptionError(format!("two ports for {proto}")));
            }
        }
        Ok(ServicePorts {
            https: https.unwrap_or(0),
            http,
            smtp,
        })
    }
}

impl Default for FleetOptions {
    fn default() -> FleetOptions {
        FleetOptions {
            family_weights: FamilyWeights::default(),
            hostile_share: 0.03,
            non_exchange_share: 0.25,
            smtp_port: None,
            http_port: None,
            dns_port: None,
            dns_ip: Ipv4Addr::LOCALHOST,
            listeners: Listeners::Auto,
            max_connections: server::MAX_CONNECTIONS,
            rtt: None,
            stall_share: 0.0,
            eager_certs: false,
        }
    }
}

impl FleetOptions {
    fn validate(&self) -> Result<(), TestbedError> {
        if self.dns_ip.octets()[0] != 127 {
            return Err(TestbedError::BadOptions {
                reason: format!("dns_ip {} is not inside 127.0.0.0/8", self.dns_ip),
            });
        }
        if self.max_connections == 0 {
            return Err(TestbedError::BadOptions {
                reason: "max_connections must be at least 1".to_string(),
            });
        }
        for (name, share) in [
            ("hostile_share", self.hostile_share),
            ("non_exchange_share", self.non_exchange_share),
            ("stall_share", self.stall_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(TestbedError::BadOptions {
                    reason: format!("{name} must be between 0 and 1, not {share}"),
                });
            }
        }
        let w = &self.family_weights;
        let total = [w.se, w.ex2019, w.ex2016, w.ex2013, w.ex2010, w.ex2007]
            .iter()
            .try_fold(0u32, |sum, x| sum.checked_add(*x));
        match total {
            Some(total) if total > 0 => Ok(()),
            _ => Err(TestbedError::BadOptions {
                reason: "family weights must sum to more than 0 (and fit in u32)".to_owned(),
            }),
        }
    }
}

/// Relative weights of Exchange families; the default is in percent of Exchange hosts,
/// after the BSI (CERT-Bund) census of October 2025 (see `docs/testbed.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyWeights {
    pub se: u32,
    pub ex2019: u32,
    pub ex2016: u32,
    pub ex2013: u32,
    pub ex2010: u32,
    pub ex2007: u32,
}

impl Default for FamilyWeights {
    fn default() -> FamilyWeights {
        FamilyWeights {
            se: 8,
            ex2019: 45,
            ex2016: 40,
            ex2013: 3,
            ex2010: 3,
            ex2007: 1,
        }
    }
}

impl std::str::FromStr for FamilyWeights {
    type Err = OptionError;

    /// Reads `FAMILY=N` pairs, comma separated (`se=8,2019=45`); families not named keep
    /// their default weight.
    fn from_str(spec: &str) -> Result<FamilyWeights, OptionError> {
        let mut w = FamilyWeights::default();
        for pair in spec.split(',') {
            let (family, n) = pair
                .split_once('=')
                .ok_or_else(|| OptionError(format!("{pair:?} is not FAMILY=N")))?;
            let n: u32 = n
                .trim()
                .parse()
                .map_err(|e| OptionError(format!("{n:?} is not a number: {e}")))?;
            let slot = match family.trim().to_ascii_lowercase().as_str() {
                "se" => &mut w.se,
                "2019" => &mut w.ex2019,
                "2016" => &mut w.ex2016,
                "2013" => &mut w.ex2013,
                "2010" => &mut w.ex2010,
                "2007" => &mut w.ex2007,
                other => {
                    return Err(OptionError(format!(
                        "unknown family {other:?} (se, 2019, 2016, 2013, 2010, 2007)"
                    )))
                }
            };
            *slot = n;
        }
        Ok(w)
    }
}

impl FamilyWeights {
    fn of(&self, family: builds::Family) -> u32 {
        match family {
            builds::Family::Se => self.se,
            builds::Family::Ex2019 => self.ex2019,
            builds::Family::Ex2016 => self.ex2016,
            builds::Family::Ex2013 => self.ex2013,
            builds::Family::Ex2010 => self.ex2010,
            builds::Family::Ex2007 => self.ex2007,
        }
    }
}

/// Ground truth for one live host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthHost {
    pub ip: IpAddr,
    /// The listening port; in a plan from [`generate`] with port 0 this is 0.
    pub port: u16,
    /// Always `"https"`.
    pub scheme: String,
    /// The persona's kebab-case name, e.g. `"exchange"`, `"nginx"`, `"tarpit"`; the list is
    /// in `docs/testbed.md`.
    pub persona: String,
    /// The organisation's DNS domain under `.example`. Exchange certificates carry
    /// `mail.<domain>` and `autodiscover.<domain>`, the others `www.<domain>`.
    pub domain: String,
    /// Set for Exchange hosts, including the hostile `malformed-ntlm` and
    /// `xml-bomb-manifest` ones; `None` for everything else, lookalikes included.
    pub exchange: Option<TruthExchange>,
    /// What a correct scanner records as the outcome on the HTTPS port: `"success"`,
    /// `"io-timeout"`, `"tls-error"` or `"protocol-error"`.
    #[serde(default)]
    pub expected_status: Option<String>,
    /// Display name of the organisation the host belongs to.
    #[serde(default)]
    pub organisation: String,
    /// The organisation's sector, e.g. `"hospital"`; the list is in `docs/testbed.md`.
    #[serde(default)]
    pub sector: String,
    /// Language for notifications to the organisation, `"de"` or `"en"`.
    #[serde(default)]
    pub language: String,
    /// Software on the SMTP port (`"exchange"` or `"postfix"`) when the fleet runs SMTP and
    /// this host answers there.
    #[serde(default)]
    pub smtp: Option<String>,
    /// The host's name in the fleet's DNS (its PTR record, and an A record back to `ip`):
    /// `mail.<domain>` for Exchange hosts, `www.<domain>` for the others. Set only when the
    /// fleet runs DNS ([`FleetOptions::dns_port`]), and left out of the JSON otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// What answers the OWA paths when it is not the persona's own server: the portal or
    /// proxy in front of Exchange (`big-ip-apm`, `netscaler`, `kemp-esp`, `oauth2-proxy`,
    /// `nginx`), or a phishing kit's stack (`nginx`, `php`, `express`). Left out of the JSON
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// The host's round-trip time in milliseconds, by which its answers are delayed, when
    /// the fleet has distance ([`FleetOptions::rtt`]); left out of the JSON otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u32>,
    /// Where every HTTPS connection to this host stalls, for ever: `"accepted"` (nothing is
    /// ever sent), `"server-hello"` (the rest of the TLS flight never comes) or
    /// `"half-response"` (half of the first answer's head, then nothing). Its `expected_status` is
    /// then `io-timeout`. Left out of the JSON for hosts that do not stall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall: Option<String>,
}

/// Ground truth for an Exchange host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthExchange {
    /// `"2010"`, `"2013"`, `"2016"`, `"2019"` or `"SE"`.
    pub family: String,
    /// The installed build, 4-part, exactly as in the build table, e.g. `"15.1.2507.61"`.
    pub build: String,
    /// Product and release, e.g. `"Exchange Server 2016 CU23 Oct25SU"`.
    pub version_name: String,
    /// `false`: a reverse proxy strips `X-OWA-Version`.
    pub owa_version_header: bool,
    /// `false`: the ECP export tool manifest URL yields no build (404, always so on 2007
    /// and 2010; or an XML bomb).
    pub exporttool_manifest: bool,
    /// The AD DNS domain from the NTLM challenge (`<slug>.local`); `None` when the
    /// challenge is unreadable (`malformed-ntlm`).
    #[serde(default)]
    pub ad_domain: Option<String>,
    /// The NetBIOS domain name from the NTLM challenge.
    #[serde(default)]
    pub netbios_domain: Option<String>,
    /// The server's NetBIOS name from the NTLM challenge (also `X-FEServer` on 2013+).
    #[serde(default)]
    pub netbios_computer: Option<String>,
    /// The Windows build from the NTLM challenge's version field, e.g. 17763.
    #[serde(default)]
    pub windows_build: Option<u32>,
    /// The last day the product is supported (`YYYY-MM-DD`); `None` for SE (Modern
    /// Lifecycle). A host is supported on a date up to and including this one, whatever its
    /// update level: ESU updates are not support.
    #[serde(default)]
    pub supported_until: Option<String>,
}

impl TruthExchange {
    /// The support status on `date` (`YYYY-MM-DD`): `"supported"` or `"unsupported"`.
    pub fn support_on(&self, date: &str) -> &'static str {
        // ISO dates compare correctly as strings.
        match &self.supported_until {
            Some(end) if date > end.as_str() => "unsupported",
            _ => "supported",
        }
    }
}

/// Why a test-bed could not be planned or started.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error("network {net} is not inside 127.0.0.0/8; the test-bed only ever uses loopback")]
    NetNotLoopback { net: Ipv4Net },
    #[error("network {net} has {available} usable addresses but {requested} hosts were requested")]
    TooManyHosts {
        net: Ipv4Net,
        requested: usize,
        available: usize,
    },
    #[error("the compiled-in Exchange build table is unusable: {reason}")]
    BadBuildTable { reason: String },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no port was free on every host address after {attempts} attempts")]
    NoCommonPort { attempts: u32 },
    #[error("TLS setup for {domain} failed: {reason}")]
    Tls { domain: String, reason: String },
    #[error("invalid fleet options: {reason}")]
    BadOptions { reason: String },
    #[error("the fleet needs {requested} listeners but one process may open at most {limit}")]
    TooManyListeners { requested: usize, limit: usize },
    #[error("the fleet's DNS zones could not be built: {reason}")]
    Dns { reason: String },
}

impl TestbedError {
    /// Whether starting again (e.g. with port 0, or later) could succeed. Configuration
    /// mistakes never fix themselves.
    pub fn is_retryable(&self) -> bool {
        match self {
            TestbedError::Bind { source, .. } => source.kind() == std::io::ErrorKind::AddrInUse,
            TestbedError::NoCommonPort { .. } => true,
            TestbedError::NetNotLoopback { .. }
            | TestbedError::TooManyHosts { .. }
            | TestbedError::BadBuildTable { .. }
            | TestbedError::Tls { .. }
            | TestbedError::BadOptions { .. }
            | TestbedError::TooManyListeners { .. }
            | TestbedError::Dns { .. } => false,
        }
    }
}

/// The deterministic plan for `config`, without binding anything.
///
/// An invalid config (net outside 127.0.0.0/8, too many hosts) yields an empty plan; use
/// [`try_generate`] to learn why. With `config.port == 0` every host's port is 0.
pub fn generate(config: &TestbedConfig) -> Vec<TruthHost> {
    try_generate(config).unwrap_or_default()
}

/// Like [`generate`], but reports an invalid config.
pub fn try_generate(config: &TestbedConfig) -> Result<Vec<TruthHost>, TestbedError> {
    try_generate_with(config, &FleetOptions::default())
}

/// The deterministic plan for `config` and `options`, without binding anything. Ports in
/// the truth are `config.port`; `smtp` is set when `options.smtp_port` is.
pub fn try_generate_with(
    config: &TestbedConfig,
    options: &FleetOptions,
) -> Result<Vec<TruthHost>, TestbedError> {
    Ok(plan::plan(config, options)?
        .into_iter()
        .map(|h| h.truth)
        .collect())
}

/// Writes the truth as JSON lines, one [`TruthHost`] per line.
pub fn write_truth(truth: &[TruthHost], mut w: impl Write) -> std::io::Result<()> {
    for host in truth {
        serde_json::to_writer(&mut w, host)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// A running fleet. Dropping it stops the listeners too, but only [`Testbed::shutdown`]
/// waits until every task has finished.
pub struct Testbed {
    seed: u64,
    rtt: Option<RttRange>,
    port: u16,
    shared: bool,
    smtp_port: Option<u16>,
    http_port: Option<u16>,
    dns_addr: Option<SocketAddr>,
    net: Ipv4Net,
    truth: Vec<TruthHost>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// A service's sockets: one per member host, or one for all of them.
enum Sockets {
    PerHost(Vec<TcpListener>),
    Shared(TcpListener),
}

impl std::fmt::Debug for Testbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Testbed")
            .field("port", &self.port)
            .field("net", &self.net)
            .field("hosts", &self.truth.len())
            .finish_non_exhaustive()
    }
}

impl Testbed {
    /// Plans the fleet with [`FleetOptions::default`] and starts serving.
    pub async fn start(config: TestbedConfig) -> Result<Testbed, TestbedError> {
        Testbed::start_with(config, FleetOptions::default()).await
    }

    /// Plans the fleet and starts serving HTTPS on every host, plus SMTP and plain HTTP
    /// where `options` asks for them. Certificates (one per organisation and role) are made
    /// on first use, so start-up cost does not grow with TLS key generation, unless
    /// [`FleetOptions::eager_certs`] asks for them all before serving.
    pub async fn start_with(
        config: TestbedConfig,
        options: FleetOptions,
    ) -> Result<Testbed, TestbedError> {
        let plans = plan::plan(&config, &options)?;
        // Zones come from the plan alone, so a zone error stops us before anything is bound.
        let catalog = match options.dns_port {
            Some(_) => Some(dns::catalog(&dns::zones(
                plans.iter().map(|p| &p.truth),
                config.net.trunc(),
                options.dns_ip,
            ))?),
            None => None,
        };
        let smtp_hosts: Vec<usize> = match options.smtp_port {
            Some(_) => (0..plans.len())
                .filter(|&i| plans[i].truth.smtp.is_some())
                .collect(),
            None => Vec::new(),
        };
        let http_hosts: Vec<usize> = match options.http_port {
            Some(_) => (0..plans.len())
                .filter(|&i| plans[i].truth.exchange.is_some())
                .collect(),
            None => Vec::new(),
        };
        let listeners_needed = plans.len() + smtp_hosts.len() + http_hosts.len();
        let limit = max_listeners();
        let shared = match options.listeners {
            Listeners::Shared => true,
            Listeners::Auto => listeners_needed > limit,
            Listeners::PerHost if listeners_needed > limit => {
                return Err(TestbedError::TooManyListeners {
                    requested: listeners_needed,
                    limit,
                })
            }
            Listeners::PerHost => false,
        };

        let ips: Vec<IpAddr> = plans.iter().map(|p| p.truth.ip).collect();
        let pick = |hosts: &[usize]| hosts.iter().map(|&i| ips[i]).collect::<Vec<_>>();
        let all: Vec<usize> = (0..plans.len()).collect();
        let mut bound = Vec::new();
        for (service, hosts, port) in [
            (server::Service::Https, &all, Some(config.port)),
            (server::Service::Smtp, &smtp_hosts, options.smtp_port),
            (
                server::Service::HttpRedirect,
                &http_hosts,
                options.http_port,
            ),
        ] {
            let Some(port) = port else { continue };
            let sockets = if shared {
                let listener = server::bind_shared(port)?;
                let port = listener
                    .local_addr()
                    .map_err(|source| TestbedError::Bind {
                        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                        source,
                    })?
                    .port();
                (port, Sockets::Shared(listener))
            } else {
                let (port, listeners) = server::bind_all(&pick(hosts), port).await?;
                (port, Sockets::PerHost(listeners))
            };
            bound.push((service, hosts.clone(), sockets));
        }
        let dns = match options.dns_port {
            Some(p) => Some(dns::bind(options.dns_ip, p).await?),
            None => None,
        };

        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let limit = Arc::new(Semaphore::new(options.max_connections));
        let certs = Arc::new(tls::CertCache::new(rustls::crypto::ring::default_provider()));
        let port = bound[0].2 .0;
        let mut truth = Vec::with_capacity(plans.len());
        let mut hosts = Vec::with_capacity(plans.len());
        for mut plan in plans {
            plan.truth.port = port;
            truth.push(plan.truth.clone());
            hosts.push(Arc::new(server::HostState::new(plan, certs.clone())));
        }
        if options.eager_certs {
            tls::make_all(&certs, &hosts).await?;
        }
        let mut smtp_port = None;
        let mut http_port = None;
        for (service, members, (service_port, sockets)) in bound {
            match service {
                server::Service::Smtp => smtp_port = Some(service_port),
                server::Service::HttpRedirect => http_port = Some(service_port),
                server::Service::Https => {}
            }
            let routes: Vec<(TcpListener, server::Route)> = match sockets {
                Sockets::PerHost(listeners) => listeners
                    .into_iter()
                    .zip(&members)
                    .map(|(listener, &i)| (listener, server::Route::Host(hosts[i].clone())))
                    .collect(),
                Sockets::Shared(listener) => {
                    let table = members
                        .iter()
                        .filter_map(|&i| match hosts[i].plan.truth.ip {
                            IpAddr::V4(ip) => Some((ip, hosts[i].clone())),
                            IpAddr::V6(_) => None,
                        })
                        .collect();
                    vec![(listener, server::Route::Shared(Arc::new(table)))]
                }
            };
            for (listener, route) in routes {
                tracker.spawn(server::accept_loop(
                    listener,
                    route,
                    service,
                    limit.clone(),
                    cancel.clone(),
                    tracker.clone(),
                ));
            }
        }
        let dns_addr = match (dns, catalog) {
            (Some((dns_port, udp, tcp)), Some(catalog)) => {
                dns::serve(catalog, udp, tcp, cancel.clone(), &tracker);
                Some(SocketAddr::new(IpAddr::V4(options.dns_ip), dns_port))
            }
            _ => None,
        };
        tracing::info!(
            hosts = truth.len(),
            port,
            shared,
            ?smtp_port,
            ?http_port,
            ?dns_addr,
            net = %config.net.trunc(),
            "test-bed started"
        );
        Ok(Testbed {
            seed: config.seed,
            rtt: options.rtt,
            port,
            shared,
            smtp_port,
            http_port,
            dns_addr,
            net: config.net.trunc(),
            truth,
            cancel,
            tracker,
        })
    }

    /// The SMTP port, if the fleet runs SMTP.
    pub fn smtp_port(&self) -> Option<u16> {
        self.smtp_port
    }

    /// The plain-HTTP port, if the fleet runs one.
    pub fn http_port(&self) -> Option<u16> {
        self.http_port
    }

    /// Where the fleet's DNS server answers (UDP and TCP), if it runs one.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns_addr
    }

    /// The line `surveyor testbed` prints for a person when the fleet is up.
    pub fn banner(&self) -> String {
        format!(
            "{} hosts in {} on port {} (seed {}, {} listeners)",
            self.truth.len(),
            self.net,
            self.port,
            self.seed,
            self.listeners_name()
        )
    }

    /// The one-line JSON record `surveyor testbed` prints on stdout when the fleet is ready,
    /// for scripts and tests: its net and ports, listeners, round trips and stalling hosts.
    pub fn readiness(&self) -> String {
        serde_json::json!({
            "ready": true,
            "net": self.net.to_string(),
            "port": self.port,
            "http_port": self.http_port,
            "smtp_port": self.smtp_port,
            "dns": self.dns_addr.map(|a| a.to_string()),
            "listeners": self.listeners_name(),
            "rtt": self.rtt.map(|r| r.to_string()),
            "stalls": self.truth.iter().filter(|h| h.stall.is_some()).count(),
        })
        .to_string()
    }

    fn listeners_name(&self) -> &'static str {
        if self.shared {
            "shared"
        } else {
            "per-host"
        }
    }

    /// Whether the fleet runs on shared listeners ([`Listeners::Shared`], or chosen by
    /// [`Listeners::Auto`]), where empty addresses accept and reset instead of refusing.
    pub fn shared_listeners(&self) -> bool {
        self.shared
    }

    /// The port every host listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The network the hosts live in.
    pub fn net(&self) -> Ipv4Net {
        self.net
    }

    /// Ground truth for every live host, in address order, with the real port.
    pub fn truth(&self) -> &[TruthHost] {
        &self.truth
    }

    /// Stops all listeners and open connections and waits for their tasks to end.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // Without this, a test that forgets shutdown() would leave listeners on loopback
        // until the runtime ends.
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    const OTHERS: [&str; 9] = [
        "iis-default",
        "nginx",
        "apache",
        "roundcube",
        "zimbra",
        "owa-phishing-copy",
        "owa-honeypot",
        "exchange-online-like",
        "sharepoint",
    ];
    const EXCHANGE: [&str; 6] = [
        "exchange",
        "exchange-behind-portal",
        "exchange-owa-blocked",
        "exchange-stripped-headers",
        "malformed-ntlm",
        "xml-bomb-manifest",
    ];
    const HOSTILE: [&str; 11] = [
        "tarpit",
        "slow-drip",
        "endless-body",
        "huge-headers",
        "malformed-status-line",
        "garbage-after-tls",
        "redirect-loop",
        "gzip-bomb",
        "wrong-content-length",
        "malformed-ntlm",
        "xml-bomb-manifest",
    ];

    fn config(hosts: usize, seed: u64, net: &str) -> TestbedConfig {
        TestbedConfig {
            hosts,
            seed,
            net: net.parse().unwrap(),
            port: 0,
        }
    }

    /// (product + " " + version_name, build) for every row of the CSV, read independently
    /// of the crate's own table code.
    fn csv_rows() -> HashSet<(String, String)> {
        let shared = include_str!("../../surveyor-kb/data/exchange-builds.csv");
        shared
            .lines()
            .skip(1)
            .map(|line| {
                let fields: Vec<&str> = line.splitn(4, ',').collect();
                (format!("{} {}", fields[0], fields[1]), fields[2].to_owned())
            })
            .collect()
    }

    #[test]
    fn generate_is_deterministic_and_seed_dependent() {
        let a = generate(&config(200, 42, "127.77.0.0/22"));
        let b = generate(&config(200, 42, "127.77.0.0/22"));
        let c = generate(&config(200, 43, "127.77.0.0/22"));
        assert_eq!(a.len(), 200);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let ips: HashSet<IpAddr> = a.iter().map(|h| h.ip).collect();
        assert_eq!(ips.len(), 200);
    }

    #[test]
    fn default_config_plans_sixty_hosts() {
        let plan = generate(&TestbedConfig::default());
        assert_eq!(plan.len(), 60);
        let net = TestbedConfig::default().net;
        assert!(plan.iter().all(|h| match h.ip {
            IpAddr::V4(ip) => net.contains(&ip),
            IpAddr::V6(_) => false,
        }));
    }

    #[test]
    fn fleet_mix_follows_the_weights() {
        let plan = generate(&config(2000, 7, "127.80.0.0/16"));
        let exchange: Vec<&TruthExchange> =
            plan.iter().filter_map(|h| h.exchange.as_ref()).collect();
        let share = exchange.len() as f64 / plan.len() as f64;
        // 97 % non-hostile × 75 % Exchange, plus the two hostile Exchange personas.
        assert!((0.69..0.78).contains(&share), "exchange share {share}");
        let hostile = plan
            .iter()
            .filter(|h| {
                h.expected_status.as_deref() != Some("success")
                    || HOSTILE.contains(&h.persona.as_str())
            })
            .count() as f64
            / plan.len() as f64;
        assert!((0.015..0.05).contains(&hostile), "hostile share {hostile}");

        let mut families: HashMap<&str, usize> = HashMap::new();
        for ex in &exchange {
            *families.entry(ex.family.as_str()).or_default() += 1;
        }
        for (family, weight) in [
            ("SE", 0.08),
            ("2019", 0.45),
            ("2016", 0.40),
            ("2013", 0.03),
            ("2010", 0.03),
            ("2007", 0.01),
        ] {
            let got = families.get(family).copied().unwrap_or(0) as f64 / exchange.len() as f64;
            assert!((got - weight).abs() < 0.035, "{family}: {got} vs {weight}");
        }

        let others: HashSet<&str> = plan
            .iter()
            .filter(|h| h.exchange.is_none() && !HOSTILE.contains(&h.persona.as_str()))
            .map(|h| h.persona.as_str())
            .collect();
        assert_eq!(others, HashSet::from(OTHERS));

        let modern: Vec<&&TruthExchange> = exchange
            .iter()
            .filter(|e| e.family != "2010" && e.family != "2007")
            .collect();
        let header =
            modern.iter().filter(|e| e.owa_version_header).count() as f64 / modern.len() as f64;
        let manifest =
            modern.iter().filter(|e| e.exporttool_manifest).count() as f64 / modern.len() as f64;
        assert!((0.75..0.85).contains(&header), "header share {header}");
        assert!(
            (0.65..0.75).contains(&manifest),
            "manifest share {manifest}"
        );
    }

    #[test]
    fn builds_come_from_the_table_and_mix_old_and_new() {
        let rows = csv_rows();
        let plan = generate(&config(2000, 11, "127.81.0.0/16"));
        let mut distinct = HashSet::new();
        for host in &plan {
            match (&host.exchange, host.persona.as_str()) {
                (Some(ex), persona) if EXCHANGE.contains(&persona) => {
                    assert!(
                        rows.contains(&(ex.version_name.clone(), ex.build.clone())),
                        "{ex:?} not in the CSV"
                    );
                    assert_eq!(ex.build.split('.').count(), 4);
                    distinct.insert(ex.build.clone());
                }
                (None, persona) if OTHERS.contains(&persona) || HOSTILE.contains(&persona) => {}
                other => panic!("inconsistent host {other:?}"),
            }
            assert_eq!(host.scheme, "https");
            assert!(host.domain.ends_with(".example"));
        }
        // Favouring the newest CU must still leave plenty of older builds.
        assert!(
            distinct.len() > 100,
            "only {} distinct builds",
            distinct.len()
        );
    }

    #[test]
    fn fronts_say_what_they_leave_visible() {
        let plan = generate(&config(4000, 13, "127.82.0.0/16"));
        let of = |persona: &str| -> Vec<&TruthExchange> {
            plan.iter()
                .filter(|h| h.persona == persona)
                .filter_map(|h| h.exchange.as_ref())
                .collect()
        };
        let (portal, blocked, stripped) = (
            of("exchange-behind-portal"),
            of("exchange-owa-blocked"),
            of("exchange-stripped-headers"),
        );
        let exchange = plan.iter().filter(|h| h.exchange.is_some()).count() as f64;
        for (hosts, share) in [(&portal, 0.03), (&blocked, 0.02), (&stripped, 0.03)] {
            let got = hosts.len() as f64 / exchange;
            assert!((got - share).abs() < 0.012, "{got} vs {share}");
        }
        // Behind a portal only the 401s of autodiscover, EWS and the rest show the build.
        assert!(portal
            .iter()
            .all(|t| t.owa_version_header && !t.exporttool_manifest && t.family != "2007"));
        assert!(portal.iter().all(|t| t.ad_domain.is_some()));
        // Blocked OWA: the manifest is all; no 2007 or 2010, which have none.
        assert!(blocked.iter().all(|t| !t.owa_version_header
            && t.exporttool_manifest
            && t.ad_domain.is_none()
            && !["2007", "2010"].contains(&t.family.as_str())));
        // Stripped headers: never X-OWA-Version; NTLM unless EWS is blocked too.
        assert!(stripped.iter().all(|t| !t.owa_version_header));
        assert!(stripped.iter().any(|t| t.ad_domain.is_some()));
        assert!(stripped.iter().any(|t| t.ad_domain.is_none()));
    }

    #[test]
    fn nets_outside_loopback_are_rejected() {
        for net in [
            "10.0.0.0/24",
            "128.0.0.0/24",
            "0.0.0.0/0",
            "126.255.255.0/24",
            "127.0.0.0/7",
        ] {
            let result = try_generate(&config(1, 1, net));
            assert!(
                matches!(result, Err(TestbedError::NetNotLoopback { .. })),
                "{net}"
            );
            assert!(generate(&config(1, 1, net)).is_empty());
        }
    }

    #[test]
    fn too_small_nets_are_rejected() {
        let result = try_generate(&config(255, 1, "127.1.2.0/24"));
        assert!(matches!(
            result,
            Err(TestbedError::TooManyHosts {
                requested: 255,
                available: 254,
                ..
            })
        ));
        assert_eq!(
            try_generate(&config(254, 1, "127.1.2.0/24")).unwrap().len(),
            254
        );
    }

    #[tokio::test]
    async fn start_rejects_bad_configs_without_binding() {
        let result = Testbed::start(config(1, 1, "192.0.2.0/24")).await;
        assert!(matches!(result, Err(TestbedError::NetNotLoopback { .. })));
        let result = Testbed::start(config(5, 1, "127.1.2.0/30")).await;
        assert!(matches!(result, Err(TestbedError::TooManyHosts { .. })));
    }

    #[tokio::test]
    async fn a_running_fleet_says_where_it_is_in_one_json_line() {
        let options = FleetOptions {
            rtt: RttRange::new(20, 40),
            stall_share: 0.5,
            ..FleetOptions::default()
        };
        let bed = Testbed::start_with(config(8, 3, "127.2.1.0/28"), options)
            .await
            .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&bed.readiness()).unwrap();
        let stalls = bed.truth().iter().filter(|h| h.stall.is_some()).count();
        assert_eq!(
            ready,
            serde_json::json!({
                "ready": true, "net": "127.2.1.0/28", "port": bed.port(), "http_port": null,
                "smtp_port": null, "dns": null, "listeners": "per-host", "rtt": "20-40",
                "stalls": stalls,
            })
        );
        assert_eq!(
            bed.banner(),
            format!(
                "8 hosts in 127.2.1.0/28 on port {} (seed 3, per-host listeners)",
                bed.port()
            )
        );
        bed.shutdown().await;
    }

    #[test]
    fn truth_is_written_as_json_lines() {
        let plan = generate(&config(5, 3, "127.2.0.0/24"));
        let mut out = Vec::new();
        write_truth(&plan, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let back: Vec<TruthHost> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(back, plan);
        // Without DNS the JSON has no hostname key, as before the field existed.
        assert!(!text.contains("hostname"));
    }

    #[test]
    fn dns_names_every_host_in_the_truth() {
        let options = FleetOptions {
            dns_port: Some(0),
            ..FleetOptions::default()
        };
        let plan = try_generate_with(&config(50, 3, "127.2.0.0/24"), &options).unwrap();
        for host in &plan {
            let role = if host.exchange.is_some() {
                "mail"
            } else {
                "www"
            };
            assert_eq!(
                host.hostname.as_deref(),
                Some(format!("{role}.{}", host.domain).as_str())
            );
        }
        // Apart from the names, the fleet is the same as without DNS.
        let without = generate(&config(50, 3, "127.2.0.0/24"));
        let stripped: Vec<TruthHost> = plan
            .iter()
            .cloned()
            .map(|h| TruthHost {
                hostname: None,
                ..h
            })
            .collect();
        assert_eq!(stripped, without);
    }

    #[test]
    fn dns_outside_loopback_is_rejected() {
        let options = FleetOptions {
            dns_port: Some(0),
            dns_ip: Ipv4Addr::new(0, 0, 0, 0),
            ..FleetOptions::default()
        };
        let result = try_generate_with(&config(5, 3, "127.2.0.0/24"), &options);
        assert!(matches!(result, Err(TestbedError::BadOptions { .. })));
    }
}

#[cfg(test)]
mod distance_tests {
    use super::*;

    fn config(hosts: usize, seed: u64) -> TestbedConfig {
        TestbedConfig {
            hosts,
            seed,
            net: "127.203.0.0/16".parse().unwrap(),
            port: 0,
        }
    }

    fn with(rtt: Option<RttRange>, stall_share: f64) -> FleetOptions {
        FleetOptions {
            rtt,
            stall_share,
            ..FleetOptions::default()
        }
    }

    /// The host as it would be without distance.
    fn near(host: &TruthHost, before: &TruthHost) -> TruthHost {
        TruthHost {
            rtt_ms: None,
            stall: None,
            expected_status: before.expected_status.clone(),
            ..host.clone()
        }
    }

    #[test]
    fn distance_leaves_the_fleet_as_it_was() {
        let plain = generate(&config(1000, 21));
        let far =
            try_generate_with(&config(1000, 21), &with(RttRange::new(20, 200), 0.05)).unwrap();
        assert_eq!(plain.len(), far.len());
        for (before, after) in plain.iter().zip(&far) {
            assert_eq!(&near(after, before), before);
        }
        // Without distance the JSON has neither field, as before they existed.
        let mut out = Vec::new();
        write_truth(&plain, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("rtt_ms") && !text.contains("stall"));
    }

    #[test]
    fn round_trips_cover_the_range_and_stay_with_their_host() {
        let far = try_generate_with(&config(2000, 22), &with(RttRange::new(20, 200), 0.0)).unwrap();
        let rtts: Vec<u32> = far.iter().map(|h| h.rtt_ms.unwrap()).collect();
        assert!(rtts.iter().all(|r| (20..=200).contains(r)));
        assert!(rtts.iter().any(|r| *r < 30) && rtts.iter().any(|r| *r > 190));
        let mean = rtts.iter().map(|r| f64::from(*r)).sum::<f64>() / rtts.len() as f64;
        assert!((100.0..120.0).contains(&mean), "mean {mean}");
        // Stalls do not move a host's round trip.
        let stalling =
            try_generate_with(&config(2000, 22), &with(RttRange::new(20, 200), 0.5)).unwrap();
        assert!(stalling.iter().zip(&far).all(|(a, b)| a.rtt_ms == b.rtt_ms));
        let fixed = try_generate_with(&config(50, 22), &with(RttRange::new(80, 80), 0.0)).unwrap();
        assert!(fixed.iter().all(|h| h.rtt_ms == Some(80)));
    }

    #[test]
    fn stalls_follow_the_share_and_the_truth_expects_a_timeout() {
        let small = try_generate_with(&config(4000, 23), &with(None, 0.01)).unwrap();
        let large = try_generate_with(&config(4000, 23), &with(None, 0.2)).unwrap();
        let stalled = |plan: &[TruthHost]| -> Vec<std::net::IpAddr> {
            plan.iter()
                .filter(|h| h.stall.is_some())
                .map(|h| h.ip)
                .collect()
        };
        let (few, many) = (stalled(&small), stalled(&large));
        assert!((20..=60).contains(&few.len()), "{}", few.len());
        assert!((650..=900).contains(&many.len()), "{}", many.len());
        // A larger share stalls a superset of the hosts a smaller one stalls.
        assert!(few.iter().all(|ip| many.contains(ip)));
        let kinds: std::collections::HashSet<&str> =
            large.iter().filter_map(|h| h.stall.as_deref()).collect();
        assert_eq!(
            kinds,
            std::collections::HashSet::from(["accepted", "server-hello", "half-response"])
        );
        for host in &large {
            if host.stall.is_some() {
                assert_eq!(host.expected_status.as_deref(), Some("io-timeout"));
                assert!(host.rtt_ms.is_none(), "no round trip without --rtt");
            }
        }
        // Hostile personas keep their own misbehaviour, whatever the share.
        let all = try_generate_with(&config(2000, 24), &with(None, 1.0)).unwrap();
        let plain = generate(&config(2000, 24));
        for (host, before) in all.iter().zip(&plain) {
            let hostile = before.expected_status.as_deref() != Some("success")
                || matches!(
                    before.persona.as_str(),
                    "endless-body" | "redirect-loop" | "gzip-bomb" | "wrong-content-length"
                );
            assert_eq!(host.stall.is_none(), hostile, "{}", host.persona);
        }
    }

    #[test]
    fn round_trip_ranges_parse_and_refuse_nonsense() {
        assert_eq!(RttRange::parse("20-200"), RttRange::new(20, 200));
        assert_eq!(RttRange::parse("50"), RttRange::new(50, 50));
        assert_eq!(RttRange::parse(" 0 - 10 "), RttRange::new(0, 10));
        assert_eq!(RttRange::parse("20-200").unwrap().to_string(), "20-200");
        for bad in ["200-20", "", "-", "a-b", "20-", "0-10001", "-5"] {
            assert_eq!(RttRange::parse(bad), None, "{bad:?}");
        }
        let result = try_generate_with(&config(5, 1), &with(None, 1.5));
        assert!(matches!(result, Err(TestbedError::BadOptions { .. })));
    }
}

#[cfg(test)]
mod support_tests {
    use super::*;

    #[test]
    fn truth_says_support_on_any_date() {
        let plan = try_generate_with(
            &TestbedConfig {
                hosts: 400,
                seed: 5,
                net: "127.200.0.0/22".parse().unwrap(),
                port: 0,
            },
            &FleetOptions::default(),
        )
        .unwrap();
        let exchange: Vec<&TruthExchange> =
            plan.iter().filter_map(|h| h.exchange.as_ref()).collect();
        for t in &exchange {
            match t.family.as_str() {
                "SE" => assert_eq!(t.support_on("2030-01-01"), "supported"),
                "2016" | "2019" => {
                    assert_eq!(t.support_on("2025-10-14"), "supported");
                    assert_eq!(t.support_on("2025-10-15"), "unsupported");
                }
                _ => assert_eq!(t.support_on("2025-01-01"), "unsupported"),
            }
        }
        assert!(exchange.iter().any(|t| t.family == "SE"));
    }
}

#[cfg(test)]
mod option_tests {
    use super::*;

    #[test]
    fn service_ports_take_a_service_or_guess_it_from_the_port() {
        let check = |items: &[&str], expected: Result<ServicePorts, &str>| {
            let got = ServicePorts::parse(items).map_err(|e| e.to_string());
            assert_eq!(got, expected.map_err(str::to_string), "{items:?}");
        };
        let ports = |https, http, smtp| ServicePorts { https, http, smtp };
        check(&[], Ok(ports(0, None, None)));
        check(&["443", "80", "25"], Ok(ports(443, Some(80), Some(25))));
        check(&["0/https", " 0/SMTP "], Ok(ports(0, None, Some(0))));
        check(&["8443/https", "8080"], Ok(ports(8443, Some(8080), None)));
        check(
            &["x/https"],
            Err("\"x/https\" is not a port: invalid digit found in string"),
        );
        check(&["25/ftp"], Err("\"ftp\" is not https, http or smtp"));
        check(&["443", "8443"], Err("two ports for https"));
    }

    #[test]
    fn family_weights_replace_only_the_families_named() {
        let w: FamilyWeights = "se=8, 2019 = 45,2007=0".parse().unwrap();
        assert_eq!((w.se, w.ex2019, w.ex2007), (8, 45, 0));
        assert_eq!(w.ex2016, FamilyWeights::default().ex2016);
        let err = |spec: &str| spec.parse::<FamilyWeights>().unwrap_err().to_string();
        assert_eq!(err("se"), "\"se\" is not FAMILY=N");
        assert_eq!(
            err("se=x"),
            "\"x\" is not a number: invalid digit found in string"
        );
        assert_eq!(
            err("2003=1"),
            "unknown family \"2003\" (se, 2019, 2016, 2013, 2010, 2007)"
        );
    }

    #[test]
    fn rtt_and_listeners_say_what_they_expected() {
        assert_eq!("20-200".parse(), Ok(RttRange::new(20, 200).unwrap()));
        assert_eq!(
            "20000".parse::<RttRange>().unwrap_err().to_string(),
            "expected milliseconds MIN-MAX or MS (at most 10000), not \"20000\""
        );
        assert_eq!("shared".parse(), Ok(Listeners::Shared));
        assert_eq!(
            "all".parse::<Listeners>().unwrap_err().to_string(),
            "expected auto, per-host or shared, not \"all\""
        );
    }
}
