//! The scan row the unit tests that touch the store begin with.

use surveyor_store::{NewScan, ScanId, Store};
use time::OffsetDateTime;

/// Begins a scan of 192.0.2.0/24 on 443 at `at`, judged for that day, with no knowledge base.
pub(crate) async fn begin(store: &Store, at: OffsetDateTime) -> ScanId {
    store
        .scans
        .begin_scan(&NewScan {
            started_at: at,
            as_of: at.date(),
            targets: "192.0.2.0/24".into(),
            ports: vec![443],
            tool_version: "test".into(),
            kb: None,
        })
        .await
        .unwrap()
}
