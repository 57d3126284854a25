//! Domain-seeded discovery: from organisation domains to the addresses and names of their mail
//! front ends (MX hosts, `autodiscover`, `mail`, `owa`, `webmail`), resolved through an
//! explicitly configured DNS resolver, politely.
//!
//! Negative answers (NXDOMAIN, no data, REFUSED, timeouts, other failures) are data: they are
//! counted in [`DiscoveryStats`], never returned as errors. The only errors are a malformed seed
//! list ([`DomainListError`], with its line number) and an unusable configuration
//! ([`DiscoverError`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer, RetryDnsHandle};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{DnsRequestOptions, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig, TokioResolver};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// One organisation domain to discover, with the tag its targets carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Seed {
    domain: String,
    organisation: String,
}

impl Seed {
    /// A seed for `domain` (lower-cased, one trailing dot removed), tagged `tag` or, without
    /// one, with the domain itself.
    pub fn new(domain: &str, tag: Option<&str>) -> Result<Seed, InvalidSeed> {
        let domain = host_name(domain).map_err(|expected| InvalidSeed {
            input: domain.trim().to_string(),
            expected,
        })?;
        let organisation = match tag.map(str::trim).filter(|t| !t.is_empty()) {
            // The tag becomes a CSV column of the zgrab output; a comma or a line break would
            // split it.
            Some(t) if t.chars().any(|c| c == ',' || c.is_control()) => {
                return Err(InvalidSeed {
                    input: t.to_string(),
                    expected: "a TAG without commas or control characters",
                })
            }
            Some(t) => t.to_string(),
            None => domain.clone(),
        };
        Ok(Seed {
            domain,
            organisation,
        })
    }

    /// The domain, lower case, without a trailing dot.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The tag given in the input, or the domain.
    pub fn organisation(&self) -> &str {
        &self.organisation
    }
}

/// Why a domain or tag was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not {expected}")]
pub struct InvalidSeed {
    pub input: String,
    pub expected: &'static str,
}

/// A line of a domain list that is not understood. Fix the line; retrying will not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {source}")]
pub struct DomainListError {
    /// 1-based.
    pub line: usize,
    pub source: InvalidSeed,
}

/// Parses a domain list: one `domain` or `domain,TAG` per line; `#` starts a comment; blank
/// lines are skipped. Every other line is a seed or an error naming its line number.
pub fn parse_domain_list(text: &str) -> Result<Vec<Seed>, DomainListError> {
    let mut seeds = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (domain, tag) = match line.split_once(',') {
            Some((domain, tag)) => (domain, Some(tag)),
            None => (line, None),
        };
        let seed = Seed::new(domain, tag).map_err(|source| DomainListError {
            line: i + 1,
            source,
        })?;
        seeds.push(seed);
    }
    Ok(seeds)
}

/// Which query led to a target. The order is the order of preference when one address and
/// name were reached in several ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Via {
    /// An exchange host of the domain's MX records.
    Mx,
    /// `autodiscover.<domain>`.
    Autodiscover,
    /// `mail.<domain>`.
    Mail,
    /// `owa.<domain>`.
    Owa,
    /// `webmail.<domain>`.
    Webmail,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Mx => "mx",
            Via::Autodiscover => "autodiscover",
            Via::Mail => "mail",
            Via::Owa => "owa",
            Via::Webmail => "webmail",
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One address found for a seed, with the name to present to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiscoveredTarget {
    pub ip: IpAddr,
    /// The DNS name that led to the address (before CNAMEs), lower case, no trailing dot: sent
    /// as TLS SNI and HTTP Host.
    pub name: String,
    /// The seed's tag: the seed domain, or the tag given in the input.
    pub organisation: String,
    pub via: Via,
}

/// What discovery asked and what came back. Every lookup (one name, one record type) ends in
/// exactly one of `answers`, `no_data`, `nxdomain`, `refused`, `timeouts` or `failed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    /// Distinct seed domains looked at.
    pub domains: u64,
    /// Lookups handed to the resolver (one name and record type each; an answer from the
    /// resolver's cache counts too, and a retry inside one lookup does not).
    pub queries: u64,
    /// Lookups answered with at least one record of the type asked for.
    pub answers: u64,
    /// NOERROR without a record of that type (e.g. AAAA of an IPv4-only name).
    pub no_data: u64,
    pub nxdomain: u64,
    pub refused: u64,
    /// Lookups that got no answer within the per-query timeout.
    pub timeouts: u64,
    /// Other failures: SERVFAIL, I/O errors, malformed answers.
    pub failed: u64,
    /// Targets returned, after deduplication.
    pub targets: u64,
}

