//! Scans and censuses as the commands ask for them: target arguments, a targets file, lists,
//! ports, limits and the day, checked once (in the order `surveyor scan` and `census create`
//! have always checked them) into a [`ScanSpec`] and, for a scan, the job and stream that run
//! it. Files are read by the caller; a targets file streamed by a scan is read here.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use surveyor_kb::KnowledgeBase;
use surveyor_scan::targets::{self, Entry, InputFormat, OptOut};
use surveyor_scan::{Exclusions, Order, PortSpec};
use surveyor_store::Store;
use time::Date;
use tokio_util::sync::CancellationToken;

use crate::input::TargetStream;
use crate::spec::{
    check_ports, secs, DiscoveryMode, ExplicitTarget, Probing, ProbingArgs, RunSettings, SpecError,
};
use crate::{pipeline, Checkpoint, RunError, ScanJob, ScanOutcome, ScanSpec};

/// A scan as `surveyor scan` asks for it; its lists are already read.
pub struct ScanRequest {
    /// Addresses or prefixes, in the order given.
    pub targets: Vec<String>,
    /// More targets from this file (`-` for stdin), read as a stream after `targets`.
    pub targets_file: Option<String>,
    pub input_format: InputFormat,
    pub ports: Vec<PortSpec>,
    pub allow_loopback: bool,
    pub blocklist: Vec<IpNet>,
    pub allowlist: Option<Vec<IpNet>>,
    /// Organisations that asked not to be scanned; the list may change while the scan runs.
    pub opt_out: Option<OptOut>,
    pub probing: ProbingArgs,
    /// Probes in flight at once; 0: enough for the rate (`auto_concurrency`).
    pub concurrency: usize,
    pub shards: u32,
    pub shard: u32,
    pub max_targets: Option<u64>,
    /// Seconds.
    pub max_runtime: Option<f64>,
    /// With SYN discovery: the source address (default: the kernel's route).
    pub source_ip: Option<Ipv4Addr>,
    /// Continue the scan the checkpoint in this file describes.
    pub resume: Option<PathBuf>,
    /// The day to judge for; without it a resumed scan's own day, else `today`.
    pub as_of: Option<Date>,
    pub today: Date,
    /// Fits the probe window to what this machine allows (the binary's open-file limit).
    pub fit_window: fn(usize) -> usize,
}

/// A checked scan: its specification, the job that runs it (JSON lines, no checkpoint of
/// its own, the default store retry, no DNS, no AS or country table: see [`ScanJob::new`]),
/// and for a targets file the stream that feeds it.
pub struct PreparedScan {
    pub spec: ScanSpec,
    pub job: ScanJob,
    pub stream: Option<TargetStream>,
}

