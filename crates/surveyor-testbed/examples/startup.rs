//! Measures how long a large fleet takes to plan, bind and start, how much memory it holds,
//! then makes one TCP connection (certificates are made lazily on the first TLS handshake)
//! and shuts down. Fleets beyond the open-file budget run on shared listeners.
//!
//! `cargo run --release -p surveyor-testbed --example startup -- 10000`

use std::time::Instant;

use surveyor_testbed::{try_generate, Testbed, TestbedConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hosts: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 10_000,
    };
    let config = TestbedConfig {
        hosts,
        seed: 1,
        net: "127.208.0.0/14".parse()?,
        port: 0,
    };

    // As the `surveyor` binary does: one descriptor per listener.
    if let Ok((_, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        let want = (1u64 << 20).max(hard);
        if rlimit::setrlimit(rlimit::Resource::NOFILE, want, want).is_err() {
            let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard);
        }
    }
    let started = Instant::now();
    let plan = try_generate(&config)?;
    let planned = started.elapsed();

    let started = Instant::now();
    let bed = Testbed::start(config).await?;
    let up = started.elapsed();

    let host = bed
        .truth()
        .iter()
        .find(|h| h.exchange.is_some())
        .ok_or("no Exchange host")?;
    let started = Instant::now();
    let stream = tokio::net::TcpStream::connect((host.ip, host.port)).await?;
    drop(stream);
    let connect = started.elapsed();

    let shared = bed.shared_listeners();
    let started = Instant::now();
    bed.shutdown().await;
    let down = started.elapsed();
    println!(
        "hosts={} listeners={} plan={:.0} ms start={:.0} ms tcp_connect={:.1} ms \
         shutdown={:.0} ms peak_rss={} MiB",
        plan.len(),
        if shared { "shared" } else { "per-host" },
        planned.as_secs_f64() * 1e3,
        up.as_secs_f64() * 1e3,
        connect.as_secs_f64() * 1e3,
        down.as_secs_f64() * 1e3,
        peak_rss_mib().unwrap_or(0),
    );
    Ok(())
}

/// The process's peak resident set (VmHWM), Linux only.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