impl std::fmt::Display for DiscoveryStats {
    /// One line: what was looked up and how each lookup ended.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} domains, {} lookups ({} answered, {} no data, {} NXDOMAIN, {} refused, \
             {} timed out, {} failed), {} targets",
            self.domains,
            self.queries,
            self.answers,
            self.no_data,
            self.nxdomain,
            self.refused,
            self.timeouts,
            self.failed,
            self.targets
        )
    }
}

/// Resolver and politeness settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// Resolvers to ask (UDP, with TCP when an answer is truncated). There is no fallback to
    /// the system's configuration: without one, [`Discoverer::new`] refuses.
    pub resolvers: Vec<SocketAddr>,
    /// Lookups per second over all seeds (default 100).
    pub rate_per_second: NonZeroU32,
    /// Lookups in flight at once (default 16).
    pub concurrency: NonZeroUsize,
    /// How long one lookup may take, its one retry included (default 5 s).
    pub timeout: Duration,
}

impl Default for DiscoverOptions {
    fn default() -> DiscoverOptions {
        DiscoverOptions {
            resolvers: Vec::new(),
            rate_per_second: NonZeroU32::new(100).expect("100 is not zero"),
            concurrency: NonZeroUsize::new(16).expect("16 is not zero"),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why a [`Discoverer`] could not be built. These are configuration errors: retrying with the
/// same options fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoverError {
    #[error("no DNS resolver given (discovery never falls back to the system's resolvers)")]
    NoResolvers,
    #[error("the per-query DNS timeout must be longer than zero")]
    ZeroTimeout,
    #[error("cannot set up the DNS resolver: {reason}")]
    Resolver { reason: String },
}

/// A rate-limited, concurrency-bounded DNS client for discovery and PTR names. Cheap to clone;
/// clones share the rate limit, the concurrency bound and the cache.
#[derive(Clone)]
pub struct Discoverer {
    inner: Arc<Inner>,
}

impl fmt::Debug for Discoverer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discoverer")
            .field("resolvers", &self.inner.resolvers)
            .field("window", &self.inner.window)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl Discoverer {
    /// A client that asks only `options.resolvers`: no system configuration, no hosts file, no
    /// search domains.
    pub fn new(options: DiscoverOptions) -> Result<Discoverer, DiscoverError> {
        if options.resolvers.is_empty() {
            return Err(DiscoverError::NoResolvers);
        }
        if options.timeout.is_zero() {
            return Err(DiscoverError::ZeroTimeout);
        }
        let name_servers: Vec<NameServerConfig> = options
            .resolvers
            .iter()
            .map(|addr| {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut c| {
                        c.port = addr.port();
                        c
                    })
                    .collect();
                NameServerConfig::new(addr.ip(), true, connections)
            })
            .collect();
        let mut opts = ResolverOpts::default();
        // One retry for a lost datagram; each try gets half of the lookup's time.
        opts.attempts = 1;
        opts.timeout = options.timeout / 2;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.cache_size = CACHE_RESPONSES as u64;
        // Several resolvers are tried one after another, not all at once.
        opts.num_concurrent_reqs = 1;
        let setup = |e: NetError| DiscoverError::Resolver {
            reason: e.to_string(),
        };
        // PTR lookups bypass the stub resolver's special-use rules (RFC 6761), which would
        // answer every 127.0.0.0/8 address with `localhost` without asking anyone.
        let context = PoolContext::new(opts.clone(), TlsConfig::new().map_err(setup)?);
        let pool = NameServerPool::from_config(
            name_servers.clone(),
            Arc::new(context),
            TokioRuntimeProvider::default(),
        );
        let ptr_client = RetryDnsHandle::new(pool, opts.attempts);
        let config = ResolverConfig::from_parts(None, Vec::new(), name_servers);
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(setup)?;
        let window = options.concurrency.get();
        Ok(Discoverer {
            inner: Arc::new(Inner {
                resolver,
                ptr_client,
                ptr_cache: Mutex::new(HashMap::new()),
                resolvers: options.resolvers,
                limiter: RateLimiter::direct(Quota::per_second(options.rate_per_second)),
                permits: Semaphore::new(window),
                window,
                timeout: options.timeout,
            }),
        })
    }

    /// Resolves every seed's MX hosts and well-known names to addresses. Seeds are taken once
    /// per domain (the first tag wins). The targets are deduplicated on (ip, name) and sorted;
    /// when several seeds reach the same address and name, the seed whose domain the name lies
    /// in is preferred, then the first [`Via`], then the earlier seed.
    pub async fn discover(&self, seeds: &[Seed]) -> (Vec<DiscoveredTarget>, DiscoveryStats) {
        let counters = Arc::new(Counters::default());
        let mut domains = HashSet::new();
        let seeds: Vec<Seed> = seeds
            .iter()
            .filter(|s| domains.insert(s.domain.as_str()))
            .cloned()
            .collect();
        tracing::debug!(domains = seeds.len(), "discovery started");

        // A window of domains in flight; each runs up to nine lookups at once, and the
        // semaphore bounds the lookups over all of them.
        let mut hits: Vec<Hit> = Vec::new();
        let mut tasks = JoinSet::new();
        let mut queue = seeds.iter().enumerate();
        loop {
            while tasks.len() < self.inner.window {
                let Some((index, seed)) = queue.next() else {
                    break;
                };
                let (inner, counters, domain) =
                    (self.inner.clone(), counters.clone(), seed.domain.clone());
                tasks.spawn(async move { (index, inner.domain(&domain, &counters).await) });
            }
            match tasks.join_next().await {
                Some(Ok((seed, found))) => {
                    tracing::debug!(domain = %seeds[seed].domain, targets = found.len(), "domain resolved");
                    hits.extend(found.into_iter().map(|(ip, name, via)| Hit {
                        foreign: !in_domain(&name, &seeds[seed].domain),
                        ip,
                        name,
                        via,
                        seed,
                    }));
                }
                Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Some(Err(_)) => {}
                None => break,
            }
        }

        hits.sort_by(|a, b| {
            (a.ip, &a.name, a.foreign, a.via, a.seed)
                .cmp(&(b.ip, &b.name, b.foreign, b.via, b.seed))
        });
        hits.dedup_by(|later, first| later.ip == first.ip && later.name == first.name);
        let targets: Vec<DiscoveredTarget> = hits
            .into_iter()
            .map(|h| DiscoveredTarget {
                ip: h.ip,
                name: h.name,
                organisation: seeds[h.seed].organisation.clone(),
                via: h.via,
            })
            .collect();
        let mut stats = counters.stats();
        stats.domains = seeds.len() as u64;
        stats.targets = targets.len() as u64;
        tracing::info!(
            domains = stats.domains,
            queries = stats.queries,
            targets = stats.targets,
            nxdomain = stats.nxdomain,
            refused = stats.refused,
            timeouts = stats.timeouts,
            "discovery finished"
        );
        (targets, stats)
    }

    /// The PTR name of `ip` (lower case, no trailing dot; the first in order if there are
    /// several), under the same rate limit, concurrency bound and timeout as discovery, and
    /// cached. `None` when there is none, the answer is not a host name, or the lookup failed.
    ///
    /// Every address is asked of the configured resolvers, 127.0.0.0/8 and ::1 included (a
    /// stub resolver answers those itself with `localhost`; test-beds live there).
    pub async fn reverse(&self, ip: IpAddr) -> Option<String> {
        self.inner.reverse(ip).await
    }
}

/// One `IP,NAME,TAG,` line per target: ZGrab2's CSV as `surveyor scan` reads it (NAME becomes
/// SNI and Host; the empty PORT means every scanned port).
pub fn to_zgrab_csv(targets: &[DiscoveredTarget]) -> String {
    let mut out = String::new();
    for t in targets {
        // Seeds cannot carry such characters; a hand-built target must not break the line.
        let tag: String = t
            .organisation
            .trim()
            .chars()
            .map(|c| if c == ',' || c.is_control() { '_' } else { c })
            .collect();
        out.push_str(&format!("{},{},{},\n", t.ip, t.name, tag));
    }
    out
}

/// Responses kept in the resolver's cache (it honours TTLs), and PTR answers kept.
const CACHE_RESPONSES: usize = 4_096;

/// The longest a PTR answer is kept, whatever its TTL.
const MAX_TTL: Duration = Duration::from_secs(3_600);

/// How long a PTR lookup without a name (NXDOMAIN, no data, REFUSED) is kept.
const NEGATIVE_TTL: Duration = Duration::from_secs(300);

/// Exchange hosts followed per domain, lowest preference first: a bound on one zone's fan-out.
const MAX_EXCHANGES: usize = 16;

/// Names looked up under every seed domain besides its MX hosts.
const WELL_KNOWN: [(&str, Via); 4] = [
    ("autodiscover", Via::Autodiscover),
    ("mail", Via::Mail),
    ("owa", Via::Owa),
    ("webmail", Via::Webmail),
];

struct Inner {
    /// Forward lookups, with hickory's cache and CNAME following.
    resolver: TokioResolver,
    /// PTR lookups, straight to the configured resolvers.
    ptr_client: RetryDnsHandle<NameServerPool<TokioRuntimeProvider>>,
    /// PTR answers until their TTL (negative ones for [`NEGATIVE_TTL`]).
    ptr_cache: Mutex<HashMap<IpAddr, (Instant, Option<String>)>>,
    resolvers: Vec<SocketAddr>,
    limiter: DefaultDirectRateLimiter,
    permits: Semaphore,
    window: usize,
    timeout: Duration,
}

impl Inner {
    /// Every (address, name, via) of one domain; a name reached several ways keeps its first
    /// [`Via`].
    async fn domain(&self, domain: &str, counters: &Counters) -> Vec<(IpAddr, String, Via)> {
        let [n0, n1, n2, n3] = WELL_KNOWN.map(|(label, via)| (format!("{label}.{domain}"), via));
        let (exchanges, a0, a1, a2, a3) = tokio::join!(
            self.exchanges(domain, counters),
            self.addresses(&n0.0, counters),
            self.addresses(&n1.0, counters),
            self.addresses(&n2.0, counters),
            self.addresses(&n3.0, counters),
        );
        let mut names: BTreeMap<String, (Via, Vec<IpAddr>)> = BTreeMap::new();
        for ((name, via), ips) in [(n0, a0), (n1, a1), (n2, a2), (n3, a3)] {
            names.insert(name, (via, ips));
        }
        for exchange in exchanges {
            match names.get_mut(&exchange) {
                // Usually `mail.<domain>`: already resolved above.
                Some((via, _)) => *via = Via::Mx,
                None => {
                    let ips = self.addresses(&exchange, counters).await;
                    names.insert(exchange, (Via::Mx, ips));
                }
            }
        }
        names
            .into_iter()
            .flat_map(|(name, (via, ips))| ips.into_iter().map(move |ip| (ip, name.clone(), via)))
            .collect()
    }

