//! Upgrading a database that holds data: a store at the first schema (migration 0001), filled
//! the way the first release wrote it, then opened by this release, which applies every later
//! migration. What the old scans counted must still be what they count, on both backends.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor};
use surveyor_model::{
    Build, Evidence, ExchangeVerdict, Family, Fingerprint, Signal, Status, Support,
};
use surveyor_store::testing::{each_backend, TestDb};
use surveyor_store::{Backend, CensusFilter, Dimension, NewScan, ScanId};
use time::macros::{date, datetime};

static POSTGRES: Migrator = sqlx::migrate!("../../migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// The first migration alone: the schema of the first release.
fn first_schema(all: &Migrator) -> Migrator {
    let mut first = Migrator::DEFAULT;
    first.migrations = all
        .iter()
        .filter(|m| m.version == 1)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    assert_eq!(first.migrations.len(), 1);
    first
}

fn verdict(family: Family, build: &str, support: Support) -> String {
    let verdict = ExchangeVerdict {
        family,
        build: build.parse::<Build>().unwrap(),
        version_name: format!("{} old", family.product_name()),
        cu: None,
        support,
        evidence: vec![Evidence {
            signal: Signal::OwaVersionHeader,
            source: "GET /owa/".into(),
            value: build.into(),
        }],
        build_precision: None,
        confidence: None,
        support_reason: None,
        esu_patched: false,
        patch_level: Default::default(),
        upgrade_path: None,
        cves: Vec::new(),
        exchange_online: None,
        inconsistencies: Vec::new(),
    };
    serde_json::to_string(&verdict).unwrap()
}

/// One old observation: (ip, port, verdict as family, build, support).
type Old = (&'static str, u16, Option<(Family, &'static str, Support)>);

const OLD: [Old; 5] = [
    (
        "192.0.2.1",
        443,
        Some((Family::E2016, "15.1.2507.39", Support::Unsupported)),
    ),
    // The same address on a second port counts once, as the newest family it shows.
    (
        "192.0.2.1",
        8443,
        Some((Family::Se, "15.2.2562.17", Support::Supported)),
    ),
    (
        "192.0.2.2",
        443,
        Some((Family::E2019, "15.2.1748.10", Support::Unsupported)),
    ),
    (
        "2001:db8::5",
        443,
        Some((Family::E2016, "15.1.2507.39", Support::Unsupported)),
    ),
    ("192.0.2.3", 80, None),
];

/// A database at schema 0001 holding one finished scan of [`OLD`], written with the first
/// release's SQL.
async fn old_database(db: &TestDb) {
    let fingerprint = serde_json::to_string(&Fingerprint::default()).unwrap();
    match db.backend() {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            first_schema(&POSTGRES).run(&mut conn).await.unwrap();
            conn.execute(
                "INSERT INTO scans (started_at, finished_at, as_of, targets, ports, tool_version) \
                 VALUES ('2025-10-01 08:00:00+00', '2025-10-01 09:00:00+00', '2025-10-01', \
                 '192.0.2.0/24', '{443,80,8443}', 'surveyor 0.1.0')",
            )
            .await
            .unwrap();
            for (ip, port, v) in OLD {
                let (family, build, name, support, verdict) = columns(v);
                sqlx::query(
                    "INSERT INTO observations (scan_id, ip, port, scheme, observed_at, status, \
                     fingerprint, exchange_family, exchange_build, exchange_version_name, \
                     exchange_support, exchange_verdict) VALUES (1, $1::inet, $2, 'https', \
                     '2025-10-01 08:30:00+00', 'success', $3::jsonb, $4, $5, $6, $7, $8::jsonb)",
                )
                .bind(ip)
                .bind(i32::from(port))
                .bind(&fingerprint)
                .bind(family)
                .bind(build)
                .bind(name)
                .bind(support)
                .bind(verdict)
                .execute(&mut conn)
                .await
                .unwrap();
            }
            conn.close().await.unwrap();
        }
        Backend::Sqlite => {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
                .unwrap()
                .create_if_missing(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .unwrap();
            first_schema(&SQLITE).run(&mut conn).await.unwrap();
            conn.execute(
                "INSERT INTO scans (started_at, finished_at, as_of, targets, ports, tool_version) \
                 VALUES ('2025-10-01T08:00:00.000000Z', '2025-10-01T09:00:00.000000Z', \
                 '2025-10-01', '192.0.2.0/24', '[443,80,8443]', 'surveyor 0.1.0')",
            )
            .await
            .unwrap();
            for (ip, port, v) in OLD {
                let (family, build, name, support, verdict) = columns(v);
                sqlx::query(
                    "INSERT INTO observations (scan_id, ip, port, scheme, observed_at, status, \
                     fingerprint, exchange_family, exchange_build, exchange_version_name, \
                     exchange_support, exchange_verdict) VALUES (1, ?, ?, 'https', \
                     '2025-10-01T08:30:00.000000Z', 'success', ?, ?, ?, ?, ?, ?)",
                )
                .bind(ip)
                .bind(i32::from(port))
                .bind(&fingerprint)
                .bind(family)
                .bind(build)
                .bind(name)
                .bind(support)
                .bind(verdict)
                .execute(&mut conn)
                .await
                .unwrap();
            }
            conn.close().await.unwrap();
        }
    }
}

