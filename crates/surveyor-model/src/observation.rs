//! What the scanner saw at one (address, port), and what the knowledge base made of it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::build::{Build, Family};

/// How far a probe got, in ZGrab2's vocabulary so that researchers can join our output with
/// theirs. Per-target failures are data, never errors that stop a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Success,
    ConnectionRefused,
    ConnectionTimeout,
    IoTimeout,
    TlsError,
    ProtocolError,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::ConnectionRefused => "connection-refused",
            Status::ConnectionTimeout => "connection-timeout",
            Status::IoTimeout => "io-timeout",
            Status::TlsError => "tls-error",
            Status::ProtocolError => "protocol-error",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Success,
            Status::ConnectionRefused,
            Status::ConnectionTimeout,
            Status::IoTimeout,
            Status::TlsError,
            Status::ProtocolError,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// The application protocol spoken on the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn parse(s: &str) -> Option<Scheme> {
        match s {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

/// Which kind of signal a piece of evidence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// The `X-OWA-Version` response header: a 4-part build.
    OwaVersionHeader,
    /// A versioned OWA resource path on a page the host served (`/owa/auth/15.1.2507/...`).
    OwaResourcePath,
    /// The `version` of the ECP export-tool ClickOnce manifest: a 4-part build.
    ExportToolManifest,
    /// A marker of the OWA logon page (title, OwaPage comment, form action).
    LogonPageMarker,
    /// The `X-FEServer` header: the NetBIOS name of the Client Access front end.
    FeServerHeader,
    /// A marker of Exchange Online rather than an on-premises server.
    ExchangeOnline,
}

/// One signal, where it was seen, and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub signal: Signal,
    /// The request that produced it, e.g. `GET /owa/`.
    pub source: String,
    pub value: String,
}

/// The raw Exchange-related signals a host showed, before any interpretation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub evidence: Vec<Evidence>,
}

impl Fingerprint {
    pub fn push(&mut self, signal: Signal, source: impl Into<String>, value: impl Into<String>) {
        self.evidence.push(Evidence {
            signal,
            source: source.into(),
            value: value.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.evidence.is_empty()
    }

    pub fn of(&self, signal: Signal) -> impl Iterator<Item = &Evidence> {
        self.evidence.iter().filter(move |e| e.signal == signal)
    }
}

/// Support status of an Exchange build on a given date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Support {
    Supported,
    Unsupported,
}

impl Support {
    pub fn as_str(self) -> &'static str {
        match self {
            Support::Supported => "supported",
            Support::Unsupported => "unsupported",
        }
    }

    pub fn parse(s: &str) -> Option<Support> {
        match s {
            "supported" => Some(Support::Supported),
            "unsupported" => Some(Support::Unsupported),
            _ => None,
        }
    }
}

/// The knowledge base's verdict on a recognised on-premises Exchange server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeVerdict {
    pub family: Family,
    /// The most precise build observed (4 parts when any source gave the revision).
    pub build: Build,
    /// e.g. "Exchange Server 2016 CU23 Oct25SU"; names only the CU when the update is unknown.
    pub version_name: String,
    /// As of the date the verdict was made for.
    pub support: Support,
    /// The signals the verdict rests on.
    pub evidence: Vec<Evidence>,
}

/// What the TLS handshake showed. The certificate is recorded, never trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    /// SHA-256 of the leaf certificate's DER, lower-case hex.
    pub cert_sha256: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// DNS names from the subject alternative name extension.
    pub names: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_before: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<time::OffsetDateTime>,
}

/// One (address, port) that a scan reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub ip: IpAddr,
    pub port: u16,
    pub scheme: Scheme,
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    pub status: Status,
    /// A short, stable description of what failed, when `status` is not `success`.
    pub error: Option<String>,
    pub tls: Option<TlsInfo>,
    /// The HTTP `Server` header of the first response, if any.
    pub http_server: Option<String>,
    /// Raw Exchange signals; empty when the host showed none.
    pub fingerprint: Fingerprint,
    /// `null` unless an on-premises Exchange server was recognised.
    pub exchange: Option<ExchangeVerdict>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for s in [
            Status::Success,
            Status::ConnectionRefused,
            Status::ConnectionTimeout,
            Status::IoTimeout,
            Status::TlsError,
            Status::ProtocolError,
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("timeout"), None);
    }
}
