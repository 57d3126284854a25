//! Starts a small fleet on loopback and talks to it over real TLS connections.

use std::net::SocketAddr;

use surveyor_testbed::{generate, FleetOptions, Listeners, Testbed, TestbedConfig, TruthHost};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

const NET: &str = "127.201.13.0/24";
mod common;

use common::{connector, STEP};

async fn connect(host: &TruthHost, sni: &str) -> TlsStream<TcpStream> {
    let addr = SocketAddr::new(host.ip, host.port);
    assert!(addr.ip().is_loopback());
    let tcp = timeout(STEP, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    timeout(STEP, connector().connect(name, tcp))
        .await
        .unwrap()
        .unwrap()
}

/// A response as read off the wire: status code, raw head, body.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

async fn request(stream: &mut TlsStream<TcpStream>, raw: &str) -> Reply {
    timeout(STEP, stream.write_all(raw.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    read_reply(stream).await
}

/// Reads exactly one response, framed by Content-Length, leaving the stream for the next.
async fn read_reply(stream: &mut TlsStream<TcpStream>) -> Reply {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = timeout(STEP, stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "connection closed inside a response head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut reply = Reply {
        status,
        head,
        body: String::new(),
    };
    let len: usize = reply.header("Content-Length").unwrap().parse().unwrap();
    let mut body = vec![0u8; len];
    timeout(STEP, stream.read_exact(&mut body))
        .await
        .unwrap()
        .unwrap();
    reply.body = String::from_utf8(body).unwrap();
    reply
}

/// True once the server has closed the connection.
async fn closed(stream: &mut TlsStream<TcpStream>) -> bool {
    let mut rest = Vec::new();
    match timeout(STEP, stream.read_to_end(&mut rest)).await {
        Ok(Ok(_)) => rest.is_empty(),
        // A reset or a missing close_notify still means the server hung up.
        Ok(Err(_)) => true,
        Err(_) => false,
    }
}

fn config(seed: u64) -> TestbedConfig {
    TestbedConfig {
        hosts: 12,
        seed,
        net: NET.parse().unwrap(),
        port: 0,
    }
}

/// The first seed whose 12-host fleet has a modern Exchange host with X-OWA-Version, one
/// without, and a non-Exchange host; found from the plan, so the test stays deterministic.
fn interesting_seed() -> u64 {
    (1..1000)
        .find(|&seed| {
            let plan = generate(&config(seed));
            let modern = |header: bool| {
                plan.iter().any(|h| {
                    h.persona == "exchange"
                        && h.exchange.as_ref().is_some_and(|e| {
                            !["2007", "2010"].contains(&e.family.as_str())
                                && e.owa_version_header == header
                        })
                })
            };
            modern(true) && modern(false) && plan.iter().any(plain_web)
        })
        .expect("some seed below 1000 has a mixed fleet")
}

/// A stock web server: 200 on `/`, 404 on `/owa/`.
fn plain_web(host: &TruthHost) -> bool {
    ["iis-default", "nginx", "apache"].contains(&host.persona.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_serves_truthful_responses() {
    serves_truthful_responses(Listeners::PerHost).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_on_shared_listeners_serves_the_same() {
    serves_truthful_responses(Listeners::Shared).await;
}

async fn serves_truthful_responses(listeners: Listeners) {
    let seed = interesting_seed();
    let options = FleetOptions {
        listeners,
        ..FleetOptions::default()
    };
    let bed = Testbed::start_with(config(seed), options).await.unwrap();
    assert_eq!(bed.shared_listeners(), listeners == Listeners::Shared);
    assert_ne!(bed.port(), 0);
    assert_eq!(bed.net(), NET.parse().unwrap());
    assert_eq!(bed.truth().len(), 12);
    let planned = generate(&config(seed));
    for (live, plan) in bed.truth().iter().zip(&planned) {
        assert_eq!(live.port, bed.port());
        assert_eq!(
            (&live.ip, &live.domain, &live.exchange),
            (&plan.ip, &plan.domain, &plan.exchange)
        );
    }

    let mut checked = 0;
    for host in bed.truth() {
        let Some(ex) = &host.exchange else { continue };
        if ["2007", "2010"].contains(&ex.family.as_str()) || host.persona != "exchange" {
            continue;
        }
        checked += 1;
        let mut stream = connect(host, &format!("mail.{}", host.domain)).await;

        let redirect = request(&mut stream, "GET /owa/ HTTP/1.1\r\nHost: mail\r\n\r\n").await;
        assert_eq!(redirect.status, 302, "{}", redirect.head);
        assert!(redirect.head.starts_with("HTTP/1.1 302 "));
        let expected_location = format!(
            "https://mail.{d}/owa/auth/logon.aspx?url=https%3a%2f%2fmail.{d}%2fowa%2f&reason=0",
            d = host.domain
        );
        assert_eq!(
            redirect.header("Location"),
            Some(expected_location.as_str())
        );
        if ex.owa_version_header {
            assert_eq!(redirect.header("X-OWA-Version"), Some(ex.build.as_str()));
        } else {
            assert_eq!(redirect.header("X-OWA-Version"), None);
        }
        assert!(redirect.header("X-FEServer").is_some());

        // Same connection: keep-alive must work.
        let logon = request(
            &mut stream,
            "GET /owa/auth/logon.aspx HTTP/1.1\r\nHost: mail\r\n\r\n",
        )
        .await;
        assert_eq!(logon.status, 200);
        assert!(logon.head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert_eq!(logon.header("X-OWA-Version"), None);
        let cu: Vec<&str> = ex.build.split('.').take(3).collect();
        let favicon = format!("/owa/auth/{}/themes/resources/favicon.ico", cu.join("."));
        assert!(logon.body.contains(&favicon), "no {favicon}");
        assert!(logon
            .body
            .contains("<!-- OwaPage = ASP.auth_logon_aspx -->"));
        assert!(logon.body.contains("function IsOwaPremiumBrowser"));

        let auto = request(
            &mut stream,
            "GET /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: mail\r\n\r\n",
        )
        .await;
        assert_eq!(auto.status, 401);
        assert!(auto.head.contains("WWW-Authenticate: NTLM\r\n"));

        let manifest = request(
            &mut stream,
            "GET /ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application HTTP/1.1\r\nHost: mail\r\nConnection: close\r\n\r\n",
        )
        .await;
        if ex.exporttool_manifest {
            assert_eq!(manifest.status, 200);
            assert!(manifest.body.contains(&format!(
                "exporttool.application\" version=\"{}\"",
                ex.build
            )));
        } else {
            assert_eq!(manifest.status, 404);
        }
        assert_eq!(manifest.header("Connection"), Some("close"));
        assert!(
            closed(&mut stream).await,
            "Connection: close was not honoured"
        );
    }

    assert!(checked >= 2, "only {checked} Exchange hosts checked");

    let other = bed.truth().iter().find(|h| plain_web(h)).unwrap();
    let mut stream = connect(other, &format!("www.{}", other.domain)).await;
    let reply = request(&mut stream, "GET /owa/ HTTP/1.1\r\nHost: www\r\n\r\n").await;
    assert_eq!(reply.status, 404);
    let root = request(&mut stream, "GET / HTTP/1.1\r\nHost: www\r\n\r\n").await;
    assert_eq!(root.status, 200);

    // Garbage gets an answer and a closed connection.
    let garbage = request(&mut stream, "BREW /pot HTCPCP/1.0\r\n\r\n").await;
    assert_eq!(garbage.status, 400);
    assert!(closed(&mut stream).await);

    // An idle keep-alive connection must not hold up shutdown.
    let mut idle = connect(other, &format!("www.{}", other.domain)).await;
    let reply = request(&mut idle, "GET / HTTP/1.1\r\nHost: www\r\n\r\n").await;
    assert_eq!(reply.status, 200);
    let addr = SocketAddr::new(other.ip, other.port);
    if listeners == Listeners::Shared {
        empty_addresses_are_reset(&bed).await;
    }
    timeout(STEP, bed.shutdown()).await.expect("shutdown hung");
    assert!(closed(&mut idle).await);
    let after = timeout(STEP, TcpStream::connect(addr)).await.unwrap();
    assert!(after.is_err(), "listener still open after shutdown");
}

#[tokio::test]
async fn oversize_heads_are_refused() {
    let seed = interesting_seed();
    let bed = Testbed::start(TestbedConfig {
        net: "127.201.14.0/24".parse().unwrap(),
        ..config(seed)
    })
    .await
    .unwrap();
    let host = bed
        .truth()
        .iter()
        .find(|h| h.persona == "exchange" || plain_web(h))
        .unwrap();
    let mut stream = connect(host, &format!("x.{}", host.domain)).await;
    let huge = format!("GET / HTTP/1.1\r\nX-Filler: {}\r\n\r\n", "a".repeat(20_000));
    let reply = request(&mut stream, &huge).await;
    assert_eq!(reply.status, 400);
    assert!(closed(&mut stream).await);
    bed.shutdown().await;
}

/// On a shared listener an address without a host (inside the net or not) completes the
/// TCP handshake and is reset before a byte of TLS is answered.
async fn empty_addresses_are_reset(bed: &Testbed) {
    let taken: Vec<_> = bed.truth().iter().map(|h| h.ip).collect();
    let inside = bed
        .net()
        .hosts()
        .map(std::net::IpAddr::V4)
        .find(|ip| !taken.contains(ip))
        .unwrap();
    let outside: std::net::IpAddr = "127.201.99.7".parse().unwrap();
    for ip in [inside, outside] {
        let connected = timeout(STEP, TcpStream::connect(SocketAddr::new(ip, bed.port())))
            .await
            .unwrap();
        // On loopback the reset can arrive before connect() returns.
        let mut stream = match connected {
            Ok(stream) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => continue,
            Err(e) => panic!("{ip}: {e}"),
        };
        let _ = stream.write_all(b"\x16\x03\x01\x00\x00").await;
        let mut buf = [0u8; 16];
        let read = timeout(STEP, stream.read(&mut buf)).await.unwrap();
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "{ip} answered {read:?} instead of a reset"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_host_is_served_when_listeners_outnumber_connections() {
    // Two open connections for twelve listeners: each host must still be answered in turn.
    // A listener that took its permit before accepting starved every host after the second.
    let seed = interesting_seed();
    let options = FleetOptions {
        listeners: Listeners::PerHost,
        max_connections: 2,
        hostile_share: 0.0,
        ..FleetOptions::default()
    };
    let config = TestbedConfig {
        net: "127.201.15.0/24".parse().unwrap(),
        ..config(seed)
    };
    let bed = Testbed::start_with(config, options).await.unwrap();
    for host in bed.truth() {
        let sni = match host.exchange {
            Some(_) => format!("mail.{}", host.domain),
            None => format!("www.{}", host.domain),
        };
        let mut stream = connect(host, &sni).await;
        let reply = request(
            &mut stream,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(reply.status >= 200, "{}: {}", host.ip, reply.head);
    }
    bed.shutdown().await;
}

/// Personas that hide or copy Exchange, as a raw client sees them (`docs/testbed.md`).
const CLASSES: [&str; 5] = [
    "exchange-behind-portal",
    "exchange-owa-blocked",
    "exchange-stripped-headers",
    "owa-phishing-copy",
    "owa-honeypot",
];

fn classes_config(seed: u64) -> TestbedConfig {
    TestbedConfig {
        hosts: 250,
        seed,
        net: "127.201.14.0/24".parse().unwrap(),
        port: 0,
    }
}

/// Opens a connection, sends one GET and reads the answer; a fresh connection each time, as
/// some of these answer once and close.
async fn get_once(host: &TruthHost, sni: &str, path: &str) -> (Reply, bool) {
    let mut stream = connect(host, sni).await;
    let raw = format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\n\r\n");
    let reply = request(&mut stream, &raw).await;
    let closes = reply
        .header("Connection")
        .is_some_and(|c| c.eq_ignore_ascii_case("close"));
    if closes {
        assert!(closed(&mut stream).await, "{path}: said close, stayed open");
    }
    (reply, closes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fronts_and_copies_answer_as_documented() {
    let seed = (1..500)
        .find(|&seed| {
            let plan = generate(&classes_config(seed));
            CLASSES.iter().all(|c| plan.iter().any(|h| h.persona == *c))
                && plan
                    .iter()
                    .any(|h| h.served_by.as_deref() == Some("big-ip-apm"))
        })
        .expect("some seed has every class");
    let bed = Testbed::start(classes_config(seed)).await.unwrap();
    let manifest = "/ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application";
    let mut seen = std::collections::BTreeSet::new();
    for host in bed.truth() {
        let mail = format!("mail.{}", host.domain);
        let www = format!("www.{}", host.domain);
        match (host.persona.as_str(), &host.exchange) {
            ("exchange-behind-portal", Some(ex)) => {
                let (owa, closes) = get_once(host, &mail, "/owa/").await;
                assert!(matches!(owa.status, 302), "{}", owa.head);
                let location = owa.header("Location").unwrap();
                assert!(!location.contains("/owa/auth/logon.aspx"), "{location}");
                assert!(owa.header("X-OWA-Version").is_none());
                if host.served_by.as_deref() == Some("big-ip-apm") {
                    assert!(owa.head.starts_with("HTTP/1.0 302 Found\r\n") && closes);
                    assert_eq!(owa.header("Location"), Some("/my.policy"));
                }
                let (auto, _) = get_once(host, &mail, "/autodiscover/autodiscover.xml").await;
                assert_eq!(auto.status, 401);
                assert_eq!(auto.header("X-OWA-Version"), Some(ex.build.as_str()));
                let (ecp, _) = get_once(host, &mail, manifest).await;
                assert_eq!(ecp.status, 302, "the portal holds ECP");
            }
            ("exchange-owa-blocked", Some(ex)) => {
                let (owa, _) = get_once(host, &mail, "/owa/").await;
                assert!([403, 404].contains(&owa.status));
                assert_eq!(owa.header("Server"), Some("nginx"));
                let (ews, _) = get_once(host, &mail, "/EWS/Exchange.asmx").await;
                assert_eq!(ews.status, owa.status);
                let (tool, _) = get_once(host, &mail, manifest).await;
                assert_eq!(tool.status, 200);
                assert!(tool.body.contains(&format!("version=\"{}\"", ex.build)));
                assert!(tool.header("X-FEServer").is_none());
            }
            ("exchange-stripped-headers", Some(ex)) => {
                let (owa, _) = get_once(host, &mail, "/owa/").await;
                assert_eq!(owa.status, 302);
                assert_eq!(owa.header("Server"), Some("nginx"));
                assert!(
                    owa.header("X-FEServer").is_none() && owa.header("X-OWA-Version").is_none()
                );
                let (logon, _) = get_once(host, &mail, "/owa/auth/logon.aspx").await;
                let action = match ex.family.as_str() {
                    "2007" | "2010" => "/owa/auth/owaauth.dll",
                    _ => "/owa/auth.owa",
                };
                assert!(logon.body.contains(&format!("<form action=\"{action}\"")));
            }
            ("owa-phishing-copy", None) => {
                let (logon, _) = get_once(host, &www, "/owa/auth/logon.aspx").await;
                assert_eq!(logon.status, 200);
                assert!(
                    logon.body.contains("OwaPage = ASP.auth_logon_aspx")
                        || logon.body.contains("owaLgnBdy")
                );
                for name in ["X-OWA-Version", "X-FEServer"] {
                    assert!(logon.header(name).is_none());
                }
                let (ews, _) = get_once(host, &www, "/EWS/Exchange.asmx").await;
                assert_eq!(ews.status, 404);
            }
            ("owa-honeypot", None) => {
                let (owa, _) = get_once(host, &www, "/owa/").await;
                assert_eq!(owa.status, 500);
                assert!(owa.header("Server").unwrap().starts_with("Werkzeug/"));
                let (logon, _) = get_once(host, &www, "/owa/auth/logon.aspx").await;
                assert_eq!(logon.header("Server"), Some("Microsoft-IIS/7.5"));
                assert!(logon.body.contains("/owa/auth/15.1.1466/"));
            }
            _ => continue,
        }
        seen.insert(host.persona.clone());
    }
    assert_eq!(seen.len(), CLASSES.len(), "{seen:?}");
    bed.shutdown().await;
}
