//! `surveyor census create|status|pause|resume|cancel` and `surveyor worker`: a census split
//! into shards in PostgreSQL, scanned by any number of workers on any machines.
//!
//! A job records the scan's parameters once; every worker rebuilds the same target space
//! from them and scans one shard at a time through the same pipeline as `surveyor scan`,
//! into the job's one scan. The lease protocol lives in the store (`CensusJobStore`); this
//! file is the glue: flags into parameters, a heartbeat task beside each shard's scan, and
//! the rate budget split across the workers that hold leases.

use std::io::Write;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use surveyor_kb::KnowledgeBase;
use surveyor_scan::targets::{self, Entry, InputFormat, OptOut};
use surveyor_scan::{
    Exclusions, Frontier, Order, PortSpec, ProbePlan, RateLimits, Target, TargetSpace,
};
use surveyor_store::{
    Beat, CensusJob, Claim, Completion, Control, JobState, NewCensusJob, NewScan, ShardLease,
    ShardProgress, ShardRecord, ShardState, Store,
};
use time::{Date, OffsetDateTime};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{run_scan, Checkpoint, Durability, OutputFormat, ScanJob};
use crate::{DbArg, EngineArgs};

/// The version of [`JobParams`]; a worker refuses parameters of another.
const PARAMS_VERSION: u32 = 1;

#[derive(Subcommand)]
pub(crate) enum CensusCommand {
    /// Record a census job in PostgreSQL: its scan parameters and K shards for workers.
    Create(Box<CreateArgs>),
    /// Progress per shard (state, worker, targets done, lease) and an ETA.
    Status {
        #[command(flatten)]
        db: DbArg,
        /// Only this census (default: a summary line per census).
        #[arg(long)]
        name: Option<String>,
        /// `table` for people, `json` for programs.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Stop handing out shards; workers holding one save their checkpoint and release it at
    /// their next heartbeat.
    Pause {
        #[command(flatten)]
        db: DbArg,
        name: String,
    },
    /// Hand out a paused census's shards again; they continue from their checkpoints.
    Resume {
        #[command(flatten)]
        db: DbArg,
        name: String,
    },
    /// Stop a census for good; its scan stays unfinished (reports ignore it).
    Cancel {
        #[command(flatten)]
        db: DbArg,
        name: String,
    },
}

impl CensusCommand {
    pub(crate) fn db(&self) -> &str {
        match self {
            CensusCommand::Create(args) => &args.db.db,
            CensusCommand::Status { db, .. }
            | CensusCommand::Pause { db, .. }
            | CensusCommand::Resume { db, .. }
            | CensusCommand::Cancel { db, .. } => &db.db,
        }
    }
}

#[derive(Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    db: DbArg,
    /// A name for the census, unique in the database (e.g. `de-2026-11`).
    #[arg(long)]
    name: String,
    /// Addresses or CIDR prefixes, comma separated or repeated.
    #[arg(long, value_delimiter = ',')]
    targets: Vec<String>,
    /// Read more targets from a file (`-` for stdin); they are stored with the job, so
    /// workers need no copy.
    #[arg(long, value_name = "FILE|-")]
    targets_file: Option<String>,
    /// Format of --targets-file (as `surveyor scan`).
    #[arg(long, default_value = "auto", value_parser = crate::parse_input_format)]
    input_format: InputFormat,
    /// Never scan these prefixes (one per line); stored with the job.
    #[arg(long, value_name = "FILE")]
    blocklist_file: Option<PathBuf>,
    /// Scan only inside these prefixes (one per line); stored with the job.
    #[arg(long, value_name = "FILE")]
    allowlist_file: Option<PathBuf>,
    /// Ports to probe, as `surveyor scan --ports`.
    #[arg(long, default_value = "443", value_delimiter = ',', value_parser = crate::parse_port_spec)]
    ports: Vec<PortSpec>,
    /// Allow 127.0.0.0/8 and ::1 (for test-beds).
    #[arg(long)]
    allow_loopback: bool,
    /// Judge support status as of this date (default: today, UTC); every shard uses it.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::parse_date)]
    as_of: Option<Date>,
    /// Split the target space into this many disjoint shards (more shards than workers
    /// lets a takeover or a new worker pick up work sooner).
    #[arg(long)]
    shards: u32,
    /// Seed of the pseudo-random scan order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// New targets per second over the whole census, split evenly across the workers
    /// holding leases (0: no limit).
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// New targets per second into one /24 (IPv6: /48) over the whole census, split as
    /// --rate (0: no limit).
    #[arg(long, default_value_t = 200)]
    network_rate: u32,
    /// New targets per second to one address over the whole census, split as --rate (0: no
    /// limit).
    #[arg(long, default_value_t = 10)]
    host_rate: u32,
    /// As `surveyor scan --network-backoff` (per worker): failures in a row, after a network
    /// answered, before its targets wait outside the window; silence alone never counts.
    #[arg(long, default_value_t = 8)]
    network_backoff: u32,
    /// Seconds allowed for a TCP connect (as `surveyor scan`).
    #[arg(long, default_value_t = 3.0)]
    connect_timeout: f64,
    /// Seconds allowed for everything done with one target.
    #[arg(long, default_value_t = 20.0)]
    target_timeout: f64,
    /// Do not start NTLM handshakes.
    #[arg(long)]
    no_ntlm: bool,
    /// `exchange` or `banner`, as `surveyor scan --plan`.
    #[arg(long, default_value = "exchange", value_parser = crate::parse_plan)]
    plan: ProbePlan,
    /// An URL where operators who see Surveyor in their logs learn who scans and how to opt out.
    #[arg(long)]
    info_url: Option<String>,
}

