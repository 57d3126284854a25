//! Self-signed certificates and TLS acceptors, one per simulated host.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::plan::{HostPlan, Persona};
use crate::TestbedError;

/// The DNS names a host's certificate carries; the first is also the CN.
pub(crate) fn cert_names(host: &HostPlan) -> Vec<String> {
    let domain = &host.truth.domain;
    match host.persona {
        Persona::Exchange(_) => vec![format!("mail.{domain}"), format!("autodiscover.{domain}")],
        _ => vec![format!("www.{domain}")],
    }
}

/// Builds the acceptor for one host. The key is fresh each start (the truth does not cover
/// keys); names and validity dates follow the plan.
pub(crate) fn acceptor(
    host: &HostPlan,
    provider: &Arc<CryptoProvider>,
) -> Result<TlsAcceptor, TestbedError> {
    let names = cert_names(host);
    let fail = |reason: String| TestbedError::Tls {
        domain: host.truth.domain.clone(),
        reason,
    };

    let mut params = CertificateParams::new(names.clone()).map_err(|e| fail(e.to_string()))?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, names[0].clone());
    subject.push(DnType::OrganizationName, host.org_name.clone());
    params.distinguished_name = subject;
    // Admins renew self-signed certificates at odd times; spread the dates a little.
    let mut rng = ChaCha8Rng::seed_from_u64(host.seed);
    let year = rng.gen_range(2023..=2025);
    let month = rng.gen_range(1..=12);
    let day = rng.gen_range(1..=28);
    params.not_before = rcgen::date_time_ymd(year, month, day);
    params.not_after = rcgen::date_time_ymd(year + 5, month, day);

    let key = KeyPair::generate().map_err(|e| fail(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));

    let config = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .map_err(|e| fail(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
