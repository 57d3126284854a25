//! The census as people read it: the table a CERT publishes, a diff, groups and trends, as
//! fixed-width text for a terminal (`surveyor report`, `rejudge` and `demo` print these).

use std::fmt::Write;

use surveyor_store::{CensusGroup, Dimension, ScanRecord, TrendPoint};
use time::format_description::well_known::Rfc3339;

use crate::CensusReport;

/// Renders the census as a fixed-width table with counts and shares.
pub fn render(report: &CensusReport) -> String {
    let c = &report.census;
    let s = &report.scan;
    let mut out = String::new();
    let finished = s
        .finished_at
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "not finished".into());
    let _ = writeln!(
        out,
        "Exchange census: scan {} ({}), finished {}",
        s.id.0, s.targets, finished
    );
    let _ = writeln!(out, "Support status as of {}", s.as_of);
    let _ = writeln!(out, "{}\n", judgement(s));
    let _ = writeln!(
        out,
        "{:<8} {:>8} {:>7} {:>10} {:>8} {:>12} {:>8}",
        "Family", "Servers", "Share", "Supported", "%", "Unsupported", "%"
    );
    let pct = |n: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            100.0 * n as f64 / of as f64
        }
    };
    for row in &c.families {
        let _ = writeln!(
            out,
            "{:<8} {:>8} {:>6.1}% {:>10} {:>7.1}% {:>12} {:>7.1}%",
            row.family.as_str(),
            row.servers,
            100.0 * row.share,
            row.supported,
            pct(row.supported, row.servers),
            row.unsupported,
            pct(row.unsupported, row.servers),
        );
    }
    let _ = writeln!(
        out,
        "{:<8} {:>8} {:>6.1}% {:>10} {:>7.1}% {:>12} {:>7.1}%",
        "Total",
        c.servers,
        if c.servers == 0 { 0.0 } else { 100.0 },
        c.supported,
        100.0 * c.supported_share,
        c.unsupported,
        100.0 * c.unsupported_share,
    );
    let _ = writeln!(
        out,
        "\n{} of {} Exchange servers found ({:.0}%) run a version without support on {}.",
        c.unsupported,
        c.servers,
        100.0 * c.unsupported_share,
        s.as_of
    );
    out
}

/// The change between two scans as a short table: how many servers in each list.
pub fn render_diff(before: i64, after: i64, diff: &surveyor_model::CensusDiff) -> String {
    let rows = [
        ("new", diff.new.len() as u64),
        ("gone", diff.gone.len() as u64),
        ("upgraded", diff.upgraded.len() as u64),
        ("downgraded", diff.downgraded.len() as u64),
        ("unchanged build", diff.unchanged),
        ("still unsupported", diff.still_unsupported.len() as u64),
        ("newly supported", diff.newly_supported.len() as u64),
        ("newly unsupported", diff.newly_unsupported.len() as u64),
    ];
    let mut out = format!("Exchange servers, scan {before} -> scan {after}\n\n");
    for (label, n) in rows {
        out.push_str(&format!("{label:<18} {n:>8}\n"));
    }
    out.push_str("\nAddresses and builds per server: --format json.\n");
    out
}

/// Servers of one scan by the requested dimensions, with each group's share.
pub fn render_groups(scan: &ScanRecord, group_by: &[Dimension], groups: &[CensusGroup]) -> String {
    let total: u64 = groups.iter().map(|g| g.servers).sum();
    let mut header: Vec<String> = group_by.iter().map(|d| d.as_str().to_string()).collect();
    header.extend(["servers".to_string(), "share".to_string()]);
    let rows = groups
        .iter()
        .map(|g| {
            let mut row = group_label(group_by, g);
            let share = if total == 0 {
                0.0
            } else {
                100.0 * g.servers as f64 / total as f64
            };
            row.extend([g.servers.to_string(), format!("{share:.1}%")]);
            row
        })
        .collect();
    format!(
        "Exchange servers of scan {} (as of {}), {total} counted\n{}\n\n{}",
        scan.id,
        scan.as_of,
        judgement(scan),
        table(header, rows, 2)
    )
}

