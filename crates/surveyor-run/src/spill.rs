//! Spill files: when the store keeps failing, a scan appends what it could not store to a
//! synced file of JSON lines, and `surveyor ingest` loads it later. A scan never drops what
//! it observed.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use surveyor_model::Observation;
use surveyor_store::{ScanId, Store};
use time::OffsetDateTime;

use crate::RunError;

/// Observations per transaction when a spill file is loaded, which is in memory already:
/// larger transactions write each index page once for more rows, which a scan's permuted
/// addresses need (docs/benchmarks.md: SQLite about twice as fast as with 500).
const INGEST_BATCH: usize = 5_000;

/// One line of a spill file: an observation of a scan, or the scan's end.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum SpillLine {
    Observation {
        scan: i64,
        observation: Box<Observation>,
    },
    Finished {
        scan: i64,
        #[serde(with = "time::serde::rfc3339")]
        finished_at: OffsetDateTime,
    },
}

/// Why a line is not a spill line.
#[derive(Debug, thiserror::Error)]
pub enum SpillLineError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("no scan id")]
    NoScan,
}

impl SpillLine {
    /// Parses one line, naming what is wrong with it (an untagged enum would not).
    pub fn parse(line: &str) -> Result<SpillLine, SpillLineError> {
        #[derive(Deserialize)]
        struct Finished {
            scan: i64,
            #[serde(with = "time::serde::rfc3339")]
            finished_at: OffsetDateTime,
        }
        let value: serde_json::Value = serde_json::from_str(line)?;
        let scan = value.get("scan").and_then(serde_json::Value::as_i64);
        match (scan, value.get("observation")) {
            (Some(scan), Some(observation)) => Ok(SpillLine::Observation {
                scan,
                observation: Box::new(Observation::deserialize(observation)?),
            }),
            (Some(_), None) => {
                let f: Finished = serde_json::from_value(value)?;
                Ok(SpillLine::Finished {
                    scan: f.scan,
                    finished_at: f.finished_at,
                })
            }
            (None, _) => Err(SpillLineError::NoScan),
        }
    }
}

/// Appends to a spill file, creating it on first use, and syncs each write to disk.
#[derive(Debug)]
pub(crate) struct Spill {
    pub(crate) path: PathBuf,
    pub(crate) lines: u64,
}

impl Spill {
    pub(crate) fn append(&mut self, lines: &[SpillLine]) -> Result<(), RunError> {
        let mut text = Vec::new();
        for line in lines {
            serde_json::to_writer(&mut text, line).map_err(RunError::output)?;
            text.push(b'\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(RunError::file("open the spill file", &self.path))?;
        file.write_all(&text)
            .and_then(|()| file.sync_data())
            .map_err(RunError::file("write the spill file", &self.path))?;
        self.lines += lines.len() as u64;
        Ok(())
    }
}

/// What `ingest` loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    pub observations: u64,
    /// Scans whose recorded end was applied.
    pub finished: u64,
}

/// Loads a spill file into the store: every line is checked first, so a damaged file stores
/// nothing; then observations go in batches (idempotent per scan, address and port, so a
/// file loaded twice stores everything once) and recorded ends finish their scans.
pub async fn ingest(store: &Store, path: &Path) -> Result<Ingested, RunError> {
    let text = std::fs::read_to_string(path).map_err(RunError::file("read", path))?;
    let mut observations: Vec<(i64, Vec<Observation>)> = Vec::new();
    let mut finished = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = SpillLine::parse(line).map_err(|e| RunError::Malformed {
            what: format!("{} line {}: not a spill line", path.display(), i + 1),
            source: Some(Box::new(e)),
        })?;
        match parsed {
            SpillLine::Observation { scan, observation } => match observations.last_mut() {
                Some((last, batch)) if *last == scan => batch.push(*observation),
                _ => observations.push((scan, vec![*observation])),
            },
            SpillLine::Finished { scan, finished_at } => finished.push((scan, finished_at)),
        }
    }
    let mut stored = 0;
    for (scan, all) in &observations {
        for batch in all.chunks(INGEST_BATCH) {
            store
                .scans
                .record(ScanId(*scan), batch)
                .await
                .map_err(RunError::store(format!(
                    "store observations of scan {scan}"
                )))?;
            stored += batch.len() as u64;
        }
    }
    for (scan, finished_at) in &finished {
        store
            .scans
            .finish_scan(ScanId(*scan), *finished_at)
            .await
            .map_err(RunError::store(format!("finish scan {scan}")))?;
    }
    Ok(Ingested {
        observations: stored,
        finished: finished.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_lines_are_appended_and_parse_back_naming_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = Spill {
            path: dir.path().join("spill.jsonl"),
            lines: 0,
        };
        let at = OffsetDateTime::UNIX_EPOCH;
        let end = |scan| SpillLine::Finished {
            scan,
            finished_at: at,
        };
        spill.append(&[end(4)]).unwrap();
        spill.append(&[end(5)]).unwrap();
        assert_eq!(spill.lines, 2);
        let text = std::fs::read_to_string(&spill.path).unwrap();
        let scans: Vec<i64> = text
            .lines()
            .map(|l| match SpillLine::parse(l).unwrap() {
                SpillLine::Finished { scan, finished_at } if finished_at == at => scan,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(scans, [4, 5]);
        assert!(matches!(
            SpillLine::parse(r#"{"observation": {}}"#),
            Err(SpillLineError::NoScan)
        ));
        assert!(SpillLine::parse("{").is_err());
    }
}
