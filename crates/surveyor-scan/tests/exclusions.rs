//! Property: not one connection reaches an excluded address, and every allowed address is
//! probed exactly once, whatever the prefixes, blocklist, seed and sharding.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use proptest::prelude::*;
use surveyor_scan::targets::Entry;
use surveyor_scan::{Exclusions, Order, ProbeConfig, ScanConfig, TargetSpace};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A prefix inside 127.80.0.0/24, where every test address lives.
fn prefix() -> impl Strategy<Value = Ipv4Net> {
    (0u8..=255, 26u8..=32).prop_map(|(host, len)| {
        Ipv4Net::new(Ipv4Addr::new(127, 80, 0, host), len)
            .unwrap()
            .trunc()
    })
}

fn inside(nets: &[Ipv4Net], ip: Ipv4Addr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Pure walk: what the engine is offered, filtered as the engine filters it.
    #[test]
    fn the_walk_admits_exactly_the_allowed_addresses(
        targets in prop::collection::vec(prefix(), 1..4),
        blocked in prop::collection::vec(prefix(), 0..4),
        seed in any::<u64>(),
        shards in 1u32..4,
    ) {
        let exclusions = Exclusions::builtin(true).with_blocklist(blocked.iter().map(|n| IpNet::V4(*n)));
        let space = TargetSpace::new(targets.iter().map(|n| Entry::Net(IpNet::V4(*n))).collect(), &[443]);
        let mut admitted: BTreeMap<IpAddr, u32> = BTreeMap::new();
        for shard in 0..shards {
            for (_, t) in space.walk(Order { seed, shards, shard }, 0) {
                if exclusions.allows(t.ip) {
                    *admitted.entry(t.ip).or_default() += 1;
                }
            }
        }
        for n in &targets {
            for ip in n.hosts().chain([n.network(), n.broadcast()]) {
                let expected = u32::from(!inside(&blocked, ip));
                // Overlapping target prefixes list an address more than once, on purpose.
                let listed = targets.iter().filter(|t| t.contains(&ip)).count() as u32;
                prop_assert_eq!(admitted.get(&IpAddr::V4(ip)).copied().unwrap_or(0), expected * listed);
            }
        }
    }
}

/// Real sockets: listeners on every address of a /29, some of it blocklisted. The excluded
/// listeners must see no connection at all.
#[test]
fn excluded_listeners_see_no_connection() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 12,
        ..ProptestConfig::default()
    });
    runner
        .run(&(prop::collection::vec(0u8..8, 0..5), any::<u64>()), |(blocked_hosts, seed)| {
            runtime.block_on(async {
                let base = [127, 80, 1, 0];
                let first = TcpListener::bind("127.80.1.0:0").await.unwrap();
                let port = first.local_addr().unwrap().port();
                let mut listeners = vec![first];
                for host in 1..8u8 {
                    listeners.push(TcpListener::bind((Ipv4Addr::new(base[0], base[1], base[2], host), port)).await.unwrap());
                }
                let accepted: Vec<Arc<AtomicU64>> = (0..8).map(|_| Arc::new(AtomicU64::new(0))).collect();
                let stop = CancellationToken::new();
                for (listener, count) in listeners.into_iter().zip(&accepted) {
                    let (count, stop) = (count.clone(), stop.clone());
                    tokio::spawn(async move {
                        loop {
                            tokio::select! {
                                Ok(_) = listener.accept() => { count.fetch_add(1, Ordering::SeqCst); }
                                () = stop.cancelled() => break,
                            }
                        }
                    });
                }
                let blocked: Vec<IpNet> = blocked_hosts.iter().map(|h| IpNet::from(IpAddr::V4(Ipv4Addr::new(127, 80, 1, *h)))).collect();
                let exclusions = Exclusions::builtin(true).with_blocklist(blocked);
                let space = TargetSpace::new(vec![Entry::Net("127.80.1.0/29".parse().unwrap())], &[port]);
                let (tx, mut rx) = mpsc::channel(64);
                tokio::spawn(async move { while rx.recv().await.is_some() {} });
                let config = ScanConfig {
                    probe: ProbeConfig { connect_timeout: Duration::from_millis(300), target_timeout: Duration::from_millis(300), ..ProbeConfig::default() },
                    concurrency: 8,
                    rate: None,
                    network_rate: None,
                    host_rate: None,
                    ..ScanConfig::default()
                };
                let targets = space.walk(Order { seed, ..Order::default() }, 0);
                let stats = surveyor_scan::run(&config, targets, &exclusions, tx, CancellationToken::new()).await;
                stop.cancel();
                for host in 0..8u8 {
                    let n = accepted[host as usize].load(Ordering::SeqCst);
                    let expected = u64::from(!blocked_hosts.contains(&host));
                    prop_assert_eq!(n, expected, "host .{} blocked={}", host, blocked_hosts.contains(&host));
                }
                prop_assert_eq!(stats.targets + stats.excluded, 8);
                Ok(())
            })
        })
        .unwrap();
}
