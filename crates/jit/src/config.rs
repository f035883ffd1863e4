//! Configuration: command-line flags with environment-variable fallbacks.
//! Every setting the binary reads is declared here.

use std::time::Duration;

use clap::Args;
use jit_flow::factors::mailer::{DEFAULT_FROM, SmtpOptions};
use jit_server::serve::ConnectionLimits;

/// The embedded default: a SQLite file in the working directory, created on
/// first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://jit.sqlite?mode=rwc";

/// Where the data lives.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://FILE?mode=rwc, postgres://USER@HOST/DB or
    /// mysql://USER@HOST/DB.
    #[arg(long, env = "JIT_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true, hide_env_values = true)]
    pub database_url: String,
    #[command(flatten)]
    pub secret: SecretArgs,
}

/// The key that seals secrets in the database (see `secret_key`).
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// Secret key(s) sealing the database's secrets: base64url of 32
    /// random bytes (`jit generate-secret-key`); several, comma-separated,
    /// to rotate (the first seals, all open). Overrides the key file.
    #[arg(long, env = "JIT_SECRET_KEY", global = true, hide_env_values = true)]
    pub secret_key: Option<String>,
    /// A file with the secret key(s), one per line, mode 0600. Default:
    /// `<SQLite file>.key` beside the database (`jit.key` for a database
    /// server), generated on first start.
    #[arg(long, env = "JIT_SECRET_KEY_FILE", global = true)]
    pub secret_key_file: Option<std::path::PathBuf>,
}

/// How the server listens and presents itself.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "JIT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The public base URL (our OpenID issuer); defaults to http://<listen>.
    #[arg(long, env = "JIT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Bearer token of the admin API, at least 32 characters; generated
    /// and printed at start when not set.
    #[arg(long, env = "JIT_ADMIN_TOKEN", hide_env_values = true, value_parser = admin_token)]
    pub admin_token: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "JIT_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Timeout of every call to an external identity provider (discovery,
    /// key set, token, userinfo), in seconds.
    #[arg(long, env = "JIT_IDP_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idp_timeout: u64,
    /// How long an Email OTP code is valid, in seconds.
    #[arg(long, env = "JIT_EMAIL_OTP_TTL", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub email_otp_ttl: u64,
    /// Seconds a client may take to send a request's headers, counted from
    /// the connection's start or the end of the previous response (so it
    /// also closes idle keep-alive connections).
    #[arg(long, env = "JIT_HEADER_READ_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_read_timeout: u64,
    /// Seconds a connection may go without any traffic before it is closed.
    #[arg(long, env = "JIT_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout: u64,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "JIT_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Seconds between two purges of expired sign-ins, codes and tokens.
    #[arg(long, env = "JIT_PURGE_INTERVAL", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub purge_interval: u64,
    #[command(flatten)]
    pub smtp: SmtpArgs,
}

/// Where Email OTP codes are sent.
#[derive(Debug, Args)]
pub struct SmtpArgs {
    /// SMTP server for Email OTP codes: smtp://HOST:PORT (plain, e.g. a
    /// local relay), smtp://USER:PASS@HOST?tls=starttls, or
    /// smtps://USER:PASS@HOST. Without it, codes are written to the log (a
    /// development fallback).
    #[arg(long, env = "JIT_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The From: of Email OTP mails, e.g. `Example <no-reply@example.com>`.
    #[arg(long, env = "JIT_SMTP_FROM", default_value = DEFAULT_FROM)]
    pub smtp_from: String,
}

impl SmtpArgs {
    /// The SMTP URL, if one is set (an empty value counts as none).
    pub fn url(&self) -> Option<&str> {
        self.smtp_url.as_deref().map(str::trim).filter(|url| !url.is_empty())
    }

    /// Sender and timeout for the SMTP mailer.
    pub fn options(&self) -> SmtpOptions {
        SmtpOptions { from: self.smtp_from.clone(), ..SmtpOptions::default() }
    }
}

/// Shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

fn admin_token(value: &str) -> Result<String, String> {
    if value.chars().count() < MIN_ADMIN_TOKEN_LEN {
        return Err(format!(
            "the admin token must be at least {MIN_ADMIN_TOKEN_LEN} characters (it guards the whole admin API); leave it unset to have one generated"
        ));
    }
    Ok(value.to_owned())
}

