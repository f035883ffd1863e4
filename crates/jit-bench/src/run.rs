//! One backend's run: jit on a fresh database, the test IdP in this process, a
//! connection and an application; then, per concurrency level, N first logins
//! (new IdP subjects: jit creates their accounts) and N returning logins (the
//! same subjects again: jit signs them in and syncs their attributes).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use jit_testkit::Counters;
use serde_json::{Value, json};

use crate::cpu::{CpuClock, spent_between};
use crate::database::{Backend, Scratch};
use crate::idp::{Idp, IdpKind};
use crate::login::{self, SignedIn, Target};
use crate::process::{ADMIN_TOKEN, Jit, free_port};
use crate::scrape::{DbCounters, db_counters, rss_kib};
use crate::stats::{CpuSpent, PhaseStats};

/// The connection's name at jit.
const CONNECTION: &str = "bench";

/// The application's redirect URI; never contacted, the login stops at it.
const REDIRECT_URI: &str = "http://127.0.0.1:9/bench/callback";

/// How many error messages of a phase are kept for the report.
const ERROR_SAMPLES: usize = 3;

/// Which logins a phase makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// New subjects: the account is created just in time.
    First,
    /// Subjects seen in the first phase: the account is found and synced.
    Returning,
}

impl Phase {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::Returning => "returning",
        }
    }
}

/// The figures of one phase.
#[derive(Clone, Debug)]
pub struct PhaseResult {
    /// The database.
    pub backend: Backend,
    /// First or returning logins.
    pub phase: Phase,
    /// Concurrent logins.
    pub concurrency: usize,
    /// What was measured.
    pub stats: PhaseStats,
    /// A few of the errors, if any.
    pub error_samples: Vec<String>,
    /// jit's database statements, writes and commits during the phase (from its `/metrics`).
    pub db: DbCounters,
    /// jit's resident memory after the phase and at its peak so far, in KiB.
    pub rss_kib: Option<(u64, u64)>,
    /// jit's resident memory once started, before any login, in KiB.
    pub idle_rss_kib: Option<u64>,
}

/// What the run is asked to do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The jit binary.
    pub jit: PathBuf,
    /// Logins per phase.
    pub logins: usize,
    /// Concurrency levels, in order.
    pub concurrency: Vec<usize>,
    /// Unmeasured logins first.
    pub warmup: usize,
    /// The external IdP.
    pub idp: IdpKind,
    /// Local users created in bulk before jit starts.
    pub seed_users: usize,
}

/// Everything one backend's run holds.
struct Bench {
    jit: Jit,
    idp: Idp,
    target: Arc<Target>,
    client: reqwest::Client,
    cpu: CpuClock,
    /// What the command lines of the database server's processes serving jit contain.
    db_processes: Option<String>,
}

