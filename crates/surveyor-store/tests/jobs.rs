//! The census jobs aggregate on real PostgreSQL (never skipped under `CI=true`): creation,
//! claims under contention, lease expiry and takeover, heartbeats, the one finish, pause,
//! resume and cancel; and the plain refusal on SQLite.

use std::time::Duration;

use serde_json::json;
use surveyor_store::testing;
use surveyor_store::{
    open, Beat, CensusJob, Claim, Completion, Control, JobState, NewCensusJob, NewScan, ScanId,
    ShardLease, ShardProgress, ShardState, Store, StoreError,
};
use time::macros::date;
use time::OffsetDateTime;

/// Long enough never to expire during a test.
const LONG: Duration = Duration::from_secs(600);
/// Short enough that waiting for it costs little.
const SHORT: Duration = Duration::from_millis(50);

async fn pg() -> Option<(testing::TestDb, Store)> {
    let db = testing::postgres().await?;
    let store = open(&db.url).await.unwrap();
    Some((db, store))
}

async fn job(store: &Store, name: &str, shards: &[u64]) -> CensusJob {
    let scan = store
        .scans
        .begin_scan(&NewScan {
            started_at: OffsetDateTime::now_utc(),
            as_of: date!(2026 - 11 - 23),
            targets: "192.0.2.0/24".into(),
            ports: vec![443],
            tool_version: "test".into(),
            kb: None,
        })
        .await
        .unwrap();
    store
        .jobs
        .create_job(&NewCensusJob {
            name: name.into(),
            scan,
            params: json!({"targets": ["192.0.2.0/24"], "seed": 1}),
            shard_targets: shards.to_vec(),
        })
        .await
        .unwrap()
}

fn progress(done: u64) -> ShardProgress {
    ShardProgress {
        checkpoint: json!({"next": done.to_string(), "pending": []}),
        targets_done: done,
    }
}

fn shard(claim: Claim) -> ShardLease {
    match claim {
        Claim::Shard(lease) => lease,
        other => panic!("expected a shard, got {other:?}"),
    }
}

/// Claims until something other than `Idle` comes (a lease has to expire first).
async fn claim_after_expiry(store: &Store, owner: &str) -> Claim {
    loop {
        match store.jobs.claim(owner, LONG, None).await.unwrap() {
            Claim::Idle { outstanding } => {
                assert!(outstanding > 0, "nothing left to wait for");
                tokio::time::sleep(SHORT).await;
            }
            other => return other,
        }
    }
}

