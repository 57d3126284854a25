//! Model values to column values and stored rows back to the model, shared by both backends.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use surveyor_model::observation::{
    BuildPrecision, Confidence, CveExposure, ExchangeOnlineBar, PatchLevel, SupportReason,
    UpgradePath,
};
use surveyor_model::{
    Build, Evidence, ExchangeServer, ExchangeVerdict, Family, Fingerprint, Observation, Scheme,
    Status, Support, TlsInfo,
};
use time::{Date, OffsetDateTime};

use crate::{NewScan, ScanId, ScanRecord, StoreError};

/// Rows per multi-row INSERT: 23 binds a row stays far below SQLite's 32766 and PostgreSQL's
/// 65535 bind parameters per statement.
pub(crate) const INSERT_CHUNK: usize = 1000;

/// The columns of an `observations` row in the order every backend writes them ([`Columns`]).
pub(crate) const OBSERVATION_COLUMNS: &str =
    "scan_id, ip, port, scheme, observed_at, status, error, tls, \
     http_server, fingerprint, exchange_family, exchange_build, exchange_version_name, \
     exchange_support, exchange_verdict, exchange_cu, exchange_patch, exchange_facts_id, \
     organisation, sector, attribution, asn, country";

/// The columns of one `observations` row, ready to bind.
pub(crate) struct Columns {
    pub ip: IpAddr,
    pub port: i32,
    pub scheme: &'static str,
    pub observed_at: OffsetDateTime,
    pub status: &'static str,
    pub error: Option<String>,
    pub tls: Option<String>,
    pub http_server: Option<String>,
    pub fingerprint: String,
    pub exchange_family: Option<&'static str>,
    pub exchange_build: Option<String>,
    pub exchange_version_name: Option<String>,
    pub exchange_support: Option<&'static str>,
    /// The verdict without its [`Facts`]: what is particular to the host.
    pub exchange_verdict: Option<String>,
    /// Which of its batch's distinct facts the verdict has ([`Prepared`]).
    pub exchange_facts: Option<usize>,
    pub exchange_cu: Option<String>,
    pub exchange_patch: Option<&'static str>,
    pub organisation: Option<String>,
    pub sector: Option<&'static str>,
    pub attribution: Option<String>,
    pub asn: Option<i64>,
    pub country: Option<String>,
}

/// The fields of a verdict that follow from the build and the as-of date alone, shared by
/// every host on that build: stored once in `verdict_facts`, keyed by their digest. Field
/// names are `ExchangeVerdict`'s, so that the two parts merge back into it.
#[derive(Serialize, PartialEq)]
struct FactsView<'a> {
    version_name: &'a String,
    cu: &'a Option<String>,
    support: &'a Support,
    support_reason: &'a Option<SupportReason>,
    esu_patched: &'a bool,
    patch_level: &'a PatchLevel,
    upgrade_path: &'a Option<UpgradePath>,
    cves: &'a Vec<CveExposure>,
    exchange_online: &'a Option<ExchangeOnlineBar>,
}

/// The rest of a verdict: what is particular to the host.
#[derive(Serialize)]
struct HostView<'a> {
    family: &'a Family,
    build: &'a Build,
    evidence: &'a Vec<Evidence>,
    build_precision: &'a Option<BuildPrecision>,
    confidence: &'a Option<Confidence>,
    inconsistencies: &'a Vec<String>,
}

fn views(v: &ExchangeVerdict) -> (HostView<'_>, FactsView<'_>) {
    // Destructured in full: a new verdict field fails to compile here until it is placed.
    let ExchangeVerdict {
        family,
        build,
        version_name,
        cu,
        support,
        evidence,
        build_precision,
        confidence,
        support_reason,
        esu_patched,
        patch_level,
        upgrade_path,
        cves,
        exchange_online,
        inconsistencies,
    } = v;
    (
        HostView {
            family,
            build,
            evidence,
            build_precision,
            confidence,
            inconsistencies,
        },
        FactsView {
            version_name,
            cu,
            support,
            support_reason,
            esu_patched,
            patch_level,
            upgrade_path,
            cves,
            exchange_online,
        },
    )
}

