//! A stored scan planned: its observations, the organisations registry, what was told before
//! and the suppressions in force, read from the store, then planned and rendered.

use surveyor_store::{Store, StoreError};

use crate::intelmq::Feed;
use crate::{
    plan, render_all, NetworkContacts, NotifyError, Plan, PlanConfig, Rendered, Templates,
};

/// Why a stored scan could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanScanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bundle did not render.
    #[error(transparent)]
    Render(#[from] NotifyError),
}

/// Plans scan `config.scan` from what the store holds (suppressions as in force at
/// `config.now`) and renders every bundle with `templates`.
pub async fn plan_scan(
    store: &Store,
    config: &PlanConfig,
    contacts: &NetworkContacts,
    templates: &Templates,
) -> Result<(Plan, Vec<Rendered>), PlanScanError> {
    let observations = store.scans.observations(config.scan).await?;
    let organisations = store.registry.organisations().await?;
    let notified = store.notifications.notified_findings().await?;
    let suppressions = store.notifications.suppressions(config.now).await?;
    let plan = plan(
        config,
        &observations,
        &organisations,
        contacts,
        &notified,
        &suppressions,
    );
    let rendered = render_all(&plan, templates, &Feed::default())?;
    Ok((plan, rendered))
}

#[cfg(test)]
mod tests {
    use surveyor_model::{
        Attribution, AttributionRule, Fingerprint, Observation, Organisation, Scheme, Sector,
        Signal, Status,
    };
    use surveyor_store::testing::each_backend;
    use surveyor_store::Suppression;
    use time::macros::{date, datetime};
    use time::Duration;

    use super::*;

    /// An end-of-life Exchange 2016 of the organisation `klinikum`.
    fn observation() -> Observation {
        let mut fingerprint = Fingerprint::default();
        fingerprint.push(Signal::OwaVersionHeader, "GET /owa/", "15.1.2507.61");
        let kb = surveyor_kb::KnowledgeBase::builtin();
        Observation {
            ip: "192.0.2.7".parse().unwrap(),
            port: 443,
            scheme: Scheme::Https,
            observed_at: datetime!(2026-11-23 06:00 UTC),
            status: Status::Success,
            error: None,
            tls: None,
            http_server: None,
            exchange: kb.classify(&fingerprint, date!(2026 - 11 - 23)),
            fingerprint,
            attribution: Some(Attribution {
                organisation: "klinikum".into(),
                sector: Sector::Hospital,
                rule: AttributionRule::CertificateDomain,
                confidence: surveyor_model::observation::Confidence::High,
                matched: "mail.klinikum.example".into(),
            }),
            asn: None,
            country: None,
        }
    }

    fn klinikum() -> Organisation {
        Organisation {
            id: "klinikum".into(),
            name: "Klinikum Buchholz".into(),
            sector: Sector::Hospital,
            subsector: None,
            country: Some("DE".into()),
            naics: None,
            cidrs: vec![],
            asns: vec![],
            domains: vec![],
            abuse_contact: Some("it@klinikum.example".into()),
            language: Some("de".into()),
        }
    }

    #[tokio::test]
    async fn a_stored_scan_is_planned_against_the_registry_and_the_suppressions() {
        for (backend, db) in each_backend().await {
            let store = surveyor_store::open(&db.url).await.unwrap();
            let now = datetime!(2026-11-23 12:00 UTC);
            let scan = crate::test_scan::begin(&store, now).await;
            store.scans.record(scan, &[observation()]).await.unwrap();
            store
                .registry
                .replace_registry(&[klinikum()], "test", now)
                .await
                .unwrap();
            let config = PlanConfig {
                scan,
                as_of: date!(2026 - 11 - 23),
                knowledge_base: None,
                now,
                renotify_after: Duration::days(30),
                exposure_alone: false,
            };
            let templates = Templates::builtin("CERT-Test", 30);
            let contacts = NetworkContacts::default();
            let (plan, rendered) = plan_scan(&store, &config, &contacts, &templates)
                .await
                .unwrap();
            assert_eq!(plan.bundles.len(), 1, "{backend}");
            assert_eq!(rendered.len(), 1, "{backend}");
            let suppression = Suppression {
                target: "klinikum".into(),
                reason: "asked us".into(),
                created_at: now,
                expires_at: None,
            };
            store.notifications.suppress(&suppression).await.unwrap();
            let (plan, _) = plan_scan(&store, &config, &contacts, &templates)
                .await
                .unwrap();
            assert!(plan.bundles.is_empty(), "{backend}");
            assert_eq!(plan.suppressed, 1, "{backend}");
        }
    }
}
