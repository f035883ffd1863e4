//! Project automation for jit, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml` for `cargo run --package xtask --`).
//!
//! Commands:
//!
//! - `ci`: formatting, lints, every test on SQLite, then the store suite on
//!   PostgreSQL and MySQL/MariaDB when `JIT_TEST_POSTGRES_URL` /
//!   `JIT_TEST_MYSQL_URL` name a server; see [`ci`] for the details.
//! - `bench`: benchmarks (none yet).
//! - `help`: the usage text.
//!
//! The command line is parsed by hand on purpose: the crate depends on
//! `anyhow` alone.

mod bench;
mod ci;

use std::ffi::OsString;
use std::process::ExitCode;

/// The usage text printed by `cargo xtask help` and after an unknown command.
const USAGE: &str = "\
Usage: cargo xtask <command>

Commands:
  ci      formatting, clippy, all tests on SQLite, then the store suite on
          PostgreSQL / MySQL-MariaDB when JIT_TEST_POSTGRES_URL /
          JIT_TEST_MYSQL_URL are set; JIT_REQUIRE_BACKENDS=postgres,mysql
          makes a skipped backend an error
  bench   run the benchmarks
  help    print this message
";

/// Exit code for a command line we do not understand.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    };
    let command = command.to_string_lossy();
    let run: fn() -> anyhow::Result<ExitCode> = match command.as_ref() {
        "ci" => ci::run,
        "bench" => bench::run,
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => return usage_error(&format!("unknown command `{other}`")),
    };
    if let Some(extra) = rest.first() {
        return usage_error(&format!("`{command}` takes no arguments (got `{}`)", extra.to_string_lossy()));
    }
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `message` and the usage text to stderr, and returns exit code 2.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}\n");
    eprint!("{USAGE}");
    ExitCode::from(USAGE_ERROR)
}