/// One `verdict_facts` row: the JSON text and its SHA-256 in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    pub digest: String,
    pub body: String,
}

/// A batch ready to store: its observations in key order (address, port), which is the order
/// concurrent writers lock rows in and the order index pages fill, and the distinct verdict
/// facts of its verdicts, each serialized and hashed once. Rows are encoded chunk by chunk
/// ([`Prepared::encoded_chunks`]), so that a backend can write one chunk while the next is
/// encoded.
pub(crate) struct Prepared<'a> {
    /// Each observation with the index of its verdict's facts in `facts`.
    rows: Vec<(&'a Observation, Option<usize>)>,
    facts: Vec<Facts>,
}

impl<'a> Prepared<'a> {
    pub(crate) fn new(batch: &'a [Observation]) -> Result<Prepared<'a>, StoreError> {
        let mut seen: Vec<FactsView<'a>> = Vec::new();
        let mut facts = Vec::new();
        let mut rows = Vec::with_capacity(batch.len());
        for o in batch {
            check(o)?;
            let index = match &o.exchange {
                None => None,
                Some(verdict) => {
                    let view = views(verdict).1;
                    Some(match seen.iter().position(|known| *known == view) {
                        Some(i) => i,
                        None => {
                            facts.push(facts_row(o, &view)?);
                            seen.push(view);
                            seen.len() - 1
                        }
                    })
                }
            };
            rows.push((o, index));
        }
        // Stable: of two observations of one target in a batch, the first still goes first.
        rows.sort_by_key(|(o, _)| (o.ip, o.port));
        Ok(Prepared { rows, facts })
    }

    /// The distinct facts as (digests, bodies), sorted by digest: concurrent batches then
    /// take the facts' unique-index locks in one order.
    pub(crate) fn distinct_facts(&self) -> (Vec<&str>, Vec<&str>) {
        let mut distinct: Vec<(&str, &str)> = self
            .facts
            .iter()
            .map(|f| (f.digest.as_str(), f.body.as_str()))
            .collect();
        distinct.sort_unstable();
        distinct.into_iter().unzip()
    }

    /// The stored id of each distinct fact, in this batch's own order, from the ids by digest
    /// that the backend read back.
    pub(crate) fn fact_ids(
        &self,
        by_digest: &std::collections::HashMap<String, i64>,
    ) -> Result<Vec<i64>, StoreError> {
        self.facts
            .iter()
            .map(|f| {
                by_digest.get(&f.digest).copied().ok_or_else(|| {
                    StoreError::corrupt("verdict_facts (a digest just stored is missing)")
                })
            })
            .collect()
    }

    /// The rows in chunks of at most `rows`, each encoded when the iterator reaches it.
    pub(crate) fn encoded_chunks(
        &self,
        rows: usize,
    ) -> impl Iterator<Item = Result<Vec<Columns>, StoreError>> + Send + '_ {
        self.rows.chunks(rows.max(1)).map(encode_rows)
    }

    /// Every row, encoded.
    pub(crate) fn encode(&self) -> Result<Vec<Columns>, StoreError> {
        encode_rows(&self.rows)
    }
}

fn encode_rows(rows: &[(&Observation, Option<usize>)]) -> Result<Vec<Columns>, StoreError> {
    rows.iter()
        .map(|&(o, facts)| {
            let mut columns = Columns::encode(o)?;
            if let Some(verdict) = &o.exchange {
                columns.exchange_verdict = Some(to_json(o, &views(verdict).0, "exchange verdict")?);
                columns.exchange_facts = facts;
            }
            Ok(columns)
        })
        .collect()
}

fn facts_row(o: &Observation, facts: &FactsView<'_>) -> Result<Facts, StoreError> {
    use sha2::Digest;
    let body = to_json(o, facts, "exchange verdict")?;
    let digest = sha2::Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Facts { digest, body })
}