impl ScanRequest {
    /// Checks everything before anything is stored or sent: one bad target, list entry or
    /// setting stops the scan.
    pub fn prepare(self, kb: Arc<KnowledgeBase>) -> Result<PreparedScan, RunError> {
        let mut exclusions =
            Exclusions::builtin(self.allow_loopback).with_blocklist(self.blocklist.clone());
        if let Some(allow) = &self.allowlist {
            exclusions = exclusions.with_allowlist(allow.clone());
        }
        if let Some(opt_out) = &self.opt_out {
            exclusions = exclusions.with_opt_out(opt_out.clone());
        }
        let ports = check_ports(&self.ports)?;
        let mut entries = argument_entries(&self.targets, "argument", &exclusions)?;
        let probing = Probing::new(&self.probing)?;
        let syn = matches!(probing.discovery, DiscoveryMode::Syn { .. });
        let stream =
            match &self.targets_file {
                Some(_) if syn => {
                    return Err(RunError::Refused(
                        "--discovery syn sweeps the prefixes given as arguments; a --targets-file \
                     is read as a stream and its targets are probed with --discovery connect"
                            .into(),
                    ))
                }
                Some(file) => {
                    let first = std::mem::take(&mut entries);
                    Some(TargetStream::open(
                        file,
                        self.input_format,
                        first,
                        &ports,
                        &exclusions,
                    )?)
                }
                None if entries.is_empty() => return Err(RunError::Refused(
                    "no targets: give addresses or prefixes as arguments or with --targets-file"
                        .into(),
                )),
                None => None,
            };
        let (window, run, order) = self.run_settings(&probing)?;
        let resume = self.resume.as_deref().map(Checkpoint::read).transpose()?;
        let as_of = match (&resume, self.as_of) {
            // A resumed scan keeps the date its verdicts were judged on.
            (Some(c), None) => parse_date(&c.as_of)?,
            (_, Some(day)) => day,
            (None, None) => self.today,
        };
        let mut description = self.targets.clone();
        if let Some(stream) = &stream {
            description.push(match stream.checked {
                Some(c) => format!("{} ({} entries)", stream.name, c.entries),
                None => format!("{} (stream)", stream.name),
            });
        }
        let spec = ScanSpec {
            description: description.join(" "),
            nets: nets(&entries),
            explicit: Vec::new(),
            ports,
            allow_loopback: self.allow_loopback,
            blocklist: self.blocklist,
            allowlist: self.allowlist,
            as_of,
            probing,
        }
        .checked()?;
        if syn {
            surveyor_scan::syn::check_privileges()?;
        }
        let engine = spec.probing.engine(window, &run);
        let job = ScanJob {
            exclusions,
            resume,
            ..ScanJob::new(&spec, order, engine, kb)
        };
        Ok(PreparedScan { spec, job, stream })
    }

    /// The window (fitted to this machine), when to stop early and the shard.
    fn run_settings(&self, probing: &Probing) -> Result<(usize, RunSettings, Order), SpecError> {
        if self.shards == 0 || self.shard >= self.shards {
            return Err(SpecError::Invalid(format!(
                "--shard must be below --shards (got shard {} of {})",
                self.shard, self.shards
            )));
        }
        let max_runtime = match self.max_runtime {
            Some(v) if !(v.is_finite() && v > 0.0) => {
                return Err(SpecError::Invalid(
                    "--max-runtime must be a positive number of seconds".into(),
                ))
            }
            Some(v) => Some(Duration::from_secs_f64(v)),
            None => None,
        };
        let run = RunSettings {
            concurrency: self.concurrency,
            max_targets: self.max_targets,
            max_runtime,
            source_ip: self.source_ip,
        };
        let order = Order {
            seed: probing.seed,
            shards: self.shards,
            shard: self.shard,
        };
        let window = (self.fit_window)(probing.window(run.concurrency));
        Ok((window, run, order))
    }
}

impl PreparedScan {
    /// Targets this shard walks and targets in all, when known beforehand (a stream from a
    /// pipe is counted as it is read).
    pub fn targets(&self) -> Option<(u128, u128)> {
        let shard = pipeline::shard_total(&self.job, self.stream.as_ref())?;
        match &self.stream {
            None => Some((shard, self.job.space.len())),
            Some(stream) => stream.checked.map(|c| (shard, c.targets)),
        }
    }

    /// Runs the scan through the pipeline ([`crate::run_scan`], or
    /// [`crate::run_stream_scan`] for a targets file).
    pub async fn run(
        self,
        store: &Store,
        out: &mut (dyn std::io::Write + Send),
        cancel: CancellationToken,
    ) -> Result<ScanOutcome, RunError> {
        match self.stream {
            Some(stream) => crate::run_stream_scan(self.job, stream, store, out, cancel).await,
            None => crate::run_scan(self.job, store, out, cancel).await,
        }
    }
}

/// A census as `surveyor census create` asks for it; its lists are already read and its
/// probing checked.
pub struct CensusRequest {
    /// Addresses or prefixes, in the order given.
    pub targets: Vec<String>,
    /// More targets from this file (`-` for stdin), read whole; they are stored with the job.
    pub targets_file: Option<String>,
    pub input_format: InputFormat,
    pub ports: Vec<PortSpec>,
    pub allow_loopback: bool,
    pub blocklist: Vec<IpNet>,
    pub allowlist: Option<Vec<IpNet>>,
    pub as_of: Date,
    pub probing: Probing,
}

