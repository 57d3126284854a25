//! `surveyor report`'s questions answered from the store as the API answers them: the census
//! of a scan, its servers grouped and filtered, the trend over scans, and what changed between
//! two scans; each as the JSON the command prints or the text of [`crate::text`].

use serde_json::json;
use surveyor_model::CensusDiff;
use surveyor_store::{
    CensusFilter, CensusGroup, Dimension, Judgements, ScanId, ScanRecord, Store, StoreError,
    TrendPoint,
};
use time::Date;

use crate::{census_report, text, ApiError, CensusReport};

/// What to ask of the census.
#[derive(Debug, Clone, PartialEq)]
pub enum Question {
    /// The family table of one scan.
    Census,
    /// One scan's servers by `group_by`, filtered.
    Groups {
        group_by: Vec<Dimension>,
        filter: CensusFilter,
    },
    /// One line per finished scan (and group), oldest first.
    Trend {
        group_by: Vec<Dimension>,
        filter: CensusFilter,
        judgements: Judgements,
    },
    /// What changed between the earlier scan `before` and the scan asked for.
    Diff { before: ScanId },
}

/// Which scan a question is about: by id, else the newest finished by `as_of`, else the
/// latest finished one. A trend reads every scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Which {
    pub scan: Option<ScanId>,
    pub as_of: Option<Date>,
}

/// A question's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Census(CensusReport),
    Groups {
        scan: ScanRecord,
        group_by: Vec<Dimension>,
        groups: Vec<CensusGroup>,
    },
    Trend {
        group_by: Vec<Dimension>,
        points: Vec<TrendPoint>,
    },
    Diff {
        before: ScanId,
        after: ScanId,
        diff: CensusDiff,
    },
}

