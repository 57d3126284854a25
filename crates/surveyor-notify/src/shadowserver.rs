//! Shadowserver's `scan_exchange` report: its CSV columns, in its order, so that tools built
//! for Shadowserver's reports (IntelMQ's parser among them) read ours.

use std::io::Write;

use crate::plan::{Bundle, Finding, Reason};
use crate::NotifyError;

/// The columns of `scan_exchange` (report_schema `reports.json`, 2026-03).
pub const COLUMNS: [&str; 17] = [
    "timestamp",
    "severity",
    "ip",
    "protocol",
    "port",
    "hostname",
    "tag",
    "asn",
    "geo",
    "region",
    "city",
    "naics",
    "hostname_source",
    "sector",
    "version",
    "servername",
    "url",
];

/// One row; empty fields are what we do not know (region, city, NAICS; the country when the
/// scan had no country table and no registry country).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanExchangeRow {
    /// UTC, `YYYY-MM-DD HH:MM:SS`, as Shadowserver writes it.
    pub timestamp: String,
    pub severity: String,
    pub ip: String,
    pub protocol: String,
    pub port: u16,
    pub hostname: String,
    /// `exchange;` and what is wrong: `eol`, `esu`, the CVEs in lower case.
    pub tag: String,
    pub asn: Option<u32>,
    pub geo: String,
    pub region: String,
    pub city: String,
    pub naics: String,
    pub hostname_source: String,
    pub sector: String,
    pub version: String,
    pub servername: String,
    pub url: String,
}

impl ScanExchangeRow {
    pub fn from_finding(f: &Finding) -> ScanExchangeRow {
        let utc = f.observed_at.to_offset(time::UtcOffset::UTC);
        let format =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        ScanExchangeRow {
            timestamp: utc.format(&format).unwrap_or_default(),
            severity: f.severity().into(),
            ip: f.ip.to_string(),
            protocol: "tcp".into(),
            port: f.port,
            hostname: f.hostname.clone().unwrap_or_default(),
            tag: tag(f),
            asn: f.asn,
            geo: f.country.clone().unwrap_or_default(),
            hostname_source: f.hostname_source.unwrap_or_default().into(),
            sector: f.sector.map(|s| s.as_str().to_string()).unwrap_or_default(),
            version: f.build.to_string(),
            servername: f.servername.clone().unwrap_or_default(),
            url: f.url.clone(),
            ..ScanExchangeRow::default()
        }
    }
}

/// The row of any recognised Exchange server as a scan saw it (severity `info` when nothing
/// is wrong with it); `None` for an observation that is not one.
pub fn observation_row(
    o: &surveyor_model::Observation,
    as_of: time::Date,
) -> Option<ScanExchangeRow> {
    crate::plan::describe(o, as_of).map(|f| ScanExchangeRow::from_finding(&f))
}

/// The rows of a bundle, in its order.
pub fn rows(bundle: &Bundle) -> Vec<ScanExchangeRow> {
    bundle
        .findings
        .iter()
        .map(ScanExchangeRow::from_finding)
        .collect()
}

/// A row's fields in the order of [`COLUMNS`].
pub fn record(r: &ScanExchangeRow) -> [String; 17] {
    [
        r.timestamp.clone(),
        r.severity.clone(),
        r.ip.clone(),
        r.protocol.clone(),
        r.port.to_string(),
        r.hostname.clone(),
        r.tag.clone(),
        r.asn.map(|a| a.to_string()).unwrap_or_default(),
        r.geo.clone(),
        r.region.clone(),
        r.city.clone(),
        r.naics.clone(),
        r.hostname_source.clone(),
        r.sector.clone(),
        r.version.clone(),
        r.servername.clone(),
        r.url.clone(),
    ]
}

/// Writes a header and the rows as CSV (RFC 4180 quoting).
pub fn write_csv<W: Write>(writer: W, rows: &[ScanExchangeRow]) -> Result<(), NotifyError> {
    let mut w = csv::Writer::from_writer(writer);
    let io = |e: csv::Error| NotifyError::Io(format!("cannot write scan_exchange CSV: {e}"));
    w.write_record(COLUMNS).map_err(io)?;
    for r in rows {
        w.write_record(record(r)).map_err(io)?;
    }
    w.flush()
        .map_err(|e| NotifyError::Io(format!("cannot write scan_exchange CSV: {e}")))
}

/// The CSV of a bundle as text.
pub fn to_csv(bundle: &Bundle) -> Result<String, NotifyError> {
    let mut out = Vec::new();
    write_csv(&mut out, &rows(bundle))?;
    String::from_utf8(out).map_err(|_| NotifyError::Io("CSV is not UTF-8".into()))
}

/// `exchange;eol;esu;kev;cve-…`: Shadowserver's tag style; IntelMQ takes CVEs from it, in
/// order. `kev` flags a server with a CVE exploited in the wild; those CVEs come first.
pub(crate) fn tag(f: &Finding) -> String {
    let mut tag = vec!["exchange".to_string()];
    if f.reasons.contains(&Reason::Unsupported) {
        tag.push("eol".into());
    }
    if f.reasons.contains(&Reason::EsuOnly) {
        tag.push("esu".into());
    }
    if f.vulnerable_cves
        .iter()
        .any(|c| f.exploited_cves.contains(c))
    {
        tag.push("kev".into());
    }
    tag.extend(f.vulnerable_cves.iter().map(|c| c.to_lowercase()));
    tag.join(";")
}
