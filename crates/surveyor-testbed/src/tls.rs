//! Self-signed certificates and TLS acceptors, one per organisation and role, made on first
//! use and then shared by all the organisation's hosts.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ServerSessionMemoryCache;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::plan::{HostPlan, Persona};
use crate::server::HostState;
use crate::TestbedError;

/// Sessions kept for resumption across the whole fleet.
const SESSIONS: usize = 4096;

/// Which of an organisation's certificates a host presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Role {
    /// `mail.<domain>`, `autodiscover.<domain>`: Exchange, and SMTP on any host.
    Mail,
    /// `www.<domain>`: every other web server.
    Web,
}

impl Role {
    /// The role of a host's HTTPS certificate.
    pub(crate) fn https(host: &HostPlan) -> Role {
        match host.persona {
            Persona::Exchange(_) => Role::Mail,
            _ => Role::Web,
        }
    }
}

/// Acceptors by (organisation index, role). Keys are generated lazily: a fleet of 10,000
/// hosts starts without making a single key, and a scan pays only for what it touches.
pub(crate) struct CertCache {
    provider: Arc<CryptoProvider>,
    /// One session cache for the fleet: rustls gives each config its own 256-entry cache
    /// by default, about 20 KiB apiece, which for 70,000 organisations is gigabytes.
    sessions: Arc<ServerSessionMemoryCache>,
    acceptors: Mutex<HashMap<(usize, Role), TlsAcceptor>>,
}

impl CertCache {
    pub(crate) fn new(provider: CryptoProvider) -> CertCache {
        CertCache {
            provider: Arc::new(provider),
            sessions: ServerSessionMemoryCache::new(SESSIONS),
            acceptors: Mutex::new(HashMap::new()),
        }
    }

    /// The acceptor for `host` in `role`, made now if this is its first use.
    pub(crate) fn acceptor(
        &self,
        host: &HostPlan,
        role: Role,
    ) -> Result<TlsAcceptor, TestbedError> {
        let key = (host.org, role);
        if let Some(found) = self.lock().get(&key) {
            return Ok(found.clone());
        }
        // Made outside the lock; two racing first connections both make one and the first
        // stored wins, which costs a key but never blocks other organisations.
        let made = acceptor(host, role, &self.provider, &self.sessions)?;
        Ok(self.lock().entry(key).or_insert(made).clone())
    }

    /// How many acceptors have been made.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(usize, Role), TlsAcceptor>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.acceptors.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Makes the acceptor of every role any of `hosts` uses, on blocking threads (one per core),
/// so no connection waits for a key.
pub(crate) async fn make_all(
    certs: &Arc<CertCache>,
    hosts: &[Arc<HostState>],
) -> Result<(), TestbedError> {
    let mut wanted: Vec<(Arc<HostState>, Role)> = Vec::new();
    let mut seen = HashSet::new();
    for host in hosts {
        // HTTPS, and SMTP's mail certificate where the host has SMTP.
        let smtp = host.plan.truth.smtp.is_some().then_some(Role::Mail);
        for role in std::iter::once(Role::https(&host.plan)).chain(smtp) {
            if seen.insert((host.plan.org, role)) {
                wanted.push((host.clone(), role));
            }
        }
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = wanted.len().div_ceil(workers).max(1);
    let mut tasks = Vec::new();
    while !wanted.is_empty() {
        let part: Vec<_> = wanted.split_off(wanted.len().saturating_sub(per));
        let certs = certs.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            part.iter()
                .try_for_each(|(host, role)| certs.acceptor(&host.plan, *role).map(drop))
        }));
    }
    for task in tasks {
        task.await.expect("making a certificate does not panic")?;
    }
    Ok(())
}

/// The DNS names a certificate of `role` carries; the first is also the CN.
pub(crate) fn cert_names(domain: &str, role: Role) -> Vec<String> {
    match role {
        Role::Mail => vec![format!("mail.{domain}"), format!("autodiscover.{domain}")],
        Role::Web => vec![format!("www.{domain}")],
    }
}

/// Builds one acceptor. The key is fresh each start (the truth does not cover keys); names
/// and validity dates follow the organisation.
fn acceptor(
    host: &HostPlan,
    role: Role,
    provider: &Arc<CryptoProvider>,
    sessions: &Arc<ServerSessionMemoryCache>,
) -> Result<TlsAcceptor, TestbedError> {
    let names = cert_names(&host.truth.domain, role);
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
    let mut rng = ChaCha8Rng::seed_from_u64(host.org_seed ^ (role as u64));
    let year = rng.gen_range(2023..=2025);
    let month = rng.gen_range(1..=12);
    let day = rng.gen_range(1..=28);
    params.not_before = rcgen::date_time_ymd(year, month, day);
    params.not_after = rcgen::date_time_ymd(year + 5, month, day);

    let key = KeyPair::generate().map_err(|e| fail(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));

    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .map_err(|e| fail(e.to_string()))?;
    config.session_storage = sessions.clone();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FleetOptions, TestbedConfig};

    #[tokio::test]
    async fn eager_certificates_cover_every_role_a_fleet_uses_once() {
        let config = TestbedConfig {
            hosts: 40,
            ..TestbedConfig::default()
        };
        let plans = crate::plan::plan(&config, &FleetOptions::default()).unwrap();
        let certs = Arc::new(CertCache::new(rustls::crypto::ring::default_provider()));
        let hosts: Vec<_> = plans
            .into_iter()
            .map(|p| Arc::new(HostState::new(p, certs.clone())))
            .collect();
        let mut roles = HashSet::new();
        for h in &hosts {
            roles.insert((h.plan.org, Role::https(&h.plan)));
            if h.plan.truth.smtp.is_some() {
                roles.insert((h.plan.org, Role::Mail));
            }
        }
        assert!(roles.len() > 1);
        make_all(&certs, &hosts).await.unwrap();
        assert_eq!(certs.len(), roles.len());
        // A connection then finds its acceptor made: no new key.
        for h in &hosts {
            certs.acceptor(&h.plan, Role::https(&h.plan)).unwrap();
        }
        assert_eq!(certs.len(), roles.len());
    }
}
