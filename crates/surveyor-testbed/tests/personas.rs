//! Starts fleets on loopback and checks that every hostile persona, SMTP, the plain-HTTP
//! redirect and the registry behave as `docs/testbed.md` says, with raw clients.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use common::{base64_decode, tcp, tls, STEP};
use surveyor_testbed::{
    try_generate_with, write_registry, FleetOptions, Listeners, Testbed, TestbedConfig,
    TestbedError, TruthHost,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout, Instant};

const HOSTILE: [&str; 11] = [
    "tarpit",
    "slow-drip",
    "endless-body",
    "huge-headers",
    "malformed-status-line",
    "garbage-after-tls",
    "redirect-loop",
    "gzip-bomb",
    "wrong-content-length",
    "malformed-ntlm",
    "xml-bomb-manifest",
];
/// nmap's http-ntlm-info NEGOTIATE_MESSAGE.
const TYPE1: &str = "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==";

fn hostile_config(seed: u64) -> TestbedConfig {
    TestbedConfig {
        hosts: 40,
        seed,
        net: "127.202.1.0/24".parse().unwrap(),
        port: 0,
    }
}

fn all_hostile() -> FleetOptions {
    FleetOptions {
        hostile_share: 1.0,
        ..FleetOptions::default()
    }
}

/// The first seed whose all-hostile fleet has every hostile persona; found from the plan,
/// so the test stays deterministic.
fn hostile_seed() -> u64 {
    (1..500)
        .find(|&seed| {
            let plan = try_generate_with(&hostile_config(seed), &all_hostile()).unwrap();
            HOSTILE.iter().all(|p| plan.iter().any(|h| h.persona == *p))
        })
        .expect("some seed has every hostile persona")
}

fn find<'a>(truth: &'a [TruthHost], persona: &str) -> &'a TruthHost {
    truth.iter().find(|h| h.persona == persona).unwrap()
}

fn addr(host: &TruthHost) -> SocketAddr {
    SocketAddr::new(host.ip, host.port)
}

async fn get<S>(io: &mut S, path: &str, extra: &str)
where
    S: AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.1\r\nHost: mail\r\n{extra}\r\n");
    timeout(STEP, io.write_all(request.as_bytes()))
        .await
        .unwrap()
        .unwrap();
}

