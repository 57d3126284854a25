//! The store conformance suite: every test runs against SQLite and, when reachable, PostgreSQL.
//!
//! Each test gets fresh databases from `surveyor_store::testing::each_backend` (under `CI=true`
//! an unreachable PostgreSQL fails the test instead of skipping it).

use std::net::IpAddr;
use std::time::Duration;

use sqlx::{Connection, Executor};
use surveyor_model::observation::Confidence;
use surveyor_model::observation::PatchLevel;
use surveyor_model::{Attribution, AttributionRule, Organisation, PatchBand, Sector};
use surveyor_model::{
    Build, Evidence, ExchangeServer, ExchangeVerdict, Family, Fingerprint, Observation, Scheme,
    Signal, Status, Support, TlsInfo,
};
use surveyor_store::testing::{each_backend, postgres, sqlite};
use surveyor_store::{
    open, open_with, scan_as_of, Backend, CensusFilter, CensusGroup, Dimension, ExportOutcome,
    ExportRecord, Judgements, KbRef, NewExport, NewJudgement, NewScan, ObservationCursor,
    OpenOptions, PrunePolicy, Role, ScanId, ScanRecord, ServerCursor, StoreError,
};
use time::macros::{date, datetime};
use time::OffsetDateTime;

#[tokio::test]
async fn scans_round_trip_newest_first() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let first = NewScan {
            kb: Some(KbRef {
                digest: "0123456789abcdef".repeat(4),
                newest_release: date!(2025 - 10 - 14),
            }),
            ..new_scan(datetime!(2025-10-01 08:00:00.250_001 UTC))
        };
        let second = NewScan {
            ports: vec![443],
            ..new_scan(datetime!(2025-10-02 08:00 UTC))
        };
        let a = store.scans.begin_scan(&first).await.unwrap();
        let b = store.scans.begin_scan(&second).await.unwrap();
        assert_ne!(a, b, "{backend}");

        let batch = [refused("192.0.2.7", 80), exchange_2016("192.0.2.5", 443)];
        store.scans.record(a, &batch).await.unwrap();
        store
            .scans
            .record(a, &[plain_http("192.0.2.9", 80)])
            .await
            .unwrap();
        let finished = datetime!(2025-10-01 09:15:42.999_999 +02:00);
        store.scans.finish_scan(a, finished).await.unwrap();

        let expected_a = ScanRecord {
            id: a,
            started_at: first.started_at,
            finished_at: Some(finished),
            as_of: first.as_of,
            targets: first.targets.clone(),
            ports: first.ports.clone(),
            tool_version: first.tool_version.clone(),
            observations: 3,
            pruned_at: None,
            kb: first.kb.clone(),
            judged_at: first.started_at,
            judged_from: None,
            projection: false,
            superseded_by: None,
        };
        let expected_b = ScanRecord {
            id: b,
            started_at: second.started_at,
            finished_at: None,
            as_of: second.as_of,
            targets: second.targets.clone(),
            ports: vec![443],
            tool_version: second.tool_version.clone(),
            observations: 0,
            pruned_at: None,
            kb: None,
            judged_at: second.started_at,
            judged_from: None,
            projection: false,
            superseded_by: None,
        };
        assert_eq!(
            store.scans.scan(a).await.unwrap(),
            Some(expected_a.clone()),
            "{backend}"
        );
        assert_eq!(
            store.scans.scans().await.unwrap(),
            vec![expected_b, expected_a],
            "{backend}"
        );
        assert_eq!(
            store.scans.scan(ScanId(a.0 + 1000)).await.unwrap(),
            None,
            "{backend}"
        );
        assert_eq!(
            store.scans.observations(b).await.unwrap(),
            vec![],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn observations_round_trip_exactly() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-14 09:00 UTC)))
            .await
            .unwrap();
        let mut tls_only = plain_http("10.0.0.10", 443);
        tls_only.scheme = Scheme::Https;
        tls_only.tls = Some(tls());
        let mut online = plain_http("2001:db8::1", 443);
        online
            .fingerprint
            .push(Signal::ExchangeOnline, "GET /owa/", "outlook.office365.com");
        online.observed_at = datetime!(2025-10-14 11:00:00.5 +02:00);
        // Written out of order: the store gives them back by ip (numerically), then port.
        let batch = vec![
            online,
            exchange_2016("10.0.0.10", 80),
            tls_only,
            refused("10.0.0.2", 8443),
            exchange_se("10.0.0.2", 443),
            plain_http("::ffff:192.0.2.1", 80),
        ];
        store.scans.record(scan, &batch).await.unwrap();

        let mut expected = batch.clone();
        expected.sort_by_key(|o| (o.ip, o.port));
        let got = store.scans.observations(scan).await.unwrap();
        assert_eq!(got, expected, "{backend}");
        let order: Vec<String> = got.iter().map(|o| format!("{}:{}", o.ip, o.port)).collect();
        assert_eq!(
            order,
            [
                "10.0.0.2:443",
                "10.0.0.2:8443",
                "10.0.0.10:80",
                "10.0.0.10:443",
                "::ffff:192.0.2.1:80",
                "2001:db8::1:443"
            ],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn observed_at_is_kept_to_the_microsecond() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-14 09:00 UTC)))
            .await
            .unwrap();
        let mut observation = plain_http("192.0.2.1", 80);
        observation.observed_at = datetime!(2025-10-14 09:30:01.123_456_789 UTC);
        store.scans.record(scan, &[observation]).await.unwrap();
        let got = store.scans.observations(scan).await.unwrap();
        assert_eq!(
            got[0].observed_at,
            datetime!(2025-10-14 09:30:01.123_456 UTC),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn exchange_servers_are_the_recognised_observations() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-14 09:00 UTC)))
            .await
            .unwrap();
        let other = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-14 10:00 UTC)))
            .await
            .unwrap();
        let mut fingerprint_only = plain_http("192.0.2.3", 443);
        fingerprint_only
            .fingerprint
            .push(Signal::LogonPageMarker, "GET /owa/", "Outlook");
        let batch = [
            exchange_se("192.0.2.20", 443),
            refused("192.0.2.1", 443),
            exchange_2016("192.0.2.4", 443),
            fingerprint_only,
            exchange_2016("192.0.2.4", 80),
        ];
        store.scans.record(scan, &batch).await.unwrap();
        store
            .scans
            .record(other, &[exchange_se("198.51.100.1", 443)])
            .await
            .unwrap();

        let servers = store.census.exchange_servers(scan).await.unwrap();
        let server = |ip: &str, port, family, build: &str, support| ExchangeServer {
            ip: ip.parse().unwrap(),
            port,
            family,
            build: build.parse().unwrap(),
            support,
        };
        assert_eq!(
            servers,
            vec![
                server(
                    "192.0.2.4",
                    80,
                    Family::E2016,
                    "15.1.2507.61",
                    Support::Unsupported
                ),
                server(
                    "192.0.2.4",
                    443,
                    Family::E2016,
                    "15.1.2507.61",
                    Support::Unsupported
                ),
                server(
                    "192.0.2.20",
                    443,
                    Family::Se,
                    "15.2.2562",
                    Support::Supported
                ),
            ],
            "{backend}"
        );
        let empty = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-14 11:00 UTC)))
            .await
            .unwrap();
        assert_eq!(
            store.census.exchange_servers(empty).await.unwrap(),
            vec![],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn latest_finished_scan_ignores_unfinished_and_picks_the_newest() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        assert_eq!(
            store.census.latest_finished_scan().await.unwrap(),
            None,
            "{backend}"
        );
        let early = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-01 08:00 UTC)))
            .await
            .unwrap();
        let late = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-02 08:00 UTC)))
            .await
            .unwrap();
        let running = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-03 08:00 UTC)))
            .await
            .unwrap();
        assert_eq!(
            store.census.latest_finished_scan().await.unwrap(),
            None,
            "{backend}"
        );

        // The scan started first finished last: finish time decides, not start time.
        store
            .scans
            .finish_scan(late, datetime!(2025-10-02 09:00 UTC))
            .await
            .unwrap();
        store
            .scans
            .finish_scan(early, datetime!(2025-10-04 09:00 UTC))
            .await
            .unwrap();
        let latest = store.census.latest_finished_scan().await.unwrap().unwrap();
        assert_eq!(latest.id, early, "{backend}");
        assert_eq!(
            latest.finished_at,
            Some(datetime!(2025-10-04 09:00 UTC)),
            "{backend}"
        );

        // A tie on finished_at goes to the higher id.
        store
            .scans
            .finish_scan(late, datetime!(2025-10-04 09:00 UTC))
            .await
            .unwrap();
        let latest = store.census.latest_finished_scan().await.unwrap().unwrap();
        assert_eq!(latest.id, late, "{backend}");
        assert_ne!(latest.id, running, "{backend}");
    }
}

