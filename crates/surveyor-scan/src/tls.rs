//! Recording what a TLS handshake showed: version, cipher and the leaf certificate.

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConnection;
use surveyor_model::TlsInfo;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The name to send as SNI: the input's domain when there is one; for an address, rustls
/// sends no SNI at all, as a browser typing an IP would.
pub fn server_name(target: &crate::targets::Target) -> ServerName<'static> {
    match target
        .domain
        .as_deref()
        .map(|d| ServerName::try_from(d.to_string()))
    {
        Some(Ok(name)) => name,
        _ => ServerName::IpAddress(target.ip.into()),
    }
}

/// Summarises an established connection. A certificate that does not parse is still
/// fingerprinted: the hash is what researchers join on.
pub fn record(conn: &ClientConnection) -> TlsInfo {
    let version = conn
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()))
        .unwrap_or_default();
    let mut info = TlsInfo {
        version: tls_version_name(&version),
        cipher,
        ..TlsInfo::default()
    };
    if let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) {
        describe_certificate(leaf, &mut info);
    }
    info
}

fn tls_version_name(debug: &str) -> String {
    match debug {
        "TLSv1_2" => "TLSv1.2".into(),
        "TLSv1_3" => "TLSv1.3".into(),
        other => other.into(),
    }
}

fn describe_certificate(der: &CertificateDer<'_>, info: &mut TlsInfo) {
    info.cert_sha256 = Some(hex(ring::digest::digest(
        &ring::digest::SHA256,
        der.as_ref(),
    )
    .as_ref()));
    let Ok((_, cert)) = X509Certificate::from_der(der.as_ref()) else {
        return;
    };
    info.subject = Some(clean(&cert.subject().to_string()));
    info.issuer = Some(clean(&cert.issuer().to_string()));
    info.not_before =
        OffsetDateTime::from_unix_timestamp(cert.validity().not_before.timestamp()).ok();
    info.not_after =
        OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        info.names = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(name) => Some(clean(name)),
                _ => None,
            })
            .collect();
    }
}

/// Certificates are attacker-controlled: control characters (NUL above all, which PostgreSQL
/// text cannot hold) are dropped and length is bounded before anything is stored.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(1024).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
