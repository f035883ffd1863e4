//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first
//! failure. Every step runs from the workspace root and prints a `==> ...`
//! header first.
//!
//! 1. `cargo fmt --all --check`
//! 2. `cargo clippy --workspace --all-targets --locked -- -D warnings`
//! 3. `npm ci` in `interop/` (the pinned third-party OpenID software the
//!    end-to-end tests run against; needs Node.js and npm);
//! 4. all tests on SQLite: `cargo test --workspace --locked` with
//!    `JIT_STORE_TEST_URL` removed, so the store suite uses temporary SQLite
//!    files;
//! 5. on PostgreSQL, with `JIT_STORE_TEST_URL` set to `JIT_TEST_POSTGRES_URL`
//!    (both skipped when that is unset or empty): the store suite, `cargo
//!    test -p jit-store --locked`, then two `jit serve` instances sharing the
//!    database, `cargo test -p jit --test cluster --locked`;
//! 6. on MySQL/MariaDB: the same with `JIT_TEST_MYSQL_URL`.
//!
//! The console's browser tests (step 4) drive Debian's Chromium and
//! chromedriver; without them they pass and say so, unless
//! `JIT_REQUIRE_BROWSER` is set. The summary says whether they could run.
//!
//! `--locked` is passed only when `Cargo.lock` exists. A summary then says,
//! per backend, whether it ran or why it was skipped; a backend named in
//! `JIT_REQUIRE_BACKENDS` (comma-separated: `postgres`, `mysql`) that was
//! skipped is a failure. The last line is `N passed, 0 failed` on success and
//! `N passed, 1 failed` on failure, N being the number of steps that passed:
//! CI reads it.

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// The variable the store suite reads its server URL from.
const STORE_TEST_URL: &str = "JIT_STORE_TEST_URL";

/// The variable naming the backends that must not be skipped.
const REQUIRE_BACKENDS: &str = "JIT_REQUIRE_BACKENDS";

/// The backend every run covers: it needs no server.
const SQLITE: &str = "sqlite";

/// A database server the store suite can run on, when the environment names one.
struct Server {
    /// The name in the summary and in `JIT_REQUIRE_BACKENDS`.
    name: &'static str,
    /// Other spellings accepted in `JIT_REQUIRE_BACKENDS`.
    aliases: &'static [&'static str],
    /// The label of the store suite's step.
    label: &'static str,
    /// The label of the two-instance step.
    cluster_label: &'static str,
    /// The variable holding the server URL (the database CI created on it).
    url_var: &'static str,
}

/// The servers, in the order their steps run.
const SERVERS: [Server; 2] = [
    Server {
        name: "postgres",
        aliases: &["postgresql", "pg"],
        label: "store suite on PostgreSQL",
        cluster_label: "two instances on PostgreSQL",
        url_var: "JIT_TEST_POSTGRES_URL",
    },
    Server {
        name: "mysql",
        aliases: &["mariadb"],
        label: "store suite on MySQL/MariaDB",
        cluster_label: "two instances on MySQL/MariaDB",
        url_var: "JIT_TEST_MYSQL_URL",
    },
];

/// What happened to one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Its tests ran and passed.
    Ran,
    /// Its tests did not run, for this reason.
    Skipped(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ran => f.write_str("ran"),
            Self::Skipped(reason) => write!(f, "SKIPPED ({reason})"),
        }
    }
}

