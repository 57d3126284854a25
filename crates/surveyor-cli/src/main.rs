//! `surveyor`: the one binary. Reads argv and environment, installs tracing, binds listeners,
//! handles signals, and glues the libraries together.

mod census;
mod kb;
mod notify;
mod progress;
mod registry;
mod rejudge;

use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use ipnet::{IpNet, Ipv4Net};
use surveyor_run::spec::{defaults, ProbingArgs, RunSettings, ScanSpec, DEMO_WINDOW};
use surveyor_run::{run_scan, Durability, OutputFormat, ScanJob, ScanRequest};
use surveyor_scan::targets::{self, InputFormat, OptOut};
use surveyor_scan::{Order, PortSpec, StopReason};
use surveyor_store::{Dimension, ScanId, Store};
use time::{Date, OffsetDateTime};
use tokio_util::sync::CancellationToken;

/// The default embedded store, in the working directory.
const DEFAULT_DB: &str = "sqlite:surveyor.db";

#[derive(Parser)]
#[command(
    name = "surveyor",
    version,
    about = "A census of on-premises Microsoft Exchange servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Judge with the knowledge-base files in DIR (as `surveyor kb export` writes them)
    /// instead of the ones built in. They are checked as `surveyor kb check` does before
    /// anything is judged; a problem stops the command.
    #[arg(long, global = true, env = "SURVEYOR_KB", value_name = "DIR")]
    kb: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Scan addresses for Exchange/OWA and write one JSON line per answering (ip, port).
    Scan(Box<ScanArgs>),
    /// Print the census table of the latest finished scan.
    Report(ReportArgs),
    /// Judge a stored scan's observations again with the knowledge base in use (and for
    /// another day with --as-of), probing nothing; the earlier judgement stays readable.
    Rejudge(rejudge::RejudgeArgs),
    /// Serve the HTTP API over the store.
    Serve(ServeArgs),
    /// Start a test-bed on loopback, scan it, print the census, then serve the API.
    Demo(DemoArgs),
    /// Run a synthetic Internet of Exchange and other servers on 127.0.0.0/8.
    Testbed(TestbedArgs),
    /// Inspect and check the Exchange knowledge base.
    Kb(kb::KbArgs),
    /// Load a spill file (observations a scan could not store) into the store.
    Ingest(IngestArgs),
    /// Bring the store's schema up to date (every command does so on opening; this does
    /// only that, e.g. before a deployment).
    Migrate(DbArg),
    /// Delete the observations of old scans, keeping their census counts for trends.
    Prune(PruneArgs),
    /// Import or export the organisations registry that attributes servers to
    /// organisations and sectors.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Create, list and revoke the API's bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Resolve organisations' domains (MX, autodiscover, mail, owa, webmail) into targets for
    /// `surveyor scan --input-format zgrab-csv`, each with the name for SNI and Host.
    Discover(DiscoverArgs),
    /// Notify affected organisations: plan a scan's bundles into the outbox, send what is
    /// due, show the outbox and delivery log, keep the suppression list.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// A distributed census on PostgreSQL: create a job split into shards, watch its
    /// progress, pause, resume or cancel it (see docs/scaling.md).
    #[command(subcommand)]
    Census(census::CensusCommand),
    /// Claim census shards from PostgreSQL and scan them, one at a time, until none is
    /// left; run any number, on any machines.
    Worker(Box<census::WorkerArgs>),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token and print it once; only its hash is stored.
    Create {
        #[command(flatten)]
        db: DbArg,
        /// viewer (aggregates), analyst (host-level data), researcher (exports), admin.
        #[arg(long)]
        role: surveyor_store::Role,
        /// Who or what the token is for.
        #[arg(long)]
        name: String,
    },
    /// Every token: id, name, role, created, revoked.
    List {
        #[command(flatten)]
        db: DbArg,
    },
    /// Revoke a token by id; it stops working at once.
    Revoke {
        #[command(flatten)]
        db: DbArg,
        id: i64,
    },
}

#[derive(Args)]
struct DiscoverArgs {
    /// One domain per line, optionally `,TAG` (an organisation id); `#` comments allowed.
    #[arg(long, value_name = "FILE|-")]
    domains: String,
    /// The DNS resolver to ask, `IP:PORT`; repeat for more. Never the system's resolvers.
    #[arg(long, value_name = "IP:PORT", required = true)]
    resolver: Vec<SocketAddr>,
    /// DNS lookups per second, over all domains.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// DNS lookups in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds one lookup may take.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Write the targets here instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct DbArg {
    /// Store URL: `sqlite:FILE` (default `sqlite:surveyor.db`) or `postgres://…`.
    #[arg(long, env = "SURVEYOR_DB", default_value = DEFAULT_DB)]
    pub(crate) db: String,
}

