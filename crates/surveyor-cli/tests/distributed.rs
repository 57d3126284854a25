//! The distributed census end to end on real PostgreSQL: three `surveyor worker` processes
//! over a 5,000-host test-bed on loopback, one killed with SIGKILL mid-shard. The survivors
//! take its shard over from its last checkpoint; every target is scanned once, no
//! observation is stored twice, and the census equals a single `surveyor scan` of the same
//! test-bed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use surveyor_scan::targets::Entry;
use surveyor_scan::{Order, TargetSpace};
use surveyor_store::testing;
use surveyor_store::{Dimension, JobState, ShardState, Store};

use common::{fleet, ok, surveyor, Worker};

const AS_OF: &str = "2026-11-23";
const NET: &str = "127.96.0.0/19";
const SEED: &str = "11";
const SHARDS: u32 = 3;

async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("the surveyor binary runs"))
        .await
        .unwrap()
}

fn worker(db: &str, id: &str) -> Worker {
    let child = surveyor()
        // A window of 256 (the old default), so that a worker killed mid-shard has taken only
        // part of its shard: `auto` would admit a test-sized shard whole at once.
        .args([
            "worker",
            "--db",
            db,
            "--id",
            id,
            "--lease",
            "2",
            "--concurrency",
            "256",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Worker(Some(child))
}

async fn wait(mut w: Worker) -> Output {
    let child = w.0.take().unwrap();
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every event line is JSON"))
        .collect()
}

/// The addresses of one shard, computed the way every worker computes them.
fn shard_addresses(port: u16, shard: u32) -> Vec<IpAddr> {
    let space = TargetSpace::new(vec![Entry::Net(NET.parse().unwrap())], &[port]);
    let order = Order {
        seed: SEED.parse().unwrap(),
        shards: SHARDS,
        shard,
    };
    space.walk(order, 0).map(|(_, t)| t.ip).collect()
}

/// Observations of a scan reduced to what a census is made of (the time of each probe
/// differs between runs; nothing else may).
async fn observed(store: &Store, scan: surveyor_store::ScanId) -> BTreeMap<(IpAddr, u16), Value> {
    store
        .scans
        .observations(scan)
        .await
        .unwrap()
        .into_iter()
        .map(|mut o| {
            o.observed_at = time::OffsetDateTime::UNIX_EPOCH;
            ((o.ip, o.port), serde_json::to_value(&o).unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_killed_make_the_census_of_one_scan() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    let bed = fleet(5_000, 17, NET).await;
    let port = bed.port();
    let store = surveyor_store::open(&db.url).await.unwrap();

    // 8,192 targets at 900/s over the census: each worker's 300/s makes a shard last about
    // nine seconds, so the kill lands mid-shard.
    let mut create = surveyor();
    create.args(["census", "create", "--db", &db.url, "--name", "bed"]);
    create.args(["--targets", NET, "--ports", &port.to_string(), "--shards"]);
    create.args([&SHARDS.to_string(), "--seed", SEED, "--allow-loopback"]);
    create.args(["--as-of", AS_OF, "--rate", "900", "--network-rate", "0"]);
    // The default 20 s deadline per target: no host of this fleet holds a probe, and a
    // shorter one cut probes short when the machine was busy (less evidence, another build).
    create.args(["--host-rate", "0"]);
    let out = run(create).await;
    ok(&out, "census create");
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["shards"], SHARDS);
    assert_eq!(created["targets"], "8192");
    let job = store.jobs.job("bed").await.unwrap().unwrap();

    let mut victim = worker(&db.url, "w1");
    let survivors = [worker(&db.url, "w2"), worker(&db.url, "w3")];

    // Wait until w1 holds a shard, has stored observations of it, and has checkpointed.
    let (shard, addresses) = loop {
        let shards = store.jobs.shards(job.id).await.unwrap();
        if let Some(s) = shards
            .iter()
            .find(|s| s.owner.as_deref() == Some("w1") && s.state == ShardState::Leased)
        {
            let addresses = shard_addresses(port, s.shard);
            let list: Vec<String> = addresses.iter().map(|ip| format!("'{ip}'")).collect();
            let stored = db
                .scalar(&format!(
                    "SELECT count(*) FROM observations WHERE scan_id = {} AND ip IN ({})",
                    job.scan.0,
                    list.join(",")
                ))
                .await;
            if stored > 0 && s.targets_done > 0 {
                break (s.shard, addresses);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    victim.0.as_mut().unwrap().kill().unwrap(); // SIGKILL: no release, no last checkpoint
    victim.0.take().unwrap().wait().unwrap();

    let left = store.jobs.shards(job.id).await.unwrap()[shard as usize].clone();
    assert_eq!(
        (left.state, left.owner.as_deref()),
        (ShardState::Leased, Some("w1")),
        "killed mid-shard, before its lease could be taken"
    );
    let checkpoint = left.checkpoint.clone().unwrap();
    let next: u64 = checkpoint["next"].as_str().unwrap().parse().unwrap();
    let pending = checkpoint["pending"].as_array().unwrap().len() as u64;
    assert!(left.targets_done > 0 && next < left.targets_total);

    let mut all_events = Vec::new();
    for w in survivors {
        let out = wait(w).await;
        ok(&out, "a surviving worker");
        all_events.extend(events(&out));
    }

    // A survivor took the shard over from w1's last checkpoint, and probed exactly what
    // that checkpoint left: the pending positions and everything past its frontier.
    let takeover: Vec<&Value> = all_events
        .iter()
        .filter(|e| e["event"] == "claimed" && e["shard"] == shard)
        .collect();
    assert_eq!(takeover.len(), 1, "{all_events:?}");
    assert_eq!(takeover[0]["lease"], 2, "the second lease of the shard");
    assert_eq!(takeover[0]["resumed_from"], left.targets_done);
    let done = all_events
        .iter()
        .find(|e| e["event"] == "done" && e["shard"] == shard)
        .unwrap();
    assert_eq!(done["worker"], takeover[0]["worker"]);
    assert_eq!(
        done["probed"].as_u64().unwrap() + done["excluded"].as_u64().unwrap(),
        pending + (left.targets_total - next)
    );
    let finished: Vec<&Value> = all_events
        .iter()
        .filter(|e| e["event"] == "finished")
        .collect();
    assert_eq!(
        finished.len(),
        1,
        "the scan is finished once: {all_events:?}"
    );
    assert_eq!(finished[0]["recorded"], true);

    // Every shard done, its walk complete with nothing pending.
    let job = store.jobs.job("bed").await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Finished);
    for s in store.jobs.shards(job.id).await.unwrap() {
        assert_eq!(s.state, ShardState::Done);
        let c = s.checkpoint.unwrap();
        assert_eq!(c["next"], s.targets_total.to_string(), "shard {}", s.shard);
        assert_eq!(c["pending"], serde_json::json!([]), "shard {}", s.shard);
    }

    // Every live host observed exactly once, in one finished scan.
    let scan = store.scans.scan(job.scan).await.unwrap().unwrap();
    assert!(scan.finished_at.is_some());
    let duplicates = db
        .scalar(&format!(
            "SELECT count(*) FROM (SELECT ip, port FROM observations WHERE scan_id = {} \
             GROUP BY scan_id, ip, port HAVING count(*) > 1) d",
            job.scan.0
        ))
        .await;
    assert_eq!(duplicates, 0);
    let rows = db
        .scalar(&format!(
            "SELECT count(*) FROM observations WHERE scan_id = {}",
            job.scan.0
        ))
        .await;
    assert_eq!(rows as usize, bed.truth().len());
    assert_eq!(scan.observations as usize, bed.truth().len());
    let census = observed(&store, job.scan).await;
    let truth: BTreeSet<IpAddr> = bed.truth().iter().map(|h| h.ip).collect();
    let seen: BTreeSet<IpAddr> = census.keys().map(|(ip, _)| *ip).collect();
    assert_eq!(seen, truth);
    assert!(addresses.iter().filter(|ip| truth.contains(ip)).count() > 0);

    // The same test-bed scanned by one `surveyor scan`: the same observations, the same census.
    let mut single = surveyor();
    single.args([
        "scan",
        NET,
        "--ports",
        &port.to_string(),
        "--allow-loopback",
    ]);
    single.args([
        "--as-of", AS_OF, "--db", &db.url, "--seed", SEED, "--rate", "0",
    ]);
    single.args(["--network-rate", "0", "--host-rate", "0"]);
    single.args(["--output", "/dev/null"]);
    ok(&run(single).await, "the single scan");
    let one = store
        .scans
        .scans()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id != job.scan)
        .unwrap();
    assert!(one.finished_at.is_some());
    let alone = observed(&store, one.id).await;
    let differing: Vec<_> = alone
        .iter()
        .filter(|(k, v)| census.get(*k) != Some(*v))
        .map(|(k, v)| {
            let other = census.get(k).cloned().unwrap_or_default();
            let fields: Vec<String> = v
                .as_object()
                .unwrap()
                .iter()
                .filter(|(f, x)| other.get(f.as_str()) != Some(*x))
                .map(|(f, x)| {
                    if f == "fingerprint" {
                        let a = x["evidence"].as_array().unwrap();
                        let b = other[f.as_str()]["evidence"].as_array().unwrap();
                        let only_a: Vec<_> = a.iter().filter(|e| !b.contains(e)).collect();
                        let only_b: Vec<_> = b.iter().filter(|e| !a.contains(e)).collect();
                        format!("evidence only single {only_a:?} / only census {only_b:?}")
                    } else {
                        format!("{f} differs")
                    }
                })
                .collect();
            (k, fields)
        })
        .take(3)
        .collect();
    assert!(
        differing.is_empty(),
        "single scan vs census: {differing:#?}"
    );
    assert_eq!(alone.len(), census.len());
    let dims = [
        Dimension::Family,
        Dimension::Cu,
        Dimension::Version,
        Dimension::Support,
        Dimension::Patch,
    ];
    let groups = |scan| {
        let store = store.clone();
        async move {
            store
                .census
                .statistics(scan, &dims, &Default::default())
                .await
                .unwrap()
        }
    };
    let (distributed, single) = (groups(job.scan).await, groups(one.id).await);
    assert!(!distributed.is_empty());
    assert_eq!(distributed, single);
    bed.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("s.db").display());
    let out = run({
        let mut c = surveyor();
        c.args(["census", "status", "--db", &sqlite]);
        c
    })
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs PostgreSQL"));

    let Some(db) = testing::postgres().await else {
        return;
    };
    let countries = dir.path().join("countries.txt");
    std::fs::write(&countries, "127.0.0.0/8 Germany\n").unwrap();
    let countries = countries.display().to_string();
    let cases: [(&[&str], &str); 7] = [
        (
            &["worker", "--country-table", &countries],
            "not a valid country table",
        ),
        (&["census", "pause", "nope"], "no census named \"nope\""),
        (&["census", "status", "--name", "nope"], "no census named"),
        (&["worker", "--name", "nope"], "no census named"),
        (
            &[
                "census",
                "create",
                "--name",
                "x",
                "--shards",
                "2",
                "--targets",
                "10.0.0.300/24",
            ],
            "10.0.0.300",
        ),
        (
            &[
                "census",
                "create",
                "--name",
                "x",
                "--shards",
                "0",
                "--targets",
                "127.0.0.1",
                "--allow-loopback",
            ],
            "--shards",
        ),
        (
            &["worker", "--lease", "2", "--heartbeat", "3"],
            "shorter than --lease",
        ),
    ];
    for (args, expected) in cases {
        let out = run({
            let mut c = surveyor();
            c.args(args).args(["--db", &db.url]);
            c
        })
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // The database gone: an error naming it, without its password.
    let out = run({
        let mut c = surveyor();
        c.args([
            "worker",
            "--db",
            "postgres://postgres:secret@127.0.0.1:1/none",
        ]);
        c
    })
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("could not open the store"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");

    // A worker with nothing to do says so and exits.
    let out = run({
        let mut c = surveyor();
        c.args(["worker", "--db", &db.url, "--id", "idle"]);
        c
    })
    .await;
    ok(&out, "an idle worker");
    let e = events(&out);
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0]["event"].as_str(), e[0]["worker"].as_str()),
        (Some("exit"), Some("idle"))
    );
}

/// Pause reaches a working worker at its heartbeat: it releases its shard with its checkpoint
/// and, with nothing left to wait for, exits; after resume a new worker continues from that
/// checkpoint and the census completes with every host once. Cancel leaves the scan
/// unfinished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_releases_and_resume_continues_from_the_checkpoint() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    let net = "127.97.0.0/22";
    let bed = fleet(300, 5, net).await;
    let store = surveyor_store::open(&db.url).await.unwrap();
    let port = bed.port().to_string();
    for name in ["slow", "doomed"] {
        let mut create = surveyor();
        create.args(["census", "create", "--db", &db.url, "--name", name]);
        create.args(["--targets", net, "--ports", &port, "--shards", "1"]);
        // 1,024 targets at 100/s: about ten seconds, so the pause lands mid-shard.
        create.args(["--allow-loopback", "--as-of", AS_OF, "--rate", "100"]);
        create.args(["--network-rate", "0", "--host-rate", "0"]);
        ok(&run(create).await, "census create");
    }
    let out = run({
        let mut c = surveyor();
        c.args(["census", "cancel", "--db", &db.url, "doomed"]);
        c
    })
    .await;
    ok(&out, "census cancel");
    let slow = store.jobs.job("slow").await.unwrap().unwrap();

    let first = worker(&db.url, "first");
    loop {
        let s = &store.jobs.shards(slow.id).await.unwrap()[0];
        if s.targets_done > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = run({
        let mut c = surveyor();
        c.args(["census", "pause", "--db", &db.url, "slow"]);
        c
    })
    .await;
    ok(&out, "census pause");
    let out = wait(first).await;
    ok(&out, "the paused worker");
    let e = events(&out);
    let released = e.iter().find(|e| e["event"] == "released").unwrap();
    assert_eq!(released["why"], "paused");
    let kept = store.jobs.shards(slow.id).await.unwrap()[0].clone();
    assert_eq!(kept.state, ShardState::Pending);
    assert_eq!(
        kept.targets_done,
        released["targets_done"].as_u64().unwrap()
    );
    assert!(kept.targets_done < kept.targets_total, "paused mid-shard");
    assert_eq!(e.last().unwrap()["event"], "exit");

    let out = run({
        let mut c = surveyor();
        c.args(["census", "status", "--db", &db.url, "--name", "slow"]);
        c.args(["--format", "json"]);
        c
    })
    .await;
    ok(&out, "census status");
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["state"], "paused");
    assert_eq!(status["targets_done"], kept.targets_done);
    assert_eq!(status["shard_list"][0]["leases"], 1);

    let out = run({
        let mut c = surveyor();
        c.args(["census", "resume", "--db", &db.url, "slow"]);
        c
    })
    .await;
    ok(&out, "census resume");
    let out = wait(worker(&db.url, "second")).await;
    ok(&out, "the resumed worker");
    let e = events(&out);
    let claimed: Vec<&Value> = e.iter().filter(|e| e["event"] == "claimed").collect();
    assert_eq!(
        claimed.len(),
        1,
        "only the running census is handed out: {e:?}"
    );
    assert_eq!(claimed[0]["census"], "slow");
    assert_eq!(claimed[0]["resumed_from"], kept.targets_done);
    assert!(e.iter().any(|e| e["event"] == "finished"));

    let slow = store.jobs.job("slow").await.unwrap().unwrap();
    assert_eq!(slow.state, JobState::Finished);
    let scan = store.scans.scan(slow.scan).await.unwrap().unwrap();
    assert!(scan.finished_at.is_some());
    assert_eq!(scan.observations as usize, bed.truth().len());
    let doomed = store.jobs.job("doomed").await.unwrap().unwrap();
    assert_eq!(doomed.state, JobState::Cancelled);
    let unfinished = store.scans.scan(doomed.scan).await.unwrap().unwrap();
    assert_eq!((unfinished.finished_at, unfinished.observations), (None, 0));
    bed.shutdown().await;
}
