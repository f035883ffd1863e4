//! Configuration: command-line flags with environment-variable fallbacks.
//! Every setting the binary reads is declared here.

use std::time::Duration;

use clap::Args;

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
    /// Bearer token of the admin API; generated and printed at start when
    /// not set.
    #[arg(long, env = "JIT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "JIT_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Timeout of every call to an external identity provider (discovery,
    /// key set, token, userinfo), in seconds.
    #[arg(long, env = "JIT_IDP_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idp_timeout: u64,
}

impl ServeArgs {
    /// The timeout of outbound calls to identity providers.
    pub fn idp_timeout(&self) -> Duration {
        Duration::from_secs(self.idp_timeout)
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
