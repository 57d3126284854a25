//! `surveyor census create|status|pause|resume|cancel` and `surveyor worker`: flags into a
//! [`CensusRequest`] and a [`WorkerConfig`], `surveyor_run::census` does the work, and its
//! results and [`WorkerEvent`]s are printed here (docs/scaling.md).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use surveyor_kb::KnowledgeBase;
use surveyor_run::census::{self, NewCensus, WorkerConfig, WorkerEvent};
use surveyor_run::spec::{defaults, Probing};
use surveyor_run::CensusRequest;
use surveyor_scan::targets::InputFormat;
use surveyor_scan::PortSpec;
use surveyor_store::{Control, Store};
use time::Date;

use crate::{DbArg, ProbeArgs};

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
    #[arg(long, default_value = "auto")]
    input_format: InputFormat,
    /// Never scan these prefixes (one per line); stored with the job.
    #[arg(long, value_name = "FILE")]
    blocklist_file: Option<PathBuf>,
    /// Scan only inside these prefixes (one per line); stored with the job.
    #[arg(long, value_name = "FILE")]
    allowlist_file: Option<PathBuf>,
    /// Ports to probe, as `surveyor scan --ports`.
    #[arg(long, default_value = defaults::PORTS, value_delimiter = ',')]
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
    // Rates are over the whole census, split evenly across the workers holding leases; with
    // `--discovery syn` each worker sends SYNs at its share of --rate (docs/scaling.md).
    #[command(flatten)]
    probe: ProbeArgs,
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
    #[arg(long, default_value = "auto", value_parser = surveyor_run::request::parse_concurrency)]
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
    #[arg(long, value_name = "S", default_value_t = defaults::STORE_RETRY)]
    store_retry: f64,
    /// Prefix-to-AS data, as `surveyor scan --asn-table` (each worker reads its own copy).
    #[arg(long, value_name = "FILE")]
    asn_table: Option<PathBuf>,
    /// Address-to-country data, as `surveyor scan --country-table`.
    #[arg(long, value_name = "FILE")]
    country_table: Option<PathBuf>,
}

/// Runs a `surveyor census` command.
pub(crate) async fn run(command: CensusCommand, kb_dir: Option<&Path>) -> Result<()> {
    let store = open_postgres(command.db()).await?;
    let jobs = store.jobs.clone();
    let control = |name: String, order| async move {
        match jobs.control(&name, order).await? {
            None => bail!("no census named {name:?}"),
            Some(state) => {
                eprintln!("surveyor census: {name:?} is {}", state.as_str());
                Ok(())
            }
        }
    };
    match command {
        CensusCommand::Create(args) => create(&store, *args, &*crate::kb::load(kb_dir)?).await,
        CensusCommand::Status { name, format, db } => {
            status(&store, name.as_deref(), &format, &db.db).await
        }
        CensusCommand::Pause { name, .. } => control(name, Control::Pause).await,
        CensusCommand::Resume { name, .. } => control(name, Control::Resume).await,
        CensusCommand::Cancel { name, .. } => control(name, Control::Cancel).await,
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
    let probing = Probing::new(&args.probe.args())?;
    let blocklist = match &args.blocklist_file {
        Some(path) => crate::read_cidr_file(path)?,
        None => Vec::new(),
    };
    let allowlist = match &args.allowlist_file {
        Some(path) => Some(crate::read_cidr_file(path)?),
        None => None,
    };
    let request = CensusRequest {
        targets: args.targets,
        targets_file: args.targets_file,
        input_format: args.input_format,
        ports: args.ports,
        allow_loopback: args.allow_loopback,
        blocklist,
        allowlist,
        as_of: args.as_of.unwrap_or_else(crate::today),
        probing,
    };
    let census = NewCensus {
        name: args.name,
        shards: args.shards,
        spec: request.spec()?,
    };
    let created = census::create(store, census, kb).await?;
    eprintln!(
        "surveyor census: {:?} created: scan {}, {} shards over {} targets; start workers \
         with `surveyor worker --db …`",
        created.name, created.scan, created.shards, created.targets
    );
    println!(
        "{}",
        serde_json::json!({
            "census": created.name,
            "scan": created.scan.0,
            "shards": created.shards,
            "targets": created.targets.to_string(),
        })
    );
    Ok(())
}

async fn status(store: &Store, name: Option<&str>, format: &str, url: &str) -> Result<()> {
    let jobs = match name {
        Some(name) => match store.jobs.job(name).await? {
            Some(job) => vec![job],
            None => bail!(
                "no census named {name:?} in {}",
                surveyor_store::redact_url(url)
            ),
        },
        None => store.jobs.jobs().await?,
    };
    let now = store.jobs.now().await?;
    let mut all = Vec::with_capacity(jobs.len());
    for job in jobs {
        all.push(census::job_status(store, job, name.is_some(), now).await?);
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
        println!("no census in {}", surveyor_store::redact_url(url));
    }
    for s in &all {
        print!("{}", s.text(now));
    }
    Ok(())
}

/// Runs `surveyor worker`: claims, scans and completes shards until no work is left (or,
/// with `--wait`, until stopped).
pub(crate) async fn worker(args: WorkerArgs, kb: Arc<KnowledgeBase>) -> Result<()> {
    let store = open_postgres(&args.db.db).await?;
    let owner = args.id.clone().unwrap_or_else(default_owner);
    if owner.is_empty() || owner.len() > 200 {
        bail!("--id must be between 1 and 200 characters");
    }
    let (lease, heartbeat, poll) =
        surveyor_run::request::worker_timing(args.lease, args.heartbeat, args.poll)?;
    if let Some(name) = &args.name {
        if store.jobs.job(name).await?.is_none() {
            bail!(
                "no census named {name:?} in {}",
                surveyor_store::redact_url(&args.db.db)
            );
        }
    }
    let opt_out = args
        .opt_out_file
        .as_deref()
        .map(crate::opt_out)
        .transpose()?;
    let mut out = crate::output(args.output.as_deref())?;
    let config = WorkerConfig {
        owner: owner.clone(),
        census: args.name.clone(),
        lease,
        heartbeat,
        poll,
        wait: args.wait,
        concurrency: args.concurrency,
        fit_window: crate::fit_open_files,
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
        kb,
    };
    eprintln!("surveyor worker {owner}: looking for census shards");
    let events: census::Events = Arc::new(print_event);
    census::run_worker(store, config, &mut *out, crate::shutdown_token(), events).await?;
    Ok(())
}

/// One line of the worker's event stream on stdout: JSON, for operators' tools and tests.
fn print_event(event: WorkerEvent) {
    let mut stdout = std::io::stdout().lock();
    if let Ok(line) = serde_json::to_string(&event) {
        let _ = writeln!(stdout, "{line}");
    }
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
