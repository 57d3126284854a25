//! Re-judgement: a stored scan's observations judged again from their stored evidence with
//! another knowledge base, or for another day, probing nothing.
//!
//! The judgement is stored as a scan of its own that names its source (`judged_from`); the
//! earlier judgement stays as it was. A re-judgement for the source's own day becomes the
//! default census of those observations; one for another day is a projection, read only when
//! asked for by id. A reader task pages the stored observations, [`PAGE`] at a time, through
//! a channel of one page to the loop that judges and records them.

use serde::Serialize;
use surveyor_kb::KnowledgeBase;
use surveyor_model::{ExchangeVerdict, Observation};
use surveyor_store::{NewJudgement, ObservationCursor, ScanId, ScanRecord, Store, StoreError};
use time::{Date, OffsetDateTime};
use tokio::sync::mpsc;

use crate::pipeline::kb_ref;
use crate::RunError;

/// Observations read, judged and stored at a time: a page of the source and one transaction.
/// A verdict holds one entry per CVE of its family (about 150 for 2016/2019), so a page of
/// 1,000 is some 15 MB in memory.
pub const PAGE: u32 = 1_000;

/// What a re-judgement changed, server by server, against the judgement it was made beside.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub observations: u64,
    pub servers_before: u64,
    pub servers_after: u64,
    /// Servers whose verdict differs in any way the census or a notification reads.
    pub changed: u64,
    pub support: u64,
    pub version: u64,
    pub patch: u64,
    pub cves: u64,
    pub exchange_online: u64,
}

/// What a re-judgement did.
#[derive(Debug, Clone)]
pub enum Rejudged {
    /// A finished judgement of the same observations, knowledge base and day exists: nothing
    /// was done.
    Already {
        judgement: ScanRecord,
        source: ScanRecord,
        as_of: Date,
    },
    /// A new judgement, compared with the one the census showed before.
    Judged {
        judgement: ScanRecord,
        source: ScanRecord,
        /// The judgement compared with (and read from).
        compared: Box<ScanRecord>,
        changes: Changes,
    },
}

