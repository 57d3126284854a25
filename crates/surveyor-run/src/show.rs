//! Results as people read them: what a scan did, a census's progress with its shards, and what
//! a re-judgement changed. Returned as text; printing is the binary's.

use std::fmt::Write as _;

use surveyor_store::{ScanRecord, ShardState};
use time::OffsetDateTime;

use crate::census::JobStatus;
use crate::rejudge::Changes;
use crate::ScanOutcome;

impl JobStatus {
    /// A summary line with rate and ETA, then (when read with its shards) a table of shards;
    /// `now` is the database's clock, which leases are judged by.
    pub fn text(&self, now: OffsetDateTime) -> String {
        let s = self;
        let percent = if s.targets_total == 0 {
            100.0
        } else {
            100.0 * s.targets_done as f64 / s.targets_total as f64
        };
        let mut out = format!(
            "census {} (scan {}): {}, {} shards, {} of {} targets ({percent:.1} %), {} observations",
            s.job.name,
            s.job.scan,
            s.job.state.as_str(),
            s.job.shards,
            s.targets_done,
            s.targets_total,
            s.observations
        );
        if let Some(rate) = s.rate {
            let _ = write!(out, ", {rate:.0} targets/s");
        }
        if let Some(eta) = s.eta_seconds {
            let _ = write!(out, ", ETA {}", human_duration(eta));
        }
        out.push('\n');
        if let Some(shards) = &s.shard_list {
            let _ = writeln!(
                out,
                "{:>6}  {:<8} {:<24} {:>23}  {:<16} {:>6}",
                "shard", "state", "worker", "done/total", "lease", "leases"
            );
            for shard in shards {
                let lease = match (shard.state, shard.lease_expires) {
                    (ShardState::Leased, Some(t)) if t > now => {
                        format!("{} left", human_duration((t - now).as_seconds_f64()))
                    }
                    (ShardState::Leased, Some(_)) => "expired".to_string(),
                    _ => "-".to_string(),
                };
                let _ = writeln!(
                    out,
                    "{:>6}  {:<8} {:<24} {:>23}  {:<16} {:>6}",
                    shard.shard,
                    shard.state.as_str(),
                    shard.owner.as_deref().unwrap_or("-"),
                    format!("{}/{}", shard.targets_done, shard.targets_total),
                    lease,
                    shard.leases
                );
            }
        }
        out
    }
}

impl ScanOutcome {
    /// The lines a scan ends with: what a SYN sweep did, where a spill file is, and the
    /// summary `scan N…: …` that scripts read. `stopped` says why the scan stopped early (in
    /// the words of the caller's settings), or is empty.
    pub fn summary(&self, stopped: &str) -> String {
        let mut out = String::new();
        if let Some(n) = &self.syn {
            let _ = writeln!(
                out,
                "SYN sweep through the {}: {} SYNs sent, {} excluded, {} open, {} closed, {} \
                 duplicate answers, {} open ports dropped (probe queue full), {} send errors",
                n.path,
                n.sent,
                n.excluded,
                n.open,
                n.closed,
                n.duplicates,
                n.dropped,
                n.send_errors
            );
        }
        if let Some(path) = &self.spill_path {
            let path = path.display();
            let spilled = self.spilled;
            let _ = writeln!(
                out,
                "the store failed; {spilled} lines kept in {path}: load them with `surveyor \
                 ingest {path}`"
            );
        }
        let s = &self.stats;
        let statuses: Vec<String> = s
            .by_status
            .iter()
            .map(|(st, n)| format!("{} {n}", st.as_str()))
            .collect();
        let _ = writeln!(
            out,
            "scan {}{stopped}: {} targets in {:.1} s, {} answered ({}), {} refused, {} timed \
             out, {} unreachable, {} closed silently, {} excluded, {} abandoned, {} backed off, \
             {} Exchange",
            self.scan.0,
            s.targets,
            s.duration.as_secs_f64(),
            s.connected,
            if statuses.is_empty() {
                "-".to_string()
            } else {
                statuses.join(", ")
            },
            s.refused,
            s.timed_out,
            s.unreachable,
            s.closed,
            s.excluded,
            s.abandoned,
            s.backed_off,
            self.exchange
        );
        out
    }
}

impl Changes {
    /// One line: how many observations `judgement` judged again and what changed.
    pub fn text(&self, judgement: &ScanRecord) -> String {
        format!(
            "scan {}: {} observations judged again, {} Exchange servers before and {} after; {} \
             changed (support {}, version {}, patch level {}, CVEs {}, Exchange Online bar {})\n",
            judgement.id,
            self.observations,
            self.servers_before,
            self.servers_after,
            self.changed,
            self.support,
            self.version,
            self.patch,
            self.cves,
            self.exchange_online
        )
    }
}

/// A note for a report on `scan` read with `kb` at hand: `None` when `kb` judged it, else
/// which command judges it again with `kb`.
pub fn stale_judgement(kb: &surveyor_kb::KnowledgeBase, scan: &ScanRecord) -> Option<String> {
    let judged_with = scan.kb.as_ref().map(|k| k.digest.as_str());
    (judged_with != Some(kb.stamp.digest.as_str())).then(|| {
        format!(
            "scan {} was judged with another knowledge base than {}; `surveyor rejudge --scan {}` \
             judges it again with this one",
            scan.id,
            kb.stamp,
            scan.source()
        )
    })
}