#[tokio::test]
async fn recording_is_idempotent_per_scan_ip_and_port() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-14 09:00 UTC)))
            .await
            .unwrap();
        let first = vec![exchange_2016("192.0.2.4", 443), refused("192.0.2.5", 443)];
        store.scans.record(scan, &first).await.unwrap();

        // A resumed scan re-sends 192.0.2.5:443; overlapping inputs repeat 192.0.2.7:80.
        let mut again = plain_http("192.0.2.5", 443);
        again.http_server = Some("a later answer".into());
        let batch = [
            plain_http("192.0.2.6", 80),
            again,
            plain_http("192.0.2.7", 80),
            plain_http("192.0.2.7", 80),
        ];
        store.scans.record(scan, &batch).await.unwrap();
        let mut expected = first.clone();
        expected.push(plain_http("192.0.2.6", 80));
        expected.push(plain_http("192.0.2.7", 80));
        expected.sort_by_key(|o| (o.ip, o.port));
        assert_eq!(
            store.scans.observations(scan).await.unwrap(),
            expected,
            "{backend}: the first observation stands"
        );
        assert_eq!(
            store.scans.scan(scan).await.unwrap().unwrap().observations,
            4,
            "{backend}"
        );

        // The same address and port in another scan is a new observation.
        let next = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-15 09:00 UTC)))
            .await
            .unwrap();
        store.scans.record(next, &first).await.unwrap();
        assert_eq!(
            store.scans.observations(next).await.unwrap().len(),
            2,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn concurrent_batches_that_share_targets_store_each_once() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-14 09:00 UTC)))
            .await
            .unwrap();
        // Four writers at once (as census workers after a takeover), each a different window
        // of 300 targets out of 600 and each in its own shuffled order, so that every target
        // is in two batches and the batches meet in flight.
        let targets: Vec<Observation> = (0..600)
            .map(|i| exchange_2016(&format!("198.51.{}.{}", i / 250, i % 250 + 1), 443))
            .collect();
        // On PostgreSQL another transaction first holds every target, so that all four
        // writers wait at their first row and then go in the same instant.
        let mut blocker = match backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query(
                    "INSERT INTO observations (scan_id, ip, port, scheme, observed_at, status, \
                     fingerprint) SELECT $1, ('198.51.' || i / 250 || '.' || i % 250 + 1)::inet, \
                     443, 'https', now(), 'success', '{}' FROM generate_series(0, 599) i",
                )
                .bind(scan.0)
                .execute(&mut conn)
                .await
                .unwrap();
                Some(conn)
            }
            Backend::Sqlite => None,
        };
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let mut batch: Vec<Observation> = (0..300)
                    .map(|k| targets[(w * 150 + k) % 600].clone())
                    .collect();
                // A fixed permutation per writer, different for each.
                let len = batch.len();
                for i in 0..len {
                    batch.swap(i, (i * (7 + 4 * w) + w) % len);
                }
                let store = store.clone();
                tokio::spawn(async move { store.scans.record(scan, &batch).await })
            })
            .collect();
        if let Some(mut conn) = blocker.take() {
            // Watched from a connection of its own: inside the blocker's transaction
            // pg_stat_activity would stay the snapshot of its first read.
            let mut watch = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let waiting = "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'";
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while sqlx::query_scalar::<_, i64>(waiting)
                .fetch_one(&mut watch)
                .await
                .unwrap()
                < 4
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the writers never waited"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
        }
        for writer in writers {
            writer
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{backend}: {e}"));
        }
        let mut expected = targets.clone();
        expected.sort_by_key(|o| (o.ip, o.port));
        assert_eq!(
            store.scans.observations(scan).await.unwrap(),
            expected,
            "{backend}: every target once"
        );
        assert_eq!(
            store.scans.scan(scan).await.unwrap().unwrap().observations,
            600,
            "{backend}: the kept count counts rows that went in"
        );
    }
}

/// Makes the database itself refuse one address, to fail a batch in its last chunk.
async fn refuse_address_in_database(backend: Backend, url: &str, ip: &str) {
    match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(&format!(
                "CREATE FUNCTION refuse_ip() RETURNS trigger AS $$ BEGIN \
                 IF host(NEW.ip) = '{ip}' THEN RAISE EXCEPTION 'refused by test'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER refuse_ip BEFORE INSERT ON observations \
                 FOR EACH ROW EXECUTE FUNCTION refuse_ip();"
            ))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::raw_sql(&format!(
                "CREATE TRIGGER refuse_ip BEFORE INSERT ON observations \
                 WHEN NEW.ip = '{ip}' BEGIN SELECT RAISE(ABORT, 'refused by test'); END;"
            ))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
}

#[tokio::test]
async fn a_batch_too_large_for_one_statement_is_still_all_or_nothing() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-14 09:00 UTC)))
            .await
            .unwrap();
        let mut batch: Vec<Observation> = (0..2500u32)
            .map(|i| plain_http(&format!("10.1.{}.{}", i / 250, i % 250), 80))
            .collect();
        store.scans.record(scan, &batch).await.unwrap();
        assert_eq!(
            store.scans.scan(scan).await.unwrap().unwrap().observations,
            2500,
            "{backend}"
        );

        // The failure sits in the last chunk; the chunks before it must be rolled back too.
        refuse_address_in_database(backend, &db.url, "10.9.9.9").await;
        let mut more: Vec<Observation> = (0..2100u32)
            .map(|i| plain_http(&format!("10.2.{}.{}", i / 250, i % 250), 80))
            .collect();
        more.push(plain_http("10.9.9.9", 80));
        let error = store.scans.record(scan, &more).await.unwrap_err();
        assert!(
            matches!(error, StoreError::Query { .. }),
            "{backend}: {error}"
        );
        batch.sort_by_key(|o| (o.ip, o.port));
        assert_eq!(
            store.scans.observations(scan).await.unwrap(),
            batch,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn unknown_scans_are_errors() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let known = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-14 09:00 UTC)))
            .await
            .unwrap();
        let unknown = ScanId(known.0 + 41);
        let is_unknown = |r: Result<(), StoreError>| matches!(r, Err(StoreError::UnknownScan(id)) if id == unknown);
        assert!(
            is_unknown(
                store
                    .scans
                    .record(unknown, &[refused("192.0.2.1", 80)])
                    .await
            ),
            "{backend}"
        );
        assert!(
            is_unknown(store.scans.record(unknown, &[]).await),
            "{backend}"
        );
        let finish = store
            .scans
            .finish_scan(unknown, datetime!(2025-10-14 10:00 UTC))
            .await;
        assert!(is_unknown(finish), "{backend}");
        assert!(
            is_unknown(store.scans.observations(unknown).await.map(drop)),
            "{backend}"
        );
        assert!(
            is_unknown(store.census.exchange_servers(unknown).await.map(drop)),
            "{backend}"
        );
        let error = store.scans.record(unknown, &[]).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("no scan with id {unknown}"),
            "{backend}"
        );
        assert!(!error.is_retryable(), "{backend}");
        assert_eq!(
            store.scans.scan(known).await.unwrap().unwrap().observations,
            0,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn text_no_backend_can_store_is_refused_before_writing() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-14 09:00 UTC)))
            .await
            .unwrap();
        let mut hostile = plain_http("192.0.2.2", 80);
        hostile.http_server = Some("Microsoft-IIS/10.0\0".into());
        let error = store
            .scans
            .record(scan, &[plain_http("192.0.2.1", 80), hostile])
            .await
            .unwrap_err();
        assert!(
            matches!(error, StoreError::Unencodable { .. }),
            "{backend}: {error}"
        );
        assert_eq!(
            store.scans.observations(scan).await.unwrap(),
            vec![],
            "{backend}"
        );

        let bad_scan = NewScan {
            targets: "192.0.2.0/24\0".into(),
            ..new_scan(datetime!(2025-10-14 09:00 UTC))
        };
        let error = store.scans.begin_scan(&bad_scan).await.unwrap_err();
        assert!(
            matches!(error, StoreError::Unencodable { .. }),
            "{backend}: {error}"
        );
        assert_eq!(store.scans.scans().await.unwrap().len(), 1, "{backend}");
    }
}

