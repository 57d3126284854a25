//! Census queries shared by both backends: the dimensions a census is counted by, filters, and
//! the SQL that counts servers from a scan's observations or from its stored aggregates.
//!
//! Every column name in the SQL comes from a closed enum, every value is a bound parameter.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use surveyor_model::{Family, PatchBand, Support};
use time::OffsetDateTime;

use crate::sql::{Bind, Sql};
use crate::ScanId;

/// A dimension a census can be grouped and filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dimension {
    Family,
    /// The CU (or 2007/2010 rollup) the build belongs to.
    Cu,
    /// The exact update when known, else the CU: the verdict's `version_name`.
    Version,
    Support,
    /// The [`PatchBand`]: how far behind the newest update of its CU.
    Patch,
    /// The attributed organisation's sector ("" when none).
    Sector,
    /// The attributed organisation's id ("" when none). Counted live from the scan's
    /// observations, not from the aggregates: a census has as many organisations as servers.
    Organisation,
    /// The AS announcing the address, in decimal ("" when unknown).
    Asn,
    /// The country the address is registered in, ISO 3166-1 alpha-2 ("" when unknown).
    Country,
}

impl Dimension {
    pub const ALL: [Dimension; 9] = [
        Dimension::Family,
        Dimension::Cu,
        Dimension::Version,
        Dimension::Support,
        Dimension::Patch,
        Dimension::Sector,
        Dimension::Organisation,
        Dimension::Asn,
        Dimension::Country,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Family => "family",
            Dimension::Cu => "cu",
            Dimension::Version => "version",
            Dimension::Support => "support",
            Dimension::Patch => "patch",
            Dimension::Sector => "sector",
            Dimension::Organisation => "organisation",
            Dimension::Asn => "asn",
            Dimension::Country => "country",
        }
    }

    /// The column of `census_rollup` (and of the live census relation) it reads.
    fn column(self) -> &'static str {
        match self {
            Dimension::Family => "family",
            Dimension::Cu => "cu",
            Dimension::Version => "version_name",
            Dimension::Support => "support",
            Dimension::Patch => "patch",
            Dimension::Sector => "sector",
            Dimension::Organisation => "organisation",
            Dimension::Asn => "asn",
            Dimension::Country => "country",
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dimension {
    type Err = String;

    fn from_str(s: &str) -> Result<Dimension, String> {
        Dimension::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Dimension::ALL.iter().map(|d| d.as_str()).collect();
                format!("unknown dimension {s:?} (known: {})", known.join(", "))
            })
    }
}

/// Which servers a census counts; every field set narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CensusFilter {
    pub family: Option<Family>,
    /// The CU's name as [`CensusGroup::cu`] gives it ("" for an unknown CU).
    pub cu: Option<String>,
    pub version: Option<String>,
    pub support: Option<Support>,
    pub patch: Option<PatchBand>,
    /// "" for servers no rule attributed.
    pub sector: Option<String>,
    /// An organisation id; "" for servers no rule attributed.
    pub organisation: Option<String>,
    /// An AS number in decimal; "" for servers of no known AS.
    pub asn: Option<String>,
    /// ISO 3166-1 alpha-2; "" for servers of no known country.
    pub country: Option<String>,
}

impl CensusFilter {
    /// Whether the filter needs the observations (the aggregates have no organisation).
    fn needs_observations(&self) -> bool {
        self.organisation.is_some()
    }
}

/// One group of a census: the values of the dimensions it was grouped by (the others are
/// `None`) and how many servers it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CensusGroup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// "" when the build table does not know the CU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support: Option<Support>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<PatchBand>,
    /// "" for servers no rule attributed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector: Option<String>,
    /// "" for servers no rule attributed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    /// The AS number in decimal; "" when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<String>,
    /// ISO 3166-1 alpha-2; "" when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub servers: u64,
}

