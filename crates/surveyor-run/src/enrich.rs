//! Enrichment, the stage between the engine and the output: each observation is judged with
//! the knowledge base, placed in an AS and a country, and attributed to an organisation, with
//! a PTR name looked up where the certificate and the prefixes say nothing.
//!
//! A PTR lookup waits on a resolver, so the stage runs up to [`ENRICH_WINDOW`] observations at
//! once (`buffer_unordered`): a slow resolver delays the observations waiting for it, not the
//! ones behind them. Observations leave in the order they are ready, as they leave the probe
//! window: nothing downstream reads their order (a checkpoint marks positions, whatever their
//! order). The window is also the stage's memory bound; the engine's channel behind it fills
//! when the stage is full, and backpressure reaches the probe window as before.

use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use surveyor_kb::KnowledgeBase;
use surveyor_model::{Attribution, AttributionRule, Observation, Signal};
use surveyor_scan::discover::Discoverer;
use time::Date;
use tokio::sync::mpsc;

/// Observations in the enrichment stage at once. PTR lookups among them are bounded further by
/// the resolver client's own window and rate (`DiscoverOptions`: 16 in flight, 100 a second).
pub const ENRICH_WINDOW: usize = 256;

/// What enrichment knows: the knowledge base and its day, the registry, the routing and
/// country tables, and the resolver for PTR names.
#[derive(Debug)]
pub struct Enricher {
    pub kb: Arc<KnowledgeBase>,
    pub as_of: Date,
    /// `None` before the first registry import: nothing is attributed.
    pub attributor: Option<surveyor_attrib::Attributor>,
    /// `None`: no DNS at all.
    pub ptr: Option<Discoverer>,
    pub asns: Option<Arc<surveyor_attrib::AsnTable>>,
    pub countries: Option<Arc<surveyor_attrib::CountryTable>>,
}

impl Enricher {
    /// One observation, judged, placed and attributed.
    pub async fn enrich(&self, mut obs: Observation) -> Observation {
        obs.exchange = self.kb.classify(&obs.fingerprint, self.as_of);
        obs.asn = self.asns.as_ref().and_then(|t| t.lookup(obs.ip));
        if let Some(attributor) = &self.attributor {
            obs.attribution = attribute(attributor, &obs, None);
            // PTR only where the certificate and the prefixes said nothing (it outranks only
            // the NTLM domain and the AS): it costs a rate-limited lookup.
            let weak = obs.attribution.as_ref().is_none_or(|a| {
                matches!(a.rule, AttributionRule::NtlmDomain | AttributionRule::Asn)
            });
            if let (true, Some(ptr)) = (weak, &self.ptr) {
                if let Some(name) = ptr.reverse(obs.ip).await {
                    obs.attribution = attribute(attributor, &obs, Some(&name));
                }
            }
        }
        obs.country = self
            .countries
            .as_ref()
            .and_then(|t| t.lookup(obs.ip))
            .or_else(|| {
                let (attributor, a) = (self.attributor.as_ref()?, obs.attribution.as_ref()?);
                attributor.country_of(&a.organisation).map(str::to_owned)
            });
        obs
    }
}

/// The stage: (position, observation) pairs from the engine, enriched, at most `window` at
/// once, in the order they are ready. It ends when the engine's channel closes and the last
/// one is through.
pub fn stage(
    enricher: &Enricher,
    rx: mpsc::Receiver<(u128, Observation)>,
    window: usize,
) -> impl Stream<Item = (u128, Observation)> + '_ {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .map(move |(position, obs)| async move { (position, enricher.enrich(obs).await) })
    .buffer_unordered(window.max(1))
}

