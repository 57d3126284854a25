//! The progress bar of `surveyor scan` on a terminal, fed from the scan's live counters.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::Duration;

use surveyor_run::input::TargetStream;
use surveyor_run::{pipeline, ScanJob};

/// A bar over the shard's targets, or a counter for a stream from a pipe; `None` when stderr
/// is not a terminal. The task runs until aborted.
pub fn bar(job: &ScanJob, stream: Option<&TargetStream>) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let (bar, template) = match pipeline::shard_total(job, stream) {
        Some(total) => (
            indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX)),
            "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} {per_sec} ETA {eta} {msg}",
        ),
        None => (
            indicatif::ProgressBar::no_length(),
            "{elapsed_precise} {spinner} {human_pos} {per_sec} {msg}",
        ),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (progress, exchange) = (job.config.progress.clone(), job.exchange.clone());
    Some(tokio::spawn(async move {
        loop {
            let done =
                progress.done.load(Ordering::Relaxed) + progress.excluded.load(Ordering::Relaxed);
            bar.set_position(done);
            bar.set_message(format!(
                "answered {} Exchange {}",
                progress.connected.load(Ordering::Relaxed),
                exchange.load(Ordering::Relaxed)
            ));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }))
}