#[derive(Args)]
struct ScanArgs {
    /// Addresses or CIDR prefixes (IPv4, or IPv6 up to /112).
    targets: Vec<String>,
    /// Read more targets from a file (`-` for stdin), as a stream: probing starts at the first
    /// line, in the order of the lines (a prefix's addresses in a keyed permutation of their
    /// own), after the arguments' targets. A regular file is checked whole first.
    #[arg(long, value_name = "FILE|-")]
    targets_file: Option<String>,
    /// Format of --targets-file: plain (addresses, prefixes, ranges; ZMap's default output),
    /// zgrab-csv (IP, DOMAIN, TAG, PORT), zmap-json, masscan-list, masscan-json, or auto.
    #[arg(long, default_value = "auto")]
    input_format: InputFormat,
    /// Never scan these prefixes (one per line, `#` comments allowed).
    #[arg(long, value_name = "FILE")]
    blocklist_file: Option<PathBuf>,
    /// Scan only inside these prefixes (one per line); built-in exclusions still apply.
    #[arg(long, value_name = "FILE")]
    allowlist_file: Option<PathBuf>,
    /// Organisations that asked not to be scanned (one prefix per line); re-read on SIGHUP
    /// while the scan runs.
    #[arg(long, value_name = "FILE")]
    opt_out_file: Option<PathBuf>,
    /// Ports to probe, comma separated, each optionally with its protocol (`8443/https`,
    /// `8081/http`, `2525/smtp`). Bare ports: 80 and 8080 HTTP, 25 and 587 SMTP, others HTTPS.
    #[arg(long, default_value = defaults::PORTS, value_delimiter = ',')]
    ports: Vec<PortSpec>,
    /// Allow 127.0.0.0/8 and ::1 (for test-beds). Other reserved ranges stay excluded.
    #[arg(long)]
    allow_loopback: bool,
    /// With `--discovery syn`: the address SYNs come from (default: the one the kernel
    /// routes from towards the first target).
    #[arg(long, value_name = "IPV4")]
    source_ip: Option<std::net::Ipv4Addr>,
    /// Judge support status as of this date (default: today, UTC).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    as_of: Option<Date>,
    /// Where to write observations (`-` for stdout).
    #[arg(long, value_name = "FILE|-", default_value = "-")]
    output: String,
    /// `jsonl` (the contract of docs/output.md) or `csv` (census columns).
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
    output_format: String,
    /// Keep a checkpoint here (rewritten every few seconds and at the end).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Continue the scan a checkpoint describes (same targets, ports, seed and shard);
    /// nothing finished is scanned again. Keeps checkpointing to the same file.
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// If the store fails, retry each batch for this many seconds before writing it to the
    /// spill file.
    #[arg(long, value_name = "S", default_value_t = defaults::STORE_RETRY)]
    store_retry: f64,
    /// Where observations go when the store keeps failing (default
    /// `surveyor-spill-scan<ID>.jsonl`); `surveyor ingest FILE` loads them later.
    #[arg(long, value_name = "FILE")]
    spill: Option<PathBuf>,
    #[command(flatten)]
    db: DbArg,
    #[command(flatten)]
    engine: EngineArgs,
    /// A DNS resolver (`IP:PORT`, repeatable) for PTR names of servers that neither their
    /// certificate nor a registry prefix attributes. Without it the scan sends no DNS.
    #[arg(long, value_name = "IP:PORT")]
    resolver: Vec<SocketAddr>,
    /// Prefix-to-AS data (CAIDA pfx2as `ADDRESS LENGTH AS`, or `PREFIX/LEN AS` lines): each
    /// server's AS, stored for the census by ASN, and the registry's AS rule (hosting
    /// providers).
    #[arg(long, value_name = "FILE")]
    asn_table: Option<PathBuf>,
    /// Address-to-country data (RIR `delegated-*-extended` files, or `PREFIX/LEN CC` lines):
    /// each server's country, for the census by country. Without it a server's country is its
    /// attributed organisation's, when the registry gives one.
    #[arg(long, value_name = "FILE")]
    country_table: Option<PathBuf>,
}

#[derive(Args)]
struct IngestArgs {
    /// A spill file written by `surveyor scan` when its store failed.
    file: PathBuf,
    #[command(flatten)]
    db: DbArg,
}

#[derive(Args, Clone)]
struct EngineArgs {
    /// Targets probed at once. `auto`: enough for --rate new targets a second that each wait
    /// the whole --connect-timeout (as a silent address does), plus a quarter: 7,500 at the
    /// defaults, 16,384 without a rate. Never more than the open-file limit allows.
    #[arg(long, default_value = "auto", value_parser = surveyor_run::request::parse_concurrency)]
    concurrency: usize,
    /// Split the target space into this many disjoint shards…
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// …and scan this one (0-based).
    #[arg(long, default_value_t = 0)]
    shard: u32,
    /// Stop after this many targets (the scan is then not marked finished).
    #[arg(long)]
    max_targets: Option<u64>,
    /// Stop admitting targets after this many seconds (the scan is then not marked finished).
    #[arg(long)]
    max_runtime: Option<f64>,
    #[command(flatten)]
    probe: ProbeArgs,
}

/// How a scan probes: the flags `surveyor scan` and `surveyor census create` share, with the
/// defaults of `surveyor_run::spec::defaults`.
#[derive(Args, Clone)]
pub(crate) struct ProbeArgs {
    /// New targets per second over the whole scan (0: no limit); a census's is split evenly
    /// across the workers holding leases (with `--discovery syn`: SYNs per second).
    #[arg(long, default_value_t = defaults::RATE)]
    rate: u32,
    /// New targets per second into one /24 (IPv6: /48) (0: no limit); split as --rate.
    #[arg(long, default_value_t = defaults::NETWORK_RATE)]
    network_rate: u32,
    /// New targets per second to one address (0: no limit); split as --rate.
    #[arg(long, default_value_t = defaults::HOST_RATE)]
    host_rate: u32,
    /// Consecutive failures into one /24 (IPv6: /48) that answered before new targets there
    /// wait outside the window (1 s, doubling per further run, at most 60 s; 0: never):
    /// resets, aborted TLS handshakes, hosts going quiet, and timeouts where nearly every
    /// target had answered. Silence from a network that never answered is not a failure.
    #[arg(long, default_value_t = defaults::NETWORK_BACKOFF)]
    network_backoff: u32,
    /// Seed of the pseudo-random scan order; the same seed gives the same order.
    #[arg(long, default_value_t = defaults::SEED)]
    seed: u64,
    /// Seconds allowed for a TCP connect: long enough for one lost SYN to be sent again
    /// (after 1 s) and answered from across the world.
    #[arg(long, default_value_t = defaults::CONNECT_TIMEOUT)]
    connect_timeout: f64,
    /// Seconds allowed for everything done with one target.
    #[arg(long, default_value_t = defaults::TARGET_TIMEOUT)]
    target_timeout: f64,
    /// Do not start NTLM handshakes (by default Exchange hosts are asked for the AD domain,
    /// server name and Windows build that an NTLM challenge discloses).
    #[arg(long)]
    no_ntlm: bool,
    /// What to ask HTTP(S) servers: `exchange` (the Exchange probe plan) or `banner` (TLS
    /// and one `GET /`, a banner grab that names no build).
    #[arg(long, default_value = defaults::PLAN, value_parser = ["exchange", "banner"])]
    plan: String,
    /// An URL where operators who see Surveyor in their logs learn who scans and how to opt out.
    #[arg(long)]
    info_url: Option<String>,
    /// How open ports are found: `connect` (a TCP connect() per target, no privileges) or
    /// `syn` (a stateless SYN sweep from raw sockets at --rate packets/s, IPv4 prefixes,
    /// needs CAP_NET_RAW; open ports are probed while the sweep goes on).
    #[arg(long, default_value = defaults::DISCOVERY, value_parser = ["connect", "syn"])]
    discovery: String,
    /// With `--discovery syn`: seconds to wait for late answers after the last SYN.
    #[arg(long, value_name = "S", default_value_t = defaults::COOLDOWN)]
    cooldown: f64,
}