/// A census group in one finished scan: a point of a trend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub scan: ScanId,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    #[serde(with = "crate::iso_date")]
    pub as_of: time::Date,
    #[serde(flatten)]
    pub group: CensusGroup,
}

/// Where a walk over a scan's servers stands: after this observation. Opaque to clients,
/// who get it back as a token ([`ServerCursor::token`]) and hand it in unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerCursor(i64);

impl ServerCursor {
    /// The token a client hands back for the next page.
    pub fn token(self) -> String {
        format!("o{}", self.0)
    }

    /// Reads a token [`ServerCursor::token`] made; `None` for anything else.
    pub fn from_token(token: &str) -> Option<ServerCursor> {
        let digits = token.strip_prefix('o')?;
        // Only canonical decimal: "o01" or "o+1" were never handed out.
        if digits.is_empty()
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        digits.parse().ok().map(ServerCursor)
    }
}

/// One page of [`crate::CensusStore::servers_page`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServersPage {
    pub servers: Vec<surveyor_model::Observation>,
    /// Where the next page starts; `None` when this page reached the end.
    pub next: Option<ServerCursor>,
}

/// What [`crate::ScanStore::prune`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrunePolicy {
    /// Keep the observations of this many newest finished scans.
    pub keep_scans: Option<usize>,
    /// Keep the observations of scans finished at or after this time.
    pub keep_since: Option<OffsetDateTime>,
}

/// What a prune did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PruneReport {
    /// Scans whose observations were deleted; their census aggregates stay.
    pub pruned: Vec<ScanId>,
    pub observations_deleted: u64,
}

/// The bits of SQL the two backends spell differently.
pub(crate) struct Dialect {
    /// The n-th (1-based) parameter: `$n` or `?`.
    pub placeholder: fn(usize) -> String,
    /// The two-argument minimum and maximum: `LEAST`/`GREATEST` or SQLite's `min`/`max`.
    pub least: &'static str,
    pub greatest: &'static str,
}

struct Builder<'d> {
    dialect: &'d Dialect,
    text: String,
    binds: Vec<Bind>,
}

impl<'d> Builder<'d> {
    fn new(dialect: &'d Dialect) -> Self {
        Builder {
            dialect,
            text: String::new(),
            binds: Vec::new(),
        }
    }

    fn push(&mut self, sql: &str) -> &mut Self {
        self.text.push_str(sql);
        self
    }

    fn bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        let p = (self.dialect.placeholder)(self.binds.len());
        self.text.push_str(&p);
        self
    }

    fn finish(self) -> Sql {
        Sql {
            text: self.text,
            binds: self.binds,
        }
    }
}

/// The servers of one scan, one per address, as rows of the census dimensions with
/// `servers = 1`. When an address answers on several ports, the newest family wins (family
/// names order as their age: '2007' < … < '2019' < 'SE'), then the lowest port — the rule of
/// `surveyor_model::Census`.
fn live_source(b: &mut Builder<'_>, scan: ScanId) {
    b.push(
        "(SELECT exchange_family AS family, COALESCE(exchange_cu, '') AS cu, \
         exchange_version_name AS version_name, exchange_support AS support, \
         COALESCE(exchange_patch, 'unknown') AS patch, COALESCE(sector, '') AS sector, \
         COALESCE(organisation, '') AS organisation, COALESCE(CAST(asn AS TEXT), '') AS asn, \
         COALESCE(country, '') AS country, 1 AS servers \
         FROM (SELECT o.exchange_family, o.exchange_cu, o.exchange_version_name, \
         o.exchange_support, o.exchange_patch, o.sector, o.organisation, o.asn, o.country, \
         row_number() OVER \
         (PARTITION BY o.ip ORDER BY o.exchange_family DESC, o.port) AS pick \
         FROM observations o WHERE o.scan_id = ",
    )
    .bind(Bind::Int(scan.0))
    .push(" AND o.exchange_family IS NOT NULL) ranked WHERE pick = 1)");
}

