//! Far and stalling hosts on loopback, seen by real clients: answers come a round trip late,
//! stalls stop where the truth says and never end the connection.
//!
//! Timings are checked from below only (an answer is never early): a loaded machine can make
//! anything later, never earlier. "Nothing more arrives" is checked for a second; a correct
//! test-bed never sends more, so that cannot fail by chance.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use surveyor_testbed::{FleetOptions, RttRange, Testbed, TestbedConfig, TruthHost};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::timeout;

mod common;

use common::{danger, tcp, tls, STEP};

/// How long "nothing more" is watched for.
const QUIET: Duration = Duration::from_secs(1);

fn config(hosts: usize, seed: u64, net: &str) -> TestbedConfig {
    TestbedConfig {
        hosts,
        seed,
        net: net.parse().unwrap(),
        port: 0,
    }
}

fn addr(host: &TruthHost, port: u16) -> SocketAddr {
    SocketAddr::new(host.ip, port)
}

fn sni(host: &TruthHost) -> String {
    let role = if host.exchange.is_some() {
        "mail"
    } else {
        "www"
    };
    format!("{role}.{}", host.domain)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_hosts_answer_a_round_trip_late_on_every_service() {
    let options = FleetOptions {
        hostile_share: 0.0,
        rtt: RttRange::new(150, 150),
        smtp_port: Some(0),
        ..FleetOptions::default()
    };
    let bed = Testbed::start_with(config(20, 31, "127.204.1.0/24"), options)
        .await
        .unwrap();
    let host = bed
        .truth()
        .iter()
        .find(|h| h.persona == "exchange")
        .expect("an Exchange host among 20");
    assert_eq!(host.rtt_ms, Some(150));
    // Each answer is at least 135 ms (150 ms less the jitter) after what it answers.
    let rtt = Duration::from_millis(135);

    let start = Instant::now();
    let stream = tcp(addr(host, bed.port())).await;
    let mut stream = tls(stream, &sni(host)).await;
    // The handshake's two round trips: the TCP one, charged to the first answer, and the
    // ClientHello's.
    assert!(start.elapsed() >= 2 * rtt, "{:?}", start.elapsed());
    let asked = Instant::now();
    stream
        .write_all(b"GET /owa/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    timeout(STEP, stream.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert!(asked.elapsed() >= rtt, "{:?}", asked.elapsed());
    assert_eq!(&head, b"HTTP/1.1 302", "the answer is what it was");

    let start = Instant::now();
    let smtp = tcp(addr(host, bed.smtp_port().unwrap())).await;
    let mut smtp = BufReader::new(smtp);
    let mut greeting = String::new();
    timeout(STEP, smtp.read_line(&mut greeting))
        .await
        .unwrap()
        .unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert!(start.elapsed() >= 2 * rtt, "{:?}", start.elapsed());
    bed.shutdown().await;
}

/// A ClientHello for `sni`, as a TLS client's first flight.
fn client_hello(sni: &str) -> Vec<u8> {
    let provider = rustls::crypto::ring::default_provider();
    let verifier = Arc::new(danger::AcceptAnyCert(provider.clone()));
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    hello
}

/// Whether the stream stays open and silent for [`QUIET`].
async fn silent(stream: &mut (impl AsyncReadExt + Unpin)) -> bool {
    let mut byte = [0u8; 1];
    timeout(QUIET, stream.read(&mut byte)).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_stop_where_the_truth_says_and_hold_the_connection() {
    let options = FleetOptions {
        hostile_share: 0.0,
        stall_share: 1.0,
        ..FleetOptions::default()
    };
    let bed = Testbed::start_with(config(30, 32, "127.204.2.0/24"), options)
        .await
        .unwrap();
    let find = |kind: &str| {
        bed.truth()
            .iter()
            .find(|h| h.stall.as_deref() == Some(kind))
            .unwrap_or_else(|| panic!("a host stalling at {kind} among 30"))
    };
    for host in bed.truth() {
        assert_eq!(host.expected_status.as_deref(), Some("io-timeout"));
    }

    // Accepted: the TCP handshake completes, the ClientHello is never answered.
    let host = find("accepted");
    let mut stream = tcp(addr(host, bed.port())).await;
    stream.write_all(&client_hello(&sni(host))).await.unwrap();
    assert!(silent(&mut stream).await);

    // ServerHello: one TLS handshake record arrives, then nothing.
    let host = find("server-hello");
    let mut stream = tcp(addr(host, bed.port())).await;
    stream.write_all(&client_hello(&sni(host))).await.unwrap();
    let mut header = [0u8; 5];
    timeout(STEP, stream.read_exact(&mut header))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(header[0], 22, "a handshake record");
    let mut record = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
    timeout(STEP, stream.read_exact(&mut record))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record[0], 2, "a ServerHello");
    assert!(silent(&mut stream).await);

    // Half a response: the handshake completes, part of the head arrives, then nothing.
    let host = find("half-response");
    let stream = tcp(addr(host, bed.port())).await;
    let mut stream = tls(stream, &sni(host)).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(read) = timeout(QUIET, stream.read(&mut buf)).await {
        let n = read.unwrap();
        assert!(n > 0, "the connection ended after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 "), "{got:?}");
    assert!(!got.windows(4).any(|w| w == b"\r\n\r\n"), "a whole head");
    bed.shutdown().await;
}

#[test]
fn truth_files_carry_round_trips_and_stalls() {
    let options = FleetOptions {
        rtt: RttRange::new(20, 200),
        stall_share: 0.1,
        ..FleetOptions::default()
    };
    let plan =
        surveyor_testbed::try_generate_with(&config(200, 33, "127.204.3.0/24"), &options).unwrap();
    let mut out = Vec::new();
    surveyor_testbed::write_truth(&plan, &mut out).unwrap();
    let back: Vec<TruthHost> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back, plan);
    assert!(back.iter().all(|h| h.rtt_ms.is_some()));
    assert!(back.iter().any(|h| h.stall.is_some()));
}
