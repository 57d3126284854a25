//! SYN discovery in a private network namespace: every packet the sender emits is captured on
//! the namespace's loopback and checked against the exclusions, over random target lists,
//! block lists and seeds; and a sweep of a test-bed whose empty addresses are silent finds
//! every live host and probes it.
//!
//! Raw sockets and nftables only ever touch a namespace this test makes (`unshare -n`): the
//! outer test re-runs this binary inside one, where the inner test does the work. As root
//! (CI) both run; elsewhere the outer test says why it cannot and returns, and under
//! `CI=true` it fails instead.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use surveyor_scan::syn::{self, SynConfig, SOURCE_PORTS};
use surveyor_scan::targets::Entry;
use surveyor_scan::{Exclusions, Order, ScanConfig, TargetSpace};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const INSIDE: &str = "SURVEYOR_TEST_IN_NETNS";

/// Runs `test` of this binary inside a new network namespace; false when that is impossible
/// here (not root, no `unshare`) and we are not under CI.
fn in_namespace(test: &str) -> bool {
    let can = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !can {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the namespace tests: `unshare -n` failed (needs root and util-linux)"
        );
        eprintln!("skipping {test}: cannot make a network namespace here (needs root)");
        return false;
    }
    let status = Command::new("unshare")
        .arg("-n")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .status()
        .unwrap();
    assert!(status.success(), "{test} failed inside its namespace");
    true
}

fn inside() -> bool {
    if std::env::var_os(INSIDE).is_none() {
        return false;
    }
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success(), "ip link set lo up");
    true
}

/// Every TCP packet with only SYN set that leaves from one of our source ports, by
/// destination, captured by a raw socket on the namespace's loopback until `stop`.
fn capture(
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<(Ipv4Addr, u16)>> {
    use std::io::Read;
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    socket.set_recv_buffer_size(32 << 20).unwrap();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            let Ok(n) = (&socket).read(&mut buf) else {
                continue;
            };
            let p = &buf[..n];
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let t = &p[ihl..];
            let sport = u16::from_be_bytes([t[0], t[1]]);
            let dport = u16::from_be_bytes([t[2], t[3]]);
            let flags = t[13];
            if flags == 0x02 && SOURCE_PORTS.contains(&sport) {
                seen.push((Ipv4Addr::new(p[16], p[17], p[18], p[19]), dport));
            }
        }
        seen
    })
}

/// Lets this namespace's loopback take SYNs sent as frames (the link-layer path), or not (the
/// sweep then sends through the IP layer).
fn loopback_takes_frames(on: bool) {
    for knob in syn::LOOPBACK_KNOBS {
        let path = format!("/proc/sys/net/ipv4/conf/lo/{knob}");
        std::fs::write(&path, if on { "1" } else { "0" }).unwrap();
    }
}

/// A small deterministic generator for the random lists.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn no_syn_reaches_excluded_space() {
    in_namespace("capture_inside");
}

#[test]
fn capture_inside() {
    if !inside() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for seed in 1..=6u64 {
        // Both ways out: frames on the link layer, and the kernel's IP layer.
        let frames = seed % 2 == 0;
        loopback_takes_frames(frames);
        let mut rng = Lcg(seed);
        // Random prefixes in 127.64.0.0/10, plus documentation and private space that the
        // built-in exclusions must keep silent even when listed as targets.
        let mut nets: Vec<IpNet> = (0..3)
            .map(|_| {
                let base = 0x7f40_0000 | ((rng.next() as u32 & 0x3fff) << 8);
                let len = 22 + (rng.next() % 3) as u8;
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(base), len).unwrap().trunc())
            })
            .collect();
        nets.push("192.0.2.0/24".parse().unwrap());
        nets.push("10.9.8.0/28".parse().unwrap());
        let blocked: Vec<IpNet> = nets[..3]
            .iter()
            .map(|n| {
                let IpNet::V4(n) = n else { unreachable!() };
                let inner = u32::from(n.network()) + ((rng.next() as u32 % 4) << 6);
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(inner), 26).unwrap())
            })
            .collect();
        let exclusions = Exclusions::builtin(true).with_blocklist(blocked.clone());
        let ports = [443u16, 8443];
        let space = Arc::new(TargetSpace::new(
            nets.iter().copied().map(Entry::Net).collect(),
            &ports,
        ));
        let shards = 1 + (seed % 2) as u32;
        let order = Order {
            seed,
            shards,
            shard: (seed / 2) as u32 % shards,
        };
        let expected: BTreeSet<(Ipv4Addr, u16)> = space
            .walk(order, 0)
            .filter(|(_, t)| exclusions.allows(t.ip))
            .map(|(_, t)| match t.ip {
                IpAddr::V4(ip) => (ip, t.port),
                IpAddr::V6(_) => unreachable!(),
            })
            .collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let capturing = capture(stop.clone());
        std::thread::sleep(Duration::from_millis(50));
        let progress = Arc::new(surveyor_scan::ScanProgress::default());
        let stats = runtime.block_on(async {
            let mut source = syn::start(
                space.clone(),
                order,
                0,
                exclusions.clone(),
                SynConfig {
                    // The receiver must see every reset to count them; unpaced, a burst of
                    // thousands overflows a raw socket's buffer on two cores.
                    rate: std::num::NonZeroU32::new(50_000),
                    cooldown: Duration::from_millis(300),
                    source: Some(Ipv4Addr::LOCALHOST),
                    ..SynConfig::default()
                },
                progress,
                CancellationToken::new(),
            )
            .unwrap();
            assert_eq!(
                matches!(source.path, syn::Path::Link { .. }),
                frames,
                "seed {seed}: {}",
                source.path
            );
            // Nothing listens: the kernel resets every SYN, nothing opens.
            use surveyor_scan::TargetSource;
            assert!(source.next_target().await.is_none());
            source.stats.clone()
        });
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        let captured = capturing.join().unwrap();
        for (ip, port) in &captured {
            assert!(
                exclusions.allows(IpAddr::V4(*ip)),
                "seed {seed}: a SYN went to excluded {ip}:{port}"
            );
        }
        let distinct: BTreeSet<_> = captured.iter().copied().collect();
        assert_eq!(
            distinct, expected,
            "seed {seed}: exactly the allowed targets"
        );
        assert_eq!(captured.len(), expected.len(), "seed {seed}: each once");
        assert_eq!(stats.sent.load(Ordering::Relaxed), expected.len() as u64);
        assert_eq!(
            stats.closed.load(Ordering::Relaxed),
            expected.len() as u64,
            "seed {seed}: every SYN answered by a reset and validated"
        );
        assert!(stats.excluded.load(Ordering::Relaxed) > 0);
    }
}