#[derive(Args)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    db: DbArg,
    /// This worker's name in leases (default `HOSTNAME-PID`); unique among live workers.
    #[arg(long)]
    id: Option<String>,
    /// Work only on this census.
    #[arg(long)]
    name: Option<String>,
    /// Seconds a lease lasts without a heartbeat; a worker that dies is taken over after it.
    #[arg(long, default_value_t = 60.0)]
    lease: f64,
    /// Seconds between heartbeats (default a quarter of --lease): each extends the lease,
    /// saves the checkpoint, and reads pause, cancel and the number of live workers.
    #[arg(long)]
    heartbeat: Option<f64>,
    /// Targets probed at once by this worker; `auto` as `surveyor scan --concurrency auto`
    /// (enough for the census's rate against silent addresses, within the open-file limit).
    #[arg(long, default_value = "auto", value_parser = crate::parse_concurrency)]
    concurrency: usize,
    /// Keep polling for work when none is left, instead of exiting.
    #[arg(long)]
    wait: bool,
    /// Seconds between polls while there is nothing to take (default: --heartbeat).
    #[arg(long)]
    poll: Option<f64>,
    /// Write the observations as JSON lines here (default: only the store).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Organisations that asked not to be scanned (one prefix per line); re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    opt_out_file: Option<PathBuf>,
    /// If the store fails, retry each batch for this many seconds before writing it to a
    /// spill file in the working directory.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    store_retry: f64,
    /// Prefix-to-AS data, as `surveyor scan --asn-table` (each worker reads its own copy).
    #[arg(long, value_name = "FILE")]
    asn_table: Option<PathBuf>,
    /// Address-to-country data, as `surveyor scan --country-table`.
    #[arg(long, value_name = "FILE")]
    country_table: Option<PathBuf>,
}

/// A census's scan parameters, as stored with the job: everything a worker on another
/// machine needs to rebuild the same target space, order and probe settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JobParams {
    version: u32,
    /// How the targets were given (the scan's description; checkpoints name it).
    description: String,
    /// Prefixes, in input order.
    nets: Vec<String>,
    /// Explicit targets (from a ZGrab2 CSV, say), in input order.
    explicit: Vec<ExplicitTarget>,
    /// `PORT/PROTOCOL`.
    ports: Vec<String>,
    allow_loopback: bool,
    blocklist: Vec<String>,
    allowlist: Option<Vec<String>>,
    as_of: String,
    seed: u64,
    rate: u32,
    network_rate: u32,
    host_rate: u32,
    network_backoff: u32,
    connect_timeout: f64,
    target_timeout: f64,
    ntlm: bool,
    plan: String,
    info_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ExplicitTarget {
    ip: IpAddr,
    /// 0: every port of the census.
    port: u16,
    domain: Option<String>,
}

/// A job's parameters rebuilt into what a scan needs.
struct Plan {
    space: TargetSpace,
    ports: Vec<u16>,
    exclusions: Exclusions,
    as_of: Date,
    engine: EngineArgs,
}

impl JobParams {
    fn entries(&self) -> Result<Vec<Entry>> {
        let mut entries = Vec::with_capacity(self.nets.len() + self.explicit.len());
        for net in &self.nets {
            entries.push(Entry::Net(net.parse().with_context(|| {
                format!("the census parameters hold {net:?}, which is not a prefix")
            })?));
        }
        for t in &self.explicit {
            entries.push(Entry::Target(Target {
                ip: t.ip,
                port: t.port,
                // TargetSpace gives every explicit target the scheme of its port.
                scheme: surveyor_model::Scheme::Https,
                domain: t.domain.as_deref().map(Arc::from),
            }));
        }
        Ok(entries)
    }

    fn port_specs(&self) -> Result<Vec<PortSpec>> {
        self.ports
            .iter()
            .map(|p| {
                PortSpec::parse(p).with_context(|| {
                    format!("the census parameters hold {p:?}, which is not a port")
                })
            })
            .collect()
    }

    fn nets(list: &[String]) -> Result<Vec<IpNet>> {
        list.iter()
            .map(|n| {
                n.parse()
                    .with_context(|| format!("the census parameters hold {n:?}, not a prefix"))
            })
            .collect()
    }

    /// The engine flags for one worker on one shard (rates are the census's totals; the
    /// worker's share is sent as live limits).
    fn engine(&self, shards: u32, shard: u32, concurrency: usize) -> EngineArgs {
        EngineArgs {
            concurrency,
            rate: self.rate,
            network_rate: self.network_rate,
            host_rate: self.host_rate,
            network_backoff: self.network_backoff,
            seed: self.seed,
            shards,
            shard,
            max_targets: None,
            max_runtime: None,
            connect_timeout: self.connect_timeout,
            target_timeout: self.target_timeout,
            no_ntlm: !self.ntlm,
            // Checked by `plan` before the engine flags are used.
            plan: crate::parse_plan(&self.plan).unwrap_or_default(),
            info_url: self.info_url.clone(),
        }
    }