    /// The domain's MX hosts that are host names, by preference, at most [`MAX_EXCHANGES`].
    async fn exchanges(&self, domain: &str, counters: &Counters) -> Vec<String> {
        let Answer::Records(records) = self.lookup(fqdn(domain), RecordType::MX, counters).await
        else {
            return Vec::new();
        };
        let mut mx: Vec<(u16, String)> = records
            .iter()
            .filter_map(|r| match &r.data {
                // A null MX (RFC 7505, exchange ".") fails the host-name rule and is skipped.
                RData::MX(mx) => match host_name(&mx.exchange.to_ascii()) {
                    Ok(host) => Some((mx.preference, host)),
                    Err(_) => {
                        tracing::debug!(domain, exchange = %mx.exchange, "MX exchange is not a host name");
                        None
                    }
                },
                _ => None,
            })
            .collect();
        mx.sort();
        let mut seen = HashSet::new();
        mx.into_iter()
            .map(|(_, host)| host)
            .filter(|host| seen.insert(host.clone()))
            .take(MAX_EXCHANGES)
            .collect()
    }

    /// A and AAAA of `host`, CNAMEs followed by the resolver.
    async fn addresses(&self, host: &str, counters: &Counters) -> Vec<IpAddr> {
        let (v4, v6) = tokio::join!(
            self.lookup(fqdn(host), RecordType::A, counters),
            self.lookup(fqdn(host), RecordType::AAAA, counters),
        );
        let mut ips = Vec::new();
        for answer in [v4, v6] {
            if let Answer::Records(records) = answer {
                ips.extend(records.iter().filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                    _ => None,
                }));
            }
        }
        ips.sort();
        ips.dedup();
        ips
    }

    /// A forward lookup through the stub resolver.
    async fn lookup(&self, name: Name, rtype: RecordType, counters: &Counters) -> Answer {
        let query = || async move {
            let lookup = self.resolver.lookup(name, rtype).await?;
            Ok(lookup.answers().to_vec())
        };
        self.guarded(rtype, counters, query).await
    }

    /// A PTR lookup, from the cache or from the configured resolvers.
    async fn reverse(&self, ip: IpAddr) -> Option<String> {
        let now = Instant::now();
        if let Some((until, name)) = self.ptr_cache().get(&ip) {
            if *until > now {
                return name.clone();
            }
        }
        let mut name = Name::from(ip);
        name.set_fqdn(true);
        let query = || async move {
            let query = Query::query(name, RecordType::PTR);
            let response = self
                .ptr_client
                .lookup(query, DnsRequestOptions::default())
                .first_answer()
                .await?;
            Ok(response.answers.clone())
        };
        let answer = self
            .guarded(RecordType::PTR, &Counters::default(), query)
            .await;
        let (ttl, found) = match &answer {
            Answer::Records(records) => {
                let ttl = records.iter().map(|r| r.ttl).min().unwrap_or(0);
                let name = records
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::PTR(ptr) => host_name(&ptr.0.to_ascii()).ok(),
                        _ => None,
                    })
                    .min();
                (Duration::from_secs(u64::from(ttl)).min(MAX_TTL), name)
            }
            Answer::NoData | Answer::NxDomain | Answer::Refused => (NEGATIVE_TTL, None),
            // Worth asking again next time.
            Answer::Timeout | Answer::Failed => return None,
        };
        let mut cache = self.ptr_cache();
        if cache.len() >= CACHE_RESPONSES {
            cache.retain(|_, (until, _)| *until > now);
            if cache.len() >= CACHE_RESPONSES {
                cache.clear();
            }
        }
        cache.insert(ip, (now + ttl, found.clone()));
        found
    }

    fn ptr_cache(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, Option<String>)>> {
        self.ptr_cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One lookup under the concurrency bound, the rate limit and the timeout, classified and
    /// counted. `query` is called only once the lookup may leave.
    async fn guarded<Q, F>(&self, rtype: RecordType, counters: &Counters, query: Q) -> Answer
    where
        Q: FnOnce() -> F,
        F: Future<Output = Result<Vec<Record>, NetError>>,
    {
        // The permit is taken before the rate limit so that lookups released together by
        // the semaphore still leave at the configured rate.
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.limiter.until_ready().await;
        counters.queries.fetch_add(1, Ordering::Relaxed);
        let answer = match tokio::time::timeout(self.timeout, query()).await {
            Err(_elapsed) => Answer::Timeout,
            Ok(Ok(records)) => {
                // CNAMEs on the way are followed, not returned.
                let records: Vec<Record> = records
                    .into_iter()
                    .filter(|r| r.record_type() == rtype)
                    .collect();
                if records.is_empty() {
                    Answer::NoData
                } else {
                    Answer::Records(records)
                }
            }
            Ok(Err(error)) => classify(&error),
        };
        counters.count(&answer);
        answer
    }
}