impl ProbeArgs {
    /// The flags as the spec takes them (`Probing::new` checks them).
    pub(crate) fn args(&self) -> ProbingArgs {
        ProbingArgs {
            seed: self.seed,
            rate: self.rate,
            network_rate: self.network_rate,
            host_rate: self.host_rate,
            network_backoff: self.network_backoff,
            connect_timeout: self.connect_timeout,
            target_timeout: self.target_timeout,
            ntlm: !self.no_ntlm,
            plan: self.plan.clone(),
            info_url: self.info_url.clone(),
            discovery: self.discovery.clone(),
            cooldown: self.cooldown,
        }
    }
}

#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    db: DbArg,
    /// Report this scan instead of the latest finished one.
    #[arg(long)]
    scan: Option<i64>,
    /// `table` for people, `json` for programs (the same document as GET /api/v1/census).
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    /// Instead of the census, what changed since this earlier scan: new and gone servers,
    /// upgrades, downgrades and support changes, address by address.
    #[arg(long, value_name = "SCAN", conflicts_with_all = ["trend", "group_by", "as_of"])]
    diff: Option<i64>,
    /// The census as it stood on this day: the newest scan finished by then (UTC).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date, conflicts_with = "scan")]
    as_of: Option<Date>,
    /// Count servers by these dimensions instead of the family table: any of family, cu,
    /// version, support, patch, sector, organisation, comma-separated.
    #[arg(long, value_name = "DIMS", value_delimiter = ',')]
    group_by: Vec<Dimension>,
    /// One line per finished scan, oldest first (with --group-by, one per group).
    #[arg(long, conflicts_with_all = ["scan", "as_of"])]
    trend: bool,
    /// With --trend: each scan as judged while it ran (`original`) instead of its newest
    /// judgement (`newest`, the default; see `surveyor rejudge`).
    #[arg(long, requires = "trend", default_value = "newest")]
    judgements: surveyor_store::Judgements,
    /// Count only servers of this family (2007, 2010, 2013, 2016, 2019, SE).
    #[arg(long)]
    family: Option<surveyor_model::Family>,
    /// Count only supported or only unsupported servers.
    #[arg(long)]
    support: Option<surveyor_model::Support>,
    /// Count only servers in this patch band (current, behind-90d, behind-1y, behind-over-1y,
    /// unknown).
    #[arg(long)]
    patch: Option<surveyor_model::PatchBand>,
    /// Count only servers attributed to this sector (see `surveyor registry sectors`).
    #[arg(long)]
    sector: Option<surveyor_model::Sector>,
    /// Count only servers attributed to this organisation id.
    #[arg(long)]
    organisation: Option<String>,
}

