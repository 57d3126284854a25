//! The API's wire format, byte for byte: every endpoint's JSON over a small fixed store, and
//! the OpenAPI document, compared with the files in `tests/wire/`. A change to a store or model
//! type that would change what clients read fails here; a change meant to be made rewrites the
//! files (`SURVEYOR_WIRE_UPDATE=1`) and shows in the commit's diff.

mod common;

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use surveyor_api::ApiConfig;
use surveyor_model::{
    Attribution, AttributionRule, Evidence, ExchangeVerdict, Family, Fingerprint, Observation,
    Organisation, Scheme, Sector, Signal, Status, Support,
};
use surveyor_store::{testing, KbRef, NewJudgement, NewScan, Role, Store};
use time::macros::{date, datetime};
use tower::ServiceExt;

const ADMIN: &str = "svy_wire_admin";

/// Each endpoint the contract in `docs/output.md` describes, with the file its answer is kept in.
const CASES: &[(&str, &str)] = &[
    ("census", "/api/v1/census"),
    ("census-original", "/api/v1/census?scan=1"),
    ("census-unfinished", "/api/v1/census?scan=2"),
    ("scans", "/api/v1/scans"),
    ("statistics-total", "/api/v1/statistics"),
    (
        "statistics-all-dimensions",
        "/api/v1/statistics?group_by=family,cu,version,support,patch,sector,organisation,asn,country",
    ),
    ("trends", "/api/v1/trends?group_by=support"),
    (
        "trends-original",
        "/api/v1/trends?group_by=family&judgements=original",
    ),
    ("hosts", "/api/v1/hosts?limit=1"),
    ("hosts-last-page", "/api/v1/hosts?limit=1&cursor=CURSOR"),
    ("host", "/api/v1/hosts/192.0.2.1"),
    ("organisations", "/api/v1/organisations"),
    ("organisations-of-scan", "/api/v1/organisations?scan=1"),
    ("exports", "/api/v1/exports"),
    ("error-not-found", "/api/v1/census?scan=99"),
];

fn observation(last: u8, exchange: Option<(Family, &str, Support)>, org: &str) -> Observation {
    Observation {
        ip: format!("192.0.2.{last}").parse().unwrap(),
        port: 443,
        scheme: Scheme::Https,
        observed_at: datetime!(2026-11-23 06:00:00.123456 UTC),
        status: Status::Success,
        error: None,
        tls: None,
        http_server: Some("Microsoft-IIS/10.0".into()),
        fingerprint: Fingerprint {
            evidence: vec![Evidence {
                signal: Signal::OwaVersionHeader,
                source: "GET /owa/".into(),
                value: "15.1.2507".into(),
            }],
        },
        exchange: exchange.map(|(family, build, support)| ExchangeVerdict {
            cu: Some("CU23".into()),
            ..common::verdict(family, build, support)
        }),
        attribution: Some(Attribution {
            organisation: org.into(),
            sector: Sector::Hospital,
            rule: AttributionRule::Cidr,
            confidence: surveyor_model::observation::Confidence::High,
            matched: "192.0.2.0/24".into(),
        }),
        asn: Some(64500),
        country: Some("DE".into()),
    }
}

fn organisation(id: &str) -> Organisation {
    Organisation {
        id: id.into(),
        name: format!("{id} (test)"),
        sector: Sector::Hospital,
        subsector: None,
        country: Some("DE".into()),
        naics: None,
        cidrs: vec!["192.0.2.0/24".parse().unwrap()],
        asns: vec![64500],
        domains: vec![format!("{id}.example")],
        abuse_contact: Some(format!("abuse@{id}.example")),
        language: Some("de".into()),
    }
}