#[tokio::test]
async fn a_corrupt_row_is_reported_not_guessed() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-14 09:00 UTC)))
            .await
            .unwrap();
        store
            .scans
            .record(scan, &[exchange_2016("192.0.2.4", 443)])
            .await
            .unwrap();
        let tamper = "UPDATE observations SET exchange_family = '2099'";
        match backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                sqlx::query(tamper).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query(tamper).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
        let error = store.scans.observations(scan).await.unwrap_err();
        assert!(
            matches!(&error, StoreError::Corrupt { what } if what.contains("exchange_family")),
            "{backend}: {error}"
        );
        let error = store.census.exchange_servers(scan).await.unwrap_err();
        assert!(
            matches!(error, StoreError::Corrupt { .. }),
            "{backend}: {error}"
        );
    }
}

#[tokio::test]
async fn reopening_keeps_data_and_migrations_are_idempotent() {
    for (backend, db) in each_backend().await {
        let batch = [exchange_se("192.0.2.20", 443)];
        let scan = {
            let store = open(&db.url).await.unwrap();
            let scan = store
                .scans
                .begin_scan(&new_scan(datetime!(2025-10-14 09:00 UTC)))
                .await
                .unwrap();
            store.scans.record(scan, &batch).await.unwrap();
            store
                .scans
                .finish_scan(scan, datetime!(2025-10-14 10:00 UTC))
                .await
                .unwrap();
            scan
        };
        for _ in 0..2 {
            let store = open(&db.url).await.unwrap();
            assert_eq!(store.backend, backend);
            assert_eq!(
                store.scans.observations(scan).await.unwrap(),
                batch,
                "{backend}"
            );
            let latest = store.census.latest_finished_scan().await.unwrap();
            assert_eq!(latest.map(|s| s.id), Some(scan), "{backend}");
        }
    }
}

#[tokio::test]
async fn sqlite_url_forms_open_the_same_file() {
    let db = sqlite();
    let path = db.url.strip_prefix("sqlite://").unwrap().to_string();
    let scan = {
        let store = open(&format!("sqlite:{path}")).await.unwrap();
        store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-14 09:00 UTC)))
            .await
            .unwrap()
    };
    for url in [db.url.clone(), path.clone()] {
        let store = open(&url).await.unwrap();
        assert_eq!(store.backend, Backend::Sqlite);
        assert!(store.scans.scan(scan).await.unwrap().is_some(), "{url}");
    }
    let memory = open("sqlite::memory:").await.unwrap();
    let id = memory
        .scans
        .begin_scan(&new_scan(datetime!(2025-10-14 09:00 UTC)))
        .await
        .unwrap();
    memory
        .scans
        .record(id, &[refused("192.0.2.1", 80)])
        .await
        .unwrap();
    assert_eq!(memory.scans.observations(id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn urls_of_other_databases_are_refused_clearly() {
    let error = open("mysql://root:hunter2@127.0.0.1/census")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::InvalidUrl { url_scheme, .. } if url_scheme == "mysql"),
        "{error}"
    );
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_connect_error_without_the_password() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let error = open("postgres://surveyor:hunter2@127.0.0.1:1/census")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Connect {
                backend: Backend::Postgres,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.is_retryable());
    assert_eq!(
        error.to_string(),
        "cannot connect to the PostgreSQL database postgres://surveyor@127.0.0.1:1/census"
    );
}

#[tokio::test]
async fn a_statement_over_the_timeout_is_a_retryable_timeout() {
    let Some(db) = postgres().await else { return };
    // The migrations of a fresh database take longer than 1 ms; they run without the timeout.
    open_with(&db.url, timeout(Duration::from_millis(1)))
        .await
        .unwrap();
    let store = open_with(&db.url, timeout(Duration::from_millis(200)))
        .await
        .unwrap();
    // Another session holds the scans table, so the store's read waits behind its lock.
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder
        .execute("LOCK TABLE scans IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let error = store.scans.scans().await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Timeout {
                backend: Backend::Postgres,
                action: "read scans",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.is_retryable());
    assert_eq!(
        error.to_string(),
        "the PostgreSQL query to read scans took longer than the statement timeout"
    );
    holder.execute("ROLLBACK").await.unwrap();
    // The timed-out connection is fine once the lock is gone.
    assert_eq!(store.scans.scans().await.unwrap(), Vec::new());
}

fn timeout(statement_timeout: Duration) -> OpenOptions {
    OpenOptions {
        statement_timeout: Some(statement_timeout),
    }
}

#[tokio::test]
async fn test_databases_are_private_and_removed() {
    let dbs = each_backend().await;
    let again = each_backend().await;
    for ((backend, a), (_, b)) in dbs.iter().zip(&again) {
        assert_ne!(a.url, b.url, "{backend}");
        assert_eq!(a.backend(), *backend);
    }
    // Dropping a TestDb removes the temp dir or the database.
    let mut urls = Vec::new();
    for (backend, db) in &dbs {
        open(&db.url).await.unwrap();
        urls.push((*backend, db.url.clone()));
    }
    drop(dbs);
    for (backend, url) in urls {
        match backend {
            Backend::Sqlite => {
                let path = std::path::Path::new(url.strip_prefix("sqlite://").unwrap());
                let dir = path.parent().unwrap();
                assert!(!dir.exists(), "{} still exists", dir.display());
            }
            Backend::Postgres => {
                let error = sqlx::PgConnection::connect(&url).await.unwrap_err();
                let gone = error
                    .as_database_error()
                    .and_then(|e| e.code())
                    .is_some_and(|c| c == "3D000");
                assert!(gone, "{url} still exists: {error}");
            }
        }
    }
}

// Fixtures: a few observations shaped like what the scanner records.

/// Two scans of a small census: three addresses in the first (one of them on two ports),
/// one of them upgraded and one gone in the second.
async fn two_scans(store: &surveyor_store::Store) -> (ScanId, ScanId) {
    let first = store
        .scans
        .begin_scan(&new_scan(datetime!(2025-10-01 08:00 UTC)))
        .await
        .unwrap();
    let batch = [
        exchange_2016("192.0.2.5", 443),
        // The same address on 80 and 443: one server, the newer family counts.
        exchange_2016("192.0.2.6", 80),
        exchange_se("192.0.2.6", 443),
        exchange_2016("2001:db8::7", 443),
        refused("192.0.2.8", 443),
    ];
    store.scans.record(first, &batch).await.unwrap();
    store
        .scans
        .finish_scan(first, datetime!(2025-10-01 09:00 UTC))
        .await
        .unwrap();
    let second = store
        .scans
        .begin_scan(&new_scan(datetime!(2025-11-01 08:00 UTC)))
        .await
        .unwrap();
    let mut later = exchange_se("192.0.2.5", 443);
    later.observed_at = datetime!(2025-11-01 08:30 UTC);
    store.scans.record(second, &[later]).await.unwrap();
    (first, second)
}

