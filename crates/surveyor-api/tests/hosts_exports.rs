//! Host lists, organisations, exports and their audit log, and per-token rates, over a real
//! store on SQLite and PostgreSQL.

mod common;

use std::num::NonZeroU32;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value;
use surveyor_api::{ApiConfig, PseudonymKey};
use surveyor_model::{
    Attribution, AttributionRule, Evidence, Family, Fingerprint, Observation, Organisation, Scheme,
    Sector, Signal, Status, Support,
};
use surveyor_store::{testing, NewScan, Role, ScanId, Store};
use time::macros::{date, datetime};
use tower::ServiceExt;

/// Servers in the big scan: more than one export page (1,000) and many host pages.
const SERVERS: usize = 2_300;

fn server(i: usize) -> Observation {
    let (family, build, support) = if i.is_multiple_of(4) {
        (Family::Se, "15.2.2562.17", Support::Supported)
    } else {
        (Family::E2016, "15.1.2507.61", Support::Unsupported)
    };
    let hospital = i.is_multiple_of(2);
    Observation {
        ip: format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)
            .parse()
            .unwrap(),
        port: 443,
        scheme: Scheme::Https,
        observed_at: datetime!(2026-11-23 06:00:00 UTC),
        status: Status::Success,
        error: None,
        tls: None,
        http_server: Some("Microsoft-IIS/10.0".into()),
        fingerprint: Fingerprint {
            evidence: vec![Evidence {
                signal: Signal::NtlmDnsDomain,
                source: "GET /ews/".into(),
                value: "klinikum.local".into(),
            }],
        },
        exchange: Some(common::verdict(family, build, support)),
        attribution: Some(Attribution {
            organisation: if hospital { "klinikum" } else { "stadt" }.into(),
            sector: if hospital {
                Sector::Hospital
            } else {
                Sector::Municipality
            },
            rule: AttributionRule::Cidr,
            confidence: surveyor_model::observation::Confidence::High,
            matched: "10.0.0.0/8".into(),
        }),
        asn: Some(if hospital { 64500 } else { 64501 }),
        country: Some(if hospital { "DE" } else { "AT" }.into()),
    }
}

fn organisation(id: &str, sector: Sector) -> Organisation {
    Organisation {
        id: id.into(),
        name: format!("{id} (test)"),
        sector,
        subsector: None,
        country: Some("DE".into()),
        naics: None,
        cidrs: Vec::new(),
        asns: Vec::new(),
        domains: Vec::new(),
        abuse_contact: Some(format!("abuse@{id}.example")),
        language: Some("de".into()),
    }
}

async fn seed(store: &Store) -> ScanId {
    store
        .registry
        .replace_registry(
            &[
                organisation("klinikum", Sector::Hospital),
                organisation("stadt", Sector::Municipality),
                organisation("schule", Sector::School),
            ],
            "test",
            datetime!(2026-11-23 05:00 UTC),
        )
        .await
        .unwrap();
    let id = store
        .scans
        .begin_scan(&NewScan {
            started_at: datetime!(2026-11-23 05:59:00 UTC),
            as_of: date!(2026 - 11 - 23),
            targets: "10.0.0.0/16".into(),
            ports: vec![443],
            tool_version: "test".into(),
            kb: None,
        })
        .await
        .unwrap();
    let all: Vec<Observation> = (0..SERVERS).map(server).collect();
    for batch in all.chunks(500) {
        store.scans.record(id, batch).await.unwrap();
    }
    store
        .scans
        .finish_scan(id, datetime!(2026-11-23 06:01:00 UTC))
        .await
        .unwrap();
    id
}

async fn token(store: &Store, role: Role) -> String {
    let token = format!("svy_test_{}", role.as_str());
    store
        .tokens
        .create_token(
            role.as_str(),
            role,
            &surveyor_api::token_hash(&token),
            datetime!(2026-11-23 06:00 UTC),
        )
        .await
        .unwrap();
    token
}

async fn raw(
    store: &Store,
    config: ApiConfig,
    uri: &str,
    token: Option<&str>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut builder = Request::get(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let response = surveyor_api::router(store.clone(), config)
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

async fn json(store: &Store, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let (status, _, bytes) = raw(store, ApiConfig::default(), uri, token).await;
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!("{uri}: not JSON: {}", String::from_utf8_lossy(&bytes));
    });
    (status, body)
}

