//! IntelMQ events: one flat object per finding with harmonization field names, as IntelMQ's
//! Shadowserver parser maps a `scan_exchange` row (plus our own fields under `extra.`).

use serde_json::{json, Map, Value};

use crate::plan::{Bundle, Finding};

/// Who the events say they come from (`feed.name`, `feed.provider`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub name: String,
    pub provider: String,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed {
            name: "Surveyor Exchange census".into(),
            provider: "Surveyor".into(),
        }
    }
}

/// One event per finding of the bundle, in the bundle's order.
pub fn events(bundle: &Bundle, feed: &Feed) -> Vec<Map<String, Value>> {
    bundle
        .findings
        .iter()
        .map(|f| event(bundle, f, feed))
        .collect()
}

/// The events as JSON lines, as IntelMQ's file collector and `intelmqctl` read them.
pub fn to_jsonl(events: &[Map<String, Value>]) -> String {
    events
        .iter()
        .map(|e| Value::Object(e.clone()).to_string() + "\n")
        .collect()
}

fn event(bundle: &Bundle, f: &Finding, feed: &Feed) -> Map<String, Value> {
    let mut e = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            e.insert(k.to_string(), v);
        }
    };
    put("feed.name", json!(feed.name));
    put("feed.provider", json!(feed.provider));
    put(
        "time.source",
        json!(f
            .observed_at
            .format(&time::format_description::well_known::Rfc3339)
            .ok()),
    );
    put("classification.taxonomy", json!("vulnerable"));
    put("classification.type", json!("vulnerable-system"));
    put(
        "classification.identifier",
        json!("vulnerable-exchange-server"),
    );
    put("severity", json!(f.severity()));
    put("protocol.application", json!("exchange"));
    put("protocol.transport", json!("tcp"));
    put("source.ip", json!(f.ip.to_string()));
    put("source.port", json!(f.port));
    put("source.asn", json!(f.asn));
    put("source.geolocation.cc", json!(f.country));
    put("source.reverse_dns", json!(f.hostname));
    put("source.abuse_contact", json!(bundle.recipient.email));
    put("destination.url", json!(f.url));
    if !f.vulnerable_cves.is_empty() {
        put(
            "product.vulnerabilities",
            json!(f.vulnerable_cves.join(";").to_lowercase()),
        );
    }
    put("extra.tag", json!(crate::shadowserver::tag(f)));
    put("extra.version", json!(f.build.to_string()));
    put("extra.version_name", json!(f.version_name));
    put("extra.servername", json!(f.servername));
    put("extra.hostname_source", json!(f.hostname_source));
    put("extra.source.sector", json!(f.sector.map(|s| s.as_str())));
    put("extra.organisation", json!(bundle.recipient.organisation));
    put("extra.support", json!(f.support.as_str()));
    put(
        "extra.support_reason",
        json!(f.support_reason.map(|r| r.as_str())),
    );
    put("extra.esu_patched", json!(f.esu_patched));
    put("extra.reasons", json!(f.reasons));
    put("extra.actions", json!(f.actions));
    put("extra.undetermined_cves", json!(f.undetermined_cves));
    if !f.exploited_cves.is_empty() {
        // Exploited in the wild: the field a pipeline sorts and escalates by.
        put("extra.exploited_cves", json!(f.exploited_cves));
    }
    put("extra.exchange_online", json!(f.exchange_online));
    put("extra.knowledge_base", json!(bundle.knowledge_base));
    put("extra.enforcement", json!(f.enforcement));
    put("extra.reminder", json!(f.reminder));
    put("extra.scan", json!(bundle.scan.0));
    e
}
