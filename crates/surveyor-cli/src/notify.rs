//! `surveyor notify`: plans a scan's notifications into the outbox (and optionally files),
//! delivers what is due, shows the outbox and the delivery log, and keeps the suppression list.
//!
//! Where a notification goes (webhook URL, the recipient's address, a directory) is decided when
//! it is planned, because it is part of the outbox row and its idempotency key; `send` only
//! supplies what delivery needs (the webhook secret, the SMTP relay) and the retry policy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use surveyor_notify::deliver::{self, Clock, DeliveryConfig, RetryPolicy};
use surveyor_notify::{
    files, NetworkContacts, OutboxStatus, PlanConfig, Routes, SmtpConfig, SmtpTls, Templates,
    WebhookConfig,
};
use surveyor_store::{ScanId, Store, Suppression};
use time::{Date, OffsetDateTime};

use crate::DbArg;

#[derive(Subcommand)]
pub enum NotifyCommand {
    /// Plan the notifications of a scan and put them into the outbox, once per channel given
    /// (--webhook, --mail, --files); planning the same scan again adds nothing. Prints the
    /// plan as JSON; --out also writes every bundle as files with a manifest.
    Plan(PlanArgs),
    /// Deliver what is due in the outbox through the configured channels; every attempt is
    /// logged, failures are retried later with exponential back-off.
    Send(SendArgs),
    /// The outbox and its delivery log: one line per notification.
    Status(StatusArgs),
    /// Stop notifying an organisation id, a contact address or an address prefix.
    Suppress(SuppressArgs),
    /// Lift a suppression.
    Unsuppress {
        #[command(flatten)]
        db: DbArg,
        /// The organisation id, contact address or prefix given to `suppress`.
        target: String,
    },
}

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    db: DbArg,
    /// The scan to notify about.
    #[arg(long)]
    scan: i64,
    /// Write each bundle (IntelMQ JSON lines, Shadowserver CSV, e-mail) and manifest.json here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Abuse contacts for servers the registry does not attribute: lines
    /// `PREFIX,ADDRESS[,LANGUAGE]`, longest prefix wins.
    #[arg(long, value_name = "FILE")]
    contacts: Option<PathBuf>,
    /// An unchanged finding told to the same recipient less than this many days ago is not
    /// told again; after that it is told again as a reminder.
    #[arg(long, value_name = "N", default_value_t = 30)]
    window_days: u32,
    /// Also notify supported, fully patched servers whose OWA or ECP answers (every server a
    /// scan finds does, so this notifies everyone).
    #[arg(long)]
    exposure_alone: bool,
    /// Who signs the e-mails.
    #[arg(long, default_value = "Surveyor")]
    sender: String,
    /// Queue every bundle for this webhook (http:// or https://).
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// Queue every bundle as an e-mail to its recipient's contact address.
    #[arg(long)]
    mail: bool,
    /// Queue every bundle for delivery as files into this directory.
    #[arg(long, value_name = "DIR")]
    files: Option<PathBuf>,
}

#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    db: DbArg,
    /// Deliver webhook notifications, signed with the key in FILE (HMAC-SHA256).
    #[arg(long, value_name = "FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// Seconds one webhook request may take.
    #[arg(long, value_name = "S", default_value_t = 30.0)]
    webhook_timeout: f64,
    /// Deliver e-mail notifications through this relay.
    #[arg(long, value_name = "HOST:PORT", requires = "from")]
    smtp: Option<String>,
    /// The sender of the e-mails: `Name <address>` or an address.
    #[arg(long, value_name = "ADDR", requires = "smtp")]
    from: Option<String>,
    /// How the connection to the relay is protected: none (a relay on this host), starttls,
    /// or tls (port 465).
    #[arg(long, default_value = "starttls", value_parser = ["none", "starttls", "tls"])]
    smtp_tls: String,
    /// The relay's user name; the password is read from --smtp-password-file.
    #[arg(long, requires = "smtp_password_file")]
    smtp_user: Option<String>,
    /// A file holding the relay's password (one line).
    #[arg(long, value_name = "FILE", requires = "smtp_user")]
    smtp_password_file: Option<PathBuf>,
    /// Deliver file notifications (into the directory each was planned for).
    #[arg(long)]
    files: bool,
    /// After this many failed attempts a notification is given up on.
    #[arg(long, value_name = "N", default_value_t = 10)]
    max_attempts: u32,
    /// The pause after the first failed attempt, in seconds; each further failure doubles it
    /// (at most six hours).
    #[arg(long, value_name = "S", default_value_t = 60)]
    retry_after: u64,
    /// Keep running, waiting for each retry to fall due, until every notification this sender
    /// can deliver is delivered or given up on. Without it, one pass over what is due now.
    #[arg(long)]
    until_settled: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    db: DbArg,
    /// Only the notifications of this scan.
    #[arg(long)]
    scan: Option<i64>,
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