type Columns = (
    Option<&'static str>,
    Option<&'static str>,
    Option<String>,
    Option<&'static str>,
    Option<String>,
);

fn columns(v: Option<(Family, &'static str, Support)>) -> Columns {
    match v {
        None => (None, None, None, None, None),
        Some((family, build, support)) => (
            Some(family.as_str()),
            Some(build),
            Some(format!("{} old", family.product_name())),
            Some(support.as_str()),
            Some(verdict(family, build, support)),
        ),
    }
}

#[tokio::test]
async fn a_database_of_the_first_release_upgrades_with_its_census_intact() {
    for (backend, db) in each_backend().await {
        old_database(&db).await;
        let store = surveyor_store::open(&db.url).await.unwrap();
        assert!(store.schema().0 >= 8, "{backend}: {:?}", store.schema());
        let old = ScanId(1);

        // The scan as listed: its observation count was backfilled (0002).
        let scans = store.scans.scans().await.unwrap();
        assert_eq!(scans.len(), 1, "{backend}");
        assert_eq!(scans[0].observations, OLD.len() as u64, "{backend}");
        assert!(scans[0].finished_at.is_some());

        // Every old observation reads back whole, the verdict from its one JSON column.
        let observations = store.scans.observations(old).await.unwrap();
        assert_eq!(observations.len(), OLD.len(), "{backend}");
        for o in &observations {
            assert_eq!(o.status, Status::Success);
            assert_eq!((o.asn, o.country.as_deref()), (None, None), "{backend}");
            assert!(o.attribution.is_none());
        }
        let se = observations
            .iter()
            .find(|o| o.port == 8443)
            .and_then(|o| o.exchange.clone())
            .unwrap();
        assert_eq!(se.build, "15.2.2562.17".parse::<Build>().unwrap());

        // The census of the old scan, from the aggregates 0002 backfilled: three servers
        // (192.0.2.1 counts once, as SE), with CU, patch, sector, AS and country unknown.
        let count = |group_by: Vec<Dimension>| {
            let census = store.census.clone();
            async move {
                census
                    .statistics(old, &group_by, &CensusFilter::default())
                    .await
                    .unwrap()
            }
        };
        let by_family: Vec<(Option<Family>, Option<Support>, u64)> =
            count(vec![Dimension::Family, Dimension::Support])
                .await
                .into_iter()
                .map(|g| (g.family, g.support, g.servers))
                .collect();
        assert_eq!(
            by_family,
            vec![
                (Some(Family::E2016), Some(Support::Unsupported), 1),
                (Some(Family::E2019), Some(Support::Unsupported), 1),
                (Some(Family::Se), Some(Support::Supported), 1),
            ],
            "{backend}"
        );
        let unknown = count(vec![
            Dimension::Cu,
            Dimension::Sector,
            Dimension::Asn,
            Dimension::Country,
        ])
        .await;
        assert_eq!(unknown.len(), 1, "{backend}: {unknown:?}");
        let g = &unknown[0];
        assert_eq!(
            (
                g.cu.as_deref(),
                g.sector.as_deref(),
                g.asn.as_deref(),
                g.country.as_deref(),
                g.servers
            ),
            (Some(""), Some(""), Some(""), Some(""), 3),
            "{backend}"
        );
        let patch: Vec<_> = count(vec![Dimension::Patch])
            .await
            .into_iter()
            .map(|g| (g.patch.map(|p| p.as_str()), g.servers))
            .collect();
        assert_eq!(patch, vec![(Some("unknown"), 3)], "{backend}");

        // The host table was backfilled from it (0002): one row per address and port.
        let host = store
            .census
            .host("192.0.2.1".parse().unwrap())
            .await
            .unwrap();
        let ports: Vec<(u16, Option<Family>)> = host
            .ports
            .iter()
            .map(|p| (p.port, p.exchange.as_ref().map(|x| x.family)))
            .collect();
        assert_eq!(
            ports,
            vec![(443, Some(Family::E2016)), (8443, Some(Family::Se))],
            "{backend}"
        );
        assert_eq!(host.history.len(), 2, "{backend}");

        // A scan of this release beside it: the trend runs across both.
        let new = store
            .scans
            .begin_scan(&NewScan {
                started_at: datetime!(2026-11-23 08:00 UTC),
                as_of: date!(2026 - 11 - 23),
                targets: "192.0.2.0/24".into(),
                ports: vec![443],
                tool_version: "surveyor now".into(),
                kb: None,
            })
            .await
            .unwrap();
        let mut again = observations[0].clone();
        again.observed_at = datetime!(2026-11-23 08:30 UTC);
        again.country = Some("DE".into());
        store
            .scans
            .record(new, std::slice::from_ref(&again))
            .await
            .unwrap();
        store
            .scans
            .finish_scan(new, datetime!(2026-11-23 09:00 UTC))
            .await
            .unwrap();
        let trend = store
            .census
            .trend(&[], &CensusFilter::default())
            .await
            .unwrap();
        let points: Vec<(ScanId, u64)> = trend.iter().map(|p| (p.scan, p.group.servers)).collect();
        assert_eq!(points, vec![(old, 3), (new, 1)], "{backend}");
    }
}