#[tokio::test]
async fn a_job_is_created_with_pending_shards_and_a_unique_name() {
    let Some((_db, store)) = pg().await else {
        return;
    };
    let created = job(&store, "de-2026-11", &[86, 85, 85]).await;
    assert_eq!(
        (created.name.as_str(), created.state, created.shards),
        ("de-2026-11", JobState::Running, 3)
    );
    assert_eq!(created.params["seed"], 1);
    assert_eq!(
        store.jobs.job("de-2026-11").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.jobs.job("nope").await.unwrap(), None);
    assert_eq!(store.jobs.jobs().await.unwrap(), vec![created.clone()]);
    let shards = store.jobs.shards(created.id).await.unwrap();
    let summary: Vec<_> = shards
        .iter()
        .map(|s| (s.shard, s.state, s.targets_total, s.targets_done, s.leases))
        .collect();
    assert_eq!(
        summary,
        [
            (0, ShardState::Pending, 86, 0, 0),
            (1, ShardState::Pending, 85, 0, 0),
            (2, ShardState::Pending, 85, 0, 0)
        ]
    );
    assert!(shards
        .iter()
        .all(|s| s.owner.is_none() && s.checkpoint.is_none()));

    let again = NewCensusJob {
        name: "de-2026-11".into(),
        scan: created.scan,
        params: json!({}),
        shard_targets: vec![1],
    };
    let err = store.jobs.create_job(&again).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidQuery(m) if m.contains("exists already")),
        "{err}"
    );
    let no_scan = NewCensusJob {
        name: "other".into(),
        scan: ScanId(9999),
        ..again.clone()
    };
    assert!(matches!(
        store.jobs.create_job(&no_scan).await,
        Err(StoreError::UnknownScan(ScanId(9999)))
    ));
    let no_shards = NewCensusJob {
        name: "other".into(),
        shard_targets: vec![],
        ..again
    };
    assert!(matches!(
        store.jobs.create_job(&no_shards).await,
        Err(StoreError::InvalidQuery(_))
    ));
    assert_eq!(
        store.jobs.jobs().await.unwrap().len(),
        1,
        "nothing half made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_never_take_one_shard_twice() {
    let Some((_db, store)) = pg().await else {
        return;
    };
    let created = job(&store, "c", &[10, 10, 10]).await;
    let claims = (0..6).map(|i| {
        let store = store.clone();
        async move { store.jobs.claim(&format!("w{i}"), LONG, None).await }
    });
    let claims = futures_join_all(claims).await;
    let mut shards = Vec::new();
    let mut idle = 0;
    for claim in claims {
        match claim.unwrap() {
            Claim::Shard(lease) => {
                assert_eq!(
                    (lease.job.id, lease.leases, lease.checkpoint),
                    (created.id, 1, None)
                );
                shards.push(lease.shard);
            }
            Claim::Idle { outstanding } => {
                assert_eq!(outstanding, 3, "three shards held by live leases");
                idle += 1;
            }
            Claim::Finish(job) => panic!("nothing to finish: {job:?}"),
        }
    }
    shards.sort_unstable();
    assert_eq!((shards, idle), (vec![0, 1, 2], 3));
    let owners: std::collections::BTreeSet<_> = store
        .jobs
        .shards(created.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            assert_eq!(s.state, ShardState::Leased);
            s.owner.unwrap()
        })
        .collect();
    assert_eq!(owners.len(), 3, "three different workers");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_from_its_last_checkpoint() {
    let Some((_db, store)) = pg().await else {
        return;
    };
    let created = job(&store, "t", &[100]).await;
    let a = shard(store.jobs.claim("a", LONG, None).await.unwrap());
    assert_eq!(a.live_leases, 1);
    let key = a.key();
    let beat = store
        .jobs
        .heartbeat(key, "a", LONG, &progress(40))
        .await
        .unwrap();
    assert_eq!(
        beat,
        Beat::Held {
            job_state: JobState::Running,
            live_leases: 1
        }
    );
    // While A's lease lives, B gets nothing but is told to wait: the shard is outstanding.
    assert_eq!(
        store.jobs.claim("b", LONG, None).await.unwrap(),
        Claim::Idle { outstanding: 1 }
    );
    // A's last heartbeat asks for a short lease, and A dies: B takes the shard over.
    store
        .jobs
        .heartbeat(key, "a", SHORT, &progress(40))
        .await
        .unwrap();
    let b = shard(claim_after_expiry(&store, "b").await);
    assert_eq!(b.shard, 0);
    assert_eq!(b.leases, 2);
    assert_eq!(b.targets_done, 40);
    assert_eq!(b.checkpoint, Some(progress(40).checkpoint));
    // A, late, can write nothing more for the shard.
    assert_eq!(
        store
            .jobs
            .heartbeat(key, "a", LONG, &progress(90))
            .await
            .unwrap(),
        Beat::Lost
    );
    assert!(!store.jobs.release(key, "a", &progress(90)).await.unwrap());
    assert_eq!(
        store
            .jobs
            .complete(key, "a", LONG, &progress(100))
            .await
            .unwrap(),
        Completion::Lost
    );
    let s = &store.jobs.shards(created.id).await.unwrap()[0];
    assert_eq!(
        (s.state, s.owner.as_deref(), s.targets_done),
        (ShardState::Leased, Some("b"), 40)
    );
    assert!(s.lease_expires.unwrap() > store.jobs.now().await.unwrap());
    assert_eq!(
        store
            .jobs
            .complete(key, "b", LONG, &progress(100))
            .await
            .unwrap(),
        Completion::Last
    );
}