    fn plan(&self, shards: u32, shard: u32, concurrency: usize) -> Result<Plan> {
        if self.version != PARAMS_VERSION {
            bail!(
                "the census was created by a Surveyor with parameters version {}, this one \
                 reads version {PARAMS_VERSION}: run the same version on every machine",
                self.version
            );
        }
        crate::parse_plan(&self.plan).map_err(anyhow::Error::msg)?;
        let port_specs = self.port_specs()?;
        let mut exclusions = Exclusions::builtin(self.allow_loopback)
            .with_blocklist(JobParams::nets(&self.blocklist)?);
        if let Some(allow) = &self.allowlist {
            exclusions = exclusions.with_allowlist(JobParams::nets(allow)?);
        }
        Ok(Plan {
            space: TargetSpace::new(self.entries()?, &port_specs),
            ports: port_specs.iter().map(|p| p.port).collect(),
            exclusions,
            as_of: crate::parse_date(&self.as_of).map_err(anyhow::Error::msg)?,
            engine: self.engine(shards, shard, concurrency),
        })
    }
}

/// Runs a `surveyor census` command.
pub(crate) async fn run(command: CensusCommand, kb_dir: Option<&Path>) -> Result<()> {
    let store = open_postgres(command.db()).await?;
    match command {
        CensusCommand::Create(args) => create(&store, *args, &*crate::kb::load(kb_dir)?).await,
        CensusCommand::Status { name, format, db } => {
            status(&store, name.as_deref(), &format, &db.db).await
        }
        CensusCommand::Pause { name, .. } => control(&store, &name, Control::Pause).await,
        CensusCommand::Resume { name, .. } => control(&store, &name, Control::Resume).await,
        CensusCommand::Cancel { name, .. } => control(&store, &name, Control::Cancel).await,
    }
}

/// Opens the store and refuses SQLite up front, before anything is read or written.
async fn open_postgres(url: &str) -> Result<Store> {
    let store = crate::open_store(url).await?;
    if store.backend != surveyor_store::Backend::Postgres {
        bail!(
            "the distributed census needs PostgreSQL: give --db postgres://… (SQLite is one \
             machine's file; use `surveyor scan` there)"
        );
    }
    Ok(store)
}

async fn create(store: &Store, args: CreateArgs, kb: &KnowledgeBase) -> Result<()> {
    if store.jobs.job(&args.name).await?.is_some() {
        bail!(
            "a census named {:?} exists already; choose another name",
            args.name
        );
    }
    if args.shards == 0 || args.shards > surveyor_store::MAX_SHARDS {
        bail!(
            "--shards must be between 1 and {}, got {}",
            surveyor_store::MAX_SHARDS,
            args.shards
        );
    }
    let exclusions = Exclusions::builtin(args.allow_loopback);
    let blocklist = match &args.blocklist_file {
        Some(path) => crate::read_cidr_file(path)?,
        None => Vec::new(),
    };
    let allowlist = match &args.allowlist_file {
        Some(path) => Some(crate::read_cidr_file(path)?),
        None => None,
    };
    let entries = collect_targets(&args, &exclusions)?;
    let port_specs = crate::check_ports(&args.ports)?;
    let description = describe(&args, &entries);
    let params = JobParams {
        version: PARAMS_VERSION,
        description: description.clone(),
        nets: entries
            .iter()
            .filter_map(|e| match e {
                Entry::Net(net) => Some(net.to_string()),
                Entry::Target(_) => None,
            })
            .collect(),
        explicit: entries
            .iter()
            .filter_map(|e| match e {
                Entry::Target(t) => Some(ExplicitTarget {
                    ip: t.ip,
                    port: t.port,
                    domain: t.domain.as_deref().map(str::to_string),
                }),
                Entry::Net(_) => None,
            })
            .collect(),
        ports: port_specs
            .iter()
            .map(|p| format!("{}/{}", p.port, p.scheme.as_str()))
            .collect(),
        allow_loopback: args.allow_loopback,
        blocklist: blocklist.iter().map(IpNet::to_string).collect(),
        allowlist: allowlist.map(|nets| nets.iter().map(IpNet::to_string).collect()),
        as_of: args.as_of.unwrap_or_else(crate::today).to_string(),
        seed: args.seed,
        rate: args.rate,
        network_rate: args.network_rate,
        host_rate: args.host_rate,
        network_backoff: args.network_backoff,
        connect_timeout: args.connect_timeout,
        target_timeout: args.target_timeout,
        ntlm: !args.no_ntlm,
        plan: match args.plan {
            ProbePlan::Exchange => "exchange",
            ProbePlan::Banner => "banner",
        }
        .to_string(),
        info_url: args.info_url.clone(),
    };
    // Everything a worker will do with the parameters is done once here, so that a mistake
    // is an error now rather than in every worker later.
    let plan = params.plan(args.shards, 0, 1)?;
    crate::scan_config(&plan.engine)?;
    let shard_targets: Vec<u64> = (0..args.shards)
        .map(|shard| {
            let order = Order {
                seed: args.seed,
                shards: args.shards,
                shard,
            };
            u64::try_from(plan.space.shard_len(order)).unwrap_or(u64::MAX)
        })
        .collect();
    let scan = store
        .scans
        .begin_scan(&NewScan {
            started_at: OffsetDateTime::now_utc(),
            as_of: plan.as_of,
            targets: description,
            ports: plan.ports.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            kb: Some(crate::pipeline::kb_ref(kb)),
        })
        .await
        .context("could not record the census's scan")?;
    let job = store
        .jobs
        .create_job(&NewCensusJob {
            name: args.name.clone(),
            scan,
            params: serde_json::to_value(&params)?,
            shard_targets,
        })
        .await?;
    eprintln!(
        "surveyor census: {:?} created: scan {}, {} shards over {} targets; start workers \
         with `surveyor worker --db …`",
        job.name,
        scan,
        job.shards,
        plan.space.len()
    );
    println!(
        "{}",
        serde_json::json!({
            "census": job.name,
            "scan": scan.0,
            "shards": job.shards,
            "targets": plan.space.len().to_string(),
        })
    );
    Ok(())
}

