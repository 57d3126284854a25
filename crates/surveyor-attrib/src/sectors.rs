//! What each [`Sector`] is in the EU's NIS2 and Germany's KRITIS taxonomies, from the
//! compiled-in `data/sectors.csv` (with the source of every mapping).

use std::sync::LazyLock;

use surveyor_model::Sector;

/// Sectors of high criticality, Directive (EU) 2022/2555 Annex I, in the Annex's order.
pub const NIS2_ANNEX_I: [&str; 11] = [
    "Energy",
    "Transport",
    "Banking",
    "Financial market infrastructures",
    "Health",
    "Drinking water",
    "Waste water",
    "Digital infrastructure",
    "ICT service management (business-to-business)",
    "Public administration",
    "Space",
];

/// Other critical sectors, Directive (EU) 2022/2555 Annex II, in the Annex's order.
pub const NIS2_ANNEX_II: [&str; 7] = [
    "Postal and courier services",
    "Waste management",
    "Manufacture, production and distribution of chemicals",
    "Production, processing and distribution of food",
    "Manufacturing",
    "Digital providers",
    "Research",
];

/// KRITIS sectors: the eight of the BSI-KritisV (BSIG) and the two only the Bund-Länder
/// sector list names (Staat und Verwaltung, Medien und Kultur).
pub const KRITIS_SECTORS: [&str; 10] = [
    "Energie",
    "Wasser",
    "Ernährung",
    "Informationstechnik und Telekommunikation",
    "Gesundheit",
    "Finanz- und Versicherungswesen",
    "Transport und Verkehr",
    "Siedlungsabfallentsorgung",
    "Staat und Verwaltung",
    "Medien und Kultur",
];

const TABLE_CSV: &str = include_str!("../data/sectors.csv");

static TABLE: LazyLock<Vec<SectorInfo>> = LazyLock::new(|| {
    // The file is part of the source and a test parses it, so this cannot fail at run time.
    parse_table(TABLE_CSV).expect("data/sectors.csv is valid (tested)")
});

/// One row of `data/sectors.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectorInfo {
    pub sector: Sector,
    /// English label for reports (`Hospitals`).
    pub label: String,
    /// The NIS2 annex and its sector names; `None` where NIS2 lists no such sector.
    pub nis2: Option<Nis2>,
    /// KRITIS sector names; empty where KRITIS has none.
    pub kritis: Vec<String>,
    /// Where the mapping comes from, with article and annex numbers.
    pub source: String,
}

/// A sector's place in NIS2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nis2 {
    pub annex: Nis2Annex,
    /// Sector names exactly as the Annex gives them (`Drinking water`).
    pub sectors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Nis2Annex {
    /// Sectors of high criticality.
    I,
    /// Other critical sectors.
    II,
}

impl Nis2Annex {
    pub fn as_str(self) -> &'static str {
        match self {
            Nis2Annex::I => "I",
            Nis2Annex::II => "II",
        }
    }
}

/// The taxonomy row of `sector`.
pub fn sector_info(sector: Sector) -> &'static SectorInfo {
    let index = Sector::ALL
        .iter()
        .position(|&s| s == sector)
        .expect("Sector::ALL lists every sector");
    &TABLE[index]
}

/// Every row, in [`Sector::ALL`] order.
pub fn sector_table() -> &'static [SectorInfo] {
    &TABLE
}

