//! Reads the Exchange build table and draws installed builds for simulated hosts.
//!
//! The test-bed parses the CSV with its own code on purpose: it must share no parsing with
//! the scanner, so a bug in the scanner's table handling cannot hide behind the same bug here.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::TestbedError;

/// The build table shared with the knowledge base crate, read as plain data.
const BUILD_TABLE: &str = include_str!("../../surveyor-kb/data/exchange-builds.csv");

/// Share (in percent) of picks that come from the family's newest CU; the rest is uniform
/// over every row of the family, so both current and stale builds show up in a fleet.
const NEWEST_CU_PERCENT: u32 = 60;

/// An Exchange product family as the census reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    Ex2007,
    Ex2010,
    Ex2013,
    Ex2016,
    Ex2019,
    Se,
}

impl Family {
    /// The last day of Microsoft support, from Microsoft's lifecycle pages as the shared
    /// research notes (§3) give them; kept here, apart from the scanner's knowledge base, so
    /// that the truth checks the scanner rather than repeating it. SE has no fixed end.
    pub(crate) fn supported_until(self) -> Option<&'static str> {
        match self {
            Family::Ex2007 => Some("2017-04-11"),
            Family::Ex2010 => Some("2020-10-13"),
            Family::Ex2013 => Some("2023-04-11"),
            Family::Ex2016 | Family::Ex2019 => Some("2025-10-14"),
            Family::Se => None,
        }
    }

    pub(crate) const ALL: [Family; 6] = [
        Family::Ex2007,
        Family::Ex2010,
        Family::Ex2013,
        Family::Ex2016,
        Family::Ex2019,
        Family::Se,
    ];

    /// The label used in [`crate::TruthExchange::family`].
    pub(crate) fn label(self) -> &'static str {
        match self {
            Family::Ex2007 => "2007",
            Family::Ex2010 => "2010",
            Family::Ex2013 => "2013",
            Family::Ex2016 => "2016",
            Family::Ex2019 => "2019",
            Family::Se => "SE",
        }
    }

    fn from_product(product: &str) -> Option<Family> {
        match product {
            "Exchange Server 2007" => Some(Family::Ex2007),
            "Exchange Server 2010" => Some(Family::Ex2010),
            "Exchange Server 2013" => Some(Family::Ex2013),
            "Exchange Server 2016" => Some(Family::Ex2016),
            "Exchange Server 2019" => Some(Family::Ex2019),
            "Exchange Server SE" => Some(Family::Se),
            _ => None,
        }
    }
}

/// One usable row of the build table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildRow {
    pub(crate) family: Family,
    pub(crate) product: String,
    pub(crate) version_name: String,
    /// The build exactly as written in the CSV.
    pub(crate) build: String,
    pub(crate) parts: [u32; 4],
}

impl BuildRow {
    /// `a.b.c`: the CU level, which is all a 2013+ logon page shows.
    pub(crate) fn cu(&self) -> String {
        let [a, b, c, _] = self.parts;
        format!("{a}.{b}.{c}")
    }
}

/// The build table split by family, with the newest CU's rows marked.
#[derive(Debug, Clone)]
pub(crate) struct BuildTable {
    families: Vec<(Family, Vec<BuildRow>, Vec<BuildRow>)>,
}

impl BuildTable {
    /// Parses the compiled-in tables.
    pub(crate) fn load() -> Result<BuildTable, TestbedError> {
        BuildTable::from_rows(parse_rows(BUILD_TABLE)?)
    }

    #[cfg(test)]
    fn parse(text: &str) -> Result<BuildTable, TestbedError> {
        BuildTable::from_rows(parse_rows(text)?)
    }

    fn from_rows(rows: Vec<BuildRow>) -> Result<BuildTable, TestbedError> {
        let mut families = Vec::new();
        for family in Family::ALL {
            let all: Vec<BuildRow> = rows
                .iter()
                .filter(|r| r.family == family)
                .cloned()
                .collect();
            let Some(newest) = all.iter().map(|r| cu_key(r.parts)).max() else {
                return Err(TestbedError::BadBuildTable {
                    reason: format!("no usable rows for Exchange {}", family.label()),
                });
            };
            let newest_cu: Vec<BuildRow> = all
                .iter()
                .filter(|r| cu_key(r.parts) == newest)
                .cloned()
                .collect();
            families.push((family, all, newest_cu));
        }
        Ok(BuildTable { families })
    }