/// A `verdict_facts` row read back: the [`FactsView`] fields, owned. A read parses each
/// distinct row once ([`FactsCache`]), however many observations refer to it: the body is
/// most of a verdict's bytes (the per-CVE list).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct VerdictFacts {
    version_name: String,
    #[serde(default)]
    cu: Option<String>,
    support: Support,
    #[serde(default)]
    support_reason: Option<SupportReason>,
    #[serde(default)]
    esu_patched: bool,
    #[serde(default)]
    patch_level: PatchLevel,
    #[serde(default)]
    upgrade_path: Option<UpgradePath>,
    #[serde(default)]
    cves: Vec<CveExposure>,
    #[serde(default)]
    exchange_online: Option<ExchangeOnlineBar>,
}

/// The [`HostView`] fields, owned.
#[derive(Deserialize)]
struct HostPart {
    family: Family,
    build: Build,
    evidence: Vec<Evidence>,
    #[serde(default)]
    build_precision: Option<BuildPrecision>,
    #[serde(default)]
    confidence: Option<Confidence>,
    #[serde(default)]
    inconsistencies: Vec<String>,
}

/// The verdict facts a read met, parsed, by `verdict_facts.id`.
pub(crate) type FactsCache = HashMap<i64, VerdictFacts>;

/// Parses `verdict_facts` rows (id, body) into a cache.
pub(crate) fn facts_cache(
    rows: impl IntoIterator<Item = (i64, String)>,
) -> Result<FactsCache, StoreError> {
    rows.into_iter()
        .map(|(id, body)| {
            from_json::<VerdictFacts>(&body)
                .map(|facts| (id, facts))
                .ok_or_else(|| StoreError::corrupt(format!("verdict_facts.body of row {id}")))
        })
        .collect()
}

/// The verdict of a stored row: the host's part with the shared facts, when the row has them,
/// put back together.
fn merge_verdict(host: &str, facts: Option<&VerdictFacts>) -> Option<ExchangeVerdict> {
    let Some(facts) = facts else {
        return from_json(host);
    };
    let host: HostPart = from_json(host)?;
    let facts = facts.clone();
    Some(ExchangeVerdict {
        family: host.family,
        build: host.build,
        version_name: facts.version_name,
        cu: facts.cu,
        support: facts.support,
        evidence: host.evidence,
        build_precision: host.build_precision,
        confidence: host.confidence,
        support_reason: facts.support_reason,
        esu_patched: facts.esu_patched,
        patch_level: facts.patch_level,
        upgrade_path: facts.upgrade_path,
        cves: facts.cves,
        exchange_online: facts.exchange_online,
        inconsistencies: host.inconsistencies,
    })
}

/// What neither backend can store the same way (a NUL character, a malformed country),
/// named with the observation: checked for the whole batch before anything is written.
fn check(o: &Observation) -> Result<(), StoreError> {
    if let Some(field) = nul_field(o) {
        return Err(StoreError::Unencodable {
            what: format!(
                "the observation of {}:{}: its {field} contains a NUL character",
                o.ip, o.port
            )
            .into(),
        });
    }
    if let Some(country) = &o.country {
        // Both schemas check this too; caught here it names the observation.
        if !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(StoreError::Unencodable {
                what: format!(
                    "the observation of {}:{}: its country {country:?} is not two upper-case \
                         letters (ISO 3166-1 alpha-2)",
                    o.ip, o.port
                )
                .into(),
            });
        }
    }
    Ok(())
}

/// The `verdict_facts` id of a row's facts, from [`Prepared::fact_ids`].
pub(crate) fn facts_id(ids: &[i64], c: &Columns) -> Option<i64> {
    c.exchange_facts.map(|i| ids[i])
}

