//! The scan engine: a bounded window of probes over a lazily expanded target space, streaming
//! observations into a channel. It knows nothing of where observations go.

mod danger;
pub mod fingerprint;
mod probe;
pub mod targets;
mod tls;

use std::time::Duration;

use surveyor_model::Observation;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use targets::{Exclusions, Target, TargetError};

/// Probe settings, validated by the binary before a scan starts.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Time allowed for the TCP handshake.
    pub connect_timeout: Duration,
    /// One deadline for everything done with one target.
    pub target_timeout: Duration,
    /// Bytes of each response body kept; the rest is not read.
    pub max_body_bytes: usize,
    /// Bound on a response head (status line and headers).
    pub max_header_bytes: usize,
    /// Identifies the scanner and says where to learn about it or opt out.
    pub user_agent: String,
}

impl Default for ProbeConfig {
    fn default() -> ProbeConfig {
        ProbeConfig {
            connect_timeout: Duration::from_secs(5),
            target_timeout: Duration::from_secs(20),
            max_body_bytes: 256 * 1024,
            max_header_bytes: 64 * 1024,
            user_agent: default_user_agent(None),
        }
    }
}

/// `Surveyor/<version> (+<info url>)`: operators who see us in their logs can find out who is
/// scanning and why.
pub fn default_user_agent(info_url: Option<&str>) -> String {
    let url = info_url.unwrap_or("https://github.com/surveyor-census/surveyor");
    format!(
        "Mozilla/5.0 (compatible; Surveyor/{}; +{url})",
        env!("CARGO_PKG_VERSION")
    )
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub probe: ProbeConfig,
    /// Targets in flight at once.
    pub concurrency: usize,
}

impl Default for ScanConfig {
    fn default() -> ScanConfig {
        ScanConfig {
            probe: ProbeConfig::default(),
            concurrency: 256,
        }
    }
}

/// Counters of a finished scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub targets: u64,
    pub refused: u64,
    pub timed_out: u64,
    /// Targets that accepted a connection: each produced one observation.
    pub connected: u64,
    /// True when the scan stopped early on cancellation.
    pub cancelled: bool,
}

/// Probes every target, at most `concurrency` at a time, sending one observation per target
/// that accepted a connection. Backpressure: when the receiver is slow, the window stops
/// admitting targets. Returns when all targets are done or `cancel` fires.
pub async fn run<I>(
    config: &ScanConfig,
    targets: I,
    out: mpsc::Sender<Observation>,
    cancel: CancellationToken,
) -> ScanStats
where
    I: IntoIterator<Item = Target>,
{
    let tls = probe::tls_connector();
    let probe_config = std::sync::Arc::new(config.probe.clone());
    let window = config.concurrency.max(1);
    let mut stats = ScanStats::default();
    let mut in_flight = JoinSet::new();
    let mut targets = targets.into_iter();
    loop {
        while in_flight.len() < window && !cancel.is_cancelled() {
            let Some(target) = targets.next() else { break };
            stats.targets += 1;
            let (tls, cfg, out) = (tls.clone(), probe_config.clone(), out.clone());
            in_flight.spawn(async move {
                let result = probe::probe(target, &cfg, &tls).await;
                if let Ok(obs) = &result {
                    // A closed receiver means the consumer is gone; the scan winds down.
                    let _ = out.send(obs.clone()).await;
                }
                result.map(|_| ())
            });
        }
        let next = tokio::select! {
            next = in_flight.join_next() => next,
            () = cancel.cancelled() => {
                stats.cancelled = true;
                in_flight.abort_all();
                while in_flight.join_next().await.is_some() {}
                break;
            }
        };
        match next {
            None => break,
            Some(Ok(Ok(()))) => stats.connected += 1,
            Some(Ok(Err(probe::Silent::Refused))) => stats.refused += 1,
            Some(Ok(Err(probe::Silent::Timeout))) => stats.timed_out += 1,
            Some(Err(join_error)) => {
                tracing::error!(%join_error, "a probe task failed");
            }
        }
    }
    stats
}