#[derive(Args)]
struct PruneArgs {
    #[command(flatten)]
    db: DbArg,
    /// Keep the observations of this many newest finished scans.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    keep_scans: Option<u64>,
    /// Keep the observations of scans finished in the last DAYS days.
    #[arg(long, value_name = "DAYS")]
    keep_days: Option<u32>,
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArg,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve aggregate statistics (census, scans, statistics, trends) without a token.
    /// Host-level data always needs an analyst or admin token.
    #[arg(long)]
    public_aggregates: bool,
    /// Requests per minute each token may make (requests without a token share one budget);
    /// 0 for no limit. Past it the API answers 429 with Retry-After.
    #[arg(long, default_value_t = 600)]
    rate_per_token: u32,
    /// A file holding a secret (at least 32 bytes) for keyed address pseudonyms in
    /// pseudonymised exports; without it they show the /24 (IPv4) or /48 (IPv6).
    #[arg(long, value_name = "FILE")]
    pseudonym_key_file: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics, a listener of their own (no token;
    /// bind it where only the monitoring system reaches).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Seconds a connection may take to send a whole request head (after accept, or after
    /// the previous answer on a kept-alive connection); then it is closed.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    header_timeout: f64,
    /// Seconds a request may take to its response head; past them the answer is 503 with
    /// Retry-After (a streamed export's body goes on at the client's pace).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    request_timeout: f64,
    /// Connections served at once; while all are taken, new ones wait in the listen backlog.
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// The largest request body accepted, in bytes; a larger one is refused with 413.
    #[arg(long, value_name = "BYTES", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(0..=1 << 30))]
    max_body: u32,
    /// Seconds requests in flight may take to finish after Ctrl-C/SIGTERM; connections still
    /// open then are closed.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    drain_timeout: f64,
    /// Seconds a connection's writes may make no progress: a client that stops reading (a
    /// streamed export) is then dropped.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    write_timeout: f64,
    /// Seconds PostgreSQL lets one statement of the API run before it cancels it; the request
    /// is then answered 503 with Retry-After. Below --request-timeout, so that a slow query
    /// says so (SQLite has no statement timeout).
    #[arg(long, value_name = "SECS", default_value_t = 20.0)]
    statement_timeout: f64,
}

#[derive(Args)]
struct DemoArgs {
    /// Exit after printing the census instead of serving the API.
    #[arg(long)]
    no_serve: bool,
    /// Address the API listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Live hosts in the test-bed.
    #[arg(long, default_value_t = 300)]
    hosts: usize,
    /// Test-bed seed: the same seed plays the same fleet.
    #[arg(long, default_value_t = 2025)]
    seed: u64,
    /// Test-bed network, within 127.0.0.0/8.
    #[arg(long, default_value = "127.77.0.0/20")]
    net: Ipv4Net,
    /// Store URL; default a fresh SQLite file in the temp directory.
    #[arg(long)]
    db: Option<String>,
    /// Where to write the scan's JSON lines (default: not written).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct TestbedArgs {
    /// Live hosts.
    #[arg(long, default_value_t = 60)]
    hosts: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Network to place hosts in, within 127.0.0.0/8.
    #[arg(long, default_value = "127.77.0.0/22")]
    net: Ipv4Net,
    /// Ports and what they serve, e.g. `443,80,25` or `0/https,0/smtp`: https (every host),
    /// http (301 to https on Exchange hosts), smtp (Exchange and Postfix hosts). Port 0 picks
    /// a free port; privileged ports need privileges.
    #[arg(long, default_value = "0/https", value_delimiter = ',')]
    ports: Vec<String>,
    /// Share of live hosts with a hostile persona (0 to 1).
    #[arg(long, default_value_t = 0.03)]
    hostile_share: f64,
    /// Share of the other live hosts that do not run Exchange (0 to 1).
    #[arg(long, default_value_t = 0.25)]
    non_exchange_share: f64,
    /// Family weights among Exchange hosts, e.g. `se=8,2019=45,2016=40,2013=3,2010=3,2007=1`.
    #[arg(long)]
    weights: Option<String>,
    /// Write the ground truth here as JSON lines.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Write the organisations registry here (CSV: organisation, sector, cidr, domain,
    /// abuse_contact, language).
    #[arg(long)]
    registry: Option<PathBuf>,
    /// Serve the fleet's DNS zones (A, MX, autodiscover CNAMEs, PTR) on 127.0.0.1 at this
    /// port, UDP and TCP (0: pick a free one).
    #[arg(long, value_name = "PORT")]
    dns: Option<u16>,
    /// `per-host` (an empty address refuses, as on the Internet; bounded by the open-file
    /// limit), `shared` (one loopback-only listener per port; empty addresses accept and
    /// reset) or `auto` (per-host while it fits).
    #[arg(long, default_value = "auto")]
    listeners: surveyor_testbed::Listeners,
    /// Delay every host's answers by its own round-trip time, drawn from this range in
    /// milliseconds (`20-200`, or `80` for all alike) and jittered by ±10 % per answer, as
    /// far-away servers answer (docs/testbed.md, "Dark space and distance"). The truth's
    /// `rtt_ms` gives each host's.
    #[arg(long, value_name = "MS[-MS]")]
    rtt: Option<surveyor_testbed::RttRange>,
    /// Share of live hosts (0 to 1) whose HTTPS connections stall mid-way and stay silent
    /// until the client gives up; the truth's `stall` says where, `expected_status` is
    /// io-timeout.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    stall_share: f64,
    /// Make every organisation's TLS keys before reporting ready, as real servers hold theirs
    /// (benchmarks use it; by default each is made on first use, so large fleets start at
    /// once).
    #[arg(long)]
    eager_certs: bool,
}

// Scans and the test-bed allocate per connection and per answer; glibc's malloc was 14 % of a
// scan's CPU at a distance, mimalloc about half that (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command, cli.kb.as_deref())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A test-bed needs one file descriptor per listener: raise the open-file limit as far as this
/// process may (the hard limit too, when privileged) before starting one.
fn raise_open_files() {
    use rlimit::Resource;
    const WANT: u64 = 1 << 20;
    let Ok((soft, hard)) = rlimit::getrlimit(Resource::NOFILE) else {
        return;
    };
    if hard < WANT && rlimit::setrlimit(Resource::NOFILE, WANT, WANT).is_ok() {
        return;
    }
    if soft < hard {
        let _ = rlimit::setrlimit(Resource::NOFILE, hard, hard);
    }
}

async fn dispatch(command: Command, kb_dir: Option<&Path>) -> Result<()> {
    // Every probe in flight and every test-bed listener is a file descriptor.
    if matches!(
        command,
        Command::Scan(_) | Command::Worker(_) | Command::Demo(_) | Command::Testbed(_)
    ) {
        raise_open_files();
    }
    match command {
        Command::Scan(args) => scan(*args, kb::load(kb_dir)?).await,
        Command::Report(args) => report(args, kb_dir).await,
        Command::Rejudge(args) => rejudge::run(args, kb::load(kb_dir)?).await,
        Command::Prune(args) => prune(args).await,
        Command::Discover(args) => discover(args).await,
        Command::Token(command) => token(command).await,
        Command::Registry(command) => {
            let store = open_store(command.db()).await?;
            registry::run(command, &store).await
        }
        Command::Notify(command) => {
            let store = open_store(command.db()).await?;
            notify::run(command, &store).await
        }
        Command::Census(command) => census::run(command, kb_dir).await,
        Command::Worker(args) => census::worker(*args, kb::load(kb_dir)?).await,
        Command::Serve(args) => serve(args).await,
        Command::Demo(args) => demo(args, kb::load(kb_dir)?).await,
        Command::Testbed(args) => testbed(args).await,
        Command::Kb(args) => kb::run(args, kb_dir),
        Command::Ingest(args) => ingest(args).await,
        Command::Migrate(db) => {
            let store = open_store(&db.db).await?;
            let (version, description) = store.schema();
            eprintln!(
                "surveyor migrate: {} store {} is at migration {version} ({description})",
                store.backend,
                surveyor_store::redact_url(&db.db)
            );
            Ok(())
        }
    }
}

async fn ingest(args: IngestArgs) -> Result<()> {
    let store = open_store(&args.db.db).await?;
    let loaded = surveyor_run::spill::ingest(&store, &args.file).await?;
    let (observations, finished) = (loaded.observations, loaded.finished);
    eprintln!(
        "surveyor ingest: {observations} observations and {finished} scan ends from {} into {}",
        args.file.display(),
        surveyor_store::redact_url(&args.db.db)
    );
    Ok(())
}

fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("{s:?} is not a date of the form YYYY-MM-DD"))
}

fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

async fn open_store(url: &str) -> Result<Store> {
    surveyor_store::open(url).await.with_context(|| {
        format!(
            "could not open the store {}",
            surveyor_store::redact_url(url)
        )
    })
}

/// Cancelled on the first Ctrl-C (or SIGTERM), so scans stop cleanly and servers drain.
fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        t.cancel();
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// A duration flag in seconds: positive, at most an hour.
fn secs(name: &str, v: f64) -> Result<Duration> {
    Ok(surveyor_run::spec::secs(name, v)?)
}

/// The window, lowered to what the open-file limit allows (each probe in flight holds a
/// socket; the store, the output and the runtime need some too), with a warning when lowered.
fn fit_open_files(concurrency: usize) -> usize {
    const RESERVE: u64 = 256;
    let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return concurrency;
    };
    let fits = usize::try_from(soft.saturating_sub(RESERVE).max(1)).unwrap_or(usize::MAX);
    if concurrency > fits {
        eprintln!(
            "surveyor: --concurrency {concurrency} needs more open files than the limit \
             ({soft}) allows; probing {fits} at once (raise it with `ulimit -n`)"
        );
        return fits;
    }
    concurrency
}

fn read_cidr_file(path: &Path) -> Result<Vec<IpNet>> {
    Ok(targets::parse_cidr_list(
        &read(path)?,
        &path.display().to_string(),
    )?)
}

/// A whole text file the flags name.
fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))
}

/// A file the flags name, made anew for writing.
fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    Ok(std::io::BufWriter::new(file))
}

/// Where observations go: the file the flags name, or nowhere.
fn output(path: Option<&Path>) -> Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(path) => Box::new(create(path)?),
        None => Box::new(std::io::sink()),
    })
}

/// The opt-out list of `--opt-out-file`, re-read on every SIGHUP while the process runs.
fn opt_out(path: &Path) -> Result<OptOut> {
    let opt_out = OptOut::default();
    opt_out.replace(read_cidr_file(path)?);
    reload_opt_out_on_sighup(path.to_path_buf(), opt_out.clone());
    Ok(opt_out)
}

/// Re-reads the opt-out file on every SIGHUP. A file that no longer parses keeps the old list
/// in force and says why: an opt-out must never silently lapse.
fn reload_opt_out_on_sighup(path: PathBuf, opt_out: OptOut) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match read_cidr_file(&path) {
                Ok(nets) => {
                    let n = nets.len();
                    opt_out.replace(nets);
                    eprintln!("surveyor: reloaded {} ({n} prefixes)", path.display());
                }
                Err(e) => eprintln!("surveyor: kept the previous opt-out list: {e:#}"),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (path, opt_out);
}

/// The prefix-to-AS table of `--asn-table`; every bad line is an error.
fn asn_table(path: &Path) -> Result<Arc<surveyor_attrib::AsnTable>> {
    let table = surveyor_attrib::AsnTable::parse(&read(path)?)
        .with_context(|| format!("{} is not a valid AS table", path.display()))?;
    Ok(Arc::new(table))
}

/// The address-to-country table of `--country-table`; every bad line is an error.
fn country_table(path: &Path) -> Result<Arc<surveyor_attrib::CountryTable>> {
    let table = surveyor_attrib::CountryTable::parse(&read(path)?)
        .with_context(|| format!("{} is not a valid country table", path.display()))?;
    Ok(Arc::new(table))
}

