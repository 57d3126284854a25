//! The scan's output: one JSON line per observation (the contract of docs/output.md) or one
//! CSV row with the census columns, flushed as it goes so that a pipeline reading the output
//! sees results while the scan runs.

use std::io::Write;

use surveyor_model::Observation;

use crate::RunError;

/// How observations are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// One JSON object per line: the contract of docs/output.md.
    Jsonl,
    /// One row per observation with the census columns, for spreadsheets.
    Csv,
}

/// Writes observations in the chosen format.
pub(crate) struct Writer<'a> {
    out: &'a mut (dyn Write + Send),
    format: OutputFormat,
    header_written: bool,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut (dyn Write + Send), format: OutputFormat) -> Writer<'a> {
        Writer {
            out,
            format,
            header_written: false,
        }
    }

    pub(crate) fn write(&mut self, obs: &Observation) -> Result<(), RunError> {
        match self.format {
            OutputFormat::Jsonl => {
                serde_json::to_writer(&mut *self.out, obs).map_err(RunError::output)?;
                self.out.write_all(b"\n").map_err(RunError::output)?;
            }
            OutputFormat::Csv => {
                let mut csv = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(&mut *self.out);
                if !self.header_written {
                    csv.write_record(CSV_COLUMNS).map_err(RunError::output)?;
                    self.header_written = true;
                }
                csv.write_record(csv_row(obs)).map_err(RunError::output)?;
                csv.flush().map_err(RunError::output)?;
            }
        }
        self.out.flush().map_err(RunError::output)
    }

    pub(crate) fn finish(&mut self) -> Result<(), RunError> {
        if self.format == OutputFormat::Csv && !self.header_written {
            let mut csv = csv::Writer::from_writer(&mut *self.out);
            csv.write_record(CSV_COLUMNS).map_err(RunError::output)?;
            csv.flush().map_err(RunError::output)?;
        }
        self.out.flush().map_err(RunError::output)
    }
}

const CSV_COLUMNS: [&str; 15] = [
    "ip",
    "port",
    "scheme",
    "observed_at",
    "status",
    "error",
    "tls_version",
    "cert_sha256",
    "tls_names",
    "http_server",
    "exchange_family",
    "exchange_build",
    "exchange_version_name",
    "exchange_support",
    "evidence",
];

fn csv_row(o: &Observation) -> [String; 15] {
    let tls = o.tls.as_ref();
    let ex = o.exchange.as_ref();
    let observed = o
        .observed_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    [
        o.ip.to_string(),
        o.port.to_string(),
        o.scheme.as_str().into(),
        observed,
        o.status.as_str().into(),
        o.error.clone().unwrap_or_default(),
        tls.map(|t| t.version.clone()).unwrap_or_default(),
        tls.and_then(|t| t.cert_sha256.clone()).unwrap_or_default(),
        tls.map(|t| t.names.join(" ")).unwrap_or_default(),
        o.http_server.clone().unwrap_or_default(),
        ex.map(|e| e.family.as_str().to_string())
            .unwrap_or_default(),
        ex.map(|e| e.build.to_string()).unwrap_or_default(),
        ex.map(|e| e.version_name.clone()).unwrap_or_default(),
        ex.map(|e| e.support.as_str().to_string())
            .unwrap_or_default(),
        ex.map(|e| {
            e.evidence
                .iter()
                .map(|v| format!("{}={}", v.source, v.value))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_its_header_once_even_without_rows() {
        let mut out = Vec::new();
        Writer::new(&mut out, OutputFormat::Csv).finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.starts_with("ip,port,scheme,observed_at,status"));
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out, OutputFormat::Csv);
        w.write(&crate::enrich::tests::observation(1)).unwrap();
        w.write(&crate::enrich::tests::observation(2)).unwrap();
        w.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("192.0.2.2,443,https,"));
    }
}