/// Reads up to the end of a response head; returns the head and any body bytes after it.
async fn read_head<S>(io: &mut S) -> (String, Vec<u8>)
where
    S: AsyncRead + Unpin,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return (String::from_utf8(buf).unwrap(), rest);
        }
        let n = timeout(STEP, io.read(&mut chunk)).await.unwrap().unwrap();
        assert!(
            n > 0,
            "closed inside the head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads until EOF (a reset counts as EOF), at most `limit` bytes or [`STEP`].
async fn read_some<S>(io: &mut S, limit: usize) -> Vec<u8>
where
    S: AsyncRead + Unpin,
{
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let deadline = Instant::now() + STEP;
    while out.len() < limit {
        match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_personas_misbehave_as_documented() {
    let seed = hostile_seed();
    let bed = Testbed::start_with(hostile_config(seed), all_hostile())
        .await
        .unwrap();
    let truth = bed.truth();
    for host in truth {
        assert!(HOSTILE.contains(&host.persona.as_str()), "{}", host.persona);
    }
    let expected = |persona: &str| find(truth, persona).expected_status.clone().unwrap();
    assert_eq!(expected("tarpit"), "io-timeout");
    assert_eq!(expected("slow-drip"), "io-timeout");
    assert_eq!(expected("huge-headers"), "protocol-error");
    assert_eq!(expected("malformed-status-line"), "protocol-error");
    assert_eq!(expected("garbage-after-tls"), "protocol-error");
    for persona in [
        "endless-body",
        "redirect-loop",
        "gzip-bomb",
        "wrong-content-length",
        "malformed-ntlm",
        "xml-bomb-manifest",
    ] {
        assert_eq!(expected(persona), "success", "{persona}");
    }

    // Tarpit: the TCP connection opens, and not one byte ever comes back.
    let mut stream = tcp(addr(find(truth, "tarpit"))).await;
    stream
        .write_all(b"\x16\x03\x01\x00\x05hello")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let silent = timeout(Duration::from_millis(1500), stream.read(&mut byte)).await;
    assert!(silent.is_err(), "the tarpit answered: {silent:?}");

    // Slow drip: a valid head, one byte every two seconds.
    let host = find(truth, "slow-drip");
    let mut stream = tls(tcp(addr(host)).await, "www.x.example").await;
    get(&mut stream, "/", "").await;
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_millis(4500);
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, stream.read(&mut byte)).await {
        if n == 0 {
            break;
        }
        got.push(byte[0]);
    }
    assert!((1..=3).contains(&got.len()), "{got:?}");
    assert!(b"HTTP/1.1 200 OK".starts_with(&got));

    // Endless body: a valid chunked 200 that keeps going past any sane body limit.
    let host = find(truth, "endless-body");
    let mut stream = tls(tcp(addr(host)).await, "www.x.example").await;
    get(&mut stream, "/", "").await;
    let (head, rest) = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(header(&head, "Transfer-Encoding"), Some("chunked"));
    let body = read_some(&mut stream, 2 << 20).await;
    assert!(rest.len() + body.len() >= 2 << 20, "{}", body.len());
    assert!(
        !body.windows(5).any(|w| w == b"\r\n0\r\n"),
        "the body ended"
    );

    // Huge headers: more than a MiB of head without its end.
    let host = find(truth, "huge-headers");
    let mut stream = tls(tcp(addr(host)).await, "www.x.example").await;
    get(&mut stream, "/", "").await;
    let bytes = read_some(&mut stream, (1 << 20) + 1).await;
    assert!(bytes.len() > 1 << 20);
    assert!(bytes.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(!bytes[..1 << 20].windows(4).any(|w| w == b"\r\n\r\n"));

    // Malformed status line.
    let host = find(truth, "malformed-status-line");
    let mut stream = tls(tcp(addr(host)).await, "www.x.example").await;
    get(&mut stream, "/", "").await;
    let bytes = read_some(&mut stream, 1 << 16).await;
    assert!(bytes.starts_with(b"HTTP/1.1 2OO OK\r\n"), "{bytes:?}");

    // Garbage after TLS: the handshake completes, then random bytes.
    let host = find(truth, "garbage-after-tls");
    let mut stream = tls(tcp(addr(host)).await, "www.x.example").await;
    get(&mut stream, "/", "").await;
    let bytes = read_some(&mut stream, 1 << 20).await;
    assert!(bytes.len() >= 1024, "{}", bytes.len());
    assert!(!bytes.starts_with(b"HTTP/"));

    // Redirect loop: every path 302s to itself.
    let host = find(truth, "redirect-loop");
    let mut stream = tls(tcp(addr(host)).await, "www.x.example").await;
    for path in ["/", "/owa/"] {
        get(&mut stream, path, "").await;
        let (head, rest) = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 302 "));
        let location = format!("https://www.{}{path}", host.domain);
        assert_eq!(header(&head, "Location"), Some(location.as_str()));
        let len: usize = header(&head, "Content-Length").unwrap().parse().unwrap();
        let mut body = vec![0u8; len - rest.len()];
        stream.read_exact(&mut body).await.unwrap();
    }

    // Gzip bomb: about 2 MB on the wire, 2 GiB of zeros inflated.
    let host = find(truth, "gzip-bomb");
    let mut stream = tls(tcp(addr(host)).await, "www.x.example").await;
    get(&mut stream, "/", "").await;
    let (head, mut body) = read_head(&mut stream).await;
    assert_eq!(header(&head, "Content-Encoding"), Some("gzip"));
    let len: usize = header(&head, "Content-Length").unwrap().parse().unwrap();
    assert!(len < 3 << 20, "{len}");
    body.extend(read_some(&mut stream, len).await);
    assert_eq!(body.len(), len);
    assert_eq!(
        body[len - 4..],
        (1u32 << 31).to_le_bytes(),
        "ISIZE is 2 GiB"
    );
    let mut inflated = vec![0u8; 8 << 20];
    flate2::read::GzDecoder::new(&body[..])
        .read_exact(&mut inflated)
        .unwrap();
    assert!(inflated.iter().all(|&b| b == 0));

    // Wrong Content-Length: declares more than it sends, then closes.
    let host = find(truth, "wrong-content-length");
    let mut stream = tls(tcp(addr(host)).await, "www.x.example").await;
    get(&mut stream, "/", "").await;
    let (head, mut body) = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    let declared: usize = header(&head, "Content-Length").unwrap().parse().unwrap();
    body.extend(read_some(&mut stream, declared).await);
    assert!(!body.is_empty() && body.len() < declared, "{}", body.len());

    // Malformed NTLM: Exchange in every way but its challenge.
    let host = find(truth, "malformed-ntlm");
    assert!(host.exchange.is_some());
    assert_eq!(host.exchange.as_ref().unwrap().ad_domain, None);
    let mut stream = tls(tcp(addr(host)).await, "mail.x.example").await;
    get(
        &mut stream,
        "/EWS/Exchange.asmx",
        &format!("Authorization: NTLM {TYPE1}\r\n"),
    )
    .await;
    let (head, _) = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 401 "));
    let token = header(&head, "WWW-Authenticate")
        .and_then(|v| v.strip_prefix("NTLM "))
        .unwrap();
    assert!(base64_decode(token).is_none(), "{token}");

    // XML bomb manifest: a billion laughs; the build comes from X-OWA-Version only.
    let host = find(truth, "xml-bomb-manifest");
    let ex = host.exchange.as_ref().unwrap();
    assert!(ex.owa_version_header && !ex.exporttool_manifest);
    let mut stream = tls(tcp(addr(host)).await, "mail.x.example").await;
    get(&mut stream, "/owa/", "").await;
    let (head, rest) = read_head(&mut stream).await;
    assert_eq!(header(&head, "X-OWA-Version"), Some(ex.build.as_str()));
    let len: usize = header(&head, "Content-Length").unwrap().parse().unwrap();
    let mut skip = vec![0u8; len - rest.len()];
    stream.read_exact(&mut skip).await.unwrap();
    get(
        &mut stream,
        "/ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application",
        "",
    )
    .await;
    let (head, mut body) = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    let len: usize = header(&head, "Content-Length").unwrap().parse().unwrap();
    body.extend(read_some(&mut stream, len - body.len()).await);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("<!ENTITY lol9 "));
    assert!(!text.contains(&ex.build));

    timeout(STEP * 2, bed.shutdown())
        .await
        .expect("shutdown hung with hostile connections open");
}

fn service_config() -> TestbedConfig {
    TestbedConfig {
        hosts: 60,
        seed: 5,
        net: "127.202.2.0/24".parse().unwrap(),
        port: 0,
    }
}

fn with_services() -> FleetOptions {
    FleetOptions {
        hostile_share: 0.0,
        smtp_port: Some(0),
        http_port: Some(0),
        ..FleetOptions::default()
    }
}

/// Reads one SMTP reply (all its lines).
async fn smtp_reply<S>(io: &mut S) -> String
where
    S: AsyncRead + Unpin,
{
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = timeout(STEP, io.read(&mut byte)).await.unwrap().unwrap();
        assert_eq!(
            n,
            1,
            "closed mid-reply: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.push(byte[0]);
        if out.ends_with(b"\r\n") {
            let text = String::from_utf8(out.clone()).unwrap();
            let last = text.trim_end().lines().last().unwrap().to_owned();
            if last.len() < 4 || last.as_bytes()[3] == b' ' {
                return text;
            }
        }
    }
}

async fn smtp_say<S>(io: &mut S, line: &str) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
    smtp_reply(io).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_http_and_ntlm_tell_the_truth() {
    let bed = Testbed::start_with(service_config(), with_services())
        .await
        .unwrap();
    let smtp_port = bed.smtp_port().unwrap();
    let http_port = bed.http_port().unwrap();
    assert_ne!(smtp_port, 0);
    assert_ne!(http_port, 0);
    let truth = bed.truth();
    let exchange = truth
        .iter()
        .find(|h| h.persona == "exchange" && h.exchange.as_ref().unwrap().family != "2007")
        .unwrap();
    let ex = exchange.exchange.as_ref().unwrap();
    assert_eq!(exchange.smtp.as_deref(), Some("exchange"));
    let ad_domain = ex.ad_domain.clone().unwrap();
    assert!(ad_domain.ends_with(".local"));
    let netbios = ex.netbios_computer.clone().unwrap();
    let fqdn = format!("{}.{ad_domain}", netbios.to_ascii_lowercase());

    // SMTP: banner, EHLO, STARTTLS with the mail certificate, EHLO again, QUIT.
    let mut stream = tcp(SocketAddr::new(exchange.ip, smtp_port)).await;
    let banner = smtp_reply(&mut stream).await;
    let prefix = format!("220 {fqdn} Microsoft ESMTP MAIL Service ready at ");
    assert!(banner.starts_with(&prefix), "{banner}");
    assert!(banner.trim_end().ends_with("+0100") || banner.trim_end().ends_with("+0200"));
    let ehlo = smtp_say(&mut stream, "EHLO scanner.example").await;
    for verb in [
        "250-STARTTLS",
        "250-X-ANONYMOUSTLS",
        "250-AUTH NTLM",
        "250-X-EXPS GSSAPI NTLM",
    ] {
        assert!(ehlo.contains(verb), "{ehlo}");
    }
    let go = smtp_say(&mut stream, "STARTTLS").await;
    assert!(go.starts_with("220 "), "{go}");
    let mut secure = tls(stream, &format!("mail.{}", exchange.domain)).await;
    let chain_len = secure
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.len())
        .unwrap_or(0);
    assert_eq!(chain_len, 1, "one self-signed certificate");
    let ehlo = smtp_say(&mut secure, "EHLO scanner.example").await;
    assert!(ehlo.starts_with(&format!("250-{fqdn} Hello [")), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"));
    let bye = smtp_say(&mut secure, "QUIT").await;
    assert!(bye.starts_with("221 "));

    // Postfix on the webmail hosts.
    if let Some(webmail) = truth.iter().find(|h| h.smtp.as_deref() == Some("postfix")) {
        let mut stream = tcp(SocketAddr::new(webmail.ip, smtp_port)).await;
        let banner = smtp_reply(&mut stream).await;
        assert_eq!(
            banner,
            format!("220 mail.{} ESMTP Postfix (Debian/GNU)\r\n", webmail.domain)
        );
        assert!(smtp_say(&mut stream, "QUIT").await.starts_with("221 "));
    }
    // Hosts without SMTP refuse the port.
    let quiet = truth.iter().find(|h| h.smtp.is_none()).unwrap();
    let refused = timeout(
        STEP,
        tokio::net::TcpStream::connect(SocketAddr::new(quiet.ip, smtp_port)),
    )
    .await
    .unwrap();
    assert!(refused.is_err());

    // Plain HTTP: 301 to https on the same path.
    let mut stream = tcp(SocketAddr::new(exchange.ip, http_port)).await;
    get(&mut stream, "/owa/", "").await;
    let (head, _) = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 301 Moved Permanently\r\n"));
    let location = format!("https://mail.{}/owa/", exchange.domain);
    assert_eq!(header(&head, "Location"), Some(location.as_str()));

    // NTLM: the challenge names what the truth says.
    let mut stream = tls(tcp(addr(exchange)).await, "mail.x.example").await;
    get(
        &mut stream,
        "/EWS/Exchange.asmx",
        &format!("Authorization: Negotiate {TYPE1}\r\n"),
    )
    .await;
    let (head, _) = read_head(&mut stream).await;
    let token = header(&head, "WWW-Authenticate")
        .and_then(|v| v.strip_prefix("Negotiate "))
        .unwrap();
    let msg = base64_decode(token).unwrap();
    assert_eq!(&msg[..12], b"NTLMSSP\0\x02\0\0\0");
    let build = u16::from_le_bytes([msg[50], msg[51]]);
    assert_eq!(Some(u32::from(build)), ex.windows_build);
    let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_le_bytes).collect() };
    let contains = |needle: &[u8]| msg.windows(needle.len()).any(|w| w == needle);
    assert!(contains(&utf16(&ad_domain)));
    assert!(contains(&utf16(&netbios)));
    assert!(contains(&utf16(ex.netbios_domain.as_deref().unwrap())));

    bed.shutdown().await;
}