async fn scan(args: ScanArgs, kb: Arc<surveyor_kb::KnowledgeBase>) -> Result<()> {
    let blocklist = match &args.blocklist_file {
        Some(path) => read_cidr_file(path)?,
        None => Vec::new(),
    };
    let allowlist = match &args.allowlist_file {
        Some(path) => Some(read_cidr_file(path)?),
        None => None,
    };
    let engine = &args.engine;
    let request = ScanRequest {
        targets: args.targets.clone(),
        targets_file: args.targets_file.clone(),
        input_format: args.input_format,
        ports: args.ports.clone(),
        allow_loopback: args.allow_loopback,
        blocklist,
        allowlist,
        opt_out: args.opt_out_file.as_deref().map(opt_out).transpose()?,
        probing: engine.probe.args(),
        concurrency: engine.concurrency,
        shards: engine.shards,
        shard: engine.shard,
        max_targets: engine.max_targets,
        max_runtime: engine.max_runtime,
        source_ip: args.source_ip,
        resume: args.resume.clone(),
        as_of: args.as_of,
        today: today(),
        fit_window: fit_open_files,
    };
    let mut scan = request.prepare(kb)?;
    let store = open_store(&args.db.db).await?;
    let mut out: Box<dyn Write + Send> = match args.output.as_str() {
        "-" => Box::new(std::io::BufWriter::new(std::io::stdout())),
        path => Box::new(create(Path::new(path))?),
    };
    let of = match scan.targets() {
        Some((n, len)) => format!("{n} of {len} targets"),
        None => "targets as they are read".to_string(),
    };
    let (spec, order) = (&scan.spec, scan.job.order);
    eprintln!(
        "surveyor: scanning {of} ({}, ports {:?}, seed {}, shard {}/{})",
        spec.description,
        spec.port_numbers(),
        order.seed,
        order.shard,
        order.shards
    );
    let job = &mut scan.job;
    if args.output_format == "csv" {
        job.format = OutputFormat::Csv;
    }
    job.checkpoint = args.checkpoint.clone().or_else(|| args.resume.clone());
    job.durability = Durability {
        retry_for: secs("store-retry", args.store_retry)?,
        spill: args.spill.clone(),
    };
    if !args.resolver.is_empty() {
        let options = surveyor_scan::discover::DiscoverOptions {
            resolvers: args.resolver.clone(),
            ..Default::default()
        };
        job.ptr = Some(surveyor_scan::discover::Discoverer::new(options)?);
    }
    job.asns = args.asn_table.as_deref().map(asn_table).transpose()?;
    job.countries = args
        .country_table
        .as_deref()
        .map(country_table)
        .transpose()?;
    let checkpoint = job.checkpoint.clone();
    let bar = progress::bar(&scan.job, scan.stream.as_ref());
    let outcome = scan.run(&store, &mut *out, shutdown_token()).await;
    if let Some(bar) = bar {
        bar.abort();
    }
    let outcome = outcome?;
    print_summary(&outcome);
    if let Some(error) = &outcome.input_error {
        // What came before the line is stored; the checkpoint says where to continue.
        let resume = match &checkpoint {
            Some(path) => format!(
                "; correct it and continue with --resume {} (the same input again, corrected \
                 from that line on)",
                path.display()
            ),
            None => "; without --checkpoint it cannot be resumed".to_string(),
        };
        bail!(
            "{error}: scan {} stopped at that line and is not finished{resume}",
            outcome.scan
        );
    }
    if outcome.spilled > 0 {
        // Nothing is lost, but the store is incomplete until the spill file is ingested.
        bail!(
            "scan {}: {} lines could not be stored and wait in the spill file",
            outcome.scan,
            outcome.spilled
        );
    }
    Ok(())
}

/// The lines a scan ends with on stderr (`surveyor: scan N: …`, which scripts and tests read),
/// saying in the flags' words why it stopped early.
fn print_summary(o: &surveyor_run::ScanOutcome) {
    let stopped = match o.stats.stopped {
        None => "",
        Some(StopReason::Cancelled) => " INTERRUPTED (not marked finished)",
        Some(StopReason::MaxTargets) => " stopped at --max-targets (not marked finished)",
        Some(StopReason::MaxRuntime) => " stopped at --max-runtime (not marked finished)",
        Some(StopReason::SourceFailed) => " STOPPED at a bad input line (not marked finished)",
    };
    for line in o.summary(stopped).lines() {
        eprintln!("surveyor: {line}");
    }
}

async fn report(args: ReportArgs, kb_dir: Option<&Path>) -> Result<()> {
    use surveyor_api::report::{Question, ReportError, Which};
    let store = open_store(&args.db.db).await?;
    // The census is what the stored judgement says; a knowledge base given here is only
    // compared with it, so that a stale judgement is pointed out.
    let kb = kb_dir.map(|dir| kb::load(Some(dir))).transpose()?;
    let filter = surveyor_store::CensusFilter {
        family: args.family,
        support: args.support,
        patch: args.patch,
        sector: args.sector.map(|s| s.as_str().to_string()),
        organisation: args.organisation.clone(),
        ..Default::default()
    };
    let group_by = args.group_by.clone();
    let question = if let Some(before) = args.diff {
        Question::Diff {
            before: ScanId(before),
        }
    } else if args.trend {
        let judgements = args.judgements;
        Question::Trend {
            group_by,
            filter,
            judgements,
        }
    } else if !group_by.is_empty() || filter != Default::default() {
        Question::Groups { group_by, filter }
    } else {
        Question::Census
    };
    let which = Which {
        scan: args.scan.map(ScanId),
        as_of: args.as_of,
    };
    let db = surveyor_store::redact_url(&args.db.db);
    let answer = match surveyor_api::report::answer(&store, which, question).await {
        Ok(answer) => answer,
        Err(ReportError::NoFinishedScan) => {
            bail!("no finished scan in {db}: run `surveyor scan` first")
        }
        Err(ReportError::NoneFinishedBy(day)) => bail!("no scan had finished by {day} in {db}"),
        Err(ReportError::UnknownScan(id)) => bail!("no scan with id {id} in {db}"),
        Err(other) => return Err(other.into()),
    };
    if let Some(scan) = answer.judged_scan() {
        if let Some(note) = kb
            .as_deref()
            .and_then(|kb| surveyor_run::stale_judgement(kb, scan))
        {
            eprintln!("surveyor report: {note}");
        }
    }
    if args.format == "json" {
        println!("{}", answer.json()?);
    } else {
        print!("{}", answer.text());
    }
    Ok(())
}

