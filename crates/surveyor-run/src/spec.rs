//! The scan specification: what a scan is (targets, ports, exclusions, the as-of date) and how
//! it probes (rates, timeouts, plan, discovery), typed and checked once. Built from the
//! command line by the binary, stored with a census job as JSON and read back as itself: a
//! `ScanSpec` that exists is valid. The defaults every flag shows live here, in [`defaults`].

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use surveyor_scan::syn::SynConfig;
use surveyor_scan::targets::Entry;
use surveyor_scan::{
    Exclusions, PortSpec, ProbeConfig, ProbePlan, ScanConfig, Target, TargetSpace,
};
use time::Date;

use crate::pipeline::Discovery;

/// The newest version of the stored form this build reads. A census is stored as the lowest
/// version that describes it: 1 for connect discovery (what every Surveyor reads), 2 for a SYN
/// sweep (`discovery` and `cooldown`), which a worker that reads only version 1 refuses
/// instead of silently connecting.
pub const SPEC_VERSION: u32 = 2;

/// The defaults of every setting of a scan, for `surveyor scan`, `surveyor census create`
/// and the stored form alike: the one place they are written.
pub mod defaults {
    /// New targets per second over the whole scan (0: no limit).
    pub const RATE: u32 = 2000;
    /// New targets per second into one /24 (IPv6: /48).
    pub const NETWORK_RATE: u32 = 200;
    /// New targets per second to one address.
    pub const HOST_RATE: u32 = 10;
    /// Failures in a row into a network that answered before it waits outside the window.
    pub const NETWORK_BACKOFF: u32 = 8;
    /// Seed of the pseudo-random order.
    pub const SEED: u64 = 0;
    /// Seconds for a TCP connect: one lost SYN sent again (after 1 s) and answered from afar.
    pub const CONNECT_TIMEOUT: f64 = 3.0;
    /// Seconds for everything done with one target.
    pub const TARGET_TIMEOUT: f64 = 20.0;
    /// Seconds a SYN sweep waits for late answers (the engine's, ZMap's default).
    pub const COOLDOWN: f64 = surveyor_scan::syn::DEFAULT_COOLDOWN.as_secs_f64();
    /// Ports probed.
    pub const PORTS: &str = "443";
    /// What HTTP(S) servers are asked.
    pub const PLAN: &str = "exchange";
    /// How open ports are found.
    pub const DISCOVERY: &str = "connect";
    /// Seconds a batch the store refuses is retried before it is spilled.
    pub const STORE_RETRY: f64 = 30.0;
}

/// Why a scan specification is not valid. Retrying does not help: the input must change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// A setting out of its range; the message names the flag.
    #[error("{0}")]
    Invalid(String),
    /// A stored specification of a version this build does not read.
    #[error(
        "the census was created by a Surveyor with parameters version {0}, this one reads \
         versions 1 to {SPEC_VERSION}: run the same version on every machine"
    )]
    Version(u32),
    /// A stored value that does not parse.
    #[error("the census parameters hold {value:?}, which is not {what}")]
    Stored { value: String, what: &'static str },
}

/// How open ports are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryMode {
    /// A TCP connect() per target inside the probe window (no privileges needed).
    Connect,
    /// A stateless SYN sweep at the scan's rate; open ports are probed as they answer.
    Syn {
        /// How long late answers are awaited after the last SYN.
        cooldown: Duration,
    },
}

/// How a scan probes, as given (flags, or the stored JSON): plain values, not yet checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbingArgs {
    pub seed: u64,
    pub rate: u32,
    pub network_rate: u32,
    pub host_rate: u32,
    pub network_backoff: u32,
    pub connect_timeout: f64,
    pub target_timeout: f64,
    pub ntlm: bool,
    /// `exchange` or `banner`.
    pub plan: String,
    pub info_url: Option<String>,
    /// `connect` or `syn`.
    pub discovery: String,
    /// Seconds, with `syn`.
    pub cooldown: f64,
}

impl Default for ProbingArgs {
    fn default() -> ProbingArgs {
        ProbingArgs {
            seed: defaults::SEED,
            rate: defaults::RATE,
            network_rate: defaults::NETWORK_RATE,
            host_rate: defaults::HOST_RATE,
            network_backoff: defaults::NETWORK_BACKOFF,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            target_timeout: defaults::TARGET_TIMEOUT,
            ntlm: true,
            plan: defaults::PLAN.to_string(),
            info_url: None,
            discovery: defaults::DISCOVERY.to_string(),
            cooldown: defaults::COOLDOWN,
        }
    }
}