/// A test-bed of `hosts` in `net`, the rest of `net` silent: nftables drops every packet to
/// an address of it that holds no host, as the Internet's empty space does.
async fn dark_bed(net: Ipv4Net, hosts: usize, seed: u64) -> surveyor_testbed::Testbed {
    let bed = surveyor_testbed::Testbed::start(surveyor_testbed::TestbedConfig {
        hosts,
        seed,
        net,
        port: 0,
    })
    .await
    .unwrap();
    let live: Vec<String> = bed.truth().iter().map(|h| h.ip.to_string()).collect();
    let rules = format!(
        "table ip dark {{\n\
           set live {{ type ipv4_addr; elements = {{ {} }}; }}\n\
           chain in {{ type filter hook input priority 0; \
             ip daddr {net} ip daddr != @live drop; }}\n\
         }}\n",
        live.join(", ")
    );
    let nft = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn();
    let mut nft = nft.expect("nft (Debian package nftables) is installed");
    use std::io::Write;
    nft.stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(nft.wait().unwrap().success(), "nft rules load");
    bed
}

/// The hosts of the test-bed that answer a probe.
fn answering(bed: &surveyor_testbed::Testbed) -> BTreeSet<IpAddr> {
    bed.truth()
        .iter()
        .filter(|h| h.expected_status.as_deref().is_none_or(|s| s == "success"))
        .map(|h| h.ip)
        .collect()
}

/// The L7 side of the sweeps below: no rates (the SYN sweep paces itself), short deadlines.
fn probe_config() -> ScanConfig {
    ScanConfig {
        rate: None,
        network_rate: None,
        host_rate: None,
        concurrency: 64,
        probe: surveyor_scan::ProbeConfig {
            connect_timeout: Duration::from_secs(2),
            target_timeout: Duration::from_secs(4),
            ..surveyor_scan::ProbeConfig::default()
        },
        ..ScanConfig::default()
    }
}

/// Probes what `source` yields until it ends: the addresses observed and their positions.
async fn probe_all(
    config: &ScanConfig,
    source: &mut syn::SynSource,
    exclusions: &Exclusions,
) -> (surveyor_scan::ScanStats, BTreeSet<IpAddr>, BTreeSet<u128>) {
    let (tx, mut rx) = mpsc::channel(1024);
    let collect = tokio::spawn(async move {
        let (mut seen, mut positions) = (BTreeSet::new(), BTreeSet::new());
        while let Some((position, obs)) = rx.recv().await {
            let obs: surveyor_model::Observation = obs;
            seen.insert(obs.ip);
            positions.insert(position);
        }
        (seen, positions)
    });
    let stats =
        surveyor_scan::run_source(config, source, exclusions, tx, CancellationToken::new()).await;
    let (seen, positions) = collect.await.unwrap();
    (stats, seen, positions)
}

#[test]
fn a_sweep_of_dark_space_finds_and_probes_every_live_host() {
    in_namespace("dark_sweep_inside");
}