/// Replaces a scan's stored aggregates with a fresh count of its observations.
pub(crate) fn rollup_statements(dialect: &Dialect, scan: ScanId) -> [Sql; 2] {
    let mut delete = Builder::new(dialect);
    delete
        .push("DELETE FROM census_rollup WHERE scan_id = ")
        .bind(Bind::Int(scan.0));
    let mut insert = Builder::new(dialect);
    insert
        .push(
            "INSERT INTO census_rollup (scan_id, family, cu, version_name, support, patch, \
             sector, asn, country, servers) SELECT ",
        )
        .bind(Bind::Int(scan.0))
        .push(", family, cu, version_name, support, patch, sector, asn, country, count(*) FROM ");
    live_source(&mut insert, scan);
    insert.push(" live GROUP BY family, cu, version_name, support, patch, sector, asn, country");
    [delete.finish(), insert.finish()]
}

/// Folds a scan's observations into `hosts`: first and last sighting widen, the state follows
/// the newest sighting (a scan finished late does not overwrite a newer one).
pub(crate) fn hosts_statement(dialect: &Dialect, scan: ScanId) -> Sql {
    let (least, greatest) = (dialect.least, dialect.greatest);
    // Every SET expression reads the row as it was before the update.
    let newer = "excluded.last_seen >= hosts.last_seen";
    let follow = |column: &str| {
        format!("{column} = CASE WHEN {newer} THEN excluded.{column} ELSE hosts.{column} END")
    };
    let mut b = Builder::new(dialect);
    b.push(
        "INSERT INTO hosts (ip, port, first_seen, last_seen, last_scan_id, status, \
         exchange_family, exchange_build, exchange_version_name, exchange_support) \
         SELECT ip, port, observed_at, observed_at, scan_id, status, exchange_family, \
         exchange_build, exchange_version_name, exchange_support \
         FROM observations WHERE scan_id = ",
    )
    .bind(Bind::Int(scan.0))
    .push(&format!(
        " ON CONFLICT (ip, port) DO UPDATE SET \
         first_seen = {least}(hosts.first_seen, excluded.first_seen), \
         last_seen = {greatest}(hosts.last_seen, excluded.last_seen), {}, {}, {}, {}, {}, {}",
        follow("last_scan_id"),
        follow("status"),
        follow("exchange_family"),
        follow("exchange_build"),
        follow("exchange_version_name"),
        follow("exchange_support"),
    ));
    b.finish()
}

/// One page of a scan's recognised servers: `select` (the backend's observation SELECT,
/// with `o` the observations alias) narrowed to the scan, the filter and the cursor, by row
/// id. Fetches one row more than `limit` to tell whether another page follows.
pub(crate) fn servers_page(
    dialect: &Dialect,
    select: &str,
    scan: ScanId,
    filter: &CensusFilter,
    after: Option<ServerCursor>,
    limit: u32,
) -> Sql {
    let mut b = Builder::new(dialect);
    b.push(select)
        .push(" WHERE o.scan_id = ")
        .bind(Bind::Int(scan.0))
        .push(" AND o.exchange_family IS NOT NULL AND o.id > ")
        .bind(Bind::Int(after.map_or(0, |c| c.0)));
    // The observation columns under the names the census filter uses; NULL reads as the
    // census's "unknown" value.
    let mut clause = |column: &str, value: String| {
        b.push(&format!(" AND {column} = ")).bind(Bind::Text(value));
    };
    if let Some(f) = filter.family {
        clause("o.exchange_family", f.as_str().to_string());
    }
    if let Some(cu) = &filter.cu {
        clause("COALESCE(o.exchange_cu, '')", cu.clone());
    }
    if let Some(v) = &filter.version {
        clause("o.exchange_version_name", v.clone());
    }
    if let Some(s) = filter.support {
        clause("o.exchange_support", s.as_str().to_string());
    }
    if let Some(p) = filter.patch {
        clause(
            "COALESCE(o.exchange_patch, 'unknown')",
            p.as_str().to_string(),
        );
    }
    if let Some(sector) = &filter.sector {
        clause("COALESCE(o.sector, '')", sector.clone());
    }
    if let Some(organisation) = &filter.organisation {
        clause("COALESCE(o.organisation, '')", organisation.clone());
    }
    if let Some(asn) = &filter.asn {
        clause("COALESCE(CAST(o.asn AS TEXT), '')", asn.clone());
    }
    if let Some(country) = &filter.country {
        clause("COALESCE(o.country, '')", country.clone());
    }
    b.push(" ORDER BY o.id LIMIT ")
        .bind(Bind::Int(i64::from(limit) + 1));
    b.finish()
}