fn group(family: Option<Family>, support: Option<Support>, servers: u64) -> CensusGroup {
    CensusGroup {
        family,
        support,
        servers,
        ..CensusGroup::default()
    }
}

#[tokio::test]
async fn census_statistics_count_servers_by_any_dimension_live_or_stored() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let (first, second) = two_scans(&store).await;
        let census = &store.census;

        let total = census
            .statistics(first, &[], &CensusFilter::default())
            .await;
        assert_eq!(total.unwrap(), vec![group(None, None, 3)], "{backend}");
        let by_family = census
            .statistics(
                first,
                &[Dimension::Family, Dimension::Support],
                &CensusFilter::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            by_family,
            vec![
                group(Some(Family::E2016), Some(Support::Unsupported), 2),
                group(Some(Family::Se), Some(Support::Supported), 1),
            ],
            "{backend}"
        );
        let unsupported = CensusFilter {
            support: Some(Support::Unsupported),
            ..CensusFilter::default()
        };
        let by_cu_patch = census
            .statistics(
                first,
                &[Dimension::Cu, Dimension::Version, Dimension::Patch],
                &unsupported,
            )
            .await
            .unwrap();
        assert_eq!(
            by_cu_patch,
            vec![CensusGroup {
                cu: Some("Exchange Server 2016 CU23".into()),
                version: Some("Exchange Server 2016 CU23 Oct25SU".into()),
                patch: Some(PatchBand::Behind90d),
                servers: 2,
                ..CensusGroup::default()
            }],
            "{backend}"
        );
        let nothing = CensusFilter {
            version: Some("x' OR '1'='1".into()),
            ..CensusFilter::default()
        };
        let none = census
            .statistics(first, &[Dimension::Family], &nothing)
            .await;
        assert_eq!(none.unwrap(), vec![], "{backend}");

        // The unfinished scan is counted live, and finishing it gives the same answer.
        let dims = [Dimension::Family, Dimension::Patch];
        let live = census
            .statistics(second, &dims, &CensusFilter::default())
            .await
            .unwrap();
        assert_eq!(live.len(), 1, "{backend}");
        assert_eq!(live[0].patch, Some(PatchBand::Unknown), "{backend}");
        store
            .scans
            .finish_scan(second, datetime!(2025-11-01 09:00 UTC))
            .await
            .unwrap();
        let stored = census
            .statistics(second, &dims, &CensusFilter::default())
            .await
            .unwrap();
        assert_eq!(stored, live, "{backend}");
        assert!(matches!(
            census
                .statistics(ScanId(first.0 + 1000), &[], &CensusFilter::default())
                .await,
            Err(StoreError::UnknownScan(_))
        ));
    }
}

#[tokio::test]
async fn trends_and_as_of_read_finished_scans_in_order() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let (first, second) = two_scans(&store).await;
        // Only finished scans make a trend.
        let trend = store.census.trend(&[], &CensusFilter::default()).await;
        let points: Vec<_> = trend
            .unwrap()
            .iter()
            .map(|p| (p.scan, p.group.servers))
            .collect();
        assert_eq!(points, vec![(first, 3)], "{backend}");
        store
            .scans
            .finish_scan(second, datetime!(2025-11-01 09:00 UTC))
            .await
            .unwrap();
        let unsupported = CensusFilter {
            support: Some(Support::Unsupported),
            ..CensusFilter::default()
        };
        let trend = store
            .census
            .trend(&[Dimension::Family], &unsupported)
            .await
            .unwrap();
        let points: Vec<_> = trend
            .iter()
            .map(|p| (p.scan, p.group.family, p.group.servers))
            .collect();
        // The second scan has no unsupported server: one point of zero.
        assert_eq!(
            points,
            vec![(first, Some(Family::E2016), 2), (second, None, 0)],
            "{backend}"
        );
        assert_eq!(
            trend[1].finished_at,
            datetime!(2025-11-01 09:00 UTC),
            "{backend}"
        );

        let as_of = |d| scan_as_of(store.scans.as_ref(), d);
        assert_eq!(
            as_of(date!(2025 - 09 - 30)).await.unwrap(),
            None,
            "{backend}"
        );
        let mid = as_of(date!(2025 - 10 - 31)).await.unwrap().unwrap();
        assert_eq!(mid.id, first, "{backend}");
        let now = as_of(date!(2025 - 11 - 01)).await.unwrap().unwrap();
        assert_eq!(now.id, second, "{backend}");
    }
}

#[tokio::test]
async fn hosts_keep_first_and_last_sighting_and_the_newest_state() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let (_, second) = two_scans(&store).await;
        store
            .scans
            .finish_scan(second, datetime!(2025-11-01 09:00 UTC))
            .await
            .unwrap();
        let count = db.scalar("SELECT count(*) FROM hosts").await;
        assert_eq!(count, 5, "{backend}: every stored address and port");
        let family = db
            .scalar(
                "SELECT count(*) FROM hosts \
                 WHERE port = 443 AND last_seen > first_seen AND exchange_family = 'SE'",
            )
            .await;
        assert_eq!(family, 1, "{backend}: 192.0.2.5 upgraded to SE, seen twice");
        let detail = store
            .census
            .host("192.0.2.5".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(detail.ports.len(), 1, "{backend}");
        let state = &detail.ports[0];
        assert_eq!(
            (
                state.port,
                state.first_seen,
                state.last_seen,
                state.last_scan
            ),
            (
                443,
                datetime!(2025-10-14 09:30:01.123_456 UTC),
                datetime!(2025-11-01 08:30 UTC),
                second
            ),
            "{backend}"
        );
        assert_eq!(state.exchange.as_ref().map(|x| x.family), Some(Family::Se));
        let scans: Vec<_> = detail.history.iter().map(|(scan, _)| *scan).collect();
        assert_eq!(scans, vec![ScanId(second.0 - 1), second], "{backend}");
        let unseen = store
            .census
            .host("198.51.100.1".parse().unwrap())
            .await
            .unwrap();
        assert!(
            unseen.ports.is_empty() && unseen.history.is_empty(),
            "{backend}"
        );
        // Finishing the older scan again must not roll the host back.
        let first = ScanId(second.0 - 1);
        store
            .scans
            .finish_scan(first, datetime!(2025-10-01 09:00 UTC))
            .await
            .unwrap();
        let still = db
            .scalar("SELECT count(*) FROM hosts WHERE exchange_family = 'SE'")
            .await;
        assert_eq!(still, 2, "{backend}");
    }
}

#[tokio::test]
async fn prune_deletes_old_observations_and_keeps_the_census() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let (first, second) = two_scans(&store).await;
        let keep_one = PrunePolicy {
            keep_scans: Some(1),
            keep_since: None,
        };
        // The first scan is the newest finished one while the second runs: nothing to prune.
        let report = store.scans.prune(&keep_one, false).await.unwrap();
        assert!(report.pruned.is_empty(), "{backend}: {report:?}");
        store
            .scans
            .finish_scan(second, datetime!(2025-11-01 09:00 UTC))
            .await
            .unwrap();
        let before = store
            .census
            .statistics(first, &[Dimension::Family], &CensusFilter::default())
            .await
            .unwrap();

        let dry = store.scans.prune(&keep_one, true).await.unwrap();
        assert_eq!(
            (dry.pruned.clone(), dry.observations_deleted),
            (vec![first], 5)
        );
        assert_eq!(store.scans.observations(first).await.unwrap().len(), 5);

        let done = store.scans.prune(&keep_one, false).await.unwrap();
        assert_eq!(done, dry, "{backend}");
        assert!(matches!(
            store.scans.observations(first).await,
            Err(StoreError::ScanPruned(id)) if id == first
        ));
        assert!(matches!(
            store.census.exchange_servers(first).await,
            Err(StoreError::ScanPruned(_))
        ));
        let record = store.scans.scan(first).await.unwrap().unwrap();
        assert!(
            record.pruned_at.is_some() && record.observations == 0,
            "{backend}"
        );
        // The census and the trend survive; a second prune has nothing left to do.
        let after = store
            .census
            .statistics(first, &[Dimension::Family], &CensusFilter::default())
            .await
            .unwrap();
        assert_eq!(after, before, "{backend}");
        let trend = store
            .census
            .trend(&[], &CensusFilter::default())
            .await
            .unwrap();
        assert_eq!(trend.len(), 2, "{backend}");
        assert_eq!(
            store.scans.prune(&keep_one, false).await.unwrap().pruned,
            vec![]
        );
        assert!(matches!(
            store
                .scans
                .record(first, &[refused("192.0.2.99", 443)])
                .await,
            Err(StoreError::ScanPruned(_))
        ));
        // No policy, no prune.
        let none = store
            .scans
            .prune(&PrunePolicy::default(), false)
            .await
            .unwrap();
        assert!(none.pruned.is_empty(), "{backend}");
    }
}

