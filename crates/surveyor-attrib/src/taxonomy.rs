//! The sector taxonomy as `surveyor registry sectors` prints it: a table for people, JSON for
//! programs.

use serde_json::{json, Value};

use crate::sector_table;

/// Every sector with its label, NIS2 annex and sectors, KRITIS sectors and source.
pub fn taxonomy_json() -> Value {
    let rows: Vec<Value> = sector_table()
        .iter()
        .map(|info| {
            let nis2 = info
                .nis2
                .as_ref()
                .map(|n| json!({ "annex": n.annex.as_str(), "sectors": n.sectors }));
            json!({
                "sector": info.sector.as_str(),
                "label": info.label,
                "nis2": nis2,
                "kritis": info.kritis,
                "source": info.source,
            })
        })
        .collect();
    Value::Array(rows)
}

/// One fixed-width line per sector: name, label, NIS2 annex and sectors, KRITIS sectors.
pub fn taxonomy_table() -> String {
    let mut out = format!(
        "{:<18} {:<34} {:<44} {}\n",
        "sector", "label", "NIS2", "KRITIS"
    );
    for info in sector_table() {
        let nis2 = info.nis2.as_ref().map_or("not covered".to_string(), |n| {
            format!("Annex {}: {}", n.annex.as_str(), n.sectors.join(", "))
        });
        let kritis = if info.kritis.is_empty() {
            "none".to_string()
        } else {
            info.kritis.join(", ")
        };
        out.push_str(&format!(
            "{:<18} {:<34} {:<44} {}\n",
            info.sector.as_str(),
            info.label,
            nis2,
            kritis
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_json_list_every_sector_once() {
        let table = taxonomy_table();
        let json = taxonomy_json();
        let rows = json.as_array().unwrap();
        assert_eq!(table.lines().count(), rows.len() + 1);
        assert_eq!(rows.len(), sector_table().len());
        assert!(table.starts_with("sector             label "));
        for (line, row) in table.lines().skip(1).zip(rows) {
            let sector = row["sector"].as_str().unwrap();
            assert!(line.starts_with(&format!("{sector:<18} ")), "{line}");
            match row["nis2"]["annex"].as_str() {
                Some(annex) => assert!(line.contains(&format!("Annex {annex}: "))),
                None => assert!(line.contains("not covered")),
            }
        }
    }
}