/// Splits the rows of [`servers_page`] (ids and observations, at most `limit + 1`) into a page.
pub(crate) fn page_from_rows(
    mut rows: Vec<(i64, surveyor_model::Observation)>,
    limit: u32,
) -> ServersPage {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last().map(|(id, _)| ServerCursor(*id))
    } else {
        None
    };
    ServersPage {
        servers: rows.into_iter().map(|(_, o)| o).collect(),
        next,
    }
}

fn push_filter(b: &mut Builder<'_>, prefix: &str, filter: &CensusFilter) {
    let mut clause = |column: &str, value: String| {
        b.push(&format!(" AND {prefix}{column} = "))
            .bind(Bind::Text(value));
    };
    if let Some(f) = filter.family {
        clause("family", f.as_str().to_string());
    }
    if let Some(cu) = &filter.cu {
        clause("cu", cu.clone());
    }
    if let Some(v) = &filter.version {
        clause("version_name", v.clone());
    }
    if let Some(s) = filter.support {
        clause("support", s.as_str().to_string());
    }
    if let Some(p) = filter.patch {
        clause("patch", p.as_str().to_string());
    }
    if let Some(sector) = &filter.sector {
        clause("sector", sector.clone());
    }
    if let Some(organisation) = &filter.organisation {
        clause("organisation", organisation.clone());
    }
    if let Some(asn) = &filter.asn {
        clause("asn", asn.clone());
    }
    if let Some(country) = &filter.country {
        clause("country", country.clone());
    }
}