fn kb(digit: char, newest: time::Date) -> KbRef {
    KbRef {
        digest: digit.to_string().repeat(64),
        newest_release: newest,
    }
}

/// Every observation of a scan, read page by page.
async fn walk(store: &surveyor_store::Store, scan: ScanId, limit: u32) -> Vec<Observation> {
    let mut all = Vec::new();
    let mut after: Option<ObservationCursor> = None;
    loop {
        let (page, next) = store
            .scans
            .observations_page(scan, after, limit)
            .await
            .unwrap();
        assert!(page.len() <= limit as usize);
        all.extend(page);
        match next {
            Some(c) => after = Some(c),
            None => return all,
        }
    }
}

/// Judges `source`'s observations again as `judge` says, the way `surveyor rejudge` does.
async fn judge_again(
    store: &surveyor_store::Store,
    source: ScanId,
    as_of: time::Date,
    kb: KbRef,
    judge: impl Fn(&mut Observation),
) -> ScanId {
    let id = store
        .scans
        .begin_judgement(&NewJudgement {
            source,
            as_of,
            kb,
            judged_at: datetime!(2026-12-01 10:00 UTC),
            tool_version: "surveyor next".into(),
        })
        .await
        .unwrap();
    let mut observations = walk(store, source, 2).await;
    observations.iter_mut().for_each(judge);
    store.scans.record(id, &observations).await.unwrap();
    let finished = store.scans.scan(source).await.unwrap().unwrap().finished_at;
    store
        .scans
        .finish_scan(id, finished.unwrap())
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_rejudgement_becomes_the_default_and_the_original_stays_readable() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let (first, second) = two_scans(&store).await;
        store
            .scans
            .finish_scan(second, datetime!(2025-11-01 09:00 UTC))
            .await
            .unwrap();
        // Pages walk every observation once, in order, whatever their size.
        let whole = store.scans.observations(first).await.unwrap();
        for limit in [1, 2, 3, 100] {
            let mut paged = walk(&store, first, limit).await;
            paged.sort_by_key(|o| (o.ip, o.port));
            assert_eq!(paged, whole, "{backend}: pages of {limit}");
        }
        let census = |scan| {
            let store = store.clone();
            async move {
                store
                    .census
                    .statistics(
                        scan,
                        &[Dimension::Family, Dimension::Support],
                        &CensusFilter::default(),
                    )
                    .await
                    .unwrap()
            }
        };
        let before = census(first).await;
        let trend_before = store
            .census
            .trend(&[], &CensusFilter::default())
            .await
            .unwrap();

        // Newer knowledge: every 2016 server is now judged supported (any change will do).
        let newer = kb('b', date!(2026 - 10 - 02));
        let judged = judge_again(&store, first, date!(2025 - 10 - 14), newer.clone(), |o| {
            if let Some(v) = o.exchange.as_mut().filter(|v| v.family == Family::E2016) {
                v.support = Support::Supported;
            }
        })
        .await;
        let record = store.scans.scan(judged).await.unwrap().unwrap();
        let source = store.scans.scan(first).await.unwrap().unwrap();
        assert_eq!(
            (record.judged_from, record.projection, record.superseded_by),
            (Some(first), false, None),
            "{backend}"
        );
        assert_eq!(record.kb, Some(newer), "{backend}");
        assert_eq!(
            (
                record.started_at,
                record.finished_at,
                &record.targets,
                &record.ports
            ),
            (
                source.started_at,
                source.finished_at,
                &source.targets,
                &source.ports
            ),
            "{backend}"
        );
        assert_eq!(
            record.judged_at,
            datetime!(2026-12-01 10:00 UTC),
            "{backend}"
        );
        assert_eq!(source.superseded_by, Some(judged), "{backend}");
        // The original still counts as it did; the judgement counts the change.
        assert_eq!(census(first).await, before, "{backend}");
        let after = census(judged).await;
        assert_ne!(after, before, "{backend}");
        let total = |groups: &[CensusGroup]| groups.iter().map(|g| g.servers).sum::<u64>();
        assert_eq!(total(&after), total(&before), "{backend}");
        // Defaults: the newest scan is still the latest; the trend reads the judgement in
        // the source's place; the scan as of its day is the judgement.
        assert_eq!(
            store
                .census
                .latest_finished_scan()
                .await
                .unwrap()
                .unwrap()
                .id,
            second,
            "{backend}"
        );
        let trend = store
            .census
            .trend(&[], &CensusFilter::default())
            .await
            .unwrap();
        assert_eq!(trend.len(), trend_before.len(), "{backend}");
        assert_eq!(trend[0].scan, judged, "{backend}");
        let originals = store
            .census
            .trend_of(&[], &CensusFilter::default(), Judgements::Original)
            .await
            .unwrap();
        assert_eq!(
            originals.iter().map(|p| p.scan).collect::<Vec<_>>(),
            vec![first, second],
            "{backend}"
        );
        assert_eq!(
            trend[0].finished_at, trend_before[0].finished_at,
            "{backend}"
        );
        let on_the_day = scan_as_of(store.scans.as_ref(), date!(2025 - 10 - 20))
            .await
            .unwrap();
        assert_eq!(on_the_day.map(|s| s.id), Some(judged), "{backend}");
        // A host's history holds each scan once, in its default judgement.
        let history = store
            .census
            .host("192.0.2.5".parse().unwrap())
            .await
            .unwrap()
            .history;
        let scans: Vec<ScanId> = history.iter().map(|(s, _)| *s).collect();
        assert_eq!(scans, vec![judged, second], "{backend}");

        // A projection for another day is stored and readable by id, and changes no default.
        let projected = judge_again(
            &store,
            first,
            date!(2027 - 01 - 01),
            kb('c', date!(2026 - 10 - 02)),
            |o| {
                if let Some(v) = o.exchange.as_mut() {
                    v.support = Support::Unsupported;
                }
            },
        )
        .await;
        let p = store.scans.scan(projected).await.unwrap().unwrap();
        assert!(
            p.projection && p.superseded_by.is_none(),
            "{backend}: {p:?}"
        );
        assert_eq!(p.as_of, date!(2027 - 01 - 01), "{backend}");
        assert_eq!(
            store
                .scans
                .scan(first)
                .await
                .unwrap()
                .unwrap()
                .superseded_by,
            Some(judged),
            "{backend}"
        );
        assert!(store
            .scans
            .scan(judged)
            .await
            .unwrap()
            .unwrap()
            .superseded_by
            .is_none());
        assert_eq!(
            store
                .census
                .trend(&[], &CensusFilter::default())
                .await
                .unwrap()[0]
                .scan,
            judged,
            "{backend}"
        );
        let unsupported = census(projected).await;
        assert!(
            unsupported
                .iter()
                .all(|g| g.support == Some(Support::Unsupported)),
            "{backend}"
        );
        let projected_hosts = db
            .scalar(&format!(
                "SELECT count(*) FROM hosts WHERE last_scan_id = {}",
                projected.0
            ))
            .await;
        assert_eq!(
            projected_hosts, 0,
            "{backend}: a projection is not a sighting"
        );

        // A newer judgement of the same day supersedes the earlier one.
        let newest = judge_again(
            &store,
            first,
            date!(2025 - 10 - 14),
            kb('d', date!(2026 - 11 - 10)),
            |_| {},
        )
        .await;
        assert_eq!(
            store
                .scans
                .scan(judged)
                .await
                .unwrap()
                .unwrap()
                .superseded_by,
            Some(newest),
            "{backend}"
        );
        assert_eq!(census(newest).await, before, "{backend}");

        // Judgements go with their scan when it is pruned.
        let keep_one = PrunePolicy {
            keep_scans: Some(1),
            keep_since: None,
        };
        let mut pruned = store.scans.prune(&keep_one, true).await.unwrap().pruned;
        pruned.sort();
        assert_eq!(pruned, vec![first, judged, projected, newest], "{backend}");
    }
}

