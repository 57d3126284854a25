//! Conformance of the notifications aggregate (outbox, delivery log, notified findings,
//! suppressions) on SQLite and, when reachable, PostgreSQL (never skipped under `CI=true`).

use surveyor_store::testing::each_backend;
use surveyor_store::{
    open, AttemptOutcome, Channel, DeliveryRecord, FindingKey, NewNotification, NewScan,
    NotificationStatus, NotifiedFinding, ScanId, Store, StoreError, Suppression,
};
use time::macros::{date, datetime};
use time::OffsetDateTime;

#[tokio::test]
async fn enqueue_is_idempotent_by_key_and_due_in_order() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = scan(&store).await;
        let t0 = datetime!(2026-11-23 08:00:00.123_456_789 UTC);
        let a = new(scan, "organisation:klinikum", "key-a", t0);
        let b = NewNotification {
            channel: Channel::Smtp,
            destination: "abuse@klinikum.example".into(),
            ..new(
                scan,
                "organisation:klinikum",
                "key-b",
                t0 - time::Duration::minutes(1),
            )
        };
        let ids = store.notifications.enqueue(&[a.clone(), b.clone()]).await;
        let ids = ids.unwrap();
        assert!(ids.iter().all(Option::is_some), "{backend}");
        // The same keys again: nothing is added, the first rows stand.
        let again = store
            .notifications
            .enqueue(std::slice::from_ref(&a))
            .await
            .unwrap();
        assert_eq!(again, vec![None], "{backend}");

        let all = store.notifications.notifications(Some(scan)).await.unwrap();
        assert_eq!(all.len(), 2, "{backend}");
        let stored_a = &all[0];
        assert_eq!(stored_a.id, ids[0].unwrap(), "{backend}");
        assert_eq!(
            (stored_a.channel, stored_a.status, stored_a.attempts),
            (Channel::Webhook, NotificationStatus::Pending, 0),
            "{backend}"
        );
        assert_eq!(stored_a.payload, a.payload, "{backend}");
        assert_eq!(
            stored_a.created_at,
            datetime!(2026-11-23 08:00:00.123_456 UTC),
            "{backend}: stored to the microsecond"
        );
        assert_eq!(stored_a.next_attempt_at, stored_a.created_at, "{backend}");

        // Due: oldest first, nothing before its time, `limit` respected.
        let due = store.notifications.due(t0, 10).await.unwrap();
        let keys: Vec<&str> = due.iter().map(|n| n.idempotency_key.as_str()).collect();
        assert_eq!(keys, ["key-b", "key-a"], "{backend}");
        let early = t0 - time::Duration::seconds(61);
        assert!(store.notifications.due(early, 10).await.unwrap().is_empty());
        assert_eq!(store.notifications.due(t0, 1).await.unwrap().len(), 1);

        // An unknown scan writes nothing, not even the good rows before it.
        let c = new(scan, "organisation:x", "key-c", t0);
        let bad = new(ScanId(scan.0 + 99), "organisation:x", "key-d", t0);
        let err = store.notifications.enqueue(&[c, bad]).await.unwrap_err();
        assert!(
            matches!(err, StoreError::UnknownScan(_)),
            "{backend}: {err}"
        );
        assert_eq!(
            store.notifications.notifications(None).await.unwrap().len(),
            2
        );
    }
}