/// Reads and checks every target before anything is stored: one bad line stops the census.
fn collect_targets(args: &CreateArgs, exclusions: &Exclusions) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for (i, t) in args.targets.iter().enumerate() {
        let origin = format!("--targets value {}", i + 1);
        for net in targets::parse_target(t, &origin)? {
            exclusions.check(net, &origin)?;
            entries.push(Entry::Net(net));
        }
    }
    if let Some(file) = &args.targets_file {
        let (text, name) = crate::read_input(file)?;
        for entry in targets::parse_target_list(&text, &name, args.input_format)? {
            let net = match &entry {
                Entry::Net(net) => *net,
                Entry::Target(t) => IpNet::from(t.ip),
            };
            exclusions.check(net, &name)?;
            entries.push(entry);
        }
    }
    if entries.is_empty() {
        bail!("no targets: give --targets or --targets-file");
    }
    Ok(entries)
}

fn describe(args: &CreateArgs, entries: &[Entry]) -> String {
    let mut parts: Vec<String> = args.targets.clone();
    if let Some(file) = &args.targets_file {
        parts.push(format!(
            "{} ({} entries)",
            if file == "-" { "stdin" } else { file },
            entries.len() - args.targets.len().min(entries.len())
        ));
    }
    parts.join(" ")
}

async fn control(store: &Store, name: &str, order: Control) -> Result<()> {
    match store.jobs.control(name, order).await? {
        None => bail!("no census named {name:?}"),
        Some(state) => {
            eprintln!("surveyor census: {name:?} is {}", state.as_str());
            Ok(())
        }
    }
}

/// One census's progress, as `census status` shows it.
#[derive(Serialize)]
struct JobStatus {
    name: String,
    scan: i64,
    state: JobState,
    shards: u32,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    finished_at: Option<OffsetDateTime>,
    /// Not shown: the parameters may list every target of the census.
    #[serde(skip)]
    job: CensusJob,
    targets_total: u64,
    targets_done: u64,
    /// Targets per second of working time: since the first shard was first leased, less the
    /// time the census was paused.
    rate: Option<f64>,
    eta_seconds: Option<f64>,
    observations: u64,
    shards_by_state: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    shard_list: Option<Vec<ShardRecord>>,
}

/// Targets per second of working time: since `started` (the first lease), less the pauses, so
/// that a census resumed after a long pause shows the rate it runs at.
fn observed_rate(
    done: u64,
    started: Option<OffsetDateTime>,
    now: OffsetDateTime,
    job: &CensusJob,
) -> Option<f64> {
    let started = started?;
    let elapsed = (now - started).as_seconds_f64();
    let mut paused = job.paused_seconds;
    if let Some(at) = job.paused_at {
        // A pause that began before the first lease counts from the first lease.
        paused += (now - at.max(started)).as_seconds_f64().max(0.0);
    }
    let working = elapsed - paused.min(elapsed);
    (working > 0.0 && done > 0).then(|| done as f64 / working)
}

async fn job_status(store: &Store, job: CensusJob, with_shards: bool) -> Result<JobStatus> {
    let shards = store.jobs.shards(job.id).await?;
    let now = store.jobs.now().await?;
    let total: u64 = shards.iter().map(|s| s.targets_total).sum();
    let done: u64 = shards
        .iter()
        .map(|s| match s.state {
            ShardState::Done => s.targets_total,
            _ => s.targets_done.min(s.targets_total),
        })
        .sum();
    let started = shards.iter().filter_map(|s| s.started_at).min();
    let rate = observed_rate(done, started, now, &job);
    let running = matches!(job.state, JobState::Running);
    let eta = rate
        .filter(|_| running)
        .map(|r| total.saturating_sub(done) as f64 / r);
    let count = |state: ShardState| shards.iter().filter(|s| s.state == state).count();
    let observations = store
        .scans
        .scan(job.scan)
        .await?
        .map_or(0, |s| s.observations);
    Ok(JobStatus {
        name: job.name.clone(),
        scan: job.scan.0,
        state: job.state,
        shards: job.shards,
        created_at: job.created_at,
        finished_at: job.finished_at,
        targets_total: total,
        targets_done: done,
        rate,
        eta_seconds: eta,
        observations,
        shards_by_state: serde_json::json!({
            "pending": count(ShardState::Pending),
            "leased": count(ShardState::Leased),
            "done": count(ShardState::Done),
        }),
        shard_list: with_shards.then_some(shards),
        job,
    })
}