/// How a scan probes, checked: rates (0 is no limit), timeouts, the probe plan and how open
/// ports are found.
#[derive(Debug, Clone, PartialEq)]
pub struct Probing {
    pub seed: u64,
    pub rate: u32,
    pub network_rate: u32,
    pub host_rate: u32,
    pub network_backoff: u32,
    pub connect_timeout: Duration,
    pub target_timeout: Duration,
    pub ntlm: bool,
    pub plan: ProbePlan,
    pub info_url: Option<String>,
    pub discovery: DiscoveryMode,
}

/// What a run adds to a specification on one machine: how many probes at once, when to stop
/// early, and where SYNs come from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSettings {
    /// Probes in flight at once; 0: [`auto_concurrency`].
    pub concurrency: usize,
    pub max_targets: Option<u64>,
    pub max_runtime: Option<Duration>,
    /// With SYN discovery: the source address (default: the kernel's route).
    pub source_ip: Option<Ipv4Addr>,
}

impl Probing {
    /// Checks every value once; the error names the flag.
    pub fn new(args: &ProbingArgs) -> Result<Probing, SpecError> {
        let discovery = match args.discovery.as_str() {
            "connect" => DiscoveryMode::Connect,
            "syn" => {
                if !(args.cooldown.is_finite() && (0.0..=600.0).contains(&args.cooldown)) {
                    return invalid("--cooldown must be between 0 and 600 seconds");
                }
                DiscoveryMode::Syn {
                    cooldown: Duration::from_secs_f64(args.cooldown),
                }
            }
            other => {
                return invalid(format!(
                    "--discovery: expected connect or syn, not {other:?}"
                ))
            }
        };
        Ok(Probing {
            seed: args.seed,
            rate: args.rate,
            network_rate: args.network_rate,
            host_rate: args.host_rate,
            network_backoff: args.network_backoff,
            connect_timeout: secs("connect-timeout", args.connect_timeout)?,
            target_timeout: secs("target-timeout", args.target_timeout)?,
            ntlm: args.ntlm,
            plan: parse_plan(&args.plan).map_err(SpecError::Invalid)?,
            info_url: args.info_url.clone(),
            discovery,
        })
    }

    /// The plain values again, as flags give them and the stored form holds them.
    pub fn args(&self) -> ProbingArgs {
        let (discovery, cooldown) = match self.discovery {
            DiscoveryMode::Connect => ("connect", defaults::COOLDOWN),
            DiscoveryMode::Syn { cooldown } => ("syn", cooldown.as_secs_f64()),
        };
        ProbingArgs {
            seed: self.seed,
            rate: self.rate,
            network_rate: self.network_rate,
            host_rate: self.host_rate,
            network_backoff: self.network_backoff,
            connect_timeout: self.connect_timeout.as_secs_f64(),
            target_timeout: self.target_timeout.as_secs_f64(),
            ntlm: self.ntlm,
            plan: plan_name(self.plan).to_string(),
            info_url: self.info_url.clone(),
            discovery: discovery.to_string(),
            cooldown,
        }
    }

    /// The probes in flight at once: `concurrency`, or for 0 [`auto_concurrency`].
    pub fn window(&self, concurrency: usize) -> usize {
        match concurrency {
            0 => auto_concurrency(self.rate, self.connect_timeout),
            n => n,
        }
    }

    /// The engine's configuration and how open ports are found, for a window of `window`
    /// probes (already fitted to the open-file limit). In SYN mode the rate paces the SYNs;
    /// the probe window then takes the (few) open ports without a global rate, while the
    /// per-network and per-host rates still apply to its probes.
    pub fn engine(&self, window: usize, run: &RunSettings) -> (ScanConfig, Discovery) {
        let probe = ProbeConfig {
            connect_timeout: self.connect_timeout,
            target_timeout: self.target_timeout,
            user_agent: surveyor_scan::default_user_agent(self.info_url.as_deref()),
            ntlm: self.ntlm,
            plan: self.plan,
            ..ProbeConfig::default()
        };
        let mut config = ScanConfig {
            drain_timeout: probe.target_timeout.min(Duration::from_secs(10)),
            probe,
            concurrency: window,
            rate: NonZeroU32::new(self.rate),
            network_rate: NonZeroU32::new(self.network_rate),
            host_rate: NonZeroU32::new(self.host_rate),
            max_targets: run.max_targets,
            max_runtime: run.max_runtime,
            progress: Default::default(),
            backoff: surveyor_scan::Backoff {
                after: self.network_backoff,
                ..surveyor_scan::Backoff::default()
            },
            live_limits: None,
        };
        let discovery = match self.discovery {
            DiscoveryMode::Connect => Discovery::Connect,
            DiscoveryMode::Syn { cooldown } => Discovery::Syn(SynConfig {
                rate: config.rate.take(),
                cooldown,
                source: run.source_ip,
                ..SynConfig::default()
            }),
        };
        (config, discovery)
    }
}