/// Says on stderr when the knowledge base in use is not the one that judged the scan.
async fn token(command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create { db, role, name } => {
            let store = open_store(&db.db).await?;
            let token = surveyor_api::new_token().context("the system gave no randomness")?;
            let record = store
                .tokens
                .create_token(
                    &name,
                    role,
                    &surveyor_api::token_hash(&token),
                    OffsetDateTime::now_utc(),
                )
                .await?;
            eprintln!(
                "surveyor token: made token {} ({}, {}); it is shown once, keep it safe",
                record.id,
                record.name,
                record.role.as_str()
            );
            println!("{token}");
        }
        TokenCommand::List { db } => {
            let store = open_store(&db.db).await?;
            for t in store.tokens.tokens().await? {
                let revoked = t
                    .revoked_at
                    .map_or("active".to_string(), |at| format!("revoked {at}"));
                println!(
                    "{}\t{}\t{}\t{}\t{revoked}",
                    t.id,
                    t.role.as_str(),
                    t.name,
                    t.created_at
                );
            }
        }
        TokenCommand::Revoke { db, id } => {
            let store = open_store(&db.db).await?;
            if !store
                .tokens
                .revoke_token(id, OffsetDateTime::now_utc())
                .await?
            {
                bail!("no active token with id {id}");
            }
            eprintln!("surveyor token: token {id} revoked");
        }
    }
    Ok(())
}

async fn discover(args: DiscoverArgs) -> Result<()> {
    use surveyor_scan::discover::{parse_domain_list, to_zgrab_csv, DiscoverOptions, Discoverer};
    let text = if args.domains == "-" {
        std::io::read_to_string(std::io::stdin())
            .context("could not read the domains from stdin")?
    } else {
        std::fs::read_to_string(&args.domains)
            .with_context(|| format!("could not read {}", args.domains))?
    };
    let seeds = parse_domain_list(&text).with_context(|| format!("in {}", args.domains))?;
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds");
    }
    let options = DiscoverOptions {
        resolvers: args.resolver.clone(),
        rate_per_second: NonZeroU32::new(args.rate).context("--rate must be at least 1")?,
        concurrency: std::num::NonZeroUsize::new(args.concurrency)
            .context("--concurrency must be at least 1")?,
        timeout: Duration::from_secs_f64(args.timeout),
    };
    let discoverer = Discoverer::new(options)?;
    let (targets, stats) = discoverer.discover(&seeds).await;
    let csv = to_zgrab_csv(&targets);
    match &args.output {
        Some(path) => std::fs::write(path, csv)
            .with_context(|| format!("could not write {}", path.display()))?,
        None => print!("{csv}"),
    }
    eprintln!("surveyor discover: {stats}");
    Ok(())
}

async fn prune(args: PruneArgs) -> Result<()> {
    if args.keep_scans.is_none() && args.keep_days.is_none() {
        bail!("say what to keep: --keep-scans N and/or --keep-days DAYS");
    }
    let store = open_store(&args.db.db).await?;
    let policy = surveyor_store::PrunePolicy {
        keep_scans: args.keep_scans.map(|n| n as usize),
        keep_since: args
            .keep_days
            .map(|d| time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(d))),
    };
    let report = store.scans.prune(&policy, args.dry_run).await?;
    let ids: Vec<String> = report.pruned.iter().map(|id| id.to_string()).collect();
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    println!(
        "surveyor prune: {verb} {} observations of {} scans{}{}; their census counts stay",
        report.observations_deleted,
        report.pruned.len(),
        if ids.is_empty() { "" } else { ": " },
        ids.join(", ")
    );
    Ok(())
}

async fn serve_edge_until(
    listen: SocketAddr,
    store: Store,
    config: surveyor_api::ApiConfig,
    edge: surveyor_api::EdgeConfig,
    metrics_listen: Option<SocketAddr>,
    shutdown: CancellationToken,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("could not listen on {listen}"))?;
    eprintln!(
        "surveyor: API on http://{}/api/v1/census (Ctrl-C stops)",
        listener.local_addr()?
    );
    let metrics = surveyor_api::Metrics::new();
    if let Some(addr) = metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not listen on {addr} for metrics"))?;
        eprintln!(
            "surveyor: metrics on http://{}/metrics",
            listener.local_addr()?
        );
        let (metrics, stop) = (metrics.clone(), shutdown.clone());
        tokio::spawn(async move {
            let served = surveyor_api::serve_metrics(listener, metrics, edge, async move {
                stop.cancelled().await
            })
            .await;
            if let Err(error) = served {
                tracing::error!(%error, "the metrics listener failed");
            }
        });
    }
    surveyor_api::serve(listener, store, config, edge, metrics, async move {
        shutdown.cancelled().await
    })
    .await
    .context("the API server failed")
}

async fn serve(args: ServeArgs) -> Result<()> {
    let edge = surveyor_api::EdgeConfig {
        header_read_timeout: secs("header-timeout", args.header_timeout)?,
        request_timeout: secs("request-timeout", args.request_timeout)?,
        max_connections: args.max_connections as usize,
        max_body_bytes: args.max_body as usize,
        drain_timeout: secs("drain-timeout", args.drain_timeout)?,
        write_timeout: secs("write-timeout", args.write_timeout)?,
    };
    let options = surveyor_store::OpenOptions {
        statement_timeout: Some(secs("statement-timeout", args.statement_timeout)?),
    };
    // Every connection is a file descriptor.
    raise_open_files();
    let store = surveyor_store::open_with(&args.db.db, options)
        .await
        .with_context(|| {
            format!(
                "could not open the store {}",
                surveyor_store::redact_url(&args.db.db)
            )
        })?;
    let pseudonym_key = match &args.pseudonym_key_file {
        Some(path) => Some(read_pseudonym_key(path)?),
        None => None,
    };
    let config = surveyor_api::ApiConfig {
        public_aggregates: args.public_aggregates,
        requests_per_minute: NonZeroU32::new(args.rate_per_token),
        pseudonym_key,
    };
    serve_edge_until(
        args.listen,
        store,
        config,
        edge,
        args.metrics_listen,
        shutdown_token(),
    )
    .await
}