async fn status(store: &Store, name: Option<&str>, format: &str, url: &str) -> Result<()> {
    let jobs = match name {
        Some(name) => match store.jobs.job(name).await? {
            Some(job) => vec![job],
            None => bail!("no census named {name:?} in {}", crate::redact(url)),
        },
        None => store.jobs.jobs().await?,
    };
    let now = store.jobs.now().await?;
    let mut all = Vec::with_capacity(jobs.len());
    for job in jobs {
        all.push(job_status(store, job, name.is_some()).await?);
    }
    if format == "json" {
        let doc = match name {
            Some(_) => serde_json::to_value(&all[0])?,
            None => serde_json::to_value(&all)?,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if all.is_empty() {
        println!("no census in {}", crate::redact(url));
    }
    for s in &all {
        print!("{}", render_status(s, now));
    }
    Ok(())
}

fn render_status(s: &JobStatus, now: OffsetDateTime) -> String {
    use std::fmt::Write as _;
    let percent = if s.targets_total == 0 {
        100.0
    } else {
        100.0 * s.targets_done as f64 / s.targets_total as f64
    };
    let mut out = format!(
        "census {} (scan {}): {}, {} shards, {} of {} targets ({percent:.1} %), {} observations",
        s.job.name,
        s.job.scan,
        s.job.state.as_str(),
        s.job.shards,
        s.targets_done,
        s.targets_total,
        s.observations
    );
    if let Some(rate) = s.rate {
        let _ = write!(out, ", {rate:.0} targets/s");
    }
    if let Some(eta) = s.eta_seconds {
        let _ = write!(out, ", ETA {}", human_duration(eta));
    }
    out.push('\n');
    if let Some(shards) = &s.shard_list {
        let _ = writeln!(
            out,
            "{:>6}  {:<8} {:<24} {:>23}  {:<16} {:>6}",
            "shard", "state", "worker", "done/total", "lease", "leases"
        );
        for shard in shards {
            let lease = match (shard.state, shard.lease_expires) {
                (ShardState::Leased, Some(t)) if t > now => {
                    format!("{} left", human_duration((t - now).as_seconds_f64()))
                }
                (ShardState::Leased, Some(_)) => "expired".to_string(),
                _ => "-".to_string(),
            };
            let _ = writeln!(
                out,
                "{:>6}  {:<8} {:<24} {:>23}  {:<16} {:>6}",
                shard.shard,
                shard.state.as_str(),
                shard.owner.as_deref().unwrap_or("-"),
                format!("{}/{}", shard.targets_done, shard.targets_total),
                lease,
                shard.leases
            );
        }
    }
    out
}

fn human_duration(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    match secs {
        0..=99 => format!("{secs} s"),
        100..=5999 => format!("{} min", secs.div_ceil(60)),
        _ => format!("{:.1} h", secs as f64 / 3600.0),
    }
}

/// Why a shard's scan stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Another worker holds the lease now.
    Lost,
    Paused,
    Cancelled,
    /// This worker was asked to stop (SIGTERM, Ctrl-C).
    Shutdown,
}

/// Runs `surveyor worker`: claims, scans and completes shards until no work is left (or,
/// with `--wait`, until stopped).
pub(crate) async fn worker(args: WorkerArgs, kb: Arc<KnowledgeBase>) -> Result<()> {
    let store = open_postgres(&args.db.db).await?;
    let owner = args.id.clone().unwrap_or_else(default_owner);
    if owner.is_empty() || owner.len() > 200 {
        bail!("--id must be between 1 and 200 characters");
    }
    let lease = crate::secs("lease", args.lease)?;
    let heartbeat = match args.heartbeat {
        Some(v) => crate::secs("heartbeat", v)?,
        None => lease / 4,
    };
    if heartbeat >= lease {
        bail!("--heartbeat must be shorter than --lease, or the lease lapses between beats");
    }
    let poll = match args.poll {
        Some(v) => crate::secs("poll", v)?,
        None => heartbeat,
    };
    if args.concurrency > 100_000 {
        bail!(
            "--concurrency must be at most 100000, got {}",
            args.concurrency
        );
    }
    if let Some(name) = &args.name {
        if store.jobs.job(name).await?.is_none() {
            bail!("no census named {name:?} in {}", crate::redact(&args.db.db));
        }
    }
    let opt_out = match &args.opt_out_file {
        Some(path) => {
            let opt_out = OptOut::default();
            opt_out.replace(crate::read_cidr_file(path)?);
            crate::reload_opt_out_on_sighup(path.clone(), opt_out.clone());
            Some(opt_out)
        }
        None => None,
    };
    let mut out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("could not create {}", path.display()))?,
        )),
        None => Box::new(std::io::sink()),
    };
    let shutdown = crate::shutdown_token();
    let ctx = WorkerContext {
        kb,
        store: store.clone(),
        owner: owner.clone(),
        lease,
        heartbeat,
        concurrency: args.concurrency,
        opt_out,
        retry_for: crate::secs("store-retry", args.store_retry)?,
        asns: args
            .asn_table
            .as_deref()
            .map(crate::asn_table)
            .transpose()?,
        countries: args
            .country_table
            .as_deref()
            .map(crate::country_table)
            .transpose()?,
    };
    eprintln!("surveyor worker {owner}: looking for census shards");
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        match store
            .jobs
            .claim(&owner, lease, args.name.as_deref())
            .await?
        {
            Claim::Shard(claimed) => {
                if run_shard(&ctx, claimed, &mut *out, &shutdown).await? == Some(Stop::Shutdown) {
                    break;
                }
            }
            Claim::Finish(job) => finish(&ctx, &job).await?,
            Claim::Idle { outstanding } => {
                if outstanding == 0 && !args.wait {
                    event(
                        serde_json::json!({"event": "exit", "worker": owner, "reason": "no work left"}),
                    );
                    break;
                }
                // Shards held by live leases may still come free if their worker dies.
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    () = shutdown.cancelled() => break,
                }
            }
        }
    }
    out.flush().context("could not write output")?;
    Ok(())
}

