//! Measures census queries over a large census: K scans of N hosts each (default 2 × 1,000,000)
//! generated inside the database (the query is measured here, not ingest), then
//! - `finish_scan`: storing a scan's aggregates and folding it into `hosts`;
//! - `statistics` on a finished scan (from its aggregates) for the dimension sets a dashboard
//!   asks, with and without filters, repeated R times (median and p99);
//! - `statistics` on an unfinished scan (counted live from its N observations);
//! - `trend` across the scans.
//!
//! `cargo run --release -p surveyor-store --example census_query -- URL [N] [K] [R]`
//! (URL: `postgres://…` or `sqlite:FILE`). Prints one `key=value` line per measurement.

use std::time::{Duration, Instant};

use sqlx::Connection;
use surveyor_model::{Family, Support};
use surveyor_store::{Backend, CensusFilter, Dimension, NewScan, ScanId, Store};
use time::OffsetDateTime;

/// (family, CU, share of hosts in percent): roughly BSI's October 2025 mix.
const MIX: [(&str, &str, u32); 9] = [
    ("2010", "Exchange Server 2010 SP3", 3),
    ("2013", "Exchange Server 2013 CU23", 5),
    ("2016", "Exchange Server 2016 CU22", 10),
    ("2016", "Exchange Server 2016 CU23", 30),
    ("2019", "Exchange Server 2019 CU12", 8),
    ("2019", "Exchange Server 2019 CU14", 14),
    ("2019", "Exchange Server 2019 CU15", 22),
    ("SE", "Exchange Server SE RTM", 7),
    ("SE", "Exchange Server SE CU1", 1),
];
const PATCH: [&str; 5] = [
    "current",
    "behind-90d",
    "behind-1y",
    "behind-over-1y",
    "unknown",
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: census_query URL [N] [K] [R]")?;
    let n: i64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let k: usize = args.next().map_or(Ok(2), |s| s.parse())?;
    let repeat: usize = args.next().map_or(Ok(200), |s| s.parse())?;

    let store = surveyor_store::open(&url).await?;
    let mut scans = Vec::new();
    for i in 0..k {
        let scan = store
            .scans
            .begin_scan(&NewScan {
                started_at: OffsetDateTime::now_utc(),
                as_of: time::macros::date!(2026 - 11 - 23),
                targets: format!("benchmark scan {i}"),
                ports: vec![443],
                tool_version: "bench".into(),
                kb: None,
            })
            .await?;
        let started = Instant::now();
        generate(&url, store.backend, scan, n, i as i64).await?;
        println!(
            "step=generate scan={scan} hosts={n} seconds={:.1}",
            started.elapsed().as_secs_f64()
        );
        scans.push(scan);
    }

    // The newest scan, still unfinished: the live path.
    let last = *scans.last().ok_or("K must be at least 1")?;
    let dims = [Dimension::Family, Dimension::Support];
    let live = time(3, || async {
        store
            .census
            .statistics(last, &dims, &CensusFilter::default())
            .await
            .map(drop)
    })
    .await?;
    report("statistics-live family,support", n, &live);

    for &scan in &scans {
        let started = Instant::now();
        store
            .scans
            .finish_scan(scan, OffsetDateTime::now_utc())
            .await?;
        println!(
            "step=finish_scan scan={scan} hosts={n} seconds={:.2}",
            started.elapsed().as_secs_f64()
        );
    }

    let unsupported_2016 = CensusFilter {
        family: Some(Family::E2016),
        support: Some(Support::Unsupported),
        ..CensusFilter::default()
    };
    let queries: [(&str, Vec<Dimension>, CensusFilter); 5] = [
        ("total", vec![], CensusFilter::default()),
        ("family,support", dims.to_vec(), CensusFilter::default()),
        (
            "cu,patch",
            vec![Dimension::Cu, Dimension::Patch],
            CensusFilter::default(),
        ),
        ("version", vec![Dimension::Version], CensusFilter::default()),
        (
            "patch where 2016 unsupported",
            vec![Dimension::Patch],
            unsupported_2016,
        ),
    ];
    for (name, group_by, filter) in &queries {
        let times = time(repeat, || async {
            store
                .census
                .statistics(last, group_by, filter)
                .await
                .map(drop)
        })
        .await?;
        report(&format!("statistics {name}"), n, &times);
    }
    let times = time(repeat, || async {
        store
            .census
            .trend(&dims, &CensusFilter::default())
            .await
            .map(drop)
    })
    .await?;
    report("trend family,support", n, &times);
    summary(&store, last).await
}