#[derive(Args)]
pub struct SuppressArgs {
    #[command(flatten)]
    db: DbArg,
    /// An organisation id, a contact address, or an address prefix (`192.0.2.0/24`).
    target: String,
    /// Why (kept with the entry).
    #[arg(long)]
    reason: String,
    /// The suppression ends at the start of this day (UTC); without it, until lifted.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = crate::parse_date)]
    until: Option<Date>,
}

impl NotifyCommand {
    /// The store URL the command works on.
    pub fn db(&self) -> &str {
        match self {
            NotifyCommand::Plan(PlanArgs { db, .. })
            | NotifyCommand::Send(SendArgs { db, .. })
            | NotifyCommand::Status(StatusArgs { db, .. })
            | NotifyCommand::Suppress(SuppressArgs { db, .. })
            | NotifyCommand::Unsuppress { db, .. } => &db.db,
        }
    }
}

pub async fn run(command: NotifyCommand, store: &Store) -> Result<()> {
    match command {
        NotifyCommand::Plan(args) => plan(args, store).await,
        NotifyCommand::Send(args) => send(args, store).await,
        NotifyCommand::Status(args) => status(args, store).await,
        NotifyCommand::Suppress(args) => suppress(args, store).await,
        NotifyCommand::Unsuppress { target, .. } => {
            if !store.notifications.unsuppress(&target).await? {
                bail!("{target:?} is not suppressed");
            }
            eprintln!("surveyor notify: {target} is no longer suppressed");
            Ok(())
        }
    }
}

async fn plan(args: PlanArgs, store: &Store) -> Result<()> {
    let id = ScanId(args.scan);
    let Some(scan) = store.scans.scan(id).await? else {
        bail!("no scan with id {id}; `surveyor report` names the scans");
    };
    if scan.pruned_at.is_some() {
        bail!("scan {id} was pruned: its observations are gone, there is nothing to notify");
    }
    if scan.finished_at.is_none() {
        eprintln!("surveyor notify: note: scan {id} did not finish; planning what it recorded");
    }
    let contacts = match &args.contacts {
        Some(path) => NetworkContacts::parse(&crate::read(path)?)
            .with_context(|| format!("{} is not a valid contacts file", path.display()))?,
        None => NetworkContacts::default(),
    };
    if let Some(url) = &args.webhook {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--webhook must be an http:// or https:// URL, not {url:?}");
        }
    }
    let files_dir = match &args.files {
        Some(dir) => Some(absolute(dir)?),
        None => None,
    };

    let now = OffsetDateTime::now_utc();
    let window = time::Duration::days(i64::from(args.window_days));
    let config = PlanConfig {
        scan: id,
        as_of: scan.as_of,
        knowledge_base: scan.kb.clone(),
        now,
        renotify_after: window,
        exposure_alone: args.exposure_alone,
    };
    let templates = Templates::builtin(&args.sender, window.whole_days());
    let (plan, rendered) =
        surveyor_notify::plan_scan(store, &config, &contacts, &templates).await?;

    let mut doc = match &args.out {
        Some(dir) => files::write_plan(dir, &plan, &rendered)
            .with_context(|| format!("could not write the bundles to {}", dir.display()))?,
        None => surveyor_notify::plan_summary(&plan, &rendered),
    };
    let routes = Routes {
        webhook: args.webhook.clone(),
        smtp: args.mail,
        directory: files_dir.map(|d| d.display().to_string()),
    };
    let outbox =
        surveyor_notify::enqueue(store.notifications.as_ref(), &rendered, &routes, now).await?;
    doc["outbox"] = serde_json::to_value(&outbox)?;
    println!("{}", serde_json::to_string_pretty(&doc)?);

    let servers: usize = plan.bundles.iter().map(|b| b.findings.len()).sum();
    eprintln!(
        "surveyor notify: scan {id}: {} bundles, {servers} servers, {} unrouted, {} suppressed, \
         {} told within {} days; outbox: {} queued, {} already queued{}",
        plan.bundles.len(),
        plan.unrouted.len(),
        plan.suppressed,
        plan.within_window,
        args.window_days,
        outbox.enqueued,
        outbox.already_queued,
        if outbox.no_contact.is_empty() {
            String::new()
        } else {
            format!(", {} without a contact address", outbox.no_contact.len())
        }
    );
    if routes == Routes::default() && !plan.bundles.is_empty() {
        eprintln!("surveyor notify: note: no --webhook, --mail or --files: nothing was queued");
    }
    Ok(())
}