struct WorkerContext {
    /// Must be the knowledge base the census was created with.
    kb: Arc<KnowledgeBase>,
    store: Store,
    owner: String,
    lease: Duration,
    heartbeat: Duration,
    concurrency: usize,
    opt_out: Option<OptOut>,
    retry_for: Duration,
    asns: Option<Arc<surveyor_attrib::AsnTable>>,
    countries: Option<Arc<surveyor_attrib::CountryTable>>,
}

/// This worker's share of a census-wide rate: an even split over the live leases, at least
/// 1 per second. With more workers than the rate, the sum exceeds it (`docs/scaling.md`).
fn share(total: u32, live_leases: u32) -> Option<NonZeroU32> {
    if total == 0 {
        return None;
    }
    NonZeroU32::new((total / live_leases.max(1)).max(1))
}

fn limits(params: &JobParams, live_leases: u32) -> RateLimits {
    RateLimits {
        rate: share(params.rate, live_leases),
        network_rate: share(params.network_rate, live_leases),
        host_rate: share(params.host_rate, live_leases),
    }
}

/// Scans one leased shard to its end, or until the lease is lost, the census is paused or
/// cancelled, or the worker is stopped; returns why it stopped early, if it did.
async fn run_shard(
    ctx: &WorkerContext,
    claimed: ShardLease,
    out: &mut (dyn Write + Send),
    shutdown: &CancellationToken,
) -> Result<Option<Stop>> {
    let key = claimed.key();
    let name = claimed.job.name.clone();
    let params: JobParams = serde_json::from_value(claimed.job.params.clone()).with_context(|| {
        format!("census {name:?} has parameters this Surveyor cannot read: run the same version on every machine")
    })?;
    let census_kb = ctx
        .store
        .scans
        .scan(claimed.job.scan)
        .await?
        .and_then(|s| s.kb);
    if let Some(census_kb) = census_kb.filter(|k| k.digest != ctx.kb.stamp.digest) {
        // The lease lapses and a worker with the right knowledge base takes the shard over.
        bail!(
            "census {name:?} is judged with knowledge base {} (newest release {}), this worker \
             has {}: start it with the census's --kb",
            &census_kb.digest[..12],
            census_kb.newest_release,
            ctx.kb.stamp
        );
    }
    let plan = params.plan(claimed.job.shards, claimed.shard, ctx.concurrency)?;
    let mut config = crate::scan_config(&plan.engine)?;
    let (limits_tx, limits_rx) = watch::channel(limits(&params, claimed.live_leases));
    config.live_limits = Some(limits_rx);
    let progress = config.progress.clone();
    let mut exclusions = plan.exclusions;
    if let Some(opt_out) = &ctx.opt_out {
        exclusions = exclusions.with_opt_out(opt_out.clone());
    }
    let order = crate::scan_order(&plan.engine);
    let mut job = ScanJob {
        space: plan.space,
        ports: plan.ports,
        order,
        exclusions,
        as_of: plan.as_of,
        config,
        description: params.description.clone(),
        format: OutputFormat::Jsonl,
        checkpoint: None,
        resume: None,
        durability: Durability {
            retry_for: ctx.retry_for,
            spill: Some(PathBuf::from(format!(
                "surveyor-spill-scan{}-shard{}-{}.jsonl",
                claimed.job.scan, claimed.shard, ctx.owner
            ))),
        },
        ptr: None,
        asns: ctx.asns.clone(),
        countries: ctx.countries.clone(),
        kb: ctx.kb.clone(),
        // Census workers connect; SYN mode for workers is not built yet (docs/scaling.md).
        discovery: crate::pipeline::Discovery::Connect,
        finish_scan: false,
    };
    let template = match &claimed.checkpoint {
        Some(value) => serde_json::from_value::<Checkpoint>(value.clone()).with_context(|| {
            format!(
                "census {name:?} shard {} has a checkpoint this Surveyor cannot read",
                key.shard
            )
        })?,
        None => Checkpoint::of(&job, claimed.job.scan, &Frontier::default()),
    };
    // The frontier is in place before the first heartbeat, which saves it.
    progress.resume_from(template.frontier_for(&job)?);
    job.resume = Some(template.clone());
    let resumed_from = claimed.targets_done;
    event(serde_json::json!({
        "event": "claimed", "worker": ctx.owner, "census": name, "shard": key.shard,
        "lease": claimed.leases, "resumed_from": resumed_from,
        "live_leases": claimed.live_leases, "rate": share(params.rate, claimed.live_leases),
    }));

    let cancel = shutdown.child_token();
    let stop = Arc::new(Mutex::new(None::<Stop>));
    let beating = CancellationToken::new();
    let beats = tokio::spawn(heartbeats(
        Heartbeats {
            store: ctx.store.clone(),
            key,
            owner: ctx.owner.clone(),
            lease: ctx.lease,
            every: ctx.heartbeat,
            template: template.clone(),
            progress: progress.clone(),
            params: params.clone(),
            limits: limits_tx,
            live_leases: claimed.live_leases,
            name: name.clone(),
        },
        cancel.clone(),
        stop.clone(),
        beating.clone(),
    ));
    let outcome = run_scan(job, &ctx.store, out, cancel.clone()).await;
    beating.cancel();
    let _ = beats.await;
    let outcome = outcome?;
    let saved = shard_progress(&template, &progress.frontier());
    let stopped = *stop.lock().unwrap_or_else(|e| e.into_inner());
    let stopped = stopped.or_else(|| {
        (outcome.stats.stopped.is_some() && shutdown.is_cancelled()).then_some(Stop::Shutdown)
    });
    if outcome.spilled > 0 {
        // The checkpoint counts spilled targets as done; they reach the store only when the
        // spill file is ingested, so the shard is left to expire rather than marked done.
        bail!(
            "census {name:?} shard {}: {} lines could not be stored and wait in the spill file; \
             load it with `surveyor ingest`",
            key.shard,
            outcome.spilled
        );
    }
    let store = &ctx.store;
    match stopped {
        Some(Stop::Lost) => {
            event(
                serde_json::json!({"event": "lost", "worker": ctx.owner, "census": name, "shard": key.shard}),
            );
        }
        Some(why @ (Stop::Paused | Stop::Cancelled | Stop::Shutdown)) => {
            let released = store.jobs.release(key, &ctx.owner, &saved).await?;
            event(serde_json::json!({
                "event": if released { "released" } else { "lost" }, "worker": ctx.owner,
                "census": name, "shard": key.shard, "targets_done": saved.targets_done,
                "why": format!("{why:?}").to_lowercase(),
            }));
        }
        None if outcome.stats.stopped.is_some() => {
            bail!(
                "the scan of census {name:?} shard {} stopped early",
                key.shard
            )
        }
        None => {
            let completion = store
                .jobs
                .complete(key, &ctx.owner, ctx.lease, &saved)
                .await?;
            event(serde_json::json!({
                "event": match completion { Completion::Lost => "lost", _ => "done" },
                "worker": ctx.owner, "census": name, "shard": key.shard,
                "targets_done": saved.targets_done, "last": completion == Completion::Last,
                // What this lease probed and skipped: with a resumed checkpoint, only the
                // positions it left pending and those past its frontier.
                "probed": outcome.stats.targets, "excluded": outcome.stats.excluded,
            }));
            if completion == Completion::Last {
                finish(ctx, &claimed.job).await?;
            }
        }
    }
    Ok(stopped)
}

