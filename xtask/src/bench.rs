//! `cargo xtask bench [OPTIONS]`: federated logins per second through jit.
//!
//! 1. `cargo build --release -p jit -p jit-bench` (`--locked` when
//!    `Cargo.lock` exists);
//! 2. `npm ci` in `interop/` when its packages are missing (node
//!    `oidc-provider` is the default IdP);
//! 3. runs `jit-bench --jit <target>/release/jit` with the remaining options
//!    passed through (`--logins N`, `--concurrency 1,8,32`,
//!    `--backends sqlite,postgres`, `--idp node|test`, `--seed-users N`,
//!    `--warmup N`, `--json PATH`; see
//!    `crates/jit-bench`), and `JIT_BENCH_JSON=<target>/bench/federated.json`
//!    unless that variable is set.
//!
//! `<target>` is `CARGO_TARGET_DIR` (relative to the workspace root when
//! relative) or `<root>/target`. PostgreSQL runs when `JIT_BENCH_POSTGRES_URL`
//! or `JIT_TEST_POSTGRES_URL` names a server; the benchmark creates and drops
//! its own database there.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// The variable jit-bench reads its JSON output path from.
const JSON_VAR: &str = "JIT_BENCH_JSON";

/// Builds jit and the benchmark in release, then runs the benchmark with `args`.
pub fn run(args: &[OsString]) -> Result<ExitCode> {
    let root = crate::workspace_root()?;
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut build: Vec<&str> = vec!["build", "--release", "-p", "jit", "-p", "jit-bench"];
    if root.join("Cargo.lock").is_file() {
        build.push("--locked");
    }
    println!("==> cargo {}", build.join(" "));
    let status = Command::new(&cargo)
        .args(&build)
        .current_dir(&root)
        .status()
        .with_context(|| format!("could not run `cargo {}`", build.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", build.join(" "));
    }

    // node oidc-provider, the default IdP, runs from interop/.
    if !root.join("interop/node_modules").is_dir() {
        println!("==> npm ci (in interop/)");
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(root.join("interop"))
            .status()
            .context("could not run `npm` (the default IdP, node oidc-provider, needs Node.js 20+ and npm)")?;
        if !status.success() {
            bail!("`npm ci` in interop/ failed ({status})");
        }
    }
    let release = target_dir(&root, env::var_os("CARGO_TARGET_DIR")).join("release");
    let (jit, bench) = (release.join(exe("jit")), release.join(exe("jit-bench")));
    for binary in [&jit, &bench] {
        if !binary.is_file() {
            bail!("the build did not leave {} (is the target directory elsewhere?)", binary.display());
        }
    }
    let mut command = Command::new(&bench);
    command.arg("--jit").arg(&jit).args(args).current_dir(&root);
    if env::var_os(JSON_VAR).is_none() {
        let json = target_dir(&root, env::var_os("CARGO_TARGET_DIR")).join("bench").join("federated.json");
        command.env(JSON_VAR, json);
    }
    println!("==> {} --jit {}{}", bench.display(), jit.display(), shown(args));
    let status = command.status().with_context(|| format!("could not run {}", bench.display()))?;
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Where cargo puts build output: `CARGO_TARGET_DIR` (relative to `root` when relative,
/// ignored when empty) or `root/target`.
fn target_dir(root: &Path, cargo_target_dir: Option<OsString>) -> PathBuf {
    match cargo_target_dir.filter(|dir| !dir.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// A binary's file name on this platform.
fn exe(name: &str) -> String {
    format!("{name}{}", env::consts::EXE_SUFFIX)
}

/// The arguments as typed, each after a space, for the header line.
fn shown(args: &[OsString]) -> String {
    args.iter().map(|arg| format!(" {}", arg.to_string_lossy())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_directory_follows_cargo_target_dir() {
        let root = Path::new("/work/repo");
        assert_eq!(target_dir(root, None), Path::new("/work/repo/target"));
        assert_eq!(target_dir(root, Some("".into())), Path::new("/work/repo/target"));
        assert_eq!(target_dir(root, Some("/cache/t".into())), Path::new("/cache/t"));
        assert_eq!(target_dir(root, Some("out".into())), Path::new("/work/repo/out"));
    }

    #[test]
    fn arguments_are_shown_as_typed() {
        assert_eq!(shown(&["--logins".into(), "50".into()]), " --logins 50");
        assert_eq!(shown(&[]), "");
    }
}