impl CensusRequest {
    /// The census's specification, every target checked against the built-in exclusions
    /// before anything is stored: one bad line stops the census. A file's explicit targets
    /// (a ZGrab2 CSV's) keep their port and name.
    pub fn spec(self) -> Result<ScanSpec, RunError> {
        let exclusions = Exclusions::builtin(self.allow_loopback);
        let mut entries = argument_entries(&self.targets, "--targets value", &exclusions)?;
        let mut description = self.targets.clone();
        if let Some(file) = &self.targets_file {
            let (text, name) = read_input(file)?;
            let before = entries.len();
            for entry in targets::parse_target_list(&text, &name, self.input_format)? {
                let net = match &entry {
                    Entry::Net(net) => *net,
                    Entry::Target(t) => IpNet::from(t.ip),
                };
                exclusions.check(net, &name)?;
                entries.push(entry);
            }
            // The file's own entries: an argument may be a range of several prefixes.
            description.push(format!("{name} ({} entries)", entries.len() - before));
        }
        if entries.is_empty() {
            return Err(RunError::Refused(
                "no targets: give --targets or --targets-file".into(),
            ));
        }
        let explicit = entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Net(_) => None,
                Entry::Target(t) => Some(ExplicitTarget {
                    ip: t.ip,
                    port: t.port,
                    domain: t.domain.as_deref().map(str::to_string),
                }),
            })
            .collect();
        Ok(ScanSpec {
            description: description.join(" "),
            nets: nets(&entries),
            explicit,
            ports: self.ports,
            allow_loopback: self.allow_loopback,
            blocklist: self.blocklist,
            allowlist: self.allowlist,
            as_of: self.as_of,
            probing: self.probing,
        }
        .checked()?)
    }
}

/// Probes in flight at once as given: a number from 1 to 100,000, or `auto` (0: enough for
/// the rate, `auto_concurrency`).
pub fn parse_concurrency(text: &str) -> Result<usize, String> {
    match text {
        "auto" => Ok(0),
        n => match n.parse::<usize>() {
            Ok(n) if (1..=100_000).contains(&n) => Ok(n),
            _ => Err("a number from 1 to 100000, or auto".to_string()),
        },
    }
}

/// A worker's lease, heartbeat and poll interval from seconds: the heartbeat (by default a
/// quarter of the lease) shorter than the lease, the poll interval by default the heartbeat.
pub fn worker_timing(
    lease: f64,
    heartbeat: Option<f64>,
    poll: Option<f64>,
) -> Result<(Duration, Duration, Duration), SpecError> {
    let lease = secs("lease", lease)?;
    let heartbeat = match heartbeat {
        Some(v) => secs("heartbeat", v)?,
        None => lease / 4,
    };
    if heartbeat >= lease {
        return Err(SpecError::Invalid(
            "--heartbeat must be shorter than --lease, or the lease lapses between beats".into(),
        ));
    }
    let poll = match poll {
        Some(v) => secs("poll", v)?,
        None => heartbeat,
    };
    Ok((lease, heartbeat, poll))
}

/// Targets given as arguments, each checked against `exclusions`; errors name the
/// `origin` and its 1-based number.
fn argument_entries(
    targets: &[String],
    origin: &str,
    exclusions: &Exclusions,
) -> Result<Vec<Entry>, RunError> {
    let mut entries = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let origin = format!("{origin} {}", i + 1);
        for net in targets::parse_target(t, &origin)? {
            exclusions.check(net, &origin)?;
            entries.push(Entry::Net(net));
        }
    }
    Ok(entries)
}

/// The prefixes among `entries`, in order.
fn nets(entries: &[Entry]) -> Vec<IpNet> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Net(net) => Some(*net),
            Entry::Target(_) => None,
        })
        .collect()
}