#[tokio::test]
async fn a_judgement_needs_a_finished_unpruned_scan() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let (first, second) = two_scans(&store).await;
        let new = |source| NewJudgement {
            source,
            as_of: date!(2025 - 10 - 14),
            kb: kb('e', date!(2026 - 10 - 02)),
            judged_at: datetime!(2026-12-01 10:00 UTC),
            tool_version: "t".into(),
        };
        let err = store
            .scans
            .begin_judgement(&new(ScanId(9_999)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::UnknownScan(_)),
            "{backend}: {err}"
        );
        let err = store.scans.begin_judgement(&new(second)).await.unwrap_err();
        assert!(err.to_string().contains("not finished"), "{backend}: {err}");
        let bad_digest = NewJudgement {
            kb: KbRef {
                digest: "XYZ".into(),
                newest_release: date!(2026 - 10 - 02),
            },
            ..new(first)
        };
        let err = store.scans.begin_judgement(&bad_digest).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Unencodable { .. }),
            "{backend}: {err}"
        );
        let judged = judge_again(
            &store,
            first,
            date!(2025 - 10 - 14),
            kb('f', date!(2026 - 10 - 02)),
            |_| {},
        )
        .await;
        let err = store.scans.begin_judgement(&new(judged)).await.unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("judge scan {first} again")),
            "{backend}: {err}"
        );
        store
            .scans
            .finish_scan(second, datetime!(2025-11-01 09:00 UTC))
            .await
            .unwrap();
        let keep_one = PrunePolicy {
            keep_scans: Some(1),
            keep_since: None,
        };
        store.scans.prune(&keep_one, false).await.unwrap();
        let err = store.scans.begin_judgement(&new(first)).await.unwrap_err();
        assert!(matches!(err, StoreError::ScanPruned(_)), "{backend}: {err}");
        // Nothing of the refused judgements was stored.
        assert_eq!(store.scans.scans().await.unwrap().len(), 3, "{backend}");
    }
}

#[tokio::test]
async fn verdict_facts_are_stored_once_per_distinct_value() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let (first, second) = two_scans(&store).await;
        // Five verdicts over two scans, but only two distinct builds: two facts rows.
        assert_eq!(
            db.scalar("SELECT count(*) FROM verdict_facts").await,
            2,
            "{backend}"
        );
        let shared = db
            .scalar("SELECT count(*) FROM observations WHERE exchange_facts_id IS NOT NULL")
            .await;
        assert_eq!(shared, 5, "{backend}");
        // And every verdict reads back whole.
        let mut expected = vec![
            exchange_2016("192.0.2.5", 443),
            exchange_2016("192.0.2.6", 80),
            exchange_se("192.0.2.6", 443),
            exchange_2016("2001:db8::7", 443),
            refused("192.0.2.8", 443),
        ];
        expected.sort_by_key(|o| (o.ip, o.port));
        assert_eq!(
            store.scans.observations(first).await.unwrap(),
            expected,
            "{backend}"
        );
        let later = store.scans.observations(second).await.unwrap();
        assert_eq!(
            later[0].exchange.as_ref().map(|x| x.family),
            Some(Family::Se)
        );
    }
}

fn organisation(id: &str, sector: Sector, cidr: &str) -> Organisation {
    Organisation {
        id: id.into(),
        name: format!("Org {id}"),
        sector,
        subsector: None,
        country: Some("DE".into()),
        naics: None,
        cidrs: vec![cidr.parse().unwrap()],
        asns: vec![64500],
        domains: vec![format!("{id}.example")],
        abuse_contact: Some(format!("abuse@{id}.example")),
        language: Some("de".into()),
    }
}

#[tokio::test]
async fn the_registry_is_replaced_whole_or_not_at_all() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        assert_eq!(
            store.registry.last_import().await.unwrap(),
            None,
            "{backend}"
        );
        let first = vec![
            organisation("klinikum", Sector::Hospital, "192.0.2.0/28"),
            organisation("gemeinde", Sector::Municipality, "2001:db8::/48"),
        ];
        let at = datetime!(2026-11-23 10:00 UTC);
        store
            .registry
            .replace_registry(&first, "registry.csv", at)
            .await
            .unwrap();
        let mut sorted = first.clone();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(
            store.registry.organisations().await.unwrap(),
            sorted,
            "{backend}"
        );
        let import = store.registry.last_import().await.unwrap().unwrap();
        assert_eq!(
            (import.source.as_str(), import.organisations),
            ("registry.csv", 2)
        );

        // A duplicate id is refused and the old registry stays.
        let twice = vec![
            organisation("praxis", Sector::MedicalPractice, "192.0.2.16/32"),
            organisation("praxis", Sector::MedicalPractice, "192.0.2.17/32"),
        ];
        let err = store.registry.replace_registry(&twice, "bad.csv", at).await;
        assert!(
            matches!(err, Err(StoreError::InvalidQuery(_))),
            "{backend}: {err:?}"
        );
        assert_eq!(
            store.registry.organisations().await.unwrap(),
            sorted,
            "{backend}"
        );

        // A new import replaces every organisation.
        let second = vec![organisation(
            "praxis",
            Sector::MedicalPractice,
            "192.0.2.16/32",
        )];
        store
            .registry
            .replace_registry(&second, "registry2.json", at)
            .await
            .unwrap();
        assert_eq!(
            store.registry.organisations().await.unwrap(),
            second,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn attributions_round_trip_and_count_by_sector_and_organisation() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-01 08:00 UTC)))
            .await
            .unwrap();
        let attributed = |mut o: Observation, org: &str, sector: Sector| {
            o.attribution = Some(Attribution {
                organisation: org.into(),
                sector,
                rule: AttributionRule::Cidr,
                confidence: Confidence::High,
                matched: "192.0.2.0/28".into(),
            });
            o
        };
        let batch = vec![
            attributed(
                exchange_2016("192.0.2.1", 443),
                "klinikum",
                Sector::Hospital,
            ),
            attributed(
                exchange_2016("192.0.2.2", 443),
                "klinikum",
                Sector::Hospital,
            ),
            attributed(
                exchange_se("192.0.2.3", 443),
                "gemeinde",
                Sector::Municipality,
            ),
            exchange_2016("192.0.2.4", 443),
        ];
        store.scans.record(scan, &batch).await.unwrap();
        let mut expected = batch.clone();
        expected.sort_by_key(|o| (o.ip, o.port));
        assert_eq!(
            store.scans.observations(scan).await.unwrap(),
            expected,
            "{backend}"
        );

        let count = |group_by: Vec<Dimension>, filter: CensusFilter| {
            let census = store.census.clone();
            async move { census.statistics(scan, &group_by, &filter).await.unwrap() }
        };
        let by_sector = |groups: Vec<CensusGroup>| -> Vec<(Option<String>, u64)> {
            groups.into_iter().map(|g| (g.sector, g.servers)).collect()
        };
        let live = by_sector(count(vec![Dimension::Sector], CensusFilter::default()).await);
        let expected_sectors = vec![
            (Some(String::new()), 1),
            (Some("hospital".to_string()), 2),
            (Some("municipality".to_string()), 1),
        ];
        assert_eq!(live, expected_sectors, "{backend}");
        store
            .scans
            .finish_scan(scan, datetime!(2025-10-01 09:00 UTC))
            .await
            .unwrap();
        let stored = by_sector(count(vec![Dimension::Sector], CensusFilter::default()).await);
        assert_eq!(stored, expected_sectors, "{backend}: from the aggregates");
        let klinikum = CensusFilter {
            organisation: Some("klinikum".into()),
            ..CensusFilter::default()
        };
        let groups = count(vec![Dimension::Organisation, Dimension::Family], klinikum).await;
        assert_eq!(groups.len(), 1, "{backend}");
        assert_eq!(
            (
                groups[0].organisation.as_deref(),
                groups[0].family,
                groups[0].servers
            ),
            (Some("klinikum"), Some(Family::E2016), 2)
        );
        let err = store
            .census
            .trend(&[Dimension::Organisation], &CensusFilter::default())
            .await;
        assert!(matches!(err, Err(StoreError::InvalidQuery(_))), "{backend}");
    }
}