fn dims_list(prefix: &str, group_by: &[Dimension]) -> String {
    group_by
        .iter()
        .map(|d| format!("{prefix}{}", d.column()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a query must count the scan's observations: the aggregates lack organisations.
pub(crate) fn needs_observations(group_by: &[Dimension], filter: &CensusFilter) -> bool {
    group_by.contains(&Dimension::Organisation) || filter.needs_observations()
}

/// Counts one scan's servers by `group_by`: from its stored aggregates when `finished`, else
/// live from its observations. Columns: the dimensions in order, then `servers`.
pub(crate) fn statistics(
    dialect: &Dialect,
    scan: ScanId,
    finished: bool,
    group_by: &[Dimension],
    filter: &CensusFilter,
) -> Sql {
    let mut b = Builder::new(dialect);
    let dims = dims_list("c.", group_by);
    b.push("SELECT ");
    if !dims.is_empty() {
        b.push(&dims).push(", ");
    }
    b.push("CAST(COALESCE(SUM(c.servers), 0) AS BIGINT) AS servers FROM ");
    if finished {
        b.push(
            "(SELECT family, cu, version_name, support, patch, sector, asn, country, servers \
             FROM census_rollup WHERE scan_id = ",
        )
        .bind(Bind::Int(scan.0))
        .push(")");
    } else {
        live_source(&mut b, scan);
    }
    b.push(" c WHERE 1 = 1");
    push_filter(&mut b, "c.", filter);
    if !dims.is_empty() {
        b.push(&format!(" GROUP BY {dims} ORDER BY {dims}"));
    }
    b.finish()
}

/// Counts every finished scan's servers by `group_by` (each scan in its default judgement),
/// oldest scan first. A scan with no
/// matching server gives one row with NULL dimensions and 0 servers. Columns: `scan_id`,
/// the dimensions, `servers`.
pub(crate) fn trend(
    dialect: &Dialect,
    group_by: &[Dimension],
    filter: &CensusFilter,
    which: crate::Judgements,
) -> Sql {
    let judgements = match which {
        crate::Judgements::Newest => DEFAULT_JUDGEMENT,
        crate::Judgements::Original => "s.judged_from IS NULL",
    };
    let mut b = Builder::new(dialect);
    let dims = dims_list("r.", group_by);
    let with_dims = if dims.is_empty() {
        String::new()
    } else {
        format!(", {dims}")
    };
    b.push(&format!(
        "SELECT s.id AS scan_id{with_dims}, CAST(COALESCE(SUM(r.servers), 0) AS BIGINT) AS servers \
         FROM scans s LEFT JOIN census_rollup r ON r.scan_id = s.id"
    ));
    push_filter(&mut b, "r.", filter);
    b.push(&format!(
        " WHERE s.finished_at IS NOT NULL AND {judgements} \
         GROUP BY s.id, s.finished_at{with_dims} ORDER BY s.finished_at, s.id{with_dims}"
    ));
    b.finish()
}

/// Decodes the dimension columns of one result row into a group.
pub(crate) fn group_from_texts(
    group_by: &[Dimension],
    values: Vec<Option<String>>,
    servers: i64,
) -> Result<CensusGroup, crate::StoreError> {
    let corrupt = |what: &str| crate::StoreError::corrupt(format!("census {what}"));
    let mut g = CensusGroup {
        servers: u64::try_from(servers).map_err(|_| corrupt("count"))?,
        ..CensusGroup::default()
    };
    for (dim, value) in group_by.iter().zip(values) {
        // NULL: a trend row of a scan with no matching server.
        let Some(value) = value else { continue };
        match dim {
            Dimension::Family => {
                g.family = Some(value.parse::<Family>().map_err(|_| corrupt("family"))?)
            }
            Dimension::Cu => g.cu = Some(value),
            Dimension::Version => g.version = Some(value),
            Dimension::Support => {
                g.support = Some(Support::parse(&value).ok_or_else(|| corrupt("support"))?)
            }
            Dimension::Patch => {
                g.patch = Some(PatchBand::parse(&value).ok_or_else(|| corrupt("patch band"))?)
            }
            Dimension::Sector => g.sector = Some(value),
            Dimension::Organisation => g.organisation = Some(value),
            Dimension::Asn => g.asn = Some(value),
            Dimension::Country => g.country = Some(value),
        }
    }
    Ok(g)
}

/// A trend row of scan `id` with the scan's finish time and as-of date from `scans`.
pub(crate) fn trend_point(
    scans: &[crate::ScanRecord],
    id: ScanId,
    group: CensusGroup,
) -> Result<TrendPoint, crate::StoreError> {
    let scan = scans
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| crate::StoreError::corrupt(format!("trend row of scan {id}")))?;
    let finished_at = scan
        .finished_at
        .ok_or_else(|| crate::StoreError::corrupt(format!("trend row of unfinished scan {id}")))?;
    Ok(TrendPoint {
        scan: id,
        finished_at,
        as_of: scan.as_of,
        group,
    })
}

/// The scans a policy prunes, from all scans newest first: finished, not yet pruned, not the
/// newest finished scan, and outside what the policy keeps. No policy prunes nothing. A
/// re-judgement goes with the scan whose observations it holds: policies count scans, not
/// judgements of them.
pub(crate) fn scans_to_prune(
    scans: &[crate::ScanRecord],
    policy: &PrunePolicy,
) -> Vec<crate::ScanRecord> {
    if policy.keep_scans.is_none() && policy.keep_since.is_none() {
        return Vec::new();
    }
    let mut sources: Vec<_> = scans
        .iter()
        .filter(|s| s.finished_at.is_some() && s.judged_from.is_none())
        .collect();
    sources.sort_by_key(|s| std::cmp::Reverse((s.finished_at, s.id.0)));
    let doomed: Vec<ScanId> = sources
        .into_iter()
        .enumerate()
        .filter(|(rank, s)| {
            let keep_by_count = policy.keep_scans.is_some_and(|n| *rank < n.max(1));
            let keep_by_age = policy
                .keep_since
                .is_some_and(|since| s.finished_at.is_some_and(|f| f >= since));
            *rank > 0 && !keep_by_count && !keep_by_age
        })
        .map(|(_, s)| s.id)
        .collect();
    scans
        .iter()
        .filter(|s| {
            s.finished_at.is_some() && s.pruned_at.is_none() && doomed.contains(&s.source())
        })
        .cloned()
        .collect()
}

/// The SQL condition (on `scans s`) of a scan a census that names no scan may read: not
/// replaced by a newer judgement of its observations, and not a projection.
pub(crate) const DEFAULT_JUDGEMENT: &str = "s.superseded_by IS NULL AND s.projection = false";

/// What finishing a scan must know of its judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JudgementState {
    /// The source of a re-judgement.
    pub judged_from: Option<ScanId>,
    pub projection: bool,
}

/// The statements that store a scan's census: its aggregates, then (unless it is a
/// projection, which says what would be, not what was seen) the hosts table.
pub(crate) fn census_statements(
    dialect: &Dialect,
    scan: ScanId,
    judgement: &JudgementState,
) -> Vec<Sql> {
    let [delete, insert] = rollup_statements(dialect, scan);
    let mut statements = vec![delete, insert];
    if !judgement.projection {
        statements.push(hosts_statement(dialect, scan));
    }
    statements
}

/// For a finished re-judgement that is not a projection: marks its source and every other
/// judgement of the source (projections aside) superseded by it.
pub(crate) fn supersede_statement(
    dialect: &Dialect,
    scan: ScanId,
    judgement: &JudgementState,
) -> Option<Sql> {
    let source = judgement.judged_from.filter(|_| !judgement.projection)?;
    let mut b = Builder::new(dialect);
    b.push("UPDATE scans SET superseded_by = ")
        .bind(Bind::Int(scan.0))
        .push(" WHERE (id = ")
        .bind(Bind::Int(source.0))
        .push(" OR judged_from = ")
        .bind(Bind::Int(source.0))
        .push(") AND id <> ")
        .bind(Bind::Int(scan.0))
        .push(" AND projection = false");
    Some(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: Dialect = Dialect {
        placeholder: |n| format!("${n}"),
        least: "LEAST",
        greatest: "GREATEST",
    };

    #[test]
    fn dimensions_parse_by_name_and_refuse_others() {
        for d in Dimension::ALL {
            assert_eq!(d.as_str().parse::<Dimension>(), Ok(d));
        }
        let err = "sector; DROP TABLE scans".parse::<Dimension>().unwrap_err();
        assert!(err.contains("unknown dimension"), "{err}");
    }

    #[test]
    fn filters_are_bound_never_spliced() {
        let filter = CensusFilter {
            version: Some("x' OR '1'='1".into()),
            support: Some(Support::Unsupported),
            ..CensusFilter::default()
        };
        let sql = statistics(&PG, ScanId(7), true, &[Dimension::Family], &filter);
        assert!(!sql.text.contains("OR '1'"), "{}", sql.text);
        assert_eq!(
            sql.binds,
            vec![
                Bind::Int(7),
                Bind::Text("x' OR '1'='1".into()),
                Bind::Text("unsupported".into())
            ]
        );
        assert!(sql.text.contains("$3"), "{}", sql.text);
    }
}