impl Columns {
    fn encode(o: &Observation) -> Result<Columns, StoreError> {
        let exchange = o.exchange.as_ref();
        Ok(Columns {
            ip: o.ip,
            port: i32::from(o.port),
            scheme: o.scheme.as_str(),
            observed_at: truncate_to_micros(o.observed_at),
            status: o.status.as_str(),
            error: o.error.clone(),
            tls: o
                .tls
                .as_ref()
                .map(|tls| to_json(o, tls, "tls"))
                .transpose()?,
            http_server: o.http_server.clone(),
            fingerprint: to_json(o, &o.fingerprint, "fingerprint")?,
            exchange_family: exchange.map(|x| x.family.as_str()),
            exchange_build: exchange.map(|x| x.build.to_string()),
            exchange_version_name: exchange.map(|x| x.version_name.clone()),
            exchange_support: exchange.map(|x| x.support.as_str()),
            // Filled in by `Prepared`, which shares the facts across the batch.
            exchange_verdict: None,
            exchange_facts: None,
            exchange_cu: exchange.and_then(|x| x.cu.clone()),
            exchange_patch: exchange.map(|x| x.patch_level.band().as_str()),
            organisation: o.attribution.as_ref().map(|a| a.organisation.clone()),
            sector: o.attribution.as_ref().map(|a| a.sector.as_str()),
            attribution: o
                .attribution
                .as_ref()
                .map(|a| to_json(o, a, "attribution"))
                .transpose()?,
            asn: o.asn.map(i64::from),
            country: o.country.clone(),
        })
    }
}

/// Checks the text of a new scan for what no backend can store the same way.
/// The source scan of a new judgement, checked: it exists, is finished, still has its
/// observations and is not itself a judgement.
pub(crate) fn judgement_source(
    judgement: &crate::NewJudgement,
    source: Option<ScanRecord>,
) -> Result<ScanRecord, StoreError> {
    check_kb(&judgement.kb)?;
    if judgement.tool_version.contains('\0') {
        return Err(StoreError::Unencodable {
            what: "the judgement's tool_version contains a NUL character".into(),
        });
    }
    let id = judgement.source;
    let source = source.ok_or(StoreError::UnknownScan(id))?;
    if let Some(origin) = source.judged_from {
        return Err(StoreError::InvalidQuery(
            format!("scan {id} is a judgement of scan {origin}; judge scan {origin} again").into(),
        ));
    }
    if source.finished_at.is_none() {
        return Err(StoreError::InvalidQuery(
            format!("scan {id} is not finished; only a finished scan can be judged again").into(),
        ));
    }
    if source.pruned_at.is_some() {
        return Err(StoreError::ScanPruned(id));
    }
    Ok(source)
}

/// A page of observations in key order and the cursor after its last, when it was full.
pub(crate) fn page_of_observations(
    observations: Vec<Observation>,
    limit: u32,
) -> (Vec<Observation>, Option<crate::ObservationCursor>) {
    let next = (observations.len() >= limit as usize)
        .then(|| observations.last())
        .flatten()
        .map(|o| crate::ObservationCursor {
            ip: o.ip,
            port: o.port,
        });
    (observations, next)
}

/// A knowledge-base digest the store accepts: 64 lower-case hex digits.
pub(crate) fn check_kb(kb: &crate::KbRef) -> Result<(), StoreError> {
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if kb.digest.len() == 64 && kb.digest.bytes().all(hex) {
        Ok(())
    } else {
        Err(StoreError::Unencodable {
            what: "the scan's knowledge-base digest (want 64 lower-case hex digits)".into(),
        })
    }
}

pub(crate) fn check_new_scan(scan: &NewScan) -> Result<(), StoreError> {
    if let Some(kb) = &scan.kb {
        check_kb(kb)?;
    }
    for (field, value) in [
        ("targets", &scan.targets),
        ("tool_version", &scan.tool_version),
    ] {
        if value.contains('\0') {
            return Err(StoreError::Unencodable {
                what: format!("the new scan: its {field} contains a NUL character").into(),
            });
        }
    }
    Ok(())
}

