//! A census in SYN mode end to end: `surveyor census create --discovery syn` on real
//! PostgreSQL, two `surveyor worker` processes sweeping its shards with SYNs at their share of
//! the census's rate, and every live host of a test-bed found once.
//!
//! Raw sockets only ever touch a private network namespace (`unshare -n`): the outer test
//! re-runs this binary inside one, where the inner test does the work; PostgreSQL is reached
//! through its Unix socket, which a network namespace does not hide. As root (CI) both run;
//! elsewhere the outer test says why it cannot and returns, and under `CI=true` it fails
//! instead.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use surveyor_store::testing;
use surveyor_store::{JobState, ShardState};

use common::{fleet, ok, surveyor, Worker};

const INSIDE: &str = "SURVEYOR_TEST_IN_NETNS";
/// Where PostgreSQL listens besides TCP (Debian's default `unix_socket_directories`).
const SOCKET_DIR: &str = "/var/run/postgresql";
const NET: &str = "127.62.0.0/22";
const RATE: u32 = 2000;

/// Runs `test` of this binary inside a new network namespace; false when that is impossible
/// here (not root, no `unshare`, no PostgreSQL socket) and we are not under CI.
fn in_namespace(test: &str) -> bool {
    let socket = Path::new(SOCKET_DIR).join(".s.PGSQL.5432");
    let can = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let why = if !can {
        "cannot make a network namespace here (needs root and util-linux)".to_string()
    } else if !socket.exists() {
        format!("PostgreSQL has no Unix socket at {}", socket.display())
    } else {
        let status = Command::new("unshare")
            .arg("-n")
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(INSIDE, "1")
            .env(
                "SURVEYOR_TEST_PG",
                format!("postgres://postgres@localhost/postgres?host={SOCKET_DIR}"),
            )
            .status()
            .unwrap();
        assert!(status.success(), "{test} failed inside its namespace");
        return true;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI must run the SYN census test: {why}"
    );
    eprintln!("skipping {test}: {why}");
    false
}

impl Worker {
    fn wait(mut self) -> Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

#[test]
fn a_syn_census_by_two_workers_finds_every_live_host() {
    in_namespace("syn_census_inside");
}

#[test]
fn syn_census_inside() {
    if std::env::var_os(INSIDE).is_none() {
        return;
    }
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success(), "ip link set lo up");
    // Loopback takes SYNs sent as frames (the link-layer path) only with these; set inside
    // this namespace, never outside.
    for knob in surveyor_scan::syn::LOOPBACK_KNOBS {
        std::fs::write(format!("/proc/sys/net/ipv4/conf/lo/{knob}"), "1").unwrap();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = testing::postgres()
            .await
            .expect("PostgreSQL over its socket");
        let bed = fleet(60, 9, NET).await;
        let port = bed.port().to_string();

        let mut create = surveyor();
        create.args(["census", "create", "--db", &db.url, "--name", "syn"]);
        create.args(["--targets", NET, "--ports", &port, "--shards", "6"]);
        create.args(["--allow-loopback", "--as-of", "2026-11-23", "--seed", "3"]);
        create.args(["--discovery", "syn", "--cooldown", "1"]);
        create.args(["--rate", &RATE.to_string(), "--network-rate", "0"]);
        create.args(["--host-rate", "0"]);
        let out = tokio::task::spawn_blocking(move || create.output().unwrap())
            .await
            .unwrap();
        ok(&out, "census create --discovery syn");
        let store = surveyor_store::open(&db.url).await.unwrap();
        let job = store.jobs.job("syn").await.unwrap().unwrap();
        assert_eq!(job.params["discovery"], "syn", "{}", job.params);
        assert_eq!(job.params["version"], 2);

        let start = |id: &str| {
            let child = surveyor()
                .args(["worker", "--db", &db.url, "--id", id, "--lease", "4"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            Worker(Some(child))
        };
        let workers = [start("a"), start("b")];
        let mut events: Vec<Value> = Vec::new();
        for w in workers {
            let out = tokio::task::spawn_blocking(move || w.wait()).await.unwrap();
            ok(&out, "a SYN worker");
            events.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(|l| serde_json::from_str::<Value>(l).expect("JSON events")),
            );
        }

        // Both workers swept shards, each at its share of the census's rate: the whole rate
        // alone, half of it while both held a lease.
        let claimed: Vec<&Value> = events.iter().filter(|e| e["event"] == "claimed").collect();
        assert_eq!(claimed.len(), 6, "{events:#?}");
        let by: BTreeSet<&str> = claimed
            .iter()
            .filter_map(|e| e["worker"].as_str())
            .collect();
        assert_eq!(by, BTreeSet::from(["a", "b"]), "{events:#?}");
        let shares: Vec<(u64, u64)> = events
            .iter()
            .filter(|e| e["event"] == "claimed" || e["event"] == "rate")
            .map(|e| {
                (
                    e["live_leases"].as_u64().unwrap(),
                    e["rate"].as_u64().unwrap(),
                )
            })
            .collect();
        for &(live, rate) in &shares {
            assert_eq!(rate, u64::from(RATE) / live.max(1), "{shares:?}");
        }
        assert!(shares.iter().any(|&(live, _)| live == 2), "{shares:?}");
        assert_eq!(
            events.iter().filter(|e| e["event"] == "finished").count(),
            1,
            "{events:#?}"
        );

        // Every shard done, the census's one scan finished, and every live host in it once.
        let job = store.jobs.job("syn").await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Finished);
        for s in store.jobs.shards(job.id).await.unwrap() {
            assert_eq!(s.state, ShardState::Done, "shard {}", s.shard);
        }
        let scan = store.scans.scan(job.scan).await.unwrap().unwrap();
        assert!(scan.finished_at.is_some());
        let observations = store.scans.observations(job.scan).await.unwrap();
        let seen: Vec<IpAddr> = observations.iter().map(|o| o.ip).collect();
        let unique: BTreeSet<IpAddr> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "no host stored twice");
        let truth: BTreeSet<IpAddr> = bed.truth().iter().map(|h| h.ip).collect();
        assert_eq!(unique, truth);
        bed.shutdown().await;
    });
}
