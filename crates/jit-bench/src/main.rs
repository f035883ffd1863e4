//! # jit-bench
//!
//! Measures federated logins through jit, end to end over loopback HTTP, and
//! jit's own cost for them. `cargo xtask bench` builds jit in release and runs
//! this binary; run it directly as `jit-bench --jit <path to jit>`.
//!
//! Per backend (a fresh SQLite file; a fresh PostgreSQL database when
//! `JIT_BENCH_POSTGRES_URL` or `JIT_TEST_POSTGRES_URL` names a server), it
//! starts `jit serve` and an external OpenID provider — by default node
//! `oidc-provider` from `interop/`, which does a whole login of its own (its
//! login form is filled in, one fresh browser per login) and whose CPU is
//! measured beside jit's; with `--idp test`, `jit_testkit::TestIdp` in this
//! process (no UI, to profile jit alone) — registers a connection and an
//! application, warms up, and then for every concurrency level runs N *first*
//! logins (new IdP subjects: jit creates their accounts just in time) and N
//! *returning* logins (the same subjects: jit finds and syncs their accounts).
//!
//! A login is what an application and a browser do: `GET /oauth2/authorize`
//! with PKCE and `fidp=`, the redirects through the IdP and back to jit's
//! callback (with that login's cookies only), then the application's
//! `POST /oauth2/token`; it succeeds when the ID token carries the login's
//! nonce and the expected account.
//!
//! Reported per phase: logins per second (wall time), p50/p99 latency, and
//! **jit's CPU time per login** — `utime + stime` of the jit process from the
//! kernel's accounting (`/proc/<pid>/stat`) over the phase, divided by the
//! logins — so that a slow IdP or load generator cannot hide jit's cost. Beside
//! it: the CPU time of the PostgreSQL backends serving jit's database (found by
//! their process titles, when the server is local; SQLite runs inside jit) and
//! of this process (IdP + load generator). Any failed login makes the run fail
//! (exit code 1).

mod cpu;
mod database;
mod idp;
mod login;
mod process;
mod report;
mod run;
mod scrape;
mod script;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use jit_testkit::Counters;
use serde_json::json;

use crate::cpu::CpuClock;
use crate::database::{Backend, POSTGRES_URL_VARS, Scratch, postgres_url_from_env};
use crate::idp::IdpKind;
use crate::run::{PhaseResult, Plan};

/// Benchmark of federated first and returning logins through jit.
#[derive(Debug, Parser)]
#[command(name = "jit-bench")]
struct Args {
    /// The jit binary to benchmark (build it with --release).
    #[arg(long, env = "JIT_BENCH_JIT")]
    jit: PathBuf,
    /// Logins per phase (each concurrency level has a first and a returning phase).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    logins: u32,
    /// Concurrency levels: logins in flight at once, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32", value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: Vec<u32>,
    /// Backends, comma-separated: sqlite, postgres [default: sqlite,postgres; postgres is
    /// skipped when neither JIT_BENCH_POSTGRES_URL nor JIT_TEST_POSTGRES_URL is set, and an
    /// error when asked for explicitly]
    #[arg(long, value_delimiter = ',')]
    backends: Option<Vec<Backend>>,
    /// Local users created in bulk before jit starts (not through logins): to see whether
    /// provisioning costs grow with the number of users.
    #[arg(long, default_value_t = 0)]
    seed_users: usize,
    /// Unmeasured logins per backend before the first phase (fills caches and connection pools).
    #[arg(long, default_value_t = 50)]
    warmup: u32,
    /// The external IdP: node oidc-provider from interop/ (its CPU is measured beside jit's), or
    /// the in-process test IdP (no login page; to profile jit alone).
    #[arg(long, value_enum, default_value_t = IdpKind::Node)]
    idp: IdpKind,
    /// Evaluations of the seeds' script per measured sign-in step (0: skip).
    #[arg(long, default_value_t = 2000)]
    script_runs: u32,
    /// Also write the results as JSON to this file.
    #[arg(long, env = "JIT_BENCH_JSON")]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(args)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Why a backend was not benchmarked.
struct Skipped {
    backend: Backend,
    reason: String,
}

async fn bench(args: Args) -> Result<ExitCode> {
    let started = Instant::now();
    let jit = std::fs::canonicalize(&args.jit).with_context(|| format!("the jit binary {}", args.jit.display()))?;
    let mut concurrency: Vec<usize> = Vec::new();
    for level in args.concurrency.iter().map(|&level| level as usize) {
        if !concurrency.contains(&level) {
            concurrency.push(level);
        }
    }
    if concurrency.is_empty() {
        bail!("--concurrency needs at least one level");
    }
    let plan = Plan {
        jit,
        logins: args.logins as usize,
        concurrency,
        warmup: args.warmup as usize,
        idp: args.idp,
        seed_users: args.seed_users,
    };
    let explicit = args.backends.is_some();
    let mut backends: Vec<Backend> = Vec::new();
    for backend in args.backends.unwrap_or_else(|| vec![Backend::Sqlite, Backend::Postgres]) {
        if !backends.contains(&backend) {
            backends.push(backend);
        }
    }
    let postgres = postgres_url_from_env();
    if explicit && backends.contains(&Backend::Postgres) && postgres.is_none() {
        bail!("--backends names postgres, but neither {} is set", POSTGRES_URL_VARS.join(" nor "));
    }

    let cpu = CpuClock::new();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "jit-bench: {} first + {} returning logins per concurrency level {:?}, warm-up {}, on {}",
        plan.logins,
        plan.logins,
        plan.concurrency,
        plan.warmup,
        backends.iter().map(Backend::to_string).collect::<Vec<_>>().join(", ")
    );
    println!("jit: {}; {cores} CPU cores; CPU clock {} ticks/s", plan.jit.display(), cpu.ticks_per_second());
    println!("external IdP: {}; {} users seeded before jit starts", plan.idp, plan.seed_users);