/// One `observations` row as read back, before it is checked against the model.
pub(crate) struct StoredObservation {
    pub id: i64,
    pub ip: String,
    pub port: i64,
    pub scheme: String,
    pub observed_at: OffsetDateTime,
    pub status: String,
    pub error: Option<String>,
    pub tls: Option<String>,
    pub http_server: Option<String>,
    pub fingerprint: String,
    pub exchange_family: Option<String>,
    pub exchange_build: Option<String>,
    pub exchange_version_name: Option<String>,
    pub exchange_support: Option<String>,
    pub exchange_verdict: Option<String>,
    /// The row's `verdict_facts` id, when it references one.
    pub exchange_facts_id: Option<i64>,
    pub attribution: Option<String>,
    pub asn: Option<i64>,
    pub country: Option<String>,
}

impl StoredObservation {
    /// The observation, its verdict facts taken from `facts`, which must hold the id the row
    /// refers to (a missing one is `Corrupt`).
    pub(crate) fn into_model(self, facts: &FactsCache) -> Result<Observation, StoreError> {
        let id = self.id;
        let corrupt = |column: &str| corrupt_column(id, column);
        let exchange = match (
            self.exchange_family,
            self.exchange_build,
            self.exchange_version_name,
            self.exchange_support,
            self.exchange_verdict,
        ) {
            (None, None, None, None, None) => None,
            (Some(family), Some(build), Some(version_name), Some(support), Some(verdict)) => {
                // The whole verdict is kept as JSON so that new verdict fields need no new
                // columns; the flat columns exist for queries and must agree with it.
                let facts = match self.exchange_facts_id {
                    Some(fid) => Some(
                        facts
                            .get(&fid)
                            .ok_or_else(|| corrupt("exchange_facts_id"))?,
                    ),
                    None => None,
                };
                let verdict =
                    merge_verdict(&verdict, facts).ok_or_else(|| corrupt("exchange_verdict"))?;
                let agrees = verdict.family == parse_family(id, &family)?
                    && Some(verdict.build) == build.parse::<Build>().ok()
                    && verdict.version_name == version_name
                    && verdict.support == parse_support(id, &support)?;
                if !agrees {
                    return Err(corrupt("exchange verdict (columns disagree with its JSON)"));
                }
                Some(verdict)
            }
            _ => return Err(corrupt("exchange verdict (some of its columns are null)")),
        };
        Ok(Observation {
            ip: parse_ip(id, &self.ip)?,
            port: u16::try_from(self.port).map_err(|_| corrupt("port"))?,
            scheme: Scheme::parse(&self.scheme).ok_or_else(|| corrupt("scheme"))?,
            observed_at: self.observed_at,
            status: Status::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            error: self.error,
            tls: self
                .tls
                .map(|tls| from_json::<TlsInfo>(&tls).ok_or_else(|| corrupt("tls")))
                .transpose()?,
            http_server: self.http_server,
            fingerprint: from_json::<Fingerprint>(&self.fingerprint)
                .ok_or_else(|| corrupt("fingerprint"))?,
            exchange,
            attribution: self
                .attribution
                .map(|a| from_json(&a).ok_or_else(|| corrupt("attribution")))
                .transpose()?,
            asn: self
                .asn
                .map(|n| u32::try_from(n).map_err(|_| corrupt("asn")))
                .transpose()?,
            country: self.country,
        })
    }
}

/// The census columns of one recognised observation.
/// The columns of one recognised server as stored.
pub(crate) struct ServerColumns<'a> {
    pub id: i64,
    pub ip: &'a str,
    pub port: i64,
    pub family: &'a str,
    pub build: &'a str,
    pub support: &'a str,
}

pub(crate) fn exchange_server(c: ServerColumns<'_>) -> Result<ExchangeServer, StoreError> {
    Ok(ExchangeServer {
        ip: parse_ip(c.id, c.ip)?,
        port: u16::try_from(c.port).map_err(|_| corrupt_column(c.id, "port"))?,
        family: parse_family(c.id, c.family)?,
        build: c
            .build
            .parse()
            .map_err(|_| corrupt_column(c.id, "exchange_build"))?,
        support: parse_support(c.id, c.support)?,
    })
}