/// Runs every phase on `backend` with the database `scratch`, printing progress on stderr.
/// `on_result` gets each phase's figures as soon as they are measured. Returns how often
/// jit called each endpoint of the IdP, warm-up included (the test IdP counts them).
pub async fn run_backend(
    plan: &Plan,
    backend: Backend,
    scratch: &Scratch,
    cpu: CpuClock,
    mut on_result: impl FnMut(PhaseResult),
) -> Result<Option<Counters>> {
    if plan.seed_users > 0 {
        let started = Instant::now();
        seed(scratch.url(), plan.seed_users).await?;
        eprintln!("[{backend}] {} users seeded in {:.1} s", plan.seed_users, started.elapsed().as_secs_f64());
    }
    let mut bench = Bench::start(&plan.jit, plan.idp, scratch, cpu).await?;
    eprintln!("[{backend}] jit (pid {}) at {} on {}", bench.jit.pid(), bench.jit.url, scratch.describe());
    let idle_rss_kib = rss_kib(bench.jit.pid()).map(|(now, _)| now);
    if let Some(idle) = idle_rss_kib {
        eprintln!("[{backend}] jit idle RSS: {:.1} MiB", idle as f64 / 1024.0);
    }

    if plan.warmup > 0 {
        let level = plan.concurrency.iter().copied().max().unwrap_or(1);
        let subjects: Vec<String> = (0..plan.warmup).map(|i| format!("warmup-{i}")).collect();
        let outcome = bench.logins(&subjects, level).await?;
        if let Some(error) = outcome.errors.first() {
            bail!(
                "{} of {} warm-up logins failed, the first: {error}\njit's last lines:\n{}",
                outcome.errors.len(),
                subjects.len(),
                bench.jit.tail()
            );
        }
        eprintln!("[{backend}] warm-up: {} logins at concurrency {level}", subjects.len());
    }

    for &concurrency in &plan.concurrency {
        let subjects: Vec<String> = (0..plan.logins).map(|i| format!("c{concurrency}-user-{i}")).collect();
        let mut accounts = HashMap::new();
        for phase in [Phase::First, Phase::Returning] {
            let before = db_counters(&bench.client, &bench.jit).await?;
            let mut outcome = bench.logins(&subjects, concurrency).await?;
            let db = before.until(db_counters(&bench.client, &bench.jit).await?);
            let rss_kib = rss_kib(bench.jit.pid());
            outcome.check(phase, &subjects, &mut accounts);
            let result = PhaseResult {
                backend,
                phase,
                concurrency,
                stats: outcome.stats(),
                error_samples: outcome.errors.iter().take(ERROR_SAMPLES).cloned().collect(),
                db,
                rss_kib,
                idle_rss_kib,
            };
            eprintln!(
                "[{backend}] {:<9} c={concurrency:<3} {} logins, {} errors, {:.1} logins/s",
                phase.name(),
                result.stats.logins,
                result.stats.errors,
                result.stats.throughput()
            );
            on_result(result);
            if let Some(status) = bench.jit.exit_status() {
                bail!("jit exited during the run ({status}); its last lines:\n{}", bench.jit.tail());
            }
        }
    }
    Ok(bench.idp.counters())
}

/// What a batch of logins gave.
struct Outcome {
    latencies: Vec<Duration>,
    signed_in: Vec<SignedIn>,
    errors: Vec<String>,
    wall: Duration,
    cpu: CpuSpent,
}

impl Outcome {
    /// Checks that first logins created one new account per subject and returning logins
    /// came back to those accounts; every deviation counts as an error.
    fn check(&mut self, phase: Phase, subjects: &[String], accounts: &mut HashMap<String, String>) {
        let expected: HashSet<String> = subjects.iter().map(|subject| email(subject)).collect();
        let mut seen = HashSet::new();
        let mut problems = Vec::new();
        for signed_in in &self.signed_in {
            if !expected.contains(&signed_in.email) {
                problems.push(format!(
                    "signed in as {} ({}), not a subject of this phase",
                    signed_in.email, signed_in.subject
                ));
            } else if !seen.insert(signed_in.email.clone()) {
                problems.push(format!("{} signed in twice in one phase", signed_in.email));
            }
            match phase {
                Phase::First => {
                    if accounts.values().any(|account| *account == signed_in.subject) {
                        problems.push(format!("{} got another user's account {}", signed_in.email, signed_in.subject));
                    }
                    accounts.insert(signed_in.email.clone(), signed_in.subject.clone());
                }
                Phase::Returning => match accounts.get(&signed_in.email) {
                    Some(account) if *account == signed_in.subject => {}
                    Some(account) => problems.push(format!(
                        "{} came back as account {} instead of {account}",
                        signed_in.email, signed_in.subject
                    )),
                    // Its first login failed and was counted then.
                    None => {}
                },
            }
        }
        // Each problem spoils one login that looked successful.
        let spoiled = problems.len().min(self.latencies.len());
        self.latencies.truncate(self.latencies.len() - spoiled);
        self.errors.extend(problems);
    }

    fn stats(&self) -> PhaseStats {
        PhaseStats::new(self.latencies.clone(), self.errors.len(), self.wall, self.cpu)
    }
}

/// The email the IdP gives `subject`.
fn email(subject: &str) -> String {
    format!("{subject}@example.com")
}

/// What the IdP says about `subject`.
fn idp_claims(subject: &str) -> Value {
    json!({
        "email": email(subject),
        "email_verified": true,
        "preferred_username": subject,
        "given_name": "Bench",
        "family_name": subject,
        "name": format!("Bench {subject}"),
    })
}

