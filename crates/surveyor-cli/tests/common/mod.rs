//! What the census tests (`distributed.rs`, `syn_census.rs`) share: the binary, a check of a
//! command's exit, worker processes that cannot outlive a failed test, and their fleet.

use std::process::{Child, Command, Output};

use surveyor_testbed::{FleetOptions, Testbed, TestbedConfig};

/// The surveyor binary, with no database from the environment and only errors logged.
pub fn surveyor() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_surveyor"));
    command.env_remove("SURVEYOR_DB").env("RUST_LOG", "error");
    command
}

pub fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A worker process, killed on drop so that a failed assertion leaves none running.
pub struct Worker(pub Option<Child>);

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A test-bed of `hosts` in `net` without tarpits: each would hold a worker's probe for the
/// whole target deadline.
pub async fn fleet(hosts: usize, seed: u64, net: &str) -> Testbed {
    let config = TestbedConfig {
        hosts,
        seed,
        net: net.parse().unwrap(),
        port: 0,
    };
    let options = FleetOptions {
        hostile_share: 0.0,
        ..FleetOptions::default()
    };
    Testbed::start_with(config, options)
        .await
        .expect("the test-bed starts")
}