/// One `scans` row as read back.
pub(crate) struct StoredScan {
    pub id: i64,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub as_of: Date,
    pub targets: String,
    pub ports: Vec<i64>,
    pub tool_version: String,
    pub observations: i64,
    pub pruned_at: Option<OffsetDateTime>,
    pub kb_digest: Option<String>,
    pub kb_newest_release: Option<Date>,
    pub judged_at: Option<OffsetDateTime>,
    pub judged_from: Option<i64>,
    pub projection: bool,
    pub superseded_by: Option<i64>,
}

impl StoredScan {
    pub(crate) fn into_model(self) -> Result<ScanRecord, StoreError> {
        let corrupt =
            |column: &str| StoreError::corrupt(format!("scans.{column} of scan {}", self.id));
        let ports = self
            .ports
            .iter()
            .map(|&p| u16::try_from(p).map_err(|_| corrupt("ports")))
            .collect::<Result<Vec<u16>, _>>()?;
        Ok(ScanRecord {
            id: ScanId(self.id),
            started_at: self.started_at,
            finished_at: self.finished_at,
            as_of: self.as_of,
            targets: self.targets,
            ports,
            tool_version: self.tool_version,
            observations: u64::try_from(self.observations).map_err(|_| corrupt("count"))?,
            pruned_at: self.pruned_at,
            kb: match (self.kb_digest, self.kb_newest_release) {
                (Some(digest), Some(newest_release)) => Some(crate::KbRef {
                    digest,
                    newest_release,
                }),
                (None, None) => None,
                _ => return Err(corrupt("kb_digest")),
            },
            // Scans stored before migration 0012 were judged as they ran.
            judged_at: self.judged_at.unwrap_or(self.started_at),
            judged_from: self.judged_from.map(ScanId),
            projection: self.projection,
            superseded_by: self.superseded_by.map(ScanId),
        })
    }
}

/// Drops sub-microsecond digits: PostgreSQL keeps microseconds, and both backends must give
/// back the same value.
pub(crate) fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let micros = t.nanosecond() / 1_000;
    // Cannot fail: a whole number of microseconds is a valid nanosecond value.
    t.replace_nanosecond(micros * 1_000).unwrap_or(t)
}

/// Orders observations by ip then port, the way `IpAddr` compares (IPv4 before IPv6, then
/// numerically), which text columns cannot do in SQL.
pub(crate) fn sort_observations(observations: &mut [Observation]) {
    observations.sort_by_key(|o| (o.ip, o.port));
}

pub(crate) fn corrupt_column(id: i64, column: &str) -> StoreError {
    StoreError::corrupt(format!("observations.{column} of row {id}"))
}

fn parse_ip(id: i64, ip: &str) -> Result<IpAddr, StoreError> {
    ip.parse().map_err(|_| corrupt_column(id, "ip"))
}

fn parse_family(id: i64, family: &str) -> Result<Family, StoreError> {
    family
        .parse()
        .map_err(|_| corrupt_column(id, "exchange_family"))
}

fn parse_support(id: i64, support: &str) -> Result<Support, StoreError> {
    Support::parse(support).ok_or_else(|| corrupt_column(id, "exchange_support"))
}

fn from_json<T: DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_str(text).ok()
}

/// The first text field of an observation holding a NUL, which PostgreSQL text cannot store;
/// SQLite refuses it too so that both backends accept the same data.
fn nul_field(o: &Observation) -> Option<&'static str> {
    let nul = |s: &str| s.contains('\0');
    let evidence_nul = |e: &[Evidence]| e.iter().any(|e| nul(&e.source) || nul(&e.value));
    if o.error.as_deref().is_some_and(nul) {
        return Some("error");
    }
    if o.http_server.as_deref().is_some_and(nul) {
        return Some("http_server");
    }
    if let Some(tls) = &o.tls {
        let optional = [&tls.cert_sha256, &tls.subject, &tls.issuer];
        if nul(&tls.version)
            || nul(&tls.cipher)
            || optional.iter().any(|s| s.as_deref().is_some_and(nul))
            || tls.names.iter().any(|s| nul(s))
        {
            return Some("tls");
        }
    }
    if evidence_nul(&o.fingerprint.evidence) {
        return Some("fingerprint");
    }
    if let Some(x) = &o.exchange {
        if nul(&x.version_name) || evidence_nul(&x.evidence) {
            return Some("exchange verdict");
        }
    }
    if let Some(a) = &o.attribution {
        if nul(&a.organisation) || nul(&a.matched) {
            return Some("attribution");
        }
    }
    None
}

