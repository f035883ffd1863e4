//! The `jit` binary: loads configuration, wires the crates together and runs
//! a subcommand. Nothing else lives here.

mod admin_cli;
mod config;
mod secret_key;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jit_domain::schema::AttributeSchema;
use jit_flow::factors::email_otp::{CodeKey, EmailOtpPolicy};
use jit_flow::factors::mailer::configured_mailer;
use jit_flow::idps::{IdpRegistry, IdpSettings};
use jit_flow::{EngineSettings, SignInEngine};
use jit_primitives::clock::{Clock, SystemClock};
use jit_provider::{KeyRing, Provider, ProviderSettings};
use jit_server::{AppState, ServerSettings};
use jit_store::Store;

/// jit: an identity broker that signs users in through external identity
/// providers and provisions their local accounts just in time.
#[derive(Debug, Parser)]
#[command(name = "jit", version)]
struct Cli {
    #[command(flatten)]
    database: config::DatabaseArgs,
    #[command(flatten)]
    serve: config::ServeArgs,
    /// What to do (default: serve).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (migrates the database first).
    Serve,
    /// Create or upgrade the database schema (and seal its secrets with the
    /// current secret key), then exit.
    Migrate,
    /// Print a new random secret key (for JIT_SECRET_KEY or a key file).
    GenerateSecretKey,
    /// Administration from the command line.
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: admin_cli::AdminCommand,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logs(&cli.serve.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.database, &cli.serve).await,
        Command::Migrate => migrate(&cli.database).await.map(drop),
        Command::Admin { command } => admin_cli::run(migrate(&cli.database).await?, command).await,
        Command::GenerateSecretKey => {
            println!("{}", jit_store::SealingKeys::generate_encoded().context("generating a secret key")?);
            Ok(())
        }
    }
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" { builder.json().init() } else { builder.init() }
}

/// Opens and migrates the database, and checks (before anything is served)
/// that this instance has the key its secrets are sealed with.
async fn migrate(database: &config::DatabaseArgs) -> anyhow::Result<Store> {
    let (sealing, source) = secret_key::load(&database.secret, &database.database_url)?;
    let store = Store::connect(&database.database_url, AttributeSchema::standard(), sealing)
        .await
        .context("opening the database")?;
    store.migrate().await.context("migrating the database")?;
    store.prepare_secrets().await.context("checking the secret key")?;
    tracing::info!(
        database = %jit_store::redact(&database.database_url),
        key = store.sealing().current_id(),
        "database schema is up to date; secrets are sealed with {source}"
    );
    Ok(store)
}

async fn serve(database: &config::DatabaseArgs, args: &config::ServeArgs) -> anyhow::Result<()> {
    let store = Arc::new(migrate(database).await?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let public_url = args.public_url();
    let keys = Arc::new(KeyRing::open(store.clone(), clock.now()).await.context("loading signing keys")?);
    // Logs which one is used: the SMTP server (password redacted) or the
    // development fallback that writes codes to the log.
    let mailer = configured_mailer(args.smtp.url(), &args.smtp.options()).context("configuring SMTP (--smtp-url)")?;
    let engine = SignInEngine::new(
        store.clone(),
        IdpRegistry::new(IdpSettings { timeout: args.idp_timeout(), ..IdpSettings::default() }),
        clock.clone(),
        engine_settings(args, &public_url, CodeKey::from_bytes(store.sealing().derive("email-otp")?)),
    )
    .with_mailer(mailer);
    let admin_token = match &args.admin_token {
        Some(token) => token.clone(),
        None => {
            let token = jit_primitives::secret::random_token().context("generating the admin token")?;
            println!("Admin API token (generated for this run; set JIT_ADMIN_TOKEN to choose one): {token}");
            token
        }
    };
    let state = AppState {
        store: store.clone(),
        engine: Arc::new(engine),
        provider: Arc::new(Provider::new(store.clone(), keys, ProviderSettings::new(public_url.clone()))),
        clock,
        settings: Arc::new(ServerSettings::new(public_url.clone())),
        admin_token: Arc::new(admin_token),
        admin_failures: Arc::default(),
        metrics: Some(jit_server::metrics::install().context("installing the metrics recorder")?),
    };
    let now = state.clock.now();
    jit_server::console::ensure_console_application(&store, &public_url, now)
        .await
        .context("registering the console's application")?;
    if let Some(link) =
        jit_server::console::offer_setup_link(&store, &public_url, now).await.context("offering a setup link")?
    {
        println!(
            "No administrator exists yet. Create the first one within 30 minutes at this one-time link: {link}\n\
             (or run: jit admin create-user --username NAME --password-stdin)"
        );
    }
    let listener =
        tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(listen = %args.listen, issuer = %public_url, "jit is serving");
    println!("jit is listening on {} (issuer {public_url})", listener.local_addr()?);
    // Expired sign-ins, codes and tokens are deleted on every instance.
    tokio::spawn(jit_flow::janitor::run(state.store.clone(), state.clock.clone(), args.purge_interval()));
    jit_server::serve::serve(listener, jit_server::router(state), args.connection_limits(), shutdown())
        .await
        .context("serving")?;
    tracing::info!("jit stopped");
    Ok(())
}

/// The sign-in settings the command line chooses; the rest are defaults.
fn engine_settings(args: &config::ServeArgs, public_url: &str, code_key: CodeKey) -> EngineSettings {
    let defaults = EngineSettings::default();
    let email_otp = EmailOtpPolicy { lifetime: args.email_otp_ttl(), code_key, ..defaults.email_otp };
    EngineSettings { public_url: public_url.to_owned(), email_otp, ..defaults }
}

/// Resolves on Ctrl-C or SIGTERM: in-flight requests finish, new ones are
/// refused.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