/// Inserts n observations of `scan` in one statement; a salt varies builds between scans.
async fn generate(
    url: &str,
    backend: Backend,
    scan: ScanId,
    n: i64,
    salt: i64,
) -> Result<(), Box<dyn std::error::Error>> {
    // A whole verdict of about a kilobyte, as rows written before verdict facts were split
    // out keep it: the census never reads it, but exports and host pages read it back into
    // the model, so its family, build, name and support are the row's own.
    let verdict = whole_verdict()
        .replace("'", "''")
        .replace("\"family\":\"2016\"", "\"family\":\"' || family || '\"")
        .replace(
            "\"build\":\"15.1.2507.39\"",
            "\"build\":\"15.1.2507.' || (h % 40) || '\"",
        )
        .replace(
            "\"version_name\":\"@name@\"",
            "\"version_name\":\"' || cu || ' SU' || (h % 40) || '\"",
        )
        .replace(
            "\"support\":\"unsupported\"",
            "\"support\":\"' || CASE WHEN family = 'SE' THEN 'supported' ELSE 'unsupported' END || '\"",
        );
    // Pick a MIX row from i's hash: a CASE over cumulative percent bounds.
    let mut family = String::from("CASE");
    let mut cu = String::from("CASE");
    let mut bound = 0;
    for (f, c, pct) in MIX {
        bound += pct;
        family.push_str(&format!(" WHEN bucket < {bound} THEN '{f}'"));
        cu.push_str(&format!(" WHEN bucket < {bound} THEN '{c}'"));
    }
    family.push_str(" END");
    cu.push_str(" END");
    let patch = PATCH
        .iter()
        .enumerate()
        .map(|(i, p)| format!(" WHEN (h / 100) % 5 = {i} THEN '{p}'"))
        .collect::<String>();
    let json = match backend {
        Backend::Postgres => "::jsonb",
        Backend::Sqlite => "",
    };
    let (series, ip, ts) = match backend {
        Backend::Postgres => (
            format!("SELECT i, (hashint8(i + {salt} * 7919)::bigint & 2147483647) AS h FROM generate_series(1, {n}) AS i"),
            "('10.0.0.0'::inet + i)",
            "now()",
        ),
        Backend::Sqlite => (
            format!(
                "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n}) \
                 SELECT i, abs((i + {salt} * 7919) * 2654435761 % 1000003) AS h FROM seq"
            ),
            "('10.' || (i >> 16) || '.' || ((i >> 8) & 255) || '.' || (i & 255))",
            "strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.000000Z'",
        ),
    };
    let sql = format!(
        "INSERT INTO observations (scan_id, ip, port, scheme, observed_at, status, fingerprint, \
         exchange_family, exchange_build, exchange_version_name, exchange_support, \
         exchange_verdict, exchange_cu, exchange_patch) \
         SELECT {scan}, {ip}, 443, 'https', {ts}, 'success', '{{\"evidence\":[]}}', \
         family, '15.1.2507.' || (h % 40), cu || ' SU' || (h % 40), \
         CASE WHEN family = 'SE' THEN 'supported' ELSE 'unsupported' END, ('{verdict}'){json}, cu, \
         CASE {patch} END \
         FROM (SELECT i, h, {family} AS family, {cu} AS cu \
               FROM (SELECT i, h, h % 100 AS bucket FROM ({series}) s) b) g"
    );
    // What `record` keeps for batches it writes itself.
    let count = format!("UPDATE scans SET observation_count = {n} WHERE id = {scan}");
    match backend {
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::query(&sql).execute(&mut conn).await?;
            sqlx::query(&count).execute(&mut conn).await?;
            sqlx::query("VACUUM ANALYZE observations")
                .execute(&mut conn)
                .await?;
        }
        Backend::Sqlite => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await?;
            sqlx::query(&sql).execute(&mut conn).await?;
            sqlx::query(&count).execute(&mut conn).await?;
            sqlx::query("ANALYZE").execute(&mut conn).await?;
        }
    }
    Ok(())
}

async fn time<F, Fut>(times: usize, mut f: F) -> Result<Vec<Duration>, Box<dyn std::error::Error>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), surveyor_store::StoreError>>,
{
    let mut out = Vec::with_capacity(times);
    for _ in 0..times {
        let started = Instant::now();
        f().await?;
        out.push(started.elapsed());
    }
    out.sort();
    Ok(out)
}

fn report(name: &str, hosts: i64, sorted: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p99 = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)];
    println!(
        "query={name:?} hosts={hosts} runs={} median_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        sorted.len(),
        ms(sorted[sorted.len() / 2]),
        ms(p99),
        ms(sorted[sorted.len() - 1]),
    );
}

/// The census the benchmark counted, so a reader can see the numbers are real.
async fn summary(store: &Store, scan: ScanId) -> Result<(), Box<dyn std::error::Error>> {
    let groups = store
        .census
        .statistics(scan, &[Dimension::Family], &CensusFilter::default())
        .await?;
    let parts: Vec<String> = groups
        .iter()
        .map(|g| format!("{}={}", g.family.map_or("?", |f| f.as_str()), g.servers))
        .collect();
    println!("census scan={scan} {}", parts.join(" "));
    Ok(())
}

/// A verdict's JSON with the parts each row sets as markers: family 2016, build 15.1.2507.39,
/// name `@name@`, support unsupported; twelve pieces of evidence.
fn whole_verdict() -> String {
    use surveyor_model::{Evidence, ExchangeVerdict, Signal};
    let verdict = ExchangeVerdict {
        family: Family::E2016,
        build: "15.1.2507.39".parse().expect("a build"),
        version_name: "@name@".into(),
        cu: None,
        support: Support::Unsupported,
        evidence: vec![
            Evidence {
                signal: Signal::OwaVersionHeader,
                source: "GET /owa/".into(),
                value: "15.1.2507.6".into(),
            };
            12
        ],
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
    serde_json::to_string(&verdict).expect("a verdict serializes")
}