/// Scan 1 (finished, then judged again as scan 3 with a knowledge base), scan 2 unfinished.
async fn seed(store: &Store) {
    store
        .registry
        .replace_registry(
            &[organisation("klinikum"), organisation("schule")],
            "wire",
            datetime!(2026-11-23 05:00 UTC),
        )
        .await
        .unwrap();
    let servers = [
        observation(
            1,
            Some((Family::E2016, "15.1.2507.61", Support::Unsupported)),
            "klinikum",
        ),
        observation(
            2,
            Some((Family::Se, "15.2.2562.29", Support::Supported)),
            "klinikum",
        ),
        observation(3, None, "klinikum"),
    ];
    let first = store
        .scans
        .begin_scan(&NewScan {
            started_at: datetime!(2026-11-23 05:59:00 UTC),
            as_of: date!(2026 - 11 - 23),
            targets: "192.0.2.0/24".into(),
            ports: vec![443, 25],
            tool_version: "wire".into(),
            kb: None,
        })
        .await
        .unwrap();
    store.scans.record(first, &servers).await.unwrap();
    store
        .scans
        .finish_scan(first, datetime!(2026-11-23 06:01:00 UTC))
        .await
        .unwrap();
    store
        .scans
        .begin_scan(&NewScan {
            started_at: datetime!(2026-11-24 05:59:00 UTC),
            as_of: date!(2026 - 11 - 24),
            targets: "192.0.2.0/24".into(),
            ports: vec![443],
            tool_version: "wire".into(),
            kb: None,
        })
        .await
        .unwrap();
    let judgement = store
        .scans
        .begin_judgement(&NewJudgement {
            source: first,
            as_of: date!(2026 - 11 - 23),
            kb: KbRef {
                digest: "ab".repeat(32),
                newest_release: date!(2026 - 11 - 11),
            },
            judged_at: datetime!(2026-11-25 08:00:00 UTC),
            tool_version: "wire".into(),
        })
        .await
        .unwrap();
    store.scans.record(judgement, &servers).await.unwrap();
    store
        .scans
        .finish_scan(judgement, datetime!(2026-11-25 08:00:01 UTC))
        .await
        .unwrap();
    store
        .tokens
        .create_token(
            "admin",
            Role::Admin,
            &surveyor_api::token_hash(ADMIN),
            datetime!(2026-11-23 06:00 UTC),
        )
        .await
        .unwrap();
}

async fn get(store: &Store, uri: &str) -> (StatusCode, Vec<u8>) {
    let response = surveyor_api::router(store.clone(), ApiConfig::default())
        .oneshot(
            Request::get(uri)
                .header("authorization", format!("Bearer {ADMIN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

/// Replaces the value of every `"key":"…"` string with `…`: for times the clock sets.
fn mask(text: &str, key: &str) -> String {
    let needle = format!("\"{key}\":\"");
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let start = at + needle.len();
        out.push_str(&rest[..start]);
        out.push('…');
        let end = rest[start..].find('"').unwrap();
        rest = &rest[start + end..];
    }
    out.push_str(rest);
    out
}

/// The file a case is kept in; with `SURVEYOR_WIRE_UPDATE=1` it is rewritten instead.
fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/wire")
        .join(format!("{name}.json"));
    if std::env::var("SURVEYOR_WIRE_UPDATE").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (SURVEYOR_WIRE_UPDATE=1 writes it)", path.display()));
    assert!(
        actual == expected,
        "{name}: the wire format changed\nexpected: {expected}\nactual:   {actual}"
    );
}

async fn wire_format(store: Store) {
    seed(&store).await;
    // One export, so that the audit log has an entry; it is closed once its body is read.
    let (status, _) = get(&store, "/api/v1/exports/jsonl?scan=1").await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..500 {
        let entries = store.tokens.exports(1).await.unwrap();
        if entries[0].finished_at.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut cursor = String::new();
    for (name, uri) in CASES {
        let uri = uri.replace("CURSOR", &cursor);
        let (status, body) = get(&store, &uri).await;
        let body = String::from_utf8(body).unwrap();
        if *name == "hosts" {
            let page: serde_json::Value = serde_json::from_str(&body).unwrap();
            cursor = page["next_cursor"].as_str().unwrap().to_string();
        }
        // Only the audit log's times come from the clock.
        let body = if *name == "exports" {
            mask(&mask(&body, "started_at"), "finished_at")
        } else {
            body
        };
        check(name, &format!("{}\n{body}\n", status.as_u16()));
    }
    let (status, document) = get(&store, "/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    check("openapi", &String::from_utf8(document).unwrap());
}

#[tokio::test]
async fn wire_format_on_sqlite() {
    let db = testing::sqlite();
    wire_format(surveyor_store::open(&db.url).await.unwrap()).await;
}

#[tokio::test]
async fn wire_format_on_postgres() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    wire_format(surveyor_store::open(&db.url).await.unwrap()).await;
}