/// What a shard's heartbeat task needs.
struct Heartbeats {
    store: Store,
    key: surveyor_store::ShardKey,
    owner: String,
    lease: Duration,
    every: Duration,
    template: Checkpoint,
    progress: Arc<surveyor_scan::ScanProgress>,
    params: JobParams,
    limits: watch::Sender<RateLimits>,
    live_leases: u32,
    name: String,
}

/// Every `every`: extends the lease and saves the checkpoint of what is stored. Stops the
/// scan (through `cancel`) when the lease is lost or the census paused or cancelled, and
/// re-splits the rate budget when the number of live leases changes.
async fn heartbeats(
    mut h: Heartbeats,
    cancel: CancellationToken,
    stop: Arc<Mutex<Option<Stop>>>,
    done: CancellationToken,
) {
    let set = |why: Stop| {
        *stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        cancel.cancel();
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(h.every) => {}
            () = done.cancelled() => return,
        }
        let saved = shard_progress(&h.template, &h.progress.frontier());
        match h
            .store
            .jobs
            .heartbeat(h.key, &h.owner, h.lease, &saved)
            .await
        {
            Ok(Beat::Lost) => return set(Stop::Lost),
            Ok(Beat::Held {
                job_state,
                live_leases,
            }) => match job_state {
                JobState::Paused => return set(Stop::Paused),
                JobState::Cancelled => return set(Stop::Cancelled),
                JobState::Running | JobState::Finishing | JobState::Finished => {
                    if live_leases != h.live_leases {
                        h.live_leases = live_leases;
                        let _ = h.limits.send(limits(&h.params, live_leases));
                        event(serde_json::json!({
                            "event": "rate", "worker": h.owner, "census": h.name,
                            "shard": h.key.shard, "live_leases": live_leases,
                            "rate": share(h.params.rate, live_leases),
                        }));
                    }
                }
            },
            // The scan goes on (its batches retry on their own); if the database stays away
            // past the lease, another worker takes over and the next beat says so.
            Err(error) => tracing::warn!(%error, shard = h.key.shard, "heartbeat failed"),
        }
    }
}

fn shard_progress(template: &Checkpoint, frontier: &Frontier) -> ShardProgress {
    let checkpoint = template.with_frontier(frontier);
    let walked = u64::try_from(frontier.next).unwrap_or(u64::MAX);
    ShardProgress {
        targets_done: walked.saturating_sub(frontier.pending.len() as u64),
        checkpoint: serde_json::to_value(&checkpoint).unwrap_or(serde_json::Value::Null),
    }
}