/// Runs the checks; see the module docs. Step failures are reported on the
/// terminal and give [`ExitCode::FAILURE`]; the error is kept for the set-up.
pub fn run() -> Result<ExitCode> {
    let root = crate::workspace_root()?;
    let mut runner = Runner {
        cargo: env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")),
        locked: root.join("Cargo.lock").is_file(),
        root,
        passed: 0,
    };
    match runner.run_all() {
        Ok(()) => {
            println!("{} passed, 0 failed", runner.passed);
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            // On stdout, like the summary, so that the reason sits just above
            // the closing line in any log.
            println!("error: {err:#}");
            println!("{} passed, 1 failed", runner.passed);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What a step does with `JIT_STORE_TEST_URL` in the child's environment.
enum StoreUrl {
    /// Leave it as it is.
    Inherit,
    /// Remove it: the store suite falls back to SQLite.
    Remove,
    /// Set it to `url`, the value of the variable `from`.
    Set {
        /// The variable the URL came from (printed instead of the URL, which
        /// may hold a password).
        from: &'static str,
        /// The server URL.
        url: String,
    },
}

/// One `cargo` invocation.
struct Step {
    /// The name in the header and in failure messages; the command line when
    /// `None`.
    label: Option<&'static str>,
    /// The arguments after `cargo`.
    args: Vec<&'static str>,
    /// What happens to `JIT_STORE_TEST_URL`.
    store_url: StoreUrl,
}

impl Step {
    /// The command line, as printed.
    fn command(&self) -> String {
        format!("cargo {}", self.args.join(" "))
    }

    /// The name used when the step fails.
    fn name(&self) -> String {
        self.label.map_or_else(|| self.command(), str::to_owned)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(label) = self.label {
            write!(f, "{label}: ")?;
        }
        f.write_str(&self.command())?;
        match &self.store_url {
            StoreUrl::Inherit => Ok(()),
            StoreUrl::Remove => write!(f, " (without {STORE_TEST_URL})"),
            StoreUrl::Set { from, .. } => write!(f, " ({STORE_TEST_URL}=${from})"),
        }
    }
}

/// Runs the steps and counts those that passed.
struct Runner {
    /// The `cargo` to run: the one that started us, when known.
    cargo: OsString,
    /// Whether to pass `--locked` (`Cargo.lock` exists).
    locked: bool,
    /// The workspace root, the children's working directory.
    root: PathBuf,
    /// How many steps passed so far.
    passed: usize,
}

impl Runner {
    /// Every step, the summary and the backend requirements.
    fn run_all(&mut self) -> Result<()> {
        let required = parse_required(var(REQUIRE_BACKENDS)?.as_deref().unwrap_or_default())?;

        self.step(&Step { label: None, args: vec!["fmt", "--all", "--check"], store_url: StoreUrl::Inherit })?;
        self.step(&Step {
            label: None,
            args: self.args(&["clippy", "--workspace", "--all-targets"], &["--", "-D", "warnings"]),
            store_url: StoreUrl::Inherit,
        })?;
        self.npm_ci()?;
        self.step(&Step {
            label: Some("all tests on SQLite"),
            args: self.args(&["test", "--workspace"], &[]),
            store_url: StoreUrl::Remove,
        })?;

        let mut outcomes = vec![(SQLITE, Outcome::Ran)];
        for server in &SERVERS {
            let outcome = match var(server.url_var)? {
                Some(url) => {
                    for step in self.server_steps(server, &url) {
                        self.step(&step)?;
                    }
                    Outcome::Ran
                }
                None => {
                    let reason = format!("{} is not set", server.url_var);
                    for label in [server.label, server.cluster_label] {
                        println!("==> {label}: SKIPPED ({reason})");
                    }
                    Outcome::Skipped(reason)
                }
            };
            outcomes.push((server.name, outcome));
        }

        println!("==> summary");
        for (name, outcome) in &outcomes {
            println!("{name}: {outcome}");
        }
        println!("console in a browser: {}", browser_outcome());
        let unmet = unmet(&required, &outcomes);
        if !unmet.is_empty() {
            bail!("{REQUIRE_BACKENDS} requires backends that were skipped: {}", unmet.join(", "));
        }
        Ok(())
    }

    /// Installs the interop harness's npm packages exactly as locked.
    fn npm_ci(&mut self) -> Result<()> {
        let dir = self.root.join("interop");
        println!("==> interop packages: npm ci (in interop/)");
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .context("step `interop packages` failed: could not run `npm` (install Node.js 20+ and npm)")?;
        if !status.success() {
            bail!("step `interop packages` failed ({status})");
        }
        self.passed += 1;
        Ok(())
    }

    /// The steps that run on a database server at `url`: the store suite,
    /// then two `jit serve` instances sharing one database.
    fn server_steps(&self, server: &Server, url: &str) -> [Step; 2] {
        let store_url = || StoreUrl::Set { from: server.url_var, url: url.to_owned() };
        [
            Step {
                label: Some(server.label),
                args: self.args(&["test", "-p", "jit-store"], &[]),
                store_url: store_url(),
            },
            Step {
                label: Some(server.cluster_label),
                args: self.args(&["test", "-p", "jit", "--test", "cluster"], &[]),
                store_url: store_url(),
            },
        ]
    }

    /// `cargo` arguments: `head`, then `--locked` when `Cargo.lock` exists,
    /// then `tail`.
    fn args(&self, head: &[&'static str], tail: &[&'static str]) -> Vec<&'static str> {
        let locked: &[&'static str] = if self.locked { &["--locked"] } else { &[] };
        [head, locked, tail].concat()
    }

    /// Runs one step with inherited stdio; an error names the step.
    fn step(&mut self, step: &Step) -> Result<()> {
        println!("==> {step}");
        let mut command = Command::new(&self.cargo);
        command.args(&step.args).current_dir(&self.root);
        match &step.store_url {
            StoreUrl::Inherit => {}
            StoreUrl::Remove => {
                command.env_remove(STORE_TEST_URL);
            }
            StoreUrl::Set { url, .. } => {
                command.env(STORE_TEST_URL, url);
            }
        }
        let status = command
            .status()
            .with_context(|| format!("step `{}` failed: could not run `{}`", step.name(), step.command()))?;
        if !status.success() {
            bail!("step `{}` failed ({status})", step.name());
        }
        self.passed += 1;
        Ok(())
    }
}

/// Whether the console's browser tests (`crates/jit/tests/console.rs`) could
/// drive Chromium: they pass without it, saying so, unless
/// `JIT_REQUIRE_BROWSER` is set.
fn browser_outcome() -> Outcome {
    let missing: Vec<String> = BROWSER_BINARIES
        .iter()
        .map(|(var, default)| env::var(var).unwrap_or_else(|_| (*default).to_owned()))
        .filter(|path| !std::path::Path::new(path).exists())
        .collect();
    if missing.is_empty() {
        Outcome::Ran
    } else {
        Outcome::Skipped(format!("{} missing: apt-get install chromium chromium-driver", missing.join(" and ")))
    }
}

/// What the console's browser tests drive: (the variable naming it, Debian's path).
const BROWSER_BINARIES: [(&str, &str); 2] =
    [("JIT_CHROMIUM", "/usr/bin/chromium"), ("JIT_CHROMEDRIVER", "/usr/bin/chromedriver")];

/// The value of the variable `name`, or `None` when it is unset or blank.
fn var(name: &str) -> Result<Option<String>> {
    match env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(env::VarError::NotPresent) => Ok(None),
        Err(env::VarError::NotUnicode(_)) => bail!("{name} is not valid UTF-8"),
    }
}

/// The backends named in `JIT_REQUIRE_BACKENDS`, by their canonical names.
/// Unknown names are an error, so that a typo does not pass silently.
fn parse_required(value: &str) -> Result<Vec<&'static str>> {
    let mut required = Vec::new();
    for item in value.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let item = item.to_ascii_lowercase();
        let name = if item == SQLITE {
            SQLITE
        } else if let Some(server) =
            SERVERS.iter().find(|server| server.name == item || server.aliases.contains(&item.as_str()))
        {
            server.name
        } else {
            let known: Vec<&str> = SERVERS.iter().map(|server| server.name).collect();
            bail!("{REQUIRE_BACKENDS} names an unknown backend `{item}` (known: {})", known.join(", "));
        };
        if !required.contains(&name) {
            required.push(name);
        }
    }
    Ok(required)
}