/// Judges the observations of `scan` (default: the latest finished scan; a re-judgement
/// stands for its source) again with `kb`, for `as_of` (default: the source's day).
/// `started` is told the new judgement's id, its source and the scan read from, before the
/// observations are judged.
pub async fn rejudge(
    store: &Store,
    kb: &KnowledgeBase,
    scan: Option<ScanId>,
    as_of: Option<Date>,
    started: impl FnOnce(ScanId, &ScanRecord, &ScanRecord),
) -> Result<Rejudged, RunError> {
    let read = RunError::store("read the store");
    let named = match scan {
        Some(id) => store
            .scans
            .scan(id)
            .await
            .map_err(read)?
            .ok_or_else(|| RunError::Refused(format!("no scan with id {id}")))?,
        None => store
            .census
            .latest_finished_scan()
            .await
            .map_err(RunError::store("read the store"))?
            .ok_or_else(|| {
                RunError::Refused(
                    "no finished scan to judge again: run `surveyor scan` first".to_string(),
                )
            })?,
    };
    let scans = store
        .scans
        .scans()
        .await
        .map_err(RunError::store("read the store"))?;
    let source = match named.judged_from {
        Some(origin) => scans
            .iter()
            .find(|s| s.id == origin)
            .cloned()
            .ok_or_else(|| {
                RunError::Refused(format!(
                    "scan {} names a source {origin} that is gone",
                    named.id
                ))
            })?,
        None => named.clone(),
    };
    if source.finished_at.is_none() {
        return Err(RunError::Refused(format!(
            "scan {} is not finished; judge it again once it is",
            source.id
        )));
    }
    let as_of = as_of.unwrap_or(source.as_of);
    // The judgement the census shows now: what the new one is compared with, and where the
    // evidence is read (every judgement holds a whole copy of the source's observations).
    let current = scans
        .iter()
        .filter(|s| s.source() == source.id && s.is_default())
        .max_by_key(|s| s.id)
        .cloned()
        .unwrap_or_else(|| source.clone());
    if let Some(same) = scans.iter().find(|s| {
        s.source() == source.id
            && s.as_of == as_of
            && s.finished_at.is_some()
            && s.superseded_by.is_none()
            && s.kb.as_ref().map(|k| &k.digest) == Some(&kb.stamp.digest)
    }) {
        return Ok(Rejudged::Already {
            judgement: same.clone(),
            source,
            as_of,
        });
    }

    let judged_at = OffsetDateTime::now_utc();
    let id = store
        .scans
        .begin_judgement(&NewJudgement {
            source: source.id,
            as_of,
            kb: kb_ref(kb),
            judged_at,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .await
        .map_err(RunError::store(format!(
            "begin a judgement of scan {}",
            source.id
        )))?;
    started(id, &source, &current);
    let changes = judge_all(store, current.id, id, kb, as_of).await?;
    let finished_at = source.finished_at.unwrap_or(judged_at);
    store
        .scans
        .finish_scan(id, finished_at)
        .await
        .map_err(RunError::store("finish the judgement"))?;
    let judgement = store
        .scans
        .scan(id)
        .await
        .map_err(RunError::store("read the store"))?
        .ok_or_else(|| RunError::Refused("the judgement vanished from the store".to_string()))?;
    Ok(Rejudged::Judged {
        judgement,
        source,
        compared: Box::new(current),
        changes,
    })
}

/// Reads `from` page by page (the next page while this one is judged and stored), judges every
/// observation again and records it under `into`.
async fn judge_all(
    store: &Store,
    from: ScanId,
    into: ScanId,
    kb: &KnowledgeBase,
    as_of: Date,
) -> Result<Changes, RunError> {
    // One page waits while one is judged and stored: reading overlaps writing, memory stays
    // at three pages.
    let (tx, mut rx) = mpsc::channel::<Result<Vec<Observation>, StoreError>>(1);
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut after: Option<ObservationCursor> = None;
            loop {
                let (page, next) = match store.scans.observations_page(from, after, PAGE).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                if !page.is_empty() && tx.send(Ok(page)).await.is_err() {
                    return;
                }
                match next {
                    Some(cursor) => after = Some(cursor),
                    None => return,
                }
            }
        })
    };
    let mut changes = Changes::default();
    while let Some(page) = rx.recv().await {
        let mut page = page.map_err(RunError::store("read"))?;
        for obs in &mut page {
            let new = kb.classify(&obs.fingerprint, as_of);
            changes.count(obs.exchange.as_ref(), new.as_ref());
            obs.exchange = new;
        }
        store
            .scans
            .record(into, &page)
            .await
            .map_err(RunError::store(format!(
                "store the judgement (scan {into})"
            )))?;
    }
    reader
        .await
        .map_err(|e| RunError::Task("the reader task", e))?;
    Ok(changes)
}

impl Changes {
    fn count(&mut self, before: Option<&ExchangeVerdict>, after: Option<&ExchangeVerdict>) {
        self.observations += 1;
        self.servers_before += u64::from(before.is_some());
        self.servers_after += u64::from(after.is_some());
        match (before, after) {
            (Some(b), Some(a)) => {
                let support = b.support != a.support || b.support_reason != a.support_reason;
                let version = b.version_name != a.version_name || b.cu != a.cu;
                let patch = b.patch_level != a.patch_level || b.esu_patched != a.esu_patched;
                let cves = b.cves != a.cves;
                let exo = b.exchange_online != a.exchange_online;
                self.support += u64::from(support);
                self.version += u64::from(version);
                self.patch += u64::from(patch);
                self.cves += u64::from(cves);
                self.exchange_online += u64::from(exo);
                self.changed += u64::from(support || version || patch || cves || exo || b != a);
            }
            (None, None) => {}
            _ => self.changed += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_count_servers_that_came_went_or_changed() {
        let kb = KnowledgeBase::builtin();
        let fingerprint = |build: &str| {
            let mut f = surveyor_model::Fingerprint::default();
            f.push(surveyor_model::Signal::OwaVersionHeader, "test", build);
            f
        };
        let day = time::macros::date!(2026 - 11 - 23);
        let old = kb.classify(&fingerprint("15.1.2507.6"), day);
        let new = kb.classify(&fingerprint("15.2.1748.10"), day);
        assert!(old.is_some() && new.is_some());
        let mut c = Changes::default();
        c.count(old.as_ref(), old.as_ref());
        c.count(old.as_ref(), new.as_ref());
        c.count(None, new.as_ref());
        c.count(None, None);
        assert_eq!(
            (c.observations, c.servers_before, c.servers_after, c.changed),
            (4, 2, 3, 2)
        );
        assert_eq!(c.version, 1);
    }
}