#[test]
fn dark_sweep_inside() {
    if !inside() {
        return;
    }
    loopback_takes_frames(true);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let net: Ipv4Net = "127.60.0.0/22".parse().unwrap();
        let bed = dark_bed(net, 40, 3).await;

        let space = Arc::new(TargetSpace::new(
            vec![Entry::Net(IpNet::V4(net))],
            &[bed.port()],
        ));
        let exclusions = Exclusions::builtin(true);
        let config = probe_config();
        let mut source = syn::start(
            space.clone(),
            Order::default(),
            0,
            exclusions.clone(),
            SynConfig {
                cooldown: Duration::from_millis(500),
                source: Some(Ipv4Addr::LOCALHOST),
                ..SynConfig::default()
            },
            config.progress.clone(),
            CancellationToken::new(),
        )
        .unwrap();
        assert!(
            matches!(source.path, syn::Path::Link { .. }),
            "{}",
            source.path
        );
        let (stats, probed, observed) = probe_all(&config, &mut source, &exclusions).await;
        let syn = &source.stats;
        let answering = answering(&bed);
        assert!(!answering.is_empty());
        for ip in &answering {
            assert!(probed.contains(ip), "{ip} answers but was not probed");
        }
        // Only live hosts were probed: the dark addresses never answered a SYN.
        let live: BTreeSet<IpAddr> = bed.truth().iter().map(|h| h.ip).collect();
        assert!(probed.is_subset(&live));
        assert_eq!(syn.sent.load(Ordering::Relaxed), 1024);
        assert_eq!(
            stats.targets,
            syn.open.load(Ordering::Relaxed) - syn.dropped.load(Ordering::Relaxed)
        );
        // The frontier: the whole sweep settled, and only what produced an observation still
        // pending (its consumer completes it once stored).
        let frontier = config.progress.frontier();
        assert_eq!(frontier.pending, observed);
        assert_eq!(frontier.next, 1024);
        bed.shutdown().await;
    });
}

#[test]
fn an_interrupted_sweep_resumes_where_it_stopped() {
    in_namespace("resume_inside");
}

#[test]
fn resume_inside() {
    if !inside() {
        return;
    }
    loopback_takes_frames(true);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let net: Ipv4Net = "127.61.0.0/20".parse().unwrap();
        let bed = dark_bed(net, 60, 11).await;
        let space = Arc::new(TargetSpace::new(
            vec![Entry::Net(IpNet::V4(net))],
            &[bed.port()],
        ));
        let exclusions = Exclusions::builtin(true);
        let order = Order {
            seed: 5,
            ..Order::default()
        };
        let syn_config = SynConfig {
            // 4,096 SYNs take a second at least: the stop below comes mid-sweep.
            rate: std::num::NonZeroU32::new(4_000),
            cooldown: Duration::from_millis(500),
            source: Some(Ipv4Addr::LOCALHOST),
            ..SynConfig::default()
        };

        // The first run: stopped mid-sweep. Its observations count as stored (the pipeline
        // completes a position once its batch commits) except two, as if the scan was killed
        // before their batch went in.
        let first = probe_config();
        let stop = CancellationToken::new();
        let mut source = syn::start(
            space.clone(),
            order,
            0,
            exclusions.clone(),
            syn_config.clone(),
            first.progress.clone(),
            stop.clone(),
        )
        .unwrap();
        let stopping = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                stop.cancel();
            })
        };
        let (_, probed_first, observed) = probe_all(&first, &mut source, &exclusions).await;
        stopping.await.unwrap();
        let sent_first = source.stats.sent.load(Ordering::Relaxed);
        drop(source);
        let unstored: Vec<u128> = observed.iter().copied().take(2).collect();
        first
            .progress
            .complete(observed.iter().copied().filter(|p| !unstored.contains(p)));
        let checkpoint = first.progress.frontier();
        assert!(
            checkpoint.next > 0 && checkpoint.next < 4096,
            "stopped mid-sweep: {}",
            checkpoint.next
        );
        let unstored: BTreeSet<u128> = unstored.into_iter().collect();
        assert_eq!(checkpoint.pending, unstored);

        // The resumed run: what was pending first, then the sweep from the frontier on.
        let second = probe_config();
        second.progress.resume_from(checkpoint.clone());
        let mut source = syn::start(
            space.clone(),
            order,
            checkpoint.next,
            exclusions.clone(),
            syn_config,
            second.progress.clone(),
            CancellationToken::new(),
        )
        .unwrap();
        source.first(checkpoint.pending.iter().map(|&p| (p, space.at(order, p))));
        let (_, probed_second, observed_second) =
            probe_all(&second, &mut source, &exclusions).await;
        // Every SYN of the shard went out once over both runs.
        assert_eq!(
            sent_first + source.stats.sent.load(Ordering::Relaxed),
            4096,
            "first run sent {sent_first}, stopped at {}",
            checkpoint.next
        );
        assert!(checkpoint.pending.is_subset(&observed_second));
        let probed: BTreeSet<IpAddr> = probed_first.union(&probed_second).copied().collect();
        for ip in answering(&bed) {
            assert!(probed.contains(&ip), "{ip} answers but was never probed");
        }
        assert_eq!(second.progress.frontier().next, 4096);
        bed.shutdown().await;
    });
}