#[tokio::test]
async fn networks_round_trip_and_count_by_asn_and_country() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-01 08:00 UTC)))
            .await
            .unwrap();
        let placed = |mut o: Observation, asn: Option<u32>, country: Option<&str>| {
            o.asn = asn;
            o.country = country.map(str::to_string);
            o
        };
        let batch = vec![
            placed(exchange_2016("192.0.2.1", 443), Some(64500), Some("DE")),
            placed(exchange_2016("192.0.2.2", 443), Some(64500), Some("DE")),
            placed(
                exchange_se("192.0.2.3", 443),
                Some(4_200_000_000),
                Some("AT"),
            ),
            placed(exchange_2016("192.0.2.4", 443), None, None),
            // Not a server: stored, never counted.
            placed(plain_http("192.0.2.5", 80), Some(64500), Some("DE")),
        ];
        store.scans.record(scan, &batch).await.unwrap();
        let mut expected = batch.clone();
        expected.sort_by_key(|o| (o.ip, o.port));
        assert_eq!(
            store.scans.observations(scan).await.unwrap(),
            expected,
            "{backend}"
        );

        let census = store.census.clone();
        let count = |group_by: Vec<Dimension>, filter: CensusFilter| {
            let census = census.clone();
            async move {
                census
                    .statistics(scan, &group_by, &filter)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|g| (g.asn, g.country, g.servers))
                    .collect::<Vec<_>>()
            }
        };
        let text = |s: &str| Some(s.to_string());
        let expected_groups = vec![
            (text(""), text(""), 1),
            (text("4200000000"), text("AT"), 1),
            (text("64500"), text("DE"), 2),
        ];
        let both = vec![Dimension::Asn, Dimension::Country];
        let live = count(both.clone(), CensusFilter::default()).await;
        assert_eq!(live, expected_groups, "{backend}: live");
        store
            .scans
            .finish_scan(scan, datetime!(2025-10-01 09:00 UTC))
            .await
            .unwrap();
        let stored = count(both.clone(), CensusFilter::default()).await;
        assert_eq!(stored, expected_groups, "{backend}: from the aggregates");
        let germany = CensusFilter {
            country: text("DE"),
            ..CensusFilter::default()
        };
        assert_eq!(
            count(vec![Dimension::Asn], germany.clone()).await,
            vec![(text("64500"), None, 2)],
            "{backend}"
        );
        let unknown_as = CensusFilter {
            asn: text(""),
            ..CensusFilter::default()
        };
        assert_eq!(
            count(vec![], unknown_as.clone()).await,
            vec![(None, None, 1)],
            "{backend}"
        );
        let trend = store
            .census
            .trend(&[Dimension::Country], &germany)
            .await
            .unwrap();
        assert_eq!(trend.len(), 1, "{backend}");
        assert_eq!(
            (trend[0].group.country.as_deref(), trend[0].group.servers),
            (Some("DE"), 2)
        );
        // The host list filters by the same values.
        let page = store
            .census
            .servers_page(scan, &unknown_as, None, 10)
            .await
            .unwrap();
        let ips: Vec<String> = page.servers.iter().map(|o| o.ip.to_string()).collect();
        assert_eq!(ips, vec!["192.0.2.4"], "{backend}");
        let page = store
            .census
            .servers_page(scan, &germany, None, 10)
            .await
            .unwrap();
        assert_eq!(page.servers.len(), 2, "{backend}");

        // A country that is not ISO 3166-1 alpha-2 is refused whole, naming the server.
        let other = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-02 08:00 UTC)))
            .await
            .unwrap();
        let bad = vec![
            placed(exchange_2016("192.0.2.1", 443), None, Some("DE")),
            placed(exchange_2016("192.0.2.9", 443), None, Some("deu")),
        ];
        let err = store.scans.record(other, &bad).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Unencodable { .. })
                && err.to_string().contains("192.0.2.9:443")
                && err.to_string().contains("country"),
            "{backend}: {err}"
        );
        assert!(store.scans.observations(other).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn tokens_are_kept_as_hashes_and_can_be_revoked() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let hash = "a".repeat(64);
        let at = datetime!(2026-11-23 10:00:00.5 UTC);
        let made = store
            .tokens
            .create_token("dashboard", Role::Viewer, &hash, at)
            .await
            .unwrap();
        let found = store.tokens.token_by_hash(&hash).await.unwrap();
        assert_eq!(found.as_ref(), Some(&made), "{backend}");
        assert_eq!(
            store.tokens.token_by_hash(&"b".repeat(64)).await.unwrap(),
            None
        );
        // The same hash twice is refused (a unique index), as is anything but 64 hex digits.
        assert!(store
            .tokens
            .create_token("again", Role::Admin, &hash, at)
            .await
            .is_err());
        let bad = store
            .tokens
            .create_token("x", Role::Admin, "not-a-hash", at)
            .await;
        assert!(matches!(bad, Err(StoreError::InvalidQuery(_))), "{backend}");

        assert!(
            store.tokens.revoke_token(made.id, at).await.unwrap(),
            "{backend}"
        );
        assert!(
            !store.tokens.revoke_token(made.id, at).await.unwrap(),
            "{backend}: once"
        );
        let revoked = store.tokens.token_by_hash(&hash).await.unwrap().unwrap();
        assert_eq!(revoked.revoked_at, Some(at), "{backend}");
        assert_eq!(
            store.tokens.tokens().await.unwrap(),
            vec![revoked],
            "{backend}"
        );
    }
}