/// The probe window of [`ScanSpec::loopback_demo`].
pub const DEMO_WINDOW: usize = 256;

/// A target given whole (from a ZGrab2 CSV, say): an address, a port (0: every port of the
/// scan) and the name for SNI and Host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplicitTarget {
    pub ip: IpAddr,
    pub port: u16,
    pub domain: Option<String>,
}

/// What a scan is and how it probes: everything a worker on another machine needs to
/// rebuild the same target space, order and probe settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Stored", into = "Stored")]
pub struct ScanSpec {
    /// How the targets were given (stored with the scan; checkpoints name it).
    pub description: String,
    /// Prefixes, in input order.
    pub nets: Vec<IpNet>,
    /// Explicit targets, in input order, after the prefixes.
    pub explicit: Vec<ExplicitTarget>,
    /// One protocol per port, at least one port.
    pub ports: Vec<PortSpec>,
    pub allow_loopback: bool,
    pub blocklist: Vec<IpNet>,
    pub allowlist: Option<Vec<IpNet>>,
    /// The day support is judged for.
    pub as_of: Date,
    pub probing: Probing,
}

impl ScanSpec {
    /// `surveyor demo`'s scan of a test-bed fleet on loopback: no politeness limits (they
    /// would only slow the demo down) and short timeouts (loopback answers in microseconds,
    /// so the fleet's tarpits need not hold the demo for 20 s). Its window is
    /// [`DEMO_WINDOW`].
    pub fn loopback_demo(
        net: ipnet::Ipv4Net,
        port: u16,
        seed: u64,
        as_of: Date,
    ) -> Result<ScanSpec, SpecError> {
        let probing = ProbingArgs {
            seed,
            rate: 0,
            network_rate: 0,
            host_rate: 0,
            connect_timeout: 2.0,
            target_timeout: 5.0,
            ..ProbingArgs::default()
        };
        Ok(ScanSpec {
            description: format!("demo test-bed {net} seed {seed}"),
            nets: vec![IpNet::V4(net)],
            explicit: Vec::new(),
            ports: vec![port.into()],
            allow_loopback: true,
            blocklist: Vec::new(),
            allowlist: None,
            as_of,
            probing: Probing::new(&probing)?,
        })
    }

    /// Checks what the parts do not check alone: the ports (one protocol each) and what SYN
    /// discovery can sweep.
    pub fn checked(mut self) -> Result<ScanSpec, SpecError> {
        self.ports = check_ports(&self.ports)?;
        if matches!(self.probing.discovery, DiscoveryMode::Syn { .. }) {
            surveyor_scan::syn::check_space(&self.space())
                .map_err(|e| SpecError::Invalid(e.to_string()))?;
        }
        Ok(self)
    }

    /// The prefixes, then the explicit targets.
    pub fn entries(&self) -> Vec<Entry> {
        let nets = self.nets.iter().map(|net| Entry::Net(*net));
        let explicit = self.explicit.iter().map(|t| {
            Entry::Target(Target {
                ip: t.ip,
                port: t.port,
                // TargetSpace gives every explicit target the scheme of its port.
                scheme: surveyor_model::Scheme::Https,
                domain: t.domain.as_deref().map(Arc::from),
            })
        });
        nets.chain(explicit).collect()
    }

    /// The target space every worker rebuilds alike.
    pub fn space(&self) -> TargetSpace {
        TargetSpace::new(self.entries(), &self.ports)
    }

    /// The port numbers, in order.
    pub fn port_numbers(&self) -> Vec<u16> {
        self.ports.iter().map(|p| p.port).collect()
    }