#[test]
fn registry_has_one_row_per_organisation() {
    let truth = try_generate_with(&service_config(), &with_services()).unwrap();
    let mut out = Vec::new();
    write_registry(&truth, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("organisation,sector,cidr,domain,abuse_contact,language")
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| {
            csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(l.as_bytes())
                .records()
                .next()
                .unwrap()
                .unwrap()
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    let domains: std::collections::BTreeSet<&str> =
        truth.iter().map(|h| h.domain.as_str()).collect();
    assert_eq!(rows.len(), domains.len());
    assert!(
        rows.len() < truth.len(),
        "some organisations have several hosts"
    );
    for row in &rows {
        assert!(
            surveyor_testbed::SECTORS.contains(&row[1].as_str()),
            "{row:?}"
        );
        assert_eq!(row[4], format!("abuse@{}", row[3]));
        assert!(["de", "en"].contains(&row[5].as_str()));
        let hosts: Vec<&TruthHost> = truth.iter().filter(|h| h.domain == row[3]).collect();
        for host in &hosts {
            assert_eq!(host.organisation, row[0]);
            let inside = row[2].split(' ').any(|net| {
                let net: ipnet::Ipv4Net = net.parse().unwrap();
                matches!(host.ip, std::net::IpAddr::V4(ip) if net.contains(&ip))
            });
            assert!(inside, "{} not in {}", host.ip, row[2]);
        }
    }
}

#[tokio::test]
async fn fleets_beyond_the_listener_limit_share_listeners() {
    // Pin the open-file limit to this machine's default so that the fleet sizes below mean the
    // same everywhere (lowering a soft limit needs no privilege).
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    rlimit::setrlimit(rlimit::Resource::NOFILE, 20_000.min(hard), hard).unwrap();
    let max = surveyor_testbed::max_listeners();
    let config = TestbedConfig {
        hosts: max + 1,
        seed: 1,
        net: "127.203.0.0/16".parse().unwrap(),
        port: 0,
    };
    let per_host = FleetOptions {
        listeners: Listeners::PerHost,
        ..FleetOptions::default()
    };
    let result = Testbed::start_with(config.clone(), per_host.clone()).await;
    assert!(matches!(
        result,
        Err(TestbedError::TooManyListeners { requested, limit })
            if requested == max + 1 && limit == max
    ));
    // With SMTP and HTTP every Exchange host needs three listeners.
    let small = TestbedConfig {
        hosts: 6_000,
        ..config.clone()
    };
    let three = FleetOptions {
        smtp_port: Some(0),
        http_port: Some(0),
        ..per_host
    };
    assert!(matches!(
        Testbed::start_with(small, three).await,
        Err(TestbedError::TooManyListeners { .. })
    ));

    // Left to choose, the same fleet starts on shared listeners and its last host answers.
    let bed = Testbed::start(config).await.unwrap();
    assert!(bed.shared_listeners());
    assert_eq!(bed.truth().len(), max + 1);
    let host = bed
        .truth()
        .iter()
        .rev()
        .find(|h| h.persona == "exchange")
        .unwrap();
    let mut stream = tls(
        tcp(SocketAddr::new(host.ip, bed.port())).await,
        &format!("mail.{}", host.domain),
    )
    .await;
    stream
        .write_all(b"GET /owa/ HTTP/1.1\r\nHost: mail\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    timeout(STEP, stream.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(reply.starts_with(b"HTTP/1.1 302 "), "{:?}", &reply[..40]);
    bed.shutdown().await;
}

#[test]
fn bad_options_are_refused() {
    for options in [
        FleetOptions {
            hostile_share: 1.5,
            ..FleetOptions::default()
        },
        FleetOptions {
            non_exchange_share: -0.1,
            ..FleetOptions::default()
        },
        FleetOptions {
            family_weights: surveyor_testbed::FamilyWeights {
                se: 0,
                ex2019: 0,
                ex2016: 0,
                ex2013: 0,
                ex2010: 0,
                ex2007: 0,
            },
            ..FleetOptions::default()
        },
    ] {
        assert!(matches!(
            try_generate_with(&hostile_config(1), &options),
            Err(TestbedError::BadOptions { .. })
        ));
    }
}