/// The required backends that did not run, each with the reason.
fn unmet(required: &[&str], outcomes: &[(&str, Outcome)]) -> Vec<String> {
    required
        .iter()
        .filter_map(|name| match outcomes.iter().find(|(backend, _)| backend == name) {
            Some((_, Outcome::Ran)) => None,
            Some((_, Outcome::Skipped(reason))) => Some(format!("{name} ({reason})")),
            None => Some(format!("{name} (not run)")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_required_backends() {
        assert_eq!(parse_required("").unwrap(), Vec::<&str>::new());
        assert_eq!(parse_required("postgres,mysql").unwrap(), ["postgres", "mysql"]);
        assert_eq!(parse_required(" MariaDB , postgresql,, mysql ").unwrap(), ["mysql", "postgres"]);
        assert_eq!(parse_required("sqlite").unwrap(), ["sqlite"]);
        let err = parse_required("postgres,oracle").unwrap_err().to_string();
        assert!(err.contains("`oracle`"), "{err}");
    }

    #[test]
    fn reports_skipped_required_backends() {
        let outcomes = [
            (SQLITE, Outcome::Ran),
            ("postgres", Outcome::Ran),
            ("mysql", Outcome::Skipped("JIT_TEST_MYSQL_URL is not set".into())),
        ];
        assert!(unmet(&["sqlite", "postgres"], &outcomes).is_empty());
        assert_eq!(unmet(&["postgres", "mysql"], &outcomes), ["mysql (JIT_TEST_MYSQL_URL is not set)"]);
    }

    #[test]
    fn locked_goes_before_the_trailing_arguments() {
        let mut runner = Runner { cargo: "cargo".into(), locked: true, root: PathBuf::from("."), passed: 0 };
        assert_eq!(
            runner.args(&["clippy", "--workspace"], &["--", "-D", "warnings"]),
            ["clippy", "--workspace", "--locked", "--", "-D", "warnings"]
        );
        runner.locked = false;
        assert_eq!(runner.args(&["test", "-p", "jit-store"], &[]), ["test", "-p", "jit-store"]);
    }

    #[test]
    fn each_server_runs_the_store_suite_then_the_cluster_test() {
        let runner = Runner { cargo: "cargo".into(), locked: true, root: PathBuf::from("."), passed: 0 };
        for server in &SERVERS {
            let steps = runner.server_steps(server, "postgres://u:secret@h/db");
            let lines: Vec<String> = steps.iter().map(ToString::to_string).collect();
            assert_eq!(
                lines,
                [
                    format!(
                        "{}: cargo test -p jit-store --locked (JIT_STORE_TEST_URL=${})",
                        server.label, server.url_var
                    ),
                    format!(
                        "{}: cargo test -p jit --test cluster --locked (JIT_STORE_TEST_URL=${})",
                        server.cluster_label, server.url_var
                    ),
                ]
            );
            assert!(lines.iter().all(|line| !line.contains("secret")), "{lines:?}");
        }
    }

    #[test]
    fn headers_name_the_variable_not_the_url() {
        let step = Step {
            label: Some("store suite on PostgreSQL"),
            args: vec!["test", "-p", "jit-store"],
            store_url: StoreUrl::Set { from: "JIT_TEST_POSTGRES_URL", url: "postgres://u:secret@h/db".into() },
        };
        assert_eq!(
            step.to_string(),
            "store suite on PostgreSQL: cargo test -p jit-store (JIT_STORE_TEST_URL=$JIT_TEST_POSTGRES_URL)"
        );
        let fmt = Step { label: None, args: vec!["fmt", "--all", "--check"], store_url: StoreUrl::Inherit };
        assert_eq!(fmt.to_string(), "cargo fmt --all --check");
        assert_eq!(fmt.name(), "cargo fmt --all --check");
    }
}
