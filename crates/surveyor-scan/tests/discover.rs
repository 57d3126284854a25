//! Domain-seeded discovery against the test-bed's own DNS server on 127.0.0.1, and against a
//! loopback resolver that never answers. No query leaves 127.0.0.0/8.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use surveyor_scan::discover::{
    parse_domain_list, to_zgrab_csv, DiscoverOptions, DiscoveredTarget, Discoverer, DiscoveryStats,
    Seed, Via,
};
use surveyor_scan::targets::{parse_target_list, Entry, InputFormat};
use surveyor_testbed::{FleetOptions, Testbed, TestbedConfig, TruthHost};
use tokio::net::UdpSocket;

/// A discoverer that asks only `resolver`.
fn discoverer(resolver: SocketAddr, rate: u32, timeout: Duration) -> Discoverer {
    Discoverer::new(DiscoverOptions {
        resolvers: vec![resolver],
        rate_per_second: NonZeroU32::new(rate).unwrap(),
        concurrency: NonZeroUsize::new(8).unwrap(),
        timeout,
    })
    .unwrap()
}

fn seeds(domains: &[&str]) -> Vec<Seed> {
    domains
        .iter()
        .map(|d| Seed::new(d, None).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_the_fleet_through_the_testbed_dns() {
    let bed = Testbed::start_with(
        TestbedConfig {
            hosts: 80,
            seed: 40,
            net: "127.79.40.0/24".parse().unwrap(),
            port: 0,
        },
        FleetOptions {
            dns_port: Some(0),
            ..FleetOptions::default()
        },
    )
    .await
    .unwrap();
    let dns = bed.dns_addr().expect("the fleet runs DNS");
    assert!(dns.ip().is_loopback());
    let dns_client = discoverer(dns, 1_000, Duration::from_secs(2));

    finds_every_exchange_host_and_nothing_else(&dns_client, bed.truth()).await;
    domains_outside_the_fleet_yield_nothing(&dns_client, bed.truth()).await;
    reverse_names_follow_the_fleet(&dns_client, bed.truth()).await;

    // PTR answers are cached: with the server gone, a name seen before is still known.
    let host = bed
        .truth()
        .iter()
        .find(|h| h.exchange.is_some())
        .unwrap()
        .clone();
    bed.shutdown().await;
    assert_eq!(
        dns_client.reverse(host.ip).await,
        Some(format!("mail.{}", host.domain))
    );
}

async fn finds_every_exchange_host_and_nothing_else(dns: &Discoverer, truth: &[TruthHost]) {
    let domains: BTreeSet<&str> = truth.iter().map(|h| h.domain.as_str()).collect();
    let list: String = domains.iter().map(|d| format!("{d}\n")).collect();
    let seeds = parse_domain_list(&list).unwrap();
    let (targets, stats) = dns.discover(&seeds).await;

    let exchange: BTreeMap<IpAddr, &TruthHost> = truth
        .iter()
        .filter(|h| h.exchange.is_some())
        .map(|h| (h.ip, h))
        .collect();
    assert!(
        exchange.len() > 20,
        "the fleet has {} Exchange hosts",
        exchange.len()
    );
    assert!(
        exchange.len() < truth.len(),
        "the fleet has other hosts too"
    );

    let found: BTreeMap<(IpAddr, &str), &DiscoveredTarget> = targets
        .iter()
        .map(|t| ((t.ip, t.name.as_str()), t))
        .collect();
    for (ip, host) in &exchange {
        let mail = format!("mail.{}", host.domain);
        let autodiscover = format!("autodiscover.{}", host.domain);
        let by_mail = found.get(&(*ip, mail.as_str()));
        let by_autodiscover = found.get(&(*ip, autodiscover.as_str()));
        assert!(
            by_mail.is_some() || by_autodiscover.is_some(),
            "{ip} ({}) not found",
            host.domain
        );
        // The zone has both, and MX points at mail.<domain>.
        assert_eq!(by_mail.unwrap().via, Via::Mx, "{ip}");
        assert_eq!(by_autodiscover.unwrap().via, Via::Autodiscover, "{ip}");
        assert_eq!(by_mail.unwrap().organisation, host.domain);
    }
    for t in &targets {
        let host = exchange
            .get(&t.ip)
            .unwrap_or_else(|| panic!("{} ({}) is not an Exchange host", t.ip, t.name));
        assert!(
            t.name == format!("mail.{}", host.domain)
                || t.name == format!("autodiscover.{}", host.domain),
            "{t:?}"
        );
        assert_eq!(t.organisation, host.domain);
    }
    assert_eq!(targets.len(), 2 * exchange.len());
    assert!(
        targets
            .windows(2)
            .all(|w| (w[0].ip, &w[0].name) < (w[1].ip, &w[1].name)),
        "sorted and free of duplicates"
    );

    // Nine lookups per domain (MX, then A and AAAA of four names); the MX host is
    // mail.<domain>, which is among them. AAAA is always empty in the fleet.
    let n = domains.len() as u64;
    let with_exchange = exchange
        .values()
        .map(|h| h.domain.as_str())
        .collect::<BTreeSet<_>>()
        .len() as u64;
    assert_eq!(
        stats,
        DiscoveryStats {
            domains: n,
            queries: 9 * n,
            // MX, A of mail and A of autodiscover.
            answers: 3 * with_exchange,
            // AAAA of mail and autodiscover, and MX of domains without Exchange.
            no_data: 2 * with_exchange + (n - with_exchange),
            // The names that do not exist: owa and webmail everywhere, mail and autodiscover
            // where there is no Exchange.
            nxdomain: 4 * with_exchange + 8 * (n - with_exchange),
            refused: 0,
            timeouts: 0,
            failed: 0,
            targets: targets.len() as u64,
        }
    );

    // The output feeds the scanner's zgrab-csv input unchanged.
    let entries =
        parse_target_list(&to_zgrab_csv(&targets), "seeded.csv", InputFormat::Auto).unwrap();
    let read_back: Vec<(IpAddr, String)> = entries
        .iter()
        .map(|e| match e {
            Entry::Target(t) => (t.ip, t.domain.as_deref().unwrap_or_default().to_string()),
            Entry::Net(n) => panic!("{n} has lost its name"),
        })
        .collect();
    let expected: Vec<(IpAddr, String)> = targets.iter().map(|t| (t.ip, t.name.clone())).collect();
    assert_eq!(read_back, expected);
}

async fn domains_outside_the_fleet_yield_nothing(dns: &Discoverer, truth: &[TruthHost]) {
    // Outside every zone: the test-bed refuses, and the nine lookups count as refused.
    let (targets, stats) = dns.discover(&seeds(&["not-in-the-fleet.example"])).await;
    assert!(targets.is_empty(), "{targets:?}");
    assert_eq!((stats.domains, stats.queries, stats.refused), (1, 9, 9));
    assert_eq!(
        stats.answers + stats.nxdomain + stats.timeouts + stats.failed,
        0
    );

    // Inside a zone but not there: authoritative NXDOMAIN for all nine.
    let nope = format!("nope.{}", truth[0].domain);
    let (targets, stats) = dns.discover(&seeds(&[&nope])).await;
    assert!(targets.is_empty(), "{targets:?}");
    assert_eq!((stats.queries, stats.nxdomain), (9, 9));
    assert_eq!(
        stats.answers + stats.refused + stats.timeouts + stats.failed,
        0
    );
}

async fn reverse_names_follow_the_fleet(dns: &Discoverer, truth: &[TruthHost]) {
    for host in truth {
        let expected = match host.exchange {
            Some(_) => format!("mail.{}", host.domain),
            None => format!("www.{}", host.domain),
        };
        assert_eq!(dns.reverse(host.ip).await, Some(expected), "{}", host.ip);
    }
    let live: BTreeSet<IpAddr> = truth.iter().map(|h| h.ip).collect();
    let empty = (1..255u8)
        .map(|i| IpAddr::from([127, 79, 40, i]))
        .find(|ip| !live.contains(ip))
        .expect("most of the net is empty");
    assert_eq!(dns.reverse(empty).await, None, "{empty} has no host");
    // A name outside the fleet's reverse zones, asked of the test-bed (which refuses it).
    assert_eq!(dns.reverse("192.0.2.1".parse().unwrap()).await, None);
}

#[tokio::test]
async fn a_silent_resolver_counts_timeouts() {
    // Bound but never read: every query goes unanswered.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dns = discoverer(
        silent.local_addr().unwrap(),
        1_000,
        Duration::from_millis(200),
    );
    let started = Instant::now();
    let (targets, stats) = dns.discover(&seeds(&["quiet.example"])).await;
    assert!(targets.is_empty());
    assert_eq!((stats.queries, stats.timeouts), (9, 9));
    assert_eq!(
        stats.answers + stats.refused + stats.nxdomain + stats.failed,
        0
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(dns.reverse("127.0.0.1".parse().unwrap()).await, None);
}

#[tokio::test]
async fn lookups_keep_to_the_rate_limit() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Five a second, bursts of five: the ninth lookup cannot start before 0.8 s.
    let dns = discoverer(silent.local_addr().unwrap(), 5, Duration::from_millis(50));
    let started = Instant::now();
    let (_, stats) = dns.discover(&seeds(&["slow.example"])).await;
    assert_eq!(stats.queries, 9);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_malformed_line_is_refused_with_its_line_number() {
    let err = parse_domain_list(
        "# seeds\nstadtwerke-neustadt.example,DE-0001\n\nthis is not a domain\nok.example\n",
    )
    .unwrap_err();
    assert_eq!(err.line, 4);
    assert!(err.to_string().starts_with("line 4: "), "{err}");
}