/// What the scan saw of a server that can name its organisation.
fn attribute(
    attributor: &surveyor_attrib::Attributor,
    obs: &Observation,
    ptr_name: Option<&str>,
) -> Option<Attribution> {
    let ntlm_dns_domain = obs
        .fingerprint
        .of(Signal::NtlmDnsDomain)
        .next()
        .map(|e| e.value.as_str());
    attributor.attribute(&surveyor_attrib::Evidence {
        ip: obs.ip,
        certificate_names: obs.tls.as_ref().map_or(&[], |tls| tls.names.as_slice()),
        ptr_name,
        ntlm_dns_domain,
        asn: obs.asn,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;

    pub(crate) fn observation(i: u8) -> Observation {
        Observation {
            ip: std::net::IpAddr::from([192, 0, 2, i]),
            port: 443,
            scheme: surveyor_model::Scheme::Https,
            observed_at: time::OffsetDateTime::UNIX_EPOCH,
            status: surveyor_model::Status::Success,
            error: None,
            tls: None,
            http_server: None,
            fingerprint: surveyor_model::Fingerprint::default(),
            exchange: None,
            attribution: None,
            asn: None,
            country: None,
        }
    }

    /// A resolver on 127.0.0.1 that answers every PTR query with `mail.example.org` after
    /// `delay`, each query on its own task (as a real resolver serves many at once).
    async fn slow_resolver(delay: Duration) -> SocketAddr {
        let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let query = buf[..n].to_vec();
                let socket = socket.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Some(answer) = ptr_answer(&query, "mail.example.org") {
                        let _ = socket.send_to(&answer, from).await;
                    }
                });
            }
        });
        addr
    }

    /// A DNS answer to `query` (one question) with one PTR record naming `name`.
    fn ptr_answer(query: &[u8], name: &str) -> Option<Vec<u8>> {
        let mut end = 12;
        while *query.get(end)? != 0 {
            end += 1 + usize::from(query[end]);
        }
        let question = query.get(12..end + 5)?;
        let mut rdata = Vec::new();
        for label in name.split('.') {
            rdata.push(label.len() as u8);
            rdata.extend_from_slice(label.as_bytes());
        }
        rdata.push(0);
        let mut out = query[..2].to_vec();
        out.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        out.extend_from_slice(question);
        // The question's name by pointer, PTR, IN, a TTL of 300 s, then the name.
        out.extend_from_slice(&[0xc0, 0x0c, 0, 12, 0, 1, 0, 0, 1, 44]);
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
        Some(out)
    }

    /// Forty servers that only a PTR name attributes, behind a resolver that takes 400 ms per
    /// answer: one at a time that is 16 s; the stage overlaps the lookups.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_resolver_does_not_serialise_the_stage() {
        let resolver = slow_resolver(Duration::from_millis(400)).await;
        let registry = surveyor_attrib::Registry::parse(
            "id,name,sector,domains\nexample,Example,energy,example.org\n",
            surveyor_attrib::Format::Csv,
        )
        .unwrap();
        let enricher = Enricher {
            kb: Arc::new(KnowledgeBase::builtin().clone()),
            as_of: time::macros::date!(2026 - 11 - 23),
            attributor: Some(surveyor_attrib::Attributor::new(&registry)),
            ptr: Some(
                Discoverer::new(surveyor_scan::discover::DiscoverOptions {
                    resolvers: vec![resolver],
                    ..Default::default()
                })
                .unwrap(),
            ),
            asns: None,
            countries: None,
        };
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            for i in 1..=40u8 {
                tx.send((u128::from(i), observation(i))).await.unwrap();
            }
        });
        let started = std::time::Instant::now();
        let out: Vec<(u128, Observation)> = stage(&enricher, rx, ENRICH_WINDOW).collect().await;
        let took = started.elapsed();
        assert_eq!(out.len(), 40);
        let mut positions: Vec<u128> = out.iter().map(|(p, _)| *p).collect();
        positions.sort_unstable();
        assert_eq!(positions, (1..=40).collect::<Vec<u128>>());
        for (_, obs) in &out {
            let a = obs
                .attribution
                .as_ref()
                .expect("attributed by its PTR name");
            assert_eq!(
                (a.organisation.as_str(), a.rule),
                ("example", AttributionRule::PtrDomain)
            );
        }
        // 16 lookups in flight (the resolver client's bound): three rounds of 400 ms.
        assert!(took < Duration::from_secs(5), "took {took:?}");

        // A window of one is the old serial loop: each observation waits for the one before.
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            for i in 41..=45u8 {
                tx.send((u128::from(i), observation(i))).await.unwrap();
            }
        });
        let started = std::time::Instant::now();
        let serial: Vec<_> = stage(&enricher, rx, 1).collect().await;
        assert_eq!(serial.len(), 5);
        assert!(started.elapsed() >= Duration::from_millis(5 * 400));
    }
}
