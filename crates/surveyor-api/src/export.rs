//! Exports for researchers: a scan's servers as CSV, JSON lines, Parquet or Shadowserver's
//! `scan_exchange` CSV, streamed page by page in constant memory, optionally pseudonymised,
//! and every export written to the audit log.

use std::fmt;
use std::net::IpAddr;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use surveyor_model::observation::CveStatus;
use surveyor_model::{Observation, Signal};
use surveyor_notify::shadowserver;
use surveyor_store::{CensusFilter, ExportOutcome, NewExport, ScanId, ServerCursor, Store};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ErrorBody;
use crate::params::Params;
use crate::wire::ExportEntry;
use crate::{authorize, census_filter, resolve_scan, Access, ApiError, AppState};

/// Servers read from the store per page while streaming; pages in flight are bounded by the
/// channel, so memory stays flat however large the export.
const PAGE: u32 = 1000;
const PAGES_IN_FLIGHT: usize = 2;

/// A secret that turns addresses into stable pseudonyms: the same address gets the same
/// pseudonym in every export made with the key, so researchers can follow a server across
/// scans without learning its address.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PseudonymKey(pub [u8; 32]);

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(<secret>)")
    }
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Jsonl,
    /// The CSV export's columns, typed, as Apache Parquet.
    Parquet,
    /// Shadowserver's `scan_exchange` report columns, for tools built for its feeds.
    Shadowserver,
}

impl Format {
    fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "jsonl" => Some(Format::Jsonl),
            "parquet" => Some(Format::Parquet),
            "shadowserver" => Some(Format::Shadowserver),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
            Format::Shadowserver => "shadowserver",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Csv => ".csv",
            Format::Jsonl => ".jsonl",
            Format::Parquet => ".parquet",
            Format::Shadowserver => "-scan_exchange.csv",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Csv | Format::Shadowserver => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportParams {
    scan: Option<i64>,
    as_of: Option<String>,
    family: Option<String>,
    cu: Option<String>,
    version: Option<String>,
    support: Option<String>,
    patch: Option<String>,
    sector: Option<String>,
    organisation: Option<String>,
    asn: Option<String>,
    country: Option<String>,
    pseudonymise: Option<bool>,
}

/// `GET /api/v1/exports/{format}`: every server of a scan that the filter admits.
#[utoipa::path(get, path = "/api/v1/exports/{format}", tag = "exports",
    params(("format" = String, Path, description = "csv, jsonl, parquet or shadowserver"), ExportParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The export, streamed", content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
            (Vec<u8> = "application/vnd.apache.parquet"),
        )),
        (status = 400, description = "A bad parameter, named in the message", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token's role may not see this", body = ErrorBody),
        (status = 404, description = "No such scan, or none finished yet", body = ErrorBody),
        (status = 429, description = "The token's rate is used up", body = ErrorBody),
        (status = 410, description = "The scan's observations were pruned", body = ErrorBody),
    ))]
pub(crate) async fn get_export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(format): Path<String>,
    query: Result<Params<ExportParams>, ApiError>,
) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers, Access::Export).await?;
    let token = caller
        .token
        .ok_or_else(|| ApiError::Unauthorized("exports need a bearer token".into()))?;
    let format = Format::parse(&format).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no export format {format:?} (formats: csv, jsonl, parquet, shadowserver)"
        ))
    })?;
    let Params(params) = query?;
    let filter = census_filter!(params)?;
    // Researchers see no addresses or names; analysts and admins may choose.
    let must = token.role == surveyor_store::Role::Researcher;
    let pseudonymised = match params.pseudonymise {
        Some(false) if must => {
            return Err(ApiError::Forbidden(
                "a researcher token exports pseudonymised data only".into(),
            ))
        }
        Some(choice) => choice,
        None => must,
    };
    let scan = resolve_scan(&state.store, params.scan, params.as_of.as_deref()).await?;
    // A pruned scan has no rows left: say so before a 200 goes out.
    let first = state
        .store
        .census
        .servers_page(scan.id, &filter, None, PAGE)
        .await?;

    let audit = state
        .store
        .tokens
        .begin_export(&NewExport {
            started_at: OffsetDateTime::now_utc(),
            token,
            scan: scan.id,
            format: format.name().to_string(),
            pseudonymised,
            filter: filter.clone(),
        })
        .await?;
    let mode = if pseudonymised {
        Mode::Pseudonymised(state.config.pseudonym_key)
    } else {
        Mode::Full
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(PAGES_IN_FLIGHT);
    let writer = Writer {
        store: state.store.clone(),
        scan: Judged {
            id: scan.id,
            as_of: scan.as_of,
            kb: scan.kb.clone(),
        },
        as_of: scan.as_of,
        filter,
        format,
        mode,
        tx,
    };
    tokio::spawn(writer.run(first, audit));

    let filename = format!(
        "surveyor-scan-{}{}{}",
        scan.id,
        if pseudonymised { "-pseudonymised" } else { "" },
        format.extension()
    );
    let mut response = Body::from_stream(ReceiverStream::new(rx)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    limit: Option<u32>,
}

/// `GET /api/v1/exports`: the export audit log, newest first (admin only).
#[utoipa::path(get, path = "/api/v1/exports", tag = "exports", params(AuditParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The audit log", body = Vec<Object>),
        (status = 400, description = "A bad parameter, named in the message", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The token's role may not see this", body = ErrorBody),
        (status = 404, description = "No such scan, or none finished yet", body = ErrorBody),
        (status = 429, description = "The token's rate is used up", body = ErrorBody),
    ))]
