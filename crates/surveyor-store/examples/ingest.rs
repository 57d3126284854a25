//! Measures ingest: N observations shaped like a census scan's (TLS record, fingerprint
//! evidence, and a real knowledge-base verdict on three in four of them) recorded in batches
//! into the store a URL names.
//!
//! `cargo run --release -p surveyor-store --example ingest -- URL [N] [BATCH]`
//!
//! With `NO_VERDICT=1` no observation carries a verdict, which isolates the cost of the
//! verdict's JSON (about 5 KB, most of it the per-CVE exposure list). With `FINISH=1` the scan
//! is finished afterwards (untimed), as `benches/rejudge.sh` needs it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use surveyor_model::{Fingerprint, Observation, Scheme, Signal, Status, TlsInfo};
use surveyor_store::NewScan;
use time::OffsetDateTime;

const BUILDS: [&str; 4] = ["15.1.2507.6", "15.2.1544.4", "15.2.1748.10", "15.0.1497.48"];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: ingest URL [N] [BATCH]")?;
    let n: usize = args.next().map_or(Ok(200_000), |s| s.parse())?;
    let batch: usize = args.next().map_or(Ok(500), |s| s.parse())?;
    if n > 1 << 24 {
        return Err("N is at most 16,777,216 (distinct addresses in 10.0.0.0/8)".into());
    }
    let as_of = time::macros::date!(2026 - 11 - 23);

    let store = surveyor_store::open(&url).await?;
    let kb = surveyor_kb::KnowledgeBase::builtin();
    let scan = store
        .scans
        .begin_scan(&NewScan {
            started_at: OffsetDateTime::now_utc(),
            as_of,
            targets: "benchmark".into(),
            ports: vec![443],
            tool_version: "bench".into(),
            kb: Some(surveyor_store::KbRef {
                digest: kb.stamp.digest.clone(),
                newest_release: kb.stamp.newest_release,
            }),
        })
        .await?;

    let observations: Vec<Observation> = (0..n)
        .map(|i| {
            let mut fingerprint = Fingerprint::default();
            fingerprint.push(Signal::ServerHeader, "GET /owa/", "Microsoft-IIS/10.0");
            if i % 4 != 0 && std::env::var_os("NO_VERDICT").is_none() {
                let build = BUILDS[i % BUILDS.len()];
                fingerprint.push(Signal::OwaVersionHeader, "GET /owa/", build);
                fingerprint.push(Signal::FeServerHeader, "GET /owa/", "EXCH01");
            }
            let exchange = kb.classify(&fingerprint, as_of);
            Observation {
                // Scattered over 10.0.0.0/8 as a scan's permuted target order stores them
                // (an odd multiplier is a bijection mod 2^24): no index gets sorted input.
                ip: IpAddr::V4(Ipv4Addr::from(
                    0x0a00_0000 | ((i as u32).wrapping_mul(2_654_435_761) & 0x00ff_ffff),
                )),
                port: 443,
                scheme: Scheme::Https,
                observed_at: OffsetDateTime::now_utc(),
                status: Status::Success,
                error: None,
                tls: Some(TlsInfo {
                    version: "TLSv1.3".into(),
                    cipher: "TLS13_AES_256_GCM_SHA384".into(),
                    cert_sha256: Some(format!("{:064x}", i)),
                    subject: Some(format!("CN=mail.org{i}.example")),
                    issuer: Some(format!("CN=mail.org{i}.example")),
                    names: vec![
                        format!("mail.org{i}.example"),
                        format!("autodiscover.org{i}.example"),
                    ],
                    not_before: Some(OffsetDateTime::UNIX_EPOCH),
                    not_after: Some(OffsetDateTime::now_utc()),
                }),
                http_server: Some("Microsoft-IIS/10.0".into()),
                fingerprint,
                exchange,
                attribution: None,
                asn: None,
                country: None,
            }
        })
        .collect();

    // WRITERS=K records K batches at once (each its own transaction and connection), as K
    // census workers or K pipeline writers would.
    let writers: usize = std::env::var("WRITERS").map_or(Ok(1), |s| s.parse())?;
    let observations = std::sync::Arc::new(observations);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers.max(1) {
        let (store, observations) = (store.clone(), observations.clone());
        tasks.push(tokio::spawn(async move {
            for chunk in observations.chunks(batch).skip(w).step_by(writers.max(1)) {
                store.scans.record(scan, chunk).await?;
            }
            Ok::<(), surveyor_store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let took = started.elapsed();
    if std::env::var_os("FINISH").is_some() {
        store
            .scans
            .finish_scan(scan, OffsetDateTime::now_utc())
            .await?;
    }
    println!(
        "backend={} observations={n} batch={batch} writers={writers} seconds={:.2} per_second={:.0}",
        store.backend,
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    Ok(())
}
