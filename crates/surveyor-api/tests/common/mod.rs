//! Fixtures shared by the API's test binaries.

use surveyor_model::{Build, ExchangeVerdict, Family, Support};

/// A verdict as the knowledge base would give it, with nothing optional set; a test sets
/// what it needs with `..verdict(…)`.
pub fn verdict(family: Family, build: &str, support: Support) -> ExchangeVerdict {
    ExchangeVerdict {
        family,
        build: build.parse::<Build>().unwrap(),
        version_name: format!("{} test", family.product_name()),
        cu: None,
        support,
        evidence: Vec::new(),
        build_precision: None,
        confidence: None,
        support_reason: None,
        esu_patched: false,
        patch_level: Default::default(),
        upgrade_path: None,
        cves: Vec::new(),
        exchange_online: None,
        inconsistencies: Vec::new(),
    }
}
