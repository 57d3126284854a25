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
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod builds;
mod http;
mod names;
mod pages;
mod persona;
mod plan;
mod server;
mod tls;

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

/// Ground truth for one live host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthHost {
    pub ip: IpAddr,
    /// The listening port; in a plan from [`generate`] with port 0 this is 0.
    pub port: u16,
    /// Always `"https"`.
    pub scheme: String,
    /// `"exchange"`, `"iis-default"`, `"nginx"` or `"apache"`.
    pub persona: String,
    /// The organisation's DNS domain under `.example`. Exchange certificates carry
    /// `mail.<domain>` and `autodiscover.<domain>`, the others `www.<domain>`.
    pub domain: String,
    pub exchange: Option<TruthExchange>,
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
    /// `false`: the ECP export tool manifest URL answers 404 (always so on 2010).
    pub exporttool_manifest: bool,
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
            | TestbedError::Tls { .. } => false,
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
    Ok(plan::plan(config)?.into_iter().map(|h| h.truth).collect())
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
    port: u16,
    net: Ipv4Net,
    truth: Vec<TruthHost>,
    cancel: CancellationToken,
    tracker: TaskTracker,
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
    /// Plans the fleet, creates a certificate per host and starts serving.
    pub async fn start(config: TestbedConfig) -> Result<Testbed, TestbedError> {
        let plans = plan::plan(&config)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let acceptors = plans
            .iter()
            .map(|p| tls::acceptor(p, &provider))
            .collect::<Result<Vec<_>, _>>()?;
        let (port, listeners) = server::bind_all(&plans, config.port).await?;

        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let limit = Arc::new(Semaphore::new(server::MAX_CONNECTIONS));
        let mut truth = Vec::with_capacity(plans.len());
        for ((mut plan, acceptor), listener) in plans.into_iter().zip(acceptors).zip(listeners) {
            plan.truth.port = port;
            truth.push(plan.truth.clone());
            let host = Arc::new(server::HostState::new(plan, acceptor));
            tracker.spawn(server::accept_loop(
                listener,
                host,
                limit.clone(),
                cancel.clone(),
                tracker.clone(),
            ));
        }
        tracing::info!(hosts = truth.len(), port, net = %config.net.trunc(), "test-bed started");
        Ok(Testbed {
            port,
            net: config.net.trunc(),
            truth,
            cancel,
            tracker,
        })
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
        include_str!("../../surveyor-kb/data/exchange-builds.csv")
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
        assert!((0.71..0.79).contains(&share), "exchange share {share}");

        let mut families: HashMap<&str, usize> = HashMap::new();
        for ex in &exchange {
            *families.entry(ex.family.as_str()).or_default() += 1;
        }
        for (family, weight) in [
            ("SE", 0.08),
            ("2019", 0.45),
            ("2016", 0.40),
            ("2013", 0.04),
            ("2010", 0.03),
        ] {
            let got = families.get(family).copied().unwrap_or(0) as f64 / exchange.len() as f64;
            assert!((got - weight).abs() < 0.035, "{family}: {got} vs {weight}");
        }

        let others: HashSet<&str> = plan
            .iter()
            .filter(|h| h.exchange.is_none())
            .map(|h| h.persona.as_str())
            .collect();
        assert_eq!(others, HashSet::from(["iis-default", "nginx", "apache"]));

        let modern: Vec<&&TruthExchange> = exchange.iter().filter(|e| e.family != "2010").collect();
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
                (Some(ex), "exchange") => {
                    assert!(
                        rows.contains(&(ex.version_name.clone(), ex.build.clone())),
                        "{ex:?} not in the CSV"
                    );
                    assert_eq!(ex.build.split('.').count(), 4);
                    distinct.insert(ex.build.clone());
                }
                (None, "iis-default" | "nginx" | "apache") => {}
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
    }
}