/// The pseudonym key: SHA-256 of the file's bytes, so any secret of 32 bytes or more will do
/// (a random file from `head -c 32 /dev/urandom`, say).
fn read_pseudonym_key(path: &Path) -> Result<surveyor_api::PseudonymKey> {
    let secret = std::fs::read(path)
        .with_context(|| format!("cannot read the pseudonym key file {}", path.display()))?;
    if secret.len() < 32 {
        bail!(
            "the pseudonym key file {} holds {} bytes; it needs at least 32 secret bytes",
            path.display(),
            secret.len()
        );
    }
    Ok(surveyor_api::PseudonymKey::from_secret(&secret))
}

async fn demo(args: DemoArgs, kb: Arc<surveyor_kb::KnowledgeBase>) -> Result<()> {
    let shutdown = shutdown_token();
    let started = std::time::Instant::now();
    let bed = surveyor_testbed::Testbed::start(surveyor_testbed::TestbedConfig {
        hosts: args.hosts,
        seed: args.seed,
        net: args.net,
        port: 0,
    })
    .await
    .context("could not start the test-bed")?;
    eprintln!(
        "surveyor demo: test-bed of {} hosts in {} on port {} (seed {})",
        bed.truth().len(),
        bed.net(),
        bed.port(),
        args.seed
    );
    let db = match &args.db {
        Some(url) => url.clone(),
        None => {
            let path = std::env::temp_dir().join(format!(
                "surveyor-demo-{}-{}.db",
                std::process::id(),
                OffsetDateTime::now_utc().unix_timestamp()
            ));
            format!("sqlite:{}", path.display())
        }
    };
    let store = open_store(&db).await?;
    // The test-bed's own registry, so that the demo attributes servers and counts sectors.
    let mut csv = Vec::new();
    surveyor_testbed::write_registry(bed.truth(), &mut csv)?;
    let registry =
        surveyor_attrib::Registry::parse(&String::from_utf8(csv)?, surveyor_attrib::Format::Csv)
            .context("the test-bed's registry does not validate")?;
    store
        .registry
        .replace_registry(
            registry.organisations(),
            "demo test-bed registry",
            OffsetDateTime::now_utc(),
        )
        .await?;
    let mut out = output(args.output.as_deref())?;
    let spec = ScanSpec::loopback_demo(bed.net(), bed.port(), args.seed, today())?;
    let order = Order {
        seed: args.seed,
        ..Order::default()
    };
    let engine = spec.probing.engine(DEMO_WINDOW, &RunSettings::default());
    let job = ScanJob::new(&spec, order, engine, kb);
    let outcome = run_scan(job, &store, &mut *out, shutdown.clone()).await?;
    bed.shutdown().await;
    print_summary(&outcome);
    eprintln!(
        "surveyor demo: scanned in {:.1} s; store {}",
        started.elapsed().as_secs_f64(),
        db
    );
    if outcome.stats.stopped.is_some() {
        bail!("interrupted before the scan finished");
    }
    use surveyor_api::report::{answer, Question, Which};
    let which = Which {
        scan: Some(outcome.scan),
        as_of: None,
    };
    print!("{}", answer(&store, which, Question::Census).await?.text());
    let group_by = vec![Dimension::Sector, Dimension::Support];
    let by_sector = Question::Groups {
        group_by,
        filter: Default::default(),
    };
    print!("\n{}", answer(&store, which, by_sector).await?.text());
    std::io::stdout().flush()?;
    if args.no_serve {
        return Ok(());
    }
    // The demo's data is the test-bed's: its aggregates are public, host-level data still
    // needs a token (`surveyor token create --role analyst --db <the demo's store>`).
    let config = surveyor_api::ApiConfig {
        public_aggregates: true,
        requests_per_minute: NonZeroU32::new(600),
        pseudonym_key: None,
    };
    let edge = surveyor_api::EdgeConfig::default();
    serve_edge_until(args.listen, store, config, edge, None, shutdown).await
}

async fn testbed(args: TestbedArgs) -> Result<()> {
    let ports = surveyor_testbed::ServicePorts::parse(&args.ports)
        .map_err(|e| anyhow::anyhow!("--ports: {e}"))?;
    let options = surveyor_testbed::FleetOptions {
        family_weights: match &args.weights {
            Some(spec) => spec
                .parse()
                .map_err(|e| anyhow::anyhow!("--weights: {e}"))?,
            None => surveyor_testbed::FamilyWeights::default(),
        },
        hostile_share: args.hostile_share,
        non_exchange_share: args.non_exchange_share,
        smtp_port: ports.smtp,
        http_port: ports.http,
        dns_port: args.dns,
        listeners: args.listeners,
        rtt: args.rtt,
        stall_share: args.stall_share,
        eager_certs: args.eager_certs,
        ..surveyor_testbed::FleetOptions::default()
    };
    let config = surveyor_testbed::TestbedConfig {
        hosts: args.hosts,
        seed: args.seed,
        net: args.net,
        port: ports.https,
    };
    let bed = surveyor_testbed::Testbed::start_with(config, options)
        .await
        .context("could not start the test-bed")?;
    if let Some(path) = &args.registry {
        let mut w = create(path)?;
        surveyor_testbed::write_registry(bed.truth(), &mut w)?;
        w.flush()?;
    }
    if let Some(path) = &args.truth {
        let mut w = create(path)?;
        surveyor_testbed::write_truth(bed.truth(), &mut w)?;
        w.flush()?;
    }
    eprintln!("surveyor testbed: {}; Ctrl-C stops", bed.banner());
    // Machine-readable readiness line for scripts and tests.
    println!("{}", bed.readiness());
    std::io::stdout().flush()?;
    shutdown_token().cancelled().await;
    bed.shutdown().await;
    Ok(())
}