/// Parses the table and checks it: one row per sector, names as the annexes and KRITIS
/// lists give them. The result is in [`Sector::ALL`] order.
fn parse_table(text: &str) -> Result<Vec<SectorInfo>, String> {
    const COLUMNS: [&str; 6] = [
        "sector",
        "label",
        "nis2_annex",
        "nis2_sector",
        "kritis_sector",
        "source",
    ];
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| e.to_string())?;
    if header.iter().ne(COLUMNS) {
        return Err(format!("header is not {}", COLUMNS.join(",")));
    }
    let mut rows: Vec<Option<SectorInfo>> = vec![None; Sector::ALL.len()];
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        let sector: Sector = field(0).parse().map_err(|e| format!("line {line}: {e}"))?;
        let names = |cell: &str| -> Vec<String> {
            if cell == "none" {
                Vec::new()
            } else {
                cell.split(';').map(|s| s.trim().to_owned()).collect()
            }
        };
        let nis2_sectors = names(field(3));
        let nis2 = match field(2) {
            "none" if nis2_sectors.is_empty() => None,
            "I" | "II" if !nis2_sectors.is_empty() => {
                let (annex, listed) = if field(2) == "I" {
                    (Nis2Annex::I, &NIS2_ANNEX_I[..])
                } else {
                    (Nis2Annex::II, &NIS2_ANNEX_II[..])
                };
                if let Some(bad) = nis2_sectors.iter().find(|s| !listed.contains(&s.as_str())) {
                    return Err(format!(
                        "line {line}: {bad:?} is not a sector of NIS2 Annex {}",
                        annex.as_str()
                    ));
                }
                Some(Nis2 {
                    annex,
                    sectors: nis2_sectors,
                })
            }
            other => {
                return Err(format!(
                    "line {line}: annex {other:?} does not fit sectors {:?}",
                    field(3)
                ))
            }
        };
        let kritis = names(field(4));
        if let Some(bad) = kritis
            .iter()
            .find(|s| !KRITIS_SECTORS.contains(&s.as_str()))
        {
            return Err(format!("line {line}: {bad:?} is not a KRITIS sector"));
        }
        if field(1).is_empty() || field(5).is_empty() {
            return Err(format!("line {line}: label and source must not be empty"));
        }
        let slot = &mut rows[Sector::ALL.iter().position(|&s| s == sector).unwrap_or(0)];
        if slot.is_some() {
            return Err(format!("line {line}: second row for {sector}"));
        }
        *slot = Some(SectorInfo {
            sector,
            label: field(1).to_owned(),
            nis2,
            kritis,
            source: field(5).to_owned(),
        });
    }
    rows.into_iter()
        .zip(Sector::ALL)
        .map(|(row, sector)| row.ok_or_else(|| format!("no row for {sector}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sector_has_exactly_one_row_and_the_file_parses() {
        let table = parse_table(TABLE_CSV).unwrap();
        assert_eq!(table.len(), Sector::ALL.len());
        for sector in Sector::ALL {
            assert_eq!(sector_info(sector).sector, sector);
        }
        // One data row per sector, no more.
        assert_eq!(TABLE_CSV.lines().count(), 1 + Sector::ALL.len());
    }

    #[test]
    fn mappings_follow_the_annexes() {
        let hospital = sector_info(Sector::Hospital);
        assert_eq!(
            hospital.nis2,
            Some(Nis2 {
                annex: Nis2Annex::I,
                sectors: vec!["Health".to_owned()]
            })
        );
        assert_eq!(hospital.kritis, ["Gesundheit"]);
        assert!(hospital.source.contains("Annex I, sector 5 Health"));
        assert_eq!(
            sector_info(Sector::Manufacturing)
                .nis2
                .as_ref()
                .map(|n| n.annex),
            Some(Nis2Annex::II)
        );
        assert_eq!(sector_info(Sector::LawFirm).nis2, None);
        assert!(sector_info(Sector::LawFirm).kritis.is_empty());
        assert_eq!(
            sector_info(Sector::MunicipalUtility).kritis,
            ["Energie", "Wasser"]
        );
        assert_eq!(
            sector_info(Sector::Municipality).kritis,
            ["Staat und Verwaltung"]
        );
    }

    #[test]
    fn bad_tables_are_refused() {
        let header = "sector,label,nis2_annex,nis2_sector,kritis_sector,source\n";
        let check = |row: &str, expected: &str| {
            let err = parse_table(&format!("{header}{row}\n")).unwrap_err();
            assert_eq!(err, expected);
        };
        check(
            "hospital,H,I,Healthcare,none,s",
            "line 2: \"Healthcare\" is not a sector of NIS2 Annex I",
        );
        check(
            "hospital,H,II,Health,none,s",
            "line 2: \"Health\" is not a sector of NIS2 Annex II",
        );
        check(
            "hospital,H,none,Health,none,s",
            "line 2: annex \"none\" does not fit sectors \"Health\"",
        );
        check(
            "hospital,H,I,Health,Krankenhaus,s",
            "line 2: \"Krankenhaus\" is not a KRITIS sector",
        );
        check(
            "hospitals,H,I,Health,none,s",
            "line 2: unknown sector \"hospitals\"",
        );
        check(
            "hospital,H,I,Health,none,s\nhospital,H,I,Health,none,s",
            "line 3: second row for hospital",
        );
        check("hospital,H,I,Health,none,s", "no row for medical-practice");
        assert_eq!(
            parse_table("a,b\n").unwrap_err(),
            "header is not sector,label,nis2_annex,nis2_sector,kritis_sector,source"
        );
    }
}
