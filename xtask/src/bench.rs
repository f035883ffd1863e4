//! `cargo xtask bench`.

use std::process::ExitCode;

/// Runs the benchmarks. There are none yet: the first one measures federated
/// logins per second, and needs the server.
pub fn run() -> anyhow::Result<ExitCode> {
    println!("no benchmarks yet: they arrive with the server (federated logins per second)");
    Ok(ExitCode::SUCCESS)
}