impl Bench {
    /// The IdP, jit, the connection and the application.
    async fn start(binary: &Path, kind: IdpKind, scratch: &Scratch, cpu: CpuClock) -> Result<Self> {
        let port = free_port()?;
        let jit_url = format!("http://127.0.0.1:{port}");
        let idp = Idp::start(kind, &jit_url, CONNECTION).await?;
        let (idp_client_id, idp_client_secret) = idp.client();
        let (binary, database_url) = (binary.to_owned(), scratch.url().to_owned());
        let jit = tokio::task::spawn_blocking(move || Jit::start(&binary, port, &database_url))
            .await
            .context("starting jit")??;
        let client = login::client()?;

        let connection = json!({
            "name": CONNECTION,
            "display_name": "Benchmark IdP",
            "protocol": "oidc",
            "oidc": {
                "issuer": idp.issuer(),
                "client_id": idp_client_id,
                "client_secret": idp_client_secret,
                "scopes": ["openid", "profile", "email"],
            },
            "jit": {"enabled": true},
        });
        admin_post(&client, &jit, "/connections", &connection).await?;
        let application = admin_post(
            &client,
            &jit,
            "/applications",
            &json!({
                "name": "bench",
                "redirect_uris": [REDIRECT_URI],
                "public": false,
                "sign_in": {"steps": [{"options": [CONNECTION]}]},
            }),
        )
        .await?;
        let field = |name: &str| {
            application[name].as_str().map(str::to_owned).with_context(|| format!("the application has no {name}"))
        };
        let target = Target {
            jit_url,
            client_id: field("client_id")?,
            client_secret: field("client_secret")?,
            redirect_uri: REDIRECT_URI.to_owned(),
            connection: CONNECTION.to_owned(),
        };
        Ok(Self { jit, idp, target: Arc::new(target), client, cpu, db_processes: scratch.server_processes() })
    }

    /// Signs each of `subjects` in once, `concurrency` at a time, measuring wall time and
    /// the CPU time of jit and of this process.
    async fn logins(&mut self, subjects: &[String], concurrency: usize) -> Result<Outcome> {
        let users = subjects.iter().map(|subject| (subject.clone(), idp_claims(subject))).collect();
        self.idp.set_users(&self.client, users).await?;
        let total = subjects.len();
        let subjects: Arc<Vec<String>> = Arc::new(subjects.to_vec());
        let next = Arc::new(AtomicUsize::new(0));

        let db_before = self.db_processes.as_deref().map(|needle| self.cpu.processes_with(needle));
        let jit_before = self.cpu.process(self.jit.pid())?;
        let idp_before = self.idp.pid().map(|pid| self.cpu.process(pid)).transpose()?;
        let bench_before = self.cpu.this_process()?;
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..concurrency.clamp(1, total.max(1)) {
            let (client, target, next) = (self.client.clone(), self.target.clone(), next.clone());
            let subjects = subjects.clone();
            workers.spawn(async move {
                let mut latencies = Vec::new();
                let mut signed_in = Vec::new();
                let mut errors = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(subject) = subjects.get(index) else { break };
                    let start = Instant::now();
                    match login::login(&client, &target, subject).await {
                        Ok(who) => {
                            latencies.push(start.elapsed());
                            signed_in.push(who);
                        }
                        Err(error) => errors.push(format!("{error:#}")),
                    }
                }
                (latencies, signed_in, errors)
            });
        }
        let mut outcome = Outcome {
            latencies: Vec::with_capacity(total),
            signed_in: Vec::with_capacity(total),
            errors: Vec::new(),
            wall: Duration::ZERO,
            cpu: CpuSpent::default(),
        };
        while let Some(joined) = workers.join_next().await {
            let (latencies, signed_in, errors) = joined.context("a login worker failed")?;
            outcome.latencies.extend(latencies);
            outcome.signed_in.extend(signed_in);
            outcome.errors.extend(errors);
        }
        outcome.wall = started.elapsed();
        outcome.cpu.jit = self.cpu.process(self.jit.pid())?.saturating_sub(jit_before);
        outcome.cpu.bench = self.cpu.this_process()?.saturating_sub(bench_before);
        if let (Some(pid), Some(before)) = (self.idp.pid(), idp_before) {
            outcome.cpu.idp = Some(self.cpu.process(pid)?.saturating_sub(before));
        }
        if let (Some(needle), Some(before)) = (self.db_processes.as_deref(), db_before) {
            let after = self.cpu.processes_with(needle);
            // None found: the server runs elsewhere (or its processes cannot be read).
            outcome.cpu.db = (!after.is_empty()).then(|| spent_between(&before, &after));
        }

