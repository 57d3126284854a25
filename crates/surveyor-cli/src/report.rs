//! The census table a CERT publishes, rendered for a terminal.

use std::fmt::Write;

use surveyor_api::CensusReport;
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
    let _ = writeln!(out, "Support status as of {}\n", s.as_of);
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