/// Marks the census's scan finished (its census aggregates computed once, for all shards)
/// and records that in the job.
async fn finish(ctx: &WorkerContext, job: &CensusJob) -> Result<()> {
    ctx.store
        .scans
        .finish_scan(job.scan, OffsetDateTime::now_utc())
        .await
        .with_context(|| format!("could not finish the scan of census {:?}", job.name))?;
    let recorded = ctx.store.jobs.finished(job.id, &ctx.owner).await?;
    event(serde_json::json!({
        "event": "finished", "worker": ctx.owner, "census": job.name, "scan": job.scan.0,
        // false: this worker's finish lease had run out and another finished it as well
        // (finishing twice recomputes the same aggregates).
        "recorded": recorded,
    }));
    Ok(())
}

/// One line of the worker's event stream on stdout: JSON, for operators' tools and tests.
fn event(value: serde_json::Value) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{value}");
    let _ = stdout.flush();
}

/// `HOSTNAME-PID`: unique among workers on one machine and across machines.
fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".to_string());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_observed_rate_leaves_out_the_pauses() {
        let now = time::macros::datetime!(2026-11-23 12:00 UTC);
        let minutes = |m: i64| now - time::Duration::minutes(m);
        let job = |paused_seconds: f64, paused_at: Option<OffsetDateTime>| CensusJob {
            id: 1,
            name: "x".into(),
            scan: surveyor_store::ScanId(1),
            state: JobState::Running,
            params: serde_json::Value::Null,
            shards: 1,
            created_at: minutes(60),
            finished_at: None,
            paused_at,
            paused_seconds,
        };
        // Started 10 minutes ago, 6,000 targets done: 10/s.
        let rate = |j: &CensusJob| observed_rate(6_000, Some(minutes(10)), now, j);
        assert_eq!(rate(&job(0.0, None)), Some(10.0));
        // Paused for 5 of them, then resumed: 20/s.
        assert_eq!(rate(&job(300.0, None)), Some(20.0));
        // Paused now, since 5 minutes: the same.
        assert_eq!(rate(&job(0.0, Some(minutes(5)))), Some(20.0));
        // Paused before the first lease: only the time since the lease counts.
        assert_eq!(rate(&job(0.0, Some(minutes(30)))), None);
        assert_eq!(
            observed_rate(0, Some(minutes(10)), now, &job(0.0, None)),
            None
        );
        assert_eq!(observed_rate(5, None, now, &job(0.0, None)), None);
    }

    #[test]
    fn the_rate_budget_is_split_evenly_and_never_to_zero() {
        assert_eq!(share(0, 3), None, "0 stays unlimited");
        assert_eq!(share(3000, 3).map(NonZeroU32::get), Some(1000));
        assert_eq!(share(3000, 0).map(NonZeroU32::get), Some(3000));
        assert_eq!(share(10, 4).map(NonZeroU32::get), Some(2));
        assert_eq!(share(2, 5).map(NonZeroU32::get), Some(1));
    }

    fn params() -> JobParams {
        JobParams {
            version: PARAMS_VERSION,
            description: "127.80.0.0/24 zgrab.csv (1 entries)".into(),
            nets: vec!["127.80.0.0/24".into()],
            explicit: vec![ExplicitTarget {
                ip: "127.81.0.7".parse().unwrap(),
                port: 0,
                domain: Some("mail.example.org".into()),
            }],
            ports: vec!["443/https".into(), "2525/smtp".into()],
            allow_loopback: true,
            blocklist: vec!["127.80.0.128/25".into()],
            allowlist: None,
            as_of: "2026-11-23".into(),
            seed: 5,
            rate: 3000,
            network_rate: 300,
            host_rate: 9,
            network_backoff: 8,
            connect_timeout: 5.0,
            target_timeout: 20.0,
            ntlm: true,
            plan: "exchange".into(),
            info_url: None,
        }
    }

    #[test]
    fn parameters_round_trip_through_json_into_the_same_space() {
        let p = params();
        let back: JobParams = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let plan = back.plan(4, 1, 64).unwrap();
        assert_eq!(plan.space.len(), 256 * 2 + 2);
        assert_eq!(plan.ports, vec![443, 2525]);
        assert!(!plan.exclusions.allows("127.80.0.200".parse().unwrap()));
        assert!(plan.exclusions.allows("127.80.0.20".parse().unwrap()));
        assert_eq!(
            (plan.engine.shards, plan.engine.shard, plan.engine.seed),
            (4, 1, 5)
        );
        let explicit = plan.space.get(plan.space.len() - 1);
        assert_eq!(explicit.domain.as_deref(), Some("mail.example.org"));
        assert_eq!(explicit.scheme, surveyor_model::Scheme::Smtp);
    }

    #[test]
    fn parameters_of_another_version_or_broken_are_refused() {
        let mut p = params();
        p.version = 2;
        assert!(format!("{:#}", p.plan(1, 0, 1).err().unwrap()).contains("same version"));
        let mut p = params();
        p.nets = vec!["not-a-prefix".into()];
        assert!(format!("{:#}", p.plan(1, 0, 1).err().unwrap()).contains("not-a-prefix"));
    }
}