#[tokio::test]
async fn a_heartbeat_extends_the_lease_and_counts_live_leases() {
    let Some((_db, store)) = pg().await else {
        return;
    };
    let created = job(&store, "h", &[5, 5, 5]).await;
    let a = shard(store.jobs.claim("a", LONG, None).await.unwrap());
    let b = shard(store.jobs.claim("b", LONG, None).await.unwrap());
    assert_eq!((a.live_leases, b.live_leases), (1, 2));
    let before = store.jobs.shards(created.id).await.unwrap()[0].lease_expires;
    let beat = store
        .jobs
        .heartbeat(a.key(), "a", LONG * 2, &progress(3))
        .await
        .unwrap();
    assert_eq!(
        beat,
        Beat::Held {
            job_state: JobState::Running,
            live_leases: 2
        }
    );
    let after = &store.jobs.shards(created.id).await.unwrap()[0];
    assert!(after.lease_expires > before, "extended");
    assert_eq!(after.targets_done, 3);
    assert_eq!(after.checkpoint, Some(progress(3).checkpoint));
    // A worker that stops cleanly gives the shard back with its progress.
    assert!(store
        .jobs
        .release(b.key(), "b", &progress(2))
        .await
        .unwrap());
    let c = shard(store.jobs.claim("c", LONG, None).await.unwrap());
    assert_eq!((c.shard, c.targets_done, c.leases), (1, 2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_of_concurrent_completions_finishes_the_job_once() {
    let Some((_db, store)) = pg().await else {
        return;
    };
    for round in 0..5 {
        let created = job(&store, &format!("f{round}"), &[1, 1, 1]).await;
        let leases: Vec<(String, ShardLease)> = futures_join_all(["a", "b", "c"].map(|w| {
            let store = store.clone();
            async move {
                let lease = shard(store.jobs.claim(w, LONG, None).await.unwrap());
                (w.to_string(), lease)
            }
        }))
        .await;
        let completions = futures_join_all(leases.into_iter().map(|(holder, lease)| {
            let store = store.clone();
            async move {
                let done = store
                    .jobs
                    .complete(lease.key(), &holder, LONG, &progress(1))
                    .await
                    .unwrap();
                (holder, done)
            }
        }))
        .await;
        let last: Vec<&String> = completions
            .iter()
            .filter(|(_, c)| *c == Completion::Last)
            .map(|(w, _)| w)
            .collect();
        assert_eq!(last.len(), 1, "round {round}: {completions:?}");
        assert_eq!(
            store.jobs.job(&created.name).await.unwrap().unwrap().state,
            JobState::Finishing
        );
        let loser = completions
            .iter()
            .find(|(_, c)| *c == Completion::Done)
            .map(|(w, _)| w)
            .unwrap();
        assert!(!store.jobs.finished(created.id, loser).await.unwrap());
        assert!(store.jobs.finished(created.id, last[0]).await.unwrap());
        let finished = store.jobs.job(&created.name).await.unwrap().unwrap();
        assert_eq!(finished.state, JobState::Finished);
        assert!(finished.finished_at.is_some());
        assert!(!store.jobs.finished(created.id, last[0]).await.unwrap());
    }
    assert_eq!(
        store.jobs.claim("z", LONG, None).await.unwrap(),
        Claim::Idle { outstanding: 0 }
    );
}

#[tokio::test]
async fn a_finisher_that_dies_is_replaced() {
    let Some((_db, store)) = pg().await else {
        return;
    };
    let created = job(&store, "d", &[7]).await;
    let a = shard(store.jobs.claim("a", LONG, None).await.unwrap());
    assert_eq!(
        store
            .jobs
            .complete(a.key(), "a", SHORT, &progress(7))
            .await
            .unwrap(),
        Completion::Last
    );
    // A dies before marking the scan finished; once its finish lease runs out, B finishes.
    match claim_after_expiry(&store, "b").await {
        Claim::Finish(job) => assert_eq!(job.id, created.id),
        other => panic!("expected the finish, got {other:?}"),
    }
    assert!(!store.jobs.finished(created.id, "a").await.unwrap());
    assert!(store.jobs.finished(created.id, "b").await.unwrap());
}

#[tokio::test]
async fn pause_resume_and_cancel_reach_workers_at_their_heartbeat() {
    let Some((_db, store)) = pg().await else {
        return;
    };
    let created = job(&store, "p", &[50, 50]).await;
    let a = shard(store.jobs.claim("a", LONG, None).await.unwrap());
    assert_eq!(
        store.jobs.control("p", Control::Pause).await.unwrap(),
        Some(JobState::Paused)
    );
    assert_eq!(
        store
            .jobs
            .heartbeat(a.key(), "a", LONG, &progress(20))
            .await
            .unwrap(),
        Beat::Held {
            job_state: JobState::Paused,
            live_leases: 1
        }
    );
    // Nothing of a paused job is handed out, nor waited for.
    assert_eq!(
        store.jobs.claim("b", LONG, None).await.unwrap(),
        Claim::Idle { outstanding: 0 }
    );
    assert!(store
        .jobs
        .release(a.key(), "a", &progress(20))
        .await
        .unwrap());
    // The pause is timed by the database, once however often it is repeated.
    let paused = store.jobs.job("p").await.unwrap().unwrap();
    assert!(paused.paused_at.is_some() && paused.paused_seconds == 0.0);
    store.jobs.control("p", Control::Pause).await.unwrap();
    let again = store.jobs.job("p").await.unwrap().unwrap();
    assert_eq!(again.paused_at, paused.paused_at);
    assert_eq!(
        store.jobs.control("p", Control::Resume).await.unwrap(),
        Some(JobState::Running)
    );
    let resumed = store.jobs.job("p").await.unwrap().unwrap();
    let now = store.jobs.now().await.unwrap();
    let pause = (now - paused.paused_at.unwrap()).as_seconds_f64();
    assert!(resumed.paused_at.is_none());
    assert!(
        resumed.paused_seconds > 0.0 && resumed.paused_seconds <= pause,
        "{} of at most {pause}",
        resumed.paused_seconds
    );
    let b = shard(store.jobs.claim("b", LONG, Some("p")).await.unwrap());
    assert_eq!((b.shard, b.targets_done), (0, 20), "resumed where it was");
    assert_eq!(
        store.jobs.claim("c", LONG, Some("other")).await.unwrap(),
        Claim::Idle { outstanding: 0 },
        "--name restricts the claim"
    );
    assert_eq!(
        store.jobs.control("p", Control::Cancel).await.unwrap(),
        Some(JobState::Cancelled)
    );
    assert_eq!(
        store
            .jobs
            .heartbeat(b.key(), "b", LONG, &progress(25))
            .await
            .unwrap(),
        Beat::Held {
            job_state: JobState::Cancelled,
            live_leases: 1
        }
    );
    let err = store.jobs.control("p", Control::Resume).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidQuery(m) if m.contains("cancelled")),
        "{err}"
    );
    assert_eq!(
        store.jobs.control("nope", Control::Pause).await.unwrap(),
        None
    );
    // A cancelled job's last shard done does not finish its scan.
    assert_eq!(
        store
            .jobs
            .complete(b.key(), "b", LONG, &progress(50))
            .await
            .unwrap(),
        Completion::Done
    );
    let shards = store.jobs.shards(created.id).await.unwrap();
    assert_eq!(shards[0].state, ShardState::Done);
    assert_eq!(shards[1].state, ShardState::Pending);
}

#[tokio::test]
async fn sqlite_says_the_distributed_census_needs_postgresql() {
    let db = testing::sqlite();
    let store = open(&db.url).await.unwrap();
    let err = store.jobs.claim("a", LONG, None).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidQuery(m) if m.contains("needs PostgreSQL")),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(store.jobs.jobs().await.is_err());
}

/// Runs futures concurrently on the test's runtime and collects their outputs in order.
async fn futures_join_all<F, T>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
