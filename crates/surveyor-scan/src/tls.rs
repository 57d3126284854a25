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
        .map(|v| version_name(u16::from(v)))
        .unwrap_or_default();
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|c| cipher_name(u16::from(c.suite())))
        .unwrap_or_default();
    let mut info = TlsInfo {
        version,
        cipher,
        ..TlsInfo::default()
    };
    if let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) {
        describe_certificate(leaf, &mut info);
    }
    info
}

/// Our name for a protocol version, by its wire code: stored data must not change with a
/// dependency's `Debug` output. An unknown code is kept as hex.
fn version_name(code: u16) -> String {
    match code {
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1.0".into(),
        0x0302 => "TLSv1.1".into(),
        0x0303 => "TLSv1.2".into(),
        0x0304 => "TLSv1.3".into(),
        other => format!("0x{other:04X}"),
    }
}

/// Our name for a cipher suite, by its IANA code, spelled as the census has always stored it
/// (the IANA names, with `TLS13_` for the TLS 1.3 suites). An unknown code is kept as hex.
fn cipher_name(code: u16) -> String {
    let name = match code {
        0x1301 => "TLS13_AES_128_GCM_SHA256",
        0x1302 => "TLS13_AES_256_GCM_SHA384",
        0x1303 => "TLS13_CHACHA20_POLY1305_SHA256",
        0xC02B => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xC02C => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xC02F => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xC030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xCCA8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xCCA9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        other => return format!("0x{other:04X}"),
    };
    name.into()
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

#[cfg(test)]
mod tests {
    use rustls::{CipherSuite, ProtocolVersion};

    use super::*;

    #[test]
    fn every_suite_and_version_rustls_can_negotiate_has_our_name() {
        // What the census stored before it named them itself (rustls' Debug spelling, with
        // the versions' dots): the names must not change for stored data to stay comparable.
        for suite in rustls::crypto::ring::ALL_CIPHER_SUITES {
            let code = suite.suite();
            let name = cipher_name(u16::from(code));
            assert!(!name.starts_with("0x"), "{code:?} has no name");
            assert_eq!(name, format!("{code:?}"));
        }
        for (version, name) in [
            (ProtocolVersion::TLSv1_2, "TLSv1.2"),
            (ProtocolVersion::TLSv1_3, "TLSv1.3"),
        ] {
            assert_eq!(version_name(u16::from(version)), name);
        }
    }

    #[test]
    fn unknown_codes_are_kept_as_hex() {
        assert_eq!(cipher_name(0x00FF), "0x00FF");
        assert_eq!(
            cipher_name(u16::from(CipherSuite::Unknown(0x1234))),
            "0x1234"
        );
        assert_eq!(version_name(0x7F1C), "0x7F1C");
    }
}