pub(crate) async fn get_export_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Params<AuditParams>, ApiError>,
) -> Result<Json<Vec<ExportEntry>>, ApiError> {
    authorize(&state, &headers, Access::Admin).await?;
    let Params(params) = query?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be 1 to 10000, not {limit}"
        )));
    }
    let entries = state.store.tokens.exports(limit).await?;
    Ok(Json(entries.into_iter().map(ExportEntry::from).collect()))
}

/// What an export may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Everything the scan recorded.
    Full,
    /// No address (a keyed pseudonym, or the /24 or /48 without the key), no host, domain,
    /// organisation or certificate names, no certificate fingerprint.
    Pseudonymised(Option<PseudonymKey>),
}

/// The task that reads pages and writes them into the response body.
struct Writer {
    store: Store,
    scan: Judged,
    /// The date the scan's verdicts were made for (Shadowserver rows' enforcement).
    as_of: time::Date,
    filter: CensusFilter,
    format: Format,
    mode: Mode,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Writer {
    async fn run(self, first: surveyor_store::ServersPage, audit: i64) {
        let (rows, outcome) = self.stream(first).await;
        let end = OffsetDateTime::now_utc();
        if let Err(error) = self
            .store
            .tokens
            .finish_export(audit, rows, outcome, end)
            .await
        {
            tracing::error!(%error, audit, "could not close an export's audit entry");
        }
    }

    /// Streams every page; the rows written and whether all of them went out.
    async fn stream(&self, first: surveyor_store::ServersPage) -> (u64, ExportOutcome) {
        if self.format == Format::Parquet {
            return self.stream_parquet(first).await;
        }
        let mut rows = 0u64;
        let mut chunk = Vec::with_capacity(64 * 1024);
        match self.format {
            Format::Csv => csv_line(&mut chunk, columns(self.mode).map(|c| Value::from(c.name))),
            Format::Shadowserver => csv_line(
                &mut chunk,
                shadowserver::COLUMNS.into_iter().map(Value::from),
            ),
            Format::Jsonl | Format::Parquet => {}
        }
        let mut page = first;
        loop {
            for server in &page.servers {
                self.encode(server, &mut chunk);
            }
            rows += page.servers.len() as u64;
            if self
                .tx
                .send(Ok(Bytes::from(std::mem::take(&mut chunk))))
                .await
                .is_err()
            {
                // The client went away.
                return (rows, ExportOutcome::Aborted);
            }
            let Some(next) = page.next else {
                return (rows, ExportOutcome::Complete);
            };
            page = match self.next_page(next).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::error!(%error, scan = %self.scan.id, "export stopped by a store error");
                    // An error item makes hyper cut the body short: the client sees a broken
                    // transfer, never a file that merely looks complete.
                    let _ = self
                        .tx
                        .send(Err(std::io::Error::other("the store failed mid-export")))
                        .await;
                    return (rows, ExportOutcome::Aborted);
                }
            };
        }
    }

    /// As [`Writer::stream`], a Parquet row group at a time: the bytes of each go out as soon
    /// as it is full, the footer at the end.
    async fn stream_parquet(&self, first: surveyor_store::ServersPage) -> (u64, ExportOutcome) {
        let broken = |error: &dyn std::fmt::Display| {
            tracing::error!(%error, "parquet export failed");
            std::io::Error::other("the export failed mid-stream")
        };
        let mut file =
            match crate::parquet_file::ParquetWriter::new(columns(self.mode).map(|c| c.name)) {
                Ok(file) => file,
                Err(error) => {
                    let _ = self.tx.send(Err(broken(&error))).await;
                    return (0, ExportOutcome::Aborted);
                }
            };
        let mut rows = 0u64;
        let mut page = first;
        loop {
            for server in &page.servers {
                file.push_row(
                    columns(self.mode).map(|c| value(c.name, &self.scan, server, self.mode)),
                );
            }
            rows += page.servers.len() as u64;
            let last = page.next.is_none();
            let bytes = if last {
                file.finish()
            } else if file.buffered() >= crate::parquet_file::ROW_GROUP {
                file.flush_row_group()
            } else {
                Ok(Vec::new())
            };
            let bytes = match bytes {
                Ok(bytes) => bytes,
                Err(error) => {
                    let _ = self.tx.send(Err(broken(&error))).await;
                    return (rows, ExportOutcome::Aborted);
                }
            };
            if !bytes.is_empty() && self.tx.send(Ok(Bytes::from(bytes))).await.is_err() {
                return (rows, ExportOutcome::Aborted);
            }
            let Some(next) = page.next else {
                return (rows, ExportOutcome::Complete);
            };
            page = match self.next_page(next).await {
                Ok(page) => page,
                Err(error) => {
                    let _ = self.tx.send(Err(broken(&error))).await;
                    return (rows, ExportOutcome::Aborted);
                }
            };
        }
    }

    async fn next_page(
        &self,
        after: ServerCursor,
    ) -> Result<surveyor_store::ServersPage, surveyor_store::StoreError> {
        self.store
            .census
            .servers_page(self.scan.id, &self.filter, Some(after), PAGE)
            .await
    }

    fn encode(&self, server: &Observation, out: &mut Vec<u8>) {
        match (self.format, self.mode) {
            (Format::Jsonl, Mode::Full) => {
                // The observation exactly as `docs/output.md` defines it.
                if serde_json::to_writer(&mut *out, server).is_ok() {
                    out.push(b'\n');
                }
            }
            (Format::Jsonl, mode) => {
                let object: serde_json::Map<String, Value> = columns(mode)
                    .map(|c| (c.name.to_string(), value(c.name, &self.scan, server, mode)))
                    .collect();
                if serde_json::to_writer(&mut *out, &object).is_ok() {
                    out.push(b'\n');
                }
            }
            // Written by `stream_parquet`, a row group at a time.
            (Format::Parquet, _) => {}
            (Format::Csv, mode) => csv_line(
                out,
                columns(mode).map(|c| value(c.name, &self.scan, server, mode)),
            ),
            (Format::Shadowserver, mode) => {
                let Some(mut row) = shadowserver::observation_row(server, self.as_of) else {
                    return;
                };
                if let Mode::Pseudonymised(key) = mode {
                    row.ip = pseudonym(server.ip, key);
                    row.hostname.clear();
                    row.servername.clear();
                    row.url.clear();
                    row.asn = None;
                }
                csv_line(out, shadowserver::record(&row).into_iter().map(Value::from));
            }
        }
    }
}