/// JSON text of one field of an observation. Fails only for values RFC 3339 cannot write
/// (a certificate date before year 0 or with an offset in seconds).
fn to_json<T: Serialize>(o: &Observation, value: &T, field: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|_| StoreError::Unencodable {
        what: format!(
            "the observation of {}:{}: its {field} has no JSON form",
            o.ip, o.port
        )
        .into(),
    })
}

/// The JSON body of one `organisations` row, after checks both backends share.
pub(crate) fn organisation_rows(
    organisations: &[surveyor_model::Organisation],
) -> Result<Vec<(&str, &str, &'static str, String)>, StoreError> {
    let mut seen = std::collections::HashSet::new();
    organisations
        .iter()
        .map(|o| {
            if !seen.insert(o.id.as_str()) {
                return Err(StoreError::InvalidQuery(
                    format!("organisation id {:?} appears twice", o.id).into(),
                ));
            }
            let body = serde_json::to_string(o).map_err(|_| StoreError::Unencodable {
                what: format!("organisation {}", o.id).into(),
            })?;
            if body.contains("\\u0000") {
                return Err(StoreError::Unencodable {
                    what: format!("organisation {}: a NUL character", o.id).into(),
                });
            }
            Ok((o.id.as_str(), o.name.as_str(), o.sector.as_str(), body))
        })
        .collect()
}

pub(crate) fn organisation_from_json(
    body: &str,
) -> Result<surveyor_model::Organisation, StoreError> {
    from_json(body).ok_or_else(|| StoreError::corrupt("organisations.body"))
}

/// One `hosts` row as read back.
pub(crate) struct StoredHost {
    pub ip: String,
    pub port: i64,
    pub first_seen: OffsetDateTime,
    pub last_seen: OffsetDateTime,
    pub last_scan: i64,
    pub status: String,
    pub family: Option<String>,
    pub build: Option<String>,
    pub support: Option<String>,
}

impl StoredHost {
    pub(crate) fn into_model(self) -> Result<crate::HostState, StoreError> {
        let corrupt = |column: &str| StoreError::corrupt(format!("hosts.{column} of {}", self.ip));
        let port = u16::try_from(self.port).map_err(|_| corrupt("port"))?;
        let exchange = match (self.family, self.build, self.support) {
            (Some(family), Some(build), Some(support)) => Some(ExchangeServer {
                ip: self.ip.parse().map_err(|_| corrupt("ip"))?,
                port,
                family: family.parse().map_err(|_| corrupt("exchange_family"))?,
                build: build.parse().map_err(|_| corrupt("exchange_build"))?,
                support: Support::parse(&support).ok_or_else(|| corrupt("exchange_support"))?,
            }),
            (None, None, None) => None,
            _ => return Err(corrupt("exchange columns")),
        };
        Ok(crate::HostState {
            port,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            last_scan: ScanId(self.last_scan),
            status: Status::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            exchange,
        })
    }
}

