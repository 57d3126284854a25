//! Checkpoints: where a scan stands, written so that `--resume` (or the next holder of a
//! census shard) continues it without repeating or skipping a target.

use std::path::Path;

use serde::{Deserialize, Serialize};
use surveyor_scan::Frontier;
use surveyor_store::ScanId;

use crate::pipeline::ScanJob;
use crate::RunError;

/// Where a scan stands. Positions are decimal strings: they can exceed what JSON numbers
/// carry exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub scan: i64,
    pub seed: u64,
    pub shards: u32,
    pub shard: u32,
    pub targets: String,
    pub ports: Vec<u16>,
    pub space_len: String,
    pub as_of: String,
    pub next: String,
    pub pending: Vec<String>,
}

impl Checkpoint {
    /// The checkpoint of `job` in scan `scan` at `frontier`.
    pub fn of(job: &ScanJob, scan: ScanId, frontier: &Frontier) -> Checkpoint {
        Checkpoint {
            version: 1,
            scan: scan.0,
            seed: job.order.seed,
            shards: job.order.shards,
            shard: job.order.shard,
            targets: job.description.clone(),
            ports: job.ports.clone(),
            space_len: job.space.len().to_string(),
            as_of: job.as_of.to_string(),
            next: frontier.next.to_string(),
            pending: frontier.pending.iter().map(u128::to_string).collect(),
        }
    }

    /// The same checkpoint at another frontier.
    pub fn with_frontier(&self, frontier: &Frontier) -> Checkpoint {
        Checkpoint {
            next: frontier.next.to_string(),
            pending: frontier.pending.iter().map(u128::to_string).collect(),
            ..self.clone()
        }
    }

    pub fn read(path: &Path) -> Result<Checkpoint, RunError> {
        let text = std::fs::read_to_string(path).map_err(RunError::file("read", path))?;
        serde_json::from_str(&text).map_err(|e| RunError::Malformed {
            what: format!("{} is not a Surveyor checkpoint", path.display()),
            source: Some(Box::new(e)),
        })
    }

    /// The frontier to continue from, after checking that the checkpoint belongs to `job`.
    pub fn frontier_for(&self, job: &ScanJob) -> Result<Frontier, RunError> {
        self.frontier_against(&Checkpoint::of(
            job,
            ScanId(self.scan),
            &Frontier::default(),
        ))
    }

    /// The frontier to continue from, after checking that the checkpoint matches `expected`
    /// (a fresh one of the job being resumed).
    pub(crate) fn frontier_against(&self, expected: &Checkpoint) -> Result<Frontier, RunError> {
        let same = self.version == 1
            && self.seed == expected.seed
            && self.shards == expected.shards
            && self.shard == expected.shard
            && self.targets == expected.targets
            && self.ports == expected.ports
            && self.space_len == expected.space_len;
        if !same {
            return Err(RunError::Refused(format!(
                "the checkpoint is for another scan (targets {:?}, ports {:?}, seed {}, shard {}/{}): \
                 resume with the same targets, ports, seed and shard",
                self.targets, self.ports, self.seed, self.shard, self.shards
            )));
        }
        let number = |s: &str| {
            s.parse::<u128>().map_err(|e| RunError::Malformed {
                what: format!("bad position {s:?} in the checkpoint"),
                source: Some(Box::new(e)),
            })
        };
        Ok(Frontier {
            next: number(&self.next)?,
            pending: self
                .pending
                .iter()
                .map(|p| number(p))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Written beside and renamed over, so a crash never leaves half a checkpoint.
    pub(crate) fn write(&self, path: &Path) -> Result<(), RunError> {
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_vec_pretty(self).map_err(RunError::output)?;
        std::fs::write(&tmp, text).map_err(RunError::file("write", &tmp))?;
        std::fs::rename(&tmp, path).map_err(RunError::file("replace", path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            version: 1,
            scan: 3,
            seed: 7,
            shards: 2,
            shard: 1,
            targets: "127.0.0.0/24".into(),
            ports: vec![443],
            space_len: "256".into(),
            as_of: "2026-11-23".into(),
            next: "0".into(),
            pending: Vec::new(),
        }
    }

    #[test]
    fn a_checkpoint_is_rewritten_whole_and_resumes_only_its_own_scan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scan.checkpoint");
        let frontier = Frontier {
            next: 1 << 100,
            pending: [5, 9].into(),
        };
        let c = checkpoint().with_frontier(&frontier);
        c.write(&path).unwrap();
        let back = Checkpoint::read(&path).unwrap();
        assert_eq!(back, c);
        assert!(!path.with_extension("tmp").exists());
        assert_eq!(back.frontier_against(&checkpoint()).unwrap(), frontier);
        let other = Checkpoint {
            seed: 8,
            ..checkpoint()
        };
        let refused = back.frontier_against(&other).unwrap_err().to_string();
        assert!(refused.contains("another scan"), "{refused}");
        std::fs::write(&path, "{}").unwrap();
        let broken = Checkpoint::read(&path).unwrap_err().to_string();
        assert!(broken.contains("is not a Surveyor checkpoint"), "{broken}");
    }
}