/// One column of the flat export.
#[derive(Debug, Clone, Copy)]
struct Column {
    name: &'static str,
    /// Names the server, its network or its owner: left out when pseudonymised.
    identifying: bool,
}

const fn col(name: &'static str, identifying: bool) -> Column {
    Column { name, identifying }
}

/// The flat export's columns in order; `value` knows each one.
const COLUMNS: &[Column] = &[
    col("scan", false),
    col("ip", true),
    col("ip_pseudonym", false),
    col("port", false),
    col("observed_at", false),
    col("status", false),
    col("family", false),
    col("build", false),
    col("version_name", false),
    col("cu", false),
    col("support", false),
    col("patch", false),
    col("days_behind_cu", false),
    col("esu_patched", false),
    col("upgrade_path", false),
    col("vulnerable_cves", false),
    col("sector", false),
    col("asn", true),
    col("country", false),
    col("organisation", true),
    col("attribution_rule", true),
    col("tls_version", false),
    col("cert_issuer", false),
    col("cert_not_after", false),
    col("cert_subject", true),
    col("cert_names", true),
    col("cert_sha256", true),
    col("ntlm_dns_domain", true),
    col("ntlm_dns_computer", true),
    col("http_server", false),
    // Added after the first release, so at the end: which CVEs are exploited in the wild,
    // and which judgement the row is (the day and the knowledge base).
    col("exploited_cves", false),
    col("as_of", false),
    col("kb_digest", false),
    col("kb_newest_release", false),
];