    let mut results: Vec<PhaseResult> = Vec::new();
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut idp_calls: Vec<(Backend, Counters)> = Vec::new();
    for &backend in &backends {
        let scratch = match (backend, &postgres) {
            (Backend::Sqlite, _) => Scratch::sqlite().await,
            (Backend::Postgres, Some((_, url))) => Scratch::postgres(url).await,
            (Backend::Postgres, None) => {
                let reason = format!("neither {} is set", POSTGRES_URL_VARS.join(" nor "));
                skipped.push(Skipped { backend, reason });
                continue;
            }
        };
        let scratch = match scratch {
            Ok(scratch) => scratch,
            Err(error) => {
                failures.push(format!("{backend}: preparing the database failed: {error:#}"));
                continue;
            }
        };
        if let (Backend::Postgres, Some((var, _))) = (backend, &postgres) {
            eprintln!("[{backend}] server from {var}");
        }
        match run::run_backend(&plan, backend, &scratch, cpu, |result| results.push(result)).await {
            Ok(Some(counters)) => idp_calls.push((backend, counters)),
            Ok(None) => {}
            Err(error) => failures.push(format!("{backend}: {error:#}")),
        }
        if let Err(error) = scratch.remove().await {
            eprintln!("[{backend}] warning: could not remove the benchmark database: {error:#}");
        }
    }

    println!();
    print!("{}", report::table(&results));
    println!();
    println!("logins/s: successful logins / wall time of the phase; p50/p99: latency of one whole login");
    println!("  (authorize -> IdP -> callback -> token) as the load generator saw it.");
    println!("jit CPU ms/login: user+system CPU time of the jit process over the phase (/proc/<pid>/stat),");
    println!("  divided by the logins; jit cores: that CPU time / wall time.");
    println!("db CPU ms/login: the same for the PostgreSQL backends serving jit's database, when the server is");
    println!("  local ('-' for SQLite, whose work runs inside jit and counts as jit's CPU).");
    println!("IdP CPU ms/login: the same for node oidc-provider's process, doing its own whole login each time");
    println!("  ('-' with the in-process test IdP); jit/IdP: jit's CPU per login over the IdP's.");
    println!("bench CPU ms/login: the same for this process (load generator, and the test IdP when it is used).");
    for (backend, calls) in &idp_calls {
        println!(
            "{backend}: jit called the test IdP's discovery {} times, JWKS {}, authorize {}, token {}, userinfo {} \
             (warm-up included)",
            calls.discovery, calls.jwks, calls.authorize, calls.token, calls.userinfo
        );
    }
    for skip in &skipped {
        println!("{}: SKIPPED ({})", skip.backend, skip.reason);
    }
    let mut script_timings = Vec::new();
    if args.script_runs > 0 {
        match script::measure(args.script_runs as usize) {
            Ok(timings) => {
                println!();
                println!("conditional authentication script: the seeds' script, one fresh engine per decision");
                print!("{}", script::table(&timings));
                script_timings = timings;
            }
            Err(error) => failures.push(format!("script: {error:#}")),
        }
    }
    println!("total run time {:.1} s", started.elapsed().as_secs_f64());

    if let Some(path) = &args.json {
        let context = json!({
            "jit": plan.jit.display().to_string(),
            "logins_per_phase": plan.logins,
            "concurrency": plan.concurrency,
            "warmup": plan.warmup,
            "idp": plan.idp.to_string(),
            "seed_users": plan.seed_users,
            "cpu_cores": cores,
            "clock_ticks_per_second": cpu.ticks_per_second(),
            "skipped": skipped.iter().map(|s| json!({"backend": s.backend.to_string(), "reason": s.reason})).collect::<Vec<_>>(),
            "failures": failures,
            "script": script_timings.iter().map(|t| json!({
                "case": t.case, "decision": format!("{:?}", t.decision), "runs": t.runs,
                "p50_us": t.p50.as_secs_f64() * 1e6, "p99_us": t.p99.as_secs_f64() * 1e6,
            })).collect::<Vec<_>>(),
        });
        let value = report::json(&results, context);
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let text = serde_json::to_string_pretty(&value).context("encoding the results")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("results as JSON: {}", path.display());
    }

    let failed_logins: usize = results.iter().map(|result| result.stats.errors).sum();
    let total_logins: usize = results.iter().map(|result| result.stats.logins).sum();
    if failed_logins > 0 {
        println!();
        println!("BENCHMARK FAILED: {failed_logins} of {total_logins} logins failed; the figures above are not valid.");
        for result in results.iter().filter(|result| result.stats.errors > 0) {
            for sample in &result.error_samples {
                println!("  {} {} c={}: {sample}", result.backend, result.phase.name(), result.concurrency);
            }
        }
    }
    for failure in &failures {
        println!("BENCHMARK FAILED: {failure}");
    }
    Ok(if failed_logins > 0 || !failures.is_empty() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