#[tokio::test]
async fn attempts_move_a_notification_on_and_are_logged() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = scan(&store).await;
        let t0 = datetime!(2026-11-23 08:00 UTC);
        let ids = store
            .notifications
            .enqueue(&[
                new(scan, "organisation:a", "k1", t0),
                new(scan, "organisation:b", "k2", t0),
            ])
            .await
            .unwrap();
        let (one, two) = (ids[0].unwrap(), ids[1].unwrap());
        let n = &store.notifications;

        let retry_at = t0 + time::Duration::seconds(30);
        let retry = AttemptOutcome::Retry {
            error: "webhook answered HTTP 503".into(),
            next_attempt_at: retry_at,
        };
        assert!(n.record_attempt(one, t0, &retry).await.unwrap());
        let due: Vec<i64> = n.due(t0, 10).await.unwrap().iter().map(|x| x.id).collect();
        assert_eq!(due, [two], "{backend}: the retried one waits");
        let due: Vec<i64> = n
            .due(retry_at, 10)
            .await
            .unwrap()
            .iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(due, [two, one], "{backend}: oldest due first");

        assert!(n
            .record_attempt(one, retry_at, &AttemptOutcome::Delivered)
            .await
            .unwrap());
        // Delivered: never due again, and a late attempt is not logged.
        assert!(!n
            .record_attempt(one, retry_at, &AttemptOutcome::Delivered)
            .await
            .unwrap());
        let failed = AttemptOutcome::Failed {
            error: "SMTP relay refused the recipient: 550".into(),
        };
        assert!(n.record_attempt(two, retry_at, &failed).await.unwrap());
        assert!(n
            .due(retry_at + time::Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty());

        let all = n.notifications(None).await.unwrap();
        assert_eq!(
            (
                all[0].status,
                all[0].attempts,
                all[0].delivered_at,
                all[0].last_error.clone()
            ),
            (NotificationStatus::Delivered, 2, Some(retry_at), None),
            "{backend}"
        );
        assert_eq!(
            (all[1].status, all[1].attempts, all[1].last_error.as_deref()),
            (
                NotificationStatus::Failed,
                1,
                Some("SMTP relay refused the recipient: 550")
            ),
            "{backend}"
        );
        assert_eq!(
            n.deliveries(one).await.unwrap(),
            vec![
                DeliveryRecord {
                    notification: one,
                    attempt: 1,
                    attempted_at: t0,
                    outcome: "retry".into(),
                    error: Some("webhook answered HTTP 503".into()),
                },
                DeliveryRecord {
                    notification: one,
                    attempt: 2,
                    attempted_at: retry_at,
                    outcome: "delivered".into(),
                    error: None,
                },
            ],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn notified_findings_count_only_notifications_that_did_not_fail() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = scan(&store).await;
        let t1 = datetime!(2026-10-01 08:00 UTC);
        let t2 = datetime!(2026-11-01 08:00 UTC);
        let older = new(scan, "organisation:a", "k1", t1);
        let newer = new(scan, "organisation:a", "k2", t2);
        let failing = NewNotification {
            findings: vec![finding("192.0.2.9", 443, "f9")],
            ..new(scan, "organisation:a", "k3", t2)
        };
        let ids = store
            .notifications
            .enqueue(&[older, newer, failing])
            .await
            .unwrap();
        let failed = AttemptOutcome::Failed {
            error: "gave up".into(),
        };
        store
            .notifications
            .record_attempt(ids[2].unwrap(), t2, &failed)
            .await
            .unwrap();
        let found = store.notifications.notified_findings().await.unwrap();
        assert_eq!(
            found,
            vec![
                NotifiedFinding {
                    recipient: "organisation:a".into(),
                    finding: finding("192.0.2.5", 443, "f1"),
                    last_notified_at: t2,
                },
                NotifiedFinding {
                    recipient: "organisation:a".into(),
                    finding: finding("2001:db8::5", 443, "f2"),
                    last_notified_at: t2,
                },
            ],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn suppressions_are_replaced_expire_and_are_removed() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let n = &store.notifications;
        let t0 = datetime!(2026-11-01 08:00 UTC);
        let org = Suppression {
            target: "klinikum".into(),
            reason: "asked not to be told".into(),
            created_at: t0,
            expires_at: None,
        };
        let net = Suppression {
            target: "192.0.2.0/24".into(),
            reason: "honeypot".into(),
            created_at: t0,
            expires_at: Some(datetime!(2026-12-01 00:00 UTC)),
        };
        n.suppress(&org).await.unwrap();
        n.suppress(&net).await.unwrap();
        let replaced = Suppression {
            reason: "in migration, told by phone".into(),
            ..org.clone()
        };
        n.suppress(&replaced).await.unwrap();
        assert_eq!(
            n.suppressions(t0).await.unwrap(),
            vec![net.clone(), replaced.clone()],
            "{backend}"
        );
        let later = datetime!(2026-12-02 00:00 UTC);
        assert_eq!(
            n.suppressions(later).await.unwrap(),
            vec![replaced],
            "{backend}"
        );
        assert!(n.unsuppress("klinikum").await.unwrap());
        assert!(!n.unsuppress("klinikum").await.unwrap());
        assert!(n.suppressions(later).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_nul_character_is_refused_on_both_backends() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = scan(&store).await;
        let t0 = datetime!(2026-11-23 08:00 UTC);
        let bad = NewNotification {
            payload: serde_json::json!({"subject": "a\u{0}b"}),
            ..new(scan, "organisation:a", "k1", t0)
        };
        let err = store.notifications.enqueue(&[bad]).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Unencodable { .. }),
            "{backend}: {err}"
        );
        assert!(store
            .notifications
            .notifications(None)
            .await
            .unwrap()
            .is_empty());
    }
}

async fn scan(store: &Store) -> ScanId {
    store
        .scans
        .begin_scan(&NewScan {
            started_at: datetime!(2026-11-23 06:00 UTC),
            as_of: date!(2026 - 11 - 23),
            targets: "192.0.2.0/24".into(),
            ports: vec![443],
            tool_version: "test".into(),
            kb: None,
        })
        .await
        .unwrap()
}

fn new(scan: ScanId, recipient: &str, key: &str, at: OffsetDateTime) -> NewNotification {
    NewNotification {
        scan,
        recipient: recipient.into(),
        channel: Channel::Webhook,
        destination: "http://127.0.0.1:9/hook".into(),
        idempotency_key: key.into(),
        language: "de".into(),
        payload: serde_json::json!({"recipient": recipient, "findings": [{"ip": "192.0.2.5"}]}),
        findings: vec![
            finding("192.0.2.5", 443, "f1"),
            finding("2001:db8::5", 443, "f2"),
        ],
        created_at: at,
    }
}

fn finding(ip: &str, port: u16, fingerprint: &str) -> FindingKey {
    FindingKey {
        ip: ip.parse().unwrap(),
        port,
        fingerprint: fingerprint.into(),
    }
}