fn columns(mode: Mode) -> impl Iterator<Item = Column> {
    COLUMNS.iter().copied().filter(move |c| match mode {
        Mode::Full => c.name != "ip_pseudonym",
        Mode::Pseudonymised(_) => !c.identifying,
    })
}

/// The scan an export reads, as its rows name it: which judgement, for which day, by which
/// knowledge base.
#[derive(Debug, Clone)]
struct Judged {
    id: ScanId,
    as_of: time::Date,
    kb: Option<surveyor_store::KbRef>,
}

/// The value of one column for one server.
fn value(column: &str, scan: &Judged, o: &Observation, mode: Mode) -> Value {
    let verdict = o.exchange.as_ref();
    let tls = o.tls.as_ref();
    let evidence = |signal: Signal| -> Value {
        o.fingerprint
            .of(signal)
            .next()
            .map_or(Value::Null, |e| Value::from(e.value.clone()))
    };
    match column {
        "scan" => json!(scan.id.0),
        "ip" => json!(o.ip.to_string()),
        "ip_pseudonym" => match mode {
            Mode::Pseudonymised(key) => json!(pseudonym(o.ip, key)),
            Mode::Full => Value::Null,
        },
        "port" => json!(o.port),
        "observed_at" => json!(rfc3339(o.observed_at)),
        "status" => json!(o.status.as_str()),
        "family" => json!(verdict.map(|v| v.family.to_string())),
        "build" => json!(verdict.map(|v| v.build.to_string())),
        "version_name" => json!(verdict.map(|v| v.version_name.clone())),
        "cu" => json!(verdict.and_then(|v| v.cu.clone())),
        "support" => json!(verdict.map(|v| v.support.as_str())),
        "patch" => json!(verdict.map(|v| v.patch_level.band().as_str())),
        "days_behind_cu" => json!(verdict.and_then(|v| v.patch_level.days_behind_cu)),
        "esu_patched" => json!(verdict.map(|v| v.esu_patched)),
        "upgrade_path" => json!(verdict.and_then(|v| v.upgrade_path.map(|p| p.as_str()))),
        "vulnerable_cves" => json!(verdict.map(|v| {
            v.cves
                .iter()
                .filter(|c| c.status == CveStatus::Vulnerable)
                .map(|c| c.cve.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })),
        "sector" => json!(o.attribution.as_ref().map(|a| a.sector.as_str())),
        "asn" => json!(o.asn),
        "country" => json!(o.country.clone()),
        "organisation" => json!(o.attribution.as_ref().map(|a| a.organisation.clone())),
        "attribution_rule" => json!(o.attribution.as_ref().map(|a| a.rule)),
        "tls_version" => json!(tls.map(|t| t.version.clone())),
        "cert_issuer" => json!(tls.and_then(|t| t.issuer.clone())),
        "cert_not_after" => json!(tls.and_then(|t| t.not_after).map(rfc3339)),
        "cert_subject" => json!(tls.and_then(|t| t.subject.clone())),
        "cert_names" => json!(tls.map(|t| t.names.join(" "))),
        "cert_sha256" => json!(tls.and_then(|t| t.cert_sha256.clone())),
        "ntlm_dns_domain" => evidence(Signal::NtlmDnsDomain),
        "ntlm_dns_computer" => evidence(Signal::NtlmDnsComputer),
        "http_server" => json!(o.http_server.clone()),
        "exploited_cves" => json!(verdict.map(|v| {
            v.cves
                .iter()
                .filter(|c| c.status == CveStatus::Vulnerable && c.exploited)
                .map(|c| c.cve.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })),
        "as_of" => json!(scan.as_of.to_string()),
        "kb_digest" => json!(scan.kb.as_ref().map(|k| k.digest.clone())),
        "kb_newest_release" => json!(scan.kb.as_ref().map(|k| k.newest_release.to_string())),
        other => unreachable!("column {other} has no value"),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The stand-in for an address: a keyed hash when the server has a key, else its network
/// (/24 for IPv4, /48 for IPv6), which many servers share.
fn pseudonym(ip: IpAddr, key: Option<PseudonymKey>) -> String {
    match key {
        Some(PseudonymKey(key)) => {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
            let bytes = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            let tag = ring::hmac::sign(&key, &bytes);
            // 128 bits: collisions are out of reach for any census, and the column stays short.
            let hex: String = tag.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("h:{hex}")
        }
        None => match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                format!("{a}.{b}.{c}.0/24")
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
                format!("{net}/48")
            }
        },
    }
}

/// Appends one CSV record (RFC 4180 quoting by the csv crate); null is an empty field.
fn csv_line(out: &mut Vec<u8>, values: impl Iterator<Item = Value>) {
    let fields: Vec<String> = values
        .map(|v| match v {
            Value::Null => String::new(),
            Value::String(s) => s,
            other => other.to_string(),
        })
        .collect();
    let mut writer = csv::WriterBuilder::new().from_writer(&mut *out);
    // Writing into a Vec cannot fail.
    let _ = writer.write_record(&fields);
    let _ = writer.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_has_a_value_and_pseudonymised_rows_name_nothing() {
        let o: Observation = serde_json::from_value(json!({
            "ip": "192.0.2.7", "port": 443, "scheme": "https",
            "observed_at": "2026-11-23T10:00:00Z", "status": "success", "error": null,
            "tls": {"version": "TLSv1_3", "cipher": "TLS13_AES_256_GCM_SHA384",
                    "cert_sha256": "ab", "subject": "CN=mail.klinik.example",
                    "issuer": "CN=Some CA", "names": ["mail.klinik.example"],
                    "not_before": null, "not_after": null},
            "http_server": "Microsoft-IIS/10.0",
            "fingerprint": {"evidence": [{"signal": "ntlm-dns-domain", "source": "/ews",
                                          "value": "klinik.local"}]},
            "exchange": null
        }))
        .unwrap();
        let scan = Judged {
            id: ScanId(1),
            as_of: time::macros::date!(2026 - 11 - 23),
            kb: None,
        };
        for column in COLUMNS {
            value(column.name, &scan, &o, Mode::Full);
        }
        let pseudo = Mode::Pseudonymised(None);
        let mut line = Vec::new();
        csv_line(
            &mut line,
            columns(pseudo).map(|c| value(c.name, &scan, &o, pseudo)),
        );
        let line = String::from_utf8(line).unwrap();
        assert!(line.contains("192.0.2.0/24"), "{line}");
        for secret in ["192.0.2.7", "klinik", "ab,"] {
            assert!(!line.contains(secret), "{secret} leaked: {line}");
        }
        let mut full = Vec::new();
        csv_line(
            &mut full,
            columns(Mode::Full).map(|c| value(c.name, &scan, &o, Mode::Full)),
        );
        let full = String::from_utf8(full).unwrap();
        assert!(
            full.contains("192.0.2.7") && full.contains("klinik.local"),
            "{full}"
        );
    }

    #[test]
    fn keyed_pseudonyms_are_stable_per_address_and_key() {
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "192.0.2.8".parse().unwrap();
        let k1 = Some(PseudonymKey([1; 32]));
        let k2 = Some(PseudonymKey([2; 32]));
        assert_eq!(pseudonym(a, k1), pseudonym(a, k1));
        assert_ne!(pseudonym(a, k1), pseudonym(b, k1));
        assert_ne!(pseudonym(a, k1), pseudonym(a, k2));
        assert_eq!(pseudonym(a, k1).len(), 2 + 32);
        let v6: IpAddr = "2001:db8:1:2::7".parse().unwrap();
        assert_eq!(pseudonym(v6, None), "2001:db8:1::/48");
        assert_eq!(
            format!("{:?}", PseudonymKey([7; 32])),
            "PseudonymKey(<secret>)"
        );
    }
}
