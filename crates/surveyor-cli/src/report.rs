//! The census table a CERT publishes, rendered for a terminal.

use std::fmt::Write;

use surveyor_api::CensusReport;
use surveyor_store::{CensusGroup, Dimension, ScanRecord, TrendPoint};
use time::format_description::well_known::Rfc3339;

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