    /// Draws the installed build for a host of `family`.
    pub(crate) fn pick(&self, family: Family, rng: &mut ChaCha8Rng) -> &BuildRow {
        let (_, all, newest_cu) = self
            .families
            .iter()
            .find(|(f, _, _)| *f == family)
            .expect("parse() keeps a non-empty entry for every family");
        let pool = if rng.gen_range(0..100) < NEWEST_CU_PERCENT {
            newest_cu
        } else {
            all
        };
        &pool[rng.gen_range(0..pool.len())]
    }
}

/// The CU a build belongs to. For 2010 this is the update rollup, which also moves the third
/// component; that still makes "newest CU" mean "newest patch level".
fn cu_key(parts: [u32; 4]) -> [u32; 3] {
    [parts[0], parts[1], parts[2]]
}

/// Accepts exactly four dot-separated decimal integers.
fn parse_build(text: &str) -> Option<[u32; 4]> {
    let mut parts = [0u32; 4];
    let mut pieces = text.split('.');
    for slot in &mut parts {
        let piece = pieces.next()?;
        if piece.is_empty() || !piece.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = piece.parse().ok()?;
    }
    pieces.next().is_none().then_some(parts)
}

/// The usable rows of one CSV text with the build table's columns.
fn parse_rows(text: &str) -> Result<Vec<BuildRow>, TestbedError> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(bad_table)?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| TestbedError::BadBuildTable {
                reason: format!("missing column {name}"),
            })
    };
    let (product_col, name_col, build_col) = (
        column("product")?,
        column("version_name")?,
        column("build")?,
    );

    let mut rows: Vec<BuildRow> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(bad_table)?;
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        // Rows of products the census does not model (or future ones) are skipped.
        let Some(family) = Family::from_product(field(product_col)) else {
            continue;
        };
        // The table may carry placeholder builds; a host cannot run one of those.
        let Some(parts) = parse_build(field(build_col)) else {
            continue;
        };
        rows.push(BuildRow {
            family,
            product: field(product_col).to_owned(),
            version_name: field(name_col).to_owned(),
            build: field(build_col).to_owned(),
            parts,
        });
    }

    Ok(rows)
}

fn bad_table(error: csv::Error) -> TestbedError {
    TestbedError::BadBuildTable {
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn parse_build_accepts_only_four_integers() {
        assert_eq!(parse_build("15.1.2507.61"), Some([15, 1, 2507, 61]));
        assert_eq!(parse_build("15.1.2507"), None);
        assert_eq!(parse_build("15.1.2507.61.1"), None);
        assert_eq!(parse_build("15.1.x.61"), None);
        assert_eq!(parse_build("15..2507.61"), None);
        assert_eq!(parse_build("+15.1.2507.61"), None);
    }

    #[test]
    fn table_has_every_family_and_skips_bad_rows() {
        let text = "product,version_name,build,release_date,source\n\
            Exchange Server 2010,SP3,14.3.123.4,2013-02-12,x\n\
            Exchange Server 2013,CU23,15.0.1497.2,2019-06-18,x\n\
            Exchange Server 2013,CU?,15.0.tbd,2019-06-18,x\n\
            Exchange Server 2016,CU23,15.1.2507.6,2022-04-20,x\n\
            Exchange Server 2019,CU15,15.2.1748.10,2025-02-10,x\n\
            Exchange Server SE,RTM,15.2.2562.17,2025-07-01,x\n\
            Exchange Server 2007,SP3,8.3.83.6,2010-06-20,x\n";
        let table = BuildTable::parse(text).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20 {
            assert_eq!(table.pick(Family::Ex2013, &mut rng).build, "15.0.1497.2");
        }
    }

    #[test]
    fn table_without_a_family_is_rejected() {
        let text = "product,version_name,build,release_date,source\n\
            Exchange Server 2016,CU23,15.1.2507.6,2022-04-20,x\n";
        assert!(matches!(
            BuildTable::parse(text),
            Err(TestbedError::BadBuildTable { .. })
        ));
    }

    #[test]
    fn real_table_loads() {
        let table = BuildTable::load().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let se = table.pick(Family::Se, &mut rng);
        assert_eq!(se.cu(), "15.2.2562");
    }
}