/// Which knowledge base judged a scan, and how the judgement relates to others of the same
/// observations: the line every census print-out carries.
pub fn judgement(s: &ScanRecord) -> String {
    let kb = match &s.kb {
        Some(kb) => format!(
            "knowledge base {} (newest release {})",
            &kb.digest[..12.min(kb.digest.len())],
            kb.newest_release
        ),
        None => "a knowledge base not recorded (scan stored before Surveyor recorded it)".into(),
    };
    let mut line = format!("Judged with {kb}");
    if let Some(source) = s.judged_from {
        let _ = write!(
            line,
            "; a {} of scan {source}'s observations, made {}",
            if s.projection {
                "projection"
            } else {
                "re-judgement"
            },
            s.judged_at.date()
        );
    }
    if let Some(newer) = s.superseded_by {
        let _ = write!(line, "; superseded by scan {newer}");
    }
    line
}

/// One line per finished scan (and group), oldest first.
pub fn render_trend(group_by: &[Dimension], points: &[TrendPoint]) -> String {
    let mut header = vec!["scan".to_string(), "finished".to_string()];
    header.extend(group_by.iter().map(|d| d.as_str().to_string()));
    header.push("servers".to_string());
    let rows = points
        .iter()
        .map(|p| {
            let finished = p
                .finished_at
                .format(&Rfc3339)
                .unwrap_or_else(|_| p.finished_at.to_string());
            let mut row = vec![p.scan.to_string(), finished];
            row.extend(group_label(group_by, &p.group));
            row.push(p.group.servers.to_string());
            row
        })
        .collect();
    format!("Exchange servers by scan\n\n{}", table(header, rows, 1))
}

/// The label of one group: its dimension values in `group_by` order.
fn group_label(group_by: &[Dimension], g: &CensusGroup) -> Vec<String> {
    group_by
        .iter()
        .map(|d| {
            let value = match d {
                Dimension::Family => g.family.map(|f| f.as_str().to_string()),
                Dimension::Cu => g.cu.clone().map(|cu| {
                    if cu.is_empty() {
                        "(CU unknown)".to_string()
                    } else {
                        cu
                    }
                }),
                Dimension::Version => g.version.clone(),
                Dimension::Support => g.support.map(|s| s.as_str().to_string()),
                Dimension::Patch => g.patch.map(|p| p.as_str().to_string()),
                Dimension::Sector | Dimension::Organisation => {
                    let value = if *d == Dimension::Sector {
                        &g.sector
                    } else {
                        &g.organisation
                    };
                    value.clone().map(|v| {
                        if v.is_empty() {
                            "(not attributed)".to_string()
                        } else {
                            v
                        }
                    })
                }
                Dimension::Asn => g.asn.clone().map(|v| {
                    if v.is_empty() {
                        "(AS unknown)".to_string()
                    } else {
                        format!("AS{v}")
                    }
                }),
                Dimension::Country => g.country.clone().map(|v| {
                    if v.is_empty() {
                        "(country unknown)".to_string()
                    } else {
                        v
                    }
                }),
            };
            value.unwrap_or_else(|| "-".into())
        })
        .collect()
}