/// A whole targets file, or stdin for `-`, and how errors name it.
fn read_input(file: &str) -> Result<(String, String), RunError> {
    let path = Path::new(if file == "-" { "stdin" } else { file });
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    let text = text.map_err(RunError::file("read", path))?;
    Ok((text, path.display().to_string()))
}

fn parse_date(s: &str) -> Result<Date, RunError> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| RunError::Refused(format!("{s:?} is not a date of the form YYYY-MM-DD")))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use time::macros::date;

    use super::*;

    fn scan(targets: &[&str]) -> ScanRequest {
        ScanRequest {
            targets: targets.iter().map(|t| t.to_string()).collect(),
            targets_file: None,
            input_format: InputFormat::Auto,
            ports: vec![443.into()],
            allow_loopback: true,
            blocklist: Vec::new(),
            allowlist: None,
            opt_out: None,
            probing: ProbingArgs::default(),
            concurrency: 0,
            shards: 1,
            shard: 0,
            max_targets: None,
            max_runtime: None,
            source_ip: None,
            resume: None,
            as_of: None,
            today: date!(2026 - 03 - 01),
            fit_window: |window| window.min(1000),
        }
    }

    fn prepare(request: ScanRequest) -> Result<PreparedScan, String> {
        let kb = Arc::new(KnowledgeBase::builtin().clone());
        request.prepare(kb).map_err(|e| e.to_string())
    }

    fn error(request: ScanRequest) -> String {
        prepare(request).err().expect("the request is refused")
    }

    #[test]
    fn a_scan_of_arguments_is_checked_into_spec_and_job() {
        let scan = prepare(ScanRequest {
            shards: 4,
            shard: 1,
            ..scan(&["127.1.2.0/24", "127.3.0.7"])
        })
        .unwrap();
        assert_eq!(scan.spec.description, "127.1.2.0/24 127.3.0.7");
        assert_eq!(scan.spec.nets.len(), 2);
        assert_eq!(scan.spec.as_of, date!(2026 - 03 - 01));
        assert_eq!(scan.job.config.concurrency, 1000, "fitted to the machine");
        assert_eq!((scan.job.order.shards, scan.job.order.shard), (4, 1));
        assert_eq!(scan.targets(), Some((64, 257)), "shard 1 of 4");
        assert!(scan.stream.is_none());
    }

    #[test]
    fn a_bad_scan_request_says_what_to_change() {
        assert_eq!(
            error(scan(&[])),
            "no targets: give addresses or prefixes as arguments or with --targets-file"
        );
        assert!(error(ScanRequest {
            allow_loopback: false,
            ..scan(&["127.0.0.1"])
        })
        .starts_with("argument 1: 127.0.0.1/32 lies in"));
        assert_eq!(
            error(ScanRequest {
                shards: 2,
                shard: 2,
                ..scan(&["127.0.0.2"])
            }),
            "--shard must be below --shards (got shard 2 of 2)"
        );
        assert_eq!(
            error(ScanRequest {
                max_runtime: Some(0.0),
                ..scan(&["127.0.0.2"])
            }),
            "--max-runtime must be a positive number of seconds"
        );
        let syn = ProbingArgs {
            discovery: "syn".into(),
            ..ProbingArgs::default()
        };
        assert!(error(ScanRequest {
            targets_file: Some("-".into()),
            probing: syn,
            ..scan(&["127.1.2.0/24"])
        })
        .starts_with("--discovery syn sweeps the prefixes given as arguments"));
    }

    #[test]
    fn a_targets_file_is_a_stream_after_the_arguments() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "127.2.0.0/30\n127.5.0.1").unwrap();
        let name = file.path().display().to_string();
        let scan = prepare(ScanRequest {
            targets_file: Some(name.clone()),
            ..scan(&["127.9.0.9"])
        })
        .unwrap();
        assert_eq!(
            scan.spec.description,
            format!("127.9.0.9 {name} (2 entries)")
        );
        assert!(
            scan.spec.nets.is_empty(),
            "the stream holds the arguments too"
        );
        assert_eq!(scan.stream.as_ref().unwrap().first.len(), 1);
        assert_eq!(scan.targets(), Some((6, 6)));
    }

    #[test]
    fn a_resumed_scan_keeps_its_day() {
        let kb = Arc::new(KnowledgeBase::builtin().clone());
        let first = prepare(ScanRequest {
            as_of: Some(date!(2025 - 12 - 24)),
            ..scan(&["127.1.2.0/24"])
        })
        .unwrap();
        let checkpoint = Checkpoint::of(&first.job, surveyor_store::ScanId(3), &Default::default());
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), serde_json::to_string(&checkpoint).unwrap()).unwrap();
        let resumed = ScanRequest {
            resume: Some(file.path().to_path_buf()),
            ..scan(&["127.1.2.0/24"])
        }
        .prepare(kb)
        .unwrap();
        assert_eq!(resumed.spec.as_of, date!(2025 - 12 - 24));
        assert_eq!(resumed.job.resume.map(|c| c.scan), Some(3));
    }

    fn census(targets: &[&str], file: Option<&str>) -> Result<ScanSpec, String> {
        CensusRequest {
            targets: targets.iter().map(|t| t.to_string()).collect(),
            targets_file: file.map(str::to_string),
            input_format: InputFormat::Auto,
            ports: vec![443.into()],
            allow_loopback: true,
            blocklist: Vec::new(),
            allowlist: None,
            as_of: date!(2026 - 03 - 01),
            probing: Probing::new(&ProbingArgs::default()).unwrap(),
        }
        .spec()
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_census_counts_its_files_entries_whatever_the_arguments_are() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "127.52.0.1\n127.52.0.2\n127.52.0.3").unwrap();
        let name = file.path().display().to_string();
        // A range argument is several prefixes; the file still has three entries.
        let spec = census(&["127.51.0.1-127.51.0.6"], Some(&name)).unwrap();
        assert!(
            spec.description.ends_with(&format!("{name} (3 entries)")),
            "{}",
            spec.description
        );
    }

    #[test]
    fn a_census_keeps_a_files_explicit_targets() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "127.0.2.7,mail.example.org,org-1,443").unwrap();
        let name = file.path().display().to_string();
        let spec = census(&["127.51.0.0/24"], Some(&name)).unwrap();
        assert_eq!(
            spec.description,
            format!("127.51.0.0/24 {name} (1 entries)")
        );
        assert_eq!(spec.nets.len(), 1);
        assert_eq!(
            spec.explicit,
            [ExplicitTarget {
                ip: "127.0.2.7".parse().unwrap(),
                port: 443,
                domain: Some("mail.example.org".into()),
            }]
        );
        assert_eq!(
            census(&[], None).unwrap_err(),
            "no targets: give --targets or --targets-file"
        );
        assert!(census(&["nonsense"], None)
            .unwrap_err()
            .starts_with("--targets value 1: \"nonsense\""));
        assert!(census(&[], Some("/nonexistent/targets"))
            .unwrap_err()
            .starts_with("could not read /nonexistent/targets"));
    }

    #[test]
    fn concurrency_is_a_number_or_auto() {
        assert_eq!(parse_concurrency("auto"), Ok(0));
        assert_eq!(parse_concurrency("512"), Ok(512));
        assert!(parse_concurrency("0").is_err() && parse_concurrency("100001").is_err());
    }

    #[test]
    fn a_heartbeat_comes_well_within_its_lease() {
        let s = Duration::from_secs;
        assert_eq!(worker_timing(60.0, None, None), Ok((s(60), s(15), s(15))));
        assert_eq!(
            worker_timing(60.0, Some(10.0), Some(2.0)),
            Ok((s(60), s(10), s(2)))
        );
        assert!(worker_timing(10.0, Some(10.0), None).is_err());
        assert!(worker_timing(0.0, None, None).is_err());
    }
}