#[tokio::test]
async fn server_pages_walk_a_scan_once_with_filters_and_survive_bad_cursors() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let scan = store
            .scans
            .begin_scan(&new_scan(datetime!(2025-10-01 08:00 UTC)))
            .await
            .unwrap();
        let mut batch = Vec::new();
        for i in 0..23u8 {
            let ip = format!("192.0.2.{}", i + 1);
            batch.push(if i % 3 == 0 {
                exchange_se(&ip, 443)
            } else {
                exchange_2016(&ip, 443)
            });
            batch.push(refused(&format!("198.51.100.{}", i + 1), 443));
        }
        store.scans.record(scan, &batch).await.unwrap();

        // Pages of 5 walk all 23 servers exactly once, never a refused address.
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = store
                .census
                .servers_page(scan, &CensusFilter::default(), after, 5)
                .await
                .unwrap();
            assert!(page.servers.len() <= 5, "{backend}");
            pages += 1;
            seen.extend(page.servers.iter().map(|o| o.ip));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 5, "{backend}");
        let mut expected: Vec<IpAddr> = batch
            .iter()
            .filter(|o| o.exchange.is_some())
            .map(|o| o.ip)
            .collect();
        expected.sort();
        seen.sort();
        assert_eq!(seen, expected, "{backend}");

        // A filter narrows the walk; the page is the observations as recorded.
        let se = CensusFilter {
            family: Some(Family::Se),
            ..CensusFilter::default()
        };
        let page = store
            .census
            .servers_page(scan, &se, None, 100)
            .await
            .unwrap();
        assert_eq!(page.servers.len(), 8, "{backend}");
        assert_eq!(page.next, None, "{backend}");
        assert!(page.servers.iter().all(|o| batch.contains(o)), "{backend}");
        let nobody = CensusFilter {
            organisation: Some("nobody".into()),
            ..CensusFilter::default()
        };
        let empty = store.census.servers_page(scan, &nobody, None, 10).await;
        assert_eq!(empty.unwrap().servers, vec![], "{backend}");

        // Cursors are opaque tokens: only what the store handed out reads back.
        let next = store
            .census
            .servers_page(scan, &CensusFilter::default(), None, 1)
            .await
            .unwrap()
            .next
            .unwrap();
        assert_eq!(ServerCursor::from_token(&next.token()), Some(next));
        for bad in [
            "",
            "o",
            "o0",
            "o01",
            "o-1",
            "x5",
            "o5x",
            "o99999999999999999999",
        ] {
            assert_eq!(ServerCursor::from_token(bad), None, "{bad:?}");
        }
        assert!(matches!(
            store
                .census
                .servers_page(ScanId(scan.0 + 99), &CensusFilter::default(), None, 5)
                .await,
            Err(StoreError::UnknownScan(_))
        ));
    }
}

#[tokio::test]
async fn exports_are_logged_with_who_what_and_how_it_ended() {
    for (backend, db) in each_backend().await {
        let store = open(&db.url).await.unwrap();
        let at = datetime!(2026-11-23 10:00:00.25 UTC);
        let token = store
            .tokens
            .create_token("uni-study", Role::Researcher, &"c".repeat(64), at)
            .await
            .unwrap();
        let filter = CensusFilter {
            family: Some(Family::E2016),
            sector: Some("health".into()),
            ..CensusFilter::default()
        };
        let export = NewExport {
            started_at: at,
            token: token.clone(),
            scan: ScanId(7),
            format: "csv".into(),
            pseudonymised: true,
            filter: filter.clone(),
        };
        let first = store.tokens.begin_export(&export).await.unwrap();
        let second = store
            .tokens
            .begin_export(&NewExport {
                started_at: at + time::Duration::minutes(1),
                format: "jsonl".into(),
                ..export.clone()
            })
            .await
            .unwrap();
        let log = store.tokens.exports(10).await.unwrap();
        assert_eq!(
            log.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![second, first],
            "{backend}: newest first"
        );
        assert_eq!(log[1].outcome, ExportOutcome::Running, "{backend}");
        assert_eq!(log[1].rows, None, "{backend}");

        let end = at + time::Duration::seconds(3);
        store
            .tokens
            .finish_export(first, 1234, ExportOutcome::Complete, end)
            .await
            .unwrap();
        store
            .tokens
            .finish_export(second, 10, ExportOutcome::Aborted, end)
            .await
            .unwrap();
        let log = store.tokens.exports(1).await.unwrap();
        assert_eq!(log.len(), 1, "{backend}: the limit holds");
        let all = store.tokens.exports(10).await.unwrap();
        let done = all.iter().find(|e| e.id == first).unwrap();
        assert_eq!(
            done,
            &ExportRecord {
                id: first,
                started_at: at,
                finished_at: Some(end),
                token_id: token.id,
                token_name: "uni-study".into(),
                role: Role::Researcher,
                scan: ScanId(7),
                format: "csv".into(),
                pseudonymised: true,
                filter,
                rows: Some(1234),
                outcome: ExportOutcome::Complete,
            },
            "{backend}"
        );
        assert_eq!(all[0].outcome, ExportOutcome::Aborted, "{backend}");
    }
}

fn new_scan(started_at: OffsetDateTime) -> NewScan {
    NewScan {
        started_at,
        as_of: date!(2025 - 10 - 14),
        targets: "192.0.2.0/24, 2001:db8::/120".into(),
        ports: vec![443, 80, 8443],
        tool_version: "surveyor 0.0.0".into(),
        kb: None,
    }
}

fn at(ip: &str, port: u16) -> Observation {
    Observation {
        ip: ip.parse::<IpAddr>().unwrap(),
        port,
        scheme: if port == 80 {
            Scheme::Http
        } else {
            Scheme::Https
        },
        observed_at: datetime!(2025-10-14 09:30:01.123_456 UTC),
        status: Status::Success,
        error: None,
        tls: None,
        http_server: None,
        fingerprint: Fingerprint::default(),
        exchange: None,
        attribution: None,
        asn: None,
        country: None,
    }
}

fn refused(ip: &str, port: u16) -> Observation {
    Observation {
        status: Status::ConnectionRefused,
        error: Some("connection refused".into()),
        ..at(ip, port)
    }
}

fn plain_http(ip: &str, port: u16) -> Observation {
    Observation {
        http_server: Some("nginx/1.24.0".into()),
        ..at(ip, port)
    }
}

fn tls() -> TlsInfo {
    TlsInfo {
        version: "TLSv1.2".into(),
        cipher: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".into(),
        cert_sha256: Some(
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        ),
        subject: Some("CN=mail.example.org".into()),
        issuer: None,
        names: vec!["mail.example.org".into(), "autodiscover.example.org".into()],
        // Inside JSON the dates keep every digit they have, nanoseconds included.
        not_before: Some(datetime!(2025-01-01 00:00:00.000_000_001 UTC)),
        not_after: None,
    }
}

fn exchange(ip: &str, port: u16, build: Build, support: Support, name: &str) -> Observation {
    // The CU is the name without its update ("… CU23 Oct25SU" -> "… CU23").
    let cu = match name.rsplit_once(' ') {
        Some((cu, update)) if update.ends_with("SU") => cu.to_string(),
        _ => name.to_string(),
    };
    let evidence = vec![
        Evidence {
            signal: Signal::OwaVersionHeader,
            source: "GET /owa/".into(),
            value: build.to_string(),
        },
        Evidence {
            signal: Signal::LogonPageMarker,
            source: "GET /owa/auth/logon.aspx".into(),
            value: "<title>Outlook</title>".into(),
        },
    ];
    let mut o = at(ip, port);
    o.http_server = Some("Microsoft-IIS/10.0".into());
    if port != 80 {
        o.tls = Some(tls());
    }
    o.fingerprint = Fingerprint {
        evidence: evidence.clone(),
    };
    o.exchange = Some(ExchangeVerdict {
        family: build.family().unwrap(),
        build,
        version_name: name.into(),
        cu: Some(cu),
        support,
        evidence,
        build_precision: None,
        confidence: None,
        support_reason: None,
        esu_patched: false,
        // Exact builds are 40 days behind their CU's newest update; for CU-only ones it is unknown.
        patch_level: PatchLevel {
            days_behind_cu: build.is_exact().then_some(40),
            ..PatchLevel::default()
        },
        upgrade_path: None,
        cves: Vec::new(),
        exchange_online: None,
        inconsistencies: Vec::new(),
    });
    o
}

fn exchange_2016(ip: &str, port: u16) -> Observation {
    let build = Build::new(15, 1, 2507, Some(61));
    exchange(
        ip,
        port,
        build,
        Support::Unsupported,
        "Exchange Server 2016 CU23 Oct25SU",
    )
}

fn exchange_se(ip: &str, port: u16) -> Observation {
    let build = Build::new(15, 2, 2562, None);
    exchange(
        ip,
        port,
        build,
        Support::Supported,
        "Exchange Server SE RTM",
    )
}