/// A fixed-width table; the last `numeric` columns align right.
fn table(header: Vec<String>, rows: Vec<Vec<String>>, numeric: usize) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let first_numeric = row.len().saturating_sub(numeric);
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i >= first_numeric {
                    format!("{cell:>w$}", w = widths[i])
                } else {
                    format!("{cell:<w$}", w = widths[i])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use surveyor_model::{Census, Family, Support};
    use surveyor_store::{KbRef, ScanId};
    use time::macros::{date, datetime};

    use super::*;

    fn scan() -> ScanRecord {
        ScanRecord {
            id: ScanId(7),
            started_at: datetime!(2026-03-01 10:00 UTC),
            finished_at: Some(datetime!(2026-03-01 11:30 UTC)),
            as_of: date!(2026 - 03 - 01),
            targets: "192.0.2.0/24".into(),
            ports: vec![443],
            tool_version: "test".into(),
            observations: 12,
            pruned_at: None,
            kb: Some(KbRef {
                digest: "0123456789abcdef0123".into(),
                newest_release: date!(2026 - 02 - 10),
            }),
            judged_at: datetime!(2026-03-01 10:00 UTC),
            judged_from: None,
            projection: false,
            superseded_by: None,
        }
    }

    #[test]
    fn the_census_table_counts_and_shares_each_family() {
        let census = Census::from_counts([
            (Family::E2016, Support::Unsupported, 3),
            (Family::Se, Support::Supported, 1),
        ]);
        let text = render(&CensusReport {
            scan: scan(),
            census,
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..4],
            [
                "Exchange census: scan 7 (192.0.2.0/24), finished 2026-03-01T11:30:00Z",
                "Support status as of 2026-03-01",
                "Judged with knowledge base 0123456789ab (newest release 2026-02-10)",
                "",
            ]
        );
        assert!(
            lines.contains(&"2016            3   75.0%          0     0.0%            3   100.0%")
        );
        assert!(
            lines.contains(&"Total           4  100.0%          1    25.0%            3    75.0%")
        );
        assert_eq!(
            lines.last(),
            Some(
                &"3 of 4 Exchange servers found (75%) run a version without support on 2026-03-01."
            )
        );
    }

    #[test]
    fn the_judgement_line_names_the_knowledge_base_and_the_source() {
        let check = |s: ScanRecord, expected: &str| assert_eq!(judgement(&s), expected);
        check(
            scan(),
            "Judged with knowledge base 0123456789ab (newest release 2026-02-10)",
        );
        check(
            ScanRecord { kb: None, ..scan() },
            "Judged with a knowledge base not recorded (scan stored before Surveyor recorded it)",
        );
        check(
            ScanRecord {
                judged_from: Some(ScanId(3)),
                projection: true,
                judged_at: datetime!(2026-04-02 08:00 UTC),
                superseded_by: Some(ScanId(9)),
                ..scan()
            },
            "Judged with knowledge base 0123456789ab (newest release 2026-02-10); a projection \
             of scan 3's observations, made 2026-04-02; superseded by scan 9",
        );
    }

    #[test]
    fn groups_name_what_is_unknown_and_align_their_counts() {
        let groups = [
            CensusGroup {
                sector: Some("hospital".into()),
                asn: Some("64500".into()),
                servers: 3,
                ..Default::default()
            },
            CensusGroup {
                sector: Some(String::new()),
                asn: Some(String::new()),
                servers: 1,
                ..Default::default()
            },
        ];
        let text = render_groups(&scan(), &[Dimension::Sector, Dimension::Asn], &groups);
        assert_eq!(
            text,
            "Exchange servers of scan 7 (as of 2026-03-01), 4 counted\n\
             Judged with knowledge base 0123456789ab (newest release 2026-02-10)\n\n\
             sector            asn           servers  share\n\
             hospital          AS64500             3  75.0%\n\
             (not attributed)  (AS unknown)        1  25.0%\n"
        );
    }

    #[test]
    fn a_trend_is_one_line_per_scan() {
        let points = [TrendPoint {
            scan: ScanId(7),
            finished_at: datetime!(2026-03-01 11:30 UTC),
            as_of: date!(2026 - 03 - 01),
            group: CensusGroup {
                family: Some(Family::E2019),
                servers: 12,
                ..Default::default()
            },
        }];
        assert_eq!(
            render_trend(&[Dimension::Family], &points),
            "Exchange servers by scan\n\n\
             scan  finished              family  servers\n\
             7     2026-03-01T11:30:00Z  2019         12\n"
        );
    }

    #[test]
    fn a_diff_counts_each_list() {
        let diff = surveyor_model::CensusDiff {
            unchanged: 5,
            ..Default::default()
        };
        let text = render_diff(3, 7, &diff);
        assert!(
            text.starts_with("Exchange servers, scan 3 -> scan 7\n\nnew                       0\n")
        );
        assert!(text.contains("unchanged build           5\n"));
        assert!(text.ends_with("\nAddresses and builds per server: --format json.\n"));
    }
}