    /// The built-in exclusions with the block and allow lists (opt-outs are the machine's).
    pub fn exclusions(&self) -> Exclusions {
        let mut exclusions =
            Exclusions::builtin(self.allow_loopback).with_blocklist(self.blocklist.clone());
        if let Some(allow) = &self.allowlist {
            exclusions = exclusions.with_allowlist(allow.clone());
        }
        exclusions
    }
}

/// One protocol per port: the first mention wins, repeats are dropped.
pub fn check_ports(ports: &[PortSpec]) -> Result<Vec<PortSpec>, SpecError> {
    let mut out: Vec<PortSpec> = Vec::new();
    for p in ports {
        match out.iter().find(|o| o.port == p.port) {
            Some(o) if o.scheme != p.scheme => {
                return invalid(format!("--ports: port {} is given two protocols", p.port))
            }
            Some(_) => {}
            None => out.push(*p),
        }
    }
    if out.is_empty() {
        return invalid("--ports: no port given");
    }
    Ok(out)
}

/// `exchange` or `banner`.
pub fn parse_plan(text: &str) -> Result<ProbePlan, String> {
    match text {
        "exchange" => Ok(ProbePlan::Exchange),
        "banner" => Ok(ProbePlan::Banner),
        _ => Err(format!("expected exchange or banner, not {text:?}")),
    }
}

fn plan_name(plan: ProbePlan) -> &'static str {
    match plan {
        ProbePlan::Exchange => "exchange",
        ProbePlan::Banner => "banner",
    }
}