impl ServeArgs {
    /// The limits of incoming connections.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            ..ConnectionLimits::default()
        }
    }

    /// How often expired records are purged.
    pub fn purge_interval(&self) -> Duration {
        Duration::from_secs(self.purge_interval)
    }

    /// The timeout of outbound calls to identity providers.
    pub fn idp_timeout(&self) -> Duration {
        Duration::from_secs(self.idp_timeout)
    }

    /// The lifetime of Email OTP codes.
    pub fn email_otp_ttl(&self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.email_otp_ttl).unwrap_or(3600))
    }

    /// The public URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen)).trim_end_matches('/').to_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn smtp_is_optional_and_the_sender_has_a_default() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["jit"], args].concat());
        if std::env::var_os("JIT_SMTP_URL").is_none() && std::env::var_os("JIT_SMTP_FROM").is_none() {
            let cli = parse(&[]).unwrap();
            assert_eq!(cli.serve.smtp.url(), None);
            assert_eq!(cli.serve.smtp.options().from, DEFAULT_FROM);
            assert_eq!(parse(&["--smtp-url", " "]).unwrap().serve.smtp.url(), None);
        }
        let cli = parse(&["--smtp-url", "smtp://127.0.0.1:2525", "--smtp-from", "Ex <no-reply@example.com>"]).unwrap();
        assert_eq!(cli.serve.smtp.url(), Some("smtp://127.0.0.1:2525"));
        assert_eq!(cli.serve.smtp.options().from, "Ex <no-reply@example.com>");
    }

    #[test]
    fn email_otp_codes_live_ten_minutes_unless_configured() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["jit"], args].concat());
        if std::env::var_os("JIT_EMAIL_OTP_TTL").is_none() {
            assert_eq!(parse(&[]).unwrap().serve.email_otp_ttl(), time::Duration::minutes(10));
        }
        assert_eq!(parse(&["--email-otp-ttl", "90"]).unwrap().serve.email_otp_ttl(), time::Duration::seconds(90));
        assert!(parse(&["--email-otp-ttl", "0"]).is_err());
        assert!(parse(&["--email-otp-ttl", "3601"]).is_err());
    }

    #[test]
    fn a_given_admin_token_must_be_long() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["jit"], args].concat());
        assert!(parse(&["--admin-token", "short-token"]).is_err());
        let long = "x".repeat(MIN_ADMIN_TOKEN_LEN);
        assert_eq!(parse(&["--admin-token", &long]).unwrap().serve.admin_token.as_deref(), Some(long.as_str()));
    }

    #[test]
    fn connection_limits_have_defaults_and_bounds() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["jit"], args].concat());
        let unset = ["JIT_HEADER_READ_TIMEOUT", "JIT_IDLE_TIMEOUT", "JIT_MAX_CONNECTIONS"];
        if unset.iter().all(|v| std::env::var_os(v).is_none()) {
            assert_eq!(parse(&[]).unwrap().serve.connection_limits(), ConnectionLimits::default());
        }
        let limits = parse(&["--header-read-timeout", "3", "--idle-timeout", "20", "--max-connections", "7"])
            .unwrap()
            .serve
            .connection_limits();
        assert_eq!(
            (limits.header_read_timeout, limits.idle_timeout, limits.max_connections),
            (Duration::from_secs(3), Duration::from_secs(20), 7)
        );
        assert!(parse(&["--header-read-timeout", "0"]).is_err());
        assert!(parse(&["--max-connections", "0"]).is_err());
    }

    #[test]
    fn idp_timeout_defaults_to_ten_seconds_and_must_be_positive() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["jit"], args].concat());
        if std::env::var_os("JIT_IDP_TIMEOUT").is_none() {
            assert_eq!(parse(&[]).unwrap().serve.idp_timeout(), Duration::from_secs(10));
        }
        assert_eq!(parse(&["--idp-timeout", "2"]).unwrap().serve.idp_timeout(), Duration::from_secs(2));
        assert!(parse(&["--idp-timeout", "0"]).is_err());
        assert!(parse(&["--idp-timeout", "soon"]).is_err());
    }
}