async fn send(args: SendArgs, store: &Store) -> Result<()> {
    let config = delivery_config(&args)?;
    let clock = Clock::starting_at(OffsetDateTime::now_utc());
    let notifications = store.notifications.as_ref();
    let report = if args.until_settled {
        deliver::send_until_settled(notifications, &config, &clock).await?
    } else {
        surveyor_notify::send_now(notifications, &config, &clock).await?
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "surveyor notify: {} attempts: {} delivered, {} to retry, {} failed; {} due on channels \
         not configured here",
        report.attempted, report.delivered, report.retrying, report.failed, report.skipped
    );
    if report.failed > 0 {
        bail!(
            "{} notifications failed for good; `surveyor notify status` shows why",
            report.failed
        );
    }
    Ok(())
}

async fn status(args: StatusArgs, store: &Store) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let status =
        OutboxStatus::read(store.notifications.as_ref(), args.scan.map(ScanId), now).await?;
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&status.document())?);
        return Ok(());
    }
    print!("{}", status.table());
    eprintln!(
        "surveyor notify: {} notifications: {} pending, {} delivered, {} failed; {} suppressions",
        status.rows.len(),
        status.counts["pending"],
        status.counts["delivered"],
        status.counts["failed"],
        status.suppressions.len()
    );
    Ok(())
}

async fn suppress(args: SuppressArgs, store: &Store) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let expires_at = args.until.map(|d| d.midnight().assume_utc());
    if expires_at.is_some_and(|e| e <= now) {
        bail!("--until must be a day after today");
    }
    store
        .notifications
        .suppress(&Suppression {
            target: args.target.clone(),
            reason: args.reason,
            created_at: now,
            expires_at,
        })
        .await?;
    let until = args
        .until
        .map_or("until lifted".to_string(), |d| format!("until {d}"));
    eprintln!("surveyor notify: {} is suppressed {until}", args.target);
    Ok(())
}

/// Raw `send` flags into the library's validated delivery config.
fn delivery_config(args: &SendArgs) -> Result<DeliveryConfig> {
    let webhook = match &args.webhook_secret_file {
        Some(path) => {
            let secret = read_secret(path)?;
            if !(args.webhook_timeout > 0.0 && args.webhook_timeout.is_finite()) {
                bail!("--webhook-timeout must be a positive number of seconds");
            }
            Some(WebhookConfig {
                secret,
                timeout: Duration::from_secs_f64(args.webhook_timeout),
            })
        }
        None => None,
    };
    let smtp = match (&args.smtp, &args.from) {
        (Some(relay), Some(from)) => {
            let (host, port) = surveyor_notify::relay_address(relay)
                .with_context(|| format!("--smtp {relay:?} is not HOST:PORT"))?;
            let credentials = match (&args.smtp_user, &args.smtp_password_file) {
                (Some(user), Some(file)) => {
                    let password = String::from_utf8(read_secret(file)?).with_context(|| {
                        format!("the password in {} is not UTF-8", file.display())
                    })?;
                    Some((user.clone(), password))
                }
                _ => None,
            };
            Some(SmtpConfig {
                host,
                port,
                tls: match args.smtp_tls.as_str() {
                    "none" => SmtpTls::None,
                    "tls" => SmtpTls::Tls,
                    _ => SmtpTls::StartTls,
                },
                from: from.clone(),
                credentials,
                timeout: Duration::from_secs(60),
            })
        }
        _ => None,
    };
    if webhook.is_none() && smtp.is_none() && !args.files {
        bail!("no channel to send on: give --webhook-secret-file, --smtp with --from, or --files");
    }
    if args.max_attempts == 0 {
        bail!("--max-attempts must be at least 1");
    }
    if args.retry_after == 0 {
        bail!("--retry-after must be at least 1 second");
    }
    Ok(DeliveryConfig {
        webhook,
        smtp,
        files: args.files,
        retry: RetryPolicy {
            base: Duration::from_secs(args.retry_after),
            max: Duration::from_secs(6 * 3600),
            max_attempts: args.max_attempts,
        },
        batch: 1000,
    })
}

/// A secret from a file, without the line end an editor adds.
fn read_secret(path: &Path) -> Result<Vec<u8>> {
    let mut bytes =
        std::fs::read(path).with_context(|| format!("could not read {}", path.display()))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(bytes)
}

/// The outbox keeps the directory as text for a later `send`, possibly from another working
/// directory: keep it absolute.
fn absolute(dir: &Path) -> Result<PathBuf> {
    std::path::absolute(dir).with_context(|| format!("{} is not a usable path", dir.display()))
}