        self.idp.clear();
        Ok(outcome)
    }
}

/// Creates `count` users in jit's database before jit starts, with the secret key jit gets.
async fn seed(database_url: &str, count: usize) -> Result<()> {
    let sealing = jit_store::SealingKeys::from_encoded(&[jit_testkit::harness::SECRET_KEY])
        .context("the benchmark's secret key")?;
    let store = jit_store::Store::connect(database_url, jit_domain::schema::AttributeSchema::standard(), sealing)
        .await
        .context("opening the database to seed it")?;
    store.migrate().await.context("migrating the database to seed it")?;
    store.prepare_secrets().await.context("preparing the database's secrets")?;
    store.seed_users("seeded-", count, time::OffsetDateTime::now_utc()).await.context("seeding users")?;
    store.database().clone().close().await.context("closing the seeded database")?;
    Ok(())
}

/// `POST <jit>/api/v1<path>` with the admin token; the answer's JSON.
async fn admin_post(client: &reqwest::Client, jit: &Jit, path: &str, body: &Value) -> Result<Value> {
    let response = client
        .post(format!("{}/api/v1{path}", jit.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .send()
        .await
        .with_context(|| format!("admin API POST {path}"))?;
    let status = response.status();
    let text = response.text().await.with_context(|| format!("admin API POST {path}"))?;
    ensure!(status.is_success(), "admin API POST {path} answered {status}: {text}");
    serde_json::from_str(&text).with_context(|| format!("admin API POST {path} answered no JSON: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(signed_in: &[(&str, &str)]) -> Outcome {
        Outcome {
            latencies: vec![Duration::from_millis(1); signed_in.len()],
            signed_in: signed_in
                .iter()
                .map(|(email, subject)| SignedIn { email: (*email).to_owned(), subject: (*subject).to_owned() })
                .collect(),
            errors: Vec::new(),
            wall: Duration::from_secs(1),
            cpu: CpuSpent::default(),
        }
    }

    #[test]
    fn first_and_returning_logins_must_map_subjects_to_the_same_accounts() {
        let subjects = ["a".to_owned(), "b".to_owned()];
        let mut accounts = HashMap::new();
        let mut first = outcome(&[("a@example.com", "u1"), ("b@example.com", "u2")]);
        first.check(Phase::First, &subjects, &mut accounts);
        assert!(first.errors.is_empty(), "{:?}", first.errors);
        assert_eq!(accounts.len(), 2);

        let mut returning = outcome(&[("b@example.com", "u2"), ("a@example.com", "u1")]);
        returning.check(Phase::Returning, &subjects, &mut accounts);
        assert!(returning.errors.is_empty(), "{:?}", returning.errors);
        assert_eq!(returning.stats().errors, 0);
    }

    #[test]
    fn deviations_count_as_errors() {
        let subjects = ["a".to_owned(), "b".to_owned()];
        let mut accounts = HashMap::new();
        let mut first = outcome(&[("a@example.com", "u1"), ("b@example.com", "u1")]);
        first.check(Phase::First, &subjects, &mut accounts);
        assert_eq!(first.errors.len(), 1, "two subjects in one account: {:?}", first.errors);
        assert_eq!(first.stats().errors, 1);
        assert_eq!(first.stats().logins, 2);

        let mut accounts = HashMap::from([("a@example.com".to_owned(), "u1".to_owned())]);
        let mut returning = outcome(&[("a@example.com", "u9"), ("z@example.com", "u3")]);
        returning.check(Phase::Returning, &subjects, &mut accounts);
        assert_eq!(returning.errors.len(), 2, "{:?}", returning.errors);
        assert_eq!(returning.stats().logins, 2);
    }
}