/// Why a question has no answer.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no finished scan")]
    NoFinishedScan,
    #[error("no scan had finished by {0}")]
    NoneFinishedBy(Date),
    #[error("no scan with id {0}")]
    UnknownScan(ScanId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Answers `question` about the scan `which` names.
pub async fn answer(
    store: &Store,
    which: Which,
    question: Question,
) -> Result<Answer, ReportError> {
    let grouped = match question {
        Question::Diff { before } => return diff(store, before, which.scan).await,
        Question::Trend {
            group_by,
            filter,
            judgements,
        } => {
            let points = store
                .census
                .trend_of(&group_by, &filter, judgements)
                .await?;
            return Ok(Answer::Trend { group_by, points });
        }
        Question::Census => None,
        Question::Groups { group_by, filter } => Some((group_by, filter)),
    };
    let id = match (which.scan, which.as_of) {
        (Some(id), _) => Some(id),
        (None, Some(day)) => match surveyor_store::scan_as_of(store.scans.as_ref(), day).await? {
            Some(scan) => Some(scan.id),
            None => return Err(ReportError::NoneFinishedBy(day)),
        },
        (None, None) => None,
    };
    let Some((group_by, filter)) = grouped else {
        return match census_report(store, id).await? {
            Some(report) => Ok(Answer::Census(report)),
            None => Err(id.map_or(ReportError::NoFinishedScan, ReportError::UnknownScan)),
        };
    };
    // A scan asked for by id that does not exist is "no finished scan" here, as it always was.
    let record = match id {
        Some(id) => store.scans.scan(id).await?,
        None => store.census.latest_finished_scan().await?,
    };
    let scan = record.ok_or(ReportError::NoFinishedScan)?;
    let groups = store.census.statistics(scan.id, &group_by, &filter).await?;
    Ok(Answer::Groups {
        scan,
        group_by,
        groups,
    })
}

impl Answer {
    /// The scan whose judgement the answer shows, for a census or groups of one scan.
    pub fn judged_scan(&self) -> Option<&ScanRecord> {
        match self {
            Answer::Census(report) => Some(&report.scan),
            Answer::Groups { scan, .. } => Some(scan),
            Answer::Trend { .. } | Answer::Diff { .. } => None,
        }
    }

    /// Pretty-printed JSON: a census as `GET /api/v1/census` returns it, the groups with
    /// their scan, the trend's points, or the diff between two scans.
    pub fn json(&self) -> serde_json::Result<String> {
        match self {
            Answer::Census(report) => serde_json::to_string_pretty(report),
            Answer::Groups {
                scan,
                group_by,
                groups,
            } => serde_json::to_string_pretty(
                &json!({ "scan": scan, "group_by": group_by, "groups": groups }),
            ),
            Answer::Trend { points, .. } => serde_json::to_string_pretty(points),
            Answer::Diff {
                before,
                after,
                diff,
            } => serde_json::to_string_pretty(
                &json!({ "before": before.0, "after": after.0, "diff": diff }),
            ),
        }
    }

    /// The fixed-width table for people.
    pub fn text(&self) -> String {
        match self {
            Answer::Census(report) => text::render(report),
            Answer::Groups {
                scan,
                group_by,
                groups,
            } => text::render_groups(scan, group_by, groups),
            Answer::Trend { group_by, points } => text::render_trend(group_by, points),
            Answer::Diff {
                before,
                after,
                diff,
            } => text::render_diff(before.0, after.0, diff),
        }
    }
}

/// The servers of `before` and of `after` (default: the latest finished scan), compared.
async fn diff(store: &Store, before: ScanId, after: Option<ScanId>) -> Result<Answer, ReportError> {
    let after = match after {
        Some(id) => id,
        None => match store.census.latest_finished_scan().await? {
            Some(scan) => scan.id,
            None => return Err(ReportError::NoFinishedScan),
        },
    };
    let servers = |scan: ScanId| async move {
        match store.census.exchange_servers(scan).await {
            Err(StoreError::UnknownScan(_)) => Err(ReportError::UnknownScan(scan)),
            other => Ok(other?),
        }
    };
    let diff = CensusDiff::between(servers(before).await?, servers(after).await?);
    Ok(Answer::Diff {
        before,
        after,
        diff,
    })
}

#[cfg(test)]
mod tests {
    use surveyor_model::{
        Build, ExchangeVerdict, Family, Fingerprint, Observation, Scheme, Status, Support,
    };
    use surveyor_store::{testing, NewScan};
    use time::macros::{date, datetime};

    use super::*;

    fn observation(ip: &str, family: Family, build: &str, support: Support) -> Observation {
        Observation {
            ip: ip.parse().unwrap(),
            port: 443,
            scheme: Scheme::Https,
            observed_at: datetime!(2026-11-23 06:00 UTC),
            status: Status::Success,
            error: None,
            tls: None,
            http_server: None,
            fingerprint: Fingerprint::default(),
            exchange: Some(ExchangeVerdict {
                family,
                build: build.parse::<Build>().unwrap(),
                version_name: family.product_name().into(),
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
            }),
            attribution: None,
            asn: None,
            country: None,
        }
    }

    async fn finished_scan(store: &Store, day: u8, observations: &[Observation]) -> ScanId {
        let at = datetime!(2026-11-01 06:00 UTC).replace_day(day).unwrap();
        let id = store
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
            .unwrap();
        store.scans.record(id, observations).await.unwrap();
        store.scans.finish_scan(id, at).await.unwrap();
        id
    }

    #[tokio::test]
    async fn each_question_is_answered_from_the_store() {
        for (_, db) in testing::each_backend().await {
            let store = surveyor_store::open(&db.url).await.unwrap();
            let ask = |which, question| answer(&store, which, question);
            let latest = Which::default();
            assert!(matches!(
                ask(latest, Question::Census).await,
                Err(ReportError::NoFinishedScan)
            ));
            let old = [observation(
                "192.0.2.1",
                Family::E2016,
                "15.1.2507.6",
                Support::Unsupported,
            )];
            let first = finished_scan(&store, 2, &old).await;
            let new = [
                observation("192.0.2.1", Family::Se, "15.2.2562.17", Support::Supported),
                observation(
                    "192.0.2.2",
                    Family::E2019,
                    "15.2.1748.10",
                    Support::Unsupported,
                ),
            ];
            let second = finished_scan(&store, 9, &new).await;

            let Answer::Census(report) = ask(latest, Question::Census).await.unwrap() else {
                panic!("a census");
            };
            assert_eq!((report.scan.id, report.census.servers), (second, 2));
            let on_the_5th = Which {
                as_of: Some(date!(2026 - 11 - 05)),
                ..latest
            };
            let by_day = ask(on_the_5th, Question::Census).await.unwrap();
            assert_eq!(by_day.judged_scan().map(|s| s.id), Some(first));
            assert!(matches!(
                ask(
                    Which {
                        as_of: Some(date!(2026 - 10 - 01)),
                        ..latest
                    },
                    Question::Census
                )
                .await,
                Err(ReportError::NoneFinishedBy(_))
            ));
            let missing = Which {
                scan: Some(ScanId(99)),
                ..latest
            };
            assert!(matches!(
                ask(missing, Question::Census).await,
                Err(ReportError::UnknownScan(ScanId(99)))
            ));

            let groups = Question::Groups {
                group_by: vec![Dimension::Support],
                filter: CensusFilter::default(),
            };
            let answer = ask(latest, groups).await.unwrap();
            assert!(
                answer.text().contains("\nunsupported        1  50.0%\n"),
                "{}",
                answer.text()
            );
            let doc: serde_json::Value = serde_json::from_str(&answer.json().unwrap()).unwrap();
            assert_eq!(doc["group_by"], json!(["support"]));

            let trend = Question::Trend {
                group_by: Vec::new(),
                filter: CensusFilter::default(),
                judgements: Judgements::Newest,
            };
            let Answer::Trend { points, .. } = ask(latest, trend).await.unwrap() else {
                panic!("a trend");
            };
            assert_eq!(
                points.iter().map(|p| p.group.servers).collect::<Vec<_>>(),
                [1, 2]
            );

            let Answer::Diff { after, diff, .. } =
                ask(latest, Question::Diff { before: first }).await.unwrap()
            else {
                panic!("a diff");
            };
            assert_eq!(after, second);
            assert_eq!((diff.new.len(), diff.upgraded.len()), (1, 1));
            assert_eq!(diff.newly_supported.len(), 1);
            assert!(matches!(
                ask(missing, Question::Diff { before: first }).await,
                Err(ReportError::UnknownScan(ScanId(99)))
            ));
        }
    }
}
