//! What the census tests (`distributed.rs`, `syn_census.rs`) share: the binary, a check of a
//! command's exit, and worker processes that cannot outlive a failed test.

use std::process::{Child, Command, Output};

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