/// A token's name and hash, checked before writing.
pub(crate) fn check_token(name: &str, token_hash: &str) -> Result<(), StoreError> {
    if name.contains('\0') {
        return Err(StoreError::Unencodable {
            what: "the token's name: a NUL character".into(),
        });
    }
    let hex = token_hash.len() == 64
        && token_hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Err(StoreError::InvalidQuery(
            "a token hash is 64 lower-case hex digits".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use surveyor_model::observation::{CveStatus, Severity, UpdateRef};
    use surveyor_model::Signal;
    use time::macros::{date, datetime};

    /// A verdict with every field set away from its default.
    fn full_verdict(build: &str) -> ExchangeVerdict {
        let build: Build = build.parse().unwrap();
        ExchangeVerdict {
            family: Family::E2019,
            build,
            version_name: format!("Exchange Server 2019 CU15 ({build})"),
            cu: Some("Exchange Server 2019 CU15".into()),
            support: Support::Unsupported,
            evidence: vec![Evidence {
                signal: Signal::OwaVersionHeader,
                source: "GET /owa/".into(),
                value: build.to_string(),
            }],
            build_precision: Some(BuildPrecision::Exact),
            confidence: Some(Confidence::High),
            support_reason: Some(SupportReason::ProductEndOfLife),
            esu_patched: true,
            patch_level: PatchLevel {
                newest_for_cu: Some(UpdateRef {
                    build: "15.2.1748.53".parse().unwrap(),
                    name: "Exchange Server 2019 CU15 Sep26SUv2".into(),
                    released: Some(date!(2026 - 09 - 08)),
                }),
                days_behind_cu: Some(12),
                newest_for_family: None,
                days_behind_family: Some(12),
            },
            upgrade_path: Some(UpgradePath::InPlaceToSe),
            cves: vec![CveExposure {
                cve: "CVE-2025-53786".into(),
                status: CveStatus::FixedConfigDependent,
                fixed_in: Some("15.2.1748.36".parse().unwrap()),
                severity: Severity::Critical,
                exploited: true,
            }],
            exchange_online: Some(ExchangeOnlineBar {
                since: date!(2026 - 09 - 08),
                minimum_update: "Oct25SU".into(),
                meets: Some(false),
            }),
            inconsistencies: vec!["iis-version-too-old-for-build (likely honeypot)".into()],
        }
    }

    #[test]
    fn verdicts_split_into_host_and_shared_facts_and_merge_back_whole() {
        let o = |ip: &str, build: &str| Observation {
            ip: ip.parse().unwrap(),
            port: 443,
            scheme: Scheme::Https,
            observed_at: datetime!(2026-11-23 10:00 UTC),
            status: Status::Success,
            error: None,
            tls: None,
            http_server: None,
            fingerprint: Fingerprint::default(),
            exchange: Some(full_verdict(build)),
            attribution: None,
            asn: None,
            country: None,
        };
        let batch = [
            o("192.0.2.1", "15.2.1748.39"),
            o("192.0.2.2", "15.2.1748.39"),
            o("192.0.2.3", "15.2.1748.43"),
        ];
        let prepared = Prepared::new(&batch).unwrap();
        let (digests, bodies) = prepared.distinct_facts();
        assert_eq!(digests.len(), 2, "two builds, two facts");
        let columns = prepared.encode().unwrap();
        for (c, o) in columns.iter().zip(&batch) {
            let host = c.exchange_verdict.as_deref().unwrap();
            assert!(
                !host.contains("CVE-2025-53786"),
                "facts stay out of the host part"
            );
            let facts = c.exchange_facts.map(|i| prepared.facts[i].body.as_str());
            assert!(facts.is_some_and(|f| bodies.contains(&f)));
            let parsed = facts_cache([(1, facts.unwrap().to_string())]).unwrap();
            assert_eq!(
                merge_verdict(host, parsed.get(&1)).as_ref(),
                o.exchange.as_ref()
            );
        }
        // A verdict stored whole, before the split existed, still reads back.
        let whole = serde_json::to_string(&batch[0].exchange).unwrap();
        assert_eq!(merge_verdict(&whole, None), batch[0].exchange);
    }

    #[test]
    fn truncates_to_microseconds() {
        let t = datetime!(2025-10-14 09:30:01.123_456_789 UTC);
        assert_eq!(
            truncate_to_micros(t),
            datetime!(2025-10-14 09:30:01.123_456 UTC)
        );
        let exact = datetime!(2025-10-14 09:30:01.5 +02:00);
        assert_eq!(truncate_to_micros(exact), exact);
    }
}