/// Hickory's outcome mapped to ours, so that nothing of hickory's error types leaks out.
fn classify(error: &NetError) -> Answer {
    match error {
        NetError::Timeout => Answer::Timeout,
        NetError::Dns(DnsError::NoRecordsFound(no)) => match no.response_code {
            ResponseCode::NXDomain => Answer::NxDomain,
            ResponseCode::Refused => Answer::Refused,
            ResponseCode::NoError => Answer::NoData,
            _ => Answer::Failed,
        },
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => Answer::Refused,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain)) => Answer::NxDomain,
        other => {
            tracing::debug!(error = %other, "DNS lookup failed");
            Answer::Failed
        }
    }
}

enum Answer {
    /// At least one record of the type asked for.
    Records(Vec<Record>),
    NoData,
    NxDomain,
    Refused,
    Timeout,
    Failed,
}

#[derive(Default)]
struct Counters {
    queries: AtomicU64,
    answers: AtomicU64,
    no_data: AtomicU64,
    nxdomain: AtomicU64,
    refused: AtomicU64,
    timeouts: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    fn count(&self, answer: &Answer) {
        let counter = match answer {
            Answer::Records(_) => &self.answers,
            Answer::NoData => &self.no_data,
            Answer::NxDomain => &self.nxdomain,
            Answer::Refused => &self.refused,
            Answer::Timeout => &self.timeouts,
            Answer::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn stats(&self) -> DiscoveryStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DiscoveryStats {
            queries: get(&self.queries),
            answers: get(&self.answers),
            no_data: get(&self.no_data),
            nxdomain: get(&self.nxdomain),
            refused: get(&self.refused),
            timeouts: get(&self.timeouts),
            failed: get(&self.failed),
            ..DiscoveryStats::default()
        }
    }
}

/// A target candidate before deduplication.
struct Hit {
    ip: IpAddr,
    name: String,
    /// The name lies outside the seed's domain (false sorts first, so the owner wins).
    foreign: bool,
    via: Via,
    seed: usize,
}

/// A validated host name as a fully qualified [`Name`]; the text was checked by [`host_name`].
fn fqdn(host: &str) -> Name {
    let mut name = Name::from_ascii(host).expect("checked host names are valid DNS names");
    name.set_fqdn(true);
    name
}

fn in_domain(name: &str, domain: &str) -> bool {
    name == domain
        || name
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// Top-level labels that never name an organisation's hosts.
const SPECIAL_USE: [&str; 5] = ["localhost", "local", "invalid", "onion", "arpa"];

/// A host name in the form Surveyor keeps it: ASCII, lower case, no trailing dot, at least two
/// labels of letters, digits and inner hyphens, and not an IP address.
fn host_name(input: &str) -> Result<String, &'static str> {
    const EXPECTED: &str = "a domain name (letters, digits and hyphens, at least two labels)";
    let s = input.trim();
    let s = s.strip_suffix('.').unwrap_or(s);
    if !s.is_ascii() {
        return Err("a domain name in ASCII (give an internationalised name in its xn-- form)");
    }
    let s = s.to_ascii_lowercase();
    let labels: Vec<&str> = s.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let top = labels.last().copied().unwrap_or("");
    let top_is_numeric = top.bytes().all(|b| b.is_ascii_digit());
    if s.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) || top_is_numeric {
        return Err(EXPECTED);
    }
    // A stub resolver answers these itself (RFC 6761: `localhost` and 127.0.0.0/8's reverse
    // zone are loopback, `invalid` and `onion` do not exist), so names in them would yield
    // targets nobody was asked about.
    if SPECIAL_USE.contains(&top) {
        return Err("a public domain name (not under localhost, local, invalid, onion or arpa)");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::{parse_target_list, Entry, InputFormat};

    /// The one place tests touch the list parser: text → `domain tag` strings, or the error.
    fn check(text: &str, expected: Result<&[&str], &str>) {
        let got = parse_domain_list(text).map(|seeds| {
            seeds
                .iter()
                .map(|s| format!("{} {}", s.domain(), s.organisation()))
                .collect::<Vec<_>>()
        });
        match expected {
            Ok(want) => assert_eq!(got.unwrap(), want, "{text:?}"),
            Err(want) => {
                let err = got.unwrap_err().to_string();
                assert!(err.starts_with(want), "{text:?}: {err}");
            }
        }
    }

    #[test]
    fn domain_lists() {
        check(
            "# seeds for the October census\n\nStadtwerke-Neustadt.Example.\npraxis-weber.example, DE-MED-0042 # a practice\n  hochschule-x.example  \n",
            Ok(&[
                "stadtwerke-neustadt.example stadtwerke-neustadt.example",
                "praxis-weber.example DE-MED-0042",
                "hochschule-x.example hochschule-x.example",
            ]),
        );
        check("", Ok(&[]));
        check("# only a comment\n\n", Ok(&[]));
        check("a.example,\n", Ok(&["a.example a.example"]));
        check(
            "xn--mnchen-3ya.example",
            Ok(&["xn--mnchen-3ya.example xn--mnchen-3ya.example"]),
        );
        check(
            "ok.example\n\nbad domain.example\n",
            Err("line 3: \"bad domain.example\" is not a domain name"),
        );
        check(
            "münchen.example",
            Err("line 1: \"münchen.example\" is not a domain name in ASCII"),
        );
        check("localhost", Err("line 1:"));
        check("198.51.100.7", Err("line 1:"));
        check("-bad.example", Err("line 1:"));
        check("bad-.example", Err("line 1:"));
        check("a..example", Err("line 1:"));
        check(".", Err("line 1:"));
        check("under_score.example", Err("line 1:"));
        check(
            "x.localhost",
            Err("line 1: \"x.localhost\" is not a public domain name"),
        );
        check(
            "40.79.127.in-addr.arpa",
            Err("line 1: \"40.79.127.in-addr.arpa\" is not a public"),
        );
        check("printer.local", Err("line 1:"));
        check(&format!("{}.example", "a".repeat(64)), Err("line 1:"));
        check(
            "ok.example\nok.example,a,b\n",
            Err("line 2: \"a,b\" is not a TAG without commas"),
        );
    }

    #[test]
    fn list_errors_carry_the_line_number() {
        let err = parse_domain_list("a.example\n# note\nnot a domain\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert_eq!(err.source.input, "not a domain");
    }

    #[test]
    fn zgrab_csv_is_read_back_by_the_target_parser() {
        let targets = vec![
            DiscoveredTarget {
                ip: "127.79.40.7".parse().unwrap(),
                name: "autodiscover.stadtwerke-neustadt.example".into(),
                organisation: "stadtwerke-neustadt.example".into(),
                via: Via::Autodiscover,
            },
            DiscoveredTarget {
                ip: "127.79.40.7".parse().unwrap(),
                name: "mail.stadtwerke-neustadt.example".into(),
                organisation: "stadtwerke-neustadt.example".into(),
                via: Via::Mx,
            },
            DiscoveredTarget {
                ip: "2001:db8::25".parse().unwrap(),
                name: "mx01.provider.example".into(),
                organisation: "DE-MED-0042".into(),
                via: Via::Mx,
            },
            DiscoveredTarget {
                ip: "198.51.100.9".parse().unwrap(),
                name: "owa.hand-built.example".into(),
                organisation: "a tag, with a comma\n".into(),
                via: Via::Owa,
            },
        ];
        let csv = to_zgrab_csv(&targets);
        assert!(csv.starts_with(
            "127.79.40.7,autodiscover.stadtwerke-neustadt.example,stadtwerke-neustadt.example,\n"
        ));
        assert_eq!(csv.lines().count(), targets.len());
        let want: Vec<(IpAddr, String)> = targets.iter().map(|t| (t.ip, t.name.clone())).collect();
        for format in [InputFormat::Auto, InputFormat::ZgrabCsv] {
            let entries = parse_target_list(&csv, "discovered.csv", format).unwrap();
            let got: Vec<(IpAddr, String)> = entries
                .iter()
                .map(|e| match e {
                    Entry::Target(t) => {
                        // No PORT: probed on every port of the scan.
                        assert_eq!(t.port, 0);
                        (t.ip, t.domain.as_deref().unwrap().to_string())
                    }
                    Entry::Net(n) => panic!("{n} has lost its name"),
                })
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn names_in_a_domain() {
        assert!(in_domain("mail.a.example", "a.example"));
        assert!(in_domain("a.example", "a.example"));
        assert!(!in_domain("mail.aa.example", "a.example"));
        assert!(!in_domain("mx.provider.example", "a.example"));
    }

    #[test]
    fn options_are_checked() {
        let no_resolver = Discoverer::new(DiscoverOptions::default()).unwrap_err();
        assert_eq!(no_resolver, DiscoverError::NoResolvers);
        let zero = Discoverer::new(DiscoverOptions {
            resolvers: vec!["127.0.0.1:53".parse().unwrap()],
            timeout: Duration::ZERO,
            ..DiscoverOptions::default()
        })
        .unwrap_err();
        assert_eq!(zero, DiscoverError::ZeroTimeout);
    }

    #[test]
    fn stats_read_as_one_line() {
        let stats = DiscoveryStats {
            domains: 2,
            queries: 9,
            answers: 4,
            no_data: 1,
            nxdomain: 1,
            refused: 1,
            timeouts: 1,
            failed: 1,
            targets: 3,
        };
        assert_eq!(
            stats.to_string(),
            "2 domains, 9 lookups (4 answered, 1 no data, 1 NXDOMAIN, 1 refused, 1 timed out, \
             1 failed), 3 targets"
        );
    }
}