/// A duration flag in seconds: positive, at most an hour.
pub fn secs(name: &str, v: f64) -> Result<Duration, SpecError> {
    if !(v.is_finite() && v > 0.0 && v <= 3600.0) {
        return invalid(format!(
            "--{name} must be between 0 and 3600 seconds, got {v}"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The window `--concurrency auto` chooses: `rate` targets a second that each wait the whole
/// connect timeout (dark space) fill rate × timeout slots; a quarter more leaves room for
/// live hosts and jitter. Without a rate, 16,384 (about 5,000 silent targets a second at 3 s).
pub fn auto_concurrency(rate: u32, connect_timeout: Duration) -> usize {
    if rate == 0 {
        return 16_384;
    }
    let window = f64::from(rate) * connect_timeout.as_secs_f64() * 1.25;
    (window.ceil() as usize).clamp(256, 100_000)
}

fn invalid<T>(message: impl Into<String>) -> Result<T, SpecError> {
    Err(SpecError::Invalid(message.into()))
}

/// The stored form: the field names a census job has always had; `discovery` and `cooldown`
/// (version 2) only for a SYN sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stored {
    version: u32,
    description: String,
    nets: Vec<String>,
    explicit: Vec<ExplicitTarget>,
    /// `PORT/PROTOCOL`.
    ports: Vec<String>,
    allow_loopback: bool,
    blocklist: Vec<String>,
    allowlist: Option<Vec<String>>,
    as_of: String,
    seed: u64,
    rate: u32,
    network_rate: u32,
    host_rate: u32,
    network_backoff: u32,
    connect_timeout: f64,
    target_timeout: f64,
    ntlm: bool,
    plan: String,
    info_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    discovery: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cooldown: Option<f64>,
}

impl From<ScanSpec> for Stored {
    fn from(spec: ScanSpec) -> Stored {
        let p = spec.probing.args();
        let syn = matches!(spec.probing.discovery, DiscoveryMode::Syn { .. });
        let nets = |list: &[IpNet]| list.iter().map(IpNet::to_string).collect();
        Stored {
            version: if syn { 2 } else { 1 },
            description: spec.description,
            nets: nets(&spec.nets),
            explicit: spec.explicit,
            ports: spec
                .ports
                .iter()
                .map(|p| format!("{}/{}", p.port, p.scheme.as_str()))
                .collect(),
            allow_loopback: spec.allow_loopback,
            blocklist: nets(&spec.blocklist),
            allowlist: spec.allowlist.as_deref().map(nets),
            as_of: spec.as_of.to_string(),
            seed: p.seed,
            rate: p.rate,
            network_rate: p.network_rate,
            host_rate: p.host_rate,
            network_backoff: p.network_backoff,
            connect_timeout: p.connect_timeout,
            target_timeout: p.target_timeout,
            ntlm: p.ntlm,
            plan: p.plan,
            info_url: p.info_url,
            discovery: syn.then_some(p.discovery),
            cooldown: syn.then_some(p.cooldown),
        }
    }
}

impl TryFrom<Stored> for ScanSpec {
    type Error = SpecError;

    fn try_from(s: Stored) -> Result<ScanSpec, SpecError> {
        if !(1..=SPEC_VERSION).contains(&s.version) {
            return Err(SpecError::Version(s.version));
        }
        let nets = |list: &[String]| {
            list.iter()
                .map(|n| {
                    n.parse().map_err(|_| SpecError::Stored {
                        value: n.clone(),
                        what: "a prefix",
                    })
                })
                .collect::<Result<Vec<IpNet>, _>>()
        };
        let ports = s
            .ports
            .iter()
            .map(|p| {
                PortSpec::parse(p).ok_or_else(|| SpecError::Stored {
                    value: p.clone(),
                    what: "a port",
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let as_of = Date::parse(
            &s.as_of,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map_err(|_| SpecError::Stored {
            value: s.as_of.clone(),
            what: "a date",
        })?;
        let probing = Probing::new(&ProbingArgs {
            seed: s.seed,
            rate: s.rate,
            network_rate: s.network_rate,
            host_rate: s.host_rate,
            network_backoff: s.network_backoff,
            connect_timeout: s.connect_timeout,
            target_timeout: s.target_timeout,
            ntlm: s.ntlm,
            plan: s.plan,
            info_url: s.info_url,
            discovery: s
                .discovery
                .unwrap_or_else(|| defaults::DISCOVERY.to_string()),
            cooldown: s.cooldown.unwrap_or(defaults::COOLDOWN),
        })?;
        ScanSpec {
            description: s.description,
            nets: nets(&s.nets)?,
            explicit: s.explicit,
            ports,
            allow_loopback: s.allow_loopback,
            blocklist: nets(&s.blocklist)?,
            allowlist: s.allowlist.as_deref().map(nets).transpose()?,
            as_of,
            probing,
        }
        .checked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ScanSpec {
        ScanSpec {
            description: "127.80.0.0/24 zgrab.csv (1 entries)".into(),
            nets: vec!["127.80.0.0/24".parse().unwrap()],
            explicit: vec![ExplicitTarget {
                ip: "127.81.0.7".parse().unwrap(),
                port: 0,
                domain: Some("mail.example.org".into()),
            }],
            ports: vec![PortSpec::from(443), PortSpec::parse("2525/smtp").unwrap()],
            allow_loopback: true,
            blocklist: vec!["127.80.0.128/25".parse().unwrap()],
            allowlist: None,
            as_of: time::macros::date!(2026 - 11 - 23),
            probing: Probing::new(&ProbingArgs {
                seed: 5,
                rate: 3000,
                network_rate: 300,
                host_rate: 9,
                connect_timeout: 5.0,
                ..ProbingArgs::default()
            })
            .unwrap(),
        }
    }

    #[test]
    fn a_spec_round_trips_through_json_into_the_same_space() {
        let s = spec();
        let back: ScanSpec = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let space = back.space();
        assert_eq!(space.len(), 256 * 2 + 2);
        assert_eq!(back.port_numbers(), vec![443, 2525]);
        let exclusions = back.exclusions();
        assert!(!exclusions.allows("127.80.0.200".parse().unwrap()));
        assert!(exclusions.allows("127.80.0.20".parse().unwrap()));
        let explicit = space.get(space.len() - 1);
        assert_eq!(explicit.domain.as_deref(), Some("mail.example.org"));
        assert_eq!(explicit.scheme, surveyor_model::Scheme::Smtp);
        // A SYN census keeps its mode and cooldown.
        let mut syn = spec();
        syn.explicit.clear();
        syn.probing.discovery = DiscoveryMode::Syn {
            cooldown: Duration::from_secs(3),
        };
        let back: ScanSpec = serde_json::from_value(serde_json::to_value(&syn).unwrap()).unwrap();
        assert_eq!(back, syn);
    }

    /// The parameters a census created before discovery modes holds, verbatim.
    const VERSION_1: &str = r#"{"version":1,"description":"127.80.0.0/24","nets":["127.80.0.0/24"],
        "explicit":[],"ports":["443/https"],"allow_loopback":true,"blocklist":[],"allowlist":null,
        "as_of":"2026-11-23","seed":11,"rate":900,"network_rate":0,"host_rate":0,
        "network_backoff":8,"connect_timeout":3.0,"target_timeout":20.0,"ntlm":true,
        "plan":"exchange","info_url":null}"#;

    #[test]
    fn a_connect_census_is_stored_as_version_1_was() {
        let spec: ScanSpec = serde_json::from_str(VERSION_1).unwrap();
        assert_eq!(spec.probing.discovery, DiscoveryMode::Connect);
        assert_eq!((spec.probing.seed, spec.probing.rate), (11, 900));
        assert_eq!(spec.ports, vec![PortSpec::from(443)]);
        // Written back, it is the same JSON: a worker that reads only version 1 runs it.
        let old: serde_json::Value = serde_json::from_str(VERSION_1).unwrap();
        assert_eq!(serde_json::to_value(&spec).unwrap(), old);
        // A SYN census is version 2, which such a worker refuses.
        let mut syn = spec;
        syn.probing.discovery = DiscoveryMode::Syn {
            cooldown: Duration::from_secs(8),
        };
        let value = serde_json::to_value(&syn).unwrap();
        assert_eq!(
            (value["version"].as_u64(), value["discovery"].as_str()),
            (Some(2), Some("syn"))
        );
    }

    #[test]
    fn another_version_or_a_broken_value_is_refused_by_name() {
        let refused = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut value = serde_json::to_value(spec()).unwrap();
            edit(&mut value);
            serde_json::from_value::<ScanSpec>(value)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(&|v| v["version"] = 3.into()).contains("same version"));
        assert!(refused(&|v| v["nets"][0] = "not-a-prefix".into()).contains("not-a-prefix"));
        assert!(refused(&|v| v["ports"][0] = "99999".into()).contains("99999"));
        assert!(refused(&|v| v["target_timeout"] = 0.0.into()).contains("--target-timeout"));
        assert!(refused(&|v| v["plan"] = "all".into()).contains("exchange or banner"));
        // SYN discovery sweeps IPv4 prefixes only: an explicit target is refused.
        assert!(refused(&|v| v["discovery"] = "syn".into()).contains("--discovery connect"));
    }

    #[test]
    fn auto_concurrency_holds_a_rate_of_silent_targets() {
        let secs = Duration::from_secs;
        // The defaults: 2,000 a second, each silent one waiting 3 s.
        assert_eq!(auto_concurrency(2_000, secs(3)), 7_500);
        assert_eq!(auto_concurrency(10, secs(3)), 256, "never below 256");
        assert_eq!(auto_concurrency(200_000, secs(3)), 100_000);
        assert_eq!(auto_concurrency(0, secs(3)), 16_384, "no rate");
    }

    #[test]
    fn syn_mode_paces_syns_with_the_rate_and_leaves_the_window_unpaced() {
        let mut p = spec().probing;
        let (config, discovery) = p.engine(64, &RunSettings::default());
        assert_eq!(config.rate.map(NonZeroU32::get), Some(3000));
        assert!(matches!(discovery, Discovery::Connect));
        p.discovery = DiscoveryMode::Syn {
            cooldown: Duration::from_secs(1),
        };
        let (config, discovery) = p.engine(64, &RunSettings::default());
        assert_eq!(config.rate, None);
        assert_eq!(config.network_rate.map(NonZeroU32::get), Some(300));
        let Discovery::Syn(syn) = discovery else {
            panic!("not SYN")
        };
        assert_eq!(syn.rate.map(NonZeroU32::get), Some(3000));
        assert_eq!(syn.cooldown, Duration::from_secs(1));
    }

    #[test]
    fn the_demo_scans_its_loopback_fleet_without_limits_and_with_short_timeouts() {
        let net: ipnet::Ipv4Net = "127.77.0.0/22".parse().unwrap();
        let day = time::macros::date!(2026 - 12 - 03);
        let spec = ScanSpec::loopback_demo(net, 4433, 7, day).unwrap();
        assert_eq!(spec.description, "demo test-bed 127.77.0.0/22 seed 7");
        assert_eq!(spec.nets, vec![IpNet::V4(net)]);
        assert_eq!(spec.port_numbers(), vec![4433]);
        assert!(spec.allow_loopback);
        let args = spec.probing.args();
        assert_eq!((args.rate, args.network_rate, args.host_rate), (0, 0, 0));
        assert_eq!((args.connect_timeout, args.target_timeout), (2.0, 5.0));
        assert_eq!(args.seed, 7);
        assert_eq!(spec.clone().checked().unwrap(), spec);
    }
}