async fn hosts_and_organisations(store: Store) {
    let scan = seed(&store).await;
    let analyst = token(&store, Role::Analyst).await;
    let viewer = token(&store, Role::Viewer).await;
    let researcher = token(&store, Role::Researcher).await;

    for (who, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(viewer.as_str()), StatusCode::FORBIDDEN),
        (Some(researcher.as_str()), StatusCode::FORBIDDEN),
    ] {
        for uri in ["/api/v1/hosts", "/api/v1/organisations"] {
            let (status, body) = json(&store, uri, who).await;
            assert_eq!(status, expected, "{uri} {who:?}: {body}");
        }
    }

    // Walk every unsupported hospital server in pages of 400: each exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut uri = "/api/v1/hosts?sector=hospital&support=unsupported&limit=400".to_string();
        if let Some(c) = &cursor {
            uri.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = json(&store, &uri, Some(&analyst)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["scan"]["id"], scan.0);
        let hosts = body["hosts"].as_array().unwrap();
        assert!(hosts.len() <= 400);
        for h in hosts {
            assert_eq!(h["exchange"]["support"], "unsupported");
            assert_eq!(h["attribution"]["sector"], "hospital");
            seen.push(h["ip"].as_str().unwrap().to_string());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..SERVERS)
        .map(server)
        .filter(|o| {
            o.attribution.as_ref().unwrap().sector == Sector::Hospital
                && o.exchange.as_ref().unwrap().support == Support::Unsupported
        })
        .map(|o| o.ip.to_string())
        .collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen.len(), expected.len());
    assert_eq!(seen, expected);

    for (uri, needle) in [
        ("/api/v1/hosts?limit=0", "limit"),
        ("/api/v1/hosts?limit=1001", "limit"),
        ("/api/v1/hosts?limit=many", "limit"),
        ("/api/v1/hosts?cursor=12", "cursor"),
        ("/api/v1/hosts?cursor=o", "cursor"),
        ("/api/v1/hosts?family=2099", "family"),
        ("/api/v1/hosts?pages=2", "pages"),
        ("/api/v1/hosts?scan=1&as_of=2026-11-23", "as_of"),
        ("/api/v1/organisations?as_of=yesterday", "as_of"),
        ("/api/v1/organisations?sector=hospital", "sector"),
    ] {
        let (status, body) = json(&store, uri, Some(&analyst)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{uri}: {message}");
    }
    let (status, _) = json(&store, "/api/v1/hosts?scan=999", Some(&analyst)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = json(&store, "/api/v1/organisations", Some(&analyst)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let orgs = body["organisations"].as_array().unwrap();
    let count = |id: &str, field: &str| {
        orgs.iter().find(|o| o["id"] == id).unwrap()[field]
            .as_u64()
            .unwrap()
    };
    let of = |org: &str, unsupported: bool| {
        (0..SERVERS)
            .map(server)
            .filter(|o| {
                o.attribution.as_ref().unwrap().organisation == org
                    && (!unsupported
                        || o.exchange.as_ref().unwrap().support == Support::Unsupported)
            })
            .count() as u64
    };
    assert_eq!(count("klinikum", "servers"), of("klinikum", false));
    assert_eq!(count("klinikum", "unsupported"), of("klinikum", true));
    assert_eq!(count("stadt", "servers"), of("stadt", false));
    assert_eq!(count("schule", "servers"), 0);
    assert_eq!(orgs[0]["abuse_contact"], "abuse@klinikum.example");

    // By country: an aggregate; by AS: it can name an organisation, so host-level.
    let hospitals = (0..SERVERS).filter(|i| i.is_multiple_of(2)).count() as u64;
    let (status, body) = json(&store, "/api/v1/statistics?group_by=country", Some(&viewer)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let groups: Vec<(String, u64)> = body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["country"].as_str().unwrap().into(),
                g["servers"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            ("AT".to_string(), SERVERS as u64 - hospitals),
            ("DE".to_string(), hospitals)
        ]
    );
    for uri in [
        "/api/v1/statistics?group_by=asn",
        "/api/v1/statistics?asn=64500",
        "/api/v1/trends?group_by=country,asn",
    ] {
        let (status, body) = json(&store, uri, Some(&viewer)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {body}");
    }
    let (status, body) = json(
        &store,
        "/api/v1/statistics?group_by=asn&country=de",
        Some(&analyst),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["groups"][0]["asn"], "64500", "{body}");
    assert_eq!(body["groups"][0]["servers"], hospitals, "{body}");
    assert_eq!(body["groups"].as_array().unwrap().len(), 1, "{body}");
    let (status, body) = json(&store, "/api/v1/hosts?asn=AS64501&limit=5", Some(&analyst)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for h in body["hosts"].as_array().unwrap() {
        assert_eq!(
            (h["asn"].as_u64(), h["country"].as_str()),
            (Some(64501), Some("AT"))
        );
    }
    for (uri, needle) in [
        ("/api/v1/statistics?asn=AS4294967296", "AS number"),
        ("/api/v1/statistics?asn=-1", "AS number"),
        ("/api/v1/hosts?country=DEU", "country"),
        ("/api/v1/statistics?country=1A", "country"),
        ("/api/v1/statistics?group_by=continent", "continent"),
    ] {
        let (status, body) = json(&store, uri, Some(&analyst)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{uri}: {message}");
    }
}

#[tokio::test]
async fn hosts_and_organisations_on_sqlite() {
    let db = testing::sqlite();
    hosts_and_organisations(surveyor_store::open(&db.url).await.unwrap()).await;
}

#[tokio::test]
async fn hosts_and_organisations_on_postgres() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    hosts_and_organisations(surveyor_store::open(&db.url).await.unwrap()).await;
}

async fn exports_and_audit(store: Store) {
    let scan = seed(&store).await;
    let analyst = token(&store, Role::Analyst).await;
    let viewer = token(&store, Role::Viewer).await;
    let researcher = token(&store, Role::Researcher).await;
    let admin = token(&store, Role::Admin).await;
    let config = ApiConfig::default();

    for (who, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(viewer.as_str()), StatusCode::FORBIDDEN),
    ] {
        let (status, _, _) = raw(&store, config, "/api/v1/exports/csv", who).await;
        assert_eq!(status, expected);
    }

    // Full JSON lines: every server, as the store recorded it, across several pages.
    let (status, headers, body) =
        raw(&store, config, "/api/v1/exports/jsonl", Some(&analyst)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let text = String::from_utf8(body).unwrap();
    let mut exported: Vec<Observation> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut stored = store.scans.observations(scan).await.unwrap();
    exported.sort_by_key(|o| o.ip);
    stored.sort_by_key(|o| o.ip);
    assert_eq!(exported.len(), SERVERS);
    assert_eq!(exported, stored);

    // A researcher's CSV: pseudonymised whether asked or not, never an address or a name.
    let (status, headers, body) = raw(
        &store,
        config,
        "/api/v1/exports/csv?family=2016",
        Some(&researcher),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("pseudonymised"));
    let mut reader = csv::Reader::from_reader(body.as_slice());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert!(header.contains(&"ip_pseudonym".to_string()));
    for identifying in ["ip", "organisation", "ntlm_dns_domain", "cert_names"] {
        assert!(!header.contains(&identifying.to_string()), "{identifying}");
    }
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let unsupported = (0..SERVERS).filter(|i| i % 4 != 0).count();
    assert_eq!(records.len(), unsupported);
    let text = String::from_utf8(body.clone()).unwrap();
    for leak in ["10.0.0.1,", "klinikum", "stadt"] {
        assert!(!text.contains(leak), "{leak} leaked");
    }
    assert!(text.contains("10.0.0.0/24"));
    let (status, _, _) = raw(
        &store,
        config,
        "/api/v1/exports/csv?pseudonymise=false",
        Some(&researcher),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // With a key, pseudonyms are keyed hashes, the same for the same address.
    let keyed = ApiConfig {
        pseudonym_key: Some(PseudonymKey([9; 32])),
        ..config
    };
    let take = |body: Vec<u8>| -> Vec<String> {
        let mut r = csv::Reader::from_reader(body.as_slice());
        let at = r
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "ip_pseudonym")
            .unwrap();
        r.records()
            .map(|rec| rec.unwrap()[at].to_string())
            .collect()
    };
    let uri = "/api/v1/exports/csv?sector=hospital&pseudonymise=true";
    let first = take(raw(&store, keyed, uri, Some(&analyst)).await.2);
    let again = take(raw(&store, keyed, uri, Some(&analyst)).await.2);
    assert_eq!(first, again);
    assert!(first.iter().all(|p| p.starts_with("h:") && p.len() == 34));

    // Shadowserver's scan_exchange columns: every server, its problems in the tag.
    let (status, headers, body) = raw(
        &store,
        config,
        "/api/v1/exports/shadowserver",
        Some(&analyst),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .ends_with("-scan_exchange.csv\""));
    let mut reader = csv::Reader::from_reader(body.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        surveyor_notify::shadowserver::COLUMNS.to_vec()
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), SERVERS);
    let eol = rows.iter().filter(|r| &r[6] == "exchange;eol").count();
    let info = rows
        .iter()
        .filter(|r| &r[1] == "info" && &r[6] == "exchange")
        .count();
    assert_eq!((eol, info), (unsupported, SERVERS - unsupported));
    assert!(rows.iter().any(|r| &r[2] == "10.0.0.1"));
    let (status, _, body) = raw(
        &store,
        config,
        "/api/v1/exports/shadowserver",
        Some(&researcher),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert!(!text.contains("10.0.0.1,") && text.contains("10.0.0.0/24"));

    // Parquet: the CSV's columns and rows, typed; pseudonymised for a researcher.
    let (status, headers, body) = raw(
        &store,
        config,
        "/api/v1/exports/parquet?sector=hospital",
        Some(&analyst),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/vnd.apache.parquet");
    let (names, rows) = read_parquet(body);
    let (_, _, csv_body) = raw(
        &store,
        config,
        "/api/v1/exports/csv?sector=hospital",
        Some(&analyst),
    )
    .await;
    let mut csv_reader = csv::Reader::from_reader(csv_body.as_slice());
    let csv_header: Vec<String> = csv_reader
        .headers()
        .unwrap()
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(names, csv_header);
    let csv_rows: Vec<csv::StringRecord> = csv_reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), csv_rows.len());
    assert_eq!(rows.len(), (0..SERVERS).filter(|i| i % 2 == 0).count());
    let column = |name: &str| names.iter().position(|n| n == name).unwrap();
    for (parquet_row, csv_row) in rows.iter().zip(&csv_rows) {
        for name in ["ip", "family", "support", "country", "sector"] {
            let at = column(name);
            assert_eq!(
                parquet_row[at],
                Field::Str(csv_row[at].to_string()),
                "{name}"
            );
        }
        assert_eq!(parquet_row[column("asn")], Field::Long(64500));
        assert_eq!(parquet_row[column("port")], Field::Long(443));
        assert_eq!(
            parquet_row[column("observed_at")],
            Field::TimestampMicros(1_795_413_600_000_000)
        );
        assert_eq!(parquet_row[column("cert_names")], Field::Null);
    }
    let (status, _, body) = raw(&store, config, "/api/v1/exports/parquet", Some(&researcher)).await;
    assert_eq!(status, StatusCode::OK);
    let (names, rows) = read_parquet(body);
    assert_eq!(rows.len(), SERVERS);
    for identifying in ["ip", "asn", "organisation", "ntlm_dns_domain", "cert_names"] {
        assert!(!names.contains(&identifying.to_string()), "{identifying}");
    }
    assert!(names.contains(&"ip_pseudonym".to_string()));

    for (uri, expected) in [
        ("/api/v1/exports/parquet-ish", StatusCode::NOT_FOUND),
        (
            "/api/v1/exports/csv?pseudonymise=maybe",
            StatusCode::BAD_REQUEST,
        ),
        ("/api/v1/exports/csv?support=eol", StatusCode::BAD_REQUEST),
        ("/api/v1/exports/csv?rows=5", StatusCode::BAD_REQUEST),
        ("/api/v1/exports/csv?scan=999", StatusCode::NOT_FOUND),
    ] {
        let (status, _, _) = raw(&store, config, uri, Some(&analyst)).await;
        assert_eq!(status, expected, "{uri}");
    }

    // The audit log: admin only, one entry per export with who, what and how many rows.
    let (status, _) = json(&store, "/api/v1/exports", Some(&analyst)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, log) = json(&store, "/api/v1/exports", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 9, "{log:?}");
    let research = log
        .iter()
        .find(|e| e["token_name"] == "researcher" && e["format"] == "csv")
        .unwrap();
    assert_eq!(research["format"], "csv");
    assert_eq!(research["pseudonymised"], true);
    assert_eq!(research["filter"]["family"], "2016");
    assert_eq!(research["rows"], unsupported as u64);
    assert_eq!(research["outcome"], "complete");
    assert_eq!(research["scan"], scan.0);
    let (status, _) = json(&store, "/api/v1/exports?limit=0", Some(&admin)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A Parquet file's column names and rows, read with the parquet crate's own reader.
fn read_parquet(body: Vec<u8>) -> (Vec<String>, Vec<Vec<Field>>) {
    let reader = SerializedFileReader::new(bytes::Bytes::from(body)).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let names = schema
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let rows = reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            row.unwrap()
                .get_column_iter()
                .map(|(_, field)| field.clone())
                .collect()
        })
        .collect();
    (names, rows)
}

#[tokio::test]
async fn exports_and_audit_on_sqlite() {
    let db = testing::sqlite();
    exports_and_audit(surveyor_store::open(&db.url).await.unwrap()).await;
}

#[tokio::test]
async fn exports_and_audit_on_postgres() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    exports_and_audit(surveyor_store::open(&db.url).await.unwrap()).await;
}

#[tokio::test]
async fn a_token_past_its_rate_gets_429_and_others_still_get_in() {
    let db = testing::sqlite();
    let store = surveyor_store::open(&db.url).await.unwrap();
    let one = token(&store, Role::Viewer).await;
    let other = token(&store, Role::Analyst).await;
    // 10 a minute: a burst of one, then one every six seconds.
    let config = ApiConfig {
        requests_per_minute: NonZeroU32::new(10),
        ..ApiConfig::default()
    };
    let router = surveyor_api::router(store.clone(), config);
    let call = |token: String| {
        let router = router.clone();
        async move {
            let request = Request::get("/api/v1/scans")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            router.oneshot(request).await.unwrap()
        }
    };
    assert_eq!(call(one.clone()).await.status(), StatusCode::OK);
    let refused = call(one.clone()).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=6).contains(&wait), "{wait}");
    assert_eq!(call(other).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_on_their_own_router() {
    let db = testing::sqlite();
    let store = surveyor_store::open(&db.url).await.unwrap();
    let metrics = surveyor_api::Metrics::new();
    let api = surveyor_api::router_with_metrics(store, ApiConfig::default(), metrics.clone());
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        let request = Request::get(format!("/api/v1/hosts/{ip}"))
            .body(Body::empty())
            .unwrap();
        let response = api.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let ready = Request::get("/readyz").body(Body::empty()).unwrap();
    assert_eq!(
        api.clone().oneshot(ready).await.unwrap().status(),
        StatusCode::OK
    );
    // The metrics are not on the API's router, and the API's data is not on theirs.
    let on_api = Request::get("/metrics").body(Body::empty()).unwrap();
    assert_eq!(
        api.oneshot(on_api).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let scrape = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = surveyor_api::metrics_router(metrics)
        .oneshot(scrape)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    // One series for the template, not one per address.
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("surveyor_api_http_requests_total{") && l.contains("status=\"401\"")
        })
        .unwrap_or_else(|| panic!("no 401 series in:\n{text}"));
    assert!(line.contains("route=\"/api/v1/hosts/{ip}\""), "{line}");
    assert!(line.ends_with(" 3"), "{line}");
    assert!(!text.contains("192.0.2.1"));
    assert!(text.contains("surveyor_api_http_request_duration_seconds_bucket"));
    // Like every endpoint, the scrape refuses parameters it does not know.
    let odd = Request::get("/metrics?format=json")
        .body(Body::empty())
        .unwrap();
    let response = surveyor_api::metrics_router(surveyor_api::Metrics::new())
        .oneshot(odd)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn readiness_fails_while_the_database_is_unreachable() {
    let Some(db) = testing::postgres().await else {
        return;
    };
    let store = surveyor_store::open(&db.url).await.unwrap();
    let api = surveyor_api::router(store, ApiConfig::default());
    let ready = || Request::get("/readyz").body(Body::empty()).unwrap();
    assert_eq!(
        api.clone().oneshot(ready()).await.unwrap().status(),
        StatusCode::OK
    );
    db.set_reachable(false).await;
    let down = api.clone().oneshot(ready()).await.unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health = Request::get("/healthz").body(Body::empty()).unwrap();
    assert_eq!(
        api.clone().oneshot(health).await.unwrap().status(),
        StatusCode::OK
    );
    db.set_reachable(true).await;
    assert_eq!(api.oneshot(ready()).await.unwrap().status(), StatusCode::OK);
}