/// Seconds as a person reads them: seconds below 100, then minutes (rounded up), then hours.
fn human_duration(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    match secs {
        0..=99 => format!("{secs} s"),
        100..=5999 => format!("{} min", secs.div_ceil(60)),
        _ => format!("{:.1} h", secs as f64 / 3600.0),
    }
}

#[cfg(test)]
mod tests {
    use surveyor_store::{CensusJob, JobState, ScanId, ShardRecord};
    use time::macros::datetime;
    use time::Duration;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    fn shard(shard: u32, state: ShardState, lease_expires: Option<OffsetDateTime>) -> ShardRecord {
        ShardRecord {
            shard,
            state,
            owner: (state != ShardState::Pending).then(|| format!("host-{shard}")),
            lease_expires,
            heartbeat_at: None,
            checkpoint: None,
            targets_total: 1000,
            targets_done: if state == ShardState::Done { 1000 } else { 250 },
            leases: 1,
            started_at: None,
            finished_at: None,
        }
    }

    fn status(shard_list: Option<Vec<ShardRecord>>) -> JobStatus {
        let job = CensusJob {
            id: 1,
            name: "de-2026-03".into(),
            scan: ScanId(5),
            state: JobState::Running,
            params: serde_json::Value::Null,
            shards: 3,
            created_at: NOW,
            finished_at: None,
            paused_at: None,
            paused_seconds: 0.0,
        };
        JobStatus {
            name: job.name.clone(),
            scan: 5,
            state: job.state,
            shards: 3,
            created_at: NOW,
            finished_at: None,
            job,
            targets_total: 3000,
            targets_done: 1250,
            rate: Some(12.4),
            eta_seconds: Some(141.0),
            observations: 40,
            shards_by_state: serde_json::Value::Null,
            shard_list,
        }
    }

    #[test]
    fn a_census_line_gives_progress_rate_and_eta() {
        assert_eq!(
            status(None).text(NOW),
            "census de-2026-03 (scan 5): running, 3 shards, 1250 of 3000 targets (41.7 %), \
             40 observations, 12 targets/s, ETA 3 min\n"
        );
    }

    #[test]
    fn shards_show_their_lease_as_time_left_or_expired() {
        let text = status(Some(vec![
            shard(0, ShardState::Done, None),
            shard(1, ShardState::Leased, Some(NOW + Duration::seconds(45))),
            shard(2, ShardState::Leased, Some(NOW - Duration::seconds(1))),
        ]))
        .text(NOW);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                " shard  state    worker                                done/total  lease            leases",
                "     0  done     host-0                                 1000/1000  -                     1",
                "     1  leased   host-1                                  250/1000  45 s left             1",
                "     2  leased   host-2                                  250/1000  expired               1",
            ]
        );
    }

    #[test]
    fn a_scan_summary_counts_every_outcome() {
        let mut outcome = ScanOutcome {
            scan: ScanId(4),
            stats: surveyor_scan::ScanStats {
                targets: 10,
                refused: 6,
                connected: 3,
                by_status: vec![
                    (surveyor_model::Status::Success, 2),
                    (surveyor_model::Status::IoTimeout, 1),
                ],
                duration: std::time::Duration::from_millis(1250),
                ..Default::default()
            },
            exchange: 2,
            spilled: 0,
            spill_path: None,
            input_error: None,
            syn: None,
        };
        assert_eq!(
            outcome.summary(""),
            "scan 4: 10 targets in 1.2 s, 3 answered (success 2, io-timeout 1), 6 refused, 0 \
             timed out, 0 unreachable, 0 closed silently, 0 excluded, 0 abandoned, 0 backed \
             off, 2 Exchange\n"
        );
        outcome.spilled = 3;
        outcome.spill_path = Some("spill.jsonl".into());
        let summary = outcome.summary(" INTERRUPTED");
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(
            lines[0],
            "the store failed; 3 lines kept in spill.jsonl: load them with `surveyor ingest \
             spill.jsonl`"
        );
        assert!(lines[1].starts_with("scan 4 INTERRUPTED: 10 targets"));
    }

    #[test]
    fn durations_read_as_seconds_minutes_or_hours() {
        let check = |secs: f64, expected: &str| assert_eq!(human_duration(secs), expected);
        check(-3.0, "0 s");
        check(99.4, "99 s");
        check(100.0, "2 min");
        check(5999.0, "100 min");
        check(6000.0, "1.7 h");
    }

    #[test]
    fn a_report_notes_a_scan_another_knowledge_base_judged() {
        let kb = surveyor_kb::KnowledgeBase::builtin();
        let mut scan = ScanRecord {
            id: ScanId(9),
            started_at: NOW,
            finished_at: Some(NOW),
            as_of: NOW.date(),
            targets: "192.0.2.0/24".into(),
            ports: vec![443],
            tool_version: "test".into(),
            observations: 3,
            pruned_at: None,
            kb: Some(crate::pipeline::kb_ref(kb)),
            judged_at: NOW,
            judged_from: Some(ScanId(4)),
            projection: false,
            superseded_by: None,
        };
        assert_eq!(stale_judgement(kb, &scan), None);
        scan.kb = None;
        assert_eq!(
            stale_judgement(kb, &scan).unwrap(),
            format!(
                "scan 9 was judged with another knowledge base than {}; `surveyor rejudge \
                 --scan 4` judges it again with this one",
                kb.stamp
            )
        );
    }
}
