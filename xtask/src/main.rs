//! Project automation for jit, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml` for `cargo run --package xtask --`).
//!
//! Commands:
//!
//! - `ci`: formatting, lints, every test on SQLite, then the store suite on
//!   PostgreSQL and MySQL/MariaDB when `JIT_TEST_POSTGRES_URL` /
//!   `JIT_TEST_MYSQL_URL` name a server; see [`ci`] for the details.
//! - `bench [OPTIONS]`: builds jit in release and measures federated first
//!   and returning logins per second, latency and jit's CPU time per login,
//!   on SQLite and on PostgreSQL; see [`bench`].
//! - `help`: the usage text.
//!
//! The command line is parsed by hand on purpose: the crate depends on
//! `anyhow` alone (and, for its tidy tests, `serde_json`).

mod bench;
mod ci;
#[cfg(test)]
mod tidy;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The usage text printed by `cargo xtask help` and after an unknown command.
const USAGE: &str = "\
Usage: cargo xtask <command> [options]

Commands:
  ci      formatting, clippy, all tests on SQLite, then the store suite on
          PostgreSQL / MySQL-MariaDB when JIT_TEST_POSTGRES_URL /
          JIT_TEST_MYSQL_URL are set; JIT_REQUIRE_BACKENDS=postgres,mysql
          makes a skipped backend an error
  bench   build jit in release and benchmark federated logins: N first and N
          returning logins per concurrency level against node oidc-provider
          (interop/; or --idp test for the in-process test IdP), on SQLite
          and on PostgreSQL (JIT_BENCH_POSTGRES_URL or JIT_TEST_POSTGRES_URL;
          skipped when neither is set); prints logins/s, p50/p99 latency,
          jit's and the IdP's CPU time per login and their ratio, database
          statements and commits per login (from jit's /metrics) and RSS.
          Options:
            --idp node|test        the external IdP (default node)
            --logins N             logins per phase (default 500)
            --concurrency 1,8,32   concurrency levels
            --backends sqlite,postgres
            --warmup N             unmeasured logins first (default 50)
            --json PATH            results as JSON (default
                                   <target>/bench/federated.json)
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
    let result = match command.as_ref() {
        "ci" => match rest.first() {
            Some(extra) => {
                return usage_error(&format!("`{command}` takes no arguments (got `{}`)", extra.to_string_lossy()));
            }
            None => ci::run(),
        },
        // The options are the benchmark binary's: it checks them.
        "bench" => bench::run(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => return usage_error(&format!("unknown command `{other}`")),
    };
    match result {
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

/// The workspace root: the parent of xtask's directory. `cargo run` tells
/// the directory at run time; that wins over the one compiled in, because
/// checkouts at different paths sharing one `CARGO_TARGET_DIR` share one
/// uplifted `xtask` binary too.
fn workspace_root() -> anyhow::Result<PathBuf> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf());
    let root =
        manifest_dir.parent().ok_or_else(|| anyhow::anyhow!("{} has no parent directory", manifest_dir.display()))?;
    Ok(root.to_path_buf())
}
